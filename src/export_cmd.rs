//! `nnc export`: a model's inference graph and weights as an ONNX file, for onnxruntime,
//! TensorRT and the importers of other frameworks.

use crate::output::{ColorChoice, analyze_checked, did_you_mean, print_error};
use nnc_compiler::driver;
use nnc_compiler::ir::{Loss, ONNX_OPSET, OnnxDim, OnnxValue, dims_text, to_onnx};
use nnc_compiler::shapes::format_count;
use nnc_grammar::LineIndex;
use nnc_runtime::train::{initial_weights, model_and_args};
use std::path::Path;
use std::process::ExitCode;

pub struct Options<'a> {
    pub onnx: &'a Path,
    pub weights: Option<&'a Path>,
    /// Values of the model's arguments and input sizes, as `width=16`.
    pub args: &'a [String],
    /// Export the loss and its gradient by every parameter instead of the model.
    pub grad: bool,
    /// The loss of `grad`, when the model has no `train` block.
    pub loss: Option<&'a str>,
}

pub fn run(file: &Path, model: &str, options: &Options<'_>, color: ColorChoice) -> ExitCode {
    let fail = |message: String, code: u8| {
        print_error(&message, color);
        ExitCode::from(code)
    };
    let analysis = match analyze_checked(file, color) {
        Ok(analysis) => analysis,
        Err(code) => return code,
    };
    let file_name = file.display().to_string();
    let choice = match model_and_args(&analysis, Some(model)) {
        Ok(choice) => choice,
        Err(message) => {
            let known: Vec<&str> = analysis.shapes.models.iter().map(|m| m.name.as_str()).collect();
            let hint = did_you_mean(model, &known, "models");
            return fail(format!("`{file_name}`: {message}{hint}"), 2);
        }
    };
    let train = choice.train;
    let checked = match crate::model_args::bind_args(&analysis, choice.model, options.args) {
        Ok(checked) => checked,
        Err(message) => return fail(message, 2),
    };
    let def = &checked.report;
    let lines = LineIndex::new(&analysis.text);
    let locate = |span: nnc_grammar::Span| {
        let position = lines.position(&analysis.text, span.start);
        format!("{file_name}:{}:{}", position.line + 1, position.char_column + 1)
    };
    let located = |message: &str, span: nnc_grammar::Span| {
        let position = lines.position(&analysis.text, span.start);
        let line = analysis.text.lines().nth(position.line).unwrap_or("").trim();
        format!("cannot export `{model}` to ONNX: {message}\n  --> {}\n   | {line}", locate(span))
    };
    // The inference graph, or the loss and its gradients: a function of the input and the
    // targets whose results are the loss and one gradient per parameter.
    let (lowered, data_inputs) = if options.grad {
        let loss = match options.loss {
            Some(name) => match Loss::from_name(name) {
                Some(loss) => Some(loss),
                None => return fail(format!("`{name}` is not a loss; give `cross_entropy`, `mse` or `bce`"), 2),
            },
            None => choice.loss,
        };
        let Some(loss) = loss else {
            return fail(
                format!(
                    "`{model}` has no `train` block to take the loss from; give `--loss cross_entropy`, `mse` or `bce`"
                ),
                2,
            );
        };
        (driver::loss_gradient(&checked, loss, None), 2)
    } else {
        (driver::optimized_inference(&checked, None), 1)
    };
    let f = match lowered {
        Ok(f) => f,
        Err(error) => return fail(located(&error.message, error.span), 1),
    };
    let graph = match to_onnx(&f, data_inputs) {
        Ok(graph) => graph,
        Err(error) => {
            // An unknown size of the interface is the model's, not one line's.
            let span = if error.span == f.span { def.span } else { error.span };
            let hint = match (&error.open_size, options.grad) {
                (Some(name), _) => format!(
                    "\n  help: give it a default in the model's header, a value in its `train` block's call, \
                     or one here, such as `--arg {name}=16`"
                ),
                (None, true) => "\n  help: without `--grad`, the model's inference graph exports".to_string(),
                (None, false) => String::new(),
            };
            return fail(format!("{}{hint}", located(&error.message, span)), 1);
        }
    };
    let (weights, origin) = match options.weights {
        Some(path) => match nnc_runtime::checkpoint::load(path) {
            Ok(tensors) => (tensors, path.display().to_string()),
            Err(message) => return fail(message, 1),
        },
        None => {
            // The seed of the model's `train` block, as `nnc run` reads it, or 0.
            let seed = train.map_or(0, |t| t.seed);
            (initial_weights(&f, data_inputs, seed), format!("the initial weights of seed {seed} (no --weights given)"))
        }
    };
    let weights: Vec<nnc_onnx::Weight> = weights
        .into_iter()
        .map(|(name, shape, values)| (name, shape, values.into_iter().map(|v| v as f32).collect()))
        .collect();
    let doc = def.doc.clone().unwrap_or_default();
    let mut metadata = vec![("source".to_string(), file_name.clone()), ("weights".to_string(), origin.clone())];
    let args = &checked.checked.get(checked.instance()).args;
    metadata.extend(args.iter().filter(|(_, v)| v.is_const()).map(|(k, v)| (format!("argument {k}"), v.to_string())));
    metadata.sort();
    let info = nnc_onnx::ModelInfo { doc, metadata, locate: &locate };
    let proto = match nnc_onnx::model_proto(&graph, &weights, &info) {
        Ok(proto) => proto,
        Err(message) => {
            let from = options.weights.map_or(String::new(), |p| format!("{}: ", p.display()));
            return fail(format!("cannot export `{model}` to ONNX: {from}{message}"), 1);
        }
    };
    let bytes = nnc_onnx::encode(&proto);
    if let Err(message) = nnc_runtime::checkpoint::write_atomically(options.onnx, &bytes) {
        return fail(message, 1);
    }
    let params: usize =
        weights.iter().filter(|(n, _, _)| graph.weights.iter().any(|w| w.name == *n)).map(|(_, _, v)| v.len()).sum();
    let dynamic: Vec<String> = graph
        .inputs
        .iter()
        .flat_map(|v| &v.dims)
        .filter_map(|d| match d {
            OnnxDim::Symbol(s) => Some(s.clone()),
            OnnxDim::Fixed(_) => None,
        })
        .collect();
    println!(
        "wrote `{model}` to {} ({} bytes): ONNX opset {ONNX_OPSET}, {} nodes, {} weights ({} params) from {origin}",
        options.onnx.display(),
        bytes.len(),
        graph.nodes.len(),
        graph.weights.len(),
        format_count(&nnc_compiler::shapes::Dim::constant(params as i128)),
    );
    let interface = |values: &[OnnxValue]| values.iter().map(value_text).collect::<Vec<_>>().join(", ");
    let batch = match dynamic.first() {
        Some(symbol) => format!("; `{symbol}` is a dynamic dimension"),
        None => String::new(),
    };
    println!("  input {}, output {}{batch}", interface(&graph.inputs), interface(&graph.outputs));
    ExitCode::SUCCESS
}

fn value_text(value: &OnnxValue) -> String {
    format!("{} {}", value.name, dims_text(&value.dims))
}

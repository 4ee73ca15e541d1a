//! The promise "what `nnc check` accepts, runs", as one function: for a source text the
//! check accepts, every instance of its checked program (each model, layer, function and
//! constant as used) lowers, verifies, differentiates in both modes, optimises, runs on the
//! interpreter and on compiled code with the same numbers, and each model exports to ONNX;
//! every query answers. The corpus of `tests/accepted/` and the generated programs of
//! `tests/invariant.rs` run it.

use nnc_codegen::JitExecutor;
use nnc_compiler::checked::{Checked, InstanceId, InstanceKind};
use nnc_compiler::exec::Executor;
use nnc_compiler::ir::{
    Function, Loss, Lowering, Precision, Tensor, eval_function, evaluate, forward, lower_instance, optimize, reverse,
    run_queries, to_onnx, verify, with_loss,
};
use nnc_compiler::shapes::Dim;

/// What the chain ran: instances lowered and run (by kind), and queries answered.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ran {
    pub models: usize,
    pub functions: usize,
    pub constants: usize,
    pub queries: usize,
    /// Instances left open by the source (a layer with symbolic sizes, a model argument
    /// without a value): each is run where it is used with sizes.
    pub open: usize,
}

/// The batch the chain lowers models for.
const BATCH: usize = 3;

/// A generator of numbers, the same for the same seed (xorshift).
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in [0, 1).
    pub fn next(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Runs the chain on `text`. `Ok(None)`: the check rejects it (with an error at a place);
/// `Ok(Some(ran))`: everything ran; `Err`: a stage failed on what the check accepted.
pub fn run_chain(text: &str, jit: &JitExecutor) -> Result<Option<Ran>, String> {
    let analysis = nnc_compiler::analyze(text);
    if analysis.has_errors() {
        return Ok(None);
    }
    let checked = &analysis.shapes.checked;
    let mut ran = Ran::default();
    for id in 0..checked.instances.len() {
        let instance = checked.get(id);
        let what = format!("instance {id} `{}` ({:?}, args {:?})", instance.name, instance.kind, instance.args);
        if instance.failed {
            return Err(format!("{what} failed although the file has no error"));
        }
        // A function walked on its own has arguments of unknown shape; everything else the
        // check walked has a shape, or the check said why not.
        let inputs_known = instance.inputs.iter().all(|&(_, n)| instance.nodes[n].shape.is_some());
        if !inputs_known && instance.kind == InstanceKind::Fn {
            ran.open += 1;
            continue;
        }
        if let Some(node) = instance.nodes.iter().find(|node| node.shape.is_none()) {
            return Err(format!("{what}: a value at {:?} has no shape, and the check said nothing", node.span));
        }
        if instance.output.is_none() && instance.kind != InstanceKind::Constant {
            return Err(format!("{what} has no output, and the check said nothing"));
        }
        if !concrete(checked, id, instance.batch.as_deref()) {
            ran.open += 1;
            continue;
        }
        match instance.kind {
            InstanceKind::Constant => {
                // A query's instance is its call; constants are values.
                if instance.output.is_some() {
                    evaluate(checked, id, None, Precision::F64).map_err(|e| format!("{what}: {}", e.message))?;
                }
                ran.constants += 1;
            }
            InstanceKind::Fn => {
                run_function(checked, id, jit).map_err(|e| format!("{what}: {e}"))?;
                ran.functions += 1;
            }
            InstanceKind::Model => {
                run_model(checked, id, jit).map_err(|e| format!("{what}: {e}"))?;
                ran.models += 1;
            }
        }
    }
    for result in run_queries(&analysis.shapes, &analysis.text, Precision::F64) {
        result.answer.map_err(|e| format!("query `{}`: {}", result.text, e.message))?;
        ran.queries += 1;
    }
    Ok(Some(ran))
}

/// Whether every size of an instance is a number once its batch is.
fn concrete(checked: &Checked, id: InstanceId, batch: Option<&str>) -> bool {
    let bound = |d: &Dim| {
        d.substitute(&|name| (Some(name) == batch).then(|| Dim::constant(BATCH as i128))).is_ok_and(|d| d.is_const())
    };
    let instance = checked.get(id);
    instance.args.iter().all(|(_, d)| bound(d))
        && instance.nodes.iter().all(|node| node.shape.as_ref().is_some_and(|s| s.0.iter().all(bound)))
}

/// Random arguments for `f`: inputs in [0.1, 1.1), labels below `classes` for the
/// arguments listed in `labels`.
fn arguments(f: &Function, rng: &mut Rng, labels: &[(usize, usize)]) -> Result<Vec<Tensor>, String> {
    f.params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let shape: Vec<usize> = f
                .ty(p.value)
                .shape
                .0
                .iter()
                .map(|d| d.as_const().map(|v| v as usize).ok_or(format!("argument `{}` is {d}", p.name)))
                .collect::<Result<_, _>>()?;
            let n = shape.iter().product();
            let data = match labels.iter().find(|(k, _)| *k == i) {
                Some(&(_, classes)) => (0..n).map(|_| (rng.next() * classes as f64).floor()).collect(),
                None if f.dropout_masks.iter().any(|(m, _)| *m == i) => vec![1.0; n],
                None => (0..n).map(|_| 0.1 + rng.next()).collect(),
            };
            Ok(Tensor::new(shape, data))
        })
        .collect()
}

/// Whether `got` is `want` up to f32 rounding over sums of `terms` terms.
fn close(got: f32, want: f64, terms: usize) -> bool {
    let tolerance = 1e-4 * (1.0 + want.abs()) * (terms.max(1) as f64).sqrt();
    (f64::from(got) - want).abs() <= tolerance || (got.is_nan() && want.is_nan()) || (f64::from(got) == want)
}

/// Verifies `f`, runs it on the interpreter (f32) and compiled, and compares.
fn run_both(f: &Function, args: &[Tensor], jit: &JitExecutor, what: &str) -> Result<(), String> {
    verify(f).map_err(|e| format!("{what} does not verify: {e}"))?;
    let (want, _) = eval_function(f, args, Precision::F32).map_err(|e| format!("{what} on the interpreter: {e}"))?;
    let mut program = jit.program(f).map_err(|e| format!("{what} does not compile: {e}"))?;
    let inputs: Vec<Vec<f32>> = args.iter().map(|t| t.data.iter().map(|&v| v as f32).collect()).collect();
    let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
    let mut outs: Vec<Vec<f32>> = want.iter().map(|t| vec![f32::NAN; t.data.len()]).collect();
    {
        let mut out_refs: Vec<&mut [f32]> = outs.iter_mut().map(Vec::as_mut_slice).collect();
        program.run(&refs, &mut out_refs);
    }
    let terms: usize = args.iter().map(|a| a.data.len()).sum::<usize>().max(16);
    for (k, (got, want)) in outs.iter().zip(&want).enumerate() {
        for (i, (&g, &w)) in got.iter().zip(&want.data).enumerate() {
            if !close(g, w, terms) {
                return Err(format!("{what}: result {k}[{i}] is {g} compiled, {w} interpreted"));
            }
        }
    }
    Ok(())
}

fn run_function(checked: &Checked, id: InstanceId, jit: &JitExecutor) -> Result<(), String> {
    let f = lower_instance(checked, id, Lowering::default()).map_err(|e| e.message)?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ id as u64);
    let args = arguments(&f, &mut rng, &[])?;
    let all: Vec<usize> = (0..f.params.len()).collect();
    run_both(&optimize(&f), &args, jit, "the function")?;
    let tangents = forward(&f, &all).0;
    verify(&tangents).map_err(|e| format!("forward mode does not verify: {e}"))?;
    // A gradient is of one number.
    if f.ty(f.results[0]).shape.rank() == 0 && !all.is_empty() {
        run_both(&optimize(&reverse(&f, &all).0), &args, jit, "its gradient")?;
    }
    Ok(())
}

fn run_model(checked: &Checked, id: InstanceId, jit: &JitExecutor) -> Result<(), String> {
    let lower = |training| {
        lower_instance(checked, id, Lowering { batch: Some(BATCH), training, output: None }).map_err(|e| e.message)
    };
    let f = lower(false)?;
    let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ id as u64);
    let args = arguments(&f, &mut rng, &[])?;
    run_both(&optimize(&f), &args, jit, "the inference program")?;
    let params: Vec<usize> = (1..f.params.len()).collect();
    verify(&forward(&f, &params).0).map_err(|e| format!("forward mode does not verify: {e}"))?;
    // The loss a classifier of its output would take, else the mean squared error.
    let output = f.ty(f.results[0]).shape.clone();
    let classes = output.0.get(1).and_then(Dim::as_const).filter(|&c| output.rank() == 2 && c >= 2);
    let loss = if classes.is_some() { Loss::CrossEntropy } else { Loss::Mse };
    let training = with_loss(lower(true)?, loss).map_err(|e| e.message)?;
    let learnable = nnc_compiler::driver::learnable(&training);
    let gradient = optimize(&reverse(&training, &learnable).0);
    let labels: Vec<(usize, usize)> = classes.map(|c| (1, c as usize)).into_iter().collect();
    let args = arguments(&gradient, &mut rng, &labels)?;
    run_both(&gradient, &args, jit, "the training gradient")?;
    let symbolic = lower_instance(checked, id, Lowering::default()).map_err(|e| e.message)?;
    to_onnx(&optimize(&symbolic), 1).map_err(|e| format!("ONNX export: {}", e.message))?;
    Ok(())
}

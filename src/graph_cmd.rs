//! `nnc graph`: the computational graph of a file's functions and models as Graphviz DOT,
//! or rendered to SVG or PNG by Graphviz's `dot` program.
//!
//! Without a NAME, DOT output holds one `digraph` per function and model, separated by
//! blank lines. `dot` renders only the first graph of its input, so SVG and PNG need one
//! graph per file: with several graphs and `-o out.svg`, each goes to `out-NAME.svg`;
//! without `-o`, the command asks for a NAME. PNG is binary, so it is not written to a
//! terminal: it needs `-o` or standard output redirected.

use crate::ir_cmd::declared;
use crate::output::{ColorChoice, analyze_checked, did_you_mean, print_error};
use nnc_compiler::driver::{self, Derivative};
use nnc_compiler::ir::{Function, GraphOptions, graph_dot};
use nnc_compiler::shapes::Shape;
use nnc_compiler::{Analysis, first_error};
use nnc_grammar::{FnDef, Item, LineIndex, ModelDef};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// What `nnc graph` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Graphviz's text form.
    Dot,
    /// A picture rendered by Graphviz's `dot`.
    Svg,
    /// A bitmap rendered by Graphviz's `dot`.
    Png,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Dot => "dot",
            Format::Svg => "svg",
            Format::Png => "png",
        }
    }

    /// The format a file name asks for: `.svg` and `.png` are pictures, anything else DOT.
    fn of_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("svg") => Format::Svg,
            Some("png") => Format::Png,
            _ => Format::Dot,
        }
    }
}

pub struct Options<'a> {
    /// Draw the adjoint code of reverse mode beside the primal graph.
    pub grad: bool,
    /// Optimise first, as `nnc ir --opt` does.
    pub opt: bool,
    /// The format; `None` takes it from the extension of `output`, else DOT.
    pub format: Option<Format>,
    pub output: Option<&'a Path>,
}

impl Options<'_> {
    fn derivative(&self) -> Derivative {
        if self.grad { Derivative::Reverse } else { Derivative::None }
    }
}

/// A function or model of the file.
enum Definition<'a> {
    Fn(&'a FnDef),
    Model(&'a ModelDef),
}

impl Definition<'_> {
    fn name(&self) -> &str {
        match self {
            Definition::Fn(def) => &def.name.name,
            Definition::Model(def) => &def.name.name,
        }
    }
}

/// Where the file and the definition are, for the graph's title: `examples/lecture.nn:4`.
struct Place<'a> {
    file_name: &'a str,
    text: &'a str,
    lines: &'a LineIndex,
}

impl Place<'_> {
    fn title(&self, f: &Function, at: nnc_grammar::Span) -> String {
        let line = self.lines.position(self.text, at.start).line + 1;
        format!("{} ({}:{line})", f.name, self.file_name)
    }
}

/// The DOT of a `fn`: its evaluation trace, left to right, with the lecture's names.
fn fn_graph(analysis: &Analysis, def: &FnDef, place: &Place<'_>, options: &Options<'_>) -> Result<String, String> {
    let shapes: Vec<Shape> = def.params.iter().map(|p| declared(p.shape.as_ref())).collect();
    let shown = driver::function_shown(analysis, &def.name.name, &shapes, options.derivative())
        .map_err(|error| format!("cannot lower `{}`: {}", def.name.name, error.message))?;
    let f = driver::printed(shown.function, options.opt)?;
    let graph = GraphOptions {
        title: Some(place.title(&f, def.name.span)),
        inputs: shown.inputs,
        lecture_names: true,
        primal_values: options.grad.then_some(shown.primal_values),
        layer_labels: Vec::new(),
        left_to_right: true,
    };
    Ok(graph_dot(&f, &graph))
}

/// The DOT of a model, top to bottom, a cluster per line of its body. With `--grad`, the
/// gradient of the loss of its `train` block by the parameters, or, as `nnc ir --grad`
/// does for a model without one, the adjoint code of its output (taking the output's
/// cotangent `y_bar`).
fn model_graph(
    analysis: &Analysis,
    def: &ModelDef,
    place: &Place<'_>,
    options: &Options<'_>,
) -> Result<String, String> {
    let model =
        analysis.model(&def.name.name, &HashMap::new()).map_err(|errors| first_error(&def.name.name, &errors))?;
    let shown = driver::model_shown(&model, analysis.loss_of(&def.name.name), options.derivative(), None)
        .map_err(|error| format!("cannot lower `{}`: {}", def.name.name, error.message))?;
    let f = driver::printed(shown.function, options.opt)?;
    // A statement as written, on one line: `conv2d(8, kernel = 3, pad = 1)`.
    let layer_labels = f
        .layers
        .iter()
        .map(|layer| {
            place
                .text
                .get(layer.span.start..layer.span.end)
                .unwrap_or("")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let graph = GraphOptions {
        title: Some(place.title(&f, def.name.span)),
        inputs: shown.inputs,
        lecture_names: false,
        primal_values: options.grad.then_some(shown.primal_values),
        layer_labels,
        left_to_right: false,
    };
    Ok(graph_dot(&f, &graph))
}

/// The picture Graphviz's `dot` renders of `dot_text`, or why there is none.
fn render(dot_text: &str, format: Format) -> Result<Vec<u8>, String> {
    let spawned = Command::new("dot")
        .arg(format!("-T{}", format.extension()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err("Graphviz's `dot` was not found on PATH; install Graphviz (Debian/Ubuntu: \
                 `sudo apt install graphviz`, macOS: `brew install graphviz`) or use `--format dot`"
                .to_string());
        }
        Err(error) => return Err(format!("cannot run Graphviz's `dot`: {error}")),
    };
    // Write the graph from another thread, so that a `dot` that writes before it has read
    // everything cannot block us both.
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = dot_text.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().map_err(|error| format!("cannot run Graphviz's `dot`: {error}"))?;
    let written = writer.join().unwrap_or(Ok(()));
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("Graphviz's `dot` failed ({}):\n{}", output.status, stderr.trim_end()));
    }
    written.map_err(|error| format!("cannot write the graph to Graphviz's `dot`: {error}"))?;
    Ok(output.stdout)
}

/// `out.svg` with `-NAME` after its stem: `out-f.svg`.
fn path_for(output: &Path, name: &str, format: Format) -> PathBuf {
    let stem = output.file_stem().map_or("graph".into(), |s| s.to_string_lossy().into_owned());
    output.with_file_name(format!("{stem}-{name}.{}", format.extension()))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    nnc_runtime::checkpoint::write_atomically(path, bytes)?;
    println!("wrote {}", path.display());
    Ok(())
}

fn write_stdout(bytes: &[u8]) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes).and_then(|()| stdout.flush()).map_err(|error| format!("cannot write the graph: {error}"))
}

pub fn run(path: &Path, name: Option<&str>, options: &Options<'_>, color: ColorChoice) -> ExitCode {
    let file_name = path.display().to_string();
    let analysis = match analyze_checked(path, color) {
        Ok(analysis) => analysis,
        Err(code) => return code,
    };
    let definitions: Vec<Definition<'_>> = analysis
        .file
        .items
        .iter()
        .filter_map(|item| match item {
            Item::Fn(def) => Some(Definition::Fn(def)),
            Item::Model(def) => Some(Definition::Model(def)),
            _ => None,
        })
        .collect();
    let known: Vec<&str> = definitions.iter().map(Definition::name).collect();
    let chosen: Vec<&Definition<'_>> = definitions.iter().filter(|d| name.is_none_or(|n| n == d.name())).collect();
    if chosen.is_empty() {
        let message = match name {
            None => format!("`{file_name}` has no functions or models to draw"),
            Some(wanted) => {
                let hint = did_you_mean(wanted, &known, "functions and models");
                format!("`{file_name}` has no function or model `{wanted}`{hint}")
            }
        };
        print_error(&message, color);
        return ExitCode::from(2);
    }

    let format = options.format.unwrap_or_else(|| options.output.map_or(Format::Dot, Format::of_path));
    // Refuse before any work: a PNG would fill a terminal with binary.
    if format == Format::Png && options.output.is_none() && std::io::stdout().is_terminal() {
        print_error(
            "a PNG is binary and is not written to a terminal; give `-o FILE.png` or redirect the output",
            color,
        );
        return ExitCode::from(2);
    }
    if format != Format::Dot && chosen.len() > 1 && options.output.is_none() {
        print_error(
            &format!(
                "`{file_name}` has {} functions and models ({}) and `dot` draws one graph per picture; \
                 name one, or give `-o FILE.{}` to write one file per graph",
                chosen.len(),
                known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "),
                format.extension()
            ),
            color,
        );
        return ExitCode::from(2);
    }

    let lines = LineIndex::new(&analysis.text);
    let place = Place { file_name: &file_name, text: &analysis.text, lines: &lines };
    let mut graphs = Vec::new();
    for definition in &chosen {
        let graph = match definition {
            Definition::Fn(def) => fn_graph(&analysis, def, &place, options),
            Definition::Model(def) => model_graph(&analysis, def, &place, options),
        };
        match graph {
            Ok(dot) => graphs.push((definition.name().to_string(), dot)),
            Err(message) => {
                print_error(&message, color);
                return ExitCode::from(1);
            }
        }
    }

    let written = match (format, options.output) {
        (Format::Dot, None) => {
            write_stdout(graphs.iter().map(|(_, dot)| dot.as_str()).collect::<Vec<_>>().join("\n").as_bytes())
        }
        (Format::Dot, Some(output)) => {
            write_file(output, graphs.iter().map(|(_, dot)| dot.as_str()).collect::<Vec<_>>().join("\n").as_bytes())
        }
        (_, output) => graphs.iter().try_for_each(|(name, dot)| {
            let picture = render(dot, format)?;
            match output {
                Some(output) if graphs.len() > 1 => write_file(&path_for(output, name, format), &picture),
                Some(output) => write_file(output, &picture),
                None => write_stdout(&picture),
            }
        }),
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            print_error(&message, color);
            ExitCode::from(1)
        }
    }
}

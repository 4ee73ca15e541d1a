//! The `nnc` command line: one module per subcommand; the only place with real I/O.

mod bench_cmd;
mod check;
mod export_cmd;
mod fmt_cmd;
mod graph_cmd;
mod interchange_cmd;
mod ir_cmd;
mod lsp_cmd;
mod model_args;
mod output;
mod run;
mod summary;
mod trace_cmd;

use clap::{Parser, Subcommand};
use nnc_compiler::driver::Derivative;
use std::path::PathBuf;
use std::process::ExitCode;

/// nnc: a small language and compiler for neural networks.
#[derive(Parser)]
#[command(name = "nnc", version, about, long_about = None)]
struct Cli {
    /// When to colour diagnostics.
    #[arg(long, global = true, value_enum, default_value_t = output::ColorChoice::Auto)]
    color: output::ColorChoice,
    #[command(subcommand)]
    command: Command,
}

/// What runs the training steps of `nnc run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Executor {
    /// Machine code compiled with Cranelift, once per batch size.
    Jit,
    /// The reference interpreter: every op by its reference rule, rounded to f32.
    Interp,
}

/// The executor, with compiled code split over `threads` threads (all cores by default).
fn make_executor(executor: Executor, threads: Option<usize>) -> Result<Box<dyn nnc_compiler::exec::Executor>, String> {
    make_measured_executor(executor, threads, false)
}

/// An executor, measuring the time of each part of a step when `profile` (compiled code).
fn make_measured_executor(
    executor: Executor,
    threads: Option<usize>,
    profile: bool,
) -> Result<Box<dyn nnc_compiler::exec::Executor>, String> {
    Ok(match executor {
        Executor::Jit => {
            let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
            Box::new(nnc_codegen::JitExecutor::new().with_profile(profile).with_threads(threads)?)
        }
        Executor::Interp => Box::new(nnc_compiler::exec::InterpreterExecutor),
    })
}

/// The number of threads of `--threads`: at least one.
fn parse_threads(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("at least one thread runs the steps".into()),
        Ok(n) if n > 1024 => Err(format!("{n} threads is more than this machine can use; try the number of cores")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{text}` is not a number of threads")),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run a file's statements in order: `eval`, `grad`, `jvp`, `jacobian`, `hessian` and `train`.
    Run {
        /// The `.nn` file.
        file: PathBuf,
        /// Decimals to print.
        #[arg(long, default_value_t = 3)]
        decimals: usize,
        /// Compute in f32 instead of f64.
        #[arg(long)]
        f32: bool,
        /// The run directory for results (metrics), instead of the `out` setting.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue each `train` block from its run directory's checkpoint.
        #[arg(long)]
        resume: bool,
        /// What runs the training steps.
        #[arg(long, value_enum, default_value_t = Executor::Jit)]
        executor: Executor,
        /// Threads that compiled steps are split over (default: every core); the
        /// interpreter uses one.
        #[arg(long, value_parser = parse_threads)]
        threads: Option<usize>,
    },
    /// The SSA IR of a file's functions, or of their gradient or tangent code.
    Ir {
        /// The `.nn` file.
        file: PathBuf,
        /// The function to show; without it, every function.
        name: Option<String>,
        /// The adjoint code of reverse mode: the gradient with respect to every argument.
        #[arg(long, conflicts_with = "jvp")]
        grad: bool,
        /// The tangent code of forward mode.
        #[arg(long)]
        jvp: bool,
        /// Optimise first: constant folding, simplification, CSE and dead-code elimination.
        #[arg(long)]
        opt: bool,
        /// Show the fused kernels that compiled code runs (after optimising), for models
        /// at the batch size `--batch`.
        #[arg(long)]
        kernels: bool,
        /// The batch size of `--kernels`.
        #[arg(long, default_value_t = 32, requires = "kernels")]
        batch: usize,
    },
    /// The lecture's traces of a function at a point: primal, tangent and adjoint.
    Trace {
        /// The `.nn` file.
        file: PathBuf,
        /// The function to trace.
        name: String,
        /// The point, such as `x1=2,x2=5`.
        #[arg(long)]
        at: String,
        /// Only the forward (tangent) or the reverse (adjoint) trace after the primal one.
        #[arg(long, value_parser = ["forward", "reverse"])]
        mode: Option<String>,
        /// The argument the tangent trace differentiates by (the first by default).
        #[arg(long)]
        wrt: Option<String>,
        #[arg(long, value_enum, default_value_t = trace_cmd::Format::Text)]
        format: trace_cmd::Format,
        /// Decimals to print.
        #[arg(long, default_value_t = 3)]
        decimals: usize,
    },
    /// The computational graph of a file's functions and models as Graphviz DOT, or as SVG
    /// or PNG drawn by Graphviz's `dot`.
    Graph {
        /// The `.nn` file.
        file: PathBuf,
        /// The function or model to draw; without it, every one (one `digraph` each).
        name: Option<String>,
        /// Draw the adjoint code of reverse mode beside the primal graph.
        #[arg(long)]
        grad: bool,
        /// Optimise first, as `nnc ir --opt` does.
        #[arg(long)]
        opt: bool,
        /// The output format (by default from the extension of `--output`, else `dot`);
        /// `svg` and `png` need Graphviz's `dot` program.
        #[arg(long, value_enum)]
        format: Option<graph_cmd::Format>,
        /// Where to write; standard output without it. With several graphs and a picture
        /// format, `out.svg` becomes `out-NAME.svg` for each.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// The speed of each `train` block's training step on random data of its shapes.
    Bench {
        /// The `.nn` file.
        file: PathBuf,
        /// What runs the steps.
        #[arg(long, value_enum, default_value_t = Executor::Jit)]
        executor: Executor,
        /// Threads that compiled steps are split over (default: every core); the
        /// interpreter uses one.
        #[arg(long, value_parser = parse_threads)]
        threads: Option<usize>,
        /// The batch size, instead of the `train` block's.
        #[arg(long)]
        batch: Option<usize>,
        /// Seconds to measure each block.
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
        /// Also show where a step's time goes, kernel by kernel (compiled code only).
        #[arg(long)]
        profile: bool,
    },
    /// A model's outputs for given weights and inputs, written as a .npy file.
    Predict {
        /// The `.nn` file.
        file: PathBuf,
        /// The model; without it, the model of the first `train` block.
        model: Option<String>,
        /// The weights (safetensors, PyTorch names).
        #[arg(long)]
        weights: PathBuf,
        /// The inputs (.npy), one example per row.
        #[arg(long)]
        input: PathBuf,
        /// Where to write the outputs (.npy).
        #[arg(long, default_value = "predictions.npy")]
        output: PathBuf,
        /// A size the model leaves open, as NAME=SIZE (see `nnc export --arg`).
        #[arg(long = "arg", value_name = "NAME=SIZE")]
        args: Vec<String>,
    },
    /// A model's inference graph and weights as an ONNX file (opset 18), with the batch as a
    /// dynamic dimension; or with `--grad`, its loss and gradients.
    Export {
        /// The `.nn` file.
        file: PathBuf,
        /// The model to export.
        model: String,
        /// Where to write the ONNX model.
        #[arg(long, value_name = "FILE.onnx")]
        onnx: PathBuf,
        /// The weights (safetensors, PyTorch names, as `save` writes them); without it, the
        /// weights a training run of the model starts from.
        #[arg(long)]
        weights: Option<PathBuf>,
        /// A size the model leaves open, as NAME=SIZE: an argument without a default, or a
        /// size of its input such as `in` of `input x: [B, in]`. Repeat for several.
        #[arg(long = "arg", value_name = "NAME=SIZE")]
        args: Vec<String>,
        /// Export the training loss and its gradient by every parameter instead: inputs `x`
        /// and `t` (labels or targets), outputs `loss` and `NAME_bar` per parameter.
        #[arg(long)]
        grad: bool,
        /// The loss of `--grad`, when the model has no `train` block.
        #[arg(long, requires = "grad", value_parser = ["cross_entropy", "mse", "bce"])]
        loss: Option<String>,
    },
    /// One batch's loss, outputs and parameter gradients for given weights, as safetensors.
    Grad {
        /// The `.nn` file.
        file: PathBuf,
        /// The model.
        model: String,
        /// The weights (safetensors, PyTorch names).
        #[arg(long)]
        weights: PathBuf,
        /// The inputs (.npy).
        #[arg(long)]
        input: PathBuf,
        /// The labels or targets (.npy).
        #[arg(long)]
        labels: PathBuf,
        /// Where to write `loss`, `output` and the gradients (safetensors).
        #[arg(long)]
        out: PathBuf,
        /// The loss, when the model has no `train` block.
        #[arg(long)]
        loss: Option<String>,
        /// A size the model leaves open, as NAME=SIZE (see `nnc export --arg`).
        #[arg(long = "arg", value_name = "NAME=SIZE")]
        args: Vec<String>,
    },
    /// Parse, resolve names and check FILEs; print diagnostics, exit 1 on errors.
    Check {
        /// The `.nn` files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// How to print diagnostics: rendered with source (`text`) or for tools (`json`).
        #[arg(long, value_enum, default_value_t = check::Format::Text)]
        format: check::Format,
    },
    /// Format FILEs in the canonical style, in place; `-` or no FILE formats standard input to
    /// standard output. Files with syntax errors are reported and left as they are.
    Fmt {
        /// The `.nn` files to format; `-` for standard input.
        files: Vec<PathBuf>,
        /// Write nothing: show the first difference of each file that is not formatted, and
        /// exit 1 if there is one.
        #[arg(long)]
        check: bool,
    },
    /// Per-layer output shapes and parameter counts of a model, with totals.
    Summary {
        /// The `.nn` file.
        file: PathBuf,
        /// The model to summarise; without it, every model in the file.
        model: Option<String>,
        /// Show shapes for this batch size instead of the batch symbol.
        #[arg(long)]
        batch: Option<u64>,
        #[arg(long, value_enum, default_value_t = summary::Format::Table)]
        format: summary::Format,
    },
    /// The language server: LSP on standard input and output, for editors to start.
    Lsp {
        /// Accepted for editors that pass it: standard input and output are the only transport.
        #[arg(long)]
        stdio: bool,
    },
    /// Explain a diagnostic code, such as E0003, with an example.
    Explain {
        /// The code to explain; without it, every code is listed.
        code: Option<String>,
    },
}

fn main() -> ExitCode {
    let started = std::time::Instant::now();
    // Like other command-line tools, end quietly when the reader of our output goes away
    // (`nnc summary FILE | head`) instead of failing to write to a closed pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default action of a signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Run { file, decimals, f32, out, resume, executor, threads } => {
            let precision = if f32 { nnc_compiler::ir::Precision::F32 } else { nnc_compiler::ir::Precision::F64 };
            let executor = match make_executor(executor, threads) {
                Ok(executor) => executor,
                Err(message) => {
                    output::print_error(&message, cli.color);
                    return ExitCode::from(1);
                }
            };
            run::run(&file, decimals, precision, out.as_deref(), resume, executor.as_ref(), cli.color)
        }
        Command::Ir { file, name, grad, jvp, opt, kernels, batch } => {
            let derivative = match (grad, jvp) {
                (true, _) => Derivative::Reverse,
                (false, true) => Derivative::Forward,
                (false, false) => Derivative::None,
            };
            let options = ir_cmd::Options { derivative, opt, kernels: kernels.then_some(batch) };
            ir_cmd::run(&file, name.as_deref(), &options, cli.color)
        }
        Command::Trace { file, name, at, mode, wrt, format, decimals } => {
            let mode = mode.as_deref().and_then(nnc_compiler::ir::mode_of);
            let options = trace_cmd::Options { at: &at, mode, wrt: wrt.as_deref(), format, decimals };
            trace_cmd::run(&file, &name, &options, cli.color)
        }
        Command::Graph { file, name, grad, opt, format, output } => {
            let options = graph_cmd::Options { grad, opt, format, output: output.as_deref() };
            graph_cmd::run(&file, name.as_deref(), &options, cli.color)
        }
        Command::Bench { file, executor, threads, batch, seconds, profile } => {
            let executor = match make_measured_executor(executor, threads, profile) {
                Ok(executor) => executor,
                Err(message) => {
                    output::print_error(&message, cli.color);
                    return ExitCode::from(1);
                }
            };
            let options = bench_cmd::Options { executor: executor.as_ref(), batch, seconds, started, profile };
            bench_cmd::run(&file, &options, cli.color)
        }
        Command::Predict { file, model, weights, input, output, args } => {
            interchange_cmd::run_predict(&file, model.as_deref(), &weights, &input, &output, &args, cli.color)
        }
        Command::Export { file, model, onnx, weights, args, grad, loss } => {
            let options = export_cmd::Options {
                onnx: &onnx,
                weights: weights.as_deref(),
                args: &args,
                grad,
                loss: loss.as_deref(),
            };
            export_cmd::run(&file, &model, &options, cli.color)
        }
        Command::Grad { file, model, weights, input, labels, out, loss, args } => {
            interchange_cmd::run_grad(&file, &model, &weights, &input, &labels, &out, loss.as_deref(), &args, cli.color)
        }
        Command::Check { files, format } => check::run(&files, format, cli.color),
        Command::Fmt { files, check } => fmt_cmd::run(&files, check, cli.color),
        Command::Summary { file, model, batch, format } => {
            summary::run(&file, model.as_deref(), batch, format, cli.color)
        }
        Command::Explain { code } => check::explain(code.as_deref()),
        Command::Lsp { stdio: _ } => lsp_cmd::run(),
    }
}

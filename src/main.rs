//! The `nnc` command line: one module per subcommand; the only place with real I/O.

mod check;
mod output;
mod run;
mod summary;

use clap::{Parser, Subcommand};
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

#[derive(Subcommand)]
enum Command {
    /// Run a file's statements: `eval`, `grad`, `jvp`, `jacobian`, `hessian` (and, later, `train`).
    Run {
        /// The `.nn` file.
        file: PathBuf,
        /// Decimals to print.
        #[arg(long, default_value_t = 3)]
        decimals: usize,
        /// Compute in f32 instead of f64.
        #[arg(long)]
        f32: bool,
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
    /// Explain a diagnostic code, such as E0003, with an example.
    Explain {
        /// The code to explain; without it, every code is listed.
        code: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { file, decimals, f32 } => {
            let precision = if f32 { nnc_compiler::ir::Precision::F32 } else { nnc_compiler::ir::Precision::F64 };
            run::run(&file, decimals, precision, cli.color)
        }
        Command::Check { files, format } => check::run(&files, format, cli.color),
        Command::Summary { file, model, batch, format } => {
            summary::run(&file, model.as_deref(), batch, format, cli.color)
        }
        Command::Explain { code } => check::explain(code.as_deref()),
    }
}

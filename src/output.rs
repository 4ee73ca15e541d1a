//! Terminal output: colour choice and rendering of diagnostics to stderr.

use nnc_grammar::{Diagnostic, render};
use std::io::{IsTerminal, Write};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when writing to a terminal.
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour what goes to stderr.
    pub fn for_stderr(self) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }
}

/// Writes `diagnostics` about `name` to stderr, rendered with the source lines.
pub fn print_diagnostics(diagnostics: &[Diagnostic], name: &str, source: &str, color: ColorChoice) {
    if diagnostics.is_empty() {
        return;
    }
    let text = render(diagnostics, name, source, color.for_stderr());
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
    let _ = stderr.flush();
}

/// Prints a one-line error about something outside any source file (a missing file, say).
pub fn print_error(message: &str, color: ColorChoice) {
    if color.for_stderr() {
        eprintln!("\x1b[31;1merror\x1b[0m: {message}");
    } else {
        eprintln!("error: {message}");
    }
}

/// The end of an error about the unknown name `wanted`: the closest of the `known` names
/// (`; did you mean `Mlp`?`), or else all of them, called `what` (`models`).
pub fn did_you_mean(wanted: &str, known: &[&str], what: &str) -> String {
    match nnc_grammar::closest(wanted, known.iter().copied()) {
        Some(close) => format!("; did you mean `{close}`?"),
        None if known.is_empty() => format!("; it defines no {what}"),
        None => format!("; its {what} are {}", known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")),
    }
}

/// Reads and analyses a `.nn` file; says why when it cannot be read (exit code 2).
pub fn analyze_path(
    path: &std::path::Path,
    color: ColorChoice,
) -> Result<nnc_compiler::Analysis, std::process::ExitCode> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(nnc_compiler::analyze_bytes(&bytes)),
        Err(error) => {
            print_error(&format!("cannot read `{}`: {error}", path.display()), color);
            Err(std::process::ExitCode::from(2))
        }
    }
}

/// Like `analyze_path`, printing the file's diagnostics; stops (exit code 1) when one is an
/// error, since nothing should run from a file with errors.
pub fn analyze_checked(
    path: &std::path::Path,
    color: ColorChoice,
) -> Result<nnc_compiler::Analysis, std::process::ExitCode> {
    let analysis = analyze_path(path, color)?;
    print_diagnostics(&analysis.diagnostics, &path.display().to_string(), &analysis.text, color);
    if analysis.has_errors() {
        return Err(std::process::ExitCode::from(1));
    }
    Ok(analysis)
}

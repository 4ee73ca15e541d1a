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

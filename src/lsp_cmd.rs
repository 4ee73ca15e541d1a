//! `nnc lsp`: the language server on standard input and output. Started from a terminal,
//! where no editor is there to speak the protocol, it says what it is instead.

use std::io::IsTerminal;
use std::process::ExitCode;

const USAGE: &str = "\
nnc lsp is the language server of nnc: it speaks the Language Server Protocol on standard
input and output, and editors start it for .nn files. It shows diagnostics as you type,
each layer's output shape and parameter count as inlay hints, hover with the arithmetic
behind a shape, completion, go to definition, rename and an outline.

To use it, tell your editor to run `nnc lsp` for files ending in .nn:
  VS Code:  the extension in editors/vscode starts it.
  Neovim:   vim.lsp.start({ name = 'nnc', cmd = { 'nnc', 'lsp' } })
  Helix:    [language-server.nnc] command = \"nnc\", args = [\"lsp\"]

Inlay hints show shapes, parameter counts or both: the setting `nnc.inlayHints`
(\"both\", \"shapes\", \"params\" or \"none\"), also accepted as initializationOptions.
";

pub fn run() -> ExitCode {
    if std::io::stdin().is_terminal() {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    }
    match nnc_lsp::run_stdio() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("nnc lsp: {error}");
            ExitCode::FAILURE
        }
    }
}

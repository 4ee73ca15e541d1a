//! One call from source to everything the front end knows about it: the tree, the names,
//! the shapes, and every diagnostic, sorted. No I/O: the caller reads the file.

use crate::resolve::{Resolution, resolve};
use crate::shapes::{ShapeAnalysis, analyze_shapes};
use nnc_grammar::{Diagnostic, File, decode, parse, sort_diagnostics};

/// What the front end found in one source text.
#[derive(Clone, Debug)]
pub struct Analysis {
    /// The text that was analysed; invalid UTF-8 bytes are replaced by spaces.
    pub text: String,
    pub file: File,
    pub resolution: Resolution,
    /// Shapes, parameter counts and costs of every model, function and query.
    pub shapes: ShapeAnalysis,
    /// Every diagnostic, syntax and names, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Analysis {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Analyses a source text.
pub fn analyze(text: &str) -> Analysis {
    analyze_decoded(text.to_string(), Vec::new())
}

/// Analyses the bytes of a file, reporting bytes that are not UTF-8.
pub fn analyze_bytes(bytes: &[u8]) -> Analysis {
    let (text, diagnostics) = decode(bytes);
    analyze_decoded(text, diagnostics)
}

fn analyze_decoded(text: String, mut diagnostics: Vec<Diagnostic>) -> Analysis {
    let parsed = parse(&text);
    diagnostics.extend(parsed.diagnostics);
    let resolution = resolve(&parsed.file);
    diagnostics.extend(resolution.diagnostics.iter().cloned());
    let shapes = analyze_shapes(&parsed.file, &text);
    diagnostics.extend(shapes.diagnostics.iter().cloned());
    sort_diagnostics(&mut diagnostics);
    Analysis { text, file: parsed.file, resolution, shapes, diagnostics }
}

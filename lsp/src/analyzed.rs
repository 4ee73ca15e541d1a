//! One version of a document, analysed: what every feature of the server reads.

use crate::document::Lines;
use nnc_compiler::Analysis;
use nnc_grammar::Span;
use tower_lsp_server::ls_types::{Position, Range};

/// The front end's analysis of a text, with the line table that converts its byte spans to
/// LSP positions.
#[derive(Clone, Debug)]
pub struct Analyzed {
    pub analysis: Analysis,
    pub lines: Lines,
}

impl Analyzed {
    /// Analyses `text`: parse, names and shapes, as `nnc check` does, and nothing more.
    pub fn new(text: &str) -> Analyzed {
        let analysis = nnc_compiler::analyze(text);
        let lines = Lines::new(&analysis.text);
        Analyzed { analysis, lines }
    }

    pub fn text(&self) -> &str {
        &self.analysis.text
    }

    pub fn range(&self, span: Span) -> Range {
        self.lines.range(self.text(), span)
    }

    pub fn position(&self, offset: usize) -> Position {
        self.lines.position(self.text(), offset)
    }

    pub fn offset(&self, position: Position) -> usize {
        self.lines.offset(self.text(), position)
    }

    pub fn span(&self, range: Range) -> Span {
        self.lines.span(self.text(), range)
    }
}

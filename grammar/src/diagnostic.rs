//! Diagnostics as plain data: a stable code, a message, labelled spans, notes and help.
//!
//! Every stage of nnc reports problems as [`Diagnostic`] values. The terminal renders them
//! with ariadne (see `render`), the language server converts them to LSP diagnostics, and
//! `nnc check --format json` prints them for tools.

use crate::codes::Code;
use crate::span::Span;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A span with a message, shown underlined in the source.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    /// Where the problem is; its message says what is wrong there.
    pub primary: Label,
    /// Other places that explain the problem ("the `(` opened here").
    pub secondary: Vec<Label>,
    pub notes: Vec<String>,
    /// A suggested fix, in words ("did you mean `linear`?").
    pub help: Option<String>,
}

impl Diagnostic {
    /// A new diagnostic with the severity its code carries.
    pub fn new(code: Code, message: impl Into<String>, span: Span, label: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: code.severity(),
            message: message.into(),
            primary: Label { span, message: label.into() },
            secondary: Vec::new(),
            notes: Vec::new(),
            help: None,
        }
    }

    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Self {
        self.secondary.push(Label { span, message: message.into() });
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_optional_help(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    pub fn span(&self) -> Span {
        self.primary.span
    }
}

/// Sorts diagnostics by position, then code, so output does not depend on which stage
/// found a problem first.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by_key(|d| (d.span().start, d.span().end, d.code));
}

//! The front end of nnc: lexer, layout, recovering parser, syntax tree, diagnostics and
//! the source formatter.
//!
//! [`parse`] never fails: it returns a tree for any input, with every problem found as a
//! [`Diagnostic`].

mod ast;
mod codes;
mod diagnostic;
mod format;
mod layout;
mod lexer;
mod parser;
mod render;
mod source;
mod span;
mod suggest;

pub use ast::*;
pub use codes::Code;
pub use diagnostic::{Diagnostic, Label, Severity, sort as sort_diagnostics};
pub use format::format_source;
pub use layout::MAX_NESTING;
pub use lexer::{KEYWORDS, Token, lex};
pub use render::{JsonDiagnostic, render, to_json};
pub use source::decode;
pub use span::{LineIndex, Position, Span};
pub use suggest::closest;

/// The result of parsing one source text.
#[derive(Clone, Debug)]
pub struct Parsed {
    pub file: File,
    /// Syntax problems, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses `source` into a syntax tree and its diagnostics. Never fails and never panics.
pub fn parse(source: &str) -> Parsed {
    let tokens = lexer::lex(source);
    let (laid_out, mut diagnostics) = layout::layout(&tokens, source);
    let (file, parse_diagnostics) = parser::parse_tokens(&laid_out, source.len());
    // A syntax error right after an invalid character is that character's echo: the
    // character was reported and dropped, so the error says nothing new.
    let after_invalid = |d: &Diagnostic| {
        let before = tokens.iter().rev().find(|(token, span)| span.end <= d.span().start && *token != Token::Newline);
        d.code == Code::UnexpectedToken && matches!(before, Some((Token::Invalid(_), _)))
    };
    diagnostics.extend(parse_diagnostics.into_iter().filter(|d| !after_invalid(d)));
    diagnostic::sort(&mut diagnostics);
    Parsed { file, diagnostics }
}

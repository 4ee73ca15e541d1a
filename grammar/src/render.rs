//! Rendering diagnostics for the terminal with ariadne, and as JSON for tools.

use crate::diagnostic::{Diagnostic, Severity};
use crate::span::{LineIndex, Span};
use ariadne::{Color, Config, IndexType, Label, Report, ReportKind, Source};
use serde::Serialize;

/// Renders `diagnostics` about the file `name` with text `source`, as ariadne draws them:
/// the code and message, then the source lines with the labelled spans underlined.
pub fn render(diagnostics: &[Diagnostic], name: &str, source: &str, color: bool) -> String {
    let mut out = Vec::new();
    let index = LineIndex::new(source);
    for diagnostic in diagnostics {
        if touches_long_line(diagnostic, source, &index) {
            out.extend_from_slice(render_compact(diagnostic, name, source, &index).as_bytes());
            continue;
        }
        let kind = match diagnostic.severity {
            Severity::Error => ReportKind::Error,
            Severity::Warning => ReportKind::Warning,
        };
        let (primary_color, secondary_color) = match diagnostic.severity {
            Severity::Error => (Color::Red, Color::Blue),
            Severity::Warning => (Color::Yellow, Color::Blue),
        };
        let primary = visible(diagnostic.primary.span, source);
        let mut report = Report::build(kind, (name, primary.range()))
            .with_config(Config::default().with_color(color).with_index_type(IndexType::Byte))
            .with_code(diagnostic.code)
            .with_message(&diagnostic.message)
            .with_label(
                Label::new((name, primary.range()))
                    .with_message(&diagnostic.primary.message)
                    .with_color(primary_color)
                    .with_order(0),
            );
        for (order, label) in diagnostic.secondary.iter().enumerate() {
            report = report.with_label(
                Label::new((name, visible(label.span, source).range()))
                    .with_message(&label.message)
                    .with_color(secondary_color)
                    .with_order(order as i32 + 1),
            );
        }
        for note in &diagnostic.notes {
            report = report.with_note(note);
        }
        if let Some(help) = &diagnostic.help {
            report = report.with_help(help);
        }
        // Writing into a Vec cannot fail.
        let _ = report.finish().write((name, Source::from(source)), &mut out);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Lines longer than this are not shown: a generated file with one 200,000-character line
/// would otherwise flood the terminal.
const MAX_SHOWN_LINE: usize = 1000;

fn touches_long_line(diagnostic: &Diagnostic, source: &str, index: &LineIndex) -> bool {
    std::iter::once(&diagnostic.primary).chain(&diagnostic.secondary).any(|label| {
        let line = index.position(source, label.span.start).line;
        index.line_start(line + 1) - index.line_start(line) > MAX_SHOWN_LINE
    })
}

/// The diagnostic without source lines: positions and messages only.
fn render_compact(diagnostic: &Diagnostic, name: &str, source: &str, index: &LineIndex) -> String {
    let at = |offset| {
        let p = index.position(source, offset);
        format!("{}:{}", p.line + 1, p.char_column + 1)
    };
    let kind = match diagnostic.severity {
        Severity::Error => "Error",
        Severity::Warning => "Warning",
    };
    let mut out = format!("[{}] {kind}: {}\n", diagnostic.code, diagnostic.message);
    out.push_str(&format!("   ╭─[ {name}:{} ]\n", at(diagnostic.primary.span.start)));
    out.push_str(&format!("   │ (the line is longer than {MAX_SHOWN_LINE} characters and is not shown)\n"));
    for label in std::iter::once(&diagnostic.primary).chain(&diagnostic.secondary) {
        out.push_str(&format!("   │ {}: {}\n", at(label.span.start), label.message));
    }
    for note in &diagnostic.notes {
        out.push_str(&format!("   │ Note: {note}\n"));
    }
    if let Some(help) = &diagnostic.help {
        out.push_str(&format!("   │ Help: {help}\n"));
    }
    out.push_str("───╯\n");
    out
}

/// A span that ariadne can underline: empty spans grow to cover the character they point
/// at (or the last character, at the end of the file).
fn visible(span: Span, source: &str) -> Span {
    if !span.is_empty() || source.is_empty() {
        return span;
    }
    let mut start = span.start.min(source.len());
    if start == source.len() {
        start = source[..start].char_indices().next_back().map_or(0, |(i, _)| i);
    }
    let end = source[start..].chars().next().map_or(start, |c| start + c.len_utf8());
    Span::new(start, end)
}

/// A diagnostic as `nnc check --format json` prints it: positions are 1-based lines and
/// columns counted in characters, with the byte offsets beside them.
#[derive(Serialize)]
pub struct JsonDiagnostic<'a> {
    pub file: &'a str,
    pub code: &'static str,
    pub severity: Severity,
    pub message: &'a str,
    pub range: JsonRange,
    pub labels: Vec<JsonLabel<'a>>,
    pub notes: &'a [String],
    pub help: Option<&'a str>,
}

#[derive(Serialize)]
pub struct JsonLabel<'a> {
    pub message: &'a str,
    pub primary: bool,
    pub range: JsonRange,
}

#[derive(Serialize)]
pub struct JsonRange {
    pub start: JsonPosition,
    pub end: JsonPosition,
    pub byte_start: usize,
    pub byte_end: usize,
}

#[derive(Serialize)]
pub struct JsonPosition {
    pub line: usize,
    pub column: usize,
}

fn json_range(span: Span, source: &str, index: &LineIndex) -> JsonRange {
    let position = |offset| {
        let p = index.position(source, offset);
        JsonPosition { line: p.line + 1, column: p.char_column + 1 }
    };
    JsonRange { start: position(span.start), end: position(span.end), byte_start: span.start, byte_end: span.end }
}

/// The JSON form of `diagnostics` about the file `name` with text `source`.
pub fn to_json<'a>(diagnostics: &'a [Diagnostic], name: &'a str, source: &str) -> Vec<JsonDiagnostic<'a>> {
    let index = LineIndex::new(source);
    diagnostics
        .iter()
        .map(|d| JsonDiagnostic {
            file: name,
            code: d.code.as_str(),
            severity: d.severity,
            message: &d.message,
            range: json_range(d.primary.span, source, &index),
            labels: std::iter::once((&d.primary, true))
                .chain(d.secondary.iter().map(|l| (l, false)))
                .map(|(label, primary)| JsonLabel {
                    message: &label.message,
                    primary,
                    range: json_range(label.span, source, &index),
                })
                .collect(),
            notes: &d.notes,
            help: d.help.as_deref(),
        })
        .collect()
}

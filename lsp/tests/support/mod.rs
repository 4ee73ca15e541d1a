//! Fixtures for the feature tests: `$0` marks the cursor, and a comment line `//   ^ label`
//! expects an inlay hint `label` on the line above, at the caret's column.
#![allow(dead_code)] // Each test file uses a part of the helpers.

pub mod client;

use nnc_lsp::Analyzed;
use nnc_lsp::ls_types::{InlayHint, InlayHintLabel};

/// The text without its `$0`, and the byte offset of the cursor.
pub fn cursor(fixture: &str) -> (String, usize) {
    let offset = fixture.find("$0").expect("the fixture marks the cursor with $0");
    (fixture.replacen("$0", "", 1), offset)
}

/// The analysed text and the cursor of a fixture.
pub fn analyzed_at(fixture: &str) -> (Analyzed, usize) {
    let (text, offset) = cursor(fixture);
    (Analyzed::new(&text), offset)
}

/// The hints that the `//^` lines of `text` expect: `(offset, label)`.
pub fn expected_hints(text: &str) -> Vec<(usize, String)> {
    let mut expected = Vec::new();
    let mut line_start = 0;
    let mut previous_start: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("//").filter(|rest| rest.trim_start().starts_with('^')) {
            let above = previous_start.expect("a hint annotation needs a line above it");
            let caret_column = line.chars().count() - rest.chars().count() + (rest.len() - rest.trim_start().len());
            let offset = text[above..].char_indices().nth(caret_column).map_or(text.len(), |(i, _)| above + i);
            expected.push((offset, rest.trim_start()[1..].trim().to_string()));
        } else {
            previous_start = Some(line_start);
        }
        line_start += line.len();
    }
    expected
}

pub fn label(hint: &InlayHint) -> String {
    match &hint.label {
        InlayHintLabel::String(text) => text.clone(),
        InlayHintLabel::LabelParts(parts) => parts.iter().map(|p| p.value.as_str()).collect(),
    }
}

/// The text with every hint written into it as `⟨label⟩`.
pub fn render_hints(analyzed: &Analyzed, hints: &[InlayHint]) -> String {
    let mut out = analyzed.text().to_string();
    let mut placed: Vec<(usize, String)> = hints.iter().map(|h| (analyzed.offset(h.position), label(h))).collect();
    placed.sort_by_key(|(offset, _)| std::cmp::Reverse(*offset));
    for (offset, label) in placed {
        out.insert_str(offset, &format!("⟨{label}⟩"));
    }
    out
}

pub fn example(name: &str) -> String {
    let path = format!("{}/../examples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

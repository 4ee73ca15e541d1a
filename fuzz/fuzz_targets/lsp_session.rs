//! Fuzz target: what the language server runs on each change. The input is a text and a
//! list of edits at arbitrary LSP positions; after each edit the document is analysed and
//! every feature runs at the edit's position. Nothing may panic, and every position the
//! features return must be a place in the document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nnc_lsp::ls_types::{Position, Range, TextDocumentContentChangeEvent, Uri};
use nnc_lsp::{Analyzed, Document, HintMode};
use std::str::FromStr;

/// Reads `[length: u8][text bytes]`, lossily decoded.
fn take_text<'a>(bytes: &mut &'a [u8]) -> Option<String> {
    let (&length, rest) = bytes.split_first()?;
    let length = usize::from(length).min(rest.len());
    let (text, rest) = rest.split_at(length);
    *bytes = rest;
    Some(String::from_utf8_lossy(text).into_owned())
}

fn check_position(analyzed: &Analyzed, position: Position) {
    let offset = analyzed.offset(position);
    assert_eq!(analyzed.position(offset), position, "{position:?} is not a place in the document");
}

fuzz_target!(|bytes: &[u8]| {
    let mut bytes = bytes;
    let Some(text) = take_text(&mut bytes) else { return };
    let uri = Uri::from_str("file:///fuzz.nn").unwrap();
    let mut document = Document::new(text, 0);
    let mut version = 0;
    while let [l1, c1, l2, c2, rest @ ..] = bytes {
        let range = Range::new(Position::new(u32::from(*l1), u32::from(*c1)), Position::new(u32::from(*l2), u32::from(*c2)));
        bytes = rest;
        let Some(inserted) = take_text(&mut bytes) else { break };
        version += 1;
        let change = TextDocumentContentChangeEvent { range: Some(range), range_length: None, text: inserted };
        document.apply(version, &[change]);
        let analyzed = Analyzed::new(document.text());
        for diagnostic in nnc_lsp::diagnostics(&analyzed, &uri, true) {
            check_position(&analyzed, diagnostic.range.start);
            check_position(&analyzed, diagnostic.range.end);
        }
        for hint in nnc_lsp::inlay_hints(&analyzed, None, HintMode::Both) {
            check_position(&analyzed, hint.position);
        }
        let _ = nnc_lsp::document_symbols(&analyzed);
        let _ = nnc_lsp::folding_ranges(&analyzed);
        let _ = nnc_lsp::semantic_tokens(&analyzed, None);
        let _ = nnc_lsp::code_lenses(&analyzed, &uri);
        let at = analyzed.offset(range.start);
        let _ = nnc_lsp::hover(&analyzed, at);
        let _ = nnc_lsp::completions(&analyzed, at);
        let _ = nnc_lsp::signature_help(&analyzed, at);
        let _ = nnc_lsp::references(&analyzed, at, true);
        let _ = nnc_lsp::rename(&analyzed, at, "renamed");
    }
});

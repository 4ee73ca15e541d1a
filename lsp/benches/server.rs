//! What the language server does on each keystroke in a 2,000-line file: apply the edit,
//! analyse the text and convert its diagnostics; and what it does for the editor's view:
//! inlay hints and semantic tokens. Run with `cargo bench -p nnc-lsp`.

use divan::{Bencher, black_box};
use nnc_lsp::ls_types::{Position, Range, TextDocumentContentChangeEvent, Uri};
use nnc_lsp::{Analyzed, Document, HintMode};
use std::str::FromStr;

fn main() {
    divan::main();
}

/// A realistic file of about `lines` lines: MLPs, CNNs and residual blocks with docs (the
/// same as `benches/analysis.rs` of the workspace).
fn source(lines: usize) -> String {
    let mut out = String::new();
    let mut n = 0;
    while out.lines().count() < lines {
        out.push_str(&format!(
            "/// Block {n}.\nmodel Mlp{n}(hidden = {h}, classes = 10) {{\n    input [B, 64]\n    linear(hidden)\n    relu\n    dropout(0.1)\n    linear(classes)\n}}\n\n\
             model Cnn{n} {{\n    input [B, 1, 28, 28]\n    conv2d(8, kernel = 3, pad = 1)\n    relu\n    maxpool(2)\n    conv2d(16, kernel = 3, pad = 1)\n    relu\n    maxpool(2)\n    flatten\n    linear(10)\n}}\n\n\
             model Res{n}(width = 32) {{\n    input x: [B, width]\n    let h = x |> linear(width) |> relu\n    x + linear(h, width)\n}}\n\n\
             fn f{n}(x1, x2) = ln(x1) + x1 * x2 - sin(x2)\n\n",
            h = 16 + n % 48
        ));
        n += 1;
    }
    out
}

/// Typing one character in the middle of the file, as `didChange` with a range: the edit,
/// the whole analysis and the diagnostics as the client receives them.
#[divan::bench(args = [2000])]
fn diagnostics_after_edit(bencher: Bencher, lines: usize) {
    let document = Document::new(source(lines), 1);
    let uri = Uri::from_str("file:///bench.nn").unwrap();
    // Inside `linear(hidden)` of a model in the middle: `linear(hidden2)` is an error.
    let line = (lines / 2 / 29 * 29 + 3) as u32;
    let at = Position::new(line, 17);
    let change =
        TextDocumentContentChangeEvent { range: Some(Range::new(at, at)), range_length: None, text: "2".into() };
    bencher.with_inputs(|| document.clone()).bench_local_values(|mut document| {
        document.apply(2, std::slice::from_ref(&change));
        let analyzed = Analyzed::new(document.text());
        let diagnostics = nnc_lsp::diagnostics(&analyzed, &uri, true);
        assert_eq!(diagnostics.len(), 1);
        diagnostics
    });
}

/// Inlay hints for the whole file, and for one screen of it as editors ask.
#[divan::bench(args = [2000])]
fn inlay_hints(bencher: Bencher, lines: usize) {
    let analyzed = Analyzed::new(&source(lines));
    bencher.bench(|| nnc_lsp::inlay_hints(black_box(&analyzed), None, HintMode::Both));
}

#[divan::bench(args = [2000])]
fn inlay_hints_one_screen(bencher: Bencher, lines: usize) {
    let analyzed = Analyzed::new(&source(lines));
    let screen = analyzed.span(Range::new(Position::new(1000, 0), Position::new(1060, 0)));
    bencher.bench(|| nnc_lsp::inlay_hints(black_box(&analyzed), Some(screen), HintMode::Both));
}

#[divan::bench(args = [2000])]
fn semantic_tokens(bencher: Bencher, lines: usize) {
    let analyzed = Analyzed::new(&source(lines));
    bencher.bench(|| nnc_lsp::semantic_tokens(black_box(&analyzed), None));
}

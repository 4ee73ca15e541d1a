//! Fuzz target: the whole front end (decode, parse, resolve, shapes) and the rendering of
//! its diagnostics, on arbitrary bytes. It must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let analysis = nnc_compiler::analyze_bytes(bytes);
    for diagnostic in &analysis.diagnostics {
        assert!(diagnostic.span().end <= analysis.text.len());
    }
    let _ = nnc_grammar::render(&analysis.diagnostics, "fuzz.nn", &analysis.text, false);
});

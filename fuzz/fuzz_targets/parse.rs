//! Fuzz target: the whole front end (decode, parse, resolve, shapes), the rendering of its
//! diagnostics and the formatter, on arbitrary bytes. It must never panic, every span it
//! reports must lie inside the text, and a formatted text must parse and format to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    // `analyze_bytes` decodes the bytes itself, reporting invalid UTF-8 as diagnostics.
    let analysis = nnc_compiler::analyze_bytes(bytes);
    let text = &analysis.text;
    assert_eq!(text.len(), bytes.len(), "invalid bytes must keep their offsets");
    for diagnostic in &analysis.diagnostics {
        for label in std::iter::once(&diagnostic.primary).chain(&diagnostic.secondary) {
            let span = label.span;
            assert!(span.start <= span.end && span.end <= text.len(), "{diagnostic:?}");
            assert!(text.is_char_boundary(span.start) && text.is_char_boundary(span.end), "{diagnostic:?}");
        }
    }
    let _ = nnc_grammar::render(&analysis.diagnostics, "fuzz.nn", text, false);
    let _ = nnc_grammar::to_json(&analysis.diagnostics, "fuzz.nn", text);
    if let Some(formatted) = nnc_grammar::format_source(text) {
        assert!(!nnc_grammar::parse(&formatted).diagnostics.iter().any(nnc_grammar::Diagnostic::is_error));
        assert_eq!(nnc_grammar::format_source(&formatted).as_deref(), Some(formatted.as_str()), "not idempotent");
    }
});

//! The front end never fails: random bytes and random token sequences always give a tree
//! and diagnostics whose spans lie inside the input, and rendering them never panics.

use nnc_grammar::{decode, parse, render};
use proptest::prelude::*;

/// Every `{"start": a, "end": b}` object in the serialised tree is a span inside the text.
fn check_spans(value: &serde_json::Value, len: usize) -> Result<(), TestCaseError> {
    match value {
        serde_json::Value::Object(map) => {
            if let (Some(start), Some(end)) =
                (map.get("start").and_then(|v| v.as_u64()), map.get("end").and_then(|v| v.as_u64()))
            {
                prop_assert!(start <= end && end as usize <= len, "span {start}..{end} outside 0..{len}");
            }
            for child in map.values() {
                check_spans(child, len)?;
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                check_spans(item, len)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn check(text: &str) -> Result<(), TestCaseError> {
    let parsed = parse(text);
    let tree = serde_json::to_value(&parsed.file).expect("the tree serialises");
    check_spans(&tree, text.len())?;
    for diagnostic in &parsed.diagnostics {
        for label in std::iter::once(&diagnostic.primary).chain(&diagnostic.secondary) {
            prop_assert!(label.span.start <= label.span.end && label.span.end <= text.len(), "{diagnostic:?}");
        }
    }
    let _ = render(&parsed.diagnostics, "fuzz.nn", text, false);
    Ok(())
}

const VOCABULARY: &[&str] = &[
    "fn", "model", "layer", "input", "param", "let", "eval", "grad", "jvp", "jacobian", "hessian", "wrt", "along",
    "train", "on", "true", "false", "x", "B", "linear", "relu", "conv2d", "flatten", "größe", "0", "1", "28", "1e-3",
    "2.5", "1_000", "\"s\"", "\"open", "'q'", "(", ")", "[", "]", "{", "}", ",", ";", ":", "=", "+", "-", "*", "/",
    "^", "^T", "@", "|>", "->", "\n", "\r\n", "\t", "//c\n", "///d\n", "$", "#", "λ", "\u{0}",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let (text, _) = decode(&bytes);
        prop_assert_eq!(text.len(), bytes.len());
        check(&text)?;
    }

    #[test]
    fn random_tokens(tokens in prop::collection::vec(prop::sample::select(VOCABULARY), 0..300)) {
        check(&tokens.join(" "))?;
        check(&tokens.concat())?;
    }
}

#[test]
fn generated_programs_with_deep_structure() {
    // Alternating brackets of every kind, unbalanced both ways.
    for n in [10, 300, 5000] {
        check(&"([{".repeat(n)).unwrap();
        check(&"}])".repeat(n)).unwrap();
        check(&format!("fn f(x) = {}x", "-(".repeat(n))).unwrap();
        check(&format!("model M {{\n{}\n}}", "    relu\n".repeat(n))).unwrap();
    }
}

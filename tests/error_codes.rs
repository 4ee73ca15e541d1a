//! Every diagnostic code is documented in `docs/errors.md`, and every code's example
//! really produces that code.
//!
//! The document is generated from the catalogue in `nnc_grammar::Code`, with each example
//! and the diagnostics nnc prints for it. Run with `NNC_BLESS=1` to rewrite it after a
//! change, then read the difference.

use nnc_compiler::analyze_bytes;
use nnc_grammar::{Code, render};
use std::path::Path;

fn document() -> String {
    let mut out = String::new();
    out.push_str("# Diagnostic codes\n\n");
    out.push_str(
        "Every diagnostic nnc prints has a stable code. `nnc explain CODE` prints the entry below in the \
         terminal. Codes `E00xx` come from reading the text (lexer and parser), `E01xx` from resolving names.\n\n",
    );
    out.push_str(
        "This file is generated from the compiler's catalogue by `NNC_BLESS=1 cargo test --test error_codes`.\n\n",
    );
    out.push_str("| code | meaning |\n|---|---|\n");
    for code in Code::ALL {
        out.push_str(&format!("| [{0}](#{1}) | {2} |\n", code.as_str(), code.as_str().to_lowercase(), code.title()));
    }
    for code in Code::ALL {
        let example = code.example();
        let analysis = analyze_bytes(&example);
        let shown = String::from_utf8_lossy(&example).replace('\u{FFFD}', "\\xFF");
        let shown = if shown.len() > 400 { format!("{}...\n", &shown[..120]) } else { shown };
        out.push_str(&format!("\n## {}\n\n{}.\n\n", code.as_str(), capitalise(code.title())));
        out.push_str(&format!("```nn\n{shown}```\n\n"));
        if analysis.text.len() > 400 {
            out.push_str("(The example is a line of 300 opening brackets, `x`, and 300 closing brackets.)\n\n");
            let first = analysis.diagnostics.iter().find(|d| d.code == *code).expect("checked by the test");
            out.push_str(&format!(
                "nnc reports: `{}`, help: {}\n",
                first.message,
                first.help.as_deref().unwrap_or("-")
            ));
        } else {
            let rendered = render(&analysis.diagnostics, "example.nn", &analysis.text, false);
            out.push_str(&format!("```text\n{rendered}```\n"));
        }
    }
    out
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

#[test]
fn every_example_produces_its_code() {
    for code in Code::ALL {
        let analysis = analyze_bytes(&code.example());
        assert!(
            analysis.diagnostics.iter().any(|d| d.code == *code),
            "the example of {code} gives {:?}",
            analysis.diagnostics.iter().map(|d| d.code.as_str()).collect::<Vec<_>>()
        );
    }
}

#[test]
fn docs_errors_md_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/errors.md");
    let expected = document();
    if std::env::var_os("NNC_BLESS").is_some() {
        std::fs::write(&path, &expected).expect("docs/errors.md is writable");
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/errors.md is out of date with the diagnostic catalogue; run `NNC_BLESS=1 cargo test --test error_codes` and review the change"
    );
}

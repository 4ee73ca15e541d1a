//! Shape errors, one file each in `tests/shape_errors/`: each file's rendered diagnostics
//! are pinned by an insta snapshot, so adding a case is adding a file. Each file opens with
//! `// expect: E0205` (or several codes, `// expect: E0201, E0206`), the codes its name
//! promises, and must give exactly those, so that a snapshot cannot pin a diagnostic the
//! case was not written for.

mod common;

use nnc_compiler::analyze_bytes;
use nnc_grammar::render;
use std::collections::BTreeSet;

#[test]
fn shape_error_corpus() {
    insta::glob!("shape_errors/*.nn", |path| {
        let bytes = std::fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let analysis = analyze_bytes(&bytes);
        assert!(!analysis.diagnostics.is_empty(), "{name} gives no diagnostic");
        for diagnostic in &analysis.diagnostics {
            assert!(diagnostic.span().end <= analysis.text.len(), "{name}: span outside the text");
            let code = diagnostic.code.as_str();
            assert!(
                code.starts_with("E02") || code.starts_with("W02") || code == "E0114",
                "{name}: {code} is not a shape diagnostic"
            );
        }
        insta::assert_snapshot!(render(&analysis.diagnostics, &name, &analysis.text, false));
    });
}

#[test]
fn two_independent_shape_errors_are_both_reported() {
    let source = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/shape_errors/two_shape_errors.nn")).unwrap();
    let analysis = analyze_bytes(&source);
    let codes: Vec<&str> = analysis.diagnostics.iter().map(|d| d.code.as_str()).collect();
    assert_eq!(codes, ["E0201", "E0206"]);
}

#[test]
fn every_file_gives_the_codes_its_header_names() {
    let files = common::files_with_extension("tests/shape_errors", "nn");
    assert!(files.len() >= 20, "only {} files in tests/shape_errors", files.len());
    let mut wrong = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let Some(header) = text.lines().next().and_then(|line| line.strip_prefix("// expect:")) else {
            wrong.push(format!("{name}: the first line is not `// expect: CODE`"));
            continue;
        };
        let expected: BTreeSet<&str> = header.split([',', ' ']).filter(|code| !code.is_empty()).collect();
        let analysis = analyze_bytes(&bytes);
        let given: BTreeSet<&str> = analysis.diagnostics.iter().map(|d| d.code.as_str()).collect();
        if expected.is_empty() || given != expected {
            wrong.push(format!("{name}: the header expects {expected:?}, but the file gives {given:?}"));
        }
    }
    assert!(wrong.is_empty(), "shape-error files whose diagnostics differ from their header:\n{}", wrong.join("\n"));
}

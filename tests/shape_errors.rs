//! Shape errors, one file each in `tests/shape_errors/`: each file's rendered diagnostics
//! are pinned by an insta snapshot, so adding a case is adding a file.

use nnc_compiler::analyze_bytes;
use nnc_grammar::render;

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

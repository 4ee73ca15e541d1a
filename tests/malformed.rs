//! The malformed-input corpus: every file in `tests/malformed/` is a small program with a
//! mistake (or, for two files, none). Its rendered diagnostics are pinned by an insta
//! snapshot, and the real binary must answer it with located diagnostics and exit 1, never
//! a panic. Adding a case is adding a file.

use nnc_compiler::analyze_bytes;
use nnc_grammar::render;
use std::path::Path;
use std::process::Command;

/// Files that are not malformed at all: nnc must accept them silently.
const CLEAN: &[&str] = &["empty.nn", "only_comments.nn"];

#[test]
fn malformed_corpus() {
    insta::glob!("malformed/*.nn", |path| {
        let bytes = std::fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let analysis = analyze_bytes(&bytes);
        if CLEAN.contains(&name.as_str()) {
            assert!(analysis.diagnostics.is_empty(), "{name}: {:?}", analysis.diagnostics);
        } else {
            assert!(analysis.has_errors(), "{name} gives no error");
        }
        for diagnostic in &analysis.diagnostics {
            for label in std::iter::once(&diagnostic.primary).chain(&diagnostic.secondary) {
                assert!(
                    label.span.start <= label.span.end && label.span.end <= analysis.text.len(),
                    "{name}: {label:?}"
                );
            }
        }
        insta::assert_snapshot!(render(&analysis.diagnostics, &name, &analysis.text, false));
    });
}

#[test]
fn the_binary_answers_every_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 32, "the corpus has {} files", files.len());
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let output =
            Command::new(env!("CARGO_BIN_EXE_nnc")).args(["check", "--color", "never"]).arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        if CLEAN.contains(&name.as_str()) {
            assert_eq!(output.status.code(), Some(0), "{name}: {stderr}");
            assert!(stderr.is_empty(), "{name}: {stderr}");
        } else {
            assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
            // ariadne's header, or the compact form for very long lines: `[ path:LINE:COL ]`.
            let located = stderr.lines().any(|line| {
                line.trim_start().starts_with("╭─[")
                    && line.rsplit(':').nth(1).is_some_and(|l| l.parse::<usize>().is_ok())
            });
            assert!(located, "{name}: no line:column in\n{stderr}");
        }
    }
}

#[test]
fn two_independent_errors_are_both_reported() {
    let bytes =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/malformed/two_independent_errors.nn")).unwrap();
    let codes: Vec<&str> = analyze_bytes(&bytes).diagnostics.iter().map(|d| d.code.as_str()).collect::<Vec<_>>();
    assert_eq!(codes, ["E0005", "E0102"]);
}

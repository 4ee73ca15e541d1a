//! The malformed-input corpus: every file in `tests/malformed/` is a small program with a
//! mistake (or, for two files, none). Its diagnostics are pinned by an insta snapshot, and
//! the real binary must answer it with located diagnostics and exit 1, never a panic.
//! Adding a case is adding a file.

use nnc_compiler::{Analysis, analyze_bytes};
use nnc_grammar::{Diagnostic, LineIndex, render};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Files that are not malformed at all: nnc must accept them silently.
const CLEAN: &[&str] = &["empty.nn", "only_comments.nn"];

/// Above this size a file's snapshot lists positions and messages instead of the rendered
/// report: the deep-nesting files are one line of 100,000 characters or more, and a render
/// that shows source lines would pin that line, not the diagnostics.
const LARGE_FILE: usize = 20_000;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed")
}

fn corpus_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "nn"))
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// `LINE:COLUMN`, 1-based, the column counted in characters as editors and ariadne count it.
fn position(analysis: &Analysis, index: &LineIndex, offset: usize) -> String {
    let p = index.position(&analysis.text, offset);
    format!("{}:{}", p.line + 1, p.char_column + 1)
}

/// The primary label, then the secondary ones.
fn labels(diagnostic: &Diagnostic) -> impl Iterator<Item = &nnc_grammar::Label> {
    std::iter::once(&diagnostic.primary).chain(&diagnostic.secondary)
}

/// The diagnostics without source lines: code, position and message of each, then its
/// labels, notes and help.
fn summary(analysis: &Analysis) -> String {
    let index = LineIndex::new(&analysis.text);
    let mut out = String::new();
    for d in &analysis.diagnostics {
        let at = position(analysis, &index, d.primary.span.start);
        out.push_str(&format!("{} {at} {}\n", d.code, d.message));
        for label in labels(d) {
            out.push_str(&format!("    {}: {}\n", position(analysis, &index, label.span.start), label.message));
        }
        for note in &d.notes {
            out.push_str(&format!("    note: {note}\n"));
        }
        if let Some(help) = &d.help {
            out.push_str(&format!("    help: {help}\n"));
        }
    }
    out
}

#[test]
fn malformed_corpus() {
    insta::glob!("malformed/*.nn", |path| {
        let bytes = std::fs::read(path).unwrap();
        let name = file_name(path);
        let analysis = analyze_bytes(&bytes);
        if CLEAN.contains(&name.as_str()) {
            assert!(analysis.diagnostics.is_empty(), "{name}: {:?}", analysis.diagnostics);
        } else {
            assert!(analysis.has_errors(), "{name} gives no error");
        }
        // Invalid bytes become spaces, so offsets in the text are offsets in the file.
        assert_eq!(analysis.text.len(), bytes.len(), "{name}");
        for diagnostic in &analysis.diagnostics {
            for label in labels(diagnostic) {
                let span = label.span;
                assert!(
                    span.start <= span.end && span.end <= analysis.text.len(),
                    "{name}: {label:?} outside the text"
                );
                assert!(
                    analysis.text.is_char_boundary(span.start) && analysis.text.is_char_boundary(span.end),
                    "{name}: {label:?} splits a character"
                );
            }
        }
        if bytes.len() > LARGE_FILE {
            insta::assert_snapshot!(summary(&analysis));
        } else {
            insta::assert_snapshot!(render(&analysis.diagnostics, &name, &analysis.text, false));
        }
    });
}

/// Whether `text` breaks lines only with `\n` or `\r\n`. ariadne, which draws the reports,
/// also starts a new line at a lone `\r`, a vertical tab, a form feed, U+0085, U+2028 and
/// U+2029; the language does not, so in files with those its line numbers differ.
fn plain_line_breaks(text: &str) -> bool {
    let lone_cr = text.match_indices('\r').any(|(i, _)| !text[i + 1..].starts_with('\n'));
    !lone_cr && !text.contains(['\x0B', '\x0C', '\u{85}', '\u{2028}', '\u{2029}'])
}

/// The `LINE:COL` of every report header, `╭─[ name:LINE:COL ]`, in order.
fn header_positions(stderr: &str, name: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("╭─[ "))
        .map(|rest| {
            let inside = rest.strip_suffix(" ]").unwrap_or_else(|| panic!("unterminated header `{rest}`"));
            let at = inside.strip_prefix(name).and_then(|at| at.strip_prefix(':'));
            let at = at.unwrap_or_else(|| panic!("header `{inside}` does not name `{name}`"));
            let (line, column) = at.split_once(':').unwrap_or_else(|| panic!("no column in `{inside}`"));
            assert!(
                line.parse::<usize>().is_ok_and(|l| l >= 1) && column.parse::<usize>().is_ok_and(|c| c >= 1),
                "`{inside}` is not name:LINE:COL"
            );
            at.to_string()
        })
        .collect()
}

/// Where the report of `diagnostic` is located: its start, except that the renderer moves
/// an empty span at the very end of the text back onto the last character, so that there is
/// something to underline.
fn shown_at(text: &str, diagnostic: &Diagnostic) -> usize {
    let span = diagnostic.primary.span;
    if span.is_empty() && span.start == text.len() {
        text.char_indices().next_back().map_or(0, |(i, _)| i)
    } else {
        span.start
    }
}

#[test]
fn the_binary_answers_every_file() {
    let files = corpus_files();
    assert!(files.len() >= 32, "the corpus has {} files", files.len());
    for clean in CLEAN {
        assert!(files.iter().any(|path| file_name(path) == *clean), "`{clean}` is missing from the corpus");
    }
    for path in files {
        let name = file_name(&path);
        let output =
            Command::new(env!("CARGO_BIN_EXE_nnc")).args(["check", "--color", "never"]).arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        if CLEAN.contains(&name.as_str()) {
            assert_eq!(output.status.code(), Some(0), "{name}: {stderr}");
            assert!(stderr.is_empty(), "{name}: {stderr}");
            continue;
        }
        assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");

        // The binary prints what the library renders, under the path it was given.
        let shown = path.display().to_string();
        let analysis = analyze_bytes(&std::fs::read(&path).unwrap());
        assert_eq!(stderr, render(&analysis.diagnostics, &shown, &analysis.text, false), "{name}");

        // One located header per diagnostic, at the diagnostic's own line and column.
        let headers = header_positions(&stderr, &shown);
        assert_eq!(headers.len(), analysis.diagnostics.len(), "{name}: headers {headers:?}\n{stderr}");
        if plain_line_breaks(&analysis.text) {
            let index = LineIndex::new(&analysis.text);
            let expected: Vec<String> =
                analysis.diagnostics.iter().map(|d| position(&analysis, &index, shown_at(&analysis.text, d))).collect();
            assert_eq!(headers, expected, "{name}");
        }
    }
}

#[test]
fn two_independent_errors_are_both_reported() {
    let bytes = std::fs::read(corpus_dir().join("two_independent_errors.nn")).unwrap();
    let analysis = analyze_bytes(&bytes);
    let index = LineIndex::new(&analysis.text);
    let found: Vec<(&str, usize)> = analysis
        .diagnostics
        .iter()
        .map(|d| (d.code.as_str(), index.position(&analysis.text, d.span().start).line + 1))
        .collect();
    // The dangling `+` on line 1 and the misspelt layer on line 5, each on its own line.
    assert_eq!(found, [("E0005", 1), ("E0102", 5)]);
}

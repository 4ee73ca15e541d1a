//! End-to-end tests of the `nnc` binary: clean examples, exit codes, JSON output, and
//! inputs built to break a parser (deep nesting, long operator chains).

use std::path::Path;
use std::process::Command;

mod common;
use common::nnc;

fn temp_file(name: &str, contents: &[u8]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("nnc-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("temp file");
    path
}

fn examples() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("examples/ exists")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "nn"))
        .map(|path| format!("examples/{}", path.file_name().unwrap().to_string_lossy()))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_checks_silently() {
    let files = examples();
    assert!(files.len() >= 6, "the examples are there: {files:?}");
    let mut args = vec!["check"];
    args.extend(files.iter().map(String::as_str));
    let output = nnc(&args);
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "");
    assert!(output.status.success());
}

#[test]
fn errors_exit_1_with_rendered_locations() {
    let path = temp_file("typo.nn", b"model M {\n    input [B, 64]\n    lineer(10)\n}\n");
    let output = nnc(&["check", "--color", "never", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("[E0102] Error: unknown layer or function `lineer`"), "{stderr}");
    assert!(stderr.contains("typo.nn:3:5"), "{stderr}");
    assert!(stderr.contains("did you mean `linear`?"), "{stderr}");
    assert!(!stderr.contains("\x1b["), "no colour with --color never");

    let coloured = nnc(&["check", "--color", "always", path.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&coloured.stderr).contains("\x1b["));
}

#[test]
fn json_output_carries_codes_and_positions() {
    let path = temp_file("two.nn", b"fn f(x) = x +\nfn g(y) = sin(z)\n");
    let output = nnc(&["check", "--format", "json", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("stdout is JSON");
    let items = json.as_array().expect("a list of diagnostics");
    let codes: Vec<&str> = items.iter().map(|d| d["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["E0005", "E0101"], "both independent errors are reported");
    let second = &items[1];
    assert_eq!(second["severity"], "error");
    assert_eq!(second["range"]["start"]["line"], 2);
    assert_eq!(second["range"]["start"]["column"], 15);
    assert_eq!(second["range"]["end"]["column"], 16);
    assert_eq!(second["labels"][0]["primary"], true);
}

#[test]
fn unreadable_files_exit_2() {
    let output = nnc(&["check", "--color", "never", "no/such/file.nn"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read `no/such/file.nn`"));
}

#[test]
fn explain_prints_every_code() {
    let output = nnc(&["explain"]);
    assert!(output.status.success());
    let list = String::from_utf8_lossy(&output.stdout);
    assert!(list.lines().count() >= 20);
    let one = nnc(&["--color", "never", "explain", "e0003"]);
    assert!(String::from_utf8_lossy(&one.stdout).contains("E0003: an opening bracket that is never closed"));
    assert!(String::from_utf8_lossy(&one.stderr).contains("[E0003]"));
    assert_eq!(nnc(&["explain", "E9999"]).status.code(), Some(2));
}

#[test]
fn hundred_thousand_nested_parentheses_get_one_diagnostic() {
    let source = format!("fn f(x) = {}x{}\n", "(".repeat(100_000), ")".repeat(100_000));
    let analysis = nnc_compiler::analyze(&source);
    let codes: Vec<&str> = analysis.diagnostics.iter().map(|d| d.code.as_str()).collect();
    assert_eq!(codes, ["E0006"]);

    // Unclosed, too: one report for the innermost brackets, no stack overflow.
    let unclosed = format!("fn f(x) = {}x\n", "(".repeat(100_000));
    let analysis = nnc_compiler::analyze(&unclosed);
    assert!(analysis.diagnostics.iter().any(|d| d.code.as_str() == "E0006"));
    assert!(analysis.diagnostics.iter().filter(|d| d.code.as_str() == "E0003").count() <= 3);
}

#[test]
fn hundred_thousand_chained_operators_get_one_diagnostic() {
    for op in ["+", "*", "^", "|> relu", "@"] {
        let operand = if op.starts_with("|>") { "" } else { " x" };
        let source = format!("fn f(x) = x{}\n", format!(" {op}{operand}").repeat(100_000));
        let analysis = nnc_compiler::analyze(&source);
        let codes: Vec<&str> = analysis.diagnostics.iter().map(|d| d.code.as_str()).collect();
        assert!(codes.contains(&"E0006"), "{op}: {codes:?}");
        assert!(codes.len() <= 2, "{op}: {codes:?}");
    }
    let negations = format!("fn f(x) = {}x\n", "-".repeat(100_000));
    let analysis = nnc_compiler::analyze(&negations);
    assert_eq!(analysis.diagnostics.iter().map(|d| d.code.as_str()).collect::<Vec<_>>(), ["E0006"]);
}

#[test]
fn the_readme_example_checks_cleanly() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme.find("```nn\n").expect("README has an nn example") + 6;
    let end = start + readme[start..].find("```").unwrap();
    let analysis = nnc_compiler::analyze(&readme[start..end]);
    assert!(analysis.diagnostics.is_empty(), "{:?}", analysis.diagnostics);
}

#[test]
fn queries_keep_settings_named_arguments_and_activations() {
    let path = temp_file(
        "queries.nn",
        b"/// a doc comment before a query is a comment\nfn f(x, y) = x - y\nfn g(a, b) = f(y = a, x = b)\neval f(y = 1, x = 2)\neval g(1, 2)\neval sum([[1, 2], [3, 4]], axis = 0)\neval relu(-2)\neval softmax([0, 0])\n",
    );
    let output = nnc(&["run", "--color", "never", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let answers: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("  = ")).collect();
    assert_eq!(answers, ["1", "1", "[4, 6]", "0", "[0.5, 0.5]"], "{stdout}");
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(["ir", "examples/residual.nn", "--grad"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read one byte, then close the pipe while nnc is still writing.
    let mut stdout = child.stdout.take().unwrap();
    let mut byte = [0u8; 1];
    stdout.read_exact(&mut byte).unwrap();
    drop(stdout);
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    child.wait().unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn check_catches_what_would_fail_at_run_time() {
    let path = temp_file(
        "late.nn",
        b"fn f(x) = x * 2\neval f(2) wrt x\ngrad f([1, 2])\nmodel M(h = 2.5) {\n    input [B, 2]\n    linear(h)\n}\n",
    );
    let output = nnc(&["check", "--format", "json", path.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let codes: Vec<&str> = json.as_array().unwrap().iter().map(|d| d["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["E0108", "E0210", "E0114"]);
}

#[test]
fn recursion_and_doubling_calls_are_answered_quickly() {
    // Each level calls the one below twice: walking every call would take 2^40 steps.
    let mut doubling = String::from("fn f0(x) = x\n");
    for i in 1..40 {
        doubling.push_str(&format!("fn f{i}(x) = f{}(x) + f{}(x)\n", i - 1, i - 1));
    }
    doubling.push_str("model M0 {\n    input [B, 4]\n    relu\n}\n");
    for i in 1..40 {
        doubling.push_str(&format!("model M{i} {{\n    input [B, 4]\n    M{}\n    M{}\n}}\n", i - 1, i - 1));
    }
    let analysis = nnc_compiler::analyze(&doubling);
    assert!(analysis.diagnostics.is_empty(), "{:?}", analysis.diagnostics);

    for source in [
        "fn f(x) = f(x) + f(x)\neval f(1)\n",
        "model A {\n    input [B, 8]\n    A\n    A\n}\n",
        "fn f(x) = g(x)\nfn g(x) = f(x)\n",
    ] {
        let analysis = nnc_compiler::analyze(source);
        assert!(
            analysis.diagnostics.iter().any(|d| d.code.as_str() == "E0111"),
            "{source}: {:?}",
            analysis.diagnostics
        );
    }
}

/// `nnc ir` without a name shows every function and model it can lower and reports each
/// one it cannot at its place, instead of stopping at the first.
#[test]
fn ir_shows_what_lowers_and_reports_the_rest_at_their_place() {
    let source = "fn h(a, b) = a @ b\n\nfn f(x1, x2) = ln(x1) + x1 * x2\n\n\
                  layer Block {\n    input [B, C, H, W]\n    conv2d(C, kernel = 3, pad = 1)\n}\n\n\
                  model M {\n    input [B, 2]\n    linear(3)\n}\n";
    let path = temp_file("ir_all.nn", source.as_bytes());
    let out =
        Command::new(env!("CARGO_BIN_EXE_nnc")).args(["ir", "--color", "never", "--grad"]).arg(&path).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let shown: Vec<&str> =
        stdout.lines().filter_map(|l| l.strip_prefix("fn ")).map(|l| &l[..l.find('(').unwrap()]).collect();
    assert_eq!(shown, ["f_grad", "M_grad"], "{stdout}");
    assert!(stderr.contains("cannot lower `h` (") && stderr.contains("`@` needs vectors or matrices"), "{stderr}");
    assert!(stderr.contains("cannot lower `Block` (") && stderr.contains(":7:5)"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

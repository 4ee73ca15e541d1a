//! End-to-end tests of `nnc fmt`: the examples are formatted, messy files are rewritten once
//! and then left alone, `--check` writes nothing and exits 1, files with syntax errors or
//! bytes that are not UTF-8 are reported and left untouched, standard input goes to
//! standard output.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;
use common::nnc;

fn nnc_with_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the nnc binary runs");
    child.stdin.take().expect("a pipe").write_all(stdin).expect("nnc reads its input");
    child.wait_with_output().expect("nnc ends")
}

/// A fresh directory for one test.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnc-fmt-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A file with every kind of mess the formatter cleans up, and what it becomes.
const MESSY: &str = "// The XOR network.\r\n\r\n\r\n///   One hidden layer.   \r\nmodel   Net( hidden=8 ){\r\n\tinput [ B,2 ]\r\n        linear(hidden)|>tanh  // hidden\r\n\r\n\r\n  linear(1)\r\n\t\tsigmoid   \r\n}\r\ntrain Net on xor(samples=400,noise=0.1){\r\nloss=bce\r\n  optimizer = adam(lr=0.05)\r\nepochs=100}";
const TIDY: &str = "// The XOR network.\n\n///   One hidden layer.\nmodel Net(hidden = 8) {\n    input [B, 2]\n    linear(hidden) |> tanh    // hidden\n\n    linear(1)\n    sigmoid\n}\n\ntrain Net on xor(samples = 400, noise = 0.1) {\n    loss      = bce\n    optimizer = adam(lr = 0.05)\n    epochs    = 100 }\n";

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
fn the_examples_are_formatted() {
    let files = examples();
    assert!(files.len() >= 8, "the examples are there: {files:?}");
    let mut args = vec!["fmt", "--check"];
    args.extend(files.iter().map(String::as_str));
    let output = nnc(&args);
    assert_eq!(text(&output.stdout), "");
    assert_eq!(text(&output.stderr), "");
    assert!(output.status.success());
}

#[test]
fn a_messy_file_is_rewritten_once() {
    let dir = temp_dir("rewrite");
    let path = dir.join("messy.nn");
    std::fs::write(&path, MESSY).unwrap();
    let tidy = dir.join("tidy.nn");
    std::fs::write(&tidy, TIDY).unwrap();

    let output = nnc(&["fmt", path.to_str().unwrap(), tidy.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), format!("formatted {}\n", path.display()), "only the messy file changed");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), TIDY);
    assert_eq!(std::fs::read_to_string(&tidy).unwrap(), TIDY);

    let again = nnc(&["fmt", path.to_str().unwrap()]);
    assert!(again.status.success());
    assert_eq!(text(&again.stdout), "", "a formatted file is not written again");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), TIDY);
    // Nothing but the two files is left in the directory: the temporary file was renamed.
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["messy.nn", "tidy.nn"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_writes_nothing_and_shows_the_first_difference() {
    let dir = temp_dir("check");
    let path = dir.join("messy.nn");
    std::fs::write(&path, MESSY).unwrap();
    let output = nnc(&["fmt", "--check", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), MESSY, "--check writes nothing");
    let stdout = text(&output.stdout);
    let name = path.display();
    assert!(stdout.starts_with(&format!("--- {name}\n+++ {name} (formatted)\n@@ -1,")), "{stdout}");
    assert!(stdout.contains("\n-\\r\n"), "the CRLF blank lines show as removed: {stdout}");
    assert!(stdout.contains("\n+///   One hidden layer.\n"), "{stdout}");
    assert!(stdout.contains("\n-... 8 more lines\n"), "a long difference is cut short: {stdout}");
    assert_eq!(text(&output.stderr), "");

    std::fs::write(&path, TIDY).unwrap();
    let clean = nnc(&["fmt", "--check", path.to_str().unwrap()]);
    assert!(clean.status.success());
    assert_eq!(text(&clean.stdout), "");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn syntax_errors_are_reported_and_the_file_is_left_untouched() {
    let dir = temp_dir("errors");
    let broken = dir.join("broken.nn");
    let contents = "model   M {\n    input [B,  2\n    linear(1)\n}\n";
    std::fs::write(&broken, contents).unwrap();
    let messy = dir.join("messy.nn");
    std::fs::write(&messy, MESSY).unwrap();

    let output = nnc(&["fmt", "--color", "never", broken.to_str().unwrap(), messy.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&broken).unwrap(), contents);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("[E0003] Error: expected `]` to close the `[` opened here"), "{stderr}");
    assert!(stderr.contains("broken.nn:2:11"), "{stderr}");
    // The other file is formatted all the same.
    assert_eq!(std::fs::read_to_string(&messy).unwrap(), TIDY);

    // Bytes that are not UTF-8 are reported and kept.
    let latin1 = dir.join("latin1.nn");
    let bytes = b"let gr\xF6\xDFe  = 3\n";
    std::fs::write(&latin1, bytes).unwrap();
    let output = nnc(&["fmt", "--color", "never", latin1.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("[E0008]"), "{}", text(&output.stderr));
    assert_eq!(std::fs::read(&latin1).unwrap(), bytes);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unreadable_files_are_named_and_exit_2() {
    let output = nnc(&["fmt", "--color", "never", "no/such/file.nn"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("error: cannot read `no/such/file.nn`"), "{}", text(&output.stderr));
}

#[test]
fn standard_input_goes_to_standard_output() {
    for args in [&["fmt"][..], &["fmt", "-"][..]] {
        let output = nnc_with_stdin(args, MESSY.as_bytes());
        assert!(output.status.success(), "{}", text(&output.stderr));
        assert_eq!(text(&output.stdout), TIDY);
    }
    let check = nnc_with_stdin(&["fmt", "--check", "-"], MESSY.as_bytes());
    assert_eq!(check.status.code(), Some(1));
    assert!(text(&check.stdout).starts_with("--- <stdin>\n+++ <stdin> (formatted)\n"), "{}", text(&check.stdout));
    let formatted = nnc_with_stdin(&["fmt", "--check"], TIDY.as_bytes());
    assert!(formatted.status.success());
    assert_eq!(text(&formatted.stdout), "");

    let broken = nnc_with_stdin(&["fmt", "--color", "never"], b"eval f(1))\n");
    assert_eq!(broken.status.code(), Some(1));
    assert_eq!(text(&broken.stdout), "", "nothing is printed for a text with errors");
    assert!(text(&broken.stderr).contains("<stdin>:1:10"), "{}", text(&broken.stderr));
}

#[cfg(unix)]
#[test]
fn a_symbolic_link_stays_a_link_to_the_formatted_file() {
    let dir = temp_dir("link");
    let target = dir.join("target.nn");
    std::fs::write(&target, MESSY).unwrap();
    let link = dir.join("link.nn");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let output = nnc(&["fmt", link.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), TIDY);
    let _ = std::fs::remove_dir_all(&dir);
}

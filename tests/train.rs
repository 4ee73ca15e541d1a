//! End-to-end tests of training with `nnc run`: the digits MLP reaches its accuracy and
//! leaves its files, two runs with one seed give identical weights, and every corrupt or
//! mismatched data file gives an error that names the file and the line, never a panic.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh directory with the digits data and the given program.
fn workspace(name: &str, program: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnc-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    std::fs::copy(examples.join("data/digits.csv.gz"), dir.join("data/digits.csv.gz")).unwrap();
    std::fs::write(dir.join("model.nn"), program).unwrap();
    dir
}

fn run(dir: &Path) -> (String, String, Option<i32>) {
    let output = Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(["run", "--color", "never", "model.nn"])
        .current_dir(dir)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        output.status.code(),
    )
}

fn digits_mlp() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/digits_mlp.nn")).unwrap()
}

#[test]
fn the_digits_mlp_reaches_95_percent_and_leaves_its_files() {
    let dir = workspace("mlp", &digits_mlp());
    let (stdout, stderr, code) = run(&dir);
    assert_eq!(code, Some(0), "{stderr}");
    let metrics = std::fs::read_to_string(dir.join("runs/Mlp/metrics.csv")).unwrap();
    let lines: Vec<&str> = metrics.lines().collect();
    assert_eq!(lines[0], "epoch,train_loss,train_accuracy,test_loss,test_accuracy,seconds");
    assert_eq!(lines.len(), 21, "a header and 20 epochs");
    let test_accuracy: f64 = lines[20].split(',').nth(4).unwrap().parse().unwrap();
    assert!(test_accuracy >= 0.95, "test accuracy {test_accuracy}");
    assert!(stdout.contains("confusion matrix of the test set"), "{stdout}");

    // The checkpoint has PyTorch's names and shapes.
    let tensors = nnc_runtime::checkpoint::load(&dir.join("mlp.safetensors")).unwrap();
    let names: Vec<(&str, &[usize])> = tensors.iter().map(|(n, s, _)| (n.as_str(), s.as_slice())).collect();
    assert_eq!(
        names,
        [("0.bias", &[32][..]), ("0.weight", &[32, 64][..]), ("2.bias", &[10][..]), ("2.weight", &[10, 32][..])]
    );
}

#[test]
fn two_runs_with_one_seed_give_identical_weights() {
    let short = digits_mlp().replace("epochs    = 20", "epochs    = 2");
    let a = workspace("seed-a", &short);
    let b = workspace("seed-b", &short);
    assert_eq!(run(&a).2, Some(0));
    assert_eq!(run(&b).2, Some(0));
    assert_eq!(std::fs::read(a.join("mlp.safetensors")).unwrap(), std::fs::read(b.join("mlp.safetensors")).unwrap());
    // A second run in the same place keeps the first checkpoint as `.previous`.
    assert_eq!(run(&a).2, Some(0));
    assert!(a.join("mlp.safetensors.previous").exists());
}

#[test]
fn a_model_that_does_not_take_the_data_is_an_error() {
    let program = digits_mlp().replace("input [B, 64]", "input [B, 63]");
    let (_, stderr, code) = run(&workspace("shape", &program));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("has 64 features per example, but `Mlp` takes input [B, 63]"), "{stderr}");
}

#[test]
fn corrupt_data_files_are_clear_errors() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corrupt");
    let mut files: Vec<_> = std::fs::read_dir(&corpus).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 12);
    let expected = [
        ("binary_noise.csv", "line"),
        ("empty.csv", "has no data rows"),
        ("fractional_label.csv", "line 1: the label `0.5` is not a class number"),
        ("header_only.csv", "has no data rows"),
        ("infinite_value.csv", "line 1: field 3"),
        ("label_beyond_outputs.csv", "has labels up to 7, but `M` has 3 outputs"),
        ("negative_label.csv", "line 2: the label `-1` is not a class number"),
        ("non_numeric_cell.csv", "line 2: field 2 is `two`, not a number"),
        ("not_gzip_at_all.csv.gz", "is not a valid gzip file"),
        ("ragged_rows.csv", "line 2: has 4 fields, but the rows before it have 5"),
        ("single_column.csv", "needs at least one feature and a label"),
        ("too_many_features.csv", "has 5 features per example, but `M` takes input [B, 4]"),
        ("truncated.csv.gz", "is not a valid gzip file"),
    ];
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let program = format!(
            "model M {{\n    input [B, 4]\n    linear(3)\n}}\ntrain M on csv(\"data/{name}\") {{\n    loss = cross_entropy\n    epochs = 1\n}}\n"
        );
        let dir = workspace(&name.replace('.', "-"), &program);
        std::fs::copy(&path, dir.join("data").join(&name)).unwrap();
        let (_, stderr, code) = run(&dir);
        assert_eq!(code, Some(1), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert!(stderr.contains(&name), "{name}: the error names the file: {stderr}");
        let (_, wanted) =
            expected.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no expectation for {name}"));
        assert!(stderr.contains(wanted), "{name}: expected `{wanted}` in {stderr}");
    }
}

#[test]
fn xor_draws_three_decision_boundaries() {
    let program = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/xor.nn")).unwrap();
    let dir = workspace("xor", &program);
    let (stdout, stderr, code) = run(&dir);
    assert_eq!(code, Some(0), "{stderr}");
    for run_dir in ["xor-0-hidden", "xor-1-hidden", "xor-2-hidden"] {
        for image in ["boundary.png", "curves.png"] {
            let bytes = std::fs::read(dir.join("runs").join(run_dir).join(image)).unwrap();
            assert!(bytes.starts_with(b"\x89PNG"), "{run_dir}/{image} is a PNG");
        }
        let svg = std::fs::read_to_string(dir.join("runs").join(run_dir).join("boundary.svg")).unwrap();
        assert!(svg.contains("<svg"));
    }
    // One hidden layer separates XOR; none cannot.
    let accuracy = |run_dir: &str| -> f64 {
        let metrics = std::fs::read_to_string(dir.join("runs").join(run_dir).join("metrics.csv")).unwrap();
        metrics.lines().last().unwrap().split(',').nth(4).unwrap().parse().unwrap()
    };
    assert!(accuracy("xor-0-hidden") < 0.7, "{stdout}");
    assert!(accuracy("xor-1-hidden") > 0.85, "{stdout}");
}

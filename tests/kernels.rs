//! The kernel IR that compiled code runs, pinned for the bundled examples: which values
//! are stored, which are computed inside the loops that read them, and which transposes
//! are only strides. Review every change of these snapshots by reading it.

use std::process::Command;

fn kernels(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(["ir", "--color", "never"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn digits_mlp_training_step() {
    insta::assert_snapshot!(kernels(&["examples/digits_mlp.nn", "--grad", "--kernels"]));
}

#[test]
fn digits_cnn_training_step() {
    insta::assert_snapshot!(kernels(&["examples/digits_cnn.nn", "--grad", "--kernels", "--batch", "16"]));
}

#[test]
fn xor_models_forward() {
    insta::assert_snapshot!(kernels(&["examples/xor.nn", "--kernels", "--batch", "4"]));
}

#[test]
fn lecture_functions_and_their_gradients() {
    insta::assert_snapshot!(kernels(&["examples/lecture.nn", "--grad", "--kernels"]));
}

#[test]
fn symbolic_shapes_are_a_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(["ir", "--color", "never", "--kernels", "examples/residual.nn"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // `Residual(width)` has no default for `width`, so its input stays [B, width]: compiled
    // code needs every size, and the error names the model, the value and its shape.
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("no kernels for `Residual`: `x` has the symbolic shape [32, width]"), "{stderr}");
}

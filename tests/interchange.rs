//! `nnc grad` and `nnc predict` on a model small enough to compute by hand: the loss, the
//! outputs and the gradients written are those of the mathematics.

use nnc_compiler::ir::Tensor;
use nnc_runtime::checkpoint;
use nnc_runtime::interchange::write_npy;
use std::process::Command;

#[test]
fn grad_and_predict_give_the_numbers_of_the_mathematics() {
    let dir = std::env::temp_dir().join(format!("nnc-interchange-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tiny.nn"), "model Tiny {\n    input [B, 2]\n    linear(1)\n}\n").unwrap();
    // y = x W^T + b with W = [[1, 2]], b = [0.5].
    checkpoint::save(
        &dir.join("w.safetensors"),
        &[("0.weight".into(), vec![1, 2], vec![1.0, 2.0]), ("0.bias".into(), vec![1], vec![0.5])],
    )
    .unwrap();
    write_npy(&dir.join("x.npy"), &Tensor::new(vec![2, 2], vec![1.0, 1.0, 2.0, 0.0])).unwrap();
    write_npy(&dir.join("t.npy"), &Tensor::new(vec![2, 1], vec![1.0, 0.0])).unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args([
            "grad",
            "tiny.nn",
            "Tiny",
            "--weights",
            "w.safetensors",
            "--input",
            "x.npy",
            "--labels",
            "t.npy",
            "--out",
            "g.safetensors",
            "--loss",
            "mse",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let tensors = checkpoint::load(&dir.join("g.safetensors")).unwrap();
    let get = |name: &str| tensors.iter().find(|(n, _, _)| n == name).map(|(_, _, v)| v.clone()).unwrap();
    // Outputs 1 + 2 + 0.5 = 3.5 and 2 + 0.5 = 2.5; errors 2.5 and 2.5.
    assert_eq!(get("output"), [3.5, 2.5]);
    // mse = (2.5^2 + 2.5^2) / 2 = 6.25.
    assert_eq!(get("loss"), [6.25]);
    // dL/dy = 2 (y - t) / 2 = [2.5, 2.5]; dW = sum dy x = [2.5 + 5, 2.5]; db = 5.
    assert_eq!(get("0.weight"), [7.5, 2.5]);
    assert_eq!(get("0.bias"), [5.0]);

    let output = Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(["predict", "tiny.nn", "--weights", "w.safetensors", "--input", "x.npy", "--output", "p.npy"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let predictions = nnc_runtime::data::load_npy(&dir.join("p.npy")).unwrap();
    assert_eq!((predictions.shape, predictions.values), (vec![2, 1], vec![3.5, 2.5]));

    // Weights that do not fit the model are named.
    checkpoint::save(&dir.join("bad.safetensors"), &[("0.weight".into(), vec![2, 2], vec![0.0; 4])]).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(["--color", "never", "predict", "tiny.nn", "--weights", "bad.safetensors", "--input", "x.npy"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("`0.weight` is [2, 2], but the model needs [1, 2]"));
}

//! The lecture's worked example, number by number: the evaluation trace of
//! `ln(x1) + x1*x2 - sin(x2)` at (2, 5), its tangent trace for d/dx1, its adjoint trace,
//! and its Hessian; and the gradient IR of every example function, pinned by snapshots.

mod common;

use nnc_compiler::analyze;
use nnc_compiler::driver;
use nnc_compiler::ir::{Mode, Precision, Tensor, hessian, jacobian, optimize, print_function, reverse, trace, verify};
use nnc_compiler::shapes::Shape;
use nnc_grammar::Item;
use std::collections::HashMap;
use std::process::Command;

fn lecture() -> nnc_compiler::Analysis {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/lecture.nn")).unwrap();
    let analysis = analyze(&text);
    assert!(analysis.diagnostics.is_empty());
    analysis
}

fn lowered(name: &str, arity: usize) -> nnc_compiler::ir::Function {
    driver::function(&lecture(), name, &vec![Shape(Vec::new()); arity]).unwrap()
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[test]
fn the_three_traces_have_the_lecture_numbers() {
    let f = lowered("f", 2);
    let t = trace(&f, &[Tensor::scalar(2.0), Tensor::scalar(5.0)], 0, Precision::F64).unwrap();
    let primal: Vec<(String, f64)> = t.primal.iter().map(|r| (r.name.clone(), round3(r.value[0]))).collect();
    let expected = [
        ("v-1", 2.0),
        ("v0", 5.0),
        ("v1", 0.693),
        ("v2", 10.0),
        ("v3", -0.959),
        ("v4", 10.693),
        ("v5", 11.652),
        ("y", 11.652),
    ];
    assert_eq!(primal, expected.map(|(n, v)| (n.to_string(), v)));
    let exprs: Vec<&str> = t.primal.iter().map(|r| r.expr.as_str()).collect();
    assert_eq!(exprs, ["x1", "x2", "ln(v-1)", "v-1 × v0", "sin(v0)", "v1 + v2", "v4 - v3", "v5"]);

    // The tangent trace for d/dx1: v1' = 0.5, v2' = 5, v3' = 0, v4' = v5' = 5.5.
    let tangent: Vec<f64> = t.tangent.iter().map(|r| round3(r.value[0])).collect();
    assert_eq!(tangent, [1.0, 0.0, 0.5, 5.0, 0.0, 5.5, 5.5, 5.5]);

    // The adjoints: x1 bar = 5.5, x2 bar = 1.716.
    let adjoints: HashMap<String, f64> = t.adjoint.iter().map(|r| (r.name.clone(), round3(r.value[0]))).collect();
    assert_eq!(adjoints["x\u{304}1"], 5.5);
    assert_eq!(adjoints["x\u{304}2"], 1.716);
    assert_eq!(adjoints["v\u{304}3"], -1.0);
    let v0 = t.adjoint.iter().find(|r| r.name == "v\u{304}0").unwrap();
    assert_eq!(v0.expr, "v\u{304}2 × v-1 + v\u{304}3 × cos(v0)");
}

#[test]
fn the_hessian_is_the_analytic_one() {
    let f = lowered("f", 2);
    let (x1, x2) = (2.0f64, 5.0f64);
    let h = hessian(&f, &[Tensor::scalar(x1), Tensor::scalar(x2)], Precision::F64).unwrap();
    let analytic = [[-1.0 / (x1 * x1), 1.0], [1.0, x2.sin()]];
    for i in 0..2 {
        for j in 0..2 {
            assert!((h[i][j] - analytic[i][j]).abs() < 1e-12, "H[{i}][{j}] = {}, analytic {}", h[i][j], analytic[i][j]);
        }
    }
}

#[test]
fn both_modes_give_the_same_jacobian() {
    let f = lowered("f", 2);
    let args = [Tensor::scalar(2.0), Tensor::scalar(5.0)];
    let forward = jacobian(&f, &args, Mode::Forward, Precision::F64).unwrap();
    let reverse = jacobian(&f, &args, Mode::Reverse, Precision::F64).unwrap();
    assert_eq!(forward.len(), 1);
    for (a, b) in forward[0].iter().zip(&reverse[0]) {
        assert!((a - b).abs() < 1e-12);
    }
    assert_eq!(round3(reverse[0][0]), 5.5);
    assert_eq!(round3(reverse[0][1]), 1.716);
}

#[test]
fn f32_agrees_with_f64() {
    let f = lowered("f", 2);
    let args = [Tensor::scalar(2.0), Tensor::scalar(5.0)];
    let (grad, _) = reverse(&f, &[0, 1]);
    let (r32, _) = nnc_compiler::ir::eval_function(&grad, &args, Precision::F32).unwrap();
    let (r64, _) = nnc_compiler::ir::eval_function(&grad, &args, Precision::F64).unwrap();
    for (a, b) in r32.iter().zip(&r64) {
        assert!((a.data[0] - b.data[0]).abs() < 1e-5 * b.data[0].abs().max(1.0));
    }
}

#[test]
fn nnc_run_prints_the_lecture_numbers() {
    let output = Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(["run", "examples/lecture.nn"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    insta::assert_snapshot!("run_lecture", stdout);
    assert!(stdout.contains("= 11.652"));
    assert!(stdout.contains("df/dx1 = 5.5\n"));
    assert!(stdout.contains("df/dx2 = 1.716\n"));
}

#[test]
fn nnc_trace_prints_the_lecture_tables() {
    let output = Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(["trace", "examples/lecture.nn", "f", "--at", "x1=2,x2=5"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    insta::assert_snapshot!("trace_lecture", String::from_utf8_lossy(&output.stdout));
}

#[test]
fn gradient_ir_of_every_example_function() {
    for path in common::files_with_extension("examples", "nn") {
        let text = std::fs::read_to_string(&path).unwrap();
        let analysis = analyze(&text);
        for item in &analysis.file.items {
            let Item::Fn(def) = item else { continue };
            let shapes = vec![Shape(Vec::new()); def.params.len()];
            let f = driver::function(&analysis, &def.name.name, &shapes).unwrap();
            verify(&f).unwrap();
            let all: Vec<usize> = (0..f.params.len()).collect();
            let (grad, _) = reverse(&f, &all);
            verify(&grad).unwrap();
            let grad = optimize(&grad);
            verify(&grad).unwrap();
            let stem = path.file_stem().unwrap().to_string_lossy();
            insta::assert_snapshot!(format!("grad_{stem}_{}", def.name.name), print_function(&grad, None));
        }
    }
}

#[test]
fn nnc_ir_grad_of_every_example() {
    for example in ["conv_exercises", "digits_cnn", "digits_mlp", "lecture", "residual", "xor"] {
        let output = Command::new(env!("CARGO_BIN_EXE_nnc"))
            .args(["ir", &format!("examples/{example}.nn"), "--grad", "--opt"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert!(output.status.success(), "{example}: {}", String::from_utf8_lossy(&output.stderr));
        insta::assert_snapshot!(format!("ir_grad_{example}"), String::from_utf8_lossy(&output.stdout));
    }
}

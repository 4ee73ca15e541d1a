//! The gradient sweep: every differentiable primitive, on at least eight shapes each, has
//! reverse-mode and forward-mode derivatives equal to central finite differences in f64,
//! and the two modes agree on random directions (<J t, c> = <t, J^T c>). An op missing
//! from the table fails the sweep.

use nnc_compiler::ir::{Function, Op, Precision, Tensor, eval_function, forward, reverse};

#[path = "common/sweep_cases.rs"]
mod sweep_cases;

use sweep_cases::*;

fn value(f: &Function, args: &[Tensor]) -> f64 {
    eval_function(f, args, Precision::F64).unwrap().0[0].data[0]
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-5 + 1e-3 * want.abs()
}

fn check(case: &Case, seed: u64) -> Result<(), String> {
    let mut rng = Rng(seed);
    let f = scalar_function(case, &mut rng);
    let args: Vec<Tensor> = case.inputs.iter().map(|(dims, domain)| draw(&mut rng, dims, *domain)).collect();
    let wrt: Vec<usize> = (0..args.len()).filter(|&i| case.differentiable[i]).collect();

    // Reverse mode against central differences.
    let (grad, _) = reverse(&f, &wrt);
    nnc_compiler::ir::verify(&grad).map_err(|e| format!("gradient IR: {e}"))?;
    let optimized = nnc_compiler::ir::optimize(&grad);
    nnc_compiler::ir::verify(&optimized).map_err(|e| format!("optimised gradient IR: {e}"))?;
    let (results, _) = eval_function(&optimized, &args, Precision::F64)?;
    let eps = 1e-6;
    for (k, &i) in wrt.iter().enumerate() {
        for j in 0..args[i].data.len() {
            let mut plus = args.clone();
            plus[i].data[j] += eps;
            let mut minus = args.clone();
            minus[i].data[j] -= eps;
            let numeric = (value(&f, &plus) - value(&f, &minus)) / (2.0 * eps);
            let got = results[1 + k].data[j];
            if !close(got, numeric) {
                return Err(format!("reverse d/d{}[{j}] = {got}, finite differences give {numeric}", f.params[i].name));
            }
        }
    }

    // Forward mode: the directional derivative along a random tangent equals <grad, t>.
    let (jvp, _) = forward(&f, &wrt);
    nnc_compiler::ir::verify(&jvp).map_err(|e| format!("tangent IR: {e}"))?;
    let tangents: Vec<Tensor> = wrt.iter().map(|&i| draw(&mut rng, &args[i].shape, Domain::Any)).collect();
    let mut inputs = args.clone();
    inputs.extend(tangents.iter().cloned());
    let (out, _) = eval_function(&jvp, &inputs, Precision::F64)?;
    let forward_value = out[1].data[0];
    let reverse_value: f64 = wrt
        .iter()
        .enumerate()
        .map(|(k, _)| results[1 + k].data.iter().zip(&tangents[k].data).map(|(g, t)| g * t).sum::<f64>())
        .sum();
    if !close(forward_value, reverse_value) {
        return Err(format!("forward gives <J t, 1> = {forward_value}, reverse <t, J^T 1> = {reverse_value}"));
    }
    Ok(())
}

#[test]
fn every_op_matches_finite_differences_in_both_modes() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for op in Op::samples() {
        let cases = cases(&op).expect("every op has an entry");
        if op.is_differentiable() {
            assert!(cases.len() >= 8, "`{}` has only {} cases", op.name(), cases.len());
        } else {
            assert!(cases.is_empty(), "`{}` has no derivative but has cases", op.name());
        }
        for (i, case) in cases.iter().enumerate() {
            checked += 1;
            if let Err(error) = check(case, 0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1)) {
                let shapes: Vec<_> = case.inputs.iter().map(|(s, _)| format!("{s:?}")).collect();
                failures.push(format!("{} on {}: {error}", case.op.name(), shapes.join(", ")));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {checked} cases fail:\n{}", failures.len(), failures.join("\n"));
    assert!(checked >= 300, "only {checked} cases");
}

//! The optimisers against PyTorch's formulas: SGD plain, with weight decay, momentum,
//! dampening and Nesterov momentum, and Adam with and without weight decay, each over three
//! steps of gradients of different sizes (the rows and their derivations are in
//! `optimizer_rows`), also when resumed from saved state; and the `train` block's SGD
//! settings, read and refused as PyTorch refuses them.

mod optimizer_rows;

use nnc_compiler::analyze;
use nnc_compiler::optim::{Optimizer, State};
use optimizer_rows::{GRADS, Row, START, assert_close};

/// Runs a row's three steps on two parameters at once: the row's, and the same elements in
/// reverse order, so that each parameter must keep its own buffers.
fn follows(row: Row) {
    let reversed = |values: &[f32]| values.iter().rev().copied().collect::<Vec<f32>>();
    let mut state = State::new(&[4, 4]);
    let mut params = vec![START.to_vec(), reversed(&START)];
    for (t, grad) in GRADS.iter().enumerate() {
        row.optimizer.step(&mut state, &mut params, &[grad.to_vec(), reversed(grad)]);
        assert_close("the first parameter", &row, t + 1, &params[0]);
        assert_close("the second parameter, reversed", &row, t + 1, &reversed(&params[1]));
    }
}

#[test]
fn sgd_plain_follows_pytorch() {
    follows(optimizer_rows::sgd_plain());
}

#[test]
fn sgd_weight_decay_is_added_to_the_gradient() {
    follows(optimizer_rows::sgd_weight_decay());
}

#[test]
fn sgd_momentum_buffers_the_decayed_gradient() {
    follows(optimizer_rows::sgd_momentum());
}

#[test]
fn sgd_dampening_scales_every_gradient_after_the_first() {
    follows(optimizer_rows::sgd_dampening());
}

#[test]
fn sgd_nesterov_steps_along_the_gradient_and_the_new_buffer() {
    follows(optimizer_rows::sgd_nesterov());
}

#[test]
fn adam_moments_bias_corrections_and_eps_follow_pytorch() {
    follows(optimizer_rows::adam());
}

#[test]
fn adam_weight_decay_is_l2_on_the_gradient() {
    follows(optimizer_rows::adam_weight_decay());
}

#[test]
fn every_row_goes_on_from_its_saved_state() {
    for row in optimizer_rows::all() {
        let mut state = State::new(&[4]);
        let mut params = vec![START.to_vec()];
        row.optimizer.step(&mut state, &mut params, &[GRADS[0].to_vec()]);
        // What a run checkpoint keeps of the optimiser: the step count and both buffers.
        let (count, first, second) = state.parts();
        let mut state = State::from_parts(count, first.to_vec(), second.to_vec());
        for (t, grad) in GRADS.iter().enumerate().skip(1) {
            row.optimizer.step(&mut state, &mut params, &[grad.to_vec()]);
            assert_close("resumed after step 1", &row, t + 1, &params[0]);
        }
    }
}

/// The optimiser of a one-line `train` block with these `sgd` arguments, or the message of
/// the check's first error (refused settings are refused by the check, at their place).
fn sgd_config(arguments: &str) -> Result<Optimizer, String> {
    let text = format!(
        "model M {{\n    input [B, 2]\n    linear(1)\n}}\ntrain M on xor() {{\n    loss = mse; optimizer = sgd({arguments})\n}}\n"
    );
    let analysis = analyze(&text);
    if let Some(error) = analysis.diagnostics.first() {
        return Err(error.message.clone());
    }
    match analysis.trains().first() {
        Some(Ok(train)) => Ok(train.config.optimizer.clone()),
        _ => Err("no train block".to_string()),
    }
}

#[test]
fn the_train_block_reads_sgd_dampening_by_name_and_position() {
    let sgd = |lr, momentum, dampening, nesterov, weight_decay| {
        Ok(Optimizer::Sgd { lr, momentum, dampening, nesterov, weight_decay })
    };
    assert_eq!(sgd_config(""), sgd(0.01, 0.0, 0.0, false, 0.0));
    assert_eq!(sgd_config("lr = 0.1, momentum = 0.9, dampening = 0.5"), sgd(0.1, 0.9, 0.5, false, 0.0));
    // After the four arguments sgd had before dampening, so that their positions stay.
    assert_eq!(sgd_config("0.1, 0.9, false, 0.01, 0.25"), sgd(0.1, 0.9, 0.25, false, 0.01));
}

#[test]
fn nesterov_needs_a_momentum_and_no_dampening() {
    const REASON: &str = "Nesterov momentum requires a momentum and zero dampening";
    for arguments in ["nesterov = true", "momentum = 0.9, dampening = 0.1, nesterov = true"] {
        let error = sgd_config(arguments).expect_err(arguments);
        assert!(error.contains(REASON), "sgd({arguments}): {error}");
    }
    assert!(sgd_config("momentum = 0.9, nesterov = true").is_ok());
    assert!(sgd_config("momentum = 0.9, dampening = 0.1").is_ok());
    let refused = Optimizer::Sgd { lr: 0.1, momentum: 0.0, dampening: 0.0, nesterov: true, weight_decay: 0.0 };
    assert!(refused.check().is_err_and(|e| e.contains(REASON)));
}

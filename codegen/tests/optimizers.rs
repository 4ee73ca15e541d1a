//! The optimisers inside a training step, on the reference interpreter and in compiled
//! code: the rows of `runtime/tests/optimizer_rows` (SGD plain, with weight decay,
//! momentum, dampening and Nesterov momentum; Adam with and without weight decay) fed
//! through a step whose gradient is its input, and a linear model with an mse loss whose
//! gradients are worked by hand; after every step the parameters are PyTorch's, and the
//! two executors agree.

#[path = "../../runtime/tests/optimizer_rows/mod.rs"]
mod optimizer_rows;

use nnc_codegen::JitExecutor;
use nnc_compiler::analyze;
use nnc_compiler::driver;
use nnc_compiler::exec::{Batch, Executor, InterpreterExecutor};
use nnc_compiler::ir::{Function, Loss, optimize, parse_function, reverse};
use nnc_compiler::optim::{Optimizer, State};
use optimizer_rows::{GRADS, START, assert_close};
use std::collections::HashMap;

/// `sum(w * x)`: its gradient by `w` is `x` exactly, so the input of each step is the
/// gradient the optimiser receives. (Arguments: input, targets, then parameters.)
const LINEAR: &str = "
fn linear(x: f32[1, 4], t: f32[1, 1], w: f32[4]) -> y: f32 {
  v1 = reshape[4] x
  v2 = mul w, v1
  v3 = sum v2
  ret v3
}
";

fn executors() -> [Box<dyn Executor>; 2] {
    [Box::new(InterpreterExecutor), Box::new(JitExecutor::default())]
}

/// The loss and the parameters after each step of `grad` on `batches` from `start`.
fn run(
    executor: &dyn Executor,
    grad: &Function,
    optimizer: &Optimizer,
    start: &[f32],
    batches: &[Batch<'_>],
) -> Vec<(f32, Vec<f32>)> {
    let mut step = executor.train_step(grad, optimizer).unwrap_or_else(|e| panic!("{}: {e}", executor.name()));
    let mut params = vec![start.to_vec()];
    let mut state = State::new(&[start.len()]);
    batches
        .iter()
        .map(|batch| {
            let loss = step
                .step(batch, &mut params, &mut state)
                .unwrap_or_else(|e| panic!("{}: {}", executor.name(), e.message));
            (loss, params[0].clone())
        })
        .collect()
}

#[test]
fn every_row_through_the_interpreted_and_the_compiled_step() {
    let primal = parse_function(LINEAR).unwrap();
    let grad = optimize(&reverse(&primal, &[2]).0);
    let batches: Vec<Batch<'_>> = GRADS.iter().map(|g| Batch { input: g, targets: &[0.0], masks: &[] }).collect();
    for row in optimizer_rows::all() {
        let runs = executors().map(|executor| {
            let steps = run(&*executor, &grad, &row.optimizer, &START, &batches);
            for (t, (_, params)) in steps.iter().enumerate() {
                assert_close(executor.name(), &row, t + 1, params);
            }
            steps
        });
        // Both hand the optimiser the same gradients, so the parameters agree to the bit; the
        // losses are sums taken in different orders, so only nearly.
        for (interpreted, compiled) in runs[0].iter().zip(&runs[1]) {
            assert_eq!(interpreted.1, compiled.1, "{}: the executors' parameters differ", row.name);
            assert!(
                (interpreted.0 - compiled.0).abs() <= 1e-5,
                "{}: losses {interpreted:?} and {compiled:?}",
                row.name
            );
        }
    }
}

const MODEL: &str = "
model Line {
    input [B, 2]
    linear(1, bias = false)
}
";

#[test]
fn a_linear_model_trains_as_derived_by_hand() {
    // Two examples x1 = [1, 2] with target 1, x2 = [1, -1] with target 0.5, and w = [0.5, -0.25].
    // mse over the batch of 2: L = ((w.x1 - 1)^2 + (w.x2 - 0.5)^2) / 2, so with the residuals
    // r = w.x - t the gradient is r1 x1 + r2 x2. SGD with lr = 0.1, momentum = 0.5,
    // dampening = 0.5 and weight_decay = 0.1: d = g + 0.1 w; b = d on the first step, then
    // b = 0.5 b + 0.5 d; w -= 0.1 b.
    // step 1: r = [0 - 1, 0.75 - 0.5] = [-1, 0.25]; L = (1 + 0.0625) / 2 = 0.53125
    //         g = -[1, 2] + 0.25 [1, -1] = [-0.75, -2.25]; d = b = [-0.7, -2.275]
    //         w = [0.57, -0.0225]
    // step 2: r = [0.525 - 1, 0.5925 - 0.5] = [-0.475, 0.0925]; L = (0.225625 + 0.00855625) / 2 = 0.117090625
    //         g = [-0.3825, -1.0425]; d = [-0.3255, -1.04475]
    //         b = 0.5 [-0.7, -2.275] + 0.5 d = [-0.51275, -1.659875]; w = [0.621275, 0.1434875]
    // step 3: r = [0.90825 - 1, 0.4777875 - 0.5] = [-0.09175, -0.0222125]
    //         L = (0.0084180625 + 0.00049339515625) / 2 = 0.004455728828125
    //         g = [-0.1139625, -0.1612875]; d = [-0.051835, -0.14693875]
    //         b = [-0.2822925, -0.903406875]; w = [0.64950425, 0.2338281875]
    let expected: [(f64, [f64; 2]); 3] = [
        (0.53125, [0.57, -0.0225]),
        (0.117090625, [0.621275, 0.1434875]),
        (0.004455728828125, [0.64950425, 0.2338281875]),
    ];
    let analysis = analyze(MODEL);
    assert!(analysis.diagnostics.is_empty(), "{:?}", analysis.diagnostics);
    let model = analysis.model(&analysis.shapes.models[0].name, &HashMap::new()).unwrap();
    let training = driver::training_loss(&model, Loss::Mse, Some(2)).unwrap();
    let grad = optimize(&reverse(&training, &[2]).0);
    let optimizer = Optimizer::Sgd { lr: 0.1, momentum: 0.5, dampening: 0.5, nesterov: false, weight_decay: 0.1 };
    let batches = [(); 3].map(|_| Batch { input: &[1.0, 2.0, 1.0, -1.0], targets: &[1.0, 0.5], masks: &[] });
    let runs = executors().map(|executor| {
        let steps = run(&*executor, &grad, &optimizer, &[0.5, -0.25], &batches);
        for (t, ((loss, w), (want_loss, want_w))) in steps.iter().zip(&expected).enumerate() {
            let close = |got: f32, want: f64| (f64::from(got) - want).abs() <= 1e-6;
            assert!(
                close(*loss, *want_loss) && close(w[0], want_w[0]) && close(w[1], want_w[1]),
                "{} step {}: loss {loss} and w {w:?}, by hand {want_loss} and {want_w:?}",
                executor.name(),
                t + 1
            );
        }
        steps
    });
    // The two compute the mse in a different order, so they may round apart, by an f32 step.
    for (interpreted, compiled) in runs[0].iter().zip(&runs[1]) {
        let values = |(loss, w): &(f32, Vec<f32>)| [*loss, w[0], w[1]];
        let apart = values(interpreted).iter().zip(values(compiled)).any(|(a, b)| (a - b).abs() > 1e-6);
        assert!(!apart, "the executors differ: {interpreted:?} and {compiled:?}");
    }
}

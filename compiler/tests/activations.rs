//! Every entry of `builtins::activations`, from its table: its values against PyTorch's at
//! the rows below (each activation needs rows, so a new one fails here until it has them),
//! and its derivative in both modes against central differences, used as a function and as
//! a layer of a model.

use nnc_compiler::builtins::activations::ACTIVATIONS;
use nnc_compiler::ir::{Precision, Tensor, eval_function, forward, optimize, reverse};
use nnc_compiler::{analyze, driver};
use std::collections::HashMap;

/// `(call, x, PyTorch's value)`: the call applies the activation to `x`, with settings.
/// The values are those of PyTorch's definitions (`torch.nn.functional`, thresholds
/// included), computed in float64.
const ROWS: &[(&str, f64, f64)] = &[
    ("relu(x)", -1.5, 0.0),
    ("relu(x)", 2.0, 2.0),
    ("sigmoid(x)", 0.5, 0.6224593312018546),
    ("sigmoid(x)", -3.0, 0.04742587317756678),
    ("tanh(x)", 0.5, 0.46211715726000974),
    ("tanh(x)", -2.0, -0.9640275800758169),
    ("silu(x)", 1.0, 0.7310585786300049),
    ("silu(x)", -2.0, -0.2384058440442351),
    ("leaky_relu(x)", -2.0, -0.02),
    ("leaky_relu(x)", 3.0, 3.0),
    ("leaky_relu(x, 0.2)", -1.0, -0.2),
    ("leaky_relu(x, negative_slope = 1.5)", -2.0, -3.0),
    ("elu(x)", -1.0, -0.6321205588285577),
    ("elu(x)", 2.0, 2.0),
    ("elu(x, alpha = 0.5)", -2.0, -0.43233235838169365),
    ("gelu(x)", 1.0, 0.8413447460685429),
    ("gelu(x)", -0.5, -0.15426876936299347),
    ("gelu(x, approximate = tanh)", 1.0, 0.8411919906082768),
    ("gelu(x, approximate = none)", 2.0, 1.9544997361036416),
    ("softplus(x)", -3.0, 0.04858735157374206),
    ("softplus(x)", 1.5, 1.7014132779827524),
    ("softplus(x, beta = 2)", 0.5, 0.6566308437591114),
    ("softplus(x, beta = 2, threshold = 5)", 3.0, 3.0),
    ("softplus(x)", 25.0, 25.0),
    ("hardtanh(x)", -2.5, -1.0),
    ("hardtanh(x)", 0.3, 0.3),
    ("hardtanh(x, min_val = -2, max_val = 0.5)", 1.0, 0.5),
    ("hardtanh(x, -2, 0.5)", -1.5, -1.5),
    ("log_sigmoid(x)", -2.0, -2.1269280110429727),
    ("log_sigmoid(x)", 1.5, -0.2014132779827524),
    ("mish(x)", -1.0, -0.30340146137410895),
    ("mish(x)", 2.0, 1.9439589595339946),
];

/// The points where each activation's derivative is checked: away from kinks.
const POINTS: &[f64] = &[-2.3, -0.7, 0.4, 1.9];

fn function_of(call: &str) -> nnc_compiler::ir::Function {
    let source = format!("fn f(x) = {call}\n");
    let analysis = analyze(&source);
    assert!(analysis.diagnostics.is_empty(), "{source}: {:?}", analysis.diagnostics);
    driver::function(&analysis, "f", &[nnc_compiler::shapes::Shape(Vec::new())]).unwrap()
}

fn value(f: &nnc_compiler::ir::Function, x: f64) -> f64 {
    eval_function(f, &[Tensor::scalar(x)], Precision::F64).unwrap().0[0].data[0]
}

#[test]
fn every_activation_has_pytorchs_values() {
    for activation in ACTIVATIONS {
        let name = activation.builtin.name;
        let rows: Vec<_> = ROWS.iter().filter(|(call, _, _)| call.split('(').next() == Some(name)).collect();
        assert!(!rows.is_empty(), "`{name}` has no rows of PyTorch's values in compiler/tests/activations.rs");
        for (call, x, want) in rows {
            let got = value(&function_of(call), *x);
            assert!((got - want).abs() <= 1e-12 * (1.0 + want.abs()), "{call} at {x}: {got}, PyTorch {want}");
        }
    }
}

#[test]
fn every_activation_differentiates_as_central_differences_say() {
    for (call, _, _) in ROWS {
        let f = function_of(call);
        let gradient = optimize(&reverse(&f, &[0]).0);
        let tangent = optimize(&forward(&f, &[0]).0);
        for &x in POINTS {
            let h = 1e-6;
            let numeric = (value(&f, x + h) - value(&f, x - h)) / (2.0 * h);
            let reverse_mode = eval_function(&gradient, &[Tensor::scalar(x)], Precision::F64).unwrap().0[1].data[0];
            let args = [Tensor::scalar(x), Tensor::scalar(1.0)];
            let forward_mode = eval_function(&tangent, &args, Precision::F64).unwrap().0[1].data[0];
            let close = |d: f64| (d - numeric).abs() <= 1e-6 * (1.0 + numeric.abs());
            assert!(close(reverse_mode), "{call} at {x}: reverse mode {reverse_mode}, differences {numeric}");
            assert!(close(forward_mode), "{call} at {x}: forward mode {forward_mode}, differences {numeric}");
        }
    }
}

#[test]
fn every_activation_is_a_layer_of_a_model() {
    for activation in ACTIVATIONS {
        let name = activation.builtin.name;
        let source = format!("model M {{\n    input [B, 3]\n    linear(4)\n    {name}\n    linear(2)\n}}\n");
        let analysis = analyze(&source);
        assert!(analysis.diagnostics.is_empty(), "{source}: {:?}", analysis.diagnostics);
        let model = analysis.model("M", &HashMap::new()).unwrap();
        let gradient = driver::training_gradient(&model, nnc_compiler::ir::Loss::Mse, 2).unwrap();
        assert!(gradient.params.len() == 6, "{name}: {} arguments", gradient.params.len());
    }
}

//! The optimiser rows that the formula tests (`runtime/tests/optimizers.rs`) and the
//! executor tests (`codegen/tests/optimizers.rs`) share: one parameter of four elements,
//! three steps with the same gradients, and for each optimiser the parameter after every
//! step as PyTorch's documented algorithms give it (the pseudo-code of `torch.optim.SGD`
//! and `torch.optim.Adam`). Each row's derivation is written beside it, worked in exact
//! decimal arithmetic and shown to 9 significant digits; the expected values themselves
//! are exact, or to 12 digits where they do not end sooner.

use nnc_compiler::optim::Optimizer;

/// The parameter before the first step; every element is exact in f32.
pub const START: [f32; 4] = [1.0, -0.5, 2.0, 0.25];

/// The gradient of each step: magnitudes from 1e-3 to 4 with both signs, moving between
/// elements from step to step, and a last element that only weight decay moves.
pub const GRADS: [[f32; 4]; 3] = [[1e-3, 0.5, -4.0, 0.0], [3.0, -0.25, 1e-3, 0.0], [-1e-3, 2.0, 0.5, 0.0]];

/// An optimiser and the parameter after each of the three steps from `START` by `GRADS`,
/// exact (to the digits written).
pub struct Row {
    pub name: &'static str,
    pub optimizer: Optimizer,
    pub after: [[f64; 4]; 3],
}

/// How far an f32 result may be from the exact value: a few roundings of values up to 4
/// (an f32 step of 2.4e-7 between 2 and 4) over three steps; any slip in a formula moves
/// some value of these rows by 0.005 or more.
pub const TOLERANCE: f64 = 2e-6;

/// Asserts that `got`, the parameter after step `step` of `row`, is the row's value;
/// `what` names the run in the message.
pub fn assert_close(what: &str, row: &Row, step: usize, got: &[f32]) {
    let want = &row.after[step - 1];
    let off = got.iter().zip(want).any(|(&g, w)| (f64::from(g) - w).abs() > TOLERANCE);
    assert!(
        !off && got.len() == 4,
        "{what}, {} after step {step}: got {got:?}, PyTorch's formula gives {want:?}",
        row.name
    );
}

fn sgd(lr: f64, momentum: f64, dampening: f64, nesterov: bool, weight_decay: f64) -> Optimizer {
    Optimizer::Sgd { lr, momentum, dampening, nesterov, weight_decay }
}

/// PyTorch's SGD without momentum: p -= lr g.
pub fn sgd_plain() -> Row {
    // lr = 0.1, g as given:
    // step 1: p = [1 - 0.0001, -0.5 - 0.05, 2 + 0.4, 0.25] = [0.9999, -0.55, 2.4, 0.25]
    // step 2: p = [0.9999 - 0.3, -0.55 + 0.025, 2.4 - 0.0001, 0.25] = [0.6999, -0.525, 2.3999, 0.25]
    // step 3: p = [0.6999 + 0.0001, -0.525 - 0.2, 2.3999 - 0.05, 0.25] = [0.7, -0.725, 2.3499, 0.25]
    Row {
        name: "sgd(lr = 0.1)",
        optimizer: sgd(0.1, 0.0, 0.0, false, 0.0),
        after: [[0.9999, -0.55, 2.4, 0.25], [0.6999, -0.525, 2.3999, 0.25], [0.7, -0.725, 2.3499, 0.25]],
    }
}

/// Weight decay adds `weight_decay * p` to the gradient: d = g + wd p; p -= lr d.
pub fn sgd_weight_decay() -> Row {
    // lr = 0.1, wd = 0.1:
    // step 1: d = [0.001 + 0.1, 0.5 - 0.05, -4 + 0.2, 0 + 0.025] = [0.101, 0.45, -3.8, 0.025]
    //         p = [0.9899, -0.545, 2.38, 0.2475]
    // step 2: d = [3 + 0.09899, -0.25 - 0.0545, 0.001 + 0.238, 0.02475] = [3.09899, -0.3045, 0.239, 0.02475]
    //         p = [0.680001, -0.51455, 2.3561, 0.245025]
    // step 3: d = [-0.001 + 0.0680001, 2 - 0.051455, 0.5 + 0.23561, 0.0245025]
    //           = [0.0670001, 1.948545, 0.73561, 0.0245025]
    //         p = [0.67330099, -0.7094045, 2.282539, 0.24257475]
    Row {
        name: "sgd(lr = 0.1, weight_decay = 0.1)",
        optimizer: sgd(0.1, 0.0, 0.0, false, 0.1),
        after: [
            [0.9899, -0.545, 2.38, 0.2475],
            [0.680001, -0.51455, 2.3561, 0.245025],
            [0.67330099, -0.7094045, 2.282539, 0.24257475],
        ],
    }
}

/// Momentum, with weight decay added to the gradient before it enters the buffer:
/// d = g + wd p; b = d on the first step, then b = momentum b + d; p -= lr b.
pub fn sgd_momentum() -> Row {
    // lr = 0.1, momentum = 0.9, wd = 0.1:
    // step 1: d = b = [0.101, 0.45, -3.8, 0.025]; p = [0.9899, -0.545, 2.38, 0.2475]
    // step 2: d = [3 + 0.09899, -0.25 - 0.0545, 0.001 + 0.238, 0.02475] = [3.09899, -0.3045, 0.239, 0.02475]
    //         b = 0.9 [0.101, 0.45, -3.8, 0.025] + d = [3.18989, 0.1005, -3.181, 0.04725]
    //         p = [0.9899 - 0.318989, -0.545 - 0.01005, 2.38 + 0.3181, 0.2475 - 0.004725]
    //           = [0.670911, -0.55505, 2.6981, 0.242775]
    // step 3: d = [-0.001 + 0.0670911, 2 - 0.055505, 0.5 + 0.26981, 0.0242775]
    //           = [0.0660911, 1.944495, 0.76981, 0.0242775]
    //         b = 0.9 [3.18989, 0.1005, -3.181, 0.04725] + d = [2.9369921, 2.034945, -2.09309, 0.0668025]
    //         p = [0.37721179, -0.7585445, 2.907409, 0.23609475]
    Row {
        name: "sgd(lr = 0.1, momentum = 0.9, weight_decay = 0.1)",
        optimizer: sgd(0.1, 0.9, 0.0, false, 0.1),
        after: [
            [0.9899, -0.545, 2.38, 0.2475],
            [0.670911, -0.55505, 2.6981, 0.242775],
            [0.37721179, -0.7585445, 2.907409, 0.23609475],
        ],
    }
}

/// Dampening scales each gradient after the first as it enters the buffer: b = d on the
/// first step, then b = momentum b + (1 - dampening) d.
pub fn sgd_dampening() -> Row {
    // lr = 0.1, momentum = 0.9, dampening = 0.5, wd = 0.1:
    // step 1: d = b = [0.101, 0.45, -3.8, 0.025] (undamped); p = [0.9899, -0.545, 2.38, 0.2475]
    // step 2: d = [3.09899, -0.3045, 0.239, 0.02475]
    //         b = 0.9 [0.101, 0.45, -3.8, 0.025] + 0.5 d = [1.640395, 0.25275, -3.3005, 0.034875]
    //         p = [0.9899 - 0.1640395, -0.545 - 0.025275, 2.38 + 0.33005, 0.2475 - 0.0034875]
    //           = [0.8258605, -0.570275, 2.71005, 0.2440125]
    // step 3: d = [-0.001 + 0.08258605, 2 - 0.0570275, 0.5 + 0.271005, 0.02440125]
    //           = [0.08158605, 1.9429725, 0.771005, 0.02440125]
    //         b = 0.9 [1.640395, 0.25275, -3.3005, 0.034875] + 0.5 d
    //           = [1.517148525, 1.19896125, -2.5849475, 0.043588125]
    //         p = [0.6741456475, -0.690171125, 2.96854475, 0.2396536875]
    Row {
        name: "sgd(lr = 0.1, momentum = 0.9, dampening = 0.5, weight_decay = 0.1)",
        optimizer: sgd(0.1, 0.9, 0.5, false, 0.1),
        after: [
            [0.9899, -0.545, 2.38, 0.2475],
            [0.8258605, -0.570275, 2.71005, 0.2440125],
            [0.6741456475, -0.690171125, 2.96854475, 0.2396536875],
        ],
    }
}

/// Nesterov momentum steps along the gradient plus the momentum of the new buffer:
/// p -= lr (d + momentum b).
pub fn sgd_nesterov() -> Row {
    // lr = 0.1, momentum = 0.9, wd = 0.1, nesterov:
    // step 1: d = b = [0.101, 0.45, -3.8, 0.025]
    //         d + 0.9 b = 1.9 d = [0.1919, 0.855, -7.22, 0.0475]
    //         p = [0.98081, -0.5855, 2.722, 0.24525]
    // step 2: d = [3 + 0.098081, -0.25 - 0.05855, 0.001 + 0.2722, 0.024525] = [3.098081, -0.30855, 0.2732, 0.024525]
    //         b = 0.9 [0.101, 0.45, -3.8, 0.025] + d = [3.188981, 0.09645, -3.1468, 0.047025]
    //         d + 0.9 b = [5.9681639, -0.221745, -2.55892, 0.0668475]
    //         p = [0.38399361, -0.5633255, 2.977892, 0.23856525]
    // step 3: d = [-0.001 + 0.038399361, 2 - 0.05633255, 0.5 + 0.2977892, 0.023856525]
    //           = [0.037399361, 1.94366745, 0.7977892, 0.023856525]
    //         b = 0.9 [3.188981, 0.09645, -3.1468, 0.047025] + d = [2.907482261, 2.03047245, -2.0343308, 0.066179025]
    //         d + 0.9 b = [2.6541333959, 3.771092655, -1.03310852, 0.0834176475]
    //         p = [0.11858027041, -0.9404347655, 3.081202852, 0.23022348525]
    Row {
        name: "sgd(lr = 0.1, momentum = 0.9, nesterov = true, weight_decay = 0.1)",
        optimizer: sgd(0.1, 0.9, 0.0, true, 0.1),
        after: [
            [0.98081, -0.5855, 2.722, 0.24525],
            [0.38399361, -0.5633255, 2.977892, 0.23856525],
            [0.11858027041, -0.9404347655, 3.081202852, 0.23022348525],
        ],
    }
}

/// PyTorch's Adam: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g²;
/// p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
pub fn adam() -> Row {
    // lr = 0.1, b1 = 0.8, b2 = 0.9, eps = 0.1. With eps this large a step is
    // lr |g|/(|g| + eps)-like, so eps, b2 and both bias corrections move every value.
    // step 1: m = 0.2 g = [0.0002, 0.1, -0.8, 0]; v = 0.1 g² = [1e-7, 0.025, 1.6, 0]
    //         c1 = 0.2, c2 = 0.1: m/c1 = [0.001, 0.5, -4, 0], sqrt(v/c2) = [0.001, 0.5, 4, 0]
    //         p -= 0.1 [0.001/0.101, 0.5/0.6, -4/4.1, 0]
    //         p = [0.999009901, -0.583333333, 2.09756098, 0.25]
    // step 2: m = 0.8 m + 0.2 g = [0.60016, 0.03, -0.6398, 0]
    //         v = 0.9 v + 0.1 g² = [0.90000009, 0.02875, 1.4400001, 0]
    //         c1 = 1 - 0.64 = 0.36, c2 = 1 - 0.81 = 0.19
    //         m/c1 = [1.66711111, 0.0833333333, -1.77722222, 0]
    //         sqrt(v/c2) = [2.17642886, 0.388993303, 2.7529889, 0]
    //         p = [0.925776288, -0.600375148, 2.15985432, 0.25]
    // step 3: m = [0.479928, 0.424, -0.41184, 0]; v = [0.810000181, 0.425875, 1.32100009, 0]
    //         c1 = 1 - 0.512 = 0.488, c2 = 1 - 0.729 = 0.271
    //         m/c1 = [0.983459016, 0.868852459, -0.843934426, 0]
    //         sqrt(v/c2) = [1.72885238, 1.25359262, 2.20783584, 0]
    //         p = [0.872001635, -0.664563771, 2.19642254, 0.25]
    Row {
        name: "adam(lr = 0.1, beta1 = 0.8, beta2 = 0.9, eps = 0.1)",
        optimizer: Optimizer::Adam { lr: 0.1, beta1: 0.8, beta2: 0.9, eps: 0.1, weight_decay: 0.0 },
        after: [
            [0.99900990099, -0.583333333333, 2.09756097561, 0.25],
            [0.925776287543, -0.600375148198, 2.1598543207, 0.25],
            [0.872001634853, -0.664563770693, 2.19642253813, 0.25],
        ],
    }
}

/// Adam's weight decay is an L2 term added to the gradient before both moments, as in
/// PyTorch's `Adam` (not the decoupled decay of `AdamW`): g = g + wd p.
pub fn adam_weight_decay() -> Row {
    // lr = 0.1, b1 = 0.8, b2 = 0.9, eps = 0.1, wd = 0.1:
    // step 1: g = [0.101, 0.45, -3.8, 0.025]; m = [0.0202, 0.09, -0.76, 0.005]
    //         v = [0.0010201, 0.02025, 1.444, 6.25e-5]
    //         m/c1 = g, sqrt(v/c2) = |g|: p -= 0.1 g / (|g| + 0.1)
    //         p = [0.949751244, -0.581818182, 2.0974359, 0.23]
    // step 2: g = [3.09497512, -0.308181818, 0.21074359, 0.023]
    //         m = [0.635155025, 0.0103636364, -0.565851282, 0.0086]
    //         v = [0.958805192, 0.0277226033, 1.30404129, 0.00010915]
    //         m/c1 = [1.76431951, 0.0287878788, -1.57180912, 0.0238888889]
    //         sqrt(v/c2) = [2.24640671, 0.381979631, 2.61980442, 0.0239681807]
    //         p = [0.874558844, -0.587791023, 2.15522715, 0.210729822]
    // step 3: g = [0.0864558844, 1.9412209, 0.715522715, 0.0210729822]
    //         m = [0.525415197, 0.396535089, -0.309576483, 0.0110945964]
    //         v = [0.863672135, 0.4017842, 1.22483443, 0.000142642058]
    //         m/c1 = [1.07667049, 0.812571903, -0.634378038, 0.0227348288]
    //         sqrt(v/c2) = [1.78521205, 1.21762002, 2.1259549, 0.0229424161]
    //         p = [0.817447471, -0.649460692, 2.18372629, 0.192237564]
    Row {
        name: "adam(lr = 0.1, beta1 = 0.8, beta2 = 0.9, eps = 0.1, weight_decay = 0.1)",
        optimizer: Optimizer::Adam { lr: 0.1, beta1: 0.8, beta2: 0.9, eps: 0.1, weight_decay: 0.1 },
        after: [
            [0.949751243781, -0.581818181818, 2.09743589744, 0.23],
            [0.874558844081, -0.587791023187, 2.1552271528, 0.210729822152],
            [0.817447470971, -0.649460691796, 2.18372629431, 0.192237564154],
        ],
    }
}

/// Every row.
pub fn all() -> Vec<Row> {
    vec![sgd_plain(), sgd_weight_decay(), sgd_momentum(), sgd_dampening(), sgd_nesterov(), adam(), adam_weight_decay()]
}

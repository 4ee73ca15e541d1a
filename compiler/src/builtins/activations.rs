//! Activations: elementwise layers without parameters, each also a function of its input
//! (`relu(x)`). An entry is everything about one: its name, settings and documentation, and
//! its value as IR primitives, from which the check, lowering, both modes of
//! differentiation, code generation and export follow. Adding an activation is adding an
//! entry here (and its test rows); the reference tables and the editor grammar are
//! generated from this table.

use super::{ActivationLower, ArgKind, Builtin, Entry, Form, Kind, Param, builtin};
use crate::ir::{Emitter, LowerError, Op, Value};

/// An activation applied: how it lowers, and its settings' values in the order of its
/// parameters.
#[derive(Clone, Debug)]
pub struct Use {
    pub lower: ActivationLower,
    pub settings: Vec<f64>,
}

impl Use {
    pub(crate) fn lower(&self, e: &mut Emitter<'_>) -> Result<Value, LowerError> {
        let x = e.input(0)?;
        (self.lower)(e, x, &self.settings)
    }
}

const fn activation(name: &'static str, params: &'static [Param], doc: &'static str, lower: ActivationLower) -> Entry {
    Entry { builtin: builtin(name, Kind::Activation, params, doc), form: Form::Activation(lower) }
}

/// Every activation.
pub static ACTIVATIONS: &[Entry] = &[
    activation("relu", &[], "Rectified linear unit: `max(0, x)`.", |e, x, _| e.op(Op::Relu, &[x])),
    activation("sigmoid", &[], "Logistic sigmoid: `1 / (1 + exp(-x))`.", |e, x, _| e.op(Op::Sigmoid, &[x])),
    activation("tanh", &[], "Hyperbolic tangent.", |e, x, _| e.op(Op::Tanh, &[x])),
    activation("silu", &[], "Sigmoid linear unit (swish): `x · sigmoid(x)`, as PyTorch's `SiLU`.", |e, x, _| {
        let gate = e.op(Op::Sigmoid, &[x])?;
        e.op(Op::Mul, &[x, gate])
    }),
    activation(
        "leaky_relu",
        &[Param {
            name: "negative_slope",
            kind: ArgKind::Real,
            default: Some("0.01"),
            aliases: &["slope"],
            doc: "the slope for negative inputs",
        }],
        "Leaky rectified linear unit: `x` for positive `x`, `negative_slope · x` otherwise, as PyTorch's \
         `LeakyReLU`.",
        // relu(x) - slope · relu(-x), which is right for any slope, also above 1.
        |e, x, settings| {
            let positive = e.op(Op::Relu, &[x])?;
            let flipped = e.op(Op::Neg, &[x])?;
            let negative = e.op(Op::Relu, &[flipped])?;
            let slope = e.constant(settings[0])?;
            let scaled = e.op(Op::Mul, &[slope, negative])?;
            e.op(Op::Sub, &[positive, scaled])
        },
    ),
    activation(
        "elu",
        &[Param {
            name: "alpha",
            kind: ArgKind::Real,
            default: Some("1"),
            aliases: &[],
            doc: "the scale of the negative part",
        }],
        "Exponential linear unit: `x` for positive `x`, `alpha · (exp(x) - 1)` otherwise, as PyTorch's `ELU`.",
        // relu(x) + alpha · (exp(min(x, 0)) - 1): the exponential never sees a large input.
        |e, x, settings| {
            let zero = e.constant(0.0)?;
            let below = e.op(Op::Min, &[x, zero])?;
            let grown = e.op(Op::Exp, &[below])?;
            let one = e.constant(1.0)?;
            let shifted = e.op(Op::Sub, &[grown, one])?;
            let alpha = e.constant(settings[0])?;
            let negative = e.op(Op::Mul, &[alpha, shifted])?;
            let positive = e.op(Op::Relu, &[x])?;
            e.op(Op::Add, &[positive, negative])
        },
    ),
    activation(
        "gelu",
        &[Param {
            name: "approximate",
            kind: ArgKind::Word(&["none", "tanh"]),
            default: Some("none"),
            aliases: &[],
            doc: "`none` for the exact form with erf, `tanh` for its tanh approximation",
        }],
        "Gaussian error linear unit, as PyTorch's `GELU`: `x · Φ(x) = x/2 · (1 + erf(x/√2))`, or with \
         `approximate = tanh`, `x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))`.",
        |e, x, settings| {
            let inner = if settings[0] == 0.0 {
                let scale = e.constant(std::f64::consts::FRAC_1_SQRT_2)?;
                let scaled = e.op(Op::Mul, &[x, scale])?;
                e.op(Op::Erf, &[scaled])?
            } else {
                let cube = e.op(Op::Mul, &[x, x])?;
                let cube = e.op(Op::Mul, &[cube, x])?;
                let c = e.constant(0.044715)?;
                let cubic = e.op(Op::Mul, &[c, cube])?;
                let sum = e.op(Op::Add, &[x, cubic])?;
                let scale = e.constant((2.0 / std::f64::consts::PI).sqrt())?;
                let scaled = e.op(Op::Mul, &[scale, sum])?;
                e.op(Op::Tanh, &[scaled])?
            };
            let one = e.constant(1.0)?;
            let gate = e.op(Op::Add, &[one, inner])?;
            let half = e.constant(0.5)?;
            let half_x = e.op(Op::Mul, &[half, x])?;
            e.op(Op::Mul, &[half_x, gate])
        },
    ),
    activation(
        "softplus",
        &[
            Param { name: "beta", kind: ArgKind::Real, default: Some("1"), aliases: &[], doc: "the sharpness" },
            Param {
                name: "threshold",
                kind: ArgKind::Real,
                default: Some("20"),
                aliases: &[],
                doc: "above this, `beta · x`, the value is `x` itself",
            },
        ],
        "Smooth rectifier: `ln(1 + exp(beta · x)) / beta`, and `x` where `beta · x` is above `threshold`, as \
         PyTorch's `Softplus`.",
        |e, x, settings| {
            let beta = e.constant(settings[0])?;
            let scaled = e.op(Op::Mul, &[beta, x])?;
            let smooth = softplus_of(e, scaled)?;
            let smooth = e.op(Op::Div, &[smooth, beta])?;
            // 1 up to the threshold, where the smooth form holds; 0 above it, where x does.
            let threshold = e.constant(settings[1])?;
            let below = e.op(Op::GreaterEq, &[threshold, scaled])?;
            let gap = e.op(Op::Sub, &[smooth, x])?;
            let taken = e.op(Op::Mul, &[below, gap])?;
            e.op(Op::Add, &[x, taken])
        },
    ),
    activation(
        "hardtanh",
        &[
            Param { name: "min_val", kind: ArgKind::Real, default: Some("-1"), aliases: &[], doc: "the lower bound" },
            Param { name: "max_val", kind: ArgKind::Real, default: Some("1"), aliases: &[], doc: "the upper bound" },
        ],
        "`x` clamped to `[min_val, max_val]`, as PyTorch's `Hardtanh`.",
        |e, x, settings| {
            let low = e.constant(settings[0])?;
            let high = e.constant(settings[1])?;
            let above = e.op(Op::Max, &[x, low])?;
            e.op(Op::Min, &[above, high])
        },
    ),
    activation(
        "log_sigmoid",
        &[],
        "Logarithm of the sigmoid, `-ln(1 + exp(-x))`, computed stably, as PyTorch's `LogSigmoid`.",
        |e, x, _| {
            let flipped = e.op(Op::Neg, &[x])?;
            let softplus = softplus_of(e, flipped)?;
            e.op(Op::Neg, &[softplus])
        },
    ),
    activation("mish", &[], "Mish: `x · tanh(ln(1 + exp(x)))`, as PyTorch's `Mish`.", |e, x, _| {
        let softplus = softplus_of(e, x)?;
        let gate = e.op(Op::Tanh, &[softplus])?;
        e.op(Op::Mul, &[x, gate])
    }),
];

/// `ln(1 + exp(z))`, written so that the exponential never grows: `relu(z) + ln(1 +
/// exp(-|z|))`.
fn softplus_of(e: &mut Emitter<'_>, z: Value) -> Result<Value, LowerError> {
    let positive = e.op(Op::Relu, &[z])?;
    let size = e.op(Op::Abs, &[z])?;
    let shrunk = e.op(Op::Neg, &[size])?;
    let small = e.op(Op::Exp, &[shrunk])?;
    let one = e.constant(1.0)?;
    let sum = e.op(Op::Add, &[one, small])?;
    let log = e.op(Op::Ln, &[sum])?;
    e.op(Op::Add, &[positive, log])
}

/// The value of each setting of an activation, the one given or its default: a number, or
/// for a setting of listed words the index of the word.
pub fn settings(
    builtin: &Builtin,
    number: &dyn Fn(&str) -> Option<f64>,
    word: &dyn Fn(&str) -> Option<String>,
) -> Vec<f64> {
    builtin
        .params
        .iter()
        .map(|param| match param.kind {
            ArgKind::Word(words) => {
                let given = word(param.name).or(param.default.map(str::to_string)).unwrap_or_default();
                words.iter().position(|w| *w == given).unwrap_or(0) as f64
            }
            _ => number(param.name).or_else(|| super::default_number(param)).unwrap_or(0.0),
        })
        .collect()
}

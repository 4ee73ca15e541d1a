//! Losses, `mse`, `cross_entropy` and `bce`: functions of a prediction and a target, and
//! what a `train` block names. Each with its shape rule and its value as IR primitives.

use super::{ArgKind, Entry, Form, Kind, builtin, p};
use crate::checked::Call;
use crate::ir::{Emitter, LowerError, Op, Value as IrValue};
use crate::shapes::rules::{Applied, Rule, Settings, Site, broadcast};
use crate::shapes::{Shape, Value};
use nnc_grammar::{Code, Diagnostic};

pub static ENTRIES: &[Entry] = &[
    Entry {
        builtin: builtin(
            "mse",
            Kind::Loss,
            &[p("y", ArgKind::Tensor, None, "the prediction"), p("t", ArgKind::Tensor, None, "the target")],
            "Mean squared error: `mean((y - t)^2)`.",
        ),
        form: Form::Rule(|site, _, inputs| elementwise(site, inputs, Loss::Mse)),
    },
    Entry {
        builtin: builtin(
            "cross_entropy",
            Kind::Loss,
            &[
                p("y", ArgKind::Tensor, None, "the logits `[B, classes]`"),
                p("t", ArgKind::Tensor, None, "the class labels `[B]`"),
            ],
            "Softmax cross-entropy of logits and integer class labels, fused with the softmax for stability.",
        ),
        form: Form::Rule(cross_entropy),
    },
    Entry {
        builtin: builtin(
            "bce",
            Kind::Loss,
            &[
                p("y", ArgKind::Tensor, None, "probabilities in (0, 1)"),
                p("t", ArgKind::Tensor, None, "targets 0 or 1"),
            ],
            "Binary cross-entropy: `-mean(t ln y + (1 - t) ln(1 - y))`.",
        ),
        form: Form::Rule(|site, _, inputs| elementwise(site, inputs, Loss::Bce)),
    },
];

/// The losses a `train` block can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// Softmax cross-entropy of logits and integer class labels `[B]`.
    CrossEntropy,
    /// Mean squared error against targets of the output's shape.
    Mse,
    /// Binary cross-entropy of probabilities against targets of the output's shape.
    Bce,
}

impl Loss {
    pub const ALL: [Loss; 3] = [Loss::Mse, Loss::CrossEntropy, Loss::Bce];

    pub fn from_name(name: &str) -> Option<Loss> {
        Loss::ALL.into_iter().find(|loss| loss.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Loss::CrossEntropy => "cross_entropy",
            Loss::Mse => "mse",
            Loss::Bce => "bce",
        }
    }

    /// The shape of the targets for an output of shape `output`: class numbers per
    /// example for cross-entropy, the output's own shape otherwise.
    pub fn target_shape(self, output: &Shape) -> Shape {
        match self {
            Loss::CrossEntropy => Shape(output.0.first().cloned().into_iter().collect()),
            Loss::Mse | Loss::Bce => output.clone(),
        }
    }

    /// The loss of the prediction `y` against the targets `t`.
    pub(crate) fn lower(self, e: &mut Emitter<'_>, y: IrValue, t: IrValue) -> Result<IrValue, LowerError> {
        match self {
            Loss::CrossEntropy => e.op(Op::SoftmaxCrossEntropy, &[y, t]),
            Loss::Mse => e.op(Op::Mse, &[y, t]),
            Loss::Bce => bce(e, y, t),
        }
    }
}

/// Binary cross-entropy, `-mean(t ln y + (1 - t) ln(1 - y))`.
fn bce(e: &mut Emitter<'_>, y: IrValue, t: IrValue) -> Result<IrValue, LowerError> {
    e.check(Op::Sub, &[y, t])?;
    let one = e.constant(1.0)?;
    let ln_y = e.op(Op::Ln, &[y])?;
    let a = e.op(Op::Mul, &[t, ln_y])?;
    let one_t = e.op(Op::Sub, &[one, t])?;
    let one_y = e.op(Op::Sub, &[one, y])?;
    let ln_1y = e.op(Op::Ln, &[one_y])?;
    let b = e.op(Op::Mul, &[one_t, ln_1y])?;
    let total = e.op(Op::Add, &[a, b])?;
    let mean = e.op(Op::Mean { axis: None }, &[total])?;
    e.op(Op::Neg, &[mean])
}

impl Loss {
    pub(crate) fn lower_call(self, e: &mut Emitter<'_>) -> Result<IrValue, LowerError> {
        let (y, t) = (e.input(0)?, e.input(1)?);
        self.lower(e, y, t)
    }
}

/// A scalar from operands whose shapes are known.
fn scalar(inputs: &[Value], loss: Loss) -> Rule {
    if inputs.iter().any(|input| input.shape.is_none()) {
        return Ok(Applied::unknown());
    }
    Ok(Applied { value: Value::scalar(), call: Some(Call::Loss(loss)), ..Applied::default() })
}

/// `mse` and `bce`: the prediction and the target broadcast together.
fn elementwise(site: &Site<'_>, inputs: &[Value], loss: Loss) -> Rule {
    if let Some(t) = inputs.get(1) {
        broadcast(site, &inputs[0], t, loss.name(), site.span, site.span)?;
    }
    scalar(inputs, loss)
}

/// Logits `[N, classes]` and integer labels `[N]`.
fn cross_entropy(site: &Site<'_>, _: &Settings, inputs: &[Value]) -> Rule {
    if let (Some(y), Some(t)) = (&inputs[0].shape, inputs.get(1).and_then(|t| t.shape.as_ref()))
        && (y.rank() != 2 || t.rank() != 1 || y.0[0] != t.0[0])
    {
        return Err(Diagnostic::new(
            Code::ArgumentShape,
            format!("`cross_entropy` takes logits [N, classes] and labels [N], but gets {y} and {t}"),
            site.span,
            "shapes do not fit",
        ));
    }
    scalar(inputs, Loss::CrossEntropy)
}

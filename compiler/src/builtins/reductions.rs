//! Reductions, `sum`, `mean`, `max` and `min` over every element or one axis (kept with
//! size 1 by `keepdim`), and the elementwise `max(x, y)` and `min(x, y)`: their shape
//! rules and lowering.

use super::{ArgKind, Entry, Form, Kind, Param, X, aka, builtin, p};
use crate::checked::Call;
use crate::ir::{Emitter, LowerError, Op, Value as IrValue};
use crate::shapes::rules::{Applied, Rule, Settings, Site, broadcast, normalise_axis};
use crate::shapes::{Dim, Shape, Value};

/// As PyTorch's `keepdim`: the reduced axes stay, with size 1, so that the result
/// broadcasts against the input (`x - mean(x, axis = 1, keepdim = true)`).
const KEEPDIM: Param = p("keepdim", ArgKind::Bool, Some("false"), "keep each reduced axis, with size 1");

pub static ENTRIES: &[Entry] = &[
    Entry {
        builtin: builtin(
            "max",
            Kind::Function,
            &[
                X,
                p("y", ArgKind::Tensor, Some("none"), "with a second tensor, the elementwise maximum"),
                aka("axis", ArgKind::Int, Some("all"), &["dim"], "the axis to reduce"),
                KEEPDIM,
            ],
            "`max(x, y)` is the elementwise maximum; `max(x)` the largest element, `max(x, axis = 1)` along an axis.",
        ),
        form: Form::Rule(|site, settings, inputs| extreme(site, settings, inputs, Reduction::Max)),
    },
    Entry {
        builtin: builtin(
            "min",
            Kind::Function,
            &[
                X,
                p("y", ArgKind::Tensor, Some("none"), "with a second tensor, the elementwise minimum"),
                aka("axis", ArgKind::Int, Some("all"), &["dim"], "the axis to reduce"),
                KEEPDIM,
            ],
            "`min(x, y)` is the elementwise minimum; `min(x)` the smallest element, `min(x, axis = 1)` along an axis.",
        ),
        form: Form::Rule(|site, settings, inputs| extreme(site, settings, inputs, Reduction::Min)),
    },
    Entry {
        builtin: builtin(
            "sum",
            Kind::Function,
            &[X, aka("axis", ArgKind::Int, Some("all"), &["dim"], "the axis to reduce"), KEEPDIM],
            "Sum of all elements, or along `axis`.",
        ),
        form: Form::Rule(|site, settings, inputs| reduce(site, settings, inputs, Reduction::Sum)),
    },
    Entry {
        builtin: builtin(
            "mean",
            Kind::Function,
            &[X, aka("axis", ArgKind::Int, Some("all"), &["dim"], "the axis to reduce"), KEEPDIM],
            "Mean of all elements, or along `axis`.",
        ),
        form: Form::Rule(|site, settings, inputs| reduce(site, settings, inputs, Reduction::Mean)),
    },
];

/// What a reduction computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    Sum,
    Mean,
    Max,
    Min,
}

/// `max` and `min`: of two tensors elementwise, or a reduction of one.
fn extreme(site: &Site<'_>, settings: &Settings, inputs: &[Value], kind: Reduction) -> Rule {
    let [x, y] = inputs else {
        return reduce(site, settings, inputs, kind);
    };
    let name = if kind == Reduction::Max { "max" } else { "min" };
    let mut applied = broadcast(site, x, y, name, site.span, site.span)?;
    let both = x.shape.is_some() && y.shape.is_some();
    applied.call = both.then_some(Call::Pairwise(Pairwise { max: kind == Reduction::Max }));
    Ok(applied)
}

/// A reduction over every element, to a scalar, or over `axis`, which it removes.
fn reduce(site: &Site<'_>, settings: &Settings, inputs: &[Value], kind: Reduction) -> Rule {
    let Some(shape) = &inputs[0].shape else {
        return Ok(Applied::unknown());
    };
    let axis = match settings.axis() {
        Some((axis, span)) => Some(normalise_axis(site, shape, axis, span)?),
        None => None,
    };
    let keep = settings.bool_or("keepdim", false);
    let mut dims = shape.0.clone();
    match (axis, keep) {
        (Some(index), true) => dims[index] = Dim::constant(1),
        (Some(index), false) => {
            dims.remove(index);
        }
        (None, true) => dims.iter_mut().for_each(|d| *d = Dim::constant(1)),
        (None, false) => dims.clear(),
    }
    let call = Call::Reduce(Reduce { kind, axis, keep });
    Ok(Applied { value: Value::new(Shape(dims)), call: Some(call), ..Applied::default() })
}

/// A reduction, over every element (`axis` `None`) or one axis, which `keep` keeps with
/// size 1.
#[derive(Clone, Debug)]
pub struct Reduce {
    pub kind: Reduction,
    pub axis: Option<usize>,
    pub keep: bool,
}

impl Reduce {
    pub(crate) fn lower(&self, e: &mut Emitter<'_>) -> Result<IrValue, LowerError> {
        let reduced = self.reduced(e)?;
        if !self.keep {
            return Ok(reduced);
        }
        let shape = e.output_shape()?;
        e.op(Op::Reshape(shape), &[reduced])
    }

    fn reduced(&self, e: &mut Emitter<'_>) -> Result<IrValue, LowerError> {
        let x = e.input(0)?;
        let axis = self.axis;
        match self.kind {
            Reduction::Sum => e.op(Op::Sum { axis }, &[x]),
            Reduction::Mean => e.op(Op::Mean { axis }, &[x]),
            Reduction::Max => e.op(Op::ReduceMax { axis }, &[x]),
            // min(x) = -max(-x)
            Reduction::Min => {
                let negated = e.op(Op::Neg, &[x])?;
                let top = e.op(Op::ReduceMax { axis }, &[negated])?;
                e.op(Op::Neg, &[top])
            }
        }
    }
}

/// The elementwise maximum or minimum of two tensors.
#[derive(Clone, Debug)]
pub struct Pairwise {
    pub max: bool,
}

impl Pairwise {
    pub(crate) fn lower(&self, e: &mut Emitter<'_>) -> Result<IrValue, LowerError> {
        let (x, y) = (e.input(0)?, e.input(1)?);
        e.op(if self.max { Op::Max } else { Op::Min }, &[x, y])
    }
}

//! `dropout`: its setting, shape rule and lowering, a multiplication by a mask argument of
//! the training step (and nothing at inference).

use super::{ArgKind, Entry, Form, Kind, builtin, p};
use crate::checked::Call;
use crate::ir::{Emitter, LowerError, Op, Value as IrValue};
use crate::shapes::Value;
use crate::shapes::rules::{Applied, Rule, Settings, Site};
use nnc_grammar::{Code, Diagnostic};

pub static ENTRIES: &[Entry] = &[Entry {
    builtin: builtin(
        "dropout",
        Kind::Activation,
        &[p("p", ArgKind::Real, Some("0.5"), "probability of zeroing each element")],
        "Zeroes each element with probability `p` while training and scales the rest by `1 / (1 - p)`; \
                  does nothing at inference.",
    ),
    form: Form::Rule(dropout),
}];

/// Dropout: same shape; `p` must be a probability below 1.
fn dropout(site: &Site<'_>, settings: &Settings, inputs: &[Value]) -> Rule {
    let input = &inputs[0];
    if let Some(p) = settings.real("p")
        && !(0.0..1.0).contains(&p)
    {
        return Err(Diagnostic::new(
            Code::WrongValue,
            format!("`{}` drops with probability {p}, which is not in [0, 1)", site.label),
            settings.span("p").unwrap_or(site.span),
            "must be at least 0 and below 1",
        )
        .with_help("`dropout(0.5)` zeroes half of the values while training"));
    }
    let p = settings.real("p").unwrap_or(0.5);
    Ok(Applied::same_by(input, Call::Dropout(Dropout { p, mask: String::new() })))
}

/// Dropout with probability `p`; the mask is an argument of a training step named `mask`,
/// after the layer's place in the model (`3.mask`).
#[derive(Clone, Debug)]
pub struct Dropout {
    pub p: f64,
    pub mask: String,
}

impl Dropout {
    pub(crate) fn lower(&self, e: &mut Emitter<'_>) -> Result<IrValue, LowerError> {
        let x = e.input(0)?;
        if !e.training() || self.p <= 0.0 {
            return Ok(x);
        }
        let mask = e.mask(&self.mask, x, self.p);
        e.op(Op::Mul, &[x, mask])
    }
}

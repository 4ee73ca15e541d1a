//! `softmax` and `log_softmax` along an axis: their settings, shape rule and lowering.

use super::{ArgKind, Entry, Form, Kind, aka, builtin};
use crate::checked::Call;
use crate::ir::{Emitter, LowerError, Op, Value as IrValue};
use crate::shapes::Value;
use crate::shapes::rules::{Applied, Rule, Settings, Site, normalise_axis, shape_of};
use nnc_grammar::{Code, Diagnostic};

pub static ENTRIES: &[Entry] = &[
    Entry {
        builtin: builtin(
            "softmax",
            Kind::Activation,
            &[aka("axis", ArgKind::Int, Some("-1"), &["dim"], "the axis that sums to one")],
            "Softmax: `exp(x) / sum(exp(x))` along `axis`.",
        ),
        form: Form::Rule(|site, settings, inputs| along_axis(site, settings, inputs, false)),
    },
    Entry {
        builtin: builtin(
            "log_softmax",
            Kind::Activation,
            &[aka("axis", ArgKind::Int, Some("-1"), &["dim"], "the axis to normalise")],
            "Logarithm of the softmax along `axis`, computed stably.",
        ),
        form: Form::Rule(|site, settings, inputs| along_axis(site, settings, inputs, true)),
    },
];

/// Softmax and log-softmax: same shape; the axis (the last by default) must exist.
fn along_axis(site: &Site<'_>, settings: &Settings, inputs: &[Value], log: bool) -> Rule {
    let input = &inputs[0];
    let Some(shape) = shape_of(input) else {
        return Ok(Applied::same(input));
    };
    let axis = match settings.int("axis") {
        Some(axis) => axis.as_const().ok_or_else(|| {
            Diagnostic::new(
                Code::AxisOutOfRange,
                format!("`{}` needs a whole number for its axis, not {axis}", site.label),
                settings.span("axis").unwrap_or(site.span),
                "not a number",
            )
        })?,
        None => -1,
    };
    let axis = normalise_axis(site, shape, axis, settings.span("axis").unwrap_or(site.span))?;
    Ok(Applied::same_by(input, Call::Softmax(Softmax { axis, log })))
}

/// The softmax, or its logarithm, along `axis`.
#[derive(Clone, Debug)]
pub struct Softmax {
    pub axis: usize,
    pub log: bool,
}

impl Softmax {
    pub(crate) fn lower(&self, e: &mut Emitter<'_>) -> Result<IrValue, LowerError> {
        let x = e.input(0)?;
        let axis = self.axis;
        e.op(if self.log { Op::LogSoftmax { axis } } else { Op::Softmax { axis } }, &[x])
    }
}

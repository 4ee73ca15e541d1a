//! Initialisers of `param`s: each builds the typed initialiser from its settings.

use super::{ArgKind, Entry, Form, Kind, builtin, p};
use crate::ir::ParamInit;

pub static ENTRIES: &[Entry] = &[
    Entry {
        builtin: builtin("zeros", Kind::Initializer, &[], "All zeros."),
        form: Form::Initializer(|_| Some(ParamInit::Zeros)),
    },
    Entry {
        builtin: builtin("ones", Kind::Initializer, &[], "All ones."),
        form: Form::Initializer(|_| Some(ParamInit::Ones)),
    },
    Entry {
        builtin: builtin(
            "normal",
            Kind::Initializer,
            &[p("mean", ArgKind::Real, Some("0"), "mean"), p("std", ArgKind::Real, Some("1"), "standard deviation")],
            "Samples from a normal distribution.",
        ),
        form: Form::Initializer(|r| Some(ParamInit::Normal { mean: r.real("mean")?, std: r.real("std")? })),
    },
    Entry {
        builtin: builtin(
            "uniform",
            Kind::Initializer,
            &[p("low", ArgKind::Real, Some("-1"), "lower bound"), p("high", ArgKind::Real, Some("1"), "upper bound")],
            "Samples from a uniform distribution.",
        ),
        form: Form::Initializer(|r| Some(ParamInit::Uniform { low: r.real("low")?, high: r.real("high")? })),
    },
    Entry {
        builtin: builtin(
            "kaiming_uniform",
            Kind::Initializer,
            &[],
            "PyTorch's default for `linear` and `conv2d` weights: uniform in `±1/sqrt(fan_in)`.",
        ),
        form: Form::Initializer(|_| Some(ParamInit::KaimingUniform)),
    },
    Entry {
        builtin: builtin("xavier_uniform", Kind::Initializer, &[], "Uniform in `±sqrt(6 / (fan_in + fan_out))`."),
        form: Form::Initializer(|_| Some(ParamInit::XavierUniform)),
    },
];

//! Initialisers of `param`s: each builds the typed initialiser from its settings.

use super::{ArgKind, Builtin, Entry, Form, Kind, builtin, p};
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
        builtin: Builtin {
            name: "normal",
            kind: Kind::Initializer,
            params: &[
                p("mean", ArgKind::Real, Some("0"), "mean"),
                p("std", ArgKind::Real, Some("1"), "standard deviation"),
            ],
            doc: "Samples from a normal distribution.",
            variadic: false,
            leading: None,
        },
        form: Form::Initializer(|r| Some(ParamInit::Normal { mean: r.real("mean")?, std: r.real("std")? })),
    },
    Entry {
        builtin: Builtin {
            name: "uniform",
            kind: Kind::Initializer,
            params: &[
                p("low", ArgKind::Real, Some("-1"), "lower bound"),
                p("high", ArgKind::Real, Some("1"), "upper bound"),
            ],
            doc: "Samples from a uniform distribution.",
            variadic: false,
            leading: None,
        },
        form: Form::Initializer(|r| Some(ParamInit::Uniform { low: r.real("low")?, high: r.real("high")? })),
    },
    Entry {
        builtin: Builtin {
            name: "kaiming_uniform",
            kind: Kind::Initializer,
            params: &[],
            doc: "PyTorch's default for `linear` and `conv2d` weights: uniform in `±1/sqrt(fan_in)`.",
            variadic: false,
            leading: None,
        },
        form: Form::Initializer(|_| Some(ParamInit::KaimingUniform)),
    },
    Entry {
        builtin: Builtin {
            name: "xavier_uniform",
            kind: Kind::Initializer,
            params: &[],
            doc: "Uniform in `±sqrt(6 / (fan_in + fan_out))`.",
            variadic: false,
            leading: None,
        },
        form: Form::Initializer(|_| Some(ParamInit::XavierUniform)),
    },
];

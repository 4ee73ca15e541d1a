//! Optimisers, `sgd` and `adam`, with PyTorch's settings and defaults: each builds the
//! typed optimiser of a `train` block from its settings.

use super::{ArgKind, Entry, Form, Kind, Read, aka, builtin, p};
use crate::optim::Optimizer;

pub static ENTRIES: &[Entry] = &[
    Entry {
        builtin: builtin(
            "sgd",
            Kind::Optimizer,
            &[
                aka("lr", ArgKind::Real, Some("0.01"), &["learning_rate"], "learning rate"),
                p("momentum", ArgKind::Real, Some("0"), "momentum factor"),
                p("nesterov", ArgKind::Bool, Some("false"), "use Nesterov momentum"),
                p("weight_decay", ArgKind::Real, Some("0"), "L2 penalty added to the gradient"),
                p(
                    "dampening",
                    ArgKind::Real,
                    Some("0"),
                    "fraction of each gradient after the first left out of the momentum buffer",
                ),
            ],
            "Stochastic gradient descent, with optional (Nesterov) momentum, dampening and weight decay, as \
                  PyTorch's `SGD`; Nesterov momentum needs a momentum and no dampening.",
        ),
        form: Form::Optimizer(sgd),
    },
    Entry {
        builtin: builtin(
            "adam",
            Kind::Optimizer,
            &[
                aka("lr", ArgKind::Real, Some("0.001"), &["learning_rate"], "learning rate"),
                p("beta1", ArgKind::Real, Some("0.9"), "decay of the first moment"),
                p("beta2", ArgKind::Real, Some("0.999"), "decay of the second moment"),
                p("eps", ArgKind::Real, Some("1e-8"), "added to the denominator"),
                p("weight_decay", ArgKind::Real, Some("0"), "L2 penalty added to the gradient"),
            ],
            "Adam, as PyTorch's `Adam`.",
        ),
        form: Form::Optimizer(adam),
    },
];

fn sgd(r: &mut dyn Read) -> Option<Optimizer> {
    Some(Optimizer::Sgd {
        lr: r.real("lr")?,
        momentum: r.real("momentum")?,
        dampening: r.real("dampening")?,
        nesterov: r.flag("nesterov").unwrap_or(false),
        weight_decay: r.real("weight_decay")?,
    })
}

fn adam(r: &mut dyn Read) -> Option<Optimizer> {
    Some(Optimizer::Adam {
        lr: r.real("lr")?,
        beta1: r.real("beta1")?,
        beta2: r.real("beta2")?,
        eps: r.real("eps")?,
        weight_decay: r.real("weight_decay")?,
    })
}

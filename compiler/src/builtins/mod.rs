//! The built-in names of the language: layers, functions, losses, optimisers, data
//! sources, initialisers and `train` settings, with their arguments and documentation.
//!
//! This table is what name resolution, completion, hover and the reference documentation
//! read. Families of their own (`activations`) carry their lowering in their entries too.

pub mod activations;

/// What kind of value an argument takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// A tensor: the input of a layer or an operand of a function.
    Tensor,
    /// A whole number, such as a layer size.
    Int,
    /// A whole number or a pair `(h, w)`, such as a kernel size.
    IntOrPair,
    /// A real number.
    Real,
    Bool,
    Str,
    /// One of the listed words, such as `last` for a label column.
    Word(&'static [&'static str]),
    /// A whole number or one of the listed words.
    IntOrWord(&'static [&'static str]),
    /// A shape such as `[1, 8, 8]`.
    Shape,
    /// A loss name: `mse`, `cross_entropy`, `bce`.
    Loss,
    /// An optimiser: `sgd(...)` or `adam(...)`.
    Optimizer,
    /// A data source: `csv(...)`, `xor(...)`, ...
    DataSource,
}

/// One parameter of a built-in.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    pub name: &'static str,
    pub kind: ArgKind,
    /// The default as written in the docs; `None` makes the argument required.
    pub default: Option<&'static str>,
    /// Other names users may know this parameter by (PyTorch's, for instance).
    pub aliases: &'static [&'static str],
    pub doc: &'static str,
}

/// Where a built-in may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A layer with parameters: only in a `model` or `layer`.
    Layer,
    /// A layer without parameters that is also a function of its input (`relu`).
    Activation,
    /// A function of tensors (`ln`, `sum`).
    Function,
    /// A loss: a function of the output and the target, named in `train` blocks.
    Loss,
    Optimizer,
    DataSource,
    Initializer,
}

#[derive(Clone, Copy, Debug)]
pub struct Builtin {
    pub name: &'static str,
    pub kind: Kind,
    /// For layers and activations, these are the settings; the input comes from the
    /// previous line, a pipeline, or a first tensor argument. For functions the tensor
    /// operands come first.
    pub params: &'static [Param],
    /// Takes any number of whole numbers (`reshape(1, 8, 8)`).
    pub variadic: bool,
    pub doc: &'static str,
}

const fn p(name: &'static str, kind: ArgKind, default: Option<&'static str>, doc: &'static str) -> Param {
    Param { name, kind, default, aliases: &[], doc }
}

const fn aka(
    name: &'static str,
    kind: ArgKind,
    default: Option<&'static str>,
    aliases: &'static [&'static str],
    doc: &'static str,
) -> Param {
    Param { name, kind, default, aliases, doc }
}

const X: Param = p("x", ArgKind::Tensor, None, "the input");

const fn unary(name: &'static str, doc: &'static str) -> Builtin {
    Builtin { name, kind: Kind::Function, params: &[X], variadic: false, doc }
}

const SAMPLES: Param = p("samples", ArgKind::Int, Some("400"), "how many points to generate");
const NOISE: Param = p("noise", ArgKind::Real, Some("0.1"), "standard deviation of the noise added to each point");
const SEED: Param = p("seed", ArgKind::Int, Some("0"), "seed of the generator");

/// The built-ins that are not in a family file of their own yet.
const OTHERS: &[Builtin] = &[
    // Layers with parameters.
    Builtin {
        name: "linear",
        kind: Kind::Layer,
        params: &[
            aka("out_features", ArgKind::Int, None, &["out", "units", "features"], "number of output features"),
            p("bias", ArgKind::Bool, Some("true"), "whether to add a learned bias"),
        ],
        variadic: false,
        doc: "A fully connected layer: `y = x W^T + b`, with `weight: [out_features, in_features]` and \
              `bias: [out_features]` as in PyTorch. The input features are taken from the input's last dimension.",
    },
    Builtin {
        name: "conv2d",
        kind: Kind::Layer,
        params: &[
            aka("out_channels", ArgKind::Int, None, &["filters", "channels"], "number of filters, the output channels"),
            aka("kernel", ArgKind::IntOrPair, None, &["kernel_size"], "filter size, `3` or `(3, 5)`"),
            p("stride", ArgKind::IntOrPair, Some("1"), "step between filter positions"),
            aka("pad", ArgKind::IntOrPair, Some("0"), &["padding"], "zeros added on each side"),
            p("bias", ArgKind::Bool, Some("true"), "whether to add a learned bias per output channel"),
        ],
        variadic: false,
        doc: "A 2-D convolution over `[B, C, H, W]` inputs, with `weight: [out_channels, in_channels, kh, kw]` \
              and `bias: [out_channels]`. Output size: `floor((N + 2 pad - kernel) / stride) + 1`.",
    },
    // Layers without parameters.
    Builtin {
        name: "maxpool",
        kind: Kind::Activation,
        params: &[
            aka("kernel", ArgKind::IntOrPair, None, &["kernel_size"], "window size"),
            p("stride", ArgKind::IntOrPair, Some("kernel"), "step between windows"),
        ],
        variadic: false,
        doc: "Max pooling over `[B, C, H, W]`: the largest value of each window.",
    },
    Builtin {
        name: "avgpool",
        kind: Kind::Activation,
        params: &[
            aka("kernel", ArgKind::IntOrPair, None, &["kernel_size"], "window size"),
            p("stride", ArgKind::IntOrPair, Some("kernel"), "step between windows"),
        ],
        variadic: false,
        doc: "Average pooling over `[B, C, H, W]`: the mean of each window.",
    },
    Builtin {
        name: "flatten",
        kind: Kind::Activation,
        params: &[],
        variadic: false,
        doc: "Flattens every dimension after the batch into one: `[B, 8, 14, 14]` becomes `[B, 1568]`.",
    },
    Builtin {
        name: "reshape",
        kind: Kind::Activation,
        params: &[],
        variadic: true,
        doc: "Reshapes every dimension after the batch: `reshape(1, 8, 8)` turns `[B, 64]` into `[B, 1, 8, 8]`. \
              One dimension may be `-1`, inferred from the others.",
    },
    Builtin {
        name: "dropout",
        kind: Kind::Activation,
        params: &[p("p", ArgKind::Real, Some("0.5"), "probability of zeroing each element")],
        variadic: false,
        doc: "Zeroes each element with probability `p` while training and scales the rest by `1 / (1 - p)`; \
              does nothing at inference.",
    },
    Builtin {
        name: "softmax",
        kind: Kind::Activation,
        params: &[aka("axis", ArgKind::Int, Some("-1"), &["dim"], "the axis that sums to one")],
        variadic: false,
        doc: "Softmax: `exp(x) / sum(exp(x))` along `axis`.",
    },
    Builtin {
        name: "log_softmax",
        kind: Kind::Activation,
        params: &[aka("axis", ArgKind::Int, Some("-1"), &["dim"], "the axis to normalise")],
        variadic: false,
        doc: "Logarithm of the softmax along `axis`, computed stably.",
    },
    // Functions of tensors.
    unary("ln", "Natural logarithm."),
    unary("exp", "Exponential."),
    unary("sqrt", "Square root."),
    unary("sin", "Sine."),
    unary("cos", "Cosine."),
    unary("tan", "Tangent."),
    unary("abs", "Absolute value."),
    unary("transpose", "Swaps the last two dimensions; the same as `x^T`."),
    Builtin {
        name: "max",
        kind: Kind::Function,
        params: &[
            X,
            p("y", ArgKind::Tensor, Some("none"), "with a second tensor, the elementwise maximum"),
            aka("axis", ArgKind::Int, Some("all"), &["dim"], "the axis to reduce"),
        ],
        variadic: false,
        doc: "`max(x, y)` is the elementwise maximum; `max(x)` the largest element, `max(x, axis = 1)` along an axis.",
    },
    Builtin {
        name: "min",
        kind: Kind::Function,
        params: &[
            X,
            p("y", ArgKind::Tensor, Some("none"), "with a second tensor, the elementwise minimum"),
            aka("axis", ArgKind::Int, Some("all"), &["dim"], "the axis to reduce"),
        ],
        variadic: false,
        doc: "`min(x, y)` is the elementwise minimum; `min(x)` the smallest element, `min(x, axis = 1)` along an axis.",
    },
    Builtin {
        name: "sum",
        kind: Kind::Function,
        params: &[X, aka("axis", ArgKind::Int, Some("all"), &["dim"], "the axis to reduce")],
        variadic: false,
        doc: "Sum of all elements, or along `axis`.",
    },
    Builtin {
        name: "mean",
        kind: Kind::Function,
        params: &[X, aka("axis", ArgKind::Int, Some("all"), &["dim"], "the axis to reduce")],
        variadic: false,
        doc: "Mean of all elements, or along `axis`.",
    },
    Builtin {
        name: "conv",
        kind: Kind::Function,
        params: &[
            X,
            p(
                "w",
                ArgKind::Tensor,
                None,
                "the filter: `[kh, kw]`, or `[out_c, in_c, kh, kw]` for `[B, C, H, W]` inputs",
            ),
            p("stride", ArgKind::IntOrPair, Some("1"), "step between filter positions"),
            aka("pad", ArgKind::IntOrPair, Some("0"), &["padding"], "zeros added on each side"),
        ],
        variadic: false,
        doc: "Convolution (as neural networks define it: a sliding weighted sum, no flip) of `x` with the filter \
              `w`: `y[i, j] = sum over k, l of w[k, l] x[i + k, j + l]`.",
    },
    // Losses.
    Builtin {
        name: "mse",
        kind: Kind::Loss,
        params: &[p("y", ArgKind::Tensor, None, "the prediction"), p("t", ArgKind::Tensor, None, "the target")],
        variadic: false,
        doc: "Mean squared error: `mean((y - t)^2)`.",
    },
    Builtin {
        name: "cross_entropy",
        kind: Kind::Loss,
        params: &[
            p("y", ArgKind::Tensor, None, "the logits `[B, classes]`"),
            p("t", ArgKind::Tensor, None, "the class labels `[B]`"),
        ],
        variadic: false,
        doc: "Softmax cross-entropy of logits and integer class labels, fused with the softmax for stability.",
    },
    Builtin {
        name: "bce",
        kind: Kind::Loss,
        params: &[
            p("y", ArgKind::Tensor, None, "probabilities in (0, 1)"),
            p("t", ArgKind::Tensor, None, "targets 0 or 1"),
        ],
        variadic: false,
        doc: "Binary cross-entropy: `-mean(t ln y + (1 - t) ln(1 - y))`.",
    },
    // Optimisers.
    Builtin {
        name: "sgd",
        kind: Kind::Optimizer,
        params: &[
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
        variadic: false,
        doc: "Stochastic gradient descent, with optional (Nesterov) momentum, dampening and weight decay, as \
              PyTorch's `SGD`; Nesterov momentum needs a momentum and no dampening.",
    },
    Builtin {
        name: "adam",
        kind: Kind::Optimizer,
        params: &[
            aka("lr", ArgKind::Real, Some("0.001"), &["learning_rate"], "learning rate"),
            p("beta1", ArgKind::Real, Some("0.9"), "decay of the first moment"),
            p("beta2", ArgKind::Real, Some("0.999"), "decay of the second moment"),
            p("eps", ArgKind::Real, Some("1e-8"), "added to the denominator"),
            p("weight_decay", ArgKind::Real, Some("0"), "L2 penalty added to the gradient"),
        ],
        variadic: false,
        doc: "Adam, as PyTorch's `Adam`.",
    },
    // Data sources.
    Builtin {
        name: "csv",
        kind: Kind::DataSource,
        params: &[
            p("path", ArgKind::Str, None, "the file, relative to the `.nn` file; `.gz` files are decompressed"),
            p(
                "label",
                ArgKind::IntOrWord(&["last", "first"]),
                Some("last"),
                "the label column: its index, `first` or `last`",
            ),
            p("scale", ArgKind::Real, Some("1"), "factor applied to every feature"),
            p("header", ArgKind::Bool, Some("detected"), "whether the first line is a header"),
        ],
        variadic: false,
        doc: "Rows of a CSV file (optionally gzipped): numeric features and one integer label column.",
    },
    Builtin {
        name: "idx",
        kind: Kind::DataSource,
        params: &[
            p("images", ArgKind::Str, None, "the IDX images file (MNIST format, optionally gzipped)"),
            p("labels", ArgKind::Str, None, "the IDX labels file"),
            p("scale", ArgKind::Real, Some("1/255"), "factor applied to every pixel"),
        ],
        variadic: false,
        doc: "MNIST-style IDX files of images and labels.",
    },
    Builtin {
        name: "npy",
        kind: Kind::DataSource,
        params: &[
            p("inputs", ArgKind::Str, None, "a NumPy `.npy` file of inputs (f32, f64, u8 or i64)"),
            p("labels", ArgKind::Str, None, "a `.npy` file of labels or targets"),
            p("scale", ArgKind::Real, Some("1"), "factor applied to every input"),
        ],
        variadic: false,
        doc: "Inputs and labels from NumPy `.npy` files.",
    },
    Builtin {
        name: "xor",
        kind: Kind::DataSource,
        params: &[SAMPLES, NOISE, SEED],
        variadic: false,
        doc: "Points around the four corners of a square, labelled by XOR of their quadrant: not linearly separable.",
    },
    Builtin {
        name: "moons",
        kind: Kind::DataSource,
        params: &[SAMPLES, NOISE, SEED],
        variadic: false,
        doc: "Two interleaving half circles.",
    },
    Builtin {
        name: "circles",
        kind: Kind::DataSource,
        params: &[SAMPLES, NOISE, SEED],
        variadic: false,
        doc: "A small circle inside a large one.",
    },
    Builtin {
        name: "spirals",
        kind: Kind::DataSource,
        params: &[SAMPLES, p("classes", ArgKind::Int, Some("2"), "number of spiral arms"), NOISE, SEED],
        variadic: false,
        doc: "Interleaved spiral arms, one class each.",
    },
    Builtin {
        name: "blobs",
        kind: Kind::DataSource,
        params: &[SAMPLES, p("classes", ArgKind::Int, Some("3"), "number of blobs"), NOISE, SEED],
        variadic: false,
        doc: "Gaussian blobs, one class each.",
    },
    // Initialisers for `param`s.
    Builtin { name: "zeros", kind: Kind::Initializer, params: &[], variadic: false, doc: "All zeros." },
    Builtin { name: "ones", kind: Kind::Initializer, params: &[], variadic: false, doc: "All ones." },
    Builtin {
        name: "normal",
        kind: Kind::Initializer,
        params: &[
            p("mean", ArgKind::Real, Some("0"), "mean"),
            p("std", ArgKind::Real, Some("1"), "standard deviation"),
        ],
        variadic: false,
        doc: "Samples from a normal distribution.",
    },
    Builtin {
        name: "uniform",
        kind: Kind::Initializer,
        params: &[
            p("low", ArgKind::Real, Some("-1"), "lower bound"),
            p("high", ArgKind::Real, Some("1"), "upper bound"),
        ],
        variadic: false,
        doc: "Samples from a uniform distribution.",
    },
    Builtin {
        name: "kaiming_uniform",
        kind: Kind::Initializer,
        params: &[],
        variadic: false,
        doc: "PyTorch's default for `linear` and `conv2d` weights: uniform in `±1/sqrt(fan_in)`.",
    },
    Builtin {
        name: "xavier_uniform",
        kind: Kind::Initializer,
        params: &[],
        variadic: false,
        doc: "Uniform in `±sqrt(6 / (fan_in + fan_out))`.",
    },
];

/// The settings of a `train` block.
pub const TRAIN_SETTINGS: &[Param] = &[
    p("loss", ArgKind::Loss, None, "the loss: `mse`, `cross_entropy` or `bce`"),
    p("optimizer", ArgKind::Optimizer, Some("sgd()"), "the optimiser: `sgd(...)` or `adam(...)`"),
    p("split", ArgKind::Real, Some("0.8"), "fraction of the data used for training; the rest is the test set"),
    aka("batch", ArgKind::Int, Some("32"), &["batch_size"], "examples per step"),
    p("epochs", ArgKind::Int, Some("10"), "passes over the training data"),
    p("seed", ArgKind::Int, Some("0"), "seed of initialisation, shuffling and dropout"),
    p("save", ArgKind::Str, Some("none"), "where to save the trained weights (safetensors)"),
    p("out", ArgKind::Str, Some("\"runs/<model>\""), "the directory for results: metrics, plots, checkpoints"),
    p("init", ArgKind::Str, Some("none"), "weights to start from (safetensors, PyTorch names)"),
    p("test", ArgKind::DataSource, Some("none"), "a separate test set, instead of splitting"),
];

/// The built-in with this name.
pub fn lookup(name: &str) -> Option<&'static Builtin> {
    all().find(|builtin| builtin.name == name)
}

/// Every built-in: the families' entries, then the rest.
pub fn all() -> impl Iterator<Item = &'static Builtin> {
    activations::ACTIVATIONS.iter().map(|a| &a.builtin).chain(OTHERS.iter())
}

/// The names of built-ins of the given kinds, for suggestions.
pub fn names_of(kinds: &[Kind]) -> impl Iterator<Item = &'static str> + '_ {
    all().filter(move |builtin| kinds.contains(&builtin.kind)).map(|builtin| builtin.name)
}

/// A parameter that may come before the others: `linear(1568, 10)` names the input
/// features as PyTorch's `Linear(in, out)` does, and nnc checks them against the input.
pub const LINEAR_IN_FEATURES: Param = Param {
    name: "in_features",
    kind: ArgKind::Int,
    default: Some("from the input"),
    aliases: &[],
    doc: "input features, checked against the input's last dimension (optional)",
};

/// `conv2d(1, 6, 5)` names the input channels as PyTorch's `Conv2d(in, out, kernel)` does,
/// and nnc checks them against the input.
pub const CONV2D_IN_CHANNELS: Param = Param {
    name: "in_channels",
    kind: ArgKind::Int,
    default: Some("from the input"),
    aliases: &[],
    doc: "input channels, checked against the input's channel axis (optional)",
};

/// A parameter written first, by position, in PyTorch's order.
#[derive(Clone, Copy, Debug)]
pub struct Leading {
    pub param: &'static Param,
    /// How many numbers a call gives by position when the first of them is this one.
    pub count: usize,
    /// A call that uses it, such as `linear(784, 10)`.
    pub example: &'static str,
}

/// The optional leading parameter of a built-in, if it has one.
pub fn leading(name: &str) -> Option<Leading> {
    match name {
        "linear" => Some(Leading { param: &LINEAR_IN_FEATURES, count: 2, example: "linear(784, 10)" }),
        "conv2d" => Some(Leading { param: &CONV2D_IN_CHANNELS, count: 3, example: "conv2d(1, 6, 5)" }),
        _ => None,
    }
}

/// Whether a call of `name` with these settings uses the leading parameter: it gives that
/// many positional arguments (two for `linear`, three for `conv2d`), the last of them not
/// `true` or `false`.
pub fn uses_leading(name: &str, args: &[nnc_grammar::Arg]) -> bool {
    let positional: Vec<&nnc_grammar::Arg> = args.iter().filter(|a| a.name.is_none()).collect();
    leading(name).is_some_and(|leading| {
        positional.len() >= leading.count
            && !matches!(positional[leading.count - 1].value.unparenthesized().kind, nnc_grammar::ExprKind::Bool(_))
    })
}

/// Binds the settings of a call to a built-in's parameters by position and name, ignoring
/// what does not bind (name resolution reports that). Returns `(parameter, argument)`.
pub fn bind_args<'a>(
    builtin: &Builtin,
    params: &'static [Param],
    args: &'a [nnc_grammar::Arg],
) -> Vec<(&'static Param, &'a nnc_grammar::Expr)> {
    let mut bound = Vec::new();
    let mut positional = params.iter();
    let mut args_iter = args.iter().peekable();
    if uses_leading(builtin.name, args)
        && let (Some(leading), Some(arg)) = (leading(builtin.name), args_iter.next_if(|a| a.name.is_none()))
    {
        bound.push((leading.param, &arg.value));
    }
    for arg in args_iter {
        let param = match &arg.name {
            None => positional.next(),
            Some(name) => params.iter().find(|p| p.name == name.name),
        };
        if let Some(param) = param {
            bound.push((param, &arg.value));
        }
    }
    bound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_required_parameters_come_first() {
        let all: Vec<&Builtin> = all().collect();
        for (i, builtin) in all.iter().enumerate() {
            assert!(all[..i].iter().all(|other| other.name != builtin.name), "{} twice", builtin.name);
            let first_optional =
                builtin.params.iter().position(|p| p.default.is_some()).unwrap_or(builtin.params.len());
            assert!(builtin.params[first_optional..].iter().all(|p| p.default.is_some()), "{}", builtin.name);
        }
    }
}

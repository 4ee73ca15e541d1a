//! The built-ins of the language: layers, functions, losses, optimisers, data sources,
//! initialisers and `train` settings. Each is one entry in its family's file: its name,
//! arguments (with their defaults and the PyTorch spellings it accepts), documentation,
//! and what it does: a shape rule that gives its output, parameters, cost and typed call
//! (which lowers itself to IR primitives), or the typed setting it builds. Name resolution,
//! the check, lowering, completion, hover, the reference tables and the editor grammar all
//! read these entries.

// Shape rules return `Result<_, Diagnostic>`; an error ends the rule once, so the size of
// the error does not matter and boxing it would only add noise.
#![allow(clippy::result_large_err)]

pub mod activations;
pub mod data;
pub mod dense;
pub mod dropout;
pub mod initializers;
pub mod losses;
pub mod math;
pub mod optimizers;
pub mod pooling;
pub mod reductions;
pub mod reshaping;
pub mod softmax;

use crate::ir::{Emitter, LowerError, ParamInit, Value as IrValue};
use crate::optim::Optimizer;
use crate::shapes::rules::ShapeRule;
use crate::train::DataSource;
use nnc_grammar::{Arg, Expr, ExprKind, Span};

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
    /// A parameter PyTorch writes first that nnc takes from the input, if any.
    pub leading: Option<Leading>,
}

/// One built-in: its description, and what it does.
pub struct Entry {
    pub builtin: Builtin,
    pub(crate) form: Form,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.builtin.name)
    }
}

/// How an activation lowers: its value on `x` as IR primitives, from its settings' values
/// in the order of its parameters.
pub type ActivationLower = fn(&mut Emitter<'_>, IrValue, &[f64]) -> Result<IrValue, LowerError>;

/// What a built-in does, by family. Each form is read by one stage: shape rules by the
/// check (and the calls they build by lowering), the builders by the check of `train`
/// blocks and `param` initialisers.
pub(crate) enum Form {
    /// A layer or a function of tensors.
    Rule(ShapeRule),
    /// An elementwise activation: the same shape out, settings that are numbers.
    Activation(ActivationLower),
    Optimizer(fn(&mut dyn Read) -> Option<Optimizer>),
    DataSource(fn(&mut dyn Read) -> Option<DataSource>),
    Initializer(fn(&mut dyn Read) -> Option<ParamInit>),
}

/// The settings of an optimiser, data source or initialiser call, as the check evaluates
/// them: each the value written, or else the default of the entry's parameter. `None`
/// when a value cannot be used, after a diagnostic at it.
pub(crate) trait Read {
    fn real(&mut self, name: &str) -> Option<f64>;
    /// A whole number of at least `least`.
    fn whole(&mut self, name: &str, least: f64) -> Option<usize>;
    /// Text; `None` when it is not given and has no default.
    fn text(&mut self, name: &str) -> Option<String>;
    /// `true` or `false` as written; `None` when not given.
    fn flag(&mut self, name: &str) -> Option<bool>;
    /// The word written for a parameter of listed words, or its default; `None` when a
    /// number was written instead.
    fn word(&mut self, name: &str) -> Option<String>;
}

pub(crate) const fn p(name: &'static str, kind: ArgKind, default: Option<&'static str>, doc: &'static str) -> Param {
    Param { name, kind, default, aliases: &[], doc }
}

pub(crate) const fn aka(
    name: &'static str,
    kind: ArgKind,
    default: Option<&'static str>,
    aliases: &'static [&'static str],
    doc: &'static str,
) -> Param {
    Param { name, kind, default, aliases, doc }
}

pub(crate) const X: Param = p("x", ArgKind::Tensor, None, "the input");

/// A built-in of `kind` without a leading parameter.
const fn builtin(name: &'static str, kind: Kind, params: &'static [Param], doc: &'static str) -> Builtin {
    Builtin { name, kind, params, variadic: false, doc, leading: None }
}

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

/// The families, in the order of the reference.
static FAMILIES: &[&[Entry]] = &[
    activations::ACTIVATIONS,
    dense::ENTRIES,
    pooling::ENTRIES,
    reshaping::ENTRIES,
    dropout::ENTRIES,
    softmax::ENTRIES,
    math::ENTRIES,
    reductions::ENTRIES,
    losses::ENTRIES,
    optimizers::ENTRIES,
    data::ENTRIES,
    initializers::ENTRIES,
];

/// Every built-in's entry.
pub fn entries() -> impl Iterator<Item = &'static Entry> {
    FAMILIES.iter().flat_map(|family| family.iter())
}

/// The entry of the built-in called `name`.
pub fn entry(name: &str) -> Option<&'static Entry> {
    entries().find(|entry| entry.builtin.name == name)
}

/// Every built-in.
pub fn all() -> impl Iterator<Item = &'static Builtin> {
    entries().map(|entry| &entry.builtin)
}

/// The value of a default as written in a parameter's documentation: a number, or a
/// fraction such as `1/255`.
pub(crate) fn default_number(param: &Param) -> Option<f64> {
    let text = param.default?;
    match text.split_once('/') {
        Some((a, b)) => Some(a.trim().parse::<f64>().ok()? / b.trim().parse::<f64>().ok()?),
        None => text.parse().ok(),
    }
}

/// The names of built-ins of the given kinds, for suggestions.
pub fn names_of(kinds: &[Kind]) -> impl Iterator<Item = &'static str> + '_ {
    all().filter(move |builtin| kinds.contains(&builtin.kind)).map(|builtin| builtin.name)
}

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
    lookup(name).and_then(|builtin| builtin.leading)
}

/// Whether a call of `name` with these settings uses the leading parameter: it gives that
/// many positional arguments (two for `linear`, three for `conv2d`), the last of them not
/// `true` or `false`.
pub fn uses_leading(name: &str, args: &[Arg]) -> bool {
    let positional: Vec<&Arg> = args.iter().filter(|a| a.name.is_none()).collect();
    leading(name).is_some_and(|leading| {
        positional.len() >= leading.count
            && !matches!(positional[leading.count - 1].value.unparenthesized().kind, ExprKind::Bool(_))
    })
}

/// How a call's arguments bind to a built-in's parameters: by position, then by name, with
/// PyTorch's leading size first where the built-in takes one.
pub struct Binding<'a> {
    /// Each argument that binds, with its parameter, in the order written; a parameter
    /// given twice appears twice, and its first value counts.
    pub bound: Vec<(&'static Param, &'a Arg)>,
    /// What does not bind, for name resolution to report.
    pub problems: Vec<BindProblem<'a>>,
}

/// An argument that does not bind, or a parameter without a value.
pub enum BindProblem<'a> {
    /// More arguments by position than the built-in has parameters.
    TooMany(&'a Arg),
    /// A name the built-in has no parameter of.
    Unknown(&'a Arg),
    /// A parameter given again after `first`.
    Duplicate { param: &'static Param, first: Span, again: &'a Arg },
    /// Parameters without a default that no argument gives.
    Missing(Vec<&'static str>),
}

/// Binds the arguments of a call of `builtin` to `params` (its parameters, or those after
/// its tensor input).
pub fn bind<'a>(builtin: &Builtin, params: &'static [Param], args: &'a [Arg]) -> Binding<'a> {
    let mut binding = Binding { bound: Vec::new(), problems: Vec::new() };
    let mut rest = args;
    if uses_leading(builtin.name, args)
        && let (Some(leading), Some((first, after))) = (builtin.leading, args.split_first())
        && first.name.is_none()
    {
        binding.bound.push((leading.param, first));
        rest = after;
    }
    let mut given: Vec<Option<Span>> = vec![None; params.len()];
    let mut positional = 0;
    for arg in rest {
        let index = match &arg.name {
            None => {
                positional += 1;
                if positional > params.len() {
                    binding.problems.push(BindProblem::TooMany(arg));
                    continue;
                }
                positional - 1
            }
            Some(name) => match params.iter().position(|p| p.name == name.name) {
                Some(index) => index,
                None => {
                    binding.problems.push(BindProblem::Unknown(arg));
                    continue;
                }
            },
        };
        if let Some(first) = given[index] {
            binding.problems.push(BindProblem::Duplicate { param: &params[index], first, again: arg });
        }
        given[index].get_or_insert(arg.span);
        binding.bound.push((&params[index], arg));
    }
    let missing: Vec<&'static str> =
        params.iter().zip(&given).filter(|(p, g)| p.default.is_none() && g.is_none()).map(|(p, _)| p.name).collect();
    if !missing.is_empty() {
        binding.problems.push(BindProblem::Missing(missing));
    }
    binding
}

/// The arguments of a call that bind, with their parameters.
pub fn bind_args<'a>(builtin: &Builtin, params: &'static [Param], args: &'a [Arg]) -> Vec<(&'static Param, &'a Expr)> {
    bind(builtin, params, args).bound.into_iter().map(|(param, arg)| (param, &arg.value)).collect()
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

//! The check: static shapes and parameter counts (every layer's output shape, with the
//! arithmetic behind it, and every layer's parameters and mult-adds), computed from the
//! syntax tree before anything runs, and the checked program that later stages read.

// Shape rules return `Result<_, Diagnostic>`; an error ends the rule once, so the size of
// the error does not matter and boxing it would only add noise.
#![allow(clippy::result_large_err)]

mod apply;
mod dim;
mod expr;
mod infer;
mod items;
pub(crate) mod rules;
mod train;

pub use dim::{Atom, Dim, Overflow, Window, WindowError, window};
pub(crate) use infer::{Origin, Value};
pub use infer::{Override, analyze_shapes, analyze_with, group_digits};

use crate::checked::{Checked, InstanceId};
use nnc_grammar::{Diagnostic, Span};
use serde::Serialize;
use std::fmt;

/// A tensor shape: one dimension per axis. The empty shape is a scalar.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Vec<Dim>);

impl Shape {
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// The number of elements, `None` on overflow.
    pub fn elements(&self) -> Option<Dim> {
        self.0.iter().try_fold(Dim::constant(1), |acc, d| acc.checked_mul(d).ok())
    }

    /// The shape with `symbol` replaced by `value` (the batch by a number, say).
    pub fn substitute(&self, symbol: &str, value: &Dim) -> Shape {
        Shape(
            self.0
                .iter()
                .map(|d| d.substitute(&|name| (name == symbol).then(|| value.clone())).unwrap_or_else(|_| d.clone()))
                .collect(),
        )
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, dim) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{dim}")?;
        }
        f.write_str("]")
    }
}

impl Serialize for Shape {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|d| d.to_string()))
    }
}

/// Serialises a dimension as its text (`"2080"`, `"33·hidden + 10"`).
fn dim_text<S: serde::Serializer>(dim: &Dim, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&dim.to_string())
}

/// A count for people: `20,000,500`, or the formula when it has symbols.
pub fn format_count(count: &Dim) -> String {
    match count.as_const() {
        Some(value) => group_digits(&value.to_string()),
        None => count.to_string(),
    }
}

/// What a line of a model body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    Input,
    /// A built-in layer, or a user model or layer used as one.
    Layer,
    Param,
    Let,
    /// An expression line in a graph-style body.
    Expr,
}

/// One line of a model, as `nnc summary` shows it and the language server hints it.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub kind: RowKind,
    /// The line's text, such as `linear(hidden)`.
    pub label: String,
    pub span: Span,
    /// 1-based source line.
    pub line: usize,
    /// The output shape; `None` where it could not be computed.
    pub shape: Option<Shape>,
    #[serde(serialize_with = "dim_text")]
    pub weights: Dim,
    #[serde(serialize_with = "dim_text")]
    pub biases: Dim,
    /// Multiply-adds per example.
    #[serde(serialize_with = "dim_text")]
    pub mult_adds: Dim,
    /// How the output shape and the parameter count are computed, in words and numbers.
    pub formulas: Vec<String>,
    /// This line has an error.
    pub failed: bool,
}

impl Row {
    /// Weights and biases together.
    pub fn params(&self) -> Dim {
        self.weights.checked_add(&self.biases).unwrap_or_default()
    }
}

/// A model's shapes and counts, for one set of argument values.
#[derive(Clone, Debug, Serialize)]
pub struct ModelReport {
    pub name: String,
    pub span: Span,
    /// The argument values used: defaults, or symbols for arguments without one.
    pub args: Vec<(String, String)>,
    /// The symbol of the batch dimension (the input's first dimension), if there is one.
    pub batch: Option<String>,
    pub input: Option<Shape>,
    pub output: Option<Shape>,
    pub rows: Vec<Row>,
    #[serde(serialize_with = "dim_text")]
    pub params: Dim,
    #[serde(serialize_with = "dim_text")]
    pub mult_adds: Dim,
    /// Whether some line failed, so the counts are incomplete.
    pub failed: bool,
    /// Its instance in the checked program.
    #[serde(skip)]
    pub instance: Option<InstanceId>,
    /// Its documentation comment.
    #[serde(skip)]
    pub doc: Option<String>,
}

/// A shape computed for an expression or `let`, for hover and inlay hints.
#[derive(Clone, Debug, Serialize)]
pub struct ShapeFact {
    pub span: Span,
    pub shape: Shape,
}

/// Everything the shape analysis found in a file.
#[derive(Clone, Debug, Default)]
pub struct ShapeAnalysis {
    pub models: Vec<ModelReport>,
    /// Shapes of `let`s, inputs, params and expressions, by span.
    pub facts: Vec<ShapeFact>,
    pub diagnostics: Vec<Diagnostic>,
    /// The checked program: every model, function and constant as walked.
    pub checked: Checked,
    /// Each function as written, its arguments of their declared shapes (unknown if none).
    pub fns: Vec<(String, InstanceId)>,
    /// Each top-level `let`.
    pub constants: Vec<(String, InstanceId)>,
    /// Each `train` block: its model checked with the block's arguments, and its settings
    /// (`None` where the check reported an error in them).
    pub trains: Vec<TrainCheck>,
    /// Each query: its call, its arguments and its `along` direction in an instance.
    pub queries: Vec<QueryCheck>,
    /// What `analyze_with` checked beyond the file as written.
    pub overridden: Option<Instantiated>,
}

/// A `train` block as checked.
#[derive(Clone, Debug)]
pub struct TrainCheck {
    pub span: Span,
    pub model: ModelReport,
    pub config: Option<crate::train::TrainConfig>,
}

/// A query as checked: an instance whose output is the query's call, whose arguments are
/// nodes of it.
#[derive(Clone, Debug)]
pub struct QueryCheck {
    pub span: Span,
    pub kind: nnc_grammar::QueryKind,
    /// The arguments to differentiate by (`wrt x1, x2`); empty means all of them.
    pub wrt: Vec<String>,
    pub instance: InstanceId,
    /// The node of the `along` direction of a `jvp`.
    pub along: Option<crate::checked::NodeId>,
}

/// A model, function or value checked on request, with what checking it reported.
#[derive(Clone, Debug)]
pub struct Instantiated {
    /// For a model: its rows and counts for the arguments given.
    pub report: Option<ModelReport>,
    /// Its instance; `None` when the name is not defined.
    pub instance: Option<InstanceId>,
    pub diagnostics: Vec<Diagnostic>,
}

impl ShapeAnalysis {
    pub fn model(&self, name: &str) -> Option<&ModelReport> {
        self.models.iter().find(|m| m.name == name)
    }

    /// The row of a model line that contains `offset`.
    pub fn row_at(&self, offset: usize) -> Option<(&ModelReport, &Row)> {
        self.models.iter().find_map(|m| m.rows.iter().find(|r| r.span.contains(offset)).map(|r| (m, r)))
    }

    /// The innermost expression shape at `offset`.
    pub fn shape_at(&self, offset: usize) -> Option<&ShapeFact> {
        self.facts.iter().filter(|f| f.span.contains(offset)).min_by_key(|f| f.span.len())
    }
}

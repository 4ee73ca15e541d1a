//! The checked program: what checking a file makes of it, and what every later stage reads.
//! Each model, `layer`, `fn` and top-level `let` that the check walked becomes an
//! `Instance`, once per distinct set of argument values and input shapes: a graph of typed
//! nodes in which every name is resolved, every built-in call is a `Call` with its settings
//! evaluated, every size is a `Dim`, and every parameter has its `state_dict` name.
//! Lowering to IR reads instances and nothing else; it never sees syntax or looks a
//! built-in up by name.

use crate::builtins;
use crate::ir::{Emitter, LowerError, Op, ParamInit, Tensor, Value as IrValue};
use crate::shapes::{Dim, ModelReport, Shape};
use nnc_grammar::Span;

/// An index into `Checked::instances`.
pub type InstanceId = usize;
/// An index into `Instance::nodes`.
pub type NodeId = usize;

/// Every instance the check made, in the order they were finished (an instance's uses of
/// other instances point backwards).
#[derive(Clone, Debug, Default)]
pub struct Checked {
    pub instances: Vec<Instance>,
}

impl Checked {
    pub fn get(&self, id: InstanceId) -> &Instance {
        &self.instances[id]
    }
}

/// A model checked for one set of arguments, with the checked program its instance is in:
/// what the compile driver lowers.
#[derive(Clone, Debug)]
pub struct CheckedModel {
    pub checked: Checked,
    /// Its shapes, parameter counts and rows, for these arguments.
    pub report: ModelReport,
}

impl CheckedModel {
    /// The model's instance.
    pub fn instance(&self) -> InstanceId {
        self.report.instance.expect("every model walked has an instance")
    }
}

/// What an instance is the body of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceKind {
    /// A `model` or `layer`: one input, parameters, one output.
    Model,
    /// A `fn`: its arguments in order, no parameters.
    Fn,
    /// A top-level `let`: no inputs.
    Constant,
}

/// One model, function or constant, checked for one set of arguments.
#[derive(Clone, Debug)]
pub struct Instance {
    pub name: String,
    pub kind: InstanceKind,
    /// The definition's name in the source.
    pub span: Span,
    /// The argument values it was checked with (`hidden = 32`; a symbol where none was given).
    pub args: Vec<(String, Dim)>,
    pub nodes: Vec<Node>,
    /// The inputs in order: a model's one input, a function's arguments by name.
    pub inputs: Vec<(String, NodeId)>,
    /// The value returned; `None` when the body has none (or it failed).
    pub output: Option<NodeId>,
    /// The symbol of the batch dimension, if the input declares one.
    pub batch: Option<String>,
    /// The computing statements of a model body (layer lines and `let`s), each with the
    /// nodes it made, so that a drawing can group them.
    pub statements: Vec<Statement>,
    /// Whether checking it reported an error: such an instance is not lowered.
    pub failed: bool,
}

/// One statement of a model body and the nodes it made.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub span: Span,
    pub nodes: std::ops::Range<NodeId>,
}

/// One value of an instance.
#[derive(Clone, Debug)]
pub struct Node {
    pub kind: NodeKind,
    /// The shape, with symbols where sizes are open; `None` if it could not be computed
    /// (the check reported why, or the value is a function argument of unknown shape).
    pub shape: Option<Shape>,
    pub span: Span,
}

/// How a node is computed.
#[derive(Clone, Debug)]
pub enum NodeKind {
    /// Input `k` of the instance.
    Input(usize),
    /// A learned parameter: `weight` and `bias` of a layer, named as PyTorch's `state_dict`
    /// names them (`0.weight`, `2.1.bias`), or a `param` (`w`), with its initialiser.
    Param {
        name: String,
        init: Option<ParamInit>,
    },
    /// A number written in the source.
    Number(f64),
    /// A size used as a number (`x / k` with a model argument `k`).
    Size(Dim),
    /// An array of numbers.
    Literal(Tensor),
    Neg(NodeId),
    Transpose(NodeId),
    Binary(Binary, NodeId, NodeId),
    /// A built-in layer or function applied to its operands; a layer with parameters also
    /// takes its parameter nodes (`weight`, then `bias`), which no other node uses.
    Call {
        /// The built-in's name, as written.
        name: &'static str,
        call: Call,
        args: Vec<NodeId>,
        params: Vec<NodeId>,
    },
    /// Another instance (a model used as a layer, a function call, a constant), with the
    /// values of its inputs. `prefix` comes before the names of its parameters (`2.`).
    Use {
        instance: InstanceId,
        args: Vec<NodeId>,
        prefix: String,
    },
}

/// The arithmetic operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    MatMul,
}

/// A use of a built-in layer or function, with its settings evaluated: the typed value of
/// one entry of `builtins`, which lowers itself. Sizes that depend on the input are in the
/// node's shape; what is here is what the shape does not say.
#[derive(Clone, Debug)]
pub enum Call {
    Linear(builtins::dense::Linear),
    Conv2d(builtins::dense::Conv2d),
    Pool(builtins::pooling::Pool),
    /// Flattening and reshaping: the node's shape is the new shape.
    Reshape(builtins::reshaping::Reshape),
    Dropout(builtins::dropout::Dropout),
    Activation(builtins::activations::Use),
    Softmax(builtins::softmax::Softmax),
    /// A function that is one IR primitive of its input (`ln`, `transpose`).
    Primitive(Op),
    Conv(builtins::math::Conv),
    Reduce(builtins::reductions::Reduce),
    Pairwise(builtins::reductions::Pairwise),
    Loss(builtins::losses::Loss),
}

impl Call {
    /// The call's value as IR primitives, on the operands and parameters `e` holds.
    pub(crate) fn lower(&self, e: &mut Emitter<'_>) -> Result<IrValue, LowerError> {
        match self {
            Call::Linear(call) => call.lower(e),
            Call::Conv2d(call) => call.lower(e),
            Call::Pool(call) => call.lower(e),
            Call::Reshape(call) => call.lower(e),
            Call::Dropout(call) => call.lower(e),
            Call::Activation(call) => call.lower(e),
            Call::Softmax(call) => call.lower(e),
            Call::Primitive(op) => {
                let x = e.input(0)?;
                e.op(op.clone(), &[x])
            }
            Call::Conv(call) => call.lower(e),
            Call::Reduce(call) => call.lower(e),
            Call::Pairwise(call) => call.lower(e),
            Call::Loss(loss) => loss.lower_call(e),
        }
    }
}

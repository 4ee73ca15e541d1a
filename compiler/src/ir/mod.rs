//! The SSA graph IR: functions of typed values, each defined once by a primitive op, with
//! the source span it came from. This is the lecture's evaluation trace as data: inputs
//! `x1, x2`, intermediates `v1, v2, ...`, outputs.

mod autodiff;
mod graph;
mod interp;
mod lower;
mod onnx;
mod ops;
mod opt;
mod parse;
mod print;
mod program;
mod trace;
mod verify;

pub use crate::builtins::losses::Loss;
pub use autodiff::{Mode, cheaper_mode, forward, hessian, jacobian, reverse};
pub use graph::{GraphOptions, graph_dot};
pub use interp::{Interpreter, Precision, Tensor, eval_function};
pub use lower::{Emitter, LowerError, Lowering, lower_instance, with_loss};
pub use onnx::{
    ONNX_FLOAT, ONNX_INT64, ONNX_IR_VERSION, ONNX_OPSET, OnnxAttr, OnnxConstant, OnnxData, OnnxDim, OnnxError,
    OnnxGraph, OnnxNode, OnnxValue, dims_text, to_onnx,
};
pub use ops::Op;
pub use opt::optimize;
pub use parse::{ParseError, parse_function};
pub use print::print_function;
pub use program::{Answer, QueryResult, evaluate, mode_of, query_function, run_queries};
pub use trace::{Trace, TraceRow, trace};
pub use verify::{VerifyError, verify};

use crate::shapes::Shape;
use nnc_grammar::Span;

/// A value of a function: an argument or the result of an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Value(pub u32);

/// The type of a value: its shape. Every value is a tensor of reals (a scalar has the
/// empty shape); the interpreter computes in f64 or f32.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Type {
    pub shape: Shape,
}

impl Type {
    pub fn scalar() -> Type {
        Type { shape: Shape(Vec::new()) }
    }

    pub fn of(shape: Shape) -> Type {
        Type { shape }
    }
}

/// One instruction: `result = op args`.
#[derive(Clone, Debug, PartialEq)]
pub struct Inst {
    pub result: Value,
    pub op: Op,
    pub args: Vec<Value>,
    pub span: Span,
}

/// A function argument.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub value: Value,
    pub name: String,
}

/// An SSA function: arguments, instructions in order (each defines one value, used only
/// after it), and the returned values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Function {
    pub name: String,
    pub params: Vec<Param>,
    pub body: Vec<Inst>,
    pub results: Vec<Value>,
    /// What each result is, for printing: `y`, `x1_bar`.
    pub result_names: Vec<String>,
    /// The type and the printed name of every value, indexed by `Value`.
    pub values: Vec<(Type, String)>,
    /// Where the function was defined, for the printed header.
    pub span: Span,
    /// Arguments that are dropout masks of a training step, with the probability of
    /// dropping: the runtime fills them with 0 or `1 / (1 - p)` at every step.
    pub dropout_masks: Vec<(usize, f64)>,
    /// Arguments that are `param`s with an initialiser written in the source, by name.
    pub param_inits: Vec<(String, ParamInit)>,
    /// For a lowered model: the values each computing statement of its body (a layer line
    /// or a `let`) created, in source order. Empty for functions and for IR read from text.
    pub layers: Vec<LayerGroup>,
}

/// The values that one top-level statement of a model body created: the parameters of its
/// layers and the instructions that compute it, so that a drawing can group them.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerGroup {
    /// The statement in the source, such as `conv2d(8, kernel = 3, pad = 1)`.
    pub span: Span,
    /// The ids of the values created while lowering the statement. Values are numbered in
    /// the order they are created, so one statement's values are a range; transformations
    /// that build on a clone of the function (`reverse`, `optimize`) keep these ids.
    pub values: std::ops::Range<u32>,
}

/// The initialiser written for a `param`: `zeros`, `normal(0, 0.01)`, ...
#[derive(Clone, Debug, PartialEq)]
pub enum ParamInit {
    Zeros,
    Ones,
    Normal { mean: f64, std: f64 },
    Uniform { low: f64, high: f64 },
    XavierUniform,
    KaimingUniform,
}

impl Function {
    pub fn new(name: &str, span: Span) -> Function {
        Function { name: name.to_string(), span, ..Function::default() }
    }

    pub fn ty(&self, value: Value) -> &Type {
        &self.values[value.0 as usize].0
    }

    pub fn name_of(&self, value: Value) -> &str {
        &self.values[value.0 as usize].1
    }

    fn fresh(&mut self, ty: Type, name: String) -> Value {
        self.values.push((ty, name));
        Value(self.values.len() as u32 - 1)
    }

    /// Adds an argument.
    pub fn param(&mut self, name: &str, ty: Type) -> Value {
        let value = self.fresh(ty, name.to_string());
        self.params.push(Param { value, name: name.to_string() });
        value
    }

    /// Appends `op args` and returns its value. The type comes from the op's shape rule;
    /// the caller has checked shapes (the shape analysis), so a failure here is a bug.
    pub fn push(&mut self, op: Op, args: &[Value], span: Span) -> Value {
        let shapes: Vec<&Shape> = args.iter().map(|&a| &self.ty(a).shape).collect();
        let shape = op.shape(&shapes).unwrap_or_else(|e| panic!("{} on {:?}: {e}", op.name(), shapes));
        // Unique by construction; `renumber` gives the lecture's names afterwards.
        let name = format!("t{}", self.values.len());
        let result = self.fresh(Type::of(shape), name);
        self.body.push(Inst { result, op, args: args.to_vec(), span });
        result
    }

    /// Appends `op args` with a chosen printed name.
    pub fn push_named(&mut self, op: Op, args: &[Value], span: Span, name: &str) -> Value {
        let value = self.push(op, args, span);
        self.values[value.0 as usize].1 = name.to_string();
        value
    }

    /// The instruction that defines `value`, if it is not an argument.
    pub fn def(&self, value: Value) -> Option<&Inst> {
        self.body.iter().find(|inst| inst.result == value)
    }

    /// Names the instruction results in order, `v1, v2, ...`, as the lecture numbers the
    /// intermediates of an evaluation trace.
    pub fn renumber(&mut self) {
        // Constants are printed where they are used, so they take no number.
        let results: Vec<Value> =
            self.body.iter().filter(|i| !matches!(i.op, Op::Const(_))).map(|i| i.result).collect();
        for (n, value) in results.into_iter().enumerate() {
            self.values[value.0 as usize].1 = format!("v{}", n + 1);
        }
    }

    /// Names the temporaries that transformations made (`t17`) `v6, v7, ...`, after the
    /// highest number in use, so that the primal values keep their trace names.
    pub fn name_temporaries(&mut self) {
        let number = |name: &str| name.strip_prefix('v').and_then(|n| n.parse::<usize>().ok());
        let mut next = self.body.iter().filter_map(|i| number(self.name_of(i.result))).max().unwrap_or(0);
        let results: Vec<Value> =
            self.body.iter().filter(|i| !matches!(i.op, Op::Const(_))).map(|i| i.result).collect();
        for value in results {
            let name = &self.values[value.0 as usize].1;
            if name.starts_with('t') && name[1..].bytes().all(|b| b.is_ascii_digit()) {
                next += 1;
                self.values[value.0 as usize].1 = format!("v{next}");
            }
        }
    }

    /// Orders the instructions by depth (the longest path from an argument), keeping the
    /// written order among equals: the lecture's trace evaluates `sin(x2)` before
    /// `ln(x1) + x1 x2`, since it depends only on an input.
    pub fn schedule_by_depth(&mut self) {
        let mut depth = vec![0usize; self.values.len()];
        for inst in &self.body {
            depth[inst.result.0 as usize] = inst.args.iter().map(|a| depth[a.0 as usize] + 1).max().unwrap_or(0);
        }
        // Constants sit at depth 0; they are printed where they are used.
        self.body.sort_by_key(|inst| depth[inst.result.0 as usize]);
    }
}

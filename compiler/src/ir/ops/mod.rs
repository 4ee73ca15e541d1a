//! The op registry: every primitive of the IR with, in one place, its name and attributes
//! in the IR text, its shape rule, its reference evaluation, its reverse-mode rule (VJP),
//! its forward-mode rule (JVP) and its ONNX form. The rules live in the files by family of
//! primitive; this one holds the op type, the list of all rules and what they share.
//!
//! A VJP rule gets the op's inputs, its output and the cotangent of the output, and returns
//! one optional cotangent per input, in the output's (broadcast) shape: the autodiff driver
//! sums contributions, un-broadcasts and inserts zeros. A JVP rule gets the tangents of
//! the inputs (`None` for zero) and returns the tangent of the output.

mod constant;
mod conv;
mod elementwise;
mod loss;
mod pool;
mod reduce;
mod shape;

use super::interp::Tensor;
use super::onnx::{OnnxArg, OnnxEmit};
use super::parse::Attributes;
use super::{Function, Value};
use crate::shapes::{Dim, Shape};
use constant::{CONST, LITERAL, SIZE};
use conv::{CONV2D, CONV2D_INPUT_GRAD, CONV2D_WEIGHT_GRAD};
use elementwise::{
    ABS, ADD, COS, DIV, ERF, EXP, GREATER_EQ, LN, MAX, MIN, MUL, NEG, POW, RELU, SIGMOID, SIGN, SIN, SQRT, STEP, SUB,
    TAN, TANH,
};
use loss::{MSE, ONE_HOT, SOFTMAX_CROSS_ENTROPY};
use nnc_grammar::Span;
use pool::{AVGPOOL2D, AVGPOOL2D_GRAD, MAXPOOL2D, MAXPOOL2D_GRAD, MAXPOOL2D_PICK};
use reduce::{LOG_SOFTMAX, MEAN, REDUCE_MAX, SOFTMAX, SUM};
use shape::{BROADCAST, MATMUL, RESHAPE, SUM_TO, TRANSPOSE};

/// A primitive operation.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A scalar constant.
    Const(f64),
    /// A constant tensor (array literals).
    Literal {
        shape: Vec<usize>,
        data: Vec<f64>,
    },
    /// The value of a dimension as a scalar, such as the batch size `B` that a mean divides
    /// by; known when the function runs.
    Size(Dim),
    Neg,
    Exp,
    Ln,
    Sqrt,
    Sin,
    Cos,
    Tan,
    /// The error function, for the exact GELU.
    Erf,
    Tanh,
    Sigmoid,
    Relu,
    Abs,
    /// 1 where the input is positive, else 0: the derivative of `relu`.
    Step,
    /// -1, 0 or 1: the derivative of `abs`.
    Sign,
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    /// Elementwise maximum and minimum.
    Max,
    Min,
    /// 1 where the first input is at least the second, else 0.
    GreaterEq,
    /// The matrix product: `[.., m, k] @ [k, n]`, vectors as in NumPy.
    MatMul,
    /// Swaps the last two dimensions.
    Transpose,
    Reshape(Shape),
    /// Broadcasts to a shape by NumPy's rules.
    Broadcast(Shape),
    /// Sums broadcast dimensions away, back to a shape: the adjoint of `Broadcast`.
    SumTo(Shape),
    /// Sum over one axis, or all of them.
    Sum {
        axis: Option<usize>,
    },
    Mean {
        axis: Option<usize>,
    },
    ReduceMax {
        axis: Option<usize>,
    },
    Softmax {
        axis: usize,
    },
    LogSoftmax {
        axis: usize,
    },
    /// One-hot rows of the given width from integer labels stored as reals.
    OneHot {
        classes: usize,
    },
    /// 2-D convolution of `[N, C, H, W]` with `[O, C, kh, kw]` (cross-correlation, as
    /// neural networks define it), with stride and zero padding.
    Conv2d {
        stride: (usize, usize),
        pad: (usize, usize),
    },
    /// The adjoint of `Conv2d` with respect to its input: from the output cotangent and the
    /// weights to `[N, C, H, W]`; `input` is `(H, W)`.
    Conv2dInputGrad {
        stride: (usize, usize),
        pad: (usize, usize),
        input: (usize, usize),
    },
    /// The adjoint of `Conv2d` with respect to its weights: from the input and the output
    /// cotangent to `[O, C, kh, kw]`.
    Conv2dWeightGrad {
        stride: (usize, usize),
        pad: (usize, usize),
        kernel: (usize, usize),
    },
    /// Max pooling of `[N, C, H, W]` over windows.
    MaxPool2d {
        kernel: (usize, usize),
        stride: (usize, usize),
    },
    /// From the pooled input and a cotangent of the output, the cotangent of the input:
    /// each window's value goes to the (first) position of its maximum.
    MaxPool2dGrad {
        kernel: (usize, usize),
        stride: (usize, usize),
    },
    /// From the pooled input and a tensor of its shape, the values at each window's maximum.
    MaxPool2dPick {
        kernel: (usize, usize),
        stride: (usize, usize),
    },
    AvgPool2d {
        kernel: (usize, usize),
        stride: (usize, usize),
    },
    /// Spreads a cotangent of an average pool evenly over its windows; `input` is `(H, W)`.
    AvgPool2dGrad {
        kernel: (usize, usize),
        stride: (usize, usize),
        input: (usize, usize),
    },
    /// Mean squared error of a prediction and a target.
    Mse,
    /// Mean softmax cross-entropy of logits `[N, C]` and labels `[N]`, fused for stability.
    SoftmaxCrossEntropy,
}

/// A reverse-mode rule: `(emit, op, inputs, output, cotangent, which inputs need one)` to
/// one optional cotangent per input.
pub(crate) type VjpRule = fn(&mut Emit<'_>, &Op, &[Value], Value, Value, &[bool]) -> Vec<Option<Value>>;

/// A forward-mode rule: `(emit, op, inputs, output, input tangents)` to the output tangent.
pub(crate) type JvpRule = fn(&mut Emit<'_>, &Op, &[Value], Value, &[Option<Value>]) -> Option<Value>;

/// An ONNX rule: `(emit, op, operands, result)`; the nodes it writes define the result's name.
pub(crate) type OnnxRule = fn(&mut OnnxEmit<'_>, &Op, &[OnnxArg], &OnnxArg) -> Result<(), String>;

/// The rules of one primitive: everything about it is here, its text form included, so a
/// new primitive is one entry (and one arm of `Op::rules`).
pub(crate) struct Rules {
    /// The op's name in the IR text.
    pub name: &'static str,
    /// The op's attributes as the IR text writes them after its name: `[axis=1]`, `[B, 64]`,
    /// or nothing.
    pub attributes: fn(&Op) -> String,
    /// The op from the attributes its text gives, the inverse of `attributes`.
    pub parse: fn(&Attributes<'_>) -> Result<Op, String>,
    pub shape: fn(&Op, &[&Shape]) -> Result<Shape, String>,
    /// Evaluates into `out`, which has the result's shape; its old contents are garbage.
    pub eval: fn(&Op, &[&Tensor], &mut Tensor),
    pub vjp: VjpRule,
    pub jvp: JvpRule,
    /// Writes the op as ONNX operators, or says why it has none.
    pub onnx: OnnxRule,
}

/// The rules of every primitive, which the parser looks names up in.
pub(crate) static ALL: &[&Rules] = &[
    &CONST,
    &LITERAL,
    &SIZE,
    &NEG,
    &EXP,
    &LN,
    &SQRT,
    &SIN,
    &COS,
    &TAN,
    &ERF,
    &TANH,
    &SIGMOID,
    &RELU,
    &ABS,
    &STEP,
    &SIGN,
    &ADD,
    &SUB,
    &MUL,
    &DIV,
    &POW,
    &MAX,
    &MIN,
    &GREATER_EQ,
    &MATMUL,
    &TRANSPOSE,
    &RESHAPE,
    &BROADCAST,
    &SUM_TO,
    &SUM,
    &MEAN,
    &REDUCE_MAX,
    &SOFTMAX,
    &LOG_SOFTMAX,
    &ONE_HOT,
    &CONV2D,
    &CONV2D_INPUT_GRAD,
    &CONV2D_WEIGHT_GRAD,
    &MAXPOOL2D,
    &MAXPOOL2D_GRAD,
    &MAXPOOL2D_PICK,
    &AVGPOOL2D,
    &AVGPOOL2D_GRAD,
    &MSE,
    &SOFTMAX_CROSS_ENTROPY,
];

/// The rules of the primitive called `name` in the IR text.
pub(crate) fn rules_named(name: &str) -> Option<&'static Rules> {
    ALL.iter().copied().find(|rules| rules.name == name)
}

impl Op {
    /// The op's name in the IR text.
    pub fn name(&self) -> &'static str {
        self.rules().name
    }

    /// The op's attributes as the IR text writes them after its name.
    pub fn attributes(&self) -> String {
        (self.rules().attributes)(self)
    }

    pub(crate) fn rules(&self) -> &'static Rules {
        match self {
            Op::Const(_) => &CONST,
            Op::Literal { .. } => &LITERAL,
            Op::Size(_) => &SIZE,
            Op::Neg => &NEG,
            Op::Exp => &EXP,
            Op::Ln => &LN,
            Op::Sqrt => &SQRT,
            Op::Sin => &SIN,
            Op::Cos => &COS,
            Op::Tan => &TAN,
            Op::Erf => &ERF,
            Op::Tanh => &TANH,
            Op::Sigmoid => &SIGMOID,
            Op::Relu => &RELU,
            Op::Abs => &ABS,
            Op::Step => &STEP,
            Op::Sign => &SIGN,
            Op::Add => &ADD,
            Op::Sub => &SUB,
            Op::Mul => &MUL,
            Op::Div => &DIV,
            Op::Pow => &POW,
            Op::Max => &MAX,
            Op::Min => &MIN,
            Op::GreaterEq => &GREATER_EQ,
            Op::MatMul => &MATMUL,
            Op::Transpose => &TRANSPOSE,
            Op::Reshape(_) => &RESHAPE,
            Op::Broadcast(_) => &BROADCAST,
            Op::SumTo(_) => &SUM_TO,
            Op::Sum { .. } => &SUM,
            Op::Mean { .. } => &MEAN,
            Op::ReduceMax { .. } => &REDUCE_MAX,
            Op::Softmax { .. } => &SOFTMAX,
            Op::LogSoftmax { .. } => &LOG_SOFTMAX,
            Op::OneHot { .. } => &ONE_HOT,
            Op::Conv2d { .. } => &CONV2D,
            Op::Conv2dInputGrad { .. } => &CONV2D_INPUT_GRAD,
            Op::Conv2dWeightGrad { .. } => &CONV2D_WEIGHT_GRAD,
            Op::MaxPool2d { .. } => &MAXPOOL2D,
            Op::MaxPool2dGrad { .. } => &MAXPOOL2D_GRAD,
            Op::MaxPool2dPick { .. } => &MAXPOOL2D_PICK,
            Op::AvgPool2d { .. } => &AVGPOOL2D,
            Op::AvgPool2dGrad { .. } => &AVGPOOL2D_GRAD,
            Op::Mse => &MSE,
            Op::SoftmaxCrossEntropy => &SOFTMAX_CROSS_ENTROPY,
        }
    }

    /// The shape of the op's result for inputs of these shapes.
    pub fn shape(&self, inputs: &[&Shape]) -> Result<Shape, String> {
        (self.rules().shape)(self, inputs)
    }

    /// One instance of every op, for tables that must cover them all (the gradient sweep).
    pub fn samples() -> Vec<Op> {
        let k = (2, 2);
        let shape = Shape(vec![Dim::constant(1)]);
        let samples = vec![
            Op::Const(1.0),
            Op::Literal { shape: vec![1], data: vec![1.0] },
            Op::Size(Dim::constant(2)),
            Op::Neg,
            Op::Exp,
            Op::Ln,
            Op::Sqrt,
            Op::Sin,
            Op::Cos,
            Op::Tan,
            Op::Tanh,
            Op::Sigmoid,
            Op::Relu,
            Op::Abs,
            Op::Step,
            Op::Sign,
            Op::Add,
            Op::Sub,
            Op::Mul,
            Op::Div,
            Op::Pow,
            Op::Max,
            Op::Min,
            Op::GreaterEq,
            Op::MatMul,
            Op::Transpose,
            Op::Reshape(shape.clone()),
            Op::Broadcast(shape.clone()),
            Op::SumTo(shape),
            Op::Sum { axis: None },
            Op::Mean { axis: None },
            Op::ReduceMax { axis: None },
            Op::Softmax { axis: 0 },
            Op::LogSoftmax { axis: 0 },
            Op::OneHot { classes: 2 },
            Op::Conv2d { stride: (1, 1), pad: (0, 0) },
            Op::Conv2dInputGrad { stride: (1, 1), pad: (0, 0), input: k },
            Op::Conv2dWeightGrad { stride: (1, 1), pad: (0, 0), kernel: k },
            Op::MaxPool2d { kernel: k, stride: k },
            Op::MaxPool2dGrad { kernel: k, stride: k },
            Op::MaxPool2dPick { kernel: k, stride: k },
            Op::AvgPool2d { kernel: k, stride: k },
            Op::AvgPool2dGrad { kernel: k, stride: k, input: k },
            Op::Mse,
            Op::SoftmaxCrossEntropy,
            Op::Erf,
        ];
        // Every variant, in the order above: a new op that is missing here fails to compile.
        debug_assert!(samples.iter().enumerate().all(|(i, op)| op.sample_index() == i));
        samples
    }

    fn sample_index(&self) -> usize {
        match self {
            Op::Const(_) => 0,
            Op::Literal { .. } => 1,
            Op::Size(_) => 2,
            Op::Neg => 3,
            Op::Exp => 4,
            Op::Ln => 5,
            Op::Sqrt => 6,
            Op::Sin => 7,
            Op::Cos => 8,
            Op::Tan => 9,
            Op::Tanh => 10,
            Op::Sigmoid => 11,
            Op::Relu => 12,
            Op::Abs => 13,
            Op::Step => 14,
            Op::Sign => 15,
            Op::Add => 16,
            Op::Sub => 17,
            Op::Mul => 18,
            Op::Div => 19,
            Op::Pow => 20,
            Op::Max => 21,
            Op::Min => 22,
            Op::GreaterEq => 23,
            Op::MatMul => 24,
            Op::Transpose => 25,
            Op::Reshape(_) => 26,
            Op::Broadcast(_) => 27,
            Op::SumTo(_) => 28,
            Op::Sum { .. } => 29,
            Op::Mean { .. } => 30,
            Op::ReduceMax { .. } => 31,
            Op::Softmax { .. } => 32,
            Op::LogSoftmax { .. } => 33,
            Op::OneHot { .. } => 34,
            Op::Conv2d { .. } => 35,
            Op::Conv2dInputGrad { .. } => 36,
            Op::Conv2dWeightGrad { .. } => 37,
            Op::MaxPool2d { .. } => 38,
            Op::MaxPool2dGrad { .. } => 39,
            Op::MaxPool2dPick { .. } => 40,
            Op::AvgPool2d { .. } => 41,
            Op::AvgPool2dGrad { .. } => 42,
            Op::Mse => 43,
            Op::SoftmaxCrossEntropy => 44,
            Op::Erf => 45,
        }
    }

    /// Whether the op has a derivative at all (comparisons and masks do not).
    pub fn is_differentiable(&self) -> bool {
        !matches!(
            self,
            Op::Step | Op::Sign | Op::GreaterEq | Op::OneHot { .. } | Op::Const(_) | Op::Literal { .. } | Op::Size(_)
        )
    }
}

/// Emits instructions while a derivative is being built.
pub(crate) struct Emit<'f> {
    pub f: &'f mut Function,
    pub span: Span,
}

impl Emit<'_> {
    pub fn op(&mut self, op: Op, args: &[Value]) -> Value {
        self.f.push(op, args, self.span)
    }
    pub fn constant(&mut self, c: f64) -> Value {
        self.op(Op::Const(c), &[])
    }
    pub fn add(&mut self, a: Value, b: Value) -> Value {
        self.op(Op::Add, &[a, b])
    }
    pub fn sub(&mut self, a: Value, b: Value) -> Value {
        self.op(Op::Sub, &[a, b])
    }
    pub fn mul(&mut self, a: Value, b: Value) -> Value {
        self.op(Op::Mul, &[a, b])
    }
    pub fn div(&mut self, a: Value, b: Value) -> Value {
        self.op(Op::Div, &[a, b])
    }
    pub fn neg(&mut self, a: Value) -> Value {
        self.op(Op::Neg, &[a])
    }
    pub fn shape(&self, v: Value) -> Shape {
        self.f.ty(v).shape.clone()
    }
    /// `a * b`, or `b` when `a` is absent (a tangent of one).
    fn mul_opt(&mut self, a: Option<Value>, b: Value) -> Option<Value> {
        a.map(|a| self.mul(a, b))
    }
    /// The sum of the present values.
    fn sum_opt(&mut self, a: Option<Value>, b: Option<Value>) -> Option<Value> {
        match (a, b) {
            (Some(a), Some(b)) => Some(self.add(a, b)),
            (a, b) => a.or(b),
        }
    }
    /// `1 / n` for a count that may be symbolic (the batch size).
    fn inverse(&mut self, n: &Dim) -> Value {
        match n.as_const() {
            Some(n) => self.constant(1.0 / n as f64),
            None => {
                let one = self.constant(1.0);
                let size = self.op(Op::Size(n.clone()), &[]);
                self.div(one, size)
            }
        }
    }

    /// A reduction along `axis` that keeps the axis with size 1, for broadcasting back.
    fn sum_keep(&mut self, x: Value, axis: usize) -> Value {
        let mut kept = self.shape(x).0;
        kept[axis] = Dim::constant(1);
        let summed = self.op(Op::Sum { axis: Some(axis) }, &[x]);
        self.op(Op::Reshape(Shape(kept)), &[summed])
    }
}

// ---------------------------------------------------------------------------------------
// Shape helpers.

fn same(_: &Op, inputs: &[&Shape]) -> Result<Shape, String> {
    Ok(inputs[0].clone())
}

/// NumPy broadcasting of two shapes.
pub(crate) fn broadcast_shapes(a: &Shape, b: &Shape) -> Result<Shape, String> {
    let rank = a.rank().max(b.rank());
    let one = Dim::constant(1);
    let mut dims = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = (i + a.rank()).checked_sub(rank).map(|j| &a.0[j]).unwrap_or(&one);
        let db = (i + b.rank()).checked_sub(rank).map(|j| &b.0[j]).unwrap_or(&one);
        dims.push(if da == db || *db == one {
            da.clone()
        } else if *da == one {
            db.clone()
        } else {
            return Err(format!("cannot broadcast {a} with {b}"));
        });
    }
    Ok(Shape(dims))
}

fn broadcast2(_: &Op, inputs: &[&Shape]) -> Result<Shape, String> {
    broadcast_shapes(inputs[0], inputs[1])
}

fn scalar(_: &Op, _: &[&Shape]) -> Result<Shape, String> {
    Ok(Shape(Vec::new()))
}

// ---------------------------------------------------------------------------------------
// Evaluation helpers. Every evaluation writes into an output tensor that the caller made
// with the result's shape, so that an executor can reuse one buffer per value across steps.

fn map(x: &Tensor, out: &mut Tensor, f: impl Fn(f64) -> f64) {
    for (slot, &v) in out.data.iter_mut().zip(&x.data) {
        *slot = f(v);
    }
}

fn zip(a: &Tensor, b: &Tensor, out: &mut Tensor, f: impl Fn(f64, f64) -> f64) {
    if a.shape == out.shape && b.shape == out.shape {
        for ((slot, &x), &y) in out.data.iter_mut().zip(&a.data).zip(&b.data) {
            *slot = f(x, y);
        }
        return;
    }
    let (ia, ib) = (a.broadcast_index(&out.shape), b.broadcast_index(&out.shape));
    for (i, slot) in out.data.iter_mut().enumerate() {
        *slot = f(a.data[ia.at(i)], b.data[ib.at(i)]);
    }
}

pub(crate) fn broadcast_dims(a: &[usize], b: &[usize]) -> Vec<usize> {
    let rank = a.len().max(b.len());
    (0..rank)
        .map(|i| {
            let da = (i + a.len()).checked_sub(rank).map_or(1, |j| a[j]);
            let db = (i + b.len()).checked_sub(rank).map_or(1, |j| b[j]);
            da.max(db)
        })
        .collect()
}

/// The concrete sizes of a shape; the interpreter runs only functions whose shapes are known.
pub(crate) fn concrete(shape: &Shape) -> Vec<usize> {
    shape.0.iter().map(|d| d.as_const().expect("a concrete shape") as usize).collect()
}

// ---------------------------------------------------------------------------------------
// Rules of ops without a derivative or without attributes.

fn no_vjp(_: &mut Emit<'_>, _: &Op, args: &[Value], _: Value, _: Value, _: &[bool]) -> Vec<Option<Value>> {
    vec![None; args.len()]
}

fn no_jvp(_: &mut Emit<'_>, _: &Op, _: &[Value], _: Value, _: &[Option<Value>]) -> Option<Value> {
    None
}

/// An op without attributes writes none.
fn no_attributes(_: &Op) -> String {
    String::new()
}

// ---------------------------------------------------------------------------------------
// ONNX helpers.

/// The ONNX operator `op_type` of the same operands, whose broadcasting (NumPy's) and
/// meaning are this op's.
fn onnx_same(e: &mut OnnxEmit<'_>, op_type: &'static str, x: &[OnnxArg], y: &OnnxArg) -> Result<(), String> {
    let inputs: Vec<&str> = x.iter().map(|a| a.name.as_str()).collect();
    e.node(op_type, &inputs, &y.name, Vec::new());
    Ok(())
}

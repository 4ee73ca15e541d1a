//! The op registry: every primitive of the IR with, in one place, its shape rule, its
//! reference evaluation, its reverse-mode rule (VJP), its forward-mode rule (JVP) and its
//! ONNX form.
//!
//! A VJP rule gets the op's inputs, its output and the cotangent of the output, and returns
//! one optional cotangent per input, in the output's (broadcast) shape: the autodiff driver
//! sums contributions, un-broadcasts and inserts zeros. A JVP rule gets the tangents of
//! the inputs (`None` for zero) and returns the tangent of the output.

use super::interp::Tensor;
use super::onnx::{ONNX_FLOAT, ONNX_INT64, OnnxArg, OnnxAttr, OnnxData, OnnxEmit};
use super::parse::{Attributes, numbers};
use super::print::{number, optional_axis, pairs};
use super::{Function, Value};
use crate::shapes::{Dim, Shape};
use nnc_grammar::Span;

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

fn reduced(shape: &Shape, axis: Option<usize>) -> Result<Shape, String> {
    match axis {
        None => Ok(Shape(Vec::new())),
        Some(axis) if axis < shape.rank() => {
            let mut dims = shape.0.clone();
            dims.remove(axis);
            Ok(Shape(dims))
        }
        Some(axis) => Err(format!("axis {axis} of {shape}")),
    }
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

/// Splits `shape` around `axis`: (outer count, axis length, inner count).
fn around(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (shape[..axis].iter().product(), shape[axis], shape[axis + 1..].iter().product())
}

fn reduce(x: &Tensor, out: &mut Tensor, axis: Option<usize>, init: f64, f: impl Fn(f64, f64) -> f64) {
    match axis {
        None => out.data[0] = x.data.iter().fold(init, |a, &v| f(a, v)),
        Some(axis) => {
            let (outer, n, inner) = around(&x.shape, axis);
            out.data.fill(init);
            for o in 0..outer {
                for k in 0..n {
                    for i in 0..inner {
                        let slot = &mut out.data[o * inner + i];
                        *slot = f(*slot, x.data[(o * n + k) * inner + i]);
                    }
                }
            }
        }
    }
}

/// The lines of a tensor along an axis, as (first index, stride, length).
fn lines(shape: &[usize], axis: usize) -> impl Iterator<Item = (usize, usize, usize)> {
    let (outer, n, inner) = around(shape, axis);
    (0..outer).flat_map(move |o| (0..inner).map(move |i| (o * n * inner + i, inner, n)))
}

/// The largest element of a line and the sum of the exponentials of the elements minus it.
fn max_and_total(data: &[f64], (start, stride, n): (usize, usize, usize)) -> (f64, f64) {
    let at = |k: usize| data[start + k * stride];
    let max = (0..n).map(at).fold(f64::NEG_INFINITY, f64::max);
    (max, (0..n).map(|k| (at(k) - max).exp()).sum())
}

fn softmax_into(x: &Tensor, out: &mut Tensor, axis: usize, log: bool) {
    for line in lines(&x.shape, axis) {
        let (max, total) = max_and_total(&x.data, line);
        let log_total = total.ln() + max;
        let (start, stride, n) = line;
        for k in 0..n {
            let v = x.data[start + k * stride];
            out.data[start + k * stride] = if log { v - log_total } else { (v - max).exp() / total };
        }
    }
}

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

/// A comparison, whose boolean result ONNX casts to the 0 or 1 this op gives.
fn onnx_compare(e: &mut OnnxEmit<'_>, op_type: &'static str, inputs: &[&str], y: &OnnxArg) -> Result<(), String> {
    let test = e.temp(&y.name, op_type, inputs, Vec::new());
    e.node("Cast", &[&test], &y.name, vec![("to", OnnxAttr::Int(ONNX_FLOAT))]);
    Ok(())
}

/// `Reshape` of `x` to the result's shape.
fn onnx_reshape(e: &mut OnnxEmit<'_>, x: &str, y: &OnnxArg) -> Result<(), String> {
    let dims = e.reshape_dims(&y.shape)?;
    let shape = e.ints(&format!("{}/shape", y.name), dims);
    e.node("Reshape", &[x, &shape], &y.name, Vec::new());
    Ok(())
}

/// A reduction over one axis, or all of them, that drops the reduced axes.
fn onnx_reduce(
    e: &mut OnnxEmit<'_>,
    op_type: &'static str,
    axis: Option<usize>,
    x: &[OnnxArg],
    y: &OnnxArg,
) -> Result<(), String> {
    let keepdims = vec![("keepdims", OnnxAttr::Int(0))];
    match axis {
        Some(axis) => {
            let axes = e.ints(&format!("{}/axes", y.name), vec![axis as i64]);
            e.node(op_type, &[&x[0].name, &axes], &y.name, keepdims);
        }
        None => e.node(op_type, &[&x[0].name], &y.name, keepdims),
    }
    Ok(())
}

/// Pooling without padding, windows that fit only, as this op pools.
fn onnx_pool(
    e: &mut OnnxEmit<'_>,
    op_type: &'static str,
    (kernel, stride): Pool,
    x: &[OnnxArg],
    y: &OnnxArg,
) -> Result<(), String> {
    let attributes = vec![
        ("kernel_shape", OnnxAttr::Ints(vec![kernel.0 as i64, kernel.1 as i64])),
        ("strides", OnnxAttr::Ints(vec![stride.0 as i64, stride.1 as i64])),
    ];
    e.node(op_type, &[&x[0].name], &y.name, attributes);
    Ok(())
}

/// The `output_padding` of a transposed convolution from `output` back to `input` (height,
/// width): the rows and columns at the end that the window's stride never reached, which
/// the transposed convolution would otherwise leave out.
fn onnx_output_padding(
    input: (usize, usize),
    output: (usize, usize),
    kernel: (usize, usize),
    stride: (usize, usize),
    pad: (usize, usize),
) -> OnnxAttr {
    let extra =
        |size: usize, out: usize, k: usize, s: usize, p: usize| (size + 2 * p) as i64 - (k + (out - 1) * s) as i64;
    OnnxAttr::Ints(vec![
        extra(input.0, output.0, kernel.0, stride.0, pad.0),
        extra(input.1, output.1, kernel.1, stride.1, pad.1),
    ])
}

/// The flat indices (over the whole input, as `MaxPool` numbers them) of each pooling
/// window's maximum, from `MaxPool`'s second output.
fn onnx_argmax(e: &mut OnnxEmit<'_>, (kernel, stride): Pool, x: &str, base: &str) -> String {
    let attributes = vec![
        ("kernel_shape", OnnxAttr::Ints(vec![kernel.0 as i64, kernel.1 as i64])),
        ("strides", OnnxAttr::Ints(vec![stride.0 as i64, stride.1 as i64])),
    ];
    let (pooled, indices) = (e.fresh(&format!("{base}/pooled")), e.fresh(&format!("{base}/argmax")));
    e.node_outputs("MaxPool", &[x], &[&pooled, &indices], attributes);
    indices
}

// ---------------------------------------------------------------------------------------
// Constants.

/// `[2, 2; 1, 0, 0, 1]`: the shape, then the values in row-major order.
fn literal_attributes(op: &Op) -> String {
    let Op::Literal { shape, data } = op else { unreachable!() };
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let values: Vec<String> = data.iter().map(|v| number(*v)).collect();
    format!("[{}; {}]", dims.join(", "), values.join(", "))
}

fn parse_literal(attributes: &Attributes<'_>) -> Result<Op, String> {
    let (dims, data) = attributes.text().split_once(';').ok_or("`literal[shape; values]`")?;
    let shape: Vec<usize> = numbers(dims)?;
    let data: Vec<f64> = numbers(data)?;
    if shape.iter().product::<usize>() != data.len() {
        return Err("the literal's values do not fill its shape".into());
    }
    Ok(Op::Literal { shape, data })
}

static CONST: Rules = Rules {
    name: "const",
    attributes: no_attributes,
    parse: |_| Err("constants are written where they are used".into()),
    shape: scalar,
    eval: |op, _, out| {
        let Op::Const(c) = op else { unreachable!() };
        out.data[0] = *c
    },
    vjp: no_vjp,
    jvp: no_jvp,
    onnx: |e, op, _, y| {
        let Op::Const(c) = op else { unreachable!() };
        e.constant_named(&y.name, Vec::new(), OnnxData::Float(vec![*c as f32]));
        Ok(())
    },
};

static SIZE: Rules = Rules {
    name: "size",
    attributes: |op| {
        let Op::Size(dim) = op else { unreachable!() };
        format!("[{dim}]")
    },
    parse: |a| Ok(Op::Size(a.dim()?)),
    shape: scalar,
    eval: |op, _, out| {
        let Op::Size(dim) = op else { unreachable!() };
        out.data[0] = dim.as_const().expect("a concrete size") as f64
    },
    vjp: no_vjp,
    jvp: no_jvp,
    onnx: |e, op, _, y| {
        let Op::Size(dim) = op else { unreachable!() };
        let size = e.size(&y.name, dim)?;
        e.node("Identity", &[&size], &y.name, Vec::new());
        Ok(())
    },
};

static LITERAL: Rules = Rules {
    name: "literal",
    attributes: literal_attributes,
    parse: parse_literal,
    shape: |op, _| {
        let Op::Literal { shape, .. } = op else { unreachable!() };
        Ok(Shape(shape.iter().map(|&d| Dim::constant(d as i128)).collect()))
    },
    eval: |op, _, out| {
        let Op::Literal { data, .. } = op else { unreachable!() };
        out.data.copy_from_slice(data)
    },
    vjp: no_vjp,
    jvp: no_jvp,
    onnx: |e, op, _, y| {
        let Op::Literal { shape, data } = op else { unreachable!() };
        let dims = shape.iter().map(|&d| d as i64).collect();
        e.constant_named(&y.name, dims, OnnxData::Float(data.iter().map(|&v| v as f32).collect()));
        Ok(())
    },
};

// ---------------------------------------------------------------------------------------
// Unary elementwise ops. Each rule names the input `x`, the output `y`, the cotangent `g`
// and the tangent `t`.

static NEG: Rules = Rules {
    name: "neg",
    attributes: no_attributes,
    parse: |_| Ok(Op::Neg),
    shape: same,
    eval: |_, x, out| map(x[0], out, |v| -v),
    vjp: |e, _, _, _, g, _| vec![Some(e.neg(g))],
    jvp: |e, _, _, _, t| t[0].map(|t| e.neg(t)),
    onnx: |e, _, x, y| onnx_same(e, "Neg", x, y),
};

static EXP: Rules = Rules {
    name: "exp",
    attributes: no_attributes,
    parse: |_| Ok(Op::Exp),
    shape: same,
    eval: |_, x, out| map(x[0], out, f64::exp),
    // d exp(x) = exp(x) dx = y dx
    vjp: |e, _, _, y, g, _| vec![Some(e.mul(g, y))],
    jvp: |e, _, _, y, t| e.mul_opt(t[0], y),
    onnx: |e, _, x, y| onnx_same(e, "Exp", x, y),
};

static LN: Rules = Rules {
    name: "ln",
    attributes: no_attributes,
    parse: |_| Ok(Op::Ln),
    shape: same,
    eval: |_, x, out| map(x[0], out, f64::ln),
    // d ln(x) = dx / x
    vjp: |e, _, x, _, g, _| vec![Some(e.div(g, x[0]))],
    jvp: |e, _, x, _, t| t[0].map(|t| e.div(t, x[0])),
    onnx: |e, _, x, y| onnx_same(e, "Log", x, y),
};

static SQRT: Rules = Rules {
    name: "sqrt",
    attributes: no_attributes,
    parse: |_| Ok(Op::Sqrt),
    shape: same,
    eval: |_, x, out| map(x[0], out, f64::sqrt),
    // d sqrt(x) = dx / (2 y)
    vjp: |e, _, _, y, g, _| {
        let two = e.constant(2.0);
        let twice = e.mul(two, y);
        vec![Some(e.div(g, twice))]
    },
    jvp: |e, _, _, y, t| {
        let t = t[0]?;
        let two = e.constant(2.0);
        let twice = e.mul(two, y);
        Some(e.div(t, twice))
    },
    onnx: |e, _, x, y| onnx_same(e, "Sqrt", x, y),
};

static SIN: Rules = Rules {
    name: "sin",
    attributes: no_attributes,
    parse: |_| Ok(Op::Sin),
    shape: same,
    eval: |_, x, out| map(x[0], out, f64::sin),
    // d sin(x) = cos(x) dx
    vjp: |e, _, x, _, g, _| {
        let cos = e.op(Op::Cos, &[x[0]]);
        vec![Some(e.mul(g, cos))]
    },
    jvp: |e, _, x, _, t| {
        let t = t[0]?;
        let cos = e.op(Op::Cos, &[x[0]]);
        Some(e.mul(cos, t))
    },
    onnx: |e, _, x, y| onnx_same(e, "Sin", x, y),
};

static COS: Rules = Rules {
    name: "cos",
    attributes: no_attributes,
    parse: |_| Ok(Op::Cos),
    shape: same,
    eval: |_, x, out| map(x[0], out, f64::cos),
    // d cos(x) = -sin(x) dx
    vjp: |e, _, x, _, g, _| {
        let sin = e.op(Op::Sin, &[x[0]]);
        let product = e.mul(g, sin);
        vec![Some(e.neg(product))]
    },
    jvp: |e, _, x, _, t| {
        let t = t[0]?;
        let sin = e.op(Op::Sin, &[x[0]]);
        let product = e.mul(sin, t);
        Some(e.neg(product))
    },
    onnx: |e, _, x, y| onnx_same(e, "Cos", x, y),
};

/// `1 + y^2` or `1 - y^2`, the derivatives of tan and tanh in terms of their output.
fn one_plus_square(e: &mut Emit<'_>, y: Value, plus: bool) -> Value {
    let one = e.constant(1.0);
    let square = e.mul(y, y);
    if plus { e.add(one, square) } else { e.sub(one, square) }
}

static TAN: Rules = Rules {
    name: "tan",
    attributes: no_attributes,
    parse: |_| Ok(Op::Tan),
    shape: same,
    eval: |_, x, out| map(x[0], out, f64::tan),
    // d tan(x) = (1 + tan(x)^2) dx
    vjp: |e, _, _, y, g, _| {
        let d = one_plus_square(e, y, true);
        vec![Some(e.mul(g, d))]
    },
    jvp: |e, _, _, y, t| {
        let t = t[0]?;
        let d = one_plus_square(e, y, true);
        Some(e.mul(d, t))
    },
    onnx: |e, _, x, y| onnx_same(e, "Tan", x, y),
};

static ERF: Rules = Rules {
    name: "erf",
    attributes: no_attributes,
    parse: |_| Ok(Op::Erf),
    shape: same,
    eval: |_, x, out| map(x[0], out, libm::erf),
    // d erf(x) = 2 / sqrt(pi) · exp(-x^2) dx
    vjp: |e, _, x, _, g, _| {
        let d = erf_derivative(e, x[0]);
        vec![Some(e.mul(g, d))]
    },
    jvp: |e, _, x, _, t| {
        let t = t[0]?;
        let d = erf_derivative(e, x[0]);
        Some(e.mul(d, t))
    },
    onnx: |e, _, x, y| onnx_same(e, "Erf", x, y),
};

/// `2 / sqrt(pi) · exp(-x^2)`, the derivative of erf.
fn erf_derivative(e: &mut Emit<'_>, x: Value) -> Value {
    let square = e.mul(x, x);
    let negated = e.neg(square);
    let bell = e.op(Op::Exp, &[negated]);
    let scale = e.constant(std::f64::consts::FRAC_2_SQRT_PI);
    e.mul(scale, bell)
}

static TANH: Rules = Rules {
    name: "tanh",
    attributes: no_attributes,
    parse: |_| Ok(Op::Tanh),
    shape: same,
    eval: |_, x, out| map(x[0], out, f64::tanh),
    // d tanh(x) = (1 - tanh(x)^2) dx
    vjp: |e, _, _, y, g, _| {
        let d = one_plus_square(e, y, false);
        vec![Some(e.mul(g, d))]
    },
    jvp: |e, _, _, y, t| {
        let t = t[0]?;
        let d = one_plus_square(e, y, false);
        Some(e.mul(d, t))
    },
    onnx: |e, _, x, y| onnx_same(e, "Tanh", x, y),
};

/// `y (1 - y)`, the derivative of the sigmoid in terms of its output.
fn sigmoid_slope(e: &mut Emit<'_>, y: Value) -> Value {
    let one = e.constant(1.0);
    let rest = e.sub(one, y);
    e.mul(y, rest)
}

static SIGMOID: Rules = Rules {
    name: "sigmoid",
    attributes: no_attributes,
    parse: |_| Ok(Op::Sigmoid),
    shape: same,
    eval: |_, x, out| map(x[0], out, |v| 1.0 / (1.0 + (-v).exp())),
    vjp: |e, _, _, y, g, _| {
        let d = sigmoid_slope(e, y);
        vec![Some(e.mul(g, d))]
    },
    jvp: |e, _, _, y, t| {
        let t = t[0]?;
        let d = sigmoid_slope(e, y);
        Some(e.mul(d, t))
    },
    onnx: |e, _, x, y| onnx_same(e, "Sigmoid", x, y),
};

static RELU: Rules = Rules {
    name: "relu",
    attributes: no_attributes,
    parse: |_| Ok(Op::Relu),
    shape: same,
    eval: |_, x, out| map(x[0], out, |v| v.max(0.0)),
    // The derivative is 0 at 0, as in PyTorch.
    vjp: |e, _, x, _, g, _| {
        let step = e.op(Op::Step, &[x[0]]);
        vec![Some(e.mul(g, step))]
    },
    jvp: |e, _, x, _, t| {
        let t = t[0]?;
        let step = e.op(Op::Step, &[x[0]]);
        Some(e.mul(step, t))
    },
    onnx: |e, _, x, y| onnx_same(e, "Relu", x, y),
};

static ABS: Rules = Rules {
    name: "abs",
    attributes: no_attributes,
    parse: |_| Ok(Op::Abs),
    shape: same,
    eval: |_, x, out| map(x[0], out, f64::abs),
    vjp: |e, _, x, _, g, _| {
        let sign = e.op(Op::Sign, &[x[0]]);
        vec![Some(e.mul(g, sign))]
    },
    jvp: |e, _, x, _, t| {
        let t = t[0]?;
        let sign = e.op(Op::Sign, &[x[0]]);
        Some(e.mul(sign, t))
    },
    onnx: |e, _, x, y| onnx_same(e, "Abs", x, y),
};

static STEP: Rules = Rules {
    name: "step",
    attributes: no_attributes,
    parse: |_| Ok(Op::Step),
    shape: same,
    eval: |_, x, out| map(x[0], out, |v| if v > 0.0 { 1.0 } else { 0.0 }),
    vjp: no_vjp,
    jvp: no_jvp,
    onnx: |e, _, x, y| {
        let zero = e.floats(&format!("{}/zero", y.name), Vec::new(), vec![0.0]);
        onnx_compare(e, "Greater", &[&x[0].name, &zero], y)
    },
};

static SIGN: Rules = Rules {
    name: "sign",
    attributes: no_attributes,
    parse: |_| Ok(Op::Sign),
    shape: same,
    eval: |_, x, out| {
        map(x[0], out, |v| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                0.0
            }
        })
    },
    vjp: no_vjp,
    jvp: no_jvp,
    onnx: |e, _, x, y| onnx_same(e, "Sign", x, y),
};

// ---------------------------------------------------------------------------------------
// Binary elementwise ops, broadcasting as NumPy does. Inputs `a` and `b`.

static ADD: Rules = Rules {
    name: "add",
    attributes: no_attributes,
    parse: |_| Ok(Op::Add),
    shape: broadcast2,
    eval: |_, x, out| zip(x[0], x[1], out, |a, b| a + b),
    vjp: |_, _, _, _, g, _| vec![Some(g), Some(g)],
    jvp: |e, _, _, _, t| e.sum_opt(t[0], t[1]),
    onnx: |e, _, x, y| onnx_same(e, "Add", x, y),
};

static SUB: Rules = Rules {
    name: "sub",
    attributes: no_attributes,
    parse: |_| Ok(Op::Sub),
    shape: broadcast2,
    eval: |_, x, out| zip(x[0], x[1], out, |a, b| a - b),
    vjp: |e, _, _, _, g, needs| vec![Some(g), needs[1].then(|| e.neg(g))],
    jvp: |e, _, _, _, t| match (t[0], t[1]) {
        (Some(a), Some(b)) => Some(e.sub(a, b)),
        (Some(a), None) => Some(a),
        (None, Some(b)) => Some(e.neg(b)),
        (None, None) => None,
    },
    onnx: |e, _, x, y| onnx_same(e, "Sub", x, y),
};

static MUL: Rules = Rules {
    name: "mul",
    attributes: no_attributes,
    parse: |_| Ok(Op::Mul),
    shape: broadcast2,
    eval: |_, x, out| zip(x[0], x[1], out, |a, b| a * b),
    // d(ab) = b da + a db
    vjp: |e, _, x, _, g, needs| vec![needs[0].then(|| e.mul(g, x[1])), needs[1].then(|| e.mul(g, x[0]))],
    jvp: |e, _, x, _, t| {
        let da = t[0].map(|t| e.mul(t, x[1]));
        let db = t[1].map(|t| e.mul(x[0], t));
        e.sum_opt(da, db)
    },
    onnx: |e, _, x, y| onnx_same(e, "Mul", x, y),
};

static DIV: Rules = Rules {
    name: "div",
    attributes: no_attributes,
    parse: |_| Ok(Op::Div),
    shape: broadcast2,
    eval: |_, x, out| zip(x[0], x[1], out, |a, b| a / b),
    // d(a/b) = da / b - (a/b) db / b
    vjp: |e, _, x, y, g, needs| {
        let da = needs[0].then(|| e.div(g, x[1]));
        let db = needs[1].then(|| {
            let gy = e.mul(g, y);
            let q = e.div(gy, x[1]);
            e.neg(q)
        });
        vec![da, db]
    },
    jvp: |e, _, x, y, t| {
        let da = t[0].map(|t| e.div(t, x[1]));
        let db = t[1].map(|t| {
            let ty = e.mul(y, t);
            let q = e.div(ty, x[1]);
            e.neg(q)
        });
        e.sum_opt(da, db)
    },
    onnx: |e, _, x, y| onnx_same(e, "Div", x, y),
};

static POW: Rules = Rules {
    name: "pow",
    attributes: no_attributes,
    parse: |_| Ok(Op::Pow),
    shape: broadcast2,
    eval: |_, x, out| zip(x[0], x[1], out, f64::powf),
    // d(a^b) = b a^(b-1) da + a^b ln(a) db
    vjp: |e, _, x, y, g, needs| {
        let da = needs[0].then(|| {
            let one = e.constant(1.0);
            let b1 = e.sub(x[1], one);
            let p = e.op(Op::Pow, &[x[0], b1]);
            let slope = e.mul(x[1], p);
            e.mul(g, slope)
        });
        let db = needs[1].then(|| {
            let ln = e.op(Op::Ln, &[x[0]]);
            let slope = e.mul(y, ln);
            e.mul(g, slope)
        });
        vec![da, db]
    },
    jvp: |e, _, x, y, t| {
        let da = t[0].map(|t| {
            let one = e.constant(1.0);
            let b1 = e.sub(x[1], one);
            let p = e.op(Op::Pow, &[x[0], b1]);
            let slope = e.mul(x[1], p);
            e.mul(slope, t)
        });
        let db = t[1].map(|t| {
            let ln = e.op(Op::Ln, &[x[0]]);
            let slope = e.mul(y, ln);
            e.mul(slope, t)
        });
        e.sum_opt(da, db)
    },
    onnx: |e, _, x, y| onnx_same(e, "Pow", x, y),
};

/// The masks that route the derivative of max(a, b) or min(a, b): to `a` where `a` is the
/// one chosen (`a >= b` for max, `b >= a` for min), else to `b`.
fn select_masks(e: &mut Emit<'_>, x: &[Value], is_max: bool) -> (Value, Value) {
    let to_a = if is_max { e.op(Op::GreaterEq, &[x[0], x[1]]) } else { e.op(Op::GreaterEq, &[x[1], x[0]]) };
    let one = e.constant(1.0);
    let to_b = e.sub(one, to_a);
    (to_a, to_b)
}

fn extremum_vjp(e: &mut Emit<'_>, x: &[Value], g: Value, needs: &[bool], is_max: bool) -> Vec<Option<Value>> {
    let (to_a, to_b) = select_masks(e, x, is_max);
    vec![needs[0].then(|| e.mul(g, to_a)), needs[1].then(|| e.mul(g, to_b))]
}

fn extremum_jvp(e: &mut Emit<'_>, x: &[Value], t: &[Option<Value>], is_max: bool) -> Option<Value> {
    let (to_a, to_b) = select_masks(e, x, is_max);
    let a = t[0].map(|t| e.mul(to_a, t));
    let b = t[1].map(|t| e.mul(to_b, t));
    e.sum_opt(a, b)
}

static MAX: Rules = Rules {
    name: "max",
    attributes: no_attributes,
    parse: |_| Ok(Op::Max),
    shape: broadcast2,
    eval: |_, x, out| zip(x[0], x[1], out, f64::max),
    vjp: |e, _, x, _, g, needs| extremum_vjp(e, x, g, needs, true),
    jvp: |e, _, x, _, t| extremum_jvp(e, x, t, true),
    onnx: |e, _, x, y| onnx_same(e, "Max", x, y),
};

static MIN: Rules = Rules {
    name: "min",
    attributes: no_attributes,
    parse: |_| Ok(Op::Min),
    shape: broadcast2,
    eval: |_, x, out| zip(x[0], x[1], out, f64::min),
    vjp: |e, _, x, _, g, needs| extremum_vjp(e, x, g, needs, false),
    jvp: |e, _, x, _, t| extremum_jvp(e, x, t, false),
    onnx: |e, _, x, y| onnx_same(e, "Min", x, y),
};

static GREATER_EQ: Rules = Rules {
    name: "ge",
    attributes: no_attributes,
    parse: |_| Ok(Op::GreaterEq),
    shape: broadcast2,
    eval: |_, x, out| zip(x[0], x[1], out, |a, b| if a >= b { 1.0 } else { 0.0 }),
    vjp: no_vjp,
    jvp: no_jvp,
    onnx: |e, _, x, y| onnx_compare(e, "GreaterOrEqual", &[&x[0].name, &x[1].name], y),
};

// ---------------------------------------------------------------------------------------
// Linear algebra.

fn matmul_shape(_: &Op, inputs: &[&Shape]) -> Result<Shape, String> {
    let (a, b) = (inputs[0], inputs[1]);
    if a.rank() == 0 || b.rank() == 0 {
        return Err("matmul of a scalar".into());
    }
    let k_a = &a.0[a.rank() - 1];
    let k_b = if b.rank() == 1 { &b.0[0] } else { &b.0[b.rank() - 2] };
    if k_a != k_b || b.rank() > 2 {
        return Err(format!("matmul of {a} and {b}"));
    }
    let mut dims = a.0[..a.rank() - 1].to_vec();
    if b.rank() == 2 {
        dims.push(b.0[1].clone());
    }
    Ok(Shape(dims))
}

/// `[.., m, k] @ [k, n]` (or `[k]`), by the definition.
fn matmul_eval(a: &Tensor, b: &Tensor, out: &mut Tensor) {
    let k = *a.shape.last().expect("rank >= 1");
    let m = a.data.len() / k.max(1);
    let n = if b.shape.len() == 2 { b.shape[1] } else { 1 };
    for i in 0..m {
        for j in 0..n {
            out.data[i * n + j] = (0..k).map(|p| a.data[i * k + p] * b.data[p * n + j]).sum();
        }
    }
}

/// `x` as a matrix: vectors become one row (`row = true`) or one column.
fn as_matrix(e: &mut Emit<'_>, x: Value, row: bool) -> Value {
    let shape = e.shape(x);
    let dims = match shape.rank() {
        1 if row => vec![Dim::constant(1), shape.0[0].clone()],
        1 => vec![shape.0[0].clone(), Dim::constant(1)],
        2 => return x,
        _ => {
            // Batch dimensions fold into the rows.
            let rows = shape.0[..shape.rank() - 1].iter().try_fold(Dim::constant(1), |acc, d| acc.checked_mul(d).ok());
            vec![rows.unwrap_or_default(), shape.0[shape.rank() - 1].clone()]
        }
    };
    e.op(Op::Reshape(Shape(dims)), &[x])
}

static MATMUL: Rules = Rules {
    name: "matmul",
    attributes: no_attributes,
    parse: |_| Ok(Op::MatMul),
    shape: matmul_shape,
    eval: |_, x, out| matmul_eval(x[0], x[1], out),
    // y = a b: da = g b^T, db = a^T g, with vectors and batches as matrices.
    vjp: |e, _, x, _, g, needs| {
        let (a, b) = (x[0], x[1]);
        let (a_shape, b_shape) = (e.shape(a), e.shape(b));
        let a2 = as_matrix(e, a, true);
        let b2 = as_matrix(e, b, false);
        let rows = e.shape(a2).0[0].clone();
        let cols = e.shape(b2).0[1].clone();
        let g2 = e.op(Op::Reshape(Shape(vec![rows, cols])), &[g]);
        let da = needs[0].then(|| {
            let bt = e.op(Op::Transpose, &[b2]);
            let product = e.op(Op::MatMul, &[g2, bt]);
            e.op(Op::Reshape(a_shape), &[product])
        });
        let db = needs[1].then(|| {
            let at = e.op(Op::Transpose, &[a2]);
            let product = e.op(Op::MatMul, &[at, g2]);
            e.op(Op::Reshape(b_shape), &[product])
        });
        vec![da, db]
    },
    jvp: |e, _, x, _, t| {
        let da = t[0].map(|t| e.op(Op::MatMul, &[t, x[1]]));
        let db = t[1].map(|t| e.op(Op::MatMul, &[x[0], t]));
        e.sum_opt(da, db)
    },
    onnx: |e, _, x, y| onnx_same(e, "MatMul", x, y),
};

static TRANSPOSE: Rules = Rules {
    name: "transpose",
    attributes: no_attributes,
    parse: |_| Ok(Op::Transpose),
    shape: |_, inputs| {
        let mut dims = inputs[0].0.clone();
        let n = dims.len();
        if n >= 2 {
            dims.swap(n - 2, n - 1);
        }
        Ok(Shape(dims))
    },
    eval: |_, x, out| x[0].transpose_into(out),
    vjp: |e, _, _, _, g, _| vec![Some(e.op(Op::Transpose, &[g]))],
    jvp: |e, _, _, _, t| t[0].map(|t| e.op(Op::Transpose, &[t])),
    onnx: |e, _, x, y| {
        let rank = x[0].shape.rank();
        if rank < 2 {
            return onnx_same(e, "Identity", x, y);
        }
        let mut perm: Vec<i64> = (0..rank as i64).collect();
        perm.swap(rank - 2, rank - 1);
        e.node("Transpose", &[&x[0].name], &y.name, vec![("perm", OnnxAttr::Ints(perm))]);
        Ok(())
    },
};

// ---------------------------------------------------------------------------------------
// Shape ops.

static RESHAPE: Rules = Rules {
    name: "reshape",
    attributes: |op| {
        let Op::Reshape(shape) = op else { unreachable!() };
        format!("{shape}")
    },
    parse: |a| Ok(Op::Reshape(a.shape()?)),
    shape: |op, _| {
        let Op::Reshape(shape) = op else { unreachable!() };
        Ok(shape.clone())
    },
    eval: |_, x, out| out.data.copy_from_slice(&x[0].data),
    vjp: |e, _, x, _, g, _| {
        let shape = e.shape(x[0]);
        vec![Some(e.op(Op::Reshape(shape), &[g]))]
    },
    jvp: |e, op, _, _, t| t[0].map(|t| e.op(op.clone(), &[t])),
    onnx: |e, _, x, y| onnx_reshape(e, &x[0].name, y),
};

/// The concrete sizes of a shape; the interpreter runs only functions whose shapes are known.
pub(crate) fn concrete(shape: &Shape) -> Vec<usize> {
    shape.0.iter().map(|d| d.as_const().expect("a concrete shape") as usize).collect()
}

static BROADCAST: Rules = Rules {
    name: "broadcast",
    attributes: |op| {
        let Op::Broadcast(shape) = op else { unreachable!() };
        format!("{shape}")
    },
    parse: |a| Ok(Op::Broadcast(a.shape()?)),
    shape: |op, inputs| {
        let Op::Broadcast(shape) = op else { unreachable!() };
        broadcast_shapes(inputs[0], shape).map(|_| shape.clone())
    },
    eval: |_, x, out| {
        let index = x[0].broadcast_index(&out.shape);
        for (i, slot) in out.data.iter_mut().enumerate() {
            *slot = x[0].data[index.at(i)];
        }
    },
    vjp: |e, _, x, _, g, _| {
        let shape = e.shape(x[0]);
        vec![Some(e.op(Op::SumTo(shape), &[g]))]
    },
    jvp: |e, op, _, _, t| t[0].map(|t| e.op(op.clone(), &[t])),
    onnx: |e, _, x, y| {
        let shape = e.shape_tensor(&y.name, &y.shape)?;
        e.node("Expand", &[&x[0].name, &shape], &y.name, Vec::new());
        Ok(())
    },
};

static SUM_TO: Rules = Rules {
    name: "sum_to",
    attributes: |op| {
        let Op::SumTo(shape) = op else { unreachable!() };
        format!("{shape}")
    },
    parse: |a| Ok(Op::SumTo(a.shape()?)),
    shape: |op, _| {
        let Op::SumTo(shape) = op else { unreachable!() };
        Ok(shape.clone())
    },
    eval: |_, x, out| {
        out.data.fill(0.0);
        // Each element of the input adds into the element it was broadcast from.
        let index = out.broadcast_index(&x[0].shape);
        for (i, v) in x[0].data.iter().enumerate() {
            out.data[index.at(i)] += v;
        }
    },
    vjp: |e, _, x, _, g, _| {
        let shape = e.shape(x[0]);
        vec![Some(e.op(Op::Broadcast(shape), &[g]))]
    },
    jvp: |e, op, _, _, t| t[0].map(|t| e.op(op.clone(), &[t])),
    onnx: |e, _, x, y| {
        // The broadcast axes: the leading ones the target lacks, and those where it has 1.
        let (from, to) = (&x[0].shape, &y.shape);
        let offset = from.rank() - to.rank().min(from.rank());
        let one = Dim::constant(1);
        let axes: Vec<i64> = (0..from.rank())
            .filter(|&i| i < offset || (to.0[i - offset] == one && from.0[i] != one))
            .map(|i| i as i64)
            .collect();
        if axes.is_empty() {
            return onnx_reshape(e, &x[0].name, y);
        }
        let axes = e.ints(&format!("{}/axes", y.name), axes);
        let summed = e.temp(&y.name, "ReduceSum", &[&x[0].name, &axes], vec![("keepdims", OnnxAttr::Int(1))]);
        onnx_reshape(e, &summed, y)
    },
};

// ---------------------------------------------------------------------------------------
// Reductions.

/// The cotangent of a reduction, spread back over the reduced axis.
fn spread(e: &mut Emit<'_>, x: Value, axis: Option<usize>, g: Value) -> Value {
    let shape = e.shape(x);
    let kept = match axis {
        Some(axis) => {
            let mut dims = shape.0.clone();
            dims[axis] = Dim::constant(1);
            e.op(Op::Reshape(Shape(dims)), &[g])
        }
        None => g,
    };
    e.op(Op::Broadcast(shape), &[kept])
}

fn reduced_count(shape: &Shape, axis: Option<usize>) -> Dim {
    match axis {
        Some(axis) => shape.0[axis].clone(),
        None => shape.elements().unwrap_or_default(),
    }
}

static SUM: Rules = Rules {
    name: "sum",
    attributes: |op| {
        let Op::Sum { axis } = op else { unreachable!() };
        optional_axis(*axis)
    },
    parse: |a| Ok(Op::Sum { axis: a.axis()? }),
    shape: |op, inputs| {
        let Op::Sum { axis } = op else { unreachable!() };
        reduced(inputs[0], *axis)
    },
    eval: |op, x, out| {
        let Op::Sum { axis } = op else { unreachable!() };
        reduce(x[0], out, *axis, 0.0, |a, v| a + v)
    },
    vjp: |e, op, x, _, g, _| {
        let Op::Sum { axis } = op else { unreachable!() };
        vec![Some(spread(e, x[0], *axis, g))]
    },
    jvp: |e, op, _, _, t| t[0].map(|t| e.op(op.clone(), &[t])),
    onnx: |e, op, x, y| {
        let Op::Sum { axis } = op else { unreachable!() };
        onnx_reduce(e, "ReduceSum", *axis, x, y)
    },
};

/// `1 / n` for the elements a mean combines.
fn inverse_count(e: &mut Emit<'_>, x: Value, axis: Option<usize>) -> Value {
    let n = reduced_count(&e.shape(x), axis);
    e.inverse(&n)
}

static MEAN: Rules = Rules {
    name: "mean",
    attributes: |op| {
        let Op::Mean { axis } = op else { unreachable!() };
        optional_axis(*axis)
    },
    parse: |a| Ok(Op::Mean { axis: a.axis()? }),
    shape: |op, inputs| {
        let Op::Mean { axis } = op else { unreachable!() };
        reduced(inputs[0], *axis)
    },
    eval: |op, x, out| {
        let Op::Mean { axis } = op else { unreachable!() };
        let n = match axis {
            Some(axis) => x[0].shape[*axis],
            None => x[0].data.len(),
        };
        reduce(x[0], out, *axis, 0.0, |a, v| a + v);
        for v in &mut out.data {
            *v /= n as f64;
        }
    },
    vjp: |e, op, x, _, g, _| {
        let Op::Mean { axis } = op else { unreachable!() };
        let inv = inverse_count(e, x[0], *axis);
        let scaled = e.mul(g, inv);
        vec![Some(spread(e, x[0], *axis, scaled))]
    },
    jvp: |e, op, _, _, t| t[0].map(|t| e.op(op.clone(), &[t])),
    onnx: |e, op, x, y| {
        let Op::Mean { axis } = op else { unreachable!() };
        onnx_reduce(e, "ReduceMean", *axis, x, y)
    },
};

static REDUCE_MAX: Rules = Rules {
    name: "reduce_max",
    attributes: |op| {
        let Op::ReduceMax { axis } = op else { unreachable!() };
        optional_axis(*axis)
    },
    parse: |a| Ok(Op::ReduceMax { axis: a.axis()? }),
    shape: |op, inputs| {
        let Op::ReduceMax { axis } = op else { unreachable!() };
        reduced(inputs[0], *axis)
    },
    eval: |op, x, out| {
        let Op::ReduceMax { axis } = op else { unreachable!() };
        reduce(x[0], out, *axis, f64::NEG_INFINITY, f64::max)
    },
    // The cotangent goes to the elements equal to the maximum.
    vjp: |e, op, x, y, g, _| {
        let Op::ReduceMax { axis } = op else { unreachable!() };
        let top = spread(e, x[0], *axis, y);
        let mask = e.op(Op::GreaterEq, &[x[0], top]);
        let spread_g = spread(e, x[0], *axis, g);
        vec![Some(e.mul(spread_g, mask))]
    },
    jvp: |e, op, x, y, t| {
        let Op::ReduceMax { axis } = op else { unreachable!() };
        let t = t[0]?;
        let top = spread(e, x[0], *axis, y);
        let mask = e.op(Op::GreaterEq, &[x[0], top]);
        let picked = e.mul(mask, t);
        Some(e.op(Op::Sum { axis: *axis }, &[picked]))
    },
    onnx: |e, op, x, y| {
        let Op::ReduceMax { axis } = op else { unreachable!() };
        onnx_reduce(e, "ReduceMax", *axis, x, y)
    },
};

// ---------------------------------------------------------------------------------------
// Neural-network ops.

static SOFTMAX: Rules = Rules {
    name: "softmax",
    attributes: |op| {
        let Op::Softmax { axis } = op else { unreachable!() };
        format!("[axis={axis}]")
    },
    parse: |a| Ok(Op::Softmax { axis: a.required_axis()? }),
    shape: same,
    eval: |op, x, out| {
        let Op::Softmax { axis } = op else { unreachable!() };
        softmax_into(x[0], out, *axis, false)
    },
    // dx = y (g - sum(g y))
    vjp: |e, op, _, y, g, _| {
        let Op::Softmax { axis } = op else { unreachable!() };
        let gy = e.mul(g, y);
        let total = e.sum_keep(gy, *axis);
        let centred = e.sub(g, total);
        vec![Some(e.mul(y, centred))]
    },
    jvp: |e, op, _, y, t| {
        let Op::Softmax { axis } = op else { unreachable!() };
        let t = t[0]?;
        let ty = e.mul(t, y);
        let total = e.sum_keep(ty, *axis);
        let centred = e.sub(t, total);
        Some(e.mul(y, centred))
    },
    onnx: |e, op, x, y| {
        let Op::Softmax { axis } = op else { unreachable!() };
        e.node("Softmax", &[&x[0].name], &y.name, vec![("axis", OnnxAttr::Int(*axis as i64))]);
        Ok(())
    },
};

static LOG_SOFTMAX: Rules = Rules {
    name: "log_softmax",
    attributes: |op| {
        let Op::LogSoftmax { axis } = op else { unreachable!() };
        format!("[axis={axis}]")
    },
    parse: |a| Ok(Op::LogSoftmax { axis: a.required_axis()? }),
    shape: same,
    eval: |op, x, out| {
        let Op::LogSoftmax { axis } = op else { unreachable!() };
        softmax_into(x[0], out, *axis, true)
    },
    // dx = g - softmax(x) sum(g), with softmax(x) = exp(y)
    vjp: |e, op, _, y, g, _| {
        let Op::LogSoftmax { axis } = op else { unreachable!() };
        let p = e.op(Op::Exp, &[y]);
        let total = e.sum_keep(g, *axis);
        let spread = e.mul(p, total);
        vec![Some(e.sub(g, spread))]
    },
    jvp: |e, op, _, y, t| {
        let Op::LogSoftmax { axis } = op else { unreachable!() };
        let t = t[0]?;
        let p = e.op(Op::Exp, &[y]);
        let pt = e.mul(p, t);
        let total = e.sum_keep(pt, *axis);
        Some(e.sub(t, total))
    },
    onnx: |e, op, x, y| {
        let Op::LogSoftmax { axis } = op else { unreachable!() };
        e.node("LogSoftmax", &[&x[0].name], &y.name, vec![("axis", OnnxAttr::Int(*axis as i64))]);
        Ok(())
    },
};

static ONE_HOT: Rules = Rules {
    name: "one_hot",
    attributes: |op| {
        let Op::OneHot { classes } = op else { unreachable!() };
        format!("[classes={classes}]")
    },
    parse: |a| Ok(Op::OneHot { classes: a.number("classes")? }),
    shape: |op, inputs| {
        let Op::OneHot { classes } = op else { unreachable!() };
        let mut dims = inputs[0].0.clone();
        dims.push(Dim::constant(*classes as i128));
        Ok(Shape(dims))
    },
    eval: |op, x, out| {
        let Op::OneHot { classes } = op else { unreachable!() };
        out.data.fill(0.0);
        for (i, &label) in x[0].data.iter().enumerate() {
            let class = label.round();
            if class >= 0.0 && (class as usize) < *classes {
                out.data[i * classes + class as usize] = 1.0;
            }
        }
    },
    vjp: no_vjp,
    jvp: no_jvp,
    onnx: |e, op, x, y| {
        let Op::OneHot { classes } = op else { unreachable!() };
        let labels = e.temp(&y.name, "Cast", &[&x[0].name], vec![("to", OnnxAttr::Int(ONNX_INT64))]);
        let depth = e.ints(&format!("{}/depth", y.name), vec![*classes as i64]);
        let values = e.floats(&format!("{}/values", y.name), vec![2], vec![0.0, 1.0]);
        e.node("OneHot", &[&labels, &depth, &values], &y.name, vec![("axis", OnnxAttr::Int(-1))]);
        Ok(())
    },
};

static MSE: Rules = Rules {
    name: "mse",
    attributes: no_attributes,
    parse: |_| Ok(Op::Mse),
    shape: |_, inputs| broadcast_shapes(inputs[0], inputs[1]).map(|_| Shape(Vec::new())),
    eval: |_, x, out| {
        let shape = broadcast_dims(&x[0].shape, &x[1].shape);
        let (ia, ib) = (x[0].broadcast_index(&shape), x[1].broadcast_index(&shape));
        let n: usize = shape.iter().product();
        let total: f64 = (0..n).map(|i| x[0].data[ia.at(i)] - x[1].data[ib.at(i)]).map(|d| d * d).sum();
        out.data[0] = total / n.max(1) as f64;
    },
    // d mean((y - t)^2) = 2 (y - t) / n (dy - dt)
    vjp: |e, _, x, _, g, needs| {
        let d = e.sub(x[0], x[1]);
        let n = broadcast_shapes(&e.shape(x[0]), &e.shape(x[1])).ok().and_then(|s| s.elements()).unwrap_or_default();
        let inverse = e.inverse(&n);
        let two = e.constant(2.0);
        let scale = e.mul(two, inverse);
        let gs = e.mul(g, scale);
        let dy = e.mul(gs, d);
        vec![needs[0].then_some(dy), needs[1].then(|| e.neg(dy))]
    },
    jvp: |e, _, x, _, t| {
        let dt = match (t[0], t[1]) {
            (Some(a), Some(b)) => e.sub(a, b),
            (Some(a), None) => a,
            (None, Some(b)) => e.neg(b),
            (None, None) => return None,
        };
        let d = e.sub(x[0], x[1]);
        let two = e.constant(2.0);
        let product = e.mul(d, dt);
        let scaled = e.mul(two, product);
        Some(e.op(Op::Mean { axis: None }, &[scaled]))
    },
    onnx: |e, _, x, y| {
        let d = e.temp(&y.name, "Sub", &[&x[0].name, &x[1].name], Vec::new());
        let squared = e.temp(&y.name, "Mul", &[&d, &d], Vec::new());
        e.node("ReduceMean", &[&squared], &y.name, vec![("keepdims", OnnxAttr::Int(0))]);
        Ok(())
    },
};

static SOFTMAX_CROSS_ENTROPY: Rules = Rules {
    name: "softmax_cross_entropy",
    attributes: no_attributes,
    parse: |_| Ok(Op::SoftmaxCrossEntropy),
    shape: scalar,
    eval: |_, x, out| {
        let (logits, labels) = (x[0], x[1]);
        let classes = *logits.shape.last().expect("rank 2");
        let rows = logits.data.len() / classes.max(1);
        let mut total = 0.0;
        for r in 0..rows {
            let (max, sum) = max_and_total(&logits.data, (r * classes, 1, classes));
            let label = labels.data[r].round() as usize % classes.max(1);
            total -= logits.data[r * classes + label] - (sum.ln() + max);
        }
        out.data[0] = total / rows.max(1) as f64;
    },
    // d logits = g (softmax(logits) - one_hot(labels)) / N; labels are not differentiable.
    vjp: |e, _, x, _, g, _| {
        let shape = e.shape(x[0]);
        let classes = shape.0[1].as_const().unwrap_or(1) as usize;
        let rows = shape.0[0].clone();
        let p = e.op(Op::Softmax { axis: 1 }, &[x[0]]);
        let hot = e.op(Op::OneHot { classes }, &[x[1]]);
        let diff = e.sub(p, hot);
        let scale = e.inverse(&rows);
        let gs = e.mul(g, scale);
        vec![Some(e.mul(gs, diff)), None]
    },
    jvp: |e, _, x, _, t| {
        let t = t[0]?;
        let shape = e.shape(x[0]);
        let classes = shape.0[1].as_const().unwrap_or(1) as usize;
        let p = e.op(Op::Softmax { axis: 1 }, &[x[0]]);
        let hot = e.op(Op::OneHot { classes }, &[x[1]]);
        let diff = e.sub(p, hot);
        let product = e.mul(diff, t);
        let per_row = e.op(Op::Sum { axis: Some(1) }, &[product]);
        Some(e.op(Op::Mean { axis: None }, &[per_row]))
    },
    onnx: |e, _, x, y| {
        // The labels are class numbers held as reals; the ONNX loss takes them as integers,
        // and averages over the batch by default, as this op does.
        let labels = e.temp(&y.name, "Cast", &[&x[1].name], vec![("to", OnnxAttr::Int(ONNX_INT64))]);
        e.node("SoftmaxCrossEntropyLoss", &[&x[0].name, &labels], &y.name, Vec::new());
        Ok(())
    },
};

// ---------------------------------------------------------------------------------------
// Convolution and pooling, over `[N, C, H, W]` as PyTorch lays them out.

/// `floor((n + 2 pad - k) / stride) + 1` on dimensions (`shapes::window`).
fn window(n: &Dim, k: usize, stride: usize, pad: usize) -> Result<Dim, String> {
    let size = |v: usize| Dim::constant(v as i128);
    match crate::shapes::window(n, &size(k), &size(stride), &size(pad)) {
        Ok(window) => Ok(window.out),
        Err(crate::shapes::WindowError::Overflow) => Err("too large".to_string()),
        Err(crate::shapes::WindowError::Stride) => Err("stride 0".to_string()),
    }
}

fn rank4(shape: &Shape, what: &str) -> Result<(), String> {
    if shape.rank() == 4 { Ok(()) } else { Err(format!("{what} must be [N, C, H, W], not {shape}")) }
}

/// The height and width of a windowed op's input must be numbers: its derivative ops
/// carry them as attributes.
fn concrete_spatial(shape: &Shape) -> Result<(), String> {
    match shape.0[2..].iter().find(|d| !d.is_const()) {
        Some(_) => Err(format!(
            "the input {shape} needs its height and width as numbers, not {} and {}",
            shape.0[2], shape.0[3]
        )),
        None => Ok(()),
    }
}

/// Visits every (output position, window position, input position) of a windowed op:
/// `f(n, c_out_index_base, i, j, k, l, h, w)` with `h, w` in padded-input coordinates,
/// skipping positions in the padding.
struct Windows {
    n: usize,
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
    kernel: (usize, usize),
    stride: (usize, usize),
    pad: (usize, usize),
}

impl Windows {
    /// Calls `f(i, j, k, l, h, w)` for output row `i`, column `j`, window offset `(k, l)`,
    /// and the input position `(h, w)` it reads, when that is not padding.
    fn each(&self, mut f: impl FnMut(usize, usize, usize, usize, usize, usize)) {
        for i in 0..self.ho {
            for j in 0..self.wo {
                for k in 0..self.kernel.0 {
                    for l in 0..self.kernel.1 {
                        let h = (i * self.stride.0 + k).checked_sub(self.pad.0);
                        let w = (j * self.stride.1 + l).checked_sub(self.pad.1);
                        if let (Some(h), Some(w)) = (h, w)
                            && h < self.h
                            && w < self.w
                        {
                            f(i, j, k, l, h, w);
                        }
                    }
                }
            }
        }
    }
}

fn conv_windows(
    x: &[usize],
    kernel: (usize, usize),
    stride: (usize, usize),
    pad: (usize, usize),
    out: (usize, usize),
) -> Windows {
    Windows { n: x[0], h: x[2], w: x[3], ho: out.0, wo: out.1, kernel, stride, pad }
}

fn conv_eval(x: &Tensor, w: &Tensor, stride: (usize, usize), pad: (usize, usize), y: &mut Tensor) {
    let (o_count, c_count, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
    let (ho, wo) = (y.shape[2], y.shape[3]);
    let win = conv_windows(&x.shape, (kh, kw), stride, pad, (ho, wo));
    y.data.fill(0.0);
    for n in 0..win.n {
        for o in 0..o_count {
            for c in 0..c_count {
                win.each(|i, j, k, l, h, wpos| {
                    y.data[((n * o_count + o) * ho + i) * wo + j] += w.data[((o * c_count + c) * kh + k) * kw + l]
                        * x.data[((n * c_count + c) * win.h + h) * win.w + wpos];
                });
            }
        }
    }
}

fn conv_input_grad_eval(
    g: &Tensor,
    w: &Tensor,
    stride: (usize, usize),
    pad: (usize, usize),
    input: (usize, usize),
    dx: &mut Tensor,
) {
    let (o_count, c_count, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
    let (n_count, ho, wo) = (g.shape[0], g.shape[2], g.shape[3]);
    let win = Windows { n: n_count, h: input.0, w: input.1, ho, wo, kernel: (kh, kw), stride, pad };
    dx.data.fill(0.0);
    for n in 0..n_count {
        for o in 0..o_count {
            for c in 0..c_count {
                win.each(|i, j, k, l, h, wpos| {
                    dx.data[((n * c_count + c) * input.0 + h) * input.1 + wpos] +=
                        g.data[((n * o_count + o) * ho + i) * wo + j] * w.data[((o * c_count + c) * kh + k) * kw + l];
                });
            }
        }
    }
}

fn conv_weight_grad_eval(
    x: &Tensor,
    g: &Tensor,
    stride: (usize, usize),
    pad: (usize, usize),
    kernel: (usize, usize),
    dw: &mut Tensor,
) {
    let (n_count, c_count) = (x.shape[0], x.shape[1]);
    let (o_count, ho, wo) = (g.shape[1], g.shape[2], g.shape[3]);
    let win = conv_windows(&x.shape, kernel, stride, pad, (ho, wo));
    let (kh, kw) = kernel;
    dw.data.fill(0.0);
    for n in 0..n_count {
        for o in 0..o_count {
            for c in 0..c_count {
                win.each(|i, j, k, l, h, wpos| {
                    dw.data[((o * c_count + c) * kh + k) * kw + l] += g.data[((n * o_count + o) * ho + i) * wo + j]
                        * x.data[((n * c_count + c) * win.h + h) * win.w + wpos];
                });
            }
        }
    }
}

/// The `(stride, pad)` of a convolution.
fn conv2d(op: &Op) -> ((usize, usize), (usize, usize)) {
    let Op::Conv2d { stride, pad } = op else { unreachable!() };
    (*stride, *pad)
}

/// Two spatial sizes, which the shape analysis has made concrete (only the batch may be a
/// symbol).
fn concrete_pair(shape: &Shape, from: usize) -> (usize, usize) {
    let size = |d: &Dim| d.as_const().expect("concrete spatial sizes") as usize;
    (size(&shape.0[from]), size(&shape.0[from + 1]))
}

static CONV2D: Rules = Rules {
    name: "conv2d",
    attributes: |op| {
        let Op::Conv2d { stride, pad } = op else { unreachable!() };
        pairs(&[("stride", *stride), ("pad", *pad)])
    },
    parse: |a| Ok(Op::Conv2d { stride: a.pair("stride")?, pad: a.pair("pad")? }),
    shape: |op, inputs| {
        let (stride, pad) = conv2d(op);
        let (x, w) = (inputs[0], inputs[1]);
        rank4(x, "the input")?;
        rank4(w, "the weight")?;
        concrete_spatial(x)?;
        if x.0[1] != w.0[1] {
            return Err(format!("{x} has {} channels, the weight {w} expects {}", x.0[1], w.0[1]));
        }
        let (kh, kw) = (
            w.0[2].as_const().ok_or("symbolic kernel")? as usize,
            w.0[3].as_const().ok_or("symbolic kernel")? as usize,
        );
        let ho = window(&x.0[2], kh, stride.0, pad.0)?;
        let wo = window(&x.0[3], kw, stride.1, pad.1)?;
        Ok(Shape(vec![x.0[0].clone(), w.0[0].clone(), ho, wo]))
    },
    eval: |op, x, out| {
        let (stride, pad) = conv2d(op);
        conv_eval(x[0], x[1], stride, pad, out)
    },
    vjp: |e, op, x, _, g, needs| {
        let (stride, pad) = conv2d(op);
        let (xs, ws) = (e.shape(x[0]), e.shape(x[1]));
        let dx = needs[0].then(|| e.op(Op::Conv2dInputGrad { stride, pad, input: concrete_pair(&xs, 2) }, &[g, x[1]]));
        let dw =
            needs[1].then(|| e.op(Op::Conv2dWeightGrad { stride, pad, kernel: concrete_pair(&ws, 2) }, &[x[0], g]));
        vec![dx, dw]
    },
    jvp: |e, op, x, _, t| {
        let a = t[0].map(|t| e.op(op.clone(), &[t, x[1]]));
        let b = t[1].map(|t| e.op(op.clone(), &[x[0], t]));
        e.sum_opt(a, b)
    },
    onnx: |e, op, x, y| {
        let (stride, pad) = conv2d(op);
        let pads = vec![pad.0 as i64, pad.1 as i64, pad.0 as i64, pad.1 as i64];
        let strides = vec![stride.0 as i64, stride.1 as i64];
        let attributes = vec![("pads", OnnxAttr::Ints(pads)), ("strides", OnnxAttr::Ints(strides))];
        e.node("Conv", &[&x[0].name, &x[1].name], &y.name, attributes);
        Ok(())
    },
};

static CONV2D_INPUT_GRAD: Rules = Rules {
    name: "conv2d_input_grad",
    attributes: |op| {
        let Op::Conv2dInputGrad { stride, pad, input } = op else { unreachable!() };
        pairs(&[("stride", *stride), ("pad", *pad), ("input", *input)])
    },
    parse: |a| Ok(Op::Conv2dInputGrad { stride: a.pair("stride")?, pad: a.pair("pad")?, input: a.pair("input")? }),
    shape: |op, inputs| {
        let Op::Conv2dInputGrad { input, .. } = op else { unreachable!() };
        let (g, w) = (inputs[0], inputs[1]);
        Ok(Shape(vec![g.0[0].clone(), w.0[1].clone(), Dim::constant(input.0 as i128), Dim::constant(input.1 as i128)]))
    },
    eval: |op, x, out| {
        let Op::Conv2dInputGrad { stride, pad, input } = op else { unreachable!() };
        conv_input_grad_eval(x[0], x[1], *stride, *pad, *input, out)
    },
    // Linear in both inputs: <dx(g, w), z> = <g, conv(z, w)> = <w, dw(z, g)>.
    vjp: |e, op, x, _, z, needs| {
        let Op::Conv2dInputGrad { stride, pad, .. } = *op else { unreachable!() };
        let ws = e.shape(x[1]);
        let dg = needs[0].then(|| e.op(Op::Conv2d { stride, pad }, &[z, x[1]]));
        let dw =
            needs[1].then(|| e.op(Op::Conv2dWeightGrad { stride, pad, kernel: concrete_pair(&ws, 2) }, &[z, x[0]]));
        vec![dg, dw]
    },
    jvp: |e, op, x, _, t| {
        let a = t[0].map(|t| e.op(op.clone(), &[t, x[1]]));
        let b = t[1].map(|t| e.op(op.clone(), &[x[0], t]));
        e.sum_opt(a, b)
    },
    onnx: |e, op, x, y| {
        // The transposed convolution, with the output padding that gives back the input's
        // size when the stride dropped rows or columns at the end.
        let Op::Conv2dInputGrad { stride, pad, input } = op else { unreachable!() };
        let (out_h, out_w) = concrete_pair(&x[0].shape, 2);
        let (kh, kw) = concrete_pair(&x[1].shape, 2);
        let attributes = vec![
            ("strides", OnnxAttr::Ints(vec![stride.0 as i64, stride.1 as i64])),
            ("pads", OnnxAttr::Ints(vec![pad.0 as i64, pad.1 as i64, pad.0 as i64, pad.1 as i64])),
            ("output_padding", onnx_output_padding(*input, (out_h, out_w), (kh, kw), *stride, *pad)),
        ];
        e.node("ConvTranspose", &[&x[0].name, &x[1].name], &y.name, attributes);
        Ok(())
    },
};

static CONV2D_WEIGHT_GRAD: Rules = Rules {
    name: "conv2d_weight_grad",
    attributes: |op| {
        let Op::Conv2dWeightGrad { stride, pad, kernel } = op else { unreachable!() };
        pairs(&[("stride", *stride), ("pad", *pad), ("kernel", *kernel)])
    },
    parse: |a| Ok(Op::Conv2dWeightGrad { stride: a.pair("stride")?, pad: a.pair("pad")?, kernel: a.pair("kernel")? }),
    shape: |op, inputs| {
        let Op::Conv2dWeightGrad { kernel, .. } = op else { unreachable!() };
        let (x, g) = (inputs[0], inputs[1]);
        Ok(Shape(vec![
            g.0[1].clone(),
            x.0[1].clone(),
            Dim::constant(kernel.0 as i128),
            Dim::constant(kernel.1 as i128),
        ]))
    },
    eval: |op, x, out| {
        let Op::Conv2dWeightGrad { stride, pad, kernel } = op else { unreachable!() };
        conv_weight_grad_eval(x[0], x[1], *stride, *pad, *kernel, out)
    },
    // Linear in both inputs: <dw(x, g), z> = <g, conv(x, z)> = <x, dx(g, z)>.
    vjp: |e, op, x, _, z, needs| {
        let Op::Conv2dWeightGrad { stride, pad, .. } = *op else { unreachable!() };
        let xs = e.shape(x[0]);
        let dx = needs[0].then(|| e.op(Op::Conv2dInputGrad { stride, pad, input: concrete_pair(&xs, 2) }, &[x[1], z]));
        let dg = needs[1].then(|| e.op(Op::Conv2d { stride, pad }, &[x[0], z]));
        vec![dx, dg]
    },
    jvp: |e, op, x, _, t| {
        let a = t[0].map(|t| e.op(op.clone(), &[t, x[1]]));
        let b = t[1].map(|t| e.op(op.clone(), &[x[0], t]));
        e.sum_opt(a, b)
    },
    onnx: |e, op, x, y| {
        // dW[o, c] = sum over n of x[n, c] correlated with g[n, o] dilated by the stride: a
        // convolution with the batch as the channels, images and cotangents swapped in and
        // out of the batch axis, cut to the kernel's size.
        let Op::Conv2dWeightGrad { stride, pad, kernel } = op else { unreachable!() };
        let (h, w) = concrete_pair(&x[0].shape, 2);
        let (out_h, out_w) = concrete_pair(&x[1].shape, 2);
        let swap = || vec![("perm", OnnxAttr::Ints(vec![1, 0, 2, 3]))];
        let images = e.temp(&y.name, "Transpose", &[&x[0].name], swap());
        let cotangents = e.temp(&y.name, "Transpose", &[&x[1].name], swap());
        let attributes = vec![
            ("dilations", OnnxAttr::Ints(vec![stride.0 as i64, stride.1 as i64])),
            ("pads", OnnxAttr::Ints(vec![pad.0 as i64, pad.1 as i64, pad.0 as i64, pad.1 as i64])),
        ];
        let mut full = e.temp(&y.name, "Conv", &[&images, &cotangents], attributes);
        let size = (h + 2 * pad.0 - (out_h - 1) * stride.0, w + 2 * pad.1 - (out_w - 1) * stride.1);
        if size != *kernel {
            let starts = e.ints(&format!("{}/starts", y.name), vec![0, 0]);
            let ends = e.ints(&format!("{}/ends", y.name), vec![kernel.0 as i64, kernel.1 as i64]);
            let axes = e.ints(&format!("{}/axes", y.name), vec![2, 3]);
            full = e.temp(&y.name, "Slice", &[&full, &starts, &ends, &axes], Vec::new());
        }
        e.node("Transpose", &[&full], &y.name, swap());
        Ok(())
    },
};

/// A pooling op's `(kernel, stride)`.
type Pool = ((usize, usize), (usize, usize));

fn max_pool(op: &Op) -> Pool {
    let Op::MaxPool2d { kernel, stride } = op else { unreachable!() };
    (*kernel, *stride)
}

fn max_pool_grad(op: &Op) -> Pool {
    let Op::MaxPool2dGrad { kernel, stride } = op else { unreachable!() };
    (*kernel, *stride)
}

fn max_pool_pick(op: &Op) -> Pool {
    let Op::MaxPool2dPick { kernel, stride } = op else { unreachable!() };
    (*kernel, *stride)
}

fn avg_pool(op: &Op) -> Pool {
    let Op::AvgPool2d { kernel, stride } = op else { unreachable!() };
    (*kernel, *stride)
}

fn pool_shape((kernel, stride): Pool, x: &Shape) -> Result<Shape, String> {
    rank4(x, "the input")?;
    concrete_spatial(x)?;
    let ho = window(&x.0[2], kernel.0, stride.0, 0)?;
    let wo = window(&x.0[3], kernel.1, stride.1, 0)?;
    Ok(Shape(vec![x.0[0].clone(), x.0[1].clone(), ho, wo]))
}

/// For each output element of a max pool over `x`, the flat index of its window's first
/// maximum in `x`.
/// Calls `f(window, position)` with the index of every pooling window of `x` and the index
/// in `x` of the (first) maximum in it.
fn argmax_windows(x: &Tensor, kernel: (usize, usize), stride: (usize, usize), mut f: impl FnMut(usize, usize)) {
    let (n_count, c_count, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let ho = (h - kernel.0) / stride.0 + 1;
    let wo = (w - kernel.1) / stride.1 + 1;
    for plane in 0..n_count * c_count {
        for i in 0..ho {
            for j in 0..wo {
                let mut best = (f64::NEG_INFINITY, (plane * h + i * stride.0) * w + j * stride.1);
                for k in 0..kernel.0 {
                    for l in 0..kernel.1 {
                        let at = (plane * h + i * stride.0 + k) * w + j * stride.1 + l;
                        if x.data[at] > best.0 {
                            best = (x.data[at], at);
                        }
                    }
                }
                f((plane * ho + i) * wo + j, best.1);
            }
        }
    }
}

static MAXPOOL2D: Rules = Rules {
    name: "maxpool2d",
    attributes: |op| {
        let Op::MaxPool2d { kernel, stride } = op else { unreachable!() };
        pairs(&[("kernel", *kernel), ("stride", *stride)])
    },
    parse: |a| Ok(Op::MaxPool2d { kernel: a.pair("kernel")?, stride: a.pair("stride")? }),
    shape: |op, inputs| pool_shape(max_pool(op), inputs[0]),
    eval: |op, x, out| {
        let (kernel, stride) = max_pool(op);
        argmax_windows(x[0], kernel, stride, |window, at| out.data[window] = x[0].data[at]);
    },
    // The cotangent goes to the position of each window's maximum.
    vjp: |e, op, x, _, g, _| {
        let (kernel, stride) = max_pool(op);
        vec![Some(e.op(Op::MaxPool2dGrad { kernel, stride }, &[x[0], g]))]
    },
    jvp: |e, op, x, _, t| {
        let (kernel, stride) = max_pool(op);
        t[0].map(|t| e.op(Op::MaxPool2dPick { kernel, stride }, &[x[0], t]))
    },
    onnx: |e, op, x, y| onnx_pool(e, "MaxPool", max_pool(op), x, y),
};

static MAXPOOL2D_GRAD: Rules = Rules {
    name: "maxpool2d_grad",
    attributes: |op| {
        let Op::MaxPool2dGrad { kernel, stride } = op else { unreachable!() };
        pairs(&[("kernel", *kernel), ("stride", *stride)])
    },
    parse: |a| Ok(Op::MaxPool2dGrad { kernel: a.pair("kernel")?, stride: a.pair("stride")? }),
    shape: |_, inputs| Ok(inputs[0].clone()),
    eval: |op, x, out| {
        let (kernel, stride) = max_pool_grad(op);
        out.data.fill(0.0);
        argmax_windows(x[0], kernel, stride, |window, at| out.data[at] += x[1].data[window]);
    },
    // Linear in the cotangent; the positions of the maxima do not move under small changes.
    vjp: |e, op, x, _, z, needs| {
        let (kernel, stride) = max_pool_grad(op);
        vec![None, needs[1].then(|| e.op(Op::MaxPool2dPick { kernel, stride }, &[x[0], z]))]
    },
    jvp: |e, op, x, _, t| t[1].map(|t| e.op(op.clone(), &[x[0], t])),
    onnx: |e, op, x, y| {
        // Each window's cotangent is added at the flat index of its maximum, which `MaxPool`
        // gives as its second output.
        let indices = onnx_argmax(e, max_pool_grad(op), &x[0].name, &y.name);
        let shape = e.temp(&y.name, "Shape", &[&x[0].name], Vec::new());
        let zeros = e.temp(&y.name, "ConstantOfShape", &[&shape], Vec::new());
        let flat = e.ints(&format!("{}/flat", y.name), vec![-1]);
        let zeros = e.temp(&y.name, "Reshape", &[&zeros, &flat], Vec::new());
        let indices = e.temp(&y.name, "Reshape", &[&indices, &flat], Vec::new());
        let values = e.temp(&y.name, "Reshape", &[&x[1].name, &flat], Vec::new());
        let attributes = vec![("axis", OnnxAttr::Int(0)), ("reduction", OnnxAttr::String("add"))];
        let added = e.temp(&y.name, "ScatterElements", &[&zeros, &indices, &values], attributes);
        e.node("Reshape", &[&added, &shape], &y.name, Vec::new());
        Ok(())
    },
};

static MAXPOOL2D_PICK: Rules = Rules {
    name: "maxpool2d_pick",
    attributes: |op| {
        let Op::MaxPool2dPick { kernel, stride } = op else { unreachable!() };
        pairs(&[("kernel", *kernel), ("stride", *stride)])
    },
    parse: |a| Ok(Op::MaxPool2dPick { kernel: a.pair("kernel")?, stride: a.pair("stride")? }),
    shape: |op, inputs| pool_shape(max_pool_pick(op), inputs[0]),
    eval: |op, x, out| {
        let (kernel, stride) = max_pool_pick(op);
        argmax_windows(x[0], kernel, stride, |window, at| out.data[window] = x[1].data[at]);
    },
    vjp: |e, op, x, _, z, needs| {
        let (kernel, stride) = max_pool_pick(op);
        vec![None, needs[1].then(|| e.op(Op::MaxPool2dGrad { kernel, stride }, &[x[0], z]))]
    },
    jvp: |e, op, x, _, t| t[1].map(|t| e.op(op.clone(), &[x[0], t])),
    onnx: |e, op, x, y| {
        let indices = onnx_argmax(e, max_pool_pick(op), &x[0].name, &y.name);
        let flat = e.ints(&format!("{}/flat", y.name), vec![-1]);
        let values = e.temp(&y.name, "Reshape", &[&x[1].name, &flat], Vec::new());
        e.node("Gather", &[&values, &indices], &y.name, vec![("axis", OnnxAttr::Int(0))]);
        Ok(())
    },
};

fn avgpool_eval(x: &Tensor, kernel: (usize, usize), stride: (usize, usize), y: &mut Tensor) {
    let (n_count, c_count, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let ho = (h - kernel.0) / stride.0 + 1;
    let wo = (w - kernel.1) / stride.1 + 1;
    let win = Windows { n: n_count, h, w, ho, wo, kernel, stride, pad: (0, 0) };
    let scale = 1.0 / (kernel.0 * kernel.1) as f64;
    y.data.fill(0.0);
    for plane in 0..n_count * c_count {
        win.each(|i, j, _, _, hp, wp| y.data[(plane * ho + i) * wo + j] += x.data[(plane * h + hp) * w + wp] * scale);
    }
}

static AVGPOOL2D: Rules = Rules {
    name: "avgpool2d",
    attributes: |op| {
        let Op::AvgPool2d { kernel, stride } = op else { unreachable!() };
        pairs(&[("kernel", *kernel), ("stride", *stride)])
    },
    parse: |a| Ok(Op::AvgPool2d { kernel: a.pair("kernel")?, stride: a.pair("stride")? }),
    shape: |op, inputs| pool_shape(avg_pool(op), inputs[0]),
    eval: |op, x, out| {
        let (kernel, stride) = avg_pool(op);
        avgpool_eval(x[0], kernel, stride, out)
    },
    vjp: |e, op, x, _, g, _| {
        let (kernel, stride) = avg_pool(op);
        let input = concrete_pair(&e.shape(x[0]), 2);
        vec![Some(e.op(Op::AvgPool2dGrad { kernel, stride, input }, &[g]))]
    },
    jvp: |e, op, _, _, t| t[0].map(|t| e.op(op.clone(), &[t])),
    onnx: |e, op, x, y| onnx_pool(e, "AveragePool", avg_pool(op), x, y),
};

static AVGPOOL2D_GRAD: Rules = Rules {
    name: "avgpool2d_grad",
    attributes: |op| {
        let Op::AvgPool2dGrad { kernel, stride, input } = op else { unreachable!() };
        pairs(&[("kernel", *kernel), ("stride", *stride), ("input", *input)])
    },
    parse: |a| Ok(Op::AvgPool2dGrad { kernel: a.pair("kernel")?, stride: a.pair("stride")?, input: a.pair("input")? }),
    shape: |op, inputs| {
        let Op::AvgPool2dGrad { input, .. } = op else { unreachable!() };
        let g = inputs[0];
        Ok(Shape(vec![g.0[0].clone(), g.0[1].clone(), Dim::constant(input.0 as i128), Dim::constant(input.1 as i128)]))
    },
    eval: |op, x, out| {
        let Op::AvgPool2dGrad { kernel, stride, input } = op else { unreachable!() };
        let g = x[0];
        let (n_count, c_count, ho, wo) = (g.shape[0], g.shape[1], g.shape[2], g.shape[3]);
        let (h, w) = *input;
        let win = Windows { n: n_count, h, w, ho, wo, kernel: *kernel, stride: *stride, pad: (0, 0) };
        let scale = 1.0 / (kernel.0 * kernel.1) as f64;
        out.data.fill(0.0);
        for plane in 0..n_count * c_count {
            win.each(|i, j, _, _, hp, wp| {
                out.data[(plane * h + hp) * w + wp] += g.data[(plane * ho + i) * wo + j] * scale
            });
        }
    },
    vjp: |e, op, _, _, z, _| {
        let Op::AvgPool2dGrad { kernel, stride, .. } = *op else { unreachable!() };
        vec![Some(e.op(Op::AvgPool2d { kernel, stride }, &[z]))]
    },
    jvp: |e, op, _, _, t| t[0].map(|t| e.op(op.clone(), &[t])),
    onnx: |e, op, x, y| {
        // A transposed convolution of each channel with a window of 1 / (kh kw).
        let Op::AvgPool2dGrad { kernel, stride, input } = op else { unreachable!() };
        let channels = x[0].shape.0[1].as_const().ok_or("symbolic channels")? as usize;
        let (out_h, out_w) = concrete_pair(&x[0].shape, 2);
        let share = 1.0 / (kernel.0 * kernel.1) as f32;
        let dims = vec![channels as i64, 1, kernel.0 as i64, kernel.1 as i64];
        let spread = e.floats(&format!("{}/spread", y.name), dims, vec![share; channels * kernel.0 * kernel.1]);
        let attributes = vec![
            ("strides", OnnxAttr::Ints(vec![stride.0 as i64, stride.1 as i64])),
            ("group", OnnxAttr::Int(channels as i64)),
            ("output_padding", onnx_output_padding(*input, (out_h, out_w), *kernel, *stride, (0, 0))),
        ];
        e.node("ConvTranspose", &[&x[0].name, &spread], &y.name, attributes);
        Ok(())
    },
};

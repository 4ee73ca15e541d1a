//! From the graph IR of concrete shapes to kernels, fusing as it goes:
//!
//! - an elementwise value used once, by a loop over as many elements, is computed inside
//!   that loop instead of being stored (chains of elementwise ops become one loop, and an
//!   elementwise producer of a reduction is computed in the reduction);
//! - broadcasts, transposes, constants and sizes are read through strides, never stored;
//! - a transpose read only by matrix products is a strided view, and a matrix product read
//!   only by a transpose writes the transposed result directly;
//! - a reshape is the same buffer seen with another shape.
//!
//! Every value that is stored gets a buffer; the function's results are written straight
//! into the caller's buffers.

use crate::fuse::{fuse_cross_entropy_gradients, fuse_epilogues, fuse_pooling_epilogues};
use crate::kernel::{
    Access, Binary, Buffer, BufferId, Combine, Expr, Kernel, Matrix, PoolMode, Program, Role, Unary, Window,
    contiguous_strides,
};
use nnc_compiler::ir::{Function, Op, Value};
use nnc_compiler::shapes::Dim;

/// A function the kernel IR cannot express.
#[derive(Clone, Debug, PartialEq)]
pub struct LowerError(pub String);

impl std::fmt::Display for LowerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a value lives.
#[derive(Clone, Debug)]
enum Home {
    /// Not decided yet.
    Pending,
    /// Stored contiguously in a buffer (a reshape shares its input's).
    Stored(BufferId),
    /// Recomputed inside every loop that reads it.
    Inline,
    /// A rank-2 transpose read by matrix products as a view of its input.
    TransposedView(BufferId),
}

struct Lowerer<'f> {
    f: &'f Function,
    program: Program,
    homes: Vec<Home>,
    shapes: Vec<Vec<usize>>,
    /// The instruction defining each value, if any.
    defs: Vec<Option<usize>>,
    /// The im2col buffers made so far, by input and window.
    columns: Vec<((BufferId, Window), BufferId)>,
}

/// A 1×1 convolution with stride 1 and no padding: its columns are its input.
fn is_pointwise(w: &Window) -> bool {
    w.kernel == (1, 1) && w.stride == (1, 1) && w.pad == (0, 0)
}

fn elements(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// NumPy's broadcast of two shapes (already checked to be compatible).
fn broadcast(a: &[usize], b: &[usize]) -> Vec<usize> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| (i + s.len()).checked_sub(rank).map_or(1, |j| s[j]);
    (0..rank).map(|i| dim(a, i).max(dim(b, i))).collect()
}

/// How the axes of a value of shape `from` broadcast into a loop of shape `to` (NumPy's
/// rules, aligned at the right): the loop axis each axis follows, or `None` for a
/// broadcast axis of size 1.
fn broadcast_map(from: &[usize], to: &[usize]) -> Vec<Option<usize>> {
    let offset = to.len() - from.len().min(to.len());
    from.iter()
        .enumerate()
        .map(|(axis, &n)| {
            let target = axis + offset;
            (target < to.len() && !(n == 1 && to[target] != 1)).then_some(target)
        })
        .collect()
}

/// Moves an expression computed over one shape into a loop of `rank` axes, each of its
/// axes following `map`.
fn remap(mut expr: Expr, map: &[Option<usize>], rank: usize) -> Expr {
    expr.map_loads(&mut |access| {
        let mut strides = vec![0; rank];
        for (axis, &stride) in access.strides.iter().enumerate() {
            if let Some(Some(target)) = map.get(axis) {
                strides[*target] += stride;
            }
        }
        access.strides = strides;
    });
    remap_indices(expr, map)
}

fn remap_indices(expr: Expr, map: &[Option<usize>]) -> Expr {
    match expr {
        Expr::Index(axis) => match map.get(axis).copied().flatten() {
            Some(target) => Expr::Index(target),
            None => Expr::Const(0.0),
        },
        Expr::Unary(op, x) => Expr::unary(op, remap_indices(*x, map)),
        Expr::Binary(op, a, b) => Expr::binary(op, remap_indices(*a, map), remap_indices(*b, map)),
        other => other,
    }
}

/// What lowering makes of each op of the IR, one row per op.
#[derive(Clone, Copy)]
enum Lowering<'o> {
    /// An elementwise function of one value.
    Unary(Unary),
    /// An elementwise function of two values, broadcast together.
    Binary(Binary),
    /// Another elementwise op, computed from elements moved by strides or from none.
    Elementwise(Elementwise<'o>),
    /// A loop over the elements of its input (of its inputs broadcast together, for `mse`)
    /// that adds them, or takes their maximum, into the result.
    Reduction,
    /// A kernel of its own (products, convolutions, pooling, softmax), or none (a literal is
    /// a constant buffer, a reshape its input's buffer).
    Kernel,
}

/// The elementwise ops that are not functions of their inputs' elements at the same index.
#[derive(Clone, Copy)]
enum Elementwise<'o> {
    Const(f64),
    Size(&'o Dim),
    Broadcast,
    Transpose,
    OneHot,
}

fn lowering(op: &Op) -> Lowering<'_> {
    match op {
        Op::Const(c) => Lowering::Elementwise(Elementwise::Const(*c)),
        Op::Literal { .. } => Lowering::Kernel,
        Op::Size(d) => Lowering::Elementwise(Elementwise::Size(d)),
        Op::Neg => Lowering::Unary(Unary::Neg),
        Op::Exp => Lowering::Unary(Unary::Exp),
        Op::Ln => Lowering::Unary(Unary::Ln),
        Op::Sqrt => Lowering::Unary(Unary::Sqrt),
        Op::Sin => Lowering::Unary(Unary::Sin),
        Op::Cos => Lowering::Unary(Unary::Cos),
        Op::Tan => Lowering::Unary(Unary::Tan),
        Op::Erf => Lowering::Unary(Unary::Erf),
        Op::Tanh => Lowering::Unary(Unary::Tanh),
        Op::Sigmoid => Lowering::Unary(Unary::Sigmoid),
        Op::Relu => Lowering::Unary(Unary::Relu),
        Op::Abs => Lowering::Unary(Unary::Abs),
        Op::Step => Lowering::Unary(Unary::Step),
        Op::Sign => Lowering::Unary(Unary::Sign),
        Op::Add => Lowering::Binary(Binary::Add),
        Op::Sub => Lowering::Binary(Binary::Sub),
        Op::Mul => Lowering::Binary(Binary::Mul),
        Op::Div => Lowering::Binary(Binary::Div),
        Op::Pow => Lowering::Binary(Binary::Pow),
        Op::Max => Lowering::Binary(Binary::Max),
        Op::Min => Lowering::Binary(Binary::Min),
        Op::GreaterEq => Lowering::Binary(Binary::GreaterEq),
        Op::MatMul => Lowering::Kernel,
        Op::Transpose => Lowering::Elementwise(Elementwise::Transpose),
        Op::Reshape(_) => Lowering::Kernel,
        Op::Broadcast(_) => Lowering::Elementwise(Elementwise::Broadcast),
        Op::SumTo(_) | Op::Sum { .. } | Op::Mean { .. } | Op::ReduceMax { .. } => Lowering::Reduction,
        Op::Softmax { .. } | Op::LogSoftmax { .. } => Lowering::Kernel,
        Op::OneHot { .. } => Lowering::Elementwise(Elementwise::OneHot),
        Op::Conv2d { .. } | Op::Conv2dInputGrad { .. } | Op::Conv2dWeightGrad { .. } => Lowering::Kernel,
        Op::MaxPool2d { .. } | Op::MaxPool2dGrad { .. } | Op::MaxPool2dPick { .. } => Lowering::Kernel,
        Op::AvgPool2d { .. } | Op::AvgPool2dGrad { .. } => Lowering::Kernel,
        Op::Mse => Lowering::Reduction,
        Op::SoftmaxCrossEntropy => Lowering::Kernel,
    }
}

/// Ops computed per element from their inputs' elements, possibly moved by strides.
fn is_elementwise(op: &Op) -> bool {
    match lowering(op) {
        Lowering::Unary(_) | Lowering::Binary(_) | Lowering::Elementwise(_) => true,
        Lowering::Reduction | Lowering::Kernel => false,
    }
}

/// Ops lowered to a loop whose expression may read inline values.
fn builds_loop(op: &Op) -> bool {
    match lowering(op) {
        Lowering::Unary(_) | Lowering::Binary(_) | Lowering::Elementwise(_) | Lowering::Reduction => true,
        Lowering::Kernel => false,
    }
}

/// `step(x)` where `relu(x)` is computed too reads the activation instead. The two are
/// equal (1 where `x` is positive, else 0, NaN included), and then `x` is read by the relu
/// alone, so it need not be stored: the product that makes it applies the relu as well.
fn step_of_activations(f: &Function) -> Function {
    let mut relu_of = std::collections::HashMap::new();
    let mut f = f.clone();
    for inst in &mut f.body {
        if inst.op == Op::Relu {
            relu_of.insert(inst.args[0], inst.result);
        } else if inst.op == Op::Step
            && let Some(&activation) = relu_of.get(&inst.args[0])
        {
            inst.args[0] = activation;
        }
    }
    f
}

/// Lowers `f`, whose shapes must all be concrete, to kernels.
pub fn lower(f: &Function) -> Result<Program, LowerError> {
    let f = &step_of_activations(f);
    let mut shapes = Vec::with_capacity(f.values.len());
    for (ty, name) in &f.values {
        let shape: Option<Vec<usize>> = ty.shape.0.iter().map(|d| d.as_const().map(|n| n as usize)).collect();
        shapes.push(shape.ok_or_else(|| LowerError(format!("`{name}` has the symbolic shape {}", ty.shape)))?);
    }
    let mut defs = vec![None; f.values.len()];
    for (i, inst) in f.body.iter().enumerate() {
        defs[inst.result.0 as usize] = Some(i);
    }
    let mut lowerer = Lowerer {
        f,
        program: Program { name: f.name.clone(), ..Program::default() },
        homes: vec![Home::Pending; f.values.len()],
        shapes,
        defs,
        columns: Vec::new(),
    };
    lowerer.run()?;
    let mut program = lowerer.program;
    fuse_cross_entropy_gradients(&mut program);
    fuse_epilogues(&mut program);
    fuse_pooling_epilogues(&mut program);
    Ok(program)
}

impl Lowerer<'_> {
    fn shape(&self, v: Value) -> &[usize] {
        &self.shapes[v.0 as usize]
    }

    fn add_buffer(&mut self, name: &str, len: usize, role: Role) -> BufferId {
        self.program.buffers.push(Buffer { name: name.to_string(), len, role });
        BufferId(self.program.buffers.len() - 1)
    }

    fn stored(&self, v: Value) -> Option<BufferId> {
        match self.homes[v.0 as usize] {
            Home::Stored(b) => Some(b),
            _ => None,
        }
    }

    fn run(&mut self) -> Result<(), LowerError> {
        let f = self.f;
        for (i, p) in f.params.iter().enumerate() {
            let len = elements(self.shape(p.value));
            let b = self.add_buffer(&p.name, len, Role::Param(i));
            self.program.params.push(b);
            self.homes[p.value.0 as usize] = Home::Stored(b);
        }
        // Who reads each value.
        let mut users: Vec<Vec<usize>> = vec![Vec::new(); f.values.len()];
        for (i, inst) in f.body.iter().enumerate() {
            for a in &inst.args {
                users[a.0 as usize].push(i);
            }
        }
        let is_result = |v: Value| f.results.contains(&v);
        // A matrix product read only by a rank-2 transpose writes the transposed result.
        let mut transposed_output = vec![None; f.values.len()];
        for inst in &f.body {
            if let (Op::Transpose, [source]) = (&inst.op, inst.args.as_slice())
                && self.shape(inst.result).len() == 2
                && !is_result(*source)
                && users[source.0 as usize].len() == 1
                && self.defs[source.0 as usize].is_some_and(|d| f.body[d].op == Op::MatMul)
            {
                transposed_output[source.0 as usize] = Some(inst.result);
            }
        }
        for inst in &f.body {
            let v = inst.result;
            if !matches!(self.homes[v.0 as usize], Home::Pending) {
                continue; // written by the matrix product it transposes
            }
            let readers = &users[v.0 as usize];
            let read_by_loops_only = !readers.is_empty() && readers.iter().all(|&u| builds_loop(&f.body[u].op));
            let args_stored = inst.args.iter().all(|a| self.stored(*a).is_some());
            // Transposes read only by matrix products are views.
            if inst.op == Op::Transpose
                && !is_result(v)
                && self.shape(v).len() == 2
                && !readers.is_empty()
                && readers.iter().all(|&u| f.body[u].op == Op::MatMul)
                && let Some(source) = self.stored(inst.args[0])
            {
                self.homes[v.0 as usize] = Home::TransposedView(source);
                continue;
            }
            let inline = !is_result(v)
                && read_by_loops_only
                && is_elementwise(&inst.op)
                && (matches!(inst.op, Op::Const(_) | Op::Size(_))
                    || (matches!(inst.op, Op::Broadcast(_) | Op::Transpose) && args_stored)
                    || (readers.len() == 1 && elements(self.shape(v)) == self.loop_elements(readers[0])));
            if inline {
                self.homes[v.0 as usize] = Home::Inline;
                continue;
            }
            if let Op::Reshape(_) = inst.op
                && let Some(b) = self.stored(inst.args[0])
            {
                // The same elements seen with another shape; results get their own copy below.
                if !is_result(v) {
                    self.homes[v.0 as usize] = Home::Stored(b);
                    continue;
                }
            }
            let output = transposed_output[v.0 as usize];
            let (home_value, len) = match output {
                Some(t) => (t, elements(self.shape(t))),
                None => (v, elements(self.shape(v))),
            };
            let role = match f.results.iter().position(|r| *r == home_value) {
                Some(k) if f.results.iter().filter(|r| **r == home_value).count() == 1 => Role::Result(k),
                _ => Role::Temp,
            };
            let buffer = if let Op::Literal { data, .. } = &inst.op {
                self.add_buffer(f.name_of(v), len, Role::Constant(data.iter().map(|&x| x as f32).collect()))
            } else {
                self.add_buffer(f.name_of(home_value), len, role)
            };
            self.homes[home_value.0 as usize] = Home::Stored(buffer);
            self.emit(inst.result, &inst.op, &inst.args, buffer, output.is_some())?;
        }
        // Each result in its own caller-owned buffer: copy where a result is an argument, a
        // constant, a reshape of another value, or the same value twice.
        for (k, &r) in f.results.iter().enumerate() {
            let home = self.stored(r);
            let owned = home.is_some_and(|b| self.program.buffer(b).role == Role::Result(k));
            if owned {
                self.program.results.push(home.expect("stored"));
                continue;
            }
            let shape = self.shape(r).to_vec();
            let b = self.add_buffer(
                &format!("{}.copy", f.result_names.get(k).map_or("result", String::as_str)),
                elements(&shape),
                Role::Result(k),
            );
            let expr = self.value_expr(r, &shape)?;
            let strides = contiguous_strides(&shape);
            self.push_loop(shape, b, strides, expr, Combine::Assign);
            self.program.results.push(b);
        }
        Ok(())
    }

    /// The number of iterations of the loop that instruction `user` becomes.
    fn loop_elements(&self, user: usize) -> usize {
        let inst = &self.f.body[user];
        match lowering(&inst.op) {
            Lowering::Reduction if inst.op == Op::Mse => {
                elements(&broadcast(self.shape(inst.args[0]), self.shape(inst.args[1])))
            }
            Lowering::Reduction => elements(self.shape(inst.args[0])),
            Lowering::Unary(_) | Lowering::Binary(_) | Lowering::Elementwise(_) | Lowering::Kernel => {
                elements(self.shape(inst.result))
            }
        }
    }

    /// The expression of value `v` read in a loop of shape `shape`, broadcasting by NumPy's
    /// rules.
    fn value_expr(&self, v: Value, shape: &[usize]) -> Result<Expr, LowerError> {
        let own = self.shape(v);
        let map = broadcast_map(own, shape);
        Ok(remap(self.own_expr(v)?, &map, shape.len()))
    }

    /// The expression of `v` over its own shape.
    fn own_expr(&self, v: Value) -> Result<Expr, LowerError> {
        let shape = self.shape(v).to_vec();
        match self.homes[v.0 as usize] {
            Home::Stored(b) => Ok(Expr::Load(Access { buffer: b, offset: 0, strides: contiguous_strides(&shape) })),
            Home::TransposedView(_) | Home::Inline => {
                let inst = &self.f.body[self.defs[v.0 as usize].expect("an instruction's value")];
                self.elementwise_expr(&inst.op, &inst.args, &shape)
            }
            Home::Pending => Err(LowerError(format!("`{}` is read before it is computed", self.f.name_of(v)))),
        }
    }

    /// The expression computing an elementwise op over the loop `shape` of its result.
    fn elementwise_expr(&self, op: &Op, args: &[Value], shape: &[usize]) -> Result<Expr, LowerError> {
        let elementwise = match lowering(op) {
            Lowering::Unary(u) => return Ok(Expr::unary(u, self.value_expr(args[0], shape)?)),
            Lowering::Binary(b) => {
                return Ok(Expr::binary(b, self.value_expr(args[0], shape)?, self.value_expr(args[1], shape)?));
            }
            Lowering::Elementwise(elementwise) => elementwise,
            Lowering::Reduction | Lowering::Kernel => {
                return Err(LowerError(format!("`{}` is not elementwise", op.name())));
            }
        };
        Ok(match elementwise {
            Elementwise::Const(c) => Expr::Const(c as f32),
            Elementwise::Size(d) => {
                Expr::Const(d.as_const().ok_or_else(|| LowerError(format!("the size {d} is not known")))? as f32)
            }
            Elementwise::Broadcast => self.value_expr(args[0], shape)?,
            Elementwise::Transpose => {
                let rank = shape.len();
                let mut map: Vec<Option<usize>> = (0..rank).map(Some).collect();
                if rank >= 2 {
                    map.swap(rank - 2, rank - 1);
                }
                remap(self.own_expr(args[0])?, &map, rank)
            }
            Elementwise::OneHot => {
                // [.., classes]: 1 where the last index equals the label.
                let rank = shape.len();
                let labels = self.shape(args[0]);
                let map: Vec<Option<usize>> =
                    (0..labels.len()).map(|a| (labels[a] != 1 || shape[a] == 1).then_some(a)).collect();
                let label = remap(self.own_expr(args[0])?, &map, rank);
                Expr::binary(Binary::Equal, Expr::Index(rank - 1), Expr::unary(Unary::Round, label))
            }
        })
    }

    fn buffer_of(&self, v: Value) -> Result<BufferId, LowerError> {
        self.stored(v).ok_or_else(|| LowerError(format!("`{}` is not stored", self.f.name_of(v))))
    }

    /// A value read as a matrix of `rows` × `cols` (batches folded into rows).
    fn matrix(&self, v: Value, rows: usize, cols: usize) -> Result<Matrix, LowerError> {
        match self.homes[v.0 as usize] {
            Home::Stored(buffer) => Ok(Matrix::rows(buffer, cols)),
            Home::TransposedView(buffer) => Ok(Matrix::rows(buffer, rows).transposed()),
            _ => Err(LowerError(format!("`{}` is not stored", self.f.name_of(v)))),
        }
    }

    /// The im2col columns of `input` for `window`, made once per input and window (the
    /// forward convolution and its weight gradient share them); a pointwise convolution's
    /// columns are its input.
    fn columns(&mut self, input: BufferId, window: &Window) -> BufferId {
        if is_pointwise(window) {
            return input;
        }
        if let Some(&(_, cols)) = self.columns.iter().find(|(key, _)| *key == (input, *window)) {
            return cols;
        }
        let len = window.n * window.c * window.kernel.0 * window.kernel.1 * window.ho * window.wo;
        let name = format!("{}.cols", self.program.buffer(input).name);
        let cols = self.add_buffer(&name, len, Role::Temp);
        self.program.kernels.push(Kernel::Im2Col { window: *window, input, out: cols });
        self.columns.push(((input, *window), cols));
        cols
    }

    /// A loop over `shape` writing `out` (element `sum(index * strides)`) with `combine`.
    fn push_loop(&mut self, shape: Vec<usize>, out: BufferId, strides: Vec<usize>, expr: Expr, combine: Combine) {
        let out = Access { buffer: out, offset: 0, strides };
        self.program.kernels.push(Kernel::Loop { shape, out, expr, combine });
    }

    fn emit(&mut self, v: Value, op: &Op, args: &[Value], out: BufferId, transposed: bool) -> Result<(), LowerError> {
        let shape = self.shape(v).to_vec();
        let push = |this: &mut Self, k: Kernel| this.program.kernels.push(k);
        let window4 = |x: &[usize], y: &[usize]| (x[0], x[1], x[2], x[3], y[2], y[3]);
        match op {
            Op::Const(_)
            | Op::Size(_)
            | Op::Neg
            | Op::Exp
            | Op::Ln
            | Op::Sqrt
            | Op::Sin
            | Op::Cos
            | Op::Tan
            | Op::Erf
            | Op::Tanh
            | Op::Sigmoid
            | Op::Relu
            | Op::Abs
            | Op::Step
            | Op::Sign
            | Op::Add
            | Op::Sub
            | Op::Mul
            | Op::Div
            | Op::Pow
            | Op::Max
            | Op::Min
            | Op::GreaterEq
            | Op::Transpose
            | Op::Broadcast(_)
            | Op::OneHot { .. } => {
                let expr = self.elementwise_expr(op, args, &shape)?;
                let strides = contiguous_strides(&shape);
                self.push_loop(shape, out, strides, expr, Combine::Assign);
            }
            Op::Literal { .. } => {}
            Op::Reshape(_) => {
                let strides = contiguous_strides(&shape);
                let expr = Expr::Load(Access { buffer: self.buffer_of(args[0])?, offset: 0, strides: strides.clone() });
                self.push_loop(shape, out, strides, expr, Combine::Assign);
            }
            Op::Sum { axis } | Op::Mean { axis } | Op::ReduceMax { axis } => {
                let input = self.shape(args[0]).to_vec();
                let mut expr = self.value_expr(args[0], &input)?;
                let mut strides = vec![0; input.len()];
                if let Some(axis) = *axis {
                    let mut kept = contiguous_strides(&shape);
                    kept.insert(axis, 0);
                    strides = kept;
                }
                if let Op::Mean { axis } = op {
                    let n = match axis {
                        Some(a) => input[*a],
                        None => elements(&input),
                    };
                    expr = Expr::binary(Binary::Mul, expr, Expr::Const(1.0 / n.max(1) as f32));
                }
                let combine = if matches!(op, Op::ReduceMax { .. }) { Combine::Max } else { Combine::Add };
                self.push_loop(input, out, strides, expr, combine);
            }
            Op::SumTo(_) => {
                let input = self.shape(args[0]).to_vec();
                let expr = self.value_expr(args[0], &input)?;
                // The output's strides over the input's axes: 0 where summed away.
                let own = contiguous_strides(&shape);
                let mut strides = vec![0; input.len()];
                for (axis, target) in broadcast_map(&shape, &input).into_iter().enumerate() {
                    if let Some(t) = target {
                        strides[t] = own[axis];
                    }
                }
                self.push_loop(input, out, strides, expr, Combine::Add);
            }
            Op::Mse => {
                let (a, b) = (self.shape(args[0]).to_vec(), self.shape(args[1]).to_vec());
                let input = broadcast(&a, &b);
                let diff =
                    Expr::binary(Binary::Sub, self.value_expr(args[0], &input)?, self.value_expr(args[1], &input)?);
                let square = Expr::binary(Binary::Mul, diff.clone(), diff);
                let expr = Expr::binary(Binary::Mul, square, Expr::Const(1.0 / elements(&input).max(1) as f32));
                let strides = vec![0; input.len()];
                self.push_loop(input, out, strides, expr, Combine::Add);
            }
            Op::MatMul => {
                let (a_shape, b_shape) = (self.shape(args[0]).to_vec(), self.shape(args[1]).to_vec());
                let k = *a_shape.last().unwrap_or(&1);
                let m = elements(&a_shape) / k.max(1);
                let n = if b_shape.len() == 2 { b_shape[1] } else { 1 };
                let a = self.matrix(args[0], m, k)?;
                let b = if b_shape.len() == 2 {
                    self.matrix(args[1], k, n)?
                } else {
                    Matrix::rows(self.buffer_of(args[1])?, 1)
                };
                let c = if transposed { Matrix::rows(out, m).transposed() } else { Matrix::rows(out, n) };
                push(self, Kernel::MatMul { batch: 1, m, n, k, a, b, c, accumulate: false, epilogue: None });
            }
            Op::Softmax { axis } | Op::LogSoftmax { axis } => {
                let input = self.buffer_of(args[0])?;
                let outer = shape[..*axis].iter().product();
                let inner = shape[axis + 1..].iter().product();
                let log = matches!(op, Op::LogSoftmax { .. });
                push(self, Kernel::Softmax { outer, len: shape[*axis], inner, input, out, log });
            }
            Op::SoftmaxCrossEntropy => {
                let logits_shape = self.shape(args[0]).to_vec();
                let classes = *logits_shape.last().unwrap_or(&1);
                let rows = elements(&logits_shape) / classes.max(1);
                let (logits, labels) = (self.buffer_of(args[0])?, self.buffer_of(args[1])?);
                push(self, Kernel::SoftmaxCrossEntropy { rows, classes, logits, labels, out, grad: None });
            }
            Op::Conv2d { stride, pad } => {
                let (x, w) = (self.shape(args[0]).to_vec(), self.shape(args[1]).to_vec());
                let (n, c, h, wd, ho, wo) = window4(&x, &shape);
                let window =
                    Window { n, c, o: w[0], h, w: wd, ho, wo, kernel: (w[2], w[3]), stride: *stride, pad: *pad };
                let (input, weight) = (self.buffer_of(args[0])?, self.buffer_of(args[1])?);
                // Per example: out (O × P) = W (O × CKK) @ cols (CKK × P).
                let (ckk, p) = (window.c * window.kernel.0 * window.kernel.1, window.ho * window.wo);
                let cols = self.columns(input, &window);
                let a = Matrix::rows(weight, ckk);
                let b = Matrix { batch_stride: ckk * p, ..Matrix::rows(cols, p) };
                let c = Matrix { batch_stride: window.o * p, ..Matrix::rows(out, p) };
                push(
                    self,
                    Kernel::MatMul {
                        batch: window.n,
                        m: window.o,
                        n: p,
                        k: ckk,
                        a,
                        b,
                        c,
                        accumulate: false,
                        epilogue: None,
                    },
                );
            }
            Op::Conv2dInputGrad { stride, pad, .. } => {
                let (g, w) = (self.shape(args[0]).to_vec(), self.shape(args[1]).to_vec());
                let window = Window {
                    n: g[0],
                    c: w[1],
                    o: w[0],
                    h: shape[2],
                    w: shape[3],
                    ho: g[2],
                    wo: g[3],
                    kernel: (w[2], w[3]),
                    stride: *stride,
                    pad: *pad,
                };
                let (grad, weight) = (self.buffer_of(args[0])?, self.buffer_of(args[1])?);
                // Per example: dcols (CKK × P) = W^T (CKK × O) @ G (O × P), then back to the image.
                // B and C are contiguous rows with a short k, which the AVX-512 kernel takes
                // (`microkernel.rs`); the library took this product at 34 GFLOP/s as it is and
                // at 44-48 as its transpose, G^T @ W.
                let (ckk, p) = (window.c * window.kernel.0 * window.kernel.1, window.ho * window.wo);
                let direct = is_pointwise(&window);
                let dcols = if direct {
                    out
                } else {
                    let name = format!("{}.cols", self.program.buffer(out).name);
                    self.add_buffer(&name, window.n * ckk * p, Role::Temp)
                };
                let a = Matrix::rows(weight, ckk).transposed();
                let b = Matrix { batch_stride: window.o * p, ..Matrix::rows(grad, p) };
                let c = Matrix { batch_stride: ckk * p, ..Matrix::rows(dcols, p) };
                push(
                    self,
                    Kernel::MatMul {
                        batch: window.n,
                        m: ckk,
                        n: p,
                        k: window.o,
                        a,
                        b,
                        c,
                        accumulate: false,
                        epilogue: None,
                    },
                );
                if !direct {
                    push(self, Kernel::Col2Im { window, input: dcols, out });
                }
            }
            Op::Conv2dWeightGrad { stride, pad, kernel } => {
                let (x, g) = (self.shape(args[0]).to_vec(), self.shape(args[1]).to_vec());
                let window = Window {
                    n: x[0],
                    c: x[1],
                    o: g[1],
                    h: x[2],
                    w: x[3],
                    ho: g[2],
                    wo: g[3],
                    kernel: *kernel,
                    stride: *stride,
                    pad: *pad,
                };
                let (input, grad) = (self.buffer_of(args[0])?, self.buffer_of(args[1])?);
                // dW^T (CKK × O) = sum over examples of cols (CKK × P) @ G^T (P × O), written
                // transposed into dW (O × CKK). The library packs the right-hand matrix, and G^T
                // has O columns where cols^T has CKK: as G @ cols^T the step measured 1.4x
                // slower (MNIST CNN second convolution: 24.5 against 34.3 GFLOP/s).
                let (ckk, p) = (window.c * window.kernel.0 * window.kernel.1, window.ho * window.wo);
                let cols = self.columns(input, &window);
                let a = Matrix { batch_stride: ckk * p, ..Matrix::rows(cols, p) };
                let b = Matrix { batch_stride: window.o * p, ..Matrix::rows(grad, p).transposed() };
                let c = Matrix::rows(out, ckk).transposed();
                push(
                    self,
                    Kernel::MatMul {
                        batch: window.n,
                        m: ckk,
                        n: window.o,
                        k: p,
                        a,
                        b,
                        c,
                        accumulate: true,
                        epilogue: None,
                    },
                );
            }
            Op::MaxPool2d { kernel, stride } => self.max_pool(args, *kernel, *stride, out, None)?,
            Op::MaxPool2dGrad { kernel, stride } => self.max_pool(args, *kernel, *stride, out, Some(PoolMode::Grad))?,
            Op::MaxPool2dPick { kernel, stride } => self.max_pool(args, *kernel, *stride, out, Some(PoolMode::Pick))?,
            Op::AvgPool2d { kernel, stride } => {
                let x = self.shape(args[0]).to_vec();
                let window = Window {
                    n: x[0],
                    c: x[1],
                    o: x[1],
                    h: x[2],
                    w: x[3],
                    ho: shape[2],
                    wo: shape[3],
                    kernel: *kernel,
                    stride: *stride,
                    pad: (0, 0),
                };
                push(self, Kernel::AvgPool { window, input: self.buffer_of(args[0])?, out, backward: false });
            }
            Op::AvgPool2dGrad { kernel, stride, input: (h, w) } => {
                let g = self.shape(args[0]).to_vec();
                let window = Window {
                    n: g[0],
                    c: g[1],
                    o: g[1],
                    h: *h,
                    w: *w,
                    ho: g[2],
                    wo: g[3],
                    kernel: *kernel,
                    stride: *stride,
                    pad: (0, 0),
                };
                push(self, Kernel::AvgPool { window, input: self.buffer_of(args[0])?, out, backward: true });
            }
        }
        Ok(())
    }

    /// Max pooling of `args[0]` over windows of `kernel` at `stride`; a gradient or a pick
    /// makes its mode from the buffer of `args[1]`.
    fn max_pool(
        &mut self,
        args: &[Value],
        kernel: (usize, usize),
        stride: (usize, usize),
        out: BufferId,
        second: Option<fn(BufferId) -> PoolMode>,
    ) -> Result<(), LowerError> {
        let x = self.shape(args[0]).to_vec();
        let (ho, wo) = ((x[2] - kernel.0) / stride.0 + 1, (x[3] - kernel.1) / stride.1 + 1);
        let window = Window { n: x[0], c: x[1], o: x[1], h: x[2], w: x[3], ho, wo, kernel, stride, pad: (0, 0) };
        let input = self.buffer_of(args[0])?;
        let mode = match second {
            None => PoolMode::Forward,
            Some(mode) => mode(self.buffer_of(args[1])?),
        };
        self.program.kernels.push(Kernel::MaxPool { window, input, out, mode, epilogue: None });
        Ok(())
    }
}

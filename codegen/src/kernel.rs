//! The kernel IR: a function of concrete shapes as a list of loop nests over f32 buffers.
//! Each kernel is one loop nest that machine code is generated for: a fused elementwise
//! loop (which also expresses reductions, broadcasts and transposes through the strides of
//! its accesses), a matrix product over strided views, or one of the windowed and
//! row-wise operations of networks.
//!
//! ```text
//! kernel k2: loop [32, 32] b4[32, 1] = relu(add(b3[32, 1], 0.bias[0, 1]))
//! ```

use std::fmt::{self, Write};

/// Row-major strides of `shape`, 0 on axes of one element: how loops read a stored value.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut stride = 1;
    for axis in (0..shape.len()).rev() {
        strides[axis] = if shape[axis] == 1 { 0 } else { stride };
        stride *= shape[axis];
    }
    strides
}

/// A buffer of the program, by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BufferId(pub usize);

/// Who owns a buffer and what is in it when the program starts.
#[derive(Clone, Debug, PartialEq)]
pub enum Role {
    /// Argument `i` of the function, owned by the caller; read only.
    Param(usize),
    /// Result `i` of the function, owned by the caller.
    Result(usize),
    /// A temporary in the arena.
    Temp,
    /// Values fixed when the program is compiled (array literals).
    Constant(Vec<f32>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Buffer {
    pub name: String,
    /// The number of f32 elements.
    pub len: usize,
    pub role: Role,
}

/// Where a loop reads or writes: element `offset + sum(index[a] * strides[a])` of a buffer,
/// with one stride per axis of the loop (0 where the access does not move with the axis).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Access {
    pub buffer: BufferId,
    pub offset: usize,
    pub strides: Vec<usize>,
}

impl Access {
    /// The largest element index the access reaches over a loop of `shape`, or `None` for
    /// an empty loop.
    pub fn last_index(&self, shape: &[usize]) -> Option<usize> {
        if shape.contains(&0) {
            return None;
        }
        Some(self.offset + shape.iter().zip(&self.strides).map(|(&n, &s)| (n - 1) * s).sum::<usize>())
    }
}

/// Elementwise functions of one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unary {
    Neg,
    Exp,
    Ln,
    Sqrt,
    Sin,
    Cos,
    Tan,
    Erf,
    Tanh,
    Sigmoid,
    Relu,
    Abs,
    /// 1 where positive, else 0.
    Step,
    /// -1, 0 or 1.
    Sign,
    /// To the nearest integer (labels stored as reals).
    Round,
}

/// Elementwise functions of two values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
    /// 1 where the first is at least the second, else 0.
    GreaterEq,
    /// 1 where equal, else 0.
    Equal,
}

/// The value a loop computes per index.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Load(Access),
    Const(f32),
    /// The loop index along an axis, as a real (one-hot rows compare labels with it).
    Index(usize),
    Unary(Unary, Box<Expr>),
    Binary(Binary, Box<Expr>, Box<Expr>),
}

impl Expr {
    pub fn unary(op: Unary, x: Expr) -> Expr {
        Expr::Unary(op, Box::new(x))
    }

    pub fn binary(op: Binary, a: Expr, b: Expr) -> Expr {
        Expr::Binary(op, Box::new(a), Box::new(b))
    }

    /// Every access the expression reads.
    pub fn loads(&self) -> Vec<&Access> {
        let mut out = Vec::new();
        self.visit(&mut |e| {
            if let Expr::Load(a) = e {
                out.push(a);
            }
        });
        out
    }

    fn visit<'a>(&'a self, f: &mut impl FnMut(&'a Expr)) {
        f(self);
        match self {
            Expr::Unary(_, x) => x.visit(f),
            Expr::Binary(_, a, b) => {
                a.visit(f);
                b.visit(f);
            }
            Expr::Load(_) | Expr::Const(_) | Expr::Index(_) => {}
        }
    }

    /// Rewrites every access.
    pub fn map_loads(&mut self, f: &mut impl FnMut(&mut Access)) {
        match self {
            Expr::Load(a) => f(a),
            Expr::Unary(_, x) => x.map_loads(f),
            Expr::Binary(_, a, b) => {
                a.map_loads(f);
                b.map_loads(f);
            }
            Expr::Const(_) | Expr::Index(_) => {}
        }
    }

    /// Whether the expression reads a loop index.
    pub fn reads_index(&self) -> bool {
        let mut reads = false;
        self.visit(&mut |e| reads |= matches!(e, Expr::Index(_)));
        reads
    }

    /// The number of operations, to keep fusion from growing loops without bound.
    pub fn size(&self) -> usize {
        let mut n = 0;
        self.visit(&mut |_| n += 1);
        n
    }
}

/// How a loop's value meets what is already in its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Combine {
    /// `out = value`: every output element is written once.
    Assign,
    /// `out += value`, after filling the output with 0: sums over the axes where the output's
    /// stride is 0.
    Add,
    /// `out = max(out, value)`, after filling with -infinity.
    Max,
}

/// A matrix (or a batch of them) as a strided view of a buffer: element (i, j) of matrix
/// `b` of the batch is `offset + b * batch_stride + i * row_stride + j * col_stride`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Matrix {
    pub buffer: BufferId,
    pub offset: usize,
    pub row_stride: usize,
    pub col_stride: usize,
    pub batch_stride: usize,
}

impl Matrix {
    /// A single row-major matrix of `cols` columns.
    pub fn rows(buffer: BufferId, cols: usize) -> Matrix {
        Matrix { buffer, offset: 0, row_stride: cols, col_stride: 1, batch_stride: 0 }
    }

    fn last_index(&self, batch: usize, rows: usize, cols: usize) -> Option<usize> {
        (batch > 0 && rows > 0 && cols > 0).then(|| {
            self.offset + (batch - 1) * self.batch_stride + (rows - 1) * self.row_stride + (cols - 1) * self.col_stride
        })
    }

    /// The strides of an epilogue's load of this matrix, over (matrix of the batch, row,
    /// column).
    pub fn epilogue_strides(&self) -> Vec<usize> {
        vec![self.batch_stride, self.row_stride, self.col_stride]
    }

    /// The same elements read as the transposed matrix.
    pub fn transposed(&self) -> Matrix {
        Matrix { row_stride: self.col_stride, col_stride: self.row_stride, ..self.clone() }
    }
}

/// The geometry of a 2-D window operation on `[N, C, H, W]` tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    pub n: usize,
    /// Input channels (for pooling, the channels of input and output alike).
    pub c: usize,
    /// Output channels of a convolution; for pooling equal to `c`.
    pub o: usize,
    pub h: usize,
    pub w: usize,
    pub ho: usize,
    pub wo: usize,
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub pad: (usize, usize),
}

impl Window {
    /// Whether the windows cover the input exactly once: no overlap, and no row or column
    /// left over.
    pub fn tiles(&self) -> bool {
        self.kernel == self.stride && self.h == self.ho * self.stride.0 && self.w == self.wo * self.stride.1
    }
}

/// One loop nest.
#[derive(Clone, Debug, PartialEq)]
pub enum Kernel {
    /// For every index of `shape`: `out[index] (combine)= expr`.
    Loop { shape: Vec<usize>, out: Access, expr: Expr, combine: Combine },
    /// `c = a @ b` with `a` m×k, `b` k×n and `c` m×n, for each of `batch` matrices; with
    /// `accumulate`, `c` is zeroed first and every product of the batch adds into it (the
    /// batch stride of `c` is then 0).
    ///
    /// An `epilogue` (never with `accumulate`) replaces each element of `c` by a function of
    /// it right after its product, while it is still in cache: the bias and activation of
    /// a layer. Its loads have three strides, over (matrix of the batch, row, column); the
    /// load of `c`'s own buffer at `c`'s own strides is the product.
    MatMul {
        batch: usize,
        m: usize,
        n: usize,
        k: usize,
        a: Matrix,
        b: Matrix,
        c: Matrix,
        accumulate: bool,
        epilogue: Option<Expr>,
    },
    /// The columns of a convolution's input: `cols[n][(c, kh, kw)][(i, j)]` is the input
    /// element that kernel position meets at output position (i, j), or 0 in the padding.
    Im2Col { window: Window, input: BufferId, out: BufferId },
    /// The adjoint of `Im2Col`: each column element added back to the input position it
    /// came from.
    Col2Im { window: Window, input: BufferId, out: BufferId },
    /// Softmax (or log-softmax) of each line of `input` along an axis: the tensor seen as
    /// `[outer, len, inner]`.
    Softmax { outer: usize, len: usize, inner: usize, input: BufferId, out: BufferId, log: bool },
    /// The mean over `rows` of the cross-entropy of softmax(logits row) and the label; with
    /// `grad`, also the gradient of a loss with respect to the logits in the same pass over
    /// each row: `scale · (softmax(row) − one_hot(label))` into the buffer `grad.0`.
    SoftmaxCrossEntropy {
        rows: usize,
        classes: usize,
        logits: BufferId,
        labels: BufferId,
        out: BufferId,
        grad: Option<(BufferId, f32)>,
    },
    /// Max pooling; `Grad` sends each window's cotangent to its maximum, `Pick` reads
    /// `other` at each window's maximum.
    ///
    /// A gradient over windows that tile the input may have an `epilogue`, applied to each
    /// element of `out` right after it is written (the activation's derivative before the
    /// pooling): its loads have four strides, over the `[N, C, H, W]` positions of the
    /// input, and the load of `out` at its own strides is the pooled cotangent.
    MaxPool { window: Window, input: BufferId, out: BufferId, mode: PoolMode, epilogue: Option<Expr> },
    /// Average pooling forward, or its cotangent (`backward`) spread over each window.
    AvgPool { window: Window, input: BufferId, out: BufferId, backward: bool },
}

/// What a max-pooling kernel computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolMode {
    Forward,
    /// From the cotangent `other` of the pooled output, the cotangent of the input.
    Grad(BufferId),
    /// The values of `other`, shaped like the input, at each window's maximum.
    Pick(BufferId),
}

impl Kernel {
    /// Floating-point operations of one run of the kernel: two per multiply-add of a
    /// product or a window, one per elementwise operation.
    pub fn flops(&self) -> u64 {
        match self {
            Kernel::Loop { shape, expr, .. } => shape.iter().product::<usize>() as u64 * expr.size() as u64,
            Kernel::MatMul { batch, m, n, k, epilogue, .. } => {
                let elements = (batch * m * n) as u64;
                2 * elements * *k as u64 + epilogue.as_ref().map_or(0, |e| elements * e.size() as u64)
            }
            Kernel::Im2Col { window: w, .. } | Kernel::Col2Im { window: w, .. } => {
                (w.n * w.c * w.kernel.0 * w.kernel.1 * w.ho * w.wo) as u64
            }
            Kernel::Softmax { outer, len, inner, .. } => 4 * (outer * len * inner) as u64,
            Kernel::SoftmaxCrossEntropy { rows, classes, grad, .. } => {
                (if grad.is_some() { 8 } else { 4 }) * (rows * classes) as u64
            }
            Kernel::MaxPool { window: w, epilogue, .. } => {
                let positions = (w.n * w.c * w.ho * w.wo * w.kernel.0 * w.kernel.1) as u64;
                positions * (1 + epilogue.as_ref().map_or(0, |e| e.size() as u64))
            }
            Kernel::AvgPool { window: w, .. } => (w.n * w.c * w.ho * w.wo * w.kernel.0 * w.kernel.1) as u64,
        }
    }

    /// Renames every buffer the kernel names.
    pub fn map_buffers(&mut self, f: &impl Fn(BufferId) -> BufferId) {
        let access = |a: &mut Access| a.buffer = f(a.buffer);
        match self {
            Kernel::Loop { out, expr, .. } => {
                access(out);
                expr.map_loads(&mut |a| access(a));
            }
            Kernel::MatMul { a, b, c, epilogue, .. } => {
                for m in [a, b, c] {
                    m.buffer = f(m.buffer);
                }
                if let Some(e) = epilogue {
                    e.map_loads(&mut |a| access(a));
                }
            }
            Kernel::Im2Col { input, out, .. }
            | Kernel::Col2Im { input, out, .. }
            | Kernel::Softmax { input, out, .. }
            | Kernel::AvgPool { input, out, .. } => {
                *input = f(*input);
                *out = f(*out);
            }
            Kernel::SoftmaxCrossEntropy { logits, labels, out, grad, .. } => {
                *logits = f(*logits);
                *labels = f(*labels);
                *out = f(*out);
                if let Some((g, _)) = grad {
                    *g = f(*g);
                }
            }
            Kernel::MaxPool { input, out, mode, epilogue, .. } => {
                *input = f(*input);
                *out = f(*out);
                if let PoolMode::Grad(o) | PoolMode::Pick(o) = mode {
                    *o = f(*o);
                }
                if let Some(e) = epilogue {
                    e.map_loads(&mut |a| access(a));
                }
            }
        }
    }

    /// The buffers the kernel reads, and those it writes (one, but for a cross-entropy that
    /// also writes its gradient).
    pub fn buffers(&self) -> (Vec<BufferId>, Vec<BufferId>) {
        match self {
            Kernel::SoftmaxCrossEntropy { logits, labels, out, grad, .. } => {
                (vec![*logits, *labels], [*out].into_iter().chain(grad.map(|g| g.0)).collect())
            }
            other => {
                let (reads, write) = other.reads_and_write();
                (reads, vec![write])
            }
        }
    }

    fn reads_and_write(&self) -> (Vec<BufferId>, BufferId) {
        match self {
            Kernel::Loop { out, expr, .. } => (expr.loads().iter().map(|a| a.buffer).collect(), out.buffer),
            Kernel::MatMul { a, b, c, epilogue, .. } => {
                let mut reads = vec![a.buffer, b.buffer];
                if let Some(e) = epilogue {
                    reads.extend(e.loads().iter().map(|l| l.buffer).filter(|&l| l != c.buffer));
                }
                (reads, c.buffer)
            }
            Kernel::Im2Col { input, out, .. } | Kernel::Col2Im { input, out, .. } => (vec![*input], *out),
            Kernel::Softmax { input, out, .. } => (vec![*input], *out),
            Kernel::SoftmaxCrossEntropy { .. } => unreachable!("answered by `buffers`"),
            Kernel::MaxPool { input, out, mode, epilogue, .. } => {
                let mut reads = match mode {
                    PoolMode::Forward => vec![*input],
                    PoolMode::Grad(o) | PoolMode::Pick(o) => vec![*input, *o],
                };
                if let Some(e) = epilogue {
                    reads.extend(e.loads().iter().map(|l| l.buffer).filter(|&l| l != *out));
                }
                (reads, *out)
            }
            Kernel::AvgPool { input, out, .. } => (vec![*input], *out),
        }
    }
}

/// A function as kernels over buffers.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Program {
    pub name: String,
    pub buffers: Vec<Buffer>,
    pub kernels: Vec<Kernel>,
    /// The buffer of each argument, in order.
    pub params: Vec<BufferId>,
    /// The buffer of each result, in order.
    pub results: Vec<BufferId>,
}

impl Program {
    pub fn buffer(&self, id: BufferId) -> &Buffer {
        &self.buffers[id.0]
    }

    /// Floating-point operations per run: two per multiply-add of a product or a window,
    /// one per elementwise operation.
    pub fn flops(&self) -> u64 {
        self.kernels.iter().map(Kernel::flops).sum()
    }

    /// Drops the temporaries no kernel reads or writes (those fusion made unnecessary),
    /// numbering the others anew in the same order.
    pub fn drop_unused_temporaries(&mut self) {
        let mut used = vec![false; self.buffers.len()];
        for kernel in &self.kernels {
            let (reads, writes) = kernel.buffers();
            for b in reads.into_iter().chain(writes) {
                used[b.0] = true;
            }
        }
        let mut renamed = vec![None; self.buffers.len()];
        let mut kept = Vec::new();
        for (i, buffer) in std::mem::take(&mut self.buffers).into_iter().enumerate() {
            if used[i] || buffer.role != Role::Temp {
                renamed[i] = Some(BufferId(kept.len()));
                kept.push(buffer);
            }
        }
        self.buffers = kept;
        let rename = |b: BufferId| renamed[b.0].expect("a buffer in use is kept");
        for kernel in &mut self.kernels {
            kernel.map_buffers(&rename);
        }
        for b in self.params.iter_mut().chain(&mut self.results) {
            *b = rename(*b);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Verification: every access of every kernel stays inside its buffer, no kernel writes a
// buffer it reads (except a reduction's own output), and no kernel writes an argument.
// This is the proof that generated code indexes only within its buffers.

/// A kernel that would read or write outside a buffer, or write what it must not.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifyError(pub String);

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn verify(program: &Program) -> Result<(), VerifyError> {
    for (index, kernel) in program.kernels.iter().enumerate() {
        verify_kernel(program, kernel).map_err(|e| VerifyError(format!("kernel k{index}: {e}")))?;
    }
    for (i, &p) in program.params.iter().enumerate() {
        if program.buffer(p).role != Role::Param(i) {
            return Err(VerifyError(format!("argument {i} is not in a parameter buffer")));
        }
    }
    for (i, &r) in program.results.iter().enumerate() {
        if program.buffer(r).role != Role::Result(i) {
            return Err(VerifyError(format!("result {i} is not in a result buffer")));
        }
    }
    Ok(())
}

fn verify_kernel(program: &Program, kernel: &Kernel) -> Result<(), String> {
    let within = |buffer: BufferId, last: Option<usize>| -> Result<(), String> {
        let b = program.buffers.get(buffer.0).ok_or_else(|| format!("no buffer b{}", buffer.0))?;
        match last {
            Some(last) if last >= b.len => Err(format!("reaches element {last} of `{}`, which has {}", b.name, b.len)),
            _ => Ok(()),
        }
    };
    let whole = |buffer: BufferId, len: usize| within(buffer, len.checked_sub(1));
    let writable = |buffer: BufferId| -> Result<(), String> {
        match program.buffer(buffer).role {
            Role::Param(_) | Role::Constant(_) => {
                Err(format!("writes the read-only `{}`", program.buffer(buffer).name))
            }
            _ => Ok(()),
        }
    };
    let distinct = |out: BufferId, inputs: &[BufferId]| -> Result<(), String> {
        if inputs.contains(&out) {
            return Err(format!("writes `{}` while reading it", program.buffer(out).name));
        }
        Ok(())
    };
    match kernel {
        Kernel::Loop { shape, out, expr, .. } => {
            if out.strides.len() != shape.len() {
                return Err("the output's strides do not match the loop".into());
            }
            within(out.buffer, out.last_index(shape))?;
            writable(out.buffer)?;
            for load in expr.loads() {
                if load.strides.len() != shape.len() {
                    return Err("an input's strides do not match the loop".into());
                }
                within(load.buffer, load.last_index(shape))?;
                distinct(out.buffer, &[load.buffer])?;
            }
            let mut axes_ok = true;
            expr.visit(&mut |e| axes_ok &= !matches!(e, Expr::Index(a) if *a >= shape.len()));
            if !axes_ok {
                return Err("an index of an axis the loop does not have".into());
            }
        }
        Kernel::MatMul { batch, m, n, k, a, b, c, accumulate, epilogue } => {
            within(a.buffer, a.last_index(*batch, *m, *k))?;
            within(b.buffer, b.last_index(*batch, *k, *n))?;
            within(c.buffer, c.last_index(*batch, *m, *n))?;
            writable(c.buffer)?;
            distinct(c.buffer, &[a.buffer, b.buffer])?;
            if *accumulate && (c.batch_stride != 0 || c.offset != 0 || program.buffer(c.buffer).len != m * n) {
                return Err("an accumulating product must fill its whole output".into());
            }
            if let Some(expr) = epilogue {
                if *accumulate {
                    return Err("an accumulating product has an epilogue".into());
                }
                let own = Access { buffer: c.buffer, offset: c.offset, strides: c.epilogue_strides() };
                verify_epilogue(expr, &own, &[*batch, *m, *n], &within)?;
            }
        }
        Kernel::Im2Col { window: w, input, out } | Kernel::Col2Im { window: w, input: out, out: input } => {
            // `input` is the image side, `out` the columns, whichever way the kernel goes.
            whole(*input, w.n * w.c * w.h * w.w)?;
            whole(*out, w.n * w.c * w.kernel.0 * w.kernel.1 * w.ho * w.wo)?;
            distinct(*out, &[*input])?;
            writable(kernel.buffers().1[0])?;
        }
        Kernel::Softmax { outer, len, inner, input, out, .. } => {
            whole(*input, outer * len * inner)?;
            whole(*out, outer * len * inner)?;
            writable(*out)?;
            distinct(*out, &[*input])?;
        }
        Kernel::SoftmaxCrossEntropy { rows, classes, logits, labels, out, grad } => {
            whole(*logits, rows * classes)?;
            whole(*labels, *rows)?;
            whole(*out, 1)?;
            writable(*out)?;
            distinct(*out, &[*logits, *labels])?;
            if let Some((grad, _)) = grad {
                whole(*grad, rows * classes)?;
                writable(*grad)?;
                distinct(*grad, &[*logits, *labels, *out])?;
            }
        }
        Kernel::MaxPool { window: w, input, out, mode, epilogue } => {
            whole(*input, w.n * w.c * w.h * w.w)?;
            if let Some(expr) = epilogue {
                if !matches!(mode, PoolMode::Grad(_)) || !w.tiles() {
                    return Err("an epilogue of pooling other than the gradient of tiling windows".into());
                }
                let own = Access { buffer: *out, offset: 0, strides: vec![w.c * w.h * w.w, w.h * w.w, w.w, 1] };
                verify_epilogue(expr, &own, &[w.n, w.c, w.h, w.w], &within)?;
            }
            let (out_len, other) = match mode {
                PoolMode::Forward => (w.n * w.c * w.ho * w.wo, None),
                PoolMode::Grad(g) => (w.n * w.c * w.h * w.w, Some((*g, w.n * w.c * w.ho * w.wo))),
                PoolMode::Pick(p) => (w.n * w.c * w.ho * w.wo, Some((*p, w.n * w.c * w.h * w.w))),
            };
            whole(*out, out_len)?;
            writable(*out)?;
            distinct(*out, &[*input])?;
            if let Some((other, len)) = other {
                whole(other, len)?;
                distinct(*out, &[other])?;
            }
            if w.ho == 0 || (w.ho - 1) * w.stride.0 + w.kernel.0 > w.h || (w.wo - 1) * w.stride.1 + w.kernel.1 > w.w {
                return Err("a pooling window reaches past the input".into());
            }
        }
        Kernel::AvgPool { window: w, input, out, backward } => {
            let (small, large) = (w.n * w.c * w.ho * w.wo, w.n * w.c * w.h * w.w);
            let (input_len, out_len) = if *backward { (small, large) } else { (large, small) };
            whole(*input, input_len)?;
            whole(*out, out_len)?;
            writable(*out)?;
            distinct(*out, &[*input])?;
            if w.ho == 0 || (w.ho - 1) * w.stride.0 + w.kernel.0 > w.h || (w.wo - 1) * w.stride.1 + w.kernel.1 > w.w {
                return Err("a pooling window reaches past the input".into());
            }
        }
    }
    Ok(())
}

/// An epilogue over the elements of a kernel's output of shape `dims`: it reads the output
/// only at the element it replaces (`own`), every other load stays inside its buffer over
/// `dims`, and it reads no loop index.
fn verify_epilogue(
    expr: &Expr,
    own: &Access,
    dims: &[usize],
    within: &dyn Fn(BufferId, Option<usize>) -> Result<(), String>,
) -> Result<(), String> {
    for load in expr.loads() {
        if load.buffer == own.buffer {
            if load != own {
                return Err("the epilogue reads the kernel's output at another element".into());
            }
            continue;
        }
        if load.strides.len() != dims.len() {
            return Err(format!("an epilogue load without {} strides", dims.len()));
        }
        within(load.buffer, load.last_index(dims))?;
    }
    if expr.reads_index() {
        return Err("an epilogue reads a loop index".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The text form.

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |ids: &[BufferId]| ids.iter().map(|&b| self.buffer(b).name.clone()).collect::<Vec<_>>().join(", ");
        writeln!(f, "kernels {}({}) -> ({}) {{", self.name, names(&self.params), names(&self.results))?;
        for (i, b) in self.buffers.iter().enumerate() {
            let role = match &b.role {
                Role::Param(k) => format!("argument {k}"),
                Role::Result(k) => format!("result {k}"),
                Role::Temp => "temporary".to_string(),
                Role::Constant(_) => "constant".to_string(),
            };
            writeln!(f, "  b{i} {}: f32[{}] {role}", b.name, b.len)?;
        }
        for (i, k) in self.kernels.iter().enumerate() {
            writeln!(f, "  k{i}: {}", self.kernel_text(k))?;
        }
        f.write_str("}\n")
    }
}

impl Program {
    fn access_text(&self, a: &Access) -> String {
        let strides = a.strides.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ");
        let offset = if a.offset == 0 { String::new() } else { format!("+{}", a.offset) };
        format!("{}{offset}[{strides}]", self.buffer(a.buffer).name)
    }

    fn expr_text(&self, e: &Expr) -> String {
        match e {
            Expr::Load(a) => self.access_text(a),
            Expr::Const(c) => format!("{c}"),
            Expr::Index(axis) => format!("i{axis}"),
            Expr::Unary(op, x) => format!("{}({})", format!("{op:?}").to_lowercase(), self.expr_text(x)),
            Expr::Binary(op, a, b) => {
                let name = match op {
                    Binary::GreaterEq => "ge".to_string(),
                    Binary::Equal => "eq".to_string(),
                    Binary::Add | Binary::Sub | Binary::Mul | Binary::Div | Binary::Pow | Binary::Max | Binary::Min => {
                        format!("{op:?}").to_lowercase()
                    }
                };
                format!("{name}({}, {})", self.expr_text(a), self.expr_text(b))
            }
        }
    }

    fn matrix_text(&self, m: &Matrix) -> String {
        let offset = if m.offset == 0 { String::new() } else { format!("+{}", m.offset) };
        let batch = if m.batch_stride == 0 { String::new() } else { format!("{}, ", m.batch_stride) };
        format!("{}{offset}[{batch}{}, {}]", self.buffer(m.buffer).name, m.row_stride, m.col_stride)
    }

    /// One kernel as a line of text.
    pub fn kernel_text(&self, kernel: &Kernel) -> String {
        let name = |b: &BufferId| self.buffer(*b).name.clone();
        let window = |w: &Window| {
            let mut s = format!("n={} c={} h={}x{} out={}x{}", w.n, w.c, w.h, w.w, w.ho, w.wo);
            if w.o != w.c {
                let _ = write!(s, " o={}", w.o);
            }
            let _ = write!(s, " kernel={}x{} stride={}x{}", w.kernel.0, w.kernel.1, w.stride.0, w.stride.1);
            if w.pad != (0, 0) {
                let _ = write!(s, " pad={}x{}", w.pad.0, w.pad.1);
            }
            s
        };
        match kernel {
            Kernel::Loop { shape, out, expr, combine } => {
                let op = match combine {
                    Combine::Assign => "=",
                    Combine::Add => "+=",
                    Combine::Max => "max=",
                };
                format!("loop {shape:?} {} {op} {}", self.access_text(out), self.expr_text(expr))
            }
            Kernel::MatMul { batch, m, n, k, a, b, c, accumulate, epilogue } => {
                let batch = if *batch > 1 { format!("{batch}x") } else { String::new() };
                let op = if *accumulate { "+=" } else { "=" };
                let then = epilogue.as_ref().map_or(String::new(), |e| format!(" then {}", self.expr_text(e)));
                format!(
                    "matmul {batch}{m}x{k}x{n} {} {op} {} @ {}{then}",
                    self.matrix_text(c),
                    self.matrix_text(a),
                    self.matrix_text(b)
                )
            }
            Kernel::Im2Col { window: w, input, out } => format!("im2col {} {} = {}", window(w), name(out), name(input)),
            Kernel::Col2Im { window: w, input, out } => format!("col2im {} {} = {}", window(w), name(out), name(input)),
            Kernel::Softmax { outer, len, inner, input, out, log } => {
                let op = if *log { "log_softmax" } else { "softmax" };
                format!("{op} [{outer}, {len}, {inner}] {} = {}", name(out), name(input))
            }
            Kernel::SoftmaxCrossEntropy { rows, classes, logits, labels, out, grad } => {
                let grad = grad
                    .map_or(String::new(), |(g, scale)| format!(" then {} = {scale} * (softmax - one_hot)", name(&g)));
                format!(
                    "softmax_cross_entropy {rows}x{classes} {} = {}, {}{grad}",
                    name(out),
                    name(logits),
                    name(labels)
                )
            }
            Kernel::MaxPool { window: w, input, out, mode, epilogue } => {
                let then = epilogue.as_ref().map_or(String::new(), |e| format!(" then {}", self.expr_text(e)));
                match mode {
                    PoolMode::Forward => format!("maxpool {} {} = {}", window(w), name(out), name(input)),
                    PoolMode::Grad(g) => {
                        format!("maxpool_grad {} {} = {}, {}{then}", window(w), name(out), name(input), name(g))
                    }
                    PoolMode::Pick(p) => {
                        format!("maxpool_pick {} {} = {}, {}", window(w), name(out), name(input), name(p))
                    }
                }
            }
            Kernel::AvgPool { window: w, input, out, backward } => {
                let op = if *backward { "avgpool_grad" } else { "avgpool" };
                format!("{op} {} {} = {}", window(w), name(out), name(input))
            }
        }
    }
}

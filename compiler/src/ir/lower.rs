//! Lowering: an instance of the checked program to an IR function. Uses of other
//! instances (models used as layers, function calls) are inlined, so the IR is the whole
//! evaluation trace; constants are evaluated and become literals. Everything here reads the
//! checked program: its built-in calls are typed, its sizes evaluated.

use super::interp::{Precision, eval_function};
use super::ops::Op;
use super::{Function, LayerGroup, Tensor, Type, Value};
use crate::checked::{Binary, Call, Checked, InstanceId, InstanceKind, NodeId, NodeKind};
use crate::shapes::{Dim, Shape};
use nnc_grammar::Span;
use std::collections::HashMap;

/// Why an instance could not be lowered.
#[derive(Clone, Debug, PartialEq)]
pub struct LowerError {
    pub message: String,
    pub span: Span,
}

impl std::fmt::Display for LowerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn error(message: impl Into<String>, span: Span) -> LowerError {
    LowerError { message: message.into(), span }
}

/// How deeply uses of instances may nest when they are inlined. The check stops recursion
/// long before; this bounds the walk for instances built by hand.
const MAX_DEPTH: usize = 64;

/// How to lower an instance.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lowering {
    /// The batch size that replaces the batch symbol; `None` keeps the symbol.
    pub batch: Option<usize>,
    /// A training step: each dropout multiplies by a mask argument named `{index}.mask`.
    pub training: bool,
    /// Return this node of the instance instead of its output, computing only what it needs.
    pub output: Option<NodeId>,
}

/// Lowers instance `id` of `checked`: a function of the instance's inputs (a model's input
/// is `x`) and, for a model, of its parameters, returning its output.
pub fn lower_instance(checked: &Checked, id: InstanceId, how: Lowering) -> Result<Function, LowerError> {
    let instance = checked.get(id);
    if instance.failed {
        return Err(error(format!("`{}` has errors", instance.name), instance.span));
    }
    let mut substitutions = HashMap::new();
    if let (Some(batch), Some(symbol)) = (how.batch, &instance.batch) {
        substitutions.insert(symbol.clone(), Dim::constant(batch as i128));
    }
    let mut lowerer =
        Lowerer { checked, f: Function::new(&instance.name, instance.span), substitutions, how, depth: 0 };
    let output = lowerer.instance(id, None, "")?;
    Ok(lowerer.finish(output))
}

struct Lowerer<'a> {
    checked: &'a Checked,
    f: Function,
    /// Symbols given values: the batch.
    substitutions: HashMap<String, Dim>,
    how: Lowering,
    depth: usize,
}

impl Lowerer<'_> {
    /// The lowered function returning `result`, its values numbered as the lecture numbers
    /// them.
    fn finish(self, result: Value) -> Function {
        let mut f = self.f;
        f.results = vec![result];
        f.result_names = vec!["y".to_string()];
        f.schedule_by_depth();
        f.renumber();
        f
    }

    fn push(&mut self, op: Op, args: &[Value], span: Span) -> Result<Value, LowerError> {
        Emitter { f: &mut self.f, span }.op(op, args)
    }

    fn dim(&self, dim: &Dim) -> Dim {
        dim.substitute(&|name| self.substitutions.get(name).cloned()).unwrap_or_else(|_| dim.clone())
    }

    fn shape(&self, shape: &Option<Shape>, span: Span) -> Result<Shape, LowerError> {
        let shape = shape.as_ref().ok_or_else(|| error("the shape of this value is not known", span))?;
        Ok(Shape(shape.0.iter().map(|d| self.dim(d)).collect()))
    }

    /// A size that must be a number to lower: a window, a stride.
    fn size(&self, dim: &Dim, span: Span) -> Result<usize, LowerError> {
        let dim = self.dim(dim);
        dim.as_const().filter(|&v| v >= 0).map(|v| v as usize).ok_or_else(|| {
            error(format!("this size is {dim}; it needs a value to be lowered (give one with `--arg`)"), span)
        })
    }

    fn pair(&self, (a, b): &(Dim, Dim), span: Span) -> Result<(usize, usize), LowerError> {
        Ok((self.size(a, span)?, self.size(b, span)?))
    }

    fn literal(&mut self, tensor: &Tensor, span: Span) -> Result<Value, LowerError> {
        if tensor.shape.is_empty() {
            return self.push(Op::Const(tensor.data[0]), &[], span);
        }
        self.push(Op::Literal { shape: tensor.shape.clone(), data: tensor.data.clone() }, &[], span)
    }

    /// Lowers the nodes of instance `id`. `inputs` are the values flowing in; `None` makes
    /// them arguments of the function (the instance being lowered on its own). `prefix`
    /// comes before the names of its parameters.
    fn instance(&mut self, id: InstanceId, inputs: Option<&[Value]>, prefix: &str) -> Result<Value, LowerError> {
        let checked = self.checked;
        let instance = checked.get(id);
        if self.depth > MAX_DEPTH {
            return Err(error(format!("`{}` is nested too deeply", instance.name), instance.span));
        }
        let root = inputs.is_none();
        let output = match (root, self.how.output) {
            (true, Some(output)) => output,
            _ => instance.output.ok_or_else(|| error(format!("`{}` has no output", instance.name), instance.span))?,
        };
        let needed = match self.how.output {
            Some(_) if root => needed(instance, output),
            _ => vec![true; instance.nodes.len()],
        };
        // Parameters that a layer takes are created when the layer is lowered, in the order
        // it uses them, so that values are numbered as the layer computes.
        let mut owned = vec![false; instance.nodes.len()];
        for node in &instance.nodes {
            if let NodeKind::Call { params, .. } = &node.kind {
                for &param in params {
                    owned[param] = true;
                }
            }
        }
        let mut values: Vec<Option<Value>> = vec![None; instance.nodes.len()];
        let mut statements = instance.statements.iter().peekable();
        let mut group_start = None;
        for n in 0..instance.nodes.len() {
            if root {
                while let Some(statement) = statements.next_if(|s| s.nodes.is_empty() && s.nodes.start <= n) {
                    let at = self.f.values.len() as u32;
                    self.f.layers.push(LayerGroup { span: statement.span, values: at..at });
                }
                if statements.peek().is_some_and(|s| s.nodes.start == n) {
                    group_start = Some(self.f.values.len() as u32);
                }
            }
            if !owned[n] && needed[n] {
                let value = self.node(id, n, &mut values, inputs, prefix)?;
                values[n] = Some(value);
            }
            if root && let Some(statement) = statements.next_if(|s| s.nodes.end == n + 1) {
                let start = group_start.take().unwrap_or(self.f.values.len() as u32);
                self.f.layers.push(LayerGroup { span: statement.span, values: start..self.f.values.len() as u32 });
            }
        }
        if root {
            for statement in statements {
                let at = self.f.values.len() as u32;
                self.f.layers.push(LayerGroup { span: statement.span, values: at..at });
            }
        }
        self.get(id, output, &mut values, prefix)
    }

    /// The value of node `n`, lowering it now if it is a parameter a layer takes.
    fn get(
        &mut self,
        id: InstanceId,
        n: NodeId,
        values: &mut [Option<Value>],
        prefix: &str,
    ) -> Result<Value, LowerError> {
        if let Some(value) = values[n] {
            return Ok(value);
        }
        let node = &self.checked.get(id).nodes[n];
        match &node.kind {
            NodeKind::Param { name, init } => {
                let name = format!("{prefix}{name}");
                let shape = self.shape(&node.shape, node.span)?;
                let value = self.f.param(&name, Type::of(shape));
                if let Some(init) = init {
                    self.f.param_inits.push((name, init.clone()));
                }
                values[n] = Some(value);
                Ok(value)
            }
            _ => Err(error("this value is used before it is computed", node.span)),
        }
    }

    fn node(
        &mut self,
        id: InstanceId,
        n: NodeId,
        values: &mut [Option<Value>],
        inputs: Option<&[Value]>,
        prefix: &str,
    ) -> Result<Value, LowerError> {
        let checked = self.checked;
        let instance = checked.get(id);
        let node = &instance.nodes[n];
        let span = node.span;
        match &node.kind {
            NodeKind::Input(k) => match inputs {
                Some(given) => given.get(*k).copied().ok_or_else(|| error("an input has no value", span)),
                None => {
                    let shape = self.shape(&node.shape, span)?;
                    let name = match instance.kind {
                        InstanceKind::Model => "x",
                        InstanceKind::Fn | InstanceKind::Constant => &instance.inputs[*k].0,
                    };
                    Ok(self.f.param(name, Type::of(shape)))
                }
            },
            NodeKind::Param { .. } => self.get(id, n, values, prefix),
            NodeKind::Number(v) => self.push(Op::Const(*v), &[], span),
            NodeKind::Size(dim) => {
                let value = self.size(dim, span)?;
                self.push(Op::Const(value as f64), &[], span)
            }
            NodeKind::Literal(tensor) => self.literal(tensor, span),
            NodeKind::Neg(x) => {
                let x = self.get(id, *x, values, prefix)?;
                self.push(Op::Neg, &[x], span)
            }
            NodeKind::Transpose(x) => {
                let x = self.get(id, *x, values, prefix)?;
                self.push(Op::Transpose, &[x], span)
            }
            NodeKind::Binary(op, a, b) => {
                let a = self.get(id, *a, values, prefix)?;
                let b = self.get(id, *b, values, prefix)?;
                let op = match op {
                    Binary::Add => Op::Add,
                    Binary::Sub => Op::Sub,
                    Binary::Mul => Op::Mul,
                    Binary::Div => Op::Div,
                    Binary::Pow => Op::Pow,
                    Binary::MatMul => Op::MatMul,
                };
                self.push(op, &[a, b], span)
            }
            NodeKind::Use { instance: used, args, prefix: own } => {
                let used_instance = checked.get(*used);
                if used_instance.failed {
                    return Err(error(format!("`{}` has errors", used_instance.name), span));
                }
                if used_instance.kind == InstanceKind::Constant {
                    let tensor = self.constant(*used, span)?;
                    return self.literal(&tensor, span);
                }
                let args = args.iter().map(|&a| self.get(id, a, values, prefix)).collect::<Result<Vec<_>, _>>()?;
                self.depth += 1;
                let result = self.instance(*used, Some(&args), &format!("{prefix}{own}"));
                self.depth -= 1;
                result
            }
            NodeKind::Call { call, args, params } => {
                let operands = args.iter().map(|&a| self.get(id, a, values, prefix)).collect::<Result<Vec<_>, _>>()?;
                // Parameters are fetched by the call's lowering, in its order of use.
                self.call(call, &operands, params, CallSite { id, n, prefix }, values)
            }
        }
    }

    /// The value of a constant, computed now.
    fn constant(&mut self, id: InstanceId, span: Span) -> Result<Tensor, LowerError> {
        let f = lower_instance(self.checked, id, Lowering::default())?;
        let (results, _) = eval_function(&f, &[], Precision::F64).map_err(|message| error(message, span))?;
        results.into_iter().next().ok_or_else(|| error("this constant has no value", span))
    }
}

/// The nodes that `output` depends on, and the `param`s, which a model has whether it
/// uses them or not.
fn needed(instance: &crate::checked::Instance, output: NodeId) -> Vec<bool> {
    let mut needed = vec![false; instance.nodes.len()];
    let mut stack = vec![output];
    for (n, node) in instance.nodes.iter().enumerate() {
        if matches!(node.kind, NodeKind::Param { .. } | NodeKind::Input(_)) {
            stack.push(n);
        }
    }
    while let Some(n) = stack.pop() {
        if std::mem::replace(&mut needed[n], true) {
            continue;
        }
        match &instance.nodes[n].kind {
            NodeKind::Input(_)
            | NodeKind::Param { .. }
            | NodeKind::Number(_)
            | NodeKind::Size(_)
            | NodeKind::Literal(_) => {}
            NodeKind::Neg(x) | NodeKind::Transpose(x) => stack.push(*x),
            NodeKind::Binary(_, a, b) => stack.extend([*a, *b]),
            NodeKind::Call { args, params, .. } => stack.extend(args.iter().chain(params)),
            NodeKind::Use { args, .. } => stack.extend(args),
        }
    }
    needed
}

/// What an entry of the built-ins table lowers with: IR primitives pushed at one place of
/// the source, each checked by its shape rule.
pub struct Emitter<'f> {
    f: &'f mut Function,
    span: Span,
}

impl Emitter<'_> {
    /// Pushes `op` on `args`.
    pub fn op(&mut self, op: Op, args: &[Value]) -> Result<Value, LowerError> {
        let shapes: Vec<&Shape> = args.iter().map(|&a| &self.f.ty(a).shape).collect();
        op.shape(&shapes).map_err(|e| error(e, self.span))?;
        Ok(self.f.push(op, args, self.span))
    }

    /// A number.
    pub fn constant(&mut self, value: f64) -> Result<Value, LowerError> {
        self.op(Op::Const(value), &[])
    }
}

/// Where a call is lowered: its instance and node, and the prefix of parameter names.
#[derive(Clone, Copy)]
struct CallSite<'p> {
    id: InstanceId,
    n: NodeId,
    prefix: &'p str,
}

impl Lowerer<'_> {
    /// Lowers one built-in call on its operands; `params` are the nodes of the parameters it
    /// takes, created here in the order the layer uses them.
    fn call(
        &mut self,
        call: &Call,
        operands: &[Value],
        params: &[NodeId],
        site: CallSite<'_>,
        values: &mut [Option<Value>],
    ) -> Result<Value, LowerError> {
        let node = &self.checked.get(site.id).nodes[site.n];
        let span = node.span;
        let x = *operands.first().ok_or_else(|| error("this call has no input", span))?;
        if matches!(call, Call::Conv2d { .. } | Call::MaxPool { .. } | Call::AvgPool { .. }) {
            let shape = &self.f.ty(x).shape;
            if let Some(open) = shape.0.get(2..).filter(|hw| hw.iter().any(|d| !d.is_const())) {
                let instance = &self.checked.get(site.id).name;
                return Err(error(
                    format!(
                        "`{}` needs its input's height and width as numbers to be lowered, but they are {} and {} \
                         in `{instance}` as written; it is lowered where it is used with an input of known size",
                        call.name(),
                        open[0],
                        open[1]
                    ),
                    span,
                ));
            }
        }
        let unary = |lowerer: &mut Self, op: Op| lowerer.push(op, &[x], span);
        match call {
            Call::Linear { bias } => {
                let weight = self.get(site.id, params[0], values, site.prefix)?;
                let wt = self.push(Op::Transpose, &[weight], span)?;
                let mut y = self.push(Op::MatMul, &[x, wt], span)?;
                if *bias {
                    let b = self.get(site.id, params[1], values, site.prefix)?;
                    y = self.push(Op::Add, &[y, b], span)?;
                }
                Ok(y)
            }
            Call::Conv2d { stride, pad, bias } => {
                let (stride, pad) = (self.pair(stride, span)?, self.pair(pad, span)?);
                let weight = self.get(site.id, params[0], values, site.prefix)?;
                let mut y = self.push(Op::Conv2d { stride, pad }, &[x, weight], span)?;
                if *bias {
                    let b = self.get(site.id, params[1], values, site.prefix)?;
                    let out = self.f.ty(b).shape.0[0].clone();
                    let one = Dim::constant(1);
                    let column = self.push(Op::Reshape(Shape(vec![out, one.clone(), one])), &[b], span)?;
                    y = self.push(Op::Add, &[y, column], span)?;
                }
                Ok(y)
            }
            Call::MaxPool { kernel, stride } => {
                let (kernel, stride) = (self.pair(kernel, span)?, self.pair(stride, span)?);
                unary(self, Op::MaxPool2d { kernel, stride })
            }
            Call::AvgPool { kernel, stride } => {
                let (kernel, stride) = (self.pair(kernel, span)?, self.pair(stride, span)?);
                unary(self, Op::AvgPool2d { kernel, stride })
            }
            Call::Reshape => {
                let shape = self.shape(&node.shape, span)?;
                unary(self, Op::Reshape(shape))
            }
            // Dropout changes nothing at inference; a training step multiplies by a mask.
            Call::Dropout { p, mask } => {
                if !self.how.training || *p <= 0.0 {
                    return Ok(x);
                }
                let shape = self.f.ty(x).shape.clone();
                let mask = self.f.param(&format!("{}{mask}", site.prefix), Type::of(shape));
                self.f.dropout_masks.push((self.f.params.len() - 1, *p));
                self.push(Op::Mul, &[x, mask], span)
            }
            Call::Activation { entry, settings } => (entry.lower)(&mut Emitter { f: &mut self.f, span }, x, settings),
            Call::Softmax { axis } => unary(self, Op::Softmax { axis: *axis }),
            Call::LogSoftmax { axis } => unary(self, Op::LogSoftmax { axis: *axis }),
            Call::Ln => unary(self, Op::Ln),
            Call::Exp => unary(self, Op::Exp),
            Call::Sqrt => unary(self, Op::Sqrt),
            Call::Sin => unary(self, Op::Sin),
            Call::Cos => unary(self, Op::Cos),
            Call::Tan => unary(self, Op::Tan),
            Call::Abs => unary(self, Op::Abs),
            Call::Transpose => unary(self, Op::Transpose),
            Call::Sum { axis } => unary(self, Op::Sum { axis: *axis }),
            Call::Mean { axis } => unary(self, Op::Mean { axis: *axis }),
            Call::Max { axis } => unary(self, Op::ReduceMax { axis: *axis }),
            Call::Min { axis } => {
                // min(x) = -max(-x)
                let negated = self.push(Op::Neg, &[x], span)?;
                let top = self.push(Op::ReduceMax { axis: *axis }, &[negated], span)?;
                self.push(Op::Neg, &[top], span)
            }
            Call::Maximum => self.push(Op::Max, operands, span),
            Call::Minimum => self.push(Op::Min, operands, span),
            Call::Conv { stride, pad } => {
                let (stride, pad) = (self.size(stride, span)?.max(1), self.size(pad, span)?);
                self.conv(operands, stride, pad, span)
            }
            Call::Mse => self.push(Op::Mse, operands, span),
            Call::CrossEntropy => self.push(Op::SoftmaxCrossEntropy, operands, span),
            Call::Bce => {
                let t = *operands.get(1).ok_or_else(|| error("`bce` needs its targets", span))?;
                bce(&mut self.f, x, t, span)
            }
        }
    }

    /// `conv(x, w)`; a single image and filter, `[H, W]` and `[kh, kw]`, as one batch of
    /// one channel.
    fn conv(&mut self, operands: &[Value], stride: usize, pad: usize, span: Span) -> Result<Value, LowerError> {
        let (mut x, mut w) = match operands {
            [x, w] => (*x, *w),
            _ => return Err(error("`conv` takes an input and a filter", span)),
        };
        let flat = self.f.ty(x).shape.rank() == 2;
        if flat {
            let as4 = |shape: &Shape| Shape([vec![Dim::constant(1); 2], shape.0.clone()].concat());
            let (xs, ws) = (as4(&self.f.ty(x).shape), as4(&self.f.ty(w).shape));
            x = self.push(Op::Reshape(xs), &[x], span)?;
            w = self.push(Op::Reshape(ws), &[w], span)?;
        }
        let y = self.push(Op::Conv2d { stride: (stride, stride), pad: (pad, pad) }, &[x, w], span)?;
        if flat {
            let dims = self.f.ty(y).shape.0[2..].to_vec();
            return self.push(Op::Reshape(Shape(dims)), &[y], span);
        }
        Ok(y)
    }
}

/// Binary cross-entropy, `-mean(t ln y + (1 - t) ln(1 - y))`.
fn bce(f: &mut Function, y: Value, t: Value, span: Span) -> Result<Value, LowerError> {
    let shapes = [&f.ty(y).shape, &f.ty(t).shape];
    Op::Sub.shape(&shapes).map_err(|e| error(e, span))?;
    let one = f.push(Op::Const(1.0), &[], span);
    let ln_y = f.push(Op::Ln, &[y], span);
    let a = f.push(Op::Mul, &[t, ln_y], span);
    let one_t = f.push(Op::Sub, &[one, t], span);
    let one_y = f.push(Op::Sub, &[one, y], span);
    let ln_1y = f.push(Op::Ln, &[one_y], span);
    let b = f.push(Op::Mul, &[one_t, ln_1y], span);
    let total = f.push(Op::Add, &[a, b], span);
    let mean = f.push(Op::Mean { axis: None }, &[total], span);
    Ok(f.push(Op::Neg, &[mean], span))
}

/// The tensor of an array literal of numbers, if it is one.
pub(crate) fn constant_array(expr: &nnc_grammar::Expr) -> Option<Tensor> {
    use nnc_grammar::ExprKind;
    match &expr.unparenthesized().kind {
        ExprKind::Int(v) => Some(Tensor::scalar(*v as f64)),
        ExprKind::Float(v) => Some(Tensor::scalar(*v)),
        ExprKind::Neg(inner) => {
            constant_array(inner).map(|t| Tensor { shape: t.shape, data: t.data.iter().map(|v| -v).collect() })
        }
        ExprKind::Array(items) => {
            let rows: Vec<Tensor> = items.iter().map(constant_array).collect::<Option<_>>()?;
            let inner = rows.first().map(|r| r.shape.clone()).unwrap_or_default();
            if rows.iter().any(|r| r.shape != inner) {
                return None;
            }
            let mut shape = vec![rows.len()];
            shape.extend(inner);
            Some(Tensor { shape, data: rows.into_iter().flat_map(|r| r.data).collect() })
        }
        _ => None,
    }
}

/// The losses a `train` block can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// Softmax cross-entropy of logits and integer class labels `[B]`.
    CrossEntropy,
    /// Mean squared error against targets of the output's shape.
    Mse,
    /// Binary cross-entropy of probabilities against targets of the output's shape.
    Bce,
}

impl Loss {
    pub fn from_name(name: &str) -> Option<Loss> {
        match name {
            "cross_entropy" => Some(Loss::CrossEntropy),
            "mse" => Some(Loss::Mse),
            "bce" => Some(Loss::Bce),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Loss::CrossEntropy => "cross_entropy",
            Loss::Mse => "mse",
            Loss::Bce => "bce",
        }
    }
}

/// Adds the targets `t` (the second argument) and the loss to a lowered model: a function
/// of the input, the targets and the parameters that returns the scalar loss.
pub fn with_loss(mut f: Function, loss: Loss) -> Result<Function, LowerError> {
    let y = f.results[0];
    let shape = f.ty(y).shape.clone();
    let span = f.span;
    let target_shape = match loss {
        Loss::CrossEntropy => Shape(shape.0.first().cloned().into_iter().collect()),
        Loss::Mse | Loss::Bce => shape,
    };
    let t = f.param("t", Type::of(target_shape));
    // The targets come right after the input, before the parameters.
    let moved = f.params.pop().expect("just added");
    f.params.insert(1, moved);
    for (index, _) in &mut f.dropout_masks {
        *index += 1;
    }
    let value = match loss {
        Loss::CrossEntropy => f.push(Op::SoftmaxCrossEntropy, &[y, t], span),
        Loss::Mse => f.push(Op::Mse, &[y, t], span),
        Loss::Bce => bce(&mut f, y, t, span)?,
    };
    f.name = format!("{}_{}", f.name, loss.name());
    f.results = vec![value];
    f.result_names = vec!["loss".to_string()];
    f.renumber();
    Ok(f)
}

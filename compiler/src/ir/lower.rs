//! Lowering: an instance of the checked program to an IR function. Uses of other
//! instances (models used as layers, function calls) are inlined, so the IR is the whole
//! evaluation trace; constants are evaluated and become literals. Everything here reads the
//! checked program: its built-in calls are typed, its sizes evaluated.

use super::interp::{Precision, eval_function};
use super::ops::Op;
use super::{Function, LayerGroup, Loss, Tensor, Type, Value};
use crate::checked::{Binary, Checked, InstanceId, InstanceKind, Node, NodeId, NodeKind};
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
        Emitter::new(&mut self.f, span).op(op, args)
    }

    fn emitter(&mut self, span: Span) -> Emitter<'_> {
        Emitter { substitutions: Some(&self.substitutions), ..Emitter::new(&mut self.f, span) }
    }

    fn shape(&mut self, shape: &Option<Shape>, span: Span) -> Result<Shape, LowerError> {
        self.emitter(span).substituted(shape.as_ref())
    }

    /// A size that must be a number to lower.
    fn size(&mut self, dim: &Dim, span: Span) -> Result<usize, LowerError> {
        self.emitter(span).size(dim)
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
            NodeKind::Call { call, args, params, .. } => {
                let operands = args.iter().map(|&a| self.get(id, a, values, prefix)).collect::<Result<Vec<_>, _>>()?;
                let mut emitter = Emitter {
                    f: &mut self.f,
                    span,
                    operands: &operands,
                    params: params.iter().map(|&param| (&instance.nodes[param], None)).collect(),
                    output: node.shape.as_ref(),
                    prefix,
                    instance: &instance.name,
                    training: self.how.training,
                    substitutions: Some(&self.substitutions),
                };
                call.lower(&mut emitter)
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

/// What a built-in's entry lowers with: its call's operands and parameters, and IR
/// primitives pushed at its place in the source, each checked by its shape rule.
pub struct Emitter<'f> {
    f: &'f mut Function,
    span: Span,
    operands: &'f [Value],
    /// The call's parameter nodes, each made an argument of the function when first used,
    /// so that values are numbered in the order the layer computes.
    params: Vec<(&'f Node, Option<Value>)>,
    /// The shape the check gave the call's result.
    output: Option<&'f Shape>,
    /// Comes before the names of parameters and masks (`2.`).
    prefix: &'f str,
    /// The instance the call is in, for messages.
    instance: &'f str,
    training: bool,
    substitutions: Option<&'f HashMap<String, Dim>>,
}

impl<'f> Emitter<'f> {
    /// Pushes into `f` at `span`, outside any call.
    pub(crate) fn new(f: &'f mut Function, span: Span) -> Emitter<'f> {
        Emitter {
            f,
            span,
            operands: &[],
            params: Vec::new(),
            output: None,
            prefix: "",
            instance: "",
            training: false,
            substitutions: None,
        }
    }

    /// Checks that `op` takes `args`, without pushing it.
    pub fn check(&self, op: Op, args: &[Value]) -> Result<(), LowerError> {
        let shapes: Vec<&Shape> = args.iter().map(|&a| &self.f.ty(a).shape).collect();
        op.shape(&shapes).map(|_| ()).map_err(|e| error(e, self.span))
    }

    /// Pushes `op` on `args`.
    pub fn op(&mut self, op: Op, args: &[Value]) -> Result<Value, LowerError> {
        self.check(op.clone(), args)?;
        Ok(self.f.push(op, args, self.span))
    }

    /// A number.
    pub fn constant(&mut self, value: f64) -> Result<Value, LowerError> {
        self.op(Op::Const(value), &[])
    }

    /// Operand `k` of the call: its input first.
    pub fn input(&self, k: usize) -> Result<Value, LowerError> {
        self.operands.get(k).copied().ok_or_else(|| {
            error(
                if k == 0 { "this call has no input".to_string() } else { format!("this call has no operand {k}") },
                self.span,
            )
        })
    }

    /// The input, whose height and width must be numbers: windows are lowered for one size.
    pub fn spatial_input(&self, name: &str) -> Result<Value, LowerError> {
        let x = self.input(0)?;
        if let Some(open) = self.shape(x).0.get(2..).filter(|hw| hw.iter().any(|d| !d.is_const())) {
            return Err(error(
                format!(
                    "`{name}` needs its input's height and width as numbers to be lowered, but they are {} and {} \
                     in `{}` as written; it is lowered where it is used with an input of known size",
                    open[0], open[1], self.instance
                ),
                self.span,
            ));
        }
        Ok(x)
    }

    /// Parameter `k` of the call (`weight`, then `bias`).
    pub fn param(&mut self, k: usize) -> Result<Value, LowerError> {
        let span = self.span;
        let (node, made) =
            *self.params.get(k).ok_or_else(|| error(format!("this layer has no parameter {k}"), span))?;
        if let Some(value) = made {
            return Ok(value);
        }
        let NodeKind::Param { name, init } = &node.kind else {
            return Err(error("this layer's parameter is not a parameter node", span));
        };
        let name = format!("{}{name}", self.prefix);
        let shape = self.substituted(node.shape.as_ref())?;
        let value = self.f.param(&name, Type::of(shape));
        if let Some(init) = init {
            self.f.param_inits.push((name, init.clone()));
        }
        self.params[k].1 = Some(value);
        Ok(value)
    }

    /// The shape of a value pushed so far.
    pub fn shape(&self, value: Value) -> &Shape {
        &self.f.ty(value).shape
    }

    /// The shape of the call's result, as the check computed it.
    pub fn output_shape(&self) -> Result<Shape, LowerError> {
        self.substituted(self.output)
    }

    fn substituted(&self, shape: Option<&Shape>) -> Result<Shape, LowerError> {
        let shape = shape.ok_or_else(|| error("the shape of this value is not known", self.span))?;
        Ok(Shape(shape.0.iter().map(|d| substitute(d, self.substitutions)).collect()))
    }

    /// A size that must be a number to lower: a window, a stride.
    pub fn size(&self, dim: &Dim) -> Result<usize, LowerError> {
        let dim = substitute(dim, self.substitutions);
        dim.as_const().filter(|&v| v >= 0).map(|v| v as usize).ok_or_else(|| {
            error(format!("this size is {dim}; it needs a value to be lowered (give one with `--arg`)"), self.span)
        })
    }

    pub fn pair(&self, (a, b): &(Dim, Dim)) -> Result<(usize, usize), LowerError> {
        Ok((self.size(a)?, self.size(b)?))
    }

    /// Whether this is a training step, in which dropout draws masks.
    pub fn training(&self) -> bool {
        self.training
    }

    /// A dropout mask shaped like `like`: an argument of the training step named
    /// `{prefix}{local}`, filled with probability `p` of dropping when the step runs.
    pub fn mask(&mut self, local: &str, like: Value, p: f64) -> Value {
        let shape = self.f.ty(like).shape.clone();
        let mask = self.f.param(&format!("{}{local}", self.prefix), Type::of(shape));
        self.f.dropout_masks.push((self.f.params.len() - 1, p));
        mask
    }
}

/// `dim` with the symbols given values (the batch) replaced.
fn substitute(dim: &Dim, substitutions: Option<&HashMap<String, Dim>>) -> Dim {
    match substitutions {
        Some(map) => dim.substitute(&|name| map.get(name).cloned()).unwrap_or_else(|_| dim.clone()),
        None => dim.clone(),
    }
}

/// Adds the targets `t` (the second argument) and the loss to a lowered model: a function
/// of the input, the targets and the parameters that returns the scalar loss.
pub fn with_loss(mut f: Function, loss: Loss) -> Result<Function, LowerError> {
    let y = f.results[0];
    let shape = f.ty(y).shape.clone();
    let span = f.span;
    let t = f.param("t", Type::of(loss.target_shape(&shape)));
    // The targets come right after the input, before the parameters.
    let moved = f.params.pop().expect("just added");
    f.params.insert(1, moved);
    for (index, _) in &mut f.dropout_masks {
        *index += 1;
    }
    let value = loss.lower(&mut Emitter::new(&mut f, span), y, t)?;
    f.name = format!("{}_{}", f.name, loss.name());
    f.results = vec![value];
    f.result_names = vec!["loss".to_string()];
    f.renumber();
    Ok(f)
}

//! Lowering: a checked `fn` (with the shapes of its arguments) to an IR function. Calls of
//! other functions are inlined, so the IR is the whole evaluation trace.

use super::ops::Op;
use super::{Function, LayerGroup, ParamInit, Tensor, Type, Value};
use crate::builtins::{self, Kind};
use crate::shapes::Dim;
use crate::shapes::Shape;
use nnc_grammar::{Arg, BinaryOp, Expr, ExprKind, File, FnDef, Item, ModelDef, Span, Stmt};
use std::collections::HashMap;

/// Why a function could not be lowered.
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

/// Lowers the function `def` of `file` for arguments of the given shapes. `constants` are
/// the values of the file's top-level `let`s.
pub fn lower_fn(
    file: &File,
    def: &FnDef,
    shapes: &[Shape],
    constants: &HashMap<String, Tensor>,
) -> Result<Function, LowerError> {
    if shapes.len() != def.params.len() {
        return Err(error(
            format!("`{}` takes {} arguments, not {}", def.name.name, def.params.len(), shapes.len()),
            def.span,
        ));
    }
    let mut f = Function::new(&def.name.name, def.span);
    let mut scope = HashMap::new();
    for (param, shape) in def.params.iter().zip(shapes) {
        let value = f.param(&param.name.name, Type::of(shape.clone()));
        scope.insert(param.name.name.clone(), value);
    }
    let fns = functions(file);
    let mut lowerer = Lowerer {
        f,
        fns,
        constants,
        depth: 0,
        models: HashMap::new(),
        dims: HashMap::new(),
        slot: Slot::default(),
        training: false,
    };
    let result = lowerer.expr(&def.body, &scope)?;
    Ok(lowerer.finish(result))
}

/// The file's functions by name, for calls to inline.
fn functions(file: &File) -> HashMap<&str, &FnDef> {
    file.items
        .iter()
        .filter_map(|item| match item {
            Item::Fn(def) => Some((def.name.name.as_str(), def)),
            _ => None,
        })
        .collect()
}

struct Lowerer<'a> {
    f: Function,
    fns: HashMap<&'a str, &'a FnDef>,
    constants: &'a HashMap<String, Tensor>,
    depth: usize,
    /// Models and layers of the file, for models used as layers.
    models: HashMap<&'a str, &'a ModelDef>,
    /// Model arguments and dimension symbols in scope.
    dims: HashMap<String, Dim>,
    /// How the parameters of the next layer with parameters are named (see `lower_model`).
    slot: Slot,
    /// Lowering a training step: dropout multiplies by a mask argument.
    training: bool,
}

/// The naming of parameters within one statement of a model body.
#[derive(Clone, Default)]
struct Slot {
    /// `"0"`, or `"2.1"` inside a model used as a layer.
    base: String,
    /// Whether the statement holds more than one layer with parameters.
    several: bool,
    /// How many layers with parameters of this statement have been named.
    count: usize,
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
        let shapes: Vec<&Shape> = args.iter().map(|&a| &self.f.ty(a).shape).collect();
        op.shape(&shapes).map_err(|e| error(e, span))?;
        Ok(self.f.push(op, args, span))
    }

    fn expr(&mut self, expr: &Expr, scope: &HashMap<String, Value>) -> Result<Value, LowerError> {
        let span = expr.span;
        match &expr.kind {
            ExprKind::Int(v) => self.push(Op::Const(*v as f64), &[], span),
            ExprKind::Float(v) => self.push(Op::Const(*v), &[], span),
            ExprKind::Paren(inner) => self.expr(inner, scope),
            ExprKind::Neg(inner) => {
                let x = self.expr(inner, scope)?;
                self.push(Op::Neg, &[x], span)
            }
            ExprKind::Transpose(inner) => {
                let x = self.expr(inner, scope)?;
                self.push(Op::Transpose, &[x], span)
            }
            ExprKind::Name(name) => {
                if let Some(&value) = scope.get(name) {
                    return Ok(value);
                }
                match self.constants.get(name) {
                    Some(tensor) => self.literal(tensor, span),
                    None => Err(error(format!("`{name}` has no value here"), span)),
                }
            }
            ExprKind::Array(_) => {
                let tensor = constant_array(expr).ok_or_else(|| error("arrays must hold numbers", span))?;
                self.literal(&tensor, span)
            }
            ExprKind::Binary { op: BinaryOp::Pipe, lhs, rhs } => {
                let input = self.expr(lhs, scope)?;
                let target = rhs.unparenthesized();
                let (name, args): (&str, &[nnc_grammar::Arg]) = match &target.kind {
                    ExprKind::Name(name) => (name, &[]),
                    ExprKind::Call { callee, args } => (&callee.name, args),
                    _ => return Err(error("the right of `|>` must be a function", rhs.span)),
                };
                self.call(name, Some(input), args, scope, span)
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let a = self.expr(lhs, scope)?;
                let b = self.expr(rhs, scope)?;
                let op = match op {
                    BinaryOp::Add => Op::Add,
                    BinaryOp::Sub => Op::Sub,
                    BinaryOp::Mul => Op::Mul,
                    BinaryOp::Div => Op::Div,
                    BinaryOp::Pow => Op::Pow,
                    BinaryOp::MatMul => Op::MatMul,
                    BinaryOp::Pipe => unreachable!("handled above"),
                };
                self.push(op, &[a, b], span)
            }
            ExprKind::Call { callee, args } => self.call(&callee.name, None, args, scope, span),
            ExprKind::Bool(_) | ExprKind::Str(_) | ExprKind::Tuple(_) | ExprKind::Error => {
                Err(error("this expression has no numeric value", span))
            }
        }
    }

    fn literal(&mut self, tensor: &Tensor, span: Span) -> Result<Value, LowerError> {
        if tensor.shape.is_empty() {
            return self.push(Op::Const(tensor.data[0]), &[], span);
        }
        self.push(Op::Literal { shape: tensor.shape.clone(), data: tensor.data.clone() }, &[], span)
    }

    /// A named argument's whole-number value, such as `axis = 1`.
    fn int_arg(args: &[nnc_grammar::Arg], name: &str) -> Option<i64> {
        let arg = args.iter().find(|a| a.name.as_ref().is_some_and(|n| n.name == name))?;
        match &arg.value.unparenthesized().kind {
            ExprKind::Int(v) => Some(*v as i64),
            ExprKind::Neg(inner) => match inner.kind {
                ExprKind::Int(v) => Some(-(v as i64)),
                _ => None,
            },
            _ => None,
        }
    }

    fn axis(
        &self,
        x: Value,
        args: &[nnc_grammar::Arg],
        default: Option<i64>,
        span: Span,
    ) -> Result<Option<usize>, LowerError> {
        let rank = self.f.ty(x).shape.rank() as i64;
        match Self::int_arg(args, "axis").or(default) {
            None => Ok(None),
            Some(axis) => {
                let index = if axis < 0 { axis + rank } else { axis };
                if index < 0 || index >= rank.max(1) {
                    return Err(error(format!("axis {axis} of a tensor with {rank} axes"), span));
                }
                Ok(Some(index as usize))
            }
        }
    }

    /// A call of a built-in or a user function; `input` is the value piped in, if any.
    fn call(
        &mut self,
        name: &str,
        input: Option<Value>,
        args: &[nnc_grammar::Arg],
        scope: &HashMap<String, Value>,
        span: Span,
    ) -> Result<Value, LowerError> {
        // A layer: its input flows in (piped, or the line before) or is its first argument.
        if self.is_layer(name) {
            let (input, settings) = match input {
                Some(input) => (input, args),
                None => match args.first() {
                    Some(first) if first.name.is_none() && mentions(&first.value, scope) => {
                        (self.expr(&first.value, scope)?, &args[1..])
                    }
                    // An activation called on anything is a function of it: `relu(2)`.
                    Some(first)
                        if first.name.is_none()
                            && !self.models.contains_key(name)
                            && builtins::lookup(name).is_some_and(|b| b.kind == Kind::Activation) =>
                    {
                        (self.expr(&first.value, scope)?, &args[1..])
                    }
                    _ => return Err(error(format!("`{name}` is used here without an input"), span)),
                },
            };
            return self.layer(name, input, settings, span);
        }
        let mut operands: Vec<Value> = input.into_iter().collect();
        for arg in args.iter().filter(|a| a.name.is_none()) {
            operands.push(self.expr(&arg.value, scope)?);
        }
        if let Some(&def) = self.fns.get(name) {
            if self.depth > 64 {
                return Err(error(format!("`{name}` calls itself too deeply to inline"), span));
            }
            // Positional operands fill the parameters that no named argument gives.
            let mut positional = operands.into_iter();
            let mut inner: HashMap<String, Value> = HashMap::new();
            for param in &def.params {
                let value = match args.iter().find(|a| a.name.as_ref().is_some_and(|n| n.name == param.name.name)) {
                    Some(arg) => self.expr(&arg.value, scope)?,
                    None => {
                        positional.next().ok_or_else(|| error(format!("`{name}` needs `{}`", param.name.name), span))?
                    }
                };
                inner.insert(param.name.name.clone(), value);
            }
            self.depth += 1;
            let result = self.expr(&def.body, &inner);
            self.depth -= 1;
            return result;
        }
        let unary = |op: Op| -> Option<Op> { Some(op) };
        let simple = match name {
            "ln" => unary(Op::Ln),
            "exp" => unary(Op::Exp),
            "sqrt" => unary(Op::Sqrt),
            "sin" => unary(Op::Sin),
            "cos" => unary(Op::Cos),
            "tan" => unary(Op::Tan),
            "tanh" => unary(Op::Tanh),
            "sigmoid" => unary(Op::Sigmoid),
            "relu" => unary(Op::Relu),
            "abs" => unary(Op::Abs),
            "transpose" => unary(Op::Transpose),
            "mse" => unary(Op::Mse),
            "cross_entropy" => unary(Op::SoftmaxCrossEntropy),
            _ => None,
        };
        let Some(&x) = operands.first() else {
            return Err(error(format!("`{name}` needs an input"), span));
        };
        if let Some(op) = simple {
            return self.push(op, &operands, span);
        }
        match name {
            "sum" => {
                let axis = self.axis(x, args, None, span)?;
                self.push(Op::Sum { axis }, &[x], span)
            }
            "mean" => {
                let axis = self.axis(x, args, None, span)?;
                self.push(Op::Mean { axis }, &[x], span)
            }
            "max" | "min" if operands.len() == 2 => {
                self.push(if name == "max" { Op::Max } else { Op::Min }, &operands, span)
            }
            "max" => {
                let axis = self.axis(x, args, None, span)?;
                self.push(Op::ReduceMax { axis }, &[x], span)
            }
            "min" => {
                // min(x) = -max(-x)
                let axis = self.axis(x, args, None, span)?;
                let negated = self.push(Op::Neg, &[x], span)?;
                let top = self.push(Op::ReduceMax { axis }, &[negated], span)?;
                self.push(Op::Neg, &[top], span)
            }
            "softmax" | "log_softmax" => {
                let axis = self.axis(x, args, Some(-1), span)?.unwrap_or(0);
                self.push(if name == "softmax" { Op::Softmax { axis } } else { Op::LogSoftmax { axis } }, &[x], span)
            }
            "bce" if operands.len() == 2 => {
                // -mean(t ln y + (1 - t) ln(1 - y))
                let (y, t) = (operands[0], operands[1]);
                let one = self.push(Op::Const(1.0), &[], span)?;
                let ln_y = self.push(Op::Ln, &[y], span)?;
                let a = self.push(Op::Mul, &[t, ln_y], span)?;
                let one_t = self.push(Op::Sub, &[one, t], span)?;
                let one_y = self.push(Op::Sub, &[one, y], span)?;
                let ln_1y = self.push(Op::Ln, &[one_y], span)?;
                let b = self.push(Op::Mul, &[one_t, ln_1y], span)?;
                let total = self.push(Op::Add, &[a, b], span)?;
                let mean = self.push(Op::Mean { axis: None }, &[total], span)?;
                self.push(Op::Neg, &[mean], span)
            }
            "conv" if operands.len() == 2 => {
                let (mut x, mut w) = (operands[0], operands[1]);
                let stride = Self::int_arg(args, "stride").unwrap_or(1).max(1) as usize;
                let pad = Self::int_arg(args, "pad").unwrap_or(0).max(0) as usize;
                // A single image and filter, [H, W] and [kh, kw], as one batch of one channel.
                let flat = self.f.ty(x).shape.rank() == 2;
                if flat {
                    let as4 =
                        |shape: &Shape| Shape([vec![crate::shapes::Dim::constant(1); 2], shape.0.clone()].concat());
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
            _ => Err(error(format!("`{name}` cannot be evaluated in a function yet"), span)),
        }
    }
}

/// Whether an expression mentions a tensor in scope, so that it is a layer's input.
fn mentions(expr: &Expr, scope: &HashMap<String, Value>) -> bool {
    let mut found = false;
    expr.walk(&mut |e| {
        if let ExprKind::Name(name) = &e.kind
            && scope.contains_key(name)
        {
            found = true;
        }
    });
    found
}

/// The tensor of an array literal of numbers, if it is one.
pub(crate) fn constant_array(expr: &Expr) -> Option<Tensor> {
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

/// Lowers the model `def` to a function of its input and its parameters that returns its
/// output. `args` gives values to model arguments (the rest take their defaults or stay
/// symbols); `batch` replaces the batch dimension by a number.
///
/// Parameters are named as PyTorch's `state_dict` names them for `nn.Sequential`: each
/// statement of the body after `input` has an index, counting layers without parameters
/// too, and a layer's parameters are `{index}.weight` and `{index}.bias`. A statement with
/// several layers with parameters names them `{index}.{k}`; a model used as a layer
/// prefixes the names inside it with its index (`0.2.weight`); a `param w` is `w`.
pub fn lower_model(
    file: &File,
    def: &ModelDef,
    args: &HashMap<String, Dim>,
    batch: Option<usize>,
) -> Result<Function, LowerError> {
    lower_model_for(file, def, args, batch, false)
}

/// `lower_model` for inference (`training = false`) or for a training step, where each
/// dropout multiplies by a mask argument named `{index}.mask`.
fn lower_model_for(
    file: &File,
    def: &ModelDef,
    args: &HashMap<String, Dim>,
    batch: Option<usize>,
    training: bool,
) -> Result<Function, LowerError> {
    let fns = functions(file);
    let models: HashMap<&str, &ModelDef> = file
        .items
        .iter()
        .filter_map(|item| match item {
            Item::Model(def) => Some((def.name.name.as_str(), def)),
            _ => None,
        })
        .collect();
    let constants = HashMap::new();
    let mut lowerer = Lowerer {
        f: Function::new(&def.name.name, def.span),
        fns,
        constants: &constants,
        depth: 0,
        models,
        dims: HashMap::new(),
        slot: Slot::default(),
        training,
    };
    let output = lowerer.model_body(def, args, None, "", batch)?;
    Ok(lowerer.finish(output))
}

impl Lowerer<'_> {
    fn is_layer(&self, name: &str) -> bool {
        self.models.contains_key(name)
            || builtins::lookup(name)
                .is_some_and(|b| b.kind == Kind::Layer || (b.kind == Kind::Activation && !self.fns.contains_key(name)))
    }

    /// A whole-number expression over the model arguments in scope.
    fn dim(&self, expr: &Expr) -> Option<Dim> {
        match &expr.kind {
            ExprKind::Int(v) => Some(Dim::constant(*v as i128)),
            ExprKind::Name(name) => self.dims.get(name).cloned(),
            ExprKind::Paren(inner) => self.dim(inner),
            ExprKind::Neg(inner) => Some(self.dim(inner)?.checked_neg()),
            ExprKind::Binary { op, lhs, rhs } => {
                let (a, b) = (self.dim(lhs)?, self.dim(rhs)?);
                match op {
                    BinaryOp::Add => a.checked_add(&b).ok(),
                    BinaryOp::Sub => a.checked_sub(&b).ok(),
                    BinaryOp::Mul => a.checked_mul(&b).ok(),
                    BinaryOp::Div => a.floor_div(&b),
                    BinaryOp::Pow => (0..b.as_const()?).try_fold(Dim::constant(1), |acc, _| acc.checked_mul(&a).ok()),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn usize_of(&self, expr: &Expr, span: Span) -> Result<usize, LowerError> {
        self.dim(expr)
            .and_then(|d| d.as_const())
            .filter(|&v| v >= 0)
            .map(|v| v as usize)
            .ok_or_else(|| error("this size must be a known whole number to lower the layer", span))
    }

    fn pair_of(&self, expr: &Expr, span: Span) -> Result<(usize, usize), LowerError> {
        match &expr.unparenthesized().kind {
            ExprKind::Tuple(items) if items.len() == 2 => {
                Ok((self.usize_of(&items[0], span)?, self.usize_of(&items[1], span)?))
            }
            _ => {
                let v = self.usize_of(expr, span)?;
                Ok((v, v))
            }
        }
    }

    /// A real-number expression: literals and arithmetic on them.
    fn real(expr: &Expr) -> Option<f64> {
        match &expr.unparenthesized().kind {
            ExprKind::Int(v) => Some(*v as f64),
            ExprKind::Float(v) => Some(*v),
            ExprKind::Neg(inner) => Self::real(inner).map(|v| -v),
            ExprKind::Binary { op, lhs, rhs } => {
                let (a, b) = (Self::real(lhs)?, Self::real(rhs)?);
                match op {
                    BinaryOp::Add => Some(a + b),
                    BinaryOp::Sub => Some(a - b),
                    BinaryOp::Mul => Some(a * b),
                    BinaryOp::Div => Some(a / b),
                    BinaryOp::Pow => Some(a.powf(b)),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The initialiser written after a `param`'s `=`.
    fn param_init(&self, expr: &Expr) -> Option<ParamInit> {
        let (name, args): (&str, &[Arg]) = match &expr.unparenthesized().kind {
            ExprKind::Name(name) => (name, &[]),
            ExprKind::Call { callee, args } => (&callee.name, args),
            _ => return None,
        };
        let arg = |position: usize, key: &str, default: f64| {
            args.iter()
                .find(|a| a.name.as_ref().is_some_and(|n| n.name == key))
                .or_else(|| args.iter().filter(|a| a.name.is_none()).nth(position))
                .and_then(|a| Self::real(&a.value))
                .unwrap_or(default)
        };
        Some(match name {
            "zeros" => ParamInit::Zeros,
            "ones" => ParamInit::Ones,
            "normal" => ParamInit::Normal { mean: arg(0, "mean", 0.0), std: arg(1, "std", 1.0) },
            "uniform" => ParamInit::Uniform { low: arg(0, "low", -1.0), high: arg(1, "high", 1.0) },
            "xavier_uniform" => ParamInit::XavierUniform,
            "kaiming_uniform" => ParamInit::KaimingUniform,
            _ => return None,
        })
    }

    /// The name of the next layer with parameters.
    fn next_slot(&mut self) -> String {
        let name =
            if self.slot.several { format!("{}.{}", self.slot.base, self.slot.count) } else { self.slot.base.clone() };
        self.slot.count += 1;
        name
    }

    fn parameter(&mut self, name: String, shape: Vec<Dim>) -> Value {
        self.f.param(&name, Type::of(Shape(shape)))
    }

    /// Applies the layer `name` with `settings` to `input`.
    fn layer(&mut self, name: &str, input: Value, settings: &[Arg], span: Span) -> Result<Value, LowerError> {
        if let Some(&def) = self.models.get(name) {
            return self.model_as_layer(def, input, settings, span);
        }
        let builtin = builtins::lookup(name).expect("checked by is_layer");
        let bound = builtins::bind_args(builtin, builtin.params, settings);
        let get = |param: &str| bound.iter().find(|(p, _)| p.name == param).map(|(_, e)| *e);
        let shape = self.f.ty(input).shape.clone();
        match name {
            "linear" => {
                let out = get("out_features")
                    .and_then(|e| self.dim(e))
                    .ok_or_else(|| error("`linear` needs its size", span))?;
                let features = shape.0.last().cloned().ok_or_else(|| error("`linear` of a scalar", span))?;
                let slot = self.next_slot();
                let weight = self.parameter(format!("{slot}.weight"), vec![out.clone(), features]);
                let wt = self.push(Op::Transpose, &[weight], span)?;
                let mut y = self.push(Op::MatMul, &[input, wt], span)?;
                let bias = !matches!(get("bias").map(|e| &e.unparenthesized().kind), Some(ExprKind::Bool(false)));
                if bias {
                    let b = self.parameter(format!("{slot}.bias"), vec![out]);
                    y = self.push(Op::Add, &[y, b], span)?;
                }
                Ok(y)
            }
            "conv2d" => {
                let out = get("out_channels")
                    .and_then(|e| self.dim(e))
                    .ok_or_else(|| error("`conv2d` needs its channels", span))?;
                let kernel =
                    self.pair_of(get("kernel").ok_or_else(|| error("`conv2d` needs its kernel", span))?, span)?;
                let stride = get("stride").map(|e| self.pair_of(e, span)).transpose()?.unwrap_or((1, 1));
                let pad = get("pad").map(|e| self.pair_of(e, span)).transpose()?.unwrap_or((0, 0));
                let channels = shape.0.get(1).cloned().ok_or_else(|| error("`conv2d` needs [N, C, H, W]", span))?;
                let slot = self.next_slot();
                let k = |v: usize| Dim::constant(v as i128);
                let weight =
                    self.parameter(format!("{slot}.weight"), vec![out.clone(), channels, k(kernel.0), k(kernel.1)]);
                let mut y = self.push(Op::Conv2d { stride, pad }, &[input, weight], span)?;
                let bias = !matches!(get("bias").map(|e| &e.unparenthesized().kind), Some(ExprKind::Bool(false)));
                if bias {
                    let b = self.parameter(format!("{slot}.bias"), vec![out.clone()]);
                    let column = self.push(Op::Reshape(Shape(vec![out, k(1), k(1)])), &[b], span)?;
                    y = self.push(Op::Add, &[y, column], span)?;
                }
                Ok(y)
            }
            "maxpool" | "avgpool" => {
                let kernel =
                    self.pair_of(get("kernel").ok_or_else(|| error("pooling needs its window", span))?, span)?;
                let stride = get("stride").map(|e| self.pair_of(e, span)).transpose()?.unwrap_or(kernel);
                let op =
                    if name == "maxpool" { Op::MaxPool2d { kernel, stride } } else { Op::AvgPool2d { kernel, stride } };
                self.push(op, &[input], span)
            }
            "flatten" => {
                let rest = shape.0[1..]
                    .iter()
                    .try_fold(Dim::constant(1), |acc, d| acc.checked_mul(d).ok())
                    .unwrap_or_default();
                self.push(Op::Reshape(Shape(vec![shape.0[0].clone(), rest])), &[input], span)
            }
            "reshape" => {
                let mut dims: Vec<Dim> = settings.iter().map(|a| self.dim(&a.value).unwrap_or_default()).collect();
                if let Some(at) = dims.iter().position(|d| d.as_const() == Some(-1)) {
                    let total = shape.0[1..]
                        .iter()
                        .try_fold(Dim::constant(1), |acc, d| acc.checked_mul(d).ok())
                        .unwrap_or_default();
                    let known = dims
                        .iter()
                        .filter(|d| d.as_const() != Some(-1))
                        .try_fold(Dim::constant(1), |acc, d| acc.checked_mul(d).ok())
                        .unwrap_or_default();
                    dims[at] = total.floor_div(&known).unwrap_or_default();
                }
                let mut all = vec![shape.0[0].clone()];
                all.extend(dims);
                self.push(Op::Reshape(Shape(all)), &[input], span)
            }
            // Dropout changes nothing at inference; a training step multiplies by a mask.
            "dropout" => {
                let p = get("p").map_or(Some(0.5), |e| match &e.unparenthesized().kind {
                    ExprKind::Float(v) => Some(*v),
                    ExprKind::Int(v) => Some(*v as f64),
                    _ => None,
                });
                match p {
                    Some(p) if self.training && p > 0.0 => {
                        let mask = self.f.param(&format!("{}.mask", self.slot.base), Type::of(shape));
                        self.f.dropout_masks.push((self.f.params.len() - 1, p));
                        self.push(Op::Mul, &[input, mask], span)
                    }
                    _ => Ok(input),
                }
            }
            "relu" => self.push(Op::Relu, &[input], span),
            "sigmoid" => self.push(Op::Sigmoid, &[input], span),
            "tanh" => self.push(Op::Tanh, &[input], span),
            "softmax" | "log_softmax" => {
                let rank = shape.rank() as i64;
                let axis = Self::int_arg(settings, "axis")
                    .or_else(|| {
                        settings
                            .first()
                            .filter(|a| a.name.is_none())
                            .and_then(|a| self.dim(&a.value))
                            .and_then(|d| d.as_const())
                            .map(|v| v as i64)
                    })
                    .unwrap_or(-1);
                let axis = if axis < 0 { axis + rank } else { axis } as usize;
                self.push(
                    if name == "softmax" { Op::Softmax { axis } } else { Op::LogSoftmax { axis } },
                    &[input],
                    span,
                )
            }
            _ => Err(error(format!("the layer `{name}` cannot be lowered yet"), span)),
        }
    }

    fn model_as_layer(
        &mut self,
        def: &ModelDef,
        input: Value,
        settings: &[Arg],
        span: Span,
    ) -> Result<Value, LowerError> {
        if self.depth > 32 {
            return Err(error(format!("`{}` is nested too deeply", def.name.name), span));
        }
        // Argument values, in the caller's scope.
        let mut values = HashMap::new();
        let mut positional = def.params.iter();
        for arg in settings {
            let param = match &arg.name {
                Some(name) => def.params.iter().find(|p| p.name.name == name.name),
                None => positional.next(),
            };
            if let (Some(param), Some(value)) = (param, self.dim(&arg.value)) {
                values.insert(param.name.name.clone(), value);
            }
        }
        let prefix = format!("{}.", self.next_slot());
        let (saved_dims, saved_slot) = (std::mem::take(&mut self.dims), std::mem::take(&mut self.slot));
        self.depth += 1;
        let result = self.model_body(def, &values, Some(input), &prefix, None);
        self.depth -= 1;
        self.dims = saved_dims;
        self.slot = saved_slot;
        result
    }

    /// The statements of a model body; `input` is the value flowing in when it is used as a
    /// layer, otherwise the function takes its input as an argument.
    fn model_body(
        &mut self,
        def: &ModelDef,
        args: &HashMap<String, Dim>,
        input: Option<Value>,
        prefix: &str,
        batch: Option<usize>,
    ) -> Result<Value, LowerError> {
        for param in &def.params {
            let value = match args.get(&param.name.name) {
                Some(v) => v.clone(),
                None => {
                    param.default.as_ref().and_then(|d| self.dim(d)).unwrap_or_else(|| Dim::symbol(&param.name.name))
                }
            };
            self.dims.insert(param.name.name.clone(), value);
        }
        // Values given for other names bind the size symbols of the input statement, such as
        // `in` of `input x: [B, in]`, for a model lowered on its own rather than as a layer.
        if input.is_none() {
            for (name, value) in args {
                self.dims.entry(name.clone()).or_insert_with(|| value.clone());
            }
        }
        let mut scope: HashMap<String, Value> = HashMap::new();
        let mut current = input;
        let mut index = 0;
        for stmt in &def.body {
            // The values this statement creates start here (see `LayerGroup`).
            let first = self.f.values.len() as u32;
            match stmt {
                Stmt::Input(input_stmt) => {
                    let mut dims = Vec::new();
                    for (i, d) in input_stmt.shape.dims.iter().enumerate() {
                        let value = match (&d.kind, self.dim(d)) {
                            (_, Some(v)) => v,
                            (ExprKind::Name(name), None) => {
                                // A dimension symbol: bound by the value flowing in, or the batch.
                                let bound = match current {
                                    Some(v) => {
                                        self.f.ty(v).shape.0.get(i).cloned().unwrap_or_else(|| Dim::symbol(name))
                                    }
                                    None if i == 0 => {
                                        batch.map_or_else(|| Dim::symbol(name), |b| Dim::constant(b as i128))
                                    }
                                    None => Dim::symbol(name),
                                };
                                self.dims.insert(name.clone(), bound.clone());
                                bound
                            }
                            _ => return Err(error("this dimension cannot be computed", d.span)),
                        };
                        dims.push(value);
                    }
                    let value = match current {
                        Some(v) => v,
                        None => self.f.param("x", Type::of(Shape(dims))),
                    };
                    if let Some(name) = &input_stmt.name {
                        scope.insert(name.name.clone(), value);
                    }
                    current = Some(value);
                }
                Stmt::Param(param) => {
                    let dims: Vec<Dim> = param.shape.dims.iter().map(|d| self.dim(d).unwrap_or_default()).collect();
                    let name = format!("{prefix}{}", param.name.name);
                    let value = self.f.param(&name, Type::of(Shape(dims)));
                    if let Some(init) = param.init.as_ref().and_then(|e| self.param_init(e)) {
                        self.f.param_inits.push((name, init));
                    }
                    scope.insert(param.name.name.clone(), value);
                }
                Stmt::Let(let_stmt) => {
                    self.begin_statement(prefix, index, &let_stmt.value);
                    index += 1;
                    let value = self.expr(&let_stmt.value, &scope)?;
                    scope.insert(let_stmt.name.name.clone(), value);
                }
                Stmt::Expr(expr) => {
                    self.begin_statement(prefix, index, expr);
                    index += 1;
                    let inner = expr.unparenthesized();
                    let layer_line = match &inner.kind {
                        ExprKind::Name(name) if !scope.contains_key(name) => Some((name.as_str(), &[][..])),
                        ExprKind::Call { callee, args }
                            if !args.first().is_some_and(|a| a.name.is_none() && mentions(&a.value, &scope)) =>
                        {
                            Some((callee.name.as_str(), args.as_slice()))
                        }
                        _ => None,
                    };
                    current = Some(match (layer_line, current) {
                        (Some((name, args)), Some(flowing))
                            if self.is_layer(name)
                                || self.fns.contains_key(name)
                                || builtins::lookup(name).is_some() =>
                        {
                            if self.is_layer(name) {
                                self.layer(name, flowing, args, expr.span)?
                            } else {
                                self.call(name, Some(flowing), args, &scope, expr.span)?
                            }
                        }
                        _ => self.expr(expr, &scope)?,
                    });
                }
                Stmt::Error(span) => return Err(error("this statement has errors", *span)),
            }
            // Only the model being lowered records its statements: a model used as a layer
            // is one statement of its caller, and its values fall in that statement's range.
            if self.depth == 0 && matches!(stmt, Stmt::Let(_) | Stmt::Expr(_)) {
                let values = first..self.f.values.len() as u32;
                self.f.layers.push(LayerGroup { span: stmt.span(), values });
            }
        }
        current.ok_or_else(|| error(format!("`{}` has no input", def.name.name), def.name.span))
    }

    /// Starts naming the parameters of statement `index` of a body.
    fn begin_statement(&mut self, prefix: &str, index: usize, expr: &Expr) {
        let mut with_params = 0;
        expr.walk(&mut |e| {
            let name = match &e.kind {
                ExprKind::Name(name) => name.as_str(),
                ExprKind::Call { callee, .. } => callee.name.as_str(),
                _ => return,
            };
            if self.models.contains_key(name) || builtins::lookup(name).is_some_and(|b| b.kind == Kind::Layer) {
                with_params += 1;
            }
        });
        self.slot = Slot { base: format!("{prefix}{index}"), several: with_params > 1, count: 0 };
    }
}

/// Lowers a model with its loss: a function of the input `x`, the targets `t` and the
/// parameters that returns the scalar loss, as a training step differentiates it.
/// `cross_entropy` takes integer class labels `[B]`; `mse` and `bce` take targets of the
/// output's shape.
pub fn lower_training_loss(
    file: &File,
    def: &ModelDef,
    args: &HashMap<String, Dim>,
    loss: &str,
    batch: Option<usize>,
) -> Result<Function, LowerError> {
    loss_of(lower_model_for(file, def, args, batch, true)?, def, loss)
}

/// Lowers a model with its loss for inference (no dropout): see `lower_training_loss`.
pub fn lower_loss(
    file: &File,
    def: &ModelDef,
    args: &HashMap<String, Dim>,
    loss: &str,
    batch: Option<usize>,
) -> Result<Function, LowerError> {
    loss_of(lower_model(file, def, args, batch)?, def, loss)
}

/// Lowers a model with its loss for measuring (no dropout): the results are the loss and
/// the model's output, computed by one forward pass.
pub fn lower_loss_and_output(
    file: &File,
    def: &ModelDef,
    args: &HashMap<String, Dim>,
    loss: &str,
    batch: Option<usize>,
) -> Result<Function, LowerError> {
    let model = lower_model(file, def, args, batch)?;
    let output = model.results[0];
    let mut f = loss_of(model, def, loss)?;
    f.results.push(output);
    f.result_names.push("y".to_string());
    Ok(f)
}

/// Adds the targets `t` (the second argument) and the loss to a lowered model.
fn loss_of(mut f: Function, def: &ModelDef, loss: &str) -> Result<Function, LowerError> {
    let y = f.results[0];
    let shape = f.ty(y).shape.clone();
    let span = def.span;
    let target_shape =
        if loss == "cross_entropy" { Shape(shape.0.first().cloned().into_iter().collect()) } else { shape };
    let t = f.param("t", Type::of(target_shape));
    // The targets come right after the input, before the parameters.
    let moved = f.params.pop().expect("just added");
    f.params.insert(1, moved);
    for (index, _) in &mut f.dropout_masks {
        *index += 1;
    }
    let value = match loss {
        "cross_entropy" => f.push(Op::SoftmaxCrossEntropy, &[y, t], span),
        "mse" => f.push(Op::Mse, &[y, t], span),
        "bce" => {
            let one = f.push(Op::Const(1.0), &[], span);
            let ln_y = f.push(Op::Ln, &[y], span);
            let a = f.push(Op::Mul, &[t, ln_y], span);
            let one_t = f.push(Op::Sub, &[one, t], span);
            let one_y = f.push(Op::Sub, &[one, y], span);
            let ln_1y = f.push(Op::Ln, &[one_y], span);
            let b = f.push(Op::Mul, &[one_t, ln_1y], span);
            let total = f.push(Op::Add, &[a, b], span);
            let mean = f.push(Op::Mean { axis: None }, &[total], span);
            f.push(Op::Neg, &[mean], span)
        }
        other => return Err(error(format!("`{other}` is not a loss"), span)),
    };
    f.name = format!("{}_{loss}", def.name.name);
    f.results = vec![value];
    f.result_names = vec!["loss".to_string()];
    f.renumber();
    Ok(f)
}

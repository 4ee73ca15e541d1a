//! Lowering: a checked `fn` (with the shapes of its arguments) to an IR function. Calls of
//! other functions are inlined, so the IR is the whole evaluation trace.

use super::ops::Op;
use super::{Function, Tensor, Type, Value};
use crate::shapes::Shape;
use nnc_grammar::{BinaryOp, Expr, ExprKind, File, FnDef, Item, Span};
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
    let fns: HashMap<&str, &FnDef> = file
        .items
        .iter()
        .filter_map(|item| match item {
            Item::Fn(def) => Some((def.name.name.as_str(), def)),
            _ => None,
        })
        .collect();
    let mut lowerer = Lowerer { f, fns, constants, depth: 0 };
    let result = lowerer.expr(&def.body, &scope)?;
    let mut f = lowerer.f;
    f.results = vec![result];
    f.result_names = vec!["y".to_string()];
    f.schedule_by_depth();
    f.renumber();
    Ok(f)
}

struct Lowerer<'a> {
    f: Function,
    fns: HashMap<&'a str, &'a FnDef>,
    constants: &'a HashMap<String, Tensor>,
    depth: usize,
}

impl Lowerer<'_> {
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
        let mut operands: Vec<Value> = input.into_iter().collect();
        for arg in args.iter().filter(|a| a.name.is_none()) {
            operands.push(self.expr(&arg.value, scope)?);
        }
        if let Some(&def) = self.fns.get(name) {
            if self.depth > 64 {
                return Err(error(format!("`{name}` calls itself too deeply to inline"), span));
            }
            if operands.len() != def.params.len() {
                return Err(error(format!("`{name}` takes {} arguments", def.params.len()), span));
            }
            let inner: HashMap<String, Value> = def.params.iter().map(|p| p.name.name.clone()).zip(operands).collect();
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

//! The walk over expressions: the shape and the node of every value, with the shape rules
//! of the operators (`+` broadcasting, `@`, `^T`) and of the built-in functions of tensors.

use super::dim::Dim;
use super::infer::{Engine, Frame, Value};
use super::rules::{Applied, Site, broadcast};
use super::{Shape, ShapeFact};
use crate::builtins::math::transpose;
use crate::builtins::{self, Kind};
use crate::checked::{Binary, NodeKind};
use crate::ir::Tensor;
use nnc_grammar::{Arg, BinaryOp, Code, Diagnostic, Expr, ExprKind, Span};

impl Engine<'_> {
    /// An expression's value, with the parameters and mult-adds of the layers inside it.
    pub(super) fn expr_with_costs(&mut self, expr: &Expr, frame: &mut Frame) -> (Value, Applied) {
        let mut costs = Applied::default();
        let value = self.expr_costed(expr, frame, &mut costs);
        (value, costs)
    }

    pub(super) fn expr(&mut self, expr: &Expr, frame: &mut Frame) -> Value {
        let mut costs = Applied::default();
        self.expr_costed(expr, frame, &mut costs)
    }

    pub(super) fn expr_costed(&mut self, expr: &Expr, frame: &mut Frame, costs: &mut Applied) -> Value {
        let value = self.expr_inner(expr, frame, costs);
        if frame.record
            && let Some(shape) = &value.shape
        {
            frame.facts.push(ShapeFact { span: expr.span, shape: shape.clone() });
        }
        value
    }

    pub(super) fn add_costs(costs: &mut Applied, applied: &Applied) {
        costs.weights = costs.weights.checked_add(&applied.weights).unwrap_or_default();
        costs.biases = costs.biases.checked_add(&applied.biases).unwrap_or_default();
        costs.mult_adds = costs.mult_adds.checked_add(&applied.mult_adds).unwrap_or_default();
        costs.formulas.extend(applied.formulas.iter().cloned());
    }

    pub(super) fn expr_inner(&mut self, expr: &Expr, frame: &mut Frame, costs: &mut Applied) -> Value {
        let span = expr.span;
        match &expr.kind {
            ExprKind::Int(v) => Self::with_node(frame, Value::scalar(), NodeKind::Number(*v as f64), span),
            ExprKind::Float(v) => Self::with_node(frame, Value::scalar(), NodeKind::Number(*v), span),
            ExprKind::Error => Value::unknown(),
            ExprKind::Bool(_) | ExprKind::Str(_) | ExprKind::Tuple(_) => {
                let what = match &expr.kind {
                    ExprKind::Bool(_) => "`true` and `false` are settings",
                    ExprKind::Str(_) => "text is a setting",
                    _ => "a tuple is a setting, such as a kernel size `(3, 5)`",
                };
                frame.error(
                    Diagnostic::new(
                        Code::WrongValue,
                        format!("{what}, not a value to compute with"),
                        span,
                        "not a number or tensor",
                    )
                    .with_help(
                        "values are numbers, arrays and tensors; to return several values, define a function for each",
                    ),
                );
                Value::unknown()
            }
            ExprKind::Name(name) => match frame.tensors.get(name) {
                Some(value) => match value.constant {
                    Some(instance) => {
                        let kind = NodeKind::Use { instance, args: Vec::new(), prefix: String::new() };
                        let value = value.clone();
                        if self.out.checked.get(instance).output.is_some() {
                            Self::with_node(frame, value, kind, span)
                        } else {
                            Value { node: None, constant: None, ..value }
                        }
                    }
                    None => value.clone(),
                },
                None => match frame.dims.get(name) {
                    Some(dim) => Self::with_node(frame, Value::scalar(), NodeKind::Size(dim.clone()), span),
                    None => Value::unknown(),
                },
            },
            ExprKind::Paren(inner) => self.expr_costed(inner, frame, costs),
            ExprKind::Neg(inner) => {
                let x = self.expr_costed(inner, frame, costs);
                Self::node_over(frame, x.clone(), &[&x], |n| NodeKind::Neg(n[0]), span)
            }
            ExprKind::Transpose(inner) => {
                let x = self.expr_costed(inner, frame, costs);
                Self::node_over(frame, transpose(&x), &[&x], |n| NodeKind::Transpose(n[0]), span)
            }
            ExprKind::Array(items) => {
                let value = self.array(expr, items, frame);
                match (&value.shape, constant_array(expr)) {
                    (Some(_), Some(tensor)) => Self::with_node(frame, value, NodeKind::Literal(tensor), span),
                    (Some(_), None) => {
                        frame.error(
                            Diagnostic::new(
                                Code::WrongValue,
                                "an array holds numbers written out, such as `[1, -2.5]`",
                                span,
                                "this array holds more than numbers",
                            )
                            .with_help(
                                "compute with the array instead: `[1, 2] * x`, or give each number its own `let`",
                            ),
                        );
                        Value::unknown()
                    }
                    (None, _) => value,
                }
            }
            ExprKind::Binary { op: BinaryOp::Pipe, lhs, rhs } => {
                let input = self.expr_costed(lhs, frame, costs);
                let target = rhs.unparenthesized();
                let Some((name, args)) = target.call_parts() else {
                    return Value::unknown();
                };
                let applied = self.apply(name, args, &input, target.span, frame);
                Self::add_costs(costs, &applied);
                applied.value
            }
            ExprKind::Binary { op, lhs, rhs } => self.binary(*op, expr, lhs, rhs, frame, costs),
            ExprKind::Call { callee, args } => self.call(&callee.name, args, span, frame, costs),
        }
    }

    pub(super) fn binary(
        &mut self,
        op: BinaryOp,
        expr: &Expr,
        lhs: &Expr,
        rhs: &Expr,
        frame: &mut Frame,
        costs: &mut Applied,
    ) -> Value {
        let a = self.expr_costed(lhs, frame, costs);
        let b = self.expr_costed(rhs, frame, costs);
        let label = self.label(expr.span);
        let site = Site { span: expr.span, label: &label, batch: frame.batch.as_deref() };
        let mut result = if op == BinaryOp::MatMul {
            matmul(&site, &a, &b, lhs.span, rhs.span)
        } else {
            broadcast(&site, &a, &b, op.symbol(), lhs.span, rhs.span)
        };
        // `x @ w^T` that does not fit: the transpose, not a missing one, is the problem.
        if let (Err(diagnostic), ExprKind::Transpose(_)) = (&mut result, &rhs.unparenthesized().kind)
            && diagnostic.help.as_deref().is_some_and(|h| h.starts_with("transpose the right side"))
        {
            diagnostic.help = Some(
                "the right side is transposed by `^T`; without it the product fits, or declare it with its dimensions swapped"
                    .to_string(),
            );
        }
        let op = match op {
            BinaryOp::Add => Binary::Add,
            BinaryOp::Sub => Binary::Sub,
            BinaryOp::Mul => Binary::Mul,
            BinaryOp::Div => Binary::Div,
            BinaryOp::Pow => Binary::Pow,
            BinaryOp::MatMul => Binary::MatMul,
            BinaryOp::Pipe => unreachable!("a pipe is an application"),
        };
        match result {
            Ok(applied) => {
                Self::add_costs(costs, &applied);
                Self::node_over(frame, applied.value, &[&a, &b], |n| NodeKind::Binary(op, n[0], n[1]), expr.span)
            }
            Err(diagnostic) => {
                frame.error(diagnostic);
                Value::unknown()
            }
        }
    }

    /// A call: of a user function, of a layer with its input as the first argument, or of a
    /// built-in function.
    pub(super) fn call(
        &mut self,
        name: &str,
        args: &[Arg],
        span: Span,
        frame: &mut Frame,
        costs: &mut Applied,
    ) -> Value {
        if let Some(&def) = self.fns.get(name) {
            // Arguments in the function's order: by name, or else by position.
            let mut positional = args.iter().filter(|a| a.name.is_none());
            let mut values = Vec::with_capacity(def.params.len());
            for param in &def.params {
                let arg = args
                    .iter()
                    .find(|a| a.name.as_ref().is_some_and(|n| n.name == param.name.name))
                    .or_else(|| positional.next());
                match arg {
                    Some(arg) => values.push(self.expr_costed(&arg.value, frame, costs)),
                    // Name resolution reports the missing argument.
                    None => return Value::unknown(),
                }
            }
            return self.call_fn(def, &values, span, frame);
        }
        // A layer with its input as the first argument: `linear(h, width)`.
        // A layer's first argument is its input when it is a tensor; an activation
        // takes any first argument (`relu(2)`).
        let activation = builtins::lookup(name).is_some_and(|b| b.kind == Kind::Activation);
        let (input, settings) = match args.first() {
            Some(first) if first.name.is_none() && (activation || self.mentions_tensor(&first.value, frame)) => {
                (Some(&first.value), &args[1..])
            }
            _ => (None, args),
        };
        let is_layer = self.models.contains_key(name)
            || builtins::lookup(name).is_some_and(|b| matches!(b.kind, Kind::Layer | Kind::Activation));
        if is_layer {
            let Some(input) = input else {
                return Value::unknown();
            };
            let value = self.expr_costed(input, frame, costs);
            let applied = self.apply(name, settings, &value, span, frame);
            Self::add_costs(costs, &applied);
            return applied.value;
        }
        let Some(entry) = builtins::entry(name).filter(|e| matches!(e.builtin.kind, Kind::Function | Kind::Loss))
        else {
            return Value::unknown();
        };
        let operands = self.operands(&entry.builtin, None, args, frame, costs);
        let settings = self.settings(&entry.builtin, entry.builtin.params, args, frame);
        let label = self.label(span);
        let site = Site { span, label: &label, batch: frame.batch.as_deref() };
        match Self::rule(entry, &site, &settings, &operands) {
            Ok(mut applied) => {
                Self::add_costs(costs, &applied);
                Self::call_node(frame, entry.builtin.name, &mut applied, &operands, span);
                applied.value
            }
            Err(diagnostic) => {
                frame.error(diagnostic);
                Value::unknown()
            }
        }
    }

    /// An array literal: every row has the same shape.
    pub(super) fn array(&mut self, expr: &Expr, items: &[Expr], frame: &mut Frame) -> Value {
        let values: Vec<Value> = items.iter().map(|item| self.expr(item, frame)).collect();
        let Some(first) = values.first() else {
            return Value::new(Shape(vec![Dim::default()]));
        };
        let Some(inner) = &first.shape else {
            return Value::unknown();
        };
        for (item, value) in items.iter().zip(&values).skip(1) {
            match &value.shape {
                Some(shape) if shape != inner => {
                    frame.error(
                        Diagnostic::new(
                            Code::RaggedArray,
                            format!("this array's rows differ: {inner} and {shape}"),
                            item.span,
                            format!("this row is {shape}"),
                        )
                        .with_secondary(items[0].span, format!("the first row is {inner}"))
                        .with_help("every row of an array must have the same length"),
                    );
                    return Value::unknown();
                }
                None => return Value::unknown(),
                _ => {}
            }
        }
        let _ = expr;
        let mut dims = vec![Dim::constant(items.len() as i128)];
        dims.extend(inner.0.iter().cloned());
        Value::new(Shape(dims))
    }
}

/// The matrix product, with NumPy's rules for vectors and batches.
fn matmul(site: &Site<'_>, a: &Value, b: &Value, a_span: Span, b_span: Span) -> Result<Applied, Diagnostic> {
    let (Some(sa), Some(sb)) = (&a.shape, &b.shape) else {
        return Ok(Applied { value: Value::unknown(), ..Applied::default() });
    };
    if sa.rank() == 0 || sb.rank() == 0 {
        return Err(Diagnostic::new(
            Code::MatmulMismatch,
            format!("`@` needs vectors or matrices, but gets {sa} and {sb}"),
            site.span,
            "a scalar cannot be multiplied with `@`",
        )
        .with_help("use `*` to multiply by a scalar"));
    }
    let k_a = sa.0[sa.rank() - 1].clone();
    let k_b = if sb.rank() == 1 { sb.0[0].clone() } else { sb.0[sb.rank() - 2].clone() };
    if k_a != k_b {
        let diagnostic = Diagnostic::new(
            Code::MatmulMismatch,
            format!("`@` cannot multiply {sa} by {sb}: the inner dimensions {k_a} and {k_b} differ"),
            site.span,
            format!("{k_a} columns against {k_b} rows"),
        )
        .with_secondary(a_span, format!("this is {sa}"))
        .with_secondary(b_span, format!("this is {sb}"))
        .with_help(if sb.rank() >= 2 && sb.0[sb.rank() - 1] == k_a {
            "transpose the right side: `a @ b^T`".to_string()
        } else {
            "the last dimension of the left must equal the first of the right's last two".to_string()
        });
        return Err(diagnostic);
    }
    // The left side may carry batch dimensions; the right side is one matrix or vector,
    // shared by every row of the left.
    if sb.rank() > 2 {
        return Err(Diagnostic::new(
            Code::MatmulMismatch,
            format!("`@` multiplies by one matrix or vector on the right, but {sb} has batch dimensions"),
            b_span,
            format!("this is {sb}"),
        )
        .with_secondary(a_span, format!("this is {sa}"))
        .with_note("a product with a batch on both sides, such as attention's `q @ k^T`, is not in this version of nnc")
        .with_help("write it as a broadcast and a sum over the shared axis, for example `sum(a * b, axis = -1)` on aligned shapes"));
    }
    let mut dims: Vec<Dim> = sa.0[..sa.rank() - 1].to_vec();
    if sb.rank() == 2 {
        dims.push(sb.0[1].clone());
    }
    let rows: Dim =
        sa.0[..sa.rank() - 1].iter().try_fold(Dim::constant(1), |acc, d| acc.checked_mul(d).ok()).unwrap_or_default();
    let cols = if sb.rank() >= 2 { sb.0[sb.rank() - 1].clone() } else { Dim::constant(1) };
    let mult_adds = rows.checked_mul(&k_a).and_then(|d| d.checked_mul(&cols)).unwrap_or_default();
    let mult_adds = match site.batch {
        Some(batch) => mult_adds.substitute(&|n| (n == batch).then(|| Dim::constant(1))).unwrap_or(mult_adds),
        None => mult_adds,
    };
    let mut value = Value::new(Shape(dims));
    if sa.rank() >= 2 {
        value.why[0] = a.why[0].clone();
    }
    Ok(Applied { value, mult_adds, ..Applied::default() })
}

/// The tensor of an array literal of numbers, if it is one.
fn constant_array(expr: &Expr) -> Option<Tensor> {
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

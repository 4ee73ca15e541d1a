//! The executable statements of a file: the values of its constants, and its `eval`,
//! `grad`, `jvp`, `jacobian` and `hessian` queries lowered to IR and run by the
//! interpreter. `nnc run` and `nnc trace` print what this computes.

use super::autodiff::{Mode, cheaper_mode, forward, hessian, jacobian, reverse};
use super::interp::{Precision, Tensor, eval_function};
use super::lower::{LowerError, constant_array, lower_fn};
use super::{Function, optimize};
use crate::shapes::{Dim, Shape};
use nnc_grammar::{Arg, Expr, ExprKind, File, FnDef, Ident, Item, Query, QueryKind, Span};
use std::collections::HashMap;

/// What a query computed.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// `eval`: the value.
    Value(Tensor),
    /// `grad`: the value and one gradient per argument asked for, with its name.
    Gradient { value: Tensor, gradients: Vec<(String, Tensor)> },
    /// `jvp`: the value and its directional derivative.
    Tangent { value: Tensor, tangent: Tensor },
    /// `jacobian` and `hessian`: a matrix, and the mode used with the reason.
    Matrix { rows: Vec<Vec<f64>>, how: String },
}

/// One query of a file and its answer.
#[derive(Clone, Debug)]
pub struct QueryResult {
    pub span: Span,
    /// The query as written, such as `grad f(2, 5)`.
    pub text: String,
    pub answer: Result<Answer, LowerError>,
}

/// Evaluates every top-level `let` and answers every query of `file`, in order.
pub fn run_queries(file: &File, source: &str, precision: Precision) -> Vec<QueryResult> {
    let mut constants: HashMap<String, Tensor> = HashMap::new();
    let mut out = Vec::new();
    for item in &file.items {
        match item {
            Item::Let(stmt) => {
                if let Ok(value) = constant_value(file, &stmt.value, &constants, precision) {
                    constants.insert(stmt.name.name.clone(), value);
                }
            }
            Item::Query(query) => {
                let text =
                    source.get(query.span.range()).unwrap_or("").split_whitespace().collect::<Vec<_>>().join(" ");
                out.push(QueryResult { span: query.span, text, answer: answer(file, query, &constants, precision) });
            }
            _ => {}
        }
    }
    out
}

/// The value of a constant expression: an array literal, or anything computed from
/// numbers and earlier constants.
pub fn constant_value(
    file: &File,
    expr: &Expr,
    constants: &HashMap<String, Tensor>,
    precision: Precision,
) -> Result<Tensor, LowerError> {
    if let Some(tensor) = constant_array(expr) {
        return Ok(tensor);
    }
    let def = FnDef {
        doc: None,
        name: Ident { name: "value".into(), span: expr.span },
        params: Vec::new(),
        body: expr.clone(),
        span: expr.span,
    };
    let f = lower_fn(file, &def, &[], constants)?;
    let (results, _) = eval_function(&f, &[], precision).map_err(|message| LowerError { message, span: expr.span })?;
    Ok(results.into_iter().next().expect("one result"))
}

fn shape_of(tensor: &Tensor) -> Shape {
    Shape(tensor.shape.iter().map(|&d| Dim::constant(d as i128)).collect())
}

/// The function a query calls, lowered for its arguments' shapes, and the argument values.
pub fn query_function(
    file: &File,
    call: &Expr,
    constants: &HashMap<String, Tensor>,
    precision: Precision,
) -> Result<(Function, Vec<Tensor>), LowerError> {
    let ExprKind::Call { callee, args } = &call.unparenthesized().kind else {
        return Err(LowerError { message: "a query needs a function call".into(), span: call.span });
    };
    let user = file.items.iter().find_map(|item| match item {
        Item::Fn(def) if def.name.name == callee.name => Some(def),
        _ => None,
    });
    let value = |e: &Expr| constant_value(file, e, constants, precision);
    let (f, values) = match user {
        Some(def) => {
            // Arguments in the function's order: by name, or else by position.
            let mut positional = args.iter().filter(|a| a.name.is_none());
            let mut values = Vec::with_capacity(def.params.len());
            for param in &def.params {
                let arg = args
                    .iter()
                    .find(|a| a.name.as_ref().is_some_and(|n| n.name == param.name.name))
                    .or_else(|| positional.next())
                    .ok_or_else(|| LowerError {
                        message: format!("no value for `{}`", param.name.name),
                        span: call.span,
                    })?;
                values.push(value(&arg.value)?);
            }
            let shapes: Vec<Shape> = values.iter().map(shape_of).collect();
            (lower_fn(file, def, &shapes, constants)?, values)
        }
        None => {
            // A built-in function: wrap it in one whose arguments are the call's positional
            // arguments; named settings such as `axis = 0` stay in the call.
            let positional: Vec<&Arg> = args.iter().filter(|a| a.name.is_none()).collect();
            let values: Vec<Tensor> = positional.iter().map(|a| value(&a.value)).collect::<Result<_, _>>()?;
            let params: Vec<nnc_grammar::FnParam> = (0..positional.len())
                .map(|i| nnc_grammar::FnParam {
                    name: Ident { name: format!("x{}", i + 1), span: call.span },
                    shape: None,
                    span: call.span,
                })
                .collect();
            let mut names = params.iter();
            let body_args: Vec<Arg> = args
                .iter()
                .map(|a| match &a.name {
                    Some(_) => a.clone(),
                    None => {
                        let p = names.next().expect("one parameter per positional argument");
                        Arg {
                            name: None,
                            value: Expr::new(ExprKind::Name(p.name.name.clone()), call.span),
                            span: call.span,
                        }
                    }
                })
                .collect();
            let body = Expr::new(ExprKind::Call { callee: callee.clone(), args: body_args }, call.span);
            let def = FnDef { doc: None, name: callee.clone(), params, body, span: call.span };
            let shapes: Vec<Shape> = values.iter().map(shape_of).collect();
            (lower_fn(file, &def, &shapes, constants)?, values)
        }
    };
    Ok((f, values))
}

fn answer(
    file: &File,
    query: &Query,
    constants: &HashMap<String, Tensor>,
    precision: Precision,
) -> Result<Answer, LowerError> {
    let (f, args) = query_function(file, &query.call, constants, precision)?;
    let failed = |message: String| LowerError { message, span: query.span };
    let (values, _) = eval_function(&f, &args, precision).map_err(failed)?;
    let value = values[0].clone();
    match query.kind {
        QueryKind::Eval => Ok(Answer::Value(value)),
        QueryKind::Grad => {
            let wrt: Vec<usize> = if query.wrt.is_empty() {
                (0..f.params.len()).collect()
            } else {
                query.wrt.iter().filter_map(|w| f.params.iter().position(|p| p.name == w.name)).collect()
            };
            let (gradient, _) = reverse(&f, &wrt);
            let gradient = optimize(&gradient);
            let mut inputs = args.clone();
            if gradient.params.len() > f.params.len() {
                return Err(failed(format!("`grad` needs a scalar function; `{}` returns {:?}", f.name, value.shape)));
            }
            inputs.truncate(gradient.params.len());
            let (results, _) = eval_function(&gradient, &inputs, precision).map_err(failed)?;
            let gradients =
                wrt.iter().zip(&results[1..]).map(|(&i, t)| (f.params[i].name.clone(), t.clone())).collect();
            Ok(Answer::Gradient { value, gradients })
        }
        QueryKind::Jvp => {
            let all: Vec<usize> = (0..f.params.len()).collect();
            let (jvp, _) = forward(&f, &all);
            let direction = match &query.along {
                Some(expr) => constant_value(file, expr, constants, precision)?,
                None => Tensor::new(vec![args.len()], vec![1.0; args.len()]),
            };
            // The direction gives one tangent element per argument element, in order.
            let mut inputs = args.clone();
            let mut offset = 0;
            for arg in &args {
                let n = arg.data.len();
                let data = direction.data.get(offset..offset + n).map(<[f64]>::to_vec).ok_or_else(|| {
                    failed(format!(
                        "`along` gives {} numbers, but the arguments have {}",
                        direction.data.len(),
                        args.iter().map(|a| a.data.len()).sum::<usize>()
                    ))
                })?;
                inputs.push(Tensor::new(arg.shape.clone(), data));
                offset += n;
            }
            let (results, _) = eval_function(&jvp, &inputs, precision).map_err(failed)?;
            Ok(Answer::Tangent { value, tangent: results[f.results.len()].clone() })
        }
        QueryKind::Jacobian => {
            let n: usize = args.iter().map(|a| a.data.len()).sum();
            let (mode, how) = cheaper_mode(n, value.data.len());
            let rows = jacobian(&f, &args, mode, precision).map_err(failed)?;
            Ok(Answer::Matrix { rows, how })
        }
        QueryKind::Hessian => {
            let rows = hessian(&f, &args, precision).map_err(failed)?;
            Ok(Answer::Matrix { rows, how: "forward mode over reverse mode".into() })
        }
    }
}

/// Whether a mode name is forward.
pub fn mode_of(name: &str) -> Option<Mode> {
    match name {
        "forward" => Some(Mode::Forward),
        "reverse" => Some(Mode::Reverse),
        _ => None,
    }
}

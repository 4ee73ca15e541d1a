//! The executable statements of a checked file: its `eval`, `grad`, `jvp`, `jacobian` and
//! `hessian` queries lowered to IR and run by the interpreter, and the value of any checked
//! expression. `nnc run` and `nnc trace` print what this computes.

use super::autodiff::{Mode, cheaper_mode, forward, hessian, jacobian, reverse};
use super::interp::{Precision, Tensor, eval_function};
use super::lower::{LowerError, Lowering, lower_instance};
use super::{Function, optimize};
use crate::checked::{Checked, Instance, InstanceId, InstanceKind, Node, NodeId, NodeKind};
use crate::shapes::{Dim, QueryCheck, Shape, ShapeAnalysis};
use nnc_grammar::{QueryKind, Span};

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

/// Answers every query of a checked file, in order.
pub fn run_queries(shapes: &ShapeAnalysis, source: &str, precision: Precision) -> Vec<QueryResult> {
    shapes
        .queries
        .iter()
        .map(|query| {
            let text = source.get(query.span.range()).unwrap_or("").split_whitespace().collect::<Vec<_>>().join(" ");
            QueryResult { span: query.span, text, answer: answer(&shapes.checked, query, precision) }
        })
        .collect()
}

/// The value of node `node` of instance `id`, computed by the interpreter.
pub fn evaluate(
    checked: &Checked,
    id: InstanceId,
    node: Option<NodeId>,
    precision: Precision,
) -> Result<Tensor, LowerError> {
    let f = lower_instance(checked, id, Lowering { output: node, ..Lowering::default() })?;
    let span = f.span;
    let (results, _) = eval_function(&f, &[], precision).map_err(|message| LowerError { message, span })?;
    Ok(results.into_iter().next().expect("one result"))
}

fn shape_of(tensor: &Tensor) -> Shape {
    Shape(tensor.shape.iter().map(|&d| Dim::constant(d as i128)).collect())
}

/// The function a query calls, lowered for its arguments' shapes, and the argument values.
pub fn query_function(
    checked: &Checked,
    query: &QueryCheck,
    precision: Precision,
) -> Result<(Function, Vec<Tensor>), LowerError> {
    let instance = checked.get(query.instance);
    let failed = |message: &str| LowerError { message: message.to_string(), span: query.span };
    if instance.failed {
        return Err(failed("this query has errors"));
    }
    let call = &instance.nodes[instance.output.ok_or_else(|| failed("this query has no value"))?];
    let value = |n: NodeId| evaluate(checked, query.instance, Some(n), precision);
    match &call.kind {
        NodeKind::Use { instance: f, args, .. } if checked.get(*f).kind == InstanceKind::Fn => {
            let values = args.iter().map(|&a| value(a)).collect::<Result<Vec<_>, _>>()?;
            Ok((lower_instance(checked, *f, Lowering::default())?, values))
        }
        NodeKind::Call { name, call: builtin, args, params } if params.is_empty() => {
            // A built-in function: wrapped in one whose arguments are the call's operands,
            // `x1, x2, ...`; its settings (`axis = 0`) stay in the call.
            let values = args.iter().map(|&a| value(a)).collect::<Result<Vec<_>, _>>()?;
            let mut nodes: Vec<Node> = values
                .iter()
                .enumerate()
                .map(|(i, v)| Node { kind: NodeKind::Input(i), shape: Some(shape_of(v)), span: call.span })
                .collect();
            let inputs = (0..values.len()).map(|i| (format!("x{}", i + 1), i)).collect();
            let kind =
                NodeKind::Call { name, call: builtin.clone(), args: (0..values.len()).collect(), params: Vec::new() };
            nodes.push(Node { kind, shape: call.shape.clone(), span: call.span });
            let wrapper = Instance {
                name: name.to_string(),
                kind: InstanceKind::Fn,
                span: call.span,
                args: Vec::new(),
                output: Some(nodes.len() - 1),
                nodes,
                inputs,
                batch: None,
                statements: Vec::new(),
                failed: false,
            };
            let wrapped = Checked { instances: vec![wrapper] };
            Ok((lower_instance(&wrapped, 0, Lowering::default())?, values))
        }
        _ => Err(failed("a query needs a function call")),
    }
}

fn answer(checked: &Checked, query: &QueryCheck, precision: Precision) -> Result<Answer, LowerError> {
    let (f, args) = query_function(checked, query, precision)?;
    let failed = |message: String| LowerError { message, span: query.span };
    let (values, _) = eval_function(&f, &args, precision).map_err(failed)?;
    let value = values[0].clone();
    match query.kind {
        QueryKind::Eval => Ok(Answer::Value(value)),
        QueryKind::Grad => {
            let wrt: Vec<usize> = if query.wrt.is_empty() {
                (0..f.params.len()).collect()
            } else {
                query.wrt.iter().filter_map(|w| f.params.iter().position(|p| p.name == *w)).collect()
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
            let direction = match query.along {
                Some(along) => evaluate(checked, query.instance, Some(along), precision)?,
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

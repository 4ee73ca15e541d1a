//! Automatic differentiation as IR-to-IR transformations. Reverse mode walks the trace
//! backwards and builds the adjoint code; forward mode builds the tangent trace beside the
//! primal one. The op registry gives each op's rule; this driver alone sums the
//! contributions of values used more than once (the chain rule with several inputs),
//! un-broadcasts them, and inserts zeros.

use super::interp::{Precision, Tensor, eval_function};
use super::ops::{Emit, Op};
use super::{Function, Inst, Type, Value};
use crate::shapes::Shape;
use std::collections::HashMap;

/// Forward mode (tangents) or reverse mode (adjoints).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Forward,
    Reverse,
}

/// Which mode computes the whole Jacobian of a function with `n` inputs and `m` outputs in
/// fewer passes, and why: forward mode needs one pass per input, reverse one per output.
pub fn cheaper_mode(n: usize, m: usize) -> (Mode, String) {
    if n <= m {
        (
            Mode::Forward,
            format!(
                "forward mode: {n} pass{} (one per input) against {m} (one per output)",
                if n == 1 { "" } else { "es" }
            ),
        )
    } else {
        (
            Mode::Reverse,
            format!(
                "reverse mode: {m} pass{} (one per output) against {n} (one per input)",
                if m == 1 { "" } else { "es" }
            ),
        )
    }
}

/// Whether each value depends on one of the arguments `wrt` through differentiable ops.
fn dependence(f: &Function, wrt: &[usize]) -> Vec<bool> {
    let mut needs = vec![false; f.values.len()];
    for &i in wrt {
        needs[f.params[i].value.0 as usize] = true;
    }
    for inst in &f.body {
        needs[inst.result.0 as usize] = inst.op.is_differentiable() && inst.args.iter().any(|a| needs[a.0 as usize]);
    }
    needs
}

/// A zero of the shape of `like`.
fn zeros(e: &mut Emit<'_>, shape: &Shape) -> Value {
    let zero = e.constant(0.0);
    if shape.rank() == 0 { zero } else { e.op(Op::Broadcast(shape.clone()), &[zero]) }
}

/// A derivative that was found, or zeros of `shape` where none reaches the value.
fn or_zeros(g: &mut Function, found: Option<Value>, shape: &Shape, span: nnc_grammar::Span) -> Value {
    match found {
        Some(value) => value,
        None => zeros(&mut Emit { f: g, span }, shape),
    }
}

/// A contribution in the output's (broadcast) shape, summed back to the input's shape.
fn unbroadcast(e: &mut Emit<'_>, contribution: Value, shape: &Shape) -> Value {
    if e.shape(contribution) == *shape { contribution } else { e.op(Op::SumTo(shape.clone()), &[contribution]) }
}

/// Reverse mode: a function with the same arguments that returns `f`'s result and the
/// gradient of that result with respect to the arguments `wrt` (`x1_bar`, ...). For a
/// result that is not a scalar, the function takes its cotangent as one more argument,
/// `y_bar`. The second value maps each primal value to its adjoint, for traces.
pub fn reverse(f: &Function, wrt: &[usize]) -> (Function, Vec<(Value, Value)>) {
    let needs = dependence(f, wrt);
    let mut g = f.clone();
    g.name = format!("{}_grad", f.name);
    let y = f.results[0];
    let y_shape = f.ty(y).shape.clone();
    let seed = if y_shape.rank() == 0 {
        g.push_named(Op::Const(1.0), &[], f.span, "y_bar")
    } else {
        g.param("y_bar", Type::of(y_shape))
    };
    let mut adjoint: HashMap<Value, Value> = HashMap::from([(y, seed)]);
    let mut trace = Vec::new();
    for inst in f.body.iter().rev() {
        let Some(&g_out) = adjoint.get(&inst.result) else { continue };
        if !needs[inst.result.0 as usize] {
            continue;
        }
        trace.push((inst.result, g_out));
        name_derivative(&mut g, g_out, inst.result, "_bar");
        let needs_args: Vec<bool> = inst.args.iter().map(|a| needs[a.0 as usize]).collect();
        let mut e = Emit { f: &mut g, span: inst.span };
        let contributions = (inst.op.rules().vjp)(&mut e, &inst.op, &inst.args, inst.result, g_out, &needs_args);
        for (&arg, contribution) in inst.args.iter().zip(contributions) {
            let Some(contribution) = contribution.filter(|_| needs[arg.0 as usize]) else { continue };
            let shape = e.shape(arg);
            let contribution = unbroadcast(&mut e, contribution, &shape);
            let total = match adjoint.get(&arg) {
                Some(&previous) => e.add(previous, contribution),
                None => contribution,
            };
            adjoint.insert(arg, total);
        }
    }
    for &i in wrt {
        let param = f.params[i].value;
        let value = or_zeros(&mut g, adjoint.get(&param).copied(), &f.ty(param).shape, f.span);
        trace.push((param, value));
        name_derivative(&mut g, value, param, "_bar");
        g.results.push(value);
        g.result_names.push(format!("{}_bar", f.params[i].name));
    }
    (g, trace)
}

/// Names a derivative value after its primal (`v4_bar`) if it is a fresh temporary.
fn name_derivative(g: &mut Function, derivative: Value, primal: Value, suffix: &str) {
    let is_temporary =
        g.name_of(derivative).starts_with('t') && g.def(derivative).is_some_and(|i| !matches!(i.op, Op::Const(_)));
    if is_temporary {
        let name = format!("{}{suffix}", g.name_of(primal));
        g.values[derivative.0 as usize].1 = name;
    }
}

/// Forward mode: a function that also takes a tangent for each argument in `wrt`
/// (`x1_dot`, ...) and returns `f`'s results followed by their tangents. The tangent code
/// follows each primal instruction, as the lecture's tangent trace does. The second value
/// maps each primal value to its tangent.
pub fn forward(f: &Function, wrt: &[usize]) -> (Function, Vec<(Value, Value)>) {
    let mut g = Function {
        name: format!("{}_jvp", f.name),
        values: f.values.clone(),
        params: f.params.clone(),
        span: f.span,
        // The primal values keep their ids, so the model's statements keep their values.
        layers: f.layers.clone(),
        ..Function::default()
    };
    let mut tangent: HashMap<Value, Value> = HashMap::new();
    let mut trace = Vec::new();
    for &i in wrt {
        let param = &f.params[i];
        let dot = g.param(&format!("{}_dot", param.name), f.ty(param.value).clone());
        tangent.insert(param.value, dot);
        trace.push((param.value, dot));
    }
    for inst in &f.body {
        g.body.push(Inst { result: inst.result, op: inst.op.clone(), args: inst.args.clone(), span: inst.span });
        if !inst.op.is_differentiable() {
            continue;
        }
        let tangents: Vec<Option<Value>> = inst.args.iter().map(|a| tangent.get(a).copied()).collect();
        if tangents.iter().all(Option::is_none) {
            continue;
        }
        let mut e = Emit { f: &mut g, span: inst.span };
        if let Some(t) = (inst.op.rules().jvp)(&mut e, &inst.op, &inst.args, inst.result, &tangents) {
            let shape = f.ty(inst.result).shape.clone();
            let t = if e.shape(t) != shape { e.op(Op::Broadcast(shape), &[t]) } else { t };
            name_derivative(&mut g, t, inst.result, "_dot");
            tangent.insert(inst.result, t);
            trace.push((inst.result, t));
        }
    }
    g.results = f.results.clone();
    g.result_names = f.result_names.clone();
    for (i, &result) in f.results.iter().enumerate() {
        let value = or_zeros(&mut g, tangent.get(&result).copied(), &f.ty(result).shape, f.span);
        g.results.push(value);
        g.result_names.push(format!("{}_dot", f.result_names.get(i).map_or("y", String::as_str)));
    }
    (g, trace)
}

fn one_hot(shapes: &[Vec<usize>], flat: usize) -> Vec<Tensor> {
    let mut offset = 0;
    shapes
        .iter()
        .map(|shape| {
            let n: usize = shape.iter().product();
            let mut data = vec![0.0; n];
            if (offset..offset + n).contains(&flat) {
                data[flat - offset] = 1.0;
            }
            offset += n;
            Tensor::new(shape.clone(), data)
        })
        .collect()
}

/// The Jacobian of `f`'s first result at `args`: one row per output element, one column
/// per input element (all arguments, flattened in order), by forward mode (a pass per
/// input) or reverse mode (a pass per output).
pub fn jacobian(f: &Function, args: &[Tensor], mode: Mode, precision: Precision) -> Result<Vec<Vec<f64>>, String> {
    let all: Vec<usize> = (0..f.params.len()).collect();
    let shapes: Vec<Vec<usize>> = args.iter().map(|a| a.shape.clone()).collect();
    let n: usize = shapes.iter().map(|s| s.iter().product::<usize>()).sum();
    let (outputs, _) = eval_function(f, args, precision)?;
    let m = outputs[0].data.len();
    let mut rows = vec![vec![0.0; n]; m];
    match mode {
        Mode::Forward => {
            let (jvp, _) = forward(f, &all);
            for j in 0..n {
                let mut inputs = args.to_vec();
                inputs.extend(one_hot(&shapes, j));
                let (results, _) = eval_function(&jvp, &inputs, precision)?;
                let column = &results[f.results.len()];
                for (i, row) in rows.iter_mut().enumerate() {
                    row[j] = column.data[i];
                }
            }
        }
        Mode::Reverse => {
            let (vjp, _) = reverse(f, &all);
            for (i, row) in rows.iter_mut().enumerate() {
                let mut inputs = args.to_vec();
                if vjp.params.len() > f.params.len() {
                    inputs.extend(one_hot(std::slice::from_ref(&outputs[0].shape), i));
                }
                let (results, _) = eval_function(&vjp, &inputs, precision)?;
                *row = results[1..].iter().flat_map(|t| t.data.iter().copied()).collect();
            }
        }
    }
    Ok(rows)
}

/// The Hessian of a scalar function at `args`, by forward mode over reverse mode: the
/// tangent of the gradient along each input direction is a column.
pub fn hessian(f: &Function, args: &[Tensor], precision: Precision) -> Result<Vec<Vec<f64>>, String> {
    if !f.ty(f.results[0]).shape.0.is_empty() {
        return Err(format!("`{}` does not return a scalar, so it has no Hessian", f.name));
    }
    let all: Vec<usize> = (0..f.params.len()).collect();
    let (gradient, _) = reverse(f, &all);
    let (second, _) = forward(&gradient, &all);
    let shapes: Vec<Vec<usize>> = args.iter().map(|a| a.shape.clone()).collect();
    let n: usize = shapes.iter().map(|s| s.iter().product::<usize>()).sum();
    let mut columns = Vec::with_capacity(n);
    for j in 0..n {
        let mut inputs = args.to_vec();
        inputs.extend(one_hot(&shapes, j));
        let (results, _) = eval_function(&second, &inputs, precision)?;
        // Results: y, the gradients, y_dot, then the gradients' tangents.
        let tangents = &results[gradient.results.len() + 1..];
        columns.push(tangents.iter().flat_map(|t| t.data.iter().copied()).collect::<Vec<f64>>());
    }
    Ok((0..n).map(|i| (0..n).map(|j| columns[j][i]).collect()).collect())
}

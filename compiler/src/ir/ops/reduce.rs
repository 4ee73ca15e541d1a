//! Reductions over one axis or all of them, and the softmaxes, which normalise along one.

use super::{Emit, Op, Rules, same};
use crate::ir::Value;
use crate::ir::interp::Tensor;
use crate::ir::onnx::{OnnxArg, OnnxAttr, OnnxEmit};
use crate::ir::print::optional_axis;
use crate::shapes::{Dim, Shape};

/// The shape that reducing `shape` over `axis`, or over all axes, leaves.
fn reduced(shape: &Shape, axis: Option<usize>) -> Result<Shape, String> {
    match axis {
        None => Ok(Shape(Vec::new())),
        Some(axis) if axis < shape.rank() => {
            let mut dims = shape.0.clone();
            dims.remove(axis);
            Ok(Shape(dims))
        }
        Some(axis) => Err(format!("axis {axis} of {shape}")),
    }
}

/// Splits `shape` around `axis`: (outer count, axis length, inner count).
fn around(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (shape[..axis].iter().product(), shape[axis], shape[axis + 1..].iter().product())
}

fn reduce(x: &Tensor, out: &mut Tensor, axis: Option<usize>, init: f64, f: impl Fn(f64, f64) -> f64) {
    match axis {
        None => out.data[0] = x.data.iter().fold(init, |a, &v| f(a, v)),
        Some(axis) => {
            let (outer, n, inner) = around(&x.shape, axis);
            out.data.fill(init);
            for o in 0..outer {
                for k in 0..n {
                    for i in 0..inner {
                        let slot = &mut out.data[o * inner + i];
                        *slot = f(*slot, x.data[(o * n + k) * inner + i]);
                    }
                }
            }
        }
    }
}

/// The lines of a tensor along an axis, as (first index, stride, length).
fn lines(shape: &[usize], axis: usize) -> impl Iterator<Item = (usize, usize, usize)> {
    let (outer, n, inner) = around(shape, axis);
    (0..outer).flat_map(move |o| (0..inner).map(move |i| (o * n * inner + i, inner, n)))
}

/// The largest element of a line and the sum of the exponentials of the elements minus it.
pub(super) fn max_and_total(data: &[f64], (start, stride, n): (usize, usize, usize)) -> (f64, f64) {
    let at = |k: usize| data[start + k * stride];
    let max = (0..n).map(at).fold(f64::NEG_INFINITY, f64::max);
    (max, (0..n).map(|k| (at(k) - max).exp()).sum())
}

fn softmax_into(x: &Tensor, out: &mut Tensor, axis: usize, log: bool) {
    for line in lines(&x.shape, axis) {
        let (max, total) = max_and_total(&x.data, line);
        let log_total = total.ln() + max;
        let (start, stride, n) = line;
        for k in 0..n {
            let v = x.data[start + k * stride];
            out.data[start + k * stride] = if log { v - log_total } else { (v - max).exp() / total };
        }
    }
}

/// A reduction over one axis, or all of them, that drops the reduced axes.
fn onnx_reduce(
    e: &mut OnnxEmit<'_>,
    op_type: &'static str,
    axis: Option<usize>,
    x: &[OnnxArg],
    y: &OnnxArg,
) -> Result<(), String> {
    let keepdims = vec![("keepdims", OnnxAttr::Int(0))];
    match axis {
        Some(axis) => {
            let axes = e.ints(&format!("{}/axes", y.name), vec![axis as i64]);
            e.node(op_type, &[&x[0].name, &axes], &y.name, keepdims);
        }
        None => e.node(op_type, &[&x[0].name], &y.name, keepdims),
    }
    Ok(())
}

/// The cotangent of a reduction, spread back over the reduced axis.
fn spread(e: &mut Emit<'_>, x: Value, axis: Option<usize>, g: Value) -> Value {
    let shape = e.shape(x);
    let kept = match axis {
        Some(axis) => {
            let mut dims = shape.0.clone();
            dims[axis] = Dim::constant(1);
            e.op(Op::Reshape(Shape(dims)), &[g])
        }
        None => g,
    };
    e.op(Op::Broadcast(shape), &[kept])
}

fn reduced_count(shape: &Shape, axis: Option<usize>) -> Dim {
    match axis {
        Some(axis) => shape.0[axis].clone(),
        None => shape.elements().unwrap_or_default(),
    }
}

pub(super) static SUM: Rules = Rules {
    name: "sum",
    attributes: |op| {
        let Op::Sum { axis } = op else { unreachable!() };
        optional_axis(*axis)
    },
    parse: |a| Ok(Op::Sum { axis: a.axis()? }),
    shape: |op, inputs| {
        let Op::Sum { axis } = op else { unreachable!() };
        reduced(inputs[0], *axis)
    },
    eval: |op, x, out| {
        let Op::Sum { axis } = op else { unreachable!() };
        reduce(x[0], out, *axis, 0.0, |a, v| a + v)
    },
    vjp: |e, op, x, _, g, _| {
        let Op::Sum { axis } = op else { unreachable!() };
        vec![Some(spread(e, x[0], *axis, g))]
    },
    jvp: |e, op, _, _, t| t[0].map(|t| e.op(op.clone(), &[t])),
    onnx: |e, op, x, y| {
        let Op::Sum { axis } = op else { unreachable!() };
        onnx_reduce(e, "ReduceSum", *axis, x, y)
    },
};

/// `1 / n` for the elements a mean combines.
fn inverse_count(e: &mut Emit<'_>, x: Value, axis: Option<usize>) -> Value {
    let n = reduced_count(&e.shape(x), axis);
    e.inverse(&n)
}

pub(super) static MEAN: Rules = Rules {
    name: "mean",
    attributes: |op| {
        let Op::Mean { axis } = op else { unreachable!() };
        optional_axis(*axis)
    },
    parse: |a| Ok(Op::Mean { axis: a.axis()? }),
    shape: |op, inputs| {
        let Op::Mean { axis } = op else { unreachable!() };
        reduced(inputs[0], *axis)
    },
    eval: |op, x, out| {
        let Op::Mean { axis } = op else { unreachable!() };
        let n = match axis {
            Some(axis) => x[0].shape[*axis],
            None => x[0].data.len(),
        };
        reduce(x[0], out, *axis, 0.0, |a, v| a + v);
        for v in &mut out.data {
            *v /= n as f64;
        }
    },
    vjp: |e, op, x, _, g, _| {
        let Op::Mean { axis } = op else { unreachable!() };
        let inv = inverse_count(e, x[0], *axis);
        let scaled = e.mul(g, inv);
        vec![Some(spread(e, x[0], *axis, scaled))]
    },
    jvp: |e, op, _, _, t| t[0].map(|t| e.op(op.clone(), &[t])),
    onnx: |e, op, x, y| {
        let Op::Mean { axis } = op else { unreachable!() };
        onnx_reduce(e, "ReduceMean", *axis, x, y)
    },
};

pub(super) static REDUCE_MAX: Rules = Rules {
    name: "reduce_max",
    attributes: |op| {
        let Op::ReduceMax { axis } = op else { unreachable!() };
        optional_axis(*axis)
    },
    parse: |a| Ok(Op::ReduceMax { axis: a.axis()? }),
    shape: |op, inputs| {
        let Op::ReduceMax { axis } = op else { unreachable!() };
        reduced(inputs[0], *axis)
    },
    eval: |op, x, out| {
        let Op::ReduceMax { axis } = op else { unreachable!() };
        reduce(x[0], out, *axis, f64::NEG_INFINITY, f64::max)
    },
    // The cotangent goes to the elements equal to the maximum.
    vjp: |e, op, x, y, g, _| {
        let Op::ReduceMax { axis } = op else { unreachable!() };
        let top = spread(e, x[0], *axis, y);
        let mask = e.op(Op::GreaterEq, &[x[0], top]);
        let spread_g = spread(e, x[0], *axis, g);
        vec![Some(e.mul(spread_g, mask))]
    },
    jvp: |e, op, x, y, t| {
        let Op::ReduceMax { axis } = op else { unreachable!() };
        let t = t[0]?;
        let top = spread(e, x[0], *axis, y);
        let mask = e.op(Op::GreaterEq, &[x[0], top]);
        let picked = e.mul(mask, t);
        Some(e.op(Op::Sum { axis: *axis }, &[picked]))
    },
    onnx: |e, op, x, y| {
        let Op::ReduceMax { axis } = op else { unreachable!() };
        onnx_reduce(e, "ReduceMax", *axis, x, y)
    },
};

pub(super) static SOFTMAX: Rules = Rules {
    name: "softmax",
    attributes: |op| {
        let Op::Softmax { axis } = op else { unreachable!() };
        format!("[axis={axis}]")
    },
    parse: |a| Ok(Op::Softmax { axis: a.required_axis()? }),
    shape: same,
    eval: |op, x, out| {
        let Op::Softmax { axis } = op else { unreachable!() };
        softmax_into(x[0], out, *axis, false)
    },
    // dx = y (g - sum(g y))
    vjp: |e, op, _, y, g, _| {
        let Op::Softmax { axis } = op else { unreachable!() };
        let gy = e.mul(g, y);
        let total = e.sum_keep(gy, *axis);
        let centred = e.sub(g, total);
        vec![Some(e.mul(y, centred))]
    },
    jvp: |e, op, _, y, t| {
        let Op::Softmax { axis } = op else { unreachable!() };
        let t = t[0]?;
        let ty = e.mul(t, y);
        let total = e.sum_keep(ty, *axis);
        let centred = e.sub(t, total);
        Some(e.mul(y, centred))
    },
    onnx: |e, op, x, y| {
        let Op::Softmax { axis } = op else { unreachable!() };
        e.node("Softmax", &[&x[0].name], &y.name, vec![("axis", OnnxAttr::Int(*axis as i64))]);
        Ok(())
    },
};

pub(super) static LOG_SOFTMAX: Rules = Rules {
    name: "log_softmax",
    attributes: |op| {
        let Op::LogSoftmax { axis } = op else { unreachable!() };
        format!("[axis={axis}]")
    },
    parse: |a| Ok(Op::LogSoftmax { axis: a.required_axis()? }),
    shape: same,
    eval: |op, x, out| {
        let Op::LogSoftmax { axis } = op else { unreachable!() };
        softmax_into(x[0], out, *axis, true)
    },
    // dx = g - softmax(x) sum(g), with softmax(x) = exp(y)
    vjp: |e, op, _, y, g, _| {
        let Op::LogSoftmax { axis } = op else { unreachable!() };
        let p = e.op(Op::Exp, &[y]);
        let total = e.sum_keep(g, *axis);
        let spread = e.mul(p, total);
        vec![Some(e.sub(g, spread))]
    },
    jvp: |e, op, _, y, t| {
        let Op::LogSoftmax { axis } = op else { unreachable!() };
        let t = t[0]?;
        let p = e.op(Op::Exp, &[y]);
        let pt = e.mul(p, t);
        let total = e.sum_keep(pt, *axis);
        Some(e.sub(t, total))
    },
    onnx: |e, op, x, y| {
        let Op::LogSoftmax { axis } = op else { unreachable!() };
        e.node("LogSoftmax", &[&x[0].name], &y.name, vec![("axis", OnnxAttr::Int(*axis as i64))]);
        Ok(())
    },
};

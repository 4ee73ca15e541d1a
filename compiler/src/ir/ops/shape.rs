//! Ops that move elements without combining them, and the matrix product: matmul,
//! transpose, reshape, broadcast and its adjoint sum_to.

use super::{Emit, Op, Rules, broadcast_shapes, no_attributes, onnx_same};
use crate::ir::Value;
use crate::ir::interp::Tensor;
use crate::ir::onnx::{OnnxArg, OnnxAttr, OnnxEmit};
use crate::shapes::{Dim, Shape};

/// `Reshape` of `x` to the result's shape.
fn onnx_reshape(e: &mut OnnxEmit<'_>, x: &str, y: &OnnxArg) -> Result<(), String> {
    let dims = e.reshape_dims(&y.shape)?;
    let shape = e.ints(&format!("{}/shape", y.name), dims);
    e.node("Reshape", &[x, &shape], &y.name, Vec::new());
    Ok(())
}

fn matmul_shape(_: &Op, inputs: &[&Shape]) -> Result<Shape, String> {
    let (a, b) = (inputs[0], inputs[1]);
    if a.rank() == 0 || b.rank() == 0 {
        return Err("matmul of a scalar".into());
    }
    let k_a = &a.0[a.rank() - 1];
    let k_b = if b.rank() == 1 { &b.0[0] } else { &b.0[b.rank() - 2] };
    if k_a != k_b || b.rank() > 2 {
        return Err(format!("matmul of {a} and {b}"));
    }
    let mut dims = a.0[..a.rank() - 1].to_vec();
    if b.rank() == 2 {
        dims.push(b.0[1].clone());
    }
    Ok(Shape(dims))
}

/// `[.., m, k] @ [k, n]` (or `[k]`), by the definition.
fn matmul_eval(a: &Tensor, b: &Tensor, out: &mut Tensor) {
    let k = *a.shape.last().expect("rank >= 1");
    let m = a.data.len() / k.max(1);
    let n = if b.shape.len() == 2 { b.shape[1] } else { 1 };
    for i in 0..m {
        for j in 0..n {
            out.data[i * n + j] = (0..k).map(|p| a.data[i * k + p] * b.data[p * n + j]).sum();
        }
    }
}

/// `x` as a matrix: vectors become one row (`row = true`) or one column.
fn as_matrix(e: &mut Emit<'_>, x: Value, row: bool) -> Value {
    let shape = e.shape(x);
    let dims = match shape.rank() {
        1 if row => vec![Dim::constant(1), shape.0[0].clone()],
        1 => vec![shape.0[0].clone(), Dim::constant(1)],
        2 => return x,
        _ => {
            // Batch dimensions fold into the rows.
            let rows = shape.0[..shape.rank() - 1].iter().try_fold(Dim::constant(1), |acc, d| acc.checked_mul(d).ok());
            vec![rows.unwrap_or_default(), shape.0[shape.rank() - 1].clone()]
        }
    };
    e.op(Op::Reshape(Shape(dims)), &[x])
}

pub(super) static MATMUL: Rules = Rules {
    name: "matmul",
    attributes: no_attributes,
    parse: |_| Ok(Op::MatMul),
    shape: matmul_shape,
    eval: |_, x, out| matmul_eval(x[0], x[1], out),
    // y = a b: da = g b^T, db = a^T g, with vectors and batches as matrices.
    vjp: |e, _, x, _, g, needs| {
        let (a, b) = (x[0], x[1]);
        let (a_shape, b_shape) = (e.shape(a), e.shape(b));
        let a2 = as_matrix(e, a, true);
        let b2 = as_matrix(e, b, false);
        let rows = e.shape(a2).0[0].clone();
        let cols = e.shape(b2).0[1].clone();
        let g2 = e.op(Op::Reshape(Shape(vec![rows, cols])), &[g]);
        let da = needs[0].then(|| {
            let bt = e.op(Op::Transpose, &[b2]);
            let product = e.op(Op::MatMul, &[g2, bt]);
            e.op(Op::Reshape(a_shape), &[product])
        });
        let db = needs[1].then(|| {
            let at = e.op(Op::Transpose, &[a2]);
            let product = e.op(Op::MatMul, &[at, g2]);
            e.op(Op::Reshape(b_shape), &[product])
        });
        vec![da, db]
    },
    jvp: |e, _, x, _, t| {
        let da = t[0].map(|t| e.op(Op::MatMul, &[t, x[1]]));
        let db = t[1].map(|t| e.op(Op::MatMul, &[x[0], t]));
        e.sum_opt(da, db)
    },
    onnx: |e, _, x, y| onnx_same(e, "MatMul", x, y),
};

pub(super) static TRANSPOSE: Rules = Rules {
    name: "transpose",
    attributes: no_attributes,
    parse: |_| Ok(Op::Transpose),
    shape: |_, inputs| {
        let mut dims = inputs[0].0.clone();
        let n = dims.len();
        if n >= 2 {
            dims.swap(n - 2, n - 1);
        }
        Ok(Shape(dims))
    },
    eval: |_, x, out| x[0].transpose_into(out),
    vjp: |e, _, _, _, g, _| vec![Some(e.op(Op::Transpose, &[g]))],
    jvp: |e, _, _, _, t| t[0].map(|t| e.op(Op::Transpose, &[t])),
    onnx: |e, _, x, y| {
        let rank = x[0].shape.rank();
        if rank < 2 {
            return onnx_same(e, "Identity", x, y);
        }
        let mut perm: Vec<i64> = (0..rank as i64).collect();
        perm.swap(rank - 2, rank - 1);
        e.node("Transpose", &[&x[0].name], &y.name, vec![("perm", OnnxAttr::Ints(perm))]);
        Ok(())
    },
};

pub(super) static RESHAPE: Rules = Rules {
    name: "reshape",
    attributes: |op| {
        let Op::Reshape(shape) = op else { unreachable!() };
        format!("{shape}")
    },
    parse: |a| Ok(Op::Reshape(a.shape()?)),
    shape: |op, _| {
        let Op::Reshape(shape) = op else { unreachable!() };
        Ok(shape.clone())
    },
    eval: |_, x, out| out.data.copy_from_slice(&x[0].data),
    vjp: |e, _, x, _, g, _| {
        let shape = e.shape(x[0]);
        vec![Some(e.op(Op::Reshape(shape), &[g]))]
    },
    jvp: |e, op, _, _, t| t[0].map(|t| e.op(op.clone(), &[t])),
    onnx: |e, _, x, y| onnx_reshape(e, &x[0].name, y),
};

pub(super) static BROADCAST: Rules = Rules {
    name: "broadcast",
    attributes: |op| {
        let Op::Broadcast(shape) = op else { unreachable!() };
        format!("{shape}")
    },
    parse: |a| Ok(Op::Broadcast(a.shape()?)),
    shape: |op, inputs| {
        let Op::Broadcast(shape) = op else { unreachable!() };
        broadcast_shapes(inputs[0], shape).map(|_| shape.clone())
    },
    eval: |_, x, out| {
        let index = x[0].broadcast_index(&out.shape);
        for (i, slot) in out.data.iter_mut().enumerate() {
            *slot = x[0].data[index.at(i)];
        }
    },
    vjp: |e, _, x, _, g, _| {
        let shape = e.shape(x[0]);
        vec![Some(e.op(Op::SumTo(shape), &[g]))]
    },
    jvp: |e, op, _, _, t| t[0].map(|t| e.op(op.clone(), &[t])),
    onnx: |e, _, x, y| {
        let shape = e.shape_tensor(&y.name, &y.shape)?;
        e.node("Expand", &[&x[0].name, &shape], &y.name, Vec::new());
        Ok(())
    },
};

pub(super) static SUM_TO: Rules = Rules {
    name: "sum_to",
    attributes: |op| {
        let Op::SumTo(shape) = op else { unreachable!() };
        format!("{shape}")
    },
    parse: |a| Ok(Op::SumTo(a.shape()?)),
    shape: |op, _| {
        let Op::SumTo(shape) = op else { unreachable!() };
        Ok(shape.clone())
    },
    eval: |_, x, out| {
        out.data.fill(0.0);
        // Each element of the input adds into the element it was broadcast from.
        let index = out.broadcast_index(&x[0].shape);
        for (i, v) in x[0].data.iter().enumerate() {
            out.data[index.at(i)] += v;
        }
    },
    vjp: |e, _, x, _, g, _| {
        let shape = e.shape(x[0]);
        vec![Some(e.op(Op::Broadcast(shape), &[g]))]
    },
    jvp: |e, op, _, _, t| t[0].map(|t| e.op(op.clone(), &[t])),
    onnx: |e, _, x, y| {
        // The broadcast axes: the leading ones the target lacks, and those where it has 1.
        let (from, to) = (&x[0].shape, &y.shape);
        let offset = from.rank() - to.rank().min(from.rank());
        let one = Dim::constant(1);
        let axes: Vec<i64> = (0..from.rank())
            .filter(|&i| i < offset || (to.0[i - offset] == one && from.0[i] != one))
            .map(|i| i as i64)
            .collect();
        if axes.is_empty() {
            return onnx_reshape(e, &x[0].name, y);
        }
        let axes = e.ints(&format!("{}/axes", y.name), axes);
        let summed = e.temp(&y.name, "ReduceSum", &[&x[0].name, &axes], vec![("keepdims", OnnxAttr::Int(1))]);
        onnx_reshape(e, &summed, y)
    },
};

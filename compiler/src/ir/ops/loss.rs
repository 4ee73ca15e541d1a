//! Losses and the one-hot rows that compare labels with predictions.

use super::reduce::max_and_total;
use super::{Op, Rules, broadcast_dims, broadcast_shapes, no_attributes, no_jvp, no_vjp, scalar};
use crate::ir::onnx::{ONNX_INT64, OnnxAttr};
use crate::shapes::{Dim, Shape};

pub(super) static ONE_HOT: Rules = Rules {
    name: "one_hot",
    attributes: |op| {
        let Op::OneHot { classes } = op else { unreachable!() };
        format!("[classes={classes}]")
    },
    parse: |a| Ok(Op::OneHot { classes: a.number("classes")? }),
    shape: |op, inputs| {
        let Op::OneHot { classes } = op else { unreachable!() };
        let mut dims = inputs[0].0.clone();
        dims.push(Dim::constant(*classes as i128));
        Ok(Shape(dims))
    },
    eval: |op, x, out| {
        let Op::OneHot { classes } = op else { unreachable!() };
        out.data.fill(0.0);
        for (i, &label) in x[0].data.iter().enumerate() {
            let class = label.round();
            if class >= 0.0 && (class as usize) < *classes {
                out.data[i * classes + class as usize] = 1.0;
            }
        }
    },
    vjp: no_vjp,
    jvp: no_jvp,
    onnx: |e, op, x, y| {
        let Op::OneHot { classes } = op else { unreachable!() };
        let labels = e.temp(&y.name, "Cast", &[&x[0].name], vec![("to", OnnxAttr::Int(ONNX_INT64))]);
        let depth = e.ints(&format!("{}/depth", y.name), vec![*classes as i64]);
        let values = e.floats(&format!("{}/values", y.name), vec![2], vec![0.0, 1.0]);
        e.node("OneHot", &[&labels, &depth, &values], &y.name, vec![("axis", OnnxAttr::Int(-1))]);
        Ok(())
    },
};

pub(super) static MSE: Rules = Rules {
    name: "mse",
    attributes: no_attributes,
    parse: |_| Ok(Op::Mse),
    shape: |_, inputs| broadcast_shapes(inputs[0], inputs[1]).map(|_| Shape(Vec::new())),
    eval: |_, x, out| {
        let shape = broadcast_dims(&x[0].shape, &x[1].shape);
        let (ia, ib) = (x[0].broadcast_index(&shape), x[1].broadcast_index(&shape));
        let n: usize = shape.iter().product();
        let total: f64 = (0..n).map(|i| x[0].data[ia.at(i)] - x[1].data[ib.at(i)]).map(|d| d * d).sum();
        out.data[0] = total / n.max(1) as f64;
    },
    // d mean((y - t)^2) = 2 (y - t) / n (dy - dt)
    vjp: |e, _, x, _, g, needs| {
        let d = e.sub(x[0], x[1]);
        let n = broadcast_shapes(&e.shape(x[0]), &e.shape(x[1])).ok().and_then(|s| s.elements()).unwrap_or_default();
        let inverse = e.inverse(&n);
        let two = e.constant(2.0);
        let scale = e.mul(two, inverse);
        let gs = e.mul(g, scale);
        let dy = e.mul(gs, d);
        vec![needs[0].then_some(dy), needs[1].then(|| e.neg(dy))]
    },
    jvp: |e, _, x, _, t| {
        let dt = match (t[0], t[1]) {
            (Some(a), Some(b)) => e.sub(a, b),
            (Some(a), None) => a,
            (None, Some(b)) => e.neg(b),
            (None, None) => return None,
        };
        let d = e.sub(x[0], x[1]);
        let two = e.constant(2.0);
        let product = e.mul(d, dt);
        let scaled = e.mul(two, product);
        Some(e.op(Op::Mean { axis: None }, &[scaled]))
    },
    onnx: |e, _, x, y| {
        let d = e.temp(&y.name, "Sub", &[&x[0].name, &x[1].name], Vec::new());
        let squared = e.temp(&y.name, "Mul", &[&d, &d], Vec::new());
        e.node("ReduceMean", &[&squared], &y.name, vec![("keepdims", OnnxAttr::Int(0))]);
        Ok(())
    },
};

pub(super) static SOFTMAX_CROSS_ENTROPY: Rules = Rules {
    name: "softmax_cross_entropy",
    attributes: no_attributes,
    parse: |_| Ok(Op::SoftmaxCrossEntropy),
    shape: scalar,
    eval: |_, x, out| {
        let (logits, labels) = (x[0], x[1]);
        let classes = *logits.shape.last().expect("rank 2");
        let rows = logits.data.len() / classes.max(1);
        let mut total = 0.0;
        for r in 0..rows {
            let (max, sum) = max_and_total(&logits.data, (r * classes, 1, classes));
            let label = labels.data[r].round() as usize % classes.max(1);
            total -= logits.data[r * classes + label] - (sum.ln() + max);
        }
        out.data[0] = total / rows.max(1) as f64;
    },
    // d logits = g (softmax(logits) - one_hot(labels)) / N; labels are not differentiable.
    vjp: |e, _, x, _, g, _| {
        let shape = e.shape(x[0]);
        let classes = shape.0[1].as_const().unwrap_or(1) as usize;
        let rows = shape.0[0].clone();
        let p = e.op(Op::Softmax { axis: 1 }, &[x[0]]);
        let hot = e.op(Op::OneHot { classes }, &[x[1]]);
        let diff = e.sub(p, hot);
        let scale = e.inverse(&rows);
        let gs = e.mul(g, scale);
        vec![Some(e.mul(gs, diff)), None]
    },
    jvp: |e, _, x, _, t| {
        let t = t[0]?;
        let shape = e.shape(x[0]);
        let classes = shape.0[1].as_const().unwrap_or(1) as usize;
        let p = e.op(Op::Softmax { axis: 1 }, &[x[0]]);
        let hot = e.op(Op::OneHot { classes }, &[x[1]]);
        let diff = e.sub(p, hot);
        let product = e.mul(diff, t);
        let per_row = e.op(Op::Sum { axis: Some(1) }, &[product]);
        Some(e.op(Op::Mean { axis: None }, &[per_row]))
    },
    onnx: |e, _, x, y| {
        // The labels are class numbers held as reals; the ONNX loss takes them as integers,
        // and averages over the batch by default, as this op does.
        let labels = e.temp(&y.name, "Cast", &[&x[1].name], vec![("to", OnnxAttr::Int(ONNX_INT64))]);
        e.node("SoftmaxCrossEntropyLoss", &[&x[0].name, &labels], &y.name, Vec::new());
        Ok(())
    },
};

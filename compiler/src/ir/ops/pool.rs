//! Max and average pooling over `[N, C, H, W]` and their adjoints.

use super::conv::{Windows, concrete_pair, concrete_spatial, onnx_output_padding, rank4, window};
use super::{Op, Rules};
use crate::ir::interp::Tensor;
use crate::ir::onnx::{OnnxArg, OnnxAttr, OnnxEmit};
use crate::ir::print::pairs;
use crate::shapes::{Dim, Shape};

/// Pooling without padding, windows that fit only, as this op pools.
fn onnx_pool(
    e: &mut OnnxEmit<'_>,
    op_type: &'static str,
    (kernel, stride): Pool,
    x: &[OnnxArg],
    y: &OnnxArg,
) -> Result<(), String> {
    let attributes = vec![
        ("kernel_shape", OnnxAttr::Ints(vec![kernel.0 as i64, kernel.1 as i64])),
        ("strides", OnnxAttr::Ints(vec![stride.0 as i64, stride.1 as i64])),
    ];
    e.node(op_type, &[&x[0].name], &y.name, attributes);
    Ok(())
}

/// The flat indices (over the whole input, as `MaxPool` numbers them) of each pooling
/// window's maximum, from `MaxPool`'s second output.
fn onnx_argmax(e: &mut OnnxEmit<'_>, (kernel, stride): Pool, x: &str, base: &str) -> String {
    let attributes = vec![
        ("kernel_shape", OnnxAttr::Ints(vec![kernel.0 as i64, kernel.1 as i64])),
        ("strides", OnnxAttr::Ints(vec![stride.0 as i64, stride.1 as i64])),
    ];
    let (pooled, indices) = (e.fresh(&format!("{base}/pooled")), e.fresh(&format!("{base}/argmax")));
    e.node_outputs("MaxPool", &[x], &[&pooled, &indices], attributes);
    indices
}

/// A pooling op's `(kernel, stride)`.
type Pool = ((usize, usize), (usize, usize));

fn max_pool(op: &Op) -> Pool {
    let Op::MaxPool2d { kernel, stride } = op else { unreachable!() };
    (*kernel, *stride)
}

fn max_pool_grad(op: &Op) -> Pool {
    let Op::MaxPool2dGrad { kernel, stride } = op else { unreachable!() };
    (*kernel, *stride)
}

fn max_pool_pick(op: &Op) -> Pool {
    let Op::MaxPool2dPick { kernel, stride } = op else { unreachable!() };
    (*kernel, *stride)
}

fn avg_pool(op: &Op) -> Pool {
    let Op::AvgPool2d { kernel, stride } = op else { unreachable!() };
    (*kernel, *stride)
}

fn pool_shape((kernel, stride): Pool, x: &Shape) -> Result<Shape, String> {
    rank4(x, "the input")?;
    concrete_spatial(x)?;
    let ho = window(&x.0[2], kernel.0, stride.0, 0)?;
    let wo = window(&x.0[3], kernel.1, stride.1, 0)?;
    Ok(Shape(vec![x.0[0].clone(), x.0[1].clone(), ho, wo]))
}

/// Calls `f(window, position)` with the index of every pooling window of `x` and the index
/// in `x` of the (first) maximum in it.
fn argmax_windows(x: &Tensor, kernel: (usize, usize), stride: (usize, usize), mut f: impl FnMut(usize, usize)) {
    let (n_count, c_count, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let ho = (h - kernel.0) / stride.0 + 1;
    let wo = (w - kernel.1) / stride.1 + 1;
    for plane in 0..n_count * c_count {
        for i in 0..ho {
            for j in 0..wo {
                let mut best = (f64::NEG_INFINITY, (plane * h + i * stride.0) * w + j * stride.1);
                for k in 0..kernel.0 {
                    for l in 0..kernel.1 {
                        let at = (plane * h + i * stride.0 + k) * w + j * stride.1 + l;
                        if x.data[at] > best.0 {
                            best = (x.data[at], at);
                        }
                    }
                }
                f((plane * ho + i) * wo + j, best.1);
            }
        }
    }
}

pub(super) static MAXPOOL2D: Rules = Rules {
    name: "maxpool2d",
    attributes: |op| {
        let Op::MaxPool2d { kernel, stride } = op else { unreachable!() };
        pairs(&[("kernel", *kernel), ("stride", *stride)])
    },
    parse: |a| Ok(Op::MaxPool2d { kernel: a.pair("kernel")?, stride: a.pair("stride")? }),
    shape: |op, inputs| pool_shape(max_pool(op), inputs[0]),
    eval: |op, x, out| {
        let (kernel, stride) = max_pool(op);
        argmax_windows(x[0], kernel, stride, |window, at| out.data[window] = x[0].data[at]);
    },
    // The cotangent goes to the position of each window's maximum.
    vjp: |e, op, x, _, g, _| {
        let (kernel, stride) = max_pool(op);
        vec![Some(e.op(Op::MaxPool2dGrad { kernel, stride }, &[x[0], g]))]
    },
    jvp: |e, op, x, _, t| {
        let (kernel, stride) = max_pool(op);
        t[0].map(|t| e.op(Op::MaxPool2dPick { kernel, stride }, &[x[0], t]))
    },
    onnx: |e, op, x, y| onnx_pool(e, "MaxPool", max_pool(op), x, y),
};

pub(super) static MAXPOOL2D_GRAD: Rules = Rules {
    name: "maxpool2d_grad",
    attributes: |op| {
        let Op::MaxPool2dGrad { kernel, stride } = op else { unreachable!() };
        pairs(&[("kernel", *kernel), ("stride", *stride)])
    },
    parse: |a| Ok(Op::MaxPool2dGrad { kernel: a.pair("kernel")?, stride: a.pair("stride")? }),
    shape: |_, inputs| Ok(inputs[0].clone()),
    eval: |op, x, out| {
        let (kernel, stride) = max_pool_grad(op);
        out.data.fill(0.0);
        argmax_windows(x[0], kernel, stride, |window, at| out.data[at] += x[1].data[window]);
    },
    // Linear in the cotangent; the positions of the maxima do not move under small changes.
    vjp: |e, op, x, _, z, needs| {
        let (kernel, stride) = max_pool_grad(op);
        vec![None, needs[1].then(|| e.op(Op::MaxPool2dPick { kernel, stride }, &[x[0], z]))]
    },
    jvp: |e, op, x, _, t| t[1].map(|t| e.op(op.clone(), &[x[0], t])),
    onnx: |e, op, x, y| {
        // Each window's cotangent is added at the flat index of its maximum, which `MaxPool`
        // gives as its second output.
        let indices = onnx_argmax(e, max_pool_grad(op), &x[0].name, &y.name);
        let shape = e.temp(&y.name, "Shape", &[&x[0].name], Vec::new());
        let zeros = e.temp(&y.name, "ConstantOfShape", &[&shape], Vec::new());
        let flat = e.ints(&format!("{}/flat", y.name), vec![-1]);
        let zeros = e.temp(&y.name, "Reshape", &[&zeros, &flat], Vec::new());
        let indices = e.temp(&y.name, "Reshape", &[&indices, &flat], Vec::new());
        let values = e.temp(&y.name, "Reshape", &[&x[1].name, &flat], Vec::new());
        let attributes = vec![("axis", OnnxAttr::Int(0)), ("reduction", OnnxAttr::String("add"))];
        let added = e.temp(&y.name, "ScatterElements", &[&zeros, &indices, &values], attributes);
        e.node("Reshape", &[&added, &shape], &y.name, Vec::new());
        Ok(())
    },
};

pub(super) static MAXPOOL2D_PICK: Rules = Rules {
    name: "maxpool2d_pick",
    attributes: |op| {
        let Op::MaxPool2dPick { kernel, stride } = op else { unreachable!() };
        pairs(&[("kernel", *kernel), ("stride", *stride)])
    },
    parse: |a| Ok(Op::MaxPool2dPick { kernel: a.pair("kernel")?, stride: a.pair("stride")? }),
    shape: |op, inputs| pool_shape(max_pool_pick(op), inputs[0]),
    eval: |op, x, out| {
        let (kernel, stride) = max_pool_pick(op);
        argmax_windows(x[0], kernel, stride, |window, at| out.data[window] = x[1].data[at]);
    },
    vjp: |e, op, x, _, z, needs| {
        let (kernel, stride) = max_pool_pick(op);
        vec![None, needs[1].then(|| e.op(Op::MaxPool2dGrad { kernel, stride }, &[x[0], z]))]
    },
    jvp: |e, op, x, _, t| t[1].map(|t| e.op(op.clone(), &[x[0], t])),
    onnx: |e, op, x, y| {
        let indices = onnx_argmax(e, max_pool_pick(op), &x[0].name, &y.name);
        let flat = e.ints(&format!("{}/flat", y.name), vec![-1]);
        let values = e.temp(&y.name, "Reshape", &[&x[1].name, &flat], Vec::new());
        e.node("Gather", &[&values, &indices], &y.name, vec![("axis", OnnxAttr::Int(0))]);
        Ok(())
    },
};

fn avgpool_eval(x: &Tensor, kernel: (usize, usize), stride: (usize, usize), y: &mut Tensor) {
    let (n_count, c_count, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let ho = (h - kernel.0) / stride.0 + 1;
    let wo = (w - kernel.1) / stride.1 + 1;
    let win = Windows { n: n_count, h, w, ho, wo, kernel, stride, pad: (0, 0) };
    let scale = 1.0 / (kernel.0 * kernel.1) as f64;
    y.data.fill(0.0);
    for plane in 0..n_count * c_count {
        win.each(|i, j, _, _, hp, wp| y.data[(plane * ho + i) * wo + j] += x.data[(plane * h + hp) * w + wp] * scale);
    }
}

pub(super) static AVGPOOL2D: Rules = Rules {
    name: "avgpool2d",
    attributes: |op| {
        let Op::AvgPool2d { kernel, stride } = op else { unreachable!() };
        pairs(&[("kernel", *kernel), ("stride", *stride)])
    },
    parse: |a| Ok(Op::AvgPool2d { kernel: a.pair("kernel")?, stride: a.pair("stride")? }),
    shape: |op, inputs| pool_shape(avg_pool(op), inputs[0]),
    eval: |op, x, out| {
        let (kernel, stride) = avg_pool(op);
        avgpool_eval(x[0], kernel, stride, out)
    },
    vjp: |e, op, x, _, g, _| {
        let (kernel, stride) = avg_pool(op);
        let input = concrete_pair(&e.shape(x[0]), 2);
        vec![Some(e.op(Op::AvgPool2dGrad { kernel, stride, input }, &[g]))]
    },
    jvp: |e, op, _, _, t| t[0].map(|t| e.op(op.clone(), &[t])),
    onnx: |e, op, x, y| onnx_pool(e, "AveragePool", avg_pool(op), x, y),
};

pub(super) static AVGPOOL2D_GRAD: Rules = Rules {
    name: "avgpool2d_grad",
    attributes: |op| {
        let Op::AvgPool2dGrad { kernel, stride, input } = op else { unreachable!() };
        pairs(&[("kernel", *kernel), ("stride", *stride), ("input", *input)])
    },
    parse: |a| Ok(Op::AvgPool2dGrad { kernel: a.pair("kernel")?, stride: a.pair("stride")?, input: a.pair("input")? }),
    shape: |op, inputs| {
        let Op::AvgPool2dGrad { input, .. } = op else { unreachable!() };
        let g = inputs[0];
        Ok(Shape(vec![g.0[0].clone(), g.0[1].clone(), Dim::constant(input.0 as i128), Dim::constant(input.1 as i128)]))
    },
    eval: |op, x, out| {
        let Op::AvgPool2dGrad { kernel, stride, input } = op else { unreachable!() };
        let g = x[0];
        let (n_count, c_count, ho, wo) = (g.shape[0], g.shape[1], g.shape[2], g.shape[3]);
        let (h, w) = *input;
        let win = Windows { n: n_count, h, w, ho, wo, kernel: *kernel, stride: *stride, pad: (0, 0) };
        let scale = 1.0 / (kernel.0 * kernel.1) as f64;
        out.data.fill(0.0);
        for plane in 0..n_count * c_count {
            win.each(|i, j, _, _, hp, wp| {
                out.data[(plane * h + hp) * w + wp] += g.data[(plane * ho + i) * wo + j] * scale
            });
        }
    },
    vjp: |e, op, _, _, z, _| {
        let Op::AvgPool2dGrad { kernel, stride, .. } = *op else { unreachable!() };
        vec![Some(e.op(Op::AvgPool2d { kernel, stride }, &[z]))]
    },
    jvp: |e, op, _, _, t| t[0].map(|t| e.op(op.clone(), &[t])),
    onnx: |e, op, x, y| {
        // A transposed convolution of each channel with a window of 1 / (kh kw).
        let Op::AvgPool2dGrad { kernel, stride, input } = op else { unreachable!() };
        let channels = x[0].shape.0[1].as_const().ok_or("symbolic channels")? as usize;
        let (out_h, out_w) = concrete_pair(&x[0].shape, 2);
        let share = 1.0 / (kernel.0 * kernel.1) as f32;
        let dims = vec![channels as i64, 1, kernel.0 as i64, kernel.1 as i64];
        let spread = e.floats(&format!("{}/spread", y.name), dims, vec![share; channels * kernel.0 * kernel.1]);
        let attributes = vec![
            ("strides", OnnxAttr::Ints(vec![stride.0 as i64, stride.1 as i64])),
            ("group", OnnxAttr::Int(channels as i64)),
            ("output_padding", onnx_output_padding(*input, (out_h, out_w), *kernel, *stride, (0, 0))),
        ];
        e.node("ConvTranspose", &[&x[0].name, &spread], &y.name, attributes);
        Ok(())
    },
};

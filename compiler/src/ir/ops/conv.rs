//! 2-D convolution over `[N, C, H, W]`, as PyTorch lays it out, and its adjoints, with
//! the window arithmetic that pooling shares.

use super::{Op, Rules};
use crate::ir::interp::Tensor;
use crate::ir::onnx::OnnxAttr;
use crate::ir::print::pairs;
use crate::shapes::{Dim, Shape};

/// The `output_padding` of a transposed convolution from `output` back to `input` (height,
/// width): the rows and columns at the end that the window's stride never reached, which
/// the transposed convolution would otherwise leave out.
pub(super) fn onnx_output_padding(
    input: (usize, usize),
    output: (usize, usize),
    kernel: (usize, usize),
    stride: (usize, usize),
    pad: (usize, usize),
) -> OnnxAttr {
    let extra =
        |size: usize, out: usize, k: usize, s: usize, p: usize| (size + 2 * p) as i64 - (k + (out - 1) * s) as i64;
    OnnxAttr::Ints(vec![
        extra(input.0, output.0, kernel.0, stride.0, pad.0),
        extra(input.1, output.1, kernel.1, stride.1, pad.1),
    ])
}

/// `floor((n + 2 pad - k) / stride) + 1` on dimensions (`shapes::window`).
pub(super) fn window(n: &Dim, k: usize, stride: usize, pad: usize) -> Result<Dim, String> {
    let size = |v: usize| Dim::constant(v as i128);
    match crate::shapes::window(n, &size(k), &size(stride), &size(pad)) {
        Ok(window) => Ok(window.out),
        Err(crate::shapes::WindowError::Overflow) => Err("too large".to_string()),
        Err(crate::shapes::WindowError::Stride) => Err("stride 0".to_string()),
    }
}

pub(super) fn rank4(shape: &Shape, what: &str) -> Result<(), String> {
    if shape.rank() == 4 { Ok(()) } else { Err(format!("{what} must be [N, C, H, W], not {shape}")) }
}

/// The height and width of a windowed op's input must be numbers: its derivative ops
/// carry them as attributes.
pub(super) fn concrete_spatial(shape: &Shape) -> Result<(), String> {
    match shape.0[2..].iter().find(|d| !d.is_const()) {
        Some(_) => Err(format!(
            "the input {shape} needs its height and width as numbers, not {} and {}",
            shape.0[2], shape.0[3]
        )),
        None => Ok(()),
    }
}

/// Visits every (output position, window position, input position) of a windowed op:
/// `f(n, c_out_index_base, i, j, k, l, h, w)` with `h, w` in padded-input coordinates,
/// skipping positions in the padding.
pub(super) struct Windows {
    pub(super) n: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) ho: usize,
    pub(super) wo: usize,
    pub(super) kernel: (usize, usize),
    pub(super) stride: (usize, usize),
    pub(super) pad: (usize, usize),
}

impl Windows {
    /// Calls `f(i, j, k, l, h, w)` for output row `i`, column `j`, window offset `(k, l)`,
    /// and the input position `(h, w)` it reads, when that is not padding.
    pub(super) fn each(&self, mut f: impl FnMut(usize, usize, usize, usize, usize, usize)) {
        for i in 0..self.ho {
            for j in 0..self.wo {
                for k in 0..self.kernel.0 {
                    for l in 0..self.kernel.1 {
                        let h = (i * self.stride.0 + k).checked_sub(self.pad.0);
                        let w = (j * self.stride.1 + l).checked_sub(self.pad.1);
                        if let (Some(h), Some(w)) = (h, w)
                            && h < self.h
                            && w < self.w
                        {
                            f(i, j, k, l, h, w);
                        }
                    }
                }
            }
        }
    }
}

fn conv_windows(
    x: &[usize],
    kernel: (usize, usize),
    stride: (usize, usize),
    pad: (usize, usize),
    out: (usize, usize),
) -> Windows {
    Windows { n: x[0], h: x[2], w: x[3], ho: out.0, wo: out.1, kernel, stride, pad }
}

fn conv_eval(x: &Tensor, w: &Tensor, stride: (usize, usize), pad: (usize, usize), y: &mut Tensor) {
    let (o_count, c_count, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
    let (ho, wo) = (y.shape[2], y.shape[3]);
    let win = conv_windows(&x.shape, (kh, kw), stride, pad, (ho, wo));
    y.data.fill(0.0);
    for n in 0..win.n {
        for o in 0..o_count {
            for c in 0..c_count {
                win.each(|i, j, k, l, h, wpos| {
                    y.data[((n * o_count + o) * ho + i) * wo + j] += w.data[((o * c_count + c) * kh + k) * kw + l]
                        * x.data[((n * c_count + c) * win.h + h) * win.w + wpos];
                });
            }
        }
    }
}

fn conv_input_grad_eval(
    g: &Tensor,
    w: &Tensor,
    stride: (usize, usize),
    pad: (usize, usize),
    input: (usize, usize),
    dx: &mut Tensor,
) {
    let (o_count, c_count, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
    let (n_count, ho, wo) = (g.shape[0], g.shape[2], g.shape[3]);
    let win = Windows { n: n_count, h: input.0, w: input.1, ho, wo, kernel: (kh, kw), stride, pad };
    dx.data.fill(0.0);
    for n in 0..n_count {
        for o in 0..o_count {
            for c in 0..c_count {
                win.each(|i, j, k, l, h, wpos| {
                    dx.data[((n * c_count + c) * input.0 + h) * input.1 + wpos] +=
                        g.data[((n * o_count + o) * ho + i) * wo + j] * w.data[((o * c_count + c) * kh + k) * kw + l];
                });
            }
        }
    }
}

fn conv_weight_grad_eval(
    x: &Tensor,
    g: &Tensor,
    stride: (usize, usize),
    pad: (usize, usize),
    kernel: (usize, usize),
    dw: &mut Tensor,
) {
    let (n_count, c_count) = (x.shape[0], x.shape[1]);
    let (o_count, ho, wo) = (g.shape[1], g.shape[2], g.shape[3]);
    let win = conv_windows(&x.shape, kernel, stride, pad, (ho, wo));
    let (kh, kw) = kernel;
    dw.data.fill(0.0);
    for n in 0..n_count {
        for o in 0..o_count {
            for c in 0..c_count {
                win.each(|i, j, k, l, h, wpos| {
                    dw.data[((o * c_count + c) * kh + k) * kw + l] += g.data[((n * o_count + o) * ho + i) * wo + j]
                        * x.data[((n * c_count + c) * win.h + h) * win.w + wpos];
                });
            }
        }
    }
}

/// The `(stride, pad)` of a convolution.
fn conv2d(op: &Op) -> ((usize, usize), (usize, usize)) {
    let Op::Conv2d { stride, pad } = op else { unreachable!() };
    (*stride, *pad)
}

/// Two spatial sizes, which the shape analysis has made concrete (only the batch may be a
/// symbol).
pub(super) fn concrete_pair(shape: &Shape, from: usize) -> (usize, usize) {
    let size = |d: &Dim| d.as_const().expect("concrete spatial sizes") as usize;
    (size(&shape.0[from]), size(&shape.0[from + 1]))
}

pub(super) static CONV2D: Rules = Rules {
    name: "conv2d",
    attributes: |op| {
        let Op::Conv2d { stride, pad } = op else { unreachable!() };
        pairs(&[("stride", *stride), ("pad", *pad)])
    },
    parse: |a| Ok(Op::Conv2d { stride: a.pair("stride")?, pad: a.pair("pad")? }),
    shape: |op, inputs| {
        let (stride, pad) = conv2d(op);
        let (x, w) = (inputs[0], inputs[1]);
        rank4(x, "the input")?;
        rank4(w, "the weight")?;
        concrete_spatial(x)?;
        if x.0[1] != w.0[1] {
            return Err(format!("{x} has {} channels, the weight {w} expects {}", x.0[1], w.0[1]));
        }
        let (kh, kw) = (
            w.0[2].as_const().ok_or("symbolic kernel")? as usize,
            w.0[3].as_const().ok_or("symbolic kernel")? as usize,
        );
        let ho = window(&x.0[2], kh, stride.0, pad.0)?;
        let wo = window(&x.0[3], kw, stride.1, pad.1)?;
        Ok(Shape(vec![x.0[0].clone(), w.0[0].clone(), ho, wo]))
    },
    eval: |op, x, out| {
        let (stride, pad) = conv2d(op);
        conv_eval(x[0], x[1], stride, pad, out)
    },
    vjp: |e, op, x, _, g, needs| {
        let (stride, pad) = conv2d(op);
        let (xs, ws) = (e.shape(x[0]), e.shape(x[1]));
        let dx = needs[0].then(|| e.op(Op::Conv2dInputGrad { stride, pad, input: concrete_pair(&xs, 2) }, &[g, x[1]]));
        let dw =
            needs[1].then(|| e.op(Op::Conv2dWeightGrad { stride, pad, kernel: concrete_pair(&ws, 2) }, &[x[0], g]));
        vec![dx, dw]
    },
    jvp: |e, op, x, _, t| {
        let a = t[0].map(|t| e.op(op.clone(), &[t, x[1]]));
        let b = t[1].map(|t| e.op(op.clone(), &[x[0], t]));
        e.sum_opt(a, b)
    },
    onnx: |e, op, x, y| {
        let (stride, pad) = conv2d(op);
        let pads = vec![pad.0 as i64, pad.1 as i64, pad.0 as i64, pad.1 as i64];
        let strides = vec![stride.0 as i64, stride.1 as i64];
        let attributes = vec![("pads", OnnxAttr::Ints(pads)), ("strides", OnnxAttr::Ints(strides))];
        e.node("Conv", &[&x[0].name, &x[1].name], &y.name, attributes);
        Ok(())
    },
};

pub(super) static CONV2D_INPUT_GRAD: Rules = Rules {
    name: "conv2d_input_grad",
    attributes: |op| {
        let Op::Conv2dInputGrad { stride, pad, input } = op else { unreachable!() };
        pairs(&[("stride", *stride), ("pad", *pad), ("input", *input)])
    },
    parse: |a| Ok(Op::Conv2dInputGrad { stride: a.pair("stride")?, pad: a.pair("pad")?, input: a.pair("input")? }),
    shape: |op, inputs| {
        let Op::Conv2dInputGrad { input, .. } = op else { unreachable!() };
        let (g, w) = (inputs[0], inputs[1]);
        Ok(Shape(vec![g.0[0].clone(), w.0[1].clone(), Dim::constant(input.0 as i128), Dim::constant(input.1 as i128)]))
    },
    eval: |op, x, out| {
        let Op::Conv2dInputGrad { stride, pad, input } = op else { unreachable!() };
        conv_input_grad_eval(x[0], x[1], *stride, *pad, *input, out)
    },
    // Linear in both inputs: <dx(g, w), z> = <g, conv(z, w)> = <w, dw(z, g)>.
    vjp: |e, op, x, _, z, needs| {
        let Op::Conv2dInputGrad { stride, pad, .. } = *op else { unreachable!() };
        let ws = e.shape(x[1]);
        let dg = needs[0].then(|| e.op(Op::Conv2d { stride, pad }, &[z, x[1]]));
        let dw =
            needs[1].then(|| e.op(Op::Conv2dWeightGrad { stride, pad, kernel: concrete_pair(&ws, 2) }, &[z, x[0]]));
        vec![dg, dw]
    },
    jvp: |e, op, x, _, t| {
        let a = t[0].map(|t| e.op(op.clone(), &[t, x[1]]));
        let b = t[1].map(|t| e.op(op.clone(), &[x[0], t]));
        e.sum_opt(a, b)
    },
    onnx: |e, op, x, y| {
        // The transposed convolution, with the output padding that gives back the input's
        // size when the stride dropped rows or columns at the end.
        let Op::Conv2dInputGrad { stride, pad, input } = op else { unreachable!() };
        let (out_h, out_w) = concrete_pair(&x[0].shape, 2);
        let (kh, kw) = concrete_pair(&x[1].shape, 2);
        let attributes = vec![
            ("strides", OnnxAttr::Ints(vec![stride.0 as i64, stride.1 as i64])),
            ("pads", OnnxAttr::Ints(vec![pad.0 as i64, pad.1 as i64, pad.0 as i64, pad.1 as i64])),
            ("output_padding", onnx_output_padding(*input, (out_h, out_w), (kh, kw), *stride, *pad)),
        ];
        e.node("ConvTranspose", &[&x[0].name, &x[1].name], &y.name, attributes);
        Ok(())
    },
};

pub(super) static CONV2D_WEIGHT_GRAD: Rules = Rules {
    name: "conv2d_weight_grad",
    attributes: |op| {
        let Op::Conv2dWeightGrad { stride, pad, kernel } = op else { unreachable!() };
        pairs(&[("stride", *stride), ("pad", *pad), ("kernel", *kernel)])
    },
    parse: |a| Ok(Op::Conv2dWeightGrad { stride: a.pair("stride")?, pad: a.pair("pad")?, kernel: a.pair("kernel")? }),
    shape: |op, inputs| {
        let Op::Conv2dWeightGrad { kernel, .. } = op else { unreachable!() };
        let (x, g) = (inputs[0], inputs[1]);
        Ok(Shape(vec![
            g.0[1].clone(),
            x.0[1].clone(),
            Dim::constant(kernel.0 as i128),
            Dim::constant(kernel.1 as i128),
        ]))
    },
    eval: |op, x, out| {
        let Op::Conv2dWeightGrad { stride, pad, kernel } = op else { unreachable!() };
        conv_weight_grad_eval(x[0], x[1], *stride, *pad, *kernel, out)
    },
    // Linear in both inputs: <dw(x, g), z> = <g, conv(x, z)> = <x, dx(g, z)>.
    vjp: |e, op, x, _, z, needs| {
        let Op::Conv2dWeightGrad { stride, pad, .. } = *op else { unreachable!() };
        let xs = e.shape(x[0]);
        let dx = needs[0].then(|| e.op(Op::Conv2dInputGrad { stride, pad, input: concrete_pair(&xs, 2) }, &[x[1], z]));
        let dg = needs[1].then(|| e.op(Op::Conv2d { stride, pad }, &[x[0], z]));
        vec![dx, dg]
    },
    jvp: |e, op, x, _, t| {
        let a = t[0].map(|t| e.op(op.clone(), &[t, x[1]]));
        let b = t[1].map(|t| e.op(op.clone(), &[x[0], t]));
        e.sum_opt(a, b)
    },
    onnx: |e, op, x, y| {
        // dW[o, c] = sum over n of x[n, c] correlated with g[n, o] dilated by the stride: a
        // convolution with the batch as the channels, images and cotangents swapped in and
        // out of the batch axis, cut to the kernel's size.
        let Op::Conv2dWeightGrad { stride, pad, kernel } = op else { unreachable!() };
        let (h, w) = concrete_pair(&x[0].shape, 2);
        let (out_h, out_w) = concrete_pair(&x[1].shape, 2);
        let swap = || vec![("perm", OnnxAttr::Ints(vec![1, 0, 2, 3]))];
        let images = e.temp(&y.name, "Transpose", &[&x[0].name], swap());
        let cotangents = e.temp(&y.name, "Transpose", &[&x[1].name], swap());
        let attributes = vec![
            ("dilations", OnnxAttr::Ints(vec![stride.0 as i64, stride.1 as i64])),
            ("pads", OnnxAttr::Ints(vec![pad.0 as i64, pad.1 as i64, pad.0 as i64, pad.1 as i64])),
        ];
        let mut full = e.temp(&y.name, "Conv", &[&images, &cotangents], attributes);
        let size = (h + 2 * pad.0 - (out_h - 1) * stride.0, w + 2 * pad.1 - (out_w - 1) * stride.1);
        if size != *kernel {
            let starts = e.ints(&format!("{}/starts", y.name), vec![0, 0]);
            let ends = e.ints(&format!("{}/ends", y.name), vec![kernel.0 as i64, kernel.1 as i64]);
            let axes = e.ints(&format!("{}/axes", y.name), vec![2, 3]);
            full = e.temp(&y.name, "Slice", &[&full, &starts, &ends, &axes], Vec::new());
        }
        e.node("Transpose", &[&full], &y.name, swap());
        Ok(())
    },
};

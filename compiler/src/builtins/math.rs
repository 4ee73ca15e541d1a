//! Functions of tensors that are not layers: elementwise functions (`ln`, `exp`, ...), the
//! transpose, and `conv` of an input with a given filter. Each with its shape rule and
//! lowering.

use super::{ArgKind, Entry, Form, Kind, X, aka, builtin, p};
use crate::checked::Call;
use crate::ir::{Emitter, LowerError, Op, Value as IrValue};
use crate::shapes::rules::{Applied, Rule, Settings, Site};
use crate::shapes::{Dim, Shape, Value, window};
use nnc_grammar::{Code, Diagnostic};

pub static ENTRIES: &[Entry] = &[
    Entry {
        builtin: builtin("ln", Kind::Function, &[X], "Natural logarithm."),
        form: Form::Rule(|_, _, inputs| primitive(inputs, Op::Ln)),
    },
    Entry {
        builtin: builtin("exp", Kind::Function, &[X], "Exponential."),
        form: Form::Rule(|_, _, inputs| primitive(inputs, Op::Exp)),
    },
    Entry {
        builtin: builtin("sqrt", Kind::Function, &[X], "Square root."),
        form: Form::Rule(|_, _, inputs| primitive(inputs, Op::Sqrt)),
    },
    Entry {
        builtin: builtin("sin", Kind::Function, &[X], "Sine."),
        form: Form::Rule(|_, _, inputs| primitive(inputs, Op::Sin)),
    },
    Entry {
        builtin: builtin("cos", Kind::Function, &[X], "Cosine."),
        form: Form::Rule(|_, _, inputs| primitive(inputs, Op::Cos)),
    },
    Entry {
        builtin: builtin("tan", Kind::Function, &[X], "Tangent."),
        form: Form::Rule(|_, _, inputs| primitive(inputs, Op::Tan)),
    },
    Entry {
        builtin: builtin("abs", Kind::Function, &[X], "Absolute value."),
        form: Form::Rule(|_, _, inputs| primitive(inputs, Op::Abs)),
    },
    Entry {
        builtin: builtin("transpose", Kind::Function, &[X], "Swaps the last two dimensions; the same as `x^T`."),
        form: Form::Rule(|_, _, inputs| {
            let value = transpose(&inputs[0]);
            let call = value.shape.is_some().then_some(Call::Primitive(Op::Transpose));
            Ok(Applied { value, call, ..Applied::default() })
        }),
    },
    Entry {
        builtin: builtin(
            "conv",
            Kind::Function,
            &[
                X,
                p(
                    "w",
                    ArgKind::Tensor,
                    None,
                    "the filter: `[kh, kw]`, or `[out_c, in_c, kh, kw]` for `[B, C, H, W]` inputs",
                ),
                p("stride", ArgKind::IntOrPair, Some("1"), "step between filter positions"),
                aka("pad", ArgKind::IntOrPair, Some("0"), &["padding"], "zeros added on each side"),
            ],
            "Convolution (as neural networks define it: a sliding weighted sum, no flip) of `x` with the filter \
                  `w`: `y[i, j] = sum over k, l of w[k, l] x[i + k, j + l]`.",
        ),
        form: Form::Rule(conv),
    },
];

/// The value of an operand whose shape is not known.
static UNKNOWN: Value = Value { shape: None, why: Vec::new(), node: None, constant: None };

/// A function that is one IR primitive on its input and keeps its shape.
fn primitive(inputs: &[Value], op: Op) -> Rule {
    Ok(Applied::same_by(&inputs[0], Call::Primitive(op)))
}

pub(crate) fn transpose(value: &Value) -> Value {
    let Some(shape) = &value.shape else {
        return Value::unknown();
    };
    if shape.rank() < 2 {
        return value.clone();
    }
    let mut out = value.clone();
    let n = shape.rank();
    if let Some(s) = out.shape.as_mut() {
        s.0.swap(n - 2, n - 1);
    }
    out.why.swap(n - 2, n - 1);
    out
}

/// `conv(x, w)`: 2-D `[H, W]` with `[kh, kw]`, or `[N, C, H, W]` with `[O, C, kh, kw]`.
fn conv(site: &Site<'_>, settings: &Settings, inputs: &[Value]) -> Rule {
    let (x, w) = (&inputs[0], inputs.get(1).unwrap_or(&UNKNOWN));
    let (Some(sx), Some(sw)) = (&x.shape, &w.shape) else {
        return Ok(Applied { value: Value::unknown(), ..Applied::default() });
    };
    let stride = settings.int("stride").and_then(|d| d.as_const()).unwrap_or(1);
    let pad = settings.int("pad").and_then(|d| d.as_const()).unwrap_or(0);
    let axis = |n: &Dim, k: &Dim| -> Option<Dim> {
        let out = window(n, k, &Dim::constant(stride), &Dim::constant(pad)).ok()?.out;
        (!out.is_nonpositive()).then_some(out)
    };
    let (dims, spatial) = match (sx.rank(), sw.rank()) {
        (2, 2) => (vec![], (&sx.0[0], &sx.0[1], &sw.0[0], &sw.0[1])),
        (4, 4) if sx.0[1] == sw.0[1] => {
            (vec![sx.0[0].clone(), sw.0[0].clone()], (&sx.0[2], &sx.0[3], &sw.0[2], &sw.0[3]))
        }
        _ => {
            return Err(Diagnostic::new(
                Code::ArgumentShape,
                format!(
                    "`conv` takes [H, W] with [kh, kw], or [N, C, H, W] with [O, C, kh, kw], but gets {sx} and {sw}"
                ),
                site.span,
                "shapes do not fit",
            ));
        }
    };
    let (Some(ho), Some(wo)) = (axis(spatial.0, spatial.2), axis(spatial.1, spatial.3)) else {
        return Err(Diagnostic::new(
            Code::EmptyDimension,
            format!("`conv` of {sx} with the filter {sw} leaves no output"),
            site.span,
            "the filter is larger than the input",
        ));
    };
    let mut dims = dims;
    dims.push(ho);
    dims.push(wo);
    let stride = settings.int("stride").unwrap_or_else(|| Dim::constant(1));
    let pad = settings.int("pad").unwrap_or_default();
    Ok(Applied { value: Value::new(Shape(dims)), call: Some(Call::Conv(Conv { stride, pad })), ..Applied::default() })
}

/// `conv(x, w)` with a stride and a padding on both axes.
#[derive(Clone, Debug)]
pub struct Conv {
    pub stride: Dim,
    pub pad: Dim,
}

impl Conv {
    /// A single image and filter, `[H, W]` and `[kh, kw]`, is convolved as one batch of one
    /// channel.
    pub(crate) fn lower(&self, e: &mut Emitter<'_>) -> Result<IrValue, LowerError> {
        let (mut x, mut w) = (e.input(0)?, e.input(1)?);
        let (stride, pad) = (e.size(&self.stride)?.max(1), e.size(&self.pad)?);
        let flat = e.shape(x).rank() == 2;
        if flat {
            let as4 = |shape: &Shape| Shape([vec![Dim::constant(1); 2], shape.0.clone()].concat());
            let (xs, ws) = (as4(e.shape(x)), as4(e.shape(w)));
            x = e.op(Op::Reshape(xs), &[x])?;
            w = e.op(Op::Reshape(ws), &[w])?;
        }
        let y = e.op(Op::Conv2d { stride: (stride, stride), pad: (pad, pad) }, &[x, w])?;
        if !flat {
            return Ok(y);
        }
        let dims = e.shape(y).0[2..].to_vec();
        e.op(Op::Reshape(Shape(dims)), &[y])
    }
}

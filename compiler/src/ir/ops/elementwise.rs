//! Elementwise ops: unary functions of one tensor and binary ones of two, which broadcast
//! as NumPy does. Each rule names the input `x` (or the inputs `a` and `b`), the output `y`,
//! the cotangent `g` and the tangent `t`.

use super::{Emit, Op, Rules, broadcast2, map, no_attributes, no_jvp, no_vjp, onnx_same, same, zip};
use crate::ir::Value;
use crate::ir::onnx::{ONNX_FLOAT, OnnxArg, OnnxAttr, OnnxEmit};

/// A comparison, whose boolean result ONNX casts to the 0 or 1 this op gives.
fn onnx_compare(e: &mut OnnxEmit<'_>, op_type: &'static str, inputs: &[&str], y: &OnnxArg) -> Result<(), String> {
    let test = e.temp(&y.name, op_type, inputs, Vec::new());
    e.node("Cast", &[&test], &y.name, vec![("to", OnnxAttr::Int(ONNX_FLOAT))]);
    Ok(())
}

pub(super) static NEG: Rules = Rules {
    name: "neg",
    attributes: no_attributes,
    parse: |_| Ok(Op::Neg),
    shape: same,
    eval: |_, x, out| map(x[0], out, |v| -v),
    vjp: |e, _, _, _, g, _| vec![Some(e.neg(g))],
    jvp: |e, _, _, _, t| t[0].map(|t| e.neg(t)),
    onnx: |e, _, x, y| onnx_same(e, "Neg", x, y),
};

pub(super) static EXP: Rules = Rules {
    name: "exp",
    attributes: no_attributes,
    parse: |_| Ok(Op::Exp),
    shape: same,
    eval: |_, x, out| map(x[0], out, f64::exp),
    // d exp(x) = exp(x) dx = y dx
    vjp: |e, _, _, y, g, _| vec![Some(e.mul(g, y))],
    jvp: |e, _, _, y, t| e.mul_opt(t[0], y),
    onnx: |e, _, x, y| onnx_same(e, "Exp", x, y),
};

pub(super) static LN: Rules = Rules {
    name: "ln",
    attributes: no_attributes,
    parse: |_| Ok(Op::Ln),
    shape: same,
    eval: |_, x, out| map(x[0], out, f64::ln),
    // d ln(x) = dx / x
    vjp: |e, _, x, _, g, _| vec![Some(e.div(g, x[0]))],
    jvp: |e, _, x, _, t| t[0].map(|t| e.div(t, x[0])),
    onnx: |e, _, x, y| onnx_same(e, "Log", x, y),
};

pub(super) static SQRT: Rules = Rules {
    name: "sqrt",
    attributes: no_attributes,
    parse: |_| Ok(Op::Sqrt),
    shape: same,
    eval: |_, x, out| map(x[0], out, f64::sqrt),
    // d sqrt(x) = dx / (2 y)
    vjp: |e, _, _, y, g, _| {
        let two = e.constant(2.0);
        let twice = e.mul(two, y);
        vec![Some(e.div(g, twice))]
    },
    jvp: |e, _, _, y, t| {
        let t = t[0]?;
        let two = e.constant(2.0);
        let twice = e.mul(two, y);
        Some(e.div(t, twice))
    },
    onnx: |e, _, x, y| onnx_same(e, "Sqrt", x, y),
};

pub(super) static SIN: Rules = Rules {
    name: "sin",
    attributes: no_attributes,
    parse: |_| Ok(Op::Sin),
    shape: same,
    eval: |_, x, out| map(x[0], out, f64::sin),
    // d sin(x) = cos(x) dx
    vjp: |e, _, x, _, g, _| {
        let cos = e.op(Op::Cos, &[x[0]]);
        vec![Some(e.mul(g, cos))]
    },
    jvp: |e, _, x, _, t| {
        let t = t[0]?;
        let cos = e.op(Op::Cos, &[x[0]]);
        Some(e.mul(cos, t))
    },
    onnx: |e, _, x, y| onnx_same(e, "Sin", x, y),
};

pub(super) static COS: Rules = Rules {
    name: "cos",
    attributes: no_attributes,
    parse: |_| Ok(Op::Cos),
    shape: same,
    eval: |_, x, out| map(x[0], out, f64::cos),
    // d cos(x) = -sin(x) dx
    vjp: |e, _, x, _, g, _| {
        let sin = e.op(Op::Sin, &[x[0]]);
        let product = e.mul(g, sin);
        vec![Some(e.neg(product))]
    },
    jvp: |e, _, x, _, t| {
        let t = t[0]?;
        let sin = e.op(Op::Sin, &[x[0]]);
        let product = e.mul(sin, t);
        Some(e.neg(product))
    },
    onnx: |e, _, x, y| onnx_same(e, "Cos", x, y),
};

/// `1 + y^2` or `1 - y^2`, the derivatives of tan and tanh in terms of their output.
fn one_plus_square(e: &mut Emit<'_>, y: Value, plus: bool) -> Value {
    let one = e.constant(1.0);
    let square = e.mul(y, y);
    if plus { e.add(one, square) } else { e.sub(one, square) }
}

pub(super) static TAN: Rules = Rules {
    name: "tan",
    attributes: no_attributes,
    parse: |_| Ok(Op::Tan),
    shape: same,
    eval: |_, x, out| map(x[0], out, f64::tan),
    // d tan(x) = (1 + tan(x)^2) dx
    vjp: |e, _, _, y, g, _| {
        let d = one_plus_square(e, y, true);
        vec![Some(e.mul(g, d))]
    },
    jvp: |e, _, _, y, t| {
        let t = t[0]?;
        let d = one_plus_square(e, y, true);
        Some(e.mul(d, t))
    },
    onnx: |e, _, x, y| onnx_same(e, "Tan", x, y),
};

pub(super) static ERF: Rules = Rules {
    name: "erf",
    attributes: no_attributes,
    parse: |_| Ok(Op::Erf),
    shape: same,
    eval: |_, x, out| map(x[0], out, libm::erf),
    // d erf(x) = 2 / sqrt(pi) · exp(-x^2) dx
    vjp: |e, _, x, _, g, _| {
        let d = erf_derivative(e, x[0]);
        vec![Some(e.mul(g, d))]
    },
    jvp: |e, _, x, _, t| {
        let t = t[0]?;
        let d = erf_derivative(e, x[0]);
        Some(e.mul(d, t))
    },
    onnx: |e, _, x, y| onnx_same(e, "Erf", x, y),
};

/// `2 / sqrt(pi) · exp(-x^2)`, the derivative of erf.
fn erf_derivative(e: &mut Emit<'_>, x: Value) -> Value {
    let square = e.mul(x, x);
    let negated = e.neg(square);
    let bell = e.op(Op::Exp, &[negated]);
    let scale = e.constant(std::f64::consts::FRAC_2_SQRT_PI);
    e.mul(scale, bell)
}

pub(super) static TANH: Rules = Rules {
    name: "tanh",
    attributes: no_attributes,
    parse: |_| Ok(Op::Tanh),
    shape: same,
    eval: |_, x, out| map(x[0], out, f64::tanh),
    // d tanh(x) = (1 - tanh(x)^2) dx
    vjp: |e, _, _, y, g, _| {
        let d = one_plus_square(e, y, false);
        vec![Some(e.mul(g, d))]
    },
    jvp: |e, _, _, y, t| {
        let t = t[0]?;
        let d = one_plus_square(e, y, false);
        Some(e.mul(d, t))
    },
    onnx: |e, _, x, y| onnx_same(e, "Tanh", x, y),
};

/// `y (1 - y)`, the derivative of the sigmoid in terms of its output.
fn sigmoid_slope(e: &mut Emit<'_>, y: Value) -> Value {
    let one = e.constant(1.0);
    let rest = e.sub(one, y);
    e.mul(y, rest)
}

pub(super) static SIGMOID: Rules = Rules {
    name: "sigmoid",
    attributes: no_attributes,
    parse: |_| Ok(Op::Sigmoid),
    shape: same,
    eval: |_, x, out| map(x[0], out, |v| 1.0 / (1.0 + (-v).exp())),
    vjp: |e, _, _, y, g, _| {
        let d = sigmoid_slope(e, y);
        vec![Some(e.mul(g, d))]
    },
    jvp: |e, _, _, y, t| {
        let t = t[0]?;
        let d = sigmoid_slope(e, y);
        Some(e.mul(d, t))
    },
    onnx: |e, _, x, y| onnx_same(e, "Sigmoid", x, y),
};

pub(super) static RELU: Rules = Rules {
    name: "relu",
    attributes: no_attributes,
    parse: |_| Ok(Op::Relu),
    shape: same,
    eval: |_, x, out| map(x[0], out, |v| v.max(0.0)),
    // The derivative is 0 at 0, as in PyTorch.
    vjp: |e, _, x, _, g, _| {
        let step = e.op(Op::Step, &[x[0]]);
        vec![Some(e.mul(g, step))]
    },
    jvp: |e, _, x, _, t| {
        let t = t[0]?;
        let step = e.op(Op::Step, &[x[0]]);
        Some(e.mul(step, t))
    },
    onnx: |e, _, x, y| onnx_same(e, "Relu", x, y),
};

pub(super) static ABS: Rules = Rules {
    name: "abs",
    attributes: no_attributes,
    parse: |_| Ok(Op::Abs),
    shape: same,
    eval: |_, x, out| map(x[0], out, f64::abs),
    vjp: |e, _, x, _, g, _| {
        let sign = e.op(Op::Sign, &[x[0]]);
        vec![Some(e.mul(g, sign))]
    },
    jvp: |e, _, x, _, t| {
        let t = t[0]?;
        let sign = e.op(Op::Sign, &[x[0]]);
        Some(e.mul(sign, t))
    },
    onnx: |e, _, x, y| onnx_same(e, "Abs", x, y),
};

pub(super) static STEP: Rules = Rules {
    name: "step",
    attributes: no_attributes,
    parse: |_| Ok(Op::Step),
    shape: same,
    eval: |_, x, out| map(x[0], out, |v| if v > 0.0 { 1.0 } else { 0.0 }),
    vjp: no_vjp,
    jvp: no_jvp,
    onnx: |e, _, x, y| {
        let zero = e.floats(&format!("{}/zero", y.name), Vec::new(), vec![0.0]);
        onnx_compare(e, "Greater", &[&x[0].name, &zero], y)
    },
};

pub(super) static SIGN: Rules = Rules {
    name: "sign",
    attributes: no_attributes,
    parse: |_| Ok(Op::Sign),
    shape: same,
    eval: |_, x, out| {
        map(x[0], out, |v| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                0.0
            }
        })
    },
    vjp: no_vjp,
    jvp: no_jvp,
    onnx: |e, _, x, y| onnx_same(e, "Sign", x, y),
};

pub(super) static ADD: Rules = Rules {
    name: "add",
    attributes: no_attributes,
    parse: |_| Ok(Op::Add),
    shape: broadcast2,
    eval: |_, x, out| zip(x[0], x[1], out, |a, b| a + b),
    vjp: |_, _, _, _, g, _| vec![Some(g), Some(g)],
    jvp: |e, _, _, _, t| e.sum_opt(t[0], t[1]),
    onnx: |e, _, x, y| onnx_same(e, "Add", x, y),
};

pub(super) static SUB: Rules = Rules {
    name: "sub",
    attributes: no_attributes,
    parse: |_| Ok(Op::Sub),
    shape: broadcast2,
    eval: |_, x, out| zip(x[0], x[1], out, |a, b| a - b),
    vjp: |e, _, _, _, g, needs| vec![Some(g), needs[1].then(|| e.neg(g))],
    jvp: |e, _, _, _, t| match (t[0], t[1]) {
        (Some(a), Some(b)) => Some(e.sub(a, b)),
        (Some(a), None) => Some(a),
        (None, Some(b)) => Some(e.neg(b)),
        (None, None) => None,
    },
    onnx: |e, _, x, y| onnx_same(e, "Sub", x, y),
};

pub(super) static MUL: Rules = Rules {
    name: "mul",
    attributes: no_attributes,
    parse: |_| Ok(Op::Mul),
    shape: broadcast2,
    eval: |_, x, out| zip(x[0], x[1], out, |a, b| a * b),
    // d(ab) = b da + a db
    vjp: |e, _, x, _, g, needs| vec![needs[0].then(|| e.mul(g, x[1])), needs[1].then(|| e.mul(g, x[0]))],
    jvp: |e, _, x, _, t| {
        let da = t[0].map(|t| e.mul(t, x[1]));
        let db = t[1].map(|t| e.mul(x[0], t));
        e.sum_opt(da, db)
    },
    onnx: |e, _, x, y| onnx_same(e, "Mul", x, y),
};

pub(super) static DIV: Rules = Rules {
    name: "div",
    attributes: no_attributes,
    parse: |_| Ok(Op::Div),
    shape: broadcast2,
    eval: |_, x, out| zip(x[0], x[1], out, |a, b| a / b),
    // d(a/b) = da / b - (a/b) db / b
    vjp: |e, _, x, y, g, needs| {
        let da = needs[0].then(|| e.div(g, x[1]));
        let db = needs[1].then(|| {
            let gy = e.mul(g, y);
            let q = e.div(gy, x[1]);
            e.neg(q)
        });
        vec![da, db]
    },
    jvp: |e, _, x, y, t| {
        let da = t[0].map(|t| e.div(t, x[1]));
        let db = t[1].map(|t| {
            let ty = e.mul(y, t);
            let q = e.div(ty, x[1]);
            e.neg(q)
        });
        e.sum_opt(da, db)
    },
    onnx: |e, _, x, y| onnx_same(e, "Div", x, y),
};

pub(super) static POW: Rules = Rules {
    name: "pow",
    attributes: no_attributes,
    parse: |_| Ok(Op::Pow),
    shape: broadcast2,
    eval: |_, x, out| zip(x[0], x[1], out, f64::powf),
    // d(a^b) = b a^(b-1) da + a^b ln(a) db
    vjp: |e, _, x, y, g, needs| {
        let da = needs[0].then(|| {
            let one = e.constant(1.0);
            let b1 = e.sub(x[1], one);
            let p = e.op(Op::Pow, &[x[0], b1]);
            let slope = e.mul(x[1], p);
            e.mul(g, slope)
        });
        let db = needs[1].then(|| {
            let ln = e.op(Op::Ln, &[x[0]]);
            let slope = e.mul(y, ln);
            e.mul(g, slope)
        });
        vec![da, db]
    },
    jvp: |e, _, x, y, t| {
        let da = t[0].map(|t| {
            let one = e.constant(1.0);
            let b1 = e.sub(x[1], one);
            let p = e.op(Op::Pow, &[x[0], b1]);
            let slope = e.mul(x[1], p);
            e.mul(slope, t)
        });
        let db = t[1].map(|t| {
            let ln = e.op(Op::Ln, &[x[0]]);
            let slope = e.mul(y, ln);
            e.mul(slope, t)
        });
        e.sum_opt(da, db)
    },
    onnx: |e, _, x, y| onnx_same(e, "Pow", x, y),
};

/// The masks that route the derivative of max(a, b) or min(a, b): to `a` where `a` is the
/// one chosen (`a >= b` for max, `b >= a` for min), else to `b`.
fn select_masks(e: &mut Emit<'_>, x: &[Value], is_max: bool) -> (Value, Value) {
    let to_a = if is_max { e.op(Op::GreaterEq, &[x[0], x[1]]) } else { e.op(Op::GreaterEq, &[x[1], x[0]]) };
    let one = e.constant(1.0);
    let to_b = e.sub(one, to_a);
    (to_a, to_b)
}

fn extremum_vjp(e: &mut Emit<'_>, x: &[Value], g: Value, needs: &[bool], is_max: bool) -> Vec<Option<Value>> {
    let (to_a, to_b) = select_masks(e, x, is_max);
    vec![needs[0].then(|| e.mul(g, to_a)), needs[1].then(|| e.mul(g, to_b))]
}

fn extremum_jvp(e: &mut Emit<'_>, x: &[Value], t: &[Option<Value>], is_max: bool) -> Option<Value> {
    let (to_a, to_b) = select_masks(e, x, is_max);
    let a = t[0].map(|t| e.mul(to_a, t));
    let b = t[1].map(|t| e.mul(to_b, t));
    e.sum_opt(a, b)
}

pub(super) static MAX: Rules = Rules {
    name: "max",
    attributes: no_attributes,
    parse: |_| Ok(Op::Max),
    shape: broadcast2,
    eval: |_, x, out| zip(x[0], x[1], out, f64::max),
    vjp: |e, _, x, _, g, needs| extremum_vjp(e, x, g, needs, true),
    jvp: |e, _, x, _, t| extremum_jvp(e, x, t, true),
    onnx: |e, _, x, y| onnx_same(e, "Max", x, y),
};

pub(super) static MIN: Rules = Rules {
    name: "min",
    attributes: no_attributes,
    parse: |_| Ok(Op::Min),
    shape: broadcast2,
    eval: |_, x, out| zip(x[0], x[1], out, f64::min),
    vjp: |e, _, x, _, g, needs| extremum_vjp(e, x, g, needs, false),
    jvp: |e, _, x, _, t| extremum_jvp(e, x, t, false),
    onnx: |e, _, x, y| onnx_same(e, "Min", x, y),
};

pub(super) static GREATER_EQ: Rules = Rules {
    name: "ge",
    attributes: no_attributes,
    parse: |_| Ok(Op::GreaterEq),
    shape: broadcast2,
    eval: |_, x, out| zip(x[0], x[1], out, |a, b| if a >= b { 1.0 } else { 0.0 }),
    vjp: no_vjp,
    jvp: no_jvp,
    onnx: |e, _, x, y| onnx_compare(e, "GreaterOrEqual", &[&x[0].name, &x[1].name], y),
};

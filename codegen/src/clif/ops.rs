//! The elementwise ops of kernel expressions, one row each: an op's code on one value and
//! on four lanes (f32x4), or that it has no four-lane code and a loop computing it runs one
//! lane at a time. A new `Unary` or `Binary` op does not compile until it has its row.

use super::generator::Gen;
use crate::kernel::{Binary, Unary};
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, Value, types};

/// An op's code on its operands, one f32 each or one f32x4 each. A unary op's second
/// operand is a zero of the first's width.
pub(super) type Code = for<'a, 'p> fn(&mut Gen<'a, 'p>, Value, Value) -> Value;

/// How an elementwise op is computed.
#[derive(Clone, Copy)]
pub(super) enum Form {
    /// The same code on one value and on four lanes.
    Lanes(Code),
    /// One code on one value, another on four lanes.
    Split { scalar: Code, vector: Code },
    /// Code on one value only (a call of a Rust function, `calls::MATH`): a loop that
    /// computes the op is not vectorised, and runs one lane at a time.
    Scalar(Code),
}

impl Form {
    /// The code on one value.
    pub(super) fn scalar(self) -> Code {
        match self {
            Form::Lanes(code) | Form::Split { scalar: code, .. } | Form::Scalar(code) => code,
        }
    }

    /// The code on four lanes, when the op has one.
    pub(super) fn vector(self) -> Option<Code> {
        match self {
            Form::Lanes(code) | Form::Split { vector: code, .. } => Some(code),
            Form::Scalar(_) => None,
        }
    }
}

/// Each function of one value: its code on `x`, given a zero of `x`'s width.
pub(super) fn unary(op: Unary) -> Form {
    match op {
        Unary::Neg => Form::Lanes(|g, x, _| g.b.ins().fneg(x)),
        Unary::Exp => Form::Scalar(|g, x, _| g.call("nnc_expf", &[x])),
        Unary::Ln => Form::Scalar(|g, x, _| g.call("nnc_logf", &[x])),
        Unary::Sqrt => Form::Lanes(|g, x, _| g.b.ins().sqrt(x)),
        Unary::Sin => Form::Scalar(|g, x, _| g.call("nnc_sinf", &[x])),
        Unary::Cos => Form::Scalar(|g, x, _| g.call("nnc_cosf", &[x])),
        Unary::Tan => Form::Scalar(|g, x, _| g.call("nnc_tanf", &[x])),
        Unary::Erf => Form::Scalar(|g, x, _| g.call("nnc_erff", &[x])),
        Unary::Tanh => Form::Scalar(|g, x, _| g.call("nnc_tanhf", &[x])),
        Unary::Sigmoid => Form::Scalar(|g, x, _| g.call("nnc_sigmoidf", &[x])),
        Unary::Relu => Form::Split {
            scalar: |g, x, zero| g.max(x, zero),
            vector: |g, x, zero| {
                // max(x, 0) with NaN going to 0, as the reference does.
                let positive = g.b.ins().fcmp(FloatCC::GreaterThan, x, zero);
                let m = g.mask(positive);
                g.b.ins().bitselect(m, x, zero)
            },
        },
        Unary::Abs => Form::Lanes(|g, x, _| g.b.ins().fabs(x)),
        Unary::Step => Form::Lanes(|g, x, zero| {
            let positive = g.b.ins().fcmp(FloatCC::GreaterThan, x, zero);
            g.truth(positive)
        }),
        Unary::Sign => Form::Lanes(|g, x, zero| {
            let positive = g.b.ins().fcmp(FloatCC::GreaterThan, x, zero);
            let negative = g.b.ins().fcmp(FloatCC::LessThan, x, zero);
            let p = g.truth(positive);
            let n = g.truth(negative);
            g.b.ins().fsub(p, n)
        }),
        Unary::Round => Form::Lanes(|g, x, _| g.b.ins().nearest(x)),
    }
}

/// Each function of two values: its code on `a` and `b`.
pub(super) fn binary(op: Binary) -> Form {
    match op {
        Binary::Add => Form::Lanes(|g, a, b| g.b.ins().fadd(a, b)),
        Binary::Sub => Form::Lanes(|g, a, b| g.b.ins().fsub(a, b)),
        Binary::Mul => Form::Lanes(|g, a, b| g.b.ins().fmul(a, b)),
        Binary::Div => Form::Lanes(|g, a, b| g.b.ins().fdiv(a, b)),
        Binary::Pow => Form::Scalar(|g, a, b| g.call("nnc_powf", &[a, b])),
        Binary::Max => Form::Lanes(|g, a, b| g.max(a, b)),
        Binary::Min => Form::Lanes(|g, a, b| g.extreme(FloatCC::LessThan, a, b)),
        Binary::GreaterEq => Form::Lanes(|g, a, b| {
            let c = g.b.ins().fcmp(FloatCC::GreaterThanOrEqual, a, b);
            g.truth(c)
        }),
        Binary::Equal => Form::Lanes(|g, a, b| {
            let c = g.b.ins().fcmp(FloatCC::Equal, a, b);
            g.truth(c)
        }),
    }
}

impl<'a, 'p> Gen<'a, 'p> {
    /// 1.0 where a comparison holds, else 0.0: of one value (an i8 truth value) or of four
    /// lanes (an i32x4 mask).
    fn truth(&mut self, condition: Value) -> Value {
        if self.b.func.dfg.value_type(condition).is_vector() {
            self.vector_mask_to_float(condition)
        } else {
            self.bool_to_float(condition)
        }
    }

    fn bool_to_float(&mut self, condition: Value) -> Value {
        let one = self.fconst(1.0);
        let zero = self.fconst(0.0);
        self.b.ins().select(condition, one, zero)
    }

    /// 1.0 in the lanes where a comparison's mask is set, else 0.0.
    fn vector_mask_to_float(&mut self, mask: Value) -> Value {
        let one = self.fconst(1.0);
        let ones = self.b.ins().splat(types::F32X4, one);
        let zero = self.fconst(0.0);
        let zeros = self.b.ins().splat(types::F32X4, zero);
        {
            let m = self.mask(mask);
            self.b.ins().bitselect(m, ones, zeros)
        }
    }
}

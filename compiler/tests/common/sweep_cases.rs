//! The cases of the gradient sweep, shared with the sweep through compiled code: every
//! primitive on at least eight shapes, with the domains its inputs are drawn from.

#![allow(dead_code)]

use nnc_compiler::ir::{Function, Op, Tensor, Type};
use nnc_compiler::shapes::{Dim, Shape};
use nnc_grammar::Span;

/// A deterministic generator, so a failure reproduces.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
}

/// Where an op's inputs may be drawn from.
#[derive(Clone, Copy)]
pub enum Domain {
    /// Anywhere in [-2, 2].
    Any,
    /// In [0.2, 2]: logarithms, roots, bases of powers, denominators.
    Positive,
    /// In [-2, 2] but at least 0.2 from 0: kinks of relu and abs.
    AwayFromZero,
    /// All values distinct by at least 0.05: maxima.
    Distinct,
    /// Whole numbers below the given bound: class labels (not differentiated).
    Labels(usize),
}

pub struct Case {
    pub op: Op,
    pub inputs: Vec<(Vec<usize>, Domain)>,
    /// Which inputs are differentiated.
    pub differentiable: Vec<bool>,
}

pub fn case(op: Op, inputs: &[(&[usize], Domain)]) -> Case {
    let differentiable = inputs.iter().map(|(_, d)| !matches!(d, Domain::Labels(_))).collect();
    Case { op, inputs: inputs.iter().map(|(s, d)| (s.to_vec(), *d)).collect(), differentiable }
}

pub fn shape(dims: &[usize]) -> Shape {
    Shape(dims.iter().map(|&d| Dim::constant(d as i128)).collect())
}

pub fn draw(rng: &mut Rng, dims: &[usize], domain: Domain) -> Tensor {
    let n: usize = dims.iter().product();
    let data = match domain {
        Domain::Any => (0..n).map(|_| rng.range(-2.0, 2.0)).collect(),
        Domain::Positive => (0..n).map(|_| rng.range(0.2, 2.0)).collect(),
        Domain::AwayFromZero => (0..n)
            .map(|_| {
                let v = rng.range(0.2, 2.0);
                if rng.next() < 0.5 { -v } else { v }
            })
            .collect(),
        Domain::Distinct => {
            // A shuffled ramp: distinct values 0.1 apart.
            let mut values: Vec<f64> = (0..n).map(|i| i as f64 * 0.1 - 1.0).collect();
            for i in (1..n).rev() {
                let j = (rng.next() * (i + 1) as f64) as usize;
                values.swap(i, j.min(i));
            }
            values
        }
        Domain::Labels(classes) => {
            (0..n).map(|_| ((rng.next() * classes as f64) as usize).min(classes - 1) as f64).collect()
        }
    };
    Tensor::new(dims.to_vec(), data)
}

/// `sum(op(inputs) * weights)` with fixed random weights: a scalar whose gradient reaches
/// every element of the op's output with a different cotangent.
pub fn scalar_function(case: &Case, rng: &mut Rng) -> Function {
    let mut f = Function::new("sweep", Span::default());
    let params: Vec<_> =
        case.inputs.iter().enumerate().map(|(i, (dims, _))| f.param(&format!("a{i}"), Type::of(shape(dims)))).collect();
    let y = f.push(case.op.clone(), &params, Span::default());
    let out_shape = f.ty(y).shape.clone();
    let dims: Vec<usize> = out_shape.0.iter().map(|d| d.as_const().unwrap() as usize).collect();
    let n: usize = dims.iter().product();
    let weights =
        f.push(Op::Literal { shape: dims, data: (0..n).map(|_| rng.range(0.5, 1.5)).collect() }, &[], Span::default());
    let weighted = f.push(Op::Mul, &[y, weights], Span::default());
    let total = f.push(Op::Sum { axis: None }, &[weighted], Span::default());
    f.results = vec![total];
    f.result_names = vec!["y".into()];
    nnc_compiler::ir::verify(&f).expect("the sweep function verifies");
    f
}

pub const ANY: Domain = Domain::Any;
pub const POS: Domain = Domain::Positive;

pub const UNARY_SHAPES: [&[usize]; 8] = [&[], &[1], &[3], &[2, 3], &[1, 4], &[2, 1, 3], &[4, 1], &[2, 2, 2]];
pub const BINARY_SHAPES: [(&[usize], &[usize]); 8] = [
    (&[], &[]),
    (&[3], &[3]),
    (&[2, 3], &[3]),
    (&[2, 3], &[2, 1]),
    (&[1], &[4]),
    (&[2, 1, 3], &[4, 1]),
    (&[], &[2, 2]),
    (&[3, 1], &[1, 3]),
];
pub const REDUCTIONS: [(&[usize], Option<usize>); 8] = [
    (&[3], None),
    (&[3], Some(0)),
    (&[2, 3], Some(0)),
    (&[2, 3], Some(1)),
    (&[2, 3], None),
    (&[1, 4], Some(1)),
    (&[2, 1, 3], Some(1)),
    (&[2, 2, 2], Some(2)),
];
/// (input [N, C, H, W], weight [O, C, kh, kw], stride, pad)
pub const CONVS: [([usize; 4], [usize; 4], usize, usize); 10] = [
    ([1, 1, 3, 3], [1, 1, 2, 2], 1, 0),
    ([1, 1, 5, 5], [1, 1, 3, 3], 1, 0),
    ([2, 1, 4, 4], [2, 1, 3, 3], 1, 1),
    ([1, 2, 5, 5], [3, 2, 3, 3], 2, 0),
    ([1, 2, 5, 4], [1, 2, 2, 3], 2, 1),
    ([2, 3, 4, 4], [2, 3, 1, 1], 1, 0),
    ([1, 1, 7, 7], [1, 1, 3, 3], 3, 0),
    ([1, 1, 4, 6], [2, 1, 3, 2], 1, 2),
    // Output rows as wide as the input's (compiled as one long copy per kernel position):
    // two columns of padding on each side; and output rows wholly in the padding.
    ([1, 2, 6, 6], [2, 2, 5, 5], 1, 2),
    ([1, 1, 3, 5], [1, 1, 1, 3], 1, 1),
];
/// (input [N, C, H, W], kernel, stride)
pub const POOLS: [([usize; 4], usize, usize); 11] = [
    ([1, 1, 2, 2], 2, 2),
    // Four or more windows in a row: compiled code takes them four at a time, exactly
    // tiled, with a window left over, and with an input row and column no window reaches.
    ([2, 3, 8, 8], 2, 2),
    ([1, 2, 4, 10], 2, 2),
    ([1, 1, 7, 13], 2, 2),
    ([1, 1, 4, 4], 2, 2),
    ([2, 3, 4, 4], 2, 2),
    ([1, 1, 5, 5], 2, 2),
    ([1, 2, 6, 6], 3, 3),
    ([1, 1, 5, 5], 3, 1),
    ([1, 1, 4, 4], 1, 1),
    ([2, 1, 7, 7], 3, 2),
];

pub fn conv_out(n: usize, k: usize, s: usize, p: usize) -> usize {
    (n + 2 * p - k) / s + 1
}

/// The cases of one op; empty for ops without derivatives, which must say so.
pub fn cases(op: &Op) -> Option<Vec<Case>> {
    let unary = |op: Op, domain: Domain| UNARY_SHAPES.iter().map(|s| case(op.clone(), &[(s, domain)])).collect();
    let binary =
        |op: Op, a: Domain, b: Domain| BINARY_SHAPES.iter().map(|(x, y)| case(op.clone(), &[(x, a), (y, b)])).collect();
    Some(match op {
        // Constants, comparisons and masks have no derivative.
        Op::Const(_) | Op::Literal { .. } | Op::Size(_) | Op::Step | Op::Sign | Op::GreaterEq | Op::OneHot { .. } => {
            Vec::new()
        }
        Op::Neg => unary(Op::Neg, ANY),
        Op::Exp => unary(Op::Exp, ANY),
        Op::Ln => unary(Op::Ln, POS),
        Op::Sqrt => unary(Op::Sqrt, POS),
        Op::Sin => unary(Op::Sin, ANY),
        Op::Cos => unary(Op::Cos, ANY),
        Op::Tan => unary(Op::Tan, Domain::AwayFromZero)
            .into_iter()
            .map(|mut c: Case| {
                c.inputs[0].1 = Domain::Positive;
                c
            })
            .collect(),
        Op::Tanh => unary(Op::Tanh, ANY),
        Op::Erf => unary(Op::Erf, ANY),
        Op::Sigmoid => unary(Op::Sigmoid, ANY),
        Op::Relu => unary(Op::Relu, Domain::AwayFromZero),
        Op::Abs => unary(Op::Abs, Domain::AwayFromZero),
        Op::Add => binary(Op::Add, ANY, ANY),
        Op::Sub => binary(Op::Sub, ANY, ANY),
        Op::Mul => binary(Op::Mul, ANY, ANY),
        Op::Div => binary(Op::Div, ANY, POS),
        Op::Pow => binary(Op::Pow, POS, ANY),
        // Two ramps drawn apart never tie: the first on [-1, ..), the second shifted.
        Op::Max => binary(Op::Max, Domain::Distinct, POS),
        Op::Min => binary(Op::Min, Domain::Distinct, POS),
        Op::MatMul => [
            (&[3][..], &[3][..]),
            (&[2, 3], &[3]),
            (&[3], &[3, 4]),
            (&[2, 3], &[3, 4]),
            (&[1, 1], &[1, 1]),
            (&[4, 2], &[2, 1]),
            (&[2, 2, 3], &[3, 2]),
            (&[5, 1], &[1, 5]),
        ]
        .iter()
        .map(|(a, b)| case(Op::MatMul, &[(a, ANY), (b, ANY)]))
        .collect(),
        Op::Transpose => [&[2, 3][..], &[1, 4], &[3], &[2, 2, 3], &[1, 1], &[4, 1], &[], &[2, 3, 1]]
            .iter()
            .map(|s| case(Op::Transpose, &[(s, ANY)]))
            .collect(),
        Op::Reshape(_) => [
            (&[6][..], &[2, 3][..]),
            (&[2, 3], &[3, 2]),
            (&[1, 4], &[4]),
            (&[2, 2, 2], &[8]),
            (&[], &[1]),
            (&[4], &[1, 4, 1]),
            (&[3, 1], &[3]),
            (&[2, 3], &[6]),
        ]
        .iter()
        .map(|(from, to)| case(Op::Reshape(shape(to)), &[(from, ANY)]))
        .collect(),
        Op::Broadcast(_) => [
            (&[][..], &[3][..]),
            (&[1], &[2, 2]),
            (&[3], &[2, 3]),
            (&[2, 1], &[2, 3]),
            (&[1, 3], &[4, 3]),
            (&[2, 1, 3], &[2, 4, 3]),
            (&[3], &[3]),
            (&[1, 1], &[2, 2]),
        ]
        .iter()
        .map(|(from, to)| case(Op::Broadcast(shape(to)), &[(from, ANY)]))
        .collect(),
        Op::SumTo(_) => [
            (&[3][..], &[][..]),
            (&[2, 2], &[1]),
            (&[2, 3], &[3]),
            (&[2, 3], &[2, 1]),
            (&[4, 3], &[1, 3]),
            (&[2, 4, 3], &[2, 1, 3]),
            (&[3], &[3]),
            (&[2, 2], &[1, 1]),
        ]
        .iter()
        .map(|(from, to)| case(Op::SumTo(shape(to)), &[(from, ANY)]))
        .collect(),
        Op::Sum { .. } => REDUCTIONS.iter().map(|(s, axis)| case(Op::Sum { axis: *axis }, &[(s, ANY)])).collect(),
        Op::Mean { .. } => REDUCTIONS.iter().map(|(s, axis)| case(Op::Mean { axis: *axis }, &[(s, ANY)])).collect(),
        Op::ReduceMax { .. } => {
            REDUCTIONS.iter().map(|(s, axis)| case(Op::ReduceMax { axis: *axis }, &[(s, Domain::Distinct)])).collect()
        }
        Op::Softmax { .. } | Op::LogSoftmax { .. } => {
            let make =
                |axis| if matches!(op, Op::Softmax { .. }) { Op::Softmax { axis } } else { Op::LogSoftmax { axis } };
            [
                (&[3][..], 0),
                (&[2, 3], 1),
                (&[2, 3], 0),
                (&[1, 4], 1),
                (&[4, 1], 1),
                (&[2, 2, 2], 2),
                (&[2, 2, 2], 1),
                (&[1], 0),
            ]
            .iter()
            .map(|(s, axis)| case(make(*axis), &[(s, ANY)]))
            .collect()
        }
        Op::Mse => BINARY_SHAPES.iter().map(|(x, y)| case(Op::Mse, &[(x, ANY), (y, ANY)])).collect(),
        Op::SoftmaxCrossEntropy => [(1, 2), (2, 3), (4, 5), (3, 1), (1, 1), (2, 2), (5, 3), (3, 4)]
            .iter()
            .map(|&(n, c)| case(Op::SoftmaxCrossEntropy, &[(&[n, c], ANY), (&[n], Domain::Labels(c))]))
            .collect(),
        Op::Conv2d { .. } => CONVS
            .iter()
            .map(|(x, w, s, p)| case(Op::Conv2d { stride: (*s, *s), pad: (*p, *p) }, &[(x, ANY), (w, ANY)]))
            .collect(),
        Op::Conv2dInputGrad { .. } => CONVS
            .iter()
            .map(|(x, w, s, p)| {
                let g = [x[0], w[0], conv_out(x[2], w[2], *s, *p), conv_out(x[3], w[3], *s, *p)];
                case(
                    Op::Conv2dInputGrad { stride: (*s, *s), pad: (*p, *p), input: (x[2], x[3]) },
                    &[(&g, ANY), (w, ANY)],
                )
            })
            .collect(),
        Op::Conv2dWeightGrad { .. } => CONVS
            .iter()
            .map(|(x, w, s, p)| {
                let g = [x[0], w[0], conv_out(x[2], w[2], *s, *p), conv_out(x[3], w[3], *s, *p)];
                case(
                    Op::Conv2dWeightGrad { stride: (*s, *s), pad: (*p, *p), kernel: (w[2], w[3]) },
                    &[(x, ANY), (&g, ANY)],
                )
            })
            .collect(),
        Op::MaxPool2d { .. } => POOLS
            .iter()
            .map(|(x, k, s)| case(Op::MaxPool2d { kernel: (*k, *k), stride: (*s, *s) }, &[(x, Domain::Distinct)]))
            .collect(),
        Op::AvgPool2d { .. } => POOLS
            .iter()
            .map(|(x, k, s)| case(Op::AvgPool2d { kernel: (*k, *k), stride: (*s, *s) }, &[(x, ANY)]))
            .collect(),
        Op::MaxPool2dGrad { .. } | Op::MaxPool2dPick { .. } => POOLS
            .iter()
            .map(|(x, k, s)| {
                let out = [x[0], x[1], conv_out(x[2], *k, *s, 0), conv_out(x[3], *k, *s, 0)];
                let (kernel, stride) = ((*k, *k), (*s, *s));
                let (op, second): (Op, &[usize]) = if matches!(op, Op::MaxPool2dGrad { .. }) {
                    (Op::MaxPool2dGrad { kernel, stride }, &out)
                } else {
                    (Op::MaxPool2dPick { kernel, stride }, x)
                };
                // The positions of the maxima are not differentiated.
                let mut c = case(op, &[(x, Domain::Distinct), (second, ANY)]);
                c.differentiable[0] = false;
                c
            })
            .collect(),
        Op::AvgPool2dGrad { .. } => POOLS
            .iter()
            .map(|(x, k, s)| {
                let out = [x[0], x[1], conv_out(x[2], *k, *s, 0), conv_out(x[3], *k, *s, 0)];
                case(Op::AvgPool2dGrad { kernel: (*k, *k), stride: (*s, *s), input: (x[2], x[3]) }, &[(&out, ANY)])
            })
            .collect(),
    })
}

//! The gradient sweep: every differentiable primitive, on at least eight shapes each, has
//! reverse-mode and forward-mode derivatives equal to central finite differences in f64,
//! and the two modes agree on random directions (<J t, c> = <t, J^T c>). An op missing
//! from the table fails the sweep.

use nnc_compiler::ir::{Function, Op, Precision, Tensor, Type, eval_function, forward, reverse};
use nnc_compiler::shapes::{Dim, Shape};
use nnc_grammar::Span;

/// A deterministic generator, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
}

/// Where an op's inputs may be drawn from.
#[derive(Clone, Copy)]
enum Domain {
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

struct Case {
    op: Op,
    inputs: Vec<(Vec<usize>, Domain)>,
    /// Which inputs are differentiated.
    differentiable: Vec<bool>,
}

fn case(op: Op, inputs: &[(&[usize], Domain)]) -> Case {
    let differentiable = inputs.iter().map(|(_, d)| !matches!(d, Domain::Labels(_))).collect();
    Case { op, inputs: inputs.iter().map(|(s, d)| (s.to_vec(), *d)).collect(), differentiable }
}

fn shape(dims: &[usize]) -> Shape {
    Shape(dims.iter().map(|&d| Dim::constant(d as i128)).collect())
}

fn draw(rng: &mut Rng, dims: &[usize], domain: Domain) -> Tensor {
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
fn scalar_function(case: &Case, rng: &mut Rng) -> Function {
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

fn value(f: &Function, args: &[Tensor]) -> f64 {
    eval_function(f, args, Precision::F64).unwrap().0[0].data[0]
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-5 + 1e-3 * want.abs()
}

fn check(case: &Case, seed: u64) -> Result<(), String> {
    let mut rng = Rng(seed);
    let f = scalar_function(case, &mut rng);
    let args: Vec<Tensor> = case.inputs.iter().map(|(dims, domain)| draw(&mut rng, dims, *domain)).collect();
    let wrt: Vec<usize> = (0..args.len()).filter(|&i| case.differentiable[i]).collect();

    // Reverse mode against central differences.
    let (grad, _) = reverse(&f, &wrt);
    nnc_compiler::ir::verify(&grad).map_err(|e| format!("gradient IR: {e}"))?;
    let optimized = nnc_compiler::ir::optimize(&grad);
    nnc_compiler::ir::verify(&optimized).map_err(|e| format!("optimised gradient IR: {e}"))?;
    let (results, _) = eval_function(&optimized, &args, Precision::F64)?;
    let eps = 1e-6;
    for (k, &i) in wrt.iter().enumerate() {
        for j in 0..args[i].data.len() {
            let mut plus = args.clone();
            plus[i].data[j] += eps;
            let mut minus = args.clone();
            minus[i].data[j] -= eps;
            let numeric = (value(&f, &plus) - value(&f, &minus)) / (2.0 * eps);
            let got = results[1 + k].data[j];
            if !close(got, numeric) {
                return Err(format!("reverse d/d{}[{j}] = {got}, finite differences give {numeric}", f.params[i].name));
            }
        }
    }

    // Forward mode: the directional derivative along a random tangent equals <grad, t>.
    let (jvp, _) = forward(&f, &wrt);
    nnc_compiler::ir::verify(&jvp).map_err(|e| format!("tangent IR: {e}"))?;
    let tangents: Vec<Tensor> = wrt.iter().map(|&i| draw(&mut rng, &args[i].shape, Domain::Any)).collect();
    let mut inputs = args.clone();
    inputs.extend(tangents.iter().cloned());
    let (out, _) = eval_function(&jvp, &inputs, Precision::F64)?;
    let forward_value = out[1].data[0];
    let reverse_value: f64 = wrt
        .iter()
        .enumerate()
        .map(|(k, _)| results[1 + k].data.iter().zip(&tangents[k].data).map(|(g, t)| g * t).sum::<f64>())
        .sum();
    if !close(forward_value, reverse_value) {
        return Err(format!("forward gives <J t, 1> = {forward_value}, reverse <t, J^T 1> = {reverse_value}"));
    }
    Ok(())
}

const ANY: Domain = Domain::Any;
const POS: Domain = Domain::Positive;

const UNARY_SHAPES: [&[usize]; 8] = [&[], &[1], &[3], &[2, 3], &[1, 4], &[2, 1, 3], &[4, 1], &[2, 2, 2]];
const BINARY_SHAPES: [(&[usize], &[usize]); 8] = [
    (&[], &[]),
    (&[3], &[3]),
    (&[2, 3], &[3]),
    (&[2, 3], &[2, 1]),
    (&[1], &[4]),
    (&[2, 1, 3], &[4, 1]),
    (&[], &[2, 2]),
    (&[3, 1], &[1, 3]),
];
const REDUCTIONS: [(&[usize], Option<usize>); 8] = [
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
const CONVS: [([usize; 4], [usize; 4], usize, usize); 8] = [
    ([1, 1, 3, 3], [1, 1, 2, 2], 1, 0),
    ([1, 1, 5, 5], [1, 1, 3, 3], 1, 0),
    ([2, 1, 4, 4], [2, 1, 3, 3], 1, 1),
    ([1, 2, 5, 5], [3, 2, 3, 3], 2, 0),
    ([1, 2, 5, 4], [1, 2, 2, 3], 2, 1),
    ([2, 3, 4, 4], [2, 3, 1, 1], 1, 0),
    ([1, 1, 7, 7], [1, 1, 3, 3], 3, 0),
    ([1, 1, 4, 6], [2, 1, 3, 2], 1, 2),
];
/// (input [N, C, H, W], kernel, stride)
const POOLS: [([usize; 4], usize, usize); 8] = [
    ([1, 1, 2, 2], 2, 2),
    ([1, 1, 4, 4], 2, 2),
    ([2, 3, 4, 4], 2, 2),
    ([1, 1, 5, 5], 2, 2),
    ([1, 2, 6, 6], 3, 3),
    ([1, 1, 5, 5], 3, 1),
    ([1, 1, 4, 4], 1, 1),
    ([2, 1, 7, 7], 3, 2),
];

fn conv_out(n: usize, k: usize, s: usize, p: usize) -> usize {
    (n + 2 * p - k) / s + 1
}

/// The cases of one op; empty for ops without derivatives, which must say so.
fn cases(op: &Op) -> Option<Vec<Case>> {
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

#[test]
fn every_op_matches_finite_differences_in_both_modes() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for op in Op::samples() {
        let cases = cases(&op).expect("every op has an entry");
        if op.is_differentiable() {
            assert!(cases.len() >= 8, "`{}` has only {} cases", op.name(), cases.len());
        } else {
            assert!(cases.is_empty(), "`{}` has no derivative but has cases", op.name());
        }
        for (i, case) in cases.iter().enumerate() {
            checked += 1;
            if let Err(error) = check(case, 0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1)) {
                let shapes: Vec<_> = case.inputs.iter().map(|(s, _)| format!("{s:?}")).collect();
                failures.push(format!("{} on {}: {error}", case.op.name(), shapes.join(", ")));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {checked} cases fail:\n{}", failures.len(), failures.join("\n"));
    assert!(checked >= 300, "only {checked} cases");
}

//! Random shape-checked graphs, compiled and interpreted: chains of elementwise ops with
//! broadcasting, transposes, reshapes, reductions, matrix products and softmax, values
//! used once or many times, results anywhere in the graph. Fusion decides differently for
//! each shape of graph, so this is where its mistakes would show.

use nnc_codegen::{JitExecutor, Options};
use nnc_compiler::exec::Executor;
use nnc_compiler::ir::{Function, Op, Precision, Tensor, Type, Value, eval_function, optimize, verify};
use nnc_compiler::shapes::{Dim, Shape};
use nnc_grammar::Span;
use proptest::prelude::*;
use std::sync::OnceLock;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn shape(dims: &[usize]) -> Shape {
    Shape(dims.iter().map(|&d| Dim::constant(d as i128)).collect())
}

fn dims(f: &Function, v: Value) -> Vec<usize> {
    f.ty(v).shape.0.iter().map(|d| d.as_const().unwrap() as usize).collect()
}

/// A random graph of up to `size` instructions over two or three arguments.
fn graph(rng: &mut Rng, size: usize) -> Function {
    let mut f = Function::new("random", Span::default());
    let sizes = [1, 2, 3, 4, 5, 8];
    let mut values = Vec::new();
    for i in 0..2 + rng.below(2) {
        let rank = rng.below(4);
        let d: Vec<usize> = (0..rank).map(|_| sizes[rng.below(sizes.len())]).collect();
        values.push(f.param(&format!("a{i}"), Type::of(shape(&d))));
    }
    let span = Span::default();
    for _ in 0..size {
        let x = values[rng.below(values.len())];
        let xd = dims(&f, x);
        let pick = rng.below(14);
        let made = match pick {
            0..=3 => {
                let op = [Op::Neg, Op::Tanh, Op::Sigmoid, Op::Relu, Op::Abs, Op::Exp, Op::Step, Op::Sin][rng.below(8)]
                    .clone();
                // Keep exponentials bounded: exp of a squashed value.
                if op == Op::Exp {
                    let t = f.push(Op::Tanh, &[x], span);
                    Some(f.push(Op::Exp, &[t], span))
                } else {
                    Some(f.push(op, &[x], span))
                }
            }
            4..=6 => {
                // A partner that broadcasts with x: x's shape with some axes set to 1 or dropped.
                let candidates: Vec<Value> = values
                    .iter()
                    .copied()
                    .filter(|&y| {
                        let yd = dims(&f, y);
                        let rank = xd.len().max(yd.len());
                        (0..rank).all(|i| {
                            let a = (i + xd.len()).checked_sub(rank).map_or(1, |j| xd[j]);
                            let b = (i + yd.len()).checked_sub(rank).map_or(1, |j| yd[j]);
                            a == b || a == 1 || b == 1
                        })
                    })
                    .collect();
                let y = candidates[rng.below(candidates.len())];
                let op = [Op::Add, Op::Sub, Op::Mul, Op::Max, Op::Min, Op::GreaterEq][rng.below(6)].clone();
                Some(f.push(op, &[x, y], span))
            }
            7 if xd.len() >= 2 => Some(f.push(Op::Transpose, &[x], span)),
            8 if !xd.is_empty() => {
                let axis = rng.below(xd.len());
                let op =
                    [Op::Sum { axis: Some(axis) }, Op::Mean { axis: Some(axis) }, Op::ReduceMax { axis: Some(axis) }]
                        [rng.below(3)]
                    .clone();
                Some(f.push(op, &[x], span))
            }
            9 => {
                let op = [Op::Sum { axis: None }, Op::Mean { axis: None }][rng.below(2)].clone();
                Some(f.push(op, &[x], span))
            }
            10 if !xd.is_empty() => {
                // Flatten, or split the first axis off.
                let total: usize = xd.iter().product();
                Some(f.push(Op::Reshape(shape(&[total])), &[x], span))
            }
            11 if !xd.is_empty() => {
                // A product with a fresh matrix.
                let k = *xd.last().unwrap();
                let n = sizes[rng.below(sizes.len())];
                let w = f.param(&format!("w{}", f.params.len()), Type::of(shape(&[k, n])));
                Some(f.push(Op::MatMul, &[x, w], span))
            }
            12 if !xd.is_empty() => {
                let axis = rng.below(xd.len());
                Some(f.push(Op::Softmax { axis }, &[x], span))
            }
            13 if !xd.is_empty() => {
                // Broadcast up by a leading axis, and sum back down.
                let mut up = vec![3];
                up.extend(&xd);
                let b = f.push(Op::Broadcast(shape(&up)), &[x], span);
                Some(f.push(Op::SumTo(shape(&xd)), &[b], span))
            }
            _ => None,
        };
        if let Some(v) = made {
            values.push(v);
        }
    }
    // One to three results among the values made, the last always.
    let made: Vec<Value> = values.iter().copied().filter(|v| f.def(*v).is_some()).collect();
    let mut results = vec![*made.last().unwrap_or(&values[0])];
    for _ in 0..rng.below(3) {
        results.push(values[rng.below(values.len())]);
    }
    f.result_names = results.iter().enumerate().map(|(i, _)| format!("r{i}")).collect();
    f.results = results;
    f
}

fn close(got: f32, want: f64, terms: usize) -> bool {
    let got = f64::from(got);
    if got.is_nan() || want.is_nan() {
        return got.is_nan() && want.is_nan();
    }
    if got.is_infinite() || want.is_infinite() {
        return got == want;
    }
    (got - want).abs() <= 1e-4 * (1.0 + want.abs()) * (terms.max(1) as f64).sqrt()
}

fn check(seed: u64, size: usize) -> Result<(), String> {
    let mut rng = Rng(seed | 1);
    let raw = graph(&mut rng, size);
    verify(&raw).map_err(|e| format!("the generated graph does not verify: {e}"))?;
    let f = optimize(&raw);
    let args: Vec<Tensor> = f
        .params
        .iter()
        .map(|p| {
            let d = dims(&f, p.value);
            let n = d.iter().product();
            Tensor::new(d, (0..n).map(|_| rng.unit() * 4.0 - 2.0).collect())
        })
        .collect();
    let (want, _) = eval_function(&f, &args, Precision::F32)?;
    let inputs: Vec<Vec<f32>> = args.iter().map(|t| t.data.iter().map(|&v| v as f32).collect()).collect();
    let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
    let terms: usize = args.iter().map(|a| a.data.len()).sum::<usize>().max(8);
    for executor in executors() {
        let mut program = executor.program(&f)?;
        let mut outs: Vec<Vec<f32>> = want.iter().map(|t| vec![f32::NAN; t.data.len()]).collect();
        {
            let mut out_refs: Vec<&mut [f32]> = outs.iter_mut().map(Vec::as_mut_slice).collect();
            program.run(&refs, &mut out_refs);
        }
        for (k, (got, want)) in outs.iter().zip(&want).enumerate() {
            for (i, (&g, &w)) in got.iter().zip(&want.data).enumerate() {
                if !close(g, w, terms) {
                    return Err(format!(
                        "result {k}[{i}]: compiled {g}, interpreted {w}\n{}",
                        nnc_compiler::ir::print_function(&f, None)
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Products generated and called from the library, with bounds checks, every kernel
/// that can be split run in three parts on three threads; and generated products without
/// checks, on one thread.
fn executors() -> &'static [JitExecutor; 3] {
    static EXECUTORS: OnceLock<[JitExecutor; 3]> = OnceLock::new();
    EXECUTORS.get_or_init(|| {
        let checked = [usize::MAX, 0].map(|library_products| {
            let options = Options { library_products, bounds_checks: true, parallel_flops: 0, ..Options::default() };
            JitExecutor::with_options(options).with_threads(3).expect("three threads start")
        });
        // And the code that runs without checks, whose addressing differs (offsets folded
        // into instructions), with products generated.
        let unchecked = JitExecutor::with_options(Options { library_products: usize::MAX, ..Options::default() });
        let [a, b] = checked;
        [a, b, unchecked]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_graphs_compile_to_the_interpreters_values(seed in any::<u64>(), size in 1usize..30) {
        if let Err(e) = check(seed, size) {
            prop_assert!(false, "seed {seed}, size {size}: {e}");
        }
    }
}

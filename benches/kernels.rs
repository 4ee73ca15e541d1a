//! The speed of compiled code, each figure beside a reference measured in the same run:
//! matrix products against the `gemm` crate (its AVX-512 path) and `matrixmultiply`;
//! convolutions forward and backward; a whole training step of every example and of the
//! two models of the speed targets (`benches/models/`), compiled and interpreted; and the
//! time from IR to callable code. Run with `cargo bench --bench kernels` (add `-- quick`
//! for shorter measurements).

use nnc_codegen::{JitExecutor, Options};
use nnc_compiler::driver::{gradient, optimized};
use nnc_compiler::exec::{Batch, Executor, InterpreterExecutor};
use nnc_compiler::ir::{Function, Op, Type};
use nnc_compiler::optim::State;
use nnc_compiler::shapes::{Dim, Shape};
use nnc_grammar::Span;
use std::path::Path;
use std::time::{Duration, Instant};

/// The best time of `f` over repeated runs within `budget`.
fn best_time(budget: Duration, mut f: impl FnMut()) -> Duration {
    f();
    let started = Instant::now();
    let mut best = Duration::MAX;
    while started.elapsed() < budget {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
    }
    best
}

fn shape(dims: &[usize]) -> Type {
    Type::of(Shape(dims.iter().map(|&d| Dim::constant(d as i128)).collect()))
}

fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n).map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 16) as f32 / 65536.0 - 0.5).collect()
}

/// Compiled code split over two threads.
fn two_threads(options: Options) -> JitExecutor {
    JitExecutor::with_options(options).with_threads(2).expect("two threads start")
}

fn gflops(flops: f64, t: Duration) -> f64 {
    flops / t.as_secs_f64() / 1e9
}

/// The multiply-add throughput of 128-bit vectors on one core, in GFLOP/s, measured now:
/// twelve independent chains of f32x4 multiply and add (more than the latency of the
/// operations times the units that run them), the most that code of Cranelift's vectors can
/// reach. Measured rather than assumed, since the machine's speed varies from day to day.
fn f32x4_ceiling(budget: Duration) -> f64 {
    const ROUNDS: usize = 1 << 16;
    let mut lanes = [[0.0f32; 4]; 12];
    let time = best_time(budget, || {
        let mut acc = std::hint::black_box([[1.0f32; 4]; 12]);
        let (x, y) = std::hint::black_box(([0.999_999f32; 4], [1e-7f32; 4]));
        for _ in 0..ROUNDS {
            for a in &mut acc {
                for l in 0..4 {
                    a[l] = a[l] * x[l] + y[l];
                }
            }
        }
        lanes = std::hint::black_box(acc);
    });
    std::hint::black_box(lanes);
    gflops((ROUNDS * 12 * 4 * 2) as f64, time)
}

fn matmul_function(n: usize) -> Function {
    let mut f = Function::new("matmul", Span::default());
    let a = f.param("a", shape(&[n, n]));
    let b = f.param("b", shape(&[n, n]));
    let c = f.push(Op::MatMul, &[a, b], Span::default());
    f.results = vec![c];
    f.result_names = vec!["c".into()];
    f
}

fn matmuls(budget: Duration) {
    let ceiling = f32x4_ceiling(budget);
    println!("f32x4 multiply and add on one core, measured: {ceiling:.1} GFLOP/s (the ceiling below)");
    println!(
        "matrix product n×n×n, GFLOP/s: nnc as compiled and Cranelift's f32x4 code alone, one thread and two; \
         the references on one thread"
    );
    println!(
        "{:>6} {:>10} {:>12} {:>10} {:>15} {:>12} {:>16} {:>10} {:>12} {:>10}",
        "n",
        "nnc",
        "nnc f32x4",
        "gemm",
        "matrixmultiply",
        "nnc / gemm",
        "f32x4 / ceiling",
        "nnc 2t",
        "f32x4 2t",
        "2t / 1t"
    );
    for n in [64, 128, 256, 512, 1024] {
        let (a, b) = (values(n * n, 1), values(n * n, 2));
        let mut c = vec![0.0f32; n * n];
        let flops = 2.0 * (n * n * n) as f64;
        let mut program = JitExecutor::default().program(&matmul_function(n)).expect("compiles");
        let nnc = best_time(budget, || program.run(&[&a, &b], &mut [&mut c]));
        let generated = JitExecutor::with_options(Options { library_products: usize::MAX, ..Options::default() });
        let mut program = generated.program(&matmul_function(n)).expect("compiles");
        let nnc_generated = best_time(budget, || program.run(&[&a, &b], &mut [&mut c]));
        let mut program = two_threads(Options::default()).program(&matmul_function(n)).expect("compiles");
        let nnc_two = best_time(budget, || program.run(&[&a, &b], &mut [&mut c]));
        let generated_two = two_threads(Options { library_products: usize::MAX, ..Options::default() });
        let mut program = generated_two.program(&matmul_function(n)).expect("compiles");
        let generated_two = best_time(budget, || program.run(&[&a, &b], &mut [&mut c]));
        let reference = best_time(budget, || unsafe {
            gemm::gemm(
                n,
                n,
                n,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                n as isize,
                b.as_ptr(),
                1,
                n as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        });
        let mm = best_time(budget, || unsafe {
            matrixmultiply::sgemm(
                n,
                n,
                n,
                1.0,
                a.as_ptr(),
                n as isize,
                1,
                b.as_ptr(),
                n as isize,
                1,
                0.0,
                c.as_mut_ptr(),
                n as isize,
                1,
            )
        });
        println!(
            "{n:>6} {:>10.1} {:>12.1} {:>10.1} {:>15.1} {:>12.2} {:>16.2} {:>10.1} {:>12.1} {:>10.2}",
            gflops(flops, nnc),
            gflops(flops, nnc_generated),
            gflops(flops, reference),
            gflops(flops, mm),
            reference.as_secs_f64() / nnc.as_secs_f64(),
            gflops(flops, nnc_generated) / ceiling,
            gflops(flops, nnc_two),
            gflops(flops, generated_two),
            nnc_generated.as_secs_f64() / generated_two.as_secs_f64()
        );
    }
}

/// A convolution `[n, c, h, h] * [o, c, 3, 3]` (pad 1) and, for the backward figure, the
/// gradient of the sum of its output by input and weights.
fn convolutions(budget: Duration) {
    println!("\nconvolution 3×3, pad 1 (forward; backward to input and weights), GFLOP/s, one thread and two");
    println!(
        "{:>26} {:>10} {:>10} {:>12} {:>12} {:>10}",
        "input -> channels", "forward", "backward", "forward 2t", "backward 2t", "interp fw"
    );
    for (n, c, h, o) in [(64, 1, 28, 8), (64, 8, 14, 16), (32, 16, 8, 32)] {
        let mut f = Function::new("conv", Span::default());
        let x = f.param("x", shape(&[n, c, h, h]));
        let w = f.param("w", shape(&[o, c, 3, 3]));
        let y = f.push(Op::Conv2d { stride: (1, 1), pad: (1, 1) }, &[x, w], Span::default());
        let total = f.push(Op::Sum { axis: None }, &[y], Span::default());
        f.results = vec![y];
        f.result_names = vec!["y".into()];
        let mut scalar = f.clone();
        scalar.results = vec![total];
        let grad = optimized(&gradient(&scalar, &[0, 1]));
        let (xs, ws) = (values(n * c * h * h, 3), values(o * c * 9, 4));
        let mut out = vec![0.0f32; n * o * h * h];
        let flops = 2.0 * (n * o * c * 9 * h * h) as f64;
        let mut forward = JitExecutor::default().program(&f).expect("compiles");
        let t_forward = best_time(budget, || forward.run(&[&xs, &ws], &mut [&mut out]));
        let mut interp = InterpreterExecutor.program(&f).expect("prepares");
        let t_interp = best_time(budget / 4, || interp.run(&[&xs, &ws], &mut [&mut out]));
        let mut backward = JitExecutor::default().program(&grad).expect("compiles");
        let (mut loss, mut dx, mut dw) = ([0.0f32], vec![0.0f32; xs.len()], vec![0.0f32; ws.len()]);
        let t_backward = best_time(budget, || backward.run(&[&xs, &ws], &mut [&mut loss, &mut dx, &mut dw]));
        let mut forward = two_threads(Options::default()).program(&f).expect("compiles");
        let t_forward_two = best_time(budget, || forward.run(&[&xs, &ws], &mut [&mut out]));
        let mut backward = two_threads(Options::default()).program(&grad).expect("compiles");
        let t_backward_two = best_time(budget, || backward.run(&[&xs, &ws], &mut [&mut loss, &mut dx, &mut dw]));
        println!(
            "{:>26} {:>10.1} {:>10.1} {:>12.1} {:>12.1} {:>10.2}",
            format!("[{n}, {c}, {h}, {h}] -> {o}"),
            gflops(flops, t_forward),
            // The backward pass computes two products of the forward's size.
            gflops(2.0 * flops, t_backward),
            gflops(flops, t_forward_two),
            gflops(2.0 * flops, t_backward_two),
            gflops(flops, t_interp)
        );
    }
}

/// Steps per second of a file's first `train` block, and the time to compile its step.
fn training_steps(budget: Duration) {
    println!("\ntraining step (forward, loss, backward, update), steps per second");
    println!(
        "{:>30} {:>6} {:>12} {:>12} {:>8} {:>12} {:>12} {:>12}",
        "model (file)", "batch", "jit 1 thread", "jit 2", "2t / 1t", "interp", "jit / interp", "compile ms"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = ["examples", "benches/models"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(root.join(dir)).unwrap().filter_map(|e| e.ok().map(|e| e.path())))
        .filter(|p| p.extension().is_some_and(|e| e == "nn"))
        .filter(|p| std::fs::read_to_string(p).unwrap().contains("\ntrain "))
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let analysis = nnc_compiler::analyze(&text);
        let Some(Ok(train)) = analysis.trains().into_iter().next() else {
            continue;
        };
        let config = &train.config;
        let grad = nnc_compiler::driver::training_gradient(&train.model, config.loss, config.batch).unwrap();
        let elements = |i: usize| -> usize {
            grad.ty(grad.params[i].value).shape.0.iter().map(|d| d.as_const().unwrap() as usize).product()
        };
        let input = values(elements(0), 5).iter().map(|v| v + 0.5).collect::<Vec<f32>>();
        // Class 1, or 0.5 for the losses of probabilities, which never saturate towards it.
        let target = if config.loss == nnc_compiler::ir::Loss::CrossEntropy { 1.0 } else { 0.5 };
        let targets = vec![target; elements(1)];
        let mut masks = Vec::new();
        let mut params = Vec::new();
        for i in 2..grad.params.len() {
            match grad.dropout_masks.iter().find(|(m, _)| *m == i) {
                Some(_) => masks.push(vec![1.0f32; elements(i)]),
                None => params.push(values(elements(i), i as u32).iter().map(|v| v * 0.1).collect::<Vec<f32>>()),
            }
        }
        let batch = Batch { input: &input, targets: &targets, masks: &masks };
        let rate = |executor: &dyn Executor| {
            let started = Instant::now();
            let mut step = executor.train_step(&grad, &config.optimizer).unwrap();
            let compile = started.elapsed();
            let mut p = params.clone();
            let mut state = State::new(&p.iter().map(Vec::len).collect::<Vec<_>>());
            let t = best_time(budget, || {
                step.step(&batch, &mut p, &mut state).unwrap();
            });
            (1.0 / t.as_secs_f64(), compile)
        };
        let (jit, compile) = rate(&JitExecutor::default());
        let (jit_two, _) = rate(&two_threads(Options::default()));
        let (interp, _) = rate(&InterpreterExecutor);
        println!(
            "{:>30} {:>6} {:>12.0} {:>12.0} {:>8.2} {:>12.0} {:>12.1} {:>12.1}",
            format!("{} ({})", config.model, path.file_stem().unwrap().to_string_lossy()),
            config.batch,
            jit,
            jit_two,
            jit_two / jit,
            interp,
            jit / interp,
            compile.as_secs_f64() * 1e3
        );
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let budget = Duration::from_millis(if quick { 100 } else { 500 });
    matmuls(budget);
    convolutions(budget);
    training_steps(budget);
}

//! Threads split kernels, never steps, and change no number: training steps of a small
//! CNN on 1, 2 and 3 threads leave every parameter equal to the bit, with every kernel that
//! can be split split, and with products on each path a product can take (generated code,
//! the `gemm` crate, and the AVX-512 kernels where the CPU has them).

use nnc_codegen::kernel::{Kernel, Program};
use nnc_codegen::{JitExecutor, LIBRARY_PRODUCTS, Options, lower};
use nnc_compiler::analyze;
use nnc_compiler::driver;
use nnc_compiler::exec::{Batch, Executor};
use nnc_compiler::ir::{Function, Loss};
use nnc_compiler::optim::{Optimizer, State};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};
use std::io::Write;

/// Counts the allocations of the thread that runs the steps: in a step only the `gemm`
/// crate allocates (its packing workspace; `allocations.rs`), so allocations there show
/// that the library ran. Other threads (the harness's, the crew's) are not counted.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A CNN on 12×12 images: a convolution to `channels` channels, one to 8 channels, `pools`
/// 2×2 max-poolings, and two linear layers with `hidden` features between them.
///
/// With 3 channels, the second convolution is per image an 8×27 @ 27×144 product (and
/// 27×8 @ 8×144 to its input): a short k and contiguous rows of B and C, the AVX-512
/// kernel's; its weight gradient, a sum over the batch of 27×144 @ 144×8 dot products, is
/// the AVX-512 dot-product kernel's; without AVX-512 all three call `gemm` (which computes
/// shares of rows of such a product in another order than the whole for more than 32 rows,
/// hence blocks: `split_sums_of_products_by_gemm_train_to_the_same_bits`). The first
/// linear layer (16×288 @ 288×96 with one pooling and 96 features, B a transposed view)
/// goes to `gemm` on every CPU, and the last (16×96 @ 96×2, 3,072 multiply-adds) and the
/// first convolution (3×9 @ 9×144) are generated.
fn net(channels: usize, pools: usize, hidden: usize) -> String {
    let side = 12 >> pools;
    let features = 8 * side * side;
    let pools = "maxpool(2)\n".repeat(pools);
    format!(
        "model Net {{
            input [B, 1, 12, 12]
            conv2d({channels}, kernel = 3, pad = 1)
            relu
            conv2d(8, kernel = 3, pad = 1)
            relu
            {pools}
            flatten
            linear({features}, {hidden})
            tanh
            linear({hidden}, 2)
        }}"
    )
}

const BATCH: usize = 16;
const STEPS: usize = 4;

/// Where a product is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Path {
    Generated,
    Gemm,
    Avx512Product,
    Avx512DotProducts,
}

/// The path of a kernel's product, by the rules of `clif/` (`matmul` and
/// `library_matmul` when generating code, `nnc_gemm` when running it); `None` for a kernel
/// that is not a product.
fn path(kernel: &Kernel, avx512: bool) -> Option<Path> {
    let Kernel::MatMul { batch, m, n, k, a, b, c, accumulate, epilogue } = kernel else { return None };
    Some(if m * n * k < LIBRARY_PRODUCTS {
        Path::Generated
    } else if avx512 && (*accumulate || *batch == 1) && epilogue.is_none() && a.col_stride == 1 && b.row_stride == 1 {
        Path::Avx512DotProducts
    } else if avx512 && b.col_stride == 1 && c.col_stride == 1 && (1..=256).contains(k) {
        Path::Avx512Product
    } else {
        Path::Gemm
    })
}

/// The training gradient of `source`'s model for `BATCH` examples.
fn gradient(source: &str) -> Function {
    let analysis = analyze(source);
    assert!(analysis.diagnostics.is_empty(), "{:?}", analysis.diagnostics);
    let model = analysis.model(&analysis.shapes.models[0].name, &HashMap::new()).unwrap();
    driver::training_gradient(&model, Loss::CrossEntropy, BATCH).unwrap()
}

fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// What `STEPS` steps leave: the loss of each step and the parameters, as bits, with the
/// allocations of the calling thread during the steps after the first.
struct Run {
    losses: Vec<u32>,
    params: Vec<Vec<u32>>,
    allocations: u64,
}

fn train(grad: &Function, executor: &JitExecutor) -> Run {
    let optimizer = Optimizer::Adam { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
    let mut step = executor.train_step(grad, &optimizer).unwrap();
    let sizes: Vec<usize> = grad.params[2..]
        .iter()
        .map(|p| grad.ty(p.value).shape.0.iter().map(|d| d.as_const().unwrap() as usize).product())
        .collect();
    // Deterministic values of both signs, different in every element.
    let noise = |seed: usize, n: usize, scale: f32| -> Vec<f32> {
        (0..n).map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0 - 1.0) * scale).collect()
    };
    let mut params: Vec<Vec<f32>> = sizes.iter().enumerate().map(|(i, &n)| noise(i + 1, n, 0.3)).collect();
    let mut state = State::new(&sizes);
    let input = noise(0, BATCH * 144, 1.0);
    let targets: Vec<f32> = (0..BATCH).map(|i| (i % 2) as f32).collect();
    let batch = Batch { input: &input, targets: &targets, masks: &[] };
    let mut losses = Vec::new();
    let mut allocations = 0;
    for n in 0..STEPS {
        let before = ALLOCATIONS.with(Cell::get);
        losses.push(step.step(&batch, &mut params, &mut state).unwrap().to_bits());
        // The first step's allocations include the library's one-time set-up.
        if n > 0 {
            allocations += ALLOCATIONS.with(Cell::get) - before;
        }
    }
    let params = params.iter().map(|p| p.iter().map(|v| v.to_bits()).collect()).collect();
    Run { losses, params, allocations }
}

/// Trains `source`'s model on 1, 2 and 3 threads, with every kernel that can be split split
/// (however small), and checks that the split products take every path this CPU has, that
/// helpers ran their parts, and that the losses and parameters are the same bits.
fn same_bits_on_one_two_and_three_threads(source: &str) {
    let avx512 = avx512();
    if !avx512 {
        // Past the harness's capture of `println!`, so that a passing run says it too.
        let note = "threads: this CPU has no AVX-512, so products take `gemm` and generated code only\n";
        let _ = std::io::stderr().write_all(note.as_bytes());
    }
    let grad = gradient(source);
    let program: Program = lower(&grad).unwrap();
    let paths: Vec<Option<Path>> = program.kernels.iter().map(|k| path(k, avx512)).collect();
    let mut runs: Vec<Run> = Vec::new();
    for threads in 1..=3 {
        let options = Options { parallel_flops: 0, ..Options::default() };
        let executor = JitExecutor::with_options(options).with_threads(threads).unwrap();
        let parts = executor.kernel_parts(&grad).unwrap();
        assert_eq!(parts.len(), program.kernels.len());
        let run = train(&grad, &executor);
        // Every part but the first of each split kernel ran on a helper, at every step.
        let helper_parts: usize = parts.iter().map(|p| p - 1).sum();
        assert_eq!(executor.helper_parts(), (STEPS * helper_parts) as u64, "parts on helpers, {threads} threads");
        let split: BTreeSet<Path> = paths.iter().zip(&parts).filter(|(_, p)| **p > 1).filter_map(|(k, _)| *k).collect();
        println!(
            "{threads} threads: {} of {} kernels split, {helper_parts} parts on helpers per step, products split: \
             {split:?}; {} allocations (by `gemm`) on the calling thread",
            parts.iter().filter(|p| **p > 1).count(),
            parts.len(),
            run.allocations
        );
        if threads > 1 {
            let mut want = vec![Path::Generated, Path::Gemm];
            if avx512 {
                want.extend([Path::Avx512Product, Path::Avx512DotProducts]);
            }
            assert_eq!(split, want.into_iter().collect(), "the paths of the products split on {threads} threads");
        }
        // Nothing else in a step allocates (`allocations.rs`): `gemm` ran.
        assert!(run.allocations > 0, "no `gemm` call on the calling thread on {threads} threads");
        if let Some(one) = runs.first() {
            same_bits(&grad, one, &run, threads);
        }
        runs.push(run);
    }
}

/// Fails with the first parameter element that differs.
fn same_bits(grad: &Function, one: &Run, run: &Run, threads: usize) {
    assert_eq!(run.losses, one.losses, "the losses (as bits) on {threads} threads and on 1");
    for (k, (got, want)) in run.params.iter().zip(&one.params).enumerate() {
        if let Some(i) = (0..want.len()).find(|&i| got[i] != want[i]) {
            panic!(
                "on {threads} threads `{}`[{i}] is {} against {} on 1 ({} of {} elements differ)",
                grad.params[k + 2].name,
                f32::from_bits(got[i]),
                f32::from_bits(want[i]),
                got.iter().zip(want).filter(|(a, b)| a != b).count(),
                want.len()
            );
        }
    }
}

#[test]
fn one_two_and_three_threads_train_to_the_same_bits() {
    same_bits_on_one_two_and_three_threads(&net(3, 1, 96));
}

/// With 8 channels the second convolution's weight gradient is 72×144 @ 144×8 per image,
/// summed over the batch; without AVX-512 it calls `gemm`, which computes a share of the
/// rows of such a product (B contiguous along k) in another order than the whole once
/// there are more than 32 rows. Its two blocks of 36 rows are two calls on any number of
/// threads (`library_block` in `clif/mod.rs`), so the sums agree.
#[test]
fn split_sums_of_products_by_gemm_train_to_the_same_bits() {
    same_bits_on_one_two_and_three_threads(&net(8, 1, 96));
}

/// With two poolings and 600 hidden features, the gradient by the first linear layer's
/// input is 16×600 @ 600×72 with no epilogue, split over its 72 columns: `gemm` sums k = 600
/// in one block of 512 and one of 88 for a 16×36 product (C at most 64×64) but in blocks
/// sized from the caches for 16×72, so the two blocks of 36 columns are two calls on one
/// thread too.
#[test]
fn products_longer_than_512_train_to_the_same_bits() {
    same_bits_on_one_two_and_three_threads(&net(3, 2, 600));
}

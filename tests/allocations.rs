//! Steps allocate nothing, counted on every thread of the process: once a step or a
//! program for a batch size is compiled, running it again allocates nothing, on the
//! reference interpreter and in compiled code split over the executor's helper threads,
//! and the runtime's training loop allocates nothing between the steps of an epoch.
//!
//! The one exception is the `gemm` crate, which allocates its packing workspace on each
//! call. Where a step calls it, the test lists every call the step makes (each product's
//! shape, strides and part, by the rules of `clif/`), replays each call of `gemm::gemm`
//! on buffers of its own while counting, and requires the step's allocations to equal the
//! sum exactly: everything but `gemm` allocates nothing.
//!
//! The cases run one after another from `main` (`harness = false` in `Cargo.toml`), not as
//! libtest tests: libtest runs each test on a thread of its own while its main thread waits
//! for results, writes them, and notes a test that runs over a minute, and it runs tests
//! side by side; with a counter global to the process, any of that could land inside a
//! measured window. Here the only threads are this one and the executors' helpers.

use nnc_codegen::kernel::{Kernel, Matrix};
use nnc_codegen::{JitExecutor, library_block, lower};
use nnc_compiler::analyze;
use nnc_compiler::driver;
use nnc_compiler::exec::{Batch, Executor, InterpreterExecutor};
use nnc_compiler::ir::{Function, Loss};
use nnc_compiler::optim::{Optimizer, State};
use nnc_runtime::train::{Event, RunOptions, train};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts the allocations of every thread.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::SeqCst)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        // For runners that list a binary's tests before running them.
        println!("steps_allocate_nothing: test");
        return;
    }
    interpreted_steps_allocate_nothing();
    compiled_steps_allocate_nothing_on_any_thread();
    compiled_steps_allocate_only_for_gemm();
    the_training_loop_allocates_nothing_between_steps();
}

/// A small CNN with dropout, for the interpreter.
const SMALL: &str = "
model Net {
    input [B, 1, 6, 6]
    conv2d(2, kernel = 3, pad = 1)
    relu
    maxpool(2)
    flatten
    dropout(0.25)
    linear(18, 64)
    tanh
    linear(64, 3)
}
";

/// For compiled code: per image of a batch of 8, the convolutions are 4×9 @ 9×144 and
/// 8×36 @ 36×144 products (and 36×8 @ 8×144 to the second's input), the AVX-512 kernel's
/// where the CPU has it, and their weight gradients sums of dot products, the AVX-512
/// dot-product kernel's; the second convolution's kernels are large enough to split over
/// threads. The linear layer's products (8×72 @ 72×4 and its gradients) are generated.
const CNN: &str = "
model Net {
    input [B, 1, 12, 12]
    conv2d(4, kernel = 3, pad = 1)
    relu
    conv2d(8, kernel = 3, pad = 1)
    relu
    maxpool(2)
    maxpool(2)
    flatten
    dropout(0.25)
    linear(72, 4)
}
";

/// Products that go to `gemm` on every CPU: 64×256 @ 256×512 reads a transposed B, and
/// 64×512 @ 512×10 has k over the AVX-512 kernel's 256.
const MLP: &str = "
model Net {
    input [B, 256]
    linear(256, 512)
    relu
    linear(512, 10)
}
";

fn interpreted_steps_allocate_nothing() {
    steps_allocate_nothing("the interpreter", SMALL, 4, None);
}

/// The executor `nnc run` makes, on at least two threads so that the helpers run.
fn default_executor() -> JitExecutor {
    let threads = std::thread::available_parallelism().map_or(2, usize::from).max(2);
    JitExecutor::new().with_threads(threads).expect("threads start")
}

fn compiled_steps_allocate_nothing_on_any_thread() {
    let jit = default_executor();
    let gemm = steps_allocate_nothing("compiled code", CNN, 8, Some(&jit));
    if avx512() {
        assert_eq!(gemm.calls, 0, "every product of this model that leaves generated code is an AVX-512 kernel's");
    } else {
        println!("  this CPU has no AVX-512: the convolutions' products call `gemm` instead");
    }
}

fn compiled_steps_allocate_only_for_gemm() {
    let jit = default_executor();
    let gemm = steps_allocate_nothing("compiled code calling `gemm`", MLP, 64, Some(&jit));
    assert!(gemm.calls > 0, "the products of this model call `gemm`");
}

fn elements(f: &Function, value: nnc_compiler::ir::Value) -> usize {
    f.ty(value).shape.0.iter().map(|d| d.as_const().unwrap() as usize).product()
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

/// Ten steps of `source`'s model on `batch` examples, and an evaluation, allocate nothing
/// but what `gemm` allocates in the calls they make (none on the interpreter, `jit` none),
/// counted on every thread; with compiled code, helper threads ran parts of the steps.
/// Returns the `gemm` calls of a step.
fn steps_allocate_nothing(what: &str, source: &str, batch: usize, jit: Option<&JitExecutor>) -> Gemm {
    let analysis = analyze(source);
    assert!(analysis.diagnostics.is_empty(), "{:?}", analysis.diagnostics);
    let model = analysis.model(&analysis.shapes.models[0].name, &HashMap::new()).unwrap();
    let training = driver::training_loss(&model, Loss::CrossEntropy, Some(batch)).unwrap();
    let learnable = driver::learnable(&training);
    let grad = driver::training_gradient(&model, Loss::CrossEntropy, batch).unwrap();
    let executor: &dyn Executor = match jit {
        Some(jit) => jit,
        None => &InterpreterExecutor,
    };
    let optimizer = Optimizer::Adam { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
    let mut step = executor.train_step(&grad, &optimizer).unwrap();

    let sizes: Vec<usize> = learnable.iter().map(|&i| elements(&grad, grad.params[i].value)).collect();
    let mut params: Vec<Vec<f32>> =
        sizes.iter().map(|&n| (0..n).map(|k| ((k % 7) as f32 - 3.0) * 0.1).collect()).collect();
    let mut state = State::new(&sizes);
    let input: Vec<f32> = (0..elements(&grad, grad.params[0].value)).map(|k| (k % 5) as f32 * 0.2).collect();
    let targets: Vec<f32> = (0..batch).map(|k| (k % 2) as f32).collect();
    let masks: Vec<Vec<f32>> = training
        .dropout_masks
        .iter()
        .map(|&(i, p)| vec![1.0 / (1.0 - p as f32); elements(&grad, grad.params[i].value)])
        .collect();
    let buffers = Batch { input: &input, targets: &targets, masks: &masks };

    let per_step = jit.map_or_else(Gemm::default, |jit| gemm_allocations(jit, &grad));
    let first = step.step(&buffers, &mut params, &mut state).unwrap();
    let mut losses = Vec::with_capacity(10);
    let helpers = jit.map(JitExecutor::helper_parts);
    let before = allocations();
    for _ in 0..10 {
        losses.push(step.step(&buffers, &mut params, &mut state).unwrap());
    }
    let allocated = allocations() - before;
    assert_eq!(allocated, 10 * per_step.allocations, "{what}: ten steps after the first; a step makes {per_step}");
    if let (Some(jit), Some(before)) = (jit, helpers) {
        assert!(jit.helper_parts() > before, "{what}: no kernel was split over threads");
    }
    // The steps did train: Adam on one fixed batch lowers its loss.
    assert!(losses[9] < first, "{what}: loss {first} -> {losses:?}");

    // An evaluation program also runs without allocating.
    let f = driver::evaluation(&model, Loss::CrossEntropy, Some(batch)).unwrap();
    let mut program = executor.program(&f).unwrap();
    let per_run = jit.map_or_else(Gemm::default, |jit| gemm_allocations(jit, &f));
    let mut loss = [0.0f32];
    let mut out = vec![0.0f32; elements(&f, f.results[1])];
    let mut all: Vec<&[f32]> = vec![&input, &targets];
    all.extend(params.iter().map(Vec::as_slice));
    program.run(&all, &mut [&mut loss, &mut out]);
    let before = allocations();
    program.run(&all, &mut [&mut loss, &mut out]);
    assert_eq!(allocations() - before, per_run.allocations, "{what}: an evaluation, which makes {per_run}");
    assert!(loss[0].is_finite() && out.iter().all(|v| v.is_finite()));
    match jit {
        Some(_) => {
            println!("{what}: nothing allocates but `gemm`: a step makes {per_step}, an evaluation {per_run} ... ok")
        }
        None => println!("{what}: steps and evaluations allocate nothing ... ok"),
    }
    per_step
}

/// The digits CNN of the examples, trained for two epochs by the runtime's loop on the
/// default executor: from the first step of an epoch to its last (to the last but one in
/// the first epoch when a smaller last batch has its step compiled there), the loop
/// allocates what `gemm` does and nothing else.
fn the_training_loop_allocates_nothing_between_steps() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let text = std::fs::read_to_string(examples.join("digits_cnn.nn")).unwrap();
    let text = text.replace("epochs    = 15", "epochs    = 2").replace("    save      = \"cnn.safetensors\"\n", "");
    assert!(text.contains("epochs    = 2") && !text.contains("save"), "the example changed: {text}");
    let analysis = analyze(&text);
    let checked = analysis.trains().remove(0).unwrap();
    let out = std::env::temp_dir().join(format!("nnc-allocations-{}", std::process::id()));
    let jit = default_executor();
    let options = RunOptions { out: Some(&out), executor: Some(&jit), ..RunOptions::default() };
    // (epoch, step, allocations so far) at each step's event, kept without allocating.
    let mut steps: Vec<(usize, usize, u64)> = Vec::with_capacity(1000);
    let mut examples_seen = 0;
    let report = train(&checked, &examples, &options, &mut |event| match event {
        Event::Started { train, .. } => examples_seen = train,
        Event::Step { epoch, step, .. } => steps.push((epoch, step, allocations())),
        Event::EpochDone(_) => {}
    });
    let _ = std::fs::remove_dir_all(&out);
    let report = report.unwrap();
    assert!(steps.len() < 1000, "the events outgrew their room");
    assert!(jit.helper_parts() > 0, "no kernel of the training loop was split over threads");

    let batch = report.config.settings.batch;
    let mut gemm_per_step = HashMap::new();
    let mut gemm = |n: usize| -> u64 {
        *gemm_per_step.entry(n).or_insert_with(|| {
            let grad = driver::training_gradient(&checked.model, report.config.settings.loss, n).unwrap();
            gemm_allocations(&jit, &grad).allocations
        })
    };
    for epoch in 1..=report.config.settings.epochs {
        let epoch_steps: Vec<(usize, u64)> =
            steps.iter().filter(|s| s.0 == epoch).map(|&(_, step, count)| (step, count)).collect();
        let last = epoch_steps.len() - usize::from(epoch == 1 && !examples_seen.is_multiple_of(batch));
        assert!(last > 2 && epoch_steps[0].0 == 1, "epoch {epoch}: steps {epoch_steps:?}");
        let size = |step: usize| batch.min(examples_seen - (step - 1) * batch);
        let want: u64 = (2..=last).map(|step| gemm(size(step))).sum();
        let got = epoch_steps[last - 1].1 - epoch_steps[0].1;
        assert_eq!(got, want, "epoch {epoch}: steps 2 to {last} allocated {got} times, `gemm` accounting for {want}");
        println!("the training loop, epoch {epoch}: steps 2 to {last} allocated {got} times, all in `gemm` ... ok");
    }
}

/// One call of `gemm::gemm` as `nnc_gemm` makes it: C (m×n) (+)= A (m×k) @ B (k×n), each
/// matrix with its row and column strides.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct GemmCall {
    m: usize,
    n: usize,
    k: usize,
    a: [usize; 2],
    b: [usize; 2],
    c: [usize; 2],
    accumulate: bool,
}

/// The calls of `gemm::gemm` one run of a function makes, and what they allocate.
#[derive(Clone, Debug, Default)]
struct Gemm {
    calls: usize,
    allocations: u64,
    /// The allocations of one call, over the calls.
    per_call: BTreeSet<u64>,
}

impl std::fmt::Display for Gemm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} `gemm` calls allocating {} times ({:?} per call)", self.calls, self.allocations, self.per_call)
    }
}

/// What `gemm` allocates in one run of `f` compiled by `jit`: every call of `gemm::gemm`
/// the run makes, replayed and counted.
fn gemm_allocations(jit: &JitExecutor, f: &Function) -> Gemm {
    let program = lower(f).unwrap();
    let mut replayed: HashMap<GemmCall, u64> = HashMap::new();
    let mut gemm = Gemm::default();
    for kernel in &program.kernels {
        for call in gemm_calls(kernel, jit.options.library_products) {
            let allocations = *replayed.entry(call).or_insert_with(|| replay(call));
            gemm.calls += 1;
            gemm.allocations += allocations;
            gemm.per_call.insert(allocations);
        }
    }
    gemm
}

/// The calls of `gemm::gemm` one run of a kernel split into `parts` makes, by the rules of
/// `clif/` (`matmul`, `library_matmul`, `nnc_gemm`): products of fewer than `library`
/// multiply-adds are generated, and the AVX-512 kernels take theirs; the separate products
/// of a batch are a call each, and a single product or a sum is a call per product per
/// block (`library_block`) of the rows of C (with an epilogue, or at least as many rows as
/// columns) or of its columns, however many parts the kernel is split into.
fn gemm_calls(kernel: &Kernel, library: usize) -> Vec<GemmCall> {
    let Kernel::MatMul { batch, m, n, k, a, b, c, accumulate, epilogue } = kernel else { return Vec::new() };
    let (batch, m, n, k, accumulate) = (*batch, *m, *n, *k, *accumulate);
    let avx512 = avx512();
    let dot_products =
        avx512 && (accumulate || batch == 1) && epilogue.is_none() && a.col_stride == 1 && b.row_stride == 1;
    let avx512_product = avx512 && b.col_stride == 1 && c.col_stride == 1 && (1..=256).contains(&k);
    if batch == 0 || m * n * k < library || dot_products || avx512_product {
        return Vec::new();
    }
    let strides = |x: &Matrix| [x.row_stride, x.col_stride];
    let call = |m, n, accumulate| GemmCall { m, n, k, a: strides(a), b: strides(b), c: strides(c), accumulate };
    if batch > 1 && !accumulate {
        return vec![call(m, n, false); batch];
    }
    // Blocks of rows or columns, a call each whatever the parts: parts take whole blocks.
    let by_rows = m >= n || epilogue.is_some();
    let extent = if by_rows { m } else { n };
    let block = library_block(extent);
    let mut calls = Vec::new();
    for first in (0..extent).step_by(block) {
        let share = block.min(extent - first);
        let (rows, cols) = if by_rows { (share, n) } else { (m, share) };
        calls.extend((0..batch).map(|t| call(rows, cols, accumulate && t > 0)));
    }
    calls
}

/// The allocations of one call of `gemm::gemm` on buffers of its own: the second of two
/// calls, after the library's one-time set-up on this thread.
fn replay(call: GemmCall) -> u64 {
    let extent = |[rs, cs]: [usize; 2], rows: usize, cols: usize| (rows - 1) * rs + (cols - 1) * cs + 1;
    let a = vec![0.5f32; extent(call.a, call.m, call.k)];
    let b = vec![0.25f32; extent(call.b, call.k, call.n)];
    let mut c = vec![0.0f32; extent(call.c, call.m, call.n)];
    let [[a_rs, a_cs], [b_rs, b_cs], [c_rs, c_cs]] = [call.a, call.b, call.c].map(|m| m.map(|s| s as isize));
    let keep = if call.accumulate { 1.0 } else { 0.0 };
    let mut counted = 0;
    for _ in 0..2 {
        let before = allocations();
        // SAFETY: the buffers hold every element the shape and strides reach; `c` is apart.
        unsafe {
            gemm::gemm(
                call.m,
                call.n,
                call.k,
                c.as_mut_ptr(),
                c_cs,
                c_rs,
                call.accumulate,
                a.as_ptr(),
                a_cs,
                a_rs,
                b.as_ptr(),
                b_cs,
                b_rs,
                keep,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        };
        counted = allocations() - before;
    }
    counted
}

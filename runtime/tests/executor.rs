//! The executor interface keeps its promise: once a step for a batch size is compiled,
//! running it again allocates nothing, on the reference interpreter too.

use nnc_compiler::analyze;
use nnc_compiler::ir::{lower_loss_and_output, lower_training_loss, optimize, reverse};
use nnc_compiler::shapes::Dim;
use nnc_grammar::{File, Item, ModelDef};
use nnc_runtime::executor::{Batch, Executor, InterpreterExecutor};
use nnc_runtime::optim::{Optimizer, State};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;

/// Counts the allocations of the thread that runs the test (the harness allocates on
/// others).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
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

const PROGRAM: &str = "
model Net {
    input [B, 1, 6, 6]
    conv2d(2, kernel = 3, pad = 1)
    relu
    maxpool(2)
    flatten
    dropout(0.25)
    linear(18, 5)
    tanh
    linear(5, 3)
}
";

fn model(file: &File) -> &ModelDef {
    file.items
        .iter()
        .find_map(|item| match item {
            Item::Model(m) => Some(m),
            _ => None,
        })
        .expect("a model")
}

#[test]
fn a_compiled_step_allocates_nothing() {
    let analysis = analyze(PROGRAM);
    assert!(analysis.diagnostics.is_empty(), "{:?}", analysis.diagnostics);
    let def = model(&analysis.file);
    let args: HashMap<String, Dim> = HashMap::new();
    let batch = 4;
    let training = lower_training_loss(&analysis.file, def, &args, "cross_entropy", Some(batch)).unwrap();
    let learnable: Vec<usize> =
        (2..training.params.len()).filter(|i| !training.dropout_masks.iter().any(|(m, _)| m == i)).collect();
    let grad = optimize(&reverse(&training, &learnable).0);
    let optimizer = Optimizer::Adam { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
    let mut step = InterpreterExecutor.train_step(&grad, &optimizer).unwrap();

    let sizes: Vec<usize> = learnable
        .iter()
        .map(|&i| grad.ty(grad.params[i].value).shape.0.iter().map(|d| d.as_const().unwrap() as usize).product())
        .collect();
    let mut params: Vec<Vec<f32>> =
        sizes.iter().map(|&n| (0..n).map(|k| ((k % 7) as f32 - 3.0) * 0.1).collect()).collect();
    let mut state = State::new(&sizes);
    let input: Vec<f32> = (0..batch * 36).map(|k| (k % 5) as f32 * 0.2).collect();
    let targets: Vec<f32> = vec![0.0, 1.0, 2.0, 1.0];
    let masks = vec![vec![1.0f32 / 0.75; batch * 18]];
    let buffers = Batch { input: &input, targets: &targets, masks: &masks };

    let first = step.step(&buffers, &mut params, &mut state).unwrap();
    let mut losses = Vec::with_capacity(10);
    let before = allocations();
    for _ in 0..10 {
        losses.push(step.step(&buffers, &mut params, &mut state).unwrap());
    }
    let allocated = allocations() - before;
    assert_eq!(allocated, 0, "steps after the first allocated {allocated} times");
    // The steps did train: Adam on one fixed batch lowers its loss.
    assert!(losses[9] < first, "loss {first} -> {:?}", losses);

    // An evaluation program also runs without allocating.
    let f = optimize(&lower_loss_and_output(&analysis.file, def, &args, "cross_entropy", Some(batch)).unwrap());
    let mut program = InterpreterExecutor.program(&f).unwrap();
    let mut loss = [0.0f32];
    let mut out = vec![0.0f32; batch * 3];
    let mut all: Vec<&[f32]> = vec![&input, &targets];
    all.extend(params.iter().map(Vec::as_slice));
    program.run(&all, &mut [&mut loss, &mut out]);
    let before = allocations();
    program.run(&all, &mut [&mut loss, &mut out]);
    assert_eq!(allocations() - before, 0);
    assert!(loss[0].is_finite() && out.iter().all(|v| v.is_finite()));
}

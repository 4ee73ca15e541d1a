//! Compiled code against the reference interpreter: every primitive of the gradient sweep
//! (its value and its optimised reverse-mode gradient) on all the sweep's shapes, the ops
//! without derivatives, and several training steps of every example, each within a
//! tolerance that grows with the number of terms a result sums.

#[path = "../../compiler/tests/common/sweep_cases.rs"]
mod sweep_cases;

use nnc_codegen::JitExecutor;
use nnc_compiler::ir::{Function, Op, Precision, Tensor, eval_function, optimize, reverse};
use nnc_runtime::executor::{Batch, Executor, InterpreterExecutor};
use nnc_runtime::optim::{Optimizer, State};
use std::path::Path;
use sweep_cases::*;

fn f32s(t: &Tensor) -> Vec<f32> {
    t.data.iter().map(|&v| v as f32).collect()
}

/// Whether `got` is `want` up to f32 rounding over sums of `terms` terms.
fn close(got: f32, want: f64, terms: usize) -> bool {
    let tolerance = 2e-5 * (1.0 + want.abs()) * (terms.max(1) as f64).sqrt().max(1.0) * 4.0;
    (f64::from(got) - want).abs() <= tolerance || (got.is_nan() && want.is_nan())
}

/// Runs `f` compiled and interpreted (in f32) on `args` and compares every result.
fn compare(f: &Function, args: &[Tensor]) -> Result<(), String> {
    let (want, _) = eval_function(f, args, Precision::F32)?;
    let mut program = JitExecutor::default().program(f)?;
    let inputs: Vec<Vec<f32>> = args.iter().map(f32s).collect();
    let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
    let mut outs: Vec<Vec<f32>> = want.iter().map(|t| vec![f32::NAN; t.data.len()]).collect();
    {
        let mut out_refs: Vec<&mut [f32]> = outs.iter_mut().map(Vec::as_mut_slice).collect();
        program.run(&refs, &mut out_refs);
    }
    // A result sums at most as many terms as all the inputs hold.
    let terms: usize = args.iter().map(|a| a.data.len()).sum();
    for (k, (got, want)) in outs.iter().zip(&want).enumerate() {
        for (i, (&g, &w)) in got.iter().zip(&want.data).enumerate() {
            if !close(g, w, terms) {
                return Err(format!("result {k} (`{}`)[{i}]: compiled {g}, interpreted {w}", f.result_names[k]));
            }
        }
    }
    Ok(())
}

#[test]
fn every_op_and_its_gradient_compiles_to_the_interpreters_values() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for op in Op::samples() {
        let mut all = cases(&op).expect("every op has an entry");
        // The ops without derivatives, evaluated only.
        all.extend(match &op {
            Op::Step | Op::Sign => UNARY_SHAPES.iter().map(|s| case(op.clone(), &[(s, ANY)])).collect(),
            Op::GreaterEq => BINARY_SHAPES.iter().map(|(a, b)| case(op.clone(), &[(a, ANY), (b, ANY)])).collect(),
            Op::OneHot { .. } => [(&[3][..], 4), (&[2, 3], 2), (&[1], 1), (&[5], 3)]
                .iter()
                .map(|(s, c)| case(Op::OneHot { classes: *c }, &[(s, Domain::Labels(*c))]))
                .collect(),
            _ => Vec::new(),
        });
        for (i, case) in all.iter().enumerate() {
            let mut rng = Rng(0x5DEE_CE66_D1CE_4E5B ^ (i as u64 + 1));
            let f = scalar_function(case, &mut rng);
            let args: Vec<Tensor> = case.inputs.iter().map(|(dims, domain)| draw(&mut rng, dims, *domain)).collect();
            let mut result = compare(&optimize(&f), &args);
            let wrt: Vec<usize> = (0..args.len()).filter(|&i| case.differentiable[i]).collect();
            if result.is_ok() && op.is_differentiable() && !wrt.is_empty() {
                result = compare(&optimize(&reverse(&f, &wrt).0), &args);
            }
            checked += 1;
            if let Err(e) = result {
                let shapes: Vec<String> = case.inputs.iter().map(|(s, _)| format!("{s:?}")).collect();
                failures.push(format!("{} on {}: {e}", case.op.name(), shapes.join(", ")));
            }
        }
    }
    assert!(checked > 300, "only {checked} cases");
    assert!(failures.is_empty(), "{} of {checked} cases differ:\n{}", failures.len(), failures.join("\n"));
}

/// The loss gradient of an example's first `train` block for batches of `batch`.
fn example_gradient(path: &Path, batch: usize) -> (Function, String) {
    let text = std::fs::read_to_string(path).unwrap();
    let analysis = nnc_compiler::analyze(&text);
    let train = analysis
        .file
        .items
        .iter()
        .find_map(|item| match item {
            nnc_grammar::Item::Train(t) => Some(t),
            _ => None,
        })
        .expect("a train block");
    let choice = nnc_runtime::train::model_and_args(&analysis.file, None).unwrap();
    let loss = train
        .settings
        .iter()
        .find(|s| s.key.name == "loss")
        .and_then(|s| match &s.value.kind {
            nnc_grammar::ExprKind::Name(l) => Some(l.clone()),
            _ => None,
        })
        .unwrap();
    let grad = nnc_runtime::train::training_gradient(&analysis.file, choice.model, &choice.args, &loss, batch).unwrap();
    (grad, loss)
}

fn elements(f: &Function, value: nnc_compiler::ir::Value) -> usize {
    f.ty(value).shape.0.iter().map(|d| d.as_const().unwrap() as usize).product()
}

#[test]
fn every_example_trains_alike_compiled_and_interpreted() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut names: Vec<_> = std::fs::read_dir(&examples)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "nn"))
        .filter(|p| std::fs::read_to_string(p).unwrap().contains("\ntrain "))
        .collect();
    names.sort();
    assert!(names.len() >= 5, "{names:?}");
    for path in names {
        let batch = 6;
        let (grad, loss) = example_gradient(&path, batch);
        let classes = grad
            .body
            .iter()
            .find(|i| i.op == Op::SoftmaxCrossEntropy)
            .map(|i| *grad.ty(i.args[0]).shape.0.last().unwrap().as_const().as_ref().unwrap() as usize)
            .unwrap_or(2);
        let mut rng = Rng(0xD1FF ^ path.to_string_lossy().len() as u64);
        let input: Vec<f32> = (0..elements(&grad, grad.params[0].value)).map(|_| rng.range(0.0, 1.0) as f32).collect();
        let targets: Vec<f32> = (0..elements(&grad, grad.params[1].value))
            .map(|_| match loss.as_str() {
                "cross_entropy" => ((rng.next() * classes as f64) as usize).min(classes - 1) as f32,
                _ => (rng.next() < 0.5) as u8 as f32,
            })
            .collect();
        let mut masks = Vec::new();
        let mut params = Vec::new();
        for i in 2..grad.params.len() {
            let n = elements(&grad, grad.params[i].value);
            match grad.dropout_masks.iter().find(|(m, _)| *m == i) {
                Some(&(_, p)) => {
                    masks.push((0..n).map(|k| if k % 3 == 0 { 0.0 } else { (1.0 / (1.0 - p)) as f32 }).collect())
                }
                None => params.push((0..n).map(|_| rng.range(-0.3, 0.3) as f32).collect::<Vec<f32>>()),
            }
        }
        let optimizer = Optimizer::Sgd { lr: 0.05, momentum: 0.9, nesterov: false, weight_decay: 0.0 };
        let sizes: Vec<usize> = params.iter().map(Vec::len).collect();
        let batch_buffers = Batch { input: &input, targets: &targets, masks: &masks };
        let run = |executor: &dyn Executor| {
            let mut step = executor.train_step(&grad, &optimizer).unwrap();
            let mut p = params.clone();
            let mut state = State::new(&sizes);
            let losses: Vec<f32> = (0..4).map(|_| step.step(&batch_buffers, &mut p, &mut state).unwrap()).collect();
            (losses, p)
        };
        let (want_losses, want_params) = run(&InterpreterExecutor);
        let (got_losses, got_params) = run(&JitExecutor::default());
        let name = path.file_name().unwrap().to_string_lossy();
        for (g, w) in got_losses.iter().zip(&want_losses) {
            assert!(close(*g, f64::from(*w), 1000), "{name}: loss {got_losses:?}, interpreted {want_losses:?}");
        }
        for (k, (g, w)) in got_params.iter().zip(&want_params).enumerate() {
            for (i, (&g, &w)) in g.iter().zip(w).enumerate() {
                assert!(close(g, f64::from(w), 1000), "{name}: parameter {k}[{i}] {g}, interpreted {w}");
            }
        }
    }
}

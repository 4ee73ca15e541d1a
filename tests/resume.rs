//! Resuming a training run stopped part-way, by Ctrl-C after a chosen step or by a crash
//! while a checkpoint is being saved, ends as the run that was never stopped: the same
//! weights and optimiser state bit for bit, the same steps with the same running losses,
//! and the same rows in `metrics.csv`, with compiled code and with the reference
//! interpreter. The stops are made from inside the process at exact steps, so nothing
//! depends on how fast the machine is.

use nnc_codegen::JitExecutor;
use nnc_compiler::exec::{Executor, InterpreterExecutor};
use nnc_runtime::checkpoint::{self, Crash};
use nnc_runtime::train::{CheckpointCrash, Event, Report, RunOptions, run_checkpoint, train};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// Fisher's iris has 120 training examples after the split: 8 steps of 16 an epoch, the
/// last of 8, so that the smaller last batch is resumed too.
const EPOCHS: usize = 4;
const STEPS: usize = 8;

/// A network with dropout trained by Adam, so that resuming must replay the data order
/// and the dropout masks and restore the optimiser's moments and the running loss.
fn program() -> String {
    let iris = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/iris.csv");
    format!(
        "model Net(hidden = 12) {{\n    input [B, 4]\n    linear(hidden)\n    relu\n    dropout(0.25)\n    linear(3)\n}}\n\n\
         train Net on csv(\"{}\", label = last) {{\n    loss      = cross_entropy\n    optimizer = adam(lr = 0.02)\n    \
         batch     = 16\n    epochs    = {EPOCHS}\n    seed      = 11\n    save      = \"net.safetensors\"\n}}\n",
        iris.display()
    )
}

/// Where a run stops: Ctrl-C after a step (epoch and step, from 1), a crash while saving
/// one checkpoint, or both.
#[derive(Clone, Copy, Default)]
struct Stop {
    interrupt: Option<(usize, usize)>,
    crash: Option<CheckpointCrash>,
}

/// A step as the progress events report it: epoch, step and the bits of the running loss.
type Step = (usize, usize, u64);

/// Requires the steps `got` to be `expected`, naming the first that differs.
fn same_steps(got: &[Step], expected: &[Step], what: &str) {
    let show = |step: Option<&Step>| step.map(|&(epoch, step, loss)| (epoch, step, f64::from_bits(loss)));
    let first = (0..got.len().max(expected.len())).find(|&i| got.get(i) != expected.get(i));
    if let Some(i) = first {
        panic!(
            "{what}: its step #{i} of {} is {:?} (epoch, step, running loss); the run never stopped has {:?}",
            got.len(),
            show(got.get(i)),
            show(expected.get(i))
        );
    }
}

/// One call of `train` in `dir`: its result and every step it ran.
fn run(dir: &Path, executor: &dyn Executor, resume: bool, stop: Stop) -> (Result<Report, String>, Vec<Step>) {
    let text = program();
    let analysis = nnc_compiler::analyze(&text);
    let checked = analysis.trains().remove(0).expect("a checked train block");
    let interrupt = AtomicBool::new(false);
    let mut steps = Vec::new();
    let mut on_event = |event: Event<'_>| {
        if let Event::Step { epoch, step, loss, .. } = event {
            steps.push((epoch, step, loss.to_bits()));
            if stop.interrupt == Some((epoch, step)) {
                interrupt.store(true, Ordering::SeqCst);
            }
        }
    };
    let out = dir.join("run");
    let options = RunOptions {
        out: Some(&out),
        resume,
        interrupt: Some(&interrupt),
        executor: Some(executor),
        crash: stop.crash,
        ..RunOptions::default()
    };
    (train(&checked, dir, &options, &mut on_event), steps)
}

/// Tensors with their values as bits, so that equality is bit for bit.
type Bits = Vec<(String, Vec<usize>, Vec<u64>)>;

fn bits(tensors: Vec<checkpoint::NamedTensor>) -> Bits {
    tensors
        .into_iter()
        .map(|(name, shape, values)| (name, shape, values.iter().map(|v| v.to_bits()).collect()))
        .collect()
}

/// What a finished run leaves, to compare with the run that was never stopped.
#[derive(Debug, PartialEq)]
struct Finished {
    /// The parameters `train` returns.
    params: Bits,
    /// The bytes of the `save` file.
    saved: Vec<u8>,
    /// The last run checkpoint: the parameters and the optimiser state.
    checkpoint: Bits,
    /// `metrics.csv` without its last column, the seconds an epoch took.
    metrics: Vec<String>,
}

fn finished(dir: &Path, report: Report) -> Finished {
    let metrics = std::fs::read_to_string(dir.join("run/metrics.csv")).expect("metrics.csv");
    Finished {
        params: bits(report.params),
        saved: std::fs::read(dir.join("net.safetensors")).expect("the saved weights"),
        checkpoint: bits(checkpoint::load(&run_checkpoint(&dir.join("run"))).expect("the run checkpoint")),
        metrics: metrics.lines().map(|line| line.rsplit_once(',').expect("columns").0.to_string()).collect(),
    }
}

/// A fresh directory for one run.
fn fresh(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnc-resume-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The run never stopped, once per executor: every step it ran and what it left.
fn reference(name: &'static str, executor: &dyn Executor) -> &'static (Vec<Step>, Finished) {
    static INTERPRETED: OnceLock<(Vec<Step>, Finished)> = OnceLock::new();
    static COMPILED: OnceLock<(Vec<Step>, Finished)> = OnceLock::new();
    let cell = if name == "interpreted" { &INTERPRETED } else { &COMPILED };
    cell.get_or_init(|| {
        let dir = fresh(&format!("{name}-reference"));
        let (report, steps) = run(&dir, executor, false, Stop::default());
        let finished = finished(&dir, report.expect("the reference run"));
        assert_eq!(steps.len(), EPOCHS * STEPS, "the data no longer gives {STEPS} steps an epoch");
        assert_eq!(finished.metrics.len(), EPOCHS + 1, "{:?}", finished.metrics);
        let _ = std::fs::remove_dir_all(&dir);
        (steps, finished)
    })
}

/// Stops a fresh run at `stop` with an error containing `error`, resumes it, and requires
/// the resumed run to start at step `resumes_at` (none when nothing is left but the
/// measurements) and to end as the run never stopped.
fn stop_and_resume(
    executor: (&'static str, &dyn Executor),
    case: &str,
    stop: Stop,
    error: &str,
    resumes_at: Option<(usize, usize)>,
) {
    let (name, executor) = executor;
    let (steps, expected) = reference(name, executor);
    let dir = fresh(&format!("{name}-{case}"));
    let (result, stopped) = run(&dir, executor, false, stop);
    let message = result.err().unwrap_or_else(|| panic!("{case}: the run was not stopped"));
    assert!(message.contains(error), "{case}: expected `{error}` in: {message}");
    same_steps(&stopped, &steps[..stopped.len().min(steps.len())], &format!("{case}: the run before the stop"));
    let checkpoint = run_checkpoint(&dir.join("run"));
    if checkpoint.exists() {
        checkpoint::load(&checkpoint).unwrap_or_else(|e| panic!("{case}: the checkpoint left does not load: {e}"));
    }

    let (result, resumed) = run(&dir, executor, true, Stop::default());
    let report = result.unwrap_or_else(|e| panic!("{case}: resuming failed: {e}"));
    let from = resumes_at.map_or(steps.len(), |(epoch, step)| (epoch - 1) * STEPS + step - 1);
    assert_eq!(resumed.first().map(|s| (s.0, s.1)), resumes_at, "{case}: where the resumed run starts");
    same_steps(&resumed, &steps[from..], &format!("{case}: the resumed run"));
    let got = finished(&dir, report);
    assert_eq!(got.metrics, expected.metrics, "{case}: metrics.csv");
    assert!(got.params == expected.params, "{case}: the returned weights differ from the run never stopped");
    assert!(got.saved == expected.saved, "{case}: the saved weights differ from the run never stopped");
    assert!(got.checkpoint == expected.checkpoint, "{case}: the last checkpoint differs from the run never stopped");
    let _ = std::fs::remove_dir_all(&dir);
}

fn ctrl_c(epoch: usize, step: usize) -> Stop {
    Stop { interrupt: Some((epoch, step)), crash: None }
}

fn crash(epoch: usize, step: usize, at: Crash) -> Option<CheckpointCrash> {
    Some(CheckpointCrash { epoch, step, at })
}

/// Ctrl-C at the first step, in the middle of an epoch, at the last step of an epoch and
/// at the last step of the run.
fn ctrl_c_anywhere(executor: (&'static str, &dyn Executor)) {
    for (case, (epoch, step), resumes_at) in [
        ("first-step", (1, 1), Some((1, 2))),
        ("mid-epoch", (2, 5), Some((2, 6))),
        ("epoch-end", (2, STEPS), Some((3, 1))),
        ("run-end", (EPOCHS, STEPS), None),
    ] {
        let error = format!("interrupted in epoch {epoch} after step {step};");
        stop_and_resume(executor, case, ctrl_c(epoch, step), &error, resumes_at);
    }
}

/// A crash at each point of saving the checkpoint at the end of epoch 2, while saving the
/// first checkpoint of the run, and while saving the checkpoint of a Ctrl-C.
fn crash_anywhere(executor: (&'static str, &dyn Executor)) {
    let cases = [
        ("mid-write", Stop { crash: crash(2, 0, Crash::MidWrite), ..Stop::default() }, Some((2, 1))),
        ("before-rename", Stop { crash: crash(2, 0, Crash::BeforeRename), ..Stop::default() }, Some((2, 1))),
        ("after-rename", Stop { crash: crash(2, 0, Crash::AfterRename), ..Stop::default() }, Some((3, 1))),
        ("first-checkpoint", Stop { crash: crash(1, 0, Crash::MidWrite), ..Stop::default() }, Some((1, 1))),
        ("ctrl-c-checkpoint", Stop { interrupt: Some((3, 3)), crash: crash(2, 3, Crash::MidWrite) }, Some((3, 1))),
    ];
    for (case, stop, resumes_at) in cases {
        let at = stop.crash.expect("a crash").at;
        stop_and_resume(executor, case, stop, &format!("simulated crash ({at:?})"), resumes_at);
    }
}

#[test]
fn ctrl_c_at_any_step_resumes_to_the_same_run_interpreted() {
    ctrl_c_anywhere(("interpreted", &InterpreterExecutor));
}

#[test]
fn ctrl_c_at_any_step_resumes_to_the_same_run_compiled() {
    ctrl_c_anywhere(("compiled", &JitExecutor::new()));
}

#[test]
fn a_crash_while_saving_a_checkpoint_resumes_to_the_same_run_interpreted() {
    crash_anywhere(("interpreted", &InterpreterExecutor));
}

#[test]
fn a_crash_while_saving_a_checkpoint_resumes_to_the_same_run_compiled() {
    crash_anywhere(("compiled", &JitExecutor::new()));
}

#[test]
fn a_run_stopped_again_and_again_ends_as_the_run_never_stopped() {
    let executor = JitExecutor::new();
    let (steps, expected) = reference("compiled", &executor);
    let dir = fresh("compiled-again-and-again");
    let stops = [
        ctrl_c(1, 3),
        ctrl_c(2, STEPS),
        Stop { crash: crash(3, 0, Crash::BeforeRename), ..Stop::default() },
        ctrl_c(4, 1),
    ];
    // Every step runs once, but for those of epoch 3, whose checkpoint the crash lost:
    // they run again.
    let mut ran = Vec::new();
    for (round, stop) in stops.into_iter().enumerate() {
        let (result, stopped) = run(&dir, &executor, round > 0, stop);
        assert!(result.is_err(), "round {round}: the run was not stopped");
        ran.extend(stopped);
    }
    let (result, stopped) = run(&dir, &executor, true, Stop::default());
    ran.extend(stopped);
    let again: Vec<Step> = steps[..3 * STEPS].iter().chain(&steps[2 * STEPS..]).copied().collect();
    same_steps(&ran, &again, "the steps of all rounds");
    assert!(finished(&dir, result.expect("the last resume")) == *expected, "the weights or metrics differ");
    let _ = std::fs::remove_dir_all(&dir);
}

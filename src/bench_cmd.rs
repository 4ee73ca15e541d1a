//! `nnc bench`: the speed of each `train` block's training step, measured on random data
//! of the model's shapes (no data file is read): the time from process start to the first
//! finished step, compile time, and steady steps per second.

use crate::output::{ColorChoice, analyze_checked, print_error};
use nnc_compiler::driver;
use nnc_compiler::exec::{Batch, Executor, Profile};
use nnc_compiler::optim::State;
use nnc_compiler::train::CheckedTrain;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

pub struct Options<'a> {
    pub executor: &'a dyn Executor,
    /// Overrides the `train` block's batch size.
    pub batch: Option<usize>,
    /// How long to measure each block.
    pub seconds: f64,
    /// When the process started, for the time to the first step.
    pub started: Instant,
    /// Show where a step's time goes.
    pub profile: bool,
}

pub fn run(path: &Path, options: &Options<'_>, color: ColorChoice) -> ExitCode {
    let analysis = match analyze_checked(path, color) {
        Ok(analysis) => analysis,
        Err(code) => return code,
    };
    let mut measured = 0;
    for item in &analysis.file.items {
        let nnc_grammar::Item::Train(def) = item else { continue };
        let model = analysis.text.get(def.model.span.range()).unwrap_or("?");
        let trains = analysis.trains();
        let checked = trains.iter().find_map(|t| t.as_ref().ok().filter(|t| t.config.span == def.span));
        let Some(checked) = checked else { continue };
        match bench(checked, options) {
            Ok(report) => {
                let threads = match options.executor.threads() {
                    1 => "1 thread".to_string(),
                    n => format!("{n} threads"),
                };
                println!("train {model} ({} executor, {threads}, batch {})", options.executor.name(), report.batch);
                println!(
                    "  time to first step  {:>10.1} ms  (compile {:.1} ms)",
                    ms(report.first_step),
                    ms(report.compile)
                );
                println!(
                    "  steps per second    {:>10.0}     ({:.0} examples/s, {} steps in {:.2} s)",
                    report.steps as f64 / report.elapsed.as_secs_f64(),
                    (report.steps * report.batch) as f64 / report.elapsed.as_secs_f64(),
                    report.steps,
                    report.elapsed.as_secs_f64()
                );
                match &report.profile {
                    Some(profile) => print_profile(profile),
                    None if options.profile => {
                        println!("  (the {} executor does not time the parts of a step)", options.executor.name())
                    }
                    None => {}
                }
                measured += 1;
            }
            Err(message) => {
                print_error(&format!("`train {model}`: {message}"), color);
                return ExitCode::from(1);
            }
        }
    }
    if measured == 0 {
        print_error(&format!("{} has no `train` block to measure", path.display()), color);
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The kernels by the time they took, longest first: share of the step, microseconds per
/// step, GFLOP/s and what each computes.
fn print_profile(profile: &Profile) {
    let total: Duration = profile.parts.iter().map(|p| p.time).sum();
    let steps = profile.steps.max(1) as f64;
    let mut order: Vec<usize> = (0..profile.parts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(profile.parts[i].time));
    println!("  where a step's time goes ({} kernels, timed one by one):", profile.parts.len());
    println!("  {:>6}  {:>10}  {:>8}  kernel", "share", "µs/step", "GFLOP/s");
    for i in order {
        let part = &profile.parts[i];
        let seconds = part.time.as_secs_f64() / steps;
        let share = if total.is_zero() { 0.0 } else { part.time.as_secs_f64() / total.as_secs_f64() };
        let gflops = if seconds > 0.0 { part.flops as f64 / seconds / 1e9 } else { 0.0 };
        let mut what = part.what.clone();
        if what.chars().count() > 110 {
            what = what.chars().take(109).collect::<String>() + "…";
        }
        println!("  {:>5.1}%  {:>10.1}  {:>8.1}  k{i}: {what}", 100.0 * share, seconds * 1e6, gflops);
    }
}

struct Report {
    batch: usize,
    compile: Duration,
    first_step: Duration,
    steps: usize,
    elapsed: Duration,
    profile: Option<Profile>,
}

fn bench(train: &CheckedTrain, options: &Options<'_>) -> Result<Report, String> {
    let config = &train.config;
    let batch = options.batch.unwrap_or(config.batch).max(1);
    let compile_start = Instant::now();
    let grad = driver::training_gradient(&train.model, config.loss, batch).map_err(|e| e.message)?;
    let mut step = options.executor.train_step(&grad, &config.optimizer)?;
    let compile = compile_start.elapsed();
    let elements = |i: usize| -> usize {
        grad.ty(grad.params[i].value).shape.0.iter().map(|d| d.as_const().unwrap_or(1) as usize).product()
    };
    // Inputs in [0, 1), labels of class 0 or 1, small weights: a step that stays finite.
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32
    };
    let input: Vec<f32> = (0..elements(0)).map(|_| next()).collect();
    let targets: Vec<f32> = (0..elements(1)).map(|_| if next() < 0.5 { 0.0 } else { 1.0 }).collect();
    let mut masks = Vec::new();
    let mut params = Vec::new();
    for i in 2..grad.params.len() {
        match grad.dropout_masks.iter().find(|(m, _)| *m == i) {
            Some(&(_, p)) => masks.push(vec![(1.0 / (1.0 - p)) as f32; elements(i)]),
            None => params.push((0..elements(i)).map(|_| (next() - 0.5) * 0.1).collect::<Vec<f32>>()),
        }
    }
    let mut state = State::new(&params.iter().map(Vec::len).collect::<Vec<_>>());
    let batch_buffers = Batch { input: &input, targets: &targets, masks: &masks };
    step.step(&batch_buffers, &mut params, &mut state).map_err(|e| e.message)?;
    let first_step = options.started.elapsed();
    let started = Instant::now();
    let mut steps = 0;
    while started.elapsed().as_secs_f64() < options.seconds {
        for _ in 0..16 {
            step.step(&batch_buffers, &mut params, &mut state).map_err(|e| e.message)?;
        }
        steps += 16;
    }
    let elapsed = started.elapsed();
    Ok(Report { batch, compile, first_step, steps, elapsed, profile: step.profile() })
}

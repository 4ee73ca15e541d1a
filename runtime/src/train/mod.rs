//! The training loop of a checked `train` block (`nnc_compiler::train::CheckedTrain`, its
//! settings typed by the check): read the data, compile the training step (the model, its
//! loss, and the reverse-mode gradient of the loss by every parameter, through the compile
//! driver), then for each epoch shuffle, step the optimiser batch by batch, and measure loss
//! and accuracy on the training and test sets.
//!
//! The steps run on an executor (`nnc_compiler::exec`) over buffers this loop allocates
//! once: the parameters, the optimiser state, a batch of inputs and targets, and the
//! dropout masks. This file holds the loop; `setup` what a run starts from, `compiled` the
//! programs per batch size, `measure` the evaluations, `run_files` metrics and checkpoints.

use crate::checkpoint;
use crate::data::{Dataset, generate, load_csv, shuffle};
use crate::init::Init;
use nnc_compiler::checked::CheckedModel;
use nnc_compiler::driver;
use nnc_compiler::exec::{Batch, Executor, InterpreterExecutor, Program, StepError, TrainStep};
use nnc_compiler::ir::{Function, Loss, ParamInit};
use nnc_compiler::optim::{Optimizer, State};
use nnc_compiler::train::{CheckedTrain, DataSource, TrainConfig};
use nnc_compiler::{Analysis, first_error};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

mod compiled;
mod measure;
mod run_files;
mod setup;

use compiled::*;
use measure::*;
pub use run_files::run_checkpoint;
use run_files::*;
use setup::*;
pub use setup::{ModelChoice, config, initial_weights, load, model_and_args};

/// The settings of a `train` block, with defaults filled in.
#[derive(Clone, Debug)]
pub struct Config {
    pub model: String,
    pub loss: Loss,
    pub optimizer: Optimizer,
    pub split: f64,
    pub batch: usize,
    pub epochs: usize,
    pub seed: u64,
    pub save: Option<PathBuf>,
    pub out: PathBuf,
    /// Weights to start from, instead of a fresh initialisation.
    pub init: Option<PathBuf>,
}

/// One epoch's measurements.
#[derive(Clone, Debug, PartialEq)]
pub struct Epoch {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: Option<f64>,
    pub test_loss: Option<f64>,
    pub test_accuracy: Option<f64>,
    pub seconds: f64,
    pub examples_per_second: f64,
}

/// What a training run leaves: its epochs, the final parameters and the confusion matrix of
/// the test set (rows are true classes, columns predictions).
#[derive(Clone, Debug)]
pub struct Report {
    pub config: Config,
    pub data: String,
    pub train_examples: usize,
    pub test_examples: usize,
    pub epochs: Vec<Epoch>,
    pub params: Vec<checkpoint::NamedTensor>,
    pub confusion: Option<Vec<Vec<usize>>>,
    /// The pictures written: curves, and the decision boundary for 2-D data.
    pub images: Vec<PathBuf>,
    pub seconds: f64,
}

/// How to run a `train` block.
#[derive(Default)]
pub struct RunOptions<'a> {
    /// The run directory, instead of the `out` setting.
    pub out: Option<&'a Path>,
    /// Continue from the run directory's checkpoint, if there is one.
    pub resume: bool,
    /// Set (by a Ctrl-C handler) to stop after the current step, saving a checkpoint.
    pub interrupt: Option<&'a AtomicBool>,
    /// What runs the steps; the reference interpreter when not given.
    pub executor: Option<&'a dyn Executor>,
    /// The name and text of the `.nn` file, to name source lines in errors.
    pub source: Option<(&'a str, &'a str)>,
    /// For tests of resuming: a crash to simulate while saving one run checkpoint.
    pub crash: Option<CheckpointCrash>,
}

/// A simulated crash while saving the run checkpoint of one position: `epoch` whole epochs
/// done and `step` steps of the next (0 for the checkpoint at the end of an epoch, the
/// step reached for the one an interrupt saves). The files are left as a process killed
/// there leaves them, and `train` returns an error.
#[derive(Clone, Copy, Debug)]
pub struct CheckpointCrash {
    pub epoch: usize,
    pub step: usize,
    pub at: checkpoint::Crash,
}

/// Events while training, for progress output.
pub enum Event<'a> {
    Started {
        data: &'a str,
        train: usize,
        test: usize,
        params: usize,
    },
    /// A step of an epoch: `step` of `steps`, with the mean loss of the epoch so far.
    Step {
        epoch: usize,
        epochs: usize,
        step: usize,
        steps: usize,
        loss: f64,
    },
    EpochDone(&'a Epoch),
}

/// Runs a `train` block. `base` is the directory of the `.nn` file.
pub fn train(
    train: &CheckedTrain,
    base: &Path,
    options: &RunOptions<'_>,
    on_event: &mut dyn FnMut(Event<'_>),
) -> Result<Report, String> {
    let started = Instant::now();
    let config = config(&train.config, base, options.out);
    let model = &train.model;
    let data = load(&train.config.data, base)?;
    // A separate test set, or a split of the data.
    let (train_set, test_set) = match &train.config.test {
        Some(source) => {
            let test = load(source, base)?;
            if test.dim != data.dim {
                return Err(format!(
                    "the test set {} has {} features per example, the training data {}",
                    test.origin, test.dim, data.dim
                ));
            }
            (data.clone(), test)
        }
        None => data.split(config.split, config.seed),
    };
    if train_set.n == 0 {
        return Err(format!(
            "`split = {}` leaves no training examples of the {} in {}",
            config.split, data.n, data.origin
        ));
    }
    let batch = config.batch.min(train_set.n);
    let executor: &dyn Executor = options.executor.unwrap_or(&InterpreterExecutor);
    let grad = driver::training_gradient(model, config.loss, batch).map_err(|e| e.message)?;
    // The input must take the data's features.
    let input_shape: Vec<usize> =
        grad.ty(grad.params[0].value).shape.0.iter().map(|d| d.as_const().unwrap_or(0) as usize).collect();
    let per_example: usize = input_shape[1..].iter().product();
    if per_example != data.dim {
        // The input as declared, with its batch symbol.
        let declared =
            driver::inference(model, None).map(|f| f.ty(f.params[0].value).shape.to_string()).unwrap_or_default();
        return Err(format!(
            "{} has {} features per example, but `{}` takes input {declared} ({per_example} per example)",
            data.origin, data.dim, config.model
        ));
    }
    let classification = config.loss != Loss::Mse;
    let forward = driver::inference(model, Some(batch)).map_err(|e| e.message)?;
    let outputs = forward.ty(forward.results[0]).shape.0.last().and_then(|d| d.as_const()).unwrap_or(1) as usize;
    if config.loss == Loss::CrossEntropy && data.classes > outputs {
        return Err(format!(
            "{} has labels up to {}, but `{}` has {outputs} outputs",
            data.origin,
            data.classes - 1,
            config.model
        ));
    }
    // Parameters, initialised as PyTorch does.
    let shapes: Vec<(String, Vec<usize>)> = grad.params[2..]
        .iter()
        .enumerate()
        .filter(|(i, _)| !grad.dropout_masks.iter().any(|(m, _)| *m == i + 2))
        .map(|(_, p)| p)
        .map(|p| {
            (p.name.clone(), grad.ty(p.value).shape.0.iter().map(|d| d.as_const().unwrap_or(1) as usize).collect())
        })
        .collect();
    let mut params: Vec<Vec<f32>> = initial_values(&shapes, &grad.param_inits, config.seed)
        .into_iter()
        .map(|values| values.into_iter().map(|v| v as f32).collect())
        .collect();
    if let Some(path) = &config.init {
        // Start from given weights, checked by name and shape.
        let tensors = checkpoint::load(path)?;
        for ((name, shape), values) in shapes.iter().zip(params.iter_mut()) {
            match tensors.iter().find(|(n, _, _)| n == name) {
                Some((_, s, v)) if s == shape => *values = v.iter().map(|&v| v as f32).collect(),
                Some((_, s, _)) => {
                    return Err(format!(
                        "`{}`: `{name}` is {s:?}, but `{}` needs {shape:?}",
                        path.display(),
                        config.model
                    ));
                }
                None => return Err(format!("`{}` has no tensor `{name}` for `{}`", path.display(), config.model)),
            }
        }
    }
    let mut state = State::new(&params.iter().map(Vec::len).collect::<Vec<_>>());
    let total_params: usize = params.iter().map(Vec::len).sum();
    on_event(Event::Started { data: &data.origin, train: train_set.n, test: test_set.n, params: total_params });

    let mut shuffle_rng = ChaCha8Rng::seed_from_u64(config.seed.wrapping_add(1));
    let mut epochs = Vec::new();
    let checkpoint_path = run_checkpoint(&config.out);
    // Where to start: the beginning, or where the run directory's checkpoint left off.
    let (mut start_epoch, mut skip_steps, mut partial_loss) = (1, 0, 0.0);
    if options.resume && checkpoint_path.exists() {
        let resumed = resume(&checkpoint_path, &config, &shapes)?;
        params = resumed.params;
        state = resumed.state;
        start_epoch = resumed.epoch + 1;
        skip_steps = resumed.step;
        partial_loss = resumed.loss_sum;
        epochs = read_metrics(&config.out, resumed.epoch);
        // The same data order: replay the shuffles of the epochs already done.
        for _ in 1..start_epoch {
            let mut order: Vec<usize> = (0..train_set.n).collect();
            shuffle(&mut order, &mut shuffle_rng);
        }
    }
    let mut compiled = Compiled {
        model,
        loss: config.loss,
        optimizer: &config.optimizer,
        executor,
        steps: HashMap::new(),
        evaluations: HashMap::new(),
    };
    // The batch buffers, allocated once and refilled at every step.
    let target_width = if config.loss == Loss::CrossEntropy { 1 } else { outputs };
    let mut inputs = vec![0.0f32; batch * per_example];
    let mut targets = vec![0.0f32; batch * target_width];
    let mut masks: Vec<Vec<f32>> = vec![Vec::new(); grad.dropout_masks.len()];
    let mut order: Vec<usize> = (0..train_set.n).collect();
    let step_error = |e: StepError, epoch: usize, step: usize| {
        let origin = e.origin.map_or(String::new(), |(op, span)| match options.source {
            Some((name, text)) => {
                let at = nnc_grammar::LineIndex::new(text).position(text, span.start);
                format!(", first produced by `{op}` at {name}:{}:{}", at.line + 1, at.char_column + 1)
            }
            None => format!(", first produced by `{op}`"),
        });
        let kept = if epoch > 1 {
            format!("the checkpoint of epoch {} is kept in {}", epoch - 1, checkpoint_path.display())
        } else {
            "nothing was saved from this run".to_string()
        };
        format!("{} at epoch {epoch}, step {step}{origin}; lower the learning rate ({kept})", e.message)
    };
    for epoch in start_epoch..=config.epochs {
        let epoch_start = Instant::now();
        for (i, slot) in order.iter_mut().enumerate() {
            *slot = i;
        }
        shuffle(&mut order, &mut shuffle_rng);
        let mut loss_sum = if epoch == start_epoch { partial_loss } else { 0.0 };
        let steps = order.len().div_ceil(batch);
        for (step, rows) in order.chunks(batch).enumerate() {
            if epoch == start_epoch && step < skip_steps {
                continue;
            }
            let n = rows.len();
            train_set.gather(rows, &mut inputs[..n * per_example], &mut targets[..n * target_width], target_width);
            let compiled_step = compiled.step(n)?;
            draw_masks(&mut masks, &compiled_step.masks, config.seed, epoch, step);
            let batch_buffers =
                Batch { input: &inputs[..n * per_example], targets: &targets[..n * target_width], masks: &masks };
            let loss = compiled_step
                .step
                .step(&batch_buffers, &mut params, &mut state)
                .map_err(|e| step_error(e, epoch, step + 1))?;
            loss_sum += f64::from(loss) * n as f64;
            let seen = (step * batch + n).min(order.len()) as f64;
            on_event(Event::Step { epoch, epochs: config.epochs, step: step + 1, steps, loss: loss_sum / seen });
            if options.interrupt.is_some_and(|flag| flag.load(Ordering::SeqCst)) {
                let position = (epoch - 1, step + 1, loss_sum);
                save_run(&checkpoint_path, &config, &shapes, &params, &state, position, options.crash)?;
                return Err(format!(
                    "interrupted in epoch {epoch} after step {}; the checkpoint is {}: run again with `--resume` to continue",
                    step + 1,
                    checkpoint_path.display()
                ));
            }
        }
        let seconds = epoch_start.elapsed().as_secs_f64();
        let measure = Measure { config: &config, input_shape: &input_shape, outputs, target_width };
        let (train_accuracy, _, _) = measure.evaluate(&mut compiled, &train_set, &params)?;
        let (test_accuracy, test_loss, _) = if test_set.n > 0 {
            let (a, l, c) = measure.evaluate(&mut compiled, &test_set, &params)?;
            (a, Some(l), c)
        } else {
            (None, None, None)
        };
        let record = Epoch {
            epoch,
            train_loss: loss_sum / train_set.n as f64,
            train_accuracy: train_accuracy.filter(|_| classification),
            test_loss,
            test_accuracy: test_accuracy.filter(|_| classification),
            seconds,
            examples_per_second: train_set.n as f64 / seconds.max(1e-9),
        };
        on_event(Event::EpochDone(&record));
        epochs.push(record);
        // After every epoch the run directory holds its metrics and a checkpoint, so a run
        // killed at any moment resumes from its last whole epoch.
        write_metrics(&config.out, &epochs)?;
        save_run(&checkpoint_path, &config, &shapes, &params, &state, (epoch, 0, 0.0), options.crash)?;
    }
    let measure = Measure { config: &config, input_shape: &input_shape, outputs, target_width };
    let confusion =
        if classification && test_set.n > 0 { measure.evaluate(&mut compiled, &test_set, &params)?.2 } else { None };
    write_metrics(&config.out, &epochs)?;
    let title = format!("{} on {}", config.model, data.origin);
    let mut images = crate::plots::curves(&config.out, &title, &epochs)?;
    if data.dim == 2 && per_example == 2 {
        let grid = boundary_grid(model, executor, &data, &params, outputs)?;
        images.extend(crate::plots::boundary(&config.out, &title, &grid, &data)?);
    }
    let named_params: Vec<checkpoint::NamedTensor> = shapes
        .iter()
        .zip(params)
        .map(|((n, s), p)| (n.clone(), s.clone(), p.into_iter().map(f64::from).collect()))
        .collect();
    if let Some(path) = &config.save {
        checkpoint::save(path, &named_params)?;
    }
    Ok(Report {
        config,
        data: data.origin.clone(),
        train_examples: train_set.n,
        test_examples: test_set.n,
        epochs,
        params: named_params,
        confusion,
        images,
        seconds: started.elapsed().as_secs_f64(),
    })
}

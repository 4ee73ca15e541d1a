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

/// A `train` block's settings for a run: the checked settings, with the paths they name
/// resolved.
#[derive(Clone, Debug)]
pub struct Config {
    /// The block's settings as the check typed them, with defaults filled in.
    pub settings: TrainConfig,
    /// Where to save the trained weights.
    pub save: Option<PathBuf>,
    /// The run directory: the run's own, else the block's `out`, else `runs/<model>`.
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
    let examples = examples(&config, base)?;
    let layout = layout(&train.model, &config, &examples)?;
    let params = initial_params(&config, &layout)?;
    let (data, train_set, test_set) = (&examples.data, &examples.train, &examples.test);
    let total_params: usize = params.iter().map(Vec::len).sum();
    on_event(Event::Started { data: &data.origin, train: train_set.n, test: test_set.n, params: total_params });
    let mut run = Run::new(&train.model, &config, options, &examples, &layout, params);
    let (mut epochs, start) = run.resume()?;
    for epoch in start.epochs + 1..=config.settings.epochs {
        let epoch_start = Instant::now();
        let loss_sum = if epoch == start.epochs + 1 {
            run.train_epoch(epoch, start.steps, start.loss_sum, on_event)?
        } else {
            run.train_epoch(epoch, 0, 0.0, on_event)?
        };
        let record = run.record(epoch, loss_sum, epoch_start.elapsed().as_secs_f64())?;
        on_event(Event::EpochDone(&record));
        epochs.push(record);
        // After every epoch the run directory holds its metrics and a checkpoint, so a run
        // killed at any moment resumes from its last whole epoch.
        write_metrics(&config.out, &epochs)?;
        run.save((epoch, 0, 0.0))?;
    }
    let confusion = run.confusion()?;
    write_metrics(&config.out, &epochs)?;
    let images = run.pictures(&epochs)?;
    let params = run.finish()?;
    Ok(Report {
        data: data.origin.clone(),
        train_examples: train_set.n,
        test_examples: test_set.n,
        epochs,
        params,
        confusion,
        images,
        seconds: started.elapsed().as_secs_f64(),
        config,
    })
}

/// Where a run is: whole epochs done, steps done of the next, and the sum of their losses.
struct Position {
    epochs: usize,
    steps: usize,
    loss_sum: f64,
}

/// A run under way: what it was set up with, its compiled programs, and the parameters,
/// optimiser state and buffers its steps update.
struct Run<'a> {
    config: &'a Config,
    options: &'a RunOptions<'a>,
    examples: &'a Examples,
    layout: &'a Layout,
    checkpoint: PathBuf,
    compiled: Compiled<'a>,
    params: Vec<Vec<f32>>,
    state: State,
    /// Shuffles the training set at the start of every epoch.
    shuffle_rng: ChaCha8Rng,
    /// The order of the training examples in the current epoch.
    order: Vec<usize>,
    /// A batch's inputs, targets and dropout masks, allocated once and refilled at every step.
    inputs: Vec<f32>,
    targets: Vec<f32>,
    masks: Vec<Vec<f32>>,
}

impl<'a> Run<'a> {
    fn new(
        model: &'a CheckedModel,
        config: &'a Config,
        options: &'a RunOptions<'a>,
        examples: &'a Examples,
        layout: &'a Layout,
        params: Vec<Vec<f32>>,
    ) -> Run<'a> {
        let settings = &config.settings;
        let compiled = Compiled {
            model,
            loss: settings.loss,
            optimizer: &settings.optimizer,
            executor: options.executor.unwrap_or(&InterpreterExecutor),
            steps: HashMap::new(),
            evaluations: HashMap::new(),
        };
        Run {
            config,
            options,
            examples,
            layout,
            checkpoint: run_checkpoint(&config.out),
            compiled,
            state: State::new(&params.iter().map(Vec::len).collect::<Vec<_>>()),
            params,
            shuffle_rng: ChaCha8Rng::seed_from_u64(settings.seed.wrapping_add(1)),
            order: (0..examples.train.n).collect(),
            inputs: vec![0.0f32; layout.batch * layout.per_example],
            targets: vec![0.0f32; layout.batch * layout.target_width],
            masks: vec![Vec::new(); layout.masks],
        }
    }

    /// Continues from the run directory's checkpoint, when asked to and there is one:
    /// restores the parameters, the optimiser state and the data order. Returns the epochs
    /// recorded and the position to go on from.
    fn resume(&mut self) -> Result<(Vec<Epoch>, Position), String> {
        if !(self.options.resume && self.checkpoint.exists()) {
            return Ok((Vec::new(), Position { epochs: 0, steps: 0, loss_sum: 0.0 }));
        }
        let resumed = resume(&self.checkpoint, self.config, &self.layout.params)?;
        self.params = resumed.params;
        self.state = resumed.state;
        let epochs = read_metrics(&self.config.out, resumed.epoch);
        // The same data order: replay the shuffles of the epochs already done.
        for _ in 0..resumed.epoch {
            let mut order: Vec<usize> = (0..self.examples.train.n).collect();
            shuffle(&mut order, &mut self.shuffle_rng);
        }
        Ok((epochs, Position { epochs: resumed.epoch, steps: resumed.step, loss_sum: resumed.loss_sum }))
    }

    /// Saves the run checkpoint of a position.
    fn save(&self, position: (usize, usize, f64)) -> Result<(), String> {
        let (params, state) = (&self.params, &self.state);
        save_run(&self.checkpoint, self.config, &self.layout.params, params, state, position, self.options.crash)
    }

    /// Trains epoch `epoch` from step `skip` on, the steps before it having lost `loss_sum`.
    /// Returns the sum of its steps' losses, each weighted by its examples.
    fn train_epoch(
        &mut self,
        epoch: usize,
        skip: usize,
        mut loss_sum: f64,
        on_event: &mut dyn FnMut(Event<'_>),
    ) -> Result<f64, String> {
        let (settings, layout, train_set) = (&self.config.settings, self.layout, &self.examples.train);
        let (batch, per_example, target_width) = (layout.batch, layout.per_example, layout.target_width);
        for (i, slot) in self.order.iter_mut().enumerate() {
            *slot = i;
        }
        shuffle(&mut self.order, &mut self.shuffle_rng);
        let steps = self.order.len().div_ceil(batch);
        for (step, rows) in self.order.chunks(batch).enumerate().skip(skip) {
            let n = rows.len();
            let (inputs, targets) = (&mut self.inputs[..n * per_example], &mut self.targets[..n * target_width]);
            train_set.gather(rows, inputs, targets, target_width);
            let compiled_step = self.compiled.step(n)?;
            draw_masks(&mut self.masks, &compiled_step.masks, settings.seed, epoch, step);
            let batch_buffers = Batch { input: inputs, targets, masks: &self.masks };
            let loss = compiled_step
                .step
                .step(&batch_buffers, &mut self.params, &mut self.state)
                .map_err(|e| step_error(e, epoch, step + 1, self.options.source, &self.checkpoint))?;
            loss_sum += f64::from(loss) * n as f64;
            let seen = (step * batch + n).min(self.order.len()) as f64;
            on_event(Event::Step { epoch, epochs: settings.epochs, step: step + 1, steps, loss: loss_sum / seen });
            if self.options.interrupt.is_some_and(|flag| flag.load(Ordering::SeqCst)) {
                self.save((epoch - 1, step + 1, loss_sum))?;
                return Err(format!(
                    "interrupted in epoch {epoch} after step {}; the checkpoint is {}: run again with `--resume` to continue",
                    step + 1,
                    self.checkpoint.display()
                ));
            }
        }
        Ok(loss_sum)
    }

    fn measure(&self) -> Measure<'a> {
        Measure { config: self.config, layout: self.layout }
    }

    /// The record of epoch `epoch`, which lost `loss_sum` in `seconds`: its loss, and the
    /// model measured on the training and test sets after it.
    fn record(&mut self, epoch: usize, loss_sum: f64, seconds: f64) -> Result<Epoch, String> {
        let (train_set, test_set) = (&self.examples.train, &self.examples.test);
        let classification = self.config.settings.loss != Loss::Mse;
        let measure = self.measure();
        let (train_accuracy, _, _) = measure.evaluate(&mut self.compiled, train_set, &self.params)?;
        let (test_accuracy, test_loss) = if test_set.n > 0 {
            let (accuracy, loss, _) = measure.evaluate(&mut self.compiled, test_set, &self.params)?;
            (accuracy, Some(loss))
        } else {
            (None, None)
        };
        Ok(Epoch {
            epoch,
            train_loss: loss_sum / train_set.n as f64,
            train_accuracy: train_accuracy.filter(|_| classification),
            test_loss,
            test_accuracy: test_accuracy.filter(|_| classification),
            seconds,
            examples_per_second: train_set.n as f64 / seconds.max(1e-9),
        })
    }

    /// The confusion matrix of the test set, for a classifier with one.
    fn confusion(&mut self) -> Result<Option<Vec<Vec<usize>>>, String> {
        let test_set = &self.examples.test;
        if self.config.settings.loss == Loss::Mse || test_set.n == 0 {
            return Ok(None);
        }
        Ok(self.measure().evaluate(&mut self.compiled, test_set, &self.params)?.2)
    }

    /// Draws the learning curves, and the decision boundary for 2-D data.
    fn pictures(&self, epochs: &[Epoch]) -> Result<Vec<PathBuf>, String> {
        let (config, data) = (self.config, &self.examples.data);
        let title = format!("{} on {}", config.settings.model, data.origin);
        let mut images = crate::plots::curves(&config.out, &title, epochs)?;
        if data.dim == 2 && self.layout.per_example == 2 {
            let (model, executor) = (self.compiled.model, self.compiled.executor);
            let grid = boundary_grid(model, executor, data, &self.params, self.layout.outputs)?;
            images.extend(crate::plots::boundary(&config.out, &title, &grid, data)?);
        }
        Ok(images)
    }

    /// The trained parameters, named, saved where the block asks.
    fn finish(self) -> Result<Vec<checkpoint::NamedTensor>, String> {
        let named_params: Vec<checkpoint::NamedTensor> = (self.layout.params.iter())
            .zip(self.params)
            .map(|((n, s), p)| (n.clone(), s.clone(), p.into_iter().map(f64::from).collect()))
            .collect();
        if let Some(path) = &self.config.save {
            checkpoint::save(path, &named_params)?;
        }
        Ok(named_params)
    }
}

/// Why step `step` of epoch `epoch` failed: the executor's message, the operation that
/// first produced a value that is not finite, and what a rerun can start from.
fn step_error(e: StepError, epoch: usize, step: usize, source: Option<(&str, &str)>, checkpoint: &Path) -> String {
    let origin = e.origin.map_or(String::new(), |(op, span)| match source {
        Some((name, text)) => {
            let at = nnc_grammar::LineIndex::new(text).position(text, span.start);
            format!(", first produced by `{op}` at {name}:{}:{}", at.line + 1, at.char_column + 1)
        }
        None => format!(", first produced by `{op}`"),
    });
    let kept = if epoch > 1 {
        format!("the checkpoint of epoch {} is kept in {}", epoch - 1, checkpoint.display())
    } else {
        "nothing was saved from this run".to_string()
    };
    format!("{} at epoch {epoch}, step {step}{origin}; lower the learning rate ({kept})", e.message)
}

//! The training loop of a checked `train` block (`nnc_compiler::train::CheckedTrain`, its
//! settings typed by the check): read the data, compile the training step (the model, its
//! loss, and the reverse-mode gradient of the loss by every parameter, through the compile
//! driver), then for each epoch shuffle, step the optimiser batch by batch, and measure loss
//! and accuracy on the training and test sets.
//!
//! The steps run on an executor (`nnc_compiler::exec`) over buffers this loop allocates
//! once: the parameters, the optimiser state, a batch of inputs and targets, and the
//! dropout masks.

use crate::checkpoint;
use crate::data::{Dataset, generate, load_csv, shuffle};
use crate::init::Init;
use nnc_compiler::Analysis;
use nnc_compiler::checked::CheckedModel;
use nnc_compiler::driver;
use nnc_compiler::exec::{Batch, Executor, InterpreterExecutor, Program, StepError, TrainStep};
use nnc_compiler::ir::{Function, Loss, ParamInit, optimize};
use nnc_compiler::optim::{Optimizer, State};
use nnc_compiler::train::{CheckedTrain, DataSource, TrainConfig};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

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

/// The settings of a checked `train` block for a run; paths are relative to `base`, the
/// directory of the `.nn` file, and `out` replaces the block's run directory.
pub fn config(train: &TrainConfig, base: &Path, out: Option<&Path>) -> Config {
    let path = |p: &Option<String>| p.as_ref().map(|p| base.join(p));
    Config {
        model: train.model.clone(),
        loss: train.loss,
        optimizer: train.optimizer.clone(),
        split: train.split,
        batch: train.batch,
        epochs: train.epochs,
        seed: train.seed,
        save: path(&train.save),
        out: out
            .map(Path::to_path_buf)
            .or_else(|| path(&train.out))
            .unwrap_or_else(|| base.join("runs").join(&train.model)),
        init: path(&train.init),
    }
}

/// Loads a data source; its paths are relative to `base`.
pub fn load(source: &DataSource, base: &Path) -> Result<Dataset, String> {
    match source {
        DataSource::Csv { path, label, scale, header } => {
            load_csv(&base.join(path), *label, *scale, *header).map_err(|e| e.to_string())
        }
        DataSource::Generated { kind, samples, noise, classes, seed } => {
            generate(kind.name(), *samples, *noise, *classes, *seed).map_err(|e| e.to_string())
        }
        DataSource::Idx { images, labels, scale } => arrays(crate::data::load_idx, base, images, labels, *scale),
        DataSource::Npy { inputs, labels, scale } => arrays(crate::data::load_npy, base, inputs, labels, *scale),
    }
}

/// Inputs and labels from two array files read by `read`.
fn arrays(
    read: fn(&Path) -> Result<crate::data::Array, crate::data::DataError>,
    base: &Path,
    inputs: &str,
    labels: &str,
    scale: f64,
) -> Result<Dataset, String> {
    let (inputs, labels) = (base.join(inputs), base.join(labels));
    let x = read(&inputs).map_err(|e| e.to_string())?;
    let y = read(&labels).map_err(|e| e.to_string())?;
    let origin = format!("{} and {}", inputs.display(), labels.display());
    crate::data::from_arrays(x, y, scale, origin).map_err(|e| e.to_string())
}

/// The initialiser of a parameter: the one written in its `param` statement, or PyTorch's
/// default (uniform in ±1/sqrt(fan_in), the bias with its weight's fan-in).
fn initializer(name: &str, shape: &[usize], params: &[(String, Vec<usize>)], written: &[(String, ParamInit)]) -> Init {
    let fan_in_of = |shape: &[usize]| shape.get(1..).map_or(1, |rest| rest.iter().product::<usize>()).max(1);
    let fan_in = if shape.len() > 1 { fan_in_of(shape) } else { shape.first().copied().unwrap_or(1) };
    if let Some((_, init)) = written.iter().find(|(n, _)| n == name) {
        return match *init {
            ParamInit::Zeros => Init::Zeros,
            ParamInit::Ones => Init::Ones,
            ParamInit::Normal { mean, std } => Init::Normal { mean, std },
            ParamInit::Uniform { low, high } => Init::Uniform { low, high },
            ParamInit::XavierUniform => Init::XavierUniform { fan_in, fan_out: shape.first().copied().unwrap_or(1) },
            ParamInit::KaimingUniform => Init::Default { fan_in },
        };
    }
    if let Some(slot) = name.strip_suffix(".bias") {
        let weight = format!("{slot}.weight");
        if let Some((_, s)) = params.iter().find(|(n, _)| *n == weight) {
            return Init::Default { fan_in: fan_in_of(s) };
        }
    }
    Init::Default { fan_in }
}

/// The first values of parameters of these names and shapes, drawn from `seed` in order.
fn initial_values(shapes: &[(String, Vec<usize>)], written: &[(String, ParamInit)], seed: u64) -> Vec<Vec<f64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    shapes
        .iter()
        .map(|(name, shape)| initializer(name, shape, shapes, written).fill(shape.iter().product(), &mut rng))
        .collect()
}

/// The weights a `train` block with this `seed` starts from, for the arguments of `f` from
/// `first` on (after the input of a model, or the input and targets of its loss): the same
/// numbers `nnc run` draws, since a training step's parameters come in the same order.
pub fn initial_weights(f: &Function, first: usize, seed: u64) -> Vec<checkpoint::NamedTensor> {
    let shapes: Vec<(String, Vec<usize>)> = f.params[first..]
        .iter()
        .map(|p| (p.name.clone(), f.ty(p.value).shape.0.iter().map(|d| d.as_const().unwrap_or(1) as usize).collect()))
        .collect();
    let values = initial_values(&shapes, &f.param_inits, seed);
    shapes.into_iter().zip(values).map(|((name, shape), values)| (name, shape, values)).collect()
}

/// The compiled programs of a run, one per batch size met (the last batch of an epoch
/// may be smaller).
struct Compiled<'a> {
    model: &'a CheckedModel,
    loss: Loss,
    optimizer: &'a Optimizer,
    executor: &'a dyn Executor,
    steps: HashMap<usize, CompiledStep>,
    evaluations: HashMap<usize, Box<dyn Program>>,
}

impl Compiled<'_> {
    /// The training step for batches of `n`.
    fn step(&mut self, n: usize) -> Result<&mut CompiledStep, String> {
        if let Entry::Vacant(slot) = self.steps.entry(n) {
            let grad = driver::training_gradient(self.model, self.loss, n).map_err(|e| e.message)?;
            let masks = grad
                .dropout_masks
                .iter()
                .map(|&(i, probability)| Mask { probability, len: elements(&grad, grad.params[i].value.0 as usize) })
                .collect();
            slot.insert(CompiledStep { step: self.executor.train_step(&grad, self.optimizer)?, masks });
        }
        Ok(self.steps.get_mut(&n).expect("just compiled"))
    }

    /// The loss and the output for batches of `n`, without dropout.
    fn evaluation(&mut self, n: usize) -> Result<&mut Box<dyn Program>, String> {
        if let Entry::Vacant(slot) = self.evaluations.entry(n) {
            let f = driver::loss_and_output(self.model, self.loss, Some(n)).map_err(|e| e.message)?;
            slot.insert(self.executor.program(&optimize(&f))?);
        }
        Ok(self.evaluations.get_mut(&n).expect("just compiled"))
    }
}

/// A training step with the dropout masks it takes.
struct CompiledStep {
    step: Box<dyn TrainStep>,
    masks: Vec<Mask>,
}

/// A dropout mask: the probability of dropping and the number of elements.
struct Mask {
    probability: f64,
    len: usize,
}

/// The number of elements of a value of concrete shape.
fn elements(f: &Function, value: usize) -> usize {
    f.values[value].0.shape.0.iter().map(|d| d.as_const().unwrap_or(1) as usize).product()
}

/// Fills the dropout masks of a step (0 with probability p, else 1 / (1 - p)) from a
/// generator seeded by the run's seed, the epoch and the step, so a resumed run draws the
/// same masks.
fn draw_masks(masks: &mut [Vec<f32>], kinds: &[Mask], seed: u64, epoch: usize, step: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((epoch as u64) << 40) ^ ((step as u64) << 8) ^ 0x5eed);
    for (mask, kind) in masks.iter_mut().zip(kinds) {
        let p = kind.probability;
        let keep = (1.0 / (1.0 - p)) as f32;
        mask.resize(kind.len, 0.0);
        for v in mask.iter_mut() {
            *v = if rng.random::<f64>() < p { 0.0 } else { keep };
        }
    }
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

/// The checkpoint of a run directory: parameters, optimiser state and position, in f32,
/// which holds every value exactly (training computes in f32), so resuming continues exactly.
pub fn run_checkpoint(out: &Path) -> PathBuf {
    out.join("checkpoint.safetensors")
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

/// What measuring a model on a data set needs to know of the run.
struct Measure<'a> {
    config: &'a Config,
    input_shape: &'a [usize],
    outputs: usize,
    target_width: usize,
}

impl Measure<'_> {
    /// Accuracy, mean loss and confusion matrix of the model on a data set.
    #[allow(clippy::type_complexity)]
    fn evaluate(
        &self,
        compiled: &mut Compiled<'_>,
        set: &Dataset,
        params: &[Vec<f32>],
    ) -> Result<(Option<f64>, f64, Option<Vec<Vec<usize>>>), String> {
        let outputs = self.outputs;
        let classes = if self.config.loss == Loss::CrossEntropy { outputs } else { 2 };
        let mut confusion = vec![vec![0usize; classes]; classes];
        let (mut correct, mut loss_sum) = (0usize, 0.0);
        let batch = self.config.batch.min(set.n).max(1);
        let per_example: usize = self.input_shape[1..].iter().product();
        let mut inputs = vec![0.0f32; batch * per_example];
        let mut targets = vec![0.0f32; batch * self.target_width];
        let mut out = vec![0.0f32; batch * outputs];
        let mut loss = [0.0f32];
        let rows: Vec<usize> = (0..set.n).collect();
        for chunk_rows in rows.chunks(batch) {
            let n = chunk_rows.len();
            let (x, t) = (&mut inputs[..n * per_example], &mut targets[..n * self.target_width]);
            set.gather(chunk_rows, x, t, self.target_width);
            let mut args: Vec<&[f32]> = vec![x, t];
            args.extend(params.iter().map(Vec::as_slice));
            compiled.evaluation(n)?.run(&args, &mut [&mut loss, &mut out[..n * outputs]]);
            loss_sum += f64::from(loss[0]) * n as f64;
            for (i, &row) in chunk_rows.iter().enumerate() {
                let scores = &out[i * outputs..(i + 1) * outputs];
                let predicted = if outputs == 1 {
                    usize::from(scores[0] > 0.5)
                } else {
                    scores
                        .iter()
                        .enumerate()
                        .fold((0, f32::NEG_INFINITY), |best, (k, &v)| if v > best.1 { (k, v) } else { best })
                        .0
                };
                let truth = set.labels[row] as usize;
                correct += usize::from(predicted == truth);
                if truth < classes && predicted < classes {
                    confusion[truth][predicted] += 1;
                }
            }
        }
        Ok((Some(correct as f64 / set.n.max(1) as f64), loss_sum / set.n.max(1) as f64, Some(confusion)))
    }
}

/// `metrics.csv` in the run directory: one line per epoch.
fn write_metrics(dir: &Path, epochs: &[Epoch]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    let cell = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
    let mut text = String::from("epoch,train_loss,train_accuracy,test_loss,test_accuracy,seconds\n");
    for e in epochs {
        text.push_str(&format!(
            "{},{:.6},{},{},{},{:.4}\n",
            e.epoch,
            e.train_loss,
            cell(e.train_accuracy),
            cell(e.test_loss),
            cell(e.test_accuracy),
            e.seconds
        ));
    }
    // Through a temporary file, so that a run killed while writing leaves the previous
    // rows for `--resume` to read rather than a cut file.
    checkpoint::write_atomically(&dir.join("metrics.csv"), text.as_bytes())
}

/// The model's prediction over a grid covering 2-D data, for the decision-boundary image.
fn boundary_grid(
    model: &CheckedModel,
    executor: &dyn Executor,
    data: &Dataset,
    params: &[Vec<f32>],
    outputs: usize,
) -> Result<crate::plots::Boundary, String> {
    const N: usize = 120;
    let xs: Vec<f64> = data.features.iter().step_by(2).copied().collect();
    let ys: Vec<f64> = data.features.iter().skip(1).step_by(2).copied().collect();
    let range = |v: &[f64]| {
        let (lo, hi) = (v.iter().copied().fold(f64::MAX, f64::min), v.iter().copied().fold(f64::MIN, f64::max));
        let margin = (hi - lo).max(1e-3) * 0.1;
        (lo - margin, hi + margin)
    };
    let (x, y) = (range(&xs), range(&ys));
    let mut points = Vec::with_capacity(2 * N * N);
    for row in 0..N {
        for col in 0..N {
            points.push((x.0 + (col as f64 + 0.5) * (x.1 - x.0) / N as f64) as f32);
            points.push((y.0 + (row as f64 + 0.5) * (y.1 - y.0) / N as f64) as f32);
        }
    }
    let forward = optimize(&driver::inference(model, Some(N * N)).map_err(|e| e.message)?);
    let mut args: Vec<&[f32]> = vec![&points];
    args.extend(params.iter().map(Vec::as_slice));
    let mut out = vec![0.0f32; N * N * outputs];
    executor.program(&forward)?.run(&args, &mut [&mut out]);
    let cells = out
        .chunks(outputs)
        .map(|row| {
            let row: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
            if outputs == 1 {
                let p = row[0].clamp(0.0, 1.0);
                (usize::from(p > 0.5), p.max(1.0 - p))
            } else {
                // Softmax confidence, mapped so that a uniform guess is 0.5.
                let top = row.iter().copied().fold(f64::MIN, f64::max);
                let total: f64 = row.iter().map(|v| (v - top).exp()).sum();
                let (class, _) =
                    row.iter().enumerate().fold((0, f64::MIN), |b, (k, &v)| if v > b.1 { (k, v) } else { b });
                let confidence = 1.0 / total;
                let k = outputs as f64;
                (class, 0.5 + 0.5 * ((confidence - 1.0 / k) / (1.0 - 1.0 / k)).clamp(0.0, 1.0))
            }
        })
        .collect();
    Ok(crate::plots::Boundary { n: N, x, y, cells })
}

/// A model chosen for prediction or gradients, with what its `train` block says of it.
pub struct ModelChoice {
    /// The model, checked with the argument values its `train` block gives.
    pub model: CheckedModel,
    /// The loss its `train` block names.
    pub loss: Option<Loss>,
    /// Its `train` block's settings, if it has a block.
    pub train: Option<TrainConfig>,
}

/// The model named `name` (or, without a name, the model of the file's first `train` block,
/// or the file's only model), with the arguments and settings of its `train` block.
pub fn model_and_args(analysis: &Analysis, name: Option<&str>) -> Result<ModelChoice, String> {
    let models = &analysis.shapes.models;
    let trains = &analysis.shapes.trains;
    let wanted = match name {
        Some(name) => name.to_string(),
        None => match (trains.first(), models.as_slice()) {
            (Some(train), _) => train.model.name.clone(),
            (None, [only]) => only.name.clone(),
            _ => return Err("name the model: the file has no `train` block and more than one model".into()),
        },
    };
    if !models.iter().any(|m| m.name == wanted) {
        return Err(format!("the file has no model `{wanted}`"));
    }
    match trains.iter().find(|t| t.model.name == wanted) {
        Some(train) => {
            let model = analysis.train_model(train.span).ok_or_else(|| format!("`{wanted}` could not be checked"))?;
            let loss = train.config.as_ref().map(|c| c.loss);
            Ok(ModelChoice { model, loss, train: train.config.clone() })
        }
        None => {
            let model = analysis.model(&wanted, &HashMap::new()).map_err(|errors| first_error(&wanted, &errors))?;
            Ok(ModelChoice { model, loss: None, train: None })
        }
    }
}

/// The first of the errors that stop a model, in words.
pub fn first_error(model: &str, errors: &[nnc_grammar::Diagnostic]) -> String {
    match errors.first() {
        Some(error) => format!("`{model}` does not check: {}", error.message),
        None => format!("the file has no model `{model}`"),
    }
}

/// What a run checkpoint restores.
struct Resumed {
    params: Vec<Vec<f32>>,
    state: State,
    epoch: usize,
    step: usize,
    loss_sum: f64,
}

const FORMAT: &str = "nnc-run-checkpoint-2";

/// Saves the run checkpoint of a position: whole epochs done, steps done of the next and
/// the sum of their losses.
fn save_run(
    path: &Path,
    config: &Config,
    shapes: &[(String, Vec<usize>)],
    params: &[Vec<f32>],
    state: &State,
    (epoch, step, loss_sum): (usize, usize, f64),
    crash: Option<CheckpointCrash>,
) -> Result<(), String> {
    let (count, first, second) = state.parts();
    let wide = |values: &[f32]| values.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
    let mut tensors: Vec<checkpoint::NamedTensor> =
        shapes.iter().zip(params).map(|((n, s), p)| (n.clone(), s.clone(), wide(p))).collect();
    for (k, ((_, shape), (m, v))) in shapes.iter().zip(first.iter().zip(second)).enumerate() {
        tensors.push((format!("optimizer.first.{k}"), shape.clone(), wide(m)));
        tensors.push((format!("optimizer.second.{k}"), shape.clone(), wide(v)));
    }
    let metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("model".to_string(), config.model.clone()),
        ("seed".to_string(), config.seed.to_string()),
        ("epoch".to_string(), epoch.to_string()),
        ("step".to_string(), step.to_string()),
        ("optimizer_steps".to_string(), count.to_string()),
        ("loss_sum".to_string(), loss_sum.to_string()),
    ]);
    let crash = crash.filter(|c| (c.epoch, c.step) == (epoch, step)).map(|c| c.at);
    // Every value is an f32, so f32 keeps them exactly.
    checkpoint::save_or_crash(path, &tensors, checkpoint::Dtype::F32, Some(metadata), crash)
}

fn resume(path: &Path, config: &Config, shapes: &[(String, Vec<usize>)]) -> Result<Resumed, String> {
    let (tensors, meta) = checkpoint::load_with(path)?;
    let field = |key: &str| {
        meta.get(key)
            .cloned()
            .ok_or_else(|| format!("`{}` is not a run checkpoint of nnc (no `{key}`)", path.display()))
    };
    if field("format")? != FORMAT || field("model")? != config.model {
        return Err(format!("`{}` is not a checkpoint of `{}`", path.display(), config.model));
    }
    if field("seed")? != config.seed.to_string() {
        return Err(format!(
            "`{}` was made with another seed; resuming would not repeat the data order",
            path.display()
        ));
    }
    let number = |key: &str| -> Result<f64, String> {
        field(key)?.parse::<f64>().map_err(|_| format!("`{}`: `{key}` is not a number", path.display()))
    };
    let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>, String> {
        match tensors.iter().find(|(n, _, _)| n == name) {
            Some((_, s, v)) if s == shape => Ok(v.iter().map(|&v| v as f32).collect()),
            Some((_, s, _)) => Err(format!("`{}`: `{name}` is {s:?}, but the model needs {shape:?}", path.display())),
            None => Err(format!("`{}` has no `{name}`", path.display())),
        }
    };
    let mut params = Vec::new();
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for (k, (name, shape)) in shapes.iter().enumerate() {
        params.push(get(name, shape)?);
        first.push(get(&format!("optimizer.first.{k}"), shape)?);
        second.push(get(&format!("optimizer.second.{k}"), shape)?);
    }
    Ok(Resumed {
        params,
        state: State::from_parts(number("optimizer_steps")? as u64, first, second),
        epoch: number("epoch")? as usize,
        step: number("step")? as usize,
        loss_sum: number("loss_sum")?,
    })
}

/// The epochs recorded in a run directory's `metrics.csv`, up to `last`.
fn read_metrics(dir: &Path, last: usize) -> Vec<Epoch> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap_or_default();
    let field = |v: Option<&str>| v.and_then(|v| v.parse::<f64>().ok());
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let epoch: usize = cells.first()?.parse().ok()?;
            (epoch <= last).then(|| Epoch {
                epoch,
                train_loss: field(cells.get(1).copied()).unwrap_or(f64::NAN),
                train_accuracy: field(cells.get(2).copied()),
                test_loss: field(cells.get(3).copied()),
                test_accuracy: field(cells.get(4).copied()),
                seconds: field(cells.get(5).copied()).unwrap_or(0.0),
                examples_per_second: 0.0,
            })
        })
        .collect()
}

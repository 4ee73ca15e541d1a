//! The executor interface: what runs a compiled training step or inference program on
//! buffers the runtime owns. The reference interpreter is one implementation; compiled
//! machine code is another, behind the same traits.
//!
//! The runtime allocates the parameters, the optimiser state and the batch buffers once;
//! an executor allocates what it needs for one batch size when it compiles, so that a step
//! allocates nothing.

use crate::ir::{Function, Interpreter, Precision};
use crate::optim::{Optimizer, State};
use nnc_grammar::Span;

/// The arguments of one training step besides the parameters: the input batch, its
/// targets, and one mask per dropout (0 or `1 / (1 - p)`).
pub struct Batch<'a> {
    pub input: &'a [f32],
    pub targets: &'a [f32],
    pub masks: &'a [Vec<f32>],
}

/// A step that could not finish: a value that is not finite, with the instruction that
/// first produced one where the executor can tell.
#[derive(Clone, Debug, PartialEq)]
pub struct StepError {
    pub message: String,
    /// The op and where in the source it came from.
    pub origin: Option<(String, Span)>,
}

/// One compiled training step for one batch size.
pub trait TrainStep {
    /// Runs forward, loss, backward and the optimiser update on one batch, updating
    /// `params` and `state` in place, and returns the batch's mean loss. When the loss or
    /// a gradient is not finite, nothing is updated.
    fn step(&mut self, batch: &Batch<'_>, params: &mut [Vec<f32>], state: &mut State) -> Result<f32, StepError>;

    /// Where the time of the steps so far went, part by part, when the executor was asked
    /// to measure it; `None` when it was not, or cannot.
    fn profile(&self) -> Option<Profile> {
        None
    }
}

/// The time of each part of a step (a compiled kernel, say), summed over the steps run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    /// Steps measured.
    pub steps: u64,
    pub parts: Vec<PartTime>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PartTime {
    /// What the part computes, in the executor's own words (a kernel's text form).
    pub what: String,
    /// Floating-point operations of one run.
    pub flops: u64,
    /// Summed over all steps.
    pub time: std::time::Duration,
}

/// One compiled function for one batch size (inference, evaluation).
pub trait Program {
    /// Runs on `args` (in the function's argument order) and writes its results.
    fn run(&mut self, args: &[&[f32]], results: &mut [&mut [f32]]);
}

/// Compiles functions of concrete shapes for one way of executing them.
pub trait Executor {
    /// The name `--executor` selects it by.
    fn name(&self) -> &'static str;

    /// How many threads a step runs on.
    fn threads(&self) -> usize {
        1
    }

    /// Compiles the training step of `grad`, a loss gradient whose arguments are the input,
    /// the targets, then the parameters and dropout masks (`grad.dropout_masks`), and whose
    /// results are the loss and each parameter's gradient, followed by the update.
    fn train_step(&self, grad: &Function, optimizer: &Optimizer) -> Result<Box<dyn TrainStep>, String>;

    /// Compiles `f` to run on buffers.
    fn program(&self, f: &Function) -> Result<Box<dyn Program>, String>;
}

/// The reference interpreter as an executor: every op evaluated by its reference rule in
/// f64, each result rounded to f32 as f32 arithmetic would, into buffers allocated when
/// the step is compiled.
pub struct InterpreterExecutor;

impl Executor for InterpreterExecutor {
    fn name(&self) -> &'static str {
        "interp"
    }

    fn train_step(&self, grad: &Function, optimizer: &Optimizer) -> Result<Box<dyn TrainStep>, String> {
        let interpreter = Interpreter::new(grad, Precision::F32)?;
        let grads = (1..grad.results.len()).map(|k| vec![0.0; interpreter.result(k).data.len()]).collect();
        let arguments = StepArguments::of(grad);
        Ok(Box::new(InterpretedStep { interpreter, arguments, grads, optimizer: optimizer.clone() }))
    }

    fn program(&self, f: &Function) -> Result<Box<dyn Program>, String> {
        Ok(Box::new(InterpretedProgram { interpreter: Interpreter::new(f, Precision::F32)? }))
    }
}

/// What fills an argument of a training step.
#[derive(Clone, Copy, Debug)]
enum Source {
    Input,
    Targets,
    Param(usize),
    Mask(usize),
}

/// Where each argument of a training step's function comes from: the batch's input and
/// targets, then the parameters and dropout masks in the order the function takes them.
#[derive(Clone, Debug)]
pub struct StepArguments(Vec<Source>);

impl StepArguments {
    pub fn of(grad: &Function) -> StepArguments {
        let (mut params, mut masks) = (0, 0);
        let mut sources = vec![Source::Input, Source::Targets];
        for i in 2..grad.params.len() {
            sources.push(if grad.dropout_masks.iter().any(|(m, _)| *m == i) {
                masks += 1;
                Source::Mask(masks - 1)
            } else {
                params += 1;
                Source::Param(params - 1)
            });
        }
        StepArguments(sources)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The values of argument `k`.
    pub fn get<'a>(&self, k: usize, batch: &Batch<'a>, params: &'a [Vec<f32>]) -> &'a [f32] {
        match self.0[k] {
            Source::Input => batch.input,
            Source::Targets => batch.targets,
            Source::Param(p) => &params[p],
            Source::Mask(m) => &batch.masks[m],
        }
    }
}

/// The error of a step whose loss or a gradient is not finite, with the op (and its source
/// span) that first produced such a value, when known.
pub fn not_finite(loss: f64, origin: Option<(String, Span)>) -> StepError {
    let message = if loss.is_finite() {
        format!("a gradient is not finite (the loss was {loss})")
    } else {
        format!("the loss became {loss}")
    };
    StepError { message, origin }
}

/// Runs a step's function on the reference interpreter to find the op that first produced
/// a value that is not finite: for executors that only see that a result is not finite.
pub fn locate_not_finite(
    grad: &Function,
    arguments: &StepArguments,
    batch: &Batch<'_>,
    params: &[Vec<f32>],
) -> Option<(String, Span)> {
    let mut interpreter = Interpreter::new(grad, Precision::F32).ok()?;
    for k in 0..arguments.len() {
        fill(&mut interpreter.arg_mut(k).data, arguments.get(k, batch, params));
    }
    interpreter.run();
    interpreter.first_non_finite().map(|inst| (inst.op.name().to_string(), inst.span))
}

struct InterpretedStep {
    interpreter: Interpreter,
    arguments: StepArguments,
    /// The gradients in f32, for the optimiser.
    grads: Vec<Vec<f32>>,
    optimizer: Optimizer,
}

fn fill(target: &mut [f64], source: &[f32]) {
    assert_eq!(target.len(), source.len(), "a buffer of the wrong length reached the executor");
    for (t, &s) in target.iter_mut().zip(source) {
        *t = f64::from(s);
    }
}

impl TrainStep for InterpretedStep {
    fn step(&mut self, batch: &Batch<'_>, params: &mut [Vec<f32>], state: &mut State) -> Result<f32, StepError> {
        for k in 0..self.arguments.len() {
            fill(&mut self.interpreter.arg_mut(k).data, self.arguments.get(k, batch, params));
        }
        self.interpreter.run();
        let loss = self.interpreter.result(0).data[0];
        let finite = (0..self.grads.len() + 1).all(|k| self.interpreter.result(k).data.iter().all(|v| v.is_finite()));
        if !finite {
            let origin = self.interpreter.first_non_finite().map(|inst| (inst.op.name().to_string(), inst.span));
            return Err(not_finite(loss, origin));
        }
        for (k, grad) in self.grads.iter_mut().enumerate() {
            for (g, &v) in grad.iter_mut().zip(&self.interpreter.result(k + 1).data) {
                *g = v as f32;
            }
        }
        self.optimizer.step(state, params, &self.grads);
        Ok(loss as f32)
    }
}

struct InterpretedProgram {
    interpreter: Interpreter,
}

impl Program for InterpretedProgram {
    fn run(&mut self, args: &[&[f32]], results: &mut [&mut [f32]]) {
        for (k, arg) in args.iter().enumerate() {
            fill(&mut self.interpreter.arg_mut(k).data, arg);
        }
        self.interpreter.run();
        for (k, out) in results.iter_mut().enumerate() {
            for (o, &v) in out.iter_mut().zip(&self.interpreter.result(k).data) {
                *o = v as f32;
            }
        }
    }
}

//! The compile driver: from a checked model or function to the IR programs that the
//! commands and the runtime run or show (the inference program, the loss, the training
//! step, a derivative as `nnc ir` and `nnc graph` print it), by lowering, differentiating
//! and optimising. In debug builds, and so in every test, the IR verifier runs after each
//! pass.

use crate::Analysis;
use crate::checked::{Checked, CheckedModel, InstanceId};
use crate::ir::{Function, Loss, LowerError, Lowering, forward, lower_instance, optimize, reverse, verify, with_loss};
use crate::shapes::Shape;

/// Checks a pass's result in debug builds: a failure is a bug in the pass, reported with
/// the pass's name.
fn verified(f: Function, pass: &str) -> Function {
    if cfg!(debug_assertions)
        && let Err(e) = verify(&f)
    {
        panic!("the IR after {pass} of `{}` does not verify: {e}", f.name);
    }
    f
}

/// `f` optimised.
pub fn optimized(f: &Function) -> Function {
    verified(optimize(f), "optimisation")
}

/// Reverse mode: `f`'s result and its gradient by the arguments `wrt`.
pub fn gradient(f: &Function, wrt: &[usize]) -> Function {
    verified(reverse(f, wrt).0, "reverse mode")
}

/// Forward mode: `f`'s results and their tangents along the arguments `wrt`.
pub fn tangent(f: &Function, wrt: &[usize]) -> Function {
    verified(forward(f, wrt).0, "forward mode")
}

/// Lowers instance `id` of `checked` as written.
pub fn lower(checked: &Checked, id: InstanceId, how: Lowering) -> Result<Function, LowerError> {
    Ok(verified(lower_instance(checked, id, how)?, "lowering"))
}

/// A model's inference program: a function of its input and parameters that returns its
/// output. `batch` replaces the batch symbol by a number.
pub fn inference(model: &CheckedModel, batch: Option<usize>) -> Result<Function, LowerError> {
    lower(&model.checked, model.instance(), Lowering { batch, training: false, output: None })
}

/// A model with its loss, without dropout: a function of the input, the targets and the
/// parameters that returns the loss.
pub fn loss(model: &CheckedModel, loss: Loss, batch: Option<usize>) -> Result<Function, LowerError> {
    Ok(verified(with_loss(inference(model, batch)?, loss)?, "adding the loss"))
}

/// A model's inference program, optimised, as programs that run it take it.
pub fn optimized_inference(model: &CheckedModel, batch: Option<usize>) -> Result<Function, LowerError> {
    Ok(optimized(&inference(model, batch)?))
}

/// The loss of a model (without dropout) and its gradient by every parameter, optimised:
/// a function of the input, the targets and the parameters.
pub fn loss_gradient(model: &CheckedModel, loss: Loss, batch: Option<usize>) -> Result<Function, LowerError> {
    let f = self::loss(model, loss, batch)?;
    let params: Vec<usize> = (2..f.params.len()).collect();
    Ok(optimized(&gradient(&f, &params)))
}

/// The loss and the model's output, computed by one forward pass without dropout, as
/// evaluation measures them.
pub fn loss_and_output(model: &CheckedModel, loss: Loss, batch: Option<usize>) -> Result<Function, LowerError> {
    let forward = inference(model, batch)?;
    let output = forward.results[0];
    let mut f = with_loss(forward, loss)?;
    f.results.push(output);
    f.result_names.push("y".to_string());
    Ok(verified(f, "adding the loss"))
}

/// [`loss_and_output`], optimised, as evaluation runs it.
pub fn evaluation(model: &CheckedModel, loss: Loss, batch: Option<usize>) -> Result<Function, LowerError> {
    Ok(optimized(&loss_and_output(model, loss, batch)?))
}

/// The loss of a training step: with each dropout's mask as an argument (`{index}.mask`).
pub fn training_loss(model: &CheckedModel, loss: Loss, batch: Option<usize>) -> Result<Function, LowerError> {
    let forward = lower(&model.checked, model.instance(), Lowering { batch, training: true, output: None })?;
    Ok(verified(with_loss(forward, loss)?, "adding the loss"))
}

/// The arguments of `f` from `first` on that are learned: its parameters, not its dropout
/// masks (`first` skips the input, and the targets of a loss).
pub fn parameters(f: &Function, first: usize) -> Vec<usize> {
    (first..f.params.len()).filter(|i| !f.dropout_masks.iter().any(|(m, _)| m == i)).collect()
}

/// The arguments of a training loss that are learned: the parameters, not the input, the
/// targets or the dropout masks.
pub fn learnable(training: &Function) -> Vec<usize> {
    parameters(training, 2)
}

/// The loss gradient of a model for one batch size: its arguments are the input, the
/// targets, then the parameters and dropout masks; its results the loss and the gradients
/// of the parameters, optimised.
pub fn training_gradient(model: &CheckedModel, loss: Loss, batch: usize) -> Result<Function, LowerError> {
    let training = training_loss(model, loss, Some(batch))?;
    Ok(optimized(&gradient(&training, &learnable(&training))))
}

/// The function `name` of a checked file, lowered for arguments of these shapes. A
/// failure is what checking it for those shapes reported, at its place.
pub fn function(analysis: &Analysis, name: &str, shapes: &[Shape]) -> Result<Function, LowerError> {
    match analysis.function(name, shapes) {
        Ok((checked, id)) => lower(&checked, id, Lowering::default()),
        Err(errors) => Err(match errors.first() {
            Some(first) => LowerError { message: first.message.clone(), span: first.primary.span },
            None => {
                LowerError { message: format!("there is no function `{name}`"), span: nnc_grammar::Span::default() }
            }
        }),
    }
}

/// Which program of a function or model `nnc ir` and `nnc graph` show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Derivative {
    /// The program as written.
    #[default]
    None,
    /// Its adjoint code (`--grad`).
    Reverse,
    /// Its tangent code (`--jvp`).
    Forward,
}

impl Derivative {
    fn of(self, f: Function, wrt: &[usize]) -> Function {
        match self {
            Derivative::None => f,
            Derivative::Reverse => gradient(&f, wrt),
            Derivative::Forward => tangent(&f, wrt),
        }
    }
}

/// A program to show, with what a reader of it needs to tell its parts apart.
pub struct Shown {
    pub function: Function,
    /// The data arguments that come first: the input, and the targets of a loss; the
    /// parameters follow.
    pub inputs: usize,
    /// The number of values of the program before it was differentiated: the values
    /// after these are its derivative's.
    pub primal_values: usize,
}

/// The function `name` of a checked file, for arguments of these shapes, or its derivative
/// by every argument.
pub fn function_shown(
    analysis: &Analysis,
    name: &str,
    shapes: &[Shape],
    derivative: Derivative,
) -> Result<Shown, LowerError> {
    let f = function(analysis, name, shapes)?;
    let (inputs, primal_values) = (f.params.len(), f.values.len());
    let all: Vec<usize> = (0..f.params.len()).collect();
    Ok(Shown { function: derivative.of(f, &all), inputs, primal_values })
}

/// A model's inference program, or the derivative by its parameters of `loss` (its `train`
/// block's) or, without one, of its output. `batch` replaces the batch symbol by a number.
pub fn model_shown(
    model: &CheckedModel,
    loss: Option<Loss>,
    derivative: Derivative,
    batch: Option<usize>,
) -> Result<Shown, LowerError> {
    let loss = loss.filter(|_| derivative != Derivative::None);
    let f = match loss {
        Some(loss) => training_loss(model, loss, batch)?,
        None => inference(model, batch)?,
    };
    let inputs = if loss.is_some() { 2 } else { 1 };
    let primal_values = f.values.len();
    let params = parameters(&f, inputs);
    Ok(Shown { function: derivative.of(f, &params), inputs, primal_values })
}

/// A program as it is printed: optimised, or with its temporaries named; verified in every
/// build, since what is printed is read as correct IR.
pub fn printed(f: Function, optimize: bool) -> Result<Function, String> {
    let f = if optimize {
        optimized(&f)
    } else {
        let mut f = f;
        f.name_temporaries();
        f
    };
    verify(&f).map_err(|error| format!("the IR of `{}` does not verify: {error}", f.name))?;
    Ok(f)
}

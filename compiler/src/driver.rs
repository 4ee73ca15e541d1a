//! The compile driver: from a checked model or function to the IR programs that the
//! commands and the runtime run (the inference program, the loss, the training step), by
//! lowering, differentiating and optimising. In debug builds, and so in every test, the IR
//! verifier runs after each pass.

use crate::Analysis;
use crate::checked::{Checked, CheckedModel, InstanceId};
use crate::ir::{Function, Loss, LowerError, Lowering, lower_instance, optimize, reverse, verify, with_loss};
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
    let gradient = verified(reverse(&training, &learnable(&training)).0, "reverse mode");
    Ok(verified(optimize(&gradient), "optimisation"))
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

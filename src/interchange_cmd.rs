//! `nnc predict` and `nnc grad`: a model's outputs, or one batch's loss, outputs and
//! gradients, for given weights and inputs, to compare with other frameworks.

use crate::output::{ColorChoice, analyze_checked, print_error};
use nnc_compiler::ir::Loss;
use nnc_runtime::data::{Array, load_npy};
use nnc_runtime::interchange::{gradients, predict, write_npy};
use nnc_runtime::train::model_and_args;
use std::path::Path;
use std::process::ExitCode;

fn array(path: &Path, color: ColorChoice) -> Result<Array, ExitCode> {
    load_npy(path).map_err(|e| {
        print_error(&e.to_string(), color);
        ExitCode::from(1)
    })
}

#[allow(clippy::too_many_arguments)]
pub fn run_predict(
    file: &Path,
    model: Option<&str>,
    weights: &Path,
    input: &Path,
    output: &Path,
    given: &[String],
    color: ColorChoice,
) -> ExitCode {
    let result = (|| {
        let analysis = analyze_checked(file, color)?;
        let choice = model_and_args(&analysis, model).map_err(|e| {
            print_error(&e, color);
            ExitCode::from(2)
        })?;
        let inputs = array(input, color)?;
        let model = crate::model_args::bind_args(&analysis, choice.model, given).map_err(|e| {
            print_error(&e, color);
            ExitCode::from(2)
        })?;
        let out = predict(&model, weights, &inputs, &input.display().to_string()).map_err(|e| {
            print_error(&e, color);
            ExitCode::from(1)
        })?;
        write_npy(output, &out).map_err(|e| {
            print_error(&e, color);
            ExitCode::from(1)
        })?;
        println!("wrote the outputs of `{}`, shape {:?}, to {}", model.report.name, out.shape, output.display());
        Ok(ExitCode::SUCCESS)
    })();
    result.unwrap_or_else(|code| code)
}

#[allow(clippy::too_many_arguments)]
pub fn run_grad(
    file: &Path,
    model: &str,
    weights: &Path,
    input: &Path,
    labels: &Path,
    out: &Path,
    loss: Option<&str>,
    given: &[String],
    color: ColorChoice,
) -> ExitCode {
    let result = (|| {
        let analysis = analyze_checked(file, color)?;
        let choice = model_and_args(&analysis, Some(model)).map_err(|e| {
            print_error(&e, color);
            ExitCode::from(2)
        })?;
        let loss = match loss {
            Some(name) => Some(Loss::from_name(name).ok_or_else(|| {
                print_error(&format!("`{name}` is not a loss; give `cross_entropy`, `mse` or `bce`"), color);
                ExitCode::from(2)
            })?),
            None => choice.loss,
        };
        let checked = crate::model_args::bind_args(&analysis, choice.model, given).map_err(|e| {
            print_error(&e, color);
            ExitCode::from(2)
        })?;
        let Some(loss) = loss else {
            print_error(
                &format!(
                    "`{model}` has no `train` block to take the loss from; give `--loss cross_entropy`, `mse` or `bce`"
                ),
                color,
            );
            return Err(ExitCode::from(2));
        };
        let (x, y) = (array(input, color)?, array(labels, color)?);
        let tensors = gradients(&checked, loss, weights, &x, &y, &input.display().to_string()).map_err(|e| {
            print_error(&e, color);
            ExitCode::from(1)
        })?;
        nnc_runtime::checkpoint::save(out, &tensors).map_err(|e| {
            print_error(&e, color);
            ExitCode::from(1)
        })?;
        println!(
            "loss {} ; wrote the loss, the outputs and {} gradients to {}",
            tensors[0].2[0],
            tensors.len() - 2,
            out.display()
        );
        Ok(ExitCode::SUCCESS)
    })();
    result.unwrap_or_else(|code| code)
}

//! Exchanging numbers with other frameworks: predictions of a model for given weights and
//! inputs, and the loss, outputs and parameter gradients of one batch, so a user can compare
//! nnc with PyTorch or JAX on the same numbers.

use crate::checkpoint::{self, NamedTensor};
use crate::data::Array;
use nnc_compiler::checked::CheckedModel;
use nnc_compiler::driver;
use nnc_compiler::ir::{Function, Loss, Precision, Tensor, eval_function};
use std::io::Write;
use std::path::Path;

/// The parameter tensors of `f` (its arguments from `first` on) from a checkpoint, checked
/// by name and shape.
fn weights(f: &Function, first: usize, tensors: &[NamedTensor], origin: &str) -> Result<Vec<Tensor>, String> {
    let mut out = Vec::new();
    for param in &f.params[first..] {
        let want: Vec<usize> = f.ty(param.value).shape.0.iter().map(|d| d.as_const().unwrap_or(0) as usize).collect();
        let Some((_, shape, values)) = tensors.iter().find(|(n, _, _)| *n == param.name) else {
            let names: Vec<&str> = tensors.iter().map(|(n, _, _)| n.as_str()).collect();
            return Err(format!("{origin} has no tensor `{}` (it has {})", param.name, names.join(", ")));
        };
        if *shape != want {
            return Err(format!("{origin}: `{}` is {shape:?}, but the model needs {want:?}", param.name));
        }
        out.push(Tensor::new(shape.clone(), values.clone()));
    }
    Ok(out)
}

/// The input array as the model's input for its batch.
fn as_input(f: &Function, array: &Array, origin: &str) -> Result<Tensor, String> {
    let want: Vec<usize> = f.ty(f.params[0].value).shape.0.iter().map(|d| d.as_const().unwrap_or(0) as usize).collect();
    let per_example: usize = want[1..].iter().product();
    let n = array.shape.first().copied().unwrap_or(0);
    if n == 0 || array.values.len() != n * per_example {
        return Err(format!("{origin} is {:?}; the model takes {per_example} values per example", array.shape));
    }
    Ok(Tensor::new(want, array.values.clone()))
}

/// The model's outputs for `inputs`, with the weights of `checkpoint_path`.
pub fn predict(model: &CheckedModel, checkpoint_path: &Path, inputs: &Array, origin: &str) -> Result<Tensor, String> {
    let n = inputs.shape.first().copied().unwrap_or(0);
    let f = driver::optimized_inference(model, Some(n.max(1))).map_err(|e| e.message)?;
    let tensors = checkpoint::load(checkpoint_path)?;
    let mut all = vec![as_input(&f, inputs, origin)?];
    all.extend(weights(&f, 1, &tensors, &checkpoint_path.display().to_string())?);
    let (out, _) = eval_function(&f, &all, Precision::F64)?;
    Ok(out.into_iter().next().expect("one result"))
}

/// The loss, the outputs and every parameter's gradient for one batch, named `loss`,
/// `output` and by the parameters' names.
pub fn gradients(
    model: &CheckedModel,
    loss: Loss,
    checkpoint_path: &Path,
    inputs: &Array,
    labels: &Array,
    origin: &str,
) -> Result<Vec<NamedTensor>, String> {
    let n = inputs.shape.first().copied().unwrap_or(0);
    let grad = driver::loss_gradient(model, loss, Some(n.max(1))).map_err(|e| e.message)?;
    let tensors = checkpoint::load(checkpoint_path)?;
    let x = as_input(&grad, inputs, origin)?;
    let target_shape: Vec<usize> =
        grad.ty(grad.params[1].value).shape.0.iter().map(|d| d.as_const().unwrap_or(0) as usize).collect();
    if labels.values.len() != target_shape.iter().product::<usize>() {
        return Err(format!("the labels are {:?}, but `{}` needs {target_shape:?}", labels.shape, loss.name()));
    }
    let mut all = vec![x.clone(), Tensor::new(target_shape, labels.values.clone())];
    let w = weights(&grad, 2, &tensors, &checkpoint_path.display().to_string())?;
    all.extend(w.iter().cloned());
    let (results, _) = eval_function(&grad, &all, Precision::F64)?;
    let output = predict_with(model, n, &x, &w)?;
    let mut out = vec![
        ("loss".to_string(), Vec::new(), results[0].data.clone()),
        ("output".to_string(), output.shape.clone(), output.data),
    ];
    for (param, g) in grad.params[2..].iter().zip(&results[1..]) {
        out.push((param.name.clone(), g.shape.clone(), g.data.clone()));
    }
    Ok(out)
}

fn predict_with(model: &CheckedModel, n: usize, x: &Tensor, w: &[Tensor]) -> Result<Tensor, String> {
    let f = driver::optimized_inference(model, Some(n.max(1))).map_err(|e| e.message)?;
    let mut all = vec![x.clone()];
    all.extend(w.iter().cloned());
    Ok(eval_function(&f, &all, Precision::F64)?.0.remove(0))
}

/// The bytes of a `.npy` file (version 1) of f32 values, as NumPy writes them: the data
/// starts at a multiple of 64 bytes.
pub fn npy_bytes(tensor: &Tensor) -> Vec<u8> {
    let dims: Vec<String> = tensor.shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in &tensor.data {
        bytes.extend_from_slice(&(*v as f32).to_le_bytes());
    }
    bytes
}

/// Writes a `.npy` file of f32 values.
pub fn write_npy(path: &Path, tensor: &Tensor) -> Result<(), String> {
    let bytes = npy_bytes(tensor);
    let mut file = std::fs::File::create(path).map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    file.write_all(&bytes).map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}

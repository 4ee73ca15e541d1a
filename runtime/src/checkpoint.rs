//! Checkpoints in safetensors, with tensors named as PyTorch's `state_dict` names them,
//! written atomically: a temporary file in the same directory, flushed to disk, renamed
//! over the old one, and the directory flushed; the previous checkpoint is kept beside it.

pub use safetensors::tensor::Dtype;
use safetensors::tensor::TensorView;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A tensor with its `state_dict` name: `("0.weight", [32, 64], values)`.
pub type NamedTensor = (String, Vec<usize>, Vec<f64>);

/// Saves `tensors` (name, shape, values) as f32 to `path`, atomically. A checkpoint
/// already at `path` is kept as `path.previous`.
pub fn save(path: &Path, tensors: &[NamedTensor]) -> Result<(), String> {
    save_with(path, tensors, Dtype::F32, None)
}

/// Saves `tensors` in `dtype` (f32 or f64) with `metadata`, atomically; the previous file
/// is kept as `path.previous`.
pub fn save_with(
    path: &Path,
    tensors: &[NamedTensor],
    dtype: Dtype,
    metadata: Option<HashMap<String, String>>,
) -> Result<(), String> {
    let dtype = if dtype == Dtype::F64 { Dtype::F64 } else { Dtype::F32 };
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, shape, values)| {
            let data = match dtype {
                Dtype::F64 => values.iter().flat_map(|&v| v.to_le_bytes()).collect(),
                _ => values.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect(),
            };
            (name.clone(), shape.clone(), data)
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(name, shape, data)| TensorView::new(dtype, shape.clone(), data).map(|view| (name.clone(), view)))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let data = safetensors::serialize(views, metadata).map_err(|e| e.to_string())?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    let temporary = sibling(path, ".tmp");
    let mut file =
        std::fs::File::create(&temporary).map_err(|e| format!("cannot write `{}`: {e}", temporary.display()))?;
    file.write_all(&data)
        .and_then(|_| file.sync_all())
        .map_err(|e| format!("cannot write `{}`: {e}", temporary.display()))?;
    drop(file);
    if path.exists() {
        std::fs::rename(path, sibling(path, ".previous"))
            .map_err(|e| format!("cannot keep the previous checkpoint: {e}"))?;
    }
    std::fs::rename(&temporary, path).map_err(|e| format!("cannot move the checkpoint into place: {e}"))?;
    // The rename is durable only once the directory is on disk.
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file beside it, so that a failed write
/// leaves any earlier file at `path` as it was.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let temporary = sibling(path, ".tmp");
    let written = std::fs::File::create(&temporary).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(format!("cannot write `{}`: {error}", path.display()));
    }
    std::fs::rename(&temporary, path).map_err(|error| {
        let _ = std::fs::remove_file(&temporary);
        format!("cannot write `{}`: {error}", path.display())
    })
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Loads every tensor of a safetensors file as f64 values, in name order.
pub fn load(path: &Path) -> Result<Vec<NamedTensor>, String> {
    load_with(path).map(|(tensors, _)| tensors)
}

/// Loads the tensors and the metadata of a safetensors file.
pub fn load_with(path: &Path) -> Result<(Vec<NamedTensor>, HashMap<String, String>), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let metadata = safetensors::SafeTensors::read_metadata(&bytes)
        .map(|(_, m)| m.metadata().clone().unwrap_or_default())
        .map_err(|e| format!("`{}` is not a safetensors file: {e}", path.display()))?;
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| format!("`{}` is not a safetensors file: {e}", path.display()))?;
    let mut out = Vec::new();
    let mut names = file.names();
    names.sort_unstable();
    for name in names {
        let view = file.tensor(name).map_err(|e| e.to_string())?;
        let values: Vec<f64> = match view.dtype() {
            Dtype::F32 => {
                view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).collect()
            }
            Dtype::F64 => {
                view.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect()
            }
            other => return Err(format!("`{}`: tensor `{name}` is {other:?}; nnc reads f32 and f64", path.display())),
        };
        out.push((name.to_string(), view.shape().to_vec(), values));
    }
    Ok((out, metadata))
}

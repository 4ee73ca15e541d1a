//! Checkpoints in safetensors, with tensors named as PyTorch's `state_dict` names them,
//! written atomically: a temporary file in the same directory, flushed to disk, renamed
//! over the old one, and the directory flushed; the previous checkpoint is kept beside it.
//! A process killed at any moment leaves a whole checkpoint under the checkpoint's name.

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
    save_or_crash(path, tensors, dtype, metadata, None)
}

/// A point part-way through saving a checkpoint where a crash can be simulated, to test
/// that a run resumes from the files that a process killed there leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    /// Half of the new checkpoint is in the temporary file.
    MidWrite,
    /// The new checkpoint is whole in the temporary file and the old one is kept as
    /// `.previous`, but the new one is not yet renamed into place.
    BeforeRename,
    /// The new checkpoint is in place: the process dies right after saving it.
    AfterRename,
}

/// [`save_with`], stopping at `crash` if given: the files are left as a process killed at
/// that point leaves them, and the save returns an error saying so.
pub fn save_or_crash(
    path: &Path,
    tensors: &[NamedTensor],
    dtype: Dtype,
    metadata: Option<HashMap<String, String>>,
    crash: Option<Crash>,
) -> Result<(), String> {
    let data = serialize(tensors, dtype, metadata)?;
    let crashed = |at: Crash| {
        if crash == Some(at) {
            Err(format!("simulated crash ({at:?}) while saving `{}`", path.display()))
        } else {
            Ok(())
        }
    };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    let temporary = sibling(path, ".tmp");
    let written = if crash == Some(Crash::MidWrite) { &data[..data.len() / 2] } else { &data[..] };
    let mut file =
        std::fs::File::create(&temporary).map_err(|e| format!("cannot write `{}`: {e}", temporary.display()))?;
    file.write_all(written)
        .and_then(|_| file.sync_all())
        .map_err(|e| format!("cannot write `{}`: {e}", temporary.display()))?;
    drop(file);
    crashed(Crash::MidWrite)?;
    if path.exists() {
        keep_previous(path)?;
    }
    crashed(Crash::BeforeRename)?;
    std::fs::rename(&temporary, path).map_err(|e| format!("cannot move the checkpoint into place: {e}"))?;
    // The rename is durable only once the directory is on disk.
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    crashed(Crash::AfterRename)
}

/// The safetensors bytes of `tensors` in `dtype` (f64, or else f32).
fn serialize(
    tensors: &[NamedTensor],
    dtype: Dtype,
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>, String> {
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
    safetensors::serialize(views, metadata).map_err(|e| e.to_string())
}

/// Keeps the checkpoint at `path` as `path.previous` while leaving it at `path` too (a hard
/// link, or a copy where the file system has none), so that the one step that replaces
/// it is the rename of the new checkpoint over it: no moment is left without one.
fn keep_previous(path: &Path) -> Result<(), String> {
    let previous = sibling(path, ".previous");
    let _ = std::fs::remove_file(&previous);
    std::fs::hard_link(path, &previous)
        .or_else(|_| std::fs::copy(path, &previous).map(|_| ()))
        .map_err(|e| format!("cannot keep the previous checkpoint: {e}"))
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

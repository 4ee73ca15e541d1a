//! The run directory's files: `metrics.csv`, and the run checkpoint with parameters,
//! optimiser state and position, from which `--resume` continues exactly.

use super::*;

/// The checkpoint of a run directory: parameters, optimiser state and position, in f32,
/// which holds every value exactly (training computes in f32), so resuming continues exactly.
pub fn run_checkpoint(out: &Path) -> PathBuf {
    out.join("checkpoint.safetensors")
}

/// `metrics.csv` in the run directory: one line per epoch.
pub(super) fn write_metrics(dir: &Path, epochs: &[Epoch]) -> Result<(), String> {
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

/// What a run checkpoint restores.
pub(super) struct Resumed {
    pub(super) params: Vec<Vec<f32>>,
    pub(super) state: State,
    pub(super) epoch: usize,
    pub(super) step: usize,
    pub(super) loss_sum: f64,
}

pub(super) const FORMAT: &str = "nnc-run-checkpoint-2";

/// Saves the run checkpoint of a position: whole epochs done, steps done of the next and
/// the sum of their losses.
pub(super) fn save_run(
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
        ("model".to_string(), config.settings.model.clone()),
        ("seed".to_string(), config.settings.seed.to_string()),
        ("epoch".to_string(), epoch.to_string()),
        ("step".to_string(), step.to_string()),
        ("optimizer_steps".to_string(), count.to_string()),
        ("loss_sum".to_string(), loss_sum.to_string()),
    ]);
    let crash = crash.filter(|c| (c.epoch, c.step) == (epoch, step)).map(|c| c.at);
    // Every value is an f32, so f32 keeps them exactly.
    checkpoint::save_or_crash(path, &tensors, checkpoint::Dtype::F32, Some(metadata), crash)
}

pub(super) fn resume(path: &Path, config: &Config, shapes: &[(String, Vec<usize>)]) -> Result<Resumed, String> {
    let (tensors, meta) = checkpoint::load_with(path)?;
    let field = |key: &str| {
        meta.get(key)
            .cloned()
            .ok_or_else(|| format!("`{}` is not a run checkpoint of nnc (no `{key}`)", path.display()))
    };
    if field("format")? != FORMAT || field("model")? != config.settings.model {
        return Err(format!("`{}` is not a checkpoint of `{}`", path.display(), config.settings.model));
    }
    if field("seed")? != config.settings.seed.to_string() {
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
pub(super) fn read_metrics(dir: &Path, last: usize) -> Vec<Epoch> {
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

//! What a run starts from: the checked block's settings with paths resolved, the data, the
//! first weights (PyTorch's initialisation, or a `param`'s own), and the model a command
//! names, with its `train` block's arguments.

use super::*;

/// The settings of a checked `train` block for a run; paths are relative to `base`, the
/// directory of the `.nn` file, and `out` replaces the block's run directory.
pub fn config(train: &TrainConfig, base: &Path, out: Option<&Path>) -> Config {
    let path = |p: &Option<String>| p.as_ref().map(|p| base.join(p));
    Config {
        save: path(&train.save),
        out: out
            .map(Path::to_path_buf)
            .or_else(|| path(&train.out))
            .unwrap_or_else(|| base.join("runs").join(&train.model)),
        init: path(&train.init),
        settings: train.clone(),
    }
}

/// The examples of a run: the data, and the sets it trains and is tested on.
pub(super) struct Examples {
    pub(super) data: Dataset,
    pub(super) train: Dataset,
    pub(super) test: Dataset,
}

/// Loads a block's data and its test set, or splits the data into the two.
pub(super) fn examples(config: &Config, base: &Path) -> Result<Examples, String> {
    let settings = &config.settings;
    let data = load(&settings.data, base)?;
    let (train, test) = match &settings.test {
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
        None => data.split(settings.split, settings.seed),
    };
    if train.n == 0 {
        return Err(format!(
            "`split = {}` leaves no training examples of the {} in {}",
            settings.split, data.n, data.origin
        ));
    }
    Ok(Examples { data, train, test })
}

/// The shapes of a run, read from its training step for a whole batch.
pub(super) struct Layout {
    /// Examples per step: the block's batch, or every training example when there are fewer.
    pub(super) batch: usize,
    /// The model's input for a whole batch.
    pub(super) input_shape: Vec<usize>,
    pub(super) per_example: usize,
    /// The model's outputs per example.
    pub(super) outputs: usize,
    /// Targets per example: a class index, or one per output.
    pub(super) target_width: usize,
    /// The names and shapes of the parameters, in the order the step takes them.
    pub(super) params: Vec<(String, Vec<usize>)>,
    /// The initialisers the model's `param` statements write.
    pub(super) inits: Vec<(String, ParamInit)>,
    /// The number of dropout masks a step takes.
    pub(super) masks: usize,
}

/// The shapes of a run of `model`, checked against the data: the input must take its
/// features, and the outputs its classes.
pub(super) fn layout(model: &CheckedModel, config: &Config, examples: &Examples) -> Result<Layout, String> {
    let settings = &config.settings;
    let data = &examples.data;
    let batch = settings.batch.min(examples.train.n);
    let grad = driver::training_gradient(model, settings.loss, batch).map_err(|e| e.message)?;
    // A dimension the check left open counts as `unknown`.
    let concrete = |i: usize, unknown: i128| -> Vec<usize> {
        grad.ty(grad.params[i].value).shape.0.iter().map(|d| d.as_const().unwrap_or(unknown) as usize).collect()
    };
    let input_shape = concrete(0, 0);
    let per_example: usize = input_shape[1..].iter().product();
    if per_example != data.dim {
        // The input as declared, with its batch symbol.
        let declared =
            driver::inference(model, None).map(|f| f.ty(f.params[0].value).shape.to_string()).unwrap_or_default();
        return Err(format!(
            "{} has {} features per example, but `{}` takes input {declared} ({per_example} per example)",
            data.origin, data.dim, settings.model
        ));
    }
    let forward = driver::inference(model, Some(batch)).map_err(|e| e.message)?;
    let outputs = forward.ty(forward.results[0]).shape.0.last().and_then(|d| d.as_const()).unwrap_or(1) as usize;
    if settings.loss == Loss::CrossEntropy && data.classes > outputs {
        return Err(format!(
            "{} has labels up to {}, but `{}` has {outputs} outputs",
            data.origin,
            data.classes - 1,
            settings.model
        ));
    }
    let params = driver::learnable(&grad).into_iter().map(|i| (grad.params[i].name.clone(), concrete(i, 1))).collect();
    Ok(Layout {
        batch,
        input_shape,
        per_example,
        outputs,
        target_width: if settings.loss == Loss::CrossEntropy { 1 } else { outputs },
        params,
        inits: grad.param_inits.clone(),
        masks: grad.dropout_masks.len(),
    })
}

/// The parameters a run starts from: drawn from its seed as PyTorch initialises them, or
/// the weights of its `init` file, checked by name and shape.
pub(super) fn initial_params(config: &Config, layout: &Layout) -> Result<Vec<Vec<f32>>, String> {
    let mut params: Vec<Vec<f32>> = initial_values(&layout.params, &layout.inits, config.settings.seed)
        .into_iter()
        .map(|values| values.into_iter().map(|v| v as f32).collect())
        .collect();
    let Some(path) = &config.init else { return Ok(params) };
    let model = &config.settings.model;
    let tensors = checkpoint::load(path)?;
    for ((name, shape), values) in layout.params.iter().zip(params.iter_mut()) {
        match tensors.iter().find(|(n, _, _)| n == name) {
            Some((_, s, v)) if s == shape => *values = v.iter().map(|&v| v as f32).collect(),
            Some((_, s, _)) => {
                return Err(format!("`{}`: `{name}` is {s:?}, but `{model}` needs {shape:?}", path.display()));
            }
            None => return Err(format!("`{}` has no tensor `{name}` for `{model}`", path.display())),
        }
    }
    Ok(params)
}

/// Loads a data source; its paths are relative to `base`.
pub fn load(source: &DataSource, base: &Path) -> Result<Dataset, String> {
    match source {
        DataSource::Csv { path, label, scale, header } => {
            load_csv(&base.join(path), *label, *scale, *header).map_err(|e| e.to_string())
        }
        DataSource::Generated { kind, samples, noise, classes, seed } => {
            generate(*kind, *samples, *noise, *classes, *seed).map_err(|e| e.to_string())
        }
        DataSource::Idx { images, labels, scale } => arrays(crate::data::load_idx, base, images, labels, *scale),
        DataSource::Npy { inputs, labels, scale } => arrays(crate::data::load_npy, base, inputs, labels, *scale),
    }
}

/// Inputs and labels from two array files read by `read`.
pub(super) fn arrays(
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
pub(super) fn initializer(
    name: &str,
    shape: &[usize],
    params: &[(String, Vec<usize>)],
    written: &[(String, ParamInit)],
) -> Init {
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
pub(super) fn initial_values(
    shapes: &[(String, Vec<usize>)],
    written: &[(String, ParamInit)],
    seed: u64,
) -> Vec<Vec<f64>> {
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

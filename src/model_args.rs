//! `--arg NAME=SIZE` of `nnc export`, `nnc predict` and `nnc grad`: sizes a model leaves
//! open, checked against the model's arguments and the size symbols of its input, and the
//! model checked again with them.

use nnc_compiler::Analysis;
use nnc_compiler::checked::CheckedModel;
use nnc_compiler::shapes::Dim;
use std::collections::HashMap;

/// The names a model's `--arg` may set: its arguments and the size symbols of its input.
fn settable(model: &CheckedModel) -> Vec<String> {
    let report = &model.report;
    let mut names: Vec<String> = report.args.iter().map(|(name, _)| name.clone()).collect();
    for dim in report.input.iter().flat_map(|shape| shape.0.iter().skip(1)) {
        if let [symbol] = dim.symbols().as_slice()
            && *dim == Dim::symbol(symbol)
            && !names.contains(symbol)
        {
            names.push(symbol.clone());
        }
    }
    names
}

/// The model checked again with `name=value` settings added to the argument values it
/// has (its `train` block's), each checked against the model first.
pub fn bind_args(analysis: &Analysis, model: CheckedModel, given: &[String]) -> Result<CheckedModel, String> {
    if given.is_empty() {
        return Ok(model);
    }
    let names = settable(&model);
    let name = model.report.name.clone();
    let mut args: HashMap<String, Dim> =
        model.checked.get(model.instance()).args.iter().filter(|(_, v)| v.is_const()).cloned().collect();
    for setting in given {
        let Some((key, value)) = setting.split_once('=') else {
            return Err(format!("`--arg {setting}` needs the form NAME=SIZE, such as `--arg width=16`"));
        };
        let (key, value) = (key.trim(), value.trim());
        if !names.iter().any(|n| n == key) {
            let known = if names.is_empty() {
                "it has none".to_string()
            } else {
                format!("they are {}", names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "))
            };
            return Err(format!("`{name}` has no argument or input size `{key}`; {known}"));
        }
        match value.parse::<u32>() {
            Ok(n) if n > 0 => {
                args.insert(key.to_string(), Dim::constant(i128::from(n)));
            }
            _ => return Err(format!("`--arg {setting}`: `{value}` is not a size (a whole number above 0)")),
        }
    }
    analysis.model(&name, &args).map_err(|errors| {
        let detail = errors.first().map_or(String::new(), |e| format!(": {}", e.message));
        format!("`{name}` does not check with {}{detail}", given.join(", "))
    })
}

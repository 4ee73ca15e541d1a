//! `--arg NAME=SIZE` of `nnc export`, `nnc predict` and `nnc grad`: sizes a model leaves
//! open, checked against the model's arguments and the size symbols of its input.

/// The names a model's `--arg` may set: its arguments and the size symbols of its input.
fn settable(def: &nnc_grammar::ModelDef) -> Vec<String> {
    let mut names: Vec<String> = def.params.iter().map(|p| p.name.name.clone()).collect();
    for stmt in &def.body {
        if let nnc_grammar::Stmt::Input(input) = stmt {
            for dim in input.shape.dims.iter().skip(1) {
                if let nnc_grammar::ExprKind::Name(name) = &dim.kind {
                    names.push(name.clone());
                }
            }
        }
    }
    names
}

/// Adds `name=value` settings to the argument values, checking each against the model.
pub fn bind_args(
    def: &nnc_grammar::ModelDef,
    given: &[String],
    args: &mut std::collections::HashMap<String, nnc_compiler::shapes::Dim>,
) -> Result<(), String> {
    let names = settable(def);
    for setting in given {
        let Some((name, value)) = setting.split_once('=') else {
            return Err(format!("`--arg {setting}` needs the form NAME=SIZE, such as `--arg width=16`"));
        };
        let (name, value) = (name.trim(), value.trim());
        if !names.iter().any(|n| n == name) {
            let known = if names.is_empty() {
                "it has none".to_string()
            } else {
                format!("they are {}", names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "))
            };
            return Err(format!("`{}` has no argument or input size `{name}`; {known}", def.name.name));
        }
        match value.parse::<u32>() {
            Ok(n) if n > 0 => {
                args.insert(name.to_string(), nnc_compiler::shapes::Dim::constant(i128::from(n)));
            }
            _ => return Err(format!("`--arg {setting}`: `{value}` is not a size (a whole number above 0)")),
        }
    }
    Ok(())
}

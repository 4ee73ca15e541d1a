//! `nnc ir`: the SSA IR of a file's functions, their adjoint (gradient) or tangent IR,
//! before or after optimisation.

use crate::output::{ColorChoice, analyze_checked, print_error};
use nnc_compiler::ir::{
    Function, forward, lower_fn, lower_model, lower_training_loss, optimize, print_function, reverse, verify,
};
use nnc_compiler::shapes::{Dim, Shape};
use nnc_grammar::{ExprKind, Item, LineIndex};
use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

/// The model a `train` block names.
fn model_name(expr: &nnc_grammar::Expr) -> Option<&str> {
    match &expr.unparenthesized().kind {
        ExprKind::Name(name) => Some(name),
        ExprKind::Call { callee, .. } => Some(&callee.name),
        _ => None,
    }
}

/// The loss of the first `train` block of the model `model`, if it names one.
pub(crate) fn training_loss(file: &nnc_grammar::File, model: &str) -> Option<String> {
    file.items.iter().find_map(|item| match item {
        Item::Train(train) if model_name(&train.model) == Some(model) => {
            train.settings.iter().find(|s| s.key.name == "loss").and_then(|s| match &s.value.kind {
                ExprKind::Name(loss) => Some(loss.clone()),
                _ => None,
            })
        }
        _ => None,
    })
}

/// Optimises (if asked), verifies and prints one function. Returns whether it verified.
#[allow(clippy::too_many_arguments)]
fn show(
    f: &Function,
    options: &Options,
    lines: &LineIndex,
    text: &str,
    file_name: &str,
    at: nnc_grammar::Span,
    printed: usize,
    color: ColorChoice,
) -> bool {
    let mut f = f.clone();
    if options.kernels.is_some() {
        return show_kernels(&optimize(&f), printed, color);
    }
    if options.opt {
        f = optimize(&f);
    } else {
        f.name_temporaries();
    }
    if let Err(error) = verify(&f) {
        print_error(&format!("the IR of `{}` does not verify: {error}", f.name), color);
        return false;
    }
    let line = lines.position(text, at.start).line + 1;
    if printed > 0 {
        println!();
    }
    print!("{}", print_function(&f, Some(&format!("{file_name}:{line}"))));
    true
}

pub struct Options {
    pub grad: bool,
    pub jvp: bool,
    pub opt: bool,
    /// Show the kernels compiled code runs, for this batch size.
    pub kernels: Option<usize>,
}

/// The kernel IR of an optimised function of concrete shapes.
fn show_kernels(f: &Function, printed: usize, color: ColorChoice) -> bool {
    match nnc_codegen::lower(f) {
        Ok(program) => {
            if printed > 0 {
                println!();
            }
            print!("{program}");
            true
        }
        Err(error) => {
            print_error(&format!("no kernels for `{}`: {error}", f.name), color);
            false
        }
    }
}

/// A function argument's shape: as declared, with symbols kept; a scalar when undeclared.
pub(crate) fn declared(shape: Option<&nnc_grammar::Shape>) -> Shape {
    let Some(shape) = shape else { return Shape(Vec::new()) };
    Shape(
        shape
            .dims
            .iter()
            .map(|d| match &d.kind {
                ExprKind::Int(v) => Dim::constant(*v as i128),
                ExprKind::Name(name) => Dim::symbol(name),
                _ => Dim::symbol("?"),
            })
            .collect(),
    )
}

pub fn run(path: &Path, name: Option<&str>, options: &Options, color: ColorChoice) -> ExitCode {
    let file_name = path.display().to_string();
    let analysis = match analyze_checked(path, color) {
        Ok(analysis) => analysis,
        Err(code) => return code,
    };
    let lines = LineIndex::new(&analysis.text);
    let mut printed = 0;
    for item in &analysis.file.items {
        match item {
            Item::Fn(def) if name.is_none_or(|n| n == def.name.name) => {
                let shapes: Vec<Shape> = def.params.iter().map(|p| declared(p.shape.as_ref())).collect();
                let f = match lower_fn(&analysis.file, def, &shapes, &HashMap::new()) {
                    Ok(f) => f,
                    Err(error) => {
                        print_error(&format!("cannot lower `{}`: {}", def.name.name, error.message), color);
                        return ExitCode::from(1);
                    }
                };
                let all: Vec<usize> = (0..f.params.len()).collect();
                let mut f: Function = if options.grad {
                    reverse(&f, &all).0
                } else if options.jvp {
                    forward(&f, &all).0
                } else {
                    f
                };
                if options.kernels.is_some() {
                    if !show_kernels(&optimize(&f), printed, color) {
                        return ExitCode::from(1);
                    }
                    printed += 1;
                    continue;
                }
                if options.opt {
                    f = optimize(&f);
                } else {
                    f.name_temporaries();
                }
                if let Err(error) = verify(&f) {
                    print_error(&format!("the IR of `{}` does not verify: {error}", def.name.name), color);
                    return ExitCode::from(1);
                }
                let line = lines.position(&analysis.text, def.name.span.start).line + 1;
                if printed > 0 {
                    println!();
                }
                print!("{}", print_function(&f, Some(&format!("{file_name}:{line}"))));
                printed += 1;
            }
            Item::Model(def) if name.is_none_or(|n| n == def.name.name) => {
                // With `--grad` or `--jvp`, the loss of the model's `train` block, if it has one.
                let loss = training_loss(&analysis.file, &def.name.name);
                let derivative = options.grad || options.jvp;
                let lowered = match (&loss, derivative) {
                    (Some(loss), true) => {
                        lower_training_loss(&analysis.file, def, &HashMap::new(), loss, options.kernels)
                    }
                    _ => lower_model(&analysis.file, def, &HashMap::new(), options.kernels),
                };
                let f = match lowered {
                    Ok(f) => f,
                    Err(error) => {
                        print_error(&format!("cannot lower `{}`: {}", def.name.name, error.message), color);
                        return ExitCode::from(1);
                    }
                };
                // Differentiate by the parameters: every argument after the input (and targets).
                let first_param = if loss.is_some() && derivative { 2 } else { 1 };
                let params: Vec<usize> =
                    (first_param..f.params.len()).filter(|i| !f.dropout_masks.iter().any(|(m, _)| m == i)).collect();
                let f = if options.grad {
                    reverse(&f, &params).0
                } else if options.jvp {
                    forward(&f, &params).0
                } else {
                    f
                };
                if !show(&f, options, &lines, &analysis.text, &file_name, def.name.span, printed, color) {
                    return ExitCode::from(1);
                }
                printed += 1;
            }
            _ => {}
        }
    }
    if printed == 0 {
        let what = name.map_or("no functions or models".to_string(), |n| format!("no function or model `{n}`"));
        print_error(&format!("`{file_name}` has {what}"), color);
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}

//! `nnc ir`: the SSA IR of a file's functions, their adjoint (gradient) or tangent IR,
//! before or after optimisation.

use crate::output::{ColorChoice, analyze_checked, print_error};
use nnc_compiler::driver::{self, Derivative};
use nnc_compiler::ir::{Function, LowerError, print_function};
use nnc_compiler::shapes::{Dim, Shape};
use nnc_grammar::{ExprKind, Item, LineIndex};
use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

/// Optimises (if asked), verifies and prints one function. Returns whether it verified.
#[allow(clippy::too_many_arguments)]
fn show(
    f: Function,
    options: &Options,
    lines: &LineIndex,
    text: &str,
    file_name: &str,
    at: nnc_grammar::Span,
    printed: usize,
    color: ColorChoice,
) -> bool {
    if options.kernels.is_some() {
        return show_kernels(&driver::optimized(&f), printed, color);
    }
    let f = match driver::printed(f, options.opt) {
        Ok(f) => f,
        Err(message) => {
            print_error(&message, color);
            return false;
        }
    };
    let line = lines.position(text, at.start).line + 1;
    if printed > 0 {
        println!();
    }
    print!("{}", print_function(&f, Some(&format!("{file_name}:{line}"))));
    true
}

pub struct Options {
    /// The IR as written, its adjoint code (`--grad`) or its tangent code (`--jvp`).
    pub derivative: Derivative,
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
    let located = |span: nnc_grammar::Span| {
        let position = lines.position(&analysis.text, span.start);
        format!("{file_name}:{}:{}", position.line + 1, position.char_column + 1)
    };
    // Every function and model that lowers is shown; each one that does not is reported
    // at its place, and the others still follow.
    let (mut printed, mut failed) = (0, 0);
    for item in &analysis.file.items {
        let (lowered, at) = match item {
            Item::Fn(def) if name.is_none_or(|n| n == def.name.name) => {
                let shapes: Vec<Shape> = def.params.iter().map(|p| declared(p.shape.as_ref())).collect();
                let lowered = driver::function_shown(&analysis, &def.name.name, &shapes, options.derivative);
                (lowered.map(|shown| shown.function).map_err(|e| (def.name.name.clone(), e)), def.name.span)
            }
            Item::Model(def) if name.is_none_or(|n| n == def.name.name) => {
                (model_ir(&analysis, &def.name.name, options).map_err(|e| (def.name.name.clone(), e)), def.name.span)
            }
            _ => continue,
        };
        match lowered {
            Ok(f) => {
                if !show(f, options, &lines, &analysis.text, &file_name, at, printed, color) {
                    failed += 1;
                    continue;
                }
                printed += 1;
            }
            Err((what, error)) => {
                let place = if error.span == nnc_grammar::Span::default() { at } else { error.span };
                print_error(&format!("cannot lower `{what}` ({}): {}", located(place), error.message), color);
                failed += 1;
            }
        }
    }
    if printed == 0 && failed == 0 {
        let what = name.map_or("no functions or models".to_string(), |n| format!("no function or model `{n}`"));
        print_error(&format!("`{file_name}` has {what}"), color);
        return ExitCode::from(2);
    }
    if failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

/// A model's IR: as written, or with `--grad` or `--jvp` the derivative of the loss of its
/// `train` block (of its output without one) by its parameters.
fn model_ir(analysis: &nnc_compiler::Analysis, name: &str, options: &Options) -> Result<Function, LowerError> {
    let model = analysis.model(name, &HashMap::new()).map_err(|errors| LowerError {
        message: errors.first().map_or("it does not check".to_string(), |e| e.message.clone()),
        span: errors.first().map_or(nnc_grammar::Span::default(), |e| e.primary.span),
    })?;
    let shown = driver::model_shown(&model, analysis.loss_of(name), options.derivative, options.kernels)?;
    Ok(shown.function)
}

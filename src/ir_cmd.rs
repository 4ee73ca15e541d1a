//! `nnc ir`: the SSA IR of a file's functions, their adjoint (gradient) or tangent IR,
//! before or after optimisation.

use crate::output::{ColorChoice, print_diagnostics, print_error};
use nnc_compiler::analyze_bytes;
use nnc_compiler::ir::{Function, forward, lower_fn, optimize, print_function, reverse, verify};
use nnc_compiler::shapes::{Dim, Shape};
use nnc_grammar::{ExprKind, Item, LineIndex};
use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

pub struct Options {
    pub grad: bool,
    pub jvp: bool,
    pub opt: bool,
}

/// A function argument's shape: as declared, with symbols kept; a scalar when undeclared.
fn declared(shape: Option<&nnc_grammar::Shape>) -> Shape {
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
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) => {
            print_error(&format!("cannot read `{file_name}`: {error}"), color);
            return ExitCode::from(2);
        }
    };
    let analysis = analyze_bytes(&bytes);
    if analysis.has_errors() {
        print_diagnostics(&analysis.diagnostics, &file_name, &analysis.text, color);
        return ExitCode::from(1);
    }
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
            Item::Model(def) if name == Some(def.name.name.as_str()) => {
                print_error(
                    &format!(
                        "`{}` is a {}; lowering models to IR is not implemented in this version of nnc",
                        def.name.name,
                        def.kind.keyword()
                    ),
                    color,
                );
                return ExitCode::from(2);
            }
            _ => {}
        }
    }
    if printed == 0 {
        let what = name.map_or("no functions".to_string(), |n| format!("no function `{n}`"));
        print_error(&format!("`{file_name}` has {what}"), color);
        return ExitCode::from(2);
    }
    ExitCode::SUCCESS
}

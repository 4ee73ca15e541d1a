//! `nnc run`: runs a file's statements in order and prints their results: values,
//! gradients, tangents, Jacobians and Hessians, to a chosen number of decimals.

use crate::output::{ColorChoice, print_diagnostics, print_error};
use nnc_compiler::analyze_bytes;
use nnc_compiler::ir::{Answer, Precision, Tensor, run_queries};
use nnc_grammar::Item;
use std::path::Path;
use std::process::ExitCode;

/// A number with at most `decimals` decimals and no trailing zeros: `5.5`, `11.652`.
pub fn number(value: f64, decimals: usize) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let text = format!("{value:.decimals$}");
    let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_string() } else { text };
    if text == "-0" { "0".to_string() } else { text }
}

/// A tensor as nested lists.
pub fn tensor_text(t: &Tensor, decimals: usize) -> String {
    fn rec(shape: &[usize], data: &[f64], decimals: usize) -> String {
        match shape.split_first() {
            None => number(data[0], decimals),
            Some((&n, rest)) => {
                let step = rest.iter().product::<usize>();
                let items: Vec<String> = (0..n).map(|i| rec(rest, &data[i * step..(i + 1) * step], decimals)).collect();
                format!("[{}]", items.join(", "))
            }
        }
    }
    rec(&t.shape, &t.data, decimals)
}

fn matrix_text(rows: &[Vec<f64>], decimals: usize) -> String {
    let rows: Vec<String> = rows
        .iter()
        .map(|r| format!("[{}]", r.iter().map(|v| number(*v, decimals)).collect::<Vec<_>>().join(", ")))
        .collect();
    format!("[{}]", rows.join(", "))
}

pub fn run(path: &Path, decimals: usize, precision: Precision, color: ColorChoice) -> ExitCode {
    let name = path.display().to_string();
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) => {
            print_error(&format!("cannot read `{name}`: {error}"), color);
            return ExitCode::from(2);
        }
    };
    let analysis = analyze_bytes(&bytes);
    print_diagnostics(&analysis.diagnostics, &name, &analysis.text, color);
    if analysis.has_errors() {
        return ExitCode::from(1);
    }
    let mut failed = false;
    for result in run_queries(&analysis.file, &analysis.text, precision) {
        println!("{}", result.text);
        match result.answer {
            Ok(Answer::Value(value)) => println!("  = {}", tensor_text(&value, decimals)),
            Ok(Answer::Gradient { value, gradients }) => {
                println!("  = {}", tensor_text(&value, decimals));
                let function = result.text.split_whitespace().nth(1).and_then(|c| c.split('(').next()).unwrap_or("f");
                for (param, gradient) in gradients {
                    println!("  d{function}/d{param} = {}", tensor_text(&gradient, decimals));
                }
            }
            Ok(Answer::Tangent { value, tangent }) => {
                println!("  = {}", tensor_text(&value, decimals));
                println!("  tangent = {}", tensor_text(&tangent, decimals));
            }
            Ok(Answer::Matrix { rows, how }) => println!("  = {}    ({how})", matrix_text(&rows, decimals)),
            Err(error) => {
                failed = true;
                let diagnostic = nnc_grammar::Diagnostic::new(
                    nnc_grammar::Code::ArgumentShape,
                    format!("cannot run `{}`: {}", result.text, error.message),
                    error.span,
                    "here",
                );
                print_diagnostics(&[diagnostic], &name, &analysis.text, color);
            }
        }
    }
    for item in &analysis.file.items {
        if let Item::Train(def) = item {
            let model = analysis.text.get(def.model.span.range()).unwrap_or("?");
            eprintln!("note: `train {model}` was not run: training is not implemented in this version of nnc");
        }
    }
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

//! `nnc trace`: the lecture's primal, tangent and adjoint traces of a function at a point,
//! as aligned text or JSON.

use crate::output::{ColorChoice, analyze_checked, print_error};
use crate::run::tensor_text;
use nnc_compiler::driver;
use nnc_compiler::ir::{Mode, Precision, Tensor, TraceRow, cheaper_mode, trace};
use nnc_compiler::shapes::Shape;
use nnc_grammar::Item;
use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub struct Options<'a> {
    pub at: &'a str,
    pub mode: Option<Mode>,
    pub wrt: Option<&'a str>,
    pub format: Format,
    pub decimals: usize,
}

/// Display width: combining marks (the dot and bar over `v`) take no column.
fn width(text: &str) -> usize {
    text.chars().filter(|c| !('\u{300}'..='\u{36f}').contains(c)).count()
}

fn pad(text: &str, to: usize) -> String {
    format!("{text}{}", " ".repeat(to.saturating_sub(width(text))))
}

fn table(title: &str, rows: &[TraceRow], decimals: usize) -> String {
    let name_width = rows.iter().map(|r| width(&r.name)).max().unwrap_or(0);
    let expr_width = rows.iter().map(|r| width(&r.expr)).max().unwrap_or(0);
    let mut out = format!("{title}\n");
    for r in rows {
        let value = tensor_text(&Tensor::new(r.shape.clone(), r.value.clone()), decimals);
        out.push_str(&format!("  {} = {} = {value}\n", pad(&r.name, name_width), pad(&r.expr, expr_width)));
    }
    out
}

pub fn run(path: &Path, name: &str, options: &Options<'_>, color: ColorChoice) -> ExitCode {
    let file_name = path.display().to_string();
    let analysis = match analyze_checked(path, color) {
        Ok(analysis) => analysis,
        Err(code) => return code,
    };
    let Some(def) = analysis.file.items.iter().find_map(|item| match item {
        Item::Fn(def) if def.name.name == name => Some(def),
        _ => None,
    }) else {
        print_error(&format!("`{file_name}` has no function `{name}`"), color);
        return ExitCode::from(2);
    };
    // `--at x1=2,x2=5`: a number for every argument.
    let mut values: HashMap<&str, f64> = HashMap::new();
    for pair in options.at.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parsed = pair.split_once('=').and_then(|(k, v)| Some((k.trim(), v.trim().parse::<f64>().ok()?)));
        match parsed {
            Some((key, value)) => {
                values.insert(key, value);
            }
            None => {
                print_error(&format!("`--at {}`: `{pair}` is not `name=number`", options.at), color);
                return ExitCode::from(2);
            }
        }
    }
    let mut args = Vec::new();
    for param in &def.params {
        match values.get(param.name.name.as_str()) {
            Some(&v) => args.push(Tensor::scalar(v)),
            None => {
                print_error(
                    &format!(
                        "`--at` gives no value for `{}`; write for example `--at {}`",
                        param.name.name,
                        def.params.iter().map(|p| format!("{}=1", p.name.name)).collect::<Vec<_>>().join(",")
                    ),
                    color,
                );
                return ExitCode::from(2);
            }
        }
    }
    let f = match driver::function(&analysis, name, &vec![Shape(Vec::new()); args.len()]) {
        Ok(f) => f,
        Err(error) => {
            print_error(&format!("cannot lower `{name}`: {}", error.message), color);
            return ExitCode::from(1);
        }
    };
    let wrt = match options.wrt {
        None => 0,
        Some(w) => match def.params.iter().position(|p| p.name.name == w) {
            Some(i) => i,
            None => {
                print_error(&format!("`{name}` has no argument `{w}`"), color);
                return ExitCode::from(2);
            }
        },
    };
    let result = match trace(&f, &args, wrt, Precision::F64) {
        Ok(result) => result,
        Err(error) => {
            print_error(&format!("cannot trace `{name}`: {error}"), color);
            return ExitCode::from(1);
        }
    };
    let (mode, why) = cheaper_mode(args.len(), 1);
    if options.format == Format::Json {
        let mut value = serde_json::to_value(&result).expect("traces serialise");
        value["cheaper_mode"] =
            serde_json::json!({ "mode": if mode == Mode::Forward { "forward" } else { "reverse" }, "why": why });
        println!("{}", serde_json::to_string_pretty(&value).expect("JSON serialises"));
        return ExitCode::SUCCESS;
    }
    let point = def
        .params
        .iter()
        .zip(&args)
        .map(|(p, a)| format!("{} = {}", p.name.name, tensor_text(a, options.decimals)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = table(&format!("Forward primal trace of {name} at {point}"), &result.primal, options.decimals);
    if options.mode != Some(Mode::Reverse) {
        out.push('\n');
        out.push_str(&table(
            &format!("Forward tangent trace, d/d{}", result.tangent_wrt),
            &result.tangent,
            options.decimals,
        ));
    }
    if options.mode != Some(Mode::Forward) {
        out.push('\n');
        out.push_str(&table("Reverse adjoint trace", &result.adjoint, options.decimals));
    }
    out.push_str(&format!("\nFor all {} derivatives of {name}: R^{} -> R, {why}.\n", args.len(), args.len()));
    print!("{out}");
    ExitCode::SUCCESS
}

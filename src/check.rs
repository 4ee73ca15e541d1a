//! `nnc check`: diagnostics for files, rendered or as JSON; and `nnc explain`.

use crate::output::{ColorChoice, print_diagnostics, print_error};
use nnc_compiler::analyze_bytes;
use nnc_grammar::{Code, to_json};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Checks every file; exit 0 when none has an error, 1 when one has, 2 when one cannot be read.
pub fn run(files: &[PathBuf], format: Format, color: ColorChoice) -> ExitCode {
    let mut errors = false;
    let mut unreadable = false;
    let mut json = Vec::new();
    for path in files {
        let name = path.display().to_string();
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) => {
                print_error(&format!("cannot read `{name}`: {error}"), color);
                unreadable = true;
                continue;
            }
        };
        let analysis = analyze_bytes(&bytes);
        errors |= analysis.has_errors();
        match format {
            Format::Text => print_diagnostics(&analysis.diagnostics, &name, &analysis.text, color),
            Format::Json => {
                let value = serde_json::to_value(to_json(&analysis.diagnostics, &name, &analysis.text))
                    .expect("diagnostics serialise to JSON");
                if let serde_json::Value::Array(items) = value {
                    json.extend(items);
                }
            }
        }
    }
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&json).expect("JSON values serialise"));
    }
    if unreadable {
        ExitCode::from(2)
    } else if errors {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints what a diagnostic code means, with its example; or the list of all codes.
pub fn explain(code: Option<&str>) -> ExitCode {
    let Some(code) = code else {
        for code in Code::ALL {
            println!("{}  {}", code.as_str(), code.title());
        }
        return ExitCode::SUCCESS;
    };
    let wanted = code.trim().to_ascii_uppercase();
    let Some(found) = Code::ALL.iter().find(|c| c.as_str() == wanted) else {
        print_error(&format!("no diagnostic code `{code}`; `nnc explain` lists them all"), ColorChoice::Auto);
        return ExitCode::from(2);
    };
    println!("{}: {}\n\nFor example:\n", found.as_str(), found.title());
    let example = found.example();
    let text = String::from_utf8_lossy(&example);
    for line in text.lines() {
        println!("    {line}");
    }
    let analysis = analyze_bytes(&example);
    println!();
    print_diagnostics(&analysis.diagnostics, "example.nn", &analysis.text, ColorChoice::Auto);
    ExitCode::SUCCESS
}

//! `nnc summary`: a per-layer table of output shapes and parameter counts, with totals,
//! as text or JSON.

use crate::output::{ColorChoice, analyze_path, did_you_mean, print_diagnostics, print_error};
use comfy_table::{CellAlignment, ContentArrangement, Table, presets};
use nnc_compiler::shapes::{Dim, ModelReport, RowKind, Shape, format_count};
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Prints the summary of one model (or every model) of `path`. Exit 1 when the file has
/// errors (after printing every row it could), 2 when it cannot be read or has no such model.
pub fn run(path: &Path, model: Option<&str>, batch: Option<u64>, format: Format, color: ColorChoice) -> ExitCode {
    let name = path.display().to_string();
    let analysis = match analyze_path(path, color) {
        Ok(analysis) => analysis,
        Err(code) => return code,
    };
    let reports: Vec<&ModelReport> = match model {
        Some(wanted) => match analysis.shapes.model(wanted) {
            Some(report) => vec![report],
            None => {
                let known: Vec<&str> = analysis.shapes.models.iter().map(|m| m.name.as_str()).collect();
                let hint = did_you_mean(wanted, &known, "models");
                print_error(&format!("`{name}` has no model `{wanted}`{hint}"), color);
                return ExitCode::from(2);
            }
        },
        None => analysis.shapes.models.iter().collect(),
    };
    if reports.is_empty() && format == Format::Table {
        let functions: Vec<String> = analysis
            .file
            .items
            .iter()
            .filter_map(|item| match item {
                nnc_grammar::Item::Fn(def) => Some(format!("`{}`", def.name.name)),
                _ => None,
            })
            .collect();
        let also = if functions.is_empty() {
            String::new()
        } else {
            format!("; it defines the functions {}", functions.join(", "))
        };
        println!("{name} defines no models{also}");
    }
    let batch_dim = batch.map(|b| Dim::constant(b as i128));
    match format {
        Format::Table => {
            let tables: Vec<String> = reports.iter().map(|r| table(r, batch_dim.as_ref())).collect();
            print!("{}", tables.join("\n"));
        }
        Format::Json => {
            let items: Vec<serde_json::Value> = reports.iter().map(|r| to_json(r, batch_dim.as_ref())).collect();
            let value = if model.is_some() { items.into_iter().next().unwrap_or_default() } else { json!(items) };
            println!("{}", serde_json::to_string_pretty(&value).expect("JSON values serialise"));
        }
    }
    print_diagnostics(&analysis.diagnostics, &name, &analysis.text, color);
    if analysis.has_errors() { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

/// The shape with the batch symbol replaced by `batch`, if one is given.
fn shown_shape(shape: &Shape, report: &ModelReport, batch: Option<&Dim>) -> Shape {
    match (&report.batch, batch) {
        (Some(symbol), Some(value)) => shape.substitute(symbol, value),
        _ => shape.clone(),
    }
}

fn count_or_dash(count: &Dim) -> String {
    if *count == Dim::default() { "--".to_string() } else { format_count(count) }
}

/// Bytes as people read them: `7.4 KiB`.
fn bytes_text(bytes: &Dim) -> String {
    let Some(value) = bytes.as_const() else {
        return format!("{bytes} bytes");
    };
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut size = value as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < units.len() {
        size /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{} bytes", format_count(bytes))
    } else {
        format!("{size:.1} {} ({} bytes)", units[unit], format_count(bytes))
    }
}

fn heading(report: &ModelReport) -> String {
    // An argument without a default stays a symbol of its own name: show just the name.
    let args: Vec<String> = report
        .args
        .iter()
        .map(|(name, value)| if name == value { name.clone() } else { format!("{name} = {value}") })
        .collect();
    if args.is_empty() { report.name.clone() } else { format!("{}({})", report.name, args.join(", ")) }
}

fn table(report: &ModelReport, batch: Option<&Dim>) -> String {
    let mut table = Table::new();
    table.load_style(presets::UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Disabled);
    table.set_header(vec!["Layer", "Line", "Output shape", "Params"]);
    for row in &report.rows {
        let shape = match (&row.shape, row.failed) {
            (_, true) => "error (see below)".to_string(),
            (Some(shape), false) => shown_shape(shape, report, batch).to_string(),
            (None, false) => "?".to_string(),
        };
        let label = if row.failed { format!("✗ {}", row.label) } else { row.label.clone() };
        let params = if row.kind == RowKind::Input { "--".to_string() } else { count_or_dash(&row.params()) };
        table.add_row(vec![label, row.line.to_string(), shape, params]);
    }
    for (index, alignment) in [(1, CellAlignment::Right), (3, CellAlignment::Right)] {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(alignment);
        }
    }
    let bytes = report.params.checked_mul(&Dim::constant(4)).unwrap_or_default();
    let mut out = format!("{}\n{table}\n", heading(report));
    out.push_str(&format!("Total params:          {}\n", format_count(&report.params)));
    out.push_str(&format!("Trainable params:      {}\n", format_count(&report.params)));
    out.push_str(&format!("Mult-adds per example: {}\n", format_count(&report.mult_adds)));
    if let Some(batch) = batch
        && let Ok(total) = report.mult_adds.checked_mul(batch)
    {
        out.push_str(&format!("Mult-adds per batch:   {} (batch {batch})\n", format_count(&total)));
    }
    out.push_str(&format!("Parameter memory:      {} (f32)\n", bytes_text(&bytes)));
    if report.failed {
        out.push_str("The model has errors; the rows marked ✗ failed and the totals leave them out.\n");
    }
    out
}

fn to_json(report: &ModelReport, batch: Option<&Dim>) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = report
        .rows
        .iter()
        .map(|row| {
            json!({
                "layer": row.label,
                "kind": row.kind,
                "line": row.line,
                "output_shape": row.shape.as_ref().filter(|_| !row.failed).map(|s| shown_shape(s, report, batch)),
                "params": row.params().to_string(),
                "weights": row.weights.to_string(),
                "biases": row.biases.to_string(),
                "mult_adds": row.mult_adds.to_string(),
                "formulas": row.formulas,
                "failed": row.failed,
            })
        })
        .collect();
    json!({
        "model": report.name,
        "args": report.args.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
        "batch": batch.map(|b| b.to_string()).or_else(|| report.batch.clone()),
        "input_shape": report.input.as_ref().map(|s| shown_shape(s, report, batch)),
        "output_shape": report.output.as_ref().filter(|_| !report.failed).map(|s| shown_shape(s, report, batch)),
        "rows": rows,
        "total_params": report.params.to_string(),
        "trainable_params": report.params.to_string(),
        "mult_adds_per_example": report.mult_adds.to_string(),
        "param_bytes": report.params.checked_mul(&Dim::constant(4)).unwrap_or_default().to_string(),
        "failed": report.failed,
    })
}

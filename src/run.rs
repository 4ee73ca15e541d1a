//! `nnc run`: runs a file's statements in order and prints their results: values,
//! gradients, tangents, Jacobians and Hessians, to a chosen number of decimals.

use crate::output::{ColorChoice, analyze_checked, print_diagnostics, print_error};
use comfy_table::{Table, presets};
use indicatif::{ProgressBar, ProgressStyle};
use nnc_compiler::exec::Executor;
use nnc_compiler::ir::{Answer, Precision, QueryResult, Tensor, run_queries};
use nnc_grammar::Item;
use nnc_runtime::train::{Epoch, Event, Report, RunOptions, train};
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// `1234567` as `1,234,567`.
fn group(n: usize) -> String {
    nnc_compiler::shapes::group_digits(&n.to_string())
}

fn epoch_line(e: &Epoch) -> String {
    let mut line = format!("epoch {:>3}  loss {:.4}", e.epoch, e.train_loss);
    if let Some(a) = e.train_accuracy {
        line.push_str(&format!("  accuracy {:.3}", a));
    }
    if let Some(l) = e.test_loss {
        line.push_str(&format!("  test loss {l:.4}"));
    }
    if let Some(a) = e.test_accuracy {
        line.push_str(&format!("  test accuracy {a:.3}"));
    }
    line.push_str(&format!("  {} examples/s", group(e.examples_per_second as usize)));
    line
}

fn print_report(report: &Report) {
    let Some(last) = report.epochs.last() else {
        println!("  no epochs were run");
        return;
    };
    let mut table = Table::new();
    table.load_style(presets::UTF8_FULL_CONDENSED);
    table.set_header(vec!["", "train", "test"]);
    let fmt = |v: Option<f64>, d: usize| v.map_or("--".to_string(), |v| format!("{v:.d$}"));
    table.add_row(vec!["loss".to_string(), format!("{:.4}", last.train_loss), fmt(last.test_loss, 4)]);
    table.add_row(vec!["accuracy".to_string(), fmt(last.train_accuracy, 3), fmt(last.test_accuracy, 3)]);
    table.add_row(vec!["examples".to_string(), group(report.train_examples), group(report.test_examples)]);
    let total_examples = report.train_examples * report.epochs.len();
    let train_seconds: f64 = report.epochs.iter().map(|e| e.seconds).sum();
    println!("{table}");
    println!(
        "  {} epochs in {:.2} s ({} examples/s while training)",
        report.epochs.len(),
        report.seconds,
        group((total_examples as f64 / train_seconds.max(1e-9)) as usize)
    );
    if let Some(confusion) = &report.confusion {
        let mut table = Table::new();
        table.load_style(presets::UTF8_FULL_CONDENSED);
        let mut header = vec!["true \\ predicted".to_string()];
        header.extend((0..confusion.len()).map(|k| k.to_string()));
        table.set_header(header);
        for (k, row) in confusion.iter().enumerate() {
            let mut cells = vec![k.to_string()];
            cells.extend(row.iter().map(|c| c.to_string()));
            table.add_row(cells);
        }
        println!("  confusion matrix of the test set:\n{table}");
    }
    println!("  metrics: {}", report.config.out.join("metrics.csv").display());
    for image in &report.images {
        println!("  image: {}", image.display());
    }
    if let Some(save) = &report.config.save {
        println!("  weights: {}", save.display());
    }
}

/// Set by Ctrl-C: training stops after its current step and saves a checkpoint.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub fn run(
    path: &Path,
    decimals: usize,
    precision: Precision,
    out: Option<&Path>,
    resume: bool,
    executor: &dyn Executor,
    color: ColorChoice,
) -> ExitCode {
    // A second Ctrl-C while the first is being handled still stops the process.
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    let name = path.display().to_string();
    let analysis = match analyze_checked(path, color) {
        Ok(analysis) => analysis,
        Err(code) => return code,
    };
    let mut failed = false;
    let mut answers = run_queries(&analysis.shapes, &analysis.text, precision).into_iter();
    let base = path.parent().unwrap_or(Path::new("."));
    let trains = analysis.trains();
    for item in &analysis.file.items {
        match item {
            Item::Query(_) => {
                let Some(result) = answers.next() else { continue };
                failed |= !print_answer(result, &name, &analysis.text, decimals, color);
            }
            Item::Train(def) => {
                let model = analysis.text.get(def.model.span.range()).unwrap_or("?");
                println!("train {model}");
                // A progress bar on a terminal; plain lines otherwise.
                let terminal = std::io::stdout().is_terminal();
                let mut bar: Option<ProgressBar> = None;
                let mut on_event = |event: Event<'_>| match event {
                    Event::Started { data, train, test, params } => {
                        println!("  {data}: {train} training and {test} test examples; {} parameters", group(params))
                    }
                    Event::Step { epoch, epochs, step, steps, loss } if terminal => {
                        let bar = bar.get_or_insert_with(|| {
                            let bar = ProgressBar::new(steps as u64);
                            bar.set_style(
                                ProgressStyle::with_template(
                                    "  epoch {prefix} [{bar:30}] {pos}/{len} steps  loss {msg}",
                                )
                                .expect("a valid template")
                                .progress_chars("=> "),
                            );
                            bar
                        });
                        bar.set_prefix(format!("{epoch}/{epochs}"));
                        bar.set_position(step as u64);
                        bar.set_message(format!("{loss:.4}"));
                    }
                    Event::Step { .. } => {}
                    Event::EpochDone(e) => {
                        if let Some(bar) = bar.take() {
                            bar.finish_and_clear();
                        }
                        println!("  {}", epoch_line(e));
                    }
                };
                let options = RunOptions {
                    out,
                    resume,
                    interrupt: Some(&INTERRUPTED),
                    executor: Some(executor),
                    source: Some((&name, &analysis.text)),
                    crash: None,
                };
                let checked = trains.iter().find_map(|t| t.as_ref().ok().filter(|t| t.config.span == def.span));
                let Some(checked) = checked else {
                    failed = true;
                    print_error(&format!("`train {model}` has errors; `nnc check` shows them"), color);
                    continue;
                };
                match train(checked, base, &options, &mut on_event) {
                    Ok(report) => print_report(&report),
                    Err(message) => {
                        failed = true;
                        print_error(&format!("`train {model}` failed: {message}"), color);
                    }
                }
            }
            _ => {}
        }
    }
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

/// Prints one query's answer; false when it failed.
fn print_answer(result: QueryResult, name: &str, text: &str, decimals: usize, color: ColorChoice) -> bool {
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
            let diagnostic = nnc_grammar::Diagnostic::new(
                nnc_grammar::Code::ArgumentShape,
                format!("cannot run `{}`: {}", result.text, error.message),
                error.span,
                "here",
            );
            print_diagnostics(&[diagnostic], name, text, color);
            return false;
        }
    }
    true
}

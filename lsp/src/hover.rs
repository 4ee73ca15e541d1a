//! Hover: what the name or line under the cursor is, its shape and the arithmetic behind
//! it, its parameters split into weights and biases, and the doc comment of the layer,
//! model or built-in.

use crate::analyzed::Analyzed;
use crate::hints::count_label;
use crate::syntax::{call_at, doc_of, header_of, in_comment_or_string, word_at};
use nnc_compiler::builtins::{self, Builtin, Kind, Param};
use nnc_compiler::shapes::{Dim, ModelReport, Row, RowKind, format_count};
use nnc_compiler::{DefKind, Definition};
use nnc_grammar::{Item, Span};
use tower_lsp_server::ls_types::{Hover, HoverContents, MarkupContent, MarkupKind};

/// The hover at byte `offset`, or `None` where there is nothing to say.
pub fn hover(analyzed: &Analyzed, offset: usize) -> Option<Hover> {
    let text = analyzed.text();
    if in_comment_or_string(text, offset) {
        return None;
    }
    let (markdown, span) = match word_at(text, offset) {
        Some((span, word)) => (word_hover(analyzed, span, word)?, span),
        None => {
            let fact = analyzed.analysis.shapes.shape_at(offset)?;
            (format!("`{}`", fact.shape), fact.span)
        }
    };
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent { kind: MarkupKind::Markdown, value: markdown }),
        range: Some(analyzed.range(span)),
    })
}

fn word_hover(analyzed: &Analyzed, span: Span, word: &str) -> Option<String> {
    let analysis = &analyzed.analysis;
    let resolution = &analysis.resolution;
    let definition = resolution.definitions.iter().find(|def| def.span == span).or_else(|| {
        resolution.references.iter().find(|(s, _)| *s == span).map(|&(_, def)| &resolution.definitions[def])
    });
    // The line of a model this name is the layer of, such as `conv2d` in `conv2d(8, kernel = 3)`.
    let row = analysis.shapes.row_at(span.start).filter(|(_, row)| row.span.start == span.start && is_layer(row));
    let mut sections: Vec<String> = Vec::new();
    if let Some((_, row)) = row {
        sections.push(row_markdown(row));
    }
    if let Some(definition) = definition {
        sections.push(definition_markdown(analyzed, definition));
    } else if let Some(setting) = setting_at(analyzed, span) {
        sections.push(param_markdown(setting, "setting of `train`"));
    } else if let Some(param) = named_argument(analyzed, span, word) {
        sections.push(param_markdown(param.0, &format!("argument of `{}`", param.1)));
    } else if let Some(builtin) = builtins::lookup(word) {
        sections.push(builtin_markdown(builtin));
    } else if let Some(fact) = analysis.shapes.shape_at(span.start) {
        sections.push(format!("`{}`", fact.shape));
    }
    (!sections.is_empty()).then(|| sections.join("\n\n---\n\n"))
}

fn is_layer(row: &Row) -> bool {
    matches!(row.kind, RowKind::Layer | RowKind::Expr)
}

/// The output shape, the parameters in weights and biases, the mult-adds and the formulas.
fn row_markdown(row: &Row) -> String {
    let mut out = String::new();
    match (&row.shape, row.failed) {
        (_, true) => out.push_str("this line has an error"),
        (Some(shape), false) => out.push_str(&format!("output `{shape}`")),
        (None, false) => out.push_str("output shape unknown"),
    }
    if row.params() != Dim::default() {
        out.push_str(&format!(" · {}", count_label(&row.params())));
        let parts = [(&row.weights, "weights"), (&row.biases, "biases")]
            .into_iter()
            .filter(|(count, _)| **count != Dim::default())
            .map(|(count, what)| format!("{} {what}", format_count(count)))
            .collect::<Vec<_>>();
        out.push_str(&format!(" ({})", parts.join(" + ")));
    }
    if row.mult_adds != Dim::default() {
        out.push_str(&format!(" · {} mult-adds per example", format_count(&row.mult_adds)));
    }
    if !row.formulas.is_empty() {
        out.push_str(&format!("\n\n```text\n{}\n```", row.formulas.join("\n")));
    }
    out
}

fn definition_markdown(analyzed: &Analyzed, definition: &Definition) -> String {
    let analysis = &analyzed.analysis;
    let file = &analysis.file;
    let name = &definition.name;
    let mut out = match definition.kind {
        DefKind::Model | DefKind::Layer | DefKind::Fn => {
            let header = header_of(file, analyzed.text(), definition.span).unwrap_or_else(|| name.clone());
            let mut out = format!("```nn\n{header}\n```");
            if let Some(report) = analysis.shapes.models.iter().find(|m| m.span == definition.span) {
                out.push_str(&format!("\n\n{}", model_summary(report)));
                out.push_str("\n\nUsed as a layer, each use has parameters of its own: no weights are shared.");
            }
            out
        }
        kind => {
            let what = kind.describe();
            let shape = analysis
                .shapes
                .facts
                .iter()
                .find(|fact| fact.span == definition.span)
                .map(|fact| format!(": {}", fact.shape))
                .or_else(|| param_shape(analyzed, definition.span))
                .unwrap_or_default();
            let default = model_arg_default(analyzed, definition).map(|d| format!(" = {d}")).unwrap_or_default();
            format!("```nn\n{name}{shape}{default}\n```\n{what}")
        }
    };
    if let Some(doc) = doc_of(file, definition.span) {
        out.push_str(&format!("\n\n{doc}"));
    }
    out
}

/// `[B, 64] → [B, 10] · 2,410 params · 2,400 mult-adds per example`.
fn model_summary(report: &ModelReport) -> String {
    let shapes = match (&report.input, &report.output) {
        (Some(input), Some(output)) if !report.failed => format!("`{input}` → `{output}` · "),
        _ => String::new(),
    };
    let incomplete = if report.failed { " (the lines with errors are left out)" } else { "" };
    format!(
        "{shapes}{} · {} mult-adds per example{incomplete}",
        count_label(&report.params),
        format_count(&report.mult_adds)
    )
}

/// `: [out, in] = normal(0, 0.01)`, the declaration of a `param`, with its count.
fn param_shape(analyzed: &Analyzed, name: Span) -> Option<String> {
    analyzed.analysis.shapes.models.iter().flat_map(|m| &m.rows).find_map(|row| {
        let declared = row.kind == RowKind::Param && row.span.contains(name.start);
        declared.then(|| {
            let shape = row.shape.as_ref().map(|s| format!(": {s}")).unwrap_or_default();
            format!("{shape} · {}", count_label(&row.params()))
        })
    })
}

/// The default of a model argument as written, or its value when it is used by another
/// argument's default.
fn model_arg_default(analyzed: &Analyzed, definition: &Definition) -> Option<String> {
    if definition.kind != DefKind::ModelArg {
        return None;
    }
    analyzed.analysis.file.items.iter().find_map(|item| match item {
        Item::Model(def) => def
            .params
            .iter()
            .find(|p| p.name.span == definition.span)
            .and_then(|p| p.default.as_ref())
            .and_then(|d| analyzed.text().get(d.span.range()).map(str::to_string)),
        _ => None,
    })
}

/// The setting of a `train` block whose key is at `span`.
fn setting_at(analyzed: &Analyzed, span: Span) -> Option<&'static Param> {
    analyzed.analysis.file.items.iter().find_map(|item| match item {
        Item::Train(def) => def
            .settings
            .iter()
            .find(|setting| setting.key.span == span)
            .and_then(|setting| builtins::TRAIN_SETTINGS.iter().find(|p| p.name == setting.key.name)),
        _ => None,
    })
}

/// The parameter of a built-in that `word` names as `word = ...` inside its call.
fn named_argument(analyzed: &Analyzed, span: Span, word: &str) -> Option<(&'static Param, &'static str)> {
    let after = analyzed.text().get(span.end..)?.trim_start();
    if !after.starts_with('=') {
        return None;
    }
    let site = call_at(analyzed.text(), span.start)?;
    let builtin = builtins::lookup(&site.callee)?;
    builtin.params.iter().find(|p| p.name == word).map(|p| (p, builtin.name))
}

fn param_markdown(param: &Param, what: &str) -> String {
    let default = param.default.map(|d| format!(" = {d}")).unwrap_or_default();
    format!("```nn\n{}{default}\n```\n{what}: {}", param.name, param.doc)
}

/// The signature of a built-in with its documentation and arguments.
pub fn builtin_markdown(builtin: &Builtin) -> String {
    let mut out = format!("```nn\n{}\n```\n{}\n\n{}", signature(builtin), kind_name(builtin.kind), builtin.doc);
    if !builtin.params.is_empty() {
        out.push('\n');
        for param in builtin.params {
            out.push_str(&format!("\n- `{}`: {}", param.name, param.doc));
        }
    }
    out
}

/// `conv2d(out_channels, kernel, stride = 1, pad = 0, bias = true)`.
pub fn signature(builtin: &Builtin) -> String {
    if builtin.params.is_empty() && !builtin.variadic {
        return builtin.name.to_string();
    }
    let params: Vec<String> = if builtin.variadic {
        vec!["dims...".to_string()]
    } else {
        builtin.params.iter().map(param_signature).collect()
    };
    format!("{}({})", builtin.name, params.join(", "))
}

pub fn param_signature(param: &Param) -> String {
    match param.default {
        Some(default) => format!("{} = {default}", param.name),
        None => param.name.to_string(),
    }
}

pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Layer => "layer with parameters",
        Kind::Activation => "layer without parameters",
        Kind::Function => "function",
        Kind::Loss => "loss",
        Kind::Optimizer => "optimiser",
        Kind::DataSource => "data source",
        Kind::Initializer => "initialiser",
    }
}

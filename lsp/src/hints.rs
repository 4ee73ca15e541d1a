//! Inlay hints: after each layer line its output shape and parameter count
//! (`[B, 32] · 2,080 params`), after each `let`'s name its shape, and on a model's header
//! its input and output shapes and total.

use crate::analyzed::Analyzed;
use nnc_compiler::shapes::{Dim, ModelReport, Row, RowKind, Shape, format_count};
use nnc_grammar::{Item, Span, Stmt};
use serde::Deserialize;
use std::collections::HashMap;
use tower_lsp_server::ls_types::{InlayHint, InlayHintKind, InlayHintLabel, InlayHintTooltip};

/// What the hints show, as the setting `nnc.inlayHints` names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HintMode {
    #[default]
    Both,
    Shapes,
    Params,
    /// No hints at all.
    None,
}

impl HintMode {
    /// The mode that shows shapes, parameter counts, both or neither.
    pub fn from_switches(shapes: bool, params: bool) -> HintMode {
        match (shapes, params) {
            (true, true) => HintMode::Both,
            (true, false) => HintMode::Shapes,
            (false, true) => HintMode::Params,
            (false, false) => HintMode::None,
        }
    }

    fn shapes(self) -> bool {
        matches!(self, HintMode::Both | HintMode::Shapes)
    }

    fn params(self) -> bool {
        matches!(self, HintMode::Both | HintMode::Params)
    }
}

/// The hints whose position lies in `within` (the whole text when `None`), in source order.
pub fn inlay_hints(analyzed: &Analyzed, within: Option<Span>, mode: HintMode) -> Vec<InlayHint> {
    let mut hints: Vec<(usize, String, Option<String>, Option<InlayHintKind>)> = Vec::new();
    let analysis = &analyzed.analysis;
    let wanted = |offset: usize| within.is_none_or(|span| span.start <= offset && offset <= span.end);
    let body_starts = body_starts(analyzed);
    for report in &analysis.shapes.models {
        if let Some(header) = header_label(report, mode)
            && let Some(&brace) = body_starts.get(&report.span).filter(|&&brace| wanted(brace))
        {
            hints.push((brace, header, None, None));
        }
        for row in report.rows.iter().filter(|row| wanted(row.span.end)) {
            if let Some((label, tooltip)) = row_label(row, mode) {
                hints.push((row.span.end, label, tooltip, None));
            }
        }
    }
    if mode.shapes() {
        let shapes: HashMap<Span, &Shape> = analysis.shapes.facts.iter().map(|fact| (fact.span, &fact.shape)).collect();
        for name in let_names(&analysis.file).into_iter().filter(|name| wanted(name.end)) {
            if let Some(shape) = shapes.get(&name) {
                hints.push((name.end, format!(": {shape}"), None, Some(InlayHintKind::TYPE)));
            }
        }
    }
    hints.sort_by_key(|(offset, ..)| *offset);
    hints
        .into_iter()
        .map(|(offset, label, tooltip, kind)| InlayHint {
            position: analyzed.position(offset),
            // A type hint sits right after its name (`h: [B, 32]`); the others are set apart.
            padding_left: Some(kind.is_none()),
            padding_right: Some(false),
            label: InlayHintLabel::String(label),
            kind,
            text_edits: None,
            tooltip: tooltip.map(InlayHintTooltip::String),
            data: None,
        })
        .collect()
}

/// `[B, 32] · 2,080 params`, or the part the mode asks for; `None` when there is nothing
/// to show (an input line, a failed line, a layer without parameters in `params` mode).
fn row_label(row: &Row, mode: HintMode) -> Option<(String, Option<String>)> {
    if row.failed {
        return None;
    }
    let shape = match row.kind {
        RowKind::Layer | RowKind::Expr => row.shape.as_ref().filter(|_| mode.shapes()).map(ToString::to_string),
        // The shape of an input or a `param` is written on its line; a `let` shows its
        // shape after its name.
        RowKind::Input | RowKind::Param | RowKind::Let => None,
    };
    let params = (row.kind != RowKind::Input && mode.params() && row.params() != Dim::default())
        .then(|| count_label(&row.params()));
    let label = [shape, params].into_iter().flatten().collect::<Vec<_>>().join(" · ");
    let tooltip = (!row.formulas.is_empty()).then(|| row.formulas.join("\n"));
    (!label.is_empty()).then_some((label, tooltip))
}

/// `[B, 64] → [B, 10] · 2,410 params` for a model that checked without errors.
fn header_label(report: &ModelReport, mode: HintMode) -> Option<String> {
    if report.failed {
        return None;
    }
    let shapes = match (&report.input, &report.output) {
        (Some(input), Some(output)) if mode.shapes() => Some(format!("{input} → {output}")),
        _ => None,
    };
    let params = mode.params().then(|| count_label(&report.params));
    let label = [shapes, params].into_iter().flatten().collect::<Vec<_>>().join(" · ");
    (!label.is_empty()).then_some(label)
}

/// `2,080 params`, `1 param`, `33·hidden + 10 params`.
pub fn count_label(count: &Dim) -> String {
    let unit = if count.as_const() == Some(1) { "param" } else { "params" };
    format!("{} {unit}", format_count(count))
}

/// Where the body of each model opens, by the span of the model's name: just after its
/// `{`, when the brace is on the header's line.
fn body_starts(analyzed: &Analyzed) -> HashMap<Span, usize> {
    let text = analyzed.text();
    let mut starts = HashMap::new();
    for item in &analyzed.analysis.file.items {
        if let Item::Model(def) = item {
            let brace = def.body_span.start;
            let on_header_line = text.get(def.name.span.end..brace).is_some_and(|header| !header.contains('\n'));
            if on_header_line && text.get(brace..brace + 1) == Some("{") {
                starts.insert(def.name.span, brace + 1);
            }
        }
    }
    starts
}

/// The name spans of every `let`, at the top level and in bodies.
fn let_names(file: &nnc_grammar::File) -> Vec<Span> {
    let mut names = Vec::new();
    for item in &file.items {
        match item {
            Item::Let(stmt) => names.push(stmt.name.span),
            Item::Model(def) => names.extend(def.body.iter().filter_map(|stmt| match stmt {
                Stmt::Let(stmt) => Some(stmt.name.span),
                _ => None,
            })),
            _ => {}
        }
    }
    names
}

//! The outline (document symbols, with each model's lines and their shapes), folding
//! ranges, and the code lenses on models (totals, run, gradient IR).

use crate::analyzed::Analyzed;
use crate::hints::count_label;
use crate::syntax::header_of;
use nnc_compiler::shapes::{ModelReport, format_count};
use nnc_grammar::{Item, Span, Stmt, Token, lex};
use serde_json::json;
use tower_lsp_server::ls_types::{
    CodeLens, Command, DocumentSymbol, FoldingRange, FoldingRangeKind, Range, SymbolKind, Uri,
};

/// The commands a code lens carries; the editor extension executes them.
pub const COMMAND_RUN: &str = "nnc.run";
pub const COMMAND_SUMMARY: &str = "nnc.summary";
pub const COMMAND_GRADIENT_IR: &str = "nnc.showGradientIr";

/// Every item of the file, with a model's arguments and lines as its children.
pub fn document_symbols(analyzed: &Analyzed) -> Vec<DocumentSymbol> {
    let analysis = &analyzed.analysis;
    let text = analyzed.text();
    let mut symbols = Vec::new();
    for item in &analysis.file.items {
        let symbol = match item {
            Item::Fn(def) => {
                let detail = header_of(&analysis.file, text, def.name.span);
                symbol(analyzed, &def.name.name, detail, SymbolKind::FUNCTION, def.span, def.name.span, Vec::new())
            }
            Item::Model(def) => {
                let report = analysis.shapes.models.iter().find(|m| m.span == def.name.span);
                let mut children: Vec<DocumentSymbol> = def
                    .params
                    .iter()
                    .map(|p| {
                        symbol(analyzed, &p.name.name, None, SymbolKind::TYPE_PARAMETER, p.span, p.name.span, vec![])
                    })
                    .collect();
                for stmt in &def.body {
                    let row = report.and_then(|r| r.rows.iter().find(|row| row.span == stmt.span()));
                    let detail = row.and_then(|row| row.shape.as_ref().filter(|_| !row.failed)).map(|s| s.to_string());
                    let child = match stmt {
                        Stmt::Input(input) => {
                            let name = input.name.as_ref().map_or("input", |n| n.name.as_str());
                            symbol(analyzed, name, detail, SymbolKind::VARIABLE, input.span, input.span, vec![])
                        }
                        Stmt::Param(param) => symbol(
                            analyzed,
                            &param.name.name,
                            detail,
                            SymbolKind::FIELD,
                            param.span,
                            param.name.span,
                            vec![],
                        ),
                        Stmt::Let(stmt) => symbol(
                            analyzed,
                            &stmt.name.name,
                            detail,
                            SymbolKind::VARIABLE,
                            stmt.span,
                            stmt.name.span,
                            vec![],
                        ),
                        Stmt::Expr(expr) => {
                            let label = row.map_or_else(|| text[expr.span.range()].to_string(), |r| r.label.clone());
                            symbol(analyzed, &label, detail, SymbolKind::OPERATOR, expr.span, expr.span, vec![])
                        }
                        Stmt::Error(_) => continue,
                    };
                    children.push(child);
                }
                let detail = report.map(model_detail);
                symbol(analyzed, &def.name.name, detail, SymbolKind::CLASS, def.span, def.name.span, children)
            }
            Item::Let(stmt) => {
                let detail =
                    analysis.shapes.facts.iter().find(|f| f.span == stmt.name.span).map(|f| f.shape.to_string());
                symbol(analyzed, &stmt.name.name, detail, SymbolKind::CONSTANT, stmt.span, stmt.name.span, vec![])
            }
            Item::Query(query) => {
                let name = one_line(&text[query.span.range()]);
                symbol(analyzed, &name, None, SymbolKind::EVENT, query.span, query.keyword_span, vec![])
            }
            Item::Train(def) => {
                let children = def
                    .settings
                    .iter()
                    .map(|s| {
                        let value = one_line(&text[s.value.span.range()]);
                        symbol(analyzed, &s.key.name, Some(value), SymbolKind::PROPERTY, s.span, s.key.span, vec![])
                    })
                    .collect();
                let model = one_line(&text[def.model.span.range()]);
                let name = format!("train {model}");
                symbol(analyzed, &name, None, SymbolKind::EVENT, def.span, def.keyword_span, children)
            }
            Item::Error(_) => continue,
        };
        symbols.push(symbol);
    }
    symbols
}

fn model_detail(report: &ModelReport) -> String {
    match (&report.input, &report.output) {
        (Some(input), Some(output)) if !report.failed => {
            format!("{input} → {output} · {}", count_label(&report.params))
        }
        _ => count_label(&report.params),
    }
}

/// Text on one line, cut at 60 characters.
fn one_line(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 60 { format!("{}...", line.chars().take(57).collect::<String>()) } else { line }
}

#[allow(deprecated)] // `DocumentSymbol::deprecated` must be written, though the protocol replaced it by tags.
fn symbol(
    analyzed: &Analyzed,
    name: &str,
    detail: Option<String>,
    kind: SymbolKind,
    span: Span,
    selection: Span,
    children: Vec<DocumentSymbol>,
) -> DocumentSymbol {
    let range = analyzed.range(span);
    let selection = if span.start <= selection.start && selection.end <= span.end { selection } else { span };
    DocumentSymbol {
        // Clients reject symbols without a name; a name the parser could not read is empty.
        name: if name.trim().is_empty() { "?".to_string() } else { name.to_string() },
        detail,
        kind,
        tags: None,
        deprecated: None,
        range,
        selection_range: analyzed.range(selection),
        children: (!children.is_empty()).then_some(children),
    }
}

/// Folding ranges: the bodies of models and `train` blocks, items over several lines, and
/// runs of comment lines.
pub fn folding_ranges(analyzed: &Analyzed) -> Vec<FoldingRange> {
    let mut ranges = Vec::new();
    let line = |offset: usize| analyzed.position(offset).line;
    for item in &analyzed.analysis.file.items {
        let (start, end) = match item {
            // Up to the line before a `}` that stands on its own line, so that it stays visible.
            // A fold starts on the header, after the doc comment, which folds on its own.
            Item::Model(def) => (def.name.span.start, closing_brace(analyzed.text(), def.body_span.end)),
            Item::Train(def) => (def.keyword_span.start, closing_brace(analyzed.text(), def.body_span.end)),
            Item::Fn(def) => (def.name.span.start, def.span.end),
            Item::Let(stmt) => (stmt.name.span.start, stmt.span.end),
            Item::Query(query) => (query.span.start, query.span.end),
            Item::Error(_) => continue,
        };
        let (first, mut last) = (line(start), line(end));
        if matches!(item, Item::Model(_) | Item::Train(_)) && last > first && brace_alone(analyzed, end) {
            last -= 1;
        }
        if last > first {
            ranges.push(fold(first, last, None));
        }
    }
    // Runs of two or more comment lines.
    let mut run: Option<(u32, u32)> = None;
    for (token, span) in lex(analyzed.text()) {
        let line = line(span.start);
        match token {
            Token::LineComment | Token::DocComment(_) => {
                run = match run {
                    Some((first, last)) if line == last + 1 => Some((first, line)),
                    Some((first, last)) if line == last => Some((first, last)),
                    previous => {
                        if let Some((first, last)) = previous.filter(|(first, last)| last > first) {
                            ranges.push(fold(first, last, Some(FoldingRangeKind::Comment)));
                        }
                        Some((line, line))
                    }
                };
            }
            Token::Newline => {}
            _ => {
                if let Some((first, last)) = run.take().filter(|(first, last)| last > first) {
                    ranges.push(fold(first, last, Some(FoldingRangeKind::Comment)));
                }
            }
        }
    }
    if let Some((first, last)) = run.filter(|(first, last)| last > first) {
        ranges.push(fold(first, last, Some(FoldingRangeKind::Comment)));
    }
    ranges.sort_by_key(|r| (r.start_line, r.end_line));
    ranges
}

/// Where the `}` that ends a body at `end` is; a body left open ends at `end`.
fn closing_brace(text: &str, end: usize) -> usize {
    match text.get(..end) {
        Some(before) if before.ends_with('}') => end - 1,
        _ => end,
    }
}

/// Whether only blanks stand before `end` on its line.
fn brace_alone(analyzed: &Analyzed, end: usize) -> bool {
    let before = &analyzed.text()[..end.min(analyzed.text().len())];
    let line_start = before.rfind(['\n', '\r']).map_or(0, |i| i + 1);
    before[line_start..].trim().is_empty()
}

fn fold(start: u32, end: u32, kind: Option<FoldingRangeKind>) -> FoldingRange {
    FoldingRange {
        start_line: start,
        start_character: None,
        end_line: end,
        end_character: None,
        kind,
        collapsed_text: None,
    }
}

/// On each model: its totals (which open the summary), and commands to run it and to show
/// its gradient IR. The arguments are the document's URI and the model's name.
pub fn code_lenses(analyzed: &Analyzed, uri: &Uri) -> Vec<CodeLens> {
    let mut lenses = Vec::new();
    for report in &analyzed.analysis.shapes.models {
        let range: Range = analyzed.range(report.span);
        let arguments = Some(vec![json!(uri.as_str()), json!(report.name)]);
        let totals = format!(
            "{} · {} mult-adds{}",
            count_label(&report.params),
            format_count(&report.mult_adds),
            if report.failed { " (incomplete: the model has errors)" } else { "" }
        );
        for (title, command) in
            [(totals.as_str(), COMMAND_SUMMARY), ("▶ Run", COMMAND_RUN), ("Gradient IR", COMMAND_GRADIENT_IR)]
        {
            lenses.push(CodeLens {
                range,
                command: Some(Command {
                    title: title.to_string(),
                    command: command.to_string(),
                    arguments: arguments.clone(),
                }),
                data: None,
            });
        }
    }
    lenses
}

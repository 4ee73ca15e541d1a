//! Hover, completion, signature help, diagnostics, navigation, outline, folding and
//! semantic tokens, on fixtures whose `$0` marks the cursor.

mod support;

use nnc_lsp::ls_types::{CompletionItem, Documentation, HoverContents, NumberOrString, Uri};
use nnc_lsp::{Analyzed, completions, hover, signature_help};
use std::str::FromStr;
use support::{analyzed_at, cursor, example};

fn hover_text(fixture: &str) -> String {
    let (analyzed, offset) = analyzed_at(fixture);
    let Some(found) = hover(&analyzed, offset) else {
        return "(no hover)".to_string();
    };
    let range = found.range.expect("hovers name their range");
    let HoverContents::Markup(markup) = found.contents else { panic!("hovers are markdown") };
    let span = analyzed.span(range);
    format!("on `{}`\n{}", &analyzed.text()[span.range()], markup.value)
}

const CNN: &str = r#"/// A small CNN.
model Cnn(classes = 10) {
    input [B, 1, 28, 28]
    conv2d(8, kernel = 3, pad = 1)
    relu
    maxpool(2)
    flatten
    linear(classes)
}
"#;

fn at(text: &str, needle: &str, delta: usize) -> String {
    let offset = text.find(needle).unwrap_or_else(|| panic!("{needle} not in the text")) + delta;
    format!("{}$0{}", &text[..offset], &text[offset..])
}

#[test]
fn hover_on_a_layer_shows_shape_formula_parameters_and_docs() {
    insta::assert_snapshot!(hover_text(&at(CNN, "conv2d", 2)));
}

#[test]
fn hover_on_a_user_model_shows_its_header_totals_and_doc() {
    insta::assert_snapshot!(hover_text(&at(CNN, "Cnn", 1)));
}

#[test]
fn hover_on_a_model_used_as_a_layer_shows_the_line_and_the_model() {
    let text = example("residual.nn");
    insta::assert_snapshot!(hover_text(&at(&text, "    Residual(width = width)", 6)));
}

#[test]
fn hover_on_a_named_argument_a_setting_and_a_model_argument() {
    let text = format!("{CNN}\ntrain Cnn on xor() {{\n    loss = mse\n    epochs = 3\n}}\n");
    let hovers = [
        hover_text(&at(&text, "kernel", 0)),
        hover_text(&at(&text, "epochs", 3)),
        hover_text(&at(&text, "linear(classes)", 9)),
        hover_text(&at(&text, "loss = mse", 8)),
    ];
    insta::assert_snapshot!(hovers.join("\n\n=====\n\n"));
}

#[test]
fn hover_on_a_let_and_a_doc_comment() {
    let text = "/// The lecture's filter.\nlet filter = [[1, 0], [0, 1]]\nlet twice = 2 * filter\n";
    // On the use, the definition's doc comment and shape.
    insta::assert_snapshot!(hover_text(&at(text, "* filter", 3)));
    assert_eq!(hover_text(&at(text, "filter =", 2)), hover_text(&at(text, "* filter", 3)));
    // Nothing in comments.
    assert_eq!(hover_text(&at(text, "lecture", 0)), "(no hover)");
}

fn completion_list(fixture: &str) -> String {
    let (analyzed, offset) = analyzed_at(fixture);
    completions(&analyzed, offset).iter().map(describe_completion).collect::<Vec<_>>().join("\n")
}

fn describe_completion(item: &CompletionItem) -> String {
    let detail = item.detail.as_deref().map(|d| format!(" — {d}")).unwrap_or_default();
    let inserted =
        item.insert_text.as_deref().filter(|t| *t != item.label).map(|t| format!(" ⇒ {t:?}")).unwrap_or_default();
    format!("{}{detail}{inserted}", item.label)
}

#[test]
fn completion_at_the_start_of_a_model_line() {
    let fixture = "model Other { input [B, 2]; linear(2) }\nmodel M(width = 4) {\n    input x: [B, 8]\n    li$0\n}\n";
    insta::assert_snapshot!(completion_list(fixture));
}

#[test]
fn completion_of_named_arguments_skips_the_given_ones() {
    let fixture = "model M {\n    input [B, 1, 8, 8]\n    conv2d(8, kernel = 3, $0)\n}\n";
    insta::assert_snapshot!(completion_list(fixture));
}

#[test]
fn completion_of_values_and_settings_in_train_blocks() {
    let model = "model M { input [B, 2]; linear(1) }\n";
    let lists = [
        completion_list(&format!("{model}train M on xor() {{\n    loss = $0\n}}\n")),
        completion_list(&format!("{model}train M on xor() {{\n    loss = mse\n    $0\n}}\n")),
        completion_list(&format!("{model}train M on $0")),
        completion_list(&format!("{model}train M on xor() {{\n    optimizer = sgd($0)\n}}\n")),
    ];
    insta::assert_snapshot!(lists.join("\n\n=====\n\n"));
}

#[test]
fn completion_at_the_top_level_offers_items_and_documents_built_ins() {
    assert_eq!(
        completion_list("$0"),
        ["fn", "model", "layer", "let", "eval", "grad", "jvp", "jacobian", "hessian", "train"].join("\n")
    );
    let (analyzed, offset) = analyzed_at("fn f(x) = re$0");
    let items = completions(&analyzed, offset);
    let relu = items.iter().find(|i| i.label == "relu").expect("relu is offered in functions");
    let Some(Documentation::MarkupContent(doc)) = &relu.documentation else { panic!("built-ins are documented") };
    assert!(doc.value.contains("max(x, 0)") || doc.value.to_lowercase().contains("relu"), "{}", doc.value);
    assert!(items.iter().all(|i| i.label != "linear"), "layers with parameters are not offered in functions");
    assert!(items.iter().any(|i| i.label == "x"), "the function's argument is offered");
    // Nothing inside comments and strings.
    assert_eq!(completion_list("// li$0"), "");
}

#[test]
fn signature_help_marks_the_argument_being_written() {
    let (analyzed, offset) = analyzed_at("model M {\n    input [B, 1, 8, 8]\n    conv2d(8, $0\n}\n");
    let help = signature_help(&analyzed, offset).expect("inside conv2d");
    let signature = &help.signatures[0];
    assert_eq!(signature.label, "conv2d(out_channels, kernel, stride = 1, pad = 0, bias = true)");
    assert_eq!(help.active_parameter, Some(1));
    let (analyzed, offset) = analyzed_at("model M {\n    input [B, 1, 8, 8]\n    conv2d(8, kernel = 3, pad = $0\n}\n");
    assert_eq!(signature_help(&analyzed, offset).and_then(|h| h.active_parameter), Some(3));
    let (analyzed, offset) = analyzed_at(
        "model N(width = 3) { input [B, 2]; linear(width) }\nmodel M {\n    input [B, 2]\n    N(width = $0)\n}\n",
    );
    let help = signature_help(&analyzed, offset).expect("inside N");
    assert_eq!((help.signatures[0].label.as_str(), help.active_parameter), ("model N(width = 3)", Some(0)));
}

#[test]
fn diagnostics_carry_code_help_and_related_spans() {
    let text = "model M {\n    input [B, 64]\n    conv2d(8, kernel = 3)\n    linar(10)\n}\nfn f(x) = x\nfn f(y) = y\n";
    let analyzed = Analyzed::new(text);
    let uri = Uri::from_str("file:///broken.nn").unwrap();
    let diagnostics = nnc_lsp::diagnostics(&analyzed, &uri, true);
    let rendered: Vec<String> = diagnostics
        .iter()
        .map(|d| {
            let code = match &d.code {
                Some(NumberOrString::String(code)) => code.clone(),
                other => format!("{other:?}"),
            };
            let related = d
                .related_information
                .iter()
                .flatten()
                .map(|r| {
                    format!(
                        "\n  related {}:{}: {}",
                        r.location.range.start.line, r.location.range.start.character, r.message
                    )
                })
                .collect::<String>();
            format!(
                "{:?} {code} {}:{}-{}:{}\n{}{related}",
                d.severity.unwrap(),
                d.range.start.line,
                d.range.start.character,
                d.range.end.line,
                d.range.end.character,
                d.message
            )
        })
        .collect();
    insta::assert_snapshot!(rendered.join("\n\n"));
}

#[test]
fn definitions_references_and_rename_follow_names() {
    let fixture =
        "model Mlp(hidden = 32) {\n    input [B, 64]\n    linear(hid$0den)\n    relu\n    linear(hidden)\n}\n";
    let (analyzed, offset) = analyzed_at(fixture);
    let text = analyzed.text();
    let definition = nnc_lsp::goto_definition(&analyzed, offset).expect("hidden is defined");
    assert_eq!(definition.start, text.find("hidden").unwrap());
    let references = nnc_lsp::references(&analyzed, offset, true);
    assert_eq!(references.len(), 3);
    assert!(references.iter().all(|span| &text[span.range()] == "hidden"));
    assert_eq!(nnc_lsp::references(&analyzed, offset, false).len(), 2);
    let edits = nnc_lsp::rename(&analyzed, offset, "größe").expect("a name");
    let mut renamed = text.to_string();
    for (span, new) in edits.iter().rev() {
        renamed.replace_range(span.range(), new);
    }
    assert_eq!(renamed, fixture.replace("$0", "").replace("hidden", "größe"));
    assert!(nnc_lsp::rename(&analyzed, offset, "model").is_err());
    assert!(nnc_lsp::rename(&analyzed, offset, "a b").is_err());
    // Built-ins are not defined in the file.
    let (analyzed, offset) = analyzed_at("model M {\n    input [B, 2]\n    lin$0ear(2)\n}\n");
    assert_eq!(nnc_lsp::goto_definition(&analyzed, offset), None);
    assert!(nnc_lsp::rename(&analyzed, offset, "dense").is_err());
}

#[test]
fn models_used_as_layers_and_trained_are_references() {
    let text = example("residual.nn");
    let (analyzed, offset) = analyzed_at(&at(&text, "model Residual", 8));
    let references = nnc_lsp::references(&analyzed, offset, true);
    let lines: Vec<u32> = references.iter().map(|span| analyzed.position(span.start).line).collect();
    assert_eq!(lines, vec![2, 20, 21]);
}

#[test]
fn renaming_a_model_argument_renames_it_at_calls() {
    let text = example("residual.nn");
    let (analyzed, offset) = analyzed_at(&at(&text, "model Residual(width)", 16));
    let edits = nnc_lsp::rename(&analyzed, offset, "size").expect("width is an argument");
    let mut renamed = analyzed.text().to_string();
    for (span, new) in edits.iter().rev() {
        renamed.replace_range(span.range(), new);
    }
    // Its definition and uses inside `Residual`, and the names at the two calls in `Deep`,
    // whose own `width` stays.
    assert!(renamed.contains("model Residual(size) {\n    input x: [B, size]\n    let h = x |> linear(size)"));
    assert!(renamed.contains("    x + linear(h, size)\n"));
    assert_eq!(renamed.matches("Residual(size = width)").count(), 2, "{renamed}");
    assert_eq!(edits.len(), 6);
}

#[test]
fn the_outline_lists_models_with_their_lines() {
    let analyzed = Analyzed::new(&example("digits_cnn.nn"));
    let symbols = nnc_lsp::document_symbols(&analyzed);
    let mut out = String::new();
    for symbol in &symbols {
        out.push_str(&format!("{:?} {} — {}\n", symbol.kind, symbol.name, symbol.detail.clone().unwrap_or_default()));
        for child in symbol.children.iter().flatten() {
            out.push_str(&format!(
                "    {:?} {} — {}\n",
                child.kind,
                child.name,
                child.detail.clone().unwrap_or_default()
            ));
        }
    }
    insta::assert_snapshot!(out);
}

#[test]
fn folding_ranges_cover_bodies_and_comment_runs() {
    let analyzed = Analyzed::new(&example("residual.nn"));
    let folds: Vec<(u32, u32)> =
        nnc_lsp::folding_ranges(&analyzed).iter().map(|f| (f.start_line, f.end_line)).collect();
    // Two doc lines, then `Residual` from its header to the line before its `}`, and so on;
    // the one-line doc comment of `Deep` does not fold.
    assert_eq!(folds, vec![(0, 1), (2, 5), (8, 9), (10, 14), (18, 22)]);
}

#[test]
fn semantic_tokens_colour_names_by_what_they_are() {
    let (text, _) = cursor("model M(width = 4) {\n    input x: [B, width]\n    x |> linear(width, bias = false)\n}$0");
    let analyzed = Analyzed::new(&text);
    let legend = nnc_lsp::semantic_tokens_legend();
    let tokens = nnc_lsp::semantic_tokens(&analyzed, None);
    let (mut line, mut column) = (0, 0);
    let mut out = Vec::new();
    for token in tokens {
        line += token.delta_line;
        column = if token.delta_line == 0 { column + token.delta_start } else { token.delta_start };
        let start = analyzed.offset(nnc_lsp::ls_types::Position::new(line, column));
        let end = analyzed.offset(nnc_lsp::ls_types::Position::new(line, column + token.length));
        let kind = legend.token_types[token.token_type as usize].as_str();
        out.push(format!("{} {kind} {:b}", &text[start..end], token.token_modifiers_bitset));
    }
    insta::assert_snapshot!(out.join("\n"));
}

#[test]
fn code_lenses_carry_the_commands_with_uri_and_model() {
    let analyzed = Analyzed::new(CNN);
    let uri = Uri::from_str("file:///cnn.nn").unwrap();
    let lenses = nnc_lsp::code_lenses(&analyzed, &uri);
    let commands: Vec<String> = lenses
        .iter()
        .map(|lens| {
            let command = lens.command.as_ref().expect("every lens has a command");
            format!("{} {} {}", command.title, command.command, serde_json::to_string(&command.arguments).unwrap())
        })
        .collect();
    assert_eq!(
        commands,
        vec![
            "15,770 params · 72,128 mult-adds nnc.summary [\"file:///cnn.nn\",\"Cnn\"]",
            "▶ Run nnc.run [\"file:///cnn.nn\",\"Cnn\"]",
            "Gradient IR nnc.showGradientIr [\"file:///cnn.nn\",\"Cnn\"]",
        ]
    );
    assert!(lenses.iter().all(|lens| lens.range.start.line == 1));
}

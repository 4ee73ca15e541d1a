//! Completion of keywords, layers, activations, functions, named arguments, `train`
//! settings and user definitions, with their documentation; and signature help for the
//! arguments of a call.

use crate::analyzed::Analyzed;
use crate::hover::{builtin_markdown, kind_name, param_signature, signature};
use crate::syntax::{CallSite, call_at, doc_of, header_of, in_comment_or_string};
use nnc_compiler::builtins::{self, ArgKind, Builtin, Kind, Param, TRAIN_SETTINGS};
use nnc_compiler::{DefKind, Definition};
use nnc_grammar::{Item, Token, lex};
use tower_lsp_server::ls_types::{
    CompletionItem, CompletionItemKind, Documentation, InsertTextFormat, MarkupContent, MarkupKind,
    ParameterInformation, ParameterLabel, SignatureHelp, SignatureInformation,
};

const ITEM_KEYWORDS: &[&str] = &["fn", "model", "layer", "let", "eval", "grad", "jvp", "jacobian", "hessian", "train"];
const BODY_KEYWORDS: &[&str] = &["input", "param", "let"];

/// The block the cursor is in, found from the braces before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Block {
    TopLevel,
    Model,
    Train,
}

/// What may be written at byte `offset`.
pub fn completions(analyzed: &Analyzed, offset: usize) -> Vec<CompletionItem> {
    let text = analyzed.text();
    let offset = floor_boundary(text, offset);
    if in_comment_or_string(text, offset) {
        return Vec::new();
    }
    // The word being typed is replaced by the completion; what matters is what is before it.
    let word_start = text[..offset]
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
        .last()
        .map_or(offset, |(i, _)| i);
    let line_start = text[..word_start].rfind(['\n', '\r']).map_or(0, |i| i + 1);
    let before = text[line_start..word_start].trim();
    let block = block_at(text, word_start);
    let mut items = Vec::new();
    if let Some(site) = call_at(text, word_start) {
        call_completions(analyzed, &site, word_start, &mut items);
        return items;
    }
    if block == Block::Train {
        if before.is_empty() {
            let set = train_settings_before(analyzed, word_start);
            for param in TRAIN_SETTINGS.iter().filter(|p| !set.contains(&p.name)) {
                items.push(named_item(param, "setting of `train`"));
            }
        } else if let Some(key) = before.strip_suffix('=').map(str::trim)
            && let Some(param) = TRAIN_SETTINGS.iter().find(|p| p.name == key)
        {
            value_items(param.kind, &mut items);
        }
        return items;
    }
    if before.starts_with("train") && before.ends_with("on") {
        builtin_items(&[Kind::DataSource], &mut items);
        return items;
    }
    if before == "train" {
        user_items(analyzed, &[DefKind::Model, DefKind::Layer], None, &mut items);
        return items;
    }
    if before.starts_with("param") && before.ends_with('=') {
        builtin_items(&[Kind::Initializer], &mut items);
        return items;
    }
    match (block, before.is_empty()) {
        (Block::TopLevel, true) => keyword_items(ITEM_KEYWORDS, &mut items),
        (Block::Model, true) => {
            keyword_items(BODY_KEYWORDS, &mut items);
            layer_items(analyzed, word_start, &mut items);
            names_in_scope(analyzed, word_start, &mut items);
        }
        (Block::Model, false) => {
            layer_items(analyzed, word_start, &mut items);
            names_in_scope(analyzed, word_start, &mut items);
        }
        (Block::TopLevel, false) => {
            builtin_items(&[Kind::Activation, Kind::Function], &mut items);
            user_items(analyzed, &[DefKind::Fn], None, &mut items);
            names_in_scope(analyzed, word_start, &mut items);
        }
        (Block::Train, _) => {}
    }
    items
}

fn floor_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Whether `offset` is in a model's or layer's body, a `train` block, or neither.
fn block_at(text: &str, offset: usize) -> Block {
    let mut stack: Vec<Block> = Vec::new();
    let mut opener = Block::TopLevel;
    for (token, span) in lex(text) {
        if span.end > offset {
            break;
        }
        match token {
            Token::Model | Token::Layer => opener = Block::Model,
            Token::Train => opener = Block::Train,
            Token::Fn | Token::Eval | Token::Grad | Token::Jvp | Token::Jacobian | Token::Hessian
                if stack.is_empty() =>
            {
                opener = Block::TopLevel
            }
            Token::LBrace => stack.push(opener),
            Token::RBrace => {
                stack.pop();
            }
            _ => {}
        }
    }
    stack.last().copied().unwrap_or(Block::TopLevel)
}

/// Completions inside the parentheses of a call: the arguments not yet given by name, or
/// the values the argument after `name =` takes.
fn call_completions(analyzed: &Analyzed, site: &CallSite, offset: usize, items: &mut Vec<CompletionItem>) {
    let params = call_params(analyzed, &site.callee);
    if let Some(current) = &site.current_name {
        if let Some(param) = params.iter().find(|p| p.0 == *current)
            && let Some(kind) = param.2
        {
            value_items(kind, items);
        }
        names_in_scope(analyzed, offset, items);
        return;
    }
    // Arguments before the cursor that have no name fill the first parameters.
    let positional = site.argument.saturating_sub(site.named_before.len());
    for (name, doc, _) in params.iter().skip(positional).filter(|p| !site.named_before.contains(&p.0)) {
        items.push(CompletionItem {
            label: format!("{name} ="),
            kind: Some(CompletionItemKind::PROPERTY),
            detail: Some(format!("argument of `{}`", site.callee)),
            documentation: doc.clone().map(markdown),
            insert_text: Some(format!("{name} = ")),
            filter_text: Some(name.clone()),
            ..CompletionItem::default()
        });
    }
    names_in_scope(analyzed, offset, items);
}

/// The arguments a call of `callee` takes: a built-in's, or a user model's or function's.
fn call_params(analyzed: &Analyzed, callee: &str) -> Vec<(String, Option<String>, Option<ArgKind>)> {
    if let Some(def) = user_definition(analyzed, callee) {
        return analyzed
            .analysis
            .file
            .items
            .iter()
            .find_map(|item| match item {
                Item::Model(model) if model.name.span == def.span => {
                    Some(model.params.iter().map(|p| (p.name.name.clone(), None, Some(ArgKind::Int))).collect())
                }
                Item::Fn(function) if function.name.span == def.span => {
                    Some(function.params.iter().map(|p| (p.name.name.clone(), None, None)).collect())
                }
                _ => None,
            })
            .unwrap_or_default();
    }
    match builtins::lookup(callee) {
        Some(builtin) => builtin
            .params
            .iter()
            .filter(|p| p.kind != ArgKind::Tensor)
            .map(|p| (p.name.to_string(), Some(p.doc.to_string()), Some(p.kind)))
            .collect(),
        None => Vec::new(),
    }
}

fn user_definition<'a>(analyzed: &'a Analyzed, name: &str) -> Option<&'a Definition> {
    analyzed
        .analysis
        .resolution
        .definitions
        .iter()
        .find(|d| d.name == name && matches!(d.kind, DefKind::Model | DefKind::Layer | DefKind::Fn))
}

/// The values an argument of this kind takes, where they are a closed list.
fn value_items(kind: ArgKind, items: &mut Vec<CompletionItem>) {
    match kind {
        ArgKind::Word(words) | ArgKind::IntOrWord(words) => keyword_items(words, items),
        ArgKind::Bool => keyword_items(&["true", "false"], items),
        ArgKind::Loss => builtin_items(&[Kind::Loss], items),
        ArgKind::Optimizer => builtin_items(&[Kind::Optimizer], items),
        ArgKind::DataSource => builtin_items(&[Kind::DataSource], items),
        _ => {}
    }
}

/// The settings already written in the `train` block around `offset`.
fn train_settings_before(analyzed: &Analyzed, offset: usize) -> Vec<&'static str> {
    analyzed
        .analysis
        .file
        .items
        .iter()
        .filter_map(|item| match item {
            Item::Train(def) if def.span.start <= offset && offset <= def.span.end => Some(&def.settings),
            _ => None,
        })
        .flatten()
        .filter_map(|setting| TRAIN_SETTINGS.iter().find(|p| p.name == setting.key.name).map(|p| p.name))
        .collect()
}

fn keyword_items(words: &[&str], items: &mut Vec<CompletionItem>) {
    items.extend(words.iter().map(|word| CompletionItem {
        label: word.to_string(),
        kind: Some(CompletionItemKind::KEYWORD),
        ..CompletionItem::default()
    }));
}

fn named_item(param: &Param, what: &str) -> CompletionItem {
    CompletionItem {
        label: param.name.to_string(),
        kind: Some(CompletionItemKind::PROPERTY),
        detail: Some(param_signature(param)),
        documentation: Some(markdown(format!("{what}: {}", param.doc))),
        insert_text: Some(format!("{} = ", param.name)),
        ..CompletionItem::default()
    }
}

/// What a model body line may apply: built-in layers, activations and functions, and the
/// file's models and layers other than the one being written.
fn layer_items(analyzed: &Analyzed, offset: usize, items: &mut Vec<CompletionItem>) {
    builtin_items(&[Kind::Layer, Kind::Activation, Kind::Function], items);
    let current = analyzed.analysis.file.items.iter().find_map(|item| match item {
        Item::Model(def) if def.span.start <= offset && offset <= def.span.end => Some(def.name.span),
        _ => None,
    });
    user_items(analyzed, &[DefKind::Model, DefKind::Layer, DefKind::Fn], current, items);
}

fn builtin_items(kinds: &[Kind], items: &mut Vec<CompletionItem>) {
    items.extend(builtins::all().filter(|b| kinds.contains(&b.kind)).map(builtin_item));
}

fn builtin_item(builtin: &Builtin) -> CompletionItem {
    let kind = match builtin.kind {
        Kind::Layer => CompletionItemKind::CLASS,
        Kind::Activation | Kind::Function => CompletionItemKind::FUNCTION,
        _ => CompletionItemKind::VALUE,
    };
    let required: Vec<&Param> =
        builtin.params.iter().filter(|p| p.default.is_none() && p.kind != ArgKind::Tensor).collect();
    // A layer with required settings is inserted with its parentheses and the cursor in them.
    let (insert_text, format) = if required.is_empty() || builtin.kind == Kind::Loss {
        (builtin.name.to_string(), InsertTextFormat::PLAIN_TEXT)
    } else {
        (format!("{}($0)", builtin.name), InsertTextFormat::SNIPPET)
    };
    CompletionItem {
        label: builtin.name.to_string(),
        kind: Some(kind),
        detail: Some(format!("{} · {}", signature(builtin), kind_name(builtin.kind))),
        documentation: Some(markdown(builtin_markdown(builtin))),
        insert_text: Some(insert_text),
        insert_text_format: Some(format),
        ..CompletionItem::default()
    }
}

/// The file's definitions of the given kinds, except the one named at `except`.
fn user_items(
    analyzed: &Analyzed,
    kinds: &[DefKind],
    except: Option<nnc_grammar::Span>,
    items: &mut Vec<CompletionItem>,
) {
    let analysis = &analyzed.analysis;
    for def in analysis.resolution.definitions.iter().filter(|d| kinds.contains(&d.kind) && Some(d.span) != except) {
        let header = header_of(&analysis.file, analyzed.text(), def.span).unwrap_or_else(|| def.name.clone());
        let doc = doc_of(&analysis.file, def.span).map(|d| format!("\n\n{d}")).unwrap_or_default();
        items.push(CompletionItem {
            label: def.name.clone(),
            kind: Some(if def.kind == DefKind::Fn { CompletionItemKind::FUNCTION } else { CompletionItemKind::CLASS }),
            detail: Some(header.clone()),
            documentation: Some(markdown(format!("```nn\n{header}\n```{doc}"))),
            ..CompletionItem::default()
        });
    }
}

/// Values visible at `offset`: the arguments, inputs, `let`s and `param`s of the enclosing
/// definition, and constants defined before it.
fn names_in_scope(analyzed: &Analyzed, offset: usize, items: &mut Vec<CompletionItem>) {
    let analysis = &analyzed.analysis;
    let enclosing = analysis.file.items.iter().map(Item::span).find(|s| s.start <= offset && offset <= s.end);
    let mut seen: Vec<&str> = Vec::new();
    for def in &analysis.resolution.definitions {
        let local = enclosing.is_some_and(|s| s.contains(def.span.start)) && def.span.end <= offset;
        let visible = match def.kind {
            DefKind::Constant => def.span.end <= offset,
            DefKind::FnParam | DefKind::ModelArg | DefKind::Input | DefKind::Local | DefKind::Param => local,
            _ => false,
        };
        if !visible || seen.contains(&def.name.as_str()) {
            continue;
        }
        seen.push(&def.name);
        let shape = analysis.shapes.facts.iter().find(|f| f.span == def.span).map(|f| format!(": {}", f.shape));
        items.push(CompletionItem {
            label: def.name.clone(),
            kind: Some(if def.kind == DefKind::Constant {
                CompletionItemKind::CONSTANT
            } else {
                CompletionItemKind::VARIABLE
            }),
            detail: shape,
            documentation: doc_of(&analysis.file, def.span).map(|d| markdown(d.to_string())),
            ..CompletionItem::default()
        });
    }
}

fn markdown(value: String) -> Documentation {
    Documentation::MarkupContent(MarkupContent { kind: MarkupKind::Markdown, value })
}

/// A parameter as signature help shows it, with its documentation.
type Documented = (String, Option<String>);

/// The signature of the call around `offset`, with the argument being written active.
pub fn signature_help(analyzed: &Analyzed, offset: usize) -> Option<SignatureHelp> {
    let text = analyzed.text();
    let offset = floor_boundary(text, offset);
    if in_comment_or_string(text, offset) {
        return None;
    }
    let site = call_at(text, offset)?;
    let (label, params, doc): (String, Vec<Documented>, Option<String>) =
        match (user_definition(analyzed, &site.callee), builtins::lookup(&site.callee)) {
            (Some(def), _) => {
                let header = header_of(&analyzed.analysis.file, text, def.span)?;
                let params =
                    call_params(analyzed, &site.callee).into_iter().map(|(name, doc, _)| (name, doc)).collect();
                (header, params, doc_of(&analyzed.analysis.file, def.span).map(str::to_string))
            }
            (None, Some(builtin)) => {
                // In a model, a layer's input flows in from the line before: only its settings
                // are written in the parentheses.
                let shown: Vec<&Param> = builtin.params.iter().filter(|p| p.kind != ArgKind::Tensor).collect();
                let list: Vec<String> = shown.iter().map(|p| param_signature(p)).collect();
                let label = format!("{}({})", builtin.name, list.join(", "));
                let params = shown.iter().map(|p| (param_signature(p), Some(p.doc.to_string()))).collect();
                (label, params, Some(builtin.doc.to_string()))
            }
            (None, None) => return None,
        };
    // Parameter labels are offsets into the signature's label, in UTF-16 units.
    let open = label.find('(').map_or(label.len(), |i| i + 1);
    let mut cursor = open;
    let mut parameters = Vec::new();
    for (name, doc) in &params {
        let start = label[cursor..].find(name.as_str()).map_or(cursor, |i| cursor + i);
        let end = start + name.len();
        cursor = end;
        let utf16 = |i: usize| label[..i].encode_utf16().count() as u32;
        parameters.push(ParameterInformation {
            label: ParameterLabel::LabelOffsets([utf16(start), utf16(end)]),
            documentation: doc.clone().map(Documentation::String),
        });
    }
    let active = match &site.current_name {
        Some(name) => params.iter().position(|(p, _)| p == name || p.starts_with(&format!("{name} "))),
        None if site.named_before.is_empty() => Some(site.argument),
        None => None,
    }
    .filter(|&i| i < params.len())
    .map(|i| i as u32);
    Some(SignatureHelp {
        signatures: vec![SignatureInformation {
            label,
            documentation: doc.map(markdown),
            parameters: Some(parameters),
            active_parameter: active,
        }],
        active_signature: Some(0),
        active_parameter: active,
    })
}

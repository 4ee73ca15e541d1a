//! The VS Code extension's TextMate grammar and snippets kept in step with the language: its
//! keyword and built-in lists are the lexer's and the compiler's, and its snippets, filled in
//! with their defaults, are a file the compiler accepts.

use nnc_compiler::analyze;
use nnc_compiler::builtins::{self, Kind, TRAIN_SETTINGS};
use nnc_grammar::KEYWORDS;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

fn read_json(relative: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("editors/vscode").join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The patterns of a repository entry of the grammar.
fn patterns<'g>(grammar: &'g Value, entry: &str) -> &'g Vec<Value> {
    grammar["repository"][entry]["patterns"].as_array().unwrap_or_else(|| panic!("the grammar has no `{entry}`"))
}

/// The words of a `\b(?:a|b|c)\b` alternation inside a pattern's `match`.
fn words(pattern: &Value) -> BTreeSet<String> {
    let regex = pattern["match"].as_str().expect("a match pattern");
    let start = regex.find(r"\b(?:").expect("a word alternation") + r"\b(?:".len();
    let end = start + regex[start..].find(r")\b").expect("the alternation's end");
    regex[start..end].split('|').map(str::to_string).collect()
}

/// The words of the pattern of `entry` whose scope is `scope`.
fn words_scoped(grammar: &Value, entry: &str, scope: &str) -> BTreeSet<String> {
    let pattern = patterns(grammar, entry)
        .iter()
        .find(|p| p["name"] == scope)
        .unwrap_or_else(|| panic!("`{entry}` has no pattern named {scope}"));
    words(pattern)
}

fn set<'a>(names: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    names.into_iter().map(str::to_string).collect()
}

#[test]
fn the_grammars_keywords_are_the_lexers() {
    let grammar = read_json("syntaxes/nn.tmLanguage.json");
    let in_grammar: BTreeSet<String> = patterns(&grammar, "keywords").iter().flat_map(words).collect();
    let in_lexer = set(KEYWORDS.iter().map(|(name, _)| *name));
    assert_eq!(
        in_grammar, in_lexer,
        "editors/vscode/syntaxes/nn.tmLanguage.json `keywords` against nnc_grammar::KEYWORDS"
    );
}

#[test]
fn the_grammars_builtins_are_the_compilers() {
    let grammar = read_json("syntaxes/nn.tmLanguage.json");
    let scopes = [
        (Kind::Layer, "support.class.layer.nn"),
        (Kind::Activation, "support.function.activation.nn"),
        (Kind::Function, "support.function.builtin.nn"),
        (Kind::Loss, "support.function.loss.nn"),
        (Kind::Optimizer, "support.function.optimizer.nn"),
        (Kind::DataSource, "support.function.data.nn"),
        (Kind::Initializer, "support.function.initializer.nn"),
    ];
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("editors/vscode/syntaxes/nn.tmLanguage.json");
    let mut text = std::fs::read_to_string(&path).unwrap();
    let mut stale = Vec::new();
    for (kind, scope) in scopes {
        let in_compiler = set(builtins::all().filter(|b| b.kind == kind).map(|b| b.name));
        let in_grammar = words_scoped(&grammar, "builtins", scope);
        if in_grammar != in_compiler {
            stale.push(format!(
                "{scope}: the grammar has {in_grammar:?}, the built-ins of kind {kind:?} are {in_compiler:?}"
            ));
            // The pattern's word list, rewritten from the compiler's table.
            let pattern = patterns(&grammar, "builtins").iter().find(|p| p["name"] == scope).unwrap();
            let old = pattern["match"].as_str().unwrap();
            let start = old.find(r"\b(?:").expect("a word alternation") + r"\b(?:".len();
            let end = start + old[start..].find(r")\b").expect("the alternation's end");
            let new_words = in_compiler.iter().cloned().collect::<Vec<_>>().join("|");
            let new = format!("{}{new_words}{}", &old[..start], &old[end..]);
            let (old, new) = (serde_json::to_string(old).unwrap(), serde_json::to_string(&new).unwrap());
            text = text.replacen(&old, &new, 1);
        }
    }
    if std::env::var_os("NNC_BLESS").is_some() {
        // Through a temporary file: the other tests read the grammar meanwhile.
        let temporary = path.with_extension("json.new");
        std::fs::write(&temporary, text).unwrap();
        std::fs::rename(&temporary, &path).unwrap();
    } else {
        assert!(
            stale.is_empty(),
            "{}\nrun `NNC_BLESS=1 cargo test --test editor_grammar` to rewrite the grammar's lists",
            stale.join("\n")
        );
    }
    // Every pattern of `builtins` is one of the kinds above, so no built-in hides elsewhere.
    assert_eq!(patterns(&grammar, "builtins").len(), scopes.len());
}

#[test]
fn the_grammars_train_settings_are_the_compilers() {
    let grammar = read_json("syntaxes/nn.tmLanguage.json");
    let in_grammar: BTreeSet<String> = patterns(&grammar, "train-settings").iter().flat_map(words).collect();
    let in_compiler = set(TRAIN_SETTINGS.iter().flat_map(|p| std::iter::once(p.name).chain(p.aliases.iter().copied())));
    assert_eq!(in_grammar, in_compiler);
}

/// A snippet body with every placeholder replaced by its default: `${1:x}` by `x` (inner
/// placeholders first), `${1|a,b|}` by `a`, and `$0` by nothing.
fn fill_in(body: &str) -> String {
    let mut text = body.replace("$0", "");
    while let Some(start) = text.rfind("${") {
        let end = start + text[start..].find('}').expect("a placeholder's end");
        let inner = &text[start + 2..end];
        let digits = inner.chars().take_while(char::is_ascii_digit).count();
        let rest = &inner[digits..];
        let value = if let Some(default) = rest.strip_prefix(':') {
            default.to_string()
        } else if let Some(choices) = rest.strip_prefix('|') {
            choices.trim_end_matches('|').split(',').next().unwrap_or("").to_string()
        } else {
            String::new()
        };
        text.replace_range(start..=end, &value);
    }
    assert!(!text.contains('$'), "a placeholder was not filled in: {text}");
    text
}

#[test]
fn the_snippets_filled_in_are_a_file_without_errors() {
    let snippets = read_json("snippets/nn.json");
    let snippets = snippets.as_object().expect("an object of snippets");
    for wanted in ["model", "layer", "train", "fn", "grad"] {
        assert!(snippets.contains_key(wanted), "no `{wanted}` snippet");
    }
    let mut source = String::new();
    for (name, snippet) in snippets {
        let lines: Vec<&str> = snippet["body"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
        let text = fill_in(&lines.join("\n"));
        assert!(!text.trim().is_empty(), "the `{name}` snippet is empty");
        source.push_str(&text);
        source.push('\n');
    }
    // The train snippet names a placeholder model; train the model snippet's model instead.
    let source = source.replace("train Model on", "train Mlp on");
    let analysis = analyze(&source);
    let errors: Vec<_> = analysis.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{errors:#?}\nin\n{source}");
    assert!(analysis.shapes.model("Mlp").is_some(), "the model snippet defines a model");
}

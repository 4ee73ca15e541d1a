//! Keeps the language reference, `docs/language.md`, true to the compiler: every block
//! tagged `nn` checks with no diagnostics, every block tagged `nn,error` gives the code named
//! on its first line, every keyword, built-in and `train` setting is documented, and the
//! tables of built-ins and settings are the ones generated from `nnc_compiler::builtins`
//! (`NNC_BLESS=1 cargo test --test reference_examples` rewrites them; read the change).

use nnc_compiler::analyze;
use nnc_compiler::builtins::{self, ArgKind, Builtin, Kind, Param, TRAIN_SETTINGS};
use nnc_grammar::{Code, KEYWORDS, render};
use std::path::{Path, PathBuf};

/// Fewer examples than this means the reference lost most of them, not that it got shorter.
const MIN_CLEAN_EXAMPLES: usize = 20;
/// Likewise for the ```nn,error examples, so that a broken tag cannot leave this test with
/// nothing to check.
const MIN_ERROR_EXAMPLES: usize = 9;

fn path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/language.md")
}

fn reference() -> String {
    std::fs::read_to_string(path()).expect("docs/language.md is readable")
}

/// A fenced block: its info string (`nn`, `nn,error`, `ebnf`), first line number and text.
struct Block {
    info: String,
    line: usize,
    body: String,
}

/// The fenced blocks of a Markdown text. Fences are the only Markdown this needs to know:
/// the reference uses three backticks at the start of a line and nothing else.
fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let Some(info) = line.strip_prefix("```") else { continue };
        let body: Vec<&str> = lines.by_ref().map(|(_, l)| l).take_while(|l| !l.starts_with("```")).collect();
        out.push(Block { info: info.trim().to_string(), line: index + 2, body: body.join("\n") + "\n" });
    }
    out
}

#[test]
fn every_nn_block_is_tagged_nn_or_nn_error() {
    // A typo such as ```nn error would otherwise turn an example into unchecked text.
    for block in blocks(&reference()) {
        if block.info.starts_with("nn") {
            assert!(
                block.info == "nn" || block.info == "nn,error",
                "docs/language.md:{}: unknown block tag ```{}; use ```nn or ```nn,error",
                block.line,
                block.info
            );
        }
    }
}

#[test]
fn every_example_checks_without_diagnostics() {
    let text = reference();
    let examples: Vec<Block> = blocks(&text).into_iter().filter(|b| b.info == "nn").collect();
    assert!(
        examples.len() >= MIN_CLEAN_EXAMPLES,
        "docs/language.md has {} ```nn examples; it should have at least {MIN_CLEAN_EXAMPLES}",
        examples.len()
    );
    for example in examples {
        let analysis = analyze(&example.body);
        assert!(
            analysis.diagnostics.is_empty(),
            "the example at docs/language.md:{} does not check cleanly:\n{}\n{}",
            example.line,
            example.body,
            render(&analysis.diagnostics, "example.nn", &example.body, false)
        );
    }
}

#[test]
fn every_error_example_gives_its_code() {
    let examples: Vec<Block> = blocks(&reference()).into_iter().filter(|b| b.info == "nn,error").collect();
    assert!(
        examples.len() >= MIN_ERROR_EXAMPLES,
        "docs/language.md has {} ```nn,error examples; it should have at least {MIN_ERROR_EXAMPLES}",
        examples.len()
    );
    for example in examples {
        let code =
            example.body.lines().next().and_then(|l| l.strip_prefix("// error: ")).map(str::trim).unwrap_or_else(
                || panic!("docs/language.md:{}: an error example starts with `// error: CODE`", example.line),
            );
        assert!(
            Code::ALL.iter().any(|c| c.as_str() == code),
            "docs/language.md:{}: `{code}` is not a diagnostic code",
            example.line
        );
        let analysis = analyze(&example.body);
        assert!(
            analysis.diagnostics.iter().any(|d| d.code.as_str() == code),
            "the example at docs/language.md:{} should give {code}:\n{}\n{}",
            example.line,
            example.body,
            render(&analysis.diagnostics, "example.nn", &example.body, false)
        );
    }
}

#[test]
fn every_keyword_builtin_and_setting_is_documented() {
    let text = reference();
    let mut missing = Vec::new();
    let names = KEYWORDS
        .iter()
        .map(|(keyword, _)| ("keyword", *keyword))
        .chain(builtins::all().map(|b| ("built-in", b.name)))
        .chain(TRAIN_SETTINGS.iter().map(|s| ("setting", s.name)));
    for (what, name) in names {
        if !text.contains(&format!("`{name}`")) {
            missing.push(format!("{what} `{name}`"));
        }
    }
    assert!(missing.is_empty(), "docs/language.md does not mention (in backticks): {}", missing.join(", "));
}

/// Names in backticks as a list in words: "`a`, `b` or `c`".
fn either(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// What kind of value an argument or setting takes, in words.
fn value_kind(kind: ArgKind) -> String {
    match kind {
        ArgKind::Tensor => "a tensor".into(),
        ArgKind::Int => "a whole number".into(),
        ArgKind::IntOrPair => "a whole number or a pair".into(),
        ArgKind::Real => "a number".into(),
        ArgKind::Bool => "`true` or `false`".into(),
        ArgKind::Str => "a string".into(),
        ArgKind::Word(list) => either(list),
        ArgKind::IntOrWord(list) => format!("a whole number or {}", either(list)),
        ArgKind::Shape => "a shape".into(),
        ArgKind::Loss => "a loss".into(),
        ArgKind::Optimizer => "an optimiser".into(),
        ArgKind::DataSource => "a data source".into(),
    }
}

/// One argument, as a table cell shows it: `` `bias = true`: whether to add a learned bias ``.
fn argument(param: &Param) -> String {
    let head = match param.default {
        Some(default) => format!("`{} = {default}`", param.name),
        None => format!("`{}`", param.name),
    };
    let aliases = if param.aliases.is_empty() { String::new() } else { format!(" (not {})", either(param.aliases)) };
    format!("{head}, {}: {}{aliases}", value_kind(param.kind), param.doc)
}

fn arguments(builtin: &Builtin) -> String {
    if builtin.variadic {
        return "`d1, d2, ...`, whole numbers, by position".into();
    }
    let mut cells: Vec<String> = Vec::new();
    if let Some(leading) = builtins::leading(builtin.name) {
        let count = ["", "one", "two", "three", "four"].get(leading.count).copied().unwrap_or("several");
        cells.push(format!(
            "`{}`, {}: {}; written as the first of {count} numbers, `{}`",
            leading.param.name,
            value_kind(leading.param.kind),
            leading.param.doc,
            leading.example
        ));
    }
    cells.extend(builtin.params.iter().map(argument));
    if cells.is_empty() { "none".into() } else { cells.join("; ") }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn table(out: &mut String, title: &str, note: &str, kind: Kind) {
    out.push_str(&format!("\n### {title}\n\n{note}\n\n| name | arguments | description |\n|---|---|---|\n"));
    for builtin in builtins::all().filter(|b| b.kind == kind) {
        out.push_str(&format!("| `{}` | {} | {} |\n", builtin.name, cell(&arguments(builtin)), cell(builtin.doc)));
    }
}

fn builtin_tables() -> String {
    let mut out = String::new();
    table(
        &mut out,
        "Layers with parameters",
        "Only in `model` and `layer` bodies: on a line of their own (`linear(10)`), after `|>` \
         (`x |> linear(10)`), or called with their input first (`linear(x, 10)`).",
        Kind::Layer,
    );
    table(
        &mut out,
        "Layers without parameters",
        "Used like the layers above, and also in functions: `relu(x)`, `softmax(x, axis = 0)`.",
        Kind::Activation,
    );
    table(
        &mut out,
        "Functions",
        "Their tensor operands come first: `sum(x, axis = 1)`. After `|>` the piped value is the \
         first operand: `x |> sum(axis = 1)`.",
        Kind::Function,
    );
    table(
        &mut out,
        "Losses",
        "Named in a `train` block (`loss = cross_entropy`), or called on a prediction and a target.",
        Kind::Loss,
    );
    table(&mut out, "Optimisers", "The value of the `optimizer` setting of a `train` block.", Kind::Optimizer);
    table(
        &mut out,
        "Data sources",
        "After `on` in a `train` block, and the value of its `test` setting.",
        Kind::DataSource,
    );
    table(&mut out, "Initialisers", "After `=` in a `param` statement.", Kind::Initializer);
    out.push('\n');
    out
}

fn settings_table() -> String {
    let mut out = String::from("\n| setting | value | default | meaning |\n|---|---|---|---|\n");
    for setting in TRAIN_SETTINGS {
        let name = if setting.aliases.is_empty() {
            format!("`{}`", setting.name)
        } else {
            format!("`{}` (not {})", setting.name, either(setting.aliases))
        };
        let default = setting.default.map_or("required".to_string(), |d| format!("`{d}`"));
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            cell(&name),
            cell(&value_kind(setting.kind)),
            cell(&default),
            cell(setting.doc)
        ));
    }
    out.push('\n');
    out
}

/// The document with each generated region, between `<!-- NAME:start -->` and
/// `<!-- NAME:end -->`, replaced by what the compiler's tables make of it now.
fn regenerated(text: &str) -> String {
    let mut text = text.to_string();
    for (name, content) in [("builtins", builtin_tables()), ("settings", settings_table())] {
        let (start, end) = (format!("<!-- {name}:start -->"), format!("<!-- {name}:end -->"));
        let from = text.find(&start).unwrap_or_else(|| panic!("docs/language.md lacks the marker {start}"));
        let to = text.find(&end).unwrap_or_else(|| panic!("docs/language.md lacks the marker {end}"));
        assert!(from < to, "{start} must come before {end}");
        text.replace_range(from + start.len()..to, &format!("\n{content}"));
    }
    text
}

#[test]
fn the_generated_tables_are_up_to_date() {
    let text = reference();
    let updated = regenerated(&text);
    if std::env::var_os("NNC_BLESS").is_some() {
        std::fs::write(path(), &updated).expect("docs/language.md is writable");
        return;
    }
    assert!(
        updated == text,
        "the tables of built-ins or settings in docs/language.md are out of date; \
         run `NNC_BLESS=1 cargo test --test reference_examples` and read the change"
    );
}

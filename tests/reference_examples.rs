//! The language reference, `docs/language.md`, stays true: every `nn` example in it checks
//! cleanly, every `nn,error` example gives the code it names, every keyword, built-in and
//! `train` setting is documented, and its table of built-ins is generated from the
//! compiler's (run with `NNC_BLESS=1` to regenerate it, then read the change).

use nnc_compiler::analyze;
use nnc_compiler::builtins::{self, BUILTINS, Kind, TRAIN_SETTINGS};
use nnc_grammar::{KEYWORDS, render};
use std::path::Path;

const START: &str = "<!-- builtins:start -->";
const END: &str = "<!-- builtins:end -->";

fn reference() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/language.md")).unwrap()
}

/// The fenced blocks of the document with their info strings.
fn blocks(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(info) = line.strip_prefix("```")
            && !info.is_empty()
        {
            let body: Vec<&str> = lines.by_ref().take_while(|l| !l.starts_with("```")).collect();
            out.push((info.to_string(), body.join("\n") + "\n"));
        }
    }
    out
}

#[test]
fn every_example_checks() {
    let text = reference();
    let examples = blocks(&text);
    let clean: Vec<&String> = examples.iter().filter(|(info, _)| info == "nn").map(|(_, body)| body).collect();
    assert!(clean.len() >= 12, "only {} examples", clean.len());
    for body in clean {
        let analysis = analyze(body);
        assert!(
            analysis.diagnostics.is_empty(),
            "this example does not check:\n{body}\n{}",
            render(&analysis.diagnostics, "example.nn", body, false)
        );
    }
    for (_, body) in examples.iter().filter(|(info, _)| info == "nn,error") {
        let code =
            body.lines().next().and_then(|l| l.strip_prefix("// error: ")).expect("an error example names its code");
        let analysis = analyze(body);
        assert!(
            analysis.diagnostics.iter().any(|d| d.code.as_str() == code.trim()),
            "expected {code} from:\n{body}\n{}",
            render(&analysis.diagnostics, "example.nn", body, false)
        );
    }
}

#[test]
fn every_keyword_builtin_and_setting_is_documented() {
    let text = reference();
    for (keyword, _) in KEYWORDS {
        assert!(text.contains(&format!("`{keyword}`")), "keyword `{keyword}` is not documented");
    }
    for builtin in BUILTINS {
        assert!(text.contains(&format!("`{}", builtin.name)), "built-in `{}` is not documented", builtin.name);
    }
    for setting in TRAIN_SETTINGS {
        assert!(text.contains(&format!("`{}`", setting.name)), "setting `{}` is not documented", setting.name);
    }
}

fn signature(builtin: &builtins::Builtin) -> String {
    if builtin.variadic {
        return format!("`{}(d1, d2, ...)`", builtin.name);
    }
    let mut params: Vec<String> = Vec::new();
    if let Some(leading) = builtins::leading(builtin.name) {
        params.push(format!("[{}]", leading.name));
    }
    params.extend(builtin.params.iter().map(|p| match p.default {
        Some(default) => format!("{} = {default}", p.name),
        None => p.name.to_string(),
    }));
    if params.is_empty() { format!("`{}`", builtin.name) } else { format!("`{}({})`", builtin.name, params.join(", ")) }
}

fn table(out: &mut String, title: &str, note: &str, kinds: &[Kind]) {
    out.push_str(&format!("\n### {title}\n\n{note}\n\n| name | arguments | description |\n|---|---|---|\n"));
    for builtin in BUILTINS.iter().filter(|b| kinds.contains(&b.kind)) {
        let mut details: Vec<String> = Vec::new();
        if let Some(leading) = builtins::leading(builtin.name) {
            details.push(format!("`{}`: {}", leading.name, leading.doc));
        }
        details.extend(builtin.params.iter().map(|p| {
            let aliases = if p.aliases.is_empty() {
                String::new()
            } else {
                format!(
                    " (elsewhere called {})",
                    p.aliases.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
                )
            };
            format!("`{}`: {}{aliases}", p.name, p.doc)
        }));
        let details = if details.is_empty() { "-".to_string() } else { details.join("; ") };
        out.push_str(&format!("| {} | {} | {} |\n", signature(builtin), details, builtin.doc.replace('|', "\\|")));
    }
}

fn generated() -> String {
    let mut out = String::from(START);
    out.push_str("\n\nThis section is generated from the compiler's table of built-ins.\n");
    table(
        &mut out,
        "Layers with parameters",
        "Used on a line of their own in a model, or on an input: `x |> linear(10)`, `linear(x, 10)`.",
        &[Kind::Layer],
    );
    table(
        &mut out,
        "Layers without parameters",
        "Layers that can also be called as functions of their input: `relu(x)`.",
        &[Kind::Activation],
    );
    table(&mut out, "Functions", "Functions of tensors, whose first arguments are their operands.", &[Kind::Function]);
    table(
        &mut out,
        "Losses",
        "Named in a `train` block (`loss = cross_entropy`), or called on a prediction and a target.",
        &[Kind::Loss],
    );
    table(&mut out, "Optimisers", "For the `optimizer` setting of a `train` block.", &[Kind::Optimizer]);
    table(&mut out, "Data sources", "After `on` in a `train` block, or for its `test` setting.", &[Kind::DataSource]);
    table(&mut out, "Initialisers", "After `=` in a `param` statement.", &[Kind::Initializer]);
    out.push_str("\n### Settings of `train`\n\n| setting | default | meaning |\n|---|---|---|\n");
    for setting in TRAIN_SETTINGS {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            setting.name,
            setting.default.unwrap_or("required"),
            setting.doc
        ));
    }
    out.push('\n');
    out.push_str(END);
    out
}

#[test]
fn the_builtin_tables_are_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/language.md");
    let text = reference();
    let (start, end) = (text.find(START).expect("start marker"), text.find(END).expect("end marker") + END.len());
    let updated = format!("{}{}{}", &text[..start], generated(), &text[end..]);
    if std::env::var_os("NNC_BLESS").is_some() {
        std::fs::write(path, updated).unwrap();
        return;
    }
    assert!(
        updated == text,
        "the built-in tables of docs/language.md are out of date; run `NNC_BLESS=1 cargo test --test reference_examples`"
    );
}

//! Properties of the front end on arbitrary input: for random bytes, random sequences of
//! real tokens and randomly damaged example programs, `decode` and `parse` never panic,
//! every span in the tree and in the diagnostics lies inside the text, and `render` never
//! panics and draws one report per diagnostic.

use nnc_grammar::{Diagnostic, Expr, ExprKind, File, Item, KEYWORDS, Span, Stmt, decode, parse, render};
use proptest::prelude::*;

/// 256 cases per property keep this file to a few seconds in a debug build; set
/// `PROPTEST_CASES` for a longer search.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// A span that a consumer can slice the text with: ordered, inside, on character boundaries.
fn check_span(span: Span, text: &str, what: &dyn std::fmt::Debug) -> Result<(), TestCaseError> {
    prop_assert!(span.start <= span.end, "reversed span {span:?} of {what:?}");
    prop_assert!(span.end <= text.len(), "span {span:?} of {what:?} outside 0..={}", text.len());
    prop_assert!(
        text.is_char_boundary(span.start) && text.is_char_boundary(span.end),
        "span {span:?} of {what:?} splits a character"
    );
    Ok(())
}

/// Every `{"start": a, "end": b}` object in the serialised tree: each is the span of a node
/// (item, statement, expression, identifier, shape, argument, doc comment), whatever its type.
fn every_span(value: &serde_json::Value, out: &mut Vec<Span>) {
    match value {
        serde_json::Value::Object(map) => {
            if let (Some(start), Some(end)) =
                (map.get("start").and_then(|v| v.as_u64()), map.get("end").and_then(|v| v.as_u64()))
            {
                out.push(Span { start: start as usize, end: end as usize });
            }
            map.values().for_each(|child| every_span(child, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| every_span(item, out)),
        _ => {}
    }
}

/// Every expression lies inside `outer` and its children inside it, so that finding the
/// innermost node at an offset (hover, go to definition) can descend from the root.
fn check_nesting(expr: &Expr, outer: Span, has_error: &mut bool) -> Result<(), TestCaseError> {
    prop_assert!(
        outer.start <= expr.span.start && expr.span.end <= outer.end,
        "expression {:?} at {:?} outside its parent {outer:?}",
        expr.kind,
        expr.span
    );
    *has_error |= matches!(expr.kind, ExprKind::Error);
    for child in expr.children() {
        check_nesting(child, expr.span, has_error)?;
    }
    Ok(())
}

/// Items in source order without overlap, each node inside its parent. Returns whether the
/// tree holds an error node.
fn check_tree(file: &File) -> Result<bool, TestCaseError> {
    let mut has_error = false;
    let mut previous_end = 0;
    for item in &file.items {
        let span = item.span();
        prop_assert!(previous_end <= span.start, "item {span:?} overlaps the one before it");
        previous_end = span.end;
        match item {
            Item::Fn(def) => check_nesting(&def.body, span, &mut has_error)?,
            Item::Let(stmt) => check_nesting(&stmt.value, span, &mut has_error)?,
            Item::Query(query) => {
                check_nesting(&query.call, span, &mut has_error)?;
                if let Some(along) = &query.along {
                    check_nesting(along, span, &mut has_error)?;
                }
            }
            Item::Train(def) => {
                check_nesting(&def.model, span, &mut has_error)?;
                check_nesting(&def.data, span, &mut has_error)?;
                for setting in &def.settings {
                    check_nesting(&setting.value, def.body_span, &mut has_error)?;
                }
            }
            Item::Model(def) => {
                for stmt in &def.body {
                    let inner = stmt.span();
                    prop_assert!(
                        def.body_span.start <= inner.start && inner.end <= def.body_span.end,
                        "statement {inner:?} outside its body {:?}",
                        def.body_span
                    );
                    match stmt {
                        Stmt::Let(stmt) => check_nesting(&stmt.value, inner, &mut has_error)?,
                        Stmt::Expr(expr) => check_nesting(expr, inner, &mut has_error)?,
                        Stmt::Param(stmt) => {
                            if let Some(init) = &stmt.init {
                                check_nesting(init, inner, &mut has_error)?;
                            }
                        }
                        Stmt::Input(_) => {}
                        Stmt::Error(_) => has_error = true,
                    }
                }
            }
            Item::Error(_) => has_error = true,
        }
    }
    Ok(has_error)
}

fn check_diagnostics(diagnostics: &[Diagnostic], text: &str) -> Result<(), TestCaseError> {
    for diagnostic in diagnostics {
        for label in std::iter::once(&diagnostic.primary).chain(&diagnostic.secondary) {
            check_span(label.span, text, diagnostic)?;
        }
    }
    Ok(())
}

/// Parses `text` and checks everything this file promises about the result.
fn check(text: &str) -> Result<(), TestCaseError> {
    let parsed = parse(text);

    let tree = serde_json::to_value(&parsed.file).expect("the tree serialises");
    let mut spans = Vec::new();
    every_span(&tree, &mut spans);
    for span in spans {
        check_span(span, text, &"a node of the tree")?;
    }
    let has_error_node = check_tree(&parsed.file)?;
    // An error node stands for input that was reported; a silent one would hide a mistake.
    prop_assert!(
        !has_error_node || parsed.diagnostics.iter().any(Diagnostic::is_error),
        "the tree has an error node but no error was reported"
    );

    check_diagnostics(&parsed.diagnostics, text)?;
    let starts: Vec<usize> = parsed.diagnostics.iter().map(|d| d.span().start).collect();
    prop_assert!(starts.is_sorted(), "diagnostics out of source order: {starts:?}");

    let rendered = render(&parsed.diagnostics, "input.nn", text, false);
    let headers = rendered.lines().filter(|line| line.trim_start().starts_with("╭─[")).count();
    prop_assert_eq!(headers, parsed.diagnostics.len(), "one report per diagnostic in\n{}", rendered);
    Ok(())
}

/// Bytes that make up source text, so that random byte strings form tokens often.
const SOURCE_BYTES: &[u8] = b"abxyzBT_019 .,;:=+-*/^@|>()[]{}\"'\\\n\r\t#$%";

/// How files begin: plainly, or with the byte-order mark of UTF-8, UTF-16 LE or UTF-16 BE,
/// each of which `decode` treats in its own way.
const BYTE_ORDER_MARKS: &[&[u8]] = &[b"", b"", b"\xEF\xBB\xBF", b"\xFF\xFE", b"\xFE\xFF"];

/// Names, layers and misspellings of keywords.
const NAMES: &[&str] =
    &["x", "x1", "B", "T", "Mlp", "linear", "relu", "conv2d", "kernel", "loss", "größe", "α", "modle", "inptu"];
/// Numbers, in range and out of it.
const NUMBERS: &[&str] = &["0", "1", "28", "1e-3", "2.5", "1_000", "1e999", "99999999999999999999999"];
/// Strings, closed and not, and single quotes.
const STRINGS: &[&str] = &["\"s\"", "\"a\\\"b\"", "\"open", "'q'", "'"];
/// Punctuation and brackets.
const PUNCTUATION: &[&str] =
    &["(", ")", "[", "]", "{", "}", ",", ";", ":", "=", "+", "-", "*", "/", "^", "^T", "@", "|>", "->"];
/// Line structure and comments; newlines twice, for more lines.
const LAYOUT: &[&str] = &["\n", "\n", "\r\n", "\r", "\t", "//c\n", "///d\n"];
/// Characters that start no token.
const INVALID: &[&str] = &["$", "#", "%", "λ", "\u{0}", "\u{feff}", "\u{2028}"];

/// Real tokens, and the odd characters that surround them in real files.
fn vocabulary() -> Vec<&'static str> {
    let keywords = KEYWORDS.iter().map(|&(keyword, _)| keyword);
    keywords.chain([NAMES, NUMBERS, STRINGS, PUNCTUATION, LAYOUT, INVALID].concat()).collect()
}

/// The example programs, which parse without a diagnostic: a base for small damage.
fn examples() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut texts: Vec<String> = std::fs::read_dir(dir)
        .expect("the examples directory")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "nn"))
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect();
    texts.sort();
    texts
}

/// One change to a text: delete a range of characters, or insert a token.
#[derive(Clone, Debug)]
enum Damage {
    Delete(prop::sample::Index, usize),
    Insert(prop::sample::Index, &'static str),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<prop::sample::Index>(), 1usize..12).prop_map(|(at, len)| Damage::Delete(at, len)),
        (any::<prop::sample::Index>(), prop::sample::select(vocabulary())).prop_map(|(at, t)| Damage::Insert(at, t)),
    ]
}

fn apply(text: &mut String, damage: &Damage) {
    let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
    match damage {
        Damage::Delete(at, len) => {
            let from = at.index(boundaries.len());
            let to = (from + len).min(boundaries.len() - 1);
            text.replace_range(boundaries[from]..boundaries[to], "");
        }
        Damage::Insert(at, token) => text.insert_str(boundaries[at.index(boundaries.len())], token),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_bytes(
        mark in prop::sample::select(BYTE_ORDER_MARKS),
        body in prop::collection::vec(
            prop_oneof![3 => prop::sample::select(SOURCE_BYTES), 1 => any::<u8>()],
            0..2048,
        )
    ) {
        let bytes = [mark, &body].concat();
        let (text, diagnostics) = decode(&bytes);
        // Invalid bytes become spaces, so offsets in the text are offsets in the file.
        prop_assert_eq!(text.len(), bytes.len());
        check_diagnostics(&diagnostics, &text)?;
        for diagnostic in &diagnostics {
            prop_assert!(text[diagnostic.span().range()].bytes().all(|b| b == b' '));
        }
        check(&text)?;
    }

    #[test]
    fn random_tokens(tokens in prop::collection::vec(prop::sample::select(vocabulary()), 0..300)) {
        check(&tokens.join(" "))?;
        // Without spaces, neighbouring tokens run together: `1e` `-3`, `/` `/`, `-` `>`.
        check(&tokens.concat())?;
    }

    #[test]
    fn damaged_examples(which in any::<prop::sample::Index>(), damages in prop::collection::vec(damage(), 1..5)) {
        let examples = examples();
        let mut text = examples[which.index(examples.len())].clone();
        for damage in &damages {
            apply(&mut text, damage);
        }
        check(&text)?;
    }
}

#[test]
fn the_examples_parse_cleanly() {
    for text in examples() {
        let parsed = parse(&text);
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        check(&text).unwrap();
    }
}

#[test]
fn generated_programs_with_deep_structure() {
    // Alternating brackets of every kind, unbalanced both ways, and long runs of operators
    // and statements: the inputs that would overflow a recursive parser's stack.
    for n in [10, 300, 5000] {
        check(&"([{".repeat(n)).unwrap();
        check(&"}])".repeat(n)).unwrap();
        check(&format!("fn f(x) = {}x", "-(".repeat(n))).unwrap();
        check(&format!("fn f(x) = x{}", " ^ x".repeat(n))).unwrap();
        check(&format!("model M {{\n{}\n}}", "    relu\n".repeat(n))).unwrap();
        check(&format!("model M {{\n{}", "    input [B, 64]\n    {\n".repeat(n))).unwrap();
    }
}

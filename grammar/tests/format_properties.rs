//! Properties of the formatter on any input: it never panics; it formats exactly the texts
//! that parse without errors; and what it prints parses to the same tree, keeps every token
//! and comment in order, is laid out canonically, and comes back unchanged when formatted
//! again. The inputs are the repository's `.nn` files and documentation examples, copies of
//! them with their whitespace scrambled, generated programs with line breaks and comments
//! wherever the language allows them, damaged examples and random token soups.

use nnc_grammar::{Diagnostic, KEYWORDS, Span, Token, decode, format_source, lex, parse};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

/// 256 cases per property keep this file to a few seconds in a debug build; set
/// `PROPTEST_CASES` for a longer search.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

fn has_errors(text: &str) -> bool {
    parse(text).diagnostics.iter().any(Diagnostic::is_error)
}

/// The tokens of a text without its newlines, each with its text; comments without the
/// whitespace at their end, which the formatter removes.
fn tokens(text: &str) -> Vec<(std::mem::Discriminant<Token<'_>>, &str)> {
    lex(text)
        .into_iter()
        .filter(|(token, _)| *token != Token::Newline)
        .map(|(token, span)| {
            let written = &text[span.range()];
            let written = match token {
                Token::LineComment | Token::DocComment(_) => written.trim_end(),
                _ => written,
            };
            (std::mem::discriminant(&token), written)
        })
        .collect()
}

/// The syntax tree of a text without its spans, and with doc comments without the
/// whitespace at the end of their lines: what the text means.
fn tree(text: &str) -> serde_json::Value {
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.retain(|key, _| !key.ends_with("span"));
                if let Some(serde_json::Value::Object(doc)) = map.get_mut("doc")
                    && let Some(serde_json::Value::String(text)) = doc.get_mut("text")
                {
                    *text = text.lines().map(str::trim_end).collect::<Vec<_>>().join("\n");
                }
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(parse(text).file).expect("the tree serialises");
    strip(&mut value);
    value
}

/// Checks everything the formatter promises about `input`; returns the formatted text.
fn check(input: &str) -> Result<Option<String>, TestCaseError> {
    let Some(output) = format_source(input) else {
        prop_assert!(has_errors(input), "no output for a text without syntax errors:\n{}", input);
        return Ok(None);
    };
    prop_assert!(!has_errors(input), "output for a text with syntax errors:\n{}", input);
    prop_assert!(!has_errors(&output), "the output has syntax errors:\n{}\nfrom\n{}", output, input);
    prop_assert_eq!(tokens(input), tokens(&output), "tokens changed:\n{}\nfrom\n{}", output, input);
    prop_assert_eq!(tree(input), tree(&output), "meaning changed:\n{}\nfrom\n{}", output, input);
    let again = format_source(&output);
    prop_assert_eq!(again.as_deref(), Some(output.as_str()), "not idempotent; the first output:\n{}", output);

    prop_assert!(output.is_empty() || output.ends_with('\n'), "no final newline");
    prop_assert!(!output.contains("\r\n"), "a CRLF line end");
    let lines: Vec<&str> = output.lines().collect();
    prop_assert!(lines.first().is_none_or(|line| !line.is_empty()), "a blank first line");
    prop_assert!(lines.last().is_none_or(|line| !line.is_empty()), "a blank last line");
    for (number, pair) in lines.windows(2).enumerate() {
        prop_assert!(!(pair[0].is_empty() && pair[1].is_empty()), "two blank lines at line {}", number + 1);
    }
    for line in &lines {
        prop_assert_eq!(line.trim_end(), *line, "trailing whitespace");
        let indent = line.len() - line.trim_start().len();
        prop_assert!(line[..indent].bytes().all(|b| b == b' ') && indent % 4 == 0, "indentation of {:?}", line);
    }
    Ok(Some(output))
}

/// Every `.nn` file under `dir`, however deep.
fn nn_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for path in entries.filter_map(|entry| entry.ok().map(|entry| entry.path())) {
        if path.is_dir() {
            nn_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "nn") {
            out.push(path);
        }
    }
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The example programs: formatted already, and bases for scrambling and damage.
fn examples() -> Vec<String> {
    let mut paths = Vec::new();
    nn_files(&repository().join("examples"), &mut paths);
    paths.sort();
    paths.iter().map(|path| std::fs::read_to_string(path).expect("examples are UTF-8")).collect()
}

/// The ```nn blocks of the reference and the README, error examples included.
fn documentation_blocks() -> Vec<String> {
    let mut blocks = Vec::new();
    for name in ["docs/language.md", "README.md"] {
        let text = std::fs::read_to_string(repository().join(name)).expect("the documentation");
        let mut rest = text.as_str();
        while let Some(start) = rest.find("```nn") {
            let after = &rest[start..];
            let Some(body_start) = after.find('\n') else { break };
            let body = &after[body_start + 1..];
            let Some(end) = body.find("```") else { break };
            blocks.push(body[..end].to_string());
            rest = &body[end..][3..];
        }
    }
    blocks
}

#[test]
fn every_example_is_formatted_already() {
    let examples = examples();
    assert!(examples.len() >= 8);
    for text in examples {
        let output = check(&text).unwrap();
        assert_eq!(output.as_deref(), Some(text.as_str()), "an example changes when formatted");
    }
}

#[test]
fn every_documentation_example_without_errors_is_formatted_already() {
    let blocks = documentation_blocks();
    assert!(blocks.len() >= 30, "{} blocks", blocks.len());
    let mut formatted = 0;
    for block in blocks {
        if let Some(output) = check(&block).unwrap() {
            assert_eq!(output, block, "a documentation example changes when formatted");
            formatted += 1;
        }
    }
    assert!(formatted >= 25, "{formatted} blocks formatted");
}

#[test]
fn every_test_input_that_parses_formats_faithfully() {
    let mut paths = Vec::new();
    nn_files(&repository().join("tests"), &mut paths);
    nn_files(&repository().join("benches"), &mut paths);
    paths.sort();
    let mut formatted = 0;
    for path in &paths {
        let bytes = std::fs::read(path).expect("a test input");
        let (text, _) = decode(&bytes);
        match check(&text) {
            Ok(Some(_)) => formatted += 1,
            Ok(None) => {}
            Err(error) => panic!("{}: {error}", path.display()),
        }
    }
    assert!(paths.len() >= 60 && formatted >= 20, "{formatted} of {} files formatted", paths.len());
}

/// The text with a single space between code and the comment that ends its line, where
/// the formatter keeps the column the input gave it.
fn without_comment_padding(text: &str) -> String {
    let tokens = lex(text);
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for pair in tokens.windows(2) {
        let [(before, before_span), (comment, comment_span)] = pair else { continue };
        if matches!(comment, Token::LineComment | Token::DocComment(_)) && *before != Token::Newline {
            out.push_str(&text[copied..before_span.end]);
            out.push(' ');
            copied = comment_span.start;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// Random choices read one after another, from the start again when they run out.
struct Tape<'a> {
    choices: &'a [u8],
    at: usize,
}

impl Tape<'_> {
    /// One of `options`.
    fn pick<'o>(&mut self, options: &[&'o str]) -> &'o str {
        let choice = self.choices.get(self.at % self.choices.len().max(1)).copied().unwrap_or(0);
        self.at += 1;
        options[choice as usize % options.len()]
    }
}

/// Whether two tokens would run together, or a comment join the `/` before it, without a
/// space between them.
fn needs_space(before: Token<'_>, after: Token<'_>) -> bool {
    let word = |token: Token<'_>| {
        token.is_keyword() || matches!(token, Token::Ident(_) | Token::Int(_) | Token::Float(_) | Token::Str(_))
    };
    (word(before) && word(after)) || matches!(after, Token::LineComment | Token::DocComment(_))
}

/// The text with its whitespace scrambled but its line breaks kept: other spaces and tabs
/// between tokens and in front of lines, whitespace at line ends, CRLF line ends, and more
/// blank lines where there was one.
fn scramble(text: &str, tape: &mut Tape<'_>) -> String {
    let tokens: Vec<(Token<'_>, Span)> = lex(text);
    let mut out = String::new();
    for (index, &(token, span)) in tokens.iter().enumerate() {
        let before = index.checked_sub(1).map(|i| tokens[i].0);
        if token == Token::Newline {
            out.push_str(tape.pick(&["", "", " ", "\t", "  \t"]));
            out.push_str(tape.pick(&["\n", "\n", "\r\n"]));
            if tokens.get(index + 1).is_some_and(|(next, _)| *next == Token::Newline) {
                out.push_str(tape.pick(&["", "\n", " \n\t\n"]));
            }
            continue;
        }
        match before {
            None | Some(Token::Newline) => out.push_str(tape.pick(&["", "  ", "\t", "        ", " \t ", "   "])),
            Some(before) if needs_space(before, token) => out.push_str(tape.pick(&[" ", "  ", "\t"])),
            Some(_) => out.push_str(tape.pick(&["", "", " ", "  ", "\t"])),
        }
        out.push_str(&text[span.range()]);
    }
    out
}

/// A piece of a generated program.
#[derive(Clone, Debug)]
enum Piece {
    /// A token.
    Text(&'static str),
    /// A place outside brackets where a line break does not end the statement: after an
    /// operator, `,`, `=` or `:`, and before `|>`, `+`, `*`, `/`, `@` and `^`.
    Break,
    /// The end of a statement.
    End,
    /// A doc comment line before a definition.
    Doc,
}

use Piece::{Break, Doc, End, Text};

fn texts(words: &[&'static str]) -> Vec<Piece> {
    words.iter().map(|&word| Text(word)).collect()
}

const NAMES: &[&str] = &["x", "h", "w1", "B", "T", "größe", "α", "relu", "Mlp", "_x2"];
/// Names that are called: not `T`, since `x^T(1)` reads as the transpose `x^T` before `(1)`.
const CALLEES: &[&str] = &["linear", "f", "Mlp", "größe", "conv2d"];
const NUMBERS: &[&str] = &["2", "0", "0.5", "1e-3", "16", "1_000", "2.5E+2"];

fn name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(NAMES)
}

fn expression() -> BoxedStrategy<Vec<Piece>> {
    let leaf = prop_oneof![
        4 => name().prop_map(|name| vec![Text(name)]),
        3 => prop::sample::select(NUMBERS).prop_map(|number| vec![Text(number)]),
        1 => prop::sample::select(&["true", "false", "\"data/a.csv\"", "\"a // b\""][..]).prop_map(|t| vec![Text(t)]),
    ];
    leaf.prop_recursive(4, 48, 4, |inner| {
        let list = |inner: BoxedStrategy<Vec<Piece>>| {
            (prop::collection::vec(inner, 0..4), any::<bool>()).prop_map(|(items, trailing)| {
                let mut pieces = Vec::new();
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        pieces.push(Text(","));
                    }
                    pieces.extend(item.iter().cloned());
                }
                if trailing && !items.is_empty() {
                    pieces.push(Text(","));
                }
                pieces
            })
        };
        let argument = (prop::option::of(name()), inner.clone()).prop_map(|(named, value)| {
            let mut pieces = named.map(|name| vec![Text(name), Text("=")]).unwrap_or_default();
            pieces.extend(value);
            pieces
        });
        prop_oneof![
            4 => (inner.clone(), prop::sample::select(&["+", "-", "*", "/", "@", "|>", "^"][..]), inner.clone())
                .prop_map(|(lhs, op, rhs)| {
                    let mut pieces = lhs;
                    if op != "-" {
                        pieces.push(Break);
                    }
                    pieces.extend([Text(op), Break]);
                    pieces.extend(rhs);
                    pieces
                }),
            1 => inner.clone().prop_map(|operand| [vec![Text("-")], operand].concat()),
            1 => inner.clone().prop_map(|operand| [texts(&["("]), operand, texts(&[")", "^", "T"])].concat()),
            1 => inner.clone().prop_map(|operand| [texts(&["("]), operand, texts(&[")"])].concat()),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| [texts(&["("]), a, texts(&[","]), b, texts(&[")"])].concat()),
            1 => list(inner.clone()).prop_map(|items| [texts(&["["]), items, texts(&["]"])].concat()),
            2 => (prop::sample::select(CALLEES), list(argument.boxed())).prop_map(|(callee, args)| [texts(&[callee, "("]), args, texts(&[")"])].concat()),
        ]
    })
    .boxed()
}

fn shape() -> impl Strategy<Value = Vec<Piece>> {
    prop::collection::vec(expression(), 1..4).prop_map(|dims| {
        let mut pieces = texts(&["["]);
        for (index, dim) in dims.into_iter().enumerate() {
            if index > 0 {
                pieces.push(Text(","));
            }
            pieces.extend(dim);
        }
        pieces.push(Text("]"));
        pieces
    })
}

fn let_statement() -> impl Strategy<Value = Vec<Piece>> {
    (any::<bool>(), name(), expression()).prop_map(|(doc, name, value)| {
        let mut pieces = if doc { vec![Doc] } else { Vec::new() };
        pieces.extend([Text("let"), Text(name), Text("="), Break]);
        pieces.extend(value);
        pieces
    })
}

fn body_statement() -> impl Strategy<Value = Vec<Piece>> {
    prop_oneof![
        1 => (prop::option::of(name()), shape()).prop_map(|(named, shape)| {
            let mut pieces = vec![Text("input")];
            if let Some(name) = named {
                pieces.extend([Text(name), Text(":"), Break]);
            }
            pieces.extend(shape);
            pieces
        }),
        1 => (any::<bool>(), name(), shape(), prop::option::of(expression())).prop_map(|(doc, name, shape, init)| {
            let mut pieces = if doc { vec![Doc] } else { Vec::new() };
            pieces.extend([Text("param"), Text(name), Text(":")]);
            pieces.extend(shape);
            if let Some(init) = init {
                pieces.extend([Text("="), Break]);
                pieces.extend(init);
            }
            pieces
        }),
        1 => let_statement(),
        2 => expression(),
    ]
}

/// Statements in braces, each ended by a newline or by `;`.
fn body(statements: Vec<Vec<Piece>>, ends: Vec<bool>) -> Vec<Piece> {
    let mut pieces = vec![Text("{"), End];
    for (index, statement) in statements.into_iter().enumerate() {
        pieces.extend(statement);
        pieces.push(if ends.get(index).copied().unwrap_or(true) { End } else { Text(";") });
    }
    pieces.push(Text("}"));
    pieces
}

fn item() -> impl Strategy<Value = Vec<Piece>> {
    let fn_param = (name(), prop::option::of(shape())).prop_map(|(name, shape)| {
        let mut pieces = vec![Text(name)];
        if let Some(shape) = shape {
            pieces.push(Text(":"));
            pieces.extend(shape);
        }
        pieces
    });
    let model_param = (name(), prop::option::of(expression())).prop_map(|(name, default)| {
        let mut pieces = vec![Text(name)];
        if let Some(default) = default {
            pieces.push(Text("="));
            pieces.extend(default);
        }
        pieces
    });
    let setting = (prop::sample::select(&["loss", "optimizer", "epochs", "batch_size", "α"][..]), expression())
        .prop_map(|(key, value)| [texts(&[key, "="]), vec![Break], value].concat());
    let ends = || prop::collection::vec(prop::bool::weighted(0.8), 0..6);
    prop_oneof![
        (any::<bool>(), name(), prop::collection::vec(fn_param, 0..3), expression()).prop_map(
            |(doc, name, params, body)| {
                let mut pieces = if doc { vec![Doc] } else { Vec::new() };
                pieces.extend(texts(&["fn", name, "("]));
                pieces.extend(params.into_iter().enumerate().flat_map(|(index, param)| {
                    let comma = if index > 0 { texts(&[","]) } else { Vec::new() };
                    [comma, param].concat()
                }));
                pieces.extend([Text(")"), Text("="), Break]);
                pieces.extend(body);
                pieces
            }
        ),
        let_statement(),
        (
            prop::sample::select(&["eval", "grad", "jvp", "jacobian", "hessian"][..]),
            expression(),
            prop::collection::vec(name(), 0..3),
            prop::option::of(expression())
        )
            .prop_map(|(keyword, call, wrt, along)| {
                let mut pieces = vec![Text(keyword)];
                pieces.extend(call);
                for (index, name) in wrt.into_iter().enumerate() {
                    pieces.extend(if index == 0 { vec![Text("wrt")] } else { vec![Text(","), Break] });
                    pieces.push(Text(name));
                }
                if let Some(along) = along {
                    pieces.push(Text("along"));
                    pieces.extend(along);
                }
                pieces
            }),
        (
            any::<bool>(),
            prop::sample::select(&["model", "layer"][..]),
            name(),
            prop::option::of(prop::collection::vec(model_param, 0..3)),
            prop::collection::vec(body_statement(), 0..5),
            ends()
        )
            .prop_map(|(doc, keyword, name, params, statements, ends)| {
                let mut pieces = if doc { vec![Doc] } else { Vec::new() };
                pieces.extend(texts(&[keyword, name]));
                if let Some(params) = params {
                    pieces.push(Text("("));
                    for (index, param) in params.into_iter().enumerate() {
                        if index > 0 {
                            pieces.push(Text(","));
                        }
                        pieces.extend(param);
                    }
                    pieces.push(Text(")"));
                }
                pieces.extend(body(statements, ends));
                pieces
            }),
        (any::<bool>(), expression(), expression(), prop::collection::vec(setting, 0..5), ends()).prop_map(
            |(doc, model, data, settings, ends)| {
                let mut pieces = if doc { vec![Doc] } else { Vec::new() };
                pieces.push(Text("train"));
                pieces.extend(model);
                pieces.push(Text("on"));
                pieces.extend(data);
                pieces.extend(body(settings, ends));
                pieces
            }
        ),
    ]
}

/// Writes a generated program with whitespace, line breaks, blank lines and comments chosen
/// by `tape`, wherever they leave its meaning alone.
fn write_program(items: &[Vec<Piece>], tape: &mut Tape<'_>) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    let mut previous: Option<&'static str> = None;
    let mut line_start = true;
    let pieces = items.iter().flat_map(|item| item.iter().chain([&End]));
    // A doc comment after code documents the definition on the next line, which is an
    // error outside brackets; inside them it is an ordinary comment.
    let new_line = |out: &mut String, tape: &mut Tape<'_>, comment: bool, in_brackets: bool| {
        if comment && in_brackets {
            out.push_str(tape.pick(&[" // note", "   // α note  ", "\t//", " /// trailing"]));
        } else if comment {
            out.push_str(tape.pick(&[" // note", "   // α note  ", "\t//"]));
        }
        out.push_str(tape.pick(&["\n", "\n", "\n", "\r\n", "  \n"]));
    };
    for piece in pieces {
        match piece {
            Text(text) => {
                let token = lex(text).first().map(|&(token, _)| token);
                let before = previous.and_then(|previous| lex(previous).first().map(|&(token, _)| token));
                if line_start {
                    out.push_str(tape.pick(&["", "    ", "  ", "\t", "            "]));
                } else if let (Some(before), Some(token)) = (before, token) {
                    // Inside brackets a line may break anywhere, and a comment may end it.
                    if depth > 0 && tape.pick(&["", "", "", "", "break"]) == "break" {
                        let comment = tape.pick(&["", "comment"]) == "comment";
                        new_line(&mut out, tape, comment, true);
                        out.push_str(tape.pick(&["", "\t", "        ", "/// inside brackets\n", "// a line\n"]));
                    } else if needs_space(before, token) {
                        out.push_str(tape.pick(&[" ", " ", "  "]));
                    } else {
                        out.push_str(tape.pick(&["", " ", " ", "\t"]));
                    }
                }
                match *text {
                    "(" | "[" => depth += 1,
                    ")" | "]" => depth = depth.saturating_sub(1),
                    _ => {}
                }
                out.push_str(text);
                previous = Some(text);
                line_start = false;
            }
            Break => {
                if depth == 0 && !line_start && tape.pick(&["", "", "", "break"]) == "break" {
                    let comment = tape.pick(&["", "", "comment"]) == "comment";
                    new_line(&mut out, tape, comment, false);
                    line_start = true;
                }
            }
            End => {
                if !line_start {
                    let comment = tape.pick(&["", "", "comment"]) == "comment";
                    new_line(&mut out, tape, comment, false);
                }
                out.push_str(tape.pick(&["", "", "", "\n", "\n\n\n", "// between\n", "\t// between\n\n"]));
                line_start = true;
                previous = None;
            }
            Doc => {
                out.push_str(tape.pick(&["/// Documentation.\n", "    ///   spaced  \n\n", "/// α\n/// two lines\n"]));
                line_start = true;
                previous = None;
            }
        }
    }
    out
}

/// One change to a text: delete a range of characters, or insert a token.
#[derive(Clone, Debug)]
enum Damage {
    Delete(prop::sample::Index, usize),
    Insert(prop::sample::Index, &'static str),
}

const VOCABULARY: &[&str] = &[
    "x", "relu", "1", "0.5", "\"s\"", "(", ")", "[", "]", "{", "}", ",", ";", ":", "=", "+", "-", "*", "/", "^", "^T",
    "@", "|>", "->", "\n", "\r\n", "\t", "  ", "//c\n", "///d\n", "$", "'q'", "\"open",
];

fn vocabulary() -> Vec<&'static str> {
    KEYWORDS.iter().map(|&(keyword, _)| keyword).chain(VOCABULARY.iter().copied()).collect()
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

    /// Scrambling whitespace changes nothing but the columns of comments after code.
    #[test]
    fn scrambled_examples_format_back(which in any::<prop::sample::Index>(), choices in prop::collection::vec(any::<u8>(), 1..256)) {
        let mut bases = examples();
        bases.extend(documentation_blocks().into_iter().filter(|block| !has_errors(block)));
        let base = &bases[which.index(bases.len())];
        let scrambled = scramble(base, &mut Tape { choices: &choices, at: 0 });
        let output = check(&scrambled)?;
        prop_assert!(output.is_some(), "scrambling broke\n{}\ninto\n{}", base, scrambled);
        let expected = format_source(base).unwrap_or_default();
        prop_assert_eq!(
            without_comment_padding(output.as_deref().unwrap_or_default()),
            without_comment_padding(&expected),
            "scrambled:\n{}", scrambled
        );
    }

    #[test]
    fn generated_programs(items in prop::collection::vec(item(), 1..6), choices in prop::collection::vec(any::<u8>(), 1..512)) {
        let program = write_program(&items, &mut Tape { choices: &choices, at: 0 });
        let output = check(&program)?;
        prop_assert!(output.is_some(), "the generated program has syntax errors:\n{}\n{:?}", program, parse(&program).diagnostics);
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

    #[test]
    fn random_tokens(tokens in prop::collection::vec(prop::sample::select(vocabulary()), 0..200)) {
        check(&tokens.join(" "))?;
        check(&tokens.concat())?;
    }

    #[test]
    fn random_text(text in "\\PC{0,300}") {
        check(&text)?;
    }
}

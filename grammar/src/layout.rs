//! Between the lexer and the parser: reports bad tokens, balances brackets, decides which
//! newlines end a statement, and bounds how deeply the parser may nest.
//!
//! Doing these here, on a flat token list and without recursion, is what lets the parser
//! promise a tree for every input: after this pass every bracket has its partner, and no
//! expression nests deeper than [`MAX_NESTING`], so neither the parser nor any later pass
//! that walks the tree recursively can run out of stack.

use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::lexer::Token;
use crate::span::Span;

/// How deeply brackets and operators may nest in one statement. Each bracket and each
/// operator in an unbroken expression counts one level.
pub const MAX_NESTING: usize = 256;

/// How many unclosed brackets at the end of a file get a diagnostic of their own.
const MAX_UNCLOSED_REPORTS: usize = 3;

/// Turns the lexer's tokens into what the parser reads, with the diagnostics found on the way.
pub fn layout<'src>(tokens: &[(Token<'src>, Span)], source: &'src str) -> (Vec<(Token<'src>, Span)>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let cleaned = clean(tokens, &mut diagnostics);
    let balanced = balance(cleaned, source, &mut diagnostics);
    let laid_out = lines_and_depth(balanced, &mut diagnostics);
    (laid_out, diagnostics)
}

/// Reports invalid characters, unterminated strings and out-of-range numbers; drops
/// comments and invalid characters.
fn clean<'src>(tokens: &[(Token<'src>, Span)], diagnostics: &mut Vec<Diagnostic>) -> Vec<(Token<'src>, Span)> {
    let mut out = Vec::with_capacity(tokens.len());
    for &(token, span) in tokens {
        match token {
            Token::LineComment => {}
            Token::Invalid(text) => diagnostics.push(invalid_character(text, span)),
            Token::SingleQuoted(text) => {
                let inner = text.trim_start_matches('\'').trim_end_matches('\'');
                diagnostics.push(
                    Diagnostic::new(
                        Code::InvalidCharacter,
                        "strings use double quotes",
                        span,
                        "single quotes do not make a string",
                    )
                    .with_help(format!("write \"{inner}\"")),
                );
                out.push((Token::Str(text), span));
            }
            Token::UnterminatedStr(text) => {
                diagnostics.push(
                    Diagnostic::new(
                        Code::UnterminatedString,
                        "unterminated string",
                        span,
                        "this string has no closing `\"` on its line",
                    )
                    .with_help("add `\"` where the string ends; strings cannot span lines"),
                );
                out.push((Token::Str(text), span));
            }
            Token::Int(text) if parse_int(text).is_none() => {
                diagnostics.push(number_out_of_range(text, span, "an integer must be at most 18446744073709551615"));
                out.push((Token::BadNumber, span));
            }
            Token::Float(text) if parse_float(text).is_none() => {
                diagnostics.push(number_out_of_range(text, span, "a real number must be at most about 1.8e308"));
                out.push((Token::BadNumber, span));
            }
            _ => out.push((token, span)),
        }
    }
    out
}

/// The value of an integer literal, `None` if it does not fit in 64 bits.
pub fn parse_int(text: &str) -> Option<u64> {
    text.chars().filter(|&c| c != '_').collect::<String>().parse().ok()
}

/// The value of a real literal, `None` if it is infinite.
pub fn parse_float(text: &str) -> Option<f64> {
    let value: f64 = text.chars().filter(|&c| c != '_').collect::<String>().parse().ok()?;
    value.is_finite().then_some(value)
}

fn number_out_of_range(text: &str, span: Span, note: &str) -> Diagnostic {
    let shown = if text.len() > 24 { format!("{}...", &text[..21]) } else { text.to_string() };
    Diagnostic::new(
        Code::NumberOutOfRange,
        format!("number `{shown}` is too large"),
        span,
        "this number is out of range",
    )
    .with_note(note)
}

fn invalid_character(text: &str, span: Span) -> Diagnostic {
    let first = text.chars().next().unwrap_or(' ');
    let shown: String = text.chars().take(8).flat_map(char::escape_debug).collect();
    let plural = if text.chars().count() > 1 { "characters" } else { "character" };
    let help = match first {
        '\'' => Some("strings use double quotes: \"...\"".to_string()),
        '#' => Some("comments start with `//`".to_string()),
        '%' | '!' | '&' | '|' | '<' | '>' | '?' | '~' => {
            Some("the operators are `+ - * / ^ @` and `|>` (pipe)".to_string())
        }
        '.' => Some("write real numbers with a digit before the point: `0.5`".to_string()),
        c if c.is_alphabetic() => None,
        c if !c.is_ascii() && !c.is_alphanumeric() => {
            Some(format!("`{c}` (U+{:04X}) cannot appear in nnc source", c as u32))
        }
        _ => None,
    };
    Diagnostic::new(
        Code::InvalidCharacter,
        format!("invalid {plural} `{shown}`"),
        span,
        format!("no token starts with `{}`", first.escape_debug()),
    )
    .with_optional_help(help)
}

/// An opening bracket still waiting for its partner.
struct Open<'src> {
    token: Token<'src>,
    span: Span,
    /// Where a missing closer goes: before the first newline that ends a complete line.
    line_end: Option<usize>,
}

/// Pairs every bracket. A closer that closes nothing is reported and dropped; an opener
/// that is never closed is reported and closed where its line ends (for `(` and `[`) or
/// where its enclosing group ends (for `{`).
fn balance<'src>(
    tokens: Vec<(Token<'src>, Span)>,
    source: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<(Token<'src>, Span)> {
    let mut out: Vec<(Token<'src>, Span)> = Vec::with_capacity(tokens.len());
    let mut stack: Vec<Open<'src>> = Vec::new();
    // How many of each kind of opener are on the stack, so that a stray closer is found in O(1).
    let mut open_counts = [0usize; 3];
    // Synthetic closers to insert before the token at the given index of `out`.
    let mut insertions: Vec<(usize, Token<'src>, Span)> = Vec::new();
    let kind = |t: &Token<'_>| match t {
        Token::LParen | Token::RParen => 0,
        Token::LBracket | Token::RBracket => 1,
        _ => 2,
    };

    let close_unclosed = |open: Open<'src>,
                          out: &Vec<(Token<'src>, Span)>,
                          before: Option<(Token<'src>, Span)>,
                          insertions: &mut Vec<(usize, Token<'src>, Span)>,
                          report: bool,
                          diagnostics: &mut Vec<Diagnostic>| {
        let closer = open.token.closer().expect("only openers are on the stack");
        let index = open.line_end.unwrap_or(out.len());
        let at =
            if index < out.len() { out[index].1.start } else { before.map_or(source.len(), |(_, span)| span.start) };
        insertions.push((index, closer, Span::point(at)));
        if report {
            let open_text = open.token.text().unwrap_or("?");
            let close_text = closer.text().unwrap_or("?");
            let (where_, label_span) =
                if let (Token::LBrace, true, Some((token, span))) = (open.token, index < out.len(), before) {
                    (format!("before {}", token.describe()), span)
                } else if index < out.len() {
                    ("before the end of its line".to_string(), last_token_before(out, index).unwrap_or(open.span))
                } else if let Some((token, span)) = before {
                    (format!("before {}", token.describe()), span)
                } else {
                    ("before the end of the file".to_string(), Span::point(source.len()))
                };
            diagnostics.push(
                Diagnostic::new(
                    Code::UnclosedDelimiter,
                    format!("expected `{close_text}` to close the `{open_text}` opened here"),
                    open.span,
                    format!("this `{open_text}` is never closed"),
                )
                .with_secondary(label_span, format!("expected `{close_text}` {where_}"))
                .with_help(format!("add `{close_text}` {where_}")),
            );
        }
    };

    for (token, span) in tokens {
        if token.closer().is_some() {
            open_counts[kind(&token)] += 1;
            stack.push(Open { token, span, line_end: None });
            out.push((token, span));
        } else if token.is_closer() {
            if open_counts[kind(&token)] == 0 {
                let text = token.text().unwrap_or("?");
                let mut diagnostic = Diagnostic::new(
                    Code::UnexpectedCloser,
                    format!("unexpected `{text}`"),
                    span,
                    format!("this `{text}` closes nothing"),
                );
                diagnostic = match stack.last() {
                    Some(open) => diagnostic.with_secondary(
                        open.span,
                        format!("the innermost open bracket is this `{}`", open.token.text().unwrap_or("?")),
                    ),
                    None => diagnostic.with_help(format!("remove this `{text}`")),
                };
                diagnostics.push(diagnostic);
                continue;
            }
            // Close every opener above the matching one: they were never closed.
            while let Some(open) = stack.pop() {
                open_counts[kind(&open.token)] -= 1;
                if open.token.closer() == Some(token) {
                    break;
                }
                close_unclosed(open, &out, Some((token, span)), &mut insertions, true, diagnostics);
            }
            out.push((token, span));
        } else {
            // An item keyword at the start of a line cannot be inside any bracket: whatever
            // is still open was left unclosed before it.
            let starts_item = matches!(
                token,
                Token::Fn
                    | Token::Model
                    | Token::Layer
                    | Token::Train
                    | Token::Eval
                    | Token::Grad
                    | Token::Jvp
                    | Token::Jacobian
                    | Token::Hessian
            );
            if starts_item && out.last().is_some_and(|(t, _)| *t == Token::Newline) {
                // Close before the blank lines that precede the item.
                let mut at = out.len();
                while at > 0 && out[at - 1].0 == Token::Newline {
                    at -= 1;
                }
                while let Some(mut open) = stack.pop() {
                    open_counts[kind(&open.token)] -= 1;
                    if open.token == Token::LBrace || open.line_end.is_none_or(|end| end > at) {
                        open.line_end = Some(at);
                    }
                    close_unclosed(open, &out, Some((token, span)), &mut insertions, true, diagnostics);
                }
            }
            if token == Token::Newline
                && let Some(open) = stack.last_mut()
                && open.line_end.is_none()
                && open.token != Token::LBrace
                && !out.last().is_some_and(|(prev, _)| continues_line(prev))
            {
                open.line_end = Some(out.len());
            }
            out.push((token, span));
        }
    }
    let unclosed = stack.len();
    for (n, open) in stack.into_iter().rev().enumerate() {
        close_unclosed(open, &out, None, &mut insertions, n < MAX_UNCLOSED_REPORTS, diagnostics);
    }
    if unclosed > MAX_UNCLOSED_REPORTS
        && let Some(last) = diagnostics.last_mut()
    {
        last.notes.push(format!("{} more brackets before it are not closed either", unclosed - MAX_UNCLOSED_REPORTS));
    }
    if insertions.is_empty() {
        return out;
    }
    // Insert all synthetic closers in one merge; equal indices keep the order they were
    // made in, which is innermost first.
    insertions.sort_by_key(|&(index, _, _)| index);
    let mut merged = Vec::with_capacity(out.len() + insertions.len());
    let mut pending = insertions.into_iter().peekable();
    for (index, token) in out.into_iter().enumerate() {
        while let Some((_, closer, span)) = pending.next_if(|&(at, _, _)| at == index) {
            merged.push((closer, span));
        }
        merged.push(token);
    }
    merged.extend(pending.map(|(_, closer, span)| (closer, span)));
    merged
}

fn last_token_before(out: &[(Token<'_>, Span)], index: usize) -> Option<Span> {
    out[..index].iter().rev().find(|(token, _)| *token != Token::Newline).map(|&(_, span)| span)
}

/// Whether a line that ends with `token` goes on on the next line.
pub(crate) fn continues_line(token: &Token<'_>) -> bool {
    matches!(
        token,
        Token::Comma
            | Token::Eq
            | Token::Colon
            | Token::Plus
            | Token::Minus
            | Token::Star
            | Token::Slash
            | Token::Caret
            | Token::At
            | Token::Pipe
            | Token::Arrow
            | Token::LParen
            | Token::LBracket
    )
}

/// Whether a line that starts with `token` continues the line before it.
pub(crate) fn continues_previous_line(token: &Token<'_>) -> bool {
    matches!(token, Token::Pipe | Token::Plus | Token::Star | Token::Slash | Token::At | Token::Caret)
}

/// Whether `token` can only begin a statement or end a block, never continue an expression.
pub(crate) fn starts_statement(token: &Token<'_>) -> bool {
    matches!(
        token,
        Token::Fn
            | Token::Model
            | Token::Layer
            | Token::Input
            | Token::Param
            | Token::Let
            | Token::Eval
            | Token::Grad
            | Token::Jvp
            | Token::Jacobian
            | Token::Hessian
            | Token::Train
            | Token::DocComment(_)
            | Token::RBrace
    )
}

fn is_operator(token: &Token<'_>) -> bool {
    matches!(token, Token::Plus | Token::Minus | Token::Star | Token::Slash | Token::Caret | Token::At | Token::Pipe)
}

fn is_separator(token: &Token<'_>) -> bool {
    matches!(token, Token::Comma | Token::Semi | Token::Eq | Token::Colon | Token::Arrow)
}

/// One bracket group being laid out, with the operators seen in it since its last separator.
struct Group {
    is_brace: bool,
    operators: usize,
}

/// Keeps the newlines that end statements (outside `(` and `[`, not continued by an
/// operator), drops doc comments that document nothing, and cuts expressions that nest
/// deeper than [`MAX_NESTING`].
fn lines_and_depth<'src>(
    tokens: Vec<(Token<'src>, Span)>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<(Token<'src>, Span)> {
    let mut out: Vec<(Token<'src>, Span)> = Vec::with_capacity(tokens.len());
    // The top level behaves like a brace group: newlines separate statements there.
    let mut groups = vec![Group { is_brace: true, operators: 0 }];
    let mut depth = 0usize;
    let mut doc_run: Option<(usize, bool)> = None;
    let mut i = 0;
    while i < tokens.len() {
        let (token, span) = tokens[i];
        let in_brace = groups.last().is_some_and(|g| g.is_brace);
        match token {
            Token::Newline | Token::DocComment(_) if !in_brace => {}
            // A doc comment documents the definition after it; before anything else it is
            // an ordinary comment.
            Token::DocComment(_) if !documents_something(&tokens, i, &mut doc_run) => {}
            Token::Newline => {
                let previous = out.last().map(|(t, _)| *t);
                let next = tokens[i + 1..].iter().map(|(t, _)| *t).find(|t| !matches!(t, Token::Newline));
                // A line that starts with a statement keyword starts a statement, even after
                // a line that ends with an operator: that line is unfinished, not continued.
                let starts_statement = next.as_ref().is_some_and(starts_statement);
                let continued = !starts_statement
                    && (previous.as_ref().is_some_and(continues_line)
                        || next.as_ref().is_some_and(continues_previous_line));
                if !continued {
                    let group = groups.last_mut().expect("the top level is never popped");
                    depth -= group.operators;
                    group.operators = 0;
                    if previous.is_some_and(|t| t != Token::Newline && t != Token::LBrace) {
                        out.push((token, span));
                    }
                }
            }
            Token::LParen | Token::LBracket | Token::LBrace => {
                if depth + 1 > MAX_NESTING {
                    // Keep the brackets, replace what is inside by one placeholder.
                    let end = matching_closer(&tokens, i);
                    diagnostics
                        .push(too_deep(span, tokens[i + 1..end].iter().map(|(_, s)| *s).fold(span, Span::cover)));
                    out.push((token, span));
                    let inner =
                        if end > i + 1 { tokens[i + 1].1.cover(tokens[end - 1].1) } else { Span::point(span.end) };
                    out.push((Token::TooDeep, inner));
                    if end < tokens.len() {
                        out.push(tokens[end]);
                    }
                    i = end + 1;
                    continue;
                }
                depth += 1;
                groups.push(Group { is_brace: token == Token::LBrace, operators: 0 });
                out.push((token, span));
            }
            Token::RParen | Token::RBracket | Token::RBrace => {
                // Balanced by `balance`, so there is always a group to close.
                if groups.len() > 1 {
                    let group = groups.pop().expect("checked above");
                    depth -= group.operators + 1;
                }
                if token == Token::RBrace && out.last().is_some_and(|(t, _)| *t == Token::Newline) {
                    out.pop();
                }
                out.push((token, span));
            }
            _ if is_operator(&token) => {
                let group = groups.last_mut().expect("the top level is never popped");
                group.operators += 1;
                depth += 1;
                out.push((token, span));
                if depth > MAX_NESTING {
                    // Replace the rest of this expression by one placeholder.
                    let end = end_of_expression(&tokens, i + 1, in_brace);
                    let rest =
                        if end > i + 1 { tokens[i + 1].1.cover(tokens[end - 1].1) } else { Span::point(span.end) };
                    diagnostics.push(too_deep(span, rest));
                    out.push((Token::TooDeep, rest));
                    i = end;
                    continue;
                }
            }
            _ => {
                if is_separator(&token) {
                    let group = groups.last_mut().expect("the top level is never popped");
                    depth -= group.operators;
                    group.operators = 0;
                }
                out.push((token, span));
            }
        }
        i += 1;
    }
    out
}

/// Whether the doc comment at `i` is followed (past newlines and more doc lines) by a
/// definition it can document. `run` caches the answer for the rest of a run of doc lines,
/// so a file of many doc lines is read once.
fn documents_something(tokens: &[(Token<'_>, Span)], i: usize, run: &mut Option<(usize, bool)>) -> bool {
    if let Some((until, answer)) = *run
        && i < until
    {
        return answer;
    }
    let next = tokens[i + 1..]
        .iter()
        .position(|(t, _)| !matches!(t, Token::Newline | Token::DocComment(_)))
        .map(|k| i + 1 + k);
    let answer = next.is_some_and(|j| {
        matches!(tokens[j].0, Token::Fn | Token::Model | Token::Layer | Token::Let | Token::Param | Token::Train)
    });
    *run = Some((next.unwrap_or(tokens.len()), answer));
    answer
}

fn too_deep(at: Span, rest: Span) -> Diagnostic {
    Diagnostic::new(
        Code::NestingTooDeep,
        format!("nesting too deep: this expression nests more than {MAX_NESTING} levels"),
        at,
        format!("level {} starts here", MAX_NESTING + 1),
    )
    .with_secondary(rest, "this part was not parsed")
    .with_help("split the expression into steps with `let` bindings")
}

/// The index of the closer that matches the opener at `open` (brackets are balanced), or
/// the end of the tokens.
fn matching_closer(tokens: &[(Token<'_>, Span)], open: usize) -> usize {
    let mut nesting = 0usize;
    for (index, (token, _)) in tokens.iter().enumerate().skip(open) {
        if token.closer().is_some() {
            nesting += 1;
        } else if token.is_closer() {
            nesting -= 1;
            if nesting == 0 {
                return index;
            }
        }
    }
    tokens.len()
}

/// The index of the first token from `start` on that ends the expression there: a
/// separator or (in a brace group or at the top level) a newline outside brackets, or the
/// closer of the group.
fn end_of_expression(tokens: &[(Token<'_>, Span)], start: usize, stop_at_newline: bool) -> usize {
    let mut nesting = 0usize;
    for (index, (token, _)) in tokens.iter().enumerate().skip(start) {
        if token.closer().is_some() {
            nesting += 1;
        } else if token.is_closer() {
            if nesting == 0 {
                return index;
            }
            nesting -= 1;
        } else if nesting == 0 && (is_separator(token) || (stop_at_newline && *token == Token::Newline)) {
            return index;
        }
    }
    tokens.len()
}

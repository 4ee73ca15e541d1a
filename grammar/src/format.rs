//! The source formatter behind `nnc fmt` and the language server: reprints a `.nn` text in
//! the one canonical style, keeping every token, comment and line break.
//!
//! It works on the lexer's tokens, which include comments and newlines, so nothing written
//! can be lost: each line of the input that holds a token becomes one line of the output,
//! with the same tokens in the same order. Only whitespace changes:
//!
//! - Indentation is four spaces a level. The lines inside a body or a bracket group are one
//!   level deeper than the line that opened it, and the line that closes it goes back to
//!   that line's level. A statement continued on further lines (after a line that ends with
//!   an operator, `,`, `=` or `:`, or with lines that start with `|>` or another binary
//!   operator) indents them one level. A comment on a line of its own takes the indentation
//!   of the code line after it.
//! - Between tokens: one space around binary operators, `=` and `|>`, and after `,` `;` `:`;
//!   none inside brackets, before `,` `;` `:` `)` `]`, after a negation, around `^` (`x^2`,
//!   `w^T`), between a name and the `(` of its call, and around a `/` that joins two numbers
//!   into a fraction (`scale = 1/16`).
//! - The `=` of a train block's settings written one a line line up; a blank line starts a
//!   new run.
//! - A comment after code keeps its column when the code leaves room for it, and otherwise
//!   follows the code after one space, so comments aligned by hand stay aligned.
//! - Blank lines: at most one in a row, none at the start or the end of the file, none right
//!   after a line that opens a group nor right before a line that closes one, and exactly one
//!   on each side of an item with a body (`model`, `layer`, `train`), placed before the
//!   comments that lead into it.
//!
//! Meaning cannot change: the layout pass decides where statements end from the tokens and
//! the line breaks alone, and both are kept. The syntax tree is consulted only for what the
//! tokens do not say: which `-` negates, which `/` joins two numbers, and which `=` belongs
//! to a setting.

use crate::ast::{BinaryOp, Expr, ExprKind, File, Item, Shape, Stmt};
use crate::diagnostic::Diagnostic;
use crate::layout::{continues_line, continues_previous_line, starts_statement};
use crate::lexer::{Token, lex};
use crate::span::Span;
use std::collections::{HashMap, HashSet};
use std::ops::Range;

/// One level of indentation.
const INDENT: &str = "    ";

/// Where tab stops are when measuring the column of a comment in the input.
const TAB_WIDTH: usize = 4;

/// Formats a source text; None when the text has syntax errors (the caller reports the parser's diagnostics instead).
pub fn format_source(text: &str) -> Option<String> {
    let parsed = crate::parse(text);
    if parsed.diagnostics.iter().any(Diagnostic::is_error) {
        return None;
    }
    let tokens = lex(text);
    let lines = split_lines(&tokens);
    let indents = indentation(&lines, &tokens);
    let blank_before = blank_lines(&lines, &tokens, &parsed.file);
    let marks = Marks::new(&parsed.file, &tokens, &lines, &blank_before);
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for (index, line) in lines.iter().enumerate() {
        if blank_before[index] {
            out.push('\n');
        }
        render_line(&mut out, text, &tokens, line, indents[index], &marks);
        out.push('\n');
    }
    Some(out)
}

/// A line of the input that holds at least one token.
struct Line {
    /// The byte offset where the line starts in the input.
    start: usize,
    /// The line's tokens (indices into the token list), its comment at the end excluded.
    /// Empty for a line that holds only a comment.
    code: Range<usize>,
    /// A comment that ends the line: after code, or alone on the line.
    comment: Option<usize>,
    /// Whether blank lines stand between this line and the line before it.
    blank_before: bool,
}

impl Line {
    /// The index of the line's first token.
    fn first_token(&self) -> usize {
        if self.code.is_empty() { self.comment.unwrap_or(self.code.start) } else { self.code.start }
    }

    /// A line with nothing but a comment or doc comment, which leads into what follows it.
    fn is_comment(&self, tokens: &[(Token<'_>, Span)]) -> bool {
        self.code.is_empty() || (self.code.len() == 1 && matches!(tokens[self.code.start].0, Token::DocComment(_)))
    }
}

/// Splits the tokens into lines, dropping blank ones but remembering where they were.
fn split_lines(tokens: &[(Token<'_>, Span)]) -> Vec<Line> {
    let mut lines: Vec<Line> = Vec::new();
    let mut first = 0;
    let mut line_start = 0;
    // Newlines since the last line with a token ended; two or more make a blank line.
    let mut newlines = 0usize;
    let finish = |lines: &mut Vec<Line>, range: Range<usize>, start: usize, newlines: usize| {
        if range.is_empty() {
            return;
        }
        // Comments run to the end of the line, so only the last token can be one.
        let last = range.end - 1;
        let (code, comment) = match tokens[last].0 {
            Token::LineComment => (range.start..last, Some(last)),
            Token::DocComment(_) if range.len() > 1 => (range.start..last, Some(last)),
            _ => (range, None),
        };
        let blank_before = !lines.is_empty() && newlines >= 2;
        lines.push(Line { start, code, comment, blank_before });
    };
    for (index, &(token, span)) in tokens.iter().enumerate() {
        if token == Token::Newline {
            if index > first {
                finish(&mut lines, first..index, line_start, newlines);
                newlines = 0;
            }
            newlines += 1;
            first = index + 1;
            line_start = span.end;
        }
    }
    finish(&mut lines, first..tokens.len(), line_start, newlines);
    lines
}

/// A body or bracket group open at some line, or the top level of the file.
struct Group {
    /// Whether newlines separate statements in it: in a body and at the top level, not
    /// inside `(...)` and `[...]`.
    statements: bool,
    /// The indentation of the line that opened it, where its closer goes.
    outer: usize,
    /// The indentation of the lines inside it.
    inner: usize,
    /// The indentation of the line where the statement being read started.
    statement: usize,
}

/// The indentation level of every line.
fn indentation(lines: &[Line], tokens: &[(Token<'_>, Span)]) -> Vec<usize> {
    let mut indents = vec![0; lines.len()];
    let mut groups = vec![Group { statements: true, outer: 0, inner: 0, statement: 0 }];
    // The last token of code before the current line, as the layout pass sees it.
    let mut previous: Option<Token<'_>> = None;
    // Comment lines seen since the last code line: they take the indentation of the next.
    let mut waiting: Vec<usize> = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if line.code.is_empty() {
            waiting.push(index);
            continue;
        }
        let first = tokens[line.code.start].0;
        let Some(group) = groups.last_mut() else { break };
        let indent = if first.is_closer() {
            group.outer
        } else if !group.statements {
            group.inner
        } else if continues(previous, first) {
            group.statement + 1
        } else {
            group.statement = group.inner;
            group.inner
        };
        // A comment before a closing line belongs inside the group it closes.
        let comment_indent = if first.is_closer() { group.inner } else { indent };
        for waiting_index in waiting.drain(..) {
            indents[waiting_index] = comment_indent;
        }
        indents[index] = indent;
        for &(token, _) in &tokens[line.code.clone()] {
            if token.closer().is_some() {
                let inner = indent + 1;
                groups.push(Group { statements: token == Token::LBrace, outer: indent, inner, statement: inner });
            } else if token.is_closer() && groups.len() > 1 {
                groups.pop();
            }
            previous = Some(token);
        }
    }
    let inner = groups.last().map_or(0, |group| group.inner);
    for waiting_index in waiting {
        indents[waiting_index] = inner;
    }
    indents
}

/// Whether a line that starts with `first` goes on with the statement of the line before,
/// by the rules of the layout pass; `previous` is the last token of code before it.
fn continues(previous: Option<Token<'_>>, first: Token<'_>) -> bool {
    // The first line of the file starts a statement.
    previous.is_some_and(|previous| {
        !starts_statement(&first) && (continues_line(&previous) || continues_previous_line(&first))
    })
}

/// Whether a blank line goes before each line.
fn blank_lines(lines: &[Line], tokens: &[(Token<'_>, Span)], file: &File) -> Vec<bool> {
    let mut blank: Vec<bool> = lines.iter().map(|line| line.blank_before).collect();
    for index in 1..lines.len() {
        let opens = lines[index - 1].code.clone().last().is_some_and(|last| tokens[last].0.closer().is_some());
        let closes = lines[index].code.clone().next().is_some_and(|first| tokens[first].0.is_closer());
        if opens || closes {
            blank[index] = false;
        }
    }
    let line_of = |offset: usize| line_at(lines, tokens, offset);
    for (at, item) in file.items.iter().enumerate() {
        if !matches!(item, Item::Model(_) | Item::Train(_)) {
            continue;
        }
        let span = item.span();
        let first_line = line_of(span.start);
        let last_line = line_of(span.end.saturating_sub(1));
        let shares_first_line = at
            .checked_sub(1)
            .and_then(|before| file.items.get(before))
            .is_some_and(|before| line_of(before.span().end.saturating_sub(1)) == first_line);
        let shares_last_line = file.items.get(at + 1).is_some_and(|after| line_of(after.span().start) == last_line);
        if !shares_first_line {
            // The comment lines right above the item, with no blank line between, lead into it.
            let mut start = first_line;
            while start > 0 && !blank[start] && lines[start - 1].is_comment(tokens) {
                start -= 1;
            }
            if start > 0 {
                blank[start] = true;
            }
        }
        if !shares_last_line && last_line + 1 < lines.len() {
            blank[last_line + 1] = true;
        }
    }
    blank
}

/// The index of the line that holds the token starting at `offset` (or the line before it).
fn line_at(lines: &[Line], tokens: &[(Token<'_>, Span)], offset: usize) -> usize {
    lines.partition_point(|line| tokens[line.first_token()].1.start <= offset).saturating_sub(1)
}

/// What the syntax tree says about single tokens, by their offsets in the input.
struct Marks {
    /// `-` tokens that negate rather than subtract.
    negations: HashSet<usize>,
    /// `/` tokens between two numbers, written as a fraction.
    fractions: HashSet<usize>,
    /// The spaces before each `=` of a setting that lines up with its neighbours.
    setting_gaps: HashMap<usize, usize>,
}

impl Marks {
    fn new(file: &File, tokens: &[(Token<'_>, Span)], lines: &[Line], blank_before: &[bool]) -> Self {
        let mut marks = Marks { negations: HashSet::new(), fractions: HashSet::new(), setting_gaps: HashMap::new() };
        each_expression(file, &mut |expr| match &expr.kind {
            ExprKind::Neg(_) => {
                marks.negations.insert(expr.span.start);
            }
            ExprKind::Binary { op: BinaryOp::Div, lhs, rhs } if is_number(lhs) && is_number(rhs) => {
                let from = tokens.partition_point(|(_, span)| span.start < lhs.span.end);
                let slash = tokens[from..]
                    .iter()
                    .take_while(|(_, span)| span.start < rhs.span.start)
                    .find(|(token, _)| *token == Token::Slash);
                if let Some((_, span)) = slash {
                    marks.fractions.insert(span.start);
                }
            }
            _ => {}
        });
        for item in &file.items {
            if let Item::Train(train) = item {
                marks.align_settings(train.settings.iter().map(|setting| &setting.key), tokens, lines, blank_before);
            }
        }
        marks
    }

    /// Lines up the `=` of settings that start their lines, in runs of lines without a
    /// blank line between them: each `=` goes one space after the longest key of its run.
    fn align_settings<'a>(
        &mut self,
        keys: impl Iterator<Item = &'a crate::ast::Ident>,
        tokens: &[(Token<'_>, Span)],
        lines: &[Line],
        blank_before: &[bool],
    ) {
        // (line, width of the key, offset of the `=`) of each setting in the current run.
        let mut run: Vec<(usize, usize, usize)> = Vec::new();
        for key in keys {
            let index = tokens.partition_point(|(_, span)| span.start < key.span.start);
            let line = line_at(lines, tokens, key.span.start);
            let starts_line = lines.get(line).is_some_and(|line| line.code.start == index && !line.code.is_empty());
            let equals = tokens.get(index + 1).filter(|(token, _)| *token == Token::Eq);
            let (true, Some(&(_, equals))) = (starts_line, equals) else { continue };
            if let Some(&(last_line, _, _)) = run.last()
                && blank_before.get(last_line + 1..=line).is_none_or(|between| between.contains(&true))
            {
                self.finish_run(&mut run);
            }
            run.push((line, key.name.chars().count(), equals.start));
        }
        self.finish_run(&mut run);
    }

    fn finish_run(&mut self, run: &mut Vec<(usize, usize, usize)>) {
        let longest = run.iter().map(|&(_, width, _)| width).max().unwrap_or(0);
        for (_, width, equals) in run.drain(..) {
            self.setting_gaps.insert(equals, longest - width + 1);
        }
    }
}

/// A number, or a negated one: an operand of a fraction such as `1/16` or `-1/2`.
fn is_number(expr: &Expr) -> bool {
    match &expr.kind {
        ExprKind::Int(_) | ExprKind::Float(_) => true,
        ExprKind::Neg(inner) => matches!(inner.kind, ExprKind::Int(_) | ExprKind::Float(_)),
        _ => false,
    }
}

/// Calls `visit` on every expression of the file, outermost first.
fn each_expression<'a>(file: &'a File, visit: &mut impl FnMut(&'a Expr)) {
    fn shape<'a>(shape: &'a Shape, visit: &mut impl FnMut(&'a Expr)) {
        for dim in &shape.dims {
            dim.walk(visit);
        }
    }
    for item in &file.items {
        match item {
            Item::Fn(def) => {
                for param in &def.params {
                    if let Some(dims) = &param.shape {
                        shape(dims, visit);
                    }
                }
                def.body.walk(visit);
            }
            Item::Model(def) => {
                for param in &def.params {
                    if let Some(default) = &param.default {
                        default.walk(visit);
                    }
                }
                for stmt in &def.body {
                    match stmt {
                        Stmt::Input(input) => shape(&input.shape, visit),
                        Stmt::Param(param) => {
                            shape(&param.shape, visit);
                            if let Some(init) = &param.init {
                                init.walk(visit);
                            }
                        }
                        Stmt::Let(stmt) => stmt.value.walk(visit),
                        Stmt::Expr(expr) => expr.walk(visit),
                        Stmt::Error(_) => {}
                    }
                }
            }
            Item::Let(stmt) => stmt.value.walk(visit),
            Item::Query(query) => {
                query.call.walk(visit);
                if let Some(along) = &query.along {
                    along.walk(visit);
                }
            }
            Item::Train(def) => {
                def.model.walk(visit);
                def.data.walk(visit);
                for setting in &def.settings {
                    setting.value.walk(visit);
                }
            }
            Item::Error(_) => {}
        }
    }
}

/// Appends one line, without its newline: indentation, the tokens with canonical spaces
/// between them, and the comment that ends it.
fn render_line(out: &mut String, text: &str, tokens: &[(Token<'_>, Span)], line: &Line, indent: usize, marks: &Marks) {
    let line_begin = out.len();
    for _ in 0..indent {
        out.push_str(INDENT);
    }
    let mut previous: Option<(Token<'_>, Span)> = None;
    for &(token, span) in &tokens[line.code.clone()] {
        if let Some(previous) = previous {
            push_spaces(out, gap(previous, (token, span), marks));
        }
        out.push_str(token_text(text, token, span));
        previous = Some((token, span));
    }
    if let Some(comment) = line.comment {
        let (token, span) = tokens[comment];
        if !line.code.is_empty() {
            let width = display_width(&out[line_begin..]);
            let column = display_width(&text[line.start..span.start]);
            push_spaces(out, if column > width { column - width } else { 1 });
        }
        out.push_str(token_text(text, token, span));
    }
}

/// The text of a token as it is printed: as written, and for comments without the
/// whitespace (or carriage return) at their end.
fn token_text<'t>(text: &'t str, token: Token<'_>, span: Span) -> &'t str {
    let written = &text[span.range()];
    match token {
        Token::LineComment | Token::DocComment(_) => written.trim_end(),
        _ => written,
    }
}

fn push_spaces(out: &mut String, count: usize) {
    out.extend(std::iter::repeat_n(' ', count));
}

/// The column a text reaches, counting characters, with tabs to the next multiple of
/// [`TAB_WIDTH`].
fn display_width(text: &str) -> usize {
    text.chars().fold(0, |width, c| if c == '\t' { width + TAB_WIDTH - width % TAB_WIDTH } else { width + 1 })
}

/// How many spaces go between two tokens of one line.
fn gap(previous: (Token<'_>, Span), next: (Token<'_>, Span), marks: &Marks) -> usize {
    use Token::*;
    let ((before, before_span), (after, after_span)) = (previous, next);
    if after == Eq
        && let Some(&spaces) = marks.setting_gaps.get(&after_span.start)
    {
        return spaces;
    }
    let tight_after = match before {
        LParen | LBracket | Caret => true,
        Minus => marks.negations.contains(&before_span.start),
        Slash => marks.fractions.contains(&before_span.start),
        _ => false,
    };
    let tight_before = match after {
        RParen | RBracket | Comma | Semi | Colon | Caret => true,
        Slash => marks.fractions.contains(&after_span.start),
        // A call: the name and its arguments.
        LParen => matches!(before, Ident(_)),
        _ => false,
    };
    match (before, after) {
        (LBrace, RBrace) => 0,
        (LBrace, _) | (_, LBrace | RBrace) => 1,
        _ if tight_after || tight_before => 0,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The formatted text of a source that has no syntax errors.
    fn format(source: &str) -> String {
        match format_source(source) {
            Some(formatted) => formatted,
            None => panic!("{source:?} has syntax errors: {:?}", crate::parse(source).diagnostics),
        }
    }

    /// Formats `messy`, expects `formatted`, and expects `formatted` to stay as it is.
    #[track_caller]
    fn assert_formats(messy: &str, formatted: &str) {
        assert_eq!(format(messy), formatted, "formatting\n{messy}");
        assert_eq!(format(formatted), formatted, "formatting the formatted text again");
    }

    #[test]
    fn the_examples_are_already_formatted() {
        for (name, text) in [
            ("conv_exercises", include_str!("../../examples/conv_exercises.nn")),
            ("digits_cnn", include_str!("../../examples/digits_cnn.nn")),
            ("digits_mlp", include_str!("../../examples/digits_mlp.nn")),
            ("iris", include_str!("../../examples/iris.nn")),
            ("lecture", include_str!("../../examples/lecture.nn")),
            ("mnist", include_str!("../../examples/mnist.nn")),
            ("residual", include_str!("../../examples/residual.nn")),
            ("xor", include_str!("../../examples/xor.nn")),
        ] {
            assert_eq!(format(text), text, "examples/{name}.nn");
        }
    }

    #[test]
    fn models_and_layer_lines() {
        assert_formats(
            "model   Mlp( hidden=32,classes =10 ){\ninput [ B,64 ]\n  linear( hidden )\n\t\trelu\n        linear(classes)\n}\n",
            "model Mlp(hidden = 32, classes = 10) {\n    input [B, 64]\n    linear(hidden)\n    relu\n    linear(classes)\n}\n",
        );
        assert_formats(
            "layer Logistic(out){\n  input x:[B,in]\n  param w:[out,in]=normal(0,0.01)\n  param b : [out] = zeros\n  sigmoid(x@w ^ T+b)\n}\n",
            "layer Logistic(out) {\n    input x: [B, in]\n    param w: [out, in] = normal(0, 0.01)\n    param b: [out] = zeros\n    sigmoid(x @ w^T + b)\n}\n",
        );
        // A body on one line keeps its line, with one space inside the braces.
        assert_formats("model M {input [B,2];linear(1)}\n", "model M { input [B, 2]; linear(1) }\n");
    }

    #[test]
    fn named_arguments_pairs_and_trailing_commas() {
        assert_formats(
            "model Wide {\n    input [B, 3, 32, 64]\n    conv2d(16,kernel=(3,6) , stride = ( 1,2 ),pad=(1, 2),)\n    linear(10,bias=false)\n    maxpool(kernel = (3,))\n}\n",
            "model Wide {\n    input [B, 3, 32, 64]\n    conv2d(16, kernel = (3, 6), stride = (1, 2), pad = (1, 2),)\n    linear(10, bias = false)\n    maxpool(kernel = (3,))\n}\n",
        );
    }

    #[test]
    fn functions_operators_negation_and_powers() {
        assert_formats(
            "fn f(x1,x2)=ln(x1)+x1*x2-sin(x2)\nfn mse2(y:[N],t:[N])=mean((y-t) ^ 2)\n",
            "fn f(x1, x2) = ln(x1) + x1 * x2 - sin(x2)\nfn mse2(y: [N], t: [N]) = mean((y - t)^2)\n",
        );
        assert_formats(
            "fn p(x) = - x ^ 2 + 2 ^ - 1 - - x * -(x)\nfn q(x) = --x\n",
            "fn p(x) = -x^2 + 2^-1 - -x * -(x)\nfn q(x) = --x\n",
        );
        assert_formats("fn pipe(x)=x|>relu|>  linear(4)\n", "fn pipe(x) = x |> relu |> linear(4)\n");
    }

    #[test]
    fn fractions_of_two_numbers_are_written_tight() {
        assert_formats(
            "let a = 1 / 16\nlet b = -1 / 2\nlet c = 2 / 1 / 16\nlet d = x / 4\nlet e = 1 / 16 ^ 2\nlet f = 2.5e-3/4\n",
            "let a = 1/16\nlet b = -1/2\nlet c = 2/1 / 16\nlet d = x / 4\nlet e = 1 / 16^2\nlet f = 2.5e-3/4\n",
        );
    }

    #[test]
    fn constants_across_lines_are_reindented() {
        assert_formats(
            "let image = [\n  [1, 1, 0],\n      [0, 1, 1],\n[0,0,1],\n]\nlet filter = [[1,0],[0,1]]\n",
            "let image = [\n    [1, 1, 0],\n    [0, 1, 1],\n    [0, 0, 1],\n]\nlet filter = [[1, 0], [0, 1]]\n",
        );
        // Brackets opened on one line indent their contents one level, not one per bracket.
        assert_formats(
            "eval f(g(\n1,\n        2))\nlet m = [[\n1, 2],\n[3, 4]]\n",
            "eval f(g(\n    1,\n    2))\nlet m = [[\n    1, 2],\n    [3, 4]]\n",
        );
    }

    #[test]
    fn continued_statements_indent_one_level() {
        assert_formats(
            "model Tall {\ninput x: [B, 16]\nlet h = x\n|> linear(32)\n            |> relu\nh + x\n}\n",
            "model Tall {\n    input x: [B, 16]\n    let h = x\n        |> linear(32)\n        |> relu\n    h + x\n}\n",
        );
        assert_formats("fn long(a, b) = a * b +\na - b\n", "fn long(a, b) = a * b +\n    a - b\n");
        assert_formats(
            "fn weighted(a, b) = (\n  0.25 * a\n  - 0.75 * b\n)\n",
            "fn weighted(a, b) = (\n    0.25 * a\n    - 0.75 * b\n)\n",
        );
        // A group opened on a continued line indents from that line, and so does its closer.
        assert_formats("let x = 1 +\nf(\n2,\n) +\n3\n", "let x = 1 +\n    f(\n        2,\n    ) +\n    3\n");
    }

    #[test]
    fn train_settings_line_up_in_runs() {
        assert_formats(
            "train Mlp on csv(\"data/digits.csv.gz\",label=last,scale=1/16){\nsplit=0.8\n  loss = cross_entropy\n optimizer=sgd(lr=0.1,momentum=0.9)\n\n\n  epochs      = 20\nseed = 7\n}\n",
            "train Mlp on csv(\"data/digits.csv.gz\", label = last, scale = 1/16) {\n    split     = 0.8\n    loss      = cross_entropy\n    optimizer = sgd(lr = 0.1, momentum = 0.9)\n\n    epochs = 20\n    seed   = 7\n}\n",
        );
        // Settings after `;` take one space; a comment line does not end a run.
        assert_formats(
            "train M on xor() {\n    loss = mse; batch = 3\n    // the optimiser\n    optimizer = adam\n}\n",
            "train M on xor() {\n    loss      = mse; batch = 3\n    // the optimiser\n    optimizer = adam\n}\n",
        );
        assert_formats(
            "train M on xor() { loss = cross_entropy; optimizer = sgd; epochs = 15 }\n",
            "train M on xor() { loss = cross_entropy; optimizer = sgd; epochs = 15 }\n",
        );
    }

    #[test]
    fn queries() {
        assert_formats(
            "eval f(2,5)\ngrad f(2,5)wrt x1,x2\njvp f(2, 5)  along[1,0]\njacobian   f(2, 5)\nhessian f(2,5)\neval -f(1, 2)\n",
            "eval f(2, 5)\ngrad f(2, 5) wrt x1, x2\njvp f(2, 5) along [1, 0]\njacobian f(2, 5)\nhessian f(2, 5)\neval -f(1, 2)\n",
        );
        assert_formats("fn one(x)=1;fn two(x) = 2\n", "fn one(x) = 1; fn two(x) = 2\n");
    }

    #[test]
    fn trailing_comments_keep_their_column_when_there_is_room() {
        assert_formats(
            "model M {\n  input [B, 2]          // the input\n  linear(1,kernel=3)    // one\n  conv2d(10, kernel = 5, stride = 1, pad = 2) // wide\n    relu//tight\n}\n",
            "model M {\n    input [B, 2]        // the input\n    linear(1, kernel = 3) // one\n    conv2d(10, kernel = 5, stride = 1, pad = 2) // wide\n    relu //tight\n}\n",
        );
        // Tabs before a comment count to the next multiple of four.
        assert_formats("eval f(1)\t\t// x\n", "eval f(1)       // x\n");
    }

    #[test]
    fn comment_lines_take_the_indentation_of_the_next_line() {
        assert_formats(
            "// header\n\n/// Docs.\nmodel M {\n// before input\ninput x: [B, 4]\n    let h = x\n  // inside a continued statement\n  |> relu\n  // at the end of the body\n}\n// at the end of the file\n",
            "// header\n\n/// Docs.\nmodel M {\n    // before input\n    input x: [B, 4]\n    let h = x\n        // inside a continued statement\n        |> relu\n    // at the end of the body\n}\n\n// at the end of the file\n",
        );
        assert_formats(
            "let w = [\n// first row\n[1, 2], // one\n  /// not a doc comment here\n  [3, 4]\n  // last\n]\n",
            "let w = [\n    // first row\n    [1, 2], // one\n    /// not a doc comment here\n    [3, 4]\n    // last\n]\n",
        );
    }

    #[test]
    fn comments_after_openers_operators_and_closers() {
        assert_formats(
            "model M { // the body\n  input x: [B, 4] // input\n  let h = x + // continued\n  x\n  h |> linear( // settings follow\n  2)\n} // end of M\n",
            "model M { // the body\n    input x: [B, 4] // input\n    let h = x + // continued\n        x\n    h |> linear( // settings follow\n        2)\n} // end of M\n",
        );
    }

    #[test]
    fn doc_comments_inside_bodies_and_before_items() {
        assert_formats(
            "model M {\n  input x: [B, 4]\n      /// The scale.\n  param s: [4] = ones\n  /// A doc comment on let.\n  let h = x * s\n  h |> linear(2)\n}\n///   Spaced doc.   \n\nfn f(x) = x\n",
            "model M {\n    input x: [B, 4]\n    /// The scale.\n    param s: [4] = ones\n    /// A doc comment on let.\n    let h = x * s\n    h |> linear(2)\n}\n\n///   Spaced doc.\n\nfn f(x) = x\n",
        );
    }

    #[test]
    fn blank_lines_collapse_and_separate_items_with_bodies() {
        assert_formats(
            "\n\n\nfn f(x) = x\n\n\n\nfn g(x) = x\nmodel M {\n\n    input [B, 2]\n\n\n    relu\n\n}\n// about N\n/// N.\nmodel N {\n    input [B, 2]\n}\ntrain N on xor() {\n    loss = bce\n}\neval f(1)\n\n\n",
            "fn f(x) = x\n\nfn g(x) = x\n\nmodel M {\n    input [B, 2]\n\n    relu\n}\n\n// about N\n/// N.\nmodel N {\n    input [B, 2]\n}\n\ntrain N on xor() {\n    loss = bce\n}\n\neval f(1)\n",
        );
        // Items that share a line stay together.
        assert_formats("fn f(x) = x; model M { input [B, 2] }\n", "fn f(x) = x; model M { input [B, 2] }\n");
        // A blank line inside brackets stays, except right after the opener or before the closer.
        assert_formats("let a = [\n\n    1,\n\n\n    2,\n\n]\n", "let a = [\n    1,\n\n    2,\n]\n");
    }

    #[test]
    fn line_ends_tabs_and_trailing_whitespace() {
        assert_formats(
            "model M {\r\n\tinput [B, 2]   \r\n\t\tlinear(1)\t// w\r\n}\r\n\r\n\r\neval f(1)",
            "model M {\n    input [B, 2]\n    linear(1)       // w\n}\n\neval f(1)\n",
        );
        assert_formats("\u{feff}fn f(x) = x   \n   \n", "fn f(x) = x\n");
        assert_formats("// only a comment  \r\n", "// only a comment\n");
        assert_eq!(format(""), "");
        assert_eq!(format("  \n\n\t\n"), "");
    }

    #[test]
    fn non_ascii_names_and_comments() {
        assert_formats(
            "let größe=3\nlet α = 0.5 // ein Kommentar: α²\nfn λ( x_1,_x2 )=α*x_1+größe*_x2\n",
            "let größe = 3\nlet α = 0.5 // ein Kommentar: α²\nfn λ(x_1, _x2) = α * x_1 + größe * _x2\n",
        );
        // Columns count characters, not bytes: the comments stay aligned.
        assert_formats("let größe = 3 // a\nlet size  = 3 // b\n", "let größe = 3 // a\nlet size = 3  // b\n");
    }

    #[test]
    fn strings_and_comments_are_kept_as_written() {
        assert_formats(
            "train M on csv( \"a  b\\\\c.csv\" ) {\n    loss = mse   //   spaced   out\n    save = \"x // y\"\n}\n",
            "train M on csv(\"a  b\\\\c.csv\") {\n    loss = mse   //   spaced   out\n    save = \"x // y\"\n}\n",
        );
    }

    #[test]
    fn syntax_errors_give_none() {
        for broken in [
            "model M {\n    input [B, 2]\n",
            "fn f(x) = x +\n",
            "eval f(1))\n",
            "let x = $\n",
            "fn f(x) = \"open\n",
            "model M\n{\n}\n",
            "let a = 99999999999999999999999\n",
            "\u{0}\u{2028}}}]]",
        ] {
            assert_eq!(format_source(broken), None, "{broken:?}");
        }
    }

    #[test]
    fn deep_nesting_gives_none_without_overflowing() {
        let parentheses = format!("fn f(x) = {}x{}\n", "(".repeat(100_000), ")".repeat(100_000));
        assert_eq!(format_source(&parentheses), None);
        let negations = format!("fn f(x) = {}x\n", "-".repeat(100_000));
        assert_eq!(format_source(&negations), None);
        // Just inside the limit, the formatter walks the whole tree.
        let deep = format!("fn f(x) = {}x{}\n", "(".repeat(200), ")".repeat(200));
        assert_eq!(format(&deep), deep);
    }
}

//! The recovering parser (chumsky): laid-out tokens to a syntax tree plus diagnostics.
//!
//! Recovery works at three levels. A broken bracket group inside an expression becomes an
//! error expression; a broken statement in a body becomes `Stmt::Error` up to the end of
//! its line; a broken item becomes `Item::Error` up to the end of its line (a `{ ... }`
//! group counts as part of the line). Parsing then goes on, so every independent error in
//! a file is reported.

use crate::ast::*;
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::layout::{parse_float, parse_int};
use crate::lexer::{KEYWORDS, Token};
use crate::span::Span;
use chumsky::input::{Input as _, ValueInput};
use chumsky::pratt::{infix, left, postfix, prefix, right};
use chumsky::prelude::*;

type Extra<'t, 's> = extra::Err<Rich<'t, Token<'s>, SimpleSpan>>;

fn span_of(span: SimpleSpan) -> Span {
    Span::new(span.start, span.end)
}

/// Parses laid-out tokens (see `layout`) into a file. `source_len` is where the input ends.
pub fn parse_tokens<'s>(tokens: &[(Token<'s>, Span)], source_len: usize) -> (File, Vec<Diagnostic>) {
    let simple: Vec<(Token<'s>, SimpleSpan)> =
        tokens.iter().map(|&(token, span)| (token, SimpleSpan::from(span.range()))).collect();
    let input = simple.as_slice().split_token_span(SimpleSpan::from(source_len..source_len));
    let (file, errors) = file_parser().parse(input).into_output_errors();
    let diagnostics = errors.into_iter().map(|error| convert_error(&error, tokens)).collect();
    (file.unwrap_or_default(), diagnostics)
}

fn ident<'t, 's: 't, I>() -> impl Parser<'t, I, Ident, Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
{
    select! { Token::Ident(name) => name.to_string() }
        .map_with(|name, e| Ident { name, span: span_of(e.span()) })
        .labelled("identifier")
}

/// Statement separators: a newline that ends a statement, or `;`.
fn separators<'t, 's: 't, I>() -> impl Parser<'t, I, (), Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
{
    one_of([Token::Newline, Token::Semi]).repeated().at_least(1).ignored().labelled("end of line")
}

/// One token, or a whole bracket group, that is not a separator. Recovery skips these.
fn token_tree<'t, 's: 't, I>() -> impl Parser<'t, I, (), Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
{
    recursive(|tree| {
        let group = |open, close| tree.clone().repeated().delimited_by(just(open), just(close)).ignored();
        let any_inside = none_of([
            Token::LParen,
            Token::RParen,
            Token::LBracket,
            Token::RBracket,
            Token::LBrace,
            Token::RBrace,
            Token::Newline,
            Token::Semi,
        ])
        .ignored();
        let newline_inside = one_of([Token::Newline, Token::Semi]).ignored();
        choice((
            group(Token::LParen, Token::RParen),
            group(Token::LBracket, Token::RBracket),
            // Inside braces, newlines belong to the group.
            just(Token::LBrace)
                .ignore_then(tree.or(newline_inside).repeated())
                .then_ignore(just(Token::RBrace))
                .ignored(),
            any_inside,
        ))
    })
}

/// The rest of a broken line, as one span, for an error node.
fn rest_of_line<'t, 's: 't, I>() -> impl Parser<'t, I, Span, Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
{
    token_tree().repeated().at_least(1).map_with(|_, e| span_of(e.span()))
}

fn expr_parser<'t, 's: 't, I>() -> impl Parser<'t, I, Expr, Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
{
    recursive(|expr| {
        fn error_expr(span: SimpleSpan) -> Expr {
            Expr::error(span_of(span))
        }

        let literal = select! {
            Token::Int(text) => ExprKind::Int(parse_int(text).unwrap_or(u64::MAX)),
            Token::Float(text) => ExprKind::Float(parse_float(text).unwrap_or(f64::MAX)),
            Token::Str(text) => ExprKind::Str(unescape(text)),
            Token::True => ExprKind::Bool(true),
            Token::False => ExprKind::Bool(false),
            // Already reported by the layout pass.
            Token::BadNumber => ExprKind::Error,
            Token::TooDeep => ExprKind::Error,
        }
        .map_with(|kind, e| Expr::new(kind, span_of(e.span())));

        let arg = ident().then_ignore(just(Token::Eq)).or_not().then(expr.clone()).map_with(|(name, value), e| Arg {
            name,
            value,
            span: span_of(e.span()),
        });
        let args = arg
            .separated_by(just(Token::Comma))
            .allow_trailing()
            .collect::<Vec<_>>()
            .delimited_by(just(Token::LParen), just(Token::RParen))
            .recover_with(via_parser(nested_delimiters(
                Token::LParen,
                Token::RParen,
                [(Token::LBracket, Token::RBracket), (Token::LBrace, Token::RBrace)],
                |span| vec![Arg { name: None, value: error_expr(span), span: span_of(span) }],
            )));
        let name_or_call = ident().then(args.or_not()).map_with(|(callee, args), e| {
            let kind = match args {
                Some(args) => ExprKind::Call { callee, args },
                None => ExprKind::Name(callee.name),
            };
            Expr::new(kind, span_of(e.span()))
        });

        let items = expr.clone().separated_by(just(Token::Comma)).allow_trailing().collect::<Vec<_>>();
        let array = items
            .clone()
            .delimited_by(just(Token::LBracket), just(Token::RBracket))
            .map_with(|items, e| Expr::new(ExprKind::Array(items), span_of(e.span())))
            .recover_with(via_parser(nested_delimiters(
                Token::LBracket,
                Token::RBracket,
                [(Token::LParen, Token::RParen), (Token::LBrace, Token::RBrace)],
                error_expr,
            )));
        let paren = items
            .delimited_by(just(Token::LParen), just(Token::RParen))
            .map_with(|mut items, e| {
                let kind = if items.len() == 1 {
                    ExprKind::Paren(Box::new(items.pop().expect("one item")))
                } else {
                    ExprKind::Tuple(items)
                };
                Expr::new(kind, span_of(e.span()))
            })
            .recover_with(via_parser(nested_delimiters(
                Token::LParen,
                Token::RParen,
                [(Token::LBracket, Token::RBracket), (Token::LBrace, Token::RBrace)],
                error_expr,
            )));

        let atom = choice((literal, name_or_call, array, paren)).labelled("expression").boxed();

        atom.pratt((
            postfix(10, just(Token::Caret).then(just(Token::Ident("T"))), |operand, _, e| {
                Expr::new(ExprKind::Transpose(Box::new(operand)), span_of(e.span()))
            }),
            infix(right(9), just(Token::Caret), |l, _, r, _| binary(BinaryOp::Pow, l, r)),
            prefix(8, just(Token::Minus), |_, operand, e| {
                Expr::new(ExprKind::Neg(Box::new(operand)), span_of(e.span()))
            }),
            infix(left(7), just(Token::Star), |l, _, r, _| binary(BinaryOp::Mul, l, r)),
            infix(left(7), just(Token::Slash), |l, _, r, _| binary(BinaryOp::Div, l, r)),
            infix(left(7), just(Token::At), |l, _, r, _| binary(BinaryOp::MatMul, l, r)),
            infix(left(6), just(Token::Plus), |l, _, r, _| binary(BinaryOp::Add, l, r)),
            infix(left(6), just(Token::Minus), |l, _, r, _| binary(BinaryOp::Sub, l, r)),
            infix(left(1), just(Token::Pipe), |l, _, r, _| binary(BinaryOp::Pipe, l, r)),
        ))
        .boxed()
    })
}

fn binary(op: BinaryOp, lhs: Expr, rhs: Expr) -> Expr {
    let span = lhs.span.cover(rhs.span);
    Expr::new(ExprKind::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs) }, span)
}

/// `///` lines before a definition.
fn doc_parser<'t, 's: 't, I>() -> impl Parser<'t, I, Option<Doc>, Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
{
    select! { Token::DocComment(text) => text }
        .map_with(|text, e| (text, span_of(e.span())))
        .then_ignore(just(Token::Newline).or_not())
        .repeated()
        .collect::<Vec<_>>()
        .map(|lines| {
            let span = lines.iter().map(|&(_, span)| span).reduce(Span::cover)?;
            let text =
                lines.iter().map(|(text, _)| text.strip_prefix(' ').unwrap_or(text)).collect::<Vec<_>>().join("\n");
            Some(Doc { text, span })
        })
}

fn shape_parser<'t, 's: 't, I>(
    expr: impl Parser<'t, I, Expr, Extra<'t, 's>> + Clone,
) -> impl Parser<'t, I, Shape, Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
{
    expr.separated_by(just(Token::Comma))
        .allow_trailing()
        .collect::<Vec<_>>()
        .delimited_by(just(Token::LBracket), just(Token::RBracket))
        .map_with(|dims, e| Shape { dims, span: span_of(e.span()) })
        .labelled("shape such as `[B, 64]`")
}

/// A list of statements in braces, each ended by a newline or `;`; a broken statement is
/// skipped to its line's end.
fn block<'t, 's: 't, I, S>(
    statement: impl Parser<'t, I, S, Extra<'t, 's>> + Clone,
    error: fn(Span) -> S,
) -> impl Parser<'t, I, (Vec<S>, Span), Extra<'t, 's>> + Clone
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
{
    let line_end = choice((separators(), just(Token::RBrace).ignored())).rewind();
    statement
        .then_ignore(line_end)
        .recover_with(via_parser(rest_of_line().map(error)))
        .separated_by(separators())
        .allow_leading()
        .allow_trailing()
        .collect::<Vec<_>>()
        .delimited_by(just(Token::LBrace), just(Token::RBrace))
        .map_with(|statements, e| (statements, span_of(e.span())))
}

fn file_parser<'t, 's: 't, I>() -> impl Parser<'t, I, File, Extra<'t, 's>>
where
    I: ValueInput<'t, Token = Token<'s>, Span = SimpleSpan>,
{
    let expr = expr_parser().boxed();
    let shape = shape_parser(expr.clone()).boxed();
    let doc = doc_parser().boxed();

    let let_stmt = doc
        .clone()
        .then_ignore(just(Token::Let))
        .then(ident())
        .then_ignore(just(Token::Eq))
        .then(expr.clone())
        .map_with(|((doc, name), value), e| LetStmt { doc, name, value, span: span_of(e.span()) })
        .boxed();

    let input_stmt = just(Token::Input)
        .ignore_then(ident().then_ignore(just(Token::Colon)).or_not())
        .then(shape.clone())
        .map_with(|(name, shape), e| Stmt::Input(InputStmt { name, shape, span: span_of(e.span()) }));
    let param_stmt = doc
        .clone()
        .then_ignore(just(Token::Param))
        .then(ident())
        .then_ignore(just(Token::Colon))
        .then(shape.clone())
        .then(just(Token::Eq).ignore_then(expr.clone()).or_not())
        .map_with(|(((doc, name), shape), init), e| {
            Stmt::Param(ParamStmt { doc, name, shape, init, span: span_of(e.span()) })
        });
    let stmt = choice((input_stmt, param_stmt, let_stmt.clone().map(Stmt::Let), expr.clone().map(Stmt::Expr))).boxed();

    let fn_param = ident()
        .then(just(Token::Colon).ignore_then(shape.clone()).or_not())
        .map_with(|(name, shape), e| FnParam { name, shape, span: span_of(e.span()) });
    let fn_params = fn_param
        .separated_by(just(Token::Comma))
        .allow_trailing()
        .collect::<Vec<_>>()
        .delimited_by(just(Token::LParen), just(Token::RParen));
    let fn_def = doc
        .clone()
        .then_ignore(just(Token::Fn))
        .then(ident())
        .then(fn_params)
        .then_ignore(just(Token::Eq))
        .then(expr.clone())
        .map_with(|(((doc, name), params), body), e| {
            Item::Fn(FnDef { doc, name, params, body, span: span_of(e.span()) })
        });

    let model_param = ident()
        .then(just(Token::Eq).ignore_then(expr.clone()).or_not())
        .map_with(|(name, default), e| ModelParam { name, default, span: span_of(e.span()) });
    let model_params = model_param
        .separated_by(just(Token::Comma))
        .allow_trailing()
        .collect::<Vec<_>>()
        .delimited_by(just(Token::LParen), just(Token::RParen));
    let model_kind = choice((just(Token::Model).to(ModelKind::Model), just(Token::Layer).to(ModelKind::Layer)));
    let model_def =
        doc.clone().then(model_kind).then(ident()).then(model_params.or_not()).then(block(stmt, Stmt::Error)).map_with(
            |((((doc, kind), name), params), (body, body_span)), e| {
                Item::Model(ModelDef {
                    doc,
                    kind,
                    name,
                    params: params.unwrap_or_default(),
                    body,
                    body_span,
                    span: span_of(e.span()),
                })
            },
        );

    let query_kind = select! {
        Token::Eval => QueryKind::Eval,
        Token::Grad => QueryKind::Grad,
        Token::Jvp => QueryKind::Jvp,
        Token::Jacobian => QueryKind::Jacobian,
        Token::Hessian => QueryKind::Hessian,
    }
    .map_with(|kind, e| (kind, span_of(e.span())));
    let query = query_kind
        .then(expr.clone())
        .then(
            just(Token::Wrt)
                .ignore_then(ident().separated_by(just(Token::Comma)).at_least(1).collect::<Vec<_>>())
                .or_not(),
        )
        .then(just(Token::Along).ignore_then(expr.clone()).or_not())
        .map_with(|((((kind, keyword_span), call), wrt), along), e| {
            Item::Query(Query {
                kind,
                keyword_span,
                call,
                wrt: wrt.unwrap_or_default(),
                along,
                span: span_of(e.span()),
            })
        });

    let setting = ident()
        .then_ignore(just(Token::Eq))
        .then(expr.clone())
        .map_with(|(key, value), e| Some(Setting { key, value, span: span_of(e.span()) }));
    let train = doc
        .then(just(Token::Train).map_with(|_, e| span_of(e.span())))
        .then(expr.clone())
        .then_ignore(just(Token::On))
        .then(expr)
        .then(block(setting, |_| None))
        .map_with(|((((doc, keyword_span), model), data), (settings, body_span)), e| {
            Item::Train(TrainDef {
                doc,
                keyword_span,
                model,
                data,
                settings: settings.into_iter().flatten().collect(),
                body_span,
                span: span_of(e.span()),
            })
        });

    let item = choice((fn_def, model_def, let_stmt.map(Item::Let), query, train))
        .then_ignore(choice((separators(), end())).rewind())
        .recover_with(via_parser(rest_of_line().map(Item::Error)));

    item.separated_by(separators())
        .allow_leading()
        .allow_trailing()
        .collect::<Vec<_>>()
        .then_ignore(end())
        .map(|items| File { items })
}

/// The text of a string literal without its quotes, with `\n`, `\t`, `\"` and `\\` resolved.
fn unescape(literal: &str) -> String {
    let inner = literal.strip_prefix(['"', '\'']).unwrap_or(literal);
    let inner = inner.strip_suffix(['"', '\'']).unwrap_or(inner);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn is_operator(token: &Token<'_>) -> bool {
    matches!(token, Token::Plus | Token::Minus | Token::Star | Token::Slash | Token::Caret | Token::At | Token::Pipe)
}

/// Turns a chumsky error into a diagnostic with a message a person can act on.
fn convert_error(error: &Rich<'_, Token<'_>, SimpleSpan>, tokens: &[(Token<'_>, Span)]) -> Diagnostic {
    let span = span_of(*error.span());
    let found = error.found().copied();
    let mut expected: Vec<String> = Vec::new();
    let mut push = |text: String| {
        if !expected.contains(&text) {
            expected.push(text);
        }
    };
    let mut keywords_expected = Vec::new();
    let mut operators = false;
    for pattern in error.expected() {
        match pattern {
            chumsky::error::RichPattern::Token(token) => {
                let token: &Token<'_> = token;
                if is_operator(token) || (*token == Token::Caret) {
                    operators = true;
                } else if matches!(token, Token::Newline | Token::Semi) {
                    push("end of line".into());
                } else {
                    if token.is_keyword() {
                        keywords_expected.push(token.text().unwrap_or_default());
                    }
                    push(token.describe());
                }
            }
            chumsky::error::RichPattern::Label(label) => push(label.to_string()),
            chumsky::error::RichPattern::Identifier(name) => push(format!("`{name}`")),
            chumsky::error::RichPattern::EndOfInput => push("end of file".into()),
            chumsky::error::RichPattern::Any => push("something".into()),
            _ => {}
        }
    }
    // The token before the error; not the error's own token, which may be an empty
    // inserted closer at the same offset.
    let previous = tokens.iter().rev().find(|(_, s)| s.end <= span.start && s.start < span.start).copied();
    // After an operator only an operand can come; do not offer another operator.
    let previous_token = previous.map(|(t, _)| t);
    if operators && !previous_token.as_ref().is_some_and(is_operator) {
        push("an operator".into());
    }
    // A closer that the layout pass inserted has an empty span; the user wrote no such token.
    let found_text = match found {
        None => "end of file".to_string(),
        Some(_) if span.is_empty() => "the end of the unclosed group".to_string(),
        Some(token) => token.describe(),
    };

    // An identifier where a keyword belongs, or just before where the parse broke, that is
    // close to a keyword is most likely that keyword misspelt.
    let misspelt = match (found, previous) {
        (Some(Token::Ident(name)), _) if !keywords_expected.is_empty() => {
            closest_keyword(name, &keywords_expected).map(|keyword| (name, keyword, span))
        }
        (_, Some((Token::Ident(name), previous_span))) => {
            let starts_line = tokens
                .iter()
                .rev()
                .find(|(_, s)| s.end <= previous_span.start)
                .is_none_or(|(t, _)| matches!(t, Token::Newline | Token::Semi | Token::LBrace));
            if starts_line {
                closest_keyword(name, &["input", "param", "let", "fn", "model", "layer", "train", "eval", "grad"])
                    .map(|keyword| (name, keyword, previous_span))
            } else {
                None
            }
        }
        _ => None,
    };
    if let Some((name, keyword, span)) = misspelt {
        return Diagnostic::new(
            Code::MisspeltKeyword,
            format!("unknown keyword `{name}`"),
            span,
            format!("`{keyword}` expected here"),
        )
        .with_help(format!("did you mean `{keyword}`?"));
    }

    let expected_text = match expected.len() {
        0 => String::new(),
        1 => expected[0].clone(),
        n => format!("{} or {}", expected[..n - 1].join(", "), expected[n - 1]),
    };
    let message = if expected_text.is_empty() {
        format!("unexpected {found_text}")
    } else {
        format!("expected {expected_text}, found {found_text}")
    };
    let label =
        if expected_text.is_empty() { "not allowed here".to_string() } else { format!("expected {expected_text}") };
    let mut diagnostic = Diagnostic::new(Code::UnexpectedToken, message, span, label);
    if let Some((context, context_span)) = error.contexts().last() {
        diagnostic = diagnostic.with_secondary(span_of(*context_span), format!("while parsing this {context}"));
    }
    if matches!(found, Some(Token::Ident(_))) && expected.iter().any(|e| e == "end of line") {
        diagnostic = diagnostic.with_help("put each statement on a line of its own, or separate them with `;`");
    }
    if let Some(keyword) = found.filter(Token::is_keyword)
        && expected.iter().any(|e| e == "identifier")
    {
        let text = keyword.text().unwrap_or_default();
        diagnostic = diagnostic.with_help(format!("`{text}` is a keyword; choose another name, such as `{text}_`"));
    }
    let after_operator = previous.is_some_and(|(token, _)| is_operator(&token));
    if after_operator
        && matches!(found, None | Some(Token::Newline | Token::RParen | Token::RBracket | Token::RBrace | Token::Comma))
    {
        diagnostic =
            diagnostic.with_help("an expression cannot end with an operator; finish it or remove the operator");
    }
    diagnostic
}

/// The keyword among `candidates` that `name` most likely misspells.
fn closest_keyword(name: &str, candidates: &[&'static str]) -> Option<&'static str> {
    if KEYWORDS.iter().any(|(keyword, _)| *keyword == name) {
        return None;
    }
    crate::suggest::closest(name, candidates.iter().copied())
}

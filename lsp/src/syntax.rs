//! Questions about the text around a cursor that the features share: which name is under
//! it, which call it is inside, which definition carries which doc comment.

use nnc_grammar::{File, Item, Span, Stmt, Token, lex};

/// The identifier or keyword at `offset`, or the one that ends right there (the cursor just
/// after a name still means that name).
pub fn word_at(text: &str, offset: usize) -> Option<(Span, &str)> {
    let tokens = lex(text);
    let index = tokens.partition_point(|(_, span)| span.end < offset);
    tokens[index..]
        .iter()
        .take(2)
        .find(|(token, span)| span.start <= offset && offset <= span.end && is_word(token))
        .map(|(_, span)| (*span, &text[span.range()]))
}

fn is_word(token: &Token) -> bool {
    matches!(token, Token::Ident(_)) || token.text().is_some_and(|t| t.chars().all(|c| c.is_ascii_alphabetic()))
}

/// Whether `offset` is inside a comment or a string, where names mean nothing.
pub fn in_comment_or_string(text: &str, offset: usize) -> bool {
    lex(text).iter().any(|(token, span)| {
        matches!(
            token,
            Token::LineComment
                | Token::DocComment(_)
                | Token::Str(_)
                | Token::UnterminatedStr(_)
                | Token::SingleQuoted(_)
        ) && span.start < offset
            && offset <= span.end
            && !(matches!(token, Token::Str(_)) && offset == span.end)
    })
}

/// The call whose parentheses hold the cursor: `conv2d(8, kernel = 3, $0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallSite {
    pub callee: String,
    pub callee_span: Span,
    /// How many arguments come before the cursor's.
    pub argument: usize,
    /// The names of the arguments given by name before the cursor.
    pub named_before: Vec<String>,
    /// The argument the cursor is in, when it is written `name = ...` with the cursor after `=`.
    pub current_name: Option<String>,
}

/// The innermost call around `offset`, found from the tokens before it. A statement
/// keyword or a brace ends the search, so that an unclosed parenthesis further up does not
/// capture the rest of the file.
pub fn call_at(text: &str, offset: usize) -> Option<CallSite> {
    struct Open {
        callee: Option<(Span, String)>,
        commas: usize,
        named: Vec<String>,
        current: Option<String>,
    }
    let tokens = lex(text);
    let mut stack: Vec<Open> = Vec::new();
    let mut previous: [Option<(Token, Span)>; 2] = [None, None];
    for &(token, span) in tokens.iter().take_while(|(_, span)| span.end <= offset) {
        match token {
            Token::LParen | Token::LBracket => {
                let callee = match (token, previous[1]) {
                    (Token::LParen, Some((Token::Ident(name), name_span))) => Some((name_span, name.to_string())),
                    _ => None,
                };
                stack.push(Open { callee, commas: 0, named: Vec::new(), current: None });
            }
            Token::RParen | Token::RBracket => {
                stack.pop();
            }
            Token::Comma => {
                if let Some(open) = stack.last_mut() {
                    open.commas += 1;
                    if let Some(name) = open.current.take() {
                        open.named.push(name);
                    }
                }
            }
            Token::Eq => {
                if let (Some(open), Some((Token::Ident(name), _))) = (stack.last_mut(), previous[1]) {
                    open.current = Some(name.to_string());
                }
            }
            Token::LBrace | Token::RBrace => stack.clear(),
            token if starts_statement(&token) => stack.clear(),
            _ => {}
        }
        if !matches!(token, Token::LineComment | Token::DocComment(_) | Token::Newline) {
            previous = [previous[1], Some((token, span))];
        }
    }
    let open = stack.pop()?;
    let (callee_span, callee) = open.callee?;
    Some(CallSite { callee, callee_span, argument: open.commas, named_before: open.named, current_name: open.current })
}

/// Keywords that begin a statement or an item.
pub fn starts_statement(token: &Token) -> bool {
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
    )
}

/// The doc comment of the definition whose name is at `name`.
pub fn doc_of(file: &File, name: Span) -> Option<&str> {
    file.items
        .iter()
        .find_map(|item| match item {
            Item::Fn(def) if def.name.span == name => def.doc.as_ref(),
            Item::Model(def) if def.name.span == name => def.doc.as_ref(),
            Item::Model(def) => def.body.iter().find_map(|stmt| match stmt {
                Stmt::Let(stmt) if stmt.name.span == name => stmt.doc.as_ref(),
                Stmt::Param(stmt) if stmt.name.span == name => stmt.doc.as_ref(),
                _ => None,
            }),
            Item::Let(stmt) if stmt.name.span == name => stmt.doc.as_ref(),
            _ => None,
        })
        .map(|doc| doc.text.as_str())
}

/// The text of a definition's header, such as `model Mlp(hidden = 32, classes = 10)` or
/// `fn f(x1, x2)`, on one line.
pub fn header_of(file: &File, text: &str, name: Span) -> Option<String> {
    let (keyword, end) = file.items.iter().find_map(|item| match item {
        Item::Fn(def) if def.name.span == name => Some(("fn", def.body.span.start)),
        Item::Model(def) if def.name.span == name => Some((def.kind.keyword(), def.body_span.start)),
        _ => None,
    })?;
    let header = text.get(name.start..end.max(name.end))?;
    let header = header.trim_end().trim_end_matches('=').trim_end();
    Some(format!("{keyword} {}", header.split_whitespace().collect::<Vec<_>>().join(" ").replace("( ", "(")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_around_the_cursor_counts_its_arguments() {
        let text = "model M {\n    input [B, 1, 8, 8]\n    conv2d(8, kernel = 3, pad = ";
        let site = call_at(text, text.len()).expect("inside conv2d");
        assert_eq!(site.callee, "conv2d");
        assert_eq!(site.argument, 2);
        assert_eq!(site.named_before, vec!["kernel".to_string()]);
        assert_eq!(site.current_name.as_deref(), Some("pad"));
        // Brackets inside the call do not end it; a closed call is not around the cursor.
        let text = "fn f(x) = reshape(x, [1, 2], ";
        assert_eq!(call_at(text, text.len()).map(|s| s.argument), Some(2));
        assert_eq!(call_at("fn f(x) = relu(x) ", 18), None);
        // An unclosed call further up does not capture the next statement.
        assert_eq!(call_at("let a = f(1,\nlet b = ", 20), None);
    }

    #[test]
    fn the_word_at_the_cursor_includes_a_cursor_just_after_it() {
        let text = "linear(hidden)";
        assert_eq!(word_at(text, 0).map(|w| w.1), Some("linear"));
        assert_eq!(word_at(text, 6).map(|w| w.1), Some("linear"));
        assert_eq!(word_at(text, 9).map(|w| w.1), Some("hidden"));
        assert_eq!(word_at("a + b", 2), None);
    }
}

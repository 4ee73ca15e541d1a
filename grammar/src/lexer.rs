//! The lexer: source text to tokens with byte spans, by logos.
//!
//! The lexer keeps everything, comments and newlines included, because the formatter and
//! the language server need them; `layout` decides what the parser sees.

use crate::span::Span;
use logos::Logos;

/// A token of the `.nn` language. Tokens borrow their text from the source.
#[derive(Logos, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[logos(skip r"[ \t\r\f\u{feff}]+")]
pub enum Token<'src> {
    #[regex(r"///[^\n]*", |lex| lex.slice()[3..].trim_end_matches('\r'), allow_greedy = true)]
    DocComment(&'src str),
    #[regex(r"//[^\n]*", allow_greedy = true)]
    LineComment,
    #[token("\n")]
    Newline,

    #[token("fn")]
    Fn,
    #[token("model")]
    Model,
    #[token("layer")]
    Layer,
    #[token("input")]
    Input,
    #[token("param")]
    Param,
    #[token("let")]
    Let,
    #[token("eval")]
    Eval,
    #[token("grad")]
    Grad,
    #[token("jvp")]
    Jvp,
    #[token("jacobian")]
    Jacobian,
    #[token("hessian")]
    Hessian,
    #[token("wrt")]
    Wrt,
    #[token("along")]
    Along,
    #[token("train")]
    Train,
    #[token("on")]
    On,
    #[token("true")]
    True,
    #[token("false")]
    False,

    #[regex(r"[\p{XID_Start}_][\p{XID_Continue}]*")]
    Ident(&'src str),
    #[regex(r"[0-9][0-9_]*")]
    Int(&'src str),
    #[regex(r"[0-9][0-9_]*\.[0-9][0-9_]*([eE][+-]?[0-9][0-9_]*)?")]
    #[regex(r"[0-9][0-9_]*[eE][+-]?[0-9][0-9_]*")]
    Float(&'src str),
    /// A string literal with its quotes; escapes are resolved by the parser.
    #[regex(r#""([^"\\\n]|\\[^\n])*""#)]
    Str(&'src str),
    /// Text in single quotes: an error (strings use double quotes) that the layout pass
    /// reports and then reads as the string that was meant.
    #[regex(r"'[^'\n]*'?")]
    SingleQuoted(&'src str),
    /// A string that reaches the end of its line without a closing quote.
    #[regex(r#""([^"\\\n]|\\[^\n])*\\?"#)]
    UnterminatedStr(&'src str),

    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token(",")]
    Comma,
    #[token(";")]
    Semi,
    #[token(":")]
    Colon,
    #[token("=")]
    Eq,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("^")]
    Caret,
    #[token("@")]
    At,
    #[token("|>")]
    Pipe,
    #[token("->")]
    Arrow,

    /// Characters that start no token. The lexer reports them; the parser never sees them.
    Invalid(&'src str),
    /// Stands for the rest of a group that was nested too deeply to parse; see `layout`.
    TooDeep,
    /// A number literal that was reported as out of range; it parses as an error expression.
    BadNumber,
}

impl Token<'_> {
    /// How the token is named in messages: "`(`", "identifier `x`", "end of line".
    pub fn describe(&self) -> String {
        match self {
            Token::DocComment(_) => "doc comment".into(),
            Token::LineComment => "comment".into(),
            Token::Newline => "end of line".into(),
            Token::Ident(name) => format!("identifier `{name}`"),
            Token::Int(text) | Token::Float(text) => format!("number `{text}`"),
            Token::Str(_) | Token::UnterminatedStr(_) | Token::SingleQuoted(_) => "string".into(),
            Token::Invalid(text) => format!("`{text}`"),
            Token::TooDeep => "too deeply nested code".into(),
            Token::BadNumber => "number".into(),
            other => format!("`{}`", other.text().unwrap_or("?")),
        }
    }

    /// The fixed spelling of keywords and punctuation.
    pub fn text(&self) -> Option<&'static str> {
        Some(match self {
            Token::Fn => "fn",
            Token::Model => "model",
            Token::Layer => "layer",
            Token::Input => "input",
            Token::Param => "param",
            Token::Let => "let",
            Token::Eval => "eval",
            Token::Grad => "grad",
            Token::Jvp => "jvp",
            Token::Jacobian => "jacobian",
            Token::Hessian => "hessian",
            Token::Wrt => "wrt",
            Token::Along => "along",
            Token::Train => "train",
            Token::On => "on",
            Token::True => "true",
            Token::False => "false",
            Token::LParen => "(",
            Token::RParen => ")",
            Token::LBracket => "[",
            Token::RBracket => "]",
            Token::LBrace => "{",
            Token::RBrace => "}",
            Token::Comma => ",",
            Token::Semi => ";",
            Token::Colon => ":",
            Token::Eq => "=",
            Token::Plus => "+",
            Token::Minus => "-",
            Token::Star => "*",
            Token::Slash => "/",
            Token::Caret => "^",
            Token::At => "@",
            Token::Pipe => "|>",
            Token::Arrow => "->",
            _ => return None,
        })
    }

    pub fn is_keyword(&self) -> bool {
        KEYWORDS.iter().any(|(_, token)| token == self)
    }

    /// The closing bracket that matches an opening one.
    pub fn closer(&self) -> Option<Token<'static>> {
        match self {
            Token::LParen => Some(Token::RParen),
            Token::LBracket => Some(Token::RBracket),
            Token::LBrace => Some(Token::RBrace),
            _ => None,
        }
    }

    pub fn is_closer(&self) -> bool {
        matches!(self, Token::RParen | Token::RBracket | Token::RBrace)
    }
}

impl std::fmt::Display for Token<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Every keyword with its token, for suggestions and for editor grammars.
pub const KEYWORDS: &[(&str, Token<'static>)] = &[
    ("fn", Token::Fn),
    ("model", Token::Model),
    ("layer", Token::Layer),
    ("input", Token::Input),
    ("param", Token::Param),
    ("let", Token::Let),
    ("eval", Token::Eval),
    ("grad", Token::Grad),
    ("jvp", Token::Jvp),
    ("jacobian", Token::Jacobian),
    ("hessian", Token::Hessian),
    ("wrt", Token::Wrt),
    ("along", Token::Along),
    ("train", Token::Train),
    ("on", Token::On),
    ("true", Token::True),
    ("false", Token::False),
];

/// Splits `source` into tokens, comments and newlines included. Characters that start no
/// token come back as [`Token::Invalid`], one token per run of them.
pub fn lex(source: &str) -> Vec<(Token<'_>, Span)> {
    let mut tokens: Vec<(Token<'_>, Span)> = Vec::new();
    let mut lexer = Token::lexer(source);
    while let Some(result) = lexer.next() {
        let span = Span::from(lexer.span());
        match result {
            Ok(token) => tokens.push((token, span)),
            Err(()) => match tokens.last_mut() {
                // Merge a run of invalid characters into one token, so `$$$` is one error.
                Some((Token::Invalid(text), last)) if last.end == span.start => {
                    last.end = span.end;
                    *text = &source[last.range()];
                }
                _ => tokens.push((Token::Invalid(&source[span.range()]), span)),
            },
        }
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(source: &str) -> Vec<Token<'_>> {
        lex(source).into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn numbers_with_exponents_and_underscores() {
        assert_eq!(
            kinds("1_000 2.5e-3 1E6 0.5 3x3"),
            vec![
                Token::Int("1_000"),
                Token::Float("2.5e-3"),
                Token::Float("1E6"),
                Token::Float("0.5"),
                Token::Int("3"),
                Token::Ident("x3")
            ]
        );
    }

    #[test]
    fn keywords_comments_and_unicode_identifiers() {
        assert_eq!(
            kinds("/// doc\nmodel größe // note\n"),
            vec![
                Token::DocComment(" doc"),
                Token::Newline,
                Token::Model,
                Token::Ident("größe"),
                Token::LineComment,
                Token::Newline
            ]
        );
        assert_eq!(kinds("modelx |> ->"), vec![Token::Ident("modelx"), Token::Pipe, Token::Arrow]);
    }

    #[test]
    fn invalid_characters_merge_into_one_token() {
        assert_eq!(kinds("a $$ b"), vec![Token::Ident("a"), Token::Invalid("$$"), Token::Ident("b")]);
        assert_eq!(kinds("\"open\nx"), vec![Token::UnterminatedStr("\"open"), Token::Newline, Token::Ident("x")]);
    }
}

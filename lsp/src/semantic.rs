//! Semantic tokens: keywords, comments, strings and numbers from the lexer, and every name
//! coloured by what it refers to (model, function, argument, dimension, built-in, ...).

use crate::analyzed::Analyzed;
use crate::syntax::starts_statement;
use nnc_compiler::DefKind;
use nnc_compiler::builtins;
use nnc_grammar::{Item, Span, Token, lex};
use std::collections::{HashMap, HashSet};
use tower_lsp_server::ls_types::{SemanticToken, SemanticTokenModifier, SemanticTokenType, SemanticTokensLegend};

/// The token types, in the order of their indices in the legend.
const TYPES: &[SemanticTokenType] = &[
    SemanticTokenType::KEYWORD,
    SemanticTokenType::COMMENT,
    SemanticTokenType::STRING,
    SemanticTokenType::NUMBER,
    SemanticTokenType::OPERATOR,
    SemanticTokenType::FUNCTION,
    SemanticTokenType::CLASS,
    SemanticTokenType::PARAMETER,
    SemanticTokenType::VARIABLE,
    SemanticTokenType::PROPERTY,
    SemanticTokenType::TYPE_PARAMETER,
];

const MODIFIERS: &[SemanticTokenModifier] = &[
    SemanticTokenModifier::DEFINITION,
    SemanticTokenModifier::READONLY,
    SemanticTokenModifier::DEFAULT_LIBRARY,
    SemanticTokenModifier::DOCUMENTATION,
];

#[derive(Clone, Copy)]
enum TokenType {
    Keyword,
    Comment,
    String,
    Number,
    Operator,
    Function,
    Class,
    Parameter,
    Variable,
    Property,
    TypeParameter,
}

const DEFINITION: u32 = 1;
const READONLY: u32 = 2;
const DEFAULT_LIBRARY: u32 = 4;
const DOCUMENTATION: u32 = 8;

pub fn legend() -> SemanticTokensLegend {
    SemanticTokensLegend { token_types: TYPES.to_vec(), token_modifiers: MODIFIERS.to_vec() }
}

/// The tokens that start in `within` (the whole text when `None`), encoded relative to each
/// other as the protocol wants.
pub fn semantic_tokens(analyzed: &Analyzed, within: Option<Span>) -> Vec<SemanticToken> {
    let text = analyzed.text();
    let resolution = &analyzed.analysis.resolution;
    let definitions: HashMap<Span, DefKind> = resolution.definitions.iter().map(|d| (d.span, d.kind)).collect();
    let references: HashMap<Span, DefKind> =
        resolution.references.iter().map(|&(span, def)| (span, resolution.definitions[def].kind)).collect();
    let setting_keys: HashSet<Span> = analyzed
        .analysis
        .file
        .items
        .iter()
        .filter_map(|item| match item {
            Item::Train(def) => Some(def.settings.iter().map(|s| s.key.span)),
            _ => None,
        })
        .flatten()
        .collect();
    let tokens = lex(text);
    let mut out = Vec::new();
    let mut previous = (0u32, 0u32);
    // How many parentheses are open: `name =` inside them is a named argument.
    let mut depth = 0usize;
    for (index, &(token, span)) in tokens.iter().enumerate() {
        match token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::LBrace | Token::RBrace => depth = 0,
            token if starts_statement(&token) => depth = 0,
            _ => {}
        }
        if within.is_some_and(|w| span.start < w.start || span.start > w.end) {
            continue;
        }
        let classified = match token {
            Token::DocComment(_) => Some((TokenType::Comment, DOCUMENTATION)),
            Token::LineComment => Some((TokenType::Comment, 0)),
            Token::Str(_) | Token::UnterminatedStr(_) | Token::SingleQuoted(_) => Some((TokenType::String, 0)),
            Token::Int(_) | Token::Float(_) => Some((TokenType::Number, 0)),
            Token::Plus | Token::Minus | Token::Star | Token::Slash | Token::Caret | Token::At | Token::Pipe => {
                Some((TokenType::Operator, 0))
            }
            Token::Ident(name) => {
                let next_is_eq = tokens.get(index + 1).is_some_and(|(t, _)| *t == Token::Eq);
                if let Some(&kind) = definitions.get(&span) {
                    Some((def_type(kind), DEFINITION | readonly(kind)))
                } else if let Some(&kind) = references.get(&span) {
                    Some((def_type(kind), readonly(kind)))
                } else if setting_keys.contains(&span) {
                    Some((TokenType::Property, 0))
                } else if next_is_eq && depth > 0 {
                    Some((TokenType::Parameter, 0))
                } else if builtins::lookup(name).is_some() {
                    Some((TokenType::Function, DEFAULT_LIBRARY))
                } else {
                    None
                }
            }
            token if token.text().is_some_and(|t| t.chars().all(|c| c.is_ascii_alphabetic())) => {
                Some((TokenType::Keyword, 0))
            }
            _ => None,
        };
        let Some((kind, modifiers)) = classified else {
            continue;
        };
        let start = analyzed.position(span.start);
        let end = analyzed.position(span.end);
        // Every token lies on one line; a comment's `\r` is not part of its length.
        let length = if end.line == start.line { end.character - start.character } else { continue };
        if length == 0 {
            continue;
        }
        let delta_line = start.line - previous.0;
        let delta_start = if delta_line == 0 { start.character - previous.1 } else { start.character };
        out.push(SemanticToken {
            delta_line,
            delta_start,
            length,
            token_type: kind as u32,
            token_modifiers_bitset: modifiers,
        });
        previous = (start.line, start.character);
    }
    out
}

fn def_type(kind: DefKind) -> TokenType {
    match kind {
        DefKind::Fn => TokenType::Function,
        DefKind::Model | DefKind::Layer => TokenType::Class,
        DefKind::Constant | DefKind::Input | DefKind::Local => TokenType::Variable,
        DefKind::FnParam | DefKind::ModelArg => TokenType::Parameter,
        DefKind::ShapeSymbol => TokenType::TypeParameter,
        DefKind::Param => TokenType::Property,
    }
}

fn readonly(kind: DefKind) -> u32 {
    if matches!(kind, DefKind::Constant | DefKind::ModelArg) { READONLY } else { 0 }
}

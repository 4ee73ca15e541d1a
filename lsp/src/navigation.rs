//! Go to definition, find references and rename, over the definitions and references that
//! name resolution records.

use crate::analyzed::Analyzed;
use crate::syntax::word_at;
use nnc_grammar::{Span, Token, lex};

/// The index (into the resolution's definitions) of the user definition named at `offset`,
/// whether the cursor is on the definition or on a use, and the span of that name.
pub fn definition_at(analyzed: &Analyzed, offset: usize) -> Option<(usize, Span)> {
    let (span, _) = word_at(analyzed.text(), offset)?;
    let resolution = &analyzed.analysis.resolution;
    let index = resolution
        .definitions
        .iter()
        .position(|def| def.span == span)
        .or_else(|| resolution.references.iter().find(|(s, _)| *s == span).map(|&(_, def)| def))?;
    Some((index, span))
}

/// Where the name at `offset` is defined.
pub fn goto_definition(analyzed: &Analyzed, offset: usize) -> Option<Span> {
    definition_at(analyzed, offset).map(|(index, _)| analyzed.analysis.resolution.definitions[index].span)
}

/// Every use of the name at `offset`, with its definition first when `include_definition`.
pub fn references(analyzed: &Analyzed, offset: usize, include_definition: bool) -> Vec<Span> {
    let Some((index, _)) = definition_at(analyzed, offset) else {
        return Vec::new();
    };
    let resolution = &analyzed.analysis.resolution;
    let mut spans: Vec<Span> =
        resolution.references.iter().filter(|&&(_, def)| def == index).map(|&(span, _)| span).collect();
    spans.sort_unstable();
    spans.dedup();
    if include_definition {
        spans.insert(0, resolution.definitions[index].span);
    }
    spans
}

/// The span of the name that a rename at `offset` would change.
pub fn prepare_rename(analyzed: &Analyzed, offset: usize) -> Option<Span> {
    definition_at(analyzed, offset).map(|(_, span)| span)
}

/// The edits that rename the definition at `offset` and all its uses to `new_name`, or
/// why that cannot be done.
pub fn rename(analyzed: &Analyzed, offset: usize, new_name: &str) -> Result<Vec<(Span, String)>, String> {
    let tokens = lex(new_name);
    match tokens.as_slice() {
        [(Token::Ident(_), span)] if span.len() == new_name.len() => {}
        [(token, _)] if token.text().is_some() => return Err(format!("`{new_name}` is a keyword")),
        _ => return Err(format!("`{new_name}` is not a name: names are letters, digits and `_`")),
    }
    if definition_at(analyzed, offset).is_none() {
        return Err("there is no name defined in this file here".to_string());
    }
    Ok(references(analyzed, offset, true).into_iter().map(|span| (span, new_name.to_string())).collect())
}

//! Formatting: the whole document replaced by its canonical form, when that differs.

use crate::analyzed::Analyzed;
use nnc_grammar::Span;

/// The edit that formats the text with `formatter`: `None` when the text cannot be
/// formatted (it has syntax errors) or is formatted already.
pub fn format_edit(text: &str, formatter: impl Fn(&str) -> Option<String>) -> Option<(Span, String)> {
    let formatted = formatter(text)?;
    (formatted != text).then(|| (Span::new(0, text.len()), formatted))
}

/// The edit that formats an analysed document with the language's formatter.
pub fn format_document(analyzed: &Analyzed) -> Option<(Span, String)> {
    format_edit(analyzed.text(), format_source)
}

/// TO BE REPLACED by `nnc_grammar::format_source` once the formatter is merged: the formatter
/// is written on its own branch with exactly this signature (`None` on syntax errors). Until
/// then nothing is formatted. Replace this function's body by a call to it, or delete it and
/// import `nnc_grammar::format_source` above.
fn format_source(_text: &str) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_text_is_replaced_when_the_formatter_changes_it() {
        let trim = |text: &str| Some(text.lines().map(str::trim_end).collect::<Vec<_>>().join("\n") + "\n");
        assert_eq!(format_edit("fn f(x) = x   \n", trim), Some((Span::new(0, 15), "fn f(x) = x\n".to_string())));
        assert_eq!(format_edit("fn f(x) = x\n", trim), None);
        assert_eq!(format_edit("fn f(", |_: &str| None), None);
    }
}

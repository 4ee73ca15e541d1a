//! Formatting: the whole document replaced by its canonical form (`nnc fmt`'s), when that
//! differs.

use crate::analyzed::Analyzed;
use nnc_grammar::{Span, format_source};

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

    #[test]
    fn documents_are_formatted_as_nnc_fmt_formats_them() {
        let analyzed = Analyzed::new("fn f(x)=x*2\n");
        assert_eq!(format_document(&analyzed), Some((Span::new(0, 12), "fn f(x) = x * 2\n".to_string())));
        assert_eq!(format_document(&Analyzed::new("fn f(x) = x * 2\n")), None);
        assert_eq!(format_document(&Analyzed::new("fn f(x = \n")), None, "syntax errors are not formatted");
    }
}

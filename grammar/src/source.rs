//! Turning the bytes of a file into source text, reporting bytes that are not UTF-8.

use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::span::Span;

/// How many invalid byte sequences get a diagnostic of their own.
const MAX_REPORTS: usize = 5;

/// The text of `bytes`, with every byte that is not part of valid UTF-8 replaced by a
/// space, so that byte offsets in the text are offsets in the file; and a diagnostic for
/// each such run of bytes.
pub fn decode(bytes: &[u8]) -> (String, Vec<Diagnostic>) {
    // A UTF-16 file is not a text of mistakes but a text in another encoding: say so once.
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        let diagnostic = Diagnostic::new(
            Code::InvalidUtf8,
            "the file is UTF-16, not UTF-8",
            Span::new(0, 0),
            "a UTF-16 byte-order mark",
        )
        .with_help("save the file as UTF-8");
        // Blank text of the same length keeps offsets valid, and nothing else is reported.
        let blank = bytes.iter().map(|&b| if b == b'\n' { '\n' } else { ' ' }).collect();
        return (blank, vec![diagnostic]);
    }
    let mut text = String::with_capacity(bytes.len());
    let mut diagnostics: Vec<Diagnostic> = Vec::new();
    let mut invalid_runs = 0usize;
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        let invalid = chunk.invalid();
        if invalid.is_empty() {
            continue;
        }
        let start = text.len();
        text.extend(std::iter::repeat_n(' ', invalid.len()));
        // Consecutive invalid bytes arrive as separate chunks; report them as one run.
        if chunk.valid().is_empty()
            && let Some(last) = diagnostics.last_mut()
            && last.primary.span.end == start
        {
            last.primary.span.end = text.len();
            let bytes = &bytes[last.primary.span.range()];
            let shown: Vec<String> = bytes.iter().map(|b| format!("0x{b:02X}")).collect();
            last.primary.message = format!("invalid bytes {}", shown.join(" "));
            continue;
        }
        invalid_runs += 1;
        if invalid_runs <= MAX_REPORTS {
            let shown: Vec<String> = invalid.iter().map(|b| format!("0x{b:02X}")).collect();
            diagnostics.push(
                Diagnostic::new(
                    Code::InvalidUtf8,
                    "the file is not valid UTF-8",
                    Span::new(start, text.len()),
                    format!("invalid byte{} {}", if invalid.len() > 1 { "s" } else { "" }, shown.join(" ")),
                )
                .with_help("save the file as UTF-8"),
            );
        }
    }
    if invalid_runs > MAX_REPORTS
        && let Some(last) = diagnostics.last_mut()
    {
        last.notes.push(format!("{} more invalid byte sequences follow", invalid_runs - MAX_REPORTS));
    }
    (text, diagnostics)
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn invalid_bytes_become_spaces_at_the_same_offsets() {
        let (text, diagnostics) = decode(b"ab\xff\xfecd\xc3");
        assert_eq!(text, "ab  cd ");
        assert_eq!(diagnostics.len(), 2);
        assert_eq!(diagnostics[0].span().range(), 2..4);
        assert_eq!(decode("λ ok".as_bytes()), ("λ ok".to_string(), vec![]));
    }
}

//! Open documents: their text and version, the conversion between LSP positions (lines and
//! UTF-16 columns) and byte offsets, and edits applied with clamping.
//!
//! The LSP counts lines separated by `\n`, `\r\n` or `\r`, and columns in UTF-16 code units;
//! the front end speaks byte offsets. Positions from a client may be anywhere: past the end
//! of a line or of the text, or between the two halves of a surrogate pair. They are
//! clamped the way the LSP specification asks (a column past the end of its line is the
//! end of the line) and moved back to the start of a character they fall inside, so an
//! edit never splits a character and the text stays valid UTF-8.

use nnc_grammar::Span;
use tower_lsp_server::ls_types::{Position, Range, TextDocumentContentChangeEvent};

/// Where each line of a text starts, for conversions in O(log n) plus the line's length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    pub fn new(text: &str) -> Lines {
        let bytes = text.as_bytes();
        let mut starts = vec![0];
        for (i, &byte) in bytes.iter().enumerate() {
            let ends_line = byte == b'\n' || (byte == b'\r' && bytes.get(i + 1) != Some(&b'\n'));
            if ends_line {
                starts.push(i + 1);
            }
        }
        Lines { starts }
    }

    pub fn count(&self) -> usize {
        self.starts.len()
    }

    /// The byte range of line `line`'s content, without its line break.
    fn content(&self, text: &str, line: usize) -> (usize, usize) {
        let start = self.starts[line];
        let end = match self.starts.get(line + 1) {
            Some(&next) if text.as_bytes()[..next].ends_with(b"\r\n") => next - 2,
            Some(&next) => next - 1,
            None => text.len(),
        };
        (start, end)
    }

    /// The LSP position of byte `offset`. Offsets past the end, inside a character or inside
    /// a line break are moved back to the nearest place a cursor can be.
    pub fn position(&self, text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&start| start <= offset) - 1;
        let (start, end) = self.content(text, line);
        let column: usize = text[start..offset.min(end)].chars().map(char::len_utf16).sum();
        Position::new(saturate(line), saturate(column))
    }

    /// The byte offset of an LSP position, clamped: a line past the last is the end of the
    /// text, a column past its line's end is the end of the line, and a column inside a
    /// character (between the halves of a surrogate pair) is that character's start.
    pub fn offset(&self, text: &str, position: Position) -> usize {
        let line = position.line as usize;
        if line >= self.starts.len() {
            return text.len();
        }
        let (start, end) = self.content(text, line);
        let mut column = position.character as usize;
        let mut offset = start;
        for c in text[start..end].chars() {
            let width = c.len_utf16();
            if column < width {
                break;
            }
            column -= width;
            offset += c.len_utf8();
        }
        offset
    }

    pub fn range(&self, text: &str, span: Span) -> Range {
        Range::new(self.position(text, span.start), self.position(text, span.end))
    }

    /// The byte span of an LSP range, with its ends in order.
    pub fn span(&self, text: &str, range: Range) -> Span {
        let (a, b) = (self.offset(text, range.start), self.offset(text, range.end));
        Span::new(a.min(b), a.max(b))
    }
}

/// Counts past `u32::MAX` (a text of 4 GiB) are reported as the largest position there is.
fn saturate(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// An open document as the client last described it.
#[derive(Clone, Debug)]
pub struct Document {
    text: String,
    version: i32,
    lines: Lines,
}

/// What became of an edit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// The edit's version is not newer than the document's: it was dropped.
    Stale,
}

impl Document {
    pub fn new(text: String, version: i32) -> Document {
        let lines = Lines::new(&text);
        Document { text, version, lines }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn version(&self) -> i32 {
        self.version
    }

    pub fn lines(&self) -> &Lines {
        &self.lines
    }

    /// Applies the changes of one `didChange`, in order, if `version` is newer than the
    /// document's. A change without a range replaces the whole text; a change with one
    /// replaces that range, clamped to the text.
    pub fn apply(&mut self, version: i32, changes: &[TextDocumentContentChangeEvent]) -> Applied {
        if version <= self.version {
            return Applied::Stale;
        }
        for change in changes {
            match change.range {
                None => self.text.clone_from(&change.text),
                Some(range) => {
                    let span = self.lines.span(&self.text, range);
                    self.text.replace_range(span.range(), &change.text);
                }
            }
            self.lines = Lines::new(&self.text);
        }
        self.version = version;
        Applied::Applied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(line: u32, character: u32) -> Position {
        Position::new(line, character)
    }

    fn change(range: Option<((u32, u32), (u32, u32))>, text: &str) -> TextDocumentContentChangeEvent {
        TextDocumentContentChangeEvent {
            range: range.map(|((l1, c1), (l2, c2))| Range::new(pos(l1, c1), pos(l2, c2))),
            range_length: None,
            text: text.to_string(),
        }
    }

    #[test]
    fn columns_count_utf16_code_units() {
        // `λ` is 2 bytes and 1 unit, `𝔸` 4 bytes and 2 units (a surrogate pair).
        let text = "ab\nλ𝔸x\n";
        let lines = Lines::new(text);
        let x = text.find('x').unwrap();
        assert_eq!(lines.position(text, x), pos(1, 3));
        assert_eq!(lines.offset(text, pos(1, 3)), x);
        assert_eq!(lines.offset(text, pos(1, 1)), text.find('𝔸').unwrap());
    }

    #[test]
    fn positions_inside_characters_move_to_their_start() {
        let text = "λ𝔸x";
        let lines = Lines::new(text);
        // Column 2 is between the halves of `𝔸`'s surrogate pair.
        assert_eq!(lines.offset(text, pos(0, 2)), 2);
        // Byte 1 is inside `λ`, bytes 3..6 inside `𝔸`.
        assert_eq!(lines.position(text, 1), pos(0, 0));
        assert_eq!(lines.position(text, 4), pos(0, 1));
    }

    #[test]
    fn out_of_range_positions_are_clamped() {
        let text = "abc\r\ndé\n";
        let lines = Lines::new(text);
        assert_eq!(lines.count(), 3);
        // Past the end of line 0: the end of its content, before `\r\n`.
        assert_eq!(lines.offset(text, pos(0, 99)), 3);
        assert_eq!(lines.offset(text, pos(1, 99)), text.len() - 1);
        // A line past the last: the end of the text.
        assert_eq!(lines.offset(text, pos(7, 0)), text.len());
        assert_eq!(lines.position(text, 999), pos(2, 0));
        // Inside `\r\n`: the end of the line's content.
        assert_eq!(lines.position(text, 4), pos(0, 3));
    }

    #[test]
    fn every_line_break_of_the_lsp_counts() {
        let text = "a\rb\r\nc\nd";
        let lines = Lines::new(text);
        assert_eq!(lines.count(), 4);
        assert_eq!(lines.offset(text, pos(1, 0)), 2);
        assert_eq!(lines.offset(text, pos(2, 0)), 5);
        assert_eq!(lines.offset(text, pos(3, 0)), 7);
        assert_eq!(lines.position(text, 5), pos(2, 0));
    }

    #[test]
    fn edits_apply_in_order_and_stale_versions_are_dropped() {
        let mut doc = Document::new("model M {\n}\n".to_string(), 1);
        let edits = [change(Some(((0, 6), (0, 7))), "Mλ"), change(Some(((1, 0), (1, 0))), "  input [B, 2]\n")];
        assert_eq!(doc.apply(2, &edits), Applied::Applied);
        assert_eq!(doc.text(), "model Mλ {\n  input [B, 2]\n}\n");
        assert_eq!(doc.apply(2, &[change(None, "lost")]), Applied::Stale);
        assert_eq!(doc.apply(1, &[change(None, "lost")]), Applied::Stale);
        assert_eq!(doc.version(), 2);
        assert_eq!(doc.apply(5, &[change(None, "fn f(x) = x")]), Applied::Applied);
        assert_eq!((doc.text(), doc.version()), ("fn f(x) = x", 5));
    }

    #[test]
    fn reversed_and_out_of_range_edits_stay_inside_the_text() {
        let mut doc = Document::new("a𝔸b".to_string(), 0);
        // Reversed, and its end inside the surrogate pair: replaces `a`.
        doc.apply(1, &[change(Some(((0, 2), (0, 0))), "x")]);
        assert_eq!(doc.text(), "x𝔸b");
        doc.apply(2, &[change(Some(((3, 4), (9, 9))), "!")]);
        assert_eq!(doc.text(), "x𝔸b!");
    }
}

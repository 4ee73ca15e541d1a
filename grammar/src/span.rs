//! Byte spans into a source text, and the line index that turns them into lines and columns.

use serde::Serialize;

/// A half-open range of byte offsets `start..end` into one source text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        debug_assert!(start <= end, "span {start}..{end} is reversed");
        Span { start, end }
    }

    /// An empty span at `offset`, used where something is missing.
    pub fn point(offset: usize) -> Self {
        Span { start: offset, end: offset }
    }

    /// The smallest span that covers both `self` and `other`.
    pub fn cover(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }

    pub fn len(self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(self) -> bool {
        self.start == self.end
    }

    pub fn contains(self, offset: usize) -> bool {
        self.start <= offset && offset < self.end
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start..self.end
    }
}

impl From<std::ops::Range<usize>> for Span {
    fn from(range: std::ops::Range<usize>) -> Self {
        Span::new(range.start, range.end)
    }
}

/// A position in a text as people and editors count it: 0-based line, and the column in
/// bytes, in Unicode scalar values and in UTF-16 code units (what the LSP speaks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Position {
    pub line: usize,
    pub byte_column: usize,
    pub char_column: usize,
    pub utf16_column: usize,
}

/// Start offsets of every line of a text, for offset-to-position conversion in O(log n).
#[derive(Clone, Debug)]
pub struct LineIndex {
    line_starts: Vec<usize>,
    len: usize,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.bytes().enumerate().filter(|&(_, b)| b == b'\n').map(|(i, _)| i + 1));
        LineIndex { line_starts, len: text.len() }
    }

    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }

    /// The position of byte `offset` in `text` (the text this index was built from). Offsets
    /// past the end, or inside a multi-byte character, are moved back to the nearest boundary.
    pub fn position(&self, text: &str, offset: usize) -> Position {
        let mut offset = offset.min(self.len);
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let line_text = &text[self.line_starts[line]..offset];
        Position {
            line,
            byte_column: line_text.len(),
            char_column: line_text.chars().count(),
            utf16_column: line_text.chars().map(char::len_utf16).sum(),
        }
    }

    /// The byte offset where `line` starts, or the text's end for a line past the last.
    pub fn line_start(&self, line: usize) -> usize {
        self.line_starts.get(line).copied().unwrap_or(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_bytes_chars_and_utf16() {
        let text = "ab\nλ𝔸x\n";
        let index = LineIndex::new(text);
        assert_eq!(index.line_count(), 3);
        let x = text.find('x').unwrap();
        let pos = index.position(text, x);
        assert_eq!((pos.line, pos.byte_column, pos.char_column, pos.utf16_column), (1, 6, 2, 3));
        // An offset inside `λ` moves back to its start.
        let inside = index.position(text, 4);
        assert_eq!((inside.line, inside.char_column), (1, 0));
        assert_eq!(index.position(text, 1000).line, 2);
    }
}

//! Byte offsets ↔ LSP positions (zero-based lines, UTF-16 columns).
//!
//! The compiler speaks byte offsets; editors speak UTF-16 code units. Every
//! conversion clamps: a position past the end of a line lands at the line's
//! end, a line past the end of the file at the file's end, an offset inside
//! a character at the character's start. Client input can therefore never
//! produce an out-of-range slice.

use tower_lsp_server::ls_types::{Position, Range};
use varpulis_syntax::Span;

/// Line starts of one text, for conversions in both directions.
pub struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    /// Indexes `text`.
    pub fn new(text: &'a str) -> Lines<'a> {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { text, starts }
    }

    /// The position of byte `offset` (clamped to the text).
    pub fn position(&self, offset: u32) -> Position {
        let mut offset = (offset as usize).min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self
            .starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let start = self.starts.get(line).copied().unwrap_or(0);
        let col: usize = self
            .text
            .get(start..offset)
            .unwrap_or_default()
            .chars()
            .map(char::len_utf16)
            .sum();
        Position::new(line as u32, col as u32)
    }

    /// The range of a byte span.
    pub fn range(&self, span: Span) -> Range {
        Range::new(self.position(span.start), self.position(span.end))
    }

    /// The byte offset of `pos`, clamped to its line and to the text.
    pub fn offset(&self, pos: Position) -> u32 {
        let Some(&start) = self.starts.get(pos.line as usize) else {
            return self.text.len() as u32;
        };
        let end = self
            .starts
            .get(pos.line as usize + 1)
            .map_or(self.text.len(), |&s| s - 1);
        let line = self.text.get(start..end).unwrap_or_default();
        let mut units = 0u32;
        for (i, ch) in line.char_indices() {
            if units >= pos.character {
                return (start + i) as u32;
            }
            units += ch.len_utf16() as u32;
        }
        // Past the last character: the end of the line, before any `\r`.
        let trimmed = line.strip_suffix('\r').unwrap_or(line);
        (start + trimmed.len()) as u32
    }

    /// The byte span of a range (start and end clamped, end ≥ start).
    pub fn span(&self, range: Range) -> Span {
        let a = self.offset(range.start);
        let b = self.offset(range.end).max(a);
        Span::new(a, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(text: &str, offset: u32) -> (u32, u32, u32) {
        let l = Lines::new(text);
        let p = l.position(offset);
        (p.line, p.character, l.offset(p))
    }

    #[test]
    fn utf16_columns_count_surrogate_pairs_and_accents() {
        // `é` is 2 bytes and 1 unit; `😀` is 4 bytes and 2 units.
        let text = "a\né😀x";
        assert_eq!(roundtrip(text, 2), (1, 0, 2));
        assert_eq!(roundtrip(text, 4), (1, 1, 4));
        assert_eq!(roundtrip(text, 8), (1, 3, 8));
        // Inside a character: clamped to its start.
        assert_eq!(roundtrip(text, 5), (1, 1, 4));
    }

    #[test]
    fn out_of_range_positions_are_clamped() {
        let l = Lines::new("ab\r\ncd");
        assert_eq!(l.offset(Position::new(0, 99)), 2);
        assert_eq!(l.offset(Position::new(9, 0)), 6);
        assert_eq!(l.offset(Position::new(1, 1)), 5);
        assert_eq!(l.position(99), Position::new(1, 2));
    }
}

//! Renderers turning [`Diagnostic`](crate::diagnostic::Diagnostic)s into
//! text: [`terminal`] (ariadne, with or without colour) and [`json`] (for
//! tools). The LSP maps the same model onto its own types.

pub mod json;
pub mod terminal;

/// Converts byte offsets to 1-based line and column numbers (columns count
/// characters, not bytes).
#[derive(Clone, Debug)]
pub struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// Indexes `text`.
    pub fn new(text: &'a str) -> LineIndex<'a> {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    /// The 1-based `(line, column)` of a byte offset (clamped to the text).
    pub fn position(&self, offset: u32) -> (usize, usize) {
        let mut offset = (offset as usize).min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self
            .starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let col = self.text[self.starts[line]..offset].chars().count();
        (line + 1, col + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, offset: u32) -> (usize, usize) {
        LineIndex::new(text).position(offset)
    }

    #[test]
    fn positions_are_one_based_and_count_chars() {
        assert_eq!(check("ab\ncd", 0), (1, 1));
        assert_eq!(check("ab\ncd", 4), (2, 2));
        assert_eq!(check("é\nx", 3), (2, 1));
        assert_eq!(check("ab", 99), (1, 3));
    }
}

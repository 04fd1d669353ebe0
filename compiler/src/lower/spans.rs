//! The span table: byte ranges with their 1-based line and column, interned
//! so that each distinct source range is stored once. The Program never
//! holds source text, only these positions.

use rustc_hash::FxHashMap;
use varpulis_program::{SpanId, SpanInfo, SpanTable};
use varpulis_syntax::Span;

/// Interns absolute spans of one file into a [`SpanTable`].
pub(crate) struct SpanInterner {
    /// The file's index in the span table.
    file: u32,
    /// Byte offset of the start of each line.
    line_starts: Vec<u32>,
    text: String,
    ids: FxHashMap<(u32, u32), SpanId>,
}

impl SpanInterner {
    /// An interner for the file `text`, number `file` in the span table.
    pub(crate) fn new(text: &str, file: u32) -> SpanInterner {
        let mut line_starts = vec![0];
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                line_starts.push(super::to_u32(i + 1));
            }
        }
        SpanInterner {
            file,
            line_starts,
            text: text.to_string(),
            ids: FxHashMap::default(),
        }
    }

    /// The id of an absolute span, adding it to `table` on first use.
    pub(crate) fn intern(&mut self, table: &mut SpanTable, span: Span) -> SpanId {
        if let Some(id) = self.ids.get(&(span.start, span.end)) {
            return *id;
        }
        let line_index = self
            .line_starts
            .partition_point(|&s| s <= span.start)
            .saturating_sub(1);
        let line_start = self.line_starts.get(line_index).copied().unwrap_or(0);
        // Columns count characters, not bytes; a position past the text (a
        // tree built by hand) falls back to the byte distance.
        let column = self
            .text
            .get(line_start as usize..span.start as usize)
            .map_or(span.start.saturating_sub(line_start), |s| {
                super::to_u32(s.chars().count())
            });
        let id = table.push(SpanInfo {
            file: self.file,
            start: span.start,
            end: span.end,
            line: super::to_u32(line_index + 1),
            column: column + 1,
        });
        self.ids.insert((span.start, span.end), id);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, start: u32) -> (u32, u32) {
        let mut table = SpanTable::default();
        let mut i = SpanInterner::new(text, 0);
        let id = i.intern(&mut table, Span::new(start, start + 1));
        let info = table.get(id).copied().expect("just pushed");
        (info.line, info.column)
    }

    #[test]
    fn lines_and_columns_are_one_based_and_count_chars() {
        assert_eq!(check("ab\ncd", 0), (1, 1));
        assert_eq!(check("ab\ncd", 4), (2, 2));
        assert_eq!(check("é\nxé y", 7), (2, 4));
    }
}

//! Declaration loops (docs/LANGUAGE.md#declaration-loops), kept as written.
//!
//! A loop body is text with `{V}` placeholders that only parses after
//! expansion, so the formatter does not reprint it from a tree. It finds the
//! loops with the same rules as the expander (`crate::loops`), normalises the
//! header's spacing and re-indents the body: the body's first line goes to
//! one indentation level and the other lines keep their depth relative to
//! it. The expander strips the first line's indentation from every line, so
//! the expanded text keeps its layout.

use super::INDENT;
use std::ops::Range;

/// One declaration loop in the original text.
pub(super) struct Loop {
    /// From the header's first byte to the end of the last body line.
    pub range: Range<usize>,
    /// The header, normalised: `for V in A..B:` plus any trailing comment.
    header: String,
    /// The body lines (without line breaks).
    body: Vec<Range<usize>>,
    /// Where the text kept verbatim after the body ends, when an item of
    /// the last expansion continues below the loop at column 0.
    tail_end: Option<usize>,
}

use crate::loops::{header_text, in_block_comment_after, indentation};

/// `for V in A..B:` / `for V in A..=B:` at column 0 with integer bounds and
/// an optional trailing comment, normalised; `None` for any other line.
fn header(line: &str) -> Option<String> {
    let h = header_text(line)?;
    let op = if h.inclusive { "..=" } else { ".." };
    let mut out = format!("for {} in {}{op}{}:", h.var, h.from, h.to);
    if !h.comment.is_empty() {
        out.push_str("  ");
        out.push_str(h.comment);
    }
    Some(out)
}

/// The declaration loops of `text` in order.
pub(super) fn find(text: &str) -> Vec<Loop> {
    let mut lines = Vec::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let body = line.strip_suffix('\n').unwrap_or(line);
        lines.push(start..start + body.len());
        start += line.len();
    }
    let mut loops = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(header) = header(&text[lines[i].clone()]) else {
            i += 1;
            continue;
        };
        let mut last = i;
        let mut j = i + 1;
        let mut in_comment = false;
        while j < lines.len() {
            let l = &text[lines[j].clone()];
            // Same rule as the expander: a line continuing a block comment
            // opened in the body belongs to the body.
            let continues_comment = in_comment;
            in_comment = in_block_comment_after(l, in_comment);
            if !l.trim().is_empty() {
                if indentation(l) == 0 && !continues_comment {
                    break;
                }
                last = j;
            }
            j += 1;
        }
        loops.push(Loop {
            range: lines[i].start..lines[last].end,
            header,
            body: lines[i + 1..=last].to_vec(),
            tail_end: None,
        });
        i = last + 1;
    }
    loops
}

impl Loop {
    /// Keeps the original text up to `end` (after the body) with the loop.
    pub fn extend_to(&mut self, end: usize) {
        if end > self.range.end {
            self.tail_end = Some(self.tail_end.map_or(end, |t| t.max(end)));
        }
    }

    /// The end of the loop's text, with any verbatim tail.
    pub fn end(&self) -> usize {
        self.tail_end.unwrap_or(self.range.end)
    }

    /// The loop re-indented, ending in a line break.
    pub fn render(&self, text: &str) -> String {
        let strip = self
            .body
            .iter()
            .map(|r| &text[r.clone()])
            .find(|l| !l.trim().is_empty())
            .map_or(0, indentation);
        let mut out = self.header.clone();
        out.push('\n');
        for r in &self.body {
            let line = text[r.clone()].trim_end();
            if line.is_empty() {
                if !out.ends_with("\n\n") {
                    out.push('\n');
                }
                continue;
            }
            let depth = indentation(line).saturating_sub(strip);
            out.extend(std::iter::repeat_n(' ', INDENT + depth));
            out.push_str(line.trim_start());
            out.push('\n');
        }
        if let Some(tail) = self.tail_end.and_then(|end| text.get(self.range.end..end)) {
            // The lines that continue the last expansion, as written (they
            // are outside the loop, so re-indenting them would move them in).
            let mut blank = false;
            for line in tail.trim_start_matches(['\r', '\n']).lines() {
                let line = line.trim_end();
                if line.is_empty() {
                    blank = true;
                    continue;
                }
                if blank {
                    out.push('\n');
                    blank = false;
                }
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

//! The output buffer and comment placement shared by all printers.
//!
//! The printer walks the items in source order and writes whole lines. Each
//! line it writes for a piece of syntax (an *anchor*: an item header, a
//! field, a statement, a pipeline operator, one argument of a broken list)
//! first takes every comment that starts before the anchor ends and puts it
//! on its own line above (so a comment inside an expression moves up in
//! front of its line), then writes the anchor, then appends the comments
//! that follow the anchor on the same source line. Comments are never
//! dropped: every one is consumed exactly once, in order.

use super::{INDENT, MAX_WIDTH};
use crate::lexer::{Token, TokenKind};
use crate::span::Span;

/// Formatter state: the source, its comments and the output.
pub(super) struct Fmt<'a> {
    /// The input text as written; comment positions refer to it.
    pub orig: &'a str,
    /// The code tokens of [`Fmt::orig`], for finding block openers' colons.
    pub code: Vec<Token>,
    /// The comments of [`Fmt::orig`] in order.
    pub comments: Vec<Span>,
    /// The first comment not yet printed.
    pub next: usize,
    /// The text the current item's spans are relative to (loop-expanded).
    pub text: &'a str,
    /// Offset of the current item in [`Fmt::text`].
    pub base: u32,
    /// Added to a position in [`Fmt::text`] to get one in [`Fmt::orig`].
    pub shift: i64,
    /// The output so far.
    pub out: String,
    /// The last line written opens a block: no blank line may follow.
    pub block_start: bool,
}

impl<'a> Fmt<'a> {
    /// A printer over `orig`, whose items' spans are relative to `text`.
    pub fn new(orig: &'a str, text: &'a str) -> Fmt<'a> {
        let tokens = crate::lex(orig);
        let comments = tokens
            .iter()
            .filter(|t| t.kind.is_comment())
            .map(|t| t.span)
            .collect();
        let code = tokens
            .into_iter()
            .filter(|t| !t.kind.is_comment())
            .collect();
        Fmt {
            orig,
            code,
            comments,
            next: 0,
            text,
            base: 0,
            shift: 0,
            out: String::new(),
            block_start: false,
        }
    }

    // ----- positions ------------------------------------------------------

    /// An item-relative span as a span of the original text.
    pub fn abs(&self, span: Span) -> Span {
        let map = |p: u32| (i64::from(self.base) + i64::from(p) + self.shift).max(0) as u32;
        Span::new(map(span.start), map(span.end))
    }

    /// The source text of an item-relative span.
    pub fn slice(&self, span: Span) -> &'a str {
        let start = (self.base + span.start) as usize;
        let end = (self.base + span.end) as usize;
        self.text.get(start..end).unwrap_or("")
    }

    /// Whether a blank line separates `pos` from the code or comment before
    /// it in the original text.
    pub fn blank_before(&self, pos: u32) -> bool {
        let before = self.orig.get(..pos as usize).unwrap_or("");
        let gap = before.len() - before.trim_end().len();
        before[before.len() - gap..].matches('\n').count() >= 2
    }

    /// The end of the last code token that ends at or before `pos`.
    pub fn prev_code_end(&self, pos: u32) -> u32 {
        let i = self.code.partition_point(|t| t.span.end <= pos);
        i.checked_sub(1).map_or(0, |i| self.code[i].span.end)
    }

    /// The code token before the last one ending at or before `pos`.
    pub fn code_token_before(&self, pos: u32, back: usize) -> Option<Token> {
        let i = self.code.partition_point(|t| t.span.end <= pos);
        i.checked_sub(1 + back).map(|i| self.code[i])
    }

    /// The start of the first code token at or after `pos`.
    pub fn next_code_start(&self, pos: u32) -> u32 {
        let i = self.code.partition_point(|t| t.span.start < pos);
        self.code
            .get(i)
            .map_or(self.orig.len() as u32, |t| t.span.start)
    }

    /// The column of `pos` in the original text.
    fn column(&self, pos: u32) -> usize {
        let before = self.orig.get(..pos as usize).unwrap_or("");
        before.len() - before.rfind('\n').map_or(0, |n| n + 1)
    }

    /// Whether an unprinted comment starts inside `span` (original text).
    pub fn has_comment_in(&self, span: Span) -> bool {
        self.comments[self.next..]
            .iter()
            .take_while(|c| c.start < span.end)
            .any(|c| c.start >= span.start)
    }

    // ----- output ---------------------------------------------------------

    /// Writes one line (which may hold the line breaks of a block lambda or
    /// a block comment) and, when `end` is given, the comments following
    /// source position `end` on its line.
    pub fn line(&mut self, indent: usize, text: &str, end: Option<u32>) {
        self.out.extend(std::iter::repeat_n(' ', indent));
        self.out.push_str(text);
        if let Some(end) = end {
            self.trailing(end);
        }
        self.out.push('\n');
        self.block_start = false;
    }

    /// Starts a blank line unless one is already there, nothing precedes it
    /// or a block has just been opened.
    pub fn blank(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with("\n\n") && !self.block_start {
            self.out.push('\n');
        }
    }

    /// The text of a comment, without trailing whitespace.
    fn comment_text(&self, span: Span) -> &'a str {
        self.orig.get(span.range()).unwrap_or("").trim_end()
    }

    /// Prints the comments that start before `before` on their own lines.
    pub fn flush(&mut self, before: u32, indent: usize, keep_blank: bool) {
        while let Some(&c) = self.comments.get(self.next) {
            if c.start >= before {
                break;
            }
            if keep_blank && self.blank_before(c.start) {
                self.blank();
            }
            self.line(indent, self.comment_text(c), None);
            self.next += 1;
        }
    }

    /// Appends the comments that follow source position `end` on its line,
    /// with only closing punctuation between.
    fn trailing(&mut self, mut end: u32) {
        while let Some(&c) = self.comments.get(self.next) {
            let Some(between) = self.orig.get(end as usize..c.start as usize) else {
                break;
            };
            if between.contains('\n') || !self.only_punctuation(end, c.start) {
                break;
            }
            self.out.push_str("  ");
            self.out.push_str(self.comment_text(c));
            self.next += 1;
            end = c.end;
        }
    }

    /// Whether the code tokens in `from..to` are all `,` or closing brackets.
    fn only_punctuation(&self, from: u32, to: u32) -> bool {
        let i = self.code.partition_point(|t| t.span.start < from);
        self.code[i..]
            .iter()
            .take_while(|t| t.span.start < to)
            .all(|t| {
                matches!(
                    t.kind,
                    TokenKind::Comma | TokenKind::RParen | TokenKind::RBracket | TokenKind::RBrace
                )
            })
    }

    /// Prints the comments after a block's last line that are indented at
    /// least as deep as the block in the source, at the block's indentation.
    pub fn block_tail(&mut self, block_end: u32, source_col: usize, indent: usize) {
        let limit = self.next_code_start(block_end);
        while let Some(&c) = self.comments.get(self.next) {
            if c.start >= limit || self.column(c.start) < source_col {
                break;
            }
            if self.blank_before(c.start) {
                self.blank();
            }
            self.line(indent, self.comment_text(c), None);
            self.next += 1;
        }
    }

    // ----- anchors ----------------------------------------------------------

    /// One anchor on one line: comments before and inside it go above it,
    /// comments after it on its source line stay after it. With
    /// `keep_blank`, a blank line before it (or before its comments) in the
    /// source is kept.
    pub fn leaf(&mut self, indent: usize, text: &str, span: Span, keep_blank: bool) {
        self.flush(span.start, indent, keep_blank);
        if keep_blank && self.blank_before(span.start) {
            self.blank();
        }
        self.flush(span.end, indent, false);
        self.line(indent, text, Some(span.end));
    }

    /// Whether `text` fits on one line at `indent`.
    pub fn fits(indent: usize, text: &str) -> bool {
        !text.contains('\n') && indent + text.chars().count() <= MAX_WIDTH
    }

    /// A bracketed list: `head` ends with the opening bracket and `tail`
    /// starts with the closing one. Printed on one line when it fits and
    /// holds no comment; otherwise one item per line, each with a trailing
    /// comma, indented one level deeper.
    pub fn list(
        &mut self,
        indent: usize,
        head: &str,
        items: &[(String, Span)],
        tail: &str,
        span: Span,
        keep_blank: bool,
    ) {
        let joined: Vec<&str> = items.iter().map(|(t, _)| t.as_str()).collect();
        let one = format!("{head}{}{tail}", joined.join(", "));
        let open_end = items
            .first()
            .map_or(span.start, |(_, first)| self.prev_code_end(first.start));
        // Only comments after the opening bracket break the list: the ones
        // before it move above the line, and would not be there next time.
        let commented = self.has_comment_in(Span::new(open_end, span.end));
        if items.is_empty() || (Self::fits(indent, &one) && !commented) {
            self.leaf(indent, &one, span, keep_blank);
            return;
        }
        self.flush(span.start, indent, keep_blank);
        if keep_blank && self.blank_before(span.start) {
            self.blank();
        }
        self.flush(open_end, indent, false);
        self.line(indent, head, Some(open_end));
        for (text, item_span) in items {
            self.leaf(indent + INDENT, &format!("{text},"), *item_span, false);
        }
        self.flush(span.end, indent + INDENT, false);
        self.line(indent, tail, Some(span.end));
    }
}

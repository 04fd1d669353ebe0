//! Line layout of the token stream (docs/LANGUAGE.md#layout-and-indentation).
//!
//! VPL is free-form except for block bodies (`fn`, `if`/`elif`/`else`, `for`,
//! `while`, `config:` and event field lists). Instead of inserting
//! INDENT/DEDENT tokens, every code token records whether it is the first
//! token on its line and that line's indentation; the parser and the item
//! splitter read blocks off these two facts. Comments are not code tokens,
//! so a trailing comment after a block opener's `:` does not hide the colon.

use crate::lexer::{Token, TokenKind};
use crate::span::Span;

/// A code (non-comment) token with its layout facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LTok {
    /// Token kind.
    pub kind: TokenKind,
    /// Token bytes.
    pub span: Span,
    /// First code token on its line.
    pub bol: bool,
    /// Indentation (in bytes: a tab counts as one column) of the token's line.
    pub indent: u32,
}

/// The code tokens of `text` with their layout facts.
pub(crate) fn code_tokens(text: &str, tokens: &[Token]) -> Vec<LTok> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(tokens.len());
    // Scan position for newlines, the current line's start and indentation.
    let mut scan = 0usize;
    let mut line_start = 0usize;
    let mut line_has_code = false;
    for tok in tokens {
        let start = tok.span.start as usize;
        while scan < start {
            if bytes[scan] == b'\n' {
                line_start = scan + 1;
                line_has_code = false;
            }
            scan += 1;
        }
        if !tok.kind.is_comment() {
            let indent = bytes[line_start..]
                .iter()
                .take_while(|b| **b == b' ' || **b == b'\t')
                .count() as u32;
            out.push(LTok {
                kind: tok.kind,
                span: tok.span,
                bol: !line_has_code,
                indent,
            });
            line_has_code = true;
        }
        // Newlines inside a token (block comments) are passed over by the
        // scan above on the next iteration; the token's own line still counts
        // as having code only for code tokens.
        let end = tok.span.end as usize;
        while scan < end {
            if bytes[scan] == b'\n' {
                line_start = scan + 1;
                line_has_code = !tok.kind.is_comment();
            }
            scan += 1;
        }
    }
    out
}

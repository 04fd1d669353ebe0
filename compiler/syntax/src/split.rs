//! Splitting a file into top-level items on the token stream.
//!
//! An item starts at a token that is first on its line, at bracket depth 0,
//! and is a declaration keyword with the right lookahead (`stream Name =`,
//! `event Name`, `fn name(`, ...). `let`, `var`, `if`, `while`, `for` and
//! `name :=` start an item only when indented no deeper than the current
//! item's first token, so statements inside `fn` bodies do not split.
//!
//! Recovery: a declaration keyword indented no deeper than the current item
//! (other than `if`/`while`/`for`, which may be expressions) starts a new
//! item even inside unclosed brackets, so a missing `)` never
//! buries the declarations after it (the item with the missing `)` reports
//! it). Leading comments and blank lines belong to the following item.

use crate::layout::{code_tokens, LTok};
use crate::lexer::{Token, TokenKind as K};
use std::ops::Range;

/// Top-level item boundaries of `text` (already loop-expanded): contiguous
/// byte ranges covering the text from the first item on. Empty when the text
/// holds no code.
pub fn split_items(text: &str) -> Vec<Range<usize>> {
    let tokens = crate::lexer::lex(text);
    split_tokens(text, &tokens)
}

/// [`split_items`] on already lexed tokens.
pub(crate) fn split_tokens(text: &str, tokens: &[Token]) -> Vec<Range<usize>> {
    let code = code_tokens(text, tokens);
    if code.is_empty() {
        return Vec::new();
    }
    let starts = item_starts(text, &code);
    let mut bounds: Vec<usize> = vec![0];
    for &i in starts.iter().skip(1) {
        bounds.push(boundary_before(text, tokens, &code, i));
    }
    let mut ranges = Vec::with_capacity(bounds.len());
    for (k, &b) in bounds.iter().enumerate() {
        let end = bounds.get(k + 1).copied().unwrap_or(text.len());
        ranges.push(b..end);
    }
    ranges
}

fn word<'t>(text: &'t str, tok: Option<&LTok>) -> &'t str {
    match tok {
        Some(t) if t.kind == K::Ident => text.get(t.span.range()).unwrap_or(""),
        _ => "",
    }
}

fn kind(code: &[LTok], i: usize) -> Option<K> {
    code.get(i).map(|t| t.kind)
}

/// Whether code token `i` starts an item by its keyword and lookahead.
/// Returns `Some(column_restricted)` for item starters.
fn starter(text: &str, code: &[LTok], i: usize) -> Option<bool> {
    let w = word(text, code.get(i));
    let next_ident = kind(code, i + 1) == Some(K::Ident);
    let ok = match w {
        "stream" => next_ident && matches!(kind(code, i + 2), Some(K::Eq | K::Colon)),
        "event" | "context" | "const" => next_ident,
        "pattern" | "connector" | "type" => next_ident && kind(code, i + 2) == Some(K::Eq),
        "fn" => next_ident && kind(code, i + 2) == Some(K::LParen),
        "import" => kind(code, i + 1) == Some(K::Str),
        "config" => {
            let block_colon =
                |j: usize| kind(code, j) == Some(K::Colon) && code.get(j + 1).is_none_or(|t| t.bol);
            (next_ident && (kind(code, i + 2) == Some(K::LBrace) || block_colon(i + 2)))
                || block_colon(i + 1)
        }
        "let" | "var" => return next_ident.then_some(true),
        "if" | "while" | "for" => return Some(true),
        _ if !w.is_empty() && kind(code, i + 1) == Some(K::ColonEq) => return Some(true),
        _ => false,
    };
    ok.then_some(false)
}

/// Indices of the code tokens that start items (the first token always
/// does).
fn item_starts(text: &str, code: &[LTok]) -> Vec<usize> {
    let mut starts = vec![0];
    let mut item_col = code[0].indent;
    let mut depth = 0usize;
    for (i, tok) in code.iter().enumerate() {
        if i > 0 && tok.bol {
            if let Some(restricted) = starter(text, code, i) {
                let shallow = tok.indent <= item_col;
                // Inside unclosed brackets, a declaration at the item's
                // column splits (recovery from a missing bracket), but not
                // `if`, which may be an `if ... then ... else` expression.
                let word = text.get(tok.span.range()).unwrap_or("");
                let expression_like = matches!(word, "if" | "while" | "for");
                if (depth == 0 && (!restricted || shallow))
                    || (depth > 0 && shallow && !expression_like)
                {
                    starts.push(i);
                    item_col = tok.indent;
                    depth = 0;
                }
            }
        }
        match tok.kind {
            K::LParen | K::LBracket | K::LBrace => depth += 1,
            K::RParen | K::RBracket | K::RBrace => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    starts
}

/// The byte where the item starting at code token `i` begins: after the line
/// of the previous code token (and any comment starting on that line), so
/// leading comments and blank lines go with the new item.
fn boundary_before(text: &str, tokens: &[Token], code: &[LTok], i: usize) -> usize {
    let prev_end = code[i - 1].span.end as usize;
    let start = code[i].span.start as usize;
    let bytes = text.as_bytes();
    let mut anchor = prev_end;
    // Comments that start on the previous token's line belong to it.
    let first = tokens.partition_point(|t| (t.span.start as usize) < prev_end);
    for t in &tokens[first..] {
        let s = t.span.start as usize;
        if s >= start || !t.kind.is_comment() {
            break;
        }
        if bytes[anchor..s].contains(&b'\n') {
            break;
        }
        anchor = anchor.max(t.span.end as usize);
    }
    match bytes[anchor..start].iter().position(|b| *b == b'\n') {
        Some(nl) => anchor + nl + 1,
        None => start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders each item's first line.
    fn check(text: &str, expected: &[&str]) {
        let ranges = split_items(text);
        let firsts: Vec<String> = ranges
            .iter()
            .map(|r| {
                let s = text[r.clone()].trim_start();
                s.lines().next().unwrap_or("").to_string()
            })
            .collect();
        assert_eq!(firsts, expected, "splitting {text:?}");
        if let (Some(first), Some(last)) = (ranges.first(), ranges.last()) {
            assert_eq!(first.start, 0);
            assert_eq!(last.end, text.len());
        }
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
    }

    #[test]
    fn declarations_split() {
        check(
            "event A:\n    x: int\nstream B = A\n    .where(x > 1)\nlet c = 1\nfn f(x: int) -> int:\n    let y = x\n    y\n",
            &["event A:", "stream B = A", "let c = 1", "fn f(x: int) -> int:"],
        );
    }

    #[test]
    fn field_lines_named_like_keywords_do_not_split() {
        check(
            "event A:\n    type: str\n    stream: str\n    event: int\n    config: str\nstream S = A\n",
            &["event A:", "stream S = A"],
        );
    }

    #[test]
    fn leading_comments_go_with_the_next_item() {
        let text = "let a = 1 # trailing\n\n# about b\nlet b = 2\n";
        let ranges = split_items(text);
        assert_eq!(&text[ranges[0].clone()], "let a = 1 # trailing\n");
        assert_eq!(&text[ranges[1].clone()], "\n# about b\nlet b = 2\n");
    }

    #[test]
    fn missing_paren_does_not_bury_later_items() {
        check(
            "stream A = X.where(a > 1\nstream B = Y\n",
            &["stream A = X.where(a > 1", "stream B = Y"],
        );
    }

    #[test]
    fn statements_inside_brackets_do_not_split() {
        check(
            "stream S = A.select(x:\nif a then b else c)\nlet y = 1\n",
            &["stream S = A.select(x:", "let y = 1"],
        );
    }

    #[test]
    fn inline_streams_inside_merge_do_not_split() {
        check(
            "stream M = merge(\n    stream A = T.where(x),\n    stream B = U\n)\nstream N = M\n",
            &["stream M = merge(", "stream N = M"],
        );
    }

    #[test]
    fn top_level_if_keeps_else() {
        check(
            "if x:\n    let y = 1\nelse:\n    let y = 2\nlet z = 3\n",
            &["if x:", "let z = 3"],
        );
    }

    #[test]
    fn empty_and_comment_only_texts_have_no_items() {
        check("", &[]);
        check("# nothing\n", &[]);
    }
}

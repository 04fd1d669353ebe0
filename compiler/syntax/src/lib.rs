//! varpulis-syntax: lexer, parser and syntax tree of VPL.
//!
//! No salsa, no IO: text in, tree and errors out. The parser never panics and
//! never fails; it recovers and reports every independent error once.
//!
//! Pipeline: [`expand_decl_loops`] (textual macro) → [`split_items`] (item
//! boundaries on the token stream) → [`parse_item`] per item. [`parse`] does
//! all three; the compiler calls `split_items` and `parse_item` itself so
//! that each item is re-parsed only when its text changes. Spans inside an
//! item are relative to the item's start ([`ast::ItemNode::offset`]).

pub mod ast;
pub mod codes;
mod error;
pub mod format;
mod layout;
mod lexer;
mod literal;
mod loops;
mod parser;
pub mod span;
mod split;

#[cfg(test)]
mod snapshot_tests;

pub use error::{Comment, CommentKind, SyntaxError};
pub use lexer::{lex, Token, TokenKind};
pub use literal::parse_duration;
pub use loops::{expand_decl_loops, SourceMap, MAX_ITERATIONS, MAX_PASSES};
pub use span::Span;
pub use split::split_items;

/// The result of parsing a whole file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parse {
    /// The loop-expanded text the items' offsets refer to (equal to the input
    /// when it has no declaration loops).
    pub text: String,
    /// The top-level items in order.
    pub items: Vec<ast::ItemNode>,
    /// All syntax errors, with absolute spans in [`Parse::text`], sorted by
    /// position. Only errors at the very end of the file can be
    /// [`SyntaxError::incomplete`].
    pub errors: Vec<SyntaxError>,
    /// All comments, with absolute spans in [`Parse::text`].
    pub comments: Vec<Comment>,
    /// Maps offsets in [`Parse::text`] back to the original input.
    pub source_map: SourceMap,
}

/// The result of parsing one item's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemParse {
    /// The item; spans are relative to the start of the parsed text.
    pub item: ast::Item,
    /// Lexical and syntax errors, spans relative to the start of the text,
    /// sorted by position.
    pub errors: Vec<SyntaxError>,
    /// The comments in the text.
    pub comments: Vec<Comment>,
}

/// Parses a whole file: expands declaration loops, splits the text into
/// items and parses each one.
///
/// Equal to [`expand_decl_loops`], then [`split_items`], then [`parse_item`]
/// on each range with spans shifted by the range's start, except that
/// `incomplete` is cleared on errors of every item but the last (only the end
/// of the file can be "input ended too early").
pub fn parse(text: &str) -> Parse {
    let (expanded, source_map, mut errors) = expand_decl_loops(text);
    let (tokens, lex_errors) = lexer::tokenize(&expanded);
    let ranges = split::split_tokens(&expanded, &tokens);
    if ranges.is_empty() {
        // No code at all: only lexical errors (an unterminated comment) can
        // have occurred.
        errors.extend(lex_errors);
    }
    let mut items = Vec::with_capacity(ranges.len());
    let last = ranges.len().saturating_sub(1);
    for (k, range) in ranges.into_iter().enumerate() {
        let offset = range.start as u32;
        let piece = parse_item(&expanded[range]);
        for mut err in piece.errors {
            if k != last {
                err.incomplete = false;
            }
            errors.push(err.shifted(offset));
        }
        items.push(ast::ItemNode {
            offset,
            item: piece.item,
        });
    }
    errors.sort_by_key(|e| (e.span.start, e.span.end));
    let comments = comments_of(&tokens);
    Parse {
        text: expanded,
        items,
        errors,
        comments,
        source_map,
    }
}

/// Parses the text of one item (as delimited by [`split_items`]). Spans are
/// relative to the start of `text`.
pub fn parse_item(text: &str) -> ItemParse {
    let (tokens, lex_errors) = lexer::tokenize(text);
    let comments = comments_of(&tokens);
    let code = layout::code_tokens(text, &tokens);
    let (item, errors) = parser::parse_item(text, code, lex_errors);
    ItemParse {
        item,
        errors,
        comments,
    }
}

fn comments_of(tokens: &[Token]) -> Vec<Comment> {
    tokens
        .iter()
        .filter_map(|t| match t.kind {
            TokenKind::LineComment => Some(Comment {
                kind: CommentKind::Line,
                span: t.span,
            }),
            TokenKind::BlockComment => Some(Comment {
                kind: CommentKind::Block,
                span: t.span,
            }),
            _ => None,
        })
        .collect()
}

/// Whether `text` (REPL input so far) is unfinished: it ends inside an open
/// bracket, string or block comment, ends with a token that needs more
/// (`:`, `->`, `=`, `,`, a binary operator, `.`), or its last line is
/// indented under a block opener that has not been closed by a blank line.
pub fn is_incomplete(text: &str) -> bool {
    let (tokens, lex_errors) = lexer::tokenize(text);
    if lex_errors.iter().any(|e| e.incomplete) {
        return true;
    }
    let code = layout::code_tokens(text, &tokens);
    let Some(last) = code.last() else {
        return false;
    };
    let mut depth = 0i32;
    for t in &code {
        match t.kind {
            TokenKind::LParen | TokenKind::LBracket | TokenKind::LBrace => depth += 1,
            TokenKind::RParen | TokenKind::RBracket | TokenKind::RBrace => depth -= 1,
            _ => {}
        }
    }
    if depth > 0 {
        return true;
    }
    use TokenKind as K;
    let needs_more = matches!(
        last.kind,
        K::Colon
            | K::Arrow
            | K::Eq
            | K::ColonEq
            | K::FatArrow
            | K::Comma
            | K::Dot
            | K::QuestionDot
            | K::DotDot
            | K::DotDotEq
            | K::EqEq
            | K::NotEq
            | K::Lt
            | K::Le
            | K::Gt
            | K::Ge
            | K::Plus
            | K::Minus
            | K::Star
            | K::StarStar
            | K::Slash
            | K::Percent
            | K::Pipe
            | K::Caret
            | K::Amp
            | K::Shl
            | K::Shr
    ) || matches!(
        text.get(last.span.range()),
        Some("and" | "or" | "not" | "where" | "then" | "else" | "in" | "by" | "within")
    );
    if needs_more {
        return true;
    }
    // Inside an indented block: wait for a blank line (as Python's REPL).
    let opens_block = code
        .windows(2)
        .any(|w| w[0].kind == K::Colon && w[1].bol && w[1].indent > w[0].indent);
    if opens_block && last.indent > 0 {
        return !text.trim_end_matches([' ', '\t', '\r']).ends_with("\n\n");
    }
    parse(text).errors.iter().any(|e| e.incomplete)
}

/// Words the parser treats as keywords somewhere (docs/LANGUAGE.md#names-and-keywords). None
/// is reserved everywhere: each is a keyword only where its construct can
/// start. Shared by completion and highlighting in the IDE and the REPL.
pub const KEYWORDS: &[&str] = &[
    "stream",
    "event",
    "type",
    "let",
    "var",
    "const",
    "fn",
    "connector",
    "context",
    "config",
    "pattern",
    "import",
    "extends",
    "if",
    "elif",
    "else",
    "for",
    "in",
    "while",
    "break",
    "continue",
    "return",
    "emit",
    "and",
    "or",
    "not",
    "is",
    "then",
    "true",
    "false",
    "null",
    "as",
    "all",
    "where",
    "within",
    "merge",
    "join",
    "sequence",
    "timer",
    "SEQ",
    "AND",
    "OR",
    "NOT",
    "partition",
    "by",
    "policy",
];

#[cfg(test)]
mod tests {
    fn check(text: &str, expected: bool) {
        assert_eq!(super::is_incomplete(text), expected, "{text:?}");
    }

    #[test]
    fn incomplete_repl_input() {
        check("stream S = A.where(", true);
        check("stream S = A.where(x > 1)", false);
        check("fn f() -> int:", true);
        check("fn f() -> int:  # body next", true);
        check("fn f() -> int:\n    1", true);
        check("fn f() -> int:\n    1\n", true);
        check("fn f() -> int:\n    1\n\n", false);
        check("let x = 1 +", true);
        check("let x = a and", true);
        check("let s = \"abc", true);
        check("/* open", true);
        check("stream S = A", false);
        check("stream S = A\n    .where(x)", false);
        check("stream S = A ->", true);
        check("stream S = A.", true);
        check("let x = 1 )", false);
        check("let x = [1, 2,", true);
        check("", false);
    }
}

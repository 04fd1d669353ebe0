//! The recursive-descent parser: one item's tokens to one [`ast::Item`].
//!
//! The parser never fails and never panics. Every error is reported once:
//! errors at a position that already has one are dropped, list parsers skip
//! to the next `,` or closing bracket, the stream parser skips to the next
//! `.name(` or `->`, and block parsers skip to the next line at the block's
//! indentation. Recursion is bounded by [`MAX_DEPTH`], and operator chains
//! (which build left-nested trees) by [`MAX_CHAIN`], so no input can
//! overflow the stack, here or in later tree walks.
//!
//! Submodules: `item` (declarations), `expr` (expressions and types),
//! `stmt` (statements and indented blocks), `stream` (sources and pipeline
//! operators), `pattern` (named patterns).

mod expr;
mod item;
mod pattern;
mod stmt;
mod stream;

use crate::ast::{self, Ident};
use crate::codes;
use crate::error::SyntaxError;
use crate::layout::LTok;
use crate::lexer::TokenKind;
use crate::span::Span;

/// Brackets may nest this deep (docs/LANGUAGE.md#operators-and-precedence).
pub(crate) const MAX_BRACKET_DEPTH: usize = 24;
/// Recursion budget of the parser: brackets, prefix operators, lambdas,
/// `if` expressions, nested blocks and patterns all count.
const MAX_DEPTH: u32 = 48;
/// The longest operator chain (`a + b + ...`, `a.b.c...`, `A AND B AND ...`)
/// kept in the tree; longer ones are reported.
const MAX_CHAIN: usize = 1000;

/// Parses one item's text. Spans are relative to the start of `text`.
pub(crate) fn parse_item(
    text: &str,
    toks: Vec<LTok>,
    lex_errors: Vec<SyntaxError>,
) -> (ast::Item, Vec<SyntaxError>) {
    let end = toks.len();
    let mut p = Parser {
        text,
        toks,
        pos: 0,
        end,
        errors: lex_errors,
        depth: 0,
        too_deep_reported: false,
        step_mode: false,
    };
    p.check_bracket_depth();
    let item = p.item();
    let mut errors = p.errors;
    errors.sort_by_key(|e| (e.span.start, e.span.end));
    (item, errors)
}

/// Parser state over one item's code tokens.
pub(crate) struct Parser<'a> {
    text: &'a str,
    toks: Vec<LTok>,
    pos: usize,
    /// Tokens at or after this index are invisible: the end of the current
    /// statement inside an indented block.
    end: usize,
    errors: Vec<SyntaxError>,
    depth: u32,
    too_deep_reported: bool,
    /// Inside a sequence step filter: stop before a `.name(` postfix, which
    /// starts the next pipeline operator.
    step_mode: bool,
}

/// Token kinds that open a bracket.
fn is_open(kind: TokenKind) -> bool {
    matches!(
        kind,
        TokenKind::LParen | TokenKind::LBracket | TokenKind::LBrace
    )
}

/// Token kinds that close a bracket.
fn is_close(kind: TokenKind) -> bool {
    matches!(
        kind,
        TokenKind::RParen | TokenKind::RBracket | TokenKind::RBrace
    )
}

/// The closing bracket matching an opening one, as text.
fn closing_text(open: TokenKind) -> &'static str {
    match open {
        TokenKind::LParen => ")",
        TokenKind::LBracket => "]",
        _ => "}",
    }
}

impl<'a> Parser<'a> {
    // ----- token access -------------------------------------------------

    /// The kind of the token `n` ahead, if visible.
    fn nth(&self, n: usize) -> Option<TokenKind> {
        let i = self.pos + n;
        (i < self.end).then(|| self.toks[i].kind)
    }

    /// Whether the current token has this kind.
    fn at(&self, kind: TokenKind) -> bool {
        self.nth(0) == Some(kind)
    }

    /// Whether no visible token remains.
    fn at_end(&self) -> bool {
        self.pos >= self.end
    }

    /// The text of the token `n` ahead ("" when none).
    fn nth_text(&self, n: usize) -> &'a str {
        let i = self.pos + n;
        if i < self.end {
            let text: &'a str = self.text;
            text.get(self.toks[i].span.range()).unwrap_or("")
        } else {
            ""
        }
    }

    /// Whether the token `n` ahead is the word `word`.
    fn nth_word(&self, n: usize, word: &str) -> bool {
        self.nth(n) == Some(TokenKind::Ident) && self.nth_text(n) == word
    }

    /// Whether the current token is the word `word`.
    fn at_word(&self, word: &str) -> bool {
        self.nth_word(0, word)
    }

    /// The current token (only call when not at the end).
    fn tok(&self) -> LTok {
        self.toks[self.pos.min(self.toks.len().saturating_sub(1))]
    }

    /// Span of the current token, or an empty span after the last visible
    /// token at the end.
    fn here(&self) -> Span {
        if self.pos < self.end {
            self.toks[self.pos].span
        } else {
            let end = self.prev_end();
            Span::new(end, end)
        }
    }

    /// End of the previously consumed token (0 at the start).
    fn prev_end(&self) -> u32 {
        if self.pos == 0 {
            0
        } else {
            self.toks[(self.pos - 1).min(self.toks.len() - 1)].span.end
        }
    }

    /// Span from `start` to the end of the last consumed token.
    fn since(&self, start: Span) -> Span {
        Span::new(start.start, self.prev_end().max(start.start))
    }

    /// Consumes the current token.
    fn bump(&mut self) -> LTok {
        let tok = self.tok();
        if self.pos < self.end {
            self.pos += 1;
        }
        tok
    }

    /// Consumes the current token if it has this kind.
    fn eat(&mut self, kind: TokenKind) -> bool {
        if self.at(kind) {
            self.bump();
            true
        } else {
            false
        }
    }

    /// Consumes the current token if it is the word `word`.
    fn eat_word(&mut self, word: &str) -> bool {
        if self.at_word(word) {
            self.bump();
            true
        } else {
            false
        }
    }

    /// Whether the input (not just the current statement) is exhausted.
    fn at_input_end(&self) -> bool {
        self.pos >= self.toks.len()
    }

    // ----- errors ---------------------------------------------------------

    /// Records an error unless one already starts at the same position (one
    /// cause, one diagnostic).
    fn report(&mut self, err: SyntaxError) {
        if self.errors.iter().any(|e| e.span.start == err.span.start) {
            return;
        }
        self.errors.push(err);
    }

    /// A description of the current token for "found ..." messages.
    fn found(&self) -> String {
        if self.at_input_end() {
            return "end of input".to_string();
        }
        if self.at_end() {
            return "the end of the line".to_string();
        }
        let text = self.nth_text(0);
        match self.tok().kind {
            TokenKind::Str => "a string".to_string(),
            _ if text.chars().count() > 24 => {
                let short: String = text.chars().take(24).collect();
                format!("`{short}...`")
            }
            _ => format!("`{text}`"),
        }
    }

    /// Reports "expected `what`, found ..." at the current token.
    fn expected(&mut self, what: &str) {
        let err = self.expected_error(codes::UNEXPECTED_TOKEN, what);
        self.report(err);
    }

    /// Builds an "expected ..." error at the current token.
    fn expected_error(&self, code: &'static str, what: &str) -> SyntaxError {
        let mut err = SyntaxError::new(
            code,
            format!("expected {what}, found {}", self.found()),
            self.here(),
        );
        if self.at_input_end() {
            err = err.incomplete();
        }
        err
    }

    /// Consumes a token of `kind` or reports "expected `what`".
    fn expect(&mut self, kind: TokenKind, what: &str) -> bool {
        if self.eat(kind) {
            true
        } else {
            self.expected(what);
            false
        }
    }

    /// Consumes an identifier or reports "expected `what`".
    fn ident(&mut self, what: &str) -> Option<Ident> {
        if self.at(TokenKind::Ident) {
            let tok = self.bump();
            Some(Ident {
                name: self.text.get(tok.span.range()).unwrap_or("").to_string(),
                span: tok.span,
            })
        } else {
            self.expected(what);
            None
        }
    }

    /// An identifier made from the current token (which must be one).
    fn take_ident(&mut self) -> Ident {
        let tok = self.bump();
        Ident {
            name: self.text.get(tok.span.range()).unwrap_or("").to_string(),
            span: tok.span,
        }
    }

    /// An empty identifier used where a name was missing (already reported).
    fn missing_ident(&self) -> Ident {
        Ident {
            name: String::new(),
            span: self.here(),
        }
    }

    // ----- recursion and nesting guards -----------------------------------

    /// Enters one level of recursion; false when the budget is exhausted (the
    /// caller must then skip instead of recursing).
    fn enter(&mut self) -> bool {
        if self.depth >= MAX_DEPTH {
            self.report_too_deep(self.here());
            return false;
        }
        self.depth += 1;
        true
    }

    /// Leaves one level of recursion.
    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Reports nesting too deep once per item.
    fn report_too_deep(&mut self, span: Span) {
        if self.too_deep_reported {
            return;
        }
        self.too_deep_reported = true;
        self.report(
            SyntaxError::new(codes::NESTING_TOO_DEEP, "nesting too deep", span)
                .with_label("nested too deeply here")
                .with_help("split the expression with `let` bindings or a helper `fn`"),
        );
    }

    /// Reports an operator chain longer than [`MAX_CHAIN`] once per item.
    fn check_chain(&mut self, len: usize) -> bool {
        if len < MAX_CHAIN {
            return true;
        }
        if !self.too_deep_reported {
            self.too_deep_reported = true;
            self.report(
                SyntaxError::new(
                    codes::NESTING_TOO_DEEP,
                    format!("operator chain longer than {MAX_CHAIN} terms"),
                    self.here(),
                )
                .with_label("the chain is cut here")
                .with_help("split the expression with `let` bindings or a helper `fn`"),
            );
        }
        false
    }

    /// Reports the first bracket nested deeper than [`MAX_BRACKET_DEPTH`].
    fn check_bracket_depth(&mut self) {
        let mut depth = 0usize;
        for tok in &self.toks {
            if is_open(tok.kind) {
                depth += 1;
                if depth > MAX_BRACKET_DEPTH {
                    let span = tok.span;
                    self.too_deep_reported = true;
                    self.report(
                        SyntaxError::new(
                            codes::NESTING_TOO_DEEP,
                            format!("brackets nested deeper than {MAX_BRACKET_DEPTH} levels"),
                            span,
                        )
                        .with_label("this bracket is too deep")
                        .with_help("split the expression with `let` bindings or a helper `fn`"),
                    );
                    return;
                }
            } else if is_close(tok.kind) {
                depth = depth.saturating_sub(1);
            }
        }
    }

    // ----- recovery ---------------------------------------------------------

    /// Skips tokens, keeping bracket balance, until `stop` holds for a token
    /// at bracket depth 0 or a closing bracket at depth 0 (not consumed).
    fn skip_until(&mut self, stop: impl Fn(&Parser<'a>) -> bool) {
        let mut depth = 0usize;
        while !self.at_end() {
            let kind = self.tok().kind;
            if depth == 0 && (stop(self) || is_close(kind)) {
                return;
            }
            if is_open(kind) {
                depth += 1;
            } else if is_close(kind) {
                depth -= 1;
            }
            self.bump();
        }
    }

    /// Skips the rest of a bracketed region whose opener was consumed, up to
    /// (not including) its closing bracket. Used when recursion is too deep.
    fn skip_to_close(&mut self) {
        self.skip_until(|_| false);
    }

    /// Parses a comma-separated list after an opening bracket (already
    /// consumed, at `open`) up to and including `close`. After a bad item it
    /// skips to the next `,` or the closing bracket.
    fn delimited<T>(
        &mut self,
        open: Span,
        open_kind: TokenKind,
        mut item: impl FnMut(&mut Parser<'a>) -> T,
    ) -> Vec<T> {
        let close = match open_kind {
            TokenKind::LParen => TokenKind::RParen,
            TokenKind::LBracket => TokenKind::RBracket,
            _ => TokenKind::RBrace,
        };
        let close_text = closing_text(open_kind);
        let saved_mode = std::mem::replace(&mut self.step_mode, false);
        let errors_before = self.errors.len();
        let mut items = Vec::new();
        if !self.enter() {
            self.skip_to_close();
            self.eat(close);
            self.step_mode = saved_mode;
            return items;
        }
        loop {
            if self.eat(close) {
                break;
            }
            if self.at_end() {
                self.unclosed(open, open_kind, errors_before);
                break;
            }
            let before = self.pos;
            items.push(item(self));
            if self.eat(TokenKind::Comma) {
                continue;
            }
            if self.eat(close) {
                break;
            }
            if self.at_end() {
                self.unclosed(open, open_kind, errors_before);
                break;
            }
            let errors_now = self.errors.len();
            if errors_now == errors_before || self.pos == before {
                self.expected(&format!("`,` or `{close_text}`"));
            }
            self.skip_until(|p| p.at(TokenKind::Comma));
            if self.eat(TokenKind::Comma) {
                continue;
            }
            if self.eat(close) {
                break;
            }
            if self.at_end() {
                self.unclosed(open, open_kind, errors_before);
                break;
            }
            // A mismatched closing bracket: drop it and go on.
            self.bump();
        }
        self.leave();
        self.step_mode = saved_mode;
        items
    }

    /// Reports an unclosed bracket, unless the list already had an error.
    fn unclosed(&mut self, open: Span, open_kind: TokenKind, errors_before: usize) {
        // Any error inside the bracket (including a lexical one such as an
        // unterminated string that swallowed the closing bracket) is the
        // likelier cause.
        let here = self.here().end;
        if self.errors.len() > errors_before
            || self
                .errors
                .iter()
                .any(|e| e.span.start > open.start && e.span.start <= here)
        {
            return;
        }
        let close = closing_text(open_kind);
        let open_text = match open_kind {
            TokenKind::LParen => "(",
            TokenKind::LBracket => "[",
            _ => "{",
        };
        let mut err = SyntaxError::new(
            codes::UNCLOSED_DELIMITER,
            format!("unclosed `{open_text}`"),
            open,
        )
        .with_label(format!("this `{open_text}` is never closed"))
        .with_help(format!("add `{close}` at the end of the list"));
        if self.at_input_end() {
            err = err.incomplete();
        }
        self.report(err);
    }

    /// Parses call arguments `(a, name: e, ...)`; the current token is `(`.
    fn args(&mut self) -> Vec<ast::Arg> {
        let open = self.bump().span;
        self.delimited(open, TokenKind::LParen, |p| p.arg())
    }

    /// One argument: `name: e` or `e`.
    fn arg(&mut self) -> ast::Arg {
        let start = self.here();
        let name = if self.at(TokenKind::Ident) && self.nth(1) == Some(TokenKind::Colon) {
            let name = self.take_ident();
            self.bump();
            Some(name)
        } else {
            None
        };
        let value = self.expr();
        ast::Arg {
            name,
            value,
            span: self.since(start),
        }
    }
}

#[cfg(test)]
pub(crate) mod sexpr;
#[cfg(test)]
mod tests;

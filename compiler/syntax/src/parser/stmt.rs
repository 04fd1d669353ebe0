//! Statements and indented blocks (docs/LANGUAGE.md#layout-and-indentation, docs/LANGUAGE.md#functions-fn).
//!
//! A block opener's `:` must end its line (comments are not tokens, so a
//! trailing `# comment` is fine). The body is every following line indented
//! more than the opener's line; the first body line fixes the block's
//! indentation. Inside a block, a line at the block's indentation starts a
//! new statement and more-indented lines continue the current one.

use super::Parser;
use crate::ast::{Assign, Block, Expr, ExprKind, Stmt, StmtKind, VarDecl, VarKind};
use crate::codes;
use crate::error::SyntaxError;
use crate::lexer::TokenKind as K;
use crate::span::Span;

/// Words that continue a statement at the same indentation (`elif`/`else`
/// after `if`; `catch`/`finally` after an unsupported `try`).
fn continues(first: &str, word: &str) -> bool {
    match first {
        "if" => matches!(word, "elif" | "else"),
        "try" => matches!(word, "catch" | "except" | "finally" | "else"),
        _ => false,
    }
}

/// Statement keywords that VPL reserves but does not support.
const UNSUPPORTED_STMTS: &[(&str, &str)] = &[
    (
        "match",
        "use `if`/`elif`/`else`, or `if c then a else b` in expressions",
    ),
    (
        "try",
        "errors are values in VPL: check with `is_null(x)` or use `coalesce(x, d)`",
    ),
    (
        "raise",
        "return a value instead, or filter events with `.where(...)`",
    ),
    ("catch", "VPL has no exceptions; remove the `catch` block"),
    (
        "finally",
        "VPL has no exceptions; remove the `finally` block",
    ),
];

impl<'a> Parser<'a> {
    /// The index of the first token after `from` that begins a line indented
    /// at most `indent`, skipping continuation lines of `first` (see
    /// [`continues`]); bounded by the current end.
    fn line_boundary(&self, from: usize, indent: u32, first: &str) -> usize {
        let mut i = from + 1;
        while i < self.end {
            let t = self.toks[i];
            if t.bol && t.indent <= indent {
                let word = self.text.get(t.span.range()).unwrap_or("");
                if !(t.indent == indent && t.kind == K::Ident && continues(first, word)) {
                    return i;
                }
            }
            i += 1;
        }
        self.end
    }

    /// Parses `: <newline> <indented statements>` for a block opener whose
    /// line has indentation `opener_indent`. The `:` is expected here.
    pub(super) fn block(&mut self, opener_indent: u32) -> Block {
        self.expect(K::Colon, "`:` to open the block");
        self.block_body(opener_indent, |p| p.stmt())
    }

    /// The indented lines after a block opener, each parsed with `line`,
    /// which parses one statement (or one line of fields).
    pub(super) fn block_lines(
        &mut self,
        opener_indent: u32,
        mut line: impl FnMut(&mut Parser<'a>),
    ) -> bool {
        if self.at_end() || !self.tok().bol || self.tok().indent <= opener_indent {
            return false;
        }
        if !self.enter() {
            let stop = self.line_boundary(self.pos, opener_indent, "");
            self.pos = stop;
            return true;
        }
        let indent = self.tok().indent;
        while !self.at_end() {
            let t = self.tok();
            if t.bol && t.indent < indent {
                break;
            }
            let first = if t.kind == K::Ident {
                self.nth_text(0)
            } else {
                ""
            };
            let boundary = self.line_boundary(self.pos, indent, first);
            if t.bol && t.indent > indent {
                self.report(
                    SyntaxError::new(codes::UNEXPECTED_INDENT, "unexpected indentation", t.span)
                        .with_label("this line is indented more than the block")
                        .with_help("indent it like the line before, or join it to that line"),
                );
                self.pos = boundary;
                continue;
            }
            let saved_end = self.end;
            self.end = boundary;
            let errors_before = self.errors.len();
            line(self);
            if !self.at_end() && self.errors.len() == errors_before && self.tok().bol {
                self.report(
                    SyntaxError::new(
                        codes::UNEXPECTED_INDENT,
                        "unexpected indentation",
                        self.here(),
                    )
                    .with_label("this line is indented more than the block")
                    .with_help("indent it like the line before, or join it to that line"),
                );
            } else if !self.at_end() && self.errors.len() == errors_before {
                let found = self.found();
                self.report(
                    SyntaxError::new(
                        codes::UNEXPECTED_TOKEN,
                        format!("unexpected {found} after the statement"),
                        self.here(),
                    )
                    .with_label("expected the end of the line")
                    .with_help("put each statement on its own line"),
                );
            }
            self.pos = boundary;
            self.end = saved_end;
        }
        self.leave();
        true
    }

    /// A block body: reports a missing or same-line body.
    fn block_body(
        &mut self,
        opener_indent: u32,
        line: impl FnMut(&mut Parser<'a>) -> Stmt,
    ) -> Block {
        let mut line = line;
        let start = self.here();
        let mut stmts = Vec::new();
        if !self.at_end() && !self.tok().bol {
            // A one-line body (`fn f(): 1`): parse it, but report it.
            let body_span = self.here();
            self.report(
                SyntaxError::new(
                    codes::EXPECTED_BLOCK,
                    "expected an indented block on the next line",
                    body_span,
                )
                .with_label("the body must start on a new line")
                .with_help("move the body to the next line and indent it"),
            );
            let stop = (self.pos + 1..self.end)
                .find(|&i| self.toks[i].bol)
                .unwrap_or(self.end);
            let saved_end = self.end;
            self.end = stop;
            stmts.push(line(self));
            self.pos = stop;
            self.end = saved_end;
        }
        let found = self.block_lines(opener_indent, |p| stmts.push(line(p)));
        if !found && stmts.is_empty() {
            let err = self
                .expected_error(codes::EXPECTED_BLOCK, "an indented block")
                .with_label("the block's body must follow on more-indented lines")
                .with_help("indent the body under the line ending in `:`");
            self.report(err);
        }
        let span = match (stmts.first(), stmts.last()) {
            (Some(a), Some(b)) => a.span.cover(b.span),
            _ => Span::new(start.start, start.start),
        };
        Block { stmts, span }
    }

    /// The indentation of the line of the token at `pos`.
    fn indent_at(&self, pos: usize) -> u32 {
        self.toks.get(pos).map_or(0, |t| t.indent)
    }

    /// One statement.
    pub(super) fn stmt(&mut self) -> Stmt {
        let start = self.here();
        let kind = self.stmt_kind();
        Stmt {
            kind,
            span: self.since(start),
        }
    }

    fn stmt_kind(&mut self) -> StmtKind {
        let word = if self.at(K::Ident) {
            self.nth_text(0)
        } else {
            ""
        };
        let next_is_ident = self.nth(1) == Some(K::Ident);
        match word {
            "let" | "var" | "const" if next_is_ident => StmtKind::Var(self.var_decl()),
            "if" => self.if_stmt(),
            "for" if next_is_ident => {
                let indent = self.indent_at(self.pos);
                self.bump();
                let var = self.take_ident();
                if !self.eat_word("in") {
                    self.expected("`in`");
                }
                let iter = self.expr();
                let body = self.block(indent);
                StmtKind::For { var, iter, body }
            }
            "while" => {
                let indent = self.indent_at(self.pos);
                self.bump();
                let cond = self.expr();
                let body = self.block(indent);
                StmtKind::While { cond, body }
            }
            "break" if !self.continues_expr(1) => {
                self.bump();
                StmtKind::Break
            }
            "continue" if !self.continues_expr(1) => {
                self.bump();
                StmtKind::Continue
            }
            "return" if !self.continues_expr(1) => {
                self.bump();
                if self.can_start_expr() {
                    StmtKind::Return(Some(self.expr()))
                } else {
                    StmtKind::Return(None)
                }
            }
            "emit" if next_is_ident && self.nth(2) == Some(K::LParen) => {
                self.bump();
                let ty = self.take_ident();
                let args = self.call_args();
                StmtKind::Emit { ty, args }
            }
            _ if !word.is_empty() && self.nth(1) == Some(K::ColonEq) => {
                StmtKind::Assign(self.assign())
            }
            _ if !word.is_empty() && self.nth(1) == Some(K::OpAssign) => self.op_assign(),
            _ if self.unsupported_stmt(word) => StmtKind::Expr(Expr {
                kind: ExprKind::Error,
                span: self.since(self.here()),
            }),
            _ => {
                let e = self.expr();
                if self.at(K::Eq) {
                    let target = self.text.get(e.span.range()).unwrap_or("x").to_string();
                    self.report(
                        SyntaxError::new(codes::UNEXPECTED_TOKEN, "`=` cannot assign", self.here())
                            .with_label("assignment is written `:=`")
                            .with_help(format!(
                                "write `{target} := ...`, or `let {target} = ...` to declare"
                            )),
                    );
                    self.bump();
                    self.expr();
                }
                StmtKind::Expr(e)
            }
        }
    }

    /// Whether the token `n` ahead continues an expression (so a keyword at
    /// the current position is really a name, e.g. `break == 1`).
    fn continues_expr(&self, n: usize) -> bool {
        matches!(
            self.nth(n),
            Some(
                K::Dot
                    | K::EqEq
                    | K::NotEq
                    | K::Plus
                    | K::Star
                    | K::Slash
                    | K::ColonEq
                    | K::LParen
                    | K::LBracket
            )
        )
    }

    /// `match`, `try`, `raise` and friends in statement position.
    fn unsupported_stmt(&mut self, word: &str) -> bool {
        let Some((_, help)) = UNSUPPORTED_STMTS.iter().find(|(w, _)| *w == word) else {
            return false;
        };
        if self.continues_expr(1) || self.nth(1).is_none() && word != "try" {
            return false;
        }
        self.report(
            SyntaxError::new(
                codes::UNSUPPORTED_SYNTAX,
                format!("`{word}` is not supported"),
                self.here(),
            )
            .with_label("reserved word")
            .with_help(help.to_string()),
        );
        // Skip the statement including any block it opens.
        while !self.at_end() {
            self.bump();
        }
        true
    }

    /// `x += e` and friends: reported, read as `x := x + e`.
    fn op_assign(&mut self) -> StmtKind {
        let target = self.take_ident();
        let op_tok = self.bump();
        let op = self.text.get(op_tok.span.range()).unwrap_or("+=");
        let bin = op.trim_end_matches('=');
        let name = target.name.clone();
        self.report(
            SyntaxError::new(
                codes::UNSUPPORTED_SYNTAX,
                format!("`{op}` is not supported"),
                op_tok.span,
            )
            .with_label("compound assignment")
            .with_help(format!("write `{name} := {name} {bin} ...`")),
        );
        let value = self.expr();
        let span = target.span.cover(value.span);
        StmtKind::Assign(Assign {
            target,
            value,
            span,
        })
    }

    /// `let|var|const name [: T] = e`; the current token is the keyword.
    pub(super) fn var_decl(&mut self) -> VarDecl {
        let kw = self.bump();
        let kind = match self.text.get(kw.span.range()) {
            Some("var") => VarKind::Var,
            Some("const") => VarKind::Const,
            _ => VarKind::Let,
        };
        let name = self
            .ident("a variable name")
            .unwrap_or_else(|| self.missing_ident());
        let ty = if self.eat(K::Colon) {
            Some(self.type_expr())
        } else {
            None
        };
        let value = if self.eat(K::Eq) {
            self.expr()
        } else {
            if self.at(K::ColonEq) {
                self.report(
                    SyntaxError::new(
                        codes::UNEXPECTED_TOKEN,
                        "expected `=`, found `:=`",
                        self.here(),
                    )
                    .with_label("declarations use `=`")
                    .with_help(format!("write `{} = ...`", name.name)),
                );
                self.bump();
                self.expr()
            } else {
                self.expected("`=` and an initial value");
                Expr {
                    kind: ExprKind::Error,
                    span: self.here(),
                }
            }
        };
        VarDecl {
            kind,
            name,
            ty,
            value,
            span: self.since(kw.span),
        }
    }

    /// `x := e`; the current token is the name.
    pub(super) fn assign(&mut self) -> Assign {
        let target = self.take_ident();
        self.bump();
        let value = self.expr();
        Assign {
            span: target.span.cover(value.span),
            target,
            value,
        }
    }

    /// `if c: ... elif c: ... else: ...`; the current token is `if`.
    fn if_stmt(&mut self) -> StmtKind {
        let indent = self.indent_at(self.pos);
        self.bump();
        let mut branches = Vec::new();
        let cond = self.expr();
        let body = self.block(indent);
        branches.push((cond, body));
        let mut else_block = None;
        loop {
            let same_line_start = !self.at_end() && self.tok().bol && self.tok().indent == indent;
            if !same_line_start {
                break;
            }
            if self.at_word("elif") {
                self.bump();
                let cond = self.expr();
                let body = self.block(indent);
                branches.push((cond, body));
            } else if self.at_word("else") {
                self.bump();
                if self.at_word("if") {
                    self.report(
                        SyntaxError::new(
                            codes::UNEXPECTED_TOKEN,
                            "`else if` is written `elif`",
                            self.here(),
                        )
                        .with_label("use `elif`")
                        .with_help("write `elif condition:`"),
                    );
                    self.bump();
                    let cond = self.expr();
                    let body = self.block(indent);
                    branches.push((cond, body));
                    continue;
                }
                else_block = Some(self.block(indent));
                break;
            } else {
                break;
            }
        }
        StmtKind::If {
            branches,
            else_block,
        }
    }

    /// `{ stmt* }` after `=>` in a lambda; the current token is `{`.
    pub(super) fn brace_block(&mut self) -> Block {
        let open = self.bump().span;
        let mut stmts = Vec::new();
        if !self.enter() {
            self.skip_to_close();
            self.eat(K::RBrace);
            return Block {
                stmts,
                span: self.since(open),
            };
        }
        let saved = std::mem::replace(&mut self.step_mode, false);
        let errors_before = self.errors.len();
        loop {
            if self.eat(K::RBrace) {
                break;
            }
            if self.at_end() {
                self.unclosed(open, K::LBrace, errors_before);
                break;
            }
            let before = self.pos;
            stmts.push(self.stmt());
            if self.pos == before {
                self.expected("a statement or `}`");
                self.skip_until(|_| false);
                if self.pos == before {
                    // Recovery stopped on a closer that is not this block's
                    // `}` (e.g. a stray `)`): consume it so the loop ends.
                    self.bump();
                }
            }
        }
        self.step_mode = saved;
        self.leave();
        Block {
            stmts,
            span: self.since(open),
        }
    }
}

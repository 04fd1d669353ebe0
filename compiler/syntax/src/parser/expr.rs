//! Expressions (docs/LANGUAGE.md#literals, docs/LANGUAGE.md#expressions) and written types (docs/LANGUAGE.md#types).
//!
//! Precedence, loosest first: lambda, range (non-associative), `or`, `and`,
//! prefix `not`, comparisons (non-associative), `|`, `^`, `&`, `<< >>`,
//! `+ -`, `* / %`, `**` (right-associative), prefix `-`/`~`, postfix.
//! Binary levels use precedence climbing (bounded recursion: one frame per
//! level), `**` and prefix operators are folded in loops.

use super::Parser;
use crate::ast::{
    Arg, BinaryOp, Expr, ExprKind, FloatLit, Ident, LambdaBody, TypeExpr, TypeKind, UnaryOp,
};
use crate::codes;
use crate::error::SyntaxError;
use crate::lexer::TokenKind as K;
use crate::literal;
use crate::span::Span;

/// Builds a boxed binary node covering both operands.
fn binary(op: BinaryOp, lhs: Expr, rhs: Expr) -> Expr {
    let span = lhs.span.cover(rhs.span);
    Expr {
        kind: ExprKind::Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        },
        span,
    }
}

impl<'a> Parser<'a> {
    /// Parses an expression (the loosest level: lambdas and ranges).
    pub(super) fn expr(&mut self) -> Expr {
        if !self.enter() {
            return self.skip_too_deep();
        }
        let e = if self.lambda_ahead() {
            self.lambda()
        } else {
            self.range()
        };
        self.leave();
        e
    }

    /// Skips what cannot be parsed because recursion is too deep.
    fn skip_too_deep(&mut self) -> Expr {
        let start = self.here();
        self.skip_until(|p| p.at(K::Comma));
        Expr {
            kind: ExprKind::Error,
            span: self.since(start),
        }
    }

    /// An error expression at the current position (nothing consumed).
    pub(super) fn error_expr(&self) -> Expr {
        let here = self.here();
        Expr {
            kind: ExprKind::Error,
            span: Span::new(here.start, here.start),
        }
    }

    /// Whether the current token can start an expression.
    pub(super) fn can_start_expr(&self) -> bool {
        match self.nth(0) {
            Some(kind) => matches!(
                kind,
                K::Ident
                    | K::Int
                    | K::Float
                    | K::Duration
                    | K::Timestamp
                    | K::Str
                    | K::BadLiteral
                    | K::LParen
                    | K::LBracket
                    | K::LBrace
                    | K::Minus
                    | K::Tilde
                    | K::Bang
            ),
            None => false,
        }
    }

    /// `x =>` or `(a, b) =>` ahead.
    fn lambda_ahead(&self) -> bool {
        match self.nth(0) {
            Some(K::Ident) => self.nth(1) == Some(K::FatArrow),
            Some(K::LParen) => {
                let mut i = 1;
                if self.nth(i) == Some(K::RParen) {
                    return self.nth(i + 1) == Some(K::FatArrow);
                }
                loop {
                    if self.nth(i) != Some(K::Ident) {
                        return false;
                    }
                    i += 1;
                    match self.nth(i) {
                        Some(K::Comma) => i += 1,
                        Some(K::RParen) => return self.nth(i + 1) == Some(K::FatArrow),
                        _ => return false,
                    }
                }
            }
            _ => false,
        }
    }

    /// `x => e`, `(a, b) => e`, `(a) => { stmts }`.
    fn lambda(&mut self) -> Expr {
        let start = self.here();
        let mut params = Vec::new();
        if self.at(K::Ident) {
            params.push(self.take_ident());
        } else {
            self.bump();
            while self.at(K::Ident) {
                params.push(self.take_ident());
                self.eat(K::Comma);
            }
            self.eat(K::RParen);
        }
        self.bump(); // `=>`
                     // `{k: v}` after `=>` is a map literal, not a block.
        let map_literal = self.at(K::LBrace)
            && (self.nth(1) == Some(K::RBrace)
                || (matches!(self.nth(1), Some(K::Ident | K::Str))
                    && self.nth(2) == Some(K::Colon)));
        let body = if self.at(K::LBrace) && !map_literal {
            LambdaBody::Block(self.brace_block())
        } else {
            LambdaBody::Expr(self.expr())
        };
        Expr {
            kind: ExprKind::Lambda {
                params,
                body: Box::new(body),
            },
            span: self.since(start),
        }
    }

    /// `a..b`, `a..=b` (non-associative) or a plain `or` expression.
    fn range(&mut self) -> Expr {
        let start = self.or_expr();
        let inclusive = match self.nth(0) {
            Some(K::DotDot) => false,
            Some(K::DotDotEq) => true,
            _ => return start,
        };
        self.bump();
        let end = self.or_expr();
        if matches!(self.nth(0), Some(K::DotDot | K::DotDotEq)) {
            self.report(
                SyntaxError::new(
                    codes::UNEXPECTED_TOKEN,
                    "ranges cannot be chained",
                    self.here(),
                )
                .with_label("a second range operator")
                .with_help("write one range `a..b`"),
            );
            self.bump();
            self.or_expr();
        }
        let span = start.span.cover(end.span);
        Expr {
            kind: ExprKind::Range {
                start: Box::new(start),
                end: Box::new(end),
                inclusive,
            },
            span,
        }
    }

    /// Reports `&&`, `||` and `??` with the VPL spelling.
    fn report_foreign_op(&mut self, help: &str) {
        let found = self.nth_text(0).to_string();
        self.report(
            SyntaxError::new(
                codes::UNSUPPORTED_SYNTAX,
                format!("`{found}` is not supported"),
                self.here(),
            )
            .with_label("not a VPL operator")
            .with_help(help.to_string()),
        );
    }

    /// `a or b or ...` (also reports `||` and `??`).
    fn or_expr(&mut self) -> Expr {
        let mut lhs = self.and_expr();
        let mut len = 0;
        loop {
            let coalesce = self.at(K::QuestionQuestion);
            if self.at_word("or") {
                self.bump();
            } else if self.at(K::PipePipe) {
                self.report_foreign_op("use `or`");
                self.bump();
            } else if coalesce {
                self.report_foreign_op("use `coalesce(a, b)`");
                self.bump();
            } else {
                return lhs;
            }
            let rhs = self.and_expr();
            len += 1;
            if !self.check_chain(len) {
                continue;
            }
            lhs = if coalesce {
                let span = lhs.span.cover(rhs.span);
                Expr {
                    kind: ExprKind::Error,
                    span,
                }
            } else {
                binary(BinaryOp::Or, lhs, rhs)
            };
        }
    }

    /// `a and b and ...` (also reports `&&`).
    fn and_expr(&mut self) -> Expr {
        let mut lhs = self.not_expr();
        let mut len = 0;
        loop {
            if self.at_word("and") {
                self.bump();
            } else if self.at(K::AmpAmp) {
                self.report_foreign_op("use `and`");
                self.bump();
            } else {
                return lhs;
            }
            let rhs = self.not_expr();
            len += 1;
            if self.check_chain(len) {
                lhs = binary(BinaryOp::And, lhs, rhs);
            }
        }
    }

    /// Whether the current `not` is the prefix operator (rather than a field
    /// named `not`).
    fn at_prefix_not(&self) -> bool {
        if !self.at_word("not") {
            return false;
        }
        match self.nth(1) {
            Some(K::Ident) => self.nth_text(1) != "in",
            Some(
                K::Int
                | K::Float
                | K::Duration
                | K::Timestamp
                | K::Str
                | K::BadLiteral
                | K::LParen
                | K::LBracket
                | K::LBrace
                | K::Minus
                | K::Tilde,
            ) => true,
            _ => false,
        }
    }

    /// Prefix `not` applied to a whole comparison (`!` is reported and read
    /// as `not`).
    fn not_expr(&mut self) -> Expr {
        let mut prefixes: Vec<Span> = Vec::new();
        loop {
            if self.at_prefix_not() {
                prefixes.push(self.bump().span);
            } else if self.at(K::Bang) {
                self.report(
                    SyntaxError::new(
                        codes::UNSUPPORTED_SYNTAX,
                        "`!` is not supported",
                        self.here(),
                    )
                    .with_label("not a VPL operator")
                    .with_help("use `not`"),
                );
                prefixes.push(self.bump().span);
            } else {
                break;
            }
            if prefixes.len() > super::MAX_BRACKET_DEPTH {
                self.report_too_deep(self.here());
                while self.at_prefix_not() || self.at(K::Bang) {
                    self.bump();
                }
                break;
            }
        }
        let mut e = self.comparison();
        for span in prefixes.into_iter().rev().take(super::MAX_BRACKET_DEPTH) {
            let span = span.cover(e.span);
            e = Expr {
                kind: ExprKind::Unary {
                    op: UnaryOp::Not,
                    expr: Box::new(e),
                },
                span,
            };
        }
        e
    }

    /// The comparison operator at the current position and its token count.
    fn comparison_op(&self) -> Option<(BinaryOp, usize)> {
        let op = match self.nth(0)? {
            K::EqEq => BinaryOp::Eq,
            K::NotEq => BinaryOp::Ne,
            K::Lt => BinaryOp::Lt,
            K::Le => BinaryOp::Le,
            K::Gt => BinaryOp::Gt,
            K::Ge => BinaryOp::Ge,
            K::Ident => match self.nth_text(0) {
                "in" => BinaryOp::In,
                "is" => BinaryOp::Is,
                "not" if self.nth_word(1, "in") => return Some((BinaryOp::NotIn, 2)),
                _ => return None,
            },
            _ => return None,
        };
        Some((op, 1))
    }

    /// One non-associative comparison; a chain is reported once.
    fn comparison(&mut self) -> Expr {
        let lhs = self.binary(0);
        let Some((op, n)) = self.comparison_op() else {
            return lhs;
        };
        for _ in 0..n {
            self.bump();
        }
        let rhs = self.binary(0);
        let e = binary(op, lhs, rhs);
        if let Some((op2, n2)) = self.comparison_op() {
            let op_span = self.here();
            let lhs_text = self.text.get(e.span.range()).unwrap_or("");
            let mid = match &e.kind {
                ExprKind::Binary { rhs, .. } => self.text.get(rhs.span.range()).unwrap_or(""),
                _ => "",
            };
            for _ in 0..n2 {
                self.bump();
            }
            let rest = self.binary(0);
            let rest_text = self.text.get(rest.span.range()).unwrap_or("");
            self.report(
                SyntaxError::new(
                    codes::CHAINED_COMPARISON,
                    "comparison operators cannot be chained",
                    op_span,
                )
                .with_label("second comparison")
                .with_help(format!(
                    "combine two comparisons: `{lhs_text} and {mid} {} {rest_text}`",
                    op2.as_str()
                )),
            );
            // Further comparisons in the same chain belong to the same cause.
            while let Some((_, n3)) = self.comparison_op() {
                for _ in 0..n3 {
                    self.bump();
                }
                self.binary(0);
            }
        }
        e
    }

    /// The binary operator (levels `|` to `* / %`) at the current position
    /// with its precedence (higher binds tighter).
    fn binary_op(&self) -> Option<(BinaryOp, u8)> {
        let op = match self.nth(0)? {
            K::Pipe => (BinaryOp::BitOr, 1),
            K::Caret => (BinaryOp::BitXor, 2),
            K::Amp => (BinaryOp::BitAnd, 3),
            K::Shl => (BinaryOp::Shl, 4),
            K::Shr => (BinaryOp::Shr, 4),
            K::Plus => (BinaryOp::Add, 5),
            K::Minus => (BinaryOp::Sub, 5),
            K::Star => (BinaryOp::Mul, 6),
            K::Slash => (BinaryOp::Div, 6),
            K::Percent => (BinaryOp::Rem, 6),
            _ => return None,
        };
        Some(op)
    }

    /// Left-associative binary levels by precedence climbing.
    fn binary(&mut self, min_prec: u8) -> Expr {
        let mut lhs = self.power();
        let mut len = 0;
        while let Some((op, prec)) = self.binary_op() {
            if prec < min_prec {
                break;
            }
            self.bump();
            let rhs = self.binary(prec + 1);
            len += 1;
            if self.check_chain(len) {
                lhs = binary(op, lhs, rhs);
            }
        }
        lhs
    }

    /// `a ** b ** c`, right-associative, folded without recursion.
    fn power(&mut self) -> Expr {
        let first = self.unary();
        if !self.at(K::StarStar) {
            return first;
        }
        let mut operands = vec![first];
        while self.eat(K::StarStar) {
            let operand = self.unary();
            if self.check_chain(operands.len()) {
                operands.push(operand);
            }
        }
        let mut acc = operands.pop().expect("at least two operands were pushed");
        while let Some(lhs) = operands.pop() {
            acc = binary(BinaryOp::Pow, lhs, acc);
        }
        acc
    }

    /// Prefix `-` and `~`, then postfix operators.
    fn unary(&mut self) -> Expr {
        let mut prefixes: Vec<(UnaryOp, Span)> = Vec::new();
        while let Some(op) = match self.nth(0) {
            Some(K::Minus) => Some(UnaryOp::Neg),
            Some(K::Tilde) => Some(UnaryOp::BitNot),
            _ => None,
        } {
            let span = self.bump().span;
            if prefixes.len() >= super::MAX_BRACKET_DEPTH {
                self.report_too_deep(span);
                continue;
            }
            prefixes.push((op, span));
        }
        let mut e = self.postfix();
        while let Some((op, span)) = prefixes.pop() {
            let span = span.cover(e.span);
            e = Expr {
                kind: ExprKind::Unary {
                    op,
                    expr: Box::new(e),
                },
                span,
            };
        }
        e
    }

    /// A primary followed by `.name`, `?.name`, `[i]`, `[a:b]`, `(args)`.
    fn postfix(&mut self) -> Expr {
        let mut e = self.primary();
        let mut len = 0;
        loop {
            match self.nth(0) {
                Some(K::Dot) | Some(K::QuestionDot) => {
                    let optional = self.at(K::QuestionDot);
                    if self.step_mode
                        && self.nth(1) == Some(K::Ident)
                        && self.nth(2) == Some(K::LParen)
                    {
                        // `.within(` after a step filter: the next operator.
                        break;
                    }
                    if self.nth(1) != Some(K::Ident) {
                        if !optional && self.step_mode {
                            break;
                        }
                        self.bump();
                        self.expected("a field name after `.`");
                        break;
                    }
                    self.bump();
                    let name = self.take_ident();
                    let span = e.span.cover(name.span);
                    e = Expr {
                        kind: ExprKind::Member {
                            base: Box::new(e),
                            name,
                            optional,
                        },
                        span,
                    };
                }
                Some(K::LBracket) => e = self.index(e),
                Some(K::LParen) => {
                    let args = self.args();
                    let span = self.since(e.span);
                    e = Expr {
                        kind: ExprKind::Call {
                            callee: Box::new(e),
                            args,
                        },
                        span,
                    };
                }
                _ => break,
            }
            len += 1;
            if !self.check_chain(len) {
                break;
            }
        }
        e
    }

    /// `base[i]` or `base[a:b]`; the current token is `[`.
    fn index(&mut self, base: Expr) -> Expr {
        let open = self.bump().span;
        let saved = std::mem::replace(&mut self.step_mode, false);
        if !self.enter() {
            self.skip_to_close();
            self.eat(K::RBracket);
            self.step_mode = saved;
            return Expr {
                kind: ExprKind::Error,
                span: self.since(base.span),
            };
        }
        let start = if self.at(K::Colon) {
            None
        } else {
            Some(Box::new(self.expr()))
        };
        let kind = if self.eat(K::Colon) {
            let end = if self.at(K::RBracket) {
                None
            } else {
                Some(Box::new(self.expr()))
            };
            ExprKind::Slice {
                base: Box::new(base),
                start,
                end,
            }
        } else {
            let index = start.unwrap_or_else(|| Box::new(self.error_expr()));
            ExprKind::Index {
                base: Box::new(base),
                index,
            }
        };
        self.close_bracket(open, K::LBracket);
        self.leave();
        self.step_mode = saved;
        let span = match &kind {
            ExprKind::Slice { base, .. } | ExprKind::Index { base, .. } => self.since(base.span),
            _ => open,
        };
        Expr { kind, span }
    }

    /// Expects the closing bracket of a single-element bracket construct.
    fn close_bracket(&mut self, open: Span, open_kind: K) {
        let close = match open_kind {
            K::LParen => K::RParen,
            K::LBracket => K::RBracket,
            _ => K::RBrace,
        };
        if self.eat(close) {
            return;
        }
        let before = self.errors.len();
        if !self.at_end() {
            self.expected(&format!("`{}`", super::closing_text(open_kind)));
            self.skip_until(|_| false);
            if self.eat(close) {
                return;
            }
        }
        self.unclosed(open, open_kind, before);
    }

    /// Literals, names, `if`, arrays, maps and parentheses.
    fn primary(&mut self) -> Expr {
        let Some(kind) = self.nth(0) else {
            let err = self.expected_error(codes::EXPECTED_EXPRESSION, "an expression");
            self.report(err);
            return self.error_expr();
        };
        let span = self.here();
        let text = self.nth_text(0);
        let lit = |kind| Expr { kind, span };
        match kind {
            K::Int => {
                self.bump();
                lit(text.parse().map_or(ExprKind::Error, ExprKind::Int))
            }
            K::Float => {
                self.bump();
                lit(text
                    .parse()
                    .map_or(ExprKind::Error, |v| ExprKind::Float(FloatLit(v))))
            }
            K::Duration => {
                self.bump();
                lit(literal::parse_duration(text).map_or(ExprKind::Error, ExprKind::Duration))
            }
            K::Timestamp => {
                self.bump();
                lit(literal::parse_timestamp(text).map_or(ExprKind::Error, ExprKind::Timestamp))
            }
            K::Str => {
                self.bump();
                lit(ExprKind::Str(string_value(text)))
            }
            K::BadLiteral => {
                self.bump();
                lit(ExprKind::Error)
            }
            K::Ident => match text {
                "true" => {
                    self.bump();
                    lit(ExprKind::Bool(true))
                }
                "false" => {
                    self.bump();
                    lit(ExprKind::Bool(false))
                }
                "null" => {
                    self.bump();
                    lit(ExprKind::Null)
                }
                "if" if self.nth(1).is_some() && self.nth(1) != Some(K::Colon) => self.if_expr(),
                _ => {
                    let id = self.take_ident();
                    lit(ExprKind::Ident(id))
                }
            },
            K::LBracket => {
                let open = self.bump().span;
                let items = self.delimited(open, K::LBracket, |p| p.expr());
                Expr {
                    kind: ExprKind::Array(items),
                    span: self.since(open),
                }
            }
            K::LBrace => self.map(),
            K::LParen => {
                let open = self.bump().span;
                if !self.enter() {
                    self.skip_to_close();
                    self.eat(K::RParen);
                    return Expr {
                        kind: ExprKind::Error,
                        span: self.since(open),
                    };
                }
                let saved = std::mem::replace(&mut self.step_mode, false);
                let inner = self.expr();
                if self.at(K::Comma) {
                    self.report(
                        SyntaxError::new(
                            codes::UNEXPECTED_TOKEN,
                            "tuples are not expressions",
                            self.here(),
                        )
                        .with_label("a `,` inside parentheses")
                        .with_help("use an array `[a, b]`"),
                    );
                    self.skip_until(|_| false);
                }
                self.close_bracket(open, K::LParen);
                self.step_mode = saved;
                self.leave();
                Expr {
                    kind: ExprKind::Paren(Box::new(inner)),
                    span: self.since(open),
                }
            }
            _ => {
                let err = self.expected_error(codes::EXPECTED_EXPRESSION, "an expression");
                self.report(err);
                self.error_expr()
            }
        }
    }

    /// `if c then a else b`; the current token is `if`.
    fn if_expr(&mut self) -> Expr {
        let start = self.bump().span;
        if !self.enter() {
            return self.skip_too_deep();
        }
        let cond = self.expr();
        let then_branch = if self.eat_word("then") {
            self.expr()
        } else {
            self.expected("`then`");
            self.error_expr()
        };
        let else_branch = if self.eat_word("else") {
            self.expr()
        } else {
            if !matches!(then_branch.kind, ExprKind::Error) {
                self.expected("`else`");
            }
            self.error_expr()
        };
        self.leave();
        Expr {
            kind: ExprKind::If {
                cond: Box::new(cond),
                then_branch: Box::new(then_branch),
                else_branch: Box::new(else_branch),
            },
            span: self.since(start),
        }
    }

    /// `{k: v, "k": v}`; the current token is `{`.
    fn map(&mut self) -> Expr {
        let open = self.bump().span;
        let entries = self.delimited(open, K::LBrace, |p| {
            let key = match p.nth(0) {
                Some(K::Ident) => p.take_ident(),
                Some(K::Str) => {
                    let tok = p.bump();
                    Ident {
                        name: string_value(p.text.get(tok.span.range()).unwrap_or("")),
                        span: tok.span,
                    }
                }
                _ => {
                    p.expected("a map key (a name or a string)");
                    return (p.missing_ident(), p.error_expr());
                }
            };
            if !p.expect(K::Colon, "`:` after the map key") {
                return (key, p.error_expr());
            }
            (key, p.expr())
        });
        Expr {
            kind: ExprKind::Map(entries),
            span: self.since(open),
        }
    }

    /// A step filter: an expression that stops before `.name(` (the next
    /// pipeline operator) as well as before `as`.
    pub(super) fn step_filter(&mut self) -> Expr {
        let saved = std::mem::replace(&mut self.step_mode, true);
        let e = self.expr();
        self.step_mode = saved;
        e
    }

    /// Positional and named arguments, for callers that already consumed
    /// nothing; the current token is `(`.
    pub(super) fn call_args(&mut self) -> Vec<Arg> {
        self.args()
    }

    // ----- types ----------------------------------------------------------

    /// A written type (docs/LANGUAGE.md#types).
    pub(super) fn type_expr(&mut self) -> TypeExpr {
        let start = self.here();
        if !self.enter() {
            self.skip_until(|p| p.at(K::Comma));
            return TypeExpr {
                kind: TypeKind::Error,
                span: self.since(start),
            };
        }
        let kind = match self.nth(0) {
            Some(K::Ident) if self.at_word("Stream") && self.nth(1) == Some(K::Lt) => {
                self.bump();
                self.bump();
                let inner = self.type_expr();
                self.close_angle();
                TypeKind::Stream(Box::new(inner))
            }
            Some(K::Ident) => TypeKind::Named(self.take_ident()),
            Some(K::LBracket) => {
                let open = self.bump().span;
                let inner = self.type_expr();
                self.close_bracket(open, K::LBracket);
                TypeKind::Array(Box::new(inner))
            }
            Some(K::LBrace) => {
                let open = self.bump().span;
                let key = self.type_expr();
                self.expect(K::Colon, "`:` between the key and value types");
                let value = self.type_expr();
                self.close_bracket(open, K::LBrace);
                TypeKind::Map(Box::new(key), Box::new(value))
            }
            Some(K::LParen) => {
                let open = self.bump().span;
                TypeKind::Tuple(self.delimited(open, K::LParen, |p| p.type_expr()))
            }
            _ => {
                self.expected("a type");
                TypeKind::Error
            }
        };
        let mut ty = TypeExpr {
            kind,
            span: self.since(start),
        };
        while self.at(K::Question) {
            self.bump();
            ty = TypeExpr {
                kind: TypeKind::Optional(Box::new(ty)),
                span: self.since(start),
            };
        }
        self.leave();
        ty
    }

    /// The `>` closing `Stream<T`, splitting a `>>` token in two.
    fn close_angle(&mut self) {
        if self.eat(K::Gt) {
            return;
        }
        if self.at(K::Shr) {
            let tok = &mut self.toks[self.pos];
            tok.kind = K::Gt;
            tok.span.start += 1;
            return;
        }
        self.expected("`>`");
    }
}

/// The decoded value of a string token (quotes removed; an unterminated
/// string, already reported, keeps everything after its quote).
pub(super) fn string_value(token_text: &str) -> String {
    let bytes = token_text.as_bytes();
    let Some(&quote) = bytes.first() else {
        return String::new();
    };
    let mut i = 1;
    let mut end = bytes.len();
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if bytes[i] == quote {
            end = i;
            break;
        }
        i += 1;
    }
    literal::decode_string(token_text.get(1..end).unwrap_or(""))
}

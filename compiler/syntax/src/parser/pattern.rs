//! Named patterns (docs/LANGUAGE.md#named-patterns) with the shorthand of docs/LANGUAGE.md#pattern-shorthand.
//!
//! Grammar, loosest first:
//! ```text
//! pattern_decl := 'pattern' Ident '=' por clause*
//! clause       := 'within' expr | 'partition' 'by' Ident | 'policy' Ident
//! por          := pand ('OR' pand)*
//! pand         := pseq ('AND' pseq)*
//! pseq         := pnot ('->' pnot)*                       (sugar for SEQ)
//! pnot         := 'NOT' pnot | pprim
//! pprim        := 'SEQ' '(' por, ... ')' | 'AND' '(' por, por ')'
//!               | 'OR' '(' por, por ')' | 'NOT' '(' por ')' | '(' por ')'
//!               | Ident [+|*|?] ['[' expr ']'] ['where' expr] ['as' Ident]
//! ```
//! `->` binds tighter than `AND`/`OR`, so `A -> B OR C` is `(A -> B) OR C`.

use super::Parser;
use crate::ast::{Kleene, PatternDecl, PatternExpr, PatternKind, PatternStep};
use crate::codes;
use crate::error::SyntaxError;
use crate::lexer::TokenKind as K;
use crate::span::Span;

impl<'a> Parser<'a> {
    /// `pattern Name = pexpr [clauses]`; the current token is `pattern`.
    pub(super) fn pattern_decl(&mut self) -> PatternDecl {
        let start = self.bump().span;
        let name = self
            .ident("a pattern name")
            .unwrap_or_else(|| self.missing_ident());
        let expr = if self.expect(K::Eq, "`=` and the pattern") {
            self.por()
        } else {
            PatternExpr {
                kind: PatternKind::Error,
                span: self.here(),
            }
        };
        let mut within = None;
        let mut partition_by = None;
        let mut policy = None;
        loop {
            let clause_span = self.here();
            if self.eat_word("within") {
                let e = self.step_filter();
                if within.is_some() {
                    self.duplicate_clause("within", clause_span);
                } else {
                    within = Some(e);
                }
            } else if self.at_word("partition") && self.nth_word(1, "by") {
                self.bump();
                self.bump();
                let key = self.ident("the partition key field");
                if partition_by.is_some() {
                    self.duplicate_clause("partition by", clause_span);
                } else {
                    partition_by = key;
                }
            } else if self.eat_word("policy") {
                let p = self.ident("a selection policy name");
                if policy.is_some() {
                    self.duplicate_clause("policy", clause_span);
                } else {
                    policy = p;
                }
            } else {
                break;
            }
        }
        if !self.at_end() && self.at(K::Ident) && self.nth_text(0) == "partition" {
            self.expected("`by` after `partition`");
        }
        PatternDecl {
            name,
            expr,
            within,
            partition_by,
            policy,
            span: self.since(start),
        }
    }

    fn duplicate_clause(&mut self, clause: &str, span: Span) {
        self.report(
            SyntaxError::new(
                codes::DUPLICATE_CLAUSE,
                format!("`{clause}` is given twice"),
                span,
            )
            .with_label("second clause")
            .with_help(format!("keep one `{clause}` clause")),
        );
    }

    /// `a OR b OR ...`.
    fn por(&mut self) -> PatternExpr {
        if !self.enter() {
            let start = self.here();
            self.skip_until(|p| p.at(K::Comma));
            return PatternExpr {
                kind: PatternKind::Error,
                span: self.since(start),
            };
        }
        let mut lhs = self.pand();
        let mut len = 0;
        while self.eat_word("OR") {
            let rhs = self.pand();
            len += 1;
            if self.check_chain(len) {
                let span = lhs.span.cover(rhs.span);
                lhs = PatternExpr {
                    kind: PatternKind::Or(Box::new(lhs), Box::new(rhs)),
                    span,
                };
            }
        }
        self.leave();
        lhs
    }

    /// `a AND b AND ...`.
    fn pand(&mut self) -> PatternExpr {
        let mut lhs = self.pseq();
        let mut len = 0;
        while self.eat_word("AND") {
            let rhs = self.pseq();
            len += 1;
            if self.check_chain(len) {
                let span = lhs.span.cover(rhs.span);
                lhs = PatternExpr {
                    kind: PatternKind::And(Box::new(lhs), Box::new(rhs)),
                    span,
                };
            }
        }
        lhs
    }

    /// `a -> b -> ...` (sugar for `SEQ(a, b, ...)`).
    fn pseq(&mut self) -> PatternExpr {
        let first = self.pnot();
        if !self.at(K::Arrow) {
            return first;
        }
        let mut items = vec![first];
        while self.eat(K::Arrow) {
            let item = self.pnot();
            if self.check_chain(items.len()) {
                items.push(item);
            }
        }
        let span = items[0].span.cover(items[items.len() - 1].span);
        PatternExpr {
            kind: PatternKind::Seq(items),
            span,
        }
    }

    /// `NOT p`, iteratively.
    fn pnot(&mut self) -> PatternExpr {
        let mut nots: Vec<Span> = Vec::new();
        while self.at_word("NOT") && self.nth(1) != Some(K::LParen) {
            let span = self.bump().span;
            if nots.len() >= super::MAX_BRACKET_DEPTH {
                self.report_too_deep(span);
                continue;
            }
            nots.push(span);
        }
        let mut p = self.pprim();
        while let Some(span) = nots.pop() {
            let span = span.cover(p.span);
            p = PatternExpr {
                kind: PatternKind::Not(Box::new(p)),
                span,
            };
        }
        p
    }

    /// The operands of `SEQ(...)`, `AND(...)`, `OR(...)`, `NOT(...)`.
    fn pattern_args(&mut self) -> Vec<PatternExpr> {
        let open = self.bump().span;
        self.delimited(open, K::LParen, |p| p.por())
    }

    /// A primary pattern.
    fn pprim(&mut self) -> PatternExpr {
        let start = self.here();
        let word = if self.at(K::Ident) {
            self.nth_text(0)
        } else {
            ""
        };
        let call = self.nth(1) == Some(K::LParen);
        let kind = match word {
            "SEQ" if call => {
                self.bump();
                PatternKind::Seq(self.pattern_args())
            }
            "AND" | "OR" if call => {
                self.bump();
                let args = self.pattern_args();
                self.fold_call(word, args, start)
            }
            "NOT" if call => {
                self.bump();
                let mut args = self.pattern_args();
                if args.len() == 1 {
                    PatternKind::Not(Box::new(args.swap_remove(0)))
                } else {
                    self.report(
                        SyntaxError::new(
                            codes::UNEXPECTED_TOKEN,
                            "`NOT(...)` takes one pattern",
                            self.since(start),
                        )
                        .with_label("wrong number of patterns")
                        .with_help("write `NOT(A)`, or `NOT (A OR B)` to negate several"),
                    );
                    PatternKind::Error
                }
            }
            "" if self.at(K::LParen) => {
                let open = self.bump().span;
                if !self.enter() {
                    self.skip_to_close();
                    self.eat(K::RParen);
                    return PatternExpr {
                        kind: PatternKind::Error,
                        span: self.since(start),
                    };
                }
                let inner = self.por();
                self.close_paren(open);
                self.leave();
                return PatternExpr {
                    kind: inner.kind,
                    span: self.since(start),
                };
            }
            "" => {
                let err = self
                    .expected_error(codes::UNEXPECTED_TOKEN, "an event type or pattern")
                    .with_help("write an event type, `SEQ(A, B)`, `A -> B`, `A AND B`, `A OR B` or `NOT A`");
                self.report(err);
                PatternKind::Error
            }
            _ => PatternKind::Step(self.pattern_step()),
        };
        PatternExpr {
            kind,
            span: self.since(start),
        }
    }

    /// Expects the `)` of a parenthesised pattern.
    fn close_paren(&mut self, open: Span) {
        if self.eat(K::RParen) {
            return;
        }
        let before = self.errors.len();
        if !self.at_end() {
            self.expected("`)`");
            self.skip_to_close();
            if self.eat(K::RParen) {
                return;
            }
        }
        self.unclosed(open, K::LParen, before);
    }

    /// `AND(a, b, ...)` / `OR(a, b, ...)` folded left.
    fn fold_call(&mut self, word: &str, args: Vec<PatternExpr>, start: Span) -> PatternKind {
        if args.len() < 2 {
            self.report(
                SyntaxError::new(
                    codes::UNEXPECTED_TOKEN,
                    format!("`{word}(...)` takes at least two patterns"),
                    self.since(start),
                )
                .with_label("too few patterns")
                .with_help(format!("write `{word}(A, B)`")),
            );
            return PatternKind::Error;
        }
        let mut iter = args.into_iter();
        let mut acc = iter.next().expect("two or more patterns");
        for next in iter {
            let span = acc.span.cover(next.span);
            let kind = if word == "AND" {
                PatternKind::And(Box::new(acc), Box::new(next))
            } else {
                PatternKind::Or(Box::new(acc), Box::new(next))
            };
            acc = PatternExpr { kind, span };
        }
        acc.kind
    }

    /// `Type[+|*|?] [[pred]] [where e] [as a]`.
    fn pattern_step(&mut self) -> PatternStep {
        let ty = self.take_ident();
        let mut kleene = self.kleene();
        let mut filter = None;
        if self.at(K::LBracket) {
            let open = self.bump().span;
            let saved = std::mem::replace(&mut self.step_mode, false);
            filter = Some(self.expr());
            self.step_mode = saved;
            if !self.eat(K::RBracket) {
                let before = self.errors.len();
                if !self.at_end() {
                    self.expected("`]`");
                    self.skip_to_close();
                    self.eat(K::RBracket);
                } else {
                    self.unclosed(open, K::LBracket, before);
                }
            }
            if kleene.is_none() {
                kleene = self.kleene();
            }
        }
        if self.eat_word("where") {
            let e = self.step_filter();
            if filter.is_some() {
                self.report(
                    SyntaxError::new(
                        codes::DUPLICATE_CLAUSE,
                        "the step has both `[...]` and `where` filters",
                        e.span,
                    )
                    .with_label("second filter")
                    .with_help("combine them with `and` in one `where`"),
                );
            } else {
                filter = Some(e);
            }
        }
        let alias = if self.eat_word("as") {
            self.ident("an alias name")
        } else {
            None
        };
        PatternStep {
            ty,
            kleene,
            filter,
            alias,
        }
    }

    /// A Kleene suffix right after a step's type.
    fn kleene(&mut self) -> Option<Kleene> {
        let k = match self.nth(0)? {
            K::Plus => Kleene::Plus,
            K::Star => Kleene::Star,
            K::Question => Kleene::Optional,
            _ => return None,
        };
        self.bump();
        Some(k)
    }
}

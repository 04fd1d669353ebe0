//! Stream declarations: sources (docs/LANGUAGE.md#stream-sources) and pipeline operators
//! (docs/LANGUAGE.md#operators).
//!
//! Operators are generic `.name(args)` calls except `->` steps, `.not(...)`
//! and `.emit [as T](...)`. After a malformed operator the parser skips to
//! the next `.name(` or `->` at bracket depth 0, so one bad operator gives
//! one diagnostic and the rest of the chain is still parsed.

use super::Parser;
use crate::ast::{InlineStream, Op, OpKind, SeqStep, SequenceStep, Source, SourceKind, StreamDecl};
use crate::codes;
use crate::error::SyntaxError;
use crate::lexer::TokenKind as K;

impl<'a> Parser<'a> {
    /// `stream Name [: T] = source op*`; the current token is `stream`.
    pub(super) fn stream_decl(&mut self) -> StreamDecl {
        let start = self.bump().span;
        let name = self
            .ident("a stream name")
            .unwrap_or_else(|| self.missing_ident());
        let ty = if self.eat(K::Colon) {
            Some(self.type_expr())
        } else {
            None
        };
        let source = if self.expect(K::Eq, "`=` and the stream's source") {
            self.source()
        } else {
            self.skip_to_op();
            Source {
                kind: SourceKind::Error,
                span: self.here(),
            }
        };
        let ops = self.ops();
        StreamDecl {
            name,
            ty,
            source,
            ops,
            span: self.since(start),
        }
    }

    /// Skips to the next `.name(` or `->` at bracket depth 0.
    fn skip_to_op(&mut self) {
        self.skip_until(|p| {
            p.at(K::Arrow)
                || (p.at(K::Dot) && p.nth(1) == Some(K::Ident) && p.nth(2) == Some(K::LParen))
        });
        // A stray closing bracket at depth 0 cannot be skipped by
        // `skip_until`; drop it and look again.
        while !self.at_end() && super::is_close(self.tok().kind) {
            self.bump();
            self.skip_until(|p| {
                p.at(K::Arrow)
                    || (p.at(K::Dot) && p.nth(1) == Some(K::Ident) && p.nth(2) == Some(K::LParen))
            });
        }
    }

    /// A stream source.
    fn source(&mut self) -> Source {
        let start = self.here();
        let kind = match self.nth(0) {
            Some(K::Star) => {
                self.report(
                    SyntaxError::new(
                        codes::UNSUPPORTED_SYNTAX,
                        "`* pattern ... emit ...` streams are not supported",
                        self.here(),
                    )
                    .with_label("pattern streams are written differently")
                    .with_help(
                        "declare `pattern P = ...` and use it as the source: `stream S = P .emit(field: value)`",
                    ),
                );
                self.pos = self.end;
                SourceKind::Error
            }
            Some(K::Ident) => {
                let word = self.nth_text(0);
                let paren = self.nth(1) == Some(K::LParen);
                match word {
                    "merge" if paren => {
                        self.bump();
                        SourceKind::Merge(self.inline_streams())
                    }
                    "join" if paren => {
                        self.bump();
                        SourceKind::Join(self.inline_streams())
                    }
                    "sequence" if paren => {
                        self.bump();
                        let open = self.bump().span;
                        SourceKind::Sequence(self.delimited(open, K::LParen, |p| p.sequence_step()))
                    }
                    "timer" if paren => {
                        self.bump();
                        SourceKind::Timer(self.call_args())
                    }
                    "all" if self.nth(1) == Some(K::Ident) && !self.nth_word(1, "as") => {
                        self.bump();
                        let name = self.take_ident();
                        let alias = self.alias();
                        SourceKind::Named {
                            all: true,
                            name,
                            alias,
                        }
                    }
                    _ if self.nth(1) == Some(K::Dot)
                        && self.nth_word(2, "from")
                        && self.nth(3) == Some(K::LParen) =>
                    {
                        let ty = self.take_ident();
                        self.bump();
                        self.bump();
                        SourceKind::From {
                            ty,
                            args: self.call_args(),
                        }
                    }
                    _ => {
                        let name = self.take_ident();
                        let alias = self.alias();
                        SourceKind::Named {
                            all: false,
                            name,
                            alias,
                        }
                    }
                }
            }
            _ => {
                let err = self
                    .expected_error(codes::UNEXPECTED_TOKEN, "a stream source")
                    .with_help("a source is an event type, a stream, a pattern, `merge(...)`, `join(...)`, `sequence(...)` or `timer(...)`");
                self.report(err);
                self.skip_to_op();
                SourceKind::Error
            }
        };
        Source {
            kind,
            span: self.since(start),
        }
    }

    /// `as alias`, if present.
    fn alias(&mut self) -> Option<crate::ast::Ident> {
        if self.at_word("as") && self.nth(1) == Some(K::Ident) {
            self.bump();
            Some(self.take_ident())
        } else if self.at_word("as") {
            self.bump();
            self.ident("an alias name")
        } else {
            None
        }
    }

    /// The items of `merge(...)` / `join(...)`; the current token is `(`.
    fn inline_streams(&mut self) -> Vec<InlineStream> {
        let open = self.bump().span;
        self.delimited(open, K::LParen, |p| p.inline_stream())
    }

    /// `Name` or `stream S = Type [.where(e) | .on(e) | on e]`.
    fn inline_stream(&mut self) -> InlineStream {
        if !self.at_word("stream") || self.nth(1) != Some(K::Ident) {
            return match self.ident("a stream name or `stream S = Type`") {
                Some(id) => InlineStream::Ref(id),
                None => InlineStream::Ref(self.missing_ident()),
            };
        }
        let start = self.bump().span;
        let name = self.take_ident();
        self.expect(K::Eq, "`=` and the branch's event type");
        let ty = self
            .ident("an event type or stream name")
            .unwrap_or_else(|| self.missing_ident());
        let mut ops = Vec::new();
        loop {
            if self.at(K::Dot) && self.nth(1) == Some(K::Ident) {
                let op_start = self.bump().span;
                let name = self.take_ident();
                let args = if self.at(K::LParen) {
                    self.call_args()
                } else {
                    self.expected("`(`");
                    Vec::new()
                };
                ops.push(Op {
                    kind: OpKind::Call { name, args },
                    span: self.since(op_start),
                });
            } else if self.at_word("on") && self.nth(1).is_some() && !self.at_close_or_comma(1) {
                // The documented form `stream B = T on A.k == B.k` (docs/LANGUAGE.md#join).
                let on = self.take_ident();
                let cond = self.step_filter();
                let arg_span = cond.span;
                ops.push(Op {
                    kind: OpKind::Call {
                        name: on.clone(),
                        args: vec![crate::ast::Arg {
                            name: None,
                            value: cond,
                            span: arg_span,
                        }],
                    },
                    span: self.since(on.span),
                });
            } else {
                break;
            }
        }
        InlineStream::Decl {
            name,
            ty,
            ops,
            span: self.since(start),
        }
    }

    /// Whether the token `n` ahead is `,` or a closing bracket.
    fn at_close_or_comma(&self, n: usize) -> bool {
        matches!(
            self.nth(n),
            Some(K::Comma | K::RParen | K::RBracket | K::RBrace)
        )
    }

    /// `alias: Type [where e] [.within(d)]` inside `sequence(...)`.
    fn sequence_step(&mut self) -> SequenceStep {
        let start = self.here();
        let alias = self
            .ident("a step alias (`name: Type`)")
            .unwrap_or_else(|| self.missing_ident());
        self.expect(K::Colon, "`:` and the step's event type");
        let ty = self
            .ident("an event type")
            .unwrap_or_else(|| self.missing_ident());
        let filter = if self.eat_word("where") {
            Some(self.step_filter())
        } else {
            None
        };
        let mut within = None;
        if self.at(K::Dot) && self.nth_word(1, "within") && self.nth(2) == Some(K::LParen) {
            self.bump();
            self.bump();
            let mut args = self.call_args();
            if !args.is_empty() {
                within = Some(args.swap_remove(0).value);
            }
        }
        SequenceStep {
            alias,
            ty,
            filter,
            within,
            span: self.since(start),
        }
    }

    /// The operator chain after the source.
    fn ops(&mut self) -> Vec<Op> {
        let mut ops = Vec::new();
        while !self.at_end() {
            if self.at(K::Arrow) {
                let start = self.bump().span;
                let step = self.seq_step(start);
                ops.push(Op {
                    kind: OpKind::FollowedBy(step),
                    span: self.since(start),
                });
            } else if self.at(K::Dot) && self.nth(1) == Some(K::Ident) {
                let op = self.dot_op();
                ops.push(op);
            } else {
                let found = self.found();
                let mut err = SyntaxError::new(
                    codes::UNEXPECTED_TOKEN,
                    format!("expected an operator such as `.where(...)` or `->`, found {found}"),
                    self.here(),
                )
                .with_label("not an operator");
                if self.at(K::Ident) && self.nth(1) == Some(K::LParen) {
                    let name = self.nth_text(0);
                    err = err.with_help(format!("operators start with a dot: `.{name}(...)`"));
                } else {
                    err = err.with_help("chain operators as `.name(...)` or `-> Type`");
                }
                self.report(err);
                let before = self.pos;
                self.skip_to_op();
                if self.pos == before {
                    self.bump();
                }
            }
        }
        ops
    }

    /// `[all] Type [where e] [as alias]` after `->` (or inside `.not(`).
    fn seq_step(&mut self, start: crate::span::Span) -> SeqStep {
        let all = self.at_word("all")
            && self.nth(1) == Some(K::Ident)
            && !self.nth_word(1, "where")
            && !self.nth_word(1, "as");
        if all {
            self.bump();
        }
        let missing_type = self.at_word("where") || self.at_word("as");
        let ty = if missing_type {
            None
        } else {
            self.ident("an event type after `->`")
        };
        let ty = match ty {
            Some(id) => id,
            None => {
                if self.at_word("where") || self.at_word("as") {
                    self.expected("an event type after `->`");
                }
                self.skip_to_op();
                return SeqStep {
                    all,
                    ty: self.missing_ident(),
                    filter: None,
                    alias: None,
                    span: self.since(start),
                };
            }
        };
        let filter = if self.eat_word("where") {
            Some(self.step_filter())
        } else {
            None
        };
        let alias = self.alias();
        SeqStep {
            all,
            ty,
            filter,
            alias,
            span: self.since(start),
        }
    }

    /// `.name(args)`, `.not(T where e)` or `.emit [as T](args)`; the current
    /// token is the dot.
    fn dot_op(&mut self) -> Op {
        let start = self.bump().span;
        let name = self.take_ident();
        let kind = match name.name.as_str() {
            "not" if self.at(K::LParen) => {
                let open = self.bump().span;
                let step_start = self.here();
                let mut steps = self.delimited(open, K::LParen, |p| p.seq_step(step_start));
                let step = if steps.is_empty() {
                    self.report(
                        SyntaxError::new(
                            codes::UNEXPECTED_TOKEN,
                            "`.not()` needs an event type",
                            self.since(start),
                        )
                        .with_label("nothing to negate")
                        .with_help("write `.not(Type where condition)`"),
                    );
                    SeqStep {
                        all: false,
                        ty: self.missing_ident(),
                        filter: None,
                        alias: None,
                        span: self.since(start),
                    }
                } else {
                    steps.swap_remove(0)
                };
                OpKind::Not(step)
            }
            "emit" => {
                let as_type = if self.eat_word("as") {
                    self.ident("the emitted type name")
                } else {
                    None
                };
                let args = if self.at(K::LParen) {
                    self.call_args()
                } else {
                    self.expected("`(` and the emitted fields");
                    Vec::new()
                };
                OpKind::Emit { as_type, args }
            }
            _ => {
                let args = if self.at(K::LParen) {
                    self.call_args()
                } else {
                    let n = name.name.clone();
                    let err = self
                        .expected_error(codes::UNEXPECTED_TOKEN, &format!("`(` after `.{n}`"))
                        .with_help(format!("operators take parentheses: `.{n}()`"));
                    self.report(err);
                    Vec::new()
                };
                OpKind::Call { name, args }
            }
        };
        Op {
            kind,
            span: self.since(start),
        }
    }
}

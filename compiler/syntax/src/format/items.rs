//! Top-level declarations, statement blocks, streams and patterns.

use super::printer::Fmt;
use super::INDENT;
use crate::ast::{
    Block, ConfigDecl, ConfigSection, EventDecl, FnDecl, InlineStream, Item, Kleene, Op, OpKind,
    PatternDecl, PatternExpr, PatternKind, SeqStep, SequenceStep, Source, SourceKind, Stmt,
    StmtKind, StreamDecl,
};
use crate::span::Span;

/// The span of an item's own text (from its first keyword), item-relative.
pub(super) fn item_span(item: &Item) -> Span {
    match item {
        Item::Event(d) => d.span,
        Item::TypeAlias(d) => d.span,
        Item::Var(d) => d.span,
        Item::Assign(d) => d.span,
        Item::Fn(d) => d.span,
        Item::Stream(d) => d.span,
        Item::Pattern(d) => d.span,
        Item::Connector(d) => d.span,
        Item::Context(d) => d.span,
        Item::Config(d) => d.span,
        Item::Import(d) => d.span,
        Item::Stmt(s) => s.span,
        Item::Error(span) => *span,
    }
}

/// Binding strength of a printed pattern: an operand printed weaker than
/// its position needs gets parentheses.
const P_OR: u8 = 0;
const P_AND: u8 = 1;
const P_SEQ: u8 = 2;
const P_NOT: u8 = 3;
const P_PRIM: u8 = 4;

impl Fmt<'_> {
    /// Prints one top-level item at column 0.
    pub fn item(&mut self, item: &Item) {
        match item {
            Item::Event(d) => self.event(d),
            Item::TypeAlias(d) => {
                let text = format!("type {} = {}", d.name.name, self.ty(&d.ty));
                self.leaf(0, &text, self.abs(d.span), false);
            }
            Item::Var(d) => {
                let text = self.var_decl(d, 0);
                self.leaf(0, &text, self.abs(d.span), false);
            }
            Item::Assign(a) => {
                let text = format!("{} := {}", a.target.name, self.expr(&a.value, 0));
                self.leaf(0, &text, self.abs(a.span), false);
            }
            Item::Fn(d) => self.fn_decl(d),
            Item::Stream(d) => self.stream(d),
            Item::Pattern(d) => self.pattern(d),
            Item::Connector(d) => {
                let head = format!("connector {} = {}", d.name.name, d.kind.name);
                let items = self.arg_items(&d.params, INDENT);
                self.params(&head, &items, self.abs(d.span));
            }
            Item::Context(d) => {
                let head = format!("context {}", d.name.name);
                let items = self.arg_items(&d.params, INDENT);
                self.params(&head, &items, self.abs(d.span));
            }
            Item::Config(d) => self.config(d),
            Item::Import(d) => {
                let path = super::expr::string_literal(self.slice(d.path_span));
                let alias = d
                    .alias
                    .as_ref()
                    .map_or(String::new(), |a| format!(" as {}", a.name));
                self.leaf(0, &format!("import {path}{alias}"), self.abs(d.span), false);
            }
            Item::Stmt(s) => self.stmt(s, 0),
            Item::Error(span) => {
                let text = self.slice(*span).to_string();
                self.leaf(0, &text, self.abs(*span), false);
            }
        }
    }

    /// `head (k: v, ...)`, or just `head` without parameters.
    fn params(&mut self, head: &str, items: &[(String, Span)], span: Span) {
        if items.is_empty() {
            self.leaf(0, head, span, false);
        } else {
            self.list(0, &format!("{head} ("), items, ")", span, false);
        }
    }

    /// The end of a block opener's line: the colon before the first line of
    /// the block.
    fn opener_end(&self, first: Span) -> u32 {
        self.prev_code_end(first.start)
    }

    fn event(&mut self, d: &EventDecl) {
        let extends = d
            .extends
            .as_ref()
            .map_or(String::new(), |b| format!(" extends {}", b.name));
        let span = self.abs(d.span);
        let head = format!("event {}{extends}:", d.name.name);
        let Some(first) = d.fields.first() else {
            self.leaf(0, &format!("event {}{extends}", d.name.name), span, false);
            return;
        };
        let first = self.abs(first.span);
        let colon = self.opener_end(first);
        self.flush(colon, 0, false);
        self.line(0, &head, Some(colon));
        self.block_start = true;
        for f in &d.fields {
            let text = format!("{}: {}", f.name.name, self.ty(&f.ty));
            self.leaf(INDENT, &text, self.abs(f.span), false);
        }
        let col = self.column_of(first.start);
        self.block_tail(span.end, col, INDENT);
    }

    fn column_of(&self, pos: u32) -> usize {
        let before = self.orig.get(..pos as usize).unwrap_or("");
        before.len() - before.rfind('\n').map_or(0, |n| n + 1)
    }

    fn fn_decl(&mut self, d: &FnDecl) {
        let params: Vec<String> = d
            .params
            .iter()
            .map(|p| format!("{}: {}", p.name.name, self.ty(&p.ty)))
            .collect();
        let ret = d
            .ret
            .as_ref()
            .map_or(String::new(), |t| format!(" -> {}", self.ty(t)));
        let head = format!("fn {}({}){ret}:", d.name.name, params.join(", "));
        self.opener(0, &head, self.abs(d.span).start, &d.body, false);
        self.block(&d.body, INDENT);
    }

    /// A block opener line whose block is `body`; comments before `start`
    /// go above it.
    fn opener(&mut self, indent: usize, head: &str, start: u32, body: &Block, keep_blank: bool) {
        self.flush(start, indent, keep_blank);
        if keep_blank && self.blank_before(start) {
            self.blank();
        }
        let colon = match body.stmts.first() {
            Some(s) => self.opener_end(self.abs(s.span)),
            None => start,
        };
        self.flush(colon, indent, false);
        self.line(indent, head, Some(colon));
        self.block_start = true;
    }

    /// The statements of an indented block at `indent`.
    fn block(&mut self, b: &Block, indent: usize) {
        for s in &b.stmts {
            self.stmt(s, indent);
        }
        if let Some(first) = b.stmts.first() {
            let col = self.column_of(self.abs(first.span).start);
            self.block_tail(self.abs(b.span).end, col, indent);
        }
    }

    /// One statement at `indent`; blank lines before it are kept.
    fn stmt(&mut self, s: &Stmt, indent: usize) {
        let start = self.abs(s.span).start;
        match &s.kind {
            StmtKind::If {
                branches,
                else_block,
            } => {
                for (i, (cond, body)) in branches.iter().enumerate() {
                    let kw = if i == 0 { "if" } else { "elif" };
                    let head = format!("{kw} {}:", self.expr(cond, indent + INDENT));
                    // The `elif` keyword comes just before its condition.
                    let at = if i == 0 {
                        start
                    } else {
                        self.abs(cond.span).start
                    };
                    self.opener(indent, &head, at, body, i == 0);
                    self.block(body, indent + INDENT);
                }
                if let Some(body) = else_block {
                    let at = match body.stmts.first() {
                        Some(first) => {
                            let first = self.abs(first.span).start;
                            self.code_token_before(first, 1)
                                .map_or(first, |t| t.span.start)
                        }
                        None => start,
                    };
                    self.opener(indent, "else:", at, body, false);
                    self.block(body, indent + INDENT);
                }
            }
            StmtKind::For { var, iter, body } => {
                let head = format!("for {} in {}:", var.name, self.expr(iter, indent + INDENT));
                self.opener(indent, &head, start, body, true);
                self.block(body, indent + INDENT);
            }
            StmtKind::While { cond, body } => {
                let head = format!("while {}:", self.expr(cond, indent + INDENT));
                self.opener(indent, &head, start, body, true);
                self.block(body, indent + INDENT);
            }
            _ => {
                let text = self.simple_stmt(s, indent + INDENT);
                self.leaf(indent, &text, self.abs(s.span), indent > 0);
            }
        }
    }

    fn config(&mut self, d: &ConfigDecl) {
        let span = self.abs(d.span);
        let entries: Vec<(String, Span)> = d
            .entries
            .iter()
            .map(|e| (self.arg(e, 2 * INDENT), self.abs(e.span)))
            .collect();
        if d.name.is_none() || !d.sections.is_empty() {
            // The indented form; legacy entries and sections keep their
            // written order.
            let first = [
                entries.first().map(|(_, s)| *s),
                d.sections.first().map(|s| self.abs(s.span)),
            ]
            .into_iter()
            .flatten()
            .min_by_key(|s| s.start);
            let colon = first.map_or(span.start, |s| self.opener_end(s));
            self.flush(colon, 0, false);
            let head = match &d.name {
                Some(name) => format!("config {}:", name.name),
                None => "config:".to_string(),
            };
            self.line(0, &head, Some(colon));
            self.block_start = true;
            let mut entries = entries.iter().peekable();
            for section in &d.sections {
                let at = self.abs(section.span).start;
                while let Some((text, span)) = entries.next_if(|(_, s)| s.start < at) {
                    self.leaf(INDENT, text, *span, false);
                }
                self.config_section(section);
            }
            for (text, span) in entries {
                self.leaf(INDENT, text, *span, false);
            }
            return;
        }
        let Some(name) = &d.name else {
            return;
        };
        // The brace form is always broken, one entry per line.
        self.flush(span.start, 0, false);
        let brace = entries
            .first()
            .map_or(span.start, |(_, s)| self.prev_code_end(s.start));
        self.flush(brace, 0, false);
        self.line(0, &format!("config {} {{", name.name), Some(brace));
        for (text, span) in &entries {
            self.leaf(INDENT, &format!("{text},"), *span, false);
        }
        self.flush(span.end, INDENT, false);
        self.line(0, "}", Some(span.end));
    }

    /// `sources:` / `sinks:` and its connector entries, one per line.
    fn config_section(&mut self, section: &ConfigSection) {
        let span = self.abs(section.span);
        let colon = section
            .connectors
            .first()
            .map_or(span.end, |k| self.opener_end(self.abs(k.span)));
        self.flush(span.start, INDENT, true);
        if self.blank_before(span.start) {
            self.blank();
        }
        self.flush(colon, INDENT, false);
        self.line(INDENT, &format!("{}:", section.role.keyword()), Some(colon));
        self.block_start = true;
        for k in &section.connectors {
            let kspan = self.abs(k.span);
            let items = self.arg_items(&k.params, 3 * INDENT);
            // One line in braces when it fits and holds no comment, else
            // one indented `key: value` line per parameter.
            let texts: Vec<&str> = items.iter().map(|(t, _)| t.as_str()).collect();
            let one = if texts.is_empty() {
                format!("{}: {{}}", k.name.name)
            } else {
                format!("{}: {{ {} }}", k.name.name, texts.join(", "))
            };
            if items.is_empty() || (Self::fits(2 * INDENT, &one) && !self.has_comment_in(kspan)) {
                self.leaf(2 * INDENT, &one, kspan, true);
                continue;
            }
            let colon = items
                .first()
                .map_or(kspan.end, |(_, s)| self.opener_end(*s));
            self.flush(kspan.start, 2 * INDENT, true);
            if self.blank_before(kspan.start) {
                self.blank();
            }
            self.flush(colon, 2 * INDENT, false);
            self.line(2 * INDENT, &format!("{}:", k.name.name), Some(colon));
            self.block_start = true;
            for (text, span) in &items {
                self.leaf(3 * INDENT, text, *span, false);
            }
        }
    }

    // ----- streams ----------------------------------------------------------

    fn stream(&mut self, d: &StreamDecl) {
        let ty =
            d.ty.as_ref()
                .map_or(String::new(), |t| format!(": {}", self.ty(t)));
        let head = format!("stream {}{ty} = ", d.name.name);
        let span = Span::new(self.abs(d.span).start, self.abs(d.source.span).end);
        self.source(&head, &d.source, span);
        for op in &d.ops {
            self.op(op, INDENT);
        }
    }

    fn source(&mut self, head: &str, source: &Source, span: Span) {
        let (name, items) = match &source.kind {
            SourceKind::Named { all, name, alias } => {
                let all = if *all { "all " } else { "" };
                let alias = alias
                    .as_ref()
                    .map_or(String::new(), |a| format!(" as {}", a.name));
                self.leaf(0, &format!("{head}{all}{}{alias}", name.name), span, false);
                return;
            }
            SourceKind::Error => {
                let text = format!("{head}{}", self.slice(source.span));
                self.leaf(0, &text, span, false);
                return;
            }
            SourceKind::From { ty, args } => {
                (format!("{}.from", ty.name), self.arg_items(args, INDENT))
            }
            SourceKind::Merge(items) => ("merge".to_string(), self.inline_items(items)),
            SourceKind::Join(items) => ("join".to_string(), self.inline_items(items)),
            SourceKind::Sequence(steps) => (
                "sequence".to_string(),
                steps
                    .iter()
                    .map(|s| (self.sequence_step(s), self.abs(s.span)))
                    .collect(),
            ),
            SourceKind::Timer(args) => ("timer".to_string(), self.arg_items(args, INDENT)),
        };
        self.list(0, &format!("{head}{name}("), &items, ")", span, false);
    }

    fn inline_items(&self, items: &[InlineStream]) -> Vec<(String, Span)> {
        items
            .iter()
            .map(|item| match item {
                InlineStream::Ref(id) => (id.name.clone(), self.abs(id.span)),
                InlineStream::Decl {
                    name,
                    ty,
                    ops,
                    span,
                } => {
                    let ops: String = ops.iter().map(|op| self.op_text(op, INDENT)).collect();
                    (
                        format!("stream {} = {}{ops}", name.name, ty.name),
                        self.abs(*span),
                    )
                }
            })
            .collect()
    }

    fn sequence_step(&self, s: &SequenceStep) -> String {
        let mut text = format!("{}: {}", s.alias.name, s.ty.name);
        if let Some(f) = &s.filter {
            text.push_str(&format!(" where {}", self.expr(f, INDENT)));
        }
        if let Some(w) = &s.within {
            // After a filter the space keeps `.within` from reading as part
            // of the filter's last operand.
            let gap = if s.filter.is_some() { " " } else { "" };
            text.push_str(&format!("{gap}.within({})", self.expr(w, INDENT)));
        }
        text
    }

    /// `[all] Type [where e] [as a]`.
    fn seq_step(&self, s: &SeqStep, indent: usize) -> String {
        let mut text = String::new();
        if s.all {
            text.push_str("all ");
        }
        text.push_str(&s.ty.name);
        if let Some(f) = &s.filter {
            text.push_str(&format!(" where {}", self.expr(f, indent)));
        }
        if let Some(a) = &s.alias {
            text.push_str(&format!(" as {}", a.name));
        }
        text
    }

    /// An operator on one line.
    fn op_text(&self, op: &Op, indent: usize) -> String {
        match &op.kind {
            OpKind::Call { name, args } => format!(".{}({})", name.name, self.args(args, indent)),
            OpKind::FollowedBy(step) => format!("-> {}", self.seq_step(step, indent)),
            OpKind::Not(step) => format!(".not({})", self.seq_step(step, indent)),
            OpKind::Emit { as_type, args } => {
                let as_type = as_type
                    .as_ref()
                    .map_or(String::new(), |t| format!(" as {}", t.name));
                format!(".emit{as_type}({})", self.args(args, indent))
            }
        }
    }

    /// An operator on its own line at `indent`, its arguments broken when
    /// too long.
    fn op(&mut self, op: &Op, indent: usize) {
        let span = self.abs(op.span);
        let (head, args) = match &op.kind {
            OpKind::Call { name, args } => (format!(".{}(", name.name), args),
            OpKind::Emit { as_type, args } => {
                let as_type = as_type
                    .as_ref()
                    .map_or(String::new(), |t| format!(" as {}", t.name));
                (format!(".emit{as_type}("), args)
            }
            OpKind::FollowedBy(_) | OpKind::Not(_) => {
                let text = self.op_text(op, indent);
                self.leaf(indent, &text, span, false);
                return;
            }
        };
        let items = self.arg_items(args, indent + INDENT);
        self.list(indent, &head, &items, ")", span, false);
    }

    // ----- patterns ---------------------------------------------------------

    fn pattern(&mut self, d: &PatternDecl) {
        let span = self.abs(d.span);
        let mut clauses = String::new();
        if let Some(w) = &d.within {
            clauses.push_str(&format!(" within {}", self.expr(w, INDENT)));
        }
        if let Some(k) = &d.partition_by {
            clauses.push_str(&format!(" partition by {}", k.name));
        }
        if let Some(p) = &d.policy {
            clauses.push_str(&format!(" policy {}", p.name));
        }
        let head = format!("pattern {} = ", d.name.name);
        let (body, _) = self.pat(&d.expr);
        let one = format!("{head}{body}{clauses}");
        let seq_call =
            matches!(d.expr.kind, PatternKind::Seq(_)) && self.written_as_call(&d.expr, "SEQ");
        // Comments inside a one-line pattern move above it; only a `SEQ(...)`
        // argument list can keep them between its lines.
        if Self::fits(0, &one) && !(seq_call && self.has_comment_in(self.abs(d.expr.span))) {
            self.leaf(0, &one, span, false);
            return;
        }
        if let PatternKind::Seq(items) = &d.expr.kind {
            if seq_call {
                let items: Vec<(String, Span)> = items
                    .iter()
                    .map(|i| (self.pat(i).0, self.abs(i.span)))
                    .collect();
                let tail = format!("){clauses}");
                self.list(0, &format!("{head}SEQ("), &items, &tail, span, false);
                return;
            }
        }
        let expr_end = self.abs(d.expr.span).end;
        self.leaf(
            0,
            &format!("{head}{body}"),
            Span::new(span.start, expr_end),
            false,
        );
        if !clauses.is_empty() {
            self.leaf(
                INDENT,
                clauses.trim_start(),
                Span::new(expr_end, span.end),
                false,
            );
        }
    }

    /// Whether a pattern was written as `WORD(...)` (possibly inside
    /// parentheses) rather than with the infix or prefix sugar.
    fn written_as_call(&self, p: &PatternExpr, word: &str) -> bool {
        let text = self
            .slice(p.span)
            .trim_start_matches(['(', ' ', '\t', '\r', '\n']);
        text.strip_prefix(word)
            .is_some_and(|rest| rest.trim_start().starts_with('('))
    }

    /// A pattern and its binding strength.
    fn pat(&self, p: &PatternExpr) -> (String, u8) {
        let wrap = |(text, level): (String, u8), need: u8| {
            if level < need {
                format!("({text})")
            } else {
                text
            }
        };
        match &p.kind {
            PatternKind::Seq(items) => {
                if self.written_as_call(p, "SEQ") {
                    let items: Vec<String> = items.iter().map(|i| self.pat(i).0).collect();
                    (format!("SEQ({})", items.join(", ")), P_PRIM)
                } else {
                    let items: Vec<String> =
                        items.iter().map(|i| wrap(self.pat(i), P_NOT)).collect();
                    (items.join(" -> "), P_SEQ)
                }
            }
            PatternKind::And(lhs, rhs) | PatternKind::Or(lhs, rhs) => {
                let (word, level) = match &p.kind {
                    PatternKind::And(..) => ("AND", P_AND),
                    _ => ("OR", P_OR),
                };
                if self.written_as_call(p, word) {
                    let mut operands = vec![rhs.as_ref()];
                    let mut left = lhs.as_ref();
                    while std::mem::discriminant(&left.kind) == std::mem::discriminant(&p.kind) {
                        let (PatternKind::And(l, r) | PatternKind::Or(l, r)) = &left.kind else {
                            break;
                        };
                        operands.push(r);
                        left = l;
                    }
                    operands.push(left);
                    let operands: Vec<String> =
                        operands.iter().rev().map(|o| self.pat(o).0).collect();
                    (format!("{word}({})", operands.join(", ")), P_PRIM)
                } else {
                    let l = wrap(self.pat(lhs), level);
                    let r = wrap(self.pat(rhs), level + 1);
                    (format!("{l} {word} {r}"), level)
                }
            }
            PatternKind::Not(inner) => {
                let (text, level) = self.pat(inner);
                if level < P_NOT || self.written_as_call(p, "NOT") {
                    (format!("NOT({text})"), P_PRIM)
                } else {
                    (format!("NOT {text}"), P_NOT)
                }
            }
            PatternKind::Step(step) => {
                let mut text = step.ty.name.clone();
                if let Some(k) = step.kleene {
                    text.push(match k {
                        Kleene::Plus => '+',
                        Kleene::Star => '*',
                        Kleene::Optional => '?',
                    });
                }
                if let Some(f) = &step.filter {
                    // Keep the `Type[pred]` spelling: its predicate is a full
                    // expression, while `where` takes a restricted one.
                    let after = self.slice(Span::new(step.ty.span.end, p.span.end));
                    let bracket = after.trim_start_matches(['+', '*', '?', ' ', '\t', '\r', '\n']);
                    if bracket.starts_with('[') {
                        text.push_str(&format!("[{}]", self.expr(f, INDENT)));
                    } else {
                        text.push_str(&format!(" where {}", self.expr(f, INDENT)));
                    }
                }
                if let Some(a) = &step.alias {
                    text.push_str(&format!(" as {}", a.name));
                }
                (text, P_PRIM)
            }
            PatternKind::Error => (self.slice(p.span).to_string(), P_PRIM),
        }
    }
}

//! Sequences: in-stream `->` chains, `sequence(...)` sources and named
//! patterns → [`SequenceSpec`].
//!
//! Placement (docs/LANGUAGE.md#sequence-steps): `.where`/`.filter` written before the first `->`
//! filter the first step; `.within`, `.not` and `.partition_by` belong to the
//! whole sequence wherever they are written; every other operator after the
//! last step acts on match events. The sequence operator is the first of the
//! chain and step 0 reads the stream's source.
//!
//! Named patterns: a `SEQ` (or a single step) becomes the steps, `NOT X`
//! items become negations between their neighbours, and a top-level `AND`,
//! `OR` or `NOT p` becomes a [`PatternCombinator`] over step ranges.

use std::sync::Arc;

use varpulis_program::{
    AliasDef, Chunk, Kleene, Negation, OnFull, PatternTree, RunLimits, SchemaId, SelectionPolicy,
    SeqStep, SequenceSpec, SourceSpec,
};
use varpulis_syntax::ast::{
    self, Expr, ExprKind, Ident, Item, OpKind, PatternExpr, PatternKind, SequenceStep, StreamDecl,
};
use varpulis_syntax::Span;

use super::expr::{unparen, Env, ScopeAlias};
use super::{to_u16, Decl, Lowerer};
use crate::capabilities::Op as Operator;
use crate::codes;

/// A lowered sequence and what the rest of the chain sees.
pub(crate) struct SeqResult {
    pub source: SourceSpec,
    pub spec: SequenceSpec,
    /// Aliases visible after the match.
    pub aliases: Vec<ScopeAlias>,
    /// Layout of match events (the last step's).
    pub layout: SchemaId,
}

/// Steps being collected.
#[derive(Default)]
struct Builder {
    steps: Vec<SeqStep>,
    layouts: Vec<SchemaId>,
    aliases: Vec<AliasDef>,
    scope: Vec<ScopeAlias>,
    /// Negations with their type, filter expression, position and the item
    /// they were written in (filters are compiled once every alias is known).
    negations: Vec<(String, Span, Option<Expr>, Option<u16>)>,
    within: Option<i64>,
    partition: Option<Expr>,
    selection: SelectionPolicy,
    limits: RunLimits,
    /// Per step, what trend lowering needs (`.trend_aggregate`).
    sources: Vec<super::trend::StepSource>,
    /// The `.trend_aggregate` operator (its index in the stream's ops).
    trend_at: Option<usize>,
    /// The lowered `.trend_aggregate`.
    trend: Option<varpulis_program::TrendSpec>,
    /// The `.forecast` operator (its index in the stream's ops).
    forecast_at: Option<usize>,
    /// The lowered `.forecast`.
    forecast: Option<varpulis_program::ForecastSpec>,
}

impl Lowerer<'_> {
    /// Adds a step: `[all] ty [where filter] [as alias]`.
    fn add_step(
        &mut self,
        sb: &mut Builder,
        ty: &Ident,
        kleene: Kleene,
        filter: &[&Expr],
        alias: Option<&Ident>,
    ) -> Option<()> {
        let (input, layout) = self.input_of(&ty.name, ty.span)?;
        let alias_index = alias.map(|a| {
            // A step repeated in several alternatives of a normalised pattern
            // (`SEQ(A as a, B AND C)` → `SEQ(A, B, C) OR SEQ(A, C, B)`) binds
            // the same alias; the checker already rejected true duplicates.
            if let Some(existing) = sb.scope.iter().find(|s| s.name == a.name) {
                return existing.index;
            }
            let index = to_u16(sb.aliases.len());
            sb.aliases.push(AliasDef {
                name: Arc::from(a.name.as_str()),
                schema: layout,
            });
            sb.scope.push(ScopeAlias {
                name: a.name.clone(),
                index,
                schema: layout,
            });
            index
        });
        let mut env = Env::on(layout);
        env.self_names = vec![ty.name.clone()];
        env.aliases = sb.scope.clone();
        let mut conjuncts = Vec::new();
        for f in filter {
            super::trend::conjuncts(f, &mut conjuncts);
        }
        sb.sources.push(super::trend::StepSource {
            conjuncts,
            scope: env.aliases.clone(),
        });
        let filter = self.conjunction(&mut env, filter);
        let self_referential = alias_index.is_some_and(|a| env.used_aliases.contains(&a));
        sb.steps.push(SeqStep {
            input,
            filter,
            kleene,
            alias: alias_index,
            self_referential,
        });
        sb.layouts.push(layout);
        Some(())
    }

    /// Compiles the collected negations and partition keys into the spec.
    fn finish_sequence(&mut self, sb: Builder, source: SourceSpec) -> Option<SeqResult> {
        let mut negations = Vec::new();
        for (ty, span, filter, after_step) in &sb.negations {
            let (input, layout) = self.input_of(ty, *span)?;
            let mut env = Env::on(layout);
            env.self_names = vec![ty.clone()];
            env.aliases = sb.scope.clone();
            let filter = filter.as_ref().map(|f| self.chunk(&mut env, f));
            let partition = match &sb.partition {
                Some(key) => self.partition_key(layout, key),
                None => None,
            };
            negations.push(Negation {
                input,
                filter,
                after_step: *after_step,
                partition,
            });
        }
        let partition = sb.partition.as_ref().map(|key| {
            sb.layouts
                .iter()
                .map(|layout| self.partition_key(*layout, key))
                .collect::<Vec<Option<Chunk>>>()
        });
        let layout = *sb.layouts.last()?;
        let root = PatternTree::Seq(0..to_u16(sb.steps.len()));
        // After `.trend_aggregate` or `.forecast` the chain sees its output
        // layout. (Forecasts carry no bindings; the checker rejects aliases
        // after `.forecast`, and a timeout stream of the same sequence needs
        // them.)
        let chain_layout = match (&sb.trend, &sb.forecast) {
            (_, Some(f)) => f.schema,
            (Some(t), None) => t.schema,
            (None, None) => layout,
        };
        Some(SeqResult {
            source,
            spec: SequenceSpec {
                steps: sb.steps,
                aliases: sb.aliases,
                negations,
                within: sb.within,
                partition,
                schema: layout,
                root,
                selection: sb.selection,
                emit_timeouts: false,
                limits: sb.limits,
                trend: sb.trend,
                forecast: sb.forecast.map(Box::new),
            },
            aliases: sb.scope,
            layout: chain_layout,
        })
    }

    /// The partition key on one step's layout; `None` when a bare key field
    /// is not part of a closed layout (such events share the key `""`).
    fn partition_key(&mut self, layout: SchemaId, key: &Expr) -> Option<Chunk> {
        if let ExprKind::Ident(id) = &unparen(key).kind {
            let known =
                self.existing_slot(layout, &id.name).is_some() || self.open.contains(&layout);
            if !known {
                return None;
            }
        }
        let mut env = Env::on(layout);
        Some(self.chunk(&mut env, key))
    }

    /// `Source [as a] -> ... ` in a stream's operator chain.
    pub(crate) fn in_stream_sequence(
        &mut self,
        all: bool,
        name: &Ident,
        alias: Option<&Ident>,
        decl: &StreamDecl,
        skip: &mut [bool],
    ) -> Option<SeqResult> {
        let mut sb = Builder::default();
        let first_step = decl
            .ops
            .iter()
            .position(|o| matches!(o.kind, OpKind::FollowedBy(_)))
            .unwrap_or(decl.ops.len());
        let last_step = decl
            .ops
            .iter()
            .rposition(|o| matches!(o.kind, OpKind::FollowedBy(_)))
            .unwrap_or(0);
        // Filters written before the first `->` belong to step 0.
        let mut first_filters: Vec<&Expr> = Vec::new();
        for (i, op) in decl.ops.iter().enumerate().take(first_step) {
            if let OpKind::Call { name: n, args } = &op.kind {
                if matches!(
                    Operator::from_name(&n.name),
                    Some(Operator::Where | Operator::Filter)
                ) {
                    if let Some(a) = args.first() {
                        first_filters.push(&a.value);
                    }
                    skip[i] = true;
                }
            }
        }
        let kleene = if all { Kleene::Plus } else { Kleene::One };
        let input = self.input_of(&name.name, name.span)?.0;
        self.add_step(&mut sb, name, kleene, &first_filters, alias)?;
        for (i, op) in decl.ops.iter().enumerate() {
            match &op.kind {
                OpKind::FollowedBy(s) => {
                    let kleene = if s.all { Kleene::Plus } else { Kleene::One };
                    let filters: Vec<&Expr> = s.filter.iter().collect();
                    self.add_step(&mut sb, &s.ty, kleene, &filters, s.alias.as_ref())?;
                    skip[i] = true;
                }
                OpKind::Not(s) => {
                    sb.negations
                        .push((s.ty.name.clone(), s.ty.span, s.filter.clone(), None));
                    skip[i] = true;
                }
                OpKind::Call { name: n, args } => match Operator::from_name(&n.name) {
                    Some(Operator::Within) => {
                        sb.within = args.first().and_then(|a| self.duration_arg(&a.value));
                        skip[i] = true;
                    }
                    Some(Operator::Policy) => {
                        if let Some(a) = args.first() {
                            self.policy_arg(&mut sb, &a.value);
                        }
                        skip[i] = true;
                    }
                    Some(Operator::LimitRuns) => {
                        sb.limits = limit_runs_args(args);
                        skip[i] = true;
                    }
                    Some(Operator::TrendAggregate) => {
                        sb.trend_at = Some(i);
                        skip[i] = true;
                    }
                    Some(Operator::Forecast) if sb.forecast_at.is_none() => {
                        sb.forecast_at = Some(i);
                        skip[i] = true;
                    }
                    Some(Operator::PartitionBy) => {
                        if sb.partition.is_none() {
                            sb.partition = args.first().map(|a| a.value.clone());
                        }
                        // After the match it also keys a later window or
                        // aggregate; otherwise it only partitions the runs.
                        let keys_later = decl.ops.iter().skip(i + 1).any(|o| {
                            matches!(&o.kind, OpKind::Call { name, .. }
                            if matches!(
                                Operator::from_name(&name.name),
                                Some(Operator::Window | Operator::Aggregate)
                            ))
                        });
                        skip[i] = i < last_step || !keys_later;
                    }
                    Some(Operator::Concurrent) => {
                        self.concurrent(args);
                        skip[i] = true;
                    }
                    Some(
                        Operator::Watermark
                        | Operator::AllowedLateness
                        | Operator::Context
                        | Operator::Tap,
                    ) => {}
                    _ if skip[i] => {}
                    _ if i < last_step => {
                        self.unsupported(
                            format!("`.{}` before the last sequence step", n.name),
                            op.span,
                        );
                        skip[i] = true;
                    }
                    _ => {}
                },
                OpKind::Emit { .. } if i < last_step => {
                    self.unsupported("`.emit` before the last sequence step", op.span);
                    skip[i] = true;
                }
                OpKind::Emit { .. } => {}
            }
        }
        if let Some(at) = sb.trend_at {
            let has_within = sb.within.is_some();
            sb.trend = Some(self.trend_spec(
                &mut sb.steps,
                &sb.layouts,
                &sb.sources,
                has_within,
                decl,
                at,
            )?);
        }
        if let Some(at) = sb.forecast_at {
            let names: Vec<Arc<str>> = sb.aliases.iter().map(|a| a.name.clone()).collect();
            sb.forecast =
                Some(self.forecast_spec(&sb.steps, &sb.layouts, &names, sb.within, decl, at)?);
        }
        self.finish_sequence(sb, SourceSpec::Input(input))
    }

    /// `sequence(a: A, b: B where e, ...)`.
    pub(crate) fn source_sequence(
        &mut self,
        steps: &[SequenceStep],
        decl: &StreamDecl,
        skip: &mut [bool],
    ) -> Option<SeqResult> {
        let mut sb = Builder::default();
        let first = steps.first()?;
        let input = self.input_of(&first.ty.name, first.ty.span)?.0;
        for s in steps {
            if let Some(w) = &s.within {
                self.unsupported("a per-step `.within`", w.span);
            }
            let filters: Vec<&Expr> = s.filter.iter().collect();
            self.add_step(&mut sb, &s.ty, Kleene::One, &filters, Some(&s.alias))?;
        }
        self.sequence_ops(&mut sb, decl, skip);
        self.finish_sequence(sb, SourceSpec::Input(input))
    }

    /// `.within`, `.not` and `.partition_by` of a stream whose source is a
    /// sequence or pattern.
    fn sequence_ops(&mut self, sb: &mut Builder, decl: &StreamDecl, skip: &mut [bool]) {
        for (i, op) in decl.ops.iter().enumerate() {
            match &op.kind {
                OpKind::Not(s) => {
                    sb.negations
                        .push((s.ty.name.clone(), s.ty.span, s.filter.clone(), None));
                    skip[i] = true;
                }
                OpKind::Call { name, args } if Operator::Within.is(&name.name) => {
                    sb.within = args.first().and_then(|a| self.duration_arg(&a.value));
                    skip[i] = true;
                }
                OpKind::Call { name, args } if Operator::Policy.is(&name.name) => {
                    if let Some(a) = args.first() {
                        self.policy_arg(sb, &a.value);
                    }
                    skip[i] = true;
                }
                OpKind::Call { name, args } if Operator::LimitRuns.is(&name.name) => {
                    sb.limits = limit_runs_args(args);
                    skip[i] = true;
                }
                OpKind::Call { name, args }
                    if Operator::PartitionBy.is(&name.name) && sb.partition.is_none() =>
                {
                    sb.partition = args.first().map(|a| a.value.clone());
                }
                _ => {}
            }
        }
    }

    /// The sequence watched by a timeout stream `name.timeouts()`: a copy
    /// of the sequence of pattern or stream `name`, compiled in that
    /// declaration's own item (the caller marks it `emit_timeouts`).
    pub(crate) fn timeout_sequence(&mut self, name: &str, decl: &StreamDecl) -> Option<SeqResult> {
        let sid = match self.names.get(name).copied() {
            Some(Decl::Pattern(_)) => {
                // Operators of the timeout stream act on timeouts, not on the
                // pattern.
                let bare = StreamDecl {
                    ops: Vec::new(),
                    ..decl.clone()
                };
                return self.pattern_sequence(name, &bare, &mut []);
            }
            Some(Decl::Stream(_)) => *self.stream_ids.get(name)?,
            _ => return None,
        };
        let item = *self.stream_items.get(sid as usize)?;
        let Some(Item::Stream(up)) = self.input.items.get(item).map(|n| &n.item) else {
            return None;
        };
        let prev = self.enter_item(item);
        let mut skip = vec![false; up.ops.len()];
        let r = match &up.source.kind {
            ast::SourceKind::Named { all, name, alias } => {
                if matches!(self.names.get(&name.name), Some(Decl::Pattern(_))) {
                    self.pattern_sequence(&name.name, up, &mut skip)
                } else {
                    self.in_stream_sequence(*all, name, alias.as_ref(), up, &mut skip)
                }
            }
            ast::SourceKind::Sequence(steps) => self.source_sequence(steps, up, &mut skip),
            _ => None,
        };
        self.leave_item(prev);
        r
    }

    /// A stream whose source is the named pattern `name`.
    pub(crate) fn pattern_sequence(
        &mut self,
        name: &str,
        decl: &StreamDecl,
        skip: &mut [bool],
    ) -> Option<SeqResult> {
        let Some(Decl::Pattern(index)) = self.names.get(name).copied() else {
            return None;
        };
        let Some(Item::Pattern(p)) = self.input.items.get(index).map(|n| &n.item) else {
            return None;
        };
        let mut sb = Builder::default();
        let prev = self.enter_item(index);
        let result = self.named_pattern(&mut sb, p);
        let negs: Vec<_> = sb.negations.drain(..).collect();
        let key = p.partition_by.as_ref().map(|k| Expr {
            kind: ExprKind::Ident(k.clone()),
            span: k.span,
        });
        // Pattern-level negation filters are compiled in the pattern's item.
        let mut pattern_negations = Vec::new();
        for (ty, span, filter, after) in negs {
            let (input, layout) = self.input_of(&ty, span)?;
            let mut env = Env::on(layout);
            env.self_names = vec![ty.clone()];
            env.aliases = sb.scope.clone();
            let filter = filter.as_ref().map(|f| self.chunk(&mut env, f));
            let partition = match &key {
                Some(k) => self.partition_key(layout, k),
                None => None,
            };
            pattern_negations.push(Negation {
                input,
                filter,
                after_step: after,
                partition,
            });
        }
        let partition = key.as_ref().map(|key| {
            sb.layouts
                .clone()
                .into_iter()
                .map(|layout| self.partition_key(layout, key))
                .collect::<Vec<_>>()
        });
        self.leave_item(prev);
        let root = result?;
        // Stream-level `.within`/`.not`/`.partition_by` compile in the
        // stream's own item.
        self.sequence_ops(&mut sb, decl, skip);
        let first_input = sb.steps.first()?.input;
        let mut r = self.finish_sequence(sb, SourceSpec::Input(first_input))?;
        r.spec.negations.splice(0..0, pattern_negations);
        r.spec.root = root;
        // The pattern's own `partition by` wins over a stream-level one.
        if partition.is_some() {
            r.spec.partition = partition;
        }
        if r.spec.within.is_none() {
            r.spec.within = match &p.within {
                Some(w) => self.pattern_within(index, w),
                None => None,
            };
        }
        Some(r)
    }

    fn pattern_within(&mut self, index: usize, w: &Expr) -> Option<i64> {
        let prev = self.enter_item(index);
        let d = self.duration_arg(w);
        self.leave_item(prev);
        d
    }

    /// Flattens a named pattern into steps; returns its structure (SEQ
    /// step ranges under AND / OR, nested freely) and sets its policy.
    fn named_pattern(&mut self, sb: &mut Builder, p: &ast::PatternDecl) -> Option<PatternTree> {
        if let Some(policy) = &p.policy {
            let e = Expr {
                kind: ExprKind::Ident(policy.clone()),
                span: policy.span,
            };
            self.policy_arg(sb, &e);
        }
        self.pattern_tree(sb, &p.expr)
    }

    /// One node of a named pattern.
    fn pattern_tree(&mut self, sb: &mut Builder, e: &PatternExpr) -> Option<PatternTree> {
        match &e.kind {
            PatternKind::And(..) | PatternKind::Or(..) => {
                let and = matches!(e.kind, PatternKind::And(..));
                let mut branches = Vec::new();
                collect_branches(e, and, &mut branches);
                let mut kids = Vec::new();
                for br in branches {
                    kids.push(self.pattern_tree(sb, br)?);
                }
                Some(if and {
                    PatternTree::And(kids)
                } else {
                    PatternTree::Or(kids)
                })
            }
            PatternKind::Not(_) => {
                self.unsupported(
                    "a `NOT` of a whole pattern (absence without an anchor event)",
                    e.span,
                );
                None
            }
            PatternKind::Seq(items) if items.iter().any(is_combinator) => {
                // `AND`/`OR`/`SEQ` inside a `SEQ`: distribute into an `OR` of
                // plain sequences (an `AND` contributes both orders).
                let Some(alts) = alternatives(e, MAX_ALTERNATIVES) else {
                    self.unsupported(
                        "a pattern with more than 24 orderings once its nested `AND`/`OR` are expanded",
                        e.span,
                    );
                    return None;
                };
                let mut kids = Vec::new();
                for alt in alts {
                    let flat = PatternExpr {
                        kind: PatternKind::Seq(alt.into_iter().cloned().collect()),
                        span: e.span,
                    };
                    let start = to_u16(sb.steps.len());
                    self.pattern_seq(sb, &flat)?;
                    kids.push(PatternTree::Seq(start..to_u16(sb.steps.len())));
                }
                Some(if kids.len() == 1 {
                    kids.remove(0)
                } else {
                    PatternTree::Or(kids)
                })
            }
            _ => {
                let start = to_u16(sb.steps.len());
                self.pattern_seq(sb, e)?;
                Some(PatternTree::Seq(start..to_u16(sb.steps.len())))
            }
        }
    }

    /// `policy NAME` / `.policy(NAME)`: the selection strategy.
    fn policy_arg(&mut self, sb: &mut Builder, e: &Expr) {
        let name = match &unparen(e).kind {
            ExprKind::Ident(id) => Some(id.name.as_str()),
            ExprKind::Str(s) => Some(s.as_str()),
            _ => None,
        };
        match name.and_then(SelectionPolicy::from_name) {
            Some(p) => sb.selection = p,
            None => self.error(
                codes::UNSUPPORTED_CONSTRUCT,
                "unknown selection policy (expected `skip_till_any_match`, \
                 `skip_till_next_match`, `strict_contiguity` or `reference`)",
                e.span,
            ),
        }
    }

    /// A `SEQ(...)` or a single step.
    fn pattern_seq(&mut self, sb: &mut Builder, e: &PatternExpr) -> Option<()> {
        let items: Vec<&PatternExpr> = match &e.kind {
            PatternKind::Seq(items) => items.iter().collect(),
            _ => vec![e],
        };
        for it in items {
            match &it.kind {
                PatternKind::Step(s) => {
                    let kleene = match s.kleene {
                        None => Kleene::One,
                        Some(ast::Kleene::Plus) => Kleene::Plus,
                        Some(ast::Kleene::Star) => Kleene::Star,
                        Some(ast::Kleene::Optional) => Kleene::Optional,
                    };
                    let filters: Vec<&Expr> = s.filter.iter().collect();
                    self.add_step(sb, &s.ty, kleene, &filters, s.alias.as_ref())?;
                }
                PatternKind::Not(inner) => match &inner.kind {
                    PatternKind::Step(s) if !sb.steps.is_empty() => {
                        if let Some(a) = &s.alias {
                            self.unsupported("an alias on a negated step", a.span);
                        }
                        let after = Some(to_u16(sb.steps.len() - 1));
                        sb.negations
                            .push((s.ty.name.clone(), s.ty.span, s.filter.clone(), after));
                    }
                    _ => {
                        self.unsupported("this negation inside a sequence", it.span);
                        return None;
                    }
                },
                PatternKind::Error => {
                    self.error(
                        codes::UNSUPPORTED_CONSTRUCT,
                        "pattern failed to parse",
                        it.span,
                    );
                    return None;
                }
                _ => {
                    self.unsupported("a nested `AND`/`OR`/`SEQ` inside a pattern", it.span);
                    return None;
                }
            }
        }
        Some(())
    }
}

/// How many plain sequences a nested pattern may expand into.
const MAX_ALTERNATIVES: usize = 24;

/// Whether a `SEQ` item is itself a combinator (needs normalising).
fn is_combinator(e: &PatternExpr) -> bool {
    matches!(
        e.kind,
        PatternKind::And(..) | PatternKind::Or(..) | PatternKind::Seq(_)
    )
}

/// The plain sequences (lists of steps and negated steps) a pattern
/// expression stands for: a step is itself, `SEQ` concatenates, `OR` is
/// either side, `AND` is both sides in either order. `None` beyond `max`.
fn alternatives(e: &PatternExpr, max: usize) -> Option<Vec<Vec<&PatternExpr>>> {
    let out = match &e.kind {
        PatternKind::Seq(items) => {
            let mut acc: Vec<Vec<&PatternExpr>> = vec![Vec::new()];
            for it in items {
                let alts = alternatives(it, max)?;
                let mut next = Vec::new();
                for prefix in &acc {
                    for alt in &alts {
                        let mut v = prefix.clone();
                        v.extend(alt.iter().copied());
                        next.push(v);
                    }
                }
                if next.len() > max {
                    return None;
                }
                acc = next;
            }
            acc
        }
        PatternKind::Or(a, b) => {
            let mut v = alternatives(a, max)?;
            v.extend(alternatives(b, max)?);
            v
        }
        PatternKind::And(a, b) => {
            let (xs, ys) = (alternatives(a, max)?, alternatives(b, max)?);
            let mut v = Vec::new();
            for x in &xs {
                for y in &ys {
                    v.push(x.iter().chain(y.iter()).copied().collect());
                    v.push(y.iter().chain(x.iter()).copied().collect());
                }
            }
            v
        }
        _ => vec![vec![e]],
    };
    (out.len() <= max).then_some(out)
}

/// The operands of a chain of the same combinator (`A OR B OR C`).
fn collect_branches<'p>(e: &'p PatternExpr, and: bool, out: &mut Vec<&'p PatternExpr>) {
    match &e.kind {
        PatternKind::And(a, b) if and => {
            collect_branches(a, and, out);
            collect_branches(b, and, out);
        }
        PatternKind::Or(a, b) if !and => {
            collect_branches(a, and, out);
            collect_branches(b, and, out);
        }
        _ => out.push(e),
    }
}

/// `.limit_runs(n, total: m, on_full: p)` (validated by the checker, E0415).
fn limit_runs_args(args: &[ast::Arg]) -> RunLimits {
    let count = |e: &Expr| match &unparen(e).kind {
        ExprKind::Int(n) => u64::try_from(*n).ok().filter(|n| *n > 0),
        _ => None,
    };
    let mut limits = RunLimits::default();
    for a in args {
        match a.name.as_ref().map(|n| n.name.as_str()) {
            None => limits.per_key = count(&a.value),
            Some("total") => limits.total = count(&a.value),
            Some("on_full") => {
                limits.on_full = match &unparen(&a.value).kind {
                    ExprKind::Ident(id) => OnFull::from_name(&id.name),
                    ExprKind::Str(s) => OnFull::from_name(s),
                    _ => None,
                }
            }
            Some(_) => {}
        }
    }
    limits
}

//! `.trend_aggregate(name: f(arg), ...)` after an in-stream sequence →
//! [`TrendSpec`] (PATTERNS.md *Trend aggregation*).
//!
//! The trends are those of one Kleene step (the one the items' aliases name,
//! or the only one). Its filter is split: conjuncts that do not read the
//! step's own alias stay the step filter (which events the run accumulates);
//! conjuncts that read it become the adjacency of two consecutive trend
//! events (the alias denotes the previous event of the trend).

use varpulis_program::{Kleene, SchemaId, SeqStep, TrendFn, TrendItem, TrendSpec};
use varpulis_syntax::ast::{BinaryOp, Expr, ExprKind, OpKind, StreamDecl};

use super::expr::{unparen, Env, ScopeAlias};
use super::Lowerer;
use crate::capabilities::Op as Operator;
use crate::codes;

/// What [`Lowerer::add_step`] remembers of a step for trend lowering: the
/// filter conjuncts and the aliases visible to them.
pub(crate) struct StepSource {
    pub conjuncts: Vec<Expr>,
    pub scope: Vec<ScopeAlias>,
}

/// Splits `a and b and c` into its conjuncts.
pub(crate) fn conjuncts(e: &Expr, out: &mut Vec<Expr>) {
    match &unparen(e).kind {
        ExprKind::Binary {
            op: BinaryOp::And,
            lhs,
            rhs,
        } => {
            conjuncts(lhs, out);
            conjuncts(rhs, out);
        }
        _ => out.push(e.clone()),
    }
}

impl Lowerer<'_> {
    /// Lowers the `.trend_aggregate` at `decl.ops[at]`: returns the spec and
    /// replaces the trend step's filter by its non-self-referential part.
    pub(crate) fn trend_spec(
        &mut self,
        steps: &mut [SeqStep],
        layouts: &[SchemaId],
        sources: &[StepSource],
        has_within: bool,
        decl: &StreamDecl,
        at: usize,
    ) -> Option<TrendSpec> {
        let last_step = decl
            .ops
            .iter()
            .rposition(|o| matches!(o.kind, OpKind::FollowedBy(_)))
            .unwrap_or(0);
        let op = decl.ops.get(at)?;
        let OpKind::Call { args, .. } = &op.kind else {
            return None;
        };
        if at < last_step {
            self.unsupported("`.trend_aggregate` before the last sequence step", op.span);
            return None;
        }
        for o in decl.ops.iter().take(at).skip(last_step + 1) {
            if let OpKind::Call { name, .. } = &o.kind {
                if matches!(
                    Operator::from_name(&name.name),
                    Some(
                        Operator::Within
                            | Operator::Policy
                            | Operator::LimitRuns
                            | Operator::PartitionBy
                            | Operator::Watermark
                            | Operator::AllowedLateness
                            | Operator::Context
                            | Operator::Concurrent
                            | Operator::Tap
                    )
                ) {
                    continue;
                }
            }
            if matches!(o.kind, OpKind::Not(_)) {
                continue;
            }
            self.unsupported(
                "an operator between the sequence and `.trend_aggregate`",
                o.span,
            );
            return None;
        }
        if let Some(sel) = decl.ops.iter().find(
            |o| matches!(&o.kind, OpKind::Call { name, .. } if Operator::Select.is(&name.name)),
        ) {
            self.unsupported("`.select` in a stream with `.trend_aggregate`", sel.span);
            return None;
        }
        if !has_within {
            self.error(
                codes::UNSUPPORTED_CONSTRUCT,
                "`.trend_aggregate` needs a `.within(d)` on the sequence",
                op.span,
            );
            return None;
        }
        let kleene: Vec<usize> = steps
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s.kleene, Kleene::Plus | Kleene::Star))
            .map(|(i, _)| i)
            .collect();
        // The step named by the items' aliases (or the only Kleene step).
        let mut named: Option<usize> = None;
        for a in args {
            let mut used = Vec::new();
            if let ExprKind::Call { args: cargs, .. } = &unparen(&a.value).kind {
                for c in cargs {
                    alias_names(&c.value, &mut used);
                }
            }
            for n in used {
                let step = kleene.iter().copied().find(|&k| {
                    steps[k].alias.is_some_and(|ix| {
                        sources[k]
                            .scope
                            .iter()
                            .any(|s| s.index == ix && s.name == n)
                    })
                });
                match (step, named) {
                    (Some(s), Some(p)) if s != p => {
                        self.unsupported(
                            "trend aggregates over several Kleene steps",
                            a.value.span,
                        );
                        return None;
                    }
                    (Some(s), _) => named = Some(s),
                    _ => {}
                }
            }
        }
        let step = match (named, kleene.as_slice()) {
            (Some(s), _) => s,
            (None, [only]) => *only,
            (None, []) => {
                self.error(
                    codes::UNSUPPORTED_CONSTRUCT,
                    "`.trend_aggregate` needs an `all` (or `+`) step in the sequence",
                    op.span,
                );
                return None;
            }
            (None, _) => {
                self.unsupported(
                    "`count_trends()` with several Kleene steps (name one with `count_events(alias)`)",
                    op.span,
                );
                return None;
            }
        };
        let src = sources.get(step)?;
        let own = steps.get(step)?.alias;
        let layout = *layouts.get(step)?;
        // Split the step filter into accumulation and adjacency.
        let mut local: Vec<&Expr> = Vec::new();
        let mut adjacent: Vec<&Expr> = Vec::new();
        for c in &src.conjuncts {
            let mut env = Env::on(layout);
            env.aliases = src.scope.clone();
            let _ = self.chunk(&mut env, c);
            if own.is_some_and(|a| env.used_aliases.contains(&a)) {
                adjacent.push(c);
            } else {
                local.push(c);
            }
        }
        let mut env = Env::on(layout);
        env.aliases = src.scope.clone();
        let local_filter = self.conjunction(&mut env, &local);
        let mut env = Env::on(layout);
        env.aliases = src.scope.clone();
        let adjacent = self.conjunction(&mut env, &adjacent);
        if let Some(s) = steps.get_mut(step) {
            s.filter = local_filter;
            s.self_referential = false;
        }
        // The items: values evaluated on each trend event, with the step's
        // alias bound to it.
        let mut items = Vec::new();
        let mut names = Vec::new();
        for a in args {
            let Some(name) = &a.name else { continue };
            let (f, cargs) = match &unparen(&a.value).kind {
                ExprKind::Call { callee, args } => match &unparen(callee).kind {
                    ExprKind::Ident(f) => (f, args),
                    _ => continue,
                },
                _ => continue,
            };
            let Some(func) = TrendFn::from_name(&f.name) else {
                continue;
            };
            let value = match func {
                TrendFn::CountTrends | TrendFn::CountEvents => None,
                _ => cargs.first().map(|c| {
                    let mut env = Env::on(layout);
                    env.aliases = src.scope.clone();
                    self.chunk(&mut env, &c.value)
                }),
            };
            names.push(name.name.clone());
            items.push(TrendItem { func, value });
        }
        // Always last, so the engine can append it; an item named
        // `is_final` shadows it (name lookup takes the first slot).
        names.push("is_final".to_string());
        let sid = self.stream_ids.get(&decl.name.name).copied().unwrap_or(0);
        let schema = self.stream_schema(sid, &format!("{}.trend_aggregate", decl.name.name), names);
        Some(TrendSpec {
            step: super::to_u16(step),
            adjacent,
            items,
            schema,
        })
    }
}

/// Identifiers an argument names as aliases (`x` and the base of `x.f`).
fn alias_names(e: &Expr, out: &mut Vec<String>) {
    match &unparen(e).kind {
        ExprKind::Ident(id) => out.push(id.name.clone()),
        ExprKind::Member { base, .. } => alias_names(base, out),
        _ => {}
    }
}

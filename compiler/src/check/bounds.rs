//! Bounded sequence state: `.limit_runs(n, total: m, on_full: p)` (E0415)
//! and the warnings for patterns whose state can grow with the input:
//! accept-all Kleene steps (W0109) and `skip_till_any_match` forks over a
//! Kleene step without a run limit (W0110). PATTERNS.md *Bounded state*.

use varpulis_program::OnFull;
use varpulis_syntax::ast::{
    Arg, Expr, ExprKind, Ident, Kleene, OpKind, PatternDecl, PatternExpr, PatternKind, SourceKind,
    StreamDecl,
};
use varpulis_syntax::Span;

use super::stream::Pipeline;
use super::Checker;
use crate::capabilities::Op as Operator;
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::model::StageKind;
use crate::suggest;

/// One sequence step as the warnings see it.
struct StepFacts<'a> {
    ty: &'a Ident,
    kleene: bool,
    filtered: bool,
    span: Span,
}

impl Checker<'_> {
    /// `.limit_runs(n, total: m, on_full: evict_oldest | reject_new)`.
    pub(super) fn limit_runs(&mut self, name: &Ident, args: &[Arg], p: &mut Pipeline) -> StageKind {
        if !p.is_sequence {
            self.outside_sequence(name.span, Operator::LimitRuns.name());
        }
        p.limited = true;
        let mut per_key = None;
        let mut total = None;
        for a in args {
            match a.name.as_ref().map(|n| n.name.as_str()) {
                None => per_key = self.run_count(&a.value, "the per-key limit"),
                Some("total") => total = self.run_count(&a.value, "`total:`"),
                Some("on_full") => self.on_full(&a.value),
                Some(_) => {}
            }
        }
        if let (Some(k), Some(t)) = (per_key, total) {
            if t < k {
                let span = args
                    .iter()
                    .find(|a| a.name.as_ref().is_some_and(|n| n.name == "total"))
                    .map_or(name.span, |a| a.value.span);
                self.report(
                    Diagnostic::new(
                        codes::INVALID_RUN_LIMIT,
                        format!("`total: {t}` is below the per-key limit {k}"),
                        span,
                    )
                    .with_label("the overall limit would always trigger first")
                    .with_help(format!("raise `total:` to at least {k}, or remove it")),
                );
            }
        }
        StageKind::LimitRuns
    }

    /// A positive whole number of runs.
    fn run_count(&mut self, e: &Expr, what: &str) -> Option<i64> {
        if let ExprKind::Int(n) = &e.kind {
            if *n > 0 {
                return Some(*n);
            }
        }
        self.report(
            Diagnostic::new(
                codes::INVALID_RUN_LIMIT,
                format!("{what} of `.limit_runs` must be a positive whole number"),
                e.span,
            )
            .with_label("not a positive integer literal")
            .with_help("write a number of runs, e.g. `.limit_runs(1000, total: 100000)`"),
        );
        None
    }

    /// `on_full:` names a known policy.
    fn on_full(&mut self, e: &Expr) {
        let name = match &e.kind {
            ExprKind::Ident(id) => id.name.as_str(),
            _ => "",
        };
        if OnFull::from_name(name).is_some() {
            return;
        }
        let help = suggest::help(name, OnFull::NAMES.iter().copied());
        self.report(
            Diagnostic::new(
                codes::INVALID_RUN_LIMIT,
                format!("unknown `on_full:` policy `{name}`"),
                e.span,
            )
            .with_label(format!("expected one of {}", OnFull::NAMES.join(", ")))
            .with_help_opt(help),
        );
    }

    /// W0109 / W0110 for an in-stream sequence (`A -> all B -> C`).
    pub(super) fn stream_state_warnings(&mut self, s: &StreamDecl, p: &Pipeline) {
        let SourceKind::Named { all, name, .. } = &s.source.kind else {
            return;
        };
        let first_step = s
            .ops
            .iter()
            .position(|o| matches!(o.kind, OpKind::FollowedBy(_)))
            .unwrap_or(s.ops.len());
        let first_filtered = s.ops.iter().take(first_step).any(|o| {
            matches!(&o.kind, OpKind::Call { name, .. }
                if matches!(Operator::from_name(&name.name), Some(Operator::Where | Operator::Filter)))
        });
        let mut steps = vec![StepFacts {
            ty: name,
            kleene: *all,
            filtered: first_filtered,
            span: s.source.span,
        }];
        let mut any_match = false;
        for op in &s.ops {
            match &op.kind {
                OpKind::FollowedBy(st) => steps.push(StepFacts {
                    ty: &st.ty,
                    kleene: st.all,
                    filtered: st.filter.is_some(),
                    span: st.span,
                }),
                OpKind::Call { name, args } if Operator::Policy.is(&name.name) => {
                    any_match = args.first().is_some_and(|a| {
                        matches!(&a.value.kind, ExprKind::Ident(i) if i.name == "skip_till_any_match")
                    });
                }
                _ => {}
            }
        }
        self.accept_all_kleene(&steps, "a `where` filter", "-> all T where ...");
        if any_match && !p.limited {
            if let Some(k) = steps.iter().find(|st| st.kleene) {
                self.combinatorial(
                    k.span,
                    &s.name.name,
                    "add `.limit_runs(1000)` to the stream",
                );
            }
        }
    }

    /// W0109 / W0110 for a named pattern.
    pub(super) fn pattern_state_warnings(&mut self, decl: &PatternDecl) {
        let mut steps = Vec::new();
        pattern_steps(&decl.expr, &mut steps);
        self.accept_all_kleene(&steps, "a `where` filter", "T+ where ...");
        let any_match = decl
            .policy
            .as_ref()
            .is_some_and(|p| p.name == "skip_till_any_match");
        if any_match {
            if let Some(k) = steps.iter().find(|st| st.kleene) {
                self.combinatorial(
                    k.span,
                    &decl.name.name,
                    "add `.limit_runs(1000)` to each stream reading the pattern, or use \
                     `skip_till_next_match`",
                );
            }
        }
    }

    /// W0109: an unfiltered Kleene step over a type another step also reads.
    fn accept_all_kleene(&mut self, steps: &[StepFacts<'_>], filter: &str, example: &str) {
        for (i, st) in steps.iter().enumerate() {
            if !st.kleene || st.filtered {
                continue;
            }
            let Some(other) = steps
                .iter()
                .enumerate()
                .find(|(j, o)| *j != i && o.ty.name == st.ty.name)
            else {
                continue;
            };
            self.report(
                Diagnostic::new(
                    codes::ACCEPT_ALL_KLEENE,
                    format!("Kleene step over `{}` accepts every event", st.ty.name),
                    st.span,
                )
                .with_label("every open run accumulates each event of this type")
                .with_secondary(
                    other.1.span,
                    "the same events also start or advance runs here",
                )
                .with_help(format!(
                    "bound the accumulation with {filter} on the Kleene step (`{example}`), a \
                     short `within`, and `.limit_runs(n)` on the stream"
                )),
            );
        }
    }

    /// W0110: forks per event under `skip_till_any_match`.
    fn combinatorial(&mut self, span: Span, name: &str, fix: &str) {
        self.report(
            Diagnostic::new(
                codes::COMBINATORIAL_PATTERN,
                format!("`{name}` can explode combinatorially"),
                span,
            )
            .with_label("under `skip_till_any_match` every accepted event forks the runs of this Kleene step")
            .with_help(format!(
                "{fix}; a `where` filter on the Kleene step and a short `within` also bound it"
            )),
        );
    }
}

/// The steps of a named pattern, in order.
fn pattern_steps<'a>(e: &'a PatternExpr, out: &mut Vec<StepFacts<'a>>) {
    match &e.kind {
        PatternKind::Seq(items) => items.iter().for_each(|i| pattern_steps(i, out)),
        PatternKind::And(a, b) | PatternKind::Or(a, b) => {
            pattern_steps(a, out);
            pattern_steps(b, out);
        }
        // An absence binds nothing and accumulates nothing.
        PatternKind::Not(_) | PatternKind::Error => {}
        PatternKind::Step(st) => out.push(StepFacts {
            ty: &st.ty,
            kleene: matches!(st.kleene, Some(Kleene::Plus | Kleene::Star)),
            filtered: st.filter.is_some(),
            span: e.span,
        }),
    }
}

#[cfg(test)]
mod tests {
    use crate::Compiler;

    const R: &str = "event Reading:\n    pump: str\n    bar: float\n\n";

    /// The codes reported for `R` plus `body`.
    fn codes(body: &str) -> Vec<String> {
        let mut c = Compiler::new();
        c.set_file("t.vpl", format!("{R}{body}"));
        c.check("t.vpl")
            .iter()
            .map(|d| d.code.to_string())
            .collect()
    }

    const SEQ: &str =
        "stream S = Reading as a\n    -> Reading where bar > a.bar as b\n    .within(1m)\n";

    #[test]
    fn limit_runs_accepts_valid_bounds() {
        for l in [
            ".limit_runs(10)",
            ".limit_runs(10, total: 10)",
            ".limit_runs(10, on_full: reject_new)",
            ".limit_runs(1, total: 5, on_full: evict_oldest)",
        ] {
            assert!(codes(&format!("{SEQ}    {l}\n")).is_empty(), "{l}");
        }
    }

    #[test]
    fn limit_runs_rejects_bad_bounds() {
        for l in [
            ".limit_runs(0)",
            ".limit_runs(-3)",
            ".limit_runs(1.5)",
            ".limit_runs(10, total: 9)",
            ".limit_runs(10, on_full: newest)",
        ] {
            assert_eq!(codes(&format!("{SEQ}    {l}\n")), ["E0415"], "{l}");
        }
        assert_eq!(
            codes("stream S = Reading\n    .limit_runs(10)\n"),
            ["E0405"]
        );
    }

    #[test]
    fn accept_all_kleene_needs_an_unfiltered_step_over_a_shared_type() {
        let warn = "stream S = Reading as a\n    -> all Reading as rs\n    -> Reading as b\n    .within(1m)\n";
        assert_eq!(codes(warn), ["W0109"]);
        let filtered = "stream S = Reading as a\n    -> all Reading where bar > a.bar as rs\n    -> Reading as b\n    .within(1m)\n";
        assert!(codes(filtered).is_empty());
        let other_type = "event Stop:\n    pump: str\n\nstream S = Stop as a\n    -> all Reading as rs\n    -> Stop as b\n    .within(1m)\n";
        assert!(codes(other_type).is_empty());
        let pattern = "pattern P = Reading as a -> Reading* as rs -> Reading as b\n    within 1m\n";
        assert_eq!(codes(pattern), ["W0109"]);
    }

    #[test]
    fn any_match_with_kleene_warns_unless_runs_are_limited() {
        let base = "stream S = Reading as a\n    -> all Reading where bar > a.bar as rs\n    .within(1m)\n    .policy(skip_till_any_match)\n";
        assert_eq!(codes(base), ["W0110"]);
        assert!(codes(&format!("{base}    .limit_runs(100)\n")).is_empty());
        let no_kleene = "stream S = Reading as a\n    -> Reading where bar > a.bar as b\n    .within(1m)\n    .policy(skip_till_any_match)\n";
        assert!(codes(no_kleene).is_empty());
        let next = base.replace("skip_till_any_match", "skip_till_next_match");
        assert!(codes(&next).is_empty());
    }
}

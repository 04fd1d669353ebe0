//! Checking named patterns (`pattern P = SEQ(...) within d partition by k`):
//! step types, aliases bound left to right, step filters, the deadline and
//! the partition key. The match schema (aliases plus the last step's fields)
//! is what streams reading the pattern see.

use std::sync::Arc;

use varpulis_syntax::ast::{Ident, Kleene, PatternDecl, PatternExpr, PatternKind};

use super::stream::Pipeline;
use super::Checker;
use crate::capabilities::{self, Support};
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::model::PatternModel;
use crate::types::{AliasBinding, Schema};

impl Checker<'_> {
    pub(super) fn pattern(&mut self, decl: &PatternDecl) -> PatternModel {
        let mut p = Pipeline::default();
        let mut aliases: Vec<&Ident> = Vec::new();
        collect_aliases(&decl.expr, &mut aliases);
        for a in aliases {
            if let Some(d) = p.bind_alias(a) {
                self.report(d);
            }
        }
        let mut last = Arc::new(Schema::open(decl.name.name.clone()));
        self.pattern_expr(&decl.expr, &mut p, &mut last);
        let within = decl
            .within
            .as_ref()
            .and_then(|w| self.duration_arg(w, "`within`"));
        if decl.within.is_none() {
            self.report(
                Diagnostic::new(
                    codes::UNBOUNDED_SEQUENCE,
                    format!("pattern `{}` has no `within`", decl.name.name),
                    decl.name.span,
                )
                .with_label("partial matches of this pattern never expire")
                .with_help("add a deadline such as `within 5m` after the pattern"),
            );
        }
        let partition_by = decl.partition_by.as_ref().map(|k| {
            let first_step = first_step_schema(&decl.expr).and_then(|t| {
                let (_, s) = self.source_schema_quiet(t);
                s
            });
            if let Some(s) = first_step {
                if !s.open && s.field(&k.name).is_none() {
                    let help = crate::suggest::help(&k.name, s.field_names());
                    self.report(
                        Diagnostic::new(
                            codes::UNKNOWN_FIELD,
                            format!("unknown field `{}` on `{}`", k.name, s.name),
                            k.span,
                        )
                        .with_label(format!("`{}` has no field `{}`", s.name, k.name))
                        .with_help_opt(help),
                    );
                }
            }
            k.name.clone()
        });
        if let Some(pol) = &decl.policy {
            if capabilities::PATTERN_POLICY == Support::Supported {
                self.selection_policy(&pol.name, pol.span);
            } else {
                self.report(
                    Diagnostic::new(
                        codes::UNSUPPORTED_CONSTRUCT,
                        format!("pattern policy `{}` is not supported yet", pol.name),
                        pol.span,
                    )
                    .with_label("not supported yet")
                    .with_help("remove the `policy` clause; patterns use skip-till-next-match"),
                );
            }
        }
        self.pattern_state_warnings(decl);
        let mut schema = (*last).clone();
        schema.name = decl.name.name.clone();
        schema.aliases = p.bound.clone();
        PatternModel {
            schema: Arc::new(schema),
            within,
            partition_by,
        }
    }

    /// The schema of an event type or stream without reporting anything.
    fn source_schema_quiet(
        &mut self,
        t: &Ident,
    ) -> (Option<crate::resolve::DeclKind>, Option<Arc<Schema>>) {
        match self.env.decl(&t.name) {
            Some(k @ crate::resolve::DeclKind::Event) => (Some(k), self.env.event_schema(&t.name)),
            Some(k @ crate::resolve::DeclKind::Stream) if !self.env.is_cyclic(&t.name) => {
                (Some(k), self.env.stream_schema(&t.name))
            }
            k => (k, None),
        }
    }

    fn pattern_expr(&mut self, e: &PatternExpr, p: &mut Pipeline, last: &mut Arc<Schema>) {
        match &e.kind {
            PatternKind::Seq(items) => items.iter().for_each(|i| self.pattern_expr(i, p, last)),
            PatternKind::And(a, b) | PatternKind::Or(a, b) => {
                self.pattern_expr(a, p, last);
                self.pattern_expr(b, p, last);
            }
            PatternKind::Not(a) => {
                // Events of a negated step are never bound: keep `last`.
                let mut ignored = last.clone();
                self.pattern_expr(a, p, &mut ignored);
            }
            PatternKind::Step(step) => {
                let (_, schema) = self.source_schema(&step.ty);
                if let Some(f) = &step.filter {
                    let mut scope = p.scope(&schema);
                    if let (Some(_), Some(a)) = (step.kleene, &step.alias) {
                        scope.later_aliases.retain(|(n, _)| *n != a.name);
                        scope.aliases.push(AliasBinding {
                            name: a.name.clone(),
                            schema: (*schema).clone(),
                            kleene: false,
                        });
                    }
                    self.condition(f, &scope, "a step filter");
                }
                if let Some(a) = &step.alias {
                    let kleene = matches!(step.kleene, Some(Kleene::Plus | Kleene::Star));
                    p.bound.retain(|b| b.name != a.name);
                    p.bound.push(AliasBinding {
                        name: a.name.clone(),
                        schema: (*schema).clone(),
                        kleene,
                    });
                }
                *last = schema;
            }
            PatternKind::Error => {}
        }
    }
}

fn collect_aliases<'a>(e: &'a PatternExpr, out: &mut Vec<&'a Ident>) {
    match &e.kind {
        PatternKind::Seq(items) => items.iter().for_each(|i| collect_aliases(i, out)),
        PatternKind::And(a, b) | PatternKind::Or(a, b) => {
            collect_aliases(a, out);
            collect_aliases(b, out);
        }
        PatternKind::Not(a) => collect_aliases(a, out),
        PatternKind::Step(s) => out.extend(s.alias.iter()),
        PatternKind::Error => {}
    }
}

fn first_step_schema(e: &PatternExpr) -> Option<&Ident> {
    match &e.kind {
        PatternKind::Seq(items) => items.first().and_then(first_step_schema),
        PatternKind::And(a, _) | PatternKind::Or(a, _) => first_step_schema(a),
        PatternKind::Not(_) | PatternKind::Error => None,
        PatternKind::Step(s) => Some(&s.ty),
    }
}

//! `.enrich(Conn, key: e, fields: [a, b], cache_ttl: d, timeout: d,
//! fallback: v)` (docs/LANGUAGE.md#enrich): the connector, the mandatory
//! key, the field list, the two durations and the literal fallback, and the
//! schema it produces (the input's fields, the listed fields, then
//! `enrich_status` and `enrich_latency_ms`).
//!
//! Whether the connector's kind answers lookups is checked by the lowering,
//! which sees every declaration (the checker reads other items only through
//! their signatures, and a connector's signature has no kind).

use std::sync::Arc;

use varpulis_syntax::ast::{Arg, ExprKind, Ident, Op, UnaryOp};

use super::Checker;
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::model::StageKind;
use crate::types::{Field, Schema, Type};

/// Name of the field holding the lookup's outcome.
pub const STATUS_FIELD: &str = "enrich_status";
/// Name of the field holding the lookup's duration in milliseconds.
pub const LATENCY_FIELD: &str = "enrich_latency_ms";

impl Checker<'_> {
    /// Checks `.enrich(...)` (arity and argument names already checked
    /// against the capability table).
    pub(super) fn enrich(
        &mut self,
        op: &Op,
        name: &Ident,
        args: &[Arg],
        input: &Arc<Schema>,
        scope: &super::Scope,
    ) -> (StageKind, Arc<Schema>) {
        let positional: Vec<Arg> = args.iter().filter(|a| a.name.is_none()).cloned().collect();
        let connector = self.connector_args(op.span, scope, &positional, "enrich");
        let named = |n: &str| {
            args.iter()
                .find(|a| a.name.as_ref().is_some_and(|x| x.name == n))
        };
        match named("key") {
            Some(k) => {
                self.expr(&k.value, scope);
            }
            None => self.report(
                Diagnostic::new(codes::WRONG_ARITY, "`.enrich` needs `key:`", name.span)
                    .with_label("what should be looked up?")
                    .with_help(
                        "name the lookup key, e.g. `.enrich(Users, key: user_id, fields: [tier])`",
                    ),
            ),
        }
        let mut fields: Vec<String> = Vec::new();
        if let Some(f) = named("fields") {
            match &f.value.kind {
                ExprKind::Array(items) => {
                    for it in items {
                        match &it.kind {
                            ExprKind::Ident(id) => fields.push(id.name.clone()),
                            ExprKind::Str(s) => fields.push(s.clone()),
                            ExprKind::Error => {}
                            _ => self.report(
                                Diagnostic::new(
                                    codes::ARGUMENT_TYPE,
                                    "each of `fields:` must be a field name",
                                    it.span,
                                )
                                .with_label("not a field name")
                                .with_help("list the names the store answers with, e.g. `fields: [tier, region]`"),
                            ),
                        }
                    }
                }
                ExprKind::Error => {}
                _ => self.report(
                    Diagnostic::new(
                        codes::ARGUMENT_TYPE,
                        "`fields:` must be a list of field names",
                        f.value.span,
                    )
                    .with_label("not a list")
                    .with_help("write `fields: [tier, region]`"),
                ),
            }
        }
        for reserved in [STATUS_FIELD, LATENCY_FIELD] {
            if let (Some(f), true) = (named("fields"), fields.iter().any(|x| x == reserved)) {
                self.report(
                    Diagnostic::new(
                        codes::ARGUMENT_TYPE,
                        format!("`{reserved}` is set by `.enrich` itself"),
                        f.value.span,
                    )
                    .with_label("reserved name")
                    .with_help(format!("remove `{reserved}` from `fields:`")),
                );
            }
        }
        for (param, what) in [("cache_ttl", "`cache_ttl`"), ("timeout", "`timeout`")] {
            if let Some(a) = named(param) {
                if self.duration_arg(&a.value, what) == Some(0) && param == "timeout" {
                    self.report(
                        Diagnostic::new(
                            codes::EXPECTED_DURATION,
                            "`timeout` must be longer than zero",
                            a.value.span,
                        )
                        .with_label("every lookup would time out")
                        .with_help("write a positive duration such as `500ms`"),
                    );
                }
            }
        }
        if let Some(a) = named("fallback") {
            if !is_literal(&a.value.kind) {
                self.report(
                    Diagnostic::new(
                        codes::ARGUMENT_TYPE,
                        "`fallback:` must be a literal",
                        a.value.span,
                    )
                    .with_label("not a literal")
                    .with_help("write a string, a number, a boolean or `null`, e.g. `fallback: \"unknown\"`"),
                );
            } else {
                self.expr(&a.value, &super::Scope::default());
            }
        }
        let mut out = (**input).clone();
        out.aliases.clear();
        for f in &fields {
            if out.field(f).is_none() {
                out.fields.push(Field {
                    name: f.clone(),
                    ty: Type::Any,
                    optional: true,
                });
            }
        }
        for (n, ty) in [(STATUS_FIELD, Type::Str), (LATENCY_FIELD, Type::Int)] {
            out.fields.retain(|f| f.name != n);
            out.fields.push(Field {
                name: n.to_string(),
                ty,
                optional: false,
            });
        }
        (
            StageKind::Enrich {
                connector: connector.unwrap_or_default(),
                fields,
            },
            Arc::new(out),
        )
    }
}

/// Whether an expression is a literal usable as a fallback value.
fn is_literal(e: &ExprKind) -> bool {
    match e {
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Str(_)
        | ExprKind::Bool(_)
        | ExprKind::Null
        | ExprKind::Error => true,
        ExprKind::Unary {
            op: UnaryOp::Neg,
            expr,
        } => matches!(expr.kind, ExprKind::Int(_) | ExprKind::Float(_)),
        ExprKind::Paren(inner) => is_literal(&inner.kind),
        _ => false,
    }
}

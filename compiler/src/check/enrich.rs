//! `.enrich(Conn, key: e, fields: [a, b], cache_ttl: d, timeout: d,
//! fallback: v)` (docs/LANGUAGE.md#enrich): the connector, the mandatory
//! key, the field list, the two durations and the literal fallback, and the
//! schema it produces (the input's fields, the listed fields, then
//! `enrich_status` and `enrich_latency_ms`).
//!
//! Whether the connector's kind answers lookups is read from the
//! connector's signature; the lowering checks it again for connectors
//! declared in a `config:` block, which have no signature of their own.

use std::sync::Arc;

use varpulis_syntax::ast::{Arg, ExprKind, Ident, Op, UnaryOp};

use super::Checker;
use crate::capabilities;
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
        if let (Some(c), Some(first)) = (&connector, positional.first()) {
            if let Some(kind) = self.env.connector_kind(c) {
                if !capabilities::enrich_kinds().any(|k| k == kind) {
                    let kinds: Vec<&str> = capabilities::enrich_kinds().collect();
                    let help = match crate::suggest::did_you_mean(&kind, kinds.iter().copied()) {
                        Some(k) => format!("did you mean `connector {c} = {k} (...)`?"),
                        None => format!(
                            "`.enrich` looks up in connectors of kind {}",
                            kinds.join(", ")
                        ),
                    };
                    self.report(
                        Diagnostic::new(
                            codes::NOT_A_LOOKUP_CONNECTOR,
                            format!("`{c}` is a `{kind}` connector, which cannot answer lookups"),
                            first.value.span,
                        )
                        .with_label("not a lookup connector")
                        .with_help(help),
                    );
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use crate::Compiler;

    const P: &str = "event Payment:\n    account: str\n    amount: float\n\n\
                     connector Users = http (url: \"http://127.0.0.1:9/users/{key}\")\n\
                     connector Cache = redis (url: \"redis://127.0.0.1:6379\", key_template: \"u:{key}\")\n\
                     connector Db = postgres (url: \"postgres://h/db\", table: \"users\", key_column: \"id\")\n\
                     connector Out = file (path: \"o.jsonl\")\n";

    /// Diagnostics of `P` plus `rest` (checked, then lowered) as `CODE message`.
    fn check(rest: &str) -> Vec<String> {
        let text = format!("{P}{rest}");
        let mut c = Compiler::new();
        c.set_file("t.vpl", text.as_str());
        c.check_and_lower("t.vpl")
            .iter()
            .map(|d| {
                let help = d.help.as_deref().unwrap_or("");
                format!("{} {} | {help}", d.code, d.message)
            })
            .collect()
    }

    fn stream(op: &str) -> String {
        format!("stream S = Payment\n    {op}\n    .emit()\n")
    }

    #[test]
    fn enrich_adds_the_fields_the_status_and_the_latency() {
        let text = format!(
            "{P}{}",
            stream(".enrich(Users, key: account, fields: [tier, region], cache_ttl: 1m, timeout: 500ms, fallback: \"unknown\")")
        );
        let mut c = Compiler::new();
        c.set_file("t.vpl", text.as_str());
        assert!(c.check_and_lower("t.vpl").is_empty());
        let fields: Vec<String> = c
            .stream_schema("t.vpl", "S")
            .expect("schema")
            .fields
            .iter()
            .map(|f| format!("{}: {}", f.name, f.ty))
            .collect();
        assert_eq!(
            fields,
            [
                "account: str",
                "amount: float",
                "tier: any",
                "region: any",
                "enrich_status: str",
                "enrich_latency_ms: int"
            ]
        );
        for conn in ["Cache", "Db"] {
            let op = format!(".enrich({conn}, key: account, fields: [tier])");
            assert_eq!(check(&stream(&op)), Vec::<String>::new(), "{conn}");
        }
    }

    #[test]
    fn enrich_without_a_key_is_an_error() {
        let got = check(&stream(".enrich(Users, fields: [tier])"));
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with("E0303 `.enrich` needs `key:`"),
            "{got:?}"
        );
    }

    #[test]
    fn enrich_arguments_of_the_wrong_kind_are_errors() {
        let got = check(&stream(
            ".enrich(Users, key: account, fields: [tier, 1], timeout: 5, fallback: account)",
        ));
        let codes: Vec<&str> = got.iter().map(|d| &d[..5]).collect();
        assert_eq!(codes, ["E0304", "E0408", "E0304"], "{got:?}");
        let got = check(&stream(
            ".enrich(Users, key: account, fields: [enrich_status])",
        ));
        assert!(got[0].contains("set by `.enrich` itself"), "{got:?}");
        let got = check(&stream(".enrich(Users, key: account, timeout: 0s)"));
        assert!(got[0].contains("longer than zero"), "{got:?}");
    }

    #[test]
    fn enrich_needs_a_declared_lookup_connector() {
        let got = check(&stream(".enrich(Usres, key: account)"));
        assert!(got[0].starts_with("E0206"), "{got:?}");
        assert!(got[0].contains("Users"), "did you mean: {got:?}");
        let got = check(&stream(".enrich(Out, key: account)"));
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with("E0506 `Out` is a `file` connector, which cannot answer lookups"),
            "{got:?}"
        );
        let got = check(&format!(
            "connector Typo = redsi (url: \"redis://h\")\n{}",
            stream(".enrich(Typo, key: account)")
        ));
        assert!(
            got[0].starts_with("E0506")
                && got[0].contains("did you mean `connector Typo = redis (...)`?"),
            "{got:?}"
        );
        let got = check(&stream(".enrich(Users, key: account, feilds: [tier])"));
        assert!(got.iter().any(|d| d.contains("fields")), "{got:?}");
    }

    #[test]
    fn lookup_connector_parameters_are_checked() {
        let got = check("connector R = redis (url: \"redis://h\", key_templat: \"u:{key}\")\n");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with("W0111 `redis` connectors have no parameter `key_templat`")
                && got[0].contains("did you mean `key_template`?"),
            "{got:?}"
        );
        let got = check("config:\n  sinks:\n    r: { type: redis, url: \"redis://h\" }\n");
        assert!(got.iter().any(|d| d.starts_with("E0505")), "{got:?}");
    }

    /// `text` with the cursor marker `$|` removed, and the marker's offset.
    fn at_marker(rest: &str) -> (Compiler, u32) {
        let text = format!("{P}{rest}");
        let off = text.find("$|").expect("marker") as u32;
        let mut c = Compiler::new();
        c.set_file("t.vpl", text.replacen("$|", "", 1));
        (c, off)
    }

    #[test]
    fn the_editor_completes_hovers_and_signs_enrich() {
        let (c, off) = at_marker("stream S = Payment\n    .enrich($|)\n");
        let labels: Vec<String> = crate::ide::completions(&c, "t.vpl", off)
            .items
            .into_iter()
            .map(|i| i.label)
            .collect();
        assert_eq!(labels, ["Cache", "Db", "Out", "Users"], "the connectors");
        let (c, off) = at_marker("stream S = Payment\n    .$|\n");
        let enrich = crate::ide::completions(&c, "t.vpl", off)
            .items
            .into_iter()
            .find(|i| i.label == "enrich")
            .expect("offered after a dot");
        assert!(
            enrich
                .detail
                .as_deref()
                .is_some_and(|d| d.contains("external store")),
            "{enrich:?}"
        );
        let (c, off) = at_marker("stream S = Payment\n    .enr$|ich(Users, key: account)\n");
        let h = crate::ide::hover(&c, "t.vpl", off).expect("hover").markdown;
        assert!(
            h.contains(
                ".enrich(connector, key: _, fields: _, cache_ttl: _, timeout: _, fallback: _)"
            ),
            "{h}"
        );
        let (c, off) = at_marker("stream S = Payment\n    .enrich(Users, key: $|)\n");
        let sig = crate::ide::signature_help(&c, "t.vpl", off).expect("signature");
        assert!(
            sig.label.starts_with(".enrich(connector, key: _"),
            "{sig:?}"
        );
        assert_eq!(sig.active, 1);
    }
}

//! `.enrich(Conn, key: e, fields: [...], cache_ttl: d, timeout: d,
//! fallback: v)` → [`OpSpec::Enrich`]: the key compiled on the input
//! layout, and an output layout made of the input's fields (same slots),
//! the listed fields that the input lacks, `enrich_status` and
//! `enrich_latency_ms`.

use std::sync::Arc;

use varpulis_program::{EnrichSpec, OpSpec, Value};
use varpulis_syntax::ast::{Arg, ExprKind, Item, UnaryOp};
use varpulis_syntax::Span;

use super::expr::unparen;
use super::stream::Chain;
use super::{to_u16, Decl, Lowerer};
use crate::capabilities;
use crate::codes;

/// Default `timeout:` of a lookup: five seconds (docs/LANGUAGE.md#enrich).
const DEFAULT_TIMEOUT_NS: i64 = 5_000_000_000;

impl Lowerer<'_> {
    /// Lowers `.enrich(...)` onto the chain (arguments already checked).
    pub(crate) fn enrich(&mut self, ch: &mut Chain, args: &[Arg], span: Span) {
        let positional: Vec<Arg> = args.iter().filter(|a| a.name.is_none()).cloned().collect();
        let Some(connector) = self.connector_arg(&positional, span) else {
            return;
        };
        let conn_name = match positional.first().map(|a| &unparen(&a.value).kind) {
            Some(ExprKind::Ident(id)) => Some((id.name.clone(), id.span)),
            _ => None,
        };
        if let Some((name, at)) = conn_name {
            let kind = self.connector_kind(&name).unwrap_or_default();
            if !capabilities::enrich_kinds().any(|k| k == kind) {
                let kinds: Vec<&str> = capabilities::enrich_kinds().collect();
                let d = crate::diagnostic::Diagnostic::new(
                    codes::NOT_A_LOOKUP_CONNECTOR,
                    format!("`{name}` is a `{kind}` connector, which cannot answer lookups"),
                    self.absolute(at),
                )
                .with_label("not a lookup connector")
                .with_help(format!(
                    "`.enrich` looks up in connectors of kind {}",
                    kinds.join(", ")
                ));
                self.diags.push(d);
                return;
            }
        }
        let named = |n: &str| {
            args.iter()
                .find(|a| a.name.as_ref().is_some_and(|x| x.name == n))
                .map(|a| &a.value)
        };
        let Some(key) = named("key") else {
            self.error(codes::WRONG_ARITY, "`.enrich` needs `key:`", span);
            return;
        };
        let key = self.chunk(&mut ch.env, key);
        let mut fields: Vec<String> = Vec::new();
        if let Some(f) = named("fields") {
            if let ExprKind::Array(items) = &unparen(f).kind {
                for it in items {
                    match &unparen(it).kind {
                        ExprKind::Ident(id) => fields.push(id.name.clone()),
                        ExprKind::Str(s) => fields.push(s.clone()),
                        _ => {}
                    }
                }
            }
        }
        let timeout = match named("timeout") {
            Some(e) => match self.duration_arg(e) {
                Some(d) => d,
                None => return,
            },
            None => DEFAULT_TIMEOUT_NS,
        };
        let cache_ttl = match named("cache_ttl") {
            Some(e) => match self.duration_arg(e) {
                Some(d) => Some(d),
                None => return,
            },
            None => None,
        };
        let fallback = named("fallback").and_then(|e| literal(&unparen(e).kind));
        let input = ch.env.layout.unwrap_or(0);
        let mut names = self.field_names(input);
        let input_width = to_u16(names.len());
        let mut slots = Vec::with_capacity(fields.len());
        for f in &fields {
            let at = match names.iter().position(|n| n == f) {
                Some(i) => i,
                None => {
                    names.push(f.clone());
                    names.len() - 1
                }
            };
            slots.push(to_u16(at));
        }
        names.push(crate::check::STATUS_FIELD.to_string());
        let status_slot = to_u16(names.len() - 1);
        names.push(crate::check::LATENCY_FIELD.to_string());
        let latency_slot = to_u16(names.len() - 1);
        let schema = self.stream_schema(ch.sid, &format!("{}.enrich", ch.name), names);
        // Undeclared fields of the input ride along in the overflow.
        self.keep_extra(input);
        ch.ops.push(OpSpec::Enrich(EnrichSpec {
            connector,
            key,
            fields: fields.iter().map(|f| Arc::from(f.as_str())).collect(),
            input_width,
            slots,
            status_slot,
            latency_slot,
            schema,
            cache_ttl,
            timeout,
            fallback,
        }));
        ch.env.layout = Some(schema);
        ch.env.self_names.clear();
    }

    /// The kind of the connector declared as `name` (`connector X = kind`
    /// or a `config:` entry's `type:`).
    fn connector_kind(&self, name: &str) -> Option<String> {
        let Some(Decl::Connector(i)) = self.names.get(name).copied() else {
            return None;
        };
        match &self.input.items.get(i)?.item {
            Item::Connector(k) => Some(k.kind.name.clone()),
            Item::Config(cfg) => cfg
                .sections
                .iter()
                .flat_map(|s| &s.connectors)
                .find(|k| k.name.name == name)
                .and_then(|k| k.kind())
                .map(|k| k.name),
            _ => None,
        }
    }
}

/// The value of a literal fallback (the checker refused anything else).
fn literal(e: &ExprKind) -> Option<Value> {
    Some(match e {
        ExprKind::Int(n) => Value::Int(*n),
        ExprKind::Float(f) => Value::Float(f.0),
        ExprKind::Str(s) => Value::str(s),
        ExprKind::Bool(b) => Value::Bool(*b),
        ExprKind::Null => Value::Null,
        ExprKind::Unary {
            op: UnaryOp::Neg,
            expr,
        } => match &unparen(expr).kind {
            ExprKind::Int(n) => Value::Int(n.checked_neg()?),
            ExprKind::Float(f) => Value::Float(-f.0),
            _ => return None,
        },
        _ => return None,
    })
}

//! Checking the window group operators `.order_by`, `.collect`, `.any` and
//! `.all` (docs/LANGUAGE.md#window-group-operators): each needs the group a
//! window releases, so it must follow `.window(...)` or another group
//! operator directly (E0418).

use std::sync::Arc;

use varpulis_syntax::ast::{Arg, Expr, ExprKind, Ident, Op, OpKind, StreamDecl};

use super::stream::Pipeline;
use super::Checker;
use crate::capabilities::Op as Operator;
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::model::StageKind;
use crate::types::{Field, Schema, Type};

/// The operators that act on a window's released group.
pub(crate) const GROUP_OPS: &[Operator] = &[
    Operator::OrderBy,
    Operator::Collect,
    Operator::Any,
    Operator::All,
];

/// The field `.collect()` fills when no `as:` is given.
pub(crate) const DEFAULT_COLLECT_FIELD: &str = "events";

/// A sort key of `.order_by`: `desc(e)` / `asc(e)` or a bare expression;
/// returns the key and whether it sorts largest first.
pub(crate) fn sort_key(e: &Expr) -> (&Expr, bool) {
    if let ExprKind::Call { callee, args } = &e.kind {
        if let (ExprKind::Ident(f), [one]) = (&callee.kind, args.as_slice()) {
            if one.name.is_none() && (f.name == "desc" || f.name == "asc") {
                return (&one.value, f.name == "desc");
            }
        }
    }
    (e, false)
}

/// The field name `.collect(as: name)` asks for (`None` when malformed).
pub(crate) fn collect_field(args: &[Arg]) -> Option<String> {
    let Some(a) = args
        .iter()
        .find(|a| a.name.as_ref().is_some_and(|n| n.name == "as"))
    else {
        return Some(DEFAULT_COLLECT_FIELD.to_string());
    };
    match &a.value.kind {
        ExprKind::Ident(i) => Some(i.name.clone()),
        ExprKind::Str(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

impl Checker<'_> {
    /// One group operator; `op` is one of `s.ops`.
    pub(super) fn group_op(
        &mut self,
        s: &StreamDecl,
        op: &Op,
        name: &Ident,
        args: &[Arg],
        input: &Arc<Schema>,
        p: &mut Pipeline,
    ) -> (StageKind, Arc<Schema>) {
        self.group_placement(s, op, name);
        let scope = p.scope(input);
        let which = Operator::from_name(&name.name);
        let kind = match which {
            Some(Operator::OrderBy) => {
                let mut keys = Vec::new();
                for a in args {
                    let (key, _) = sort_key(&a.value);
                    let t = self.expr(key, &scope);
                    if matches!(
                        t,
                        Type::Array(_)
                            | Type::Map(..)
                            | Type::Tuple(_)
                            | Type::Event(_)
                            | Type::EventList(_)
                    ) {
                        self.report(
                            Diagnostic::new(
                                codes::ARGUMENT_TYPE,
                                format!("`.order_by` cannot sort by a value of type `{t}`"),
                                key.span,
                            )
                            .with_label(format!("this is `{t}`"))
                            .with_help("sort by a number, string, boolean, timestamp or duration"),
                        );
                    }
                    keys.push(a.value.span);
                }
                StageKind::OrderBy(keys)
            }
            Some(Operator::Any | Operator::All) => {
                let e = args
                    .first()
                    .map(|a| &a.value)
                    .expect("arity checked: one argument");
                let what = if which == Some(Operator::Any) {
                    "an `.any` condition"
                } else {
                    "an `.all` condition"
                };
                self.condition(e, &scope, what);
                if which == Some(Operator::Any) {
                    StageKind::Any(e.span)
                } else {
                    StageKind::All(e.span)
                }
            }
            _ => return self.collect(args, input, p),
        };
        (kind, input.clone())
    }

    fn collect(
        &mut self,
        args: &[Arg],
        input: &Arc<Schema>,
        p: &Pipeline,
    ) -> (StageKind, Arc<Schema>) {
        let Some(field) = collect_field(args) else {
            let span = args
                .iter()
                .find(|a| a.name.as_ref().is_some_and(|n| n.name == "as"))
                .map_or(varpulis_syntax::Span::new(0, 0), |a| a.value.span);
            self.report(
                Diagnostic::new(
                    codes::ARGUMENT_TYPE,
                    "`as:` of `.collect` must be a field name",
                    span,
                )
                .with_label("not a field name")
                .with_help("write `.collect(as: readings)`"),
            );
            return (StageKind::Invalid, input.clone());
        };
        let event = Type::Map(Box::new(Type::Str), Box::new(Type::Any));
        let mut fields = vec![Field::new(field.clone(), Type::Array(Box::new(event)))];
        if let Some(k) = p.partition.as_deref().filter(|k| !k.is_empty()) {
            if *k != field {
                let ty = input.field(k).map_or(Type::Any, |(_, f)| f.ty.clone());
                fields.push(Field::new(k.to_string(), ty));
            }
        }
        (
            StageKind::Collect(field),
            Arc::new(Schema::new(p.stream.clone(), fields)),
        )
    }

    /// E0418 unless the operator before `op` is `.window(...)` or another
    /// group operator.
    fn group_placement(&mut self, s: &StreamDecl, op: &Op, name: &Ident) {
        let at = s.ops.iter().position(|o| std::ptr::eq(o, op));
        let before = at.and_then(|i| i.checked_sub(1)).and_then(|i| s.ops.get(i));
        let prev = match before.map(|o| &o.kind) {
            Some(OpKind::Call { name, .. }) => Some(name.name.as_str()),
            _ => None,
        };
        let prev_op = prev.and_then(Operator::from_name);
        if prev_op.is_some_and(|o| o == Operator::Window || GROUP_OPS.contains(&o)) {
            return;
        }
        let op_name = &name.name;
        let d = Diagnostic::new(
            codes::GROUP_WITHOUT_WINDOW,
            format!("`.{op_name}` needs a window right before it"),
            name.span,
        );
        let d = match (prev, before) {
            (Some(p), Some(b)) => d
                .with_label(format!("written after `.{p}`"))
                .with_secondary(b.span, "this operator passes events one at a time"),
            (None, Some(b)) => d
                .with_label("not after a window")
                .with_secondary(b.span, "this operator passes events one at a time"),
            _ => d.with_label("a stream is unbounded: there is no group to work on"),
        };
        let help = if prev_op == Some(Operator::Aggregate) {
            format!(
                "an aggregate already gives one event per window: filter it with `.having(...)`, \
                 or move `.{op_name}(...)` between `.window(...)` and `.aggregate(...)`"
            )
        } else {
            format!(
                "write `.{op_name}(...)` right after `.window(...)`, e.g. `.window(1m).{op_name}(...)`"
            )
        };
        self.report(d.with_help(help));
    }
}

//! `.pattern(name: events => test)` (docs/LANGUAGE.md#pattern-window-test): a boolean
//! test over each group the window right before it releases. `events` is
//! an array of the group's events, each a map of its fields plus
//! `event_type` and `timestamp`, typed here as events of the input schema so
//! that field names are checked. The output is the group's last event plus
//! `pattern` (the name) and `window_events` (the group's size).

use std::sync::Arc;

use varpulis_syntax::ast::{Arg, ExprKind, Ident, Op, OpKind, StreamDecl};

use super::stream::Pipeline;
use super::Checker;
use crate::capabilities::Op as Operator;
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::model::StageKind;
use crate::types::{Field, Schema, Type};

/// Fields `.pattern` adds to the group's last event.
pub(crate) const PATTERN_FIELD: &str = "pattern";
/// See [`PATTERN_FIELD`].
pub(crate) const COUNT_FIELD: &str = "window_events";

/// The element type of `events`: the input's fields, then `event_type` and
/// `timestamp` unless the input has fields of those names.
pub(crate) fn event_map_schema(input: &Schema) -> Schema {
    let mut s = input.clone();
    s.aliases.clear();
    for (name, ty) in [("event_type", Type::Str), ("timestamp", Type::Timestamp)] {
        if s.field(name).is_none() {
            s.fields.push(Field::new(name, ty));
        }
    }
    s
}

impl Checker<'_> {
    pub(super) fn window_pattern(
        &mut self,
        s: &StreamDecl,
        op: &Op,
        name: &Ident,
        args: &[Arg],
        input: &Arc<Schema>,
        p: &mut Pipeline,
    ) -> (StageKind, Arc<Schema>) {
        let invalid = (StageKind::Invalid, input.clone());
        // Right after the window: it hands the pattern its groups whole.
        let at = s.ops.iter().position(|o| std::ptr::eq(o, op));
        let after_window = at
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| s.ops.get(i))
            .is_some_and(|prev| {
                matches!(&prev.kind, OpKind::Call { name, .. } if Operator::Window.is(&name.name))
            });
        if after_window && p.is_join {
            self.report(
                Diagnostic::new(
                    codes::PATTERN_WITHOUT_WINDOW,
                    "`.pattern` after a join's `.window`",
                    name.span,
                )
                .with_label("a join's window releases no groups")
                .with_help("a join's `.window(d)` is how long events wait for a partner; test the joined events in a stream that reads this one: `stream P = J.window(1m).pattern(...)`"),
            );
        } else if !after_window {
            let d = Diagnostic::new(
                codes::PATTERN_WITHOUT_WINDOW,
                "`.pattern` must come right after `.window`",
                name.span,
            );
            let d = match p.window {
                Some(w) => d
                    .with_label("not right after the window")
                    .with_secondary(w, "the window")
                    .with_help("move `.pattern(...)` to just after `.window(...)`"),
                None => d
                    .with_label("there is no window to test")
                    .with_help("add a window first, e.g. `.window(5m).pattern(name: events => events.len() > 3)`"),
            };
            self.report(d);
        }
        let shape_help = "write `.pattern(name: events => condition)`, e.g. `.pattern(burst: events => events.len() >= 3)`";
        let [arg] = args else {
            self.report(
                Diagnostic::new(
                    codes::WRONG_ARITY,
                    "`.pattern` takes one named lambda",
                    name.span,
                )
                .with_label(format!("{} arguments", args.len()))
                .with_help(shape_help),
            );
            return invalid;
        };
        let Some(pname) = &arg.name else {
            self.report(
                Diagnostic::new(
                    codes::UNNAMED_OUTPUT,
                    "the pattern needs a name",
                    arg.value.span,
                )
                .with_label("no name")
                .with_help(shape_help),
            );
            return invalid;
        };
        if matches!(arg.value.kind, ExprKind::Error) {
            return invalid;
        }
        let Some((param, test)) = super::lambda::lambda_of(&arg.value) else {
            self.report(
                Diagnostic::new(
                    codes::ARGUMENT_TYPE,
                    "`.pattern` needs a lambda with one parameter and an expression body",
                    arg.value.span,
                )
                .with_label("expected `events => condition`")
                .with_help(shape_help),
            );
            return invalid;
        };
        let mut scope = p.scope(input);
        let elem = Type::Event(Box::new(event_map_schema(input)));
        scope
            .locals
            .push((param.name.clone(), Type::Array(Box::new(elem))));
        self.condition(test, &scope, "a `.pattern` test");
        let mut out = (**input).clone();
        for f in [PATTERN_FIELD, COUNT_FIELD] {
            if out.field(f).is_some() {
                self.report(
                    Diagnostic::new(
                        codes::DUPLICATE_FIELD,
                        format!("the input already has a field `{f}`, which `.pattern` sets"),
                        name.span,
                    )
                    .with_label(format!("adds `{PATTERN_FIELD}` and `{COUNT_FIELD}`"))
                    .with_help(format!(
                        "rename it first with `.select(...)`, e.g. `.select(..., old_{f}: {f})`"
                    )),
                );
                return invalid;
            }
        }
        // The window is used up: what follows sees single events again (an
        // `.aggregate` needs a window of its own, W0102 otherwise).
        p.window = None;
        out.fields.push(Field::new(PATTERN_FIELD, Type::Str));
        out.fields.push(Field::new(COUNT_FIELD, Type::Int));
        (
            StageKind::Pattern {
                name: pname.name.clone(),
                test: test.span,
            },
            Arc::new(out),
        )
    }
}

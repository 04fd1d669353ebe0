//! `.forecast(...)` (docs/LANGUAGE.md#forecast): its placement (after an
//! in-stream `->` sequence, straight after its sequence operators), its
//! arguments ([`crate::forecast::settings`]) and the schema of its records:
//! the `forecast_*` fields, then the fields of the sequence's step types.

use std::sync::Arc;

use varpulis_syntax::ast::{Arg, Ident, OpKind, SourceKind, StreamDecl};

use super::stream::Pipeline;
use super::Checker;
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::forecast;
use crate::model::StageKind;
use crate::resolve::DeclKind;
use crate::types::{Field, Schema, Type};

/// Operators that belong to the sequence wherever they are written, so
/// they may stand between its steps and `.forecast`.
const SEQUENCE_OPS: &[&str] = &[
    "within",
    "policy",
    "limit_runs",
    "partition_by",
    "watermark",
    "allowed_lateness",
    "context",
    "concurrent",
    "tap",
];

impl Checker<'_> {
    pub(super) fn forecast(
        &mut self,
        s: &StreamDecl,
        name: &Ident,
        args: &[Arg],
        input: &Arc<Schema>,
        p: &mut Pipeline,
    ) -> (StageKind, Arc<Schema>) {
        let (_, problems) = forecast::settings(args);
        for pr in problems {
            let d = Diagnostic::new(codes::ARGUMENT_TYPE, pr.message, pr.span)
                .with_label(pr.label)
                .with_help(pr.help);
            let d = match pr.suggestion {
                Some(h) => d.with_suggestion(pr.span, h),
                None => d,
            };
            self.report(d);
        }
        if !p.is_sequence {
            self.report(
                Diagnostic::new(
                    codes::WITHIN_OUTSIDE_SEQUENCE,
                    "`.forecast` needs a sequence to forecast",
                    name.span,
                )
                .with_label("this stream has no `->` steps")
                .with_help("forecast the completion of a sequence: `A as a -> B -> C .within(1m) .forecast()`"),
            );
            return (StageKind::Invalid, input.clone());
        }
        self.forecast_placement(s, name);
        let schema = self.forecast_schema(s);
        // Forecast records carry no bindings: the steps' aliases end here.
        p.bound.clear();
        p.all_aliases.clear();
        (StageKind::Forecast, Arc::new(schema))
    }

    /// What the lowering cannot run, reported with its codes: a named
    /// pattern or `sequence(...)` source, operators on the matches before
    /// `.forecast`, a second `.forecast`, `.trend_aggregate` with it.
    fn forecast_placement(&mut self, s: &StreamDecl, name: &Ident) {
        let unsupported = |c: &mut Self, msg: &str, span, help: &str| {
            c.report(
                Diagnostic::new(codes::UNSUPPORTED_CONSTRUCT, msg, span)
                    .with_label("the engine cannot run this yet")
                    .with_help(help),
            );
        };
        let from_pattern = matches!(
            &s.source.kind,
            SourceKind::Named { name: src, .. } if self.env.decl(&src.name) == Some(DeclKind::Pattern)
        ) || matches!(s.source.kind, SourceKind::Sequence(_));
        if from_pattern {
            unsupported(
                self,
                "`.forecast` on a named pattern or `sequence(...)` source is not supported yet",
                name.span,
                "write the sequence in the stream with `->` steps",
            );
            return;
        }
        let at = s
            .ops
            .iter()
            .position(|o| matches!(&o.kind, OpKind::Call { name: n, .. } if n.span == name.span))
            .unwrap_or(0);
        let last_step = s
            .ops
            .iter()
            .rposition(|o| matches!(o.kind, OpKind::FollowedBy(_)))
            .unwrap_or(0);
        if at < last_step {
            unsupported(
                self,
                "`.forecast` before the last sequence step is not supported yet",
                name.span,
                "move `.forecast(...)` after the last `->` step",
            );
        }
        for op in s.ops.iter().take(at).skip(last_step + 1) {
            let ok = match &op.kind {
                OpKind::Not(_) => true,
                // A second `.forecast` is reported from the first.
                OpKind::Call { name: n, .. } => {
                    SEQUENCE_OPS.contains(&n.name.as_str()) || n.name == "forecast"
                }
                _ => false,
            };
            if !ok {
                unsupported(
                    self,
                    "an operator between the sequence and `.forecast` is not supported yet",
                    op.span,
                    "move it after `.forecast(...)`: it then acts on the forecasts",
                );
            }
        }
        for op in &s.ops {
            if let OpKind::Call { name: n, .. } = &op.kind {
                let other =
                    n.span != name.span && (n.name == "trend_aggregate" || n.name == "forecast");
                if other && n.span.start > name.span.start {
                    unsupported(
                        self,
                        &format!(
                            "`.{}` in a stream with `.forecast` is not supported yet",
                            n.name
                        ),
                        n.span,
                        "forecast in one stream and aggregate or forecast again in another",
                    );
                }
            }
        }
    }

    /// The forecast record: the `forecast_*` fields, then the fields of
    /// every step type by name (first type first); open when a step type is.
    fn forecast_schema(&mut self, s: &StreamDecl) -> Schema {
        let mut fields: Vec<Field> = forecast::FIELDS
            .iter()
            .map(|(n, t)| {
                let ty = match *t {
                    "float" => Type::Float,
                    "int" => Type::Int,
                    _ => Type::Str,
                };
                let mut f = Field::new(*n, ty);
                f.optional = *n == "forecast_time";
                f
            })
            .collect();
        let mut types: Vec<&Ident> = Vec::new();
        if let SourceKind::Named { name, .. } = &s.source.kind {
            types.push(name);
        }
        for op in &s.ops {
            if let OpKind::FollowedBy(step) = &op.kind {
                types.push(&step.ty);
            }
        }
        let mut open = false;
        for ty in types {
            let schema = match self.env.decl(&ty.name) {
                Some(DeclKind::Event) => self.env.event_schema(&ty.name),
                Some(DeclKind::Stream) => self.env.stream_schema(&ty.name),
                _ => None,
            };
            let Some(schema) = schema else {
                open = true;
                continue;
            };
            open |= schema.open;
            for f in &schema.fields {
                if !fields.iter().any(|g| g.name == f.name) {
                    let mut f = f.clone();
                    // Events of the other step types lack it.
                    f.optional = true;
                    fields.push(f);
                }
            }
        }
        let mut schema = Schema::new(s.name.name.clone(), fields);
        schema.open = open;
        schema
    }
}

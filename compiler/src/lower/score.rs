//! `.score(model:, inputs:, outputs:)` → [`OpSpec::Score`]: the model path
//! resolved against the program file that names it (like `import`), one
//! read per input, and the output layout (the input's slots, then the
//! output fields the input does not have).

use std::sync::Arc;

use varpulis_program::{OpSpec, ScoreSpec};
use varpulis_syntax::ast::{Arg, Expr, ExprKind};
use varpulis_syntax::Span;

use super::expr::unparen;
use super::stream::Chain;
use super::Lowerer;

impl Lowerer<'_> {
    /// Lowers a checked `.score(...)` onto the chain.
    pub(crate) fn score(&mut self, ch: &mut Chain, args: &[Arg], span: Span) {
        let arg = |n: &str| {
            args.iter()
                .find(|a| a.name.as_ref().is_some_and(|x| x.name == n))
                .map(|a| unparen(&a.value))
        };
        let list = |e: Option<&Expr>| match e.map(|e| &e.kind) {
            Some(ExprKind::Array(items)) => items.clone(),
            _ => Vec::new(),
        };
        let Some(ExprKind::Str(model)) = arg("model").map(|e| &e.kind) else {
            self.unsupported("`.score` without a `model:` string", span);
            return;
        };
        let model = model.clone();
        let file = match self.item.unit {
            0 => self.input.file,
            i => self
                .input
                .imports
                .get(i - 1)
                .map_or(self.input.file, |u| u.file),
        };
        let path = crate::db::resolve_import_path(file, &model);
        let mut inputs = Vec::new();
        for e in list(arg("inputs")) {
            let name = match &unparen(&e).kind {
                ExprKind::Ident(i) => i.name.clone(),
                ExprKind::Member { name, .. } => name.name.clone(),
                _ => continue,
            };
            inputs.push((Arc::from(name.as_str()), self.chunk(&mut ch.env, &e)));
        }
        let layout = ch.env.layout.unwrap_or(0);
        let mut fields = self.field_names(layout);
        let mut outputs = Vec::new();
        for e in list(arg("outputs")) {
            let ExprKind::Ident(i) = &unparen(&e).kind else {
                continue;
            };
            let slot = match fields.iter().position(|f| *f == i.name) {
                Some(s) => s,
                None => {
                    fields.push(i.name.clone());
                    fields.len() - 1
                }
            };
            outputs.push((Arc::from(i.name.as_str()), super::to_u16(slot)));
        }
        if inputs.is_empty() || outputs.is_empty() {
            self.unsupported("`.score` without inputs or outputs", span);
            return;
        }
        let keep_extra = self
            .program
            .schemas
            .get(layout as usize)
            .is_some_and(|s| s.keep_extra);
        let schema = self.stream_schema(ch.sid, &format!("{}.score", ch.name), fields);
        if keep_extra {
            self.keep_extra(schema);
        }
        let span = self.span_id(span);
        ch.ops.push(OpSpec::Score(ScoreSpec {
            model: Arc::from(model.as_str()),
            path: Arc::from(path.as_str()),
            inputs,
            outputs,
            schema,
            span,
        }));
        ch.env.layout = Some(schema);
    }
}

//! `.score(model: "m.onnx", inputs: [f...], outputs: [g...])`
//! (docs/LANGUAGE.md#score): the model is a string literal (the file is read
//! by the host, never here), the inputs are numeric fields of the events in
//! scope, the outputs are new field names. The events leave with their
//! fields plus one float per output.

use std::sync::Arc;

use varpulis_syntax::ast::{Arg, Expr, ExprKind, Ident};

use super::stream::Pipeline;
use super::Checker;
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::model::StageKind;
use crate::types::{Field, Schema, Type};

const EXAMPLE: &str = "write `.score(model: \"model.onnx\", inputs: [a, b], outputs: [score])`";

impl Checker<'_> {
    pub(super) fn score(
        &mut self,
        name: &Ident,
        args: &[Arg],
        input: &Arc<Schema>,
        p: &Pipeline,
    ) -> (StageKind, Arc<Schema>) {
        let arg = |n: &str| {
            args.iter()
                .find(|a| a.name.as_ref().is_some_and(|x| x.name == n))
                .map(|a| &a.value)
        };
        let mut ok = true;
        let mut missing = |this: &mut Self, what: &str| {
            this.report(
                Diagnostic::new(
                    codes::WRONG_ARITY,
                    format!("`.score` needs `{what}:`"),
                    name.span,
                )
                .with_label(format!("no `{what}:` argument"))
                .with_help(EXAMPLE),
            );
            ok = false;
        };
        let model = match arg("model") {
            None => {
                missing(self, "model");
                None
            }
            Some(e) => self.score_model(e),
        };
        let inputs = match arg("inputs") {
            None => {
                missing(self, "inputs");
                Vec::new()
            }
            Some(e) => self.score_inputs(e, input, p),
        };
        let outputs = match arg("outputs") {
            None => {
                missing(self, "outputs");
                Vec::new()
            }
            Some(e) => self.score_outputs(e),
        };
        let mut schema = (**input).clone();
        for o in &outputs {
            match schema.fields.iter_mut().find(|f| f.name == o.name) {
                Some(f) => {
                    f.ty = Type::Float;
                    f.optional = false;
                }
                None => schema.fields.push(Field::new(o.name.clone(), Type::Float)),
            }
        }
        let schema = Arc::new(schema);
        match (model, ok && !inputs.is_empty() && !outputs.is_empty()) {
            (Some(model), true) => (
                StageKind::Score {
                    model,
                    inputs,
                    outputs: outputs.into_iter().map(|o| o.name).collect(),
                },
                schema,
            ),
            _ => (StageKind::Invalid, schema),
        }
    }

    fn score_model(&mut self, e: &Expr) -> Option<String> {
        match &e.kind {
            ExprKind::Str(s) if !s.trim().is_empty() => Some(s.clone()),
            ExprKind::Error => None,
            _ => {
                self.report(
                    Diagnostic::new(
                        codes::ARGUMENT_TYPE,
                        "`model:` must be a non-empty string literal naming an ONNX file",
                        e.span,
                    )
                    .with_label("not a string literal")
                    .with_help(
                        "write the file's path, relative to this program's file: \
                         `model: \"fraud.onnx\"`",
                    ),
                );
                None
            }
        }
    }

    /// The `inputs:` list: numeric fields (or `alias.field` after a
    /// sequence), in model order.
    fn score_inputs(&mut self, e: &Expr, input: &Arc<Schema>, p: &Pipeline) -> Vec<String> {
        let Some(items) = self.score_list(e, "inputs", "inputs: [amount, age]") else {
            return Vec::new();
        };
        let scope = p.scope(input);
        let mut names = Vec::new();
        for item in items {
            let name = match &item.kind {
                ExprKind::Ident(i) => i.name.clone(),
                ExprKind::Member { name, .. } => name.name.clone(),
                ExprKind::Error => continue,
                _ => {
                    self.report(
                        Diagnostic::new(
                            codes::ARGUMENT_TYPE,
                            "a `.score` input must be a field name",
                            item.span,
                        )
                        .with_label("not a field name")
                        .with_help(
                            "compute the value with `.select(name: ...)` before `.score`, \
                             then list `name`",
                        ),
                    );
                    continue;
                }
            };
            let t = self.expr(item, &scope);
            if !t.is_unknown() && !t.is_numeric() {
                self.report(
                    Diagnostic::new(
                        codes::ARGUMENT_TYPE,
                        format!("`.score` input `{name}` is `{t}`, not a number"),
                        item.span,
                    )
                    .with_label(format!("this is `{t}`"))
                    .with_help(
                        "models take numbers: convert with `to_float(...)` in a `.select` first",
                    ),
                );
            }
            names.push(name);
        }
        names
    }

    /// The `outputs:` list: new field names, each once.
    fn score_outputs(&mut self, e: &Expr) -> Vec<Ident> {
        let Some(items) = self.score_list(e, "outputs", "outputs: [fraud_score]") else {
            return Vec::new();
        };
        let mut names: Vec<Ident> = Vec::new();
        for item in items {
            match &item.kind {
                ExprKind::Ident(i) => {
                    if names.iter().any(|n| n.name == i.name) {
                        self.duplicate_field(i, "score");
                    } else {
                        names.push(i.clone());
                    }
                }
                ExprKind::Error => {}
                _ => self.report(
                    Diagnostic::new(
                        codes::ARGUMENT_TYPE,
                        "a `.score` output must be a plain field name",
                        item.span,
                    )
                    .with_label("not a name")
                    .with_help("name the field the score goes to, e.g. `outputs: [risk]`"),
                ),
            }
        }
        names
    }

    /// A non-empty array literal, or a report.
    fn score_list<'e>(&mut self, e: &'e Expr, what: &str, example: &str) -> Option<&'e [Expr]> {
        match &e.kind {
            ExprKind::Array(items) if !items.is_empty() => Some(items),
            ExprKind::Error => None,
            _ => {
                self.report(
                    Diagnostic::new(
                        codes::ARGUMENT_TYPE,
                        format!("`{what}:` must be a non-empty list of field names"),
                        e.span,
                    )
                    .with_label("not a list of names")
                    .with_help(format!("write `{example}`")),
                );
                None
            }
        }
    }
}

//! Checking `.map(name: expr, ...)` (docs/LANGUAGE.md#map): every field of
//! the event is kept and each item adds a field or replaces the one of the
//! same name, unlike `.select`, which keeps only its items.

use std::sync::Arc;

use varpulis_syntax::ast::{Arg, ExprKind, Ident};

use super::stream::Pipeline;
use super::Checker;
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::model::StageKind;
use crate::resolve::DeclKind;
use crate::types::{Field, Schema};

impl Checker<'_> {
    /// `.map(...)`: the input's fields with the items added or replaced.
    pub(super) fn map_op(
        &mut self,
        name: &Ident,
        args: &[Arg],
        input: &Arc<Schema>,
        p: &mut Pipeline,
    ) -> (StageKind, Arc<Schema>) {
        // `.map(f)` / `.map(x => ...)`: a function over the whole event,
        // which VPL has no value for; say what to write instead.
        if args.is_empty() {
            self.report(
                Diagnostic::new(codes::WRONG_ARITY, "`.map()` without fields", name.span)
                    .with_label("nothing to add or replace")
                    .with_help("write `.map(name: expr)`, or remove `.map()`"),
            );
        }
        let mut ok = Vec::with_capacity(args.len());
        for a in args {
            let function = a.name.is_none()
                && match &a.value.kind {
                    ExprKind::Ident(i) => self.env.decl(&i.name) == Some(DeclKind::Fn),
                    ExprKind::Lambda { .. } => true,
                    _ => false,
                };
            if function {
                self.report(
                    Diagnostic::new(
                        codes::ARGUMENT_TYPE,
                        "`.map` takes fields, not a function",
                        a.value.span,
                    )
                    .with_label("a function over the whole event")
                    .with_help(
                        "name the fields it computes, e.g. `.map(total: price * qty)`, or call \
                         the function per event with `.process(f(...))`",
                    ),
                );
            } else {
                ok.push(a.clone());
            }
        }
        let scope = p.scope(input);
        let items = self.output_items(&ok, &scope, "map");
        let mut out = (**input).clone();
        out.name = p.stream.clone();
        for i in &items {
            match out.fields.iter_mut().find(|f| f.name == i.name) {
                Some(f) => {
                    f.ty = i.ty.clone();
                    f.optional = false;
                }
                None => out.fields.push(Field::new(i.name.clone(), i.ty.clone())),
            }
        }
        (StageKind::Map(items), Arc::new(out))
    }
}

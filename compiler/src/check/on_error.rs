//! Checking `.on_error(Conn, topic: t)` (docs/LANGUAGE.md#on_error): the
//! connector that receives the stream's runtime errors. It is a setting of
//! the whole stream, so one per stream.

use varpulis_syntax::ast::{Arg, Ident, Op, OpKind, StreamDecl};

use super::Checker;
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::model::StageKind;

impl Checker<'_> {
    /// `.on_error(...)`; `op` is one of `s.ops`.
    pub(super) fn on_error(
        &mut self,
        s: &StreamDecl,
        op: &Op,
        name: &Ident,
        args: &[Arg],
        scope: &super::Scope,
    ) -> StageKind {
        let first = s
            .ops
            .iter()
            .find(|o| matches!(&o.kind, OpKind::Call { name: n, .. } if n.name == "on_error"));
        if let Some(first) = first.filter(|f| !std::ptr::eq(*f, op)) {
            self.report(
                Diagnostic::new(
                    codes::UNSUPPORTED_CONSTRUCT,
                    "a stream has one `.on_error`",
                    name.span,
                )
                .with_label("second `.on_error`")
                .with_secondary(first.span, "the stream's errors already go here")
                .with_help(
                    "keep one `.on_error(...)`: it receives the errors of every operator of the stream",
                ),
            );
        }
        let c = self.connector_args(op.span, scope, args, "on_error");
        StageKind::OnError {
            connector: c.unwrap_or_default(),
        }
    }
}

//! `context` declarations and the streams placed in them: recorded in
//! [`varpulis_program::Program::contexts`] and
//! [`varpulis_program::Program::placements`] for the host, which may run
//! each context on its own engine thread. No operator comes of them: results
//! do not depend on contexts (docs/LANGUAGE.md#context).

use std::sync::Arc;

use rustc_hash::FxHashMap;
use varpulis_program::{ContextDef, ContextId, Placement};
use varpulis_syntax::ast::{Arg, ExprKind, Item, OpKind};

use super::expr::unparen;
use super::{to_u32, Lowerer};

impl Lowerer<'_> {
    /// Lowers the `context` declarations (first declaration of a name wins,
    /// as for every other name) and the placement of every stream.
    pub(super) fn lower_contexts(&mut self) {
        let mut ids: FxHashMap<String, ContextId> = FxHashMap::default();
        for (i, node) in self.input.items.iter().enumerate() {
            let Item::Context(c) = &node.item else {
                continue;
            };
            if ids.contains_key(&c.name.name) {
                continue;
            }
            let prev = self.enter_item(i);
            let span = self.span_id(c.span);
            self.leave_item(prev);
            ids.insert(c.name.name.clone(), to_u32(self.program.contexts.len()));
            self.program.contexts.push(ContextDef {
                name: Arc::from(c.name.name.as_str()),
                cores: cores(&c.params),
                span,
            });
        }
        if ids.is_empty() {
            return;
        }
        for (sid, &item) in self.stream_items.iter().enumerate() {
            let Some(Item::Stream(decl)) = self.input.items.get(item).map(|n| &n.item) else {
                continue;
            };
            let mut placement = Placement {
                stream: to_u32(sid),
                context: None,
                emit: None,
            };
            for op in &decl.ops {
                match &op.kind {
                    OpKind::Call { name, args } if name.name == "context" => {
                        let named = args.iter().find(|a| a.name.is_none());
                        if let Some(c) = named.and_then(|a| context_name(a, &ids)) {
                            placement.context = Some(c);
                        }
                    }
                    OpKind::Emit { args, .. } => {
                        let target = args
                            .iter()
                            .find(|a| a.name.as_ref().is_some_and(|n| n.name == "context"));
                        if let Some(c) = target.and_then(|a| context_name(a, &ids)) {
                            placement.emit = Some(c);
                        }
                    }
                    _ => {}
                }
            }
            if placement.context.is_some() || placement.emit.is_some() {
                self.program.placements.push(placement);
            }
        }
    }
}

/// The context an argument names (the checker reported unknown ones).
fn context_name(arg: &Arg, ids: &FxHashMap<String, ContextId>) -> Option<ContextId> {
    match &unparen(&arg.value).kind {
        ExprKind::Ident(id) => ids.get(&id.name).copied(),
        _ => None,
    }
}

/// `cores: [0, 1]`: the non-negative integers of the list, in order.
fn cores(params: &[Arg]) -> Vec<u32> {
    let Some(list) = params
        .iter()
        .find(|a| a.name.as_ref().is_some_and(|n| n.name == "cores"))
    else {
        return Vec::new();
    };
    match &unparen(&list.value).kind {
        ExprKind::Array(items) => items
            .iter()
            .filter_map(|e| match unparen(e).kind {
                ExprKind::Int(n) => u32::try_from(n).ok(),
                _ => None,
            })
            .collect(),
        ExprKind::Int(n) => u32::try_from(*n).ok().into_iter().collect(),
        _ => Vec::new(),
    }
}

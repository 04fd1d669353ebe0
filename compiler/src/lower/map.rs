//! Lowering `.map(name: expr, ...)` (checked in `check::map`) to
//! [`OpSpec::Map`].

use varpulis_program::{MapSpec, OpSpec};
use varpulis_syntax::ast::{Arg, ExprKind};

use super::expr::unparen;
use super::stream::Chain;
use super::{to_u16, Lowerer};

impl Lowerer<'_> {
    /// Lowers `.map(...)` onto the chain: the output layout is the input's
    /// fields, then the new names; an open input gives an open output, whose
    /// later reads the VM fills from the input event by name.
    pub(crate) fn map_op(&mut self, ch: &mut Chain, args: &[Arg]) {
        let input = ch.layout();
        let mut names = self.field_names(input);
        let mut items = Vec::new();
        for a in args {
            let name = match (&a.name, &unparen(&a.value).kind) {
                (Some(n), _) => n.name.clone(),
                (None, ExprKind::Ident(id)) => id.name.clone(),
                (None, ExprKind::Member { name, .. }) => name.name.clone(),
                _ => continue,
            };
            let chunk = self.chunk(&mut ch.env, &a.value);
            let slot = match names.iter().position(|n| *n == name) {
                Some(i) => i,
                None => {
                    names.push(name);
                    names.len() - 1
                }
            };
            items.push((to_u16(slot), chunk));
        }
        // Undeclared fields of the input pass through `.map`.
        self.keep_extra(input);
        let schema = self.stream_schema(ch.sid, &format!("{}.map", ch.name), names);
        if self.open.contains(&input) {
            self.open.insert(schema);
        }
        ch.ops.push(OpSpec::Map(MapSpec { items, schema }));
        ch.env.layout = Some(schema);
        ch.env.self_names.clear();
    }
}

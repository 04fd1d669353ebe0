//! Lowering the window group operators `.order_by`, `.collect`, `.any` and
//! `.all` (checked in `check::group`) to [`OpSpec::Group`]; the VM fuses
//! them into the window before them.

use varpulis_program::{CollectSpec, GroupOp, OpSpec, SortKey};
use varpulis_syntax::ast::Arg;

use super::stream::Chain;
use super::{to_u16, Lowerer};
use crate::capabilities::Op as Operator;
use crate::check::group::{collect_field, sort_key};

impl Lowerer<'_> {
    /// Lowers one group operator onto the chain.
    pub(crate) fn group_op(&mut self, ch: &mut Chain, which: Operator, args: &[Arg]) {
        let op = match which {
            Operator::OrderBy => {
                let keys = args
                    .iter()
                    .map(|a| {
                        let (key, descending) = sort_key(&a.value);
                        SortKey {
                            key: self.chunk(&mut ch.env, key),
                            descending,
                        }
                    })
                    .collect();
                GroupOp::OrderBy(keys)
            }
            Operator::Any | Operator::All => {
                let Some(e) = args.first().map(|a| &a.value) else {
                    return;
                };
                let c = self.chunk(&mut ch.env, e);
                if which == Operator::Any {
                    GroupOp::Any(c)
                } else {
                    GroupOp::All(c)
                }
            }
            _ => {
                let Some(field) = collect_field(args) else {
                    return;
                };
                // Collected events carry every field they arrived with.
                self.keep_extra(ch.layout());
                let mut names = vec![field.clone()];
                let key = match &ch.partition {
                    Some(Some(k)) if *k != field => {
                        names.push(k.clone());
                        Some(to_u16(1))
                    }
                    _ => None,
                };
                let schema = self.stream_schema(ch.sid, &format!("{}.collect", ch.name), names);
                ch.env.layout = Some(schema);
                ch.env.self_names.clear();
                GroupOp::Collect(CollectSpec {
                    schema,
                    key_slot: key,
                    field: field.into(),
                })
            }
        };
        ch.ops.push(OpSpec::Group(op));
    }
}

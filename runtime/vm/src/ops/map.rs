//! `.map(name: expr, ...)` ([`varpulis_program::MapSpec`]): a new event with
//! the items' fields added or replaced and every other field of the input
//! kept, including its undeclared overflow.

use super::{Cx, Operator, Rec};
use std::sync::Arc;
use varpulis_program::{Chunk, Event, MapSpec, Program, SchemaId};

/// Where a kept output slot's value comes from.
enum Source {
    /// The input event's slot.
    Slot(u16),
    /// The input's overflow, by name (a field of an open input that only a
    /// later operator reads).
    Extra(Arc<str>),
}

/// The runtime form of [`MapSpec`].
pub struct Map {
    items: Vec<(usize, Chunk)>,
    /// `(output slot, source)` for every slot no item writes.
    kept: Vec<(usize, Source)>,
    schema: SchemaId,
    width: usize,
}

impl Map {
    /// Builds the operator for input events of layout `input`.
    pub fn new(program: &Program, spec: &MapSpec, input: SchemaId) -> Map {
        let out = program.schemas.get(spec.schema as usize);
        let inp = program.schemas.get(input as usize);
        let width = out.map_or(0, |s| s.fields.len());
        let items: Vec<(usize, Chunk)> = spec
            .items
            .iter()
            .map(|(slot, c)| (usize::from(*slot), c.clone()))
            .collect();
        let mut kept = Vec::new();
        for (i, f) in out.iter().flat_map(|s| s.fields.iter()).enumerate() {
            if items.iter().any(|(s, _)| *s == i) {
                continue;
            }
            let source = match inp.and_then(|s| s.slot(&f.name)) {
                Some(slot) => Source::Slot(slot),
                None => Source::Extra(f.name.clone()),
            };
            kept.push((i, source));
        }
        Map {
            items,
            kept,
            schema: spec.schema,
            width,
        }
    }
}

impl Operator for Map {
    fn process(&mut self, rec: Rec, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        let mut fields = vec![None; self.width];
        for (slot, source) in &self.kept {
            let v = match source {
                Source::Slot(s) => rec.ev.get(*s),
                Source::Extra(name) => rec.ev.get_extra(name),
            };
            if let Some(f) = fields.get_mut(*slot) {
                *f = v.cloned();
            }
        }
        for (slot, chunk) in &self.items {
            let v = cx.eval_rec(chunk, &rec);
            if let Some(f) = fields.get_mut(*slot) {
                *f = v;
            }
        }
        let mut ev = Event::new(self.schema, rec.ev.time, fields);
        ev.extra = rec.ev.extra.clone();
        out.push(Rec {
            ev: Arc::new(ev),
            key: rec.key,
            bindings: rec.bindings,
        });
    }
}

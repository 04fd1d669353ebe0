//! Schemas and field slots.
//!
//! - Declared event types get one schema each, inherited (`extends`) fields
//!   first, in declaration order; a field's slot is its position.
//! - Undeclared event types get an *open* schema whose fields are the ones the
//!   program reads: reading an unknown field of an open layout appends a slot
//!   (slots never move, so chunks compiled earlier stay valid). Their
//!   `keep_extra` is set so other input fields survive in the overflow.
//! - Operators that change the shape (`select`, `emit`, `aggregate`, merge,
//!   join) create intermediate schemas owned by their stream; the layout at
//!   the end of a chain becomes the stream's output schema (renamed when the
//!   stream owns it, copied otherwise) in [`Lowerer::finish_streams`].

use std::sync::Arc;

use varpulis_program::{EventSchema, FieldDef, SchemaId, SchemaOrigin, Type};
use varpulis_syntax::ast::{Item, TypeExpr, TypeKind};

use super::{to_u16, to_u32, Decl, Lowerer, StreamState};

impl Lowerer<'_> {
    /// Adds a schema and returns its id.
    pub(crate) fn add_schema(&mut self, schema: EventSchema) -> SchemaId {
        let id = to_u32(self.program.schemas.len());
        self.program.schemas.push(schema);
        id
    }

    /// A new intermediate schema owned by `stream` with the given fields.
    pub(crate) fn stream_schema(
        &mut self,
        stream: u32,
        name: &str,
        fields: Vec<String>,
    ) -> SchemaId {
        let schema = EventSchema {
            name: Arc::from(name),
            fields: fields
                .into_iter()
                .map(|f| FieldDef {
                    name: Arc::from(f.as_str()),
                    ty: Type::Any,
                })
                .collect(),
            origin: SchemaOrigin::Stream,
            keep_extra: false,
        };
        let id = self.add_schema(schema);
        self.owner.insert(id, stream);
        id
    }

    /// The field names of a schema, in slot order.
    pub(crate) fn field_names(&self, schema: SchemaId) -> Vec<String> {
        self.program
            .schemas
            .get(schema as usize)
            .map(|s| s.fields.iter().map(|f| f.name.to_string()).collect())
            .unwrap_or_default()
    }

    /// The slot of `name` in `schema`; for an open schema an unknown field is
    /// appended (inferred from this read).
    pub(crate) fn field_slot(&mut self, schema: SchemaId, name: &str) -> Option<u16> {
        let s = self.program.schemas.get_mut(schema as usize)?;
        if let Some(slot) = s.slot(name) {
            return Some(slot);
        }
        if !self.open.contains(&schema) {
            return None;
        }
        s.fields.push(FieldDef {
            name: Arc::from(name),
            ty: Type::Any,
        });
        Some(to_u16(s.fields.len() - 1))
    }

    /// The slot of `name` in `schema` without inferring anything.
    pub(crate) fn existing_slot(&self, schema: SchemaId, name: &str) -> Option<u16> {
        self.program.schemas.get(schema as usize)?.slot(name)
    }

    /// The name of a schema.
    pub(crate) fn schema_name(&self, schema: SchemaId) -> String {
        self.program
            .schemas
            .get(schema as usize)
            .map(|s| s.name.to_string())
            .unwrap_or_default()
    }

    /// Marks a schema as passing undeclared input fields through.
    pub(crate) fn keep_extra(&mut self, schema: SchemaId) {
        if let Some(s) = self.program.schemas.get_mut(schema as usize) {
            if matches!(s.origin, SchemaOrigin::Declared | SchemaOrigin::Undeclared) {
                s.keep_extra = true;
            }
        }
    }

    /// Lowers every `event` declaration (in order; parents first on demand).
    pub(super) fn lower_event_decls(&mut self) {
        for (i, node) in self.input.items.iter().enumerate() {
            if let Item::Event(d) = &node.item {
                if self.names.get(&d.name.name) == Some(&Decl::Event(i)) {
                    self.declared_event(&d.name.name, 0);
                }
            }
        }
    }

    /// The schema of the declared event type `name`, lowering it (and its
    /// parents) on first use. `depth` guards against `extends` cycles, which
    /// the checker reports.
    fn declared_event(&mut self, name: &str, depth: usize) -> Option<SchemaId> {
        if let Some(id) = self.events.get(name) {
            return Some(*id);
        }
        let Some(Decl::Event(index)) = self.names.get(name).copied() else {
            return None;
        };
        let Item::Event(decl) = &self.input.items.get(index)?.item else {
            return None;
        };
        let mut fields: Vec<FieldDef> = Vec::new();
        if let Some(base) = &decl.extends {
            if depth < 64 {
                if let Some(b) = self.declared_event(&base.name, depth + 1) {
                    fields.extend(self.program.schemas[b as usize].fields.iter().cloned());
                }
            }
        }
        for f in &decl.fields {
            let ty = self.lower_type(&f.ty, 0);
            match fields.iter_mut().find(|x| *x.name == *f.name.name) {
                Some(existing) => existing.ty = ty,
                None => fields.push(FieldDef {
                    name: Arc::from(f.name.name.as_str()),
                    ty,
                }),
            }
        }
        let id = self.add_schema(EventSchema {
            name: Arc::from(name),
            fields,
            origin: SchemaOrigin::Declared,
            keep_extra: false,
        });
        self.events.insert(name.to_string(), id);
        Some(id)
    }

    /// The schema of event type `name`: declared, or else an open schema for
    /// an undeclared type (created on first use).
    pub(crate) fn event_schema(&mut self, name: &str) -> SchemaId {
        if let Some(id) = self.declared_event(name, 0) {
            return id;
        }
        let id = self.add_schema(EventSchema {
            name: Arc::from(name),
            fields: Vec::new(),
            origin: SchemaOrigin::Undeclared,
            keep_extra: true,
        });
        self.events.insert(name.to_string(), id);
        self.open.insert(id);
        id
    }

    /// A written type as a Program type (a hint for decoding input).
    pub(crate) fn lower_type(&mut self, ty: &TypeExpr, depth: usize) -> Type {
        if depth > 32 {
            return Type::Any;
        }
        match &ty.kind {
            TypeKind::Named(id) => match id.name.as_str() {
                "int" => Type::Int,
                "float" => Type::Float,
                "bool" => Type::Bool,
                "str" | "string" => Type::Str,
                "timestamp" => Type::Timestamp,
                "duration" => Type::Duration,
                "null" => Type::Null,
                other => match self.names.get(other).copied() {
                    Some(Decl::Event(_)) => self
                        .declared_event(other, depth + 1)
                        .map_or(Type::Any, Type::Event),
                    _ => self.alias_type(other, depth),
                },
            },
            TypeKind::Array(t) => Type::Array(Box::new(self.lower_type(t, depth + 1))),
            TypeKind::Map(k, v) => Type::Map(
                Box::new(self.lower_type(k, depth + 1)),
                Box::new(self.lower_type(v, depth + 1)),
            ),
            TypeKind::Tuple(ts) => {
                Type::Tuple(ts.iter().map(|t| self.lower_type(t, depth + 1)).collect())
            }
            TypeKind::Optional(t) => Type::Optional(Box::new(self.lower_type(t, depth + 1))),
            TypeKind::Stream(_) | TypeKind::Error => Type::Any,
        }
    }

    /// A `type Name = T` alias, expanded (types are nominal hints only).
    fn alias_type(&mut self, name: &str, depth: usize) -> Type {
        let items = self.input.items;
        let aliased = items.iter().find_map(|n| match &n.item {
            Item::TypeAlias(a) if a.name.name == name => Some(&a.ty),
            _ => None,
        });
        match aliased {
            Some(t) => self.lower_type(t, depth + 1),
            None => Type::Any,
        }
    }

    /// Creates each stream's output schema from the layout at the end of its
    /// chain: the intermediate schema is renamed when the stream owns it, and
    /// copied otherwise (an event type or another stream's layout), so that
    /// re-typing never moves values.
    pub(super) fn finish_streams(&mut self) {
        let mut claimed = rustc_hash::FxHashSet::default();
        for sid in 0..self.plans.len() {
            let StreamState::Done(end) = self.stream_state[sid] else {
                continue;
            };
            let Some(name) = self.plans[sid].as_ref().map(|p| p.name.clone()) else {
                continue;
            };
            let owned = self.owner.get(&end) == Some(&to_u32(sid)) && claimed.insert(end);
            let out = if owned {
                if let Some(s) = self.program.schemas.get_mut(end as usize) {
                    s.name = name;
                }
                end
            } else {
                let Some(src) = self.program.schemas.get(end as usize) else {
                    continue;
                };
                let copy = EventSchema {
                    name,
                    fields: src.fields.clone(),
                    origin: SchemaOrigin::Stream,
                    keep_extra: src.keep_extra,
                };
                self.add_schema(copy)
            };
            if let Some(plan) = self.plans[sid].as_mut() {
                plan.output_schema = out;
            }
        }
        self.program.streams = self.plans.iter_mut().filter_map(Option::take).collect();
    }
}

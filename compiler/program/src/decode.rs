//! Conversion of decoded input records ([`RawEvent`]) into slot
//! [`Event`]s against a program's schemas.

use crate::event::Event;
use crate::json::{FieldRef, StrCache};
use crate::schema::{SchemaId, SchemaOrigin, Type};
use crate::value::Value;
use crate::Program;
use rustc_hash::FxHashMap;
use std::sync::Arc;
use thiserror::Error;

/// An input event as read from `.evt` or JSON, before schema resolution.
#[derive(Clone, Debug, PartialEq)]
pub struct RawEvent {
    /// The event type name.
    pub event_type: String,
    /// Fields by name, in input order.
    pub fields: Vec<(String, Value)>,
    /// An explicit event time (ns since the epoch) from a JSON `timestamp`.
    pub timestamp: Option<i64>,
}

/// Why a record could not become an event. The host counts these.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The program declares no input type with this name.
    #[error("unknown event type `{0}`")]
    UnknownType(String),
}

/// A non-fatal problem found while decoding; the event is still produced.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DecodeWarning {
    /// A value does not have the declared type (it is kept as is: declared
    /// types are hints, docs/LANGUAGE.md#event).
    #[error("field `{field}` of `{event_type}` expects {expected}, got {got}")]
    WrongType {
        /// The event type.
        event_type: String,
        /// The field.
        field: String,
        /// The declared type, rendered.
        expected: String,
        /// The value's type name.
        got: &'static str,
    },
}

/// What decoding may reuse: the cache of recent strings and the slots of a spent event.
pub(crate) struct Reuse<'s> {
    pub(crate) strings: &'s mut StrCache,
    pub(crate) slots: Option<Vec<Option<Value>>>,
}

struct SchemaLookup {
    fields: FxHashMap<Arc<str>, u16>,
    types: Vec<Type>,
    keep_extra: bool,
    timestamp_slot: Option<u16>,
    name: Arc<str>,
}

impl SchemaLookup {
    /// Puts the record's time `ts` in the schema's `timestamp` field when the record left
    /// that field empty.
    fn fill_timestamp(&self, slots: &mut [Option<Value>], ts: i64) {
        if let Some(f @ None) = self
            .timestamp_slot
            .and_then(|slot| slots.get_mut(usize::from(slot)))
        {
            *f = Some(Value::Timestamp(ts));
        }
    }
}

/// Resolves event type names and field names to ids and slots once, then
/// converts records cheaply. Only schemas of input types (declared or
/// undeclared event types) accept input.
pub struct EventDecoder {
    by_name: FxHashMap<Arc<str>, SchemaId>,
    schemas: FxHashMap<SchemaId, SchemaLookup>,
}

impl EventDecoder {
    /// Builds the lookup tables for a program.
    pub fn new(program: &Program) -> EventDecoder {
        let mut by_name = FxHashMap::default();
        let mut schemas = FxHashMap::default();
        for (i, s) in program.schemas.iter().enumerate() {
            if !matches!(s.origin, SchemaOrigin::Declared | SchemaOrigin::Undeclared) {
                continue;
            }
            let Ok(id) = SchemaId::try_from(i) else {
                continue;
            };
            by_name.entry(s.name.clone()).or_insert(id);
            let fields = s
                .fields
                .iter()
                .enumerate()
                .filter_map(|(slot, f)| Some((f.name.clone(), u16::try_from(slot).ok()?)))
                .collect();
            schemas.insert(
                id,
                SchemaLookup {
                    fields,
                    types: s.fields.iter().map(|f| f.ty.clone()).collect(),
                    keep_extra: s.keep_extra || s.origin == SchemaOrigin::Undeclared,
                    timestamp_slot: s.slot("timestamp"),
                    name: s.name.clone(),
                },
            );
        }
        EventDecoder { by_name, schemas }
    }

    /// The schema id of an input type name.
    pub fn type_id(&self, name: &str) -> Option<SchemaId> {
        self.by_name.get(name).copied()
    }

    /// Converts a record, stamping it with `time` (the caller decides between
    /// `raw.timestamp` and `.evt` offsets). Declared fields go to their slots
    /// (ints read into `float` fields become floats; RFC 3339 strings or epoch
    /// milliseconds read into `timestamp` fields become timestamps);
    /// undeclared fields go to the overflow when the schema keeps extras and
    /// are dropped otherwise. Type mismatches are pushed to `warnings`.
    pub fn decode(
        &self,
        raw: &RawEvent,
        time: i64,
        warnings: &mut Vec<DecodeWarning>,
    ) -> Result<Event, DecodeError> {
        let fields = raw
            .fields
            .iter()
            .map(|(name, value)| (name.as_str(), FieldRef::Value(value)));
        let reuse = Reuse {
            strings: &mut StrCache::default(),
            slots: None,
        };
        self.decode_fields(
            &raw.event_type,
            raw.timestamp,
            time,
            fields,
            reuse,
            warnings,
        )
    }

    /// Gives an event decoded without a `timestamp` the one its record turned out to have
    /// (a `.evt` line after a JSON line with a `timestamp` takes that one): its schema's
    /// `timestamp` field gets it when the record left the field empty, as decoding a record
    /// with that `timestamp` does. The event's time is the caller's to set.
    pub fn fill_timestamp(&self, event: &mut Event, ts: i64) {
        if let Some(lookup) = self.schemas.get(&event.type_id) {
            lookup.fill_timestamp(&mut event.fields, ts);
        }
    }

    /// [`EventDecoder::decode`] over fields borrowed from wherever they were read.
    pub(crate) fn decode_fields<'v>(
        &self,
        event_type: &str,
        timestamp: Option<i64>,
        time: i64,
        fields: impl Iterator<Item = (&'v str, FieldRef<'v>)>,
        reuse: Reuse<'_>,
        warnings: &mut Vec<DecodeWarning>,
    ) -> Result<Event, DecodeError> {
        let Reuse { strings, slots } = reuse;
        let found = self
            .type_id(event_type)
            .and_then(|id| Some((id, self.schemas.get(&id)?)));
        let Some((id, lookup)) = found else {
            return Err(DecodeError::UnknownType(event_type.to_string()));
        };
        let mut slots = slots.unwrap_or_default();
        slots.clear();
        slots.resize(lookup.types.len(), None);
        let mut extra = Vec::new();
        for (name, field) in fields {
            match lookup.fields.get(name) {
                Some(&slot) => {
                    let ty = lookup.types.get(usize::from(slot)).unwrap_or(&Type::Any);
                    let v = coerce(field.to_value(strings), ty);
                    if !conforms(&v, ty) {
                        warnings.push(DecodeWarning::WrongType {
                            event_type: lookup.name.to_string(),
                            field: name.to_string(),
                            expected: render_type(ty),
                            got: v.type_name(),
                        });
                    }
                    if let Some(f) = slots.get_mut(usize::from(slot)) {
                        *f = Some(v);
                    }
                }
                None if lookup.keep_extra => extra.push((Arc::from(name), field.to_value(strings))),
                None => {}
            }
        }
        if let Some(ts) = timestamp {
            lookup.fill_timestamp(&mut slots, ts);
        }
        Ok(Event {
            type_id: id,
            time,
            fields: slots,
            extra: if extra.is_empty() {
                None
            } else {
                Some(Box::new(extra))
            },
        })
    }
}

/// `v` read into a field of type `ty`: ints into `float` become floats, RFC 3339 strings and
/// epoch milliseconds into `timestamp` become timestamps; anything else is kept as is.
fn coerce(v: Value, ty: &Type) -> Value {
    match (&v, ty) {
        (Value::Int(i), Type::Float) => Value::Float(*i as f64),
        (Value::Str(s), Type::Timestamp) => match crate::time::parse_rfc3339(s) {
            Some(t) => Value::Timestamp(t),
            None => v,
        },
        (Value::Int(ms), Type::Timestamp) => match ms.checked_mul(crate::time::NS_PER_MS) {
            Some(t) => Value::Timestamp(t),
            None => v,
        },
        (_, Type::Optional(inner)) if !matches!(v, Value::Null) => coerce(v, inner),
        _ => v,
    }
}

fn conforms(v: &Value, ty: &Type) -> bool {
    match (ty, v) {
        (Type::Any, _) | (Type::Event(_), Value::Map(_)) => true,
        (Type::Optional(_), Value::Null) => true,
        (Type::Optional(t), v) => conforms(v, t),
        (Type::Null, Value::Null)
        | (Type::Bool, Value::Bool(_))
        | (Type::Int, Value::Int(_))
        | (Type::Float, Value::Float(_))
        | (Type::Str, Value::Str(_))
        | (Type::Timestamp, Value::Timestamp(_))
        | (Type::Duration, Value::Duration(_) | Value::Int(_))
        | (Type::Map(..), Value::Map(_))
        | (Type::Tuple(_), Value::Array(_)) => true,
        (Type::Array(t), Value::Array(a)) => a.iter().all(|x| conforms(x, t)),
        _ => false,
    }
}

fn render_type(ty: &Type) -> String {
    match ty {
        Type::Any => "any".into(),
        Type::Null => "null".into(),
        Type::Bool => "bool".into(),
        Type::Int => "int".into(),
        Type::Float => "float".into(),
        Type::Str => "str".into(),
        Type::Timestamp => "timestamp".into(),
        Type::Duration => "duration".into(),
        Type::Array(t) => format!("[{}]", render_type(t)),
        Type::Map(k, v) => format!("{{{}: {}}}", render_type(k), render_type(v)),
        Type::Tuple(ts) => format!(
            "({})",
            ts.iter().map(render_type).collect::<Vec<_>>().join(", ")
        ),
        Type::Optional(t) => format!("{}?", render_type(t)),
        Type::Event(id) => format!("event #{id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{EventSchema, FieldDef};

    fn program() -> Program {
        let mut reading = EventSchema::with_fields("Reading", SchemaOrigin::Declared, &[]);
        reading.fields = vec![
            FieldDef {
                name: "pump".into(),
                ty: Type::Str,
            },
            FieldDef {
                name: "bar".into(),
                ty: Type::Float,
            },
            FieldDef {
                name: "at".into(),
                ty: Type::Timestamp,
            },
        ];
        let mut open = EventSchema::with_fields("Open", SchemaOrigin::Declared, &["a"]);
        open.keep_extra = true;
        Program {
            schemas: vec![
                reading,
                open,
                EventSchema::with_fields("S", SchemaOrigin::Stream, &["x"]),
            ],
            ..Program::default()
        }
    }

    fn raw(t: &str, fields: &[(&str, Value)]) -> RawEvent {
        RawEvent {
            event_type: t.into(),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            timestamp: None,
        }
    }

    #[test]
    fn declared_fields_go_to_slots_with_coercion() {
        let d = EventDecoder::new(&program());
        let mut w = Vec::new();
        let e = d
            .decode(
                &raw(
                    "Reading",
                    &[
                        ("bar", Value::Int(7)),
                        ("pump", Value::str("P1")),
                        ("at", Value::str("1970-01-01T00:00:01Z")),
                        ("junk", Value::Int(1)),
                    ],
                ),
                5,
                &mut w,
            )
            .expect("decodes");
        assert_eq!(e.type_id, 0);
        assert_eq!(e.time, 5);
        assert_eq!(
            e.fields,
            vec![
                Some(Value::str("P1")),
                Some(Value::Float(7.0)),
                Some(Value::Timestamp(1_000_000_000))
            ]
        );
        assert!(e.extra.is_none(), "undeclared fields dropped");
        assert!(w.is_empty());
    }

    #[test]
    fn wrong_types_are_reported_and_kept() {
        let d = EventDecoder::new(&program());
        let mut w = Vec::new();
        let e = d
            .decode(&raw("Reading", &[("bar", Value::str("high"))]), 0, &mut w)
            .expect("decodes");
        assert_eq!(e.fields[1], Some(Value::str("high")));
        assert_eq!(w.len(), 1);
        assert!(w[0].to_string().contains("expects float, got string"));
    }

    #[test]
    fn extras_are_kept_when_the_schema_asks_and_unknown_types_fail() {
        let d = EventDecoder::new(&program());
        let mut w = Vec::new();
        let e = d
            .decode(
                &raw("Open", &[("a", Value::Int(1)), ("b", Value::Int(2))]),
                0,
                &mut w,
            )
            .expect("decodes");
        assert_eq!(e.get_extra("b"), Some(&Value::Int(2)));
        assert_eq!(
            d.decode(&raw("Nope", &[]), 0, &mut w),
            Err(DecodeError::UnknownType("Nope".into()))
        );
        assert!(
            d.type_id("S").is_none(),
            "stream schemas do not accept input"
        );
    }
}

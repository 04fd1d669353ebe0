//! Event schemas: the field layout ("slots") of every event type and stream
//! output in a [`crate::Program`].
//!
//! At run time an event's fields live in a vector indexed by the schema's
//! field index; names are only used when decoding input and naming output.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Index into [`crate::Program::schemas`]; also an [`crate::Event`]'s type id.
pub type SchemaId = u32;

/// Declared types (docs/LANGUAGE.md#types). Types are hints at run time: the engine
/// uses them only to coerce decoded input (an int read into a `float` field
/// becomes a float, an RFC 3339 string read into a `timestamp` field becomes a
/// timestamp) and to report mismatches when decoding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Type {
    /// Unknown or unconstrained.
    Any,
    /// `null` only.
    Null,
    /// `bool`.
    Bool,
    /// `int`.
    Int,
    /// `float`.
    Float,
    /// `str`.
    Str,
    /// `timestamp`.
    Timestamp,
    /// `duration`.
    Duration,
    /// `[T]`.
    Array(Box<Type>),
    /// `{K: V}`.
    Map(Box<Type>, Box<Type>),
    /// `(T1, T2, ...)`, stored as an array.
    Tuple(Vec<Type>),
    /// `T?`: the field may be absent or null.
    Optional(Box<Type>),
    /// A user event type, stored as a map.
    Event(SchemaId),
}

/// One field of a schema.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldDef {
    /// Field name, as written.
    pub name: Arc<str>,
    /// Declared (or inferred) type.
    pub ty: Type,
}

/// Where a schema comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SchemaOrigin {
    /// An `event Name:` declaration (fields include inherited ones first).
    Declared,
    /// A source type used without a declaration (W030): the compiler lists the
    /// fields the program reads; other input fields go to the overflow.
    Undeclared,
    /// The output layout of a stream (named after the stream), or of an
    /// operator inside it (`select`, `emit`, `aggregate`, join, merge).
    Stream,
    /// Tick events of a `timer(...)` source (`Timer_<stream>`).
    Timer,
}

/// The layout of one event type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventSchema {
    /// Type name (event type or stream name); what outputs report as
    /// `event_type`.
    pub name: Arc<str>,
    /// Fields in slot order.
    pub fields: Vec<FieldDef>,
    /// Where the schema comes from.
    pub origin: SchemaOrigin,
    /// Whether input fields not listed in `fields` are kept in the event's
    /// overflow ([`crate::Event::extra`]). The compiler sets this when some
    /// consumer passes raw events through (`.emit()` with no arguments, a sink
    /// of unprojected events) or for undeclared types. When false, undeclared
    /// input fields are dropped at decode time, which keeps events small.
    pub keep_extra: bool,
}

impl EventSchema {
    /// A schema with the given fields, all typed [`Type::Any`].
    pub fn with_fields(name: &str, origin: SchemaOrigin, fields: &[&str]) -> EventSchema {
        EventSchema {
            name: Arc::from(name),
            fields: fields
                .iter()
                .map(|f| FieldDef {
                    name: Arc::from(*f),
                    ty: Type::Any,
                })
                .collect(),
            origin,
            keep_extra: false,
        }
    }

    /// The slot of a field by name (linear scan: use at load/decode set-up,
    /// not per event).
    pub fn slot(&self, name: &str) -> Option<u16> {
        self.fields
            .iter()
            .position(|f| &*f.name == name)
            .and_then(|i| u16::try_from(i).ok())
    }
}

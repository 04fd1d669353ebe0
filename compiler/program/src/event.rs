//! The run-time event: a type id, an event time and field values in slots.

use crate::schema::SchemaId;
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Undeclared input fields kept for pass-through, in input order.
pub type Extra = Vec<(Arc<str>, Value)>;

/// One event inside the engine.
///
/// `fields[i]` holds the value of the schema's field `i`; `None` means the
/// field is absent ("no value", docs/LANGUAGE.md#missing-values-and-null), which is different from
/// `Some(Value::Null)`. There are no string-keyed maps on the hot path: the
/// compiler resolves every field reference to a slot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Index of the event's schema in [`crate::Program::schemas`].
    pub type_id: SchemaId,
    /// Event time in nanoseconds since the Unix epoch.
    pub time: i64,
    /// Field values by slot; shorter than the schema means trailing fields
    /// are absent.
    pub fields: Vec<Option<Value>>,
    /// Undeclared input fields, kept only when the schema asks for them
    /// ([`crate::EventSchema::keep_extra`]); `None` when there are none.
    pub extra: Option<Box<Extra>>,
}

impl Event {
    /// An event with the given slots and no overflow.
    pub fn new(type_id: SchemaId, time: i64, fields: Vec<Option<Value>>) -> Event {
        Event {
            type_id,
            time,
            fields,
            extra: None,
        }
    }

    /// The value in `slot`, or `None` when absent.
    #[inline]
    pub fn get(&self, slot: u16) -> Option<&Value> {
        self.fields.get(usize::from(slot)).and_then(Option::as_ref)
    }

    /// An undeclared field from the overflow, by name.
    pub fn get_extra(&self, name: &str) -> Option<&Value> {
        self.extra
            .as_ref()?
            .iter()
            .find(|(k, _)| &**k == name)
            .map(|(_, v)| v)
    }
}

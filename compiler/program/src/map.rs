//! `.map(name: expr, ...)` (docs/LANGUAGE.md#map): the event with fields
//! added or replaced, every other field kept.

use crate::bytecode::Chunk;
use crate::schema::SchemaId;
use serde::{Deserialize, Serialize};

/// `.map(...)`: a new event of `schema` (same time) whose slots are the
/// items' values where an item names them, and otherwise the input event's
/// field of the same name (from its slot, or from its undeclared overflow,
/// which the output keeps too).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MapSpec {
    /// `(output slot, value)` per item, evaluated on the input event; an
    /// item without a value leaves the field absent.
    pub items: Vec<(u16, Chunk)>,
    /// The output layout: the input's fields in their slots, then the added
    /// ones (and, for an open input, fields read later).
    pub schema: SchemaId,
}

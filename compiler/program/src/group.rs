//! Operators over one window's released group (docs/LANGUAGE.md#window-group-operators):
//! `.order_by`, `.collect`, `.any` and `.all`.
//!
//! They are written right after `.window(...)` (or after one another) and
//! act on the events one window releases together, which a record-at-a-time
//! operator cannot see; the VM runs them inside the window's release
//! (`varpulis_vm::windows::group`), before a fused `.aggregate`.

use crate::bytecode::Chunk;
use crate::schema::SchemaId;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One operator on a released window group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum GroupOp {
    /// `.order_by(k, desc(k2), ...)`: the group's events in key order,
    /// stable (ties keep arrival order); events without a key value come
    /// last in either direction.
    OrderBy(Vec<SortKey>),
    /// `.collect(as: name)`: one event per group whose field holds the
    /// group's events as an array of maps.
    Collect(CollectSpec),
    /// `.any(cond)`: the group's last event, when `cond` is `true` for at
    /// least one event of the group.
    Any(Chunk),
    /// `.all(cond)`: the group's last event, when `cond` is `true` for every
    /// event of the group.
    All(Chunk),
}

/// One key of `.order_by`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SortKey {
    /// The key, evaluated on each event of the group.
    pub key: Chunk,
    /// `desc(k)`: largest first.
    pub descending: bool,
}

/// `.collect(as: name)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CollectSpec {
    /// Output layout: slot 0 holds the array of events; `key_slot` (when
    /// set) the partition key.
    pub schema: SchemaId,
    /// The slot receiving the partition key value under the key's own name.
    pub key_slot: Option<u16>,
    /// Field name of the array (for `:why` and formatting).
    pub field: Arc<str>,
}

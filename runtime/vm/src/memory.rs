//! Per-operator state size: what [`crate::Engine::memory`] reports.
//!
//! Byte figures are estimates, cheap enough to take at every metrics
//! scrape: each operator counts its keys, open runs and buffered events and
//! multiplies them by fixed per-item costs (below), and an operator with
//! more than [`SAMPLE`] keys measures the events of the first [`SAMPLE`]
//! and scales, instead of walking every key. Values inside events (string
//! bodies, arrays) are not followed. The figures are for spotting growth and
//! comparing operators, not for accounting (docs/RUNTIME.md, "State size").

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use varpulis_program::{Event, Value};

/// Keys measured before an estimate is scaled up.
pub const SAMPLE: usize = 1024;

/// Estimated cost of one key in a keyed map: the hash-table slot, the key
/// value and the per-key struct around the state.
pub const KEY_BYTES: u64 = 96;

/// Estimated cost of one open sequence run (its slots and bindings list).
pub const RUN_BYTES: u64 = 160;

/// Evictions of a bounded key set, by cause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evictions {
    /// Keys removed at `max_keys` under `evict: lru`.
    pub lru: u64,
    /// Keys removed at `max_keys` under `evict: fifo`.
    pub fifo: u64,
    /// Keys removed by `idle:` (no event for that long in event time).
    pub idle: u64,
}

impl Evictions {
    /// All evictions.
    pub fn total(&self) -> u64 {
        self.lru + self.fifo + self.idle
    }

    /// Adds another operator's counts.
    pub fn add(&mut self, o: &Evictions) {
        self.lru += o.lru;
        self.fifo += o.fifo;
        self.idle += o.idle;
    }
}

/// The state of one operator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpMemory {
    /// Index of the operator in the stream's plan (`StreamPlan::ops`).
    pub index: usize,
    /// What it is: `partition_by`, `window`, `sequence`, `distinct`, `join`,
    /// `limit`.
    pub kind: &'static str,
    /// Approximate bytes held (see the module docs).
    pub bytes: u64,
    /// Keys held: partitions with open state, remembered distinct values,
    /// joined keys.
    pub keys: u64,
    /// Open sequence runs (0 for other operators).
    pub runs: u64,
    /// Keys evicted by a state bound.
    pub evictions: Evictions,
}

/// The state of one stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamMemory {
    /// The stream's name.
    pub stream: Arc<str>,
    /// Its stateful operators (stateless ones are left out).
    pub ops: Vec<OpMemory>,
}

impl StreamMemory {
    /// Approximate bytes of every operator of the stream.
    pub fn bytes(&self) -> u64 {
        self.ops.iter().map(|o| o.bytes).sum()
    }

    /// Keys of every operator of the stream.
    pub fn keys(&self) -> u64 {
        self.ops.iter().map(|o| o.keys).sum()
    }

    /// Open runs of every sequence of the stream.
    pub fn runs(&self) -> u64 {
        self.ops.iter().map(|o| o.runs).sum()
    }
}

/// Estimated bytes of one event held in state.
pub fn event_bytes(ev: &Event) -> u64 {
    let fields = ev.fields.len() * std::mem::size_of::<Option<Value>>();
    (std::mem::size_of::<Event>() + fields + 16) as u64
}

/// Estimated bytes of `len` entries from an iterator over them, measuring
/// at most [`SAMPLE`] with `size` and scaling the rest.
pub fn sampled<T>(len: usize, items: impl Iterator<Item = T>, size: impl Fn(T) -> u64) -> u64 {
    let mut seen = 0u64;
    let mut total = 0u64;
    for item in items.take(SAMPLE) {
        seen += 1;
        total = total.saturating_add(size(item));
    }
    if seen == 0 {
        return 0;
    }
    let len = len as u64;
    if len <= seen {
        total
    } else {
        (total / seen).saturating_mul(len)
    }
}

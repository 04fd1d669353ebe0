//! Windows (docs/LANGUAGE.md#window), one file per kind.
//!
//! Anchoring follows the reference (a tumbling window starts at its first
//! event; an event past the end releases the window and anchors the next),
//! and in addition time windows and sessions close when the watermark passes
//! their end, through a per-operator timer queue. Released groups go either
//! downstream as individual events or, when `.aggregate` follows the window,
//! into the accumulators of [`crate::ops::aggregate`] (fused: tumbling,
//! count and session windows aggregate incrementally and buffer nothing).
//! The window group operators written right after the window (`.order_by`,
//! `.collect`, `.any`, `.all`, [`group`]) run on each released group first;
//! a window with them buffers its events even when an aggregate follows.

pub mod count;
pub mod group;
pub mod session;
pub mod sliding;
pub mod sliding_count;
pub mod tumbling;

use crate::ops::aggregate::{AccState, Aggregator, PlainArgs};
use crate::ops::pattern::PatternRt;
use crate::ops::{Cx, PartKey, Rec};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use varpulis_program::Value;

/// The contents of one open window.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Group {
    /// Buffered events, oldest first (no aggregate follows).
    Buffer(VecDeque<Rec>),
    /// Accumulators (an aggregate follows).
    Acc(AccState),
}

/// What a window does with released groups.
pub struct GroupSink {
    agg: Option<Aggregator>,
    /// `.pattern(...)` right after the window: tests each released group.
    pattern: Option<PatternRt>,
    /// `.window(..., max_events: n)`: events (or values, in accumulators
    /// that keep them) per group; one more drops the oldest.
    max_events: Option<usize>,
    /// Events dropped by `max_events` (counted as FIFO evictions).
    dropped: u64,
    /// `.order_by`, `.collect`, `.any`, `.all` after the window, run on each
    /// released group before the aggregate ([`group`]); with any, groups
    /// buffer their events even when an aggregate follows.
    group_ops: Vec<varpulis_program::GroupOp>,
    /// The accumulators of the last group folded from rows
    /// ([`GroupSink::release_rows`]), emptied and reused by the next.
    spare: Option<AccState>,
}

impl GroupSink {
    /// Released events flow on individually.
    pub fn pass_through() -> GroupSink {
        GroupSink {
            agg: None,
            pattern: None,
            max_events: None,
            dropped: 0,
            group_ops: Vec::new(),
            spare: None,
        }
    }

    /// Released groups go whole to a `.pattern` test, which passes at most
    /// one event per group.
    pub fn pattern(test: PatternRt) -> GroupSink {
        GroupSink {
            agg: None,
            pattern: Some(test),
            max_events: None,
            dropped: 0,
            group_ops: Vec::new(),
            spare: None,
        }
    }

    /// The `.pattern` test's counters (groups tested, groups matched).
    pub fn pattern_counts(&self) -> Option<(u64, u64)> {
        self.pattern.as_ref().map(|p| (p.tested, p.matched))
    }

    /// Released groups are aggregated into one event each.
    pub fn aggregate(agg: Aggregator) -> GroupSink {
        GroupSink {
            agg: Some(agg),
            pattern: None,
            max_events: None,
            dropped: 0,
            group_ops: Vec::new(),
            spare: None,
        }
    }

    /// Bounds every group to `max` events (docs/LANGUAGE.md#bounded-state).
    pub fn with_max_events(mut self, max: Option<u64>) -> GroupSink {
        self.max_events = max.map(|n| usize::try_from(n).unwrap_or(usize::MAX).max(1));
        self
    }

    /// Runs `ops` on every released group (docs/LANGUAGE.md#window-group-operators).
    pub fn with_group_ops(mut self, ops: Vec<varpulis_program::GroupOp>) -> GroupSink {
        self.group_ops = ops;
        self
    }

    /// The bound on events per group, if any.
    pub fn max_events(&self) -> Option<usize> {
        self.max_events
    }

    /// Events dropped by the bound so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Counts `n` more events dropped by the bound (a window that buffers
    /// events itself, or a restored count).
    pub fn count_dropped(&mut self, n: u64) {
        self.dropped = self.dropped.saturating_add(n);
    }

    /// Restores the count of dropped events from a snapshot.
    pub fn set_dropped(&mut self, n: u64) {
        self.dropped = n;
    }

    /// The operator's state size with the drops as FIFO evictions.
    pub fn with_evictions(&self, mut m: crate::memory::OpMemory) -> crate::memory::OpMemory {
        m.evictions.fifo = self.dropped;
        m
    }

    /// An empty group.
    pub fn new_group(&self) -> Group {
        match &self.agg {
            Some(a) if self.group_ops.is_empty() => Group::Acc(a.new_state()),
            _ => Group::Buffer(VecDeque::new()),
        }
    }

    /// Adds an event to a group; at `max_events` the group's oldest event
    /// goes (or the oldest value of the accumulators that keep values).
    pub fn add(&mut self, g: &mut Group, rec: Rec, cx: &mut Cx<'_>) {
        match (g, &self.agg) {
            (Group::Acc(st), Some(a)) => {
                if a.update_capped(st, &rec.ev, cx, self.max_events) {
                    self.dropped += 1;
                }
            }
            (Group::Buffer(v), _) => {
                v.push_back(rec);
                if self.max_events.is_some_and(|max| v.len() > max) {
                    v.pop_front();
                    self.dropped += 1;
                }
            }
            // A group restored from a snapshot of another program shape.
            (Group::Acc(_), None) => {}
        }
    }

    /// Releases a group downstream (nothing for an empty group). An
    /// aggregate output is stamped `end` (the window's end), or with the time
    /// of its last event when `end` is `None` (count windows); released
    /// events keep their own times.
    pub fn release(
        &mut self,
        g: Group,
        key: &PartKey,
        end: Option<i64>,
        cx: &mut Cx<'_>,
        out: &mut Vec<Rec>,
    ) {
        let g = match g {
            Group::Buffer(v) if !self.group_ops.is_empty() => {
                let recs = group::run(&self.group_ops, v.into(), key, end, cx);
                return self.release_grouped(recs, key, end, cx, out);
            }
            g => g,
        };
        match (g, &self.agg) {
            (Group::Acc(st), Some(a)) => out.extend(a.finish(&st, key, end, cx)),
            (Group::Buffer(v), None) => match &mut self.pattern {
                Some(p) => p.release(v.iter(), cx, out),
                None => out.extend(v),
            },
            (Group::Buffer(v), Some(a)) => self.release_all(v.iter(), key, end, cx, out, a),
            (Group::Acc(_), None) => {}
        }
    }

    /// Releases copies of buffered events (sliding windows keep them); `end`
    /// as for [`GroupSink::release`].
    pub fn release_copies<'a>(
        &mut self,
        recs: impl ExactSizeIterator<Item = &'a Rec> + Clone,
        key: &PartKey,
        end: Option<i64>,
        cx: &mut Cx<'_>,
        out: &mut Vec<Rec>,
    ) {
        if !self.group_ops.is_empty() {
            let recs = group::run(&self.group_ops, recs.cloned().collect(), key, end, cx);
            return self.release_grouped(recs, key, end, cx, out);
        }
        match (&self.agg, &mut self.pattern) {
            (Some(a), _) => self.release_all(recs, key, end, cx, out, a),
            (None, Some(p)) => p.release(recs, cx, out),
            (None, None) => out.extend(recs.cloned()),
        }
    }

    /// Sends what the group operators left downstream, through the
    /// aggregate when one follows.
    fn release_grouped(
        &self,
        recs: Vec<Rec>,
        key: &PartKey,
        end: Option<i64>,
        cx: &mut Cx<'_>,
        out: &mut Vec<Rec>,
    ) {
        match &self.agg {
            Some(a) if !recs.is_empty() => self.release_all(recs.iter(), key, end, cx, out, a),
            Some(_) => {}
            None => out.extend(recs),
        }
    }

    /// Where the aggregate's arguments come from when a released group can be folded from rows
    /// of them ([`GroupSink::release_rows`]): an aggregate follows directly, with no group
    /// operator or pattern test in between, and reads only plain fields.
    pub fn plain_args(&self) -> Option<PlainArgs> {
        if !self.group_ops.is_empty() || self.pattern.is_some() {
            return None;
        }
        self.agg.as_ref()?.plain_args()
    }

    /// Releases `n` buffered events through the aggregate from their rows of `plain` (`rows`:
    /// `n` rows of `plain.slots.len()` values, oldest first), the last of them at `last_time`:
    /// what [`GroupSink::release_copies`] of the events gives, without reading them.
    #[allow(clippy::too_many_arguments)]
    pub fn release_rows(
        &mut self,
        plain: &PlainArgs,
        rows: &[Option<Value>],
        n: usize,
        last_time: i64,
        key: &PartKey,
        end: Option<i64>,
        cx: &mut Cx<'_>,
        out: &mut Vec<Rec>,
    ) {
        let Some(a) = &self.agg else {
            return;
        };
        let width = plain.slots.len();
        let mut st = match self.spare.take() {
            Some(mut st) => {
                a.reset(&mut st);
                st
            }
            None => a.new_state(),
        };
        for i in 0..n {
            let row = rows.get(i * width..(i + 1) * width).unwrap_or_default();
            a.update_row(&mut st, plain, row);
        }
        st.last_time = last_time;
        out.extend(a.finish(&st, key, end, cx));
        self.spare = Some(st);
    }

    fn release_all<'a>(
        &self,
        recs: impl Iterator<Item = &'a Rec>,
        key: &PartKey,
        end: Option<i64>,
        cx: &mut Cx<'_>,
        out: &mut Vec<Rec>,
        a: &Aggregator,
    ) {
        let mut st = a.new_state();
        for r in recs {
            a.update(&mut st, &r.ev, cx);
        }
        out.extend(a.finish(&st, key, end, cx));
    }
}

/// One pending timer: fires when the watermark reaches `due`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    /// Watermark at which it fires.
    pub due: i64,
    /// Unique, increasing id; ties on `due` fire in scheduling order.
    pub seq: u64,
    /// The window's partition.
    pub key: PartKey,
}

impl Ord for Timer {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A min-queue of timers. Window states remember the `seq` of their one
/// pending timer; a popped timer whose seq no longer matches is stale and
/// ignored, so the queue holds at most one live timer per open window.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Timers {
    heap: BinaryHeap<Reverse<Timer>>,
    next_seq: u64,
}

impl Timers {
    /// Schedules a timer and returns its seq.
    pub fn schedule(&mut self, due: i64, key: PartKey) -> u64 {
        self.next_seq += 1;
        let seq = self.next_seq;
        self.heap.push(Reverse(Timer { due, seq, key }));
        seq
    }

    /// The earliest due time.
    pub fn next(&self) -> Option<i64> {
        self.heap.peek().map(|t| t.0.due)
    }

    /// Pops the earliest timer if it is due at `wm`.
    pub fn pop_due(&mut self, wm: i64) -> Option<Timer> {
        if self.next()? <= wm {
            self.heap.pop().map(|t| t.0)
        } else {
            None
        }
    }

    /// A fresh sequence number (orders windows created without a timer).
    pub fn bump(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }
}

impl Group {
    /// Approximate bytes held (crate::memory): buffered events priced by
    /// the first one, accumulators by their parts.
    pub fn bytes(&self) -> u64 {
        match self {
            Group::Buffer(v) => v.front().map_or(0, |r| {
                crate::memory::event_bytes(&r.ev).saturating_mul(v.len() as u64)
            }),
            Group::Acc(st) => st.bytes(),
        }
    }
}

/// Approximate bytes of buffered records, priced by the first one.
pub fn buffer_bytes<'a>(mut recs: impl ExactSizeIterator<Item = &'a Rec>) -> u64 {
    let n = recs.len() as u64;
    recs.next()
        .map_or(0, |r| crate::memory::event_bytes(&r.ev).saturating_mul(n))
}

/// The state size of a window operator keeping `S` per key.
pub fn keyed_memory<S>(
    map: &rustc_hash::FxHashMap<PartKey, S>,
    size: impl Fn(&S) -> u64,
) -> crate::memory::OpMemory {
    let keys = map.len() as u64;
    let state = crate::memory::sampled(map.len(), map.values(), size);
    crate::memory::OpMemory {
        bytes: keys
            .saturating_mul(crate::memory::KEY_BYTES)
            .saturating_add(state),
        keys,
        ..crate::memory::OpMemory::default()
    }
}

/// Whether a counter is zero (left out of snapshots, which then match those
/// of versions without it).
pub fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Serialisable form of a keyed state map: the entries as a list.
pub type Entries<S> = Vec<(PartKey, S)>;

/// The entries of a keyed state map, for a snapshot.
pub fn entries<S: Clone>(map: &rustc_hash::FxHashMap<PartKey, S>) -> Entries<S> {
    map.iter().map(|(k, w)| (k.clone(), w.clone())).collect()
}

#[cfg(test)]
mod tests;

//! Sliding count windows, `.window(n, sliding: m)`: the last n events of a
//! partition are kept; once n are present they are released, and again every
//! m arrivals after that.

use super::{Entries, GroupSink};
use crate::ops::{decode, encode, Cx, Operator, PartKey, Rec, StateResult};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use varpulis_program::ValueKey;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Win {
    buf: VecDeque<Rec>,
    since_release: u64,
    released: bool,
}

/// `.window(n, sliding: m)`.
pub struct SlidingCount {
    size: usize,
    slide: u64,
    sink: GroupSink,
    wins: FxHashMap<PartKey, Win>,
}

impl SlidingCount {
    /// Keeps `size` events, releases every `slide` arrivals (both ≥ 1).
    pub fn new(size: u64, slide: u64, sink: GroupSink) -> SlidingCount {
        SlidingCount {
            size: usize::try_from(size.max(1)).unwrap_or(usize::MAX),
            slide: slide.max(1),
            sink,
            wins: FxHashMap::default(),
        }
    }
}

impl Operator for SlidingCount {
    fn pattern_counts(&self) -> Option<(u64, u64)> {
        self.sink.pattern_counts()
    }

    fn process(&mut self, rec: Rec, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        let key = rec.key.clone();
        let w = self.wins.entry(key.clone()).or_default();
        w.buf.push_back(rec);
        if w.buf.len() > self.size {
            w.buf.pop_front();
        }
        w.since_release += 1;
        if w.buf.len() == self.size && (!w.released || w.since_release >= self.slide) {
            w.released = true;
            w.since_release = 0;
            self.sink.release_copies(w.buf.iter(), &key, None, cx, out);
        }
    }

    fn inspect(&self) -> Vec<crate::inspect::WindowState> {
        self.wins
            .iter()
            .map(|(k, w)| crate::inspect::WindowState::new(k, w.buf.len() as u64, None, None))
            .collect()
    }

    fn evict_key(&mut self, key: &ValueKey) {
        self.wins.remove(&Some(key.clone()));
    }

    fn memory(&self) -> Option<crate::memory::OpMemory> {
        Some(super::keyed_memory(&self.wins, |w| {
            48 + super::buffer_bytes(w.buf.iter())
        }))
    }

    fn save(&self) -> StateResult<Option<Vec<u8>>> {
        let e: Entries<Win> = super::entries(&self.wins);
        encode(&e)
    }

    fn load(&mut self, bytes: &[u8]) -> StateResult<()> {
        let e: Entries<Win> = decode(bytes)?;
        self.wins = e.into_iter().collect();
        Ok(())
    }
}

//! Tumbling count windows, `.window(n)`: every n-th event of a partition
//! releases the n buffered events. Incomplete windows are released at end of
//! input only when the engine is configured to flush partial windows.

use super::{Entries, Group, GroupSink, Timers};
use crate::ops::{decode, encode, Cx, Operator, PartKey, Rec, StateResult};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use varpulis_program::ValueKey;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Win {
    n: u64,
    group: Group,
    /// Creation order, so partial flushes are deterministic.
    order: u64,
}

/// `.window(n)`.
pub struct Count {
    size: u64,
    sink: GroupSink,
    wins: FxHashMap<PartKey, Win>,
    seq: Timers,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    wins: Entries<Win>,
    seq: Timers,
}

impl Count {
    /// A count window of `size` events (at least one).
    pub fn new(size: u64, sink: GroupSink) -> Count {
        Count {
            size: size.max(1),
            sink,
            wins: FxHashMap::default(),
            seq: Timers::default(),
        }
    }
}

impl Operator for Count {
    fn pattern_counts(&self) -> Option<(u64, u64)> {
        self.sink.pattern_counts()
    }

    fn process(&mut self, rec: Rec, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        let key = rec.key.clone();
        let w = match self.wins.get_mut(&key) {
            Some(w) => w,
            None => {
                let order = self.seq.bump();
                self.wins.entry(key.clone()).or_insert(Win {
                    n: 0,
                    group: self.sink.new_group(),
                    order,
                })
            }
        };
        self.sink.add(&mut w.group, rec, cx);
        w.n += 1;
        if w.n >= self.size {
            // A released window frees its key: the next event of the key
            // opens a new one.
            if let Some(w) = self.wins.remove(&key) {
                self.sink.release(w.group, &key, None, cx, out);
            }
        }
    }

    fn evict_key(&mut self, key: &ValueKey) {
        self.wins.remove(&Some(key.clone()));
    }

    fn memory(&self) -> Option<crate::memory::OpMemory> {
        Some(super::keyed_memory(&self.wins, |w| 32 + w.group.bytes()))
    }

    fn inspect(&self) -> Vec<crate::inspect::WindowState> {
        self.wins
            .iter()
            .filter(|(_, w)| w.n > 0)
            .map(|(k, w)| crate::inspect::WindowState::new(k, w.n, None, None))
            .collect()
    }

    fn flush_partial(&mut self, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        let mut open: Vec<(PartKey, Win)> = self.wins.drain().filter(|(_, w)| w.n > 0).collect();
        open.sort_by_key(|(_, w)| w.order);
        for (k, w) in open {
            self.sink.release(w.group, &k, None, cx, out);
        }
    }

    fn save(&self) -> StateResult<Option<Vec<u8>>> {
        encode(&Saved {
            wins: super::entries(&self.wins),
            seq: self.seq.clone(),
        })
    }

    fn load(&mut self, bytes: &[u8]) -> StateResult<()> {
        let s: Saved = decode(bytes)?;
        self.wins = s.wins.into_iter().collect();
        self.seq = s.seq;
        Ok(())
    }
}

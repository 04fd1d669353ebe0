//! Tumbling time windows, `.window(d)`.
//!
//! REF anchoring: the first event of a partition fixes `start = ts`; an event
//! with `ts ≥ start + d` releases the buffered events (not itself) and opens
//! the next window with `start = ts`. In addition the window closes when the
//! watermark reaches `start + d` (no later non-late event can belong to it);
//! the next event then anchors a new window, exactly as REF would.

use super::{Entries, Group, GroupSink, Timers};
use crate::ops::{decode, encode, Cx, Operator, PartKey, Rec, StateResult};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Win {
    start: i64,
    group: Group,
    /// Seq of this partition's pending timer.
    timer: u64,
}

/// `.window(d)`.
pub struct Tumbling {
    size: i64,
    sink: GroupSink,
    wins: FxHashMap<PartKey, Win>,
    timers: Timers,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    wins: Entries<Win>,
    timers: Timers,
}

impl Tumbling {
    /// A tumbling window of `size` ns.
    pub fn new(size: i64, sink: GroupSink) -> Tumbling {
        Tumbling {
            size: size.max(1),
            sink,
            wins: FxHashMap::default(),
            timers: Timers::default(),
        }
    }
}

impl Operator for Tumbling {
    fn process(&mut self, rec: Rec, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        let t = rec.ev.time;
        let key = rec.key.clone();
        match self.wins.get_mut(&key) {
            Some(w) if t >= w.start.saturating_add(self.size) => {
                let old = std::mem::replace(&mut w.group, self.sink.new_group());
                w.start = t;
                self.sink.release(old, &key, cx, out);
                self.sink.add(&mut w.group, rec, cx);
                // The pending timer (due at the old end) stays valid: when it
                // fires it sees the new end and re-arms itself.
            }
            Some(w) => self.sink.add(&mut w.group, rec, cx),
            None => {
                let mut group = self.sink.new_group();
                self.sink.add(&mut group, rec, cx);
                let timer = self
                    .timers
                    .schedule(t.saturating_add(self.size), key.clone());
                self.wins.insert(
                    key,
                    Win {
                        start: t,
                        group,
                        timer,
                    },
                );
            }
        }
    }

    fn on_watermark(&mut self, wm: i64, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        while let Some(tm) = self.timers.pop_due(wm) {
            let Some(w) = self.wins.get_mut(&tm.key) else {
                continue;
            };
            if w.timer != tm.seq {
                continue;
            }
            let end = w.start.saturating_add(self.size);
            if end <= wm {
                if let Some(w) = self.wins.remove(&tm.key) {
                    self.sink.release(w.group, &tm.key, cx, out);
                }
            } else {
                w.timer = self.timers.schedule(end, tm.key);
            }
        }
    }

    fn next_timer(&self) -> Option<i64> {
        self.timers.next()
    }

    fn save(&self) -> StateResult<Option<Vec<u8>>> {
        encode(&Saved {
            wins: self
                .wins
                .iter()
                .map(|(k, w)| (k.clone(), w.clone()))
                .collect(),
            timers: self.timers.clone(),
        })
    }

    fn load(&mut self, bytes: &[u8]) -> StateResult<()> {
        let s: Saved = decode(bytes)?;
        self.wins = s.wins.into_iter().collect();
        self.timers = s.timers;
        Ok(())
    }
}

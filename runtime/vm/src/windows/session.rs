//! Session windows, `.window(session: g)`.
//!
//! REF: an event with `ts − last > g` releases the current session and starts
//! a new one. In addition a session closes when the watermark passes
//! `last + g` (strictly: an event at exactly `last + g` still joins it).

use super::{Entries, Group, GroupSink, Timers};
use crate::ops::{decode, encode, Cx, Operator, PartKey, Rec, StateResult};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use varpulis_program::ValueKey;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Sess {
    last: i64,
    group: Group,
    timer: u64,
}

/// `.window(session: g)`.
pub struct Session {
    gap: i64,
    sink: GroupSink,
    open: FxHashMap<PartKey, Sess>,
    timers: Timers,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    open: Entries<Sess>,
    timers: Timers,
    /// Events dropped by `max_events:` (absent in older snapshots and when 0).
    #[serde(default, skip_serializing_if = "super::is_zero")]
    dropped: u64,
}

impl Session {
    /// A session window with inactivity gap `gap` ns.
    pub fn new(gap: i64, sink: GroupSink) -> Session {
        Session {
            gap: gap.max(0),
            sink,
            open: FxHashMap::default(),
            timers: Timers::default(),
        }
    }

    fn due(&self, last: i64) -> i64 {
        last.saturating_add(self.gap).saturating_add(1)
    }
}

impl Operator for Session {
    fn pattern_counts(&self) -> Option<(u64, u64)> {
        self.sink.pattern_counts()
    }

    fn process(&mut self, rec: Rec, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        let t = rec.ev.time;
        let key = rec.key.clone();
        match self.open.get_mut(&key) {
            Some(s) if t.saturating_sub(s.last) > self.gap => {
                let old = std::mem::replace(&mut s.group, self.sink.new_group());
                let end = s.last.saturating_add(self.gap);
                s.last = t;
                self.sink.release(old, &key, Some(end), cx, out);
                self.sink.add(&mut s.group, rec, cx);
            }
            Some(s) => {
                s.last = s.last.max(t);
                self.sink.add(&mut s.group, rec, cx);
            }
            None => {
                let mut group = self.sink.new_group();
                self.sink.add(&mut group, rec, cx);
                let timer = self.timers.schedule(self.due(t), key.clone());
                self.open.insert(
                    key,
                    Sess {
                        last: t,
                        group,
                        timer,
                    },
                );
            }
        }
    }

    fn on_watermark(&mut self, wm: i64, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        while let Some(tm) = self.timers.pop_due(wm) {
            let Some(s) = self.open.get_mut(&tm.key) else {
                continue;
            };
            if s.timer != tm.seq {
                continue;
            }
            let due = s.last.saturating_add(self.gap).saturating_add(1);
            if due <= wm {
                if let Some(s) = self.open.remove(&tm.key) {
                    let end = s.last.saturating_add(self.gap);
                    self.sink.release(s.group, &tm.key, Some(end), cx, out);
                }
            } else {
                s.timer = self.timers.schedule(due, tm.key);
            }
        }
    }

    fn inspect(&self) -> Vec<crate::inspect::WindowState> {
        self.open
            .iter()
            .map(|(k, w)| {
                let end = w.last.saturating_add(self.gap);
                crate::inspect::WindowState::new(k, w.group.events(), None, Some(end))
            })
            .collect()
    }

    fn next_timer(&self) -> Option<i64> {
        self.timers.next()
    }

    fn evict_key(&mut self, key: &ValueKey) {
        self.open.remove(&Some(key.clone()));
    }

    fn memory(&self) -> Option<crate::memory::OpMemory> {
        Some(
            self.sink
                .with_evictions(super::keyed_memory(&self.open, |s| 32 + s.group.bytes())),
        )
    }

    fn save(&self) -> StateResult<Option<Vec<u8>>> {
        encode(&Saved {
            open: self
                .open
                .iter()
                .map(|(k, s)| (k.clone(), s.clone()))
                .collect(),
            timers: self.timers.clone(),
            dropped: self.sink.dropped(),
        })
    }

    fn load(&mut self, bytes: &[u8]) -> StateResult<()> {
        let s: Saved = decode(bytes)?;
        self.open = s.open.into_iter().collect();
        self.timers = s.timers;
        self.sink.set_dropped(s.dropped);
        Ok(())
    }
}

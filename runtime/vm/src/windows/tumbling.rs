//! Tumbling time windows, `.window(d)`.
//!
//! REF anchoring: the first event of a partition fixes `start = ts`; an event
//! with `ts ≥ start + d` releases the buffered events (not itself) and opens
//! the next window with `start = ts`. In addition the window closes when the
//! watermark reaches `start + d` (no later non-late event can belong to it);
//! the next event then anchors a new window, exactly as REF would. With
//! out-of-order input the event past the end anchors the next window but the
//! earlier one stays open until the watermark reaches its end, so a delayed
//! event still joins it. Aggregates are stamped `start + d`.

use super::{Entries, Group, GroupSink, Timers};
use crate::ops::{decode, encode, Cx, Operator, PartKey, Rec, StateResult};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use varpulis_program::ValueKey;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Win {
    start: i64,
    group: Group,
    /// Seq of this window's timer (due at its end).
    timer: u64,
}

/// `.window(d)`.
pub struct Tumbling {
    size: i64,
    sink: GroupSink,
    /// Open windows per partition, by start. Windows are disjoint: each
    /// starts at or after the previous one's end. There is more than one
    /// only while the watermark lags behind an event that anchored the next
    /// window (`.watermark(out_of_order: ..)`).
    wins: FxHashMap<PartKey, Vec<Win>>,
    timers: Timers,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    wins: Entries<Vec<Win>>,
    timers: Timers,
    /// Events dropped by `max_events:` (absent in older snapshots and when 0).
    #[serde(default, skip_serializing_if = "super::is_zero")]
    dropped: u64,
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
    fn pattern_counts(&self) -> Option<(u64, u64)> {
        self.sink.pattern_counts()
    }

    fn process(&mut self, rec: Rec, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        let t = rec.ev.time;
        let size = self.size;
        if let Some(wins) = self.wins.get_mut(&rec.key) {
            // The first open window not yet ended at `t` takes the event: the
            // one containing it, or (for an out-of-order event falling in a
            // gap) the next one, as REF's single current window would.
            if let Some(w) = wins.iter_mut().find(|w| t < w.start.saturating_add(size)) {
                self.sink.add(&mut w.group, rec, cx);
                return;
            }
            // REF: an event past the end releases the window and anchors the
            // next one. A window whose end the watermark (once this event is
            // counted) has not reached stays open for out-of-order events and
            // closes on its timer instead.
            let key = &rec.key;
            while let Some(w) = wins.first() {
                let end = w.start.saturating_add(size);
                if cx.watermark.is_some_and(|wm| wm < end) {
                    break;
                }
                let w = wins.remove(0);
                self.sink.release(w.group, key, Some(end), cx, out);
            }
        }
        let key = rec.key.clone();
        let mut group = self.sink.new_group();
        self.sink.add(&mut group, rec, cx);
        let timer = self.timers.schedule(t.saturating_add(size), key.clone());
        self.wins.entry(key).or_default().push(Win {
            start: t,
            group,
            timer,
        });
    }

    fn on_watermark(&mut self, wm: i64, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        while let Some(tm) = self.timers.pop_due(wm) {
            let Some(wins) = self.wins.get_mut(&tm.key) else {
                continue;
            };
            // A window released early by an event leaves its timer stale.
            let Some(i) = wins.iter().position(|w| w.timer == tm.seq) else {
                continue;
            };
            let w = wins.remove(i);
            if wins.is_empty() {
                self.wins.remove(&tm.key);
            }
            let end = w.start.saturating_add(self.size);
            self.sink.release(w.group, &tm.key, Some(end), cx, out);
        }
    }

    fn inspect(&self) -> Vec<crate::inspect::WindowState> {
        self.wins
            .iter()
            .flat_map(|(k, ws)| ws.iter().map(move |w| (k, w)))
            .map(|(k, w)| {
                let end = w.start.saturating_add(self.size);
                crate::inspect::WindowState::new(k, w.group.events(), Some(w.start), Some(end))
            })
            .collect()
    }

    fn next_timer(&self) -> Option<i64> {
        self.timers.next()
    }

    fn evict_key(&mut self, key: &ValueKey) {
        // Its timers go stale and are skipped when they come due.
        self.wins.remove(&Some(key.clone()));
    }

    fn memory(&self) -> Option<crate::memory::OpMemory> {
        Some(
            self.sink
                .with_evictions(super::keyed_memory(&self.wins, |ws| {
                    ws.iter().map(|w| 48 + w.group.bytes()).sum()
                })),
        )
    }

    fn save(&self) -> StateResult<Option<Vec<u8>>> {
        encode(&Saved {
            wins: super::entries(&self.wins),
            timers: self.timers.clone(),
            dropped: self.sink.dropped(),
        })
    }

    fn load(&mut self, bytes: &[u8]) -> StateResult<()> {
        let s: Saved = decode(bytes)?;
        self.wins = s.wins.into_iter().collect();
        self.timers = s.timers;
        self.sink.set_dropped(s.dropped);
        Ok(())
    }
}

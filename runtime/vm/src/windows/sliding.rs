//! Sliding time windows, `.window(d, sliding: s)`.
//!
//! REF: each event is appended and events older than `ts − d` are evicted;
//! if nothing was released yet or `ts ≥ last_release + s`, all buffered
//! events are released and `last_release = ts` (so the first event releases
//! immediately). In addition, when the watermark passes `T = last_release +
//! s` without such an event, the window slides at `T`: events older than
//! `T − d` are evicted and the rest released, until the buffer is empty.

use super::{Entries, GroupSink, Timers};
use crate::ops::{decode, encode, Cx, Operator, PartKey, Rec, StateResult};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Win {
    buf: VecDeque<Rec>,
    last_release: i64,
    timer: u64,
}

/// `.window(d, sliding: s)`.
pub struct Sliding {
    size: i64,
    slide: i64,
    sink: GroupSink,
    wins: FxHashMap<PartKey, Win>,
    timers: Timers,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    wins: Entries<Win>,
    timers: Timers,
}

impl Sliding {
    /// A window of `size` ns sliding every `slide` ns (both ≥ 1).
    pub fn new(size: i64, slide: i64, sink: GroupSink) -> Sliding {
        Sliding {
            size: size.max(1),
            slide: slide.max(1),
            sink,
            wins: FxHashMap::default(),
            timers: Timers::default(),
        }
    }

    fn evict(buf: &mut VecDeque<Rec>, before: i64) {
        while buf.front().is_some_and(|r| r.ev.time < before) {
            buf.pop_front();
        }
    }
}

impl Operator for Sliding {
    fn process(&mut self, rec: Rec, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        let t = rec.ev.time;
        let key = rec.key.clone();
        let (size, slide) = (self.size, self.slide);
        match self.wins.get_mut(&key) {
            Some(w) => {
                w.buf.push_back(rec);
                Self::evict(&mut w.buf, t.saturating_sub(size));
                if t >= w.last_release.saturating_add(slide) {
                    w.last_release = t;
                    self.sink.release_copies(w.buf.iter(), &key, cx, out);
                    // The pending timer re-arms itself from `last_release`.
                }
            }
            None => {
                let mut buf = VecDeque::new();
                buf.push_back(rec);
                self.sink.release_copies(buf.iter(), &key, cx, out);
                let due = t.saturating_add(slide).saturating_add(1);
                let timer = self.timers.schedule(due, key.clone());
                self.wins.insert(
                    key,
                    Win {
                        buf,
                        last_release: t,
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
            let at = w.last_release.saturating_add(self.slide);
            if at.saturating_add(1) > wm {
                w.timer = self.timers.schedule(at.saturating_add(1), tm.key);
                continue;
            }
            Self::evict(&mut w.buf, at.saturating_sub(self.size));
            if w.buf.is_empty() {
                self.wins.remove(&tm.key);
                continue;
            }
            w.last_release = at;
            self.sink.release_copies(w.buf.iter(), &tm.key, cx, out);
            w.timer = self
                .timers
                .schedule(at.saturating_add(self.slide).saturating_add(1), tm.key);
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

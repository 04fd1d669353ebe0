//! Sliding time windows, `.window(d, sliding: s)`.
//!
//! REF: each event is appended and events older than `ts − d` are evicted;
//! if nothing was released yet or `ts ≥ last_release + s`, all buffered
//! events are released and `last_release = ts` (so the first event releases
//! immediately). In addition, when the watermark passes `T = last_release +
//! s` and some event joined since the last release, the window slides at
//! `T`: events older than `T − d` are evicted and the rest released. A slide
//! with no new event releases nothing (it would repeat the previous release
//! or a shrinking part of it), so end of input adds no duplicate releases.
//! Aggregates are stamped with the release time (the window's end).
//!
//! Every event is released once per slide it stays for (`d / s` times). When
//! the aggregate reads only plain fields, each window also keeps those
//! values of its events in one row per event ([`PlainArgs`]), and a release
//! folds the rows: the same values in the same order, without going back to
//! every buffered event.

use super::{Entries, GroupSink, Timers};
use crate::ops::aggregate::PlainArgs;
use crate::ops::{decode, encode, Cx, Operator, PartKey, Rec, StateResult};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use varpulis_program::{Value, ValueKey};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Win {
    buf: VecDeque<Rec>,
    /// The rows of `buf`'s events, oldest first, when the aggregate reads
    /// plain fields ([`Sliding::plain`]). Not state: a restored window
    /// rebuilds them from `buf` ([`Sliding::rows_of`]).
    #[serde(skip)]
    rows: VecDeque<Option<Value>>,
    last_release: i64,
    /// Whether an event joined since the last release: only then does a
    /// watermark slide release anything.
    pending: bool,
    timer: u64,
}

/// `.window(d, sliding: s)`.
pub struct Sliding {
    size: i64,
    slide: i64,
    sink: GroupSink,
    wins: FxHashMap<PartKey, Win>,
    timers: Timers,
    /// The aggregate's arguments, when it reads only plain fields.
    plain: Option<PlainArgs>,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    wins: Entries<Win>,
    timers: Timers,
    /// Events dropped by `max_events:` (absent in older snapshots and when 0).
    #[serde(default, skip_serializing_if = "super::is_zero")]
    dropped: u64,
}

impl Sliding {
    /// A window of `size` ns sliding every `slide` ns (both ≥ 1).
    pub fn new(size: i64, slide: i64, sink: GroupSink) -> Sliding {
        Sliding {
            size: size.max(1),
            slide: slide.max(1),
            plain: sink.plain_args(),
            sink,
            wins: FxHashMap::default(),
            timers: Timers::default(),
        }
    }

    /// Values per row (0 without rows).
    fn width(plain: Option<&PlainArgs>) -> usize {
        plain.map_or(0, |p| p.slots.len())
    }

    /// Appends `rec` to `w`, with its row.
    fn push(plain: Option<&PlainArgs>, w: &mut Win, rec: Rec) {
        if let Some(p) = plain {
            p.push_row(&rec.ev, &mut w.rows);
        }
        w.buf.push_back(rec);
    }

    /// Drops the `n` oldest events of `w`, with their rows.
    fn drop_oldest(plain: Option<&PlainArgs>, w: &mut Win, n: usize) {
        w.buf.drain(..n.min(w.buf.len()));
        let rows = n.saturating_mul(Self::width(plain)).min(w.rows.len());
        w.rows.drain(..rows);
    }

    fn evict(plain: Option<&PlainArgs>, w: &mut Win, before: i64) {
        let old = w.buf.iter().take_while(|r| r.ev.time < before).count();
        Self::drop_oldest(plain, w, old);
    }

    /// The rows of `w`'s events, rebuilt when they are not all there (a
    /// window restored from a snapshot).
    fn rows_of<'w>(plain: &PlainArgs, w: &'w mut Win) -> &'w [Option<Value>] {
        if w.rows.len() != w.buf.len() * plain.slots.len() {
            w.rows.clear();
            for r in &w.buf {
                plain.push_row(&r.ev, &mut w.rows);
            }
        }
        w.rows.make_contiguous()
    }

    /// Releases `w`'s events (as copies: the window keeps them) stamped
    /// `end`: through their rows when the aggregate reads plain fields.
    fn release(
        sink: &mut GroupSink,
        plain: Option<&PlainArgs>,
        w: &mut Win,
        key: &PartKey,
        end: i64,
        cx: &mut Cx<'_>,
        out: &mut Vec<Rec>,
    ) {
        match plain {
            Some(p) => {
                let n = w.buf.len();
                let last = w.buf.back().map_or(i64::MIN, |r| r.ev.time);
                let rows = Self::rows_of(p, w);
                sink.release_rows(p, rows, n, last, key, Some(end), cx, out);
            }
            None => sink.release_copies(w.buf.iter(), key, Some(end), cx, out),
        }
    }

    /// Timers fire one past their slide point `T` (a slide at `T` happens
    /// once the watermark is beyond `T`, when no event at `T` can come).
    fn due(at: i64) -> i64 {
        at.saturating_add(1)
    }

    /// The timer of a window with nothing pending: it only discards the
    /// window once every buffered event has left the last `size`. The
    /// newest event is the latest by time, not the last to arrive: an
    /// out-of-order event (older, yet not late) sits at the back, and a
    /// timer computed from it could be due again at once, forever.
    fn cleanup_at(size: i64, w: &Win) -> i64 {
        let newest = w
            .buf
            .iter()
            .map(|r| r.ev.time)
            .max()
            .unwrap_or(w.last_release);
        newest.saturating_add(size).saturating_add(1)
    }
}

impl Operator for Sliding {
    fn pattern_counts(&self) -> Option<(u64, u64)> {
        self.sink.pattern_counts()
    }

    fn process(&mut self, rec: Rec, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        let t = rec.ev.time;
        let key = rec.key.clone();
        let (size, slide) = (self.size, self.slide);
        let plain = self.plain.as_ref();
        match self.wins.get_mut(&key) {
            Some(w) => {
                Self::push(plain, w, rec);
                Self::evict(plain, w, t.saturating_sub(size));
                if let Some(max) = self.sink.max_events() {
                    // `max_events:`: the oldest events go first.
                    let over = w.buf.len().saturating_sub(max);
                    Self::drop_oldest(plain, w, over);
                    self.sink.count_dropped(over as u64);
                }
                if t >= w.last_release.saturating_add(slide) {
                    w.last_release = t;
                    w.pending = false;
                    Self::release(&mut self.sink, plain, w, &key, t, cx, out);
                    let due = Self::cleanup_at(size, w);
                    w.timer = self.timers.schedule(due, key);
                } else if !w.pending {
                    w.pending = true;
                    let due = Self::due(w.last_release.saturating_add(slide));
                    w.timer = self.timers.schedule(due, key);
                }
            }
            None => {
                let mut w = Win {
                    buf: VecDeque::new(),
                    rows: VecDeque::new(),
                    last_release: t,
                    pending: false,
                    timer: 0,
                };
                Self::push(plain, &mut w, rec);
                Self::release(&mut self.sink, plain, &mut w, &key, t, cx, out);
                w.timer = self
                    .timers
                    .schedule(Self::cleanup_at(size, &w), key.clone());
                self.wins.insert(key, w);
            }
        }
    }

    fn on_watermark(&mut self, wm: i64, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        let plain = self.plain.as_ref();
        while let Some(tm) = self.timers.pop_due(wm) {
            let Some(w) = self.wins.get_mut(&tm.key) else {
                continue;
            };
            if w.timer != tm.seq {
                continue;
            }
            if !w.pending {
                // Nothing joined since the last release: a slide would only
                // repeat or shrink it, so nothing is released (DESIGN.md,
                // Windows). The window goes once its events are all too old
                // for any later event's window.
                Self::evict(plain, w, wm.saturating_sub(self.size));
                let cleanup = Self::cleanup_at(self.size, w);
                // A cleanup time not past the watermark means `newest + size` saturated at
                // the end of time (events within `size` of i64::MAX ns, year 2262), which the
                // watermark reaches at the end of input: no later event can need these, and a
                // timer due now again would fire forever.
                if w.buf.is_empty() || cleanup <= wm {
                    self.wins.remove(&tm.key);
                } else {
                    w.timer = self.timers.schedule(cleanup, tm.key);
                }
                continue;
            }
            // Slide at `T = last_release + s`: evict what is older than
            // `T − d` and release the rest, stamped `T` (the window's end).
            let at = w.last_release.saturating_add(self.slide);
            Self::evict(plain, w, at.saturating_sub(self.size));
            w.last_release = at;
            w.pending = false;
            Self::release(&mut self.sink, plain, w, &tm.key, at, cx, out);
            w.timer = self.timers.schedule(Self::cleanup_at(self.size, w), tm.key);
        }
    }

    fn inspect(&self) -> Vec<crate::inspect::WindowState> {
        self.wins
            .iter()
            .map(|(k, w)| {
                let start = w.buf.front().map(|r| r.ev.time);
                let next = w.last_release.saturating_add(self.slide);
                crate::inspect::WindowState::new(k, w.buf.len() as u64, start, Some(next))
            })
            .collect()
    }

    fn next_timer(&self) -> Option<i64> {
        self.timers.next()
    }

    fn evict_key(&mut self, key: &ValueKey) {
        self.wins.remove(&Some(key.clone()));
    }

    fn memory(&self) -> Option<crate::memory::OpMemory> {
        Some(
            self.sink
                .with_evictions(super::keyed_memory(&self.wins, |w| {
                    48 + super::buffer_bytes(w.buf.iter())
                        + (w.rows.len() * std::mem::size_of::<Option<Value>>()) as u64
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

//! A bounded set of partition keys (`.partition_by(k, max_keys: n, evict:
//! lru|fifo, idle: d)`, docs/LANGUAGE.md#bounded-state).
//!
//! The tracker sees every key that reaches the operators after a
//! `.partition_by` and decides which keys those operators must forget: at
//! `max_keys`, a new key evicts the least recently used key (`lru`) or the
//! oldest one (`fifo`); with `idle`, a key whose last event time is `idle`
//! or more below the watermark is evicted when the watermark gets there.
//! Recency is input order and idleness is event time, so eviction is as
//! deterministic as the rest of the engine.

use crate::memory::{Evictions, KEY_BYTES};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use varpulis_program::{Evict, StateBound, ValueKey};

#[derive(Clone, Copy, Debug)]
struct Slot {
    /// Position in the eviction order: the last use (`lru`) or the
    /// creation (`fifo`). Unique.
    stamp: u64,
    /// Latest event time seen for the key.
    last: i64,
}

/// The keys and their eviction order (see the module docs).
#[derive(Debug)]
pub struct KeyTracker {
    max_keys: Option<usize>,
    evict: Evict,
    idle: Option<i64>,
    keys: FxHashMap<ValueKey, Slot>,
    /// Keys by stamp, first evicted first.
    order: BTreeMap<u64, ValueKey>,
    /// `(last, stamp)` of every key when `idle` is set, oldest first.
    by_time: BTreeSet<(i64, u64)>,
    next: u64,
    evictions: Evictions,
}

/// The tracker's state in a snapshot.
#[derive(Serialize, Deserialize)]
struct Saved {
    /// `(key, stamp, last event time)`.
    keys: Vec<(ValueKey, u64, i64)>,
    next: u64,
    evictions: Evictions,
}

impl KeyTracker {
    /// A tracker enforcing `bound`.
    pub fn new(bound: &StateBound) -> KeyTracker {
        KeyTracker {
            max_keys: bound
                .max_keys
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX).max(1)),
            evict: bound.evict,
            idle: bound.idle.map(|d| d.max(0)),
            keys: FxHashMap::default(),
            order: BTreeMap::new(),
            by_time: BTreeSet::new(),
            next: 0,
            evictions: Evictions::default(),
        }
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Evictions so far.
    pub fn evictions(&self) -> Evictions {
        self.evictions
    }

    /// Approximate bytes: the key in three maps.
    pub fn bytes(&self) -> u64 {
        let per_key = KEY_BYTES + if self.idle.is_some() { 96 } else { 64 };
        per_key.saturating_mul(self.keys.len() as u64)
    }

    /// An event of `key` at time `t` arrived; keys it pushes out of the
    /// bound are appended to `evicted`.
    pub fn touch(&mut self, key: &ValueKey, t: i64, evicted: &mut Vec<ValueKey>) {
        let stamp = self.next;
        self.next += 1;
        if let Some(slot) = self.keys.get_mut(key) {
            let old = *slot;
            slot.last = old.last.max(t);
            if self.evict == Evict::Lru {
                slot.stamp = stamp;
                let k = self.order.remove(&old.stamp).unwrap_or_else(|| key.clone());
                self.order.insert(stamp, k);
            }
            if self.idle.is_some() {
                self.by_time.remove(&(old.last, old.stamp));
                self.by_time.insert((slot.last, slot.stamp));
            }
            return;
        }
        if let Some(max) = self.max_keys {
            // A loop, not an `if`: a limit lowered since the last checkpoint
            // trims the excess here.
            while self.keys.len() >= max {
                let Some((_, victim)) = self.order.pop_first() else {
                    break;
                };
                if let Some(s) = self.keys.remove(&victim) {
                    self.by_time.remove(&(s.last, s.stamp));
                }
                match self.evict {
                    Evict::Lru => self.evictions.lru += 1,
                    Evict::Fifo => self.evictions.fifo += 1,
                }
                evicted.push(victim);
            }
        }
        self.keys.insert(key.clone(), Slot { stamp, last: t });
        self.order.insert(stamp, key.clone());
        if self.idle.is_some() {
            self.by_time.insert((t, stamp));
        }
    }

    /// The watermark at which the next key becomes idle.
    pub fn next_idle(&self) -> Option<i64> {
        let idle = self.idle?;
        self.by_time
            .first()
            .map(|(last, _)| last.saturating_add(idle))
    }

    /// The watermark reached `wm`: keys idle since are appended to
    /// `evicted`, oldest first.
    pub fn expire(&mut self, wm: i64, evicted: &mut Vec<ValueKey>) {
        let Some(idle) = self.idle else { return };
        while let Some(&(last, stamp)) = self.by_time.first() {
            if last.saturating_add(idle) > wm {
                break;
            }
            self.by_time.pop_first();
            if let Some(k) = self.order.remove(&stamp) {
                self.keys.remove(&k);
                self.evictions.idle += 1;
                evicted.push(k);
            }
        }
    }

    /// The tracker's state for a snapshot.
    pub fn save(&self) -> crate::ops::StateResult<Option<Vec<u8>>> {
        let mut keys: Vec<(ValueKey, u64, i64)> = self
            .order
            .iter()
            .filter_map(|(stamp, k)| self.keys.get(k).map(|s| (k.clone(), *stamp, s.last)))
            .collect();
        keys.sort_by_key(|(_, stamp, _)| *stamp);
        crate::ops::encode(&Saved {
            keys,
            next: self.next,
            evictions: self.evictions,
        })
    }

    /// Restores a snapshot (taken under this or another bound).
    pub fn load(&mut self, bytes: &[u8]) -> crate::ops::StateResult<()> {
        let s: Saved = crate::ops::decode(bytes)?;
        self.keys.clear();
        self.order.clear();
        self.by_time.clear();
        for (k, stamp, last) in s.keys {
            self.order.insert(stamp, k.clone());
            if self.idle.is_some() {
                self.by_time.insert((last, stamp));
            }
            self.keys.insert(k, Slot { stamp, last });
        }
        self.next = s.next;
        self.evictions = s.evictions;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use varpulis_program::Value;

    fn key(n: i64) -> ValueKey {
        ValueKey(Value::Int(n))
    }

    fn check(bound: StateBound, events: &[(i64, i64)]) -> (Vec<i64>, KeyTracker) {
        let mut t = KeyTracker::new(&bound);
        let mut out = Vec::new();
        for &(k, time) in events {
            t.touch(&key(k), time, &mut out);
        }
        let ids = out
            .iter()
            .map(|k| match k.0 {
                Value::Int(n) => n,
                _ => -1,
            })
            .collect();
        (ids, t)
    }

    #[test]
    fn lru_evicts_the_least_recently_used_key() {
        let b = StateBound {
            max_keys: Some(2),
            ..StateBound::default()
        };
        let (out, t) = check(b, &[(1, 0), (2, 1), (1, 2), (3, 3)]);
        assert_eq!(out, vec![2]);
        assert_eq!(t.len(), 2);
        assert_eq!(t.evictions().lru, 1);
    }

    #[test]
    fn fifo_evicts_the_oldest_key_even_when_used() {
        let b = StateBound {
            max_keys: Some(2),
            evict: Evict::Fifo,
            ..StateBound::default()
        };
        let (out, t) = check(b, &[(1, 0), (2, 1), (1, 2), (3, 3)]);
        assert_eq!(out, vec![1]);
        assert_eq!(t.evictions().fifo, 1);
    }

    #[test]
    fn idle_keys_expire_by_event_time_and_late_events_do_not_rewind() {
        let b = StateBound {
            idle: Some(10),
            ..StateBound::default()
        };
        let (_, mut t) = check(b, &[(1, 0), (2, 5), (1, 8), (1, 3)]);
        assert_eq!(t.next_idle(), Some(15));
        let mut out = Vec::new();
        t.expire(17, &mut out);
        assert_eq!(out, vec![key(2)]);
        t.expire(18, &mut out);
        assert_eq!(out, vec![key(2), key(1)]);
        assert!(t.is_empty());
        assert_eq!(t.evictions().idle, 2);
    }

    #[test]
    fn a_snapshot_round_trips_and_a_lower_limit_trims_on_the_next_key() {
        let wide = StateBound {
            max_keys: Some(10),
            ..StateBound::default()
        };
        let (_, t) = check(wide, &[(1, 0), (2, 1), (3, 2), (1, 3)]);
        let bytes = t.save().expect("encodes").expect("has state");
        let narrow = StateBound {
            max_keys: Some(2),
            ..StateBound::default()
        };
        let mut r = KeyTracker::new(&narrow);
        r.load(&bytes).expect("decodes");
        assert_eq!(r.len(), 3);
        let mut out = Vec::new();
        r.touch(&key(4), 4, &mut out);
        assert_eq!(out, vec![key(2), key(3)], "least recently used first");
        assert_eq!(r.len(), 2);
    }
}

//! `.distinct([e])` (a bounded set of seen keys, LRU or FIFO,
//! docs/LANGUAGE.md#bounded-state) and `.limit(n)`.

use super::{decode, encode, Cx, Operator, Rec, StateResult};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use varpulis_program::{Chunk, Evict, StateBound, Value, ValueKey};

/// `.distinct([e])`.
pub struct Distinct {
    key: Option<Chunk>,
    capacity: usize,
    /// FIFO: a repeated key keeps its place in the eviction order.
    fifo: bool,
    st: DistinctState,
}

/// Seen keys with their last-use stamp; the queue holds (key, stamp) in use
/// order and may contain stale entries, which eviction skips.
#[derive(Default, Serialize, Deserialize)]
struct DistinctState {
    seen: FxHashMap<ValueKey, u64>,
    order: VecDeque<(ValueKey, u64)>,
    stamp: u64,
    /// Keys forgotten at capacity (absent in snapshots of older versions).
    #[serde(default)]
    evicted: u64,
}

impl Distinct {
    /// A distinct operator remembering `capacity` keys (at least one), or
    /// as many as `bound` says (`max:`), forgetting them in the bound's
    /// order.
    pub fn new(key: Option<Chunk>, capacity: u32, bound: Option<&StateBound>) -> Distinct {
        let capacity = bound
            .and_then(|b| b.max_keys)
            .map_or(capacity as usize, |n| {
                usize::try_from(n).unwrap_or(usize::MAX)
            });
        Distinct {
            key,
            capacity: capacity.max(1),
            fifo: bound.is_some_and(|b| b.evict == Evict::Fifo),
            st: DistinctState::default(),
        }
    }
}

impl Operator for Distinct {
    fn process(&mut self, rec: Rec, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        let k = match &self.key {
            Some(c) => match cx.eval(c, &rec.ev) {
                Some(v) => v,
                None => return,
            },
            None => Value::array(
                rec.ev
                    .fields
                    .iter()
                    .map(|f| f.clone().unwrap_or(Value::Null))
                    .collect(),
            ),
        };
        let k = ValueKey(k);
        let st = &mut self.st;
        let fresh = !st.seen.contains_key(&k);
        if fresh || !self.fifo {
            st.stamp += 1;
            st.seen.insert(k.clone(), st.stamp);
            st.order.push_back((k, st.stamp));
        }
        while st.seen.len() > self.capacity {
            let Some((old, stamp)) = st.order.pop_front() else {
                break;
            };
            if st.seen.get(&old) == Some(&stamp) {
                st.seen.remove(&old);
                st.evicted += 1;
            }
        }
        // Keep the queue bounded even when the same keys repeat.
        if st.order.len() > self.capacity.saturating_mul(4) {
            let seen = &st.seen;
            st.order.retain(|(k, s)| seen.get(k) == Some(s));
        }
        if fresh {
            out.push(rec);
        }
    }

    fn memory(&self) -> Option<crate::memory::OpMemory> {
        let keys = self.st.seen.len() as u64;
        let queued = self.st.order.len() as u64;
        let mut evictions = crate::memory::Evictions::default();
        if self.fifo {
            evictions.fifo = self.st.evicted;
        } else {
            evictions.lru = self.st.evicted;
        }
        Some(crate::memory::OpMemory {
            bytes: keys * crate::memory::KEY_BYTES + queued * 40,
            keys,
            evictions,
            ..crate::memory::OpMemory::default()
        })
    }

    fn save(&self) -> StateResult<Option<Vec<u8>>> {
        encode(&self.st)
    }

    fn load(&mut self, bytes: &[u8]) -> StateResult<()> {
        self.st = decode(bytes)?;
        Ok(())
    }
}

/// `.limit(n)`: the first `n` events ever.
pub struct Limit {
    /// The limit.
    pub n: u64,
    /// Events passed so far.
    pub passed: u64,
}

impl Operator for Limit {
    fn process(&mut self, rec: Rec, _cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        if self.passed < self.n {
            self.passed += 1;
            out.push(rec);
        }
    }

    fn save(&self) -> StateResult<Option<Vec<u8>>> {
        encode(&self.passed)
    }

    fn load(&mut self, bytes: &[u8]) -> StateResult<()> {
        self.passed = decode(bytes)?;
        Ok(())
    }
}

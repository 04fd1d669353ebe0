//! The host's bounded cache of `.enrich` answers: least recently used
//! entries go first once `capacity` is reached, and an entry older than the
//! site's `cache_ttl` is a miss. Only answers the store gave (status `ok`)
//! are cached; failures are asked again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use varpulis_program::ValueMap;

/// What the store answered for one key (`None`: it holds no such key).
pub type Answer = Option<Arc<ValueMap>>;

/// A cache key: the connector and the key's text.
type Key = (u32, String);

struct Entry {
    answer: Answer,
    stored: Instant,
    tick: u64,
}

/// A bounded LRU cache with per-lookup time to live.
pub struct Cache {
    capacity: usize,
    entries: HashMap<Key, Entry>,
    /// Use order: the oldest tick is the least recently used entry.
    order: BTreeMap<u64, Key>,
    tick: u64,
}

impl Cache {
    /// A cache holding at most `capacity` answers (0 disables it).
    pub fn new(capacity: usize) -> Cache {
        Cache {
            capacity,
            entries: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
        }
    }

    /// The answer stored for `key` of `connector` at most `ttl` before `now`.
    pub fn get(
        &mut self,
        connector: u32,
        key: &str,
        ttl: Duration,
        now: Instant,
    ) -> Option<Answer> {
        let k = (connector, key.to_string());
        let fresh = self
            .entries
            .get(&k)
            .is_some_and(|e| now.saturating_duration_since(e.stored) <= ttl);
        if !fresh {
            if let Some(e) = self.entries.remove(&k) {
                self.order.remove(&e.tick);
            }
            return None;
        }
        self.tick += 1;
        let tick = self.tick;
        let e = self.entries.get_mut(&k)?;
        self.order.remove(&e.tick);
        e.tick = tick;
        self.order.insert(tick, k);
        Some(e.answer.clone())
    }

    /// Stores the answer for `key` of `connector`, evicting the least
    /// recently used entry when full.
    pub fn put(&mut self, connector: u32, key: &str, answer: Answer, now: Instant) {
        if self.capacity == 0 {
            return;
        }
        let k = (connector, key.to_string());
        if let Some(old) = self.entries.remove(&k) {
            self.order.remove(&old.tick);
        }
        while self.entries.len() >= self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        self.tick += 1;
        self.order.insert(self.tick, k.clone());
        self.entries.insert(
            k,
            Entry {
                answer,
                stored: now,
                tick: self.tick,
            },
        );
    }

    /// Number of answers held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no answer is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_their_ttl_and_the_least_recently_used_goes_first() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let mut c = Cache::new(2);
        c.put(0, "a", None, t0);
        c.put(0, "b", None, t0);
        assert!(c.get(0, "a", ttl, t0).is_some());
        c.put(0, "c", None, t0);
        assert!(
            c.get(0, "b", ttl, t0).is_none(),
            "b was the least recently used"
        );
        assert!(c.get(0, "a", ttl, t0).is_some());
        assert!(
            c.get(1, "a", ttl, t0).is_none(),
            "connectors do not share keys"
        );
        let later = t0 + Duration::from_secs(11);
        assert!(c.get(0, "a", ttl, later).is_none(), "expired");
        assert_eq!(c.len(), 1);
    }
}

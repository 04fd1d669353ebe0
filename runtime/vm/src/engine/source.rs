//! Stream sources that transform their input: merge branches (filter and
//! re-layout), joins (keyed correlation with a horizon) and timers.

use crate::ops::{decode, encode, Cx, Rec, StateResult};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use varpulis_program::{Event, JoinSpec, MergeBranch, SchemaId, Value, ValueKey};

/// The runtime form of a stream's source.
pub enum SourceRt {
    /// Events pass unchanged (event type, stream, connector, late events).
    Pass,
    /// A merge.
    Merge {
        /// The branches.
        branches: Vec<MergeBranch>,
        /// Merged layout.
        schema: SchemaId,
    },
    /// A join.
    Join(Box<JoinRt>),
    /// A periodic timer.
    Timer(TimerRt),
}

impl SourceRt {
    /// Turns an arriving event (on source input `input`) into the record
    /// entering the chain, or nothing.
    pub fn admit(&mut self, input: u16, rec: Rec, cx: &mut Cx<'_>) -> Option<Rec> {
        match self {
            SourceRt::Pass | SourceRt::Timer(_) => Some(rec),
            SourceRt::Merge { branches, schema } => {
                let b = branches.get(usize::from(input))?;
                if let Some(f) = &b.filter {
                    if !cx.test(f, &rec.ev) {
                        return None;
                    }
                }
                let fields = b
                    .remap
                    .iter()
                    .map(|src| src.and_then(|s| rec.ev.get(s)).cloned())
                    .collect();
                let mut ev = Event::new(*schema, rec.ev.time, fields);
                ev.extra.clone_from(&rec.ev.extra);
                Some(Rec {
                    ev: Arc::new(ev),
                    key: rec.key,
                    bindings: None,
                })
            }
            SourceRt::Join(j) => j.admit(usize::from(input), rec, cx),
        }
    }
}

/// Join state: per input, the latest event of each key. With
/// `max_events: n` (`.window(d, max_events: n)` on the join) each input
/// keeps at most `n` keys; one more evicts the key whose event arrived
/// first (input order, so eviction is deterministic).
pub struct JoinRt {
    spec: JoinSpec,
    max_events: Option<usize>,
    st: JoinState,
    /// Per input, the stamp of each key in `st.order` (rebuilt on load).
    stamps: Vec<FxHashMap<Vec<ValueKey>, u64>>,
}

type Table = FxHashMap<Vec<ValueKey>, Arc<Event>>;

#[derive(Default, Serialize, Deserialize)]
struct JoinState {
    tables: Vec<Table>,
    last_purge: i64,
    /// Per input, the keys by arrival of their event, first evicted first
    /// (only with `max_events`; absent in older snapshots).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    order: Vec<BTreeMap<u64, Vec<ValueKey>>>,
    /// Next arrival stamp.
    #[serde(default, skip_serializing_if = "crate::windows::is_zero")]
    next: u64,
    /// Events evicted by `max_events`.
    #[serde(default, skip_serializing_if = "crate::windows::is_zero")]
    evicted: u64,
}

impl JoinRt {
    /// Empty join state; `max_events` bounds the keys of each input.
    pub fn new(spec: JoinSpec, max_events: Option<u64>) -> JoinRt {
        let n = spec.inputs.len();
        let max_events = max_events.map(|m| usize::try_from(m).unwrap_or(usize::MAX).max(1));
        let bounded = max_events.is_some();
        JoinRt {
            spec,
            max_events,
            st: JoinState {
                tables: (0..n).map(|_| FxHashMap::default()).collect(),
                last_purge: i64::MIN,
                order: if bounded {
                    (0..n).map(|_| BTreeMap::new()).collect()
                } else {
                    Vec::new()
                },
                next: 0,
                evicted: 0,
            },
            stamps: if bounded {
                (0..n).map(|_| FxHashMap::default()).collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Records that `key` of input `input` got a new event and evicts the
    /// first-arrived keys of that input beyond `max_events`.
    fn track(&mut self, input: usize, key: &[ValueKey]) {
        let Some(max) = self.max_events else { return };
        let stamp = self.st.next;
        self.st.next = self.st.next.saturating_add(1);
        let (Some(table), Some(order), Some(stamps)) = (
            self.st.tables.get_mut(input),
            self.st.order.get_mut(input),
            self.stamps.get_mut(input),
        ) else {
            return;
        };
        if let Some(old) = stamps.insert(key.to_vec(), stamp) {
            order.remove(&old);
        }
        order.insert(stamp, key.to_vec());
        while table.len() > max {
            let Some((_, victim)) = order.pop_first() else {
                break;
            };
            stamps.remove(&victim);
            table.remove(&victim);
            self.st.evicted = self.st.evicted.saturating_add(1);
        }
    }

    fn admit(&mut self, input: usize, rec: Rec, cx: &mut Cx<'_>) -> Option<Rec> {
        let side = self.spec.inputs.get(input)?;
        if let Some(f) = &side.filter {
            if !cx.test(f, &rec.ev) {
                return None;
            }
        }
        let mut key = Vec::with_capacity(side.keys.len());
        for k in &side.keys {
            key.push(ValueKey(cx.eval(k, &rec.ev)?));
        }
        let t = rec.ev.time;
        let lo = t.saturating_sub(self.spec.horizon);
        // Most events join nothing: look for a partner in every other input
        // (within the horizon) before anything is built.
        let joins = (0..self.spec.inputs.len()).all(|i| {
            i == input
                || self
                    .st
                    .tables
                    .get(i)
                    .and_then(|table| table.get(&key))
                    .is_some_and(|e| e.time >= lo && e.time <= t)
        });
        let out = if joins {
            self.joined(input, &rec, &key, cx)
        } else {
            None
        };
        let table = self.st.tables.get_mut(input)?;
        if self.max_events.is_some() {
            table.insert(key.clone(), rec.ev);
            self.track(input, &key);
        } else {
            table.insert(key, rec.ev);
        }
        out
    }

    /// The joined event of `rec` (on input `input`) with the partners of
    /// its `key` in the other inputs' tables, which [`JoinRt::admit`] found
    /// within the horizon; nothing when the `.on(...)` residual is not
    /// `true`.
    fn joined(&self, input: usize, rec: &Rec, key: &[ValueKey], cx: &mut Cx<'_>) -> Option<Rec> {
        let n_slots = cx
            .program
            .schemas
            .get(self.spec.schema as usize)
            .map_or(0, |s| s.fields.len());
        let mut fields: Vec<Option<Value>> = vec![None; n_slots];
        for (i, side) in self.spec.inputs.iter().enumerate() {
            let ev = if i == input {
                &rec.ev
            } else {
                self.st.tables.get(i)?.get(key)?
            };
            // First source wins for unprefixed names: fill only empty slots.
            for &(dst, src) in &side.project {
                if let Some(slot @ None) = fields.get_mut(usize::from(dst)) {
                    *slot = ev.get(src).cloned();
                }
            }
        }
        let joined = Event::new(self.spec.schema, rec.ev.time, fields);
        if let Some(r) = &self.spec.residual {
            if !cx.test(r, &joined) {
                return None;
            }
        }
        Some(Rec {
            ev: Arc::new(joined),
            key: rec.key.clone(),
            bindings: None,
        })
    }

    /// Forgets events that can no longer join (older than `wm − horizon`);
    /// runs at most once per horizon of watermark progress.
    pub fn purge(&mut self, wm: i64) {
        if wm.saturating_sub(self.st.last_purge) < self.spec.horizon.max(1) {
            return;
        }
        self.st.last_purge = wm;
        let lo = wm.saturating_sub(self.spec.horizon);
        for t in &mut self.st.tables {
            t.retain(|_, e| e.time >= lo);
        }
        let JoinState { tables, order, .. } = &mut self.st;
        for ((t, order), stamps) in tables.iter().zip(order).zip(&mut self.stamps) {
            // Removal only, so the hash map's order does not matter.
            stamps.retain(|k, s| {
                let keep = t.contains_key(k);
                if !keep {
                    order.remove(s);
                }
                keep
            });
        }
    }

    /// Approximate size of the tables (crate::memory): one latest event per
    /// input and key, for at most the horizon.
    pub fn memory(&self) -> crate::memory::OpMemory {
        let mut m = crate::memory::OpMemory {
            kind: "join",
            ..crate::memory::OpMemory::default()
        };
        m.evictions.fifo = self.st.evicted;
        for s in &self.stamps {
            // The eviction order: the key twice more.
            m.bytes = m
                .bytes
                .saturating_add((s.len() as u64).saturating_mul(2 * crate::memory::KEY_BYTES));
        }
        for t in &self.st.tables {
            m.keys += t.len() as u64;
            let events =
                crate::memory::sampled(t.len(), t.values(), |e| crate::memory::event_bytes(e));
            m.bytes = m.bytes.saturating_add(
                (t.len() as u64)
                    .saturating_mul(crate::memory::KEY_BYTES)
                    .saturating_add(events),
            );
        }
        m
    }

    /// Saves the tables.
    pub fn save(&self) -> StateResult<Option<Vec<u8>>> {
        encode(&self.st)
    }

    /// Restores the tables (saved under this or another bound).
    pub fn load(&mut self, bytes: &[u8]) -> StateResult<()> {
        let mut st: JoinState = decode(bytes)?;
        let n = self.spec.inputs.len();
        st.tables.resize_with(n, FxHashMap::default);
        self.stamps.clear();
        if self.max_events.is_none() {
            st.order.clear();
            self.st = st;
            return Ok(());
        }
        if st.order.len() != n {
            // Saved without a bound: the order is rebuilt from event time
            // (ties by the key's text, so a restore is reproducible).
            st.order = st
                .tables
                .iter()
                .map(|t| arrival_order(t, &mut st.next))
                .collect();
        }
        for (t, order) in st.tables.iter().zip(&mut st.order) {
            order.retain(|_, k| t.contains_key(k));
            self.stamps
                .push(order.iter().map(|(s, k)| (k.clone(), *s)).collect());
        }
        self.st = st;
        // A lower bound than the snapshot's trims at the input's next event.
        Ok(())
    }
}

/// The keys of `t` ordered by event time (ties by their text), stamped
/// from `next` on.
fn arrival_order(t: &Table, next: &mut u64) -> BTreeMap<u64, Vec<ValueKey>> {
    let mut keys: Vec<(i64, String, &Vec<ValueKey>)> = t
        .iter()
        .map(|(k, e)| (e.time, format!("{k:?}"), k))
        .collect();
    keys.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    keys.into_iter()
        .map(|(_, _, k)| {
            let s = *next;
            *next = next.saturating_add(1);
            (s, k.clone())
        })
        .collect()
}

/// A periodic timer source: ticks at `t0 + initial_delay + k · period`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TimerRt {
    /// Period (ns, ≥ 1).
    pub period: i64,
    /// Delay of the first tick after the first event time.
    pub initial_delay: i64,
    /// Tick schema.
    pub schema: SchemaId,
    /// Next tick time, once the first event time is known.
    pub next: Option<i64>,
}

impl TimerRt {
    /// Tick events due at watermark `wm`, never past `max_seen` (the latest
    /// event time seen, so the end-of-input flush cannot tick forever).
    pub fn ticks(&mut self, first_seen: i64, wm: i64, max_seen: i64) -> Vec<Event> {
        let mut out = Vec::new();
        let mut next = self
            .next
            .unwrap_or_else(|| first_seen.saturating_add(self.initial_delay));
        let limit = wm.min(max_seen);
        while next <= limit {
            out.push(Event::new(self.schema, next, Vec::new()));
            next = next.saturating_add(self.period.max(1));
        }
        self.next = Some(next);
        out
    }
}

//! Stream sources that transform their input: merge branches (filter and
//! re-layout), joins (keyed correlation with a horizon) and timers.

use crate::ops::{decode, encode, Cx, Rec, StateResult};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
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

/// Join state: per input, the latest event of each key.
pub struct JoinRt {
    spec: JoinSpec,
    st: JoinState,
}

#[derive(Default, Serialize, Deserialize)]
struct JoinState {
    tables: Vec<FxHashMap<Vec<ValueKey>, Arc<Event>>>,
    last_purge: i64,
}

impl JoinRt {
    /// Empty join state.
    pub fn new(spec: JoinSpec) -> JoinRt {
        let tables = spec.inputs.iter().map(|_| FxHashMap::default()).collect();
        JoinRt {
            spec,
            st: JoinState {
                tables,
                last_purge: i64::MIN,
            },
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
        self.st
            .tables
            .get_mut(input)?
            .insert(key.clone(), rec.ev.clone());
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
                let e = self.st.tables.get(i)?.get(&key)?;
                if e.time < lo || e.time > t {
                    return None;
                }
                e
            };
            // First source wins for unprefixed names: fill only empty slots.
            for &(dst, src) in &side.project {
                if let Some(slot @ None) = fields.get_mut(usize::from(dst)) {
                    *slot = ev.get(src).cloned();
                }
            }
        }
        let joined = Event::new(self.spec.schema, t, fields);
        if let Some(r) = &self.spec.residual {
            if !cx.test(r, &joined) {
                return None;
            }
        }
        Some(Rec {
            ev: Arc::new(joined),
            key: rec.key,
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
    }

    /// Approximate size of the tables (crate::memory): one latest event per
    /// input and key, for at most the horizon.
    pub fn memory(&self) -> crate::memory::OpMemory {
        let mut m = crate::memory::OpMemory {
            kind: "join",
            ..crate::memory::OpMemory::default()
        };
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

    /// Restores the tables.
    pub fn load(&mut self, bytes: &[u8]) -> StateResult<()> {
        self.st = decode(bytes)?;
        Ok(())
    }
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

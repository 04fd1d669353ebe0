//! Forecasting a sequence's completion (`.forecast`, docs/LANGUAGE.md#forecast;
//! the design and its choices are in docs/DESIGN.md, *Forecasting*).
//!
//! The sequence operator turns each relevant event into a symbol, the
//! furthest progress state of its partition's runs after the event (`0` =
//! no run open, `i` = step `i` bound, `k` = a match completed), and hands
//! it to a [`Forecaster`]:
//!
//! - [`pst`]: a prediction suffix tree learns the next state from the last
//!   `max_depth` states; the probability that the sequence completes within
//!   the horizon comes from propagating the state distribution forward
//!   through it;
//! - [`hawkes`]: a Hawkes intensity fitted to the event times gives the
//!   expected time to completion (else the mean gap does);
//! - [`conformal`]: residuals of past predictions give the interval.
//!
//! The model is shared by all partition keys; each key keeps its recent
//! states, its excitation and its open predictions. Deterministic (event
//! time and order only) and bounded: [`MAX_KEYS`] keys (the least recently
//! seen quarter is dropped beyond), [`MAX_HORIZON`] steps ahead,
//! [`MAX_SPREAD`] contexts in a propagation, and the bounds of each model.

pub mod conformal;
pub mod hawkes;
pub mod pst;

use conformal::Conformal;
use hawkes::{Excitation, Hawkes};
use pst::Pst;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use varpulis_program::{ForecastHorizon, ForecastSpec, ValueKey};

/// Partition keys remembered.
pub const MAX_KEYS: usize = 65_536;
/// Most steps a prediction looks ahead.
pub const MAX_HORIZON: u32 = 64;
/// Most contexts carried from one step of a propagation to the next (the
/// most probable; the rest of the mass is dropped).
pub const MAX_SPREAD: usize = 256;
/// Mass below which a context is dropped from a propagation.
const NEGLIGIBLE: f64 = 1e-12;
/// Forecasts come from a copy of the model taken at the last refresh, and
/// are cached until the next one, which comes once the events learned since
/// reach `1 / REFRESH` of all events learned (every event at first):
/// between two refreshes no count grows by more than that fraction, so a
/// forecast stays close to one from the live model. The copy is part of the
/// snapshot; the caches are functions of it, rebuilt after a restore.
const REFRESH: u64 = 64;
/// Most forecasts, and most next-state distributions, cached.
const MAX_CACHED: usize = 4096;
/// Highest state: contexts are cached as 16 bits per state.
const MAX_STATE: u16 = u16::MAX - 1;

/// One prediction.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// Probability that the sequence completes within the horizon.
    pub probability: f64,
    /// How much of the estimate comes from observations rather than the
    /// prior: `n / (n + states)` for a context seen `n` times.
    pub confidence: f64,
    /// Expected delay to completion (ns), when completion is possible.
    pub time: Option<i64>,
    /// The current progress state.
    pub state: u16,
    /// Length of the context the next state was predicted from.
    pub depth: u8,
    /// The conformal interval.
    pub lower: f64,
    /// The conformal interval.
    pub upper: f64,
}

/// What one event did to a forecast, for `:why`.
#[derive(Clone, Debug, PartialEq)]
pub struct ForecastNote {
    /// The state the event left its key in.
    pub state: u16,
    /// Events learned, this one included.
    pub learned: u64,
    /// Events to learn before forecasting.
    pub warmup: u64,
    /// The probability computed for the event (`None` in the warm-up).
    pub probability: Option<f64>,
    /// The emission threshold.
    pub threshold: f64,
}

/// A forecast model's state, for `:inspect`.
#[derive(Clone, Debug, PartialEq)]
pub struct ForecastView {
    /// Events learned.
    pub learned: u64,
    /// Events to learn before forecasting.
    pub warmup: u64,
    /// Contexts in the suffix tree.
    pub contexts: usize,
    /// Keys remembered.
    pub keys: usize,
    /// Outcomes known to the conformal intervals.
    pub outcomes: usize,
    /// The fitted Hawkes parameters (when `hawkes:` is on and fitted).
    pub hawkes: Option<hawkes::Params>,
    /// The labels of the states.
    pub states: Vec<std::sync::Arc<str>>,
}

/// A prediction waiting for its outcome.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Pending {
    p: f64,
    /// Events of its key left before the horizon.
    left: u32,
}

/// What one partition key keeps.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct KeyState {
    key: Option<ValueKey>,
    /// The last `max_depth` states, most recent last.
    history: Vec<u16>,
    excitation: Excitation,
    pending: VecDeque<Pending>,
    /// When it was last seen (the forecaster's event counter).
    seen: u64,
}

/// Everything a snapshot holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ForecastState {
    pst: Pst,
    hawkes: Hawkes,
    conformal: Conformal,
    keys: Vec<KeyState>,
    /// Events learned.
    learned: u64,
    /// The model as it was at the last refresh: forecasts are computed
    /// from it (and cached) until the next one.
    #[serde(default)]
    frozen: Option<Pst>,
    /// Events learned since the last refresh.
    #[serde(default)]
    since_refresh: u64,
}

/// A forecast computed for one history and horizon.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Cached {
    probability: f64,
    expected: Option<f64>,
    depth: u8,
    support: u32,
}

/// The online model of one `.forecast` (see the module docs).
#[derive(Debug)]
pub struct Forecaster {
    spec: ForecastSpec,
    /// The completed state (`k`); symbols are `0..=k`.
    complete: u16,
    st: ForecastState,
    index: FxHashMap<ValueKey, usize>,
    unkeyed: Option<usize>,
    /// The probability computed for the last event, emitted or not.
    last: Option<f64>,
    /// Forecasts from the frozen model, by (encoded history, steps).
    cache: FxHashMap<(u128, u32), Cached>,
    /// Next-state distributions of the frozen model, by encoded context.
    next_of: FxHashMap<u128, Vec<f64>>,
}

impl Forecaster {
    /// A model for a sequence of `steps` steps.
    pub fn new(spec: &ForecastSpec, steps: u16) -> Forecaster {
        let complete = steps.min(MAX_STATE);
        let mut spec = spec.clone();
        // Cached histories hold at most 8 states.
        spec.max_depth = spec.max_depth.min(8);
        Forecaster {
            complete,
            st: ForecastState {
                pst: Pst::new(complete.saturating_add(1), spec.max_depth),
                hawkes: Hawkes::new(),
                conformal: Conformal::default(),
                keys: Vec::new(),
                learned: 0,
                frozen: None,
                since_refresh: 0,
            },
            index: FxHashMap::default(),
            unkeyed: None,
            last: None,
            cache: FxHashMap::default(),
            next_of: FxHashMap::default(),
            spec,
        }
    }

    /// What the last [`Forecaster::observe`] did, for `:why`.
    pub fn note(&self, state: u16) -> ForecastNote {
        ForecastNote {
            state,
            learned: self.st.learned,
            warmup: self.spec.warmup,
            probability: self.last,
            threshold: self.spec.confidence,
        }
    }

    /// The model's state, for `:inspect`.
    pub fn view(&self) -> ForecastView {
        ForecastView {
            learned: self.st.learned,
            warmup: self.spec.warmup,
            contexts: self.st.pst.nodes(),
            keys: self.st.keys.len(),
            outcomes: self.st.conformal.len(),
            hawkes: if self.spec.hawkes {
                self.st.hawkes.params()
            } else {
                None
            },
            states: self.spec.states.clone(),
        }
    }

    /// The completed state.
    pub fn complete(&self) -> u16 {
        self.complete
    }

    /// Events learned so far.
    pub fn learned(&self) -> u64 {
        self.st.learned
    }

    /// The fitted Hawkes parameters, once fitted.
    pub fn hawkes(&self) -> Option<hawkes::Params> {
        self.st.hawkes.params()
    }

    /// Contexts in the suffix tree.
    pub fn contexts(&self) -> usize {
        self.st.pst.nodes()
    }

    /// Keys remembered.
    pub fn keys(&self) -> usize {
        self.st.keys.len()
    }

    /// Approximate bytes held.
    pub fn bytes(&self) -> u64 {
        let depth = u64::from(self.spec.max_depth);
        let per_key = crate::memory::KEY_BYTES + 2 * depth + 40 + 16 * MAX_HORIZON as u64 / 4;
        (self.cache.len() + self.next_of.len()) as u64 * 64
            + 2 * self.st.pst.bytes()
            + self.st.hawkes.bytes()
            + conformal::MAX_RESIDUALS as u64 * 8
            + self.st.keys.len() as u64 * per_key
    }

    /// The state for a snapshot.
    pub fn snapshot(&self) -> ForecastState {
        self.st.clone()
    }

    /// Restores a snapshot.
    pub fn restore(&mut self, st: ForecastState) {
        self.st = st;
        self.cache.clear();
        self.next_of.clear();
        self.reindex();
    }

    fn reindex(&mut self) {
        self.index.clear();
        self.unkeyed = None;
        for (i, k) in self.st.keys.iter().enumerate() {
            match &k.key {
                Some(v) => {
                    self.index.insert(v.clone(), i);
                }
                None => self.unkeyed = Some(i),
            }
        }
    }

    fn key_slot(&mut self, key: Option<&ValueKey>) -> usize {
        let found = match key {
            Some(k) => self.index.get(k).copied(),
            None => self.unkeyed,
        };
        if let Some(i) = found {
            return i;
        }
        if self.st.keys.len() >= MAX_KEYS {
            // Drop the least recently seen quarter, keeping the others'
            // order (deterministic: `seen` values are distinct).
            let mut seen: Vec<u64> = self.st.keys.iter().map(|k| k.seen).collect();
            seen.sort_unstable();
            let cut = seen.get(MAX_KEYS / 4).copied().unwrap_or(0);
            self.st.keys.retain(|k| k.seen >= cut);
            self.reindex();
        }
        let i = self.st.keys.len();
        self.st.keys.push(KeyState {
            key: key.cloned(),
            history: Vec::new(),
            excitation: Excitation::default(),
            pending: VecDeque::new(),
            seen: 0,
        });
        match key {
            Some(k) => {
                self.index.insert(k.clone(), i);
            }
            None => self.unkeyed = Some(i),
        }
        i
    }

    /// Learns that an event at `time` left the runs of `key` in `state`,
    /// and returns the prediction for that key if one is due (after the
    /// warm-up, with probability at least the threshold).
    pub fn observe(&mut self, key: Option<&ValueKey>, state: u16, time: i64) -> Option<Prediction> {
        let state = state.min(self.complete);
        self.last = None;
        let slot = self.key_slot(key);
        let clock = self.st.learned;
        let depth = usize::from(self.spec.max_depth);
        let complete = self.complete;
        let ForecastState {
            pst,
            hawkes,
            conformal,
            keys,
            learned,
            frozen,
            since_refresh,
        } = &mut self.st;
        let (cache, next_of) = (&mut self.cache, &mut self.next_of);
        let ks = keys.get_mut(slot)?;
        ks.seen = clock;
        // Outcomes of this key's earlier predictions.
        ks.pending.retain_mut(|p| {
            if state == complete {
                conformal.resolve(p.p, true);
                return false;
            }
            p.left = p.left.saturating_sub(1);
            if p.left == 0 {
                conformal.resolve(p.p, false);
                return false;
            }
            true
        });
        pst.observe(&ks.history, state);
        ks.history.push(state);
        if ks.history.len() > depth {
            ks.history.remove(0);
        }
        hawkes.observe(&mut ks.excitation, time);
        *learned = learned.saturating_add(1);
        *since_refresh = since_refresh.saturating_add(1);
        if *since_refresh >= (*learned / REFRESH).max(1) || frozen.is_none() {
            *frozen = Some(pst.clone());
            cache.clear();
            next_of.clear();
            *since_refresh = 0;
        }
        if *learned < self.spec.warmup.max(1) {
            return None;
        }
        let gap = hawkes.mean_gap();
        let steps = match self.spec.horizon {
            ForecastHorizon::Events(n) => n,
            ForecastHorizon::Time(t) => {
                let g = gap.filter(|g| *g > 0.0)?;
                let n = (t.max(0) as f64 / g).ceil();
                if n >= f64::from(MAX_HORIZON) {
                    MAX_HORIZON
                } else {
                    n as u32
                }
            }
        }
        .clamp(1, MAX_HORIZON);
        let key = (encode(&ks.history), steps);
        let c = match cache.get(&key) {
            Some(c) => *c,
            None => {
                let model = frozen.as_ref().unwrap_or(pst);
                let first = model.predict(&ks.history);
                let (probability, expected) =
                    propagate(model, next_of, &ks.history, complete, steps);
                let c = Cached {
                    probability,
                    expected,
                    depth: first.depth,
                    support: first.support,
                };
                if cache.len() < MAX_CACHED {
                    cache.insert(key, c);
                }
                c
            }
        };
        let (probability, expected) = (c.probability, c.expected);
        self.last = Some(probability);
        if self.spec.conformal {
            if ks.pending.len() > MAX_HORIZON as usize {
                ks.pending.pop_front();
            }
            ks.pending.push_back(Pending {
                p: probability,
                left: steps,
            });
        }
        if probability < self.spec.confidence {
            return None;
        }
        let (lower, upper) = if self.spec.conformal {
            conformal.interval(probability, self.spec.confidence)
        } else {
            (probability, probability)
        };
        let time = expected.and_then(|e| {
            let hawkes_time = if self.spec.hawkes {
                hawkes.time_until(&ks.excitation, time, e)
            } else {
                None
            };
            let ns = hawkes_time.or_else(|| gap.map(|g| g * e))?;
            ns.is_finite().then_some(ns.round() as i64)
        });
        let support = f64::from(c.support);
        Some(Prediction {
            probability,
            confidence: support / (support + f64::from(pst.alphabet())),
            time,
            state,
            depth: c.depth,
            lower,
            upper,
        })
    }
}

/// A history of at most 8 states as one number: 16 bits per state (the
/// state plus one, so that histories of different lengths differ), the most
/// recent in the lowest bits.
fn encode(history: &[u16]) -> u128 {
    let tail = &history[history.len().saturating_sub(8)..];
    tail.iter().fold(0u128, |acc, s| {
        (acc << 16) | u128::from(s.saturating_add(1))
    })
}

/// The states of an [`encode`]d history, oldest first, into `buf`.
fn decode(code: u128, buf: &mut [u16; 8]) -> &[u16] {
    let mut n = 0;
    for i in (0..8).rev() {
        let s = ((code >> (16 * i)) & 0xffff) as u16;
        if s != 0 {
            if let Some(b) = buf.get_mut(n) {
                *b = s - 1;
            }
            n += 1;
        }
    }
    &buf[..n.min(8)]
}

/// The probability that `complete` occurs within `steps` further symbols
/// after `history`, and the expected number of symbols until it does given
/// that it does (`None` when it cannot). Contexts are [`encode`]d; each
/// step's distribution is kept sorted by context, so sums are taken in the
/// same order on every run.
fn propagate(
    pst: &Pst,
    next_of: &mut FxHashMap<u128, Vec<f64>>,
    history: &[u16],
    complete: u16,
    steps: u32,
) -> (f64, Option<f64>) {
    let depth = u32::from(pst.depth().min(8));
    let mask = if depth >= 8 {
        u128::MAX
    } else {
        (1u128 << (16 * depth)) - 1
    };
    let mut dist: Vec<(u128, f64)> = vec![(encode(history) & mask, 1.0)];
    let mut next: Vec<(u128, f64)> = Vec::new();
    let mut buf = [0u16; 8];
    let mut absorbed = 0.0;
    let mut weighted = 0.0;
    for t in 1..=steps {
        next.clear();
        for &(ctx, mass) in &dist {
            if next_of.len() >= MAX_CACHED && !next_of.contains_key(&ctx) {
                next_of.clear();
            }
            let probs = next_of
                .entry(ctx)
                .or_insert_with(|| pst.predict(decode(ctx, &mut buf)).probs);
            for (s, p) in probs.iter().enumerate() {
                let m = mass * p;
                if m < NEGLIGIBLE {
                    continue;
                }
                let s = u16::try_from(s).unwrap_or(u16::MAX);
                if s == complete {
                    absorbed += m;
                    weighted += f64::from(t) * m;
                    continue;
                }
                let c = ((ctx << 16) | u128::from(s.saturating_add(1))) & mask;
                next.push((c, m));
            }
        }
        next.sort_by_key(|e| e.0);
        dist.clear();
        for &(c, m) in &next {
            match dist.last_mut() {
                Some(last) if last.0 == c => last.1 += m,
                _ => dist.push((c, m)),
            }
        }
        if dist.len() > MAX_SPREAD {
            dist.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            dist.truncate(MAX_SPREAD);
            dist.sort_by_key(|e| e.0);
        }
        if dist.is_empty() {
            break;
        }
    }
    let p = absorbed.clamp(0.0, 1.0);
    (p, (absorbed > 0.0).then(|| weighted / absorbed))
}

#[cfg(test)]
mod rng;
#[cfg(test)]
mod tests;

//! `.aggregate(...)`: incremental accumulators for every aggregate function
//! of docs/LANGUAGE.md#aggregate-functions (plus percentile, median, variance, collect), and the
//! per-event aggregate used when no window precedes it (W001).

use super::{Cx, Operator, PartKey, Rec};
use crate::interp::EvalCx;
use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;
use varpulis_program::{AggCall, AggFunc, AggregateSpec, Event, Value, ValueKey};

/// The running state of one aggregate call.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Acc {
    /// `count()`.
    Count(u64),
    /// `sum` (and the count for `avg`).
    Sum {
        /// Sum of numeric values (NaN skipped).
        sum: f64,
        /// Values summed.
        n: u64,
    },
    /// `min` / `max`.
    Extreme(Option<f64>),
    /// `stddev` / `variance` (Welford).
    Moments {
        /// Values.
        n: u64,
        /// Running mean.
        mean: f64,
        /// Sum of squared deviations.
        m2: f64,
    },
    /// `first` / `last`.
    Pick(Option<Value>),
    /// `count_distinct`.
    Distinct(FxHashSet<ValueKey>),
    /// `ema`.
    Ema(Option<f64>),
    /// `percentile` / `median`: the numeric values (oldest first; a
    /// window's `max_events:` drops from the front).
    Samples(VecDeque<f64>),
    /// `collect`: all values, oldest first.
    Values(VecDeque<Value>),
}

/// Accumulators for one group.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccState {
    accs: Vec<Acc>,
    /// Events folded in.
    pub n: u64,
    /// Time of the event folded in last (a count window's output time).
    pub last_time: i64,
}

impl AccState {
    /// Approximate bytes held (crate::memory).
    pub fn bytes(&self) -> u64 {
        let parts: usize = self
            .accs
            .iter()
            .map(|a| match a {
                Acc::Distinct(set) => set.len() * 48,
                Acc::Samples(xs) => xs.len() * 8,
                Acc::Values(vs) => vs.len() * std::mem::size_of::<Value>(),
                _ => 0,
            })
            .sum();
        (std::mem::size_of::<AccState>() + self.accs.len() * std::mem::size_of::<Acc>() + parts)
            as u64
    }
}

/// The compiled aggregate: folds events into [`AccState`]s and turns a
/// state into one output event.
pub struct Aggregator {
    spec: AggregateSpec,
}

/// The fields an aggregate's calls read when every argument is a plain field read
/// ([`Aggregator::plain_args`]): a window that releases the same events several times (a
/// sliding window) keeps these values of each event in one row and folds the rows, instead of
/// reading every buffered event again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlainArgs {
    /// The slots read, each once: a row holds their values in this order.
    pub slots: Vec<u16>,
    /// For each call, the index of its slot in `slots` (`None`: no argument, `count()`).
    calls: Vec<Option<usize>>,
}

impl PlainArgs {
    /// The row of `ev`: its values of [`PlainArgs::slots`], appended to `row`.
    pub fn push_row(&self, ev: &Event, row: &mut impl Extend<Option<Value>>) {
        row.extend(self.slots.iter().map(|&s| ev.get(s).cloned()));
    }
}

impl Aggregator {
    /// Wraps a spec.
    pub fn new(spec: AggregateSpec) -> Aggregator {
        Aggregator { spec }
    }

    /// Empty accumulators.
    pub fn new_state(&self) -> AccState {
        AccState {
            accs: self.spec.calls.iter().map(empty).collect(),
            n: 0,
            last_time: i64::MIN,
        }
    }

    /// Empties `st` (a state of this aggregate) as [`Aggregator::new_state`] makes it, keeping
    /// the memory of the accumulators that keep values.
    pub fn reset(&self, st: &mut AccState) {
        st.accs.resize_with(self.spec.calls.len(), || Acc::Count(0));
        for (call, acc) in self.spec.calls.iter().zip(st.accs.iter_mut()) {
            match acc {
                Acc::Distinct(set) if call.func == AggFunc::CountDistinct => set.clear(),
                Acc::Samples(xs) if matches!(call.func, AggFunc::Percentile | AggFunc::Median) => {
                    xs.clear();
                }
                Acc::Values(vs) if call.func == AggFunc::Collect => vs.clear(),
                acc => *acc = empty(call),
            }
        }
        st.n = 0;
        st.last_time = i64::MIN;
    }

    /// Folds one event in.
    pub fn update(&self, st: &mut AccState, ev: &Event, cx: &mut Cx<'_>) {
        self.update_capped(st, ev, cx, None);
    }

    /// Where the calls' arguments come from when each is a plain field read (or absent), which
    /// has no effect to repeat and no error to report; `None` when some argument is an
    /// expression.
    pub fn plain_args(&self) -> Option<PlainArgs> {
        let mut slots: Vec<u16> = Vec::new();
        let mut calls = Vec::with_capacity(self.spec.calls.len());
        for call in &self.spec.calls {
            let Some(chunk) = &call.arg else {
                calls.push(None);
                continue;
            };
            let slot = chunk.plain_field()?;
            let i = match slots.iter().position(|&s| s == slot) {
                Some(i) => i,
                None => {
                    slots.push(slot);
                    slots.len() - 1
                }
            };
            calls.push(Some(i));
        }
        Some(PlainArgs { slots, calls })
    }

    /// Folds in one event from its row of `plain` ([`PlainArgs::push_row`]): the same as
    /// [`Aggregator::update`] of the event the row was read from, but for the time of the
    /// event folded in last, which the caller sets.
    pub fn update_row(&self, st: &mut AccState, plain: &PlainArgs, row: &[Option<Value>]) {
        st.n += 1;
        let mut dropped = false;
        for ((call, acc), arg) in self
            .spec
            .calls
            .iter()
            .zip(st.accs.iter_mut())
            .zip(&plain.calls)
        {
            if let Acc::Count(n) = acc {
                *n += 1;
                continue;
            }
            let Some(v) = arg.and_then(|i| row.get(i)).cloned().flatten() else {
                continue;
            };
            fold(call, acc, v, usize::MAX, &mut dropped);
        }
    }

    /// Folds one event in, keeping at most `cap` values in each
    /// accumulator that keeps values (`collect`, `percentile`, `median`:
    /// the oldest goes; `count_distinct`: a new value is not added once
    /// `cap` are known, which yields the same count). Running aggregates
    /// keep nothing per event and still see every event. Returns whether
    /// the cap dropped anything.
    pub fn update_capped(
        &self,
        st: &mut AccState,
        ev: &Event,
        cx: &mut Cx<'_>,
        cap: Option<usize>,
    ) -> bool {
        let cap = cap.unwrap_or(usize::MAX);
        let mut dropped = false;
        st.n += 1;
        st.last_time = ev.time;
        for (call, acc) in self.spec.calls.iter().zip(st.accs.iter_mut()) {
            if let Acc::Count(n) = acc {
                *n += 1;
                continue;
            }
            let Some(v) = call.arg.as_ref().and_then(|c| cx.eval(c, ev)) else {
                continue;
            };
            fold(call, acc, v, cap, &mut dropped);
        }
        dropped
    }

    /// The aggregate results, indexed like the calls.
    fn results(&self, st: &AccState) -> Vec<Option<Value>> {
        self.spec
            .calls
            .iter()
            .zip(st.accs.iter())
            .map(|(call, acc)| {
                let float_or_null = |x: Option<f64>| Some(x.map_or(Value::Null, Value::Float));
                match acc {
                    Acc::Count(n) => Some(Value::Int(i64::try_from(*n).unwrap_or(i64::MAX))),
                    Acc::Sum { sum, n } => {
                        if call.func == AggFunc::Avg {
                            float_or_null((*n > 0).then(|| sum / *n as f64))
                        } else {
                            Some(Value::Float(*sum))
                        }
                    }
                    Acc::Extreme(x) | Acc::Ema(x) => float_or_null(*x),
                    Acc::Moments { n, m2, .. } => {
                        let var = (*n >= 2).then(|| m2 / (*n - 1) as f64);
                        if call.func == AggFunc::Stddev {
                            float_or_null(var.map(f64::sqrt))
                        } else {
                            float_or_null(var)
                        }
                    }
                    Acc::Pick(v) => Some(v.clone().unwrap_or(Value::Null)),
                    Acc::Distinct(set) => {
                        Some(Value::Int(i64::try_from(set.len()).unwrap_or(i64::MAX)))
                    }
                    Acc::Samples(xs) => {
                        let p = if call.func == AggFunc::Median {
                            0.5
                        } else {
                            let p = call.param.unwrap_or(0.5);
                            if p > 1.0 {
                                p / 100.0
                            } else {
                                p
                            }
                        };
                        float_or_null(percentile_of(xs.iter().copied().collect(), p))
                    }
                    Acc::Values(vs) => Some(Value::array(vs.iter().cloned().collect())),
                }
            })
            .collect()
    }

    /// Builds the output event of a group (`None` for an empty group:
    /// empty windows release nothing), stamped `time` (the window's end,
    /// DESIGN.md "Windows and aggregates") or, when `None`, with the time of
    /// the last event folded in.
    pub fn finish(
        &self,
        st: &AccState,
        key: &PartKey,
        time: Option<i64>,
        cx: &mut Cx<'_>,
    ) -> Option<Rec> {
        if st.n == 0 {
            return None;
        }
        let aggs = self.results(st);
        let n_slots = cx
            .program
            .schemas
            .get(self.spec.schema as usize)
            .map_or(self.spec.items.len(), |s| s.fields.len())
            .max(self.spec.items.len());
        let mut fields: Vec<Option<Value>> = vec![None; n_slots];
        let ecx = EvalCx {
            event: None,
            aggs: &aggs,
            now: cx.now,
            bindings: None,
        };
        for (slot, item) in fields.iter_mut().zip(self.spec.items.iter()) {
            *slot = cx.vm.eval(cx.program, cx.globals, &item.expr, &ecx);
        }
        if let Some(ValueKey(k)) = key {
            if let Some(f) = self
                .spec
                .key_slot
                .and_then(|s| fields.get_mut(usize::from(s)))
            {
                *f = Some(k.clone());
            }
            if let Some(f) = self
                .spec
                .partition_slot
                .and_then(|s| fields.get_mut(usize::from(s)))
            {
                *f = Some(Value::str(k.to_string()));
            }
        }
        Some(Rec {
            ev: Arc::new(Event::new(
                self.spec.schema,
                time.unwrap_or(st.last_time),
                fields,
            )),
            key: key.clone(),
            bindings: None,
        })
    }
}

/// The empty accumulator of `call`.
fn empty(call: &AggCall) -> Acc {
    match call.func {
        AggFunc::Count => Acc::Count(0),
        AggFunc::Sum | AggFunc::Avg => Acc::Sum { sum: 0.0, n: 0 },
        AggFunc::Min | AggFunc::Max => Acc::Extreme(None),
        AggFunc::Stddev | AggFunc::Variance => Acc::Moments {
            n: 0,
            mean: 0.0,
            m2: 0.0,
        },
        AggFunc::First | AggFunc::Last => Acc::Pick(None),
        AggFunc::CountDistinct => Acc::Distinct(FxHashSet::default()),
        AggFunc::Ema => Acc::Ema(None),
        AggFunc::Percentile | AggFunc::Median => Acc::Samples(VecDeque::new()),
        AggFunc::Collect => Acc::Values(VecDeque::new()),
    }
}

/// Folds argument value `v` of `call` into its accumulator; values kept beyond `cap` go, oldest
/// first, and set `dropped`.
fn fold(call: &AggCall, acc: &mut Acc, v: Value, cap: usize, dropped: &mut bool) {
    match acc {
        Acc::Count(_) => {}
        Acc::Sum { sum, n } => {
            if let Some(x) = v.as_f64().filter(|x| !x.is_nan()) {
                *sum += x;
                *n += 1;
            }
        }
        Acc::Extreme(cur) => {
            if let Some(x) = v.as_f64().filter(|x| !x.is_nan()) {
                let better = match cur {
                    None => true,
                    Some(c) if call.func == AggFunc::Min => x < *c,
                    Some(c) => x > *c,
                };
                if better {
                    *cur = Some(x);
                }
            }
        }
        Acc::Moments { n, mean, m2 } => {
            if let Some(x) = v.as_f64().filter(|x| !x.is_nan()) {
                *n += 1;
                let d = x - *mean;
                *mean += d / *n as f64;
                *m2 += d * (x - *mean);
            }
        }
        Acc::Pick(cur) => {
            if call.func == AggFunc::Last || cur.is_none() {
                *cur = Some(v);
            }
        }
        Acc::Distinct(set) => {
            let k = ValueKey(v);
            if set.len() < cap {
                set.insert(k);
            } else if !set.contains(&k) {
                *dropped = true;
            }
        }
        Acc::Ema(cur) => {
            if let Some(x) = v.as_f64() {
                let n = call.param.unwrap_or(12.0);
                let alpha = 2.0 / (n + 1.0);
                *cur = Some(match cur {
                    None => x,
                    Some(prev) => alpha * x + (1.0 - alpha) * *prev,
                });
            }
        }
        Acc::Samples(xs) => {
            if let Some(x) = v.as_f64().filter(|x| !x.is_nan()) {
                xs.push_back(x);
                if xs.len() > cap {
                    xs.pop_front();
                    *dropped = true;
                }
            }
        }
        Acc::Values(vs) => {
            vs.push_back(v);
            if vs.len() > cap {
                vs.pop_front();
                *dropped = true;
            }
        }
    }
}

/// Linear-interpolated percentile (`p` in `[0, 1]`) of unsorted samples.
pub fn percentile(xs: &[f64], p: f64) -> Option<f64> {
    percentile_of(xs.to_vec(), p)
}

/// [`percentile`] of samples it may reorder. Only the two samples around the rank are
/// needed, so they are selected (linear time) rather than the samples sorted: in the order of
/// `f64::total_cmp`, which is total, the k-th sample is one bit pattern however it is found.
fn percentile_of(mut v: Vec<f64>, p: f64) -> Option<f64> {
    if v.is_empty() || !(0.0..=1.0).contains(&p) {
        return None;
    }
    let rank = p * (v.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    if lo >= v.len() {
        return None;
    }
    let (_, &mut a, above) = v.select_nth_unstable_by(lo, f64::total_cmp);
    let b = if hi == lo {
        a
    } else {
        // The next sample up is the least of those above the rank.
        *above.iter().min_by(|x, y| x.total_cmp(y))?
    };
    Some(a + (b - a) * (rank - lo as f64))
}

/// `.aggregate` with no window before it: every event is its own group.
pub struct PerEventAggregate(pub Aggregator);

impl Operator for PerEventAggregate {
    fn process(&mut self, rec: Rec, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        let mut st = self.0.new_state();
        self.0.update(&mut st, &rec.ev, cx);
        if let Some(r) = self.0.finish(&st, &rec.key, None, cx) {
            out.push(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The percentile of the samples sorted, as it was computed before selection.
    fn sorted_percentile(xs: &[f64], p: f64) -> Option<f64> {
        if xs.is_empty() || !(0.0..=1.0).contains(&p) {
            return None;
        }
        let mut v = xs.to_vec();
        v.sort_by(f64::total_cmp);
        let rank = p * (v.len() - 1) as f64;
        let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
        let (a, b) = (*v.get(lo)?, *v.get(hi)?);
        Some(a + (b - a) * (rank - lo as f64))
    }

    proptest::proptest! {
        /// Selecting the samples around the rank gives the bits sorting them gave, with
        /// repeated values, signed zeros and infinities among the samples.
        #[test]
        fn percentile_by_selection_is_the_sorted_one(
            xs in proptest::collection::vec(
                prop_oneof![
                    (-20i32..20).prop_map(|x| f64::from(x) / 2.0),
                    Just(-0.0),
                    Just(f64::INFINITY),
                    Just(f64::NEG_INFINITY),
                    proptest::num::f64::NORMAL,
                ],
                0..60,
            ),
            p in prop_oneof![0.0..=1.0f64, Just(0.5), Just(1.0)],
        ) {
            let got = percentile(&xs, p).map(f64::to_bits);
            let want = sorted_percentile(&xs, p).map(f64::to_bits);
            proptest::prop_assert_eq!(got, want);
        }
    }
}

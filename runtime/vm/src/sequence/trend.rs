//! Trend aggregation over a Kleene step without enumerating trends
//! (`.trend_aggregate`, GRETA-style dynamic programming).
//!
//! A *trend* is a non-empty subsequence `e_i1 < e_i2 < … < e_ik` of the
//! events a Kleene step accumulated, whose first member may start a trend,
//! whose last member may end one, and whose consecutive members are
//! *adjacent* (e.g. `next.price > prev.price` for a self-referential
//! filter; always true without one). There can be 2^n of them; the
//! aggregates below are computed in O(n²) predicate calls and O(n) memory:
//!
//! - `cnt[i]` = trends ending at `i` = `[starts(i)] + Σ_{j<i, adj(j,i)} cnt[j]`;
//! - `sum[i]` = Σ over those trends of Σ v = `cnt[i]·v[i] + Σ_{adj} sum[j]`;
//! - `len[i]` = Σ over those trends of their length (same with v = 1);
//!
//! and the totals add the entries of events that may end a trend.
//! `min`/`max` range over events that belong to at least one trend.

use std::sync::Arc;
use varpulis_program::Event;

/// Aggregates over all trends (see the module docs). Counts are `f64` so
/// they saturate gracefully instead of overflowing (2^n trends).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TrendStats {
    /// Number of trends (`count_trends()`).
    pub trends: f64,
    /// Total number of events over all trends (`count_events(alias)`).
    pub events: f64,
    /// Sum of the value over all events of all trends (`sum_trends`).
    pub sum: f64,
    /// Smallest value of an event in some trend (`min_trends`).
    pub min: Option<f64>,
    /// Largest value of an event in some trend (`max_trends`).
    pub max: Option<f64>,
}

impl TrendStats {
    /// `avg_trends`: mean value per event over all trends.
    pub fn avg(&self) -> Option<f64> {
        (self.events > 0.0).then(|| self.sum / self.events)
    }
}

/// The shape of the trends: which events may start or end one, and which
/// pairs may be consecutive.
pub trait TrendRules {
    /// May `ev` be the first event of a trend?
    fn starts(&mut self, ev: &Event) -> bool;
    /// May `ev` be the last event of a trend?
    fn ends(&mut self, ev: &Event) -> bool;
    /// May `next` directly follow `prev` in a trend?
    fn adjacent(&mut self, prev: &Event, next: &Event) -> bool;
    /// The aggregated value of `ev` (`None`: contributes nothing to sums,
    /// min and max, but still counts as an event).
    fn value(&mut self, ev: &Event) -> Option<f64>;
}

/// Aggregates over every trend of `events` (in arrival order).
pub fn aggregate<R: TrendRules>(events: &[Arc<Event>], rules: &mut R) -> TrendStats {
    let n = events.len();
    let vals: Vec<Option<f64>> = events.iter().map(|e| rules.value(e)).collect();
    // Forward pass: trends (and their lengths and sums) ending at each event.
    let mut cnt = vec![0.0f64; n];
    let mut len = vec![0.0f64; n];
    let mut sum = vec![0.0f64; n];
    for i in 0..n {
        let mut c = if rules.starts(&events[i]) { 1.0 } else { 0.0 };
        let (mut l, mut s) = (0.0, 0.0);
        for j in 0..i {
            if cnt[j] > 0.0 && rules.adjacent(&events[j], &events[i]) {
                c += cnt[j];
                l += len[j];
                s += sum[j];
            }
        }
        cnt[i] = c;
        len[i] = l + c;
        sum[i] = s + c * vals[i].unwrap_or(0.0);
    }
    // Backward pass: events from which some trend end is reachable.
    let mut to_end = vec![false; n];
    for i in (0..n).rev() {
        to_end[i] = rules.ends(&events[i])
            || (i + 1..n).any(|j| to_end[j] && rules.adjacent(&events[i], &events[j]));
    }
    let mut st = TrendStats::default();
    for i in 0..n {
        if cnt[i] > 0.0 && rules.ends(&events[i]) {
            st.trends += cnt[i];
            st.events += len[i];
            st.sum += sum[i];
        }
        if cnt[i] > 0.0 && to_end[i] {
            if let Some(v) = vals[i] {
                st.min = Some(st.min.map_or(v, |m: f64| m.min(v)));
                st.max = Some(st.max.map_or(v, |m: f64| m.max(v)));
            }
        }
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;
    use varpulis_program::Value;

    struct Rising;

    impl TrendRules for Rising {
        fn starts(&mut self, _: &Event) -> bool {
            true
        }
        fn ends(&mut self, _: &Event) -> bool {
            true
        }
        fn adjacent(&mut self, a: &Event, b: &Event) -> bool {
            px(b) > px(a)
        }
        fn value(&mut self, e: &Event) -> Option<f64> {
            Some(px(e))
        }
    }

    fn px(e: &Event) -> f64 {
        match e.get(0) {
            Some(Value::Float(f)) => *f,
            _ => 0.0,
        }
    }

    fn evs(p: &[f64]) -> Vec<Arc<Event>> {
        p.iter()
            .enumerate()
            .map(|(i, &v)| Arc::new(Event::new(0, i as i64, vec![Some(Value::Float(v))])))
            .collect()
    }

    /// Brute force: enumerate every subsequence.
    fn brute(e: &[Arc<Event>]) -> TrendStats {
        let mut st = TrendStats::default();
        for mask in 1u32..(1 << e.len()) {
            let t: Vec<&Arc<Event>> = (0..e.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| &e[i])
                .collect();
            if t.windows(2).all(|w| px(w[1]) > px(w[0])) {
                st.trends += 1.0;
                st.events += t.len() as f64;
                for x in &t {
                    let v = px(x);
                    st.sum += v;
                    st.min = Some(st.min.map_or(v, |m: f64| m.min(v)));
                    st.max = Some(st.max.map_or(v, |m: f64| m.max(v)));
                }
            }
        }
        st
    }

    #[test]
    fn rising_trends_match_enumeration() {
        for p in [
            vec![],
            vec![1.0],
            vec![1.0, 2.0, 3.0],
            vec![3.0, 1.0, 2.0, 5.0, 4.0],
            vec![2.0, 2.0, 1.0, 7.0, 3.0, 8.0, 0.5, 9.0],
        ] {
            let e = evs(&p);
            assert_eq!(aggregate(&e, &mut Rising), brute(&e), "prices {p:?}");
        }
    }

    #[test]
    fn patterns_md_example_has_fourteen_rising_trends() {
        assert_eq!(
            aggregate(&evs(&[3.0, 1.0, 2.0, 5.0, 4.0]), &mut Rising).trends,
            14.0
        );
    }

    #[test]
    fn unconstrained_kleene_counts_every_subset() {
        struct Any;
        impl TrendRules for Any {
            fn starts(&mut self, _: &Event) -> bool {
                true
            }
            fn ends(&mut self, _: &Event) -> bool {
                true
            }
            fn adjacent(&mut self, _: &Event, _: &Event) -> bool {
                true
            }
            fn value(&mut self, _: &Event) -> Option<f64> {
                Some(1.0)
            }
        }
        let st = aggregate(&evs(&[0.0; 10]), &mut Any);
        assert_eq!(st.trends, 1023.0);
        // Each event is in half of the 1024 subsets.
        assert_eq!(st.events, 10.0 * 512.0);
        assert_eq!(st.avg(), Some(1.0));
    }
}

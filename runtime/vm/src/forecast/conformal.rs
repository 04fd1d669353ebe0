//! Split-conformal intervals around a predicted probability.
//!
//! Each prediction, once its outcome is known (the sequence completed
//! within the horizon or not), leaves a residual `|outcome − prediction|`.
//! The interval of a new prediction `p` at level `c` is `p ± q`, where `q`
//! is the `⌈(k+1)·c⌉`-th smallest of the last `k` residuals (at most
//! [`MAX_RESIDUALS`]); with too few residuals for that rank the interval is
//! the whole `[0, 1]`. Under exchangeability the interval covers the
//! outcome with probability at least `c`.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Residuals kept (the most recent).
pub const MAX_RESIDUALS: usize = 512;

/// The residuals of past predictions.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Conformal {
    /// In arrival order.
    residuals: VecDeque<f64>,
    /// The same, sorted (rebuilt after a restore).
    #[serde(skip)]
    sorted: Vec<f64>,
}

impl Conformal {
    /// Records the outcome (`true` = completed) of a prediction `p`.
    pub fn resolve(&mut self, p: f64, outcome: bool) {
        let y = if outcome { 1.0 } else { 0.0 };
        self.resort();
        if self.residuals.len() >= MAX_RESIDUALS {
            if let Some(old) = self.residuals.pop_front() {
                let at = self.sorted.partition_point(|x| x.total_cmp(&old).is_lt());
                if at < self.sorted.len() {
                    self.sorted.remove(at);
                }
            }
        }
        let r = (y - p).abs();
        self.residuals.push_back(r);
        let at = self.sorted.partition_point(|x| x.total_cmp(&r).is_le());
        self.sorted.insert(at, r);
    }

    /// Rebuilds the sorted copy when it is out of step (after a restore).
    fn resort(&mut self) {
        if self.sorted.len() != self.residuals.len() {
            self.sorted = self.residuals.iter().copied().collect();
            self.sorted.sort_by(f64::total_cmp);
        }
    }

    /// Residuals held.
    pub fn len(&self) -> usize {
        self.residuals.len()
    }

    /// Whether no outcome is known yet.
    pub fn is_empty(&self) -> bool {
        self.residuals.is_empty()
    }

    /// The interval around `p` at level `level`, clipped to `[0, 1]`.
    pub fn interval(&mut self, p: f64, level: f64) -> (f64, f64) {
        self.resort();
        let k = self.residuals.len();
        let rank = ((k as f64 + 1.0) * level.clamp(0.0, 1.0)).ceil() as usize;
        if rank > k || k == 0 {
            return (0.0, 1.0);
        }
        let q = self.sorted.get(rank.max(1) - 1).copied().unwrap_or(1.0);
        ((p - q).max(0.0), (p + q).min(1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::rng::Rng;

    #[test]
    fn intervals_cover_outcomes_at_their_level() {
        // Outcomes with probability 0.3, predicted as 0.3: a 90% interval
        // must cover about 90% of new outcomes (here it must reach 1).
        for level in [0.5, 0.8, 0.9] {
            let mut c = Conformal::default();
            let mut rng = Rng(21);
            let mut covered = 0;
            let trials = 4000;
            for i in 0..trials + 500 {
                let y = rng.next_f64() < 0.3;
                if i >= 500 {
                    let (lo, hi) = c.interval(0.3, level);
                    let v = if y { 1.0 } else { 0.0 };
                    if lo <= v && v <= hi {
                        covered += 1;
                    }
                }
                c.resolve(0.3, y);
            }
            let rate = f64::from(covered) / f64::from(trials);
            assert!(rate >= level - 0.03, "level {level}: coverage {rate}");
        }
    }

    #[test]
    fn few_residuals_give_the_whole_range() {
        let mut c = Conformal::default();
        assert_eq!(c.interval(0.4, 0.9), (0.0, 1.0));
        c.resolve(0.4, false);
        assert_eq!(c.interval(0.4, 0.9), (0.0, 1.0));
    }

    #[test]
    fn exact_predictions_give_a_point_interval() {
        let mut c = Conformal::default();
        for _ in 0..100 {
            c.resolve(1.0, true);
        }
        assert_eq!(c.interval(1.0, 0.9), (1.0, 1.0));
        assert!(c.len() <= MAX_RESIDUALS);
    }
}

//! A Hawkes process with an exponential kernel, fitted online to event
//! times, for the expected time until a number of further events.
//!
//! Intensity: `λ(t) = μ + n·Σ β·e^(−β(t − tᵢ))` over past events `tᵢ`,
//! with background rate `μ`, branching ratio `n` (expected events each
//! event triggers, kept below 1) and decay `β`. Several independent
//! processes (one per partition key) share the parameters; each keeps its
//! own excitation.
//!
//! Fitting (docs/DESIGN.md, *Forecasting*): for each decay of a fixed grid
//! (multiples of the inverse mean gap seen during the first
//! [`CALIBRATION`] gaps), an online expectation-maximisation: each event's
//! probability of being a background event (`μ/λ`) or a triggered one
//! (`n·S/λ`) is accumulated, and `μ` = background events / exposure time,
//! `n` = triggered events / events. Each grid point also accumulates its
//! log-likelihood; the best one is used. Everything is a function of event
//! times and order only.

use serde::{Deserialize, Serialize};

/// Gaps observed before the decay grid is fixed.
pub const CALIBRATION: u64 = 16;
/// Decays tried, as multiples of the inverse mean calibration gap.
const GRID: [f64; 4] = [0.25, 1.0, 4.0, 16.0];
/// Highest branching ratio (the process must stay stationary).
const MAX_BRANCHING: f64 = 0.95;
/// Smallest background rate (per ns), so that the intensity stays positive.
const MIN_RATE: f64 = 1e-18;

/// The fit for one decay of the grid.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Fit {
    beta: f64,
    mu: f64,
    n: f64,
    background: f64,
    triggered: f64,
    loglik: f64,
}

/// The shared parameters (see the module docs).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hawkes {
    fits: Vec<Fit>,
    /// Exposure time (ns) and events counted by the fits.
    exposure: f64,
    events: f64,
    /// Calibration: sum of gaps and their number.
    gap_sum: f64,
    gaps: u64,
}

/// One process's own state: its last event time and its excitation per
/// grid decay (`Σ β·e^(−β(t − tᵢ))` at the last event, that event included).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Excitation {
    last: Option<i64>,
    s: Vec<f64>,
}

/// The fitted parameters, for `:inspect` and tests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    /// Background rate (events per ns).
    pub mu: f64,
    /// Branching ratio.
    pub n: f64,
    /// Decay (per ns).
    pub beta: f64,
}

impl Params {
    /// Long-run event rate `μ / (1 − n)` (events per ns).
    pub fn rate(&self) -> f64 {
        self.mu / (1.0 - self.n)
    }
}

impl Default for Hawkes {
    fn default() -> Self {
        Hawkes::new()
    }
}

impl Hawkes {
    /// A process with nothing observed.
    pub fn new() -> Hawkes {
        Hawkes {
            fits: Vec::new(),
            exposure: 0.0,
            events: 0.0,
            gap_sum: 0.0,
            gaps: 0,
        }
    }

    /// The mean gap between consecutive events of a process (ns), once one
    /// gap has been seen.
    pub fn mean_gap(&self) -> Option<f64> {
        if self.fits.is_empty() {
            (self.gaps > 0).then(|| self.gap_sum / self.gaps as f64)
        } else {
            (self.events > 0.0).then(|| self.exposure / self.events)
        }
    }

    /// Index of the best fit so far (highest log-likelihood; the first on
    /// ties).
    fn best(&self) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, f) in self.fits.iter().enumerate() {
            match best.and_then(|b| self.fits.get(b)) {
                Some(b) if b.loglik >= f.loglik => {}
                _ => best = Some(i),
            }
        }
        best
    }

    /// The best fit so far.
    pub fn params(&self) -> Option<Params> {
        let f = self.fits.get(self.best()?)?;
        Some(Params {
            mu: f.mu,
            n: f.n,
            beta: f.beta,
        })
    }

    /// Learns an event of the process `x` at `time`.
    pub fn observe(&mut self, x: &mut Excitation, time: i64) {
        let Some(last) = x.last.replace(time) else {
            x.s = vec![0.0; self.fits.len()];
            for (s, f) in x.s.iter_mut().zip(&self.fits) {
                *s = f.beta;
            }
            return;
        };
        let dt = time.saturating_sub(last).max(0) as f64;
        if self.fits.is_empty() {
            self.gap_sum += dt;
            self.gaps = self.gaps.saturating_add(1);
            if self.gaps >= CALIBRATION && self.gap_sum > 0.0 {
                let base = self.gaps as f64 / self.gap_sum;
                self.fits = GRID
                    .iter()
                    .map(|c| Fit {
                        beta: c * base,
                        mu: base * 0.5,
                        n: 0.5,
                        background: 0.0,
                        triggered: 0.0,
                        loglik: 0.0,
                    })
                    .collect();
                self.exposure = self.gap_sum;
                self.events = self.gaps as f64;
                for f in &mut self.fits {
                    f.background = f.mu * self.exposure;
                    f.triggered = f.n * self.events;
                }
            }
            x.s = self.fits.iter().map(|f| f.beta).collect();
            return;
        }
        if x.s.len() != self.fits.len() {
            // A process that started during calibration: no excitation yet.
            x.s = vec![0.0; self.fits.len()];
        }
        self.exposure += dt;
        self.events += 1.0;
        for (f, s) in self.fits.iter_mut().zip(x.s.iter_mut()) {
            let decay = (-f.beta * dt).exp();
            let compensator = f.mu * dt + f.n * *s * (1.0 - decay) / f.beta;
            *s *= decay;
            let lambda = f.mu + f.n * *s;
            if lambda > 0.0 {
                f.loglik += lambda.ln() - compensator;
                f.background += f.mu / lambda;
                f.triggered += f.n * *s / lambda;
            }
            f.mu = (f.background / self.exposure).max(MIN_RATE);
            f.n = (f.triggered / self.events).clamp(0.0, MAX_BRANCHING);
            *s += f.beta;
        }
    }

    /// The expected delay (ns) until `count` further events of process `x`
    /// after `now`, from its expected intensity: the excess over the
    /// long-run rate `m` decays at `β(1 − n)`. `None` before the fit.
    pub fn time_until(&self, x: &Excitation, now: i64, count: f64) -> Option<f64> {
        let k = self.best()?;
        let p = self.params()?;
        let s0 = x.s.get(k).copied().unwrap_or(0.0);
        let since = x.last.map_or(0.0, |l| now.saturating_sub(l).max(0) as f64);
        let lambda0 = p.mu + p.n * s0 * (-p.beta * since).exp();
        let m = p.rate();
        let gamma = p.beta * (1.0 - p.n);
        let expected = |t: f64| m * t + (lambda0 - m) * (1.0 - (-gamma * t).exp()) / gamma;
        if count <= 0.0 {
            return Some(0.0);
        }
        let mut hi = count / m.max(lambda0).max(MIN_RATE);
        let mut guard = 0;
        while expected(hi) < count && guard < 200 {
            hi *= 2.0;
            guard += 1;
        }
        let mut lo = 0.0;
        for _ in 0..80 {
            let mid = (lo + hi) / 2.0;
            if expected(mid) < count {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(hi)
    }

    /// Approximate bytes held (shared part).
    pub fn bytes(&self) -> u64 {
        64 + self.fits.len() as u64 * 48
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::rng::Rng;

    const SEC: f64 = 1e9;

    /// Feeds `times` (seconds) as one process.
    fn fit(times: &[f64]) -> (Hawkes, Excitation) {
        let mut h = Hawkes::new();
        let mut x = Excitation::default();
        for t in times {
            h.observe(&mut x, (t * SEC) as i64);
        }
        (h, x)
    }

    fn poisson(rate: f64, n: usize, rng: &mut Rng) -> Vec<f64> {
        let mut t = 0.0;
        (0..n)
            .map(|_| {
                t += -(1.0 - rng.next_f64()).ln() / rate;
                t
            })
            .collect()
    }

    /// Ogata's thinning for `λ(t) = μ + n·Σ β e^(−β(t − tᵢ))` (seconds).
    fn hawkes(mu: f64, n: f64, beta: f64, count: usize, rng: &mut Rng) -> Vec<f64> {
        let mut out = Vec::with_capacity(count);
        let mut t = 0.0;
        let mut s = 0.0; // excitation at `t`
        while out.len() < count {
            let bound = mu + n * s;
            let w = -(1.0 - rng.next_f64()).ln() / bound;
            s *= (-beta * w).exp();
            t += w;
            if rng.next_f64() * bound <= mu + n * s {
                out.push(t);
                s += beta;
            }
        }
        out
    }

    #[test]
    fn a_poisson_process_fits_its_rate_with_little_excitation() {
        let mut rng = Rng(11);
        let (h, _) = fit(&poisson(2.0, 20_000, &mut rng));
        let p = h.params().expect("fitted");
        let rate = p.rate() * SEC;
        assert!((rate - 2.0).abs() < 0.15, "{p:?} rate {rate}");
        assert!(p.n < 0.2, "{p:?}");
    }

    #[test]
    fn a_self_exciting_process_fits_its_branching_ratio() {
        let mut rng = Rng(5);
        let (h, _) = fit(&hawkes(1.0, 0.5, 2.0, 30_000, &mut rng));
        let p = h.params().expect("fitted");
        let rate = p.rate() * SEC;
        assert!((rate - 2.0).abs() < 0.3, "{p:?} rate {rate}");
        assert!((p.n - 0.5).abs() < 0.2, "{p:?}");
    }

    #[test]
    fn the_time_until_k_events_follows_the_rate() {
        let mut rng = Rng(3);
        let (h, x) = fit(&poisson(4.0, 20_000, &mut rng));
        let now = x.last.expect("events seen");
        let t = h.time_until(&x, now, 8.0).expect("fitted") / SEC;
        // 8 events at 4 per second.
        assert!((t - 2.0).abs() < 0.3, "{t}");
    }

    #[test]
    fn nothing_is_fitted_before_calibration() {
        let (h, _) = fit(&[0.0, 1.0, 2.0]);
        assert!(h.params().is_none());
        assert_eq!(h.mean_gap(), Some(SEC));
    }
}

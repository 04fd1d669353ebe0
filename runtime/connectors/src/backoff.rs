//! Exponential backoff with deterministic jitter for delivery retries.
//!
//! The delay doubles from `initial` up to `max`, and each delay is drawn from `[d/2, d]` so that
//! many sinks failing together do not retry in lockstep. The jitter comes from a SplitMix64
//! generator seeded from the connector name, so a run is reproducible without a `rand` dependency.

use std::time::Duration;

/// Retry delays for one batch.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    retry: u32,
    state: u64,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration, seed: &str) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            retry: 0,
            state: fnv1a(seed.as_bytes()),
        }
    }

    /// Starts over for a new batch; the jitter sequence carries on.
    pub(crate) fn reset(&mut self) {
        self.retry = 0;
    }

    /// The delay before the next retry.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let factor = 1u32.checked_shl(self.retry).unwrap_or(u32::MAX);
        let full = self.initial.saturating_mul(factor).min(self.max);
        self.retry = self.retry.saturating_add(1);
        let full_ns = u64::try_from(full.as_nanos()).unwrap_or(u64::MAX);
        let half = full_ns / 2;
        let jitter = if half == 0 {
            0
        } else {
            self.next_u64() % (half + 1)
        };
        Duration::from_nanos(full_ns - half + jitter)
    }

    fn next_u64(&mut self) -> u64 {
        // SplitMix64 (Steele, Lea, Flood 2014): tiny, fast and good enough for jitter.
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(initial_ms: u64, max_ms: u64, expected_full_ms: &[u64]) {
        let mut b = Backoff::new(
            Duration::from_millis(initial_ms),
            Duration::from_millis(max_ms),
            "Hook",
        );
        for full in expected_full_ms {
            let d = b.next_delay();
            let full = Duration::from_millis(*full);
            assert!(
                d >= full / 2 && d <= full,
                "{d:?} not in [{:?}, {full:?}]",
                full / 2
            );
        }
    }

    #[test]
    fn delays_double_and_cap() {
        check(100, 1_000, &[100, 200, 400, 800, 1_000, 1_000]);
    }

    #[test]
    fn many_retries_do_not_overflow() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30), "x");
        for _ in 0..100 {
            assert!(b.next_delay() <= Duration::from_secs(30));
        }
    }

    #[test]
    fn jitter_is_deterministic_per_seed() {
        let delays = |seed| {
            let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10), seed);
            (0..5).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(delays("A"), delays("A"));
        assert_ne!(delays("A"), delays("B"));
    }

    #[test]
    fn reset_starts_from_initial_delay() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10), "A");
        for _ in 0..5 {
            b.next_delay();
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}

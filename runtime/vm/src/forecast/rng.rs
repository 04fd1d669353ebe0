//! A small deterministic generator (xorshift64*) for the test streams of
//! the forecasting models: seeded, so every run sees the same stream.

/// The generator; the seed must not be zero.
pub(crate) struct Rng(pub u64);

impl Rng {
    /// The next number in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

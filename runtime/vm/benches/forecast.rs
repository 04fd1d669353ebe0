//! `.forecast` model throughput, driving `varpulis_vm::forecast::Forecaster`
//! directly with the progress states of a three-step sequence: 100 keys, a
//! seeded random stream of states, with the `balanced` and `accurate`
//! presets and a short and a long horizon. States and keys are built
//! outside the timed loop.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::sync::Arc;
use varpulis_program::{ForecastHorizon, ForecastSpec, Value, ValueKey};
use varpulis_vm::forecast::Forecaster;

const N: usize = 50_000;
const MS: i64 = 1_000_000;

/// `(key, state)` pairs: 100 keys, states 0..=3 from a xorshift stream.
fn feed() -> Vec<(ValueKey, u16)> {
    let keys: Vec<ValueKey> = (0..100)
        .map(|k| ValueKey(Value::str(format!("k{k}"))))
        .collect();
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..N)
        .map(|i| {
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            let s = (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 62) as u16;
            (keys[i % 100].clone(), s)
        })
        .collect()
}

fn spec(max_depth: u8, horizon: u32) -> ForecastSpec {
    ForecastSpec {
        confidence: 0.5,
        horizon: ForecastHorizon::Events(horizon),
        warmup: 100,
        max_depth,
        hawkes: true,
        conformal: true,
        states: ["start", "a", "b", "complete"]
            .iter()
            .map(|s| Arc::from(*s))
            .collect(),
        schema: 0,
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("forecast");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    let input = feed();
    for (name, depth, horizon) in [
        ("balanced_horizon_3", 3, 3),
        ("balanced_horizon_32", 3, 32),
        ("accurate_horizon_3", 5, 3),
    ] {
        let s = spec(depth, horizon);
        g.bench_function(name, |b| {
            b.iter_batched(
                || Forecaster::new(&s, 3),
                |mut f| {
                    let mut n = 0usize;
                    for (i, (k, st)) in input.iter().enumerate() {
                        if f.observe(Some(k), *st, i as i64 * MS).is_some() {
                            n += 1;
                        }
                    }
                    n
                },
                BatchSize::LargeInput,
            );
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

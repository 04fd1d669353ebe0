//! Matcher throughput, driving `varpulis_vm::sequence::Matcher` directly with
//! trivial predicates (no interpreter): an A→B sequence over 1,000 open keys,
//! and a rising-price Kleene pattern over 100 symbols. Events, keys and specs
//! are built outside the timed loop.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::sync::Arc;
use varpulis_program::{Event, Kleene, Value, ValueKey};
use varpulis_vm::sequence::{
    Bindings, FnPredicates, Limits, Matcher, MatcherSpec, Output, StepSpec,
};

const N: usize = 100_000;
const MS: i64 = 1_000_000;

/// `(input, key, event)` triples.
type Feed = Vec<(u32, ValueKey, Arc<Event>)>;

/// 1,000 keys; rounds of one A per key then one B per key, 1 ms apart.
fn ab_events() -> Feed {
    let keys: Vec<ValueKey> = (0..1000)
        .map(|k| ValueKey(Value::str(format!("k{k}"))))
        .collect();
    (0..N)
        .map(|i| {
            let ty = ((i / 1000) % 2) as u32;
            let ev = Event::new(ty, i as i64 * MS, vec![Some(Value::Int(i as i64))]);
            (ty, keys[i % 1000].clone(), Arc::new(ev))
        })
        .collect()
}

/// 100 symbols, each a deterministic random walk of prices, 1 ms apart.
fn tick_events() -> Feed {
    let syms: Vec<ValueKey> = (0..100)
        .map(|k| ValueKey(Value::str(format!("S{k}"))))
        .collect();
    let mut px = [100i64; 100];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..N)
        .map(|i| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let s = i % 100;
            px[s] += ((seed >> 33) % 5) as i64 - 2;
            let ev = Event::new(0, i as i64 * MS, vec![Some(Value::Float(px[s] as f64))]);
            (0, syms[s].clone(), Arc::new(ev))
        })
        .collect()
}

fn price(e: &Event) -> f64 {
    match e.get(0) {
        Some(Value::Float(f)) => *f,
        _ => f64::NAN,
    }
}

fn run<P: varpulis_vm::sequence::Predicates>(m: &mut Matcher, evs: &Feed, p: &mut P) -> usize {
    let mut out = Output::default();
    let mut n = 0;
    for (input, key, ev) in evs {
        if m.next_timer().is_some_and(|d| d <= ev.time) {
            m.on_watermark(ev.time, &mut out);
        }
        m.on_event(*input, Some(key), ev, p, &mut out);
        n += out.matches.len();
        out.clear();
    }
    n
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("sequence");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);

    // A as a -> B as b .within(1m) .partition_by(key)
    let ab = ab_events();
    let mut spec = MatcherSpec::seq(
        vec![
            StepSpec::one(0, Some(0), false),
            StepSpec::one(1, Some(1), false),
        ],
        2,
    );
    spec.within = Some(60_000 * MS);
    g.bench_function("a_then_b_1000_keys", |b| {
        b.iter_batched(
            || Matcher::new(spec.clone(), Limits::default()).expect("valid"),
            |mut m| {
                let mut p = FnPredicates(
                    |_: usize, _: &Event, _: &Bindings| true,
                    |_: usize, _: &Event, _: &Bindings| true,
                );
                run(&mut m, &ab, &mut p)
            },
            BatchSize::LargeInput,
        );
    });

    // SEQ(Tick as f, Tick+ where price > prev as up, Tick where price < up.price as l)
    //     within 60s partition by symbol
    let ticks = tick_events();
    let mut spec = MatcherSpec::seq(
        vec![
            StepSpec::one(0, Some(0), false),
            StepSpec {
                input: 0,
                kleene: Kleene::Plus,
                alias: Some(1),
                has_filter: true,
            },
            StepSpec::one(0, Some(2), true),
        ],
        3,
    );
    spec.within = Some(60_000 * MS);
    g.bench_function("rising_kleene_100_symbols", |b| {
        b.iter_batched(
            || Matcher::new(spec.clone(), Limits::default()).expect("valid"),
            |mut m| {
                let mut p = FnPredicates(
                    |step: usize, e: &Event, b: &Bindings| {
                        let prev = b.get(1).or_else(|| b.get(0)).map_or(f64::NAN, |x| price(x));
                        if step == 1 {
                            price(e) > prev
                        } else {
                            price(e) < prev
                        }
                    },
                    |_: usize, _: &Event, _: &Bindings| true,
                );
                run(&mut m, &ticks, &mut p)
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

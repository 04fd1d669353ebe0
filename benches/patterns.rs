//! In-engine throughput of sequence patterns, compiled from VPL.
//!
//! The scenarios are `benches/scenarios/sequence_ab.vpl` (A then B on the
//! same key, 1,000 open keys) and `kleene_rising.vpl` (first tick, one or
//! more higher ticks, a last higher tick; within 60s, partitioned by symbol;
//! 100 symbols). Compilation and event construction happen outside the timed
//! loop; each iteration loads a fresh engine and pushes every event with
//! [`varpulis_vm::Engine::push_into`]. Figures: docs/PERFORMANCE.md.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use varpulis_program::{Event, Program, Value};
use varpulis_vm::Engine;

const EVENTS: usize = 100_000;

/// Compiles a scenario file with the compiler host.
fn compile(file: &str) -> Arc<Program> {
    let path = format!("{}/benches/scenarios/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("scenario file is readable");
    let mut c = varpulis_compiler::Compiler::new();
    c.set_file(&path, text);
    Arc::new(c.program(&path).expect("scenario compiles"))
}

/// Alternating A and B events over 1,000 keys, 0.5 ms apart: the A of
/// pair `p` has key `p % 1000` and the B of pair `p` key `(p + 1) % 1000`, so
/// each run is completed 999 pairs (0.999 s) after it opened and about
/// 1,000 runs are open at any time.
fn ab_events(p: &Program) -> Vec<Event> {
    let a = p.schema_id("A").expect("schema A");
    let b = p.schema_id("B").expect("schema B");
    let keys: Vec<Value> = (0..1000).map(|k| Value::str(format!("k{k}"))).collect();
    (0..EVENTS)
        .map(|i| {
            let pair = i / 2;
            let (ty, k) = if i % 2 == 0 {
                (a, pair % 1000)
            } else {
                (b, (pair + 1) % 1000)
            };
            Event::new(
                ty,
                i as i64 * 500_000,
                vec![Some(keys[k].clone()), Some(Value::Int(i as i64))],
            )
        })
        .collect()
}

/// Stock ticks over 100 symbols, 10 ms apart: a seeded random walk per
/// symbol drifting upwards (steps in [-1, 1.5)), like `benches/generate.py`.
fn tick_events(p: &Program) -> Vec<Event> {
    let ty = p.schema_id("StockTick").expect("schema StockTick");
    let syms: Vec<Value> = (0..100).map(|s| Value::str(format!("S{s}"))).collect();
    let mut price = vec![100.0f64; 100];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..EVENTS)
        .map(|i| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let s = (seed % 100) as usize;
            let step = ((seed >> 32) % 250) as f64 / 100.0 - 1.0;
            price[s] = (price[s] + step).max(1.0);
            Event::new(
                ty,
                i as i64 * 10_000_000,
                vec![Some(syms[s].clone()), Some(Value::Float(price[s]))],
            )
        })
        .collect()
}

fn run(c: &mut Criterion, name: &str, program: Arc<Program>, events: Vec<Event>) {
    let mut g = c.benchmark_group("patterns");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.sample_size(10);
    g.bench_function(name, |bch| {
        bch.iter_batched(
            || {
                (
                    Engine::new(program.clone()).expect("program loads"),
                    events.clone(),
                )
            },
            |(mut engine, events)| {
                let mut out = Vec::new();
                for e in events {
                    engine.push_into(e, &mut out);
                    out.clear();
                }
                engine
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

fn patterns(c: &mut Criterion) {
    let ab = compile("sequence_ab.vpl");
    let events = ab_events(&ab);
    run(c, "sequence_ab_1000_keys", ab, events);
    let rising = compile("kleene_rising.vpl");
    let events = tick_events(&rising);
    run(c, "kleene_rising_100_symbols", rising, events);
}

criterion_group!(benches, patterns);
criterion_main!(benches);

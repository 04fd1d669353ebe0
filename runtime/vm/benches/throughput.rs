//! Engine throughput on hand-built programs: a filter, and a partitioned
//! count-window aggregation. Programs and events are built outside the timed
//! loop.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use varpulis_program::{AggFunc, EmitSpec, Event, Instr, OpSpec, Value, WindowSpec};
use varpulis_vm::testing::{compare, event, field, input, ProgramBuilder};
use varpulis_vm::Engine;

const N: usize = 100_000;

fn events() -> Vec<Event> {
    let pumps: Vec<Value> = (0..100).map(|i| Value::str(format!("P{i}"))).collect();
    (0..N)
        .map(|i| {
            event(
                0,
                i as i64 * 1_000_000,
                vec![pumps[i % 100].clone(), Value::Float((i % 17) as f64)],
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let evs = events();
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);

    // stream Hot = Reading.where(bar > 8.0)  (feeds nothing, no outputs)
    let mut b = ProgramBuilder::new();
    let r = b.event("Reading", &["pump", "bar"]);
    b.passthrough_stream(
        "Hot",
        input(r),
        vec![OpSpec::Filter(compare(1, Instr::Gt, Value::Float(8.0)))],
        r,
    );
    let filter = b.build();
    g.bench_function("filter", |bch| {
        bch.iter_batched(
            || {
                (
                    Engine::new(filter.clone()).expect("loads"),
                    evs.clone(),
                    Vec::new(),
                )
            },
            |(mut e, evs, mut out)| {
                for ev in evs {
                    e.push_into(ev, &mut out);
                }
                out.len()
            },
            BatchSize::LargeInput,
        );
    });

    // stream Stats = Reading.partition_by(pump).window(100)
    //     .aggregate(n: count(), avg: avg(bar), max: max(bar)).emit()
    let mut b = ProgramBuilder::new();
    let r = b.event("Reading", &["pump", "bar"]);
    let (agg, schema) = b.aggregate(
        "Stats",
        &[
            ("n", AggFunc::Count, None, None),
            ("avg", AggFunc::Avg, Some(1), None),
            ("max", AggFunc::Max, Some(1), None),
        ],
        Some("pump"),
    );
    b.stream(
        "Stats",
        input(r),
        vec![
            OpSpec::PartitionBy(field(0)),
            OpSpec::Window(WindowSpec::Count { size: 100 }),
            agg,
            OpSpec::Emit(EmitSpec {
                items: None,
                schema,
            }),
        ],
        schema,
    );
    let agg = b.build();
    g.bench_function("partitioned_count_window_aggregate", |bch| {
        bch.iter_batched(
            || {
                (
                    Engine::new(agg.clone()).expect("loads"),
                    evs.clone(),
                    Vec::new(),
                )
            },
            |(mut e, evs, mut out)| {
                for ev in evs {
                    e.push_into(ev, &mut out);
                }
                out.len()
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

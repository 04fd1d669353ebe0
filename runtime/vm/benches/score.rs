//! `.score` batched against per event, side by side on the same model and
//! rows: the model alone (one run of 256 rows against 256 runs of one row),
//! and the engine (a `.score` fed one event per step against one fed 256
//! events per step by a count window). Models and events are built outside
//! the timed loop. Run: `cargo bench -p varpulis-vm --bench score`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::sync::Arc;
use varpulis_program::{EmitSpec, Event, OpSpec, ScoreSpec, SpanId, Value, WindowSpec};
use varpulis_vm::model::onnx::OnnxModel;
use varpulis_vm::model::{Model, Models};
use varpulis_vm::testing::{event, field, input, ProgramBuilder};
use varpulis_vm::{Engine, EngineConfig};

const BATCH: usize = 256;
const N: usize = 16 * BATCH;

fn model() -> OnnxModel {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/corpus/run/score/linear.onnx"
    );
    let bytes = std::fs::read(path).expect("the committed test model");
    OnnxModel::from_bytes(&bytes, 3).expect("loads")
}

fn rows(n: usize) -> Vec<f64> {
    (0..n * 3).map(|i| (i % 97) as f64 * 0.25 - 7.0).collect()
}

fn events() -> Vec<Event> {
    let x = rows(N);
    x.chunks(3)
        .enumerate()
        .map(|(i, r)| {
            event(
                0,
                i as i64 * 1_000_000,
                r.iter().map(|v| Value::Float(*v)).collect(),
            )
        })
        .collect()
}

/// `stream Scored = Reading[.window(BATCH)].score(linear.onnx).emit()`.
fn engine(windowed: bool) -> Engine {
    let mut b = ProgramBuilder::new();
    let t = b.event("Reading", &["a", "b", "c"]);
    let out = b.layout("Scored", &["a", "b", "c", "y"]);
    let mut ops = Vec::new();
    if windowed {
        ops.push(OpSpec::Window(WindowSpec::Count { size: BATCH as u64 }));
    }
    ops.push(OpSpec::Score(ScoreSpec {
        model: Arc::from("linear.onnx"),
        path: Arc::from("linear.onnx"),
        inputs: ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, n)| (Arc::from(*n), field(i as u16)))
            .collect(),
        outputs: vec![(Arc::from("y"), 3)],
        schema: out,
        span: SpanId::NONE,
    }));
    ops.push(OpSpec::Emit(EmitSpec {
        items: None,
        schema: out,
    }));
    b.stream("Scored", input(t), ops, out);
    let mut models = Models::new();
    models.insert("linear.onnx", Arc::new(model()));
    Engine::with_models(b.build(), EngineConfig::default(), &models).expect("loads")
}

fn bench(c: &mut Criterion) {
    let m = model();
    let x = rows(BATCH);
    let mut g = c.benchmark_group("score_model");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("batched_256", |b| {
        b.iter(|| m.run(BATCH, &x).expect("runs"));
    });
    g.bench_function("per_row", |b| {
        b.iter(|| {
            for r in x.chunks(3) {
                m.run(1, r).expect("runs");
            }
        });
    });
    g.finish();

    let evs = events();
    let mut g = c.benchmark_group("score_engine");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);
    for (name, windowed) in [("window_256_batches", true), ("per_event", false)] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || (engine(windowed), evs.clone()),
                |(mut e, evs)| {
                    let mut n = 0;
                    let mut out = Vec::new();
                    for ev in evs {
                        e.push_into(ev, &mut out);
                        n += out.len();
                        out.clear();
                    }
                    assert_eq!(n, N);
                },
                BatchSize::LargeInput,
            );
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

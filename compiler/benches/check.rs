//! Check-time benchmarks: a cold check of a generated 10,000-line program
//! (target < 100 ms) and the incremental re-check after a one-line edit in a
//! 5,000-line program (target < 5 ms). Program generation stays outside the
//! timed loops.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use varpulis_compiler::Compiler;

/// A program of about `lines` lines: 20 event types and many streams of
/// filters, windows, aggregates, sequences and emits.
fn program(lines: usize) -> String {
    let mut s = String::new();
    for e in 0..20 {
        s.push_str(&format!(
            "event E{e}:\n    key: str\n    v: float\n    n: int\n    tag: str?\n\n"
        ));
    }
    let mut i = 0;
    while s.lines().count() < lines {
        let e = i % 20;
        match i % 4 {
            0 => s.push_str(&format!(
                "stream S{i} = E{e}\n    .where(v > {i}.0 and n < 10)\n    .emit(key: key, w: v * 2.0)\n\n"
            )),
            1 => s.push_str(&format!(
                "stream S{i} = E{e}\n    .partition_by(key)\n    .window(1m)\n    .aggregate(m: avg(v), c: count())\n    .having(c > 2)\n\n"
            )),
            2 => s.push_str(&format!(
                "stream S{i} = E{e} as a\n    -> E{} where key == a.key and v > a.v as b\n    .within(5m)\n    .emit(key: a.key, d: b.v - a.v)\n\n",
                (e + 1) % 20
            )),
            _ => s.push_str(&format!(
                "stream S{i} = S{}\n    .where(w > 1.0)\n    .emit(key: key, level: if w > 10.0 then \"hi\" else \"lo\")\n\n",
                i - 3
            )),
        }
        i += 1;
    }
    s
}

fn cold(c: &mut Criterion) {
    let text = program(10_000);
    c.bench_function("check cold 10k lines", |b| {
        b.iter_batched(
            || text.clone(),
            |text| {
                let mut compiler = Compiler::new();
                compiler.set_file("big.vpl", text);
                compiler.check("big.vpl").len()
            },
            BatchSize::LargeInput,
        )
    });
}

fn incremental(c: &mut Criterion) {
    let text = program(5_000);
    let needle = "v > 600.0";
    assert!(
        text.contains(needle),
        "the generated program has stream S600"
    );
    let edited = text.replacen(needle, "v > 601.0", 1);
    let mut compiler = Compiler::new();
    compiler.set_file("big.vpl", text.clone());
    compiler.check("big.vpl");
    let mut flip = false;
    c.bench_function("check incremental one-line edit 5k lines", |b| {
        b.iter_batched(
            || {
                flip = !flip;
                if flip {
                    edited.clone()
                } else {
                    text.clone()
                }
            },
            |t| {
                compiler.set_file("big.vpl", t);
                compiler.check("big.vpl").len()
            },
            BatchSize::LargeInput,
        )
    });
}

criterion_group!(benches, cold, incremental);
criterion_main!(benches);

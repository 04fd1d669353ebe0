//! Editor latencies on a 5,000-line file: diagnostics after a one-line edit,
//! completion and hover, each measured through the same compiler queries
//! and protocol conversions the server runs per request (the compiler is
//! warmed up outside the timed loop).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use varpulis_compiler::{ide, Compiler};
use varpulis_lsp::convert;
use varpulis_lsp::position::Lines;

const PATH: &str = "file:///bench.vpl";

/// A realistic program of at least `lines` lines: blocks of an event type,
/// an aggregating stream and an alerting stream.
fn program(lines: usize) -> String {
    let mut s = String::from("connector Alerts = console ()\n\nconst THRESHOLD = 25.0\n\n");
    let mut i = 0;
    while s.lines().count() < lines {
        s.push_str(&format!(
            "event Reading{i}:\n    zone: str\n    sensor: str\n    temp: float\n    humidity: float\n\n\
             stream Avg{i} = Reading{i}\n    .where(temp > {i}.0 and humidity < 90.0)\n    .partition_by(zone)\n    \
             .window(5m)\n    .aggregate(avg_temp: avg(temp), readings: count(), peak: max(temp))\n    \
             .emit(zone: zone, avg_temp: avg_temp, readings: readings)\n\n\
             stream Hot{i} = Avg{i}\n    .where(avg_temp > THRESHOLD)\n    .emit(zone: zone, avg_temp: avg_temp)\n    \
             .to(Alerts)\n\n"
        ));
        i += 1;
    }
    s
}

/// What the server does after the debounce: check, then convert.
fn publish(c: &Compiler) -> usize {
    let text = c.text(PATH).expect("file is open");
    let lines = Lines::new(text);
    let uri: tower_lsp_server::ls_types::Uri = PATH.parse().expect("valid URI");
    let diags: Vec<_> = c
        .check(PATH)
        .iter()
        .map(|d| convert::diagnostic(&uri, &lines, d))
        .collect();
    diags.len()
}

fn bench(c: &mut Criterion) {
    let text = program(5_000);
    assert!(text.lines().count() >= 5_000);
    let middle = text.find("stream Avg130 ").expect("block 130 exists");
    let edited = {
        let at = middle + text[middle..].find("130.0").expect("filter constant");
        let mut t = text.clone();
        t.replace_range(at..at + 5, "131.5");
        t
    };
    let mut compiler = Compiler::new();
    compiler.set_file(PATH, text.clone());
    assert_eq!(publish(&compiler), 0, "the benchmark program is valid");

    let mut flip = false;
    c.bench_function("diagnostics after a one-line edit (5,000 lines)", |b| {
        b.iter(|| {
            flip = !flip;
            let t = if flip { &edited } else { &text };
            compiler.set_file(PATH, t.as_str());
            black_box(publish(&compiler))
        })
    });

    compiler.set_file(PATH, text.clone());
    let where_at = middle + text[middle..].find("temp >").expect("filter");
    let hover_at = (where_at + 1) as u32;
    c.bench_function("hover on a field (5,000 lines)", |b| {
        b.iter(|| {
            let lines = Lines::new(&text);
            let off = lines.offset(lines.position(hover_at));
            black_box(ide::hover(&compiler, PATH, off).expect("a field"))
        })
    });
    c.bench_function("completion in .where( (5,000 lines)", |b| {
        b.iter(|| {
            let lines = Lines::new(&text);
            let off = lines.offset(lines.position(where_at as u32));
            black_box(ide::completions(&compiler, PATH, off).items.len())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

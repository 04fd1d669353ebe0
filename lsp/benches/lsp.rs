//! Editor latencies on a 5,000-line file: diagnostics after a one-line edit,
//! completion and hover, each measured through the same snapshots, compiler
//! queries and protocol conversions the server runs per request (the
//! compiler is warmed up outside the timed loop); then hover and completion
//! again while another thread checks a second 5,000-line file from scratch,
//! as they run in the server while a long check is in progress.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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

/// What the server does after the debounce: on a snapshot, check (and
/// lower when clean), then convert.
fn publish(c: &Compiler) -> usize {
    let snapshot = c.snapshot();
    let text = snapshot.text(PATH).expect("file is open");
    let lines = Lines::new(text);
    let uri: tower_lsp_server::ls_types::Uri = PATH.parse().expect("valid URI");
    let diags: Vec<_> = snapshot
        .check_and_lower(PATH)
        .iter()
        .map(|d| convert::diagnostic(&uri, &lines, d))
        .collect();
    diags.len()
}

/// What the server does for a hover: a snapshot, then the query.
fn hover(c: &Compiler, at: u32) -> usize {
    let snapshot = c.snapshot();
    let text = snapshot.text(PATH).expect("file is open");
    let lines = Lines::new(text);
    let off = lines.offset(lines.position(at));
    ide::hover(&snapshot, PATH, off)
        .expect("a field")
        .markdown
        .len()
}

/// What the server does for a completion: a snapshot, then the query.
fn complete(c: &Compiler, at: u32) -> usize {
    let snapshot = c.snapshot();
    let text = snapshot.text(PATH).expect("file is open");
    let lines = Lines::new(text);
    let off = lines.offset(lines.position(at));
    ide::completions(&snapshot, PATH, off).items.len()
}

/// `text` with a comment before every item, so that every item is new to
/// the compiler: the next check re-parses and re-checks the whole file.
fn every_item_changed(text: &str, revision: u64) -> String {
    text.replace("\n\n", &format!("\n\n# revision {revision}\n"))
}

/// A second open document: the one whose check runs meanwhile.
const OTHER: &str = "file:///other.vpl";

/// Times `op` (a hover or a completion at `at` in `PATH`, whose analyses
/// are memoised) while another thread checks `OTHER`, a 5,000-line file
/// of which every item was just edited, as the server's diagnostics run
/// does. Setting the text and waiting for the check are outside the timing.
fn during_check(
    compiler: &mut Compiler,
    base: &str,
    revision: &mut u64,
    iters: u64,
    (op, at): (fn(&Compiler, u32) -> usize, u32),
    overlapped: &mut (u64, u64),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        *revision += 1;
        compiler.set_file(OTHER, every_item_changed(base, *revision));
        let snapshot = compiler.snapshot();
        let done = AtomicBool::new(false);
        let (started_tx, started) = mpsc::channel();
        std::thread::scope(|scope| {
            let finished = &done;
            scope.spawn(move || {
                let _ = started_tx.send(());
                black_box(snapshot.check_and_lower(OTHER).len());
                finished.store(true, Ordering::SeqCst);
            });
            started.recv().expect("the check starts");
            let t = Instant::now();
            black_box(op(compiler, at));
            total += t.elapsed();
            overlapped.1 += 1;
            if !done.load(Ordering::SeqCst) {
                overlapped.0 += 1;
            }
        });
    }
    total
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
    let where_at = (middle + text[middle..].find("temp >").expect("filter")) as u32;
    c.bench_function("hover on a field (5,000 lines)", |b| {
        b.iter(|| black_box(hover(&compiler, where_at + 1)))
    });
    c.bench_function("completion in .where( (5,000 lines)", |b| {
        b.iter(|| black_box(complete(&compiler, where_at)))
    });

    // While another thread checks a second 5,000-line file from scratch.
    let mut group = c.benchmark_group("while another 5,000-line file is checked");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut revision = 0;
    let mut overlapped = (0, 0);
    group.bench_function("hover", |b| {
        b.iter_custom(|iters| {
            during_check(
                &mut compiler,
                &text,
                &mut revision,
                iters,
                (hover, where_at + 1),
                &mut overlapped,
            )
        })
    });
    let hover_overlap = overlapped;
    overlapped = (0, 0);
    group.bench_function("completion", |b| {
        b.iter_custom(|iters| {
            during_check(
                &mut compiler,
                &text,
                &mut revision,
                iters,
                (complete, where_at),
                &mut overlapped,
            )
        })
    });
    group.finish();
    println!(
        "answered before the other file's check finished: hover {}/{}, completion {}/{}",
        hover_overlap.0, hover_overlap.1, overlapped.0, overlapped.1
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);

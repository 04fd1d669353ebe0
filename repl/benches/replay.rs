//! Replaying 100K generated events through a [`Session`] (`:replay`), the
//! path a user takes with a large `.evt` file. The file is written and the
//! rules compiled outside the timed loop; each iteration resets the session.

use criterion::{criterion_group, criterion_main, Criterion};
use std::io::Write;
use varpulis_repl::Session;

const EVENTS: usize = 100_000;

const RULES: &str = "event Reading:
    sensor: str
    temp: float

stream Hot = Reading
    .where(temp > 30.0)
    .emit(sensor: sensor, temp: temp)

stream Avg = Reading
    .partition_by(sensor)
    .window(1m)
    .aggregate(avg_temp: avg(temp), n: count())
    .emit(sensor: sensor, avg_temp: avg_temp, n: n)
";

fn events_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("events.evt");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("create events file"));
    for i in 0..EVENTS {
        let temp = 20.0 + (i % 17) as f64;
        writeln!(
            f,
            "@{}ms Reading {{ sensor: \"s{}\", temp: {temp:.1} }}",
            i * 10,
            i % 50
        )
        .expect("write events file");
    }
    f.flush().expect("flush events file");
    path
}

fn replay(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = events_file(dir.path());
    let mut session = Session::new();
    let defined = session.handle_line(RULES);
    assert!(defined.iter().all(|l| !l.contains("error")), "{defined:?}");
    let cmd = format!(":replay {}", path.display());
    let mut group = c.benchmark_group("repl");
    group.sample_size(10);
    group.bench_function("replay_100k_events", |b| {
        b.iter(|| {
            session.handle_line(":reset");
            let out = session.handle_line(&cmd);
            assert!(out[0].starts_with("replayed 100000 events"), "{out:?}");
        })
    });
    group.finish();
}

criterion_group!(benches, replay);
criterion_main!(benches);

//! What a RocksStore commit costs on a store of 100K entries (100-byte
//! values in 8 tables), to compare builds with and without the retained
//! copies of each commit (docs/PERFORMANCE.md, "State backends").
//!
//! - `update_10`: change 10 entries and commit.
//! - `checkpoint`: what `Engine::save_state` plus a commit does: clear, put
//!   every entry again, commit.
//!
//! The store is filled outside the timed loop.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;
use varpulis_state::{RocksStore, StateStore};

const N: usize = 100_000;
const VALUE: usize = 100;

fn key(i: usize) -> [u8; 8] {
    (i as u64).to_be_bytes()
}

fn table(i: usize) -> String {
    format!("stream/{}", i % 8)
}

/// Clear, N puts, commit.
fn checkpoint(s: &mut RocksStore, round: u8) {
    s.clear().expect("clear");
    for i in 0..N {
        s.put(&table(i), &key(i), vec![round; VALUE]).expect("put");
    }
    s.commit().expect("commit");
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = RocksStore::open(dir.path()).expect("open");
    checkpoint(&mut s, 0);

    let mut g = c.benchmark_group("rocks_commit/update_10");
    g.throughput(Throughput::Elements(10));
    g.sample_size(30);
    g.measurement_time(Duration::from_secs(10));
    let mut round = 0usize;
    g.bench_function(BenchmarkId::from_parameter(N), |b| {
        b.iter(|| {
            round += 1;
            for i in 0..10 {
                let at = (round * 10 + i) * 7919 % N;
                s.put(&table(at), &key(at), vec![1; VALUE]).expect("put");
            }
            s.commit().expect("commit");
        })
    });
    g.finish();

    let mut g = c.benchmark_group("rocks_commit/checkpoint");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    let mut round = 0u8;
    g.bench_function(BenchmarkId::from_parameter(N), |b| {
        b.iter(|| {
            round = round.wrapping_add(1);
            checkpoint(&mut s, round);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

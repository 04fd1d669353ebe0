//! State get/put per backend: MemoryStore, FileStore and (with the `rocksdb`
//! feature) RocksStore.
//!
//! - `checkpoint`: what `Engine::save_state` plus a commit does: clear, put
//!   N entries, commit.
//! - `update`: change 10 entries of a committed store of N and commit (a
//!   FileStore rewrites everything; RocksDB writes the 10).
//! - `get`: read all N entries by key, on a fresh store after one checkpoint.
//! - `get_after_churn`: the same on the stores the benches above kept
//!   rewriting (for RocksDB: many versions of each key, not yet compacted).
//!
//! Stores and their directories are made outside the timed loop.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::path::Path;
use varpulis_state::{FileStore, MemoryStore, StateStore};

const N: usize = 10_000;
const VALUE: usize = 100;

fn key(i: usize) -> [u8; 8] {
    (i as u64).to_be_bytes()
}

fn table(i: usize) -> String {
    format!("stream/{}", i % 8)
}

/// Clear, N puts, commit.
fn checkpoint(s: &mut dyn StateStore, round: u8) {
    s.clear().expect("clear");
    for i in 0..N {
        s.put(&table(i), &key(i), vec![round; VALUE]).expect("put");
    }
    s.commit().expect("commit");
}

/// Each backend under its name, opened on a fresh directory.
fn stores(dirs: &mut Vec<tempfile::TempDir>) -> Vec<(&'static str, Box<dyn StateStore>)> {
    let mut dir = || {
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().to_path_buf();
        dirs.push(d);
        path
    };
    let memory: Box<dyn StateStore> = Box::new(MemoryStore::new());
    let file: Box<dyn StateStore> = Box::new(FileStore::open(&dir()).expect("open"));
    [("memory", memory), ("file", file)]
        .into_iter()
        .chain(rocks(&dir()).map(|s| ("rocksdb", s)))
        .collect()
}

#[cfg(feature = "rocksdb")]
fn rocks(dir: &Path) -> Option<Box<dyn StateStore>> {
    Some(Box::new(
        varpulis_state::RocksStore::open(dir).expect("open"),
    ))
}

/// Without the `rocksdb` feature there is no RocksDB to measure.
#[cfg(not(feature = "rocksdb"))]
fn rocks(_dir: &Path) -> Option<Box<dyn StateStore>> {
    None
}

fn bench(c: &mut Criterion) {
    let mut dirs = Vec::new();
    let mut backends = stores(&mut dirs);

    let mut g = c.benchmark_group("state/checkpoint");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    for (name, s) in backends.iter_mut() {
        let mut round = 0u8;
        g.bench_function(BenchmarkId::new(*name, N), |b| {
            b.iter(|| {
                round = round.wrapping_add(1);
                checkpoint(s.as_mut(), round);
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("state/update_10");
    g.throughput(Throughput::Elements(10));
    g.sample_size(20);
    for (name, s) in backends.iter_mut() {
        checkpoint(s.as_mut(), 0);
        let mut round = 0usize;
        g.bench_function(BenchmarkId::new(*name, N), |b| {
            b.iter(|| {
                round += 1;
                for i in 0..10 {
                    let at = (round * 10 + i) * 7919 % N;
                    s.put(&table(at), &key(at), vec![1; VALUE]).expect("put");
                }
                s.commit().expect("commit");
            })
        });
    }
    g.finish();

    let tables: Vec<String> = (0..N).map(table).collect();
    let mut g = c.benchmark_group("state/get");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);
    let mut fresh_dirs = Vec::new();
    for (name, s) in stores(&mut fresh_dirs).iter_mut() {
        checkpoint(s.as_mut(), 0);
        g.bench_function(BenchmarkId::new(*name, N), |b| {
            b.iter(|| {
                for (i, t) in tables.iter().enumerate() {
                    black_box(s.get(t, &key(i)).expect("get"));
                }
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("state/get_after_churn");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);
    for (name, s) in backends.iter_mut() {
        checkpoint(s.as_mut(), 0);
        g.bench_function(BenchmarkId::new(*name, N), |b| {
            b.iter(|| {
                for (i, t) in tables.iter().enumerate() {
                    black_box(s.get(t, &key(i)).expect("get"));
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

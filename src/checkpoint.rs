//! Checkpoints of a live run (`varpulis run --state-dir DIR`).
//!
//! A checkpoint is the engine's whole state (windows, aggregates, partial
//! matches, joins, the watermark) plus, for every subscription that can
//! replay (files, Kafka), the position up to which the engine has seen its
//! records. Both go into one durable [`StateStore`] commit, so they always
//! agree. On start, a run with a checkpoint restores the engine and resumes
//! its replaying sources from those positions: what the restored state has
//! seen is not read again, what it has not seen is.
//!
//! Table `host` holds `positions` (JSON: subscription key → record stream →
//! next offset) and `program` (the stream names, for a clear message when
//! the checkpoint belongs to another program); the engine's tables are its
//! own (runtime/vm snapshot.rs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use varpulis_state::{open_durable, StateStore, DURABLE_BACKEND};

use crate::job::Job;

/// Positions of every subscription: subscription key → record stream → next
/// offset.
pub type Positions = BTreeMap<String, BTreeMap<String, u64>>;

const HOST: &str = "host";

/// Where checkpoints go and when the next one is due.
pub struct Checkpointer {
    store: Box<dyn StateStore + Send>,
    /// Whether the directory held a checkpoint when opened.
    recovered: bool,
    dir: PathBuf,
    interval: Duration,
    last: Instant,
    /// Checkpoints written by this run.
    pub written: u64,
    /// Checkpoints that failed (each reported).
    pub failed: u64,
}

impl Checkpointer {
    /// Opens (or creates) the state directory.
    pub fn open(dir: &Path, interval: Duration) -> anyhow::Result<Checkpointer> {
        let store = open_durable(dir)
            .with_context(|| format!("cannot open the state directory `{}`", dir.display()))?;
        // Every checkpoint writes `host/program`, so its presence means one was committed.
        let recovered = store.get(HOST, b"program")?.is_some();
        Ok(Checkpointer {
            store,
            recovered,
            dir: dir.to_path_buf(),
            interval,
            last: Instant::now(),
            written: 0,
            failed: 0,
        })
    }

    /// Whether the directory held a checkpoint.
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// The state backend of this build (`file` or `rocksdb`).
    pub fn backend(&self) -> &'static str {
        DURABLE_BACKEND
    }

    /// Loads the checkpoint into `job`'s engine and returns the source
    /// positions it recorded. A checkpoint of another program is an error
    /// that says what to do.
    pub fn restore(&self, job: &mut Job) -> anyhow::Result<Positions> {
        let names: Vec<String> = job
            .program()
            .streams
            .iter()
            .map(|s| s.name.to_string())
            .collect();
        if let Some(bytes) = self.store.get(HOST, b"program")? {
            let saved: Vec<String> = serde_json::from_slice(&bytes).unwrap_or_default();
            if saved != names {
                anyhow::bail!(
                    "the checkpoint in `{}` belongs to a program with the streams [{}], not [{}]; \
                     use another --state-dir, or remove this one to start afresh",
                    self.dir.display(),
                    saved.join(", "),
                    names.join(", ")
                );
            }
        }
        job.engine()
            .load_state(self.store.as_ref())
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| {
                format!(
                    "cannot restore the checkpoint in `{}` (remove it to start afresh)",
                    self.dir.display()
                )
            })?;
        Ok(match self.store.get(HOST, b"positions")? {
            Some(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "the checkpoint in `{}` has unreadable source positions",
                    self.dir.display()
                )
            })?,
            None => Positions::new(),
        })
    }

    /// Whether the interval has passed since the last checkpoint.
    pub fn due(&self) -> bool {
        self.last.elapsed() >= self.interval
    }

    /// Writes the engine's state and `positions` as one durable commit.
    pub fn save(&mut self, job: &mut Job, positions: &Positions) -> anyhow::Result<()> {
        self.last = Instant::now();
        let result = self.write(job, positions);
        match &result {
            Ok(()) => self.written += 1,
            Err(_) => self.failed += 1,
        }
        result
    }

    fn write(&mut self, job: &mut Job, positions: &Positions) -> anyhow::Result<()> {
        job.engine()
            .save_state(self.store.as_mut())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let names: Vec<&str> = job.program().streams.iter().map(|s| &*s.name).collect();
        self.store
            .put(HOST, b"program", serde_json::to_vec(&names)?)?;
        self.store
            .put(HOST, b"positions", serde_json::to_vec(positions)?)?;
        self.store.commit()?;
        Ok(())
    }
}

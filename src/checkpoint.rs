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
//! **Checkpoints are barriers** ([`Checkpointer::save`]): before anything is
//! committed, the `--output` file is flushed and synced and every sink passes
//! its barrier (everything it was sent is delivered and acknowledged, or
//! written and synced, or dead-lettered). A sink that cannot confirm that by
//! the checkpoint timeout fails the checkpoint: nothing is committed, the
//! failure is counted by reason, and the next interval tries again. So a
//! committed checkpoint never covers an output that could still be lost, and
//! sources are told their positions only after the commit.
//!
//! Table `host` holds `positions` (JSON: subscription key → record stream →
//! next offset), `program` (the stream names, for a clear message when
//! the checkpoint belongs to another program), `sinks` (per connector: records
//! sent, for idempotency keys, and the sink's mark, e.g. a file's length),
//! `output` (the `--output` file and its length) and `pipeline` (the id in
//! every record id, written when the directory is first opened so that even a
//! crash before the first checkpoint replays with the same ids); the engine's
//! tables are its own (runtime/vm snapshot.rs). A run with `--workers N`
//! saves, in the same commit, table `shards`: `count` (N) and one engine
//! snapshot per shard (keys `0`..`N-1`); a restart restores each shard, and a
//! restart with another N is refused with the count to use (the shards' state
//! is split by partition key and cannot be split again).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use varpulis_state::{open_durable, StateStore, DURABLE_BACKEND};

use crate::job::{new_pipeline_id, Job, SinkStates};
use crate::output::{OutputFile, OutputMark};

/// Positions of every subscription: subscription key → record stream → next
/// offset.
pub type Positions = BTreeMap<String, BTreeMap<String, u64>>;

const HOST: &str = "host";

/// Why a checkpoint was not committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    /// The `--output` file could not be flushed or synced.
    Output,
    /// A sink could not confirm its records in time (or failed to write them).
    Sink,
    /// The state could not be written to the state directory.
    Store,
    /// The checkpoint is durable but a sink could not publish what it staged for it (a Kafka
    /// transaction that did not commit): fatal, a restart goes back to the checkpoint before.
    Commit,
}

impl Failure {
    /// The label in `/metrics` and the run summary.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Output => "output",
            Failure::Sink => "sink",
            Failure::Store => "store",
            Failure::Commit => "commit",
        }
    }
}

/// What a restart restores besides the engine.
#[derive(Debug, Default)]
pub struct Restored {
    /// Where the replaying sources resume.
    pub positions: Positions,
    /// The `--output` file the checkpoint covers, if it had one.
    pub output: Option<OutputMark>,
    /// Which streams took their saved state.
    pub report: varpulis_vm::StateReport,
    /// Newer checkpoints passed over because a sink never published what they count as
    /// delivered, described.
    pub passed_over: Vec<String>,
}

/// Why one restore attempt failed.
enum RestoreError {
    /// A sink never published the records the checkpoint counts as delivered.
    NotPublished(String),
    /// Anything else: the restore fails.
    Other(anyhow::Error),
}

impl From<anyhow::Error> for RestoreError {
    fn from(e: anyhow::Error) -> Self {
        RestoreError::Other(e)
    }
}

impl From<varpulis_state::StateError> for RestoreError {
    fn from(e: varpulis_state::StateError) -> Self {
        RestoreError::Other(e.into())
    }
}

/// Where checkpoints go and when the next one is due.
pub struct Checkpointer {
    store: Box<dyn StateStore + Send>,
    /// Whether the directory held a checkpoint when opened.
    recovered: bool,
    dir: PathBuf,
    interval: Duration,
    /// How long the sinks' barriers may take.
    timeout: Duration,
    last: Instant,
    pipeline: String,
    /// Checkpoints written by this run.
    pub written: u64,
    /// Checkpoints that failed (each reported).
    pub failed: u64,
    /// Failed checkpoints by reason.
    pub failures: BTreeMap<Failure, u64>,
    /// Checkpoints that failed since the last one that succeeded.
    pub consecutive_failures: u64,
    /// Damaged checkpoints passed over at open for the previous one, described.
    pub damaged: Vec<String>,
}

/// The longest wait between two attempts after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl Checkpointer {
    /// Opens (or creates) the state directory. `timeout` bounds each checkpoint's wait for
    /// the sinks.
    pub fn open(dir: &Path, interval: Duration, timeout: Duration) -> anyhow::Result<Checkpointer> {
        let mut store = open_durable(dir)
            .with_context(|| format!("cannot open the state directory `{}`", dir.display()))?;
        // Damaged checkpoints the store passed over for an older one.
        let damaged = store.warnings();
        // Every checkpoint writes `host/program`, so its presence means one was committed.
        let recovered = store.get(HOST, b"program")?.is_some();
        let pipeline = match store.get(HOST, b"pipeline")? {
            Some(id) => String::from_utf8_lossy(&id).into_owned(),
            None => {
                let id = new_pipeline_id();
                store.put(HOST, b"pipeline", id.clone().into_bytes())?;
                store.commit().with_context(|| {
                    format!("cannot write to the state directory `{}`", dir.display())
                })?;
                id
            }
        };
        Ok(Checkpointer {
            damaged,
            store,
            recovered,
            dir: dir.to_path_buf(),
            interval,
            timeout,
            last: Instant::now(),
            pipeline,
            written: 0,
            failed: 0,
            failures: BTreeMap::new(),
            consecutive_failures: 0,
        })
    }

    /// The pipeline id this state directory gives record ids.
    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    /// Whether the directory held a checkpoint.
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// The state backend of this build (`file` or `rocksdb`).
    pub fn backend(&self) -> &'static str {
        DURABLE_BACKEND
    }

    /// Loads the checkpoint into `job`'s engine, takes its sinks back to it,
    /// and returns the source positions and the `--output` mark it recorded.
    /// A checkpoint of another program is an error that says what to do.
    pub fn restore(&mut self, job: &mut Job) -> anyhow::Result<Restored> {
        self.restore_with(job, varpulis_vm::Compat::Strict)
    }

    /// [`Checkpointer::restore`], choosing what happens to streams whose
    /// definition changed since the checkpoint: with
    /// [`varpulis_vm::Compat::Carry`] (the server's hot updates and restarts)
    /// the unchanged streams keep their state and the others start empty.
    pub fn restore_with(
        &mut self,
        job: &mut Job,
        compat: varpulis_vm::Compat,
    ) -> anyhow::Result<Restored> {
        let mut passed_over = Vec::new();
        loop {
            match self.restore_once(job, compat) {
                Err(RestoreError::NotPublished(why)) => {
                    // A sink staged the records of this checkpoint and never published them:
                    // the checkpoint before it is the last whose outputs are all out.
                    let back = self.store.step_back().with_context(|| {
                        format!("cannot read the checkpoints in `{}`", self.dir.display())
                    })?;
                    let Some(previous) = back else {
                        anyhow::bail!(
                            "cannot restore the checkpoint in `{}`: {why}, and there is no \
                             earlier checkpoint to go back to (remove the directory to start \
                             afresh)",
                            self.dir.display()
                        );
                    };
                    passed_over.push(format!(
                        "{why}; restored the checkpoint before it (`{previous}`)"
                    ));
                }
                Err(RestoreError::Other(e)) => return Err(e),
                Ok(mut restored) => {
                    restored.passed_over = passed_over;
                    return Ok(restored);
                }
            }
        }
    }

    fn restore_once(
        &self,
        job: &mut Job,
        compat: varpulis_vm::Compat,
    ) -> Result<Restored, RestoreError> {
        let names: Vec<String> = job
            .program()
            .streams
            .iter()
            .map(|s| s.name.to_string())
            .collect();
        if let Some(bytes) = self.store.get(HOST, b"program")? {
            let saved: Vec<String> = serde_json::from_slice(&bytes).unwrap_or_default();
            if saved != names && compat == varpulis_vm::Compat::Strict {
                return Err(RestoreError::Other(anyhow::anyhow!(
                    "the checkpoint in `{}` belongs to a program with the streams [{}], not [{}]; \
                     use another --state-dir, or remove this one to start afresh",
                    self.dir.display(),
                    saved.join(", "),
                    names.join(", ")
                )));
            }
        }
        let report = job.load_engine(self.store.as_ref(), compat).map_err(|e| {
            let advice =
                if e.is::<crate::job::WorkersMismatch>() || e.is::<crate::job::RoutingMismatch>() {
                    ""
                } else {
                    " (remove it to start afresh)"
                };
            e.context(format!(
                "cannot restore the checkpoint in `{}`{advice}",
                self.dir.display()
            ))
        })?;
        let sinks: SinkStates = self.read("sinks")?.unwrap_or_default();
        if let Err(e) = job.restore_sinks(&sinks) {
            if let Some(varpulis_connectors::SinkError::NotCommitted { .. }) =
                e.downcast_ref::<varpulis_connectors::SinkError>()
            {
                return Err(RestoreError::NotPublished(e.to_string()));
            }
            return Err(RestoreError::Other(e.context(format!(
                "cannot resume the outputs of the checkpoint in `{}`",
                self.dir.display()
            ))));
        }
        Ok(Restored {
            positions: self.read("positions")?.unwrap_or_default(),
            output: self.read("output")?,
            report,
            passed_over: Vec::new(),
        })
    }

    /// What a restore of this checkpoint into `program` on `workers` engine
    /// workers (1: one engine) would keep, stream by stream (`None`: there is
    /// no checkpoint). A state saved with another number of workers is not
    /// kept ([`Job::load_engine`]).
    pub fn preview(
        &self,
        program: &varpulis_program::Program,
        workers: usize,
    ) -> anyhow::Result<Option<varpulis_vm::StateReport>> {
        if self.recovered && crate::job::saved_workers(self.store.as_ref())? != workers {
            return Ok(Some(crate::job::emptied(
                program,
                "saved with another number of workers",
            )));
        }
        if self.recovered && !crate::job::same_routing(self.store.as_ref())? {
            return Ok(Some(crate::job::emptied(
                program,
                "saved by a build that routes keys differently",
            )));
        }
        let engine = crate::job::first_engine_state(self.store.as_ref())
            .with_context(|| format!("cannot read the checkpoint in `{}`", self.dir.display()))?;
        let saved = varpulis_vm::saved_streams(&engine)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("cannot read the checkpoint in `{}`", self.dir.display()))?;
        Ok(saved.map(|s| {
            varpulis_vm::plan_transfer(&s.names, s.fingerprints.as_ref(), &program.fingerprints())
        }))
    }

    /// A JSON entry of table `host`.
    fn read<T: serde::de::DeserializeOwned>(&self, key: &str) -> anyhow::Result<Option<T>> {
        let Some(bytes) = self.store.get(HOST, key.as_bytes())? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).with_context(|| {
            format!(
                "the checkpoint in `{}` has an unreadable `{key}` entry (remove it to start afresh)",
                self.dir.display()
            )
        })
    }

    /// The time between checkpoints.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Whether the next checkpoint is due: the interval after a success; after
    /// failures the wait doubles with each one (a full disk is not hammered), up to a
    /// minute or the interval if that is longer.
    pub fn due(&self) -> bool {
        self.last.elapsed() >= self.wait()
    }

    /// The wait before the next attempt.
    pub fn wait(&self) -> Duration {
        if self.consecutive_failures == 0 {
            return self.interval;
        }
        let factor = 1u32 << self.consecutive_failures.min(16);
        self.interval
            .saturating_mul(factor)
            .min(MAX_BACKOFF.max(self.interval))
    }

    /// A checkpoint: the barrier (the `--output` file synced, every sink's
    /// barrier passed), then the engine's state, `positions` and the sinks'
    /// marks as one durable commit. On failure nothing is committed; the
    /// failure is counted by reason and the next one is due after the
    /// interval.
    pub fn save(
        &mut self,
        job: &mut Job,
        positions: &Positions,
        output: Option<&mut OutputFile>,
    ) -> Result<(), (Failure, anyhow::Error)> {
        self.last = Instant::now();
        let result = self.barrier_and_write(job, positions, output);
        match &result {
            Ok(()) => {
                self.written += 1;
                self.consecutive_failures = 0;
            }
            Err((why, _)) => {
                self.failed += 1;
                self.consecutive_failures += 1;
                *self.failures.entry(*why).or_default() += 1;
            }
        }
        result
    }

    /// The checkpoint of a fresh state directory, before the first event: the
    /// engine's empty state and every sink's starting mark (a file sink's
    /// length). Without it, a crash between the first barrier (which writes
    /// the sinks' records) and the first commit would leave output that a
    /// restart, finding no checkpoint, sends again. Not counted as written.
    pub fn save_start(
        &mut self,
        job: &mut Job,
        output: Option<&mut OutputFile>,
    ) -> Result<(), (Failure, anyhow::Error)> {
        self.last = Instant::now();
        let result = self.barrier_and_write(job, &Positions::new(), output);
        if result.is_ok() {
            self.recovered = true;
        }
        result
    }

    fn barrier_and_write(
        &mut self,
        job: &mut Job,
        positions: &Positions,
        output: Option<&mut OutputFile>,
    ) -> Result<(), (Failure, anyhow::Error)> {
        let deadline = self.last + self.timeout;
        let output = match output {
            Some(out) => Some(out.barrier().map_err(|e| {
                (
                    Failure::Output,
                    anyhow::Error::new(e).context("cannot sync the --output file"),
                )
            })?),
            None => None,
        };
        let sinks = job
            .barrier(deadline)
            .map_err(|e| (Failure::Sink, anyhow::Error::new(e)))?;
        self.write(job, positions, &sinks, output.as_ref())
            .map_err(|e| (Failure::Store, e))?;
        // Durable: sinks that staged their records for it publish them now.
        job.committed()
            .map_err(|e| (Failure::Commit, anyhow::Error::new(e)))
    }

    fn write(
        &mut self,
        job: &mut Job,
        positions: &Positions,
        sinks: &SinkStates,
        output: Option<&OutputMark>,
    ) -> anyhow::Result<()> {
        job.save_engine(self.store.as_mut())?;
        // `save_state` clears the store: every host entry is written again.
        let names: Vec<&str> = job.program().streams.iter().map(|s| &*s.name).collect();
        self.store
            .put(HOST, b"program", serde_json::to_vec(&names)?)?;
        self.store
            .put(HOST, b"pipeline", self.pipeline.clone().into_bytes())?;
        self.store
            .put(HOST, b"positions", serde_json::to_vec(positions)?)?;
        self.store.put(HOST, b"sinks", serde_json::to_vec(sinks)?)?;
        if let Some(mark) = output {
            self.store.put(HOST, b"output", serde_json::to_vec(mark)?)?;
        }
        self.store.commit()?;
        Ok(())
    }
}

//! Snapshot and restore of all engine state through a [`StateStore`].
//!
//! Layout in the store: table `engine` holds `meta` (watermark, source
//! maxima, metrics, globals), `shape` (stream names) and `fingerprints`
//! (what each stream's state belongs to, [`Fingerprints`]); table
//! `stream/<id>` holds `source` (join tables, timer position) and
//! `op/<index>` (each stateful operator's encoded state).
//!
//! State is matched to streams by fingerprint, never by name alone: a
//! restore either requires every stream to match ([`Compat::Strict`], a
//! restart) or carries over the streams that match and starts the others
//! empty ([`Compat::Carry`], a hot update), saying which in a
//! [`StateReport`].

use super::source::SourceRt;
use super::{Engine, Metrics, TimeState};
use crate::error::LoadError;
use crate::ops::{decode, encode};
use serde::{Deserialize, Serialize};
use varpulis_program::{Fingerprints, Value};
use varpulis_state::{MemoryStore, StateStore};

#[derive(Serialize, Deserialize)]
struct Meta {
    time: TimeState,
    metrics: Metrics,
    error_count: u64,
    globals: Vec<Option<Value>>,
}

fn err(e: impl std::fmt::Display) -> LoadError {
    LoadError::Snapshot(e.to_string())
}

fn put(
    store: &mut dyn StateStore,
    table: &str,
    key: &str,
    v: Option<Vec<u8>>,
) -> Result<(), LoadError> {
    match v {
        Some(bytes) => store.put(table, key.as_bytes(), bytes).map_err(err),
        None => Ok(()),
    }
}

impl Engine {
    /// Writes all state into `store` (which is cleared first).
    pub fn save_state(&self, store: &mut dyn StateStore) -> Result<(), LoadError> {
        store.clear().map_err(err)?;
        let meta = Meta {
            time: self.time.clone(),
            metrics: self.metrics.clone(),
            error_count: self.shared.vm.error_count,
            globals: self.shared.globals.clone(),
        };
        put(store, "engine", "meta", encode(&meta).map_err(err)?)?;
        let shape: Vec<String> = self.streams.iter().map(|s| s.name.to_string()).collect();
        put(store, "engine", "shape", encode(&shape).map_err(err)?)?;
        put(
            store,
            "engine",
            "fingerprints",
            encode(&self.shared.program.fingerprints()).map_err(err)?,
        )?;
        for (i, st) in self.streams.iter().enumerate() {
            let table = format!("stream/{i}");
            let src = match &st.source {
                SourceRt::Join(j) => j.save().map_err(err)?,
                SourceRt::Timer(t) => encode(t).map_err(err)?,
                SourceRt::Pass | SourceRt::Merge { .. } => None,
            };
            put(store, &table, "source", src)?;
            for (k, op) in st.ops.iter().enumerate() {
                put(store, &table, &format!("op/{k}"), op.save().map_err(err)?)?;
            }
        }
        Ok(())
    }

    /// Replaces all state with what `store` holds (from [`Engine::save_state`]
    /// on an engine running the same program: every stream must match).
    pub fn load_state(&mut self, store: &dyn StateStore) -> Result<(), LoadError> {
        self.load_state_with(store, Compat::Strict).map(|_| ())
    }

    /// Restores what `store` holds, stream by stream: a stream takes the state
    /// of the saved stream with its name and fingerprint. With
    /// [`Compat::Strict`] any other stream is an error naming it; with
    /// [`Compat::Carry`] it starts empty and the report says why.
    pub fn load_state_with(
        &mut self,
        store: &dyn StateStore,
        compat: Compat,
    ) -> Result<StateReport, LoadError> {
        let get = |table: &str, key: &str| store.get(table, key.as_bytes()).map_err(err);
        let shape: Vec<String> =
            decode(&get("engine", "shape")?.ok_or_else(|| err("missing shape"))?).map_err(err)?;
        let saved: Option<Fingerprints> = match get("engine", "fingerprints")? {
            Some(bytes) => Some(decode(&bytes).map_err(err)?),
            None => None,
        };
        let mine = self.shared.program.fingerprints();
        let report = plan_transfer(&shape, saved.as_ref(), &mine);
        if compat == Compat::Strict && !report.is_complete() {
            return Err(err(format!(
                "the snapshot is from a different program: {}",
                report.differences()
            )));
        }
        let meta: Meta =
            decode(&get("engine", "meta")?.ok_or_else(|| err("missing meta"))?).map_err(err)?;
        for (i, st) in self.streams.iter_mut().enumerate() {
            let Some(old) = report.streams.get(i).and_then(|s| s.from) else {
                continue;
            };
            let table = format!("stream/{old}");
            if let Some(bytes) = get(&table, "source")? {
                match &mut st.source {
                    SourceRt::Join(j) => j.load(&bytes).map_err(err)?,
                    SourceRt::Timer(t) => *t = decode(&bytes).map_err(err)?,
                    SourceRt::Pass | SourceRt::Merge { .. } => {}
                }
            }
            for (k, op) in st.ops.iter_mut().enumerate() {
                if let Some(bytes) = get(&table, &format!("op/{k}"))? {
                    op.load(&bytes).map_err(err)?;
                }
            }
        }
        let Meta {
            time,
            metrics,
            error_count,
            globals,
        } = meta;
        let same_events = saved.as_ref().is_none_or(|f| f.events == mine.events);
        if same_events {
            self.time = time;
        } else {
            // Per-type maxima are indexed by event type: keep only what does
            // not depend on the numbering.
            self.time.watermark = time.watermark;
            self.time.first_seen = time.first_seen;
            self.time.max_seen = time.max_seen;
        }
        let out_per_stream = report
            .streams
            .iter()
            .map(|s| {
                s.from
                    .and_then(|i| metrics.out_per_stream.get(i).copied())
                    .unwrap_or(0)
            })
            .collect();
        self.metrics = crate::engine::Metrics {
            out_per_stream,
            ..metrics
        };
        self.shared.vm.error_count = error_count;
        if saved.as_ref().is_none_or(|f| f.globals == mine.globals)
            && globals.len() == self.shared.globals.len()
        {
            self.shared.globals = globals;
        }
        Ok(report)
    }

    /// All state as bytes (an in-memory [`StateStore`] snapshot).
    pub fn snapshot(&self) -> Result<Vec<u8>, LoadError> {
        let mut store = MemoryStore::new();
        self.save_state(&mut store)?;
        store.snapshot().map_err(err)
    }

    /// Restores state from [`Engine::snapshot`] bytes.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), LoadError> {
        let store = MemoryStore::from_snapshot(bytes).map_err(err)?;
        self.load_state(&store)
    }
}

/// How a restore treats streams whose state does not match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compat {
    /// Every stream must match: a restart of the same program.
    Strict,
    /// Matching streams keep their state, the others start empty: a hot update.
    Carry,
}

/// What a restore did with one stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StreamState {
    /// The stream.
    pub name: String,
    /// The saved stream whose state it took, if any.
    #[serde(skip)]
    pub from: Option<usize>,
    /// `kept` or `empty`.
    pub state: &'static str,
    /// Why: `unchanged`, `new stream`, `definition changed`.
    pub reason: &'static str,
}

/// What a restore kept and what starts empty, stream by stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StateReport {
    /// The streams of the running program, in order.
    pub streams: Vec<StreamState>,
    /// Saved streams the program no longer has (their state is gone).
    pub removed: Vec<String>,
}

impl StateReport {
    /// Whether every stream took its saved state and none was removed.
    pub fn is_complete(&self) -> bool {
        self.removed.is_empty() && self.streams.iter().all(|s| s.from.is_some())
    }

    /// The differences, in words.
    pub fn differences(&self) -> String {
        let mut parts: Vec<String> = self
            .streams
            .iter()
            .filter(|s| s.from.is_none())
            .map(|s| format!("stream `{}`: {}", s.name, s.reason))
            .collect();
        parts.extend(
            self.removed
                .iter()
                .map(|n| format!("stream `{n}`: removed")),
        );
        parts.join("; ")
    }
}

/// What a snapshot says of the streams it was saved with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedStreams {
    /// Their names, in the saved program's order.
    pub names: Vec<String>,
    /// Their fingerprints (`None` for snapshots of older versions).
    pub fingerprints: Option<Fingerprints>,
}

/// The streams a snapshot in `store` was saved with; `None` without one.
pub fn saved_streams(store: &dyn StateStore) -> Result<Option<SavedStreams>, LoadError> {
    let Some(shape) = store.get("engine", b"shape").map_err(err)? else {
        return Ok(None);
    };
    let names: Vec<String> = decode(&shape).map_err(err)?;
    let fingerprints = match store.get("engine", b"fingerprints").map_err(err)? {
        Some(bytes) => Some(decode(&bytes).map_err(err)?),
        None => None,
    };
    Ok(Some(SavedStreams {
        names,
        fingerprints,
    }))
}

/// Which saved stream each stream of `mine` takes its state from: the one
/// with its name and fingerprint. A snapshot without fingerprints (older
/// versions) matches by name only, and only when the names are all equal.
pub fn plan_transfer(
    saved_names: &[String],
    saved: Option<&Fingerprints>,
    mine: &Fingerprints,
) -> StateReport {
    let legacy_match = saved.is_none() && saved_names == mine.names.as_slice();
    let streams: Vec<StreamState> = mine
        .names
        .iter()
        .enumerate()
        .map(|(j, name)| {
            let old = saved_names.iter().position(|n| n == name);
            let same = match (old, saved) {
                (Some(i), Some(f)) => f.streams.get(i) == mine.streams.get(j),
                (Some(_), None) => legacy_match,
                (None, _) => false,
            };
            let (from, state, reason) = match (old, same) {
                (Some(i), true) => (Some(i), "kept", "unchanged"),
                (Some(_), false) => (None, "empty", "definition changed"),
                (None, _) => (None, "empty", "new stream"),
            };
            StreamState {
                name: name.clone(),
                from,
                state,
                reason,
            }
        })
        .collect();
    let removed = saved_names
        .iter()
        .filter(|n| !mine.names.contains(n))
        .cloned()
        .collect();
    StateReport { streams, removed }
}

/// Combines the states that the engines of a context pipeline saved
/// ([`Engine::save_state`] on each, with the streams each ran) into the one
/// state a single engine running every stream would have saved: the time,
/// globals and input counters of the first, each stream's state and output
/// count from the engine that ran it, the drop and error counters summed.
/// The result restores into one engine, into worker shards of one, or into
/// any context layout ([`Engine::load_lane_state`]).
pub fn combine_lane_states(
    parts: &[(&dyn StateStore, &[bool])],
    out: &mut dyn StateStore,
) -> Result<(), LoadError> {
    let Some((first, _)) = parts.first() else {
        return Err(err("no engine states to combine"));
    };
    out.clear().map_err(err)?;
    for (k, v) in first.scan("engine").map_err(err)? {
        out.put("engine", &k, v).map_err(err)?;
    }
    let shape: Vec<String> = decode(
        &first
            .get("engine", b"shape")
            .map_err(err)?
            .ok_or_else(|| err("missing shape"))?,
    )
    .map_err(err)?;
    let meta_of = |store: &dyn StateStore| -> Result<Meta, LoadError> {
        decode(
            &store
                .get("engine", b"meta")
                .map_err(err)?
                .ok_or_else(|| err("missing meta"))?,
        )
        .map_err(err)
    };
    let mut meta = meta_of(*first)?;
    meta.metrics.dropped = 0;
    meta.error_count = 0;
    for (store, _) in parts {
        let m = meta_of(*store)?;
        meta.metrics.dropped += m.metrics.dropped;
        meta.error_count += m.error_count;
    }
    for i in 0..shape.len() {
        let owner = parts
            .iter()
            .find(|(_, active)| active.get(i).copied().unwrap_or(false))
            .map_or(*first, |(s, _)| *s);
        let count = meta_of(owner)?
            .metrics
            .out_per_stream
            .get(i)
            .copied()
            .unwrap_or(0);
        if let Some(n) = meta.metrics.out_per_stream.get_mut(i) {
            *n = count;
        }
        let table = format!("stream/{i}");
        for (k, v) in owner.scan(&table).map_err(err)? {
            out.put(&table, &k, v).map_err(err)?;
        }
    }
    put(out, "engine", "meta", encode(&meta).map_err(err)?)
}

impl Engine {
    /// Restores a state saved by one engine (or combined by
    /// [`combine_lane_states`]) into an engine that runs only some streams
    /// ([`Engine::run_only`]): only its streams take their state, and only
    /// its streams' output counts are kept; the drop and error totals go to
    /// the engine with `totals` (one per pipeline), so that the counters of
    /// the pipeline's engines still add up. Without a lane it is
    /// [`Engine::load_state_with`].
    pub fn load_lane_state(
        &mut self,
        store: &dyn StateStore,
        compat: Compat,
        totals: bool,
    ) -> Result<StateReport, LoadError> {
        let Some(active) = self.lane.as_ref().map(|l| l.active().to_vec()) else {
            return self.load_state_with(store, compat);
        };
        let Some(saved) = saved_streams(store)? else {
            return Err(err("missing shape"));
        };
        let report = plan_transfer(
            &saved.names,
            saved.fingerprints.as_ref(),
            &self.shared.program.fingerprints(),
        );
        // Only the tables of this engine's streams: the others stay empty.
        let mut mine = MemoryStore::new();
        for (k, v) in store.scan("engine").map_err(err)? {
            mine.put("engine", &k, v).map_err(err)?;
        }
        for (i, s) in report.streams.iter().enumerate() {
            let (Some(old), true) = (s.from, active.get(i).copied().unwrap_or(false)) else {
                continue;
            };
            let table = format!("stream/{old}");
            for (k, v) in store.scan(&table).map_err(err)? {
                mine.put(&table, &k, v).map_err(err)?;
            }
        }
        let report = self.load_state_with(&mine, compat)?;
        for (i, n) in self.metrics.out_per_stream.iter_mut().enumerate() {
            if !active.get(i).copied().unwrap_or(false) {
                *n = 0;
            }
        }
        if !totals {
            self.metrics.dropped = 0;
            self.shared.vm.error_count = 0;
        }
        Ok(report)
    }
}

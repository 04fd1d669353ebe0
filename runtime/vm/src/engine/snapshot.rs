//! Snapshot and restore of all engine state through a [`StateStore`].
//!
//! Layout in the store: table `engine` holds `meta` (watermark, source
//! maxima, metrics, globals) and `shape` (stream names, to refuse a
//! snapshot of another program); table `stream/<id>` holds `source` (join
//! tables, timer position) and `op/<index>` (each stateful operator's
//! encoded state).

use super::source::SourceRt;
use super::{Engine, Metrics, TimeState};
use crate::error::LoadError;
use crate::ops::{decode, encode};
use serde::{Deserialize, Serialize};
use varpulis_program::Value;
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
    /// on an engine running the same program).
    pub fn load_state(&mut self, store: &dyn StateStore) -> Result<(), LoadError> {
        let get = |table: &str, key: &str| store.get(table, key.as_bytes()).map_err(err);
        let shape: Vec<String> =
            decode(&get("engine", "shape")?.ok_or_else(|| err("missing shape"))?).map_err(err)?;
        let mine: Vec<String> = self.streams.iter().map(|s| s.name.to_string()).collect();
        if shape != mine {
            return Err(err("snapshot is from a different program"));
        }
        let meta: Meta =
            decode(&get("engine", "meta")?.ok_or_else(|| err("missing meta"))?).map_err(err)?;
        for (i, st) in self.streams.iter_mut().enumerate() {
            let table = format!("stream/{i}");
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
        self.time = meta.time;
        self.metrics = meta.metrics;
        self.shared.vm.error_count = meta.error_count;
        self.shared.globals = meta.globals;
        Ok(())
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

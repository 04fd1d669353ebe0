//! `varpulis-state`: where operator state lives between checkpoints.
//!
//! A [`StateStore`] is a set of named tables of byte keys to byte values.
//! Operators own their working state in memory (hash maps tuned for the hot
//! path) and write it to a store at checkpoint time, table per operator; on
//! restore they read it back. The store itself can be turned into bytes
//! ([`StateStore::snapshot`]) and rebuilt from them ([`StateStore::restore`]).
//!
//! [`MemoryStore`] is the in-memory backend. [`FileStore`] keeps the same
//! tables in memory and makes each [`StateStore::commit`] durable as one
//! snapshot file, replaced atomically; a RocksDB backend will implement the
//! same trait behind a cargo feature.

mod file;
mod memory;

pub use file::FileStore;
pub use memory::MemoryStore;

use thiserror::Error;

/// Errors of a state backend.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum StateError {
    /// Snapshot bytes that this backend cannot read.
    #[error("corrupt snapshot: {0}")]
    Corrupt(String),
    /// A snapshot from an incompatible format version.
    #[error("unsupported snapshot version {found} (expected {expected})")]
    Version {
        /// Version in the bytes.
        found: u32,
        /// Version this build writes.
        expected: u32,
    },
    /// An I/O or backend failure; `retryable` says whether trying again can help.
    #[error("state backend failure: {message}")]
    Backend {
        /// What failed.
        message: String,
        /// Whether a retry can help.
        retryable: bool,
    },
}

/// One table entry: key and value bytes.
pub type Entry = (Vec<u8>, Vec<u8>);

/// A key-value store of named tables.
pub trait StateStore {
    /// The value under `key` in `table`.
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
    /// Stores `value` under `key` in `table`, replacing any previous value.
    fn put(&mut self, table: &str, key: &[u8], value: Vec<u8>) -> Result<(), StateError>;
    /// Removes `key` from `table` (no error when absent).
    fn delete(&mut self, table: &str, key: &[u8]) -> Result<(), StateError>;
    /// All entries of `table` in ascending key order.
    fn scan(&self, table: &str) -> Result<Vec<Entry>, StateError>;
    /// Removes every table.
    fn clear(&mut self) -> Result<(), StateError>;
    /// Serialises the whole store.
    fn snapshot(&self) -> Result<Vec<u8>, StateError>;
    /// Replaces the whole store with a snapshot's contents.
    fn restore(&mut self, bytes: &[u8]) -> Result<(), StateError>;
    /// Makes every change since the last commit durable, all at once: after
    /// a crash the store holds either the previous commit or this one, never
    /// a mix. In-memory stores have nothing to do.
    fn commit(&mut self) -> Result<(), StateError> {
        Ok(())
    }
}

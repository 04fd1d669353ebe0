//! `varpulis-state`: where operator state lives between checkpoints.
//!
//! A [`StateStore`] is a set of named tables of byte keys to byte values.
//! Operators own their working state in memory (hash maps tuned for the hot
//! path) and write it to a store at checkpoint time, table per operator; on
//! restore they read it back. The store itself can be turned into bytes
//! ([`StateStore::snapshot`]) and rebuilt from them ([`StateStore::restore`]).
//!
//! Backends:
//! - [`MemoryStore`]: in memory, nothing durable.
//! - [`FileStore`]: the tables in memory; each [`StateStore::commit`]
//!   rewrites them all as one snapshot file, replaced atomically.
//! - `RocksStore` (cargo feature `rocksdb`): the tables in RocksDB, read
//!   from disk; each commit writes the changes since the last one (after a
//!   `clear`, everything written again) as one atomic batch with a synced
//!   write-ahead log.
//!
//! All backends share one snapshot byte format, so a snapshot taken from one
//! restores into any other.

mod file;
mod memory;
#[cfg(feature = "rocksdb")]
mod rocks;

pub use file::FileStore;
pub use memory::MemoryStore;
#[cfg(feature = "rocksdb")]
pub use rocks::RocksStore;

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

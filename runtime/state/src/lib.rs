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
//!   write-ahead log, then keeps a checksummed RocksDB checkpoint of it.
//!
//! Both durable backends keep the last three commits with checks: opening
//! restores the newest intact one in place of a damaged one and says so
//! ([`StateStore::warnings`]), and [`StateStore::step_back`] loads the one
//! before.
//!
//! Runs that share a Kafka consumer group keep one state directory per
//! topic-partition, fenced by the group generation ([`partition`]).
//!
//! Hosts that want "the durable backend this build has" call
//! [`open_durable`]. All backends share one snapshot byte format, so a
//! snapshot taken from one restores into any other.

mod file;
mod memory;
pub mod partition;
#[cfg(feature = "rocksdb")]
mod rocks;

pub use file::FileStore;
pub use memory::MemoryStore;
#[cfg(feature = "rocksdb")]
pub use rocks::RocksStore;

use std::path::Path;
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
    /// A partition's state directory was claimed by a newer group generation:
    /// this member lost the partition in a rebalance and must not write it
    /// ([`partition::PartitionLease`]).
    #[error(
        "state of `{dir}` belongs to group generation {theirs} (member {member}), not to this \
         member's generation {ours}: the partition moved in a rebalance"
    )]
    Fenced {
        /// The partition's state directory.
        dir: String,
        /// The generation this member holds.
        ours: i32,
        /// The newer generation on disk.
        theirs: i32,
        /// The member that claimed it.
        member: String,
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

    /// Replaces the loaded contents with the intact commit before them, for a restore that
    /// finds the newest checkpoint unusable (a sink whose staged records of that checkpoint
    /// never became visible). `Some(name)` names the commit now loaded; `None` when there is
    /// no earlier one or the backend keeps only the last.
    fn step_back(&mut self) -> Result<Option<String>, StateError> {
        Ok(None)
    }

    /// What opening the store had to work around (a damaged checkpoint passed
    /// over for the previous one), for the host to report.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The backend [`open_durable`] uses in this build: `"rocksdb"` with the
/// `rocksdb` feature, else `"file"`. For messages and logs.
#[cfg(feature = "rocksdb")]
pub const DURABLE_BACKEND: &str = "rocksdb";
/// The backend [`open_durable`] uses in this build: `"rocksdb"` with the
/// `rocksdb` feature, else `"file"`. For messages and logs.
#[cfg(not(feature = "rocksdb"))]
pub const DURABLE_BACKEND: &str = "file";

/// Opens the durable store in `dir` with the best backend this build has:
/// `RocksStore` with the `rocksdb` feature, else [`FileStore`].
///
/// A RocksDB store opened on a directory that holds no RocksDB commit but a
/// [`FileStore`] snapshot (the same directory used by a build without the
/// feature) imports that snapshot and commits it, so turning the feature on
/// keeps the state.
#[cfg(feature = "rocksdb")]
pub fn open_durable(dir: &Path) -> Result<Box<dyn StateStore + Send>, StateError> {
    let mut store = RocksStore::open(dir)?;
    if !store.recovered() {
        // A directory written by the file backend: import its newest intact snapshot.
        if let Some(bytes) = file::read_latest(dir)?.bytes {
            store.restore(&bytes).map_err(|e| match e {
                StateError::Corrupt(why) => {
                    StateError::Corrupt(format!("`{}`: {why}", dir.display()))
                }
                other => other,
            })?;
            store.commit()?;
        }
    }
    Ok(Box::new(store))
}

/// Opens the durable store in `dir` with the best backend this build has:
/// `RocksStore` with the `rocksdb` feature, else [`FileStore`].
#[cfg(not(feature = "rocksdb"))]
pub fn open_durable(dir: &Path) -> Result<Box<dyn StateStore + Send>, StateError> {
    Ok(Box::new(FileStore::open(dir)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_durable_commits_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = open_durable(dir.path()).expect("open");
        s.put("engine", b"meta", b"v".to_vec()).expect("put");
        s.commit().expect("commit");
        drop(s);
        let s = open_durable(dir.path()).expect("reopen");
        assert_eq!(s.get("engine", b"meta").expect("get"), Some(b"v".to_vec()));
        let expected = if cfg!(feature = "rocksdb") {
            "rocksdb"
        } else {
            "file"
        };
        assert_eq!(DURABLE_BACKEND, expected);
    }

    #[cfg(feature = "rocksdb")]
    #[test]
    fn open_durable_imports_a_file_store_snapshot_into_rocksdb() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut f = FileStore::open(dir.path()).expect("open");
        f.put("stream/0", b"op/0", b"kept".to_vec()).expect("put");
        f.commit().expect("commit");
        drop(f);
        drop(open_durable(dir.path()).expect("import"));
        let s = RocksStore::open(dir.path()).expect("reopen");
        assert!(s.recovered());
        assert_eq!(
            s.scan("stream/0").expect("scan"),
            [(b"op/0".to_vec(), b"kept".to_vec())]
        );
        drop(s);
        // A corrupt snapshot is an error naming it, never an empty start.
        let other = tempfile::tempdir().expect("tempdir");
        std::fs::write(other.path().join("state.bin"), b"junk").expect("write");
        let err = open_durable(other.path()).err().expect("corrupt");
        assert!(
            err.to_string()
                .contains(&other.path().display().to_string()),
            "{err}"
        );
    }
}

//! A durable store: the tables live in memory ([`MemoryStore`]) and each
//! commit writes them as one snapshot file.
//!
//! A commit writes `state.bin.tmp`, syncs it, renames it over `state.bin`
//! and syncs the directory, so after a crash the directory holds the previous
//! commit or the new one, never a torn file. Opening a directory with a
//! snapshot loads it; a snapshot that cannot be read is an error (never
//! silently an empty state).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Entry, MemoryStore, StateError, StateStore};

/// The snapshot file's name inside the store directory.
pub const SNAPSHOT_FILE: &str = "state.bin";

/// Tables in memory, committed to a snapshot file in a directory.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    tables: MemoryStore,
    /// Whether the directory held a snapshot when opened.
    recovered: bool,
}

fn backend(what: String, e: &std::io::Error) -> StateError {
    StateError::Backend {
        message: format!("{what}: {e}"),
        // Disk full, a busy or missing mount: an operator can fix these and retry.
        retryable: !matches!(e.kind(), std::io::ErrorKind::PermissionDenied),
    }
}

impl FileStore {
    /// Opens (creating if needed) the store in `dir`, loading its last commit.
    pub fn open(dir: &Path) -> Result<FileStore, StateError> {
        fs::create_dir_all(dir)
            .map_err(|e| backend(format!("cannot create `{}`", dir.display()), &e))?;
        let path = dir.join(SNAPSHOT_FILE);
        let (tables, recovered) = match fs::read(&path) {
            Ok(bytes) => (
                MemoryStore::from_snapshot(&bytes).map_err(|e| match e {
                    StateError::Corrupt(why) => {
                        StateError::Corrupt(format!("`{}`: {why}", path.display()))
                    }
                    other => other,
                })?,
                true,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (MemoryStore::new(), false),
            Err(e) => return Err(backend(format!("cannot read `{}`", path.display()), &e)),
        };
        Ok(FileStore {
            dir: dir.to_path_buf(),
            tables,
            recovered,
        })
    }

    /// Whether opening found a previous commit.
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// The snapshot file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(SNAPSHOT_FILE)
    }
}

impl StateStore for FileStore {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.tables.get(table, key)
    }

    fn put(&mut self, table: &str, key: &[u8], value: Vec<u8>) -> Result<(), StateError> {
        self.tables.put(table, key, value)
    }

    fn delete(&mut self, table: &str, key: &[u8]) -> Result<(), StateError> {
        self.tables.delete(table, key)
    }

    fn scan(&self, table: &str) -> Result<Vec<Entry>, StateError> {
        self.tables.scan(table)
    }

    fn clear(&mut self) -> Result<(), StateError> {
        self.tables.clear()
    }

    fn snapshot(&self) -> Result<Vec<u8>, StateError> {
        self.tables.snapshot()
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        self.tables.restore(bytes)
    }

    fn commit(&mut self) -> Result<(), StateError> {
        let bytes = self.tables.snapshot()?;
        let tmp = self.dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        let path = self.path();
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            // The rename is durable once the directory entry is.
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| backend(format!("cannot write `{}`", path.display()), &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_survives_reopening_and_uncommitted_changes_do_not() {
        let dir = std::env::temp_dir().join(format!("varpulis-filestore-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut s = FileStore::open(&dir).expect("open");
        assert!(!s.recovered());
        s.put("t", b"k", b"v1".to_vec()).expect("put");
        s.commit().expect("commit");
        s.put("t", b"k", b"v2".to_vec()).expect("put");
        drop(s);
        let s = FileStore::open(&dir).expect("reopen");
        assert!(s.recovered());
        assert_eq!(s.get("t", b"k").expect("get"), Some(b"v1".to_vec()));
        assert!(!dir.join("state.bin.tmp").exists());
        fs::write(dir.join(SNAPSHOT_FILE), b"garbage").expect("corrupt it");
        let err = FileStore::open(&dir).expect_err("corrupt snapshot");
        assert!(err.to_string().contains("state.bin"), "{err}");
        let _ = fs::remove_dir_all(&dir);
    }
}

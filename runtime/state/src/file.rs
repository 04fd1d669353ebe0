//! A durable store: the tables live in memory ([`MemoryStore`]) and each
//! commit writes them as one snapshot file, a new generation each time.
//!
//! A commit writes `state.<N>.bin.tmp`, syncs it, renames it to
//! `state.<N>.bin` and syncs the directory, so after a crash the directory
//! holds the previous generation or the new one, never a torn file. The last
//! [`KEEP`] generations are kept. Each file carries a SHA-256 checksum of its
//! contents: opening loads the newest generation that is intact and reports
//! the newer ones it had to pass over ([`StateStore::warnings`]), so a
//! corrupt or truncated checkpoint costs one interval of progress, never the
//! state. When no generation is intact the store refuses to open (never
//! silently an empty state). A `state.bin` written by earlier versions (no
//! checksum) is read when there is no generation yet.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Entry, MemoryStore, StateError, StateStore};

/// The snapshot file of earlier versions (no generations, no checksum).
pub const SNAPSHOT_FILE: &str = "state.bin";

/// Generations kept on disk.
pub const KEEP: usize = 3;

/// Magic bytes and format version of a generation file.
const MAGIC: &[u8; 4] = b"VPCK";
const VERSION: u32 = 1;
/// Magic, version, payload length, SHA-256.
const HEADER: usize = 4 + 4 + 8 + 32;

/// Tables in memory, committed to snapshot files in a directory.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    tables: MemoryStore,
    /// Whether the directory held a snapshot when opened.
    recovered: bool,
    /// The generation of the last commit (0: none yet).
    generation: u64,
    /// The generation whose contents were loaded (0: none, or the legacy file).
    loaded: u64,
    /// Newer generations passed over at open, with the reason.
    skipped: Vec<String>,
}

fn backend(what: String, e: &std::io::Error) -> StateError {
    StateError::Backend {
        message: format!("{what}: {e}"),
        // Disk full, a busy or missing mount: an operator can fix these and retry.
        retryable: !matches!(e.kind(), std::io::ErrorKind::PermissionDenied),
    }
}

fn generation_name(n: u64) -> String {
    format!("state.{n}.bin")
}

/// The generations in `dir`, newest first.
fn generations(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StateError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(backend(format!("cannot list `{}`", dir.display()), &e)),
    };
    let mut found: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let n = name
                .to_str()?
                .strip_prefix("state.")?
                .strip_suffix(".bin")?
                .parse()
                .ok()?;
            Some((n, e.path()))
        })
        .collect();
    found.sort_by_key(|g| std::cmp::Reverse(g.0));
    Ok(found)
}

/// The payload of a generation file, or why it is not intact.
fn verify(bytes: &[u8]) -> Result<&[u8], String> {
    if bytes.len() < HEADER {
        return Err(format!("truncated ({} bytes)", bytes.len()));
    }
    let (header, payload) = bytes.split_at(HEADER);
    if &header[..4] != MAGIC {
        return Err("not a Varpulis checkpoint".into());
    }
    let version = u32::from_le_bytes(header[4..8].try_into().map_err(|_| "bad header")?);
    if version != VERSION {
        return Err(format!(
            "format version {version}, this build reads {VERSION}"
        ));
    }
    let len = u64::from_le_bytes(header[8..16].try_into().map_err(|_| "bad header")?);
    if len != payload.len() as u64 {
        return Err(format!("truncated: {} of {len} bytes", payload.len()));
    }
    if Sha256::digest(payload).as_slice() != &header[16..48] {
        return Err("checksum mismatch".into());
    }
    Ok(payload)
}

/// What opening a directory found: the newest intact snapshot bytes, its
/// generation, and the newer generations passed over.
pub(crate) struct Latest {
    pub bytes: Option<Vec<u8>>,
    pub generation: u64,
    pub loaded: u64,
    pub skipped: Vec<String>,
}

/// Reads the newest intact generation of `dir` (or the legacy `state.bin`).
pub(crate) fn read_latest(dir: &Path) -> Result<Latest, StateError> {
    let found = generations(dir)?;
    let newest = found.first().map_or(0, |g| g.0);
    let mut skipped = Vec::new();
    for (n, path) in &found {
        let bytes =
            fs::read(path).map_err(|e| backend(format!("cannot read `{}`", path.display()), &e))?;
        match verify(&bytes) {
            Ok(payload) => {
                return Ok(Latest {
                    bytes: Some(payload.to_vec()),
                    generation: newest.max(*n),
                    loaded: *n,
                    skipped,
                })
            }
            Err(why) => skipped.push(format!("`{}`: {why}", path.display())),
        }
    }
    if !found.is_empty() {
        return Err(StateError::Corrupt(format!(
            "no intact checkpoint in `{}`: {}",
            dir.display(),
            skipped.join("; ")
        )));
    }
    let legacy = dir.join(SNAPSHOT_FILE);
    match fs::read(&legacy) {
        Ok(bytes) => Ok(Latest {
            bytes: Some(bytes),
            generation: 0,
            loaded: 0,
            skipped,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Latest {
            bytes: None,
            generation: 0,
            loaded: 0,
            skipped,
        }),
        Err(e) => Err(backend(format!("cannot read `{}`", legacy.display()), &e)),
    }
}

impl FileStore {
    /// Opens (creating if needed) the store in `dir`, loading its newest intact commit.
    pub fn open(dir: &Path) -> Result<FileStore, StateError> {
        fs::create_dir_all(dir)
            .map_err(|e| backend(format!("cannot create `{}`", dir.display()), &e))?;
        let latest = read_latest(dir)?;
        let (tables, recovered) = match &latest.bytes {
            Some(bytes) => (
                MemoryStore::from_snapshot(bytes).map_err(|e| match e {
                    StateError::Corrupt(why) => {
                        StateError::Corrupt(format!("`{}`: {why}", dir.display()))
                    }
                    other => other,
                })?,
                true,
            ),
            None => (MemoryStore::new(), false),
        };
        Ok(FileStore {
            dir: dir.to_path_buf(),
            tables,
            recovered,
            generation: latest.generation,
            loaded: latest.loaded,
            skipped: latest.skipped,
        })
    }

    /// Whether opening found a previous commit.
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// The file of the last commit.
    pub fn path(&self) -> PathBuf {
        self.dir.join(generation_name(self.generation))
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
        let payload = self.tables.snapshot()?;
        let next = self.generation + 1;
        let path = self.dir.join(generation_name(next));
        let tmp = self.dir.join(format!("{}.tmp", generation_name(next)));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(MAGIC)?;
            f.write_all(&VERSION.to_le_bytes())?;
            f.write_all(&(payload.len() as u64).to_le_bytes())?;
            f.write_all(&Sha256::digest(&payload))?;
            f.write_all(&payload)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            // The rename is durable once the directory entry is.
            File::open(&self.dir)?.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(backend(format!("cannot write `{}`", path.display()), &e));
        }
        self.generation = next;
        // Older generations beyond the last KEEP, and the pre-generation file, go once the
        // new one is durable; failing to remove them costs only disk space.
        if let Ok(found) = generations(&self.dir) {
            for (_, old) in found.into_iter().skip(KEEP) {
                let _ = fs::remove_file(old);
            }
        }
        let _ = fs::remove_file(self.dir.join(SNAPSHOT_FILE));
        Ok(())
    }

    fn step_back(&mut self) -> Result<Option<String>, StateError> {
        let found = generations(&self.dir)?;
        for (n, path) in found.iter().filter(|(n, _)| *n < self.loaded) {
            let Ok(bytes) = fs::read(path) else {
                continue;
            };
            let Ok(payload) = verify(&bytes) else {
                continue;
            };
            self.tables = MemoryStore::from_snapshot(payload)?;
            self.loaded = *n;
            return Ok(Some(path.display().to_string()));
        }
        Ok(None)
    }

    fn warnings(&self) -> Vec<String> {
        self.skipped
            .iter()
            .map(|s| format!("passed over a damaged checkpoint, {s}; restored the previous one"))
            .collect()
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
        assert!(generations(&dir)
            .expect("list")
            .iter()
            .all(|(_, p)| !p.to_string_lossy().ends_with(".tmp")));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_last_generations_are_kept_and_a_damaged_one_falls_back_to_the_previous() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = FileStore::open(dir.path()).expect("open");
        for v in 1..=5u8 {
            s.put("t", b"k", vec![v]).expect("put");
            s.commit().expect("commit");
        }
        let found = generations(dir.path()).expect("list");
        assert_eq!(found.iter().map(|g| g.0).collect::<Vec<_>>(), [5, 4, 3]);
        drop(s);
        // Flip a byte of the newest: its checksum no longer matches.
        let newest = dir.path().join(generation_name(5));
        let mut bytes = fs::read(&newest).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&newest, bytes).expect("damage");
        let s = FileStore::open(dir.path()).expect("falls back");
        assert_eq!(s.get("t", b"k").expect("get"), Some(vec![4]));
        let warnings = s.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("state.5.bin") && warnings[0].contains("checksum"),
            "{warnings:?}"
        );
        // Commits go on after the newest number, so the damaged one is never reused.
        let mut s = s;
        s.commit().expect("commit");
        assert!(dir.path().join(generation_name(6)).exists());
        drop(s);
        // A truncated newest one falls back too; when none is intact, opening fails.
        fs::write(dir.path().join(generation_name(6)), b"VPCK").expect("truncate");
        let s = FileStore::open(dir.path()).expect("falls back");
        assert_eq!(s.get("t", b"k").expect("get"), Some(vec![4]));
        drop(s);
        for (_, p) in generations(dir.path()).expect("list") {
            fs::write(p, b"junk").expect("junk");
        }
        let err = FileStore::open(dir.path()).expect_err("nothing intact");
        assert!(err.to_string().contains("no intact checkpoint"), "{err}");
    }

    #[test]
    fn stepping_back_loads_the_commit_before_and_the_next_commit_comes_after_all() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = FileStore::open(dir.path()).expect("open");
        for v in 1..=3u8 {
            s.put("t", b"k", vec![v]).expect("put");
            s.commit().expect("commit");
        }
        drop(s);
        let mut s = FileStore::open(dir.path()).expect("reopen");
        assert_eq!(s.get("t", b"k").expect("get"), Some(vec![3]));
        let back = s.step_back().expect("step back");
        assert!(back.is_some_and(|name| name.ends_with("state.2.bin")));
        assert_eq!(s.get("t", b"k").expect("get"), Some(vec![2]));
        // A damaged generation is passed over.
        fs::write(dir.path().join(generation_name(1)), b"junk").expect("damage");
        assert_eq!(s.step_back().expect("step back"), None);
        assert_eq!(s.get("t", b"k").expect("get"), Some(vec![2]));
        // The next commit is newer than every file, so a restart loads it.
        s.put("t", b"k", vec![9]).expect("put");
        s.commit().expect("commit");
        drop(s);
        let s = FileStore::open(dir.path()).expect("reopen");
        assert_eq!(s.get("t", b"k").expect("get"), Some(vec![9]));
    }

    #[test]
    fn a_snapshot_of_earlier_versions_still_opens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut m = MemoryStore::new();
        m.put("t", b"k", b"old".to_vec()).expect("put");
        fs::write(
            dir.path().join(SNAPSHOT_FILE),
            m.snapshot().expect("snapshot"),
        )
        .expect("write");
        let mut s = FileStore::open(dir.path()).expect("open");
        assert!(s.recovered());
        assert_eq!(s.get("t", b"k").expect("get"), Some(b"old".to_vec()));
        s.commit().expect("commit");
        assert!(!dir.path().join(SNAPSHOT_FILE).exists());
        fs::write(dir.path().join(SNAPSHOT_FILE), b"garbage").expect("write");
        drop(s);
        let other = tempfile::tempdir().expect("tempdir");
        fs::write(other.path().join(SNAPSHOT_FILE), b"garbage").expect("corrupt it");
        let err = FileStore::open(other.path()).expect_err("corrupt snapshot");
        assert!(
            err.to_string()
                .contains(&other.path().display().to_string()),
            "{err}"
        );
    }
}

//! The retained copies of a [`RocksStore`](super::RocksStore): the last
//! [`KEEP`] commits, each a RocksDB checkpoint with a list of its files'
//! SHA-256 sums, under `<store dir>/checkpoints/<N>/` (layout and what the
//! checks detect: the parent module's docs).
//!
//! A copy is made in `checkpoints/<N>.tmp/` and renamed to
//! `checkpoints/<N>/` once its files and sums are synced, and the rename is
//! synced, so a crash leaves a whole copy or a `.tmp` directory that the
//! next commit removes.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::file::KEEP;
use crate::StateError;

/// The directory of the retained copies, inside the store directory.
pub(super) const CHECKPOINTS: &str = "checkpoints";
/// The RocksDB checkpoint inside a copy's directory.
const DB: &str = "db";
/// The sums file inside a copy's directory: one line per file of `db/`,
/// `<sha256 hex>  <size>  <name>`.
const SUMS: &str = "SHA256SUMS";

/// An I/O failure naming what was being done.
pub(super) fn io_error(what: String, e: &std::io::Error) -> StateError {
    StateError::Backend {
        message: format!("{what}: {e}"),
        // Disk full, a busy or missing mount: an operator can fix these and retry.
        retryable: !matches!(e.kind(), std::io::ErrorKind::PermissionDenied),
    }
}

/// Makes the entries of directory `dir` (creations, renames, removals) durable.
pub(super) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The retained copies under `checkpoints`, newest first.
pub(super) fn copies(checkpoints: &Path) -> Result<Vec<(u64, PathBuf)>, StateError> {
    let entries = match fs::read_dir(checkpoints) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(io_error(
                format!("cannot list `{}`", checkpoints.display()),
                &e,
            ))
        }
    };
    let mut found: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path())))
        .collect();
    found.sort_by_key(|c| std::cmp::Reverse(c.0));
    Ok(found)
}

/// SHA-256 of a file's bytes, in hex, and the number of bytes read.
fn sum_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(buf.get(..n).unwrap_or_default());
        len += n as u64;
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((hex, len))
}

/// One line of a sums file.
struct Sum {
    hex: String,
    size: u64,
    name: String,
}

/// Makes and prunes retained copies. Remembers the sums of the SST files it
/// has hashed: RocksDB never rewrites an SST file and never reuses a file
/// number within one open database, so a later copy linking the same file
/// needs no second read, and a commit hashes only the files it created.
#[derive(Debug)]
pub(super) struct Retainer {
    checkpoints: PathBuf,
    /// SST file name to (size, sum) as first read.
    known: HashMap<String, (u64, String)>,
}

impl Retainer {
    pub(super) fn new(store_dir: &Path) -> Retainer {
        Retainer {
            checkpoints: store_dir.join(CHECKPOINTS),
            known: HashMap::new(),
        }
    }

    /// The directory of copy `n`.
    pub(super) fn path(&self, n: u64) -> PathBuf {
        self.checkpoints.join(n.to_string())
    }

    /// Keeps the current state of `db` as retained copy `n`, then removes
    /// all but the newest [`KEEP`] copies.
    pub(super) fn retain(&mut self, db: &rocksdb::DB, n: u64) -> Result<(), StateError> {
        let path = self.path(n);
        let staging = self.checkpoints.join(format!("{n}.tmp"));
        let fail = |e: &std::io::Error| {
            io_error(
                format!("cannot keep the retained copy `{}`", path.display()),
                e,
            )
        };
        fs::create_dir_all(&self.checkpoints).map_err(|e| fail(&e))?;
        // Leftovers of a crash in the middle of an earlier copy.
        self.remove_staging();
        fs::create_dir(&staging).map_err(|e| fail(&e))?;
        let made = rocksdb::checkpoint::Checkpoint::new(db)
            .and_then(|c| c.create_checkpoint(staging.join(DB)))
            .map_err(|e| StateError::Backend {
                message: format!("cannot keep the retained copy `{}`: {e}", path.display()),
                retryable: true,
            });
        if let Err(e) = made {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        let sums = self.sums(&staging.join(DB));
        let checkpoints = &self.checkpoints;
        let write = || -> std::io::Result<()> {
            let sums = sums?;
            let mut f = File::create(staging.join(SUMS))?;
            for s in &sums {
                writeln!(f, "{}  {}  {}", s.hex, s.size, s.name)?;
            }
            f.sync_all()?;
            sync_dir(&staging)?;
            fs::rename(&staging, &path)?;
            sync_dir(checkpoints)
        };
        if let Err(e) = write() {
            let _ = fs::remove_dir_all(&staging);
            return Err(fail(&e));
        }
        // Copies beyond the newest KEEP go once the new one is durable; failing to remove
        // them costs only disk space (SST files they share with newer copies stay).
        if let Ok(found) = copies(&self.checkpoints) {
            for (_, old) in found.into_iter().skip(KEEP) {
                let _ = fs::remove_dir_all(old);
            }
        }
        Ok(())
    }

    /// Removes every `<N>.tmp` staging directory.
    fn remove_staging(&self) {
        let Ok(entries) = fs::read_dir(&self.checkpoints) else {
            return;
        };
        for e in entries.filter_map(|e| e.ok()) {
            if e.file_name().to_string_lossy().ends_with(".tmp") {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }

    /// The sums of the files of the checkpoint in `db`, reusing known SST sums.
    fn sums(&mut self, db: &Path) -> std::io::Result<Vec<Sum>> {
        let mut out = Vec::new();
        let mut seen = HashMap::new();
        for e in fs::read_dir(db)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let size = e.metadata()?.len();
            let sst = name.ends_with(".sst");
            let hex = match self.known.get(&name) {
                Some((known_size, hex)) if sst && *known_size == size => hex.clone(),
                _ => {
                    let (hex, read) = sum_file(&e.path())?;
                    if sst {
                        seen.insert(name.clone(), (read, hex.clone()));
                    }
                    hex
                }
            };
            out.push(Sum { hex, size, name });
        }
        // Forget the files no copy links any more, so the map stays the size of the database.
        self.known
            .retain(|name, _| out.iter().any(|s| &s.name == name));
        self.known.extend(seen);
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

/// Checks copy `copy` against its sums: every listed file present, of the
/// listed size and sum. Returns the listed file names, or why the copy is
/// damaged.
pub(super) fn verify(copy: &Path) -> Result<Vec<String>, String> {
    let text = match fs::read_to_string(copy.join(SUMS)) {
        Ok(t) => t,
        Err(e) => return Err(format!("cannot read its {SUMS}: {e}")),
    };
    let mut names = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, "  ");
        let (Some(hex), Some(size), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("malformed {SUMS} line {line:?}"));
        };
        let size: u64 = size
            .parse()
            .map_err(|_| format!("malformed {SUMS} line {line:?}"))?;
        let file = copy.join(DB).join(name);
        let (found, read) = sum_file(&file).map_err(|e| format!("`{name}`: {e}"))?;
        if read != size {
            return Err(format!("`{name}` has {read} bytes, {size} were kept"));
        }
        if found != hex {
            return Err(format!("checksum mismatch of `{name}`"));
        }
        names.push(name.to_string());
    }
    if !names.iter().any(|n| n == "CURRENT") {
        return Err(format!("its {SUMS} lists no CURRENT file"));
    }
    Ok(names)
}

/// Makes `target` (which must not exist) a database with the files `names`
/// of copy `copy`: SST files hard-linked (RocksDB never writes to one),
/// every other file copied, since RocksDB may rewrite or append to them once
/// the database is open.
pub(super) fn materialize(copy: &Path, names: &[String], target: &Path) -> std::io::Result<()> {
    fs::create_dir(target)?;
    for name in names {
        let from = copy.join(DB).join(name);
        let to = target.join(name);
        if !(name.ends_with(".sst") && fs::hard_link(&from, &to).is_ok()) {
            fs::copy(&from, &to)?;
            File::open(&to)?.sync_all()?;
        }
    }
    sync_dir(target)
}

//! A durable store in RocksDB (cargo feature `rocksdb`).
//!
//! **Layout.** One RocksDB database per store directory, in its default
//! column family. Tables are key prefixes, not column families: table names
//! are arbitrary strings (`engine`, `stream/3`) whose number grows with the
//! program, and creating or dropping a column family is a separate,
//! non-batched change to RocksDB's manifest, so a [`StateStore::clear`]
//! followed by puts could not be committed as one atomic write. With
//! prefixes, every commit is a single `WriteBatch`.
//!
//! - `d` ++ table name length (`u32`, big endian) ++ table name ++ key: an
//!   entry. The length prefix keeps tables apart whatever their names hold,
//!   and keeps each table's keys contiguous and in ascending byte order.
//! - `m` ++ `format`: the layout version (`u32`, little endian), written by
//!   every commit; its presence means the directory holds a commit.
//! - `m` ++ `generation`: the number of the commit (`u64`, little endian),
//!   one more than the newest retained copy's, written by every commit.
//!
//! **Writes.** `put`, `delete`, `clear` and `restore` change an in-memory
//! overlay of pending changes; `get` and `scan` read the overlay over the
//! last commit, so a store behaves exactly like [`MemoryStore`] between
//! commits. [`StateStore::commit`] turns the overlay into one `WriteBatch`
//! (a pending `clear` becomes a range deletion of every entry, ahead of the
//! puts) and writes it with a synced write-ahead log. RocksDB applies a
//! batch atomically and replays a synced WAL on open, so after a crash the
//! database holds the previous commit or the new one, never a mix.
//! Building the batch at commit time, rather than keeping one next to the
//! overlay, avoids holding every pending value twice.
//!
//! **Directory.** The store directory is the live RocksDB database, plus
//! entries of ours that RocksDB never touches: it lists only the top level of
//! its directory and deletes only names it parses as its own files
//! (`000012.sst`, `MANIFEST-000005`, `LOG.old.*`, ...), and none of these do.
//!
//! - `checkpoints/<N>/`: the retained copy of commit `N`, the newest
//!   [`KEEP`](crate::file::KEEP) (3, as the file backend) kept: `db/`, a
//!   RocksDB checkpoint made right after the commit (SST files hard-linked,
//!   which is cheap and safe because RocksDB never writes to an SST file
//!   once made and only unlinks it; MANIFEST, CURRENT, OPTIONS and the WAL
//!   copied), and `SHA256SUMS`, the size and SHA-256 of each file of `db/`.
//!   A copy is made as `checkpoints/<N>.tmp/` and renamed once synced, then
//!   the rename is synced.
//! - `damaged.<K>/`: a live database found damaged at open, set aside (never
//!   deleted) when a retained copy replaced it.
//! - `restore.tmp/`: a retained copy being turned into a database.
//!
//! **Checks.** Opening checks the live database: RocksDB's own checks at
//! open (CURRENT names a readable MANIFEST, every file the MANIFEST lists is
//! there with the recorded size: a missing or truncated SST, a bad manifest),
//! the layout marker and commit number, and a read of every entry, which
//! verifies the block checksums of every SST (a corrupt byte anywhere). When
//! that fails, or the database is missing (no `CURRENT`) while copies
//! exist, the newest copy that passes its `SHA256SUMS` (any file missing,
//! truncated or changed, including the copied MANIFEST) and then the same
//! open checks is restored as the live database and the ones passed over are
//! reported ([`StateStore::warnings`]); when none is intact, opening fails
//! and changes nothing (never an empty start). The hard links have a price:
//! an SST damaged in place damages every copy that links it, and those are
//! passed over too; an older copy made before that file existed survives.
//! [`StateStore::step_back`] loads the newest intact copy older than the
//! loaded commit as pending changes over a cleared store.
//!
//! **Cost.** A copy flushes the memtable (the commit's changes become an SST
//! file, as they would a little later anyway), links the SST files, copies
//! the small files (the MANIFEST is rolled over at 4 MiB to bound it), and
//! hashes the files new since the last copy plus the small ones (the sums of
//! SST files already hashed are remembered, since they never change): a
//! commit's extra work grows with what it changed, not with the store, except
//! for the first commit after opening, which hashes every file once. Opening
//! reads the whole database once, which the engine's restore does next anyway.
//!
//! **Snapshots** use [`MemoryStore`]'s byte format (they are converted
//! through one), so they move freely between backends. A store holds no
//! empty tables (a table exists while it has entries), as a `MemoryStore`
//! built by puts and deletes does.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rocksdb::{Direction, ErrorKind, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions};

mod retained;

use retained::{io_error, sync_dir, Retainer};

use crate::{Entry, MemoryStore, StateError, StateStore};

/// The version of the key layout described in the module docs.
const FORMAT: u32 = 1;
/// The meta key holding [`FORMAT`].
const FORMAT_KEY: &[u8] = b"mformat";
/// The meta key holding the number of the commit (`u64`, little endian).
const GENERATION_KEY: &[u8] = b"mgeneration";
/// Where a retained copy is made into a database before it is used.
const RESTORING: &str = "restore.tmp";
/// Damaged live databases are kept aside as `damaged.<K>`.
const DAMAGED: &str = "damaged.";
/// Every entry key starts with this byte.
const DATA: u8 = b'd';
/// The byte after [`DATA`]: `[DATA, DATA_END)` holds every entry and nothing else.
const DATA_END: u8 = DATA + 1;

/// Changes not yet committed, per table: `Some` is a put, `None` a delete.
type PendingTable = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Tables in a RocksDB database; changes are pending until [`StateStore::commit`].
pub struct RocksStore {
    dir: PathBuf,
    db: rocksdb::DB,
    /// Whether a `clear` (or `restore`) happened since the last commit: the
    /// committed entries are then invisible and deleted by the next commit.
    cleared: bool,
    pending: BTreeMap<String, PendingTable>,
    /// Whether the directory held a commit when opened.
    recovered: bool,
    /// The number of the last commit (or the newest retained copy, if higher).
    generation: u64,
    /// The number of the commit whose contents were loaded (by opening or [`StateStore::step_back`]).
    loaded: u64,
    /// Makes the retained copies.
    retainer: Retainer,
    /// What opening passed over: the live database and retained copies, with the reason.
    skipped: Vec<String>,
    /// The retained copy opening restored in their place.
    restored: Option<String>,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("dir", &self.dir)
            .field("cleared", &self.cleared)
            .field("pending_tables", &self.pending.len())
            .field("recovered", &self.recovered)
            .field("generation", &self.generation)
            .field("loaded", &self.loaded)
            .finish()
    }
}

/// Maps a RocksDB error to a [`StateError`] whose message starts with `what`
/// (which names the path).
fn backend(what: String, e: &rocksdb::Error) -> StateError {
    let message = format!("{what}: {e}");
    match e.kind() {
        ErrorKind::Corruption => StateError::Corrupt(message),
        kind => {
            // A bad option or an unsupported operation stays wrong on every try, and so does
            // a permission problem until someone changes it; busy or full disks, locks held by
            // a process that is exiting and timeouts can clear up.
            let permanent = matches!(kind, ErrorKind::InvalidArgument | ErrorKind::NotSupported)
                || message.contains("Permission denied");
            StateError::Backend {
                message,
                retryable: !permanent,
            }
        }
    }
}

/// The prefix shared by every entry of `table`.
fn table_prefix(table: &str) -> Result<Vec<u8>, StateError> {
    let len = u32::try_from(table.len())
        .map_err(|_| StateError::Corrupt(format!("table name of {} bytes", table.len())))?;
    let mut out = Vec::with_capacity(5 + table.len());
    out.push(DATA);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(table.as_bytes());
    Ok(out)
}

fn data_key(table: &str, key: &[u8]) -> Result<Vec<u8>, StateError> {
    let mut out = table_prefix(table)?;
    out.extend_from_slice(key);
    Ok(out)
}

/// Splits an entry key into table name and key.
fn split_data_key(raw: &[u8]) -> Option<(&str, &[u8])> {
    let rest = raw.strip_prefix(&[DATA])?;
    let len_bytes: [u8; 4] = rest.get(..4)?.try_into().ok()?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    let name = rest.get(4..4usize.checked_add(len)?)?;
    let key = rest.get(4 + len..)?;
    Some((std::str::from_utf8(name).ok()?, key))
}

/// Why a database could not be used.
enum Unusable {
    /// It is damaged (corrupt, truncated or missing files, a bad marker): fall back to a copy.
    Damaged(String),
    /// Anything else (in use, another layout version, a disk error): refuse to open.
    Refused(StateError),
}

/// Whether a RocksDB error means damaged files rather than a problem elsewhere.
fn is_damage(e: &rocksdb::Error) -> bool {
    match e.kind() {
        ErrorKind::Corruption => true,
        // A file the MANIFEST (or CURRENT) names that is not there.
        ErrorKind::IOError => e.to_string().contains("No such file"),
        _ => false,
    }
}

/// An open database, checked.
struct Opened {
    db: rocksdb::DB,
    /// The commit it holds (0: none, or one written before commits were numbered).
    generation: u64,
    /// Whether it holds a commit.
    recovered: bool,
}

/// The options every database of a store is opened with.
fn options(create: bool) -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(create);
    // RocksDB writes a new info LOG at every open and by default keeps 1000 old ones.
    opts.set_keep_log_file_num(4);
    // Each retained copy holds a copy of the MANIFEST, which otherwise grows by a few
    // records per commit until 1 GiB; rolling it over bounds what a copy costs.
    opts.set_max_manifest_file_size(4 << 20);
    opts
}

/// Opens the database in `path` and checks it: the layout marker, the
/// commit number, and a read of every entry, which verifies RocksDB's block
/// checksums.
fn open_checked(path: &Path, create: bool) -> Result<Opened, Unusable> {
    let db = rocksdb::DB::open(&options(create), path).map_err(|e| {
        if e.kind() == ErrorKind::IOError && e.to_string().to_lowercase().contains("lock") {
            Unusable::Refused(StateError::Backend {
                message: format!(
                    "cannot open state store `{}`: it is in use by another process \
                     (or another store in this one): {e}",
                    path.display()
                ),
                retryable: true,
            })
        } else if is_damage(&e) {
            Unusable::Damaged(e.to_string())
        } else {
            Unusable::Refused(backend(
                format!("cannot open state store `{}`", path.display()),
                &e,
            ))
        }
    })?;
    let read = |key: &[u8]| {
        db.get(key).map_err(|e| {
            if is_damage(&e) {
                Unusable::Damaged(e.to_string())
            } else {
                Unusable::Refused(backend(format!("cannot read `{}`", path.display()), &e))
            }
        })
    };
    let recovered = match read(FORMAT_KEY)? {
        None => false,
        Some(bytes) => {
            let found = <[u8; 4]>::try_from(bytes.as_slice())
                .map(u32::from_le_bytes)
                .map_err(|_| {
                    Unusable::Damaged(format!("format marker of {} bytes", bytes.len()))
                })?;
            if found != FORMAT {
                return Err(Unusable::Refused(StateError::Version {
                    found,
                    expected: FORMAT,
                }));
            }
            true
        }
    };
    let generation = match read(GENERATION_KEY)? {
        None => 0,
        Some(bytes) => <[u8; 8]>::try_from(bytes.as_slice())
            .map(u64::from_le_bytes)
            .map_err(|_| Unusable::Damaged(format!("commit number of {} bytes", bytes.len())))?,
    };
    let mut opts = ReadOptions::default();
    // A check, not a workload: keep the entries out of the block cache.
    opts.fill_cache(false);
    for item in db.iterator_opt(IteratorMode::Start, opts) {
        if let Err(e) = item {
            return Err(if is_damage(&e) {
                Unusable::Damaged(e.to_string())
            } else {
                Unusable::Refused(backend(format!("cannot read `{}`", path.display()), &e))
            });
        }
    }
    Ok(Opened {
        db,
        generation,
        recovered,
    })
}

/// Whether the entry `name` of a store directory belongs to something other
/// than the live database: the retained copies, damaged databases kept
/// aside, a restore in progress, or a [`crate::FileStore`]'s files (a
/// directory that the file backend used first).
fn is_reserved(name: &str) -> bool {
    name == retained::CHECKPOINTS
        || name == RESTORING
        || name.starts_with(DAMAGED)
        || (name.starts_with("state.") && (name.ends_with(".bin") || name.ends_with(".bin.tmp")))
}

/// Moves the live database's files out of `dir` into a new `damaged.<K>`
/// directory, `CURRENT` first, so that a crash half way leaves no
/// `CURRENT`, which the next open treats as a missing database and falls
/// back again. Returns where they went (`None`: there was nothing to move).
fn set_aside(dir: &Path) -> std::io::Result<Option<PathBuf>> {
    let mut names: Vec<String> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !is_reserved(n))
        .collect();
    if names.is_empty() {
        return Ok(None);
    }
    names.sort_by_key(|n| n != "CURRENT");
    let mut k = 1u64;
    let aside = loop {
        let candidate = dir.join(format!("{DAMAGED}{k}"));
        if !candidate.exists() {
            break candidate;
        }
        k += 1;
    };
    fs::create_dir(&aside)?;
    for name in &names {
        fs::rename(dir.join(name), aside.join(name))?;
    }
    sync_dir(&aside)?;
    sync_dir(dir)?;
    Ok(Some(aside))
}

/// Moves the database in `from` into `dir`, `CURRENT` last, so the database
/// is there only once all its files are.
fn move_in(from: &Path, dir: &Path) -> std::io::Result<()> {
    let mut names: Vec<String> = fs::read_dir(from)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort_by_key(|n| n == "CURRENT");
    for name in &names {
        fs::rename(from.join(name), dir.join(name))?;
    }
    sync_dir(dir)?;
    fs::remove_dir(from)?;
    sync_dir(dir)
}

/// The entries of `db` (in `path`) whose keys start with `prefix`, raw keys included.
fn entries_of(db: &rocksdb::DB, path: &Path, prefix: Vec<u8>) -> Result<Vec<Entry>, StateError> {
    let mut opts = ReadOptions::default();
    opts.set_iterate_range(rocksdb::PrefixRange(prefix.clone()));
    let mut out = Vec::new();
    for item in db.iterator_opt(IteratorMode::From(&prefix, Direction::Forward), opts) {
        let (k, v) = item.map_err(|e| backend(format!("cannot read `{}`", path.display()), &e))?;
        out.push((k.into_vec(), v.into_vec()));
    }
    Ok(out)
}

/// What [`fall_back`] found: the restored database, what it passed over, and the copy used.
type FellBack = (Opened, Vec<String>, Option<String>);

/// Makes retained copy `n` (in `copy`) a database in `<dir>/restore.tmp`
/// and opens it there, checked, after checking the copy against its sums.
fn open_copy(dir: &Path, n: u64, copy: &Path) -> Result<Opened, Unusable> {
    let scratch = dir.join(RESTORING);
    remove_scratch(&scratch).map_err(Unusable::Refused)?;
    let names = retained::verify(copy).map_err(Unusable::Damaged)?;
    retained::materialize(copy, &names, &scratch).map_err(|e| {
        Unusable::Refused(io_error(
            format!(
                "cannot restore `{}` into `{}`",
                copy.display(),
                scratch.display()
            ),
            &e,
        ))
    })?;
    let opened = match open_checked(&scratch, false) {
        Ok(o) if o.generation == n => Ok(o),
        Ok(o) => Err(Unusable::Damaged(format!(
            "it holds commit {}, not {n}",
            o.generation
        ))),
        Err(e) => Err(e),
    };
    if opened.is_err() {
        let _ = fs::remove_dir_all(&scratch);
    }
    opened
}

/// Removes a leftover `restore.tmp`.
fn remove_scratch(scratch: &Path) -> Result<(), StateError> {
    match fs::remove_dir_all(scratch) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(
            format!("cannot remove `{}`", scratch.display()),
            &e,
        )),
        _ => Ok(()),
    }
}

/// Replaces the damaged live database of `dir` (`why`) by the newest intact
/// copy of `found`, setting the damaged one aside. Changes nothing when no
/// copy is intact.
fn fall_back(dir: &Path, found: &[(u64, PathBuf)], why: String) -> Result<FellBack, StateError> {
    let mut passed = Vec::new();
    for (n, copy) in found {
        let opened = match open_copy(dir, *n, copy) {
            Ok(o) => o,
            Err(Unusable::Damaged(reason)) => {
                passed.push(format!("retained copy `{}`: {reason}", copy.display()));
                continue;
            }
            Err(Unusable::Refused(e)) => return Err(e),
        };
        // Closed before its files move.
        drop(opened);
        let replace = || -> std::io::Result<Option<PathBuf>> {
            let aside = set_aside(dir)?;
            move_in(&dir.join(RESTORING), dir)?;
            Ok(aside)
        };
        let aside = replace().map_err(|e| {
            io_error(
                format!(
                    "cannot restore `{}` into `{}`",
                    copy.display(),
                    dir.display()
                ),
                &e,
            )
        })?;
        let opened = open_checked(dir, false).map_err(|e| match e {
            Unusable::Damaged(reason) => StateError::Corrupt(format!(
                "`{}` restored from `{}` does not open: {reason}",
                dir.display(),
                copy.display()
            )),
            Unusable::Refused(e) => e,
        })?;
        let kept = match aside {
            Some(aside) => format!(" (kept aside as `{}`)", aside.display()),
            None => String::new(),
        };
        let mut skipped = vec![format!(
            "the live database in `{}`: {why}{kept}",
            dir.display()
        )];
        skipped.extend(passed);
        return Ok((opened, skipped, Some(copy.display().to_string())));
    }
    let mut reasons = vec![format!("the live database: {why}")];
    reasons.extend(passed);
    if found.is_empty() {
        reasons.push("no retained copy".into());
    }
    Err(StateError::Corrupt(format!(
        "no intact checkpoint in `{}`: {}",
        dir.display(),
        reasons.join("; ")
    )))
}

impl RocksStore {
    /// Opens the store in `dir`, creating the directory and database if
    /// needed. An existing database keeps its last commit; changes that were
    /// never committed are gone. Fails with a clear error when another
    /// process (or another store in this process) has the database open.
    ///
    /// A damaged or missing live database is set aside and replaced by the
    /// newest intact retained copy, reported by [`StateStore::warnings`];
    /// when no copy is intact, opening fails and changes nothing.
    pub fn open(dir: &Path) -> Result<RocksStore, StateError> {
        fs::create_dir_all(dir)
            .map_err(|e| io_error(format!("cannot create `{}`", dir.display()), &e))?;
        let retainer = Retainer::new(dir);
        let found = retained::copies(&dir.join(retained::CHECKPOINTS))?;
        let newest_copy = found.first().map_or(0, |c| c.0);
        let live = if dir.join("CURRENT").exists() || found.is_empty() {
            open_checked(dir, found.is_empty())
        } else {
            Err(Unusable::Damaged("missing (no CURRENT file)".into()))
        };
        let (opened, skipped, restored) = match live {
            Ok(opened) => (opened, Vec::new(), None),
            Err(Unusable::Refused(e)) => return Err(e),
            Err(Unusable::Damaged(why)) => fall_back(dir, &found, why)?,
        };
        Ok(RocksStore {
            dir: dir.to_path_buf(),
            generation: newest_copy.max(opened.generation),
            loaded: opened.generation,
            db: opened.db,
            cleared: false,
            pending: BTreeMap::new(),
            recovered: opened.recovered,
            retainer,
            skipped,
            restored,
        })
    }

    /// Whether opening found a previous commit.
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// The database directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn read_error(&self, e: &rocksdb::Error) -> StateError {
        backend(format!("cannot read `{}`", self.dir.display()), e)
    }

    /// Committed entries whose keys start with `prefix`, raw keys included.
    fn committed(&self, prefix: Vec<u8>) -> Result<Vec<Entry>, StateError> {
        entries_of(&self.db, &self.dir, prefix)
    }

    /// The whole store as it reads now (commit plus pending changes).
    fn to_memory(&self) -> Result<MemoryStore, StateError> {
        let mut mem = MemoryStore::new();
        if !self.cleared {
            for (raw, v) in self.committed(vec![DATA])? {
                let (table, key) = split_data_key(&raw).ok_or_else(|| {
                    StateError::Corrupt(format!(
                        "`{}`: malformed entry key {raw:?}",
                        self.dir.display()
                    ))
                })?;
                mem.put(table, key, v)?;
            }
        }
        for (table, changes) in &self.pending {
            for (key, change) in changes {
                match change {
                    Some(v) => mem.put(table, key, v.clone())?,
                    None => mem.delete(table, key)?,
                }
            }
        }
        Ok(mem)
    }

    fn pending_table(&mut self, table: &str) -> &mut PendingTable {
        if !self.pending.contains_key(table) {
            self.pending.insert(table.to_string(), BTreeMap::new());
        }
        self.pending
            .get_mut(table)
            .expect("the table was inserted just above")
    }
}

impl StateStore for RocksStore {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        if let Some(change) = self.pending.get(table).and_then(|t| t.get(key)) {
            return Ok(change.clone());
        }
        if self.cleared {
            return Ok(None);
        }
        self.db
            .get(data_key(table, key)?)
            .map_err(|e| self.read_error(&e))
    }

    fn put(&mut self, table: &str, key: &[u8], value: Vec<u8>) -> Result<(), StateError> {
        // Checks the name's length now rather than at commit.
        table_prefix(table)?;
        self.pending_table(table).insert(key.to_vec(), Some(value));
        Ok(())
    }

    fn delete(&mut self, table: &str, key: &[u8]) -> Result<(), StateError> {
        table_prefix(table)?;
        if self.cleared {
            // Nothing committed is visible, so the key can simply stop being pending.
            if let Some(t) = self.pending.get_mut(table) {
                t.remove(key);
                if t.is_empty() {
                    self.pending.remove(table);
                }
            }
        } else {
            self.pending_table(table).insert(key.to_vec(), None);
        }
        Ok(())
    }

    fn scan(&self, table: &str) -> Result<Vec<Entry>, StateError> {
        let prefix = table_prefix(table)?;
        let mut rows: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        if !self.cleared {
            for (raw, v) in self.committed(prefix.clone())? {
                let key = raw.get(prefix.len()..).unwrap_or_default().to_vec();
                rows.insert(key, v);
            }
        }
        if let Some(changes) = self.pending.get(table) {
            for (key, change) in changes {
                match change {
                    Some(v) => rows.insert(key.clone(), v.clone()),
                    None => rows.remove(key),
                };
            }
        }
        Ok(rows.into_iter().collect())
    }

    fn clear(&mut self) -> Result<(), StateError> {
        self.pending.clear();
        self.cleared = true;
        Ok(())
    }

    fn snapshot(&self) -> Result<Vec<u8>, StateError> {
        self.to_memory()?.snapshot()
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        // Decoded in full first, so bad bytes leave the store untouched.
        let mem = MemoryStore::from_snapshot(bytes)?;
        self.clear()?;
        for (table, key, value) in mem.entries() {
            self.put(table, key, value.to_vec())?;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), StateError> {
        let mut batch = WriteBatch::default();
        if self.cleared {
            // Ordered before the puts: a batch applies its operations in order.
            batch.delete_range(&[DATA][..], &[DATA_END][..]);
        }
        for (table, changes) in &self.pending {
            let prefix = table_prefix(table)?;
            for (key, change) in changes {
                let mut k = prefix.clone();
                k.extend_from_slice(key);
                match change {
                    Some(v) => batch.put(&k, v),
                    None => batch.delete(&k),
                }
            }
        }
        batch.put(FORMAT_KEY, FORMAT.to_le_bytes());
        // Numbered after every retained copy, so a restart never prefers an older one.
        let next = self.generation + 1;
        batch.put(GENERATION_KEY, next.to_le_bytes());
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        // On failure the changes stay pending, so the commit can be retried.
        self.db
            .write_opt(batch, &opts)
            .map_err(|e| backend(format!("cannot commit to `{}`", self.dir.display()), &e))?;
        self.pending.clear();
        self.cleared = false;
        self.generation = next;
        self.loaded = next;
        // The commit is durable even if its copy fails; the error still reaches the host,
        // since running on without copies would silently lose the fallback. A retry
        // commits (nothing new) again under the next number and makes that copy.
        self.retainer.retain(&self.db, next).map_err(|e| match e {
            StateError::Backend { message, retryable } => StateError::Backend {
                message: format!("committed, but {message}"),
                retryable,
            },
            other => other,
        })
    }

    fn step_back(&mut self) -> Result<Option<String>, StateError> {
        let found = retained::copies(&self.dir.join(retained::CHECKPOINTS))?;
        let scratch = self.dir.join(RESTORING);
        for (n, copy) in found.iter().filter(|(n, _)| *n < self.loaded) {
            // Damaged copies are passed over, as at open.
            let opened = match open_copy(&self.dir, *n, copy) {
                Ok(o) => o,
                Err(Unusable::Damaged(_)) => continue,
                Err(Unusable::Refused(e)) => return Err(e),
            };
            let rows = entries_of(&opened.db, &scratch, vec![DATA]);
            drop(opened);
            remove_scratch(&scratch)?;
            let mut pending: BTreeMap<String, PendingTable> = BTreeMap::new();
            for (raw, v) in rows? {
                let (table, key) = split_data_key(&raw).ok_or_else(|| {
                    StateError::Corrupt(format!(
                        "`{}`: malformed entry key {raw:?}",
                        copy.display()
                    ))
                })?;
                pending
                    .entry(table.to_string())
                    .or_default()
                    .insert(key.to_vec(), Some(v));
            }
            // Pending over a cleared store: the next commit makes it the live state.
            self.pending = pending;
            self.cleared = true;
            self.loaded = *n;
            return Ok(Some(copy.display().to_string()));
        }
        Ok(None)
    }

    fn warnings(&self) -> Vec<String> {
        let restored = self.restored.as_deref().unwrap_or("?");
        self.skipped
            .iter()
            .map(|s| {
                format!(
                    "passed over a damaged checkpoint, {s}; restored the previous intact one, \
                     `{restored}`"
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    fn open(dir: &tempfile::TempDir) -> RocksStore {
        RocksStore::open(dir.path()).expect("open")
    }

    fn put(s: &mut dyn StateStore, table: &str, key: &str, value: &str) {
        s.put(table, key.as_bytes(), value.as_bytes().to_vec())
            .expect("put");
    }

    /// Every entry as (table, key, value) strings, for readable assertions.
    fn contents(s: &RocksStore) -> Vec<(String, String, String)> {
        let mem = s.to_memory().expect("read all");
        mem.entries()
            .map(|(t, k, v)| {
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                (t.to_string(), text(k), text(v))
            })
            .collect()
    }

    fn row(t: &str, k: &str, v: &str) -> (String, String, String) {
        (t.into(), k.into(), v.into())
    }

    #[test]
    fn uncommitted_changes_vanish_on_reopen_and_a_commit_survives() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = open(&dir);
        assert!(!s.recovered());
        put(&mut s, "engine", "meta", "m1");
        put(&mut s, "stream/3", "op/0", "a");
        s.commit().expect("commit");
        put(&mut s, "engine", "meta", "m2");
        s.delete("stream/3", b"op/0").expect("delete");
        put(&mut s, "stream/4", "op/0", "new");
        assert_eq!(s.get("engine", b"meta").expect("get"), Some(b"m2".to_vec()));
        drop(s);

        let mut s = open(&dir);
        assert!(s.recovered());
        assert_eq!(
            contents(&s),
            [row("engine", "meta", "m1"), row("stream/3", "op/0", "a")]
        );
        // A pending clear is dropped the same way.
        s.clear().expect("clear");
        assert!(s.scan("engine").expect("scan").is_empty());
        drop(s);
        assert_eq!(contents(&open(&dir)).len(), 2);
    }

    #[test]
    fn committing_clear_then_puts_replaces_everything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = open(&dir);
        for i in 0..50 {
            put(&mut s, &format!("stream/{i}"), "op/0", "old");
        }
        put(&mut s, "engine", "meta", "old");
        s.commit().expect("commit");
        s.clear().expect("clear");
        assert_eq!(s.get("engine", b"meta").expect("get"), None);
        put(&mut s, "engine", "meta", "new");
        put(&mut s, "stream/1", "op/1", "new");
        s.commit().expect("commit");
        let expected = [row("engine", "meta", "new"), row("stream/1", "op/1", "new")];
        assert_eq!(contents(&s), expected);
        drop(s);
        assert_eq!(contents(&open(&dir)), expected);
    }

    #[test]
    fn snapshots_match_memory_store_bytes_and_restore_across_backends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = open(&dir);
        let mut mem = MemoryStore::new();
        for store in [&mut s as &mut dyn StateStore, &mut mem] {
            put(store, "engine", "meta", "m");
            put(store, "stream/0", "", "");
            put(store, "", "k", "empty table name");
        }
        s.commit().expect("commit");
        put(&mut s, "stream/0", "pending", "p");
        put(&mut mem, "stream/0", "pending", "p");
        let bytes = s.snapshot().expect("snapshot");
        assert_eq!(bytes, mem.snapshot().expect("snapshot"));

        let other = tempfile::tempdir().expect("tempdir");
        let mut t = open(&other);
        put(&mut t, "gone", "k", "v");
        t.commit().expect("commit");
        t.restore(&bytes).expect("restore");
        t.commit().expect("commit");
        drop(t);
        assert_eq!(open(&other).snapshot().expect("snapshot"), bytes);

        // Bad bytes are refused and leave the store as it was.
        assert!(matches!(s.restore(b"junk"), Err(StateError::Corrupt(_))));
        assert_eq!(s.snapshot().expect("snapshot"), bytes);
    }

    #[test]
    fn a_second_open_of_the_same_directory_names_it_and_can_be_retried() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = open(&dir);
        let err = RocksStore::open(dir.path()).expect_err("locked");
        let StateError::Backend { message, retryable } = &err else {
            panic!("expected a backend error, got {err:?}");
        };
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );
        assert!(message.contains("in use"), "{message}");
        assert!(*retryable);
        drop(s);
        open(&dir);
    }

    #[test]
    fn a_layout_from_another_version_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(open(&dir));
        let db = rocksdb::DB::open_default(dir.path()).expect("raw open");
        db.put(FORMAT_KEY, 7u32.to_le_bytes()).expect("raw put");
        drop(db);
        assert!(matches!(
            RocksStore::open(dir.path()),
            Err(StateError::Version {
                found: 7,
                expected: FORMAT
            })
        ));
    }

    #[test]
    fn stores_can_move_to_another_thread() {
        fn send<T: Send>() {}
        send::<RocksStore>();
        send::<crate::FileStore>();
    }

    /// Set in the child process of the crash test: the store directory.
    const CRASH_CHILD: &str = "VARPULIS_ROCKS_CRASH_CHILD";
    const CRASH_KEYS: usize = 300;

    /// The child's work: commit generation after generation, each a clear
    /// and a full rewrite in which every value is the generation number,
    /// announcing each one on stdout once `commit` returned.
    fn crash_child(dir: &str) {
        let mut s = RocksStore::open(Path::new(dir)).expect("child open");
        for generation in 0..100_000u32 {
            s.clear().expect("clear");
            for i in 0..CRASH_KEYS {
                let table = format!("stream/{}", i % 7);
                s.put(&table, &i.to_be_bytes(), generation.to_le_bytes().to_vec())
                    .expect("put");
            }
            s.commit().expect("commit");
            println!("committed {generation}");
        }
    }

    #[test]
    fn a_writer_killed_mid_commit_leaves_one_whole_commit() {
        if let Ok(dir) = std::env::var(CRASH_CHILD) {
            crash_child(&dir);
            return;
        }
        /// Kills the writer however this test ends, so a failure leaves no process behind.
        struct Writer(std::process::Child);
        impl Drop for Writer {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "rocks::tests::a_writer_killed_mid_commit_leaves_one_whole_commit",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_CHILD, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map(Writer)
            .expect("spawn the writer");
        let stdout = child.0.stdout.take().expect("piped stdout");
        let mut last = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read the writer's output");
            if let Some(n) = line.strip_prefix("committed ") {
                let n: u32 = n.parse().expect("generation");
                last = Some(n);
                if n >= 20 {
                    break;
                }
            }
        }
        // Killed wherever it is, most likely inside a commit.
        drop(child);
        let last = last.expect("the writer committed");

        let s = RocksStore::open(dir.path()).expect("reopen after the kill");
        assert!(s.recovered());
        let mem = s.to_memory().expect("read all");
        let generations: std::collections::BTreeSet<Vec<u8>> =
            mem.entries().map(|(_, _, v)| v.to_vec()).collect();
        assert_eq!(mem.len(), CRASH_KEYS, "a partial commit");
        assert_eq!(generations.len(), 1, "a mix of commits: {generations:?}");
        let got = generations
            .iter()
            .next()
            .and_then(|v| <[u8; 4]>::try_from(v.as_slice()).ok())
            .map(u32::from_le_bytes)
            .expect("a generation");
        assert!(got >= last, "commit {last} was announced, {got} survived");
    }

    /// Commits value `1..=n` under `t`/`k`, one commit each, and closes the store.
    fn commit_values(dir: &tempfile::TempDir, n: u8) {
        let mut s = open(dir);
        for v in 1..=n {
            s.put("t", b"k", vec![v]).expect("put");
            s.commit().expect("commit");
        }
    }

    fn copy_numbers(dir: &tempfile::TempDir) -> Vec<u64> {
        retained::copies(&dir.path().join(retained::CHECKPOINTS))
            .expect("list")
            .into_iter()
            .map(|c| c.0)
            .collect()
    }

    fn value(s: &RocksStore) -> Option<Vec<u8>> {
        s.get("t", b"k").expect("get")
    }

    /// The SST files of database `db`, oldest first.
    fn ssts(db: &Path) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = fs::read_dir(db)
            .expect("list")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "sst"))
            .collect();
        found.sort();
        found
    }

    fn flip_first_byte(path: &Path) {
        let mut bytes = fs::read(path).expect("read");
        bytes[0] ^= 0xff;
        // Written in place: the same file (inode) every hard link shares.
        fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes))
            .expect("damage");
    }

    #[test]
    fn each_commit_keeps_a_checked_copy_and_the_newest_three_stay() {
        let dir = tempfile::tempdir().expect("tempdir");
        commit_values(&dir, 5);
        assert_eq!(copy_numbers(&dir), [5, 4, 3]);
        let checkpoints = dir.path().join(retained::CHECKPOINTS);
        let names: Vec<String> = fs::read_dir(&checkpoints)
            .expect("list")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
        for n in [5, 4, 3] {
            let copy = checkpoints.join(n.to_string());
            let files = retained::verify(&copy).expect("intact");
            assert!(
                files.iter().any(|f| f.starts_with("MANIFEST-")),
                "{files:?}"
            );
        }
        // A reopened store numbers its commits after the copies, and nothing was damaged.
        let mut s = open(&dir);
        assert!(s.warnings().is_empty());
        assert_eq!(value(&s), Some(vec![5]));
        s.commit().expect("commit");
        assert_eq!(copy_numbers(&dir), [6, 5, 4]);
    }

    #[test]
    fn a_damaged_live_database_falls_back_to_the_newest_intact_copy() {
        type Damage = fn(&Path);
        let cases: [(&str, Damage, u8, &str); 5] = [
            (
                "CURRENT overwritten",
                |db| fs::write(db.join("CURRENT"), b"junk").expect("write"),
                3,
                "CURRENT",
            ),
            (
                "MANIFEST truncated",
                |db| {
                    let manifest = fs::read_dir(db)
                        .expect("list")
                        .filter_map(|e| e.ok())
                        .find(|e| e.file_name().to_string_lossy().starts_with("MANIFEST-"))
                        .expect("a MANIFEST")
                        .path();
                    fs::write(manifest, b"").expect("truncate");
                },
                3,
                "",
            ),
            (
                "newest SST removed",
                |db| {
                    fs::remove_file(ssts(db).pop().expect("an SST")).expect("remove");
                },
                3,
                "No such file",
            ),
            // Damaged in place, so the newest copy, which links the same file, is damaged
            // too; the copy before it does not hold that file.
            (
                "newest SST corrupt in place",
                |db| flip_first_byte(&ssts(db).pop().expect("an SST")),
                2,
                "",
            ),
            (
                "newest SST truncated in place",
                |db| {
                    let sst = ssts(db).pop().expect("an SST");
                    let len = fs::metadata(&sst).expect("stat").len();
                    fs::OpenOptions::new()
                        .write(true)
                        .open(&sst)
                        .and_then(|f| f.set_len(len / 2))
                        .expect("truncate");
                },
                2,
                "",
            ),
        ];
        for (what, damage, expected, mention) in cases {
            let dir = tempfile::tempdir().expect("tempdir");
            commit_values(&dir, 3);
            damage(dir.path());
            let s = RocksStore::open(dir.path()).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(s.recovered(), "{what}");
            assert_eq!(value(&s), Some(vec![expected]), "{what}");
            let warnings = s.warnings();
            // The live database, plus the newest copy when it shared the damaged file.
            assert_eq!(
                warnings.len(),
                usize::from(3 - expected) + 1,
                "{what}: {warnings:?}"
            );
            let first = &warnings[0];
            assert!(
                first.starts_with("passed over a damaged checkpoint, the live database")
                    && first.contains(mention)
                    && first.contains("damaged.1")
                    && first.contains(&format!("checkpoints/{expected}`")),
                "{what}: {first}"
            );
            // The damaged database is kept aside, never deleted.
            let aside = dir.path().join("damaged.1");
            assert!(aside.join("CURRENT").exists(), "{what}");
            assert!(!dir.path().join(RESTORING).exists(), "{what}");
            // The restored database takes commits and reopens cleanly.
            let mut s = s;
            s.put("t", b"k", vec![7]).expect("put");
            s.commit().expect("commit");
            drop(s);
            let s = open(&dir);
            assert!(s.warnings().is_empty(), "{what}: {:?}", s.warnings());
            assert_eq!(value(&s), Some(vec![7]), "{what}");
            assert_eq!(copy_numbers(&dir), [4, 3, 2], "{what}");
        }
    }

    #[test]
    fn a_missing_live_database_is_restored_from_its_copies() {
        let dir = tempfile::tempdir().expect("tempdir");
        commit_values(&dir, 2);
        for e in fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok())
        {
            if e.path().is_file() {
                fs::remove_file(e.path()).expect("remove");
            }
        }
        let s = open(&dir);
        assert_eq!(value(&s), Some(vec![2]));
        let warnings = s.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("missing"), "{warnings:?}");
    }

    #[test]
    fn a_damaged_copy_is_passed_over_and_none_intact_refuses_to_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        commit_values(&dir, 3);
        let checkpoints = dir.path().join(retained::CHECKPOINTS);
        // The newest copy's MANIFEST is its own (copied, not linked): only the copy is hit.
        let manifest = fs::read_dir(checkpoints.join("3/db"))
            .expect("list")
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().starts_with("MANIFEST-"))
            .expect("a MANIFEST")
            .path();
        flip_first_byte(&manifest);
        fs::write(dir.path().join("CURRENT"), b"junk").expect("damage");
        let s = open(&dir);
        assert_eq!(value(&s), Some(vec![2]));
        let warnings = s.warnings();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[1].contains("checkpoints/3`") && warnings[1].contains("checksum mismatch"),
            "{warnings:?}"
        );
        drop(s);

        // Nothing intact: opening fails, names every reason, and leaves the files alone.
        fs::write(dir.path().join("CURRENT"), b"junk").expect("damage");
        for (_, copy) in retained::copies(&checkpoints).expect("list") {
            fs::write(copy.join("SHA256SUMS"), b"junk").expect("damage");
        }
        let err = RocksStore::open(dir.path()).expect_err("nothing intact");
        let message = err.to_string();
        assert!(matches!(err, StateError::Corrupt(_)), "{err:?}");
        assert!(
            message.contains("no intact checkpoint") && message.contains("the live database"),
            "{message}"
        );
        assert!(!dir.path().join("damaged.2").exists());
        assert_eq!(fs::read(dir.path().join("CURRENT")).expect("read"), b"junk");
    }

    #[test]
    fn stepping_back_loads_the_commit_before_and_the_next_commit_comes_after_all() {
        let dir = tempfile::tempdir().expect("tempdir");
        commit_values(&dir, 3);
        let mut s = open(&dir);
        assert_eq!(value(&s), Some(vec![3]));
        let back = s.step_back().expect("step back");
        assert!(back.is_some_and(|name| name.ends_with("checkpoints/2")));
        assert_eq!(value(&s), Some(vec![2]));
        // A damaged copy is passed over.
        let one = dir.path().join(retained::CHECKPOINTS).join("1");
        fs::write(one.join("SHA256SUMS"), b"junk").expect("damage");
        assert_eq!(s.step_back().expect("step back"), None);
        assert_eq!(value(&s), Some(vec![2]));
        // Without a commit, a restart still loads the newest commit.
        drop(s);
        let mut s = open(&dir);
        assert_eq!(value(&s), Some(vec![3]));
        s.step_back().expect("step back");
        // The next commit is newer than every copy, so a restart loads it.
        s.put("t", b"k", vec![9]).expect("put");
        s.commit().expect("commit");
        assert_eq!(copy_numbers(&dir), [4, 3, 2]);
        drop(s);
        let s = open(&dir);
        assert_eq!(value(&s), Some(vec![9]));
        assert!(!dir.path().join(RESTORING).exists());
    }

    const TABLES: [&str; 4] = ["engine", "stream/3", "stream/30", ""];

    #[derive(Clone, Debug)]
    enum Op {
        Put(usize, Vec<u8>, Vec<u8>),
        Delete(usize, Vec<u8>),
        Clear,
        Restore(Vec<(usize, Vec<u8>, Vec<u8>)>),
        Commit,
        Reopen,
    }

    fn key() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(0xff)], 0..3)
    }

    fn op() -> impl Strategy<Value = Op> {
        let table = 0..TABLES.len();
        let value = proptest::collection::vec(any::<u8>(), 0..4);
        prop_oneof![
            6 => (table.clone(), key(), value.clone()).prop_map(|(t, k, v)| Op::Put(t, k, v)),
            3 => (table.clone(), key()).prop_map(|(t, k)| Op::Delete(t, k)),
            1 => Just(Op::Clear),
            1 => proptest::collection::vec((table, key(), value), 0..5).prop_map(Op::Restore),
            2 => Just(Op::Commit),
            2 => Just(Op::Reopen),
        ]
    }

    /// Every key any test can generate.
    fn all_keys() -> Vec<Vec<u8>> {
        let bytes = [0u8, 1, 0xff];
        let mut keys = vec![vec![]];
        for a in bytes {
            keys.push(vec![a]);
            for b in bytes {
                keys.push(vec![a, b]);
            }
        }
        keys
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// RocksStore reads like a MemoryStore after any sequence of
        /// changes, commits and reopenings (a reopening goes back to the
        /// last commit).
        #[test]
        fn reads_match_a_memory_store(ops in proptest::collection::vec(op(), 1..40)) {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut s = Some(open(&dir));
            let mut model = MemoryStore::new();
            let mut committed = MemoryStore::new();
            let mut ever_committed = false;
            for op in ops {
                let store = s.as_mut().expect("open store");
                match op {
                    Op::Put(t, k, v) => {
                        store.put(TABLES[t], &k, v.clone()).expect("put");
                        model.put(TABLES[t], &k, v).expect("put");
                    }
                    Op::Delete(t, k) => {
                        store.delete(TABLES[t], &k).expect("delete");
                        model.delete(TABLES[t], &k).expect("delete");
                    }
                    Op::Clear => {
                        store.clear().expect("clear");
                        model.clear().expect("clear");
                    }
                    Op::Restore(entries) => {
                        let mut source = MemoryStore::new();
                        for (t, k, v) in entries {
                            source.put(TABLES[t], &k, v).expect("put");
                        }
                        let bytes = source.snapshot().expect("snapshot");
                        store.restore(&bytes).expect("restore");
                        model = source;
                    }
                    Op::Commit => {
                        store.commit().expect("commit");
                        committed = model.clone();
                        ever_committed = true;
                    }
                    Op::Reopen => {
                        // The old store must close (and free its lock) first.
                        drop(s.take());
                        let reopened = open(&dir);
                        prop_assert_eq!(reopened.recovered(), ever_committed);
                        s = Some(reopened);
                        model = committed.clone();
                    }
                }
                let store = s.as_ref().expect("open store");
                for table in TABLES {
                    prop_assert_eq!(store.scan(table).expect("scan"), model.scan(table).expect("scan"));
                    for k in all_keys() {
                        prop_assert_eq!(store.get(table, &k).expect("get"), model.get(table, &k).expect("get"));
                    }
                }
                prop_assert_eq!(store.snapshot().expect("snapshot"), model.snapshot().expect("snapshot"));
            }
        }
    }
}

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
//! **Snapshots** use [`MemoryStore`]'s byte format (they are converted
//! through one), so they move freely between backends. A store holds no
//! empty tables (a table exists while it has entries), as a `MemoryStore`
//! built by puts and deletes does.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rocksdb::{Direction, ErrorKind, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions};

use crate::{Entry, MemoryStore, StateError, StateStore};

/// The version of the key layout described in the module docs.
const FORMAT: u32 = 1;
/// The meta key holding [`FORMAT`].
const FORMAT_KEY: &[u8] = b"mformat";
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
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("dir", &self.dir)
            .field("cleared", &self.cleared)
            .field("pending_tables", &self.pending.len())
            .field("recovered", &self.recovered)
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

impl RocksStore {
    /// Opens the store in `dir`, creating the directory and database if
    /// needed. An existing database keeps its last commit; changes that were
    /// never committed are gone. Fails with a clear error when another
    /// process (or another store in this process) has the database open.
    pub fn open(dir: &Path) -> Result<RocksStore, StateError> {
        fs::create_dir_all(dir).map_err(|e| StateError::Backend {
            message: format!("cannot create `{}`: {e}", dir.display()),
            retryable: !matches!(e.kind(), std::io::ErrorKind::PermissionDenied),
        })?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        // RocksDB writes a new info LOG at every open and by default keeps 1000 old ones.
        opts.set_keep_log_file_num(4);
        let db = rocksdb::DB::open(&opts, dir).map_err(|e| {
            if e.kind() == ErrorKind::IOError && e.to_string().to_lowercase().contains("lock") {
                StateError::Backend {
                    message: format!(
                        "cannot open state store `{}`: it is in use by another process \
                         (or another store in this one): {e}",
                        dir.display()
                    ),
                    retryable: true,
                }
            } else {
                backend(format!("cannot open state store `{}`", dir.display()), &e)
            }
        })?;
        let recovered = match db
            .get(FORMAT_KEY)
            .map_err(|e| backend(format!("cannot read `{}`", dir.display()), &e))?
        {
            None => false,
            Some(bytes) => {
                let found = <[u8; 4]>::try_from(bytes.as_slice())
                    .map(u32::from_le_bytes)
                    .map_err(|_| {
                        StateError::Corrupt(format!(
                            "`{}`: format marker of {} bytes",
                            dir.display(),
                            bytes.len()
                        ))
                    })?;
                if found != FORMAT {
                    return Err(StateError::Version {
                        found,
                        expected: FORMAT,
                    });
                }
                true
            }
        };
        Ok(RocksStore {
            dir: dir.to_path_buf(),
            db,
            cleared: false,
            pending: BTreeMap::new(),
            recovered,
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
        let mut opts = ReadOptions::default();
        opts.set_iterate_range(rocksdb::PrefixRange(prefix.clone()));
        let mut out = Vec::new();
        let iter = self
            .db
            .iterator_opt(IteratorMode::From(&prefix, Direction::Forward), opts);
        for item in iter {
            let (k, v) = item.map_err(|e| self.read_error(&e))?;
            out.push((k.into_vec(), v.into_vec()));
        }
        Ok(out)
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
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        // On failure the changes stay pending, so the commit can be retried.
        self.db
            .write_opt(batch, &opts)
            .map_err(|e| backend(format!("cannot commit to `{}`", self.dir.display()), &e))?;
        self.pending.clear();
        self.cleared = false;
        Ok(())
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

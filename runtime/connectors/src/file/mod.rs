//! The `file` sink: JSON lines appended to a file, buffered, optionally rotated by size.
//!
//! Parameters: `path` (default `<Name>.jsonl`, relative to the context's base directory),
//! `append` (default `true`; `false` truncates at open), `rotate_bytes` (rotate before a line
//! would push the file past this size), `max_files` (rotated files kept, default 5:
//! `path.1` is the newest, `path.N` the oldest), `dead_letter` (optional JSONL file for records
//! that could not be written).
//!
//! Records are buffered in memory and written on [`Sink::flush`], [`Sink::close`], on drop, and
//! whenever the buffer passes [`BUFFER_BYTES`]. A failed write (disk full, removed directory)
//! returns an error naming the path, counts the buffered records as failed, saves them to the
//! dead-letter file when one is configured, and truncates the file back to its last complete line
//! so a half-written record never corrupts the JSONL.
//!
//! **Exactly once with checkpoints.** [`Sink::barrier`] writes the buffer and syncs the file
//! (and, after a rotation, its directory), then returns a mark: the length of the current file
//! and, when rotating, a hash of its content and its inode. After a crash, [`Sink::restore`]
//! finds that file again (it may have been rotated to `path.k` since), removes the files
//! written after it, renames the older ones back, and truncates it to the mark's length, so the
//! replay from the checkpoint rewrites exactly what followed: the files end as an uninterrupted
//! run leaves them. A write failure breaks that promise until a restart (the records are
//! dead-lettered, but missing from the file), so every later barrier fails with
//! [`SinkError::Lost`] and no checkpoint commits past them. `append: false` truncates the file
//! before the first write rather than at open, so a restart from a checkpoint keeps what the
//! checkpoint covers.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{ConnectorConfig, Params};
use crate::dead_letter::DeadLetter;
use crate::error::{ConfigError, SinkError};
use crate::metrics::Counters;
use crate::{Record, Sink, SinkContext, SinkMark, SinkMetrics};

pub mod source;

/// Parameters only the file sink reads (a file connector used as a source tolerates them).
pub const SINK_PARAMS: &[&str] = &["append", "rotate_bytes", "max_files", "dead_letter"];

/// Buffered bytes that trigger a write without waiting for `flush`.
pub const BUFFER_BYTES: usize = 64 * 1024;

/// Settings of a file sink, after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSettings {
    /// Output file.
    pub path: PathBuf,
    /// Append to an existing file (`true`) or truncate it at open.
    pub append: bool,
    /// Rotate when the file would grow past this many bytes.
    pub rotate_bytes: Option<u64>,
    /// Number of rotated files kept (`path.1` .. `path.N`).
    pub max_files: u32,
    /// Where records that could not be written are saved, if anywhere.
    pub dead_letter: Option<PathBuf>,
}

impl FileSettings {
    /// Reads and validates the `file` connector parameters.
    pub fn from_config(config: &ConnectorConfig, base_dir: &Path) -> Result<Self, ConfigError> {
        let mut p = Params::new(config);
        let path = p.path("path", || format!("{}.jsonl", config.name), base_dir)?;
        let append = p.bool("append", true)?;
        let rotate_bytes = p.optional_count("rotate_bytes", 1)?;
        let max_files = p.count("max_files", 5, 1)?;
        let max_files = u32::try_from(max_files)
            .map_err(|_| p.invalid("max_files", format!("{max_files} is too large")))?;
        let dead_letter = if config.params.contains_key("dead_letter") {
            Some(p.path("dead_letter", String::new, base_dir)?)
        } else {
            p.string("dead_letter")?;
            None
        };
        p.tolerate(source::SOURCE_PARAMS);
        p.finish()?;
        Ok(FileSettings {
            path,
            append,
            rotate_bytes,
            max_files,
            dead_letter,
        })
    }
}

/// Writes records as JSON lines to a file.
pub struct FileSink {
    name: String,
    settings: FileSettings,
    file: Option<File>,
    /// Bytes in the current file known to end on a complete line.
    committed: u64,
    buf: Vec<u8>,
    /// The records in `buf`, kept so a failed write can dead-letter them.
    buffered: Vec<Record>,
    dead_letter: Option<DeadLetter>,
    counters: Arc<Counters>,
    closed: bool,
    /// `append: false` and nothing written or restored yet: the file is emptied first.
    truncate_pending: bool,
    /// With rotation: the hash of the current file's `committed` bytes, which finds the file
    /// again after it was rotated ([`Sink::restore`]).
    hash: Option<u64>,
    /// A rotation happened since the last barrier: the directory needs a sync.
    rotated: bool,
    /// Records that could not be written since the sink opened (see [`SinkError::Lost`]).
    lost: u64,
}

/// Where a file sink stood at a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileMark {
    /// Bytes of the current file the checkpoint covers.
    len: u64,
    /// With rotation: the hash of those bytes.
    hash: Option<u64>,
    /// With rotation, on Unix: the current file's inode (renames keep it).
    ino: Option<u64>,
}

impl FileMark {
    fn to_json(self) -> SinkMark {
        let mut m = serde_json::Map::new();
        m.insert("len".into(), self.len.into());
        if let Some(h) = self.hash {
            m.insert("hash".into(), h.into());
        }
        if let Some(i) = self.ino {
            m.insert("ino".into(), i.into());
        }
        SinkMark::Object(m)
    }

    fn from_json(mark: &SinkMark) -> Option<FileMark> {
        Some(FileMark {
            len: mark.get("len")?.as_u64()?,
            hash: mark.get("hash").and_then(SinkMark::as_u64),
            ino: mark.get("ino").and_then(SinkMark::as_u64),
        })
    }
}

/// FNV-1a, 64 bits: stable across builds and platforms (it is stored in checkpoints).
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The hash of the first `len` bytes of `path`; `None` when it is shorter.
fn hash_prefix(path: &Path, len: u64) -> io::Result<Option<u64>> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let mut left = len;
    let mut hash = FNV_START;
    let mut chunk = vec![0u8; 64 * 1024];
    while left > 0 {
        let want = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
        let n = file.read(&mut chunk[..want])?;
        if n == 0 {
            return Ok(None);
        }
        hash = fnv(hash, &chunk[..n]);
        left -= n as u64;
    }
    Ok(Some(hash))
}

#[cfg(unix)]
fn inode(meta: &fs::Metadata) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    Some(meta.ino())
}

#[cfg(not(unix))]
fn inode(_meta: &fs::Metadata) -> Option<u64> {
    None
}

impl FileSink {
    /// Builds the sink from a `file` connector declaration, opening (or creating) the file.
    pub fn open(config: &ConnectorConfig, context: &SinkContext) -> Result<Self, ConfigError> {
        let settings = FileSettings::from_config(config, &context.base_dir)?;
        FileSink::with_settings(&config.name, settings)
    }

    /// Builds the sink from validated settings.
    pub fn with_settings(name: &str, settings: FileSettings) -> Result<Self, ConfigError> {
        let counters = Arc::new(Counters::default());
        let open_error = |source| ConfigError::Open {
            connector: name.to_string(),
            path: settings.path.clone(),
            source,
        };
        // Always opened for appending: `append: false` empties the file before the first write,
        // unless a restart from a checkpoint restores it first.
        let file = open_output(&settings.path).map_err(open_error)?;
        let truncate_pending = !settings.append;
        let committed = if truncate_pending {
            0
        } else {
            file.metadata().map(|m| m.len()).map_err(open_error)?
        };
        let hash = match settings.rotate_bytes {
            None => None,
            Some(_) if committed == 0 => Some(FNV_START),
            Some(_) => hash_prefix(&settings.path, committed)
                .map_err(open_error)?
                .or(Some(FNV_START)),
        };
        let dead_letter = settings
            .dead_letter
            .clone()
            .map(|path| DeadLetter::new(name, path, Arc::clone(&counters)))
            .transpose()?;
        Ok(FileSink {
            name: name.to_string(),
            settings,
            file: Some(file),
            committed,
            buf: Vec::new(),
            buffered: Vec::new(),
            dead_letter,
            counters,
            closed: false,
            truncate_pending,
            hash,
            rotated: false,
            lost: 0,
        })
    }

    /// The output file.
    pub fn path(&self) -> &Path {
        &self.settings.path
    }

    /// The open output file, opened again after a failure.
    fn file(&mut self) -> Result<&mut File, (&'static str, io::Error)> {
        let file = match self.file.take() {
            Some(f) => f,
            None => open_output(&self.settings.path).map_err(|e| ("open", e))?,
        };
        Ok(self.file.insert(file))
    }

    /// Empties the file of an `append: false` sink before its first write.
    fn truncate_if_pending(&mut self) -> Result<(), (&'static str, io::Error)> {
        if self.truncate_pending {
            self.file()?.set_len(0).map_err(|e| ("truncate", e))?;
            self.truncate_pending = false;
        }
        Ok(())
    }

    /// Writes the buffer to the file. On error the buffer is left intact.
    fn write_buffer(&mut self) -> Result<(), (&'static str, io::Error)> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.truncate_if_pending()?;
        let buf = std::mem::take(&mut self.buf);
        let written = self
            .file()
            .and_then(|f| f.write_all(&buf).map_err(|e| ("write to", e)));
        self.buf = buf;
        written?;
        self.hash = self.hash.map(|h| fnv(h, &self.buf));
        self.committed += self.buf.len() as u64;
        Counters::add(&self.counters.sent, self.buffered.len() as u64);
        Counters::add(&self.counters.bytes, self.buf.len() as u64);
        self.buf.clear();
        self.buffered.clear();
        Ok(())
    }

    /// Gives up on the buffered records after a write failure: truncates any partial line,
    /// dead-letters the records if possible, counts them, and builds the error.
    fn fail_buffer(&mut self, op: &'static str, source: io::Error) -> SinkError {
        if let Some(file) = &self.file {
            // Best effort: on a full disk or a device this may fail too, and the next successful
            // write still starts on a fresh line because we only ever write whole lines.
            if file.set_len(self.committed).is_err() {
                self.file = None;
            }
        }
        let records = std::mem::take(&mut self.buffered);
        self.buf.clear();
        let n = records.len() as u64;
        self.lost += n;
        Counters::add(&self.counters.failed, n);
        let reason = format!("{op} `{}` failed: {source}", self.settings.path.display());
        let dead_lettered = match &mut self.dead_letter {
            Some(dl) => dl.write(&records, &reason, 1).is_ok(),
            None => {
                Counters::add(&self.counters.dropped, n);
                false
            }
        };
        let err = SinkError::WriteFailed {
            connector: self.name.clone(),
            path: self.settings.path.clone(),
            records: n,
            dead_lettered,
            source,
        };
        self.counters.set_last_error(err.to_string());
        err
    }

    /// Renames `path` to `path.1`, shifting older files up and dropping the oldest.
    fn rotate(&mut self) -> Result<(), (&'static str, io::Error)> {
        self.file = None;
        let path = &self.settings.path;
        for i in (1..self.settings.max_files).rev() {
            let from = numbered(path, i);
            if from.exists() {
                fs::rename(&from, numbered(path, i + 1)).map_err(|e| ("rotate", e))?;
            }
        }
        fs::rename(path, numbered(path, 1)).map_err(|e| ("rotate", e))?;
        self.committed = 0;
        self.hash = Some(FNV_START);
        self.rotated = true;
        let file = open_output(path).map_err(|e| ("open", e))?;
        // A file left behind by a crash after the rename above: the new file starts empty.
        file.set_len(0).map_err(|e| ("truncate", e))?;
        self.file = Some(file);
        Ok(())
    }

    /// The barrier's work: everything written and synced, the mark of where the file stands.
    fn sync(&mut self) -> Result<FileMark, SinkError> {
        self.write_buffer()
            .map_err(|(op, e)| self.fail_buffer(op, e))?;
        if self.lost > 0 {
            let err = SinkError::Lost {
                connector: self.name.clone(),
                path: self.settings.path.clone(),
                records: self.lost,
            };
            self.counters.set_last_error(err.to_string());
            return Err(err);
        }
        let (name, path) = (self.name.clone(), self.settings.path.clone());
        let io = |op, source| SinkError::Io {
            connector: name.clone(),
            path: path.clone(),
            op,
            source,
        };
        self.truncate_if_pending().map_err(|(op, e)| io(op, e))?;
        let rotating = self.hash.is_some();
        let file = self.file().map_err(|(op, e)| io(op, e))?;
        file.sync_data().map_err(|e| io("sync", e))?;
        let ino = match rotating {
            true => file.metadata().ok().as_ref().and_then(inode),
            false => None,
        };
        if self.rotated {
            // The renames of a rotation are durable only once the directory is synced.
            let dir = self
                .settings
                .path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io("sync the directory of", e))?;
            self.rotated = false;
        }
        if let Some(dl) = &mut self.dead_letter {
            dl.sync()?;
        }
        Ok(FileMark {
            len: self.committed,
            hash: self.hash,
            ino,
        })
    }

    /// Takes the files back to `mark` (see the module header).
    fn rewind(&mut self, mark: FileMark) -> Result<(), String> {
        let path = self.settings.path.clone();
        let slot = |k: u32| {
            if k == 0 {
                path.clone()
            } else {
                numbered(&path, k)
            }
        };
        let max = self.settings.max_files;
        if let Some(want) = mark.hash {
            // Which file was current at the checkpoint: the newest one whose first `len`
            // bytes hash alike, preferring the one with the same inode.
            let matches = |k: u32, by_inode: bool| -> bool {
                let p = slot(k);
                let Ok(meta) = fs::metadata(&p) else {
                    return false;
                };
                if by_inode && (mark.ino.is_none() || inode(&meta) != mark.ino) {
                    return false;
                }
                meta.len() >= mark.len
                    && matches!(hash_prefix(&p, mark.len), Ok(Some(h)) if h == want)
            };
            let found = (0..=max)
                .find(|&k| matches(k, true))
                .or_else(|| (0..=max).find(|&k| matches(k, false)));
            let existing = (0..=max).filter(|&k| slot(k).exists()).count();
            match found {
                Some(k) => {
                    for newer in 0..k {
                        remove(&slot(newer))?;
                    }
                    for j in 0..=max - k {
                        let from = slot(k + j);
                        if k > 0 && from.exists() {
                            fs::rename(&from, slot(j))
                                .map_err(|e| format!("renaming `{}`: {e}", from.display()))?;
                        }
                    }
                }
                // Every slot holds a file written after the checkpoint: the checkpoint's file
                // was rotated out. The replay rotates at least as often again, so its content
                // never reaches the final files; only its length matters (when the next
                // rotation comes), and a file of that many zero bytes stands in for it.
                None if existing == max as usize + 1 => {
                    for k in 0..=max {
                        remove(&slot(k))?;
                    }
                    open_output(&path)
                        .and_then(|f| f.set_len(mark.len))
                        .map_err(|e| format!("creating `{}`: {e}", path.display()))?;
                }
                None => {
                    return Err(format!(
                        "none of `{}` and its rotated files holds the {} bytes the checkpoint \
                         covers (were they moved or edited?); put them back, or remove the \
                         state directory to start afresh",
                        path.display(),
                        mark.len
                    ))
                }
            }
        }
        let len = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound && mark.len == 0 => 0,
            Err(e) => {
                return Err(format!(
                    "{e}; the checkpoint covers its first {} bytes: put it back, or remove the \
                     state directory to start afresh",
                    mark.len
                ))
            }
        };
        if len < mark.len {
            return Err(format!(
                "it has {len} bytes but the checkpoint covers {} (was it edited?); remove the \
                 state directory to start afresh",
                mark.len
            ));
        }
        let file = open_output(&path).map_err(|e| format!("opening it: {e}"))?;
        file.set_len(mark.len)
            .and_then(|()| file.sync_data())
            .map_err(|e| format!("truncating it to {} bytes: {e}", mark.len))?;
        if self.hash.is_some() {
            // From the file itself: the mark has no hash when rotation was turned on since.
            let hash = hash_prefix(&path, mark.len)
                .map_err(|e| format!("reading it back: {e}"))?
                .unwrap_or(FNV_START);
            self.hash = Some(hash);
        }
        self.file = Some(file);
        self.committed = mark.len;
        self.truncate_pending = false;
        Ok(())
    }

    fn needs_rotation(&self, line_len: usize) -> bool {
        let current = self.committed + self.buf.len() as u64;
        match self.settings.rotate_bytes {
            // A line longer than the limit still goes into a fresh file of its own.
            Some(limit) => current > 0 && current + line_len as u64 > limit,
            None => false,
        }
    }
}

fn open_output(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Removes `path` if it is there.
fn remove(path: &Path) -> Result<(), String> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("removing `{}`: {e}", path.display())),
    }
}

/// `path` with `.n` appended (`Out.jsonl.1`).
fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl Sink for FileSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn send(&mut self, record: Record) -> Result<(), SinkError> {
        if self.closed {
            return Err(SinkError::Closed {
                connector: self.name.clone(),
            });
        }
        let line_len = record.len() + 1;
        let rotation = if self.needs_rotation(line_len) {
            self.write_buffer().and_then(|()| self.rotate())
        } else {
            Ok(())
        };
        self.buf.extend_from_slice(record.as_bytes());
        self.buf.push(b'\n');
        self.buffered.push(record);
        // If rotation failed, this record is reported together with whatever was still
        // buffered, so an `Err` from `send` always covers the record passed in.
        let written = rotation.and_then(|()| {
            if self.buf.len() >= BUFFER_BYTES {
                self.write_buffer()
            } else {
                Ok(())
            }
        });
        written.map_err(|(op, e)| self.fail_buffer(op, e))
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.write_buffer()
            .map_err(|(op, e)| self.fail_buffer(op, e))
    }

    /// Writes and syncs; a file cannot be bounded in time, so `deadline` is not used.
    fn barrier(&mut self, _deadline: std::time::Instant) -> Result<Option<SinkMark>, SinkError> {
        self.sync().map(|mark| Some(mark.to_json()))
    }

    fn restore(&mut self, mark: &SinkMark) -> Result<(), SinkError> {
        let (name, path) = (self.name.clone(), self.settings.path.clone());
        let restore_error = |reason: String| SinkError::Restore {
            connector: name.clone(),
            path: path.clone(),
            reason,
        };
        let Some(mark) = FileMark::from_json(mark) else {
            return Err(restore_error(format!(
                "the checkpoint's mark {mark} is not one of a file sink"
            )));
        };
        self.buf.clear();
        self.buffered.clear();
        self.file = None;
        self.rewind(mark).map_err(restore_error)
    }

    fn close(&mut self) -> Result<(), SinkError> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        let result = self.flush().and_then(|()| {
            self.truncate_if_pending()
                .map_err(|(op, e)| self.fail_buffer(op, e))
        });
        self.file = None;
        result
    }

    fn metrics(&self) -> SinkMetrics {
        let mut m = self.counters.snapshot();
        m.queue_depth = self.buffered.len() as u64;
        m
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        // Errors cannot be returned from drop; they are already counted in the metrics.
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConfigValue;

    fn settings(params: &[(&str, ConfigValue)]) -> Result<FileSettings, ConfigError> {
        let config = params
            .iter()
            .fold(ConnectorConfig::new("Out", "file"), |c, (k, v)| {
                c.param(*k, v.clone())
            });
        FileSettings::from_config(&config, Path::new("/base"))
    }

    #[test]
    fn defaults_name_the_file_after_the_connector() {
        let s = settings(&[]).expect("no params is valid");
        assert_eq!(s.path, PathBuf::from("/base/Out.jsonl"));
        assert!(s.append);
        assert_eq!(s.rotate_bytes, None);
        assert_eq!(s.max_files, 5);
        assert_eq!(s.dead_letter, None);
    }

    #[test]
    fn absolute_path_is_kept() {
        let s = settings(&[("path", ConfigValue::Str("/tmp/x.jsonl".into()))]).expect("valid");
        assert_eq!(s.path, PathBuf::from("/tmp/x.jsonl"));
    }

    #[test]
    fn zero_rotate_bytes_is_rejected() {
        let err = settings(&[("rotate_bytes", ConfigValue::Int(0))]).expect_err("zero");
        assert_eq!(
            err.to_string(),
            "connector `Out`: parameter `rotate_bytes`: must be at least 1, found 0"
        );
    }

    #[test]
    fn numbered_appends_suffix() {
        assert_eq!(
            numbered(Path::new("/d/Out.jsonl"), 2),
            PathBuf::from("/d/Out.jsonl.2")
        );
    }
}

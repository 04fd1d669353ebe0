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

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{ConnectorConfig, Params};
use crate::dead_letter::DeadLetter;
use crate::error::{ConfigError, SinkError};
use crate::metrics::Counters;
use crate::{Record, Sink, SinkContext, SinkMetrics};

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
        let file = open_output(&settings.path, settings.append).map_err(open_error)?;
        let committed = file.metadata().map(|m| m.len()).map_err(open_error)?;
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
        })
    }

    /// The output file.
    pub fn path(&self) -> &Path {
        &self.settings.path
    }

    /// Writes the buffer to the file. On error the buffer is left intact.
    fn write_buffer(&mut self) -> Result<(), (&'static str, io::Error)> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            self.file = Some(open_output(&self.settings.path, true).map_err(|e| ("open", e))?);
        }
        let file = self.file.as_mut().expect("opened just above");
        file.write_all(&self.buf).map_err(|e| ("write to", e))?;
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
        self.file = Some(open_output(path, false).map_err(|e| ("open", e))?);
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

fn open_output(path: &Path, append: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true);
    if append {
        options.append(true);
    } else {
        options.write(true).truncate(true);
    }
    options.open(path)
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

    fn close(&mut self) -> Result<(), SinkError> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        let result = self.flush();
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

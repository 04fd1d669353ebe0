//! The dead-letter file: where records go when they cannot be delivered.
//!
//! One JSON line per record: the record's own fields plus `_error` (why it was not delivered)
//! and `_attempts` (how many delivery attempts were made; 0 when none was). The file is opened
//! lazily in append mode, so a healthy sink never leaves an empty file behind, and each write is
//! a single `write_all` so lines from concurrent writers do not interleave.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
#[cfg(any(feature = "mqtt", feature = "websocket"))]
use std::sync::{Mutex, MutexGuard};

use serde_json::{Map, Value};

use crate::error::{ConfigError, SinkError};
use crate::metrics::Counters;
use crate::Record;

#[cfg(any(feature = "mqtt", feature = "websocket"))]
/// The dead-letter file of a sink whose delivery thread shares it.
pub(crate) fn locked(file: &Mutex<DeadLetter>) -> MutexGuard<'_, DeadLetter> {
    // A poisoned lock only means another thread panicked mid-write; the file is still usable.
    file.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(any(feature = "mqtt", feature = "websocket"))]
/// Counts `records` as failed (with the reason as the sink's last error) and saves them in
/// the shared dead-letter `file`: what every sink with a delivery thread does when it gives
/// records up.
pub(crate) fn fail_records(
    file: &Mutex<DeadLetter>,
    counters: &Counters,
    connector: &str,
    records: &[Record],
    reason: &str,
    attempts: u32,
) -> Result<(), SinkError> {
    if records.is_empty() {
        return Ok(());
    }
    let n = records.len() as u64;
    Counters::add(&counters.failed, n);
    counters.set_last_error(format!("connector `{connector}`: {n} record(s) {reason}"));
    locked(file).write(records, reason, attempts)
}

/// An append-only JSONL file for undeliverable records.
#[derive(Debug)]
pub(crate) struct DeadLetter {
    connector: String,
    path: PathBuf,
    file: Option<File>,
    counters: Arc<Counters>,
}

impl DeadLetter {
    /// Prepares the dead-letter file, checking that its directory exists so a typo is reported
    /// when the pipeline starts rather than at the first failure.
    pub(crate) fn new(
        connector: &str,
        path: PathBuf,
        counters: Arc<Counters>,
    ) -> Result<Self, ConfigError> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(ConfigError::Open {
                connector: connector.to_string(),
                path: path.clone(),
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("directory `{}` does not exist", dir.display()),
                ),
            });
        }
        Ok(DeadLetter {
            connector: connector.to_string(),
            path,
            file: None,
            counters,
        })
    }

    /// Saves `records` with the reason they were not delivered.
    ///
    /// Counts them as dead-lettered, or as dropped when the file cannot be written, in which case
    /// the error names the file and the reason.
    pub(crate) fn write(
        &mut self,
        records: &[Record],
        reason: &str,
        attempts: u32,
    ) -> Result<(), SinkError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut out = Vec::new();
        for record in records {
            out.extend_from_slice(&dead_letter_line(record, reason, attempts));
            out.push(b'\n');
        }
        let n = records.len() as u64;
        match self.append(&out) {
            Ok(()) => {
                Counters::add(&self.counters.dead_lettered, n);
                Ok(())
            }
            Err(source) => {
                Counters::add(&self.counters.dropped, n);
                let err = SinkError::DeadLetter {
                    connector: self.connector.clone(),
                    path: self.path.clone(),
                    reason: reason.to_string(),
                    source,
                };
                self.counters.set_last_error(err.to_string());
                Err(err)
            }
        }
    }

    /// Makes what was written durable (a checkpoint barrier counts dead-lettered records as
    /// handled only once they are on disk).
    pub(crate) fn sync(&mut self) -> Result<(), SinkError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        file.sync_data().map_err(|source| {
            let err = SinkError::Io {
                connector: self.connector.clone(),
                path: self.path.clone(),
                op: "sync",
                source,
            };
            self.counters.set_last_error(err.to_string());
            err
        })
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            self.file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        let file = self.file.as_mut().expect("opened just above");
        let result = file.write_all(bytes);
        if result.is_err() {
            // Reopen next time: the file may have been removed or the disk remounted.
            self.file = None;
        }
        result
    }
}

/// The record as a JSON object with `_error` and `_attempts` added.
fn dead_letter_line(record: &Record, reason: &str, attempts: u32) -> Vec<u8> {
    let mut map = match serde_json::from_slice::<Map<String, Value>>(record.as_bytes()) {
        Ok(map) => map,
        // Records are validated on construction, so this only guards against a future change
        // to that rule; keep the payload rather than lose it.
        Err(_) => {
            let mut m = Map::new();
            m.insert(
                "_raw".into(),
                Value::String(String::from_utf8_lossy(record.as_bytes()).into_owned()),
            );
            m
        }
    };
    map.insert(
        "_error".into(),
        Value::String(crate::redact::redact(reason)),
    );
    map.insert("_attempts".into(), Value::from(attempts));
    serde_json::to_vec(&map).expect("a JSON map with string keys always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_line_adds_error_and_attempts() {
        let record = Record::from_json(br#"{"event_type":"A","x":1}"#).expect("valid");
        let line = dead_letter_line(&record, "server answered HTTP 500", 4);
        let v: Value = serde_json::from_slice(&line).expect("valid JSON");
        assert_eq!(v["event_type"], "A");
        assert_eq!(v["x"], 1);
        assert_eq!(v["_error"], "server answered HTTP 500");
        assert_eq!(v["_attempts"], 4);
    }

    #[test]
    fn missing_directory_is_a_config_error_naming_the_path() {
        let err = DeadLetter::new(
            "Hook",
            PathBuf::from("/surely/not/here/Hook.dead.jsonl"),
            Arc::default(),
        )
        .expect_err("no such directory");
        assert!(
            err.to_string()
                .contains("`/surely/not/here/Hook.dead.jsonl`"),
            "{err}"
        );
    }
}

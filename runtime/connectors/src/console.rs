//! The `console` sink: one JSON line per record on standard output or a given writer.
//!
//! `connector Out = console ()` takes no parameters. Lines are flushed on [`Sink::flush`] and
//! [`Sink::close`]; the writer is shared so the CLI can interleave it with its own output.

use std::sync::{Arc, Mutex};

use crate::config::{ConnectorConfig, Params};
use crate::error::{ConfigError, SinkError};
use crate::metrics::Counters;
use crate::{Record, SharedWriter, Sink, SinkContext, SinkMark, SinkMetrics};

/// Prints each record as a JSON line.
pub struct ConsoleSink {
    name: String,
    out: SharedWriter,
    counters: Counters,
    closed: bool,
}

impl ConsoleSink {
    /// Builds the sink from a `console` connector declaration.
    pub fn open(config: &ConnectorConfig, context: &SinkContext) -> Result<Self, ConfigError> {
        Params::new(config).finish()?;
        let out = match &context.console {
            Some(w) => Arc::clone(w),
            None => Arc::new(Mutex::new(std::io::stdout())),
        };
        Ok(ConsoleSink::new(&config.name, out))
    }

    /// A console sink writing to `out`.
    pub fn new(name: &str, out: SharedWriter) -> Self {
        ConsoleSink {
            name: name.to_string(),
            out,
            counters: Counters::default(),
            closed: false,
        }
    }

    fn io_error(&self, op: &'static str, source: std::io::Error) -> SinkError {
        Counters::add(&self.counters.failed, 1);
        Counters::add(&self.counters.dropped, 1);
        let err = SinkError::Io {
            connector: self.name.clone(),
            path: "<console>".into(),
            op,
            source,
        };
        self.counters.set_last_error(err.to_string());
        err
    }
}

impl Sink for ConsoleSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn send(&mut self, record: Record) -> Result<(), SinkError> {
        if self.closed {
            return Err(SinkError::Closed {
                connector: self.name.clone(),
            });
        }
        let result = {
            let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
            out.write_all(record.as_bytes())
                .and_then(|()| out.write_all(b"\n"))
        };
        match result {
            Ok(()) => {
                Counters::add(&self.counters.sent, 1);
                Counters::add(&self.counters.bytes, record.len() as u64 + 1);
                Ok(())
            }
            Err(e) => Err(self.io_error("write to", e)),
        }
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        let result = self.out.lock().unwrap_or_else(|e| e.into_inner()).flush();
        result.map_err(|source| SinkError::Io {
            connector: self.name.clone(),
            path: "<console>".into(),
            op: "flush",
            source,
        })
    }

    /// Flushes the writer; printed lines cannot be taken back (at least once).
    fn barrier(&mut self, _deadline: std::time::Instant) -> Result<Option<SinkMark>, SinkError> {
        self.flush().map(|()| None)
    }

    fn close(&mut self) -> Result<(), SinkError> {
        self.closed = true;
        self.flush()
    }

    fn metrics(&self) -> SinkMetrics {
        self.counters.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_one_json_line_per_record() {
        let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
        let mut sink = ConsoleSink::new("Out", buf.clone());
        for i in 0..2 {
            let r = Record::from_json(format!(r#"{{"event_type":"A","i":{i}}}"#).as_bytes())
                .expect("valid");
            sink.send(r).expect("in-memory write");
        }
        sink.close().expect("flush");
        let text = String::from_utf8(buf.lock().expect("not poisoned").clone()).expect("utf8");
        assert_eq!(
            text,
            "{\"event_type\":\"A\",\"i\":0}\n{\"event_type\":\"A\",\"i\":1}\n"
        );
        assert_eq!(sink.metrics().sent, 2);
        assert!(matches!(
            sink.send(Record::from_map(&Default::default())),
            Err(SinkError::Closed { .. })
        ));
    }

    #[test]
    fn console_takes_no_parameters() {
        let config = ConnectorConfig::new("Out", "console")
            .param("path", crate::ConfigValue::Str("x".into()));
        let err = ConsoleSink::open(&config, &SinkContext::new("."))
            .err()
            .expect("path is not a console parameter");
        assert!(
            err.to_string().contains("unknown parameter `path`"),
            "{err}"
        );
    }
}

//! Output connectors for Varpulis: where `.to(Conn)` sends records.
//!
//! The engine hands each output event to a [`Sink`] as a [`Record`], a single JSON object shaped
//! `{"event_type": T, "timestamp": "<RFC3339>", field...}` (docs/LANGUAGE.md#to-sinks). This crate knows
//! nothing of the compiler or the VM: the CLI turns each `connector` declaration into a
//! [`ConnectorConfig`] and calls [`open_sink`].
//!
//! Sinks:
//! - [`file`](mod@file): JSON lines, appended, buffered, rotated by size.
//! - [`http`]: webhook POST/PUT with batching, retries with backoff and a dead-letter file; the
//!   network work runs on a background thread so [`Sink::send`] never blocks.
//! - [`console`]: JSON lines to stdout or any writer.
//! - `mqtt`, `kafka` and `websocket` (behind cargo features of the same names): broker and
//!   WebSocket clients on threads of their own, with reconnects and dead-letter files.
//!
//! **Invariant:** no record is lost silently. A record that cannot be delivered goes to a
//! dead-letter JSONL file (with `_error` and `_attempts` fields) and is counted in
//! [`SinkMetrics`]; if even that fails, it is counted in [`SinkMetrics::dropped`] and the error
//! names the file.
//!
//! **Checkpoints are barriers.** [`Sink::barrier`] returns only once every record accepted
//! before it is delivered and acknowledged, written and synced, or dead-lettered (and the
//! dead-letter file synced), or fails by its deadline; a host commits its checkpoint only after
//! every sink passed the barrier. The mark a barrier returns lets [`Sink::restore`] take the
//! output back to the checkpoint after a crash (the file sink truncates), so replayed records
//! are written once. Network sinks cannot take anything back: they send each record's
//! [`RecordId`] (stable across replays) so receivers can deduplicate.

mod backoff;
pub mod config;
pub mod console;
mod dead_letter;
pub mod error;
pub mod file;
pub mod http;
#[cfg(feature = "kafka")]
pub mod kafka;
mod metrics;
#[cfg(feature = "mqtt")]
pub mod mqtt;
pub mod redact;
pub mod source;
#[cfg(any(feature = "mqtt", feature = "websocket"))]
pub mod tls;
pub mod trace_context;
#[cfg(feature = "websocket")]
pub mod websocket;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Map, Value};

pub use config::{substitute, ConfigValue, ConnectorConfig, SubstituteError};
pub use error::{ConfigError, DeliveryFailure, RecordError, SinkError};
pub use metrics::SinkMetrics;
pub use source::{
    open_source, PartitionHost, PartitionId, Position, Rebalance, Source, SourceConfig,
    SourceContext, SourceEvent, SourceMessage, SourceMetrics, SourceSender,
};
pub use trace_context::TraceParent;

/// The sink kinds [`open_sink`] can build in this build (features decide `mqtt`, `kafka`,
/// `websocket`).
pub const SINK_KINDS: &[&str] = &[
    "console",
    "file",
    "http",
    #[cfg(feature = "kafka")]
    "kafka",
    #[cfg(feature = "mqtt")]
    "mqtt",
    #[cfg(feature = "websocket")]
    "websocket",
];

/// Connector kinds behind a cargo feature of this crate (and of the `varpulis` binary), with
/// that feature. A program may name one of them in a build without it: [`open_sink`] and
/// [`open_source`] then fail with [`ConfigError::NotBuilt`], which names the rebuild.
pub const FEATURE_KINDS: &[(&str, &str)] = &[
    ("kafka", "kafka"),
    ("mqtt", "mqtt"),
    ("websocket", "websocket"),
];

/// The cargo feature this build lacks to run a connector of `kind`, if `kind` is a known kind
/// that was left out of the build.
pub fn missing_feature(kind: &str) -> Option<&'static str> {
    let (_, feature) = FEATURE_KINDS.iter().find(|(k, _)| *k == kind)?;
    let built = match *feature {
        "kafka" => cfg!(feature = "kafka"),
        "mqtt" => cfg!(feature = "mqtt"),
        "websocket" => cfg!(feature = "websocket"),
        _ => true,
    };
    (!built).then_some(*feature)
}

/// One output record: a single JSON object, kept serialised on one line, plus where a broker
/// sink should route it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    json: Vec<u8>,
    /// The `.to(Conn, topic: ...)` of the site; brokers fall back to the connector's topic.
    topic: Option<String>,
    /// The message key (Kafka partitioning); `None` lets the broker client choose.
    key: Option<Vec<u8>>,
    /// The record's identity across replays, sent as an idempotency key.
    id: Option<RecordId>,
    /// The trace context of the event that caused it, sent on as a `traceparent` header.
    trace_parent: Option<TraceParent>,
}

/// The name of the message header (Kafka) or user property (MQTT 5) that carries a record's
/// [`RecordId`] as its idempotency key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A record's identity: the same record produced again after a crash and a restart from a
/// checkpoint gets the same id, so a receiver can drop the copy. `scope` names the pipeline
/// and the connector, `seq` counts the records the pipeline sent to that connector (kept in
/// the checkpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordId {
    /// `<pipeline id>/<connector>`.
    pub scope: Arc<str>,
    /// 0 for the first record the pipeline sent to the connector, then 1, 2, ...
    pub seq: u64,
}

impl std::fmt::Display for RecordId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.scope, self.seq)
    }
}

/// What a sink reports at a checkpoint barrier, stored in the checkpoint and handed back to
/// [`Sink::restore`] after a restart (the file sink: committed length and rotation state).
pub type SinkMark = Value;

impl Record {
    /// Serialises a JSON object.
    pub fn from_map(map: &Map<String, Value>) -> Record {
        Record {
            json: serde_json::to_vec(map).expect("a JSON map with string keys always serialises"),
            topic: None,
            key: None,
            id: None,
            trace_parent: None,
        }
    }

    /// Takes pre-serialised bytes, checking they hold exactly one JSON object.
    ///
    /// Pretty-printed input is re-serialised onto one line so JSONL output stays valid.
    pub fn from_json(bytes: &[u8]) -> Result<Record, RecordError> {
        let map: Map<String, Value> = serde_json::from_slice(bytes).map_err(|e| RecordError {
            reason: e.to_string(),
        })?;
        if bytes.iter().any(|b| matches!(b, b'\n' | b'\r')) {
            Ok(Record::from_map(&map))
        } else {
            Ok(Record {
                json: bytes.trim_ascii().to_vec(),
                topic: None,
                key: None,
                id: None,
                trace_parent: None,
            })
        }
    }

    /// Routes the record to `topic` (overriding the connector's) with an optional message key.
    pub fn routed(mut self, topic: Option<String>, key: Option<Vec<u8>>) -> Record {
        self.topic = topic;
        self.key = key;
        self
    }

    /// Gives the record its identity across replays (sent as an idempotency key).
    pub fn with_id(mut self, id: RecordId) -> Record {
        self.id = Some(id);
        self
    }

    /// Carries the trace context of the event that caused the record: sinks that can send
    /// headers send it on as `traceparent` (the http webhook, Kafka, MQTT 5).
    pub fn with_trace_parent(mut self, trace_parent: Option<TraceParent>) -> Record {
        self.trace_parent = trace_parent;
        self
    }

    /// The trace context to send on, if the record has one.
    pub fn trace_parent(&self) -> Option<&TraceParent> {
        self.trace_parent.as_ref()
    }

    /// The record with a string field `name` holding `value` added first to its JSON object
    /// (for receivers that only see the payload: the idempotency key of sinks without
    /// headers). A field of that name already in the record is left as it is and the new one
    /// comes first: JSON readers that keep the last duplicate see the record's own.
    pub fn with_field(mut self, name: &str, value: &str) -> Record {
        let Some(rest) = self.json.strip_prefix(b"{") else {
            return self;
        };
        let empty = rest.trim_ascii_start().starts_with(b"}");
        let mut json = Vec::with_capacity(self.json.len() + name.len() + value.len() + 8);
        json.push(b'{');
        // Writing JSON strings into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut json, name);
        json.push(b':');
        let _ = serde_json::to_writer(&mut json, value);
        if empty {
            json.extend_from_slice(rest.trim_ascii_start());
        } else {
            json.push(b',');
            json.extend_from_slice(rest);
        }
        self.json = json;
        self
    }

    /// The record's identity, if the host gave it one.
    pub fn id(&self) -> Option<&RecordId> {
        self.id.as_ref()
    }

    /// The topic the `.to(...)` site asked for, if any.
    pub fn topic(&self) -> Option<&str> {
        self.topic.as_deref()
    }

    /// The message key, if any.
    pub fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    /// The serialised JSON object (no trailing newline).
    pub fn as_bytes(&self) -> &[u8] {
        &self.json
    }

    /// Size of the serialised object in bytes.
    pub fn len(&self) -> usize {
        self.json.len()
    }

    /// Whether the serialised form is empty (never true for a valid record).
    pub fn is_empty(&self) -> bool {
        self.json.is_empty()
    }
}

impl From<Map<String, Value>> for Record {
    fn from(map: Map<String, Value>) -> Record {
        Record::from_map(&map)
    }
}

/// A destination for output records.
///
/// Implementations never panic on I/O or network failures and never block the caller for an
/// unbounded time: [`Sink::send`] returns promptly, and [`Sink::close`] waits at most a configured
/// bound.
pub trait Sink: Send {
    /// The connector name, as declared in VPL.
    fn name(&self) -> &str;

    /// Accepts one record for delivery.
    ///
    /// `Ok` means the record was written or queued. An `Err` says what happened to it (written to
    /// the dead-letter file, or lost and counted) and whether retrying can help.
    fn send(&mut self, record: Record) -> Result<(), SinkError>;

    /// Pushes buffered records out (before exit; checkpoints use [`Sink::barrier`]).
    fn flush(&mut self) -> Result<(), SinkError>;

    /// The checkpoint barrier: returns once every record accepted by [`Sink::send`] before this
    /// call is durably delivered (acknowledged by the receiver), durably staged (written to
    /// the file and synced), or dead-lettered (and the dead-letter file synced). A sink that
    /// cannot confirm it by `deadline` returns an error ([`SinkError::Timeout`] or the I/O
    /// failure); the host must then not commit its checkpoint.
    ///
    /// Returns the mark [`Sink::restore`] needs to take the output back to this point after a
    /// crash, or `None` when the sink cannot take anything back.
    fn barrier(&mut self, deadline: Instant) -> Result<Option<SinkMark>, SinkError>;

    /// Takes the output back to `mark`, which an earlier run's [`Sink::barrier`] returned and
    /// its checkpoint kept; called once after a restart from that checkpoint, before any
    /// `send`, so replayed records are written once. The default does nothing (network sinks
    /// cannot take back what they delivered; receivers deduplicate by [`RecordId`]).
    fn restore(&mut self, mark: &SinkMark) -> Result<(), SinkError> {
        let _ = mark;
        Ok(())
    }

    /// The checkpoint whose barrier this sink passed last is now durable. A sink that staged
    /// its records at the barrier instead of publishing them (a transactional Kafka sink)
    /// publishes them now. An error means records a durable checkpoint counts as delivered
    /// did not become visible: the host must stop, and a restart goes back to the checkpoint
    /// before it ([`SinkError::NotCommitted`] from [`Sink::restore`]). The default does nothing.
    fn committed(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Flushes, then waits a bounded time for in-flight deliveries; what is still undelivered
    /// goes to the dead-letter file. Further `send` calls fail with [`SinkError::Closed`].
    fn close(&mut self) -> Result<(), SinkError>;

    /// A snapshot of the sink's counters.
    fn metrics(&self) -> SinkMetrics;
}

/// A writer shared between the console sink and its owner (stdout, or a buffer in tests).
pub type SharedWriter = Arc<Mutex<dyn Write + Send>>;

/// What sinks need from the host program.
#[derive(Clone)]
pub struct SinkContext {
    /// Directory that relative `path` and `dead_letter` parameters are resolved against
    /// (normally the directory of the `.vpl` file or the working directory).
    pub base_dir: PathBuf,
    /// Where the `console` sink writes; `None` means standard output.
    pub console: Option<SharedWriter>,
}

impl SinkContext {
    /// A context resolving relative paths against `base_dir`, with the console on stdout.
    pub fn new(base_dir: impl Into<PathBuf>) -> Self {
        SinkContext {
            base_dir: base_dir.into(),
            console: None,
        }
    }
}

impl std::fmt::Debug for SinkContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkContext")
            .field("base_dir", &self.base_dir)
            .field("console", &self.console.as_ref().map(|_| "<writer>"))
            .finish()
    }
}

/// Builds the sink for one connector declaration, validating its parameters.
///
/// Errors name the connector and the parameter, and suggest the closest known parameter or kind
/// for typos.
pub fn open_sink(
    config: &ConnectorConfig,
    context: &SinkContext,
) -> Result<Box<dyn Sink>, ConfigError> {
    match config.kind.as_str() {
        "file" => Ok(Box::new(file::FileSink::open(config, context)?)),
        "http" => Ok(Box::new(http::HttpSink::open(config, context)?)),
        "console" => Ok(Box::new(console::ConsoleSink::open(config, context)?)),
        #[cfg(feature = "mqtt")]
        "mqtt" => mqtt::open_sink(config, context),
        #[cfg(feature = "kafka")]
        "kafka" => kafka::open_sink(config, context),
        #[cfg(feature = "websocket")]
        "websocket" => websocket::open_sink(config, context),
        other if missing_feature(other).is_some() => Err(ConfigError::NotBuilt {
            connector: config.name.clone(),
            role: "sink",
            kind: other.to_string(),
            feature: missing_feature(other).expect("checked by the guard"),
        }),
        other => Err(ConfigError::UnsupportedKind {
            connector: config.name.clone(),
            role: "sink",
            kind: other.to_string(),
            supported: SINK_KINDS.join(", "),
            suggestion: config::closest(other, SINK_KINDS.iter().copied()),
        }),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_field_goes_first_into_the_object() {
        let r = Record::from_json(br#"{"a":1}"#).expect("record");
        assert_eq!(
            r.with_field("k", "x\"y").as_bytes(),
            br#"{"k":"x\"y","a":1}"#
        );
        let empty = Record::from_json(b"{ }").expect("record");
        assert_eq!(empty.with_field("k", "v").as_bytes(), br#"{"k":"v"}"#);
    }

    use super::*;

    #[test]
    fn pretty_json_is_reserialised_onto_one_line() {
        let r = Record::from_json(b"{\n  \"event_type\": \"A\",\n  \"x\": 1\n}\n")
            .expect("valid object");
        assert_eq!(r.as_bytes(), br#"{"event_type":"A","x":1}"#);
    }

    #[test]
    fn non_object_json_is_rejected() {
        let err = Record::from_json(b"[1,2]").expect_err("array is not a record");
        assert!(err
            .to_string()
            .starts_with("a record must be one JSON object"));
        assert!(Record::from_json(b"{\"a\":").is_err());
    }

    #[test]
    fn compact_json_is_kept_as_given() {
        let r = Record::from_json(b" {\"b\":1,\"a\":2} ").expect("valid");
        assert_eq!(r.as_bytes(), br#"{"b":1,"a":2}"#);
    }

    #[test]
    fn unknown_kind_lists_supported_kinds_and_suggests() {
        let err = open_sink(&ConnectorConfig::new("Out", "fiel"), &SinkContext::new("."))
            .err()
            .expect("fiel is not a kind");
        let text = err.to_string();
        // The broker kinds join the list when their features are on.
        assert!(
            text.starts_with(
                "connector `Out`: kind `fiel` cannot be used as a sink (supported: console, file, http"
            ),
            "{text}"
        );
        assert!(text.ends_with("); did you mean `file`?"), "{text}");
    }

    #[test]
    fn every_feature_kind_is_built_or_named_with_its_rebuild() {
        for (kind, feature) in FEATURE_KINDS {
            let built = SINK_KINDS.contains(kind);
            assert_eq!(missing_feature(kind).is_none(), built, "{kind}");
            if built {
                continue;
            }
            let err = open_sink(&ConnectorConfig::new("Out", *kind), &SinkContext::new("."))
                .err()
                .expect("a kind left out of the build cannot open");
            let text = err.to_string();
            assert!(
                text.contains(&format!("cargo build --release --features {feature}")),
                "{text}"
            );
        }
        assert_eq!(missing_feature("file"), None);
        assert_eq!(missing_feature("nats"), None);
    }
}

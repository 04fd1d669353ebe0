//! OpenTelemetry traces of a live `varpulis run` (`--otlp-endpoint URL` or
//! `OTEL_EXPORTER_OTLP_ENDPOINT`), exported over OTLP/HTTP with protobuf
//! encoding to `URL/v1/traces`.
//!
//! Traces stay small: the run's root span `varpulis.run` holds only the run's
//! own work (`varpulis.source.start`); each `varpulis.batch` and each
//! `varpulis.checkpoint` is the root of a trace of its own, with a span link
//! to the run. An event that arrived with a W3C `traceparent` (docs/RUNTIME.md,
//! "Traces") gets a `varpulis.event` span in the caller's trace, child of the
//! caller's span.
//!
//! The live loop only records finished spans into a bounded queue; it never
//! waits for the network. A background thread batches them (every second or
//! `BATCH` spans) and POSTs an `ExportTraceServiceRequest` (the
//! `opentelemetry-proto` messages, encoded by prost) with the
//! `OTEL_EXPORTER_OTLP_HEADERS`. A batch the collector does not take after a
//! bounded retry is dropped and counted ([`Tracer::dropped`],
//! `varpulis_trace_spans_dropped_total`); the first failure is kept for the
//! run to report once ([`Tracer::take_warning`]: the run holds the stderr
//! lock, so the exporter thread must not print). A full queue drops spans the
//! same way.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as otlp;
use prost::Message;
use varpulis_connectors::TraceParent;

/// Spans waiting for the exporter at most; past this, spans are dropped.
const QUEUE: usize = 4096;
/// Spans per export request at most.
const BATCH: usize = 512;
/// Time a span waits for its batch at most.
const BATCH_DELAY: Duration = Duration::from_secs(1);
/// Time one export request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts per batch (one retry), and the pause between them.
const ATTEMPTS: u32 = 2;
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Wait for the last export when the run stops.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// An attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `AnyValue.string_value`.
    Str(String),
    /// `AnyValue.int_value`.
    Int(i64),
    /// `AnyValue.double_value`.
    Double(f64),
    /// `AnyValue.bool_value`.
    Bool(bool),
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Value {
        Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<usize> for Value {
    fn from(n: usize) -> Value {
        Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Value {
        Value::Double(x)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

/// A span's status (`Status.code`: unset 0, ok 1, error 2).
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Nothing said.
    Unset,
    /// Succeeded.
    Ok,
    /// Failed, with the message.
    Error(String),
}

/// One span, open until [`Tracer::end`] records it.
#[derive(Clone, Debug)]
pub struct Span {
    /// The span's name (part of the interface: docs/RUNTIME.md, "Traces").
    pub name: &'static str,
    /// The trace it belongs to.
    pub trace_id: [u8; 16],
    /// Its id.
    pub id: [u8; 8],
    /// The parent's id, for a child span (the parent may be in another
    /// process: a remote `traceparent`).
    pub parent: Option<[u8; 8]>,
    /// Spans of other traces this one relates to (a batch links to its run),
    /// as (trace id, span id).
    pub links: Vec<([u8; 16], [u8; 8])>,
    /// Start, in Unix nanoseconds.
    pub start: u64,
    /// End, in Unix nanoseconds (set by [`Tracer::end`]).
    pub end: u64,
    /// Attributes, in order.
    pub attributes: Vec<(&'static str, Value)>,
    /// Status.
    pub status: Status,
}

impl Span {
    /// Adds an attribute.
    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        self.attributes.push((key, value.into()));
    }

    /// Marks the span failed with `message`.
    pub fn error(&mut self, message: impl Into<String>) {
        self.status = Status::Error(message.into());
    }

    /// Links the span to `other` (of another trace).
    pub fn link(&mut self, other: &Span) {
        self.links.push((other.trace_id, other.id));
    }

    /// The trace id in hex, as trace viewers show it.
    pub fn trace_id_hex(&self) -> String {
        self.trace_id.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Where and how spans are exported.
#[derive(Clone, Debug, Default)]
pub struct ExportConfig {
    /// `http://host:4318`; spans go to `endpoint/v1/traces`.
    pub endpoint: String,
    /// The resource's `service.name`.
    pub service_name: String,
    /// More resource attributes (`OTEL_RESOURCE_ATTRIBUTES`).
    pub resource: Vec<(String, String)>,
    /// Headers of every export request (`OTEL_EXPORTER_OTLP_HEADERS`).
    pub headers: Vec<(String, String)>,
}

/// Records spans and hands them to the exporter thread; a disabled tracer
/// (no endpoint) records nothing.
pub struct Tracer {
    exporter: Option<Exporter>,
    ids: IdSource,
    dropped: Arc<AtomicU64>,
    /// The first export failure, until taken.
    warning: Arc<Mutex<Option<String>>>,
}

struct Exporter {
    url: String,
    tx: Option<Sender<Span>>,
    done: Receiver<()>,
    thread: Option<JoinHandle<()>>,
    exported: Arc<AtomicU64>,
}

impl Tracer {
    /// A tracer that records nothing.
    pub fn disabled() -> Tracer {
        Tracer {
            exporter: None,
            ids: IdSource::new(),
            dropped: Arc::new(AtomicU64::new(0)),
            warning: Arc::default(),
        }
    }

    /// Starts exporting as `config` says.
    pub fn start(config: &ExportConfig) -> anyhow::Result<Tracer> {
        let endpoint = &config.endpoint;
        let base = endpoint.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            anyhow::bail!("the OTLP endpoint `{endpoint}` is not an http:// or https:// URL");
        }
        let url = format!("{base}/v1/traces");
        let dropped = Arc::new(AtomicU64::new(0));
        let exported = Arc::new(AtomicU64::new(0));
        let warning: Arc<Mutex<Option<String>>> = Arc::default();
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let mut resource = vec![key_value(
            "service.name",
            &Value::from(&*config.service_name),
        )];
        resource.extend(
            config
                .resource
                .iter()
                .filter(|(k, _)| k != "service.name")
                .map(|(k, v)| key_value(k, &Value::from(&**v))),
        );
        let worker = Worker {
            url: url.clone(),
            resource,
            headers: config.headers.clone(),
            agent: ureq::Agent::config_builder()
                .timeout_global(Some(REQUEST_TIMEOUT))
                .user_agent(format!("varpulis/{}", env!("CARGO_PKG_VERSION")))
                .build()
                .into(),
            dropped: dropped.clone(),
            exported: exported.clone(),
            warning: Some(warning.clone()),
        };
        let thread = std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || {
                worker.run(&rx);
                let _ = done_tx.send(());
            })?;
        Ok(Tracer {
            exporter: Some(Exporter {
                url,
                tx: Some(tx),
                done,
                thread: Some(thread),
                exported,
            }),
            ids: IdSource::new(),
            dropped,
            warning,
        })
    }

    /// Whether spans are exported.
    pub fn enabled(&self) -> bool {
        self.exporter.is_some()
    }

    /// Where spans go, when enabled.
    pub fn url(&self) -> Option<&str> {
        self.exporter.as_ref().map(|e| e.url.as_str())
    }

    /// Opens a span now: a child of `parent` in its trace, or with no parent
    /// the root of a new trace.
    pub fn span(&self, name: &'static str, parent: Option<&Span>) -> Span {
        match parent {
            Some(p) => self.open(name, p.trace_id, Some(p.id)),
            None => self.open(name, self.ids.trace_id(), None),
        }
    }

    /// Opens a span now as the child of a span of another process (a
    /// `traceparent` that came with an event), in that trace.
    pub fn remote_child(&self, name: &'static str, parent: &TraceParent) -> Span {
        self.open(name, parent.trace_id, Some(parent.span_id))
    }

    fn open(&self, name: &'static str, trace_id: [u8; 16], parent: Option<[u8; 8]>) -> Span {
        Span {
            name,
            trace_id,
            id: self.ids.span_id(),
            parent,
            links: Vec::new(),
            start: unix_nanos(),
            end: 0,
            attributes: Vec::new(),
            status: Status::Unset,
        }
    }

    /// Ends `span` now and queues it for export (never blocks: a full queue
    /// drops it).
    pub fn end(&self, mut span: Span) {
        let Some(tx) = self.exporter.as_ref().and_then(|e| e.tx.as_ref()) else {
            return;
        };
        span.end = unix_nanos().max(span.start);
        match tx.try_send(span) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The first export failure (`warning: OTLP export to URL failed: ...`),
    /// once: the caller prints it.
    pub fn take_warning(&self) -> Option<String> {
        self.warning
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Spans dropped so far (full queue, failed exports).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Exports what is queued and stops the exporter, waiting at most 2 s.
    /// Returns `(exported, dropped)`, or `None` when disabled.
    pub fn shutdown(&mut self) -> Option<(u64, u64)> {
        let e = self.exporter.as_mut()?;
        // Closing the queue tells the thread to export the rest and stop.
        e.tx = None;
        if e.done.recv_timeout(FLUSH_WAIT).is_ok() {
            if let Some(t) = e.thread.take() {
                let _ = t.join();
            }
        }
        // Otherwise the thread is left to finish on its own: the run does
        // not wait longer for a slow collector.
        Some((e.exported.load(Ordering::Relaxed), self.dropped()))
    }
}

/// The exporter thread.
struct Worker {
    url: String,
    resource: Vec<KeyValue>,
    headers: Vec<(String, String)>,
    agent: ureq::Agent,
    dropped: Arc<AtomicU64>,
    exported: Arc<AtomicU64>,
    /// Where the first failure goes; `None` once it went.
    warning: Option<Arc<Mutex<Option<String>>>>,
}

impl Worker {
    fn run(mut self, rx: &Receiver<Span>) {
        let mut batch: Vec<Span> = Vec::new();
        let mut first = Instant::now();
        let mut open = true;
        while open {
            let wait = if batch.is_empty() {
                BATCH_DELAY
            } else {
                BATCH_DELAY.saturating_sub(first.elapsed())
            };
            match rx.recv_timeout(wait) {
                Ok(span) => {
                    if batch.is_empty() {
                        first = Instant::now();
                    }
                    batch.push(span);
                    if batch.len() < BATCH && first.elapsed() < BATCH_DELAY {
                        continue;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
            if !batch.is_empty() {
                self.export(&batch);
                batch.clear();
            }
        }
    }

    /// Sends one batch, with one retry; a batch that fails is dropped.
    fn export(&mut self, spans: &[Span]) {
        let body = encode_request(&self.resource, spans);
        let mut last_error = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(RETRY_PAUSE);
            }
            let mut request = self
                .agent
                .post(&self.url)
                .header("Content-Type", "application/x-protobuf");
            for (name, value) in &self.headers {
                request = request.header(name, value);
            }
            match request.send(&body[..]) {
                Ok(_) => {
                    self.exported
                        .fetch_add(spans.len() as u64, Ordering::Relaxed);
                    return;
                }
                Err(e) => last_error = e.to_string(),
            }
        }
        self.dropped
            .fetch_add(spans.len() as u64, Ordering::Relaxed);
        if let Some(slot) = self.warning.take() {
            // The error may quote a header (an authorization value): redacted.
            let message = varpulis_connectors::redact::redact(&format!(
                "warning: OTLP export to {} failed: {last_error}; spans are dropped and counted \
                 (varpulis_trace_spans_dropped_total)",
                self.url
            ));
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
        }
    }
}

/// Span and trace ids: std's randomly keyed hasher over a counter and the
/// clock (unique within a process, unpredictable across processes), which
/// needs no random-number crate.
struct IdSource {
    keys: RandomState,
    counter: AtomicU64,
}

impl IdSource {
    fn new() -> IdSource {
        IdSource {
            keys: RandomState::new(),
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> u64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let id = self.keys.hash_one((n, unix_nanos(), std::process::id()));
        // An all-zero id is invalid in OTLP.
        id.max(1)
    }

    fn span_id(&self) -> [u8; 8] {
        self.next().to_be_bytes()
    }

    fn trace_id(&self) -> [u8; 16] {
        let mut id = [0; 16];
        id[..8].copy_from_slice(&self.next().to_be_bytes());
        id[8..].copy_from_slice(&self.next().to_be_bytes());
        id
    }
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Encodes `ExportTraceServiceRequest { resource_spans: [ResourceSpans {
/// resource: Resource { attributes }, scope_spans: [ScopeSpans { scope:
/// InstrumentationScope { name: "varpulis", version }, spans }] }] }`.
pub fn encode_request(resource: &[KeyValue], spans: &[Span]) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![otlp::ResourceSpans {
            resource: Some(Resource {
                attributes: resource.to_vec(),
                ..Resource::default()
            }),
            scope_spans: vec![otlp::ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "varpulis".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..InstrumentationScope::default()
                }),
                spans: spans.iter().map(span_message).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec()
}

/// `opentelemetry.proto.trace.v1.Span`.
fn span_message(span: &Span) -> otlp::Span {
    let status = match &span.status {
        Status::Unset => None,
        Status::Ok => Some(otlp::Status {
            message: String::new(),
            code: otlp::status::StatusCode::Ok as i32,
        }),
        Status::Error(message) => Some(otlp::Status {
            message: message.clone(),
            code: otlp::status::StatusCode::Error as i32,
        }),
    };
    otlp::Span {
        trace_id: span.trace_id.to_vec(),
        span_id: span.id.to_vec(),
        parent_span_id: span.parent.map(|p| p.to_vec()).unwrap_or_default(),
        name: span.name.to_string(),
        // Every span is work inside the process.
        kind: otlp::span::SpanKind::Internal as i32,
        start_time_unix_nano: span.start,
        end_time_unix_nano: span.end,
        attributes: span
            .attributes
            .iter()
            .map(|(k, v)| key_value(k, v))
            .collect(),
        links: span
            .links
            .iter()
            .map(|(trace_id, span_id)| otlp::span::Link {
                trace_id: trace_id.to_vec(),
                span_id: span_id.to_vec(),
                ..otlp::span::Link::default()
            })
            .collect(),
        status,
        ..otlp::Span::default()
    }
}

/// `KeyValue { key, value: AnyValue }`.
fn key_value(key: &str, value: &Value) -> KeyValue {
    let value = match value {
        Value::Str(s) => any_value::Value::StringValue(s.clone()),
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::Int(n) => any_value::Value::IntValue(*n),
        Value::Double(x) => any_value::Value::DoubleValue(*x),
    };
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

/// Parses `OTEL_EXPORTER_OTLP_HEADERS` (`key=value,key2=value2`, values
/// percent-decoded) and registers every value as a secret, so an
/// authorization header is never printed. An entry without `=` or with an
/// empty key is an error that names the entry's position, not its value.
pub fn parse_headers(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let pairs = parse_pairs("OTEL_EXPORTER_OTLP_HEADERS", text)?;
    for (_, value) in &pairs {
        varpulis_connectors::redact::register_secret(value);
    }
    Ok(pairs)
}

/// Parses `OTEL_RESOURCE_ATTRIBUTES` (`key=value,...`, values
/// percent-decoded).
pub fn parse_resource_attributes(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    parse_pairs("OTEL_RESOURCE_ATTRIBUTES", text)
}

/// `key=value` entries separated by commas; blank entries are skipped.
fn parse_pairs(variable: &str, text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (i, entry) in text.split(',').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = entry.split_once('=') else {
            anyhow::bail!("{variable}: entry {} has no `=` (want key=value)", i + 1);
        };
        let key = key.trim();
        if key.is_empty() {
            anyhow::bail!("{variable}: entry {} has an empty key", i + 1);
        }
        let Some(value) = percent_decode(value.trim()) else {
            anyhow::bail!(
                "{variable}: the value of `{key}` has a bad percent escape or is not UTF-8"
            );
        };
        out.push((key.to_string(), value));
    }
    Ok(out)
}

/// `%XX` escapes decoded; `None` on a bad escape or a result that is not
/// UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest::decode(bytes).expect("a valid request")
    }

    #[test]
    fn a_request_decodes_with_the_opentelemetry_types() {
        let span = Span {
            name: "varpulis.checkpoint",
            trace_id: [7; 16],
            id: [1, 2, 3, 4, 5, 6, 7, 8],
            parent: Some([9; 8]),
            links: vec![([3; 16], [4; 8])],
            start: 1_700_000_000_000_000_000,
            end: 1_700_000_000_500_000_000,
            attributes: vec![
                ("varpulis.state_dir", Value::from("/tmp/s")),
                ("varpulis.events", Value::Int(-2)),
                ("ratio", Value::Double(0.5)),
                ("ok", Value::Bool(true)),
            ],
            status: Status::Error("disk full".into()),
        };
        let resource = [key_value("service.name", &Value::from("svc"))];
        let request = decode(&encode_request(&resource, &[span]));

        let [rs] = &request.resource_spans[..] else {
            panic!("one ResourceSpans: {request:?}")
        };
        let attrs = &rs.resource.as_ref().expect("resource").attributes;
        assert_eq!(attrs[0].key, "service.name");
        assert_eq!(
            attrs[0].value.as_ref().and_then(|v| v.value.clone()),
            Some(any_value::Value::StringValue("svc".into()))
        );
        let [ss] = &rs.scope_spans[..] else {
            panic!("one ScopeSpans")
        };
        assert_eq!(ss.scope.as_ref().expect("scope").name, "varpulis");
        let [span] = &ss.spans[..] else {
            panic!("one span")
        };
        assert_eq!(span.trace_id, [7u8; 16]);
        assert_eq!(span.span_id, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(span.parent_span_id, [9u8; 8]);
        assert_eq!(span.name, "varpulis.checkpoint");
        assert_eq!(span.kind, otlp::span::SpanKind::Internal as i32);
        assert_eq!(span.start_time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_700_000_000_500_000_000);
        assert_eq!(span.links.len(), 1);
        assert_eq!(span.links[0].trace_id, [3u8; 16]);
        assert_eq!(span.links[0].span_id, [4u8; 8]);
        let values: Vec<_> = span
            .attributes
            .iter()
            .map(|kv| {
                (
                    kv.key.as_str(),
                    kv.value.as_ref().and_then(|v| v.value.clone()),
                )
            })
            .collect();
        assert_eq!(
            values,
            [
                (
                    "varpulis.state_dir",
                    Some(any_value::Value::StringValue("/tmp/s".into()))
                ),
                ("varpulis.events", Some(any_value::Value::IntValue(-2))),
                ("ratio", Some(any_value::Value::DoubleValue(0.5))),
                ("ok", Some(any_value::Value::BoolValue(true))),
            ]
        );
        let status = span.status.as_ref().expect("status");
        assert_eq!(status.message, "disk full");
        assert_eq!(status.code, otlp::status::StatusCode::Error as i32);
    }

    #[test]
    fn a_root_span_starts_a_trace_and_a_child_stays_in_it() {
        let tracer = Tracer::disabled();
        let root = tracer.span("varpulis.run", None);
        let child = tracer.span("varpulis.source.start", Some(&root));
        assert_eq!(child.parent, Some(root.id));
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.id, root.id);
        let mut batch = tracer.span("varpulis.batch", None);
        batch.link(&root);
        assert_ne!(
            batch.trace_id, root.trace_id,
            "a batch is a trace of its own"
        );
        assert_eq!(batch.links, [(root.trace_id, root.id)]);
        let request = decode(&encode_request(&[], std::slice::from_ref(&root)));
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert!(span.parent_span_id.is_empty());
        assert!(span.status.is_none(), "an unset status is left out");
        assert_eq!(root.trace_id_hex().len(), 32);

        let remote = TraceParent {
            trace_id: [5; 16],
            span_id: [6; 8],
            flags: 1,
        };
        let event = tracer.remote_child("varpulis.event", &remote);
        assert_eq!(event.trace_id, [5; 16]);
        assert_eq!(event.parent, Some([6; 8]));
    }

    #[test]
    fn headers_and_resource_attributes_parse_and_percent_decode() {
        let headers = parse_headers("Authorization=Bearer%20s3cr3t-token, x-tenant = a%2Cb ,")
            .expect("valid");
        assert_eq!(
            headers,
            [
                (
                    "Authorization".to_string(),
                    "Bearer s3cr3t-token".to_string()
                ),
                ("x-tenant".to_string(), "a,b".to_string()),
            ]
        );
        assert_eq!(
            varpulis_connectors::redact::redact("sent Bearer s3cr3t-token"),
            "sent ***",
            "the values are secrets"
        );
        let attrs = parse_resource_attributes("deployment.environment=prod,team=cep%2Fcore")
            .expect("valid");
        assert_eq!(attrs[1], ("team".to_string(), "cep/core".to_string()));
        let err = parse_headers("Authorization").expect_err("no =");
        assert!(err.to_string().contains("entry 1 has no `=`"), "{err}");
        let err = parse_headers("a=ok,b=bad%zzsecretvalue").expect_err("bad escape");
        assert!(!err.to_string().contains("secretvalue"), "{err}");
        assert!(parse_resource_attributes("=x").is_err());
    }

    #[test]
    fn an_unreachable_collector_drops_and_counts_spans_without_blocking() {
        let config = ExportConfig {
            endpoint: "http://127.0.0.1:1/".into(),
            service_name: "test".into(),
            ..ExportConfig::default()
        };
        let mut tracer = Tracer::start(&config).expect("start");
        assert_eq!(tracer.url(), Some("http://127.0.0.1:1/v1/traces"));
        let started = Instant::now();
        for _ in 0..3 {
            let span = tracer.span("varpulis.batch", None);
            tracer.end(span);
        }
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "end never waits"
        );
        assert_eq!(tracer.shutdown(), Some((0, 3)));
        let warning = tracer.take_warning().expect("the failure is kept");
        assert!(
            warning.starts_with("warning: OTLP export to http://127.0.0.1:1/v1/traces failed:"),
            "{warning}"
        );
        assert_eq!(tracer.take_warning(), None, "reported once");
        let no_scheme = ExportConfig {
            endpoint: "127.0.0.1:4318".into(),
            ..ExportConfig::default()
        };
        assert!(Tracer::start(&no_scheme).is_err(), "needs a scheme");
    }
}

//! OpenTelemetry traces of a live `varpulis run` (`--otlp-endpoint URL` or
//! `OTEL_EXPORTER_OTLP_ENDPOINT`), exported over OTLP/HTTP with protobuf
//! encoding to `URL/v1/traces`.
//!
//! The live loop only records finished spans into a bounded queue; it never
//! waits for the network. A background thread batches them (every second or
//! `BATCH` spans) and POSTs an `ExportTraceServiceRequest`. A batch the
//! collector does not take after a bounded retry is dropped and counted
//! ([`Tracer::dropped`], `varpulis_trace_spans_dropped_total`); the first
//! failure is kept for the run to report once ([`Tracer::take_warning`]: the
//! run holds the stderr lock, so the exporter thread must not print). A full
//! queue drops spans the same way.
//!
//! The few protobuf messages needed are encoded by hand (field numbers from
//! opentelemetry-proto `collector/trace/v1`, `trace/v1`, `common/v1`,
//! `resource/v1`), which keeps the build free of a protobuf toolchain.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

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
    /// The span's name (part of the interface: docs/RUNTIME.md §6).
    pub name: &'static str,
    /// Its id.
    pub id: [u8; 8],
    /// The parent's id, for a child span.
    pub parent: Option<[u8; 8]>,
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
}

/// Records spans of one trace and hands them to the exporter thread; a
/// disabled tracer (no endpoint) records nothing.
pub struct Tracer {
    exporter: Option<Exporter>,
    /// The run's trace (every span of a run shares it).
    trace_id: [u8; 16],
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
        let ids = IdSource::new();
        Tracer {
            exporter: None,
            trace_id: ids.trace_id(),
            ids,
            dropped: Arc::new(AtomicU64::new(0)),
            warning: Arc::default(),
        }
    }

    /// Starts exporting to `endpoint` (`http://host:4318`; spans go to
    /// `endpoint/v1/traces`) as service `service`.
    pub fn start(endpoint: &str, service: &str) -> anyhow::Result<Tracer> {
        let base = endpoint.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            anyhow::bail!("the OTLP endpoint `{endpoint}` is not an http:// or https:// URL");
        }
        let url = format!("{base}/v1/traces");
        let ids = IdSource::new();
        let trace_id = ids.trace_id();
        let dropped = Arc::new(AtomicU64::new(0));
        let exported = Arc::new(AtomicU64::new(0));
        let warning: Arc<Mutex<Option<String>>> = Arc::default();
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let worker = Worker {
            url: url.clone(),
            trace_id,
            resource: vec![("service.name", Value::from(service))],
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
            trace_id,
            ids,
            dropped,
            warning,
        })
    }

    /// The run's trace id in hex, as trace viewers show it.
    pub fn trace_id_hex(&self) -> String {
        self.trace_id.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Where spans go, when enabled.
    pub fn url(&self) -> Option<&str> {
        self.exporter.as_ref().map(|e| e.url.as_str())
    }

    /// Opens a span now; `parent` makes it a child.
    pub fn span(&self, name: &'static str, parent: Option<&Span>) -> Span {
        Span {
            name,
            id: self.ids.span_id(),
            parent: parent.map(|p| p.id),
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
    trace_id: [u8; 16],
    resource: Vec<(&'static str, Value)>,
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
        let body = encode_request(&self.trace_id, &self.resource, spans);
        let mut last_error = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(RETRY_PAUSE);
            }
            match self
                .agent
                .post(&self.url)
                .header("Content-Type", "application/x-protobuf")
                .send(&body[..])
            {
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
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!(
                "warning: OTLP export to {} failed: {last_error}; spans are dropped and counted \
                 (varpulis_trace_spans_dropped_total)",
                self.url
            ));
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

// Protobuf wire types.
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;

/// `SpanKind.SPAN_KIND_INTERNAL`: every span is work inside the process.
const KIND_INTERNAL: u64 = 1;

/// Encodes `ExportTraceServiceRequest { resource_spans: [ResourceSpans {
/// resource: Resource { attributes }, scope_spans: [ScopeSpans { scope:
/// InstrumentationScope { name: "varpulis", version }, spans }] }] }`.
pub fn encode_request(
    trace_id: &[u8; 16],
    resource: &[(&'static str, Value)],
    spans: &[Span],
) -> Vec<u8> {
    let mut res = Vec::new();
    for kv in resource {
        message(&mut res, 1, &key_value(kv));
    }
    let mut scope = Vec::new();
    bytes(&mut scope, 1, b"varpulis");
    bytes(&mut scope, 2, env!("CARGO_PKG_VERSION").as_bytes());
    let mut scope_spans = Vec::new();
    message(&mut scope_spans, 1, &scope);
    for span in spans {
        message(&mut scope_spans, 2, &encode_span(trace_id, span));
    }
    let mut resource_spans = Vec::new();
    message(&mut resource_spans, 1, &res);
    message(&mut resource_spans, 2, &scope_spans);
    let mut request = Vec::new();
    message(&mut request, 1, &resource_spans);
    request
}

/// `opentelemetry.proto.trace.v1.Span`.
fn encode_span(trace_id: &[u8; 16], span: &Span) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    bytes(&mut out, 1, trace_id);
    bytes(&mut out, 2, &span.id);
    if let Some(parent) = &span.parent {
        bytes(&mut out, 4, parent);
    }
    bytes(&mut out, 5, span.name.as_bytes());
    tag(&mut out, 6, VARINT);
    varint(&mut out, KIND_INTERNAL);
    tag(&mut out, 7, FIXED64);
    out.extend_from_slice(&span.start.to_le_bytes());
    tag(&mut out, 8, FIXED64);
    out.extend_from_slice(&span.end.to_le_bytes());
    for kv in &span.attributes {
        message(&mut out, 9, &key_value(kv));
    }
    let mut status = Vec::new();
    match &span.status {
        Status::Unset => {}
        Status::Ok => {
            tag(&mut status, 3, VARINT);
            varint(&mut status, 1);
        }
        Status::Error(msg) => {
            bytes(&mut status, 2, msg.as_bytes());
            tag(&mut status, 3, VARINT);
            varint(&mut status, 2);
        }
    }
    if !status.is_empty() {
        message(&mut out, 15, &status);
    }
    out
}

/// `KeyValue { key, value: AnyValue }`.
fn key_value((key, value): &(&'static str, Value)) -> Vec<u8> {
    let mut any = Vec::new();
    match value {
        Value::Str(s) => bytes(&mut any, 1, s.as_bytes()),
        Value::Bool(b) => {
            tag(&mut any, 2, VARINT);
            varint(&mut any, u64::from(*b));
        }
        Value::Int(n) => {
            tag(&mut any, 3, VARINT);
            // int64 is sent as its two's complement, as protobuf does.
            varint(&mut any, *n as u64);
        }
        Value::Double(x) => {
            tag(&mut any, 4, FIXED64);
            any.extend_from_slice(&x.to_le_bytes());
        }
    }
    let mut kv = Vec::new();
    bytes(&mut kv, 1, key.as_bytes());
    message(&mut kv, 2, &any);
    kv
}

fn tag(out: &mut Vec<u8>, field: u64, wire: u64) {
    varint(out, (field << 3) | wire);
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes(out: &mut Vec<u8>, field: u64, data: &[u8]) {
    tag(out, field, LEN);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

fn message(out: &mut Vec<u8>, field: u64, body: &[u8]) {
    bytes(out, field, body);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoded protobuf field: number and value.
    #[derive(Debug, PartialEq)]
    enum Field {
        Varint(u64),
        Fixed64(u64),
        Len(Vec<u8>),
    }

    /// Decodes one message's fields, failing on anything malformed.
    fn fields(mut buf: &[u8]) -> Vec<(u64, Field)> {
        fn read_varint(buf: &mut &[u8]) -> u64 {
            let mut v = 0u64;
            for shift in (0..64).step_by(7) {
                let (&b, rest) = buf.split_first().expect("truncated varint");
                *buf = rest;
                v |= u64::from(b & 0x7f) << shift;
                if b < 0x80 {
                    return v;
                }
            }
            panic!("varint too long");
        }
        let mut out = Vec::new();
        while !buf.is_empty() {
            let key = read_varint(&mut buf);
            let value = match key & 7 {
                0 => Field::Varint(read_varint(&mut buf)),
                1 => {
                    let (b, rest) = buf.split_at(8);
                    buf = rest;
                    Field::Fixed64(u64::from_le_bytes(b.try_into().expect("8 bytes")))
                }
                2 => {
                    let n = usize::try_from(read_varint(&mut buf)).expect("length");
                    let (b, rest) = buf.split_at(n);
                    buf = rest;
                    Field::Len(b.to_vec())
                }
                w => panic!("unexpected wire type {w}"),
            };
            out.push((key >> 3, value));
        }
        out
    }

    /// A decoded `KeyValue`: the key and the `AnyValue`'s fields.
    type Attribute = (Vec<u8>, Vec<(u64, Field)>);

    fn len(f: &(u64, Field)) -> &[u8] {
        match &f.1 {
            Field::Len(b) => b,
            other => panic!("field {} is not length-delimited: {other:?}", f.0),
        }
    }

    fn one(fields: &[(u64, Field)], number: u64) -> &(u64, Field) {
        let mut it = fields.iter().filter(|f| f.0 == number);
        let f = it.next().unwrap_or_else(|| panic!("no field {number}"));
        assert!(it.next().is_none(), "field {number} repeated");
        f
    }

    #[test]
    fn varints_match_the_protobuf_examples() {
        let check = |v: u64, want: &[u8]| {
            let mut out = Vec::new();
            varint(&mut out, v);
            assert_eq!(out, want, "{v}");
        };
        check(1, &[0x01]);
        check(150, &[0x96, 0x01]);
        check(300, &[0xac, 0x02]);
        check(
            u64::MAX,
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        );
    }

    #[test]
    fn a_request_decodes_field_by_field() {
        let trace_id = [7u8; 16];
        let span = Span {
            name: "varpulis.checkpoint",
            id: [1, 2, 3, 4, 5, 6, 7, 8],
            parent: Some([9; 8]),
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
        let bytes = encode_request(&trace_id, &[("service.name", Value::from("svc"))], &[span]);

        let request = fields(&bytes);
        let resource_spans = fields(len(one(&request, 1)));
        let resource = fields(len(one(&resource_spans, 1)));
        let kv = fields(len(one(&resource, 1)));
        assert_eq!(len(one(&kv, 1)), b"service.name");
        assert_eq!(fields(len(one(&kv, 2))), [(1, Field::Len(b"svc".to_vec()))]);

        let scope_spans = fields(len(one(&resource_spans, 2)));
        let scope = fields(len(one(&scope_spans, 1)));
        assert_eq!(len(one(&scope, 1)), b"varpulis");
        let span = fields(len(one(&scope_spans, 2)));
        assert_eq!(len(one(&span, 1)), &[7u8; 16]);
        assert_eq!(len(one(&span, 2)), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(len(one(&span, 4)), &[9u8; 8]);
        assert_eq!(len(one(&span, 5)), b"varpulis.checkpoint");
        assert_eq!(one(&span, 6).1, Field::Varint(1), "SPAN_KIND_INTERNAL");
        assert_eq!(one(&span, 7).1, Field::Fixed64(1_700_000_000_000_000_000));
        assert_eq!(one(&span, 8).1, Field::Fixed64(1_700_000_000_500_000_000));

        let attrs: Vec<Attribute> = span
            .iter()
            .filter(|f| f.0 == 9)
            .map(|f| {
                let kv = fields(len(f));
                (len(one(&kv, 1)).to_vec(), fields(len(one(&kv, 2))))
            })
            .collect();
        assert_eq!(attrs.len(), 4);
        assert_eq!(attrs[0].0, b"varpulis.state_dir");
        assert_eq!(attrs[0].1, [(1, Field::Len(b"/tmp/s".to_vec()))]);
        assert_eq!(attrs[1].1, [(3, Field::Varint(-2i64 as u64))]);
        assert_eq!(attrs[2].1, [(4, Field::Fixed64(0.5f64.to_bits()))]);
        assert_eq!(attrs[3].1, [(2, Field::Varint(1))]);

        let status = fields(len(one(&span, 15)));
        assert_eq!(
            status,
            [
                (2, Field::Len(b"disk full".to_vec())),
                (3, Field::Varint(2))
            ]
        );
    }

    #[test]
    fn a_root_span_has_no_parent_and_an_unset_status_is_left_out() {
        let tracer = Tracer::disabled();
        let root = tracer.span("varpulis.run", None);
        let child = tracer.span("varpulis.batch", Some(&root));
        assert_eq!(child.parent, Some(root.id));
        assert_ne!(child.id, root.id);
        let span = fields(&encode_span(&[1; 16], &root));
        assert!(span.iter().all(|f| f.0 != 4 && f.0 != 15), "{span:?}");
        assert_eq!(tracer.trace_id_hex().len(), 32);
    }

    #[test]
    fn an_unreachable_collector_drops_and_counts_spans_without_blocking() {
        let mut tracer = Tracer::start("http://127.0.0.1:1/", "test").expect("start");
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
        assert!(
            Tracer::start("127.0.0.1:4318", "x").is_err(),
            "needs a scheme"
        );
    }
}

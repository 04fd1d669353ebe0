//! Prometheus metrics of a live `varpulis run` (`--metrics ADDR`).
//!
//! The run's loop renders a snapshot in the Prometheus text format (0.0.4)
//! every tick into a shared buffer; the endpoint (on the process's one HTTP
//! stack, `varpulis-http`: limits, timeouts, optional bearer token and TLS)
//! answers `GET /metrics` with the latest snapshot and `GET /health` with `ok`. Rendering in the loop
//! keeps the engine single-threaded (it is not shared with the server), and a
//! scrape never waits for the engine.
//!
//! Every counter a run prints in its summary is here, by source, sink and
//! stream, so bad input, late events and failed deliveries can be alerted on.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use varpulis_http::axum::http::{header, StatusCode};
use varpulis_http::axum::routing::get;
use varpulis_http::axum::Router;
use varpulis_http::{HttpConfig, HttpStats, Keys, Role, Server, TlsFiles};

use varpulis_connectors::{SinkMetrics, SourceMetrics};
use varpulis_vm::memory::StreamMemory;
use varpulis_vm::Metrics;

use crate::job::JobStats;

/// Everything one snapshot shows.
pub struct Snapshot<'a> {
    /// Host counters (records, skipped by reason, outputs).
    pub job: &'a JobStats,
    /// Engine counters.
    pub engine: &'a Metrics,
    /// Stream names, indexed like [`Metrics::out_per_stream`].
    pub streams: Vec<&'a str>,
    /// The engine's watermark (ns), if any event arrived.
    pub watermark: Option<i64>,
    /// Per source: connector name and counters.
    pub sources: Vec<(String, SourceMetrics)>,
    /// Per sink: connector name and counters.
    pub sinks: Vec<(String, SinkMetrics)>,
    /// Events waiting for other sources to catch up (live merge).
    pub pending: usize,
    /// Checkpoints written and failed (`--state-dir`), if checkpointing.
    pub checkpoints: Option<(u64, u64)>,
    /// Bad payloads that could not be written to the `--dead-letter` file.
    pub dead_letter_failures: u64,
    /// Trace spans lost: export failed or the queue was full (`--otlp-endpoint`).
    pub trace_spans_dropped: u64,
    /// Per stream (indexed like `streams`): time from a source's arrival of an event to the
    /// hand-off of the outputs it caused.
    pub latency: Vec<LatencyHistogram>,
    /// State size per stream and stateful operator ([`varpulis_vm::Engine::memory`]).
    pub memory: Vec<StreamMemory>,
    /// `.enrich` lookups by connector name.
    pub enrich: std::collections::BTreeMap<String, crate::enrich::ConnectorCounts>,
    /// Engine workers (1: one engine).
    pub workers: usize,
    /// Engine threads the program's contexts run on (1: one engine).
    pub contexts: usize,
}

/// Upper bounds (seconds) of the latency histogram's buckets: 100 µs to 10 s.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// A fixed-bucket histogram of latencies (Prometheus `histogram`), cheap to update per event.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencyHistogram {
    /// Observations per bucket (not cumulative); the last counts those above 10 s.
    buckets: [u64; LATENCY_BUCKETS.len() + 1],
    /// Sum of the observations, in seconds.
    sum: f64,
    /// Number of observations.
    count: u64,
}

impl LatencyHistogram {
    /// Records one latency.
    pub fn observe(&mut self, latency: std::time::Duration) {
        let secs = latency.as_secs_f64();
        let i = LATENCY_BUCKETS.partition_point(|&le| le < secs);
        if let Some(b) = self.buckets.get_mut(i) {
            *b += 1;
        }
        self.sum += secs;
        self.count += 1;
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `q` quantile (0..1) in seconds, interpolated within its bucket; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * self.count as f64;
        let mut seen = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n > 0 && (seen + n) as f64 >= rank {
                let low = if i == 0 { 0.0 } else { LATENCY_BUCKETS[i - 1] };
                let high = LATENCY_BUCKETS.get(i).copied().unwrap_or(low * 2.0);
                let within = (rank - seen as f64) / n as f64;
                return Some(low + (high - low) * within.clamp(0.0, 1.0));
            }
            seen += n;
        }
        LATENCY_BUCKETS.last().copied()
    }
}

/// `varpulis_latency_seconds{stream,le}`: the histogram family of every stream.
fn render_latency(out: &mut String, streams: &[&str], latency: &[LatencyHistogram]) {
    let _ = writeln!(
        out,
        "# HELP varpulis_latency_seconds Time from a source's arrival of an event to the hand-off of the outputs it caused, per stream."
    );
    let _ = writeln!(out, "# TYPE varpulis_latency_seconds histogram");
    for (name, h) in streams.iter().zip(latency) {
        let stream = labels(&[("stream", name)]);
        let inner = stream.trim_start_matches('{').trim_end_matches('}');
        let mut cumulative = 0;
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += h.buckets[i];
            let _ = writeln!(
                out,
                "varpulis_latency_seconds_bucket{{{inner},le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "varpulis_latency_seconds_bucket{{{inner},le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(out, "varpulis_latency_seconds_sum{stream} {}", h.sum);
        let _ = writeln!(out, "varpulis_latency_seconds_count{stream} {}", h.count);
    }
}

/// Renders a snapshot in the Prometheus text exposition format.
pub fn render(s: &Snapshot<'_>) -> String {
    let mut out = String::with_capacity(4096);
    let one = |v: u64| vec![(String::new(), v)];
    family(
        &mut out,
        "input_records_total",
        "counter",
        "Input records read, good and bad.",
        &one(s.job.records),
    );
    family(
        &mut out,
        "events_total",
        "counter",
        "Events given to the engine.",
        &one(s.job.events),
    );
    let reasons = [
        "malformed",
        "unknown_type",
        "wrong_type",
        "future_timestamp",
    ];
    family(
        &mut out,
        "input_skipped_total",
        "counter",
        "Input records skipped, by reason.",
        &reasons
            .iter()
            .map(|r| {
                (
                    labels(&[("reason", r)]),
                    s.job.skipped.get(r).copied().unwrap_or(0),
                )
            })
            .collect::<Vec<_>>(),
    );
    family(
        &mut out,
        "outputs_total",
        "counter",
        "Events leaving each stream.",
        &s.streams
            .iter()
            .enumerate()
            .map(|(i, name)| {
                (
                    labels(&[("stream", name)]),
                    s.engine.out_per_stream.get(i).copied().unwrap_or(0),
                )
            })
            .collect::<Vec<_>>(),
    );
    let per_stream = |v: &[u64]| -> Vec<(String, u64)> {
        s.streams
            .iter()
            .enumerate()
            .map(|(i, name)| (labels(&[("stream", name)]), v.get(i).copied().unwrap_or(0)))
            .collect()
    };
    family(
        &mut out,
        "stream_late_dropped_total",
        "counter",
        "Late events a stream did not process (beyond its allowed lateness).",
        &per_stream(&s.engine.late_per_stream),
    );
    family(
        &mut out,
        "stream_runtime_errors_total",
        "counter",
        "Expression errors in a stream's operators.",
        &per_stream(&s.engine.errors_per_stream),
    );
    family(
        &mut out,
        "late_events_total",
        "counter",
        "Events older than the watermark on arrival.",
        &one(s.engine.late),
    );
    family(
        &mut out,
        "late_dropped_total",
        "counter",
        "Late events not processed (beyond allowed lateness), counted per stream.",
        &one(s.engine.dropped),
    );
    family(
        &mut out,
        "runtime_errors_total",
        "counter",
        "Expression errors (division by zero, bad conversions, ...).",
        &one(s.engine.runtime_errors),
    );
    let p = &s.engine.patterns;
    family(
        &mut out,
        "pattern_active_runs",
        "gauge",
        "Open partial matches of every sequence.",
        &one(p.active_runs as u64),
    );
    for (name, help, v) in [
        ("pattern_matches_total", "Sequence matches.", p.matches),
        (
            "pattern_expired_total",
            "Partial matches expired by `within`.",
            p.expired,
        ),
        (
            "pattern_evicted_total",
            "Partial matches evicted by run limits.",
            p.evicted,
        ),
        (
            "pattern_rejected_total",
            "Partial matches refused by run limits.",
            p.rejected,
        ),
        (
            "window_pattern_tests_total",
            "Window groups tested by `.pattern`.",
            s.engine.window_patterns.tested,
        ),
        (
            "window_pattern_matches_total",
            "Window groups whose `.pattern` test was true.",
            s.engine.window_patterns.matched,
        ),
    ] {
        family(&mut out, name, "counter", help, &one(v));
    }
    let _ = writeln!(
        out,
        "# HELP varpulis_watermark_seconds The event-time watermark.\n# TYPE varpulis_watermark_seconds gauge"
    );
    if let Some(w) = s.watermark {
        let _ = writeln!(out, "varpulis_watermark_seconds {:.3}", w as f64 / 1e9);
    }
    family(
        &mut out,
        "pending_events",
        "gauge",
        "Events waiting for other sources to catch up.",
        &[(String::new(), s.pending as u64)],
    );
    family(
        &mut out,
        "engine_workers",
        "gauge",
        "Engine workers the run's events are split over by partition key (1: one engine).",
        &[(String::new(), s.workers as u64)],
    );
    family(
        &mut out,
        "engine_contexts",
        "gauge",
        "Engine threads the program's contexts run on, one per context (1: one engine).",
        &[(String::new(), s.contexts as u64)],
    );
    family(
        &mut out,
        "dead_letter_failures_total",
        "counter",
        "Bad payloads that could not be written to the --dead-letter file.",
        &one(s.dead_letter_failures),
    );
    family(
        &mut out,
        "trace_spans_dropped_total",
        "counter",
        "Trace spans not exported: the OTLP collector failed or the queue was full.",
        &one(s.trace_spans_dropped),
    );
    if let Some((written, failed)) = s.checkpoints {
        family(
            &mut out,
            "checkpoints_total",
            "counter",
            "Checkpoints written to the state directory.",
            &one(written),
        );
        family(
            &mut out,
            "checkpoint_failures_total",
            "counter",
            "Checkpoints that could not be written (each reported on stderr).",
            &one(failed),
        );
    }
    let by_source = |f: fn(&SourceMetrics) -> u64| -> Vec<(String, u64)> {
        s.sources
            .iter()
            .map(|(n, m)| (labels(&[("connector", n)]), f(m)))
            .collect()
    };
    family(
        &mut out,
        "source_received_total",
        "counter",
        "Payloads a source handed to the engine.",
        &by_source(|m| m.received),
    );
    family(
        &mut out,
        "source_bytes_total",
        "counter",
        "Payload bytes a source handed to the engine.",
        &by_source(|m| m.bytes),
    );
    family(
        &mut out,
        "source_rejected_total",
        "counter",
        "Payloads refused to their sender (HTTP 4xx/503) or skipped by a source.",
        &by_source(|m| m.rejected),
    );
    family(
        &mut out,
        "source_errors_total",
        "counter",
        "Connection and read errors of a source.",
        &by_source(|m| m.errors),
    );
    family(
        &mut out,
        "source_reconnects_total",
        "counter",
        "Reconnections of a source after a broken connection.",
        &by_source(|m| m.reconnects),
    );
    family(
        &mut out,
        "source_trace_context_invalid_total",
        "counter",
        "traceparent headers a source ignored because they were not valid W3C trace contexts.",
        &by_source(|m| m.invalid_trace_context),
    );
    family(
        &mut out,
        "source_lag_records",
        "gauge",
        "Records waiting in a source's log (Kafka: high watermark minus the next offset to \
         deliver, summed over the assigned partitions); only sources that can tell.",
        &s.sources
            .iter()
            .filter_map(|(n, m)| Some((labels(&[("connector", n)]), m.lag?)))
            .collect::<Vec<_>>(),
    );
    let by_sink = |f: fn(&SinkMetrics) -> u64| -> Vec<(String, u64)> {
        s.sinks
            .iter()
            .map(|(n, m)| (labels(&[("connector", n)]), f(m)))
            .collect()
    };
    family(
        &mut out,
        "sink_sent_total",
        "counter",
        "Records a sink delivered.",
        &by_sink(|m| m.sent),
    );
    family(
        &mut out,
        "sink_failed_total",
        "counter",
        "Records whose delivery failed for good.",
        &by_sink(|m| m.failed),
    );
    family(
        &mut out,
        "sink_dead_lettered_total",
        "counter",
        "Records written to a dead-letter file.",
        &by_sink(|m| m.dead_lettered),
    );
    family(
        &mut out,
        "sink_dropped_total",
        "counter",
        "Records lost: neither delivered nor dead-lettered.",
        &by_sink(|m| m.dropped),
    );
    family(
        &mut out,
        "sink_queue_depth",
        "gauge",
        "Records waiting in a sink's queue.",
        &by_sink(|m| m.queue_depth),
    );
    render_latency(&mut out, &s.streams, &s.latency);
    render_state(&mut out, &s.memory);
    render_enrich(&mut out, &s.enrich);
    out
}

/// `varpulis_enrich_lookups_total{connector,status}` and the
/// `varpulis_enrich_latency_seconds{connector}` histogram of `.enrich`.
fn render_enrich(
    out: &mut String,
    enrich: &std::collections::BTreeMap<String, crate::enrich::ConnectorCounts>,
) {
    let mut lookups = Vec::new();
    for (name, c) in enrich {
        for status in ["ok", "cached", "error", "timeout"] {
            let v = c.by_status.get(status).copied().unwrap_or(0);
            lookups.push((labels(&[("connector", name), ("status", status)]), v));
        }
    }
    family(
        out,
        "enrich_lookups_total",
        "counter",
        "`.enrich` lookups by connector and outcome (ok, cached, error, timeout).",
        &lookups,
    );
    let _ = writeln!(
        out,
        "# HELP varpulis_enrich_latency_seconds Time a `.enrich` lookup took, per connector."
    );
    let _ = writeln!(out, "# TYPE varpulis_enrich_latency_seconds histogram");
    for (name, c) in enrich {
        let l = labels(&[("connector", name)]);
        let inner = l.trim_start_matches('{').trim_end_matches('}');
        let mut cumulative = 0;
        for (i, ms) in crate::enrich::LATENCY_BUCKETS_MS.iter().enumerate() {
            cumulative += c.buckets.get(i).copied().unwrap_or(0);
            let le = *ms as f64 / 1000.0;
            let _ = writeln!(
                out,
                "varpulis_enrich_latency_seconds_bucket{{{inner},le=\"{le}\"}} {cumulative}"
            );
        }
        let count: u64 = c.buckets.iter().sum();
        let _ = writeln!(
            out,
            "varpulis_enrich_latency_seconds_bucket{{{inner},le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "varpulis_enrich_latency_seconds_sum{l} {}",
            c.latency_sum_ms as f64 / 1000.0
        );
        let _ = writeln!(out, "varpulis_enrich_latency_seconds_count{l} {count}");
    }
}

/// State size per stream and operator: `op` is the operator's index in the stream's chain
/// and `kind` what it is (`window`, `sequence`, `partition_by`, `distinct`, `join`). Bytes
/// are an estimate (docs/RUNTIME.md, "State size").
fn render_state(out: &mut String, memory: &[StreamMemory]) {
    let per_op = |f: &dyn Fn(&varpulis_vm::memory::OpMemory) -> Option<u64>| {
        memory
            .iter()
            .flat_map(|m| m.ops.iter().map(move |o| (&*m.stream, o)))
            .filter_map(|(stream, o)| {
                let op = o.index.to_string();
                f(o).map(|v| {
                    let l = labels(&[("stream", stream), ("op", &op), ("kind", o.kind)]);
                    (l, v)
                })
            })
            .collect::<Vec<_>>()
    };
    family(
        out,
        "state_bytes",
        "gauge",
        "Approximate bytes of operator state.",
        &per_op(&|o| Some(o.bytes)),
    );
    family(
        out,
        "state_keys",
        "gauge",
        "Keys held by an operator: partitions, remembered distinct values, join keys.",
        &per_op(&|o| Some(o.keys)),
    );
    family(
        out,
        "open_runs",
        "gauge",
        "Open partial matches of a sequence.",
        &per_op(&|o| (o.kind == "sequence").then_some(o.runs)),
    );
    let mut evictions = Vec::new();
    for m in memory {
        for o in &m.ops {
            if !matches!(o.kind, "partition_by" | "distinct") {
                continue;
            }
            let op = o.index.to_string();
            let e = &o.evictions;
            for (policy, v) in [("lru", e.lru), ("fifo", e.fifo), ("idle", e.idle)] {
                let l = labels(&[
                    ("stream", &m.stream),
                    ("op", &op),
                    ("kind", o.kind),
                    ("policy", policy),
                ]);
                evictions.push((l, v));
            }
        }
    }
    family(
        out,
        "evictions_total",
        "counter",
        "Keys (or window and join events) a state bound evicted, by policy (dropped without output).",
        &evictions,
    );
}

/// One metric family: help, type and samples.
pub(crate) fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: &[(String, u64)],
) {
    let _ = writeln!(out, "# HELP varpulis_{name} {help}");
    let _ = writeln!(out, "# TYPE varpulis_{name} {kind}");
    for (labels, v) in samples {
        let _ = writeln!(out, "varpulis_{name}{labels} {v}");
    }
}

/// `{k="v",...}` with Prometheus escaping of `\`, `"` and newlines.
pub(crate) fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// How the metrics endpoint listens: address, optional API key and TLS.
#[derive(Clone, Debug, Default)]
pub struct MetricsListen {
    /// `HOST:PORT` (`127.0.0.1:9464`; port 0 picks one).
    pub address: String,
    /// Scrapers must send `Authorization: Bearer <token>` (`/health` stays open).
    pub token: Option<String>,
    /// TLS certificate, key and optional client CA.
    pub tls: Option<TlsFiles>,
}

/// The HTTP endpoint serving the latest snapshot, on the process's one HTTP stack.
pub struct MetricsServer {
    text: Arc<Mutex<String>>,
    server: Server,
}

impl MetricsServer {
    /// Binds the address and starts serving `GET /metrics` and `GET /health`.
    pub fn start(listen: &MetricsListen) -> anyhow::Result<MetricsServer> {
        let text = Arc::new(Mutex::new(String::new()));
        let mut config = HttpConfig::new("metrics", listen.address.clone());
        config.tls = listen.tls.clone();
        config.public_paths = vec!["/health".into(), "/healthz".into()];
        if let Some(token) = &listen.token {
            let mut keys = Keys::new();
            keys.add_token("metrics", token, Role::Read);
            config.keys = Some(keys);
        }
        // Scrapes carry no body: a small limit keeps a hostile client's request small too, and
        // a scrape takes milliseconds, so a stop need not wait long for one.
        config.limits.max_body = 4096;
        config.limits.shutdown_grace = std::time::Duration::from_secs(1);
        let shared = text.clone();
        let router = Router::new()
            .route(
                "/metrics",
                get(move || {
                    let body = shared.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body) }
                }),
            )
            .route("/health", get(|| async { "ok\n" }))
            .route("/healthz", get(|| async { "ok\n" }))
            .fallback(|| async {
                (
                    StatusCode::NOT_FOUND,
                    "not found: GET /metrics or /health\n",
                )
            });
        let server = Server::start(config, router)?;
        Ok(MetricsServer { text, server })
    }

    /// `http://ADDR` or `https://ADDR`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Replaces the snapshot scrapes see, adding the counters of the HTTP listeners: this
    /// endpoint's own (`metrics`) and `others` (ingest sources, by connector).
    pub fn publish(&self, mut text: String, others: Vec<(String, HttpStats)>) {
        let mut listeners = vec![("metrics".to_string(), self.server.stats())];
        listeners.extend(others);
        render_listeners(&mut text, &listeners);
        // A poisoned lock only means a handler panicked mid-read.
        *self.text.lock().unwrap_or_else(|e| e.into_inner()) = text;
    }
}

/// The counters of HTTP listeners, labelled `listener`.
pub fn render_listeners(out: &mut String, listeners: &[(String, HttpStats)]) {
    type Get = fn(&HttpStats) -> u64;
    let families: [(&str, &str, &str, Get); 10] = [
        (
            "http_connections_total",
            "counter",
            "Connections accepted, by listener.",
            |h| h.connections,
        ),
        (
            "http_connections_open",
            "gauge",
            "Connections open now, by listener.",
            |h| h.open,
        ),
        (
            "http_connections_refused_total",
            "counter",
            "Connections refused at the connection cap, by listener.",
            |h| h.refused,
        ),
        (
            "http_requests_total",
            "counter",
            "Requests received, by listener.",
            |h| h.requests,
        ),
        (
            "http_timeouts_total",
            "counter",
            "Connections closed for slow headers, bodies or idleness, by listener.",
            |h| h.timeouts,
        ),
        (
            "http_too_large_total",
            "counter",
            "Requests refused for the size of their body or headers, by listener.",
            |h| h.too_large,
        ),
        (
            "http_unauthorized_total",
            "counter",
            "Requests refused for a missing or wrong API key, by listener.",
            |h| h.unauthorized,
        ),
        (
            "http_protocol_errors_total",
            "counter",
            "Connections that broke the HTTP protocol, by listener.",
            |h| h.protocol_errors,
        ),
        (
            "http_tls_failures_total",
            "counter",
            "Failed TLS handshakes, by listener.",
            |h| h.tls_failures,
        ),
        (
            "http_accept_errors_total",
            "counter",
            "Errors accepting connections (out of file descriptors), by listener.",
            |h| h.accept_errors,
        ),
    ];
    for (name, kind, help, get) in families {
        let values: Vec<(String, u64)> = listeners
            .iter()
            .map(|(l, h)| (labels(&[("listener", l)]), get(h)))
            .collect();
        family(out, name, kind, help, &values);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_quantiles_interpolate_within_buckets() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.quantile(0.5), None);
        for _ in 0..99 {
            h.observe(std::time::Duration::from_micros(50));
        }
        h.observe(std::time::Duration::from_secs(3));
        let p50 = h.quantile(0.5).expect("p50");
        assert!(p50 <= 0.0001, "{p50}");
        let p999 = h.quantile(0.999).expect("p999");
        assert!((2.5..=5.0).contains(&p999), "{p999}");
        assert_eq!(h.count(), 100);
    }

    #[test]
    fn renders_counters_with_escaped_labels() {
        let mut job = JobStats {
            records: 5,
            events: 4,
            ..JobStats::default()
        };
        job.skipped.insert("malformed", 1);
        let engine = Metrics {
            out_per_stream: vec![3],
            late: 2,
            errors_per_stream: vec![4],
            ..Metrics::default()
        };
        let text = render(&Snapshot {
            job: &job,
            engine: &engine,
            streams: vec!["Hot"],
            watermark: Some(1_500_000_000),
            sources: vec![(
                "In\"x".into(),
                SourceMetrics {
                    received: 7,
                    lag: Some(12),
                    ..SourceMetrics::default()
                },
            )],
            sinks: vec![],
            pending: 0,
            workers: 1,
            contexts: 1,
            checkpoints: Some((2, 0)),
            dead_letter_failures: 0,
            trace_spans_dropped: 4,
            latency: vec![{
                let mut h = LatencyHistogram::default();
                h.observe(std::time::Duration::from_micros(300));
                h.observe(std::time::Duration::from_millis(2));
                h
            }],
            memory: vec![StreamMemory {
                stream: "Hot".into(),
                ops: vec![varpulis_vm::memory::OpMemory {
                    index: 0,
                    kind: "partition_by",
                    bytes: 160,
                    keys: 1,
                    evictions: varpulis_vm::memory::Evictions {
                        lru: 3,
                        ..Default::default()
                    },
                    ..Default::default()
                }],
            }],
            enrich: {
                let m = crate::enrich::EnrichMetrics::default();
                let ok =
                    varpulis_vm::enrich::Lookup::failed(varpulis_vm::enrich::EnrichStatus::Ok, 7);
                m.count("Users", &ok);
                m.snapshot()
            },
        });
        assert!(
            text.contains(
                "varpulis_state_bytes{stream=\"Hot\",op=\"0\",kind=\"partition_by\"} 160\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("varpulis_enrich_lookups_total{connector=\"Users\",status=\"ok\"} 1\n")
        );
        assert!(text
            .contains("varpulis_enrich_lookups_total{connector=\"Users\",status=\"timeout\"} 0\n"));
        assert!(text.contains(
            "varpulis_enrich_latency_seconds_bucket{connector=\"Users\",le=\"0.005\"} 0\n"
        ));
        assert!(text.contains(
            "varpulis_enrich_latency_seconds_bucket{connector=\"Users\",le=\"0.01\"} 1\n"
        ));
        assert!(text.contains("varpulis_enrich_latency_seconds_sum{connector=\"Users\"} 0.007\n"));
        assert!(text.contains(
            "varpulis_evictions_total{stream=\"Hot\",op=\"0\",kind=\"partition_by\",policy=\"lru\"} 3\n"
        ));
        assert!(text.contains("# TYPE varpulis_open_runs gauge\n"));
        assert!(text.contains("varpulis_input_records_total 5\n"), "{text}");
        assert!(text.contains("varpulis_input_skipped_total{reason=\"malformed\"} 1\n"));
        assert!(text.contains("varpulis_input_skipped_total{reason=\"wrong_type\"} 0\n"));
        assert!(text.contains("varpulis_outputs_total{stream=\"Hot\"} 3\n"));
        assert!(text.contains("varpulis_stream_runtime_errors_total{stream=\"Hot\"} 4\n"));
        assert!(text.contains("varpulis_stream_late_dropped_total{stream=\"Hot\"} 0\n"));
        assert!(text.contains("varpulis_late_events_total 2\n"));
        assert!(text.contains("varpulis_watermark_seconds 1.500\n"));
        assert!(text.contains("varpulis_source_received_total{connector=\"In\\\"x\"} 7\n"));
        assert!(text.contains("varpulis_source_lag_records{connector=\"In\\\"x\"} 12\n"));
        assert!(text.contains("# TYPE varpulis_sink_sent_total counter\n"));
        assert!(text.contains("varpulis_checkpoints_total 2\n"));
        assert!(text.contains("varpulis_trace_spans_dropped_total 4\n"));
        assert!(
            text.contains("# TYPE varpulis_latency_seconds histogram\n"),
            "{text}"
        );
        assert!(
            text.contains("varpulis_latency_seconds_bucket{stream=\"Hot\",le=\"0.00025\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("varpulis_latency_seconds_bucket{stream=\"Hot\",le=\"0.0005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("varpulis_latency_seconds_bucket{stream=\"Hot\",le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("varpulis_latency_seconds_count{stream=\"Hot\"} 2\n"),
            "{text}"
        );
    }
}

//! Prometheus metrics of a live `varpulis run` (`--metrics ADDR`).
//!
//! The run's loop renders a snapshot in the Prometheus text format (0.0.4)
//! every tick into a shared buffer; a small HTTP thread answers `GET /metrics`
//! with the latest snapshot and `GET /health` with `ok`. Rendering in the loop
//! keeps the engine single-threaded (it is not shared with the server), and a
//! scrape never waits for the engine.
//!
//! Every counter a run prints in its summary is here, by source, sink and
//! stream, so bad input, late events and failed deliveries can be alerted on.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use varpulis_connectors::{SinkMetrics, SourceMetrics};
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
    let reasons = ["malformed", "unknown_type", "wrong_type"];
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
    out
}

/// One metric family: help, type and samples.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP varpulis_{name} {help}");
    let _ = writeln!(out, "# TYPE varpulis_{name} {kind}");
    for (labels, v) in samples {
        let _ = writeln!(out, "varpulis_{name}{labels} {v}");
    }
}

/// `{k="v",...}` with Prometheus escaping of `\`, `"` and newlines.
fn labels(pairs: &[(&str, &str)]) -> String {
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

/// The HTTP endpoint serving the latest snapshot.
pub struct MetricsServer {
    text: Arc<Mutex<String>>,
    address: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` (`127.0.0.1:9464`; port 0 picks one) and starts serving.
    pub fn start(addr: &str) -> anyhow::Result<MetricsServer> {
        let server = tiny_http::Server::http(addr)
            .map_err(|e| anyhow::anyhow!("cannot serve metrics on `{addr}`: {e}"))?;
        let address = server
            .server_addr()
            .to_ip()
            .map_or_else(|| addr.to_string(), |a| a.to_string());
        let text = Arc::new(Mutex::new(String::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (t, st) = (text.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || serve(&server, &t, &st))?;
        Ok(MetricsServer {
            text,
            address,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Replaces the snapshot scrapes see.
    pub fn publish(&self, text: String) {
        // A poisoned lock only means the server thread panicked mid-read.
        *self.text.lock().unwrap_or_else(|e| e.into_inner()) = text;
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(server: &tiny_http::Server, text: &Mutex<String>, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        let path = request.url().split('?').next().unwrap_or("");
        let (status, body, kind) = match (request.method(), path) {
            (tiny_http::Method::Get, "/metrics") => (
                200,
                text.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                "text/plain; version=0.0.4",
            ),
            (tiny_http::Method::Get, "/health") => (200, "ok\n".to_string(), "text/plain"),
            _ => (
                404,
                "not found: GET /metrics or /health\n".to_string(),
                "text/plain",
            ),
        };
        let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], kind.as_bytes())
            .expect("a static content type is a valid header");
        let response = tiny_http::Response::from_string(body)
            .with_status_code(status)
            .with_header(header);
        // The scraper may have gone away; that only concerns it.
        let _ = request.respond(response);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                    ..SourceMetrics::default()
                },
            )],
            sinks: vec![],
            pending: 0,
            checkpoints: Some((2, 0)),
            dead_letter_failures: 0,
            trace_spans_dropped: 4,
        });
        assert!(text.contains("varpulis_input_records_total 5\n"), "{text}");
        assert!(text.contains("varpulis_input_skipped_total{reason=\"malformed\"} 1\n"));
        assert!(text.contains("varpulis_input_skipped_total{reason=\"wrong_type\"} 0\n"));
        assert!(text.contains("varpulis_outputs_total{stream=\"Hot\"} 3\n"));
        assert!(text.contains("varpulis_late_events_total 2\n"));
        assert!(text.contains("varpulis_watermark_seconds 1.500\n"));
        assert!(text.contains("varpulis_source_received_total{connector=\"In\\\"x\"} 7\n"));
        assert!(text.contains("# TYPE varpulis_sink_sent_total counter\n"));
        assert!(text.contains("varpulis_checkpoints_total 2\n"));
        assert!(text.contains("varpulis_trace_spans_dropped_total 4\n"));
    }
}

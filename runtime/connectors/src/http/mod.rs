//! The `http` sink: a webhook that POSTs (or PUTs) records as JSON.
//!
//! [`Sink::send`] only puts the record on a bounded queue; a background thread batches records,
//! makes the requests, retries with exponential backoff and writes what cannot be delivered to a
//! dead-letter JSONL file. So the engine is never blocked by a slow or dead server:
//!
//! - queue full → the record goes straight to the dead-letter file, counted in
//!   [`SinkMetrics::dropped_queue_full`], and `send` returns [`SinkError::QueueFull`];
//! - 2xx → delivered;
//! - 4xx other than 408/429, or an unusable request → dead-lettered at once;
//! - 5xx, 408, 429, connection failures and timeouts → retried `retries` times, then
//!   dead-lettered;
//! - [`Sink::close`] waits at most `close_timeout`, then dead-letters what is left.
//!
//! **Idempotency keys.** A record the host identified ([`crate::RecordId`]) is sent with the
//! header `Idempotency-Key: <pipeline>/<connector>:<seq>`; a batch carries its first and last
//! record's sequence numbers, `<pipeline>/<connector>:<first>-<last>` (the records in between
//! are the ones in the body, in order). The same record replayed after a crash and a restart
//! from a checkpoint gets the same key, so the receiver can drop the copy; with `batch_size`
//! above 1 a replay may cut batches differently, so such a receiver deduplicates by sequence
//! number rather than by whole key.
//!
//! **Trace context.** A record caused by an event that came with a W3C `traceparent`
//! ([`Record::trace_parent`]) is sent with a `traceparent` header in the same trace; a batch
//! sends its first such record's.
//!
//! [`Sink::barrier`] asks the delivery thread to send its partial batch and waits, at most to
//! the deadline, until every record queued before it is acknowledged with a 2xx or
//! dead-lettered (and the dead-letter file synced).
//!
//! Parameters: `url` (required), `method` (`POST` or `PUT`), `headers` (array of `"Name: value"`
//! with `${ENV}` expansion), `batch_size` (1 = one object per request, more = a JSON array),
//! `batch_timeout`, `timeout`, `retries`, `backoff`, `max_backoff`, `dead_letter`,
//! `queue_capacity`, `close_timeout`. See the crate README for defaults.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::backoff::Backoff;
use crate::config::{expand_env, ConnectorConfig, Params};
use crate::dead_letter::DeadLetter;
use crate::error::{ConfigError, DeliveryFailure, SinkError};
use crate::metrics::Counters;
use crate::trace_context::TRACEPARENT;
use crate::{Record, Sink, SinkContext, SinkMark, SinkMetrics};

pub mod source;

/// The request header that carries a record's (or a batch's) idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// Parameters only the http sink reads (an http connector used as a source tolerates them).
pub const SINK_PARAMS: &[&str] = &[
    "method",
    "headers",
    "batch_size",
    "batch_timeout",
    "retries",
    "backoff",
    "max_backoff",
    "dead_letter",
    "queue_capacity",
    "close_timeout",
];

/// Bytes of an error response body kept for the error message.
const ERROR_BODY_BYTES: u64 = 256;

/// Bytes of a success response body read (and discarded) to keep the connection reusable.
const DRAIN_BODY_BYTES: u64 = 64 * 1024;

/// The HTTP method used for deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `POST` (the default).
    Post,
    /// `PUT`.
    Put,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

/// Settings of an http sink, after validation and `${ENV}` expansion.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Target URL (`http://` or `https://`).
    pub url: String,
    /// Request method.
    pub method: Method,
    /// Extra request headers, secrets already expanded.
    pub headers: Vec<(String, String)>,
    /// Records per request; 1 sends a bare object, more send a JSON array.
    pub batch_size: usize,
    /// How long a partial batch waits for more records before it is sent.
    pub batch_timeout: Duration,
    /// Timeout of one request, from connect to the end of the response.
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
    /// Delay before the first retry; doubles each time.
    pub backoff: Duration,
    /// Upper bound of the retry delay.
    pub max_backoff: Duration,
    /// Where undeliverable records are written.
    pub dead_letter: PathBuf,
    /// Records that may wait for delivery before new ones are dead-lettered.
    pub queue_capacity: usize,
    /// How long `close` waits for in-flight deliveries (also bounds `flush`).
    pub close_timeout: Duration,
}

impl std::fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values often hold secrets: show only the names.
        let header_names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("HttpSettings")
            .field("url", &self.url)
            .field("method", &self.method)
            .field("headers", &header_names)
            .field("batch_size", &self.batch_size)
            .field("batch_timeout", &self.batch_timeout)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .field("max_backoff", &self.max_backoff)
            .field("dead_letter", &self.dead_letter)
            .field("queue_capacity", &self.queue_capacity)
            .field("close_timeout", &self.close_timeout)
            .finish()
    }
}

impl HttpSettings {
    /// Reads and validates the `http` connector parameters.
    pub fn from_config(config: &ConnectorConfig, base_dir: &Path) -> Result<Self, ConfigError> {
        let name = config.name.as_str();
        let mut p = Params::new(config);
        let url = expand_env(
            name,
            "url",
            p.required_string("url", "write `url: \"https://host/path\"`")?,
        )?;
        match url.parse::<ureq::http::Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {}
            Ok(_) => {
                return Err(p.invalid(
                    "url",
                    format!("\"{url}\" must be an absolute http:// or https:// URL"),
                ))
            }
            Err(e) => return Err(p.invalid("url", format!("\"{url}\" is not a valid URL: {e}"))),
        }
        let method = match p.string("method")?.map(str::to_ascii_uppercase).as_deref() {
            None | Some("POST") => Method::Post,
            Some("PUT") => Method::Put,
            Some(other) => {
                return Err(p.invalid(
                    "method",
                    format!("`{other}` is not supported; use POST or PUT"),
                ))
            }
        };
        let mut headers = Vec::new();
        for raw in p.strings("headers")? {
            headers.push(parse_header(&p, raw)?);
        }
        let batch_size = p.count("batch_size", 1, 1)?;
        let batch_size = to_usize(&p, "batch_size", batch_size)?;
        let batch_timeout = p.duration("batch_timeout", Duration::from_millis(200))?;
        let timeout = p.duration("timeout", Duration::from_secs(5))?;
        if timeout.is_zero() {
            return Err(p.invalid("timeout", "must be longer than 0s"));
        }
        let retries = p.count("retries", 3, 0)?;
        let retries = u32::try_from(retries)
            .map_err(|_| p.invalid("retries", format!("{retries} is too large")))?;
        let backoff = p.duration("backoff", Duration::from_millis(100))?;
        let max_backoff = p.duration("max_backoff", Duration::from_secs(30))?;
        let dead_letter = p.path("dead_letter", || format!("{name}.dead.jsonl"), base_dir)?;
        let queue_capacity = p.count("queue_capacity", 10_000, 1)?;
        let queue_capacity = to_usize(&p, "queue_capacity", queue_capacity)?;
        let close_timeout = p.duration("close_timeout", Duration::from_secs(10))?;
        p.tolerate(source::SOURCE_PARAMS);
        p.finish()?;
        Ok(HttpSettings {
            url,
            method,
            headers,
            batch_size,
            batch_timeout,
            timeout,
            retries,
            backoff,
            max_backoff,
            dead_letter,
            queue_capacity,
            close_timeout,
        })
    }
}

fn to_usize(p: &Params<'_>, name: &str, v: u64) -> Result<usize, ConfigError> {
    usize::try_from(v).map_err(|_| p.invalid(name, format!("{v} is too large")))
}

/// Splits `"Name: value"`, expands `${ENV}` in the value, and checks both are valid HTTP.
pub(crate) fn parse_header(p: &Params<'_>, raw: &str) -> Result<(String, String), ConfigError> {
    let Some((name, value)) = raw.split_once(':') else {
        return Err(p.invalid(
            "headers",
            format!("\"{raw}\" must look like \"Name: value\""),
        ));
    };
    let name = name.trim();
    if ureq::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(p.invalid("headers", format!("`{name}` is not a valid header name")));
    }
    let value = expand_env(p.connector(), "headers", value.trim())?;
    if ureq::http::HeaderValue::from_str(&value).is_err() {
        // Do not echo the value: it may hold an expanded secret.
        return Err(p.invalid(
            "headers",
            format!("the value of header `{name}` contains characters not allowed in HTTP headers"),
        ));
    }
    Ok((name.to_string(), value))
}

/// State shared between the sink and its delivery thread.
struct Shared {
    counters: Arc<Counters>,
    dead_letter: Mutex<DeadLetter>,
    /// Set by `close`: after this instant nothing more is attempted.
    close_deadline: Mutex<Option<Instant>>,
    /// Records dead-lettered because `close_timeout` elapsed.
    abandoned: std::sync::atomic::AtomicU64,
    /// The batch the worker is delivering. Whoever takes it out accounts for it: the worker
    /// when the delivery ends, or `close` when the worker is stuck past the deadline (then the
    /// batch may reach the server and also be in the dead-letter file: at least once).
    in_flight: Mutex<Option<Vec<Record>>>,
}

impl Shared {
    fn deadline(&self) -> Option<Instant> {
        *self
            .close_deadline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn set_in_flight(&self, batch: Vec<Record>) {
        *self.in_flight.lock().unwrap_or_else(|e| e.into_inner()) = Some(batch);
    }

    fn take_in_flight(&self) -> Option<Vec<Record>> {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    fn dead_letter(
        &self,
        records: &[Record],
        reason: &str,
        attempts: u32,
    ) -> Result<(), SinkError> {
        self.dead_letter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write(records, reason, attempts)
    }
}

enum Command {
    Record(Record),
    Flush(Sender<()>),
}

/// Delivers records to a webhook from a background thread.
pub struct HttpSink {
    name: String,
    settings: Arc<HttpSettings>,
    shared: Arc<Shared>,
    tx: Option<Sender<Command>>,
    /// Kept so `close` can dead-letter records the worker did not reach in time.
    rx: Receiver<Command>,
    wake: Sender<()>,
    done: Receiver<()>,
    worker: Option<JoinHandle<()>>,
}

impl HttpSink {
    /// Builds the sink from an `http` connector declaration and starts its delivery thread.
    pub fn open(config: &ConnectorConfig, context: &SinkContext) -> Result<Self, ConfigError> {
        let settings = HttpSettings::from_config(config, &context.base_dir)?;
        HttpSink::with_settings(&config.name, settings)
    }

    /// Builds the sink from validated settings and starts its delivery thread.
    pub fn with_settings(name: &str, settings: HttpSettings) -> Result<Self, ConfigError> {
        let counters = Arc::new(Counters::default());
        let dead_letter =
            DeadLetter::new(name, settings.dead_letter.clone(), Arc::clone(&counters))?;
        let shared = Arc::new(Shared {
            counters,
            dead_letter: Mutex::new(dead_letter),
            close_deadline: Mutex::new(None),
            abandoned: Default::default(),
            in_flight: Mutex::new(None),
        });
        let settings = Arc::new(settings);
        let (tx, rx) = crossbeam_channel::bounded(settings.queue_capacity);
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(settings.timeout))
            .user_agent(format!("varpulis/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let worker = Worker {
            name: name.to_string(),
            settings: Arc::clone(&settings),
            shared: Arc::clone(&shared),
            agent,
            rx: rx.clone(),
            wake: wake_rx,
            backoff: Backoff::new(settings.backoff, settings.max_backoff, name),
            _done: done_tx,
        };
        let handle = std::thread::Builder::new()
            .name(format!("varpulis-http-{name}"))
            .spawn(move || worker.run())
            .map_err(|source| ConfigError::Thread {
                connector: name.to_string(),
                source,
            })?;
        Ok(HttpSink {
            name: name.to_string(),
            settings,
            shared,
            tx: Some(tx),
            rx,
            wake: wake_tx,
            done: done_rx,
            worker: Some(handle),
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    fn closed_error(&self) -> SinkError {
        SinkError::Closed {
            connector: self.name.clone(),
        }
    }

    fn worker_alive(&self) -> bool {
        self.worker.as_ref().is_some_and(|w| !w.is_finished())
    }

    /// Has the worker send its partial batch and waits until everything queued before is
    /// delivered or dead-lettered, at most until `deadline`.
    fn drain(&mut self, deadline: Instant) -> Result<(), SinkError> {
        let Some(tx) = &self.tx else {
            return Ok(());
        };
        let start = Instant::now();
        let (ack_tx, ack_rx) = crossbeam_channel::bounded(1);
        let acked = tx.send_deadline(Command::Flush(ack_tx), deadline).is_ok()
            && ack_rx.recv_deadline(deadline).is_ok();
        if acked {
            Ok(())
        } else {
            Err(SinkError::Timeout {
                connector: self.name.clone(),
                pending: self.shared.counters.snapshot().queue_depth,
                waited: start.elapsed(),
            })
        }
    }
}

impl Sink for HttpSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn send(&mut self, record: Record) -> Result<(), SinkError> {
        let Some(tx) = &self.tx else {
            return Err(self.closed_error());
        };
        let counters = &self.shared.counters;
        if !self.worker_alive() {
            // Only a bug can stop the worker early; keep the data anyway.
            Counters::add(&counters.failed, 1);
            let reason = "the delivery thread stopped unexpectedly";
            self.shared
                .dead_letter(std::slice::from_ref(&record), reason, 0)?;
            return Err(self.closed_error());
        }
        Counters::add(&counters.pending, 1);
        let Err(full) = tx.try_send(Command::Record(record)) else {
            return Ok(());
        };
        // The sink holds a receiver too, so the channel can only be full, never disconnected.
        let Command::Record(record) = full.into_inner() else {
            return Ok(());
        };
        counters.sub_pending(1);
        Counters::add(&counters.dropped_queue_full, 1);
        let reason = format!(
            "delivery queue full ({} records waiting for {})",
            self.settings.queue_capacity, self.settings.url
        );
        self.shared
            .dead_letter(std::slice::from_ref(&record), &reason, 0)?;
        let err = SinkError::QueueFull {
            connector: self.name.clone(),
            capacity: self.settings.queue_capacity,
            dead_letter: self.settings.dead_letter.clone(),
        };
        counters.set_last_error(err.to_string());
        Err(err)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.drain(Instant::now() + self.settings.close_timeout)
    }

    fn barrier(&mut self, deadline: Instant) -> Result<Option<SinkMark>, SinkError> {
        self.drain(deadline)?;
        self.shared
            .dead_letter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sync()?;
        Ok(None)
    }

    fn close(&mut self) -> Result<(), SinkError> {
        let Some(tx) = self.tx.take() else {
            return Ok(());
        };
        let start = Instant::now();
        let deadline = start + self.settings.close_timeout;
        *self
            .shared
            .close_deadline
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(deadline);
        // Dropping the only sender lets the worker drain the queue and stop; the wake-up cuts
        // short any backoff sleep so it sees the deadline.
        drop(tx);
        let _ = self.wake.try_send(());
        // The worker never starts a request past the deadline and bounds each request by it,
        // so it stops soon after; the grace period lets it write its last dead-letter lines.
        // A request started before `close` keeps its full `timeout`; its batch is taken over
        // below.
        let grace = Duration::from_millis(250);
        let finished = matches!(
            self.done.recv_deadline(deadline + grace),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected)
        );
        if finished {
            if let Some(worker) = self.worker.take() {
                // The worker has returned, so this does not block; a panic was already
                // reported by the thread and its records are in the queue or dead-lettered.
                let _ = worker.join();
            }
        }
        // Whatever is still in flight or queued (the worker is stuck or died) is dead-lettered
        // here.
        let mut left = self.shared.take_in_flight().unwrap_or_default();
        while let Ok(cmd) = self.rx.try_recv() {
            if let Command::Record(r) = cmd {
                left.push(r);
            }
        }
        let counters = &self.shared.counters;
        let mut result = Ok(());
        if !left.is_empty() {
            let n = left.len() as u64;
            counters.sub_pending(n);
            Counters::add(&counters.failed, n);
            self.shared
                .abandoned
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            let reason = format!(
                "not delivered to {} before close_timeout ({}ms) elapsed",
                self.settings.url,
                self.settings.close_timeout.as_millis()
            );
            counters.set_last_error(format!("connector `{}`: {n} record(s) {reason}", self.name));
            if let Err(e) = self.shared.dead_letter(&left, &reason, 0) {
                result = Err(e);
            }
        }
        let abandoned = self
            .shared
            .abandoned
            .load(std::sync::atomic::Ordering::Relaxed);
        if result.is_ok() && abandoned > 0 {
            result = Err(SinkError::Timeout {
                connector: self.name.clone(),
                pending: abandoned,
                waited: start.elapsed(),
            });
        }
        result
    }

    fn metrics(&self) -> SinkMetrics {
        self.shared.counters.snapshot()
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        // Errors cannot be returned from drop; they are in the metrics and the dead-letter file.
        let _ = self.close();
    }
}

/// The delivery thread.
struct Worker {
    name: String,
    settings: Arc<HttpSettings>,
    shared: Arc<Shared>,
    agent: ureq::Agent,
    rx: Receiver<Command>,
    wake: Receiver<()>,
    backoff: Backoff,
    /// Dropped when `run` returns (or unwinds), which tells `close` the worker is done.
    _done: Sender<()>,
}

impl Worker {
    fn run(mut self) {
        let mut batch: Vec<Record> = Vec::new();
        let mut batch_deadline = Instant::now();
        loop {
            let received = if batch.is_empty() {
                self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
            } else {
                self.rx.recv_deadline(batch_deadline)
            };
            match received {
                Ok(Command::Record(record)) => {
                    if batch.is_empty() {
                        batch_deadline = Instant::now() + self.settings.batch_timeout;
                    }
                    batch.push(record);
                    if batch.len() >= self.settings.batch_size {
                        self.deliver(std::mem::take(&mut batch));
                    }
                }
                Ok(Command::Flush(ack)) => {
                    self.deliver(std::mem::take(&mut batch));
                    let _ = ack.send(());
                }
                Err(RecvTimeoutError::Timeout) => self.deliver(std::mem::take(&mut batch)),
                Err(RecvTimeoutError::Disconnected) => {
                    self.deliver(std::mem::take(&mut batch));
                    return;
                }
            }
        }
    }

    /// Delivers one batch, retrying as configured; dead-letters it on final failure.
    fn deliver(&mut self, batch: Vec<Record>) {
        if batch.is_empty() {
            return;
        }
        let body = self.body(&batch);
        let key = idempotency_key(&batch);
        // A batch continues one trace: that of its first record that carries one.
        let trace_parent = batch
            .iter()
            .find_map(Record::trace_parent)
            .map(ToString::to_string);
        let n = batch.len() as u64;
        self.shared.set_in_flight(batch);
        self.backoff.reset();
        let mut attempts = 0u32;
        let mut last: Option<DeliveryFailure> = None;
        loop {
            let timeout = match self.shared.deadline() {
                None => self.settings.timeout,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        let mut reason = format!(
                            "{} {}: not delivered before close_timeout ({}ms) elapsed",
                            self.settings.method.as_str(),
                            self.settings.url,
                            self.settings.close_timeout.as_millis()
                        );
                        if let Some(failure) = &last {
                            reason.push_str(&format!("; last error: {failure}"));
                        }
                        if let Some(batch) = self.shared.take_in_flight() {
                            self.shared
                                .abandoned
                                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                            self.fail(&batch, reason, attempts, last);
                        }
                        return;
                    }
                    left.min(self.settings.timeout)
                }
            };
            attempts += 1;
            match self.attempt(&body, key.as_deref(), trace_parent.as_deref(), timeout) {
                Ok(()) => {
                    // If `close` took the batch over, it has already counted it.
                    if self.shared.take_in_flight().is_some() {
                        let c = &self.shared.counters;
                        Counters::add(&c.sent, n);
                        Counters::add(&c.bytes, body.len() as u64);
                        c.sub_pending(n);
                    }
                    return;
                }
                Err(failure) => {
                    let retry = failure.is_retryable() && attempts <= self.settings.retries;
                    if !retry {
                        let reason = format!(
                            "{} {}: {failure}{}",
                            self.settings.method.as_str(),
                            self.settings.url,
                            if failure.is_retryable() {
                                ""
                            } else {
                                " (not retryable)"
                            }
                        );
                        if let Some(batch) = self.shared.take_in_flight() {
                            self.fail(&batch, reason, attempts, Some(failure));
                        }
                        return;
                    }
                    Counters::add(&self.shared.counters.retried, 1);
                    last = Some(failure);
                    let delay = self.backoff.next_delay();
                    self.sleep(delay);
                }
            }
        }
    }

    /// Sleeps for `delay`, waking early once a close deadline is set and reached.
    fn sleep(&self, delay: Duration) {
        let until = Instant::now() + delay;
        loop {
            let until = match self.shared.deadline() {
                Some(deadline) => until.min(deadline),
                None => until,
            };
            let now = Instant::now();
            if now >= until {
                return;
            }
            match self.wake.recv_timeout(until - now) {
                // Woken by `close`: loop to re-read the deadline.
                Ok(()) => {}
                Err(RecvTimeoutError::Timeout) => return,
                // The sink is gone; nothing can wake us, so just finish the sleep.
                Err(RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(until.saturating_duration_since(Instant::now()));
                    return;
                }
            }
        }
    }

    fn fail(
        &self,
        batch: &[Record],
        reason: String,
        attempts: u32,
        failure: Option<DeliveryFailure>,
    ) {
        let c = &self.shared.counters;
        let n = batch.len() as u64;
        Counters::add(&c.failed, n);
        let error = match failure {
            Some(failure) => SinkError::Delivery {
                connector: self.name.clone(),
                url: self.settings.url.clone(),
                attempts,
                failure,
            }
            .to_string(),
            None => format!("connector `{}`: {reason}", self.name),
        };
        c.set_last_error(error);
        // A dead-letter failure is counted (as dropped) and recorded by the writer itself.
        let _ = self.shared.dead_letter(batch, &reason, attempts);
        c.sub_pending(n);
    }

    fn body(&self, batch: &[Record]) -> Vec<u8> {
        if self.settings.batch_size == 1 {
            if let [only] = batch {
                return only.as_bytes().to_vec();
            }
        }
        let len = batch.iter().map(|r| r.len() + 1).sum::<usize>() + 1;
        let mut body = Vec::with_capacity(len);
        body.push(b'[');
        for (i, record) in batch.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(record.as_bytes());
        }
        body.push(b']');
        body
    }

    /// One request. Never panics on whatever the server sends back.
    fn attempt(
        &self,
        body: &[u8],
        key: Option<&str>,
        trace_parent: Option<&str>,
        timeout: Duration,
    ) -> Result<(), DeliveryFailure> {
        let s = &self.settings;
        let mut request = match s.method {
            Method::Post => self.agent.post(&s.url),
            Method::Put => self.agent.put(&s.url),
        };
        if !s
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            request = request.header("Content-Type", "application/json");
        }
        for (name, value) in &s.headers {
            request = request.header(name, value);
        }
        if let Some(key) = key {
            request = request.header(IDEMPOTENCY_HEADER, key);
        }
        if let Some(context) = trace_parent {
            request = request.header(TRACEPARENT, context);
        }
        let result = request
            .config()
            .timeout_global(Some(timeout))
            .build()
            .send(body);
        match result {
            Ok(mut response) => {
                let code = response.status().as_u16();
                if (200..300).contains(&code) {
                    // Read (a bounded amount of) the answer so the connection can be reused; the
                    // delivery already succeeded, so a failure here changes nothing.
                    let _ = std::io::copy(
                        &mut response.body_mut().as_reader().take(DRAIN_BODY_BYTES),
                        &mut std::io::sink(),
                    );
                    return Ok(());
                }
                let mut snippet = Vec::new();
                // The body is only for the error message; failing to read it changes nothing.
                let _ = response
                    .body_mut()
                    .as_reader()
                    .take(ERROR_BODY_BYTES)
                    .read_to_end(&mut snippet);
                let body = String::from_utf8_lossy(&snippet)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                Err(DeliveryFailure::Status { code, body })
            }
            Err(e) => Err(classify(e, timeout)),
        }
    }
}

/// The `Idempotency-Key` of a batch: its record's id, or for several records the scope with
/// the first and last sequence numbers; `None` when the records carry no id.
fn idempotency_key(batch: &[Record]) -> Option<String> {
    let first = batch.first()?.id()?;
    let last = batch.last()?.id()?;
    if batch.len() == 1 {
        Some(first.to_string())
    } else {
        Some(format!("{}:{}-{}", first.scope, first.seq, last.seq))
    }
}

/// Maps a ureq error onto what it means for retrying.
fn classify(e: ureq::Error, timeout: Duration) -> DeliveryFailure {
    use std::io::ErrorKind;
    match e {
        ureq::Error::Timeout(_) => DeliveryFailure::Timeout(timeout),
        ureq::Error::StatusCode(code) => DeliveryFailure::Status {
            code,
            body: String::new(),
        },
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
            DeliveryFailure::Connect(e.to_string())
        }
        ureq::Error::Io(io) => match io.kind() {
            ErrorKind::TimedOut | ErrorKind::WouldBlock => DeliveryFailure::Timeout(timeout),
            ErrorKind::ConnectionRefused
            | ErrorKind::AddrNotAvailable
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable => DeliveryFailure::Connect(io.to_string()),
            _ => DeliveryFailure::Transport(io.to_string()),
        },
        ureq::Error::BadUri(_)
        | ureq::Error::Http(_)
        | ureq::Error::Tls(_)
        | ureq::Error::Rustls(_)
        | ureq::Error::InvalidProxyUrl
        | ureq::Error::RequireHttpsOnly(_)
        | ureq::Error::TlsRequired => DeliveryFailure::Request(e.to_string()),
        other => DeliveryFailure::Transport(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConfigValue;

    fn check(params: &[(&str, ConfigValue)]) -> Result<HttpSettings, ConfigError> {
        let config = params
            .iter()
            .fold(ConnectorConfig::new("Hook", "http"), |c, (k, v)| {
                c.param(*k, v.clone())
            });
        HttpSettings::from_config(&config, Path::new("/base"))
    }

    fn url() -> (&'static str, ConfigValue) {
        ("url", ConfigValue::Str("http://127.0.0.1:9/x".into()))
    }

    #[test]
    fn defaults() {
        let s = check(&[url()]).expect("url alone is enough");
        assert_eq!(s.method, Method::Post);
        assert_eq!(s.batch_size, 1);
        assert_eq!(s.timeout, Duration::from_secs(5));
        assert_eq!(s.retries, 3);
        assert_eq!(s.backoff, Duration::from_millis(100));
        assert_eq!(s.dead_letter, PathBuf::from("/base/Hook.dead.jsonl"));
        assert_eq!(s.queue_capacity, 10_000);
        assert_eq!(s.close_timeout, Duration::from_secs(10));
    }

    #[test]
    fn missing_url_is_named() {
        let err = check(&[]).expect_err("url is required");
        assert_eq!(
            err.to_string(),
            "connector `Hook`: missing required parameter `url` (write `url: \"https://host/path\"`)"
        );
    }

    #[test]
    fn relative_or_non_http_url_is_rejected() {
        for bad in ["/x", "ftp://h/x", "not a url"] {
            let err = check(&[("url", ConfigValue::Str(bad.into()))]).expect_err(bad);
            assert!(err.to_string().contains("parameter `url`"), "{err}");
        }
    }

    #[test]
    fn method_accepts_put_identifier_and_rejects_get() {
        let s = check(&[url(), ("method", ConfigValue::Ident("PUT".into()))]).expect("PUT");
        assert_eq!(s.method, Method::Put);
        let err = check(&[url(), ("method", ConfigValue::Str("GET".into()))]).expect_err("GET");
        assert_eq!(
            err.to_string(),
            "connector `Hook`: parameter `method`: `GET` is not supported; use POST or PUT"
        );
    }

    #[test]
    fn malformed_header_is_rejected() {
        let headers = ConfigValue::Array(vec![ConfigValue::Str("Authorization Bearer x".into())]);
        let err = check(&[url(), ("headers", headers)]).expect_err("no colon");
        assert!(err.to_string().contains("\"Name: value\""), "{err}");
    }

    #[test]
    fn header_with_missing_env_var_names_it() {
        let headers = ConfigValue::Array(vec![ConfigValue::Str(
            "Authorization: Bearer ${VARPULIS_TEST_UNSET_TOKEN_1}".into(),
        )]);
        let err = check(&[url(), ("headers", headers)]).expect_err("unset var");
        assert!(
            matches!(&err, ConfigError::MissingEnvVar { var, .. } if var == "VARPULIS_TEST_UNSET_TOKEN_1"),
            "{err}"
        );
    }

    #[test]
    fn misspelt_parameter_gets_a_suggestion() {
        let err = check(&[url(), ("retires", ConfigValue::Int(2))]).expect_err("typo");
        assert_eq!(
            err.to_string(),
            "connector `Hook`: unknown parameter `retires` for an http sink; did you mean `retries`?"
        );
    }

    #[test]
    fn debug_output_hides_header_values() {
        let headers = ConfigValue::Array(vec![ConfigValue::Str("X-Token: s3cret".into())]);
        let s = check(&[url(), ("headers", headers)]).expect("valid");
        let shown = format!("{s:?}");
        assert!(
            shown.contains("X-Token") && !shown.contains("s3cret"),
            "{shown}"
        );
    }
}

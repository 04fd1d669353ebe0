//! The `websocket` sink: sends each record, as one JSON object, in one text message.
//!
//! Parameters (besides those in [`super`]): `queue_capacity` (records waiting to be written,
//! default 10 000), `dead_letter` (default `<Name>.dead.jsonl`), `close_timeout` (default `10s`)
//! and `retries` (failed connection attempts or writes a record may see before it is
//! dead-lettered, default 10).
//!
//! [`Sink::send`] never waits for the network: it puts the record in a bounded ledger and wakes
//! the client thread, which connects (sending the `subscribe` texts), writes records in order,
//! answers pings, pings a quiet server every `keep_alive`, and reconnects with backoff when the
//! connection breaks. Messages the server sends on a sink's connection are read and ignored. A
//! record counts as sent once its frame is written to the socket: WebSocket has no
//! acknowledgements. Records whose write failed are written again after reconnecting (at least
//! once); a record written just before the connection broke may be lost in transit without the
//! sink knowing.
//!
//! [`Sink::barrier`] waits, at most to the deadline, until every record sent before it is
//! written to the socket or dead-lettered, and syncs the dead-letter file. Records carry no
//! idempotency key (a WebSocket message has no headers): a receiver that must deduplicate needs
//! a field of its own in the payload.
//!
//! No record is lost silently; each one that is not sent goes to the dead-letter file with an
//! `_error` field and is counted:
//!
//! - queue full (the server is slow or away and `queue_capacity` records wait) → dead-lettered
//!   at once, [`SinkMetrics::dropped_queue_full`], `send` returns [`SinkError::QueueFull`];
//! - a record larger than `max_message` → dead-lettered at once, `send` returns
//!   [`SinkError::Delivery`] (not retryable);
//! - `retries + 1` failed connection attempts or writes since the record was sent →
//!   dead-lettered with the last error;
//! - the server refuses us for good (a certificate that does not verify, an upgrade answered
//!   401 or 403) → everything waiting is dead-lettered, and so is everything sent afterwards,
//!   for which `send` returns [`SinkError::Refused`];
//! - [`Sink::close`] waits at most `close_timeout` for the ledger to drain, sends a Close frame,
//!   then dead-letters what is left.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::backoff::Backoff;
use crate::config::{ConnectorConfig, Params};
use crate::dead_letter::DeadLetter;
use crate::error::{ConfigError, DeliveryFailure, SinkError};
use crate::metrics::Counters;
use crate::source::join_until;
use crate::websocket::{connect, ConnectError, Connection, WsSettings};
use crate::{Record, Sink, SinkContext, SinkMark, SinkMetrics};

/// How long an idle client thread waits for records before it reads the socket (pings, a
/// Close frame, a broken connection).
const IDLE_POLL: Duration = Duration::from_millis(25);

/// The socket's read timeout while the sink is connected: reads only look for what the server
/// sent, they never wait for it.
const READ_POLL: Duration = Duration::from_millis(1);

/// Records written before one flush and one look at the socket.
const WRITE_BATCH: usize = 256;

/// How long the close handshake may wait for the server's Close frame.
const CLOSE_WAIT: Duration = Duration::from_millis(500);

/// How long `close` waits for the client thread after `close_timeout`, for the close handshake.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Settings of a websocket sink, after validation.
#[derive(Debug, Clone, PartialEq)]
pub struct WebSocketSinkSettings {
    /// Server, headers, subscribe texts, limits.
    pub common: WsSettings,
    /// Records that may wait to be written before new ones are dead-lettered.
    pub queue_capacity: usize,
    /// Where undeliverable records are written.
    pub dead_letter: PathBuf,
    /// How long `close` (and `flush`) wait for outstanding records.
    pub close_timeout: Duration,
    /// Failed connection attempts or writes a record may see before it is dead-lettered.
    pub retries: u64,
    /// A field added to each record holding its idempotency key (WebSocket messages have no
    /// headers), if any.
    pub idempotency_field: Option<String>,
}

impl WebSocketSinkSettings {
    /// Reads and validates the `websocket` connector parameters for a sink.
    pub fn from_config(config: &ConnectorConfig, base_dir: &Path) -> Result<Self, ConfigError> {
        let name = config.name.as_str();
        let mut p = Params::for_role(config, "sink");
        let common = WsSettings::read(&mut p, base_dir)?;
        let queue_capacity = p.count("queue_capacity", 10_000, 1)?;
        let queue_capacity = usize::try_from(queue_capacity)
            .map_err(|_| p.invalid("queue_capacity", format!("{queue_capacity} is too large")))?;
        let dead_letter = p.path("dead_letter", || format!("{name}.dead.jsonl"), base_dir)?;
        let close_timeout = p.duration("close_timeout", Duration::from_secs(10))?;
        let retries = p.count("retries", 10, 0)?;
        let idempotency_field = crate::config::idempotency_field(&mut p)?;
        p.tolerate(super::SOURCE_PARAMS);
        p.finish()?;
        Ok(WebSocketSinkSettings {
            common,
            queue_capacity,
            dead_letter,
            close_timeout,
            retries,
            idempotency_field,
        })
    }
}

/// A record waiting to be written.
struct Entry {
    record: Record,
    /// [`Shared::failures`] when the record was sent: it has seen `failures - since` failures.
    since: u64,
}

/// Records between `send` and the socket, in order.
#[derive(Default)]
struct Ledger {
    /// Not yet taken by the client thread, oldest first.
    waiting: VecDeque<Entry>,
    /// Taken by the client thread and being written; back to the front of `waiting` if the
    /// write fails.
    in_flight: Vec<Entry>,
    /// What the server refused for good and why, once it did; nothing can be sent any more.
    refused: Option<String>,
}

impl Ledger {
    fn len(&self) -> usize {
        self.waiting.len() + self.in_flight.len()
    }
}

/// State shared between the sink and its client thread.
struct Shared {
    name: String,
    /// `ws://host:port/path`, for messages.
    address: String,
    counters: Arc<Counters>,
    ledger: Mutex<Ledger>,
    /// Signalled whenever records leave the ledger.
    drained: Condvar,
    dead_letter: Mutex<DeadLetter>,
    /// Set by `close`: the thread closes the connection and returns.
    stop: AtomicBool,
    /// Failed connection attempts and writes since the sink opened.
    failures: AtomicU64,
    /// The latest connection error, for dead-letter reasons.
    last_failure: Mutex<Option<String>>,
}

impl Shared {
    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // A poisoned lock only means another thread panicked mid-update; the data is usable.
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dead_letter(
        &self,
        records: &[Record],
        reason: &str,
        attempts: u32,
    ) -> Result<(), SinkError> {
        crate::dead_letter::locked(&self.dead_letter).write(records, reason, attempts)
    }

    /// Counts `records` as failed and saves them with `reason`.
    fn fail(&self, records: &[Record], reason: &str, attempts: u32) -> Result<(), SinkError> {
        crate::dead_letter::fail_records(
            &self.dead_letter,
            &self.counters,
            &self.name,
            records,
            reason,
            attempts,
        )
    }

    fn last_failure(&self) -> Option<String> {
        self.last_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Takes every record out of the ledger, in-flight ones first.
    fn take_all(&self) -> Vec<Record> {
        let mut ledger = self.ledger();
        let in_flight = std::mem::take(&mut ledger.in_flight);
        let waiting = std::mem::take(&mut ledger.waiting);
        drop(ledger);
        let records: Vec<Record> = in_flight
            .into_iter()
            .chain(waiting)
            .map(|e| e.record)
            .collect();
        self.counters.sub_pending(records.len() as u64);
        self.drained.notify_all();
        records
    }

    /// Waits until the ledger is empty or `deadline` passes; `true` when it emptied.
    fn wait_drained(&self, deadline: Instant, worker_gone: impl Fn() -> bool) -> bool {
        let mut ledger = self.ledger();
        loop {
            if ledger.len() == 0 {
                return true;
            }
            let now = Instant::now();
            if now >= deadline || worker_gone() {
                return false;
            }
            // Short waits so a thread that died is noticed without a notification.
            let wait = (deadline - now).min(Duration::from_millis(50));
            ledger = self
                .drained
                .wait_timeout(ledger, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Sends records to a WebSocket server from a background thread.
pub struct WebSocketSink {
    name: String,
    settings: Arc<WebSocketSinkSettings>,
    shared: Arc<Shared>,
    wake: Sender<()>,
    done: Receiver<()>,
    worker: Option<JoinHandle<()>>,
    closed: bool,
}

impl WebSocketSink {
    /// Builds the sink from a `websocket` connector declaration and starts its client thread.
    /// The connection is made in the background; records wait in the ledger meanwhile.
    pub fn open(config: &ConnectorConfig, context: &SinkContext) -> Result<Self, ConfigError> {
        let settings = WebSocketSinkSettings::from_config(config, &context.base_dir)?;
        WebSocketSink::with_settings(&config.name, settings)
    }

    /// Builds the sink from validated settings and starts its client thread.
    pub fn with_settings(name: &str, settings: WebSocketSinkSettings) -> Result<Self, ConfigError> {
        let counters = Arc::new(Counters::default());
        let dead_letter =
            DeadLetter::new(name, settings.dead_letter.clone(), Arc::clone(&counters))?;
        let shared = Arc::new(Shared {
            name: name.to_string(),
            address: settings.common.display.clone(),
            counters,
            ledger: Mutex::new(Ledger::default()),
            drained: Condvar::new(),
            dead_letter: Mutex::new(dead_letter),
            stop: AtomicBool::new(false),
            failures: AtomicU64::new(0),
            last_failure: Mutex::new(None),
        });
        let settings = Arc::new(settings);
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
        let worker = Worker {
            shared: Arc::clone(&shared),
            settings: Arc::clone(&settings),
            wake: wake_rx,
            backoff: Backoff::new(settings.common.backoff, settings.common.max_backoff, name),
            _done: done_tx,
        };
        let handle = std::thread::Builder::new()
            .name(format!("varpulis-websocket-{name}"))
            .spawn(move || worker.run())
            .map_err(|source| ConfigError::Thread {
                connector: name.to_string(),
                source,
            })?;
        Ok(WebSocketSink {
            name: name.to_string(),
            settings,
            shared,
            wake: wake_tx,
            done: done_rx,
            worker: Some(handle),
            closed: false,
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &WebSocketSinkSettings {
        &self.settings
    }

    fn worker_alive(&self) -> bool {
        self.worker.as_ref().is_some_and(|w| !w.is_finished())
    }

    /// `WebSocket server ws://host:port/path`, the place of a refusal.
    fn server(&self) -> String {
        format!("WebSocket server {}", self.shared.address)
    }

    /// Waits until every record sent is written or dead-lettered, at most until `deadline`.
    fn drain(&self, deadline: Instant) -> Result<(), SinkError> {
        if self.closed {
            return Ok(());
        }
        let start = Instant::now();
        let worker = self.worker.as_ref();
        let gone = || worker.is_none_or(|w| w.is_finished());
        if self.shared.wait_drained(deadline, gone) {
            Ok(())
        } else {
            Err(SinkError::Timeout {
                connector: self.name.clone(),
                pending: self.shared.counters.snapshot().queue_depth,
                waited: start.elapsed(),
            })
        }
    }

    /// Dead-letters a record sent after the server refused us for good.
    fn refused(&self, record: Record, why: &str) -> Result<(), SinkError> {
        let reason = format!("{} refused {why}", self.server());
        self.shared
            .fail(std::slice::from_ref(&record), &reason, 0)?;
        Err(SinkError::Refused {
            connector: self.name.clone(),
            place: self.server(),
            reason: why.to_string(),
            dead_letter: self.settings.dead_letter.clone(),
        })
    }

    /// Dead-letters a record that cannot be sent and says why (not retryable).
    fn reject(&self, record: Record, why: String) -> Result<(), SinkError> {
        let reason = format!("{}: {why}", self.shared.address);
        self.shared
            .fail(std::slice::from_ref(&record), &reason, 0)?;
        Err(SinkError::Delivery {
            connector: self.name.clone(),
            url: self.shared.address.clone(),
            attempts: 0,
            failure: DeliveryFailure::Request(format!(
                "{why}; record written to dead-letter file `{}`",
                self.settings.dead_letter.display()
            )),
        })
    }
}

impl Sink for WebSocketSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn send(&mut self, record: Record) -> Result<(), SinkError> {
        if self.closed {
            return Err(SinkError::Closed {
                connector: self.name.clone(),
            });
        }
        let record = crate::config::add_idempotency_field(
            record,
            self.settings.idempotency_field.as_deref(),
        );
        let limit = self.settings.common.max_message;
        if record.len() > limit {
            let why = format!(
                "the record is {} bytes, more than `max_message` ({limit})",
                record.len()
            );
            return self.reject(record, why);
        }
        let mut ledger = self.shared.ledger();
        if let Some(why) = ledger.refused.clone() {
            drop(ledger);
            return self.refused(record, &why);
        }
        if !self.worker_alive() {
            drop(ledger);
            return self.reject(record, "the client thread stopped unexpectedly".into());
        }
        if ledger.len() >= self.settings.queue_capacity {
            drop(ledger);
            Counters::add(&self.shared.counters.dropped_queue_full, 1);
            let mut reason = format!(
                "delivery queue full ({} records waiting for {})",
                self.settings.queue_capacity, self.shared.address
            );
            if let Some(failure) = self.shared.last_failure() {
                reason.push_str(&format!("; last error: {failure}"));
            }
            self.shared
                .dead_letter(std::slice::from_ref(&record), &reason, 0)?;
            let err = SinkError::QueueFull {
                connector: self.name.clone(),
                capacity: self.settings.queue_capacity,
                dead_letter: self.settings.dead_letter.clone(),
            };
            self.shared.counters.set_last_error(err.to_string());
            return Err(err);
        }
        ledger.waiting.push_back(Entry {
            record,
            since: self.shared.failures.load(Ordering::Acquire),
        });
        Counters::add(&self.shared.counters.pending, 1);
        drop(ledger);
        // A full wake-up channel already holds a wake-up.
        let _ = self.wake.try_send(());
        Ok(())
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
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        let start = Instant::now();
        let deadline = start + self.settings.close_timeout;
        {
            let worker = self.worker.as_ref();
            let gone = || worker.is_none_or(|w| w.is_finished());
            self.shared.wait_drained(deadline, gone);
        }
        // The thread closes the connection (Close frame, bounded wait) and returns; the
        // wake-up cuts an idle wait or a backoff sleep short.
        self.shared.stop.store(true, Ordering::Release);
        let _ = self.wake.try_send(());
        if let Some(worker) = self.worker.take() {
            join_until(
                worker,
                &self.done,
                deadline.max(Instant::now()) + CLOSE_GRACE,
            );
        }
        // A thread still connecting to an unresponsive host sees the stop flag once the attempt
        // ends and writes nothing more; what it did not write is saved here.
        let left = self.shared.take_all();
        if left.is_empty() {
            return Ok(());
        }
        let mut reason = format!(
            "not written to {} before close_timeout ({}ms) elapsed",
            self.shared.address,
            self.settings.close_timeout.as_millis()
        );
        if let Some(failure) = self.shared.last_failure() {
            reason.push_str(&format!("; last error: {failure}"));
        }
        self.shared.fail(&left, &reason, 0)?;
        Err(SinkError::Timeout {
            connector: self.name.clone(),
            pending: left.len() as u64,
            waited: start.elapsed(),
        })
    }

    fn metrics(&self) -> SinkMetrics {
        self.shared.counters.snapshot()
    }
}

impl Drop for WebSocketSink {
    fn drop(&mut self) {
        // Errors cannot be returned from drop; they are in the metrics and the dead-letter file.
        let _ = self.close();
    }
}

/// The client thread: connects, writes records in order, reconnects.
struct Worker {
    shared: Arc<Shared>,
    settings: Arc<WebSocketSinkSettings>,
    /// Signalled by `send` (a record is waiting) and `close`.
    wake: Receiver<()>,
    backoff: Backoff,
    /// Dropped when `run` returns (or unwinds), which tells `close` the thread is done.
    _done: Sender<()>,
}

impl Worker {
    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    fn run(mut self) {
        let mut connection: Option<Connection> = None;
        // Whether the failure being retried is not the first of its series (for `retried`).
        let mut retrying = false;
        loop {
            if self.stopped() {
                if let Some(c) = connection {
                    c.close(CLOSE_WAIT);
                }
                return;
            }
            let Some(c) = connection.as_mut() else {
                let shared = Arc::clone(&self.shared);
                let stopped = move || shared.stop.load(Ordering::Acquire);
                match connect(&self.settings.common, READ_POLL, &stopped) {
                    Ok(c) => {
                        self.backoff.reset();
                        retrying = false;
                        connection = Some(c);
                    }
                    Err(ConnectError::Stopped) => return,
                    Err(ConnectError::Final(why)) => {
                        self.refused(&why);
                        return;
                    }
                    Err(ConnectError::Retry(why)) => {
                        self.failed(format!("cannot connect: {why}"), retrying);
                        retrying = true;
                        let _ = self.wake.recv_timeout(self.backoff.next_delay());
                    }
                }
                continue;
            };
            let outcome = match self.write_some(c) {
                Ok(true) => c.poll().map(|_| ()),
                Ok(false) => {
                    // Nothing to write: wait for a record, then look at the socket.
                    let _ = self.wake.recv_timeout(IDLE_POLL);
                    c.poll().map(|_| ())
                }
                Err(lost) => Err(lost),
            };
            if let Err(lost) = outcome {
                connection = None;
                self.failed(format!("connection lost: {}", lost.reason), retrying);
                retrying = true;
                let _ = self.wake.recv_timeout(self.backoff.next_delay());
            }
        }
    }

    /// Writes up to [`WRITE_BATCH`] waiting records and flushes them; `Ok(false)` when none
    /// was waiting. On failure the records go back to the front of the ledger, in order.
    fn write_some(&self, connection: &mut Connection) -> Result<bool, super::Lost> {
        let texts: Vec<String> = {
            let mut ledger = self.shared.ledger();
            let n = ledger.waiting.len().min(WRITE_BATCH);
            let batch: Vec<Entry> = ledger.waiting.drain(..n).collect();
            let texts = batch
                .iter()
                .map(|e| String::from_utf8_lossy(e.record.as_bytes()).into_owned())
                .collect();
            ledger.in_flight = batch;
            texts
        };
        if texts.is_empty() {
            return Ok(false);
        }
        let written = texts
            .into_iter()
            .try_for_each(|text| connection.write_text(text))
            .and_then(|()| connection.flush());
        let mut ledger = self.shared.ledger();
        let batch = std::mem::take(&mut ledger.in_flight);
        match written {
            Ok(()) => {
                drop(ledger);
                let bytes: u64 = batch.iter().map(|e| e.record.len() as u64).sum();
                let c = &self.shared.counters;
                Counters::add(&c.sent, batch.len() as u64);
                Counters::add(&c.bytes, bytes);
                c.sub_pending(batch.len() as u64);
                self.shared.drained.notify_all();
                Ok(true)
            }
            Err(lost) => {
                for entry in batch.into_iter().rev() {
                    ledger.waiting.push_front(entry);
                }
                Err(lost)
            }
        }
    }

    /// Counts one failed connection attempt or write, then dead-letters the records that have
    /// now seen `retries + 1` failures.
    fn failed(&self, failure: String, retrying: bool) {
        let c = &self.shared.counters;
        if retrying {
            Counters::add(&c.retried, 1);
        }
        let failures = self.shared.failures.fetch_add(1, Ordering::AcqRel) + 1;
        c.set_last_error(format!(
            "connector `{}`: websocket {}: {failure}; retrying",
            self.shared.name, self.shared.address
        ));
        *self
            .shared
            .last_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(failure.clone());
        let limit = self.settings.retries.saturating_add(1);
        let expired: Vec<Record> = {
            let mut ledger = self.shared.ledger();
            let mut expired = Vec::new();
            while ledger
                .waiting
                .front()
                .is_some_and(|e| failures.saturating_sub(e.since) >= limit)
            {
                if let Some(entry) = ledger.waiting.pop_front() {
                    expired.push(entry.record);
                }
            }
            expired
        };
        if expired.is_empty() {
            return;
        }
        c.sub_pending(expired.len() as u64);
        self.shared.drained.notify_all();
        let reason = format!(
            "not delivered to {} after {limit} failed attempt(s): {failure}",
            self.shared.address
        );
        let attempts = u32::try_from(limit).unwrap_or(u32::MAX);
        // A dead-letter failure is counted (as dropped) and recorded by the writer itself.
        let _ = self.shared.fail(&expired, &reason, attempts);
    }

    /// The server refused us for good (`why` says what and why): everything waiting, and
    /// everything sent from now on, goes to the dead-letter file.
    fn refused(&self, why: &str) {
        self.shared.ledger().refused = Some(why.to_string());
        let why = format!("WebSocket server {} refused {why}", self.shared.address);
        let records = self.shared.take_all();
        // A dead-letter failure is counted (as dropped) and recorded by the writer itself.
        let _ = self.shared.fail(&records, &why, 0);
        self.shared
            .counters
            .set_last_error(format!("connector `{}`: {why}", self.shared.name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConfigValue;

    fn check(params: &[(&str, ConfigValue)]) -> Result<WebSocketSinkSettings, ConfigError> {
        let config = params
            .iter()
            .fold(ConnectorConfig::new("Out", "websocket"), |c, (k, v)| {
                c.param(*k, v.clone())
            })
            .param("url", ConfigValue::Str("ws://127.0.0.1:1/in".into()));
        WebSocketSinkSettings::from_config(&config, Path::new("/tmp"))
    }

    #[test]
    fn defaults_are_documented_ones() {
        let s = check(&[]).expect("valid");
        assert_eq!(s.queue_capacity, 10_000);
        assert_eq!(s.dead_letter, PathBuf::from("/tmp/Out.dead.jsonl"));
        assert_eq!(s.close_timeout, Duration::from_secs(10));
        assert_eq!(s.retries, 10);
    }

    #[test]
    fn typos_are_suggested_for_the_sink() {
        let err = check(&[("retires", ConfigValue::Int(3))]).expect_err("typo");
        assert_eq!(
            err.to_string(),
            "connector `Out`: unknown parameter `retires` for a websocket sink; did you mean `retries`?"
        );
    }
}

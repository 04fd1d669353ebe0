//! The `mqtt` sink: publishes each record, as one JSON object, to an MQTT topic.
//!
//! Parameters (besides those in [`super`]): `topic` (where records go unless the `.to(Conn,
//! topic: ...)` site names another; no wildcards), `retain` (default `false`), `queue_capacity`
//! (records waiting to be published or acknowledged, default 10 000), `dead_letter` (default
//! `<Name>.dead.jsonl`) and `close_timeout` (default `10s`).
//!
//! [`Sink::send`] never waits for the network: it hands the record to the client thread through
//! a bounded queue and returns. The thread connects, publishes in order and reconnects with
//! backoff (100 ms doubling to 5 s) when the broker goes away. A record counts as sent once it
//! is written (QoS 0) or acknowledged (PUBACK for QoS 1, PUBCOMP for QoS 2). Records not yet
//! acknowledged when a connection breaks are published again on the next one, even when the
//! broker starts a new session, so delivery is at least once for QoS 1 and 2.
//!
//! [`Sink::barrier`] waits, at most to the deadline, until every record sent before it is
//! acknowledged (written, for QoS 0) or dead-lettered, and syncs the dead-letter file. With a
//! checkpoint that makes delivery at least once across crashes too: what a crash loses is
//! replayed from the checkpoint.
//!
//! With MQTT 5 a record the host identified ([`crate::RecordId`]) carries the user property
//! `idempotency-key: <pipeline>/<connector>:<seq>`, the same when it is published again after a
//! crash, so receivers can deduplicate; a record caused by an event that came with a W3C trace
//! context ([`Record::trace_parent`]) carries a `traceparent` user property in the same trace.
//! MQTT 3.1.1 messages have no properties: there a receiver that must deduplicate needs a field
//! of its own in the payload.
//!
//! No record is lost silently; each one that is not delivered goes to the dead-letter file with
//! an `_error` field and is counted:
//!
//! - queue full (the broker is slow or away and `queue_capacity` records wait) → dead-lettered
//!   at once, [`SinkMetrics::dropped_queue_full`], `send` returns [`SinkError::QueueFull`];
//! - no topic (neither the record nor the connector has one) → dead-lettered at once, `send`
//!   returns [`SinkError::NoTopic`];
//! - an invalid topic, or a payload bigger than MQTT allows (or than an MQTT 5 broker's
//!   maximum packet size, once its CONNACK told it) → dead-lettered at once, `send` returns
//!   [`SinkError::Delivery`] (not retryable);
//! - the broker refuses one publish (MQTT 5: a PUBACK or PUBREC with an error reason code, such
//!   as `NotAuthorized` for a topic its ACL denies) → that record is dead-lettered with the
//!   reason code;
//! - the broker refuses us for good (bad user name or password, not authorised, a broker
//!   certificate that does not verify) →
//!   everything waiting is dead-lettered, and so is everything sent afterwards, for which `send`
//!   returns [`SinkError::Refused`];
//! - [`Sink::close`] waits at most `close_timeout` for the queue to drain and the
//!   acknowledgements to arrive, then dead-letters what is left. A record in the dead-letter file
//!   may still have reached the broker if only its acknowledgement was missing.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::backoff::Backoff;
use crate::config::{ConnectorConfig, Params};
use crate::dead_letter::DeadLetter;
use crate::error::{ConfigError, DeliveryFailure, SinkError};
use crate::metrics::Counters;
use crate::mqtt::client::{Client, Connection, Event, Session};
use crate::mqtt::{default_client_id, MqttSettings, Protocol, MAX_PACKET_BYTES};
use crate::source::join_until;
use crate::trace_context::TRACEPARENT;
use crate::{Record, Sink, SinkContext, SinkMark, SinkMetrics, IDEMPOTENCY_KEY};

/// First delay before reconnecting; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Longest delay between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long `close` waits for the client thread after `close_timeout`, to let it send its
/// DISCONNECT.
const CLOSE_GRACE: Duration = Duration::from_millis(250);

/// Settings of an mqtt sink, after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSinkSettings {
    /// Broker, client id, QoS, login.
    pub common: MqttSettings,
    /// The connector's topic, used for records whose `.to(...)` site names none.
    pub topic: Option<String>,
    /// Whether the broker keeps the last record of each topic for new subscribers.
    pub retain: bool,
    /// Records that may wait for publication or acknowledgement before new ones are
    /// dead-lettered.
    pub queue_capacity: usize,
    /// Where undeliverable records are written.
    pub dead_letter: PathBuf,
    /// How long `close` (and `flush`) wait for outstanding records.
    pub close_timeout: Duration,
    /// A field added to each record holding its idempotency key (for MQTT 3.1.1, whose
    /// messages have no properties), if any.
    pub idempotency_field: Option<String>,
}

impl MqttSinkSettings {
    /// Reads and validates the `mqtt` connector parameters for a sink.
    pub fn from_config(config: &ConnectorConfig, base_dir: &Path) -> Result<Self, ConfigError> {
        let name = config.name.as_str();
        let mut p = Params::for_role(config, "sink");
        let common = MqttSettings::read(&mut p, default_client_id(name, "out"), base_dir)?;
        let topic = p.string("topic")?.map(str::to_string);
        if let Some(t) = &topic {
            if !rumqttc::valid_topic(t) || t.is_empty() {
                return Err(p.invalid(
                    "topic",
                    format!("\"{t}\" is not a topic one can publish to (no `+` or `#`, not empty)"),
                ));
            }
        }
        let retain = p.bool("retain", false)?;
        let queue_capacity = p.count("queue_capacity", 10_000, 1)?;
        let queue_capacity = usize::try_from(queue_capacity)
            .map_err(|_| p.invalid("queue_capacity", format!("{queue_capacity} is too large")))?;
        let dead_letter = p.path("dead_letter", || format!("{name}.dead.jsonl"), base_dir)?;
        let close_timeout = p.duration("close_timeout", Duration::from_secs(10))?;
        let idempotency_field = crate::config::idempotency_field(&mut p)?;
        p.tolerate(super::SOURCE_PARAMS);
        p.finish()?;
        Ok(MqttSinkSettings {
            common,
            topic,
            retain,
            queue_capacity,
            dead_letter,
            close_timeout,
            idempotency_field,
        })
    }
}

/// Records between `send` and their acknowledgement, in the order the client publishes them.
#[derive(Default)]
struct Ledger {
    /// Handed to the client, not yet written (no packet id yet), oldest first.
    waiting: VecDeque<Record>,
    /// Written with QoS 1 or 2, waiting for PUBACK or PUBCOMP, with their packet ids.
    unacked: Vec<(u16, Record)>,
    /// What the broker refused for good and why (`the connection: bad user name or
    /// password`), once it did; nothing can be delivered any more.
    refused: Option<String>,
}

impl Ledger {
    fn len(&self) -> usize {
        self.waiting.len() + self.unacked.len()
    }
}

/// State shared between the sink and its client thread.
struct Shared {
    name: String,
    address: String,
    counters: Arc<Counters>,
    ledger: Mutex<Ledger>,
    /// Signalled whenever records leave the ledger.
    drained: Condvar,
    dead_letter: Mutex<DeadLetter>,
    /// Set by `close`: the thread returns at its next event.
    stop: AtomicBool,
    /// The latest connection error, for dead-letter reasons.
    last_failure: Mutex<Option<String>>,
    /// The largest packet the broker accepts: MQTT's limit unless an MQTT 5 broker said less
    /// in its CONNACK. A bigger publish would break the connection on every attempt.
    max_packet: AtomicUsize,
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

    /// A record was written with packet id `pkid` (0 for QoS 0).
    fn published(&self, pkid: u16) {
        let mut ledger = self.ledger();
        if pkid != 0 && ledger.unacked.iter().any(|(id, _)| *id == pkid) {
            // A retransmission after a reconnection: that record is already tracked.
            return;
        }
        let Some(record) = ledger.waiting.pop_front() else {
            return;
        };
        if pkid == 0 {
            drop(ledger);
            self.delivered(&record);
        } else {
            ledger.unacked.push((pkid, record));
        }
    }

    /// The broker acknowledged packet id `pkid`.
    fn acked(&self, pkid: u16) {
        let mut ledger = self.ledger();
        let Some(i) = ledger.unacked.iter().position(|(id, _)| *id == pkid) else {
            return;
        };
        let (_, record) = ledger.unacked.remove(i);
        drop(ledger);
        self.delivered(&record);
    }

    /// The broker refused packet id `pkid` for good (`reason` names its reason code): the
    /// record is dead-lettered.
    fn rejected(&self, pkid: u16, reason: &str) {
        let mut ledger = self.ledger();
        let Some(i) = ledger.unacked.iter().position(|(id, _)| *id == pkid) else {
            return;
        };
        let (_, record) = ledger.unacked.remove(i);
        drop(ledger);
        self.counters.sub_pending(1);
        let why = format!("MQTT broker {} refused the record: {reason}", self.address);
        // A dead-letter failure is counted (as dropped) and recorded by the writer itself.
        let _ = self.fail(std::slice::from_ref(&record), &why, 1);
        self.counters
            .set_last_error(format!("connector `{}`: {why}", self.name));
        self.drained.notify_all();
    }

    fn delivered(&self, record: &Record) {
        Counters::add(&self.counters.sent, 1);
        Counters::add(&self.counters.bytes, record.len() as u64);
        self.counters.sub_pending(1);
        self.drained.notify_all();
    }

    /// Takes every record out of the ledger: unacknowledged ones first, then waiting ones.
    fn take_all(&self) -> (Vec<Record>, Vec<Record>) {
        let mut ledger = self.ledger();
        let unacked = std::mem::take(&mut ledger.unacked)
            .into_iter()
            .map(|(_, r)| r)
            .collect::<Vec<_>>();
        let waiting = std::mem::take(&mut ledger.waiting)
            .into_iter()
            .collect::<Vec<_>>();
        drop(ledger);
        self.counters
            .sub_pending((unacked.len() + waiting.len()) as u64);
        self.drained.notify_all();
        (unacked, waiting)
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

/// Publishes records to an MQTT broker from a background thread.
pub struct MqttSink {
    name: String,
    settings: Arc<MqttSinkSettings>,
    shared: Arc<Shared>,
    client: Client,
    wake: Sender<()>,
    done: Receiver<()>,
    worker: Option<JoinHandle<()>>,
    closed: bool,
}

impl MqttSink {
    /// Builds the sink from an `mqtt` connector declaration and starts its client thread. The
    /// connection is made in the background; records wait in the queue meanwhile.
    pub fn open(config: &ConnectorConfig, context: &SinkContext) -> Result<Self, ConfigError> {
        let settings = MqttSinkSettings::from_config(config, &context.base_dir)?;
        MqttSink::with_settings(&config.name, settings)
    }

    /// Builds the sink from validated settings and starts its client thread.
    pub fn with_settings(name: &str, settings: MqttSinkSettings) -> Result<Self, ConfigError> {
        let counters = Arc::new(Counters::default());
        let dead_letter =
            DeadLetter::new(name, settings.dead_letter.clone(), Arc::clone(&counters))?;
        let shared = Arc::new(Shared {
            name: name.to_string(),
            address: settings.common.address(),
            counters,
            ledger: Mutex::new(Ledger::default()),
            drained: Condvar::new(),
            dead_letter: Mutex::new(dead_letter),
            stop: AtomicBool::new(false),
            last_failure: Mutex::new(None),
            max_packet: AtomicUsize::new(MAX_PACKET_BYTES),
        });
        // The ledger bounds the records in memory; the request queue only needs to hold them
        // plus the DISCONNECT.
        let session = Session {
            clean: true,
            manual_acks: false,
        };
        let (client, connection) =
            super::client::connect(&settings.common, session, settings.queue_capacity + 1);
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
        let worker = Worker {
            shared: Arc::clone(&shared),
            wake: wake_rx,
            backoff: Backoff::new(FIRST_BACKOFF, MAX_BACKOFF, name),
            _done: done_tx,
        };
        let handle = std::thread::Builder::new()
            .name(format!("varpulis-mqtt-{name}"))
            .spawn(move || worker.run(connection))
            .map_err(|source| ConfigError::Thread {
                connector: name.to_string(),
                source,
            })?;
        Ok(MqttSink {
            name: name.to_string(),
            settings: Arc::new(settings),
            shared,
            client,
            wake: wake_tx,
            done: done_rx,
            worker: Some(handle),
            closed: false,
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &MqttSinkSettings {
        &self.settings
    }

    fn worker_alive(&self) -> bool {
        self.worker.as_ref().is_some_and(|w| !w.is_finished())
    }

    /// `MQTT broker mqtt://host:port`, the place of a refusal.
    fn broker(&self) -> String {
        format!("MQTT broker {}", self.shared.address)
    }

    /// Waits until every record sent is acknowledged or dead-lettered, at most until
    /// `deadline`.
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

    /// Dead-letters a record that names no topic.
    fn no_topic(&self, record: Record) -> Result<(), SinkError> {
        let reason = format!(
            "{}: the record has no topic (set `topic` on the connector or at the `.to(...)` site)",
            self.shared.address
        );
        self.shared
            .fail(std::slice::from_ref(&record), &reason, 0)?;
        Err(SinkError::NoTopic {
            connector: self.name.clone(),
            dead_letter: self.settings.dead_letter.clone(),
        })
    }

    /// Dead-letters a record sent after the broker refused us for good.
    fn refused(&self, record: Record, why: &str) -> Result<(), SinkError> {
        let reason = format!("{} refused {why}", self.broker());
        self.shared
            .fail(std::slice::from_ref(&record), &reason, 0)?;
        Err(SinkError::Refused {
            connector: self.name.clone(),
            place: self.broker(),
            reason: why.to_string(),
            dead_letter: self.settings.dead_letter.clone(),
        })
    }

    /// Dead-letters a record that cannot be published and says why (not retryable).
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

impl Sink for MqttSink {
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
        let topic = match record.topic().or(self.settings.topic.as_deref()) {
            Some(t) => t.to_string(),
            None => return self.no_topic(record),
        };
        if topic.is_empty() || !rumqttc::valid_topic(&topic) {
            return self.reject(
                record,
                format!("\"{topic}\" is not a topic one can publish to (no `+` or `#`, not empty)"),
            );
        }
        let properties = match self.settings.common.protocol {
            Protocol::V5 => user_properties(&record),
            Protocol::V311 => Vec::new(),
        };
        // Fixed header, topic and packet id, and each property's id and two length prefixes.
        let size = record.len()
            + topic.len()
            + 16
            + properties
                .iter()
                .map(|(k, v)| k.len() + v.len() + 5)
                .sum::<usize>();
        let max = self.shared.max_packet.load(Ordering::Relaxed);
        if size > max {
            let why = if max < MAX_PACKET_BYTES {
                format!(
                    "the record is {} bytes, more than the broker accepts ({max} bytes a packet)",
                    record.len()
                )
            } else {
                format!(
                    "the record is {} bytes, more than MQTT allows",
                    record.len()
                )
            };
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
        // The record enters the ledger and the client's queue under one lock, so the client
        // thread matches packet ids to records in the same order.
        let payload = record.as_bytes().to_vec();
        ledger.waiting.push_back(record);
        // Counted before the client thread can see the record: it may be acknowledged (and
        // uncounted) before this thread gets the lock back.
        Counters::add(&self.shared.counters.pending, 1);
        let queued = self.client.try_publish(
            topic,
            self.settings.common.qos,
            self.settings.retain,
            payload,
            properties,
        );
        if queued.is_err() {
            // The queue is sized above the ledger, so only a vanished client thread gets here.
            let record = ledger.waiting.pop_back();
            drop(ledger);
            self.shared.counters.sub_pending(1);
            if let Some(record) = record {
                return self.reject(record, "the client thread stopped unexpectedly".into());
            }
            return Ok(());
        }
        drop(ledger);
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
        // The thread returns at its next event; the DISCONNECT is that event on a live
        // connection, the wake-up cuts a backoff sleep short.
        self.shared.stop.store(true, Ordering::Release);
        self.client.try_disconnect();
        let _ = self.wake.try_send(());
        if let Some(worker) = self.worker.take() {
            join_until(
                worker,
                &self.done,
                deadline.max(Instant::now()) + CLOSE_GRACE,
            );
        }
        // A thread still connecting to an unresponsive host sees the stop flag once the attempt
        // ends and publishes nothing more; what it did not deliver is saved here.
        let (unacked, waiting) = self.shared.take_all();
        let left = (unacked.len() + waiting.len()) as u64;
        if left == 0 {
            return Ok(());
        }
        let mut reason = format!(
            "not acknowledged by {} before close_timeout ({}ms) elapsed",
            self.shared.address,
            self.settings.close_timeout.as_millis()
        );
        if let Some(failure) = self.shared.last_failure() {
            reason.push_str(&format!("; last error: {failure}"));
        }
        self.shared.fail(&unacked, &reason, 1)?;
        self.shared.fail(&waiting, &reason, 0)?;
        Err(SinkError::Timeout {
            connector: self.name.clone(),
            pending: left,
            waited: start.elapsed(),
        })
    }

    fn metrics(&self) -> SinkMetrics {
        self.shared.counters.snapshot()
    }
}

impl Drop for MqttSink {
    fn drop(&mut self) {
        // Errors cannot be returned from drop; they are in the metrics and the dead-letter file.
        let _ = self.close();
    }
}

/// The client thread: runs the event loop, matches acknowledgements to records, reconnects.
struct Worker {
    shared: Arc<Shared>,
    wake: Receiver<()>,
    backoff: Backoff,
    /// Dropped when `run` returns (or unwinds), which tells `close` the thread is done.
    _done: Sender<()>,
}

impl Worker {
    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    fn run(mut self, mut connection: Connection) {
        let mut failures = 0u32;
        while !self.stopped() {
            let Some(event) = connection.recv() else {
                return;
            };
            if self.stopped() {
                return;
            }
            match event {
                Ok(Event::Connected { max_packet }) => {
                    self.backoff.reset();
                    failures = 0;
                    let max = max_packet
                        .and_then(|m| usize::try_from(m).ok())
                        .map_or(MAX_PACKET_BYTES, |m| m.min(MAX_PACKET_BYTES));
                    self.shared.max_packet.store(max, Ordering::Relaxed);
                    // Requests a broken connection left unsent: rumqttc drops them when the
                    // broker starts a new session, so they were kept and go out first.
                    connection.resend_unsent();
                }
                Ok(Event::Published(pkid)) => self.shared.published(pkid),
                Ok(Event::Acknowledged(pkid)) => self.shared.acked(pkid),
                Ok(Event::Rejected { pkid, reason }) => self.shared.rejected(pkid, &reason),
                Ok(Event::Disconnected) => return,
                Ok(Event::Message(_) | Event::Subscribed { .. } | Event::Other) => {}
                Err(e) => {
                    if let Some(why) = &e.final_why {
                        self.refused(why);
                        return;
                    }
                    connection.keep_unsent();
                    let failure = e.message;
                    let c = &self.shared.counters;
                    if failures > 0 {
                        Counters::add(&c.retried, 1);
                    }
                    failures = failures.saturating_add(1);
                    c.set_last_error(format!(
                        "connector `{}`: connection to MQTT broker {} failed: {failure}; retrying",
                        self.shared.name, self.shared.address
                    ));
                    *self
                        .shared
                        .last_failure
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = Some(failure);
                    // Woken early by `close`: the loop condition decides.
                    let _ = self.wake.recv_timeout(self.backoff.next_delay());
                }
            }
        }
    }

    /// The broker refused us for good (`why` says what and why): everything waiting, and
    /// everything sent from now on, goes to the dead-letter file.
    fn refused(&self, why: &str) {
        self.shared.ledger().refused = Some(why.to_string());
        let why = format!("MQTT broker {} refused {why}", self.shared.address);
        let (unacked, waiting) = self.shared.take_all();
        // A dead-letter failure is counted (as dropped) and recorded by the writer itself.
        let _ = self.shared.fail(&unacked, &why, 1);
        let _ = self.shared.fail(&waiting, &why, 0);
        self.shared
            .counters
            .set_last_error(format!("connector `{}`: {why}", self.shared.name));
    }
}

/// The MQTT 5 user properties of `record`: its idempotency key and trace context, when it has
/// them (MQTT 3.1.1 drops them).
fn user_properties(record: &Record) -> Vec<(String, String)> {
    let mut properties = Vec::new();
    if let Some(id) = record.id() {
        properties.push((IDEMPOTENCY_KEY.to_string(), id.to_string()));
    }
    if let Some(context) = record.trace_parent() {
        properties.push((TRACEPARENT.to_string(), context.to_string()));
    }
    properties
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConfigValue;

    fn check(params: &[(&str, ConfigValue)]) -> Result<MqttSinkSettings, ConfigError> {
        let config = params
            .iter()
            .fold(ConnectorConfig::new("Alerts", "mqtt"), |c, (k, v)| {
                c.param(*k, v.clone())
            })
            .param("host", ConfigValue::Str("127.0.0.1".into()));
        MqttSinkSettings::from_config(&config, Path::new("/tmp"))
    }

    #[test]
    fn defaults_are_documented_ones() {
        let s = check(&[]).expect("topic is optional");
        assert_eq!(s.topic, None);
        assert!(!s.retain);
        assert_eq!(s.queue_capacity, 10_000);
        assert_eq!(s.dead_letter, PathBuf::from("/tmp/Alerts.dead.jsonl"));
        assert_eq!(s.close_timeout, Duration::from_secs(10));
        assert_eq!(s.common.port, 1883);
        assert_eq!(s.common.qos, 1);
        let id = &s.common.client_id;
        assert!(
            id.starts_with(&format!("varpulis-Alerts-{}-out", std::process::id())),
            "{id}"
        );
    }

    #[test]
    fn wildcard_topic_is_rejected_for_publishing() {
        let err = check(&[("topic", ConfigValue::Str("alerts/#".into()))]).expect_err("#");
        assert!(
            err.to_string().contains("not a topic one can publish to"),
            "{err}"
        );
    }

    #[test]
    fn source_parameters_are_tolerated_and_typos_suggested() {
        check(&[("clean_session", ConfigValue::Bool(false))]).expect("source param");
        let err = check(&[("retian", ConfigValue::Bool(true))]).expect_err("typo");
        assert_eq!(
            err.to_string(),
            "connector `Alerts`: unknown parameter `retian` for an mqtt sink; did you mean `retain`?"
        );
    }
}

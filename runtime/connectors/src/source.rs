//! Input connectors: where `Type.from(Conn, ...)` events come from.
//!
//! A source runs on its own thread(s) and hands raw payloads to the host through a bounded
//! channel ([`SourceSender`]). Payloads stay bytes here: the host decodes them with the program's
//! JSON reader, so this crate still knows nothing of the compiler or the VM.
//!
//! **Invariants.**
//! - A source never drops a payload silently: each one is delivered to the host, or refused to
//!   its sender where the protocol can say so (HTTP 503), or counted in [`SourceMetrics`].
//! - A full host queue is back-pressure, not loss: [`SourceSender::deliver`] waits (checking
//!   for shutdown) instead of discarding; [`SourceSender::deliver_until_stopped`] also gives up
//!   when the source alone is stopped, so [`Source::stop`] never waits on a host that keeps
//!   running but does not read.
//! - Broken connections are retried with backoff and reported as [`SourceEvent::Problem`];
//!   nothing a broker or a client sends can panic a source thread.
//! - [`Source::stop`] returns within a bounded time.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{SendTimeoutError, Sender, TrySendError};

use crate::config::{closest, ConnectorConfig};
use crate::error::ConfigError;

/// The source kinds [`open_source`] can build in this build (features decide `mqtt`, `kafka`,
/// `websocket`).
pub const SOURCE_KINDS: &[&str] = &[
    "file",
    "http",
    #[cfg(feature = "kafka")]
    "kafka",
    #[cfg(feature = "mqtt")]
    "mqtt",
    #[cfg(feature = "websocket")]
    "websocket",
];

/// One subscription: a connector declaration merged with the parameters of a `.from(...)`
/// site (the site's parameters win, so `topic:` at the site overrides the connector's).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    /// The merged configuration.
    pub connector: ConnectorConfig,
    /// The host's index for this subscription, echoed in every [`SourceEvent`].
    pub id: usize,
    /// Where to resume, from the host's last checkpoint: [`Position::key`] → offset to read
    /// next. Sources that cannot seek ignore it.
    pub resume: BTreeMap<String, u64>,
    /// The host checkpoints its state: a source that can replay records keeps its read
    /// position where the host's checkpoints say ([`Source::commit`]) instead of advancing it
    /// on delivery, so a restart replays exactly what the restored state has not seen.
    pub checkpointed: bool,
    /// The host keeps one state per partition (a kafka source with `state_per_partition:
    /// true`): the source asks it before taking or giving up a partition ([`Rebalance`]).
    /// A source whose connector asks for per-partition state refuses to start without it.
    pub partitions: Option<PartitionHost>,
}

impl SourceConfig {
    /// A subscription that starts where the connector normally starts.
    pub fn new(connector: ConnectorConfig, id: usize) -> Self {
        SourceConfig {
            connector,
            id,
            resume: BTreeMap::new(),
            checkpointed: false,
            partitions: None,
        }
    }
}

/// A partition of a partitioned source: a Kafka topic and partition number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionId {
    /// The topic.
    pub topic: String,
    /// The partition number.
    pub partition: i32,
}

impl PartitionId {
    /// The record stream key of its payloads' [`Position`]s: `topic/partition`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.topic, self.partition)
    }
}

/// What a source that keeps state per partition asks its host ([`PartitionHost`]). The
/// source waits for the answer before it goes on, so the host sees every payload of a
/// revoked partition before the revocation, and no payload of an assigned partition before
/// it answered the assignment.
#[derive(Debug)]
pub enum Rebalance {
    /// The group gave these partitions to this member. The host restores their state and
    /// answers, per partition, the offset to read next (`None`: where the group's committed
    /// offset or `auto.offset.reset` says), or an error that stops the source.
    Assigned {
        /// The partitions.
        partitions: Vec<PartitionId>,
        /// Where the answer goes.
        reply: Sender<Result<BTreeMap<PartitionId, Option<u64>>, String>>,
    },
    /// The group takes these partitions away. The host checkpoints and drops their state,
    /// then answers.
    Revoked {
        /// The partitions.
        partitions: Vec<PartitionId>,
        /// Where the answer goes.
        reply: Sender<()>,
    },
}

/// The channel through which a partitioned source asks its host ([`Rebalance`]).
#[derive(Debug, Clone)]
pub struct PartitionHost {
    /// Where requests go.
    pub tx: Sender<Rebalance>,
    /// How long the source waits for an answer before it gives up (see the source).
    pub timeout: Duration,
}

impl PartialEq for PartitionHost {
    fn eq(&self, other: &Self) -> bool {
        self.tx.same_channel(&other.tx) && self.timeout == other.timeout
    }
}

/// Where a payload sits in a source that can replay it: the record stream `key` (a Kafka
/// `topic/partition`, `file` for a file) and the offsets of the payload's start and of what
/// follows it. A checkpoint resumes at `start` for a payload the host has not run yet, at `end`
/// after one it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The record stream within the source.
    pub key: String,
    /// Offset of this payload.
    pub start: u64,
    /// Offset of the next payload.
    pub end: u64,
}

/// What sources need from the host program.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// Directory that relative `path` parameters resolve against.
    pub base_dir: PathBuf,
}

impl SourceContext {
    /// A context resolving relative paths against `base_dir`.
    pub fn new(base_dir: impl Into<PathBuf>) -> Self {
        SourceContext {
            base_dir: base_dir.into(),
        }
    }
}

/// One payload received by a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMessage {
    /// The subscription that received it ([`SourceConfig::id`]).
    pub source: usize,
    /// The payload as received: one JSON object, a JSON array of objects, or JSON lines.
    pub payload: Vec<u8>,
    /// Where it came from, for error messages: `topic sensors/1`, `topic t partition 2 offset
    /// 17`, `POST /events from 127.0.0.1:50312`, `line 4`.
    pub place: String,
    /// Arrival time, milliseconds since the Unix epoch (the event time of payloads without a
    /// `timestamp`).
    pub received_ms: i64,
    /// Arrival on the monotonic clock: where the latency to the sinks is measured from.
    pub received: std::time::Instant,
    /// Where it sits, for sources that can replay (files, Kafka); `None` for the others.
    pub position: Option<Position>,
    /// The sender's W3C trace context, for sources whose protocol carries headers (an HTTP
    /// request's, a Kafka record's or an MQTT 5 message's `traceparent`, checked by
    /// [`SourceCounters::trace_parent`]); `None` when there was none or it was invalid. The
    /// host continues the sender's trace with it: the event's span is the sender's span's
    /// child, and the records the event causes carry the context on.
    pub trace_parent: Option<crate::TraceParent>,
}

/// What a source tells the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceEvent {
    /// A payload to decode and run.
    Message(SourceMessage),
    /// Something went wrong; `fatal` says the source gave up (otherwise it retries by itself).
    Problem {
        /// The subscription.
        source: usize,
        /// What happened, naming the place (broker address, topic, file).
        message: String,
        /// Whether the source stopped for good.
        fatal: bool,
    },
    /// A bounded source (a file) has delivered everything.
    Ended {
        /// The subscription.
        source: usize,
    },
}

/// Why [`SourceSender::try_deliver`] did not deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliverError {
    /// The host's queue is full right now (answer "busy, retry later").
    Full,
    /// The host is stopping or gone.
    Stopped,
}

/// The sending half handed to every source: a bounded channel plus the host's stop flag.
#[derive(Debug, Clone)]
pub struct SourceSender {
    tx: Sender<SourceEvent>,
    stopping: Arc<AtomicBool>,
}

/// How often a blocked [`SourceSender::deliver`] looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

/// How long a sender waiting for a full queue to drain sleeps between looks
/// ([`SourceSender::drained`]): the host takes a quarter of the default queue
/// (2,500 payloads) in a few milliseconds.
const DRAIN_NAP: Duration = Duration::from_millis(1);

impl SourceSender {
    /// Wraps the host's channel and its stop flag.
    pub fn new(tx: Sender<SourceEvent>, stopping: Arc<AtomicBool>) -> Self {
        SourceSender { tx, stopping }
    }

    /// Whether the host asked every source to stop.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Delivers one event, waiting while the host's queue is full (back-pressure). Returns
    /// `false` when the host is stopping or gone; the event was not delivered then.
    pub fn deliver(&self, event: SourceEvent) -> bool {
        self.deliver_unless(event, || false)
    }

    /// Like [`SourceSender::deliver`], but also gives up (returning `false`) once `stop` is set,
    /// within about 50 ms. Sources pass their own stop flag, so [`Source::stop`] returns
    /// promptly even while the host's queue is full and the host is not stopping.
    pub fn deliver_until_stopped(&self, event: SourceEvent, stop: &AtomicBool) -> bool {
        self.deliver_unless(event, || stop.load(Ordering::Acquire))
    }

    fn deliver_unless(&self, event: SourceEvent, stopped: impl Fn() -> bool) -> bool {
        let mut event = event;
        loop {
            if self.stopping() || stopped() {
                return false;
            }
            if !self.drained(&stopped) {
                return false;
            }
            match self.tx.send_timeout(event, STOP_POLL) {
                Ok(()) => return true,
                Err(SendTimeoutError::Timeout(back)) => event = back,
                Err(SendTimeoutError::Disconnected(_)) => return false,
            }
        }
    }

    /// On a full queue, waits until the host has taken a quarter of it (or for
    /// [`STOP_POLL`] at most) before the caller offers more: a sender blocked
    /// on a full queue is woken by the kernel for every payload the host takes,
    /// and each wake-up costs both threads more than handling the payload.
    /// `false` when the host or the source stopped meanwhile.
    fn drained(&self, stopped: &impl Fn() -> bool) -> bool {
        if !self.tx.is_full() {
            return true;
        }
        let capacity = self.tx.capacity().unwrap_or(0);
        let low = capacity - capacity / 4;
        let start = Instant::now();
        while self.tx.len() > low && start.elapsed() < STOP_POLL {
            if self.stopping() || stopped() {
                return false;
            }
            std::thread::sleep(DRAIN_NAP);
        }
        true
    }

    /// Delivers one event without waiting; on failure the event comes back with the reason.
    // The refused event comes back by value so the caller can retry it without a copy; boxing
    // it would allocate on every attempt against a full queue.
    #[allow(clippy::result_large_err)]
    pub fn try_deliver(&self, event: SourceEvent) -> Result<(), (DeliverError, SourceEvent)> {
        if self.stopping() {
            return Err((DeliverError::Stopped, event));
        }
        self.tx.try_send(event).map_err(|e| match e {
            TrySendError::Full(back) => (DeliverError::Full, back),
            TrySendError::Disconnected(back) => (DeliverError::Stopped, back),
        })
    }
}

/// A snapshot of one source's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceMetrics {
    /// Payloads handed to the host.
    pub received: u64,
    /// Payload bytes handed to the host.
    pub bytes: u64,
    /// Payloads refused to their sender (HTTP 503/413/400) or lost; each is also reported.
    pub rejected: u64,
    /// Connection or read errors (each retried or reported).
    pub errors: u64,
    /// Successful reconnections after a broken connection.
    pub reconnects: u64,
    /// The most recent error, rendered.
    pub last_error: Option<String>,
    /// `traceparent` headers ignored because they were not valid W3C trace contexts.
    pub invalid_trace_context: u64,
    /// Records waiting in the source's log after the last one handed to the host, summed over
    /// its partitions (Kafka: the partitions' high watermarks minus the next offsets to
    /// deliver). `None` for sources without a log to lag behind, or before the first probe.
    pub lag: Option<u64>,
}

/// Counters shared between a source and its threads.
#[derive(Debug, Default)]
pub struct SourceCounters {
    received: AtomicU64,
    bytes: AtomicU64,
    rejected: AtomicU64,
    errors: AtomicU64,
    reconnects: AtomicU64,
    last_error: Mutex<Option<String>>,
    invalid_trace_context: AtomicU64,
    /// The latest lag, plus one (0 = not known).
    lag: AtomicU64,
}

impl SourceCounters {
    /// Counts one payload of `bytes` bytes handed to the host.
    pub fn received(&self, bytes: usize) {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts `n` payloads refused or lost.
    pub fn rejected(&self, n: u64) {
        self.rejected.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one error and remembers it.
    pub fn error(&self, message: impl Into<String>) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        // A poisoned lock only means another thread panicked mid-update; the slot is usable.
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(message.into());
    }

    /// Counts one successful reconnection.
    pub fn reconnected(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// The trace context of a message's `traceparent` header value, if it has one; an invalid
    /// one is counted and ignored (never fatal: the message itself is fine).
    pub fn trace_parent(&self, header: Option<&[u8]>) -> Option<crate::TraceParent> {
        let header = header?;
        let parsed = crate::TraceParent::parse(header);
        if parsed.is_none() {
            self.invalid_trace_context.fetch_add(1, Ordering::Relaxed);
        }
        parsed
    }

    /// Records the latest lag probe (`None`: not known now).
    pub fn set_lag(&self, lag: Option<u64>) {
        let stored = lag.map_or(0, |n| n.saturating_add(1));
        self.lag.store(stored, Ordering::Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> SourceMetrics {
        SourceMetrics {
            received: self.received.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            invalid_trace_context: self.invalid_trace_context.load(Ordering::Relaxed),
            lag: self.lag.load(Ordering::Relaxed).checked_sub(1),
        }
    }
}

/// A running input connector.
pub trait Source: Send {
    /// The connector name, as declared in VPL.
    fn name(&self) -> &str;

    /// Where it listens or reads, for the startup line (`mqtt://127.0.0.1:1883 topic sensors/#`).
    fn describe(&self) -> String;

    /// A snapshot of its counters.
    fn metrics(&self) -> SourceMetrics;

    /// Stops receiving and waits a bounded time for its threads. Payloads already delivered to
    /// the host stay delivered; nothing new arrives afterwards.
    fn stop(&mut self);

    /// The host completed a checkpoint that has seen everything before `positions`
    /// ([`Position::key`] → next offset). A replaying source in checkpointed mode makes them
    /// its restart point (Kafka: the group's committed offsets, at the latest when it stops).
    /// Sources that cannot replay ignore it.
    fn commit(&mut self, positions: &BTreeMap<String, u64>) {
        let _ = positions;
    }

    /// The counters of the HTTP listener this source serves, for sources that are one (the
    /// `http` ingest endpoint).
    fn http_stats(&self) -> Option<varpulis_http::HttpStats> {
        None
    }
}

#[cfg(any(feature = "mqtt", feature = "websocket", feature = "kafka"))]
/// Joins a connector thread that drops `done`'s sender when it returns, waiting at most until
/// `deadline`. A thread still busy then (an unresponsive broker) is left to finish by itself: it
/// touches nothing the host owns. Returns whether it was joined.
pub(crate) fn join_until(
    thread: std::thread::JoinHandle<()>,
    done: &crossbeam_channel::Receiver<()>,
    deadline: std::time::Instant,
) -> bool {
    let finished = matches!(
        done.recv_deadline(deadline),
        Err(crossbeam_channel::RecvTimeoutError::Disconnected)
    );
    if finished {
        // The thread has returned, so this does not block.
        let _ = thread.join();
    }
    finished
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Starts the source for one subscription, validating its parameters. Events go to `sender`.
///
/// Errors name the connector and the parameter, with did-you-mean suggestions, like
/// [`crate::open_sink`].
pub fn open_source(
    config: &SourceConfig,
    context: &SourceContext,
    sender: SourceSender,
) -> Result<Box<dyn Source>, ConfigError> {
    match config.connector.kind.as_str() {
        "file" => Ok(Box::new(crate::file::source::FileSource::start(
            config, context, sender,
        )?)),
        "http" => Ok(Box::new(crate::http::source::HttpSource::start(
            config, context, sender,
        )?)),
        #[cfg(feature = "mqtt")]
        "mqtt" => crate::mqtt::open_source(config, context, sender),
        #[cfg(feature = "kafka")]
        "kafka" => crate::kafka::open_source(config, context, sender),
        #[cfg(feature = "websocket")]
        "websocket" => crate::websocket::open_source(config, context, sender),
        other if crate::missing_feature(other).is_some() => Err(ConfigError::NotBuilt {
            connector: config.connector.name.clone(),
            role: "source",
            kind: other.to_string(),
            feature: crate::missing_feature(other).expect("checked by the guard"),
        }),
        other => Err(ConfigError::UnsupportedKind {
            connector: config.connector.name.clone(),
            role: "source",
            kind: other.to_string(),
            supported: SOURCE_KINDS.join(", "),
            suggestion: closest(other, SOURCE_KINDS.iter().copied()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u8) -> SourceEvent {
        SourceEvent::Message(SourceMessage {
            source: 0,
            payload: vec![n],
            place: String::new(),
            received_ms: 0,
            received: Instant::now(),
            position: None,
            trace_parent: None,
        })
    }

    #[test]
    fn an_invalid_traceparent_is_ignored_and_counted() {
        let counters = SourceCounters::default();
        assert_eq!(counters.trace_parent(None), None);
        let valid = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(counters.trace_parent(Some(valid)).is_some());
        assert_eq!(counters.trace_parent(Some(b"00-nope")), None);
        assert_eq!(counters.snapshot().invalid_trace_context, 1);
    }

    #[test]
    fn delivery_to_a_full_queue_gives_up_when_the_source_stops() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let sender = SourceSender::new(tx, Arc::default());
        let stop = Arc::new(AtomicBool::new(false));
        assert!(sender.deliver_until_stopped(message(1), &stop));
        let waiting = {
            let (sender, stop) = (sender.clone(), Arc::clone(&stop));
            std::thread::spawn(move || sender.deliver_until_stopped(message(2), &stop))
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(!waiting.is_finished(), "a full queue is back-pressure");
        let start = Instant::now();
        stop.store(true, Ordering::Release);
        assert!(!waiting.join().expect("no panic"), "not delivered");
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(rx.try_iter().count(), 1);
    }

    #[test]
    fn a_sender_on_a_full_queue_delivers_everything_in_order() {
        // The sender waits for a full queue to drain a quarter before it
        // offers more; nothing is lost or reordered on the way.
        let (tx, rx) = crossbeam_channel::bounded(8);
        let sender = SourceSender::new(tx, Arc::default());
        let sending = std::thread::spawn(move || (0..=200u8).all(|n| sender.deliver(message(n))));
        let mut got = Vec::new();
        while got.len() < 201 {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(SourceEvent::Message(m)) => got.extend(m.payload),
                Ok(_) => {}
                Err(e) => panic!("after {} payloads: {e}", got.len()),
            }
            if got.len() % 16 == 0 {
                // A slow host now and then, so the queue fills.
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        assert!(sending.join().expect("no panic"), "every payload delivered");
        assert_eq!(got, (0..=200u8).collect::<Vec<_>>());
    }

    #[test]
    fn a_sender_waiting_for_a_full_queue_to_drain_still_stops_and_sees_the_host_go() {
        // A queue larger than one, so the sender naps until it drains.
        let (tx, rx) = crossbeam_channel::bounded(8);
        let sender = SourceSender::new(tx, Arc::default());
        for n in 0..8 {
            assert!(sender.deliver(message(n)));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let waiting = {
            let (sender, stop) = (sender.clone(), Arc::clone(&stop));
            std::thread::spawn(move || sender.deliver_until_stopped(message(8), &stop))
        };
        stop.store(true, Ordering::Release);
        assert!(!waiting.join().expect("no panic"), "stopped, not delivered");
        assert_eq!(rx.len(), 8);
        // The host goes away while the queue is full: the sender gives up.
        drop(rx);
        let start = Instant::now();
        assert!(!sender.deliver(message(9)));
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn delivery_gives_up_when_the_host_stops_or_goes_away() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let host_stopping = Arc::new(AtomicBool::new(true));
        let sender = SourceSender::new(tx, host_stopping);
        assert!(!sender.deliver_until_stopped(message(1), &AtomicBool::new(false)));
        let (tx, rx2) = crossbeam_channel::bounded(1);
        drop(rx2);
        let gone = SourceSender::new(tx, Arc::default());
        assert!(!gone.deliver(message(1)));
        assert_eq!(rx.try_iter().count(), 0);
    }
}

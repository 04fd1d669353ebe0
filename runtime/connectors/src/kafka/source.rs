//! The `kafka` source: a consumer in a consumer group, delivering each record's payload.
//!
//! Parameters (besides the shared ones in [`super`]): `topic` (required, a string or an array),
//! `group_id` (default `varpulis-<Name>`), `start` or its alias `auto_offset_reset` (`earliest`,
//! the default, or `latest`: where a group with no committed offset begins), `session_timeout`
//! (a duration; librdkafka's default is 45 s, and joining a group can take most of it on some
//! brokers).
//!
//! **At least once.** One thread polls a librdkafka `BaseConsumer` with a short timeout. Each
//! record's payload is handed to the host through [`SourceSender`], waiting while the host's
//! queue is full (back-pressure: nothing is fetched meanwhile) until the host or this source
//! stops. Only once the host has taken the record is its offset *stored*; librdkafka commits stored offsets every five
//! seconds, when partitions are revoked, and [`Source::stop`] commits them once more before
//! closing the consumer. A crash can therefore replay the records delivered since the last
//! commit, but never skips one.
//!
//! **With the host's checkpoints** ([`SourceConfig::checkpointed`]) the checkpoint is the
//! truth, not the group's committed offsets: when the group assigns a partition (at start and
//! on every rebalance), the consumer starts it where this process has read it up to, else
//! where the restored checkpoint says ([`SourceConfig::resume`]), and only for partitions
//! neither knows at the group's committed offset. Offsets are committed from checkpoints
//! ([`Source::commit`]) for tools that watch the group's lag; a crash between a checkpoint
//! and that commit no longer replays or skips anything.
//!
//! **With per-partition state** (`state_per_partition: true`, [`SourceConfig::partitions`]) the
//! host keeps one state per partition and the rebalance callback asks it first
//! ([`Rebalance`]): a revoked partition is released only once the host has checkpointed it, an
//! assigned one starts at the offset the host restored (else the group's committed offset or
//! `start`). The callback waits a bounded time and not at all once the host or the source
//! stops. Without such a host the parameter is refused (runs without `--state-dir`, commands
//! other than `run` and `server`).
//!
//! Why `earliest` by default: a group that has never committed would otherwise start at the end
//! of the topic and silently miss whatever was produced before it joined (for instance while the
//! group was forming). `start: latest` opts out when only new events matter.
//!
//! **Lag.** A second thread probes the brokers every [`LAG_PROBE`] for the high watermark of
//! each assigned partition; the lag is the sum of the records between the next offset to hand
//! to the host and that watermark ([`SourceMetrics::lag`]). It keeps working while the reader
//! is blocked by back-pressure, which is when the figure matters.
//!
//! Empty payloads (tombstones) carry no event: they are skipped, stored as consumed and counted
//! in [`SourceMetrics::rejected`]; the first one is reported. Broker trouble is reported as a
//! non-fatal [`SourceEvent::Problem`] once when it starts and once when the connection is back
//! (librdkafka reconnects by itself); errors that retrying cannot fix (authentication,
//! authorization, TLS, librdkafka fatal errors) end the source with a fatal `Problem`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};

use super::{
    describe, is_refusal, millis, read_topics, rejected_config, ClientSettings, SINK_PARAMS,
};
use crate::config::{expand_env, ConnectorConfig, Params};
use crate::error::ConfigError;
use crate::source::{
    join_until, now_ms, PartitionHost, PartitionId, Position, Rebalance, Source, SourceConfig,
    SourceCounters, SourceEvent, SourceMessage, SourceMetrics, SourceSender,
};
use crate::trace_context::TRACEPARENT;

/// How long one poll waits for a record before the thread looks at the stop flag again.
const POLL: Duration = Duration::from_millis(100);

/// The longest a broker may hold a fetch request open waiting for records (librdkafka
/// `fetch.wait.max.ms`, 500 ms by default), unless `properties` sets it. Brokers that hold a
/// fetch for the whole time even while records arrive (tansu does) otherwise add up to that
/// much to every record's latency, and hand records over in bursts that then wait in the
/// host's queue; brokers that answer as soon as a record is there only see more fetch
/// requests while the topic is idle (one per broker every 10 ms).
const FETCH_WAIT_MS: &str = "10";

/// How often a source that reported broker trouble checks whether the brokers answer again
/// while no record arrives.
const HEALTH_CHECK: Duration = Duration::from_secs(1);

/// How often the lag is measured.
pub const LAG_PROBE: Duration = Duration::from_secs(2);

/// How long one watermark request may take.
const LAG_TIMEOUT: Duration = Duration::from_secs(1);

/// How long [`Source::stop`] waits for the final commit and the consumer to leave its group.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a group with no committed offset starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The oldest record the topic still holds (the default).
    Earliest,
    /// Only records produced after the group joined.
    Latest,
}

impl Start {
    fn as_str(self) -> &'static str {
        match self {
            Start::Earliest => "earliest",
            Start::Latest => "latest",
        }
    }
}

/// Settings of a kafka source, after validation and `${ENV}` expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSourceSettings {
    /// Brokers and extra librdkafka properties.
    pub client: ClientSettings,
    /// Topics subscribed to.
    pub topics: Vec<String>,
    /// The consumer group; its committed offsets are where a restart resumes.
    pub group_id: String,
    /// Where a group with no committed offset starts.
    pub start: Start,
    /// The group session timeout, when not librdkafka's default.
    pub session_timeout: Option<Duration>,
    /// One state per partition: the host is asked before a partition is taken or given up
    /// ([`SourceConfig::partitions`]).
    pub state_per_partition: bool,
}

impl KafkaSourceSettings {
    /// Reads and validates the parameters of a kafka connector used as a source.
    pub fn from_config(config: &ConnectorConfig) -> Result<Self, ConfigError> {
        let mut p = Params::for_role(config, "source");
        let client = ClientSettings::read(&mut p, config)?;
        let topics = read_topics(&mut p, config, true)?;
        let group_id = match p.string("group_id")? {
            Some(g) => expand_env(&config.name, "group_id", g)?,
            None => format!("varpulis-{}", config.name),
        };
        if group_id.trim().is_empty() {
            return Err(p.invalid("group_id", "the group id is empty"));
        }
        let start = read_start(&mut p, config)?;
        let session_timeout = if config.params.contains_key("session_timeout") {
            let d = p.duration("session_timeout", Duration::ZERO)?;
            if d < Duration::from_millis(1) || d > Duration::from_secs(3600) {
                return Err(p.invalid("session_timeout", "must be between 1ms and 1h"));
            }
            Some(d)
        } else {
            p.duration("session_timeout", Duration::ZERO)?;
            None
        };
        // Per-partition state (docs/OPERATIONS.md, "Scaling out"): the host keeps one state
        // per assigned partition; only a host that says so can run it ([`KafkaSource::start`]).
        let state_per_partition = p.bool("state_per_partition", false)?;
        p.tolerate(SINK_PARAMS);
        // Unknown parameters first: a misspelt `topic` is better reported as a typo.
        p.finish()?;
        if topics.is_empty() {
            return Err(ConfigError::MissingParam {
                connector: config.name.clone(),
                param: "topic",
                help: "write `topic: \"orders\"` on the connector or in `.from(...)`",
            });
        }
        Ok(KafkaSourceSettings {
            client,
            topics,
            group_id,
            start,
            session_timeout,
            state_per_partition,
        })
    }

    /// The librdkafka consumer configuration.
    fn client_config(&self, name: &str) -> rdkafka::ClientConfig {
        let mut c = self.client.client_config();
        if !self
            .client
            .properties
            .iter()
            .any(|(k, _)| k == "fetch.wait.max.ms")
        {
            c.set("fetch.wait.max.ms", FETCH_WAIT_MS);
        }
        c.set("client.id", format!("varpulis-{name}"))
            .set("group.id", &self.group_id)
            .set("auto.offset.reset", self.start.as_str())
            // At least once: an offset is stored only after the host took the record, and
            // librdkafka's auto-commit then commits only stored offsets.
            .set("enable.auto.offset.store", "false")
            .set("enable.auto.commit", "true");
        if let Some(d) = self.session_timeout {
            c.set("session.timeout.ms", millis(d));
        }
        c
    }
}

/// `start` or its alias `auto_offset_reset` (Kafka's own name for it).
fn read_start(p: &mut Params<'_>, config: &ConnectorConfig) -> Result<Start, ConfigError> {
    let start = p.string("start")?;
    let reset = p.string("auto_offset_reset")?;
    let (name, value) = match (start, reset) {
        (Some(_), Some(_)) => {
            return Err(p.invalid(
                "auto_offset_reset",
                "`start` already says where to begin; keep only one of them",
            ))
        }
        (Some(v), None) => ("start", v),
        (None, Some(v)) => ("auto_offset_reset", v),
        (None, None) => return Ok(Start::Earliest),
    };
    match value.to_ascii_lowercase().as_str() {
        "earliest" => Ok(Start::Earliest),
        "latest" => Ok(Start::Latest),
        other => Err(ConfigError::InvalidValue {
            connector: config.name.clone(),
            param: name.to_string(),
            reason: format!("`{other}` is not supported; use `earliest` or `latest`"),
        }),
    }
}

/// Where each partition (`topic/partition`) is to be read from next: the restored
/// checkpoint's positions, moved forward as records reach the host.
type ReadPositions = Arc<Mutex<BTreeMap<String, u64>>>;

/// The consumer the reader owns; the lag probe only borrows it while it is alive.
type Shared = Arc<BaseConsumer<Assign>>;

/// The consumer's callbacks: with checkpoints, partitions are assigned at [`ReadPositions`]
/// instead of the group's committed offsets; with per-partition state, the host is asked
/// ([`Rebalance`]) before a partition is taken or given up.
struct Assign {
    /// `None` without checkpoints: librdkafka's default (committed offsets).
    positions: Option<ReadPositions>,
    /// The host keeping one state per partition, if it does.
    partitions: Option<PartitionAsk>,
}

/// What the rebalance callback needs to ask a host that keeps state per partition.
struct PartitionAsk {
    host: PartitionHost,
    /// This source's stop flag.
    stop: Arc<AtomicBool>,
    /// For the host's stop flag and for reporting a failed assignment.
    sender: SourceSender,
    id: usize,
    place: String,
    counters: Arc<SourceCounters>,
}

impl PartitionAsk {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire) || self.sender.stopping()
    }

    /// Waits for the host's answer, looking at the stop flags meanwhile: `None` when the run
    /// or this source stops, or the host did not answer in time (a host that is stopping
    /// does not answer; the callback must not hang on it).
    fn wait<T>(&self, reply: &Receiver<T>) -> Option<T> {
        let deadline = Instant::now() + self.host.timeout;
        loop {
            if self.stopping() {
                return None;
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let step = (deadline - now).min(Duration::from_millis(50));
            match reply.recv_timeout(step) {
                Ok(answer) => return Some(answer),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Asks the host to restore `partitions`: per partition, the offset to start at; `Err`
    /// when it refused or did not answer (the partitions must not be read then).
    fn assigned(
        &self,
        partitions: Vec<PartitionId>,
    ) -> Result<BTreeMap<PartitionId, Option<u64>>, String> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        let asked = self
            .host
            .tx
            .send(Rebalance::Assigned { partitions, reply })
            .is_ok();
        match asked.then(|| self.wait(&answer)).flatten() {
            Some(result) => result,
            None if self.stopping() => Err("the run is stopping".to_string()),
            None => Err(format!(
                "the run did not restore the assigned partitions within {}s",
                self.host.timeout.as_secs()
            )),
        }
    }

    /// Asks the host to checkpoint and drop `partitions`; a host that does not answer in time
    /// is counted as an error (its next checkpoint of them is fenced once another member
    /// claims them).
    fn revoked(&self, partitions: Vec<PartitionId>) {
        // A stopping run has taken its last checkpoint before it stopped this source.
        if self.stopping() {
            return;
        }
        let (reply, answer) = crossbeam_channel::bounded(1);
        let asked = self
            .host
            .tx
            .send(Rebalance::Revoked { partitions, reply })
            .is_ok();
        if (!asked || self.wait(&answer).is_none()) && !self.stopping() {
            self.counters.error(format!(
                "{}: the run did not checkpoint the revoked partitions within {}s",
                self.place,
                self.host.timeout.as_secs()
            ));
        }
    }

    /// A failed assignment stops the source: reading partitions whose state is not there
    /// would give wrong results.
    fn fail(&self, why: &str) {
        if self.stopping() {
            return;
        }
        let message = format!("{}: cannot take the assigned partitions: {why}", self.place);
        self.counters.error(message.clone());
        self.stop.store(true, Ordering::Release);
        // The stop flag is set: deliver without waiting on it.
        let _ = self.sender.try_deliver(SourceEvent::Problem {
            source: self.id,
            message,
            fatal: true,
        });
    }
}

fn partition_ids(tpl: &TopicPartitionList) -> Vec<PartitionId> {
    tpl.elements()
        .iter()
        .map(|elem| PartitionId {
            topic: elem.topic().to_string(),
            partition: elem.partition(),
        })
        .collect()
}

impl ClientContext for Assign {}

impl ConsumerContext for Assign {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        // Failures here cannot be returned: librdkafka reports them as consumer errors at the
        // next poll, which the reader counts.
        if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            // Revocation: the host checkpoints the partitions while they are still ours.
            if let Some(ask) = &self.partitions {
                ask.revoked(partition_ids(tpl));
            }
            let _ = if cooperative && err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
                consumer.incremental_unassign(tpl)
            } else {
                consumer.unassign()
            };
            return;
        }
        if let Some(ask) = &self.partitions {
            match ask.assigned(partition_ids(tpl)) {
                Ok(starts) => {
                    for (id, next) in starts {
                        let Some(next) = next.and_then(|n| i64::try_from(n).ok()) else {
                            continue;
                        };
                        // Only fails for a partition not in the list, which the host
                        // does not invent.
                        let _ =
                            tpl.set_partition_offset(&id.topic, id.partition, Offset::Offset(next));
                    }
                }
                Err(why) => {
                    ask.fail(&why);
                    return;
                }
            }
        } else if let Some(positions) = &self.positions {
            let known: Vec<(String, i32, i64)> = {
                let positions = positions.lock().unwrap_or_else(|e| e.into_inner());
                tpl.elements()
                    .iter()
                    .filter_map(|elem| {
                        let key = format!("{}/{}", elem.topic(), elem.partition());
                        let next = i64::try_from(*positions.get(&key)?).ok()?;
                        Some((elem.topic().to_string(), elem.partition(), next))
                    })
                    .collect()
            };
            for (topic, partition, next) in known {
                // Only fails for a partition not in the list, which cannot happen here.
                let _ = tpl.set_partition_offset(&topic, partition, Offset::Offset(next));
            }
        }
        let _ = if cooperative {
            consumer.incremental_assign(tpl)
        } else {
            consumer.assign(tpl)
        };
    }
}

/// A running kafka source.
pub struct KafkaSource {
    name: String,
    description: String,
    /// Positions of the host's latest checkpoint, for the consumer thread to commit.
    to_commit: Arc<Mutex<Option<BTreeMap<String, u64>>>>,
    stop: Arc<AtomicBool>,
    counters: Arc<SourceCounters>,
    /// Disconnected when the consumer thread has finished.
    done: Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl KafkaSource {
    /// Validates the parameters, creates the consumer, subscribes, and starts the consumer
    /// thread. The brokers are not contacted yet: an unreachable broker is reported later as a
    /// [`SourceEvent::Problem`], not as a configuration error.
    pub fn start(config: &SourceConfig, sender: SourceSender) -> Result<KafkaSource, ConfigError> {
        let c = &config.connector;
        let settings = KafkaSourceSettings::from_config(c)?;
        let host = match (&config.partitions, settings.state_per_partition) {
            (Some(host), true) => Some(host.clone()),
            (None, false) => None,
            (None, true) => {
                return Err(ConfigError::InvalidValue {
                    connector: c.name.clone(),
                    param: "state_per_partition".into(),
                    reason: "per-partition state runs only in `varpulis run` with --state-dir \
                             and in server pipelines (not in other commands); see \
                             docs/OPERATIONS.md, \"Scaling out\""
                        .into(),
                })
            }
            (Some(_), false) => {
                return Err(ConfigError::InvalidValue {
                    connector: c.name.clone(),
                    param: "state_per_partition".into(),
                    reason: "the run keeps state per partition but the connector does not ask \
                             for it"
                        .into(),
                })
            }
        };
        // With per-partition state the host answers where each assigned partition starts.
        let positions: Option<ReadPositions> = (config.checkpointed && host.is_none())
            .then(|| Arc::new(Mutex::new(config.resume.clone())));
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(SourceCounters::default());
        let place = format!(
            "kafka {} topic {}",
            settings.client.brokers,
            settings.topics.join(",")
        );
        let partitions = host.map(|host| PartitionAsk {
            host,
            stop: Arc::clone(&stop),
            sender: sender.clone(),
            id: config.id,
            place: place.clone(),
            counters: Arc::clone(&counters),
        });
        let consumer: BaseConsumer<Assign> = settings
            .client_config(&c.name)
            .create_with_context(Assign {
                positions: positions.clone(),
                partitions,
            })
            .map_err(|e| rejected_config(&c.name, &settings.client, e))?;
        let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| ConfigError::InvalidValue {
                connector: c.name.clone(),
                param: "topic".into(),
                reason: format!("cannot subscribe: {e}"),
            })?;
        let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
        let to_commit = Arc::new(Mutex::new(None));
        let description = format!("{place} group {}", settings.group_id);
        let delivered: ReadPositions = Arc::new(Mutex::new(BTreeMap::new()));
        let consumer: Shared = Arc::new(consumer);
        let probe = LagProbe {
            consumer: Arc::downgrade(&consumer),
            delivered: Arc::clone(&delivered),
            stop: Arc::clone(&stop),
            counters: Arc::clone(&counters),
        };
        let reader = Reader {
            id: config.id,
            place,
            first_topic: settings.topics.first().cloned().unwrap_or_default(),
            stop: Arc::clone(&stop),
            counters: Arc::clone(&counters),
            sender,
            trouble: None,
            skipped_reported: false,
            checkpointed: config.checkpointed,
            positions,
            delivered,
            to_commit: Arc::clone(&to_commit),
            committed: None,
            _done: done_tx,
        };
        let thread = std::thread::Builder::new()
            .name(format!("source-{}", c.name))
            .spawn(move || reader.run(consumer))
            .map_err(|source| ConfigError::Thread {
                connector: c.name.clone(),
                source,
            })?;
        // Without the probe the source still works; only the lag stays unknown.
        if let Err(e) = std::thread::Builder::new()
            .name(format!("lag-{}", c.name))
            .spawn(move || probe.run())
        {
            counters.error(format!("{}: cannot start the lag probe: {e}", c.name));
        }
        Ok(KafkaSource {
            name: c.name.clone(),
            description,
            to_commit,
            stop,
            counters,
            done: done_rx,
            thread: Some(thread),
        })
    }
}

/// The consumer thread.
struct Reader {
    id: usize,
    /// `kafka <brokers> topic <topics>`, the start of every problem message.
    place: String,
    /// The topic whose metadata tells whether the brokers answer again.
    first_topic: String,
    stop: Arc<AtomicBool>,
    counters: Arc<SourceCounters>,
    sender: SourceSender,
    /// Since when the brokers have been failing (reported once), if they are.
    trouble: Option<Instant>,
    skipped_reported: bool,
    /// Offsets follow the host's checkpoints instead of deliveries.
    checkpointed: bool,
    /// With checkpoints: where each partition is to be read from next (shared with the
    /// rebalance callback).
    positions: Option<ReadPositions>,
    /// Per partition, the next offset to hand to the host (for the lag probe).
    delivered: ReadPositions,
    /// The latest checkpoint's positions not yet committed (set by [`Source::commit`]).
    to_commit: Arc<Mutex<Option<BTreeMap<String, u64>>>>,
    /// The positions most recently committed.
    committed: Option<BTreeMap<String, u64>>,
    /// Dropped when `run` returns (or unwinds), which tells `stop` the thread is done.
    _done: crossbeam_channel::Sender<()>,
}

/// What the loop does after handling one poll result.
enum Next {
    Continue,
    Stop,
}

impl Reader {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire) || self.sender.stopping()
    }

    fn run(mut self, consumer: Shared) {
        let mut last_check = Instant::now();
        while !self.stopped() {
            self.commit_checkpoint(&consumer, CommitMode::Async);
            let next = match consumer.poll(POLL) {
                None => {
                    if self.trouble.is_some() && last_check.elapsed() >= HEALTH_CHECK {
                        last_check = Instant::now();
                        // Metadata needs a broker round trip, so success means the brokers
                        // answer again even when no record is waiting.
                        if consumer
                            .fetch_metadata(Some(&self.first_topic), Duration::from_millis(500))
                            .is_ok()
                        {
                            self.recovered();
                        }
                    }
                    Next::Continue
                }
                Some(Ok(message)) => self.handle(&consumer, &message),
                Some(Err(e)) => self.failed(&consumer, e),
            };
            if matches!(next, Next::Stop) {
                break;
            }
        }
        if self.checkpointed {
            // The last checkpoint's positions, synchronously, before leaving the group.
            self.commit_checkpoint(&consumer, CommitMode::Sync);
            drop(consumer);
            return;
        }
        // Commit what was stored since the last auto-commit. "No offset stored" only means
        // there was nothing new; other failures are covered by at-least-once (the records come
        // again after a restart).
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            if e.rdkafka_error_code() != Some(RDKafkaErrorCode::NoOffset) {
                self.counters
                    .error(format!("{}: final offset commit failed: {e}", self.place));
            }
        }
        // Dropping the consumer closes it: it leaves the group so the partitions move on.
        drop(consumer);
    }

    /// Commits the positions of the host's latest checkpoint, if any came since the last
    /// commit. A failure is counted; the next checkpoint (or a replay) covers it.
    fn commit_checkpoint(&mut self, consumer: &Shared, mode: CommitMode) {
        let fresh = self
            .to_commit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let positions = match (fresh, mode) {
            (Some(p), _) => {
                self.committed = Some(p.clone());
                p
            }
            // The last commit before leaving the group repeats the latest checkpoint
            // synchronously: an asynchronous one may still be in flight and die with the
            // consumer.
            (None, CommitMode::Sync) => match self.committed.clone() {
                Some(p) => p,
                None => return,
            },
            (None, _) => return,
        };
        let mut list = TopicPartitionList::new();
        for (key, next) in &positions {
            let Some((topic, partition)) = key.rsplit_once('/') else {
                continue;
            };
            let (Ok(partition), Ok(next)) = (partition.parse::<i32>(), i64::try_from(*next)) else {
                continue;
            };
            if list
                .add_partition_offset(topic, partition, Offset::Offset(next))
                .is_err()
            {
                continue;
            }
        }
        if list.count() == 0 {
            return;
        }
        if let Err(e) = consumer.commit(&list, mode) {
            self.counters.error(format!(
                "{}: committing the checkpoint's offsets failed: {e}",
                self.place
            ));
        }
    }

    fn handle(&mut self, consumer: &Shared, message: &BorrowedMessage<'_>) -> Next {
        self.recovered();
        let place = format!(
            "kafka topic {} partition {} offset {}",
            message.topic(),
            message.partition(),
            message.offset()
        );
        match message.payload() {
            Some(payload) if !payload.is_empty() => {
                let offset = u64::try_from(message.offset()).unwrap_or(0);
                let trace_parent = self.counters.trace_parent(traceparent_header(message));
                let delivered = self.deliver(SourceEvent::Message(SourceMessage {
                    source: self.id,
                    payload: payload.to_vec(),
                    place: place.clone(),
                    received_ms: now_ms(),
                    received: std::time::Instant::now(),
                    position: Some(Position {
                        key: format!("{}/{}", message.topic(), message.partition()),
                        start: offset,
                        end: offset + 1,
                    }),
                    trace_parent,
                }));
                if !delivered {
                    // The host is stopping: the offset stays unstored, so the record is read
                    // again next time.
                    return Next::Stop;
                }
                self.read_up_to(message);
                self.counters.received(payload.len());
            }
            _ => {
                self.read_up_to(message);
                self.counters.rejected(1);
                if !self.skipped_reported {
                    self.skipped_reported = true;
                    let problem = format!(
                        "{place}: skipping an empty message (a tombstone carries no event); \
                         further ones are only counted"
                    );
                    if !self.problem(problem, false) {
                        return Next::Stop;
                    }
                }
            }
        }
        if self.checkpointed {
            // The host's checkpoints decide what is committed (`Source::commit`).
            return Next::Continue;
        }
        if let Err(e) = consumer.store_offset_from_message(message) {
            // The partition was revoked meanwhile: its new owner reads the record again.
            self.counters
                .error(format!("{place}: storing the offset failed: {e}"));
        }
        Next::Continue
    }

    /// The host has `message`: a later assignment of its partition starts after it.
    fn read_up_to(&self, message: &BorrowedMessage<'_>) {
        let key = format!("{}/{}", message.topic(), message.partition());
        let next = u64::try_from(message.offset()).unwrap_or(0) + 1;
        if let Some(positions) = &self.positions {
            positions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key.clone(), next);
        }
        self.delivered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, next);
    }

    fn failed(&mut self, consumer: &Shared, e: KafkaError) -> Next {
        let code = e.rdkafka_error_code();
        if code == Some(RDKafkaErrorCode::PartitionEOF) {
            return Next::Continue;
        }
        if is_fatal(&e) {
            let detail = match consumer.client().fatal_error() {
                Some((_, reason)) => format!("{} ({reason})", describe(&e)),
                None => describe(&e),
            };
            let message = format!("{}: {detail}; the source stopped", self.place);
            self.counters.error(message.clone());
            self.problem(message, true);
            return Next::Stop;
        }
        let message = format!("{}: {}", self.place, describe(&e));
        self.counters.error(message.clone());
        if self.trouble.is_none() {
            self.trouble = Some(Instant::now());
            let report = format!("{message}; retrying (further errors are only counted)");
            if !self.problem(report, false) {
                return Next::Stop;
            }
        }
        Next::Continue
    }

    /// Called when the brokers answered: reports the recovery once after trouble.
    fn recovered(&mut self) {
        if let Some(since) = self.trouble.take() {
            self.counters.reconnected();
            let message = format!(
                "{}: brokers answer again after {}s",
                self.place,
                since.elapsed().as_secs()
            );
            self.problem(message, false);
        }
    }

    /// Reports a problem; `false` when the host or this source is stopping.
    fn problem(&self, message: String, fatal: bool) -> bool {
        self.deliver(SourceEvent::Problem {
            source: self.id,
            message,
            fatal,
        })
    }

    /// Waits while the host's queue is full, until the host or this source stops, so
    /// [`Source::stop`] never waits on a host that keeps running but stopped reading.
    fn deliver(&self, event: SourceEvent) -> bool {
        self.sender.deliver_until_stopped(event, &self.stop)
    }
}

/// Errors that retrying cannot fix: the source stops on them.
/// The value of a record's `traceparent` header (the last one, if repeated), if any.
/// Measures the lag of the partitions assigned to the reader's consumer.
struct LagProbe {
    consumer: std::sync::Weak<BaseConsumer<Assign>>,
    delivered: ReadPositions,
    stop: Arc<AtomicBool>,
    counters: Arc<SourceCounters>,
}

impl LagProbe {
    fn run(self) {
        let step = Duration::from_millis(100);
        let mut next_probe = Instant::now() + LAG_PROBE;
        loop {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            if Instant::now() < next_probe {
                std::thread::sleep(step);
                continue;
            }
            next_probe = Instant::now() + LAG_PROBE;
            // The reader has finished once the consumer is gone.
            let Some(consumer) = self.consumer.upgrade() else {
                return;
            };
            let lag = self.probe(&consumer);
            drop(consumer);
            self.counters.set_lag(lag);
        }
    }

    /// The summed lag of the assigned partitions whose position is known; `None` when the
    /// consumer has no partition yet or the brokers do not answer.
    fn probe(&self, consumer: &BaseConsumer<Assign>) -> Option<u64> {
        let assigned = consumer.assignment().ok()?;
        if assigned.count() == 0 {
            return None;
        }
        // Where the consumer is for partitions nothing was handed over from yet.
        let fetching = consumer.position().ok();
        let delivered = self
            .delivered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut lag = 0u64;
        for elem in assigned.elements() {
            let key = format!("{}/{}", elem.topic(), elem.partition());
            let next = match delivered.get(&key) {
                Some(n) => i64::try_from(*n).ok(),
                None => fetching
                    .as_ref()
                    .and_then(|f| f.find_partition(elem.topic(), elem.partition()))
                    .and_then(|p| match p.offset() {
                        Offset::Offset(n) => Some(n),
                        _ => None,
                    }),
            };
            if self.stop.load(Ordering::Acquire) {
                return None;
            }
            // Brokers that do not answer make the lag unknown, not stale; one timeout is
            // enough to tell.
            let (low, high) = consumer
                .fetch_watermarks(elem.topic(), elem.partition(), LAG_TIMEOUT)
                .ok()?;
            // Nothing read yet and no position: everything the partition holds is waiting.
            let next = next.unwrap_or(low).max(low);
            lag = lag.saturating_add(u64::try_from(high.saturating_sub(next)).unwrap_or(0));
        }
        Some(lag)
    }
}

fn traceparent_header<'a>(message: &'a BorrowedMessage<'_>) -> Option<&'a [u8]> {
    let headers = message.headers()?;
    headers
        .iter()
        .filter(|h| h.key.eq_ignore_ascii_case(TRACEPARENT))
        .last()
        .and_then(|h| h.value)
}

fn is_fatal(e: &KafkaError) -> bool {
    match e {
        KafkaError::MessageConsumptionFatal(_) => true,
        KafkaError::MessageConsumption(code) | KafkaError::Global(code) => {
            is_refusal(*code) || *code == RDKafkaErrorCode::InvalidGroupId
        }
        _ => false,
    }
}

impl Source for KafkaSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn metrics(&self) -> SourceMetrics {
        self.counters.snapshot()
    }

    fn commit(&mut self, positions: &BTreeMap<String, u64>) {
        // The consumer thread commits it at its next poll, or before it leaves the group.
        *self.to_commit.lock().unwrap_or_else(|e| e.into_inner()) = Some(positions.clone());
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let Some(thread) = self.thread.take() else {
            return;
        };
        // The thread sees the flag within one poll; the final commit and leaving the group
        // need the brokers, so wait for them only so long. A thread still busy then is left to
        // finish by itself (it touches nothing the host owns).
        join_until(thread, &self.done, Instant::now() + STOP_TIMEOUT);
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConfigValue;

    fn check(params: &[(&str, ConfigValue)]) -> Result<KafkaSourceSettings, ConfigError> {
        let config = params.iter().fold(
            ConnectorConfig::new("Orders", "kafka")
                .param("brokers", ConfigValue::Str("127.0.0.1:9092".into())),
            |c, (k, v)| c.param(*k, v.clone()),
        );
        KafkaSourceSettings::from_config(&config)
    }

    fn topic() -> (&'static str, ConfigValue) {
        ("topic", ConfigValue::Str("orders".into()))
    }

    #[test]
    fn defaults() {
        let s = check(&[topic()]).expect("brokers and topic are enough");
        assert_eq!(s.topics, vec!["orders".to_string()]);
        assert_eq!(s.group_id, "varpulis-Orders");
        assert_eq!(s.start, Start::Earliest);
        assert_eq!(s.session_timeout, None);
    }

    #[test]
    fn a_fetch_is_held_10ms_at_most_unless_properties_say_otherwise() {
        let s = check(&[topic()]).expect("valid");
        let c = s.client_config("Orders");
        assert_eq!(c.get("fetch.wait.max.ms"), Some("10"));
        let s = check(&[
            topic(),
            (
                "properties",
                ConfigValue::Array(vec![ConfigValue::Str("fetch.wait.max.ms=250".into())]),
            ),
        ])
        .expect("valid");
        assert_eq!(
            s.client_config("Orders").get("fetch.wait.max.ms"),
            Some("250")
        );
    }

    #[test]
    fn topic_array_start_alias_and_session_timeout() {
        let s = check(&[
            (
                "topic",
                ConfigValue::Array(vec![
                    ConfigValue::Str("a".into()),
                    ConfigValue::Str("b".into()),
                ]),
            ),
            ("auto_offset_reset", ConfigValue::Ident("latest".into())),
            ("session_timeout", ConfigValue::Duration(6_000_000_000)),
            ("group_id", ConfigValue::Str("fraud".into())),
        ])
        .expect("valid");
        assert_eq!(s.topics, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(s.start, Start::Latest);
        assert_eq!(s.session_timeout, Some(Duration::from_secs(6)));
        assert_eq!(s.group_id, "fraud");
    }

    #[test]
    fn state_per_partition_needs_a_host_that_keeps_it() {
        let off = ("state_per_partition", ConfigValue::Bool(false));
        assert!(
            !check(&[topic(), off])
                .expect("the default")
                .state_per_partition
        );
        let on = ("state_per_partition", ConfigValue::Bool(true));
        assert!(
            check(&[topic(), on.clone()])
                .expect("valid")
                .state_per_partition
        );
        let err = check(&[topic(), ("state_per_partition", ConfigValue::Int(1))])
            .expect_err("not a bool");
        assert!(err.to_string().contains("`true` or `false`"), "{err}");

        // A host that does not keep state per partition (a server pipeline, or a run
        // without --state-dir) is refused before any broker is contacted.
        let connector = ConnectorConfig::new("Orders", "kafka")
            .param("brokers", ConfigValue::Str("127.0.0.1:1".into()))
            .param(topic().0, topic().1)
            .param(on.0, on.1);
        let (tx, _rx) = crossbeam_channel::bounded(1);
        let sender = SourceSender::new(tx, Arc::new(AtomicBool::new(false)));
        let config = SourceConfig::new(connector.clone(), 0);
        let Err(err) = KafkaSource::start(&config, sender.clone()) else {
            panic!("started without a partition host");
        };
        let text = err.to_string();
        assert!(
            text.contains("parameter `state_per_partition`")
                && text.contains("--state-dir")
                && text.contains("Scaling out"),
            "{text}"
        );
        // And a host that keeps state per partition for a connector that did not ask.
        let (host, _requests) = crossbeam_channel::bounded(1);
        let mut config = SourceConfig::new(
            connector.param("state_per_partition", ConfigValue::Bool(false)),
            0,
        );
        config.partitions = Some(PartitionHost {
            tx: host,
            timeout: Duration::from_secs(1),
        });
        let Err(err) = KafkaSource::start(&config, sender) else {
            panic!("started a partitioned run on a plain source");
        };
        assert!(err.to_string().contains("does not ask"), "{err}");
    }

    #[test]
    fn missing_topic_and_bad_start_are_explained() {
        let err = check(&[]).expect_err("topic is required");
        assert!(
            err.to_string()
                .contains("missing required parameter `topic`"),
            "{err}"
        );
        let err =
            check(&[topic(), ("start", ConfigValue::Str("middle".into()))]).expect_err("bad start");
        assert_eq!(
            err.to_string(),
            "connector `Orders`: parameter `start`: `middle` is not supported; use `earliest` or `latest`"
        );
    }

    #[test]
    fn sink_parameters_are_tolerated_but_typos_are_not() {
        check(&[topic(), ("linger_ms", ConfigValue::Int(5))]).expect("sink param tolerated");
        let err = check(&[topic(), ("group", ConfigValue::Str("g".into()))]).expect_err("typo");
        assert_eq!(
            err.to_string(),
            "connector `Orders`: unknown parameter `group` for a kafka source; did you mean `group_id`?"
        );
    }
}

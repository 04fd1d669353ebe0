//! The `kafka` sink: a librdkafka producer whose delivery reports feed the counters and the
//! dead-letter file.
//!
//! Parameters (besides the shared ones in [`super`]): `topic` (the default topic; a `.to(Conn,
//! topic: ...)` site overrides it per record), `batch_size` (records per produce batch,
//! librdkafka `batch.num.messages`), `linger_ms` (an integer of milliseconds or a duration: how
//! long records wait to fill a batch), `compression_type` (`none`, `gzip`, `snappy`, `lz4` or
//! `zstd`), `acks` (`all`, `1` or `0`; default `all`),
//! `exactly_once` (idempotent producer, see below), `dead_letter` (default
//! `<Name>.dead.jsonl`), `queue_capacity` (records librdkafka may hold undelivered, default
//! 100 000), `close_timeout` (default `10s`).
//!
//! [`Sink::send`] never blocks: it hands the record to librdkafka's queue and returns. A thread
//! polls the producer for delivery reports:
//!
//! - success → counted in [`SinkMetrics::sent`] and [`SinkMetrics::bytes`];
//! - failure after librdkafka's own retries (`message.timeout.ms`, five minutes by default) →
//!   dead-lettered with `_error`, counted in [`SinkMetrics::failed`];
//! - librdkafka's queue full → dead-lettered at once, counted in
//!   [`SinkMetrics::dropped_queue_full`], and `send` returns [`SinkError::QueueFull`];
//! - [`Sink::close`] waits up to `close_timeout`, then purges what is left and dead-letters it.
//!
//! Every record accepted by `send` stays in a pending map until its report arrives, so whatever
//! librdkafka never reports on is still dead-lettered at close: no record is lost silently.
//!
//! [`Sink::barrier`] waits, at most to the deadline, until librdkafka has a delivery report for
//! every record sent before it and each report has been handled (counted, or dead-lettered
//! and the dead-letter file synced). A record the host identified ([`crate::RecordId`])
//! carries the header `idempotency-key: <pipeline>/<connector>:<seq>`, the same when the
//! record is produced again after a crash and a restart from a checkpoint, so consumers can
//! deduplicate (at least once). A record caused by an event that came with a W3C trace context
//! ([`Record::trace_parent`]) carries a `traceparent` header in the same trace.
//!
//! `exactly_once: true` turns on librdkafka's idempotent producer (`enable.idempotence`): the
//! broker discards duplicates caused by the producer's internal retries and keeps each
//! partition in the order of `send`. On its own it does not make a whole pipeline
//! exactly-once: records produced again after a crash and restart are new records to Kafka.
//!
//! **`transactional: true`** does, for consumers that read with `isolation.level =
//! read_committed`. The sink produces inside a Kafka transaction whose `transactional.id` is
//! `varpulis-<pipeline>/<connector>` (stable across restarts of a state directory), created on
//! the first record. Each checkpoint is a two-phase commit:
//!
//! 1. [`Sink::barrier`] waits for every delivery report of the open transaction and records,
//!    inside the transaction, the sink's progress (the sequence number after its last record)
//!    as the committed offset of partition 0 of `topic` for the consumer group named like the
//!    transactional id. Nothing is visible yet; the mark of the checkpoint holds that number.
//! 2. The host writes its checkpoint; only once it is durable does [`Sink::committed`] commit
//!    the transaction, publishing the records and the progress together.
//!
//! A crash before step 2 leaves the transaction open: the restarted producer's
//! `init_transactions` aborts it, and [`Sink::restore`] compares the progress Kafka has with
//! the checkpoint's mark. When Kafka has less, the checkpoint's records were never published,
//! so restore fails with [`SinkError::NotCommitted`] and the host restores the checkpoint
//! before it, replaying everything after that one. Records whose sequence number Kafka already
//! counts as published (a restart from a checkpoint older than the last commit) are skipped.
//! A record whose delivery fails inside a transaction fails the barrier: the transaction is
//! aborted and its records are produced again in a new one. Without checkpoints (no barrier
//! was ever passed) [`Sink::close`] commits what is open; with them it aborts it, since a
//! restart replays it from the last checkpoint.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext, PurgeConfig};
use rdkafka::{Offset, TopicPartitionList};

use super::{
    check_topic, describe, is_refusal, millis, read_topics, rejected_config, ClientSettings,
    SOURCE_PARAMS,
};
use crate::config::{ConfigValue, ConnectorConfig, Params};
use crate::dead_letter::DeadLetter;
use crate::error::{ConfigError, DeliveryFailure, SinkError};
use crate::metrics::Counters;
use crate::trace_context::TRACEPARENT;
use crate::{Record, Sink, SinkContext, SinkMark, SinkMetrics};

/// The message header that carries a record's idempotency key.
pub const IDEMPOTENCY_HEADER: &str = crate::IDEMPOTENCY_KEY;

/// How long the polling thread waits for delivery reports before looking at its stop flag.
const POLL: Duration = Duration::from_millis(100);

/// After `close_timeout`, how long `close` waits for the reports of the records it purged.
const PURGE_GRACE: Duration = Duration::from_secs(1);

/// Compression codecs librdkafka knows; which ones work depends on how it was built.
const CODECS: &[&str] = &["none", "gzip", "snappy", "lz4", "zstd"];

/// How produced batches are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// No compression (the default).
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard (only when librdkafka was built with it).
    Zstd,
}

impl Compression {
    fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// How many broker acknowledgements a produce request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// All in-sync replicas (`all` or `-1`, the default).
    All,
    /// The partition leader only (`1`).
    Leader,
    /// None: fire and forget (`0`); a delivery report then says nothing about the broker.
    None,
}

impl Acks {
    fn as_str(self) -> &'static str {
        match self {
            Acks::All => "all",
            Acks::Leader => "1",
            Acks::None => "0",
        }
    }
}

/// Settings of a kafka sink, after validation and `${ENV}` expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSinkSettings {
    /// Brokers and extra librdkafka properties.
    pub client: ClientSettings,
    /// The topic of records whose `.to(...)` site names none.
    pub topic: Option<String>,
    /// Records per produce batch, when not librdkafka's default (10 000).
    pub batch_size: Option<u64>,
    /// How long records wait to fill a batch, when not librdkafka's default (5 ms).
    pub linger: Option<Duration>,
    /// Batch compression.
    pub compression: Compression,
    /// Acknowledgements waited for.
    pub acks: Acks,
    /// Idempotent producer: no duplicates from retries, order kept per partition.
    pub exactly_once: bool,
    /// Transactions committed with the host's checkpoints: each record published once.
    pub transactional: bool,
    /// Where undeliverable records are written.
    pub dead_letter: PathBuf,
    /// Records librdkafka may hold undelivered before `send` dead-letters new ones.
    pub queue_capacity: usize,
    /// How long `close` (and `flush`) wait for delivery reports.
    pub close_timeout: Duration,
}

impl KafkaSinkSettings {
    /// Reads and validates the parameters of a kafka connector used as a sink.
    pub fn from_config(config: &ConnectorConfig, base_dir: &Path) -> Result<Self, ConfigError> {
        let name = config.name.as_str();
        let mut p = Params::for_role(config, "sink");
        let client = ClientSettings::read(&mut p, config)?;
        let topic = read_topics(&mut p, config, false)?.into_iter().next();
        let batch_size = p.optional_count("batch_size", 1)?;
        if let Some(n) = batch_size.filter(|n| *n > 1_000_000) {
            return Err(p.invalid("batch_size", format!("{n} is more than 1000000")));
        }
        let linger = match config.params.get("linger_ms") {
            None => {
                p.tolerate(&["linger_ms"]);
                None
            }
            Some(ConfigValue::Int(_)) => Some(Duration::from_millis(p.count("linger_ms", 0, 0)?)),
            Some(_) => Some(p.duration("linger_ms", Duration::ZERO)?),
        };
        if linger.is_some_and(|d| d > Duration::from_secs(900)) {
            return Err(p.invalid("linger_ms", "must be at most 900000 (15 minutes)"));
        }
        let compression = read_compression(&mut p)?;
        let acks = read_acks(&mut p, config)?;
        let exactly_once = p.bool("exactly_once", false)?;
        let transactional = p.bool("transactional", false)?;
        if transactional && topic.is_none() {
            return Err(p.invalid(
                "transactional",
                "a transactional sink records its progress with partition 0 of its `topic`: set `topic` on the connector",
            ));
        }
        if transactional && acks != Acks::All {
            return Err(p.invalid(
                "acks",
                "`transactional: true` needs every replica's acknowledgement; remove `acks` or set `acks: \"all\"`",
            ));
        }
        if exactly_once && acks != Acks::All {
            return Err(p.invalid(
                "acks",
                "`exactly_once: true` needs every replica's acknowledgement; remove `acks` or set `acks: \"all\"`",
            ));
        }
        let dead_letter = p.path("dead_letter", || format!("{name}.dead.jsonl"), base_dir)?;
        let queue_capacity = p.count("queue_capacity", 100_000, 1)?;
        let queue_capacity = usize::try_from(queue_capacity)
            .ok()
            .filter(|n| *n <= i32::MAX as usize)
            .ok_or_else(|| p.invalid("queue_capacity", format!("{queue_capacity} is too large")))?;
        let close_timeout = p.duration("close_timeout", Duration::from_secs(10))?;
        p.tolerate(SOURCE_PARAMS);
        p.finish()?;
        Ok(KafkaSinkSettings {
            client,
            topic,
            batch_size,
            linger,
            compression,
            acks,
            exactly_once,
            transactional,
            dead_letter,
            queue_capacity,
            close_timeout,
        })
    }

    /// The librdkafka producer configuration.
    fn client_config(&self, name: &str) -> rdkafka::ClientConfig {
        let mut c = self.client.client_config();
        c.set("client.id", format!("varpulis-{name}"))
            .set("compression.codec", self.compression.as_str())
            .set("acks", self.acks.as_str())
            .set(
                "queue.buffering.max.messages",
                self.queue_capacity.to_string(),
            );
        if self.exactly_once || self.transactional {
            c.set("enable.idempotence", "true");
        }
        if let Some(n) = self.batch_size {
            c.set("batch.num.messages", n.to_string());
        }
        if let Some(d) = self.linger {
            c.set("linger.ms", millis(d));
        }
        c
    }
}

/// `compression_type`, checked against the codecs this librdkafka was built with.
fn read_compression(p: &mut Params<'_>) -> Result<Compression, ConfigError> {
    let Some(raw) = p.string("compression_type")? else {
        return Ok(Compression::None);
    };
    let codec = match raw.to_ascii_lowercase().as_str() {
        "none" => return Ok(Compression::None),
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => {
            let hint = match crate::config::closest(other, CODECS.iter().copied()) {
                Some(s) => format!("; did you mean `{s}`?"),
                None => String::new(),
            };
            return Err(p.invalid(
                "compression_type",
                format!(
                    "`{other}` is not a compression codec (use one of {}){hint}",
                    supported_codecs().join(", ")
                ),
            ));
        }
    };
    if supported_codecs().contains(&codec.as_str()) {
        Ok(codec)
    } else {
        Err(p.invalid(
            "compression_type",
            format!(
                "`{}` is not available in this build of librdkafka (use one of {})",
                codec.as_str(),
                supported_codecs().join(", ")
            ),
        ))
    }
}

/// The codecs this librdkafka supports, from its `builtin.features`.
fn supported_codecs() -> Vec<&'static str> {
    let features = rdkafka::ClientConfig::new()
        .create_native_config()
        .and_then(|c| c.get("builtin.features"))
        .unwrap_or_default();
    let features: Vec<&str> = features.split(',').map(str::trim).collect();
    CODECS
        .iter()
        .copied()
        .filter(|c| *c == "none" || features.contains(c))
        .collect()
}

/// `acks`: `all`/`-1`, `1` or `0`, as a string, an identifier or an integer.
fn read_acks(p: &mut Params<'_>, config: &ConnectorConfig) -> Result<Acks, ConfigError> {
    let text = match config.params.get("acks") {
        Some(ConfigValue::Int(i)) => {
            p.tolerate(&["acks"]);
            i.to_string()
        }
        _ => match p.string("acks")? {
            Some(s) => s.to_ascii_lowercase(),
            None => return Ok(Acks::All),
        },
    };
    match text.as_str() {
        "all" | "-1" => Ok(Acks::All),
        "1" => Ok(Acks::Leader),
        "0" => Ok(Acks::None),
        other => Err(p.invalid(
            "acks",
            format!("`{other}` is not supported; use \"all\", 1 or 0"),
        )),
    }
}

/// State shared between the sink, the polling thread and librdkafka's delivery callback.
struct Shared {
    name: String,
    /// `kafka://<brokers>`, for messages.
    target: String,
    close_timeout: Duration,
    counters: Arc<Counters>,
    dead_letter: Mutex<DeadLetter>,
    /// Records handed to librdkafka and not yet reported on, by delivery id.
    pending: Mutex<HashMap<usize, Arc<Record>>>,
    /// Records dead-lettered because `close_timeout` elapsed.
    abandoned: AtomicU64,
    /// Delivery reports being handled right now (a barrier waits for them to finish).
    reporting: AtomicU64,
    /// Failed deliveries since the current transaction began (it must then be aborted).
    txn_failures: AtomicU64,
    /// The open transaction is being aborted on purpose: the records librdkafka purges are
    /// produced again (a retry) or replayed after a restart, not lost.
    aborting: AtomicBool,
}

impl Shared {
    /// No record is waiting for its delivery report, and no report is being handled.
    fn idle(&self) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
            && self.reporting.load(Ordering::Acquire) == 0
    }

    fn take_pending(&self, id: usize) -> Option<Arc<Record>> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id)
    }

    /// Dead-letters one record (counted there, or counted as dropped when the file fails).
    fn dead_letter(
        &self,
        record: Arc<Record>,
        reason: &str,
        attempts: u32,
    ) -> Result<(), SinkError> {
        let record = Arc::unwrap_or_clone(record);
        self.dead_letter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write(std::slice::from_ref(&record), reason, attempts)
    }

    fn close_timeout_reason(&self, topic: &str, inflight: bool) -> String {
        let mut reason = format!(
            "not delivered to {} topic {topic} before close_timeout ({}ms) elapsed",
            self.target,
            self.close_timeout.as_millis()
        );
        if inflight {
            reason.push_str("; it may have reached the broker (at least once)");
        }
        reason
    }
}

/// librdkafka's callbacks: delivery reports and client errors.
struct Reports {
    shared: Arc<Shared>,
}

impl ClientContext for Reports {
    fn error(&self, error: KafkaError, reason: &str) {
        // Broker connection trouble: librdkafka retries by itself; records that run out of
        // time come back as failed delivery reports. Keep the latest for the metrics.
        self.shared.counters.set_last_error(format!(
            "connector `{}`: {}: {error} ({reason})",
            self.shared.name, self.shared.target
        ));
    }
}

impl ProducerContext for Reports {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, id: usize) {
        let shared = &self.shared;
        // Counted before the record leaves the pending map, so a barrier that sees the map
        // empty also sees this report in progress.
        shared.reporting.fetch_add(1, Ordering::AcqRel);
        self.report(result, id);
        shared.reporting.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Reports {
    fn report(&self, result: &DeliveryResult<'_>, id: usize) {
        let shared = &self.shared;
        let Some(record) = shared.take_pending(id) else {
            // Already accounted for (close dead-letters what it cannot wait for).
            return;
        };
        let counters = &shared.counters;
        counters.sub_pending(1);
        if result.is_err() && shared.aborting.load(Ordering::Acquire) {
            return;
        }
        match result {
            Ok(_) => {
                Counters::add(&counters.sent, 1);
                Counters::add(&counters.bytes, record.len() as u64);
            }
            Err((e, message)) => {
                Counters::add(&counters.failed, 1);
                shared.txn_failures.fetch_add(1, Ordering::AcqRel);
                let topic = message.topic();
                let reason = match e.rdkafka_error_code() {
                    Some(RDKafkaErrorCode::PurgeQueue) => {
                        shared.abandoned.fetch_add(1, Ordering::Relaxed);
                        shared.close_timeout_reason(topic, false)
                    }
                    Some(RDKafkaErrorCode::PurgeInflight) => {
                        shared.abandoned.fetch_add(1, Ordering::Relaxed);
                        shared.close_timeout_reason(topic, true)
                    }
                    _ => format!(
                        "delivery to {} topic {topic} failed: {}",
                        shared.target,
                        describe(e)
                    ),
                };
                counters.set_last_error(format!("connector `{}`: {reason}", shared.name));
                // A failure to write the dead-letter file is counted as dropped and kept in
                // `last_error`; there is no caller to return it to here.
                let _ = shared.dead_letter(record, &reason, 1);
            }
        }
    }
}

/// Produces records to Kafka; delivery reports are handled on a polling thread.
pub struct KafkaSink {
    settings: Arc<KafkaSinkSettings>,
    shared: Arc<Shared>,
    /// `None` once closed, and for a transactional sink until its first record or restore.
    producer: Option<Arc<BaseProducer<Reports>>>,
    poller_stop: Arc<AtomicBool>,
    poller: Option<JoinHandle<()>>,
    next_id: usize,
    closed: bool,
    /// The transaction state of a `transactional` sink, once its producer exists.
    txn: Option<Txn>,
}

/// A transactional sink's state (see the module documentation).
struct Txn {
    /// The pipeline's record-id scope (`<pipeline>/<connector>`).
    scope: String,
    /// Reads and writes the sink's progress in the group named like the transactional id.
    progress: BaseConsumer,
    /// A transaction is open.
    open: bool,
    /// The records of the open transaction, produced again if it must be aborted.
    records: Vec<Arc<Record>>,
    /// The sequence number after the last record produced in the open transaction.
    next_seq: u64,
    /// The sequence number after the last published record: replays below it are skipped.
    published: u64,
    /// Replayed records skipped because Kafka had published them already.
    skipped: u64,
    /// A barrier was passed: the host checkpoints, so `close` aborts what is open.
    checkpointed: bool,
}

/// The mark a transactional sink's barrier returns: its scope and progress.
fn txn_mark(scope: &str, seq: u64) -> SinkMark {
    serde_json::json!({ "transactional": scope, "seq": seq })
}

/// A producer, the stop flag of its polling thread, and the thread.
type Started = (Arc<BaseProducer<Reports>>, Arc<AtomicBool>, JoinHandle<()>);

/// Starts a producer and its polling thread.
fn start_producer(
    name: &str,
    settings: &KafkaSinkSettings,
    shared: &Arc<Shared>,
    transactional_id: Option<&str>,
) -> Result<Started, ConfigError> {
    let mut config = settings.client_config(name);
    if let Some(id) = transactional_id {
        config.set("transactional.id", id);
    }
    let producer: BaseProducer<Reports> = config
        .create_with_context(Reports {
            shared: Arc::clone(shared),
        })
        .map_err(|e| rejected_config(name, &settings.client, e))?;
    let producer = Arc::new(producer);
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let producer = Arc::clone(&producer);
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name(format!("varpulis-kafka-{name}"))
            .spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    producer.poll(POLL);
                }
            })
            .map_err(|source| ConfigError::Thread {
                connector: name.to_string(),
                source,
            })?
    };
    Ok((producer, stop, poller))
}

impl KafkaSink {
    /// Builds the sink from a kafka connector declaration. The brokers are not contacted yet:
    /// if they are unreachable, records wait in librdkafka's queue and are dead-lettered when
    /// they time out or at close.
    pub fn open(config: &ConnectorConfig, context: &SinkContext) -> Result<Self, ConfigError> {
        let settings = KafkaSinkSettings::from_config(config, &context.base_dir)?;
        KafkaSink::with_settings(&config.name, settings)
    }

    /// Builds the sink from validated settings and starts its polling thread.
    pub fn with_settings(name: &str, settings: KafkaSinkSettings) -> Result<Self, ConfigError> {
        let counters = Arc::new(Counters::default());
        let dead_letter =
            DeadLetter::new(name, settings.dead_letter.clone(), Arc::clone(&counters))?;
        let shared = Arc::new(Shared {
            name: name.to_string(),
            target: format!("kafka://{}", settings.client.brokers),
            close_timeout: settings.close_timeout,
            counters,
            dead_letter: Mutex::new(dead_letter),
            pending: Mutex::new(HashMap::new()),
            abandoned: AtomicU64::new(0),
            reporting: AtomicU64::new(0),
            txn_failures: AtomicU64::new(0),
            aborting: AtomicBool::new(false),
        });
        // A transactional producer needs the pipeline's id, which the first record (or the
        // checkpoint's mark) brings.
        let (producer, poller_stop, poller) = if settings.transactional {
            (None, Arc::new(AtomicBool::new(false)), None)
        } else {
            let (p, stop, poller) = start_producer(name, &settings, &shared, None)?;
            (Some(p), stop, Some(poller))
        };
        Ok(KafkaSink {
            settings: Arc::new(settings),
            shared,
            producer,
            poller_stop,
            poller,
            next_id: 0,
            closed: false,
            txn: None,
        })
    }

    /// The transactional producer for `scope`, started on first use: `init_transactions`
    /// fences an earlier incarnation and aborts what it left open; the progress Kafka has
    /// published is read back.
    fn transactional(&mut self, scope: &str) -> Result<(), SinkError> {
        if self.txn.is_some() {
            return Ok(());
        }
        let name = self.shared.name.clone();
        let id = format!("varpulis-{scope}");
        let refused = |why: String| SinkError::NotCommitted {
            connector: name.clone(),
            reason: why,
        };
        let (producer, stop, poller) =
            start_producer(&name, &self.settings, &self.shared, Some(&id))
                .map_err(|e| refused(e.to_string()))?;
        let started = producer
            .init_transactions(self.settings.close_timeout)
            .map_err(|e| {
                refused(format!(
                    "cannot start transactions as `{id}`: {}",
                    describe(&e)
                ))
            })
            .and_then(|()| {
                self.settings
                    .client
                    .client_config()
                    .set("group.id", &id)
                    .set("enable.auto.commit", "false")
                    .create::<BaseConsumer>()
                    .map_err(|e| refused(format!("cannot read the progress of `{id}`: {e}")))
            })
            .and_then(|progress| Ok((self.read_progress(&progress)?, progress)));
        let (published, progress) = match started {
            Ok(p) => p,
            Err(e) => {
                // The next record tries again with a fresh producer.
                stop.store(true, Ordering::Release);
                let _ = poller.join();
                return Err(e);
            }
        };
        self.poller_stop = stop;
        self.poller = Some(poller);
        self.producer = Some(producer);
        self.txn = Some(Txn {
            scope: scope.to_string(),
            progress,
            open: false,
            records: Vec::new(),
            next_seq: published,
            published,
            skipped: 0,
            checkpointed: false,
        });
        Ok(())
    }

    /// The sequence number after the last record a committed transaction published.
    fn read_progress(&self, progress: &BaseConsumer) -> Result<u64, SinkError> {
        let topic = self.settings.topic.as_deref().unwrap_or_default();
        let mut list = TopicPartitionList::new();
        list.add_partition(topic, 0);
        let committed = progress
            .committed_offsets(list, self.settings.close_timeout)
            .map_err(|e| SinkError::NotCommitted {
                connector: self.shared.name.clone(),
                reason: format!("cannot read the published progress: {}", describe(&e)),
            })?;
        Ok(committed
            .find_partition(topic, 0)
            .and_then(|p| match p.offset() {
                Offset::Offset(n) => u64::try_from(n).ok(),
                _ => None,
            })
            .unwrap_or(0))
    }

    /// Ends the open transaction: committed (published) or aborted.
    fn end_transaction(&mut self, commit: bool) -> Result<(), SinkError> {
        let (Some(producer), Some(txn)) = (&self.producer, &mut self.txn) else {
            return Ok(());
        };
        if !txn.open {
            return Ok(());
        }
        let timeout = self.settings.close_timeout;
        let result = if commit {
            producer.commit_transaction(timeout)
        } else {
            self.shared.aborting.store(true, Ordering::Release);
            let aborted = producer.abort_transaction(timeout);
            // The purged records' reports come through the polling thread: wait for them.
            let until = Instant::now() + timeout;
            while Instant::now() < until && !self.shared.idle() {
                std::thread::sleep(Duration::from_millis(1));
            }
            self.shared.aborting.store(false, Ordering::Release);
            aborted
        };
        txn.open = false;
        let records = std::mem::take(&mut txn.records);
        match result {
            Ok(()) => {
                if commit {
                    txn.published = txn.next_seq;
                }
                Ok(())
            }
            Err(e) => {
                // The records stay with the host's previous checkpoint: a restart replays them.
                txn.records = records;
                Err(SinkError::NotCommitted {
                    connector: self.shared.name.clone(),
                    reason: format!(
                        "{} the transaction failed: {}",
                        if commit { "committing" } else { "aborting" },
                        describe(&e)
                    ),
                })
            }
        }
    }

    /// Records the progress of the open transaction in it (phase one of a checkpoint).
    fn stage(&mut self, deadline: Instant) -> Result<(), SinkError> {
        let (Some(producer), Some(txn)) = (&self.producer, &self.txn) else {
            return Ok(());
        };
        let topic = self.settings.topic.as_deref().unwrap_or_default();
        let mut list = TopicPartitionList::new();
        let at = i64::try_from(txn.next_seq).unwrap_or(i64::MAX);
        let staged = list
            .add_partition_offset(topic, 0, Offset::Offset(at))
            .map_err(|e| describe(&e))
            .and_then(|()| {
                txn.progress
                    .group_metadata()
                    .ok_or_else(|| "the progress group has no metadata".to_string())
            })
            .and_then(|meta| {
                producer
                    .send_offsets_to_transaction(
                        &list,
                        &meta,
                        deadline.saturating_duration_since(Instant::now()),
                    )
                    .map_err(|e| describe(&e))
            });
        staged.map_err(|why| SinkError::NotCommitted {
            connector: self.shared.name.clone(),
            reason: format!("cannot record the progress in the transaction: {why}"),
        })
    }

    /// After a failed delivery inside the open transaction: aborts it and produces its
    /// records again in a new one.
    fn retry_transaction(&mut self) -> Result<(), SinkError> {
        self.end_transaction(false)?;
        let records = self
            .txn
            .as_mut()
            .map(|t| std::mem::take(&mut t.records))
            .unwrap_or_default();
        self.shared.txn_failures.store(0, Ordering::Release);
        if records.is_empty() {
            return Ok(());
        }
        self.begin()?;
        for record in records {
            let topic = record
                .topic()
                .or(self.settings.topic.as_deref())
                .unwrap_or_default()
                .to_string();
            if let Some(txn) = &mut self.txn {
                txn.records.push(Arc::clone(&record));
            }
            self.produce(record, &topic)?;
        }
        Ok(())
    }

    /// Opens a transaction if none is open.
    fn begin(&mut self) -> Result<(), SinkError> {
        let (Some(producer), Some(txn)) = (&self.producer, &mut self.txn) else {
            return Ok(());
        };
        if txn.open {
            return Ok(());
        }
        producer
            .begin_transaction()
            .map_err(|e| SinkError::NotCommitted {
                connector: self.shared.name.clone(),
                reason: format!("cannot begin a transaction: {}", describe(&e)),
            })?;
        self.shared.txn_failures.store(0, Ordering::Release);
        txn.open = true;
        Ok(())
    }

    /// The settings in force.
    pub fn settings(&self) -> &KafkaSinkSettings {
        &self.settings
    }

    /// Dead-letters a record `send` could not hand to librdkafka and builds the error.
    fn refuse(&self, record: Arc<Record>, topic: &str, failure: DeliveryFailure) -> SinkError {
        let counters = &self.shared.counters;
        Counters::add(&counters.failed, 1);
        let url = format!("{} topic {topic}", self.shared.target);
        let err = SinkError::Delivery {
            connector: self.shared.name.clone(),
            url,
            attempts: 1,
            failure,
        };
        counters.set_last_error(err.to_string());
        match self.shared.dead_letter(record, &err.to_string(), 1) {
            Ok(()) => err,
            Err(lost) => lost,
        }
    }
}

impl KafkaSink {
    /// Dead-letters a record that names no topic and builds the error.
    fn no_topic(&self, record: Arc<Record>) -> SinkError {
        let counters = &self.shared.counters;
        Counters::add(&counters.failed, 1);
        let err = SinkError::NoTopic {
            connector: self.shared.name.clone(),
            dead_letter: self.settings.dead_letter.clone(),
        };
        counters.set_last_error(err.to_string());
        let reason = format!(
            "{}: the record has no topic (set `topic` on the connector or at the `.to(...)` site)",
            self.shared.target
        );
        match self.shared.dead_letter(record, &reason, 0) {
            Ok(()) => err,
            Err(lost) => lost,
        }
    }

    /// Dead-letters a record the brokers refused for good and builds the error.
    fn refused(&self, record: Arc<Record>, topic: &str, why: String) -> SinkError {
        let counters = &self.shared.counters;
        Counters::add(&counters.failed, 1);
        let place = format!("{} topic {topic}", self.shared.target);
        let reason = format!("{place} refused the record: {why}");
        let err = SinkError::Refused {
            connector: self.shared.name.clone(),
            place,
            reason: format!("the record: {why}"),
            dead_letter: self.settings.dead_letter.clone(),
        };
        counters.set_last_error(err.to_string());
        match self.shared.dead_letter(record, &reason, 1) {
            Ok(()) => err,
            Err(lost) => lost,
        }
    }
}

impl KafkaSink {
    /// Hands one record to librdkafka; its delivery report settles it.
    fn produce(&mut self, record: Arc<Record>, topic: &str) -> Result<(), SinkError> {
        let Some(producer) = self.producer.clone() else {
            return Err(SinkError::Closed {
                connector: self.shared.name.clone(),
            });
        };
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        // Into the pending map first: the delivery report may arrive on the polling thread
        // before `send` returns.
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::clone(&record));
        Counters::add(&self.shared.counters.pending, 1);
        let mut message = BaseRecord::with_opaque_to(topic, id).payload(record.as_bytes());
        if let Some(key) = record.key() {
            message = message.key(key);
        }
        let id_text = record.id().map(ToString::to_string);
        let trace_text = record.trace_parent().map(ToString::to_string);
        if id_text.is_some() || trace_text.is_some() {
            let mut headers = OwnedHeaders::new();
            if let Some(text) = &id_text {
                headers = headers.insert(Header {
                    key: IDEMPOTENCY_HEADER,
                    value: Some(text.as_str()),
                });
            }
            if let Some(text) = &trace_text {
                headers = headers.insert(Header {
                    key: TRACEPARENT,
                    value: Some(text.as_str()),
                });
            }
            message = message.headers(headers);
        }
        let Err((e, _)) = producer.send(message) else {
            return Ok(());
        };
        // librdkafka did not take it: no report will come.
        let record = self.shared.take_pending(id).unwrap_or(record);
        let counters = &self.shared.counters;
        counters.sub_pending(1);
        if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) {
            Counters::add(&counters.dropped_queue_full, 1);
            let reason = format!(
                "producer queue full ({} records waiting for {})",
                self.settings.queue_capacity, self.shared.target
            );
            self.shared.dead_letter(record, &reason, 0)?;
            let err = SinkError::QueueFull {
                connector: self.shared.name.clone(),
                capacity: self.settings.queue_capacity,
                dead_letter: self.settings.dead_letter.clone(),
            };
            counters.set_last_error(err.to_string());
            return Err(err);
        }
        if let Some(code) = e.rdkafka_error_code().filter(|c| is_refusal(*c)) {
            // Authorization, authentication, or a fatal producer state (which librdkafka
            // explains separately): every later record would be refused too.
            let mut why = describe(&e);
            if code == RDKafkaErrorCode::Fatal {
                if let Some((_, reason)) = producer.client().fatal_error() {
                    why = format!("{why}: {reason}");
                }
            }
            return Err(self.refused(record, topic, why));
        }
        // Too large, unknown partition, ...: sending the same record again cannot help.
        Err(self.refuse(record, topic, DeliveryFailure::Request(describe(&e))))
    }
}

impl Sink for KafkaSink {
    fn name(&self) -> &str {
        &self.shared.name
    }

    fn send(&mut self, record: Record) -> Result<(), SinkError> {
        if self.closed {
            return Err(SinkError::Closed {
                connector: self.shared.name.clone(),
            });
        }
        let record = Arc::new(record);
        let topic = match record.topic().or(self.settings.topic.as_deref()) {
            Some(t) => t.to_string(),
            None => return Err(self.no_topic(record)),
        };
        if let Err(reason) = check_topic(&topic) {
            return Err(self.refuse(record, &topic, DeliveryFailure::Request(reason)));
        }
        if self.settings.transactional {
            let Some(id) = record.id().cloned() else {
                let why =
                    "a transactional sink needs the pipeline's record ids; this record has none"
                        .to_string();
                return Err(self.refuse(record, &topic, DeliveryFailure::Request(why)));
            };
            self.transactional(&id.scope)?;
            if let Some(txn) = &mut self.txn {
                if id.seq < txn.published {
                    // A replay of a record a committed transaction already published.
                    txn.skipped += 1;
                    return Ok(());
                }
            }
            self.begin()?;
            if let Some(txn) = &mut self.txn {
                txn.records.push(Arc::clone(&record));
                txn.next_seq = txn.next_seq.max(id.seq + 1);
            }
        }
        self.produce(record, &topic)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        let Some(producer) = &self.producer else {
            return Ok(());
        };
        let start = Instant::now();
        match producer.flush(self.settings.close_timeout) {
            Ok(()) => Ok(()),
            Err(_) => Err(SinkError::Timeout {
                connector: self.shared.name.clone(),
                pending: self.shared.counters.snapshot().queue_depth,
                waited: start.elapsed(),
            }),
        }
    }

    fn barrier(&mut self, deadline: Instant) -> Result<Option<SinkMark>, SinkError> {
        let Some(producer) = &self.producer else {
            return Ok(None);
        };
        let start = Instant::now();
        let timeout = || SinkError::Timeout {
            connector: self.shared.name.clone(),
            pending: self.shared.counters.snapshot().queue_depth,
            waited: start.elapsed(),
        };
        producer
            .flush(deadline.saturating_duration_since(Instant::now()))
            .map_err(|_| timeout())?;
        // The polling thread may still be handling the last reports.
        loop {
            if self.shared.idle() {
                break;
            }
            if Instant::now() >= deadline {
                return Err(timeout());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.shared
            .dead_letter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sync()?;
        let Some(txn) = &mut self.txn else {
            return Ok(None);
        };
        txn.checkpointed = true;
        if !txn.open {
            return Ok(Some(txn_mark(&txn.scope, txn.published)));
        }
        if self.shared.txn_failures.load(Ordering::Acquire) > 0 {
            // A record of this transaction failed: it cannot commit. Its records go again in
            // a new one, confirmed at the next checkpoint.
            self.retry_transaction()?;
            return Err(SinkError::NotCommitted {
                connector: self.shared.name.clone(),
                reason: "a record of the transaction failed; it was aborted and its records \
                         produced again in a new one"
                    .to_string(),
            });
        }
        self.stage(deadline)?;
        Ok(self
            .txn
            .as_ref()
            .map(|txn| txn_mark(&txn.scope, txn.next_seq)))
    }

    fn committed(&mut self) -> Result<(), SinkError> {
        self.end_transaction(true)
    }

    fn restore(&mut self, mark: &SinkMark) -> Result<(), SinkError> {
        let (Some(scope), Some(seq)) = (
            mark.get("transactional").and_then(|v| v.as_str()),
            mark.get("seq").and_then(serde_json::Value::as_u64),
        ) else {
            return Ok(());
        };
        if !self.settings.transactional {
            return Ok(());
        }
        self.transactional(scope)?;
        let published = self.txn.as_ref().map_or(0, |t| t.published);
        if published < seq {
            return Err(SinkError::NotCommitted {
                connector: self.shared.name.clone(),
                reason: format!(
                    "the checkpoint counts {seq} records as published, Kafka has {published} \
                     (the transaction of that checkpoint was never committed)"
                ),
            });
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), SinkError> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        // What is open is published without checkpoints; with them a restart replays it.
        let publish = self.txn.as_ref().is_some_and(|t| t.open && !t.checkpointed);
        let ended = if publish {
            self.flush().and_then(|()| {
                if self.shared.txn_failures.load(Ordering::Acquire) > 0 {
                    self.retry_transaction()?;
                    self.flush()?;
                }
                self.stage(Instant::now() + self.settings.close_timeout)?;
                self.end_transaction(true)
            })
        } else {
            self.end_transaction(false)
        };
        let Some(producer) = self.producer.take() else {
            return ended;
        };
        let start = Instant::now();
        if producer.flush(self.settings.close_timeout).is_err() {
            // Time is up: fail what is left, so its delivery reports (PurgeQueue/PurgeInflight)
            // dead-letter it, and wait briefly for those reports.
            producer.purge(PurgeConfig::default().queue().inflight());
            let _ = producer.flush(PURGE_GRACE);
        }
        self.poller_stop.store(true, Ordering::Release);
        if let Some(poller) = self.poller.take() {
            // The thread polls for at most `POLL` before it sees the flag.
            let _ = poller.join();
        }
        // The last reference: dropping it destroys the producer.
        drop(producer);
        // Records librdkafka never reported on are dead-lettered here.
        let left: Vec<Arc<Record>> = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, r)| r)
            .collect();
        let counters = &self.shared.counters;
        let mut result = Ok(());
        for record in left {
            counters.sub_pending(1);
            Counters::add(&counters.failed, 1);
            self.shared.abandoned.fetch_add(1, Ordering::Relaxed);
            let topic = record
                .topic()
                .or(self.settings.topic.as_deref())
                .unwrap_or("(none)")
                .to_string();
            let reason = self.shared.close_timeout_reason(&topic, true);
            if let Err(e) = self.shared.dead_letter(record, &reason, 1) {
                result = Err(e);
            }
        }
        let abandoned = self.shared.abandoned.load(Ordering::Relaxed);
        if result.is_ok() && abandoned > 0 {
            result = Err(SinkError::Timeout {
                connector: self.shared.name.clone(),
                pending: abandoned,
                waited: start.elapsed(),
            });
        }
        ended.and(result)
    }

    fn metrics(&self) -> SinkMetrics {
        self.shared.counters.snapshot()
    }
}

impl Drop for KafkaSink {
    fn drop(&mut self) {
        // Errors cannot be returned from drop; they are in the metrics and the dead-letter file.
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(params: &[(&str, ConfigValue)]) -> Result<KafkaSinkSettings, ConfigError> {
        let config = params.iter().fold(
            ConnectorConfig::new("Alerts", "kafka")
                .param("brokers", ConfigValue::Str("127.0.0.1:9092".into())),
            |c, (k, v)| c.param(*k, v.clone()),
        );
        KafkaSinkSettings::from_config(&config, Path::new("/base"))
    }

    #[test]
    fn defaults() {
        let s = check(&[]).expect("brokers alone are enough");
        assert_eq!(s.topic, None);
        assert_eq!(s.batch_size, None);
        assert_eq!(s.linger, None);
        assert_eq!(s.compression, Compression::None);
        assert_eq!(s.acks, Acks::All);
        assert!(!s.exactly_once);
        assert_eq!(s.dead_letter, PathBuf::from("/base/Alerts.dead.jsonl"));
        assert_eq!(s.queue_capacity, 100_000);
        assert_eq!(s.close_timeout, Duration::from_secs(10));
    }

    #[test]
    fn linger_takes_milliseconds_or_a_duration_and_acks_an_int_or_a_word() {
        let s = check(&[
            ("linger_ms", ConfigValue::Int(20)),
            ("acks", ConfigValue::Int(1)),
        ])
        .expect("valid");
        assert_eq!(s.linger, Some(Duration::from_millis(20)));
        assert_eq!(s.acks, Acks::Leader);
        let s = check(&[
            ("linger_ms", ConfigValue::Duration(50_000_000)),
            ("acks", ConfigValue::Ident("all".into())),
        ])
        .expect("valid");
        assert_eq!(s.linger, Some(Duration::from_millis(50)));
        assert_eq!(s.acks, Acks::All);
        assert!(check(&[("acks", ConfigValue::Int(2))]).is_err());
    }

    #[test]
    fn this_build_compresses_with_gzip_snappy_lz4_and_zstd() {
        for codec in ["gzip", "snappy", "lz4", "zstd", "NONE"] {
            check(&[("compression_type", ConfigValue::Str(codec.into()))]).expect(codec);
        }
        let err = check(&[("compression_type", ConfigValue::Str("brotli".into()))])
            .expect_err("not a codec");
        assert!(
            err.to_string()
                .starts_with("connector `Alerts`: parameter `compression_type`: `brotli` is not a compression codec (use one of none, gzip, snappy, lz4, zstd)"),
            "{err}"
        );
    }

    #[test]
    fn exactly_once_needs_acks_all() {
        let s = check(&[("exactly_once", ConfigValue::Bool(true))]).expect("valid");
        assert!(s.exactly_once);
        let err = check(&[
            ("exactly_once", ConfigValue::Bool(true)),
            ("acks", ConfigValue::Int(1)),
        ])
        .expect_err("conflict");
        assert!(err.to_string().contains("parameter `acks`"), "{err}");
    }

    #[test]
    fn source_parameters_are_tolerated_but_typos_are_not() {
        check(&[("group_id", ConfigValue::Str("g".into()))]).expect("source param tolerated");
        let err = check(&[("linger", ConfigValue::Int(5))]).expect_err("typo");
        assert_eq!(
            err.to_string(),
            "connector `Alerts`: unknown parameter `linger` for a kafka sink; did you mean `linger_ms`?"
        );
    }
}

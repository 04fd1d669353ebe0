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
//! partition in the order of `send`. It does not make a whole pipeline exactly-once: records
//! dead-lettered and replayed by hand, or produced again after a crash and restart, are new
//! records to Kafka (no transactions are used).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext, PurgeConfig};

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
        if self.exactly_once {
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
}

impl Shared {
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
        match result {
            Ok(_) => {
                Counters::add(&counters.sent, 1);
                Counters::add(&counters.bytes, record.len() as u64);
            }
            Err((e, message)) => {
                Counters::add(&counters.failed, 1);
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
    producer: Option<Arc<BaseProducer<Reports>>>,
    poller_stop: Arc<AtomicBool>,
    poller: Option<JoinHandle<()>>,
    next_id: usize,
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
        });
        let producer: BaseProducer<Reports> = settings
            .client_config(name)
            .create_with_context(Reports {
                shared: Arc::clone(&shared),
            })
            .map_err(|e| rejected_config(name, &settings.client, e))?;
        let producer = Arc::new(producer);
        let poller_stop = Arc::new(AtomicBool::new(false));
        let poller = {
            let producer = Arc::clone(&producer);
            let stop = Arc::clone(&poller_stop);
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
        Ok(KafkaSink {
            settings: Arc::new(settings),
            shared,
            producer: Some(producer),
            poller_stop,
            poller: Some(poller),
            next_id: 0,
        })
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

impl Sink for KafkaSink {
    fn name(&self) -> &str {
        &self.shared.name
    }

    fn send(&mut self, record: Record) -> Result<(), SinkError> {
        let Some(producer) = &self.producer else {
            return Err(SinkError::Closed {
                connector: self.shared.name.clone(),
            });
        };
        let record = Arc::new(record);
        let topic = match record.topic().or(self.settings.topic.as_deref()) {
            Some(t) => t.to_string(),
            None => return Err(self.no_topic(record)),
        };
        if let Err(reason) = check_topic(&topic) {
            return Err(self.refuse(record, &topic, DeliveryFailure::Request(reason)));
        }
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
        let mut message = BaseRecord::with_opaque_to(&topic, id).payload(record.as_bytes());
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
            return Err(self.refused(record, &topic, why));
        }
        // Too large, unknown partition, ...: sending the same record again cannot help.
        Err(self.refuse(record, &topic, DeliveryFailure::Request(describe(&e))))
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
            let idle = self
                .shared
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
                && self.shared.reporting.load(Ordering::Acquire) == 0;
            if idle {
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
        Ok(None)
    }

    fn close(&mut self) -> Result<(), SinkError> {
        let Some(producer) = self.producer.take() else {
            return Ok(());
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
        result
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

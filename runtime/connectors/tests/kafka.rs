//! The kafka source and sink against a real Kafka-protocol broker (tansu under `scripts/brokers`,
//! or any Kafka named by `VARPULIS_TEST_KAFKA`), plus librdkafka's in-process mock cluster for
//! broker failures and an unreachable address for dead-lettering.
//!
//! Broker tests skip with a message when `VARPULIS_TEST_KAFKA` is unset, unless
//! `VARPULIS_REQUIRE_BROKERS=1` (CI), where a missing or unreachable broker fails them. Every
//! test uses its own topics and consumer group (process id, test name, time), so they run in
//! parallel and can be re-run against a broker that keeps its state.

#![cfg(feature = "kafka")]

use std::future::Future;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::Receiver;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use varpulis_connectors::{
    open_sink, open_source, ConfigError, ConfigValue, ConnectorConfig, PartitionHost, PartitionId,
    Rebalance, Record, Sink, SinkContext, SinkError, Source, SourceConfig, SourceContext,
    SourceEvent, SourceMessage, SourceSender,
};

const MS: u64 = 1_000_000;

/// How long a test waits for records or problems before it fails.
const WAIT: Duration = Duration::from_secs(30);

/// The broker address, or `None` (after saying why) when the test should be skipped.
fn broker(test: &str) -> Option<String> {
    let required = std::env::var("VARPULIS_REQUIRE_BROKERS").is_ok_and(|v| v == "1");
    let Ok(address) = std::env::var("VARPULIS_TEST_KAFKA") else {
        assert!(
            !required,
            "VARPULIS_REQUIRE_BROKERS=1 but VARPULIS_TEST_KAFKA is not set (run `scripts/brokers start`)"
        );
        eprintln!(
            "skipping {test}: VARPULIS_TEST_KAFKA is not set (run `scripts/brokers start` and \
             `eval \"$(scripts/brokers env)\"`)"
        );
        return None;
    };
    let reachable = address
        .split(',')
        .filter_map(|a| a.trim().to_socket_addrs().ok())
        .flatten()
        .any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
    if !reachable {
        assert!(
            !required,
            "VARPULIS_REQUIRE_BROKERS=1 but no Kafka broker answers at {address}"
        );
        eprintln!("skipping {test}: no Kafka broker answers at {address}");
        return None;
    }
    Some(address)
}

/// A name no other test or earlier run uses.
fn unique(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() % 1_000_000_000_000);
    format!("varpulis-{test}-{}-{nanos}", std::process::id())
}

/// Runs a future to completion on this thread (the admin client drives its own I/O thread).
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

/// Creates `topic` with `partitions` partitions (brokers that auto-create would pick their own
/// count).
fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = block_on(admin.create_topics([&new], &options)).expect("create topics");
    for result in results {
        result.unwrap_or_else(|(t, e)| panic!("creating topic {t} failed: {e}"));
    }
}

fn s(v: &str) -> ConfigValue {
    ConfigValue::Str(v.to_string())
}

fn record(i: u64) -> Record {
    Record::from_json(format!(r#"{{"event_type":"Order","i":{i}}}"#).as_bytes())
        .expect("valid record")
}

fn index(payload: &[u8]) -> u64 {
    let v: Value = serde_json::from_slice(payload).expect("payload is JSON");
    v["i"].as_u64().expect("payload has i")
}

/// A kafka connector with `brokers` plus `extra` parameters.
fn kafka(name: &str, brokers: &str, extra: &[(&str, ConfigValue)]) -> ConnectorConfig {
    let base = ConnectorConfig::new(name, "kafka").param("brokers", s(brokers));
    extra.iter().fold(base, |c, (k, v)| c.param(*k, v.clone()))
}

fn sink(config: &ConnectorConfig, dir: &Path) -> Box<dyn Sink> {
    open_sink(config, &SinkContext::new(dir)).expect("valid kafka sink")
}

/// A running source with the host's end of its channel.
struct Host {
    source: Box<dyn Source>,
    rx: Receiver<SourceEvent>,
    stopping: Arc<AtomicBool>,
}

impl Host {
    /// Starts a source on a channel holding `capacity` events.
    fn start(config: ConnectorConfig, capacity: usize) -> Host {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let stopping = Arc::new(AtomicBool::new(false));
        let sender = SourceSender::new(tx, Arc::clone(&stopping));
        let config = SourceConfig::new(config, 7);
        let source = open_source(&config, &SourceContext::new("."), sender)
            .unwrap_or_else(|e| panic!("valid kafka source: {e}"));
        Host {
            source,
            rx,
            stopping,
        }
    }

    /// The next `n` messages; problems on the way are collected in `problems`.
    fn messages(&self, n: usize, problems: &mut Vec<(String, bool)>) -> Vec<SourceMessage> {
        let deadline = Instant::now() + WAIT;
        let mut out = Vec::new();
        while out.len() < n {
            match self.rx.recv_deadline(deadline) {
                Ok(SourceEvent::Message(m)) => {
                    assert_eq!(m.source, 7);
                    out.push(m);
                }
                Ok(SourceEvent::Problem { message, fatal, .. }) => problems.push((message, fatal)),
                Ok(SourceEvent::Ended { .. }) => panic!("a kafka source never ends"),
                Err(_) => panic!(
                    "only {} of {n} messages arrived within {WAIT:?}; problems: {problems:?}",
                    out.len()
                ),
            }
        }
        out
    }

    /// Waits for a problem whose message contains `text`; messages on the way are kept.
    fn problem(&self, text: &str, messages: &mut Vec<SourceMessage>) -> (String, bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.rx.recv_deadline(deadline) {
                Ok(SourceEvent::Problem { message, fatal, .. }) if message.contains(text) => {
                    return (message, fatal)
                }
                Ok(SourceEvent::Message(m)) => messages.push(m),
                Ok(_) => {}
                Err(_) => panic!("no problem mentioning `{text}` within {WAIT:?}"),
            }
        }
    }

    /// Stops the source alone (the host keeps running and stops reading), then raises the
    /// host's flag too; returns how long the source took to stop.
    fn stop(&mut self) -> Duration {
        let start = Instant::now();
        self.source.stop();
        let took = start.elapsed();
        self.stopping.store(true, Ordering::Release);
        took
    }
}

/// Writes `{"event_type":"Order","i":N}` records to one topic, waiting until they are in.
struct OrderProducer {
    producer: BaseProducer,
    topic: String,
}

impl OrderProducer {
    fn new(brokers: &str, topic: &str) -> OrderProducer {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .expect("producer");
        OrderProducer {
            producer,
            topic: topic.to_string(),
        }
    }

    fn produce(&self, range: std::ops::Range<u64>) {
        for i in range {
            let payload = format!(r#"{{"event_type":"Order","i":{i}}}"#);
            self.producer
                .send(BaseRecord::<(), _>::to(&self.topic).payload(&payload))
                .expect("queued");
        }
        self.producer
            .flush(Duration::from_secs(10))
            .expect("flushed");
    }
}

/// Source parameters that make joining a group fast (see shared/INFRA.md).
fn group(group_id: &str) -> (&'static str, ConfigValue) {
    ("group_id", s(group_id))
}

fn fast_session() -> (&'static str, ConfigValue) {
    ("session_timeout", ConfigValue::Duration(6_000 * MS))
}

fn dead_letters(path: &Path) -> Vec<Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .map(|l| serde_json::from_str(l).expect("dead-letter line is JSON"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Reads every record of `topic` partition 0..`partitions` with a plain consumer (no group),
/// returning (key, payload) pairs.
fn read_raw(brokers: &str, topic: &str, partitions: i32, n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    // librdkafka wants a group id even for `assign`; nothing is committed under it.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("raw"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + WAIT;
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push((
                m.key().unwrap_or_default().to_vec(),
                m.payload().unwrap_or_default().to_vec(),
            ));
        }
    }
    assert_eq!(out.len(), n, "records read back from {topic}");
    out
}

#[test]
fn sink_routes_to_the_connector_topic_and_site_topics_with_keys_and_the_source_reads_them_back() {
    let Some(brokers) = broker("sink_routes_to_the_connector_topic_and_site_topics_with_keys_and_the_source_reads_them_back") else {
        return;
    };
    let orders = unique("orders");
    let alerts = unique("alerts");
    create_topic(&brokers, &orders, 1);
    create_topic(&brokers, &alerts, 2);
    let dir = tempfile::tempdir().expect("tempdir");

    let mut out = sink(
        &kafka("Out", &brokers, &[("topic", s(&orders))]),
        dir.path(),
    );
    for i in 0..3 {
        out.send(record(i).routed(None, Some(format!("k{i}").into_bytes())))
            .expect("queued");
    }
    for i in 3..5 {
        out.send(record(i).routed(Some(alerts.clone()), Some(b"alert-key".to_vec())))
            .expect("queued");
    }
    out.flush().expect("delivered");
    out.close().expect("closed cleanly");
    let m = out.metrics();
    assert_eq!((m.sent, m.failed, m.dead_lettered), (5, 0, 0), "{m:?}");
    assert_eq!(m.queue_depth, 0);
    assert!(m.bytes > 0);
    assert!(!dir.path().join("Out.dead.jsonl").exists());

    // Keys arrive as sent; both alerts share a key, hence a partition.
    let raw = read_raw(&brokers, &orders, 1, 3);
    let keys: Vec<&[u8]> = raw.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(keys, [&b"k0"[..], b"k1", b"k2"]);
    let raw = read_raw(&brokers, &alerts, 2, 2);
    assert!(raw.iter().all(|(k, _)| k == b"alert-key"));

    // One source subscribed to both topics sees all five, with their places.
    let mut host = Host::start(
        kafka(
            "In",
            &brokers,
            &[
                ("topic", ConfigValue::Array(vec![s(&orders), s(&alerts)])),
                group(&unique("routes")),
                fast_session(),
            ],
        ),
        100,
    );
    assert!(host.source.describe().contains(&orders));
    let mut problems = Vec::new();
    let mut got = host.messages(5, &mut problems);
    got.sort_by_key(|m| index(&m.payload));
    for (i, m) in got.iter().enumerate() {
        assert_eq!(index(&m.payload), i as u64);
        if i < 3 {
            assert_eq!(
                m.place,
                format!("kafka topic {orders} partition 0 offset {i}")
            );
        } else {
            assert!(
                m.place
                    .starts_with(&format!("kafka topic {alerts} partition ")),
                "{}",
                m.place
            );
        }
    }
    assert!(problems.is_empty(), "{problems:?}");
    let metrics = host.source.metrics();
    assert_eq!(metrics.received, 5);
    host.stop();
}

#[test]
fn source_keeps_partition_order_skips_tombstones_and_resumes_from_the_committed_offset() {
    let Some(brokers) = broker(
        "source_keeps_partition_order_skips_tombstones_and_resumes_from_the_committed_offset",
    ) else {
        return;
    };
    let topic = unique("resume");
    let group_id = unique("resume-group");
    create_topic(&brokers, &topic, 1);
    let producer = OrderProducer::new(&brokers, &topic);
    producer.produce(0..12);
    // A tombstone (no payload) at offset 12, then one more record.
    producer
        .producer
        .send(BaseRecord::<_, ()>::to(&topic).key("gone"))
        .expect("queued");
    producer.produce(12..13);

    let params = [("topic", s(&topic)), group(&group_id), fast_session()];
    // A host queue of 2 events: the source blocks on the third until the host takes more.
    let mut host = Host::start(kafka("In", &brokers, &params), 2);
    let mut problems = Vec::new();
    let first = host.messages(5, &mut problems);
    let indexes: Vec<u64> = first.iter().map(|m| index(&m.payload)).collect();
    assert_eq!(indexes, [0, 1, 2, 3, 4], "in partition order");
    // The host stops while the source may wait with the next record: that one is not stored.
    let stopped_in = host.stop();
    assert!(stopped_in < Duration::from_secs(10), "{stopped_in:?}");
    let delivered = host.source.metrics().received;
    assert!((5..=7).contains(&delivered), "{delivered}");

    // Same group: it resumes exactly after what was delivered, tombstone skipped and counted.
    let mut host = Host::start(kafka("In", &brokers, &params), 100);
    let rest = host.messages(13 - delivered as usize, &mut problems);
    let indexes: Vec<u64> = rest.iter().map(|m| index(&m.payload)).collect();
    assert_eq!(indexes, (delivered..13).collect::<Vec<_>>());
    assert_eq!(
        rest[0].place,
        format!("kafka topic {topic} partition 0 offset {delivered}")
    );
    assert_eq!(
        rest.last().map(|m| m.place.clone()),
        Some(format!("kafka topic {topic} partition 0 offset 13"))
    );
    assert!(
        problems
            .iter()
            .any(|(p, fatal)| !fatal && p.contains("offset 12: skipping an empty message")),
        "{problems:?}"
    );
    assert_eq!(host.source.metrics().rejected, 1);
    host.stop();
}

#[test]
fn a_checkpointed_source_commits_what_the_host_checkpointed_and_resumes_there() {
    let test = "a_checkpointed_source_commits_what_the_host_checkpointed_and_resumes_there";
    let Some(brokers) = broker(test) else {
        return;
    };
    let topic = unique("ckpt");
    let group_id = unique("ckpt-group");
    create_topic(&brokers, &topic, 1);
    let producer = OrderProducer::new(&brokers, &topic);
    producer.produce(0..5);
    let params = [("topic", s(&topic)), group(&group_id), fast_session()];
    let start = |params: &[(&str, ConfigValue)]| {
        let (tx, rx) = crossbeam_channel::bounded(100);
        let stopping = Arc::new(AtomicBool::new(false));
        let mut config = SourceConfig::new(kafka("In", &brokers, params), 7);
        config.checkpointed = true;
        let source = open_source(
            &config,
            &SourceContext::new("."),
            SourceSender::new(tx, Arc::clone(&stopping)),
        )
        .unwrap_or_else(|e| panic!("valid kafka source: {e}"));
        Host {
            source,
            rx,
            stopping,
        }
    };
    let mut problems = Vec::new();
    let mut host = start(&params);
    let first = host.messages(5, &mut problems);
    let p = first[2]
        .position
        .clone()
        .expect("kafka messages have positions");
    assert_eq!(
        (p.key.clone(), p.start, p.end),
        (format!("{topic}/0"), 2, 3)
    );
    // The host checkpointed after the third record only.
    host.source
        .commit(&[(format!("{topic}/0"), 3)].into_iter().collect());
    host.stop();
    producer.produce(5..6);
    let host = start(&params);
    let rest = host.messages(3, &mut problems);
    let indexes: Vec<u64> = rest.iter().map(|m| index(&m.payload)).collect();
    assert_eq!(
        indexes,
        [3, 4, 5],
        "resumes after the checkpoint: {problems:?}"
    );
}

#[test]
fn idempotent_sink_delivers_every_record_once() {
    let Some(brokers) = broker("idempotent_sink_delivers_every_record_once") else {
        return;
    };
    let topic = unique("exactly-once");
    create_topic(&brokers, &topic, 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = kafka(
        "Out",
        &brokers,
        &[
            ("topic", s(&topic)),
            ("exactly_once", ConfigValue::Bool(true)),
            ("compression_type", s("gzip")),
            ("linger_ms", ConfigValue::Int(1)),
            ("batch_size", ConfigValue::Int(2)),
        ],
    );
    let mut out = sink(&config, dir.path());
    for i in 0..5 {
        out.send(record(i)).expect("queued");
    }
    out.close().expect("closed cleanly");
    assert_eq!(out.metrics().sent, 5, "{:?}", out.metrics());
    let raw = read_raw(&brokers, &topic, 1, 5);
    let indexes: Vec<u64> = raw.iter().map(|(_, p)| index(p)).collect();
    assert_eq!(indexes, [0, 1, 2, 3, 4]);
}

#[test]
fn a_barrier_waits_for_every_delivery_report_and_records_carry_their_idempotency_key() {
    let Some(brokers) = broker("a_barrier_waits_for_every_delivery_report") else {
        return;
    };
    let topic = unique("barrier");
    create_topic(&brokers, &topic, 1);
    let dir = tempfile::tempdir().expect("tempdir");
    // A long linger: without the barrier the records would still wait in librdkafka.
    let config = kafka(
        "Out",
        &brokers,
        &[("topic", s(&topic)), ("linger_ms", ConfigValue::Int(2_000))],
    );
    let mut out = sink(&config, dir.path());
    for i in 0..3 {
        let id = varpulis_connectors::RecordId {
            scope: "p1/Out".into(),
            seq: 10 + i,
        };
        out.send(record(i).with_id(id)).expect("queued");
    }
    let mark = out
        .barrier(Instant::now() + WAIT)
        .expect("every record acknowledged");
    assert_eq!(mark, None);
    assert_eq!(out.metrics().sent, 3, "{:?}", out.metrics());
    assert_eq!(out.metrics().queue_depth, 0);

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", unique("raw"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + WAIT;
    let mut keys = Vec::new();
    while keys.len() < 3 && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let key = m.headers().and_then(|h| {
                h.iter()
                    .find(|h| h.key == "idempotency-key")
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            });
            keys.push(key);
        }
    }
    assert_eq!(
        keys,
        [
            Some("p1/Out:10".to_string()),
            Some("p1/Out:11".to_string()),
            Some("p1/Out:12".to_string())
        ]
    );
    out.close().expect("closed");
}

#[test]
fn sink_to_an_unreachable_broker_dead_letters_on_close_within_close_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = kafka(
        "Out",
        "127.0.0.1:1",
        &[
            ("topic", s("orders")),
            ("close_timeout", ConfigValue::Duration(1_000 * MS)),
        ],
    );
    let mut out = sink(&config, dir.path());
    for i in 0..3 {
        out.send(record(i).routed(None, Some(b"k".to_vec())))
            .expect("queued");
    }
    assert_eq!(out.metrics().queue_depth, 3);
    let start = Instant::now();
    let err = out.close().expect_err("nothing could be delivered");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert!(
        matches!(err, SinkError::Timeout { pending: 3, .. }),
        "{err}"
    );
    let m = out.metrics();
    assert_eq!(
        (m.sent, m.failed, m.dead_lettered, m.dropped, m.queue_depth),
        (0, 3, 3, 0, 0),
        "{m:?}"
    );
    let lines = dead_letters(&dir.path().join("Out.dead.jsonl"));
    let mut indexes: Vec<u64> = lines.iter().map(|l| l["i"].as_u64().expect("i")).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, [0, 1, 2]);
    for line in &lines {
        let error = line["_error"].as_str().expect("_error");
        assert!(
            error.contains("kafka://127.0.0.1:1 topic orders before close_timeout (1000ms)"),
            "{error}"
        );
    }
    assert!(matches!(out.send(record(9)), Err(SinkError::Closed { .. })));
}

#[test]
fn full_producer_queue_dead_letters_at_once_and_records_without_topic_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = kafka(
        "Out",
        "127.0.0.1:1",
        &[
            ("queue_capacity", ConfigValue::Int(2)),
            ("close_timeout", ConfigValue::Duration(200 * MS)),
        ],
    );
    let mut out = sink(&config, dir.path());
    let err = out.send(record(0)).expect_err("no topic anywhere");
    assert!(matches!(err, SinkError::NoTopic { .. }), "{err}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("has no topic"), "{err}");
    let routed = |i| record(i).routed(Some("orders".into()), None);
    out.send(routed(1)).expect("queued");
    out.send(routed(2)).expect("queued");
    let err = out.send(routed(3)).expect_err("queue full");
    assert!(
        matches!(err, SinkError::QueueFull { capacity: 2, .. }),
        "{err}"
    );
    let m = out.metrics();
    assert_eq!(
        (m.dropped_queue_full, m.dead_lettered, m.queue_depth),
        (1, 2, 2),
        "{m:?}"
    );
    let _ = out.close();
    let lines = dead_letters(&dir.path().join("Out.dead.jsonl"));
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines[1]["_error"]
        .as_str()
        .is_some_and(|e| e.starts_with("producer queue full (2 records")));
}

#[test]
fn source_reports_an_unreachable_broker_once_and_stops_promptly() {
    let mut host = Host::start(
        kafka(
            "In",
            "127.0.0.1:1",
            &[("topic", s("orders")), fast_session()],
        ),
        10,
    );
    let mut messages = Vec::new();
    let (message, fatal) = host.problem("127.0.0.1:1", &mut messages);
    assert!(!fatal, "{message}");
    assert!(
        message.starts_with("kafka 127.0.0.1:1 topic orders: "),
        "{message}"
    );
    assert!(messages.is_empty());
    // Further failures are counted, not reported again.
    std::thread::sleep(Duration::from_millis(500));
    assert!(host
        .rx
        .try_iter()
        .all(|e| !matches!(e, SourceEvent::Problem { .. })));
    assert!(host.source.metrics().errors >= 1);
    let stopped_in = host.stop();
    assert!(stopped_in < Duration::from_secs(10), "{stopped_in:?}");
}

#[test]
fn source_reports_a_broker_outage_and_its_recovery_and_loses_nothing() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("orders", 1, 1).expect("topic");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut out = sink(
        &kafka("Out", &brokers, &[("topic", s("orders"))]),
        dir.path(),
    );
    let mut host = Host::start(
        kafka(
            "In",
            &brokers,
            &[("topic", s("orders")), group("outage"), fast_session()],
        ),
        100,
    );
    for i in 0..3 {
        out.send(record(i)).expect("queued");
    }
    out.flush().expect("delivered");
    let mut problems = Vec::new();
    let mut got = host.messages(3, &mut problems);

    cluster.broker_down(1).expect("broker down");
    let (message, fatal) = host.problem(&brokers, &mut got);
    assert!(!fatal && message.contains("retrying"), "{message}");
    // Records sent during the outage wait in the producer.
    for i in 3..6 {
        out.send(record(i)).expect("queued");
    }
    cluster.broker_up(1).expect("broker up");
    let (message, fatal) = host.problem("brokers answer again", &mut got);
    assert!(!fatal, "{message}");
    out.close().expect("delivered after the outage");
    let missing = 6usize.saturating_sub(got.len());
    got.extend(host.messages(missing, &mut problems));
    let mut indexes: Vec<u64> = got.iter().map(|m| index(&m.payload)).collect();
    indexes.sort_unstable();
    indexes.dedup();
    assert_eq!(indexes, [0, 1, 2, 3, 4, 5]);
    assert!(host.source.metrics().reconnects >= 1);
    host.stop();
}

#[test]
fn a_producer_the_cluster_refuses_dead_letters_with_a_refusal() {
    // Refusing the idempotent producer its id for lack of cluster authorization is fatal in
    // librdkafka: every later produce fails at once.
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("orders", 1, 1).expect("topic");
    cluster.request_errors(
        RDKafkaApiKey::InitProducerId,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = kafka(
        "Out",
        &cluster.bootstrap_servers(),
        &[
            ("topic", s("orders")),
            ("exactly_once", ConfigValue::Bool(true)),
            ("close_timeout", ConfigValue::Duration(500 * MS)),
        ],
    );
    let mut out = sink(&config, dir.path());
    let deadline = Instant::now() + WAIT;
    let err = loop {
        // A record queued before the refusal arrived is failed and dead-lettered by its report.
        if let Err(e @ SinkError::Refused { .. }) = out.send(record(0)) {
            break e;
        }
        assert!(Instant::now() < deadline, "the producer was never refused");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "kafka://{} topic orders refused the record: ",
            cluster.bootstrap_servers()
        )),
        "{text}"
    );
    assert!(text.contains("uthoriz"), "{text}");
    let _ = out.close();
    let lines = dead_letters(&dir.path().join("Out.dead.jsonl"));
    assert!(
        lines.iter().any(|l| l["_error"]
            .as_str()
            .is_some_and(|e| e.contains("refused the record"))),
        "{lines:?}"
    );
}

#[test]
fn this_build_has_tls_sasl_scram_and_zstd() {
    let features = ClientConfig::new()
        .create_native_config()
        .and_then(|c| c.get("builtin.features"))
        .expect("builtin.features");
    let features: Vec<&str> = features.split(',').collect();
    for feature in ["ssl", "sasl_scram", "zstd", "gzip", "snappy", "lz4"] {
        assert!(
            features.contains(&feature),
            "{feature} missing: {features:?}"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let context = SinkContext::new(dir.path());
    let props = |p: &[&str]| {
        (
            "properties",
            ConfigValue::Array(p.iter().map(|v| s(v)).collect()),
        )
    };
    // The brokers are not contacted when a sink opens: these only check the configuration.
    let scram = props(&[
        "security.protocol=SASL_SSL",
        "sasl.mechanism=SCRAM-SHA-256",
        "sasl.username=varpulis",
        "sasl.password=secret",
    ]);
    let zstd = ("compression_type", s("zstd"));
    let mut out = open_sink(&kafka("Out", "127.0.0.1:1", &[scram, zstd]), &context)
        .expect("SASL_SSL with SCRAM and zstd");
    out.close().expect("nothing sent");
    // librdkafka reads `ssl.ca.location` when the client is created.
    let bogus = dir.path().join("bogus-ca.pem");
    std::fs::write(&bogus, "not a certificate\n").expect("write");
    let location = format!("ssl.ca.location={}", bogus.display());
    let err = open_sink(
        &kafka(
            "Out",
            "127.0.0.1:1",
            &[props(&["security.protocol=SSL", &location])],
        ),
        &context,
    )
    .err()
    .expect("not a CA file");
    assert!(
        err.to_string()
            .contains("parameter `properties`: librdkafka rejected the configuration"),
        "{err}"
    );
    assert!(err.to_string().contains("ssl.ca.location"), "{err}");
}

#[test]
fn config_errors_name_the_parameter_and_suggest_fixes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let context = SinkContext::new(dir.path());
    let sink_err = |params: &[(&str, ConfigValue)]| -> ConfigError {
        open_sink(&kafka("Out", "127.0.0.1:9092", params), &context)
            .err()
            .expect("invalid")
    };
    assert_eq!(
        sink_err(&[("compresion_type", s("gzip"))]).to_string(),
        "connector `Out`: unknown parameter `compresion_type` for a kafka sink; did you mean `compression_type`?"
    );
    let err = sink_err(&[(
        "properties",
        ConfigValue::Array(vec![s("sasl.password=${VARPULIS_TEST_UNSET_KAFKA_SECRET}")]),
    )]);
    assert!(
        matches!(&err, ConfigError::MissingEnvVar { var, param, .. }
            if var == "VARPULIS_TEST_UNSET_KAFKA_SECRET" && param == "properties"),
        "{err}"
    );
    let err = sink_err(&[(
        "properties",
        ConfigValue::Array(vec![s("no.such.property=1")]),
    )]);
    assert!(
        err.to_string()
            .contains("parameter `properties`: librdkafka rejected the configuration"),
        "{err}"
    );

    let source_err = |config: ConnectorConfig| -> ConfigError {
        let (tx, _rx) = crossbeam_channel::bounded(1);
        let sender = SourceSender::new(tx, Arc::default());
        let config = SourceConfig::new(config, 0);
        open_source(&config, &SourceContext::new("."), sender)
            .err()
            .expect("invalid")
    };
    let err = source_err(
        ConnectorConfig::new("In", "kafka")
            .param("brokers", s("${VARPULIS_TEST_UNSET_KAFKA_BROKERS}"))
            .param("topic", s("orders")),
    );
    assert_eq!(
        err.to_string(),
        "connector `In`: parameter `brokers` uses `${VARPULIS_TEST_UNSET_KAFKA_BROKERS}` but the environment variable `VARPULIS_TEST_UNSET_KAFKA_BROKERS` is not set"
    );
    let err = source_err(kafka("In", "127.0.0.1:9092", &[("topik", s("orders"))]));
    assert_eq!(
        err.to_string(),
        "connector `In`: unknown parameter `topik` for a kafka source; did you mean `topic`?"
    );
    // The sink's parameters are fine on a connector also used as a source.
    let (tx, _rx) = crossbeam_channel::bounded(1);
    let config = SourceConfig::new(
        kafka(
            "In",
            "127.0.0.1:1",
            &[("topic", s("orders")), ("linger_ms", ConfigValue::Int(5))],
        ),
        0,
    );
    let mut source = open_source(
        &config,
        &SourceContext::new("."),
        SourceSender::new(tx, Arc::default()),
    )
    .expect("sink parameters are tolerated");
    source.stop();
}

#[test]
fn a_trace_context_rides_a_record_header_from_the_sink_to_the_source() {
    let Some(brokers) = broker("a_trace_context_rides_a_record_header") else {
        return;
    };
    let topic = unique("traced");
    create_topic(&brokers, &topic, 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let context = varpulis_connectors::TraceParent::parse(
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    );
    assert!(context.is_some());
    let mut out = sink(&kafka("Out", &brokers, &[("topic", s(&topic))]), dir.path());
    out.send(record(0).with_trace_parent(context))
        .expect("queued");
    out.send(record(1)).expect("queued");
    out.barrier(Instant::now() + WAIT).expect("delivered");
    out.close().expect("closed");

    // A producer outside varpulis sends a bad header: ignored and counted.
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("producer");
    let payload = r#"{"event_type":"Order","i":2}"#;
    producer
        .send(BaseRecord::<(), _>::to(&topic).payload(payload).headers(
            rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
                key: "traceparent",
                value: Some("00-not-a-context"),
            }),
        ))
        .expect("queued");
    producer.flush(Duration::from_secs(10)).expect("flushed");

    let mut host = Host::start(
        kafka(
            "In",
            &brokers,
            &[
                ("topic", s(&topic)),
                group(&unique("traced")),
                fast_session(),
            ],
        ),
        100,
    );
    let mut problems = Vec::new();
    let got = host.messages(3, &mut problems);
    let contexts: Vec<_> = got.iter().map(|m| m.trace_parent).collect();
    assert_eq!(contexts, [context, None, None]);
    assert_eq!(host.source.metrics().invalid_trace_context, 1);
    host.stop();
}

/// Waits until the source's lag satisfies `ok`, returning the last value seen.
fn wait_for_lag(host: &Host, ok: impl Fn(Option<u64>) -> bool) -> Option<u64> {
    let deadline = Instant::now() + WAIT;
    loop {
        let lag = host.source.metrics().lag;
        if ok(lag) || Instant::now() > deadline {
            return lag;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_lag_counts_what_the_host_has_not_taken_yet_even_under_back_pressure() {
    // librdkafka's mock cluster: tansu answers a ListOffsets for the latest offset per record
    // batch, not per record, so its high watermarks cannot measure a lag.
    let cluster = MockCluster::new(1).expect("mock cluster");
    let brokers = cluster.bootstrap_servers();
    let topic = "lag";
    cluster.create_topic(topic, 2, 1).expect("topic");
    let producer = OrderProducer::new(&brokers, topic);
    producer.produce(0..200);
    let params = [("topic", s(topic)), group("lag-group"), fast_session()];
    // A host queue of one event, and a host that takes only ten: the reader stays blocked.
    let mut host = Host::start(kafka("In", &brokers, &params), 1);
    let mut problems = Vec::new();
    host.messages(10, &mut problems);
    let lag = wait_for_lag(&host, |l| l.is_some_and(|n| n >= 180));
    // Besides the ten taken, the one queued and the one the reader holds are not lag.
    assert!(
        lag.is_some_and(|n| (188..=190).contains(&n)),
        "lag while blocked: {lag:?}; problems: {problems:?}"
    );
    // Once the host has everything, nothing is left behind.
    host.messages(190, &mut problems);
    let lag = wait_for_lag(&host, |l| l == Some(0));
    assert_eq!(lag, Some(0), "lag after draining; problems: {problems:?}");
    producer.produce(200..230);
    host.messages(30, &mut problems);
    assert_eq!(wait_for_lag(&host, |l| l == Some(0)), Some(0));
    host.stop();
}

/// Every record a `read_committed` consumer sees in partition 0 of `topic` within a couple of
/// seconds, as indexes.
fn read_committed(brokers: &str, topic: &str) -> Vec<u64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("committed"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(2) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(index(m.payload().unwrap_or_default()));
            quiet_since = Instant::now();
        }
    }
    out
}

/// Records `range` with the ids a pipeline `p1` gives its connector `Out`.
fn send_with_ids(sink: &mut dyn Sink, range: std::ops::Range<u64>) {
    for i in range {
        let id = varpulis_connectors::RecordId {
            scope: "p1/Out".into(),
            seq: i,
        };
        sink.send(record(i).with_id(id)).expect("sent");
    }
}

/// Checks a `read_committed` view against the records `expected`: each exactly once, except
/// that records of `aborted` transactions may show up again. tansu, the test broker, hides a
/// transaction until it commits but does not hide aborted ones from `read_committed`
/// consumers (Kafka does, with its aborted-transaction index); librdkafka's mock cluster hides
/// neither.
fn assert_published(seen: &[u64], expected: std::ops::Range<u64>, aborted: &[u64]) {
    let mut counts = std::collections::BTreeMap::new();
    for i in seen {
        *counts.entry(*i).or_insert(0u32) += 1;
    }
    for i in expected.clone() {
        let n = counts.get(&i).copied().unwrap_or(0);
        assert!(n >= 1, "record {i} missing from {seen:?}");
        assert!(
            n == 1 || aborted.contains(&i),
            "record {i} published {n} times: {seen:?}"
        );
    }
    assert!(
        counts.keys().all(|i| expected.contains(i)),
        "records beyond {expected:?}: {seen:?}"
    );
}

#[test]
fn a_transactional_sink_publishes_at_the_checkpoint_and_a_restart_goes_back_when_it_did_not() {
    let Some(brokers) = broker("a_transactional_sink_publishes_at_the_checkpoint") else {
        return;
    };
    let out = unique("txn-out");
    create_topic(&brokers, &out, 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = kafka(
        "Out",
        &brokers,
        &[
            ("topic", s(&out)),
            ("transactional", ConfigValue::Bool(true)),
        ],
    );
    let deadline = || Instant::now() + Duration::from_secs(10);

    // Phase one stages, phase two (after the host's checkpoint is durable) publishes.
    let mut first = sink(&config, dir.path());
    send_with_ids(first.as_mut(), 0..5);
    let mark5 = first.barrier(deadline()).expect("barrier").expect("a mark");
    assert_eq!(mark5["seq"], 5, "{mark5}");
    assert_eq!(
        read_committed(&brokers, &out),
        Vec::<u64>::new(),
        "nothing is visible before the commit"
    );
    first.committed().expect("committed");
    assert_eq!(read_committed(&brokers, &out), (0..5).collect::<Vec<_>>());

    // A crash after the barrier of the next checkpoint, before its commit: the process is
    // gone with its transaction open, whose records stay invisible.
    send_with_ids(first.as_mut(), 5..8);
    let mark8 = first.barrier(deadline()).expect("barrier").expect("a mark");
    assert_eq!(mark8["seq"], 8, "{mark8}");
    std::mem::forget(first);
    assert_eq!(read_committed(&brokers, &out), (0..5).collect::<Vec<_>>());

    // The restart fences the old producer; its checkpoint's records were never published, so
    // the restore refuses that checkpoint, the host goes back to the one before and replays.
    let mut second = sink(&config, dir.path());
    let err = second.restore(&mark8).expect_err("not published");
    assert!(
        matches!(err, varpulis_connectors::SinkError::NotCommitted { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("Kafka has 5"), "{err}");
    second
        .restore(&mark5)
        .expect("the checkpoint before was published");
    send_with_ids(second.as_mut(), 5..8);
    second.barrier(deadline()).expect("barrier");
    second.committed().expect("committed");
    assert_published(&read_committed(&brokers, &out), 0..8, &[5, 6, 7]);
    second.close().expect("close");

    // A restart from a checkpoint older than Kafka's progress skips what was published; a
    // close with checkpoints aborts what no checkpoint covered (a restart replays it).
    let mut third = sink(&config, dir.path());
    third.restore(&mark5).expect("older than the progress");
    send_with_ids(third.as_mut(), 5..10);
    third.barrier(deadline()).expect("barrier");
    third.committed().expect("committed");
    assert_published(&read_committed(&brokers, &out), 0..10, &[5, 6, 7]);
    send_with_ids(third.as_mut(), 10..12);
    third.close().expect("close");

    // Without checkpoints, close publishes what is open.
    let mut plain = sink(&config, dir.path());
    send_with_ids(plain.as_mut(), 10..13);
    plain.close().expect("close");
    assert_published(&read_committed(&brokers, &out), 0..13, &[5, 6, 7, 10, 11]);
}

/// The partition of a kafka message, from its position key (`topic/partition`... any text ending
/// in the partition number).
fn partition_of(m: &SourceMessage) -> i32 {
    let key = &m
        .position
        .as_ref()
        .expect("kafka messages have a position")
        .key;
    let digits: String = key
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no partition in {key:?}"))
}

/// Messages `host` receives within `for_`, with problems collected in `problems`.
fn drain(host: &Host, for_: Duration, problems: &mut Vec<(String, bool)>) -> Vec<SourceMessage> {
    let deadline = Instant::now() + for_;
    let mut out = Vec::new();
    while let Ok(event) = host.rx.recv_deadline(deadline) {
        match event {
            SourceEvent::Message(m) => out.push(m),
            SourceEvent::Problem { message, fatal, .. } => problems.push((message, fatal)),
            SourceEvent::Ended { .. } => panic!("a kafka source never ends"),
        }
    }
    out
}

/// Produces one `Order` record per partition of a 6-partition topic, indexes from `first`.
fn produce_round(producer: &BaseProducer, topic: &str, first: u64) {
    for p in 0..6u64 {
        let payload = format!(r#"{{"event_type":"Order","i":{}}}"#, first + p);
        producer
            .send(
                BaseRecord::<(), _>::to(topic)
                    .payload(&payload)
                    .partition(p as i32),
            )
            .expect("queued");
    }
    producer.flush(Duration::from_secs(10)).expect("flushed");
}

/// Two sources of one group on a 6-partition topic: once the group is stable each reads a
/// disjoint, non-empty set of partitions; when one leaves, the other takes all six over; and no
/// record is lost on the way (re-reads during a rebalance are allowed: at least once). What
/// scaling out over a consumer group (docs/OPERATIONS.md, "Scaling out") builds on.
fn a_group_shares_partitions_and_hands_them_over(brokers: &str, topic: &str, group_id: &str) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("producer");
    let config = |name: &str| {
        kafka(
            name,
            brokers,
            &[("topic", s(topic)), group(group_id), fast_session()],
        )
    };
    let mut a = Host::start(config("A"), 10_000);
    let mut b = Host::start(config("B"), 10_000);
    let mut problems = Vec::new();
    let mut seen: Vec<u64> = Vec::new();
    let mut next = 0u64;
    // Produce a round per partition until one round is split between the two members.
    let deadline = Instant::now() + 3 * WAIT;
    let split = loop {
        assert!(
            Instant::now() < deadline,
            "the group never split the partitions between its two members; problems: {problems:?}"
        );
        produce_round(&producer, topic, next);
        let round = next..next + 6;
        next += 6;
        let got_a = drain(&a, Duration::from_secs(2), &mut problems);
        let got_b = drain(&b, Duration::from_secs(2), &mut problems);
        seen.extend(got_a.iter().chain(&got_b).map(|m| index(&m.payload)));
        let last = |got: &[SourceMessage]| -> Vec<i32> {
            let mut ps: Vec<i32> = got
                .iter()
                .filter(|m| round.contains(&index(&m.payload)))
                .map(partition_of)
                .collect();
            ps.sort_unstable();
            ps.dedup();
            ps
        };
        let (pa, pb) = (last(&got_a), last(&got_b));
        if !pa.is_empty() && !pb.is_empty() && pa.len() + pb.len() == 6 {
            break (pa, pb);
        }
    };
    assert!(
        split.0.iter().all(|p| !split.1.contains(p)),
        "members share partitions: {split:?}"
    );
    // B leaves the group: A takes all six partitions over.
    b.stop();
    let deadline = Instant::now() + 3 * WAIT;
    loop {
        assert!(
            Instant::now() < deadline,
            "A never took the partitions over; problems: {problems:?}"
        );
        produce_round(&producer, topic, next);
        let round = next..next + 6;
        next += 6;
        let got = drain(&a, Duration::from_secs(2), &mut problems);
        seen.extend(got.iter().map(|m| index(&m.payload)));
        let mut ps: Vec<i32> = got
            .iter()
            .filter(|m| round.contains(&index(&m.payload)))
            .map(partition_of)
            .collect();
        ps.sort_unstable();
        ps.dedup();
        if ps.len() == 6 {
            break;
        }
    }
    // Whatever the rebalances delayed arrives at A too: nothing produced is lost.
    let deadline = Instant::now() + WAIT;
    loop {
        let mut distinct = seen.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct == (0..next).collect::<Vec<_>>() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "records lost: {} of {next} seen; problems: {problems:?}",
            distinct.len()
        );
        seen.extend(
            drain(&a, Duration::from_millis(500), &mut problems)
                .iter()
                .map(|m| index(&m.payload)),
        );
    }
    assert!(
        problems.iter().all(|(_, fatal)| !fatal),
        "fatal problems: {problems:?}"
    );
    a.stop();
}

#[test]
fn a_group_on_the_mock_cluster_shares_partitions_and_hands_them_over() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("orders", 6, 1).expect("topic");
    a_group_shares_partitions_and_hands_them_over(&cluster.bootstrap_servers(), "orders", "shared");
}

#[test]
fn a_group_on_a_broker_shares_partitions_and_hands_them_over() {
    let Some(brokers) = broker("a_group_on_a_broker_shares_partitions_and_hands_them_over") else {
        return;
    };
    let topic = unique("shared");
    create_topic(&brokers, &topic, 6);
    a_group_shares_partitions_and_hands_them_over(&brokers, &topic, &unique("shared-group"));
}

/// What a partition host saw: each request, when it answered it, and its partitions.
type Requests = Arc<std::sync::Mutex<Vec<(Instant, &'static str, Vec<i32>)>>>;

/// A source of `group_id` with `state_per_partition: true` whose host answers every
/// assignment with `start` (the offset to resume at, for every partition) and records the
/// requests; `answer_revocations` off leaves revocations unanswered (a host that is busy or
/// stuck). Returns the host and the requests it saw.
fn partitioned(
    brokers: &str,
    topic: &str,
    group_id: &str,
    start: Option<u64>,
    answer_revocations: Arc<AtomicBool>,
) -> (Host, Requests) {
    let (tx, rx) = crossbeam_channel::bounded(10_000);
    let stopping = Arc::new(AtomicBool::new(false));
    let sender = SourceSender::new(tx, Arc::clone(&stopping));
    let (requests_tx, requests_rx) = crossbeam_channel::unbounded();
    let mut config = SourceConfig::new(
        kafka(
            "Orders",
            brokers,
            &[
                ("topic", s(topic)),
                group(group_id),
                fast_session(),
                ("state_per_partition", ConfigValue::Bool(true)),
            ],
        ),
        7,
    );
    config.checkpointed = true;
    config.partitions = Some(PartitionHost {
        tx: requests_tx,
        timeout: Duration::from_secs(20),
    });
    let seen: Requests = Arc::default();
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        let numbers = |ps: &[PartitionId]| ps.iter().map(|p| p.partition).collect::<Vec<_>>();
        for request in requests_rx {
            match request {
                Rebalance::Assigned { partitions, reply } => {
                    let starts = partitions.iter().map(|p| (p.clone(), start)).collect();
                    let _ = reply.send(Ok(starts));
                    let entry = (Instant::now(), "assigned", numbers(&partitions));
                    log.lock().expect("log").push(entry);
                }
                Rebalance::Revoked { partitions, reply } => {
                    if answer_revocations.load(Ordering::Acquire) {
                        let entry = (Instant::now(), "revoked", numbers(&partitions));
                        log.lock().expect("log").push(entry);
                        let _ = reply.send(());
                    }
                }
            }
        }
    });
    let source = open_source(&config, &SourceContext::new("."), sender)
        .unwrap_or_else(|e| panic!("valid kafka source: {e}"));
    (
        Host {
            source,
            rx,
            stopping,
        },
        seen,
    )
}

/// The partitions `seen` last says this member owns.
fn owned(seen: &Requests) -> Vec<i32> {
    let mut owned = std::collections::BTreeSet::new();
    for (_, kind, ps) in seen.lock().expect("log").iter() {
        for p in ps {
            if *kind == "assigned" {
                owned.insert(*p);
            } else {
                owned.remove(p);
            }
        }
    }
    owned.into_iter().collect()
}

/// With per-partition state the source asks its host: an assigned partition starts at the
/// offset the host answers (not the group's), a partition moving to another member is
/// revoked from this one (and the host answered) before the other is asked to take it, and a
/// source whose host stops answering still stops within its bound.
#[test]
fn a_partition_host_decides_where_partitions_start_and_hears_of_revocations_first() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("orders", 6, 1).expect("topic");
    let brokers = cluster.bootstrap_servers();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("producer");
    // Ten records per partition: offsets 0..10, i = round * 6 + partition.
    for round in 0..10 {
        produce_round(&producer, "orders", round * 6);
    }
    let answering = Arc::new(AtomicBool::new(true));
    let (mut a, seen_a) = partitioned(&brokers, "orders", "hosted", Some(6), answering.clone());
    let mut problems = Vec::new();
    let got = a.messages(24, &mut problems);
    let offsets: Vec<u64> = got
        .iter()
        .map(|m| m.position.as_ref().expect("position").start)
        .collect();
    assert!(
        offsets.iter().all(|o| *o >= 6),
        "read before the host's offset: {offsets:?}"
    );
    let mut indexes: Vec<u64> = got.iter().map(|m| index(&m.payload)).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, (36..60).collect::<Vec<_>>());
    assert_eq!(owned(&seen_a), (0..6).collect::<Vec<_>>());

    // B joins: some partitions move. A's host hears of each before B's host is asked.
    let (mut b, seen_b) = partitioned(&brokers, "orders", "hosted", None, answering.clone());
    let deadline = Instant::now() + 3 * WAIT;
    let mut from_b = Vec::new();
    while owned(&seen_b).is_empty() || owned(&seen_a).len() + owned(&seen_b).len() != 6 {
        assert!(
            Instant::now() < deadline,
            "B never got partitions: A {:?}, B {:?}",
            seen_a.lock().expect("log"),
            seen_b.lock().expect("log")
        );
        drain(&a, Duration::from_millis(200), &mut problems);
        from_b.extend(drain(&b, Duration::from_millis(200), &mut problems));
    }
    let (log_a, log_b) = (
        seen_a.lock().expect("log").clone(),
        seen_b.lock().expect("log").clone(),
    );
    for (at, _, ps) in log_b.iter().filter(|(_, k, _)| *k == "assigned") {
        for p in ps {
            let revoked = log_a
                .iter()
                .filter(|(_, k, rs)| *k == "revoked" && rs.contains(p))
                .map(|(t, _, _)| *t)
                .next_back();
            assert!(
                revoked.is_some_and(|t| t <= *at),
                "partition {p} reached B before A's host let it go: A {log_a:?}, B {log_b:?}"
            );
        }
    }
    // B's host had no checkpoint (`None`): B starts where the group says (nothing committed:
    // `start`, the earliest record), so it reads its partitions from offset 0.
    from_b.extend(drain(&b, Duration::from_secs(2), &mut problems));
    assert!(
        from_b
            .iter()
            .any(|m| m.position.as_ref().is_some_and(|p| p.start == 0)),
        "B did not start at the group's default"
    );

    // A host that stops answering does not hold the source's stop beyond its bound: B leaves,
    // A's callback waits for a revocation answer that never comes, and A is stopped then.
    answering.store(false, Ordering::Release);
    let took = b.stop();
    assert!(took < Duration::from_secs(15), "B took {took:?} to stop");
    drain(&a, Duration::from_secs(2), &mut problems);
    let took = a.stop();
    assert!(took < Duration::from_secs(10), "A took {took:?} to stop");
    assert!(
        problems.iter().all(|(_, fatal)| !fatal),
        "fatal problems: {problems:?}"
    );
}

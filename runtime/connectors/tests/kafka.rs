//! The kafka sink against a real Kafka-protocol broker (tansu under `scripts/brokers`, or any
//! Kafka named by `VARPULIS_TEST_KAFKA`), and an unreachable address for dead-lettering.
//!
//! Broker tests skip with a message when `VARPULIS_TEST_KAFKA` is unset, unless
//! `VARPULIS_REQUIRE_BROKERS=1` (CI), where a missing or unreachable broker fails them. Every
//! test uses its own topics and consumer group (process id, test name, time), so they run in
//! parallel and can be re-run against a broker that keeps its state.

#![cfg(feature = "kafka")]

use std::future::Future;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll, Wake};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use varpulis_connectors::{
    open_sink, ConfigError, ConfigValue, ConnectorConfig, Record, Sink, SinkContext, SinkError,
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
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("no topic"), "{err}");
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
    let err = sink_err(&[("compression_type", s("zstd"))]).to_string();
    let features = ClientConfig::new()
        .create_native_config()
        .and_then(|c| c.get("builtin.features"))
        .expect("builtin.features");
    if !features.split(',').any(|f| f == "zstd") {
        assert!(
            err.contains("`zstd` is not available in this build of librdkafka"),
            "{err}"
        );
    }
    if !features.split(',').any(|f| f == "ssl") {
        let err = sink_err(&[(
            "properties",
            ConfigValue::Array(vec![s("security.protocol=SSL")]),
        )]);
        assert!(
            err.to_string()
                .contains("parameter `properties`: librdkafka rejected the configuration"),
            "{err}"
        );
    }
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
}

//! The mqtt source and sink against real mosquitto brokers: the shared one named by
//! `VARPULIS_TEST_MQTT` (`scripts/brokers start`) and, for restarts and logins, brokers each test
//! starts on a free port of its own.
//!
//! Without `VARPULIS_TEST_MQTT` (or without `/usr/sbin/mosquitto`) the broker tests print why
//! and return; with `VARPULIS_REQUIRE_BROKERS=1` that is a failure instead. Topics carry the
//! process id and the test name, so tests run in parallel and runs do not see each other.
//! Tests of behaviour both protocol versions share run once with `protocol: 5` and once with
//! `protocol: "3.1.1"` ([`PROTOCOLS`]); the user-property tests are MQTT 5 only.
#![cfg(feature = "mqtt")]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use serde_json::Value;
use varpulis_connectors::{
    open_sink, open_source, ConfigError, ConfigValue, ConnectorConfig, Record, RecordId, Sink,
    SinkContext, SinkError, Source, SourceConfig, SourceContext, SourceEvent, SourceMessage,
    SourceSender, TraceParent,
};

const MS: u64 = 1_000_000;
const MOSQUITTO: &str = "/usr/sbin/mosquitto";
/// Upper bound of every wait; tests poll and finish as soon as the condition holds.
const PATIENCE: Duration = Duration::from_secs(20);
/// The values of the `protocol` parameter that tests of shared behaviour run with.
const PROTOCOLS: [&str; 2] = ["5", "3.1.1"];

fn required() -> bool {
    std::env::var("VARPULIS_REQUIRE_BROKERS").is_ok_and(|v| v == "1")
}

/// Skips (or fails under `VARPULIS_REQUIRE_BROKERS=1`) with `why`.
fn skip(test: &str, why: &str) {
    assert!(!required(), "{test}: {why} (VARPULIS_REQUIRE_BROKERS=1)");
    eprintln!("skipping {test}: {why}; run `eval \"$(scripts/brokers env)\"` after `scripts/brokers start`");
}

/// The shared broker's `host:port`, if it is configured and reachable.
fn broker(test: &str) -> Option<String> {
    let Ok(address) = std::env::var("VARPULIS_TEST_MQTT") else {
        skip(test, "VARPULIS_TEST_MQTT is not set");
        return None;
    };
    let reachable = address
        .parse()
        .ok()
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
    if !reachable {
        skip(test, &format!("no MQTT broker answers at {address}"));
        return None;
    }
    Some(address)
}

/// A topic prefix no other test or run uses.
fn base(test: &str) -> String {
    format!("varpulis-test/{}/{test}", std::process::id())
}

fn s(v: &str) -> ConfigValue {
    ConfigValue::Str(v.to_string())
}

fn connector(name: &str, url: &str, extra: &[(&str, ConfigValue)]) -> ConnectorConfig {
    extra.iter().fold(
        ConnectorConfig::new(name, "mqtt").param("url", s(url)),
        |c, (k, v)| c.param(*k, v.clone()),
    )
}

/// `connector(...)` speaking `protocol` (`"5"` or `"3.1.1"`).
fn connector_on(
    protocol: &str,
    name: &str,
    url: &str,
    extra: &[(&str, ConfigValue)],
) -> ConnectorConfig {
    connector(name, url, extra).param("protocol", s(protocol))
}

/// A running source and the host's end of its channel.
struct Subscription {
    source: Box<dyn Source>,
    events: Receiver<SourceEvent>,
    _stopping: Arc<AtomicBool>,
}

fn subscribe(config: ConnectorConfig) -> Subscription {
    subscribe_with_capacity(config, 1024)
}

fn subscribe_with_capacity(config: ConnectorConfig, capacity: usize) -> Subscription {
    let (tx, events) = crossbeam_channel::bounded(capacity);
    let stopping = Arc::new(AtomicBool::new(false));
    let sender = SourceSender::new(tx, stopping.clone());
    let source = open_source(
        &SourceConfig::new(config, 7),
        &SourceContext::new("."),
        sender,
    )
    .expect("valid mqtt source");
    Subscription {
        source,
        events,
        _stopping: stopping,
    }
}

impl Subscription {
    /// Waits for the next event that `keep` selects, ignoring the others.
    fn next(&self, what: &str, keep: impl Fn(&SourceEvent) -> bool) -> SourceEvent {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.events.recv_deadline(deadline) {
                Ok(event) if keep(&event) => return event,
                Ok(_) => {}
                Err(_) => panic!("no {what} within {PATIENCE:?}"),
            }
        }
    }

    /// The next message that is not a readiness probe: (payload, place).
    fn message(&self) -> (Value, String) {
        let m = self.source_message();
        let payload = serde_json::from_slice(&m.payload).expect("JSON payload");
        assert_eq!(m.source, 7);
        assert!(m.received_ms > 0);
        (payload, m.place)
    }

    /// The next message that is not a readiness probe, as the host gets it.
    fn source_message(&self) -> SourceMessage {
        let event = self.next("message", |e| match e {
            SourceEvent::Message(m) => !m.payload.starts_with(b"{\"probe\""),
            _ => false,
        });
        let SourceEvent::Message(m) = event else {
            unreachable!("filtered above")
        };
        m
    }

    /// Publishes probes to `topic` until the source delivers one, so the subscription is live.
    fn wait_until_subscribed(&self, publisher: &Publisher, topic: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            publisher.publish(topic, b"{\"probe\":true}");
            let until = Instant::now() + Duration::from_millis(200);
            while let Ok(event) = self.events.recv_deadline(until) {
                if matches!(&event, SourceEvent::Message(m) if m.payload.starts_with(b"{\"probe\""))
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the source never subscribed to {topic}"
            );
        }
    }
}

/// A plain rumqttc publisher (QoS 1), independent of the sink under test.
struct Publisher {
    client: rumqttc::Client,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Publisher {
    fn new(address: &str) -> Publisher {
        let (host, port) = address.rsplit_once(':').expect("host:port");
        let id = format!(
            "varpulis-test-pub-{}-{port}-{}",
            std::process::id(),
            unique()
        );
        let options = rumqttc::MqttOptions::new(id, host, port.parse().expect("port"));
        let (client, mut connection) = rumqttc::Client::new(options, 100);
        let thread = std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        Publisher {
            client,
            thread: Some(thread),
        }
    }

    fn publish(&self, topic: &str, payload: &[u8]) {
        self.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload.to_vec())
            .expect("publish queued");
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.client.disconnect();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A mosquitto of the test's own, killed on drop.
struct Mosquitto {
    child: Child,
    port: u16,
    conf: PathBuf,
}

impl Mosquitto {
    /// Starts mosquitto on `port`, or returns `None` (after `skip`) when it is not installed.
    fn start(test: &str, dir: &Path, port: u16, extra: &str) -> Option<Mosquitto> {
        if !Path::new(MOSQUITTO).exists() {
            skip(test, &format!("{MOSQUITTO} is not installed"));
            return None;
        }
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\npersistence false\n{extra}\n"),
        )
        .expect("write mosquitto.conf");
        Some(Mosquitto::spawn(conf, port))
    }

    fn spawn(conf: PathBuf, port: u16) -> Mosquitto {
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not open port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Mosquitto { child, port, conf }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(mut self) -> Mosquitto {
        self.kill();
        Mosquitto::spawn(self.conf.clone(), self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

fn record(i: u64) -> Record {
    Record::from_json(format!(r#"{{"event_type":"Alert","i":{i}}}"#).as_bytes()).expect("valid")
}

fn dead_letters(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .map(|text| {
            text.lines()
                .map(|l| serde_json::from_str(l).expect("dead-letter line is JSON"))
                .collect()
        })
        .unwrap_or_default()
}

fn open(config: &ConnectorConfig, dir: &Path) -> Box<dyn Sink> {
    open_sink(config, &SinkContext::new(dir)).expect("valid mqtt sink")
}

#[test]
fn source_delivers_messages_in_order_with_their_topic() {
    for protocol in PROTOCOLS {
        check_source_delivers_in_order(protocol);
    }
}

fn check_source_delivers_in_order(protocol: &str) {
    let Some(address) = broker("source_delivers_messages_in_order_with_their_topic") else {
        return;
    };
    let base = base(&format!("source-order-{protocol}"));
    let sub = subscribe(connector_on(
        protocol,
        "Sensors",
        &format!("mqtt://{address}"),
        &[("topic", s(&format!("{base}/#")))],
    ));
    assert_eq!(
        sub.source.describe(),
        format!("mqtt://{address} topic {base}/#")
    );
    let publisher = Publisher::new(&address);
    sub.wait_until_subscribed(&publisher, &format!("{base}/probe"));
    let topic = format!("{base}/sensors/1");
    for i in 0..20 {
        publisher.publish(
            &topic,
            format!(r#"{{"type":"Reading","i":{i}}}"#).as_bytes(),
        );
    }
    for i in 0..20 {
        let (payload, place) = sub.message();
        assert_eq!(payload["i"], i);
        assert_eq!(place, format!("mqtt topic {topic}"));
    }
    let metrics = sub.source.metrics();
    assert!(metrics.received >= 20, "{metrics:?}");
    assert_eq!(metrics.errors, 0, "{metrics:?}");
}

#[test]
fn source_subscribes_to_every_topic_of_an_array() {
    let Some(address) = broker("source_subscribes_to_every_topic_of_an_array") else {
        return;
    };
    let base = base("source-array");
    let sub = subscribe(connector(
        "Sensors",
        &address,
        &[(
            "topic",
            ConfigValue::Array(vec![s(&format!("{base}/a")), s(&format!("{base}/b/+"))]),
        )],
    ));
    let publisher = Publisher::new(&address);
    sub.wait_until_subscribed(&publisher, &format!("{base}/a"));
    publisher.publish(&format!("{base}/b/x"), br#"{"from":"b"}"#);
    publisher.publish(&format!("{base}/c"), br#"{"from":"c"}"#);
    publisher.publish(&format!("{base}/a"), br#"{"from":"a"}"#);
    let (first, place) = sub.message();
    assert_eq!(
        (first["from"].as_str(), place),
        (Some("b"), format!("mqtt topic {base}/b/x"))
    );
    let (second, _) = sub.message();
    assert_eq!(
        second["from"], "a",
        "the message to {base}/c is not subscribed to"
    );
}

/// Sends five records to the connector's topic and five routed elsewhere, and checks a
/// subscriber gets all ten at `qos`.
fn check_sink_publishes(test: &str, qos: i64, protocol: &str) {
    let Some(address) = broker(test) else {
        return;
    };
    let base = base(&format!("{test}-{protocol}"));
    let sub = subscribe(connector_on(
        protocol,
        "Watch",
        &address,
        &[("topic", s(&format!("{base}/#")))],
    ));
    let publisher = Publisher::new(&address);
    sub.wait_until_subscribed(&publisher, &format!("{base}/probe"));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = open(
        &connector_on(
            protocol,
            "Alerts",
            &format!("tcp://{address}"),
            &[
                ("topic", s(&format!("{base}/alerts"))),
                ("qos", ConfigValue::Int(qos)),
            ],
        ),
        dir.path(),
    );
    for i in 0..10 {
        let r = record(i);
        let r = if i % 2 == 1 {
            r.routed(Some(format!("{base}/special")), None)
        } else {
            r
        };
        sink.send(r).expect("queued");
    }
    sink.flush().expect("all acknowledged");
    let metrics = sink.metrics();
    assert_eq!(
        (metrics.sent, metrics.queue_depth, metrics.failed),
        (10, 0, 0),
        "{metrics:?}"
    );
    assert!(metrics.bytes > 0);
    sink.close().expect("closed cleanly");
    let mut got: Vec<(i64, String)> = (0..10)
        .map(|_| {
            let (payload, place) = sub.message();
            (payload["i"].as_i64().expect("i"), place)
        })
        .collect();
    got.sort();
    for (i, (n, place)) in got.iter().enumerate() {
        assert_eq!(*n, i as i64);
        let topic = if i % 2 == 1 { "special" } else { "alerts" };
        assert_eq!(place, &format!("mqtt topic {base}/{topic}"));
    }
    assert!(dead_letters(&dir.path().join("Alerts.dead.jsonl")).is_empty());
}

#[test]
fn sink_publishes_to_connector_topic_and_record_topic_with_qos_1() {
    for protocol in PROTOCOLS {
        check_sink_publishes("sink-qos1", 1, protocol);
    }
}

#[test]
fn sink_publishes_with_qos_0_and_qos_2() {
    for protocol in PROTOCOLS {
        check_sink_publishes("sink-qos0", 0, protocol);
        check_sink_publishes("sink-qos2", 2, protocol);
    }
}

#[test]
fn sink_rejects_records_without_a_topic_into_the_dead_letter_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No broker is needed: the record is refused before anything is sent.
    let mut sink = open(&connector("Alerts", "127.0.0.1:1", &[]), dir.path());
    let err = sink.send(record(1)).expect_err("no topic anywhere");
    assert!(matches!(err, SinkError::NoTopic { .. }), "{err}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("has no topic"), "{err}");
    assert!(!err.to_string().contains("invalid request"), "{err}");
    let lines = dead_letters(&dir.path().join("Alerts.dead.jsonl"));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["i"], 1);
    let metrics = sink.metrics();
    assert_eq!(
        (metrics.failed, metrics.dead_lettered),
        (1, 1),
        "{metrics:?}"
    );
    sink.close().expect("nothing pending");
}

#[test]
fn a_barrier_fails_naming_the_sink_while_records_wait_for_their_acknowledgement() {
    for protocol in PROTOCOLS {
        check_barrier_fails_while_records_wait(protocol);
    }
}

fn check_barrier_fails_while_records_wait(protocol: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut sink = open(
        &connector_on(
            protocol,
            "Alerts",
            &format!("127.0.0.1:{port}"),
            &[
                ("topic", s("alerts")),
                ("close_timeout", ConfigValue::Duration(200 * MS)),
            ],
        ),
        dir.path(),
    );
    sink.send(record(0))
        .expect("queued while the broker is away");
    let err = sink
        .barrier(Instant::now() + Duration::from_millis(200))
        .expect_err("nothing acknowledged");
    assert!(
        matches!(&err, SinkError::Timeout { connector, pending: 1, .. } if connector == "Alerts"),
        "{err}"
    );
    // The record is still queued (not dead-lettered): a later barrier may pass.
    assert_eq!(sink.metrics().queue_depth, 1);
    assert!(sink.close().is_err());
}

#[test]
fn sink_with_broker_down_dead_letters_after_close_timeout() {
    for protocol in PROTOCOLS {
        check_dead_letters_after_close_timeout(protocol);
    }
}

fn check_dead_letters_after_close_timeout(protocol: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut sink = open(
        &connector_on(
            protocol,
            "Alerts",
            &format!("127.0.0.1:{port}"),
            &[
                ("topic", s("alerts")),
                ("queue_capacity", ConfigValue::Int(3)),
                ("close_timeout", ConfigValue::Duration(300 * MS)),
            ],
        ),
        dir.path(),
    );
    for i in 0..3 {
        sink.send(record(i))
            .expect("queued while the broker is away");
    }
    let err = sink.send(record(3)).expect_err("queue full");
    assert!(
        matches!(err, SinkError::QueueFull { capacity: 3, .. }),
        "{err}"
    );
    assert_eq!(sink.metrics().queue_depth, 3);
    let err = sink.close().expect_err("nothing could be delivered");
    assert!(
        matches!(err, SinkError::Timeout { pending: 3, .. }),
        "{err}"
    );
    let lines = dead_letters(&dir.path().join("Alerts.dead.jsonl"));
    let mut numbers: Vec<i64> = lines.iter().map(|l| l["i"].as_i64().expect("i")).collect();
    numbers.sort();
    assert_eq!(numbers, vec![0, 1, 2, 3]);
    let overflow = lines.iter().find(|l| l["i"] == 3).expect("overflow line");
    assert!(
        overflow["_error"]
            .as_str()
            .expect("_error")
            .contains("delivery queue full"),
        "{overflow}"
    );
    let late = lines.iter().find(|l| l["i"] == 0).expect("line 0");
    let reason = late["_error"].as_str().expect("_error");
    assert!(
        reason.contains(&format!("not acknowledged by mqtt://127.0.0.1:{port}")),
        "{reason}"
    );
    let m = sink.metrics();
    assert_eq!(
        (
            m.sent,
            m.failed,
            m.dead_lettered,
            m.dropped_queue_full,
            m.dropped,
            m.queue_depth
        ),
        (0, 3, 4, 1, 0, 0),
        "{m:?}"
    );
    assert!(m.last_error.is_some());
    let err = sink.send(record(9)).expect_err("closed");
    assert!(matches!(err, SinkError::Closed { .. }), "{err}");
}

#[test]
fn source_survives_a_broker_restart() {
    for protocol in PROTOCOLS {
        check_source_survives_a_broker_restart(protocol);
    }
}

fn check_source_survives_a_broker_restart(protocol: &str) {
    let test = "source_survives_a_broker_restart";
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(broker) = Mosquitto::start(test, dir.path(), free_port(), "allow_anonymous true")
    else {
        return;
    };
    let address = broker.address();
    let topic = base("restart");
    let sub = subscribe(connector_on(
        protocol,
        "Sensors",
        &address,
        &[("topic", s(&topic))],
    ));
    {
        let publisher = Publisher::new(&address);
        sub.wait_until_subscribed(&publisher, &topic);
        publisher.publish(&topic, br#"{"phase":"before"}"#);
        assert_eq!(sub.message().0["phase"], "before");
    }

    let broker = {
        let mut broker = broker;
        broker.kill();
        let lost = sub.next("problem", |e| matches!(e, SourceEvent::Problem { .. }));
        let SourceEvent::Problem { message, fatal, .. } = lost else {
            unreachable!("filtered above")
        };
        assert!(!fatal, "{message}");
        assert!(message.contains(&format!("mqtt://{address}")), "{message}");
        broker.restart()
    };

    let recovered = sub.next("recovery", |e| matches!(e, SourceEvent::Problem { .. }));
    let SourceEvent::Problem { message, fatal, .. } = recovered else {
        unreachable!("filtered above")
    };
    assert!(!fatal && message.contains("connected again"), "{message}");
    let publisher = Publisher::new(&broker.address());
    sub.wait_until_subscribed(&publisher, &topic);
    publisher.publish(&topic, br#"{"phase":"after"}"#);
    assert_eq!(sub.message().0["phase"], "after");
    let m = sub.source.metrics();
    assert!(m.reconnects >= 1 && m.errors >= 1, "{m:?}");
    assert!(m.last_error.is_some());
}

#[test]
fn sink_keeps_records_while_the_broker_restarts() {
    for protocol in PROTOCOLS {
        check_sink_keeps_records_while_the_broker_restarts(protocol);
    }
}

fn check_sink_keeps_records_while_the_broker_restarts(protocol: &str) {
    let test = "sink_keeps_records_while_the_broker_restarts";
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(mut broker) = Mosquitto::start(test, dir.path(), free_port(), "allow_anonymous true")
    else {
        return;
    };
    let mut sink = open(
        &connector_on(
            protocol,
            "Alerts",
            &broker.address(),
            &[("topic", s(&base("sink-restart")))],
        ),
        dir.path(),
    );
    for i in 0..3 {
        sink.send(record(i)).expect("queued");
    }
    sink.flush().expect("acknowledged");
    broker.kill();
    for i in 3..6 {
        sink.send(record(i))
            .expect("queued while the broker is away");
    }
    let broker = broker.restart();
    sink.flush().expect("acknowledged after the restart");
    let m = sink.metrics();
    assert_eq!((m.sent, m.failed, m.queue_depth), (6, 0, 0), "{m:?}");
    sink.close().expect("nothing left");
    drop(broker);
}

#[test]
fn refused_login_is_fatal_for_the_source_and_dead_letters_sink_records() {
    for protocol in PROTOCOLS {
        check_refused_login(protocol);
    }
}

fn check_refused_login(protocol: &str) {
    let test = "refused_login_is_fatal_for_the_source_and_dead_letters_sink_records";
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(broker) = Mosquitto::start(test, dir.path(), free_port(), "allow_anonymous false")
    else {
        return;
    };
    let address = broker.address();
    let login = [("username", s("ann")), ("password", s("wrong"))];
    let sub = subscribe(connector_on(
        protocol,
        "Sensors",
        &address,
        &[&login[..], &[("topic", s("t"))]].concat(),
    ));
    let event = sub.next("problem", |e| matches!(e, SourceEvent::Problem { .. }));
    let SourceEvent::Problem { message, fatal, .. } = event else {
        unreachable!("filtered above")
    };
    assert!(fatal, "{message}");
    assert!(message.contains("refused the connection"), "{message}");

    let mut sink = open(
        &connector_on(
            protocol,
            "Alerts",
            &address,
            &[&login[..], &[("topic", s("t"))]].concat(),
        ),
        dir.path(),
    );
    // Queued, or refused at once when the thread already met the refusal: saved either way.
    let _ = sink.send(record(1));
    let dead = dir.path().join("Alerts.dead.jsonl");
    let deadline = Instant::now() + PATIENCE;
    while dead_letters(&dead).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the refused record was never dead-lettered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let err = sink.send(record(2)).expect_err("the broker refuses us");
    assert!(!err.is_retryable(), "{err}");
    let SinkError::Refused { place, reason, .. } = &err else {
        panic!("expected a refusal, got {err}");
    };
    assert_eq!(place, &format!("MQTT broker mqtt://{address}"));
    assert!(reason.starts_with("the connection: "), "{reason}");
    assert!(
        err.to_string().contains(&format!(
            "MQTT broker mqtt://{address} refused the connection: "
        )),
        "{err}"
    );
    let lines = dead_letters(&dead);
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0]["_error"]
            .as_str()
            .expect("_error")
            .contains("refused the connection"),
        "{}",
        lines[0]
    );
    sink.close().expect("nothing left to wait for");
    assert_eq!(sink.metrics().dead_lettered, 2);
}

#[test]
fn stop_returns_while_connected_and_while_retrying() {
    if let Some(address) = broker("stop_returns_while_connected_and_while_retrying") {
        let mut sub = subscribe(connector(
            "Sensors",
            &address,
            &[("topic", s(&base("stop")))],
        ));
        let publisher = Publisher::new(&address);
        sub.wait_until_subscribed(&publisher, &base("stop"));
        sub.source.stop();
        publisher.publish(&base("stop"), br#"{"late":true}"#);
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            !sub.events
                .try_iter()
                .any(|e| matches!(e, SourceEvent::Message(_))),
            "a message arrived after stop"
        );
    }
    // Nothing listens on this port: the source is between connection attempts.
    let mut sub = subscribe(connector(
        "Sensors",
        &format!("127.0.0.1:{}", free_port()),
        &[("topic", s("t"))],
    ));
    let event = sub.next("problem", |e| matches!(e, SourceEvent::Problem { .. }));
    assert!(
        matches!(event, SourceEvent::Problem { fatal: false, .. }),
        "{event:?}"
    );
    sub.source.stop();
    sub.source.stop();
    assert!(sub.source.metrics().errors >= 1);
}

#[test]
fn stop_returns_promptly_while_the_host_queue_is_full_and_nobody_reads_it() {
    let test = "stop_returns_promptly_while_the_host_queue_is_full_and_nobody_reads_it";
    let Some(address) = broker(test) else {
        return;
    };
    let topic = base("stop-full");
    let mut sub =
        subscribe_with_capacity(connector("Sensors", &address, &[("topic", s(&topic))]), 1);
    let publisher = Publisher::new(&address);
    // The first probe that gets through fills the queue; the next ones wait in the source.
    let deadline = Instant::now() + PATIENCE;
    while !sub.events.is_full() {
        assert!(Instant::now() < deadline, "the source never subscribed");
        publisher.publish(&topic, b"{\"probe\":true}");
        std::thread::sleep(Duration::from_millis(100));
    }
    publisher.publish(&topic, b"{\"probe\":true}");
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    sub.source.stop();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "stop took {:?}",
        start.elapsed()
    );
    assert_eq!(sub.events.try_iter().count(), 1, "nothing after stop");
}

fn source_error(params: &[(&str, ConfigValue)]) -> ConfigError {
    let (tx, _rx) = crossbeam_channel::bounded(1);
    let config = SourceConfig::new(connector("Sensors", "127.0.0.1", params), 0);
    open_source(
        &config,
        &SourceContext::new("."),
        SourceSender::new(tx, Arc::default()),
    )
    .err()
    .expect("invalid source")
}

fn sink_error(params: &[(&str, ConfigValue)]) -> ConfigError {
    open_sink(
        &connector("Alerts", "127.0.0.1", params),
        &SinkContext::new("."),
    )
    .err()
    .expect("invalid sink")
}

#[test]
fn config_errors_name_the_connector_and_parameter() {
    let topic = ("topic", s("t"));
    assert_eq!(
        source_error(&[topic.clone(), ("qos", ConfigValue::Int(3))]).to_string(),
        "connector `Sensors`: parameter `qos`: must be 0, 1 or 2, found 3"
    );
    assert_eq!(
        sink_error(&[("qos", ConfigValue::Int(3))]).to_string(),
        "connector `Alerts`: parameter `qos`: must be 0, 1 or 2, found 3"
    );
    assert_eq!(
        source_error(&[topic.clone(), ("clinet_id", s("x"))]).to_string(),
        "connector `Sensors`: unknown parameter `clinet_id` for an mqtt source; did you mean `client_id`?"
    );
    assert_eq!(
        sink_error(&[("queue_capacty", ConfigValue::Int(5))]).to_string(),
        "connector `Alerts`: unknown parameter `queue_capacty` for an mqtt sink; did you mean `queue_capacity`?"
    );
    let err = sink_error(&[
        ("username", s("ann")),
        ("password", s("${VARPULIS_TEST_MQTT_SURELY_UNSET}")),
    ]);
    assert_eq!(
        err.to_string(),
        "connector `Alerts`: parameter `password` uses `${VARPULIS_TEST_MQTT_SURELY_UNSET}` but the environment variable `VARPULIS_TEST_MQTT_SURELY_UNSET` is not set"
    );
    let err = source_error(&[topic.clone(), ("port", ConfigValue::Int(70_000))]);
    assert!(err.to_string().contains("parameter `port`"), "{err}");
    let err = source_error(&[
        topic.clone(),
        ("url", s("mqtts://b")),
        ("ca_file", s("/nonexistent/ca.pem")),
    ]);
    assert!(
        err.to_string()
            .starts_with("connector `Sensors`: parameter `ca_file`: cannot read certificates from `/nonexistent/ca.pem`"),
        "{err}"
    );
    let err = sink_error(&[("ca_file", s("ca.pem"))]);
    assert!(err.to_string().contains("needs a TLS connection"), "{err}");
    assert_eq!(
        sink_error(&[("protocol", s("3.1"))]).to_string(),
        "connector `Alerts`: parameter `protocol`: must be 5 (MQTT 5) or \"3.1.1\" (MQTT 3.1.1), found `3.1`"
    );
    assert_eq!(
        source_error(&[topic.clone(), ("protocol", ConfigValue::Bool(true))]).to_string(),
        "connector `Sensors`: parameter `protocol`: must be 5 or \"3.1.1\", found a boolean"
    );
    // MQTT 5 always pings; only 3.1.1 can turn pings off.
    let err = sink_error(&[("keep_alive", ConfigValue::Duration(0))]);
    assert!(
        err.to_string().starts_with(
            "connector `Alerts`: parameter `keep_alive`: must be at least 5s with MQTT 5"
        ),
        "{err}"
    );
    let mut sink = open_sink(
        &connector(
            "Alerts",
            "127.0.0.1:1",
            &[
                ("protocol", s("3.1.1")),
                ("keep_alive", ConfigValue::Duration(0)),
            ],
        ),
        &SinkContext::new("."),
    )
    .expect("no pings on MQTT 3.1.1");
    sink.close().expect("nothing sent");
    // Each role accepts the other's parameters.
    let (tx, _rx) = crossbeam_channel::bounded(1);
    let config = SourceConfig::new(
        connector(
            "Both",
            "127.0.0.1:1",
            &[topic, ("retain", ConfigValue::Bool(true))],
        ),
        0,
    );
    let mut source = open_source(
        &config,
        &SourceContext::new("."),
        SourceSender::new(tx, Arc::default()),
    )
    .expect("retain is a sink parameter");
    source.stop();
}

/// A throwaway PKI made with the `openssl` command line: a CA that signs the broker's and a
/// client's certificate, and another CA that signs nothing we meet.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// Generates the files, or returns `None` (after `skip`) when `openssl` is missing.
    fn new(test: &str) -> Option<Pki> {
        if Command::new("openssl").arg("version").output().is_err() {
            skip(test, "the `openssl` command is not installed");
            return None;
        }
        let pki = Pki {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        for ca in ["ca", "other-ca"] {
            pki.openssl(&[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=varpulis test {ca}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
            ]);
        }
        std::fs::write(
            pki.path("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write server.ext");
        std::fs::write(
            pki.path("client.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
        )
        .expect("write client.ext");
        for who in ["server", "client"] {
            pki.openssl(&[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                &format!("/CN=varpulis test {who}"),
                "-keyout",
                &format!("{who}.key"),
                "-out",
                &format!("{who}.csr"),
            ]);
            pki.openssl(&[
                "x509",
                "-req",
                "-in",
                &format!("{who}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{who}.ext"),
                "-out",
                &format!("{who}.pem"),
            ]);
        }
        // mosquitto started as root reads its files as the `mosquitto` user: let it. The keys
        // are throwaway ones.
        use std::os::unix::fs::PermissionsExt;
        let open = |path: &Path, mode| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        };
        open(pki.dir.path(), 0o755);
        for entry in std::fs::read_dir(pki.dir.path()).expect("list") {
            open(&entry.expect("entry").path(), 0o644);
        }
        Some(pki)
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn param(&self, name: &'static str, file: &str) -> (&'static str, ConfigValue) {
        (name, s(&self.path(file).display().to_string()))
    }

    /// Starts a mosquitto with a TLS listener using the broker's certificate.
    fn broker(&self, test: &str, extra: &str) -> Option<Mosquitto> {
        let tls = format!(
            "cafile {}\ncertfile {}\nkeyfile {}\nallow_anonymous true\n{extra}",
            self.path("ca.pem").display(),
            self.path("server.pem").display(),
            self.path("server.key").display(),
        );
        Mosquitto::start(test, self.dir.path(), free_port(), &tls)
    }
}

/// Sends probes through `sink` until `sub` delivers one (the subscription is then live), then
/// three records, and checks they arrive in order.
fn check_exchange(sub: &Subscription, sink: &mut Box<dyn Sink>) {
    let deadline = Instant::now() + PATIENCE;
    'live: loop {
        sink.send(Record::from_json(br#"{"probe":true}"#).expect("valid"))
            .expect("queued");
        let until = Instant::now() + Duration::from_millis(200);
        while let Ok(event) = sub.events.recv_deadline(until) {
            match &event {
                SourceEvent::Message(m) if m.payload.starts_with(b"{\"probe\"") => break 'live,
                SourceEvent::Problem { message, .. } => panic!("problem: {message}"),
                _ => {}
            }
        }
        assert!(Instant::now() < deadline, "nothing came through TLS");
    }
    for i in 1..=3 {
        sink.send(record(i)).expect("queued");
    }
    for i in 1..=3 {
        let (payload, _) = sub.message();
        assert_eq!(payload["i"], i, "{payload}");
    }
    sink.flush().expect("acknowledged");
    assert!(sink.metrics().sent >= 4);
}

#[test]
fn tls_source_and_sink_exchange_messages_trusting_ca_file() {
    let test = "tls_source_and_sink_exchange_messages_trusting_ca_file";
    let Some(pki) = Pki::new(test) else {
        return;
    };
    let Some(broker) = pki.broker(test, "") else {
        return;
    };
    let url = format!("mqtts://{}", broker.address());
    for protocol in PROTOCOLS {
        let topic = format!("tls/in/{protocol}");
        let sub = subscribe(connector_on(
            protocol,
            "Sensors",
            &url,
            &[("topic", s(&topic)), pki.param("ca_file", "ca.pem")],
        ));
        assert_eq!(sub.source.describe(), format!("{url} topic {topic}"));
        // The `tls` parameter does what the scheme does.
        let mut sink = open(
            &connector_on(
                protocol,
                "Alerts",
                &broker.address(),
                &[
                    ("tls", ConfigValue::Bool(true)),
                    ("topic", s(&topic)),
                    pki.param("ca_file", "ca.pem"),
                ],
            ),
            pki.dir.path(),
        );
        check_exchange(&sub, &mut sink);
        sink.close().expect("nothing pending");
    }
}

#[test]
fn tls_with_a_client_certificate_reaches_a_broker_that_requires_one() {
    let test = "tls_with_a_client_certificate_reaches_a_broker_that_requires_one";
    let Some(pki) = Pki::new(test) else {
        return;
    };
    let Some(broker) = pki.broker(test, "require_certificate true") else {
        return;
    };
    let url = format!("ssl://{}", broker.address());
    let identity = [
        pki.param("ca_file", "ca.pem"),
        pki.param("client_cert", "client.pem"),
        pki.param("client_key", "client.key"),
    ];
    let sub = subscribe(connector(
        "Sensors",
        &url,
        &[&identity[..], &[("topic", s("mtls/in"))]].concat(),
    ));
    let mut sink = open(
        &connector(
            "Alerts",
            &url,
            &[&identity[..], &[("topic", s("mtls/in"))]].concat(),
        ),
        pki.dir.path(),
    );
    check_exchange(&sub, &mut sink);
    sink.close().expect("nothing pending");
}

#[test]
fn a_broker_certificate_from_another_ca_is_refused_for_good() {
    let test = "a_broker_certificate_from_another_ca_is_refused_for_good";
    let Some(pki) = Pki::new(test) else {
        return;
    };
    let Some(broker) = pki.broker(test, "") else {
        return;
    };
    let url = format!("mqtts://{}", broker.address());
    let wrong_ca = pki.param("ca_file", "other-ca.pem");
    let sub = subscribe(connector(
        "Sensors",
        &url,
        &[("topic", s("t")), wrong_ca.clone()],
    ));
    let event = sub.next("problem", |e| matches!(e, SourceEvent::Problem { .. }));
    let SourceEvent::Problem { message, fatal, .. } = event else {
        unreachable!("filtered above")
    };
    assert!(fatal, "{message}");
    assert!(
        message.starts_with(&format!("MQTT broker {url} refused the TLS handshake: ")),
        "{message}"
    );
    assert!(message.contains("UnknownIssuer"), "{message}");
    assert!(message.contains("`ca_file`"), "{message}");

    let mut sink = open(
        &connector("Alerts", &url, &[("topic", s("t")), wrong_ca]),
        pki.dir.path(),
    );
    let dead = pki.path("Alerts.dead.jsonl");
    let _ = sink.send(record(1));
    let deadline = Instant::now() + PATIENCE;
    while dead_letters(&dead).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the record was never dead-lettered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let err = sink
        .send(record(2))
        .expect_err("the handshake fails for good");
    assert!(matches!(err, SinkError::Refused { .. }), "{err}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    sink.close().expect("nothing left to wait for");
    assert_eq!(sink.metrics().dead_lettered, 2);
}

/// An MQTT 5 client of the test's own (rumqttc's v5 client, QoS 1): publishes with user
/// properties and collects what it receives, properties included.
struct V5Client {
    client: rumqttc::v5::Client,
    received: Receiver<rumqttc::v5::mqttbytes::v5::Publish>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl V5Client {
    fn new(address: &str) -> V5Client {
        use rumqttc::v5::{Event, Incoming};
        let (host, port) = address.rsplit_once(':').expect("host:port");
        let id = format!("varpulis-test-v5-{}-{}", std::process::id(), unique());
        let options = rumqttc::v5::MqttOptions::new(id, host, port.parse().expect("port"));
        let (client, mut connection) = rumqttc::v5::Client::new(options, 100);
        let (tx, received) = crossbeam_channel::unbounded();
        let thread = std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let _ = tx.send(p);
                    }
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
        V5Client {
            client,
            received,
            thread: Some(thread),
        }
    }

    fn publish(&self, topic: &str, payload: &[u8], properties: &[(&str, &str)]) {
        let properties = rumqttc::v5::mqttbytes::v5::PublishProperties {
            user_properties: properties
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        self.client
            .publish_with_properties(
                topic,
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                false,
                payload.to_vec(),
                properties,
            )
            .expect("publish queued");
    }

    /// Subscribes to `topic` and waits until a probe published there comes back.
    fn subscribe(&self, publisher: &Publisher, topic: &str) {
        self.client
            .subscribe(topic, rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
            .expect("subscribe queued");
        let deadline = Instant::now() + PATIENCE;
        loop {
            publisher.publish(topic, b"{\"probe\":true}");
            let until = Instant::now() + Duration::from_millis(200);
            while let Ok(p) = self.received.recv_deadline(until) {
                if p.payload.starts_with(b"{\"probe\"") {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "never subscribed to {topic}");
        }
    }

    /// The next message that is not a probe, with its user properties.
    fn message(&self) -> (Value, Vec<(String, String)>) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let p = self
                .received
                .recv_deadline(deadline)
                .expect("a message within the patience");
            if p.payload.starts_with(b"{\"probe\"") {
                continue;
            }
            let payload = serde_json::from_slice(&p.payload).expect("JSON payload");
            let properties = p.properties.map(|p| p.user_properties).unwrap_or_default();
            return (payload, properties);
        }
    }
}

impl Drop for V5Client {
    fn drop(&mut self) {
        let _ = self.client.disconnect();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

#[test]
fn mqtt_5_source_takes_the_trace_context_of_a_traceparent_user_property() {
    let test = "mqtt_5_source_takes_the_trace_context_of_a_traceparent_user_property";
    let Some(address) = broker(test) else {
        return;
    };
    let topic = base("v5-traceparent");
    let sub = subscribe(connector("Sensors", &address, &[("topic", s(&topic))]));
    let publisher = Publisher::new(&address);
    sub.wait_until_subscribed(&publisher, &topic);
    let v5 = V5Client::new(&address);
    v5.publish(
        &topic,
        br#"{"i":1}"#,
        &[("tracestate", "v=1"), ("traceparent", TRACEPARENT)],
    );
    v5.publish(
        &topic,
        br#"{"i":2}"#,
        &[("traceparent", "00-not-a-context")],
    );
    v5.publish(&topic, br#"{"i":3}"#, &[("other", "x")]);
    let first = sub.source_message();
    assert_eq!(
        first.trace_parent,
        TraceParent::parse(TRACEPARENT.as_bytes())
    );
    assert!(first.trace_parent.is_some());
    for i in [2, 3] {
        let m = sub.source_message();
        assert_eq!(
            serde_json::from_slice::<Value>(&m.payload).expect("JSON")["i"],
            i
        );
        assert_eq!(m.trace_parent, None, "message {i}");
    }
    let metrics = sub.source.metrics();
    assert_eq!(metrics.invalid_trace_context, 1, "{metrics:?}");
    assert_eq!(metrics.errors, 0, "{metrics:?}");
}

#[test]
fn mqtt_5_sink_sends_traceparent_and_idempotency_key_as_user_properties() {
    let test = "mqtt_5_sink_sends_traceparent_and_idempotency_key_as_user_properties";
    let Some(address) = broker(test) else {
        return;
    };
    let publisher = Publisher::new(&address);
    let v5 = V5Client::new(&address);
    let topic = base("v5-sink-properties");
    v5.subscribe(&publisher, &topic);
    let context = TraceParent::parse(TRACEPARENT.as_bytes());
    let identified = |i| {
        record(i)
            .with_id(RecordId {
                scope: "p1/Alerts".into(),
                seq: i,
            })
            .with_trace_parent(context)
    };
    let dir = tempfile::tempdir().expect("tempdir");
    for protocol in PROTOCOLS {
        let mut sink = open(
            &connector_on(protocol, "Alerts", &address, &[("topic", s(&topic))]),
            dir.path(),
        );
        sink.send(identified(4)).expect("queued");
        sink.send(record(5)).expect("queued");
        sink.flush().expect("acknowledged");
        sink.close().expect("nothing pending");
        let (payload, properties) = v5.message();
        assert_eq!(payload["i"], 4);
        let expected: Vec<(String, String)> = if protocol == "5" {
            vec![
                ("idempotency-key".into(), "p1/Alerts:4".into()),
                ("traceparent".into(), TRACEPARENT.into()),
            ]
        } else {
            // MQTT 3.1.1 has no properties to carry them.
            Vec::new()
        };
        assert_eq!(properties, expected, "protocol {protocol}");
        let (payload, properties) = v5.message();
        assert_eq!(payload["i"], 5);
        assert!(properties.is_empty(), "{properties:?}");
    }
}

#[test]
fn mqtt_5_sink_dead_letters_a_record_the_broker_refuses_to_take() {
    let test = "mqtt_5_sink_dead_letters_a_record_the_broker_refuses_to_take";
    let dir = tempfile::tempdir().expect("tempdir");
    // Anonymous clients may publish under `allowed/` only.
    let acl = dir.path().join("acl");
    std::fs::write(&acl, "topic write allowed/#\ntopic read #\n").expect("write acl");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&acl, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let extra = format!("allow_anonymous true\nacl_file {}", acl.display());
    let Some(broker) = Mosquitto::start(test, dir.path(), free_port(), &extra) else {
        return;
    };
    let mut sink = open(
        &connector("Alerts", &broker.address(), &[("topic", s("allowed/a"))]),
        dir.path(),
    );
    sink.send(record(1)).expect("queued");
    sink.send(record(2).routed(Some("denied/b".into()), None))
        .expect("queued");
    sink.send(record(3)).expect("queued");
    sink.barrier(Instant::now() + PATIENCE)
        .expect("every record acknowledged or dead-lettered");
    let m = sink.metrics();
    assert_eq!(
        (m.sent, m.failed, m.dead_lettered, m.queue_depth),
        (2, 1, 1, 0),
        "{m:?}"
    );
    let lines = dead_letters(&dir.path().join("Alerts.dead.jsonl"));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["i"], 2);
    let reason = lines[0]["_error"].as_str().expect("_error");
    assert!(
        reason.contains("refused the record: PUBACK NotAuthorized"),
        "{reason}"
    );
    sink.close().expect("nothing pending");
}

#[test]
fn mqtt_5_sink_dead_letters_a_record_larger_than_the_broker_accepts() {
    let test = "mqtt_5_sink_dead_letters_a_record_larger_than_the_broker_accepts";
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = "allow_anonymous true\nmax_packet_size 200";
    let Some(broker) = Mosquitto::start(test, dir.path(), free_port(), extra) else {
        return;
    };
    let mut sink = open(
        &connector("Alerts", &broker.address(), &[("topic", s("t"))]),
        dir.path(),
    );
    // Once connected, the sink knows the broker's limit from its CONNACK.
    sink.send(record(1)).expect("queued");
    sink.flush().expect("acknowledged");
    let big = Record::from_json(format!(r#"{{"i":2,"pad":"{}"}}"#, "x".repeat(300)).as_bytes())
        .expect("valid");
    let err = sink.send(big).expect_err("too large for this broker");
    assert!(!err.is_retryable(), "{err}");
    assert!(
        err.to_string()
            .contains("more than the broker accepts (200 bytes a packet)"),
        "{err}"
    );
    // The connection is unharmed: later records still go out.
    sink.send(record(3)).expect("queued");
    sink.flush().expect("acknowledged");
    let m = sink.metrics();
    assert_eq!((m.sent, m.failed, m.dead_lettered), (2, 1, 1), "{m:?}");
    let lines = dead_letters(&dir.path().join("Alerts.dead.jsonl"));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["i"], 2);
    sink.close().expect("nothing pending");
}

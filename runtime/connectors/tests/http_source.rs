//! The http source (ingest endpoint) at the connector level, spoken to by a plain HTTP/1.1
//! client over `std::net::TcpStream` (`tests/live.rs` at the root checks it end to end through
//! the CLI).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use serde_json::Value;
use varpulis_connectors::{
    open_source, ConfigError, ConfigValue, ConnectorConfig, Source, SourceConfig, SourceContext,
    SourceEvent, SourceSender,
};

/// Upper bound of every wait; tests finish as soon as the condition holds.
const PATIENCE: Duration = Duration::from_secs(10);

const MS: u64 = 1_000_000;

/// A running endpoint, its address and the host's end of its channel (never stopped by the
/// host).
struct Endpoint {
    source: Box<dyn Source>,
    address: String,
    events: Receiver<SourceEvent>,
    _stopping: Arc<AtomicBool>,
}

fn open(
    url: &str,
    params: &[(&str, ConfigValue)],
    capacity: usize,
) -> Result<Endpoint, ConfigError> {
    let connector = params.iter().fold(
        ConnectorConfig::new("Ingest", "http").param("url", ConfigValue::Str(url.into())),
        |c, (k, v)| c.param(*k, v.clone()),
    );
    let (tx, events) = crossbeam_channel::bounded(capacity);
    let stopping = Arc::new(AtomicBool::new(false));
    let source = open_source(
        &SourceConfig::new(connector, 2),
        &SourceContext::new("."),
        SourceSender::new(tx, stopping.clone()),
    )?;
    let described = source.describe();
    let address = described
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .expect("describe() shows http://HOST:PORT/PATH")
        .to_string();
    Ok(Endpoint {
        source,
        address,
        events,
        _stopping: stopping,
    })
}

fn start(params: &[(&str, ConfigValue)]) -> Endpoint {
    open("http://127.0.0.1:0/events", params, 64).expect("valid http source")
}

/// An answer: status and body.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), read to the end.
fn request(address: &str, method: &str, path: &str, headers: &[&str], body: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(body).expect("write body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read answer");
    let text = String::from_utf8(raw).expect("utf-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"));
    Answer {
        status,
        body: body.to_string(),
    }
}

fn post(e: &Endpoint, body: &str) -> Answer {
    request(&e.address, "POST", "/events", &[], body.as_bytes())
}

/// The messages delivered so far: (payload, place).
fn delivered(e: &Endpoint) -> Vec<(Value, String)> {
    e.events
        .try_iter()
        .map(|event| match event {
            SourceEvent::Message(m) => {
                assert_eq!(m.source, 2);
                (serde_json::from_slice(&m.payload).expect("JSON"), m.place)
            }
            other => panic!("expected a message, got {other:?}"),
        })
        .collect()
}

#[test]
fn one_object_an_array_and_json_lines_are_accepted_in_order() {
    let mut e = start(&[]);
    let answer = post(&e, r#"{"n":1}"#);
    assert_eq!(
        (answer.status, answer.json()),
        (202, serde_json::json!({"accepted": 1}))
    );
    let answer = post(&e, r#"[{"n":2}, {"n":3}]"#);
    assert_eq!(
        (answer.status, answer.json()),
        (202, serde_json::json!({"accepted": 2}))
    );
    let answer = post(&e, "{\"n\":4}\n\n{\"n\":5}\n");
    assert_eq!(
        (answer.status, answer.json()),
        (202, serde_json::json!({"accepted": 2}))
    );
    let got = delivered(&e);
    let numbers: Vec<i64> = got
        .iter()
        .map(|(v, _)| v["n"].as_i64().expect("n"))
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5]);
    assert!(
        got[0].1.starts_with("POST /events from 127.0.0.1:"),
        "{}",
        got[0].1
    );
    assert!(got[1].1.ends_with(" item 1"), "{}", got[1].1);
    assert!(got[4].1.ends_with(" item 2"), "{}", got[4].1);
    let metrics = e.source.metrics();
    assert_eq!((metrics.received, metrics.rejected), (5, 0), "{metrics:?}");
    e.source.stop();
}

#[test]
fn a_bad_body_is_refused_naming_the_bad_part_and_nothing_is_delivered() {
    let mut e = start(&[]);
    let answer = post(&e, "{\"n\":1}\n{oops\n");
    assert_eq!(answer.status, 400);
    assert!(
        answer.json()["error"]
            .as_str()
            .expect("error")
            .starts_with("line 2: invalid JSON"),
        "{}",
        answer.body
    );
    let answer = post(&e, r#"[{"n":1}, 2]"#);
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"], "array item 2 is not a JSON object");
    let answer = post(&e, "");
    assert_eq!(answer.status, 400);
    assert!(delivered(&e).is_empty());
    assert_eq!(e.source.metrics().rejected, 3);
    e.source.stop();
}

#[test]
fn a_token_is_required_when_configured() {
    let mut e = start(&[("token", ConfigValue::Str("s3cret".into()))]);
    let body = br#"{"n":1}"#;
    let none = request(&e.address, "POST", "/events", &[], body);
    assert_eq!(none.status, 401);
    assert!(none.body.contains("Authorization: Bearer"), "{}", none.body);
    let wrong = request(
        &e.address,
        "POST",
        "/events",
        &["Authorization: Bearer nope"],
        body,
    );
    assert_eq!(wrong.status, 401);
    let right = request(
        &e.address,
        "POST",
        "/events",
        &["Authorization: Bearer s3cret"],
        body,
    );
    assert_eq!(right.status, 202);
    assert_eq!(delivered(&e).len(), 1);
    e.source.stop();
}

#[test]
fn other_paths_methods_and_health_get_their_answers() {
    let mut e = start(&[]);
    let answer = request(&e.address, "POST", "/elsewhere", &[], br#"{"n":1}"#);
    assert_eq!(answer.status, 404);
    assert!(
        answer.json()["error"]
            .as_str()
            .expect("error")
            .contains("/events"),
        "{}",
        answer.body
    );
    let answer = request(&e.address, "GET", "/events", &[], b"");
    assert_eq!(answer.status, 405);
    let answer = request(&e.address, "PUT", "/events", &[], br#"{"n":1}"#);
    assert_eq!(answer.status, 405);
    let answer = request(&e.address, "GET", "/health", &[], b"");
    assert_eq!(
        (answer.status, answer.json()),
        (200, serde_json::json!({"status": "ok"}))
    );
    assert!(delivered(&e).is_empty());
    e.source.stop();
}

#[test]
fn a_body_over_max_body_gets_413() {
    let mut e = start(&[("max_body", ConfigValue::Int(32))]);
    let answer = post(&e, &format!(r#"{{"pad":"{}"}}"#, "x".repeat(100)));
    assert_eq!(answer.status, 413);
    assert!(
        answer.body.contains("accepts (32 bytes)"),
        "{}",
        answer.body
    );
    let answer = post(&e, r#"{"n":1}"#);
    assert_eq!(answer.status, 202);
    assert_eq!(delivered(&e).len(), 1);
    e.source.stop();
}

#[test]
fn a_host_queue_that_stays_full_gets_503_with_what_was_accepted() {
    // Room for one event, and nobody reads it.
    let mut e = open(
        "http://127.0.0.1:0/events",
        &[("timeout", ConfigValue::Duration(100 * MS))],
        1,
    )
    .expect("valid");
    let start = Instant::now();
    let answer = post(&e, r#"[{"n":1}, {"n":2}, {"n":3}]"#);
    assert_eq!(answer.status, 503);
    let json = answer.json();
    assert_eq!(
        (&json["accepted"], &json["rejected"]),
        (&Value::from(1), &Value::from(2)),
        "{json}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    let got = delivered(&e);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0["n"], 1);
    let metrics = e.source.metrics();
    assert_eq!((metrics.received, metrics.rejected), (1, 2), "{metrics:?}");
    e.source.stop();
}

#[test]
fn port_zero_binds_a_free_port_that_describe_shows() {
    let mut e = start(&[]);
    let port: u16 = e
        .address
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("port");
    assert_ne!(port, 0);
    assert_eq!(
        e.source.describe(),
        format!("http://127.0.0.1:{port}/events")
    );
    assert_eq!(request(&e.address, "GET", "/health", &[], b"").status, 200);
    e.source.stop();
}

#[test]
fn a_port_in_use_is_a_listen_error() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port();
    let err = open(&format!("http://127.0.0.1:{port}/events"), &[], 1)
        .err()
        .expect("the port is taken");
    assert!(
        matches!(&err, ConfigError::Listen { address, .. } if *address == format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert!(
        err.to_string().starts_with(&format!(
            "connector `Ingest`: cannot listen on `127.0.0.1:{port}`: "
        )),
        "{err}"
    );
}

#[test]
fn an_http_connector_used_as_a_sink_too_keeps_its_sink_parameters() {
    let mut e = start(&[
        ("retries", ConfigValue::Int(5)),
        ("dead_letter", ConfigValue::Str("x.jsonl".into())),
    ]);
    e.source.stop();
    let err = open(
        "http://127.0.0.1:0/",
        &[("tokne", ConfigValue::Str("t".into()))],
        1,
    )
    .err()
    .expect("typo");
    assert_eq!(
        err.to_string(),
        "connector `Ingest`: unknown parameter `tokne` for an http source; did you mean `token`?"
    );
}

#[test]
fn stop_is_bounded_and_closes_the_port() {
    let mut e = start(&[]);
    let start = Instant::now();
    e.source.stop();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "stop took {:?}",
        start.elapsed()
    );
    e.source.stop();
    // tiny_http closes its listening socket on its accept thread, right after the stop.
    let deadline = Instant::now() + Duration::from_secs(2);
    while TcpStream::connect(&e.address).is_ok() {
        assert!(Instant::now() < deadline, "still listening after stop");
        std::thread::sleep(Duration::from_millis(10));
    }
}

//! The http sink against a real HTTP server on 127.0.0.1 that answers, fails, hangs, refuses
//! connections and comes back.

mod server;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use server::{Behaviour, TestServer};
use varpulis_connectors::{
    open_sink, ConfigError, ConfigValue, ConnectorConfig, Record, Sink, SinkContext, SinkError,
};

const MS: u64 = 1_000_000;

fn record(i: u64) -> Record {
    Record::from_json(
        format!(r#"{{"event_type":"Alert","timestamp":"2024-01-01T00:00:0{i}Z","i":{i}}}"#)
            .as_bytes(),
    )
    .expect("valid record")
}

fn str_value(s: &str) -> ConfigValue {
    ConfigValue::Str(s.to_string())
}

/// An http connector with test-friendly timings, plus `extra` parameters.
fn hook(url: &str, extra: &[(&str, ConfigValue)]) -> ConnectorConfig {
    let base = ConnectorConfig::new("Hook", "http")
        .param("url", str_value(url))
        .param("timeout", ConfigValue::Duration(2_000 * MS))
        .param("backoff", ConfigValue::Duration(5 * MS))
        .param("max_backoff", ConfigValue::Duration(50 * MS))
        .param("close_timeout", ConfigValue::Duration(5_000 * MS));
    extra.iter().fold(base, |c, (k, v)| c.param(*k, v.clone()))
}

fn open(config: &ConnectorConfig, dir: &Path) -> Box<dyn Sink> {
    open_sink(config, &SinkContext::new(dir)).expect("valid http connector")
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

fn dead_letter_path(dir: &Path) -> PathBuf {
    dir.join("Hook.dead.jsonl")
}

#[test]
fn batches_records_into_json_arrays_with_put() {
    let server = TestServer::start(vec![]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = hook(
        &server.url("/bulk"),
        &[
            ("method", ConfigValue::Ident("PUT".into())),
            ("batch_size", ConfigValue::Int(2)),
            // Long enough that only size and close end a batch here.
            ("batch_timeout", ConfigValue::Duration(60_000 * MS)),
        ],
    );
    let mut sink = open(&config, dir.path());
    for i in 0..5 {
        sink.send(record(i)).expect("queued");
    }
    sink.close().expect("all delivered");

    let requests = server.requests();
    let sizes: Vec<usize> = requests
        .iter()
        .map(|r| {
            assert_eq!(r.method, "PUT");
            r.json().as_array().expect("batch is a JSON array").len()
        })
        .collect();
    assert_eq!(sizes, [2, 2, 1]);
    let ids: Vec<Value> = requests
        .iter()
        .flat_map(|r| r.json().as_array().expect("array").clone())
        .map(|v| v["i"].clone())
        .collect();
    assert_eq!(ids, [json!(0), json!(1), json!(2), json!(3), json!(4)]);
    assert_eq!(sink.metrics().sent, 5);
}

#[test]
fn flush_sends_a_partial_batch_and_waits_for_its_delivery() {
    let server = TestServer::start(vec![]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = hook(
        &server.url("/"),
        &[
            ("batch_size", ConfigValue::Int(100)),
            ("batch_timeout", ConfigValue::Duration(60_000 * MS)),
        ],
    );
    let mut sink = open(&config, dir.path());
    for i in 0..3 {
        sink.send(record(i)).expect("queued");
    }
    sink.flush().expect("flushed");
    // No waiting: flush returns only once the batch was answered.
    assert_eq!(server.requests().len(), 1);
    assert_eq!(sink.metrics().sent, 3);
    assert_eq!(
        server.requests()[0].json().as_array().map(Vec::len),
        Some(3)
    );
}

#[test]
fn partial_batch_is_sent_when_batch_timeout_passes() {
    let server = TestServer::start(vec![]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = hook(
        &server.url("/"),
        &[
            ("batch_size", ConfigValue::Int(100)),
            ("batch_timeout", ConfigValue::Duration(20 * MS)),
        ],
    );
    let mut sink = open(&config, dir.path());
    sink.send(record(1)).expect("queued");
    sink.send(record(2)).expect("queued");
    let requests = server.wait_for_requests(1);
    assert_eq!(requests[0].json().as_array().map(Vec::len), Some(2));
    sink.close().expect("nothing left");
}

#[test]
fn server_errors_are_retried_until_success() {
    let server = TestServer::start(vec![
        Behaviour::Status(500, "oops"),
        Behaviour::Status(503, "busy"),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = open(&hook(&server.url("/"), &[]), dir.path());
    sink.send(record(7)).expect("queued");
    sink.close().expect("delivered on the third attempt");

    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.json()["i"] == 7));
    let m = sink.metrics();
    assert_eq!((m.sent, m.retried, m.failed, m.dead_lettered), (1, 2, 0, 0));
    assert!(!dead_letter_path(dir.path()).exists());
}

#[test]
fn too_many_requests_429_is_retried() {
    let server = TestServer::start(vec![Behaviour::Status(429, "slow down")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = open(&hook(&server.url("/"), &[]), dir.path());
    sink.send(record(1)).expect("queued");
    sink.close().expect("delivered");
    assert_eq!(server.requests().len(), 2);
    assert_eq!((sink.metrics().sent, sink.metrics().retried), (1, 1));
}

#[test]
fn garbage_answers_are_retried_and_never_crash() {
    let server = TestServer::start(vec![
        Behaviour::Raw(b"SMTP ready\r\n\r\n"),
        Behaviour::Raw(b"HTTP/1.1 abc\r\n\r\n"),
        Behaviour::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\nshort"),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = open(
        &hook(&server.url("/"), &[("retries", ConfigValue::Int(5))]),
        dir.path(),
    );
    sink.send(record(1)).expect("queued");
    sink.close()
        .expect("delivered once the server talks HTTP again");
    let m = sink.metrics();
    assert_eq!((m.sent, m.failed), (1, 0));
    assert!(m.retried >= 2, "retried = {}", m.retried);
}

#[test]
fn bad_request_400_is_dead_lettered_at_once_without_retry() {
    let server = TestServer::start(vec![Behaviour::Status(400, "field `i` is not allowed")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = open(&hook(&server.url("/"), &[]), dir.path());
    sink.send(record(3)).expect("queued");
    sink.close().expect("close itself succeeds");

    assert_eq!(server.requests().len(), 1, "a 400 must not be retried");
    let m = sink.metrics();
    assert_eq!((m.sent, m.retried, m.failed, m.dead_lettered), (0, 0, 1, 1));
    let error = m.last_error.expect("last error recorded");
    assert!(error.contains("HTTP 400"), "{error}");

    let lines = dead_letters(&dead_letter_path(dir.path()));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["event_type"], "Alert");
    assert_eq!(lines[0]["i"], 3);
    assert_eq!(lines[0]["_attempts"], 1);
    let reason = lines[0]["_error"].as_str().expect("_error is a string");
    assert!(reason.contains("HTTP 400"), "{reason}");
    assert!(reason.contains("field `i` is not allowed"), "{reason}");
    assert!(reason.contains("not retryable"), "{reason}");
    assert!(reason.contains(&server.url("/")), "{reason}");
}

#[test]
fn hanging_server_times_out_and_the_retry_succeeds() {
    let server = TestServer::start(vec![Behaviour::Hang(Duration::from_secs(30))]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = hook(
        &server.url("/"),
        &[("timeout", ConfigValue::Duration(200 * MS))],
    );
    let mut sink = open(&config, dir.path());
    let start = Instant::now();
    sink.send(record(1))
        .expect("send never waits for the server");
    assert!(start.elapsed() < Duration::from_millis(150), "send blocked");
    sink.close().expect("delivered on retry");

    assert_eq!(server.requests().len(), 2);
    let m = sink.metrics();
    assert_eq!((m.sent, m.retried, m.failed), (1, 1, 0));
    let error = m.last_error.unwrap_or_default();
    assert!(
        error.is_empty(),
        "a recovered delivery is not an error: {error}"
    );
}

#[test]
fn refused_connections_are_retried_until_the_server_comes_back() {
    let port = TestServer::unused_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = hook(
        &format!("http://127.0.0.1:{port}/hook"),
        &[
            ("retries", ConfigValue::Int(50)),
            ("backoff", ConfigValue::Duration(20 * MS)),
            ("max_backoff", ConfigValue::Duration(100 * MS)),
        ],
    );
    let mut sink = open(&config, dir.path());
    sink.send(record(5)).expect("queued");

    // Bring the server up only once the sink has seen it down.
    let deadline = Instant::now() + Duration::from_secs(5);
    while sink.metrics().retried == 0 {
        assert!(Instant::now() < deadline, "no retry happened");
        std::thread::sleep(Duration::from_millis(5));
    }
    let server = TestServer::start_on(port, vec![]);
    let requests = server.wait_for_requests(1);
    assert_eq!(requests[0].json()["i"], 5);
    sink.close().expect("delivered");
    let m = sink.metrics();
    assert_eq!((m.sent, m.failed, m.dead_lettered), (1, 0, 0));
    assert!(m.retried >= 1);
}

#[test]
fn server_down_for_good_dead_letters_every_record_with_the_reason() {
    let port = TestServer::unused_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = hook(
        &format!("http://127.0.0.1:{port}/hook"),
        &[("retries", ConfigValue::Int(2))],
    );
    let mut sink = open(&config, dir.path());
    for i in 0..5 {
        sink.send(record(i)).expect("queued");
    }
    sink.close()
        .expect("close returns once everything is dead-lettered");

    let m = sink.metrics();
    assert_eq!((m.sent, m.failed, m.dead_lettered, m.dropped), (0, 5, 5, 0));
    assert_eq!(m.retried, 10, "two retries per record");
    let lines = dead_letters(&dead_letter_path(dir.path()));
    assert_eq!(lines.len(), 5);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["i"], i as u64, "records keep their order and fields");
        assert_eq!(line["event_type"], "Alert");
        assert_eq!(line["_attempts"], 3);
        let reason = line["_error"].as_str().expect("_error is a string");
        assert!(reason.contains("cannot connect"), "{reason}");
        assert!(reason.contains(&format!("127.0.0.1:{port}")), "{reason}");
    }
}

#[test]
fn full_queue_sends_records_to_the_dead_letter_file_and_counts_them() {
    let server = TestServer::start(vec![Behaviour::Block]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = hook(&server.url("/"), &[("queue_capacity", ConfigValue::Int(2))]);
    let mut sink = open(&config, dir.path());
    let start = Instant::now();
    let mut overflow = 0;
    for i in 0..10 {
        match sink.send(record(i)) {
            Ok(()) => {}
            Err(e @ SinkError::QueueFull { .. }) => {
                assert!(!e.is_retryable(), "the record is already saved");
                assert!(e.to_string().contains("Hook.dead.jsonl"), "{e}");
                overflow += 1;
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert!(start.elapsed() < Duration::from_secs(1), "send blocked");
    // One record may be in flight (blocked at the server) and two queued.
    assert!((7..=8).contains(&overflow), "overflow = {overflow}");
    let m = sink.metrics();
    assert_eq!(m.dropped_queue_full, overflow);
    assert_eq!(m.dead_lettered, overflow);
    let lines = dead_letters(&dead_letter_path(dir.path()));
    assert_eq!(lines.len() as u64, overflow);
    assert!(lines.iter().all(|l| l["_attempts"] == 0
        && l["_error"]
            .as_str()
            .is_some_and(|e| e.contains("queue full"))));

    server.release();
    sink.close().expect("the queued records are delivered");
    let m = sink.metrics();
    assert_eq!(m.sent + m.dropped_queue_full, 10);
    assert_eq!(m.dropped, 0);
}

#[test]
fn close_gives_up_after_close_timeout_and_dead_letters_what_is_left() {
    let server = TestServer::start(vec![Behaviour::Hang(Duration::from_secs(30))]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = hook(
        &server.url("/"),
        &[
            ("timeout", ConfigValue::Duration(20_000 * MS)),
            ("close_timeout", ConfigValue::Duration(200 * MS)),
        ],
    );
    let mut sink = open(&config, dir.path());
    for i in 0..3 {
        sink.send(record(i)).expect("queued");
    }
    server.wait_for_requests(1);
    let start = Instant::now();
    let err = sink.close().expect_err("records were left undelivered");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "close must not wait for the 20s request timeout"
    );
    assert!(
        matches!(err, SinkError::Timeout { pending: 3, .. }),
        "{err}"
    );
    assert!(err.is_retryable());

    let m = sink.metrics();
    assert_eq!(
        (m.sent, m.failed, m.dead_lettered, m.queue_depth),
        (0, 3, 3, 0)
    );
    let lines = dead_letters(&dead_letter_path(dir.path()));
    let mut ids: Vec<u64> = lines.iter().map(|l| l["i"].as_u64().expect("i")).collect();
    ids.sort_unstable();
    assert_eq!(ids, [0, 1, 2]);
    assert!(lines.iter().all(|l| l["_error"]
        .as_str()
        .is_some_and(|e| e.contains("close_timeout"))));
}

#[test]
fn dropping_the_sink_delivers_what_was_queued() {
    let server = TestServer::start(vec![]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = open(&hook(&server.url("/"), &[]), dir.path());
    sink.send(record(1)).expect("queued");
    drop(sink);
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn send_after_close_is_refused() {
    let server = TestServer::start(vec![]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = open(&hook(&server.url("/"), &[]), dir.path());
    sink.close().expect("nothing to deliver");
    let err = sink.send(record(1)).expect_err("closed");
    assert!(matches!(err, SinkError::Closed { .. }), "{err}");
    assert!(!err.is_retryable());
}

#[test]
fn missing_env_secret_is_a_config_error_naming_the_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let headers = ConfigValue::Array(vec![str_value(
        "Authorization: Bearer ${VARPULIS_TEST_NEVER_SET_TOKEN}",
    )]);
    let config = hook("http://127.0.0.1:9/x", &[("headers", headers)]);
    let err = open_sink(&config, &SinkContext::new(dir.path()))
        .err()
        .expect("unset variable");
    assert!(matches!(err, ConfigError::MissingEnvVar { .. }));
    assert!(
        err.to_string().contains("VARPULIS_TEST_NEVER_SET_TOKEN")
            && err.to_string().contains("Hook"),
        "{err}"
    );
}

fn with_id(r: Record, seq: u64) -> Record {
    r.with_id(varpulis_connectors::RecordId {
        scope: "p1/Hook".into(),
        seq,
    })
}

#[test]
fn each_request_carries_the_idempotency_key_of_its_records() {
    let server = TestServer::start(vec![]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = open(&hook(&server.url("/"), &[]), dir.path());
    for i in 0..2 {
        sink.send(with_id(record(i), 40 + i)).expect("queued");
    }
    sink.close().expect("delivered");
    let keys: Vec<Option<String>> = server
        .requests()
        .iter()
        .map(|r| r.header("idempotency-key").map(str::to_string))
        .collect();
    assert_eq!(
        keys,
        [
            Some("p1/Hook:40".to_string()),
            Some("p1/Hook:41".to_string())
        ]
    );

    // A batch names its first and last sequence numbers.
    let server = TestServer::start(vec![]);
    let config = hook(
        &server.url("/"),
        &[
            ("batch_size", ConfigValue::Int(3)),
            ("batch_timeout", ConfigValue::Duration(60_000 * MS)),
        ],
    );
    let mut sink = open(&config, dir.path());
    for i in 0..3 {
        sink.send(with_id(record(i), 7 + i)).expect("queued");
    }
    sink.close().expect("delivered");
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].header("idempotency-key"), Some("p1/Hook:7-9"));
}

#[test]
fn a_barrier_returns_once_every_record_is_acknowledged() {
    let server = TestServer::start(vec![]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = hook(
        &server.url("/"),
        &[
            ("batch_size", ConfigValue::Int(100)),
            ("batch_timeout", ConfigValue::Duration(60_000 * MS)),
        ],
    );
    let mut sink = open(&config, dir.path());
    for i in 0..4 {
        sink.send(record(i)).expect("queued");
    }
    let mark = sink
        .barrier(Instant::now() + Duration::from_secs(10))
        .expect("acknowledged");
    assert_eq!(mark, None, "a webhook cannot take anything back");
    // No waiting: the barrier returned after the server answered.
    assert_eq!(server.requests().len(), 1);
    assert_eq!(sink.metrics().sent, 4);
}

#[test]
fn a_barrier_that_cannot_be_confirmed_in_time_fails_naming_the_sink() {
    let server = TestServer::start(vec![Behaviour::Block]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = open(&hook(&server.url("/"), &[]), dir.path());
    sink.send(record(0)).expect("queued");
    let err = sink
        .barrier(Instant::now() + Duration::from_millis(300))
        .expect_err("the server does not answer");
    assert!(
        matches!(&err, SinkError::Timeout { connector, pending: 1, .. } if connector == "Hook"),
        "{err}"
    );
    assert!(err.to_string().starts_with("connector `Hook`"), "{err}");
    // Once the server answers, the next barrier passes.
    server.release();
    sink.barrier(Instant::now() + Duration::from_secs(10))
        .expect("acknowledged now");
    assert_eq!(sink.metrics().sent, 1);
}

//! The http sink's `${ENV}` header secrets, against a real HTTP server on 127.0.0.1.
//!
//! This test sets a process environment variable, so it lives alone in its own test binary:
//! `set_var` then runs before any other thread exists.

mod server;

use serde_json::json;
use server::TestServer;
use varpulis_connectors::{open_sink, ConfigValue, ConnectorConfig, Record, SinkContext};

const MS: u64 = 1_000_000;

fn str_value(s: &str) -> ConfigValue {
    ConfigValue::Str(s.to_string())
}

fn record(i: u64) -> Record {
    Record::from_json(
        format!(r#"{{"event_type":"Alert","timestamp":"2024-01-01T00:00:0{i}Z","i":{i}}}"#)
            .as_bytes(),
    )
    .expect("valid record")
}

fn hook(url: &str, extra: &[(&str, ConfigValue)]) -> ConnectorConfig {
    let base = ConnectorConfig::new("Hook", "http")
        .param("url", str_value(url))
        .param("timeout", ConfigValue::Duration(2_000 * MS));
    extra.iter().fold(base, |c, (k, v)| c.param(*k, v.clone()))
}

#[test]
fn posts_each_record_as_a_json_object_with_configured_headers_and_env_secret() {
    std::env::set_var("VARPULIS_TEST_HOOK_TOKEN", "t0ken-42");
    let server = TestServer::start(vec![]);
    let dir = tempfile::tempdir().expect("tempdir");
    let headers = ConfigValue::Array(vec![
        str_value("Authorization: Bearer ${VARPULIS_TEST_HOOK_TOKEN}"),
        str_value("X-Source: varpulis"),
    ]);
    let mut sink = open_sink(
        &hook(&server.url("/alerts"), &[("headers", headers)]),
        &SinkContext::new(dir.path()),
    )
    .expect("valid http connector");
    for i in 0..3 {
        sink.send(record(i)).expect("queued");
    }
    sink.close().expect("all delivered");

    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/alerts");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("authorization"), Some("Bearer t0ken-42"));
        assert_eq!(r.header("x-source"), Some("varpulis"));
        assert_eq!(
            r.json(),
            json!({"event_type": "Alert", "timestamp": format!("2024-01-01T00:00:0{i}Z"), "i": i})
        );
    }
    let m = sink.metrics();
    assert_eq!((m.sent, m.failed, m.retried, m.dead_lettered), (3, 0, 0, 0));
    assert_eq!(
        m.bytes,
        requests.iter().map(|r| r.body.len() as u64).sum::<u64>()
    );
    assert_eq!(m.queue_depth, 0);
    assert!(!dir.path().join("Hook.dead.jsonl").exists());
}

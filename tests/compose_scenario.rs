//! The scenario of the compose example (deploy/compose), without containers: readings shaped
//! like its producer's go into Kafka, `deploy/compose/pipelines/demo.vpl` runs over them, and
//! the alert for the hot zone comes back out of Kafka. The broker is the Kafka-protocol test
//! broker of `scripts/brokers` (`VARPULIS_TEST_KAFKA`); without it the test prints why and
//! passes, unless `VARPULIS_REQUIRE_BROKERS=1` (scripts/test) makes that a failure.

#![cfg(feature = "kafka")]

mod common;
use common::create_topics;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use varpulis_connectors::{
    open_sink, open_source, ConfigValue, ConnectorConfig, Record, SinkContext, SourceConfig,
    SourceContext, SourceEvent, SourceSender,
};

fn broker() -> Option<String> {
    let required = std::env::var("VARPULIS_REQUIRE_BROKERS").is_ok_and(|v| v == "1");
    match std::env::var("VARPULIS_TEST_KAFKA") {
        Ok(addr) if TcpStream::connect(&addr).is_ok() => Some(addr),
        Ok(addr) => {
            assert!(!required, "VARPULIS_TEST_KAFKA={addr} is not reachable");
            eprintln!("skipped: no broker at VARPULIS_TEST_KAFKA={addr}");
            None
        }
        Err(_) => {
            assert!(
                !required,
                "VARPULIS_TEST_KAFKA is not set (scripts/brokers env)"
            );
            eprintln!(
                "skipped: VARPULIS_TEST_KAFKA is not set; run `eval \"$(scripts/brokers env)\"`"
            );
            None
        }
    }
}

/// The demo pipeline with this run's own topic and group names (the broker may be shared with
/// other test runs) and a short session timeout so joining the group takes seconds, not ~25.
fn demo_pipeline(tag: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/compose/pipelines/demo.vpl");
    let mut text = std::fs::read_to_string(path).expect("read the compose demo pipeline");
    for (from, to) in [
        (
            "group_id: \"varpulis-demo\", start: earliest)",
            format!("group_id: \"{tag}-demo\", start: earliest, session_timeout: 6s)"),
        ),
        ("topic: \"readings\"", format!("topic: \"{tag}-readings\"")),
        ("topic: \"alerts\"", format!("topic: \"{tag}-alerts\"")),
    ] {
        assert_eq!(text.matches(from).count(), 1, "demo.vpl has `{from}` once");
        text = text.replace(from, &to);
    }
    text
}

/// The run, stopped with SIGINT at the end (and killed if the test fails first).
struct Run(Child);

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_compose_demo_pipeline_turns_kafka_readings_into_kafka_alerts() {
    let Some(brokers) = broker() else {
        return;
    };
    let tag = format!("compose-{}", std::process::id());
    let (readings, alerts) = (format!("{tag}-readings"), format!("{tag}-alerts"));
    create_topics(&brokers, &[&readings, &alerts]);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("demo.vpl"), demo_pipeline(&tag)).expect("write the pipeline");

    // What the compose producer sends: one reading per zone, no timestamp, zone `c` hot.
    let kafka =
        ConnectorConfig::new("Check", "kafka").param("brokers", ConfigValue::Str(brokers.clone()));
    let mut producer = open_sink(
        &kafka.clone().param("topic", ConfigValue::Str(readings)),
        &SinkContext::new(dir.path()),
    )
    .expect("producer");
    for body in [
        r#"{"zone":"a","temp":19.5}"#,
        r#"{"zone":"b","temp":24.1}"#,
        r#"{"zone":"c","temp":31.2}"#,
        r#"{"zone":"a","temp":21.0}"#,
        r#"{"zone":"b","temp":26.3}"#,
        r#"{"zone":"c","temp":33.8}"#,
    ] {
        producer
            .send(Record::from_json(body.as_bytes()).expect("record"))
            .expect("produce");
    }
    producer.close().expect("every reading delivered");

    let mut child = Command::new(env!("CARGO_BIN_EXE_varpulis"))
        .arg("run")
        .arg("demo.vpl")
        .current_dir(dir.path())
        .env("KAFKA_BROKERS", &brokers)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start varpulis run");
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let run = Run(child);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
        }
        text
    });

    // Event time is arrival time; with the sources quiet it follows the wall clock (the
    // 1s idle timeout), so the 10-second window closes by itself.
    let mut hot = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while hot.is_none() && Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
            let v: serde_json::Value = serde_json::from_str(&line).expect("JSON output");
            if v["stream"] == "HotZone" {
                hot = Some(v);
            }
        }
    }
    let Some(hot) = hot else {
        drop(run);
        panic!(
            "no HotZone alert; stderr:\n{}",
            err.join().unwrap_or_default()
        );
    };
    assert_eq!(hot["zone"], "c", "{hot}");
    let avg = hot["avg_temp"].as_f64().expect("a number");
    assert!((avg - 32.5).abs() < 1e-9, "the average of zone c: {hot}");

    // The alert went to Kafka too, keyed by zone.
    let (tx, rx) = crossbeam_channel::bounded(100);
    let mut check = open_source(
        &SourceConfig::new(
            kafka
                .param("topic", ConfigValue::Str(alerts))
                .param("group_id", ConfigValue::Str(format!("{tag}-check")))
                .param("start", ConfigValue::Str("earliest".into()))
                .param("session_timeout", ConfigValue::Duration(6_000_000_000)),
            0,
        ),
        &SourceContext::new(dir.path()),
        SourceSender::new(tx, Arc::new(AtomicBool::new(false))),
    )
    .expect("consume the alerts");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while got.is_empty() && Instant::now() < deadline {
        if let Ok(SourceEvent::Message(m)) = rx.recv_timeout(Duration::from_millis(200)) {
            got.push(String::from_utf8_lossy(&m.payload).into_owned());
        }
    }
    check.stop();
    assert_eq!(got.len(), 1, "one alert in Kafka: {got:?}");
    let alert: serde_json::Value = serde_json::from_str(&got[0]).expect("a JSON alert");
    assert_eq!(alert["zone"], "c", "{alert}");

    let pid = run.0.id().to_string();
    let ok = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(ok.success());
    let mut run = run;
    let status = run.0.wait().expect("wait for varpulis");
    let err = err.join().unwrap_or_default();
    assert!(status.success(), "{err}");
    assert!(err.contains("source `Kafka`: 6 received"), "{err}");
}

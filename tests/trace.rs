//! OpenTelemetry traces of `varpulis run --otlp-endpoint`, received by a real
//! OTLP/HTTP protobuf receiver (`oteltap`, from PyPI) on 127.0.0.1.
//!
//! Without `oteltap` on PATH the receiver test prints why and passes, unless
//! `VARPULIS_REQUIRE_BROKERS=1` (set by `scripts/test`) makes that a failure.
//! `scripts/setup` installs it.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn write(dir: &Path, name: &str, body: &str) {
    std::fs::write(dir.join(name), body).expect("write test file");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A bounded run: one file source of three readings, one stream.
fn program(dir: &Path) {
    write(
        dir,
        "a.jsonl",
        "{\"zone\":\"a\",\"temp\":31,\"timestamp\":1000}\n{\"zone\":\"a\",\"temp\":20,\"timestamp\":2000}\n{\"zone\":\"b\",\"temp\":35,\"timestamp\":3000}\n",
    );
    write(
        dir,
        "rules.vpl",
        "event Reading:\n    zone: str\n    temp: float\n\nconnector A = file (path: \"a.jsonl\")\n\n\
         stream Hot = Reading.from(A).where(temp > 30.0).emit(zone: zone)\n",
    );
}

fn varpulis_run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_varpulis"))
        .arg("run")
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_SERVICE_NAME")
        .stdin(Stdio::null())
        .output()
        .expect("run varpulis")
}

/// `oteltap` waiting for the `varpulis.run` span on `port`, or `None` (test
/// skipped) when it is not installed.
fn oteltap(port: u16) -> Option<Child> {
    let installed = Command::new("oteltap")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        let why = "oteltap is not on PATH (python3 -m pip install oteltap; scripts/setup does)";
        if std::env::var("VARPULIS_REQUIRE_BROKERS").is_ok_and(|v| v == "1") {
            panic!("{why}");
        }
        eprintln!("skipped: {why}");
        return None;
    }
    let child = Command::new("oteltap")
        .args([
            "--port",
            &port.to_string(),
            "--await-span",
            r"^varpulis\.run$",
        ])
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start oteltap");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "oteltap did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(child)
}

/// Waits for oteltap to exit (it does once `varpulis.run` arrived) and
/// returns the spans it printed (one JSON object per line).
fn received_spans(mut tap: Child) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = tap.try_wait().expect("wait for oteltap") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = tap.kill();
            let _ = tap.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    let mut err = String::new();
    let _ = tap.stdout.take().expect("piped").read_to_string(&mut out);
    let _ = tap.stderr.take().expect("piped").read_to_string(&mut err);
    assert!(
        status.is_some_and(|s| s.success()),
        "oteltap did not receive `varpulis.run`:\n{out}\n{err}"
    );
    out.lines()
        .filter(|l| l.starts_with('{') && l.ends_with('}'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn attribute<'a>(span: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    span["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|kv| kv["key"] == key))
        .map_or(&serde_json::Value::Null, |kv| &kv["value"])
}

#[test]
fn a_live_run_sends_its_spans_to_an_otlp_receiver() {
    let port = free_port();
    let Some(tap) = oteltap(port) else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    program(dir.path());
    let endpoint = format!("http://127.0.0.1:{port}");
    let run = varpulis_run(
        dir.path(),
        &[
            "rules.vpl",
            "--otlp-endpoint",
            &endpoint,
            "--state-dir",
            "state",
        ],
    );
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(
        err.contains(&format!("traces: OTLP to {endpoint}/v1/traces")),
        "{err}"
    );
    assert!(!err.contains("warning"), "{err}");

    let spans = received_spans(tap);
    let named = |name: &str| -> Vec<&serde_json::Value> {
        spans.iter().filter(|s| s["name"] == name).collect()
    };
    let run_spans = named("varpulis.run");
    assert_eq!(run_spans.len(), 1, "{spans:#?}");
    let root = run_spans[0];
    assert_eq!(root["parentSpanId"], "", "the run is the root span");
    assert_eq!(
        attribute(root, "varpulis.program")["stringValue"],
        "rules.vpl"
    );
    assert_eq!(attribute(root, "varpulis.sources")["intValue"], "1");
    assert_eq!(attribute(root, "varpulis.events")["intValue"], "3");
    assert_eq!(attribute(root, "varpulis.outputs")["intValue"], "2");
    assert_eq!(
        attribute(root, "varpulis.stop_reason")["stringValue"],
        "every source ended"
    );
    assert_eq!(root["status"]["code"], 1, "ok");

    let batches = named("varpulis.batch");
    assert!(!batches.is_empty(), "{spans:#?}");
    let events: i64 = batches
        .iter()
        .map(|b| {
            attribute(b, "varpulis.events")["intValue"]
                .as_str()
                .and_then(|n| n.parse::<i64>().ok())
                .expect("events of a batch")
        })
        .sum();
    assert_eq!(events, 3, "every event ran in some batch");
    let checkpoints = named("varpulis.checkpoint");
    assert!(!checkpoints.is_empty(), "{spans:#?}");
    assert_eq!(
        attribute(checkpoints[0], "varpulis.state_dir")["stringValue"],
        "state"
    );
    assert_eq!(checkpoints[0]["status"]["code"], 1, "ok");
    let source = named("varpulis.source.start");
    assert_eq!(source.len(), 1, "{spans:#?}");
    assert_eq!(
        attribute(source[0], "varpulis.connector.kind")["stringValue"],
        "file"
    );

    for span in &spans {
        assert_eq!(span["traceId"], root["traceId"], "one trace per run");
        if span["name"] != "varpulis.run" {
            assert_eq!(span["parentSpanId"], root["spanId"], "children of the run");
        }
    }
}

#[test]
fn an_unreachable_collector_warns_once_and_the_run_still_succeeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    program(dir.path());
    let started = Instant::now();
    let run = varpulis_run(
        dir.path(),
        &[
            "rules.vpl",
            "--otlp-endpoint",
            "http://127.0.0.1:1",
            "--state-dir",
            "state",
        ],
    );
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    let out = String::from_utf8_lossy(&run.stdout);
    assert_eq!(out.lines().count(), 2, "outputs are unaffected: {out}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].starts_with("warning: OTLP export to http://127.0.0.1:1/v1/traces failed:"),
        "{err}"
    );
    assert!(err.contains("traces: 0 spans exported, "), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the stop waits a bounded time"
    );
}

#[test]
fn an_endpoint_without_a_scheme_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    program(dir.path());
    let run = varpulis_run(
        dir.path(),
        &["rules.vpl", "--otlp-endpoint", "127.0.0.1:4318"],
    );
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("is not an http:// or https:// URL"), "{err}");
}

//! OpenTelemetry traces of `varpulis run --otlp-endpoint`, received by a real
//! OTLP/HTTP protobuf receiver (`oteltap`, from PyPI) on 127.0.0.1.
//!
//! Without `oteltap` on PATH the receiver test prints why and passes, unless
//! `VARPULIS_REQUIRE_BROKERS=1` (set by `scripts/test`) makes that a failure.
//! `scripts/setup` installs it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;

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
        .env_remove("OTEL_EXPORTER_OTLP_HEADERS")
        .env_remove("OTEL_RESOURCE_ATTRIBUTES")
        .stdin(Stdio::null())
        .output()
        .expect("run varpulis")
}

/// `oteltap` waiting for the `varpulis.run` span on `port`, or `None` (test
/// skipped) when it is not installed.
fn oteltap(port: u16) -> Option<Child> {
    oteltap_awaiting(port, r"^varpulis\.run$")
}

/// `oteltap` on `port`, exiting once a span whose name matches `span`
/// arrived.
fn oteltap_awaiting(port: u16, span: &str) -> Option<Child> {
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
        .args(["--port", &port.to_string(), "--await-span", span])
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

/// Waits for oteltap to exit (it does once the awaited span arrived) and
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
        "oteltap did not receive the awaited span:\n{out}\n{err}"
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
        match span["name"].as_str() {
            Some("varpulis.run") => {}
            Some("varpulis.source.start") => {
                assert_eq!(span["traceId"], root["traceId"], "in the run's trace");
                assert_eq!(span["parentSpanId"], root["spanId"], "a child of the run");
            }
            Some("varpulis.batch" | "varpulis.checkpoint") => {
                assert_ne!(
                    span["traceId"], root["traceId"],
                    "a trace of its own: {span}"
                );
                assert_eq!(span["parentSpanId"], "", "a root: {span}");
                let links = span["links"].as_array().expect("links");
                assert_eq!(links.len(), 1, "{span}");
                assert_eq!(links[0]["traceId"], root["traceId"], "linked to the run");
                assert_eq!(links[0]["spanId"], root["spanId"], "linked to the run");
            }
            _ => panic!("unexpected span {span}"),
        }
    }
    let batch_traces: std::collections::BTreeSet<&str> = batches
        .iter()
        .filter_map(|b| b["traceId"].as_str())
        .collect();
    assert_eq!(batch_traces.len(), batches.len(), "one trace per batch");
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

/// One HTTP request a [`recorder`] received: lowercase header names with
/// their values, and the body.
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A tiny HTTP/1.1 server on 127.0.0.1 that answers every request `200` and
/// hands it to the test: a webhook, or an OTLP collector whose export
/// requests the test decodes itself.
fn recorder() -> (u16, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a recorder");
    let port = listener.local_addr().expect("local address").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || serve(stream, &tx));
        }
    });
    (port, rx)
}

/// Serves the requests of one connection until the client closes it.
fn serve(stream: TcpStream, tx: &mpsc::Sender<Received>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((name, value)) = h.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        let len = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let _ = tx.send(Received { headers, body });
        let answer = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn export_requests_carry_the_otlp_headers_and_resource_attributes() {
    let (port, requests) = recorder();
    let dir = tempfile::tempdir().expect("tempdir");
    program(dir.path());
    let run = Command::new(env!("CARGO_BIN_EXE_varpulis"))
        .args(["run", "rules.vpl"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        )
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "Authorization=Bearer%20tok-5ecret-value, x-tenant = blue",
        )
        .env(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=test%2Fci,service.name=overridden",
        )
        .env("OTEL_SERVICE_NAME", "cep-svc")
        .stdin(Stdio::null())
        .output()
        .expect("run varpulis");
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(
        !err.contains("tok-5ecret-value"),
        "secrets stay hidden: {err}"
    );

    let mut spans = Vec::new();
    while let Ok(request) = requests.recv_timeout(Duration::from_secs(5)) {
        assert_eq!(
            request.header("authorization"),
            Some("Bearer tok-5ecret-value")
        );
        assert_eq!(request.header("x-tenant"), Some("blue"));
        assert_eq!(
            request.header("content-type"),
            Some("application/x-protobuf")
        );
        let export = ExportTraceServiceRequest::decode(&request.body[..]).expect("OTLP protobuf");
        for rs in export.resource_spans {
            let attrs: Vec<(String, Option<any_value::Value>)> = rs
                .resource
                .expect("a resource")
                .attributes
                .into_iter()
                .map(|kv| (kv.key, kv.value.and_then(|v| v.value)))
                .collect();
            let text = |s: &str| Some(any_value::Value::StringValue(s.into()));
            assert_eq!(
                attrs,
                [
                    ("service.name".to_string(), text("cep-svc")),
                    ("deployment.environment".to_string(), text("test/ci")),
                ],
                "OTEL_SERVICE_NAME wins over service.name in the attributes"
            );
            spans.extend(rs.scope_spans.into_iter().flat_map(|s| s.spans));
        }
        if spans.iter().any(|s| s.name == "varpulis.run") {
            break;
        }
    }
    assert!(
        spans.iter().any(|s| s.name == "varpulis.run"),
        "{:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
}

#[test]
fn a_malformed_otlp_headers_variable_is_refused_without_echoing_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    program(dir.path());
    let run = Command::new(env!("CARGO_BIN_EXE_varpulis"))
        .args(["run", "rules.vpl", "--otlp-endpoint", "http://127.0.0.1:1"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env("OTEL_EXPORTER_OTLP_HEADERS", "Bearer-hunter2-without-key")
        .stdin(Stdio::null())
        .output()
        .expect("run varpulis");
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("OTEL_EXPORTER_OTLP_HEADERS: entry 1 has no `=`"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

/// The caller's context: trace `4bf9...4736`, span `00f0...02b7`, sampled.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// A live run of an http ingest endpoint whose hot readings go to a webhook.
fn ingest_to_webhook(dir: &Path, ingest: u16, hook: u16, otlp: u16) -> Child {
    let source = format!("http (url: \"http://127.0.0.1:{ingest}/events\")");
    live_to_webhook(dir, &source, hook, otlp)
}

/// A live run whose hot readings from the connector `Ingest` (declared as
/// `source`, e.g. `http (url: ...)`) go to a webhook; returns once it runs.
fn live_to_webhook(dir: &Path, source: &str, hook: u16, otlp: u16) -> Child {
    write(
        dir,
        "rules.vpl",
        &format!(
            "event Reading:\n    zone: str\n    temp: float\n\n\
             connector Ingest = {source}\n\
             connector Hook = http (url: \"http://127.0.0.1:{hook}/alerts\")\n\n\
             stream Hot = Reading.from(Ingest).where(temp > 30.0).emit(zone: zone).to(Hook)\n"
        ),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_varpulis"))
        .args([
            "run",
            "rules.vpl",
            "--otlp-endpoint",
            &format!("http://127.0.0.1:{otlp}"),
        ])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("OTEL_EXPORTER_OTLP_HEADERS")
        .env_remove("OTEL_RESOURCE_ATTRIBUTES")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start varpulis run");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) {
            let running = line.starts_with("running;");
            seen.push(line);
            if running {
                return child;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the run did not start: {seen:#?}");
}

/// Posts `body` to the ingest endpoint with extra header lines; the status.
fn post_events(port: u16, body: &str, headers: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the ingest endpoint");
    let request = format!(
        "POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read the answer");
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Stops a live run like Ctrl-C would.
fn terminate(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_ingested_traceparent_continues_through_the_event_span_to_the_webhook() {
    let otlp = free_port();
    let Some(tap) = oteltap_awaiting(otlp, r"^varpulis\.event$") else {
        return;
    };
    let (hook, webhooks) = recorder();
    let ingest = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let run = ingest_to_webhook(dir.path(), ingest, hook, otlp);

    // An invalid context is ignored (counted), never fatal; a cold reading
    // with no context gets no span.
    let status = post_events(
        ingest,
        r#"{"zone":"x","temp":10}"#,
        "traceparent: 00-zz-bad\r\n",
    );
    assert_eq!(status, 202);
    let traceparent = format!("traceparent: 00-{TRACE_ID}-{CALLER_SPAN}-01\r\n");
    assert_eq!(
        post_events(ingest, r#"{"zone":"a","temp":31}"#, &traceparent),
        202
    );

    let alert = webhooks
        .recv_timeout(Duration::from_secs(20))
        .expect("the webhook receives the alert");
    let spans = received_spans(tap);
    terminate(run);
    check_continued_trace(&alert, &spans);
}

/// The webhook's `alert` (zone `a`) and the exported `spans` continue the
/// caller's trace `TRACE_ID` through one `varpulis.event` span of the
/// connector `Ingest`.
fn check_continued_trace(alert: &Received, spans: &[serde_json::Value]) {
    let body: serde_json::Value = serde_json::from_slice(&alert.body).expect("JSON alert");
    assert_eq!(body["zone"], "a", "{body}");
    let sent = alert
        .header("traceparent")
        .expect("the webhook gets a traceparent");
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts.len(), 4, "{sent}");
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("00", TRACE_ID, "01"),
        "{sent}"
    );
    assert_ne!(
        parts[2], CALLER_SPAN,
        "a new span id under the caller's trace"
    );

    let events: Vec<&serde_json::Value> = spans
        .iter()
        .filter(|s| s["name"] == "varpulis.event")
        .collect();
    assert_eq!(
        events.len(),
        1,
        "one span, for the traced event only: {spans:#?}"
    );
    let event = events[0];
    assert_eq!(event["traceId"], TRACE_ID, "{event}");
    assert_eq!(event["parentSpanId"], CALLER_SPAN, "{event}");
    assert_eq!(
        event["spanId"], parts[2],
        "the webhook's parent is the event span"
    );
    assert_eq!(
        attribute(event, "varpulis.event_type")["stringValue"],
        "Reading"
    );
    assert_eq!(
        attribute(event, "varpulis.connector")["stringValue"],
        "Ingest"
    );
    assert_eq!(attribute(event, "varpulis.outputs")["intValue"], "1");
    assert_eq!(attribute(event, "varpulis.streams")["stringValue"], "Hot");
}

#[test]
fn an_mqtt_5_traceparent_user_property_continues_through_the_event_span_to_the_webhook() {
    let test = "an_mqtt_5_traceparent_user_property_continues_...";
    let required = std::env::var("VARPULIS_REQUIRE_BROKERS").is_ok_and(|v| v == "1");
    let broker = std::env::var("VARPULIS_TEST_MQTT").ok();
    let publisher = Command::new("mosquitto_pub").arg("--help").output().is_ok();
    let Some(broker) = broker.filter(|_| publisher) else {
        assert!(
            !required,
            "{test}: needs VARPULIS_TEST_MQTT and mosquitto_pub (VARPULIS_REQUIRE_BROKERS=1)"
        );
        eprintln!("skipping {test}: VARPULIS_TEST_MQTT is not set or mosquitto_pub is missing");
        return;
    };
    let (host, port) = broker.rsplit_once(':').expect("host:port");
    let otlp = free_port();
    let Some(tap) = oteltap_awaiting(otlp, r"^varpulis\.event$") else {
        return;
    };
    let (hook, webhooks) = recorder();
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = format!("varpulis-test/{}/trace", std::process::id());
    let source = format!("mqtt (url: \"mqtt://{broker}\", topic: \"{topic}\")");
    let run = live_to_webhook(dir.path(), &source, hook, otlp);
    let publish = |body: &str, properties: &[&str]| {
        let status = Command::new("mosquitto_pub")
            .args([
                "-h", host, "-p", port, "-V", "5", "-q", "1", "-t", &topic, "-m", body,
            ])
            .args(properties)
            .status()
            .expect("run mosquitto_pub");
        assert!(status.success(), "mosquitto_pub failed");
    };

    // Untraced hot readings until one comes through: the subscription is live.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        publish(r#"{"zone":"probe","temp":40}"#, &[]);
        if webhooks.recv_timeout(Duration::from_millis(300)).is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run never subscribed to {topic}"
        );
    }
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    publish(
        r#"{"zone":"a","temp":31}"#,
        &[
            "-D",
            "publish",
            "user-property",
            "traceparent",
            &traceparent,
        ],
    );

    // Skip the alerts of probes still on their way.
    let alert = loop {
        let alert = webhooks
            .recv_timeout(Duration::from_secs(20))
            .expect("the webhook receives the alert");
        if !alert.body.windows(7).any(|w| w == b"\"probe\"") {
            break alert;
        }
    };
    let spans = received_spans(tap);
    terminate(run);
    check_continued_trace(&alert, &spans);
}

//! `varpulis run` over the program's own connector sources, as users run it:
//! file sources that end, an http ingest endpoint on 127.0.0.1, MQTT and
//! Kafka through real brokers, Ctrl-C/SIGTERM, bad payloads, routing of
//! subscriptions.
//!
//! Broker tests read `VARPULIS_TEST_MQTT` / `VARPULIS_TEST_KAFKA`
//! (`scripts/brokers env`); without them they print why and pass, unless
//! `VARPULIS_REQUIRE_BROKERS=1` (set by `scripts/test`) makes that a failure.

#[cfg(feature = "kafka")]
mod common;
#[cfg(feature = "kafka")]
use common::create_topics;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write test file");
    p
}

/// A `varpulis run` child with its stdout lines and stderr collected on
/// threads, so the test can wait for outputs while the run goes on.
struct Run {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    seen: Vec<String>,
}

impl Run {
    fn start(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_varpulis"));
        cmd.arg("run")
            .args(args)
            .current_dir(cwd)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start varpulis run");
        let stdout = lines(child.stdout.take().expect("piped stdout"));
        let stderr = lines(child.stderr.take().expect("piped stderr"));
        Run {
            child,
            stdout,
            stderr,
            seen: Vec::new(),
        }
    }

    /// Waits until stderr says the sources are up.
    fn wait_running(&mut self) -> Vec<String> {
        let mut err = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            match self.stderr.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    let done = line.starts_with("running;");
                    err.push(line);
                    if done {
                        return err;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!("the run did not start its sources: {err:#?}");
    }

    /// Waits until `n` output lines have arrived in total.
    fn wait_outputs(&mut self, n: usize) -> &[String] {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.seen.len() < n && Instant::now() < deadline {
            if let Ok(line) = self.stdout.recv_timeout(Duration::from_millis(50)) {
                self.seen.push(line);
            }
        }
        if self.seen.len() < n {
            let err: Vec<String> = self.stderr.try_iter().collect();
            panic!(
                "expected {n} outputs, got {:#?}\nstderr so far:\n{}",
                self.seen,
                err.join("\n")
            );
        }
        &self.seen
    }

    /// Sends a signal, then collects the exit status, the rest of stdout and
    /// all of stderr.
    fn signal(self, sig: &str) -> (ExitStatus, Vec<String>, String) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("run kill");
        assert!(ok.success(), "kill {sig} {pid}");
        self.finish()
    }

    fn finish(mut self) -> (ExitStatus, Vec<String>, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait for varpulis") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("varpulis run did not stop");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut out = std::mem::take(&mut self.seen);
        out.extend(self.stdout.iter());
        let err: Vec<String> = self.stderr.iter().collect();
        (status, out, err.join("\n"))
    }
}

fn lines(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A plain HTTP/1.1 request; returns the status and body.
fn request(port: u16, method: &str, path: &str, body: &str, headers: &[&str]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).expect("send request");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read response");
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

fn post(port: u16, path: &str, body: &str, headers: &[&str]) -> (u16, String) {
    request(port, "POST", path, body, headers)
}

fn get(port: u16, path: &str) -> (u16, String) {
    request(port, "GET", path, "", &[])
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

const READING: &str = "event Reading:\n    zone: str\n    temp: float\n\n";

/// `rules.vpl`: every reading of `in.jsonl` (a `file` connector with the
/// extra `params`, e.g. `, follow: true`) emitted by stream `All`.
fn write_rules_reading_in(dir: &Path, params: &str) {
    write(
        dir,
        "rules.vpl",
        &format!(
            "{READING}connector In = file (path: \"in.jsonl\"{params})\n\nstream All = Reading.from(In).emit(zone: zone)\n"
        ),
    );
}

#[test]
fn file_sources_run_to_their_end_and_fire_open_windows() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "a.jsonl",
        "{\"zone\":\"a\",\"temp\":31,\"timestamp\":1000}\n{\"zone\":\"a\",\"temp\":35,\"timestamp\":2000}\n",
    );
    write(
        dir.path(),
        "b.jsonl",
        "{\"zone\":\"b\",\"temp\":40,\"timestamp\":1500}\n",
    );
    write(
        dir.path(),
        "rules.vpl",
        &format!(
            "{READING}connector A = file (path: \"a.jsonl\")\nconnector B = file (path: \"b.jsonl\")\n\n\
             stream FromA = Reading.from(A).emit(zone: zone)\n\
             stream FromB = Reading.from(B).emit(zone: zone)\n\
             stream Every = Reading.emit(zone: zone)\n\
             stream Avg = Reading.from(A)\n    .window(10s)\n    .aggregate(n: count(), avg: avg(temp))\n    .emit(n: n, avg: avg)\n"
        ),
    );
    let run = Run::start(&["rules.vpl"], dir.path(), &[]);
    let (status, out, err) = run.finish();
    assert!(status.success(), "{err}");
    let by = |stream: &str| -> Vec<String> {
        out.iter()
            .map(|l| json(l))
            .filter(|v| v["stream"] == stream)
            .map(|v| v["zone"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(by("FromA"), ["a", "a"], "A's stream sees only A's events");
    assert_eq!(by("FromB"), ["b"], "B's stream sees only B's events");
    let mut every = by("Every");
    every.sort();
    assert_eq!(every, ["a", "a", "b"], "a plain stream sees every source");
    let avg: Vec<serde_json::Value> = out
        .iter()
        .map(|l| json(l))
        .filter(|v| v["stream"] == "Avg")
        .collect();
    assert_eq!(avg.len(), 1, "bounded sources end the input: {out:#?}");
    assert_eq!(avg[0]["n"], 2);
    assert_eq!(avg[0]["avg"], 33.0);
    assert!(err.contains("stopped: every source ended"), "{err}");
    assert!(err.contains("source `A`: 2 received"), "{err}");
}

#[test]
fn http_ingest_runs_events_until_interrupted_and_idle_time_closes_windows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    write(
        dir.path(),
        "rules.vpl",
        &format!(
            "{READING}connector Ingest = http (url: \"http://127.0.0.1:{port}/events\")\n\n\
             stream Hot = Reading.from(Ingest).where(temp > 30.0).emit(zone: zone, temp: temp)\n\
             stream Avg = Reading.from(Ingest)\n    .window(1s)\n    .aggregate(n: count())\n    .emit(n: n)\n"
        ),
    );
    let mut run = Run::start(&["rules.vpl", "--idle-timeout", "200ms"], dir.path(), &[]);
    run.wait_running();
    let (status, body) = post(
        port,
        "/events",
        r#"[{"zone":"a","temp":31.5},{"zone":"b","temp":12}]"#,
        &[],
    );
    assert_eq!((status, body.as_str()), (202, r#"{"accepted":2}"#));
    let (status, body) = post(port, "/events", "{\"zone\":\"c\",\"temp\":33}\n", &[]);
    assert_eq!((status, body.as_str()), (202, r#"{"accepted":1}"#));
    // The window closes on idle time, while the run goes on.
    let seen = run.wait_outputs(3).to_vec();
    let streams: Vec<String> = seen
        .iter()
        .map(|l| json(l)["stream"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(streams, ["Hot", "Hot", "Avg"], "{seen:#?}");
    assert_eq!(json(&seen[2])["n"], 3);
    let (status, _, err) = run.signal("-INT");
    assert!(status.success(), "Ctrl-C is a normal stop: {err}");
    assert!(err.contains("stopped: interrupted"), "{err}");
    assert!(err.contains("source `Ingest`: 3 received"), "{err}");
}

#[test]
fn http_ingest_answers_bad_requests_without_accepting_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    write(
        dir.path(),
        "rules.vpl",
        &format!(
            "{READING}connector Ingest = http (url: \"http://127.0.0.1:{port}/events\", token: \"${{INGEST_TOKEN}}\")\n\n\
             stream All = Reading.from(Ingest).emit(zone: zone)\n"
        ),
    );
    let mut run = Run::start(&["rules.vpl"], dir.path(), &[("INGEST_TOKEN", "s3cret")]);
    run.wait_running();
    let auth = "Authorization: Bearer s3cret";
    let (status, _) = post(port, "/events", r#"{"zone":"a","temp":1}"#, &[]);
    assert_eq!(status, 401, "the token is required");
    let (status, body) = post(
        port,
        "/events",
        "{\"zone\":\"a\",\"temp\":1}\n{oops",
        &[auth],
    );
    assert_eq!(status, 400);
    assert!(body.contains("line 2"), "{body}");
    let (status, _) = post(port, "/other", r#"{"zone":"a"}"#, &[auth]);
    assert_eq!(status, 404);
    let (status, _) = post(port, "/events", r#"{"zone":"ok","temp":1}"#, &[auth]);
    assert_eq!(status, 202);
    run.wait_outputs(1);
    let (status, out, err) = run.signal("-TERM");
    assert!(status.success(), "SIGTERM is a normal stop: {err}");
    assert_eq!(out.len(), 1, "only the good request ran: {out:#?}");
    assert_eq!(json(&out[0])["zone"], "ok");
    assert!(err.contains("3 rejected"), "{err}");
}

#[test]
fn a_live_run_serves_prometheus_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, metrics) = (free_port(), free_port());
    write(
        dir.path(),
        "rules.vpl",
        &format!(
            "{READING}connector Ingest = http (url: \"http://127.0.0.1:{port}/\")\n\n\
             stream Hot = Reading.from(Ingest).where(temp > 30.0).emit(zone: zone)\n"
        ),
    );
    let addr = format!("127.0.0.1:{metrics}");
    let mut run = Run::start(&["rules.vpl", "--metrics", &addr], dir.path(), &[]);
    let started = run.wait_running();
    assert!(
        started
            .iter()
            .any(|l| l == &format!("metrics: http://{addr}/metrics")),
        "{started:#?}"
    );
    let body =
        "{\"zone\":\"a\",\"temp\":31}\n{\"zone\":\"b\",\"temp\":\"hot\"}\n{\"type\":\"Nope\"}";
    assert_eq!(post(port, "/", body, &[]).0, 202);
    run.wait_outputs(1);
    let expected = [
        "varpulis_input_records_total 3",
        "varpulis_events_total 1",
        "varpulis_input_skipped_total{reason=\"unknown_type\"} 1",
        "varpulis_input_skipped_total{reason=\"wrong_type\"} 1",
        "varpulis_outputs_total{stream=\"Hot\"} 1",
        "varpulis_source_received_total{connector=\"Ingest\"} 3",
        "varpulis_pending_events 0",
        "varpulis_engine_workers 1",
    ];
    // The snapshot is refreshed every tick and the three records may land in
    // different ticks: poll until it shows all of them.
    let deadline = Instant::now() + Duration::from_secs(10);
    let has_all = |text: &str| expected.iter().all(|e| text.lines().any(|l| l == *e));
    let text = loop {
        let (status, text) = get(metrics, "/metrics");
        assert_eq!(status, 200);
        if has_all(&text) || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for line in expected {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
    }
    assert_eq!(get(metrics, "/health"), (200, "ok\n".to_string()));
    let (status, _, err) = run.signal("-INT");
    assert!(status.success(), "{err}");
}

#[test]
fn a_restart_resumes_from_the_checkpoint_without_losing_or_repeating_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let line = |t: f64| format!("{{\"zone\":\"a\",\"temp\":{t}}}\n");
    write(dir.path(), "in.jsonl", &(line(1.0) + &line(2.0)));
    write(
        dir.path(),
        "rules.vpl",
        &format!(
            "{READING}connector In = file (path: \"in.jsonl\", follow: true, poll: 20ms)\n\n\
             stream Sum = Reading.from(In)\n    .window(3)\n    .aggregate(n: count(), total: sum(temp))\n    .emit(n: n, total: total)\n"
        ),
    );
    let args = [
        "rules.vpl",
        "--state-dir",
        "state",
        "--checkpoint-interval",
        "1h",
    ];
    // First run: two readings in an open count window, then Ctrl-C.
    let mut run = Run::start(&args, dir.path(), &[]);
    run.wait_running();
    std::thread::sleep(Duration::from_millis(300));
    let (status, out, err) = run.signal("-INT");
    assert!(status.success(), "{err}");
    assert!(out.is_empty(), "{out:#?}");
    assert!(
        err.contains("state: 1 checkpoints written to `state`"),
        "{err}"
    );
    // More readings arrive while the run is down.
    let mut text = std::fs::read_to_string(dir.path().join("in.jsonl")).expect("read");
    text.push_str(&(line(4.0) + &line(8.0)));
    write(dir.path(), "in.jsonl", &text);
    // Second run: the window holds 1 and 2 from the checkpoint, the file
    // resumes at the third line.
    let mut run = Run::start(&args, dir.path(), &[]);
    let started = run.wait_running();
    assert!(
        started
            .iter()
            .any(|l| l == "state: restored the checkpoint in `state`"),
        "{started:#?}"
    );
    let seen = run.wait_outputs(1).to_vec();
    let (status, out, err) = run.signal("-INT");
    assert!(status.success(), "{err}");
    assert_eq!(out.len(), 1, "{out:#?}");
    let sum = json(&seen[0]);
    assert_eq!(
        (sum["n"].clone(), sum["total"].clone()),
        (3.into(), 7.0.into()),
        "{seen:#?}"
    );
}

/// A run that restores a checkpoint and is stopped before its source
/// delivers anything (a Kafka group still joining, a followed file with
/// nothing new) still checkpoints; that checkpoint must keep the restored
/// positions, or the next restart reads the input from its start into a state
/// that has already seen it.
#[test]
fn a_run_that_reads_nothing_keeps_the_checkpoints_positions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let line = |t: f64| format!("{{\"zone\":\"a\",\"temp\":{t}}}\n");
    write(dir.path(), "in.jsonl", &(line(1.0) + &line(2.0)));
    write(
        dir.path(),
        "rules.vpl",
        &format!(
            "{READING}connector In = file (path: \"in.jsonl\", follow: true, poll: 20ms)\n\n\
             stream Sum = Reading.from(In)\n    .window(3)\n    .aggregate(n: count(), total: sum(temp))\n    .emit(n: n, total: total)\n"
        ),
    );
    let args = [
        "rules.vpl",
        "--state-dir",
        "state",
        "--checkpoint-interval",
        "20ms",
    ];
    // First run: 1 and 2 in an open count window, then Ctrl-C.
    let mut run = Run::start(&args, dir.path(), &[]);
    run.wait_running();
    std::thread::sleep(Duration::from_millis(300));
    let (status, out, err) = run.signal("-INT");
    assert!(status.success(), "{err}");
    assert!(out.is_empty(), "{out:#?}");
    // Second run: nothing new to read; it checkpoints every 20ms and at the
    // stop, with the restored state and no record delivered.
    let mut run = Run::start(&args, dir.path(), &[]);
    run.wait_running();
    std::thread::sleep(Duration::from_millis(300));
    let (status, out, err) = run.signal("-INT");
    assert!(status.success(), "{err}");
    assert!(out.is_empty(), "{out:#?}");
    let written = err
        .lines()
        .find(|l| l.starts_with("state: ") && l.contains("checkpoints written"))
        .unwrap_or_default();
    assert!(
        !written.starts_with("state: 0 checkpoints"),
        "the idle run should checkpoint: {err}"
    );
    // Third run: the window holds 1 and 2, the file resumes at the third
    // line (not at its start, which would close the window with 1, 2, 1).
    let mut text = std::fs::read_to_string(dir.path().join("in.jsonl")).expect("read");
    text.push_str(&(line(4.0) + &line(8.0)));
    write(dir.path(), "in.jsonl", &text);
    let mut run = Run::start(&args, dir.path(), &[]);
    run.wait_running();
    let seen = run.wait_outputs(1).to_vec();
    std::thread::sleep(Duration::from_millis(200));
    let (status, out, err) = run.signal("-INT");
    assert!(status.success(), "{err}");
    assert_eq!(out.len(), 1, "{out:#?}");
    let sum = json(&seen[0]);
    assert_eq!(
        (sum["n"].clone(), sum["total"].clone()),
        (3.into(), 7.0.into()),
        "{seen:#?}"
    );
}

#[test]
fn a_checkpoint_of_another_program_is_refused_with_advice() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "in.jsonl", "{\"zone\":\"a\",\"temp\":1}\n");
    let program = |stream: &str| {
        format!(
            "{READING}connector In = file (path: \"in.jsonl\")\n\nstream {stream} = Reading.from(In).emit(zone: zone)\n"
        )
    };
    write(dir.path(), "a.vpl", &program("First"));
    write(dir.path(), "b.vpl", &program("Second"));
    let (status, _, err) = Run::start(&["a.vpl", "--state-dir", "st"], dir.path(), &[]).finish();
    assert!(status.success(), "{err}");
    let (status, _, err) = Run::start(&["b.vpl", "--state-dir", "st"], dir.path(), &[]).finish();
    assert_eq!(status.code(), Some(1));
    assert!(
        err.contains("belongs to a program with the streams [First], not [Second]"),
        "{err}"
    );
    let (status, _, err) = Run::start(
        &["a.vpl", "--state-dir", "st", "--input", "in.jsonl"],
        dir.path(),
        &[],
    )
    .finish();
    assert_eq!(status.code(), Some(2));
    assert!(
        err.contains("--state-dir checkpoints runs over connector sources"),
        "{err}"
    );
}

#[test]
fn bad_payloads_are_reported_with_their_place_and_dead_lettered() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "in.jsonl",
        "{\"zone\":\"a\",\"temp\":1}\n{\"type\":\"Nope\"}\n{broken\n{\"zone\":\"b\",\"temp\":\"warm\"}\n",
    );
    write_rules_reading_in(dir.path(), "");
    let run = Run::start(
        &["rules.vpl", "--dead-letter", "bad.jsonl"],
        dir.path(),
        &[],
    );
    let (status, out, err) = run.finish();
    assert!(status.success(), "{err}");
    assert_eq!(out.len(), 1, "{out:#?}");
    assert!(
        err.contains("connector `In` (in.jsonl line 2): unknown event type `Nope`"),
        "{err}"
    );
    assert!(err.contains("in.jsonl line 3"), "{err}");
    assert!(
        err.contains("skipped 3 input records (malformed 1, unknown type 1, wrong type 1)"),
        "{err}"
    );
    let dead = std::fs::read_to_string(dir.path().join("bad.jsonl")).expect("dead letters");
    let dead: Vec<serde_json::Value> = dead.lines().map(json).collect();
    assert_eq!(dead.len(), 3);
    assert_eq!(dead[0]["payload"], "{\"type\":\"Nope\"}\n");
    assert_eq!(dead[1]["_place"], "connector `In` (in.jsonl line 3)");
    assert!(
        dead[2]["_error"]
            .as_str()
            .is_some_and(|e| e.contains("temp")),
        "{dead:#?}"
    );
}

#[test]
fn a_dead_letter_file_that_cannot_be_written_is_reported_not_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "in.jsonl",
        "{\"zone\":\"a\",\"temp\":1}\n{broken\n",
    );
    write_rules_reading_in(dir.path(), "");
    let run = Run::start(
        &["rules.vpl", "--dead-letter", "/dev/full"],
        dir.path(),
        &[],
    );
    let (status, out, err) = run.finish();
    assert!(status.success(), "{err}");
    assert_eq!(out.len(), 1);
    assert!(
        err.contains("cannot write the dead-letter file `/dev/full`"),
        "{err}"
    );
    assert!(err.contains("1 bad payloads could not be written"), "{err}");
    assert!(
        err.contains("skipped 1 input records (malformed 1)"),
        "{err}"
    );
}

#[test]
fn strict_makes_a_bad_payload_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "in.jsonl",
        "{\"zone\":\"a\",\"temp\":1}\n{broken\n",
    );
    write_rules_reading_in(dir.path(), ", follow: true");
    let run = Run::start(&["rules.vpl", "--strict"], dir.path(), &[]);
    let (status, out, err) = run.finish();
    assert_eq!(status.code(), Some(1), "{err}");
    assert_eq!(out.len(), 1);
    assert!(
        err.contains("error: input connector `In` (in.jsonl line 2)"),
        "{err}"
    );
}

#[test]
fn a_misspelt_source_parameter_stops_the_run_before_it_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "in.jsonl", "");
    write_rules_reading_in(dir.path(), ", folow: true");
    let run = Run::start(&["rules.vpl"], dir.path(), &[]);
    let (status, _, err) = run.finish();
    assert_eq!(status.code(), Some(1));
    assert!(
        err.contains(
            "connector `In`: unknown parameter `folow` for a file source; did you mean `follow`?"
        ),
        "{err}"
    );
}

#[test]
fn an_input_file_replaces_the_sources() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "rules.vpl",
        &format!(
            "{READING}connector In = http (url: \"http://127.0.0.1:1/never\")\n\nstream All = Reading.from(In).emit(zone: zone)\n"
        ),
    );
    write(
        dir.path(),
        "events.jsonl",
        "{\"event_type\":\"Reading\",\"zone\":\"a\",\"temp\":1}\n",
    );
    let run = Run::start(&["rules.vpl", "--input", "events.jsonl"], dir.path(), &[]);
    let (status, out, err) = run.finish();
    assert!(status.success(), "{err}");
    assert_eq!(out.len(), 1);
    assert!(err.contains("the connector is not started"), "{err}");
}

/// The broker address from the environment, or `None` after saying why the
/// test does not run (a failure under `VARPULIS_REQUIRE_BROKERS=1`).
fn broker(var: &str) -> Option<String> {
    let required = std::env::var("VARPULIS_REQUIRE_BROKERS").is_ok_and(|v| v == "1");
    match std::env::var(var) {
        Ok(addr) if TcpStream::connect(&addr).is_ok() => Some(addr),
        Ok(addr) => {
            assert!(!required, "{var}={addr} is not reachable");
            eprintln!("skipped: no broker at {var}={addr}");
            None
        }
        Err(_) => {
            assert!(!required, "{var} is not set (scripts/brokers env)");
            eprintln!("skipped: {var} is not set; run `eval \"$(scripts/brokers env)\"`");
            None
        }
    }
}

#[cfg(feature = "mqtt")]
#[test]
fn mqtt_readings_in_alerts_out() {
    use varpulis_connectors::{
        open_sink, open_source, ConfigValue, ConnectorConfig, Record, SinkContext, SourceConfig,
        SourceContext, SourceEvent, SourceSender,
    };
    let Some(addr) = broker("VARPULIS_TEST_MQTT") else {
        return;
    };
    let (host, port) = addr.split_once(':').expect("host:port");
    let tag = format!("live-{}", std::process::id());
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "rules.vpl",
        &format!(
            "{READING}connector Broker = mqtt (host: \"{host}\", port: {port}, qos: 1)\n\n\
             stream Hot = Reading.from(Broker, topic: \"{tag}/readings\")\n    .where(temp > 30.0)\n    .emit(zone: zone, temp: temp)\n    .to(Broker, topic: \"{tag}/alerts\")\n"
        ),
    );
    // Our own subscriber on the alerts topic, through the connector crate.
    let (tx, rx) = crossbeam_channel::bounded(100);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let base = ConnectorConfig::new("Check", "mqtt")
        .param("host", ConfigValue::Str(host.into()))
        .param("port", ConfigValue::Int(port.parse().expect("port")));
    let mut alerts = open_source(
        &SourceConfig::new(
            base.clone()
                .param("topic", ConfigValue::Str(format!("{tag}/alerts"))),
            0,
        ),
        &SourceContext::new(dir.path()),
        SourceSender::new(tx, stop.clone()),
    )
    .expect("subscribe to alerts");
    let mut run = Run::start(&["rules.vpl"], dir.path(), &[]);
    run.wait_running();
    // The run subscribes asynchronously: publish until an alert comes back.
    let mut sink = open_sink(
        &base.param("topic", ConfigValue::Str(format!("{tag}/readings"))),
        &SinkContext::new(dir.path()),
    )
    .expect("publisher");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = None;
    while got.is_none() && Instant::now() < deadline {
        sink.send(Record::from_json(br#"{"zone":"z1","temp":35.5}"#).expect("record"))
            .expect("publish");
        sink.send(Record::from_json(br#"{"zone":"z2","temp":10}"#).expect("record"))
            .expect("publish");
        let _ = sink.flush();
        if let Ok(SourceEvent::Message(m)) = rx.recv_timeout(Duration::from_millis(500)) {
            got = Some(m);
        }
    }
    let alert = got.expect("an alert published by the run");
    let alert = json(&String::from_utf8_lossy(&alert.payload));
    assert_eq!(alert["event_type"], "Hot");
    assert_eq!(alert["zone"], "z1");
    let (status, out, err) = run.signal("-INT");
    assert!(status.success(), "{err}");
    assert!(out.iter().all(|l| json(l)["zone"] == "z1"), "{out:#?}");
    let _ = sink.close();
    alerts.stop();
}

#[cfg(feature = "kafka")]
#[test]
fn kafka_orders_in_alerts_out() {
    use varpulis_connectors::{
        open_sink, open_source, ConfigValue, ConnectorConfig, Record, SinkContext, SourceConfig,
        SourceContext, SourceEvent, SourceSender,
    };
    let Some(brokers) = broker("VARPULIS_TEST_KAFKA") else {
        return;
    };
    let tag = format!("live-{}", std::process::id());
    let (orders, alerts) = (format!("{tag}-orders"), format!("{tag}-alerts"));
    create_topics(&brokers, &[&orders, &alerts]);
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "rules.vpl",
        &format!(
            "event Order:\n    user: str\n    amount: float\n\n\
             connector K = kafka (brokers: \"{brokers}\", group_id: \"{tag}-rules\", start: earliest, session_timeout: 6s)\n\n\
             stream Big = Order.from(K, topic: \"{orders}\")\n    .where(amount > 100.0)\n    .emit(user: user, amount: amount)\n    .to(K, topic: \"{alerts}\", key: user)\n"
        ),
    );
    let base =
        ConnectorConfig::new("Check", "kafka").param("brokers", ConfigValue::Str(brokers.clone()));
    let mut producer = open_sink(
        &base
            .clone()
            .param("topic", ConfigValue::Str(orders.clone())),
        &SinkContext::new(dir.path()),
    )
    .expect("producer");
    for body in [
        r#"{"event_type":"Order","user":"ann","amount":5000.0}"#,
        r#"{"user":"bob","amount":20.0}"#,
        r#"{"user":"cy","amount":150.0}"#,
    ] {
        producer
            .send(Record::from_json(body.as_bytes()).expect("record"))
            .expect("produce");
    }
    producer.close().expect("every order delivered");

    let mut run = Run::start(&["rules.vpl"], dir.path(), &[]);
    run.wait_running();
    let seen = run.wait_outputs(2).to_vec();
    let users: Vec<String> = seen
        .iter()
        .map(|l| json(l)["user"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(users, ["ann", "cy"], "a flat payload takes the .from type");

    // The alerts went to Kafka too.
    let (tx, rx) = crossbeam_channel::bounded(100);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut check = open_source(
        &SourceConfig::new(
            base.param("topic", ConfigValue::Str(alerts))
                .param("group_id", ConfigValue::Str(format!("{tag}-check")))
                .param("session_timeout", ConfigValue::Duration(6_000_000_000)),
            0,
        ),
        &SourceContext::new(dir.path()),
        SourceSender::new(tx, stop),
    )
    .expect("consume alerts");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while got.len() < 2 && Instant::now() < deadline {
        if let Ok(SourceEvent::Message(m)) = rx.recv_timeout(Duration::from_millis(200)) {
            got.push(json(&String::from_utf8_lossy(&m.payload))["user"].clone());
        }
    }
    check.stop();
    assert_eq!(got, ["ann", "cy"]);
    let (status, _, err) = run.signal("-INT");
    assert!(status.success(), "{err}");
    assert!(err.contains("source `K`: 3 received"), "{err}");
}

#[cfg(feature = "kafka")]
#[test]
fn kafka_offsets_follow_checkpoints_across_a_restart() {
    kafka_restart("ckpt", false);
}

/// The checkpoint, not the consumer group, says where a restart resumes: a
/// second run in a new group (no committed offsets, `start: earliest`) still
/// starts after what the restored state has seen.
#[cfg(feature = "kafka")]
#[test]
fn kafka_resumes_at_the_checkpoints_offsets_not_the_groups() {
    kafka_restart("seek", true);
}

/// Two orders, a stop (checkpoint), a third order, a restart: the count
/// window of 3 fires once with the total of the three. With `new_group` the
/// restart joins a group that has committed nothing.
#[cfg(feature = "kafka")]
fn kafka_restart(name: &str, new_group: bool) {
    use varpulis_connectors::{open_sink, ConfigValue, ConnectorConfig, Record, SinkContext};
    let Some(brokers) = broker("VARPULIS_TEST_KAFKA") else {
        return;
    };
    let tag = format!("{name}-{}", std::process::id());
    let topic = format!("{tag}-orders");
    create_topics(&brokers, &[&topic]);
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = |group: &str| {
        write(
            dir.path(),
            "rules.vpl",
            &format!(
                "event Order:\n    user: str\n    amount: float\n\n\
                 connector K = kafka (brokers: \"{brokers}\", topic: \"{topic}\", group_id: \"{group}\", start: earliest, session_timeout: 6s)\n\n\
                 stream Sum = Order.from(K)\n    .window(3)\n    .aggregate(n: count(), total: sum(amount))\n    .emit(n: n, total: total)\n"
            ),
        );
    };
    rules(&tag);
    let produce = |amounts: &[f64]| {
        let mut p = open_sink(
            &ConnectorConfig::new("P", "kafka")
                .param("brokers", ConfigValue::Str(brokers.clone()))
                .param("topic", ConfigValue::Str(topic.clone())),
            &SinkContext::new(dir.path()),
        )
        .expect("producer");
        for a in amounts {
            let body = format!("{{\"user\":\"u\",\"amount\":{a}}}");
            p.send(Record::from_json(body.as_bytes()).expect("record"))
                .expect("produce");
        }
        p.close().expect("delivered");
    };
    let metrics = free_port();
    let addr = format!("127.0.0.1:{metrics}");
    let args = [
        "rules.vpl",
        "--state-dir",
        "state",
        "--checkpoint-interval",
        "1h",
        "--metrics",
        &addr,
    ];
    produce(&[1.0, 2.0]);
    let mut run = Run::start(&args, dir.path(), &[]);
    run.wait_running();
    // Stop once both orders are in the engine (joining the group takes a few
    // seconds).
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let (_, text) = get(metrics, "/metrics");
        if text.contains("varpulis_events_total 2\n") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, out, err) = run.signal("-INT");
    assert!(status.success(), "{err}");
    assert!(out.is_empty(), "{out:#?}");
    assert!(err.contains("source `K`: 2 received"), "{err}");
    assert!(err.contains("state: 1 checkpoints written"), "{err}");
    produce(&[4.0]);
    if new_group {
        rules(&format!("{tag}-new"));
    }
    let mut run = Run::start(&args, dir.path(), &[]);
    run.wait_running();
    let seen = run.wait_outputs(1).to_vec();
    let (status, out, err) = run.signal("-INT");
    assert!(status.success(), "{err}");
    assert_eq!(out.len(), 1, "{out:#?}");
    let sum = json(&seen[0]);
    assert_eq!(
        (sum["n"].clone(), sum["total"].clone()),
        (3.into(), 7.0.into()),
        "{err}"
    );
}

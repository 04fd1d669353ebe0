//! `varpulis server` as users run it: started from the CLI, driven over its REST API on
//! 127.0.0.1 with a plain HTTP/1.1 client, stopped with SIGTERM and started again.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Server {
    child: Child,
    port: u16,
    log: Receiver<String>,
}

impl Server {
    fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_varpulis"))
            .args(["server", "--listen", &listen, "--state-dir", "state"])
            .args(args)
            .env_remove("VARPULIS_ADMIN_KEY")
            .envs(env.iter().copied())
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start varpulis server");
        let (tx, log) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let server = Server { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the server did not start: {:?}",
            server.log.try_iter().collect::<Vec<_>>()
        );
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> (u16, Value) {
        let (status, text) = self.raw(
            method,
            path,
            body.map(|b| ("application/json", b.to_string())),
            key,
        );
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, String)>,
        key: Option<&str>,
    ) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut req = format!("{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n");
        if let Some(k) = key {
            req.push_str(&format!("authorization: Bearer {k}\r\n"));
        }
        let body = body.map_or((None, String::new()), |(t, b)| (Some(t), b));
        if let Some(t) = body.0 {
            req.push_str(&format!("content-type: {t}\r\n"));
        }
        req.push_str(&format!(
            "content-length: {}\r\n\r\n{}",
            body.1.len(),
            body.1
        ));
        s.write_all(req.as_bytes()).expect("send");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
        let mut text = out
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        if out
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            text = dechunk(&text);
        }
        (status, text)
    }

    fn wait_state(&self, name: &str, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, v) = self.call("GET", &format!("/api/v1/pipelines/{name}"), None, None);
            if v["state"] == state {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never became {state}: {v}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn terminate(mut self) -> (bool, Duration) {
        let started = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "the server did not stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        (status.success(), started.elapsed())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

const HOT: &str = "event Reading:\n    zone: str\n    temp: float\n\nstream Hot = Reading\n    .where(temp > 30.0)\n    .emit(zone: zone, temp: temp)\n";

const COUNTS: &str = "event Reading:\n    zone: str\n    temp: float\n\nstream Counts = Reading\n    .partition_by(zone)\n    .window(3)\n    .aggregate(zone: last(zone), n: count())\n    .emit(zone: zone, n: n)\n";

fn deploy(s: &Server, name: &str, source: &str) -> (u16, Value) {
    s.call(
        "POST",
        "/api/v1/pipelines",
        Some(&json!({ "name": name, "source": source })),
        None,
    )
}

fn post_events(s: &Server, name: &str, lines: &str, key: Option<&str>) -> (u16, String) {
    s.raw(
        "POST",
        &format!("/api/v1/pipelines/{name}/events"),
        Some(("application/x-ndjson", lines.to_string())),
        key,
    )
}

#[test]
fn deploy_inspect_feed_tail_update_and_delete_a_pipeline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start(dir.path(), &[], &[]);
    assert_eq!(s.call("GET", "/healthz", None, None).0, 200);
    let (status, body) = deploy(&s, "hot", HOT);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "hot");
    s.wait_state("hot", "running");
    assert_eq!(s.call("GET", "/readyz", None, None).0, 200);
    // A duplicate name, errors in the program, a bad name.
    assert_eq!(deploy(&s, "hot", HOT).0, 409);
    let (status, body) = deploy(&s, "broken", "stream X = Reading.where(temp >)\n");
    assert_eq!(status, 422, "{body}");
    assert!(
        body["diagnostics"]
            .as_array()
            .is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    assert!(body["diagnostics"][0]["code"].as_str().is_some(), "{body}");
    assert_eq!(deploy(&s, "../etc", HOT).0, 400);
    assert_eq!(s.call("GET", "/api/v1/pipelines/nope", None, None).0, 404);

    // A tail, then events.
    let mut tail = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    tail.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    tail.write_all(b"GET /api/v1/pipelines/hot/streams/Hot/tail HTTP/1.1\r\nhost: x\r\n\r\n")
        .expect("tail request");
    let mut tail = BufReader::new(tail);
    let mut first = String::new();
    tail.read_line(&mut first).expect("tail status");
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    std::thread::sleep(Duration::from_millis(300));
    let (status, text) = post_events(
        &s,
        "hot",
        "{\"event_type\":\"Reading\",\"zone\":\"a\",\"temp\":35.5}\n{\"event_type\":\"Reading\",\"zone\":\"b\",\"temp\":20}\n",
        None,
    );
    assert_eq!(status, 202, "{text}");
    assert!(text.contains("\"accepted\":2"), "{text}");
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !line.starts_with("data:") {
        line.clear();
        tail.read_line(&mut line).expect("tail line");
        assert!(Instant::now() < deadline);
    }
    let output: Value =
        serde_json::from_str(line.trim_start_matches("data:").trim()).expect("JSON output");
    assert_eq!(output["zone"], "a");
    assert_eq!(output["stream"], "Hot");
    // Bad bodies are refused whole.
    let (status, text) = post_events(&s, "hot", "{\"zone\":\"a\"}\n{oops\n", None);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("line 2"), "{text}");

    // Status and metrics.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let (_, v) = s.call("GET", "/api/v1/pipelines/hot", None, None);
        if v["streams"][0]["events_out"] == 1 {
            break v;
        }
        assert!(Instant::now() < deadline, "{v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["events_in"], 2);
    let (_, list) = s.call("GET", "/api/v1/pipelines", None, None);
    assert_eq!(list["pipelines"][0]["name"], "hot");
    let (code, metrics) = s.raw("GET", "/metrics", None, None);
    assert_eq!(code, 200);
    assert!(
        metrics.contains("varpulis_outputs_total{pipeline=\"hot\",stream=\"Hot\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("varpulis_pipeline_up{pipeline=\"hot\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("varpulis_http_requests_total{listener=\"server\"}"),
        "{metrics}"
    );

    // Check without deploying.
    let (code, v) = s.call(
        "POST",
        "/api/v1/check",
        Some(&json!({ "source": "stream X = Reading.where(temp >)\n" })),
        None,
    );
    assert_eq!(code, 200);
    assert!(v["errors"].as_u64().is_some_and(|n| n > 0), "{v}");

    // A hot update: the unchanged stream keeps its state, the new one starts empty.
    let updated =
        format!("{HOT}\nstream Cold = Reading\n    .where(temp < 0.0)\n    .emit(zone: zone)\n");
    let (code, v) = s.call(
        "PUT",
        "/api/v1/pipelines/hot",
        Some(&json!({ "source": updated })),
        None,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        v["update"]["streams"][0],
        json!({"name": "Hot", "state": "kept", "reason": "unchanged"})
    );
    assert_eq!(v["update"]["streams"][1]["reason"], "new stream");
    let (code, v) = s.call(
        "PUT",
        "/api/v1/pipelines/hot",
        Some(&json!({ "source": "stream X = Reading.where(temp >)\n" })),
        None,
    );
    assert_eq!(code, 422, "{v}");
    s.wait_state("hot", "running");

    // Delete.
    assert_eq!(s.call("DELETE", "/api/v1/pipelines/hot", None, None).0, 204);
    assert_eq!(s.call("GET", "/api/v1/pipelines/hot", None, None).0, 404);
    assert_eq!(s.call("DELETE", "/api/v1/pipelines/hot", None, None).0, 404);
    assert!(!dir.path().join("state/pipelines/hot").exists());
    let (ok, took) = s.terminate();
    assert!(ok, "SIGTERM is a clean stop");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn bad_requests_get_clear_json_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start(dir.path(), &[], &[]);
    let (code, text) = s.raw(
        "POST",
        "/api/v1/pipelines",
        Some(("text/plain", "x".into())),
        None,
    );
    assert_eq!(code, 415, "{text}");
    let (code, text) = s.raw(
        "POST",
        "/api/v1/pipelines",
        Some(("application/json", "{not json".into())),
        None,
    );
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("not valid JSON"), "{text}");
    let (code, v) = s.call(
        "POST",
        "/api/v1/pipelines",
        Some(&json!({ "name": "x" })),
        None,
    );
    assert_eq!(code, 400, "{v}");
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("`source`")),
        "{v}"
    );
    let big = "#".repeat(2 << 20);
    let (code, text) = s.call(
        "POST",
        "/api/v1/pipelines",
        Some(&json!({ "name": "x", "source": big })),
        None,
    );
    assert!(code == 413, "{code} {text}");
    let (code, v) = s.call("GET", "/api/v1/nowhere", None, None);
    assert_eq!(code, 404);
    assert!(v["error"].as_str().is_some(), "{v}");
    let (code, v) = s.call("PATCH", "/api/v1/pipelines", None, None);
    assert_eq!(code, 405, "{v}");
    assert_eq!(
        s.call(
            "POST",
            "/api/v1/pipelines/none/events",
            Some(&json!({})),
            None
        )
        .0,
        404
    );
    assert_eq!(
        s.call("GET", "/api/v1/pipelines/none/streams/X/tail", None, None)
            .0,
        404
    );
    assert_eq!(deploy(&s, "p", HOT).0, 201);
    assert_eq!(
        s.call("GET", "/api/v1/pipelines/p/streams/Nope/tail", None, None)
            .0,
        404
    );
    // Still up after all of it.
    assert_eq!(s.call("GET", "/healthz", None, None).0, 200);
}

#[test]
fn api_keys_guard_every_route_but_the_probes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hash = Command::new(env!("CARGO_BIN_EXE_varpulis"))
        .args(["server", "hash-key", "reader-key"])
        .output()
        .expect("hash-key");
    let hash = String::from_utf8_lossy(&hash.stdout).trim().to_string();
    assert!(hash.starts_with("sha256:"), "{hash}");
    std::fs::write(
        dir.path().join("varpulis.toml"),
        format!("[[api_keys]]\nname = \"reader\"\nrole = \"read\"\nhash = \"{hash}\"\n"),
    )
    .expect("config");
    let s = Server::start(
        dir.path(),
        &["--config", "varpulis.toml"],
        &[("VARPULIS_ADMIN_KEY", "admin-key")],
    );
    assert_eq!(s.call("GET", "/healthz", None, None).0, 200);
    assert_eq!(s.call("GET", "/readyz", None, None).0, 200);
    let (code, v) = s.call("GET", "/api/v1/pipelines", None, None);
    assert_eq!(code, 401, "{v}");
    assert!(v["error"].as_str().is_some(), "{v}");
    assert_eq!(
        s.call("GET", "/api/v1/pipelines", None, Some("wrong")).0,
        401
    );
    assert_eq!(s.call("GET", "/metrics", None, None).0, 401);
    assert_eq!(s.call("GET", "/", None, None).0, 401);
    assert_eq!(
        s.call("GET", "/api/v1/pipelines", None, Some("reader-key"))
            .0,
        200
    );
    assert_eq!(s.call("GET", "/metrics", None, Some("reader-key")).0, 200);
    let body = json!({ "name": "p", "source": HOT });
    let (code, v) = s.call("POST", "/api/v1/pipelines", Some(&body), Some("reader-key"));
    assert_eq!(code, 403, "{v}");
    assert_eq!(
        s.call("POST", "/api/v1/pipelines", Some(&body), None).0,
        401
    );
    assert_eq!(
        s.call("POST", "/api/v1/pipelines", Some(&body), Some("admin-key"))
            .0,
        201
    );
    assert_eq!(
        s.call("DELETE", "/api/v1/pipelines/p", None, Some("reader-key"))
            .0,
        403
    );
    assert_eq!(post_events(&s, "p", "{}", Some("reader-key")).0, 403);
    assert_eq!(
        s.call("DELETE", "/api/v1/pipelines/p", None, Some("admin-key"))
            .0,
        204
    );
}

#[test]
fn a_public_address_without_keys_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_varpulis"))
        .args(["server", "--listen", "0.0.0.0:0", "--state-dir", "state"])
        .env_remove("VARPULIS_ADMIN_KEY")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to listen on 0.0.0.0"), "{err}");
}

#[test]
fn pipelines_come_back_after_a_restart_with_their_state_and_failures_stay_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start(dir.path(), &[], &[]);
    assert_eq!(deploy(&s, "counts", COUNTS).0, 201);
    s.wait_state("counts", "running");
    // Two readings of zone a: the count window (3 events) is not full yet.
    let two = "{\"event_type\":\"Reading\",\"zone\":\"a\",\"temp\":1}\n{\"event_type\":\"Reading\",\"zone\":\"a\",\"temp\":2}\n";
    assert_eq!(post_events(&s, "counts", two, None).0, 202);
    // A pipeline whose source cannot start fails alone, with its reason.
    let port = TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let held = port.local_addr().expect("addr").port();
    let broken = format!(
        "event Reading:\n    zone: str\n    temp: float\n\nconnector In = http (url: \"http://127.0.0.1:{held}/events\")\n\nstream All = Reading.from(In).emit(zone: zone)\n"
    );
    assert_eq!(deploy(&s, "broken", &broken).0, 201);
    let failed = s.wait_state("broken", "failed");
    assert!(
        failed["reason"]
            .as_str()
            .is_some_and(|r| r.contains("cannot listen")),
        "{failed}"
    );
    let (code, ready) = s.call("GET", "/readyz", None, None);
    assert_eq!(code, 503, "{ready}");
    assert_eq!(ready["pipelines"]["broken"], "failed");
    s.wait_state("counts", "running");
    std::thread::sleep(Duration::from_millis(300));
    let (ok, _) = s.terminate();
    assert!(ok);
    drop(port);

    let s = Server::start(dir.path(), &[], &[]);
    s.wait_state("counts", "running");
    // The third reading completes the window started before the restart.
    let mut tail = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    tail.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    tail.write_all(b"GET /api/v1/pipelines/counts/streams/Counts/tail HTTP/1.1\r\nhost: x\r\n\r\n")
        .expect("tail");
    let mut tail = BufReader::new(tail);
    std::thread::sleep(Duration::from_millis(300));
    let third = "{\"event_type\":\"Reading\",\"zone\":\"a\",\"temp\":3}\n";
    assert_eq!(post_events(&s, "counts", third, None).0, 202);
    let mut line = String::new();
    while !line.starts_with("data:") {
        line.clear();
        tail.read_line(&mut line).expect("tail line");
    }
    let out: Value = serde_json::from_str(line.trim_start_matches("data:").trim()).expect("json");
    assert_eq!(
        out["n"], 3,
        "the window kept its two events across the restart: {out}"
    );
    // The broken pipeline came back too, and now starts (its port is free).
    s.wait_state("broken", "running");
}

#[test]
fn the_openapi_document_describes_every_route() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start(dir.path(), &[], &[]);
    let (code, doc) = s.call("GET", "/api/v1/openapi.json", None, None);
    assert_eq!(code, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().expect("paths");
    let mut described = 0;
    for (path, methods) in paths {
        for method in methods.as_object().expect("methods").keys() {
            described += 1;
            // Every described route exists: it never answers the router's 404/405 fallbacks.
            let concrete = path.replace("{name}", "nope").replace("{stream}", "nope");
            let (code, v) = s.call(&method.to_uppercase(), &concrete, None, None);
            let fallback = v["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("no route") || e.contains("is not allowed"));
            assert!(!fallback, "{method} {path}: {code} {v}");
        }
    }
    assert_eq!(described, 13);
    // And an undescribed route is the fallback.
    let (code, v) = s.call("GET", "/api/v1/pipelines/x/y", None, None);
    assert_eq!(code, 404);
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("no route")),
        "{v}"
    );
}

#[test]
fn a_pipeline_deploys_with_its_own_connector_settings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start(dir.path(), &[], &[]);
    let source = "event Reading:\n    zone: str\n    temp: float\n\nconnector Out = file (path: \"dev.jsonl\")\n\nstream Hot = Reading\n    .where(temp > 30.0)\n    .emit(zone: zone)\n    .to(Out)\n";
    let prod = dir.path().join("prod.jsonl");
    let (code, v) = s.call(
        "POST",
        "/api/v1/pipelines",
        Some(&json!({
            "name": "p",
            "source": source,
            "connectors": { "Out": { "path": prod.display().to_string() } },
        })),
        None,
    );
    assert_eq!(code, 201, "{v}");
    s.wait_state("p", "running");
    let one = "{\"event_type\":\"Reading\",\"zone\":\"a\",\"temp\":40}\n";
    assert_eq!(post_events(&s, "p", one, None).0, 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&prod).is_ok_and(|t| t.contains("\"zone\":\"a\"")) {
        assert!(Instant::now() < deadline, "no output in {}", prod.display());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, v) = s.call(
        "POST",
        "/api/v1/pipelines",
        Some(&json!({ "name": "q", "source": source, "connectors": { "Nope": { "path": "x" } } })),
        None,
    );
    assert_eq!(code, 422, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("no connector `Nope`")),
        "{v}"
    );
}

#[test]
fn failing_checkpoints_back_off_and_make_the_pipeline_not_ready() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A webhook that accepts connections and never answers: no record is ever confirmed, so
    // every checkpoint's barrier times out.
    let hang = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = hang.local_addr().expect("addr").port();
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for c in hang.incoming().take(8) {
            conns.push(c);
        }
        std::thread::sleep(Duration::from_secs(60));
    });
    std::fs::write(
        dir.path().join("varpulis.toml"),
        "[defaults]\ncheckpoint_interval = \"200ms\"\ncheckpoint_timeout = \"300ms\"\ncheckpoint_failures_unready = 2\n",
    )
    .expect("config");
    let s = Server::start(dir.path(), &["--config", "varpulis.toml"], &[]);
    let source = format!(
        "event Reading:\n    zone: str\n    temp: float\n\nconnector Hook = http (url: \"http://127.0.0.1:{port}/hook\", timeout: 30s)\n\nstream Hot = Reading\n    .where(temp > 30.0)\n    .emit(zone: zone)\n    .to(Hook)\n"
    );
    assert_eq!(deploy(&s, "p", &source).0, 201);
    s.wait_state("p", "running");
    assert_eq!(s.call("GET", "/readyz", None, None).0, 200);
    let one = "{\"event_type\":\"Reading\",\"zone\":\"a\",\"temp\":40}\n";
    assert_eq!(post_events(&s, "p", one, None).0, 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = loop {
        let (code, v) = s.call("GET", "/readyz", None, None);
        if code == 503 {
            break v;
        }
        assert!(Instant::now() < deadline, "still ready: {v}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        ready["pipelines"]["p"]
            .as_str()
            .is_some_and(|r| r.contains("checkpoints failed")),
        "{ready}"
    );
    let (_, status) = s.call("GET", "/api/v1/pipelines/p", None, None);
    assert!(
        status["checkpoints"]["failed"]
            .as_u64()
            .is_some_and(|n| n >= 2),
        "{status}"
    );
    assert!(
        status["recent_errors"]
            .as_array()
            .is_some_and(|e| e.iter().any(|l| l
                .as_str()
                .is_some_and(|l| l.contains("checkpoint failed (sink)")))),
        "{status}"
    );
    let (_, metrics) = s.raw("GET", "/metrics", None, None);
    assert!(
        metrics
            .contains("varpulis_checkpoint_failure_reasons_total{pipeline=\"p\",reason=\"sink\"}"),
        "{metrics}"
    );
    drop(s);
    drop(held);
}

/// One POST of `body` to `127.0.0.1:port/events`; the status code (0: no answer).
fn ingest(port: u16, body: &str) -> u16 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "POST /events HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(request.as_bytes()).is_err() {
        return 0;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[test]
fn a_hot_update_keeps_the_sources_running_and_loses_or_repeats_no_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    std::fs::write(
        dir.path().join("varpulis.toml"),
        "[defaults]\ncheckpoint_interval = \"200ms\"\n",
    )
    .expect("config");
    let s = Server::start(dir.path(), &["--config", "varpulis.toml"], &[]);
    let program = |extra: &str| {
        format!(
            "event Reading:\n    zone: str\n    temp: float\n    i: int\n\n\
             connector In = http (url: \"http://127.0.0.1:{port}/events\")\n\
             connector Out = file (path: \"out.jsonl\")\n\n\
             stream Hot = Reading.from(In)\n    .where(temp > 30.0)\n    .emit(i: i)\n    .to(Out)\n\n\
             stream Counts = Reading.from(In)\n    .partition_by(zone)\n    .window(1000)\n    .aggregate(zone: last(zone), n: count())\n    .emit(zone: zone, n: n)\n{extra}"
        )
    };
    let (code, v) = deploy(&s, "live", &program(""));
    assert_eq!(code, 201, "{v}");
    s.wait_state("live", "running");

    // A client sends one event after another while the program is replaced twice.
    let total = 600u64;
    let sender = std::thread::spawn(move || {
        let mut refused = Vec::new();
        for i in 0..total {
            let body = format!(
                r#"{{"event_type":"Reading","zone":"z{}","temp":35.0,"i":{i}}}"#,
                i % 3
            );
            let code = ingest(port, &body);
            if code != 202 && code != 200 {
                refused.push((i, code));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        refused
    });
    std::thread::sleep(Duration::from_millis(400));
    let cold = "\nstream Cold = Reading.from(In)\n    .where(temp < 0.0)\n    .emit(i: i)\n";
    let (code, v) = s.call(
        "PUT",
        "/api/v1/pipelines/live",
        Some(&json!({ "source": program(cold) })),
        None,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["update"]["sources"], "kept", "{v}");
    let kept: Vec<&str> = v["update"]["streams"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|s| s["state"] == "kept")
                .filter_map(|s| s["name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(kept, ["Hot", "Counts"], "{v}");
    std::thread::sleep(Duration::from_millis(300));
    // A changed window starts empty; the others keep their state.
    let changed = program(cold).replace(".window(1000)", ".window(2000)");
    let (code, v) = s.call(
        "PUT",
        "/api/v1/pipelines/live",
        Some(&json!({ "source": changed })),
        None,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["update"]["sources"], "kept", "{v}");
    assert_eq!(v["update"]["streams"][1]["name"], "Counts", "{v}");
    assert_eq!(v["update"]["streams"][1]["state"], "empty", "{v}");
    let refused = sender.join().expect("sender");
    assert!(
        refused.is_empty(),
        "requests refused during the updates: {refused:?}"
    );

    // Every event reached the new program through the same source, counted once.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let (_, v) = s.call("GET", "/api/v1/pipelines/live", None, None);
        if v["sinks"][0]["sent"] == total {
            break v;
        }
        assert!(Instant::now() < deadline, "{v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["sources"][0]["received"], total, "{status}");
    assert_eq!(status["events_in"], total, "{status}");
    let out = std::fs::read_to_string(dir.path().join("out.jsonl")).expect("out.jsonl");
    let mut seen: Vec<u64> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["i"].as_u64())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..total).collect::<Vec<_>>(), "every output once");

    // New sources: the pipeline restarts, and says why.
    let other = free_port();
    let moved = program(cold).replace(&format!(":{port}/"), &format!(":{other}/"));
    let (code, v) = s.call(
        "PUT",
        "/api/v1/pipelines/live",
        Some(&json!({ "source": moved })),
        None,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["update"]["sources"], "restarted", "{v}");
    assert!(
        v["update"]["restart_reason"]
            .as_str()
            .is_some_and(|r| r.contains("other parameters")),
        "{v}"
    );
    s.wait_state("live", "running");
    assert_eq!(
        ingest(
            other,
            r#"{"event_type":"Reading","zone":"a","temp":40.0,"i":9999}"#
        ),
        202
    );
    let (ok, _) = s.terminate();
    assert!(ok);
}

#[test]
fn a_hot_update_whose_sinks_cannot_confirm_is_refused_and_the_old_program_keeps_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A webhook that accepts connections and never answers: the old program's sink can never
    // confirm its record, so the barrier before the switch cannot pass.
    let hang = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = hang.local_addr().expect("addr").port();
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for c in hang.incoming().take(8) {
            conns.push(c);
        }
        std::thread::sleep(Duration::from_secs(60));
    });
    std::fs::write(
        dir.path().join("varpulis.toml"),
        "[defaults]\ncheckpoint_interval = \"10s\"\ncheckpoint_timeout = \"300ms\"\n",
    )
    .expect("config");
    let s = Server::start(dir.path(), &["--config", "varpulis.toml"], &[]);
    let source = format!(
        "event Reading:\n    zone: str\n    temp: float\n\nconnector Hook = http (url: \"http://127.0.0.1:{port}/hook\", timeout: 30s)\n\nstream Hot = Reading\n    .where(temp > 30.0)\n    .emit(zone: zone)\n    .to(Hook)\n"
    );
    assert_eq!(deploy(&s, "p", &source).0, 201);
    s.wait_state("p", "running");
    let one = "{\"event_type\":\"Reading\",\"zone\":\"a\",\"temp\":40}\n";
    assert_eq!(post_events(&s, "p", one, None).0, 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.call("GET", "/api/v1/pipelines/p", None, None).1["streams"][0]["events_out"] != 1 {
        assert!(Instant::now() < deadline, "the event never went out");
        std::thread::sleep(Duration::from_millis(100));
    }

    let updated =
        format!("{source}\nstream Cold = Reading\n    .where(temp < 0.0)\n    .emit(zone: zone)\n");
    let (code, v) = s.call(
        "PUT",
        "/api/v1/pipelines/p",
        Some(&json!({ "source": updated })),
        None,
    );
    assert_eq!(code, 503, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("could not confirm") && e.contains("unchanged")),
        "{v}"
    );
    // The old program runs on, with its one stream, and it is still the stored one.
    let status = s.wait_state("p", "running");
    let names: Vec<&str> = status["streams"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["Hot"], "{status}");
    let stored = std::fs::read_to_string(dir.path().join("state/pipelines/p/pipeline.json"))
        .expect("stored pipeline");
    assert!(!stored.contains("Cold"), "{stored}");
    drop(s);
    drop(held);
}

/// Two contexts: cleaning in `ingest`, per-zone counts in `analytics`.
const CONTEXTS: &str = "context ingest\ncontext analytics\n\nevent Reading:\n    zone: str\n    temp: float\n\nstream Clean = Reading\n    .context(ingest)\n    .where(temp > -50.0)\n    .emit(context: analytics, zone: zone, temp: temp)\n\nstream Counts = Clean\n    .partition_by(zone)\n    .window(3)\n    .aggregate(zone: last(zone), n: count())\n    .emit(zone: zone, n: n)\n";

/// Contexts whose streams read the event type, so they can run partition-parallel too.
const KEYED_CONTEXTS: &str = "context ingest\ncontext analytics\n\nevent Reading:\n    zone: str\n    temp: float\n\nstream Clean = Reading\n    .context(ingest)\n    .where(temp > -50.0)\n\nstream Counts = Reading\n    .context(analytics)\n    .partition_by(zone)\n    .window(3)\n    .aggregate(zone: last(zone), n: count())\n    .emit(zone: zone, n: n)\n";

fn readings(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{{\"event_type\":\"Reading\",\"zone\":\"z{}\",\"temp\":{i}}}\n",
                i % 2
            )
        })
        .collect()
}

/// Waits until `name`'s stream `stream` has emitted `n` events.
fn wait_outputs(s: &Server, name: &str, stream: usize, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, v) = s.call("GET", &format!("/api/v1/pipelines/{name}"), None, None);
        if v["streams"][stream]["events_out"] == n {
            return;
        }
        assert!(Instant::now() < deadline, "{v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_pipeline_runs_its_contexts_on_threads_and_keeps_them_on_an_update() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start(dir.path(), &[], &[]);
    // With workers, each worker runs every context's streams.
    let (code, v) = s.call(
        "POST",
        "/api/v1/pipelines",
        Some(&json!({ "name": "both", "source": KEYED_CONTEXTS, "workers": 2 })),
        None,
    );
    assert_eq!(code, 201, "{v}");
    assert_eq!(
        (v["workers"].as_u64(), v["contexts"].as_u64()),
        (Some(2), Some(1)),
        "{v}"
    );
    assert_eq!(
        s.call("DELETE", "/api/v1/pipelines/both", None, None).0,
        204
    );

    let (code, v) = deploy(&s, "ctx", CONTEXTS);
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["contexts"], 2, "{v}");
    assert_eq!(v["workers"], 1, "{v}");
    s.wait_state("ctx", "running");
    // Two zones of five readings: one full window of 3 each, two readings left open.
    assert_eq!(post_events(&s, "ctx", &readings(10), None).0, 202);
    wait_outputs(&s, "ctx", 1, 2);
    let (_, metrics) = s.raw("GET", "/metrics", None, None);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("varpulis_engine_contexts{")
                && l.contains("pipeline=\"ctx\"")
                && l.ends_with(" 2")),
        "{metrics}"
    );

    // A hot update keeps the contexts and moves the open windows across: one more
    // reading per zone closes them.
    let (code, v) = s.call(
        "PUT",
        "/api/v1/pipelines/ctx",
        Some(&json!({ "source": CONTEXTS })),
        None,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["update"]["sources"], "kept", "{v}");
    assert_eq!(v["contexts"], 2, "{v}");
    assert_eq!(post_events(&s, "ctx", &readings(2), None).0, 202);
    wait_outputs(&s, "ctx", 1, 4);
    let (ok, _) = s.terminate();
    assert!(ok);
}

#[test]
fn a_pipeline_runs_on_its_workers_and_a_new_worker_count_restarts_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start(dir.path(), &[], &[]);
    let deploy_with = |name: &str, source: &str, workers: Value| {
        s.call(
            "POST",
            "/api/v1/pipelines",
            Some(&json!({ "name": name, "source": source, "workers": workers })),
            None,
        )
    };
    // Bad settings, and a program whose state spans keys, are refused.
    for bad in [json!(0), json!(65), json!("two"), json!(1.5)] {
        let (code, v) = deploy_with("bad", COUNTS, bad.clone());
        assert_eq!(code, 422, "{bad}: {v}");
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains("workers")),
            "{v}"
        );
    }
    let global = "event Reading:\n    zone: str\n    temp: float\n\nstream All = Reading\n    .window(3)\n    .aggregate(n: count())\n    .emit(n: n)\n";
    let (code, v) = deploy_with("global", global, json!(2));
    assert_eq!(code, 422, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("stream `All`") && e.contains("\"workers\": 1")),
        "{v}"
    );

    let (code, v) = deploy_with("counts", COUNTS, json!(2));
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["workers"], 2, "{v}");
    s.wait_state("counts", "running");
    let events: String = (0..12)
        .map(|i| {
            format!(
                "{{\"event_type\":\"Reading\",\"zone\":\"z{}\",\"temp\":{i}}}\n",
                i % 2
            )
        })
        .collect();
    let (code, text) = post_events(&s, "counts", &events, None);
    assert_eq!(code, 202, "{text}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, v) = s.call("GET", "/api/v1/pipelines/counts", None, None);
        // Two zones of six readings: two windows of 3 each; counted over both workers.
        if v["events_in"] == 12 && v["streams"][0]["events_out"] == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "{v}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Two more readings per zone: open windows, in whichever worker owns the zone.
    let more: String = (0..4)
        .map(|i| {
            format!(
                "{{\"event_type\":\"Reading\",\"zone\":\"z{}\",\"temp\":{i}}}\n",
                i % 2
            )
        })
        .collect();
    assert_eq!(post_events(&s, "counts", &more, None).0, 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.call("GET", "/api/v1/pipelines/counts", None, None).1["events_in"] != 16 {
        assert!(Instant::now() < deadline, "the readings never arrived");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The same count: in place (the setting is kept without `workers`), and each worker's
    // open windows move to the new program's worker.
    let (code, v) = s.call(
        "PUT",
        "/api/v1/pipelines/counts",
        Some(&json!({ "source": COUNTS })),
        None,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["update"]["sources"], "kept", "{v}");
    assert_eq!(v["update"]["streams"][0]["state"], "kept", "{v}");
    assert_eq!(v["workers"], 2, "{v}");
    let last = "{\"event_type\":\"Reading\",\"zone\":\"z0\",\"temp\":1}\n{\"event_type\":\"Reading\",\"zone\":\"z1\",\"temp\":1}\n";
    assert_eq!(post_events(&s, "counts", last, None).0, 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // The third reading of each zone closes the windows the old program opened (the
        // stream's counter goes on from its 4 outputs).
        let (_, v) = s.call("GET", "/api/v1/pipelines/counts", None, None);
        if v["streams"][0]["events_out"] == 6 {
            break;
        }
        assert!(Instant::now() < deadline, "{v}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Another count restarts the pipeline and says that its state is not kept.
    let (code, v) = s.call(
        "PUT",
        "/api/v1/pipelines/counts",
        Some(&json!({ "source": COUNTS, "workers": 3 })),
        None,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["update"]["sources"], "restarted", "{v}");
    assert!(
        v["update"]["restart_reason"]
            .as_str()
            .is_some_and(|r| r.contains("from 2 workers to 3 workers")),
        "{v}"
    );
    assert_eq!(v["update"]["streams"][0]["state"], "empty", "{v}");
    assert_eq!(
        v["update"]["streams"][0]["reason"], "saved with another number of workers",
        "{v}"
    );
    let v = s.wait_state("counts", "running");
    assert_eq!(v["workers"], 3, "{v}");
    let (ok, _) = s.terminate();
    assert!(ok);

    // The setting is stored with the pipeline.
    let s = Server::start(dir.path(), &[], &[]);
    let v = s.wait_state("counts", "running");
    assert_eq!(v["workers"], 3, "{v}");
    let (ok, _) = s.terminate();
    assert!(ok);
}

#[cfg(feature = "kafka")]
mod common;

/// Server pipelines with per-partition state (docs/SERVER.md, "Scaling out over Kafka"):
/// two servers run one pipeline each in the same consumer group over a 6-partition topic,
/// their partitions' state in one shared directory; one is killed with SIGKILL mid-stream.
#[cfg(feature = "kafka")]
mod partitioned {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::PathBuf;

    const WAIT: Duration = Duration::from_secs(90);

    fn brokers(test: &str) -> Option<String> {
        common::server_at("VARPULIS_TEST_KAFKA", "Kafka broker", test)
    }

    fn unique(tag: &str) -> String {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        format!("server-{tag}-{}-{ms}", std::process::id())
    }

    fn user(i: u64) -> u64 {
        // A fixed scramble of users, so keys interleave in every partition.
        (i * 7919 + i / 5) % 37
    }

    fn varpulis(dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_varpulis"));
        cmd.args(args)
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    /// Produces events `from..to` keyed by user to `topic` (a `varpulis run` of a file
    /// source into a kafka sink).
    fn produce(dir: &Path, brokers: &str, topic: &str, from: u64, to: u64) {
        let mut input = String::new();
        for i in from..to {
            input.push_str(&format!(
                "{{\"user\":\"u{}\",\"n\":{i},\"timestamp\":{}}}\n",
                user(i),
                1_700_000_000_000u64 + i
            ));
        }
        let name = format!("in-{from}.jsonl");
        std::fs::write(dir.join(&name), input).expect("input");
        let program = format!(
            "event Raw:\n    user: str\n    n: int\n\n\
             connector File = file (path: \"{name}\")\n\
             connector Topic = kafka (brokers: \"{brokers}\", topic: \"{topic}\")\n\n\
             stream Clicks = Raw.from(File)\n    .to(Topic, key: user)\n"
        );
        let file = format!("produce-{from}.vpl");
        std::fs::write(dir.join(&file), program).expect("producer");
        let out = varpulis(dir, &["run", &file, "-o", "/dev/null"])
            .output()
            .expect("run the producer");
        assert!(
            out.status.success(),
            "producer: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// What one process gives for events `0..n`: per user, one count window of three
    /// consecutive events (Kafka keeps each key's order within its partition).
    fn expected(n: u64) -> BTreeSet<(String, i64, i64)> {
        let mut open: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
        let mut out = BTreeSet::new();
        for i in 0..n {
            let w = open.entry(user(i)).or_default();
            w.push(i as i64);
            if w.len() == 3 {
                out.insert((format!("u{}", user(i)), 3, w.iter().sum()));
                w.clear();
            }
        }
        out
    }

    /// Output lines of the pipelines' tails, shared with the threads that read them.
    type Tailed = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

    /// Follows the tail of `count`'s stream `Counts` on `s` until the server goes away.
    fn follow(s: &Server, into: &Tailed) {
        let mut conn = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
        conn.write_all(
            b"GET /api/v1/pipelines/count/streams/Counts/tail HTTP/1.1\r\nhost: x\r\n\r\n",
        )
        .expect("tail request");
        let mut reader = BufReader::new(conn);
        let mut first = String::new();
        reader.read_line(&mut first).expect("tail status");
        assert!(first.starts_with("HTTP/1.1 200"), "{first}");
        let into = into.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if let Some(data) = line.strip_prefix("data:") {
                    into.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(data.trim().to_string());
                }
                line.clear();
            }
        });
    }

    /// The outputs tailed so far (each with how often it arrived).
    fn seen(tails: &[&Tailed]) -> BTreeMap<(String, i64, i64), usize> {
        let mut all = BTreeMap::new();
        let lines: Vec<String> = tails
            .iter()
            .flat_map(|t| t.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect();
        for line in lines {
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let key = (
                v["user"].as_str().unwrap_or_default().to_string(),
                v["c"].as_i64().unwrap_or(-1),
                // `sum` is a float.
                v["total"].as_f64().map_or(-1, |t| t as i64),
            );
            *all.entry(key).or_default() += 1;
        }
        all
    }

    fn owned(s: &Server) -> Vec<String> {
        let (_, v) = s.call("GET", "/api/v1/pipelines/count", None, None);
        v["partitions"]["owned"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A server in `dir/name` whose pipeline `count` keeps its partitions' state in the
    /// shared directory (a symbolic link stands for the shared mount).
    fn server(root: &Path, name: &str, shared: &Path) -> Server {
        let dir = root.join(name);
        let pipelines = dir.join("state/pipelines/count");
        std::fs::create_dir_all(&pipelines).expect("mkdir");
        std::os::unix::fs::symlink(shared, pipelines.join("state")).expect("symlink");
        std::fs::write(
            dir.join("varpulis.toml"),
            "[defaults]\ncheckpoint_interval = \"300ms\"\nidle_timeout = \"0s\"\n",
        )
        .expect("config");
        Server::start(&dir, &["--config", "varpulis.toml"], &[])
    }

    #[test]
    fn two_servers_share_partitions_and_a_killed_one_loses_nothing() {
        let Some(brokers) = brokers("two_servers_share_partitions_and_a_killed_one_loses_nothing")
        else {
            return;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let topic = unique("in");
        assert!(
            common::create_topic(&brokers, &topic, 6),
            "cannot create a 6-partition topic (tansu's CLI)"
        );
        let shared: PathBuf = root.join("shared");
        std::fs::create_dir_all(&shared).expect("mkdir");
        let program = format!(
            "event Clicks:\n    user: str\n    n: int\n\n\
             connector In = kafka (brokers: \"{brokers}\", topic: \"{topic}\", \
             group_id: \"{}\", state_per_partition: true, session_timeout: 6s)\n\
             stream Counts = Clicks.from(In)\n    .partition_by(user, idle: 1h)\n    \
             .window(3)\n    .aggregate(c: count(), total: sum(n))\n    \
             .emit(user: user, c: c, total: total)\n",
            unique("group")
        );
        let a = server(root, "a", &shared);
        let b = server(root, "b", &shared);
        let (tailed_a, tailed_b) = (Tailed::default(), Tailed::default());
        for (s, tailed) in [(&a, &tailed_a), (&b, &tailed_b)] {
            let (code, v) = deploy(s, "count", &program);
            assert_eq!(code, 201, "{v}");
            s.wait_state("count", "running");
            follow(s, tailed);
        }
        let tails = [&tailed_a, &tailed_b];
        let deadline = Instant::now() + WAIT;
        while owned(&a).is_empty() || owned(&b).is_empty() || owned(&a).len() + owned(&b).len() != 6
        {
            assert!(
                Instant::now() < deadline,
                "the group never split the partitions: a {:?}, b {:?}",
                owned(&a),
                owned(&b)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        const N: u64 = 3_000;
        produce(root, &brokers, &topic, 0, N / 2);
        let wait_seen = |n: usize, s: &Server| {
            let deadline = Instant::now() + WAIT;
            loop {
                let got = seen(&tails);
                if got.len() >= n {
                    return got;
                }
                assert!(
                    Instant::now() < deadline,
                    "{} of {n} distinct outputs; status {}\nserver: {}",
                    got.len(),
                    s.call("GET", "/api/v1/pipelines/count", None, None).1,
                    s.log.try_iter().collect::<Vec<_>>().join("\n")
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        };
        wait_seen(expected(N / 2).len(), &a);
        // B is killed while the second half arrives: no last checkpoint, no goodbye.
        let producer = {
            let (root, brokers, topic) = (root.to_path_buf(), brokers.clone(), topic.clone());
            std::thread::spawn(move || produce(&root, &brokers, &topic, N / 2, N))
        };
        // As soon as B shows outputs of the second half (or after a while, when its
        // partitions got none of it).
        let before = seen(&[&tailed_b]).len();
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen(&[&tailed_b]).len() == before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(b);
        producer.join().expect("producer");
        let want = expected(N);
        let got = wait_seen(want.len(), &a);
        let union: BTreeSet<_> = got.keys().cloned().collect();
        let missing: Vec<_> = want.difference(&union).take(5).collect();
        let extra: Vec<_> = union.difference(&want).take(5).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "missing {missing:?}, extra {extra:?}"
        );
        let deadline = Instant::now() + WAIT;
        while owned(&a).len() != 6 {
            assert!(
                Instant::now() < deadline,
                "A never took every partition: {:?}",
                owned(&a)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let (_, status) = a.call("GET", "/api/v1/pipelines/count", None, None);
        assert!(
            status["partitions"]["restores"]
                .as_u64()
                .is_some_and(|n| n >= 1),
            "A restored B's partitions from their checkpoints: {status}"
        );
        // Events come only from the topic.
        let (code, v) = a.call(
            "POST",
            "/api/v1/pipelines/count/events",
            Some(&json!({ "user": "u1", "n": 1 })),
            None,
        );
        assert_eq!(code, 409, "{v}");
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains("topic")),
            "{v}"
        );
        // Per-stream counts are this process's, over every partition it ran.
        assert_eq!(status["streams"][0]["name"], "Counts", "{status}");
        let out_a = status["streams"][0]["events_out"].as_u64().unwrap_or(0);
        assert!(out_a >= 1, "A's outputs per stream: {status}");
        let (_, metrics) = a.raw("GET", "/metrics", None, None);
        assert!(
            metrics.contains("varpulis_partitions_owned{pipeline=\"count\"} 6"),
            "{metrics}"
        );
        assert!(
            metrics.contains("varpulis_outputs_total{pipeline=\"count\",stream=\"Counts\"} "),
            "{metrics}"
        );
        // An update restarts the pipeline, with the reason; it comes back owning everything
        // from the partitions' checkpoints.
        let updated = program.replace("idle: 1h", "idle: 2h");
        let (code, v) = a.call(
            "PUT",
            "/api/v1/pipelines/count",
            Some(&json!({ "source": updated })),
            None,
        );
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["update"]["sources"], "restarted", "{v}");
        assert!(
            v["update"]["restart_reason"]
                .as_str()
                .is_some_and(|r| r.contains("state_per_partition")),
            "{v}"
        );
        a.wait_state("count", "running");
        let deadline = Instant::now() + WAIT;
        while owned(&a).len() != 6 {
            assert!(
                Instant::now() < deadline,
                "not back: {}\n{}",
                a.call("GET", "/api/v1/pipelines/count", None, None).1,
                a.log.try_iter().collect::<Vec<_>>().join("\n")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // Nothing is produced again by a clean restart.
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(seen(&tails).len(), want.len());
        // Deleting it on one server leaves the group's shared partition state.
        assert_eq!(
            a.call("DELETE", "/api/v1/pipelines/count", None, None).0,
            204
        );
        assert!(shared.join(format!("{topic}-0/state")).is_dir());
        assert!(!root.join("a/state/pipelines/count/pipeline.json").exists());
        let (ok, _) = a.terminate();
        assert!(ok, "SIGTERM is a clean stop");
        let dup: usize = got.values().map(|c| c - 1).sum();
        eprintln!("{} outputs, {dup} produced again after the kill", got.len());
    }
}

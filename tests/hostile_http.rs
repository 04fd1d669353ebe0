//! A live `varpulis run` with an http ingest endpoint and `--metrics`, attacked on 127.0.0.1
//! the way an exposed endpoint is: absurd Content-Lengths on every path, slow headers, stalled
//! bodies, junk bytes, invalid chunked bodies and a flood of 500 connections. The process must
//! stay up, serve a well-behaved client within a second while the slow ones hang, keep
//! serving metrics, and stop within 5 seconds on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
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

struct Run {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
}

impl Run {
    fn start(dir: &Path, args: &[&str]) -> Run {
        Run::start_with(dir, args, &[])
    }

    fn start_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_varpulis"))
            .arg("run")
            .args(args)
            .current_dir(dir)
            .envs(env.iter().copied())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start varpulis run");
        let stdout = lines(child.stdout.take().expect("stdout"));
        let stderr = lines(child.stderr.take().expect("stderr"));
        let run = Run {
            child,
            stdout,
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Ok(line) = run.stderr.recv_timeout(Duration::from_millis(50)) {
                let done = line.starts_with("running;");
                seen.push(line);
                if done {
                    return run;
                }
            }
        }
        panic!("the run did not start: {seen:#?}");
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Raw bytes in, everything the server says until it closes (or 10 s) out.
fn exchange(port: u16, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = s.write_all(raw);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn status(answer: &str) -> &str {
    answer.get(9..12).unwrap_or("")
}

fn post_event(port: u16, zone: &str) -> String {
    let body = format!(r#"{{"zone":"{zone}","temp":1.5}}"#);
    exchange(
        port,
        format!(
            "POST /events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

fn scrape(port: u16) -> String {
    exchange(
        port,
        b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
}

#[test]
fn hostile_clients_do_not_take_down_a_live_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ingest, metrics) = (free_port(), free_port());
    std::fs::write(
        dir.path().join("rules.vpl"),
        format!(
            "event Reading:\n    zone: str\n    temp: float\n\n\
             connector Ingest = http (url: \"http://127.0.0.1:{ingest}/events\", max_body: 4096, body_timeout: 2s)\n\n\
             stream All = Reading.from(Ingest).emit(zone: zone)\n"
        ),
    )
    .expect("write rules");
    let metrics_addr = format!("127.0.0.1:{metrics}");
    let mut run = Run::start(dir.path(), &["rules.vpl", "--metrics", &metrics_addr]);

    // Absurd Content-Length on every path of both listeners: refused, nothing allocated.
    for port in [ingest, metrics] {
        for path in ["/events", "/metrics", "/anything"] {
            let answer = exchange(
                port,
                format!(
                    "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000000000000\r\n\r\n"
                )
                .as_bytes(),
            );
            assert_eq!(status(&answer), "413", "{port}{path}: {answer}");
        }
    }
    assert!(run.alive(), "the run died of a Content-Length");
    // Junk and an invalid chunked body.
    assert_eq!(
        status(&exchange(ingest, b"\x16\x03\x01junk\r\n\r\n")),
        "400"
    );
    let chunked = exchange(
        ingest,
        b"POST /events HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nnot-hex\r\n{}\r\n",
    );
    assert_eq!(status(&chunked), "400", "{chunked}");
    // A stalled body is cut off by the body timeout.
    let stalled = exchange(
        ingest,
        b"POST /events HTTP/1.1\r\nhost: x\r\ncontent-length: 50\r\n\r\n{\"zone\":",
    );
    assert_eq!(status(&stalled), "408", "{stalled}");

    // A flood of 500 connections that send half a request and hang.
    let mut flood = Vec::new();
    for i in 0..500 {
        let port = if i % 2 == 0 { ingest } else { metrics };
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let _ = s.write_all(b"POST /events HTTP/1.1\r\nhost: x\r\ncontent-le");
        flood.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let answer = post_event(ingest, "good");
    let took = started.elapsed();
    assert_eq!(status(&answer), "202", "{answer}");
    assert!(
        took < Duration::from_secs(1),
        "a good client waited {took:?}"
    );
    let line = run
        .stdout
        .recv_timeout(Duration::from_secs(10))
        .expect("the good event's output");
    assert!(line.contains("\"zone\":\"good\""), "{line}");
    // Metrics are still served, and show the attack.
    std::thread::sleep(Duration::from_millis(300));
    let text = scrape(metrics);
    assert_eq!(status(&text), "200", "{text}");
    assert!(
        text.contains("varpulis_http_too_large_total{listener=\"metrics\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("varpulis_http_connections_open{listener=\"Ingest\"}"),
        "{text}"
    );
    // The slow clients are still hanging, unanswered.
    let mut first = flood.remove(0);
    first.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 8];
    assert!(matches!(first.read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock));

    // SIGTERM stops the run within 5 seconds while they hang.
    let started = Instant::now();
    let pid = run.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    let status = loop {
        if let Some(s) = run.child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still running 5 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "SIGTERM is a normal stop");
    let err: Vec<String> = run.stderr.try_iter().collect();
    assert!(
        err.iter().any(|l| l.contains("rejected")),
        "the summary counts the refusals: {err:#?}"
    );
    drop(flood);
}

#[test]
fn a_public_ingest_address_without_a_token_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("rules.vpl"),
        "event Reading:\n    zone: str\n    temp: float\n\n\
         connector Ingest = http (url: \"http://0.0.0.0:0/events\")\n\n\
         stream All = Reading.from(Ingest).emit(zone: zone)\n",
    )
    .expect("write rules");
    let out = Command::new(env!("CARGO_BIN_EXE_varpulis"))
        .args(["run", "rules.vpl"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run varpulis");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("refusing to listen on 0.0.0.0"), "{err}");
    assert!(err.contains("API key"), "{err}");
    // The same for the metrics endpoint.
    let out = Command::new(env!("CARGO_BIN_EXE_varpulis"))
        .args(["run", "rules.vpl", "--metrics", "0.0.0.0:0"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run varpulis");
    assert!(!out.status.success());
}

#[test]
fn a_metrics_token_is_required_when_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.jsonl"), "").expect("write input");
    std::fs::write(
        dir.path().join("rules.vpl"),
        "event Reading:\n    zone: str\n    temp: float\n\n\
         connector In = file (path: \"in.jsonl\", follow: true)\n\n\
         stream All = Reading.from(In).emit(zone: zone)\n",
    )
    .expect("write rules");
    let metrics = free_port();
    let addr = format!("127.0.0.1:{metrics}");
    let _run = Run::start_with(
        dir.path(),
        &["rules.vpl", "--metrics", &addr],
        &[("VARPULIS_METRICS_TOKEN", "scrape-me")],
    );
    let refused = scrape(metrics);
    assert_eq!(status(&refused), "401", "{refused}");
    let ok = exchange(
        metrics,
        b"GET /metrics HTTP/1.1\r\nhost: x\r\nauthorization: Bearer scrape-me\r\nconnection: close\r\n\r\n",
    );
    assert_eq!(status(&ok), "200", "{ok}");
    let health = exchange(
        metrics,
        b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    assert_eq!(status(&health), "200", "{health}");
}

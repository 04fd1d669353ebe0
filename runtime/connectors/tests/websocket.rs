//! The websocket source and sink against real WebSocket servers on 127.0.0.1, each one a small
//! tungstenite server thread the test starts and scripts: it sends messages, drops
//! connections, stops answering pings, refuses the upgrade, or serves `wss://` with a throwaway
//! certificate made by rcgen. Every wait is bounded by [`PATIENCE`] and ends as soon as its
//! condition holds.
#![cfg(feature = "websocket")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use serde_json::Value;
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::{Message, WebSocket};
use varpulis_connectors::{
    open_sink, open_source, ConfigValue, ConnectorConfig, Record, Sink, SinkContext, SinkError,
    Source, SourceConfig, SourceContext, SourceEvent, SourceSender,
};

/// Upper bound of every wait.
const PATIENCE: Duration = Duration::from_secs(20);
const MS: u64 = 1_000_000;

fn s(v: &str) -> ConfigValue {
    ConfigValue::Str(v.to_string())
}

/// A listener on a free port of 127.0.0.1.
fn listener() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = listener.local_addr().expect("local address").port();
    (listener, port)
}

/// Accepts one TCP connection within [`PATIENCE`].
fn accept_tcp(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + PATIENCE;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).expect("blocking");
                stream
                    .set_read_timeout(Some(PATIENCE))
                    .expect("read timeout");
                return stream;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no client connected");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept failed: {e}"),
        }
    }
}

/// The upgrade request's headers, lower-case names.
type Headers = Vec<(String, String)>;

/// Accepts one WebSocket client and returns it with its upgrade headers.
// The callback's error type is tungstenite's, not ours to make smaller.
#[allow(clippy::result_large_err)]
fn accept_ws<S: Read + Write>(stream: S) -> (WebSocket<S>, Headers) {
    let mut headers = Vec::new();
    let ws = tungstenite::accept_hdr(stream, |req: &Request, resp: Response| {
        headers = req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        Ok::<_, ErrorResponse>(resp)
    })
    .expect("WebSocket upgrade");
    (ws, headers)
}

/// The next text message (pings are answered by tungstenite on the way).
fn read_text<S: Read + Write>(ws: &mut WebSocket<S>) -> String {
    loop {
        match ws.read().expect("read a message") {
            Message::Text(t) => return t.as_str().to_string(),
            Message::Binary(b) => return String::from_utf8_lossy(&b).into_owned(),
            _ => {}
        }
    }
}

/// A source of `params` started on a host queue of `capacity`.
fn source(params: &[(&str, ConfigValue)]) -> (Box<dyn Source>, Receiver<SourceEvent>) {
    let config = params
        .iter()
        .fold(ConnectorConfig::new("Feed", "websocket"), |c, (k, v)| {
            c.param(*k, v.clone())
        });
    let (tx, rx) = crossbeam_channel::bounded(1000);
    let source = open_source(
        &SourceConfig::new(config, 7),
        &SourceContext::new("."),
        SourceSender::new(tx, Arc::new(AtomicBool::new(false))),
    )
    .expect("open source");
    (source, rx)
}

/// What a source reported, in order: payloads with their places, and problems.
#[derive(Debug)]
enum Seen {
    Message(String, String),
    Problem(String, bool),
}

fn next(rx: &Receiver<SourceEvent>) -> Seen {
    match rx.recv_timeout(PATIENCE).expect("an event from the source") {
        SourceEvent::Message(m) => {
            assert_eq!(m.source, 7);
            Seen::Message(String::from_utf8(m.payload).expect("utf-8"), m.place)
        }
        SourceEvent::Problem {
            source,
            message,
            fatal,
        } => {
            assert_eq!(source, 7);
            Seen::Problem(message, fatal)
        }
        SourceEvent::Ended { .. } => panic!("a websocket source never ends by itself"),
    }
}

/// The next payload, with the problems reported before it.
fn next_message(rx: &Receiver<SourceEvent>) -> (String, String, Vec<String>) {
    let mut problems = Vec::new();
    loop {
        match next(rx) {
            Seen::Message(payload, place) => return (payload, place, problems),
            Seen::Problem(message, fatal) => {
                assert!(!fatal, "unexpected fatal problem: {message}");
                problems.push(message);
            }
        }
    }
}

fn join<T>(server: JoinHandle<T>) -> T {
    server.join().expect("server thread")
}

#[test]
fn source_delivers_objects_arrays_and_lines_in_order_with_headers_and_subscribe() {
    let (listener, port) = listener();
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").expect("token file");
    let server = std::thread::spawn(move || {
        let (mut ws, headers) = accept_ws(accept_tcp(&listener));
        let subscribed = read_text(&mut ws);
        for text in [
            r#"{"a":1}"#,
            r#"[{"a":2},{"a":3}]"#,
            "{\"a\":4}\n{\"a\":5}\n",
            "",
        ] {
            ws.send(Message::text(text)).expect("send text");
        }
        ws.send(Message::binary(br#"{"a":6}"#.to_vec()))
            .expect("send binary");
        ws.send(Message::binary(vec![0xff, 0xfe]))
            .expect("send non-utf-8");
        ws.send(Message::text(r#"{"a":7}"#)).expect("send text");
        // Wait for the client's Close frame, then answer it.
        while ws.read().is_ok() {}
        (headers, subscribed)
    });
    let (mut source, rx) = source(&[
        ("url", s(&format!("ws://127.0.0.1:{port}/feed?key=abc"))),
        (
            "headers",
            ConfigValue::Array(vec![
                s(&format!(
                    "Authorization: Bearer ${{file:{}}}",
                    token.display()
                )),
                s("X-Feed: trades"),
            ]),
        ),
        ("subscribe", s(r#"{"op":"subscribe","channel":"trades"}"#)),
    ]);
    let place = |n: u32| format!("websocket ws://127.0.0.1:{port}/feed message {n}");
    let expected = [
        (r#"{"a":1}"#, 1),
        (r#"[{"a":2},{"a":3}]"#, 2),
        ("{\"a\":4}\n{\"a\":5}\n", 3),
        (r#"{"a":6}"#, 5),
    ];
    for (payload, n) in expected {
        let (got, at, problems) = next_message(&rx);
        assert_eq!((got.as_str(), at), (payload, place(n)));
        assert!(problems.is_empty(), "{problems:?}");
    }
    // The non-UTF-8 binary message (message 6) is reported and counted, then delivery goes on.
    let (got, at, problems) = next_message(&rx);
    assert_eq!((got.as_str(), at), (r#"{"a":7}"#, place(7)));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("message 6") && problems[0].contains("not UTF-8"));
    assert_eq!(
        source.describe(),
        format!("websocket ws://127.0.0.1:{port}/feed")
    );
    let start = Instant::now();
    source.stop();
    assert!(start.elapsed() < Duration::from_secs(5), "stop is bounded");
    let (headers, subscribed) = join(server);
    assert_eq!(subscribed, r#"{"op":"subscribe","channel":"trades"}"#);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("authorization").as_deref(), Some("Bearer s3cret"));
    assert_eq!(header("x-feed").as_deref(), Some("trades"));
    let m = source.metrics();
    assert_eq!((m.received, m.rejected, m.reconnects), (5, 1, 0));
}

#[test]
fn source_reconnects_after_the_server_drops_the_connection_and_subscribes_again() {
    let (listener, port) = listener();
    let server = std::thread::spawn(move || {
        let (mut ws, _) = accept_ws(accept_tcp(&listener));
        let first = read_text(&mut ws);
        ws.send(Message::text(r#"{"n":1}"#)).expect("send");
        // Drop the TCP connection without a close handshake.
        drop(ws);
        let (mut ws, _) = accept_ws(accept_tcp(&listener));
        let second = read_text(&mut ws);
        ws.send(Message::text(r#"{"n":2}"#)).expect("send");
        while ws.read().is_ok() {}
        (first, second)
    });
    let (mut source, rx) = source(&[
        ("url", s(&format!("ws://127.0.0.1:{port}/"))),
        ("subscribe", s("hello")),
        ("backoff", ConfigValue::Duration(10 * MS)),
    ]);
    let (first, _, problems) = next_message(&rx);
    assert_eq!(first, r#"{"n":1}"#);
    assert!(problems.is_empty(), "{problems:?}");
    let (second, place, problems) = next_message(&rx);
    assert_eq!(second, r#"{"n":2}"#);
    assert_eq!(place, format!("websocket ws://127.0.0.1:{port}/ message 2"));
    assert!(
        problems[0].starts_with(&format!(
            "connection to websocket ws://127.0.0.1:{port}/ lost: "
        )),
        "{problems:?}"
    );
    assert!(
        problems
            .last()
            .is_some_and(|p| p.contains("connected again")),
        "{problems:?}"
    );
    source.stop();
    assert_eq!(join(server), ("hello".to_string(), "hello".to_string()));
    let m = source.metrics();
    assert_eq!((m.received, m.reconnects), (2, 1));
    assert!(m.errors >= 1);
}

#[test]
fn source_refuses_a_message_over_max_message_unread_and_reconnects() {
    let (listener, port) = listener();
    let server = std::thread::spawn(move || {
        let (mut ws, _) = accept_ws(accept_tcp(&listener));
        // The client refuses this from the frame header and drops the connection, so the
        // server's write may fail.
        let _ = ws.send(Message::text("x".repeat(1 << 20)));
        drop(ws);
        let (mut ws, _) = accept_ws(accept_tcp(&listener));
        ws.send(Message::text(r#"{"small":true}"#)).expect("send");
        while ws.read().is_ok() {}
    });
    let (mut source, rx) = source(&[
        ("url", s(&format!("ws://127.0.0.1:{port}/"))),
        ("max_message", ConfigValue::Int(1024)),
        ("backoff", ConfigValue::Duration(10 * MS)),
    ]);
    let (payload, _, problems) = next_message(&rx);
    assert_eq!(payload, r#"{"small":true}"#);
    assert!(
        problems.iter().any(|p| p.contains("over `max_message`")),
        "{problems:?}"
    );
    source.stop();
    join(server);
    let m = source.metrics();
    assert_eq!((m.received, m.rejected), (1, 1));
}

#[test]
fn source_drops_a_server_that_stops_answering_pings() {
    let (listener, port) = listener();
    let server = std::thread::spawn(move || {
        // The first connection is upgraded, then never read again: pings stay unanswered.
        let (silent, _) = accept_ws(accept_tcp(&listener));
        let (mut ws, _) = accept_ws(accept_tcp(&listener));
        ws.send(Message::text(r#"{"alive":true}"#)).expect("send");
        while ws.read().is_ok() {}
        drop(silent);
    });
    let (mut source, rx) = source(&[
        ("url", s(&format!("ws://127.0.0.1:{port}/"))),
        ("keep_alive", ConfigValue::Duration(200 * MS)),
        ("backoff", ConfigValue::Duration(10 * MS)),
    ]);
    let (payload, _, problems) = next_message(&rx);
    assert_eq!(payload, r#"{"alive":true}"#);
    assert!(
        problems[0].contains("no answer to a ping within 200ms"),
        "{problems:?}"
    );
    source.stop();
    join(server);
}

#[test]
// The callback's error type is tungstenite's, not ours to make smaller.
#[allow(clippy::result_large_err)]
fn source_stops_for_good_when_the_upgrade_is_refused_with_401() {
    let (listener, port) = listener();
    let server = std::thread::spawn(move || {
        let stream = accept_tcp(&listener);
        let refused = tungstenite::accept_hdr(stream, |_: &Request, _: Response| {
            let mut answer = ErrorResponse::new(Some("no".into()));
            *answer.status_mut() = tungstenite::http::StatusCode::UNAUTHORIZED;
            Err(answer)
        });
        assert!(refused.is_err());
    });
    let (mut source, rx) = source(&[("url", s(&format!("ws://127.0.0.1:{port}/")))]);
    match next(&rx) {
        Seen::Problem(message, true) => assert_eq!(
            message,
            format!(
                "websocket ws://127.0.0.1:{port}/ refused the upgrade request: HTTP 401 \
                 Unauthorized (check `headers`); the source stopped (retrying cannot help)"
            )
        ),
        other => panic!("expected a fatal problem, got {other:?}"),
    }
    source.stop();
    join(server);
}

/// A sink of `params` writing its dead-letter file into `dir`.
fn sink(dir: &Path, params: &[(&str, ConfigValue)]) -> Box<dyn Sink> {
    let config = params
        .iter()
        .fold(ConnectorConfig::new("Out", "websocket"), |c, (k, v)| {
            c.param(*k, v.clone())
        });
    open_sink(&config, &SinkContext::new(dir)).expect("open sink")
}

fn record(n: usize) -> Record {
    Record::from_json(format!(r#"{{"event_type":"Alert","n":{n}}}"#).as_bytes()).expect("record")
}

fn dead_letters(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("Out.dead.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("dead-letter line is JSON"))
        .collect()
}

/// Waits until `condition` holds.
fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sink_sends_each_record_as_one_text_message_and_barrier_waits_for_the_socket() {
    let (listener, port) = listener();
    let server = std::thread::spawn(move || {
        let (mut ws, _) = accept_ws(accept_tcp(&listener));
        let subscribed = read_text(&mut ws);
        let texts: Vec<String> = (0..100).map(|_| read_text(&mut ws)).collect();
        // Then the client's Close frame: the read ends.
        let closed = loop {
            match ws.read() {
                Ok(Message::Close(_)) => break true,
                Ok(_) => {}
                Err(_) => break false,
            }
        };
        (subscribed, texts, closed)
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = sink(
        dir.path(),
        &[
            ("url", s(&format!("ws://127.0.0.1:{port}/in"))),
            ("subscribe", s("auth")),
        ],
    );
    for n in 0..100 {
        sink.send(record(n)).expect("queued");
    }
    sink.barrier(Instant::now() + PATIENCE)
        .expect("barrier passes once everything is written");
    let m = sink.metrics();
    assert_eq!((m.sent, m.queue_depth, m.dead_lettered), (100, 0, 0));
    sink.close().expect("clean close");
    let (subscribed, texts, closed) = join(server);
    assert_eq!(subscribed, "auth");
    let expected: Vec<String> = (0..100)
        .map(|n| format!(r#"{{"event_type":"Alert","n":{n}}}"#))
        .collect();
    assert_eq!(texts, expected);
    assert!(closed, "close sends a Close frame");
    assert!(dead_letters(dir.path()).is_empty());
}

#[test]
fn sink_reconnects_after_the_server_closes_and_subscribes_again() {
    let (listener, port) = listener();
    let (accepted_tx, accepted_rx) = crossbeam_channel::bounded(1);
    let server = std::thread::spawn(move || {
        let (mut ws, _) = accept_ws(accept_tcp(&listener));
        let first = (read_text(&mut ws), read_text(&mut ws));
        ws.close(None).expect("close");
        while ws.read().is_ok() {}
        let (mut ws, _) = accept_ws(accept_tcp(&listener));
        let second = (read_text(&mut ws), read_text(&mut ws));
        accepted_tx.send(()).expect("signal");
        while ws.read().is_ok() {}
        (first, second)
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = sink(
        dir.path(),
        &[
            ("url", s(&format!("ws://127.0.0.1:{port}/in"))),
            ("subscribe", s("hi")),
            ("backoff", ConfigValue::Duration(10 * MS)),
        ],
    );
    sink.send(record(1)).expect("queued");
    sink.barrier(Instant::now() + PATIENCE).expect("written");
    // The server closes; the sink notices, reconnects and greets again before record 2.
    eventually("the sink to notice the close", || {
        sink.metrics().last_error.is_some()
    });
    sink.send(record(2)).expect("queued");
    sink.barrier(Instant::now() + PATIENCE).expect("written");
    accepted_rx
        .recv_timeout(PATIENCE)
        .expect("second connection");
    sink.close().expect("clean close");
    let (first, second) = join(server);
    assert_eq!(first.0, "hi");
    assert_eq!(first.1, r#"{"event_type":"Alert","n":1}"#);
    assert_eq!(second.0, "hi");
    assert_eq!(second.1, r#"{"event_type":"Alert","n":2}"#);
    let m = sink.metrics();
    assert_eq!((m.sent, m.dead_lettered), (2, 0));
    assert!(
        m.last_error
            .as_deref()
            .is_some_and(|e| e.contains("connection lost")),
        "{m:?}"
    );
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let (listener, port) = listener();
    drop(listener);
    port
}

#[test]
fn sink_dead_letters_records_after_retries_when_the_server_is_down() {
    let port = closed_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = sink(
        dir.path(),
        &[
            ("url", s(&format!("ws://127.0.0.1:{port}/in?token=s3cret"))),
            ("retries", ConfigValue::Int(2)),
            ("backoff", ConfigValue::Duration(10 * MS)),
            ("max_backoff", ConfigValue::Duration(20 * MS)),
        ],
    );
    for n in 0..3 {
        sink.send(record(n)).expect("queued while connecting");
    }
    eventually("three dead letters", || sink.metrics().dead_lettered == 3);
    sink.barrier(Instant::now() + PATIENCE)
        .expect("dead-lettered records pass the barrier");
    let m = sink.metrics();
    assert_eq!((m.sent, m.failed, m.queue_depth), (0, 3, 0));
    assert!(m.retried >= 2, "{m:?}");
    let lines = dead_letters(dir.path());
    assert_eq!(lines.len(), 3);
    for (n, line) in lines.iter().enumerate() {
        assert_eq!(line["n"], n);
        assert_eq!(line["_attempts"], 3);
        let error = line["_error"].as_str().expect("_error");
        assert!(
            error.starts_with(&format!(
                "not delivered to ws://127.0.0.1:{port}/in after 3 failed attempt(s): cannot connect"
            )),
            "{error}"
        );
        assert!(!error.contains("s3cret"), "{error}");
    }
    sink.close().expect("nothing left");
}

#[test]
fn barrier_and_close_fail_naming_the_sink_while_the_server_is_down() {
    let port = closed_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = sink(
        dir.path(),
        &[
            ("url", s(&format!("ws://127.0.0.1:{port}/in"))),
            ("retries", ConfigValue::Int(1000)),
            ("backoff", ConfigValue::Duration(50 * MS)),
            ("close_timeout", ConfigValue::Duration(200 * MS)),
        ],
    );
    sink.send(record(1)).expect("queued");
    let err = sink
        .barrier(Instant::now() + Duration::from_millis(300))
        .expect_err("nothing can be written");
    assert!(
        matches!(err, SinkError::Timeout { pending: 1, .. }),
        "{err}"
    );
    assert!(err
        .to_string()
        .starts_with("connector `Out`: 1 record(s) still in flight"));
    let err = sink.close().expect_err("the record is left over");
    assert!(
        matches!(err, SinkError::Timeout { pending: 1, .. }),
        "{err}"
    );
    let lines = dead_letters(dir.path());
    assert_eq!(lines.len(), 1);
    let error = lines[0]["_error"].as_str().expect("_error");
    assert!(error.contains("before close_timeout (200ms)"), "{error}");
    assert!(error.contains("last error: cannot connect"), "{error}");
    assert!(matches!(
        sink.send(record(2)),
        Err(SinkError::Closed { .. })
    ));
}

#[test]
fn sink_dead_letters_a_record_over_max_message_at_once() {
    let port = closed_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = sink(
        dir.path(),
        &[
            ("url", s(&format!("ws://127.0.0.1:{port}/in"))),
            ("max_message", ConfigValue::Int(16)),
        ],
    );
    let err = sink.send(record(12345)).expect_err("too large");
    assert!(!err.is_retryable());
    assert!(
        err.to_string().contains("more than `max_message` (16)"),
        "{err}"
    );
    assert_eq!(sink.metrics().dead_lettered, 1);
    assert_eq!(dead_letters(dir.path()).len(), 1);
}

/// A throwaway CA and a server certificate for `localhost` it signed.
struct Pki {
    ca_pem: String,
    server_cert: rustls::pki_types::CertificateDer<'static>,
    server_key: rustls::pki_types::PrivateKeyDer<'static>,
}

/// `ca_name` tells CAs apart: a client that trusts another CA finds no issuer of that name.
fn pki(ca_name: &str) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");
    let server_key = KeyPair::generate().expect("server key");
    let server = CertificateParams::new(vec!["localhost".to_string()])
        .expect("server params")
        .signed_by(&server_key, &ca, &ca_key)
        .expect("server cert");
    Pki {
        ca_pem: ca.pem(),
        server_cert: server.der().clone(),
        server_key: rustls::pki_types::PrivateKeyDer::try_from(server_key.serialize_der())
            .expect("server key der"),
    }
}

/// A `wss://` server: serves `messages` to the first client that completes the handshakes.
fn tls_server(pki: &Pki, messages: Vec<&'static str>) -> (SocketAddr, JoinHandle<Option<String>>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![pki.server_cert.clone()], pki.server_key.clone_key())
        .expect("server config");
    let config = Arc::new(config);
    let (listener, _) = listener();
    let addr = listener.local_addr().expect("address");
    let server = std::thread::spawn(move || {
        let tcp = accept_tcp(&listener);
        let conn = rustls::ServerConnection::new(config).expect("server connection");
        let tls = rustls::StreamOwned::new(conn, tcp);
        // A client that refuses our certificate ends the handshake here.
        let mut ws = match tungstenite::accept(tls) {
            Ok(ws) => ws,
            Err(_) => return None,
        };
        let subscribed = read_text(&mut ws);
        for m in messages {
            ws.send(Message::text(m)).expect("send over tls");
        }
        while ws.read().is_ok() {}
        Some(subscribed)
    });
    (addr, server)
}

#[test]
fn wss_source_verifies_the_server_with_ca_file() {
    let pki = pki("Test CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).expect("ca file");
    let (addr, server) = tls_server(&pki, vec![r#"{"secure":true}"#]);
    let (mut source, rx) = source(&[
        ("url", s(&format!("wss://localhost:{}/feed", addr.port()))),
        ("ca_file", s(&ca.display().to_string())),
        ("subscribe", s("hello over tls")),
    ]);
    let (payload, place, _) = next_message(&rx);
    assert_eq!(payload, r#"{"secure":true}"#);
    assert_eq!(
        place,
        format!("websocket wss://localhost:{}/feed message 1", addr.port())
    );
    source.stop();
    assert_eq!(join(server).as_deref(), Some("hello over tls"));
}

#[test]
fn wss_with_an_unknown_ca_is_refused_for_good() {
    let pki = pki("Test CA");
    let other = self::pki("Another CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let wrong_ca = dir.path().join("other-ca.pem");
    std::fs::write(&wrong_ca, &other.ca_pem).expect("ca file");
    let (addr, server) = tls_server(&pki, vec![]);
    let url = format!("wss://localhost:{}/feed", addr.port());
    let (mut source, rx) = source(&[
        ("url", s(&url)),
        ("ca_file", s(&wrong_ca.display().to_string())),
    ]);
    match next(&rx) {
        Seen::Problem(message, true) => {
            assert!(
                message.starts_with(&format!("websocket {url} refused the TLS handshake: ")),
                "{message}"
            );
            assert!(message.contains("UnknownIssuer"), "{message}");
            assert!(message.contains("is `ca_file` the CA"), "{message}");
        }
        other => panic!("expected a fatal problem, got {other:?}"),
    }
    source.stop();
    assert_eq!(join(server), None);

    // The sink dead-letters what it was given, and refuses what comes after.
    let (addr, server) = tls_server(&pki, vec![]);
    let mut sink = sink(
        dir.path(),
        &[
            ("url", s(&format!("wss://localhost:{}/in", addr.port()))),
            ("ca_file", s(&wrong_ca.display().to_string())),
        ],
    );
    let _ = sink.send(record(1));
    eventually("the refusal", || sink.metrics().dead_lettered == 1);
    let err = sink.send(record(2)).expect_err("refused for good");
    assert!(matches!(err, SinkError::Refused { .. }), "{err}");
    assert!(!err.is_retryable());
    assert_eq!(dead_letters(dir.path()).len(), 2);
    drop(sink);
    assert_eq!(join(server), None);
}

#[test]
fn sink_puts_the_idempotency_key_in_a_field_when_asked() {
    let (listener, port) = listener();
    let server = std::thread::spawn(move || {
        let (mut ws, _) = accept_ws(accept_tcp(&listener));
        (0..3).map(|_| read_text(&mut ws)).collect::<Vec<String>>()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = sink(
        dir.path(),
        &[
            ("url", s(&format!("ws://127.0.0.1:{port}/in"))),
            ("idempotency_field", s("_key")),
        ],
    );
    for n in 0..2 {
        let id = varpulis_connectors::RecordId {
            scope: "p1/Out".into(),
            seq: n as u64,
        };
        sink.send(record(n).with_id(id)).expect("queued");
    }
    // A record without an identity (no host gave it one) goes as it is.
    sink.send(Record::from_json(b"{}").expect("record"))
        .expect("queued");
    sink.barrier(Instant::now() + PATIENCE).expect("barrier");
    sink.close().expect("close");
    assert_eq!(
        join(server),
        [
            r#"{"_key":"p1/Out:0","event_type":"Alert","n":0}"#,
            r#"{"_key":"p1/Out:1","event_type":"Alert","n":1}"#,
            "{}",
        ]
    );
}

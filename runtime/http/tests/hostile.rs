//! Hostile clients against a real listener on 127.0.0.1: huge and lying bodies, slow
//! headers, stalled bodies, junk, floods, missing keys. The listener must answer each with a
//! clear refusal or close it, never fall over, and keep serving a well-behaved client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use varpulis_http::axum::body::Body;
use varpulis_http::axum::response::IntoResponse;
use varpulis_http::axum::routing::{get, post};
use varpulis_http::axum::Router;
use varpulis_http::{read_body, HttpConfig, HttpError, Keys, Limits, Role, Server};

fn router() -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/echo",
            post(|body: Body| async move {
                match read_body(body).await {
                    Ok(bytes) => format!("got {} bytes", bytes.len()).into_response(),
                    Err(e) => e.into_response(),
                }
            }),
        )
}

fn limits() -> Limits {
    Limits {
        max_body: 1024,
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        shutdown_grace: Duration::from_secs(1),
        ..Limits::default()
    }
}

fn start(limits: Limits) -> Server {
    let mut config = HttpConfig::new("test", "127.0.0.1:0");
    config.limits = limits;
    Server::start(config, router()).expect("start the listener")
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    s
}

/// Sends raw bytes and reads the answer until the server closes or 10 s pass.
fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
    let mut s = connect(addr);
    s.write_all(raw).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn get_health(addr: SocketAddr) -> String {
    exchange(
        addr,
        b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
}

fn status(answer: &str) -> &str {
    answer.get(9..12).unwrap_or("")
}

#[test]
fn a_huge_content_length_is_refused_before_any_body_is_read() {
    let server = start(limits());
    let started = Instant::now();
    let answer = exchange(
        server.address(),
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000000000000\r\n\r\n",
    );
    assert_eq!(status(&answer), "413", "{answer}");
    assert!(
        answer.contains("larger than this endpoint accepts"),
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // Every path gets the same answer, even one that does not exist.
    let answer = exchange(
        server.address(),
        b"PUT /nowhere HTTP/1.1\r\nhost: x\r\ncontent-length: 99999999999999999\r\n\r\n",
    );
    assert_eq!(status(&answer), "413", "{answer}");
    assert_eq!(status(&get_health(server.address())), "200");
    assert_eq!(server.stats().too_large, 2);
}

#[test]
fn a_chunked_body_is_cut_off_at_the_limit() {
    let server = start(limits());
    let chunk = "x".repeat(800);
    let raw = format!(
        "POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n320\r\n{chunk}\r\n320\r\n{chunk}\r\n0\r\n\r\n"
    );
    let answer = exchange(server.address(), raw.as_bytes());
    assert_eq!(status(&answer), "413", "{answer}");
    let ok = exchange(
        server.address(),
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
    );
    assert!(ok.contains("got 5 bytes"), "{ok}");
}

#[test]
fn an_invalid_chunked_body_and_junk_bytes_get_400() {
    let server = start(limits());
    let answer = exchange(
        server.address(),
        b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz-not-hex\r\nabc\r\n",
    );
    assert_eq!(status(&answer), "400", "{answer}");
    let answer = exchange(server.address(), b"\x00\x01\x02 junk \xff\xfe\r\n\r\n");
    assert_eq!(status(&answer), "400", "{answer}");
    assert_eq!(status(&get_health(server.address())), "200");
    // The counter is bumped when the server's connection task ends, which can be after the
    // client has read the 400 (always, under coverage's ptrace): wait for it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.stats().protocol_errors == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(server.stats().protocol_errors >= 1);
}

#[test]
fn oversized_headers_get_431() {
    let server = start(limits());
    let big = "a".repeat(32 << 10);
    let raw = format!("GET /health HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n");
    let answer = exchange(server.address(), raw.as_bytes());
    assert_eq!(status(&answer), "431", "{answer}");
    let many: String = (0..200).map(|i| format!("x-h{i}: v\r\n")).collect();
    let raw = format!("GET /health HTTP/1.1\r\nhost: x\r\n{many}\r\n");
    let answer = exchange(server.address(), raw.as_bytes());
    assert_eq!(status(&answer), "431", "{answer}");
}

#[test]
fn slow_headers_are_cut_off() {
    let server = start(limits());
    let mut s = connect(server.address());
    s.write_all(b"GET /health HTTP/1.1\r\n").expect("write");
    // One header byte every 300 ms: the header timeout (1 s) ends it, not the idle timeout.
    let started = Instant::now();
    let mut closed = false;
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(300));
        if s.write_all(b"x").is_err() {
            closed = true;
            break;
        }
        let _ = s.set_nonblocking(true);
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
        let _ = s.set_nonblocking(false);
    }
    assert!(
        closed,
        "a slow client kept its connection for {:?}",
        started.elapsed()
    );
    assert!(server.stats().timeouts >= 1, "{:?}", server.stats());
}

#[test]
fn a_stalled_body_gets_408() {
    let server = start(limits());
    let answer = exchange(
        server.address(),
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nonly ten b",
    );
    assert_eq!(status(&answer), "408", "{answer}");
}

#[test]
fn idle_connections_are_closed() {
    let server = start(limits());
    let mut s = connect(server.address());
    let mut buf = [0u8; 16];
    // Nothing sent: the idle timeout (2 s) or the header timeout closes it.
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0);
    assert!(server.stats().timeouts >= 1);
}

#[test]
fn a_flood_of_slow_clients_does_not_starve_a_good_one() {
    let server = start(Limits {
        header_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        ..limits()
    });
    let mut flood = Vec::new();
    for _ in 0..500 {
        let mut s = connect(server.address());
        // Half a request line, then nothing.
        s.write_all(b"POST /echo HT").expect("write");
        flood.push(s);
    }
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let answer = get_health(server.address());
    let took = started.elapsed();
    assert_eq!(status(&answer), "200", "{answer}");
    assert!(
        took < Duration::from_secs(1),
        "a good client waited {took:?}"
    );
    assert!(server.stats().open >= 500, "{:?}", server.stats());
    // The slow clients are still hanging, not answered.
    let mut first = flood.remove(0);
    first.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 8];
    assert!(matches!(first.read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock));
}

#[test]
fn connections_over_the_cap_get_503() {
    let server = start(Limits {
        max_connections: 4,
        idle_timeout: Duration::from_secs(30),
        header_timeout: Duration::from_secs(30),
        ..limits()
    });
    let held: Vec<TcpStream> = (0..4).map(|_| connect(server.address())).collect();
    std::thread::sleep(Duration::from_millis(200));
    let answer = get_health(server.address());
    assert_eq!(status(&answer), "503", "{answer}");
    assert!(answer.contains("too many connections"));
    assert_eq!(server.stats().refused, 1);
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(status(&get_health(server.address())), "200");
}

#[test]
fn shutdown_is_bounded_while_clients_hang() {
    let mut server = start(Limits {
        header_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        body_timeout: Duration::from_secs(60),
        ..limits()
    });
    let mut hanging = Vec::new();
    for _ in 0..20 {
        let mut s = connect(server.address());
        s.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nabc")
            .expect("write");
        hanging.push(s);
    }
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    server.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(TcpStream::connect(server.address()).is_err());
}

fn keyed() -> Server {
    let mut keys = Keys::new();
    keys.add_token("reader", "read-key", Role::Read);
    keys.add_token("admin", "admin-key", Role::Admin);
    let mut config = HttpConfig::new("test", "127.0.0.1:0");
    config.limits = limits();
    config.keys = Some(keys);
    config.public_paths = vec!["/health".into()];
    Server::start(config, router()).expect("start")
}

fn post_with(addr: SocketAddr, auth: Option<&str>) -> String {
    let auth = auth.map_or(String::new(), |a| format!("authorization: {a}\r\n"));
    exchange(
        addr,
        format!("POST /echo HTTP/1.1\r\nhost: x\r\n{auth}content-length: 2\r\nconnection: close\r\n\r\nhi")
            .as_bytes(),
    )
}

#[test]
fn requests_without_a_valid_key_are_refused_and_roles_hold() {
    let server = keyed();
    let addr = server.address();
    let none = post_with(addr, None);
    assert_eq!(status(&none), "401", "{none}");
    assert!(none.to_lowercase().contains("www-authenticate: bearer"));
    assert!(none.contains("needs an API key"));
    let wrong = post_with(addr, Some("Bearer nope"));
    assert_eq!(status(&wrong), "401", "{wrong}");
    assert!(wrong.contains("not valid"));
    let basic = post_with(addr, Some("Basic YWI6Y2Q="));
    assert_eq!(status(&basic), "401", "{basic}");
    let reader = post_with(addr, Some("Bearer read-key"));
    assert_eq!(status(&reader), "403", "{reader}");
    assert!(reader.contains("read role"));
    let admin = post_with(addr, Some("Bearer admin-key"));
    assert_eq!(status(&admin), "200", "{admin}");
    // Health checks need no key.
    assert_eq!(status(&get_health(addr)), "200");
    assert_eq!(server.stats().unauthorized, 4);
}

#[test]
fn a_public_address_without_keys_or_client_certificates_refuses_to_start() {
    let config = HttpConfig::new("ingest In", "0.0.0.0:0");
    match Server::start(config, router()) {
        Err(e @ HttpError::Insecure { .. }) => {
            let text = e.to_string();
            assert!(text.contains("ingest In"), "{text}");
            assert!(text.contains("API key"), "{text}");
            assert!(text.contains("127.0.0.1"), "{text}");
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("an open listener started on 0.0.0.0"),
    }
    let mut config = HttpConfig::new("ingest In", "0.0.0.0:0");
    let mut keys = Keys::new();
    keys.add_token("k", "secret", Role::Admin);
    config.keys = Some(keys);
    assert!(Server::start(config, router()).is_ok());
}

#[test]
fn unusable_addresses_and_ports_in_use_are_named() {
    let err = Server::start(HttpConfig::new("metrics", "no-port"), router())
        .err()
        .expect("an error");
    assert!(err.to_string().contains("metrics: `no-port`"), "{err}");
    let first = start(limits());
    let err = Server::start(
        HttpConfig::new("metrics", first.address().to_string()),
        router(),
    )
    .err()
    .expect("port in use");
    assert!(
        err.to_string().starts_with("metrics: cannot listen on"),
        "{err}"
    );
}

//! A real HTTP/1.1 server on 127.0.0.1 with scripted misbehaviour, for the http sink tests.
//!
//! Each accepted connection gets its own thread, reads one request (Content-Length or chunked
//! body), records it, then acts out the next scripted [`Behaviour`] (or answers 200 when the
//! script is empty) and closes the connection.

// Each test binary that includes this module uses a different subset of it.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What the server does with one request.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Answer with this status and body.
    Status(u16, &'static str),
    /// Read the request, then say nothing until `duration` passes (or the server stops).
    Hang(Duration),
    /// Read the request, then say nothing until [`TestServer::release`] is called.
    Block,
    /// Answer with these raw bytes (not necessarily HTTP) and close.
    Raw(&'static [u8]),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Request>>,
    arrived: Condvar,
    script: Mutex<VecDeque<Behaviour>>,
    released: Mutex<bool>,
    release: Condvar,
    stop: AtomicBool,
}

/// A running server; stops accepting when dropped.
pub struct TestServer {
    addr: SocketAddr,
    state: Arc<State>,
}

impl TestServer {
    /// Starts on a free port with a script of behaviours for the first requests.
    pub fn start(script: Vec<Behaviour>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        TestServer::serve(listener, script)
    }

    /// Starts on a given port (used to bring a "down" server back).
    pub fn start_on(port: u16, script: Vec<Behaviour>) -> TestServer {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("rebind the reserved port");
        TestServer::serve(listener, script)
    }

    /// A port with nothing listening on it: connections are refused.
    pub fn unused_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.local_addr().expect("local addr").port()
    }

    fn serve(listener: TcpListener, script: Vec<Behaviour>) -> TestServer {
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State {
            script: Mutex::new(script.into()),
            ..State::default()
        });
        let accept_state = Arc::clone(&state);
        thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_state.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let state = Arc::clone(&accept_state);
                thread::spawn(move || handle(stream, &state));
            }
        });
        TestServer { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().expect("not poisoned").clone()
    }

    /// Waits (up to a generous bound) until `n` requests have arrived.
    pub fn wait_for_requests(&self, n: usize) -> Vec<Request> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut requests = self.state.requests.lock().expect("not poisoned");
        while requests.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "only {} of {n} requests arrived",
                requests.len()
            );
            requests = self
                .state
                .arrived
                .wait_timeout(requests, left)
                .expect("not poisoned")
                .0;
        }
        requests.clone()
    }

    /// Lets every [`Behaviour::Block`]ed request answer 200.
    pub fn release(&self) {
        *self.state.released.lock().expect("not poisoned") = true;
        self.state.release.notify_all();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        self.release();
        // Wake the accept loop so it sees the stop flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn handle(stream: TcpStream, state: &State) {
    let Some(request) = read_request(&stream) else {
        return;
    };
    let behaviour = state
        .script
        .lock()
        .expect("not poisoned")
        .pop_front()
        .unwrap_or(Behaviour::Status(200, "ok"));
    {
        let mut requests = state.requests.lock().expect("not poisoned");
        requests.push(request);
        state.arrived.notify_all();
    }
    let status = match behaviour {
        Behaviour::Status(code, body) => Some((code, body)),
        Behaviour::Hang(duration) => {
            let until = Instant::now() + duration;
            while Instant::now() < until && !state.stop.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(10));
            }
            None
        }
        Behaviour::Block => {
            let mut released = state.released.lock().expect("not poisoned");
            while !*released {
                released = state.release.wait(released).expect("not poisoned");
            }
            Some((200, "ok"))
        }
        Behaviour::Raw(bytes) => {
            let mut stream = &stream;
            let _ = stream.write_all(bytes);
            None
        }
    };
    if let Some((code, body)) = status {
        let mut stream = stream;
        let _ = write!(
            stream,
            "HTTP/1.1 {code} Scripted\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.flush();
    }
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _): &&(String, String)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(len) = header("content-length") {
        let len: usize = len.parse().ok()?;
        body.resize(len, 0);
        reader.read_exact(&mut body).ok()?;
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

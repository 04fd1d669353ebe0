//! The `http` source: an ingest endpoint that accepts events by `POST`.
//!
//! Parameters: `url` (required: where to listen, `http://HOST:PORT/PATH`; `PORT` 0 picks a free
//! port, shown by [`Source::describe`]), `token` (optional: requests must carry `Authorization:
//! Bearer <token>`; `${ENV}` references expand), `max_body` (bytes, default 10 MiB), `timeout`
//! (how long a request may wait for room in the host's queue, default `5s`).
//!
//! A request body is one JSON object, a JSON array of objects, or JSON lines. Each object is
//! delivered as its own payload, in order. Answers:
//!
//! - `202 {"accepted": n}`: every event was handed to the engine;
//! - `400`: the body is not JSON of those shapes; nothing was accepted, and the answer names
//!   the first bad line or array item;
//! - `401` without the token, `404` on another path, `405` for methods other than `POST`
//!   (`GET /health` answers `200`), `413` when the body passes `max_body`;
//! - `503 {"accepted": k, "rejected": n - k}`: the engine's queue stayed full for `timeout`;
//!   the first `k` events were accepted, the client should resend the rest.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;

use crate::config::{expand_env, Params};
use crate::error::ConfigError;
use crate::source::{
    now_ms, DeliverError, Source, SourceConfig, SourceContext, SourceCounters, SourceEvent,
    SourceMessage, SourceMetrics, SourceSender,
};

/// Parameters only the http source reads (an http connector used as a sink tolerates them).
pub const SOURCE_PARAMS: &[&str] = &["token", "max_body"];

/// How often the listener thread looks at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// A running http ingest endpoint.
pub struct HttpSource {
    name: String,
    address: SocketAddr,
    path: String,
    stop: Arc<AtomicBool>,
    counters: Arc<SourceCounters>,
    thread: Option<JoinHandle<()>>,
}

struct Settings {
    bind: String,
    path: String,
    token: Option<String>,
    max_body: u64,
    timeout: Duration,
}

fn settings(config: &SourceConfig) -> Result<Settings, ConfigError> {
    let c = &config.connector;
    let mut p = Params::for_role(c, "source");
    let url = expand_env(
        &c.name,
        "url",
        p.required_string("url", "write `url: \"http://127.0.0.1:8080/events\"`")?,
    )?;
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(p.invalid(
            "url",
            format!("\"{url}\" must start with http:// (the address to listen on)"),
        ));
    };
    let (bind, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if bind.is_empty() || !bind.contains(':') {
        return Err(p.invalid(
            "url",
            format!("\"{url}\" needs a host and a port, e.g. http://127.0.0.1:8080/events"),
        ));
    }
    let token = match p.string("token")? {
        Some(t) => Some(expand_env(&c.name, "token", t)?),
        None => None,
    };
    let max_body = p.count("max_body", 10 << 20, 1)?;
    let timeout = p.duration("timeout", Duration::from_secs(5))?;
    p.tolerate(crate::http::SINK_PARAMS);
    p.finish()?;
    Ok(Settings {
        bind: bind.to_string(),
        path: path.to_string(),
        token,
        max_body,
        timeout,
    })
}

impl HttpSource {
    /// Validates the parameters, binds the address and starts serving.
    pub fn start(
        config: &SourceConfig,
        _context: &SourceContext,
        sender: SourceSender,
    ) -> Result<HttpSource, ConfigError> {
        let name = config.connector.name.clone();
        let s = settings(config)?;
        let server = tiny_http::Server::http(&s.bind).map_err(|e| ConfigError::Listen {
            connector: name.clone(),
            address: s.bind.clone(),
            reason: e.to_string(),
        })?;
        let address = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| ConfigError::Listen {
                connector: name.clone(),
                address: s.bind.clone(),
                reason: "not an IP address".into(),
            })?;
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(SourceCounters::default());
        let endpoint = Endpoint {
            id: config.id,
            settings: Settings {
                bind: address.to_string(),
                ..s
            },
            stop: stop.clone(),
            counters: counters.clone(),
            sender,
        };
        let path = endpoint.settings.path.clone();
        let thread = std::thread::Builder::new()
            .name(format!("source-{name}"))
            .spawn(move || endpoint.serve(server))
            .map_err(|source| ConfigError::Thread {
                connector: name.clone(),
                source,
            })?;
        Ok(HttpSource {
            name,
            address,
            path,
            stop,
            counters,
            thread: Some(thread),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

struct Endpoint {
    id: usize,
    settings: Settings,
    stop: Arc<AtomicBool>,
    counters: Arc<SourceCounters>,
    sender: SourceSender,
}

/// An answer: status and JSON body.
struct Answer(u16, String);

impl Endpoint {
    fn serve(self, server: tiny_http::Server) {
        while !self.stop.load(Ordering::Acquire) && !self.sender.stopping() {
            match server.recv_timeout(POLL) {
                Ok(Some(request)) => self.handle(request),
                Ok(None) => {}
                Err(e) => {
                    self.counters.error(format!("accepting a connection: {e}"));
                }
            }
        }
    }

    fn handle(&self, mut request: tiny_http::Request) {
        let from = request
            .remote_addr()
            .map_or_else(|| "?".to_string(), ToString::to_string);
        let answer = self.answer(&mut request, &from);
        if answer.0 >= 400 {
            self.counters.rejected(1);
        }
        let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..])
            .expect("a static header is valid");
        let response = tiny_http::Response::from_string(answer.1)
            .with_status_code(answer.0)
            .with_header(header);
        // The client may have gone away; that only concerns it.
        let _ = request.respond(response);
    }

    fn answer(&self, request: &mut tiny_http::Request, from: &str) -> Answer {
        let url = request.url().split('?').next().unwrap_or("/").to_string();
        let method = request.method().clone();
        if method == tiny_http::Method::Get && url == "/health" {
            return Answer(200, r#"{"status":"ok"}"#.into());
        }
        if self.settings.path != "/" && url != self.settings.path {
            return error(
                404,
                &format!(
                    "no endpoint at {url}; post events to {}",
                    self.settings.path
                ),
            );
        }
        if method != tiny_http::Method::Post {
            return error(405, &format!("{method} is not supported; POST events here"));
        }
        if let Some(token) = &self.settings.token {
            let expected = format!("Bearer {token}");
            let ok = request
                .headers()
                .iter()
                .any(|h| h.field.equiv("Authorization") && h.value.as_str() == expected.as_str());
            if !ok {
                return error(401, "missing or wrong `Authorization: Bearer` token");
            }
        }
        let mut body = Vec::new();
        let limit = self.settings.max_body;
        match request.as_reader().take(limit + 1).read_to_end(&mut body) {
            Ok(_) if body.len() as u64 > limit => {
                return error(413, &format!("the body passes max_body ({limit} bytes)"));
            }
            Ok(_) => {}
            Err(e) => {
                self.counters
                    .error(format!("reading a request from {from}: {e}"));
                return error(400, &format!("cannot read the body: {e}"));
            }
        }
        let items = match split_body(&body) {
            Ok(items) => items,
            Err(e) => return error(400, &e),
        };
        let place = format!("POST {url} from {from}");
        let deadline = Instant::now() + self.settings.timeout;
        let total = items.len();
        for (i, item) in items.into_iter().enumerate() {
            let len = item.len();
            let message = SourceEvent::Message(SourceMessage {
                source: self.id,
                payload: item,
                place: if total == 1 {
                    place.clone()
                } else {
                    format!("{place} item {}", i + 1)
                },
                received_ms: now_ms(),
                position: None,
            });
            if let Err(e) = self.deliver_until(message, deadline) {
                let rejected = (total - i) as u64;
                self.counters.rejected(rejected.saturating_sub(1));
                let why = match e {
                    DeliverError::Full => "the engine is busy; resend the rejected events",
                    DeliverError::Stopped => "the engine is stopping",
                };
                return Answer(
                    503,
                    format!(r#"{{"accepted":{i},"rejected":{rejected},"error":"{why}"}}"#),
                );
            }
            self.counters.received(len);
        }
        Answer(202, format!(r#"{{"accepted":{total}}}"#))
    }

    /// Delivers, waiting for room in the host's queue until `deadline`.
    fn deliver_until(&self, event: SourceEvent, deadline: Instant) -> Result<(), DeliverError> {
        let mut event = event;
        loop {
            match self.sender.try_deliver(event) {
                Ok(()) => return Ok(()),
                Err((DeliverError::Full, back)) if Instant::now() < deadline => {
                    event = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(e),
            }
        }
    }
}

fn error(status: u16, message: &str) -> Answer {
    let body = serde_json::json!({ "error": message });
    Answer(status, body.to_string())
}

/// Splits a body into one payload per event: one object, an array of objects, or JSON lines.
/// Any item that is not a JSON object makes the whole body invalid (nothing is accepted).
fn split_body(body: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("the body is not UTF-8: {e}"))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(
            "the body is empty; send a JSON object, an array of objects or JSON lines".into(),
        );
    }
    if trimmed.starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(trimmed)
            .map_err(|e| format!("the body is not a JSON array: {e}"))?;
        return items
            .into_iter()
            .enumerate()
            .map(|(i, raw)| {
                if raw.get().trim_start().starts_with('{') {
                    Ok(raw.get().as_bytes().to_vec())
                } else {
                    Err(format!("array item {} is not a JSON object", i + 1))
                }
            })
            .collect();
    }
    if serde_json::from_str::<&RawValue>(trimmed).is_ok() {
        return if trimmed.starts_with('{') {
            Ok(vec![trimmed.as_bytes().to_vec()])
        } else {
            Err("the body must be a JSON object, an array of objects or JSON lines".into())
        };
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<&RawValue>(line) {
            Ok(_) if line.starts_with('{') => out.push(line.as_bytes().to_vec()),
            Ok(_) => return Err(format!("line {} is not a JSON object", i + 1)),
            Err(e) => return Err(format!("line {}: invalid JSON: {e}", i + 1)),
        }
    }
    Ok(out)
}

impl Source for HttpSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        format!("http://{}{}", self.address, self.path)
    }

    fn metrics(&self) -> SourceMetrics {
        self.counters.snapshot()
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            // The listener wakes every POLL; a request in progress waits at most `timeout`.
            let _ = t.join();
        }
    }
}

impl Drop for HttpSource {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::split_body;

    fn check(body: &str) -> Result<Vec<String>, String> {
        split_body(body.as_bytes()).map(|v| {
            v.into_iter()
                .map(|b| String::from_utf8(b).expect("utf-8"))
                .collect()
        })
    }

    #[test]
    fn one_object_array_and_lines_split_into_events() {
        assert_eq!(check(r#" {"a":1} "#), Ok(vec![r#"{"a":1}"#.to_string()]));
        assert_eq!(
            check(r#"[{"a":1}, {"b":2}]"#),
            Ok(vec![r#"{"a":1}"#.to_string(), r#"{"b":2}"#.to_string()])
        );
        assert_eq!(
            check("{\"a\":1}\n\n{\"b\":2}\n"),
            Ok(vec![r#"{"a":1}"#.to_string(), r#"{"b":2}"#.to_string()])
        );
    }

    #[test]
    fn bad_bodies_name_the_bad_item() {
        assert_eq!(
            check("[1]"),
            Err("array item 1 is not a JSON object".into())
        );
        assert_eq!(
            check("{\"a\":1}\n{oops"),
            Err("line 2: invalid JSON: key must be a string at line 1 column 2".into())
        );
        assert!(check("").is_err());
        assert!(check("42").is_err());
    }
}

//! The `http` source: an ingest endpoint that accepts events by `POST`.
//!
//! Parameters: `url` (required: where to listen, `http://HOST:PORT/PATH`, or `https://` with
//! `tls_cert` and `tls_key`; `PORT` 0 picks a free port, shown by [`Source::describe`]),
//! `token` (optional: requests must carry `Authorization: Bearer <token>`; `${ENV}` references
//! expand), `max_body` (bytes, default 10 MiB), `timeout` (how long a request may wait for room
//! in the host's queue, default `5s`), `tls_cert`/`tls_key` (PEM files), `tls_client_ca`
//! (PEM: require client certificates signed by it), `max_connections` (default 1,024),
//! `body_timeout` (time to receive a body, default `30s`).
//!
//! The endpoint runs on the process's one HTTP stack (`varpulis-http`): header and body limits
//! are enforced before anything is allocated, slow clients are cut off without holding up the
//! others, and a non-loopback address needs a `token` or `tls_client_ca`.
//!
//! A request body is one JSON object, a JSON array of objects, or JSON lines. Each object is
//! delivered as its own payload, in order. Answers:
//!
//! - `202 {"accepted": n}`: every event was handed to the engine;
//! - `400`: the body is not JSON of those shapes; nothing was accepted, and the answer names
//!   the first bad line or array item;
//! - `401` without the token, `404` on another path, `405` for methods other than `POST`
//!   (`GET /health` answers `200`), `408` when the body does not arrive in time, `413` when
//!   the body passes `max_body`;
//! - `503 {"accepted": k, "rejected": n - k}`: the engine's queue stayed full for `timeout`;
//!   the first `k` events were accepted, the client should resend the rest.
//!
//! A W3C `traceparent` header makes every event of the request continue the caller's trace
//! ([`SourceMessage::trace_parent`]); an invalid one is ignored and counted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use varpulis_http::axum::extract::{Request, State};
use varpulis_http::axum::http::{Method, StatusCode};
use varpulis_http::axum::response::{IntoResponse, Response};
use varpulis_http::axum::Router;
use varpulis_http::{read_body, HttpConfig, HttpStats, Keys, Limits, Peer, Role, Server, TlsFiles};

use crate::config::{expand_env, Params};
use crate::error::ConfigError;
use crate::source::{
    now_ms, DeliverError, Source, SourceConfig, SourceContext, SourceCounters, SourceEvent,
    SourceMessage, SourceMetrics, SourceSender,
};
use crate::trace_context::{TraceParent, TRACEPARENT};

/// Parameters only the http source reads (an http connector used as a sink tolerates them).
pub const SOURCE_PARAMS: &[&str] = &[
    "token",
    "max_body",
    "tls_cert",
    "tls_key",
    "tls_client_ca",
    "max_connections",
    "body_timeout",
];

/// A running http ingest endpoint.
pub struct HttpSource {
    name: String,
    path: String,
    counters: Arc<SourceCounters>,
    server: Option<Server>,
    /// The listener's counters as they were when it stopped.
    stopped_stats: HttpStats,
    url: String,
}

struct Settings {
    bind: String,
    path: String,
    token: Option<String>,
    timeout: Duration,
    tls: Option<TlsFiles>,
    limits: Limits,
}

fn settings(config: &SourceConfig, base_dir: &std::path::Path) -> Result<Settings, ConfigError> {
    let c = &config.connector;
    let mut p = Params::for_role(c, "source");
    let url = expand_env(
        &c.name,
        "url",
        p.required_string("url", "write `url: \"http://127.0.0.1:8080/events\"`")?,
    )?;
    let (secure, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else {
        return Err(p.invalid(
            "url",
            format!("\"{url}\" must start with http:// or https:// (the address to listen on)"),
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
    let defaults = Limits::default();
    let max_body = p.count("max_body", defaults.max_body, 1)?;
    let timeout = p.duration("timeout", Duration::from_secs(5))?;
    let max_connections = p.count("max_connections", defaults.max_connections as u64, 1)?;
    let body_timeout = p.duration("body_timeout", defaults.body_timeout)?;
    let cert = p.optional_path("tls_cert", base_dir)?;
    let key = p.optional_path("tls_key", base_dir)?;
    let client_ca: Option<PathBuf> = p.optional_path("tls_client_ca", base_dir)?;
    let tls = match (cert, key, secure) {
        (Some(cert), Some(key), true) => Some(TlsFiles {
            cert,
            key,
            client_ca,
        }),
        (None, None, false) if client_ca.is_none() => None,
        (_, _, false) => {
            return Err(p.invalid(
                "url",
                format!("\"{url}\" is plain http but TLS files are set: write https://"),
            ))
        }
        (_, _, true) => {
            return Err(p.invalid(
                "url",
                "https:// needs both `tls_cert` and `tls_key` (PEM files)",
            ))
        }
    };
    p.tolerate(crate::http::SINK_PARAMS);
    p.finish()?;
    Ok(Settings {
        bind: bind.to_string(),
        path: path.to_string(),
        token,
        timeout,
        tls,
        limits: Limits {
            max_body,
            max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
            body_timeout,
            // A stop waits this long for requests in progress (a stalled upload), so that a
            // SIGTERM ends the whole run within a few seconds.
            shutdown_grace: Duration::from_secs(2),
            ..defaults
        },
    })
}

impl HttpSource {
    /// Validates the parameters, binds the address and starts serving.
    pub fn start(
        config: &SourceConfig,
        context: &SourceContext,
        sender: SourceSender,
    ) -> Result<HttpSource, ConfigError> {
        let name = config.connector.name.clone();
        let s = settings(config, &context.base_dir)?;
        let counters = Arc::new(SourceCounters::default());
        let endpoint = Arc::new(Endpoint {
            id: config.id,
            path: s.path.clone(),
            timeout: s.timeout,
            counters: counters.clone(),
            sender,
        });
        let mut http = HttpConfig::new(format!("connector `{name}`"), s.bind.clone());
        http.limits = s.limits;
        http.tls = s.tls;
        http.public_paths = vec!["/health".into()];
        if let Some(token) = &s.token {
            let mut keys = Keys::new();
            keys.add_token("token", token, Role::Admin);
            http.keys = Some(keys);
        }
        let router = Router::new().fallback(answer).with_state(endpoint);
        let server = Server::start(http, router).map_err(|e| ConfigError::Listen {
            connector: name.clone(),
            address: s.bind.clone(),
            reason: e.to_string(),
        })?;
        let url = server.url();
        Ok(HttpSource {
            name,
            path: s.path,
            counters,
            server: Some(server),
            stopped_stats: HttpStats::default(),
            url,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn address(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(Server::address)
    }
}

struct Endpoint {
    id: usize,
    path: String,
    timeout: Duration,
    counters: Arc<SourceCounters>,
    sender: SourceSender,
}

/// Every request: counts refusals, then answers.
async fn answer(State(endpoint): State<Arc<Endpoint>>, request: Request) -> Response {
    let answer = endpoint.handle(request).await;
    if answer.status().as_u16() >= 400 {
        endpoint.counters.rejected(1);
    }
    answer
}

impl Endpoint {
    async fn handle(&self, request: Request) -> Response {
        let from = request
            .extensions()
            .get::<Peer>()
            .map_or_else(|| "?".to_string(), |p| p.0.to_string());
        let url = request.uri().path().to_string();
        let method = request.method().clone();
        if method == Method::GET && url == "/health" {
            return json(StatusCode::OK, r#"{"status":"ok"}"#.into());
        }
        if self.path != "/" && url != self.path {
            return error(
                StatusCode::NOT_FOUND,
                &format!("no endpoint at {url}; post events to {}", self.path),
            );
        }
        if method != Method::POST {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("{method} is not supported; POST events here"),
            );
        }
        let trace_parent = self
            .counters
            .trace_parent(request.headers().get(TRACEPARENT).map(|v| v.as_bytes()));
        let body = match read_body(request.into_body()).await {
            Ok(body) => body,
            Err(e) => {
                self.counters
                    .error(format!("reading a request from {from}: {e}"));
                return e.into_response();
            }
        };
        let items = match split_body(&body) {
            Ok(items) => items,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e),
        };
        self.deliver_all(items, &format!("POST {url} from {from}"), trace_parent)
            .await
    }

    async fn deliver_all(
        &self,
        items: Vec<Vec<u8>>,
        place: &str,
        trace_parent: Option<TraceParent>,
    ) -> Response {
        let deadline = std::time::Instant::now() + self.timeout;
        let total = items.len();
        for (i, item) in items.into_iter().enumerate() {
            let len = item.len();
            let message = SourceEvent::Message(SourceMessage {
                source: self.id,
                payload: item,
                place: if total == 1 {
                    place.to_string()
                } else {
                    format!("{place} item {}", i + 1)
                },
                received_ms: now_ms(),
                received: std::time::Instant::now(),
                position: None,
                trace_parent,
            });
            if let Err(e) = self.deliver_until(message, deadline).await {
                let rejected = (total - i) as u64;
                self.counters.rejected(rejected.saturating_sub(1));
                let why = match e {
                    DeliverError::Full => "the engine is busy; resend the rejected events",
                    DeliverError::Stopped => "the engine is stopping",
                };
                return json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(r#"{{"accepted":{i},"rejected":{rejected},"error":"{why}"}}"#),
                );
            }
            self.counters.received(len);
        }
        json(StatusCode::ACCEPTED, format!(r#"{{"accepted":{total}}}"#))
    }

    /// Delivers, waiting for room in the host's queue until `deadline` without holding a
    /// thread of the HTTP stack.
    async fn deliver_until(
        &self,
        event: SourceEvent,
        deadline: std::time::Instant,
    ) -> Result<(), DeliverError> {
        let mut event = event;
        loop {
            match self.sender.try_deliver(event) {
                Ok(()) => return Ok(()),
                Err((DeliverError::Full, back)) if std::time::Instant::now() < deadline => {
                    event = back;
                    varpulis_http::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }
}

fn json(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        varpulis_http::axum::http::header::CONTENT_TYPE,
        varpulis_http::axum::http::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, message: &str) -> Response {
    varpulis_http::json_error(status, message)
}

/// Splits a body into one payload per event: one object, an array of objects, or JSON lines.
/// Any item that is not a JSON object makes the whole body invalid (nothing is accepted).
pub fn split_body(body: &[u8]) -> Result<Vec<Vec<u8>>, String> {
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
        format!("{}{}", self.url, self.path)
    }

    fn metrics(&self) -> SourceMetrics {
        // Requests the stack refused before the endpoint saw them (no key, too large) are
        // refusals of this source too.
        let mut metrics = self.counters.snapshot();
        let http = Source::http_stats(self).unwrap_or_default();
        metrics.rejected += http.unauthorized + http.too_large;
        metrics
    }

    fn http_stats(&self) -> Option<HttpStats> {
        Some(
            self.server
                .as_ref()
                .map_or(self.stopped_stats, Server::stats),
        )
    }

    fn stop(&mut self) {
        // Bounded: the stack lets requests in progress finish for its grace period (a request
        // waiting for room in the queue sees the host stopping), then closes every connection.
        if let Some(mut server) = self.server.take() {
            server.shutdown();
            self.stopped_stats = server.stats();
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

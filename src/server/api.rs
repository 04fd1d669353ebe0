//! The REST API (`/api/v1`), health and readiness, metrics and the status page.
//!
//! Every answer is JSON (`{"error": "..."}` for refusals) except `/metrics` (Prometheus
//! text), the tail (Server-Sent Events) and the page. The routes are listed once in
//! [`crate::server::openapi::ROUTES`], which the OpenAPI document and its test share.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use varpulis_http::axum::extract::{Path, Request, State};
use varpulis_http::axum::http::{header, HeaderValue, StatusCode};
use varpulis_http::axum::response::sse::{Event, KeepAlive, Sse};
use varpulis_http::axum::response::{Html, IntoResponse, Response};
use varpulis_http::axum::routing::{get, post};
use varpulis_http::axum::Router;
use varpulis_http::{json_error, read_body, Peer, StatsHandle};

use super::pipeline::{Pipeline, State as PipelineState};
use super::{DeployError, Pipelines};

/// Paths answered without an API key: probes must work without secrets.
pub const PUBLIC_PATHS: &[&str] = &["/healthz", "/readyz"];

/// How long an events request waits for room in a busy pipeline's queue.
const INJECT_WAIT: Duration = Duration::from_secs(5);

/// What every handler reaches.
pub struct AppState {
    /// The deployed pipelines.
    pub pipelines: Arc<Pipelines>,
    /// When the server started.
    pub started: Instant,
    /// The listener's counters, once it is up.
    pub listener: Mutex<Option<StatsHandle>>,
}

type App = State<Arc<AppState>>;

/// The server's routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/check", post(check))
        .route("/api/v1/pipelines", get(list).post(create))
        .route(
            "/api/v1/pipelines/{name}",
            get(show).put(update).delete(remove),
        )
        .route("/api/v1/pipelines/{name}/events", post(events))
        .route("/api/v1/pipelines/{name}/streams/{stream}/tail", get(tail))
        .fallback(|request: Request| async move {
            json_error(
                StatusCode::NOT_FOUND,
                &format!(
                    "no route for {} {}; the API is described at /api/v1/openapi.json",
                    request.method(),
                    request.uri().path()
                ),
            )
        })
        .method_not_allowed_fallback(|request: Request| async move {
            json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!(
                    "{} is not allowed on {}; see /api/v1/openapi.json",
                    request.method(),
                    request.uri().path()
                ),
            )
        })
        .with_state(state)
}

fn json_answer(status: StatusCode, value: &Value) -> Response {
    let mut response = (status, value.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A deployment refusal in words.
pub fn describe(e: &DeployError) -> String {
    match e {
        DeployError::BadName(n) => format!(
            "`{n}` cannot name a pipeline: use 1 to 64 letters, digits, `_`, `-` or `.`, starting with a letter or digit"
        ),
        DeployError::Exists(n) => format!("a pipeline named `{n}` exists; update it with PUT or delete it first"),
        DeployError::Unknown(n) => format!("no pipeline named `{n}`"),
        DeployError::Rejected(r) => r.message.clone(),
        DeployError::BadSettings(m) => m.clone(),
        DeployError::Io(e) => format!("{e:#}"),
        DeployError::Unavailable(m) => m.clone(),
    }
}

fn deploy_error(e: &DeployError) -> Response {
    let message = describe(e);
    match e {
        DeployError::BadName(_) => json_error(StatusCode::BAD_REQUEST, &message),
        DeployError::Exists(_) => json_error(StatusCode::CONFLICT, &message),
        DeployError::Unknown(_) => json_error(StatusCode::NOT_FOUND, &message),
        DeployError::BadSettings(_) => json_error(StatusCode::UNPROCESSABLE_ENTITY, &message),
        DeployError::Rejected(r) => json_answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({ "error": message, "diagnostics": r.diagnostics }),
        ),
        DeployError::Io(_) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &message),
        DeployError::Unavailable(_) => json_error(StatusCode::SERVICE_UNAVAILABLE, &message),
    }
}

fn unknown(name: &str) -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        &format!("no pipeline named `{name}`"),
    )
}

/// Reads a JSON body, refusing other content types, oversized and malformed bodies.
async fn json_body(request: Request, limit: usize) -> Result<Value, Response> {
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !is_json {
        return Err(json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send `Content-Type: application/json`",
        ));
    }
    let body = read_body(request.into_body())
        .await
        .map_err(IntoResponse::into_response)?;
    if body.len() > limit {
        return Err(json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the request is larger than the server accepts for a program ({limit} bytes)"),
        ));
    }
    serde_json::from_slice(&body).map_err(|e| {
        json_error(
            StatusCode::BAD_REQUEST,
            &format!("the body is not valid JSON: {e}"),
        )
    })
}

fn field<'a>(body: &'a Value, name: &str) -> Result<&'a str, Box<Response>> {
    body.get(name).and_then(Value::as_str).ok_or_else(|| {
        Box::new(json_error(
            StatusCode::BAD_REQUEST,
            &format!("the body needs a string field `{name}`"),
        ))
    })
}

/// The optional `workers` field of a deployment: a whole number of engine workers.
fn workers_field(body: &Value) -> Result<Option<usize>, Box<Response>> {
    match body.get("workers") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| (1..=crate::parallel::MAX_WORKERS).contains(n))
            .map(Some)
            .ok_or_else(|| {
                Box::new(json_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &format!(
                        "`workers` must be a whole number from 1 to {}, got {v}",
                        crate::parallel::MAX_WORKERS
                    ),
                ))
            }),
    }
}

/// The status document of a pipeline.
pub fn pipeline_json(p: &Pipeline) -> Value {
    let status = p.shared.status();
    let mut out = json!({
        "name": p.name,
        "state": status.state.name(),
        "deployed_at": varpulis_program::time::format_rfc3339(
            i64::try_from(
                p.deployed_at
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            )
            .unwrap_or(i64::MAX),
        ),
        "uptime_seconds": (p.started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        "workers": p.running_workers.unwrap_or(1),
        "contexts": p.running_contexts,
    });
    if let PipelineState::Failed(reason) = &status.state {
        out["reason"] = json!(reason);
    }
    if let (Some(obj), Value::Object(detail)) = (out.as_object_mut(), status.detail) {
        obj.extend(detail);
    }
    if out.get("streams").is_none() {
        out["streams"] = json!(p
            .streams
            .iter()
            .map(|s| json!({ "name": s, "events_out": 0, "rate": 0.0 }))
            .collect::<Vec<_>>());
    }
    out["recent_errors"] = json!(p.shared.recent());
    out["tail_dropped"] = json!(p
        .shared
        .tail_dropped
        .load(std::sync::atomic::Ordering::Relaxed));
    out
}

async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

async fn healthz() -> Response {
    json_answer(StatusCode::OK, &json!({ "status": "alive" }))
}

async fn readyz(State(app): App) -> Response {
    let waiting = app.pipelines.ready();
    if waiting.is_empty() {
        json_answer(StatusCode::OK, &json!({ "status": "ready" }))
    } else {
        let not_ready: serde_json::Map<String, Value> =
            waiting.into_iter().map(|(n, s)| (n, json!(s))).collect();
        json_answer(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "status": "not ready", "pipelines": not_ready }),
        )
    }
}

async fn metrics(State(app): App) -> Response {
    let parts: Vec<(String, String)> = app
        .pipelines
        .each(|p| (p.name.clone(), p.shared.status().metrics));
    let mut text = super::metrics_merge::merge(&parts);
    let states = app
        .pipelines
        .each(|p| (p.name.clone(), p.shared.status().state));
    text.push_str("# HELP varpulis_pipeline_up Whether a pipeline is running (1) or not (0).\n# TYPE varpulis_pipeline_up gauge\n");
    for (name, state) in states {
        let up = u8::from(state == PipelineState::Running);
        text.push_str(&format!(
            "varpulis_pipeline_up{{pipeline=\"{}\"}} {up}\n",
            name.replace('\\', "\\\\").replace('"', "\\\"")
        ));
    }
    if let Some(handle) = app
        .listener
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
    {
        crate::metrics::render_listeners(&mut text, &[("server".to_string(), handle.stats())]);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn openapi() -> Response {
    json_answer(StatusCode::OK, &super::openapi::document())
}

async fn check(State(app): App, request: Request) -> Response {
    let body = match json_body(request, app.pipelines.max_program_bytes()).await {
        Ok(b) => b,
        Err(answer) => return answer,
    };
    let source = match field(&body, "source") {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    let name = body.get("name").and_then(Value::as_str).unwrap_or("check");
    let (diagnostics, _) = super::compile(name, source);
    let count = |severity: &str| {
        diagnostics
            .iter()
            .filter(|d| d.get("severity").and_then(Value::as_str) == Some(severity))
            .count()
    };
    json_answer(
        StatusCode::OK,
        &json!({
            "errors": count("error"),
            "warnings": count("warning"),
            "diagnostics": diagnostics,
        }),
    )
}

async fn list(State(app): App) -> Response {
    let pipelines = app.pipelines.each(pipeline_json);
    json_answer(StatusCode::OK, &json!({ "pipelines": pipelines }))
}

async fn show(State(app): App, Path(name): Path<String>) -> Response {
    match app.pipelines.with(&name, pipeline_json) {
        Some(v) => json_answer(StatusCode::OK, &v),
        None => unknown(&name),
    }
}

async fn create(State(app): App, request: Request) -> Response {
    let body = match json_body(request, app.pipelines.max_program_bytes()).await {
        Ok(b) => b,
        Err(answer) => return answer,
    };
    let (name, source) = match (field(&body, "name"), field(&body, "source")) {
        (Ok(n), Ok(s)) => (n.to_string(), s.to_string()),
        (Err(answer), _) | (_, Err(answer)) => return *answer,
    };
    let connectors = body.get("connectors").cloned();
    let workers = match workers_field(&body) {
        Ok(w) => w,
        Err(answer) => return *answer,
    };
    let pipelines = app.pipelines.clone();
    let deployed = blocking(move || {
        pipelines
            .deploy(&name, &source, connectors.as_ref(), workers)
            .map(|()| pipelines.with(&name, pipeline_json))
    })
    .await;
    match deployed {
        Ok(Ok(Some(v))) => json_answer(StatusCode::CREATED, &v),
        Ok(Ok(None)) => json_error(StatusCode::CONFLICT, "the pipeline was deleted meanwhile"),
        Ok(Err(e)) => deploy_error(&e),
        Err(answer) => answer,
    }
}

async fn update(State(app): App, Path(name): Path<String>, request: Request) -> Response {
    let body = match json_body(request, app.pipelines.max_program_bytes()).await {
        Ok(b) => b,
        Err(answer) => return answer,
    };
    let source = match field(&body, "source") {
        Ok(s) => s.to_string(),
        Err(answer) => return *answer,
    };
    let connectors = body.get("connectors").cloned();
    let workers = match workers_field(&body) {
        Ok(w) => w,
        Err(answer) => return *answer,
    };
    let pipelines = app.pipelines.clone();
    let updated = blocking(move || {
        pipelines
            .update(&name, &source, connectors.as_ref(), workers)
            .map(|report| {
                let mut v = pipelines
                    .with(&name, pipeline_json)
                    .unwrap_or_else(|| json!({}));
                v["update"] = report;
                v
            })
    })
    .await;
    match updated {
        Ok(Ok(v)) => json_answer(StatusCode::OK, &v),
        Ok(Err(e)) => deploy_error(&e),
        Err(answer) => answer,
    }
}

async fn remove(State(app): App, Path(name): Path<String>) -> Response {
    let pipelines = app.pipelines.clone();
    match blocking(move || pipelines.delete(&name)).await {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(e)) => deploy_error(&e),
        Err(answer) => answer,
    }
}

/// Runs blocking work (compiling, stopping a run) off the listener's threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the operation failed: {e}"),
        )
    })
}

async fn events(State(app): App, Path(name): Path<String>, request: Request) -> Response {
    let from = request
        .extensions()
        .get::<Peer>()
        .map_or_else(|| "?".to_string(), |p| p.0.to_string());
    let Some((injector, state, partitioned)) = app.pipelines.with(&name, |p| {
        (
            p.shared.injector(),
            p.shared.status().state,
            p.program
                .as_ref()
                .is_some_and(crate::groups::is_partitioned),
        )
    }) else {
        return unknown(&name);
    };
    if partitioned {
        // Not a passing state: the events of a per-partition pipeline come only from its
        // topic, where the group assigns each key's partition to one server.
        return json_error(
            StatusCode::CONFLICT,
            &format!(
                "pipeline `{name}` runs one engine per Kafka partition (state_per_partition) \
                 and reads events only from its topic: produce them there, keyed by the \
                 partition key"
            ),
        );
    }
    let Some(injector) = injector else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "pipeline `{name}` is {} and takes no events now",
                state.name()
            ),
        );
    };
    let body = match read_body(request.into_body()).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let items = match varpulis_connectors::http::source::split_body(&body) {
        Ok(items) => items,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &e),
    };
    let place = format!("POST /api/v1/pipelines/{name}/events from {from}");
    let deadline = Instant::now() + INJECT_WAIT;
    let total = items.len();
    for (i, item) in items.into_iter().enumerate() {
        let place = if total == 1 {
            place.clone()
        } else {
            format!("{place} item {}", i + 1)
        };
        let mut payload = item;
        loop {
            match injector.inject(payload, place.clone()) {
                Ok(()) => break,
                Err((varpulis_connectors::source::DeliverError::Full, back))
                    if Instant::now() < deadline =>
                {
                    payload = back;
                    varpulis_http::sleep(Duration::from_millis(5)).await;
                }
                Err(_) => {
                    return json_answer(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &json!({
                            "accepted": i,
                            "rejected": total - i,
                            "error": "the pipeline is busy or stopping; resend the rejected events",
                        }),
                    )
                }
            }
        }
    }
    json_answer(StatusCode::ACCEPTED, &json!({ "accepted": total }))
}

async fn tail(State(app): App, Path((name, stream)): Path<(String, String)>) -> Response {
    let receiver = app.pipelines.with(&name, |p| {
        p.streams.contains(&stream).then(|| p.shared.tail(&stream))
    });
    match receiver {
        None => unknown(&name),
        Some(None) => json_error(
            StatusCode::NOT_FOUND,
            &format!("pipeline `{name}` has no stream `{stream}`"),
        ),
        Some(Some(r)) => Sse::new(TailStream(r))
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
            .into_response(),
    }
}

/// A stream's output lines as Server-Sent Events, one event per output.
struct TailStream(tokio::sync::mpsc::Receiver<String>);

impl futures_core::Stream for TailStream {
    type Item = Result<Event, Infallible>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|line| line.map(|l| Ok(Event::default().data(l))))
    }
}

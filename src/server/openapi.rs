//! The OpenAPI 3 description of the server's API (`GET /api/v1/openapi.json`), built from
//! one table of routes that the router's test checks against.

use serde_json::{json, Map, Value};

/// One route: method, path (OpenAPI template), summary, success status, whether it reads a
/// JSON body, and whether it needs no key.
pub struct Route {
    /// `get`, `post`, `put`, `delete`.
    pub method: &'static str,
    /// The path, with `{name}` parameters.
    pub path: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// The status of a success.
    pub ok: u16,
    /// The JSON body it takes: `pipeline`, `source` or none.
    pub body: Option<&'static str>,
    /// Whether it answers without an API key.
    pub public: bool,
}

const fn route(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    ok: u16,
    body: Option<&'static str>,
    public: bool,
) -> Route {
    Route {
        method,
        path,
        summary,
        ok,
        body,
        public,
    }
}

/// Every route of the server.
pub const ROUTES: &[Route] = &[
    route("get", "/", "The status page (HTML).", 200, None, false),
    route(
        "get",
        "/healthz",
        "Alive: the process answers.",
        200,
        None,
        true,
    ),
    route(
        "get",
        "/readyz",
        "Ready: every pipeline is running (503 lists those that are not).",
        200,
        None,
        true,
    ),
    route(
        "get",
        "/metrics",
        "Prometheus metrics of every pipeline, labelled `pipeline`.",
        200,
        None,
        false,
    ),
    route(
        "get",
        "/api/v1/openapi.json",
        "This document.",
        200,
        None,
        false,
    ),
    route(
        "post",
        "/api/v1/check",
        "Diagnostics of a VPL program, without deploying it.",
        200,
        Some("source"),
        false,
    ),
    route(
        "get",
        "/api/v1/pipelines",
        "Every pipeline with its status.",
        200,
        None,
        false,
    ),
    route(
        "post",
        "/api/v1/pipelines",
        "Deploy a pipeline (409 on a duplicate name, 422 with diagnostics on program errors).",
        201,
        Some("pipeline"),
        false,
    ),
    route(
        "get",
        "/api/v1/pipelines/{name}",
        "One pipeline's status: state, sources, streams, checkpoints, recent errors.",
        200,
        None,
        false,
    ),
    route(
        "put",
        "/api/v1/pipelines/{name}",
        "Hot update: a new program takes over; unchanged streams keep their state. With the same sources it switches in place (`sources: kept`), else the pipeline restarts (`sources: restarted`, `restart_reason`). Answers the state report; 503 when a sink cannot confirm its records now (nothing changed).",
        200,
        Some("source"),
        false,
    ),
    route(
        "delete",
        "/api/v1/pipelines/{name}",
        "Stop a pipeline and delete it with its state.",
        204,
        None,
        false,
    ),
    route(
        "post",
        "/api/v1/pipelines/{name}/events",
        "Inject events: a JSON object, an array of objects or JSON lines.",
        202,
        None,
        false,
    ),
    route(
        "get",
        "/api/v1/pipelines/{name}/streams/{stream}/tail",
        "A stream's outputs as they happen (Server-Sent Events, one JSON object per event).",
        200,
        None,
        false,
    ),
];

fn parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            json!({
                "name": name,
                "in": "path",
                "required": true,
                "schema": { "type": "string" },
            })
        })
        .collect()
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
    })
}

/// The document.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for r in ROUTES {
        let mut responses = Map::new();
        let content_type = match r.path {
            "/" => "text/html",
            "/metrics" => "text/plain",
            p if p.ends_with("/tail") => "text/event-stream",
            _ => "application/json",
        };
        let ok = if r.ok == 204 {
            json!({ "description": "Done." })
        } else {
            json!({ "description": "Success.", "content": { content_type: {} } })
        };
        responses.insert(r.ok.to_string(), ok);
        if !r.public {
            responses.insert(
                "401".into(),
                error_response("No API key, or not a valid one."),
            );
            if r.method != "get" {
                responses.insert("403".into(), error_response("A read key may only read."));
            }
        }
        if r.path.contains("{name}") {
            responses.insert(
                "404".into(),
                error_response("No such pipeline (or stream)."),
            );
        }
        if r.body.is_some() || r.path.ends_with("/events") {
            responses.insert("400".into(), error_response("Malformed request body."));
            responses.insert("413".into(), error_response("Request body too large."));
        }
        if r.body.is_some() {
            responses.insert("415".into(), error_response("Not `application/json`."));
        }
        match (r.method, r.path) {
            ("post", "/api/v1/pipelines") => {
                responses.insert(
                    "409".into(),
                    error_response("A pipeline of that name exists."),
                );
                responses.insert(
                    "422".into(),
                    error_response("The program has errors (with `diagnostics`)."),
                );
            }
            ("put", _) => {
                responses.insert(
                    "422".into(),
                    error_response("The new program has errors; the running one is unchanged."),
                );
            }
            (_, "/readyz") => {
                responses.insert(
                    "503".into(),
                    error_response("Some pipeline is not running."),
                );
            }
            (_, p) if p.ends_with("/events") => {
                responses.insert(
                    "409".into(),
                    error_response("A per-partition pipeline: its Kafka topic is its only source."),
                );
                responses.insert(
                    "503".into(),
                    error_response(
                        "The pipeline is not running, or busy: resend the rejected events.",
                    ),
                );
            }
            _ => {}
        }
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{}{}", r.method, r.path.replace(['/', '{', '}', '.'], "_")),
            "parameters": parameters(r.path),
            "responses": responses,
        });
        if r.public {
            op["security"] = json!([]);
        }
        match r.body {
            Some("pipeline") => {
                op["requestBody"] = json!({
                    "required": true,
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/NewPipeline" } } },
                });
            }
            Some(_) => {
                op["requestBody"] = json!({
                    "required": true,
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Program" } } },
                });
            }
            None if r.path.ends_with("/events") => {
                op["requestBody"] = json!({
                    "required": true,
                    "content": {
                        "application/json": { "schema": {} },
                        "application/x-ndjson": { "schema": { "type": "string" } },
                    },
                });
            }
            None => {}
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Varpulis server API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Deploy, inspect, update and feed Varpulis pipelines (docs/SERVER.md).",
        },
        "paths": paths,
        "security": [ { "bearer": [] } ],
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": { "error": { "type": "string" } },
                },
                "NewPipeline": {
                    "type": "object",
                    "required": ["name", "source"],
                    "properties": {
                        "name": { "type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$" },
                        "source": { "type": "string", "description": "The VPL program." },
                        "connectors": { "$ref": "#/components/schemas/ConnectorSettings" },
                        "workers": { "type": "integer", "minimum": 1, "maximum": 64, "description": "Engine workers, routed by partition key (default: the program's .concurrent(workers: N), else one engine). A PUT without it keeps the deployed setting; another count restarts the pipeline without its state." },
                    },
                },
                "Program": {
                    "type": "object",
                    "required": ["source"],
                    "properties": {
                        "source": { "type": "string", "description": "The VPL program." },
                        "connectors": { "$ref": "#/components/schemas/ConnectorSettings" },
                        "workers": { "type": "integer", "minimum": 1, "maximum": 64, "description": "Engine workers, routed by partition key (default: the program's .concurrent(workers: N), else one engine). A PUT without it keeps the deployed setting; another count restarts the pipeline without its state." },
                    },
                },
                "ConnectorSettings": {
                    "type": "object",
                    "description": "Parameters that override or add to the program's connectors, by connector name: {\"Out\": {\"path\": \"prod.jsonl\"}}.",
                    "additionalProperties": { "type": "object" },
                },
            },
        },
    })
}

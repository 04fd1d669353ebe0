//! The host's side of `.enrich` (docs/LANGUAGE.md#enrich,
//! docs/DESIGN.md#enrich): how the engine's lookups are answered.
//!
//! - `run` (and `varpulis server`): [`live::LiveEnricher`], real lookups on
//!   `http` (`http.rs`), `redis` (`redis.rs`) and `postgres`/`database`
//!   (`postgres.rs`) connectors by a pool of
//!   worker threads, with a bounded cache and per-lookup timeouts;
//!   `--enrich-record FILE` writes every answer to a replay file.
//! - `simulate` and `test`: no network. [`replay::ReplayEnricher`] answers
//!   from a replay file (`--enrich-replay FILE`); without one every lookup
//!   fails with the fallback ([`varpulis_vm::enrich::Unanswered`]).

pub mod cache;
pub mod http;
pub mod live;
pub mod postgres;
pub mod record;
pub mod redis;
pub mod replay;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use varpulis_program::{ConfigValue, ConnectorDef, OpSpec, Program, ValueMap};
use varpulis_vm::enrich::{Enricher, Lookup};

/// Where the answers to `.enrich` lookups come from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum EnrichMode {
    /// No lookups: each fails with the fallback (status `error`).
    #[default]
    Offline,
    /// Answers read from a replay file (JSON lines).
    Replay(PathBuf),
    /// Real lookups on the connectors, optionally recorded to a replay file.
    Live {
        /// Where answers are recorded, if anywhere.
        record: Option<PathBuf>,
    },
}

/// Latency histogram bounds, in milliseconds.
pub const LATENCY_BUCKETS_MS: &[u64] = &[1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

/// Lookup counters of one connector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectorCounts {
    /// Lookups by status (`ok`, `cached`, `error`, `timeout`).
    pub by_status: BTreeMap<&'static str, u64>,
    /// Lookups per latency bucket ([`LATENCY_BUCKETS_MS`], then +Inf).
    pub buckets: Vec<u64>,
    /// Sum of latencies, ms.
    pub latency_sum_ms: u64,
}

/// `.enrich` counters of a job, by connector name (exported by `--metrics`
/// as `varpulis_enrich_*`).
#[derive(Debug, Default)]
pub struct EnrichMetrics {
    /// Per connector.
    pub connectors: Mutex<BTreeMap<String, ConnectorCounts>>,
    /// Batches asked (one per engine step reaching an `.enrich`).
    pub batches: AtomicU64,
}

impl EnrichMetrics {
    /// Counts one lookup of connector `name`.
    pub fn count(&self, name: &str, l: &Lookup) {
        let mut m = self.connectors.lock().unwrap_or_else(|e| e.into_inner());
        let c = m.entry(name.to_string()).or_default();
        *c.by_status.entry(l.status.as_str()).or_default() += 1;
        if c.buckets.is_empty() {
            c.buckets = vec![0; LATENCY_BUCKETS_MS.len() + 1];
        }
        let b = LATENCY_BUCKETS_MS
            .iter()
            .position(|&ub| l.latency_ms <= ub)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        if let Some(n) = c.buckets.get_mut(b) {
            *n += 1;
        }
        c.latency_sum_ms = c.latency_sum_ms.saturating_add(l.latency_ms);
    }

    /// Adds counters taken from another job (a hot update's predecessor).
    pub fn add(&self, other: &BTreeMap<String, ConnectorCounts>) {
        let mut m = self.connectors.lock().unwrap_or_else(|e| e.into_inner());
        for (name, o) in other {
            let c = m.entry(name.clone()).or_default();
            for (status, n) in &o.by_status {
                *c.by_status.entry(status).or_default() += n;
            }
            if c.buckets.len() < o.buckets.len() {
                c.buckets.resize(o.buckets.len(), 0);
            }
            for (b, n) in c.buckets.iter_mut().zip(&o.buckets) {
                *b += n;
            }
            c.latency_sum_ms = c.latency_sum_ms.saturating_add(o.latency_sum_ms);
        }
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> BTreeMap<String, ConnectorCounts> {
        self.connectors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The enricher for `program` in `mode`, the counters it keeps and where
/// its warnings go.
pub fn enricher(
    program: &Program,
    mode: &EnrichMode,
    metrics: Arc<EnrichMetrics>,
    warnings: Arc<Mutex<Vec<String>>>,
) -> anyhow::Result<Option<Box<dyn Enricher>>> {
    if sites(program).is_empty() {
        return Ok(None);
    }
    Ok(match mode {
        EnrichMode::Offline => {
            let mut w = warnings.lock().unwrap_or_else(|e| e.into_inner());
            w.push(
                "warning: no enrich replay file (--enrich-replay): every `.enrich` lookup \
                 fails with its fallback (status error)"
                    .to_string(),
            );
            None
        }
        EnrichMode::Replay(path) => Some(Box::new(replay::ReplayEnricher::open(path, warnings)?)),
        EnrichMode::Live { record } => {
            let recorder = match record {
                Some(p) => Some(Arc::new(Mutex::new(record::Recorder::create(p)?))),
                None => None,
            };
            Some(Box::new(live::LiveEnricher::new(
                program, metrics, recorder, warnings,
            )?))
        }
    })
}

/// The `.enrich` sites of a program: connector and timeout (the largest
/// timeout when a connector serves several sites).
pub fn sites(program: &Program) -> Vec<(u32, Duration)> {
    let mut out: Vec<(u32, Duration)> = Vec::new();
    for s in &program.streams {
        for op in &s.ops {
            if let OpSpec::Enrich(e) = op {
                let t = Duration::from_nanos(u64::try_from(e.timeout).unwrap_or(0));
                match out.iter_mut().find(|(c, _)| *c == e.connector) {
                    Some((_, d)) => *d = (*d).max(t),
                    None => out.push((e.connector, t)),
                }
            }
        }
    }
    out
}

/// The backend answering lookups on connector `def`.
pub fn backend(def: &ConnectorDef, timeout: Duration) -> anyhow::Result<Arc<dyn live::Backend>> {
    Ok(match &*def.kind {
        "http" => Arc::new(http::HttpBackend::new(def, timeout)?),
        "redis" => Arc::new(redis::RedisBackend::new(def, timeout)?),
        "postgres" | "database" => Arc::new(postgres::PostgresBackend::new(def, timeout)?),
        other => anyhow::bail!(
            "connector `{}`: `{other}` connectors cannot answer `.enrich` lookups",
            def.name
        ),
    })
}

/// A text parameter of a connector, with `${NAME}` and `${file:PATH}`
/// expanded (and the expanded values registered as secrets).
pub(crate) fn text_param(def: &ConnectorDef, name: &str) -> anyhow::Result<Option<String>> {
    let Some(text) = def
        .params
        .iter()
        .find(|(k, _)| &**k == name)
        .and_then(|(_, v)| v.as_text())
    else {
        return Ok(None);
    };
    varpulis_connectors::substitute(text)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("connector `{}`: `{name}`: {e}", def.name))
}

/// The text a key is looked up by: strings as they are, numbers and
/// booleans as written, anything else as JSON.
pub fn key_text(v: &varpulis_program::Value) -> String {
    use varpulis_program::Value;
    match v {
        Value::Str(s) => s.to_string(),
        Value::Int(n) => n.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_json().to_string(),
    }
}

/// A non-negative integer parameter of a connector.
pub(crate) fn int_param(def: &ConnectorDef, name: &str) -> Option<usize> {
    def.params
        .iter()
        .find(|(k, _)| &**k == name)
        .and_then(|(_, v)| match v {
            ConfigValue::Int(n) => usize::try_from(*n).ok(),
            _ => None,
        })
}

/// `headers: ["Name: value", ...]` of a connector.
pub(crate) fn header_params(def: &ConnectorDef) -> anyhow::Result<Vec<(String, String)>> {
    let Some((_, v)) = def.params.iter().find(|(k, _)| &**k == "headers") else {
        return Ok(Vec::new());
    };
    let items: Vec<&ConfigValue> = match v {
        ConfigValue::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    items
        .into_iter()
        .map(|i| {
            let text = varpulis_connectors::substitute(i.as_text().unwrap_or_default())
                .map_err(|e| anyhow::anyhow!("connector `{}`: `headers`: {e}", def.name))?;
            match text.split_once(':') {
                Some((n, v)) if !n.trim().is_empty() => {
                    Ok((n.trim().to_string(), v.trim().to_string()))
                }
                // The value may be a secret: only the shape is named.
                _ => anyhow::bail!(
                    "connector `{}`: a header must read \"Name: value\"",
                    def.name
                ),
            }
        })
        .collect()
}

/// The fields of a JSON object answer.
pub(crate) fn object_fields(json: &serde_json::Value) -> Result<Arc<ValueMap>, String> {
    let serde_json::Value::Object(members) = json else {
        return Err("the answer is not a JSON object".into());
    };
    Ok(Arc::new(
        members
            .iter()
            .map(|(k, v)| (Arc::from(k.as_str()), varpulis_program::Value::from_json(v)))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(params: Vec<(&str, ConfigValue)>) -> ConnectorDef {
        ConnectorDef {
            name: "Users".into(),
            kind: "http".into(),
            params: params.into_iter().map(|(k, v)| (k.into(), v)).collect(),
            span: varpulis_program::SpanId::NONE,
        }
    }

    #[test]
    fn parameters_expand_the_environment_and_name_the_place_on_errors() {
        let d = def(vec![(
            "url",
            ConfigValue::Str("http://h/${VARPULIS_SURELY_UNSET_ENRICH_VAR}/{key}".into()),
        )]);
        let e = text_param(&d, "url").expect_err("missing variable");
        let e = format!("{e:#}");
        assert!(e.contains("`Users`") && e.contains("`url`"), "{e}");
        let d = def(vec![(
            "headers",
            ConfigValue::Array(vec![ConfigValue::Str("X-Key: abc".into())]),
        )]);
        assert_eq!(
            header_params(&d).expect("headers"),
            [("X-Key".to_string(), "abc".to_string())]
        );
        let d = def(vec![("headers", ConfigValue::Str("no colon".into()))]);
        assert!(header_params(&d).is_err());
    }

    #[test]
    fn metrics_put_latencies_in_their_buckets() {
        let m = EnrichMetrics::default();
        m.count(
            "U",
            &Lookup::failed(varpulis_vm::enrich::EnrichStatus::Timeout, 7000),
        );
        m.count(
            "U",
            &Lookup::failed(varpulis_vm::enrich::EnrichStatus::Error, 1),
        );
        let c = &m.snapshot()["U"];
        assert_eq!(c.buckets.first(), Some(&1));
        assert_eq!(c.buckets.last(), Some(&1), "over 5 s: +Inf only");
        assert_eq!(c.latency_sum_ms, 7001);
        let next = EnrichMetrics::default();
        next.count(
            "U",
            &Lookup::failed(varpulis_vm::enrich::EnrichStatus::Error, 1),
        );
        next.add(&m.snapshot());
        let c = &next.snapshot()["U"];
        assert_eq!(c.by_status.get("error"), Some(&2));
        assert_eq!(c.buckets.first(), Some(&2));
        assert_eq!(c.latency_sum_ms, 7002);
    }
}

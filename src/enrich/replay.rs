//! `--enrich-replay FILE`: `.enrich` answers read from JSON lines
//!
//! ```text
//! {"connector":"Users","key":"u1","fields":{"tier":"gold"},"status":"ok","latency_ms":3}
//! ```
//!
//! so that `simulate` and `test` give the same output on every run, without
//! network. `status` defaults to `ok` and `latency_ms` to 0; a later line
//! for the same connector and key replaces an earlier one. A key the file
//! does not hold fails (status `error`, the fallback) with a warning naming
//! the connector and the key.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use serde::Deserialize;
use varpulis_program::Value;
use varpulis_vm::enrich::{EnrichStatus, Enricher, Lookup, LookupRequest};

use super::key_text;

/// One line of a replay file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    connector: String,
    key: serde_json::Value,
    #[serde(default)]
    fields: Option<serde_json::Value>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    latency_ms: u64,
}

/// Answers from a replay file.
pub struct ReplayEnricher {
    answers: HashMap<(String, String), Lookup>,
    /// Keys already reported missing (each is reported once).
    missing: BTreeSet<(String, String)>,
    warnings: Arc<Mutex<Vec<String>>>,
}

impl ReplayEnricher {
    /// Reads the replay file at `path`; a malformed line is an error naming
    /// it.
    pub fn open(path: &Path, warnings: Arc<Mutex<Vec<String>>>) -> anyhow::Result<ReplayEnricher> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the enrich replay file {}", path.display()))?;
        let mut r = ReplayEnricher::parse(&text)
            .map_err(|e| anyhow::anyhow!("enrich replay file {}: {e}", path.display()))?;
        r.warnings = warnings;
        Ok(r)
    }

    /// Reads replay lines from `text`.
    pub fn parse(text: &str) -> Result<ReplayEnricher, String> {
        let mut answers = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            if raw.trim().is_empty() {
                continue;
            }
            let line: Line =
                serde_json::from_str(raw).map_err(|e| format!("line {}: {e}", i + 1))?;
            let status = match line.status.as_deref() {
                None => EnrichStatus::Ok,
                Some(s) => EnrichStatus::parse(s).ok_or_else(|| {
                    format!(
                        "line {}: status {s:?} is not one of ok, cached, error, timeout",
                        i + 1
                    )
                })?,
            };
            let fields = match &line.fields {
                None | Some(serde_json::Value::Null) => None,
                Some(j) => Some(
                    super::object_fields(j)
                        .map_err(|_| format!("line {}: `fields` must be a JSON object", i + 1))?,
                ),
            };
            let key = key_text(&Value::from_json(&line.key));
            answers.insert(
                (line.connector, key),
                Lookup {
                    fields,
                    status,
                    latency_ms: line.latency_ms,
                },
            );
        }
        Ok(ReplayEnricher {
            answers,
            missing: BTreeSet::new(),
            warnings: Arc::default(),
        })
    }
}

impl Enricher for ReplayEnricher {
    fn lookup(&mut self, request: &LookupRequest<'_>, keys: &[Value]) -> Vec<Lookup> {
        keys.iter()
            .map(|k| {
                let id = (request.name.to_string(), key_text(k));
                match self.answers.get(&id) {
                    Some(l) => l.clone(),
                    None => {
                        if self.missing.len() < 1000 && self.missing.insert(id.clone()) {
                            let mut w = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
                            w.push(format!(
                                "warning: the enrich replay file has no answer for key {} of \
                                 connector `{}`: status error, fallback used",
                                k.to_json(),
                                id.0
                            ));
                        }
                        Lookup::failed(EnrichStatus::Error, 0)
                    }
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> LookupRequest<'static> {
        LookupRequest {
            connector: 0,
            name: "Users",
            fields: &[],
            timeout: 1,
            cache_ttl: None,
        }
    }

    #[test]
    fn replay_answers_known_keys_and_fails_unknown_ones_with_a_warning() {
        let mut r = ReplayEnricher::parse(
            "{\"connector\":\"Users\",\"key\":\"u1\",\"fields\":{\"tier\":\"gold\"},\"latency_ms\":3}\n\
             {\"connector\":\"Users\",\"key\":7,\"status\":\"timeout\"}\n",
        )
        .expect("parses");
        let got = r.lookup(
            &request(),
            &[Value::str("u1"), Value::Int(7), Value::str("u9")],
        );
        assert_eq!(got[0].status, EnrichStatus::Ok);
        assert_eq!(got[0].latency_ms, 3);
        assert_eq!(
            got[0].fields.as_ref().and_then(|m| m.get("tier")).cloned(),
            Some(Value::str("gold"))
        );
        assert_eq!(got[1].status, EnrichStatus::Timeout);
        assert_eq!(got[2].status, EnrichStatus::Error);
        let w = r.warnings.lock().expect("lock");
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("\"u9\""), "{w:?}");
    }

    #[test]
    fn a_malformed_replay_line_is_reported_with_its_number() {
        let e = ReplayEnricher::parse("\n{\"connector\":\"U\",\"key\":1,\"status\":\"maybe\"}")
            .err()
            .expect("refused");
        assert!(e.starts_with("line 2:"), "{e}");
    }
}

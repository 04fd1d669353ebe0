//! `run --enrich-record FILE`: every answer a live run gets, as one JSON
//! line in the replay format ([`super::replay`]), so that real lookups can
//! become a replay file for `simulate` and `test`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use varpulis_program::Value;
use varpulis_vm::enrich::Lookup;

/// Writes lookups as replay lines.
pub struct Recorder {
    out: BufWriter<File>,
    failed: bool,
}

impl Recorder {
    /// Creates (truncates) the file at `path`.
    pub fn create(path: &Path) -> anyhow::Result<Recorder> {
        let f = File::create(path)
            .with_context(|| format!("cannot create the enrich record file {}", path.display()))?;
        Ok(Recorder {
            out: BufWriter::new(f),
            failed: false,
        })
    }

    /// Records one lookup (cache hits are recorded as `ok`: a replay has no
    /// cache to hit).
    pub fn record(&mut self, connector: &str, key: &Value, l: &Lookup) {
        if self.failed {
            return;
        }
        let status = match l.status {
            varpulis_vm::enrich::EnrichStatus::Cached => "ok",
            s => s.as_str(),
        };
        let fields = l.fields.as_ref().map(|m| {
            serde_json::Value::Object(
                m.iter()
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect(),
            )
        });
        let line = serde_json::json!({
            "connector": connector,
            "key": key.to_json(),
            "fields": fields,
            "status": status,
            "latency_ms": l.latency_ms,
        });
        // A full disk stops recording rather than the run.
        if writeln!(self.out, "{line}")
            .and_then(|()| self.out.flush())
            .is_err()
        {
            self.failed = true;
        }
    }
}

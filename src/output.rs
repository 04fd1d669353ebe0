//! How engine outputs leave the process: one JSON object per line, or a
//! readable table per stream.
//!
//! A JSON output line is `{"stream": S, "event_type": T, "timestamp":
//! RFC3339, <fields in emit order>}`. It is written straight into a buffer
//! (no intermediate map) because `run` writes one per output event.
//!
//! A live run with `--state-dir` writes `--output FILE` exactly once: every checkpoint flushes
//! and syncs the file and records its length ([`OutputFile::barrier`]); a restart from that
//! checkpoint truncates the file back to it ([`OutputFile::open`]) before the replay writes
//! again. Standard output cannot be taken back: there outputs are at least once.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use varpulis_program::time::{format_rfc3339, write_rfc3339};
use varpulis_vm::Output;

/// Where a checkpoint left the `--output` file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputMark {
    /// The file, as given on the command line.
    pub path: PathBuf,
    /// Its length when the checkpoint was taken.
    pub len: u64,
}

/// The `--output FILE` of a run: buffered, appended, and synced at checkpoints.
pub struct OutputFile {
    path: PathBuf,
    file: BufWriter<File>,
}

impl OutputFile {
    /// Opens `path` for the run. With the mark of the checkpoint a restart resumes from, the
    /// file keeps what that checkpoint covers and loses the rest (which the replay writes
    /// again); otherwise it starts empty. A file shorter than the mark is an error: it is not
    /// the output the checkpoint covers.
    pub fn open(path: &Path, resume: Option<&OutputMark>) -> anyhow::Result<OutputFile> {
        use anyhow::Context;
        let cannot = || format!("cannot write `{}`", path.display());
        let resume = resume.filter(|m| m.path == path);
        let file = match resume {
            None => File::create(path).with_context(cannot)?,
            Some(mark) => {
                let file = OpenOptions::new()
                    .append(true)
                    .open(path)
                    .with_context(|| {
                        format!(
                            "the checkpoint covers the first {} bytes of `{}`, which cannot be \
                             opened; put it back, or remove the state directory to start afresh",
                            mark.len,
                            path.display()
                        )
                    })?;
                let len = file.metadata().with_context(cannot)?.len();
                if len < mark.len {
                    anyhow::bail!(
                        "`{}` has {len} bytes but the checkpoint covers {} (was it edited?); \
                         remove the state directory to start afresh",
                        path.display(),
                        mark.len
                    );
                }
                file.set_len(mark.len)
                    .and_then(|()| file.sync_data())
                    .with_context(|| {
                        format!(
                            "cannot truncate `{}` back to the checkpoint ({} bytes)",
                            path.display(),
                            mark.len
                        )
                    })?;
                file
            }
        };
        Ok(OutputFile {
            path: path.to_path_buf(),
            file: BufWriter::new(file),
        })
    }

    /// Flushes and syncs the file: everything written so far is durable. Returns the mark a
    /// checkpoint keeps.
    pub fn barrier(&mut self) -> io::Result<OutputMark> {
        self.file.flush()?;
        let file = self.file.get_ref();
        file.sync_data()?;
        Ok(OutputMark {
            path: self.path.clone(),
            len: file.metadata()?.len(),
        })
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Appends `output` as one JSON object (no newline) to `buf`.
pub fn write_json(buf: &mut Vec<u8>, output: &Output) {
    buf.extend_from_slice(b"{\"stream\":");
    write_json_str(buf, &output.stream);
    buf.extend_from_slice(b",\"event_type\":");
    write_members(buf, output);
}

/// Appends `output` as a sink payload (docs/LANGUAGE.md#to-sinks): `{"event_type": T,
/// "timestamp": RFC3339, <fields>}`, without the `stream` key.
pub fn write_json_sink(buf: &mut Vec<u8>, output: &Output) {
    buf.extend_from_slice(b"{\"event_type\":");
    write_members(buf, output);
}

/// Writes the event type's value, the timestamp and the fields, and closes the object. Every
/// value is encoded straight from the engine's value into `buf` (no JSON tree in between).
fn write_members(buf: &mut Vec<u8>, output: &Output) {
    write_json_str(buf, &output.event_type);
    buf.extend_from_slice(b",\"timestamp\":\"");
    write_rfc3339(buf, output.time);
    buf.push(b'"');
    for (name, value) in &output.fields {
        if matches!(name.as_ref(), "stream" | "event_type" | "timestamp") {
            // An emitted field with a reserved name would make the object
            // ambiguous; the envelope wins and the field is prefixed.
            buf.extend_from_slice(b",\"_");
            buf.extend_from_slice(name.as_bytes());
            buf.extend_from_slice(b"\":");
        } else {
            buf.push(b',');
            write_json_str(buf, name);
            buf.push(b':');
        }
        value.write_json(buf);
    }
    buf.push(b'}');
}

/// The output as a JSON object, keys in output order.
pub fn to_json(output: &Output) -> serde_json::Map<String, serde_json::Value> {
    let mut buf = Vec::new();
    write_json(&mut buf, output);
    match serde_json::from_slice(&buf) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

fn write_json_str(buf: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *buf, s);
}

/// Writes outputs grouped per stream as aligned tables, streams in order of
/// their first output.
pub fn write_tables(w: &mut dyn Write, outputs: &[Output]) -> io::Result<()> {
    let mut streams: Vec<&str> = Vec::new();
    for o in outputs {
        if !streams.contains(&o.stream.as_ref()) {
            streams.push(&o.stream);
        }
    }
    for (i, stream) in streams.iter().enumerate() {
        let rows: Vec<&Output> = outputs
            .iter()
            .filter(|o| o.stream.as_ref() == *stream)
            .collect();
        let mut columns: Vec<String> = vec!["timestamp".into()];
        for o in &rows {
            for (name, _) in &o.fields {
                if !columns.iter().any(|c| c == name.as_ref()) {
                    columns.push(name.to_string());
                }
            }
        }
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|o| {
                columns
                    .iter()
                    .map(|c| {
                        if c == "timestamp" {
                            return format_rfc3339(o.time);
                        }
                        o.fields
                            .iter()
                            .find(|(n, _)| n.as_ref() == c)
                            .map(|(_, v)| match v.to_json() {
                                serde_json::Value::String(s) => s,
                                j => j.to_string(),
                            })
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .collect();
        let widths: Vec<usize> = columns
            .iter()
            .enumerate()
            .map(|(c, name)| {
                cells
                    .iter()
                    .map(|r| r[c].chars().count())
                    .max()
                    .unwrap_or(0)
                    .max(name.len())
            })
            .collect();
        if i > 0 {
            writeln!(w)?;
        }
        let n = rows.len();
        writeln!(w, "{stream} ({n} event{})", if n == 1 { "" } else { "s" })?;
        let line = |w: &mut dyn Write, row: &[String]| -> io::Result<()> {
            let padded: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(s, &wd)| format!("{s:<wd$}"))
                .collect();
            writeln!(w, "  {}", padded.join("  ").trim_end())
        };
        line(w, &columns)?;
        line(
            w,
            &widths.iter().map(|&wd| "-".repeat(wd)).collect::<Vec<_>>(),
        )?;
        for row in &cells {
            line(w, row)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use varpulis_program::Value;

    fn out(stream: &str, time: i64, fields: Vec<(&str, Value)>) -> Output {
        Output {
            stream: Arc::from(stream),
            event_type: Arc::from(stream),
            time,
            fields: fields.into_iter().map(|(n, v)| (Arc::from(n), v)).collect(),
        }
    }

    #[test]
    fn json_line_keeps_envelope_then_fields_in_emit_order() {
        let mut buf = Vec::new();
        write_json(
            &mut buf,
            &out(
                "Hot",
                1_500_000_000,
                vec![
                    ("zone", Value::str("a\"b")),
                    ("avg", Value::Float(3.0)),
                    ("n", Value::Int(2)),
                ],
            ),
        );
        assert_eq!(
            String::from_utf8_lossy(&buf),
            r#"{"stream":"Hot","event_type":"Hot","timestamp":"1970-01-01T00:00:01.500Z","zone":"a\"b","avg":3.0,"n":2}"#
        );
    }

    #[test]
    fn sink_payload_is_the_json_line_without_the_stream_member() {
        let o = out(
            "Hot",
            1_700_000_000_000_000_001,
            vec![("stream", Value::str("x")), ("v", Value::Float(f64::NAN))],
        );
        let (mut line, mut sink) = (Vec::new(), Vec::new());
        write_json(&mut line, &o);
        write_json_sink(&mut sink, &o);
        let line = String::from_utf8_lossy(&line);
        assert_eq!(
            String::from_utf8_lossy(&sink),
            line.replacen(r#""stream":"Hot","#, "", 1)
        );
        assert_eq!(
            String::from_utf8_lossy(&sink),
            r#"{"event_type":"Hot","timestamp":"2023-11-14T22:13:20.000000001Z","_stream":"x","v":null}"#
        );
    }

    #[test]
    fn reserved_field_names_are_prefixed_not_duplicated() {
        let mut buf = Vec::new();
        write_json(&mut buf, &out("S", 0, vec![("timestamp", Value::Int(5))]));
        assert!(String::from_utf8_lossy(&buf).ends_with(r#""_timestamp":5}"#));
    }

    #[test]
    fn tables_group_by_stream_with_union_of_columns() {
        let outputs = vec![
            out("A", 0, vec![("x", Value::Int(1))]),
            out("B", 0, vec![("y", Value::str("q"))]),
            out(
                "A",
                60_000_000_000,
                vec![("x", Value::Int(22)), ("z", Value::Bool(true))],
            ),
        ];
        let mut w = Vec::new();
        write_tables(&mut w, &outputs).expect("write to vec");
        insta::assert_snapshot!(String::from_utf8_lossy(&w));
    }
}

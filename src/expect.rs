//! Expected outputs written in a program's header, and their comparison with
//! what the engine produced.
//!
//! The corpus (`tests/corpus/run/`) and `varpulis test` share one format: a
//! block of JSON objects, one per line, each prefixed by `# `, between a
//! `# expect:` line and a `# end` line, anywhere before the first declaration.
//!
//! ```text
//! # tumbling 1m window
//! # expect:
//! # {"stream": "PerMinute", "timestamp": "1970-01-01T00:01:00Z", "n": 2}
//! # end
//! ```
//!
//! An expected object names the stream, optionally the timestamp and the
//! event type, and every emitted field. Keys it leaves out among `timestamp`
//! and `event_type` are not compared; every other key is.

use serde_json::{Map, Value};

/// One expected output event.
pub type Expected = Map<String, Value>;

/// Why an expectation block could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpectError {
    /// A line inside the block is not a JSON object.
    #[error("line {line}: expected a JSON object after `# `: {reason}")]
    BadLine {
        /// 1-based line number in the program file.
        line: usize,
        /// What the JSON parser said.
        reason: String,
    },
    /// `# expect:` without a closing `# end`.
    #[error("line {line}: `# expect:` block is not closed by `# end`")]
    Unclosed {
        /// 1-based line of the `# expect:` line.
        line: usize,
    },
}

/// Reads the `# expect:` block of a program; `Ok(None)` when it has none.
pub fn parse_expectations(source: &str) -> Result<Option<Vec<Expected>>, ExpectError> {
    let mut lines = source.lines().enumerate();
    let start = loop {
        match lines.next() {
            None => return Ok(None),
            Some((n, line)) if line.trim() == "# expect:" => break n + 1,
            Some(_) => {}
        }
    };
    let mut out = Vec::new();
    for (n, line) in lines {
        let trimmed = line.trim();
        if trimmed == "# end" {
            return Ok(Some(out));
        }
        let body = trimmed.strip_prefix('#').unwrap_or(trimmed).trim();
        if body.is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(body) {
            Ok(Value::Object(map)) => out.push(map),
            Ok(_) => {
                return Err(ExpectError::BadLine {
                    line: n + 1,
                    reason: "not an object".into(),
                })
            }
            Err(e) => {
                return Err(ExpectError::BadLine {
                    line: n + 1,
                    reason: e.to_string(),
                })
            }
        }
    }
    Err(ExpectError::Unclosed { line: start })
}

/// Projects an actual output onto the keys an expectation compares.
fn comparable(actual: &Map<String, Value>, expected: &Expected) -> Map<String, Value> {
    actual
        .iter()
        .filter(|(k, _)| {
            !((k.as_str() == "timestamp" || k.as_str() == "event_type")
                && !expected.contains_key(*k))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Whether two JSON values are equal, treating `3` and `3.0` as different
/// (an int that became a float is a real change) but ignoring key order.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x.is_f64() != y.is_f64() {
                return false;
            }
            match (x.as_f64(), y.as_f64()) {
                (Some(p), Some(q)) if x.is_f64() => {
                    (p - q).abs() <= 1e-9 * p.abs().max(q.abs()).max(1.0)
                }
                _ => x == y,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Compares actual outputs with expectations, in order. Returns `None` when
/// they agree, else a readable line diff (`-` expected only, `+` actual only).
pub fn diff(expected: &[Expected], actual: &[Map<String, Value>]) -> Option<String> {
    let same = expected.len() == actual.len()
        && expected
            .iter()
            .zip(actual)
            .all(|(e, a)| json_eq(&Value::Object(e.clone()), &Value::Object(comparable(a, e))));
    if same {
        return None;
    }
    let render = |m: &Map<String, Value>| serde_json::to_string(m).unwrap_or_default();
    let exp: Vec<String> = expected.iter().map(render).collect();
    let act: Vec<String> = actual
        .iter()
        .enumerate()
        .map(|(i, a)| {
            render(
                &expected
                    .get(i)
                    .map_or_else(|| a.clone(), |e| comparable(a, e)),
            )
        })
        .collect();
    let mut out = String::new();
    let width = exp.len().max(act.len());
    for i in 0..width {
        match (exp.get(i), act.get(i)) {
            (Some(e), Some(a)) if e == a => out.push_str(&format!("  {e}\n")),
            (e, a) => {
                if let Some(e) = e {
                    out.push_str(&format!("- {e}\n"));
                }
                if let Some(a) = a {
                    out.push_str(&format!("+ {a}\n"));
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(s: &str) -> Map<String, Value> {
        match serde_json::from_str(s) {
            Ok(Value::Object(m)) => m,
            other => panic!("test object {s}: {other:?}"),
        }
    }

    #[test]
    fn reads_block_between_expect_and_end() {
        let src = "# t\n# expect:\n# {\"stream\": \"A\", \"n\": 1}\n#\n# {\"stream\": \"B\"}\n# end\nevent X:\n    a: int\n";
        let got = parse_expectations(src).expect("valid block");
        assert_eq!(got.map(|v| v.len()), Some(2));
    }

    #[test]
    fn program_without_block_has_no_expectations() {
        assert_eq!(parse_expectations("event X:\n    a: int\n"), Ok(None));
    }

    #[test]
    fn unclosed_block_and_bad_json_are_reported_with_lines() {
        assert_eq!(
            parse_expectations("# expect:\n# {}\n"),
            Err(ExpectError::Unclosed { line: 1 })
        );
        assert!(matches!(
            parse_expectations("# expect:\n# {nope}\n# end\n"),
            Err(ExpectError::BadLine { line: 2, .. })
        ));
    }

    #[test]
    fn omitted_timestamp_and_event_type_are_not_compared() {
        let e = vec![obj(r#"{"stream": "A", "n": 1}"#)];
        let a = vec![obj(
            r#"{"stream": "A", "event_type": "A", "timestamp": "1970-01-01T00:00:00Z", "n": 1}"#,
        )];
        assert_eq!(diff(&e, &a), None);
    }

    #[test]
    fn int_and_float_differ_and_extra_outputs_show_in_diff() {
        let e = vec![obj(r#"{"stream": "A", "n": 1}"#)];
        let a = vec![
            obj(r#"{"stream": "A", "n": 1.0}"#),
            obj(r#"{"stream": "A", "n": 2}"#),
        ];
        let d = diff(&e, &a).expect("outputs differ");
        assert!(
            d.contains("- {\"n\":1,\"stream\":\"A\"}")
                || d.contains("- {\"stream\":\"A\",\"n\":1}"),
            "{d}"
        );
        assert!(d.contains("+ "), "{d}");
    }
}

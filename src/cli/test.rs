//! `varpulis test [PATH...]`: run rule tests and report pass/fail with a diff.
//!
//! A rule test is a `.vpl` program whose header holds the expected output
//! (a `# expect:` block, see [`crate::expect`]) and whose input events are
//! either a `NAME.evt` file beside it or a `# given:` block in the header
//! (`.evt` lines prefixed by `# `, closed by `# end`):
//!
//! ```text
//! # given:
//! # @0s Reading { sensor: "a", temp: 31.5 }
//! # end
//! # expect:
//! # {"stream": "Hot", "sensor": "a", "temp": 31.5}
//! # end
//! ```
//!
//! Directories are searched recursively for `.vpl` files with an
//! `# expect:` block. `--update` rewrites each block with the actual output.
//! A `NAME.enrich.jsonl` beside the test answers its `.enrich` lookups (the
//! replay format of `simulate --enrich-replay`); without one they fail with
//! their fallback.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::expect::{diff, parse_expectations};
use crate::input::{InputFormat, Records};
use crate::job::{Job, JobOptions};
use crate::output::to_json;

/// The result of one test file.
#[derive(Debug)]
enum Outcome {
    Pass,
    /// Outputs differ; the diff.
    Fail(String),
    /// The test could not run (program errors, bad header, missing events).
    Broken(String),
    /// `--update` rewrote the expectations.
    Updated,
}

/// Runs the tests under `paths`; exit 1 when any fails or is broken.
pub fn run(paths: &[PathBuf], update: bool, color: bool) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    for p in paths {
        collect(p, &mut files).with_context(|| format!("cannot read `{}`", p.display()))?;
    }
    files.sort();
    files.dedup();
    if files.is_empty() {
        eprintln!("error: no tests found (a test is a .vpl file with a `# expect:` block)");
        return Ok(ExitCode::FAILURE);
    }
    let mut stdout = std::io::stdout().lock();
    let (mut passed, mut failed) = (0usize, 0usize);
    for file in &files {
        let outcome = run_one(file, update, color);
        let name = file.display();
        match &outcome {
            Outcome::Pass => {
                passed += 1;
                writeln!(stdout, "PASS {name}")?;
            }
            Outcome::Updated => {
                passed += 1;
                writeln!(stdout, "UPDATED {name}")?;
            }
            Outcome::Fail(d) => {
                failed += 1;
                writeln!(stdout, "FAIL {name}\n  expected (-) vs actual (+):")?;
                for line in d.lines() {
                    writeln!(stdout, "  {line}")?;
                }
            }
            Outcome::Broken(why) => {
                failed += 1;
                writeln!(stdout, "ERROR {name}")?;
                for line in why.lines() {
                    writeln!(stdout, "  {line}")?;
                }
            }
        }
    }
    writeln!(stdout, "\n{passed} passed, {failed} failed")?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            let p = entry?.path();
            if p.is_dir() {
                collect(&p, out)?;
            } else if p.extension().is_some_and(|e| e == "vpl") && has_expect_block(&p) {
                out.push(p);
            }
        }
    } else {
        std::fs::metadata(path)?;
        out.push(path.to_path_buf());
    }
    Ok(())
}

fn has_expect_block(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.lines().any(|l| l.trim() == "# expect:"))
}

/// Reads a `# given:` block: the `.evt` lines it holds.
fn given_block(source: &str) -> Option<String> {
    let mut lines = source.lines().skip_while(|l| l.trim() != "# given:");
    lines.next()?;
    let mut out = String::new();
    for line in lines {
        let t = line.trim();
        if t == "# end" {
            return Some(out);
        }
        out.push_str(t.strip_prefix('#').unwrap_or(t).trim_start());
        out.push('\n');
    }
    None
}

fn run_one(file: &Path, update: bool, color: bool) -> Outcome {
    let source = match std::fs::read_to_string(file) {
        Ok(s) => s,
        Err(e) => return Outcome::Broken(format!("cannot read: {e}")),
    };
    let expected = match parse_expectations(&source) {
        Ok(Some(e)) => e,
        Ok(None) => return Outcome::Broken("no `# expect:` block".into()),
        Err(e) => return Outcome::Broken(e.to_string()),
    };
    let events = match given_block(&source) {
        Some(text) => text,
        None => {
            let evt = file.with_extension("evt");
            match std::fs::read_to_string(&evt) {
                Ok(t) => t,
                Err(_) => {
                    return Outcome::Broken(format!(
                        "no events: add `{}` or a `# given:` block",
                        evt.file_name()
                            .map(|n| n.to_string_lossy())
                            .unwrap_or_default()
                    ))
                }
            }
        }
    };
    let actual = match execute(file, &source, &events, color) {
        Ok(a) => a,
        Err(e) => return Outcome::Broken(e),
    };
    match diff(&expected, &actual) {
        None => Outcome::Pass,
        Some(_) if update => match rewrite(file, &source, &actual) {
            Ok(()) => Outcome::Updated,
            Err(e) => Outcome::Broken(format!("cannot update: {e}")),
        },
        Some(d) => Outcome::Fail(d),
    }
}

fn execute(
    file: &Path,
    source: &str,
    events: &str,
    color: bool,
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, String> {
    let mut compiler = varpulis_compiler::Compiler::new();
    let name = crate::job::load_with_imports(&mut compiler, file).map_err(|e| format!("{e:#}"))?;
    let program = compiler.program(&name).map_err(|diags| {
        varpulis_compiler::render::terminal::render(&name, source, &diags, color)
    })?;
    // `.enrich` lookups are answered by `NAME.enrich.jsonl` beside the test
    // when there is one (never by the network).
    let replay = file.with_extension("enrich.jsonl");
    let options = JobOptions {
        sinks: false,
        strict: true,
        enrich: if replay.is_file() {
            crate::enrich::EnrichMode::Replay(replay)
        } else {
            crate::enrich::EnrichMode::Offline
        },
        ..JobOptions::default()
    };
    let mut job = Job::new(program, options).map_err(|e| format!("{e:#}"))?;
    let mut outputs = Vec::new();
    for rec in Records::new(events.as_bytes(), InputFormat::Evt) {
        job.push_record(&rec, &mut outputs)
            .map_err(|p| format!("events: {p}"))?;
    }
    job.finish(&mut outputs).map_err(|e| format!("{e:#}"))?;
    Ok(outputs.iter().map(to_json).collect())
}

/// Replaces the `# expect:` block with the actual outputs, keeping
/// everything else byte for byte.
fn rewrite(
    file: &Path,
    source: &str,
    actual: &[serde_json::Map<String, serde_json::Value>],
) -> std::io::Result<()> {
    let mut out = String::with_capacity(source.len());
    let mut lines = source.split_inclusive('\n');
    for line in lines.by_ref() {
        out.push_str(line);
        if line.trim() == "# expect:" {
            break;
        }
    }
    for obj in actual {
        let mut obj = obj.clone();
        // The event type is the stream's name unless `.emit as T` says
        // otherwise; only keep it when it adds information.
        if obj.get("event_type") == obj.get("stream") {
            obj.shift_remove("event_type");
        }
        let mut line = String::from("# {");
        for (i, (k, v)) in obj.iter().enumerate() {
            if i > 0 {
                line.push_str(", ");
            }
            line.push_str(&serde_json::to_string(k).unwrap_or_default());
            line.push_str(": ");
            line.push_str(&serde_json::to_string(v).unwrap_or_default());
        }
        line.push_str("}\n");
        out.push_str(&line);
    }
    let mut in_old_block = true;
    for line in lines {
        if in_old_block {
            if line.trim() == "# end" {
                in_old_block = false;
                out.push_str(line);
            }
            continue;
        }
        out.push_str(line);
    }
    std::fs::write(file, out)
}

#[cfg(test)]
mod tests {
    use super::given_block;

    #[test]
    fn given_block_yields_evt_lines() {
        let src =
            "# t\n# given:\n# @0s A { x: 1 }\n#   @1s A { x: 2 }\n# end\nevent A:\n    x: int\n";
        assert_eq!(
            given_block(src).as_deref(),
            Some("@0s A { x: 1 }\n@1s A { x: 2 }\n")
        );
        assert_eq!(given_block("# given:\n# A {}\n"), None);
        assert_eq!(given_block("event A:\n    x: int\n"), None);
    }
}

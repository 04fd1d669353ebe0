//! The runtime corpus: every `tests/corpus/run/**/NAME.vpl` with its
//! `NAME.evt` is compiled, run, and compared with
//!
//! - the hand-checked `# expect:` block in the program's header, and
//! - an insta snapshot of the JSONL output (`tests/snapshots/`);
//!
//! then run again with a snapshot and restore of all engine state in the
//! middle of the input, which must give the same output.
//!
//! Cases under `tests/corpus/fixme/` are known bugs: they run too, and the
//! test fails if one of them starts passing (so it gets moved back).

use std::path::{Path, PathBuf};

use varpulis::expect::{diff, parse_expectations};
use varpulis::input::{InputFormat, InputRecord, Records};
use varpulis::job::{Job, JobOptions};
use varpulis::output::write_json;

/// Compiles `vpl`, runs `events`; with `split = Some(k)`, snapshots the
/// engine after `k` records and restores into a fresh job. Returns the
/// outputs as JSON lines.
fn run_case(vpl: &Path, events: &Path, split: Option<usize>) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(vpl).map_err(|e| format!("read {}: {e}", vpl.display()))?;
    let mut compiler = varpulis_compiler::Compiler::new();
    let name =
        varpulis::job::load_with_imports(&mut compiler, vpl).map_err(|e| format!("{e:#}"))?;
    let program = compiler.program(&name).map_err(|diags| {
        varpulis_compiler::render::terminal::render(&name, &text, &diags, false)
    })?;
    let options = JobOptions {
        sinks: false,
        ..JobOptions::default()
    };
    let input =
        std::fs::read_to_string(events).map_err(|e| format!("read {}: {e}", events.display()))?;
    let records: Vec<InputRecord> = Records::new(input.as_bytes(), InputFormat::Evt).collect();

    let mut job = Job::new(program.clone(), options.clone()).map_err(|e| format!("load: {e:#}"))?;
    let mut outputs = Vec::new();
    for (i, rec) in records.iter().enumerate() {
        if split == Some(i) {
            let bytes = job
                .engine()
                .snapshot()
                .map_err(|e| format!("snapshot: {e}"))?;
            let mut restored =
                Job::new(program.clone(), options.clone()).map_err(|e| format!("load: {e:#}"))?;
            restored
                .engine()
                .restore(&bytes)
                .map_err(|e| format!("restore: {e}"))?;
            job = restored;
        }
        job.push_record(rec, &mut outputs)
            .map_err(|p| p.to_string())?;
    }
    job.finish(&mut outputs)
        .map_err(|e| format!("finish: {e:#}"))?;
    Ok(outputs
        .iter()
        .map(|o| {
            let mut buf = Vec::new();
            write_json(&mut buf, o);
            String::from_utf8_lossy(&buf).into_owned()
        })
        .collect())
}

fn cases(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "vpl") && p.with_extension("evt").exists()
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Checks one case; `Err` describes every way it failed.
fn check_case(vpl: &Path) -> Result<(), String> {
    let events = vpl.with_extension("evt");
    let straight = run_case(vpl, &events, None)?;
    let mut problems = Vec::new();

    let text = std::fs::read_to_string(vpl).map_err(|e| e.to_string())?;
    match parse_expectations(&text) {
        Ok(Some(expected)) => {
            let actual: Vec<_> = straight
                .iter()
                .filter_map(|l| match serde_json::from_str(l) {
                    Ok(serde_json::Value::Object(m)) => Some(m),
                    _ => None,
                })
                .collect();
            if let Some(d) = diff(&expected, &actual) {
                problems.push(format!("output differs from the `# expect:` block:\n{d}"));
            }
        }
        Ok(None) => problems.push("no `# expect:` block".into()),
        Err(e) => problems.push(format!("bad `# expect:` block: {e}")),
    }

    let n = std::fs::read_to_string(&events)
        .map(|t| t.lines().count())
        .unwrap_or(0);
    for split in [n / 2, 1] {
        if split == 0 {
            continue;
        }
        match run_case(vpl, &events, Some(split)) {
            Ok(restored) if restored == straight => {}
            Ok(restored) => problems.push(format!(
                "snapshot + restore after record {split} changed the output:\n  straight: {straight:?}\n  restored: {restored:?}"
            )),
            Err(e) => problems.push(format!("snapshot + restore after record {split} failed: {e}")),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn runtime_corpus_matches_expectations_and_survives_restore() {
    let all = cases(&root().join("tests/corpus/run"));
    assert!(
        all.len() >= 60,
        "expected at least 60 runtime cases, found {}",
        all.len()
    );
    let mut failures = Vec::new();
    for vpl in &all {
        if let Err(e) = check_case(vpl) {
            let rel = vpl.strip_prefix(root()).unwrap_or(vpl);
            failures.push(format!("== {}\n{e}", rel.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus cases failed:\n\n{}",
        failures.len(),
        all.len(),
        failures.join("\n\n")
    );
}

#[test]
fn fixme_cases_still_fail() {
    for vpl in cases(&root().join("tests/corpus/fixme")) {
        assert!(
            check_case(&vpl).is_err(),
            "{} passes now: move it back to tests/corpus/run/",
            vpl.display()
        );
    }
}

#[test]
fn runtime_corpus_output_snapshots() {
    let dir = root().join("tests/corpus/run");
    for vpl in cases(&dir) {
        let Ok(lines) = run_case(&vpl, &vpl.with_extension("evt"), None) else {
            continue;
        };
        let rel = vpl.strip_prefix(&dir).unwrap_or(&vpl).with_extension("");
        let name = rel.display().to_string().replace(['/', '\\'], "__");
        insta::with_settings!({ snapshot_path => root().join("tests/snapshots/run"), prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(name, lines.join("\n"));
        });
    }
}

#[test]
fn examples_match_their_expectations() {
    for vpl in cases(&root().join("examples")) {
        check_case(&vpl).unwrap_or_else(|e| panic!("{}:\n{e}", vpl.display()));
    }
}

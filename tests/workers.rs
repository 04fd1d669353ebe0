//! Partition-parallel runs (`varpulis run --workers N`): for random inputs,
//! N = 1..4 engine shards give byte-identical output; programs that cannot
//! be split are refused with the stream and the reason.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output as ProcessOutput};

use proptest::prelude::*;
use varpulis::input::{InputFormat, Records};
use varpulis::job::{Job, JobOptions};
use varpulis::parallel::{self, Layout, OutputSink};
use varpulis_program::Program;
use varpulis_vm::Output;

/// Windows, aggregates and a sequence, all partitioned by `key`, plus
/// stateless streams (a filter on an unkeyed type and a stream derived from
/// a windowed one).
const PARTITIONED: &str = r#"
event A:
    key: str
    v: int

event B:
    key: str
    v: int

event Note:
    text: str

stream Tumble = A
    .partition_by(key)
    .window(10s)
    .aggregate(n: count(), total: sum(v))
    .emit(key: key, n: n, total: total)

stream Slide = A
    .partition_by(key, idle: 8s)
    .window(20s, sliding: 5s)
    .aggregate(hi: max(v), lo: min(v))
    .emit(key: key, hi: hi, lo: lo)

stream Sess = B
    .partition_by(key)
    .window(session: 7s)
    .aggregate(n: count(), avg: avg(v))
    .emit(key: key, n: n, avg: avg)

stream Pairs = A as a
    -> B where v > a.v as b
    .partition_by(key)
    .within(15s)
    .emit(key: a.key, first: a.v, second: b.v)

stream Big = Tumble
    .where(total > 20)
    .emit(key: key, total: total)

stream Loud = Note
    .where(text != "quiet")
    .emit(text: text)
"#;

fn compile(text: &str) -> Program {
    let mut compiler = varpulis_compiler::Compiler::new();
    compiler.set_file("test.vpl", text.to_string());
    compiler.program("test.vpl").unwrap_or_else(|diags| {
        panic!(
            "the test program compiles: {}",
            varpulis_compiler::render::terminal::render("test.vpl", text, &diags, false)
        )
    })
}

/// Collects merged JSON lines.
#[derive(Default)]
struct Lines(Vec<u8>);

impl OutputSink for Lines {
    fn outputs(&mut self, merged: Vec<(Output, Vec<u8>)>) -> std::io::Result<()> {
        for (_, bytes) in merged {
            self.0.extend_from_slice(&bytes);
            self.0.push(b'\n');
        }
        Ok(())
    }
}

fn options() -> JobOptions {
    JobOptions {
        sinks: false,
        ..JobOptions::default()
    }
}

/// The output of `events` (`.evt` text) on `workers` shards.
fn run_on(program: &Program, events: &str, workers: usize, batch: usize) -> String {
    let plan = if workers > 1 {
        parallel::plan(program).expect("the program can be split")
    } else {
        parallel::ShardPlan { keys: Vec::new() }
    };
    let mut job = Job::new(program.clone(), options()).expect("loads");
    let records = Records::new(events.as_bytes(), InputFormat::Evt);
    let layout = Layout {
        workers,
        batch,
        plan,
    };
    let mut out = Lines::default();
    let mut messages = Vec::new();
    let outcome = parallel::run(&mut job, records, &layout, &mut out, &mut messages).expect("runs");
    assert!(outcome.failed.is_none());
    String::from_utf8(out.0).expect("utf-8")
}

/// The output of one plain engine (the run without `--workers`), sorted.
fn sorted_single(program: &Program, events: &str) -> Vec<String> {
    let mut job = Job::new(program.clone(), options()).expect("loads");
    let mut outs = Vec::new();
    for rec in Records::new(events.as_bytes(), InputFormat::Evt) {
        job.push_record(&rec, &mut outs).expect("not strict");
    }
    job.finish(&mut outs).expect("finishes");
    let mut lines: Vec<String> = outs
        .iter()
        .map(|o| {
            let mut b = Vec::new();
            varpulis::output::write_json(&mut b, o);
            String::from_utf8(b).expect("utf-8")
        })
        .collect();
    lines.sort();
    lines
}

/// One random input line: a type, a key, a value and a time step that is
/// mostly forward, sometimes backward (late events).
fn arb_line() -> impl Strategy<Value = (u8, u8, i64, i64)> {
    (0u8..10, 0u8..6, 0i64..20, -3_000i64..4_000)
}

fn events_text(lines: &[(u8, u8, i64, i64)]) -> String {
    let mut t: i64 = 0;
    let mut text = String::new();
    for (ty, key, v, step) in lines {
        t = (t + step).max(0);
        let line = match ty {
            0..=4 => format!("@{t}ms A {{ key: \"k{key}\", v: {v} }}\n"),
            5..=8 => format!("@{t}ms B {{ key: \"k{key}\", v: {v} }}\n"),
            _ if *v % 3 == 0 => format!("@{t}ms Note {{ text: \"quiet\" }}\n"),
            _ => format!("@{t}ms Note {{ text: \"n{v}\" }}\n"),
        };
        text.push_str(&line);
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn outputs_do_not_depend_on_the_number_of_workers(
        lines in proptest::collection::vec(arb_line(), 0..150),
        batch in 1usize..40,
    ) {
        let program = compile(PARTITIONED);
        let events = events_text(&lines);
        let one = run_on(&program, &events, 1, batch);
        for n in 2..=4 {
            let many = run_on(&program, &events, n, batch);
            prop_assert_eq!(&many, &one, "{} workers", n);
        }
        // The canonical order only reorders: the same outputs as one engine.
        let mut merged: Vec<String> = one.lines().map(str::to_string).collect();
        merged.sort();
        prop_assert_eq!(merged, sorted_single(&program, &events));
    }
}

#[test]
fn a_fixed_input_produces_outputs_of_every_stream_kind() {
    // Guards the property test against a program that emits nothing.
    let program = compile(PARTITIONED);
    let lines: Vec<(u8, u8, i64, i64)> = (0..200)
        .map(|i| ((i * 7 % 10) as u8, (i % 5) as u8, i % 17, 700))
        .collect();
    let events = events_text(&lines);
    let out = run_on(&program, &events, 3, 16);
    for stream in ["Tumble", "Slide", "Sess", "Pairs", "Big", "Loud"] {
        assert!(
            out.contains(&format!("\"stream\":\"{stream}\"")),
            "no {stream} output in:\n{out}"
        );
    }
    assert_eq!(out, run_on(&program, &events, 1, 1024));
}

fn refusal(text: &str) -> String {
    parallel::plan(&compile(text))
        .expect_err("refused")
        .to_string()
}

#[test]
fn programs_whose_state_spans_keys_are_refused_naming_the_stream() {
    let global = "event A:\n    key: str\n    v: int\n\nstream All = A\n    .window(10s)\n    .aggregate(n: count())\n    .emit(n: n)\n";
    let why = refusal(global);
    assert!(why.contains("stream `All`"), "{why}");
    assert!(why.contains("partition_by"), "{why}");
    assert!(why.contains("--workers 1"), "{why}");

    let two_keys = "event A:\n    key: str\n    other: str\n    v: int\n\nstream X = A\n    .partition_by(key)\n    .window(10s)\n    .aggregate(n: count())\n    .emit(n: n)\n\nstream Y = A\n    .partition_by(other)\n    .window(10s)\n    .aggregate(n: count())\n    .emit(n: n)\n";
    let why = refusal(two_keys);
    assert!(
        why.contains("stream `Y`") && why.contains("stream `X`"),
        "{why}"
    );

    let distinct =
        "event A:\n    key: str\n\nstream D = A\n    .distinct(key)\n    .emit(key: key)\n";
    assert!(refusal(distinct).contains("stream `D`"));

    let derived = "event A:\n    key: str\n    v: int\n\nstream F = A\n    .where(v > 1)\n\nstream W = F\n    .partition_by(key)\n    .window(10s)\n    .aggregate(n: count())\n    .emit(n: n)\n";
    assert!(refusal(derived).contains("stream `W`"));

    let after_match = "event A:\n    key: str\n\nevent B:\n    key: str\n\nstream M = A as a\n    -> B as b\n    .partition_by(key)\n    .within(1m)\n    .window(1m)\n    .aggregate(n: count())\n    .emit(n: n)\n";
    assert!(refusal(after_match).contains("stream `M`"));

    let var = "var seen: int = 0\n\nevent A:\n    key: str\n\nstream S = A\n    .emit(key: key)\n";
    assert!(refusal(var).contains("var `seen`"));
}

// The command line.

fn varpulis(args: &[&str], cwd: &Path) -> ProcessOutput {
    Command::new(env!("CARGO_BIN_EXE_varpulis"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .expect("run the varpulis binary")
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).expect("create test file");
    f.write_all(body.as_bytes()).expect("write test file");
    p
}

#[test]
fn run_with_workers_prints_the_same_lines_for_every_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "p.vpl", PARTITIONED);
    let lines: Vec<(u8, u8, i64, i64)> = (0..300)
        .map(|i| ((i * 3 % 10) as u8, (i % 6) as u8, i % 23, 450))
        .collect();
    write(dir.path(), "in.evt", &events_text(&lines));
    let mut seen = Vec::new();
    for n in ["1", "2", "4"] {
        let out = varpulis(
            &["run", "p.vpl", "--input", "in.evt", "--workers", n],
            dir.path(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stdout.is_empty());
        seen.push(out.stdout);
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0], seen[2]);
}

#[test]
fn run_refuses_a_program_it_cannot_split_with_exit_two() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "g.vpl",
        "event A:\n    key: str\n    v: int\n\nstream All = A\n    .window(10s)\n    .aggregate(n: count())\n    .emit(n: n)\n",
    );
    write(dir.path(), "in.evt", "@0s A { key: \"a\", v: 1 }\n");
    let out = varpulis(
        &["run", "g.vpl", "--input", "in.evt", "--workers", "2"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stream `All`") && err.contains("--workers 1"),
        "{err}"
    );
    // One worker runs every program.
    let out = varpulis(
        &["run", "g.vpl", "--input", "in.evt", "--workers", "1"],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = varpulis(
        &["run", "g.vpl", "--input", "in.evt", "--workers", "0"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn concurrent_sets_the_default_worker_count_of_the_program() {
    let text = PARTITIONED.replace(
        "stream Tumble = A\n    .partition_by(key)\n",
        "stream Tumble = A\n    .partition_by(key)\n    .concurrent(workers: 3)\n",
    );
    let program = compile(&text);
    assert_eq!(program.workers, Some(3));
    assert_eq!(compile(PARTITIONED).workers, None);
}

#[test]
fn strict_runs_on_workers_stop_at_bad_input_with_exit_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "p.vpl", PARTITIONED);
    write(
        dir.path(),
        "in.evt",
        "@0s Note { text: \"first\" }\n@1s Note { text: 5 }\n@2s Note { text: \"never\" }\n",
    );
    let out = varpulis(
        &[
            "run",
            "p.vpl",
            "--input",
            "in.evt",
            "--workers",
            "2",
            "--strict",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("first") && !stdout.contains("never"),
        "{stdout}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2"), "{err}");
}

//! Partition-parallel runs (`varpulis run --workers N`): for random inputs,
//! N = 1..4 engine shards give byte-identical output; programs that cannot
//! be split are refused with the stream and the reason; live runs over
//! connector sources give the same bytes for every N, survive SIGKILL with
//! N = 2 and refuse a checkpoint of another worker count.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output as ProcessOutput};

#[allow(dead_code)] // the Kafka helpers are used only with the kafka feature
mod common;

use proptest::prelude::*;
use varpulis::input::{InputFormat, Records};
use varpulis::job::{Job, JobOptions};
use varpulis::parallel::{self, Layout, OutputSink};
use varpulis_program::Program;
use varpulis_vm::Output;

/// Windows, aggregates, a sequence and a join, all keyed by `key`, plus
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

stream Joined = join(A, B)
    .on(A.key == B.key)
    .window(5s)
    .where(B.v > A.v)
    .emit(key: A.key, a: A.v, b: B.v)

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
    fn output(&mut self, text: &[u8], _: Option<Output>) -> std::io::Result<()> {
        self.0.extend_from_slice(text);
        self.0.push(b'\n');
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
    let mut out = Lines::default();
    run_into(program, events, workers, batch, &mut out);
    String::from_utf8(out.0).expect("utf-8")
}

/// Runs `events` on `workers` shards into `out`.
fn run_into(
    program: &Program,
    events: &str,
    workers: usize,
    batch: usize,
    out: &mut dyn OutputSink,
) {
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
    let mut messages = Vec::new();
    let outcome = parallel::run(&mut job, records, &layout, out, &mut messages).expect("runs");
    assert!(outcome.failed.is_none());
}

/// Collects merged outputs with their values (as a table does).
#[derive(Default)]
struct Values(Vec<(Vec<u8>, Option<Output>)>);

impl OutputSink for Values {
    fn wants_values(&self) -> bool {
        true
    }

    fn output(&mut self, text: &[u8], value: Option<Output>) -> std::io::Result<()> {
        self.0.push((text.to_vec(), value));
        Ok(())
    }
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
    for stream in ["Tumble", "Slide", "Sess", "Pairs", "Joined", "Big", "Loud"] {
        assert!(
            out.contains(&format!("\"stream\":\"{stream}\"")),
            "no {stream} output in:\n{out}"
        );
    }
    assert_eq!(out, run_on(&program, &events, 1, 1024));
}

#[test]
fn a_sink_that_wants_values_gets_each_output_with_its_text_in_the_same_order() {
    let program = compile(PARTITIONED);
    let lines: Vec<(u8, u8, i64, i64)> = (0..200)
        .map(|i| ((i * 7 % 10) as u8, (i % 5) as u8, i % 17, 700))
        .collect();
    let events = events_text(&lines);
    let texts = run_on(&program, &events, 2, 16);
    let mut values = Values::default();
    run_into(&program, &events, 2, 16, &mut values);
    let mut again = String::new();
    for (text, value) in &values.0 {
        let value = value.as_ref().expect("each output comes with its value");
        let mut b = Vec::new();
        varpulis::output::write_json(&mut b, value);
        assert_eq!(&b, text, "the value is the output of the text");
        again.push_str(std::str::from_utf8(text).expect("utf-8"));
        again.push('\n');
    }
    assert!(!values.0.is_empty());
    assert_eq!(
        again, texts,
        "the same outputs in the same order as without values"
    );
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

    // Joins: refused with the reason unless an equality routes both inputs.
    let join = "event A:\n    key: str\n    v: int\n\nevent B:\n    key: str\n    v: int\n\n";
    for (streams, why) in [
        (
            "stream J = join(A, B)\n    .on(A.v + 1 == B.v)\n    .emit(a: A.v)\n",
            "equality",
        ),
        (
            "stream J = join(A, B)\n    .on(A.key == B.key)\n    .window(5s, max_events: 10)\n    .emit(a: A.v)\n",
            "max_events",
        ),
        (
            "stream F = A\n    .where(v > 1)\n\nstream J = join(F, B)\n    .on(F.key == B.key)\n    .emit(a: F.v)\n",
            "another stream",
        ),
        (
            "stream W = A\n    .partition_by(v)\n    .window(3)\n    .aggregate(n: count())\n    .emit(n: n)\n\nstream J = join(A, B)\n    .on(A.key == B.key)\n    .emit(a: A.v)\n",
            "stream `W`",
        ),
    ] {
        let refused = refusal(&format!("{join}{streams}"));
        assert!(
            refused.contains("stream `J`") && refused.contains(why),
            "{refused}"
        );
    }

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

/// [`varpulis`], which must succeed.
#[track_caller]
fn varpulis_ok(args: &[&str], cwd: &Path) -> ProcessOutput {
    let out = varpulis(args, cwd);
    assert!(
        out.status.success(),
        "varpulis {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The lines of an output, sorted.
fn sorted_lines(bytes: &[u8]) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(bytes)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
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
        let out = varpulis_ok(
            &["run", "p.vpl", "--input", "in.evt", "--workers", n],
            dir.path(),
        );
        assert!(!out.stdout.is_empty());
        seen.push(out.stdout);
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0], seen[2]);
}

/// JSON lines over several read batches, with bad records of every kind
/// among them (broken JSON, bytes that are not UTF-8, blank lines, unknown
/// types, wrong field types) and records without a time of their own.
fn json_lines_with_problems(n: usize) -> Vec<u8> {
    let mut text = Vec::new();
    for i in 0..n {
        let (key, v, t) = (i % 7, i % 23, i * 40);
        let line = match i % 97 {
            5 => "{\"event_type\": \"A\", \"key\": ".to_string(),
            11 => String::new(),
            17 => format!("{{\"event_type\":\"Ghost{}\",\"timestamp\":{t}}}", i % 3),
            23 => {
                format!("{{\"event_type\":\"A\",\"timestamp\":{t},\"key\":\"k{key}\",\"v\":\"x\"}}")
            }
            29 => format!("{{\"event_type\":\"B\",\"key\":\"k{key}\",\"v\":{v}}}"),
            31 => "[1, 2]".to_string(),
            37 => {
                text.extend_from_slice(b"{\"event_type\":\"A\",\"key\":\"\xff\xfe\"}\n");
                continue;
            }
            _ if i % 3 == 0 => {
                format!("{{\"event_type\":\"B\",\"timestamp\":{t},\"key\":\"k{key}\",\"v\":{v}}}")
            }
            _ => format!("{{\"event_type\":\"A\",\"timestamp\":{t},\"key\":\"k{key}\",\"v\":{v}}}"),
        };
        text.extend_from_slice(line.as_bytes());
        text.push(b'\n');
    }
    text
}

/// The input problem lines and the counters of a run's stderr (not the
/// timing in its summary).
fn problem_lines(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(
            |l| match (l.strip_prefix("done: "), l.find(" in "), l.find(',')) {
                (Some(_), Some(at), Some(comma)) if at < comma => {
                    format!("{}{}", &l[..at], &l[comma..])
                }
                _ => l.to_string(),
            },
        )
        .collect()
}

#[test]
fn json_lines_decoded_on_workers_keep_outputs_problems_and_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "p.vpl", PARTITIONED);
    std::fs::write(dir.path().join("in.jsonl"), json_lines_with_problems(5000))
        .expect("write input");
    let alone = varpulis_ok(&["run", "p.vpl", "--input", "in.jsonl"], dir.path());
    let problems = problem_lines(&alone.stderr);
    assert!(
        problems.iter().any(|l| l.contains("line 4985")),
        "problems past the first read batches are reported: {problems:?}"
    );
    // Workers order the outputs of one input position canonically, so they
    // match a run without workers line for line only once sorted.
    let sorted = |out: &[u8]| {
        let mut lines: Vec<Vec<u8>> = out.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
        lines.sort();
        lines
    };
    let mut first: Option<Vec<u8>> = None;
    for n in ["1", "2", "3", "4"] {
        let out = varpulis_ok(
            &["run", "p.vpl", "--input", "in.jsonl", "--workers", n],
            dir.path(),
        );
        assert!(
            sorted(&out.stdout) == sorted(&alone.stdout),
            "--workers {n}: other outputs than a run without workers"
        );
        let first = first.get_or_insert_with(|| out.stdout.clone());
        assert!(
            out.stdout == *first,
            "--workers {n}: the outputs differ from --workers 1"
        );
        let got = problem_lines(&out.stderr);
        let first_difference = got.iter().zip(&problems).find(|(a, b)| a != b);
        assert!(
            got.len() == problems.len() && first_difference.is_none(),
            "--workers {n}: {} problem lines against {}, first difference {first_difference:?}",
            got.len(),
            problems.len()
        );
    }
    // --strict stops at the first bad record, line 6, for every count.
    for n in ["1", "3"] {
        let out = varpulis(
            &[
                "run",
                "p.vpl",
                "--input",
                "in.jsonl",
                "--strict",
                "--workers",
                n,
            ],
            dir.path(),
        );
        assert_eq!(out.status.code(), Some(1), "--workers {n}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("line 6"), "--workers {n}: {err}");
    }
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

/// `.evt` lines of every form: `BATCH` clocks, untimed lines that take the time before
/// them, JSON lines with and without a `timestamp`, positional fields, and bad lines.
fn evt_with_every_form(n: usize) -> Vec<u8> {
    let mut text = Vec::new();
    for i in 0..n {
        let (key, v) = (i % 5, i % 17);
        let untimed = format!("A {{ key: \"k{key}\", v: {v} }}");
        let line = match (i % 1024, i % 41) {
            // A JSON line with a `timestamp` ends a read chunk (1024 lines) and
            // the untimed lines that take its time start the next one, then an
            // `@` line and an untimed line that takes its offset.
            (1023, _) => format!(
                "{{\"event_type\": \"A\", \"key\": \"k{key}\", \"v\": {v}, \"timestamp\": {}}}",
                i * 100 + 7
            ),
            (0 | 1 | 3, _) if i > 0 => untimed,
            (2, _) => format!("@{}ms B {{ key: \"k{key}\", v: {v} }}", i * 100 + 3),
            (_, 0) => format!("BATCH {}", i * 100),
            // A bad line right after a `BATCH`: the untimed line after it still
            // takes the `BATCH` clock.
            (_, 1) => "A { key: \"k1\", v: 1 ".to_string(),
            (_, 2 | 3) => untimed,
            (_, 7) => format!(
                "{{\"event_type\": \"A\", \"key\": \"k{key}\", \"v\": {v}, \"timestamp\": {}}}",
                i * 100
            ),
            (_, 9) => format!("{{\"event_type\": \"B\", \"key\": \"k{key}\", \"v\": {v}}}"),
            (_, 13) => "@x1s A { key: \"bad\" }".to_string(),
            (_, 17) => format!("@{}ms A {{ key: \"k{key}\", v: \"text\" }}", i * 100),
            // A bad line is never the previous event of an untimed one.
            (_, 19) => "A { key: ".to_string(),
            (_, 20) => untimed,
            (_, 23) => format!("@{}ms Ghost {{ n: 1 }}", i * 100),
            (_, 29) => "# a comment".to_string(),
            // Not UTF-8: reported, and the lines after it keep their numbers.
            (_, 31) => {
                text.extend_from_slice(b"A { key: \"\xff\" }\n");
                continue;
            }
            _ => format!("@{}ms A {{ key: \"k{key}\", v: {v} }}", i * 100),
        };
        text.extend_from_slice(line.as_bytes());
        text.push(b'\n');
    }
    text
}

/// Every `A` event read back: a key and the time of each, stamped from the
/// `.evt` rules, and its `timestamp` field, which an untimed line after a
/// JSON line with a `timestamp` takes too.
const STAMPS: &str = r#"
event A:
    key: str
    v: int
    timestamp: timestamp

stream Stamps = A
    .emit(key: key, at: timestamp)
"#;

#[test]
fn evt_lines_on_workers_keep_outputs_problems_and_times() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "p.vpl", PARTITIONED);
    write(dir.path(), "stamps.vpl", STAMPS);
    // Several read batches (the reader cuts `.evt` input into chunks of lines).
    std::fs::write(dir.path().join("in.evt"), evt_with_every_form(9_000)).expect("write");
    let problems = |err: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(err)
            .lines()
            .filter(|l| l.starts_with("warning") || l.starts_with("error"))
            .map(str::to_string)
            .collect()
    };
    for program in ["p.vpl", "stamps.vpl"] {
        let one = varpulis_ok(&["run", program, "--input", "in.evt"], dir.path());
        assert!(!one.stdout.is_empty());
        assert!(
            problems(&one.stderr).len() >= 3,
            "{}",
            String::from_utf8_lossy(&one.stderr)
        );
        // Line 59 has a field of the wrong type, after the line that is not
        // UTF-8 (32).
        assert!(
            problems(&one.stderr)
                .iter()
                .any(|p| p.starts_with("warning: input line 59: field `v`")),
            "{}",
            String::from_utf8_lossy(&one.stderr)
        );
        let want = sorted_lines(&one.stdout);
        for n in ["1", "2", "3"] {
            let out = varpulis_ok(
                &["run", program, "--input", "in.evt", "--workers", n],
                dir.path(),
            );
            assert!(
                sorted_lines(&out.stdout) == want,
                "{program}, {n} workers: other outputs than one engine"
            );
            assert_eq!(
                problems(&out.stderr),
                problems(&one.stderr),
                "{program}, {n} workers"
            );
        }
    }
    // The stamps themselves, around the first chunk boundary and a bad line.
    let out = varpulis_ok(
        &["run", "stamps.vpl", "--input", "in.evt", "--workers", "2"],
        dir.path(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let json = "\"timestamp\":\"1970-01-01T00:01:42.307Z\"";
    for (line, what) in [
        (
            format!("{json},\"key\":\"k3\",\"at\":\"1970-01-01T00:01:42.307Z\"}}"),
            "the JSON line at the end of a chunk",
        ),
        (
            format!("{json},\"key\":\"k4\",\"at\":\"1970-01-01T00:01:42.307Z\"}}"),
            "an untimed line in the next chunk: the time and the `timestamp` field",
        ),
        (
            format!("{json},\"key\":\"k0\",\"at\":\"1970-01-01T00:01:42.307Z\"}}"),
            "and the one after it",
        ),
        (
            "\"timestamp\":\"1970-01-01T00:01:42.603Z\",\"key\":\"k2\"}".to_string(),
            "an untimed line after an `@` line (of a type the program does not know)",
        ),
    ] {
        assert!(text.contains(&line), "{what}: {line} not in {text:.3000}");
    }
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

// Live runs (connector sources) on workers.

/// xorshift64*: seeded kill points and inputs.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// A file source of `n` readings over 7 zones, one millisecond apart (and
/// a broken line every 997), per
/// zone a count window of 5 and a 10 ms tumbling window, to the `file` sink
/// `sink.jsonl` and the outputs. Runs use `--idle-timeout 0` (only events
/// move time) so that a pause of a loaded machine cannot close windows.
fn write_live_pipeline(dir: &Path, n: u64) {
    let mut rng = Rng(11);
    let mut input = String::new();
    for i in 0..n {
        input.push_str(&format!(
            "{{\"zone\":\"z{}\",\"temp\":{}.5,\"timestamp\":{}}}\n",
            rng.below(7),
            rng.below(100),
            1_700_000_000_000 + i
        ));
        if i % 997 == 500 {
            input.push_str("{\"zone\": \"broken\n");
        }
    }
    write(dir, "in.jsonl", &input);
    write(
        dir,
        "rules.vpl",
        "event Reading:\n    zone: str\n    temp: float\n\n\
         connector In = file (path: \"in.jsonl\")\nconnector Out = file (path: \"sink.jsonl\")\n\n\
         stream Counts = Reading.from(In)\n    .partition_by(zone)\n    .window(5)\n    \
         .aggregate(n: count(), total: sum(temp))\n    .emit(zone: zone, n: n, total: total)\n    \
         .to(Out)\n\n\
         stream Peaks = Reading.from(In)\n    .partition_by(zone)\n    .window(10ms)\n    \
         .aggregate(hi: max(temp))\n    .emit(zone: zone, hi: hi)\n",
    );
}

fn live(args: &[&str], cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_varpulis"));
    cmd.arg("run")
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null());
    cmd
}

fn live_to_end(args: &[&str], cwd: &Path) -> ProcessOutput {
    let out = live(args, cwd).output().expect("run varpulis");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn live_runs_on_workers_give_the_same_bytes_for_every_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_live_pipeline(dir.path(), 5_000);
    let mut seen = Vec::new();
    for n in ["1", "2", "3"] {
        let _ = std::fs::remove_file(dir.path().join("sink.jsonl"));
        // `--idle-timeout 0`: only events move time (a slow machine's pause
        // must not close the 10 ms windows).
        let out = live_to_end(
            &["rules.vpl", "--idle-timeout", "0", "--workers", n],
            dir.path(),
        );
        let sink = std::fs::read(dir.path().join("sink.jsonl")).expect("the sink file");
        assert!(!out.stdout.is_empty() && !sink.is_empty());
        seen.push((out.stdout, sink));
    }
    assert!(seen[0] == seen[1], "2 workers differ from 1");
    assert!(seen[0] == seen[2], "3 workers differ from 1");
    // One engine without --workers: the same outputs, in arrival order.
    let _ = std::fs::remove_file(dir.path().join("sink.jsonl"));
    let plain = live_to_end(&["rules.vpl", "--idle-timeout", "0"], dir.path());
    let sorted = sorted_lines;
    assert_eq!(sorted(&plain.stdout), sorted(&seen[0].0));
    let err = String::from_utf8_lossy(&plain.stderr);
    assert!(err.contains("5000 events"), "{err}");
}

/// The events of [`PARTITIONED`] as one file source's lines, with bad
/// lines of every kind among them (broken JSON, bytes that are not UTF-8,
/// blank lines, arrays of non-events, unknown types, wrong field types, a
/// timestamp decades ahead) and arrays of two events. Every event has a
/// timestamp (an event without one would take its arrival time).
fn live_lines_with_problems(n: usize) -> Vec<u8> {
    let mut text = Vec::new();
    for i in 0..n {
        let (key, v, t) = (i % 7, i % 23, 1_700_000_000_000 + i * 40);
        let line = match i % 97 {
            5 => "{\"event_type\": \"A\", \"key\": ".to_string(),
            11 => String::new(),
            17 => format!("{{\"event_type\":\"Ghost{}\",\"timestamp\":{t}}}", i % 3),
            23 => {
                format!("{{\"event_type\":\"A\",\"timestamp\":{t},\"key\":\"k{key}\",\"v\":\"x\"}}")
            }
            31 => "[1, 2]".to_string(),
            37 => {
                text.extend_from_slice(b"{\"event_type\":\"A\",\"key\":\"\xff\xfe\"}\n");
                continue;
            }
            41 => format!(
                "[{{\"event_type\":\"A\",\"timestamp\":{t},\"key\":\"k{key}\",\"v\":{v}}}, \
                 {{\"event_type\":\"B\",\"timestamp\":{t},\"key\":\"k{key}\",\"v\":{v}}}]"
            ),
            47 => format!(
                "{{\"event_type\":\"A\",\"timestamp\":4000000000000,\"key\":\"k{key}\",\"v\":{v}}}"
            ),
            53 => format!("{{\"event_type\":\"Note\",\"timestamp\":{t},\"text\":\"n{i}\"}}"),
            _ if i % 3 == 0 => {
                format!("{{\"event_type\":\"B\",\"timestamp\":{t},\"key\":\"k{key}\",\"v\":{v}}}")
            }
            _ => format!("{{\"event_type\":\"A\",\"timestamp\":{t},\"key\":\"k{key}\",\"v\":{v}}}"),
        };
        text.extend_from_slice(line.as_bytes());
        text.push(b'\n');
    }
    text
}

/// `text` with the seconds of "its timestamp is Ns after its arrival" left
/// out: they depend on the wall clock of the run.
fn without_skew_seconds(text: &str) -> String {
    const AT: &str = "its timestamp is ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(AT) {
        out.push_str(&rest[..i + AT.len()]);
        rest = rest[i + AT.len()..].trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

#[test]
fn live_runs_on_workers_keep_outputs_dead_letters_problems_and_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The program of the `--input` tests, fed by a file source: its
    // subscription feeds every stream of the types it delivers.
    let program = format!(
        "connector In = file (path: \"in.jsonl\")\n{PARTITIONED}\n\
         stream Direct = Note.from(In)\n    .where(text == \"n53\")\n    .emit(text: text)\n"
    );
    write(dir.path(), "p.vpl", &program);
    // Several turns of the loop, so decoding threads take parts of them.
    std::fs::write(dir.path().join("in.jsonl"), live_lines_with_problems(6000))
        .expect("write input");
    let run = |workers: Option<&str>| {
        let _ = std::fs::remove_file(dir.path().join("dead.jsonl"));
        let mut args = vec![
            "p.vpl",
            "--idle-timeout",
            "0",
            "--dead-letter",
            "dead.jsonl",
            "--max-future-skew",
            "1h",
        ];
        if let Some(n) = workers {
            args.extend(["--workers", n]);
        }
        let out = live_to_end(&args, dir.path());
        let dead = std::fs::read(dir.path().join("dead.jsonl")).expect("the dead-letter file");
        let dead = without_skew_seconds(&String::from_utf8_lossy(&dead)).into_bytes();
        // Problems, warnings and the counters of the summary (not its timing).
        let log: Vec<String> = problem_lines(&out.stderr)
            .into_iter()
            .filter(|l| l.starts_with("warning:") || l.starts_with("done:"))
            .map(|l| without_skew_seconds(&l))
            .collect();
        (out.stdout, dead, log)
    };
    let (plain_out, plain_dead, plain_log) = run(None);
    for kind in [
        "is not UTF-8",
        "unknown event type `Ghost",
        "--max-future-skew",
        "expects int",
        "must be an object",
        "future timestamp",
    ] {
        assert!(
            plain_log.iter().any(|l| l.contains(kind)),
            "the input has a `{kind}` problem: {plain_log:#?}"
        );
    }
    // Every skipped record is dead-lettered with its place, the last ones too.
    let dead_text = String::from_utf8_lossy(&plain_dead);
    assert!(
        dead_text.contains("connector `In` (in.jsonl line 5965)"),
        "{dead_text}"
    );
    let sorted = sorted_lines;
    let mut first: Option<Vec<u8>> = None;
    for n in ["1", "2", "3", "4"] {
        let (out, dead, log) = run(Some(n));
        assert!(!out.is_empty(), "--workers {n}: no outputs");
        let first = first.get_or_insert_with(|| out.clone());
        assert!(
            out == *first,
            "--workers {n}: other outputs than --workers 1"
        );
        assert_eq!(
            sorted(&out),
            sorted(&plain_out),
            "--workers {n}: other outputs than one engine"
        );
        common::assert_same(
            &dead,
            &plain_dead,
            "the dead letters",
            &format!("--workers {n}"),
        );
        let first_difference = log.iter().zip(&plain_log).find(|(a, b)| a != b);
        assert!(
            log.len() == plain_log.len() && first_difference.is_none(),
            "--workers {n}: {} log lines against {}, first difference {first_difference:?}",
            log.len(),
            plain_log.len()
        );
    }
}

#[test]
fn a_live_run_on_two_workers_killed_and_restarted_ends_like_an_uninterrupted_one() {
    const EVENTS: u64 = 30_000;
    const RUN: &[&str] = &[
        "rules.vpl",
        "--workers",
        "2",
        "--idle-timeout",
        "0",
        "--state-dir",
        "state",
        "--checkpoint-interval",
        "50ms",
        "--output",
        "out.jsonl",
    ];
    let reference = tempfile::tempdir().expect("tempdir");
    write_live_pipeline(reference.path(), EVENTS);
    let started = std::time::Instant::now();
    live_to_end(RUN, reference.path());
    let uninterrupted = started.elapsed();
    let expected_sink = std::fs::read(reference.path().join("sink.jsonl")).expect("sink");
    let expected_out = std::fs::read(reference.path().join("out.jsonl")).expect("out");

    let seed = std::env::var("VARPULIS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_4321_u64);
    let mut rng = Rng(seed.max(1));
    let dir = tempfile::tempdir().expect("tempdir");
    write_live_pipeline(dir.path(), EVENTS);
    let slice = u64::try_from(uninterrupted.as_millis()).unwrap_or(u64::MAX) / 8;
    let mut delays = Vec::new();
    let mut partial = 0;
    // Kill until some output is out (a loaded machine starts slowly), at
    // random points well before the input can be done.
    while delays.len() < 6 || (partial == 0 && delays.len() < 30) {
        // Past the sixth kill with nothing out yet, later kills come later
        // (up to a quarter of the uninterrupted run more): a fast run leaves short
        // slices, which can all land before the first checkpoint.
        let late = (delays.len() as u64).saturating_sub(5).min(16) * slice / 8;
        let delay = std::time::Duration::from_millis(10 + late + rng.below(slice.max(20)));
        delays.push(delay);
        let mut child = live(RUN, dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start varpulis");
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        partial = std::fs::metadata(dir.path().join("sink.jsonl")).map_or(0, |m| m.len());
    }
    assert!(
        partial > 0 && partial < expected_sink.len() as u64,
        "the kills should land while output is being written ({partial} bytes; seed {seed}, \
         delays {delays:?})"
    );
    let last = live_to_end(RUN, dir.path());
    let context = format!(
        "seed {seed}, kill delays {delays:?}; last run:\n{}",
        String::from_utf8_lossy(&last.stderr)
    );
    let sink = std::fs::read(dir.path().join("sink.jsonl")).expect("sink");
    let out = std::fs::read(dir.path().join("out.jsonl")).expect("out");
    common::assert_same(&sink, &expected_sink, "the file sink", &context);
    common::assert_same(&out, &expected_out, "--output", &context);
}

#[test]
fn a_checkpoint_of_another_worker_count_is_refused_with_the_count_to_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_live_pipeline(dir.path(), 200);
    live_to_end(
        &["rules.vpl", "--workers", "2", "--state-dir", "state"],
        dir.path(),
    );
    for other in [&["--workers", "3"][..], &[]] {
        let mut args = vec!["rules.vpl", "--state-dir", "state"];
        args.extend_from_slice(other);
        let out = live(&args, dir.path()).output().expect("run varpulis");
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("saved with 2 workers") && err.contains("--workers 2"),
            "{err}"
        );
    }
    // The same count resumes (nothing left to read).
    live_to_end(
        &["rules.vpl", "--workers", "2", "--state-dir", "state"],
        dir.path(),
    );
    // One engine and one worker read each other's state.
    let one = tempfile::tempdir().expect("tempdir");
    write_live_pipeline(one.path(), 200);
    live_to_end(&["rules.vpl", "--state-dir", "state"], one.path());
    let out = live_to_end(
        &["rules.vpl", "--workers", "1", "--state-dir", "state"],
        one.path(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("restored the checkpoint"), "{err}");
}

#[test]
fn a_checkpoint_whose_workers_held_other_keys_is_refused() {
    // A build that routes keys to workers otherwise (another hash) must not
    // look each key up in another worker's state.
    let dir = tempfile::tempdir().expect("tempdir");
    write_live_pipeline(dir.path(), 200);
    let args = ["rules.vpl", "--workers", "2", "--state-dir", "state"];
    live_to_end(&args, dir.path());
    {
        let mut store =
            varpulis_state::open_durable(&dir.path().join("state")).expect("the state store");
        let routing = store.get("shards", b"routing").expect("readable");
        assert_eq!(routing, Some(parallel::routing_fingerprint().into_bytes()));
        store
            .put("shards", b"routing", b"0.1.2".to_vec())
            .expect("put");
        store.commit().expect("commit");
    }
    let out = live(&args, dir.path()).output().expect("run varpulis");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("assigns partition keys") && err.contains("--state-dir"),
        "{err}"
    );
}

#[test]
fn a_live_program_that_cannot_be_split_is_refused_before_it_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "in.jsonl", "{\"zone\":\"a\",\"temp\":1.0}\n");
    write(
        dir.path(),
        "g.vpl",
        "event Reading:\n    zone: str\n    temp: float\n\nconnector In = file (path: \"in.jsonl\")\n\n\
         stream All = Reading.from(In)\n    .window(5)\n    .aggregate(n: count())\n    .emit(n: n)\n",
    );
    let out = live(&["g.vpl", "--workers", "2"], dir.path())
        .output()
        .expect("run varpulis");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stream `All`") && err.contains("--workers 1"),
        "{err}"
    );
}

/// Bytes the process has read so far (`rchar` of /proc/PID/io).
fn bytes_read(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|n| n.trim().parse().ok())
}

#[test]
fn a_slow_output_holds_the_sources_back_on_two_workers() {
    use std::io::Read;
    const EVENTS: u64 = 400_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut input = String::with_capacity(EVENTS as usize * 64);
    for i in 0..EVENTS {
        input.push_str(&format!(
            "{{\"zone\":\"z{}\",\"temp\":{}.5,\"timestamp\":{}}}\n",
            i % 13,
            i % 90,
            1_700_000_000_000 + i
        ));
    }
    let input_len = input.len() as u64;
    write(dir.path(), "in.jsonl", &input);
    write(
        dir.path(),
        "rules.vpl",
        "event Reading:\n    zone: str\n    temp: float\n\nconnector In = file (path: \"in.jsonl\")\n\n\
         stream Every = Reading.from(In)\n    .emit(zone: zone, temp: temp)\n\n\
         stream Counts = Reading.from(In)\n    .partition_by(zone)\n    .window(100)\n    \
         .aggregate(n: count())\n    .emit(zone: zone, n: n)\n",
    );
    // Nobody reads the output for now: the pipe fills and the run must stop
    // reading its source instead of buffering it.
    let mut child = live(
        &["rules.vpl", "--workers", "2", "--idle-timeout", "0"],
        dir.path(),
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null())
    .spawn()
    .expect("start varpulis");
    let pid = child.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut last = 0;
    let stalled = loop {
        std::thread::sleep(std::time::Duration::from_millis(700));
        let now = bytes_read(pid).expect("/proc/PID/io of the run");
        if now == last && now > 0 {
            break now;
        }
        last = now;
        assert!(
            std::time::Instant::now() < deadline,
            "the run never stopped reading ({now} of {input_len} bytes)"
        );
    };
    assert!(
        stalled < input_len / 4,
        "with its output blocked the run read {stalled} of {input_len} input bytes"
    );
    // Reading the output lets it go on to the end, with nothing lost.
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read the outputs");
    let status = child.wait().expect("wait");
    assert!(status.success());
    let every = out
        .lines()
        .filter(|l| l.contains("\"stream\":\"Every\""))
        .count();
    assert_eq!(every as u64, EVENTS);
    let counts = out
        .lines()
        .filter(|l| l.contains("\"stream\":\"Counts\""))
        .count();
    assert!(counts > 0);
}

#[test]
fn strict_live_runs_on_workers_run_every_event_before_the_bad_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "in.jsonl",
        "{\"zone\":\"a\",\"temp\":1}\n{\"zone\":\"b\",\"temp\":2}\n{broken\n{\"zone\":\"c\",\"temp\":3}\n",
    );
    write(
        dir.path(),
        "rules.vpl",
        "event Reading:\n    zone: str\n    temp: float\n\nconnector In = file (path: \"in.jsonl\")\n\n\
         stream All = Reading.from(In)\n    .emit(zone: zone)\n",
    );
    let out = live(&["rules.vpl", "--workers", "2", "--strict"], dir.path())
        .output()
        .expect("run varpulis");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let zones: Vec<&str> = stdout
        .lines()
        .filter_map(|l| {
            l.rsplit_once("\"zone\":\"")
                .map(|(_, z)| z.trim_end_matches("\"}"))
        })
        .collect();
    assert_eq!(zones, ["a", "b"], "{stdout}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in.jsonl line 3"), "{err}");
}

/// A port nobody listens on.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// POSTs `body` to the ingest endpoint; the status code.
fn post(port: u16, body: &str) -> u16 {
    use std::io::Read;
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let request = format!(
        "POST /events HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/x-ndjson\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(request.as_bytes()).is_err() {
        return 0;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// Runs the http ingest pipeline on `workers`, posts `body` once the source
/// is up, waits for `outputs` lines and stops the run with SIGINT. Returns
/// the output lines and the dead letters (the sender's port left out).
fn http_run(dir: &Path, workers: &str, body: &str, outputs: usize) -> (Vec<String>, String) {
    use std::io::BufRead;
    let _ = std::fs::remove_file(dir.join("dead.jsonl"));
    let port = free_port();
    write(
        dir,
        "http.vpl",
        &format!(
            "event Reading:\n    zone: str\n    temp: float\n\n\
             connector In = http (url: \"http://127.0.0.1:{port}/events\")\n\n\
             stream Hot = Reading.from(In)\n    .where(temp > 50.0)\n    .emit(zone: zone, temp: temp)\n\n\
             stream Pairs = Reading.from(In)\n    .partition_by(zone)\n    .window(2)\n    \
             .aggregate(n: count(), total: sum(temp))\n    .emit(zone: zone, total: total)\n"
        ),
    );
    let mut child = live(
        &[
            "http.vpl",
            "--workers",
            workers,
            "--idle-timeout",
            "0",
            "--dead-letter",
            "dead.jsonl",
        ],
        dir,
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("start varpulis");
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut log = Vec::new();
    while !log.iter().any(|l: &String| l.starts_with("running;")) {
        assert!(
            std::time::Instant::now() < deadline,
            "never started: {log:#?}"
        );
        if let Ok(l) = rx.recv_timeout(std::time::Duration::from_millis(100)) {
            log.push(l);
        }
    }
    assert_eq!(post(port, body), 202);
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut lines = Vec::new();
    while lines.len() < outputs {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        lines.push(line.trim_end().to_string());
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().expect("wait");
    assert!(status.success(), "{:#?}", rx.try_iter().collect::<Vec<_>>());
    let dead = std::fs::read_to_string(dir.join("dead.jsonl")).unwrap_or_default();
    let mut dead_letters = String::new();
    let mut rest = dead.as_str();
    while let Some(i) = rest.find("127.0.0.1:") {
        dead_letters.push_str(&rest[..i + 10]);
        rest = rest[i + 10..].trim_start_matches(|c: char| c.is_ascii_digit());
    }
    dead_letters.push_str(rest);
    (lines, dead_letters)
}

#[test]
fn an_http_ingest_run_on_workers_prints_and_dead_letters_what_one_worker_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 40 readings, and bad lines among them (wrong field types, an unknown
    // type; the endpoint itself refuses broken JSON), each skipped and
    // dead-lettered in its place.
    let body: String = (0..40)
        .map(|i| {
            let reading = format!(
                "{{\"event_type\":\"Reading\",\"zone\":\"z{}\",\"temp\":{}.0,\"timestamp\":{}}}\n",
                i % 5,
                (i * 37) % 100,
                1_700_000_000_000i64 + i
            );
            match i % 13 {
                3 => format!("{{\"event_type\":\"Reading\",\"zone\":7,\"temp\":true}}\n{reading}"),
                7 => format!(
                    "{{\"event_type\":\"Reading\",\"zone\":\"z{i}\",\"temp\":\"hot\"}}\n{reading}"
                ),
                11 => format!("{{\"event_type\":\"Ghost\",\"v\":{i}}}\n{reading}"),
                _ => reading,
            }
        })
        .collect();
    // 40 readings: 20 pairs, and the hot ones.
    let hot = (0..40).filter(|i| (i * 37) % 100 > 50).count();
    let (one, one_dead) = http_run(dir.path(), "1", &body, 20 + hot);
    assert_eq!(one.len(), 20 + hot, "{one:#?}");
    assert_eq!(one_dead.lines().count(), 9, "{one_dead}");
    for n in ["2", "3"] {
        let (got, dead) = http_run(dir.path(), n, &body, 20 + hot);
        assert_eq!(got, one, "--workers {n}");
        assert_eq!(dead, one_dead, "--workers {n}");
    }
}

/// The text of `GET path` on 127.0.0.1:`port`.
#[cfg(feature = "kafka")]
fn get(port: u16, path: &str) -> String {
    use std::io::Read;
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Kafka on two workers with checkpoints: orders of three users, a stop (the
/// final checkpoint), more orders, a restart: each user's count window of 3
/// fires once, with the orders from both sides of the restart (state in the
/// right worker, offsets from the checkpoint). Needs `VARPULIS_TEST_KAFKA`
/// (`eval "$(scripts/brokers env)"`); skipped without it unless
/// `VARPULIS_REQUIRE_BROKERS=1`.
#[cfg(feature = "kafka")]
#[test]
fn kafka_on_two_workers_resumes_every_workers_windows_after_a_restart() {
    use std::io::BufRead;
    use std::time::{Duration, Instant};
    use varpulis_connectors::{open_sink, ConfigValue, ConnectorConfig, Record, SinkContext};
    let required = std::env::var("VARPULIS_REQUIRE_BROKERS").is_ok_and(|v| v == "1");
    let brokers = match std::env::var("VARPULIS_TEST_KAFKA") {
        Ok(b) if std::net::TcpStream::connect(&b).is_ok() => b,
        _ => {
            assert!(!required, "VARPULIS_TEST_KAFKA is not set or not reachable");
            eprintln!("skipped: no Kafka broker (scripts/brokers env)");
            return;
        }
    };
    let tag = format!("workers-{}", std::process::id());
    let topic = format!("{tag}-orders");
    common::create_topics(&brokers, &[&topic]);
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "rules.vpl",
        &format!(
            "event Order:\n    user: str\n    amount: float\n\n\
             connector K = kafka (brokers: \"{brokers}\", topic: \"{topic}\", group_id: \"{tag}\", start: earliest, session_timeout: 6s)\n\n\
             stream Sum = Order.from(K)\n    .partition_by(user)\n    .window(3)\n    \
             .aggregate(n: count(), total: sum(amount))\n    .emit(user: user, n: n, total: total)\n"
        ),
    );
    let produce = |orders: &[(&str, f64)]| {
        let mut p = open_sink(
            &ConnectorConfig::new("P", "kafka")
                .param("brokers", ConfigValue::Str(brokers.clone()))
                .param("topic", ConfigValue::Str(topic.clone())),
            &SinkContext::new(dir.path()),
        )
        .expect("producer");
        for (user, amount) in orders {
            let body = format!("{{\"user\":\"{user}\",\"amount\":{amount}}}");
            p.send(Record::from_json(body.as_bytes()).expect("record"))
                .expect("produce");
        }
        p.close().expect("delivered");
    };
    let metrics = free_port();
    let addr = format!("127.0.0.1:{metrics}");
    let args = [
        "rules.vpl",
        "--workers",
        "2",
        "--state-dir",
        "state",
        "--checkpoint-interval",
        "1h",
        "--metrics",
        &addr,
    ];
    // A run, with its stdout and stderr as channels of lines.
    let start = || {
        let mut child = live(&args, dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start varpulis");
        let lines = |r: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(r).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let out = lines(Box::new(child.stdout.take().expect("stdout")));
        let err = lines(Box::new(child.stderr.take().expect("stderr")));
        (child, out, err)
    };
    let stop = |mut child: std::process::Child,
                out: std::sync::mpsc::Receiver<String>,
                err: std::sync::mpsc::Receiver<String>| {
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let status = child.wait().expect("wait");
        let err: Vec<String> = err.iter().collect();
        assert!(status.success(), "{err:#?}");
        (out.iter().collect::<Vec<_>>(), err.join("\n"))
    };

    produce(&[
        ("a", 1.0),
        ("b", 10.0),
        ("c", 100.0),
        ("a", 2.0),
        ("b", 20.0),
        ("c", 200.0),
    ]);
    let (child, out, err) = start();
    // Stop once the six orders are in the engine (joining the group takes a few seconds).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut text = String::new();
    while !text.contains("varpulis_events_total 6\n") {
        assert!(Instant::now() < deadline, "the orders never arrived");
        std::thread::sleep(Duration::from_millis(100));
        text = get(metrics, "/metrics");
    }
    assert!(text.contains("varpulis_engine_workers 2\n"), "{text}");
    let (lines, log) = stop(child, out, err);
    assert!(lines.is_empty(), "{lines:#?}");
    assert!(log.contains("source `K`: 6 received"), "{log}");

    produce(&[("a", 4.0), ("b", 40.0), ("c", 400.0)]);
    let (child, out, err) = start();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while seen.len() < 3 && Instant::now() < deadline {
        if let Ok(l) = out.recv_timeout(Duration::from_millis(100)) {
            seen.push(l);
        }
    }
    let (rest, log) = stop(child, out, err);
    seen.extend(rest);
    let mut totals: Vec<(String, i64, f64)> = seen
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON output");
            (
                v["user"].as_str().unwrap_or_default().to_string(),
                v["n"].as_i64().unwrap_or_default(),
                v["total"].as_f64().unwrap_or_default(),
            )
        })
        .collect();
    totals.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        totals,
        [
            ("a".to_string(), 3, 7.0),
            ("b".to_string(), 3, 70.0),
            ("c".to_string(), 3, 700.0)
        ],
        "{log}"
    );
}

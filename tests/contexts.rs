//! Context pipelines (`varpulis run --input` with `context` declarations):
//! for random inputs, a program whose streams run in three contexts, one
//! engine thread each, gives the same bytes as the same program without its
//! context annotations on one engine; contexts that read each other's
//! streams (a cycle) run on one thread and say so; the command line names
//! the context threads and runs contexts inside each worker with `--workers N`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output as ProcessOutput};

use proptest::prelude::*;
use varpulis::contexts::{self, Layout};
use varpulis::input::{InputFormat, Records};
use varpulis::job::{Job, JobOptions};
use varpulis::parallel::{self, OutputSink};
use varpulis_program::Program;
use varpulis_vm::Output;

/// Three contexts in a chain (ingest → analytics → alerts) plus the
/// default one: `.emit(context: ...)` forwarding, a stream inheriting the
/// context its input forwards to, windows (time, sliding, count, session,
/// global) over streams of another context, a sequence, the late events of
/// a stream of another context, a timer read by another context, and a
/// stream in the default context.
const CONTEXTS: &str = r#"
context ingest (cores: [0])
context analytics
context alerts

event A:
    key: str
    v: int

event B:
    key: str
    v: int

event Note:
    text: str

stream Clean = A
    .context(ingest)
    .where(v > 2)
    .emit(context: analytics, key: key, v: v)

stream Tumble = Clean
    .partition_by(key)
    .window(10s)
    .aggregate(n: count(), total: sum(v))
    .emit(key: key, n: n, total: total)

stream Slide = Clean
    .partition_by(key)
    .window(20s, sliding: 5s)
    .aggregate(hi: max(v), lo: min(v))
    .emit(key: key, hi: hi, lo: lo)

stream Big = Tumble
    .context(alerts)
    .where(total > 20)
    .emit(key: key, total: total)

stream Threes = Tumble
    .context(alerts)
    .window(3)
    .aggregate(n: count(), sum: sum(total))
    .emit(n: n, sum: sum)

stream Sess = B
    .context(ingest)
    .partition_by(key)
    .window(session: 7s)
    .aggregate(n: count(), avg: avg(v))
    .emit(key: key, n: n, avg: avg)

stream AllSess = Sess
    .context(alerts)
    .window(30s)
    .aggregate(n: count(), most: max(n))
    .emit(n: n, most: most)

stream Pairs = A as a
    -> B where v > a.v as b
    .context(analytics)
    .partition_by(key)
    .within(15s)
    .emit(key: a.key, first: a.v, second: b.v)

stream Rises = Pairs
    .context(alerts)
    .where(second > first + 1)
    .emit(key: key, jump: second - first)

stream LateClean = Clean.late()
    .context(alerts)
    .emit(key: key, v: v)

stream Beat = timer(10s, initial_delay: 3s)
    .context(analytics)
    .emit(kind: "beat")

stream Beats = Beat
    .context(alerts)
    .window(3)
    .aggregate(n: count())
    .emit(n: n)

stream Loud = Note
    .where(text != "quiet")
    .emit(text: text)
"#;

/// `text` without its context declarations and placements.
fn strip(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("context ") || t.starts_with(".context(") {
            continue;
        }
        let mut line = line.to_string();
        while let Some(at) = line.find("context: ") {
            let end = line[at..].find(", ").map_or(line.len(), |e| at + e + 2);
            line.replace_range(at..end, "");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

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

/// The output of `events` with one engine thread per context.
fn on_contexts(program: &Program, events: &str, batch: usize) -> String {
    let Layout::Threads(lanes) = contexts::plan(program) else {
        panic!("the program runs its contexts on threads");
    };
    let mut job = Job::new(program.clone(), options()).expect("loads");
    let records = Records::new(events.as_bytes(), InputFormat::Evt);
    let mut out = Lines::default();
    let mut messages = Vec::new();
    let outcome =
        contexts::run(&mut job, records, &lanes, batch, &mut out, &mut messages).expect("runs");
    assert!(outcome.failed.is_none());
    String::from_utf8(out.0).expect("utf-8")
}

/// The output of `events` on one engine shard (`--workers 1`: the
/// canonical order).
fn on_one(program: &Program, events: &str) -> String {
    let mut job = Job::new(program.clone(), options()).expect("loads");
    let records = Records::new(events.as_bytes(), InputFormat::Evt);
    let layout = parallel::Layout {
        workers: 1,
        batch: 1024,
        plan: parallel::ShardPlan { keys: Vec::new() },
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
    (0u8..10, 0u8..4, 0i64..20, -3_000i64..4_000)
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
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn contexts_on_threads_give_the_bytes_of_one_engine_without_them(
        lines in proptest::collection::vec(arb_line(), 0..150),
        batch in 1usize..40,
    ) {
        let program = compile(CONTEXTS);
        let plain = compile(&strip(CONTEXTS));
        prop_assert!(plain.contexts.is_empty() && plain.placements.is_empty());
        let events = events_text(&lines);
        let threads = on_contexts(&program, &events, batch);
        let one = on_one(&plain, &events);
        prop_assert_eq!(&threads, &one);
        let mut sorted: Vec<String> = threads.lines().map(str::to_string).collect();
        sorted.sort();
        prop_assert_eq!(sorted, sorted_single(&plain, &events));
    }
}

fn fixed_input() -> String {
    let lines: Vec<(u8, u8, i64, i64)> = (0..240)
        .map(|i| {
            // Now and then a step back in time: late events.
            let step = if i % 11 == 5 { -2_500 } else { 650 };
            ((i * 7 % 10) as u8, (i % 4) as u8, (i * 5) % 19, step)
        })
        .collect();
    events_text(&lines)
}

#[test]
fn a_fixed_input_produces_outputs_of_every_stream_in_every_context() {
    // Guards the property test against a program that emits nothing.
    let program = compile(CONTEXTS);
    let Layout::Threads(lanes) = contexts::plan(&program) else {
        panic!("threads");
    };
    let names: Vec<&str> = lanes.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        ["ingest", "analytics", "alerts", contexts::DEFAULT_CONTEXT]
    );
    assert_eq!(lanes[0].cores, [0]);
    let events = fixed_input();
    let out = on_contexts(&program, &events, 16);
    for stream in [
        "Clean",
        "Tumble",
        "Slide",
        "Big",
        "Threes",
        "Sess",
        "AllSess",
        "Pairs",
        "Rises",
        "LateClean",
        "Beat",
        "Beats",
        "Loud",
    ] {
        assert!(
            out.contains(&format!("\"stream\":\"{stream}\"")),
            "no {stream} output in:\n{out}"
        );
    }
    assert_eq!(out, on_one(&compile(&strip(CONTEXTS)), &events));
}

/// `a` reads `b`'s stream and `b` reads `a`'s.
const CYCLE: &str = r#"
context a
context b

event A:
    key: str
    v: int

stream X = A
    .context(a)
    .emit(key: key, v: v)

stream Y = X
    .context(b)
    .partition_by(key)
    .window(5s)
    .aggregate(n: count(), total: sum(v))
    .emit(key: key, n: n, total: total)

stream Z = Y
    .context(a)
    .where(total > 10)
    .emit(key: key, total: total)
"#;

#[test]
fn contexts_in_a_cycle_run_on_one_thread_and_say_so() {
    let program = compile(CYCLE);
    let Layout::One { why: Some(why) } = contexts::plan(&program) else {
        panic!("one thread with a reason");
    };
    assert!(
        why.contains("cycle") && why.contains("`a`") && why.contains("`b`"),
        "{why}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "c.vpl", CYCLE);
    write(dir.path(), "plain.vpl", &strip(CYCLE));
    write(dir.path(), "in.evt", &fixed_input());
    let out = varpulis(&["run", "c.vpl", "--input", "in.evt"], dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("note: contexts run on one engine thread") && err.contains("cycle"),
        "{err}"
    );
    let plain = varpulis(&["run", "plain.vpl", "--input", "in.evt"], dir.path());
    assert!(!out.stdout.is_empty());
    assert_eq!(out.stdout, plain.stdout);
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
fn run_names_its_context_threads_and_prints_the_bytes_of_one_engine() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "p.vpl", CONTEXTS);
    write(dir.path(), "plain.vpl", &strip(CONTEXTS));
    write(dir.path(), "in.evt", &fixed_input());
    let out = varpulis(&["run", "p.vpl", "--input", "in.evt"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(
            "note: 4 contexts run on their own engine threads: ingest, analytics, alerts, \
             (default)"
        ),
        "{err}"
    );
    let one = varpulis(
        &["run", "plain.vpl", "--input", "in.evt", "--workers", "1"],
        dir.path(),
    );
    assert!(one.status.success());
    assert!(!out.stdout.is_empty());
    assert!(
        out.stdout == one.stdout,
        "context threads differ from one engine"
    );
    // `--workers 1` runs the program with contexts on one engine.
    let forced = varpulis(
        &["run", "p.vpl", "--input", "in.evt", "--workers", "1"],
        dir.path(),
    );
    assert!(forced.status.success());
    assert!(!String::from_utf8_lossy(&forced.stderr).contains("engine threads"));
    assert!(forced.stdout == one.stdout);
}

#[test]
fn a_context_whose_cores_cannot_be_had_runs_anyway_with_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "p.vpl",
        &CONTEXTS.replace("context alerts", "context alerts (cores: [100000])"),
    );
    write(dir.path(), "plain.vpl", &strip(CONTEXTS));
    write(dir.path(), "in.evt", &fixed_input());
    let out = varpulis(&["run", "p.vpl", "--input", "in.evt"], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: context `alerts` runs on any core: cannot pin its thread"),
        "{err}"
    );
    assert!(!err.contains("context `ingest` runs on any core"), "{err}");
    let one = varpulis(
        &["run", "plain.vpl", "--input", "in.evt", "--workers", "1"],
        dir.path(),
    );
    assert!(out.stdout == one.stdout);
}

/// Contexts whose streams read event types, so each can run partition-parallel.
const KEYED_CONTEXTS: &str = r#"
context ingest
context analytics

event A:
    key: str
    v: int

event B:
    key: str
    v: int

stream Clean = A
    .context(ingest)
    .where(v > 2)
    .emit(key: key, v: v)

stream Tumble = A
    .context(analytics)
    .partition_by(key)
    .window(10s)
    .aggregate(n: count(), total: sum(v))
    .emit(key: key, n: n, total: total)

stream Sess = B
    .context(ingest)
    .partition_by(key)
    .window(session: 7s)
    .aggregate(n: count(), avg: avg(v))
    .emit(key: key, n: n, avg: avg)
"#;

#[test]
fn run_on_several_workers_runs_the_contexts_inside_each_worker() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "p.vpl", KEYED_CONTEXTS);
    write(dir.path(), "plain.vpl", &strip(KEYED_CONTEXTS));
    write(dir.path(), "in.evt", &fixed_input());
    let one = varpulis(
        &["run", "plain.vpl", "--input", "in.evt", "--workers", "1"],
        dir.path(),
    );
    assert!(one.status.success());
    for n in ["2", "3"] {
        let out = varpulis(
            &["run", "p.vpl", "--input", "in.evt", "--workers", n],
            dir.path(),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(
            err.contains(&format!(
                "note: the program's 2 contexts run inside each of the {n} workers"
            )) && !err.contains("engine threads"),
            "{err}"
        );
        assert!(!out.stdout.is_empty());
        assert!(
            out.stdout == one.stdout,
            "{n} workers differ from one engine"
        );
    }
}

// Live runs (connector sources).

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

/// Two contexts over a file source: `ingest` cleans the readings and
/// forwards them to `analytics`, whose count windows go to the `file` sink
/// `sink.jsonl` and whose time windows are outputs.
const LIVE: &str = "context ingest\ncontext analytics\n\nevent Reading:\n    zone: str\n    temp: float\n\n\
connector In = file (path: \"in.jsonl\", follow: FOLLOW)\nconnector Out = file (path: \"sink.jsonl\")\n\n\
stream Clean = Reading.from(In)\n    .context(ingest)\n    .where(temp > 5.0)\n    .emit(context: analytics, zone: zone, temp: temp)\n\n\
stream Counts = Clean\n    .partition_by(zone)\n    .window(5)\n    .aggregate(n: count(), total: sum(temp))\n    .emit(zone: zone, n: n, total: total)\n    .to(Out)\n\n\
stream Peaks = Clean\n    .partition_by(zone)\n    .window(10ms)\n    .aggregate(hi: max(temp))\n    .emit(zone: zone, hi: hi)\n";

/// `n` readings over 7 zones, one millisecond apart, in `in.jsonl`; the
/// rules with contexts in `rules.vpl` and without in `plain.vpl`.
fn write_live(dir: &Path, n: u64, follow: bool) {
    let mut rng = Rng(7);
    let mut input = String::new();
    for i in 0..n {
        input.push_str(&format!(
            "{{\"zone\":\"z{}\",\"temp\":{}.5,\"timestamp\":{}}}\n",
            rng.below(7),
            rng.below(100),
            1_700_000_000_000 + i
        ));
    }
    write(dir, "in.jsonl", &input);
    let rules = LIVE.replace("FOLLOW", if follow { "true" } else { "false" });
    write(dir, "rules.vpl", &rules);
    write(dir, "plain.vpl", &strip(&rules));
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
fn a_live_run_with_contexts_gives_the_bytes_of_one_engine() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_live(dir.path(), 5_000, false);
    // `--idle-timeout 0`: only events move time.
    let threads = live_to_end(&["rules.vpl", "--idle-timeout", "0"], dir.path());
    let err = String::from_utf8_lossy(&threads.stderr);
    assert!(
        err.contains("note: 2 contexts run on their own engine threads: ingest, analytics"),
        "{err}"
    );
    let sink = std::fs::read(dir.path().join("sink.jsonl")).expect("the sink file");
    std::fs::remove_file(dir.path().join("sink.jsonl")).expect("remove the sink file");
    let one = live_to_end(
        &["plain.vpl", "--idle-timeout", "0", "--workers", "1"],
        dir.path(),
    );
    let one_sink = std::fs::read(dir.path().join("sink.jsonl")).expect("the sink file");
    assert!(!threads.stdout.is_empty() && !sink.is_empty());
    assert!(threads.stdout == one.stdout, "the outputs differ");
    assert!(sink == one_sink, "the sink records differ");
}

#[test]
fn a_live_run_with_contexts_killed_and_restarted_ends_like_an_uninterrupted_one() {
    const EVENTS: u64 = 30_000;
    let run = |program: &'static str| {
        vec![
            program,
            "--idle-timeout",
            "0",
            "--state-dir",
            "state",
            "--checkpoint-interval",
            "50ms",
            "--output",
            "out.jsonl",
        ]
    };
    let reference = tempfile::tempdir().expect("tempdir");
    write_live(reference.path(), EVENTS, false);
    let started = std::time::Instant::now();
    live_to_end(&run("rules.vpl"), reference.path());
    let uninterrupted = started.elapsed();
    let expected_sink = std::fs::read(reference.path().join("sink.jsonl")).expect("sink");
    let expected_out = std::fs::read(reference.path().join("out.jsonl")).expect("out");

    let mut rng = Rng(0x5eed_c0de);
    let dir = tempfile::tempdir().expect("tempdir");
    write_live(dir.path(), EVENTS, false);
    let slice = u64::try_from(uninterrupted.as_millis()).unwrap_or(u64::MAX) / 8;
    let mut delays = Vec::new();
    let mut partial = 0;
    while delays.len() < 5 || (partial == 0 && delays.len() < 30) {
        let delay = std::time::Duration::from_millis(10 + rng.below(slice.max(20)));
        delays.push(delay);
        let mut child = live(&run("rules.vpl"), dir.path())
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
        "the kills should land while output is being written ({partial} bytes; delays \
         {delays:?})"
    );
    // The checkpoint of the context threads is one engine's: the program
    // without contexts, on one engine, takes it and ends the run.
    let last = live_to_end(&run("plain.vpl"), dir.path());
    let log = String::from_utf8_lossy(&last.stderr);
    let sink = std::fs::read(dir.path().join("sink.jsonl")).expect("sink");
    let out = std::fs::read(dir.path().join("out.jsonl")).expect("out");
    assert!(
        sink == expected_sink,
        "the sink differs (delays {delays:?}):\n{log}"
    );
    assert!(
        out == expected_out,
        "--output differs (delays {delays:?}):\n{log}"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

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

#[test]
fn the_metrics_count_the_context_threads_of_a_live_run() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().expect("tempdir");
    write_live(dir.path(), 100, true);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = live(&["rules.vpl", "--metrics", &addr], dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start varpulis");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut text = String::new();
    while !text.contains("varpulis_events_total 100\n") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        text = get(port, "/metrics");
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("varpulis_events_total 100\n"), "{text}");
    assert!(text.contains("varpulis_engine_contexts 2\n"), "{text}");
    assert!(text.contains("varpulis_engine_workers 1\n"), "{text}");
}

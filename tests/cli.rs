//! The `varpulis` binary as users run it: exit codes, output formats, bad
//! input, and sinks (a real file, a real HTTP server on 127.0.0.1).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn varpulis(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_varpulis"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .expect("run the varpulis binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write test file");
    p
}

const HOT: &str = "event Reading:\n    sensor: str\n    temp: float\n\nstream Hot = Reading\n    .where(temp > 30.0)\n    .emit(sensor: sensor, temp: temp)\n";

#[test]
fn check_reports_ok_and_exit_zero_on_a_valid_program() {
    let out = varpulis(&["check", "examples/iot/temperature.vpl"], &root());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("ok: 1 file checked"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn check_exits_one_with_code_location_and_help_on_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "bad.vpl",
        &HOT.replace(".where(temp > 30.0)", ".where(temprature > 30.0)"),
    );
    let out = varpulis(&["check", "--color", "never", "bad.vpl"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("E0202") || err.contains("E0201"), "{err}");
    assert!(err.contains("bad.vpl:6:12"), "{err}");
    assert!(err.contains("temp"), "did-you-mean help: {err}");
}

#[test]
fn check_json_format_is_a_json_array_for_tools() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "bad.vpl",
        &HOT.replace("temp > 30.0", "temp > \"x\""),
    );
    let out = varpulis(&["check", "--format", "json", "bad.vpl"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let first = &v.as_array().expect("an array")[0];
    assert_eq!(first["file"], "bad.vpl");
    assert_eq!(first["severity"], "error");
    assert!(first["code"].as_str().is_some_and(|c| c.starts_with('E')));
}

#[test]
fn explain_prints_a_page_and_rejects_unknown_codes() {
    let out = varpulis(&["explain", "e0202"], &root());
    assert!(out.status.success());
    assert!(
        text(&out.stdout).starts_with("# E0202"),
        "{}",
        text(&out.stdout)
    );
    let out = varpulis(&["explain", "E9999"], &root());
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn missing_files_exit_two_with_the_path() {
    let out = varpulis(&["check", "nope.vpl"], &root());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("nope.vpl"));
}

#[test]
fn simulate_jsonl_prints_only_outputs_on_stdout() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "r.vpl", HOT);
    write(dir.path(), "e.evt", "@0s Reading { sensor: \"a\", temp: 31.5 }\n@1s Reading { sensor: \"b\", temp: 20.0 }\n@2s Reading { sensor: \"c\", temp: 40.0 }\n");
    let out = varpulis(
        &["simulate", "r.vpl", "e.evt", "--format", "jsonl"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "{\"stream\":\"Hot\",\"event_type\":\"Hot\",\"timestamp\":\"1970-01-01T00:00:00Z\",\"sensor\":\"a\",\"temp\":31.5}\n\
         {\"stream\":\"Hot\",\"event_type\":\"Hot\",\"timestamp\":\"1970-01-01T00:00:02Z\",\"sensor\":\"c\",\"temp\":40.0}\n"
    );
    assert!(
        text(&out.stderr).contains("done: 3 events"),
        "{}",
        text(&out.stderr)
    );
    // The reference's flag spelling gives the same output.
    let flags = varpulis(
        &[
            "simulate", "-p", "r.vpl", "-e", "e.evt", "--format", "jsonl",
        ],
        dir.path(),
    );
    assert_eq!(flags.stdout, out.stdout);
}

#[test]
fn simulate_default_is_a_table_per_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "r.vpl", HOT);
    write(
        dir.path(),
        "e.evt",
        "@0s Reading { sensor: \"a\", temp: 31.5 }\n",
    );
    let out = varpulis(&["simulate", "r.vpl", "e.evt"], dir.path());
    assert!(out.status.success());
    insta::assert_snapshot!(text(&out.stdout), @r"
    Hot (1 event)
      timestamp             sensor  temp
      --------------------  ------  ----
      1970-01-01T00:00:00Z  a       31.5
    ");
}

#[test]
fn bad_input_lines_are_reported_with_line_numbers_counted_and_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "r.vpl", HOT);
    write(
        dir.path(),
        "e.evt",
        "@0s Reading { sensor: \"a\", temp: 31.5 }\n@zz Reading { }\n@1s Unknown { x: 1 }\n@2s Reading { sensor: \"b\", temp: \"hot\" }\n@3s Reading { sensor: \"c\", temp: 35.0 }\n",
    );
    let out = varpulis(
        &["simulate", "r.vpl", "e.evt", "--format", "jsonl"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).lines().count(),
        2,
        "a and c pass: {}",
        text(&out.stdout)
    );
    let err = text(&out.stderr);
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("line 3") && err.contains("Unknown"), "{err}");
    assert!(err.contains("line 4") && err.contains("temp"), "{err}");
    assert!(err.contains("skipped 3 input records"), "{err}");

    let strict = varpulis(&["simulate", "r.vpl", "e.evt", "--strict"], dir.path());
    assert_eq!(strict.status.code(), Some(1));
    assert!(
        text(&strict.stderr).contains("line 2"),
        "{}",
        text(&strict.stderr)
    );
}

#[test]
fn run_reads_json_lines_from_stdin_and_writes_to_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "r.vpl", HOT);
    let mut child = Command::new(env!("CARGO_BIN_EXE_varpulis"))
        .args(["run", "r.vpl", "--output", "out.jsonl"])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn varpulis run");
    let input = "{\"event_type\":\"Reading\",\"timestamp\":1000,\"sensor\":\"a\",\"temp\":33}\n\
                 {\"type\":\"Reading\",\"data\":{\"sensor\":\"b\",\"temp\":10.0}}\n\
                 {\"event_type\":\"Reading\",\"timestamp\":\"1970-01-01T00:00:05Z\",\"sensor\":\"c\",\"temp\":50.5}\n";
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let written = std::fs::read_to_string(dir.path().join("out.jsonl")).expect("output file");
    assert_eq!(
        written,
        "{\"stream\":\"Hot\",\"event_type\":\"Hot\",\"timestamp\":\"1970-01-01T00:00:01Z\",\"sensor\":\"a\",\"temp\":33.0}\n\
         {\"stream\":\"Hot\",\"event_type\":\"Hot\",\"timestamp\":\"1970-01-01T00:00:05Z\",\"sensor\":\"c\",\"temp\":50.5}\n"
    );
}

#[test]
fn program_errors_stop_simulate_with_exit_one_and_diagnostics() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "r.vpl",
        &HOT.replace("sensor: sensor", "sensor: sensr"),
    );
    write(dir.path(), "e.evt", "");
    let out = varpulis(&["simulate", "r.vpl", "e.evt"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("sensr"), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
}

#[test]
fn file_sink_writes_one_json_object_per_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let program =
        format!("connector Alerts = file (path: \"alerts.jsonl\")\n\n{HOT}    .to(Alerts)\n");
    write(dir.path(), "r.vpl", &program);
    write(
        dir.path(),
        "e.evt",
        "@0s Reading { sensor: \"a\", temp: 31.5 }\n@1s Reading { sensor: \"b\", temp: 1.0 }\n",
    );
    let out = varpulis(&["simulate", "r.vpl", "e.evt"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let alerts = std::fs::read_to_string(dir.path().join("alerts.jsonl")).expect("sink file");
    assert_eq!(alerts, "{\"event_type\":\"Hot\",\"timestamp\":\"1970-01-01T00:00:00Z\",\"sensor\":\"a\",\"temp\":31.5}\n");
}

/// Accepts one HTTP request and answers 200; returns the request body.
fn serve_one(listener: TcpListener) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read header");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("read body");
        let mut stream = stream;
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .expect("answer");
        String::from_utf8_lossy(&body).into_owned()
    })
}

#[test]
fn http_sink_posts_outputs_to_a_webhook() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("addr").port();
    let server = serve_one(listener);
    let dir = tempfile::tempdir().expect("tempdir");
    let program = format!("connector Hook = http (url: \"http://127.0.0.1:{port}/alerts\", retries: 0)\n\n{HOT}    .to(Hook)\n");
    write(dir.path(), "r.vpl", &program);
    write(
        dir.path(),
        "e.evt",
        "@0s Reading { sensor: \"a\", temp: 31.5 }\n",
    );
    let out = varpulis(&["simulate", "r.vpl", "e.evt"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let body = server.join().expect("server thread");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(v["event_type"], "Hot");
    assert_eq!(v["sensor"], "a");
}

const TEST_PASS: &str = "# hot readings\n# given:\n# @0s Reading { sensor: \"a\", temp: 31.5 }\n# @1s Reading { sensor: \"b\", temp: 2.0 }\n# end\n# expect:\n# {\"stream\": \"Hot\", \"sensor\": \"a\", \"temp\": 31.5}\n# end\n";

#[test]
fn varpulis_test_passes_fails_and_reports_broken_tests() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "pass.vpl", &format!("{TEST_PASS}{HOT}"));
    let out = varpulis(&["test", "."], dir.path());
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("PASS ./pass.vpl"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).ends_with("1 passed, 0 failed\n"),
        "{}",
        text(&out.stdout)
    );

    write(
        dir.path(),
        "fail.vpl",
        &format!("{}{HOT}", TEST_PASS.replace("31.5}", "99.0}")),
    );
    write(
        dir.path(),
        "broken.vpl",
        &format!("{TEST_PASS}{}", HOT.replace("temp > 30.0", "tmp > 30.0")),
    );
    let out = varpulis(&["test", "--color", "never", "."], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("FAIL ./fail.vpl"), "{stdout}");
    assert!(
        stdout.contains("- {\"stream\":\"Hot\",\"sensor\":\"a\",\"temp\":99.0}"),
        "{stdout}"
    );
    assert!(
        stdout.contains("+ {\"stream\":\"Hot\",\"sensor\":\"a\",\"temp\":31.5}"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ERROR ./broken.vpl") && stdout.contains("tmp"),
        "{stdout}"
    );
    assert!(stdout.ends_with("1 passed, 2 failed\n"), "{stdout}");
}

#[test]
fn varpulis_test_update_rewrites_only_the_expect_block() {
    let dir = tempfile::tempdir().expect("tempdir");
    let original = format!("{}{HOT}", TEST_PASS.replace("31.5}", "99.0}"));
    let path = write(dir.path(), "t.vpl", &original);
    write(dir.path(), "t.evt", "");
    let out = varpulis(&["test", "--update", "t.vpl"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("UPDATED t.vpl"));
    let updated = std::fs::read_to_string(&path).expect("read back");
    assert_eq!(updated, format!("{}{HOT}", TEST_PASS.replace("# {\"stream\": \"Hot\", \"sensor\": \"a\", \"temp\": 31.5}", "# {\"stream\": \"Hot\", \"timestamp\": \"1970-01-01T00:00:00Z\", \"sensor\": \"a\", \"temp\": 31.5}")));
    let again = varpulis(&["test", "t.vpl"], dir.path());
    assert!(again.status.success(), "{}", text(&again.stdout));
}

#[test]
fn varpulis_test_without_tests_or_events_explains_what_is_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = varpulis(&["test", "."], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no tests found"));
    write(dir.path(), "t.vpl", &format!("# expect:\n# end\n{HOT}"));
    let out = varpulis(&["test", "t.vpl"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("no events: add `t.evt`"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn imports_are_loaded_relative_to_the_importing_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("lib")).expect("mkdir");
    write(
        dir.path(),
        "lib/types.vpl",
        "event Reading:\n    sensor: str\n    temp: float\n",
    );
    write(
        dir.path(),
        "main.vpl",
        "import \"lib/types.vpl\"\n\nstream Hot = Reading\n    .where(temp > 30.0)\n    .emit(sensor: sensor, temp: temp)\n",
    );
    write(
        dir.path(),
        "e.evt",
        "@0s Reading { sensor: \"a\", temp: 31.5 }\n",
    );
    let out = varpulis(
        &["simulate", "main.vpl", "e.evt", "--format", "jsonl"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("\"sensor\":\"a\""),
        "{}",
        text(&out.stdout)
    );

    // Constants and functions of imported files (and of the files they import) run too;
    // a runtime error in one names its file.
    write(dir.path(), "lib/limits.vpl", "const LIMIT = 30.0\n");
    write(
        dir.path(),
        "lib/rules.vpl",
        "import \"limits.vpl\"\n\nfn hot(t: float) -> bool:\n    return t > LIMIT\n\nfn per(n: int) -> int:\n    return 100 / n\n",
    );
    write(
        dir.path(),
        "uses.vpl",
        "import \"lib/types.vpl\"\nimport \"lib/rules.vpl\"\n\nstream Hot = Reading\n    .where(hot(temp))\n    .emit(sensor: sensor, over: temp - LIMIT, p: per(0))\n",
    );
    let out = varpulis(&["run", "uses.vpl", "--input", "e.evt"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("\"over\":1.5"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("lib/rules.vpl:7"),
        "{}",
        text(&out.stderr)
    );

    write(dir.path(), "broken.vpl", "import \"lib/missing.vpl\"\n");
    let out = varpulis(&["check", "broken.vpl"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("lib/missing.vpl") && text(&out.stderr).contains("broken.vpl")
    );
}

#[test]
fn connector_sources_are_named_as_not_started_and_fed_from_the_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "r.vpl",
        "connector In = mqtt (host: \"localhost\", topic: \"r\")\n\nevent Reading:\n    sensor: str\n    temp: float\n\nstream Hot = Reading.from(In, topic: \"r\")\n    .where(temp > 30.0)\n    .emit(sensor: sensor)\n",
    );
    write(
        dir.path(),
        "e.jsonl",
        "{\"event_type\":\"Reading\",\"sensor\":\"a\",\"temp\":40}\n",
    );
    let out = varpulis(&["run", "r.vpl", "--input", "e.jsonl"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("connector `In` (mqtt)"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("\"sensor\":\"a\""),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn duration_flags_take_the_languages_durations() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "rules.vpl", HOT);
    write(dir.path(), "in.jsonl", "");
    let out = varpulis(
        &[
            "run",
            "rules.vpl",
            "--input",
            "in.jsonl",
            "--idle-timeout",
            "1d",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = varpulis(
        &[
            "run",
            "rules.vpl",
            "--input",
            "in.jsonl",
            "--idle-timeout",
            "5",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("needs a unit"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_config_file_overrides_connector_parameters_per_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "rules.vpl",
        "event Reading:\n    sensor: str\n    temp: float\n\nconnector Out = file (path: \"dev.jsonl\")\n\nstream Hot = Reading\n    .where(temp > 30.0)\n    .emit(sensor: sensor, temp: temp)\n    .to(Out)\n",
    );
    write(
        dir.path(),
        "in.jsonl",
        "{\"event_type\":\"Reading\",\"sensor\":\"a\",\"temp\":31.5}\n",
    );
    write(
        dir.path(),
        "prod.toml",
        "[connectors.Out]\npath = \"prod.jsonl\"\n",
    );
    let out = varpulis(
        &[
            "run",
            "rules.vpl",
            "--input",
            "in.jsonl",
            "--config",
            "prod.toml",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let prod = std::fs::read_to_string(dir.path().join("prod.jsonl")).expect("prod output");
    assert!(prod.contains("\"sensor\":\"a\""), "{prod}");
    assert!(!dir.path().join("dev.jsonl").exists());
    write(
        dir.path(),
        "typo.toml",
        "[connectors.Outt]\npath = \"x.jsonl\"\n",
    );
    let out = varpulis(
        &[
            "run",
            "rules.vpl",
            "--input",
            "in.jsonl",
            "--config",
            "typo.toml",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("did you mean `Out`?"),
        "{}",
        text(&out.stderr)
    );
}

/// A program with a Kafka source and sink. In a build without the `kafka` feature (the default
/// build) `check` passes with a warning naming the rebuild and `run` refuses to start with the
/// same fix; in a build with it, `check` is silent about it. `scripts/first-command` repeats the
/// no-feature half with the default release binary, since CI tests with `--all-features`.
#[test]
fn a_kafka_connector_in_a_build_without_kafka_names_the_rebuild() {
    let dir = tempfile::tempdir().expect("tempdir");
    let program = "connector Orders = kafka (brokers: \"127.0.0.1:1\", topic: \"orders\", group_id: \"g\")\n\n\
                   event Order:\n    user: str\n    amount: float\n\n\
                   stream Big = Order.from(Orders)\n    .where(amount > 10.0)\n    .emit(user: user)\n    .to(Orders, topic: \"big\")\n";
    write(dir.path(), "orders.vpl", program);
    let check = varpulis(&["check", "orders.vpl"], dir.path());
    let err = text(&check.stderr);
    assert!(check.status.success(), "a valid program checks: {err}");
    let fix = "cargo build --release --features kafka";
    if cfg!(feature = "kafka") {
        assert!(!err.contains(fix), "{err}");
        assert!(err.contains("ok: 1 file checked\n"), "{err}");
        return;
    }
    assert!(
        err.contains("warning: orders.vpl:1:1: connector `Orders`: this varpulis was built without kafka support"),
        "{err}"
    );
    assert!(err.contains(fix) && err.contains("cmake"), "{err}");
    assert!(err.contains("ok: 1 file checked, 1 warning"), "{err}");
    let run = varpulis(&["run", "orders.vpl"], dir.path());
    let err = text(&run.stderr);
    assert!(!run.status.success(), "{err}");
    assert!(err.contains(fix), "{err}");
    assert!(!err.contains("supported:"), "not an unknown kind: {err}");
}

/// The image's health check: `varpulis healthcheck` asks `/healthz` of the server named by
/// `VARPULIS_LISTEN` (wildcard host on loopback) and exits 0 on 2xx, 1 when nothing answers.
#[test]
fn healthcheck_exits_zero_when_healthz_answers_and_one_when_nothing_does() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("addr").port();
    let server = serve_one(listener);
    let out = Command::new(env!("CARGO_BIN_EXE_varpulis"))
        .arg("healthcheck")
        .env("VARPULIS_LISTEN", format!("0.0.0.0:{port}"))
        .output()
        .expect("run varpulis healthcheck");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("healthy: http://127.0.0.1:{port}/healthz answered 200 OK\n")
    );
    server.join().expect("the server thread");

    // The same port, closed now: nothing answers.
    let url = format!("http://127.0.0.1:{port}/healthz");
    let out = varpulis(&["healthcheck", &url, "--timeout", "2s"], &root());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with(&format!("unhealthy: {url}")),
        "{}",
        text(&out.stderr)
    );
}

/// The roadmap's `config:` block: connectors declared under `sources:` and
/// `sinks:` run like `connector` declarations, and `--config` overrides them
/// by the same names (`[sources.X]`, `[sinks.X]` or `[connectors.X]`).
#[test]
fn a_config_block_declares_the_connectors_a_run_uses_and_overrides_apply() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "rules.vpl",
        "config:\n  sources:\n    readings: { type: file, path: \"in.jsonl\" }\n  sinks:\n    alerts:\n      type: file\n      path: \"dev.jsonl\"\n\n\
         event Reading:\n    sensor: str\n    temp: float\n\n\
         stream Hot = Reading.from(readings)\n    .where(temp > 30.0)\n    .emit(sensor: sensor, temp: temp)\n    .to(alerts)\n",
    );
    write(
        dir.path(),
        "in.jsonl",
        "{\"sensor\":\"a\",\"temp\":31.5,\"timestamp\":1000}\n{\"sensor\":\"b\",\"temp\":20.0,\"timestamp\":2000}\n",
    );
    write(
        dir.path(),
        "prod_in.jsonl",
        "{\"sensor\":\"p\",\"temp\":45.0,\"timestamp\":1000}\n",
    );
    let check = varpulis(&["check", "rules.vpl"], dir.path());
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert!(
        !text(&check.stderr).contains("W0105"),
        "{}",
        text(&check.stderr)
    );

    let out = varpulis(&["run", "rules.vpl"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dev = std::fs::read_to_string(dir.path().join("dev.jsonl")).expect("dev output");
    assert!(
        dev.contains("\"sensor\":\"a\"") && dev.contains("\"event_type\":\"Hot\""),
        "{dev}"
    );
    assert!(!dev.contains("\"sensor\":\"b\""), "{dev}");

    write(
        dir.path(),
        "prod.toml",
        "[sources.readings]\npath = \"prod_in.jsonl\"\n\n[sinks.alerts]\npath = \"prod.jsonl\"\n",
    );
    let out = varpulis(&["run", "rules.vpl", "--config", "prod.toml"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let prod = std::fs::read_to_string(dir.path().join("prod.jsonl")).expect("prod output");
    assert!(prod.contains("\"sensor\":\"p\""), "{prod}");
    assert!(!prod.contains("\"sensor\":\"a\""), "{prod}");

    write(
        dir.path(),
        "kind.toml",
        "[connectors.alerts]\ntype = \"http\"\n",
    );
    let out = varpulis(&["run", "rules.vpl", "--config", "kind.toml"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("connector `alerts` is a `file` connector"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn check_reports_what_run_would_refuse() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "neg.vpl",
        "event Logout:\n    user: str\n\npattern Quiet = NOT Logout within 5s\n\nstream S = Quiet\n    .emit(x: 1)\n",
    );
    let out = varpulis(&["check", "neg.vpl"], dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("E0410"), "{}", text(&out.stderr));
    let out = varpulis(&["check", "--format", "json", "neg.vpl"], dir.path());
    assert!(text(&out.stdout).contains("E0410"), "{}", text(&out.stdout));
}

#[test]
fn run_max_keys_bounds_partitions_the_program_left_unbounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "r.vpl",
        "event Click:\n    user: str\n\nstream PerUser = Click\n    .partition_by(user)\n    .window(2)\n    .aggregate(n: count())\n    .emit(user: user, n: n)\n",
    );
    write(
        dir.path(),
        "e.jsonl",
        "{\"event_type\":\"Click\",\"user\":\"a\"}\n{\"event_type\":\"Click\",\"user\":\"b\"}\n{\"event_type\":\"Click\",\"user\":\"a\"}\n",
    );
    let out = varpulis(&["run", "r.vpl", "--input", "e.jsonl"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("\"user\":\"a\""),
        "{}",
        text(&out.stdout)
    );
    // With one key, b evicts a: a's first click is dropped with its window.
    let out = varpulis(
        &["run", "r.vpl", "--input", "e.jsonl", "--max-keys", "1"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stdout).contains("\"user\""),
        "{}",
        text(&out.stdout)
    );
    let out = varpulis(
        &["run", "r.vpl", "--input", "e.jsonl", "--max-keys", "0"],
        dir.path(),
    );
    assert!(!out.status.success());
}

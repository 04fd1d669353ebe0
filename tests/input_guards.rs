//! Live input that would poison event time is refused: an event stamped far in the future is
//! counted, dead-lettered and skipped, so the events after it are not late.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

fn write(dir: &Path, name: &str, body: &str) {
    std::fs::write(dir.join(name), body).expect("write test file");
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis()
}

#[test]
fn an_event_from_the_far_future_is_dead_lettered_instead_of_moving_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = now_ms();
    let future = now + 2 * 3600 * 1000;
    write(
        dir.path(),
        "in.jsonl",
        &format!(
            "{{\"zone\":\"a\",\"temp\":1,\"timestamp\":{now}}}\n{{\"zone\":\"future\",\"temp\":1,\"timestamp\":{future}}}\n{{\"zone\":\"c\",\"temp\":1,\"timestamp\":{}}}\n",
            now + 1
        ),
    );
    write(
        dir.path(),
        "rules.vpl",
        "event Reading:\n    zone: str\n    temp: float\n\nconnector In = file (path: \"in.jsonl\")\n\nstream All = Reading.from(In).emit(zone: zone)\n",
    );
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_varpulis"))
            .args(["run", "rules.vpl", "--dead-letter", "dead.jsonl"])
            .args(extra)
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run")
    };
    let out = run(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let zones: Vec<String> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["zone"].to_string())
        .collect();
    assert_eq!(zones, ["\"a\"", "\"c\""], "{stderr}");
    assert!(stderr.contains("--max-future-skew"), "{stderr}");
    let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).expect("dead letters");
    assert!(
        dead.contains("future") && dead.contains("max-future-skew"),
        "{dead}"
    );
    // `0` lifts the limit: the event is accepted.
    let out = run(&["--max-future-skew", "0"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"future\""), "{stdout}");
}

#[test]
fn unknown_event_types_are_counted_but_the_names_remembered_are_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines: String = (0..3000)
        .map(|i| format!("{{\"event_type\":\"Made{i}\",\"x\":1}}\n"))
        .collect();
    write(dir.path(), "in.jsonl", &lines);
    write(
        dir.path(),
        "rules.vpl",
        "event Reading:\n    zone: str\n\nstream All = Reading.emit(zone: zone)\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_varpulis"))
        .args(["run", "rules.vpl", "--input", "in.jsonl"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let reported = stderr.matches("unknown event type").count();
    assert_eq!(reported, 1024, "each name once, at most 1024 names");
    assert!(
        stderr.contains("(unknown type 3000)"),
        "every record is counted: {stderr}"
    );
}

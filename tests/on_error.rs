//! `.on_error(Conn)` end to end (docs/LANGUAGE.md#on_error): the `varpulis`
//! binary sends one error record per runtime error of the stream to the
//! connector, keeps counting the errors, and leaves other streams alone.

use std::path::Path;
use std::process::{Command, Output};

fn varpulis(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_varpulis"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .expect("run the varpulis binary")
}

const PROGRAM: &str = r#"connector Errors = file (path: "errors.jsonl")

event Reading:
    pump: str
    bar: float
    n: int

stream PerSample = Reading
    .on_error(Errors)
    .where(bar / n > 1.0)
    .emit(pump: pump, per: bar / n)

stream Pairs = Reading
    .window(2)
    .all(10 / n > 1)
    .emit(pump: pump)
    .on_error(Errors)

stream Unrouted = Reading
    .emit(ratio: bar / n)
"#;

const EVENTS: &str = r#"@0s Reading { pump: "p1", bar: 4.0, n: 2 }
@1s Reading { pump: "p2", bar: 4.0, n: 0 }
@2s Reading { pump: "p3", bar: 4.0, n: 1 }
"#;

#[test]
fn runtime_errors_of_a_stream_go_to_its_error_connector_and_are_still_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("r.vpl"), PROGRAM).expect("write program");
    std::fs::write(dir.path().join("e.evt"), EVENTS).expect("write events");
    let out = varpulis(
        &["simulate", "r.vpl", "e.evt", "--format", "jsonl"],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("3 runtime errors"), "{stderr}");
    let records = std::fs::read_to_string(dir.path().join("errors.jsonl")).expect("error file");
    let lines: Vec<&str> = records.lines().collect();
    assert_eq!(
        lines,
        [
            r#"{"event_type":"RuntimeError","timestamp":"1970-01-01T00:00:01Z","stream_name":"PerSample","code":"R0001","error":"division by zero","detail":"float Div int","location":"r.vpl:10:12","event":{"bar":4.0,"n":0,"pump":"p2"}}"#,
            r#"{"event_type":"RuntimeError","timestamp":"1970-01-01T00:00:01Z","stream_name":"Pairs","code":"R0001","error":"division by zero","detail":"int Div int","location":"r.vpl:15:10","event":{"bar":4.0,"n":0,"pump":"p2"}}"#,
        ],
        "one record per error of the two routed streams, none for `Unrouted`"
    );
    // The outputs themselves are unchanged by the routing.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.contains("PerSample")).count(),
        2
    );
}

/// More errors than the interpreter keeps as reports between two reads by
/// the host: every one of them is still routed.
#[test]
fn every_error_is_routed_even_past_the_report_cap() {
    use std::sync::Arc;
    use varpulis_program::{Event, Value};
    use varpulis_vm::{Engine, SideOutput};

    let mut c = varpulis_compiler::Compiler::new();
    c.set_file("r.vpl", PROGRAM);
    let program = c.program("r.vpl").expect("the program compiles");
    let reading = program
        .schemas
        .iter()
        .position(|s| &*s.name == "Reading")
        .expect("a Reading schema") as u32;
    let mut engine = Engine::new(Arc::new(program)).expect("the program loads");
    let n = 1_500;
    for i in 0..n {
        let fields = vec![
            Some(Value::str("p")),
            Some(Value::Float(4.0)),
            Some(Value::Int(0)),
        ];
        engine.push(Event::new(reading, i, fields));
    }
    let routed = engine
        .take_side_outputs()
        .iter()
        .filter(|s| matches!(s, SideOutput::Sink { output, .. } if &*output.stream == "PerSample"))
        .count();
    assert_eq!(routed, n as usize);
    assert!(
        engine.take_errors().len() < n as usize,
        "reports are capped"
    );
}

/// A merge branch's condition is part of the stream too.
#[test]
fn errors_of_a_merge_branch_are_routed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let program = r#"connector Errors = file (path: "errors.jsonl")

event A:
    x: int

event B:
    x: int

stream Both = merge(stream Fa = A.where(10 / x > 1), B)
    .on_error(Errors)
    .emit(x: x)
"#;
    std::fs::write(dir.path().join("m.vpl"), program).expect("write program");
    std::fs::write(
        dir.path().join("m.evt"),
        "@0s A { x: 0 }\n@1s B { x: 0 }\n@2s A { x: 2 }\n",
    )
    .expect("write events");
    let out = varpulis(
        &["simulate", "m.vpl", "m.evt", "--format", "jsonl"],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = std::fs::read_to_string(dir.path().join("errors.jsonl")).expect("error file");
    assert_eq!(records.lines().count(), 1, "{records}");
    assert!(records.contains(r#""event":{"x":0}"#), "{records}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
}

/// An error inside a window's group names the event that failed, not the
/// one that closed the window.
#[test]
fn a_group_error_names_the_event_that_failed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let program = r#"connector Errors = file (path: "errors.jsonl")

event R:
    id: str
    n: int

stream Pairs = R
    .window(2)
    .any(10 / n > 1)
    .emit(id: id)
    .on_error(Errors)
"#;
    std::fs::write(dir.path().join("g.vpl"), program).expect("write program");
    std::fs::write(
        dir.path().join("g.evt"),
        "@0s R { id: \"zero\", n: 0 }\n@1s R { id: \"one\", n: 1 }\n",
    )
    .expect("write events");
    let out = varpulis(
        &["simulate", "g.vpl", "g.evt", "--format", "jsonl"],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = std::fs::read_to_string(dir.path().join("errors.jsonl")).expect("error file");
    assert_eq!(records.lines().count(), 1, "{records}");
    assert!(
        records.contains(r#""timestamp":"1970-01-01T00:00:00Z""#)
            && records.contains(r#""event":{"id":"zero","n":0}"#),
        "{records}"
    );
}

//! The file and console sinks on real files, including a full disk (`/dev/full`).

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use varpulis_connectors::{
    open_sink, ConfigError, ConfigValue, ConnectorConfig, Record, Sink, SinkContext, SinkError,
};

fn record(i: u64) -> Record {
    Record::from_json(format!(r#"{{"event_type":"Reading","i":{i}}}"#).as_bytes())
        .expect("valid record")
}

fn file_config(params: &[(&str, ConfigValue)]) -> ConnectorConfig {
    params
        .iter()
        .fold(ConnectorConfig::new("Out", "file"), |c, (k, v)| {
            c.param(*k, v.clone())
        })
}

fn open(dir: &Path, params: &[(&str, ConfigValue)]) -> Box<dyn Sink> {
    open_sink(&file_config(params), &SinkContext::new(dir)).expect("valid file connector")
}

/// The `i` field of each line of a JSONL file.
fn ids(path: &Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("each line is JSON");
            v["i"].as_u64().expect("i")
        })
        .collect()
}

#[test]
fn writes_one_json_line_per_record_to_the_default_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = open(dir.path(), &[]);
    sink.send(record(1)).expect("buffered");
    sink.send(record(2)).expect("buffered");
    sink.close().expect("written");
    let text = std::fs::read_to_string(dir.path().join("Out.jsonl")).expect("Out.jsonl");
    assert_eq!(
        text,
        "{\"event_type\":\"Reading\",\"i\":1}\n{\"event_type\":\"Reading\",\"i\":2}\n"
    );
    let m = sink.metrics();
    assert_eq!((m.sent, m.bytes, m.failed), (2, text.len() as u64, 0));
}

#[test]
fn reopening_appends_by_default_and_truncates_with_append_false() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = [("path", ConfigValue::Str("out/readings.jsonl".into()))];
    std::fs::create_dir(dir.path().join("out")).expect("mkdir");
    for i in 0..2 {
        let mut sink = open(dir.path(), &path);
        sink.send(record(i)).expect("buffered");
        sink.close().expect("written");
    }
    let file = dir.path().join("out/readings.jsonl");
    assert_eq!(ids(&file), [0, 1]);

    let mut sink = open(
        dir.path(),
        &[path[0].clone(), ("append", ConfigValue::Bool(false))],
    );
    sink.send(record(9)).expect("buffered");
    sink.close().expect("written");
    assert_eq!(ids(&file), [9]);
}

#[test]
fn buffered_records_reach_the_file_on_flush_and_on_drop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("Out.jsonl");
    let mut sink = open(dir.path(), &[]);
    sink.send(record(1)).expect("buffered");
    assert_eq!(sink.metrics().queue_depth, 1);
    sink.flush().expect("flushed");
    assert_eq!(ids(&file), [1]);
    sink.send(record(2)).expect("buffered");
    drop(sink);
    assert_eq!(ids(&file), [1, 2]);
}

#[test]
fn rotates_by_size_and_keeps_max_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let line_len = record(0).len() as u64 + 1;
    let mut sink = open(
        dir.path(),
        &[
            // Room for exactly two lines per file.
            ("rotate_bytes", ConfigValue::Int((2 * line_len) as i64)),
            ("max_files", ConfigValue::Int(2)),
        ],
    );
    for i in 0..9 {
        sink.send(record(i)).expect("written");
    }
    sink.close().expect("written");

    let base = dir.path().join("Out.jsonl");
    let rotated = |n: u32| dir.path().join(format!("Out.jsonl.{n}"));
    assert_eq!(ids(&rotated(2)), [4, 5], "oldest kept file");
    assert_eq!(ids(&rotated(1)), [6, 7]);
    assert_eq!(ids(&base), [8], "current file");
    assert!(
        !rotated(3).exists(),
        "only max_files rotated files are kept"
    );
    for path in [base, rotated(1), rotated(2)] {
        let len = std::fs::metadata(&path).expect("exists").len();
        assert!(len <= 2 * line_len, "{} is {len} bytes", path.display());
    }
}

#[test]
fn rotation_counts_existing_content_when_appending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let line_len = record(0).len() as u64 + 1;
    let rotate = [("rotate_bytes", ConfigValue::Int((2 * line_len) as i64))];
    let mut sink = open(dir.path(), &rotate);
    sink.send(record(0)).expect("written");
    sink.close().expect("written");
    let mut sink = open(dir.path(), &rotate);
    sink.send(record(1)).expect("written");
    sink.send(record(2)).expect("written");
    sink.close().expect("written");
    assert_eq!(ids(&dir.path().join("Out.jsonl.1")), [0, 1]);
    assert_eq!(ids(&dir.path().join("Out.jsonl")), [2]);
}

#[test]
fn unwritable_path_is_a_config_error_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A regular file where a directory is expected: unwritable even for root.
    std::fs::write(dir.path().join("blocker"), "x").expect("write");
    let config = file_config(&[("path", ConfigValue::Str("blocker/out.jsonl".into()))]);
    let err = open_sink(&config, &SinkContext::new(dir.path()))
        .err()
        .expect("cannot open");
    assert!(matches!(err, ConfigError::Open { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("connector `Out`"), "{message}");
    assert!(message.contains("blocker/out.jsonl"), "{message}");
}

#[test]
fn full_disk_gives_an_error_naming_the_path_counts_and_dead_letters() {
    let full = Path::new("/dev/full");
    if !full.exists() {
        eprintln!("skipped: /dev/full is not available on this system");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = open(
        dir.path(),
        &[
            ("path", ConfigValue::Str("/dev/full".into())),
            ("dead_letter", ConfigValue::Str("Out.dead.jsonl".into())),
        ],
    );
    for i in 0..3 {
        sink.send(record(i)).expect("buffered, not yet written");
    }
    let err = sink.flush().expect_err("no space left on /dev/full");
    match &err {
        SinkError::WriteFailed {
            records,
            dead_lettered,
            ..
        } => assert_eq!((*records, *dead_lettered), (3, true)),
        other => panic!("unexpected error: {other}"),
    }
    assert!(err.is_retryable(), "space may be freed");
    let message = err.to_string();
    assert!(message.contains("`/dev/full`"), "{message}");
    assert!(message.contains("3 record(s)"), "{message}");

    let m = sink.metrics();
    assert_eq!((m.sent, m.failed, m.dead_lettered, m.dropped), (0, 3, 3, 0));
    assert!(m.last_error.is_some_and(|e| e.contains("/dev/full")));
    let dead = std::fs::read_to_string(dir.path().join("Out.dead.jsonl")).expect("dead letters");
    let lines: Vec<Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l["_error"]
        .as_str()
        .is_some_and(|e| e.contains("/dev/full"))));

    // The sink keeps working after a failure: the next write fails the same clear way.
    sink.send(record(3)).expect("buffered");
    assert!(sink.close().is_err());
    assert_eq!(sink.metrics().failed, 4);
}

#[test]
fn full_disk_without_dead_letter_counts_records_as_dropped() {
    if !Path::new("/dev/full").exists() {
        eprintln!("skipped: /dev/full is not available on this system");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = open(
        dir.path(),
        &[("path", ConfigValue::Str("/dev/full".into()))],
    );
    sink.send(record(0)).expect("buffered");
    let err = sink.close().expect_err("no space");
    assert!(
        matches!(
            err,
            SinkError::WriteFailed {
                dead_lettered: false,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(sink.metrics().dropped, 1);
}

#[test]
fn send_after_close_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = open(dir.path(), &[]);
    sink.close().expect("nothing buffered");
    assert!(matches!(
        sink.send(record(1)),
        Err(SinkError::Closed { .. })
    ));
}

#[test]
fn misspelt_file_parameter_is_reported_with_a_suggestion() {
    let err = open_sink(
        &file_config(&[("rotate_byte", ConfigValue::Int(10))]),
        &SinkContext::new("."),
    )
    .err()
    .expect("unknown parameter");
    assert_eq!(
        err.to_string(),
        "connector `Out`: unknown parameter `rotate_byte` for a file sink; did you mean `rotate_bytes`?"
    );
}

#[test]
fn wrong_kind_of_value_is_reported() {
    let err = open_sink(
        &file_config(&[("append", ConfigValue::Str("yes".into()))]),
        &SinkContext::new("."),
    )
    .err()
    .expect("string is not a bool");
    assert_eq!(
        err.to_string(),
        "connector `Out`: parameter `append` must be `true` or `false`, found a string"
    );
}

#[test]
fn console_sink_writes_json_lines_to_the_context_writer() {
    let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
    let context = SinkContext {
        console: Some(buf.clone()),
        ..SinkContext::new(".")
    };
    let mut sink =
        open_sink(&ConnectorConfig::new("Show", "console"), &context).expect("console sink");
    sink.send(record(1)).expect("written");
    sink.close().expect("flushed");
    let text = String::from_utf8(buf.lock().expect("not poisoned").clone()).expect("utf8");
    assert_eq!(text, "{\"event_type\":\"Reading\",\"i\":1}\n");
}

fn far() -> std::time::Instant {
    std::time::Instant::now() + std::time::Duration::from_secs(10)
}

/// Every file of the sink (`Out.jsonl`, `Out.jsonl.1`, ...) with its bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("Out.jsonl"))
        })
        .map(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            (name.unwrap_or_default(), std::fs::read(&p).expect("read"))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_restore_truncates_back_to_the_barrier_so_a_replay_writes_once() {
    for append in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let params = [("append", ConfigValue::Bool(append))];
        let mut sink = open(dir.path(), &params);
        for i in 0..3 {
            sink.send(record(i)).expect("buffered");
        }
        let mark = sink
            .barrier(far())
            .expect("synced")
            .expect("a file has a mark");
        // Written after the checkpoint, then the process dies.
        for i in 3..5 {
            sink.send(record(i)).expect("buffered");
        }
        sink.flush().expect("written");
        drop(sink);
        assert_eq!(ids(&dir.path().join("Out.jsonl")), [0, 1, 2, 3, 4]);

        let mut sink = open(dir.path(), &params);
        sink.restore(&mark).expect("restored");
        assert_eq!(
            ids(&dir.path().join("Out.jsonl")),
            [0, 1, 2],
            "append: {append}"
        );
        for i in 3..6 {
            sink.send(record(i)).expect("buffered");
        }
        sink.close().expect("written");
        assert_eq!(ids(&dir.path().join("Out.jsonl")), [0, 1, 2, 3, 4, 5]);
    }
}

#[test]
fn a_restore_undoes_the_rotations_that_followed_the_barrier() {
    // Checkpoints after 4 records (the file rotated 0 times since), after 9 (a few times) and
    // after 1 (so often that the checkpoint's file was rotated out).
    for (max_files, at) in [(8, 4u64), (8, 9), (2, 1)] {
        let params = [
            ("rotate_bytes", ConfigValue::Int(150)),
            ("max_files", ConfigValue::Int(max_files)),
        ];
        let reference = tempfile::tempdir().expect("tempdir");
        let mut sink = open(reference.path(), &params);
        for i in 0..30 {
            sink.send(record(i)).expect("buffered");
            sink.flush().expect("written");
        }
        sink.close().expect("closed");

        let dir = tempfile::tempdir().expect("tempdir");
        let mut sink = open(dir.path(), &params);
        let mut mark = None;
        for i in 0..20 {
            sink.send(record(i)).expect("buffered");
            sink.flush().expect("written");
            if i + 1 == at {
                mark = sink.barrier(far()).expect("synced");
            }
        }
        drop(sink);
        let mark = mark.expect("a file has a mark");
        let mut sink = open(dir.path(), &params);
        sink.restore(&mark).expect("restored");
        for i in at..30 {
            sink.send(record(i)).expect("buffered");
            sink.flush().expect("written");
        }
        sink.close().expect("closed");
        assert_eq!(
            files(dir.path()),
            files(reference.path()),
            "max_files {max_files}, checkpoint after {at} records"
        );
    }
}

#[test]
fn a_file_shorter_than_the_checkpoint_is_refused_with_advice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = open(dir.path(), &[]);
    for i in 0..3 {
        sink.send(record(i)).expect("buffered");
    }
    let mark = sink.barrier(far()).expect("synced").expect("mark");
    drop(sink);
    std::fs::write(dir.path().join("Out.jsonl"), "{}\n").expect("edit the file");
    let mut sink = open(dir.path(), &[]);
    let err = sink
        .restore(&mark)
        .expect_err("shorter than the checkpoint");
    let text = err.to_string();
    assert!(
        text.starts_with("connector `Out`: cannot take `") && text.contains("Out.jsonl"),
        "{text}"
    );
    assert!(text.contains("remove the state directory"), "{text}");
}

#[test]
fn records_lost_to_a_write_failure_fail_every_later_barrier() {
    if !Path::new("/dev/full").exists() {
        eprintln!("skipped: /dev/full is not available on this system");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sink = open(
        dir.path(),
        &[
            ("path", ConfigValue::Str("/dev/full".into())),
            ("dead_letter", ConfigValue::Str("Out.dead.jsonl".into())),
        ],
    );
    sink.send(record(0)).expect("buffered");
    let err = sink.barrier(far()).expect_err("no space");
    assert!(matches!(err, SinkError::WriteFailed { .. }), "{err}");
    // Dead-lettered, but missing from the file: no checkpoint may commit past it.
    let err = sink.barrier(far()).expect_err("still missing");
    assert!(matches!(err, SinkError::Lost { records: 1, .. }), "{err}");
    assert!(err.to_string().contains("restart"), "{err}");
}

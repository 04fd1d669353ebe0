//! The file source at the connector level: JSON lines read once or followed, on temporary
//! directories (`tests/live.rs` at the root checks it end to end through the CLI).

use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use varpulis_connectors::{
    open_source, ConfigError, ConfigValue, ConnectorConfig, Source, SourceConfig, SourceContext,
    SourceEvent, SourceSender,
};

/// Upper bound of every wait; tests finish as soon as the condition holds.
const PATIENCE: Duration = Duration::from_secs(10);

/// A running source and the host's end of its channel; the host never sets its stop flag.
struct Host {
    source: Box<dyn Source>,
    events: Receiver<SourceEvent>,
    _stopping: Arc<AtomicBool>,
}

fn start(dir: &Path, params: &[(&str, ConfigValue)], capacity: usize) -> Host {
    let connector = params
        .iter()
        .fold(ConnectorConfig::new("Recorded", "file"), |c, (k, v)| {
            c.param(*k, v.clone())
        });
    let (tx, events) = crossbeam_channel::bounded(capacity);
    let stopping = Arc::new(AtomicBool::new(false));
    let source = open_source(
        &SourceConfig::new(connector, 4),
        &SourceContext::new(dir),
        SourceSender::new(tx, stopping.clone()),
    )
    .expect("valid file source");
    Host {
        source,
        events,
        _stopping: stopping,
    }
}

fn path(p: &str) -> (&'static str, ConfigValue) {
    ("path", ConfigValue::Str(p.into()))
}

impl Host {
    /// The next event, or a panic after `PATIENCE`.
    fn next(&self) -> SourceEvent {
        self.events
            .recv_timeout(PATIENCE)
            .expect("an event within the patience")
    }

    /// The next event, which must be a message: (payload without its newline, place).
    fn message(&self) -> (String, String) {
        match self.next() {
            SourceEvent::Message(m) => {
                assert_eq!(m.source, 4);
                assert!(m.received_ms > 0);
                let payload = String::from_utf8(m.payload).expect("utf-8");
                (payload.trim_end().to_string(), m.place)
            }
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open for appending");
    file.write_all(text.as_bytes()).expect("append");
}

#[test]
fn a_file_is_read_once_skipping_blank_lines_then_the_source_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("in.jsonl");
    // The last line has no newline: a file that is not followed still delivers it.
    std::fs::write(&file, "{\"a\":1}\n\n   \n{\"a\":2}\n{\"a\":3}").expect("write");
    let mut host = start(dir.path(), &[path("in.jsonl")], 16);
    assert_eq!(host.source.describe(), format!("file {}", file.display()));
    let place = |n| format!("{} line {n}", file.display());
    assert_eq!(host.message(), (r#"{"a":1}"#.into(), place(1)));
    assert_eq!(host.message(), (r#"{"a":2}"#.into(), place(4)));
    assert_eq!(host.message(), (r#"{"a":3}"#.into(), place(5)));
    assert_eq!(host.next(), SourceEvent::Ended { source: 4 });
    let metrics = host.source.metrics();
    assert_eq!((metrics.received, metrics.errors), (3, 0), "{metrics:?}");
    host.source.stop();
}

#[test]
fn a_followed_file_delivers_appended_lines_and_holds_an_incomplete_last_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("in.jsonl");
    std::fs::write(&file, "{\"a\":1}\n").expect("write");
    let mut host = start(
        dir.path(),
        &[
            path("in.jsonl"),
            ("follow", ConfigValue::Bool(true)),
            ("poll", ConfigValue::Duration(10_000_000)),
        ],
        16,
    );
    assert!(host.source.describe().ends_with("(following)"));
    assert_eq!(host.message().0, r#"{"a":1}"#);
    append(&file, "{\"a\":2}\n\n");
    assert_eq!(
        host.message(),
        (r#"{"a":2}"#.into(), format!("{} line 2", file.display()))
    );
    append(&file, "{\"a\":");
    assert!(
        host.events
            .recv_timeout(Duration::from_millis(300))
            .is_err(),
        "an incomplete line was delivered"
    );
    append(&file, "3}\n");
    assert_eq!(
        host.message(),
        (r#"{"a":3}"#.into(), format!("{} line 4", file.display()))
    );
    // A followed file never ends by itself.
    assert!(host
        .events
        .recv_timeout(Duration::from_millis(100))
        .is_err());
    host.source.stop();
    assert_eq!(host.source.metrics().received, 3);
}

#[test]
fn a_missing_file_is_a_config_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tx, _rx) = crossbeam_channel::bounded(1);
    let connector = ConnectorConfig::new("Recorded", "file")
        .param("path", ConfigValue::Str("nope.jsonl".into()));
    let err = open_source(
        &SourceConfig::new(connector, 0),
        &SourceContext::new(dir.path()),
        SourceSender::new(tx, Arc::default()),
    )
    .err()
    .expect("no such file");
    let missing = dir.path().join("nope.jsonl");
    assert!(
        matches!(&err, ConfigError::OpenInput { path, .. } if *path == missing),
        "{err}"
    );
    assert!(
        err.to_string().starts_with(&format!(
            "connector `Recorded`: cannot open `{}` for reading: ",
            missing.display()
        )),
        "{err}"
    );
}

#[test]
fn stop_is_bounded_while_a_followed_file_waits_for_a_long_poll() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.jsonl"), "").expect("write");
    let mut host = start(
        dir.path(),
        &[
            path("in.jsonl"),
            ("follow", ConfigValue::Bool(true)),
            ("poll", ConfigValue::Duration(60_000_000_000)),
        ],
        16,
    );
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    host.source.stop();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "stop took {:?}",
        start.elapsed()
    );
    assert!(host.events.try_recv().is_err());
}

#[test]
fn stop_returns_promptly_while_the_host_queue_is_full_and_nobody_reads_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut file = std::fs::File::create(dir.path().join("in.jsonl")).expect("create");
    for i in 0..5 {
        writeln!(file, "{{\"i\":{i}}}").expect("write");
    }
    let mut host = start(dir.path(), &[path("in.jsonl")], 1);
    let deadline = Instant::now() + PATIENCE;
    while !host.events.is_full() {
        assert!(
            Instant::now() < deadline,
            "the source never filled the queue"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The reader now waits for room with the second line in hand; the host keeps running.
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    host.source.stop();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "stop took {:?}",
        start.elapsed()
    );
    assert_eq!(host.events.try_iter().count(), 1, "nothing after stop");
    assert_eq!(host.source.metrics().received, 1);
}

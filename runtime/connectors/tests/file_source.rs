//! The file source at the connector level: JSON lines read once or followed, on temporary
//! directories (`tests/live.rs` at the root checks it end to end through the CLI).

use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use varpulis_connectors::{
    open_source, ConfigValue, ConnectorConfig, Source, SourceConfig, SourceContext, SourceEvent,
    SourceSender,
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
        &SourceConfig { connector, id: 4 },
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

//! Delivery guarantees of live runs with `--state-dir` (docs/RUNTIME.md,
//! "Delivery guarantees"): a run SIGKILLed at random points and restarted
//! each time ends with the same `file` sink and `--output` files as an
//! uninterrupted run, byte for byte; a Kafka → Kafka run killed the same way
//! loses nothing and replays identical records (against the broker of
//! `VARPULIS_TEST_KAFKA`); replayed records keep their idempotency keys; a sink that cannot confirm its records fails the checkpoint, by
//! name and counted.
//!
//! The kill points come from a seeded generator: set `VARPULIS_CRASH_SEED`
//! to replay a failing sequence (the seed and the delays are in the failure
//! message).

#[allow(dead_code)] // the Kafka helpers are used only with the kafka feature
mod common;
#[cfg(feature = "kafka")]
use common::create_topics;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write test file");
    p
}

fn varpulis(args: &[&str], cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_varpulis"));
    cmd.arg("run")
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

fn run_to_end(args: &[&str], cwd: &Path) -> Output {
    let out = varpulis(args, cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run varpulis");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// xorshift64*: a small seeded generator, so kill points are reproducible.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

const READING: &str = "event Reading:\n    zone: str\n    temp: float\n\n";

/// `in.jsonl` with `n` readings over 7 zones, one millisecond apart, and the
/// rules: per zone, a count window of 5 → the `file` sink `sink.jsonl` and
/// the outputs.
fn write_pipeline(dir: &Path, n: u64) {
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
    write(
        dir,
        "rules.vpl",
        &format!(
            "{READING}connector In = file (path: \"in.jsonl\")\nconnector Out = file (path: \"sink.jsonl\")\n\n\
             stream Counts = Reading.from(In)\n    .partition_by(zone)\n    .window(5)\n    \
             .aggregate(n: count(), total: sum(temp))\n    .emit(zone: zone, n: n, total: total)\n    .to(Out)\n"
        ),
    );
}

const RUN: &[&str] = &[
    "rules.vpl",
    "--state-dir",
    "state",
    "--checkpoint-interval",
    "50ms",
    "--output",
    "out.jsonl",
];

#[test]
fn file_sink_and_output_file_survive_sigkill_at_random_points_byte_for_byte() {
    const EVENTS: u64 = 60_000;
    const KILLS: usize = 12;
    let reference = tempfile::tempdir().expect("tempdir");
    write_pipeline(reference.path(), EVENTS);
    let started = Instant::now();
    run_to_end(RUN, reference.path());
    let uninterrupted = started.elapsed();
    let expected_sink = std::fs::read(reference.path().join("sink.jsonl")).expect("sink");
    let expected_out = std::fs::read(reference.path().join("out.jsonl")).expect("out");
    assert!(
        expected_sink.len() > 1_000_000,
        "the input is too small to be worth killing"
    );

    let seed = std::env::var("VARPULIS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_u64);
    let mut rng = Rng(seed.max(1));
    let dir = tempfile::tempdir().expect("tempdir");
    write_pipeline(dir.path(), EVENTS);
    // Each run lives for a random slice of the uninterrupted run's time, so
    // all the kills happen before the input can be done, however fast this
    // machine is.
    let slice = u64::try_from(uninterrupted.as_millis()).unwrap_or(u64::MAX) / 12;
    let mut delays = Vec::new();
    for _ in 0..KILLS {
        let delay = Duration::from_millis(10 + rng.below(slice.max(20)));
        delays.push(delay);
        let mut child: Child = varpulis(RUN, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start varpulis");
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().expect("wait");
        assert!(
            !status.success(),
            "the run ended before kill {} (seed {seed}, delays {delays:?})",
            delays.len()
        );
    }
    let mut partial = std::fs::metadata(dir.path().join("sink.jsonl")).map_or(0, |m| m.len());
    // On a loaded machine a run can take longer to start than every delay above: kill later
    // ones, still well before the input can be done, until output is being written.
    let mut late = 0;
    while partial == 0 && late < 20 {
        late += 1;
        let delay = uninterrupted / 3;
        delays.push(delay);
        let mut child: Child = varpulis(RUN, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
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
    let last = run_to_end(RUN, dir.path());
    let context = format!(
        "seed {seed}, kill delays {delays:?}; last run:\n{}",
        String::from_utf8_lossy(&last.stderr)
    );
    let sink = std::fs::read(dir.path().join("sink.jsonl")).expect("sink");
    let out = std::fs::read(dir.path().join("out.jsonl")).expect("out");
    common::assert_same(&sink, &expected_sink, "the file sink", &context);
    common::assert_same(&out, &expected_out, "--output", &context);
}

/// A webhook receiver on 127.0.0.1: answers 200 (after `hang`) and keeps
/// each request's `Idempotency-Key` with its body.
struct Receiver {
    port: u16,
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

impl Receiver {
    fn start(hang: Duration) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let log = log.clone();
                std::thread::spawn(move || serve(stream, &log, hang));
            }
        });
        Receiver { port, seen }
    }

    fn seen(&self) -> Vec<(String, String)> {
        self.seen.lock().expect("not poisoned").clone()
    }

    fn wait_for(&self, n: usize) -> Vec<(String, String)> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.seen().len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let seen = self.seen();
        assert!(seen.len() >= n, "{} requests of {n}: {seen:#?}", seen.len());
        seen
    }
}

/// Reads HTTP/1.1 requests off one connection (keep-alive) and answers each.
fn serve(stream: std::net::TcpStream, log: &Mutex<Vec<(String, String)>>, hang: Duration) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    loop {
        let mut key = String::new();
        let mut length = 0usize;
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((name, value)) = l.split_once(':') {
                match name.to_ascii_lowercase().as_str() {
                    "idempotency-key" => key = value.trim().to_string(),
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        std::thread::sleep(hang);
        log.lock()
            .expect("not poisoned")
            .push((key, String::from_utf8_lossy(&body).into_owned()));
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        if writer.write_all(answer).is_err() {
            return;
        }
    }
}

#[test]
fn a_record_replayed_after_a_crash_keeps_its_idempotency_key() {
    let receiver = Receiver::start(Duration::ZERO);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut input = String::new();
    for i in 0..6 {
        input.push_str(&format!(
            "{{\"zone\":\"z{i}\",\"temp\":{i}.0,\"timestamp\":{}}}\n",
            1_700_000_000_000u64 + i
        ));
    }
    write(dir.path(), "in.jsonl", &input);
    write(
        dir.path(),
        "rules.vpl",
        &format!(
            "{READING}connector In = file (path: \"in.jsonl\", follow: true, poll: 20ms)\n\
             connector Hook = http (url: \"http://127.0.0.1:{}/in\")\n\n\
             stream Hot = Reading.from(In)\n    .emit(zone: zone, temp: temp)\n    .to(Hook)\n",
            receiver.port
        ),
    );
    // No checkpoint before the kill: the restart replays every record.
    let args = [
        "rules.vpl",
        "--state-dir",
        "state",
        "--checkpoint-interval",
        "1h",
    ];
    let mut first = varpulis(&args, dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    let before = receiver.wait_for(6);
    let _ = first.kill();
    let _ = first.wait();
    let mut second = varpulis(&args, dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let all = receiver.wait_for(12);
    let _ = Command::new("kill")
        .args(["-INT", &second.id().to_string()])
        .status();
    let _ = second.wait();
    let replayed = &all[before.len()..];
    assert_eq!(
        before, replayed,
        "the replay sends the same keys with the same records"
    );
    let keys: Vec<&str> = before.iter().map(|(k, _)| k.as_str()).collect();
    for (i, key) in keys.iter().enumerate() {
        assert!(key.ends_with(&format!("/Hook:{i}")), "{keys:?}");
    }
    let pipeline = keys[0].split('/').next().unwrap_or_default();
    assert!(
        pipeline.len() == 16 && keys.iter().all(|k| k.starts_with(pipeline)),
        "{keys:?}"
    );
}

#[test]
fn a_sink_that_cannot_confirm_fails_the_checkpoint_by_name_and_is_counted() {
    // Slower than the checkpoint timeout, faster than the close timeout.
    let receiver = Receiver::start(Duration::from_millis(1500));
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "in.jsonl", "{\"zone\":\"a\",\"temp\":1.0}\n");
    write(
        dir.path(),
        "rules.vpl",
        &format!(
            "{READING}connector In = file (path: \"in.jsonl\", follow: true, poll: 20ms)\n\
             connector Hook = http (url: \"http://127.0.0.1:{}/in\", close_timeout: 5s)\n\n\
             stream Hot = Reading.from(In)\n    .emit(zone: zone, temp: temp)\n    .to(Hook)\n",
            receiver.port
        ),
    );
    let metrics = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{metrics}");
    let mut child = varpulis(
        &[
            "rules.vpl",
            "--state-dir",
            "state",
            "--checkpoint-interval",
            "100ms",
            "--checkpoint-timeout",
            "100ms",
            "--metrics",
            &addr,
        ],
        dir.path(),
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut text = String::new();
    while Instant::now() < deadline {
        text = scrape(metrics);
        if sink_failures(&text) >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let _ = child.wait();
    assert!(sink_failures(&text) >= 2, "{text}\n{err}");
    assert!(
        err.contains(
            "warning: checkpoint failed (sink): connector `Hook`: 1 record(s) still in flight"
        ),
        "{err}"
    );
    assert!(err.contains("nothing was committed"), "{err}");
    // Nothing was committed while the sink could not confirm its record.
    let summary = err
        .lines()
        .find(|l| l.starts_with("state: ") && l.contains("checkpoints written"))
        .unwrap_or_default();
    assert!(
        summary.starts_with("state: 0 checkpoints written to `state`, ")
            && summary.contains(" failed (sink: "),
        "{err}"
    );
}

fn sink_failures(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("varpulis_checkpoint_failure_reasons_total{reason=\"sink\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn scrape(port: u16) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

/// Kafka → partitioned count window → Kafka, SIGKILLed at ten seeded points
/// spread over the output (each restart joins a fresh consumer group, so it
/// can only resume where the checkpoint says). The Kafka sink is at least
/// once: the output topic, deduplicated by the window's last order id,
/// equals the outputs an uninterrupted run computes, in order, and every
/// copy of a record is identical.
#[cfg(feature = "kafka")]
#[test]
fn kafka_to_kafka_loses_nothing_across_sigkills_and_replays_identical_records() {
    kafka_to_kafka_across_sigkills(false);
}

/// The same with a transactional sink: each checkpoint's records are staged in a Kafka
/// transaction and published only once the checkpoint is durable; a restart whose newest
/// checkpoint was never published goes back to the one before. tansu hides open transactions
/// from `read_committed` readers but not aborted ones, so copies from aborted transactions may
/// still reach the reader here: the test checks that nothing is lost and every copy is
/// identical (the connector test checks what is visible when).
#[cfg(feature = "kafka")]
#[test]
fn kafka_to_kafka_with_a_transactional_sink_loses_nothing_across_sigkills() {
    kafka_to_kafka_across_sigkills(true);
}

#[cfg(feature = "kafka")]
fn kafka_to_kafka_across_sigkills(transactional: bool) {
    use varpulis_connectors::{
        open_sink, open_source, ConfigValue, ConnectorConfig, Record, SinkContext, SourceConfig,
        SourceContext, SourceEvent, SourceSender,
    };
    const ORDERS: u64 = 20_000;
    const KILLS: u64 = 10;
    let Some(brokers) = std::env::var("VARPULIS_TEST_KAFKA")
        .ok()
        .filter(|a| std::net::TcpStream::connect(a).is_ok())
    else {
        assert!(
            std::env::var("VARPULIS_REQUIRE_BROKERS").map_or(true, |v| v != "1"),
            "VARPULIS_TEST_KAFKA is not set or not reachable"
        );
        eprintln!("skipped: no Kafka broker (eval \"$(scripts/brokers env)\")");
        return;
    };
    let tag = format!(
        "crash-{}-{}-{}",
        std::process::id(),
        now_ms(),
        u8::from(transactional)
    );
    let (input, output) = (format!("{tag}-in"), format!("{tag}-out"));
    create_topics(&brokers, &[&input, &output]);
    let dir = tempfile::tempdir().expect("tempdir");

    // The input, and the outputs an uninterrupted run gives: per user, every
    // fifth order closes a window.
    let kafka = |topic: &str| {
        ConnectorConfig::new("P", "kafka")
            .param("brokers", ConfigValue::Str(brokers.clone()))
            .param("topic", ConfigValue::Str(topic.to_string()))
    };
    let mut producer = open_sink(&kafka(&input), &SinkContext::new(dir.path())).expect("producer");
    let mut windows: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    let mut expected = Vec::new();
    let mut rng = Rng(11);
    for id in 0..ORDERS {
        let user = format!("u{}", rng.below(9));
        let amount = rng.below(100);
        let body = format!(
            "{{\"user\":\"{user}\",\"amount\":{amount}.0,\"id\":{id},\"timestamp\":{}}}",
            1_700_000_000_000 + id
        );
        producer
            .send(Record::from_json(body.as_bytes()).expect("record"))
            .expect("produce");
        let w = windows.entry(user.clone()).or_default();
        w.push(amount);
        if w.len() == 5 {
            expected.push((user, w.iter().sum::<u64>() as f64, id));
            w.clear();
        }
    }
    producer.close().expect("input delivered");

    // Everything that reaches the output topic, in order.
    let seen: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let (tx, rx) = crossbeam_channel::bounded(10_000);
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let config = kafka(&output)
        .param("group_id", ConfigValue::Str(format!("{tag}-reader")))
        .param("session_timeout", ConfigValue::Duration(6_000_000_000));
    let mut reader = open_source(
        &SourceConfig::new(config, 0),
        &SourceContext::new(dir.path()),
        SourceSender::new(tx, stopping.clone()),
    )
    .expect("reader");
    let log = seen.clone();
    let collector = std::thread::spawn(move || {
        for event in rx.iter() {
            if let SourceEvent::Message(m) = event {
                if let Ok(v) = serde_json::from_slice(&m.payload) {
                    log.lock().expect("not poisoned").push(v);
                }
            }
        }
    });
    let unique = || {
        let seen = seen.lock().expect("not poisoned");
        let mut lasts: Vec<u64> = seen.iter().filter_map(|v| v["last"].as_u64()).collect();
        lasts.sort_unstable();
        lasts.dedup();
        lasts.len() as u64
    };

    let rules = |group: &str| {
        write(
            dir.path(),
            "rules.vpl",
            &format!(
                "event Order:\n    user: str\n    amount: float\n    id: int\n\n\
                 connector In = kafka (brokers: \"{brokers}\", topic: \"{input}\", group_id: \"{group}\", start: earliest, session_timeout: 6s)\n\
                 connector Out = kafka (brokers: \"{brokers}\", topic: \"{output}\", transactional: {transactional})\n\n\
                 stream Sums = Order.from(In)\n    .partition_by(user)\n    .window(5)\n    \
                 .aggregate(n: count(), total: sum(amount), last: last(id))\n    \
                 .emit(user: user, n: n, total: total, last: last)\n    .to(Out)\n"
            ),
        );
    };
    let args = [
        "rules.vpl",
        "--state-dir",
        "state",
        "--checkpoint-interval",
        "50ms",
    ];
    let total = expected.len() as u64;
    let mut points = Vec::new();
    for k in 0..=KILLS {
        rules(&format!("{tag}-g{k}"));
        let mut child = varpulis(&args, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start varpulis");
        // Kill once the output holds a random number of distinct records
        // within this run's tenth of the total; the last run goes to the end.
        let target = if k < KILLS {
            total * k / (KILLS + 1) + 1 + rng.below(total / (KILLS + 1))
        } else {
            total
        };
        points.push(target);
        let deadline = Instant::now() + Duration::from_secs(60);
        while unique() < target && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if k < KILLS {
            let _ = child.kill();
        } else {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
        }
        let _ = child.wait();
        assert!(
            unique() >= target,
            "run {k} made no progress to {target} distinct outputs ({} so far; points {points:?})",
            unique()
        );
    }
    stopping.store(true, std::sync::atomic::Ordering::Release);
    reader.stop();
    drop(reader);
    let _ = collector.join();

    let seen = seen.lock().expect("not poisoned").clone();
    let mut first: std::collections::BTreeMap<u64, serde_json::Value> = Default::default();
    let mut order = Vec::new();
    for v in &seen {
        let last = v["last"].as_u64().expect("last");
        match first.get(&last) {
            Some(copy) => assert_eq!(copy, v, "a replayed record differs (points {points:?})"),
            None => {
                first.insert(last, v.clone());
                order.push(last);
            }
        }
    }
    let got: Vec<(String, f64, u64)> = order
        .iter()
        .map(|last| {
            let v = &first[last];
            (
                v["user"].as_str().unwrap_or_default().to_string(),
                v["total"].as_f64().unwrap_or(-1.0),
                *last,
            )
        })
        .collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "{} copies in the topic; points {points:?}",
        seen.len()
    );
    assert!(
        got == expected,
        "the deduplicated output differs (points {points:?})"
    );
}

#[cfg(feature = "kafka")]
fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

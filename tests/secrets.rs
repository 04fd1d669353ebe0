//! Secrets are never printed: values substituted from the environment, URL passwords and
//! bearer tokens stay out of the run's messages, the dead-letter file and the server's status
//! API, while the run still uses them.

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};

fn write(dir: &Path, name: &str, body: &str) {
    std::fs::write(dir.join(name), body).expect("write test file");
}

#[test]
fn substituted_secrets_and_url_passwords_stay_out_of_messages_and_dead_letters() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A port nothing listens on: every delivery fails and is dead-lettered.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    write(dir.path(), "in.jsonl", "{\"zone\":\"a\",\"temp\":31.0}\n");
    write(
        dir.path(),
        "rules.vpl",
        &format!(
            "event Reading:\n    zone: str\n    temp: float\n\n\
             connector In = file (path: \"in.jsonl\")\n\
             connector Hook = http (url: \"http://alice:pa55word@127.0.0.1:{port}/hooks/${{HOOK_PATH}}?token=t0ken-in-query\", headers: [\"Authorization: Bearer ${{HOOK_TOKEN}}\"], retries: 0, dead_letter: \"dead.jsonl\")\n\n\
             stream Hot = Reading.from(In)\n    .where(temp > 30.0)\n    .emit(zone: zone)\n    .to(Hook)\n"
        ),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_varpulis"))
        .args(["run", "rules.vpl"])
        .current_dir(dir.path())
        .env("HOOK_PATH", "s3cr3t-path-segment")
        .env("HOOK_TOKEN", "super-secret-token")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut dead = String::new();
    std::fs::File::open(dir.path().join("dead.jsonl"))
        .and_then(|mut f| f.read_to_string(&mut dead))
        .expect("the record was dead-lettered");
    for text in [&*stderr, &*dead] {
        for secret in [
            "s3cr3t-path-segment",
            "super-secret-token",
            "pa55word",
            "t0ken-in-query",
        ] {
            assert!(!text.contains(secret), "`{secret}` leaked:\n{text}");
        }
    }
    assert!(dead.contains("\"zone\":\"a\""), "{dead}");
    assert!(dead.contains("***"), "{dead}");
}

//! Code examples in the documentation are programs: every ```vpl block of the
//! README, PATTERNS.md and the connectors README must check without errors,
//! and a block holding a rule test (`# given:` + `# expect:`) must pass it.
//! (Error-code pages have their own test in the compiler.)

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The ```vpl blocks of a Markdown file, with their starting line.
fn vpl_blocks(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        match &mut current {
            None if line.trim() == "```vpl" => current = Some((n + 1, String::new())),
            Some(_) if line.trim() == "```" => out.extend(current.take()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    out
}

fn varpulis(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_varpulis"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .expect("run the varpulis binary")
}

#[test]
fn documentation_examples_check_and_their_tests_pass() {
    let docs = [
        "README.md",
        "docs/PATTERNS.md",
        "runtime/connectors/README.md",
        "docs/connectors/mqtt.md",
        "docs/connectors/kafka.md",
        "docs/connectors/websocket.md",
        "docs/connectors/redis.md",
        "docs/connectors/postgres.md",
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let mut failures = Vec::new();
    let mut checked = 0;
    for doc in docs {
        let text = std::fs::read_to_string(root().join(doc)).expect("read doc");
        for (line, body) in vpl_blocks(&text) {
            // Blocks that only show operators or a stream need the events they use.
            let program = if body.contains("event ") || !body.contains("Reading") {
                body.clone()
            } else {
                format!("event Reading:\n    sensor: str\n    temp: float\n\n{body}")
            };
            let file = dir.path().join(format!("block{checked}.vpl"));
            std::fs::write(&file, &program).expect("write block");
            let name = file.to_string_lossy().to_string();
            let out = varpulis(&["check", "--color", "never", &name], dir.path());
            if !out.status.success() {
                failures.push(format!(
                    "{doc}:{line}: does not check\n{}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            if program.contains("# given:") && program.contains("# expect:") {
                let out = varpulis(&["test", "--color", "never", &name], dir.path());
                if !out.status.success() {
                    failures.push(format!(
                        "{doc}:{line}: its rule test fails\n{}",
                        String::from_utf8_lossy(&out.stdout)
                    ));
                }
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 5,
        "expected the documentation to hold examples, found {checked}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

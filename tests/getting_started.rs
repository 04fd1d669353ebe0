//! docs/GETTING_STARTED.md runs as written: every file it shows (a block after
//! `<!-- file: NAME -->`) is written to a scratch directory, and every command of its `sh`
//! blocks runs there with this build's binary, in order. A command ending in `&` runs in the
//! background until the page's other commands are done and has to have printed the output the
//! page promises. The Kafka section talks to the test broker (`VARPULIS_TEST_KAFKA`, from
//! `scripts/brokers env`); without one it is skipped with a message, unless
//! `VARPULIS_REQUIRE_BROKERS=1`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Page {
    files: Vec<(String, String)>,
    commands: Vec<String>,
}

fn read_page() -> Page {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/GETTING_STARTED.md");
    let text = std::fs::read_to_string(path).expect("read the page");
    let mut files = Vec::new();
    let mut commands = Vec::new();
    let mut pending_file: Option<String> = None;
    let mut block: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some((lang, body)) = &mut block {
            if line.trim() == "```" {
                if let Some(name) = pending_file.take() {
                    files.push((name, body.clone()));
                } else if lang == "sh" {
                    commands.extend(
                        body.lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty() && !l.starts_with('#'))
                            .map(str::to_string),
                    );
                }
                block = None;
            } else {
                body.push_str(line);
                body.push('\n');
            }
            continue;
        }
        if let Some(name) = line
            .trim()
            .strip_prefix("<!-- file: ")
            .and_then(|r| r.strip_suffix(" -->"))
        {
            pending_file = Some(name.to_string());
        } else if let Some(lang) = line.trim().strip_prefix("```") {
            block = Some((lang.to_string(), String::new()));
        }
    }
    Page { files, commands }
}

fn broker() -> Option<String> {
    let found = std::env::var("VARPULIS_TEST_KAFKA")
        .ok()
        .filter(|a| std::net::TcpStream::connect(a).is_ok());
    if found.is_none() {
        assert!(
            std::env::var("VARPULIS_REQUIRE_BROKERS").map_or(true, |v| v != "1"),
            "VARPULIS_TEST_KAFKA is not set or not reachable"
        );
        eprintln!("skipped the Kafka section: no broker (eval \"$(scripts/brokers env)\")");
    }
    found
}

fn varpulis(args: &[&str], dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_varpulis"));
    cmd.args(args).current_dir(dir).env("NO_COLOR", "1");
    cmd
}

#[test]
fn every_command_of_the_getting_started_guide_runs() {
    let page = read_page();
    assert!(page.files.len() >= 6, "the page shows its files");
    assert!(page.commands.len() >= 8, "the page has its commands");
    let dir = tempfile::tempdir().expect("tempdir");
    let kafka = if cfg!(feature = "kafka") {
        broker()
    } else {
        None
    };
    let tag = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    for (name, body) in &page.files {
        // The page's broker and names, made this run's own.
        let body = match &kafka {
            Some(addr) => body
                .replace("localhost:9092", addr)
                .replace("topic: \"readings\"", &format!("topic: \"readings-{tag}\""))
                .replace(
                    "group_id: \"getting-started\"",
                    &format!("group_id: \"gs-{tag}\""),
                ),
            None => body.clone(),
        };
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, body).expect("write a file of the page");
    }
    let mut background: Vec<(String, Child, mpsc::Receiver<String>)> = Vec::new();
    let mut ran = 0;
    for command in &page.commands {
        let needs_kafka = command.contains("live.vpl") || command.contains("replay.vpl");
        if needs_kafka && kafka.is_none() {
            continue;
        }
        ran += 1;
        if let Some((echo, rest)) = command.split_once(" | ") {
            // `echo "TEXT" | varpulis ...`: TEXT on standard input.
            let input = echo
                .trim_start_matches("echo ")
                .trim()
                .trim_matches('"')
                .to_string();
            let args: Vec<&str> = rest
                .trim_start_matches("varpulis ")
                .split_whitespace()
                .collect();
            let mut child = varpulis(&args, dir.path())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(format!("{input}\n").as_bytes())
                .expect("write stdin");
            let out = child.wait_with_output().expect("wait");
            assert!(
                out.status.success(),
                "`{command}` failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            continue;
        }
        let line = command.trim_end_matches('&').trim();
        let args: Vec<&str> = line
            .strip_prefix("varpulis ")
            .unwrap_or_else(|| panic!("a command of the page that is not varpulis: {command}"))
            .split_whitespace()
            .collect();
        if command.ends_with('&') {
            let mut child = varpulis(&args, dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start in the background");
            let (tx, rx) = mpsc::channel();
            let stdout = child.stdout.take().expect("stdout");
            std::thread::spawn(move || {
                for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
            });
            background.push((command.clone(), child, rx));
            continue;
        }
        let out = varpulis(&args, dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run a command of the page");
        assert!(
            out.status.success(),
            "`{command}` failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(ran >= 6, "{ran} commands ran");
    for (command, mut child, lines) in background {
        // The page promises zone B's hot reading on the live run's output.
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut seen = Vec::new();
        while !seen.iter().any(|l: &String| l.contains("\"zone\":\"B\"")) {
            assert!(
                Instant::now() < deadline,
                "`{command}` printed no alert for zone B: {seen:#?}"
            );
            if let Ok(l) = lines.recv_timeout(Duration::from_millis(200)) {
                seen.push(l);
            }
        }
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let status = child.wait().expect("wait");
        assert!(
            status.success(),
            "`{command}` did not stop cleanly on SIGTERM"
        );
        let alerts = std::fs::read_to_string(dir.path().join("alerts.jsonl")).expect("alerts");
        assert!(alerts.contains("\"zone\":\"B\""), "{alerts}");
        assert!(dir.path().join("state").is_dir(), "the run checkpointed");
    }
}

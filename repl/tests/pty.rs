//! Drives the real terminal front end in a pseudo-terminal (tmux): Tab
//! completion of an operator and of a field, multi-line entry with
//! automatic indentation ended by a blank line, an event, `:quit`, and the
//! history file written on exit.
//!
//! Skips with a message when tmux is missing, except under CI (`CI` set),
//! where a missing tmux is a failure (`scripts/setup` installs it).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn send(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "repl"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "repl", "-S", "-100"])
    }

    fn wait_for(&self, what: &str) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if s.contains(what) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "timed out waiting for {what:?}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

fn tmux_available() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn terminal_session_completes_and_accepts_multi_line_input() {
    if !tmux_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "tmux is required under CI (scripts/setup installs it)"
        );
        eprintln!("skipping: tmux is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    let bin = env!("CARGO_BIN_EXE_varpulis-repl");
    let t = Tmux {
        socket: format!("varpulis-repl-test-{}", std::process::id()),
    };
    let cmd = format!(
        "env HOME={} XDG_STATE_HOME={} TERM=xterm {}",
        dir.path().display(),
        state.display(),
        bin
    );
    t.run(&[
        "new-session",
        "-d",
        "-s",
        "repl",
        "-x",
        "160",
        "-y",
        "50",
        &cmd,
    ]);
    t.wait_for("vpl>");

    // Multi-line entry: Enter after `:` indents the next line by itself,
    // and an empty line ends the block.
    t.send(&["event Reading:", "Enter"]);
    t.send(&["sensor: str", "Enter"]);
    t.send(&["temp: float", "Enter"]);
    let s = t.wait_for("    temp: float");
    assert!(s.contains("    sensor: str"), "no automatic indent:\n{s}");
    t.send(&["Enter"]);
    t.wait_for("defined event Reading");

    // Completion of an operator after `.` and of a field in scope.
    t.send(&["stream Hot = Reading.wh", "Tab"]);
    t.wait_for("Reading.where");
    t.send(&["(te", "Tab"]);
    t.wait_for("Reading.where(temp");
    t.send(&[" > 30.0).emit(sensor: sensor)", "Enter"]);
    t.wait_for("defined stream Hot");

    t.send(&["Reading { sensor: \"a\", temp: 40.0 }", "Enter"]);
    t.wait_for("→ Hot @0s { sensor: \"a\" }");

    t.send(&[":quit", "Enter"]);
    let history = state.join("varpulis").join("history");
    let start = Instant::now();
    // The file may appear before the REPL has finished writing it: wait
    // for the content, not just the file.
    loop {
        let text = std::fs::read_to_string(&history).unwrap_or_default();
        if text.contains(":quit") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "history file not written (so far: {text:?}, exists: {})",
            Path::new(&history).exists()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

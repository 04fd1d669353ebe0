//! Scripted sessions: each `tests/sessions/*.txt` is fed line by line to a
//! [`Session`] exactly as `varpulis repl < file` would be, and the
//! transcript (each input, then what the REPL printed) is a snapshot.
//! Paths inside the scripts are relative to the crate folder, where cargo
//! runs tests.

use varpulis_repl::{LineAssembler, Session};

fn transcript(script: &str) -> String {
    let mut session = Session::new();
    let mut asm = LineAssembler::new();
    let mut out = String::new();
    let mut inputs: Vec<String> = Vec::new();
    for line in script.lines() {
        inputs.extend(asm.push_line(line));
    }
    inputs.extend(asm.finish());
    for input in inputs {
        for (i, l) in input.lines().enumerate() {
            out.push_str(if i == 0 { "> " } else { ". " });
            out.push_str(l);
            out.push('\n');
        }
        for l in session.handle_line(&input) {
            out.push_str(&l);
            out.push('\n');
        }
        if session.quit_requested() {
            out.push_str("(session ended)\n");
            break;
        }
    }
    out
}

#[test]
fn scripted_sessions_match_their_snapshots() {
    insta::glob!("sessions/*.txt", |path| {
        let script = std::fs::read_to_string(path).expect("read session script");
        insta::assert_snapshot!(transcript(&script));
    });
}

#[test]
fn the_binary_reads_piped_stdin_without_prompts() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_varpulis-repl"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start varpulis-repl");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(b"event R:\n    x: int\n\nstream S = R\n    .where(x > 1)\n    .emit(x: x)\nR { x: 5 }\n:quit\n")
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait for varpulis-repl");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "defined event R\ndefined stream S\n→ S @0s { x: 5 }\n"
    );
}

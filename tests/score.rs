//! `.score` through the `varpulis` binary: the model path is relative to the
//! program file (not the working directory), and a model that is missing or
//! does not fit stops `simulate` before the first event with an error naming
//! the model and the shapes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/run/score")
}

fn varpulis(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_varpulis"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .expect("run the varpulis binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const EVENTS: &str = "@0s Reading { id: \"r1\", a: 2.0, b: 4.0, c: 1.5 }\n\
                      @1s Reading { id: \"r2\", a: 1.0, b: -2.0, c: 0.25 }\n";

fn program(inputs: &str, model: &str) -> String {
    format!(
        "event Reading:\n    id: str\n    a: float\n    b: float\n    c: float\n\n\
         stream Scored = Reading\n    .score(model: \"{model}\", inputs: [{inputs}], outputs: [y])\n    .emit(id, y)\n"
    )
}

/// `dir/rules/p.vpl` naming `models/linear.onnx`, i.e. `dir/rules/models/linear.onnx`.
fn layout(p: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(rules.join("models")).expect("mkdir");
    std::fs::copy(
        models().join("linear.onnx"),
        rules.join("models/linear.onnx"),
    )
    .expect("copy the model");
    std::fs::write(rules.join("p.vpl"), p).expect("write program");
    std::fs::write(dir.path().join("in.evt"), EVENTS).expect("write events");
    dir
}

#[test]
fn simulate_reads_the_model_next_to_the_program_and_scores() {
    let dir = layout(&program("a, b, c", "models/linear.onnx"));
    let out = varpulis(
        &["simulate", "rules/p.vpl", "in.evt", "--format", "jsonl"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains("\"id\":\"r1\",\"y\":-0.25"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("\"id\":\"r2\",\"y\":4.25"),
        "{}",
        lines[1]
    );
}

#[test]
fn a_model_that_does_not_fit_stops_simulate_at_start() {
    let dir = layout(&program("a, b", "models/linear.onnx"));
    let out = varpulis(&["simulate", "rules/p.vpl", "in.evt"], dir.path());
    assert!(!out.status.success());
    assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("models/linear.onnx"), "{err}");
    assert!(err.contains("[N, 3]") && err.contains("[N, 2]"), "{err}");
}

#[test]
fn a_missing_model_stops_simulate_naming_the_file() {
    let dir = layout(&program("a, b, c", "nowhere.onnx"));
    let out = varpulis(&["simulate", "rules/p.vpl", "in.evt"], dir.path());
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot read model `nowhere.onnx` (rules/nowhere.onnx)"),
        "{err}"
    );
}

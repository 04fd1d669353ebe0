//! Formats every program of the corpus and the examples: the formatted text
//! is snapshotted, formatting it again changes nothing, it parses to the
//! same trees (spans ignored) and it keeps every comment.

use std::path::{Path, PathBuf};

use varpulis_syntax::format::{ast_fingerprint, comment_count, format};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Formats `text` and checks the formatter's promises; returns the output.
fn check_program(name: &str, text: &str) -> String {
    let formatted = format(text).unwrap_or_else(|e| panic!("{name}: {e}: {e:?}"));
    let again = format(&formatted).unwrap_or_else(|e| panic!("{name} (second pass): {e}"));
    assert_eq!(again, formatted, "{name}: formatting is not idempotent");
    assert_eq!(
        ast_fingerprint(&formatted),
        ast_fingerprint(text),
        "{name}: formatting changed the trees"
    );
    assert_eq!(
        comment_count(&formatted),
        comment_count(text),
        "{name}: formatting lost or added comments"
    );
    formatted
}

/// Checks and snapshots every `.vpl` file under `dir` (a macro so that each
/// test names its own snapshots).
macro_rules! snapshot_dir {
    ($dir:literal) => {{
        let root = workspace_root();
        insta::glob!(&root, concat!($dir, "/**/*.vpl"), |path| {
            let text = std::fs::read_to_string(path).expect("corpus files are readable");
            let name = path.display().to_string();
            let formatted = check_program(&name, &text);
            insta::assert_snapshot!(formatted);
        });
    }};
}

#[test]
fn valid_corpus_formats_idempotently_keeping_meaning_and_comments() {
    snapshot_dir!("tests/corpus/valid");
}

#[test]
fn run_corpus_formats_idempotently_keeping_meaning_and_comments() {
    snapshot_dir!("tests/corpus/run");
}

#[test]
fn examples_format_idempotently_keeping_meaning_and_comments() {
    snapshot_dir!("examples");
}

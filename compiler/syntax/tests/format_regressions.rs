//! Inputs the formatter once refused as unstable (its own safety check
//! caught the bug). Each must now format, idempotently, to the same trees.

use varpulis_syntax::format::{ast_fingerprint, format};

fn formats_stably(text: &str) {
    let once = format(text).unwrap_or_else(|e| panic!("format failed: {e:?}\n{text}"));
    let twice = format(&once).unwrap_or_else(|e| panic!("second format failed: {e:?}\n{once}"));
    assert_eq!(once, twice, "not idempotent");
    assert_eq!(
        ast_fingerprint(text),
        ast_fingerprint(&once),
        "meaning changed"
    );
}

#[test]
fn block_comment_reaching_column_zero_inside_a_declaration_loop() {
    // The second comment line sits at column 0: it still belongs to the loop
    // body, because it continues a comment opened there.
    formats_stably(
        "event Reading:\n    zone: int\n    bar: float\n\nfor z in 1..=3:\n    stream HotZone{z} = Reading\n        .where(zone == {z})\n        .emit(zone: {z}/* two\nlines */, bar: bar)\n\nstream All = Reading\n    .emit(bar: bar)\n",
    );
}

#[test]
fn comment_markers_inside_strings_and_line_comments_open_nothing() {
    formats_stably(
        "event R:\n    s: str\n\nfor z in 1..=2:\n    stream S{z} = R # not /* a comment\n        .where(s != \"/*\")\n        .emit(s: s)\n\nstream T = R\n    .emit(s: s)\n",
    );
}

//! Snapshot tests: parse trees of realistic programs
//! (`tests/programs/*.vpl`) and rendered errors of broken inputs
//! (`tests/errors/*.vpl`). Each snapshot holds the source and the output.

use crate::parser::sexpr;

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: u32) -> (usize, usize) {
    let before = &text[..offset as usize];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |n| n + 1) + 1;
    (line, col)
}

/// Renders errors as `line:col: CODE message` plus label and help lines.
fn render_errors(parse: &crate::Parse) -> String {
    let mut out = String::new();
    for e in &parse.errors {
        let (line, col) = line_col(&parse.text, e.span.start);
        out.push_str(&format!("{line}:{col}: {} {}", e.code, e.message));
        if e.incomplete {
            out.push_str(" (incomplete)");
        }
        out.push('\n');
        if let Some(label) = &e.label {
            out.push_str(&format!("    label: {label}\n"));
        }
        if let Some(help) = &e.help {
            out.push_str(&format!("    help: {help}\n"));
        }
    }
    out
}

/// Renders every item as its s-expression, preceded by its position and
/// first line.
fn render_items(parse: &crate::Parse) -> String {
    let mut out = String::new();
    for node in &parse.items {
        let (line, _) = line_col(&parse.text, node.offset);
        out.push_str(&format!("@{line}: {}\n", sexpr::item(&node.item)));
    }
    out
}

#[test]
fn programs_parse_cleanly() {
    insta::glob!(env!("CARGO_MANIFEST_DIR"), "tests/programs/*.vpl", |path| {
        let text = std::fs::read_to_string(path).expect("test program is readable");
        let parse = crate::parse(&text);
        assert_eq!(render_errors(&parse), "", "{}", path.display());
        let rendered = format!("{}\n----\n{}", parse.text, render_items(&parse));
        insta::assert_snapshot!(rendered);
    });
}

#[test]
fn broken_programs_report_errors() {
    insta::glob!(env!("CARGO_MANIFEST_DIR"), "tests/errors/*.vpl", |path| {
        let text = std::fs::read_to_string(path).expect("test program is readable");
        let parse = crate::parse(&text);
        let rendered = format!(
            "{}\n----\n{}----\n{}",
            text,
            render_errors(&parse),
            render_items(&parse)
        );
        insta::assert_snapshot!(rendered);
    });
}

#[test]
fn pumps_tree_with_spans() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/programs/pumps.vpl"
    ))
    .expect("test program is readable");
    let parse = crate::parse(&text);
    // The full tree of one item, spans included, guards span regressions.
    insta::assert_debug_snapshot!(parse.items[3]);
}

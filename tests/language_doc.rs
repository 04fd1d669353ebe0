//! The language reference (`docs/LANGUAGE.md`) is checked like code:
//!
//! - every ```vpl block checks without errors and loads in the engine
//!   (`varpulis simulate` on empty input, so the lowering accepts it too);
//! - a block holding a rule test (`# given:` + `# expect:`) passes
//!   `varpulis test`, so the outputs the page shows are the real ones;
//! - a block whose first line is `# file: NAME.vpl` is written under that
//!   name, for the blocks that import it;
//! - headings are unique, and every `#anchor` link of the page and every
//!   citation of the page elsewhere in the repository
//!   (`docs/LANGUAGE.md#anchor` or `docs/LANGUAGE.md, "Heading"`) names a
//!   heading that exists, so citations cannot rot;
//! - no file cites a numbered section (`§4.3`) of the implementers'
//!   specification, which lives outside the repository.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn reference() -> String {
    std::fs::read_to_string(root().join("docs/LANGUAGE.md")).expect("read docs/LANGUAGE.md")
}

/// One ```vpl block: its first line in the page and its text.
struct Block {
    line: usize,
    body: String,
}

fn vpl_blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for (n, line) in text.lines().enumerate() {
        match &mut current {
            None if line.trim() == "```vpl" => {
                current = Some(Block {
                    line: n + 1,
                    body: String::new(),
                })
            }
            Some(_) if line.trim() == "```" => out.extend(current.take()),
            Some(block) => {
                block.body.push_str(line);
                block.body.push('\n');
            }
            None => {}
        }
    }
    out
}

/// The GitHub anchor of a Markdown heading: lower case, punctuation other
/// than `-` and `_` dropped, spaces turned into `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The headings of the page (outside code blocks), as written.
fn headings(text: &str) -> Vec<String> {
    let mut in_code = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            let title = line.trim_start_matches('#');
            if title.starts_with(' ') {
                out.push(title.trim().to_string());
            }
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
fn language_reference_examples_check_load_and_pass_their_rule_tests() {
    let text = reference();
    let blocks = vpl_blocks(&text);
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.evt");
    std::fs::write(&empty, "").expect("write empty input");
    let empty = empty.to_string_lossy().to_string();
    // The `.score` examples run the committed test models.
    for model in ["linear.onnx", "logistic.onnx", "two.onnx"] {
        std::fs::copy(
            root().join("tests/corpus/run/score").join(model),
            dir.path().join(model),
        )
        .expect("copy a test model");
    }

    // Named files first, so that blocks importing them find them.
    let files: Vec<PathBuf> = blocks
        .iter()
        .enumerate()
        .map(|(i, block)| {
            let name = block
                .body
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("# file: "))
                .map(|n| n.trim().to_string())
                .unwrap_or_else(|| format!("block{i}.vpl"));
            let file = dir.path().join(name);
            std::fs::write(&file, &block.body).expect("write block");
            file
        })
        .collect();

    let mut failures = Vec::new();
    let mut rule_tests = 0;
    for (block, file) in blocks.iter().zip(&files) {
        let name = file.to_string_lossy().to_string();
        let at = format!("docs/LANGUAGE.md:{}", block.line);
        let out = varpulis(&["check", "--color", "never", &name], dir.path());
        if !out.status.success() {
            failures.push(format!(
                "{at}: does not check\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
            continue;
        }
        if block.body.contains("# given:") && block.body.contains("# expect:") {
            rule_tests += 1;
            let out = varpulis(&["test", "--color", "never", &name], dir.path());
            if !out.status.success() {
                failures.push(format!(
                    "{at}: its rule test fails\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        } else {
            let out = varpulis(&["simulate", &name, &empty], dir.path());
            if !out.status.success() {
                failures.push(format!(
                    "{at}: does not load in the engine\n{}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Most examples show their output; a page that loses them should fail loudly.
    assert!(
        blocks.len() >= 60 && rule_tests * 10 >= blocks.len() * 8,
        "expected at least 60 examples, 80% of them rule tests; found {} examples, {rule_tests} rule tests",
        blocks.len()
    );
}

#[test]
fn language_reference_headings_are_unique_and_its_links_resolve() {
    let text = reference();
    let mut anchors = BTreeSet::new();
    for heading in headings(&text) {
        assert!(
            anchors.insert(anchor(&heading)),
            "two headings have the anchor #{}",
            anchor(&heading)
        );
    }
    let mut broken = Vec::new();
    for (i, _) in text.match_indices("](#") {
        let rest = &text[i + 3..];
        let target = &rest[..rest.find(')').unwrap_or(rest.len())];
        if !anchors.contains(target) {
            broken.push(target.to_string());
        }
    }
    assert!(broken.is_empty(), "links to missing headings: {broken:?}");
}

/// Every file of the repository that may cite the reference (sources, docs,
/// tests, grammar, editors), skipping build output and dependencies.
fn repository_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            if !(name.starts_with('.') || name == "target" || name == "node_modules") {
                repository_files(&path, out);
            }
        } else {
            out.push(path);
        }
    }
}

/// The citations of `docs/LANGUAGE.md` in a text: `#anchor` forms give the
/// anchor, `, "Heading"` forms the anchor of the heading.
fn citations(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("LANGUAGE.md") {
        let rest = &text[i + "LANGUAGE.md".len()..];
        if let Some(anchor_text) = rest.strip_prefix('#') {
            let end = anchor_text
                .find(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
                .unwrap_or(anchor_text.len());
            out.push(anchor_text[..end].to_string());
        } else if let Some(quoted) = rest.strip_prefix(", \"") {
            if let Some(end) = quoted.find('"') {
                out.push(anchor(&quoted[..end]));
            }
        }
    }
    out
}

#[test]
fn citations_of_the_language_reference_name_existing_headings() {
    let anchors: BTreeSet<String> = headings(&reference()).iter().map(|h| anchor(h)).collect();
    let mut files = Vec::new();
    repository_files(&root(), &mut files);
    let mut broken = Vec::new();
    for file in files {
        // This file shows the citation forms in its own comments and tests.
        if file.ends_with("tests/language_doc.rs") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for target in citations(&text) {
            if !anchors.contains(&target) {
                let shown = file.strip_prefix(root()).unwrap_or(&file);
                broken.push(format!("{}: #{target}", shown.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "citations of docs/LANGUAGE.md without a matching heading:\n{}",
        broken.join("\n")
    );
}

#[test]
fn anchors_follow_github() {
    assert_eq!(anchor(".late(): late streams"), "late-late-streams");
    assert_eq!(
        anchor("Variables: let, var, const"),
        "variables-let-var-const"
    );
    assert_eq!(anchor(".partition_by"), "partition_by");
    assert_eq!(anchor("Event files (.evt)"), "event-files-evt");
    assert_eq!(
        citations("see docs/LANGUAGE.md#window, and docs/LANGUAGE.md, \"Named patterns\"."),
        vec!["window".to_string(), "named-patterns".to_string()]
    );
}

/// The `§` citations of a text that do not name an in-repository page: a
/// section sign must directly follow `NAME.md ` (as in `RUNTIME.md §6`), and
/// `NAME` must not be `LANGUAGE`, whose sections are anchors, not numbers.
fn external_section_citations(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| {
            line.match_indices('§').any(|(i, _)| {
                let before = line[..i].trim_end_matches(' ');
                let page = before
                    .rsplit(|c: char| c.is_whitespace() || c == '(')
                    .next();
                !page.is_some_and(|p| p.ends_with(".md") && !p.ends_with("LANGUAGE.md"))
            })
        })
        .map(|line| line.trim().to_string())
        .collect()
}

#[test]
fn no_file_cites_sections_of_the_external_specification() {
    let mut files = Vec::new();
    repository_files(&root(), &mut files);
    let mut found = Vec::new();
    for file in files {
        if file.ends_with("tests/language_doc.rs") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let shown = file
            .strip_prefix(root())
            .unwrap_or(&file)
            .display()
            .to_string();
        for line in external_section_citations(&text) {
            found.push(format!("{shown}: {line}"));
        }
    }
    assert!(
        found.is_empty(),
        "cite docs/LANGUAGE.md#anchor instead of a section of the external specification:\n{}",
        found.join("\n")
    );
}

#[test]
fn section_citations_must_name_a_page_of_the_repository() {
    assert!(external_section_citations("see docs/RUNTIME.md §6.").is_empty());
    assert_eq!(
        external_section_citations("windows (LANGUAGE.md §4.3)").len(),
        1
    );
    assert_eq!(external_section_citations("// REC §13.8: globals").len(), 1);
    assert_eq!(external_section_citations("# §2.1 events").len(), 1);
}

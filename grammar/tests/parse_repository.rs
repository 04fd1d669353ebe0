//! Every `.vpl` file in the repository must parse with the tree-sitter grammar.
//!
//! The walk starts at the workspace root and skips build and dependency
//! folders (`target`, `node_modules`, `.git`) and folders named `invalid`,
//! `fixme` or `errors` (such as `compiler/syntax/tests/errors/`), which hold
//! programs that are broken on purpose. A failure lists
//! every file with the position of each ERROR or MISSING node, so one run
//! shows all the grammar gaps at once.
//!
//! A bare identifier as a top-level statement is reported too: VPL allows
//! top-level expressions, so a construct the grammar does not know (say, a new
//! clause after a pattern) can parse as a stray identifier instead of an error.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use tree_sitter::{Node, Parser, Tree};

/// Folders that never hold programs that should parse.
const SKIPPED_DIRS: &[&str] = &[
    "target",
    "node_modules",
    ".git",
    "invalid",
    "fixme",
    "errors",
];

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn collect_vpl_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()));
    for entry in entries {
        let entry = entry.expect("a directory entry can be read");
        let path = entry.path();
        let file_type = entry
            .file_type()
            .expect("a directory entry has a file type");
        let name = entry.file_name();
        if file_type.is_dir() {
            if !SKIPPED_DIRS.iter().any(|skipped| name == *skipped) {
                collect_vpl_files(&path, files);
            }
        } else if file_type.is_file() && path.extension().is_some_and(|ext| ext == "vpl") {
            files.push(path);
        }
    }
}

fn parse(source: &str) -> Tree {
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_vpl::language())
        .expect("the VPL grammar matches the tree-sitter runtime ABI");
    parser
        .parse(source, None)
        .expect("parsing without a timeout or cancellation always returns a tree")
}

/// Positions (1-based line:column) and kinds of the ERROR and MISSING nodes,
/// and of top-level statements that are a bare identifier.
fn syntax_errors(tree: &Tree) -> Vec<String> {
    fn visit(node: Node<'_>, errors: &mut Vec<String>) {
        if node.is_error() || node.is_missing() {
            let start = node.start_position();
            let what = if node.is_missing() {
                format!("MISSING {}", node.kind())
            } else {
                "ERROR".to_string()
            };
            errors.push(format!("{}:{}: {what}", start.row + 1, start.column + 1));
        }
        if node.has_error() {
            let mut cursor = node.walk();
            for child in node.children(&mut cursor) {
                visit(child, errors);
            }
        }
    }
    let mut errors = Vec::new();
    visit(tree.root_node(), &mut errors);
    let root = tree.root_node();
    let mut cursor = root.walk();
    for statement in root.named_children(&mut cursor) {
        let bare_identifier = statement.kind() == "expression_statement"
            && statement
                .named_child(0)
                .is_some_and(|child| child.kind() == "identifier");
        if bare_identifier {
            let start = statement.start_position();
            errors.push(format!(
                "{}:{}: bare identifier at the top level (a construct the grammar does not know?)",
                start.row + 1,
                start.column + 1
            ));
        }
    }
    errors
}

#[test]
fn every_vpl_file_in_the_repository_parses_without_errors() {
    let root = repository_root();
    let mut files = Vec::new();
    collect_vpl_files(&root, &mut files);
    files.sort();
    assert!(
        !files.is_empty(),
        "found no .vpl files under {}; the grammar's own samples should be there",
        root.display()
    );

    let mut failures = Vec::new();
    for file in &files {
        let source = fs::read_to_string(file)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", file.display()));
        let errors = syntax_errors(&parse(&source));
        if !errors.is_empty() {
            let shown = file.strip_prefix(&root).unwrap_or(file);
            failures.push(format!(
                "{}:\n    {}",
                shown.display(),
                errors.join("\n    ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} .vpl files do not parse with tree-sitter-vpl:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn the_every_construct_sample_parses_and_produces_every_node_type() {
    let source = include_str!("../test/samples/every_construct.vpl");
    let tree = parse(source);
    let errors = syntax_errors(&tree);
    assert!(
        errors.is_empty(),
        "every_construct.vpl has syntax errors: {errors:?}"
    );

    let mut seen = BTreeSet::new();
    let mut cursor = tree.walk();
    let mut stack = vec![tree.root_node()];
    while let Some(node) = stack.pop() {
        seen.insert(node.kind().to_string());
        stack.extend(node.children(&mut cursor));
    }

    let language = tree_sitter_vpl::language();
    let named: BTreeSet<&str> = (0..language.node_kind_count())
        .filter_map(|id| u16::try_from(id).ok())
        .filter(|&id| language.node_kind_is_named(id) && language.node_kind_is_visible(id))
        .filter_map(|id| language.node_kind_for_id(id))
        .filter(|kind| *kind != "ERROR")
        .collect();
    assert!(named.len() > 60, "too few named node types: {named:?}");
    let missing: BTreeSet<&str> = named
        .into_iter()
        .filter(|kind| !seen.contains(*kind))
        .collect();
    assert!(
        missing.is_empty(),
        "every_construct.vpl never produces these node types: {missing:?}"
    );
}

#[test]
fn word_boundaries_keep_keyword_prefixes_as_identifiers() {
    let tree = parse("let n = notes + true_count + null_rate + allowed\n");
    assert!(syntax_errors(&tree).is_empty());
    let sexp = tree.root_node().to_sexp();
    assert_eq!(sexp.matches("(identifier)").count(), 5, "{sexp}");
}

#[test]
fn a_bare_identifier_at_the_top_level_is_reported() {
    let errors = syntax_errors(&parse("pattern P = A within 5m\nfrobnicate\n"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("2:1: bare identifier"), "{errors:?}");
    assert!(syntax_errors(&parse("print(x)\nx := 1\n")).is_empty());
}

#[test]
fn a_duration_needs_a_word_boundary() {
    assert!(syntax_errors(&parse("stream S = A.window(5m)\n")).is_empty());
    assert!(!syntax_errors(&parse("stream S = A.window(5min)\n")).is_empty());
}

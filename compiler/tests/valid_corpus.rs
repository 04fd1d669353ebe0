//! Every program of the valid corpus (`tests/corpus/valid/**/*.vpl`, and the
//! runtime corpus `tests/corpus/run/**/*.vpl`) checks without errors.
//! Tolerates the directories' absence.

use std::path::{Path, PathBuf};

use varpulis_compiler::{render, Compiler};

fn vpl_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            vpl_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "vpl") {
            out.push(p);
        }
    }
}

fn check_dir(sub: &str) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/corpus")
        .join(sub);
    let mut files = Vec::new();
    vpl_files(&root, &mut files);
    files.sort();
    let mut failures = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("corpus file is readable");
        let name = f.strip_prefix(&root).unwrap_or(&f).display().to_string();
        let mut c = Compiler::new();
        c.set_file(&name, text.as_str());
        // Load imported files the way a host does, relative to the corpus root.
        for import in c.imports(&name) {
            if let Ok(t) = std::fs::read_to_string(root.join(&import)) {
                c.set_file(&import, t);
            }
        }
        let diags: Vec<_> = c
            .check(&name)
            .into_iter()
            .filter(|d| d.is_error())
            .collect();
        if !diags.is_empty() {
            failures.push(render::terminal::render(&name, &text, &diags, false));
        }
    }
    failures
}

#[test]
fn valid_corpus_checks_without_errors() {
    let failures = check_dir("valid");
    assert!(
        failures.is_empty(),
        "{} files with errors:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn runtime_corpus_checks_without_errors() {
    let failures = check_dir("run");
    assert!(
        failures.is_empty(),
        "{} files with errors:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

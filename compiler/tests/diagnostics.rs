//! The invalid corpus: every `tests/corpus/invalid/**/*.vpl` declares its
//! expected diagnostics in leading comment lines (`# error[E0202]`,
//! `# warning[W0101]`). The harness checks that exactly those codes are
//! produced (as a multiset) and snapshots the source together with the
//! diagnostics rendered without colour.

use varpulis_compiler::{render, Compiler};

/// `severity[code]` entries declared in the file's leading comment lines.
fn declared(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .lines()
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| {
            let t = l.trim_start_matches('#').trim();
            (t.starts_with("error[") || t.starts_with("warning[")).then(|| t.to_string())
        })
        .collect();
    out.sort();
    out
}

fn corpus_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir)
        .expect("corpus directory exists")
        .flatten()
    {
        let p = e.path();
        if p.is_dir() {
            corpus_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "vpl") {
            out.push(p);
        }
    }
}

/// Reports every mismatch at once (the snapshot test stops at the first).
#[test]
fn every_invalid_program_produces_exactly_its_declared_codes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/invalid");
    let mut files = Vec::new();
    corpus_files(&root, &mut files);
    files.sort();
    assert!(
        files.len() >= 60,
        "expected at least 60 invalid programs, found {}",
        files.len()
    );
    let mut problems = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("corpus file is readable");
        let name = path
            .strip_prefix(&root)
            .unwrap_or(&path)
            .display()
            .to_string();
        let mut c = Compiler::new();
        c.set_file(&name, text.as_str());
        let diags = c.check(&name);
        let mut produced: Vec<String> = diags
            .iter()
            .map(|d| format!("{}[{}]", d.severity.as_str(), d.code))
            .collect();
        produced.sort();
        let want = declared(&text);
        if want.is_empty() {
            problems.push(format!("{name}: declares no expected code"));
        }
        if produced != want {
            let rendered = render::terminal::render(&name, &text, &diags, false);
            problems.push(format!(
                "{name}: expected {want:?}, got {produced:?}\n{rendered}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn invalid_corpus_reports_the_declared_diagnostics() {
    insta::glob!("../../tests/corpus/invalid", "**/*.vpl", |path| {
        let text = std::fs::read_to_string(path).expect("corpus file is readable");
        let name = path
            .components()
            .rev()
            .take(2)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let mut c = Compiler::new();
        c.set_file(&name, text.as_str());
        let diags = c.check(&name);
        let mut produced: Vec<String> = diags
            .iter()
            .map(|d| format!("{}[{}]", d.severity.as_str(), d.code))
            .collect();
        produced.sort();
        let rendered = render::terminal::render(&name, &text, &diags, false);
        assert_eq!(produced, declared(&text), "{name}:\n{rendered}");
        insta::assert_snapshot!(format!("{text}\n----- diagnostics -----\n{rendered}"));
    });
}

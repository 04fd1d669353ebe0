//! Every corpus program either lowers to a `Program` that round-trips
//! through serde JSON, or fails only with "not supported yet" diagnostics
//! (E0409/E0410), which are listed in the test output.

use std::path::{Path, PathBuf};

use varpulis_compiler::Compiler;

/// Codes that mean "the engine cannot run this yet" rather than a bug.
const NOT_SUPPORTED: &[&str] = &["E0409", "E0410"];

fn corpus_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            corpus_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "vpl") {
            out.push(p);
        }
    }
}

#[test]
fn corpus_programs_lower_or_report_only_unsupported_constructs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus");
    let mut files = Vec::new();
    corpus_files(&root.join("valid"), &mut files);
    corpus_files(&root.join("run"), &mut files);
    let mut failures = Vec::new();
    let (mut lowered, mut unsupported, mut skipped) = (0, 0, 0);
    for path in &files {
        let name = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string();
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let mut c = Compiler::new();
        c.set_file(&name, text);
        if c.has_errors(&name) {
            // The checker rejects it (or is not finished with it): not ours.
            println!("skip (check errors): {name}");
            skipped += 1;
            continue;
        }
        match c.program(&name) {
            Ok(program) => {
                let json = serde_json::to_string(&program).expect("a Program serialises");
                let back: varpulis_program::Program =
                    serde_json::from_str(&json).expect("a Program deserialises");
                if back != program {
                    failures.push(format!("{name}: JSON round trip changed the program"));
                }
                lowered += 1;
            }
            Err(diags) => {
                let bad: Vec<_> = diags
                    .iter()
                    .filter(|d| !NOT_SUPPORTED.contains(&d.code))
                    .collect();
                for d in &diags {
                    println!(
                        "not supported: {name}: {} {} at {:?}",
                        d.code, d.message, d.primary.span
                    );
                }
                if bad.is_empty() {
                    unsupported += 1;
                } else {
                    for d in bad {
                        failures.push(format!(
                            "{name}: {} {} at {:?}",
                            d.code, d.message, d.primary.span
                        ));
                    }
                }
            }
        }
    }
    println!(
        "lowered {lowered}, not supported {unsupported}, skipped {skipped} of {}",
        files.len()
    );
    assert!(
        failures.is_empty(),
        "lowering failures:\n{}",
        failures.join("\n")
    );
}

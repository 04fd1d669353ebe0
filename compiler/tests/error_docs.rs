//! Every registry code has `docs/errors/<CODE>.md` in the agreed shape; its
//! Example produces exactly that code (and no other error) and its Fix checks
//! without errors and without that code.

use std::path::Path;

use varpulis_compiler::{codes, Compiler, Severity};

/// The body of the first ```vpl block after `heading`.
fn block_after<'a>(page: &'a str, heading: &str) -> Option<&'a str> {
    let rest = &page[page.find(heading)? + heading.len()..];
    let start = rest.find("```vpl\n")? + "```vpl\n".len();
    let end = rest[start..].find("```")?;
    Some(&rest[start..start + end])
}

fn diagnostics(text: &str) -> Vec<(String, Severity)> {
    let mut c = Compiler::new();
    c.set_file("example.vpl", text);
    c.check("example.vpl")
        .into_iter()
        .map(|d| (d.code.to_string(), d.severity))
        .collect()
}

#[test]
fn every_code_has_a_page_whose_example_and_fix_behave() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/errors");
    let mut problems = Vec::new();
    for info in codes::all() {
        let code = info.code;
        let Ok(page) = std::fs::read_to_string(dir.join(format!("{code}.md"))) else {
            problems.push(format!("{code}: no page"));
            continue;
        };
        let header = format!("# {code}: {}\n", info.title);
        if !page.starts_with(&header) {
            problems.push(format!("{code}: page must start with {header:?}"));
        }
        let (Some(example), Some(fix)) = (
            block_after(&page, "## Example"),
            block_after(&page, "## Fix"),
        ) else {
            problems.push(format!("{code}: missing Example or Fix block"));
            continue;
        };
        let got = diagnostics(example);
        let errors: Vec<&str> = got
            .iter()
            .filter(|(_, s)| *s == Severity::Error)
            .map(|(c, _)| c.as_str())
            .collect();
        let has_code = got.iter().any(|(c, _)| c == code);
        let other_errors = errors.iter().any(|c| *c != code);
        if !has_code || other_errors {
            problems.push(format!("{code}: Example produced {got:?}"));
        }
        let fixed = diagnostics(fix);
        // Syntax pages (E01xx) are about the parser: their Fix must parse
        // cleanly; every other page's Fix must check without errors.
        let syntax_page = code.starts_with("E01");
        let bad = |c: &str, s: Severity| {
            if syntax_page {
                c.starts_with("E01")
            } else {
                s == Severity::Error
            }
        };
        if fixed.iter().any(|(c, s)| bad(c, *s) || c == code) {
            problems.push(format!("{code}: Fix produced {fixed:?}"));
        }
        if codes::explain(code) != Some(page.as_str()) {
            problems.push(format!(
                "{code}: explain() does not return the page (rebuild?)"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

//! Every syntax error code has a page `docs/errors/<code>.md` whose example
//! produces exactly that code (and nothing else) and whose fix parses
//! cleanly.

use varpulis_syntax::codes::ALL_CODES;

/// The contents of the fenced ```vpl block after `heading`.
fn block_after<'a>(page: &'a str, heading: &str) -> &'a str {
    let at = page
        .find(heading)
        .unwrap_or_else(|| panic!("missing {heading}"));
    let rest = &page[at..];
    let start = rest.find("```vpl\n").expect("a vpl block") + "```vpl\n".len();
    let len = rest[start..].find("```").expect("a closed block");
    &rest[start..start + len]
}

#[test]
fn each_code_has_a_page_whose_example_produces_it() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/errors");
    for (code, title) in ALL_CODES {
        let path = format!("{dir}/{code}.md");
        let page = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("missing {path}"));
        assert!(
            page.starts_with(&format!("# {code}: {title}\n")),
            "{path} heading"
        );
        let example = block_after(&page, "## Example");
        let codes: Vec<&str> = varpulis_syntax::parse(example)
            .errors
            .iter()
            .map(|e| e.code)
            .collect();
        assert_eq!(codes, [*code], "{path} example");
        let fix = block_after(&page, "## Fix");
        let errors = varpulis_syntax::parse(fix).errors;
        assert!(errors.is_empty(), "{path} fix: {errors:?}");
    }
}

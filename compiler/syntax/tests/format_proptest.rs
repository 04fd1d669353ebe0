//! Property test: corpus programs mutated (tokens deleted, duplicated or
//! inserted, whitespace and comments added) that still parse are formatted
//! idempotently, to the same trees, with every comment kept.

use proptest::prelude::*;
use varpulis_syntax::format::{ast_fingerprint, comment_count, format};
use varpulis_syntax::lex;

/// Valid programs covering most of the grammar (`config_legacy.vpl` and
/// `lambdas.vpl` once found two parser hangs, now fixed: see `no_hang.rs`).
const SEEDS: &[&str] = &[
    include_str!("programs/sources.vpl"),
    include_str!("programs/functions.vpl"),
    include_str!("programs/patterns.vpl"),
    include_str!("programs/pumps.vpl"),
    include_str!("../../../tests/corpus/valid/language/comments_strings.vpl"),
    include_str!("../../../tests/corpus/valid/language/declaration_loops.vpl"),
    include_str!("../../../tests/corpus/valid/language/pattern_sugar.vpl"),
    include_str!("../../../tests/corpus/valid/language/config_legacy.vpl"),
    include_str!("../../../tests/corpus/valid/language/lambdas.vpl"),
    include_str!("../../../tests/corpus/valid/language/config_sources_sinks.vpl"),
];

/// Inserted text: layout, comments and tokens that often keep a program
/// valid.
const FRAGMENTS: &[&str] = &[
    " ",
    "\n",
    "\n\n",
    "\n        ",
    "\t",
    "# note\n",
    "  # trailing\n",
    "/* block */",
    "/* two\nlines */",
    "(",
    ")",
    ",",
    " and true",
    " + 0",
    "not ",
    "-",
];

#[derive(Clone, Debug)]
enum Mutation {
    Insert(usize, usize),
    DeleteToken(usize),
    DuplicateToken(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0..FRAGMENTS.len()).prop_map(|(at, f)| Mutation::Insert(at, f)),
        any::<usize>().prop_map(Mutation::DeleteToken),
        any::<usize>().prop_map(Mutation::DuplicateToken),
    ]
}

/// Applies a mutation at a token boundary.
fn apply(text: &str, m: &Mutation) -> String {
    let tokens = lex(text);
    if tokens.is_empty() {
        return text.to_string();
    }
    let mut out = text.to_string();
    match *m {
        Mutation::Insert(at, f) => {
            let t = tokens[at % tokens.len()];
            out.insert_str(t.span.end as usize, FRAGMENTS[f]);
        }
        Mutation::DeleteToken(at) => {
            let t = tokens[at % tokens.len()];
            out.replace_range(t.span.range(), "");
        }
        Mutation::DuplicateToken(at) => {
            let t = tokens[at % tokens.len()];
            let copy = format!(" {}", &text[t.span.range()]);
            out.insert_str(t.span.end as usize, &copy);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn mutated_programs_that_parse_format_idempotently_and_keep_meaning(
        seed in 0..SEEDS.len(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut text = SEEDS[seed].to_string();
        for m in &mutations {
            text = apply(&text, m);
        }
        let Some(before) = ast_fingerprint(&text) else {
            // Broken programs are refused; nothing to check.
            prop_assert!(format(&text).is_err());
            return Ok(());
        };
        let formatted = match format(&text) {
            Ok(out) => out,
            Err(e) => return Err(TestCaseError::fail(format!("{e}\n--- input ---\n{text}"))),
        };
        prop_assert_eq!(ast_fingerprint(&formatted), Some(before));
        prop_assert_eq!(comment_count(&formatted), comment_count(&text));
        let again = format(&formatted).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(again, formatted);
    }
}

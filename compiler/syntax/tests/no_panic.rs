//! Property tests: `parse` never panics, on random text and on valid
//! programs mutated by deleting, inserting and swapping tokens and
//! characters; pathological nesting must not overflow the stack.

use proptest::prelude::*;
use varpulis_syntax::{lex, parse, split_items, TokenKind};

/// A valid program exercising most of the grammar, used as mutation seed.
const SEED: &str = include_str!("programs/sources.vpl");
const SEED2: &str = include_str!("programs/functions.vpl");
const SEED3: &str = include_str!("programs/patterns.vpl");
const SEED4: &str = include_str!("../../../tests/corpus/valid/language/config_sources_sinks.vpl");

/// Fragments inserted by mutations: keywords, operators and brackets.
const FRAGMENTS: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "->",
    ".",
    "\n",
    "\n    ",
    "stream",
    "event",
    "fn",
    "if",
    "else:",
    "where",
    "as",
    "all",
    "not",
    "\"",
    "'",
    "/*",
    "#",
    "5min",
    "@2024-",
    "??",
    "+=",
    "SEQ(",
    "AND",
    "=",
    ":=",
    "=>",
    "..",
    "for i in 0..3:\n",
    "\t",
    "é",
    "$",
];

fn check_invariants(text: &str) {
    let parse = parse(text);
    // Errors are sorted and inside the expanded text.
    for pair in parse.errors.windows(2) {
        assert!(pair[0].span.start <= pair[1].span.start);
    }
    for e in &parse.errors {
        assert!(e.span.end as usize <= parse.text.len(), "{e:?}");
        assert!(e.code.starts_with("E01"));
    }
    // parse == split + parse_item with offsets.
    let ranges = split_items(&parse.text);
    assert_eq!(ranges.len(), parse.items.len());
    for (node, range) in parse.items.iter().zip(&ranges) {
        assert_eq!(node.offset as usize, range.start);
        let piece = varpulis_syntax::parse_item(&parse.text[range.clone()]);
        assert_eq!(piece.item, node.item);
    }
    // Tokens are ordered and non-overlapping.
    let tokens = lex(text);
    for pair in tokens.windows(2) {
        assert!(pair[0].span.end <= pair[1].span.start);
    }
    let _ = varpulis_syntax::is_incomplete(text);
}

fn mutate(seed: &str, ops: &[(u8, usize, usize)]) -> String {
    let mut text = seed.to_string();
    for &(op, a, b) in ops {
        if text.is_empty() {
            text.push('x');
        }
        let tokens = lex(&text);
        match op % 6 {
            // Delete one character.
            0 => {
                let mut i = a % text.len();
                while !text.is_char_boundary(i) {
                    i -= 1;
                }
                text.remove(i);
            }
            // Insert a fragment at a character position.
            1 => {
                let mut i = a % (text.len() + 1);
                while !text.is_char_boundary(i) {
                    i -= 1;
                }
                text.insert_str(i, FRAGMENTS[b % FRAGMENTS.len()]);
            }
            // Delete a token.
            2 if !tokens.is_empty() => {
                let t = tokens[a % tokens.len()];
                text.replace_range(t.span.range(), "");
            }
            // Duplicate a token.
            3 if !tokens.is_empty() => {
                let t = tokens[a % tokens.len()];
                let copy = text[t.span.range()].to_string();
                text.insert_str(t.span.start as usize, &copy);
            }
            // Swap two tokens.
            4 if tokens.len() > 1 => {
                let (x, y) = (tokens[a % tokens.len()], tokens[b % tokens.len()]);
                let (x, y) = if x.span.start <= y.span.start {
                    (x, y)
                } else {
                    (y, x)
                };
                if x.span.end <= y.span.start {
                    let (tx, ty) = (
                        text[x.span.range()].to_string(),
                        text[y.span.range()].to_string(),
                    );
                    text.replace_range(y.span.range(), &tx);
                    text.replace_range(x.span.range(), &ty);
                }
            }
            // Replace a non-comment token by a fragment.
            _ if !tokens.is_empty() => {
                let t = tokens[a % tokens.len()];
                if t.kind != TokenKind::BlockComment {
                    text.replace_range(t.span.range(), FRAGMENTS[b % FRAGMENTS.len()]);
                }
            }
            _ => {}
        }
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_text_never_panics(text in "\\PC{0,200}") {
        check_invariants(&text);
    }

    #[test]
    fn random_vpl_alphabet_never_panics(text in "[a-z(){}\\[\\],.:=<>!?+*/%&|^~\"'#@0-9 \\n-]{0,300}") {
        check_invariants(&text);
    }

    #[test]
    fn mutated_programs_never_panic(
        which in 0usize..4,
        ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<usize>()), 1..8),
    ) {
        let seed = [SEED, SEED2, SEED3, SEED4][which];
        check_invariants(&mutate(seed, &ops));
    }
}

#[test]
fn ten_thousand_open_parens_do_not_overflow() {
    for text in [
        "(".repeat(10_000),
        format!("stream S = A.where({}", "(".repeat(10_000)),
        format!("let x = {}", "[".repeat(10_000)),
        format!("let x = {}", "{a: ".repeat(10_000)),
        format!("pattern P = {}", "(".repeat(10_000)),
        format!("pattern P = {}A", "NOT ".repeat(10_000)),
        format!("let t: {} = 1", "[".repeat(10_000)),
        format!("let x = {}", "a.b(".repeat(10_000)),
    ] {
        let parse = parse(&text);
        assert!(!parse.errors.is_empty());
    }
}

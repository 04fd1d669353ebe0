//! Property: parsing, checking and rendering never panic, whatever the
//! input, including programs mutated from the corpora (deleted ranges,
//! inserted tokens, swapped lines) and incremental edits of one file.

use proptest::prelude::*;
use varpulis_compiler::{render, Compiler};

const SEEDS: &[&str] = &[
    "event Reading:\n    pump: str\n    bar: float\n\nstream Hot = Reading\n    .where(bar > 8.0)\n    .emit(pump: pump, bar: bar)\n",
    "event Tick:\n    symbol: str\n    price: float\n\nstream Avg = Tick\n    .partition_by(symbol)\n    .window(5m, sliding: 1m)\n    .aggregate(avg_price: avg(price), n: count())\n    .having(n > 3)\n",
    "event L:\n    a: str\nevent P:\n    a: str\n    x: float\nstream T = L as l\n    -> all P where a == l.a as ps\n    -> P where x > 1.0 as q\n    .within(10m)\n    .not(L where a == l.a)\n    .emit(a: l.a, n: len(ps), s: sum(ps.x))\n",
    "fn band(v: float) -> str:\n    if v > 9.0:\n        return \"hot\"\n    elif v < 1.0:\n        return \"cold\"\n    else:\n        return \"ok\"\nlet x: int = 3\nconst Y = x * 2\n",
    "connector Out = file (path: \"o.jsonl\")\nstream S = join(A, B)\n    .on(A.k == B.k)\n    .window(1m)\n    .emit(k: A.k)\n    .to(Out, topic: \"t\")\nstream M = merge(A, stream C = B.where(v > 1))\n",
    "pattern P = SEQ(A as a, B+ where x > a.x as bs, NOT C) within 5m partition by k\nstream Q = P\n    .emit(k: a.k)\nfor i in 1..=3:\n    stream S{i} = A\n        .where(x == {i})\n",
];

const TOKENS: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ".",
    ",",
    ":",
    "->",
    "=>",
    "==",
    "+",
    "*",
    "and",
    "not",
    "if",
    "then",
    "else",
    "stream",
    "event",
    "fn",
    "let",
    "where",
    "as",
    "all",
    ".window(",
    ".aggregate(",
    "count()",
    "5m",
    "3",
    "\"s\"",
    "x",
    "Reading",
    "\n",
    "\n    ",
    "@2024-01-01",
    "?.",
    "..",
    "#",
    "/*",
    "SEQ(",
];

#[derive(Clone, Debug)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, usize),
    SwapLines(usize, usize),
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut s = text.to_string();
    for e in edits {
        let n = s.len().max(1);
        let at = |i: usize| {
            let mut k = i % n;
            while k > 0 && !s.is_char_boundary(k) {
                k -= 1;
            }
            k.min(s.len())
        };
        match *e {
            Edit::Delete(a, len) => {
                let start = at(a);
                let mut end = (start + len % 12).min(s.len());
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                s.replace_range(start..end, "");
            }
            Edit::Insert(a, t) => {
                let pos = at(a);
                s.insert_str(pos, TOKENS[t % TOKENS.len()]);
            }
            Edit::SwapLines(a, b) => {
                let mut lines: Vec<&str> = s.lines().collect();
                if lines.len() > 1 {
                    let (i, j) = (a % lines.len(), b % lines.len());
                    lines.swap(i, j);
                }
                s = lines.join("\n");
            }
        }
    }
    s
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::Delete(a, b)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::Insert(a, b)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
    ]
}

fn check_all(c: &mut Compiler, text: &str) {
    c.set_file("p.vpl", text);
    let diags = c.check("p.vpl");
    let _ = render::terminal::render("p.vpl", text, &diags, false);
    let _ = render::json::render("p.vpl", text, &diags);
    let _ = c.symbols("p.vpl");
    let _ = c.items("p.vpl");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn mutated_programs_never_panic(seed in 0..SEEDS.len(), edits in prop::collection::vec(edit(), 1..8)) {
        let text = apply(SEEDS[seed], &edits);
        let mut c = Compiler::new();
        check_all(&mut c, &text);
    }

    #[test]
    fn incremental_edits_never_panic(seed in 0..SEEDS.len(), edits in prop::collection::vec(edit(), 1..6)) {
        let mut c = Compiler::new();
        let mut text = SEEDS[seed].to_string();
        check_all(&mut c, &text);
        for e in edits {
            text = apply(&text, &[e]);
            check_all(&mut c, &text);
        }
    }

    #[test]
    fn random_token_soup_never_panics(toks in prop::collection::vec(0..TOKENS.len(), 0..60)) {
        let text: String = toks.iter().map(|&t| TOKENS[t]).collect::<Vec<_>>().join(" ");
        let mut c = Compiler::new();
        check_all(&mut c, &text);
    }
}

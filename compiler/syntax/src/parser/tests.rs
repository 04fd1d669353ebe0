//! Parser unit tests: each renders the parsed item as an s-expression plus
//! its errors as `code@line:col message`.

use super::sexpr;

/// Parses `text` as a whole file and compares the rendering.
fn check(text: &str, expected: &str) {
    let parse = crate::parse(text);
    let mut out: Vec<String> = parse.items.iter().map(|i| sexpr::item(&i.item)).collect();
    for e in &parse.errors {
        let before = &parse.text[..e.span.start as usize];
        let line = before.matches('\n').count() + 1;
        let col = before.len() - before.rfind('\n').map_or(0, |n| n + 1) + 1;
        out.push(format!("{}@{line}:{col} {}", e.code, e.message));
    }
    assert_eq!(out.join("\n"), expected.trim(), "parsing:\n{text}");
}

/// Parses `let x = <expr>` and compares the rendered expression.
fn check_expr(text: &str, expected: &str) {
    check(&format!("let x = {text}"), &format!("(let x {expected})"));
}

#[test]
fn smoke() {
    check("stream A = B.where(x > 1)", "(stream A B .where((> x 1)))");
}

#[test]
fn stream_with_sequence_steps_and_ops() {
    check(
        "stream Spikes = Reading as r1
    -> Reading where pump == r1.pump and bar > r1.bar * 1.5 as r2
    .within(1m)
    .emit(pump: r1.pump, before: r1.bar, after: r2.bar)
    .to(Out)",
        "(stream Spikes Reading as r1 (-> Reading where (and (== pump r1.pump) (> bar (* r1.bar 1.5))) as r2) .within(60000000000ns) .emit(pump: r1.pump, before: r1.bar, after: r2.bar) .to(Out))",
    );
}

#[test]
fn step_filter_stops_before_as_and_next_operator() {
    check(
        "stream S = A as a -> B where x > a.v as b .within(5m)",
        "(stream S A as a (-> B where (> x a.v) as b) .within(300000000000ns))",
    );
    check(
        "stream S = A as a\n    -> all B where x > a.v\n    .within(1m)\n    .not(C where y == a.y)",
        "(stream S A as a (-> all B where (> x a.v)) .within(60000000000ns) (.not C where (== y a.y)))",
    );
}

#[test]
fn event_declarations() {
    check(
        "event Reading:\n    pump: str\n    bar: float\n    note: str?  # optional\n",
        "(event Reading pump:str bar:float note:str?)",
    );
    check("event Ping: seq: int", "(event Ping seq:int)");
    check(
        "event Alarm extends Reading:\n    level: int\n    type: str\n",
        "(event Alarm extends Reading level:int type:str)",
    );
}

#[test]
fn precedence_follows_the_table() {
    check_expr("a or b and c", "(or a (and b c))");
    check_expr("not a == b", "(not (== a b))");
    check_expr(
        "a | b ^ c & d << 1 + 2 * 3",
        "(| a (^ b (& c (<< d (+ 1 (* 2 3))))))",
    );
    check_expr("a - b - c", "(- (- a b) c)");
    check_expr("2 ** 3 ** 2", "(** 2 (** 3 2))");
    check_expr("-2 ** 2", "(** (- 2) 2)");
    check_expr("-a.b[0](1)", "(- a.b[0](1))");
    check_expr("a?.b", "a?.b");
    check_expr("s[1:]", "s[1:]");
    check_expr("s[:2]", "s[:2]");
    check_expr("1..=5", "(..= 1 5)");
    check_expr(
        "x in [1, 2] or y not in m",
        "(or (in x [1, 2]) (not in y m))",
    );
    check_expr("x is null", "(is x null)");
    check_expr(
        "if a > 1 then \"hi\" else 'lo'",
        "(if (> a 1) \"hi\" \"lo\")",
    );
    check_expr(
        "{a: 1, \"b c\": [true, false]}",
        "{a: 1, b c: [true, false]}",
    );
    check_expr("(a + b) * c", "(* ((+ a b)) c)");
    check_expr("f(x, n: 2)", "f(x, n: 2)");
}

#[test]
fn lambdas() {
    check_expr("x => x + 1", "(fn (x) (+ x 1))");
    check_expr("(a, b) => a * b", "(fn (a b) (* a b))");
    check_expr(
        "(a) => { let y = a * 2\n y + 1 }",
        "(fn (a) [(let y (* a 2)) (+ y 1)])",
    );
    check_expr(
        "events.filter(e => e.v > 1).len()",
        "events.filter((fn (e) (> e.v 1))).len()",
    );
}

#[test]
fn literals() {
    check_expr("42", "42");
    check_expr("4.25", "4.25");
    check_expr("1.5e3", "1500.0");
    check_expr("\"a\\nb\"", "\"a\\nb\"");
    check_expr("250ms", "250000000ns");
    check_expr("@1970-01-02", "@86400000000000");
    check_expr("null", "null");
    check_expr("[]", "[]");
}

#[test]
fn keyword_prefixes_are_names() {
    check_expr(
        "notes > 3 and true_count == null_rate",
        "(and (> notes 3) (== true_count null_rate))",
    );
    check(
        "stream S = A -> allowance as a",
        "(stream S A (-> allowance as a))",
    );
    check(
        ".select(not, in)",
        "(error)\nE0101@1:1 expected a declaration, found `.`",
    );
}

#[test]
fn chained_comparison_is_one_error() {
    check(
        "let x = a < b < c",
        "(let x (< a b))\nE0110@1:15 comparison operators cannot be chained",
    );
}

#[test]
fn bad_literals_are_reported_by_the_lexer_only() {
    check(
        "stream S = A.within(5min)",
        "(stream S A .within(?))\nE0106@1:21 invalid duration literal `5min`",
    );
}

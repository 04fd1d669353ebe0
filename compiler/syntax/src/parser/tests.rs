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

#[test]
fn sources() {
    check(
        "stream M = merge(A, stream S = T.where(x > 1))",
        "(stream M (merge A (stream S T .where((> x 1)))))",
    );
    check(
        "stream J = join(A, B)\n    .on(A.k == B.k)\n    .window(1m)",
        "(stream J (join A B) .on((== A.k B.k)) .window(60000000000ns))",
    );
    check(
        "stream J = join(stream A = T.on(A.k == B.k), stream B = U on A.k == B.k)",
        "(stream J (join (stream A T .on((== A.k B.k))) (stream B U .on((== A.k B.k)))))",
    );
    check(
        "stream Q = sequence(a: A, b: B where x == a.x .within(5s))",
        "(stream Q (sequence a:A, b:B where (== x a.x) within 5000000000ns))",
    );
    check(
        "stream T = timer(5s, initial_delay: 1s)",
        "(stream T (timer (5000000000ns, initial_delay: 1000000000ns)))",
    );
    check(
        "stream F = Reading.from(Mqtt, topic: \"x\").where(bar > 1)",
        "(stream F (from Reading (Mqtt, topic: \"x\")) .where((> bar 1)))",
    );
    check("stream K = all T as a", "(stream K all T as a)");
    check(
        "stream S: Stream<Reading> = Reading",
        "(stream S: Stream<Reading> Reading)",
    );
}

#[test]
fn emit_forms() {
    check(
        "stream S = A.emit as Alert (level: 2, context: other)",
        "(stream S A .emit as Alert(level: 2, context: other))",
    );
    check("stream S = A.emit()", "(stream S A .emit())");
    check(
        "stream S = A.select(a, b: x * 2).aggregate(n: count(), avg: avg(bar))",
        "(stream S A .select(a, b: (* x 2)) .aggregate(n: count(), avg: avg(bar)))",
    );
}

#[test]
fn named_patterns_and_sugar() {
    check(
        "pattern Stalled = SEQ(Start as s, Progress* where job == s.job, Fail where job == s.job)\n    within 30m partition by job",
        "(pattern Stalled (SEQ Start as s Progress*[(== job s.job)] Fail[(== job s.job)]) within 1800000000000ns partition-by job)",
    );
    check(
        "pattern P = A -> B[x > 1] -> C within 5m",
        "(pattern P (SEQ A B[(> x 1)] C) within 300000000000ns)",
    );
    check("pattern P = AND(A, B)", "(pattern P (AND A B))");
    check("pattern P = OR(A, B, C)", "(pattern P (OR (OR A B) C))");
    check("pattern P = NOT(A)", "(pattern P (NOT A))");
    check(
        "pattern P = A AND B OR NOT C",
        "(pattern P (OR (AND A B) (NOT C)))",
    );
    check(
        "pattern P = SEQ(A+, NOT B, C?, SEQ(D, E)) policy skip_till_next_match within 1h",
        "(pattern P (SEQ A+ (NOT B) C? (SEQ D E)) within 3600000000000ns policy skip_till_next_match)",
    );
    check("pattern P = (A OR B) AND C", "(pattern P (AND (OR A B) C))");
}

#[test]
fn pattern_stream_star_form_is_rejected_with_help() {
    let parse = crate::parse("stream S = * pattern P emit alert(x)");
    assert_eq!(parse.errors.len(), 1, "{:?}", parse.errors);
    assert_eq!(parse.errors[0].code, "E0112");
    assert!(parse.errors[0]
        .help
        .as_deref()
        .is_some_and(|h| h.contains("stream S = P .emit")));
}

#[test]
fn functions_and_blocks() {
    check(
        "fn band(v: float) -> str:
    if v > 90.0:
        return \"hot\"
    elif v < 5.0:
        return \"cold\"
    else:
        return \"normal\"
",
        "(fn band(v:float) -> str [(if (> v 90.0) [(return \"hot\")] (< v 5.0) [(return \"cold\")] else [(return \"normal\")])])",
    );
    check(
        "fn spread(lo: float, hi: float) -> float:\n    let d = hi - lo\n    d / hi\n",
        "(fn spread(lo:float, hi:float) -> float [(let d (- hi lo)) (/ d hi)])",
    );
    check(
        "fn f(xs: [int]):\n    var t = 0\n    for x in xs:  # loop\n        t := t + x\n    while t > 10:\n        t := t - 1\n        if t == 3:\n            break\n        continue\n    emit Out(total: t)\n",
        "(fn f(xs:[int]) [(var t 0) (for x xs [(:= t (+ t x))]) (while (> t 10) [(:= t (- t 1)) (if (== t 3) [(break)]) (continue)]) (emit Out (total: t))])",
    );
}

#[test]
fn block_openers_tolerate_comments_and_spaced_else() {
    check(
        "fn f(x: int) -> int:  # doc\n    if x > 1:  # big\n        return 1\n    else :\n        return 2\n",
        "(fn f(x:int) -> int [(if (> x 1) [(return 1)] else [(return 2)])])",
    );
}

#[test]
fn statements_continue_on_deeper_lines() {
    check(
        "fn f(a: int) -> int:\n    let x = a +\n        1\n    x\n",
        "(fn f(a:int) -> int [(let x (+ a 1)) x])",
    );
}

#[test]
fn other_declarations() {
    check(
        "connector Out = file (path: \"alerts.jsonl\")",
        "(connector Out file (path: \"alerts.jsonl\"))",
    );
    check(
        "context ingest (cores: [0, 1])",
        "(context ingest (cores: [0, 1]))",
    );
    check("context ingest", "(context ingest ())");
    check(
        "config mqtt { broker: \"localhost\" port: 1883, topic: \"t\" }",
        "(config mqtt (broker: \"localhost\", port: 1883, topic: \"t\"))",
    );
    check(
        "config:\n    mode: \"fast\"\n    retries: 3\n",
        "(config - (mode: \"fast\", retries: 3))",
    );
    check("import \"common.vpl\" as c", "(import \"common.vpl\" as c)");
    check("type Bar = float", "(type Bar float)");
    check("type M = {str: [int]}", "(type M {str: [int]})");
    check("type P = (int, str)?", "(type P (int, str)?)");
    check("const LIMIT: float = 9.5", "(const LIMIT:float 9.5)");
    check("var n = 0\nn := n + 1", "(var n 0)\n(:= n (+ n 1))");
    check(
        "if n > 1:\n    print(n)\nelse:\n    print(0)\n",
        "(if (> n 1) [print(n)] else [print(0)])",
    );
    check(
        "stream S: Stream<Stream<A>> = A",
        "(stream S: Stream<Stream<A>> A)",
    );
}

#[test]
fn comments_of_all_kinds_are_skipped_and_kept() {
    let text = "# head\nstream S = A // tail\n    /* block */ .where(x)\n";
    check(text, "(stream S A .where(x))");
    assert_eq!(crate::parse(text).comments.len(), 3);
}

#[test]
fn declaration_loops_expand_before_parsing() {
    check(
        "for z in 1..=2:\n    stream Hot{z} = Reading\n        .where(zone == {z})\n",
        "(stream Hot1 Reading .where((== zone 1)))\n(stream Hot2 Reading .where((== zone 2)))",
    );
}

#[test]
fn missing_paren_keeps_later_items() {
    check(
        "stream A = X.where(a > 1\nstream B = Y.where(b)\nevent E: x: int\n",
        "(stream A X .where((> a 1)))\n(stream B Y .where(b))\n(event E x:int)\nE0102@1:19 unclosed `(`",
    );
}

#[test]
fn independent_errors_are_each_reported_once() {
    check(
        "stream A = X.where(a > > 1)\n    .select(b)\nstream B = Y.window(5min)\nlet c = d ?? 1\nfn f(x) -> int:\n    x += 1\n    x\nstream D = Z.where(q $ 2)\n",
        "(stream A X .where((> a ?)) .select(b))
(stream B Y .window(?))
(let c ?)
(fn f(x:?error) -> int [(:= x 1) x])
(stream D Z .where(q))
E0108@1:24 expected an expression, found `>`
E0106@3:21 invalid duration literal `5min`
E0112@4:11 `??` is not supported
E0101@5:6 parameter `x` needs a type
E0112@6:7 `+=` is not supported
E0114@8:22 invalid character `$`",
    );
}

#[test]
fn unsupported_statements_have_help() {
    check(
        "fn f(x: int) -> int:\n    match x:\n        1 => 2\n    try:\n        x\n    catch e:\n        0\n    x\n",
        "(fn f(x:int) -> int [? ? x])\nE0112@2:5 `match` is not supported\nE0112@4:5 `try` is not supported",
    );
}

#[test]
fn recovery_in_pipelines_resumes_at_the_next_operator() {
    check(
        "stream S = A\n    .where(x >)\n    where(y)\n    .select(z)\n",
        "(stream S A .where((> x ?)) .select(z))\nE0108@2:15 expected an expression, found `)`\nE0101@3:5 expected an operator such as `.where(...)` or `->`, found `where`",
    );
}

#[test]
fn block_errors() {
    check(
        "fn f() -> int:\nlet x = 1\n",
        "(fn f() -> int [])\n(let x 1)\nE0109@1:15 expected an indented block, found end of input",
    );
    check(
        "fn f() -> int: 1\n",
        "(fn f() -> int [1])\nE0109@1:16 expected an indented block on the next line",
    );
    check(
        "fn f() -> int:\n    let a = 1\n        let b = 2\n    a\n",
        "(fn f() -> int [(let a 1) a])\nE0115@3:9 unexpected indentation",
    );
    check(
        "event E:\n",
        "(event E )\nE0109@1:9 expected indented field declarations, found end of input",
    );
}

#[test]
fn misspelt_keyword_gets_a_suggestion() {
    let parse = crate::parse("stram S = A\n");
    assert_eq!(parse.errors.len(), 1);
    assert_eq!(
        parse.errors[0].help.as_deref(),
        Some("did you mean `stream`?")
    );
}

#[test]
fn assignment_with_equals_is_explained() {
    check(
        "fn f():\n    x = 1\n",
        "(fn f() [x])\nE0101@2:7 `=` cannot assign",
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("let x = {}1{}", "(".repeat(10_000), ")".repeat(10_000));
    let parse = crate::parse(&deep);
    assert_eq!(parse.errors.len(), 1, "{:?}", parse.errors);
    assert_eq!(parse.errors[0].code, "E0111");
    let unclosed = "(".repeat(10_000);
    let parse = crate::parse(&unclosed);
    assert!(!parse.errors.is_empty());
    let unary = format!("let x = {}1", "-".repeat(100_000));
    assert_eq!(crate::parse(&unary).errors.len(), 1);
    let nots = format!("let x = {}a", "not ".repeat(100_000));
    assert_eq!(crate::parse(&nots).errors.len(), 1);
    let chain = format!("let x = 1{}", " + 1".repeat(100_000));
    assert_eq!(crate::parse(&chain).errors.len(), 1);
    let arrows = format!("stream S = A{}", " -> B".repeat(100_000));
    assert!(crate::parse(&arrows).errors.is_empty());
    let pattern = format!("pattern P = A{}", " -> B".repeat(100_000));
    assert_eq!(crate::parse(&pattern).errors.len(), 1);
    let lambdas = format!("let f = {}1", "x => ".repeat(10_000));
    assert_eq!(crate::parse(&lambdas).errors.len(), 1);
    let ifs = format!("let f = {}1", "if a then ".repeat(10_000));
    assert!(!crate::parse(&ifs).errors.is_empty());
    let blocks: String = (0..200)
        .map(|d| format!("{}if x:\n", " ".repeat(d)))
        .collect();
    assert!(!crate::parse(&blocks).errors.is_empty());
}

#[test]
fn incomplete_errors_mark_only_the_end() {
    let parse = crate::parse("stream A = X.where(a\nstream B = Y.where(");
    assert_eq!(parse.errors.len(), 2);
    assert!(!parse.errors[0].incomplete);
    assert!(parse.errors[1].incomplete);
}

#[test]
fn keywords_stay_usable_as_field_names() {
    check(
        "stream S = A.select(all, in: x, where: y).emit(not: 1)",
        "(stream S A .select(all, in: x, where: y) .emit(not: 1))",
    );
    check("let x = a.in + b.where", "(let x (+ a.in b.where))");
}

#[test]
fn layout_of_nested_blocks_and_dedents() {
    check(
        "fn f(x: int) -> int:\n    if x > 0:\n        if x > 10:\n            return 2\n        return 1\n    return 0\nlet y = 1\n",
        "(fn f(x:int) -> int [(if (> x 0) [(if (> x 10) [(return 2)]) (return 1)]) (return 0)])\n(let y 1)",
    );
    check(
        "fn f(x: int) -> int:\n\tif x > 0:\n\t\treturn 1\n\treturn 0\n",
        "(fn f(x:int) -> int [(if (> x 0) [(return 1)]) (return 0)])",
    );
}

#[test]
fn pipelines_are_free_form() {
    check(
        "stream S = A\n.where(x)\n        .select(y)\n  -> B as b\n",
        "(stream S A .where(x) .select(y) (-> B as b))",
    );
}

#[test]
fn step_filters_spanning_lines() {
    check(
        "stream S = A as a\n    -> B where x > a.v\n        and y < 2\n    .within(1m)\n",
        "(stream S A as a (-> B where (and (> x a.v) (< y 2))) .within(60000000000ns))",
    );
    check(
        "stream S = A as a -> B where f(a.v.g(1)) as b",
        "(stream S A as a (-> B where f(a.v.g(1)) as b))",
    );
}

#[test]
fn else_if_is_explained() {
    check(
        "fn f(x: int) -> int:\n    if x > 0:\n        return 1\n    else if x < 0:\n        return 2\n    return 0\n",
        "(fn f(x:int) -> int [(if (> x 0) [(return 1)] (< x 0) [(return 2)]) (return 0)])\nE0101@4:10 `else if` is written `elif`",
    );
}

#[test]
fn config_block_declares_sources_and_sinks() {
    check(
        "config:
  sources:
    kafka_trades: { type: kafka, brokers: [\"localhost:9092\"], topic: trades, group_id: varpulis-consumer }
  sinks:
    alerts: { type: http, url: \"https://api.example.com/alerts\", headers: { Authorization: \"Bearer ${ALERT_TOKEN}\" } }
",
        "(config - () (sources (kafka_trades (type: kafka, brokers: [\"localhost:9092\"], topic: trades, group_id: \"varpulis-consumer\"))) (sinks (alerts (type: http, url: \"https://api.example.com/alerts\", headers: {Authorization: \"Bearer ${ALERT_TOKEN}\"}))))",
    );
}

#[test]
fn config_connectors_may_span_lines_or_use_indented_parameters() {
    check(
        "config:
    sinks:
        out:
            type: file
            path: \"out.jsonl\"
        screen: {
            type: console,
            }
    sources:
        input: { type: file, path: \"in.jsonl\", poll: 50ms }
",
        "(config - () (sinks (out (type: file, path: \"out.jsonl\")) (screen (type: console))) (sources (input (type: file, path: \"in.jsonl\", poll: 50000000ns))))",
    );
}

#[test]
fn config_sections_and_legacy_entries_keep_apart() {
    // `sources: "x"` has a value on its line: a legacy flat entry.
    check(
        "config:\n    sources: \"x\"\n    retries: 3\n",
        "(config - (sources: \"x\", retries: 3))",
    );
    check(
        "config:\n    mode: \"fast\"\n    sinks:\n        out: { type: console }\n",
        "(config - (mode: \"fast\") (sinks (out (type: console))))",
    );
}

#[test]
fn config_block_errors_recover_at_the_next_entry() {
    check(
        "config:\n    sources:\n    sinks:\n        out: { type: console }\n",
        "(config - () (sources) (sinks (out (type: console))))\nE0109@2:13 expected indented `name: { type: ... }` entries under `sources:`, found the end of the line",
    );
    check(
        "config:\n    sinks:\n        \"out\": { type: console }\n        ok: { type: console }\n",
        "(config - () (sinks (ok (type: console))))\nE0101@3:9 expected a connector entry `name: { type: ... }`, found a string",
    );
    check(
        "config:\n    sinks:\n        out: console\n        ok: { type: console, 3 }\n",
        "(config - () (sinks (ok (type: console, ?))))\nE0101@3:14 expected `{` and the connector's parameters, found `console`\nE0101@4:30 expected a parameter name, found `3`",
    );
    // Lines inside a block continue an entry only when indented more than
    // it, so a closing brace at the entry's own indentation is a new entry.
    check(
        "config:\n    sinks:\n        out: {\n            type: console\n        }\n",
        "(config - () (sinks (out (type: console))))\nE0102@3:14 unclosed `{`\nE0101@5:9 expected a connector entry `name: { type: ... }`, found `}`",
    );
}

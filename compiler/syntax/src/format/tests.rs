//! Layout of each construct: input, expected output, and a second pass
//! that must change nothing.

use super::{format, FormatError};

#[track_caller]
fn check(input: &str, expected: &str) {
    let out = match format(input) {
        Ok(out) => out,
        Err(e) => panic!("formatting failed: {e:?}"),
    };
    assert_eq!(out, expected, "formatting {input:?}");
    assert_eq!(
        format(&out).as_deref(),
        Ok(expected),
        "second pass changed the text"
    );
}

#[test]
fn declarations_are_separated_and_one_liners_keep_their_spacing() {
    check(
        "let a=1\nlet b =  2\n\n\n\nconst C: int = 3\nevent E:\n  x: int\nstream S = E\n",
        "let a = 1\nlet b = 2\n\nconst C: int = 3\n\nevent E:\n    x: int\n\nstream S = E\n",
    );
}

#[test]
fn event_fields_go_one_per_line() {
    check(
        "event Ping extends Base: seq: int\nevent R:\n\tnote: str?   # optional\n\ttags: [str]\n",
        "event Ping extends Base:\n    seq: int\n\nevent R:\n    note: str?  # optional\n    tags: [str]\n",
    );
}

#[test]
fn functions_indent_their_blocks_by_four_spaces() {
    check(
        "fn band(v: float)->str:\n  if v>90.0:\n    return \"hot\"\n  elif v<5.0:\n    return 'cold'\n  else:\n    return \"ok\"\n",
        "fn band(v: float) -> str:\n    if v > 90.0:\n        return \"hot\"\n    elif v < 5.0:\n        return \"cold\"\n    else:\n        return \"ok\"\n",
    );
    check(
        "fn f(n: int) -> int:\n  var i = 0\n\n\n  while i < n:\n      i := i + 1\n  for x in 0..n:\n      continue\n  i\n",
        "fn f(n: int) -> int:\n    var i = 0\n\n    while i < n:\n        i := i + 1\n    for x in 0..n:\n        continue\n    i\n",
    );
}

#[test]
fn stream_operators_go_one_per_line() {
    check(
        "stream S = Order as o -> all Packed where order == o.id as k -> Sent as s .within(2h) .not(Cancelled where order == o.id) .emit as Out(order: o.id)\n",
        "stream S = Order as o\n    -> all Packed where order == o.id as k\n    -> Sent as s\n    .within(2h)\n    .not(Cancelled where order == o.id)\n    .emit as Out(order: o.id)\n",
    );
}

#[test]
fn long_argument_lists_break_one_per_line_with_trailing_commas() {
    check(
        "stream S = R.emit(first_field_name: first_value, second_field_name: second_value, third: value_three, fourth: value_four)\n",
        "stream S = R\n    .emit(\n        first_field_name: first_value,\n        second_field_name: second_value,\n        third: value_three,\n        fourth: value_four,\n    )\n",
    );
}

#[test]
fn sources_print_canonically() {
    check(
        "stream M = merge( A , stream B2 = B .where(x>1) )\nstream J = join(A, stream B2 = B on A.k == B2.k).window(1m)\nstream Q = sequence(a: A, b: B where x == a.x .within(5m))\nstream T = timer(1s, initial_delay: 2s)\nstream F = Reading.from(Mqtt, topic: \"t\")\n",
        "stream M = merge(A, stream B2 = B.where(x > 1))\n\nstream J = join(A, stream B2 = B.on(A.k == B2.k))\n    .window(1m)\n\nstream Q = sequence(a: A, b: B where x == a.x .within(5m))\nstream T = timer(1s, initial_delay: 2s)\nstream F = Reading.from(Mqtt, topic: \"t\")\n",
    );
}

#[test]
fn expressions_get_canonical_spacing_and_keep_parentheses() {
    check(
        "let x = ( a+b )*c**2 - -d\nlet m = {k:1, \"two words\":[1,2]}\nlet f = (a,b)=>a?.c[0][1:2]\nlet g = if a then not b else a not in [1]\nlet r = 1..=3\n",
        "let x = (a + b) * c ** 2 - -d\nlet m = {k: 1, \"two words\": [1, 2]}\nlet f = (a, b) => a?.c[0][1:2]\nlet g = if a then not b else a not in [1]\nlet r = 1..=3\n",
    );
}

#[test]
fn literals_are_printed_as_written() {
    check(
        "let d = 90s\nlet t = @2024-01-01T00:00:00Z\nlet f = 1.50e3\nlet s = 'it\\'s \"q\"'\n",
        "let d = 90s\nlet t = @2024-01-01T00:00:00Z\nlet f = 1.50e3\nlet s = \"it\\'s \\\"q\\\"\"\n",
    );
}

#[test]
fn patterns_keep_their_spelling_and_add_needed_parentheses() {
    check(
        "pattern P = SEQ( A as a, B+ where x == a.x ) within 5m partition by k policy skip_till_any_match\n",
        "pattern P = SEQ(A as a, B+ where x == a.x) within 5m partition by k policy skip_till_any_match\n",
    );
    check(
        "pattern Q = A->B[amount>1]->C\npattern R = (A OR B) AND NOT C\npattern S = AND(A, B, C)\npattern T = NOT (A OR B)\n",
        "pattern Q = A -> B[amount > 1] -> C\npattern R = (A OR B) AND NOT C\npattern S = AND(A, B, C)\npattern T = NOT(A OR B)\n",
    );
}

#[test]
fn long_patterns_break_their_seq_arguments() {
    check(
        "pattern Retried = SEQ(JobFailed as f1, JobFailed+ where job == f1.job as again, JobSucceeded where job == f1.job as ok) within 30m partition by job\n",
        "pattern Retried = SEQ(\n    JobFailed as f1,\n    JobFailed+ where job == f1.job as again,\n    JobSucceeded where job == f1.job as ok,\n) within 30m partition by job\n",
    );
}

#[test]
fn connectors_contexts_imports_and_aliases() {
    check(
        "import 'common.vpl' as c\nconnector K = kafka(brokers: \"b\", topic: \"t\")\nconnector C = console\ncontext ingest(cores: [0, 1])\ntype Bar = {str: [float]}\n",
        "import \"common.vpl\" as c\nconnector K = kafka (brokers: \"b\", topic: \"t\")\nconnector C = console\ncontext ingest (cores: [0, 1])\ntype Bar = {str: [float]}\n",
    );
}

#[test]
fn config_blocks_use_both_legacy_forms() {
    check(
        "config mqtt { broker: \"h\" port: 1883 }\nconfig:\n  mode: simulation\n",
        "config mqtt {\n    broker: \"h\",\n    port: 1883,\n}\n\nconfig:\n    mode: simulation\n",
    );
}

#[test]
fn declaration_loops_keep_their_body_and_are_reindented() {
    check(
        "for  z in 1..=2 :  # zones\n  stream Hot{z} = R\n      .where(zone == {z})\nlet x = 1\n",
        "for z in 1..=2:  # zones\n    stream Hot{z} = R\n        .where(zone == {z})\n\nlet x = 1\n",
    );
}

/// A column-0 line under a loop continues only its last expansion. The
/// formatter keeps it where it is: indenting it would apply it to every
/// expansion (found by the `parse` fuzz target).
#[test]
fn lines_continuing_a_loops_last_expansion_stay_below_it() {
    check(
        "event R:\n    x: int\n\nfor z in 1..=3:\n    stream A{z} = R\n.where(x: 1)  # last\n\n.where(x: 2)\nlet y = 1\n",
        "event R:\n    x: int\n\nfor z in 1..=3:\n    stream A{z} = R\n.where(x: 1)  # last\n\n.where(x: 2)\n\nlet y = 1\n",
    );
    let crash = "event Reading:\n    zone: int\n\nfor z in 1..=3:\n    stream HotZone{z} = Reading\n        .where(zoneventDReading:\n pra+ure > 30.0)\n.where(zoneventDReading:\n pra+ure > 30.0)\n";
    let out = format(crash).expect("formats");
    assert_eq!(format(&out).as_deref(), Ok(out.as_str()));
}

#[test]
fn comments_stay_where_they_belong() {
    check(
        "# header\n\n# about S\nstream S = A # after source\n  # between\n  .where(x) /* after where */\n  .emit(a: 1, # first\n    b: 2)\n# trailer\n",
        "# header\n\n# about S\nstream S = A  # after source\n    # between\n    .where(x)  /* after where */\n    .emit(\n        a: 1,  # first\n        b: 2,\n    )\n\n# trailer\n",
    );
}

#[test]
fn comments_inside_expressions_move_above_their_line() {
    check("let x = 1 + /* why */ 2\n", "/* why */\nlet x = 1 + 2\n");
}

#[test]
fn comments_at_the_end_of_a_block_stay_in_it() {
    check(
        "fn f() -> int:\n    1  # one\n    # still inside\n# outside\nlet y = 2\n",
        "fn f() -> int:\n    1  # one\n    # still inside\n\n# outside\nlet y = 2\n",
    );
}

#[test]
fn block_lambdas_indent_their_statements() {
    check(
        "let clamp = (v) => { let lo = 0.0\n max(v, lo) }\n",
        "let clamp = v => {\n    let lo = 0.0\n    max(v, lo)\n}\n",
    );
}

#[test]
fn nested_optional_types_do_not_become_the_reserved_operator() {
    check(
        "fn f(t: str? ?) -> int:\n    1\n",
        "fn f(t: str? ?) -> int:\n    1\n",
    );
}

#[test]
fn text_with_syntax_errors_is_refused() {
    match format("stream S = A.where(\nlet x = 1\n") {
        Err(FormatError::Syntax(errors)) => assert!(!errors.is_empty()),
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn empty_and_comment_only_files() {
    check("", "");
    check("\n\n# only\n\n\n# comments\n", "# only\n\n# comments\n");
}

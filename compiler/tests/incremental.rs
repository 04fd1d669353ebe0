//! Incrementality, asserted from salsa's execution events: editing one
//! stream re-checks that stream only, and its consumers only when its output
//! schema changed.

use varpulis_compiler::Compiler;

const PROGRAM: &str = "\
event Reading:
    pump: str
    bar: float

stream A = Reading
    .where(bar > 1.0)
    .emit(pump: pump, bar: bar)

stream B = Reading
    .where(bar < 9.0)
    .emit(pump: pump)

stream C = A
    .where(bar > 3.0)
";

fn checked(c: &mut Compiler, text: &str) -> Vec<String> {
    c.set_file("rules.vpl", text);
    let diags = c.check("rules.vpl");
    assert!(diags.is_empty(), "{diags:?}");
    c.take_executed()
}

fn ran(log: &[String], query: &str) -> bool {
    log.iter().any(|q| q == query)
}

#[test]
fn editing_one_line_of_a_stream_rechecks_only_that_stream() {
    let mut c = Compiler::with_event_log();
    let first = checked(&mut c, PROGRAM);
    assert!(
        ran(&first, "analyze_item(B)"),
        "first check runs everything: {first:?}"
    );

    let log = checked(&mut c, &PROGRAM.replace("bar > 1.0", "bar > 5.0"));
    assert!(ran(&log, "parse_item(A)"), "{log:?}");
    assert!(ran(&log, "analyze_item(A)"), "{log:?}");
    for other in ["B", "C", "Reading"] {
        assert!(
            !ran(&log, &format!("analyze_item({other})")),
            "{other} re-checked: {log:?}"
        );
        assert!(
            !ran(&log, &format!("parse_item({other})")),
            "{other} re-parsed: {log:?}"
        );
    }
}

#[test]
fn changing_a_streams_output_schema_rechecks_its_consumers_only() {
    let mut c = Compiler::with_event_log();
    checked(&mut c, PROGRAM);
    let log = checked(
        &mut c,
        &PROGRAM.replace(
            "emit(pump: pump, bar: bar)",
            "emit(pump: pump, bar: bar * 2.0, n: 1)",
        ),
    );
    assert!(ran(&log, "analyze_item(A)"), "{log:?}");
    assert!(ran(&log, "analyze_item(C)"), "C reads A's schema: {log:?}");
    assert!(!ran(&log, "analyze_item(B)"), "B does not: {log:?}");
}

#[test]
fn an_unchanged_text_reruns_nothing() {
    let mut c = Compiler::with_event_log();
    checked(&mut c, PROGRAM);
    let log = checked(&mut c, PROGRAM);
    assert!(log.is_empty(), "{log:?}");
}

//! The operator table (`capabilities::Op`) against its consumers: every
//! operator has a row, hover text, signature help and (when the engine runs
//! it) a completion item, and the lowering accepts exactly the `Supported`
//! rows. `example` matches on `Op` without a catch-all, so a new operator
//! cannot be added without an example program here.

use varpulis_compiler::capabilities::{Op, Support, OPERATORS};
use varpulis_compiler::{codes, ide, Compiler, Severity};

const PRELUDE: &str = "\
event Reading:
    zone: str
    temp: float

event Other:
    zone: str

event Alert:
    zone: str

connector Out = console ()
connector Lookup = http (url: \"http://127.0.0.1:1/zones/{key}\")
context fast

fn check(zone: str, temp: float):
    if temp > 90.0:
        emit Alert(zone: zone)

stream Seq = Reading as a
    -> Other where zone == a.zone as b
    .within(1m)
    .emit(zone: a.zone)

stream Hot = Reading
    .where(temp > 1.0)

";

const SEQ: &str = "Reading as a\n    -> Other where zone == a.zone as b\n    .within(1m)";

/// A stream using `op` (the stream `S`, after `PRELUDE`). For the operators
/// the engine runs, a program that checks and lowers without errors.
fn example(op: Op) -> String {
    let simple = |ops: &str| format!("stream S = Reading\n    {ops}\n    .emit(zone: zone)\n");
    let seq = |ops: &str| format!("stream S = {SEQ}\n    {ops}\n    .emit(zone: a.zone)\n");
    let windowed = |ops: &str| format!("stream S = Reading\n    .window(5m)\n    {ops}\n");
    match op {
        Op::Where => simple(".where(temp > 1.0)"),
        Op::Filter => simple(".filter(temp > 1.0)"),
        Op::Select => "stream S = Reading\n    .select(zone, t: temp)\n    .emit()\n".to_string(),
        Op::Window | Op::Aggregate => windowed(".aggregate(n: count())\n    .emit(n: n)"),
        Op::Having => windowed(".aggregate(n: count())\n    .having(n > 1)\n    .emit(n: n)"),
        Op::PartitionBy => "stream S = Reading\n    .partition_by(zone, max_keys: 10)\n    .window(5m)\n    .aggregate(n: count())\n    .emit(n: n)\n".to_string(),
        Op::Concurrent => "stream S = Reading\n    .partition_by(zone, max_keys: 10)\n    .concurrent(workers: 2)\n    .window(5m)\n    .aggregate(n: count())\n    .emit(n: n)\n".to_string(),
        Op::Emit => "stream S = Reading\n    .emit(zone: zone)\n".to_string(),
        Op::To => "stream S = Reading\n    .to(Out)\n".to_string(),
        Op::Within => seq(""),
        Op::Policy => seq(".policy(skip_till_next_match)"),
        Op::LimitRuns => seq(".limit_runs(100)"),
        Op::Not => seq(".not(Alert where zone == a.zone)"),
        Op::TrendAggregate => "stream S = Reading as a\n    -> all Reading where temp > a.temp as r\n    .within(1m)\n    .trend_aggregate(n: count_trends())\n    .emit(n: n)\n".to_string(),
        Op::Late => "stream S = Hot.late()\n    .emit(zone: zone)\n".to_string(),
        Op::Timeouts => "stream S = Seq.timeouts()\n    .emit()\n".to_string(),
        Op::On => "stream S = join(Reading, Other)\n    .on(Reading.zone == Other.zone)\n    .window(1m)\n    .emit(zone: Reading.zone)\n".to_string(),
        Op::Print => simple(".print(zone)"),
        Op::Log => simple(".log(level: \"info\", message: \"seen\")"),
        Op::Distinct => simple(".distinct(zone)"),
        Op::Limit => simple(".limit(3)"),
        Op::First => simple(".first()"),
        Op::Watermark => simple(".watermark(out_of_order: 5s)"),
        Op::AllowedLateness => simple(".watermark(out_of_order: 5s)\n    .allowed_lateness(10s)"),
        Op::Context => simple(".context(fast)"),
        Op::Tap => simple(".tap()"),
        Op::Process => "stream S = Reading\n    .process(check(zone, temp))\n".to_string(),
        Op::Enrich => simple(".enrich(Lookup, key: zone, fields: [owner])"),
        Op::Forecast => format!(
            "stream S = {SEQ}\n    .forecast(mode: fast)\n    .emit(p: forecast_probability)\n"
        ),
        Op::Score => simple(".score(model: \"m.onnx\", inputs: [temp], outputs: [risk])"),
        Op::Pattern => windowed(".pattern(hot: events => events.len() > 2)\n    .emit()"),
        Op::Map => simple(".map(z: zone)"),
        Op::OnError => simple(".on_error(Out)"),
        Op::Collect => windowed(".collect(as: evs)\n    .emit()"),
        Op::Any | Op::All => windowed(&format!(".{}(temp > 1.0)\n    .emit(zone: zone)", op.name())),
        Op::OrderBy => windowed(".order_by(temp)\n    .emit(zone: zone)"),
        Op::Fork => simple(".fork(zone)"),
    }
}

fn compiler(op: Op) -> (Compiler, String) {
    let text = format!("{PRELUDE}{}", example(op));
    let mut c = Compiler::new();
    c.set_file("t.vpl", text.as_str());
    (c, text)
}

/// Offset of the operator's name in stream `S`.
fn name_offset(op: Op, text: &str) -> u32 {
    let s = text.find("stream S =").expect("stream S");
    let rel = text[s..]
        .find(&format!(".{}(", op.name()))
        .unwrap_or_else(|| panic!("`.{}(` in the example", op.name()));
    (s + rel + 1) as u32
}

#[test]
fn the_table_and_the_enum_agree() {
    assert_eq!(OPERATORS.len(), Op::ALL.len());
    for (i, op) in Op::ALL.iter().enumerate() {
        assert_eq!(OPERATORS[i].op, *op);
        assert_eq!(op.info().name, op.name());
        assert_eq!(Op::from_name(op.name()), Some(*op));
        assert!(!op.info().summary.is_empty(), "{op}: summary");
    }
    assert_eq!(Op::from_name("wehre"), None);
}

#[test]
fn lowering_accepts_exactly_the_supported_operators() {
    let mut problems = Vec::new();
    for op in Op::ALL.iter().copied() {
        let (c, _) = compiler(op);
        let diags = c.check_and_lower("t.vpl");
        let errors: Vec<String> = diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| format!("{} {}", d.code, d.message))
            .collect();
        match op.support() {
            Support::Supported | Support::NoOp => {
                if !errors.is_empty() {
                    problems.push(format!("{op}: expected no errors, got {errors:?}"));
                }
                if c.program("t.vpl").is_err() {
                    problems.push(format!("{op}: no program"));
                }
            }
            Support::NotYet => {
                let unsupported = codes::UNSUPPORTED_OPERATOR;
                if !diags.iter().any(|d| d.code == unsupported) {
                    problems.push(format!("{op}: expected {unsupported}, got {errors:?}"));
                }
            }
        }
        if op.support() == Support::NoOp && !diags.iter().any(|d| d.code == codes::TAP_NO_OP) {
            problems.push(format!("{op}: expected the no-op warning"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_operator_has_hover_and_signature_help() {
    let mut problems = Vec::new();
    for op in Op::ALL.iter().copied() {
        let (c, text) = compiler(op);
        let at = name_offset(op, &text);
        match ide::hover(&c, "t.vpl", at) {
            Some(h) if h.markdown.contains(op.info().summary) => {}
            other => problems.push(format!("{op}: hover {other:?}")),
        }
        let inside = at + op.name().len() as u32 + 1;
        match ide::signature_help(&c, "t.vpl", inside) {
            Some(s) if s.label.starts_with(&format!(".{}(", op.name())) => {}
            other => problems.push(format!("{op}: signature help {other:?}")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn completion_offers_the_operators_the_engine_runs() {
    let text = format!("{PRELUDE}stream S = Reading.");
    let mut c = Compiler::new();
    c.set_file("t.vpl", text.as_str());
    let items = ide::completions(&c, "t.vpl", text.len() as u32).items;
    for op in Op::ALL.iter().copied() {
        let item = items.iter().find(|i| i.label == op.name());
        match op.support() {
            Support::Supported => {
                let item = item.unwrap_or_else(|| panic!("no completion for `.{op}`"));
                assert_eq!(item.detail.as_deref(), Some(op.info().summary), "{op}");
            }
            Support::NotYet | Support::NoOp => assert!(item.is_none(), "`.{op}` offered"),
        }
    }
}

#[test]
fn pattern_lambdas_have_hover_and_typed_parameters() {
    let text = format!(
        "{PRELUDE}stream S = Reading\n    .window(1m)\n    .pattern(hot: events => events.filter(e => e.temp > 1.0).len() > 2)\n"
    );
    let mut c = Compiler::new();
    c.set_file("t.vpl", text.as_str());
    assert!(
        c.check("t.vpl")
            .iter()
            .all(|d| d.severity != Severity::Error),
        "{:?}",
        c.check("t.vpl")
    );
    let at = text.find("filter(").expect("filter") as u32;
    let h = ide::hover(&c, "t.vpl", at).expect("hover on .filter");
    assert!(
        h.markdown.contains("xs.filter(x => condition)"),
        "{}",
        h.markdown
    );
    // The lambda's parameter is typed: `e.temp` is a float field of `Reading`.
    let at = text.find("temp > 1.0").expect("temp") as u32;
    let h = ide::hover(&c, "t.vpl", at).expect("hover on e.temp");
    assert!(h.markdown.contains("float"), "{}", h.markdown);
    // The schema after `.pattern` has the two added fields.
    let schema = c.stream_schema("t.vpl", "S").expect("schema of S");
    assert!(schema.field("pattern").is_some() && schema.field("window_events").is_some());
}

//! Tests of the `.evt` reader: every line form and every error.

use super::*;

fn one(line: &str) -> EvtRecord {
    let mut r = EvtReader::new();
    r.parse_line(line).expect("parses").expect("is an event")
}

fn err(line: &str) -> EvtErrorKind {
    let mut r = EvtReader::new();
    r.parse_line(line).expect_err("is an error").kind
}

fn field<'a>(r: &'a EvtRecord, name: &str) -> &'a Value {
    &r.event
        .fields
        .iter()
        .find(|(k, _)| k == name)
        .expect("field present")
        .1
}

#[test]
fn blank_lines_and_comments_are_skipped() {
    let mut r = EvtReader::new();
    for l in ["", "   ", "# c", "  // c", "#Reading { a: 1 }"] {
        assert_eq!(r.parse_line(l), Ok(None), "{l:?}");
    }
}

#[test]
fn brace_events_parse_every_value_kind() {
    let r = one(
        r#"Reading { s: "a\"b\n", q: 'x\'y', i: -3, f: 1.5, e: 1e3, n: NaN, b: true, c: false, z: null, w: nil, bare: P1 x, arr: [1, "two", [3]], empty: [] };"#,
    );
    assert_eq!(r.event.event_type, "Reading");
    assert_eq!(field(&r, "s"), &Value::str("a\"b\n"));
    assert_eq!(field(&r, "q"), &Value::str("x'y"));
    assert_eq!(field(&r, "i"), &Value::Int(-3));
    assert_eq!(field(&r, "f"), &Value::Float(1.5));
    assert_eq!(field(&r, "e"), &Value::Float(1000.0));
    assert!(matches!(field(&r, "n"), Value::Float(x) if x.is_nan()));
    assert_eq!(field(&r, "b"), &Value::Bool(true));
    assert_eq!(field(&r, "c"), &Value::Bool(false));
    assert_eq!(field(&r, "z"), &Value::Null);
    assert_eq!(field(&r, "w"), &Value::Null);
    assert_eq!(field(&r, "bare"), &Value::str("P1 x"));
    assert_eq!(
        field(&r, "arr"),
        &Value::array(vec![
            Value::Int(1),
            Value::str("two"),
            Value::array(vec![Value::Int(3)])
        ])
    );
    assert_eq!(field(&r, "empty"), &Value::array(vec![]));
    assert_eq!(r.offset, 0);
    assert!(!r.timed);
}

#[test]
fn unknown_escapes_are_kept_verbatim_and_commas_in_quotes_do_not_split() {
    let r = one(r#"T{a: "x\qy, z", b: 2}"#);
    assert_eq!(field(&r, "a"), &Value::str("x\\qy, z"));
    assert_eq!(field(&r, "b"), &Value::Int(2));
}

#[test]
fn positional_events_name_fields_by_index() {
    let r = one(r#"Ping(1, "a", [2])"#);
    assert_eq!(r.event.event_type, "Ping");
    let names: Vec<_> = r.event.fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["field_0", "field_1", "field_2"]);
    assert!(one("Ping()").event.fields.is_empty());
    assert!(one("Ping {}").event.fields.is_empty());
}

#[test]
fn timed_lines_take_units_and_do_not_move_the_batch_clock() {
    let mut r = EvtReader::new();
    let a = r
        .parse_line("@1500ms A {x: 1}")
        .expect("ok")
        .expect("event");
    assert_eq!((a.offset, a.timed), (1_500_000_000, true));
    let b = r.parse_line("@2s A {}").expect("ok").expect("event");
    assert_eq!(b.offset, 2_000_000_000);
    let c = r.parse_line("@3m A {}").expect("ok").expect("event");
    assert_eq!(c.offset, 180_000_000_000);
    let d = r.parse_line("@7 A {}").expect("ok").expect("event");
    assert_eq!(d.offset, 7_000_000, "no unit = ms");
    let e = r.parse_line("A {}").expect("ok").expect("event");
    assert_eq!(
        e.offset, 7_000_000,
        "an untimed event takes the previous event's time, not the batch clock"
    );
    assert_eq!(r.parse_line("BATCH 0"), Ok(None));
    let f = r.parse_line("A {}").expect("ok").expect("event");
    assert_eq!(f.offset, 0, "after a BATCH line, the batch clock");
}

#[test]
fn batch_sets_the_clock_for_untimed_events() {
    let mut r = EvtReader::new();
    assert_eq!(r.parse_line("BATCH 4000"), Ok(None));
    let a = r.parse_line("A {}").expect("ok").expect("event");
    assert_eq!(a.offset, 4_000_000_000);
    assert_eq!(r.parse_line("BATCH"), Ok(None));
    let b = r.parse_line("A {}").expect("ok").expect("event");
    assert_eq!(b.offset, 4_000_000_000, "bare BATCH keeps the clock");
    let t = r.parse_line("@10 A {}").expect("ok").expect("event");
    assert_eq!(t.offset, 10_000_000);
}

#[test]
fn json_lines_use_the_tolerant_reader() {
    let r = one(r#"{"event_type": "Reading", "data": {"pump": "P1", "bar": 3.0}}"#);
    assert_eq!(r.event.event_type, "Reading");
    assert_eq!(field(&r, "bar"), &Value::Float(3.0));
    let t = one(r#"@5s {"type": "T", "timestamp": 1000}"#);
    assert_eq!(t.offset, 5_000_000_000);
    assert_eq!(t.event_time(0), 1_000_000_000, "explicit timestamp wins");
    assert_eq!(one("@5s A {}").event_time(10), 5_000_000_010);
}

#[test]
fn the_example_file_parses() {
    let text = "# two pumps\n@0s Reading { pump: \"P1\", bar: 7.5, tags: [\"a\", \"b\"] }\n@1500ms Reading { pump: \"P2\", bar: 9.9, ok: false }\nBATCH 4000\nAlarm { pump: P1, level: 2 }\n{\"event_type\": \"Reading\", \"data\": {\"pump\": \"P1\", \"bar\": 3.0}}\n";
    let (recs, errs) = parse_evt(text);
    assert!(errs.is_empty(), "{errs:?}");
    let lines: Vec<_> = recs
        .iter()
        .map(|r| (r.line, r.offset / 1_000_000))
        .collect();
    assert_eq!(lines, [(2, 0), (3, 1500), (5, 4000), (6, 4000)]);
}

#[test]
fn every_error_is_reported_with_its_line() {
    assert_eq!(err("BATCH x"), EvtErrorKind::BadBatch);
    assert_eq!(err("BATCHED A {}"), EvtErrorKind::BadBatch);
    assert_eq!(err("@1.5s A {}"), EvtErrorKind::BadOffset("@1.5s".into()));
    assert_eq!(err("@2h A {}"), EvtErrorKind::BadOffset("@2h".into()));
    assert_eq!(err("@x A {}"), EvtErrorKind::BadOffset("@x".into()));
    assert_eq!(err("@5s"), EvtErrorKind::MissingEvent);
    assert_eq!(err("Reading"), EvtErrorKind::NotAnEvent);
    assert_eq!(
        err("Bad Name {}"),
        EvtErrorKind::BadTypeName("Bad Name".into())
    );
    assert_eq!(err("{}"), EvtErrorKind::Json(JsonEventError::MissingType));
    assert_eq!(err("A { a: 1"), EvtErrorKind::Unclosed('}'));
    assert_eq!(err("A ( 1"), EvtErrorKind::Unclosed(')'));
    assert_eq!(err("A { a: 1 } x"), EvtErrorKind::TrailingText("x".into()));
    assert_eq!(err("A { a }"), EvtErrorKind::BadField("a".into()));
    assert_eq!(err("A { : 1 }"), EvtErrorKind::BadField(": 1".into()));
    assert_eq!(err("A { a: }"), EvtErrorKind::MissingValue("a".into()));
    assert_eq!(err("A { a: \"x }"), EvtErrorKind::Unclosed('}'));
    assert_eq!(
        err("A { a: \"x\" y }"),
        EvtErrorKind::BadString("\"x\" y".into())
    );
    assert_eq!(err("A { a: [1, 2 }"), EvtErrorKind::Unclosed('}'));
    assert_eq!(
        err("A { a: [1] 2 }"),
        EvtErrorKind::BadArray("[1] 2".into())
    );
    assert!(matches!(
        err("{\"type\": "),
        EvtErrorKind::Json(JsonEventError::Syntax(_))
    ));
    let (recs, errs) = parse_evt("A {}\nA { a\nA {}");
    assert_eq!(recs.len(), 2);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].line, 2);
    assert!(errs[0].to_string().starts_with("line 2: "));
}

#[test]
fn deeply_nested_arrays_are_an_error_not_a_stack_overflow() {
    let deep = format!("A {{ x: {}1{} }}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(err(&deep), EvtErrorKind::TooDeep("x".into()));
    let fine = format!(
        "A {{ x: {}1{} }}",
        "[".repeat(MAX_NESTING),
        "]".repeat(MAX_NESTING)
    );
    let mut v = field(&one(&fine), "x").clone();
    for _ in 0..MAX_NESTING {
        v = match v {
            Value::Array(items) => items[0].clone(),
            other => panic!("expected an array, found {other:?}"),
        };
    }
    assert_eq!(v, Value::Int(1));
}

#[test]
fn an_event_without_a_time_takes_the_previous_events_time_unless_a_batch_came_between() {
    let text = "@1s A {}\n@4s A {}\nB {}\n{\"type\": \"C\"}\n{\"type\": \"D\", \"timestamp\": 9000}\nE {}\nBATCH 2000\nF {}\nG {}\n";
    let (recs, errs) = parse_evt(text);
    assert!(errs.is_empty(), "{errs:?}");
    let times: Vec<(String, i64)> = recs
        .iter()
        .map(|r| (r.event.event_type.to_string(), r.event_time(0) / 1_000_000))
        .collect();
    let expected = [
        ("A", 1000),
        ("A", 4000),
        ("B", 4000),
        ("C", 4000),
        ("D", 9000),
        ("E", 9000),
        ("F", 2000),
        ("G", 2000),
    ];
    let expected: Vec<(String, i64)> = expected
        .iter()
        .map(|(t, ms)| (t.to_string(), *ms))
        .collect();
    assert_eq!(times, expected);
}

#[test]
fn a_line_parsed_again_from_its_event_text_gives_the_same_event() {
    // What `run --workers` does: the reader gives each line its time, a decoding thread
    // parses the event text again.
    let text = "BATCH 100\n  Login { user: \"a\" }\n@2s Trade(1, 2.5, \"x\");\n\
                {\"event_type\": \"T\", \"timestamp\": 7}\nBare { n: [1, {k: 2}] }\n\
                @5ms   {\"event_type\": \"U\", \"v\": \"p, q\"}  \nAfter { }\n";
    let mut reader = EvtReader::new();
    let mut seen = 0;
    for raw in text.lines() {
        let Some(rec) = reader.parse_line(raw).expect("good line") else {
            continue;
        };
        let mut again = parse_event_text(event_text(raw)).expect("parses again");
        again.timestamp = rec.event.timestamp;
        assert_eq!(again, rec.event, "{raw}");
        seen += 1;
    }
    assert_eq!(seen, 6);
}

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
fn classify_reads_each_line_kind_without_state() {
    assert_eq!(classify("  "), Ok(EvtLine::Skip));
    assert_eq!(classify("// note"), Ok(EvtLine::Skip));
    assert_eq!(
        classify("BATCH"),
        Ok(EvtLine::Skip),
        "a bare BATCH changes nothing"
    );
    assert_eq!(classify(" BATCH 25 "), Ok(EvtLine::Batch(25_000_000)));
    assert_eq!(classify("BATCH 1x"), Err(EvtErrorKind::BadBatch));
    assert_eq!(
        classify("@2s   A { x: 1 }  "),
        Ok(EvtLine::Event {
            at: Some(2_000_000_000),
            text: "A { x: 1 }"
        })
    );
    assert_eq!(
        classify("A { x: "),
        Ok(EvtLine::Event {
            at: None,
            text: "A { x:"
        }),
        "the event text is parsed later, on its own"
    );
    assert_eq!(
        classify("@4q A {}"),
        Err(EvtErrorKind::BadOffset("@4q".into()))
    );
    assert_eq!(classify("@4s "), Err(EvtErrorKind::MissingEvent));
}

#[test]
fn the_clock_stamps_untimed_events_from_the_batch_or_the_previous_event() {
    let mut clock = EvtClock::default();
    let stamp = |offset, timestamp| EvtStamp { offset, timestamp };
    assert_eq!(
        clock.stamp(None, None),
        stamp(0, None),
        "first: the batch clock"
    );
    assert_eq!(clock.stamp(Some(7), None), stamp(7, None));
    assert_eq!(
        clock.stamp(None, None),
        stamp(7, None),
        "the previous event's offset"
    );
    assert_eq!(clock.stamp(None, Some(90)), stamp(0, Some(90)));
    assert_eq!(
        clock.stamp(None, None),
        stamp(0, Some(90)),
        "the previous event's timestamp (the offset is the batch clock's)"
    );
    clock.batch(50);
    assert_eq!(clock.stamp(None, None), stamp(50, None), "after a BATCH");
    assert_eq!(clock.stamp(Some(3), None), stamp(3, None));
    clock.batch(60);
    assert_eq!(
        clock.stamp(Some(4), None),
        stamp(4, None),
        "@ wins over BATCH"
    );
    assert_eq!(
        clock.stamp(None, None),
        stamp(4, None),
        "@ does not move the clock"
    );
}

#[test]
fn an_unreadable_line_is_counted_and_changes_no_time() {
    let mut r = EvtReader::new();
    r.parse_line("@3s A {}").expect("ok");
    r.skip_line();
    let rec = r.parse_line("B {}").expect("ok").expect("event");
    assert_eq!((rec.line, rec.offset), (3, 3_000_000_000));
}

/// The reader as it was before it was split into [`classify`] and
/// [`EvtClock`]: one state machine over whole lines. The property test below
/// holds the split to it.
#[derive(Default)]
struct OneStepReader {
    batch: i64,
    line: usize,
    seen_event_since_batch: bool,
    previous: Option<(bool, i64)>,
}

impl OneStepReader {
    fn parse_line(&mut self, raw: &str) -> Result<Option<EvtRecord>, EvtError> {
        self.line += 1;
        let line = self.line;
        self.parse(raw).map_err(|kind| EvtError { line, kind })
    }

    fn parse(&mut self, raw: &str) -> Result<Option<EvtRecord>, EvtErrorKind> {
        let text = raw.trim();
        if text.is_empty() || text.starts_with('#') || text.starts_with("//") {
            return Ok(None);
        }
        if let Some(rest) = text.strip_prefix("BATCH") {
            let rest = rest.trim();
            if rest.is_empty() {
                return Ok(None);
            }
            if !rest.bytes().all(|b| b.is_ascii_digit()) {
                return Err(EvtErrorKind::BadBatch);
            }
            let ms: i64 = rest.parse().map_err(|_| EvtErrorKind::BadBatch)?;
            self.batch = ms.checked_mul(NS_PER_MS).ok_or(EvtErrorKind::BadBatch)?;
            self.seen_event_since_batch = false;
            return Ok(None);
        }
        let (spec, body) = split_time(text);
        let at = match spec {
            Some(spec) => {
                let at = parse_offset(spec)
                    .ok_or_else(|| EvtErrorKind::BadOffset(format!("@{spec}")))?;
                if body.is_empty() {
                    return Err(EvtErrorKind::MissingEvent);
                }
                Some(at)
            }
            None => None,
        };
        let mut event = parse_event(body)?;
        let mut offset = at.unwrap_or(self.batch);
        if at.is_none() && event.timestamp.is_none() && self.seen_event_since_batch {
            match self.previous {
                Some((true, t)) => event.timestamp = Some(t),
                Some((false, o)) => offset = o,
                None => {}
            }
        }
        self.seen_event_since_batch = true;
        self.previous = Some(match event.timestamp {
            Some(t) => (true, t),
            None => (false, offset),
        });
        Ok(Some(EvtRecord {
            line: self.line,
            offset,
            timed: at.is_some(),
            event,
        }))
    }
}

/// One generated line: every kind, good and bad, with blanks around.
fn any_line() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let kind = prop_oneof![
        Just(String::new()),
        Just("# note".to_string()),
        Just("BATCH".to_string()),
        (0u32..5000).prop_map(|ms| format!("BATCH {ms}")),
        Just("BATCH 9x".to_string()),
        (0u32..5000).prop_map(|ms| format!("@{ms}ms A {{ v: {ms} }}")),
        (0u32..50).prop_map(|s| format!("@{s}s B(1, \"x\")")),
        (0u32..50).prop_map(|n| format!("A {{ v: {n} }}")),
        Just("{\"type\": \"J\"}".to_string()),
        (0u32..9000).prop_map(|t| format!("{{\"type\": \"J\", \"timestamp\": {t}}}")),
        (0u32..90).prop_map(|s| format!("@{s}s {{\"type\": \"J\", \"timestamp\": 5}}")),
        Just("A { v: ".to_string()),
        Just("@x A {}".to_string()),
        Just("@3s".to_string()),
        Just("Bad Name {}".to_string()),
    ];
    (kind, "[ \t]{0,2}", "[ \t]{0,2}").prop_map(|(k, a, b)| format!("{a}{k}{b}"))
}

proptest::proptest! {
    #[test]
    fn classify_then_stamp_in_order_reads_what_the_one_step_reader_read(
        lines in proptest::collection::vec(any_line(), 0..60)
    ) {
        let mut old = OneStepReader::default();
        let mut want = Vec::new();
        for l in &lines {
            want.push(old.parse_line(l));
        }
        // As `run --workers` does: every line classified and parsed on its
        // own (here all of them first), then stamped in line order.
        enum Parsed {
            Skip,
            Batch(i64),
            Event(Option<i64>, RawEvent),
        }
        let parsed: Vec<Result<Parsed, EvtErrorKind>> = lines
            .iter()
            .map(|l| match classify(l)? {
                EvtLine::Skip => Ok(Parsed::Skip),
                EvtLine::Batch(ns) => Ok(Parsed::Batch(ns)),
                EvtLine::Event { at, text } => Ok(Parsed::Event(at, parse_event_text(text)?)),
            })
            .collect();
        let mut clock = EvtClock::default();
        let mut got = Vec::new();
        for (i, p) in parsed.into_iter().enumerate() {
            let line = i + 1;
            got.push(match p {
                Err(kind) => Err(EvtError { line, kind }),
                Ok(Parsed::Skip) => Ok(None),
                Ok(Parsed::Batch(ns)) => {
                    clock.batch(ns);
                    Ok(None)
                }
                Ok(Parsed::Event(at, mut event)) => {
                    let stamp = clock.stamp(at, event.timestamp);
                    event.timestamp = stamp.timestamp;
                    let offset = stamp.offset;
                    Ok(Some(EvtRecord { line, offset, timed: at.is_some(), event }))
                }
            });
        }
        proptest::prop_assert_eq!(&got, &want);
        let mut reader = EvtReader::new();
        let serial: Vec<_> = lines.iter().map(|l| reader.parse_line(l)).collect();
        proptest::prop_assert_eq!(&serial, &want);
    }
}

#[test]
fn decoding_event_texts_straight_into_slots_matches_parsing_then_decoding() {
    let decoder = EventDecoder::new(&crate::json::tests::typed_program());
    let texts = [
        r#"Reading { sensor: "s1", value: 91.5 }"#,
        r#"Reading { sensor: s1 x, value: 3, at: "1970-01-01T00:00:01Z", maybe: 2 };"#,
        r#"Reading { sensor: 5, value: "high", at: 12, junk: [1, "a", [2]] }"#,
        r#"Reading { sensor: "a\"b", value: 'q', maybe: null }"#,
        r#"Reading { sensor: "s1", sensor: "s2", value: 1e3 }"#,
        r#"Open { a: 1, b: "two", c: [true, nil] }"#,
        r#"Stamped { x: "y" }"#,
        r#"Stamped(1)"#,
        r#"Loose(1, "two", [3])"#,
        r#"Loose { a: "x", b: "kept" }"#,
        r#"T(1, 2, "k")"#,
        r#"{"event_type": "Stamped", "timestamp": 3, "x": 1}"#,
        r#"Nope { a: 1 }"#,
        r#"S { x: 1 }"#,
        "Reading {}",
        "Reading()",
        "Reading",
        "Bad Name {}",
        "Reading { a: 1",
        "Reading { a: 1 } x",
        "Reading { a }",
        "Reading(1, )",
        r#"Reading { a: "x" y }"#,
        r#"Reading { a: "x }"#,
        "Reading { a: [1] 2 }",
        "{",
    ];
    let mut scratch = EvtScratch::default();
    // Twice, so the second pass reads with a warm scratch.
    for text in texts.iter().chain(&texts) {
        let mut direct_warnings = Vec::new();
        let direct = decoder.decode_evt(text, &mut scratch, &mut direct_warnings);
        let mut warnings = Vec::new();
        let read = parse_event_text(text).map(|raw| JsonDecoded {
            timestamp: raw.timestamp,
            event: decoder.decode(&raw, raw.timestamp.unwrap_or(0), &mut warnings),
        });
        assert_eq!(direct, read, "{text}");
        assert_eq!(direct_warnings, warnings, "{text}");
    }
}

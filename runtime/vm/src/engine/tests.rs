//! Engine tests: operators, routing, time, late events, joins, snapshots.

use crate::testing::*;
use crate::{Engine, LoadError, SideOutput};
use proptest::prelude::*;
use std::sync::Arc;
use varpulis_program::{
    AggFunc, Chunk, ConfigValue, ConnectorDef, EmitSpec, Event, InputRef, Instr, JoinInput,
    JoinSpec, LogLevel, LogSpec, MergeBranch, OpSpec, Program, Projection, SourceSpec, SpanId,
    StreamTime, Value, WindowSpec,
};

const S: i64 = 1_000_000_000;

fn reading(t: i64, pump: &str, bar: f64) -> Event {
    event(0, t, vec![Value::str(pump), Value::Float(bar)])
}

/// `stream Hot = Reading.where(bar > 8.0).emit(pump: pump, bar: bar)`.
fn hot() -> Arc<Program> {
    let mut b = ProgramBuilder::new();
    let r = b.event("Reading", &["pump", "bar"]);
    let (emit, out) = b.emit("Hot", vec![("pump", field(0)), ("bar", field(1))]);
    b.stream(
        "Hot",
        input(r),
        vec![
            OpSpec::Filter(compare(1, Instr::Gt, Value::Float(8.0))),
            emit,
        ],
        out,
    );
    b.build()
}

#[test]
fn an_input_event_nothing_keeps_lends_its_allocation_to_the_next() {
    let mut e = Engine::new(hot()).expect("loads");
    let mut out = Vec::new();
    e.push_into(reading(S, "p1", 1.0), &mut out);
    assert!(e.take_spare_slots().is_none(), "nothing to reuse yet");
    e.push_into(reading(2 * S, "p2", 9.0), &mut out);
    let slots = e.take_spare_slots().expect("the dropped event's slots");
    assert!(slots.is_empty() && slots.capacity() >= 2, "{slots:?}");
    e.push_into(reading(3 * S, "p3", 10.0), &mut out);
    let pumps: Vec<_> = out
        .iter()
        .map(|o| (o.time, o.fields.first().map(|(_, v)| v.clone())))
        .collect();
    assert_eq!(
        pumps,
        [
            (2 * S, Some(Value::str("p2"))),
            (3 * S, Some(Value::str("p3")))
        ]
    );
}

#[test]
fn simple_comparison_filters_agree_with_the_interpreter() {
    // `bar > 8.0` runs without the interpreter loop; `8.0 < bar` does not.
    let mut b = ProgramBuilder::new();
    let r = b.event("Reading", &["pump", "bar"]);
    let (emit, out) = b.emit("Fast", vec![("bar", field(1))]);
    b.stream(
        "Fast",
        input(r),
        vec![
            OpSpec::Filter(compare(1, Instr::Gt, Value::Float(8.0))),
            emit,
        ],
        out,
    );
    let (emit, out) = b.emit("Slow", vec![("bar", field(1))]);
    let slow = code(
        vec![Instr::Const(0), Instr::LoadField(1), Instr::Lt],
        vec![Value::Float(8.0)],
    );
    b.stream("Slow", input(r), vec![OpSpec::Filter(slow), emit], out);
    let mut e = Engine::new(b.build()).expect("loads");
    let cases = [
        Some(Value::Float(9.0)),
        Some(Value::Int(9)),
        Some(Value::Float(8.0)),
        Some(Value::Int(3)),
        Some(Value::str("x")),
        None,
    ];
    for (i, v) in cases.into_iter().enumerate() {
        let t = i64::try_from(i).expect("small");
        let outs = e.push(Event::new(0, t, vec![Some(Value::str("a")), v]));
        let fast = outs.iter().filter(|o| &*o.stream == "Fast").count();
        let slow = outs.iter().filter(|o| &*o.stream == "Slow").count();
        assert_eq!(fast, slow, "case {i}");
        assert_eq!(fast, usize::from(i < 2), "case {i}");
    }
    // The string is a type error in both streams, reported by each.
    assert_eq!(e.metrics().runtime_errors, 2);
}

#[test]
fn filter_and_emit_produce_named_outputs() {
    let mut e = Engine::new(hot()).expect("loads");
    assert!(e.push(reading(1, "P1", 7.0)).is_empty());
    let out = e.push(reading(2, "P2", 9.5));
    assert_eq!(render(&out), ["Hot@2{pump=\"P2\",bar=9.5}"]);
    assert_eq!(&*out[0].event_type, "Hot");
    // A missing field makes the condition false, silently.
    assert!(e
        .push(Event::new(0, 3, vec![Some(Value::str("P3"))]))
        .is_empty());
    let m = e.metrics();
    assert_eq!(
        (m.events_in, m.out_per_stream[0], m.runtime_errors),
        (3, 1, 0)
    );
}

#[test]
fn emit_omits_missing_fields_and_empty_emit_passes_everything() {
    let mut b = ProgramBuilder::new();
    let r = b.event("Reading", &["pump", "bar"]);
    let (emit, out) = b.emit("E", vec![("p", field(0)), ("none", field(5))]);
    b.stream("E", input(r), vec![emit], out);
    let all = b.layout("All", &["pump", "bar"]);
    b.stream(
        "All",
        input(r),
        vec![OpSpec::Emit(EmitSpec {
            items: None,
            schema: all,
        })],
        all,
    );
    let mut e = Engine::new(b.build()).expect("loads");
    let mut ev = reading(1, "P", 1.0);
    ev.extra = Some(Box::new(vec![("site".into(), Value::str("x"))]));
    assert_eq!(
        render(&e.push(ev)),
        ["E@1{p=\"P\"}", "All@1{pump=\"P\",bar=1.0,site=\"x\"}"]
    );
}

#[test]
fn select_reshapes_and_derived_streams_chain() {
    let mut b = ProgramBuilder::new();
    let r = b.event("Reading", &["pump", "bar"]);
    let sel = b.layout("Doubled", &["double"]);
    let doubled = b.stream(
        "Doubled",
        input(r),
        vec![OpSpec::Select(Projection {
            items: vec![code(
                vec![Instr::LoadField(1), Instr::Const(0), Instr::Mul],
                vec![Value::Int(2)],
            )],
            schema: sel,
        })],
        sel,
    );
    let (emit, out) = b.emit("Big", vec![("d", field(0))]);
    b.stream(
        "Big",
        from_stream(doubled),
        vec![OpSpec::Filter(compare(0, Instr::Gt, Value::Int(10))), emit],
        out,
    );
    let mut e = Engine::new(b.build()).expect("loads");
    assert!(e.push(reading(1, "a", 4.0)).is_empty());
    assert_eq!(render(&e.push(reading(2, "a", 6.0))), ["Big@2{d=12.0}"]);
    assert_eq!(
        e.metrics().out_per_stream,
        vec![2, 1],
        "invisible streams still count"
    );
}

#[test]
fn stream_cycles_are_rejected_at_load() {
    let mut b = ProgramBuilder::new();
    let l = b.layout("A", &["x"]);
    b.stream("A", from_stream(1), vec![], l);
    b.stream("B", from_stream(0), vec![], l);
    assert_eq!(
        Engine::new(b.build()).err(),
        Some(LoadError::Cycle(vec!["A".into(), "B".into(), "A".into()]))
    );
}

#[test]
fn invalid_programs_and_sequences_are_rejected() {
    let mut b = ProgramBuilder::new();
    b.stream("A", input(7), vec![], 0);
    assert!(matches!(Engine::new(b.build()), Err(LoadError::Invalid(_))));
    let p = Program {
        version: 99,
        ..Program::default()
    };
    assert!(matches!(
        Engine::new(Arc::new(p)),
        Err(LoadError::Version { .. })
    ));
}

#[test]
fn merge_filters_branches_and_remaps_fields() {
    let mut b = ProgramBuilder::new();
    let x = b.event("X", &["a", "k"]);
    let y = b.event("Y", &["k"]);
    let m = b.layout("M", &["k", "a"]);
    let (emit, out) = b.emit("M", vec![("k", field(0)), ("a", field(1))]);
    b.stream(
        "M",
        SourceSpec::Merge {
            branches: vec![
                MergeBranch {
                    input: InputRef::Event(x),
                    filter: Some(compare(0, Instr::Gt, Value::Int(0))),
                    remap: vec![Some(1), Some(0)],
                },
                MergeBranch {
                    input: InputRef::Event(y),
                    filter: None,
                    remap: vec![Some(0), None],
                },
            ],
            schema: m,
        },
        vec![emit],
        out,
    );
    let mut e = Engine::new(b.build()).expect("loads");
    assert!(e
        .push(event(x, 1, vec![Value::Int(0), Value::str("k1")]))
        .is_empty());
    assert_eq!(
        render(&e.push(event(x, 2, vec![Value::Int(5), Value::str("k2")]))),
        ["M@2{k=\"k2\",a=5}"]
    );
    assert_eq!(
        render(&e.push(event(y, 3, vec![Value::str("k3")]))),
        ["M@3{k=\"k3\"}"]
    );
}

fn join_engine() -> (Engine, u32, u32) {
    let mut b = ProgramBuilder::new();
    let o = b.event("Order", &["id", "amount"]);
    let p = b.event("Payment", &["order", "paid"]);
    let j = b.layout(
        "J",
        &[
            "Order.id",
            "Order.amount",
            "Payment.order",
            "Payment.paid",
            "id",
            "amount",
            "order",
            "paid",
        ],
    );
    let (emit, out) = b.emit("J", vec![("id", field(4)), ("paid", field(7))]);
    b.stream(
        "J",
        SourceSpec::Join(JoinSpec {
            inputs: vec![
                JoinInput {
                    input: InputRef::Event(o),
                    filter: None,
                    keys: vec![field(0)],
                    project: vec![(0, 0), (1, 1), (4, 0), (5, 1)],
                },
                JoinInput {
                    input: InputRef::Event(p),
                    filter: None,
                    keys: vec![field(0)],
                    project: vec![(2, 0), (3, 1), (6, 0), (7, 1)],
                },
            ],
            horizon: 60 * S,
            schema: j,
            residual: None,
        }),
        vec![emit],
        out,
    );
    (Engine::new(b.build()).expect("loads"), o, p)
}

#[test]
fn join_matches_latest_events_with_equal_keys_within_the_horizon() {
    let (mut e, o, p) = join_engine();
    assert!(e
        .push(event(o, 0, vec![Value::Int(1), Value::Float(10.0)]))
        .is_empty());
    assert!(
        e.push(event(p, S, vec![Value::Int(2), Value::Bool(true)]))
            .is_empty(),
        "other key"
    );
    assert_eq!(
        render(&e.push(event(p, 2 * S, vec![Value::Int(1), Value::Bool(true)]))),
        ["J@2000000000{id=1,paid=true}"]
    );
    // Beyond the horizon the order no longer joins.
    assert!(e
        .push(event(p, 100 * S, vec![Value::Int(1), Value::Bool(false)]))
        .is_empty());
}

/// `join_engine` with `max_events: max` on the join.
fn bounded_join(max: u64) -> (Engine, u32, u32) {
    let (e, o, p) = join_engine();
    let mut prog = (*e.program().clone()).clone();
    prog.streams[0].bounds = vec![varpulis_program::StateBound {
        op: varpulis_program::StateBound::SOURCE,
        max_events: Some(max),
        ..Default::default()
    }];
    (Engine::new(Arc::new(prog)).expect("loads"), o, p)
}

#[test]
fn join_max_events_evicts_the_first_arrived_key_of_a_side() {
    let run = |cut: Option<usize>| {
        let (mut e, o, p) = bounded_join(2);
        let order = |id: i64, t: i64| event(o, t * S, vec![Value::Int(id), Value::Float(1.0)]);
        let pay = |id: i64, t: i64| event(p, t * S, vec![Value::Int(id), Value::Bool(true)]);
        // Orders 1, 2, then 1 again (now the newest), then 3: order 2 goes.
        let input = [
            order(1, 0),
            order(2, 1),
            order(1, 2),
            order(3, 3),
            pay(2, 4),
            pay(1, 5),
            pay(3, 6),
        ];
        let mut out = Vec::new();
        for (i, ev) in input.into_iter().enumerate() {
            if cut == Some(i) {
                let bytes = e.snapshot().expect("snapshot");
                e = bounded_join(2).0;
                e.restore(&bytes).expect("restore");
            }
            out.extend(render(&e.push(ev)));
        }
        let m = e.memory();
        let join = m[0].ops[0].clone();
        (out, join.kind, join.keys, join.evictions.fifo)
    };
    let straight = run(None);
    assert_eq!(
        straight,
        (
            vec![
                "J@5000000000{id=1,paid=true}".to_string(),
                "J@6000000000{id=3,paid=true}".to_string()
            ],
            "join",
            4,
            2
        ),
        "order 2 evicted; payments 2 then 1 evicted as 3 arrives"
    );
    for cut in 1..7 {
        assert_eq!(run(Some(cut)), straight, "restored before event {cut}");
    }
}

#[test]
fn partition_key_and_partition_string_are_copied_into_aggregates() {
    let mut b = ProgramBuilder::new();
    let r = b.event("Reading", &["pump", "bar"]);
    let (agg, schema) = b.aggregate(
        "Stats",
        &[
            ("n", AggFunc::Count, None, None),
            ("avg", AggFunc::Avg, Some(1), None),
            ("min", AggFunc::Min, Some(1), None),
            ("max", AggFunc::Max, Some(1), None),
            ("sd", AggFunc::Stddev, Some(1), None),
            ("var", AggFunc::Variance, Some(1), None),
            ("first", AggFunc::First, Some(1), None),
            ("last", AggFunc::Last, Some(1), None),
            ("cd", AggFunc::CountDistinct, Some(1), None),
            ("ema", AggFunc::Ema, Some(1), Some(3.0)),
            ("p90", AggFunc::Percentile, Some(1), Some(90.0)),
            ("med", AggFunc::Median, Some(1), None),
            ("all", AggFunc::Collect, Some(1), None),
        ],
        Some("pump"),
    );
    b.stream(
        "Stats",
        input(r),
        vec![
            OpSpec::PartitionBy(field(0)),
            OpSpec::Window(WindowSpec::Count { size: 4 }),
            agg,
            OpSpec::Having(compare(0, Instr::Eq, Value::Int(4))),
            OpSpec::Emit(EmitSpec {
                items: None,
                schema,
            }),
        ],
        schema,
    );
    let mut e = Engine::new(b.build()).expect("loads");
    let mut out = Vec::new();
    for (i, bar) in [1.0, 2.0, 2.0, 5.0].iter().enumerate() {
        out.extend(e.push(reading(i as i64, "P1", *bar)));
    }
    assert_eq!(
        render(&out),
        [
            "Stats@3{n=4,avg=2.5,min=1.0,max=5.0,sd=1.7320508075688772,var=2.9999999999999996,first=1.0,last=5.0,cd=3,ema=3.375,p90=4.1000000000000005,med=2.0,all=[1.0, 2.0, 2.0, 5.0],pump=\"P1\",_partition=\"P1\"}"
        ]
    );
}

#[test]
fn aggregate_without_window_aggregates_each_event_alone() {
    let mut b = ProgramBuilder::new();
    let r = b.event("Reading", &["pump", "bar"]);
    let (agg, schema) = b.aggregate(
        "A",
        &[
            ("s", AggFunc::Sum, Some(1), None),
            ("sd", AggFunc::Stddev, Some(1), None),
        ],
        None,
    );
    b.stream(
        "A",
        input(r),
        vec![
            agg,
            OpSpec::Emit(EmitSpec {
                items: None,
                schema,
            }),
        ],
        schema,
    );
    let mut e = Engine::new(b.build()).expect("loads");
    assert_eq!(
        render(&e.push(reading(1, "a", 2.0))),
        ["A@1{s=2.0,sd=null}"]
    );
}

#[test]
fn distinct_limit_print_log_and_sink() {
    let mut b = ProgramBuilder::new();
    let r = b.event("Reading", &["pump", "bar"]);
    b.program.connectors.push(ConnectorDef {
        name: "Out".into(),
        kind: "file".into(),
        params: vec![("topic".into(), ConfigValue::Str("t".into()))],
        span: SpanId::NONE,
    });
    let (emit, out) = b.emit("D", vec![("pump", field(0))]);
    b.stream(
        "D",
        input(r),
        vec![
            OpSpec::Distinct {
                key: Some(field(0)),
                capacity: 2,
            },
            OpSpec::Limit(2),
            OpSpec::Print(vec![field(0), konst(Value::Int(1))]),
            OpSpec::Print(vec![]),
            OpSpec::Log(LogSpec {
                level: LogLevel::parse("warning"),
                message: "seen".into(),
                data: Some(field(1)),
            }),
            OpSpec::Sink {
                connector: 0,
                params: vec![],
            },
            emit,
        ],
        out,
    );
    let mut e = Engine::new(b.build()).expect("loads");
    let mut outs = Vec::new();
    for (t, p) in ["a", "a", "b", "c"].iter().enumerate() {
        outs.extend(e.push(reading(t as i64, p, 1.0)));
    }
    assert_eq!(render(&outs), ["D@0{pump=\"a\"}", "D@2{pump=\"b\"}"]);
    let side = e.take_side_outputs();
    let lines: Vec<String> = side
        .iter()
        .filter_map(|s| match s {
            SideOutput::Print { line, .. } | SideOutput::Log { line, .. } => Some(line.clone()),
            SideOutput::Sink { .. } => None,
        })
        .collect();
    assert_eq!(
        lines[..3],
        [
            "[PRINT] a 1",
            "[PRINT] [D] Reading: {pump: \"a\", bar: 1.0}",
            "[WARN] [D] seen data=1.0"
        ]
    );
    let sinks: Vec<_> = side
        .iter()
        .filter_map(|s| match s {
            SideOutput::Sink { topic, output, .. } => {
                Some((topic.clone(), output.event_type.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        sinks,
        vec![
            (Some("t".into()), "D".into()),
            (Some("t".into()), "D".into())
        ]
    );
}

#[test]
fn runtime_errors_are_counted_with_spans_and_never_stop_the_engine() {
    let mut b = ProgramBuilder::new();
    let r = b.event("Reading", &["pump", "bar"]);
    b.program.span_table.files.push("rules.vpl".into());
    let span = b.program.span_table.push(varpulis_program::SpanInfo {
        file: 0,
        start: 0,
        end: 1,
        line: 3,
        column: 9,
    });
    let mut div = code(
        vec![Instr::LoadField(1), Instr::Const(0), Instr::Div],
        vec![Value::Int(0)],
    );
    div.span = span;
    let (emit, out) = b.emit("E", vec![("q", div)]);
    b.stream("E", input(r), vec![emit], out);
    let p = b.build();
    let mut e = Engine::new(p.clone()).expect("loads");
    assert_eq!(render(&e.push(reading(1, "a", 1.0))), ["E@1{}"]);
    assert_eq!(e.metrics().runtime_errors, 1);
    let errs = e.take_errors();
    assert_eq!(
        errs[0].render(&p.span_table),
        "R0001 division by zero (rules.vpl:3:9, stream E): float Div int"
    );
}

#[test]
fn late_events_are_counted_dropped_beyond_lateness_and_routed_to_a_late_stream() {
    let mut b = ProgramBuilder::new();
    let r = b.event("Reading", &["pump", "bar"]);
    let (emit, out) = b.emit("Main", vec![("bar", field(1))]);
    let main = b.stream("Main", input(r), vec![emit], out);
    b.program.streams[main as usize].time = StreamTime {
        out_of_order: Some(2 * S),
        allowed_lateness: Some(S),
    };
    let (emit2, out2) = b.emit("Late", vec![("bar", field(1))]);
    b.stream("Late", SourceSpec::Late(main), vec![emit2], out2);
    let mut e = Engine::new(b.build()).expect("loads");
    e.push(reading(10 * S, "a", 1.0)); // watermark 8 s
    assert_eq!(
        render(&e.push(reading(9 * S, "a", 2.0))),
        ["Main@9000000000{bar=2.0}"],
        "not late"
    );
    assert_eq!(
        render(&e.push(reading(7 * S, "a", 3.0))),
        ["Main@7000000000{bar=3.0}"],
        "late, within lateness"
    );
    assert_eq!(
        render(&e.push(reading(6 * S, "a", 4.0))),
        ["Late@6000000000{bar=4.0}"],
        "beyond lateness"
    );
    let m = e.metrics();
    assert_eq!((m.late, m.dropped), (2, 1));
}

#[test]
fn late_events_are_dropped_by_default_and_equal_times_are_not_late() {
    let mut b = ProgramBuilder::new();
    let r = b.event("Reading", &["pump", "bar"]);
    let (emit, out) = b.emit("Main", vec![("bar", field(1))]);
    let main = b.stream("Main", input(r), vec![emit], out);
    let (emit2, out2) = b.emit("Late", vec![("bar", field(1))]);
    b.stream("Late", SourceSpec::Late(main), vec![emit2], out2);
    let mut e = Engine::new(b.build()).expect("loads");
    e.push(reading(10 * S, "a", 1.0)); // watermark 10 s (in-order input)
    assert_eq!(
        render(&e.push(reading(5 * S, "a", 2.0))),
        ["Late@5000000000{bar=2.0}"],
        "older than the watermark, no allowed lateness: routed, not processed"
    );
    assert_eq!(
        render(&e.push(reading(10 * S, "a", 3.0))),
        ["Main@10000000000{bar=3.0}"],
        "same time as the watermark: not late"
    );
    let m = e.metrics();
    assert_eq!((m.late, m.dropped), (1, 1));
}

#[test]
fn timer_source_ticks_in_event_time_up_to_the_last_event() {
    let mut b = ProgramBuilder::new();
    let r = b.event("Reading", &["pump", "bar"]);
    b.passthrough_stream("R", input(r), vec![], r);
    let tick = b.layout("Timer_T", &[]);
    let (emit, out) = b.emit("T", vec![("at", code(vec![Instr::LoadTime], vec![]))]);
    b.stream(
        "T",
        SourceSpec::Timer {
            period: 10 * S,
            initial_delay: 0,
            schema: tick,
        },
        vec![emit],
        out,
    );
    let mut e = Engine::new(b.build()).expect("loads");
    let mut outs = e.push(reading(5 * S, "a", 1.0));
    outs.extend(e.push(reading(26 * S, "a", 1.0)));
    outs.extend(e.finish());
    let times: Vec<i64> = outs.iter().map(|o| o.time / S).collect();
    assert_eq!(times, [5, 15, 25]);
}

#[test]
fn globals_are_initialised_in_order_and_visible_to_streams() {
    let mut b = ProgramBuilder::new();
    let r = b.event("Reading", &["pump", "bar"]);
    b.program.globals.push(varpulis_program::Global {
        name: "a".into(),
        mutable: false,
        init: konst(Value::Float(2.0)),
    });
    b.program.globals.push(varpulis_program::Global {
        name: "limit".into(),
        mutable: false,
        init: code(
            vec![Instr::LoadGlobal(0), Instr::Const(0), Instr::Mul],
            vec![Value::Int(3)],
        ),
    });
    let (emit, out) = b.emit("G", vec![("bar", field(1))]);
    let cond = code(
        vec![Instr::LoadField(1), Instr::LoadGlobal(1), Instr::Gt],
        vec![],
    );
    b.stream("G", input(r), vec![OpSpec::Filter(cond), emit], out);
    let mut e = Engine::new(b.build()).expect("loads");
    assert!(e.push(reading(1, "a", 6.0)).is_empty());
    assert_eq!(render(&e.push(reading(2, "a", 6.5))), ["G@2{bar=6.5}"]);
}

/// A program touching every stateful operator.
fn stateful() -> Arc<Program> {
    let mut b = ProgramBuilder::new();
    let r = b.event("Reading", &["pump", "bar"]);
    let (agg, schema) = b.aggregate(
        "Tumble",
        &[
            ("n", AggFunc::Count, None, None),
            ("s", AggFunc::Sum, Some(1), None),
        ],
        Some("pump"),
    );
    b.stream(
        "Tumble",
        input(r),
        vec![
            OpSpec::PartitionBy(field(0)),
            OpSpec::Window(WindowSpec::Tumbling { size: 10 * S }),
            agg,
            OpSpec::Emit(EmitSpec {
                items: None,
                schema,
            }),
        ],
        schema,
    );
    let (agg, schema) = b.aggregate("Slide", &[("m", AggFunc::Max, Some(1), None)], Some("pump"));
    b.stream(
        "Slide",
        input(r),
        vec![
            OpSpec::PartitionBy(field(0)),
            OpSpec::Window(WindowSpec::Sliding {
                size: 20 * S,
                slide: 5 * S,
            }),
            agg,
            OpSpec::Emit(EmitSpec {
                items: None,
                schema,
            }),
        ],
        schema,
    );
    let (agg, schema) = b.aggregate(
        "Sess",
        &[("cd", AggFunc::CountDistinct, Some(1), None)],
        None,
    );
    b.stream(
        "Sess",
        input(r),
        vec![
            OpSpec::Window(WindowSpec::Session { gap: 7 * S }),
            agg,
            OpSpec::Emit(EmitSpec {
                items: None,
                schema,
            }),
        ],
        schema,
    );
    let (agg, schema) = b.aggregate(
        "Cnt",
        &[("med", AggFunc::Median, Some(1), None)],
        Some("pump"),
    );
    b.stream(
        "Cnt",
        input(r),
        vec![
            OpSpec::PartitionBy(field(0)),
            OpSpec::Window(WindowSpec::SlidingCount { size: 3, slide: 2 }),
            agg,
            OpSpec::Emit(EmitSpec {
                items: None,
                schema,
            }),
        ],
        schema,
    );
    let (emit, out) = b.emit("Dist", vec![("pump", field(0))]);
    b.stream(
        "Dist",
        input(r),
        vec![
            OpSpec::Distinct {
                key: Some(field(0)),
                capacity: 10,
            },
            OpSpec::Limit(3),
            emit,
        ],
        out,
    );
    b.build()
}

fn events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let pump = ["a", "b", "c"][i * 7 % 3];
            reading(
                i as i64 * 3 * S,
                &format!("{pump}{}", i % 5),
                (i * 13 % 17) as f64,
            )
        })
        .collect()
}

#[test]
fn snapshot_and_restore_midway_gives_the_same_output_as_a_straight_run() {
    let evs = events(60);
    let mut straight = Engine::new(stateful()).expect("loads");
    let mut expected = Vec::new();
    for ev in evs.clone() {
        expected.extend(straight.push(ev));
    }
    expected.extend(straight.finish());
    assert!(expected.len() > 20);

    let mut first = Engine::new(stateful()).expect("loads");
    let mut got = Vec::new();
    for ev in evs[..31].iter().cloned() {
        got.extend(first.push(ev));
    }
    let bytes = first.snapshot().expect("snapshot");
    drop(first);
    let mut second = Engine::new(stateful()).expect("loads");
    second.restore(&bytes).expect("restore");
    for ev in evs[31..].iter().cloned() {
        got.extend(second.push(ev));
    }
    got.extend(second.finish());
    assert_eq!(render(&got), render(&expected));
    assert_eq!(second.metrics(), straight.metrics());
}

/// The engine's state goes through a real durable store: saved into
/// RocksDB, committed, the store closed and reopened, then loaded into a
/// fresh engine that carries on exactly like one that never stopped.
#[cfg(feature = "rocksdb")]
#[test]
fn state_saved_to_rocksdb_and_reopened_continues_like_a_straight_run() {
    use varpulis_state::{RocksStore, StateStore};

    let evs = events(60);
    let mut straight = Engine::new(stateful()).expect("loads");
    let mut expected = Vec::new();
    for ev in evs.clone() {
        expected.extend(straight.push(ev));
    }
    expected.extend(straight.finish());

    let dir = tempfile::tempdir().expect("tempdir");
    let mut first = Engine::new(stateful()).expect("loads");
    let mut got = Vec::new();
    let mut store = RocksStore::open(dir.path()).expect("open");
    for (i, ev) in evs[..31].iter().cloned().enumerate() {
        got.extend(first.push(ev));
        // Several checkpoints, so the last one must replace the earlier ones.
        if i % 10 == 9 {
            first.save_state(&mut store).expect("save");
            store.commit().expect("commit");
        }
    }
    first.save_state(&mut store).expect("save");
    store.commit().expect("commit");
    // Pushed after the last commit: must not be in the reopened state.
    first.push(evs[31].clone());
    first.save_state(&mut store).expect("save uncommitted");
    drop((first, store));

    let store = RocksStore::open(dir.path()).expect("reopen");
    assert!(store.recovered());
    let mut second = Engine::new(stateful()).expect("loads");
    second.load_state(&store).expect("load");
    for ev in evs[31..].iter().cloned() {
        got.extend(second.push(ev));
    }
    got.extend(second.finish());
    assert_eq!(render(&got), render(&expected));
    assert_eq!(second.metrics(), straight.metrics());
    // The store holds exactly the last committed checkpoint.
    let mut replay = Engine::new(stateful()).expect("loads");
    for ev in evs[..31].iter().cloned() {
        replay.push(ev);
    }
    assert_eq!(
        store.snapshot().expect("snapshot"),
        replay.snapshot().expect("snapshot")
    );
}

#[test]
fn restore_rejects_foreign_or_corrupt_snapshots() {
    let e = Engine::new(hot()).expect("loads");
    let bytes = e.snapshot().expect("snapshot");
    let mut other = Engine::new(stateful()).expect("loads");
    assert!(matches!(other.restore(&bytes), Err(LoadError::Snapshot(_))));
    assert!(other.restore(b"junk").is_err());
}

fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<f64>().prop_map(Value::Float),
        "[a-c]{0,2}".prop_map(Value::str),
        any::<i64>().prop_map(Value::Duration),
    ]
}

fn arb_event() -> impl Strategy<Value = Event> {
    (
        0u32..3,
        -5i64..200,
        proptest::collection::vec(proptest::option::of(arb_value()), 0..3),
    )
        .prop_map(|(ty, t, fields)| Event::new(ty, t * S / 2, fields))
}

/// Arithmetic on every field pair so odd values reach the interpreter.
fn noisy() -> Arc<Program> {
    let mut b = ProgramBuilder::new();
    let r = b.event("Reading", &["pump", "bar"]);
    let _other = b.event("Other", &["x"]);
    let mix = |op: Instr| code(vec![Instr::LoadField(0), Instr::LoadField(1), op], vec![]);
    let (emit, out) = b.emit(
        "N",
        vec![
            ("a", mix(Instr::Add)),
            ("d", mix(Instr::Div)),
            ("p", mix(Instr::Pow)),
            ("i", mix(Instr::Index)),
        ],
    );
    b.stream(
        "N",
        input(r),
        vec![
            OpSpec::Filter(Chunk::new(
                vec![Instr::LoadField(0), Instr::LoadField(1), Instr::Lt],
                vec![],
            )),
            emit,
        ],
        out,
    );
    let _ = stateful();
    b.build()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_event_streams_never_panic_the_engine(evs in proptest::collection::vec(arb_event(), 0..60)) {
        for p in [noisy(), stateful()] {
            let mut e = Engine::new(p).expect("loads");
            for ev in evs.iter().cloned() {
                let _ = e.push(ev);
            }
            let _ = e.finish();
            let bytes = e.snapshot().expect("snapshot");
            e.restore(&bytes).expect("restore");
        }
    }
}

/// The partitioned streams of [`stateful`]: windows and counts by `pump`.
fn partitioned() -> Arc<Program> {
    let mut p = (*stateful()).clone();
    p.streams.retain(|s| !matches!(&*s.name, "Sess" | "Dist"));
    Arc::new(p)
}

/// Runs `evs` through `shards` engines, each event to the shard of its pump
/// and only its time to the others; returns each input position's outputs
/// (sorted, as a multiset) and the shards' summed `late` counter.
fn sharded(evs: &[Event], shards: usize) -> (Vec<Vec<String>>, u64) {
    let program = partitioned();
    let mut engines: Vec<Engine> = (0..shards)
        .map(|_| Engine::new(program.clone()).expect("loads"))
        .collect();
    let owner = |ev: &Event| match &ev.fields[0] {
        Some(Value::Str(s)) => s.bytes().map(usize::from).sum::<usize>() % shards,
        _ => 0,
    };
    let mut positions = Vec::new();
    for ev in evs {
        let mut out = Vec::new();
        let own = owner(ev);
        for (i, e) in engines.iter_mut().enumerate() {
            if i == own {
                e.push_into(ev.clone(), &mut out);
            } else {
                e.observe_time(ev.type_id, ev.time, &mut out);
            }
        }
        let mut lines = render(&out);
        lines.sort();
        positions.push(lines);
    }
    let mut out = Vec::new();
    for e in &mut engines {
        out.extend(e.finish());
    }
    let mut lines = render(&out);
    lines.sort();
    positions.push(lines);
    let late = engines.iter().map(|e| e.metrics().late).sum();
    for e in &engines {
        assert_eq!(e.watermark(), engines[0].watermark(), "time diverged");
    }
    (positions, late)
}

#[test]
fn shards_fed_times_of_events_they_do_not_own_produce_the_single_engine_outputs() {
    let mut evs = events(80);
    // Two late events (older than the watermark when they arrive).
    evs.insert(40, reading(2 * S, "a1", 3.0));
    evs.insert(60, reading(5 * S, "b2", 4.0));
    let (single, late_one) = sharded(&evs, 1);
    assert!(single.iter().any(|p| !p.is_empty()), "the program emits");
    assert_eq!(late_one, 2);
    for n in 2..=4 {
        let (split, late) = sharded(&evs, n);
        assert_eq!(split, single, "{n} shards");
        assert_eq!(
            late, late_one,
            "late events are counted once with {n} shards"
        );
    }
}

#[test]
fn observe_time_moves_the_watermark_like_push_without_running_streams() {
    let mut pushed = Engine::new(partitioned()).expect("loads");
    let mut observed = Engine::new(partitioned()).expect("loads");
    let mut out = Vec::new();
    for ev in events(10) {
        observed.observe_time(ev.type_id, ev.time, &mut out);
        pushed.push_into(ev, &mut Vec::new());
        assert_eq!(observed.watermark(), pushed.watermark());
    }
    assert!(
        out.is_empty(),
        "no stream saw an event, so no window opened"
    );
    let m = observed.metrics();
    assert_eq!((m.events_in, m.late), (0, 0));
    // An unknown type id is ignored rather than indexing out of bounds.
    observed.observe_time(999, 1_000 * S, &mut out);
    assert_eq!(observed.watermark(), pushed.watermark());
}

#[test]
fn sliding_windows_holding_out_of_order_events_are_released_and_cleaned_up() {
    // Key `a` buffers 100s then 5s (older but not late: the watermark waits
    // for `Other`); key `b` moves Reading's time past a's slide point. The
    // slide then reschedules a's cleanup from the newest event by time, not
    // from the last to arrive, which would be due again at once, forever.
    let mut b = ProgramBuilder::new();
    let r = b.event("Reading", &["pump", "bar"]);
    let o = b.event("Other", &["x"]);
    let (agg, schema) = b.aggregate("Slide", &[("m", AggFunc::Max, Some(1), None)], Some("pump"));
    b.stream(
        "Slide",
        input(r),
        vec![
            OpSpec::PartitionBy(field(0)),
            OpSpec::Window(WindowSpec::Sliding {
                size: 20 * S,
                slide: 5 * S,
            }),
            agg,
            OpSpec::Emit(EmitSpec {
                items: None,
                schema,
            }),
        ],
        schema,
    );
    let (emit, out) = b.emit("O", vec![("x", field(0))]);
    b.stream("O", input(o), vec![emit], out);
    let mut e = Engine::new(b.build()).expect("loads");
    let other = |t: i64| event(o, t, vec![Value::Int(1)]);
    e.push(other(0));
    e.push(reading(100 * S, "a", 1.0));
    e.push(reading(5 * S, "a", 2.0));
    e.push(reading(110 * S, "b", 3.0));
    let out = render(&e.push(other(300 * S)));
    assert!(
        out.iter()
            .any(|l| l.starts_with("Slide@105000000000") && l.contains("m=2.0")),
        "{out:?}"
    );
    e.finish();
}

/// `Reading.window(3).pattern(big: events => len(events) >= 3 and
/// events[-1].bar > 4.0).emit()`, built by hand.
fn window_pattern(ops_before: Vec<OpSpec>) -> Arc<Program> {
    let mut b = ProgramBuilder::new();
    let r = b.event("Reading", &["pump", "bar"]);
    let out = b.layout("Reading", &["pump", "bar", "pattern", "window_events"]);
    // len(events) >= 3 and events[-1].bar > 4.0
    let test = code(
        vec![
            Instr::LoadLocal(0),
            Instr::CallBuiltin(varpulis_program::Builtin::Len, 1),
            Instr::Const(0),
            Instr::Ge,
            Instr::AndThen(13),
            Instr::LoadLocal(0),
            Instr::Const(1),
            Instr::Index,
            Instr::Member(2),
            Instr::Const(3),
            Instr::Gt,
            Instr::ToBool,
            Instr::Jump(13),
        ],
        vec![
            Value::Int(3),
            Value::Int(-1),
            Value::str("bar"),
            Value::Float(4.0),
        ],
    );
    let mut ops = ops_before;
    ops.push(OpSpec::Pattern(varpulis_program::PatternTest {
        name: Arc::from("big"),
        test,
        schema: out,
    }));
    ops.push(OpSpec::Emit(EmitSpec {
        items: None,
        schema: out,
    }));
    b.stream("Big", input(r), ops, out);
    b.build()
}

#[test]
fn pattern_tests_each_window_group_and_passes_its_last_event() {
    let p = window_pattern(vec![OpSpec::Window(WindowSpec::Count { size: 3 })]);
    let mut e = Engine::new(p).expect("loads");
    let mut out = Vec::new();
    for (i, bar) in [1.0, 2.0, 5.0, 9.0, 9.0, 3.0].iter().enumerate() {
        out.extend(e.push(reading(i as i64, "P1", *bar)));
    }
    assert_eq!(
        render(&out),
        ["Big@2{pump=\"P1\",bar=5.0,pattern=\"big\",window_events=3}"]
    );
    let m = e.metrics().window_patterns;
    assert_eq!((m.tested, m.matched), (2, 1));
    let state = e.inspect("Big").expect("stream");
    assert_eq!(state.ops[0].pattern, Some((2, 1)));
}

#[test]
fn a_pattern_not_right_after_a_window_is_refused_at_load() {
    let p = window_pattern(vec![
        OpSpec::Window(WindowSpec::Count { size: 3 }),
        OpSpec::Filter(konst(Value::Bool(true))),
    ]);
    assert!(matches!(Engine::new(p), Err(LoadError::Invalid(_))));
}

/// `Tumble` (10 s windows of `Reading` by pump, counted) feeds `Total`
/// (20 s windows of `Tumble`, summed): `Total` reads what `Tumble`'s timers
/// release.
fn two_levels() -> Arc<Program> {
    let mut b = ProgramBuilder::new();
    let r = b.event("Reading", &["pump", "bar"]);
    let (agg, schema) = b.aggregate("Tumble", &[("n", AggFunc::Count, None, None)], Some("pump"));
    let tumble = b.stream(
        "Tumble",
        input(r),
        vec![
            OpSpec::PartitionBy(field(0)),
            OpSpec::Window(WindowSpec::Tumbling { size: 10 * S }),
            agg,
            OpSpec::Emit(EmitSpec {
                items: None,
                schema,
            }),
        ],
        schema,
    );
    let (agg, schema) = b.aggregate("Total", &[("sum", AggFunc::Sum, Some(0), None)], None);
    b.stream(
        "Total",
        from_stream(tumble),
        vec![
            OpSpec::Window(WindowSpec::Tumbling { size: 20 * S }),
            agg,
            OpSpec::Emit(EmitSpec {
                items: None,
                schema,
            }),
        ],
        schema,
    );
    b.build()
}

#[test]
fn two_engines_each_running_one_stream_give_the_outputs_of_one_engine() {
    let p = two_levels();
    let input: Vec<Event> = (0..60)
        .map(|i| {
            // Pump c is rare: its windows close on the watermark.
            let pump = if i % 10 == 0 {
                "c"
            } else {
                ["a", "b"][(i % 2) as usize]
            };
            reading(i * 1_700_000_000, pump, 1.0)
        })
        .collect();
    let mut one = Engine::new(p.clone()).expect("loads");
    let mut expected = Vec::new();
    for ev in input.clone() {
        expected.extend(render(&one.push(ev)));
    }
    expected.extend(render(&one.finish()));

    let mut up = Engine::new(p.clone()).expect("loads");
    up.run_only(vec![true, false], vec![true, false]);
    let mut down = Engine::new(p).expect("loads");
    down.run_only(vec![false, true], vec![false, false]);
    let mut got = Vec::new();
    let mut staged_after_the_event = 0;
    for ev in input {
        got.extend(render(&up.push(ev.clone())));
        let exports = up.take_exports();
        // Tumble's windows close on the watermark, after the event's stage.
        staged_after_the_event += exports.iter().filter(|x| x.stage > 0).count();
        down.inject(exports);
        got.extend(render(&down.push(ev)));
        assert!(down.take_exports().is_empty(), "nothing is exported");
    }
    got.extend(render(&up.finish()));
    down.inject(up.take_exports());
    got.extend(render(&down.finish()));
    assert!(staged_after_the_event > 0);
    assert!(got.iter().any(|l| l.starts_with("Total")), "{got:?}");
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
    // Each engine counts the events of its own streams only.
    assert_eq!(up.metrics().out_per_stream[1], 0);
    assert_eq!(down.metrics().out_per_stream[0], 0);
}

#[test]
fn the_combined_state_of_two_lanes_restores_into_one_engine_or_two_lanes() {
    let p = two_levels();
    let input: Vec<Event> = (0..60)
        .map(|i| {
            let pump = if i % 10 == 0 {
                "c"
            } else {
                ["a", "b"][(i % 2) as usize]
            };
            reading(i * 1_700_000_000, pump, 1.0)
        })
        .collect();
    let (head, tail) = input.split_at(31);
    let lanes = |p: &Arc<Program>| {
        let mut up = Engine::new(p.clone()).expect("loads");
        up.run_only(vec![true, false], vec![true, false]);
        let mut down = Engine::new(p.clone()).expect("loads");
        down.run_only(vec![false, true], vec![false, false]);
        (up, down)
    };
    let step = |up: &mut Engine, down: &mut Engine, ev: &Event, got: &mut Vec<String>| {
        got.extend(render(&up.push(ev.clone())));
        down.inject(up.take_exports());
        got.extend(render(&down.push(ev.clone())));
    };
    let end = |up: &mut Engine, down: &mut Engine, got: &mut Vec<String>| {
        got.extend(render(&up.finish()));
        down.inject(up.take_exports());
        got.extend(render(&down.finish()));
        got.sort();
    };
    let (mut up, mut down) = lanes(&p);
    let mut ignored = Vec::new();
    for ev in head {
        step(&mut up, &mut down, ev, &mut ignored);
    }
    let mut saved_up = varpulis_state::MemoryStore::new();
    up.save_state(&mut saved_up).expect("saves");
    let mut saved_down = varpulis_state::MemoryStore::new();
    down.save_state(&mut saved_down).expect("saves");
    let mut combined = varpulis_state::MemoryStore::new();
    let (a, b) = ([true, false], [false, true]);
    crate::combine_lane_states(&[(&saved_up, &a[..]), (&saved_down, &b[..])], &mut combined)
        .expect("combines");

    let mut expected = Vec::new();
    for ev in tail {
        step(&mut up, &mut down, ev, &mut expected);
    }
    end(&mut up, &mut down, &mut expected);
    assert!(expected.iter().any(|l| l.starts_with("Total")));

    // Into one engine.
    let mut one = Engine::new(p.clone()).expect("loads");
    one.load_state(&combined).expect("a one-engine state");
    let mut got = Vec::new();
    for ev in tail {
        got.extend(render(&one.push(ev.clone())));
    }
    got.extend(render(&one.finish()));
    got.sort();
    assert_eq!(got, expected);

    // Into two lanes again.
    let (mut up2, mut down2) = lanes(&p);
    up2.load_lane_state(&combined, crate::Compat::Strict, true)
        .expect("loads");
    down2
        .load_lane_state(&combined, crate::Compat::Strict, false)
        .expect("loads");
    assert_eq!(
        down2.memory()[0].ops.iter().map(|o| o.keys).sum::<u64>(),
        0,
        "a lane keeps no state of the streams it does not run"
    );
    let mut got = Vec::new();
    for ev in tail {
        step(&mut up2, &mut down2, ev, &mut got);
    }
    end(&mut up2, &mut down2, &mut got);
    assert_eq!(got, expected);
    assert_eq!(
        up2.metrics().out_per_stream[0] + down2.metrics().out_per_stream[0],
        one.metrics().out_per_stream[0]
    );
}

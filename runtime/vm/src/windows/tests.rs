//! Window tests per kind, including the docs/LANGUAGE.md#window edge cases.

use crate::testing::*;
use crate::Engine;
use varpulis_program::{AggFunc, OpSpec, Value, WindowSpec};

const S: i64 = 1_000_000_000;

/// `Reading(pump, bar)` → [partition_by pump] → window → aggregate(n: count(), total: sum(bar)) → emit all.
fn agg_engine(w: WindowSpec, partitioned: bool) -> Engine {
    let mut b = ProgramBuilder::new();
    let r = b.event("Reading", &["pump", "bar"]);
    let (agg, schema) = b.aggregate(
        "W",
        &[
            ("n", AggFunc::Count, None, None),
            ("total", AggFunc::Sum, Some(1), None),
        ],
        partitioned.then_some("pump"),
    );
    let mut ops = Vec::new();
    if partitioned {
        ops.push(OpSpec::PartitionBy(field(0)));
    }
    ops.push(OpSpec::Window(w));
    ops.push(agg);
    ops.push(OpSpec::Emit(varpulis_program::EmitSpec {
        items: None,
        schema,
    }));
    b.stream("W", input(r), ops, schema);
    Engine::new(b.build()).expect("loads")
}

fn push(e: &mut Engine, pump: &str, t: i64, bar: f64) -> Vec<String> {
    render(&e.push(event(0, t, vec![Value::str(pump), Value::Float(bar)])))
}

#[test]
fn tumbling_anchors_at_first_event_and_releases_on_the_triggering_event() {
    let mut e = agg_engine(WindowSpec::Tumbling { size: 10 * S }, false);
    assert!(push(&mut e, "a", 3 * S, 1.0).is_empty());
    assert!(push(&mut e, "a", 12 * S, 2.0).is_empty(), "12 < 3 + 10");
    // 13 ≥ 3 + 10: releases [3, 12] (not itself), stamped with the window's
    // end 3 + 10; the next window is anchored at 13.
    assert_eq!(
        push(&mut e, "a", 13 * S, 4.0),
        ["W@13000000000{n=2,total=3.0}"]
    );
    assert!(push(&mut e, "a", 22 * S, 1.0).is_empty());
    assert_eq!(
        render(&e.finish()),
        ["W@23000000000{n=2,total=5.0}"],
        "end-of-input flush, stamped 13 + 10"
    );
    assert!(e.finish().is_empty(), "nothing left");
}

#[test]
fn tumbling_partitions_close_on_the_watermark() {
    let mut e = agg_engine(WindowSpec::Tumbling { size: 10 * S }, true);
    assert!(push(&mut e, "a", 0, 1.0).is_empty());
    assert!(push(&mut e, "b", 5 * S, 1.0).is_empty());
    // The watermark reaches 10 s through pump b: pump a's window [0, 10) closes.
    assert_eq!(
        push(&mut e, "b", 10 * S, 1.0),
        ["W@10000000000{n=1,total=1.0,pump=\"a\",_partition=\"a\"}"]
    );
    // Pump b's window was anchored at 5 s: it closes at 15 s.
    assert_eq!(
        render(&e.advance_watermark(15 * S)),
        ["W@15000000000{n=2,total=2.0,pump=\"b\",_partition=\"b\"}"]
    );
    assert!(e.finish().is_empty());
}

#[test]
fn empty_input_and_empty_windows_release_nothing() {
    let mut e = agg_engine(WindowSpec::Tumbling { size: 10 * S }, false);
    assert!(e.advance_watermark(100 * S).is_empty());
    assert!(e.finish().is_empty());
}

#[test]
fn finish_can_be_turned_off() {
    let mut b = ProgramBuilder::new();
    let r = b.event("Reading", &["pump", "bar"]);
    let (agg, schema) = b.aggregate("W", &[("n", AggFunc::Count, None, None)], None);
    b.stream(
        "W",
        input(r),
        vec![
            OpSpec::Window(WindowSpec::Session { gap: 5 * S }),
            agg,
            OpSpec::Emit(varpulis_program::EmitSpec {
                items: None,
                schema,
            }),
        ],
        schema,
    );
    let cfg = crate::EngineConfig {
        flush_at_end: false,
        ..Default::default()
    };
    let mut e = Engine::with_config(b.build(), cfg).expect("loads");
    e.push(event(0, 0, vec![Value::str("a"), Value::Float(1.0)]));
    assert!(e.finish().is_empty());
}

#[test]
fn session_closes_after_the_gap_and_joins_events_at_exactly_the_gap() {
    let mut e = agg_engine(WindowSpec::Session { gap: 5 * S }, true);
    assert!(push(&mut e, "a", 0, 1.0).is_empty());
    assert!(push(&mut e, "a", 5 * S, 1.0).is_empty(), "gap not exceeded");
    // Another pump moves the watermark past 5 s + 5 s: pump a's session closes.
    // Stamped with the session's end: last event + gap.
    assert_eq!(
        push(&mut e, "b", 11 * S, 1.0),
        ["W@10000000000{n=2,total=2.0,pump=\"a\",_partition=\"a\"}"]
    );
    // REF path: a later event beyond the gap releases the session.
    assert!(push(&mut e, "b", 12 * S, 1.0).is_empty());
    assert_eq!(
        push(&mut e, "b", 30 * S, 2.0),
        ["W@17000000000{n=2,total=2.0,pump=\"b\",_partition=\"b\"}"]
    );
    assert_eq!(
        render(&e.finish()),
        ["W@35000000000{n=1,total=2.0,pump=\"b\",_partition=\"b\"}"]
    );
}

#[test]
fn count_window_releases_every_n_and_keeps_partial_windows_unless_asked() {
    let mut e = agg_engine(WindowSpec::Count { size: 2 }, true);
    assert!(push(&mut e, "a", 1, 1.0).is_empty());
    assert!(push(&mut e, "b", 2, 1.0).is_empty());
    assert_eq!(
        push(&mut e, "a", 3, 2.0),
        ["W@3{n=2,total=3.0,pump=\"a\",_partition=\"a\"}"]
    );
    assert!(
        e.finish().is_empty(),
        "partial count windows are not flushed by default"
    );

    let mut b = ProgramBuilder::new();
    let r = b.event("Reading", &["pump", "bar"]);
    let (agg, schema) = b.aggregate("W", &[("n", AggFunc::Count, None, None)], None);
    b.stream(
        "W",
        input(r),
        vec![
            OpSpec::Window(WindowSpec::Count { size: 3 }),
            agg,
            OpSpec::Emit(varpulis_program::EmitSpec {
                items: None,
                schema,
            }),
        ],
        schema,
    );
    let cfg = crate::EngineConfig {
        flush_partial_count_windows: true,
        ..Default::default()
    };
    let mut e = Engine::with_config(b.build(), cfg).expect("loads");
    e.push(event(0, 1, vec![Value::str("a"), Value::Float(1.0)]));
    assert_eq!(render(&e.finish()), ["W@1{n=1}"]);
}

#[test]
fn sliding_count_releases_once_full_then_every_m() {
    let mut e = agg_engine(WindowSpec::SlidingCount { size: 3, slide: 2 }, false);
    let mut outs = Vec::new();
    for i in 1..=7 {
        outs.extend(push(&mut e, "a", i, i as f64));
    }
    // full at 3 → [1,2,3]; then every 2 arrivals: 5 → [3,4,5]; 7 → [5,6,7]
    assert_eq!(
        outs,
        [
            "W@3{n=3,total=6.0}",
            "W@5{n=3,total=12.0}",
            "W@7{n=3,total=18.0}"
        ]
    );
}

#[test]
fn sliding_time_releases_first_event_then_every_slide() {
    let mut e = agg_engine(
        WindowSpec::Sliding {
            size: 10 * S,
            slide: 5 * S,
        },
        false,
    );
    assert_eq!(
        push(&mut e, "a", 0, 1.0),
        ["W@0{n=1,total=1.0}"],
        "first event releases"
    );
    assert!(push(&mut e, "a", 3 * S, 1.0).is_empty());
    assert_eq!(
        push(&mut e, "a", 5 * S, 1.0),
        ["W@5000000000{n=3,total=3.0}"]
    );
    // 12 s: evicts events before 2 s; releases [3, 5, 12].
    assert_eq!(
        push(&mut e, "a", 12 * S, 1.0),
        ["W@12000000000{n=3,total=3.0}"]
    );
    // Nothing joined since the release at 12 s: slides at 17 s and 22 s
    // would only repeat or shrink it, so the end of input releases nothing.
    assert!(e.finish().is_empty());
}

#[test]
fn sliding_time_releases_on_the_watermark_only_what_is_new() {
    let mut e = agg_engine(
        WindowSpec::Sliding {
            size: 10 * S,
            slide: 5 * S,
        },
        true,
    );
    assert_eq!(push(&mut e, "a", 0, 1.0).len(), 1);
    // 3 s < 0 + 5: pump a has a pending event, not released yet.
    assert!(push(&mut e, "a", 3 * S, 2.0).is_empty());
    // Pump b moves the watermark past a's slide point 5 s: a slides at 5 s,
    // stamped 5 s, holding [0, 3].
    assert_eq!(
        push(&mut e, "b", 6 * S, 4.0),
        [
            "W@6000000000{n=1,total=4.0,pump=\"b\",_partition=\"b\"}",
            "W@5000000000{n=2,total=3.0,pump=\"a\",_partition=\"a\"}"
        ]
    );
    // Later slides of pump a release nothing new; the windows are dropped
    // once their events are too old, so nothing is left at the end.
    assert!(e.advance_watermark(40 * S).is_empty());
    assert!(e.finish().is_empty());
}

#[test]
fn sliding_time_ends_at_the_end_of_time() {
    // Found by the `checkpoint` fuzz target: an event within the window's size of i64::MAX ns
    // made the cleanup timer saturate at i64::MAX, where the end-of-input watermark is, so
    // `finish` rescheduled it at once, forever (`varpulis simulate` hung on one such event).
    let mut e = agg_engine(
        WindowSpec::Sliding {
            size: 300 * S,
            slide: 60 * S,
        },
        false,
    );
    let near_end = i64::MAX - 54 * S;
    assert_eq!(push(&mut e, "a", near_end, 1.0).len(), 1);
    assert!(push(&mut e, "a", near_end + S, 2.0).is_empty());
    assert_eq!(
        render(&e.finish()).len(),
        1,
        "the pending event slides out once"
    );
    assert!(e.finish().is_empty());
}

#[test]
fn window_without_aggregate_releases_events_individually() {
    let mut b = ProgramBuilder::new();
    let r = b.event("Reading", &["pump", "bar"]);
    let (emit, schema) = b.emit("W", vec![("bar", field(1))]);
    b.stream(
        "W",
        input(r),
        vec![OpSpec::Window(WindowSpec::Count { size: 2 }), emit],
        schema,
    );
    let mut e = Engine::new(b.build()).expect("loads");
    assert!(push(&mut e, "a", 1, 1.0).is_empty());
    assert_eq!(push(&mut e, "a", 2, 2.0), ["W@1{bar=1.0}", "W@2{bar=2.0}"]);
}

#[test]
fn tumbling_window_stays_open_for_out_of_order_events_until_the_watermark_passes() {
    let mut b = ProgramBuilder::new();
    let r = b.event("Reading", &["pump", "bar"]);
    let (agg, schema) = b.aggregate(
        "W",
        &[
            ("n", AggFunc::Count, None, None),
            ("total", AggFunc::Sum, Some(1), None),
        ],
        None,
    );
    let id = b.stream(
        "W",
        input(r),
        vec![
            OpSpec::Window(WindowSpec::Tumbling { size: 60 * S }),
            agg,
            OpSpec::Emit(varpulis_program::EmitSpec {
                items: None,
                schema,
            }),
        ],
        schema,
    );
    b.program.streams[id as usize].time = varpulis_program::StreamTime {
        out_of_order: Some(10 * S),
        allowed_lateness: None,
    };
    let mut e = Engine::new(b.build()).expect("loads");
    assert!(push(&mut e, "a", 0, 1.0).is_empty());
    assert!(push(&mut e, "a", 30 * S, 2.0).is_empty());
    // 65 s anchors the next window; the watermark (55 s) has not reached 60 s.
    assert!(push(&mut e, "a", 65 * S, 4.0).is_empty());
    // 58 s is not late and still joins [0, 60).
    assert!(push(&mut e, "a", 58 * S, 8.0).is_empty());
    // 75 s moves the watermark to 65 s: [0, 60) closes, stamped 60 s.
    assert_eq!(
        push(&mut e, "a", 75 * S, 16.0),
        ["W@60000000000{n=3,total=11.0}"]
    );
    assert_eq!(render(&e.finish()), ["W@125000000000{n=2,total=20.0}"]);
}

/// [`agg_engine`] partitioned by pump with a state bound on the
/// `.partition_by` (op 0).
fn bounded_engine(w: WindowSpec, bound: varpulis_program::StateBound) -> Engine {
    let mut p = (*agg_engine(w, true).program().clone()).clone();
    p.streams[0].bounds = vec![varpulis_program::StateBound { op: 0, ..bound }];
    Engine::new(std::sync::Arc::new(p)).expect("loads")
}

fn max_keys(n: u64, evict: varpulis_program::Evict) -> varpulis_program::StateBound {
    varpulis_program::StateBound {
        max_keys: Some(n),
        evict,
        ..Default::default()
    }
}

#[test]
fn max_keys_evicts_the_least_recently_used_key_and_drops_its_window() {
    use varpulis_program::Evict;
    let mut e = bounded_engine(WindowSpec::Count { size: 2 }, max_keys(2, Evict::Lru));
    assert!(push(&mut e, "a", 0, 1.0).is_empty());
    assert!(push(&mut e, "b", S, 1.0).is_empty());
    assert!(
        push(&mut e, "a", 2 * S, 1.0).len() == 1,
        "a's window is full"
    );
    assert!(
        push(&mut e, "a", 3 * S, 5.0).is_empty(),
        "a opens a new window"
    );
    // A third key evicts b (used least recently), whose half-open window
    // goes without output.
    assert!(push(&mut e, "c", 4 * S, 1.0).is_empty());
    // b returns and evicts a (last used at 3 s, before c).
    assert!(push(&mut e, "b", 5 * S, 1.0).is_empty(), "b starts over");
    let mem = e.memory();
    let part = &mem[0].ops[0];
    assert_eq!((part.kind, part.keys), ("partition_by", 2));
    assert_eq!(part.evictions.lru, 2, "b, then a");
    let win = &mem[0].ops[1];
    assert_eq!(win.kind, "window");
    assert_eq!(win.keys, 2, "windows of c and b only");
    assert!(win.bytes > 0);
    assert_eq!(
        push(&mut e, "c", 6 * S, 2.0),
        ["W@6000000000{n=2,total=3.0,pump=\"c\",_partition=\"c\"}"],
        "c kept its open window"
    );
    assert!(
        push(&mut e, "a", 7 * S, 1.0).is_empty(),
        "a's 5.0 was dropped"
    );
}

#[test]
fn fifo_evicts_the_first_key_even_when_it_is_busy() {
    use varpulis_program::Evict;
    let mut e = bounded_engine(WindowSpec::Count { size: 3 }, max_keys(2, Evict::Fifo));
    push(&mut e, "a", 0, 1.0);
    push(&mut e, "b", S, 1.0);
    push(&mut e, "a", 2 * S, 1.0);
    push(&mut e, "c", 3 * S, 1.0);
    push(&mut e, "a", 4 * S, 1.0);
    assert_eq!(e.memory()[0].ops[0].evictions.fifo, 2, "a, then b");
    // a restarted at 4 s: two more events fill its window of three.
    push(&mut e, "a", 5 * S, 1.0);
    assert_eq!(
        push(&mut e, "a", 6 * S, 1.0),
        ["W@6000000000{n=3,total=3.0,pump=\"a\",_partition=\"a\"}"]
    );
}

#[test]
fn idle_keys_are_freed_by_event_time_after_their_windows_close() {
    let bound = varpulis_program::StateBound {
        idle: Some(10 * S),
        ..Default::default()
    };
    let mut e = bounded_engine(WindowSpec::Tumbling { size: 20 * S }, bound);
    push(&mut e, "a", 0, 1.0);
    push(&mut e, "b", 5 * S, 1.0);
    // At 15 s a has been idle for 15 s: its window [0, 20) is dropped; b
    // (idle 10 s) goes too, at exactly the idle time.
    assert!(render(&e.advance_watermark(15 * S)).is_empty());
    let part = &e.memory()[0].ops[0];
    assert_eq!((part.keys, part.evictions.idle), (0, 2));
    assert_eq!(e.memory()[0].ops[1].keys, 0, "the windows are freed");
    assert!(e.finish().is_empty());
}

#[test]
fn an_idle_key_whose_window_closes_at_the_same_watermark_is_released_first() {
    let bound = varpulis_program::StateBound {
        idle: Some(10 * S),
        ..Default::default()
    };
    let mut e = bounded_engine(WindowSpec::Tumbling { size: 10 * S }, bound);
    push(&mut e, "a", 0, 1.0);
    assert_eq!(
        render(&e.advance_watermark(10 * S)),
        ["W@10000000000{n=1,total=1.0,pump=\"a\",_partition=\"a\"}"]
    );
    assert_eq!(e.memory()[0].ops[0].evictions.idle, 1);
}

#[test]
fn bounded_keys_survive_a_snapshot_and_restore() {
    use varpulis_program::Evict;
    let events = [
        ("a", 0),
        ("b", 1),
        ("a", 2),
        ("c", 3),
        ("b", 4),
        ("a", 5),
        ("c", 6),
    ];
    let run = |cut: Option<usize>| {
        let mut e = bounded_engine(WindowSpec::Count { size: 2 }, max_keys(2, Evict::Lru));
        let mut out = Vec::new();
        for (i, (k, t)) in events.iter().enumerate() {
            if cut == Some(i) {
                let bytes = e.snapshot().expect("snapshot");
                e = bounded_engine(WindowSpec::Count { size: 2 }, max_keys(2, Evict::Lru));
                e.restore(&bytes).expect("restore");
            }
            out.extend(push(&mut e, k, t * S, 1.0));
        }
        (out, e.memory()[0].ops[0].evictions)
    };
    let straight = run(None);
    for cut in 1..events.len() {
        assert_eq!(run(Some(cut)), straight, "restored before event {cut}");
    }
}

#[test]
fn released_count_windows_free_their_key() {
    let mut e = agg_engine(WindowSpec::Count { size: 2 }, true);
    for i in 0..100 {
        let k = format!("k{i}");
        push(&mut e, &k, i * S, 1.0);
        push(&mut e, &k, i * S, 1.0);
    }
    assert_eq!(e.memory()[0].ops[0].keys, 0);
}

#[test]
fn the_end_of_input_is_not_idleness() {
    let bound = varpulis_program::StateBound {
        idle: Some(10 * S),
        ..Default::default()
    };
    let p = (*bounded_engine(WindowSpec::Count { size: 5 }, bound)
        .program()
        .clone())
    .clone();
    let config = crate::EngineConfig {
        flush_partial_count_windows: true,
        ..crate::EngineConfig::default()
    };
    let mut e = Engine::with_config(std::sync::Arc::new(p), config).expect("loads");
    push(&mut e, "a", 0, 1.0);
    assert_eq!(
        render(&e.finish()),
        ["W@0{n=1,total=1.0,pump=\"a\",_partition=\"a\"}"],
        "the partial window is flushed, not evicted"
    );
    assert_eq!(e.memory()[0].ops[0].evictions.idle, 0);
}

/// `Reading(pump, bar)` → window (bounded to `max` events) → either the
/// events themselves or `aggregate(n: count(), bars: collect(bar), med:
/// median(bar), kinds: count_distinct(bar))`.
fn max_events_engine(w: WindowSpec, max: u64, aggregate: bool) -> Engine {
    let mut b = ProgramBuilder::new();
    let r = b.event("Reading", &["pump", "bar"]);
    let mut ops = vec![OpSpec::Window(w)];
    let out = if aggregate {
        let (agg, schema) = b.aggregate(
            "W",
            &[
                ("n", AggFunc::Count, None, None),
                ("bars", AggFunc::Collect, Some(1), None),
                ("med", AggFunc::Median, Some(1), None),
                ("kinds", AggFunc::CountDistinct, Some(1), None),
            ],
            None,
        );
        ops.push(agg);
        ops.push(OpSpec::Emit(varpulis_program::EmitSpec {
            items: None,
            schema,
        }));
        schema
    } else {
        let schema = b.layout("W", &["pump", "bar"]);
        ops.push(OpSpec::Emit(varpulis_program::EmitSpec {
            items: None,
            schema,
        }));
        schema
    };
    b.stream("W", input(r), ops, out);
    let mut p = (*b.build()).clone();
    p.streams[0].bounds = vec![varpulis_program::StateBound {
        op: 0,
        max_events: Some(max),
        ..Default::default()
    }];
    Engine::new(std::sync::Arc::new(p)).expect("loads")
}

#[test]
fn max_events_drops_the_oldest_events_of_a_tumbling_window() {
    let mut e = max_events_engine(WindowSpec::Tumbling { size: 10 * S }, 2, false);
    for (i, bar) in [1.0, 2.0, 3.0].iter().enumerate() {
        assert!(push(&mut e, "a", i as i64 * S, *bar).is_empty());
    }
    let win = &e.memory()[0].ops[0];
    assert_eq!((win.kind, win.evictions.fifo), ("window", 1));
    assert_eq!(
        render(&e.finish()),
        [
            "W@1000000000{pump=\"a\",bar=2.0}",
            "W@2000000000{pump=\"a\",bar=3.0}"
        ],
        "the first event went"
    );
}

#[test]
fn max_events_bounds_the_values_aggregates_keep_but_not_running_ones() {
    let mut e = max_events_engine(WindowSpec::Session { gap: 10 * S }, 3, true);
    for (i, bar) in [5.0, 1.0, 1.0, 9.0, 7.0].iter().enumerate() {
        push(&mut e, "a", i as i64 * S, *bar);
    }
    // count() saw all five; collect and median keep the last three; the
    // distinct set stops at three values (the count it reports).
    assert_eq!(
        render(&e.finish()),
        ["W@14000000000{n=5,bars=[1.0, 9.0, 7.0],med=7.0,kinds=3}"]
    );
}

#[test]
fn max_events_keeps_the_newest_events_of_a_sliding_window() {
    let mut e = max_events_engine(
        WindowSpec::Sliding {
            size: 60 * S,
            slide: 5 * S,
        },
        2,
        true,
    );
    push(&mut e, "a", 0, 1.0);
    push(&mut e, "a", S, 2.0);
    push(&mut e, "a", 2 * S, 3.0);
    assert_eq!(
        push(&mut e, "a", 5 * S, 4.0),
        ["W@5000000000{n=2,bars=[3.0, 4.0],med=3.5,kinds=2}"]
    );
    assert_eq!(e.memory()[0].ops[0].evictions.fifo, 2);
}

#[test]
fn window_drops_survive_a_snapshot_and_restore() {
    let make = || max_events_engine(WindowSpec::Tumbling { size: 100 * S }, 2, true);
    let run = |cut: Option<usize>| {
        let mut e = make();
        let mut out = Vec::new();
        for i in 0..6 {
            if cut == Some(i) {
                let bytes = e.snapshot().expect("snapshot");
                e = make();
                e.restore(&bytes).expect("restore");
            }
            out.extend(push(&mut e, "a", i as i64 * S, i as f64));
        }
        let drops = e.memory()[0].ops[0].evictions.fifo;
        out.extend(render(&e.finish()));
        (out, drops)
    };
    let straight = run(None);
    assert_eq!(straight.1, 4);
    for cut in 1..6 {
        assert_eq!(run(Some(cut)), straight, "restored before event {cut}");
    }
}

/// A partitioned sliding window aggregating `bar` with every aggregate function;
/// `plain`: the arguments read the field (folded from rows), else `bar * 1.0` (the same
/// values, read from every buffered event at each release).
fn sliding_rows_engine(plain: bool) -> Engine {
    let mut b = ProgramBuilder::new();
    let r = b.event("Reading", &["pump", "bar"]);
    let calls = [
        ("n", AggFunc::Count, None, None),
        ("total", AggFunc::Sum, Some(1), None),
        ("mean", AggFunc::Avg, Some(1), None),
        ("lo", AggFunc::Min, Some(1), None),
        ("sd", AggFunc::Stddev, Some(1), None),
        ("p90", AggFunc::Percentile, Some(1), Some(0.9)),
        ("first", AggFunc::First, Some(0), None),
        ("kinds", AggFunc::CountDistinct, Some(1), None),
        ("hi", AggFunc::Max, Some(1), None),
        ("var", AggFunc::Variance, Some(1), None),
        ("med", AggFunc::Median, Some(1), None),
        ("last", AggFunc::Last, Some(1), None),
        ("ema", AggFunc::Ema, Some(1), Some(3.0)),
        ("all", AggFunc::Collect, Some(1), None),
    ];
    let (mut agg, schema) = b.aggregate("W", &calls, Some("pump"));
    if !plain {
        if let OpSpec::Aggregate(spec) = &mut agg {
            for call in &mut spec.calls {
                if let Some(slot) = call.arg.as_ref().and_then(|c| c.plain_field()) {
                    call.arg = Some(code(
                        vec![
                            varpulis_program::Instr::LoadField(slot),
                            varpulis_program::Instr::Const(0),
                            varpulis_program::Instr::Mul,
                        ],
                        vec![Value::Float(1.0)],
                    ));
                    if slot == 0 {
                        // A string: `first(pump)` stays a field read in both engines.
                        call.arg = Some(field(0));
                    }
                }
            }
        }
    }
    let ops = vec![
        OpSpec::PartitionBy(field(0)),
        OpSpec::Window(WindowSpec::Sliding {
            size: 10 * S,
            slide: 3 * S,
        }),
        agg,
        OpSpec::Emit(varpulis_program::EmitSpec {
            items: None,
            schema,
        }),
    ];
    b.stream("W", input(r), ops, schema);
    Engine::new(b.build()).expect("loads")
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Folding a sliding window's rows of plain arguments releases what reading its buffered
    /// events releases, also across a snapshot and restore (which rebuilds the rows) and
    /// with events out of order.
    #[test]
    fn sliding_windows_fold_rows_as_they_would_read_the_events(
        events in proptest::collection::vec((0u8..3, 0i64..4_000, -50i32..50), 1..120),
        cut in proptest::option::of(0usize..120),
    ) {
        let run = |plain: bool, cut: Option<usize>| {
            let mut e = sliding_rows_engine(plain);
            let mut out = Vec::new();
            let mut t = 0;
            for (i, &(pump, step, bar)) in events.iter().enumerate() {
                if cut == Some(i) {
                    let bytes = e.snapshot().expect("snapshot");
                    e = sliding_rows_engine(plain);
                    e.restore(&bytes).expect("restore");
                }
                // Mostly forward in time; every fifth step goes back a little.
                t = if i % 5 == 4 { (t - step * 100_000).max(0) } else { t + step * 1_000_000 };
                let pump = ["a", "b", "c"][usize::from(pump)];
                out.extend(push(&mut e, pump, t, f64::from(bar) / 4.0));
            }
            out.extend(render(&e.finish()));
            out
        };
        let read = run(false, None);
        proptest::prop_assert_eq!(&run(true, None), &read);
        proptest::prop_assert_eq!(&run(true, cut), &read);
    }
}

//! Bounded keyed state end to end (docs/LANGUAGE.md#bounded-state): a stream of ever new keys
//! through `.partition_by(k, max_keys: n)` keeps at most `n` keys and a flat state size, and
//! the same stream without the bound grows with the keys and draws W0112.
//!
//! This is the CI-sized run (100 000 keys, in-engine state figures); `benches/bounded.sh`
//! streams 10 million keys through a release `varpulis run` and reports its peak RSS
//! (docs/PERFORMANCE.md, "Bounded state").

use std::sync::Arc;

use varpulis_program::{Event, Program, Value};
use varpulis_vm::Engine;

const KEYS: i64 = 100_000;
const MAX_KEYS: u64 = 1_000;

fn rules(bound: &str) -> String {
    format!(
        "event Click:\n    user: str\n    page: str\n\n\
         stream PerUser = Click\n    .partition_by(user{bound})\n    .window(10)\n    \
         .aggregate(pages: count())\n    .emit(user: user, pages: pages)\n"
    )
}

/// The program and the codes of its diagnostics.
fn compile(text: &str) -> (Program, Vec<String>) {
    let mut c = varpulis_compiler::Compiler::new();
    c.set_file("rules.vpl", text.to_string());
    let codes = c
        .check("rules.vpl")
        .iter()
        .map(|d| d.code.to_string())
        .collect();
    let program = c.program("rules.vpl").expect("the rules compile");
    (program, codes)
}

/// Streams `KEYS` clicks, each from a new user, and returns the engine.
fn stream_new_keys(program: Program) -> Engine {
    let click = program
        .schemas
        .iter()
        .position(|s| &*s.name == "Click")
        .and_then(|i| u32::try_from(i).ok())
        .expect("Click is declared");
    let mut engine = Engine::new(Arc::new(program)).expect("the program loads");
    let mut out = Vec::new();
    for i in 0..KEYS {
        let fields = vec![Some(Value::str(format!("user-{i}"))), Some(Value::str("/"))];
        engine.push_into(Event::new(click, i * 1_000_000, fields), &mut out);
        out.clear();
    }
    engine
}

#[test]
fn a_bounded_partition_keeps_its_keys_and_state_size_flat() {
    let (program, codes) = compile(&rules(&format!(", max_keys: {MAX_KEYS}")));
    assert!(codes.is_empty(), "{codes:?}");
    let engine = stream_new_keys(program);
    let memory = engine.memory();
    let ops = &memory[0].ops;
    let keys = ops
        .iter()
        .find(|o| o.kind == "partition_by")
        .expect("tracked");
    let window = ops.iter().find(|o| o.kind == "window").expect("a window");
    assert_eq!(keys.keys, MAX_KEYS);
    assert_eq!(keys.evictions.lru, KEYS as u64 - MAX_KEYS);
    assert!(window.keys <= MAX_KEYS, "{window:?}");
    // The stated figure: 1 000 keys with one open window each stay under 512 KiB.
    assert!(memory[0].bytes() < 512 * 1024, "{memory:?}");
}

#[test]
fn an_idle_bound_frees_keys_by_event_time() {
    let (program, codes) = compile(&rules(", idle: 1s"));
    assert!(codes.is_empty(), "{codes:?}");
    let engine = stream_new_keys(program);
    let memory = engine.memory();
    let keys = memory[0]
        .ops
        .iter()
        .find(|o| o.kind == "partition_by")
        .expect("tracked");
    // One click per millisecond: about a second's worth of keys is still fresh.
    assert!(keys.keys <= 1_001, "{keys:?}");
    assert!(keys.evictions.idle >= KEYS as u64 - 1_001, "{keys:?}");
}

#[test]
fn without_a_bound_the_state_grows_with_the_keys_and_check_warns() {
    let (program, codes) = compile(&rules(""));
    assert_eq!(codes, ["W0112"]);
    let engine = stream_new_keys(program);
    let memory = engine.memory();
    let window = memory[0]
        .ops
        .iter()
        .find(|o| o.kind == "window")
        .expect("a window");
    assert_eq!(window.keys, KEYS as u64);
    assert!(memory[0].bytes() > 20 * 512 * 1024, "{memory:?}");
}

/// The state figures of the operator of `kind` after `events` clicks pushed into `program`.
fn push_clicks(
    program: Program,
    kind: &str,
    events: impl Iterator<Item = (u32, i64, Vec<Option<Value>>)>,
) -> varpulis_vm::memory::OpMemory {
    let mut engine = Engine::new(Arc::new(program)).expect("the program loads");
    let mut out = Vec::new();
    for (schema, t, fields) in events {
        engine.push_into(Event::new(schema, t, fields), &mut out);
        out.clear();
    }
    let memory = engine.memory();
    memory[0]
        .ops
        .iter()
        .find(|o| o.kind == kind)
        .cloned()
        .expect("the operator reports its state")
}

fn schema(program: &Program, name: &str) -> u32 {
    program
        .schemas
        .iter()
        .position(|s| &*s.name == name)
        .and_then(|i| u32::try_from(i).ok())
        .expect("declared")
}

#[test]
fn the_host_default_bounds_partitions_that_declare_none() {
    let (mut program, _) = compile(&rules(""));
    assert_eq!(
        varpulis::limits::default_max_keys(&mut program, MAX_KEYS),
        1
    );
    let engine = stream_new_keys(program);
    let memory = engine.memory();
    let keys = memory[0]
        .ops
        .iter()
        .find(|o| o.kind == "partition_by")
        .expect("tracked");
    assert_eq!(keys.keys, MAX_KEYS);
    assert_eq!(keys.evictions.lru, KEYS as u64 - MAX_KEYS);
}

#[test]
fn max_events_keeps_a_window_that_collects_flat() {
    let text = |bound: &str| {
        format!(
            "event Click:\n    user: str\n    page: str\n\n\
             stream Pages = Click\n    .window(1h{bound})\n    \
             .aggregate(pages: collect(page), n: count())\n    .emit(pages: pages, n: n)\n"
        )
    };
    let clicks = |program: &Program| {
        let click = schema(program, "Click");
        (0..KEYS).map(move |i| {
            let fields = vec![Some(Value::str(format!("u{i}"))), Some(Value::str("/p"))];
            (click, i * 1_000_000, fields)
        })
    };
    let (program, codes) = compile(&text(", max_events: 1000"));
    assert!(codes.is_empty(), "{codes:?}");
    let events = clicks(&program);
    let bounded = push_clicks(program, "window", events);
    assert_eq!(bounded.evictions.fifo, KEYS as u64 - 1_000);
    assert!(bounded.bytes < 64 * 1024, "{bounded:?}");
    let (program, _) = compile(&text(""));
    let events = clicks(&program);
    let unbounded = push_clicks(program, "window", events);
    assert!(unbounded.bytes > 50 * bounded.bytes, "{unbounded:?}");
}

#[test]
fn max_events_bounds_each_side_of_a_join() {
    let (program, codes) = compile(
        "event Click:\n    user: str\n    page: str\n\n\
         event Buy:\n    user: str\n    amount: float\n\n\
         stream Converted = join(Click, Buy)\n    .on(Click.user == Buy.user)\n    \
         .window(1h, max_events: 1000)\n    .emit(user: Click.user, amount: Buy.amount)\n",
    );
    assert!(codes.is_empty(), "{codes:?}");
    let (click, buy) = (schema(&program, "Click"), schema(&program, "Buy"));
    let events = (0..KEYS).map(move |i| {
        let user = Some(Value::str(format!("u{i}")));
        if i % 2 == 0 {
            (click, i * 1_000_000, vec![user, Some(Value::str("/"))])
        } else {
            (buy, i * 1_000_000, vec![user, Some(Value::Float(1.0))])
        }
    });
    let join = push_clicks(program, "join", events);
    assert_eq!(join.keys, 2_000, "{join:?}");
    assert_eq!(join.evictions.fifo, KEYS as u64 - 2_000);
}

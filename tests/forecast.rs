//! `.forecast` through the whole pipeline (compiler → Program → engine):
//! streams whose answer is known (a deterministic cycle, a seeded random
//! stream), the presets, and snapshot/restore of the model.

use varpulis::input::{InputFormat, InputRecord, Records};
use varpulis::job::{Job, JobOptions};
use varpulis_program::Value;
use varpulis_vm::engine::Output;

const TYPES: &str = "
event A:
    id: int
event B:
    id: int
event C:
    id: int
";

fn job(rules: &str) -> Job {
    let mut c = varpulis_compiler::Compiler::new();
    c.set_file("rules.vpl", format!("{TYPES}\n{rules}"));
    let program = c.program("rules.vpl").expect("the rules compile");
    let options = JobOptions {
        sinks: false,
        ..JobOptions::default()
    };
    Job::new(program, options).expect("the program loads")
}

/// One event per second, of the given types.
fn events(types: &[char]) -> String {
    types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("@{i}s {t} {{ id: {i} }}\n"))
        .collect()
}

/// Runs `input`, restoring into a fresh job before record `split`.
fn run(rules: &str, input: &str, split: Option<usize>) -> Vec<Output> {
    let records: Vec<InputRecord> = Records::new(input.as_bytes(), InputFormat::Evt).collect();
    let mut j = job(rules);
    let mut out = Vec::new();
    for (i, r) in records.iter().enumerate() {
        if split == Some(i) {
            let bytes = j.engine().snapshot().expect("snapshot");
            j = job(rules);
            j.engine().restore(&bytes).expect("restore");
        }
        j.push_record(r, &mut out).expect("valid input");
    }
    j.finish(&mut out).expect("finish");
    out
}

fn value<'a>(o: &'a Output, name: &str) -> Option<&'a Value> {
    o.fields.iter().find(|(n, _)| &**n == name).map(|(_, v)| v)
}

fn float(o: &Output, name: &str) -> f64 {
    match value(o, name) {
        Some(Value::Float(f)) => *f,
        other => panic!("{name}: {other:?} in {o:?}"),
    }
}

fn text(o: &Output, name: &str) -> String {
    match value(o, name) {
        Some(Value::Str(s)) => s.to_string(),
        other => panic!("{name}: {other:?} in {o:?}"),
    }
}

fn int(o: &Output, name: &str) -> i64 {
    match value(o, name) {
        Some(Value::Int(i)) => *i,
        other => panic!("{name}: {other:?} in {o:?}"),
    }
}

/// xorshift64*, seeded: the same "random" stream on every run.
fn random_types(n: usize, mut seed: u64) -> Vec<char> {
    (0..n)
        .map(|_| {
            seed ^= seed >> 12;
            seed ^= seed << 25;
            seed ^= seed >> 27;
            let r = seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33;
            ['A', 'B', 'C'][(r % 3) as usize]
        })
        .collect()
}

const CYCLE: &str = "
stream Next = A as a
    -> B as b
    -> C as c
    .within(1m)
    .forecast(horizon: 3, confidence: 0.0)
    .emit()
";

#[test]
fn a_deterministic_cycle_is_predicted_with_probability_approaching_one() {
    let types: Vec<char> = (0..900).map(|i| ['A', 'B', 'C'][i % 3]).collect();
    let out = run(CYCLE, &events(&types), None);
    // Balanced: 100 events of warm-up, then one forecast per event.
    assert_eq!(out.len(), 900 - 99);
    let p: Vec<f64> = out
        .iter()
        .map(|o| float(o, "forecast_probability"))
        .collect();
    let early: f64 = p[..30].iter().sum::<f64>() / 30.0;
    let late: f64 = p[p.len() - 30..].iter().sum::<f64>() / 30.0;
    assert!(early < late, "{early} {late}");
    assert!(p[p.len() - 30..].iter().all(|p| *p > 0.99), "{late}");
    let last = out.last().expect("forecasts");
    // The last event is a C: the sequence just completed; the next
    // completion is three events (three seconds) away.
    assert_eq!(text(last, "forecast_state"), "complete");
    let t = int(last, "forecast_time");
    assert!((t - 3_000_000_000).abs() < 300_000_000, "{t}");
    assert!(int(last, "forecast_context_depth") >= 1);
    assert!(float(last, "forecast_lower") <= float(last, "forecast_probability"));
    assert!(float(last, "forecast_upper") >= float(last, "forecast_probability"));
    // The raw event's fields come along.
    assert_eq!(int(last, "id"), 899);
}

#[test]
fn a_random_stream_stays_near_its_base_rate() {
    // `A -> B` reads A and B events only (C never reaches it): once an A
    // opened a run, the next event it sees is a B (completing it) with
    // probability 1/2, whatever came before.
    let rules = "
stream Next = A as a
    -> B as b
    .within(1h)
    .forecast(horizon: 1, confidence: 0.0)
    .emit()
";
    let types = random_types(6000, 0x5eed_1234_abcd_0001);
    let out = run(rules, &events(&types), None);
    let waiting: Vec<f64> = out
        .iter()
        .skip(500)
        .filter(|o| text(o, "forecast_state") == "a")
        .map(|o| float(o, "forecast_probability"))
        .collect();
    assert!(waiting.len() > 1000, "{}", waiting.len());
    let mean = waiting.iter().sum::<f64>() / waiting.len() as f64;
    assert!((mean - 0.5).abs() < 0.05, "{mean}");
    // Over all states, the mean prediction matches how often the next
    // event completed a match.
    let p: Vec<f64> = out
        .iter()
        .map(|o| float(o, "forecast_probability"))
        .collect();
    let hits = out
        .iter()
        .skip(1)
        .filter(|o| text(o, "forecast_state") == "complete")
        .count();
    let rate = hits as f64 / (out.len() - 1) as f64;
    let mean_all = p[..p.len() - 1].iter().sum::<f64>() / (p.len() - 1) as f64;
    assert!((mean_all - rate).abs() < 0.03, "{mean_all} vs {rate}");
}

#[test]
fn presets_set_the_warm_up_and_the_intervals() {
    let types: Vec<char> = (0..300).map(|i| ['A', 'B', 'C'][i % 3]).collect();
    let input = events(&types);
    for (mode, warmup) in [("fast", 50), ("balanced", 100), ("accurate", 200)] {
        let rules = format!(
            "stream Next = A as a -> B as b -> C as c .within(1m) .forecast(mode: {mode}, confidence: 0.0) .emit()"
        );
        let out = run(&rules, &input, None);
        assert_eq!(out.len(), 300 - warmup + 1, "{mode}");
        let point = out
            .iter()
            .all(|o| float(o, "forecast_lower") == float(o, "forecast_upper"));
        // fast has no conformal intervals; the others start with [0, 1]
        // until enough outcomes are known.
        assert_eq!(point, mode == "fast", "{mode}");
    }
}

#[test]
fn the_confidence_threshold_keeps_only_likely_completions() {
    let types: Vec<char> = (0..300).map(|i| ['A', 'B', 'C'][i % 3]).collect();
    let rules = "
stream Next = A as a
    -> B as b
    -> C as c
    .within(1m)
    .forecast(mode: fast, horizon: 1, confidence: 0.9)
    .emit()
";
    let out = run(rules, &events(&types), None);
    assert!(!out.is_empty());
    // Only after a B is the completion one event away.
    assert!(out.iter().all(|o| text(o, "forecast_state") == "b"));
}

#[test]
fn workers_refuse_a_forecast_whose_model_spans_keys() {
    let mut c = varpulis_compiler::Compiler::new();
    let rules = "
stream Next = A as a
    -> B as b
    .partition_by(id)
    .within(1m)
    .forecast()
    .emit()
";
    c.set_file("rules.vpl", format!("{TYPES}\n{rules}"));
    let program = c.program("rules.vpl").expect("the rules compile");
    let why = varpulis::parallel::plan(&program)
        .expect_err("refused")
        .to_string();
    assert!(
        why.contains("stream `Next`") && why.contains(".forecast"),
        "{why}"
    );
}

#[test]
fn a_partitioned_forecast_survives_snapshot_and_restore_at_any_point() {
    let rules = "
stream Next = A as a
    -> B as b
    -> C as c
    .partition_by(id)
    .within(1m)
    .forecast(warmup: 20, confidence: 0.0)
    .emit()
";
    let types = random_types(240, 77);
    let input: String = types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("@{i}s {t} {{ id: {} }}\n", i % 4))
        .collect();
    let straight = run(rules, &input, None);
    assert!(straight.len() > 150);
    for split in [1, 25, 90, 170, 239] {
        assert_eq!(run(rules, &input, Some(split)), straight, "split {split}");
    }
}

#[test]
fn the_model_counts_in_the_engine_memory_estimate() {
    let bytes = |rules: &str| {
        let types: Vec<char> = (0..300).map(|i| ['A', 'B', 'C'][i % 3]).collect();
        let records: Vec<InputRecord> =
            Records::new(events(&types).as_bytes(), InputFormat::Evt).collect();
        let mut j = job(rules);
        let mut out = Vec::new();
        for r in &records {
            j.push_record(r, &mut out).expect("valid input");
        }
        j.engine()
            .memory()
            .iter()
            .find(|s| &*s.stream == "Next")
            .map_or(0, |s| s.bytes())
    };
    let plain = bytes("stream Next = A as a -> B as b -> C as c .within(1m) .emit()");
    let forecast = bytes(CYCLE);
    assert!(forecast > plain + 1000, "{forecast} vs {plain}");
}

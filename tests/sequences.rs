//! Sequences through the whole pipeline (compiler → Program → engine):
//! snapshot and restore with runs open at every split point, and the
//! matcher counters in the engine's metrics.

use varpulis::input::{InputFormat, InputRecord, Records};
use varpulis::job::{Job, JobOptions};
use varpulis_vm::engine::Output;

const RULES: &str = "
event A:
    k: str
    v: int

event B:
    k: str
    v: int

event C:
    k: str

stream Pairs = A as a
    -> all B where v > a.v as bs
    -> A as z
    .within(1m)
    .not(C)
    .partition_by(k)
    .emit(k: a.k, n: len(bs), total: sum(bs.v), first: first(bs).v, last: bs.v)
";

const INPUT: &str = r#"
@0s A { k: "x", v: 1 }
@1s A { k: "y", v: 5 }
@2s B { k: "x", v: 3 }
@3s B { k: "y", v: 2 }
@4s B { k: "x", v: 4 }
@5s B { k: "y", v: 9 }
@6s C { k: "y" }
@7s A { k: "x", v: 0 }
@8s B { k: "x", v: 7 }
@70s A { k: "x", v: 2 }
"#;

fn job() -> Job {
    let mut c = varpulis_compiler::Compiler::new();
    c.set_file("rules.vpl", RULES.to_string());
    let program = c.program("rules.vpl").expect("the rules compile");
    let options = JobOptions {
        sinks: false,
        ..JobOptions::default()
    };
    Job::new(program, options).expect("the program loads")
}

/// Runs the input, restoring into a fresh job before record `split`.
fn run(split: Option<usize>) -> Vec<Output> {
    let records: Vec<InputRecord> = Records::new(INPUT.as_bytes(), InputFormat::Evt).collect();
    let mut j = job();
    let mut out = Vec::new();
    for (i, r) in records.iter().enumerate() {
        if split == Some(i) {
            let bytes = j.engine().snapshot().expect("snapshot");
            j = job();
            j.engine().restore(&bytes).expect("restore");
        }
        j.push_record(r, &mut out).expect("valid input");
    }
    j.finish(&mut out).expect("finish");
    out
}

fn field(o: &Output, name: &str) -> String {
    o.fields
        .iter()
        .find(|(n, _)| &**n == name)
        .map_or_else(String::new, |(_, v)| v.to_string())
}

#[test]
fn kleene_aliases_negation_and_partitions_give_the_documented_matches() {
    let out = run(None);
    let got: Vec<String> = out
        .iter()
        .map(|o| {
            format!(
                "{}@{} n={} total={} first={} last={}",
                field(o, "k"),
                o.time / 1_000_000_000,
                field(o, "n"),
                field(o, "total"),
                field(o, "first"),
                field(o, "last")
            )
        })
        .collect();
    // x: the run from A(1) takes B3, B4 and completes on A(0) at 7s; the
    // run A(0) opened takes B7 but its closing A comes after its deadline.
    // y: the run from A(5) skips B2, takes B9, and C kills it.
    assert_eq!(got, ["x@7 n=2 total=7.0 first=3 last=4"]);
}

#[test]
fn snapshot_and_restore_with_open_runs_gives_the_same_output_at_every_split() {
    let straight = run(None);
    for split in 0..10 {
        assert_eq!(run(Some(split)), straight, "restored before record {split}");
    }
}

#[test]
fn matcher_counters_show_in_engine_metrics() {
    let records: Vec<InputRecord> = Records::new(INPUT.as_bytes(), InputFormat::Evt).collect();
    let mut j = job();
    let mut out = Vec::new();
    for r in records.iter().take(9) {
        j.push_record(r, &mut out).expect("valid input");
    }
    let m = j.engine().metrics().patterns;
    // Open: only x's run from A(0), holding B7; the completed run is gone
    // and C killed y's.
    assert_eq!(m.matches, 1);
    assert_eq!(m.killed, 1);
    assert_eq!(m.active_runs, 1);
    j.push_record(&records[9], &mut out).expect("valid input");
    j.finish(&mut out).expect("finish");
    let m = j.engine().metrics().patterns;
    // A(0)'s run expired when A(2) arrived after its deadline; the run A(2)
    // opened expires at the end of input.
    assert_eq!(m.active_runs, 0);
    assert_eq!(m.expired, 2);
}

/// Runs `rules` over `input` and returns the outputs and the job.
fn run_rules(rules: &str, input: &str) -> (Vec<Output>, Job) {
    let mut c = varpulis_compiler::Compiler::new();
    c.set_file("limits.vpl", rules.to_string());
    let program = c.program("limits.vpl").expect("the rules compile");
    let options = JobOptions {
        sinks: false,
        ..JobOptions::default()
    };
    let mut j = Job::new(program, options).expect("the program loads");
    let mut out = Vec::new();
    for r in Records::new(input.as_bytes(), InputFormat::Evt) {
        j.push_record(&r, &mut out).expect("valid input");
    }
    j.finish(&mut out).expect("finish");
    (out, j)
}

#[test]
fn limit_runs_evicts_or_rejects_and_counts_it_in_engine_metrics() {
    let input = "@0s A { id: \"A1\" }\n@1s A { id: \"A2\" }\n@2s B { id: \"B1\" }\n";
    let rules = |limit: &str| {
        format!(
            "event A:\n    id: str\n\nevent B:\n    id: str\n\n\
             stream P = A as a\n    -> B as b\n    .within(1m)\n    {limit}\n    \
             .emit(a: a.id, b: b.id)\n"
        )
    };
    let (out, mut j) = run_rules(&rules(".limit_runs(1)"), input);
    let got: Vec<String> = out.iter().map(|o| field(o, "a")).collect();
    assert_eq!(got, ["A2"]);
    let m = j.engine().metrics().patterns;
    assert_eq!((m.evicted, m.rejected), (1, 0));

    let (out, mut j) = run_rules(&rules(".limit_runs(1, on_full: reject_new)"), input);
    let got: Vec<String> = out.iter().map(|o| field(o, "a")).collect();
    assert_eq!(got, ["A1"]);
    let m = j.engine().metrics().patterns;
    assert_eq!((m.evicted, m.rejected), (0, 1));

    // `total:` bounds runs over all keys (here one key, so it wins at 1).
    let (out, mut j) = run_rules(&rules(".limit_runs(5, total: 5)"), input);
    assert_eq!(out.len(), 2);
    assert_eq!(j.engine().metrics().patterns.evicted, 0);
}

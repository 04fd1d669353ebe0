//! Unit tests of the matcher: the examples of docs/LANGUAGE.md#sequence-steps and docs/PATTERNS.md, Kleene, negation,
//! absence, AND/OR, partitions, policies, limits and snapshots.
//!
//! Events are written `A1`, `B2=5/k1@30`: type = first letter (`A` = input
//! 0, `B` = 1, …), id = the name, optional value after `=`, optional
//! partition key after `/`, time in seconds after `@`. A match prints as the
//! ids bound to each alias (`+` between Kleene events, `_` when unbound)
//! and `@time` (`!` marks an absence completed at its deadline).

use super::*;
use std::sync::Arc;
use varpulis_program::{Event, Kleene, Value, ValueKey};

const S: i64 = 1_000_000_000;

/// Parses one event token (see the module docs).
pub(super) fn ev(tok: &str) -> (Arc<Event>, Option<ValueKey>) {
    let (body, secs) = tok.split_once('@').expect("token has @time");
    let (body, key) = match body.split_once('/') {
        Some((b, k)) => (b, Some(k)),
        None => (body, None),
    };
    let (id, v) = match body.split_once('=') {
        Some((i, v)) => (i, v.parse::<i64>().expect("int value")),
        None => (body, 0),
    };
    let ty = u32::from(id.as_bytes()[0] - b'A');
    let t = secs.parse::<i64>().expect("seconds") * S;
    let key = key.map(|k| ValueKey(Value::str(k)));
    let fields = vec![
        Some(Value::str(id)),
        Some(Value::Int(v)),
        key.as_ref().map(|k| k.0.clone()),
    ];
    (Arc::new(Event::new(ty, t, fields)), key)
}

pub(super) fn id(e: &Event) -> &str {
    e.get(0).and_then(Value::as_str).expect("id field")
}

pub(super) fn val(e: &Event) -> i64 {
    match e.get(1) {
        Some(Value::Int(v)) => *v,
        _ => 0,
    }
}

fn ty(c: char) -> InputIx {
    u32::from(c as u8 - b'A')
}

fn step(t: char, k: Kleene, alias: u16, filtered: bool) -> StepSpec {
    StepSpec {
        input: ty(t),
        kleene: k,
        alias: Some(alias),
        has_filter: filtered,
    }
}

/// A SEQ of `(type, kleene)` steps, alias i on step i, no filters.
fn seq(steps: &[(char, Kleene)]) -> MatcherSpec {
    let v: Vec<StepSpec> = steps
        .iter()
        .enumerate()
        .map(|(i, &(t, k))| step(t, k, i as u16, false))
        .collect();
    let n = v.len() as u16;
    MatcherSpec::seq(v, n)
}

fn render(m: &Match) -> String {
    let mut s = String::new();
    for a in 0..m.bindings.aliases() as u16 {
        let ids: Vec<String> = m
            .bindings
            .to_vec(a)
            .iter()
            .map(|e| id(e).to_string())
            .collect();
        s.push_str(&if ids.is_empty() {
            "_".to_string()
        } else {
            ids.join("+")
        });
        s.push(' ');
    }
    s.push_str(&format!("@{}", m.time / S));
    if m.absence {
        s.push('!');
    }
    s
}

/// Feeds `events` (advancing the watermark to each event's time first, as
/// the engine does, and to +∞ at the end) and renders the matches.
fn drive<P: Predicates>(m: &mut Matcher, events: &str, preds: &mut P) -> Vec<String> {
    drive_wm(m, events, preds, true)
}

fn drive_wm<P: Predicates>(
    m: &mut Matcher,
    events: &str,
    preds: &mut P,
    watermarks: bool,
) -> Vec<String> {
    let mut out = Output::default();
    let mut res = Vec::new();
    for tok in events.split_whitespace() {
        let (e, key) = ev(tok);
        if watermarks && m.next_timer().is_some_and(|d| d <= e.time) {
            m.on_watermark(e.time, &mut out);
        }
        m.on_event(e.type_id, key.as_ref(), &e, preds, &mut out);
        res.extend(out.matches.drain(..).map(|x| render(&x)));
    }
    if watermarks {
        m.on_watermark(i64::MAX, &mut out);
        res.extend(out.matches.drain(..).map(|x| render(&x)));
    }
    res
}

fn no_filters() -> impl Predicates {
    FnPredicates(
        |_: usize, _: &Event, _: &Bindings| true,
        |_: usize, _: &Event, _: &Bindings| true,
    )
}

/// The one-call check: a spec, its events, the expected matches.
fn check(spec: MatcherSpec, events: &str, expect: &[&str]) {
    let mut m = Matcher::new(spec, Limits::default()).expect("valid spec");
    assert_eq!(drive(&mut m, events, &mut no_filters()), expect);
}

fn within(mut s: MatcherSpec, secs: i64) -> MatcherSpec {
    s.within = Some(secs * S);
    s
}

const ONE: Kleene = Kleene::One;
const PLUS: Kleene = Kleene::Plus;

#[test]
fn each_start_opens_a_run_and_binds_the_earliest_b() {
    let ab = seq(&[('A', ONE), ('B', ONE)]);
    check(ab.clone(), "A1@0 B1@1 A2@2 B2@3", &["A1 B1 @1", "A2 B2 @3"]);
    check(ab.clone(), "A1@0 A2@1 B1@2", &["A1 B1 @2", "A2 B1 @2"]);
    check(ab, "B0@0 A1@1 C1@2 C2@3 B1@4", &["A1 B1 @4"]);
}

#[test]
fn an_event_completes_one_run_and_starts_the_next() {
    // L as x -> L where u == x.u as y (all the same u).
    let mut spec = seq(&[('L', ONE), ('L', ONE)]);
    spec.steps[1].has_filter = true;
    let mut m = Matcher::new(spec, Limits::default()).expect("valid");
    let mut p = FnPredicates(
        |_: usize, e: &Event, b: &Bindings| b.get(0).is_some_and(|x| val(x) == val(e)),
        |_: usize, _: &Event, _: &Bindings| true,
    );
    let got = drive(&mut m, "L1=7@0 L2=7@10 L3=7@20", &mut p);
    assert_eq!(got, ["L1 L2 @10", "L2 L3 @20"]);
}

#[test]
fn runs_expire_on_arrival_even_before_the_watermark() {
    let ab = within(seq(&[('A', ONE), ('B', ONE)]), 60);
    let mut m = Matcher::new(ab.clone(), Limits::default()).expect("valid");
    let got = drive_wm(&mut m, "A1@0 B1@90 A2@100 B2@130", &mut no_filters(), false);
    assert_eq!(got, ["A2 B2 @130"]);
    check(ab.clone(), "A1@0 A2@40 B1@70", &["A2 B1 @70"]);
    // The deadline is exclusive: `within 60s` ends at 60s.
    check(ab, "A1@0 B1@60 A2@61 B2@120", &["A2 B2 @120"]);
}

#[test]
fn trailing_kleene_emits_a_growing_match_per_event() {
    let sk = within(seq(&[('S', ONE), ('T', PLUS)]), 60);
    check(
        sk.clone(),
        "S1@0 T1@1 T2@2 T3@3",
        &["S1 T1 @1", "S1 T1+T2 @2", "S1 T1+T2+T3 @3"],
    );
    check(
        sk.clone(),
        "S1@0 S2@1 T1@2 T2@3",
        &["S1 T1 @2", "S2 T1 @2", "S1 T1+T2 @3", "S2 T1+T2 @3"],
    );
    check(
        sk.clone(),
        "S1@0 T1@10 T2@70 S2@80 T3@90",
        &["S1 T1 @10", "S2 T3 @90"],
    );
    check(sk, "S1@0 N1@10 N2@20", &[]);
}

#[test]
fn inner_kleene_accumulates_until_the_next_step_completes() {
    let ske = within(seq(&[('S', ONE), ('T', PLUS), ('E', ONE)]), 60);
    check(
        ske.clone(),
        "S1@0 T1@1 T2@2 T3@3 E1@4",
        &["S1 T1+T2+T3 E1 @4"],
    );
    // One step is needed before End qualifies; the run is removed after.
    check(ske.clone(), "S1@0 E1@1 T1@2 E2@3 E3@4", &["S1 T1 E2 @3"]);
    check(
        ske,
        "S1@0 T1@30 E1@70 S2@100 T2@110 E2@120",
        &["S2 T2 E2 @120"],
    );
}

#[test]
fn kleene_filter_on_the_start_alias_skips_lower_steps() {
    let mut spec = within(seq(&[('S', ONE), ('T', PLUS), ('E', ONE)]), 60);
    spec.steps[1].has_filter = true;
    let mut m = Matcher::new(spec, Limits::default()).expect("valid");
    let mut p = FnPredicates(
        |_: usize, e: &Event, b: &Bindings| b.get(0).is_some_and(|s| val(e) > val(s)),
        |_: usize, _: &Event, _: &Bindings| true,
    );
    let got = drive(&mut m, "S1=5@0 T1=3@1 T2=7@2 T3=4@3 T4=9@4 E1@5", &mut p);
    assert_eq!(got, ["S1 T2+T4 E1 @5"]);
}

#[test]
fn the_following_step_wins_over_more_kleene() {
    // S -> all T -> T where v > 100: the big T ends the run.
    let mut spec = seq(&[('S', ONE), ('T', PLUS), ('T', ONE)]);
    spec.steps[2].has_filter = true;
    let mut m = Matcher::new(spec, Limits::default()).expect("valid");
    let mut p = FnPredicates(
        |_: usize, e: &Event, _: &Bindings| val(e) > 100,
        |_: usize, _: &Event, _: &Bindings| true,
    );
    let got = drive(&mut m, "S1@0 T1=1@1 T2=2@2 T3=200@3 T4=300@4", &mut p);
    assert_eq!(got, ["S1 T1+T2 T3 @3"]);
}

#[test]
fn star_and_optional_steps() {
    let star = seq(&[('S', ONE), ('T', Kleene::Star), ('E', ONE)]);
    check(star.clone(), "S1@0 E1@1", &["S1 _ E1 @1"]);
    check(star, "S1@0 T1@1 T2@2 E1@3", &["S1 T1+T2 E1 @3"]);
    let opt = seq(&[('S', ONE), ('T', Kleene::Optional), ('E', ONE)]);
    check(opt.clone(), "S1@0 E1@1", &["S1 _ E1 @1"]);
    check(opt, "S1@0 T1@1 T2@2 E1@3", &["S1 T1 E1 @3"]);
    // A trailing optional completes at once and again with its event.
    let tail = seq(&[('A', ONE), ('B', Kleene::Optional)]);
    check(tail, "A1@0 B1@1 B2@2", &["A1 _ @0", "A1 B1 @1"]);
}

#[test]
fn not_between_steps_kills_only_runs_it_matches() {
    // SEQ(Request as r, NOT Cancel where id == r.id, Reply where id == r.id)
    let mut spec = within(seq(&[('R', ONE), ('P', ONE)]), 300);
    spec.steps[1].has_filter = true;
    spec.negations.push(NegationSpec {
        input: ty('C'),
        has_filter: true,
        after_step: Some(0),
    });
    let mut m = Matcher::new(spec, Limits::default()).expect("valid");
    let same = |e: &Event, b: &Bindings| b.get(0).is_some_and(|r| val(r) == val(e));
    let mut p = FnPredicates(
        move |_: usize, e: &Event, b: &Bindings| same(e, b),
        move |_: usize, e: &Event, b: &Bindings| same(e, b),
    );
    let got = drive(
        &mut m,
        "R1=1@0 C1=1@10 P1=1@20 R2=2@30 P2=2@40 R3=3@50 C2=9@55 P3=3@60",
        &mut p,
    );
    assert_eq!(got, ["R2 P2 @40", "R3 P3 @60"]);
    assert_eq!(m.metrics().killed, 1);
}

#[test]
fn dot_not_kills_open_runs_of_its_partition_only() {
    let mut spec = within(seq(&[('O', ONE), ('S', ONE)]), 3600);
    spec.negations.push(NegationSpec {
        input: ty('C'),
        has_filter: false,
        after_step: None,
    });
    check(
        spec,
        "O1/c1@0 O2/c2@60 C1/c2@120 S1/c1@180 S2/c2@240",
        &["O1 S1 @180"],
    );
}

fn absence(steps: &[(char, Kleene)], secs: i64) -> MatcherSpec {
    let mut spec = within(seq(steps), secs);
    spec.negations.push(NegationSpec {
        input: ty('X'),
        has_filter: true,
        after_step: Some(steps.len() as u16 - 1),
    });
    spec
}

fn same_val_as_first() -> impl Predicates {
    let same = |e: &Event, b: &Bindings| b.get(0).is_some_and(|r| val(r) == val(e));
    FnPredicates(
        move |_: usize, e: &Event, b: &Bindings| same(e, b),
        move |_: usize, e: &Event, b: &Bindings| same(e, b),
    )
}

#[test]
fn trailing_not_completes_at_the_deadline() {
    let spec = absence(&[('O', ONE)], 7200);
    let mut m = Matcher::new(spec.clone(), Limits::default()).expect("valid");
    let got = drive(
        &mut m,
        "O1=1@0 O2=2@600 X1=2@1800",
        &mut same_val_as_first(),
    );
    assert_eq!(got, ["O1 @7200!"]);
    // A later event past the deadline: the absence comes out first,
    // stamped with its deadline, even if no watermark was delivered.
    let mut m = Matcher::new(spec, Limits::default()).expect("valid");
    let got = drive_wm(&mut m, "O1=1@0 O2=2@10800", &mut same_val_as_first(), false);
    assert_eq!(got, ["O1 @7200!"]);
    assert_eq!(m.metrics().absences, 1);
}

#[test]
fn trailing_not_after_two_steps_counts_from_the_first_event() {
    let mut spec = absence(&[('L', ONE), ('T', ONE)], 600);
    spec.steps[1].has_filter = true;
    let mut m = Matcher::new(spec, Limits::default()).expect("valid");
    let got = drive(
        &mut m,
        "L1=1@0 T1=1@60 L2=2@120 T2=2@180 X1=2@240",
        &mut same_val_as_first(),
    );
    assert_eq!(got, ["L1 T1 @600!"]);
}

#[test]
fn absence_needs_within() {
    let mut spec = seq(&[('A', ONE)]);
    spec.negations.push(NegationSpec {
        input: ty('X'),
        has_filter: false,
        after_step: Some(0),
    });
    assert_eq!(
        Matcher::new(spec, Limits::default()).err(),
        Some(SpecError::AbsenceWithoutWithin)
    );
}

/// `A as a AND B as b`-style pattern over one-step SEQs.
fn combine(and: bool, types: &[char]) -> MatcherSpec {
    let mut spec = seq(&types.iter().map(|&t| (t, ONE)).collect::<Vec<_>>());
    let kids = (0..types.len() as u16)
        .map(|i| PatternNode::Seq(i..i + 1))
        .collect();
    spec.root = if and {
        PatternNode::And(kids)
    } else {
        PatternNode::Or(kids)
    };
    spec
}

#[test]
fn and_matches_both_orders_and_expires() {
    let and = within(combine(true, &['B', 'F']), 60);
    check(and.clone(), "B1/d1@0 F1/d1@10", &["B1 F1 @10"]);
    check(and.clone(), "F1/d1@0 B1/d1@10", &["B1 F1 @10"]);
    check(and, "B1/d1@0 F1/d1@90 B2/d1@100", &["B2 F1 @100"]);
}

#[test]
fn or_completes_with_the_first_branch() {
    let or = within(combine(false, &['C', 'M']), 60);
    check(or, "C1@0 R1@5 M1@10", &["C1 _ @0", "_ M1 @10"]);
    // SEQ(T, F where id == t.id) OR SEQ(T, C where id == t2.id)
    let mut spec = within(seq(&[('T', ONE), ('F', ONE), ('T', ONE), ('C', ONE)]), 3600);
    spec.steps[1].has_filter = true;
    spec.steps[3].has_filter = true;
    spec.root = PatternNode::Or(vec![PatternNode::Seq(0..2), PatternNode::Seq(2..4)]);
    let mut m = Matcher::new(spec, Limits::default()).expect("valid");
    let mut p = FnPredicates(
        |s: usize, e: &Event, b: &Bindings| {
            let start = if s == 1 { 0 } else { 2 };
            b.get(start).is_some_and(|t| val(t) == val(e))
        },
        |_: usize, _: &Event, _: &Bindings| true,
    );
    let got = drive(
        &mut m,
        "T1=1@0 C1=1@600 T2=2@1200 F1=2@1800 C2=2@2400",
        &mut p,
    );
    // Both branches start on the ticket; the first to complete wins.
    assert_eq!(got, ["T1 _ T1 C1 @600", "T2 F1 T2 _ @1800"]);
}

#[test]
fn nested_and_of_seq_and_or() {
    // SEQ(Login, Transfer) AND (Sms OR Email)
    let mut spec = within(seq(&[('L', ONE), ('T', ONE), ('S', ONE), ('E', ONE)]), 600);
    spec.root = PatternNode::And(vec![
        PatternNode::Seq(0..2),
        PatternNode::Or(vec![PatternNode::Seq(2..3), PatternNode::Seq(3..4)]),
    ]);
    check(spec, "L1@0 S1@60 T1@120", &["L1 T1 S1 _ @120"]);
}

#[test]
fn partitions_run_independently() {
    let ab = within(seq(&[('L', ONE), ('P', ONE)]), 300);
    check(
        ab,
        "L1/u1@0 L2/u2@10 P1/u2@20 P2/u1@30",
        &["L2 P1 @20", "L1 P2 @30"],
    );
}

fn with_selection(s: Selection) -> MatcherSpec {
    let mut spec = seq(&[('A', ONE), ('B', ONE)]);
    spec.selection = s;
    spec
}

#[test]
fn strict_contiguity_needs_adjacent_events() {
    let spec = with_selection(Selection::StrictContiguity);
    check(spec.clone(), "A1@0 A2@1 B1@2", &["A2 B1 @2"]);
    check(spec, "A1@0 B1@1 B2@2", &["A1 B1 @1"]);
}

#[test]
fn skip_till_next_match_uses_each_event_once() {
    let spec = with_selection(Selection::SkipTillNextMatch);
    check(
        spec.clone(),
        "A1@0 A2@1 B1@2 B2@3",
        &["A1 B1 @2", "A2 B2 @3"],
    );
    let mut ll = seq(&[('L', ONE), ('L', ONE)]);
    ll.selection = Selection::SkipTillNextMatch;
    check(ll, "L1@0 L2@1 L3@2 L4@3", &["L1 L2 @1", "L3 L4 @3"]);
}

#[test]
fn skip_till_any_match_gives_every_combination() {
    let spec = with_selection(Selection::SkipTillAnyMatch);
    check(spec, "A1@0 B1@1 B2@2", &["A1 B1 @1", "A1 B2 @2"]);
    let mut k = seq(&[('A', ONE), ('B', PLUS), ('C', ONE)]);
    k.selection = Selection::SkipTillAnyMatch;
    check(
        k,
        "A1@0 B1@1 B2@2 C1@3",
        &["A1 B1 C1 @3", "A1 B2 C1 @3", "A1 B1+B2 C1 @3"],
    );
}

#[test]
fn skip_till_any_match_is_capped() {
    let mut k = seq(&[('A', ONE), ('B', PLUS), ('C', ONE)]);
    k.selection = Selection::SkipTillAnyMatch;
    let limits = Limits {
        max_runs_per_partition: 8,
        ..Limits::default()
    };
    let mut m = Matcher::new(k, limits).expect("valid");
    let evs = "A1@0 B1@1 B2@2 B3@3 B4@4 B5@5 C1@6";
    let got = drive(&mut m, evs, &mut no_filters());
    // Unbounded, every non-empty subset of the five Bs would match (31).
    assert!(!got.is_empty() && got.len() < 31, "{got:?}");
    assert!(m.metrics().capped > 0);
    assert!(m.metrics().active_runs <= 8);
}

#[test]
fn run_limits_evict_the_oldest_or_reject_the_new() {
    let ab = seq(&[('A', ONE), ('B', ONE)]);
    let lim = Limits {
        max_runs_per_partition: 2,
        ..Limits::default()
    };
    let mut m = Matcher::new(ab.clone(), lim).expect("valid");
    let got = drive(&mut m, "A1@0 A2@1 A3@2 B1@3", &mut no_filters());
    assert_eq!(got, ["A2 B1 @3", "A3 B1 @3"]);
    assert_eq!(m.metrics().evicted, 1);
    let lim = Limits {
        max_runs_per_partition: 2,
        eviction: Eviction::RejectNew,
        ..Limits::default()
    };
    let mut m = Matcher::new(ab.clone(), lim).expect("valid");
    let got = drive(&mut m, "A1@0 A2@1 A3@2 B1@3", &mut no_filters());
    assert_eq!(got, ["A1 B1 @3", "A2 B1 @3"]);
    assert_eq!(m.metrics().rejected, 1);
    // The overall limit evicts the oldest run of any partition.
    let lim = Limits {
        max_runs: 2,
        ..Limits::default()
    };
    let mut m = Matcher::new(ab, lim).expect("valid");
    let got = drive(
        &mut m,
        "A1/x@0 A2/y@1 A3/z@2 B1/x@3 B2/y@4 B3/z@5",
        &mut no_filters(),
    );
    assert_eq!(got, ["A2 B2 @4", "A3 B3 @5"]);
    assert_eq!(m.metrics().evicted, 1);
}

#[test]
fn kleene_accumulation_is_capped() {
    let lim = Limits {
        max_kleene_events: 2,
        ..Limits::default()
    };
    let mut m = Matcher::new(seq(&[('S', ONE), ('T', PLUS)]), lim).expect("valid");
    let got = drive(&mut m, "S1@0 T1@1 T2@2 T3@3", &mut no_filters());
    assert_eq!(got, ["S1 T1 @1", "S1 T1+T2 @2"]);
    assert_eq!(m.metrics().capped, 1);
}

#[test]
fn matches_per_event_are_capped() {
    let lim = Limits {
        max_matches_per_event: 2,
        ..Limits::default()
    };
    let mut m = Matcher::new(seq(&[('A', ONE), ('B', ONE)]), lim).expect("valid");
    let got = drive(&mut m, "A1@0 A2@1 A3@2 B1@3", &mut no_filters());
    assert_eq!(got, ["A1 B1 @3", "A2 B1 @3"]);
    assert_eq!(m.metrics().capped, 1);
    assert_eq!(m.metrics().active_runs, 0);
}

#[test]
fn expired_runs_go_to_the_timeout_output_with_their_events() {
    let mut spec = within(seq(&[('S', ONE), ('T', PLUS), ('E', ONE)]), 60);
    spec.timeouts = true;
    let mut m = Matcher::new(spec, Limits::default()).expect("valid");
    let mut out = Output::default();
    let mut p = no_filters();
    for tok in ["S1@0", "T1@10", "T2@20", "S2@30"] {
        let (e, k) = ev(tok);
        m.on_event(e.type_id, k.as_ref(), &e, &mut p, &mut out);
    }
    assert_eq!(m.next_timer(), Some(60 * S));
    m.on_watermark(60 * S, &mut out);
    assert_eq!(out.timeouts.len(), 1);
    let t = &out.timeouts[0];
    assert_eq!(t.deadline, 60 * S);
    assert_eq!(t.bindings.count(1), 2);
    assert_eq!(t.bindings.first(1).map(|e| id(e)), Some("T1"));
    assert_eq!(m.metrics().active_runs, 1);
    m.on_watermark(i64::MAX, &mut out);
    assert_eq!(out.timeouts.len(), 2);
    assert_eq!(m.metrics().expired, 2);
    assert_eq!(m.next_timer(), None);
}

#[test]
fn timers_fire_by_deadline_across_partitions() {
    let spec = absence(&[('A', ONE)], 10);
    let mut m = Matcher::new(spec, Limits::default()).expect("valid");
    let got = drive(&mut m, "A1/p@0 A2/q@1 A3/p@2 A4/r@3", &mut no_filters());
    assert_eq!(got, ["A1 @10!", "A2 @11!", "A3 @12!", "A4 @13!"]);
}

/// Runs `events` straight through, and split at every point with a
/// snapshot (through CBOR) and a restore into a fresh matcher.
fn check_restore(spec: MatcherSpec, events: &str) {
    let toks: Vec<&str> = events.split_whitespace().collect();
    let mut straight = Matcher::new(spec.clone(), Limits::default()).expect("valid");
    let want = drive(&mut straight, events, &mut same_val_as_first());
    for cut in 0..=toks.len() {
        let mut got = Vec::new();
        let mut a = Matcher::new(spec.clone(), Limits::default()).expect("valid");
        let mut out = Output::default();
        let mut p = same_val_as_first();
        for tok in &toks[..cut] {
            let (e, k) = ev(tok);
            if a.next_timer().is_some_and(|d| d <= e.time) {
                a.on_watermark(e.time, &mut out);
            }
            a.on_event(e.type_id, k.as_ref(), &e, &mut p, &mut out);
        }
        got.extend(out.matches.drain(..).map(|x| render(&x)));
        let bytes = crate::ops::encode(&a.snapshot())
            .expect("encodes")
            .expect("has state");
        let mut b = Matcher::new(spec.clone(), Limits::default()).expect("valid");
        b.restore(crate::ops::decode(&bytes).expect("decodes"));
        assert_eq!(b.metrics(), a.metrics(), "cut at {cut}");
        got.extend(drive(
            &mut b,
            &toks[cut..].join(" "),
            &mut same_val_as_first(),
        ));
        assert_eq!(got, want, "cut at {cut}");
    }
}

#[test]
fn snapshot_and_restore_anywhere_gives_the_same_matches() {
    let mut k = within(seq(&[('S', ONE), ('T', PLUS), ('E', ONE)]), 60);
    k.steps[1].has_filter = true;
    k.steps[2].has_filter = true;
    check_restore(
        k,
        "S1=1/a@0 T1=1/a@1 S2=2/b@2 T2=2/b@3 T3=1/a@4 E1=2/b@5 S3=1/a@50 T4=1/a@70 E2=1/a@80 E3=1/a@90",
    );
    check_restore(
        absence(&[('O', ONE)], 100),
        "O1=1@0 O2=2@10 X1=2@20 O3=3@150 O4=3@160 X2=3@170",
    );
    check_restore(
        seq(&[('S', ONE), ('T', PLUS)]),
        "S1=1@0 T1=1@1 T2=1@2 S2=1@3 T3=1@4",
    );
}

#[test]
fn policies_differ_as_documented_in_patterns_md() {
    let evs = "A1@0 A2@1 B1@2 B2@3";
    check(
        with_selection(Selection::Reference),
        evs,
        &["A1 B1 @2", "A2 B1 @2"],
    );
    check(
        with_selection(Selection::StrictContiguity),
        evs,
        &["A2 B1 @2"],
    );
    check(
        with_selection(Selection::SkipTillNextMatch),
        evs,
        &["A1 B1 @2", "A2 B2 @3"],
    );
    check(
        with_selection(Selection::SkipTillAnyMatch),
        evs,
        &["A1 B1 @2", "A2 B1 @2", "A1 B2 @3", "A2 B2 @3"],
    );
}

#[test]
fn partitions_whose_runs_ended_are_freed() {
    let spec = within(seq(&[('A', ONE), ('B', ONE)]), 10);
    let mut m = Matcher::new(spec, Limits::default()).expect("valid");
    // A thousand keys, each completing its match or expiring at once.
    let mut evs = String::new();
    for k in 0..1000 {
        let t = k * 20;
        evs.push_str(&format!("A{k}/k{k}@{t} B{k}/k{k}@{} ", t + 1));
    }
    evs.push_str("A9/late@30000");
    let got = drive_wm(&mut m, &evs, &mut no_filters(), false);
    assert_eq!(got.len(), 1000, "every key matched once");
    let metrics = m.metrics();
    assert_eq!(metrics.active_runs, 1, "the last key's run");
    assert!(
        metrics.partitions <= 2 * metrics.active_runs + 64,
        "{metrics:?}"
    );
    // A key that comes back after its partition was freed matches as new.
    let more = drive_wm(
        &mut m,
        "B1/late@30001 A1/k1@30002 B2/k1@30003",
        &mut no_filters(),
        false,
    );
    assert_eq!(more, ["A9 B1 @30001", "A1 B2 @30003"]);
    assert!(m.memory().bytes > 0);
}

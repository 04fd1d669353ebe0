//! Property tests: for random patterns and event sequences, the matcher's
//! default policy gives exactly the matches of the independent reference
//! matcher (`reference.rs`), also across a snapshot and restore.

use super::reference::{matches, REvent, RMatch, RNeg, RPattern, RStep, Rep};
use super::*;
use proptest::prelude::*;
use std::sync::Arc;
use varpulis_program::{Event, Kleene, Value, ValueKey};

const S: i64 = 1_000_000_000;

fn pattern() -> impl Strategy<Value = RPattern> {
    let step = (0u32..3, 0u8..3, any::<bool>()).prop_map(|(ty, rep, filtered)| RStep {
        ty,
        rep: [Rep::One, Rep::Plus, Rep::Star][rep as usize],
        filtered,
    });
    (
        prop::collection::vec(step, 1..4),
        prop::option::of(1i64..15),
        prop::option::of((0u32..4, prop::option::of(0usize..3))),
        any::<bool>(),
    )
        .prop_map(|(mut steps, within, neg, keyed)| {
            // The first step opens runs: no filter, never skippable.
            steps[0].filtered = false;
            if steps[0].rep == Rep::Star {
                steps[0].rep = Rep::One;
            }
            let n = steps.len();
            let neg = neg.and_then(|(ty, after)| {
                let after = after.map(|a| a % n);
                // A trailing NOT needs `within` (absence).
                (after != Some(n - 1) || within.is_some()).then_some(RNeg { ty, after })
            });
            RPattern {
                steps,
                within: within.map(|w| w * S),
                neg,
                keyed,
            }
        })
}

fn events() -> impl Strategy<Value = Vec<REvent>> {
    prop::collection::vec((0u32..4, 0i64..4, 0u8..2, 0i64..4), 0..40).prop_map(|v| {
        let mut t = 0;
        v.into_iter()
            .map(|(ty, val, key, dt)| {
                t += dt * S;
                REvent {
                    ty,
                    v: val,
                    key,
                    time: t,
                }
            })
            .collect()
    })
}

fn spec_of(p: &RPattern) -> MatcherSpec {
    let steps = p
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| StepSpec {
            input: s.ty,
            kleene: match s.rep {
                Rep::One => Kleene::One,
                Rep::Plus => Kleene::Plus,
                Rep::Star => Kleene::Star,
            },
            alias: Some(i as u16),
            has_filter: s.filtered,
        })
        .collect::<Vec<_>>();
    let n = steps.len() as u16;
    let mut spec = MatcherSpec::seq(steps, n);
    spec.within = p.within;
    if let Some(g) = p.neg {
        spec.negations.push(NegationSpec {
            input: g.ty,
            has_filter: true,
            after_step: g.after.map(|a| a as u16),
        });
    }
    spec
}

fn to_event(i: usize, e: &REvent) -> Arc<Event> {
    Arc::new(Event::new(
        e.ty,
        e.time,
        vec![Some(Value::Int(i as i64)), Some(Value::Int(e.v))],
    ))
}

fn v_of(e: &Event) -> i64 {
    match e.get(1) {
        Some(Value::Int(v)) => *v,
        _ => i64::MIN,
    }
}

fn preds() -> impl Predicates {
    let first = |b: &Bindings| b.first(0).map_or(i64::MIN, |e| v_of(e));
    FnPredicates(
        move |_: usize, e: &Event, b: &Bindings| v_of(e) >= first(b),
        move |_: usize, e: &Event, b: &Bindings| v_of(e) == first(b),
    )
}

fn as_ref_match(m: &Match, steps: usize) -> RMatch {
    let bound = (0..steps as u16)
        .map(|a| {
            m.bindings
                .to_vec(a)
                .iter()
                .map(|e| match e.get(0) {
                    Some(Value::Int(i)) => *i as usize,
                    _ => usize::MAX,
                })
                .collect()
        })
        .collect();
    (m.time, bound, m.absence)
}

/// Feeds `evs[range]` into `m` (watermark to each event's time first).
fn feed(m: &mut Matcher, p: &RPattern, evs: &[REvent], from: usize, to: usize) -> Vec<Match> {
    let mut out = Output::default();
    let mut pr = preds();
    for (i, e) in evs.iter().enumerate().take(to).skip(from) {
        let ev = to_event(i, e);
        m.on_watermark(e.time, &mut out);
        let key = p.keyed.then(|| ValueKey(Value::Int(i64::from(e.key))));
        m.on_event(e.ty, key.as_ref(), &ev, &mut pr, &mut out);
    }
    out.matches
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn default_policy_agrees_with_the_reference(p in pattern(), evs in events()) {
        let want = matches(&p, &evs);
        let mut m = Matcher::new(spec_of(&p), Limits::default()).expect("valid spec");
        let mut got = feed(&mut m, &p, &evs, 0, evs.len());
        let mut out = Output::default();
        m.on_watermark(i64::MAX, &mut out);
        got.extend(out.matches);
        let got: Vec<RMatch> = got.iter().map(|x| as_ref_match(x, p.steps.len())).collect();
        prop_assert_eq!(got, want);
        if p.within.is_some() {
            prop_assert_eq!(m.metrics().active_runs, 0);
        }
    }

    #[test]
    fn snapshot_restore_at_any_point_changes_nothing(
        p in pattern(),
        evs in events(),
        cut in 0usize..40,
    ) {
        let cut = cut.min(evs.len());
        let want = matches(&p, &evs);
        let mut a = Matcher::new(spec_of(&p), Limits::default()).expect("valid spec");
        let mut got = feed(&mut a, &p, &evs, 0, cut);
        let bytes = crate::ops::encode(&a.snapshot()).expect("encodes").expect("state");
        let mut b = Matcher::new(spec_of(&p), Limits::default()).expect("valid spec");
        b.restore(crate::ops::decode(&bytes).expect("decodes"));
        got.extend(feed(&mut b, &p, &evs, cut, evs.len()));
        let mut out = Output::default();
        b.on_watermark(i64::MAX, &mut out);
        got.extend(out.matches);
        let got: Vec<RMatch> = got.iter().map(|x| as_ref_match(x, p.steps.len())).collect();
        prop_assert_eq!(got, want);
    }
}

use super::*;
use crate::forecast::rng::Rng;
use std::sync::Arc;
use varpulis_program::Value;

const SEC: i64 = 1_000_000_000;

fn spec(warmup: u64, horizon: ForecastHorizon, confidence: f64) -> ForecastSpec {
    ForecastSpec {
        confidence,
        horizon,
        warmup,
        max_depth: 3,
        hawkes: true,
        conformal: true,
        states: ["start", "a", "b", "complete"]
            .iter()
            .map(|s| Arc::from(*s))
            .collect(),
        schema: 0,
    }
}

/// Feeds `states` one second apart as one key; returns every prediction.
fn run(f: &mut Forecaster, states: &[u16]) -> Vec<Option<Prediction>> {
    states
        .iter()
        .enumerate()
        .map(|(i, s)| f.observe(None, *s, i as i64 * SEC))
        .collect()
}

#[test]
fn a_deterministic_cycle_is_predicted_with_probability_near_one() {
    let mut f = Forecaster::new(&spec(50, ForecastHorizon::Events(3), 0.0), 3);
    let states: Vec<u16> = (0..600).map(|i| (i % 3 + 1) as u16).collect();
    let out = run(&mut f, &states);
    assert!(
        out[..49].iter().all(Option::is_none),
        "no prediction in warm-up"
    );
    let last = out.last().cloned().flatten().expect("a prediction");
    assert!(last.probability > 0.99, "{last:?}");
    assert!(last.confidence > 0.9, "{last:?}");
    // From state 3 (just completed) the next completion is 3 events (3 s) away.
    let t = last.time.expect("a time");
    assert!((t - 3 * SEC).abs() < SEC / 2, "{last:?}");
    assert_eq!(last.state, 3);
    assert!(last.depth >= 1);
    assert!(
        last.lower > 0.9 && last.upper >= last.probability,
        "{last:?}"
    );
}

#[test]
fn the_probability_grows_towards_one_as_the_cycle_is_learned() {
    let mut f = Forecaster::new(&spec(10, ForecastHorizon::Events(1), 0.0), 3);
    let states: Vec<u16> = (0..900).map(|i| (i % 3 + 1) as u16).collect();
    let out = run(&mut f, &states);
    // Predictions made in state 2 are for the completing step.
    let p = |i: usize| out[i].as_ref().map(|p| p.probability).unwrap_or(0.0);
    let early = p(13);
    let late = p(898);
    assert_eq!(states[13], 2);
    assert_eq!(states[898], 2);
    assert!(early < late && late > 0.999, "{early} {late}");
}

#[test]
fn a_random_stream_stays_near_its_base_rate() {
    let mut f = Forecaster::new(&spec(100, ForecastHorizon::Events(1), 0.0), 3);
    let mut rng = Rng(99);
    let states: Vec<u16> = (0..20_000).map(|_| (rng.next_f64() * 4.0) as u16).collect();
    let out = run(&mut f, &states);
    let ps: Vec<f64> = out.iter().flatten().map(|p| p.probability).collect();
    let mean = ps.iter().sum::<f64>() / ps.len() as f64;
    assert!((mean - 0.25).abs() < 0.02, "{mean}");
    assert!(ps[ps.len() - 1000..].iter().all(|p| (p - 0.25).abs() < 0.1));
}

#[test]
fn predictions_below_the_threshold_are_not_emitted() {
    let mut f = Forecaster::new(&spec(10, ForecastHorizon::Events(1), 0.5), 3);
    let states: Vec<u16> = (0..300).map(|i| (i % 3 + 1) as u16).collect();
    let out = run(&mut f, &states);
    // Only state 2 (one step before completion) predicts completion next.
    for (s, p) in states.iter().zip(&out).skip(30) {
        assert_eq!(p.is_some(), *s == 2, "state {s}: {p:?}");
    }
}

#[test]
fn a_time_horizon_is_counted_in_mean_gaps() {
    // Events one second apart, horizon 3 s: three steps ahead.
    let mut f = Forecaster::new(&spec(20, ForecastHorizon::Time(3 * SEC), 0.0), 3);
    let states: Vec<u16> = (0..300).map(|i| (i % 3 + 1) as u16).collect();
    let out = run(&mut f, &states);
    let last = out.last().cloned().flatten().expect("a prediction");
    assert!(last.probability > 0.99, "{last:?}");
}

#[test]
fn keys_learn_one_model_and_keep_their_own_state() {
    let mut f = Forecaster::new(&spec(20, ForecastHorizon::Events(1), 0.0), 3);
    let a = ValueKey(Value::str("a"));
    let b = ValueKey(Value::str("b"));
    let mut last = (None, None);
    for i in 0..300i64 {
        // Key b is one step behind key a in the same cycle.
        let sa = (i % 3 + 1) as u16;
        let sb = ((i + 2) % 3 + 1) as u16;
        last.0 = f.observe(Some(&a), sa, i * SEC);
        last.1 = f.observe(Some(&b), sb, i * SEC);
    }
    assert_eq!(f.keys(), 2);
    let (pa, pb) = (last.0.expect("a"), last.1.expect("b"));
    // i = 299: a is in state 3, b in state 2 (completes next).
    assert_eq!((pa.state, pb.state), (3, 2));
    assert!(
        pa.probability < 0.01 && pb.probability > 0.99,
        "{pa:?} {pb:?}"
    );
}

#[test]
fn a_restored_model_predicts_the_same() {
    let mut f = Forecaster::new(&spec(20, ForecastHorizon::Events(3), 0.0), 3);
    let mut rng = Rng(4);
    let states: Vec<u16> = (0..500).map(|_| (rng.next_f64() * 4.0) as u16).collect();
    run(&mut f, &states[..250]);
    let mut g = Forecaster::new(&spec(20, ForecastHorizon::Events(3), 0.0), 3);
    g.restore(f.snapshot());
    for (i, s) in states.iter().enumerate().skip(250) {
        let t = i as i64 * SEC;
        assert_eq!(f.observe(None, *s, t), g.observe(None, *s, t));
    }
}

#[test]
fn conformal_off_gives_a_point_interval() {
    let mut s = spec(10, ForecastHorizon::Events(2), 0.0);
    s.conformal = false;
    s.hawkes = false;
    let mut f = Forecaster::new(&s, 3);
    let states: Vec<u16> = (0..100).map(|i| (i % 3 + 1) as u16).collect();
    let last = run(&mut f, &states).pop().flatten().expect("a prediction");
    assert_eq!(last.lower, last.probability);
    assert_eq!(last.upper, last.probability);
    // Without Hawkes the time is steps × mean gap: state 1 → 2 steps.
    assert_eq!(last.state, 1);
    // (The smoothing leaves a little mass on completing sooner.)
    let t = last.time.expect("a time");
    assert!((t - 2 * SEC).abs() < SEC / 100, "{last:?}");
}

#[test]
fn the_key_set_stays_bounded() {
    let mut f = Forecaster::new(&spec(1_000_000, ForecastHorizon::Events(1), 0.0), 3);
    for i in 0..(MAX_KEYS as i64 + 10) {
        f.observe(Some(&ValueKey(Value::Int(i))), 1, i);
    }
    assert!(f.keys() <= MAX_KEYS);
}

#[test]
fn histories_encode_and_decode_losslessly() {
    let mut buf = [0u16; 8];
    for h in [&[][..], &[0], &[3, 0, 2], &[1, 2, 3, 4, 5, 6, 7, 65_534]] {
        assert_eq!(decode(encode(h), &mut buf), h);
    }
    // Only the last 8 states count.
    assert_eq!(
        encode(&[9, 1, 2, 3, 4, 5, 6, 7, 8]),
        encode(&[1, 2, 3, 4, 5, 6, 7, 8])
    );
    assert_ne!(encode(&[0]), encode(&[0, 0]));
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any states (also out of range), any times (also going back), a
        /// few keys: forecasts stay probabilities inside their interval,
        /// with a non-negative time.
        #[test]
        fn forecasts_stay_well_formed(
            events in prop::collection::vec((0u16..8, -5i64..5, 0u8..4), 1..300),
            depth in 1u8..6,
            horizon in 1u32..80,
            hawkes: bool,
            conformal: bool,
        ) {
            let mut s = spec(5, ForecastHorizon::Events(horizon), 0.0);
            s.max_depth = depth;
            s.hawkes = hawkes;
            s.conformal = conformal;
            let mut f = Forecaster::new(&s, 3);
            let mut t = 0i64;
            for (state, dt, key) in events {
                t = t.saturating_add(dt * SEC);
                let k = ValueKey(Value::Int(i64::from(key)));
                if let Some(p) = f.observe(Some(&k), state, t) {
                    prop_assert!((0.0..=1.0).contains(&p.probability), "{p:?}");
                    prop_assert!(p.lower <= p.probability && p.probability <= p.upper, "{p:?}");
                    prop_assert!((0.0..=1.0).contains(&p.confidence), "{p:?}");
                    prop_assert!(p.time.is_none_or(|t| t >= 0), "{p:?}");
                    prop_assert!(p.state <= 3);
                }
            }
        }
    }
}

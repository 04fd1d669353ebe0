//! A deliberately simple reference matcher for the default policy, written
//! independently of the real one (no persistent lists, no timers heap, no
//! partitions table): runs are plain vectors of event indices, every event
//! rescans everything. Used by the property tests.
//!
//! Supported: one SEQ of steps (`One`, `Plus`, `Star`), step filters of the
//! form "value ≥ the first event's value", `within`, one negation (global
//! `.not`, between steps, or trailing = absence), partition keys.

/// A test event.
#[derive(Clone, Copy, Debug)]
pub struct REvent {
    pub ty: u32,
    pub v: i64,
    pub key: u8,
    pub time: i64,
}

/// How many events a step takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rep {
    One,
    Plus,
    Star,
}

/// A step: its event type, repetition, and whether it filters on
/// `v >= first.v`.
#[derive(Clone, Copy, Debug)]
pub struct RStep {
    pub ty: u32,
    pub rep: Rep,
    pub filtered: bool,
}

/// A negation of events of `ty` with `v == first.v`; `after`: `None` =
/// whole match, `Some(i)` = after step `i`.
#[derive(Clone, Copy, Debug)]
pub struct RNeg {
    pub ty: u32,
    pub after: Option<usize>,
}

/// The pattern.
#[derive(Clone, Debug)]
pub struct RPattern {
    pub steps: Vec<RStep>,
    pub within: Option<i64>,
    pub neg: Option<RNeg>,
    pub keyed: bool,
}

/// A match: its time, the event indices bound per step, absence flag.
pub type RMatch = (i64, Vec<Vec<usize>>, bool);

struct RRun {
    key: u8,
    start: i64,
    bound: Vec<Vec<usize>>,
    emitted: bool,
}

impl RRun {
    fn last(&self) -> usize {
        (0..self.bound.len())
            .rev()
            .find(|&i| !self.bound[i].is_empty())
            .unwrap_or(0)
    }
}

/// Runs `pattern` over `events` and returns every match in output order.
pub fn matches(pattern: &RPattern, events: &[REvent]) -> Vec<RMatch> {
    let n = pattern.steps.len();
    let trailing_not = pattern.neg.is_some_and(|g| g.after == Some(n - 1));
    let deadline = |r: &RRun| pattern.within.map_or(i64::MAX, |w| r.start + w);
    // Steps after `last` can all be skipped.
    let done = |r: &RRun| (r.last() + 1..n).all(|j| pattern.steps[j].rep == Rep::Star);
    let mut runs: Vec<RRun> = Vec::new();
    let mut out = Vec::new();
    let end_runs = |runs: &mut Vec<RRun>, t: i64, out: &mut Vec<RMatch>| {
        // Runs are in creation order; a stable sort by deadline keeps it
        // among equal deadlines.
        let mut due: Vec<RRun> = Vec::new();
        let mut keep = Vec::new();
        for r in runs.drain(..) {
            if deadline(&r) <= t {
                due.push(r);
            } else {
                keep.push(r);
            }
        }
        *runs = keep;
        due.sort_by_key(|r| deadline(r));
        for r in due {
            if !r.emitted && trailing_not && done(&r) {
                out.push((deadline(&r), r.bound, true));
            }
        }
    };
    for (i, e) in events.iter().enumerate() {
        end_runs(&mut runs, e.time, &mut out);
        let key = if pattern.keyed { e.key } else { 0 };
        let first_v = |r: &RRun| events[r.bound[0][0]].v;
        let mut next = Vec::new();
        for mut r in runs.drain(..) {
            if r.key != key {
                next.push(r);
                continue;
            }
            if let Some(g) = pattern.neg {
                let active = match g.after {
                    None => true,
                    Some(a) => r.last() == a,
                };
                if active && e.ty == g.ty && e.v == first_v(&r) {
                    continue;
                }
            }
            let ok = |j: usize| {
                let s = pattern.steps[j];
                s.ty == e.ty && (!s.filtered || e.v >= first_v(&r))
            };
            let last = r.last();
            let mut target = None;
            for j in last + 1..n {
                if ok(j) {
                    target = Some(j);
                    break;
                }
                if pattern.steps[j].rep != Rep::Star {
                    break;
                }
            }
            if target.is_none() && pattern.steps[last].rep != Rep::One && ok(last) {
                target = Some(last);
            }
            let Some(j) = target else {
                next.push(r);
                continue;
            };
            r.bound[j].push(i);
            if done(&r) && !trailing_not {
                out.push((e.time, r.bound.clone(), false));
                r.emitted = true;
                let last = r.last();
                let open = last + 1 < n || pattern.steps[last].rep != Rep::One;
                if !open {
                    continue;
                }
            }
            next.push(r);
        }
        runs = next;
        // Step 0 has no filter in the generated patterns.
        if pattern.steps[0].ty == e.ty {
            let mut bound = vec![Vec::new(); n];
            bound[0].push(i);
            let mut r = RRun {
                key,
                start: e.time,
                bound,
                emitted: false,
            };
            if deadline(&r) <= e.time {
                continue;
            }
            if done(&r) && !trailing_not {
                out.push((e.time, r.bound.clone(), false));
                r.emitted = true;
                let open = n > 1 || pattern.steps[0].rep != Rep::One;
                if !open {
                    continue;
                }
            }
            runs.push(r);
        }
    }
    end_runs(&mut runs, i64::MAX, &mut out);
    out
}

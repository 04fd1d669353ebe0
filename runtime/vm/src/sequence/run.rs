//! One run (partial match) and how it advances: which steps an event may
//! fill next, binding it, and when the pattern is complete.
//!
//! A run keeps, per branch (SEQ), the last step that accepted an event and
//! how many events that step holds. From there the candidates for the next
//! event are, in order of preference: the following steps (skipping over
//! optional ones, once the current step has its minimum), then the current
//! step again if it repeats. So a Kleene step accumulates until an event
//! qualifies for the following step, which then wins.

use super::bindings::Bindings;
use super::spec::{CNode, Compiled};
use super::Predicates;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use varpulis_program::{Event, Kleene};

/// `BranchPos::last` of a branch that has bound nothing yet.
pub(crate) const NONE: u16 = u16::MAX;

/// Progress of one branch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BranchPos {
    /// Global index of the last step that accepted an event, or [`NONE`].
    pub last: u16,
    /// Events held by that step.
    pub count: u32,
}

const START: BranchPos = BranchPos {
    last: NONE,
    count: 0,
};

/// Per-branch progress, inline for the common single-SEQ case.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Progress {
    One(BranchPos),
    Many(Box<[BranchPos]>),
}

impl Progress {
    fn get(&self, b: usize) -> BranchPos {
        match self {
            Progress::One(p) => *p,
            Progress::Many(v) => v.get(b).copied().unwrap_or(START),
        }
    }

    /// Steps of branch `b` (covering `steps`) that have bound an event.
    pub fn bound_in(&self, steps: &std::ops::Range<usize>, b: usize) -> u16 {
        let pos = self.get(b);
        if pos.last == NONE {
            return 0;
        }
        let done = usize::from(pos.last) + 1 - steps.start.min(usize::from(pos.last));
        u16::try_from(done).unwrap_or(u16::MAX)
    }

    fn get_mut(&mut self, b: usize) -> Option<&mut BranchPos> {
        match self {
            Progress::One(p) => (b == 0).then_some(p),
            Progress::Many(v) => v.get_mut(b),
        }
    }
}

/// A partial match.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Run {
    /// Creation sequence number: runs are ordered by it.
    pub id: u64,
    /// Time of the run's first event.
    pub start: i64,
    /// `start + within`, or `i64::MAX` without `within`.
    pub deadline: i64,
    pub progress: Progress,
    pub bindings: Bindings,
    /// Whether it already produced a (trailing-Kleene) match.
    pub emitted: bool,
}

impl Run {
    /// A run that has bound nothing yet.
    pub fn new(c: &Compiled, id: u64, start: i64) -> Run {
        let progress = if c.branches.len() == 1 {
            Progress::One(START)
        } else {
            Progress::Many(vec![START; c.branches.len()].into_boxed_slice())
        };
        Run {
            id,
            start,
            deadline: c.spec.within.map_or(i64::MAX, |w| start.saturating_add(w)),
            progress,
            bindings: Bindings::new(c.spec.aliases),
            emitted: false,
        }
    }
}

/// A place an event can go: `(branch, step)`.
pub(crate) type Slot = (usize, usize);

impl Compiled {
    fn min(&self, s: usize) -> u32 {
        self.spec.steps[s].min()
    }

    fn max(&self, s: usize) -> u32 {
        match self.spec.steps[s].kleene {
            Kleene::One | Kleene::Optional => 1,
            Kleene::Plus | Kleene::Star => self.cap,
        }
    }

    /// Calls `f` on the candidate steps of branch `b` in preference order
    /// until it returns `true`.
    fn candidates(&self, b: usize, pos: BranchPos, mut f: impl FnMut(usize) -> bool) {
        let r = &self.branches[b];
        let forward_from = if pos.last == NONE {
            Some(r.start)
        } else {
            let l = usize::from(pos.last);
            (pos.count >= self.min(l)).then_some(l + 1)
        };
        if let Some(mut j) = forward_from {
            while j < r.end {
                if f(j) {
                    return;
                }
                if self.min(j) > 0 {
                    break;
                }
                j += 1;
            }
        }
        if pos.last != NONE {
            let l = usize::from(pos.last);
            if pos.count < self.max(l) {
                f(l);
            }
        }
    }

    /// Whether step `s` accepts `ev` given the bindings.
    #[inline]
    fn accepts<P: Predicates>(
        &self,
        s: usize,
        input: usize,
        ev: &Event,
        b: &Bindings,
        p: &mut P,
    ) -> bool {
        self.feeds_step[input][s] && (!self.spec.steps[s].has_filter || p.step(s, ev, b))
    }

    /// Where `ev` can go in `run`: every branch of a run sees every event
    /// (AND/OR branches progress independently, like a product automaton).
    /// Fills `out` with the preferred place of each accepting branch, or,
    /// with `all`, every accepting place, grouped by branch with the
    /// preferred one first.
    pub fn accepting<P: Predicates>(
        &self,
        run: &Run,
        input: usize,
        ev: &Event,
        p: &mut P,
        all: bool,
        out: &mut Vec<Slot>,
    ) {
        out.clear();
        for b in 0..self.branches.len() {
            self.candidates(b, run.progress.get(b), |s| {
                let ok = self.accepts(s, input, ev, &run.bindings, p);
                if ok {
                    out.push((b, s));
                }
                ok && !all
            });
        }
    }

    /// Binds `ev` at `slot`; returns whether a Kleene alias just reached
    /// the accumulation cap.
    pub fn bind(&self, run: &mut Run, (b, s): Slot, ev: &Arc<Event>) -> bool {
        let step = &self.spec.steps[s];
        let Some(pos) = run.progress.get_mut(b) else {
            return false;
        };
        let s16 = u16::try_from(s).expect("step indices fit u16 (PatternNode ranges)");
        if pos.last == s16 {
            pos.count += 1;
        } else {
            pos.last = s16;
            pos.count = 1;
        }
        let hit_cap = step.repeats() && pos.count == self.cap;
        if let Some(a) = step.alias {
            if step.repeats() {
                run.bindings.push(a, ev.clone());
            } else {
                run.bindings.set(a, ev.clone());
            }
        }
        hit_cap
    }

    /// Whether branch `b`'s steps are all satisfied.
    fn branch_done(&self, b: usize, pos: BranchPos) -> bool {
        if pos.last == NONE {
            return false;
        }
        let l = usize::from(pos.last);
        pos.count >= self.min(l) && (l + 1..self.branches[b].end).all(|j| self.min(j) == 0)
    }

    /// Whether the whole pattern is complete. `confirmed`: the deadline has
    /// passed, so trailing negations (absences) hold.
    pub fn complete(&self, run: &Run, confirmed: bool) -> bool {
        self.node_complete(&self.root, run, confirmed)
    }

    fn node_complete(&self, n: &CNode, run: &Run, confirmed: bool) -> bool {
        match n {
            CNode::Branch(b) => {
                self.branch_done(*b, run.progress.get(*b)) && (confirmed || !self.absence[*b])
            }
            CNode::And(k) => k.iter().all(|k| self.node_complete(k, run, confirmed)),
            CNode::Or(k) => k.iter().any(|k| self.node_complete(k, run, confirmed)),
        }
    }

    /// After completing on an event, whether the run stays open to produce
    /// growing matches: only a single SEQ whose last step can still accept
    /// (a trailing Kleene, or optional steps not reached yet).
    pub fn stays_open(&self, run: &Run) -> bool {
        if !self.single_seq {
            return false;
        }
        let pos = run.progress.get(0);
        let end = self.branches[0].end;
        let l = usize::from(pos.last);
        l + 1 < end || pos.count < self.max(l)
    }

    /// Whether negation `n` currently applies to `run`.
    pub fn negation_active(&self, n: usize, run: &Run) -> bool {
        match self.spec.negations[n].after_step {
            None => true,
            Some(i) => {
                let b = self.branch_of(usize::from(i));
                run.progress.get(b).last == i
            }
        }
    }
}

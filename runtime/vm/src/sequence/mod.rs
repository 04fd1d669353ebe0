//! The SASE+ matcher core: an NFA with per-run bindings, on event time.
//!
//! It runs in-stream sequences (`A as a -> all B -> C`, `.within`, `.not`)
//! and named patterns (`SEQ` with `+ * ?`, `NOT` items, `AND`, `OR`) as
//! described in `docs/PATTERNS.md`. It knows nothing of bytecode: filters
//! are evaluated through [`Predicates`], which the engine implements with
//! the interpreter, and inputs are identified by [`InputIx`].
//!
//! - [`spec`]: what to match ([`MatcherSpec`]), selection policy, limits;
//! - [`bindings`]: what a run has bound ([`Bindings`], persistent lists);
//! - `run`: one partial match and how it advances;
//! - `matcher`: the [`Matcher`]: partitions, timers, limits, snapshots;
//! - [`trend`]: trend aggregation over Kleene matches without enumeration.
//!
//! Deterministic: runs are kept in creation order per partition, matches of
//! one event come out in run-creation order, timers fire by (deadline, run).

pub mod bindings;
mod inspect;
mod matcher;
mod run;
pub mod spec;
pub mod trend;

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

pub use bindings::Bindings;
pub use inspect::{Bound, EventTrace, Fate, RunTrace, RunView, SequenceState};
pub use matcher::{Matcher, Snapshot};
pub use spec::{
    Eviction, InputIx, Limits, MatcherSpec, NegationSpec, PatternNode, Selection, SpecError,
    StepSpec,
};

use serde::{Deserialize, Serialize};
use varpulis_program::{Event, ValueKey};

/// Filter evaluation, provided by the engine (the interpreter with an
/// `EvalCx` that can read the bindings) or by tests and benches.
pub trait Predicates {
    /// Does `ev` satisfy step `step`'s filter given the run's bindings?
    /// Only called for steps that have a filter.
    fn step(&mut self, step: usize, ev: &Event, bindings: &Bindings) -> bool;
    /// Does `ev` trigger negation `neg` given the run's bindings? Only
    /// called for negations that have a filter.
    fn negation(&mut self, neg: usize, ev: &Event, bindings: &Bindings) -> bool;
}

/// [`Predicates`] from two closures (steps, negations).
pub struct FnPredicates<S, N>(pub S, pub N);

impl<S, N> Predicates for FnPredicates<S, N>
where
    S: FnMut(usize, &Event, &Bindings) -> bool,
    N: FnMut(usize, &Event, &Bindings) -> bool,
{
    #[inline]
    fn step(&mut self, step: usize, ev: &Event, bindings: &Bindings) -> bool {
        (self.0)(step, ev, bindings)
    }

    #[inline]
    fn negation(&mut self, neg: usize, ev: &Event, bindings: &Bindings) -> bool {
        (self.1)(neg, ev, bindings)
    }
}

/// A completed match.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Match {
    /// The match's time: the completing event's time, or the deadline for
    /// an absence (trailing `NOT`) completed by the clock.
    pub time: i64,
    /// Time of the run's first event.
    pub start: i64,
    /// The partition key (`None` when unpartitioned).
    pub key: Option<ValueKey>,
    /// The bound events.
    pub bindings: Bindings,
    /// Whether it was completed by the deadline (absence detection).
    pub absence: bool,
}

/// A run that reached its deadline without completing (for a timeout
/// stream), with whatever it had bound.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Timeout {
    /// The deadline (`start + within`).
    pub deadline: i64,
    /// Time of the run's first event.
    pub start: i64,
    /// The partition key.
    pub key: Option<ValueKey>,
    /// The events bound so far.
    pub bindings: Bindings,
}

/// What the matcher produces, in order.
#[derive(Clone, Debug, Default)]
pub struct Output {
    /// Completed matches.
    pub matches: Vec<Match>,
    /// Expired partial matches (only when [`MatcherSpec::timeouts`] is set).
    pub timeouts: Vec<Timeout>,
}

impl Output {
    /// Empties both lists, keeping their capacity.
    pub fn clear(&mut self) {
        self.matches.clear();
        self.timeouts.clear();
    }
}

/// Counters of a matcher.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metrics {
    /// Open runs now.
    pub active_runs: usize,
    /// Partition keys held: those with open runs, plus keys whose runs
    /// ended since the last clean-up (at most as many as there are runs,
    /// plus 64).
    pub partitions: usize,
    /// Matches produced (absences included).
    pub matches: u64,
    /// Matches completed at a deadline (trailing `NOT`).
    pub absences: u64,
    /// Runs that reached their deadline without completing.
    pub expired: u64,
    /// Runs discarded by a negation.
    pub killed: u64,
    /// Runs removed to respect a run limit ([`Eviction::EvictOldest`]).
    pub evicted: u64,
    /// New runs dropped at a run limit ([`Eviction::RejectNew`]).
    pub rejected: u64,
    /// Hard caps hit: Kleene accumulation cap, matches-per-event cap,
    /// skip-till-any-match forks dropped at a run limit.
    pub capped: u64,
}

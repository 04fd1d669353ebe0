//! What a matcher runs: the pattern description ([`MatcherSpec`]), its
//! selection policy and state limits, and the tables compiled from it.
//!
//! The description is deliberately free of bytecode: step and negation
//! filters are identified by index and evaluated through
//! [`super::Predicates`], and the inputs that feed them by an opaque
//! [`InputIx`] that the engine assigns (one per distinct `InputRef`).

use serde::{Deserialize, Serialize};
use std::ops::Range;
use thiserror::Error;
use varpulis_program::Kleene;

/// Index of one input of a pattern (an event type or a stream), assigned by
/// the engine; events are delivered with the index of the input they came on.
pub type InputIx = u32;

/// One step `-> [all] T [where f] [as a]` / SEQ item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepSpec {
    /// The input whose events are candidates for this step.
    pub input: InputIx,
    /// Repetition.
    pub kleene: Kleene,
    /// The alias bound to the accepted event(s), an index below
    /// [`MatcherSpec::aliases`].
    pub alias: Option<u16>,
    /// Whether the step has a filter; without one, every event of the input
    /// qualifies and [`super::Predicates::step`] is never called for it.
    pub has_filter: bool,
}

impl StepSpec {
    /// A plain step (exactly one event) on `input` with an optional alias.
    pub fn one(input: InputIx, alias: Option<u16>, has_filter: bool) -> StepSpec {
        StepSpec {
            input,
            kleene: Kleene::One,
            alias,
            has_filter,
        }
    }

    /// Minimum number of events the step needs.
    pub(crate) fn min(&self) -> u32 {
        match self.kleene {
            Kleene::One | Kleene::Plus => 1,
            Kleene::Star | Kleene::Optional => 0,
        }
    }

    /// Whether the step accumulates a list (its alias is a Kleene alias).
    pub(crate) fn repeats(&self) -> bool {
        matches!(self.kleene, Kleene::Plus | Kleene::Star)
    }
}

/// A negation: `.not(T where e)` or a `NOT X` item of a SEQ.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NegationSpec {
    /// The negated events' input.
    pub input: InputIx,
    /// Whether it has a filter (otherwise any event of the input triggers it).
    pub has_filter: bool,
    /// `None`: the whole match (`.not`, kills any open run of the partition).
    /// `Some(i)`: between step `i` and the next step of the same SEQ; when
    /// `i` is the last step of its SEQ it is a trailing negation (absence,
    /// confirmed at the deadline).
    pub after_step: Option<u16>,
}

/// The shape of a named pattern: SEQs combined with AND / OR, nested freely.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PatternNode {
    /// A SEQ over the steps `range` (indices into [`MatcherSpec::steps`]);
    /// a single item `A as a` is a one-step SEQ.
    Seq(Range<u16>),
    /// `A AND B`: every child, in any order.
    And(Vec<PatternNode>),
    /// `A OR B`: the first child to complete.
    Or(Vec<PatternNode>),
}

/// Event selection strategy (docs/LANGUAGE.md#policy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Selection {
    /// The reference's behaviour: every start event opens a run; a run skips
    /// irrelevant events and binds the earliest qualifying one per step; one
    /// event may advance or complete many runs and also open a new one.
    #[default]
    Reference,
    /// Strict contiguity: an event of the run's partition that the run
    /// does not accept kills it (only events of the pattern's step inputs
    /// count; other types never reach the matcher).
    StrictContiguity,
    /// Skip-till-next-match with consumption: an event is bound by at most
    /// one run (the oldest that accepts it) and, once bound, opens no new
    /// run, so every event contributes to at most one match.
    SkipTillNextMatch,
    /// Skip-till-any-match: a run that accepts an event forks; one copy
    /// binds it and one skips it, so every combination is produced. Forks
    /// beyond the run limits are dropped and counted ([`super::Metrics::capped`]).
    SkipTillAnyMatch,
}

/// What happens when a new run would exceed a run limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Eviction {
    /// Remove the oldest run (of the partition for the per-partition limit,
    /// of the whole matcher for the overall one) to make room.
    #[default]
    EvictOldest,
    /// Keep the existing runs and drop the new one.
    RejectNew,
}

/// Bounds on matcher state. Every time one triggers, a counter in
/// [`super::Metrics`] moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Open runs per partition key.
    pub max_runs_per_partition: usize,
    /// Open runs over all partitions.
    pub max_runs: usize,
    /// What to do when a limit is reached.
    pub eviction: Eviction,
    /// Events one Kleene alias may accumulate; further events are not
    /// offered to that step (counted once per run in `capped`).
    pub max_kleene_events: u32,
    /// Matches one event may produce (skip-till-any-match cap; further ones
    /// are dropped and counted in `capped`).
    pub max_matches_per_event: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_runs_per_partition: 10_000,
            max_runs: 1_000_000,
            eviction: Eviction::EvictOldest,
            max_kleene_events: 10_000,
            max_matches_per_event: 10_000,
        }
    }
}

/// A complete pattern for the matcher.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatcherSpec {
    /// All steps of all SEQs, SEQ by SEQ.
    pub steps: Vec<StepSpec>,
    /// Number of aliases (binding slots).
    pub aliases: u16,
    /// `.not(...)` and `NOT X` items.
    pub negations: Vec<NegationSpec>,
    /// Deadline from the run's first event, in ns (`.within` / `within`).
    pub within: Option<i64>,
    /// The structure; an in-stream sequence is `Seq(0..steps.len())`.
    pub root: PatternNode,
    /// Event selection strategy.
    pub selection: Selection,
    /// Whether expired partial matches are reported ([`super::Timeout`]),
    /// for a timeout stream; otherwise they are only counted.
    pub timeouts: bool,
}

impl MatcherSpec {
    /// An in-stream sequence (one SEQ over all steps) with the default
    /// selection, no negations and no deadline.
    pub fn seq(steps: Vec<StepSpec>, aliases: u16) -> MatcherSpec {
        let n = u16::try_from(steps.len()).unwrap_or(u16::MAX);
        MatcherSpec {
            steps,
            aliases,
            negations: Vec::new(),
            within: None,
            root: PatternNode::Seq(0..n),
            selection: Selection::Reference,
            timeouts: false,
        }
    }
}

/// A pattern the matcher cannot run (a compiler bug or a rejected pattern).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SpecError {
    /// The pattern has no step.
    #[error("pattern has no step")]
    Empty,
    /// A SEQ range is empty, out of bounds, or steps are shared or unused.
    #[error("SEQ ranges must partition the steps: {0}")]
    BadRange(String),
    /// An alias index is not below `aliases`.
    #[error("step {step} uses alias {alias} but only {aliases} are declared")]
    BadAlias {
        /// The step.
        step: usize,
        /// Its alias.
        alias: u16,
        /// Declared aliases.
        aliases: u16,
    },
    /// A negation refers to a step that does not exist.
    #[error("negation {0} follows a step that does not exist")]
    BadNegation(usize),
    /// A trailing `NOT X` without `within` could never be confirmed.
    #[error("a trailing NOT needs `within` (absence is confirmed at the deadline)")]
    AbsenceWithoutWithin,
    /// An AND/OR with no children.
    #[error("AND/OR needs at least one branch")]
    EmptyCombinator,
}

/// A node over branch indices (a branch is one SEQ).
#[derive(Clone, Debug)]
pub(crate) enum CNode {
    Branch(usize),
    And(Vec<CNode>),
    Or(Vec<CNode>),
}

/// Tables derived from a [`MatcherSpec`] once.
#[derive(Clone, Debug)]
pub(crate) struct Compiled {
    pub spec: MatcherSpec,
    /// Branch `b` covers steps `branches[b]`.
    pub branches: Vec<Range<usize>>,
    /// Whether branch `b` ends with a trailing negation (absence).
    pub absence: Vec<bool>,
    pub root: CNode,
    /// Whether the root is one SEQ (trailing Kleene keeps runs open).
    pub single_seq: bool,
    /// `feeds_step[input][step]`.
    pub feeds_step: Vec<Vec<bool>>,
    /// Negations fed by each input.
    pub feeds_neg: Vec<Vec<usize>>,
    /// Whether each input feeds any step at all.
    pub feeds_any_step: Vec<bool>,
    /// Whether each input feeds a step that can open a run.
    pub feeds_start: Vec<bool>,
    /// Events a Kleene alias may hold ([`Limits::max_kleene_events`]).
    pub cap: u32,
}

impl Compiled {
    pub fn new(spec: MatcherSpec) -> Result<Compiled, SpecError> {
        if spec.steps.is_empty() {
            return Err(SpecError::Empty);
        }
        for (i, s) in spec.steps.iter().enumerate() {
            if let Some(a) = s.alias {
                if a >= spec.aliases {
                    return Err(SpecError::BadAlias {
                        step: i,
                        alias: a,
                        aliases: spec.aliases,
                    });
                }
            }
        }
        let mut branches = Vec::new();
        let root = lower(&spec.root, &mut branches)?;
        let mut seen = vec![false; spec.steps.len()];
        for r in &branches {
            if r.is_empty() || r.end > spec.steps.len() {
                return Err(SpecError::BadRange(format!("{r:?}")));
            }
            for s in r.clone() {
                if std::mem::replace(&mut seen[s], true) {
                    return Err(SpecError::BadRange(format!("step {s} in two SEQs")));
                }
            }
        }
        if let Some(s) = seen.iter().position(|s| !s) {
            return Err(SpecError::BadRange(format!("step {s} in no SEQ")));
        }
        let mut absence = vec![false; branches.len()];
        for (n, neg) in spec.negations.iter().enumerate() {
            if let Some(i) = neg.after_step {
                let i = usize::from(i);
                let b = branches
                    .iter()
                    .position(|r| r.contains(&i))
                    .ok_or(SpecError::BadNegation(n))?;
                if i + 1 == branches[b].end {
                    if spec.within.is_none() {
                        return Err(SpecError::AbsenceWithoutWithin);
                    }
                    absence[b] = true;
                }
            }
        }
        let inputs = spec
            .steps
            .iter()
            .map(|s| s.input)
            .chain(spec.negations.iter().map(|n| n.input))
            .max()
            .map_or(0, |m| m as usize + 1);
        let mut feeds_step = vec![vec![false; spec.steps.len()]; inputs];
        let mut feeds_any_step = vec![false; inputs];
        for (i, s) in spec.steps.iter().enumerate() {
            feeds_step[s.input as usize][i] = true;
            feeds_any_step[s.input as usize] = true;
        }
        let mut feeds_neg = vec![Vec::new(); inputs];
        for (n, neg) in spec.negations.iter().enumerate() {
            feeds_neg[neg.input as usize].push(n);
        }
        let mut feeds_start = vec![false; inputs];
        for r in &branches {
            for j in r.clone() {
                feeds_start[spec.steps[j].input as usize] = true;
                if spec.steps[j].min() > 0 {
                    break;
                }
            }
        }
        let single_seq = matches!(root, CNode::Branch(_));
        Ok(Compiled {
            spec,
            branches,
            absence,
            root,
            single_seq,
            feeds_step,
            feeds_neg,
            feeds_any_step,
            feeds_start,
            cap: Limits::default().max_kleene_events,
        })
    }

    /// The branch containing step `s`.
    pub fn branch_of(&self, s: usize) -> usize {
        self.branches
            .iter()
            .position(|r| r.contains(&s))
            .expect("every step belongs to a branch (checked in Compiled::new)")
    }
}

fn lower(node: &PatternNode, out: &mut Vec<Range<usize>>) -> Result<CNode, SpecError> {
    Ok(match node {
        PatternNode::Seq(r) => {
            out.push(usize::from(r.start)..usize::from(r.end));
            CNode::Branch(out.len() - 1)
        }
        PatternNode::And(c) | PatternNode::Or(c) => {
            if c.is_empty() {
                return Err(SpecError::EmptyCombinator);
            }
            let kids = c
                .iter()
                .map(|k| lower(k, out))
                .collect::<Result<Vec<_>, _>>()?;
            if matches!(node, PatternNode::And(_)) {
                CNode::And(kids)
            } else {
                CNode::Or(kids)
            }
        }
    })
}

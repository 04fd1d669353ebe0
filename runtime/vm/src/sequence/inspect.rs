//! Introspection of a [`Matcher`] for interactive hosts (the REPL's
//! `:inspect` and `:why`): a view of the open runs, and an explanation of
//! what one event (or a watermark) does to each run it touches.
//!
//! Nothing here is on the hot path. [`Matcher::explain_event`] replays the
//! matcher's decision for one event on copies of the runs (re-evaluating the
//! filters it needs), without changing the matcher; the engine calls it only
//! while tracing is on, right before the real [`Matcher::on_event`].

use super::run::{BranchPos, Progress, Run, Slot, NONE};
use super::spec::{Compiled, InputIx, Selection};
use super::{Matcher, Metrics, Predicates};
use std::sync::Arc;
use varpulis_program::{Event, Value, ValueKey};

/// What one alias of a run holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Bound {
    /// The alias index in the matcher (declared aliases first, then one
    /// hidden alias per step without an alias, in step order).
    pub alias: u16,
    /// Events bound (more than one for a Kleene alias).
    pub count: usize,
    /// The most recent of them.
    pub last: Arc<Event>,
}

/// One open run (partial match).
#[derive(Clone, Debug, PartialEq)]
pub struct RunView {
    /// The partition key (`None` when the pattern is unpartitioned).
    pub key: Option<Value>,
    /// Time of the run's first event.
    pub started: i64,
    /// Its deadline (`None` without `within`).
    pub deadline: Option<i64>,
    /// The steps the run waits for next, one per unfinished branch (a step
    /// index into the pattern's steps); empty once every branch is complete
    /// (a trailing Kleene still accepting events).
    pub waiting: Vec<usize>,
    /// The aliases bound so far, by alias index.
    pub bound: Vec<Bound>,
}

/// What happened to one run.
#[derive(Clone, Debug, PartialEq)]
pub enum Fate {
    /// A run was opened by the event, which it bound at `step`;
    /// `completed`: that already completed the pattern (a match).
    Started {
        /// The step that took the event.
        step: usize,
        /// Whether a match was emitted.
        completed: bool,
    },
    /// The run bound the event at `step`; `completed`: the pattern is
    /// complete (a match was emitted).
    Advanced {
        /// The step that took the event.
        step: usize,
        /// Whether a match was emitted.
        completed: bool,
    },
    /// Negation `negation` (an index into the pattern's negations) discarded
    /// the run.
    Killed {
        /// The negation.
        negation: usize,
    },
    /// The run reached its deadline: `absence_match` when it completed there
    /// (a trailing `NOT` that never came), otherwise it expired.
    Expired {
        /// Whether the deadline completed an absence match.
        absence_match: bool,
    },
    /// The run did not take the event. `false_steps`: awaited steps the
    /// event's type feeds but whose filter was false (empty when the event
    /// is not a candidate for what the run waits for).
    Ignored {
        /// The steps whose filter was false.
        false_steps: Vec<usize>,
    },
    /// Strict contiguity: the run did not accept an event of its partition
    /// and was discarded.
    Discarded,
}

/// One run touched by an event or a watermark.
#[derive(Clone, Debug, PartialEq)]
pub struct RunTrace {
    /// The run: after the event when it advanced or started, before it
    /// otherwise.
    pub run: RunView,
    /// What happened to it.
    pub fate: Fate,
}

/// What one event (or a watermark) did to a matcher's runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventTrace {
    /// The runs of the event's partition, in creation order, then the run
    /// the event opened, if any (for a watermark: the runs that ended).
    pub runs: Vec<RunTrace>,
    /// The event could open a run but no first step accepted it: the first
    /// steps its type feeds whose filter was false.
    pub not_started: Vec<usize>,
    /// Whether the event could open a run at all (it feeds a first step).
    pub can_start: bool,
    /// With `.forecast`: what the event taught the model and predicted.
    pub forecast: Option<crate::forecast::ForecastNote>,
}

/// The state of a sequence operator, for `:inspect`.
#[derive(Clone, Debug, PartialEq)]
pub struct SequenceState {
    /// Open runs, ordered by partition key then creation, at most
    /// [`SequenceState::MAX_RUNS`].
    pub runs: Vec<RunView>,
    /// All open runs (may exceed `runs.len()`).
    pub open: usize,
    /// The matcher's counters.
    pub metrics: Metrics,
    /// With `.forecast`: the model's state.
    pub forecast: Option<crate::forecast::ForecastView>,
}

impl SequenceState {
    /// How many runs [`Matcher::inspect`] lists.
    pub const MAX_RUNS: usize = 20;
}

fn position(run: &Run, b: usize) -> BranchPos {
    let start = BranchPos {
        last: NONE,
        count: 0,
    };
    match &run.progress {
        Progress::One(p) if b == 0 => *p,
        Progress::One(_) => start,
        Progress::Many(v) => v.get(b).copied().unwrap_or(start),
    }
}

/// The step each unfinished branch of `run` waits for.
fn waiting(c: &Compiled, run: &Run) -> Vec<usize> {
    let mut out = Vec::new();
    for (b, r) in c.branches.iter().enumerate() {
        let pos = position(run, b);
        if pos.last == NONE {
            out.push(r.start);
            continue;
        }
        let l = usize::from(pos.last);
        if pos.count < c.spec.steps[l].min() {
            out.push(l);
        } else if let Some(j) = (l + 1..r.end).find(|&j| c.spec.steps[j].min() > 0) {
            // Optional steps before `j` may also take the event; the
            // required one is what the run waits for.
            out.push(j);
        }
    }
    out
}

fn view(c: &Compiled, key: Option<&ValueKey>, run: &Run) -> RunView {
    let bound = (0..c.spec.aliases)
        .filter_map(|a| {
            let last = run.bindings.get(a)?.clone();
            Some(Bound {
                alias: a,
                count: run.bindings.count(a),
                last,
            })
        })
        .collect();
    RunView {
        key: key.map(|k| k.0.clone()),
        started: run.start,
        deadline: (run.deadline != i64::MAX).then_some(run.deadline),
        waiting: waiting(c, run),
        bound,
    }
}

/// The awaited steps of `run` that `input` feeds (their filter was false
/// when the run accepted nothing).
fn fed_waiting(c: &Compiled, run: &Run, input: usize) -> Vec<usize> {
    waiting(c, run)
        .into_iter()
        .filter(|&s| c.feeds_step.get(input).is_some_and(|f| f[s]))
        .collect()
}

/// The preferred slot of each branch (what a run binds without forking).
fn preferred(slots: &[Slot]) -> Vec<Slot> {
    let mut pref: Vec<Slot> = Vec::new();
    for &(b, s) in slots {
        if !pref.iter().any(|&(pb, _)| pb == b) {
            pref.push((b, s));
        }
    }
    pref
}

impl Matcher {
    /// The open runs (at most [`SequenceState::MAX_RUNS`]) and counters,
    /// ordered by partition key (as displayed) then creation.
    pub fn inspect(&self) -> SequenceState {
        let c = self.compiled();
        let mut parts: Vec<(Option<&ValueKey>, &[Run])> = self.partitions().collect();
        parts.sort_by_cached_key(|(k, _)| k.map(|k| k.0.to_string()));
        let open = parts.iter().map(|(_, r)| r.len()).sum();
        let runs = parts
            .iter()
            .flat_map(|(k, runs)| runs.iter().map(move |r| (*k, r)))
            .take(SequenceState::MAX_RUNS)
            .map(|(k, r)| view(c, k, r))
            .collect();
        SequenceState {
            runs,
            open,
            metrics: self.metrics(),
            forecast: None,
        }
    }

    /// What [`Matcher::on_event`] with the same arguments would do to each
    /// run of the event's partition, without changing the matcher. Filters
    /// are evaluated through `preds` (again, when the host then runs the
    /// event for real).
    pub fn explain_event<P: Predicates>(
        &self,
        input: InputIx,
        key: Option<&ValueKey>,
        ev: &Arc<Event>,
        preds: &mut P,
    ) -> EventTrace {
        let c = self.compiled();
        let input = input as usize;
        let mut trace = EventTrace::default();
        let Some(&starts) = c.feeds_start.get(input) else {
            return trace;
        };
        trace.can_start = starts;
        let t = ev.time;
        let sel = c.spec.selection;
        let all = sel == Selection::SkipTillAnyMatch;
        let mut consumed = false;
        let mut slots = Vec::new();
        for run in self.runs_of(key) {
            let before = || view(c, key, run);
            if t >= run.deadline {
                let absence_match = !run.emitted && c.complete(run, true);
                trace.runs.push(RunTrace {
                    run: before(),
                    fate: Fate::Expired { absence_match },
                });
                continue;
            }
            let killer = c.feeds_neg.get(input).and_then(|negs| {
                negs.iter().copied().find(|&n| {
                    c.negation_active(n, run)
                        && (!c.spec.negations[n].has_filter || preds.negation(n, ev, &run.bindings))
                })
            });
            if let Some(negation) = killer {
                trace.runs.push(RunTrace {
                    run: before(),
                    fate: Fate::Killed { negation },
                });
                continue;
            }
            if !c.feeds_any_step.get(input).copied().unwrap_or(false) || consumed {
                continue;
            }
            c.accepting(run, input, ev, preds, all, &mut slots);
            if slots.is_empty() {
                let fate = if sel == Selection::StrictContiguity {
                    Fate::Discarded
                } else {
                    Fate::Ignored {
                        false_steps: fed_waiting(c, run, input),
                    }
                };
                trace.runs.push(RunTrace {
                    run: before(),
                    fate,
                });
                continue;
            }
            let mut next = run.clone();
            let pref = preferred(&slots);
            for &slot in &pref {
                c.bind(&mut next, slot, ev);
            }
            consumed = sel == Selection::SkipTillNextMatch;
            let completed = c.complete(&next, false);
            trace.runs.push(RunTrace {
                run: view(c, key, &next),
                fate: Fate::Advanced {
                    step: pref.first().map_or(0, |&(_, s)| s),
                    completed,
                },
            });
        }
        if starts && !consumed {
            let mut run = Run::new(c, 0, t);
            c.accepting(&run, input, ev, preds, all, &mut slots);
            if slots.is_empty() {
                trace.not_started = fed_waiting(c, &run, input);
            } else if t < run.deadline {
                let pref = preferred(&slots);
                for &slot in &pref {
                    c.bind(&mut run, slot, ev);
                }
                let completed = c.complete(&run, false);
                trace.runs.push(RunTrace {
                    run: view(c, key, &run),
                    fate: Fate::Started {
                        step: pref.first().map_or(0, |&(_, s)| s),
                        completed,
                    },
                });
            }
        }
        trace
    }

    /// What [`Matcher::on_watermark`]`(wm)` would do: the runs whose deadline
    /// is at or before `wm`, by deadline then creation.
    pub fn explain_watermark(&self, wm: i64) -> EventTrace {
        let c = self.compiled();
        let mut ended: Vec<(i64, u64, RunTrace)> = self
            .partitions()
            .flat_map(|(k, runs)| runs.iter().map(move |r| (k, r)))
            .filter(|(_, r)| r.deadline <= wm)
            .map(|(k, r)| {
                let absence_match = !r.emitted && c.complete(r, true);
                (
                    r.deadline,
                    r.id,
                    RunTrace {
                        run: view(c, k, r),
                        fate: Fate::Expired { absence_match },
                    },
                )
            })
            .collect();
        ended.sort_by_key(|(d, id, _)| (*d, *id));
        EventTrace {
            runs: ended.into_iter().map(|(.., r)| r).collect(),
            ..EventTrace::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sequence::{FnPredicates, Limits, MatcherSpec, NegationSpec, Output, StepSpec};
    use varpulis_program::Kleene;

    fn ev(ty: u32, t: i64, v: i64) -> Arc<Event> {
        Arc::new(Event::new(ty, t, vec![Some(Value::Int(v))]))
    }

    fn big(_: usize, e: &Event, _: &super::super::Bindings) -> bool {
        matches!(e.fields.first(), Some(Some(Value::Int(v))) if *v > 10)
    }

    /// `A as a -> all B as b -> C where v > 10 as c .not(D) .within(100)`.
    fn matcher() -> Matcher {
        let mut spec = MatcherSpec::seq(
            vec![
                StepSpec::one(0, Some(0), false),
                StepSpec {
                    input: 1,
                    kleene: Kleene::Plus,
                    alias: Some(1),
                    has_filter: false,
                },
                StepSpec::one(2, Some(2), true),
            ],
            3,
        );
        spec.negations.push(NegationSpec {
            input: 3,
            has_filter: false,
            after_step: None,
        });
        spec.within = Some(100);
        Matcher::new(spec, Limits::default()).expect("valid spec")
    }

    fn feed(m: &mut Matcher, input: u32, e: &Arc<Event>) -> EventTrace {
        let mut p = FnPredicates(big, |_, _: &Event, _: &super::super::Bindings| true);
        let trace = m.explain_event(input, None, e, &mut p);
        m.on_event(input, None, e, &mut p, &mut Output::default());
        trace
    }

    #[test]
    fn explains_start_kleene_filter_and_completion() {
        let mut m = matcher();
        let t = feed(&mut m, 0, &ev(0, 0, 0));
        assert!(matches!(
            t.runs[0].fate,
            Fate::Started {
                step: 0,
                completed: false
            }
        ));
        assert_eq!(t.runs[0].run.waiting, vec![1]);
        feed(&mut m, 1, &ev(1, 1, 0));
        let t = feed(&mut m, 1, &ev(1, 2, 0));
        assert!(matches!(
            t.runs[0].fate,
            Fate::Advanced {
                step: 1,
                completed: false
            }
        ));
        assert_eq!(t.runs[0].run.bound[1].count, 2);
        let t = feed(&mut m, 2, &ev(2, 3, 5));
        assert!(matches!(t.runs[0].fate, Fate::Ignored { ref false_steps } if false_steps == &[2]));
        let view = m.inspect();
        assert_eq!(view.open, 1);
        assert_eq!(view.runs[0].deadline, Some(100));
        let t = feed(&mut m, 2, &ev(2, 4, 50));
        assert!(matches!(
            t.runs[0].fate,
            Fate::Advanced {
                step: 2,
                completed: true
            }
        ));
        assert_eq!(m.inspect().open, 0);
    }

    #[test]
    fn explains_kills_and_expiry() {
        let mut m = matcher();
        feed(&mut m, 0, &ev(0, 0, 0));
        feed(&mut m, 0, &ev(0, 50, 0));
        let t = feed(&mut m, 3, &ev(3, 60, 0));
        assert_eq!(t.runs.len(), 2);
        assert!(t
            .runs
            .iter()
            .all(|r| r.fate == Fate::Killed { negation: 0 }));
        feed(&mut m, 0, &ev(0, 70, 0));
        let t = m.explain_watermark(170);
        assert_eq!(
            t.runs[0].fate,
            Fate::Expired {
                absence_match: false
            }
        );
        assert!(m.explain_watermark(169).runs.is_empty());
    }
}

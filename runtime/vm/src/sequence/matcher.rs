//! The [`Matcher`]: runs grouped by partition key, deadline timers on event
//! time, run limits, selection policies, snapshots.
//!
//! For each event, in its partition and in run-creation order
//! (docs/LANGUAGE.md#sequence-steps, docs/PATTERNS.md "Runs"): (1) runs whose deadline is at or before the event's time end
//! (absence matches or timeouts); (2) runs hit by an active negation are
//! discarded; (3) every open run is offered the event; (4) if the event
//! satisfies a first step, it opens a new run.

use super::run::{Run, Slot};
use super::spec::{Compiled, Eviction, InputIx, Limits, MatcherSpec, Selection, SpecError};
use super::{Match, Metrics, Output, Predicates, Timeout};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use varpulis_program::{Event, ValueKey};

/// The open runs of one partition key, oldest first (sorted by id).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Partition {
    key: Option<ValueKey>,
    runs: Vec<Run>,
}

/// A deadline timer: `(deadline, run id, partition index)`. Entries of runs
/// that ended earlier stay in the heap and are skipped when popped.
type Timer = Reverse<(i64, u64, u32)>;

/// All open runs, for a snapshot (serde); restore with [`Matcher::restore`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Snapshot {
    parts: Vec<Partition>,
    next_id: u64,
    metrics: Metrics,
}

/// A SASE+ matcher for one pattern (see the module docs).
#[derive(Debug)]
pub struct Matcher {
    c: Compiled,
    limits: Limits,
    parts: Vec<Partition>,
    /// Partition index by key; the unpartitioned runs live in `unkeyed`.
    index: FxHashMap<ValueKey, u32>,
    unkeyed: Option<u32>,
    timers: BinaryHeap<Timer>,
    next_id: u64,
    metrics: Metrics,
    /// Reused buffers.
    forks: Vec<Run>,
    slots: Vec<Slot>,
    advanced: Vec<Match>,
}

impl Matcher {
    /// Builds a matcher; fails on a malformed spec.
    pub fn new(spec: MatcherSpec, limits: Limits) -> Result<Matcher, SpecError> {
        let mut c = Compiled::new(spec)?;
        c.cap = limits.max_kleene_events;
        Ok(Matcher {
            c,
            limits,
            parts: Vec::new(),
            index: FxHashMap::default(),
            unkeyed: None,
            timers: BinaryHeap::new(),
            next_id: 0,
            metrics: Metrics::default(),
            forks: Vec::new(),
            slots: Vec::new(),
            advanced: Vec::new(),
        })
    }

    /// The pattern.
    pub fn spec(&self) -> &MatcherSpec {
        &self.c.spec
    }

    /// Counters.
    pub fn metrics(&self) -> Metrics {
        Metrics {
            partitions: self.parts.len(),
            ..self.metrics
        }
    }

    /// The earliest deadline of an open run (may be early: the run may have
    /// ended since, then [`Matcher::on_watermark`] does nothing).
    pub fn next_timer(&self) -> Option<i64> {
        self.timers.peek().map(|Reverse((d, ..))| *d)
    }

    fn find_partition(&self, key: Option<&ValueKey>) -> Option<u32> {
        match key {
            None => self.unkeyed,
            Some(k) => self.index.get(k).copied(),
        }
    }

    fn add_partition(&mut self, key: Option<&ValueKey>) -> u32 {
        let p = u32::try_from(self.parts.len()).expect("fewer than 2^32 partition keys");
        self.parts.push(Partition {
            key: key.cloned(),
            runs: Vec::new(),
        });
        match key {
            None => self.unkeyed = Some(p),
            Some(k) => {
                self.index.insert(k.clone(), p);
            }
        }
        p
    }

    /// Handles one event that arrived on `input` with partition key `key`
    /// (`None` when the pattern is unpartitioned). `ev.time` is the clock.
    pub fn on_event<P: Predicates>(
        &mut self,
        input: InputIx,
        key: Option<&ValueKey>,
        ev: &Arc<Event>,
        preds: &mut P,
        out: &mut Output,
    ) {
        let input = input as usize;
        let Some(&starts) = self.c.feeds_start.get(input) else {
            return;
        };
        let p = match self.find_partition(key) {
            Some(p) => Some(p),
            None if starts => None,
            // No run of this key is open and the event cannot start one.
            None => return,
        };
        let mut consumed = false;
        let mut emitted = 0usize;
        if let Some(p) = p {
            consumed = self.advance(p, input, ev, preds, out, &mut emitted);
        }
        if starts && !consumed {
            self.start(p, key, input, ev, preds, &mut emitted);
        }
        out.matches.append(&mut self.advanced);
        self.compact();
    }

    /// Frees partitions left without runs once they are at least half of
    /// all partitions (each non-empty one holds a run), so a stream of ever
    /// new keys keeps only the keys with open runs, at amortised constant
    /// cost. Creation order of the rest is kept; dropping an empty
    /// partition changes no result, since an event of its key finds no run
    /// either way.
    fn compact(&mut self) {
        if self.parts.len() <= 2 * self.metrics.active_runs + 64 {
            return;
        }
        self.parts.retain(|p| !p.runs.is_empty());
        self.reindex();
        self.rebuild_timers();
    }

    /// Rebuilds the key index from `parts`.
    fn reindex(&mut self) {
        self.index.clear();
        self.unkeyed = None;
        for (p, part) in self.parts.iter().enumerate() {
            let p = u32::try_from(p).expect("fewer than 2^32 partitions");
            match &part.key {
                None => self.unkeyed = Some(p),
                Some(k) => {
                    self.index.insert(k.clone(), p);
                }
            }
        }
    }

    /// Approximate size (crate::memory).
    pub fn memory(&self) -> crate::memory::OpMemory {
        use crate::memory::{KEY_BYTES, RUN_BYTES};
        let keys = self.parts.len() as u64;
        let runs = self.metrics.active_runs as u64;
        crate::memory::OpMemory {
            bytes: keys * KEY_BYTES + runs * RUN_BYTES + self.timers.len() as u64 * 24,
            keys,
            runs,
            ..crate::memory::OpMemory::default()
        }
    }

    /// Steps (1)–(3) for the runs of partition `p`; returns whether the event
    /// was consumed (skip-till-next-match).
    fn advance<P: Predicates>(
        &mut self,
        p: u32,
        input: usize,
        ev: &Arc<Event>,
        preds: &mut P,
        out: &mut Output,
        emitted: &mut usize,
    ) -> bool {
        let Matcher {
            c,
            limits,
            parts,
            next_id,
            metrics,
            forks,
            slots,
            advanced,
            timers,
            ..
        } = self;
        let part = &mut parts[p as usize];
        let key = &part.key;
        let before = part.runs.len();
        let t = ev.time;
        let negs = &c.feeds_neg[input];
        let feeds_steps = c.feeds_any_step[input];
        let sel = c.spec.selection;
        let mut consumed = false;
        part.runs.retain_mut(|run| {
            if t >= run.deadline {
                finish(c, run, key, out, metrics);
                return false;
            }
            for &n in negs {
                if c.negation_active(n, run)
                    && (!c.spec.negations[n].has_filter || preds.negation(n, ev, &run.bindings))
                {
                    metrics.killed += 1;
                    return false;
                }
            }
            if !feeds_steps || consumed {
                return true;
            }
            let all = sel == Selection::SkipTillAnyMatch;
            c.accepting(run, input, ev, preds, all, slots);
            if slots.is_empty() {
                return sel != Selection::StrictContiguity;
            }
            if all {
                for_choices(slots, true, |set| {
                    let mut fork = run.clone();
                    fork.id = *next_id;
                    *next_id += 1;
                    for &slot in set {
                        if c.bind(&mut fork, slot, ev) {
                            metrics.capped += 1;
                        }
                    }
                    if c.complete(&fork, false) {
                        emit(&mut fork, t, key, advanced, metrics, limits, emitted);
                        if !c.stays_open(&fork) {
                            return;
                        }
                    }
                    forks.push(fork);
                });
                return true;
            }
            for &slot in slots.iter() {
                if c.bind(run, slot, ev) {
                    metrics.capped += 1;
                }
            }
            consumed = sel == Selection::SkipTillNextMatch;
            if c.complete(run, false) {
                emit(run, t, key, advanced, metrics, limits, emitted);
                return c.stays_open(run);
            }
            true
        });
        let removed = before - part.runs.len();
        metrics.active_runs -= removed;
        for fork in std::mem::take(forks) {
            if part.runs.len() >= limits.max_runs_per_partition
                || metrics.active_runs >= limits.max_runs
            {
                metrics.capped += 1;
                continue;
            }
            if fork.deadline != i64::MAX {
                timers.push(Reverse((fork.deadline, fork.id, p)));
            }
            part.runs.push(fork);
            metrics.active_runs += 1;
        }
        consumed
    }

    /// Step (4): opens new run(s) if `ev` satisfies a first step.
    fn start<P: Predicates>(
        &mut self,
        p: Option<u32>,
        key: Option<&ValueKey>,
        input: usize,
        ev: &Arc<Event>,
        preds: &mut P,
        emitted: &mut usize,
    ) {
        let blank = Run::new(&self.c, 0, ev.time);
        let all = self.c.spec.selection == Selection::SkipTillAnyMatch;
        let mut slots = std::mem::take(&mut self.slots);
        self.c.accepting(&blank, input, ev, preds, all, &mut slots);
        let owned_key = key.cloned();
        let mut made = Vec::new();
        for_choices(&slots, all, |set| {
            let mut run = blank.clone();
            run.id = self.next_id;
            self.next_id += 1;
            for &slot in set {
                if self.c.bind(&mut run, slot, ev) {
                    self.metrics.capped += 1;
                }
            }
            if ev.time >= run.deadline {
                // `within` of zero: the run is over before it starts.
                return;
            }
            if self.c.complete(&run, false) {
                emit(
                    &mut run,
                    ev.time,
                    &owned_key,
                    &mut self.advanced,
                    &mut self.metrics,
                    &self.limits,
                    emitted,
                );
                if !self.c.stays_open(&run) {
                    return;
                }
            }
            made.push(run);
        });
        for run in made {
            let p = match p.or_else(|| self.find_partition(key)) {
                Some(p) => p,
                None => self.add_partition(key),
            };
            self.insert(p, run);
        }
        self.slots = slots;
    }

    /// Stores a new run, applying the run limits.
    fn insert(&mut self, p: u32, run: Run) {
        let lim = self.limits;
        if self.parts[p as usize].runs.len() >= lim.max_runs_per_partition {
            match lim.eviction {
                Eviction::EvictOldest => {
                    self.parts[p as usize].runs.remove(0);
                    self.metrics.active_runs -= 1;
                    self.metrics.evicted += 1;
                }
                Eviction::RejectNew => {
                    self.metrics.rejected += 1;
                    return;
                }
            }
        }
        if self.metrics.active_runs >= lim.max_runs {
            match lim.eviction {
                Eviction::EvictOldest => self.evict_globally_oldest(),
                Eviction::RejectNew => {
                    self.metrics.rejected += 1;
                    return;
                }
            }
        }
        if run.deadline != i64::MAX {
            self.timers.push(Reverse((run.deadline, run.id, p)));
        }
        self.parts[p as usize].runs.push(run);
        self.metrics.active_runs += 1;
    }

    fn evict_globally_oldest(&mut self) {
        let oldest = self
            .parts
            .iter_mut()
            .filter_map(|part| part.runs.first().map(|r| r.id).zip(Some(part)))
            .min_by_key(|(id, _)| *id);
        if let Some((_, part)) = oldest {
            part.runs.remove(0);
            self.metrics.active_runs -= 1;
            self.metrics.evicted += 1;
        }
    }

    /// The watermark reached `wm`: runs whose deadline is at or before it
    /// end, by deadline then run id. A run that completes by the clock
    /// (trailing `NOT`) yields a match stamped with its deadline; one that
    /// never completed yields a [`Timeout`] (when enabled).
    pub fn on_watermark(&mut self, wm: i64, out: &mut Output) {
        while let Some(&Reverse((d, id, p))) = self.timers.peek() {
            if d > wm {
                break;
            }
            self.timers.pop();
            let Some(part) = self.parts.get_mut(p as usize) else {
                continue;
            };
            let Ok(i) = part.runs.binary_search_by_key(&id, |r| r.id) else {
                continue;
            };
            if part.runs[i].deadline != d {
                continue;
            }
            let mut run = part.runs.remove(i);
            self.metrics.active_runs -= 1;
            finish(&self.c, &mut run, &part.key, out, &mut self.metrics);
        }
        if self.parts.len() > 2 * self.metrics.active_runs + 64 {
            self.compact();
        } else if self.timers.len() > 64 && self.timers.len() > 4 * self.metrics.active_runs {
            self.rebuild_timers();
        }
    }

    /// Drops heap entries of runs that have ended.
    fn rebuild_timers(&mut self) {
        self.timers = self
            .parts
            .iter()
            .enumerate()
            .flat_map(|(p, part)| {
                let p = u32::try_from(p).expect("fewer than 2^32 partitions");
                part.runs
                    .iter()
                    .filter(|r| r.deadline != i64::MAX)
                    .map(move |r| Reverse((r.deadline, r.id, p)))
            })
            .collect();
    }

    /// How far the runs of partition `key` have come: the most steps bound
    /// by one run, summed over its branches (`0` when no run is open).
    /// The symbol `.forecast` learns from (crate::forecast).
    pub fn progress(&self, key: Option<&ValueKey>) -> u16 {
        let Some(part) = self
            .find_partition(key)
            .and_then(|p| self.parts.get(p as usize))
        else {
            return 0;
        };
        part.runs
            .iter()
            .map(|r| {
                (0..self.c.branches.len())
                    .map(|b| r.progress.bound_in(&self.c.branches[b], b))
                    .fold(0u16, u16::saturating_add)
            })
            .max()
            .unwrap_or(0)
    }

    /// Every open run, for a snapshot.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            parts: self.parts.clone(),
            next_id: self.next_id,
            metrics: self.metrics,
        }
    }

    /// Replaces the state with a snapshot taken from a matcher with the same
    /// spec.
    pub fn restore(&mut self, s: Snapshot) {
        self.parts = s.parts;
        self.next_id = s.next_id;
        self.metrics = s.metrics;
        self.reindex();
        self.metrics.active_runs = self.parts.iter().map(|p| p.runs.len()).sum();
        self.rebuild_timers();
    }
}

/// Calls `f` with each way to bind an event given the accepting places
/// (grouped by branch, preferred first): the preferred place of every
/// branch; with `all` (skip-till-any-match), also each other place, with
/// the preferred places of the other branches.
fn for_choices(slots: &[Slot], all: bool, mut f: impl FnMut(&[Slot])) {
    if slots.is_empty() {
        return;
    }
    if !all {
        f(slots);
        return;
    }
    let mut pref: Vec<Slot> = Vec::new();
    for &(b, s) in slots {
        if !pref.iter().any(|&(pb, _)| pb == b) {
            pref.push((b, s));
        }
    }
    f(&pref);
    for &(b, s) in slots {
        if pref.contains(&(b, s)) {
            continue;
        }
        let set: Vec<Slot> = pref
            .iter()
            .map(|&(pb, ps)| if pb == b { (b, s) } else { (pb, ps) })
            .collect();
        f(&set);
    }
}

/// Emits a match for a run that just completed on an event at `t`.
fn emit(
    run: &mut Run,
    t: i64,
    key: &Option<ValueKey>,
    out: &mut Vec<Match>,
    metrics: &mut Metrics,
    limits: &Limits,
    emitted: &mut usize,
) {
    run.emitted = true;
    if *emitted >= limits.max_matches_per_event {
        metrics.capped += 1;
        return;
    }
    *emitted += 1;
    metrics.matches += 1;
    out.push(Match {
        time: t,
        start: run.start,
        key: key.clone(),
        bindings: run.bindings.clone(),
        absence: false,
    });
}

/// Ends a run at its deadline: an absence match, a timeout, or nothing (a
/// trailing-Kleene run that already produced its matches).
fn finish(
    c: &Compiled,
    run: &mut Run,
    key: &Option<ValueKey>,
    out: &mut Output,
    metrics: &mut Metrics,
) {
    if run.emitted {
        return;
    }
    let bindings = std::mem::take(&mut run.bindings);
    if c.complete(run, true) {
        metrics.matches += 1;
        metrics.absences += 1;
        out.matches.push(Match {
            time: run.deadline,
            start: run.start,
            key: key.clone(),
            bindings,
            absence: true,
        });
    } else {
        metrics.expired += 1;
        if c.spec.timeouts {
            out.timeouts.push(Timeout {
                deadline: run.deadline,
                start: run.start,
                key: key.clone(),
                bindings,
            });
        }
    }
}

/// Read-only access for [`super::inspect`] (introspection, never on the hot
/// path).
impl Matcher {
    /// The compiled pattern.
    pub(super) fn compiled(&self) -> &Compiled {
        &self.c
    }

    /// Every partition's key and open runs, in partition-creation order.
    pub(super) fn partitions(&self) -> impl Iterator<Item = (Option<&ValueKey>, &[Run])> + '_ {
        self.parts
            .iter()
            .map(|p| (p.key.as_ref(), p.runs.as_slice()))
    }

    /// The open runs of partition `key` (empty when it has none).
    pub(super) fn runs_of(&self, key: Option<&ValueKey>) -> &[Run] {
        self.find_partition(key)
            .and_then(|p| self.parts.get(p as usize))
            .map_or(&[][..], |p| p.runs.as_slice())
    }
}

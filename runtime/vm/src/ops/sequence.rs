//! The sequence operator: runs a [`SequenceSpec`] (in-stream `->` chains and
//! named patterns) with the SASE+ [`Matcher`] and turns its matches into
//! records for the rest of the chain.
//!
//! - Inputs: every event type or stream a step or a negation reads is
//!   routed to the stream ([`varpulis_program::Program::routes`]); the
//!   operator recognises the input by the event's type id.
//! - Filters: step and negation filters run in the interpreter with the
//!   candidate as the current event and the run's bindings for aliases.
//! - Match records: the last bound event (docs/LANGUAGE.md#match-output: unqualified names
//!   resolve against it; the completing event, or for an absence the latest
//!   binding), in the match layout (by field name when it is another
//!   type, e.g. an `OR` branch) and stamped
//!   with the match time (the completing event's, or the deadline for an
//!   absence), carrying the bindings for `alias.f`, `len(ks)`, ...
//! - Deadlines fire on the watermark ([`Operator::on_watermark`]); the
//!   matcher's open runs are the operator's snapshot state.
//! - Timeout streams ([`SequenceSpec::emit_timeouts`]): the operator runs its
//!   own copy of the sequence and outputs, instead of matches, one record per
//!   run that reached its deadline without completing: the latest bound
//!   event in the match layout, stamped with the deadline, with the
//!   bindings so far (unbound aliases read as no value).
//! - Forecasts ([`SequenceSpec::forecast`]): the operator outputs, instead
//!   of the matches, the predictions of [`super::forecast::ForecastOp`]
//!   from the progress state each relevant event leaves its partition in.

use super::forecast::ForecastOp;
use super::{decode, encode, Cx, Operator, Rec, StateResult};
use crate::interp::{arith, EvalCx};
use crate::sequence::trend::{self, TrendRules, TrendStats};
use crate::sequence::{
    Bindings, Eviction, InputIx, Limits, Matcher, MatcherSpec, Metrics, NegationSpec, Output,
    PatternNode, Predicates, Selection, SpecError, StepSpec,
};
use crate::sequence::{EventTrace, SequenceState};
use std::sync::Arc;
use varpulis_program::{
    Chunk, Event, InputRef, Instr, OnFull, PatternTree, Program, RunLimits, SchemaId,
    SelectionPolicy, SequenceSpec, TrendFn, TrendSpec, Value, ValueKey,
};

/// `OpSpec::Sequence`: a matcher plus the bytecode of its filters and keys.
pub struct SequenceOp {
    matcher: Matcher,
    /// Step filters, by step.
    steps: Vec<Option<Chunk>>,
    /// Step filters of the form `field <cmp> alias.field` (the common
    /// "compared with an earlier event" filter), evaluated without the
    /// interpreter loop: (field slot, alias, alias slot, comparison).
    simple: Vec<Option<(u16, u16, u16, Instr)>>,
    /// Negation filters, by negation.
    negs: Vec<Option<Chunk>>,
    /// The matcher input of an arriving event, by its type id.
    input_of: Vec<Option<InputIx>>,
    /// Partition key per matcher input (`None` inside: shared key `""`);
    /// `None` when the sequence is unpartitioned.
    keys: Option<Vec<Option<Chunk>>>,
    /// Alias slots in the matcher (declared plus hidden ones for steps
    /// without an alias, so every bound event is kept).
    aliases: u16,
    /// Layout of match events.
    schema: SchemaId,
    /// Output expired runs instead of matches (a timeout stream).
    emit_timeouts: bool,
    /// `.trend_aggregate`: output trend aggregates per match instead of
    /// the match event; with the alias slot of the trend step.
    trend: Option<(TrendSpec, u16)>,
    /// `.forecast`: output predictions instead of matches.
    forecast: Option<ForecastOp>,
    /// Reused matcher output.
    out: Output,
    /// What each event did to the runs, while the engine traces (`:why`).
    trace: Option<Vec<EventTrace>>,
}

impl SequenceOp {
    /// Builds the matcher for `spec` (inputs resolved against `program`).
    pub fn new(program: &Program, spec: &SequenceSpec) -> Result<SequenceOp, SpecError> {
        SequenceOp::with_limits(program, spec, Limits::default())
    }

    /// Like [`SequenceOp::new`], with `defaults` for the run limits that
    /// the spec's `.limit_runs` does not set.
    pub fn with_limits(
        program: &Program,
        spec: &SequenceSpec,
        defaults: Limits,
    ) -> Result<SequenceOp, SpecError> {
        let inputs = spec.inputs();
        let ix = |i: &InputRef| -> InputIx {
            let k = inputs.iter().position(|x| x == i).unwrap_or(0);
            u32::try_from(k).unwrap_or(u32::MAX)
        };
        // Steps without an alias get a hidden one, so that the last step's
        // event is always available for the match record.
        let declared = spec.aliases.len();
        let mut hidden = 0usize;
        let mut steps = Vec::with_capacity(spec.steps.len());
        for s in &spec.steps {
            let alias = match s.alias {
                Some(a) => a,
                None => {
                    hidden += 1;
                    u16::try_from(declared + hidden - 1).unwrap_or(u16::MAX)
                }
            };
            steps.push(StepSpec {
                input: ix(&s.input),
                kleene: s.kleene,
                alias: Some(alias),
                has_filter: s.filter.is_some(),
            });
        }
        let aliases = u16::try_from(declared + hidden).unwrap_or(u16::MAX);
        let forecast = spec.forecast.as_ref().map(|f| {
            let n = u16::try_from(spec.steps.len()).unwrap_or(u16::MAX);
            ForecastOp::new(program, f, n)
        });
        let trend = spec.trend.as_ref().and_then(|t| {
            let alias = steps.get(usize::from(t.step))?.alias?;
            Some((t.clone(), alias))
        });
        let negations = spec
            .negations
            .iter()
            .map(|n| NegationSpec {
                input: ix(&n.input),
                has_filter: n.filter.is_some(),
                after_step: n.after_step,
            })
            .collect();
        let mspec = MatcherSpec {
            steps,
            aliases,
            negations,
            within: spec.within,
            root: tree(&spec.root),
            selection: match spec.selection {
                SelectionPolicy::Reference => Selection::Reference,
                SelectionPolicy::StrictContiguity => Selection::StrictContiguity,
                SelectionPolicy::SkipTillNextMatch => Selection::SkipTillNextMatch,
                SelectionPolicy::SkipTillAnyMatch => Selection::SkipTillAnyMatch,
            },
            timeouts: spec.emit_timeouts,
        };
        let matcher = Matcher::new(mspec, run_limits(&spec.limits, defaults))?;
        let mut input_of = vec![None; program.schemas.len()];
        for (k, i) in inputs.iter().enumerate() {
            let schema = match i {
                InputRef::Event(s) => Some(*s),
                InputRef::Stream(t) => program.streams.get(*t as usize).map(|p| p.output_schema),
            };
            if let Some(slot) = schema.and_then(|s| input_of.get_mut(s as usize)) {
                if slot.is_none() {
                    *slot = u32::try_from(k).ok();
                }
            }
        }
        let keys = spec.partition.as_ref().map(|per_step| {
            inputs
                .iter()
                .map(|i| {
                    let from_step = spec
                        .steps
                        .iter()
                        .zip(per_step.iter())
                        .find(|(s, _)| s.input == *i)
                        .map(|(_, k)| k.clone());
                    match from_step {
                        Some(k) => k,
                        None => spec
                            .negations
                            .iter()
                            .find(|n| n.input == *i)
                            .and_then(|n| n.partition.clone()),
                    }
                })
                .collect()
        });
        Ok(SequenceOp {
            matcher,
            steps: spec.steps.iter().map(|s| s.filter.clone()).collect(),
            simple: spec
                .steps
                .iter()
                .map(|s| s.filter.as_ref().and_then(simple_filter))
                .collect(),
            negs: spec.negations.iter().map(|n| n.filter.clone()).collect(),
            input_of,
            keys,
            aliases,
            schema: spec.schema,
            emit_timeouts: spec.emit_timeouts,
            trend,
            forecast,
            out: Output::default(),
            trace: None,
        })
    }

    /// Turns the matcher's matches (or, for a timeout stream, its expired
    /// runs) into records. `current` is the event being processed (it
    /// completed every non-absence match).
    fn emit(&mut self, cx: &mut Cx<'_>, current: Option<&Arc<Event>>, out: &mut Vec<Rec>) {
        let program = cx.program;
        if self.emit_timeouts {
            self.out.matches.clear();
            let mut ts = std::mem::take(&mut self.out.timeouts);
            for t in ts.drain(..) {
                let last = self.latest_binding(&t.bindings);
                out.push(self.record(program, last, t.deadline, t.bindings));
            }
            self.out.timeouts = ts;
            return;
        }
        // Taken and put back so the buffer keeps its capacity.
        let mut ms = std::mem::take(&mut self.out.matches);
        for m in ms.drain(..) {
            // The last bound event: the completing one, or for an absence
            // (completed by the clock) the latest binding.
            if let Some((t, alias)) = &self.trend {
                out.push(trend_record(cx, t, *alias, m.time, m.bindings));
                continue;
            }
            let last = match current {
                Some(c) if !m.absence => Some(c.clone()),
                _ => self.latest_binding(&m.bindings),
            };
            out.push(self.record(program, last, m.time, m.bindings));
        }
        self.out.matches = ms;
        self.out.timeouts.clear();
    }

    /// The most recent event bound by any alias.
    fn latest_binding(&self, b: &Bindings) -> Option<Arc<Event>> {
        (0..self.aliases)
            .filter_map(|a| b.get(a))
            .max_by_key(|e| e.time)
            .cloned()
    }

    /// One output record: `last` in the match layout, stamped `time`.
    fn record(
        &self,
        program: &Program,
        last: Option<Arc<Event>>,
        time: i64,
        bindings: Bindings,
    ) -> Rec {
        let ev = match last {
            Some(e) if e.type_id == self.schema && e.time == time => e,
            Some(e) if e.type_id == self.schema => Arc::new(Event {
                type_id: self.schema,
                time,
                fields: e.fields.clone(),
                extra: e.extra.clone(),
            }),
            // Another layout (an `OR` branch, a `T?` left empty, the first
            // step of an expired run): its fields by name in the match layout.
            Some(e) => {
                let fields = match (
                    program.schemas.get(self.schema as usize),
                    program.schemas.get(e.type_id as usize),
                ) {
                    (Some(to), Some(from)) => to
                        .fields
                        .iter()
                        .map(|f| {
                            let slot = from.fields.iter().position(|g| g.name == f.name)?;
                            e.fields.get(slot).cloned().flatten()
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                let mut ev = Event::new(self.schema, time, fields);
                ev.extra.clone_from(&e.extra);
                Arc::new(ev)
            }
            None => Arc::new(Event::new(self.schema, time, Vec::new())),
        };
        Rec {
            ev,
            key: None,
            bindings: Some(Arc::new(bindings)),
        }
    }
}

/// `LoadField(f); LoadAlias(a, g); <cmp>` as (f, a, g, cmp).
fn simple_filter(c: &Chunk) -> Option<(u16, u16, u16, Instr)> {
    match c.code.as_slice() {
        [Instr::LoadField(f), Instr::LoadAlias(a, g), op]
        | [Instr::LoadField(f), Instr::LoadAlias(a, g), op, Instr::Return]
            if matches!(
                op,
                Instr::Eq | Instr::Ne | Instr::Lt | Instr::Le | Instr::Gt | Instr::Ge
            ) =>
        {
            Some((*f, *a, *g, *op))
        }
        _ => None,
    }
}

fn tree(t: &PatternTree) -> PatternNode {
    match t {
        PatternTree::Seq(r) => PatternNode::Seq(r.clone()),
        PatternTree::And(c) => PatternNode::And(c.iter().map(tree).collect()),
        PatternTree::Or(c) => PatternNode::Or(c.iter().map(tree).collect()),
    }
}

/// Step and negation filters evaluated by the interpreter.
struct Filters<'a, 'b> {
    cx: &'a mut Cx<'b>,
    steps: &'a [Option<Chunk>],
    simple: &'a [Option<(u16, u16, u16, Instr)>],
    negs: &'a [Option<Chunk>],
}

impl Filters<'_, '_> {
    fn test(&mut self, chunk: Option<&Option<Chunk>>, ev: &Event, b: &Bindings) -> bool {
        let Some(Some(c)) = chunk else {
            return true;
        };
        let mut ecx = EvalCx::event(ev, self.cx.now);
        ecx.bindings = Some(b);
        self.cx.vm.test(self.cx.program, self.cx.globals, c, &ecx)
    }
}

impl Predicates for Filters<'_, '_> {
    fn step(&mut self, step: usize, ev: &Event, bindings: &Bindings) -> bool {
        if let Some(Some((f, a, g, op))) = self.simple.get(step) {
            // Same comparison function as the interpreter; a missing value
            // is not true. Errors take the interpreter path so they are
            // reported with their span.
            let (Some(x), Some(y)) = (ev.get(*f), bindings.get(*a).and_then(|e| e.get(*g))) else {
                return false;
            };
            if let Ok(r) = arith::binary(*op, x, y) {
                return matches!(r, Value::Bool(true));
            }
        }
        let steps = self.steps;
        self.test(steps.get(step), ev, bindings)
    }

    fn negation(&mut self, neg: usize, ev: &Event, bindings: &Bindings) -> bool {
        let negs = self.negs;
        self.test(negs.get(neg), ev, bindings)
    }
}

impl Operator for SequenceOp {
    fn process(&mut self, rec: Rec, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        let Some(Some(input)) = self.input_of.get(rec.ev.type_id as usize).copied() else {
            return;
        };
        let key = self.keys.as_ref().map(|keys| {
            let v = match keys.get(input as usize) {
                Some(Some(k)) => cx.eval(k, &rec.ev),
                _ => None,
            };
            ValueKey(v.unwrap_or_else(|| Value::str("")))
        });
        let mut preds = Filters {
            cx,
            steps: &self.steps,
            simple: &self.simple,
            negs: &self.negs,
        };
        if let Some(t) = &mut self.trace {
            t.push(
                self.matcher
                    .explain_event(input, key.as_ref(), &rec.ev, &mut preds),
            );
        }
        self.matcher
            .on_event(input, key.as_ref(), &rec.ev, &mut preds, &mut self.out);
        if let Some(f) = &mut self.forecast {
            // The event completed a match of its key, or left its runs at
            // their furthest progress.
            let state = if self.out.matches.iter().any(|m| !m.absence) {
                f.model().complete()
            } else {
                self.matcher.progress(key.as_ref())
            };
            self.out.clear();
            f.observe(cx.program, key.as_ref(), state, &rec.ev, out);
            if let Some(e) = self.trace.as_mut().and_then(|t| t.last_mut()) {
                e.forecast = Some(f.note(state));
            }
            return;
        }
        self.emit(cx, Some(&rec.ev), out);
    }

    fn on_watermark(&mut self, wm: i64, cx: &mut Cx<'_>, out: &mut Vec<Rec>) {
        if let Some(t) = &mut self.trace {
            t.push(self.matcher.explain_watermark(wm));
        }
        self.matcher.on_watermark(wm, &mut self.out);
        if self.forecast.is_some() {
            // Runs that end at a deadline show in the next event's state.
            self.out.clear();
            return;
        }
        self.emit(cx, None, out);
    }

    fn next_timer(&self) -> Option<i64> {
        self.matcher.next_timer()
    }

    fn save(&self) -> StateResult<Option<Vec<u8>>> {
        match &self.forecast {
            // With a forecast, the model goes along with the runs.
            Some(f) => encode(&(self.matcher.snapshot(), f.snapshot())),
            None => encode(&self.matcher.snapshot()),
        }
    }

    fn load(&mut self, bytes: &[u8]) -> StateResult<()> {
        match &mut self.forecast {
            Some(f) => {
                let (runs, model) = decode(bytes)?;
                self.matcher.restore(runs);
                f.restore(model);
            }
            None => self.matcher.restore(decode(bytes)?),
        }
        Ok(())
    }

    fn memory(&self) -> Option<crate::memory::OpMemory> {
        let mut m = self.matcher.memory();
        if let Some(f) = &self.forecast {
            m.bytes += f.model().bytes();
        }
        Some(m)
    }

    fn sequence_metrics(&self) -> Option<Metrics> {
        Some(self.matcher.metrics())
    }

    fn inspect_sequence(&self) -> Option<SequenceState> {
        let mut st = self.matcher.inspect();
        st.forecast = self.forecast.as_ref().map(|f| f.model().view());
        Some(st)
    }

    fn set_trace(&mut self, on: bool) {
        self.trace = on.then(Vec::new);
    }

    fn take_sequence_trace(&mut self) -> Vec<EventTrace> {
        self.trace.as_mut().map(std::mem::take).unwrap_or_default()
    }
}

/// The matcher limits: the stream's `.limit_runs` over the engine defaults.
fn run_limits(l: &RunLimits, defaults: Limits) -> Limits {
    let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    Limits {
        max_runs_per_partition: l.per_key.map_or(defaults.max_runs_per_partition, size),
        max_runs: l.total.map_or(defaults.max_runs, size),
        eviction: match l.on_full {
            None => defaults.eviction,
            Some(OnFull::EvictOldest) => Eviction::EvictOldest,
            Some(OnFull::RejectNew) => Eviction::RejectNew,
        },
        ..defaults
    }
}

/// The `.trend_aggregate` record of one match: the items over every trend of
/// the trend step's events (`alias`), then `is_final`, stamped `time`.
fn trend_record(cx: &mut Cx<'_>, t: &TrendSpec, alias: u16, time: i64, bindings: Bindings) -> Rec {
    let events = bindings.to_vec(alias);
    // Per event, the match's bindings with the trend alias bound to it: the
    // adjacency reads the previous event, values the event itself.
    let per: Vec<Bindings> = events
        .iter()
        .map(|e| {
            let mut b = bindings.clone();
            b.set(alias, e.clone());
            b
        })
        .collect();
    let mut rules = TrendEval {
        cx,
        adjacent: t.adjacent.as_ref(),
        value: None,
        index: events
            .iter()
            .enumerate()
            .map(|(i, e)| (Arc::as_ptr(e) as usize, i))
            .collect(),
        per: &per,
    };
    let counts = trend::aggregate(&events, &mut rules);
    let mut fields = Vec::with_capacity(t.items.len() + 1);
    for item in &t.items {
        let st: TrendStats = match (&item.func, &item.value) {
            (TrendFn::CountTrends | TrendFn::CountEvents, _) | (_, None) => counts,
            (_, Some(v)) => {
                rules.value = Some(v);
                trend::aggregate(&events, &mut rules)
            }
        };
        // `as` saturates: 2^n trends beyond i64 read as i64::MAX.
        fields.push(match item.func {
            TrendFn::CountTrends => Some(Value::Int(st.trends as i64)),
            TrendFn::CountEvents => Some(Value::Int(st.events as i64)),
            TrendFn::Sum => Some(Value::Float(st.sum)),
            TrendFn::Avg => st.avg().map(Value::Float),
            TrendFn::Min => st.min.map(Value::Float),
            TrendFn::Max => st.max.map(Value::Float),
        });
    }
    fields.push(Some(Value::Bool(true)));
    Rec {
        ev: Arc::new(Event::new(t.schema, time, fields)),
        key: None,
        bindings: Some(Arc::new(bindings)),
    }
}

/// [`TrendRules`] of a trend step: every accumulated event may start or end
/// a trend (it passed the step filter's non-self-referential part); the
/// adjacency and the values run in the interpreter.
struct TrendEval<'a, 'b, 'c> {
    cx: &'a mut Cx<'b>,
    adjacent: Option<&'c Chunk>,
    value: Option<&'c Chunk>,
    /// Position in `per` by event address.
    index: std::collections::HashMap<usize, usize>,
    per: &'c [Bindings],
}

impl<'c> TrendEval<'_, '_, 'c> {
    /// The bindings with the trend alias bound to `ev` (one of `events`).
    fn bound_to(&self, ev: &Event) -> Option<&'c Bindings> {
        let i = *self.index.get(&(ev as *const Event as usize))?;
        let per = self.per;
        per.get(i)
    }

    fn eval(&mut self, chunk: &Chunk, ev: &Event, b: Option<&Bindings>) -> Option<Value> {
        let mut ecx = EvalCx::event(ev, self.cx.now);
        ecx.bindings = b;
        self.cx
            .vm
            .eval(self.cx.program, self.cx.globals, chunk, &ecx)
    }
}

impl TrendRules for TrendEval<'_, '_, '_> {
    fn starts(&mut self, _: &Event) -> bool {
        true
    }

    fn ends(&mut self, _: &Event) -> bool {
        true
    }

    fn adjacent(&mut self, prev: &Event, next: &Event) -> bool {
        let Some(c) = self.adjacent else {
            return true;
        };
        let b = self.bound_to(prev);
        matches!(self.eval(c, next, b), Some(Value::Bool(true)))
    }

    fn value(&mut self, ev: &Event) -> Option<f64> {
        let c = self.value?;
        let b = self.bound_to(ev);
        match self.eval(c, ev, b)? {
            Value::Int(i) => Some(i as f64),
            Value::Float(f) => Some(f),
            _ => None,
        }
    }
}

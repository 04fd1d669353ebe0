//! The engine driver: routes events through stream plans, keeps event time,
//! fires timers on watermark progress, collects outputs and side outputs,
//! counts metrics, and snapshots/restores all state.
//!
//! Everything is synchronous and deterministic: no threads, no wall clock.
//! Time is event time; `now()` is the time of the event being processed (or
//! the watermark when timers fire).

pub mod lane;
mod load;
pub mod snapshot;
pub mod source;

use crate::error::{LoadError, RuntimeError};
use crate::interp::Vm;
use crate::ops::{Cx, Operator, Rec};
use serde::{Deserialize, Serialize};
use source::SourceRt;
use std::collections::VecDeque;
use std::sync::Arc;
use varpulis_program::{
    ConfigValue, ConnectorId, Event, LogLevel, Program, Routes, SchemaId, Value,
};

/// How many spent events the engine keeps for operators to build new ones in.
const SPENT_KEPT: usize = 8;

/// How many field lists of spent outputs the engine keeps for new outputs.
const OUTPUT_FIELDS_KEPT: usize = 256;

/// Engine options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// [`Engine::finish`] moves the watermark to +∞ so every time window,
    /// session and timer fires (docs/LANGUAGE.md#event-time-watermarks-and-lateness). On by default.
    pub flush_at_end: bool,
    /// [`Engine::finish`] also releases incomplete count windows. Off by
    /// default (REF never releases them).
    pub flush_partial_count_windows: bool,
    /// Default bounds on every sequence's open runs; a stream's
    /// `.limit_runs(...)` overrides the bounds it names (PATTERNS.md
    /// *Bounded state*).
    pub sequence_limits: crate::sequence::Limits,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            flush_at_end: true,
            flush_partial_count_windows: false,
            sequence_limits: crate::sequence::Limits::default(),
        }
    }
}

/// A visible output: an event leaving a stream that has `.emit`/`.process`.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    /// The stream's name.
    pub stream: Arc<str>,
    /// The event type (the stream name for `.emit` outputs).
    pub event_type: Arc<str>,
    /// Event time, ns since the epoch.
    pub time: i64,
    /// Present fields in layout order, then pass-through undeclared fields.
    pub fields: Vec<(Arc<str>, Value)>,
}

/// Output besides the visible events, for the host to print or send.
#[derive(Clone, Debug, PartialEq)]
pub enum SideOutput {
    /// A `.print(...)` line.
    Print {
        /// The stream.
        stream: Arc<str>,
        /// `[PRINT] ...`.
        line: String,
    },
    /// A `.log(...)` line.
    Log {
        /// The stream.
        stream: Arc<str>,
        /// The level.
        level: LogLevel,
        /// `[LEVEL] [stream] message data=...`.
        line: String,
    },
    /// An event for a `.to(...)` sink.
    Sink {
        /// The connector.
        connector: ConnectorId,
        /// `topic` of the site, else of the connector.
        topic: Option<Arc<str>>,
        /// Site parameters.
        params: Vec<(Arc<str>, ConfigValue)>,
        /// The payload (`event_type` is the stream name).
        output: Output,
    },
}

/// Counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metrics {
    /// Events pushed.
    pub events_in: u64,
    /// Events that left each stream's chain, by stream id.
    pub out_per_stream: Vec<u64>,
    /// Input events older than the watermark on arrival.
    pub late: u64,
    /// Events dropped: beyond a stream's allowed lateness (counted per
    /// stream), or with an invalid type id.
    pub dropped: u64,
    /// Runtime errors (expressions that failed).
    pub runtime_errors: u64,
    /// Sequence matchers, summed over every sequence operator: open runs,
    /// matches, expired, killed, evicted, rejected and capped runs
    /// (docs/PATTERNS.md, Bounded state). Derived from the operators'
    /// state, so not part of the engine's own snapshot record.
    #[serde(skip)]
    pub patterns: crate::sequence::Metrics,
    /// `.pattern` window tests, summed over every stream: groups tested and
    /// groups whose test was true. Derived from the operators' state.
    #[serde(skip)]
    pub window_patterns: WindowPatternMetrics,
    /// Late events not processed, by stream id (since this engine started: not part of the
    /// snapshot record).
    #[serde(skip)]
    pub late_per_stream: Vec<u64>,
    /// Runtime errors by stream id (since this engine started).
    #[serde(skip)]
    pub errors_per_stream: Vec<u64>,
}

/// Counters of the `.pattern` window tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowPatternMetrics {
    /// Window groups tested.
    pub tested: u64,
    /// Window groups whose test was `true` (one output event each).
    pub matched: u64,
}

pub(crate) struct StreamRt {
    pub name: Arc<str>,
    pub source: SourceRt,
    pub ops: Vec<Box<dyn Operator>>,
    pub output_schema: SchemaId,
    pub visible: bool,
    pub allowed_lateness: Option<i64>,
    /// Plan index of each runtime operator (fusion and `.emit()` make the
    /// two lists differ), for [`crate::inspect`].
    pub origin: Vec<usize>,
    /// `.on_error(Conn)`: where the stream's runtime errors also go.
    pub on_error: Option<crate::ops::on_error::ErrorSink>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct TimeState {
    pub watermark: Option<i64>,
    /// Max event time per input schema.
    pub src_max: Vec<Option<i64>>,
    /// Out-of-orderness per input schema.
    pub ooo: Vec<i64>,
    pub first_seen: Option<i64>,
    pub max_seen: Option<i64>,
}

impl TimeState {
    fn candidate(&self) -> Option<i64> {
        self.src_max
            .iter()
            .zip(self.ooo.iter())
            .filter_map(|(m, o)| m.map(|m| m.saturating_sub(*o)))
            .min()
    }
}

/// The parts of the engine operators may use, apart from the streams.
pub(crate) struct Shared {
    pub program: Arc<Program>,
    pub vm: Vm,
    pub globals: Vec<Option<Value>>,
    pub side: Vec<SideOutput>,
    /// The watermark operators see ([`Cx::watermark`]).
    pub watermark: Option<i64>,
    /// The host's answers to `.enrich` lookups ([`Engine::set_enricher`]).
    pub enricher: Box<dyn crate::enrich::Enricher>,
    /// Events that left their last stream with nothing else holding them, for operators to
    /// build new events in ([`Cx::new_event`]). Not state.
    pub spent: Vec<Arc<Event>>,
}

impl Shared {
    fn cx<'a>(&'a mut self, stream: &'a Arc<str>, now: i64) -> Cx<'a> {
        if !self
            .vm
            .stream
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, stream))
        {
            self.vm.stream = Some(stream.clone());
        }
        Cx {
            program: &self.program,
            vm: &mut self.vm,
            globals: &mut self.globals,
            side: &mut self.side,
            stream,
            now,
            watermark: self.watermark,
            enricher: self.enricher.as_mut(),
            spent: &mut self.spent,
        }
    }
}

/// The deterministic engine running one [`Program`].
pub struct Engine {
    shared: Shared,
    pub(crate) streams: Vec<StreamRt>,
    routes: Routes,
    topo: Vec<usize>,
    /// Whether each input schema feeds some stream (only those drive time).
    consumed: Vec<bool>,
    /// For each stream fed by a connector (`T.from(C)`), its subscription
    /// (an index into [`Program::subscriptions`]).
    from_sub: Vec<Option<u32>>,
    config: EngineConfig,
    pub(crate) metrics: Metrics,
    time: TimeState,
    queue: VecDeque<(usize, u16, Rec)>,
    cur: Vec<Rec>,
    scratch: Vec<Rec>,
    /// The `:why` trace, `None` unless [`Engine::set_trace`] turned it on.
    pub(crate) trace: Option<Box<crate::inspect::Trace>>,
    /// `Some` when this engine runs one context of a pipeline
    /// ([`Engine::run_only`]).
    lane: Option<Box<lane::Lane>>,
    /// The last input event's shared handle, kept so that its allocation carries the next
    /// input event when no operator kept it (a filter drops most events): reused by
    /// [`Engine::push_from`], let go where a stream re-types the event in place. Not state.
    recycled: Option<Arc<Event>>,
    /// The slots of the event that the last reuse replaced, emptied, for the host's decoder
    /// ([`Engine::take_spare_slots`]).
    spare_slots: Option<Vec<Option<Value>>>,
    /// Field lists of outputs the host is done with ([`Engine::recycle_outputs`]), emptied,
    /// for the next visible outputs. Not state.
    output_fields: Vec<Vec<(Arc<str>, Value)>>,
    /// Each schema's names as visible outputs carry them ([`OutputNames`]). Not state.
    names: Vec<OutputNames>,
}

/// The names of one schema for its visible outputs, copied for each engine: outputs clone
/// them, and engines on several threads cloning and dropping the program's own strings would
/// contend for their reference counts.
pub(crate) struct OutputNames {
    pub event_type: Arc<str>,
    pub fields: Vec<Arc<str>>,
}

impl Engine {
    /// Loads a program with the default configuration: validates ids,
    /// rejects stream cycles and unsupported features, runs global
    /// initialisers in order.
    pub fn new(program: Arc<Program>) -> Result<Engine, LoadError> {
        Engine::with_config(program, EngineConfig::default())
    }

    /// Loads a program with a configuration.
    pub fn with_config(program: Arc<Program>, config: EngineConfig) -> Result<Engine, LoadError> {
        load::build(program, config, &crate::model::Models::new())
    }

    /// Loads a program with a configuration and the models its `.score`
    /// operators run (read and loaded by the host: [`crate::model::load`]).
    /// A `.score` whose model is not in `models`, or does not fit it, is a
    /// [`LoadError::Model`].
    pub fn with_models(
        program: Arc<Program>,
        config: EngineConfig,
        models: &crate::model::Models,
    ) -> Result<Engine, LoadError> {
        load::build(program, config, models)
    }

    /// The program being run.
    pub fn program(&self) -> &Arc<Program> {
        &self.shared.program
    }

    /// Pushes one event and returns the visible outputs it caused.
    pub fn push(&mut self, event: Event) -> Vec<Output> {
        let mut out = Vec::new();
        self.push_into(event, &mut out);
        out
    }

    /// Pushes one event, appending visible outputs to `out` (no allocation
    /// when nothing is emitted). Order: the event runs through every
    /// consuming stream first (REF window rules apply to it), then the
    /// watermark moves and windows of other partitions close.
    ///
    /// The event has no origin: it reaches every stream that reads its type,
    /// `T.from(Conn)` streams included (replayed files test such rules).
    pub fn push_into(&mut self, event: Event, out: &mut Vec<Output>) {
        self.push_from(event, None, out);
    }

    /// Pushes one event received by connector subscription `origin` (an index
    /// into [`Program::subscriptions`]): `T.from(...)` streams of other
    /// subscriptions do not see it; streams that read `T` without `.from`
    /// do. `None` is [`Engine::push_into`].
    pub fn push_from(&mut self, event: Event, origin: Option<u32>, out: &mut Vec<Output>) {
        self.metrics.events_in += 1;
        let ty = event.type_id as usize;
        if ty >= self.shared.program.schemas.len() {
            self.metrics.dropped += 1;
            return;
        }
        let t = event.time;
        self.begin_step();
        let prev_wm = self.time.watermark;
        let late = prev_wm.is_some_and(|w| t < w);
        if late {
            self.metrics.late += 1;
        }
        let next_wm = self.count_time(ty, t);
        self.shared.watermark = next_wm.or(prev_wm);
        let mut rec = Some(Rec::new(self.share(event)));
        let consumers = self.routes.by_event.get(ty).map_or(&[][..], Vec::as_slice);
        for (i, c) in consumers.iter().enumerate() {
            let s = c.stream as usize;
            if let (Some(o), 0, Some(Some(sub))) = (origin, c.input, self.from_sub.get(s)) {
                if *sub != o {
                    continue;
                }
            }
            // Move the record into the last consumer so a single consumer
            // owns the event uniquely (no copy when it is re-typed).
            let r = if i + 1 == consumers.len() {
                rec.take()
            } else {
                rec.clone()
            };
            let Some(r) = r else { break };
            // A stream of another context: only its late events may matter
            // here (to late streams of this one); it counts them itself.
            let active = self.is_active(s);
            // Late beyond the stream's allowed lateness (default 0): counted,
            // routed to the stream's late streams, not processed (DESIGN.md,
            // Time).
            if let (true, Some(w)) = (late, prev_wm) {
                let lateness = self
                    .streams
                    .get(s)
                    .and_then(|st| st.allowed_lateness)
                    .unwrap_or(0);
                if t < w.saturating_sub(lateness.max(0)) {
                    if active {
                        self.metrics.dropped += 1;
                        let per = &mut self.metrics.late_per_stream;
                        if per.len() <= s {
                            per.resize(s + 1, 0);
                        }
                        if let Some(n) = per.get_mut(s) {
                            *n += 1;
                        }
                    }
                    for lc in self.routes.by_late.get(s).map_or(&[][..], Vec::as_slice) {
                        self.queue.push_back((lc.stream as usize, 0, r.clone()));
                    }
                    continue;
                }
            }
            if active {
                self.queue.push_back((s, c.input, r));
            }
        }
        self.enter_stage(0);
        self.drain(t, out);
        if let Some(c) = next_wm {
            self.advance(c, out);
        }
        self.end_step(t, out);
    }

    /// `event` behind a shared handle: the previous input event's allocation when nothing
    /// kept that event (its slots are kept for [`Engine::take_spare_slots`]), else a new one.
    /// The engine holds a second handle until the next event.
    fn share(&mut self, event: Event) -> Arc<Event> {
        let shared = match self.recycled.take() {
            Some(mut held) => match Arc::get_mut(&mut held) {
                Some(place) => {
                    let mut slots = std::mem::replace(place, event).fields;
                    slots.clear();
                    self.spare_slots = Some(slots);
                    held
                }
                None => Arc::new(event),
            },
            None => Arc::new(event),
        };
        self.recycled = Some(shared.clone());
        shared
    }

    /// Takes back outputs the host is done with (written or sent), emptying `outputs`: their
    /// field lists carry the next outputs, so a steady stream of outputs allocates none.
    pub fn recycle_outputs(&mut self, outputs: &mut Vec<Output>) {
        for o in outputs.drain(..) {
            if self.output_fields.len() < OUTPUT_FIELDS_KEPT {
                let mut fields = o.fields;
                fields.clear();
                self.output_fields.push(fields);
            }
        }
    }

    /// The emptied slots of an input event no operator kept, when there are: a host that
    /// decodes into them allocates no new ones.
    pub fn take_spare_slots(&mut self) -> Option<Vec<Option<Value>>> {
        self.spare_slots.take()
    }

    /// Applies the time bookkeeping of an input event of type `type_id` at
    /// `time` without running the event through any stream: the source's
    /// maximum time, the watermark and the first/last times seen move exactly
    /// as [`Engine::push_from`] would move them, and windows and timers the
    /// new watermark passes fire into `out`.
    ///
    /// A partition-parallel host gives every engine shard every input event:
    /// the event itself to the shard that owns its key, and only its time to
    /// the others, so time (and so every window close) evolves identically in
    /// all shards. The event is not counted in `events_in` nor in `late`:
    /// those belong to the shard that runs it.
    pub fn observe_time(&mut self, type_id: SchemaId, time: i64, out: &mut Vec<Output>) {
        let ty = type_id as usize;
        if ty >= self.shared.program.schemas.len() {
            return;
        }
        self.begin_step();
        self.enter_stage(0);
        self.drain(time, out);
        if let Some(c) = self.count_time(ty, time) {
            self.advance(c, out);
        }
        self.end_step(time, out);
    }

    /// Counts an input event of schema `ty` at time `t` in the time state and
    /// returns the watermark it moves to, if it moves: windows it passes
    /// close right after the event has run, and operators may close them
    /// while it runs (REF order for the event's own partition).
    fn count_time(&mut self, ty: usize, t: i64) -> Option<i64> {
        let prev_wm = self.time.watermark;
        self.time.first_seen.get_or_insert(t);
        self.time.max_seen = Some(self.time.max_seen.map_or(t, |m| m.max(t)));
        let mut moved = false;
        if self.consumed.get(ty).copied().unwrap_or(false) {
            if let Some(m) = self.time.src_max.get_mut(ty) {
                if m.is_none_or(|m| t > m) {
                    *m = Some(t);
                    moved = true;
                }
            }
        }
        if moved {
            self.time
                .candidate()
                .filter(|c| prev_wm.is_none_or(|w| *c > w))
        } else {
            None
        }
    }

    /// Moves the watermark forward to `ts` (never backwards) and returns the
    /// outputs of windows and timers that close.
    pub fn advance_watermark(&mut self, ts: i64) -> Vec<Output> {
        let mut out = Vec::new();
        self.begin_step();
        if self.time.watermark.is_none_or(|w| ts > w) {
            self.advance(ts, &mut out);
        }
        let now = self.time.max_seen.map_or(ts, |m| m.min(ts));
        self.end_step(now, &mut out);
        out
    }

    /// End of bounded input: with [`EngineConfig::flush_at_end`] the
    /// watermark goes to +∞ so every window, session and timer fires; with
    /// [`EngineConfig::flush_partial_count_windows`] incomplete count windows
    /// are released too.
    pub fn finish(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        self.begin_step();
        if self.config.flush_at_end {
            self.advance(i64::MAX, &mut out);
        }
        if self.config.flush_partial_count_windows {
            let now = self.time.max_seen.unwrap_or(0);
            let base = self.stage_base();
            for k in 0..self.topo.len() {
                let s = self.topo[k];
                let stage = base.saturating_add(u32::try_from(k).unwrap_or(u32::MAX));
                if let Some(l) = &mut self.lane {
                    l.set_stage(stage);
                }
                let ops = if self.is_active(s) {
                    self.streams[s].ops.len()
                } else {
                    0
                };
                for i in 0..ops {
                    let mut cur = std::mem::take(&mut self.cur);
                    {
                        let StreamRt { name, ops, .. } = &mut self.streams[s];
                        let mut cx = self.shared.cx(name, now);
                        if let Some(op) = ops.get_mut(i) {
                            op.flush_partial(&mut cx, &mut cur);
                        }
                    }
                    self.run_from(s, i + 1, &mut cur, now, &mut out);
                    self.cur = cur;
                }
                self.enter_stage(stage);
                self.drain(now, &mut out);
            }
        }
        let now = self.time.max_seen.unwrap_or(0);
        self.end_step(now, &mut out);
        out
    }

    /// The current watermark (`None` before any event).
    pub fn watermark(&self) -> Option<i64> {
        self.time.watermark
    }

    /// Counters so far.
    pub fn metrics(&self) -> Metrics {
        let mut m = self.metrics.clone();
        m.runtime_errors = self.shared.vm.error_count;
        m.late_per_stream.resize(self.streams.len(), 0);
        let errors = &self.shared.vm.errors_by_stream;
        m.errors_per_stream = self
            .streams
            .iter()
            .map(|st| {
                errors
                    .iter()
                    .find(|(name, _)| *name == st.name)
                    .map_or(0, |(_, n)| *n)
            })
            .collect();
        let p = &mut m.patterns;
        for s in self.streams.iter().flat_map(|st| st.ops.iter()) {
            if let Some((tested, matched)) = s.pattern_counts() {
                m.window_patterns.tested += tested;
                m.window_patterns.matched += matched;
            }
            if let Some(x) = s.sequence_metrics() {
                p.active_runs += x.active_runs;
                p.partitions += x.partitions;
                p.matches += x.matches;
                p.absences += x.absences;
                p.expired += x.expired;
                p.killed += x.killed;
                p.evicted += x.evicted;
                p.rejected += x.rejected;
                p.capped += x.capped;
            }
        }
        m
    }

    /// The size of every stream's state, per stateful operator (keys, open
    /// runs, approximate bytes, evictions; crate::memory). Cheap: it counts
    /// and samples rather than walking all state, so a host may call it at
    /// every metrics scrape.
    pub fn memory(&self) -> Vec<crate::memory::StreamMemory> {
        self.streams
            .iter()
            .enumerate()
            .map(|(si, st)| {
                let mut ops = Vec::new();
                if let SourceRt::Join(j) = &st.source {
                    ops.push(j.memory());
                }
                for (i, op) in st.ops.iter().enumerate() {
                    let Some(mut m) = op.memory() else { continue };
                    m.index = st.origin.get(i).copied().unwrap_or(i);
                    if m.kind.is_empty() {
                        // Runtime streams are built in program order.
                        m.kind = self
                            .shared
                            .program
                            .streams
                            .get(si)
                            .and_then(|p| p.ops.get(m.index))
                            .map_or("operator", op_kind);
                    }
                    ops.push(m);
                }
                crate::memory::StreamMemory {
                    stream: st.name.clone(),
                    ops,
                }
            })
            .collect()
    }

    /// Takes the print/log/sink records produced so far.
    pub fn take_side_outputs(&mut self) -> Vec<SideOutput> {
        std::mem::take(&mut self.shared.side)
    }

    /// Sets the host's answers to `.enrich` lookups (by default every
    /// lookup fails: [`crate::enrich::Unanswered`]).
    pub fn set_enricher(&mut self, enricher: Box<dyn crate::enrich::Enricher>) {
        self.shared.enricher = enricher;
    }

    /// Takes the runtime error reports collected so far (at most
    /// [`crate::interp::MAX_REPORTS`] between takes; the counter in
    /// [`Engine::metrics`] is exact).
    pub fn take_errors(&mut self) -> Vec<RuntimeError> {
        std::mem::take(&mut self.shared.vm.reports)
    }

    /// Processes queued deliveries until none are left.
    fn drain(&mut self, now: i64, out: &mut Vec<Output>) {
        while let Some((s, input, rec)) = self.queue.pop_front() {
            if !self.is_active(s) {
                continue;
            }
            let Some(st) = self.streams.get_mut(s) else {
                continue;
            };
            let admitted = {
                let StreamRt {
                    name,
                    source,
                    on_error,
                    ..
                } = st;
                let mut cx = self.shared.cx(name, now);
                match on_error {
                    None => source.admit(input, rec, &mut cx),
                    // A merge branch's or a join's condition may fail too.
                    Some(sink) => {
                        let ev = rec.ev.clone();
                        cx.vm.captured = Some(Vec::new());
                        let admitted = source.admit(input, rec, &mut cx);
                        let errors = cx.vm.captured.take().unwrap_or_default();
                        if !errors.is_empty() {
                            sink.route(cx.program, name, errors, Some(&ev), now, cx.side);
                        }
                        admitted
                    }
                }
            };
            if let Some(r) = admitted {
                let mut cur = std::mem::take(&mut self.cur);
                cur.push(r);
                self.run_from(s, 0, &mut cur, now, out);
                self.cur = cur;
            }
        }
    }

    /// Runs `cur` through stream `s` from operator `from`, then re-types what
    /// leaves the chain, records visible outputs and queues deliveries.
    fn run_from(
        &mut self,
        s: usize,
        from: usize,
        cur: &mut Vec<Rec>,
        now: i64,
        out: &mut Vec<Output>,
    ) {
        let Some(st) = self.streams.get_mut(s) else {
            cur.clear();
            return;
        };
        {
            let StreamRt {
                name,
                ops,
                origin,
                on_error,
                ..
            } = st;
            let mut cx = self.shared.cx(name, now);
            let mut scratch = std::mem::take(&mut self.scratch);
            for i in from..ops.len() {
                if cur.is_empty() {
                    break;
                }
                let traced = self.trace.as_ref().map(|_| (cur.len(), cur[0].ev.clone()));
                scratch.clear();
                let Some(op) = ops.get_mut(i) else { break };
                match on_error {
                    None => op.process_batch(cur, &mut cx, &mut scratch),
                    Some(sink) => {
                        for r in cur.drain(..) {
                            let ev = r.ev.clone();
                            cx.vm.captured = Some(Vec::new());
                            op.process(r, &mut cx, &mut scratch);
                            let errors = cx.vm.captured.take().unwrap_or_default();
                            if !errors.is_empty() {
                                sink.route(cx.program, name, errors, Some(&ev), now, cx.side);
                            }
                        }
                    }
                }
                std::mem::swap(cur, &mut scratch);
                if op.sets_key() {
                    evict_after(ops, i);
                }
                let Some(op) = ops.get_mut(i) else { break };
                if let (Some(t), Some((input, sample))) = (&mut self.trace, traced) {
                    t.push(crate::inspect::TraceStep {
                        stream: s,
                        plan_index: origin.get(i).copied(),
                        kind: crate::inspect::StepKind::Op {
                            input,
                            output: cur.len(),
                            sample: Some(sample),
                        },
                    });
                    t.push_sequence(s, origin.get(i).copied(), op.as_mut());
                }
            }
            self.scratch = scratch;
        }
        if cur.is_empty() {
            return;
        }
        let schema = st.output_schema;
        if let Some(t) = &mut self.trace {
            t.push(crate::inspect::TraceStep {
                stream: s,
                plan_index: None,
                kind: crate::inspect::StepKind::Left { count: cur.len() },
            });
        }
        if let Some(n) = self.metrics.out_per_stream.get_mut(s) {
            *n += cur.len() as u64;
        }
        let consumers = self.routes.by_stream.get(s).map_or(&[][..], Vec::as_slice);
        for mut r in cur.drain(..) {
            if r.ev.type_id != schema {
                // The engine's own handle on an input event would make this a copy.
                if self
                    .recycled
                    .as_ref()
                    .is_some_and(|h| Arc::ptr_eq(h, &r.ev))
                {
                    self.recycled = None;
                }
                Arc::make_mut(&mut r.ev).type_id = schema;
            }
            if st.visible {
                let fields = self.output_fields.pop().unwrap_or_default();
                out.push(named_output(
                    fields,
                    self.names.get(schema as usize),
                    &st.name,
                    &r.ev,
                ));
            }
            // Partition keys do not cross stream boundaries.
            r.key = None;
            if let Some(l) = &mut self.lane {
                l.export(s, &r);
            }
            for c in consumers {
                self.queue
                    .push_back((c.stream as usize, c.input, r.clone()));
            }
            // An event nothing else holds lends its allocation to the next one an operator
            // builds (a few are enough: each step builds and drops them in turn).
            if self.shared.spent.len() < SPENT_KEPT && Arc::get_mut(&mut r.ev).is_some() {
                self.shared.spent.push(r.ev);
            }
        }
    }

    /// Sets the watermark and fires timers stream by stream in topological
    /// order, so a downstream stream sees upstream window outputs before its
    /// own windows close.
    fn advance(&mut self, wm: i64, out: &mut Vec<Output>) {
        self.time.watermark = Some(wm);
        self.shared.watermark = Some(wm);
        let now = self.time.max_seen.map_or(wm, |m| m.min(wm));
        let base = self.stage_base();
        for k in 0..self.topo.len() {
            let s = self.topo[k];
            let stage = base.saturating_add(u32::try_from(k).unwrap_or(u32::MAX));
            if !self.is_active(s) {
                // Another context runs it: deliver what it produced here.
                self.enter_stage(stage);
                self.drain(now, out);
                continue;
            }
            if let Some(l) = &mut self.lane {
                l.set_stage(stage);
            }
            let mut cur = std::mem::take(&mut self.cur);
            let first = self.time.first_seen.unwrap_or(0);
            let max_seen = self.time.max_seen.unwrap_or(i64::MIN);
            match &mut self.streams[s].source {
                SourceRt::Timer(t) => {
                    for ev in t.ticks(first, wm, max_seen) {
                        cur.push(Rec::new(Arc::new(ev)));
                    }
                }
                SourceRt::Join(j) => j.purge(wm),
                _ => {}
            }
            if !cur.is_empty() {
                self.run_from(s, 0, &mut cur, now, out);
            }
            for i in 0..self.streams[s].ops.len() {
                let due = self.streams[s].ops[i].next_timer().is_some_and(|d| d <= wm);
                if !due {
                    continue;
                }
                {
                    let StreamRt {
                        name,
                        ops,
                        on_error,
                        ..
                    } = &mut self.streams[s];
                    let mut cx = self.shared.cx(name, now);
                    if let Some(op) = ops.get_mut(i) {
                        cx.vm.captured = on_error.as_ref().map(|_| Vec::new());
                        op.on_watermark(wm, &mut cx, &mut cur);
                        let errors = cx.vm.captured.take().unwrap_or_default();
                        if let (Some(sink), false) = (on_error.as_ref(), errors.is_empty()) {
                            sink.route(cx.program, name, errors, None, now, cx.side);
                        }
                    }
                }
                if let Some(t) = &mut self.trace {
                    t.push(crate::inspect::TraceStep {
                        stream: s,
                        plan_index: self.streams[s].origin.get(i).copied(),
                        kind: crate::inspect::StepKind::Timer {
                            watermark: wm,
                            output: cur.len(),
                        },
                    });
                    let StreamRt { ops, origin, .. } = &mut self.streams[s];
                    if let Some(op) = ops.get_mut(i) {
                        t.push_sequence(s, origin.get(i).copied(), op.as_mut());
                    }
                }
                self.run_from(s, i + 1, &mut cur, now, out);
            }
            // Idle keys are forgotten after every operator has fired its
            // timers at this watermark, so a window that closes now is
            // released before its key is evicted.
            for i in 0..self.streams[s].ops.len() {
                if self.streams[s].ops[i].sets_key() {
                    evict_after(&mut self.streams[s].ops, i);
                }
            }
            self.cur = cur;
            self.enter_stage(stage);
            self.drain(now, out);
        }
    }
}

/// Makes the operators after `ops[at]` (up to the next one that sets the
/// key) forget the keys `ops[at]` evicted.
fn evict_after(ops: &mut [Box<dyn Operator>], at: usize) {
    let Some(op) = ops.get_mut(at) else { return };
    let keys = op.take_evicted();
    if keys.is_empty() {
        return;
    }
    for next in ops.iter_mut().skip(at + 1) {
        if next.sets_key() {
            break;
        }
        for k in &keys {
            next.evict_key(k);
        }
    }
}

/// The name of an operator kind in metrics labels.
fn op_kind(op: &varpulis_program::OpSpec) -> &'static str {
    use varpulis_program::OpSpec;
    match op {
        OpSpec::PartitionBy(_) => "partition_by",
        OpSpec::Window(_) => "window",
        OpSpec::Aggregate(_) => "aggregate",
        OpSpec::Distinct { .. } => "distinct",
        OpSpec::Limit(_) => "limit",
        OpSpec::Sequence(_) => "sequence",
        OpSpec::Pattern(_) => "pattern",
        OpSpec::Enrich(_) => "enrich",
        _ => "operator",
    }
}

/// Builds the named form of an event in layout `schema`.
pub(crate) fn output_of(
    program: &Program,
    stream: &Arc<str>,
    schema: SchemaId,
    ev: &Event,
) -> Output {
    output_in(
        Vec::with_capacity(ev.fields.len()),
        program,
        stream,
        schema,
        ev,
    )
}

/// [`output_of`] with the fields written into `fields` (empty).
fn output_in(
    fields: Vec<(Arc<str>, Value)>,
    program: &Program,
    stream: &Arc<str>,
    schema: SchemaId,
    ev: &Event,
) -> Output {
    let s = program.schemas.get(schema as usize);
    let names = s.into_iter().flat_map(|s| s.fields.iter().map(|f| &f.name));
    build_output(fields, s.map(|s| &s.name), names, stream, ev)
}

/// [`output_in`] with the names of the engine's own copy.
fn named_output(
    fields: Vec<(Arc<str>, Value)>,
    names: Option<&OutputNames>,
    stream: &Arc<str>,
    ev: &Event,
) -> Output {
    let fields_names = names.into_iter().flat_map(|n| n.fields.iter());
    build_output(
        fields,
        names.map(|n| &n.event_type),
        fields_names,
        stream,
        ev,
    )
}

/// The output of `ev` on `stream`: its present fields under `names` (its schema's, in slot
/// order), then its undeclared fields, typed `event_type` (else the stream's name).
fn build_output<'n>(
    mut fields: Vec<(Arc<str>, Value)>,
    event_type: Option<&Arc<str>>,
    names: impl Iterator<Item = &'n Arc<str>>,
    stream: &Arc<str>,
    ev: &Event,
) -> Output {
    for (f, v) in names.zip(ev.fields.iter()) {
        if let Some(v) = v {
            fields.push((f.clone(), v.clone()));
        }
    }
    if let Some(extra) = &ev.extra {
        for (k, v) in extra.iter() {
            if !fields.iter().any(|(n, _)| n == k) {
                fields.push((k.clone(), v.clone()));
            }
        }
    }
    Output {
        stream: stream.clone(),
        event_type: event_type.map_or_else(|| stream.clone(), Arc::clone),
        time: ev.time,
        fields,
    }
}

#[cfg(test)]
mod tests;

//! Context pipelines: `varpulis run --input` runs each `context` of the
//! program on its own engine thread (docs/DESIGN.md, *Contexts*).
//!
//! [`plan`] places every stream in a context (its `.context(c)`, else the
//! context the stream it reads forwards to or runs in, else the default
//! context of streams that name none) and orders the contexts so that each
//! reads streams only of contexts before it. [`run`] then starts:
//!
//! - a decoding thread that reads and decodes the input into batches;
//! - one engine thread per context, in that order, each an [`Engine`] that
//!   runs only its context's streams ([`Engine::run_only`]). Every engine
//!   sees every input event, so time, watermarks and timers move the same
//!   in all of them. A batch goes from the decoder to the first context and
//!   from each context to the next over bounded channels, with what the
//!   streams read downstream produced ([`Export`], tagged with the input
//!   position and engine stage), which the next engine delivers at the same
//!   stage ([`Engine::inject`]);
//! - the calling thread, which merges every context's outputs of a batch in
//!   the canonical order of [`crate::parallel`] (input position, event time,
//!   stream, JSON text), so the bytes are those of `--workers 1` on the same
//!   program without contexts.
//!
//! A program whose split could change results runs on one engine thread
//! instead, and [`plan`] says why: contexts that read each other's streams
//! (a cycle), a stream reading several inputs one of which comes from
//! another context (the order of its inputs would depend on the threads),
//! a `var` (one value shared by every context) and `.enrich` (answered on
//! one engine thread).

use std::io::Write;
use std::sync::Arc;

use crossbeam_channel::{bounded, Receiver, Sender};
use varpulis_program::{Event, InputRef, OpSpec, Program, SourceSpec, StreamPlan};
use varpulis_state::{MemoryStore, StateStore};
use varpulis_vm::engine::lane::Export;
use varpulis_vm::memory::StreamMemory;
use varpulis_vm::{Compat, Engine, EngineConfig, Metrics, StateReport};

use crate::input::Records;
use crate::job::{InputProblem, Job, JobStats};
use crate::parallel::{
    add_metrics, deliver_round, merge_round, FromShard, Merged, Outcome, OutputSink, Tagger, BATCH,
    END, QUEUE,
};

/// The name of the context of streams that name none.
pub const DEFAULT_CONTEXT: &str = "(default)";

/// One context's share of the program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lane {
    /// The context's name ([`DEFAULT_CONTEXT`] for streams that name none).
    pub name: String,
    /// The cores its declaration asks for (`cores: [...]`).
    pub cores: Vec<u32>,
    /// By stream id: whether the stream runs here.
    pub streams: Vec<bool>,
    /// By stream id: whether a later context reads the stream's output.
    pub exported: Vec<bool>,
}

/// How a program's contexts run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// On one engine: fewer than two contexts have streams (`why` is
    /// `None`), or splitting could change results (`why` says how).
    One {
        /// Why contexts that the program uses do not get threads.
        why: Option<String>,
    },
    /// One engine thread per context, upstream contexts first.
    Threads(Vec<Lane>),
}

/// The distinct inputs of a stream: its source's and, for a sequence, its
/// other steps' and negations'.
fn inputs(plan: &StreamPlan) -> Vec<InputRef> {
    let mut v: Vec<InputRef> = Vec::new();
    let mut add = |i: InputRef| {
        if !v.contains(&i) {
            v.push(i);
        }
    };
    match &plan.source {
        SourceSpec::Input(i) => add(*i),
        SourceSpec::Connector { schema, .. } => add(InputRef::Event(*schema)),
        SourceSpec::Merge { branches, .. } => branches.iter().for_each(|b| add(b.input)),
        SourceSpec::Join(j) => j.inputs.iter().for_each(|b| add(b.input)),
        SourceSpec::Timer { .. } | SourceSpec::Late(_) => {}
    }
    for op in &plan.ops {
        if let OpSpec::Sequence(seq) = op {
            seq.inputs().into_iter().for_each(&mut add);
        }
    }
    v
}

/// The streams a stream reads the output of.
fn upstream(plan: &StreamPlan) -> Vec<usize> {
    inputs(plan)
        .into_iter()
        .filter_map(|i| match i {
            InputRef::Stream(s) => Some(s as usize),
            InputRef::Event(_) => None,
        })
        .collect()
}

/// Decides how `program`'s contexts run.
pub fn plan(program: &Program) -> Layout {
    let n = program.streams.len();
    // The declared placement of each stream.
    let mut declared: Vec<(Option<u32>, Option<u32>)> = vec![(None, None); n];
    for p in &program.placements {
        if let Some(d) = declared.get_mut(p.stream as usize) {
            *d = (p.context, p.emit);
        }
    }
    // The context each stream runs in (`None`: the default one).
    let mut context: Vec<Option<Option<u32>>> = vec![None; n];
    for s in 0..n {
        resolve(program, &declared, &mut context, s, 0);
    }
    let context: Vec<Option<u32>> = context.into_iter().map(Option::flatten).collect();
    // Contexts with streams: declared ones in declaration order, the
    // default one last.
    let mut used: Vec<Option<u32>> = Vec::new();
    for c in (0..program.contexts.len())
        .filter_map(|c| u32::try_from(c).ok())
        .map(Some)
        .chain([None])
    {
        if context.contains(&c) {
            used.push(c);
        }
    }
    if used.len() < 2 {
        return Layout::One { why: None };
    }
    let name = |c: Option<u32>| -> String {
        c.and_then(|c| program.contexts.get(c as usize))
            .map_or_else(|| DEFAULT_CONTEXT.to_string(), |d| d.name.to_string())
    };
    let one = |why: String| Layout::One {
        why: Some(format!("contexts run on one engine thread: {why}")),
    };
    if let Some(g) = program.globals.iter().find(|g| g.mutable) {
        return one(format!(
            "`var {}` is one value shared by every context",
            g.name
        ));
    }
    for plan in &program.streams {
        if plan.ops.iter().any(|o| matches!(o, OpSpec::Enrich(_))) {
            return one(format!(
                "stream `{}` uses `.enrich`, whose lookups are answered on one engine thread",
                plan.name
            ));
        }
    }
    // Streams whose records come (maybe through others of their context)
    // from another context.
    let mut crossed = vec![false; n];
    for s in topo(program) {
        let Some(plan) = program.streams.get(s) else {
            continue;
        };
        crossed[s] = upstream(plan)
            .into_iter()
            .any(|u| context.get(u) != context.get(s) || crossed.get(u).copied().unwrap_or(false));
        if inputs(plan).len() > 1 && crossed[s] {
            return one(format!(
                "stream `{}` reads several inputs, one of them from another context, and the \
                 order in which they arrive would depend on the threads; place its inputs in \
                 its context",
                plan.name
            ));
        }
    }
    // Order the contexts: each after every context it reads from.
    let index = |c: Option<u32>| used.iter().position(|u| *u == c).unwrap_or(0);
    let k = used.len();
    let mut reads = vec![vec![false; k]; k];
    let mut exported = vec![false; n];
    for (s, plan) in program.streams.iter().enumerate() {
        for u in upstream(plan) {
            if let (Some(cu), Some(cs)) = (context.get(u), context.get(s)) {
                if cu != cs {
                    reads[index(*cs)][index(*cu)] = true;
                    exported[u] = true;
                }
            }
        }
    }
    let mut order: Vec<usize> = Vec::with_capacity(k);
    let mut placed = vec![false; k];
    while order.len() < k {
        let next = (0..k).find(|&i| !placed[i] && (0..k).all(|j| !reads[i][j] || placed[j]));
        let Some(i) = next else {
            let left: Vec<String> = (0..k)
                .filter(|&i| !placed[i])
                .map(|i| format!("`{}`", name(used[i])))
                .collect();
            return one(format!(
                "contexts {} read each other's streams (a cycle)",
                left.join(", ")
            ));
        };
        placed[i] = true;
        order.push(i);
    }
    Layout::Threads(
        order
            .into_iter()
            .map(|i| {
                let c = used[i];
                Lane {
                    name: name(c),
                    cores: c
                        .and_then(|c| program.contexts.get(c as usize))
                        .map(|d| d.cores.clone())
                        .unwrap_or_default(),
                    streams: context.iter().map(|x| *x == c).collect(),
                    exported: exported.clone(),
                }
            })
            .collect(),
    )
}

/// The context of stream `s`: its own, else the one the single stream it
/// reads forwards to or runs in, else the default one.
fn resolve(
    program: &Program,
    declared: &[(Option<u32>, Option<u32>)],
    memo: &mut Vec<Option<Option<u32>>>,
    s: usize,
    depth: usize,
) -> Option<u32> {
    if let Some(Some(c)) = memo.get(s) {
        return *c;
    }
    let own = declared.get(s).and_then(|d| d.0);
    let c = match (own, program.streams.get(s)) {
        (Some(c), _) => Some(c),
        // The stream graph is acyclic (the engine refuses cycles); the
        // depth bound only keeps a bad program from recursing for ever.
        (None, Some(plan)) if depth < program.streams.len() => {
            let from = match &plan.source {
                SourceSpec::Late(u) => Some(*u as usize),
                _ => match inputs(plan).as_slice() {
                    [InputRef::Stream(u)] => Some(*u as usize),
                    _ => None,
                },
            };
            from.and_then(|u| {
                declared
                    .get(u)
                    .and_then(|d| d.1)
                    .or_else(|| resolve(program, declared, memo, u, depth + 1))
            })
        }
        _ => None,
    };
    if let Some(m) = memo.get_mut(s) {
        *m = Some(c);
    }
    c
}

/// Stream ids, each after the streams it reads (the order of declaration
/// where the graph allows).
fn topo(program: &Program) -> Vec<usize> {
    let n = program.streams.len();
    let ups: Vec<Vec<usize>> = program.streams.iter().map(upstream).collect();
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        let next = (0..n).find(|&s| !done[s] && ups[s].iter().all(|&u| u >= n || done[u]));
        let Some(s) = next else {
            // A cycle (refused by the engine): the rest in declaration order.
            order.extend((0..n).filter(|&s| !done[s]));
            break;
        };
        done[s] = true;
        order.push(s);
    }
    order
}

/// Pins the calling thread to `cores` (none: leaves it free), or says why
/// it cannot.
fn pin(cores: &[u32]) -> Result<(), String> {
    if cores.is_empty() {
        return Ok(());
    }
    pin_to(cores)
}

#[cfg(target_os = "linux")]
fn pin_to(cores: &[u32]) -> Result<(), String> {
    use nix::sched::{sched_setaffinity, CpuSet};
    let mut set = CpuSet::new();
    for c in cores {
        let c = usize::try_from(*c).map_err(|e| e.to_string())?;
        set.set(c).map_err(|_| {
            format!(
                "core {c} is beyond the {} this system can name",
                CpuSet::count()
            )
        })?;
    }
    // Pid 0: the calling thread.
    sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).map_err(|e| e.desc().to_string())
}

#[cfg(not(target_os = "linux"))]
fn pin_to(_cores: &[u32]) -> Result<(), String> {
    Err("pinning threads is only supported on Linux".into())
}

/// A message along the pipeline: each context answers it to the merger and
/// passes it on to the next.
enum Msg {
    /// The next input positions (each event with the connector
    /// subscription it came from), with what earlier contexts exported at
    /// each position (in stage order).
    Batch(Arc<Vec<(Event, Option<u32>)>>, Vec<Vec<Export>>),
    /// The sources are idle: move the watermark (one position).
    Watermark(i64, Vec<Export>),
    /// End of input: fire what is open.
    Finish(Vec<Export>),
    /// Save the engine state.
    Save,
    /// Replace the engine state with (its share of) a saved one.
    Load(Arc<MemoryStore>, Compat),
    /// Counters, memory and watermark.
    Stats,
}

/// A context's answer to one [`Msg`].
enum Reply {
    /// Outputs of a batch, a watermark move or the end (`true`).
    Ran(Box<FromShard>, bool),
    Saved(Result<Vec<u8>, String>),
    Loaded(Result<StateReport, String>),
    Stats(Box<(Metrics, Vec<StreamMemory>, Option<i64>)>),
}

/// The engine threads of a context pipeline, one per context, for a whole
/// run: `varpulis run --input` ([`run`]) and live runs
/// ([`crate::job::Job::start_contexts`]). The host hands the first context
/// a batch (a round), every context answers it in order, and
/// [`Pipeline::collect`] merges the answers of the oldest round in the
/// canonical order. Channels are bounded: a slow merger holds the contexts
/// back, which hold the host back.
pub struct Pipeline {
    first: Option<Sender<Msg>>,
    from: Vec<Receiver<Reply>>,
    handles: Vec<std::thread::JoinHandle<()>>,
    names: Vec<String>,
    /// Rounds sent and not collected yet.
    in_flight: usize,
    /// Counters, memory and watermark as last seen.
    last: (Metrics, Vec<StreamMemory>, Option<i64>),
}

impl Pipeline {
    /// Starts one engine thread per lane (from [`plan`]). A context whose
    /// cores cannot be had runs unpinned; `warnings` says so. The outputs
    /// collected ([`Pipeline::collect`]) are kept as values.
    pub fn start(
        program: Arc<Program>,
        config: EngineConfig,
        models: &varpulis_vm::model::Models,
        lanes: &[Lane],
        warnings: &mut Vec<String>,
    ) -> anyhow::Result<Pipeline> {
        Pipeline::start_with(program, config, models, lanes, warnings, true)
    }

    /// [`Pipeline::start`]; `values`: whether the engines keep their
    /// outputs as values for the host, or only their JSON texts.
    fn start_with(
        program: Arc<Program>,
        config: EngineConfig,
        models: &varpulis_vm::model::Models,
        lanes: &[Lane],
        warnings: &mut Vec<String>,
        values: bool,
    ) -> anyhow::Result<Pipeline> {
        let (first, mut rx) = bounded::<Msg>(QUEUE);
        let mut pipeline = Pipeline {
            first: Some(first),
            from: Vec::new(),
            handles: Vec::new(),
            names: lanes.iter().map(|l| l.name.clone()).collect(),
            in_flight: 0,
            last: (Metrics::default(), Vec::new(), None),
        };
        let last = lanes.len().saturating_sub(1);
        for (i, lane) in lanes.iter().enumerate() {
            let (next_tx, next_rx) = bounded::<Msg>(QUEUE);
            let (otx, orx) = bounded::<Reply>(QUEUE);
            let forward = (i < last).then_some(next_tx);
            let input = std::mem::replace(&mut rx, next_rx);
            let (ready_tx, ready) = bounded::<Result<Option<String>, String>>(1);
            let (program, models) = (program.clone(), models.clone());
            let (streams, exported) = (lane.streams.clone(), lane.exported.clone());
            let cores = lane.cores.clone();
            // An engine stays on the thread that made it.
            let handle = std::thread::Builder::new()
                .name(format!("varpulis-context-{}", lane.name))
                .spawn(move || {
                    let pinned = pin(&cores).err();
                    let tagger = Tagger::new(&program, values);
                    match Engine::with_models(program, config, &models) {
                        Ok(mut engine) => {
                            engine.run_only(streams, exported);
                            let _ = ready_tx.send(Ok(pinned));
                            serve(engine, tagger, i == 0, input, forward, otx);
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                        }
                    }
                })
                .map_err(|e| {
                    anyhow::anyhow!("cannot start the thread of context `{}`: {e}", lane.name)
                })?;
            pipeline.handles.push(handle);
            pipeline.from.push(orx);
            match ready.recv() {
                Ok(Ok(None)) => {}
                Ok(Ok(Some(why))) => warnings.push(format!(
                    "warning: context `{}` runs on any core: cannot pin its thread to cores \
                     {:?}: {why}",
                    lane.name, lane.cores
                )),
                Ok(Err(e)) => anyhow::bail!("context `{}`: {e}", lane.name),
                Err(_) => {
                    anyhow::bail!("the thread of context `{}` stopped unexpectedly", lane.name)
                }
            }
        }
        Ok(pipeline)
    }

    /// The number of context threads.
    pub fn contexts(&self) -> usize {
        self.names.len()
    }

    /// Rounds sent and not collected yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn send(&mut self, msg: Msg) -> anyhow::Result<()> {
        let first = self
            .first
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the context threads were handed to a reader"))?;
        first.send(msg).map_err(|_| {
            anyhow::anyhow!(
                "the thread of context `{}` stopped unexpectedly",
                self.names.first().map_or("?", String::as_str)
            )
        })?;
        self.in_flight += 1;
        Ok(())
    }

    /// Sends `events` (each with the subscription it came from) as one
    /// round; [`Pipeline::collect`] gives the outputs.
    pub fn run(&mut self, events: Vec<(Event, Option<u32>)>) -> anyhow::Result<()> {
        let n = events.len();
        self.send(Msg::Batch(Arc::new(events), vec![Vec::new(); n]))
    }

    /// Moves every context's watermark to `ts` (idle sources), as one round.
    pub fn advance_watermark(&mut self, ts: i64) -> anyhow::Result<()> {
        self.send(Msg::Watermark(ts, Vec::new()))
    }

    /// End of input, as one round: every context fires what is open.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        self.send(Msg::Finish(Vec::new()))
    }

    /// One answer from every context, in pipeline order.
    fn answers(&mut self) -> anyhow::Result<Vec<Reply>> {
        let mut replies = Vec::with_capacity(self.from.len());
        for (rx, name) in self.from.iter().zip(&self.names) {
            replies.push(rx.recv().map_err(|_| {
                anyhow::anyhow!("the thread of context `{name}` stopped unexpectedly")
            })?);
        }
        Ok(replies)
    }

    /// Waits for the oldest round in flight and merges it (`None`: nothing
    /// in flight).
    pub fn collect(&mut self) -> anyhow::Result<Option<Merged>> {
        if self.in_flight == 0 {
            return Ok(None);
        }
        let replies = self.answers()?;
        self.in_flight -= 1;
        let mut parts = Vec::with_capacity(replies.len());
        for r in replies {
            match r {
                Reply::Ran(part, _) => parts.push(*part),
                _ => anyhow::bail!("a context thread answered out of turn"),
            }
        }
        let metrics: Vec<Metrics> = parts.iter().map(|p| p.metrics.clone()).collect();
        self.last.0 = sum_lanes(&metrics);
        self.last.2 = parts.first().and_then(|p| p.watermark);
        Ok(Some(merge_round(parts)))
    }

    /// A round answered at once (state, counters); nothing may be in flight.
    fn round(&mut self, msg: Msg) -> anyhow::Result<Vec<Reply>> {
        if self.in_flight > 0 {
            anyhow::bail!(
                "{} rounds of the context threads are still running (a host bug: they are \
                 collected first)",
                self.in_flight
            );
        }
        self.send(msg)?;
        self.in_flight -= 1;
        self.answers()
    }

    /// Writes the state of every context, combined into the state one
    /// engine would have ([`varpulis_vm::combine_lane_states`]), into
    /// `store` (cleared first).
    pub fn save_into(
        &mut self,
        store: &mut dyn varpulis_state::StateStore,
        lanes: &[Lane],
    ) -> anyhow::Result<()> {
        let replies = self.round(Msg::Save)?;
        let mut states = Vec::with_capacity(replies.len());
        for (r, name) in replies.into_iter().zip(&self.names) {
            match r {
                Reply::Saved(Ok(bytes)) => states.push(MemoryStore::from_snapshot(&bytes)?),
                Reply::Saved(Err(e)) => {
                    anyhow::bail!("context `{name}` cannot save its state: {e}")
                }
                _ => anyhow::bail!("the thread of context `{name}` answered out of turn"),
            }
        }
        let parts: Vec<(&dyn varpulis_state::StateStore, &[bool])> = states
            .iter()
            .zip(lanes)
            .map(|(s, l)| (s as &dyn varpulis_state::StateStore, l.streams.as_slice()))
            .collect();
        varpulis_vm::combine_lane_states(&parts, store).map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Loads a one-engine state: each context takes the state of its own
    /// streams. The report is the first context's (every context compares
    /// the same program with the same state).
    pub fn load(&mut self, state: MemoryStore, compat: Compat) -> anyhow::Result<StateReport> {
        let replies = self.round(Msg::Load(Arc::new(state), compat))?;
        let mut first = None;
        for (r, name) in replies.into_iter().zip(&self.names) {
            match r {
                Reply::Loaded(Ok(report)) => {
                    first.get_or_insert(report);
                }
                Reply::Loaded(Err(e)) => anyhow::bail!("context `{name}`: {e}"),
                _ => anyhow::bail!("the thread of context `{name}` answered out of turn"),
            }
        }
        Ok(first.unwrap_or_default())
    }

    /// The contexts' counters (input counters once), memory (each stream
    /// from its context) and watermark. With rounds in flight, those of the
    /// last round collected and the memory of the last quiet time.
    pub fn stats(&mut self) -> anyhow::Result<(Metrics, Vec<StreamMemory>, Option<i64>)> {
        if self.in_flight > 0 {
            return Ok(self.last.clone());
        }
        let replies = self.round(Msg::Stats)?;
        let mut metrics = Vec::with_capacity(replies.len());
        let mut memory: Vec<StreamMemory> = Vec::new();
        let mut watermark = None;
        for r in replies {
            let Reply::Stats(s) = r else {
                anyhow::bail!("a context thread answered out of turn");
            };
            let (m, mem, wm) = *s;
            metrics.push(m);
            crate::parallel::add_memory(&mut memory, mem);
            watermark = watermark.or(wm);
        }
        self.last = (sum_lanes(&metrics), memory, watermark);
        Ok(self.last.clone())
    }
}

impl Drop for Pipeline {
    /// Closes the queues and waits for the context threads to end.
    fn drop(&mut self) {
        self.first = None;
        self.from.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// The engine threads behind a [`crate::job::Job`] that does not run its
/// program on its own engine: worker shards split by key, or one thread per
/// context. Both take rounds and answer them in order.
pub enum Engines {
    /// `--workers N` ([`crate::parallel::Shards`]).
    Shards(crate::parallel::Shards),
    /// One engine thread per context, with the lanes they run.
    Contexts(Pipeline, Vec<Lane>),
}

impl Engines {
    /// The number of worker shards (`None`: context threads).
    pub fn workers(&self) -> Option<usize> {
        match self {
            Engines::Shards(s) => Some(s.workers()),
            Engines::Contexts(..) => None,
        }
    }

    /// The number of context threads (`None`: worker shards).
    pub fn contexts(&self) -> Option<usize> {
        match self {
            Engines::Shards(_) => None,
            Engines::Contexts(p, _) => Some(p.contexts()),
        }
    }

    /// Rounds sent and not collected yet.
    pub fn in_flight(&self) -> usize {
        match self {
            Engines::Shards(s) => s.in_flight(),
            Engines::Contexts(p, _) => p.in_flight(),
        }
    }

    /// Sends a batch of events as one round.
    pub fn run(&mut self, events: Vec<(Event, Option<u32>)>) -> anyhow::Result<()> {
        match self {
            Engines::Shards(s) => s.run(events),
            Engines::Contexts(p, _) => p.run(events),
        }
    }

    /// Collects the oldest round, merged in the canonical order.
    pub fn collect(&mut self) -> anyhow::Result<Option<Merged>> {
        match self {
            Engines::Shards(s) => s.collect(),
            Engines::Contexts(p, _) => p.collect(),
        }
    }

    /// A watermark move, as one round.
    pub fn advance_watermark(&mut self, ts: i64) -> anyhow::Result<()> {
        match self {
            Engines::Shards(s) => s.advance_watermark(ts),
            Engines::Contexts(p, _) => p.advance_watermark(ts),
        }
    }

    /// The end of input, as one round.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        match self {
            Engines::Shards(s) => s.finish(),
            Engines::Contexts(p, _) => p.finish(),
        }
    }

    /// Counters, memory and watermark.
    pub fn stats(&mut self) -> anyhow::Result<(Metrics, Vec<StreamMemory>, Option<i64>)> {
        match self {
            Engines::Shards(s) => s.stats(),
            Engines::Contexts(p, _) => p.stats(),
        }
    }
}

/// The counters of a pipeline: every context sees every input event, so the
/// input counters are the first context's; the rest add up.
fn sum_lanes(parts: &[Metrics]) -> Metrics {
    let mut sum = Metrics::default();
    for m in parts {
        add_metrics(&mut sum, m);
    }
    if let Some(first) = parts.first() {
        sum.events_in = first.events_in;
        sum.late = first.late;
    }
    sum
}

/// Runs `job`'s program over `records` with one engine thread per lane
/// (from [`plan`]), as [`crate::parallel::run`] does with shards: `job`
/// keeps the sinks and receives the merged side outputs; the input is
/// decoded on its own thread; messages go to `messages`.
pub fn run<R: std::io::BufRead + Send>(
    job: &mut Job,
    records: Records<R>,
    lanes: &[Lane],
    batch: usize,
    out: &mut dyn OutputSink,
    messages: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let program = job.program().clone();
    let mut decoder_options = job.options().clone();
    decoder_options.sinks = false;
    let config = EngineConfig {
        flush_at_end: job.options().final_flush,
        ..EngineConfig::default()
    };
    let batch = batch.clamp(1, BATCH);
    let models = crate::job::load_models(&program)?;
    let mut warnings = Vec::new();
    let values = out.wants_values();
    let mut pipeline = Pipeline::start_with(
        program.clone(),
        config,
        &models,
        lanes,
        &mut warnings,
        values,
    )?;
    for w in warnings {
        writeln!(messages, "{w}")?;
    }
    // The decoder holds the only sender: if it stops, the contexts stop.
    let first = pipeline
        .first
        .take()
        .ok_or_else(|| anyhow::anyhow!("the context threads have no input"))?;
    std::thread::scope(|scope| -> anyhow::Result<Outcome> {
        let decoder_program = (*program).clone();
        let decoder = scope.spawn(move || {
            let mut decoder = Job::without_sinks(decoder_program, decoder_options)?;
            decode(&mut decoder, records, first, batch)
        });
        let mut metrics: Vec<Metrics> = vec![Metrics::default(); lanes.len()];
        let mut stopped = None;
        let mut parts: Vec<FromShard> = Vec::with_capacity(lanes.len());
        let mut order = Vec::new();
        loop {
            // A context that stopped ends the rounds.
            let replies = match pipeline.answers() {
                Ok(replies) => replies,
                Err(e) => {
                    stopped = Some(e);
                    break;
                }
            };
            let mut end = false;
            for (i, r) in replies.into_iter().enumerate() {
                if let Reply::Ran(part, last) = r {
                    end |= last;
                    if let Some(m) = metrics.get_mut(i) {
                        m.clone_from(&part.metrics);
                    }
                    parts.push(*part);
                }
            }
            deliver_round(job, &mut parts, &mut order, out, messages)?;
            parts.clear();
            if end {
                break;
            }
        }
        // Contexts still sending (after one stopped) stop when nobody reads.
        pipeline.from.clear();
        let (decoder_stats, failed) = decoder
            .join()
            .map_err(|_| anyhow::anyhow!("the decoding thread stopped unexpectedly"))??;
        if let Some(e) = stopped {
            return Err(e);
        }
        let mut stats = job.stats().clone();
        stats.records = decoder_stats.records;
        stats.events = decoder_stats.events;
        stats.skipped = decoder_stats.skipped;
        Ok(Outcome {
            stats,
            metrics: sum_lanes(&metrics),
            failed,
        })
    })
}

/// The decoding thread: decodes records into batches for the first
/// context, then tells it to finish. Returns the decoder's counters and the
/// problem that stopped a strict run.
fn decode<R: std::io::BufRead>(
    decoder: &mut Job,
    records: Records<R>,
    first: Sender<Msg>,
    batch: usize,
) -> anyhow::Result<(JobStats, Option<InputProblem>)> {
    let mut events: Vec<(Event, Option<u32>)> = Vec::with_capacity(batch);
    let mut failed = None;
    let mut stderr = std::io::stderr();
    let stopped = || anyhow::anyhow!("a context's engine thread stopped");
    let send = |events: Vec<(Event, Option<u32>)>| {
        let n = events.len();
        first
            .send(Msg::Batch(Arc::new(events), vec![Vec::new(); n]))
            .map_err(|_| stopped())
    };
    for rec in records {
        let decoded = decoder.decode_record(&rec);
        for m in decoder.take_messages() {
            let _ = writeln!(stderr, "{m}");
        }
        match decoded {
            Ok(Some(ev)) => events.push((ev, None)),
            Ok(None) => continue,
            Err(problem) => {
                failed = Some(problem);
                break;
            }
        }
        if events.len() >= batch {
            send(std::mem::replace(&mut events, Vec::with_capacity(batch)))?;
        }
    }
    if !events.is_empty() {
        send(events)?;
    }
    first.send(Msg::Finish(Vec::new())).map_err(|_| stopped())?;
    Ok((decoder.stats().clone(), failed))
}

/// One context's engine: answers each message with what earlier contexts
/// exported, hands its answer to the merger and the message with its own
/// exports added to the next context. Positions are indexes into each
/// batch. `first`: the context that keeps the run's drop and error totals
/// when a state is loaded.
fn serve(
    mut engine: Engine,
    mut tagger: Tagger,
    first: bool,
    input: Receiver<Msg>,
    next: Option<Sender<Msg>>,
    merger: Sender<Reply>,
) {
    let mut scratch = Vec::new();
    while let Ok(msg) = input.recv() {
        let mut part = FromShard::default();
        let mut end = false;
        let (reply, onward) = match msg {
            Msg::Batch(events, exports) => {
                let mut passed = Vec::with_capacity(events.len());
                for ((pos, (ev, origin)), given) in (0u64..).zip(events.iter()).zip(exports) {
                    engine.inject(given.iter().cloned());
                    engine.push_from(ev.clone(), *origin, &mut scratch);
                    tagger.tag(&mut engine, pos, &mut scratch, &mut part);
                    passed.push(combine(given, engine.take_exports()));
                }
                (None, Msg::Batch(events, passed))
            }
            Msg::Watermark(ts, given) => {
                engine.inject(given.iter().cloned());
                scratch.extend(engine.advance_watermark(ts));
                tagger.tag(&mut engine, 0, &mut scratch, &mut part);
                (
                    None,
                    Msg::Watermark(ts, combine(given, engine.take_exports())),
                )
            }
            Msg::Finish(given) => {
                engine.inject(given.iter().cloned());
                scratch.extend(engine.finish());
                tagger.tag(&mut engine, END, &mut scratch, &mut part);
                end = true;
                (None, Msg::Finish(combine(given, engine.take_exports())))
            }
            Msg::Save => {
                let mut store = MemoryStore::new();
                let saved = engine
                    .save_state(&mut store)
                    .map_err(|e| e.to_string())
                    .and_then(|()| store.snapshot().map_err(|e| e.to_string()));
                (Some(Reply::Saved(saved)), Msg::Save)
            }
            Msg::Load(store, compat) => {
                let loaded = engine
                    .load_lane_state(store.as_ref(), compat, first)
                    .map_err(|e| e.to_string());
                (Some(Reply::Loaded(loaded)), Msg::Load(store, compat))
            }
            Msg::Stats => {
                let stats = (engine.metrics(), engine.memory(), engine.watermark());
                (Some(Reply::Stats(Box::new(stats))), Msg::Stats)
            }
        };
        let reply = reply.unwrap_or_else(|| {
            part.errors = engine.take_errors();
            part.metrics = engine.metrics();
            part.watermark = engine.watermark();
            Reply::Ran(Box::new(std::mem::take(&mut part)), end)
        });
        if merger.send(reply).is_err() {
            break;
        }
        if let Some(next) = &next {
            if next.send(onward).is_err() {
                break;
            }
        }
    }
}

/// What a later context receives at one position: the exports of the
/// earlier contexts and of this one, in stage order (records of one stage
/// keep the order they were produced in).
fn combine(mut given: Vec<Export>, own: Vec<Export>) -> Vec<Export> {
    if given.is_empty() {
        return own;
    }
    given.extend(own);
    given.sort_by_key(|x| x.stage);
    given
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(text: &str) -> Program {
        crate::test_program(text)
    }

    const HEAD: &str = "context a\ncontext b\n\nevent E:\n    k: str\n    v: int\n\n";

    fn names(layout: &Layout, program: &Program) -> Vec<(String, Vec<String>)> {
        let Layout::Threads(lanes) = layout else {
            panic!("expected threads, got {layout:?}");
        };
        lanes
            .iter()
            .map(|l| {
                let streams = program
                    .streams
                    .iter()
                    .zip(&l.streams)
                    .filter(|(_, on)| **on)
                    .map(|(s, _)| s.name.to_string())
                    .collect();
                (l.name.clone(), streams)
            })
            .collect()
    }

    #[test]
    fn streams_inherit_the_context_their_input_forwards_to_or_runs_in() {
        let p = compile(&format!(
            "{HEAD}stream X = E\n    .context(b)\n    .emit(context: a, k: k, v: v)\n\nstream Y = X\n    .where(v > 1)\n\nstream Z = Y\n    .emit(k: k)\n\nstream W = E\n    .emit(v: v)\n"
        ));
        let layout = plan(&p);
        assert_eq!(
            names(&layout, &p),
            [
                ("b".to_string(), vec!["X".to_string()]),
                ("a".to_string(), vec!["Y".to_string(), "Z".to_string()]),
                (DEFAULT_CONTEXT.to_string(), vec!["W".to_string()]),
            ]
        );
        let Layout::Threads(lanes) = layout else {
            return;
        };
        let x = p.stream_id("X").expect("X") as usize;
        assert!(lanes[0].exported[x], "a reads X");
        assert_eq!(lanes[0].exported.iter().filter(|e| **e).count(), 1);
    }

    #[test]
    fn one_context_with_streams_needs_no_thread() {
        let p = compile(&format!(
            "{HEAD}stream X = E\n    .context(a)\n    .emit(k: k)\n\nstream Y = X\n    .emit(k: k)\n"
        ));
        assert_eq!(plan(&p), Layout::One { why: None });
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_context_thread_is_pinned_to_its_cores() {
        let allowed = std::thread::spawn(|| {
            pin(&[0]).expect("core 0 exists");
            std::fs::read_to_string("/proc/thread-self/status").expect("status")
        })
        .join()
        .expect("thread");
        let line = allowed
            .lines()
            .find(|l| l.starts_with("Cpus_allowed_list:"))
            .expect("Cpus_allowed_list");
        assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
        let e = std::thread::spawn(|| pin(&[100_000]))
            .join()
            .expect("thread")
            .expect_err("no such core");
        assert!(e.contains("core 100000"), "{e}");
        assert!(pin(&[]).is_ok(), "no cores: not pinned");
    }

    fn why(text: &str) -> String {
        match plan(&compile(&format!("{HEAD}{text}"))) {
            Layout::One { why: Some(why) } => why,
            other => panic!("expected one thread with a reason, got {other:?}"),
        }
    }

    #[test]
    fn splits_that_could_change_results_run_on_one_thread_saying_why() {
        let cycle = "stream X = E\n    .context(a)\n    .emit(k: k, v: v)\n\nstream Y = X\n    .context(b)\n    .emit(k: k, v: v)\n\nstream Z = Y\n    .context(a)\n    .emit(k: k)\n";
        let w = why(cycle);
        assert!(
            w.contains("cycle") && w.contains("`a`") && w.contains("`b`"),
            "{w}"
        );
        let merge = "stream X = E\n    .context(a)\n    .emit(k: k, v: v)\n\nstream M = merge(X, E)\n    .context(b)\n    .emit(k: k)\n";
        assert!(why(merge).contains("stream `M` reads several inputs"));
        let var = "var n: int = 0\n\nstream X = E\n    .context(a)\n    .emit(k: k)\n\nstream Y = E\n    .context(b)\n    .emit(k: k)\n";
        assert!(why(var).contains("`var n`"));
    }
}

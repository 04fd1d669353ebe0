//! A job: one compiled program, one engine, and the host around it — input
//! decoding with event-time rules, bad-input accounting, `.print`/`.log`
//! lines, and `.to(...)` sinks.
//!
//! `simulate`, `run`, `varpulis test` and the corpus harness all drive a
//! [`Job`], so every entry point treats input, time and errors the same way
//! (one parser for all modes: docs/LANGUAGE.md#event-files-evt).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use varpulis_connectors::{
    open_sink, ConnectorConfig, Record, RecordId, Sink, SinkContext, SinkError, SinkMark,
    TraceParent,
};
use varpulis_program::evt::{EvtRecord, EvtScratch};
use varpulis_program::json::{JsonDecoded, JsonScratch};
use varpulis_program::{ConfigValue, DecodeError, EventDecoder, Program, RawEvent};
use varpulis_state::StateStore;
use varpulis_vm::{Engine, EngineConfig, Output, SideOutput};

/// Reads and loads the models of the program's `.score` operators (each
/// file once; paths were resolved against the program file by the
/// compiler). A missing file or a model that does not fit its `.score` is an
/// error here, before the first event.
pub fn load_models(program: &Program) -> anyhow::Result<varpulis_vm::model::Models> {
    varpulis_vm::model::load(program, &mut |path| std::fs::read(path))
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Options shared by the commands that run programs.
#[derive(Clone, Debug)]
pub struct JobOptions {
    /// Bad input is fatal instead of counted and skipped.
    pub strict: bool,
    /// Fire every open window and timer at the end of bounded input.
    pub final_flush: bool,
    /// Open `.to(...)` sinks; when false, sink outputs are only counted.
    pub sinks: bool,
    /// Directory against which relative sink paths resolve.
    pub sink_dir: PathBuf,
    /// Where `.enrich` lookups are answered from (docs/DESIGN.md#enrich).
    pub enrich: crate::enrich::EnrichMode,
}

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions {
            strict: false,
            final_flush: true,
            sinks: true,
            sink_dir: PathBuf::from("."),
            enrich: crate::enrich::EnrichMode::Offline,
        }
    }
}

/// Where an input record came from: a line of the input file, or a
/// connector subscription (an index into [`Program::subscriptions`]) and
/// the place the connector names (`mqtt topic sensors/1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordFrom<'a> {
    /// 1-based line of the input.
    Line(usize),
    /// A connector source.
    Source {
        /// The subscription.
        subscription: u32,
        /// The connector's name.
        connector: &'a str,
        /// Where the connector received it (`mqtt topic sensors/1`).
        place: &'a str,
    },
}

impl RecordFrom<'_> {
    fn line(self) -> usize {
        match self {
            RecordFrom::Line(l) => l,
            RecordFrom::Source { .. } => 0,
        }
    }

    fn place(self) -> String {
        match self {
            RecordFrom::Line(l) => format!("line {l}"),
            RecordFrom::Source {
                connector, place, ..
            } => format!("connector `{connector}` ({place})"),
        }
    }
}

/// A problem with one input record. The record is skipped (or, with
/// `--strict`, the job stops).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputProblem {
    /// 1-based line in the input (0 for connector sources).
    pub line: usize,
    /// `line 3`, or the connector and its place (`connector `In` (mqtt topic
    /// sensors/1)`).
    pub place: String,
    /// What is wrong.
    pub message: String,
    /// The kind, for counting: `malformed`, `unknown_type`, `wrong_type`.
    pub kind: &'static str,
}

impl std::fmt::Display for InputProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}

/// What the host saw, besides the outputs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobStats {
    /// Records read (good and bad).
    pub records: u64,
    /// Events given to the engine.
    pub events: u64,
    /// Skipped records by kind.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Visible outputs.
    pub outputs: u64,
    /// Records handed to sinks.
    pub sink_records: u64,
}

/// What a checkpoint keeps of one sink: how many records the pipeline has sent it (the
/// sequence number of the next one, for idempotency keys) and the sink's barrier mark.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SinkState {
    /// Records sent to the connector so far.
    pub seq: u64,
    /// What [`Sink::restore`] takes the output back to (file sinks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<SinkMark>,
}

/// Sink states by connector name.
pub type SinkStates = BTreeMap<String, SinkState>;

/// A fresh pipeline id: 16 hex digits from std's randomly keyed hasher.
pub fn new_pipeline_id() -> String {
    use std::hash::BuildHasher;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let id = std::hash::RandomState::new().hash_one((nanos, std::process::id()));
    format!("{id:016x}")
}

/// A record decoded without the state of a job (the previous record's
/// time, counters, unknown types already reported), so any thread can
/// decode it; [`Job::admit`] applies that state in input order.
#[derive(Debug)]
pub enum Decoded {
    /// An event. `time` is the record's own time; `None` takes the previous
    /// record's (the event's `time` is set by [`Job::admit`]).
    Event {
        /// The event.
        event: varpulis_program::Event,
        /// The record's own time.
        time: Option<i64>,
    },
    /// The program has no such event type: skipped.
    UnknownType {
        /// The type name the record gave.
        name: String,
        /// The record's own time.
        time: Option<i64>,
    },
    /// A field has the wrong type: skipped.
    WrongType {
        /// What is wrong.
        message: String,
        /// The record's own time.
        time: Option<i64>,
    },
    /// Not an event at all (bad JSON, bad `.evt` line): skipped.
    Malformed(String),
}

/// Decodes `raw` with the given time (else its `timestamp`, else the
/// previous record's, filled in by [`Job::admit`]) on any thread.
pub fn decode_alone(decoder: &EventDecoder, raw: &RawEvent, time: Option<i64>) -> Decoded {
    let time = time.or(raw.timestamp);
    let mut warnings = Vec::new();
    let event = decoder.decode(raw, time.unwrap_or(0), &mut warnings);
    decoded(event, &warnings, time)
}

/// Decodes one JSON text straight into an event ([`EventDecoder::decode_json`]) on any
/// thread, reusing `scratch` from one text to the next: what [`parse_json_event`] then
/// [`decode_alone`] give, without the intermediate record.
///
/// [`parse_json_event`]: varpulis_program::json::parse_json_event
pub fn decode_json_alone(decoder: &EventDecoder, text: &str, scratch: &mut JsonScratch) -> Decoded {
    let mut warnings = Vec::new();
    match decoder.decode_json(text, None, scratch, &mut warnings) {
        Ok(JsonDecoded { timestamp, event }) => decoded(event, &warnings, timestamp),
        Err(e) => Decoded::Malformed(e.to_string()),
    }
}

/// Decodes one `.evt` event text straight into an event ([`EventDecoder::decode_evt`]) on
/// any thread, reusing `scratch`: what [`parse_event_text`] then [`decode_alone`] give, with
/// only the time the text names (a JSON `timestamp`), without the intermediate record.
///
/// [`parse_event_text`]: varpulis_program::evt::parse_event_text
pub fn decode_evt_alone(decoder: &EventDecoder, text: &str, scratch: &mut EvtScratch) -> Decoded {
    let mut warnings = Vec::new();
    match decoder.decode_evt(text, scratch, &mut warnings) {
        Ok(JsonDecoded { timestamp, event }) => decoded(event, &warnings, timestamp),
        Err(e) => Decoded::Malformed(e.to_string()),
    }
}

/// A decoded event, or why it is skipped: its first type mismatch, or its unknown type.
fn decoded(
    event: Result<varpulis_program::Event, DecodeError>,
    warnings: &[varpulis_program::DecodeWarning],
    time: Option<i64>,
) -> Decoded {
    match event {
        Ok(event) => match warnings.first() {
            Some(w) => Decoded::WrongType {
                message: w.to_string(),
                time,
            },
            None => Decoded::Event { event, time },
        },
        Err(DecodeError::UnknownType(name)) => Decoded::UnknownType { name, time },
    }
}

/// A program running in an engine, plus its host-side state.
pub struct Job {
    engine: Engine,
    decoder: EventDecoder,
    /// What decoding JSON lines reuses from one line to the next.
    json: JsonScratch,
    program: Arc<Program>,
    options: JobOptions,
    /// Time given to records without one: the previous record's time.
    clock: i64,
    sinks: Vec<Option<Box<dyn Sink>>>,
    /// The id scoping record ids ([`Job::set_pipeline`]).
    pipeline: String,
    /// Counters of the sinks of the programs this one replaced, by connector name.
    sinks_before: BTreeMap<String, varpulis_connectors::SinkMetrics>,
    /// Per connector: `<pipeline>/<connector>`, the scope of its records' ids.
    scopes: Vec<Arc<str>>,
    /// Per connector: the sequence number of the next record sent to it.
    seqs: Vec<u64>,
    stats: JobStats,
    /// Event types already reported as unknown (each is reported once).
    unknown_reported: std::collections::BTreeSet<String>,
    problems: Vec<InputProblem>,
    /// The most recent skipped record's problem (for dead-letter lines).
    last_problem: Option<InputProblem>,
    messages: Vec<String>,
    /// The trace context of the event being pushed, carried by the records
    /// it sends to sinks ([`Job::set_trace_parent`]).
    trace_parent: Option<TraceParent>,
    /// Warnings of the `.enrich` lookups (failed lookups, keys a replay
    /// file lacks), gathered by [`Job::take_messages`].
    enrich_warnings: Arc<std::sync::Mutex<Vec<String>>>,
    /// Counters of the `.enrich` lookups.
    enrich_metrics: Arc<crate::enrich::EnrichMetrics>,
    /// Partition-parallel engine shards ([`Job::start_workers`]) or one
    /// engine thread per context ([`Job::start_contexts`]); when set, they
    /// run the events and `engine` only stands for the program.
    shards: Option<crate::contexts::Engines>,
    /// Per round of the shards in flight, oldest first: the trace contexts
    /// of its events (`None`: a watermark move or the final flush).
    rounds: std::collections::VecDeque<Option<Vec<Option<TraceParent>>>>,
    /// Why the shards stopped working, once they have (a live run stops).
    broken: Option<String>,
}

/// One decoded event for [`Job::push_events`]: the connector subscription it
/// came from and the trace context its records carry.
pub struct Routed {
    /// The event.
    pub event: varpulis_program::Event,
    /// The subscription it came from (`None`: every stream of its type).
    pub origin: Option<u32>,
    /// The caller's trace context, if it sent one.
    pub trace_parent: Option<TraceParent>,
}

/// What one round of the engine produced ([`Job::push_events`], [`Job::settle`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// It ran a batch of events (else a watermark move or the final flush).
    pub batch: bool,
    /// Where its outputs start in the caller's output vector.
    pub start: usize,
    /// For each of its outputs, the index in its batch of the event that
    /// caused it.
    pub causes: Vec<Option<usize>>,
}

/// Rounds of the workers left running when [`Job::push_events`] returns: the
/// host decodes the next batches while they run. More than one absorbs the
/// uneven pace of the host and the shards (docs/DESIGN.md, *Live runs use
/// the same shards*).
const MAX_IN_FLIGHT: usize = 3;

/// Table of a checkpoint that holds one engine state per worker.
const SHARDS_TABLE: &str = "shards";

impl Job {
    /// Loads `program` into a fresh engine and opens its sinks.
    pub fn new(program: Program, options: JobOptions) -> anyhow::Result<Job> {
        let mut job = Job::without_sinks(program, options)?;
        job.open_sinks()?;
        Ok(job)
    }

    /// Loads `program` into a fresh engine; its sinks stay closed until
    /// [`Job::open_sinks`] (a hot update closes the old program's sinks first).
    pub fn without_sinks(program: Program, options: JobOptions) -> anyhow::Result<Job> {
        let program = Arc::new(program);
        let config = EngineConfig {
            flush_at_end: options.final_flush,
            ..EngineConfig::default()
        };
        let models = load_models(&program)?;
        let mut engine = Engine::with_models(program.clone(), config, &models)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let enrich_warnings = Arc::new(std::sync::Mutex::new(Vec::new()));
        let enrich_metrics = Arc::new(crate::enrich::EnrichMetrics::default());
        if let Some(e) = crate::enrich::enricher(
            &program,
            &options.enrich,
            enrich_metrics.clone(),
            enrich_warnings.clone(),
        )? {
            engine.set_enricher(e);
        }
        let decoder = EventDecoder::new(&program);
        let n = program.connectors.len();
        let sinks = (0..n).map(|_| None).collect();
        let mut job = Job {
            engine,
            decoder,
            json: JsonScratch::default(),
            program,
            options,
            clock: 0,
            sinks,
            pipeline: String::new(),
            sinks_before: BTreeMap::new(),
            scopes: Vec::new(),
            seqs: vec![0; n],
            stats: JobStats::default(),
            unknown_reported: Default::default(),
            problems: Vec::new(),
            last_problem: None,
            messages: Vec::new(),
            trace_parent: None,
            enrich_warnings,
            enrich_metrics,
            shards: None,
            rounds: Default::default(),
            broken: None,
        };
        job.set_pipeline(&new_pipeline_id());
        Ok(job)
    }

    /// Runs the program on `workers` engine shards from now on (before any
    /// event): events are routed by partition key, outputs merged in the
    /// canonical order (docs/RUNTIME.md#workers). A program whose state
    /// cannot be split by key is refused ([`crate::parallel::plan`]).
    pub fn start_workers(&mut self, workers: usize) -> anyhow::Result<()> {
        if workers == 0 || workers > crate::parallel::MAX_WORKERS {
            anyhow::bail!(
                "--workers must be between 1 and {}, got {workers}",
                crate::parallel::MAX_WORKERS
            );
        }
        let plan = if workers > 1 {
            crate::parallel::plan(&self.program).map_err(|r| anyhow::anyhow!("{r}"))?
        } else {
            crate::parallel::ShardPlan { keys: Vec::new() }
        };
        let config = EngineConfig {
            flush_at_end: self.options.final_flush,
            ..EngineConfig::default()
        };
        let models = load_models(&self.program)?;
        self.shards = Some(crate::contexts::Engines::Shards(
            crate::parallel::Shards::start(self.program.clone(), config, &models, workers, plan)?,
        ));
        Ok(())
    }

    /// Runs each context of the program on its own engine thread from now on
    /// (before any event): `lanes` from [`crate::contexts::plan`]. Outputs
    /// are merged in the canonical order, as with workers, and a checkpoint
    /// holds the one state a single engine would have
    /// (docs/RUNTIME.md#contexts). Returns the warnings of contexts whose
    /// cores could not be had.
    pub fn start_contexts(
        &mut self,
        lanes: Vec<crate::contexts::Lane>,
    ) -> anyhow::Result<Vec<String>> {
        let config = EngineConfig {
            flush_at_end: self.options.final_flush,
            ..EngineConfig::default()
        };
        let models = load_models(&self.program)?;
        let mut warnings = Vec::new();
        let pipeline = crate::contexts::Pipeline::start(
            self.program.clone(),
            config,
            &models,
            &lanes,
            &mut warnings,
        )?;
        self.shards = Some(crate::contexts::Engines::Contexts(pipeline, lanes));
        Ok(warnings)
    }

    /// The number of engine shards (`None`: one engine, in arrival order,
    /// or context threads).
    pub fn workers(&self) -> Option<usize> {
        self.shards
            .as_ref()
            .and_then(crate::contexts::Engines::workers)
    }

    /// The number of context threads (`None`: one engine or shards).
    pub fn contexts(&self) -> Option<usize> {
        self.shards
            .as_ref()
            .and_then(crate::contexts::Engines::contexts)
    }

    /// Whether events go to engine threads in batches (workers or
    /// contexts) rather than run one by one.
    pub fn batches(&self) -> bool {
        self.shards.is_some()
    }

    /// Why the engine shards stopped working, if they did: the run must stop.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Runs decoded events, in order, appending visible outputs to `out`.
    ///
    /// On one engine the events run at once and the answer is their round.
    /// With workers the events go to the shards as one round and the call
    /// returns once at most three rounds (`MAX_IN_FLIGHT`) are still running:
    /// the host decodes the next batch while the shards run this one, and
    /// the answer holds the rounds that finished (an earlier batch's
    /// outputs, in order). [`Job::settle`] waits for the rest; a shard that
    /// stopped is an error (the run must stop).
    pub fn push_events(
        &mut self,
        events: Vec<Routed>,
        out: &mut Vec<Output>,
    ) -> anyhow::Result<Vec<Done>> {
        if self.shards.is_none() {
            let start = out.len();
            let mut causes = Vec::new();
            for (i, r) in events.into_iter().enumerate() {
                let before = out.len();
                self.trace_parent = r.trace_parent;
                self.engine.push_from(r.event, r.origin, out);
                self.after_engine(before, out);
                causes.resize(out.len() - start, Some(i));
            }
            self.trace_parent = None;
            return Ok(vec![Done {
                batch: true,
                start,
                causes,
            }]);
        }
        let parents: Vec<Option<TraceParent>> = events.iter().map(|r| r.trace_parent).collect();
        let batch = events.into_iter().map(|r| (r.event, r.origin)).collect();
        self.with_shards(|s| s.run(batch))?;
        self.rounds.push_back(Some(parents));
        let mut done = Vec::new();
        while self
            .shards
            .as_ref()
            .map_or(0, crate::contexts::Engines::in_flight)
            > MAX_IN_FLIGHT
        {
            match self.collect_round(out)? {
                Some(d) => done.push(d),
                None => break,
            }
        }
        Ok(done)
    }

    /// Waits for every round of the workers still running and takes their
    /// outputs (nothing to do on one engine). Hosts settle before a
    /// checkpoint, a hot update and a stop, so that what they save or close
    /// covers every event handed over.
    pub fn settle(&mut self, out: &mut Vec<Output>) -> anyhow::Result<Vec<Done>> {
        let mut done = Vec::new();
        while let Some(d) = self.collect_round(out)? {
            done.push(d);
        }
        Ok(done)
    }

    /// Collects the oldest round in flight into `out` and the sinks.
    fn collect_round(&mut self, out: &mut Vec<Output>) -> anyhow::Result<Option<Done>> {
        if self.shards.is_none() {
            return Ok(None);
        }
        let Some(merged) = self.with_shards(crate::contexts::Engines::collect)? else {
            return Ok(None);
        };
        let parents = self.rounds.pop_front().flatten();
        let batch = parents.is_some();
        let start = out.len();
        let causes = self.absorb_merged(merged, parents.as_deref().unwrap_or(&[]), out);
        Ok(Some(Done {
            batch,
            start,
            causes,
        }))
    }

    /// Calls the shards; a failure marks the job broken.
    fn with_shards<T>(
        &mut self,
        f: impl FnOnce(&mut crate::contexts::Engines) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let Some(shards) = self.shards.as_mut() else {
            anyhow::bail!("the job runs no engine workers");
        };
        f(shards).inspect_err(|e| self.broken = Some(format!("{e:#}")))
    }

    /// A watermark move or the final flush on the workers: the rounds in
    /// flight first, then this one, all into `out`.
    fn shard_round(
        &mut self,
        out: &mut Vec<Output>,
        f: impl FnOnce(&mut crate::contexts::Engines) -> anyhow::Result<()>,
    ) {
        let result = self.settle(out).and_then(|_| {
            self.with_shards(f)?;
            self.rounds.push_back(None);
            self.settle(out)
        });
        if let Err(e) = result {
            self.messages.push(format!("error: {e:#}"));
        }
    }

    /// Hands merged shard results to the sinks and messages (each sink
    /// record with its event's trace context) and `out`.
    fn absorb_merged(
        &mut self,
        merged: crate::parallel::Merged,
        parents: &[Option<TraceParent>],
        out: &mut Vec<Output>,
    ) -> Vec<Option<usize>> {
        let n = merged.outputs.len();
        let mut causes = Vec::with_capacity(n);
        for (cause, o) in merged.outputs {
            causes.push(cause);
            out.push(o);
        }
        self.stats.outputs += n as u64;
        // Side outputs come grouped by position: one trace context per group.
        let mut side = merged.side.into_iter().peekable();
        while let Some((cause, first)) = side.next() {
            let mut group = vec![first];
            while let Some((_, s)) = side.next_if(|(c, _)| *c == cause) {
                group.push(s);
            }
            self.trace_parent = cause.and_then(|i| parents.get(i).copied().flatten());
            self.absorb(0, group, Vec::new());
        }
        self.trace_parent = None;
        self.absorb(0, Vec::new(), merged.errors);
        causes
    }

    /// Opens the sinks the program sends to (those that are not open yet). On an error the
    /// ones opened so far stay open; [`Job::stop`] closes them.
    pub fn open_sinks(&mut self) -> anyhow::Result<()> {
        for (i, def) in self.program.connectors.iter().enumerate() {
            let Some(slot) = self.sinks.get_mut(i) else {
                continue;
            };
            if slot.is_some() || !self.options.sinks || !program_sends_to(&self.program, i) {
                continue;
            }
            let config = connector_config(def, &[]);
            let sink = open_sink(&config, &SinkContext::new(self.options.sink_dir.clone()))
                .with_context(|| format!("cannot open connector `{}`", def.name))?;
            *slot = Some(sink);
        }
        Ok(())
    }

    /// The `.enrich` lookup counters by connector name.
    pub fn enrich_metrics(
        &self,
    ) -> std::collections::BTreeMap<String, crate::enrich::ConnectorCounts> {
        self.enrich_metrics.snapshot()
    }

    /// The pipeline id that scopes record ids ([`Job::set_pipeline`]).
    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    /// Takes over the host counters of `old` (a hot update keeps them going).
    /// Sink counters continue too: a sink of the same name starts from the old one's.
    pub fn carry_stats_from(&mut self, old: &mut Job) {
        self.stats = std::mem::take(&mut old.stats);
        self.sinks_before = old.sink_metrics().into_iter().collect();
        // Lookup counters continue too, so they never go backwards.
        self.enrich_metrics.add(&old.enrich_metrics.snapshot());
    }

    /// Names the pipeline: record ids are `<pipeline>/<connector>:<seq>`. A run with a state
    /// directory keeps the id there, so a restart gives replayed records the same ids.
    pub fn set_pipeline(&mut self, id: &str) {
        self.pipeline = id.to_string();
        self.scopes = self
            .program
            .connectors
            .iter()
            .map(|c| Arc::from(format!("{id}/{}", c.name)))
            .collect();
    }

    /// Sets the trace context records sent to sinks carry, until it is set
    /// again: the host sets an event's context for the duration of its push,
    /// so the outputs it causes continue the caller's trace.
    pub fn set_trace_parent(&mut self, context: Option<TraceParent>) {
        self.trace_parent = context;
    }

    /// The checkpoint barrier of every open sink (see [`Sink::barrier`]): `Err` names the
    /// first sink that could not confirm its records by `deadline`.
    pub fn barrier(&mut self, deadline: std::time::Instant) -> Result<SinkStates, SinkError> {
        let mut states = SinkStates::new();
        for (sink, seq) in self.sinks.iter_mut().zip(&self.seqs) {
            let Some(sink) = sink else { continue };
            let mark = sink.barrier(deadline)?;
            states.insert(sink.name().to_string(), SinkState { seq: *seq, mark });
        }
        Ok(states)
    }

    /// The checkpoint the last [`Job::barrier`] belongs to is durable: sinks that staged their
    /// records for it publish them ([`Sink::committed`]). Every sink is told; the first error
    /// is returned.
    pub fn committed(&mut self) -> Result<(), SinkError> {
        let mut first = Ok(());
        for sink in self.sinks.iter_mut().flatten() {
            let done = sink.committed();
            if first.is_ok() {
                first = done;
            }
        }
        first
    }

    /// After a restart from a checkpoint: the sinks take their output back to it and record
    /// ids continue from its sequence numbers. Before any event runs.
    pub fn restore_sinks(&mut self, states: &SinkStates) -> anyhow::Result<()> {
        for (sink, seq) in self.sinks.iter_mut().zip(self.seqs.iter_mut()) {
            let Some(sink) = sink else { continue };
            let Some(state) = states.get(sink.name()) else {
                continue;
            };
            *seq = state.seq;
            if let Some(mark) = &state.mark {
                sink.restore(mark)?;
            }
        }
        Ok(())
    }

    /// The options the job runs with.
    pub fn options(&self) -> &JobOptions {
        &self.options
    }

    /// The program being run.
    pub fn program(&self) -> &Arc<Program> {
        &self.program
    }

    /// Counters so far.
    pub fn stats(&self) -> &JobStats {
        &self.stats
    }

    /// Each open sink's connector name and counters.
    pub fn sink_metrics(&self) -> Vec<(String, varpulis_connectors::SinkMetrics)> {
        self.sinks
            .iter()
            .flatten()
            .map(|s| {
                let mut m = s.metrics();
                if let Some(before) = self.sinks_before.get(s.name()) {
                    m.sent += before.sent;
                    m.failed += before.failed;
                    m.retried += before.retried;
                    m.dead_lettered += before.dead_lettered;
                    m.dropped_queue_full += before.dropped_queue_full;
                    m.dropped += before.dropped;
                    m.bytes += before.bytes;
                    if m.last_error.is_none() {
                        m.last_error.clone_from(&before.last_error);
                    }
                }
                (s.name().to_string(), m)
            })
            .collect()
    }

    /// The engine (metrics, snapshots). With workers
    /// ([`Job::start_workers`]) it runs nothing: use [`Job::engine_stats`],
    /// [`Job::save_engine`] and [`Job::load_engine`].
    pub fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// The engine's counters, per-stream memory and watermark (with workers:
    /// summed over the shards, and their common watermark).
    pub fn engine_stats(
        &mut self,
    ) -> (
        varpulis_vm::Metrics,
        Vec<varpulis_vm::memory::StreamMemory>,
        Option<i64>,
    ) {
        if let Some(shards) = self.shards.as_mut() {
            match shards.stats() {
                Ok(stats) => return stats,
                Err(e) => self.broken = Some(format!("{e:#}")),
            }
        }
        (
            self.engine.metrics(),
            self.engine.memory(),
            self.engine.watermark(),
        )
    }

    /// Writes the engine state into `store` (cleared first). With workers,
    /// table `shards` holds `count` and one state per shard (key `0`, `1`,
    /// ...), all in the same store, so they commit together.
    pub fn save_engine(
        &mut self,
        store: &mut dyn varpulis_state::StateStore,
    ) -> anyhow::Result<()> {
        let shards = match self.shards.as_mut() {
            None => {
                return self
                    .engine
                    .save_state(store)
                    .map_err(|e| anyhow::anyhow!("{e}"))
            }
            // One combined state, as one engine would have saved it.
            Some(crate::contexts::Engines::Contexts(pipeline, lanes)) => {
                return pipeline
                    .save_into(store, lanes)
                    .inspect_err(|e| self.broken = Some(format!("{e:#}")));
            }
            Some(crate::contexts::Engines::Shards(shards)) => shards,
        };
        let states = shards
            .save()
            .inspect_err(|e| self.broken = Some(format!("{e:#}")))?;
        store.clear()?;
        store.put(
            SHARDS_TABLE,
            b"count",
            states.len().to_string().into_bytes(),
        )?;
        store.put(
            SHARDS_TABLE,
            b"routing",
            crate::parallel::routing_fingerprint().into_bytes(),
        )?;
        for (i, bytes) in states.into_iter().enumerate() {
            store.put(SHARDS_TABLE, i.to_string().as_bytes(), bytes)?;
        }
        Ok(())
    }

    /// Restores the engine state [`Job::save_engine`] wrote. A state saved by
    /// one engine and one saved by one worker are interchangeable; a state
    /// saved with another number of workers cannot be split again by key:
    /// with [`varpulis_vm::Compat::Strict`] that is an error saying which
    /// count to run with, with `Carry` (a server restart) every stream starts
    /// empty and the report says why.
    pub fn load_engine(
        &mut self,
        store: &dyn varpulis_state::StateStore,
        compat: varpulis_vm::Compat,
    ) -> anyhow::Result<varpulis_vm::StateReport> {
        let saved = saved_workers(store)?;
        let running = self.workers().unwrap_or(1);
        if saved != running {
            if compat == varpulis_vm::Compat::Strict {
                anyhow::bail!(WorkersMismatch { saved, running });
            }
            return Ok(emptied(
                &self.program,
                "saved with another number of workers",
            ));
        }
        if !same_routing(store)? {
            if compat == varpulis_vm::Compat::Strict {
                anyhow::bail!(RoutingMismatch { workers: saved });
            }
            return Ok(emptied(
                &self.program,
                "saved by a build that routes keys differently",
            ));
        }
        let sharded_state = store.get(SHARDS_TABLE, b"count")?.is_some();
        let mut states = Vec::with_capacity(saved);
        if sharded_state {
            for i in 0..saved {
                let bytes = store
                    .get(SHARDS_TABLE, i.to_string().as_bytes())?
                    .ok_or_else(|| anyhow::anyhow!("the state of worker {i} is missing"))?;
                states.push(varpulis_state::MemoryStore::from_snapshot(&bytes)?);
            }
        } else {
            states.push(engine_tables(store)?);
        }
        match self.shards.as_mut() {
            Some(crate::contexts::Engines::Shards(shards)) => shards.load(states, compat),
            Some(crate::contexts::Engines::Contexts(pipeline, _)) => {
                pipeline.load(states.pop().unwrap_or_default(), compat)
            }
            None => {
                let one = states.pop().unwrap_or_default();
                self.engine
                    .load_state_with(&one, compat)
                    .map_err(|e| anyhow::anyhow!("{e}"))
            }
        }
    }

    /// Pushes one `.evt` record; its time is its JSON `timestamp` or its
    /// offset from the epoch (DESIGN.md, Time).
    pub fn push_evt(&mut self, rec: &EvtRecord, out: &mut Vec<Output>) -> Result<(), InputProblem> {
        let time = rec.event_time(0);
        self.push_raw(&rec.event, Some(time), rec.line, out)
    }

    /// Pushes one decoded record at `time`, or at the previous record's time
    /// when it has none.
    pub fn push_raw(
        &mut self,
        raw: &RawEvent,
        time: Option<i64>,
        line: usize,
        out: &mut Vec<Output>,
    ) -> Result<(), InputProblem> {
        self.push_raw_from(raw, time, RecordFrom::Line(line), out)
    }

    /// Pushes one decoded record from `from`: a connector subscription's
    /// events skip the `.from` streams of other subscriptions.
    pub fn push_raw_from(
        &mut self,
        raw: &RawEvent,
        time: Option<i64>,
        from: RecordFrom<'_>,
        out: &mut Vec<Output>,
    ) -> Result<(), InputProblem> {
        let origin = match from {
            RecordFrom::Line(_) => None,
            RecordFrom::Source { subscription, .. } => Some(subscription),
        };
        let Some(event) = self.decode_from(raw, time, from)? else {
            return Ok(());
        };
        self.run_event(event, origin, out);
        Ok(())
    }

    /// Pushes the JSON text of input line `line` ([`Job::push_raw`] of what it reads), decoded
    /// straight into an event.
    pub fn push_json_line(
        &mut self,
        text: &str,
        line: usize,
        out: &mut Vec<Output>,
    ) -> Result<(), InputProblem> {
        let decoded = decode_json_alone(&self.decoder, text, &mut self.json);
        let Some(event) = self.admit(decoded, RecordFrom::Line(line))? else {
            return Ok(());
        };
        self.run_event(event, None, out);
        Ok(())
    }

    /// Takes back outputs the caller is done with (written or sent), emptying `outputs`: the
    /// engine builds later outputs in their field lists.
    pub fn recycle_outputs(&mut self, outputs: &mut Vec<Output>) {
        if self.shards.is_some() {
            outputs.clear();
        } else {
            self.engine.recycle_outputs(outputs);
        }
    }

    /// Runs one admitted event in the engine, or in the shards when there are.
    fn run_event(
        &mut self,
        event: varpulis_program::Event,
        origin: Option<u32>,
        out: &mut Vec<Output>,
    ) {
        if self.shards.is_some() {
            // One event as a batch of its own (live runs batch their events:
            // [`Job::push_events`]).
            let routed = Routed {
                event,
                origin,
                trace_parent: self.trace_parent,
            };
            if let Err(e) = self
                .push_events(vec![routed], out)
                .and_then(|_| self.settle(out))
            {
                self.messages.push(format!("error: {e:#}"));
            }
            return;
        }
        let start = out.len();
        self.engine.push_from(event, origin, out);
        if let Some(slots) = self.engine.take_spare_slots() {
            self.json.give_slots(slots);
        }
        self.after_engine(start, out);
    }

    /// Decodes one record from `from` at `time` (or the previous record's
    /// time) with the event-time and bad-input rules of
    /// [`Job::push_raw_from`], without running it: `Ok(None)` when the
    /// record is counted and skipped. A partition-parallel run decodes here
    /// and runs the event in the engine shard that owns it.
    pub fn decode_from(
        &mut self,
        raw: &RawEvent,
        time: Option<i64>,
        from: RecordFrom<'_>,
    ) -> Result<Option<varpulis_program::Event>, InputProblem> {
        let decoded = decode_alone(&self.decoder, raw, time);
        self.admit(decoded, from)
    }

    /// Applies what a record decoded on its own ([`decode_alone`], on any
    /// thread) needs of the job, in input order: the previous record's time
    /// for records without one, the counters, the report of each unknown
    /// type once, and `--strict`. `Ok(None)` when the record is counted and
    /// skipped. [`Job::decode_from`] is [`decode_alone`] then this.
    pub fn admit(
        &mut self,
        decoded: Decoded,
        from: RecordFrom<'_>,
    ) -> Result<Option<varpulis_program::Event>, InputProblem> {
        let time = match &decoded {
            Decoded::Malformed(_) => None,
            Decoded::Event { time, .. }
            | Decoded::UnknownType { time, .. }
            | Decoded::WrongType { time, .. } => Some(time.unwrap_or(self.clock)),
        };
        if let Some(time) = time {
            self.stats.records += 1;
            self.clock = time;
        }
        match decoded {
            Decoded::Malformed(message) => self.malformed_from(from, message).map(|()| None),
            Decoded::Event { mut event, .. } => {
                event.time = self.clock;
                self.stats.events += 1;
                Ok(Some(event))
            }
            Decoded::UnknownType { name, .. } => {
                // Each unknown name is reported once; the set of names is bounded so a
                // sender inventing a new type per event cannot grow it without end (past
                // the bound they are still counted, no longer listed).
                let message = format!(
                    "unknown event type `{name}` (the program declares or uses no such type)"
                );
                let first = self.unknown_reported.len() < MAX_UNKNOWN_REPORTED
                    && self.unknown_reported.insert(name);
                let problem = InputProblem {
                    line: from.line(),
                    place: from.place(),
                    kind: "unknown_type",
                    message,
                };
                self.skip(problem, first).map(|()| None)
            }
            Decoded::WrongType { message, .. } => {
                let problem = InputProblem {
                    line: from.line(),
                    place: from.place(),
                    kind: "wrong_type",
                    message,
                };
                self.skip(problem, true).map(|()| None)
            }
        }
    }

    /// Records a malformed line (the reader could not decode it).
    pub fn malformed(&mut self, line: usize, message: String) -> Result<(), InputProblem> {
        self.malformed_from(RecordFrom::Line(line), message)
    }

    /// Records a malformed record from anywhere.
    pub fn malformed_from(
        &mut self,
        from: RecordFrom<'_>,
        message: String,
    ) -> Result<(), InputProblem> {
        self.rejected_from(from, "malformed", message)
    }

    /// A record refused before decoding, counted under `kind` (`malformed`,
    /// `future_timestamp`) and reported like a malformed one.
    pub fn rejected_from(
        &mut self,
        from: RecordFrom<'_>,
        kind: &'static str,
        message: String,
    ) -> Result<(), InputProblem> {
        self.stats.records += 1;
        self.skip(
            InputProblem {
                line: from.line(),
                place: from.place(),
                kind,
                message,
            },
            true,
        )
    }

    /// The problem of the most recently skipped record.
    pub fn last_problem(&self) -> Option<&InputProblem> {
        self.last_problem.as_ref()
    }

    fn skip(&mut self, problem: InputProblem, report: bool) -> Result<(), InputProblem> {
        *self.stats.skipped.entry(problem.kind).or_default() += 1;
        self.last_problem = Some(problem.clone());
        if self.options.strict {
            return Err(problem);
        }
        if report {
            self.problems.push(problem);
        }
        Ok(())
    }

    /// Moves the watermark to `ts` (a live run whose sources are idle) and
    /// collects what closes.
    pub fn advance_watermark(&mut self, ts: i64, out: &mut Vec<Output>) {
        if self.shards.is_some() {
            self.shard_round(out, |s| s.advance_watermark(ts));
            return;
        }
        let start = out.len();
        out.extend(self.engine.advance_watermark(ts));
        self.after_engine(start, out);
    }

    /// End of bounded input: fire what is still open and flush sinks.
    pub fn finish(&mut self, out: &mut Vec<Output>) -> anyhow::Result<()> {
        self.flush_end(out);
        self.close_sinks()
    }

    /// End of bounded input for the engine only: every open window and timer
    /// fires (sinks stay open).
    pub fn flush_end(&mut self, out: &mut Vec<Output>) {
        if self.shards.is_some() {
            self.shard_round(out, crate::contexts::Engines::finish);
            return;
        }
        let start = out.len();
        out.extend(self.engine.finish());
        self.after_engine(start, out);
    }

    /// A stop that is not the end of the input (Ctrl-C in a live run): open
    /// windows and partial matches are not fired; sinks are flushed and
    /// closed.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        // Rounds still running deliver their sink records before the sinks
        // close (their visible outputs are the host's to collect first).
        let mut late = Vec::new();
        let _ = self.settle(&mut late);
        self.close_sinks()
    }

    fn close_sinks(&mut self) -> anyhow::Result<()> {
        for sink in self.sinks.iter_mut().flatten() {
            sink.close()
                .with_context(|| format!("closing connector `{}`", sink.name()))?;
        }
        Ok(())
    }

    /// After [`Job::stop`]: forgets the closed sinks and opens them again (a hot update
    /// that could not start the new program goes back to the old one).
    pub fn reopen_sinks(&mut self) -> anyhow::Result<()> {
        for slot in &mut self.sinks {
            *slot = None;
        }
        self.open_sinks()
    }
    /// Input problems, print/log lines and runtime errors gathered since the
    /// last call, as lines for stderr.
    pub fn take_messages(&mut self) -> Vec<String> {
        let mut lines = std::mem::take(&mut self.messages);
        lines.append(
            &mut self
                .enrich_warnings
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        lines.extend(
            self.problems
                .drain(..)
                .map(|p| format!("warning: input {p} (skipped)")),
        );
        lines
    }

    fn after_engine(&mut self, start: usize, out: &mut [Output]) {
        let side = self.engine.take_side_outputs();
        let errors = self.engine.take_errors();
        self.absorb(out.len() - start, side, errors);
    }

    /// Takes what an engine produced besides `outputs` visible outputs: prints
    /// and logs become messages, sink records go to their sinks (with record
    /// ids in the order given), runtime errors are rendered. A
    /// partition-parallel run gives the merged results of its engine shards
    /// here.
    pub fn absorb(
        &mut self,
        outputs: usize,
        side: Vec<SideOutput>,
        errors: Vec<varpulis_vm::RuntimeError>,
    ) {
        self.stats.outputs += outputs as u64;
        for side in side {
            match side {
                SideOutput::Print { line, .. } | SideOutput::Log { line, .. } => {
                    self.messages.push(line)
                }
                SideOutput::Sink {
                    connector,
                    topic,
                    params,
                    output,
                } => {
                    self.stats.sink_records += 1;
                    let c = connector as usize;
                    let Some(Some(sink)) = self.sinks.get_mut(c) else {
                        continue;
                    };
                    let id = match (self.scopes.get(c), self.seqs.get_mut(c)) {
                        (Some(scope), Some(seq)) => {
                            *seq += 1;
                            Some(RecordId {
                                scope: scope.clone(),
                                seq: *seq - 1,
                            })
                        }
                        _ => None,
                    };
                    let mut buf = Vec::new();
                    crate::output::write_json_sink(&mut buf, &output);
                    let key = message_key(&params, &output);
                    let sent = Record::from_json(&buf)
                        .map(|r| r.routed(topic.map(|t| t.to_string()), key))
                        .map(|r| match id {
                            Some(id) => r.with_id(id),
                            None => r,
                        })
                        .map(|r| r.with_trace_parent(self.trace_parent))
                        .map_err(|e| e.to_string())
                        .and_then(|r| sink.send(r).map_err(|e| e.to_string()));
                    if let Err(e) = sent {
                        self.messages
                            .push(format!("warning: connector `{}`: {e}", sink.name()));
                    }
                }
            }
        }
        let spans = &self.program.span_table;
        for err in errors {
            self.messages
                .push(format!("warning: runtime error {}", err.render(spans)));
        }
    }
}

/// A checkpoint saved with another number of engine workers than the run
/// has ([`Job::load_engine`]).
#[derive(Debug)]
pub struct WorkersMismatch {
    /// Workers the state was saved with.
    pub saved: usize,
    /// Workers of this run.
    pub running: usize,
}

impl std::fmt::Display for WorkersMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = |n: usize| if n == 1 { "worker" } else { "workers" };
        write!(
            f,
            "this state was saved with {} {} and this run has {} {}; the state of each \
             worker holds its own partition keys and cannot be split again: run with \
             --workers {}, or start afresh with another --state-dir",
            self.saved,
            plural(self.saved),
            self.running,
            plural(self.running),
            self.saved
        )
    }
}

/// A checkpoint of several workers saved by a build that assigns partition
/// keys to workers differently ([`crate::parallel::routing_fingerprint`]).
#[derive(Debug)]
pub struct RoutingMismatch {
    /// Workers the state was saved with.
    pub workers: usize,
}

impl std::fmt::Display for RoutingMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "this state was saved by a build that assigns partition keys to its {} workers \
             differently, so each worker would look its keys up in another worker's state; \
             run the build that saved it, or start afresh with another --state-dir",
            self.workers
        )
    }
}

/// Whether the state in `store`, if several workers saved it, assigned keys
/// to workers as this build does (a state without the record, from an
/// earlier build, is taken as it is).
pub fn same_routing(store: &dyn varpulis_state::StateStore) -> anyhow::Result<bool> {
    Ok(match store.get(SHARDS_TABLE, b"routing")? {
        Some(saved) => saved == crate::parallel::routing_fingerprint().as_bytes(),
        None => true,
    })
}

/// The report of a restore that keeps nothing, and why: the state was saved
/// with another number of engine workers, or routed keys differently.
pub fn emptied(program: &Program, reason: &'static str) -> varpulis_vm::StateReport {
    varpulis_vm::StateReport {
        streams: program
            .streams
            .iter()
            .map(|s| varpulis_vm::StreamState {
                name: s.name.to_string(),
                from: None,
                state: "empty",
                reason,
            })
            .collect(),
        removed: Vec::new(),
    }
}

/// How many engine workers the state in `store` was saved with (1: one
/// engine, or no state).
pub fn saved_workers(store: &dyn varpulis_state::StateStore) -> anyhow::Result<usize> {
    let Some(bytes) = store.get(SHARDS_TABLE, b"count")? else {
        return Ok(1);
    };
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|t| t.parse::<usize>().ok())
        .filter(|n| (1..=crate::parallel::MAX_WORKERS).contains(n))
        .ok_or_else(|| anyhow::anyhow!("the checkpoint's worker count is unreadable"))
}

/// The state of one engine shard as saved in `store`: shard 0's when the
/// state was saved by workers, else the engine tables themselves.
pub fn first_engine_state(
    store: &dyn varpulis_state::StateStore,
) -> anyhow::Result<varpulis_state::MemoryStore> {
    match store.get(SHARDS_TABLE, b"0")? {
        Some(bytes) => Ok(varpulis_state::MemoryStore::from_snapshot(&bytes)?),
        None => engine_tables(store),
    }
}

/// A copy of the tables one engine's [`Engine::save_state`] wrote.
fn engine_tables(
    store: &dyn varpulis_state::StateStore,
) -> anyhow::Result<varpulis_state::MemoryStore> {
    let mut copy = varpulis_state::MemoryStore::new();
    let streams = varpulis_vm::saved_streams(store)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .map_or(0, |s| s.names.len());
    let tables =
        std::iter::once("engine".to_string()).chain((0..streams).map(|i| format!("stream/{i}")));
    for table in tables {
        for (k, v) in store.scan(&table)? {
            copy.put(&table, &k, v)?;
        }
    }
    Ok(copy)
}

/// The message key of a `.to(Conn, key: field)` site: the text of that
/// output field (absent field or no `key:` = no key).
fn message_key(params: &[(Arc<str>, ConfigValue)], output: &Output) -> Option<Vec<u8>> {
    let field = params.iter().find_map(|(k, v)| match (&**k, v) {
        ("key", ConfigValue::Ident(f) | ConfigValue::Str(f)) => Some(f.clone()),
        _ => None,
    })?;
    let value = output
        .fields
        .iter()
        .find(|(name, _)| **name == *field)
        .map(|(_, v)| v)?;
    Some(match value.as_str() {
        Some(text) => text.as_bytes().to_vec(),
        None => value.to_string().into_bytes(),
    })
}

/// Whether any stream of the program sends to connector `id`.
fn program_sends_to(program: &Program, id: usize) -> bool {
    program.streams.iter().any(|s| {
        s.ops.iter().any(|op| match op {
            varpulis_program::OpSpec::Sink { connector, .. } => *connector as usize == id,
            varpulis_program::OpSpec::OnError(r) => r.connector as usize == id,
            _ => false,
        })
    })
}

/// A connector declaration as the connectors crate reads it, with `site`
/// parameters (of a `.from` or `.to`) overriding the declaration's.
pub fn connector_config(
    def: &varpulis_program::ConnectorDef,
    site: &[(Arc<str>, ConfigValue)],
) -> ConnectorConfig {
    let mut params: BTreeMap<String, varpulis_connectors::ConfigValue> = def
        .params
        .iter()
        .map(|(k, v)| (k.to_string(), config_value(v)))
        .collect();
    for (k, v) in site {
        params.insert(k.to_string(), config_value(v));
    }
    ConnectorConfig {
        name: def.name.to_string(),
        kind: def.kind.to_string(),
        params,
    }
}

pub(crate) fn config_value(v: &ConfigValue) -> varpulis_connectors::ConfigValue {
    use varpulis_connectors::ConfigValue as C;
    match v {
        ConfigValue::Str(s) => C::Str(s.to_string()),
        ConfigValue::Int(i) => C::Int(*i),
        ConfigValue::Float(f) => C::Float(*f),
        ConfigValue::Bool(b) => C::Bool(*b),
        ConfigValue::Duration(d) => C::Duration(u64::try_from(*d).unwrap_or(0)),
        ConfigValue::Ident(s) => C::Ident(s.to_string()),
        ConfigValue::Array(a) => C::Array(a.iter().map(config_value).collect()),
    }
}

/// Unknown event-type names remembered (each reported once) at most.
const MAX_UNKNOWN_REPORTED: usize = 1024;

/// How deep `import` chains may go (docs/LANGUAGE.md#import).
const MAX_IMPORT_DEPTH: usize = 10;

/// Loads `path` and, transitively, the files it imports into `compiler`
/// (imports resolve against the importing file's directory; each file is
/// loaded once). An imported file that cannot be read is an error naming it
/// and its importer. Returns the root's name in the compiler.
pub fn load_with_imports(
    compiler: &mut varpulis_compiler::Compiler,
    path: &Path,
) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    let root = path.display().to_string();
    compiler.set_file(&root, text);
    let mut frontier = vec![root.clone()];
    let mut seen: std::collections::BTreeSet<String> = [root.clone()].into();
    for _ in 0..MAX_IMPORT_DEPTH {
        let mut next = Vec::new();
        for file in &frontier {
            for import in compiler.imports(file) {
                if !seen.insert(import.clone()) {
                    continue;
                }
                let text = std::fs::read_to_string(&import)
                    .with_context(|| format!("cannot read `{import}`, imported by `{file}`"))?;
                compiler.set_file(&import, text);
                next.push(import);
            }
        }
        if next.is_empty() {
            break;
        }
        frontier = next;
    }
    Ok(root)
}

/// Compiles a program file and its imports, printing nothing: returns the
/// program with its rendered warnings, or the rendered diagnostics.
pub fn compile(path: &Path, color: bool) -> anyhow::Result<Result<(Program, String), String>> {
    let mut compiler = varpulis_compiler::Compiler::new();
    let name = load_with_imports(&mut compiler, path)?;
    let text = compiler.text(&name).unwrap_or_default().to_string();
    let diags = compiler.check(&name);
    let rendered = if diags.is_empty() {
        String::new()
    } else {
        varpulis_compiler::render::terminal::render(&name, &text, &diags, color)
    };
    Ok(match compiler.program(&name) {
        Ok(program) => Ok((program, rendered)),
        Err(errors) => {
            if errors.is_empty() || !rendered.is_empty() {
                Err(rendered)
            } else {
                Err(varpulis_compiler::render::terminal::render(
                    &name, &text, &errors, color,
                ))
            }
        }
    })
}

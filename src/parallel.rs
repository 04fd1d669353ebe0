//! Partition-parallel runs (`varpulis run --workers N`, `.concurrent(workers: N)`).
//!
//! One thread reads the input in batches of whole lines, N threads parse and
//! decode the batches, and a routing thread takes them back in input order,
//! gives `.evt` events their times (which carry from line to line) and
//! routes each event to the engine shard that owns its partition key; N
//! shard threads each run their own deterministic [`Engine`] and encode its
//! outputs to JSON text (`Tagger`); the calling thread merges the texts
//! in a canonical order, writes them and handles sinks and messages. Stages
//! talk over bounded channels carrying batches, so a slow
//! stage holds the others back instead of buffering without end.
//!
//! Two rules make the output the same for every N (docs/DESIGN.md,
//! *Partition-parallel workers*):
//!
//! - **Time is broadcast.** Every shard sees every input position: the
//!   event itself when it owns the event's key, else only its type and
//!   time ([`Engine::observe_time`]), so watermarks, and with them every
//!   window close, move identically in all shards.
//! - **Outputs are merged canonically**: by the input position that caused
//!   them (the end of input last), then event time, then stream
//!   (declaration order), then their JSON text. The order inside one
//!   position therefore does not depend on which shard produced what.
//!
//! [`plan`] decides whether a program can be split at all: every stateful
//! stream must keep its state per partition key, and the key must be a field
//! of the input event, so the router can compute it without running the
//! program. Programs that cannot be split are refused with the stream and
//! the reason; they run with `--workers 1` (or without `--workers`).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::sync::Arc;

use crossbeam_channel::{bounded, Receiver, Sender};
use varpulis_program::evt::{self, EvtClock, EvtLine, EvtScratch};
use varpulis_program::json::JsonScratch;
use varpulis_program::{
    Chunk as Code, Event, EventDecoder, InputRef, JoinSpec, OpSpec, Program, SchemaId, SourceSpec,
    StateBound, StreamPlan, Value, ValueKey,
};
use varpulis_state::{MemoryStore, StateStore};
use varpulis_vm::memory::StreamMemory;
use varpulis_vm::{
    Compat, Engine, EngineConfig, Metrics, Output, RuntimeError, SideOutput, StateReport,
};

use crate::input::{InputFormat, Records};
use crate::job::{
    decode_evt_alone, decode_json_alone, Decoded, InputProblem, Job, JobStats, RecordFrom,
};

/// Most workers a run may ask for.
pub const MAX_WORKERS: usize = 64;

/// Input records per batch sent to the shards.
pub const BATCH: usize = 1024;

/// Batches in flight on each channel (router → shard, shard → merger).
pub(crate) const QUEUE: usize = 4;

/// The position of the outputs of the end of input (the final flush).
pub(crate) const END: u64 = u64::MAX;

/// Why a program cannot run on several workers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// What cannot be split: ``stream `Avg` `` or ``var `total` ``.
    pub what: String,
    /// Why, and what to do instead.
    pub why: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} cannot run partition-parallel: {}; run it with --workers 1",
            self.what, self.why
        )
    }
}

/// How input events are routed: for each event type (by schema id), the
/// field slot whose value picks the owning shard; `None` for types whose
/// consumers keep no per-key state (any shard may run them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardPlan {
    /// Key slot per schema.
    pub keys: Vec<Option<u16>>,
}

impl ShardPlan {
    /// The shard of `event` among `shards`, or of input position `pos` when
    /// its type has no key.
    pub fn owner(&self, event: &Event, pos: u64, shards: usize) -> usize {
        owner_of(self.key_hash(event), pos, shards)
    }

    /// The hash of `event`'s partition key (`key_hash`), `None` when its
    /// type has no key. Decoding threads compute it, so the routing thread
    /// only takes it modulo the shards ([`owner_of`]).
    pub fn key_hash(&self, event: &Event) -> Option<u64> {
        let slot = self.keys.get(event.type_id as usize).copied().flatten()?;
        // The engine's `partition_by` gives events without the field the
        // key `""`.
        let value = event
            .fields
            .get(usize::from(slot))
            .cloned()
            .flatten()
            .unwrap_or_else(|| Value::str(""));
        Some(key_hash(value))
    }
}

/// The shard of an event whose key hashes to `hash`, or of input position
/// `pos` when its type has no key.
pub fn owner_of(hash: Option<u64>, pos: u64, shards: usize) -> usize {
    let shards = shards.max(1) as u64;
    (hash.unwrap_or(pos) % shards) as usize
}

/// The hash that routes partition key `value`. Equal keys (by `ValueKey`,
/// so 1 and 1.0 too) hash alike.
fn key_hash(value: Value) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    ValueKey(value).hash(&mut h);
    h.finish()
}

/// The shard of partition key `value` among `shards`. The assignment is
/// part of a checkpoint of several workers: each worker's state holds its
/// keys, so [`routing_fingerprint`] records it beside the state.
pub fn shard_of(value: Value, shards: usize) -> usize {
    owner_of(Some(key_hash(value)), 0, shards)
}

/// The shards [`shard_of`] gives a fixed set of keys among
/// [`MAX_WORKERS`], as text: a build that routes keys differently (another
/// hash, or a toolchain whose `DefaultHasher` changed) has another
/// fingerprint, so its restore of a checkpoint of several workers can refuse
/// instead of looking each key up in the wrong worker's state.
pub fn routing_fingerprint() -> String {
    let keys = (0..12)
        .map(Value::Int)
        .chain([Value::Float(0.5), Value::Bool(true), Value::Null])
        .chain(["", "a", "sensor-1", "user@example.com"].map(Value::str));
    keys.map(|k| shard_of(k, MAX_WORKERS).to_string())
        .collect::<Vec<_>>()
        .join(".")
}

/// The key slot each input type of a join is routed by: the first equality
/// of its `.on(...)` that compares a plain field of every input. Every joined
/// pair satisfies it, so both events of a pair reach the shard of their
/// common key. Refused (with the reason) when an input is another stream,
/// no equality compares fields, or `max_events` bounds the keys of one
/// engine.
fn join_keys(stream: &StreamPlan, join: &JoinSpec) -> Result<Vec<(SchemaId, u16)>, String> {
    if stream
        .bounds
        .iter()
        .any(|b| b.op == StateBound::SOURCE && b.max_events.is_some())
    {
        return Err(
            "its `max_events:` bounds the keys of the join in one engine, and each \
                    shard would keep that many"
                .into(),
        );
    }
    let mut types = Vec::with_capacity(join.inputs.len());
    for side in &join.inputs {
        let InputRef::Event(t) = side.input else {
            return Err("it joins another stream; only event types are routed by key".into());
        };
        types.push(t);
    }
    let equalities = join.inputs.first().map_or(0, |side| side.keys.len());
    (0..equalities)
        .find_map(|i| {
            join.inputs
                .iter()
                .zip(&types)
                .map(|(side, &t)| Some((t, side.keys.get(i)?.plain_field()?)))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| {
            "no equality of its `.on(...)` compares a field of each input (as in \
             `.on(A.user == B.user)`), so the router cannot tell which events may join"
                .into()
        })
}

/// Decides how `program` is split over shards, or why it cannot be.
pub fn plan(program: &Program) -> Result<ShardPlan, Refusal> {
    if let Some(g) = program.globals.iter().find(|g| g.mutable) {
        return Err(Refusal {
            what: format!("var `{}`", g.name),
            why: "a `var` is one value shared by every partition, and each shard would \
                  keep its own copy"
                .into(),
        });
    }
    let mut keys: Vec<Option<(u16, Arc<str>)>> = vec![None; program.schemas.len()];
    for stream in &program.streams {
        let refuse = |why: String| Refusal {
            what: format!("stream `{}`", stream.name),
            why,
        };
        if let SourceSpec::Timer { .. } = &stream.source {
            return Err(refuse(
                "a `timer(...)` source ticks in every engine shard".into(),
            ));
        }
        if stream.bounds.iter().any(|b| b.max_keys.is_some()) {
            return Err(refuse(
                "`max_keys:` bounds the keys of one engine, and each shard would keep that \
                 many (`idle:` bounds keys by event time, the same in every shard)"
                    .into(),
            ));
        }
        // The key slot (on the source event's layout) the stream's state is
        // kept by, per input type.
        let mut needs: Vec<(SchemaId, u16)> = Vec::new();
        if let SourceSpec::Join(join) = &stream.source {
            needs.extend(join_keys(stream, join).map_err(refuse)?);
        }
        let source_type = match &stream.source {
            SourceSpec::Input(InputRef::Event(t)) => Some(*t),
            SourceSpec::Connector { schema, .. } => Some(*schema),
            _ => None,
        };
        let mut key: Option<u16> = None;
        let mut reshaped = false;
        for op in &stream.ops {
            match op {
                OpSpec::Filter(_)
                | OpSpec::Having(_)
                | OpSpec::Print(_)
                | OpSpec::Log(_)
                | OpSpec::Sink { .. }
                | OpSpec::OnError(_) => {}
                // `.pattern` runs inside the window before it (per key when
                // the window is); it only reshapes the event it passes on.
                OpSpec::Select(_)
                | OpSpec::Emit(_)
                | OpSpec::Process(_)
                | OpSpec::Map(_)
                | OpSpec::Pattern(_) => reshaped = true,
                // Group operators act inside one window's group, which the
                // window already keeps per key; `.collect` reshapes.
                OpSpec::Group(g) => {
                    if matches!(g, varpulis_program::GroupOp::Collect(_)) {
                        reshaped = true;
                    }
                }
                // Per event, and a score does not depend on the batch it ran
                // in; the input's slots (the key among them) stay in place.
                OpSpec::Score(_) => {}
                OpSpec::PartitionBy(chunk) => {
                    if key.is_some() || reshaped {
                        return Err(refuse(
                            "its `.partition_by` follows a reshaping operator or another \
                             `.partition_by`, so the key is not a field of the input event"
                                .into(),
                        ));
                    }
                    key = Some(chunk.plain_field().ok_or_else(|| {
                        refuse(
                            "its partition key is an expression; the router can only \
                             route by a field of the input event (`.partition_by(field)`)"
                                .into(),
                        )
                    })?);
                }
                OpSpec::Window(_) => {
                    let Some(k) = key else {
                        return Err(refuse(
                            "its window holds events of every key; add `.partition_by(field)` \
                             before it"
                                .into(),
                        ));
                    };
                    let Some(t) = source_type else {
                        return Err(refuse(
                            "it keeps per-key state but reads another stream or a merge; \
                             only streams reading an event type are routed by key"
                                .into(),
                        ));
                    };
                    needs.push((t, k));
                }
                // Without a window an aggregate sees each event alone; after
                // one it sees the window's partition.
                OpSpec::Aggregate(_) => {}
                OpSpec::Enrich(_) => {
                    return Err(refuse(
                        "`.enrich` waits for its lookups on one engine thread".into(),
                    ))
                }
                OpSpec::Distinct { .. } | OpSpec::Limit(_) => {
                    return Err(refuse(
                        "`.distinct` and `.limit` keep one state over all keys".into(),
                    ))
                }
                OpSpec::Sequence(spec) => {
                    if spec.forecast.is_some() {
                        return Err(refuse(
                            "its `.forecast` learns one model from the events of every key".into(),
                        ));
                    }
                    if spec.limits.total.is_some() {
                        return Err(refuse(
                            "`.limit_runs(total: ...)` bounds the runs of one engine".into(),
                        ));
                    }
                    let Some(parts) = &spec.partition else {
                        return Err(refuse(
                            "its sequence matches across all events; add `.partition_by(field)`"
                                .into(),
                        ));
                    };
                    let step_inputs = spec.steps.iter().map(|s| s.input);
                    let step_keys = parts.iter().map(Option::as_ref);
                    let neg = spec
                        .negations
                        .iter()
                        .map(|n| (n.input, n.partition.as_ref()));
                    for (input, chunk) in step_inputs.zip(step_keys).chain(neg) {
                        let InputRef::Event(t) = input else {
                            return Err(refuse(
                                "its sequence reads another stream; only event types are \
                                 routed by key"
                                    .into(),
                            ));
                        };
                        let Some(slot) = chunk.and_then(Code::plain_field) else {
                            return Err(refuse(
                                "its sequence has a step or negation whose partition key is \
                                 not a plain field of the event"
                                    .into(),
                            ));
                        };
                        needs.push((t, slot));
                    }
                    // Operators after the match read the match layout, not
                    // the input event's.
                    reshaped = true;
                }
            }
        }
        for (t, slot) in needs {
            let Some(entry) = keys.get_mut(t as usize) else {
                continue;
            };
            match entry {
                Some((s, other)) if *s != slot => {
                    let ty = program
                        .schemas
                        .get(t as usize)
                        .map_or("?", |s| &*s.name)
                        .to_string();
                    return Err(refuse(format!(
                        "it partitions `{ty}` by another field than stream `{other}`, so no \
                         one key routes `{ty}` events"
                    )));
                }
                Some(_) => {}
                None => *entry = Some((slot, stream.name.clone())),
            }
        }
    }
    Ok(ShardPlan {
        keys: keys.into_iter().map(|k| k.map(|(s, _)| s)).collect(),
    })
}

/// One input position as a shard sees it.
enum Item {
    /// The shard owns the event: run it (with the connector subscription it
    /// came from, in a live run).
    Own(Event, Option<u32>),
    /// Another shard runs it: only its time counts here.
    Time { ty: SchemaId, time: i64 },
}

/// Buffers handed back up the pipeline, so a steady run allocates none per
/// batch: each stage frees what an earlier stage's thread allocated, which
/// costs the allocator more than reusing it (memory freed on another thread
/// goes back through locks). Bounded: a full pool drops what it is given, an
/// empty one gives nothing and the stage allocates.
struct Spares<T>(Sender<T>, Receiver<T>);

impl<T> Spares<T> {
    fn new(cap: usize) -> Spares<T> {
        let (tx, rx) = bounded(cap);
        Spares(tx, rx)
    }

    fn give(&self, t: T) {
        let _ = self.0.try_send(t);
    }

    fn take(&self) -> Option<T> {
        self.1.try_recv().ok()
    }
}

impl<T> Clone for Spares<T> {
    fn clone(&self) -> Spares<T> {
        Spares(self.0.clone(), self.1.clone())
    }
}

/// The most bytes a text buffer handed back may hold: one that a huge line
/// or a batch of huge outputs grew is freed rather than kept for the rest
/// of the run.
const KEEP_BYTES: usize = 1 << 20;

/// The buffers the stages of a parallel run hand back ([`Spares`]).
#[derive(Clone)]
struct Pools {
    /// Read chunks' lines and line ends: decoders → reader.
    chunks: Spares<(Vec<u8>, Vec<usize>)>,
    /// Decoded chunks: router → decoders.
    decodings: Spares<Vec<Decoding>>,
    /// Shard batches: shards → router.
    items: Spares<Vec<Item>>,
    /// The emptied slots of events the engines kept nothing of, a batch at
    /// a time: shards → decoders, which decode the next events into them
    /// (`None` when the events are decoded elsewhere: a live run).
    slots: Option<Spares<Vec<Vec<Option<Value>>>>>,
    /// Shard answers: merger → shards.
    parts: Spares<FromShard>,
}

impl Pools {
    /// Pools for `workers` shards (and as many decoders); `slots`: whether
    /// the run's decoders take the events' slots back.
    fn new(workers: usize, slots: bool) -> Pools {
        let n = (QUEUE + 2) * workers.max(1);
        Pools {
            chunks: Spares::new(n),
            decodings: Spares::new(n),
            items: Spares::new(n),
            slots: slots.then(|| Spares::new(n)),
            parts: Spares::new(n),
        }
    }

    /// Hands back a chunk's buffers (a large one is dropped).
    fn give_chunk(&self, text: Vec<u8>, ends: Vec<usize>) {
        if text.capacity() <= KEEP_BYTES {
            self.chunks.give((text, ends));
        }
    }

    /// Hands back a shard's answer (one holding large texts is dropped).
    fn give_part(&self, part: FromShard) {
        if part.text.capacity() <= KEEP_BYTES {
            self.parts.give(part);
        }
    }

    /// An empty answer for a shard, reused when one came back.
    fn part(&self) -> Box<FromShard> {
        Box::new(match self.parts.take() {
            Some(mut part) => {
                part.outputs.clear();
                part.text.clear();
                part.values.clear();
                part.side.clear();
                part.errors.clear();
                part.watermark = None;
                part
            }
            None => FromShard::default(),
        })
    }

    /// An empty batch of `batch` items for a shard.
    fn batch(&self, batch: usize) -> Vec<Item> {
        match self.items.take() {
            Some(mut items) => {
                items.clear();
                items
            }
            None => Vec::with_capacity(batch),
        }
    }
}

/// A message to a shard.
enum Cmd {
    /// The next input positions, one item each.
    Batch(Vec<Item>),
    /// The sources are idle: move the watermark (one position).
    Watermark(i64),
    /// End of input: fire what is open (the final flush).
    Finish,
    /// Save the engine state (a checkpoint or a hot update).
    Save,
    /// Replace the engine state with a saved one.
    Load(Box<MemoryStore>, Compat),
    /// Counters, memory and watermark for metrics.
    Stats,
}

/// A shard's answer to one [`Cmd`].
enum Reply {
    Ran(Box<FromShard>),
    Saved(Result<Vec<u8>, String>),
    Loaded(Result<StateReport, String>),
    Stats(Box<ShardStats>),
}

/// What one shard reports for metrics.
struct ShardStats {
    metrics: Metrics,
    memory: Vec<StreamMemory>,
    watermark: Option<i64>,
}

/// What a shard produced for one batch: each output's place in the
/// canonical order with its JSON text in `text`, the outputs themselves when
/// the host keeps them, side outputs tagged with input positions (indexes
/// into the batch; [`END`] for the final flush), and its counters and
/// watermark after the batch.
#[derive(Default)]
pub(crate) struct FromShard {
    /// The outputs in the order the engine produced them.
    pub(crate) outputs: Vec<Tagged>,
    /// The JSON texts of `outputs`, one after the other.
    pub(crate) text: Vec<u8>,
    /// The outputs, in the order of `outputs`, when the [`Tagger`] keeps
    /// them; else empty (the engine reused them).
    pub(crate) values: Vec<Output>,
    pub(crate) side: Vec<(u64, SideOutput)>,
    pub(crate) errors: Vec<RuntimeError>,
    pub(crate) metrics: Metrics,
    pub(crate) watermark: Option<i64>,
}

/// One output of a [`FromShard`]: the keys of the canonical order and
/// where its JSON text is in the part's `text`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tagged {
    /// The input position that caused it ([`END`]: the final flush).
    pos: u64,
    time: i64,
    /// Its stream's declaration index (`usize::MAX`: unknown).
    stream: usize,
    start: usize,
    end: usize,
}

/// Turns what an engine produced for one input position into entries of a
/// [`FromShard`], on the engine's thread: each output is encoded to its JSON
/// text there, once, into one buffer per batch, so the merger only orders
/// and copies bytes. Unless the host keeps the values (a live run, a
/// table), the outputs go back to the engine, which reuses their field
/// lists, and nothing allocated per output crosses threads.
pub(crate) struct Tagger {
    streams: HashMap<Arc<str>, usize>,
    /// The stream of the previous output, recognised by pointer.
    last: Option<(Arc<str>, usize)>,
    values: bool,
}

impl Tagger {
    /// A tagger for `program`'s outputs; `values`: keep the outputs.
    pub(crate) fn new(program: &Program, values: bool) -> Tagger {
        Tagger {
            streams: stream_index(program),
            last: None,
            values,
        }
    }

    fn stream(&mut self, name: &Arc<str>) -> usize {
        if let Some((last, i)) = &self.last {
            if Arc::ptr_eq(last, name) {
                return *i;
            }
        }
        let i = self.streams.get(name).copied().unwrap_or(usize::MAX);
        self.last = Some((name.clone(), i));
        i
    }

    /// Moves what the engine produced for input position `pos` into `part`.
    pub(crate) fn tag(
        &mut self,
        engine: &mut Engine,
        pos: u64,
        scratch: &mut Vec<Output>,
        part: &mut FromShard,
    ) {
        for o in scratch.iter() {
            let start = part.text.len();
            crate::output::write_json(&mut part.text, o);
            let stream = self.stream(&o.stream);
            part.outputs.push(Tagged {
                pos,
                time: o.time,
                stream,
                start,
                end: part.text.len(),
            });
        }
        if self.values {
            part.values.append(scratch);
        } else {
            engine.recycle_outputs(scratch);
        }
        part.side
            .extend(engine.take_side_outputs().into_iter().map(|s| (pos, s)));
    }
}

/// Each stream's declaration index by name.
pub(crate) fn stream_index(program: &Program) -> HashMap<Arc<str>, usize> {
    program
        .streams
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), i))
        .collect()
}

/// How a parallel run went.
pub struct Outcome {
    /// Host counters (records, events, skipped, outputs, sink records).
    pub stats: JobStats,
    /// The shards' engine counters, summed.
    pub metrics: Metrics,
    /// The input problem that stopped a `--strict` run.
    pub failed: Option<InputProblem>,
}

/// Where merged outputs go.
pub trait OutputSink {
    /// Whether [`OutputSink::output`] is given each output's value besides
    /// its JSON text (a table needs them). When not, the engines reuse the
    /// outputs' memory and only their texts reach the calling thread.
    fn wants_values(&self) -> bool {
        false
    }

    /// Takes the next output in the final order: its JSON text (one object,
    /// no newline) and, when [`OutputSink::wants_values`], the output.
    fn output(&mut self, text: &[u8], value: Option<Output>) -> std::io::Result<()>;

    /// Every output of one round (a batch of input) was given.
    fn end_round(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How a parallel run is laid out.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Engine shards (1..=[`MAX_WORKERS`]).
    pub workers: usize,
    /// Input records per batch (at most 1024; 1 for interactive input, so
    /// each record's outputs appear at once).
    pub batch: usize,
    /// How events are routed ([`plan`]).
    pub plan: ShardPlan,
}

/// Runs `job`'s program over `records` on `layout.workers` engine shards. `job` keeps the sinks and receives the
/// merged side outputs. The input is read in batches of whole lines on one
/// thread, parsed and decoded on `layout.workers` threads, and put back in
/// input order by the routing thread, which stamps `.evt` events with their
/// times, applies the job state of decoding (a job of the same program
/// without sinks) and routes. Messages
/// (print/log lines, runtime errors) go to `messages`; input warnings go to
/// stderr from the routing thread.
pub fn run<R: std::io::BufRead + Send>(
    job: &mut Job,
    records: Records<R>,
    layout: &Layout,
    out: &mut dyn OutputSink,
    messages: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let workers = layout.workers.clamp(1, MAX_WORKERS);
    let program = job.program().clone();
    let mut decoder_options = job.options().clone();
    decoder_options.sinks = false;
    let config = EngineConfig {
        flush_at_end: job.options().final_flush,
        ..EngineConfig::default()
    };
    let values = out.wants_values();
    let batch = layout.batch.clamp(1, BATCH);

    // Read and loaded once; the shards share the loaded models.
    let models = crate::job::load_models(&program)?;
    let pools = Pools::new(workers, true);
    std::thread::scope(|scope| -> anyhow::Result<Outcome> {
        let mut to_shards: Vec<Sender<Cmd>> = Vec::new();
        let mut from_shards: Vec<Receiver<Reply>> = Vec::new();
        let mut shard_handles = Vec::new();
        for _ in 0..workers {
            let (tx, rx) = bounded::<Cmd>(QUEUE);
            let (otx, orx) = bounded::<Reply>(QUEUE);
            let program = program.clone();
            let models = models.clone();
            let pools = pools.clone();
            shard_handles.push(scope.spawn(move || {
                let tagger = Tagger::new(&program, values);
                let engine = Engine::with_models(program, config, &models)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                Ok::<_, anyhow::Error>(serve(engine, tagger, rx, otx, &pools))
            }));
            to_shards.push(tx);
            from_shards.push(orx);
        }
        // Reader → decoders (chunk k to decoder k mod n) → router, which
        // takes the decoded chunks back in the same turn, so in input order.
        let decoders = workers;
        let event_decoder = Arc::new(EventDecoder::new(&program));
        let mut to_decoders = Vec::with_capacity(decoders);
        let mut from_decoders = Vec::with_capacity(decoders);
        let mut reading = Vec::with_capacity(decoders + 1);
        let format = records.format();
        for _ in 0..decoders {
            let (tx, rx) = bounded::<Chunk>(QUEUE);
            let (dtx, drx) = bounded::<Vec<Decoding>>(QUEUE);
            let event_decoder = event_decoder.clone();
            let plan = layout.plan.clone();
            let pools = pools.clone();
            reading.push(
                scope.spawn(move || decode_chunks(&event_decoder, &plan, format, rx, dtx, &pools)),
            );
            to_decoders.push(tx);
            from_decoders.push(drx);
        }
        let reader_pools = pools.clone();
        reading.push(scope.spawn(move || read_chunks(records, batch, to_decoders, &reader_pools)));
        let plan = layout.plan.clone();
        let decoder_program = (*program).clone();
        let router_pools = pools.clone();
        let router = scope.spawn(move || {
            let mut decoder = Job::without_sinks(decoder_program, decoder_options)?;
            route(
                &mut decoder,
                &event_decoder,
                from_decoders,
                &plan,
                to_shards,
                batch,
                &router_pools,
            )
        });

        // Merge round by round: every shard answers every batch, in order.
        let mut parts: Vec<FromShard> = Vec::with_capacity(workers);
        let mut order = Vec::new();
        'rounds: loop {
            for rx in &from_shards {
                // A shard ended: after the final batch every shard ends.
                let Ok(Reply::Ran(part)) = rx.recv() else {
                    break 'rounds;
                };
                parts.push(*part);
            }
            deliver_round(job, &mut parts, &mut order, out, messages)?;
            for part in parts.drain(..) {
                pools.give_part(part);
            }
        }
        // A shard that stopped early (an error) ends the rounds while the
        // others may still be sending: closing the receivers lets them, and
        // then the router, stop instead of waiting on full channels.
        drop(from_shards);
        let (decoder_stats, failed) = router
            .join()
            .map_err(|_| anyhow::anyhow!("the routing thread stopped unexpectedly"))??;
        // A reading or decoding thread that stopped early ended the input
        // there for the router: the run fails rather than look complete.
        for h in reading {
            h.join()
                .map_err(|_| anyhow::anyhow!("an input reading thread stopped unexpectedly"))?;
        }
        let mut metrics = Metrics::default();
        for (i, h) in shard_handles.into_iter().enumerate() {
            let m = h
                .join()
                .map_err(|_| anyhow::anyhow!("worker {i} stopped unexpectedly"))??;
            add_metrics(&mut metrics, &m);
        }
        let mut stats = job.stats().clone();
        stats.records = decoder_stats.records;
        stats.events = decoder_stats.events;
        stats.skipped = decoder_stats.skipped;
        Ok(Outcome {
            stats,
            metrics,
            failed,
        })
    })
}

/// What a round of the shards produced, merged in the canonical order. Each
/// item carries the index of the batch event that caused it (`None`: a
/// watermark move or the final flush).
#[derive(Default)]
pub struct Merged {
    /// Visible outputs.
    pub outputs: Vec<(Option<usize>, Output)>,
    /// Print/log lines and sink records.
    pub side: Vec<(Option<usize>, SideOutput)>,
    /// Runtime errors.
    pub errors: Vec<RuntimeError>,
}

/// Engine shards on their own threads that a live run keeps for its whole
/// life ([`crate::job::Job::start_workers`]): the host hands them one batch
/// of events at a time as a round ([`Shards::run`]) and collects the
/// rounds' merged results in order ([`Shards::collect`]), in the canonical
/// order of [`run`]; checkpoints save one state per shard.
///
/// Each shard has a bounded command queue and a bounded reply queue; the
/// host keeps at most a round or two in flight and collecting a round waits
/// for every shard's answer, so the host loop (and behind it the sources'
/// bounded queue) waits for the slowest shard: back-pressure, not buffering.
pub struct Shards {
    plan: ShardPlan,
    to: Vec<Sender<Cmd>>,
    from: Vec<Receiver<Reply>>,
    handles: Vec<std::thread::JoinHandle<Metrics>>,
    /// Input positions routed so far (keyless events go round-robin by it).
    pos: u64,
    /// Rounds sent and not collected yet, oldest first.
    in_flight: usize,
    /// Counters, memory and watermark as last seen (memory from the last
    /// [`Shards::stats`] taken with nothing in flight).
    last: (Metrics, Vec<StreamMemory>, Option<i64>),
    /// Batches and answers handed back by the shards and the host.
    pools: Pools,
}

impl Shards {
    /// Starts `workers` engine shards running `program`, routed by `plan`.
    pub fn start(
        program: Arc<Program>,
        config: EngineConfig,
        models: &varpulis_vm::model::Models,
        workers: usize,
        plan: ShardPlan,
    ) -> anyhow::Result<Shards> {
        let workers = workers.clamp(1, MAX_WORKERS);
        let mut shards = Shards {
            plan,
            to: Vec::new(),
            from: Vec::new(),
            handles: Vec::new(),
            pos: 0,
            in_flight: 0,
            last: (Metrics::default(), Vec::new(), None),
            pools: Pools::new(workers, false),
        };
        for i in 0..workers {
            let (tx, rx) = bounded::<Cmd>(QUEUE);
            let (otx, orx) = bounded::<Reply>(QUEUE);
            let (ready_tx, ready) = bounded::<Result<(), String>>(1);
            let program = program.clone();
            let models = models.clone();
            let pools = shards.pools.clone();
            // An engine stays on the thread that made it.
            let handle = std::thread::Builder::new()
                .name(format!("varpulis-shard-{i}"))
                .spawn(move || {
                    // The host keeps the outputs (sinks, the live output).
                    let tagger = Tagger::new(&program, true);
                    match Engine::with_models(program, config, &models) {
                        Ok(engine) => {
                            let _ = ready_tx.send(Ok(()));
                            serve(engine, tagger, rx, otx, &pools)
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            Metrics::default()
                        }
                    }
                })
                .map_err(|e| anyhow::anyhow!("cannot start engine worker {i}: {e}"))?;
            shards.to.push(tx);
            shards.from.push(orx);
            shards.handles.push(handle);
            match ready.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => anyhow::bail!("engine worker {i}: {e}"),
                Err(_) => anyhow::bail!("engine worker {i} stopped unexpectedly"),
            }
        }
        Ok(shards)
    }

    /// The number of shards.
    pub fn workers(&self) -> usize {
        self.to.len()
    }

    /// Sends `cmd(i)` to every shard `i` without waiting: a round in flight,
    /// collected in order by [`Shards::collect`].
    fn submit(&mut self, mut cmd: impl FnMut(usize) -> Cmd) -> anyhow::Result<()> {
        for (i, tx) in self.to.iter().enumerate() {
            tx.send(cmd(i))
                .map_err(|_| anyhow::anyhow!("engine worker {i} stopped unexpectedly"))?;
        }
        self.in_flight += 1;
        Ok(())
    }

    /// Rounds sent and not collected yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Waits for the oldest round in flight and merges it (`None`: nothing
    /// in flight).
    pub fn collect(&mut self) -> anyhow::Result<Option<Merged>> {
        if self.in_flight == 0 {
            return Ok(None);
        }
        let replies = self.answers()?;
        self.in_flight -= 1;
        let mut metrics = Metrics::default();
        let mut watermark = None;
        for r in &replies {
            if let Reply::Ran(part) = r {
                add_metrics(&mut metrics, &part.metrics);
                watermark = watermark.or(part.watermark);
            }
        }
        self.last.0 = metrics;
        self.last.2 = watermark;
        Ok(Some(self.merge(replies)))
    }

    /// One answer from every shard, in shard order.
    fn answers(&mut self) -> anyhow::Result<Vec<Reply>> {
        let mut replies = Vec::with_capacity(self.from.len());
        for (i, rx) in self.from.iter().enumerate() {
            replies.push(
                rx.recv()
                    .map_err(|_| anyhow::anyhow!("engine worker {i} stopped unexpectedly"))?,
            );
        }
        Ok(replies)
    }

    /// A round that is answered at once (state, counters); nothing may be in
    /// flight, so the answers are this round's.
    fn round(&mut self, cmd: impl FnMut(usize) -> Cmd) -> anyhow::Result<Vec<Reply>> {
        if self.in_flight > 0 {
            anyhow::bail!(
                "{} rounds of the engine workers are still running (a host bug: they are \
                 collected first)",
                self.in_flight
            );
        }
        self.submit(cmd)?;
        self.in_flight -= 1;
        self.answers()
    }

    /// Sends `events` (each with the subscription it came from) as one round:
    /// each goes to the shard that owns its key, its time to the others.
    /// [`Shards::collect`] gives the outputs.
    pub fn run(&mut self, events: Vec<(Event, Option<u32>)>) -> anyhow::Result<()> {
        let n = self.workers();
        let mut batches: Vec<Vec<Item>> = (0..n).map(|_| self.pools.batch(events.len())).collect();
        for (event, origin) in events {
            let own = self.plan.owner(&event, self.pos, n);
            self.pos += 1;
            let (ty, time) = (event.type_id, event.time);
            let mut event = Some(event);
            for (i, b) in batches.iter_mut().enumerate() {
                if i == own {
                    if let Some(ev) = event.take() {
                        b.push(Item::Own(ev, origin));
                    }
                } else {
                    b.push(Item::Time { ty, time });
                }
            }
        }
        let mut batches = batches.into_iter();
        self.submit(|_| Cmd::Batch(batches.next().unwrap_or_default()))
    }

    /// Moves every shard's watermark to `ts` (idle sources), as one round.
    pub fn advance_watermark(&mut self, ts: i64) -> anyhow::Result<()> {
        self.submit(|_| Cmd::Watermark(ts))
    }

    /// End of input, as one round: every shard fires what is open.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        self.submit(|_| Cmd::Finish)
    }

    /// Each shard's engine state, as [`MemoryStore`] snapshot bytes, in
    /// shard order.
    pub fn save(&mut self) -> anyhow::Result<Vec<Vec<u8>>> {
        let replies = self.round(|_| Cmd::Save)?;
        replies
            .into_iter()
            .enumerate()
            .map(|(i, r)| match r {
                Reply::Saved(Ok(bytes)) => Ok(bytes),
                Reply::Saved(Err(e)) => Err(anyhow::anyhow!(
                    "engine worker {i} cannot save its state: {e}"
                )),
                _ => Err(anyhow::anyhow!("engine worker {i} answered out of turn")),
            })
            .collect()
    }

    /// Loads one saved state per shard (`states[i]` into shard `i`; as many
    /// as there are shards). The report is shard 0's: every shard runs the
    /// same program, so every shard's report is the same.
    pub fn load(
        &mut self,
        states: Vec<MemoryStore>,
        compat: Compat,
    ) -> anyhow::Result<StateReport> {
        if states.len() != self.workers() {
            anyhow::bail!(
                "{} saved states for {} engine workers",
                states.len(),
                self.workers()
            );
        }
        let mut states = states.into_iter();
        let replies =
            self.round(|_| Cmd::Load(Box::new(states.next().unwrap_or_default()), compat))?;
        let mut first = None;
        for (i, r) in replies.into_iter().enumerate() {
            match r {
                Reply::Loaded(Ok(report)) => {
                    first.get_or_insert(report);
                }
                Reply::Loaded(Err(e)) => anyhow::bail!("engine worker {i}: {e}"),
                _ => anyhow::bail!("engine worker {i} answered out of turn"),
            }
        }
        Ok(first.unwrap_or_default())
    }

    /// The shards' counters and memory, summed, and their watermark (the
    /// same in every shard: time is broadcast). With rounds in flight, the
    /// counters and watermark of the last round collected and the memory of
    /// the last time nothing was in flight.
    pub fn stats(&mut self) -> anyhow::Result<(Metrics, Vec<StreamMemory>, Option<i64>)> {
        if self.in_flight > 0 {
            return Ok(self.last.clone());
        }
        let replies = self.round(|_| Cmd::Stats)?;
        let mut metrics = Metrics::default();
        let mut memory: Vec<StreamMemory> = Vec::new();
        let mut watermark = None;
        for r in replies {
            let Reply::Stats(s) = r else {
                anyhow::bail!("an engine worker answered out of turn");
            };
            add_metrics(&mut metrics, &s.metrics);
            add_memory(&mut memory, s.memory);
            watermark = watermark.or(s.watermark);
        }
        self.last = (metrics, memory, watermark);
        Ok(self.last.clone())
    }

    /// Merges one round's answers in the canonical order ([`merge_round`]).
    fn merge(&self, replies: Vec<Reply>) -> Merged {
        let parts = replies
            .into_iter()
            .filter_map(|r| match r {
                Reply::Ran(part) => Some(*part),
                _ => None,
            })
            .collect();
        merge_round(parts)
    }
}

/// Merges one round's answers of several engines (shards, or the threads of
/// contexts) in the canonical order ([`canonical_order`]); their taggers
/// kept the outputs.
pub(crate) fn merge_round(mut parts: Vec<FromShard>) -> Merged {
    let mut order = Vec::new();
    canonical_order(&parts, &mut order);
    let (side, errors) = merge_side(&mut parts);
    let mut values = OutputValues::new(&mut parts);
    let outputs = order
        .iter()
        .filter_map(|&(p, i)| {
            let pos = parts.get(p)?.outputs.get(i)?.pos;
            Some((index(pos), values.take(p, i)?))
        })
        .collect();
    Merged {
        outputs,
        side,
        errors,
    }
}

/// Hands one round's answers to `job` (side outputs, runtime errors and
/// the output count; its messages go to `messages`) and their outputs to
/// `out` in the canonical order, as bytes already encoded by the engines'
/// threads. Leaves `parts` emptied of outputs, for the caller to reuse or
/// drop; `order` is reused from round to round.
pub(crate) fn deliver_round(
    job: &mut Job,
    parts: &mut [FromShard],
    order: &mut Vec<(usize, usize)>,
    out: &mut dyn OutputSink,
    messages: &mut dyn Write,
) -> anyhow::Result<()> {
    canonical_order(parts, order);
    let (side, errors) = merge_side(parts);
    let sides = side.into_iter().map(|(_, s)| s).collect();
    job.absorb(order.len(), sides, errors);
    for m in job.take_messages() {
        writeln!(messages, "{m}")?;
    }
    let mut values = OutputValues::new(parts);
    for &(p, i) in order.iter() {
        out.output(text_of(parts, p, i), values.take(p, i))?;
    }
    out.end_round()?;
    Ok(())
}

/// The batch index of input position `pos` (`None`: the end of input).
fn index(pos: u64) -> Option<usize> {
    (pos != END).then(|| usize::try_from(pos).ok()).flatten()
}

/// The canonical order of one round's outputs over its parts, as `(part,
/// index)` pairs: by input position (the end of input last), event time,
/// stream in declaration order, then JSON text. The one definition of that
/// order, so every layout writes the same bytes. The texts are compared only
/// between outputs equal on the rest; each part's outputs come in position
/// order, so the sort mostly merges runs already in order.
pub(crate) fn canonical_order(parts: &[FromShard], order: &mut Vec<(usize, usize)>) {
    order.clear();
    for (p, part) in parts.iter().enumerate() {
        order.extend((0..part.outputs.len()).map(|i| (p, i)));
    }
    let tag = |p: usize, i: usize| parts.get(p).and_then(|part| part.outputs.get(i));
    order.sort_by(|&(p, i), &(q, j)| match (tag(p, i), tag(q, j)) {
        (Some(a), Some(b)) => (a.pos, a.time, a.stream)
            .cmp(&(b.pos, b.time, b.stream))
            .then_with(|| text_of(parts, p, i).cmp(text_of(parts, q, j))),
        _ => std::cmp::Ordering::Equal,
    });
}

/// The JSON text of output `i` of part `p`.
fn text_of(parts: &[FromShard], p: usize, i: usize) -> &[u8] {
    parts
        .get(p)
        .and_then(|part| {
            let t = part.outputs.get(i)?;
            part.text.get(t.start..t.end)
        })
        .unwrap_or_default()
}

/// Takes the side outputs of one round's parts in their canonical order
/// (position, then [`side_key`]), and the runtime errors.
fn merge_side(parts: &mut [FromShard]) -> (Vec<(Option<usize>, SideOutput)>, Vec<RuntimeError>) {
    let mut side: Vec<(u64, Vec<u8>, SideOutput)> = Vec::new();
    let mut errors = Vec::new();
    for part in parts.iter_mut() {
        side.extend(part.side.drain(..).map(|(pos, s)| (pos, side_key(&s), s)));
        errors.append(&mut part.errors);
    }
    side.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let side = side
        .into_iter()
        .map(|(pos, _, s)| (index(pos), s))
        .collect();
    (side, errors)
}

/// The kept outputs of one round's parts, taken one by one in the canonical
/// order.
struct OutputValues(Vec<Vec<Option<Output>>>);

impl OutputValues {
    fn new(parts: &mut [FromShard]) -> OutputValues {
        OutputValues(
            parts
                .iter_mut()
                .map(|p| {
                    std::mem::take(&mut p.values)
                        .into_iter()
                        .map(Some)
                        .collect()
                })
                .collect(),
        )
    }

    fn take(&mut self, p: usize, i: usize) -> Option<Output> {
        self.0.get_mut(p)?.get_mut(i)?.take()
    }
}

impl Drop for Shards {
    /// Closes the queues and waits for the shard threads to end.
    fn drop(&mut self) {
        self.to.clear();
        self.from.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// Adds one shard's memory to the sum, stream by stream and operator by
/// operator (every shard runs the same plan).
pub(crate) fn add_memory(sum: &mut Vec<StreamMemory>, shard: Vec<StreamMemory>) {
    if sum.is_empty() {
        *sum = shard;
        return;
    }
    for (s, t) in sum.iter_mut().zip(shard) {
        for (o, p) in s.ops.iter_mut().zip(t.ops) {
            o.bytes += p.bytes;
            o.keys += p.keys;
            o.runs += p.runs;
            o.evictions.lru += p.evictions.lru;
            o.evictions.fifo += p.evictions.fifo;
            o.evictions.idle += p.evictions.idle;
        }
    }
}

/// The canonical order of side outputs within one input position.
pub(crate) fn side_key(s: &SideOutput) -> Vec<u8> {
    match s {
        SideOutput::Print { line, .. } | SideOutput::Log { line, .. } => line.as_bytes().to_vec(),
        SideOutput::Sink {
            connector, output, ..
        } => {
            let mut b = connector.to_be_bytes().to_vec();
            b.extend_from_slice(&output.time.to_be_bytes());
            crate::output::write_json(&mut b, output);
            b
        }
    }
}

/// Whole input lines read in one go, for one decoding thread. The reader
/// only cuts lines: parsing them is the decoding threads' work, and giving
/// `.evt` events their times (which carry from line to line) the router's.
struct Chunk {
    /// The 1-based number of the first line.
    first: usize,
    /// The lines' bytes, newlines included.
    text: Vec<u8>,
    /// Where each line ends in `text`.
    ends: Vec<usize>,
}

/// A decoded line with its line number and the hash of its event's
/// partition key ([`ShardPlan::key_hash`]), computed on the decoding thread.
type Decoding = (usize, Step, Option<u64>);

/// One line as a decoding thread hands it to the router (blank lines and
/// comments are left out).
enum Step {
    /// A record with its own time (or the previous record's), or a bad line.
    Record(Decoded),
    /// A `.evt` `BATCH` line: the clock of later untimed events, in ns.
    Batch(i64),
    /// A `.evt` event, decoded with only the time its text gives (a JSON
    /// `timestamp`): the router stamps it ([`EvtClock::stamp`]) with that,
    /// its `@` offset, the `BATCH` clock or the previous event's time.
    Evt {
        /// The `@` offset.
        at: Option<i64>,
        decoded: Decoded,
    },
}

/// The reading thread: cuts `input` into chunks of `batch` whole lines and
/// hands chunk k to decoder k mod n, so the router can take the decoded
/// chunks back in order. Stops at the end of input, at a read error other
/// than a line that is not UTF-8 (as [`Records`] does), or when the decoders
/// are gone.
fn read_chunks<R: std::io::BufRead>(
    records: Records<R>,
    batch: usize,
    decoders: Vec<Sender<Chunk>>,
    pools: &Pools,
) {
    let mut turn = decoders.iter().cycle();
    let (mut input, mut line) = records.into_lines();
    loop {
        let (mut text, mut ends) = pools
            .chunks
            .take()
            .unwrap_or_else(|| (Vec::with_capacity(128 * batch), Vec::with_capacity(batch)));
        text.clear();
        ends.clear();
        let mut end = false;
        while ends.len() < batch {
            match input.read_until(b'\n', &mut text) {
                Ok(0) => {
                    end = true;
                    break;
                }
                Ok(_) => ends.push(text.len()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    end = true;
                    break;
                }
            }
        }
        let lines = ends.len();
        if lines > 0 {
            let chunk = Chunk {
                first: line,
                text,
                ends,
            };
            if turn.next().is_some_and(|tx| tx.send(chunk).is_err()) {
                return;
            }
        }
        line += lines;
        if end {
            return;
        }
    }
}

/// A decoding thread: parses and decodes each line of each chunk it gets,
/// with its line number, until the reader or the router is gone.
fn decode_chunks(
    decoder: &EventDecoder,
    plan: &ShardPlan,
    format: InputFormat,
    chunks: Receiver<Chunk>,
    decoded: Sender<Vec<Decoding>>,
    pools: &Pools,
) {
    let mut scratch = JsonScratch::default();
    let mut evt_scratch = EvtScratch::default();
    // Slots the shards handed back, for the next events.
    let mut slots: Vec<Vec<Option<Value>>> = Vec::new();
    for Chunk { first, text, ends } in chunks {
        let mut out = match pools.decodings.take() {
            Some(mut out) => {
                out.clear();
                out
            }
            None => Vec::with_capacity(ends.len()),
        };
        let mut start = 0;
        for (line, &end) in (first..).zip(&ends) {
            let bytes = text.get(start..end).unwrap_or_default();
            start = end;
            if slots.is_empty() {
                slots = pools
                    .slots
                    .as_ref()
                    .and_then(Spares::take)
                    .unwrap_or_default();
            }
            let Ok(text) = std::str::from_utf8(bytes) else {
                // What reading the line as text says (`Records`).
                let e = std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "stream did not contain valid UTF-8",
                );
                let message = format!("cannot read line: {e}");
                out.push((line, Step::Record(Decoded::Malformed(message)), None));
                continue;
            };
            let step = match format {
                InputFormat::Jsonl => {
                    let text = text.trim();
                    if text.is_empty() {
                        continue;
                    }
                    if let Some(s) = slots.pop() {
                        scratch.give_slots(s);
                    }
                    Step::Record(decode_json_alone(decoder, text, &mut scratch))
                }
                InputFormat::Evt => {
                    match decode_evt_line(decoder, text, &mut evt_scratch, &mut slots) {
                        Some(step) => step,
                        None => continue,
                    }
                }
            };
            let hash = match &step {
                Step::Record(Decoded::Event { event, .. })
                | Step::Evt {
                    decoded: Decoded::Event { event, .. },
                    ..
                } => plan.key_hash(event),
                _ => None,
            };
            out.push((line, step, hash));
        }
        pools.give_chunk(text, ends);
        if decoded.send(out).is_err() {
            return;
        }
    }
}

/// Reads one `.evt` line on its own ([`evt::classify`]) and decodes its event
/// ([`decode_evt_alone`]); `None` for a blank line or a comment.
fn decode_evt_line(
    decoder: &EventDecoder,
    text: &str,
    scratch: &mut EvtScratch,
    slots: &mut Vec<Vec<Option<Value>>>,
) -> Option<Step> {
    let (at, text) = match evt::classify(text) {
        Ok(EvtLine::Skip) => return None,
        Ok(EvtLine::Batch(ns)) => return Some(Step::Batch(ns)),
        Ok(EvtLine::Event { at, text }) => (at, text),
        Err(e) => return Some(Step::Record(Decoded::Malformed(e.to_string()))),
    };
    if let Some(s) = slots.pop() {
        scratch.give_slots(s);
    }
    Some(match decode_evt_alone(decoder, text, scratch) {
        Decoded::Malformed(message) => Step::Record(Decoded::Malformed(message)),
        decoded => Step::Evt { at, decoded },
    })
}

/// A `.evt` event decoded on its own, with the time `clock` gives it (what
/// [`EvtReader`](varpulis_program::evt::EvtReader) gives the same line). An
/// event after one with a JSON `timestamp` takes that one, in its
/// `timestamp` field too, as decoding it with that `timestamp` would have;
/// the flag says whether that field was filled.
fn stamp_evt(
    clock: &mut EvtClock,
    events: &EventDecoder,
    at: Option<i64>,
    mut decoded: Decoded,
) -> (Decoded, bool) {
    let time = match &mut decoded {
        Decoded::Event { time, .. }
        | Decoded::UnknownType { time, .. }
        | Decoded::WrongType { time, .. } => time,
        Decoded::Malformed(_) => return (decoded, false),
    };
    let own = *time;
    let stamp = clock.stamp(at, own);
    *time = Some(stamp.timestamp.unwrap_or(stamp.offset));
    if let (None, Some(ts), Decoded::Event { event, .. }) = (own, stamp.timestamp, &mut decoded) {
        events.fill_timestamp(event, ts);
        return (decoded, true);
    }
    (decoded, false)
}

/// The routing thread: takes the decoded chunks in input order, stamps
/// `.evt` events with the `BATCH` clock and the previous event's time
/// ([`stamp_evt`]), applies the job state of decoding ([`Job::admit`]: times, counters, reports,
/// `--strict`), routes each event to its owner and its time to every other
/// shard, in batches; then tells every shard to finish. Returns the
/// decoder's counters and the problem that stopped a strict run.
fn route(
    decoder: &mut Job,
    events: &EventDecoder,
    decoded: Vec<Receiver<Vec<Decoding>>>,
    plan: &ShardPlan,
    shards: Vec<Sender<Cmd>>,
    batch: usize,
    pools: &Pools,
) -> anyhow::Result<(JobStats, Option<InputProblem>)> {
    let n = shards.len();
    let mut batches: Vec<Vec<Item>> = (0..n).map(|_| pools.batch(batch)).collect();
    let mut pos: u64 = 0;
    let mut failed = None;
    let mut stderr = std::io::stderr();
    let mut clock = EvtClock::default();
    let send_all = |batches: &mut Vec<Vec<Item>>| -> anyhow::Result<()> {
        for (tx, b) in shards.iter().zip(batches.iter_mut()) {
            tx.send(Cmd::Batch(std::mem::replace(b, pools.batch(batch))))
                .map_err(|_| anyhow::anyhow!("an engine worker stopped"))?;
        }
        Ok(())
    };
    // The decoder of the next chunk ends first when the input has.
    'chunks: for rx in decoded.iter().cycle() {
        let Ok(mut chunk) = rx.recv() else { break };
        for (line, step, mut hash) in chunk.drain(..) {
            let d = match step {
                Step::Record(d) => d,
                Step::Batch(ns) => {
                    clock.batch(ns);
                    continue;
                }
                Step::Evt { at, decoded } => {
                    let (d, filled) = stamp_evt(&mut clock, events, at, decoded);
                    if filled {
                        // The key may be the `timestamp` field just filled.
                        hash = None;
                    }
                    d
                }
            };
            let admitted = decoder.admit(d, RecordFrom::Line(line));
            // Only a record that is not admitted as an event reports
            // something (and taking the messages locks).
            if !matches!(admitted, Ok(Some(_))) {
                for m in decoder.take_messages() {
                    let _ = writeln!(stderr, "{m}");
                }
            }
            let event = match admitted {
                Ok(Some(ev)) => ev,
                Ok(None) => continue,
                Err(problem) => {
                    failed = Some(problem);
                    break 'chunks;
                }
            };
            let own = owner_of(hash.or_else(|| plan.key_hash(&event)), pos, n);
            let (ty, time) = (event.type_id, event.time);
            let mut event = Some(event);
            for (i, b) in batches.iter_mut().enumerate() {
                if i == own {
                    if let Some(ev) = event.take() {
                        b.push(Item::Own(ev, None));
                    }
                } else {
                    b.push(Item::Time { ty, time });
                }
            }
            pos += 1;
            if batches.first().is_some_and(|b| b.len() >= batch) {
                send_all(&mut batches)?;
            }
        }
        pools.decodings.give(chunk);
    }
    // Closing the decoders' queues stops them (and then the reader) when a
    // strict run stopped early.
    drop(decoded);
    if batches.first().is_some_and(|b| !b.is_empty()) {
        send_all(&mut batches)?;
    }
    for tx in &shards {
        tx.send(Cmd::Finish)
            .map_err(|_| anyhow::anyhow!("an engine worker stopped"))?;
    }
    Ok((decoder.stats().clone(), failed))
}

/// One engine shard: answers each command in order until its channel
/// closes; returns its counters. Positions are indexes into each batch, so
/// the merger orders one round at a time.
fn serve(
    mut engine: Engine,
    mut tagger: Tagger,
    rx: Receiver<Cmd>,
    tx: Sender<Reply>,
    pools: &Pools,
) -> Metrics {
    let mut scratch = Vec::new();
    let mut spare_slots = Vec::new();
    while let Ok(cmd) = rx.recv() {
        let reply = match cmd {
            Cmd::Batch(mut items) => {
                let mut part = pools.part();
                for (pos, item) in (0u64..).zip(items.drain(..)) {
                    match item {
                        Item::Own(ev, origin) => {
                            engine.push_from(ev, origin, &mut scratch);
                            if pools.slots.is_some() {
                                spare_slots.extend(engine.take_spare_slots());
                            }
                        }
                        Item::Time { ty, time } => engine.observe_time(ty, time, &mut scratch),
                    }
                    tagger.tag(&mut engine, pos, &mut scratch, &mut part);
                }
                pools.items.give(items);
                if let (Some(pool), false) = (&pools.slots, spare_slots.is_empty()) {
                    let room = spare_slots.len();
                    pool.give(std::mem::replace(
                        &mut spare_slots,
                        Vec::with_capacity(room),
                    ));
                }
                part.errors = engine.take_errors();
                Reply::Ran(part)
            }
            Cmd::Watermark(ts) => {
                let mut part = pools.part();
                scratch.extend(engine.advance_watermark(ts));
                tagger.tag(&mut engine, 0, &mut scratch, &mut part);
                part.errors = engine.take_errors();
                Reply::Ran(part)
            }
            Cmd::Finish => {
                let mut part = pools.part();
                scratch.extend(engine.finish());
                tagger.tag(&mut engine, END, &mut scratch, &mut part);
                part.errors = engine.take_errors();
                Reply::Ran(part)
            }
            Cmd::Save => {
                let mut store = MemoryStore::new();
                Reply::Saved(
                    engine
                        .save_state(&mut store)
                        .map_err(|e| e.to_string())
                        .and_then(|()| store.snapshot().map_err(|e| e.to_string())),
                )
            }
            Cmd::Load(store, compat) => Reply::Loaded(
                engine
                    .load_state_with(store.as_ref(), compat)
                    .map_err(|e| e.to_string()),
            ),
            Cmd::Stats => Reply::Stats(Box::new(ShardStats {
                metrics: engine.metrics(),
                memory: engine.memory(),
                watermark: engine.watermark(),
            })),
        };
        let reply = match reply {
            Reply::Ran(mut part) => {
                part.metrics = engine.metrics();
                part.watermark = engine.watermark();
                Reply::Ran(part)
            }
            other => other,
        };
        if tx.send(reply).is_err() {
            break;
        }
    }
    engine.metrics()
}

/// Adds the counters a summary reports.
pub(crate) fn add_metrics(sum: &mut Metrics, m: &Metrics) {
    sum.events_in += m.events_in;
    sum.late += m.late;
    sum.dropped += m.dropped;
    sum.runtime_errors += m.runtime_errors;
    sum.window_patterns.tested += m.window_patterns.tested;
    sum.window_patterns.matched += m.window_patterns.matched;
    for (a, b) in [
        (&mut sum.out_per_stream, &m.out_per_stream),
        (&mut sum.late_per_stream, &m.late_per_stream),
        (&mut sum.errors_per_stream, &m.errors_per_stream),
    ] {
        if a.len() < b.len() {
            a.resize(b.len(), 0);
        }
        for (x, y) in a.iter_mut().zip(b) {
            *x += y;
        }
    }
    let (p, q) = (&mut sum.patterns, &m.patterns);
    p.active_runs += q.active_runs;
    p.partitions += q.partitions;
    p.matches += q.matches;
    p.absences += q.absences;
    p.expired += q.expired;
    p.killed += q.killed;
    p.evicted += q.evicted;
    p.rejected += q.rejected;
    p.capped += q.capped;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_go_to_the_workers_they_went_to_in_earlier_builds() {
        // Checkpoints of several workers hold each worker's keys. If this
        // fails, keys now go to other workers (a new hash, or a toolchain
        // whose `DefaultHasher` changed): restores of earlier checkpoints
        // are refused by their routing record; say so in the release notes
        // and update the expected value.
        assert_eq!(
            routing_fingerprint(),
            "27.8.10.18.16.13.9.33.25.60.21.21.56.0.51.0.59.54.26"
        );
        assert_eq!(shard_of(Value::Int(3), 64), shard_of(Value::Float(3.0), 64));
    }

    /// Per key, a count window of 3 with the sum of `v`.
    const COUNTS: &str = "event A:\n    key: str\n    v: int\n\nstream W = A\n    .partition_by(key)\n    .window(3)\n    .aggregate(n: count(), total: sum(v))\n    .emit(key: key, total: total)\n";

    fn program() -> Arc<Program> {
        Arc::new(crate::test_program(COUNTS))
    }

    fn event(key: &str, v: i64, t: i64) -> (Event, Option<u32>) {
        (
            Event::new(0, t, vec![Some(Value::str(key)), Some(Value::Int(v))]),
            None,
        )
    }

    fn start(program: &Arc<Program>) -> Shards {
        let plan = plan(program).expect("the program can be split");
        Shards::start(
            program.clone(),
            EngineConfig::default(),
            &Default::default(),
            2,
            plan,
        )
        .expect("shards start")
    }

    fn lines(m: &Merged) -> Vec<String> {
        m.outputs
            .iter()
            .map(|(_, o)| {
                let mut b = Vec::new();
                crate::output::write_json(&mut b, o);
                String::from_utf8_lossy(&b).into_owned()
            })
            .collect()
    }

    #[test]
    fn rounds_are_collected_in_order_with_the_events_that_caused_them() {
        let program = program();
        let mut shards = start(&program);
        let first: Vec<_> = ["a", "b", "a", "b", "a"]
            .iter()
            .zip(0..)
            .map(|(k, i)| event(k, i, i))
            .collect();
        shards.run(first).expect("round 1");
        shards.run(vec![event("b", 10, 5)]).expect("round 2");
        assert_eq!(shards.in_flight(), 2);
        let one = shards.collect().expect("collect").expect("round 1");
        // Key a's window closes at its third event, the fifth of the batch.
        assert_eq!(one.outputs.len(), 1);
        assert_eq!(one.outputs[0].0, Some(4));
        assert!(lines(&one)[0].contains("\"total\":6"), "{:?}", lines(&one));
        let two = shards.collect().expect("collect").expect("round 2");
        assert_eq!(two.outputs[0].0, Some(0));
        assert!(lines(&two)[0].contains("\"total\":14"), "{:?}", lines(&two));
        assert!(shards.collect().expect("collect").is_none());
        let (metrics, _, _) = shards.stats().expect("stats");
        assert_eq!(
            metrics.events_in, 6,
            "each event counted once, by its owner"
        );
    }

    #[test]
    fn saved_shard_states_load_into_new_shards_and_go_on() {
        let program = program();
        let mut before = start(&program);
        before
            .run(vec![event("a", 1, 0), event("b", 2, 1), event("a", 3, 2)])
            .expect("run");
        before.collect().expect("collect");
        let states = before.save().expect("save");
        assert_eq!(states.len(), 2);
        let mut after = start(&program);
        let stores = states
            .iter()
            .map(|b| MemoryStore::from_snapshot(b).expect("snapshot"))
            .collect();
        let report = after.load(stores, Compat::Strict).expect("load");
        assert!(report.is_complete());
        let rest = vec![event("a", 5, 3), event("b", 7, 4), event("b", 9, 5)];
        before.run(rest.clone()).expect("run");
        after.run(rest).expect("run");
        let expected = before.collect().expect("collect").expect("round");
        let got = after.collect().expect("collect").expect("round");
        assert_eq!(lines(&got), lines(&expected));
        assert_eq!(lines(&got).len(), 2, "both keys' windows close");
        // A state for another number of shards is refused.
        let one = vec![MemoryStore::new()];
        assert!(after.load(one, Compat::Strict).is_err());
    }

    #[test]
    fn a_state_round_refuses_to_run_behind_rounds_in_flight() {
        let program = program();
        let mut shards = start(&program);
        shards.run(vec![event("a", 1, 0)]).expect("run");
        let e = shards.save().expect_err("a round is in flight");
        assert!(e.to_string().contains("still running"), "{e}");
        shards.collect().expect("collect");
        assert!(shards.save().is_ok());
    }
}

//! Partition-parallel runs (`varpulis run --workers N`, `.concurrent(workers: N)`).
//!
//! One decoding thread reads and decodes the input and routes each event to
//! the engine shard that owns its partition key; N shard threads each run
//! their own deterministic [`Engine`]; the calling thread merges their
//! outputs in a canonical order, encodes them and handles sinks and
//! messages. Stages talk over bounded channels carrying batches, so a slow
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
use varpulis_program::{
    Chunk, Event, InputRef, Instr, OpSpec, Program, SchemaId, SourceSpec, Value, ValueKey,
};
use varpulis_vm::{Engine, EngineConfig, Metrics, Output, RuntimeError, SideOutput};

use crate::input::Records;
use crate::job::{InputProblem, Job, JobStats};

/// Most workers a run may ask for.
pub const MAX_WORKERS: usize = 64;

/// Input records per batch sent to the shards.
const BATCH: usize = 1024;

/// Batches in flight on each channel (router → shard, shard → merger).
const QUEUE: usize = 4;

/// The position of the outputs of the end of input (the final flush).
const END: u64 = u64::MAX;

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
        let shards = shards.max(1);
        let slot = self.keys.get(event.type_id as usize).copied().flatten();
        match slot {
            Some(slot) => {
                // The engine's `partition_by` gives events without the field
                // the key `""`; equal keys (by `ValueKey`, so 1 and 1.0 too)
                // hash alike.
                let value = event
                    .fields
                    .get(usize::from(slot))
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| Value::str(""));
                let mut h = std::hash::DefaultHasher::new();
                ValueKey(value).hash(&mut h);
                (h.finish() % shards as u64) as usize
            }
            None => (pos % shards as u64) as usize,
        }
    }
}

/// The slot of a key expression that is a plain field of its input.
fn plain_field(chunk: &Chunk) -> Option<u16> {
    match chunk.code.as_slice() {
        [Instr::LoadField(s)] | [Instr::LoadField(s), Instr::Return] => Some(*s),
        _ => None,
    }
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
        match &stream.source {
            SourceSpec::Timer { .. } => {
                return Err(refuse(
                    "a `timer(...)` source ticks in every engine shard".into(),
                ))
            }
            SourceSpec::Join(_) => {
                return Err(refuse(
                    "a join keeps the latest event of every input and key in one engine".into(),
                ))
            }
            _ => {}
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
                    key = Some(plain_field(chunk).ok_or_else(|| {
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
                        let Some(slot) = chunk.and_then(plain_field) else {
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
    /// The shard owns the event: run it.
    Own(Event),
    /// Another shard runs it: only its time counts here.
    Time { ty: SchemaId, time: i64 },
}

/// A message to a shard.
enum ToShard {
    /// The next input positions, one item each.
    Batch(Vec<Item>),
    /// End of input: fire what is open (with a final flush) and stop.
    Finish,
}

/// What a shard produced for one batch, tagged with input positions.
#[derive(Default)]
struct FromShard {
    outputs: Vec<(u64, Output)>,
    side: Vec<(u64, SideOutput)>,
    errors: Vec<RuntimeError>,
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
    /// Takes outputs in their final order, each with its JSON text.
    fn outputs(&mut self, merged: Vec<(Output, Vec<u8>)>) -> std::io::Result<()>;
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

/// Runs `job`'s program over `records` on `layout.workers` engine shards.
/// `job` keeps the sinks and receives the merged side outputs; the input is
/// decoded on its own thread by a job of the same program without sinks.
/// Messages (print/log lines, runtime errors) go to `messages`; input
/// warnings go to stderr from the decoding thread.
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
    let stream_index: HashMap<Arc<str>, usize> = program
        .streams
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), i))
        .collect();
    let batch = layout.batch.clamp(1, BATCH);

    // Read and loaded once; the shards share the loaded models.
    let models = crate::job::load_models(&program)?;
    std::thread::scope(|scope| -> anyhow::Result<Outcome> {
        let mut to_shards: Vec<Sender<ToShard>> = Vec::new();
        let mut from_shards: Vec<Receiver<FromShard>> = Vec::new();
        let mut shard_handles = Vec::new();
        for _ in 0..workers {
            let (tx, rx) = bounded::<ToShard>(QUEUE);
            let (otx, orx) = bounded::<FromShard>(QUEUE);
            let program = program.clone();
            let models = models.clone();
            shard_handles.push(scope.spawn(move || shard(program, config, &models, rx, otx)));
            to_shards.push(tx);
            from_shards.push(orx);
        }
        let plan = layout.plan.clone();
        let decoder_program = (*program).clone();
        let router = scope.spawn(move || {
            let mut decoder = Job::without_sinks(decoder_program, decoder_options)?;
            route(&mut decoder, records, &plan, to_shards, batch)
        });

        // Merge round by round: every shard answers every batch, in order.
        let mut merged: Vec<(u64, i64, usize, Vec<u8>, Output)> = Vec::new();
        let mut side: Vec<(u64, Vec<u8>, SideOutput)> = Vec::new();
        let mut errors: Vec<RuntimeError> = Vec::new();
        'rounds: loop {
            for rx in &from_shards {
                let Ok(part) = rx.recv() else {
                    // A shard ended: after the final batch every shard ends.
                    break 'rounds;
                };
                for (pos, o) in part.outputs {
                    let mut bytes = Vec::with_capacity(128);
                    crate::output::write_json(&mut bytes, &o);
                    let si = stream_index.get(&o.stream).copied().unwrap_or(usize::MAX);
                    merged.push((pos, o.time, si, bytes, o));
                }
                for (pos, s) in part.side {
                    side.push((pos, side_key(&s), s));
                }
                errors.extend(part.errors);
            }
            merged.sort_by(|a, b| (a.0, a.1, a.2, &a.3).cmp(&(b.0, b.1, b.2, &b.3)));
            side.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
            let n = merged.len();
            let sides = side.drain(..).map(|(_, _, s)| s).collect();
            job.absorb(n, sides, std::mem::take(&mut errors));
            for m in job.take_messages() {
                writeln!(messages, "{m}")?;
            }
            out.outputs(merged.drain(..).map(|(_, _, _, b, o)| (o, b)).collect())?;
        }
        // A shard that stopped early (an error) ends the rounds while the
        // others may still be sending: closing the receivers lets them, and
        // then the router, stop instead of waiting on full channels.
        drop(from_shards);
        let (decoder_stats, failed) = router
            .join()
            .map_err(|_| anyhow::anyhow!("the decoding thread stopped unexpectedly"))??;
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

/// The canonical order of side outputs within one input position.
fn side_key(s: &SideOutput) -> Vec<u8> {
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

/// The decoding thread: decodes records, routes each to its owner and its
/// time to every other shard, in batches; then tells every shard to finish.
/// Returns the decoder's counters and the problem that stopped a strict run.
fn route<R: std::io::BufRead>(
    decoder: &mut Job,
    records: Records<R>,
    plan: &ShardPlan,
    shards: Vec<Sender<ToShard>>,
    batch: usize,
) -> anyhow::Result<(JobStats, Option<InputProblem>)> {
    let n = shards.len();
    let mut batches: Vec<Vec<Item>> = (0..n).map(|_| Vec::with_capacity(batch)).collect();
    let mut pos: u64 = 0;
    let mut failed = None;
    let mut stderr = std::io::stderr();
    let send_all = |batches: &mut Vec<Vec<Item>>| -> anyhow::Result<()> {
        for (tx, b) in shards.iter().zip(batches.iter_mut()) {
            tx.send(ToShard::Batch(std::mem::replace(
                b,
                Vec::with_capacity(batch),
            )))
            .map_err(|_| anyhow::anyhow!("an engine worker stopped"))?;
        }
        Ok(())
    };
    for rec in records {
        let decoded = decoder.decode_record(&rec);
        for m in decoder.take_messages() {
            let _ = writeln!(stderr, "{m}");
        }
        let event = match decoded {
            Ok(Some(ev)) => ev,
            Ok(None) => continue,
            Err(problem) => {
                failed = Some(problem);
                break;
            }
        };
        let own = plan.owner(&event, pos, n);
        let (ty, time) = (event.type_id, event.time);
        let mut event = Some(event);
        for (i, b) in batches.iter_mut().enumerate() {
            if i == own {
                if let Some(ev) = event.take() {
                    b.push(Item::Own(ev));
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
    if batches.first().is_some_and(|b| !b.is_empty()) {
        send_all(&mut batches)?;
    }
    for tx in &shards {
        tx.send(ToShard::Finish)
            .map_err(|_| anyhow::anyhow!("an engine worker stopped"))?;
    }
    Ok((decoder.stats().clone(), failed))
}

/// One engine shard: runs its batches and answers each with its tagged
/// results; returns its counters.
fn shard(
    program: Arc<Program>,
    config: EngineConfig,
    models: &varpulis_vm::model::Models,
    rx: Receiver<ToShard>,
    tx: Sender<FromShard>,
) -> anyhow::Result<Metrics> {
    let mut engine =
        Engine::with_models(program, config, models).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut pos: u64 = 0;
    let mut scratch = Vec::new();
    while let Ok(msg) = rx.recv() {
        let mut part = FromShard::default();
        let finish = match msg {
            ToShard::Batch(items) => {
                for item in items {
                    match item {
                        Item::Own(ev) => engine.push_from(ev, None, &mut scratch),
                        Item::Time { ty, time } => engine.observe_time(ty, time, &mut scratch),
                    }
                    tag(&mut engine, pos, &mut scratch, &mut part);
                    pos += 1;
                }
                false
            }
            ToShard::Finish => {
                scratch.extend(engine.finish());
                tag(&mut engine, END, &mut scratch, &mut part);
                true
            }
        };
        part.errors = engine.take_errors();
        if tx.send(part).is_err() || finish {
            break;
        }
    }
    Ok(engine.metrics())
}

/// Moves what the engine produced for input position `pos` into `part`.
fn tag(engine: &mut Engine, pos: u64, scratch: &mut Vec<Output>, part: &mut FromShard) {
    part.outputs.extend(scratch.drain(..).map(|o| (pos, o)));
    part.side
        .extend(engine.take_side_outputs().into_iter().map(|s| (pos, s)));
}

/// Adds the counters a summary reports.
fn add_metrics(sum: &mut Metrics, m: &Metrics) {
    sum.events_in += m.events_in;
    sum.late += m.late;
    sum.dropped += m.dropped;
    sum.runtime_errors += m.runtime_errors;
    sum.window_patterns.tested += m.window_patterns.tested;
    sum.window_patterns.matched += m.window_patterns.matched;
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

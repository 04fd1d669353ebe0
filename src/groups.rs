//! `varpulis run` (and a `varpulis server` pipeline, through [`run_observed`]) over a kafka
//! source with `state_per_partition: true`: one engine per assigned Kafka partition, so
//! several processes of one consumer group share a topic and each partition's state moves
//! with it (docs/OPERATIONS.md, "Scaling out"; the decisions are in docs/DESIGN.md,
//! "Scaling out over Kafka consumer groups"). Dead letters and traces work as in the live
//! loop (`live::DeadLetters`, `live::RunTrace`).
//!
//! Each owned partition has its own [`Job`] (engine and sinks), its own [`Checkpointer`] in
//! `<state-dir>/<topic>-<partition>/state` and its own [`PartitionLease`] on
//! `<state-dir>/<topic>-<partition>`. Payloads go to the job of their partition, so event
//! time, windows and patterns are per partition. The source asks this run before it takes
//! or gives up partitions ([`Rebalance`]): on an assignment the run claims each partition's
//! lease, restores its checkpoint and answers the offset to read next; on a revocation it
//! runs what the source delivered, checkpoints the revoked partitions and drops their jobs.
//! At each checkpoint every partition checks its lease first: a partition another member
//! claimed since is dropped with a warning and counted, never written.
//!
//! What is refused (each with its reason, before anything starts): other sources in the
//! same run, `--workers` above 1, no `--state-dir`, sinks that rewind on a
//! restore (`file`) or stage records for a checkpoint (transactional `kafka`): several
//! partitions' jobs, and several processes, share them.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::{Receiver, Select};
use varpulis_connectors::{
    open_source, ConfigValue, PartitionHost, PartitionId, Rebalance, Source, SourceConfig,
    SourceContext, SourceEvent, SourceMessage, SourceSender,
};
use varpulis_program::{OpSpec, Program, Subscription};
use varpulis_state::partition::{partition_dir, read_owner, PartitionLease};
use varpulis_state::StateError;
use varpulis_vm::Output;

use crate::checkpoint::{Checkpointer, Positions};
use crate::job::{connector_config, InputProblem, Job, JobOptions, RecordFrom};
use crate::live::{
    default_type, fed_streams, max_out_of_order, payload_events, subscription_key, DeadLetters,
    Host, IdleClock, LiveOptions, Redacting, RunTrace,
};
use crate::metrics::MetricsServer;
use crate::output::write_json;
use crate::trace::Status;

/// How long the source waits for this run to restore or checkpoint partitions in a
/// rebalance, beyond the checkpoint timeout.
const REBALANCE_SLACK: Duration = Duration::from_secs(30);

/// How often the loop wakes without payloads (idle watermark, Ctrl-C, metrics).
const TICK: Duration = Duration::from_millis(100);

/// Payloads taken from the source in one turn of the loop.
const DRAIN_BATCH: usize = 1024;

/// How often the metrics endpoint's text is refreshed.
const PUBLISH: Duration = Duration::from_secs(1);

/// Whether one of `program`'s subscriptions is a kafka source with `state_per_partition:
/// true` (the run is then a [`run`] of per-partition engines).
pub fn is_partitioned(program: &Program) -> bool {
    program
        .subscriptions()
        .iter()
        .any(|sub| partitioned(program, sub))
}

fn partitioned(program: &Program, sub: &Subscription) -> bool {
    program
        .connectors
        .get(sub.connector as usize)
        .is_some_and(|def| {
            let config = connector_config(def, &sub.params);
            config.kind == "kafka"
                && matches!(
                    config.params.get("state_per_partition"),
                    Some(ConfigValue::Bool(true))
                )
        })
}

/// Why `job` cannot run with per-partition state under `options`, if it cannot.
pub fn refusal(job: &Job, options: &LiveOptions) -> Option<String> {
    let program = job.program();
    let subs = program.subscriptions();
    if subs.len() != 1 {
        return Some(format!(
            "the program reads {} connector subscriptions; a run with per-partition state \
             reads exactly one (its kafka source): other sources have no Kafka partition to \
             keep their events' state with",
            subs.len()
        ));
    }
    if options.state_dir.is_none() {
        return Some(
            "it needs --state-dir, on storage every member of the group mounts: a partition's \
             state moves to its next owner through it"
                .into(),
        );
    }
    if job.workers().is_some_and(|n| n > 1) {
        return Some(
            "--workers (or `.concurrent(workers: N)`) above 1 is not supported with it: the \
             partitions already split the \
             work; run more processes of the group instead"
                .into(),
        );
    }
    for stream in &program.streams {
        for op in &stream.ops {
            let (id, params) = match op {
                OpSpec::Sink { connector, params } => (*connector, params.as_slice()),
                OpSpec::OnError(r) => (r.connector, r.params.as_slice()),
                _ => continue,
            };
            let Some(def) = program.connectors.get(id as usize) else {
                continue;
            };
            let config = connector_config(def, params);
            if config.kind == "file" {
                return Some(format!(
                    "stream `{}` writes to file connector `{}`: a file sink takes its file back \
                     to the checkpoint on a restore, which would erase what the other \
                     partitions wrote; use --output or a network sink",
                    stream.name, def.name
                ));
            }
            if config.kind == "kafka"
                && matches!(
                    config.params.get("transactional"),
                    Some(ConfigValue::Bool(true))
                )
            {
                return Some(format!(
                    "stream `{}` writes to kafka connector `{}` with `transactional: true`: \
                     exactly-once output is not kept across partition moves; remove it (the \
                     records carry ids for deduplication)",
                    stream.name, def.name
                ));
            }
        }
    }
    None
}

/// Whether opening a store failed because another process holds it open (RocksDB's lock):
/// worth trying again once that process lets go.
fn is_locked(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<StateError>(),
            Some(StateError::Backend { message, retryable: true }) if message.contains("in use")
        )
    })
}

/// One owned partition.
struct Owned {
    job: Job,
    checkpoints: Checkpointer,
    lease: PartitionLease,
    /// The offset to read next: what the job has seen (`None`: nothing yet, and no
    /// checkpoint said).
    next: Option<u64>,
    /// Event time follows the wall clock when this partition is quiet (`--idle-timeout`).
    idle: IdleClock,
    /// The engine's outputs per stream when this process took the partition (a restored
    /// state carries the counts of earlier owners; this process reports only its own).
    base_out: Vec<u64>,
}

/// Counters of the partitions, for the summary and `/metrics`.
#[derive(Default)]
struct Counters {
    rebalances: u64,
    restores: u64,
    fenced: u64,
    checkpoints: u64,
    checkpoint_failures: u64,
    /// Checkpoint rounds in a row with a failed partition checkpoint.
    consecutive_failures: u64,
    /// Partition stores found locked by another process on assignment (waited for).
    lock_waits: u64,
    /// Payloads of a partition this run no longer owns (dropped: its owner reads them).
    unowned: u64,
    /// Records, events and outputs of jobs already dropped.
    records: u64,
    events: u64,
    outputs: u64,
    /// Per stream, of jobs already dropped: outputs, late events not processed, runtime
    /// errors.
    streams: StreamCounts,
}

/// Per-stream counters (indexed like the program's streams), summed over partitions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamCounts {
    pub outputs: Vec<u64>,
    pub late: Vec<u64>,
    pub errors: Vec<u64>,
}

impl StreamCounts {
    /// Adds one partition engine's counters, its outputs counted from `base_out`.
    fn add(&mut self, m: &varpulis_vm::Metrics, base_out: &[u64]) {
        let out: Vec<u64> = m
            .out_per_stream
            .iter()
            .enumerate()
            .map(|(i, n)| n.saturating_sub(base_out.get(i).copied().unwrap_or(0)))
            .collect();
        for (sum, add) in [
            (&mut self.outputs, &out),
            (&mut self.late, &m.late_per_stream),
            (&mut self.errors, &m.errors_per_stream),
        ] {
            if sum.len() < add.len() {
                sum.resize(add.len(), 0);
            }
            for (x, y) in sum.iter_mut().zip(add) {
                *x += y;
            }
        }
    }
}

/// Where outputs go.
enum Out {
    Stdout(BufWriter<io::Stdout>),
    /// `--output FILE`, appended to: several processes and restarts each add their outputs.
    File(BufWriter<File>),
    Host(Box<dyn Write + Send>),
}

impl Out {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Out::Stdout(w) => w,
            Out::File(w) => w,
            Out::Host(w) => w,
        }
    }

    /// Everything written so far is on disk (before a checkpoint covers it).
    fn sync(&mut self) -> io::Result<()> {
        match self {
            Out::File(w) => {
                w.flush()?;
                w.get_ref().sync_data()
            }
            other => other.writer().flush(),
        }
    }
}

struct GroupRun {
    program: Arc<Program>,
    job_options: JobOptions,
    options: LiveOptions,
    state_dir: PathBuf,
    /// This process in partition leases.
    member: String,
    sub_key: String,
    connector: String,
    default_type: Option<String>,
    out_of_order: i64,
    owned: BTreeMap<PartitionId, Owned>,
    source: Box<dyn Source>,
    rx: Receiver<SourceEvent>,
    requests: Receiver<Rebalance>,
    stop: Arc<AtomicBool>,
    stopping: Arc<AtomicBool>,
    log: Box<dyn Write + Send>,
    out: Out,
    outputs: Vec<Output>,
    last_checkpoint: Instant,
    metrics: Option<MetricsServer>,
    last_publish: Instant,
    counters: Counters,
    failure: Option<String>,
    bad_input: Option<InputProblem>,
    stop_reason: &'static str,
    observer: Option<GroupObserver>,
    /// `--dead-letter`: payloads the jobs skipped, with their partition and offset.
    dead_letter: Option<DeadLetters>,
    /// `--otlp-endpoint`: the run's spans (src/trace.rs), as in the live loop.
    trace: RunTrace,
}

/// What a per-partition run tells its host (a server pipeline) once its source is up, about
/// every second after that, and once when it stops.
#[derive(Debug, Clone)]
pub struct GroupReport {
    /// This process in the partition leases (`<pid>-<id>`).
    pub member: String,
    /// The partitions it owns now (`topic/partition`), in order.
    pub owned: Vec<String>,
    /// Assignments and revocations handled.
    pub rebalances: u64,
    /// Partitions restored from a checkpoint.
    pub restores: u64,
    /// Partitions dropped because another member claimed them.
    pub fenced: u64,
    /// Payloads of partitions no longer owned, left to their owner.
    pub unowned: u64,
    /// Records read, events run and visible outputs (every partition's job, dropped ones
    /// included).
    pub records: u64,
    pub events: u64,
    pub outputs: u64,
    /// Partition checkpoints written and failed.
    pub checkpoints: u64,
    pub checkpoint_failures: u64,
    /// Checkpoint rounds in a row in which a partition's checkpoint failed (0: the last one
    /// went through).
    pub consecutive_failures: u64,
    /// The kafka source: its connector, what it reads, its counters.
    pub connector: String,
    pub description: String,
    pub source: varpulis_connectors::SourceMetrics,
    /// The Prometheus text of the run (the metrics of `--metrics`).
    pub metrics: String,
    /// Each stream's name and the outputs it gave in this process (every partition).
    pub streams: Vec<(String, u64)>,
}

/// Told a [`GroupReport`] as the run goes.
pub type GroupObserver = Box<dyn FnMut(&GroupReport) + Send>;

/// Runs `job`'s program with one engine per assigned partition of its kafka source, until
/// interrupted or the source fails.
pub fn run(job: Job, options: &LiveOptions, host: Host) -> anyhow::Result<ExitCode> {
    run_observed(job, options, host, None)
}

/// [`run`], telling `observer` how the run is doing (a server pipeline's status).
pub fn run_observed(
    job: Job,
    options: &LiveOptions,
    host: Host,
    observer: Option<GroupObserver>,
) -> anyhow::Result<ExitCode> {
    let mut log: Box<dyn Write + Send> = Box::new(Redacting::new(host.log));
    if let Some(why) = refusal(&job, options) {
        writeln!(
            log,
            "error: per-partition state (`state_per_partition: true`): {why} \
             (docs/OPERATIONS.md, \"Scaling out\")"
        )?;
        return Ok(ExitCode::from(2));
    }
    let mut run = match GroupRun::start(job, options, host.stop, host.outputs, log)? {
        Ok(run) => run,
        Err(code) => return Ok(code),
    };
    run.observer = observer;
    run.publish();
    while run.step()? {}
    run.finish()
}

impl GroupRun {
    fn start(
        mut job: Job,
        options: &LiveOptions,
        stop: Arc<AtomicBool>,
        outputs: Option<Box<dyn Write + Send>>,
        mut log: Box<dyn Write + Send>,
    ) -> anyhow::Result<Result<GroupRun, ExitCode>> {
        let program = job.program().clone();
        let job_options = job.options().clone();
        // The template job only carried the program: each partition opens its own.
        job.stop()?;
        drop(job);
        let subs = program.subscriptions();
        let Some(sub) = subs.first() else {
            anyhow::bail!("the program reads no connector");
        };
        let Some(def) = program.connectors.get(sub.connector as usize) else {
            anyhow::bail!("the subscription names a connector the program does not have");
        };
        let state_dir = options
            .state_dir
            .clone()
            .ok_or_else(|| anyhow::anyhow!("per-partition state needs --state-dir"))?;
        std::fs::create_dir_all(&state_dir).with_context(|| {
            format!(
                "cannot create the state directory `{}`",
                state_dir.display()
            )
        })?;
        let mut trace = RunTrace::start(options, 1)?;
        if let Some(url) = trace.tracer.url() {
            writeln!(
                log,
                "traces: OTLP to {url} (run trace {})",
                trace.run_trace_id()
            )?;
        }
        let member = format!("{}-{}", std::process::id(), crate::job::new_pipeline_id());
        let stopping = Arc::new(AtomicBool::new(false));
        let (tx, rx) = crossbeam_channel::bounded(options.queue_capacity.max(1));
        let sender = SourceSender::new(tx, stopping.clone());
        let (requests_tx, requests) = crossbeam_channel::unbounded();
        let mut config = SourceConfig::new(connector_config(def, &sub.params), 0);
        config.checkpointed = true;
        config.partitions = Some(PartitionHost {
            tx: requests_tx,
            timeout: options.checkpoint_timeout + REBALANCE_SLACK,
        });
        let context = SourceContext::new(options.base_dir.clone());
        let mut span = trace.child("varpulis.source.start");
        span.set("varpulis.connector", &*def.name);
        span.set("varpulis.connector.kind", &*def.kind);
        let source = match open_source(&config, &context, sender) {
            Ok(s) => {
                span.set(
                    "varpulis.source.description",
                    varpulis_connectors::redact::redact(&s.describe()),
                );
                trace.tracer.end(span);
                s
            }
            Err(e) => {
                writeln!(log, "error: {e}")?;
                span.error(e.to_string());
                trace.tracer.end(span);
                trace.finish_with(
                    Status::Error(format!("connector `{}`: {e}", def.name)),
                    None,
                );
                return Ok(Err(ExitCode::FAILURE));
            }
        };
        writeln!(
            log,
            "source `{}`: {} → {}, state per partition in `{}` (member {member})",
            source.name(),
            source.describe(),
            fed_streams(&program, sub),
            state_dir.display()
        )?;
        let metrics = match &options.metrics {
            Some(addr) => {
                let server = MetricsServer::start(addr)?;
                writeln!(log, "metrics: {}/metrics", server.url())?;
                Some(server)
            }
            None => None,
        };
        let out = match (outputs, &options.output) {
            (Some(w), _) => Out::Host(w),
            (None, Some(p)) if p.as_os_str() != "-" => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .with_context(|| format!("cannot write `{}`", p.display()))?;
                Out::File(BufWriter::new(file))
            }
            (None, _) => Out::Stdout(BufWriter::new(io::stdout())),
        };
        let dead_letter = match &options.dead_letter {
            Some(p) => Some(DeadLetters::open(p)?),
            None => None,
        };
        writeln!(
            log,
            "running; waiting for the group to assign partitions; Ctrl-C stops"
        )?;
        Ok(Ok(GroupRun {
            default_type: default_type(&program, sub),
            out_of_order: max_out_of_order(&program),
            sub_key: subscription_key(&program, sub),
            connector: def.name.to_string(),
            program,
            job_options,
            options: options.clone(),
            state_dir,
            member,
            owned: BTreeMap::new(),
            source,
            rx,
            requests,
            stop,
            stopping,
            log,
            out,
            outputs: Vec::new(),
            last_checkpoint: Instant::now(),
            metrics,
            last_publish: Instant::now(),
            counters: Counters::default(),
            failure: None,
            bad_input: None,
            stop_reason: "interrupted",
            observer: None,
            dead_letter,
            trace,
        }))
    }

    /// One turn: a rebalance request or payloads, outputs, a checkpoint when due, metrics.
    /// `false` once the run should stop.
    fn step(&mut self) -> anyhow::Result<bool> {
        if self.stop.load(Ordering::Acquire) {
            return Ok(false);
        }
        // A `varpulis.batch` span of this turn, when tracing and it runs events.
        let batch = self
            .trace
            .enabled()
            .then(|| (self.trace.linked("varpulis.batch"), self.totals()));
        let (requests_rx, payloads_rx) = (self.requests.clone(), self.rx.clone());
        let mut select = Select::new();
        let requests = select.recv(&requests_rx);
        let payloads = select.recv(&payloads_rx);
        match select.select_timeout(TICK) {
            Ok(op) if op.index() == requests => {
                if let Ok(request) = op.recv(&requests_rx) {
                    self.rebalance(request)?;
                }
            }
            Ok(op) if op.index() == payloads => match op.recv(&payloads_rx) {
                Ok(event) => self.handle(event),
                Err(_) => {
                    self.stop_reason = "the source ended";
                    return Ok(false);
                }
            },
            _ => {}
        }
        // More payloads waiting, a bounded amount (checkpoints and rebalances are looked at
        // between turns), unless a rebalance is asked for.
        for _ in 0..DRAIN_BATCH {
            if !self.requests.is_empty() || self.bad_input.is_some() || self.failure.is_some() {
                break;
            }
            let Ok(event) = self.rx.try_recv() else { break };
            self.handle(event);
        }
        if let Some((mut span, (events, outputs))) = batch {
            let (now_events, now_outputs) = self.totals();
            if now_events > events {
                span.set("varpulis.events", now_events - events);
                span.set("varpulis.outputs", now_outputs.saturating_sub(outputs));
                span.set("varpulis.partitions", self.owned.len());
                self.trace.tracer.end(span);
            }
        }
        self.on_idle();
        self.write_outputs()?;
        if self.bad_input.is_some() {
            self.stop_reason = "bad input with --strict";
            return Ok(false);
        }
        if self.failure.is_some() {
            self.stop_reason = "the source failed";
            return Ok(false);
        }
        if self.last_checkpoint.elapsed() >= self.options.checkpoint_interval {
            self.checkpoint_all()?;
        }
        if self.last_publish.elapsed() >= PUBLISH {
            self.publish();
        }
        Ok(true)
    }

    fn handle(&mut self, event: SourceEvent) {
        match event {
            SourceEvent::Message(msg) => {
                if let Err(problem) = self.message(msg) {
                    self.bad_input = Some(problem);
                }
            }
            SourceEvent::Problem { message, fatal, .. } => {
                let line = format!(
                    "{}: source `{}`: {message}",
                    if fatal { "error" } else { "warning" },
                    self.connector
                );
                let _ = writeln!(self.log, "{line}");
                if fatal {
                    self.failure = Some(message);
                }
            }
            SourceEvent::Ended { .. } => {
                self.failure = Some("the kafka source ended".into());
            }
        }
    }

    /// Runs one payload in the job of its partition.
    fn message(&mut self, msg: SourceMessage) -> Result<(), InputProblem> {
        let Some(position) = &msg.position else {
            return Ok(());
        };
        let Some(id) = position.key.rsplit_once('/').and_then(|(topic, p)| {
            Some(PartitionId {
                topic: topic.to_string(),
                partition: p.parse().ok()?,
            })
        }) else {
            return Ok(());
        };
        let Some(owned) = self.owned.get_mut(&id) else {
            // A partition dropped after a fence: its new owner reads it.
            self.counters.unowned += 1;
            return Ok(());
        };
        let from = RecordFrom::Source {
            subscription: 0,
            connector: &self.connector,
            place: &msg.place,
        };
        let arrival = msg.received_ms.saturating_mul(1_000_000);
        let skew = self
            .options
            .max_future_skew
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        // Counting skips is only needed to dead-letter them.
        let skipped = |job: &Job| job.stats().skipped.values().sum::<u64>();
        let skipped_before = self.dead_letter.as_ref().map(|_| skipped(&owned.job));
        let mut result = Ok(());
        for item in payload_events(&msg.payload, self.default_type.as_deref()) {
            let step = match item {
                Ok(raw) => {
                    let time = raw.timestamp.unwrap_or(arrival);
                    match skew.filter(|s| time > arrival.saturating_add(*s)) {
                        Some(s) => owned.job.rejected_from(
                            from,
                            "future_timestamp",
                            format!(
                                "its timestamp is {}s after its arrival, beyond \
                                 --max-future-skew ({}s); check the sender's clock",
                                (time - arrival) / 1_000_000_000,
                                s / 1_000_000_000
                            ),
                        ),
                        None => {
                            owned.idle.saw(time);
                            match msg.trace_parent.as_ref() {
                                None => owned.job.push_raw_from(
                                    &raw,
                                    Some(time),
                                    from,
                                    &mut self.outputs,
                                ),
                                // The caller's trace continues through the event's span.
                                Some(parent) => {
                                    let before = self.outputs.len();
                                    let (span, context) = self.trace.event(parent);
                                    owned.job.set_trace_parent(Some(context));
                                    let step = owned.job.push_raw_from(
                                        &raw,
                                        Some(time),
                                        from,
                                        &mut self.outputs,
                                    );
                                    owned.job.set_trace_parent(None);
                                    if let Some(span) = span {
                                        self.trace.end_event(
                                            span,
                                            &Ok(raw),
                                            &self.connector,
                                            &self.outputs[before..],
                                        );
                                    }
                                    step
                                }
                            }
                        }
                    }
                }
                Err(message) => owned.job.rejected_from(from, "malformed", message),
            };
            if step.is_err() {
                result = step;
                break;
            }
        }
        if skipped_before.is_some_and(|before| skipped(&owned.job) > before) {
            if let Some(d) = self.dead_letter.as_mut() {
                // The place names the topic, the partition and the offset.
                let place = format!("connector `{}` ({})", self.connector, msg.place);
                d.write(&place, &msg.payload, &owned.job);
            }
        }
        // A payload stopped by --strict is not seen: a restart reads it again.
        if result.is_ok() {
            owned.next = Some(position.end);
        }
        result
    }

    /// Quiet partitions: event time follows the wall clock (`--idle-timeout`).
    fn on_idle(&mut self) {
        for owned in self.owned.values_mut() {
            if let Some(ts) = owned.idle.due() {
                owned.job.advance_watermark(ts, &mut self.outputs);
            }
        }
    }

    fn write_outputs(&mut self) -> anyhow::Result<()> {
        for owned in self.owned.values_mut() {
            for msg in owned.job.take_messages() {
                writeln!(self.log, "{msg}")?;
            }
        }
        if self.outputs.is_empty() {
            return Ok(());
        }
        let mut line = Vec::with_capacity(256);
        let w = self.out.writer();
        for o in self.outputs.drain(..) {
            line.clear();
            write_json(&mut line, &o);
            line.push(b'\n');
            w.write_all(&line).context("writing outputs")?;
        }
        w.flush().context("writing outputs")?;
        Ok(())
    }

    fn rebalance(&mut self, request: Rebalance) -> anyhow::Result<()> {
        match request {
            // An incremental rebalance that gives this member nothing new.
            Rebalance::Assigned { partitions, reply } if partitions.is_empty() => {
                let _ = reply.send(Ok(BTreeMap::new()));
                return Ok(());
            }
            _ => self.counters.rebalances += 1,
        }
        let mut span = self.trace.linked("varpulis.rebalance");
        match request {
            Rebalance::Assigned { partitions, reply } => {
                let list: Vec<String> = partitions.iter().map(PartitionId::key).collect();
                span.set("varpulis.assigned", list.join(","));
                let answer = self.assign(&partitions);
                if let Err(why) = &answer {
                    span.error(why.clone());
                }
                span.set("varpulis.partitions", self.owned.len());
                self.trace.tracer.end(span);
                if let Err(why) = &answer {
                    writeln!(self.log, "error: {why}")?;
                }
                // The source may have given up waiting; it says so itself.
                let _ = reply.send(answer);
            }
            Rebalance::Revoked { partitions, reply } => {
                let list: Vec<String> = partitions.iter().map(PartitionId::key).collect();
                span.set("varpulis.revoked", list.join(","));
                let result = self.revoke(&partitions);
                span.set("varpulis.partitions", self.owned.len());
                self.trace.tracer.end(span);
                let _ = reply.send(());
                result?;
            }
        }
        Ok(())
    }

    /// Claims, opens and restores each assigned partition; answers where each starts.
    fn assign(
        &mut self,
        partitions: &[PartitionId],
    ) -> Result<BTreeMap<PartitionId, Option<u64>>, String> {
        let mut starts = BTreeMap::new();
        // One bound for the whole assignment: the source waits for all of it.
        let deadline = Instant::now() + self.options.checkpoint_timeout;
        for id in partitions {
            if let Some(owned) = self.owned.get(id) {
                // Still ours (an incremental assignment repeated it).
                starts.insert(id.clone(), owned.next);
                continue;
            }
            let owned = self
                .open(id, deadline)
                .map_err(|e| format!("partition {}: {e:#}", id.key()))?;
            starts.insert(id.clone(), owned.next);
            self.owned.insert(id.clone(), owned);
        }
        let list: Vec<String> = partitions.iter().map(PartitionId::key).collect();
        let _ = writeln!(
            self.log,
            "group: assigned {} (owning {})",
            list.join(", "),
            self.owned.len()
        );
        Ok(starts)
    }

    /// A partition's lease, store and job, restored from its checkpoint if it has one. A
    /// store another process still holds open (a stalled member, RocksDB's lock) is tried
    /// again until `deadline`.
    fn open(&mut self, id: &PartitionId, deadline: Instant) -> anyhow::Result<Owned> {
        let dir = partition_dir(&self.state_dir, &id.topic, id.partition)?;
        // The member that held the partition before this claim: the likely holder of a lock.
        let previous = read_owner(&dir).ok().flatten();
        let lease = PartitionLease::take(&dir, &self.member)?;
        let mut checkpoints = self.open_store(id, &dir.join("state"), previous, deadline)?;
        for damaged in &checkpoints.damaged {
            writeln!(self.log, "warning: state of {}: {damaged}", id.key())?;
        }
        let mut job = Job::new((*self.program).clone(), self.job_options.clone())?;
        // Record ids stay the same whichever member runs the partition.
        job.set_pipeline(checkpoints.pipeline());
        let mut next = None;
        if checkpoints.recovered() {
            // A server pipeline restarted on a new program keeps its unchanged streams.
            let compat = if self.options.carry_state {
                varpulis_vm::Compat::Carry
            } else {
                varpulis_vm::Compat::Strict
            };
            let restored = checkpoints.restore_with(&mut job, compat)?;
            for why in &restored.passed_over {
                writeln!(self.log, "warning: state of {}: {why}", id.key())?;
            }
            next = restored
                .positions
                .get(&self.sub_key)
                .and_then(|p| p.get(&id.key()))
                .copied();
            self.counters.restores += 1;
            writeln!(
                self.log,
                "state: partition {} restored (generation {}), reading from {}",
                id.key(),
                lease.generation(),
                next.map_or("the group's offset".to_string(), |n| format!("offset {n}"))
            )?;
        } else if let Err((why, e)) = checkpoints.save_start(&mut job, None) {
            writeln!(
                self.log,
                "warning: the first checkpoint of partition {} failed ({}): {e:#}",
                id.key(),
                why.as_str()
            )?;
        }
        let base_out = job.engine_stats().0.out_per_stream;
        Ok(Owned {
            job,
            checkpoints,
            lease,
            next,
            idle: IdleClock::new(self.options.idle_timeout, self.out_of_order),
            base_out,
        })
    }

    /// Opens a partition's checkpoint store, retrying with a bounded backoff while another
    /// process holds it open, until `deadline`; then fails naming the last owner.
    fn open_store(
        &mut self,
        id: &PartitionId,
        dir: &std::path::Path,
        previous: Option<varpulis_state::partition::Owner>,
        deadline: Instant,
    ) -> anyhow::Result<Checkpointer> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(50);
        let mut told = false;
        let holder = || match &previous {
            Some(o) => format!(
                "member {} (its previous owner, generation {}; the number before the dash is \
                 its process id)",
                o.member, o.generation
            ),
            None => "another process".to_string(),
        };
        loop {
            let error = match Checkpointer::open(
                dir,
                self.options.checkpoint_interval,
                self.options.checkpoint_timeout,
            ) {
                Ok(c) => {
                    if told {
                        self.counters.lock_waits += 1;
                        writeln!(
                            self.log,
                            "state: partition {} unlocked after {:.1}s",
                            id.key(),
                            started.elapsed().as_secs_f64()
                        )?;
                    }
                    return Ok(c);
                }
                Err(e) => e,
            };
            if !is_locked(&error) {
                return Err(error);
            }
            let now = Instant::now();
            if now >= deadline {
                self.counters.lock_waits += 1;
                anyhow::bail!(
                    "its state is still locked by {} after {:.1}s (the checkpoint timeout): a \
                     stalled member keeps it open; stop that process and the group gives the \
                     partition out again ({error:#})",
                    holder(),
                    started.elapsed().as_secs_f64()
                );
            }
            if !told {
                told = true;
                writeln!(
                    self.log,
                    "state: partition {} is locked by {}; trying again for up to {:.1}s",
                    id.key(),
                    holder(),
                    deadline.saturating_duration_since(now).as_secs_f64()
                )?;
            }
            std::thread::sleep(pause.min(deadline.saturating_duration_since(now)));
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// Runs what the source delivered, checkpoints the revoked partitions and drops them.
    fn revoke(&mut self, partitions: &[PartitionId]) -> anyhow::Result<()> {
        // The source waits in its callback: everything it delivered is in the queue.
        while let Ok(event) = self.rx.try_recv() {
            self.handle(event);
        }
        self.write_outputs()?;
        self.out.sync().context("syncing the outputs")?;
        for id in partitions {
            if self.checkpoint(id) {
                self.drop_partition(id);
            }
        }
        let list: Vec<String> = partitions.iter().map(PartitionId::key).collect();
        writeln!(
            self.log,
            "group: revoked {} (owning {})",
            list.join(", "),
            self.owned.len()
        )?;
        self.tell_source();
        Ok(())
    }

    fn drop_partition(&mut self, id: &PartitionId) {
        let Some(mut owned) = self.owned.remove(id) else {
            return;
        };
        let stats = owned.job.stats();
        self.counters.records += stats.records;
        self.counters.events += stats.events;
        self.counters.outputs += stats.outputs;
        let (metrics, _, _) = owned.job.engine_stats();
        self.counters.streams.add(&metrics, &owned.base_out);
        if let Err(e) = owned.job.stop() {
            let _ = writeln!(
                self.log,
                "warning: closing the sinks of partition {}: {e:#}",
                id.key()
            );
        }
    }

    /// Checkpoints one partition after its lease check; `true` when it is still owned
    /// afterwards (`false`: fenced and dropped).
    fn checkpoint(&mut self, id: &PartitionId) -> bool {
        let Some(owned) = self.owned.get_mut(id) else {
            return false;
        };
        if self.bad_input.is_some() {
            // A payload stopped by --strict may have run in part: its offset is not covered,
            // so a checkpoint now would run those events twice after a restore.
            return true;
        }
        match owned.lease.check() {
            Ok(()) => {}
            Err(e @ StateError::Fenced { .. }) => {
                self.counters.fenced += 1;
                let _ = writeln!(
                    self.log,
                    "warning: partition {}: {e}; its state is dropped here, not written",
                    id.key()
                );
                self.drop_partition(id);
                return false;
            }
            Err(e) => {
                self.counters.checkpoint_failures += 1;
                let _ = writeln!(
                    self.log,
                    "warning: checkpoint of partition {} skipped: cannot check its lease: {e}",
                    id.key()
                );
                return true;
            }
        }
        let mut positions = Positions::new();
        if let Some(next) = owned.next {
            positions.insert(self.sub_key.clone(), BTreeMap::from([(id.key(), next)]));
        }
        match self.trace.checkpoint(
            &mut owned.checkpoints,
            &mut owned.job,
            &positions,
            None,
            Some(id.key()),
        ) {
            Ok(()) => self.counters.checkpoints += 1,
            Err((why, e)) => {
                self.counters.checkpoint_failures += 1;
                let _ = writeln!(
                    self.log,
                    "warning: checkpoint of partition {} failed ({}): {e:#}",
                    id.key(),
                    why.as_str()
                );
            }
        }
        true
    }

    /// Checkpoints every owned partition, then tells the source their offsets.
    fn checkpoint_all(&mut self) -> anyhow::Result<()> {
        self.last_checkpoint = Instant::now();
        if let Some(d) = self.dead_letter.as_mut() {
            d.flush();
        }
        // A checkpoint never covers an output a crash could still lose.
        if let Err(e) = self.out.sync() {
            self.counters.checkpoint_failures += 1;
            self.counters.consecutive_failures += 1;
            writeln!(
                self.log,
                "warning: checkpoints skipped: cannot sync the outputs: {e}"
            )?;
            return Ok(());
        }
        let failed_before = self.counters.checkpoint_failures;
        let ids: Vec<PartitionId> = self.owned.keys().cloned().collect();
        for id in &ids {
            self.checkpoint(id);
        }
        if self.counters.checkpoint_failures > failed_before {
            self.counters.consecutive_failures += 1;
        } else {
            self.counters.consecutive_failures = 0;
        }
        self.tell_source();
        Ok(())
    }

    /// The group's committed offsets follow the checkpoints (for lag tools).
    fn tell_source(&mut self) {
        let positions: BTreeMap<String, u64> = self
            .owned
            .iter()
            .filter_map(|(id, o)| Some((id.key(), o.next?)))
            .collect();
        if !positions.is_empty() {
            self.source.commit(&positions);
        }
    }

    /// Per-stream counters of this process: owned partitions and dropped ones.
    fn stream_counts(&mut self) -> StreamCounts {
        let mut sum = self.counters.streams.clone();
        for owned in self.owned.values_mut() {
            let (metrics, _, _) = owned.job.engine_stats();
            sum.add(&metrics, &owned.base_out);
        }
        sum
    }

    fn metrics_text(&mut self, streams: &StreamCounts) -> String {
        let (mut records, mut events) = (self.counters.records, self.counters.events);
        for owned in self.owned.values() {
            let s = owned.job.stats();
            records += s.records;
            events += s.events;
        }
        let c = &self.counters;
        let source = self.source.metrics();
        let mut text = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            text.push_str(&format!(
                "# HELP varpulis_{name} {help}\n# TYPE varpulis_{name} {kind}\nvarpulis_{name} {value}\n"
            ));
        };
        metric(
            "partitions_owned",
            "gauge",
            "Kafka partitions whose state this process owns.",
            self.owned.len() as u64,
        );
        metric(
            "partition_rebalances_total",
            "counter",
            "Assignments and revocations handled.",
            c.rebalances,
        );
        metric(
            "partition_restores_total",
            "counter",
            "Partitions whose state was restored from a checkpoint.",
            c.restores,
        );
        metric(
            "partition_fenced_total",
            "counter",
            "Partitions dropped because another member claimed them.",
            c.fenced,
        );
        metric(
            "partition_unowned_records_total",
            "counter",
            "Payloads of partitions no longer owned, left to their owner.",
            c.unowned,
        );
        metric(
            "partition_lock_waits_total",
            "counter",
            "Partition stores found locked by another process when assigned.",
            c.lock_waits,
        );
        metric(
            "checkpoints_total",
            "counter",
            "Partition checkpoints written.",
            c.checkpoints,
        );
        metric(
            "checkpoint_failures_total",
            "counter",
            "Partition checkpoints that failed.",
            c.checkpoint_failures,
        );
        metric("input_records_total", "counter", "Records read.", records);
        metric("events_total", "counter", "Events run.", events);
        metric(
            "source_received_total",
            "counter",
            "Payloads the source received.",
            source.received,
        );
        let names: Vec<&str> = self.program.streams.iter().map(|s| &*s.name).collect();
        for (name, help, values) in [
            (
                "outputs_total",
                "Events leaving each stream.",
                &streams.outputs,
            ),
            (
                "stream_late_dropped_total",
                "Late events a stream did not process (beyond its allowed lateness).",
                &streams.late,
            ),
            (
                "stream_runtime_errors_total",
                "Expression errors in a stream's operators.",
                &streams.errors,
            ),
        ] {
            let samples: Vec<(String, u64)> = names
                .iter()
                .enumerate()
                .map(|(i, stream)| {
                    let n = values.get(i).copied().unwrap_or(0);
                    (crate::metrics::labels(&[("stream", stream)]), n)
                })
                .collect();
            crate::metrics::family(&mut text, name, "counter", help, &samples);
        }
        text
    }

    fn publish(&mut self) {
        self.last_publish = Instant::now();
        if self.metrics.is_none() && self.observer.is_none() {
            return;
        }
        let streams = self.stream_counts();
        let text = self.metrics_text(&streams);
        if self.observer.is_some() {
            let report = self.report(text.clone(), streams);
            if let Some(observer) = &mut self.observer {
                observer(&report);
            }
        }
        if let Some(m) = &self.metrics {
            m.publish(text, Vec::new());
        }
    }

    /// Events run and outputs so far, over every partition's job (dropped ones included).
    fn totals(&self) -> (u64, u64) {
        let (mut events, mut outputs) = (self.counters.events, self.counters.outputs);
        for owned in self.owned.values() {
            let s = owned.job.stats();
            events += s.events;
            outputs += s.outputs;
        }
        (events, outputs)
    }

    fn report(&self, metrics: String, streams: StreamCounts) -> GroupReport {
        let c = &self.counters;
        let (mut records, mut events, mut outputs) = (c.records, c.events, c.outputs);
        for owned in self.owned.values() {
            let s = owned.job.stats();
            records += s.records;
            events += s.events;
            outputs += s.outputs;
        }
        GroupReport {
            member: self.member.clone(),
            owned: self.owned.keys().map(PartitionId::key).collect(),
            rebalances: c.rebalances,
            restores: c.restores,
            fenced: c.fenced,
            unowned: c.unowned,
            records,
            events,
            outputs,
            checkpoints: c.checkpoints,
            checkpoint_failures: c.checkpoint_failures,
            consecutive_failures: c.consecutive_failures,
            connector: self.connector.clone(),
            description: self.source.describe(),
            source: self.source.metrics(),
            metrics,
            streams: self
                .program
                .streams
                .iter()
                .map(|s| s.name.to_string())
                .zip(streams.outputs.iter().copied().chain(std::iter::repeat(0)))
                .collect(),
        }
    }

    /// The last checkpoint of every owned partition, then the source leaves the group.
    fn finish(mut self) -> anyhow::Result<ExitCode> {
        self.write_outputs()?;
        self.checkpoint_all()?;
        // The source's revocation on leaving the group does not wait for us now.
        self.stopping.store(true, Ordering::Release);
        self.source.stop();
        let ids: Vec<PartitionId> = self.owned.keys().cloned().collect();
        for id in &ids {
            self.drop_partition(id);
        }
        self.publish();
        if let Some(d) = self.dead_letter.as_mut() {
            d.flush();
            if d.failures > 0 {
                writeln!(
                    self.log,
                    "warning: {} bad payloads could not be written to `{}`",
                    d.failures,
                    d.path.display()
                )?;
            }
        }
        let c = &self.counters;
        writeln!(
            self.log,
            "stopped ({}): {} records, {} events, {} outputs; {} rebalances, {} restores, \
             {} fenced; {} checkpoints ({} failed)",
            self.stop_reason,
            c.records,
            c.events,
            c.outputs,
            c.rebalances,
            c.restores,
            c.fenced,
            c.checkpoints,
            c.checkpoint_failures
        )?;
        let status = match (&self.bad_input, &self.failure) {
            (Some(problem), _) => Status::Error(format!("input {problem}")),
            (None, Some(why)) => Status::Error(why.clone()),
            (None, None) => Status::Ok,
        };
        let end = (c.events, c.outputs, self.stop_reason);
        if let Some((exported, dropped)) = self.trace.finish_with(status, Some(end)) {
            let mut line = format!("traces: {exported} spans exported");
            if dropped > 0 {
                line.push_str(&format!(", {dropped} dropped"));
            }
            writeln!(self.log, "{line}")?;
        }
        if let Some(problem) = &self.bad_input {
            writeln!(self.log, "error: {problem}")?;
            return Ok(ExitCode::FAILURE);
        }
        if let Some(why) = &self.failure {
            writeln!(self.log, "error: {why}")?;
            return Ok(ExitCode::FAILURE);
        }
        Ok(ExitCode::SUCCESS)
    }
}

//! `varpulis run` over the program's own sources: every `Type.from(Conn, ...)`
//! subscription is started (MQTT, Kafka, HTTP ingest, files), and events run
//! through the engine as they arrive, until every source has ended (bounded
//! files) or the process gets Ctrl-C / SIGTERM.
//!
//! Rules (docs/RUNTIME.md, "Live runs"):
//! - Each payload may hold one JSON object, an array of objects or JSON lines;
//!   a payload without `event_type`/`type` takes the type of its `.from` site
//!   when the subscription feeds one type.
//! - Event time is the payload's `timestamp`, else its arrival time.
//! - A subscription's events reach the streams that read their type, except
//!   the `.from` streams of other subscriptions.
//! - When no event arrives for `--idle-timeout`, the watermark follows the
//!   wall clock, so time windows close without waiting for the next event.
//! - Bad payloads are reported with the connector and place, counted, written
//!   to `--dead-letter` when given, and skipped (`--strict`: fatal).
//! - Ctrl-C stops the sources, runs what they already delivered, then flushes
//!   and closes the sinks. It is not the end of the input: open windows are
//!   not fired (a second Ctrl-C exits at once).
//! - With `--otlp-endpoint`, the run is traced (src/trace.rs): a root span
//!   `varpulis.run` with children `varpulis.source.start`; each
//!   `varpulis.batch` and `varpulis.checkpoint` is a trace of its own, linked
//!   to the run. An event that came with a `traceparent` runs in a
//!   `varpulis.event` span of the caller's trace, and the records it sends to
//!   sinks carry that context on.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::RecvTimeoutError;
use serde_json::value::RawValue;
use varpulis_connectors::source::DeliverError;
use varpulis_connectors::{
    open_source, Source, SourceConfig, SourceContext, SourceEvent, SourceMessage, SourceSender,
    TraceParent,
};
use varpulis_program::json::parse_json_event_or;
use varpulis_program::{Program, RawEvent, Subscription};
use varpulis_vm::Output;

use crate::checkpoint::{Checkpointer, Failure, Positions};
use crate::cli::simulate::{summary, OutputFormat};
use crate::job::{connector_config, InputProblem, Job, RecordFrom};
use crate::metrics::MetricsServer;
use crate::output::{write_json, write_tables, OutputFile, OutputMark};
use crate::trace::{Span, Status, Tracer};

mod decode;

/// Options of a live run.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// Where outputs go: `None` or `-` = stdout.
    pub output: Option<PathBuf>,
    /// Output format.
    pub format: OutputFormat,
    /// Quiet time after which the watermark follows the wall clock; `None`
    /// keeps event time purely data-driven.
    pub idle_timeout: Option<Duration>,
    /// Payloads buffered between the sources and the engine.
    pub queue_capacity: usize,
    /// Directory relative connector paths resolve against.
    pub base_dir: PathBuf,
    /// Where bad payloads are written (JSON lines), if anywhere.
    pub dead_letter: Option<PathBuf>,
    /// The Prometheus endpoint (`127.0.0.1:9464`, optional token and TLS), if any.
    pub metrics: Option<crate::metrics::MetricsListen>,
    /// Where checkpoints go, if anywhere.
    pub state_dir: Option<PathBuf>,
    /// Time between checkpoints.
    pub checkpoint_interval: Duration,
    /// How long a checkpoint waits for the sinks to confirm their records.
    pub checkpoint_timeout: Duration,
    /// Events whose timestamp is further than this after their arrival are
    /// counted as `future_timestamp`, dead-lettered and skipped instead of
    /// moving event time (`None`: no limit).
    pub max_future_skew: Option<Duration>,
    /// Restore the streams of a checkpoint that still match and start the
    /// changed ones empty, instead of refusing a checkpoint of another
    /// version of the program (the server's hot updates).
    pub carry_state: bool,
    /// The program file (for traces).
    pub program: PathBuf,
    /// Where traces are exported (OTLP/HTTP, `URL/v1/traces`), if anywhere.
    pub otlp: Option<crate::trace::ExportConfig>,
}

/// Payloads taken from the sources in one turn of the loop (with engine workers, between two
/// releases into the engine).
const DRAIN_BATCH: usize = 1024;

/// How often the loop wakes without events (idle watermark, Ctrl-C).
const TICK: Duration = Duration::from_millis(100);

/// Whether `program` declares connector sources.
pub fn has_sources(program: &Program) -> bool {
    !program.subscriptions().is_empty()
}

/// How a live run reaches the world around it. `varpulis run` uses
/// [`Host::terminal`] (Ctrl-C/SIGTERM, stderr, `--output`); `varpulis server`
/// embeds runs with its own stop flag, log, output tail and status.
pub struct Host {
    /// Set to stop the run: a stop, not the end of the input.
    pub stop: Arc<AtomicBool>,
    /// Where progress lines, warnings, errors and the summary go.
    pub log: Box<dyn Write + Send>,
    /// Where outputs go instead of [`LiveOptions::output`].
    pub outputs: Option<Box<dyn Write + Send>>,
    /// Told how the run is doing, at most every [`OBSERVE`] and once at the end.
    pub observer: Option<Observer>,
    /// Handed, once the sources are up, a way to inject payloads that reach
    /// every stream reading their type (like `--input` events).
    pub on_running: Option<Box<dyn FnOnce(Injector) + Send>>,
    /// Requests to the running run (hot updates), looked at every turn.
    pub control: Option<crossbeam_channel::Receiver<Control>>,
}

/// A request a host sends to its running run ([`Host::control`]).
pub enum Control {
    /// Run another program from now on, with the same sources.
    Update(Update),
}

/// A hot update: the new program takes over between two batches; the sources keep running.
pub struct Update {
    /// The new program. Its sources must be the running ones (same connectors, parameters
    /// and subscriptions), else the update is refused and the run goes on unchanged.
    pub program: Program,
    /// How the new program's job runs.
    pub job_options: crate::job::JobOptions,
    /// Told the outcome: stream by stream what state was kept, or why nothing changed.
    pub reply: crossbeam_channel::Sender<Result<varpulis_vm::StateReport, String>>,
    /// Set by whoever takes the update first: the run (it applies it) or the host (it gave
    /// up waiting, and the run then skips it).
    pub claimed: Arc<AtomicBool>,
}

/// Why the sources of `new` differ from those of `old` (`None`: they are the same
/// connectors with the same parameters, subscribed the same way).
pub fn sources_differ(old: &Program, new: &Program) -> Option<String> {
    let describe =
        |program: &Program| -> Vec<(String, Option<varpulis_connectors::ConnectorConfig>)> {
            program
                .subscriptions()
                .iter()
                .map(|sub| {
                    let def = program.connectors.get(sub.connector as usize);
                    (
                        subscription_key(program, sub),
                        def.map(|d| connector_config(d, &sub.params)),
                    )
                })
                .collect()
        };
    let (before, after) = (describe(old), describe(new));
    if before.len() != after.len() {
        return Some(format!(
            "the program reads {} connector subscriptions instead of {}",
            after.len(),
            before.len()
        ));
    }
    for ((key_a, def_a), (key_b, def_b)) in before.iter().zip(&after) {
        if key_a != key_b {
            return Some(format!("subscription `{key_b}` replaces `{key_a}`"));
        }
        if def_a != def_b {
            return Some(format!("the connector of `{key_b}` has other parameters"));
        }
    }
    None
}

impl Host {
    /// The terminal: Ctrl-C and SIGTERM stop the run, messages go to stderr.
    pub fn terminal() -> anyhow::Result<Host> {
        Ok(Host {
            stop: install_interrupt_handler()?,
            log: Box::new(io::stderr()),
            outputs: None,
            observer: None,
            on_running: None,
            control: None,
        })
    }
}

/// A host's observer of a run ([`Host::observer`]).
pub type Observer = Box<dyn FnMut(&Observation<'_>) + Send>;

/// How often a [`Host::observer`] hears from the run.
pub const OBSERVE: Duration = Duration::from_millis(500);

/// What an observer sees of a run.
pub struct Observation<'a> {
    /// Counters of the job, the engine, sources and sinks.
    pub snapshot: crate::metrics::Snapshot<'a>,
    /// The counters of the HTTP listeners among the sources.
    pub listeners: Vec<(String, varpulis_http::HttpStats)>,
    /// Source descriptions, by connector (`http://127.0.0.1:8080/events`).
    pub sources: Vec<(String, String, bool)>,
    /// When the last checkpoint was committed, if any.
    pub last_checkpoint: Option<std::time::SystemTime>,
    /// Checkpoint failures by cause.
    pub checkpoint_failures: Vec<(&'static str, u64)>,
    /// Checkpoints failed since the last success.
    pub consecutive_checkpoint_failures: u64,
    /// The checkpoint metric families, ready to append to the metrics text.
    pub checkpoint_metrics: String,
    /// Set on the last observation: why the run stopped.
    pub stopped: Option<&'a str>,
}

/// Injects payloads into a running live run (the server's `POST .../events`).
#[derive(Clone)]
pub struct Injector {
    sender: SourceSender,
    id: usize,
}

impl Injector {
    /// Hands one payload (an object, an array or JSON lines) to the run,
    /// without waiting: [`DeliverError::Full`] means "busy, retry", and the
    /// payload comes back.
    pub fn inject(&self, payload: Vec<u8>, place: String) -> Result<(), (DeliverError, Vec<u8>)> {
        let message = SourceEvent::Message(SourceMessage {
            source: self.id,
            payload,
            place,
            received_ms: varpulis_connectors::source::now_ms(),
            received: Instant::now(),
            position: None,
            trace_parent: None,
        });
        self.sender
            .try_deliver(message)
            .map_err(|(e, back)| match back {
                SourceEvent::Message(m) => (e, m.payload),
                _ => (e, Vec::new()),
            })
    }
}

/// Runs `job` over its program's connector sources until they end or the
/// process is interrupted.
pub fn run(job: Job, options: &LiveOptions) -> anyhow::Result<ExitCode> {
    if crate::groups::is_partitioned(job.program()) {
        return crate::groups::run(job, options, Host::terminal()?);
    }
    run_hosted(job, options, Host::terminal()?)
}

/// Runs `job` like [`run`], reporting to `host`.
pub fn run_hosted(job: Job, options: &LiveOptions, host: Host) -> anyhow::Result<ExitCode> {
    match LiveRun::start(job, options, host)? {
        Started::Running(run) => run.run(),
        Started::Failed(code) => Ok(code),
    }
}

enum Started {
    Running(Box<LiveRun>),
    Failed(ExitCode),
}

/// A live run, phase by phase: [`LiveRun::start`] (state, sources, outputs),
/// [`LiveRun::step`] in a loop, [`LiveRun::stop`] (drain, final checkpoint,
/// stop sources), [`LiveRun::report`].
struct LiveRun {
    job: Job,
    options: LiveOptions,
    program: Arc<Program>,
    stop: Arc<AtomicBool>,
    log: Box<dyn Write + Send>,
    observer: Option<Observer>,
    control: Option<crossbeam_channel::Receiver<Control>>,
    last_observed: Instant,
    stopping: Arc<AtomicBool>,
    rx: crossbeam_channel::Receiver<SourceEvent>,
    keys: Vec<String>,
    trace: RunTrace,
    checkpoints: Option<Checkpointer>,
    last_checkpoint: Option<std::time::SystemTime>,
    sources: Vec<Box<dyn Source>>,
    metrics: Option<MetricsServer>,
    out: Destination,
    output_name: String,
    live: Live,
    started: Instant,
    failure: Option<InputProblem>,
    stop_reason: &'static str,
}

impl LiveRun {
    /// Restores the checkpoint, opens the sources, the metrics endpoint and
    /// the outputs. A failure is reported to the host's log.
    fn start(mut job: Job, options: &LiveOptions, host: Host) -> anyhow::Result<Started> {
        let Host {
            stop,
            log,
            outputs,
            observer,
            on_running,
            control,
        } = host;
        // Secrets (substituted values, URL passwords, bearer tokens) never reach the log.
        let mut log: Box<dyn Write + Send> = Box::new(Redacting::new(log));
        let program = job.program().clone();
        let subs = program.subscriptions();
        let stopping = Arc::new(AtomicBool::new(false));
        let (tx, rx) = crossbeam_channel::bounded(options.queue_capacity.max(1));
        let sender = SourceSender::new(tx, stopping.clone());
        let context = SourceContext::new(options.base_dir.clone());

        let keys: Vec<String> = subs
            .iter()
            .map(|sub| subscription_key(&program, sub))
            .collect();
        let mut trace = RunTrace::start(options, subs.len())?;
        if let Some(url) = trace.tracer.url() {
            writeln!(
                log,
                "traces: OTLP to {url} (run trace {})",
                trace.run_trace_id()
            )?;
        }
        let mut checkpoints = match &options.state_dir {
            Some(dir) => {
                let c = Checkpointer::open(
                    dir,
                    options.checkpoint_interval,
                    options.checkpoint_timeout,
                )?;
                writeln!(
                    log,
                    "state: `{}` ({} backend), a checkpoint every {}s",
                    dir.display(),
                    c.backend(),
                    options.checkpoint_interval.as_secs_f64()
                )?;
                for damaged in &c.damaged {
                    writeln!(log, "warning: state: {damaged}")?;
                }
                Some(c)
            }
            None => None,
        };
        let mut resume = Positions::new();
        let mut output_resume: Option<OutputMark> = None;
        if let Some(c) = &mut checkpoints {
            // Record ids stay the same across restarts of this state directory.
            job.set_pipeline(c.pipeline());
            if c.recovered() {
                let compat = if options.carry_state {
                    varpulis_vm::Compat::Carry
                } else {
                    varpulis_vm::Compat::Strict
                };
                match c.restore_with(&mut job, compat) {
                    Ok(restored) => {
                        for why in &restored.passed_over {
                            writeln!(log, "warning: state: {why}")?;
                        }
                        resume = restored.positions;
                        output_resume = restored.output;
                        for s in restored.report.streams.iter().filter(|s| s.from.is_none()) {
                            writeln!(
                                log,
                                "state: stream `{}` starts empty ({})",
                                s.name, s.reason
                            )?;
                        }
                        for name in &restored.report.removed {
                            writeln!(
                                log,
                                "state: the state of removed stream `{name}` is dropped"
                            )?;
                        }
                        writeln!(
                            log,
                            "state: restored the checkpoint in `{}`",
                            options
                                .state_dir
                                .as_deref()
                                .unwrap_or(Path::new(""))
                                .display()
                        )?;
                    }
                    Err(e) => {
                        writeln!(log, "error: {e:#}")?;
                        trace.finish(Status::Error(format!("{e:#}")), None);
                        return Ok(Started::Failed(ExitCode::FAILURE));
                    }
                }
            }
        }

        let mut sources: Vec<Box<dyn Source>> = Vec::new();
        for (id, sub) in subs.iter().enumerate() {
            let Some(def) = program.connectors.get(sub.connector as usize) else {
                anyhow::bail!("subscription {id} names a connector the program does not have");
            };
            let mut config = SourceConfig::new(connector_config(def, &sub.params), id);
            if checkpoints.is_some() {
                config.checkpointed = true;
                config.resume = keys
                    .get(id)
                    .and_then(|k| resume.get(k))
                    .cloned()
                    .unwrap_or_default();
            }
            let mut span = trace.child("varpulis.source.start");
            span.set("varpulis.connector", &*def.name);
            span.set("varpulis.connector.kind", &*def.kind);
            match open_source(&config, &context, sender.clone()) {
                Ok(source) => {
                    span.set(
                        "varpulis.source.description",
                        varpulis_connectors::redact::redact(&source.describe()),
                    );
                    trace.tracer.end(span);
                    writeln!(
                        log,
                        "source `{}`: {} → {}",
                        source.name(),
                        source.describe(),
                        fed_streams(&program, sub)
                    )?;
                    sources.push(source);
                }
                Err(e) => {
                    stopping.store(true, Ordering::Release);
                    for s in &mut sources {
                        s.stop();
                    }
                    writeln!(log, "error: {e}")?;
                    span.error(e.to_string());
                    trace.tracer.end(span);
                    trace.finish(
                        Status::Error(format!("connector `{}`: {e}", def.name)),
                        None,
                    );
                    return Ok(Started::Failed(ExitCode::FAILURE));
                }
            }
        }
        let endless = on_running.is_some();
        if let Some(hand_over) = on_running {
            // The injector holds a sender: the channel then never ends, which
            // is right for a host that runs until it is told to stop.
            hand_over(Injector {
                sender: sender.clone(),
                id: subs.len(),
            });
        }
        // Only the sources (and an injector) hold senders now: when all are
        // gone the channel ends.
        drop(sender);
        let metrics = match &options.metrics {
            Some(addr) => {
                let server = MetricsServer::start(addr)?;
                writeln!(log, "metrics: {}/metrics", server.url())?;
                Some(server)
            }
            None => None,
        };
        writeln!(
            log,
            "running; Ctrl-C stops (open windows are not fired on a stop)"
        )?;

        let out = match (outputs, &options.output) {
            (Some(w), _) => Destination::Host(w),
            (None, Some(p)) if p.as_os_str() != "-" => {
                Destination::File(OutputFile::open(p, output_resume.as_ref())?)
            }
            (None, _) => Destination::Stdout(BufWriter::new(io::stdout().lock())),
        };
        let dead_letter = match &options.dead_letter {
            Some(p) => Some(DeadLetters::open(p)?),
            None => None,
        };
        let mut out = out;
        if let Some(c) = checkpoints.as_mut().filter(|c| !c.recovered()) {
            if let Err((why, e)) = c.save_start(&mut job, out.file()) {
                writeln!(
                    log,
                    "warning: the first checkpoint failed ({}): {e:#}; a crash before the next \
                     one may send the sinks' first records again",
                    why.as_str()
                )?;
            }
        }
        let output_name = match (&out, &options.output) {
            (Destination::Host(_), _) => "the host".to_string(),
            (_, Some(p)) if p.as_os_str() != "-" => format!("`{}`", p.display()),
            _ => "standard output".to_string(),
        };
        // What the restored state has seen of each subscription: a checkpoint
        // taken before a source delivers again must still say so.
        let seen: Vec<BTreeMap<String, u64>> = keys
            .iter()
            .map(|k| resume.get(k).cloned().unwrap_or_default())
            .collect();
        let mut live = Live::new(&program, &subs, &sources, &seen, options, dead_letter);
        live.endless = endless;
        // Engine workers: N decoding threads, a turn ahead of the loop.
        if let Some(workers) = job.workers().filter(|&w| w > 1) {
            live.decoders = Some(decode::Decoders::start(
                varpulis_program::EventDecoder::new(&program),
                workers,
            )?);
        }
        Ok(Started::Running(Box::new(LiveRun {
            job,
            options: options.clone(),
            program,
            stop,
            log,
            observer,
            control,
            last_observed: Instant::now(),
            stopping,
            rx,
            keys,
            trace,
            checkpoints,
            last_checkpoint: None,
            sources,
            metrics,
            out,
            output_name,
            live,
            started: Instant::now(),
            failure: None,
            stop_reason: "every source ended",
        })))
    }

    /// Every phase after the start.
    fn run(mut self: Box<Self>) -> anyhow::Result<ExitCode> {
        while self.step()? {}
        self.stop()?;
        self.report()
    }

    /// One turn of the loop: take payloads, run what is due, write outputs,
    /// checkpoint when due, publish metrics. `false` once the run should stop.
    fn step(&mut self) -> anyhow::Result<bool> {
        if self.stop.load(Ordering::Acquire) {
            self.stop_reason = "interrupted";
            return Ok(false);
        }
        // Wait for input, but not past the moment something falls due without it (a quiet
        // source releasing the events it holds back, the idle watermark): those happen on
        // time, not at the next tick.
        let wait = self.live.due_in().map_or(TICK, |d| d.min(TICK));
        let mut turn = Vec::new();
        // A turn being decoded is finished this time round, with what else
        // is waiting and without waiting for more.
        if !self.live.turn_in_flight() {
            match self.rx.recv_timeout(wait) {
                Ok(event) => turn.push(event),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.live.all_ended(),
            }
        }
        let batch = self.trace.batch(&self.job);
        let records_before = self.job.stats().records;
        // Take what else is waiting, a bounded amount: a fast source must not pile up in the
        // merge. Engine workers get it as one batch; one engine runs each payload's events as
        // soon as they are due, so the first event of a backlog does not wait for the
        // decoding of up to DRAIN_BATCH payloads behind it.
        // Engine workers decode the turn's payloads on their decoding threads
        // (docs/RUNTIME.md, "Live runs on workers").
        let one_by_one = !self.job.batches();
        let mut released = Ok(());
        if self.live.decoders.is_some() {
            turn.extend(self.rx.try_iter().take(DRAIN_BATCH));
            self.live.take_turn(turn);
        } else {
            for event in turn {
                self.live.handle(event);
            }
            if one_by_one {
                released = self.live.release(&mut self.job, &self.trace);
            }
            if released.is_ok() {
                for event in self.rx.try_iter().take(DRAIN_BATCH) {
                    self.live.handle(event);
                    if one_by_one {
                        released = self.live.release(&mut self.job, &self.trace);
                        if released.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        if released.is_ok() && !one_by_one {
            released = self.live.release(&mut self.job, &self.trace);
        }
        if let Err(problem) = released {
            self.failure = Some(problem);
            self.stop_reason = "bad input with --strict";
            return Ok(false);
        }
        if self.rx.is_empty() || self.job.stats().records == records_before {
            // Nothing waiting, or nothing released this turn (a source holds
            // event time back): the outputs of the rounds still running go
            // out now rather than with a later batch.
            self.live.settle(&mut self.job, &self.trace);
        }
        self.live.on_idle(&mut self.job);
        if let Some(why) = self.job.broken() {
            anyhow::bail!("the engine workers stopped: {why}");
        }
        self.write_messages()?;
        self.live
            .write_outputs(self.out.writer())
            .with_context(|| format!("writing outputs to {}", self.output_name))?;
        self.trace.end_batch(batch, &self.job);
        if let Some(Control::Update(update)) = self
            .control
            .as_ref()
            .and_then(|c| c.try_recv().ok())
            .filter(|Control::Update(u)| !u.claimed.swap(true, Ordering::AcqRel))
        {
            let outcome = self.update(update.program, update.job_options);
            if let Err(why) = &outcome {
                writeln!(self.log, "error: hot update refused: {why}")?;
            }
            // The host may have given up waiting; the log has the outcome.
            let _ = update.reply.send(outcome);
        }
        if self.checkpoints.as_ref().is_some_and(Checkpointer::due) {
            self.checkpoint(true)?;
        }
        self.publish_metrics();
        self.observe(None);
        self.trace.report_failure();
        Ok(!self.live.finished())
    }

    /// A hot update between two batches: the new program's engine takes the state of the
    /// streams whose definition did not change, the old program's sinks confirm their
    /// records (a checkpoint barrier) and close, the new ones open where they left off, and a
    /// checkpoint records the new state. The sources, the pending merge and the outputs are
    /// not touched. Any failure before the switch leaves the old program running.
    fn update(
        &mut self,
        program: Program,
        job_options: crate::job::JobOptions,
    ) -> Result<varpulis_vm::StateReport, String> {
        if let Some(why) = sources_differ(&self.program, &program) {
            return Err(format!(
                "{why}; an update that changes sources restarts the pipeline instead"
            ));
        }
        // The old program's state and sinks must cover every event it was given
        // (a turn still decoding waits in the merge: the new program runs it).
        self.live.flush_turn();
        self.live.settle(&mut self.job, &self.trace);
        if let Some(why) = self.job.broken() {
            return Err(format!("the engine workers stopped: {why}"));
        }
        let mut next = Job::without_sinks(program, job_options).map_err(|e| format!("{e:#}"))?;
        // As many workers as before: each shard's state moves to its
        // successor. A stream that keeps its state keeps its definition, so
        // its events are routed by the same key; a type whose routing
        // changes feeds no kept per-key state.
        if let Some(workers) = self.job.workers() {
            next.start_workers(workers).map_err(|e| format!("{e:#}"))?;
        } else if self.job.contexts().is_some() {
            // Context threads for the new program's contexts; its state is
            // one engine's, whatever the layout (docs/RUNTIME.md#contexts).
            if let crate::contexts::Layout::Threads(lanes) = crate::contexts::plan(next.program()) {
                next.start_contexts(lanes).map_err(|e| format!("{e:#}"))?;
            }
        }
        let mut state = varpulis_state::MemoryStore::new();
        self.job
            .save_engine(&mut state)
            .map_err(|e| format!("cannot take the running state: {e:#}"))?;
        let report = next
            .load_engine(&state, varpulis_vm::Compat::Carry)
            .map_err(|e| format!("cannot move the state to the new program: {e:#}"))?;
        // Everything the old program emitted is delivered (or durably staged) before its
        // sinks close: nothing is lost, nothing is sent twice.
        let deadline = Instant::now() + self.options.checkpoint_timeout;
        let sinks = self.job.barrier(deadline).map_err(|e| {
            format!("a sink could not confirm its records ({e}); the running program is unchanged")
        })?;
        if let Err(e) = self.job.stop() {
            self.live
                .messages
                .push(format!("warning: hot update: {e:#}"));
        }
        let opened = next.open_sinks().and_then(|()| {
            next.set_pipeline(self.job.pipeline());
            next.restore_sinks(&sinks)
        });
        if let Err(e) = opened {
            let _ = next.stop();
            // Back to the old program, its sinks where they were.
            let back = self
                .job
                .reopen_sinks()
                .and_then(|()| self.job.restore_sinks(&sinks));
            return Err(match back {
                Ok(()) => format!("{e:#}; the running program is unchanged"),
                Err(b) => format!("{e:#}; reopening the old program's sinks failed too: {b:#}"),
            });
        }
        next.carry_stats_from(&mut self.job);
        self.job = next;
        self.program = self.job.program().clone();
        self.live.reprogram(&self.program);
        let kept = report.streams.iter().filter(|s| s.from.is_some()).count();
        self.live.messages.push(format!(
            "update: the new program runs; {kept} of {} streams kept their state, sources kept",
            report.streams.len()
        ));
        // A crash from now on restarts the new program on its own state.
        if let Err(e) = self.checkpoint(true) {
            self.live.messages.push(format!(
                "warning: the checkpoint after the update failed: {e:#}"
            ));
        }
        Ok(report)
    }

    /// Problems the engine and the sources reported, to the log.
    fn write_messages(&mut self) -> anyhow::Result<()> {
        for msg in self.job.take_messages() {
            writeln!(self.log, "{msg}")?;
        }
        for msg in self.live.messages.drain(..) {
            writeln!(self.log, "{msg}")?;
        }
        Ok(())
    }

    /// Checkpoints; with `tell_sources`, the replaying sources learn the
    /// committed positions.
    fn checkpoint(&mut self, tell_sources: bool) -> anyhow::Result<()> {
        if self.checkpoints.is_none() {
            return Ok(());
        }
        // The state saved must cover every event handed to the engine, and
        // the barrier every output it caused.
        self.live.settle(&mut self.job, &self.trace);
        if let Some(why) = self.job.broken() {
            anyhow::bail!("the engine workers stopped: {why}");
        }
        let Some(c) = self.checkpoints.as_mut() else {
            return Ok(());
        };
        let written = c.written;
        let mut ck = Checkpoint {
            c,
            keys: &self.keys,
            out: &mut self.out,
            output_name: &self.output_name,
        };
        let sources: &mut [Box<dyn Source>] = if tell_sources {
            &mut self.sources
        } else {
            &mut []
        };
        ck.run(
            &mut self.job,
            &mut self.live,
            sources,
            &self.trace,
            &mut self.log,
        )?;
        if c.written > written {
            self.last_checkpoint = Some(std::time::SystemTime::now());
        }
        Ok(())
    }

    fn listeners(&self) -> Vec<(String, varpulis_http::HttpStats)> {
        self.sources
            .iter()
            .filter_map(|s| s.http_stats().map(|h| (s.name().to_string(), h)))
            .collect()
    }

    fn publish_metrics(&mut self) {
        let Some(m) = &self.metrics else {
            return;
        };
        let ck = self.checkpoints.as_ref().map(|c| (c.written, c.failed));
        let mut text = self.live.metrics_text(
            &mut self.job,
            &self.sources,
            ck,
            self.trace.tracer.dropped(),
        );
        if let Some(c) = &self.checkpoints {
            text.push_str(&checkpoint_metrics(c, self.last_checkpoint));
        }
        m.publish(text, self.listeners());
    }

    /// Tells the host's observer how the run is doing (at most every
    /// [`OBSERVE`], and always with `stopped`).
    fn observe(&mut self, stopped: Option<&str>) {
        if self.observer.is_none() || (stopped.is_none() && self.last_observed.elapsed() < OBSERVE)
        {
            return;
        }
        self.last_observed = Instant::now();
        let listeners = self.listeners();
        let (engine, memory, watermark) = self.job.engine_stats();
        let program = self.program.clone();
        let sinks = self.job.sink_metrics();
        let sources: Vec<(String, String, bool)> = self
            .sources
            .iter()
            .zip(&self.live.subs)
            .map(|(s, sub)| (s.name().to_string(), s.describe(), sub.ended))
            .collect();
        let checkpoint_failures = self
            .checkpoints
            .as_ref()
            .map(|c| {
                c.failures
                    .iter()
                    .map(|(why, n)| (why.as_str(), *n))
                    .collect()
            })
            .unwrap_or_default();
        let observation = Observation {
            snapshot: crate::metrics::Snapshot {
                job: self.job.stats(),
                engine: &engine,
                streams: program.streams.iter().map(|s| &*s.name).collect(),
                watermark,
                sources: self
                    .sources
                    .iter()
                    .map(|s| (s.name().to_string(), s.metrics()))
                    .collect(),
                sinks,
                pending: self.live.pending.len(),
                checkpoints: self.checkpoints.as_ref().map(|c| (c.written, c.failed)),
                dead_letter_failures: self.live.dead_letter.as_ref().map_or(0, |d| d.failures),
                trace_spans_dropped: self.trace.tracer.dropped(),
                latency: self.live.latency.clone(),
                memory,
                enrich: self.job.enrich_metrics(),
                workers: self.job.workers().unwrap_or(1),
                contexts: self.job.contexts().unwrap_or(1),
            },
            listeners,
            sources,
            last_checkpoint: self.last_checkpoint,
            checkpoint_failures,
            consecutive_checkpoint_failures: self
                .checkpoints
                .as_ref()
                .map_or(0, |c| c.consecutive_failures),
            checkpoint_metrics: self
                .checkpoints
                .as_ref()
                .map(|c| checkpoint_metrics(c, self.last_checkpoint))
                .unwrap_or_default(),
            stopped,
        };
        if let Some(observer) = self.observer.as_mut() {
            observer(&observation);
        }
    }

    /// Runs what the sources have delivered, checkpoints, and only then stops
    /// them: a replaying source commits the final checkpoint's positions as
    /// it leaves, so a restart neither loses nor repeats what the state has
    /// seen.
    fn stop(&mut self) -> anyhow::Result<()> {
        if self.failure.is_none() {
            self.live.flush_turn();
            while let Ok(event) = self.rx.try_recv() {
                self.live.handle(event);
            }
            let batch = self.trace.batch(&self.job);
            if let Err(problem) = self.live.release_all(&mut self.job, &self.trace) {
                self.failure = Some(problem);
            }
            self.live.settle(&mut self.job, &self.trace);
            self.trace.end_batch(batch, &self.job);
        }
        let end_of_input =
            self.failure.is_none() && self.stop_reason != "interrupted" && self.live.finished();
        if end_of_input {
            // Every source is bounded and done: that is the end of the input.
            self.job.flush_end(&mut self.live.outputs);
        }
        if self.failure.is_none() {
            self.checkpoint(true)?;
        }
        self.stopping.store(true, Ordering::Release);
        for s in &mut self.sources {
            s.stop();
        }
        if self.failure.is_none() && !end_of_input {
            // What arrived meanwhile: sources that cannot replay would lose it,
            // the others deliver it again after a restart.
            let mut late_arrivals = false;
            while let Ok(event) = self.rx.try_recv() {
                late_arrivals |= self.live.handle_unreplayable(event);
            }
            if let Err(problem) = self.live.release_all(&mut self.job, &self.trace) {
                self.failure = Some(problem);
            }
            if late_arrivals && self.failure.is_none() {
                // The sources have stopped: the positions go to no source.
                self.checkpoint(false)?;
            }
        }
        Ok(())
    }

    /// Writes the last outputs and the summary; the exit code.
    fn report(mut self: Box<Self>) -> anyhow::Result<ExitCode> {
        self.live.settle(&mut self.job, &self.trace);
        if let Some(problem) = &self.failure {
            writeln!(self.log, "error: input {problem}")?;
            writeln!(
                self.log,
                "help: run without --strict to count and skip bad input"
            )?;
        }
        self.job.stop()?;
        self.write_messages()?;
        self.live
            .write_outputs(self.out.writer())
            .with_context(|| format!("writing outputs to {}", self.output_name))?;
        if self.live.format == OutputFormat::Table {
            write_tables(self.out.writer(), &self.live.kept)?;
        }
        self.out
            .writer()
            .flush()
            .with_context(|| format!("writing outputs to {}", self.output_name))?;
        if let Some(d) = self.live.dead_letter.as_mut() {
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
        let stop_reason = self.stop_reason;
        writeln!(self.log, "stopped: {stop_reason}")?;
        if let Some(c) = &self.checkpoints {
            let mut line = format!(
                "state: {} checkpoints written to `{}`",
                c.written,
                self.options
                    .state_dir
                    .as_deref()
                    .unwrap_or(Path::new(""))
                    .display()
            );
            if c.failed > 0 {
                let reasons: Vec<String> = c
                    .failures
                    .iter()
                    .map(|(why, n)| format!("{}: {n}", why.as_str()))
                    .collect();
                line.push_str(&format!(", {} failed ({})", c.failed, reasons.join(", ")));
            }
            writeln!(self.log, "{line}")?;
        }
        for s in &self.sources {
            writeln!(self.log, "{}", source_summary(s.as_ref()))?;
        }
        writeln!(
            self.log,
            "{}",
            summary(&mut self.job, self.started.elapsed())
        )?;
        self.observe(Some(stop_reason));
        let status = match (&self.failure, &self.live.fatal) {
            (Some(problem), _) => Status::Error(format!("input {problem}")),
            (None, Some(message)) => Status::Error(message.clone()),
            (None, None) => Status::Ok,
        };
        if let Some((exported, dropped)) = self.trace.finish(status, Some((&self.job, stop_reason)))
        {
            let mut line = format!("traces: {exported} spans exported");
            if dropped > 0 {
                line.push_str(&format!(", {dropped} dropped"));
            }
            writeln!(self.log, "{line}")?;
        }
        self.log.flush()?;
        Ok(if self.failure.is_some() || self.live.failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }
}

/// A log writer that hides secrets, line by line
/// ([`varpulis_connectors::redact::redact`]).
pub struct Redacting<W: Write> {
    inner: W,
    partial: Vec<u8>,
}

impl<W: Write> Redacting<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Redacting {
            inner,
            partial: Vec::new(),
        }
    }
}

impl<W: Write> Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.partial.extend_from_slice(buf);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line);
            self.inner
                .write_all(varpulis_connectors::redact::redact(&text).as_bytes())?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.partial.is_empty() {
            let text = String::from_utf8_lossy(&self.partial).into_owned();
            self.partial.clear();
            self.inner
                .write_all(varpulis_connectors::redact::redact(&text).as_bytes())?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for Redacting<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Where outputs go: standard output, or the `--output` file (which
/// checkpoints sync and a restart truncates back to the checkpoint).
enum Destination {
    Stdout(BufWriter<io::StdoutLock<'static>>),
    File(OutputFile),
    /// The embedding host's writer (the server's output tail).
    Host(Box<dyn Write + Send>),
}

impl Destination {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Destination::Stdout(w) => w,
            Destination::File(f) => f,
            Destination::Host(w) => w,
        }
    }

    /// The file a checkpoint syncs and records; standard output cannot be
    /// taken back (at least once).
    fn file(&mut self) -> Option<&mut OutputFile> {
        match self {
            Destination::Stdout(_) | Destination::Host(_) => None,
            Destination::File(f) => Some(f),
        }
    }
}

/// What one checkpoint needs besides the job, the host and the sources.
struct Checkpoint<'a> {
    c: &'a mut Checkpointer,
    keys: &'a [String],
    out: &'a mut Destination,
    output_name: &'a str,
}

impl Checkpoint<'_> {
    /// Writes the outputs produced so far, then checkpoints (the barrier, then
    /// the commit) and hands the replaying sources their positions. A failed
    /// checkpoint is reported naming its cause and counted; the run goes on
    /// (the previous checkpoint stays valid) and the next interval tries again.
    fn run(
        &mut self,
        job: &mut Job,
        live: &mut Live,
        sources: &mut [Box<dyn Source>],
        trace: &RunTrace,
        stderr: &mut dyn Write,
    ) -> anyhow::Result<()> {
        live.write_outputs(self.out.writer())
            .with_context(|| format!("writing outputs to {}", self.output_name))?;
        let positions = live.positions(self.keys);
        match trace.checkpoint(self.c, job, &positions, self.out.file(), None) {
            Ok(()) => {
                for (source, key) in sources.iter_mut().zip(self.keys) {
                    if let Some(p) = positions.get(key) {
                        source.commit(p);
                    }
                }
            }
            Err((Failure::Commit, e)) => {
                // The checkpoint says these records are out, but they were never published:
                // going on would lose them. A restart goes back to the checkpoint before.
                return Err(e.context(
                    "a sink could not publish the records of a durable checkpoint; stopping so \
                     that a restart replays them from the checkpoint before it",
                ));
            }
            Err((why, e)) => writeln!(
                stderr,
                "warning: checkpoint failed ({}): {e:#}; nothing was committed, the next \
                 checkpoint is tried in {}s",
                why.as_str(),
                self.c.wait().as_secs_f64()
            )?,
        }
        Ok(())
    }
}

/// `varpulis_checkpoint_failure_reasons_total{reason}`: failed checkpoints
/// by cause (`output`, `sink`, `store`), every cause listed; and
/// `varpulis_checkpoint_consecutive_failures`, failures since the last
/// success (alert on it: the state on disk is getting old);
/// `varpulis_checkpoint_damaged_total`, damaged checkpoints passed over; and
/// `varpulis_checkpoint_last_success_timestamp_seconds`, when this run last
/// committed one (0 before the first), for the checkpoint's age.
pub(crate) fn checkpoint_metrics(
    c: &Checkpointer,
    last_success: Option<std::time::SystemTime>,
) -> String {
    let (failures, consecutive, damaged) = (&c.failures, c.consecutive_failures, c.damaged.len());
    let last = last_success
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64());
    let mut out = String::from(
        "# HELP varpulis_checkpoint_failure_reasons_total Checkpoints not committed, by cause: \
         the --output file, a sink that could not confirm its records, the state store.\n\
         # TYPE varpulis_checkpoint_failure_reasons_total counter\n",
    );
    for why in [
        Failure::Output,
        Failure::Sink,
        Failure::Store,
        Failure::Commit,
    ] {
        let n = failures.get(&why).copied().unwrap_or(0);
        out.push_str(&format!(
            "varpulis_checkpoint_failure_reasons_total{{reason=\"{}\"}} {n}\n",
            why.as_str()
        ));
    }
    out.push_str(&format!(
        "# HELP varpulis_checkpoint_consecutive_failures Checkpoints failed since the last one that succeeded.\n\
         # TYPE varpulis_checkpoint_consecutive_failures gauge\n\
         varpulis_checkpoint_consecutive_failures {consecutive}\n\
         # HELP varpulis_checkpoint_damaged_total Damaged checkpoints passed over at start for the previous one.\n\
         # TYPE varpulis_checkpoint_damaged_total counter\n\
         varpulis_checkpoint_damaged_total {damaged}\n\
         # HELP varpulis_checkpoint_last_success_timestamp_seconds When the last checkpoint of this run was committed (0: none yet).\n\
         # TYPE varpulis_checkpoint_last_success_timestamp_seconds gauge\n\
         varpulis_checkpoint_last_success_timestamp_seconds {last:.3}\n"
    ));
    out
}

/// The traces of one live run: the root span `varpulis.run` and its
/// children, and the batch and checkpoint traces linked to it. With tracing
/// off every call is a cheap no-op.
pub(crate) struct RunTrace {
    pub(crate) tracer: Tracer,
    /// The root span, until [`RunTrace::finish`] ends it.
    root: Option<Span>,
    state_dir: Option<String>,
}

/// A `varpulis.batch` span being measured: the span and the job's event and
/// output counters when it started.
struct Batch {
    span: Span,
    events: u64,
    outputs: u64,
}

impl RunTrace {
    pub(crate) fn start(options: &LiveOptions, sources: usize) -> anyhow::Result<RunTrace> {
        let tracer = match &options.otlp {
            Some(config) => Tracer::start(config)?,
            None => Tracer::disabled(),
        };
        let mut root = tracer.span("varpulis.run", None);
        root.set("varpulis.program", options.program.display().to_string());
        root.set("varpulis.sources", sources);
        Ok(RunTrace {
            tracer,
            root: Some(root),
            state_dir: options.state_dir.as_ref().map(|d| d.display().to_string()),
        })
    }

    pub(crate) fn enabled(&self) -> bool {
        self.tracer.enabled()
    }

    /// The run's trace id, in hex.
    pub(crate) fn run_trace_id(&self) -> String {
        self.root
            .as_ref()
            .map(Span::trace_id_hex)
            .unwrap_or_default()
    }

    /// A child span of the run, starting now.
    pub(crate) fn child(&self, name: &'static str) -> Span {
        self.tracer.span(name, self.root.as_ref())
    }

    /// The root of a new trace, starting now, linked to the run: a run lasts
    /// for days, so its batches and checkpoints are traces of their own.
    pub(crate) fn linked(&self, name: &'static str) -> Span {
        let mut span = self.tracer.span(name, None);
        if let Some(root) = &self.root {
            span.link(root);
        }
        span
    }

    fn batch(&self, job: &Job) -> Option<Batch> {
        if !self.enabled() {
            return None;
        }
        let stats = job.stats();
        Some(Batch {
            span: self.linked("varpulis.batch"),
            events: stats.events,
            outputs: stats.outputs,
        })
    }

    /// Records the batch when it ran at least one event.
    fn end_batch(&self, batch: Option<Batch>, job: &Job) {
        let Some(mut b) = batch else { return };
        let stats = job.stats();
        let events = stats.events.saturating_sub(b.events);
        if events == 0 {
            return;
        }
        b.span.set("varpulis.events", events);
        b.span
            .set("varpulis.outputs", stats.outputs.saturating_sub(b.outputs));
        self.tracer.end(b.span);
    }

    /// An event that came with `parent`: its `varpulis.event` span (a child
    /// of the caller's span, when tracing and the caller samples the trace)
    /// and the context its records carry on (under that span; unchanged
    /// when the span is not recorded, so the chain still holds).
    pub(crate) fn event(&self, parent: &TraceParent) -> (Option<Span>, TraceParent) {
        if !(self.enabled() && parent.sampled()) {
            return (None, *parent);
        }
        let span = self.tracer.remote_child("varpulis.event", parent);
        let context = parent.with_span(span.id);
        (Some(span), context)
    }

    /// Records an event's span with what it was and what it caused.
    pub(crate) fn end_event(
        &self,
        mut span: Span,
        raw: &Result<RawEvent, (&'static str, String)>,
        connector: &str,
        outputs: &[Output],
    ) {
        span.set("varpulis.connector", connector);
        match raw {
            Ok(raw) => span.set("varpulis.event_type", raw.event_type.as_str()),
            Err((kind, message)) => {
                span.set("varpulis.skipped", *kind);
                span.error(message.clone());
            }
        }
        span.set("varpulis.outputs", outputs.len());
        let mut streams: Vec<&str> = outputs.iter().map(|o| &*o.stream).collect();
        streams.sort_unstable();
        streams.dedup();
        if !streams.is_empty() {
            span.set("varpulis.streams", streams.join(","));
        }
        self.tracer.end(span);
    }

    /// Saves a checkpoint (barrier, then commit) inside a `varpulis.checkpoint`
    /// span.
    pub(crate) fn checkpoint(
        &self,
        c: &mut Checkpointer,
        job: &mut Job,
        positions: &Positions,
        output: Option<&mut OutputFile>,
        partition: Option<String>,
    ) -> Result<(), (Failure, anyhow::Error)> {
        let mut span = self.linked("varpulis.checkpoint");
        if let Some(dir) = &self.state_dir {
            span.set("varpulis.state_dir", dir.clone());
        }
        if let Some(p) = partition {
            span.set("varpulis.partition", p);
        }
        let started = Instant::now();
        let result = c.save(job, positions, output);
        span.set(
            "varpulis.checkpoint.duration_ms",
            started.elapsed().as_secs_f64() * 1e3,
        );
        match &result {
            Ok(()) => span.status = Status::Ok,
            Err((_, e)) => span.error(format!("{e:#}")),
        }
        self.tracer.end(span);
        result
    }

    /// Ends the root span (with the run's totals and stop reason when it
    /// got that far) and flushes the exporter, waiting at most 2 s.
    /// Returns the spans exported and dropped, when tracing.
    fn finish(&mut self, status: Status, end: Option<(&Job, &str)>) -> Option<(u64, u64)> {
        let end = end.map(|(job, reason)| {
            let stats = job.stats();
            (stats.events, stats.outputs, reason)
        });
        self.finish_with(status, end)
    }

    /// [`RunTrace::finish`] with the run's totals given as (events, outputs, stop reason).
    pub(crate) fn finish_with(
        &mut self,
        status: Status,
        end: Option<(u64, u64, &str)>,
    ) -> Option<(u64, u64)> {
        if let Some(mut root) = self.root.take() {
            if let Some((events, outputs, reason)) = end {
                root.set("varpulis.events", events);
                root.set("varpulis.outputs", outputs);
                root.set("varpulis.stop_reason", reason);
            }
            root.status = status;
            self.tracer.end(root);
        }
        let counts = self.tracer.shutdown();
        self.report_failure();
        counts
    }

    /// Prints the first export failure, once. The exporter thread cannot:
    /// the run holds the stderr lock (this thread may take it again).
    pub(crate) fn report_failure(&self) {
        if let Some(warning) = self.tracer.take_warning() {
            eprintln!("{warning}");
        }
    }
}

impl Drop for RunTrace {
    /// A run that ended on an error no other path reported still sends its
    /// spans.
    fn drop(&mut self) {
        if self.root.is_some() {
            self.finish(Status::Error("the run stopped on an error".into()), None);
        }
    }
}

/// A subscription's identity across restarts: its connector and site
/// parameters.
pub(crate) fn subscription_key(program: &Program, sub: &Subscription) -> String {
    let name = program
        .connectors
        .get(sub.connector as usize)
        .map_or("?", |c| &*c.name);
    let params: Vec<String> = sub
        .params
        .iter()
        .map(|(k, v)| format!("{k}: {v:?}"))
        .collect();
    format!("{name}({})", params.join(", "))
}

/// `source `In`: 4 received, 84 bytes, 1 rejected`.
fn source_summary(s: &dyn Source) -> String {
    let m = s.metrics();
    let mut line = format!(
        "source `{}`: {} received, {} bytes",
        s.name(),
        m.received,
        m.bytes
    );
    for (n, what) in [
        (m.rejected, "rejected"),
        (m.errors, "errors"),
        (m.reconnects, "reconnects"),
    ] {
        if n > 0 {
            line.push_str(&format!(", {n} {what}"));
        }
    }
    line
}

/// What the host knows of one subscription.
struct SubState {
    /// The connector name, for messages.
    name: String,
    /// The type of payloads that name none.
    default_type: Option<Arc<str>>,
    /// Bounded input done, or the source gave up.
    ended: bool,
    /// The largest event time received.
    max_time: Option<i64>,
    /// When it last delivered something (or when the run started).
    last_arrival: Instant,
    /// For a replaying source: per record stream, the offset after the last
    /// payload received, starting at the restored checkpoint's positions. A
    /// checkpoint taken before the source delivers again (a Kafka group still
    /// joining) must not drop them: the restart after it would find no
    /// position, read the stream from its start and replay it into a state
    /// that has already seen it.
    received_end: BTreeMap<String, u64>,
    /// The record stream of its last payload, shared by the items of the
    /// payloads after it from the same stream (a file, a partition).
    last_stream: Option<Arc<str>>,
    /// The host's injector ([`Injector`]): it neither ends nor holds event
    /// time back.
    injected: bool,
}

/// A decoded event (or an undecodable item, kept in its place so problems
/// are reported in input order) waiting for the other sources to catch up.
struct Pending {
    time: i64,
    sub: usize,
    seq: u64,
    /// The event (parsed, or decoded already on engine workers), or why the
    /// item is skipped: the kind of problem (`malformed`,
    /// `future_timestamp`) and the message.
    raw: Result<decode::Body, (&'static str, String)>,
    /// Where the connector received it.
    place: Arc<str>,
    payload: Arc<[u8]>,
    /// Record stream and start offset of its payload (replaying sources).
    position: Option<(Arc<str>, u64)>,
    /// When its source received it (monotonic), for the latency histogram.
    received: Instant,
    /// The caller's trace context (a `traceparent` header), if it sent one.
    trace_parent: Option<TraceParent>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl Pending {
    /// Event time, then subscription, then arrival: a total, deterministic
    /// order.
    fn key(&self) -> (i64, usize, u64) {
        (self.time, self.sub, self.seq)
    }
}

/// Decoded events waiting to run on a job's engine workers, with what the
/// host measures of each.
#[derive(Default)]
struct Pushing {
    events: Vec<crate::job::Routed>,
    meta: Vec<BatchMeta>,
}

impl Pushing {
    /// A batch when `job` runs on workers (`None`: events run one by one).
    fn for_job(job: &Job) -> Option<Pushing> {
        job.batches().then(Pushing::default)
    }
}

/// A decoded event, or why it is skipped.
type Decoded = Result<RawEvent, (&'static str, String)>;

/// What the host keeps of one batched event.
struct BatchMeta {
    received: Instant,
    connector: String,
    /// Its `varpulis.event` span and the event, when traced.
    span: Option<(Span, Decoded)>,
}

/// Events held back at most: past this the oldest are released anyway (a
/// source far behind the others cannot make the host grow without bound).
const MAX_PENDING: usize = 100_000;

/// The host side of a live run: decoding, merging sources by event time,
/// idle time, outputs.
struct Live {
    subs: Vec<SubState>,
    /// Events by (time, subscription, arrival), smallest first.
    pending: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    /// Merge sources by event time (off with `--idle-timeout 0`).
    align: bool,
    idle_timeout: Option<Duration>,
    /// Some source gave up with an error.
    failed: bool,
    /// The first such error, for the trace.
    fatal: Option<String>,
    idle: IdleClock,
    outputs: Vec<Output>,
    kept: Vec<Output>,
    format: OutputFormat,
    dead_letter: Option<DeadLetters>,
    /// Problems the sources reported, for the host's log.
    messages: Vec<String>,
    /// The host injects payloads: the run goes on until it is stopped, even
    /// when every connector source has ended.
    endless: bool,
    /// Events whose timestamp is further than this (ns) after their arrival
    /// are refused; `None` accepts any timestamp.
    max_future_skew: Option<i64>,
    /// Per stream: arrival at a source to hand-off of the outputs it caused.
    latency: Vec<crate::metrics::LatencyHistogram>,
    /// Stream name → index into `latency`.
    stream_index: std::collections::HashMap<Arc<str>, usize>,
    /// Per batch handed to engine workers and not finished yet, oldest
    /// first: what is measured of its events.
    in_flight: std::collections::VecDeque<Vec<BatchMeta>>,
    /// With engine workers (`--workers N`, N > 1): the threads that parse
    /// and decode each turn's payloads ([`Live::take_turn`]).
    decoders: Option<decode::Decoders>,
    /// The turn they are decoding, one turn ahead of the merge.
    turn: Option<Turn>,
}

/// A turn of the sources' events whose payloads are being decoded: the
/// events in arrival order (messages without their payload bytes, which are
/// in `bytes`, one per message of a known subscription).
struct Turn {
    decoding: decode::Turn,
    events: Vec<SourceEvent>,
    bytes: Vec<Arc<[u8]>>,
}

impl Live {
    /// After a hot update: what depends on the program (latency per stream, the idle clock's
    /// allowance) follows the new one; a stream that kept its name keeps its histogram.
    fn reprogram(&mut self, program: &Program) {
        // What the old program decoded and still holds back is decoded again
        // by the new one when it runs (parsed as it was, with the old
        // default types).
        self.flush_turn();
        self.undecode();
        if let Some(d) = self.decoders.as_mut() {
            d.set_decoder(varpulis_program::EventDecoder::new(program));
        }
        let mut before = std::mem::take(&mut self.stream_index)
            .into_iter()
            .filter_map(|(name, i)| Some((name, self.latency.get(i)?.clone())))
            .collect::<std::collections::HashMap<_, _>>();
        self.latency = program
            .streams
            .iter()
            .map(|s| before.remove(&s.name).unwrap_or_default())
            .collect();
        self.stream_index = program
            .streams
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        self.idle.out_of_order = max_out_of_order(program);
        // The same connectors may now feed other types.
        for (state, sub) in self.subs.iter_mut().zip(program.subscriptions().iter()) {
            state.default_type = default_type(program, sub).map(Arc::from);
        }
    }

    /// Turns every pending item that a decoding thread decoded back into its
    /// parsed form (each payload is parsed once more, when its item was not
    /// kept), so the program that runs it decodes it.
    fn undecode(&mut self) {
        // Each payload's items, parsed again once, by the payload's address.
        type Items = Vec<Option<Result<RawEvent, String>>>;
        let mut parsed: std::collections::HashMap<(usize, usize), Items> =
            std::collections::HashMap::new();
        let items = std::mem::take(&mut self.pending).into_vec();
        self.pending = items
            .into_iter()
            .map(|Reverse(mut p)| {
                if let Ok(decode::Body::Decoded { raw, item, .. }) = &mut p.raw {
                    let raw = match raw.take() {
                        Some(raw) => Ok(raw),
                        None => {
                            let default_type =
                                self.subs.get(p.sub).and_then(|s| s.default_type.as_deref());
                            let list = parsed
                                .entry((p.payload.as_ptr() as usize, p.payload.len()))
                                .or_insert_with(|| {
                                    payload_events(&p.payload, default_type)
                                        .into_iter()
                                        .map(Some)
                                        .collect()
                                });
                            list.get_mut(*item as usize)
                                .and_then(Option::take)
                                .unwrap_or_else(|| Err(missing_item()))
                                .map_err(|m| ("malformed", m))
                        }
                    };
                    p.raw = raw.map(decode::Body::Raw);
                }
                Reverse(p)
            })
            .collect();
    }

    /// `seen` holds, per subscription, the positions of the restored
    /// checkpoint (empty without one): where the engine's state has seen each
    /// record stream up to before this run delivers anything.
    fn new(
        program: &Program,
        subs: &[Subscription],
        sources: &[Box<dyn Source>],
        seen: &[BTreeMap<String, u64>],
        options: &LiveOptions,
        dead_letter: Option<DeadLetters>,
    ) -> Live {
        let now = Instant::now();
        let state = |name: String,
                     default_type: Option<Arc<str>>,
                     received_end: BTreeMap<String, u64>,
                     injected: bool| SubState {
            name,
            default_type,
            ended: false,
            max_time: None,
            last_arrival: now,
            received_end,
            last_stream: None,
            injected,
        };
        let mut states: Vec<SubState> = subs
            .iter()
            .zip(sources)
            .enumerate()
            .map(|(i, (sub, source))| {
                state(
                    source.name().to_string(),
                    default_type(program, sub).map(Arc::from),
                    seen.get(i).cloned().unwrap_or_default(),
                    false,
                )
            })
            .collect();
        // Injected payloads (the server's API) come last: their subscription
        // id is no connector's, so only streams without `.from` see them.
        states.push(state("API".to_string(), None, BTreeMap::new(), true));
        Live {
            subs: states,
            pending: BinaryHeap::new(),
            seq: 0,
            align: options.idle_timeout.is_some(),
            idle_timeout: options.idle_timeout,
            failed: false,
            fatal: None,
            idle: IdleClock::new(options.idle_timeout, max_out_of_order(program)),
            outputs: Vec::new(),
            kept: Vec::new(),
            format: options.format,
            dead_letter,
            messages: Vec::new(),
            endless: false,
            max_future_skew: options
                .max_future_skew
                .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
            latency: vec![crate::metrics::LatencyHistogram::default(); program.streams.len()],
            stream_index: program
                .streams
                .iter()
                .enumerate()
                .map(|(i, s)| (s.name.clone(), i))
                .collect(),
            in_flight: Default::default(),
            decoders: None,
            turn: None,
        }
    }

    /// Every source has ended (bounded input done, or gave up).
    fn finished(&self) -> bool {
        !self.endless
            && self.subs.iter().all(|s| s.ended || s.injected)
            && self.pending.is_empty()
            && self.turn.is_none()
    }

    /// The sources are all gone (their channel closed).
    fn all_ended(&mut self) {
        for s in &mut self.subs {
            s.ended = true;
        }
    }

    fn handle(&mut self, event: SourceEvent) {
        match event {
            SourceEvent::Message(msg) => self.message(msg),
            SourceEvent::Problem {
                source,
                message,
                fatal,
            } => {
                let name = self.subs.get(source).map_or("?", |s| s.name.as_str());
                if fatal {
                    self.messages.push(format!(
                        "error: connector `{name}`: {message} (source stopped)"
                    ));
                    self.failed = true;
                    if self.fatal.is_none() {
                        self.fatal = Some(format!("connector `{name}`: {message}"));
                    }
                    if let Some(s) = self.subs.get_mut(source) {
                        s.ended = true;
                    }
                } else {
                    self.messages
                        .push(format!("warning: connector `{name}`: {message}"));
                }
            }
            SourceEvent::Ended { source } => {
                if let Some(s) = self.subs.get_mut(source) {
                    s.ended = true;
                }
            }
        }
    }

    /// Parses a payload into `pending` (on this thread; its events are
    /// decoded when they run). An item that is not an event takes the time of
    /// the source's latest event, so it is reported in order.
    fn message(&mut self, mut msg: SourceMessage) {
        let Some(sub) = self.subs.get(msg.source) else {
            return;
        };
        let payload = decode::Payload {
            bytes: std::mem::take(&mut msg.payload).into(),
            default_type: sub.default_type.clone(),
            arrival: msg.received_ms.saturating_mul(1_000_000),
            keep_raw: false,
        };
        let items = decode::items(&payload, self.max_future_skew, None);
        self.insert(msg, payload.bytes, items);
    }

    /// Takes one turn of the sources' events in order. With decoding
    /// threads (engine workers), the turn's payloads go to them to be parsed
    /// and decoded while the loop goes on with the turn before, which this
    /// call finishes (its items into the merge, in arrival order, as with
    /// [`Live::handle`] one by one); a turn decoded at once (a small one) is
    /// finished too. [`Live::flush_turn`] finishes a turn still decoding.
    fn take_turn(&mut self, events: Vec<SourceEvent>) {
        let Some(decoders) = self.decoders.as_ref() else {
            for event in events {
                self.handle(event);
            }
            return;
        };
        let previous = self.turn.take();
        if !events.is_empty() {
            let mut payloads = Vec::new();
            let mut rest = Vec::with_capacity(events.len());
            for mut event in events {
                if let SourceEvent::Message(msg) = &mut event {
                    if let Some(sub) = self.subs.get(msg.source) {
                        payloads.push(decode::Payload {
                            bytes: std::mem::take(&mut msg.payload).into(),
                            default_type: sub.default_type.clone(),
                            arrival: msg.received_ms.saturating_mul(1_000_000),
                            keep_raw: msg.trace_parent.is_some(),
                        });
                    }
                }
                rest.push(event);
            }
            let bytes = payloads.iter().map(|p| p.bytes.clone()).collect();
            self.turn = Some(Turn {
                decoding: decoders.dispatch(payloads, self.max_future_skew),
                events: rest,
                bytes,
            });
        }
        if let Some(previous) = previous {
            self.finish_turn(previous);
        }
        if matches!(&self.turn, Some(t) if matches!(t.decoding, decode::Turn::Here(_))) {
            self.flush_turn();
        }
    }

    /// Whether a turn is still being decoded.
    fn turn_in_flight(&self) -> bool {
        self.turn.is_some()
    }

    /// Waits for the turn still being decoded, if any, and puts it into the
    /// merge: before a release that must see everything received (a stop,
    /// a hot update) and when no new input came.
    fn flush_turn(&mut self) {
        if let Some(turn) = self.turn.take() {
            self.finish_turn(turn);
        }
    }

    fn finish_turn(&mut self, turn: Turn) {
        let decoded = match self.decoders.as_ref() {
            Some(d) => d.collect(turn.decoding),
            None => match turn.decoding {
                decode::Turn::Here(items) => items,
                decode::Turn::There { .. } => Vec::new(),
            },
        };
        let mut decoded = turn.bytes.into_iter().zip(decoded);
        for event in turn.events {
            match event {
                SourceEvent::Message(msg) if self.subs.get(msg.source).is_some() => {
                    if let Some((bytes, items)) = decoded.next() {
                        self.insert(msg, bytes, items);
                    }
                }
                other => self.handle(other),
            }
        }
    }

    /// Puts the items of `msg`'s payload (`bytes`) into `pending`.
    fn insert(&mut self, msg: SourceMessage, payload: Arc<[u8]>, items: Vec<decode::Item>) {
        let Some(sub) = self.subs.get_mut(msg.source) else {
            return;
        };
        sub.last_arrival = Instant::now();
        // Formatted with the connector's name only when a problem is reported.
        let place: Arc<str> = msg.place.into();
        let arrival = msg.received_ms.saturating_mul(1_000_000);
        let position = msg.position.map(|p| {
            // Most payloads come from the stream of the one before: neither
            // the map's key nor the shared name is copied again.
            match sub.received_end.get_mut(&p.key) {
                Some(end) => *end = p.end,
                None => {
                    sub.received_end.insert(p.key.clone(), p.end);
                }
            }
            let stream = match &sub.last_stream {
                Some(s) if **s == *p.key => s.clone(),
                _ => {
                    let s = Arc::<str>::from(p.key);
                    sub.last_stream = Some(s.clone());
                    s
                }
            };
            (stream, p.start)
        });
        for item in items {
            let (time, raw) = match item {
                Ok((time, body)) => {
                    sub.max_time = Some(sub.max_time.map_or(time, |m| m.max(time)));
                    (time, Ok(body))
                }
                Err(skipped) => (sub.max_time.unwrap_or(arrival), Err(skipped)),
            };
            self.seq += 1;
            self.pending.push(Reverse(Pending {
                time,
                sub: msg.source,
                seq: self.seq,
                raw,
                place: place.clone(),
                payload: payload.clone(),
                position: position.clone(),
                received: msg.received,
                trace_parent: msg.trace_parent,
            }));
        }
    }

    /// Like [`Live::handle`] after the sources stopped: payloads of sources
    /// that can replay are dropped (a restart reads them again, after the
    /// last checkpoint); `true` when something else was taken.
    fn handle_unreplayable(&mut self, event: SourceEvent) -> bool {
        match event {
            SourceEvent::Message(msg) if msg.position.is_some() => false,
            SourceEvent::Message(msg) => {
                self.message(msg);
                true
            }
            other => {
                self.handle(other);
                false
            }
        }
    }

    /// Where each subscription's records have been seen up to, by
    /// subscription key: the start of the earliest payload still pending,
    /// else the end of the last one received, else the restored checkpoint's
    /// position.
    fn positions(&self, keys: &[String]) -> Positions {
        let mut out = Positions::new();
        for (i, (sub, key)) in self.subs.iter().zip(keys).enumerate() {
            let mut p = sub.received_end.clone();
            for Reverse(item) in self.pending.iter().filter(|r| r.0.sub == i) {
                if let Some((k, start)) = &item.position {
                    let e = p.entry(k.to_string()).or_insert(*start);
                    *e = (*e).min(*start);
                }
            }
            if !p.is_empty() {
                out.insert(key.clone(), p);
            }
        }
        out
    }

    /// The event time up to which every source has spoken: sources that
    /// ended or stayed quiet for the idle timeout do not hold it back.
    /// `None`: some active source has not spoken yet.
    fn bound(&self) -> Option<i64> {
        if !self.align {
            return Some(i64::MAX);
        }
        let timeout = self.idle_timeout.unwrap_or(Duration::ZERO);
        let mut bound = i64::MAX;
        for s in &self.subs {
            if s.ended
                || s.last_arrival.elapsed() >= timeout
                || (s.injected && s.max_time.is_none())
            {
                continue;
            }
            bound = bound.min(s.max_time?);
        }
        Some(bound)
    }

    /// How long until the loop has work without new input: a source that holds
    /// pending events back reaches the idle timeout (and stops holding them), or,
    /// with nothing pending, the idle clock is due. `None`: nothing is due.
    fn due_in(&self) -> Option<Duration> {
        due_in(
            &self.subs,
            !self.pending.is_empty() && self.align,
            self.idle_timeout,
            &self.idle,
        )
    }

    /// Runs the pending events every source has caught up with, in event
    /// time order.
    fn release(&mut self, job: &mut Job, trace: &RunTrace) -> Result<(), InputProblem> {
        let bound = self.bound();
        let mut batch = Pushing::for_job(job);
        let mut result = Ok(());
        while let Some(Reverse(top)) = self.pending.peek() {
            let due = bound.is_some_and(|b| top.time <= b) || self.pending.len() > MAX_PENDING;
            if !due {
                break;
            }
            result = self.run_next(job, trace, batch.as_mut());
            if result.is_err() {
                break;
            }
            self.run_batch_if_full(job, trace, batch.as_mut());
        }
        // The events before a fatal one run, as they do on one engine.
        if let Some(b) = batch.as_mut() {
            self.run_batch(job, trace, b);
        }
        result
    }

    /// Runs everything pending (the sources have stopped).
    fn release_all(&mut self, job: &mut Job, trace: &RunTrace) -> Result<(), InputProblem> {
        let mut batch = Pushing::for_job(job);
        let mut result = Ok(());
        while !self.pending.is_empty() {
            result = self.run_next(job, trace, batch.as_mut());
            if result.is_err() {
                break;
            }
            self.run_batch_if_full(job, trace, batch.as_mut());
        }
        if let Some(b) = batch.as_mut() {
            self.run_batch(job, trace, b);
        }
        result
    }

    fn run_batch_if_full(&mut self, job: &mut Job, trace: &RunTrace, batch: Option<&mut Pushing>) {
        if let Some(b) = batch.filter(|b| b.events.len() >= DRAIN_BATCH) {
            self.run_batch(job, trace, b);
        }
    }

    /// Hands a batch of decoded events to the job's engine workers and
    /// accounts for the rounds that finished meanwhile.
    fn run_batch(&mut self, job: &mut Job, trace: &RunTrace, batch: &mut Pushing) {
        if batch.events.is_empty() {
            return;
        }
        let events = std::mem::take(&mut batch.events);
        self.in_flight.push_back(std::mem::take(&mut batch.meta));
        // An error leaves the job broken, and the loop stops on it.
        if let Ok(done) = job.push_events(events, &mut self.outputs) {
            self.account(done, trace);
        }
    }

    /// Waits for the job's rounds still running (engine workers) and
    /// accounts for them: before a checkpoint, an update, a stop, and when
    /// no input is waiting (outputs do not linger).
    fn settle(&mut self, job: &mut Job, trace: &RunTrace) {
        if let Ok(done) = job.settle(&mut self.outputs) {
            self.account(done, trace);
        }
    }

    /// Latency per output (arrival to hand-off of the merged round) and the
    /// events' trace spans, for finished rounds.
    fn account(&mut self, done: Vec<crate::job::Done>, trace: &RunTrace) {
        let now = Instant::now();
        for round in done.into_iter().filter(|d| d.batch) {
            let Some(meta) = self.in_flight.pop_front() else {
                continue;
            };
            let mut caused: Vec<Vec<usize>> = vec![Vec::new(); meta.len()];
            for (k, cause) in round.causes.iter().enumerate() {
                let o = round.start + k;
                let Some(i) = *cause else { continue };
                if let Some(list) = caused.get_mut(i) {
                    list.push(o);
                }
                let (Some(m), Some(out)) = (meta.get(i), self.outputs.get(o)) else {
                    continue;
                };
                if let Some(h) = self
                    .stream_index
                    .get(&out.stream)
                    .and_then(|&s| self.latency.get_mut(s))
                {
                    h.observe(now.saturating_duration_since(m.received));
                }
            }
            for (m, outs) in meta.into_iter().zip(caused) {
                if let Some((span, raw)) = m.span {
                    let outputs: Vec<Output> = outs
                        .iter()
                        .filter_map(|&o| self.outputs.get(o).cloned())
                        .collect();
                    trace.end_event(span, &raw, &m.connector, &outputs);
                }
            }
        }
    }

    fn run_next(
        &mut self,
        job: &mut Job,
        trace: &RunTrace,
        batch: Option<&mut Pushing>,
    ) -> Result<(), InputProblem> {
        let Some(Reverse(p)) = self.pending.pop() else {
            return Ok(());
        };
        self.idle.saw(p.time);
        let connector = self.subs.get(p.sub).map_or("?", |s| s.name.as_str());
        let from = RecordFrom::Source {
            subscription: u32::try_from(p.sub).unwrap_or(u32::MAX),
            connector,
            place: &p.place,
        };
        // Counting skips is only needed to dead-letter them: keep it off the
        // per-event path otherwise.
        let skipped = |job: &Job| job.stats().skipped.values().sum::<u64>();
        let skipped_before = self.dead_letter.as_ref().map(|_| skipped(job));
        if let Some(batch) = batch {
            // Engine workers: decode now, or take what a decoding thread
            // decoded, and apply the job's state in order (bad input is
            // counted and dead-lettered in order); run with the batch.
            let traced = p.trace_parent.is_some();
            let (admitted, raw) = match p.raw {
                Ok(decode::Body::Raw(raw)) => {
                    let admitted = job.decode_from(&raw, Some(p.time), from);
                    (Ok(admitted), traced.then_some(raw))
                }
                Ok(decode::Body::Decoded { decoded, raw, .. }) => {
                    (Ok(job.admit(decoded, from)), raw)
                }
                Err(skipped) => (Err(skipped), None),
            };
            let result = match admitted {
                Ok(admitted) => admitted.map(|event| {
                    if let Some(event) = event {
                        let (span, trace_parent) = match p.trace_parent.as_ref() {
                            Some(parent) => {
                                let (span, context) = trace.event(parent);
                                (span, Some(context))
                            }
                            None => (None, None),
                        };
                        batch.events.push(crate::job::Routed {
                            event,
                            origin: Some(u32::try_from(p.sub).unwrap_or(u32::MAX)),
                            trace_parent,
                        });
                        batch.meta.push(BatchMeta {
                            received: p.received,
                            connector: connector.to_string(),
                            span: span.map(|s| (s, Ok(raw.unwrap_or_else(unnamed)))),
                        });
                    }
                }),
                Err((kind, message)) => job.rejected_from(from, kind, message),
            };
            if skipped_before.is_some_and(|before| skipped(job) > before) {
                if let Some(d) = self.dead_letter.as_mut() {
                    let place = format!("connector `{connector}` ({})", p.place);
                    d.write(&place, &p.payload, job);
                }
            }
            return result;
        }
        // One engine: its events are decoded as they run (an item a decoding
        // thread decoded cannot be here: hot updates keep the worker count,
        // and parse again what they hold back; it would be parsed again).
        let raw = match p.raw {
            Ok(decode::Body::Raw(raw)) => Ok(raw),
            Ok(decode::Body::Decoded { raw: Some(raw), .. }) => Ok(raw),
            Ok(decode::Body::Decoded { item, .. }) => {
                let default_type = self.subs.get(p.sub).and_then(|s| s.default_type.clone());
                reparse(&p.payload, default_type.as_deref(), item)
            }
            Err(skipped) => Err(skipped),
        };
        let before = self.outputs.len();
        // Only an event that came with a trace context is traced on its own;
        // the others cost nothing here.
        let event_span = p.trace_parent.as_ref().and_then(|parent| {
            let (span, context) = trace.event(parent);
            job.set_trace_parent(Some(context));
            span
        });
        let result = match &raw {
            Ok(raw) => job.push_raw_from(raw, Some(p.time), from, &mut self.outputs),
            Err((kind, message)) => job.rejected_from(from, kind, message.clone()),
        };
        if p.trace_parent.is_some() {
            job.set_trace_parent(None);
            if let Some(span) = event_span {
                trace.end_event(span, &raw, connector, &self.outputs[before..]);
            }
        }
        // The outputs are handed to the sinks inside the push: their latency ends here.
        if self.outputs.len() > before {
            let latency = p.received.elapsed();
            for o in &self.outputs[before..] {
                if let Some(h) = self
                    .stream_index
                    .get(&o.stream)
                    .and_then(|&i| self.latency.get_mut(i))
                {
                    h.observe(latency);
                }
            }
        }
        if skipped_before.is_some_and(|before| skipped(job) > before) {
            if let Some(d) = self.dead_letter.as_mut() {
                let place = format!("connector `{connector}` ({})", p.place);
                d.write(&place, &p.payload, job);
            }
        }
        result
    }

    /// The Prometheus snapshot of the run so far.
    fn metrics_text(
        &self,
        job: &mut Job,
        sources: &[Box<dyn Source>],
        checkpoints: Option<(u64, u64)>,
        trace_spans_dropped: u64,
    ) -> String {
        let (engine, memory, watermark) = job.engine_stats();
        let program = job.program().clone();
        let sinks = job.sink_metrics();
        crate::metrics::render(&crate::metrics::Snapshot {
            job: job.stats(),
            engine: &engine,
            streams: program.streams.iter().map(|s| &*s.name).collect(),
            watermark,
            sources: sources
                .iter()
                .map(|s| (s.name().to_string(), s.metrics()))
                .collect(),
            sinks,
            pending: self.pending.len(),
            checkpoints,
            dead_letter_failures: self.dead_letter.as_ref().map_or(0, |d| d.failures),
            trace_spans_dropped,
            latency: self.latency.clone(),
            memory,
            enrich: job.enrich_metrics(),
            workers: job.workers().unwrap_or(1),
            contexts: job.contexts().unwrap_or(1),
        })
    }

    /// Quiet sources: let event time follow the wall clock once nothing is
    /// pending.
    fn on_idle(&mut self, job: &mut Job) {
        // Nothing held back, and no turn still decoding (its events may be
        // behind the wall clock).
        if !self.pending.is_empty() || self.turn.is_some() {
            return;
        }
        if let Some(ts) = self.idle.due() {
            job.advance_watermark(ts, &mut self.outputs);
        }
    }

    fn write_outputs(&mut self, w: &mut dyn Write) -> io::Result<()> {
        match self.format {
            OutputFormat::Jsonl => {
                if self.outputs.is_empty() {
                    return Ok(());
                }
                let mut line = Vec::with_capacity(256);
                for o in &self.outputs {
                    line.clear();
                    write_json(&mut line, o);
                    line.push(b'\n');
                    w.write_all(&line)?;
                }
                self.outputs.clear();
                // Live outputs are visible at once, so a stop loses nothing
                // already produced.
                w.flush()
            }
            OutputFormat::Table => {
                self.kept.append(&mut self.outputs);
                Ok(())
            }
        }
    }
}

/// The `--dead-letter` file of bad payloads.
pub(crate) struct DeadLetters {
    pub(crate) path: PathBuf,
    file: BufWriter<std::fs::File>,
    /// Lines that could not be written (the payloads are still counted as
    /// skipped); the first failure is reported.
    pub(crate) failures: u64,
}

impl DeadLetters {
    /// Opens `path` for appending (several runs and restarts each add their lines).
    pub(crate) fn open(path: &Path) -> anyhow::Result<DeadLetters> {
        Ok(DeadLetters {
            path: path.to_path_buf(),
            file: BufWriter::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("cannot write `{}`", path.display()))?,
            ),
            failures: 0,
        })
    }

    /// Appends one line: the payload, where it came from, and why it was
    /// skipped (the last problem the job reported). A failing file (disk
    /// full) does not stop the run: the failure is reported once and counted.
    pub(crate) fn write(&mut self, place: &str, payload: &[u8], job: &Job) {
        let error = job
            .last_problem()
            .map_or_else(|| "skipped".to_string(), |p| p.message.clone());
        let line = serde_json::json!({
            "_error": error,
            "_place": place,
            "payload": String::from_utf8_lossy(payload),
        });
        if let Err(e) = writeln!(self.file, "{line}") {
            self.failed(&e);
        }
    }

    pub(crate) fn flush(&mut self) {
        if let Err(e) = self.file.flush() {
            self.failed(&e);
        }
    }

    fn failed(&mut self, e: &io::Error) {
        if self.failures == 0 {
            eprintln!(
                "warning: cannot write the dead-letter file `{}`: {e}; bad payloads are still \
                 counted and reported",
                self.path.display()
            );
        }
        self.failures += 1;
    }
}

/// A decoded item's parsed form, parsed again from its payload.
fn reparse(
    payload: &[u8],
    default_type: Option<&str>,
    item: u32,
) -> Result<RawEvent, (&'static str, String)> {
    payload_events(payload, default_type)
        .into_iter()
        .nth(item as usize)
        .unwrap_or_else(|| Err(missing_item()))
        .map_err(|m| ("malformed", m))
}

/// The message of an item its payload no longer yields (a host bug).
fn missing_item() -> String {
    "the item could not be parsed again from its payload".to_string()
}

/// The stand-in for an event's parsed form that was not kept (a trace span
/// then names no type).
fn unnamed() -> RawEvent {
    RawEvent {
        event_type: String::new(),
        fields: Vec::new(),
        timestamp: None,
    }
}

/// Splits a payload into events: one JSON object, an array of objects, or
/// JSON lines. Each item is decoded on its own, so one bad line costs only
/// itself.
pub fn payload_events(payload: &[u8], default_type: Option<&str>) -> Vec<Result<RawEvent, String>> {
    let text = match std::str::from_utf8(payload) {
        Ok(t) => t.trim(),
        Err(e) => return vec![Err(format!("the payload is not UTF-8: {e}"))],
    };
    let one = |t: &str| parse_json_event_or(t, default_type).map_err(|e| e.to_string());
    if text.starts_with('[') {
        return match serde_json::from_str::<Vec<&RawValue>>(text) {
            Ok(items) => items.into_iter().map(|r| one(r.get())).collect(),
            Err(e) => vec![Err(format!("invalid JSON array: {e}"))],
        };
    }
    if text.contains('\n') {
        return text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(one)
            .collect();
    }
    vec![one(text)]
}

/// The type payloads of `sub` get when they name none: the type of its
/// `.from` site, when all its sites read the same type.
pub(crate) fn default_type(program: &Program, sub: &Subscription) -> Option<String> {
    let first = sub.streams.first()?.1;
    if sub.streams.iter().any(|(_, t)| *t != first) {
        return None;
    }
    program
        .schemas
        .get(first as usize)
        .map(|s| s.name.to_string())
}

/// `Hot, Cold (Reading)`: the streams a subscription feeds.
pub(crate) fn fed_streams(program: &Program, sub: &Subscription) -> String {
    sub.streams
        .iter()
        .map(|(s, t)| {
            let stream = program.streams.get(*s as usize).map_or("?", |p| &p.name);
            let ty = program.schemas.get(*t as usize).map_or("?", |x| &x.name);
            format!("{stream} ({ty})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The largest `.watermark(out_of_order: d)` of the program, in ns.
pub(crate) fn max_out_of_order(program: &Program) -> i64 {
    program
        .streams
        .iter()
        .filter_map(|s| s.time.out_of_order)
        .max()
        .unwrap_or(0)
        .max(0)
}

/// Moves event time forward with the wall clock while sources are quiet.
///
/// After the last event (event time `t`, seen at wall instant `w`), once
/// `timeout` has passed the watermark may go to `t + (now − w) − out_of_order`:
/// the time an event arriving now would carry, minus the disorder the
/// program tolerates.
pub(crate) struct IdleClock {
    timeout: Option<Duration>,
    out_of_order: i64,
    last: Option<(i64, Instant)>,
}

impl IdleClock {
    pub(crate) fn new(timeout: Option<Duration>, out_of_order: i64) -> Self {
        IdleClock {
            timeout,
            out_of_order,
            last: None,
        }
    }

    pub(crate) fn saw(&mut self, time: i64) {
        let max = self.last.map_or(time, |(t, _)| t.max(time));
        self.last = Some((max, Instant::now()));
    }

    /// How long until [`IdleClock::due`] answers, if it does not yet.
    pub(crate) fn due_in(&self) -> Option<Duration> {
        let (_, at) = self.last?;
        self.timeout?.checked_sub(at.elapsed())
    }

    pub(crate) fn due(&self) -> Option<i64> {
        let timeout = self.timeout?;
        let (t, at) = self.last?;
        let quiet = at.elapsed();
        if quiet < timeout {
            return None;
        }
        let quiet_ns = i64::try_from(quiet.as_nanos()).unwrap_or(i64::MAX);
        Some(t.saturating_add(quiet_ns).saturating_sub(self.out_of_order))
    }
}

/// [`Live::due_in`]: with `holding` (events pending in the merge), the soonest a
/// source that still holds event time back goes quiet for `idle_timeout`; else
/// when the idle clock is due.
fn due_in(
    subs: &[SubState],
    holding: bool,
    idle_timeout: Option<Duration>,
    idle: &IdleClock,
) -> Option<Duration> {
    let timeout = idle_timeout?;
    if !holding {
        return idle.due_in();
    }
    subs.iter()
        .filter(|s| !(s.ended || (s.injected && s.max_time.is_none())))
        .filter_map(|s| timeout.checked_sub(s.last_arrival.elapsed()))
        .min()
}

/// Ctrl-C and SIGTERM set the returned flag; a second one exits at once.
fn install_interrupt_handler() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    ctrlc::set_handler(move || {
        if f.swap(true, Ordering::AcqRel) {
            eprintln!("interrupted twice: exiting without flushing");
            std::process::exit(130);
        }
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(payload: &str, default: Option<&str>) -> Vec<Result<String, String>> {
        payload_events(payload.as_bytes(), default)
            .into_iter()
            .map(|r| r.map(|e| e.event_type))
            .collect()
    }

    #[test]
    fn payloads_hold_an_object_an_array_or_lines() {
        assert_eq!(types(r#"{"type":"A"}"#, None), vec![Ok("A".into())]);
        assert_eq!(
            types(r#"[{"type":"A"},{"x":1}]"#, Some("R")),
            vec![Ok("A".into()), Ok("R".into())]
        );
        let lines = types("{\"type\":\"A\"}\n\n{oops\n{\"x\":1}\n", None);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], Ok("A".into()));
        assert!(lines[1]
            .as_ref()
            .is_err_and(|e| e.starts_with("invalid JSON")));
        assert!(lines[2].as_ref().is_err_and(|e| e.contains("event_type")));
    }

    fn compiled(text: &str) -> Program {
        crate::test_program(text)
    }

    /// JSON-lines payloads with bad items among the good ones.
    fn payloads(n: usize) -> Vec<decode::Payload> {
        (0..n)
            .map(|i| {
                let text = match i % 5 {
                    0 => format!("{{\"type\":\"A\",\"v\":{i},\"timestamp\":{i}}}\n{{\"type\":\"A\",\"v\":\"x\"}}"),
                    1 => "{broken".to_string(),
                    2 => format!("[{{\"type\":\"Ghost\"}}, {{\"v\":{i}}}]"),
                    3 => format!("{{\"type\":\"A\",\"v\":{i},\"timestamp\":99999999999999}}"),
                    _ => format!("{{\"v\":{i}}}"),
                };
                decode::Payload {
                    bytes: text.into_bytes().into(),
                    default_type: Some("A".into()),
                    arrival: 1_000_000_000,
                    keep_raw: i % 7 == 0,
                }
            })
            .collect()
    }

    #[test]
    fn decoding_threads_give_every_payload_its_items_in_order() {
        let program = compiled("event A:\n    v: int\n\nstream S = A\n    .emit(v: v)\n");
        let decoder = varpulis_program::EventDecoder::new(&program);
        let skew = Some(60_000_000_000);
        // Over the bytes a turn keeps to the loop's thread, so the threads take parts.
        let all = payloads(2_000);
        let expected: Vec<String> = all
            .iter()
            .map(|p| format!("{:?}", decode::items(p, skew, Some(&decoder))))
            .collect();
        for threads in [0, 1, 3] {
            let decoders =
                decode::Decoders::start(varpulis_program::EventDecoder::new(&program), threads)
                    .expect("threads start");
            for turn in [&all[..], &all[..1], &all[..40]] {
                let got: Vec<String> = decoders
                    .decode(turn.to_vec(), skew)
                    .iter()
                    .map(|items| format!("{items:?}"))
                    .collect();
                assert!(got == expected[..turn.len()], "{threads} threads");
            }
        }
    }

    #[test]
    fn a_hot_update_parses_held_back_items_again_for_the_new_program() {
        let old = compiled("event A:\n    v: int\n\nstream S = A\n    .emit(v: v)\n");
        // The new program declares another type first: A's schema id changes.
        let new = compiled(
            "event B:\n    w: str\n\nevent A:\n    v: int\n\nstream S = A\n    .emit(v: v)\n\nstream T = B\n    .emit(w: w)\n",
        );
        let options = LiveOptions {
            output: None,
            format: OutputFormat::Jsonl,
            idle_timeout: Some(Duration::from_secs(3600)),
            queue_capacity: 1,
            base_dir: PathBuf::from("."),
            dead_letter: None,
            metrics: None,
            state_dir: None,
            checkpoint_interval: Duration::from_secs(1),
            checkpoint_timeout: Duration::from_secs(1),
            max_future_skew: None,
            carry_state: false,
            program: PathBuf::from("t.vpl"),
            otlp: None,
        };
        let mut live = Live::new(&old, &[], &[], &[], &options, None);
        live.decoders = Some(
            decode::Decoders::start(varpulis_program::EventDecoder::new(&old), 1)
                .expect("threads start"),
        );
        let message = |payload: &str| {
            SourceEvent::Message(SourceMessage {
                source: 0,
                payload: payload.as_bytes().to_vec(),
                place: "here".into(),
                received_ms: 1,
                received: Instant::now(),
                position: None,
                trace_parent: None,
            })
        };
        live.take_turn(vec![
            message("{\"type\":\"A\",\"v\":1,\"timestamp\":5}\n{\"type\":\"A\",\"v\":2,\"timestamp\":6}"),
            message("{broken"),
        ]);
        let decoded = |live: &Live| {
            live.pending
                .iter()
                .filter(|p| matches!(p.0.raw, Ok(decode::Body::Decoded { .. })))
                .count()
        };
        assert_eq!((live.pending.len(), decoded(&live)), (3, 2));
        live.reprogram(&new);
        assert_eq!(
            decoded(&live),
            0,
            "nothing decoded by the old program is left"
        );
        let mut values: Vec<(i64, String)> = live
            .pending
            .iter()
            .map(|p| match &p.0.raw {
                Ok(decode::Body::Raw(raw)) => {
                    (p.0.time, format!("{} {:?}", raw.event_type, raw.fields))
                }
                other => (p.0.time, format!("{other:?}")),
            })
            .collect();
        values.sort();
        assert!(
            values[0].1.starts_with("A ") && values[0].1.contains("Int(1)"),
            "{values:?}"
        );
        assert!(
            values[1].1.starts_with("A ") && values[1].1.contains("Int(2)"),
            "{values:?}"
        );
        assert!(
            values.iter().any(|(_, v)| v.contains("malformed")),
            "{values:?}"
        );
    }

    #[test]
    fn idle_clock_follows_the_wall_clock_after_the_timeout() {
        let mut c = IdleClock::new(Some(Duration::ZERO), 1_000);
        assert_eq!(c.due(), None, "nothing seen yet");
        c.saw(5_000_000);
        c.saw(4_000_000);
        let due = c.due().expect("timeout zero is due at once");
        assert!(due >= 5_000_000 - 1_000, "{due}");
        let never = IdleClock::new(None, 0);
        assert_eq!(never.due(), None);
    }

    fn sub(quiet_for: Duration, ended: bool, injected: bool, max_time: Option<i64>) -> SubState {
        // A monotonic clock may start at boot: stay a few seconds back at most.
        let now = Instant::now();
        SubState {
            name: "S".into(),
            default_type: None,
            ended,
            max_time,
            last_arrival: now.checked_sub(quiet_for).unwrap_or(now),
            received_end: BTreeMap::new(),
            last_stream: None,
            injected,
        }
    }

    #[test]
    fn held_events_wake_the_loop_when_the_quiet_source_times_out_not_at_the_next_tick() {
        let hour = Duration::from_secs(3600);
        let idle = IdleClock::new(Some(hour), 0);
        // Source 1 has been quiet for 10 s: it stops holding the events of source 0 back
        // in 59 min 50 s, far beyond any tick; source 0 has just spoken.
        let subs = [
            sub(Duration::ZERO, false, false, Some(1)),
            sub(Duration::from_secs(10), false, false, Some(2)),
        ];
        let due = due_in(&subs, true, Some(hour), &idle).expect("a source holds back");
        assert!(due <= hour - Duration::from_secs(10), "{due:?}");
        assert!(due > hour - Duration::from_secs(20), "{due:?}");
        // Ended sources, sources already quiet past the timeout and an injector that never
        // injected hold nothing back: nothing falls due before new input.
        let five = Duration::from_secs(5);
        let none = [
            sub(Duration::ZERO, true, false, Some(1)),
            sub(Duration::from_secs(10), false, false, Some(2)),
            sub(Duration::ZERO, false, true, None),
        ];
        assert_eq!(due_in(&none, true, Some(five), &idle), None);
        // Without the event-time merge nothing is held back.
        assert_eq!(due_in(&subs, true, None, &idle), None);
    }

    #[test]
    fn the_idle_clock_wakes_the_loop_when_it_falls_due() {
        let minute = Duration::from_secs(60);
        let mut idle = IdleClock::new(Some(minute), 0);
        assert_eq!(
            idle.due_in(),
            None,
            "nothing seen yet: the clock does not run"
        );
        idle.saw(1);
        let due = due_in(&[], false, Some(minute), &idle).expect("the clock runs");
        assert!(due <= minute && due > minute / 2, "{due:?}");
        // Once due, the clock moves the watermark at every turn: no earlier wake-up.
        let mut due_now = IdleClock::new(Some(Duration::ZERO), 0);
        due_now.saw(1);
        std::thread::sleep(Duration::from_millis(1));
        assert_eq!(due_now.due_in(), None);
        assert!(due_now.due().is_some());
    }
}

//! One deployed pipeline: a VPL program with its connectors and state, run as a live run on a
//! thread of its own, with its status, its output tail and an injector for API events.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use varpulis_program::Program;

use crate::job::{Job, JobOptions};
use crate::live::{Control, Host, Injector, LiveOptions, Observation, Update};

/// Recent problems kept per pipeline for the status API.
const RECENT: usize = 20;

/// Lines waiting for one tail subscriber; a slower reader loses lines (counted).
pub const TAIL_BUFFER: usize = 1024;

/// Where a pipeline is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Restoring state, opening connectors.
    Starting,
    /// Sources up, events flowing.
    Running,
    /// It could not start or it stopped on an error.
    Failed(String),
    /// Stopped on request.
    Stopped,
}

impl State {
    /// `starting`, `running`, `failed` or `stopped`.
    pub fn name(&self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Failed(_) => "failed",
            State::Stopped => "stopped",
        }
    }
}

/// What the status API and `/metrics` show of a pipeline, refreshed by the run.
#[derive(Debug, Clone)]
pub struct Status {
    /// Where it is in its life.
    pub state: State,
    /// The latest status document (`GET /api/v1/pipelines/{name}` without the envelope).
    pub detail: Value,
    /// The latest Prometheus text of the run (without the `pipeline` label).
    pub metrics: String,
    /// Outputs per stream at the previous observation, for rates.
    previous: Option<(Instant, Vec<u64>)>,
}

/// A subscriber of one stream's outputs.
struct Tail {
    stream: String,
    lines: tokio::sync::mpsc::Sender<String>,
}

/// What the run's thread and the API share.
pub struct Shared {
    status: Mutex<Status>,
    injector: Mutex<Option<Injector>>,
    tails: Mutex<Vec<Tail>>,
    recent: Mutex<VecDeque<String>>,
    /// Tail lines lost to slow readers.
    pub tail_dropped: std::sync::atomic::AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a thread panicked while holding it; the data is still the
    // last consistent status.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// The current status.
    pub fn status(&self) -> Status {
        lock(&self.status).clone()
    }

    fn set_state(&self, state: State) {
        lock(&self.status).state = state;
    }

    /// The injector, once the sources are up.
    pub fn injector(&self) -> Option<Injector> {
        lock(&self.injector).clone()
    }

    /// Subscribes to the outputs of `stream`.
    pub fn tail(&self, stream: &str) -> tokio::sync::mpsc::Receiver<String> {
        let (tx, rx) = tokio::sync::mpsc::channel(TAIL_BUFFER);
        lock(&self.tails).push(Tail {
            stream: stream.to_string(),
            lines: tx,
        });
        rx
    }

    /// Problems reported recently, oldest first.
    pub fn recent(&self) -> Vec<String> {
        lock(&self.recent).iter().cloned().collect()
    }

    fn remember(&self, line: &str) {
        let mut recent = lock(&self.recent);
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(line.to_string());
    }

    fn publish_line(&self, line: &str) {
        let mut tails = lock(&self.tails);
        if tails.is_empty() {
            return;
        }
        let Some(stream) = output_stream(line) else {
            return;
        };
        tails.retain(|t| !t.lines.is_closed());
        for t in tails.iter().filter(|t| t.stream == stream) {
            if t.lines.try_send(line.to_string()).is_err() {
                self.tail_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The stream of an output line (`{"stream":"Hot",...}`).
fn output_stream(line: &str) -> Option<String> {
    let rest = line.strip_prefix("{\"stream\":")?;
    let value: Value = serde_json::Deserializer::from_str(rest)
        .into_iter::<Value>()
        .next()?
        .ok()?;
    value.as_str().map(str::to_string)
}

/// A deployed pipeline.
pub struct Pipeline {
    /// Its name (also its directory under the state directory).
    pub name: String,
    /// Its program text.
    pub source: String,
    /// Its connector settings (`{"NAME": {"param": value}}`), if any.
    pub connectors: Option<Value>,
    /// Its `workers` setting, if its deployment gave one.
    pub workers: Option<usize>,
    /// The engine workers its run has (its setting, else the program's
    /// `.concurrent(workers: N)`; `None`: one engine).
    pub running_workers: Option<usize>,
    /// The engine threads its contexts run on (1: one engine for every context).
    pub running_contexts: usize,
    /// When it was deployed.
    pub deployed_at: SystemTime,
    /// When this run of it started.
    pub started: Instant,
    /// Its streams, in program order.
    pub streams: Vec<String>,
    /// Shared with its run.
    pub shared: Arc<Shared>,
    /// The program it runs (`None` when it failed before compiling).
    pub program: Option<Program>,
    /// Requests to its run (hot updates).
    control: Option<crossbeam_channel::Sender<Control>>,
    /// How its run was set up.
    settings: Option<RunSettings>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Settings every pipeline of a server shares.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Its state directory (checkpoints).
    pub state_dir: PathBuf,
    /// Time between checkpoints.
    pub checkpoint_interval: Duration,
    /// How long a checkpoint waits for the sinks.
    pub checkpoint_timeout: Duration,
    /// How far ahead of its arrival an event's timestamp may be.
    pub max_future_skew: Option<Duration>,
    /// Quiet time after which event time follows the wall clock.
    pub idle_timeout: Option<Duration>,
    /// Directory relative connector paths resolve against.
    pub base_dir: PathBuf,
}

impl Pipeline {
    /// Starts running `program` on a thread. Problems after this point (a connector that
    /// cannot start, a checkpoint of another program) mark it failed with the reason.
    pub fn start(
        name: &str,
        source: String,
        deployed_at: SystemTime,
        program: Program,
        workers: Option<usize>,
        settings: RunSettings,
    ) -> Pipeline {
        let running_workers = super::effective_workers(&program, workers);
        let partitioned = crate::groups::is_partitioned(&program);
        let running_contexts = match (running_workers, crate::contexts::plan(&program)) {
            // Each partition's job is one engine.
            _ if partitioned => 1,
            (None, crate::contexts::Layout::Threads(lanes)) => lanes.len(),
            _ => 1,
        };
        let streams: Vec<String> = program.streams.iter().map(|s| s.name.to_string()).collect();
        let shared = Arc::new(Shared {
            status: Mutex::new(Status {
                state: State::Starting,
                detail: json!({}),
                metrics: String::new(),
                previous: None,
            }),
            injector: Mutex::new(None),
            tails: Mutex::new(Vec::new()),
            recent: Mutex::new(VecDeque::new()),
            tail_dropped: std::sync::atomic::AtomicU64::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let run_shared = shared.clone();
        let run_stop = stop.clone();
        let run_name = name.to_string();
        let kept = program.clone();
        let run_settings = settings.clone();
        let (control, requests) = crossbeam_channel::bounded(4);
        let thread = std::thread::Builder::new()
            .name(format!("pipeline-{name}"))
            .spawn(move || {
                run(
                    &run_name,
                    program,
                    running_workers,
                    run_settings,
                    run_shared,
                    run_stop,
                    requests,
                )
            });
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                shared.set_state(State::Failed(format!("cannot start its thread: {e}")));
                None
            }
        };
        Pipeline {
            name: name.to_string(),
            source,
            connectors: None,
            workers,
            running_workers,
            running_contexts,
            deployed_at,
            started: Instant::now(),
            streams,
            shared,
            program: Some(kept),
            control: Some(control),
            settings: Some(settings),
            stop,
            thread,
        }
    }

    /// Hot update: `program` takes over inside the running run, whose sources keep going
    /// (see [`crate::live::Update`]). `Err` when the run is not running, its sources or its
    /// number of engine workers (`workers`) differ from the new program's, or the switch
    /// failed; the old program then still runs.
    pub fn update(
        &self,
        program: Program,
        workers: Option<usize>,
    ) -> Result<varpulis_vm::StateReport, UpdateRefused> {
        let (Some(control), Some(settings)) = (&self.control, &self.settings) else {
            return Err(UpdateRefused::NotRunning);
        };
        if self.shared.status().state != State::Running {
            return Err(UpdateRefused::NotRunning);
        }
        let partitioned = |p: &Program| crate::groups::is_partitioned(p);
        if self.program.as_ref().is_some_and(partitioned) || partitioned(&program) {
            return Err(UpdateRefused::Restart(PARTITIONED_UPDATE.to_string()));
        }
        if let Some(why) = self
            .program
            .as_ref()
            .and_then(|old| crate::live::sources_differ(old, &program))
        {
            return Err(UpdateRefused::Restart(why));
        }
        if workers != self.running_workers {
            let count = |w: Option<usize>| match w {
                Some(n) => format!("{n} workers"),
                None => "one engine".to_string(),
            };
            return Err(UpdateRefused::Restart(format!(
                "the pipeline changes from {} to {}, which restarts it; the state of the old \
                 workers is split by key and is not kept",
                count(self.running_workers),
                count(workers)
            )));
        }
        let (reply, outcome) = crossbeam_channel::bounded(1);
        let claimed = Arc::new(AtomicBool::new(false));
        let update = Update {
            program,
            job_options: job_options(settings),
            reply,
            claimed: claimed.clone(),
        };
        if control.try_send(Control::Update(update)).is_err() {
            return Err(UpdateRefused::Busy);
        }
        // The run looks at its requests between batches, so it takes the update at once
        // unless a checkpoint holds it up.
        let wait = settings.checkpoint_timeout + Duration::from_secs(10);
        match outcome.recv_timeout(wait) {
            Ok(result) => result.map_err(UpdateRefused::Failed),
            Err(_) if !claimed.swap(true, Ordering::AcqRel) => Err(UpdateRefused::Busy),
            // The run has it: the switch is bounded by the checkpoint timeout.
            Err(_) => match outcome.recv() {
                Ok(result) => result.map_err(UpdateRefused::Failed),
                Err(_) => Err(UpdateRefused::NotRunning),
            },
        }
    }

    /// A pipeline that cannot run (its stored program no longer compiles), kept so the API
    /// shows it with its reason.
    pub fn failed(name: &str, source: String, deployed_at: SystemTime, reason: String) -> Pipeline {
        let shared = Arc::new(Shared {
            status: Mutex::new(Status {
                state: State::Failed(reason),
                detail: json!({}),
                metrics: String::new(),
                previous: None,
            }),
            injector: Mutex::new(None),
            tails: Mutex::new(Vec::new()),
            recent: Mutex::new(VecDeque::new()),
            tail_dropped: std::sync::atomic::AtomicU64::new(0),
        });
        Pipeline {
            name: name.to_string(),
            source,
            connectors: None,
            workers: None,
            running_workers: None,
            running_contexts: 1,
            deployed_at,
            started: Instant::now(),
            streams: Vec::new(),
            shared,
            program: None,
            control: None,
            settings: None,
            stop: Arc::new(AtomicBool::new(true)),
            thread: None,
        }
    }

    /// Stops the run (sources stopped, delivered events run, a final checkpoint, sinks
    /// flushed) and waits for it.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Why a hot update did not happen in place.
#[derive(Debug)]
pub enum UpdateRefused {
    /// The pipeline is not running (starting, failed or stopped).
    NotRunning,
    /// The new program reads other sources or runs on another number of workers: the
    /// pipeline restarts instead.
    Restart(String),
    /// The run did not take the update in time (a slow checkpoint); nothing changed.
    Busy,
    /// The switch failed (a sink could not confirm its records or open); nothing changed.
    Failed(String),
}

/// Why a pipeline with per-partition state restarts on an update instead of switching in
/// place.
pub const PARTITIONED_UPDATE: &str = "the pipeline keeps its state per Kafka partition \
    (`state_per_partition: true`): an update restarts it; it checkpoints every partition it \
    owns and leaves the group, and the new program restores each partition's checkpoint \
    (streams whose definition did not change keep their state) when the group assigns it";

/// How a pipeline's jobs run.
fn job_options(settings: &RunSettings) -> JobOptions {
    JobOptions {
        sink_dir: settings.base_dir.clone(),
        enrich: crate::enrich::EnrichMode::Live { record: None },
        ..JobOptions::default()
    }
}

fn run(
    name: &str,
    program: Program,
    workers: Option<usize>,
    settings: RunSettings,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    requests: crossbeam_channel::Receiver<Control>,
) {
    let partitioned = crate::groups::is_partitioned(&program);
    let job = Job::new(program, job_options(&settings)).and_then(|mut job| {
        if partitioned {
            // Each assigned partition gets a job of its own (src/groups.rs); this one only
            // carries the program, and a worker count above 1 is refused there.
            if workers.is_some_and(|n| n > 1) {
                anyhow::bail!(
                    "per-partition state (`state_per_partition: true`): more than 1 worker is \
                     not supported with it: the partitions already split the work; run more \
                     servers in the group instead"
                );
            }
        } else if let Some(n) = workers {
            let plan = crate::contexts::plan(job.program());
            if let (true, crate::contexts::Layout::Threads(lanes)) = (n > 1, plan) {
                // Each worker runs every context's streams, as on the command line.
                eprintln!(
                    "[{name}] note: the program's {} contexts run inside each of the {n} \
                     workers, not on threads of their own (`cores` is not used)",
                    lanes.len()
                );
            }
            job.start_workers(n)?;
        } else if let crate::contexts::Layout::Threads(lanes) = crate::contexts::plan(job.program())
        {
            // One engine thread per context, as for `varpulis run` (docs/RUNTIME.md,
            // "Contexts"); a core that cannot be had is a warning, kept for the status API.
            let names: Vec<String> = lanes.iter().map(|l| l.name.clone()).collect();
            eprintln!(
                "[{name}] note: {} contexts run on their own engine threads: {}",
                names.len(),
                names.join(", ")
            );
            for warning in job.start_contexts(lanes)? {
                eprintln!("[{name}] {warning}");
                shared.remember(&warning);
            }
        }
        Ok(job)
    });
    let job = match job {
        Ok(job) => job,
        Err(e) => {
            shared.set_state(State::Failed(format!("{e:#}")));
            return;
        }
    };
    let options = LiveOptions {
        output: None,
        format: crate::cli::simulate::OutputFormat::Jsonl,
        idle_timeout: settings.idle_timeout,
        queue_capacity: 10_000,
        base_dir: settings.base_dir.clone(),
        dead_letter: None,
        metrics: None,
        state_dir: Some(settings.state_dir.clone()),
        checkpoint_interval: settings.checkpoint_interval,
        checkpoint_timeout: settings.checkpoint_timeout,
        carry_state: true,
        max_future_skew: settings.max_future_skew,
        program: PathBuf::from(format!("{name}.vpl")),
        otlp: None,
    };
    let observed = shared.clone();
    let injected = shared.clone();
    let host = Host {
        stop,
        log: Box::new(LogLines {
            name: name.to_string(),
            shared: shared.clone(),
            partial: Vec::new(),
        }),
        outputs: Some(Box::new(OutputLines {
            shared: shared.clone(),
            partial: Vec::new(),
        })),
        observer: Some(Box::new(move |o: &Observation<'_>| observe(&observed, o))),
        on_running: Some(Box::new(move |injector: Injector| {
            *lock(&injected.injector) = Some(injector);
            injected.set_state(State::Running);
        })),
        control: Some(requests),
    };
    let result = if partitioned {
        let reported = shared.clone();
        let observer: crate::groups::GroupObserver =
            Box::new(move |r: &crate::groups::GroupReport| observe_group(&reported, r));
        crate::groups::run_observed(job, &options, host, Some(observer))
    } else {
        crate::live::run_hosted(job, &options, host)
    };
    *lock(&shared.injector) = None;
    let state = match result {
        Ok(code) if code == ExitCode::SUCCESS => State::Stopped,
        Ok(_) => State::Failed(
            shared
                .recent()
                .into_iter()
                .rev()
                .find(|l| l.starts_with("error"))
                .unwrap_or_else(|| "the run failed".to_string()),
        ),
        Err(e) => State::Failed(format!("{e:#}")),
    };
    shared.set_state(state);
}

/// Turns an observation into the status document and the metrics text.
fn observe(shared: &Shared, o: &Observation<'_>) {
    let s = &o.snapshot;
    let now = Instant::now();
    let out: Vec<u64> = s.engine.out_per_stream.clone();
    let mut status = lock(&shared.status);
    let rates: Vec<f64> = match &status.previous {
        Some((then, before)) => {
            let secs = now.duration_since(*then).as_secs_f64().max(1e-3);
            out.iter()
                .enumerate()
                .map(|(i, n)| n.saturating_sub(before.get(i).copied().unwrap_or(0)) as f64 / secs)
                .collect()
        }
        None => vec![0.0; out.len()],
    };
    let streams: Vec<Value> = s
        .streams
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let ms = |q: f64| {
                s.latency
                    .get(i)
                    .and_then(|h| h.quantile(q))
                    .map(|secs| (secs * 1_000_000.0).round() / 1000.0)
            };
            let state = s.memory.iter().find(|m| &*m.stream == *name);
            json!({
                "name": name,
                "events_out": out.get(i).copied().unwrap_or(0),
                "state": {
                    "bytes": state.map_or(0, varpulis_vm::memory::StreamMemory::bytes),
                    "keys": state.map_or(0, varpulis_vm::memory::StreamMemory::keys),
                    "open_runs": state.map_or(0, varpulis_vm::memory::StreamMemory::runs),
                },
                "rate": (rates.get(i).copied().unwrap_or(0.0) * 10.0).round() / 10.0,
                "late": s.engine.late_per_stream.get(i).copied().unwrap_or(0),
                "runtime_errors": s.engine.errors_per_stream.get(i).copied().unwrap_or(0),
                "latency_ms": { "p50": ms(0.5), "p99": ms(0.99), "p999": ms(0.999) },
            })
        })
        .collect();
    let sources: Vec<Value> = o
        .sources
        .iter()
        .zip(&s.sources)
        .map(|((name, description, ended), (_, m))| {
            json!({
                "connector": name,
                "description": varpulis_connectors::redact::redact(description),
                "received": m.received,
                "rejected": m.rejected,
                "errors": m.errors,
                "lag": m.lag,
                "ended": ended,
            })
        })
        .collect();
    let sinks: Vec<Value> = s
        .sinks
        .iter()
        .map(|(name, m)| json!({ "connector": name, "sent": m.sent, "dead_lettered": m.dead_lettered, "dropped": m.dropped, "queue_depth": m.queue_depth }))
        .collect();
    status.detail = json!({
        "events_in": s.engine.events_in,
        "late": s.engine.late,
        "runtime_errors": s.engine.runtime_errors,
        "watermark": s.watermark.map(varpulis_program::time::format_rfc3339),
        "pending": s.pending,
        "sources": sources,
        "sinks": sinks,
        "streams": streams,
        "checkpoints": {
            "written": s.checkpoints.map_or(0, |c| c.0),
            "failed": s.checkpoints.map_or(0, |c| c.1),
            "consecutive_failures": o.consecutive_checkpoint_failures,
            "last": o.last_checkpoint.map(|t| {
                let ns = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
                varpulis_program::time::format_rfc3339(i64::try_from(ns).unwrap_or(i64::MAX))
            }),
            "failures": o.checkpoint_failures.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        },
    });
    status.metrics = crate::metrics::render(s);
    status.metrics.push_str(&o.checkpoint_metrics);
    status.previous = Some((now, out));
}

/// Turns a per-partition run's report into the status document and the metrics text; the
/// first report (its source is up) makes the pipeline running.
fn observe_group(shared: &Shared, r: &crate::groups::GroupReport) {
    let mut status = lock(&shared.status);
    if status.state == State::Starting {
        status.state = State::Running;
    }
    let now = Instant::now();
    let out: Vec<u64> = r.streams.iter().map(|(_, n)| *n).collect();
    let streams: Vec<Value> = r
        .streams
        .iter()
        .enumerate()
        .map(|(i, (name, n))| {
            let rate = match &status.previous {
                Some((then, before)) => {
                    let secs = now.duration_since(*then).as_secs_f64().max(1e-3);
                    n.saturating_sub(before.get(i).copied().unwrap_or(0)) as f64 / secs
                }
                None => 0.0,
            };
            json!({ "name": name, "events_out": n, "rate": (rate * 10.0).round() / 10.0 })
        })
        .collect();
    status.detail = json!({
        "streams": streams,
        "events_in": r.events,
        "records_in": r.records,
        "events_out": r.outputs,
        "partitions": {
            "owned": r.owned,
            "member": r.member,
            "rebalances": r.rebalances,
            "restores": r.restores,
            "fenced": r.fenced,
            "unowned_records": r.unowned,
        },
        "sources": [{
            "connector": r.connector,
            "description": varpulis_connectors::redact::redact(&r.description),
            "received": r.source.received,
            "rejected": r.source.rejected,
            "errors": r.source.errors,
            "lag": r.source.lag,
            "ended": false,
        }],
        "checkpoints": {
            "written": r.checkpoints,
            "failed": r.checkpoint_failures,
            "consecutive_failures": r.consecutive_failures,
        },
    });
    status.metrics = r.metrics.clone();
    status.previous = Some((now, out));
}

/// The run's log: each line goes to the server's stderr, prefixed with the pipeline, and
/// problems are kept for the status API.
struct LogLines {
    name: String,
    shared: Arc<Shared>,
    partial: Vec<u8>,
}

impl Write for LogLines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.partial.extend_from_slice(buf);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            eprintln!("[{}] {text}", self.name);
            if text.starts_with("error") || text.starts_with("warning") {
                self.shared.remember(&text);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The run's outputs: each line goes to the tails of its stream.
struct OutputLines {
    shared: Arc<Shared>,
    partial: Vec<u8>,
}

impl Write for OutputLines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.partial.extend_from_slice(buf);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            self.shared.publish_line(&text);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::output_stream;

    #[test]
    fn output_lines_name_their_stream() {
        assert_eq!(
            output_stream(r#"{"stream":"Hot","event_type":"Hot","x":1}"#),
            Some("Hot".into())
        );
        assert_eq!(
            output_stream(r#"{"stream":"a\"b","x":1}"#),
            Some("a\"b".into())
        );
        assert_eq!(output_stream("junk"), None);
    }
}

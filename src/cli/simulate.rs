//! `varpulis simulate PROGRAM EVENTS`: replay an event file through a program
//! on a virtual clock, and `varpulis run PROGRAM --input ... --output ...`:
//! the same engine over JSON lines from a file or stdin.
//!
//! stdout carries outputs only (a table per stream, or one JSON object per
//! line with `--format jsonl`); summaries, warnings, `.print` and `.log`
//! lines go to stderr.

use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use varpulis_vm::Output;

use crate::input::{InputFormat, InputRecord, Line, Records};
use crate::job::{compile, Job, JobOptions};
use crate::output::{write_json, write_tables};

/// How outputs are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// Tables per stream after the run.
    Table,
    /// One JSON object per output line, as produced.
    Jsonl,
}

/// How fast events are replayed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// As fast as possible (the default).
    Fast,
    /// Event-time gaps are waited out, divided by the factor.
    Speed(f64),
}

/// Everything `simulate` and `run` need.
#[derive(Clone, Debug)]
pub struct RunArgs {
    /// The program file.
    pub program: PathBuf,
    /// The input file, or `-` for stdin; `None` (only `run`): the program's
    /// connector sources when it declares some, else stdin.
    pub input: Option<PathBuf>,
    /// Settings of a run over connector sources.
    pub live: LiveSettings,
    /// Where outputs go: `None` or `-` = stdout.
    pub output: Option<PathBuf>,
    /// Output format.
    pub format: OutputFormat,
    /// Replay pace.
    pub pace: Pace,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Colour diagnostics.
    pub color: bool,
    /// `--workers N`: run partition-parallel on N engine shards
    /// ([`crate::parallel`]); `None`: the program's `.concurrent(workers:)`,
    /// else one engine in arrival order.
    pub workers: Option<usize>,
    /// Host options (strictness, final flush, sinks).
    pub job: JobOptions,
}

/// `run` flags that only matter with connector sources.
#[derive(Clone, Debug)]
pub struct LiveSettings {
    /// Quiet time after which event time follows the wall clock (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Where bad payloads are written, if anywhere.
    pub dead_letter: Option<PathBuf>,
    /// The Prometheus endpoint, if any.
    pub metrics: Option<crate::metrics::MetricsListen>,
    /// Per-environment connector settings (`run --config`), if any.
    pub connectors_config: Option<PathBuf>,
    /// `run --max-keys`: the key bound of partitions that declare none.
    pub max_keys: Option<u64>,
    /// How far ahead of its arrival an event's timestamp may be.
    pub max_future_skew: Option<Duration>,
    /// Where checkpoints go, if anywhere.
    pub state_dir: Option<PathBuf>,
    /// Time between checkpoints.
    pub checkpoint_interval: Duration,
    /// How long a checkpoint waits for the sinks.
    pub checkpoint_timeout: Duration,
    /// Where traces are exported (OTLP/HTTP, `URL/v1/traces`), if anywhere.
    pub otlp: Option<crate::trace::ExportConfig>,
}

impl Default for LiveSettings {
    fn default() -> Self {
        LiveSettings {
            idle_timeout: Some(Duration::from_secs(1)),
            dead_letter: None,
            metrics: None,
            connectors_config: None,
            max_keys: None,
            max_future_skew: Some(Duration::from_secs(3600)),
            state_dir: None,
            checkpoint_interval: Duration::from_secs(10),
            checkpoint_timeout: Duration::from_secs(10),
            otlp: None,
        }
    }
}

/// Runs the program over the input; exit 1 on program errors or, with
/// `--strict`, on bad input.
pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let (mut program, warnings) = match compile(&args.program, args.color)? {
        Ok(ok) => ok,
        Err(rendered) => {
            eprint!("{rendered}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Some(path) = &args.live.connectors_config {
        crate::overrides::apply_file(&mut program, path)?;
    }
    if let Some(n) = args.live.max_keys {
        crate::limits::default_max_keys(&mut program, n);
    }
    if !warnings.is_empty() {
        eprint!("{warnings}");
    }
    let workers = args.workers.or(program.workers.map(|n| n as usize));
    let live = args.input.is_none() && crate::live::has_sources(&program);
    if let Some(n) = workers {
        if n == 0 || n > crate::parallel::MAX_WORKERS {
            eprintln!(
                "error: --workers must be between 1 and {}, got {n}",
                crate::parallel::MAX_WORKERS
            );
            return Ok(ExitCode::from(2));
        }
    }
    // Context threads, unless --workers asks for shards (N > 1: each shard runs
    // every context's streams; N = 1: one engine).
    let contexts = match crate::contexts::plan(&program) {
        crate::contexts::Layout::Threads(lanes) => match workers {
            Some(n) if n > 1 => {
                eprintln!(
                    "note: the program's {} contexts run inside each of the {n} workers, not on \
                     threads of their own (`cores` is not used); drop --workers (and \
                     `.concurrent`) to run them on their own threads",
                    lanes.len()
                );
                None
            }
            Some(_) => None,
            None => {
                let names: Vec<&str> = lanes.iter().map(|l| l.name.as_str()).collect();
                eprintln!(
                    "note: {} contexts run on their own engine threads: {}",
                    lanes.len(),
                    names.join(", ")
                );
                Some(lanes)
            }
        },
        crate::contexts::Layout::One { why: Some(why) } => {
            eprintln!("note: {why}");
            None
        }
        crate::contexts::Layout::One { why: None } => None,
    };
    if live {
        // Relative connector paths resolve against the working directory,
        // as for sinks (DESIGN.md, Connector sources).
        let base_dir = args.job.sink_dir.clone();
        let mut job = Job::new(program, args.job.clone())?;
        if let Some(n) = workers {
            if let Err(e) = job.start_workers(n) {
                eprintln!("error: {e:#}");
                return Ok(ExitCode::from(2));
            }
        } else if let Some(lanes) = contexts {
            for warning in job.start_contexts(lanes)? {
                eprintln!("{warning}");
            }
        }
        let options = crate::live::LiveOptions {
            output: args.output.clone(),
            format: args.format,
            idle_timeout: args.live.idle_timeout,
            queue_capacity: 10_000,
            base_dir,
            dead_letter: args.live.dead_letter.clone(),
            metrics: args.live.metrics.clone(),
            state_dir: args.live.state_dir.clone(),
            checkpoint_interval: args.live.checkpoint_interval,
            checkpoint_timeout: args.live.checkpoint_timeout,
            carry_state: false,
            max_future_skew: args.live.max_future_skew,
            program: args.program.clone(),
            otlp: args.live.otlp.clone(),
        };
        return crate::live::run(job, &options);
    }
    if args.live.state_dir.is_some() {
        eprintln!(
            "error: --state-dir checkpoints runs over connector sources; this run reads {}",
            if args.input.is_some() {
                "--input"
            } else {
                "stdin (the program declares no connector sources)"
            }
        );
        return Ok(ExitCode::from(2));
    }
    let input = args.input.clone().unwrap_or_else(|| PathBuf::from("-"));
    for note in connector_source_notes(&program) {
        eprintln!("{note}");
    }
    if let Some(lanes) = contexts {
        return run_parallel(args, program, &input, Pipeline::Contexts(lanes));
    }
    if let Some(n) = workers {
        return run_parallel(args, program, &input, Pipeline::Workers(n));
    }
    let mut job = Job::new(program, args.job.clone())?;

    let stdin_input = input.as_os_str() == "-";
    let (reader, total): (Box<dyn BufRead>, Option<u64>) = if stdin_input {
        (Box::new(BufReader::new(io::stdin().lock())), None)
    } else {
        let file = std::fs::File::open(&input)
            .with_context(|| format!("cannot read `{}`", input.display()))?;
        let len = file.metadata().ok().map(|m| m.len());
        (Box::new(BufReader::with_capacity(1 << 16, file)), len)
    };
    let format = if stdin_input {
        InputFormat::Jsonl
    } else {
        InputFormat::for_path(&input)
    };
    let mut records = Records::new(reader, format);

    let mut sink: Box<dyn Write> = match &args.output {
        Some(p) if p.as_os_str() != "-" => Box::new(BufWriter::with_capacity(
            1 << 16,
            std::fs::File::create(p).with_context(|| format!("cannot write `{}`", p.display()))?,
        )),
        _ => Box::new(BufWriter::with_capacity(1 << 16, io::stdout().lock())),
    };
    let mut progress = Progress::new(args.progress, total);
    let mut pacer = Pacer::new(args.pace);
    let mut outputs: Vec<Output> = Vec::new();
    let mut kept: Vec<Output> = Vec::new();
    let mut line = Vec::with_capacity(256);
    let mut stderr = io::stderr().lock();
    let started = Instant::now();

    let mut emit = |outputs: &mut Vec<Output>,
                    kept: &mut Vec<Output>,
                    sink: &mut dyn Write|
     -> io::Result<()> {
        match args.format {
            OutputFormat::Jsonl => {
                for o in outputs.iter() {
                    line.clear();
                    write_json(&mut line, o);
                    line.push(b'\n');
                    sink.write_all(&line)?;
                }
            }
            OutputFormat::Table => kept.append(outputs),
        }
        Ok(())
    };

    let mut failed = false;
    while let Some(rec) = records.next_line() {
        if let (Line::Record(InputRecord::Evt(r)), Pace::Speed(_)) = (&rec, args.pace) {
            pacer.wait_for(r.event_time(0));
        }
        if let Err(problem) = job.push_line(&rec, &mut outputs) {
            writeln!(stderr, "error: {}: input {problem}", input.display())?;
            writeln!(
                stderr,
                "help: run without --strict to count and skip bad input"
            )?;
            failed = true;
            break;
        }
        for msg in job.take_messages() {
            writeln!(stderr, "{msg}")?;
        }
        emit(&mut outputs, &mut kept, &mut *sink)?;
        // Written: their field lists carry the next outputs.
        job.recycle_outputs(&mut outputs);
        if stdin_input {
            // Interactive or piped input: make each output visible at once,
            // so stopping with Ctrl-C loses nothing already produced.
            sink.flush()?;
        }
        progress.update(records.bytes, &mut stderr);
    }
    job.finish(&mut outputs)?;
    for msg in job.take_messages() {
        writeln!(stderr, "{msg}")?;
    }
    emit(&mut outputs, &mut kept, &mut *sink)?;
    job.recycle_outputs(&mut outputs);
    if args.format == OutputFormat::Table {
        write_tables(&mut *sink, &kept)?;
    }
    sink.flush()?;
    progress.done(&mut stderr);
    writeln!(stderr, "{}", summary(&mut job, started.elapsed()))?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// How a run over several engine threads splits the program.
enum Pipeline {
    /// `--workers N`: N shards by partition key ([`crate::parallel`]).
    Workers(usize),
    /// One engine thread per context ([`crate::contexts`]).
    Contexts(Vec<crate::contexts::Lane>),
}

/// `run --input ... --workers N`: the same run on N engine shards, or on one
/// engine thread per context, outputs merged in the canonical order
/// ([`crate::parallel`]).
fn run_parallel(
    args: &RunArgs,
    program: varpulis_program::Program,
    input: &Path,
    pipeline: Pipeline,
) -> anyhow::Result<ExitCode> {
    let workers = match &pipeline {
        Pipeline::Workers(n) => *n,
        Pipeline::Contexts(_) => 1,
    };
    let plan = if workers > 1 {
        match crate::parallel::plan(&program) {
            Ok(plan) => plan,
            Err(refusal) => {
                eprintln!("error: {refusal}");
                return Ok(ExitCode::from(2));
            }
        }
    } else {
        // One shard owns every event.
        crate::parallel::ShardPlan { keys: Vec::new() }
    };
    let mut job = Job::new(program, args.job.clone())?;
    let stdin_input = is_stdin(input);
    let reader: Box<dyn BufRead + Send> = if stdin_input {
        Box::new(BufReader::new(io::stdin()))
    } else {
        let file = std::fs::File::open(input)
            .with_context(|| format!("cannot read `{}`", input.display()))?;
        Box::new(BufReader::with_capacity(1 << 16, file))
    };
    let format = if stdin_input {
        InputFormat::Jsonl
    } else {
        InputFormat::for_path(input)
    };
    let sink: Box<dyn Write> = match &args.output {
        Some(p) if p.as_os_str() != "-" => Box::new(BufWriter::with_capacity(
            1 << 16,
            std::fs::File::create(p).with_context(|| format!("cannot write `{}`", p.display()))?,
        )),
        _ => Box::new(BufWriter::with_capacity(1 << 16, io::stdout().lock())),
    };
    let mut out = MergedOutput {
        sink,
        format: args.format,
        kept: Vec::new(),
        flush_each: stdin_input,
    };
    let layout = crate::parallel::Layout {
        workers,
        // Piped input: each record's outputs appear before the next is read.
        batch: if stdin_input { 1 } else { 1024 },
        plan,
    };
    let started = Instant::now();
    let mut stderr = io::stderr();
    let records = Records::new(reader, format);
    let outcome = match &pipeline {
        Pipeline::Workers(_) => {
            crate::parallel::run(&mut job, records, &layout, &mut out, &mut stderr)
        }
        Pipeline::Contexts(lanes) => crate::contexts::run(
            &mut job,
            records,
            lanes,
            layout.batch,
            &mut out,
            &mut stderr,
        ),
    };
    let closed = job.stop();
    let outcome = outcome?;
    closed?;
    if args.format == OutputFormat::Table {
        write_tables(&mut *out.sink, &out.kept)?;
    }
    out.sink.flush()?;
    if let Some(problem) = &outcome.failed {
        eprintln!("error: {}: input {problem}", input.display());
        eprintln!("help: run without --strict to count and skip bad input");
    }
    eprintln!(
        "{}",
        summary_of(&outcome.stats, &outcome.metrics, started.elapsed())
    );
    Ok(if outcome.failed.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Writes merged outputs as `run` does: JSON lines as they come, or tables
/// at the end.
struct MergedOutput {
    sink: Box<dyn Write>,
    format: OutputFormat,
    kept: Vec<Output>,
    flush_each: bool,
}

impl crate::parallel::OutputSink for MergedOutput {
    fn wants_values(&self) -> bool {
        self.format == OutputFormat::Table
    }

    fn output(&mut self, text: &[u8], value: Option<Output>) -> io::Result<()> {
        match self.format {
            OutputFormat::Jsonl => {
                self.sink.write_all(text)?;
                self.sink.write_all(b"\n")?;
            }
            OutputFormat::Table => self.kept.extend(value),
        }
        Ok(())
    }

    fn end_round(&mut self) -> io::Result<()> {
        if self.flush_each {
            self.sink.flush()?;
        }
        Ok(())
    }
}

/// Connector sources (`Type.from(Conn, ...)`) are not started when events
/// come from an input file: say so once, and that the input's events of the
/// type feed those streams.
fn connector_source_notes(program: &varpulis_program::Program) -> Vec<String> {
    program
        .streams
        .iter()
        .filter_map(|s| match &s.source {
            varpulis_program::SourceSpec::Connector { schema, connector, .. } => {
                let ty = program.schemas.get(*schema as usize).map(|x| x.name.to_string());
                let conn = program.connectors.get(*connector as usize);
                Some(format!(
                    "note: stream `{}` reads `{}` from connector `{}` ({}); with an input file the \
                     connector is not started, and the stream receives the `{}` events of the input",
                    s.name,
                    ty.as_deref().unwrap_or("?"),
                    conn.map_or("?", |c| &c.name),
                    conn.map_or("?", |c| &c.kind),
                    ty.as_deref().unwrap_or("?"),
                ))
            }
            _ => None,
        })
        .collect()
}

/// `simulate: 1200 events in 0.01s, 14 outputs; skipped 2 (malformed 1, ...); 1 late`.
pub(crate) fn summary(job: &mut Job, elapsed: Duration) -> String {
    let stats = job.stats().clone();
    let metrics = job.engine_stats().0;
    summary_of(&stats, &metrics, elapsed)
}

/// The summary line from host counters and engine counters.
fn summary_of(
    stats: &crate::job::JobStats,
    metrics: &varpulis_vm::Metrics,
    elapsed: Duration,
) -> String {
    let mut s = format!(
        "done: {} events in {:.2}s, {} outputs",
        stats.events,
        elapsed.as_secs_f64(),
        stats.outputs
    );
    if stats.sink_records > 0 {
        s.push_str(&format!(", {} sent to connectors", stats.sink_records));
    }
    let skipped: u64 = stats.skipped.values().sum();
    if skipped > 0 {
        let parts: Vec<String> = stats
            .skipped
            .iter()
            .map(|(k, v)| format!("{} {v}", k.replace('_', " ")))
            .collect();
        s.push_str(&format!(
            "; skipped {skipped} input records ({})",
            parts.join(", ")
        ));
    }
    if metrics.late > 0 {
        s.push_str(&format!("; {} late events", metrics.late));
    }
    if metrics.dropped > 0 {
        s.push_str(&format!(
            "; {} dropped beyond allowed lateness",
            metrics.dropped
        ));
    }
    if metrics.runtime_errors > 0 {
        s.push_str(&format!("; {} runtime errors", metrics.runtime_errors));
    }
    let pat = &metrics.patterns;
    if pat.evicted + pat.rejected + pat.capped > 0 {
        s.push_str(&format!(
            "; pattern run limits: {} evicted, {} rejected, {} capped",
            pat.evicted, pat.rejected, pat.capped
        ));
    }
    s
}

/// A one-line progress bar on stderr, redrawn at most ten times a second.
struct Progress {
    enabled: bool,
    total: Option<u64>,
    last: Option<Instant>,
}

impl Progress {
    fn new(enabled: bool, total: Option<u64>) -> Progress {
        Progress {
            enabled,
            total,
            last: None,
        }
    }

    fn update(&mut self, done: u64, w: &mut dyn Write) {
        if !self.enabled
            || self
                .last
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(Instant::now());
        let _ = match self.total {
            Some(total) if total > 0 => {
                let frac = (done as f64 / total as f64).min(1.0);
                let filled = (frac * 30.0) as usize;
                write!(
                    w,
                    "\r[{}{}] {:>3.0}%",
                    "#".repeat(filled),
                    " ".repeat(30 - filled),
                    frac * 100.0
                )
            }
            _ => write!(w, "\r{done} bytes read"),
        };
    }

    fn done(&mut self, w: &mut dyn Write) {
        if self.enabled && self.last.is_some() {
            let _ = write!(w, "\r{}\r", " ".repeat(40));
        }
    }
}

/// Waits out event-time gaps for `--realtime` / `--speed`.
struct Pacer {
    pace: Pace,
    origin: Option<(i64, Instant)>,
}

impl Pacer {
    fn new(pace: Pace) -> Pacer {
        Pacer { pace, origin: None }
    }

    fn wait_for(&mut self, event_time: i64) {
        let Pace::Speed(speed) = self.pace else {
            return;
        };
        let (t0, wall0) = *self.origin.get_or_insert((event_time, Instant::now()));
        let due_ns = (event_time.saturating_sub(t0)).max(0) as f64 / speed.max(1e-9);
        let due = wall0 + Duration::from_nanos(due_ns.min(u64::MAX as f64) as u64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}

/// Whether stderr is a terminal (for the default of `--progress`).
pub fn stderr_is_terminal() -> bool {
    io::stderr().is_terminal()
}

/// Resolves `simulate`'s positional and flag forms of the same argument.
pub fn pick(
    positional: Option<PathBuf>,
    flag: Option<PathBuf>,
    what: &str,
) -> anyhow::Result<PathBuf> {
    match (positional, flag) {
        (Some(p), None) | (None, Some(p)) => Ok(p),
        (Some(_), Some(_)) => {
            anyhow::bail!("give the {what} once, either as an argument or with its flag")
        }
        (None, None) => anyhow::bail!("missing the {what}"),
    }
}

/// Used by `run`: is `path` stdin?
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

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

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::RecvTimeoutError;
use serde_json::value::RawValue;
use varpulis_connectors::{
    open_source, Source, SourceConfig, SourceContext, SourceEvent, SourceMessage, SourceSender,
};
use varpulis_program::json::parse_json_event_or;
use varpulis_program::{Program, RawEvent, Subscription};
use varpulis_vm::Output;

use crate::cli::simulate::{summary, OutputFormat};
use crate::job::{connector_config, Job, RecordFrom};
use crate::output::{write_json, write_tables};

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
}

/// How often the loop wakes without events (idle watermark, Ctrl-C).
const TICK: Duration = Duration::from_millis(100);

/// Whether `program` declares connector sources.
pub fn has_sources(program: &Program) -> bool {
    !program.subscriptions().is_empty()
}

/// Runs `job` over its program's connector sources until they end or the
/// process is interrupted.
pub fn run(mut job: Job, options: &LiveOptions) -> anyhow::Result<ExitCode> {
    let program = job.program().clone();
    let subs = program.subscriptions();
    let interrupted = install_interrupt_handler()?;
    let stopping = Arc::new(AtomicBool::new(false));
    let (tx, rx) = crossbeam_channel::bounded(options.queue_capacity.max(1));
    let sender = SourceSender::new(tx, stopping.clone());
    let context = SourceContext::new(options.base_dir.clone());
    let mut stderr = io::stderr().lock();

    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    for (id, sub) in subs.iter().enumerate() {
        let Some(def) = program.connectors.get(sub.connector as usize) else {
            anyhow::bail!("subscription {id} names a connector the program does not have");
        };
        let config = SourceConfig {
            connector: connector_config(def, &sub.params),
            id,
        };
        match open_source(&config, &context, sender.clone()) {
            Ok(source) => {
                writeln!(
                    stderr,
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
                writeln!(stderr, "error: {e}")?;
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    // Only the sources hold senders now: when all are gone the channel ends.
    drop(sender);
    writeln!(
        stderr,
        "running; Ctrl-C stops (open windows are not fired on a stop)"
    )?;

    let mut out_writer: Box<dyn Write> = match &options.output {
        Some(p) if p.as_os_str() != "-" => Box::new(BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot write `{}`", p.display()))?,
        )),
        _ => Box::new(BufWriter::new(io::stdout().lock())),
    };
    let mut dead_letter = match &options.dead_letter {
        Some(p) => Some(BufWriter::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("cannot write `{}`", p.display()))?,
        )),
        None => None,
    };

    let mut live = Live {
        defaults: subs.iter().map(|s| default_type(&program, s)).collect(),
        names: sources.iter().map(|s| s.name().to_string()).collect(),
        ended: vec![false; subs.len()],
        failed: false,
        idle: IdleClock::new(options.idle_timeout, max_out_of_order(&program)),
        outputs: Vec::new(),
        kept: Vec::new(),
        format: options.format,
    };
    let started = Instant::now();
    let mut strict_failure = false;
    let mut stop_reason = "every source ended";

    loop {
        if interrupted.load(Ordering::Acquire) {
            stop_reason = "interrupted";
            break;
        }
        match rx.recv_timeout(TICK) {
            Ok(event) => {
                if let Err(problem) = live.handle(&mut job, event, dead_letter.as_mut()) {
                    writeln!(stderr, "error: input {problem}")?;
                    writeln!(
                        stderr,
                        "help: run without --strict to count and skip bad input"
                    )?;
                    strict_failure = true;
                    stop_reason = "bad input with --strict";
                    break;
                }
                // Drain what else is waiting before writing, to batch output.
                while let Ok(event) = rx.try_recv() {
                    if let Err(problem) = live.handle(&mut job, event, dead_letter.as_mut()) {
                        writeln!(stderr, "error: input {problem}")?;
                        strict_failure = true;
                        break;
                    }
                }
                if strict_failure {
                    stop_reason = "bad input with --strict";
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout) => live.on_idle(&mut job),
            Err(RecvTimeoutError::Disconnected) => break,
        }
        for msg in job.take_messages() {
            writeln!(stderr, "{msg}")?;
        }
        live.write_outputs(&mut *out_writer)?;
        if live.ended.iter().all(|e| *e) {
            break;
        }
    }

    // Stop the sources, then run what they had already delivered.
    stopping.store(true, Ordering::Release);
    for s in &mut sources {
        s.stop();
    }
    if !strict_failure {
        while let Ok(event) = rx.try_recv() {
            if live.handle(&mut job, event, dead_letter.as_mut()).is_err() {
                strict_failure = true;
                break;
            }
        }
    }
    let all_ended =
        live.ended.iter().all(|e| *e) && !strict_failure && stop_reason != "interrupted";
    let mut outputs = std::mem::take(&mut live.outputs);
    if all_ended {
        // Every source is bounded and done: that is the end of the input.
        job.finish(&mut outputs)?;
    } else {
        job.stop()?;
    }
    live.outputs = outputs;
    for msg in job.take_messages() {
        writeln!(stderr, "{msg}")?;
    }
    live.write_outputs(&mut *out_writer)?;
    if live.format == OutputFormat::Table {
        write_tables(&mut *out_writer, &live.kept)?;
    }
    out_writer.flush()?;
    if let Some(d) = dead_letter.as_mut() {
        d.flush()?;
    }
    writeln!(stderr, "stopped: {stop_reason}")?;
    for s in &sources {
        let m = s.metrics();
        let mut line = format!(
            "source `{}`: {} received, {} bytes",
            s.name(),
            m.received,
            m.bytes
        );
        if m.rejected > 0 {
            line.push_str(&format!(", {} rejected", m.rejected));
        }
        if m.errors > 0 {
            line.push_str(&format!(", {} errors", m.errors));
        }
        if m.reconnects > 0 {
            line.push_str(&format!(", {} reconnects", m.reconnects));
        }
        writeln!(stderr, "{line}")?;
    }
    writeln!(stderr, "{}", summary(&mut job, started.elapsed()))?;
    Ok(if strict_failure || live.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The host side of a live run: decoding, routing tags, idle time, outputs.
struct Live {
    /// Per subscription: the type of payloads that name none.
    defaults: Vec<Option<String>>,
    /// Per subscription: the connector name, for messages.
    names: Vec<String>,
    /// Per subscription: whether it ended (bounded input done, or gave up).
    ended: Vec<bool>,
    /// Some source gave up with an error.
    failed: bool,
    idle: IdleClock,
    outputs: Vec<Output>,
    kept: Vec<Output>,
    format: OutputFormat,
}

impl Live {
    fn handle(
        &mut self,
        job: &mut Job,
        event: SourceEvent,
        dead_letter: Option<&mut BufWriter<std::fs::File>>,
    ) -> Result<(), crate::job::InputProblem> {
        match event {
            SourceEvent::Message(msg) => self.message(job, &msg, dead_letter),
            SourceEvent::Problem {
                source,
                message,
                fatal,
            } => {
                let name = self.names.get(source).map_or("?", String::as_str);
                if fatal {
                    eprintln!("error: connector `{name}`: {message} (source stopped)");
                    self.failed = true;
                    if let Some(e) = self.ended.get_mut(source) {
                        *e = true;
                    }
                } else {
                    eprintln!("warning: connector `{name}`: {message}");
                }
                Ok(())
            }
            SourceEvent::Ended { source } => {
                if let Some(e) = self.ended.get_mut(source) {
                    *e = true;
                }
                Ok(())
            }
        }
    }

    fn message(
        &mut self,
        job: &mut Job,
        msg: &SourceMessage,
        mut dead_letter: Option<&mut BufWriter<std::fs::File>>,
    ) -> Result<(), crate::job::InputProblem> {
        let name = self.names.get(msg.source).map_or("?", String::as_str);
        let place = format!("connector `{name}` ({})", msg.place);
        let subscription = u32::try_from(msg.source).unwrap_or(u32::MAX);
        let from = RecordFrom::Source {
            subscription,
            place: &place,
        };
        let default = self.defaults.get(msg.source).and_then(Option::as_deref);
        let arrival = msg.received_ms.saturating_mul(1_000_000);
        for item in payload_events(&msg.payload, default) {
            let skipped_before: u64 = job.stats().skipped.values().sum();
            let result = match &item {
                Ok(raw) => {
                    let time = raw.timestamp.unwrap_or(arrival);
                    self.idle.saw(time);
                    job.push_raw_from(raw, Some(time), from, &mut self.outputs)
                }
                Err(message) => job.malformed_from(from, message.clone()),
            };
            let skipped = job.stats().skipped.values().sum::<u64>() > skipped_before;
            if skipped {
                if let Some(d) = dead_letter.as_deref_mut() {
                    write_dead_letter(d, &place, &msg.payload, job);
                }
            }
            result?;
        }
        Ok(())
    }

    fn on_idle(&mut self, job: &mut Job) {
        if let Some(ts) = self.idle.due() {
            job.advance_watermark(ts, &mut self.outputs);
        }
    }

    fn write_outputs(&mut self, w: &mut dyn Write) -> io::Result<()> {
        match self.format {
            OutputFormat::Jsonl => {
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

/// One dead-letter line: the payload, where it came from, and why it was
/// skipped (the last problem the job reported).
fn write_dead_letter(w: &mut BufWriter<std::fs::File>, place: &str, payload: &[u8], job: &Job) {
    let error = job
        .last_problem()
        .map_or_else(|| "skipped".to_string(), |p| p.message.clone());
    let line = serde_json::json!({
        "_error": error,
        "_place": place,
        "payload": String::from_utf8_lossy(payload),
    });
    // A failing dead-letter file must not stop the run; the skip is counted.
    let _ = writeln!(w, "{line}");
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
fn default_type(program: &Program, sub: &Subscription) -> Option<String> {
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
fn fed_streams(program: &Program, sub: &Subscription) -> String {
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
fn max_out_of_order(program: &Program) -> i64 {
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
struct IdleClock {
    timeout: Option<Duration>,
    out_of_order: i64,
    last: Option<(i64, Instant)>,
}

impl IdleClock {
    fn new(timeout: Option<Duration>, out_of_order: i64) -> Self {
        IdleClock {
            timeout,
            out_of_order,
            last: None,
        }
    }

    fn saw(&mut self, time: i64) {
        let max = self.last.map_or(time, |(t, _)| t.max(time));
        self.last = Some((max, Instant::now()));
    }

    fn due(&self) -> Option<i64> {
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
}

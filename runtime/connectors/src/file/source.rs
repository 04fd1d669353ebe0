//! The `file` source: JSON lines read from a file, once or followed as it grows.
//!
//! Parameters: `path` (default `<Name>.jsonl`, relative to the context's base directory),
//! `follow` (default `false`: read to the end, then report [`SourceEvent::Ended`]; `true`: keep
//! reading lines appended later, like `tail -f`, until stopped), `poll` (how often a followed
//! file is checked for new lines, default `200ms`).
//!
//! Each non-blank line is one payload whose place is `<path> line N`. A line that is not yet
//! complete (no newline) is only delivered once it is, or at the end of a file not followed.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::Params;
use crate::error::ConfigError;
use crate::source::{
    now_ms, Position, Source, SourceConfig, SourceContext, SourceCounters, SourceEvent,
    SourceMessage, SourceMetrics, SourceSender,
};

/// How often a waiting reader looks at the stop flags.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// Parameters only the file source reads (a file connector used as a sink tolerates them).
pub const SOURCE_PARAMS: &[&str] = &["follow", "poll"];

/// A running file source.
pub struct FileSource {
    name: String,
    path: PathBuf,
    follow: bool,
    stop: Arc<AtomicBool>,
    counters: Arc<SourceCounters>,
    thread: Option<JoinHandle<()>>,
}

impl FileSource {
    /// Validates the parameters and starts the reading thread. A file that cannot be opened is
    /// a configuration error naming it.
    pub fn start(
        config: &SourceConfig,
        context: &SourceContext,
        sender: SourceSender,
    ) -> Result<FileSource, ConfigError> {
        let c = &config.connector;
        let mut p = Params::for_role(c, "source");
        let path = p.path("path", || format!("{}.jsonl", c.name), &context.base_dir)?;
        let follow = p.bool("follow", false)?;
        let poll = p.duration("poll", Duration::from_millis(200))?;
        if poll.is_zero() {
            return Err(p.invalid("poll", "must be longer than 0ms"));
        }
        p.tolerate(crate::file::SINK_PARAMS);
        p.finish()?;
        let file = File::open(&path).map_err(|source| ConfigError::OpenInput {
            connector: c.name.clone(),
            path: path.clone(),
            source,
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(SourceCounters::default());
        let resume = config.resume.get(POSITION_KEY).copied().unwrap_or(0);
        let reader = Reader {
            id: config.id,
            path: path.clone(),
            follow,
            poll,
            stop: stop.clone(),
            counters: counters.clone(),
            sender,
        };
        let thread = std::thread::Builder::new()
            .name(format!("source-{}", c.name))
            .spawn(move || reader.run(BufReader::with_capacity(1 << 16, file), resume))
            .map_err(|source| ConfigError::Thread {
                connector: c.name.clone(),
                source,
            })?;
        Ok(FileSource {
            name: c.name.clone(),
            path,
            follow,
            stop,
            counters,
            thread: Some(thread),
        })
    }
}

/// The [`Position::key`] of a file's lines (offsets are bytes from the start of the file).
pub const POSITION_KEY: &str = "file";

/// How far the reader is: lines and bytes consumed.
struct Cursor {
    line: usize,
    offset: u64,
}

struct Reader {
    id: usize,
    path: PathBuf,
    follow: bool,
    poll: Duration,
    stop: Arc<AtomicBool>,
    counters: Arc<SourceCounters>,
    sender: SourceSender,
}

impl Reader {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire) || self.sender.stopping()
    }

    fn run(self, mut reader: BufReader<File>, resume: u64) {
        let mut at = Cursor { line: 0, offset: 0 };
        if resume > 0 {
            // Skip what the restored checkpoint has seen, counting its lines so places stay
            // right.
            let mut skipped = Vec::new();
            while at.offset < resume {
                skipped.clear();
                match reader.read_until(b'\n', &mut skipped) {
                    Ok(0) => break,
                    Ok(n) => {
                        at.offset += n as u64;
                        at.line += 1;
                    }
                    Err(e) => return self.read_failed(&e),
                }
            }
        }
        let line_no = &mut at;
        let mut buf: Vec<u8> = Vec::new();
        loop {
            if self.stopped() {
                return;
            }
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => {
                    if !self.follow {
                        // The last line may lack its newline.
                        if !buf.is_empty() && !self.deliver(line_no, &mut buf) {
                            return;
                        }
                        self.send(SourceEvent::Ended { source: self.id });
                        return;
                    }
                    self.pause();
                }
                Ok(_) if buf.ends_with(b"\n") || !self.follow => {
                    if !self.deliver(line_no, &mut buf) {
                        return;
                    }
                }
                // A followed file's last line is still being written: keep it and wait.
                Ok(_) => self.pause(),
                Err(e) => return self.read_failed(&e),
            }
        }
    }

    /// A read error ends the source: counted and reported as a fatal problem.
    fn read_failed(&self, e: &std::io::Error) {
        let message = format!("reading `{}` failed: {e}", self.path.display());
        self.counters.error(message.clone());
        self.send(SourceEvent::Problem {
            source: self.id,
            message,
            fatal: true,
        });
    }

    /// Sends the line in `buf` (unless blank) and clears it; `false` once the host stops.
    fn deliver(&self, at: &mut Cursor, buf: &mut Vec<u8>) -> bool {
        at.line += 1;
        let start = at.offset;
        at.offset += buf.len() as u64;
        let payload = std::mem::take(buf);
        if payload.trim_ascii().is_empty() {
            return true;
        }
        let len = payload.len();
        let delivered = self.send(SourceEvent::Message(SourceMessage {
            source: self.id,
            place: format!("{} line {}", self.path.display(), at.line),
            payload,
            received_ms: now_ms(),
            received: std::time::Instant::now(),
            position: Some(Position {
                key: POSITION_KEY.to_string(),
                start,
                end: at.offset,
            }),
            trace_parent: None,
        }));
        if delivered {
            self.counters.received(len);
        }
        delivered
    }

    /// Delivers one event, waiting while the host's queue is full, until the host or this
    /// source stops; `false` then.
    fn send(&self, event: SourceEvent) -> bool {
        self.sender.deliver_until_stopped(event, &self.stop)
    }

    /// Waits `poll` for a followed file to grow, in short steps so a stop is seen promptly
    /// whatever `poll` is.
    fn pause(&self) {
        let until = Instant::now() + self.poll;
        loop {
            let now = Instant::now();
            if now >= until || self.stopped() {
                return;
            }
            std::thread::sleep((until - now).min(STOP_CHECK));
        }
    }
}

impl Source for FileSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        let mode = if self.follow { " (following)" } else { "" };
        format!("file {}{mode}", self.path.display())
    }

    fn metrics(&self) -> SourceMetrics {
        self.counters.snapshot()
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            // The thread checks the flags between lines, while it waits for the file to grow and
            // while it waits for room in the host's queue, at least every 50 ms.
            let _ = t.join();
        }
    }
}

impl Drop for FileSource {
    fn drop(&mut self) {
        self.stop();
    }
}

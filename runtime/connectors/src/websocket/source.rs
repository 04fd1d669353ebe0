//! The `websocket` source: connects to a WebSocket server and delivers every message.
//!
//! Each text message, and each binary message that is UTF-8 text, is one payload (a JSON
//! object, an array of objects or JSON lines, decoded by the host), placed as `websocket
//! ws://host:port/path message N` (`N` counts the messages since the source started, across
//! reconnections). Empty messages hold no event and are skipped; binary messages that are not
//! UTF-8 are counted in [`SourceMetrics::rejected`] and reported. A message larger than
//! `max_message` is refused unread, counted in `rejected`, and the connection is made again.
//!
//! One thread runs the client. After each connection it sends the `subscribe` texts, so a feed
//! that forgets subscriptions with the connection gets them back. A quiet connection is pinged
//! every `keep_alive` and dropped when the ping stays unanswered as long.
//!
//! Every lost connection is reported as a non-fatal [`SourceEvent::Problem`] naming the server;
//! failed connection attempts are retried with backoff (`backoff` doubling to `max_backoff`),
//! the first failure of a series and the recovery are reported, each failure is counted in
//! [`SourceMetrics::errors`] and each recovery in [`SourceMetrics::reconnects`]. A refusal that
//! retrying cannot fix (a certificate that does not verify, an upgrade answered 401 or 403) is a
//! fatal problem and the source stops. [`Source::stop`] sends a Close frame, waits briefly for
//! the server's answer and returns within a bounded time. WebSocket cannot replay: what the
//! server sent while we were away is lost to us.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::backoff::Backoff;
use crate::config::Params;
use crate::error::ConfigError;
use crate::source::{
    join_until, now_ms, Source, SourceConfig, SourceContext, SourceCounters, SourceEvent,
    SourceMessage, SourceMetrics, SourceSender,
};
use crate::websocket::{connect, ConnectError, Connection, Data, WsSettings};

/// How often a connected reader looks at its stop flag and the keep-alive clock.
const READ_POLL: Duration = Duration::from_millis(100);

/// How long the close handshake may wait for the server's Close frame.
const CLOSE_WAIT: Duration = Duration::from_millis(500);

/// How long [`Source::stop`] waits for the client thread. The thread only outlives it while a
/// TCP connect to an unresponsive host runs (at most [`super::CONNECT_TIMEOUT`]); it then sees the stop
/// flag and ends without delivering anything.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// Settings of a websocket source, after validation.
#[derive(Debug, Clone, PartialEq)]
pub struct WebSocketSourceSettings {
    /// Server, headers, subscribe texts, limits.
    pub common: WsSettings,
}

impl WebSocketSourceSettings {
    /// Reads and validates the parameters of one subscription. Relative certificate paths
    /// resolve against `base_dir`.
    pub fn from_config(
        config: &SourceConfig,
        base_dir: &std::path::Path,
    ) -> Result<Self, ConfigError> {
        let mut p = Params::for_role(&config.connector, "source");
        let common = WsSettings::read(&mut p, base_dir)?;
        p.tolerate(super::SINK_PARAMS);
        p.finish()?;
        Ok(WebSocketSourceSettings { common })
    }
}

/// A running websocket source.
pub struct WebSocketSource {
    name: String,
    description: String,
    stop: Arc<AtomicBool>,
    wake: Sender<()>,
    done: Receiver<()>,
    counters: Arc<SourceCounters>,
    thread: Option<JoinHandle<()>>,
}

impl WebSocketSource {
    /// Validates the parameters and starts the client thread. It connects in the background:
    /// an unreachable server is reported as a [`SourceEvent::Problem`], not an error here.
    pub fn start(
        config: &SourceConfig,
        context: &SourceContext,
        sender: SourceSender,
    ) -> Result<WebSocketSource, ConfigError> {
        let settings = WebSocketSourceSettings::from_config(config, &context.base_dir)?.common;
        let name = config.connector.name.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(SourceCounters::default());
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
        let description = format!("websocket {}", settings.display);
        let reader = Reader {
            id: config.id,
            backoff: Backoff::new(settings.backoff, settings.max_backoff, &name),
            settings,
            stop: Arc::clone(&stop),
            wake: wake_rx,
            counters: Arc::clone(&counters),
            sender,
            messages: 0,
            _done: done_tx,
        };
        let thread = std::thread::Builder::new()
            .name(format!("source-{name}"))
            .spawn(move || reader.run())
            .map_err(|source| ConfigError::Thread {
                connector: name.clone(),
                source,
            })?;
        Ok(WebSocketSource {
            name,
            description,
            stop,
            wake: wake_tx,
            done: done_rx,
            counters,
            thread: Some(thread),
        })
    }
}

/// The client thread.
struct Reader {
    id: usize,
    settings: WsSettings,
    stop: Arc<AtomicBool>,
    /// Cuts a backoff sleep short when `stop` is called.
    wake: Receiver<()>,
    counters: Arc<SourceCounters>,
    sender: SourceSender,
    backoff: Backoff,
    /// Data messages received so far (the `N` of places).
    messages: u64,
    /// Dropped when `run` returns (or unwinds), which tells `stop` the thread is done.
    _done: Sender<()>,
}

/// How a connection ended.
enum Ended {
    /// The source (or the host) stopped.
    Stopped,
    /// The connection broke; the reason.
    Lost(String),
}

impl Reader {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire) || self.sender.stopping()
    }

    fn run(mut self) {
        // Failed attempts since the last connection, and whether that outage was reported.
        let mut failures = 0u32;
        let mut outage_reported = false;
        while !self.stopped() {
            let stop = Arc::clone(&self.stop);
            let sender = self.sender.clone();
            let stopped = move || stop.load(Ordering::Acquire) || sender.stopping();
            match connect(&self.settings, READ_POLL, &stopped) {
                Ok(connection) => {
                    self.backoff.reset();
                    if outage_reported {
                        self.counters.reconnected();
                        let mut message =
                            format!("connected again to websocket {}", self.settings.display);
                        if failures > 0 {
                            message.push_str(&format!(" after {failures} failed attempt(s)"));
                        }
                        if !self.problem(message, false) {
                            connection.close(CLOSE_WAIT);
                            return;
                        }
                    }
                    failures = 0;
                    // The connection ends stopped, or lost: a new outage, reported at once.
                    match self.read(connection) {
                        Ended::Stopped => return,
                        Ended::Lost(reason) => {
                            let message = format!(
                                "connection to websocket {} lost: {reason}; reconnecting",
                                self.settings.display
                            );
                            self.counters.error(message.clone());
                            if !self.problem(message, false) {
                                return;
                            }
                            outage_reported = true;
                        }
                    }
                }
                Err(ConnectError::Stopped) => return,
                Err(ConnectError::Final(why)) => {
                    let message = format!(
                        "websocket {} refused {why}; the source stopped (retrying cannot help)",
                        self.settings.display
                    );
                    self.counters.error(message.clone());
                    self.problem(message, true);
                    return;
                }
                Err(ConnectError::Retry(why)) => {
                    failures = failures.saturating_add(1);
                    let message = format!(
                        "connection to websocket {} failed: {why}; retrying",
                        self.settings.display
                    );
                    self.counters.error(message.clone());
                    if !outage_reported {
                        if !self.problem(message, false) {
                            return;
                        }
                        outage_reported = true;
                    }
                }
            }
            // Woken early (or the source gone): the loop condition decides.
            let _ = self.wake.recv_timeout(self.backoff.next_delay());
        }
    }

    /// Reads messages until the connection breaks or the source stops.
    fn read(&mut self, mut connection: Connection) -> Ended {
        // Report one undecodable binary message per connection; count them all.
        let mut binary_reported = false;
        loop {
            if self.stopped() {
                connection.close(CLOSE_WAIT);
                return Ended::Stopped;
            }
            let data = match connection.poll() {
                Ok(Some(data)) => data,
                Ok(None) => continue,
                Err(lost) => {
                    if lost.too_large {
                        self.counters.rejected(1);
                    }
                    return Ended::Lost(lost.reason);
                }
            };
            self.messages += 1;
            let payload = match data {
                Data::Text(text) => text,
                Data::Binary(bytes) if std::str::from_utf8(&bytes).is_ok() => bytes,
                Data::Binary(bytes) => {
                    self.counters.rejected(1);
                    let message = format!(
                        "websocket {} message {}: a binary message of {} bytes that is not UTF-8 \
                         text was skipped",
                        self.settings.display,
                        self.messages,
                        bytes.len()
                    );
                    self.counters.error(message.clone());
                    if !binary_reported {
                        binary_reported = true;
                        if !self.problem(message, false) {
                            connection.close(CLOSE_WAIT);
                            return Ended::Stopped;
                        }
                    }
                    continue;
                }
            };
            // An empty message holds no event.
            if payload.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let len = payload.len();
            let message = SourceEvent::Message(SourceMessage {
                source: self.id,
                payload,
                place: format!(
                    "websocket {} message {}",
                    self.settings.display, self.messages
                ),
                received_ms: now_ms(),
                received: std::time::Instant::now(),
                trace_parent: None,
                position: None,
            });
            if !self.send(message) {
                connection.close(CLOSE_WAIT);
                return Ended::Stopped;
            }
            self.counters.received(len);
        }
    }

    /// Reports a problem; `false` once the source stops.
    fn problem(&self, message: String, fatal: bool) -> bool {
        self.send(SourceEvent::Problem {
            source: self.id,
            message,
            fatal,
        })
    }

    /// Delivers one event, waiting while the host's queue is full (back-pressure) but not past
    /// a stop of this source or of the host.
    fn send(&self, event: SourceEvent) -> bool {
        self.sender.deliver_until_stopped(event, &self.stop)
    }
}

impl Source for WebSocketSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn metrics(&self) -> SourceMetrics {
        self.counters.snapshot()
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let Some(thread) = self.thread.take() else {
            return;
        };
        // The wake-up cuts a backoff sleep short; a connected reader sees the flag within
        // READ_POLL and closes the connection.
        let _ = self.wake.try_send(());
        join_until(thread, &self.done, Instant::now() + STOP_WAIT);
    }
}

impl Drop for WebSocketSource {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConfigValue, ConnectorConfig};

    #[test]
    fn sink_parameters_are_tolerated_and_typos_suggested() {
        let config = |extra: (&str, ConfigValue)| {
            let connector = ConnectorConfig::new("Feed", "websocket")
                .param("url", ConfigValue::Str("ws://127.0.0.1:1/x".into()))
                .param(extra.0, extra.1);
            WebSocketSourceSettings::from_config(
                &SourceConfig::new(connector, 0),
                std::path::Path::new("."),
            )
        };
        config(("queue_capacity", ConfigValue::Int(5))).expect("sink parameter");
        let err = config(("keep_alvie", ConfigValue::Duration(1_000_000_000))).expect_err("typo");
        assert_eq!(
            err.to_string(),
            "connector `Feed`: unknown parameter `keep_alvie` for a websocket source; did you mean `keep_alive`?"
        );
    }
}

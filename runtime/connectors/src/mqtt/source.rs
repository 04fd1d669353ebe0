//! The `mqtt` source: subscribes to one or more topic filters and delivers every message.
//!
//! Parameters (besides those in [`super`]): `topic` (required: a filter such as `sensors/#`, or
//! an array of filters) and `clean_session` (default `true`; `false` with a fixed `client_id`
//! asks the broker to keep the subscription and queue QoS 1/2 messages while we are away).
//!
//! One thread runs the MQTT client. On every CONNACK it subscribes again, so subscriptions come
//! back after a reconnection even when the broker forgot the session. Each PUBLISH payload is
//! handed to the host as it came (the host decodes it), with the place `mqtt topic <topic>`
//! and, on MQTT 5, the trace context of its `traceparent` user property (an invalid one is
//! counted in [`SourceMetrics::invalid_trace_context`] and ignored).
//! QoS 1/2 messages are acknowledged only once the host has taken them, so a message the host
//! never got is not acknowledged (at least once with `clean_session: false`).
//!
//! A lost connection or an unreachable broker is reported once as a non-fatal
//! [`SourceEvent::Problem`] naming the broker, retried with backoff (100 ms doubling to 5 s), and
//! its recovery reported once more; each failed attempt is counted in [`SourceMetrics::errors`],
//! each recovery in [`SourceMetrics::reconnects`]. A refusal that retrying cannot fix (bad user
//! name or password, not authorised, client id or protocol rejected, subscription refused, a
//! broker certificate that does not verify) is a fatal problem and the source stops.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::backoff::Backoff;
use crate::config::Params;
use crate::error::ConfigError;
use crate::mqtt::client::{Client, Connection, Event, Failure, Received, Session};
use crate::mqtt::{default_client_id, MqttSettings};
use crate::source::{
    join_until, now_ms, Source, SourceConfig, SourceContext, SourceCounters, SourceEvent,
    SourceMessage, SourceMetrics, SourceSender,
};
use crate::trace_context::TRACEPARENT;

/// First delay before reconnecting; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Longest delay between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long [`Source::stop`] waits for the client thread. The thread only outlives it while a
/// connection attempt to an unresponsive host runs (at most the connect timeout); it then
/// sees the stop flag and ends without delivering anything.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// Requests (acknowledgements, subscriptions) the client thread can queue for the event loop.
const REQUEST_CAPACITY: usize = 1024;

/// Settings of an mqtt source, after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSourceSettings {
    /// Broker, client id, QoS, login.
    pub common: MqttSettings,
    /// Topic filters subscribed to (wildcards `+` and `#` allowed).
    pub topics: Vec<String>,
    /// Whether the broker forgets the session when the client disconnects.
    pub clean_session: bool,
}

impl MqttSourceSettings {
    /// Reads and validates the parameters of one subscription.
    /// Relative certificate paths resolve against `base_dir`.
    pub fn from_config(config: &SourceConfig, base_dir: &Path) -> Result<Self, ConfigError> {
        let c = &config.connector;
        let mut p = Params::for_role(c, "source");
        let common = MqttSettings::read(&mut p, default_client_id(&c.name, "in"), base_dir)?;
        let help = "write `topic: \"sensors/#\"` here or at the `.from(...)` site";
        let topics: Vec<String> = match c.params.get("topic") {
            Some(crate::ConfigValue::Array(_)) => p
                .strings("topic")?
                .into_iter()
                .map(str::to_string)
                .collect(),
            _ => vec![p.required_string("topic", help)?.to_string()],
        };
        if topics.is_empty() {
            return Err(p.invalid("topic", "the array of topic filters is empty"));
        }
        for topic in &topics {
            if !rumqttc::valid_filter(topic) {
                return Err(p.invalid(
                    "topic",
                    format!(
                        "\"{topic}\" is not a valid topic filter (`#` only as the last level, \
                         `+` only as a whole level)"
                    ),
                ));
            }
        }
        let clean_session = p.bool("clean_session", true)?;
        p.tolerate(super::SINK_PARAMS);
        p.finish()?;
        Ok(MqttSourceSettings {
            common,
            topics,
            clean_session,
        })
    }
}

/// A running mqtt source.
pub struct MqttSource {
    name: String,
    description: String,
    client: Client,
    stop: Arc<AtomicBool>,
    wake: Sender<()>,
    done: Receiver<()>,
    counters: Arc<SourceCounters>,
    thread: Option<JoinHandle<()>>,
}

impl MqttSource {
    /// Validates the parameters and starts the client thread. It connects in the background:
    /// an unreachable broker is reported as a [`SourceEvent::Problem`], not an error here.
    pub fn start(
        config: &SourceConfig,
        context: &SourceContext,
        sender: SourceSender,
    ) -> Result<MqttSource, ConfigError> {
        let settings = MqttSourceSettings::from_config(config, &context.base_dir)?;
        let name = config.connector.name.clone();
        let session = Session {
            clean: settings.clean_session,
            // Acknowledge only what the host took (see the module documentation).
            manual_acks: true,
        };
        let (client, connection) =
            super::client::connect(&settings.common, session, REQUEST_CAPACITY);
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(SourceCounters::default());
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
        let description = format!(
            "{} topic {}",
            settings.common.address(),
            settings.topics.join(", ")
        );
        let listener = Listener {
            id: config.id,
            address: settings.common.address(),
            qos: settings.common.qos,
            topics: settings.topics,
            client: client.clone(),
            stop: stop.clone(),
            wake: wake_rx,
            counters: counters.clone(),
            sender,
            backoff: Backoff::new(FIRST_BACKOFF, MAX_BACKOFF, &name),
            unacked: Vec::new(),
            _done: done_tx,
        };
        let thread = std::thread::Builder::new()
            .name(format!("source-{name}"))
            .spawn(move || listener.run(connection))
            .map_err(|source| ConfigError::Thread {
                connector: name.clone(),
                source,
            })?;
        Ok(MqttSource {
            name,
            description,
            client,
            stop,
            wake: wake_tx,
            done: done_rx,
            counters,
            thread: Some(thread),
        })
    }
}

/// The client thread.
struct Listener {
    id: usize,
    address: String,
    qos: u8,
    topics: Vec<String>,
    client: Client,
    stop: Arc<AtomicBool>,
    /// Cuts a backoff sleep short when `stop` is called.
    wake: Receiver<()>,
    counters: Arc<SourceCounters>,
    sender: SourceSender,
    backoff: Backoff,
    /// Acknowledgements that did not fit in the request queue yet.
    unacked: Vec<Received>,
    /// Dropped when `run` returns (or unwinds), which tells `stop` the thread is done.
    _done: Sender<()>,
}

/// What to do after a connection error.
enum Next {
    Retry,
    Stop,
}

impl Listener {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire) || self.sender.stopping()
    }

    fn run(mut self, mut connection: Connection) {
        // Failed attempts since the last successful connection.
        let mut failures = 0u32;
        while !self.stopped() {
            self.send_acks();
            // `recv` returns at every packet, ping and error; a stop request reaches the event
            // loop as a DISCONNECT, so an idle connection wakes up too.
            let Some(event) = connection.recv() else {
                return;
            };
            if self.stopped() {
                return;
            }
            match event {
                Ok(Event::Connected { .. }) => {
                    self.backoff.reset();
                    if failures > 0 {
                        self.counters.reconnected();
                        let message = format!(
                            "connected again to MQTT broker {} after {failures} failed attempt(s)",
                            self.address
                        );
                        if !self.problem(message, false) {
                            return;
                        }
                    }
                    failures = 0;
                    self.subscribe();
                }
                Ok(Event::Message(message)) => {
                    if !self.deliver(message) {
                        return;
                    }
                }
                Ok(Event::Subscribed { refused }) => {
                    if refused {
                        let message = format!(
                            "MQTT broker {} refused the subscription to {}",
                            self.address,
                            self.topics.join(", ")
                        );
                        self.counters.error(message.clone());
                        self.problem(message, true);
                        return;
                    }
                }
                Ok(Event::Disconnected) => return,
                Ok(_) => {}
                Err(e) => match self.failed(&e, failures) {
                    Next::Retry => {
                        failures = failures.saturating_add(1);
                        let delay = self.backoff.next_delay();
                        // Woken early (or the source gone): the loop condition decides.
                        let _ = self.wake.recv_timeout(delay);
                    }
                    Next::Stop => return,
                },
            }
        }
    }

    /// Counts and reports a connection error; reports only the first of a series.
    fn failed(&self, error: &Failure, failures: u32) -> Next {
        if let Some(why) = &error.final_why {
            let message = format!(
                "MQTT broker {} refused {why}; the source stopped (retrying cannot help)",
                self.address
            );
            self.counters.error(message.clone());
            self.problem(message, true);
            return Next::Stop;
        }
        let message = format!(
            "connection to MQTT broker {} failed: {}; retrying",
            self.address, error.message
        );
        self.counters.error(message.clone());
        if failures == 0 && !self.problem(message, false) {
            return Next::Stop;
        }
        Next::Retry
    }

    /// (Re)subscribes to every filter; called on each CONNACK.
    fn subscribe(&self) {
        // The request queue was emptied by the reconnection, so this fits; if it ever did not,
        // the broken subscription would show up as silence, so say it.
        if let Err(e) = self.client.try_subscribe(&self.topics, self.qos) {
            let message = format!("subscribing on MQTT broker {} failed: {e}", self.address);
            self.counters.error(message.clone());
            self.problem(message, false);
        }
    }

    /// Hands one message to the host, then acknowledges it. `false` once the source stops.
    fn deliver(&mut self, received: Received) -> bool {
        let payload = received.payload().to_vec();
        // An empty payload clears a retained message; it is not an event.
        if !payload.is_empty() {
            let len = payload.len();
            let message = SourceEvent::Message(SourceMessage {
                source: self.id,
                payload,
                place: format!("mqtt topic {}", received.topic()),
                received_ms: now_ms(),
                received: std::time::Instant::now(),
                position: None,
                trace_parent: self
                    .counters
                    .trace_parent(received.user_property(TRACEPARENT)),
            });
            if !self.send(message) {
                return false;
            }
            self.counters.received(len);
        }
        self.unacked.push(received);
        self.send_acks();
        true
    }

    /// Queues pending acknowledgements (QoS 0 needs none); keeps those that do not fit.
    fn send_acks(&mut self) {
        let mut sent = 0;
        for received in &self.unacked {
            if !self.client.try_ack(received) {
                break;
            }
            sent += 1;
        }
        self.unacked.drain(..sent);
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

impl Source for MqttSource {
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
        // The DISCONNECT wakes a thread waiting on an idle connection; the wake-up cuts a
        // backoff sleep short. Either may find its queue full or gone, which is fine: the
        // thread also looks at the flag after every event.
        self.client.try_disconnect();
        let _ = self.wake.try_send(());
        join_until(thread, &self.done, Instant::now() + STOP_WAIT);
    }
}

impl Drop for MqttSource {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConfigValue, ConnectorConfig};

    fn check(params: &[(&str, ConfigValue)]) -> Result<MqttSourceSettings, ConfigError> {
        let connector = params
            .iter()
            .fold(ConnectorConfig::new("Sensors", "mqtt"), |c, (k, v)| {
                c.param(*k, v.clone())
            })
            .param("host", ConfigValue::Str("127.0.0.1".into()));
        MqttSourceSettings::from_config(&SourceConfig::new(connector, 3), Path::new("."))
    }

    #[test]
    fn topic_is_required_and_may_be_an_array() {
        let err = check(&[]).expect_err("no topic");
        assert!(
            err.to_string()
                .contains("missing required parameter `topic`"),
            "{err}"
        );
        let s = check(&[(
            "topic",
            ConfigValue::Array(vec![
                ConfigValue::Str("a/+".into()),
                ConfigValue::Str("b/#".into()),
            ]),
        )])
        .expect("two filters");
        assert_eq!(s.topics, vec!["a/+".to_string(), "b/#".to_string()]);
        let id = &s.common.client_id;
        assert!(
            id.starts_with(&format!("varpulis-Sensors-{}-in", std::process::id())),
            "{id}"
        );
    }

    #[test]
    fn malformed_filters_are_rejected() {
        let err = check(&[("topic", ConfigValue::Str("a/#/b".into()))]).expect_err("bad #");
        assert!(
            err.to_string().contains("not a valid topic filter"),
            "{err}"
        );
        let err = check(&[("topic", ConfigValue::Array(vec![]))]).expect_err("empty");
        assert!(err.to_string().contains("empty"), "{err}");
    }

    #[test]
    fn sink_parameters_are_tolerated() {
        let s = check(&[
            ("topic", ConfigValue::Str("t".into())),
            ("retain", ConfigValue::Bool(true)),
            ("clean_session", ConfigValue::Bool(false)),
        ])
        .expect("valid");
        assert!(!s.clean_session);
    }
}

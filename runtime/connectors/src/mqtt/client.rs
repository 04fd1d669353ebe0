//! The two MQTT protocol versions behind one small interface: rumqttc has a client for MQTT
//! 3.1.1 and another for MQTT 5, with their own options, packets and errors. [`connect`] builds
//! the one [`MqttSettings::protocol`] asks for; [`Client`], [`Connection`] and [`Event`] give the
//! source and the sink the same view of both, so their logic (backoff, the sink's ledger of
//! records, dead letters, acknowledgements) exists once.
//!
//! What only MQTT 5 has: user properties on a message (a received message's [`Received::
//! user_property`]; a published record's `traceparent` and `idempotency-key`, dropped on 3.1.1),
//! and a reason code on PUBACK/PUBREC by which the broker refuses one publish
//! ([`Event::Rejected`]). MQTT 5 sessions outlive the connection only for their expiry
//! interval, so `clean_session: false` asks for one that never ends, like a 3.1.1 session.

use std::borrow::Cow;
use std::collections::VecDeque;

use rumqttc::v5;
use rumqttc::v5::mqttbytes::v5 as packet5;
use rumqttc::{ConnectReturnCode, TlsConfiguration, Transport};

use super::{MqttSettings, Protocol, MAX_INCOMING_BYTES, MAX_PACKET_BYTES};

/// How long a connection attempt (TCP connect plus MQTT CONNECT/CONNACK) may take, in seconds.
const CONNECT_TIMEOUT_SECS: u64 = 5;

/// What a role needs of its session besides the shared settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Session {
    /// Whether the broker forgets the session when the client disconnects.
    pub clean: bool,
    /// Whether received messages are acknowledged by [`Client::try_ack`] (the source) rather
    /// than at once by the client.
    pub manual_acks: bool,
}

/// Builds the client of `settings.protocol` and its connection, with our connection timeout.
/// `cap` is the capacity of the request queue between the two.
pub(crate) fn connect(
    settings: &MqttSettings,
    session: Session,
    cap: usize,
) -> (Client, Connection) {
    let id = settings.client_id.clone();
    let host = settings.host.clone();
    let transport = settings
        .tls
        .as_ref()
        .map(|tls| Transport::tls_with_config(TlsConfiguration::Rustls(tls.config())));
    match settings.protocol {
        Protocol::V311 => {
            let mut options = rumqttc::MqttOptions::new(id, host, settings.port);
            // `MqttSettings::read` checked the rule rumqttc asserts (zero or at least 1s).
            options.set_keep_alive(settings.keep_alive);
            options.set_max_packet_size(MAX_INCOMING_BYTES, MAX_PACKET_BYTES);
            options.set_clean_session(session.clean);
            options.set_manual_acks(session.manual_acks);
            if let Some((user, password)) = &settings.credentials {
                options.set_credentials(user.clone(), password.clone());
            }
            if let Some(transport) = transport {
                options.set_transport(transport);
            }
            let (client, mut connection) = rumqttc::Client::new(options, cap);
            let mut network = connection.eventloop.network_options();
            network.set_connection_timeout(CONNECT_TIMEOUT_SECS);
            connection.eventloop.set_network_options(network);
            (
                Client::V311(client),
                Connection::V311 {
                    connection: Box::new(connection),
                    unsent: VecDeque::new(),
                },
            )
        }
        Protocol::V5 => {
            let mut options = v5::MqttOptions::new(id, host, settings.port);
            // `MqttSettings::read` checked the rule rumqttc asserts (at least 5s).
            options.set_keep_alive(settings.keep_alive);
            options.set_max_packet_size(u32::try_from(MAX_INCOMING_BYTES).ok());
            options.set_clean_start(session.clean);
            if !session.clean {
                // A 3.1.1 session without clean_session lasts until the client comes back; an
                // MQTT 5 one ends with the connection unless given an expiry (this one: never).
                options.set_session_expiry_interval(Some(u32::MAX));
            }
            options.set_manual_acks(session.manual_acks);
            options.set_connection_timeout(CONNECT_TIMEOUT_SECS);
            let mut network = options.network_options();
            network.set_connection_timeout(CONNECT_TIMEOUT_SECS);
            options.set_network_options(network);
            if let Some((user, password)) = &settings.credentials {
                options.set_credentials(user.clone(), password.clone());
            }
            if let Some(transport) = transport {
                options.set_transport(transport);
            }
            let (client, connection) = v5::Client::new(options, cap);
            (
                Client::V5(client),
                Connection::V5 {
                    connection: Box::new(connection),
                    unsent: VecDeque::new(),
                },
            )
        }
    }
}

/// The handle that queues requests for the event loop; cheap to clone.
#[derive(Clone)]
pub(crate) enum Client {
    V311(rumqttc::Client),
    V5(v5::Client),
}

/// Why a request did not fit in the client's queue (it is full, or the event loop is gone).
#[derive(Debug)]
pub(crate) struct NotQueued(String);

impl std::fmt::Display for NotQueued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Client {
    /// Queues a PUBLISH without waiting. `properties` are MQTT 5 user properties; MQTT 3.1.1
    /// has nowhere to put them, so they are dropped there.
    pub(crate) fn try_publish(
        &self,
        topic: String,
        qos: u8,
        retain: bool,
        payload: Vec<u8>,
        properties: Vec<(String, String)>,
    ) -> Result<(), NotQueued> {
        let queued = match self {
            Client::V311(c) => c
                .try_publish(topic, qos_v311(qos), retain, payload)
                .map_err(|e| e.to_string()),
            Client::V5(c) if properties.is_empty() => c
                .try_publish(topic, qos_v5(qos), retain, payload)
                .map_err(|e| e.to_string()),
            Client::V5(c) => {
                let properties = packet5::PublishProperties {
                    user_properties: properties,
                    ..packet5::PublishProperties::default()
                };
                c.try_publish_with_properties(topic, qos_v5(qos), retain, payload, properties)
                    .map_err(|e| e.to_string())
            }
        };
        queued.map_err(NotQueued)
    }

    /// Queues the acknowledgement of a received message (none for QoS 0); `false` when the
    /// queue is full, so the caller keeps it for later.
    pub(crate) fn try_ack(&self, message: &Received) -> bool {
        match (self, message) {
            (Client::V311(c), Received::V311(p)) => c.try_ack(p).is_ok(),
            (Client::V5(c), Received::V5(p)) => c.try_ack(p).is_ok(),
            // A message is only ever acknowledged by the client that received it; a mismatch
            // cannot happen, and retrying it would not help.
            _ => true,
        }
    }

    /// Queues one SUBSCRIBE for every filter of `topics`.
    pub(crate) fn try_subscribe(&self, topics: &[String], qos: u8) -> Result<(), NotQueued> {
        let queued = match self {
            Client::V311(c) => c
                .try_subscribe_many(
                    topics
                        .iter()
                        .map(|t| rumqttc::SubscribeFilter::new(t.clone(), qos_v311(qos))),
                )
                .map_err(|e| e.to_string()),
            Client::V5(c) => c
                .try_subscribe_many(
                    topics
                        .iter()
                        .map(|t| packet5::Filter::new(t.clone(), qos_v5(qos))),
                )
                .map_err(|e| e.to_string()),
        };
        queued.map_err(NotQueued)
    }

    /// Queues a DISCONNECT; a full or closed queue is fine (the caller also sets a stop flag).
    pub(crate) fn try_disconnect(&self) {
        let _ = match self {
            Client::V311(c) => c.try_disconnect().map_err(|e| e.to_string()),
            Client::V5(c) => c.try_disconnect().map_err(|e| e.to_string()),
        };
    }
}

/// A message the broker delivered, kept until it is acknowledged.
pub(crate) enum Received {
    V311(rumqttc::Publish),
    V5(packet5::Publish),
}

impl Received {
    /// The topic it was published to.
    pub(crate) fn topic(&self) -> Cow<'_, str> {
        match self {
            Received::V311(p) => Cow::Borrowed(&p.topic),
            Received::V5(p) => String::from_utf8_lossy(&p.topic),
        }
    }

    /// The payload, as published.
    pub(crate) fn payload(&self) -> &[u8] {
        match self {
            Received::V311(p) => &p.payload,
            Received::V5(p) => &p.payload,
        }
    }

    /// The value of the user property `name` (the last one, if repeated; names compared
    /// without regard to ASCII case, like HTTP and Kafka headers); MQTT 3.1.1 has none.
    pub(crate) fn user_property(&self, name: &str) -> Option<&[u8]> {
        let Received::V5(p) = self else {
            return None;
        };
        p.properties
            .as_ref()?
            .user_properties
            .iter()
            .rfind(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_bytes())
    }
}

/// What the event loop reports, in the terms the source and the sink need.
pub(crate) enum Event {
    /// The broker accepted the connection (CONNACK); an MQTT 5 broker may say how large a
    /// packet it accepts.
    Connected { max_packet: Option<u32> },
    /// A message arrived.
    Message(Received),
    /// The broker answered a SUBSCRIBE; `refused` when it refused a filter.
    Subscribed { refused: bool },
    /// A PUBLISH was written with this packet id (0 for QoS 0).
    Published(u16),
    /// The broker took the publish with this packet id (PUBACK for QoS 1, PUBCOMP for QoS 2).
    Acknowledged(u16),
    /// The broker refused the publish with this packet id for good (an MQTT 5 PUBACK or PUBREC
    /// with an error reason code, such as `NotAuthorized`).
    Rejected { pkid: u16, reason: String },
    /// Our DISCONNECT went out.
    Disconnected,
    /// Anything else (pings, acknowledgements we send).
    Other,
}

/// A connection error: its text, and why retrying cannot help when it cannot.
pub(crate) struct Failure {
    /// The error, rendered.
    pub message: String,
    /// What was refused and why (`the connection: bad user name or password`), or `None` when
    /// retrying may help.
    pub final_why: Option<String>,
}

/// The event loop of a client, driven by the thread of its source or sink.
pub(crate) enum Connection {
    // Both boxed: the event loops are large and of different sizes.
    V311 {
        connection: Box<rumqttc::Connection>,
        /// Requests a broken connection left unsent (see [`Connection::keep_unsent`]).
        unsent: VecDeque<rumqttc::Request>,
    },
    V5 {
        connection: Box<v5::Connection>,
        unsent: VecDeque<v5::Request>,
    },
}

impl Connection {
    /// Waits for the next event; `None` once every [`Client`] is gone. A connection error is
    /// returned once; the next call reconnects.
    pub(crate) fn recv(&mut self) -> Option<Result<Event, Failure>> {
        match self {
            Connection::V311 { connection, .. } => {
                let event = connection.recv().ok()?;
                Some(event.map(event_v311).map_err(|e| Failure {
                    final_why: final_failure_v311(&e),
                    message: e.to_string(),
                }))
            }
            Connection::V5 { connection, .. } => {
                let event = connection.recv().ok()?;
                Some(event.map(event_v5).map_err(|e| Failure {
                    final_why: final_failure_v5(&e),
                    message: e.to_string(),
                }))
            }
        }
    }

    /// After a connection error: keeps the requests the broken connection had not finished
    /// (publishes not acknowledged, and those not written yet). rumqttc would drop them when
    /// the broker starts a new session; [`Connection::resend_unsent`] hands them back.
    pub(crate) fn keep_unsent(&mut self) {
        match self {
            Connection::V311 { connection, unsent } => {
                unsent.extend(connection.eventloop.pending.drain(..));
            }
            Connection::V5 { connection, unsent } => {
                unsent.extend(connection.eventloop.pending.drain(..));
            }
        }
    }

    /// After a CONNACK: queues the kept requests again, before anything else.
    pub(crate) fn resend_unsent(&mut self) {
        match self {
            Connection::V311 { connection, unsent } => {
                resend(&mut connection.eventloop.pending, unsent);
            }
            Connection::V5 { connection, unsent } => {
                resend(&mut connection.eventloop.pending, unsent);
            }
        }
    }
}

/// Puts `unsent` in front of what the event loop has pending.
fn resend<T>(pending: &mut VecDeque<T>, unsent: &mut VecDeque<T>) {
    unsent.extend(pending.drain(..));
    *pending = std::mem::take(unsent);
}

fn qos_v311(qos: u8) -> rumqttc::QoS {
    match qos {
        0 => rumqttc::QoS::AtMostOnce,
        2 => rumqttc::QoS::ExactlyOnce,
        _ => rumqttc::QoS::AtLeastOnce,
    }
}

fn qos_v5(qos: u8) -> v5::mqttbytes::QoS {
    match qos {
        0 => v5::mqttbytes::QoS::AtMostOnce,
        2 => v5::mqttbytes::QoS::ExactlyOnce,
        _ => v5::mqttbytes::QoS::AtLeastOnce,
    }
}

fn event_v311(event: rumqttc::Event) -> Event {
    use rumqttc::{Event as E, Incoming, Outgoing};
    match event {
        E::Incoming(Incoming::ConnAck(_)) => Event::Connected { max_packet: None },
        E::Incoming(Incoming::Publish(p)) => Event::Message(Received::V311(p)),
        E::Incoming(Incoming::SubAck(ack)) => Event::Subscribed {
            refused: ack
                .return_codes
                .iter()
                .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure)),
        },
        E::Incoming(Incoming::PubAck(ack)) => Event::Acknowledged(ack.pkid),
        E::Incoming(Incoming::PubComp(comp)) => Event::Acknowledged(comp.pkid),
        E::Outgoing(Outgoing::Publish(pkid)) => Event::Published(pkid),
        E::Outgoing(Outgoing::Disconnect) => Event::Disconnected,
        _ => Event::Other,
    }
}

fn event_v5(event: v5::Event) -> Event {
    use packet5::{PubAckReason, PubRecReason, SubscribeReasonCode};
    use rumqttc::Outgoing;
    use v5::{Event as E, Incoming};
    match event {
        E::Incoming(Incoming::ConnAck(ack)) => Event::Connected {
            max_packet: ack.properties.and_then(|p| p.max_packet_size),
        },
        E::Incoming(Incoming::Publish(p)) => Event::Message(Received::V5(p)),
        E::Incoming(Incoming::SubAck(ack)) => Event::Subscribed {
            refused: ack
                .return_codes
                .iter()
                .any(|c| !matches!(c, SubscribeReasonCode::Success(_))),
        },
        E::Incoming(Incoming::PubAck(ack)) => match ack.reason {
            PubAckReason::Success | PubAckReason::NoMatchingSubscribers => {
                Event::Acknowledged(ack.pkid)
            }
            reason => Event::Rejected {
                pkid: ack.pkid,
                reason: format!("PUBACK {reason:?}"),
            },
        },
        // A refusing PUBREC ends a QoS 2 exchange: no PUBREL, no PUBCOMP follow.
        E::Incoming(Incoming::PubRec(rec)) => match rec.reason {
            PubRecReason::Success | PubRecReason::NoMatchingSubscribers => Event::Other,
            reason => Event::Rejected {
                pkid: rec.pkid,
                reason: format!("PUBREC {reason:?}"),
            },
        },
        E::Incoming(Incoming::PubComp(comp)) => Event::Acknowledged(comp.pkid),
        E::Outgoing(Outgoing::Publish(pkid)) => Event::Published(pkid),
        E::Outgoing(Outgoing::Disconnect) => Event::Disconnected,
        _ => Event::Other,
    }
}

/// Why an MQTT 3.1.1 connection error cannot be fixed by retrying, or `None`.
fn final_failure_v311(error: &rumqttc::ConnectionError) -> Option<String> {
    match error {
        rumqttc::ConnectionError::ConnectionRefused(code) => {
            let why = match code {
                ConnectReturnCode::BadUserNamePassword => "bad user name or password",
                ConnectReturnCode::NotAuthorized => "not authorised (check username and password)",
                ConnectReturnCode::BadClientId => "client id rejected (check `client_id`)",
                ConnectReturnCode::RefusedProtocolVersion => "the broker does not speak MQTT 3.1.1",
                ConnectReturnCode::ServiceUnavailable | ConnectReturnCode::Success => return None,
            };
            Some(format!("the connection: {why}"))
        }
        rumqttc::ConnectionError::Tls(tls) => final_tls_failure(tls),
        _ => None,
    }
}

/// Why an MQTT 5 connection error cannot be fixed by retrying, or `None`. Refusals that may
/// pass later (server busy or unavailable, quota, rate, another server) are retried.
fn final_failure_v5(error: &v5::ConnectionError) -> Option<String> {
    use packet5::ConnectReturnCode as C;
    match error {
        v5::ConnectionError::ConnectionRefused(code) => {
            let why = match code {
                C::BadUserNamePassword => "bad user name or password",
                C::NotAuthorized => "not authorised (check username and password)",
                C::BadClientId | C::ClientIdentifierNotValid => {
                    "client id rejected (check `client_id`)"
                }
                C::RefusedProtocolVersion | C::UnsupportedProtocolVersion => {
                    "the broker does not speak MQTT 5 (write `protocol: \"3.1.1\"`)"
                }
                C::Banned => "this client is banned",
                C::BadAuthenticationMethod => "bad authentication method",
                _ => return None,
            };
            Some(format!("the connection: {why}"))
        }
        v5::ConnectionError::Tls(tls) => final_tls_failure(tls),
        _ => None,
    }
}

/// TLS failures that come back on every attempt: the broker's certificate does not verify, the
/// host is not a valid TLS server name, the broker wants a client certificate we lack.
fn final_tls_failure(error: &rumqttc::TlsError) -> Option<String> {
    let rustls_error = match error {
        rumqttc::TlsError::TLS(e) => Some(e),
        rumqttc::TlsError::Io(io) => crate::tls::rustls_error(io),
        rumqttc::TlsError::DNSName(e) => {
            return Some(format!(
                "the TLS handshake: the host is not a valid TLS server name ({e})"
            ))
        }
        _ => None,
    }?;
    crate::tls::final_failure(rustls_error, "broker")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(properties: Vec<(&str, &str)>) -> Received {
        let mut publish = packet5::Publish::new("a/b", qos_v5(1), b"{}".to_vec(), None);
        publish.properties = Some(packet5::PublishProperties {
            user_properties: properties
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..packet5::PublishProperties::default()
        });
        Received::V5(publish)
    }

    #[test]
    fn user_properties_are_found_by_name_the_last_one_winning() {
        let r = received(vec![
            ("traceparent", "one"),
            ("x", "y"),
            ("TraceParent", "two"),
        ]);
        assert_eq!(r.user_property("traceparent"), Some(&b"two"[..]));
        assert_eq!(r.user_property("tracestate"), None);
        assert_eq!(r.topic(), "a/b");
        let v311 = Received::V311(rumqttc::Publish::new("t", rumqttc::QoS::AtMostOnce, "p"));
        assert_eq!(v311.user_property("traceparent"), None);
        assert_eq!(v311.payload(), b"p");
    }

    #[test]
    fn refused_publishes_and_subscriptions_are_reported_on_mqtt_5() {
        let ack = |reason| {
            let mut ack = packet5::PubAck::new(7, None);
            ack.reason = reason;
            event_v5(v5::Event::Incoming(v5::Incoming::PubAck(ack)))
        };
        assert!(matches!(
            ack(packet5::PubAckReason::NoMatchingSubscribers),
            Event::Acknowledged(7)
        ));
        assert!(matches!(
            ack(packet5::PubAckReason::NotAuthorized),
            Event::Rejected { pkid: 7, reason } if reason == "PUBACK NotAuthorized"
        ));
        let suback = packet5::SubAck {
            pkid: 1,
            return_codes: vec![
                packet5::SubscribeReasonCode::Success(qos_v5(1)),
                packet5::SubscribeReasonCode::NotAuthorized,
            ],
            properties: None,
        };
        assert!(matches!(
            event_v5(v5::Event::Incoming(v5::Incoming::SubAck(suback))),
            Event::Subscribed { refused: true }
        ));
    }

    #[test]
    fn final_refusals_say_what_to_change() {
        let refused = |code| {
            final_failure_v5(&v5::ConnectionError::ConnectionRefused(code)).unwrap_or_default()
        };
        assert_eq!(
            refused(packet5::ConnectReturnCode::BadUserNamePassword),
            "the connection: bad user name or password"
        );
        assert!(
            refused(packet5::ConnectReturnCode::UnsupportedProtocolVersion)
                .contains("protocol: \"3.1.1\"")
        );
        assert_eq!(refused(packet5::ConnectReturnCode::ServerBusy), "");
    }
}

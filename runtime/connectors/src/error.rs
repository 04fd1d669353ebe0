//! Error types for connectors.
//!
//! Two families, kept apart on purpose:
//!
//! - [`ConfigError`]: the connector declaration cannot be turned into a working sink (unknown
//!   parameter, wrong value kind, missing `url`, unset `${ENV}` variable, output file that cannot
//!   be opened). These are reported once, when the pipeline starts, and always name the connector.
//! - [`SinkError`]: something went wrong while records flowed (I/O failure, HTTP failure, queue
//!   overflow, a record without a topic, a broker refusing us). Every variant names the place
//!   (path, URL or broker) and answers [`SinkError::is_retryable`], so the caller knows whether
//!   trying again can help.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// A connector declaration that cannot be opened as a sink.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The connector kind has no sink implementation in this crate.
    #[error("connector `{connector}`: kind `{kind}` cannot be used as a {role} (supported: {supported}){}", did_you_mean(suggestion))]
    UnsupportedKind {
        /// Connector name as declared in VPL.
        connector: String,
        /// `sink` or `source`.
        role: &'static str,
        /// The kind written after `=`.
        kind: String,
        /// Comma-separated list of supported kinds.
        supported: String,
        /// Closest supported kind, when one is close enough.
        suggestion: Option<String>,
    },
    /// The connector kind exists but this binary was built without its cargo feature.
    #[error("connector `{connector}`: this varpulis was built without {kind} support (the `{feature}` cargo feature); rebuild with `cargo build --release --features {feature}`{}", build_needs(feature))]
    NotBuilt {
        /// Connector name as declared in VPL.
        connector: String,
        /// `sink`, `source`, or `connector` when `varpulis check` reports it.
        role: &'static str,
        /// The kind written after `=` (`kafka`, `mqtt`).
        kind: String,
        /// The cargo feature that builds it.
        feature: &'static str,
    },
    /// A parameter the connector kind does not understand.
    #[error(
        "connector `{connector}`: unknown parameter `{param}` for {} {role}{}",
        with_article(kind),
        did_you_mean(suggestion)
    )]
    UnknownParam {
        /// Connector name as declared in VPL.
        connector: String,
        /// `sink` or `source`.
        role: &'static str,
        /// Connector kind (`file`, `http`, ...).
        kind: String,
        /// The unknown parameter name.
        param: String,
        /// Closest known parameter, when one is close enough.
        suggestion: Option<String>,
    },
    /// A parameter holds a value of the wrong kind (e.g. a string where a duration is expected).
    #[error("connector `{connector}`: parameter `{param}` must be {expected}, found {found}")]
    WrongType {
        /// Connector name as declared in VPL.
        connector: String,
        /// The parameter name.
        param: String,
        /// What the parameter accepts, e.g. "a duration such as `5s`".
        expected: &'static str,
        /// What was written, e.g. "a string".
        found: &'static str,
    },
    /// A required parameter is absent.
    #[error("connector `{connector}`: missing required parameter `{param}` ({help})")]
    MissingParam {
        /// Connector name as declared in VPL.
        connector: String,
        /// The missing parameter name.
        param: &'static str,
        /// What to write, e.g. `url: "https://..."`.
        help: &'static str,
    },
    /// A parameter has the right kind but an unusable value.
    #[error("connector `{connector}`: parameter `{param}`: {reason}")]
    InvalidValue {
        /// Connector name as declared in VPL.
        connector: String,
        /// The parameter name.
        param: String,
        /// Why the value is unusable.
        reason: String,
    },
    /// A `${VAR}` reference names an environment variable that is not set.
    #[error("connector `{connector}`: parameter `{param}` uses `${{{var}}}` but the environment variable `{var}` is not set")]
    MissingEnvVar {
        /// Connector name as declared in VPL.
        connector: String,
        /// The parameter containing the reference.
        param: String,
        /// The variable name.
        var: String,
    },
    /// An output or dead-letter file could not be opened.
    #[error("connector `{connector}`: cannot open `{}` for writing: {source}", path.display())]
    Open {
        /// Connector name as declared in VPL.
        connector: String,
        /// The file that could not be opened.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// An input file could not be opened for reading.
    #[error("connector `{connector}`: cannot open `{}` for reading: {source}", path.display())]
    OpenInput {
        /// Connector name as declared in VPL.
        connector: String,
        /// The file that could not be opened.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// A listener could not be bound to its address (in use, not permitted, not local).
    #[error("connector `{connector}`: cannot listen on `{address}`: {reason}")]
    Listen {
        /// Connector name as declared in VPL.
        connector: String,
        /// The address asked for.
        address: String,
        /// Why it failed.
        reason: String,
    },
    /// The http sink's delivery thread could not be started.
    #[error("connector `{connector}`: cannot start the delivery thread: {source}")]
    Thread {
        /// Connector name as declared in VPL.
        connector: String,
        /// The underlying I/O error from the OS.
        #[source]
        source: io::Error,
    },
}

/// `a file`, `an http`, `an mqtt`: the kind with the article it is read with.
fn with_article(kind: &str) -> String {
    let vowel_sound = kind.starts_with(['a', 'e', 'i', 'o', 'u'])
        || ["http", "https", "mqtt", "nats"].contains(&kind);
    format!("{} {kind}", if vowel_sound { "an" } else { "a" })
}

/// What building `feature` needs beyond the Rust toolchain, for the rebuild hint.
fn build_needs(feature: &str) -> &'static str {
    match feature {
        "kafka" => {
            " (librdkafka is built from source: it needs cmake, a C++ compiler and the libcurl \
             and OpenSSL headers, which `bash scripts/setup` installs; see the README, Building)"
        }
        _ => "",
    }
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!("; did you mean `{s}`?"),
        None => String::new(),
    }
}

/// Why one HTTP delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryFailure {
    /// The server answered with a non-2xx status; `body` holds the start of its reply.
    Status {
        /// HTTP status code.
        code: u16,
        /// First bytes of the response body (lossy UTF-8, may be empty).
        body: String,
    },
    /// No complete answer within the request timeout.
    Timeout(Duration),
    /// The TCP/TLS connection could not be established (refused, unreachable, DNS).
    Connect(String),
    /// The connection broke or the server sent something that is not HTTP.
    Transport(String),
    /// The request itself is unusable (bad URL, TLS configuration); retrying cannot help.
    Request(String),
}

impl DeliveryFailure {
    /// Whether sending the same request again can succeed.
    ///
    /// 4xx answers mean the request is wrong, except 408 (request timeout) and 429 (too many
    /// requests), which ask the client to come back later.
    pub fn is_retryable(&self) -> bool {
        match self {
            DeliveryFailure::Status { code, .. } => {
                !(400..500).contains(code) || *code == 408 || *code == 429
            }
            DeliveryFailure::Timeout(_)
            | DeliveryFailure::Connect(_)
            | DeliveryFailure::Transport(_) => true,
            DeliveryFailure::Request(_) => false,
        }
    }
}

impl std::fmt::Display for DeliveryFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeliveryFailure::Status { code, body } if body.is_empty() => {
                write!(f, "server answered HTTP {code}")
            }
            DeliveryFailure::Status { code, body } => {
                write!(f, "server answered HTTP {code}: {body}")
            }
            DeliveryFailure::Timeout(d) => write!(f, "no answer within {}ms", d.as_millis()),
            DeliveryFailure::Connect(e) => write!(f, "cannot connect: {e}"),
            DeliveryFailure::Transport(e) => write!(f, "connection failed: {e}"),
            DeliveryFailure::Request(e) => write!(f, "invalid request: {e}"),
        }
    }
}

/// A failure while records flow through a sink.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Reading or writing a file failed (disk full, permission denied, ...).
    #[error("connector `{connector}`: {op} `{}` failed: {source}", path.display())]
    Io {
        /// Connector name as declared in VPL.
        connector: String,
        /// The file involved.
        path: PathBuf,
        /// What was being done: "write to", "flush", "rotate", ...
        op: &'static str,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// Records could not be written to the output file; the error says how many.
    #[error("connector `{connector}`: {records} record(s) not written to `{}`: {source}", path.display())]
    WriteFailed {
        /// Connector name as declared in VPL.
        connector: String,
        /// The output file.
        path: PathBuf,
        /// How many records were not written.
        records: u64,
        /// Whether they were saved to the dead-letter file instead.
        dead_lettered: bool,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// An HTTP delivery failed (returned by the delivery worker and recorded in
    /// [`crate::SinkMetrics::last_error`]).
    #[error(
        "connector `{connector}`: delivery to {url} failed after {attempts} attempt(s): {failure}"
    )]
    Delivery {
        /// Connector name as declared in VPL.
        connector: String,
        /// The target URL.
        url: String,
        /// How many requests were made.
        attempts: u32,
        /// Why the last attempt failed.
        failure: DeliveryFailure,
    },
    /// The delivery queue was full; the record went to the dead-letter file instead of being
    /// delivered. Do not resend it: it is already saved.
    #[error("connector `{connector}`: delivery queue full ({capacity} records); record written to dead-letter file `{}`", dead_letter.display())]
    QueueFull {
        /// Connector name as declared in VPL.
        connector: String,
        /// The queue capacity.
        capacity: usize,
        /// Where the record was saved.
        dead_letter: PathBuf,
    },
    /// The record names no topic and the connector declares none, so a broker sink cannot route
    /// it. It went to the dead-letter file; set `topic` on the connector or at the `.to(...)`
    /// site. Not retryable: the same record would have no topic again.
    #[error("connector `{connector}`: the record has no topic (set `topic` on the connector or at the `.to(...)` site); record written to dead-letter file `{}`", dead_letter.display())]
    NoTopic {
        /// Connector name as declared in VPL.
        connector: String,
        /// Where the record was saved.
        dead_letter: PathBuf,
    },
    /// The broker refused us for good: bad login, not authorised, a fatal client state. The
    /// record went to the dead-letter file, and so will the following ones until the
    /// configuration (credentials, ACLs) is fixed. Not retryable.
    #[error("connector `{connector}`: {place} refused {reason}; record written to dead-letter file `{}`", dead_letter.display())]
    Refused {
        /// Connector name as declared in VPL.
        connector: String,
        /// Who refused: `MQTT broker mqtt://127.0.0.1:1883`, `kafka://h:9092 topic t`.
        place: String,
        /// What was refused and why: `the connection: bad user name or password`.
        reason: String,
        /// Where the record was saved.
        dead_letter: PathBuf,
    },
    /// A record could not be saved anywhere: the dead-letter file failed too. The record is lost
    /// and counted in [`crate::SinkMetrics::dropped`].
    #[error("connector `{connector}`: record lost: {reason}; writing dead-letter file `{}` failed: {source}", path.display())]
    DeadLetter {
        /// Connector name as declared in VPL.
        connector: String,
        /// The dead-letter file.
        path: PathBuf,
        /// Why the record was being dead-lettered.
        reason: String,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// A `flush` or `close` gave up waiting for in-flight deliveries.
    #[error("connector `{connector}`: {pending} record(s) still in flight after waiting {}ms", waited.as_millis())]
    Timeout {
        /// Connector name as declared in VPL.
        connector: String,
        /// Records not yet delivered or dead-lettered.
        pending: u64,
        /// How long the caller waited.
        waited: Duration,
    },
    /// The sink was already closed.
    #[error("connector `{connector}`: sink is closed")]
    Closed {
        /// Connector name as declared in VPL.
        connector: String,
    },
    /// Records accepted since the last checkpoint could not be written to the output file, so
    /// a checkpoint now would commit past them. Every later barrier fails the same way: a
    /// restart replays them from the last checkpoint and writes them once.
    #[error("connector `{connector}`: {records} record(s) since the last checkpoint are missing from `{}`; no checkpoint is taken until a restart rewrites them from the last one", path.display())]
    Lost {
        /// Connector name as declared in VPL.
        connector: String,
        /// The output file.
        path: PathBuf,
        /// How many records are missing.
        records: u64,
    },
    /// The records a checkpoint counts as delivered were staged but never published (a Kafka
    /// transaction that was not committed): after a restart, [`crate::Sink::restore`] says so,
    /// and the host restores the checkpoint before this one, whose records were published.
    #[error("connector `{connector}`: the records of the checkpoint were staged but not published: {reason}")]
    NotCommitted {
        /// Connector name as declared in VPL.
        connector: String,
        /// What was expected and what the receiver has.
        reason: String,
    },
    /// After a restart, the output could not be taken back to the checkpoint (the file is
    /// missing or shorter than the checkpoint recorded, or cannot be truncated).
    #[error("connector `{connector}`: cannot take `{}` back to the checkpoint: {reason}", path.display())]
    Restore {
        /// Connector name as declared in VPL.
        connector: String,
        /// The output file.
        path: PathBuf,
        /// What is wrong, with the advice.
        reason: String,
    },
}

impl SinkError {
    /// Whether doing the same thing again can succeed.
    ///
    /// `false` means the input or configuration is wrong (permission denied, HTTP 400, no
    /// topic, a broker refusing the login) or the record was already saved elsewhere (queue
    /// full → dead-letter), so a retry would fail again or duplicate data.
    pub fn is_retryable(&self) -> bool {
        match self {
            SinkError::Io { source, .. }
            | SinkError::WriteFailed { source, .. }
            | SinkError::DeadLetter { source, .. } => io_is_retryable(source),
            SinkError::Delivery { failure, .. } => failure.is_retryable(),
            SinkError::Timeout { .. } => true,
            SinkError::QueueFull { .. }
            | SinkError::NoTopic { .. }
            | SinkError::Refused { .. }
            | SinkError::Closed { .. }
            | SinkError::Lost { .. }
            | SinkError::NotCommitted { .. }
            | SinkError::Restore { .. } => false,
        }
    }

    /// The connector name this error belongs to.
    pub fn connector(&self) -> &str {
        match self {
            SinkError::Io { connector, .. }
            | SinkError::WriteFailed { connector, .. }
            | SinkError::Delivery { connector, .. }
            | SinkError::QueueFull { connector, .. }
            | SinkError::NoTopic { connector, .. }
            | SinkError::Refused { connector, .. }
            | SinkError::DeadLetter { connector, .. }
            | SinkError::Timeout { connector, .. }
            | SinkError::Lost { connector, .. }
            | SinkError::Restore { connector, .. }
            | SinkError::NotCommitted { connector, .. }
            | SinkError::Closed { connector } => connector,
        }
    }
}

/// Whether an I/O error may go away by itself (a full disk gets space freed, an interrupted call
/// can be repeated), as opposed to errors that need a configuration change.
pub(crate) fn io_is_retryable(e: &io::Error) -> bool {
    !matches!(
        e.kind(),
        io::ErrorKind::PermissionDenied
            | io::ErrorKind::NotFound
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::InvalidData
            | io::ErrorKind::AlreadyExists
            | io::ErrorKind::Unsupported
            | io::ErrorKind::IsADirectory
            | io::ErrorKind::NotADirectory
            | io::ErrorKind::ReadOnlyFilesystem
    )
}

/// Bytes handed to [`crate::Record::from_json`] are not one JSON object.
#[derive(Debug, thiserror::Error)]
#[error("a record must be one JSON object: {reason}")]
pub struct RecordError {
    /// What is wrong with the bytes.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_status(code: u16, retryable: bool) {
        let f = DeliveryFailure::Status {
            code,
            body: String::new(),
        };
        assert_eq!(f.is_retryable(), retryable, "HTTP {code}");
    }

    #[test]
    fn client_errors_are_final_except_408_and_429() {
        check_status(400, false);
        check_status(401, false);
        check_status(404, false);
        check_status(408, true);
        check_status(429, true);
        check_status(500, true);
        check_status(503, true);
    }

    #[test]
    fn permission_denied_is_not_retryable_but_disk_full_is() {
        let denied = SinkError::Io {
            connector: "Out".into(),
            path: "/x".into(),
            op: "write to",
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert!(!denied.is_retryable());
        let full = SinkError::Io {
            connector: "Out".into(),
            path: "/x".into(),
            op: "write to",
            source: io::Error::from(io::ErrorKind::StorageFull),
        };
        assert!(full.is_retryable());
        assert!(full.to_string().contains("`/x`"), "{full}");
    }

    #[test]
    fn no_topic_and_refusals_say_what_happened_and_are_final() {
        let no_topic = SinkError::NoTopic {
            connector: "Out".into(),
            dead_letter: "/d/Out.dead.jsonl".into(),
        };
        assert!(!no_topic.is_retryable());
        assert_eq!(
            no_topic.to_string(),
            "connector `Out`: the record has no topic (set `topic` on the connector or at the \
             `.to(...)` site); record written to dead-letter file `/d/Out.dead.jsonl`"
        );
        let refused = SinkError::Refused {
            connector: "Out".into(),
            place: "MQTT broker mqtt://b:1883".into(),
            reason: "the connection: bad user name or password".into(),
            dead_letter: "/d/Out.dead.jsonl".into(),
        };
        assert!(!refused.is_retryable());
        assert_eq!(refused.connector(), "Out");
        assert_eq!(
            refused.to_string(),
            "connector `Out`: MQTT broker mqtt://b:1883 refused the connection: bad user name or \
             password; record written to dead-letter file `/d/Out.dead.jsonl`"
        );
    }

    #[test]
    fn unknown_param_message_suggests_the_closest_name() {
        let e = ConfigError::UnknownParam {
            connector: "Hook".into(),
            role: "sink",
            kind: "http".into(),
            param: "retires".into(),
            suggestion: Some("retries".into()),
        };
        assert_eq!(
            e.to_string(),
            "connector `Hook`: unknown parameter `retires` for an http sink; did you mean `retries`?"
        );
    }
}

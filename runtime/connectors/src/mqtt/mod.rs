//! The `mqtt` connector: subscribe to topics (source) and publish records (sink), MQTT 5 or
//! 3.1.1.
//!
//! `connector Sensors = mqtt (host: "127.0.0.1", port: 1883, topic: "sensors/#", qos: 1)`
//!
//! Parameters of both roles: the broker address (`url`, `host`, `brokers` or `servers`: one of
//! `mqtt://host:port`, `tcp://host:port`, `mqtts://host:port`, `ssl://host:port`, `host:port`
//! or `host`), `port` (default 1883, or 8883 with TLS), `tls` (default: whether the scheme is
//! `mqtts://`/`ssl://`), `ca_file` (PEM CA certificates trusted for the broker's certificate;
//! default the system's), `client_cert` and `client_key` (PEM, for brokers that ask for a
//! client certificate), `protocol` (`5`, the default, or `"3.1.1"` for old brokers),
//! `client_id` (default `varpulis-<Name>-<pid>-in<n>` for a source and
//! `varpulis-<Name>-<pid>-out<n>` for a sink, `n` counting the clients of the process, so no
//! two clients of one process share a session), `qos` (0, 1 or 2, default 1), `username`, `password` (both with `${ENV}`
//! expansion), `keep_alive` (default `30s`; `0s` turns pings off, MQTT 3.1.1 only) and `topic`.
//! Source only ([`SOURCE_PARAMS`]): `clean_session` (default `true`). Sink only
//! ([`SINK_PARAMS`]): `retain` (default `false`), `queue_capacity` (default 10 000), `dead_letter`
//! (default `<Name>.dead.jsonl`) and `close_timeout` (default `10s`).
//!
//! This file reads and checks the parameters; [`source`] and [`sink`] hold the two roles and
//! `client` the difference between the two protocol versions (MQTT 5 messages carry user
//! properties: the W3C `traceparent` and the record's `idempotency-key`). Both roles run the
//! rumqttc event loop on a thread of their own, so the engine never waits on the network.
//!
//! **TLS** uses rustls with the ring provider. The certificate files are read when the
//! connector opens, so a missing or malformed file is a configuration error naming the
//! parameter. A broker whose certificate does not verify (unknown CA, wrong host name,
//! expired) is refused for good, like a bad login: the source stops with a fatal problem and the
//! sink dead-letters its records, since retrying cannot help.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::config::{expand_env, ConfigValue, ConnectorConfig, Params};
use crate::error::ConfigError;
use crate::source::{Source, SourceConfig, SourceContext, SourceSender};
use crate::{Sink, SinkContext};

pub use crate::tls::TlsSettings;

pub(crate) mod client;
pub mod sink;
pub mod source;

/// Parameters only the mqtt source reads (an mqtt connector used as a sink tolerates them).
pub const SOURCE_PARAMS: &[&str] = &["clean_session"];

/// Parameters only the mqtt sink reads (an mqtt connector used as a source tolerates them).
pub const SINK_PARAMS: &[&str] = &[
    "retain",
    "queue_capacity",
    "dead_letter",
    "close_timeout",
    "idempotency_field",
];

/// The port used when neither the address nor `port` gives one.
pub const DEFAULT_PORT: u16 = 1883;

/// The port used for TLS when neither the address nor `port` gives one.
pub const DEFAULT_TLS_PORT: u16 = 8883;

/// The largest payload a publish may carry (the MQTT limit on a packet's remaining length,
/// less room for the header and topic). Bigger records are dead-lettered by the sink.
pub const MAX_PACKET_BYTES: usize = 268_435_455;

/// The largest message a source accepts; a broker sending more breaks the connection, which is
/// reported and retried.
pub const MAX_INCOMING_BYTES: usize = 10 << 20;

/// The shortest `keep_alive` the MQTT 5 client supports (it always pings, so no `0s` either).
pub const MIN_V5_KEEP_ALIVE: Duration = Duration::from_secs(5);

/// The version of MQTT spoken to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// MQTT 3.1.1 (protocol level 4): no message properties, so no trace context or
    /// idempotency key travels with a message.
    V311,
    /// MQTT 5 (the default): user properties carry `traceparent` and `idempotency-key`; the
    /// broker says why it refuses a publish.
    V5,
}

impl Protocol {
    /// How the documentation and messages write it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::V311 => "3.1.1",
            Protocol::V5 => "5",
        }
    }

    /// Reads the `protocol` parameter: `5`, `"5"`, `"v5"` or `3`, `"3"`, `"v3"`, `"3.1.1"`.
    fn read(p: &mut Params<'_>) -> Result<Protocol, ConfigError> {
        let text = match p.value("protocol") {
            None => return Ok(Protocol::V5),
            Some(ConfigValue::Int(n)) => n.to_string(),
            Some(ConfigValue::Float(f)) => f.to_string(),
            Some(ConfigValue::Str(s) | ConfigValue::Ident(s)) => s.trim().to_ascii_lowercase(),
            Some(other) => {
                return Err(p.invalid(
                    "protocol",
                    format!("must be 5 or \"3.1.1\", found {}", other.kind_name()),
                ))
            }
        };
        match text.as_str() {
            "5" | "v5" | "5.0" => Ok(Protocol::V5),
            "3" | "v3" | "3.1.1" | "v3.1.1" => Ok(Protocol::V311),
            _ => Err(p.invalid(
                "protocol",
                format!("must be 5 (MQTT 5) or \"3.1.1\" (MQTT 3.1.1), found `{text}`"),
            )),
        }
    }
}

/// Settings shared by the mqtt source and sink, after validation and `${ENV}` expansion.
#[derive(Clone, PartialEq, Eq)]
pub struct MqttSettings {
    /// Broker host name or IP address (without brackets for IPv6).
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// The MQTT client identifier.
    pub client_id: String,
    /// Quality of service of subscriptions (source) or publishes (sink): 0, 1 or 2.
    pub qos: u8,
    /// Login, secrets already expanded.
    pub credentials: Option<(String, String)>,
    /// How often the client pings an idle broker; zero turns pings off.
    pub keep_alive: Duration,
    /// TLS settings; `None` for plain TCP.
    pub tls: Option<TlsSettings>,
    /// MQTT 5 or 3.1.1.
    pub protocol: Protocol,
}

impl std::fmt::Debug for MqttSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password is a secret: show only the user name.
        f.debug_struct("MqttSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("qos", &self.qos)
            .field("username", &self.credentials.as_ref().map(|(u, _)| u))
            .field("keep_alive", &self.keep_alive)
            .field("tls", &self.tls)
            .field("protocol", &self.protocol)
            .finish()
    }
}

impl MqttSettings {
    /// Reads the parameters common to both roles. `default_client_id` is used when the
    /// connector sets no `client_id`.
    pub(crate) fn read(
        p: &mut Params<'_>,
        default_client_id: String,
        base_dir: &Path,
    ) -> Result<MqttSettings, ConfigError> {
        let name = p.connector();
        let (host, address_port, scheme_tls) = read_address(p)?;
        let protocol = Protocol::read(p)?;
        let tls = match (p.optional_bool("tls")?, scheme_tls) {
            (Some(tls), Some(scheme)) if tls != scheme => {
                let fix = if tls { "mqtts://" } else { "mqtt://" };
                return Err(p.invalid(
                    "tls",
                    format!(
                        "`{tls}` contradicts the scheme of the address; write {fix} or drop `tls`"
                    ),
                ));
            }
            (Some(tls), _) => tls,
            (None, scheme) => scheme.unwrap_or(false),
        };
        let tls = if tls {
            Some(TlsSettings::read(p, base_dir, "broker")?)
        } else {
            for param in crate::tls::TLS_FILE_PARAMS {
                if p.string(param)?.is_some() {
                    return Err(p.invalid(
                        param,
                        "needs a TLS connection: write `mqtts://host:port` or `tls: true`",
                    ));
                }
            }
            None
        };
        let default_port = if tls.is_some() {
            DEFAULT_TLS_PORT
        } else {
            DEFAULT_PORT
        };
        let port = match (p.optional_count("port", 1)?, address_port) {
            (None, port) => port.unwrap_or(default_port),
            (Some(given), Some(port)) if given != u64::from(port) => {
                return Err(p.invalid(
                    "port",
                    format!("{given} contradicts the port {port} given in the address"),
                ))
            }
            (Some(given), _) => u16::try_from(given)
                .map_err(|_| p.invalid("port", format!("{given} is not a TCP port (1-65535)")))?,
        };
        let client_id = match p.string("client_id")? {
            Some("") => return Err(p.invalid("client_id", "must not be empty")),
            Some(id) => expand_env(name, "client_id", id)?,
            None => default_client_id,
        };
        let qos = p.count("qos", 1, 0)?;
        if qos > 2 {
            return Err(p.invalid("qos", format!("must be 0, 1 or 2, found {qos}")));
        }
        let username = match p.string("username")? {
            Some(u) => Some(expand_env(name, "username", u)?),
            None => None,
        };
        let password = match p.string("password")? {
            Some(pw) => Some(expand_env(name, "password", pw)?),
            None => None,
        };
        let credentials = match (username, password) {
            (Some(u), pw) => Some((u, pw.unwrap_or_default())),
            (None, Some(_)) => {
                return Err(p.invalid("password", "is set but `username` is not; set both"))
            }
            (None, None) => None,
        };
        let keep_alive = p.duration("keep_alive", Duration::from_secs(30))?;
        if protocol == Protocol::V5 && keep_alive < MIN_V5_KEEP_ALIVE {
            return Err(p.invalid(
                "keep_alive",
                "must be at least 5s with MQTT 5 (its client always pings); \
                 write `protocol: \"3.1.1\"` for shorter pings or `0s` (none)",
            ));
        }
        if !keep_alive.is_zero() && keep_alive < Duration::from_secs(1) {
            return Err(p.invalid(
                "keep_alive",
                "must be at least 1s (or 0s to turn pings off)",
            ));
        }
        Ok(MqttSettings {
            host,
            port,
            client_id,
            qos: u8::try_from(qos).unwrap_or(1),
            credentials,
            keep_alive,
            tls,
            protocol,
        })
    }

    /// `mqtt://host:port` (`mqtts://` with TLS), for messages and [`Source::describe`].
    pub fn address(&self) -> String {
        let scheme = if self.tls.is_some() { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Reads the address from whichever of `url`, `host`, `brokers`, `servers` is set (exactly one).
fn read_address(p: &mut Params<'_>) -> Result<Address, ConfigError> {
    let mut found: Option<(&'static str, &str)> = None;
    for key in ["url", "host", "brokers", "servers"] {
        if let Some(value) = p.string(key)? {
            if let Some((first, _)) = found {
                return Err(p.invalid(
                    key,
                    format!("the broker address is already set by `{first}`; keep one of them"),
                ));
            }
            found = Some((key, value));
        }
    }
    let Some((key, raw)) = found else {
        return Err(ConfigError::MissingParam {
            connector: p.connector().to_string(),
            param: "host",
            help: "write `host: \"127.0.0.1\"` or `url: \"mqtt://127.0.0.1:1883\"`",
        });
    };
    let text = expand_env(p.connector(), key, raw)?;
    parse_address(&text).map_err(|reason| p.invalid(key, reason))
}

/// A broker address: host, port if given, and whether the scheme asks for TLS (`None`: no
/// scheme).
type Address = (String, Option<u16>, Option<bool>);

/// Splits `mqtt://host:port`, `tcp://host:port`, `mqtts://host:port`, `ssl://host:port`,
/// `host:port`, `host` or `[v6]:port` into the host, the port if any, and whether the scheme
/// asks for TLS.
pub(crate) fn parse_address(text: &str) -> Result<Address, String> {
    let trimmed = text.trim();
    let (rest, tls) = match trimmed.split_once("://") {
        None => (trimmed, None),
        Some(("mqtt" | "tcp", rest)) => (rest, Some(false)),
        Some(("mqtts" | "ssl" | "tls", rest)) => (rest, Some(true)),
        Some((scheme, _)) => {
            return Err(format!(
                "\"{text}\": unknown scheme `{scheme}://`; use mqtt://host:port, mqtts://host:port or host:port"
            ))
        }
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '@', ' ', ',']) {
        return Err(format!(
            "\"{text}\" is not a broker address; write host, host:port or mqtt://host:port (one broker)"
        ));
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let Some((host, after)) = v6.split_once(']') else {
            return Err(format!("\"{text}\": missing `]` after the IPv6 address"));
        };
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("\"{text}\": expected `:port` after `]`")),
            },
        }
    } else {
        match rest.split_once(':') {
            Some((_, port)) if port.contains(':') => {
                return Err(format!(
                    "\"{text}\": write an IPv6 address in brackets, e.g. [::1]:1883"
                ))
            }
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err(format!("\"{text}\" has no host"));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("\"{text}\": `{p}` is not a TCP port (1-65535)")),
        },
    };
    Ok((host.to_string(), port, tls))
}

/// The default client identifier: `varpulis-<Name>-<pid>-<role><n>`, where `n` counts the
/// clients of this process, so no two of them (a connector read from several sites and written
/// to, or several pipelines in one server) share an identifier and kick each other off.
pub(crate) fn default_client_id(connector: &str, role: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("varpulis-{connector}-{}-{role}{n}", std::process::id())
}

/// Starts an mqtt source: subscribes to the `topic` filter(s) and delivers each message.
pub(crate) fn open_source(
    config: &SourceConfig,
    context: &SourceContext,
    sender: SourceSender,
) -> Result<Box<dyn Source>, ConfigError> {
    Ok(Box::new(source::MqttSource::start(
        config, context, sender,
    )?))
}

/// Opens an mqtt sink: publishes each record to its topic.
pub(crate) fn open_sink(
    config: &ConnectorConfig,
    context: &SinkContext,
) -> Result<Box<dyn Sink>, ConfigError> {
    Ok(Box::new(sink::MqttSink::open(config, context)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<(String, Option<u16>), String> {
        parse_address(text).map(|(host, port, _)| (host, port))
    }

    #[test]
    fn addresses_with_and_without_scheme_and_port() {
        assert_eq!(
            check("mqtt://broker:1884"),
            Ok(("broker".into(), Some(1884)))
        );
        assert_eq!(
            check("tcp://10.0.0.1:1883/"),
            Ok(("10.0.0.1".into(), Some(1883)))
        );
        assert_eq!(check("broker:1883"), Ok(("broker".into(), Some(1883))));
        assert_eq!(check("broker"), Ok(("broker".into(), None)));
        assert_eq!(check(" mqtt://broker "), Ok(("broker".into(), None)));
    }

    #[test]
    fn ipv6_addresses_need_brackets() {
        assert_eq!(check("[::1]:1883"), Ok(("::1".into(), Some(1883))));
        assert_eq!(check("mqtt://[::1]"), Ok(("::1".into(), None)));
        assert!(check("::1").expect_err("ambiguous").contains("brackets"));
        assert!(check("[::1").is_err());
    }

    #[test]
    fn tls_schemes_ask_for_tls() {
        assert_eq!(
            parse_address("mqtts://b:8883"),
            Ok(("b".into(), Some(8883), Some(true)))
        );
        assert_eq!(parse_address("ssl://b"), Ok(("b".into(), None, Some(true))));
        assert_eq!(
            parse_address("tcp://b"),
            Ok(("b".into(), None, Some(false)))
        );
        assert_eq!(parse_address("b"), Ok(("b".into(), None, None)));
    }

    #[test]
    fn bad_addresses_say_why() {
        assert!(check("http://b")
            .expect_err("scheme")
            .contains("unknown scheme"));
        assert!(check("b:0").expect_err("port 0").contains("not a TCP port"));
        assert!(check("b:99999")
            .expect_err("too big")
            .contains("not a TCP port"));
        assert!(check("b:x").is_err());
        assert!(check(":1883").expect_err("no host").contains("no host"));
        assert!(check("a:1,b:2").is_err());
        assert!(check("mqtt://b/path").is_err());
    }

    fn settings(params: &[(&str, crate::ConfigValue)]) -> Result<MqttSettings, ConfigError> {
        let config = params
            .iter()
            .fold(ConnectorConfig::new("Sensors", "mqtt"), |c, (k, v)| {
                c.param(*k, v.clone())
            });
        let mut p = Params::for_role(&config, "source");
        MqttSettings::read(&mut p, "id".into(), Path::new("/base"))
    }

    #[test]
    fn tls_comes_from_the_scheme_or_the_tls_parameter_and_changes_the_default_port() {
        use crate::ConfigValue::{Bool, Str};
        let plain = settings(&[("host", Str("b".into()))]).expect("valid");
        assert!(plain.tls.is_none());
        assert_eq!(plain.address(), "mqtt://b:1883");
        let tls = settings(&[("url", Str("mqtts://b".into()))]).expect("system roots");
        assert_eq!(tls.address(), "mqtts://b:8883");
        let tls = settings(&[("host", Str("b".into())), ("tls", Bool(true))]).expect("valid");
        assert_eq!(tls.tls.as_ref().map(|t| t.ca_file.clone()), Some(None));
        let err = settings(&[("url", Str("mqtt://b".into())), ("tls", Bool(true))])
            .expect_err("contradiction");
        assert!(err.to_string().contains("contradicts the scheme"), "{err}");
    }

    #[test]
    fn certificate_files_are_checked_when_the_connector_opens() {
        use crate::ConfigValue::Str;
        let err = settings(&[("host", Str("b".into())), ("ca_file", Str("ca.pem".into()))])
            .expect_err("no TLS");
        assert!(err.to_string().contains("needs a TLS connection"), "{err}");
        let err = settings(&[
            ("url", Str("mqtts://b".into())),
            ("ca_file", Str("missing-ca.pem".into())),
        ])
        .expect_err("missing file");
        assert!(
            err.to_string().starts_with(
                "connector `Sensors`: parameter `ca_file`: cannot read certificates from `/base/missing-ca.pem`"
            ),
            "{err}"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let err = settings(&[
            ("url", Str("mqtts://b".into())),
            ("ca_file", Str(empty.display().to_string())),
        ])
        .expect_err("no certificate");
        assert!(
            err.to_string().contains("holds no usable CA certificate"),
            "{err}"
        );
        let err = settings(&[
            ("url", Str("mqtts://b".into())),
            ("client_cert", Str("c.pem".into())),
        ])
        .expect_err("key missing");
        assert!(err.to_string().contains("`client_key` is not"), "{err}");
    }

    #[test]
    fn port_parameter_and_address_port_must_agree() {
        use crate::ConfigValue::{Int, Str};
        let s = settings(&[("host", Str("b".into())), ("port", Int(1884))]).expect("valid");
        assert_eq!((s.host.as_str(), s.port), ("b", 1884));
        assert_eq!(s.address(), "mqtt://b:1884");
        let s = settings(&[("url", Str("b:1885".into()))]).expect("valid");
        assert_eq!(s.port, 1885);
        let err = settings(&[("url", Str("b:1885".into())), ("port", Int(1886))])
            .expect_err("contradiction");
        assert!(err.to_string().contains("contradicts"), "{err}");
        let err = settings(&[("host", Str("a".into())), ("servers", Str("b".into()))])
            .expect_err("two addresses");
        assert!(err.to_string().contains("already set by `host`"), "{err}");
    }

    #[test]
    fn missing_address_and_sub_second_keep_alive_are_rejected() {
        let err = settings(&[]).expect_err("no address");
        assert!(
            err.to_string()
                .contains("missing required parameter `host`"),
            "{err}"
        );
        let err = settings(&[
            ("host", crate::ConfigValue::Str("b".into())),
            ("keep_alive", crate::ConfigValue::Duration(500_000_000)),
        ])
        .expect_err("500ms");
        assert!(err.to_string().contains("`keep_alive`"), "{err}");
    }

    #[test]
    fn protocol_defaults_to_5_and_accepts_the_usual_spellings() {
        use crate::ConfigValue::{Bool, Duration as D, Int, Str};
        let host = ("host", Str("b".into()));
        let protocol = |v| settings(&[host.clone(), ("protocol", v)]).map(|s| s.protocol);
        assert_eq!(
            settings(std::slice::from_ref(&host))
                .map(|s| s.protocol)
                .ok(),
            Some(Protocol::V5)
        );
        for v in [Int(5), Str("5".into()), Str("V5".into())] {
            assert_eq!(protocol(v).ok(), Some(Protocol::V5));
        }
        for v in [
            Int(3),
            Str("3".into()),
            Str("v3".into()),
            Str("3.1.1".into()),
        ] {
            assert_eq!(protocol(v).ok(), Some(Protocol::V311));
        }
        let err = protocol(Int(4)).expect_err("level 4 is not a version name");
        assert_eq!(
            err.to_string(),
            "connector `Sensors`: parameter `protocol`: must be 5 (MQTT 5) or \"3.1.1\" (MQTT 3.1.1), found `4`"
        );
        assert!(protocol(Bool(true)).is_err());
        let no_pings = |p: &str| {
            settings(&[
                host.clone(),
                ("protocol", Str(p.into())),
                ("keep_alive", D(0)),
            ])
        };
        assert!(no_pings("3.1.1").is_ok());
        let err = no_pings("5").expect_err("MQTT 5 always pings");
        assert!(err.to_string().contains("protocol: \"3.1.1\""), "{err}");
    }

    #[test]
    fn debug_output_hides_the_password() {
        use crate::ConfigValue::Str;
        let s = settings(&[
            ("host", Str("b".into())),
            ("username", Str("ann".into())),
            ("password", Str("s3cret".into())),
        ])
        .expect("valid");
        let shown = format!("{s:?}");
        assert!(
            shown.contains("ann") && !shown.contains("s3cret"),
            "{shown}"
        );
    }
}

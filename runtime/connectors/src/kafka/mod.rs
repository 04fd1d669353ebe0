//! The `kafka` connector: a consumer-group source and a producer sink on librdkafka.
//!
//! ```text
//! connector Orders = kafka (brokers: "127.0.0.1:9092", topic: "orders", group_id: "fraud")
//! ```
//!
//! This module reads and checks the parameters both roles share and builds the librdkafka
//! configuration; [`source`] and [`sink`] hold the two roles. The user guide is
//! `docs/connectors/kafka.md`.
//!
//! Shared parameters:
//! - the broker address, under any one of `brokers`, `url`, `host` or `servers`
//!   (docs/LANGUAGE.md#connector): a string `"h1:9092,h2:9092"` or an array of strings; a `kafka://` prefix is dropped
//!   and a missing port means librdkafka's 9092;
//! - `topic`: a string (the source also takes an array of topics);
//! - `properties`: an array of `"key=value"` strings handed to librdkafka as they are (SASL
//!   credentials, timeouts, ...). Keys that a Varpulis parameter controls are refused with the
//!   name of that parameter, so the at-least-once bookkeeping cannot be switched off by accident.
//!
//! `${ENV}` references expand in the address, topics, `group_id` and `properties`, where secrets
//! appear. Each role accepts the other's parameters ([`SOURCE_PARAMS`], [`SINK_PARAMS`]) since one
//! connector may be read by `.from` and written by `.to`.

use std::fmt;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientConfig;

use crate::config::{expand_env, ConfigValue, ConnectorConfig, Params};
use crate::error::ConfigError;
use crate::source::{Source, SourceConfig, SourceContext, SourceSender};
use crate::{Sink, SinkContext};

pub mod sink;
pub mod source;

pub use sink::{Acks, Compression, KafkaSink, KafkaSinkSettings};
pub use source::{KafkaSource, KafkaSourceSettings, Start};

/// Parameters only the kafka source reads (a kafka connector used as a sink tolerates them).
pub const SOURCE_PARAMS: &[&str] = &[
    "group_id",
    "start",
    "auto_offset_reset",
    "session_timeout",
    "state_per_partition",
];

/// Parameters only the kafka sink reads (a kafka connector used as a source tolerates them).
pub const SINK_PARAMS: &[&str] = &[
    "batch_size",
    "linger_ms",
    "compression_type",
    "acks",
    "exactly_once",
    "dead_letter",
    "queue_capacity",
    "close_timeout",
];

/// The names that set the broker address; docs/LANGUAGE.md#connector gives all four the same meaning.
const ADDRESS_PARAMS: &[&str] = &["brokers", "url", "host", "servers"];

/// librdkafka properties that a Varpulis parameter controls, with the parameter to use instead.
const MANAGED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "brokers"),
    ("metadata.broker.list", "brokers"),
    ("group.id", "group_id"),
    ("auto.offset.reset", "start"),
    ("session.timeout.ms", "session_timeout"),
    (
        "enable.auto.offset.store",
        "(none: the source stores offsets after delivery)",
    ),
    (
        "enable.auto.commit",
        "(none: the source commits stored offsets)",
    ),
    ("enable.idempotence", "exactly_once"),
    ("acks", "acks"),
    ("request.required.acks", "acks"),
    ("compression.codec", "compression_type"),
    ("compression.type", "compression_type"),
    ("linger.ms", "linger_ms"),
    ("queue.buffering.max.ms", "linger_ms"),
    ("batch.num.messages", "batch_size"),
    ("queue.buffering.max.messages", "queue_capacity"),
];

/// Starts a kafka source: a consumer thread in the connector's consumer group.
pub(crate) fn open_source(
    config: &SourceConfig,
    _context: &SourceContext,
    sender: SourceSender,
) -> Result<Box<dyn Source>, ConfigError> {
    Ok(Box::new(KafkaSource::start(config, sender)?))
}

/// Opens a kafka sink: a producer with a delivery-report thread and a dead-letter file.
pub(crate) fn open_sink(
    config: &ConnectorConfig,
    context: &SinkContext,
) -> Result<Box<dyn Sink>, ConfigError> {
    Ok(Box::new(KafkaSink::open(config, context)?))
}

/// What both roles share: where the brokers are and the extra librdkafka properties.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// Broker addresses, comma-separated, as librdkafka's `bootstrap.servers` wants them.
    pub brokers: String,
    /// Extra librdkafka properties, `${ENV}` already expanded (values may be secrets).
    pub properties: Vec<(String, String)>,
}

impl fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Property values often hold passwords: show only the keys.
        let keys: Vec<&str> = self.properties.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ClientSettings")
            .field("brokers", &self.brokers)
            .field("properties", &keys)
            .finish()
    }
}

impl ClientSettings {
    /// Reads the address and `properties` parameters.
    pub(crate) fn read(p: &mut Params<'_>, config: &ConnectorConfig) -> Result<Self, ConfigError> {
        let brokers = read_brokers(p, config)?;
        let mut properties = Vec::new();
        for raw in p.strings("properties")? {
            let Some((key, value)) = raw.split_once('=') else {
                return Err(p.invalid(
                    "properties",
                    format!("\"{raw}\" must look like \"key=value\""),
                ));
            };
            let key = key.trim();
            if key.is_empty() {
                return Err(p.invalid("properties", format!("\"{raw}\" has no key")));
            }
            if let Some((_, param)) = MANAGED_PROPERTIES.iter().find(|(k, _)| *k == key) {
                let fix = if param.starts_with('(') {
                    format!("it cannot be set {param}")
                } else {
                    format!("use the `{param}` parameter")
                };
                return Err(p.invalid(
                    "properties",
                    format!("`{key}` is managed by the connector; {fix}"),
                ));
            }
            let value = expand_env(p.connector(), "properties", value.trim())?;
            properties.push((key.to_string(), value));
        }
        Ok(ClientSettings {
            brokers,
            properties,
        })
    }

    /// A librdkafka configuration with the brokers and the extra properties set.
    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }
}

/// Reads the one address parameter given (under any of its names) into `h1:p1,h2:p2`.
fn read_brokers(p: &mut Params<'_>, config: &ConnectorConfig) -> Result<String, ConfigError> {
    let given: Vec<&'static str> = ADDRESS_PARAMS
        .iter()
        .copied()
        .filter(|n| config.params.contains_key(*n))
        .collect();
    p.tolerate(ADDRESS_PARAMS);
    let name = match given.as_slice() {
        [] => {
            return Err(ConfigError::MissingParam {
                connector: config.name.clone(),
                param: "brokers",
                help: "write `brokers: \"127.0.0.1:9092\"`",
            })
        }
        [one] => *one,
        [first, second, ..] => {
            return Err(p.invalid(
                second,
                format!("`{first}` already sets the broker address; keep only one of them"),
            ))
        }
    };
    let raw: Vec<&str> = match config.params.get(name) {
        Some(ConfigValue::Array(_)) => p.strings(name)?,
        _ => p.string(name)?.into_iter().collect(),
    };
    let mut brokers = Vec::new();
    for text in raw {
        let text = expand_env(&config.name, name, text)?;
        for item in text.split(',') {
            let item = item.trim();
            let address = strip_scheme(item).trim_end_matches('/');
            check_address(address).map_err(|reason| p.invalid(name, reason))?;
            brokers.push(address.to_string());
        }
    }
    if brokers.is_empty() {
        return Err(p.invalid(name, "no broker address given"));
    }
    Ok(brokers.join(","))
}

/// Drops a `kafka://` prefix (any case).
fn strip_scheme(item: &str) -> &str {
    match item.get(..8) {
        Some(prefix) if prefix.eq_ignore_ascii_case("kafka://") => &item[8..],
        _ => item,
    }
}

/// Checks one `host[:port]` address.
fn check_address(address: &str) -> Result<(), String> {
    if address.is_empty() {
        return Err("an empty broker address (look for a stray comma)".into());
    }
    if address.contains("://") {
        return Err(format!(
            "\"{address}\" must be host:port (a `kafka://` prefix is allowed, no other scheme)"
        ));
    }
    if address.contains(char::is_whitespace) || address.contains('/') {
        return Err(format!("\"{address}\" is not a host:port address"));
    }
    // `[::1]:9092` keeps its colons inside brackets; otherwise the port follows the last colon.
    let port = match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && (!host.contains(':') || host.ends_with(']')) => {
            Some(port)
        }
        Some(_) if address.starts_with('[') => None,
        Some(_) => return Err(format!("\"{address}\" is not a host:port address")),
        None => None,
    };
    match port.map(str::parse::<u16>) {
        None | Some(Ok(1..)) => Ok(()),
        Some(_) => Err(format!("\"{address}\" has an invalid port")),
    }
}

/// librdkafka refused the configuration (an unknown or invalid property, a feature this build
/// lacks); the message names the property.
pub(crate) fn rejected_config(
    connector: &str,
    client: &ClientSettings,
    e: KafkaError,
) -> ConfigError {
    let param = if client.properties.is_empty() {
        "kind"
    } else {
        "properties"
    };
    ConfigError::InvalidValue {
        connector: connector.to_string(),
        param: param.into(),
        reason: format!("librdkafka rejected the configuration: {e}"),
    }
}

/// An rdkafka error without its "Message consumption error:" style wrapping, which says nothing
/// to a user: `BrokerTransportFailure (Local: Broker transport failure)`.
pub(crate) fn describe(e: &KafkaError) -> String {
    match e.rdkafka_error_code() {
        Some(code) => code.to_string(),
        None => e.to_string(),
    }
}

/// Error codes that mean the brokers refuse us for good (login, authorization, TLS, a fatal
/// client state): retrying cannot help until the configuration changes.
pub(crate) fn is_refusal(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::Fatal
            | C::Authentication
            | C::SaslAuthenticationFailed
            | C::TopicAuthorizationFailed
            | C::GroupAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::TransactionalIdAuthorizationFailed
            | C::SSL
    )
}

/// The topics parameter: one string, or (`many`) an array of strings; `${ENV}` expanded.
pub(crate) fn read_topics(
    p: &mut Params<'_>,
    config: &ConnectorConfig,
    many: bool,
) -> Result<Vec<String>, ConfigError> {
    let raw: Vec<&str> = match config.params.get("topic") {
        Some(ConfigValue::Array(_)) if many => p.strings("topic")?,
        _ => p.string("topic")?.into_iter().collect(),
    };
    let mut topics = Vec::new();
    for t in raw {
        let t = expand_env(&config.name, "topic", t)?;
        check_topic(&t).map_err(|reason| p.invalid("topic", reason))?;
        topics.push(t);
    }
    Ok(topics)
}

/// Checks a topic name against Kafka's rules (at most 249 of `[a-zA-Z0-9._-]`).
pub(crate) fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("the topic name is empty".into());
    }
    if topic.len() > 249 {
        return Err(format!("topic \"{topic}\" is longer than 249 characters"));
    }
    if topic == "." || topic == ".." {
        return Err(format!("\"{topic}\" is not a valid topic name"));
    }
    if let Some(c) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic \"{topic}\" contains `{c}`; Kafka topic names use only letters, digits, `.`, `_` and `-`"
        ));
    }
    Ok(())
}

/// A duration as whole milliseconds for a librdkafka `*.ms` property (at least 1 when non-zero).
pub(crate) fn millis(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 && !d.is_zero() { 1 } else { ms }.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(params: &[(&str, ConfigValue)]) -> Result<ClientSettings, ConfigError> {
        let config = params
            .iter()
            .fold(ConnectorConfig::new("Orders", "kafka"), |c, (k, v)| {
                c.param(*k, v.clone())
            });
        let mut p = Params::for_role(&config, "sink");
        let settings = ClientSettings::read(&mut p, &config)?;
        p.finish()?;
        Ok(settings)
    }

    fn s(v: &str) -> ConfigValue {
        ConfigValue::Str(v.into())
    }

    #[test]
    fn brokers_accept_a_list_string_an_array_and_the_other_names() {
        let one = check(&[("brokers", s("kafka://h1:9092, h2:9093"))]).expect("valid");
        assert_eq!(one.brokers, "h1:9092,h2:9093");
        let arr = check(&[(
            "servers",
            ConfigValue::Array(vec![s("h1:9092"), s("KAFKA://[::1]:9092/")]),
        )])
        .expect("valid");
        assert_eq!(arr.brokers, "h1:9092,[::1]:9092");
        let bare = check(&[("host", s("localhost"))]).expect("port defaults");
        assert_eq!(bare.brokers, "localhost");
    }

    #[test]
    fn two_address_names_or_a_bad_address_are_rejected() {
        let err = check(&[("brokers", s("a:1")), ("url", s("b:2"))]).expect_err("two");
        assert_eq!(
            err.to_string(),
            "connector `Orders`: parameter `url`: `brokers` already sets the broker address; keep only one of them"
        );
        for bad in ["http://h:9092", "h:notaport", "h1:9092,,h2:9092", "h:0"] {
            let err = check(&[("brokers", s(bad))]).expect_err(bad);
            assert!(err.to_string().contains("parameter `brokers`"), "{err}");
        }
        let err = check(&[]).expect_err("missing");
        assert!(err
            .to_string()
            .contains("missing required parameter `brokers`"));
    }

    #[test]
    fn properties_pass_through_but_managed_keys_name_their_parameter() {
        let props = ConfigValue::Array(vec![s("security.protocol = SASL_PLAINTEXT")]);
        let ok = check(&[("brokers", s("h:1")), ("properties", props)]).expect("valid");
        assert_eq!(
            ok.properties,
            vec![(
                "security.protocol".to_string(),
                "SASL_PLAINTEXT".to_string()
            )]
        );
        let props = ConfigValue::Array(vec![s("group.id=x")]);
        let err = check(&[("brokers", s("h:1")), ("properties", props)]).expect_err("managed");
        assert_eq!(
            err.to_string(),
            "connector `Orders`: parameter `properties`: `group.id` is managed by the connector; use the `group_id` parameter"
        );
        let props = ConfigValue::Array(vec![s("no_equals_sign")]);
        assert!(check(&[("brokers", s("h:1")), ("properties", props)]).is_err());
    }

    #[test]
    fn debug_output_hides_property_values() {
        let props = ConfigValue::Array(vec![s("sasl.password=s3cret")]);
        let settings = check(&[("brokers", s("h:1")), ("properties", props)]).expect("valid");
        let shown = format!("{settings:?}");
        assert!(
            shown.contains("sasl.password") && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(check_topic("orders.v1-eu_2").is_ok());
        assert!(check_topic("").is_err());
        assert!(check_topic("a/b").is_err());
        assert!(check_topic("..").is_err());
    }
}

//! The compiler's table of connector parameters (`W0111`) agrees with the
//! connectors: every parameter `varpulis check` accepts for a kind is one the
//! runtime's source or sink of that kind reads, and the role-specific
//! parameters the connectors export are all in the table. Nothing is sent
//! anywhere: brokers point at 127.0.0.1:1 and sources are stopped at once.
//! The parameter tests need every connector built (`--all-features`); the
//! sink-only table is checked in every build.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[cfg(all(feature = "mqtt", feature = "kafka", feature = "websocket"))]
use varpulis_compiler::capabilities::{connector_kind_params, CONNECTOR_KINDS};
use varpulis_compiler::capabilities::{connector_kinds, is_sink_only};
#[cfg(all(feature = "mqtt", feature = "kafka", feature = "websocket"))]
use varpulis_connectors::{open_sink, ConfigValue, SinkContext};
use varpulis_connectors::{
    open_source, ConfigError, ConnectorConfig, SourceConfig, SourceContext, SourceSender,
};

/// The kinds `capabilities::SINK_ONLY_KINDS` lists (which a `config:` block
/// refuses under `sources:`, E0505) are exactly those without a source.
#[test]
fn sink_only_kinds_are_the_kinds_without_a_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    for kind in connector_kinds() {
        let (tx, _rx) = crossbeam_channel::bounded(1);
        let stopping = Arc::new(AtomicBool::new(true));
        let result = open_source(
            &SourceConfig::new(ConnectorConfig::new("C", kind), 0),
            &SourceContext::new(dir.path()),
            SourceSender::new(tx, stopping),
        );
        match result {
            Err(ConfigError::UnsupportedKind { .. }) => {
                assert!(
                    is_sink_only(kind),
                    "`{kind}` has no source: list it as sink-only"
                );
            }
            // Not in this build: nothing to learn about its roles.
            Err(ConfigError::NotBuilt { .. }) => {}
            Ok(mut source) => {
                source.stop();
                assert!(!is_sink_only(kind), "`{kind}` has a source");
            }
            Err(_) => assert!(!is_sink_only(kind), "`{kind}` has a source"),
        }
    }
}

#[cfg(all(feature = "mqtt", feature = "kafka", feature = "websocket"))]
fn s(v: &str) -> ConfigValue {
    ConfigValue::Str(v.to_string())
}

/// A configuration of `kind` that opens cleanly in `role`.
#[cfg(all(feature = "mqtt", feature = "kafka", feature = "websocket"))]
fn base(kind: &str, role: &str, dir: &std::path::Path) -> Option<ConnectorConfig> {
    let c = ConnectorConfig::new("C", kind);
    let file = |name: &str| s(&dir.join(name).display().to_string());
    Some(match (kind, role) {
        ("console", "sink") => c,
        ("file", "sink") => c.param("path", file("out.jsonl")),
        ("file", "source") => c.param("path", file("in.jsonl")),
        ("http", "sink") => c.param("url", s("http://127.0.0.1:1/x")),
        ("http", "source") => c.param("url", s("http://127.0.0.1:0/")),
        ("mqtt", _) => c
            .param("host", s("127.0.0.1"))
            .param("port", ConfigValue::Int(1))
            .param("topic", s("t")),
        ("kafka", _) => c.param("brokers", s("127.0.0.1:1")).param("topic", s("t")),
        ("websocket", _) => c.param("url", s("ws://127.0.0.1:1/")),
        _ => return None,
    })
}

/// Whether opening `config` in `role` reports `param` as unknown.
#[cfg(all(feature = "mqtt", feature = "kafka", feature = "websocket"))]
fn unknown(config: &ConnectorConfig, role: &str, param: &str, dir: &std::path::Path) -> bool {
    let result = if role == "sink" {
        open_sink(config, &SinkContext::new(dir)).map(|mut sink| {
            let _ = sink.close();
        })
    } else {
        let (tx, _rx) = crossbeam_channel::bounded(1);
        let stopping = Arc::new(AtomicBool::new(true));
        open_source(
            &SourceConfig::new(config.clone(), 0),
            &SourceContext::new(dir),
            SourceSender::new(tx, stopping),
        )
        .map(|mut source| source.stop())
    };
    matches!(result, Err(ConfigError::UnknownParam { param: p, .. }) if p == param)
}

#[test]
#[cfg(all(feature = "mqtt", feature = "kafka", feature = "websocket"))]
fn every_parameter_check_accepts_is_read_by_a_connector_of_its_kind() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.jsonl"), "").expect("input file");
    for (kind, params) in CONNECTOR_KINDS {
        let roles: Vec<&str> = ["sink", "source"]
            .into_iter()
            .filter(|r| base(kind, r, dir.path()).is_some())
            .collect();
        assert!(!roles.is_empty(), "no base configuration for `{kind}`");
        // A misspelt name is refused by every role: the probe works.
        for role in &roles {
            let config = base(kind, role, dir.path())
                .expect("base")
                .param("surely_not_a_param", s("x"));
            assert!(
                unknown(&config, role, "surely_not_a_param", dir.path()),
                "`{kind}` {role} accepted a made-up parameter"
            );
        }
        for param in *params {
            let known = roles.iter().any(|role| {
                let config = base(kind, role, dir.path())
                    .expect("base")
                    .param(*param, s("x"));
                !unknown(&config, role, param, dir.path())
            });
            assert!(
                known,
                "`varpulis check` accepts `{param}` for `{kind}` connectors, but no {kind} connector reads it"
            );
        }
    }
}

#[test]
#[cfg(all(feature = "mqtt", feature = "kafka", feature = "websocket"))]
fn role_specific_parameters_are_in_the_check_table() {
    use varpulis_connectors::{file, http, kafka, mqtt, websocket};
    for (kind, params) in [
        ("file", file::SINK_PARAMS),
        ("file", file::source::SOURCE_PARAMS),
        ("http", http::SINK_PARAMS),
        ("http", http::source::SOURCE_PARAMS),
        ("kafka", kafka::SOURCE_PARAMS),
        ("kafka", kafka::SINK_PARAMS),
        ("mqtt", mqtt::SOURCE_PARAMS),
        ("mqtt", mqtt::SINK_PARAMS),
        ("websocket", websocket::SOURCE_PARAMS),
        ("websocket", websocket::SINK_PARAMS),
    ] {
        let table = connector_kind_params(kind).expect("kind in the table");
        for p in params {
            assert!(
                table.contains(p),
                "`{p}` of {kind} connectors is missing from capabilities::CONNECTOR_KINDS"
            );
        }
    }
}

//! The capability table: every pipeline operator the language knows, its
//! argument shape and whether the engine runs it.
//!
//! One table serves the checker (unknown operators, arity, "not supported
//! yet") and the lowering (which must accept exactly the [`Support::Supported`]
//! rows), so that `check` and `run` never disagree (docs/LANGUAGE.md#not-supported-yet).
//! The [`Op`] enum is generated from the same list: consumers match on it
//! rather than on name strings, and `compiler/tests/operators.rs` checks that
//! every operator has a row, hover, signature help and completion, and that
//! the lowering accepts exactly the supported rows.

/// Whether the engine runs an operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Checked and lowered.
    Supported,
    /// Parsed and checked for arity only; reported as "not supported yet".
    NotYet,
    /// Accepted and ignored with a warning (`.tap`).
    NoOp,
}

/// One operator row.
#[derive(Clone, Copy, Debug)]
pub struct OpInfo {
    /// The operator.
    pub op: Op,
    /// Name after the dot.
    pub name: &'static str,
    /// Whether the engine runs it.
    pub support: Support,
    /// Minimum number of positional arguments.
    pub min_positional: usize,
    /// Maximum number of positional arguments (`usize::MAX` = any).
    pub max_positional: usize,
    /// Accepted named arguments (`None` = any name, e.g. item lists).
    pub named: Option<&'static [&'static str]>,
    /// One-line description for help texts and hovers.
    pub summary: &'static str,
}

const ANY: usize = usize::MAX;

/// Declares [`Op`], its names and [`OPERATORS`] from one list, so that a
/// variant cannot exist without its row (same order: `Op as usize` indexes
/// the table).
macro_rules! operators {
    ($($variant:ident = $name:literal, $support:ident, $min:expr, $max:expr, $named:expr, $summary:literal;)*) => {
        /// A pipeline operator. The single source of operator names: the
        /// checker, the lowering, completion and signature help match on it
        /// (exhaustively where it matters), so adding a variant makes every
        /// consumer decide what it does with it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Op {
            $(
                #[doc = concat!("`.", $name, "`: ", $summary)]
                $variant,
            )*
        }

        impl Op {
            /// Every operator, in table order.
            pub const ALL: &'static [Op] = &[$(Op::$variant),*];

            /// The name after the dot.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Op::$variant => $name,)*
                }
            }

            /// The operator called `name`, if any.
            pub fn from_name(name: &str) -> Option<Op> {
                match name {
                    $($name => Some(Op::$variant),)*
                    _ => None,
                }
            }
        }

        /// Every operator, supported or not, in [`Op`] order.
        pub const OPERATORS: &[OpInfo] = &[
            $(
                OpInfo {
                    op: Op::$variant,
                    name: $name,
                    support: Support::$support,
                    min_positional: $min,
                    max_positional: $max,
                    named: $named,
                    summary: $summary,
                },
            )*
        ];
    };
}

operators! {
    Where = "where", Supported, 1, 1, Some(&[]), "keep events for which the condition is true";
    Filter = "filter", Supported, 1, 1, Some(&[]), "alias of `.where`";
    Select = "select", Supported, 0, ANY, None, "project fields: `field` or `name: expr`";
    Window = "window", Supported, 0, 1, Some(&["sliding", "session", "policy", "max_events"]), "group events in a time or count window";
    PartitionBy = "partition_by", Supported, 1, 1, Some(&["max_keys", "evict", "idle"]), "run windows, aggregates and sequences per key";
    Aggregate = "aggregate", Supported, 0, ANY, None, "compute `name: aggregate(...)` per window";
    Having = "having", Supported, 1, 1, Some(&[]), "filter aggregate results";
    Emit = "emit", Supported, 0, ANY, None, "produce the stream's visible output";
    To = "to", Supported, 1, 1, Some(&["topic", "key"]), "send events to a connector";
    Within = "within", Supported, 1, 1, Some(&[]), "deadline of a sequence match";
    Late = "late", Supported, 0, 0, Some(&[]), "the events a stream dropped as late (first operator only)";
    Timeouts = "timeouts", Supported, 0, 0, Some(&[]), "the expired partial matches of a sequence stream or pattern (first operator only)";
    Policy = "policy", Supported, 1, 1, Some(&[]), "event selection policy of a sequence";
    LimitRuns = "limit_runs", Supported, 1, 1, Some(&["total", "on_full"]), "bound the open runs of a sequence (per key, `total:`, `on_full:`)";
    Not = "not", Supported, 1, 1, Some(&[]), "discard partial matches when an event arrives";
    On = "on", Supported, 1, 1, Some(&[]), "join condition";
    Print = "print", Supported, 0, ANY, Some(&[]), "print events or values";
    Log = "log", Supported, 0, 0, Some(&["level", "message", "data"]), "log events";
    Distinct = "distinct", Supported, 0, 1, Some(&["max", "evict"]), "drop repeated events or values";
    Limit = "limit", Supported, 1, 1, Some(&[]), "pass the first n events";
    First = "first", Supported, 0, 0, Some(&[]), "pass the first event";
    Watermark = "watermark", Supported, 0, 0, Some(&["out_of_order"]), "declare the allowed out-of-orderness";
    AllowedLateness = "allowed_lateness", Supported, 1, 1, Some(&[]), "process late events within a bound";
    Context = "context", Supported, 1, 1, Some(&[]), "run the stream in a named context (its own engine thread in `varpulis run`)";
    Tap = "tap", NoOp, 0, ANY, None, "does nothing";
    TrendAggregate = "trend_aggregate", Supported, 0, ANY, None, "aggregate over Kleene trends";
    Forecast = "forecast", Supported, 0, 0, Some(crate::forecast::PARAMS), "predict sequence completion";
    Enrich = "enrich", Supported, 1, 1, Some(&["key", "fields", "cache_ttl", "timeout", "fallback"]), "look up extra fields in an external store";
    Score = "score", Supported, 0, 0, Some(&["model", "inputs", "outputs"]), "score events with an ONNX model";
    Pattern = "pattern", Supported, 0, ANY, None, "boolean test over the window's events: `.pattern(name: events => condition)`";
    Process = "process", Supported, 1, 1, Some(&[]), "call a function per event";
    Map = "map", Supported, 1, ANY, None, "keep every field and add or replace `name: expr` fields";
    Collect = "collect", Supported, 0, 0, Some(&["as"]), "one event per window holding its events as an array (`as: name`)";
    OnError = "on_error", Supported, 1, 1, Some(&["topic", "key"]), "send the stream's runtime errors to a connector as error records";
    Fork = "fork", NotYet, 0, ANY, None, "split a stream; declare one stream per branch that reads this stream instead (docs/DESIGN.md)";
    Any = "any", Supported, 1, 1, Some(&[]), "a window's last event when the condition holds for any of its events";
    All = "all", Supported, 1, 1, Some(&[]), "a window's last event when the condition holds for all of its events";
    Concurrent = "concurrent", Supported, 0, 0, Some(&["workers"]), "run the partitions on several engine shards";
    OrderBy = "order_by", Supported, 1, ANY, Some(&[]), "release a window's events sorted by keys (`desc(k)` for largest first)";
}

impl Op {
    /// The operator's row in [`OPERATORS`].
    pub fn info(self) -> &'static OpInfo {
        &OPERATORS[self as usize]
    }

    /// Whether the engine runs it.
    pub fn support(self) -> Support {
        self.info().support
    }

    /// Whether `name` is this operator's name.
    pub fn is(self, name: &str) -> bool {
        self.name() == name
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The row of operator `name`.
pub fn operator(name: &str) -> Option<&'static OpInfo> {
    Op::from_name(name).map(Op::info)
}

/// Operator names, for did-you-mean.
pub fn operator_names() -> impl Iterator<Item = &'static str> {
    Op::ALL.iter().map(|o| o.name())
}

/// Whether the engine runs `sequence(...)` sources.
pub const SEQUENCE_SOURCE: Support = Support::Supported;
/// Whether the engine runs `timer(...)` sources.
pub const TIMER_SOURCE: Support = Support::Supported;
/// Whether the engine honours `policy` clauses of named patterns.
pub const PATTERN_POLICY: Support = Support::Supported;

/// Selection policies accepted by `policy NAME` and `.policy(NAME)`
/// (docs/PATTERNS.md, Selection policies); `reference` is the default.
pub const SELECTION_POLICIES: &[&str] = &[
    "reference",
    "strict_contiguity",
    "skip_till_next_match",
    "skip_till_any_match",
];

/// Connector kinds with their known parameters and the kind of value each
/// takes. Other kinds (`database`, `redis`, ...) and other parameters are
/// accepted without checks.
pub const CONNECTOR_PARAMS: &[(&str, ParamKind)] = &[
    ("url", ParamKind::Str),
    ("host", ParamKind::Str),
    ("brokers", ParamKind::StrOrList),
    ("servers", ParamKind::StrOrList),
    ("topic", ParamKind::Str),
    ("port", ParamKind::Int),
    ("client_id", ParamKind::Str),
    ("qos", ParamKind::Int),
    ("group_id", ParamKind::Str),
    ("batch_size", ParamKind::Int),
    ("linger_ms", ParamKind::Int),
    ("compression_type", ParamKind::Str),
    ("exactly_once", ParamKind::Bool),
    ("transactional", ParamKind::Bool),
    ("state_per_partition", ParamKind::Bool),
    ("idempotency_field", ParamKind::Str),
    ("queue_group", ParamKind::Str),
    ("method", ParamKind::Str),
    ("path", ParamKind::Str),
    ("query", ParamKind::Str),
];

/// The kind of value a connector parameter takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// A string.
    Str,
    /// A string or an array of strings.
    StrOrList,
    /// An integer.
    Int,
    /// A boolean.
    Bool,
}

impl ParamKind {
    /// The kind in words.
    pub fn describe(self) -> &'static str {
        match self {
            ParamKind::Str => "a string",
            ParamKind::StrOrList => "a string or a list of strings",
            ParamKind::Int => "an integer",
            ParamKind::Bool => "`true` or `false`",
        }
    }
}

/// Every parameter the runtime's connectors read, per kind, source and sink
/// roles together (a connector may serve both). Kinds not listed (`nats`,
/// `database`, ...) are not checked. `tests/connector_params.rs` (root
/// package) checks this table against the connectors themselves.
pub const CONNECTOR_KINDS: &[(&str, &[&str])] = &[
    ("console", &[]),
    (
        "file",
        &[
            "path",
            "append",
            "rotate_bytes",
            "max_files",
            "dead_letter",
            "follow",
            "poll",
        ],
    ),
    (
        "http",
        &[
            "url",
            "method",
            "headers",
            "batch_size",
            "batch_timeout",
            "timeout",
            "retries",
            "backoff",
            "max_backoff",
            "dead_letter",
            "queue_capacity",
            "close_timeout",
            "token",
            "max_body",
            "tls_cert",
            "tls_key",
            "tls_client_ca",
            "max_connections",
            "body_timeout",
        ],
    ),
    (
        "kafka",
        &[
            "brokers",
            "url",
            "host",
            "servers",
            "topic",
            "properties",
            "group_id",
            "start",
            "auto_offset_reset",
            "session_timeout",
            "state_per_partition",
            "batch_size",
            "linger_ms",
            "compression_type",
            "acks",
            "exactly_once",
            "transactional",
            "dead_letter",
            "queue_capacity",
            "close_timeout",
        ],
    ),
    (
        "mqtt",
        &[
            "url",
            "host",
            "brokers",
            "servers",
            "port",
            "topic",
            "client_id",
            "qos",
            "username",
            "password",
            "keep_alive",
            "clean_session",
            "retain",
            "queue_capacity",
            "dead_letter",
            "close_timeout",
            "idempotency_field",
            "tls",
            "ca_file",
            "client_cert",
            "client_key",
            "protocol",
        ],
    ),
    (
        "websocket",
        &[
            "url",
            "headers",
            "subscribe",
            "keep_alive",
            "max_message",
            "backoff",
            "max_backoff",
            "ca_file",
            "client_cert",
            "client_key",
            "queue_capacity",
            "dead_letter",
            "close_timeout",
            "retries",
            "idempotency_field",
        ],
    ),
];

/// Connector kinds that only answer `.enrich` lookups (no source, no sink),
/// with the parameters the host's resolvers read (docs/connectors/redis.md,
/// docs/connectors/postgres.md). `database` is the reference's name for a
/// PostgreSQL connector. `http` also answers lookups, with its own row above.
pub const LOOKUP_KINDS: &[(&str, &[&str])] = &[
    (
        "redis",
        &["url", "key_template", "format", "cache_size", "workers"],
    ),
    (
        "postgres",
        &[
            "url",
            "table",
            "key_column",
            "query",
            "cache_size",
            "workers",
        ],
    ),
    (
        "database",
        &[
            "url",
            "table",
            "key_column",
            "query",
            "cache_size",
            "workers",
        ],
    ),
];

/// Whether `kind` only answers lookups (no source, no sink).
pub fn is_lookup_only(kind: &str) -> bool {
    LOOKUP_KINDS.iter().any(|(k, _)| *k == kind)
}

/// The kinds `.enrich` accepts: the lookup-only kinds and `http`.
pub fn enrich_kinds() -> impl Iterator<Item = &'static str> {
    std::iter::once("http").chain(LOOKUP_KINDS.iter().map(|(k, _)| *k))
}

/// The parameters a connector of `kind` reads, when the kind is one the
/// runtime implements (a source/sink kind or a lookup kind).
pub fn connector_kind_params(kind: &str) -> Option<&'static [&'static str]> {
    CONNECTOR_KINDS
        .iter()
        .chain(LOOKUP_KINDS)
        .find(|(k, _)| *k == kind)
        .map(|(_, params)| *params)
}

/// The kinds the runtime implements, in table order.
pub fn connector_kinds() -> impl Iterator<Item = &'static str> {
    CONNECTOR_KINDS.iter().map(|(k, _)| *k)
}

/// Kinds that only have a sink (`.to`), never a source (`.from`).
/// `tests/connector_params.rs` (root package) checks it against the
/// connectors.
pub const SINK_ONLY_KINDS: &[&str] = &["console"];

/// Whether a connector of `kind` can only be a sink.
pub fn is_sink_only(kind: &str) -> bool {
    SINK_ONLY_KINDS.contains(&kind)
}

/// Parameters the connectors read as a list of `"key<sep>value"` strings,
/// which may also be written as a map `{ key: "value" }`; the lowering
/// turns the map into the list. Returns the separator.
pub fn connector_map_param(name: &str) -> Option<&'static str> {
    match name {
        "headers" => Some(": "),
        "properties" => Some("="),
        _ => None,
    }
}

/// The kind of connector parameter `name`, if it is a known one.
pub fn connector_param(name: &str) -> Option<ParamKind> {
    CONNECTOR_PARAMS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, k)| *k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        for (i, a) in OPERATORS.iter().enumerate() {
            assert!(
                OPERATORS[i + 1..].iter().all(|b| b.name != a.name),
                "{}",
                a.name
            );
        }
    }

    #[test]
    fn core_operators_are_supported() {
        for name in [
            "where",
            "select",
            "window",
            "aggregate",
            "emit",
            "to",
            "within",
        ] {
            assert_eq!(operator(name).map(|o| o.support), Some(Support::Supported));
        }
    }
}

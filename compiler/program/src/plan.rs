//! The operator graph: stream plans, their sources and operator chains.
//!
//! Streams are wired by name in VPL and by ids here. A [`StreamPlan`] has one
//! [`SourceSpec`] and a chain of [`OpSpec`]s applied left to right. Every
//! event leaving the end of the chain is re-typed to the stream's
//! [`StreamPlan::output_schema`] (named after the stream) and delivered to the
//! streams whose source reads this stream ([`InputRef::Stream`]); the inverse
//! index is computed by [`crate::Program::routes`].
//!
//! Field layouts: every operator that changes the shape of events (`select`,
//! `emit`, `aggregate`, merge, join) names the schema of its output, and
//! expressions after it address that schema's slots. The compiler guarantees
//! that `output_schema` has exactly the layout in force at the end of the
//! chain, so re-typing never moves values.

use crate::bytecode::Chunk;
use crate::schema::SchemaId;
use crate::span::SpanId;
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Index into [`crate::Program::streams`].
pub type StreamId = u32;
/// Index into [`crate::Program::connectors`].
pub type ConnectorId = u32;

/// One `stream Name = source op*` declaration, lowered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamPlan {
    /// The stream's name.
    pub name: Arc<str>,
    /// Where its events come from.
    pub source: SourceSpec,
    /// The operator chain, in order (sequence operators hoisted to the
    /// front, docs/LANGUAGE.md#operators).
    pub ops: Vec<OpSpec>,
    /// The schema events are re-typed to when they leave the chain; its name
    /// is the stream name and its fields the layout at the end of the chain.
    pub output_schema: SchemaId,
    /// Whether events leaving the chain are visible outputs (the chain has an
    /// `.emit` or `.process`, docs/LANGUAGE.md#emit). Invisible streams only feed
    /// other streams and sinks.
    pub visible: bool,
    /// Event-time settings declared on this stream.
    pub time: StreamTime,
    /// Bounds on the state of this stream's operators (`max_keys:`, `idle:`,
    /// `max:`, `evict:` on the operator that owns the state). Left out of the
    /// stream's fingerprint ([`crate::fingerprint`]): changing a limit keeps
    /// the state, which the new limit then trims.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bounds: Vec<StateBound>,
    /// The declaration, for errors.
    pub span: SpanId,
}

/// A bound on one operator's keyed state (docs/LANGUAGE.md#bounded-state).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateBound {
    /// Index of the operator in [`StreamPlan::ops`]: a
    /// [`OpSpec::PartitionBy`] (bounding the keys of the window or
    /// aggregate after it), a [`OpSpec::Distinct`] (bounding its set) or a
    /// [`OpSpec::Window`] (bounding its events); or [`StateBound::SOURCE`].
    pub op: u32,
    /// At most this many keys; one more evicts a key chosen by `evict`.
    pub max_keys: Option<u64>,
    /// Which key goes when `max_keys` is reached.
    pub evict: Evict,
    /// A key whose last event is this much (ns of event time) below the
    /// watermark is evicted.
    pub idle: Option<i64>,
    /// At most this many events per open window of a [`OpSpec::Window`]
    /// (`.window(d, max_events: n)`), or per input of the stream's join
    /// source (`op` = [`StateBound::SOURCE`]); one more drops the oldest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_events: Option<u64>,
}

impl StateBound {
    /// `op` of a bound on the stream's source (a join's tables) rather than
    /// on one of its operators.
    pub const SOURCE: u32 = u32::MAX;
}

/// Eviction policy of a bounded key set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Evict {
    /// The key whose last event arrived longest ago.
    #[default]
    Lru,
    /// The key that was created first.
    Fifo,
}

impl Evict {
    /// The policy's name in VPL (`evict: lru`).
    pub fn name(self) -> &'static str {
        match self {
            Evict::Lru => "lru",
            Evict::Fifo => "fifo",
        }
    }

    /// The policy named `name`.
    pub fn from_name(name: &str) -> Option<Evict> {
        match name {
            "lru" => Some(Evict::Lru),
            "fifo" => Some(Evict::Fifo),
            _ => None,
        }
    }
}

/// `.watermark(out_of_order: d)` and `.allowed_lateness(d)` on a stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamTime {
    /// Bounded out-of-orderness (ns) of the stream's input sources: the
    /// watermark of a source is its max event time minus the largest
    /// out-of-orderness any consumer declares.
    pub out_of_order: Option<i64>,
    /// Allowed lateness (ns): a late event (time below the watermark) is still
    /// processed by this stream if `time ≥ watermark − lateness`, else it is
    /// dropped (or routed to a [`SourceSpec::Late`] stream). Without it late
    /// events are processed like the reference does.
    pub allowed_lateness: Option<i64>,
}

/// An input that can feed a stream: an event type or another stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InputRef {
    /// Input events of this schema (a declared or undeclared event type).
    Event(SchemaId),
    /// Events leaving stream `s` (typed `streams[s].output_schema`).
    Stream(StreamId),
}

/// Where a stream's events come from (docs/LANGUAGE.md#stream-sources).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SourceSpec {
    /// `Name`: events of a type or outputs of a stream, unchanged.
    Input(InputRef),
    /// `Type.from(Conn, k: v)`: events of `schema` delivered by a connector.
    /// Inside the VM this behaves like [`SourceSpec::Input`] of the schema;
    /// the host that runs connectors uses `connector` and `params`.
    Connector {
        /// The event type.
        schema: SchemaId,
        /// The connector.
        connector: ConnectorId,
        /// Parameters given at the `.from` site.
        params: Vec<(Arc<str>, ConfigValue)>,
    },
    /// `merge(x, y, ...)`: the union of the branches, projected onto the
    /// merged layout `schema`.
    Merge {
        /// The branches.
        branches: Vec<MergeBranch>,
        /// Layout of merged events (the union of the branches' fields).
        schema: SchemaId,
    },
    /// `join(x, y, ...).on(...)`.
    Join(JoinSpec),
    /// `timer(period [, initial_delay: d])`: tick events of `schema`
    /// (`Timer_<stream>`, no fields) at event times `t0 + initial_delay + k ·
    /// period` (t0 = first event time seen), fired as the watermark passes.
    Timer {
        /// Period in ns (> 0).
        period: i64,
        /// Delay of the first tick after t0, in ns.
        initial_delay: i64,
        /// The tick schema.
        schema: SchemaId,
    },
    /// Late events of stream `s` (those its allowed lateness rejects), with
    /// the layout of that stream's input.
    Late(StreamId),
}

/// One branch of a `merge`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MergeBranch {
    /// The branch input.
    pub input: InputRef,
    /// Inline `.where` of an inline branch (`stream S = T.where(e)`),
    /// evaluated on the branch's own layout; `None` keeps every event.
    pub filter: Option<Chunk>,
    /// For each slot of the merged layout, the branch slot that fills it (or
    /// `None` when the branch lacks that field).
    pub remap: Vec<Option<u16>>,
}

/// A stream-stream join (docs/LANGUAGE.md#stream-sources, REF semantics).
///
/// When an event arrives on input `i` with key `k` it is stored as the
/// latest event of `(i, k)`. If every input has an event with key `k` whose
/// time is in `[t − horizon, t]`, one joined event is built from the latest
/// event of each input, stamped `t`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JoinSpec {
    /// The joined inputs, in source order.
    pub inputs: Vec<JoinInput>,
    /// The window horizon in ns (`.window(d)`, default 1 minute).
    pub horizon: i64,
    /// Layout of joined events: `Src.field` entries and the unprefixed
    /// `field` entries (first source wins).
    pub schema: SchemaId,
    /// Non-equality conjuncts of `.on(...)`, evaluated on the joined event;
    /// joined events for which it is not `true` are dropped.
    pub residual: Option<Chunk>,
}

/// One side of a join.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JoinInput {
    /// The input.
    pub input: InputRef,
    /// Inline `.where`/`.on` filter of an inline item, on the input layout.
    pub filter: Option<Chunk>,
    /// Key expressions on the input's layout, one per equality conjunct, in
    /// the same order on every input (conjunctive equality keys). An event
    /// whose key has no value does not join.
    pub keys: Vec<Chunk>,
    /// `(joined slot, input slot)` pairs copying this input's fields into the
    /// joined layout.
    pub project: Vec<(u16, u16)>,
}

/// One operator of a chain (docs/LANGUAGE.md#operators).
// A program holds a handful of these per stream and the engine reads them
// once, at load: the room a large `Sequence` takes in every slot costs
// little, and boxing it would change every place that builds or matches one.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum OpSpec {
    /// `.where(e)` / `.filter(e)`: keeps events for which `e` is `true`.
    Filter(Chunk),
    /// `.select(...)`: a new event of `schema` (same time); slot `i` is item
    /// `i`, absent when the item has no value.
    Select(Projection),
    /// `.emit(...)`: like `select`, output of the stream (docs/LANGUAGE.md#emit: missing
    /// fields omitted; `items: None` = `.emit()` passes all fields through).
    Emit(EmitSpec),
    /// `.partition_by(e)`: sets the partition key used by the following
    /// window, aggregate and sequence (absent key = `""`).
    PartitionBy(Chunk),
    /// `.window(...)`.
    Window(WindowSpec),
    /// `.aggregate(...)`.
    Aggregate(AggregateSpec),
    /// `.having(e)`: a filter after `.aggregate`.
    Having(Chunk),
    /// `.distinct([e])`: drops events whose value of `e` (or whole field set
    /// when `None`) was seen among the last `capacity` distinct values.
    Distinct {
        /// The key expression; `None` = all fields.
        key: Option<Chunk>,
        /// LRU capacity (REF-like default 10 000).
        capacity: u32,
    },
    /// `.limit(n)` / `.first()`: passes the first `n` events ever.
    Limit(u64),
    /// `.print(e...)`: side output `[PRINT] v1 v2 ...`, or with no
    /// expressions `[PRINT] [stream] Type: {fields}`. Pass-through.
    Print(Vec<Chunk>),
    /// `.log(level:, message:, data:)`. Pass-through.
    Log(LogSpec),
    /// `.to(Conn, topic: ..., key: ...)`: sends the event to a sink and
    /// passes it on unchanged.
    Sink {
        /// The connector.
        connector: ConnectorId,
        /// Site parameters (`topic` overrides the connector's).
        params: Vec<(Arc<str>, ConfigValue)>,
    },
    /// `.process(f(args))`: evaluates the call for each event; events created
    /// by `emit T(...)` in the function replace the current event.
    Process(Chunk),
    /// An in-stream sequence or named pattern, run by the VM's matcher.
    Sequence(SequenceSpec),
    /// `.pattern(name: events => test)`: always right after a
    /// [`OpSpec::Window`], which hands it each released group whole.
    Pattern(PatternTest),
    /// `.order_by`, `.collect`, `.any`, `.all`: an operator on the group the
    /// `.window` before it releases ([`crate::group`]).
    Group(crate::group::GroupOp),
    /// `.map(name: expr, ...)`: fields added or replaced, the others kept
    /// ([`crate::map`]).
    Map(crate::map::MapSpec),
    /// `.on_error(Conn, ...)`: the stream's runtime errors also go to a
    /// connector as error records ([`crate::on_error`]). A setting of the
    /// whole stream, not a step: it passes events on unchanged.
    OnError(crate::on_error::ErrorRoute),
    /// `.enrich(Conn, key: e, fields: [...], ...)`: looks each event's key
    /// up through the host's enricher (docs/LANGUAGE.md#enrich).
    Enrich(EnrichSpec),
    /// `.score(model:, inputs:, outputs:)`: ONNX inference on batches of
    /// events (docs/LANGUAGE.md#score).
    Score(ScoreSpec),
}

/// `.pattern(name: events => test)` (docs/LANGUAGE.md#pattern-window-test): when the
/// window before it releases a group, `test` runs once with the group's
/// events; when it is `true`, one event passes on: the group's last event in
/// the layout `schema` (its fields, then `pattern` and `window_events`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PatternTest {
    /// The name written before the colon (the value of the `pattern` field).
    pub name: Arc<str>,
    /// The test. Local 0 holds the group's events, oldest first, as an array
    /// of maps: the fields present, `event_type` and `timestamp` (unless the
    /// event has a field of that name).
    pub test: Chunk,
    /// Output layout: the input layout's fields, then `pattern` (str) and
    /// `window_events` (int).
    pub schema: SchemaId,
}

/// `.enrich(Conn, key: e, fields: [a, b], cache_ttl: d, timeout: d,
/// fallback: v)`. The engine asks the host for the keys of the events that
/// reach the operator in one step, in input order, and writes the answers
/// into the output layout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnrichSpec {
    /// The connector looked up (an `http`, `redis`, `postgres` or `database`
    /// connector).
    pub connector: ConnectorId,
    /// The lookup key, on the input layout.
    pub key: Chunk,
    /// The fields added, in `fields:` order.
    pub fields: Vec<Arc<str>>,
    /// Number of input slots copied to the output (the input layout's
    /// width when the operator was compiled).
    pub input_width: u16,
    /// Output slot of each field of [`EnrichSpec::fields`].
    pub slots: Vec<u16>,
    /// Output slot of `enrich_status`.
    pub status_slot: u16,
    /// Output slot of `enrich_latency_ms`.
    pub latency_slot: u16,
    /// The output layout: the input's fields first (same slots), then the
    /// added ones.
    pub schema: SchemaId,
    /// How long an answer stays cached, in ns (`None`: not cached).
    pub cache_ttl: Option<i64>,
    /// How long one lookup may take, in ns (default 5 s).
    pub timeout: i64,
    /// The value given to every field when the lookup fails or times out
    /// (`None`: the fields stay absent).
    pub fallback: Option<Value>,
}

/// `.score(model: "m.onnx", inputs: [f...], outputs: [g...])`.
///
/// The engine never reads the file: the host loads the model from `path`
/// and hands it over with the program (`varpulis_vm::model`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreSpec {
    /// The model as written in the program (`"m.onnx"`).
    pub model: Arc<str>,
    /// The model file, resolved against the directory of the program file
    /// that names it (an absolute path stays as written).
    pub path: Arc<str>,
    /// The input fields in model-input order: the name and the read of its
    /// value on the operator's input layout.
    pub inputs: Vec<(Arc<str>, Chunk)>,
    /// The output fields in model-output order: the name and its slot in
    /// `schema`.
    pub outputs: Vec<(Arc<str>, u16)>,
    /// The output layout: the input layout's slots unchanged, then the
    /// output fields that are not input fields.
    pub schema: SchemaId,
    /// The operator's place, for runtime errors.
    pub span: SpanId,
}

/// Items of `.select(...)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    /// One expression per output slot.
    pub items: Vec<Chunk>,
    /// The output layout (names of the items).
    pub schema: SchemaId,
}

/// Items of `.emit(...)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmitSpec {
    /// One expression per output slot, or `None` for `.emit()` which keeps
    /// the event as is (including its overflow).
    pub items: Option<Vec<Chunk>>,
    /// The output layout.
    pub schema: SchemaId,
}

/// `.window(...)` forms (docs/LANGUAGE.md#window). Durations in ns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WindowSpec {
    /// `.window(d)`: anchored at the first event of each window.
    Tumbling {
        /// Window length.
        size: i64,
    },
    /// `.window(d, sliding: s)`.
    Sliding {
        /// Window length.
        size: i64,
        /// Release period.
        slide: i64,
    },
    /// `.window(n)`.
    Count {
        /// Events per window.
        size: u64,
    },
    /// `.window(n, sliding: m)`.
    SlidingCount {
        /// Events kept.
        size: u64,
        /// Release every `slide` arrivals.
        slide: u64,
    },
    /// `.window(session: g)`.
    Session {
        /// Inactivity gap.
        gap: i64,
    },
}

/// `.aggregate(name: aggexpr, ...)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AggregateSpec {
    /// The distinct aggregate calls; item expressions read their results with
    /// [`crate::Instr::LoadAgg`].
    pub calls: Vec<AggCall>,
    /// One item per output slot `0..items.len()`.
    pub items: Vec<AggItem>,
    /// Output layout: the items, then (optionally) the partition key under
    /// its own name and `_partition`.
    pub schema: SchemaId,
    /// Slot receiving the partition key value under the key's own name (REC
    /// docs/LANGUAGE.md#partition_by); `None` when unpartitioned or when an item already has that
    /// name.
    pub key_slot: Option<u16>,
    /// Slot receiving `_partition` (the key rendered as a string).
    pub partition_slot: Option<u16>,
}

/// One aggregate function application.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AggCall {
    /// The function.
    pub func: AggFunc,
    /// The argument evaluated per event (`None` for `count()`). Events where
    /// it has no value are skipped by every function but `count`.
    pub arg: Option<Chunk>,
    /// The numeric parameter: `ema` N (default 12), `percentile` p in
    /// `[0, 1]` or `(1, 100]` (percent).
    pub param: Option<f64>,
}

/// Aggregate functions (docs/LANGUAGE.md#aggregate-functions plus the documented REC set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AggFunc {
    /// Events in the group (int).
    Count,
    /// Sum of numeric values, NaN skipped (float, 0.0 when none).
    Sum,
    /// Mean (float or null).
    Avg,
    /// Minimum numeric value (float or null).
    Min,
    /// Maximum numeric value (float or null).
    Max,
    /// Sample standard deviation (null below two values).
    Stddev,
    /// Sample variance (null below two values).
    Variance,
    /// First value by arrival (any or null).
    First,
    /// Last value by arrival (any or null).
    Last,
    /// Number of distinct values (int).
    CountDistinct,
    /// Exponential moving average, α = 2/(N+1), seeded with the first value.
    Ema,
    /// Linear-interpolated percentile of numeric values (float or null).
    Percentile,
    /// The 50th percentile.
    Median,
    /// All values in arrival order (array).
    Collect,
}

/// One `.aggregate` item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AggItem {
    /// Output field name.
    pub name: Arc<str>,
    /// The final arithmetic over aggregate results ([`crate::Instr::LoadAgg`]).
    pub expr: Chunk,
}

/// `.log(level:, message:, data:)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogSpec {
    /// The level.
    pub level: LogLevel,
    /// The literal message.
    pub message: Arc<str>,
    /// The `data` expression, appended as `data=<value>`.
    pub data: Option<Chunk>,
}

/// `.log` levels; unknown spellings are `Info` (docs/LANGUAGE.md#log).
#[allow(missing_docs)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// Parses a level name (`warning` = `warn`; anything else is info).
    pub fn parse(s: &str) -> LogLevel {
        match s.to_ascii_lowercase().as_str() {
            "error" => LogLevel::Error,
            "warn" | "warning" => LogLevel::Warn,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => LogLevel::Info,
        }
    }

    /// Upper-case name for log lines.
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Error => "ERROR",
            LogLevel::Warn => "WARN",
            LogLevel::Info => "INFO",
            LogLevel::Debug => "DEBUG",
            LogLevel::Trace => "TRACE",
        }
    }
}

/// A SASE+ sequence (docs/LANGUAGE.md#sequences; semantics in docs/PATTERNS.md).
/// The VM runs it with its matcher (`varpulis_vm::sequence`); the operator
/// is the first of its stream's chain and every event type a step or a
/// negation reads is routed to that stream ([`SequenceSpec::inputs`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SequenceSpec {
    /// The steps in order (all SEQs of a named pattern, SEQ by SEQ); step 0
    /// is the stream's source.
    pub steps: Vec<SeqStep>,
    /// Aliases, indexed by the alias operand of [`crate::Instr::LoadAlias`]
    /// (and `AliasLen`, `AliasFirst`, `AliasValues`).
    pub aliases: Vec<AliasDef>,
    /// `.not(T where e)` and `NOT X` items.
    pub negations: Vec<Negation>,
    /// `.within(d)` / pattern `within`: deadline from the first event (ns).
    pub within: Option<i64>,
    /// `.partition_by` / `partition by`: key expression per step input,
    /// indexed like `steps` (`None` entries = shared key `""`). Negations
    /// carry their own key ([`Negation::partition`]).
    pub partition: Option<Vec<Option<Chunk>>>,
    /// Layout of match events after the sequence: the fields of the last
    /// step's event (REC: unqualified names resolve against it).
    pub schema: SchemaId,
    /// The structure: SEQs (step ranges) under AND / OR. An in-stream
    /// sequence is one `Seq` over every step.
    pub root: PatternTree,
    /// Event selection strategy (`policy NAME` / `.policy(NAME)`).
    #[serde(default)]
    pub selection: SelectionPolicy,
    /// A timeout stream (`S.timeouts()`): the operator outputs the runs that
    /// reach their deadline without completing (one record per run, in the
    /// match layout, stamped with the deadline, carrying the events bound so
    /// far) instead of the matches.
    #[serde(default)]
    pub emit_timeouts: bool,
    /// `.limit_runs(n, total: m, on_full: p)`: bounds on open runs; unset
    /// entries take the engine's defaults.
    #[serde(default)]
    pub limits: RunLimits,
    /// `.trend_aggregate(...)`: the operator outputs, per match, aggregates
    /// over the trends of a Kleene step instead of the match event.
    #[serde(default)]
    pub trend: Option<TrendSpec>,
    /// `.forecast(...)`: the operator outputs, per relevant event, a
    /// prediction that the sequence completes instead of the matches.
    /// Left out when unset, so that other sequences keep their fingerprints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<Box<ForecastSpec>>,
}

/// `.forecast(...)` after an in-stream sequence (docs/LANGUAGE.md#forecast,
/// docs/DESIGN.md *Forecasting*): a prediction suffix tree over the
/// sequence's progress states, a Hawkes intensity for the timing and
/// conformal intervals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForecastSpec {
    /// Emit a prediction only when its probability is at least this.
    pub confidence: f64,
    /// How far ahead the completion is predicted.
    pub horizon: ForecastHorizon,
    /// Events learned before the first prediction.
    pub warmup: u64,
    /// Longest context of the prediction suffix tree (symbols).
    pub max_depth: u8,
    /// Time to completion from a fitted Hawkes intensity (else the mean
    /// gap between events).
    pub hawkes: bool,
    /// Conformal intervals (else lower = upper = probability).
    pub conformal: bool,
    /// A label per progress state: `states[0]` = no run open, `states[i]`
    /// = step `i` bound, the last = completed.
    pub states: Vec<Arc<str>>,
    /// Output layout: the seven `forecast_*` fields, then the raw event's
    /// fields by name.
    pub schema: SchemaId,
}

/// How far `.forecast` looks ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForecastHorizon {
    /// The next n relevant events (of the same partition key).
    Events(u32),
    /// A span of event time (ns), turned into events by the mean gap.
    Time(i64),
}

/// `.trend_aggregate(name: f(arg), ...)` after a sequence (PATTERNS.md
/// *Trend aggregation*): per match, aggregates over every trend of one
/// Kleene step's events, computed without enumerating the trends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrendSpec {
    /// The Kleene step whose bound events form the trends.
    pub step: u16,
    /// Adjacency of two consecutive trend events: the step filter's
    /// conjuncts that read the step's own alias, evaluated on the later
    /// event with the alias bound to the earlier one (and the match's other
    /// bindings). `None`: any two events may follow each other.
    pub adjacent: Option<Chunk>,
    /// The items, in output order.
    pub items: Vec<TrendItem>,
    /// Output layout: the item names, then `is_final`.
    pub schema: SchemaId,
}

/// One `.trend_aggregate` item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrendItem {
    /// The aggregate.
    pub func: TrendFn,
    /// The aggregated value, evaluated on each trend event (sum/avg/min/max).
    pub value: Option<Chunk>,
}

/// Trend aggregates (docs/LANGUAGE.md#trend_aggregate).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrendFn {
    /// `count_trends()`: number of trends (int).
    CountTrends,
    /// `count_events(alias)`: events summed over all trends (int).
    CountEvents,
    /// `sum_trends(alias.f)` (float).
    Sum,
    /// `avg_trends(alias.f)`: mean per event over all trends (float).
    Avg,
    /// `min_trends(alias.f)` (float).
    Min,
    /// `max_trends(alias.f)` (float).
    Max,
}

impl TrendFn {
    /// The function for a VPL name.
    pub fn from_name(name: &str) -> Option<TrendFn> {
        Some(match name {
            "count_trends" => TrendFn::CountTrends,
            "count_events" => TrendFn::CountEvents,
            "sum_trends" => TrendFn::Sum,
            "avg_trends" => TrendFn::Avg,
            "min_trends" => TrendFn::Min,
            "max_trends" => TrendFn::Max,
            _ => return None,
        })
    }
}

/// Bounds on a sequence's open runs (`.limit_runs`, PATTERNS.md *Bounded
/// state*). `None` entries take the engine's defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunLimits {
    /// Open runs per partition key (the positional argument).
    pub per_key: Option<u64>,
    /// Open runs over all keys (`total:`).
    pub total: Option<u64>,
    /// What happens to a new run when a limit is reached (`on_full:`).
    pub on_full: Option<OnFull>,
}

/// What `.limit_runs` does when a limit is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnFull {
    /// `evict_oldest`: the oldest run makes room (counted in `evicted`).
    EvictOldest,
    /// `reject_new`: the new run is dropped (counted in `rejected`).
    RejectNew,
}

impl OnFull {
    /// The VPL names, in the order help texts list them.
    pub const NAMES: &'static [&'static str] = &["evict_oldest", "reject_new"];

    /// The policy named `name` in VPL, if any.
    pub fn from_name(name: &str) -> Option<OnFull> {
        match name {
            "evict_oldest" => Some(OnFull::EvictOldest),
            "reject_new" => Some(OnFull::RejectNew),
            _ => None,
        }
    }
}

impl SequenceSpec {
    /// Every distinct input a step or a negation reads, steps first, in
    /// order of first use (the engine routes all of them to the stream).
    pub fn inputs(&self) -> Vec<InputRef> {
        let mut v: Vec<InputRef> = Vec::new();
        for i in self
            .steps
            .iter()
            .map(|s| s.input)
            .chain(self.negations.iter().map(|n| n.input))
        {
            if !v.contains(&i) {
                v.push(i);
            }
        }
        v
    }
}

/// The shape of a sequence: SEQs combined with AND / OR, nested freely.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PatternTree {
    /// A SEQ over the steps `range` (a lone item is a one-step SEQ).
    Seq(std::ops::Range<u16>),
    /// `A AND B`: every child, in any order.
    And(Vec<PatternTree>),
    /// `A OR B`: the first child to complete.
    Or(Vec<PatternTree>),
}

/// Event selection strategy (docs/LANGUAGE.md#policy; PATTERNS.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectionPolicy {
    /// The reference's behaviour (default): runs never fork, each binds the
    /// earliest qualifying event per step. VPL name: `reference`.
    #[default]
    Reference,
    /// `strict_contiguity`: an event of a step input that the run does not
    /// accept kills it.
    StrictContiguity,
    /// `skip_till_next_match`: an event is bound by at most one run.
    SkipTillNextMatch,
    /// `skip_till_any_match`: runs fork; every combination matches.
    SkipTillAnyMatch,
}

impl SelectionPolicy {
    /// The policy named `name` in VPL, if any.
    pub fn from_name(name: &str) -> Option<SelectionPolicy> {
        Some(match name {
            "reference" => SelectionPolicy::Reference,
            "strict_contiguity" => SelectionPolicy::StrictContiguity,
            "skip_till_next_match" => SelectionPolicy::SkipTillNextMatch,
            "skip_till_any_match" => SelectionPolicy::SkipTillAnyMatch,
            _ => return None,
        })
    }
}

/// One step `-> [all] T [where f] [as a]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeqStep {
    /// The candidate events.
    pub input: InputRef,
    /// The step filter: bare fields read the candidate (`LoadField`),
    /// `alias.f` reads bound events (`LoadAlias`), evaluated with the run's
    /// bindings (a Kleene step's own alias reads its most recent event).
    pub filter: Option<Chunk>,
    /// Repetition.
    pub kleene: Kleene,
    /// The alias bound to the accepted event(s).
    pub alias: Option<u16>,
    /// Whether the filter refers to the step's own alias.
    pub self_referential: bool,
}

/// Step repetition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kleene {
    /// Exactly one.
    One,
    /// `all T`, `T+`: one or more.
    Plus,
    /// `T*`: zero or more.
    Star,
    /// `T?`: zero or one (REC).
    Optional,
}

/// A sequence alias.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AliasDef {
    /// Alias name.
    pub name: Arc<str>,
    /// Layout of the bound events.
    pub schema: SchemaId,
}

/// A negation: an arriving matching event kills open runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Negation {
    /// The negated events.
    pub input: InputRef,
    /// Filter (may read aliases).
    pub filter: Option<Chunk>,
    /// Where it applies: `None` = the whole match (`.not`), `Some(i)` =
    /// between steps `i` and `i + 1` (`NOT X` inside `SEQ`; a trailing one
    /// completes at the deadline).
    pub after_step: Option<u16>,
    /// The partition key on the negated events' layout (when the sequence
    /// is partitioned; `None` = shared key `""`).
    #[serde(default)]
    pub partition: Option<Chunk>,
}

/// Connector kinds and site parameters use config values (docs/LANGUAGE.md#connector).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ConfigValue {
    /// A string.
    Str(Arc<str>),
    /// An int.
    Int(i64),
    /// A float.
    Float(f64),
    /// A bool.
    Bool(bool),
    /// A duration in ns.
    Duration(i64),
    /// A bare identifier.
    Ident(Arc<str>),
    /// An array of config values.
    Array(Vec<ConfigValue>),
}

impl ConfigValue {
    /// The value as text for string-ish uses (`topic`, `path`).
    pub fn as_text(&self) -> Option<&str> {
        match self {
            ConfigValue::Str(s) | ConfigValue::Ident(s) => Some(s),
            _ => None,
        }
    }
}

/// `connector Name = kind (k: v, ...)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnectorDef {
    /// Connector name.
    pub name: Arc<str>,
    /// `mqtt`, `kafka`, `file`, `console`, ...
    pub kind: Arc<str>,
    /// Parameters in source order.
    pub params: Vec<(Arc<str>, ConfigValue)>,
    /// The declaration.
    pub span: SpanId,
}

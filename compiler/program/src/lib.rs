//! `varpulis-program`: the compiled artifact that is the only contract between
//! the VPL compiler and the runtime.
//!
//! The pipeline is one-way: text → compiler → [`Program`] → runtime. A
//! `Program` is plain data (serde-serialisable) holding:
//!
//! - [`EventSchema`]s: every event type and stream output layout, with field
//!   slots (no string-keyed field maps at run time);
//! - [`StreamPlan`]s: the operator graph, wired by ids;
//! - [`Function`]s and [`Global`]s as bytecode [`Chunk`]s;
//! - [`ConnectorDef`]s with config values;
//! - a [`SpanTable`] so runtime errors can point at `file:line:col` without
//!   the source text.
//!
//! The crate also holds the run-time data types shared by compiler, VM and
//! hosts ([`Value`], [`Event`]) and the input readers: the `.evt` reader
//! ([`evt`]) and the tolerant JSON event reader ([`json`]), plus the
//! conversion of decoded records to slot events ([`decode`]).

pub mod bytecode;
pub mod context;
pub mod decode;
pub mod event;
pub mod evt;
pub mod fingerprint;
pub mod group;
pub mod json;
pub mod map;
pub mod on_error;
pub mod plan;
pub mod schema;
pub mod span;
pub mod time;
pub mod value;

pub use bytecode::{Builtin, Chunk, FunctionId, GlobalId, Instr};
pub use context::{ContextDef, ContextId, Placement};
pub use decode::{DecodeError, DecodeWarning, EventDecoder, RawEvent};
pub use event::{Event, Extra};
pub use fingerprint::Fingerprints;
pub use group::{CollectSpec, GroupOp, SortKey};
pub use map::MapSpec;
pub use on_error::ErrorRoute;
pub use plan::{
    AggCall, AggFunc, AggItem, AggregateSpec, AliasDef, ConfigValue, ConnectorDef, ConnectorId,
    EmitSpec, EnrichSpec, Evict, ForecastHorizon, ForecastSpec, InputRef, JoinInput, JoinSpec,
    Kleene, LogLevel, LogSpec, MergeBranch, Negation, OnFull, OpSpec, PatternTest, PatternTree,
    Projection, RunLimits, ScoreSpec, SelectionPolicy, SeqStep, SequenceSpec, SourceSpec,
    StateBound, StreamId, StreamPlan, StreamTime, TrendFn, TrendItem, TrendSpec, WindowSpec,
};
pub use schema::{EventSchema, FieldDef, SchemaId, SchemaOrigin, Type};
pub use span::{SpanId, SpanInfo, SpanTable};
pub use value::{Value, ValueKey, ValueMap};

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The current artifact format version. Bump it on incompatible changes;
/// the runtime refuses programs of a version outside
/// [`OLDEST_FORMAT_VERSION`]`..=FORMAT_VERSION`.
///
/// Version 2 added [`Program::contexts`] and [`Program::placements`].
pub const FORMAT_VERSION: u32 = 2;

/// The oldest format version the runtime still loads: every field added
/// since has a serde default, so a version-1 program loads as one without
/// contexts.
pub const OLDEST_FORMAT_VERSION: u32 = 1;

/// A compiled VPL program.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Program {
    /// Artifact format version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// Event layouts; an [`Event::type_id`] indexes this table.
    pub schemas: Vec<EventSchema>,
    /// Stream plans (the operator graph).
    pub streams: Vec<StreamPlan>,
    /// User functions, called by [`Instr::Call`].
    pub functions: Vec<Function>,
    /// Top-level `let`/`var`/`const`, initialised once at load, in order.
    pub globals: Vec<Global>,
    /// Connector declarations.
    pub connectors: Vec<ConnectorDef>,
    /// Source positions.
    pub span_table: SpanTable,
    /// The engine shards a run uses by default (`.concurrent(workers: N)`;
    /// `varpulis run --workers` overrides it). `None`: one engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<u32>,
    /// `context` declarations, in declaration order (format version 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contexts: Vec<ContextDef>,
    /// The streams that name a context (`.context(c)` or
    /// `.emit(context: c, ...)`), in stream order (format version 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placements: Vec<Placement>,
}

impl Default for Program {
    fn default() -> Self {
        Program {
            version: FORMAT_VERSION,
            schemas: Vec::new(),
            streams: Vec::new(),
            functions: Vec::new(),
            globals: Vec::new(),
            connectors: Vec::new(),
            span_table: SpanTable::default(),
            workers: None,
            contexts: Vec::new(),
            placements: Vec::new(),
        }
    }
}

/// A user function (`fn name(params) -> T:` body).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Function {
    /// The function's name.
    pub name: Arc<str>,
    /// Parameters; argument `i` is local slot `i`.
    pub params: Vec<FieldDef>,
    /// The body; `chunk.locals` counts parameters and locals.
    pub chunk: Chunk,
    /// The declaration.
    pub span: SpanId,
}

/// A top-level variable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Global {
    /// The variable's name.
    pub name: Arc<str>,
    /// Whether `:=` may assign it (`var`).
    pub mutable: bool,
    /// The initialiser, run once at load; it may read earlier globals.
    pub init: Chunk,
}

/// Which streams consume a given input, and as which source input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumer {
    /// The consuming stream.
    pub stream: StreamId,
    /// Which input of the stream's source: 0 for single-input sources, the
    /// branch index for merges, the input index for joins, the index in
    /// [`SequenceSpec::inputs`] for the other inputs of a sequence.
    pub input: u16,
}

/// The inverse of the stream graph: for each event type and each stream, the
/// streams that consume its events. Derived from the sources by
/// [`Program::routes`] rather than stored, so it can never disagree with them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routes {
    /// Indexed by schema id: consumers of input events of that type.
    pub by_event: Vec<Vec<Consumer>>,
    /// Indexed by stream id: consumers of that stream's output.
    pub by_stream: Vec<Vec<Consumer>>,
    /// Indexed by stream id: consumers of that stream's late events.
    pub by_late: Vec<Vec<Consumer>>,
}

/// One connector subscription: the `.from(Conn, k: v)` sites that name the
/// same connector with the same parameters share it (one MQTT subscription,
/// one Kafka consumer, one listener).
#[derive(Clone, Debug, PartialEq)]
pub struct Subscription {
    /// The connector.
    pub connector: ConnectorId,
    /// The site parameters (they override the connector's).
    pub params: Vec<(Arc<str>, ConfigValue)>,
    /// The streams fed by it and the event type each one reads, in stream
    /// order.
    pub streams: Vec<(StreamId, SchemaId)>,
}

impl Program {
    /// The connector subscriptions of the program, in the order their first
    /// `.from` site appears. A host that runs connector sources tags each
    /// event it receives with the index of its subscription, so a
    /// `T.from(C, topic: "a")` stream never sees the `T` events of topic "b".
    pub fn subscriptions(&self) -> Vec<Subscription> {
        let mut subs: Vec<Subscription> = Vec::new();
        for (sid, plan) in self.streams.iter().enumerate() {
            let SourceSpec::Connector {
                schema,
                connector,
                params,
            } = &plan.source
            else {
                continue;
            };
            let stream = u32::try_from(sid).unwrap_or(u32::MAX);
            match subs
                .iter_mut()
                .find(|s| s.connector == *connector && s.params == *params)
            {
                Some(sub) => sub.streams.push((stream, *schema)),
                None => subs.push(Subscription {
                    connector: *connector,
                    params: params.clone(),
                    streams: vec![(stream, *schema)],
                }),
            }
        }
        subs
    }

    /// The id of the schema with this name (linear scan; hosts should build
    /// an [`EventDecoder`] for per-event lookups).
    pub fn schema_id(&self, name: &str) -> Option<SchemaId> {
        self.schemas
            .iter()
            .position(|s| &*s.name == name)
            .and_then(|i| u32::try_from(i).ok())
    }

    /// The id of the stream with this name.
    pub fn stream_id(&self, name: &str) -> Option<StreamId> {
        self.streams
            .iter()
            .position(|s| &*s.name == name)
            .and_then(|i| u32::try_from(i).ok())
    }

    /// Computes the consumer index of the operator graph. Ids out of range are
    /// skipped here (the VM's loader reports them).
    pub fn routes(&self) -> Routes {
        let mut r = Routes {
            by_event: vec![Vec::new(); self.schemas.len()],
            by_stream: vec![Vec::new(); self.streams.len()],
            by_late: vec![Vec::new(); self.streams.len()],
        };
        for (sid, plan) in self.streams.iter().enumerate() {
            let stream = u32::try_from(sid).unwrap_or(u32::MAX);
            let add = |input: InputRef, idx: usize, r: &mut Routes| {
                let c = Consumer {
                    stream,
                    input: u16::try_from(idx).unwrap_or(u16::MAX),
                };
                let list = match input {
                    InputRef::Event(s) => r.by_event.get_mut(s as usize),
                    InputRef::Stream(s) => r.by_stream.get_mut(s as usize),
                };
                if let Some(list) = list {
                    list.push(c);
                }
            };
            // A single-input source (a type, a stream, a connector-fed type).
            let direct = match &plan.source {
                SourceSpec::Input(i) => Some(*i),
                SourceSpec::Connector { schema, .. } => Some(InputRef::Event(*schema)),
                _ => None,
            };
            if let Some(i) = direct {
                add(i, 0, &mut r);
                // A sequence also reads the inputs of its other steps and of
                // its negations (each delivered once).
                for op in &plan.ops {
                    if let OpSpec::Sequence(seq) = op {
                        for (k, x) in seq.inputs().into_iter().enumerate() {
                            if x != i {
                                add(x, k, &mut r);
                            }
                        }
                    }
                }
                continue;
            }
            match &plan.source {
                SourceSpec::Merge { branches, .. } => {
                    for (i, b) in branches.iter().enumerate() {
                        add(b.input, i, &mut r);
                    }
                }
                SourceSpec::Join(j) => {
                    for (i, b) in j.inputs.iter().enumerate() {
                        add(b.input, i, &mut r);
                    }
                }
                SourceSpec::Input(_) | SourceSpec::Connector { .. } | SourceSpec::Timer { .. } => {}
                SourceSpec::Late(s) => {
                    if let Some(list) = r.by_late.get_mut(*s as usize) {
                        list.push(Consumer { stream, input: 0 });
                    }
                }
            }
        }
        r
    }
}

#[cfg(test)]
mod tests;

//! The semantic model: the resolved and typed view of one item, which the
//! lowering (`crate::lower`), the LSP and the REPL build on.
//!
//! # Shape
//!
//! Checking an item yields an [`ItemAnalysis`]:
//!
//! - [`ItemAnalysis::exprs`] is a side table keyed by each expression's
//!   **item-relative span** (the spans of the syntax tree; add the item's
//!   offset for file positions). For every expression it records its static
//!   [`Type`] and, for identifiers, member accesses and calls, its
//!   [`Resolution`]: an input field (with its index in the stage's input
//!   schema), a field of a bound sequence alias, an alias itself, a global, a
//!   local or parameter, a user function, a built-in, or an aggregate.
//! - [`ItemAnalysis::model`] holds per-declaration facts. For a stream,
//!   [`StreamModel`] lists its [`SourceModel`] and one [`Stage`] per operator
//!   (in written order, `op` = index into `StreamDecl::ops`), each with the
//!   schema of the events entering and leaving it and the operator's
//!   semantics ([`StageKind`]: window spec, aggregate items, emitted fields,
//!   sequence step with alias and Kleene flag, ...). `StreamModel::output` is
//!   the stream's output schema, which derived streams consume.
//!
//! Resolution order for a bare identifier in a stream expression (docs/LANGUAGE.md#variables-let-var-const):
//! function locals, then fields of the current event, then sequence aliases,
//! then globals. After a sequence match the current event is the last bound
//! event (docs/LANGUAGE.md#sequence-steps), extended with `alias.field` entries for every alias.
//!
//! The model only describes programs as checked: when an item has errors the
//! model is still filled in as far as possible, with [`Type::Error`] where a
//! type could not be determined. Lowering must only run on error-free files.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use varpulis_syntax::Span;

use crate::diagnostic::Diagnostic;
use crate::types::{FnSig, Schema, Type};

/// What one identifier, member access or call refers to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Resolution {
    /// A field of the current event: `index` into the stage's input schema.
    Field {
        /// Position in the input schema.
        index: usize,
        /// Field name.
        name: String,
    },
    /// A field of an open schema (undeclared event type): looked up by name.
    DynamicField {
        /// Field name.
        name: String,
    },
    /// `alias.field` of an event bound by a sequence step.
    AliasField {
        /// The alias.
        alias: String,
        /// The field.
        field: String,
        /// The alias is a Kleene list; `field` is read from its last event.
        kleene: bool,
    },
    /// A sequence alias used as a value (`len(ks)`, `first(ks)`).
    Alias {
        /// The alias.
        name: String,
        /// Bound by a Kleene step.
        kleene: bool,
    },
    /// A top-level `let`/`var`/`const`.
    Global {
        /// Variable name.
        name: String,
    },
    /// A function parameter, local variable or lambda parameter.
    Local {
        /// Variable name.
        name: String,
    },
    /// A call of a user-defined function.
    Function {
        /// Function name.
        name: String,
    },
    /// A call of a built-in scalar function.
    Builtin {
        /// Function name.
        name: String,
    },
    /// A call of an aggregate function (inside `.aggregate`, or over a Kleene
    /// alias's field elsewhere).
    Aggregate {
        /// Aggregate name.
        name: String,
    },
}

/// Facts about one expression.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExprInfo {
    /// Static type.
    pub ty: Type,
    /// What the expression refers to, for names, members and calls.
    pub resolution: Option<Resolution>,
}

/// Expression facts keyed by item-relative expression span.
pub type ExprTable = FxHashMap<Span, ExprInfo>;

/// The result of checking one item.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ItemAnalysis {
    /// Diagnostics with item-relative spans.
    pub diagnostics: Vec<Diagnostic>,
    /// Expression types and resolutions.
    pub exprs: ExprTable,
    /// Per-declaration facts.
    pub model: ItemModel,
}

/// Per-declaration facts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ItemModel {
    /// An event type with its full schema (inherited fields first).
    Event(Arc<Schema>),
    /// A stream.
    Stream(StreamModel),
    /// A named pattern and the schema of its matches.
    Pattern(PatternModel),
    /// A function signature.
    Fn(FnSig),
    /// A global variable's type.
    Global(Type),
    /// A connector.
    Connector(ConnectorModel),
    /// A type alias.
    TypeAlias(Type),
    /// Anything else (contexts, config, imports, statements, errors).
    #[default]
    Other,
}

/// A checked stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamModel {
    /// Stream name.
    pub name: String,
    /// Where events come from.
    pub source: SourceModel,
    /// One entry per operator, in written order.
    pub stages: Vec<Stage>,
    /// The schema of the events leaving the stream.
    pub output: Arc<Schema>,
    /// Whether the stream runs a sequence (`->` steps, a pattern source or
    /// `sequence(...)`).
    pub is_sequence: bool,
}

/// A checked source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceModel {
    /// Events of a (possibly undeclared) event type.
    Event {
        /// Type name.
        name: String,
        /// Declared with `event`.
        declared: bool,
        /// Alias bound to the first step of a sequence.
        alias: Option<String>,
        /// `all`: the first step is Kleene+.
        kleene: bool,
    },
    /// Outputs of another stream.
    Stream {
        /// Stream name.
        name: String,
        /// Alias bound to the first step of a sequence.
        alias: Option<String>,
        /// `all`: the first step is Kleene+.
        kleene: bool,
    },
    /// Matches of a named pattern.
    Pattern {
        /// Pattern name.
        name: String,
    },
    /// `Type.from(Conn, ...)`.
    From {
        /// Event type.
        ty: String,
        /// Connector name.
        connector: String,
    },
    /// `merge(...)`: each branch's name, source and filter presence.
    Merge(Vec<BranchModel>),
    /// `join(...)`.
    Join(Vec<BranchModel>),
    /// `sequence(a: A, ...)`: aliases and types in order.
    Sequence(Vec<(String, String)>),
    /// `Name.timeouts()`: expired partial matches of the sequence run by
    /// stream or pattern `name`.
    Timeouts {
        /// The sequence stream or pattern.
        name: String,
    },
    /// `Name.late()`: the events stream `name` dropped as late, in the
    /// layout of that stream's input.
    Late {
        /// The stream whose late events these are.
        name: String,
    },
    /// `timer(...)` (not supported yet).
    Timer,
    /// A source that could not be resolved.
    Error,
}

/// One branch of `merge`/`join`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BranchModel {
    /// Branch name (the inline stream's name, else the source name).
    pub name: String,
    /// Event type or stream feeding it.
    pub source: String,
    /// Schema of the branch's events.
    pub schema: Arc<Schema>,
}

/// One operator of a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    /// Index into `StreamDecl::ops`.
    pub op: usize,
    /// What the operator does.
    pub kind: StageKind,
    /// Schema of the events entering the operator.
    pub input: Arc<Schema>,
    /// Schema of the events leaving it.
    pub output: Arc<Schema>,
}

/// An output item of `.select`, `.emit` or `.aggregate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputItem {
    /// Produced field name.
    pub name: String,
    /// Span of the value expression (key into [`ItemAnalysis::exprs`]).
    pub expr: Span,
    /// Type of the produced field.
    pub ty: Type,
}

/// Window forms (docs/LANGUAGE.md#window).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WindowSpec {
    /// `.window(d)` or `.window(d, sliding: s)`; nanoseconds.
    Time {
        /// Window length.
        size: u64,
        /// Slide, for sliding windows.
        slide: Option<u64>,
    },
    /// `.window(n)` or `.window(n, sliding: m)`.
    Count {
        /// Events per window.
        size: u64,
        /// Slide, for sliding windows.
        slide: Option<u64>,
    },
    /// `.window(session: gap)`; nanoseconds.
    Session {
        /// Inactivity gap.
        gap: u64,
    },
}

/// The semantics of one operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StageKind {
    /// `.where(e)` / `.filter(e)`; the condition's span.
    Where(Span),
    /// `.select(...)`.
    Select(Vec<OutputItem>),
    /// `.window(...)`.
    Window(WindowSpec),
    /// `.partition_by(k)`.
    PartitionBy(String),
    /// `.aggregate(...)`; `partition` is the key added to the output.
    Aggregate {
        /// Items in order.
        items: Vec<OutputItem>,
        /// The partition key in force, if any.
        partition: Option<String>,
    },
    /// `.trend_aggregate(...)`: trend aggregates over the Kleene sequence.
    TrendAggregate(Vec<OutputItem>),
    /// `.forecast(...)`: completion predictions of the sequence.
    Forecast,
    /// `.having(e)`.
    Having(Span),
    /// `.emit(...)`; an empty list passes every field through.
    Emit {
        /// Emitted fields.
        items: Vec<OutputItem>,
        /// `context: c` forwarding target.
        context: Option<String>,
    },
    /// `.enrich(Conn, key: e, fields: [...], ...)`.
    Enrich {
        /// Connector name.
        connector: String,
        /// The fields it adds (besides `enrich_status` and
        /// `enrich_latency_ms`).
        fields: Vec<String>,
    },
    /// `.to(Conn, ...)`.
    To {
        /// Connector name.
        connector: String,
    },
    /// `-> [all] T [where e] [as a]`.
    Step {
        /// Matched event type or stream.
        ty: String,
        /// Bound alias.
        alias: Option<String>,
        /// Kleene+.
        kleene: bool,
        /// Span of the step filter.
        filter: Option<Span>,
    },
    /// `.within(d)`, nanoseconds.
    Within(u64),
    /// `.policy(NAME)`: the sequence's selection policy.
    Policy(String),
    /// `.limit_runs(n, total: m, on_full: p)`: bounds on open runs.
    LimitRuns,
    /// `.not(T [where e])`.
    Not {
        /// Event type.
        ty: String,
        /// Span of the filter.
        filter: Option<Span>,
    },
    /// `.on(e)` of a join.
    On(Span),
    /// `.print(...)`.
    Print,
    /// `.log(...)`.
    Log,
    /// `.distinct([e])`.
    Distinct(Option<Span>),
    /// `.pattern(name: events => test)` right after the window.
    Pattern {
        /// The name written before the colon.
        name: String,
        /// Span of the test (the lambda's body).
        test: Span,
    },
    /// `.limit(n)`.
    Limit(u64),
    /// `.process(f(...))`: the function and the event types it emits.
    Process {
        /// The user function called per event.
        function: String,
        /// Event types it creates with `emit`.
        emits: Vec<String>,
    },
    /// `.first()`.
    First,
    /// `.score(model:, inputs:, outputs:)`: ONNX inference.
    Score {
        /// The model file as written.
        model: String,
        /// Input field names, in model order.
        inputs: Vec<String>,
        /// Output field names, in model order.
        outputs: Vec<String>,
    },
    /// `.watermark(out_of_order: d)`, nanoseconds.
    Watermark(u64),
    /// `.allowed_lateness(d)`, nanoseconds.
    AllowedLateness(u64),
    /// `.context(c)`: the context (engine thread) the stream runs in.
    Context(String),
    /// `.concurrent(workers: n)`: the program's default number of engine
    /// shards (a scheduling setting; results do not depend on it).
    Concurrent(u32),
    /// `.tap(...)`: ignored.
    Tap,
    /// `.on_error(Conn, ...)`: where the stream's runtime errors go.
    OnError {
        /// Connector name.
        connector: String,
    },
    /// `.map(name: expr, ...)`: the added or replaced fields.
    Map(Vec<OutputItem>),
    /// `.order_by(k, desc(k2), ...)` after a window: the keys' spans.
    OrderBy(Vec<Span>),
    /// `.collect(as: f)` after a window: the array field's name.
    Collect(String),
    /// `.any(e)` after a window: the condition's span.
    Any(Span),
    /// `.all(e)` after a window: the condition's span.
    All(Span),
    /// `.timeouts()`: the stream receives the source's expired partial
    /// matches (its source is [`SourceModel::Timeouts`]).
    Timeouts,
    /// `.late()`: the stream receives the events its source stream dropped
    /// as late (its source is [`SourceModel::Late`]).
    Late,
    /// An operator that is unknown, unsupported or malformed (reported).
    Invalid,
}

/// A checked named pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatternModel {
    /// Schema of a match (aliases and the last step's fields).
    pub schema: Arc<Schema>,
    /// `within`, nanoseconds.
    pub within: Option<u64>,
    /// `partition by` key.
    pub partition_by: Option<String>,
}

/// A checked connector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectorModel {
    /// Connector kind (`file`, `kafka`, ...).
    pub kind: String,
}

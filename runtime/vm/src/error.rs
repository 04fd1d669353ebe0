//! Errors: load errors (the program cannot run) and runtime error reports
//! (an expression failed on some event; the engine goes on).

use std::sync::Arc;
use thiserror::Error;
use varpulis_program::SpanId;

/// Why a [`varpulis_program::Program`] cannot be loaded.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum LoadError {
    /// The artifact has another format version.
    #[error("program format version {found} is not supported (expected {expected})")]
    Version {
        /// Version in the program.
        found: u32,
        /// Version this engine runs.
        expected: u32,
    },
    /// An id in the program points outside its table.
    #[error("invalid program: {0}")]
    Invalid(String),
    /// Streams feed each other in a cycle.
    #[error("streams form a cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    /// A feature the engine does not run yet.
    #[error("stream `{stream}` uses {feature}, which this engine does not support yet")]
    Unsupported {
        /// The stream.
        stream: String,
        /// What it uses.
        feature: &'static str,
    },
    /// A global initialiser failed with a runtime error.
    #[error("global `{0}` could not be initialised")]
    Global(String),
    /// A `.score` whose model the host did not load or that does not fit.
    #[error("{0}")]
    Model(String),
    /// Snapshot bytes that cannot be restored into this engine.
    #[error("cannot restore snapshot: {0}")]
    Snapshot(String),
}

/// Kinds of runtime errors, each with a stable code (R0xxx).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuntimeErrorKind {
    /// Division or modulo by zero.
    DivisionByZero,
    /// Operands of the wrong types for an operator or built-in.
    TypeMismatch,
    /// An index outside an array or string.
    IndexOutOfRange,
    /// A conversion (`to_int("x")`) that cannot succeed.
    BadConversion,
    /// Integer overflow.
    Overflow,
    /// Wrong number of arguments.
    Arity,
    /// Call depth or instruction budget exhausted (runaway recursion/loop).
    Limit,
    /// Malformed bytecode (a compiler bug).
    Internal,
    /// A `.score` input field is missing or not a number.
    ScoreInput,
    /// A `.score` model run failed.
    ScoreModel,
}

impl RuntimeErrorKind {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            RuntimeErrorKind::DivisionByZero => "R0001",
            RuntimeErrorKind::TypeMismatch => "R0002",
            RuntimeErrorKind::IndexOutOfRange => "R0003",
            RuntimeErrorKind::BadConversion => "R0004",
            RuntimeErrorKind::Overflow => "R0005",
            RuntimeErrorKind::Arity => "R0006",
            RuntimeErrorKind::Limit => "R0007",
            RuntimeErrorKind::Internal => "R0008",
            RuntimeErrorKind::ScoreInput => "R0009",
            RuntimeErrorKind::ScoreModel => "R0010",
        }
    }

    /// A short description.
    pub fn message(self) -> &'static str {
        match self {
            RuntimeErrorKind::DivisionByZero => "division by zero",
            RuntimeErrorKind::TypeMismatch => "operand types do not fit the operation",
            RuntimeErrorKind::IndexOutOfRange => "index out of range",
            RuntimeErrorKind::BadConversion => "value cannot be converted",
            RuntimeErrorKind::Overflow => "integer overflow",
            RuntimeErrorKind::Arity => "wrong number of arguments",
            RuntimeErrorKind::Limit => "call depth or instruction budget exhausted",
            RuntimeErrorKind::Internal => "malformed bytecode",
            RuntimeErrorKind::ScoreInput => "model input is not a number",
            RuntimeErrorKind::ScoreModel => "model run failed",
        }
    }
}

/// One runtime error: the expression produced no value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeError {
    /// What went wrong.
    pub kind: RuntimeErrorKind,
    /// Where (resolve with [`varpulis_program::SpanTable::location`]).
    pub span: SpanId,
    /// The stream being evaluated, if any.
    pub stream: Option<Arc<str>>,
    /// Event time of the event being processed.
    pub time: i64,
    /// Extra detail (operand types, the failing built-in).
    pub detail: String,
}

impl RuntimeError {
    /// `R0001 division by zero (rules.vpl:3:9, stream Alerts): detail`.
    pub fn render(&self, spans: &varpulis_program::SpanTable) -> String {
        let mut s = format!("{} {}", self.kind.code(), self.kind.message());
        let loc = spans.location(self.span);
        match (loc, &self.stream) {
            (Some(l), Some(st)) => s.push_str(&format!(" ({l}, stream {st})")),
            (Some(l), None) => s.push_str(&format!(" ({l})")),
            (None, Some(st)) => s.push_str(&format!(" (stream {st})")),
            (None, None) => {}
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

//! Execution contexts: `context name (cores: [...])` declarations and the
//! streams placed in them (`.context(name)`, `.emit(context: other, ...)`).
//!
//! The Program only records what the source says; a host decides what to do
//! with it (`varpulis run` gives each context its own engine thread). The
//! engine never reads these tables: a program's results do not depend on
//! them.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::plan::StreamId;
use crate::span::SpanId;

/// An index into [`crate::Program::contexts`].
pub type ContextId = u32;

/// `context name (cores: [0, 1])`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextDef {
    /// The context's name.
    pub name: Arc<str>,
    /// The CPU cores its thread may run on (`cores:`); empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cores: Vec<u32>,
    /// The declaration.
    pub span: SpanId,
}

/// Where one stream runs and where its results go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The stream.
    pub stream: StreamId,
    /// `.context(c)`: the context the stream runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<ContextId>,
    /// `.emit(context: c, ...)`: the context its results are forwarded to
    /// (streams that read it and name no context of their own run there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emit: Option<ContextId>,
}

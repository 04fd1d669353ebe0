//! The span table: source positions for runtime errors without source text.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Index into [`SpanTable::spans`]. [`SpanId::NONE`] means "no position".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SpanId(pub u32);

impl SpanId {
    /// No source position.
    pub const NONE: SpanId = SpanId(u32::MAX);
}

impl Default for SpanId {
    fn default() -> Self {
        SpanId::NONE
    }
}

/// One source position, absolute in its (loop-expanded) file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanInfo {
    /// Index into [`SpanTable::files`].
    pub file: u32,
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
    /// 1-based line of `start`.
    pub line: u32,
    /// 1-based column (in chars) of `start`.
    pub column: u32,
}

/// File names and span positions referenced by [`SpanId`]s in chunks and plans.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SpanTable {
    /// File names as given to the compiler (not their text).
    pub files: Vec<Arc<str>>,
    /// Positions, indexed by [`SpanId`].
    pub spans: Vec<SpanInfo>,
}

impl SpanTable {
    /// Adds a span and returns its id.
    pub fn push(&mut self, info: SpanInfo) -> SpanId {
        let id = SpanId(u32::try_from(self.spans.len()).unwrap_or(u32::MAX - 1));
        self.spans.push(info);
        id
    }

    /// The position of a span id, if it has one.
    pub fn get(&self, id: SpanId) -> Option<&SpanInfo> {
        self.spans.get(id.0 as usize)
    }

    /// `file:line:column` for messages (`rules.vpl:12:5`), or `None`.
    pub fn location(&self, id: SpanId) -> Option<String> {
        let info = self.get(id)?;
        let file = self
            .files
            .get(info.file as usize)
            .map_or("<unknown>", |f| f);
        Some(format!("{file}:{}:{}", info.line, info.column))
    }
}

//! Syntax errors and comments, the side outputs of lexing and parsing.

use crate::span::Span;

/// One syntax diagnostic.
///
/// Spans are relative to the text that was parsed: the item's text for
/// [`crate::parse_item`], the whole (loop-expanded) text for [`crate::parse`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SyntaxError {
    /// The error code, one of [`crate::codes`].
    pub code: &'static str,
    /// What is wrong, lowercase, no full stop.
    pub message: String,
    /// The primary location.
    pub span: Span,
    /// Text for the primary label (points at the cause).
    pub label: Option<String>,
    /// A concrete fix.
    pub help: Option<String>,
    /// Whether the error only says "the input ended too early": the REPL then
    /// asks for another line instead of reporting it.
    pub incomplete: bool,
}

impl SyntaxError {
    /// An error with a code, message and span, no label or help.
    pub fn new(code: &'static str, message: impl Into<String>, span: Span) -> SyntaxError {
        SyntaxError {
            code,
            message: message.into(),
            span,
            label: None,
            help: None,
            incomplete: false,
        }
    }

    /// Adds a primary label.
    pub fn with_label(mut self, label: impl Into<String>) -> SyntaxError {
        self.label = Some(label.into());
        self
    }

    /// Adds a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> SyntaxError {
        self.help = Some(help.into());
        self
    }

    /// Marks the error as "input ended too early".
    pub fn incomplete(mut self) -> SyntaxError {
        self.incomplete = true;
        self
    }

    /// This error with its span moved right by `offset` bytes.
    pub fn shifted(mut self, offset: u32) -> SyntaxError {
        self.span = self.span.shifted(offset);
        self
    }
}

/// Which comment syntax was used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommentKind {
    /// `# ...` or `// ...` to the end of the line.
    Line,
    /// `/* ... */`.
    Block,
}

/// A comment, kept for the formatter and for editor folding.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Comment {
    /// Line or block comment.
    pub kind: CommentKind,
    /// The comment including its delimiters.
    pub span: Span,
}

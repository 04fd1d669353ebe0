//! The diagnostics model, kept apart from rendering.
//!
//! A [`Diagnostic`] is plain data: a code from the [registry](crate::codes), a
//! severity, a lowercase message without a final period, a primary label that
//! points at the cause, secondary labels for the other side of a conflict,
//! notes, a concrete help line and an optional machine-applicable
//! [`Suggestion`] (for LSP code actions). Renderers live in
//! [`crate::render`]: ariadne for terminals, JSON for tools, and later LSP.
//!
//! Spans are byte ranges. Inside the per-item checking queries they are
//! relative to the item's start; [`Diagnostic::shifted`] makes them absolute in
//! the final per-file query.

use varpulis_syntax::Span;

use crate::codes;

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// The program is rejected.
    Error,
    /// Legal but suspicious; the program still runs.
    Warning,
    /// Extra information attached to another diagnostic or standalone.
    Note,
}

impl Severity {
    /// Lowercase name used by the renderers (`error`, `warning`, `note`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }
}

/// A span with an explanatory text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What is there (may be empty).
    pub message: String,
}

impl Label {
    /// A label with a message.
    pub fn new(span: Span, message: impl Into<String>) -> Label {
        Label {
            span,
            message: message.into(),
        }
    }
}

/// A replacement that fixes the problem, for editors' code actions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Suggestion {
    /// The text to replace.
    pub span: Span,
    /// The new text.
    pub replacement: String,
}

/// One problem found in a program.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    /// Registry code such as `E0201`.
    pub code: &'static str,
    /// Error, warning or note.
    pub severity: Severity,
    /// What is wrong: lowercase, no final period.
    pub message: String,
    /// The cause.
    pub primary: Label,
    /// Related places (the other side of a conflict, a previous declaration).
    pub secondary: Vec<Label>,
    /// Additional facts.
    pub notes: Vec<String>,
    /// A concrete fix, e.g. "did you mean `temperature`?".
    pub help: Option<String>,
    /// A machine-applicable edit implementing the help.
    pub suggestion: Option<Suggestion>,
}

impl Diagnostic {
    /// A diagnostic whose severity comes from the code registry.
    pub fn new(code: &'static str, message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic {
            code,
            severity: codes::severity(code),
            message: message.into(),
            primary: Label::new(span, ""),
            secondary: Vec::new(),
            notes: Vec::new(),
            help: None,
            suggestion: None,
        }
    }

    /// Sets the primary label's text.
    pub fn with_label(mut self, message: impl Into<String>) -> Diagnostic {
        self.primary.message = message.into();
        self
    }

    /// Adds a secondary label.
    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.secondary.push(Label::new(span, message));
        self
    }

    /// Adds a note.
    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    /// Sets the help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Sets the help line, if any.
    pub fn with_help_opt(mut self, help: Option<String>) -> Diagnostic {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    /// Adds a machine-applicable replacement.
    pub fn with_suggestion(mut self, span: Span, replacement: impl Into<String>) -> Diagnostic {
        self.suggestion = Some(Suggestion {
            span,
            replacement: replacement.into(),
        });
        self
    }

    /// Whether this is an error (the program is rejected).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// This diagnostic with every span moved right by `offset` bytes.
    pub fn shifted(mut self, offset: u32) -> Diagnostic {
        self.map_spans(|s| s.shifted(offset));
        self
    }

    /// Applies `f` to every span of the diagnostic.
    pub fn map_spans(&mut self, mut f: impl FnMut(Span) -> Span) {
        self.primary.span = f(self.primary.span);
        for label in &mut self.secondary {
            label.span = f(label.span);
        }
        if let Some(s) = &mut self.suggestion {
            s.span = f(s.span);
        }
    }
}

/// Converts a parser error into a diagnostic.
impl From<&varpulis_syntax::SyntaxError> for Diagnostic {
    fn from(e: &varpulis_syntax::SyntaxError) -> Diagnostic {
        let mut d = Diagnostic::new(e.code, e.message.clone(), e.span);
        d.severity = Severity::Error;
        if let Some(label) = &e.label {
            d.primary.message = label.clone();
        }
        d.help = e.help.clone();
        d
    }
}

/// Whether any diagnostic in the list is an error.
pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(Diagnostic::is_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(d: Diagnostic, offset: u32) -> (u32, u32, Option<(u32, u32)>) {
        let d = d.shifted(offset);
        (
            d.primary.span.start,
            d.secondary[0].span.start,
            d.suggestion.map(|s| (s.span.start, s.span.end)),
        )
    }

    #[test]
    fn shifting_moves_every_span() {
        let d = Diagnostic::new(codes::UNKNOWN_FIELD, "x", Span::new(1, 2))
            .with_secondary(Span::new(3, 4), "here")
            .with_suggestion(Span::new(1, 2), "y");
        assert_eq!(check(d, 10), (11, 13, Some((11, 12))));
    }

    #[test]
    fn severity_comes_from_the_registry() {
        let w = Diagnostic::new(codes::AGGREGATE_WITHOUT_WINDOW, "x", Span::default());
        assert_eq!(w.severity, Severity::Warning);
        let e = Diagnostic::new(codes::UNKNOWN_FIELD, "x", Span::default());
        assert!(e.is_error());
    }
}

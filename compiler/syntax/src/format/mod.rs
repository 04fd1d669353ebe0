//! The formatter behind `varpulis fmt`: one canonical layout for VPL.
//!
//! [`format()`] parses the text, refuses it when it has syntax errors (a
//! broken program cannot be reprinted without losing what the parser could
//! not understand), prints every item from its tree and keeps every comment.
//! The layout rules are written down in `docs/FORMAT.md`.
//!
//! The tree does not record everything the source says: literals keep only
//! their value, identifiers and map keys their name, and some pattern forms
//! are sugar. The printer therefore copies literals from the source text and
//! looks at the source to keep the pattern spelling the author chose.
//! Declaration loops are a textual macro whose body does not parse before
//! expansion, so they are kept as written and only re-indented.
//!
//! Architecture invariant: formatting never changes meaning. [`format()`]
//! checks its own output before returning it: the output must parse
//! cleanly, to the same trees with spans ignored ([`ast_fingerprint`]), with
//! the same number of comments ([`comment_count`]). A failed check is a bug
//! and is returned as [`FormatError::Unstable`] instead of bad output.
//!
//! Pure: no IO, no salsa.

mod expr;
mod items;
mod loops;
mod printer;
mod program;
#[cfg(test)]
mod tests;

use crate::error::SyntaxError;

/// Lines longer than this are broken (where the layout allows it).
pub const MAX_WIDTH: usize = 100;

/// Columns per indentation level.
pub const INDENT: usize = 4;

/// Why a text was not formatted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// The text has syntax errors (spans in the input text); formatting it
    /// could lose what the parser skipped.
    Syntax(Vec<SyntaxError>),
    /// A formatter bug: the output would not have meant the same as the
    /// input. The input is left as it is.
    Unstable(String),
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FormatError::Syntax(errors) => {
                write!(f, "the text has {} syntax error(s)", errors.len())
            }
            FormatError::Unstable(why) => write!(f, "formatter bug, text left unchanged: {why}"),
        }
    }
}

impl std::error::Error for FormatError {}

/// Formats a VPL program in the canonical layout.
///
/// Refuses text with syntax errors ([`FormatError::Syntax`], spans mapped to
/// `text`). The result is idempotent: formatting it again changes nothing.
pub fn format(text: &str) -> Result<String, FormatError> {
    let parse = crate::parse(text);
    if !parse.errors.is_empty() {
        let errors = parse
            .errors
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e.span = parse.source_map.span_to_original(e.span);
                e
            })
            .collect();
        return Err(FormatError::Syntax(errors));
    }
    let out = program::print(text, &parse);
    check_same_meaning(text, &parse, &out)?;
    Ok(out)
}

/// The output must parse to the same trees and keep every comment.
fn check_same_meaning(text: &str, parse: &crate::Parse, out: &str) -> Result<(), FormatError> {
    let again = crate::parse(out);
    if let Some(err) = again.errors.first() {
        return Err(FormatError::Unstable(format!(
            "the output does not parse: {} {}",
            err.code, err.message
        )));
    }
    if fingerprint_of(parse) != fingerprint_of(&again) {
        return Err(FormatError::Unstable(
            "the output parses to a different tree".to_string(),
        ));
    }
    if comment_count(text) != comment_count(out) {
        return Err(FormatError::Unstable(
            "the output has a different number of comments".to_string(),
        ));
    }
    Ok(())
}

/// The trees of `text` with all spans and offsets removed, as text; `None`
/// when `text` has syntax errors. Two programs with equal fingerprints mean
/// the same thing.
pub fn ast_fingerprint(text: &str) -> Option<String> {
    let parse = crate::parse(text);
    parse.errors.is_empty().then(|| fingerprint_of(&parse))
}

fn fingerprint_of(parse: &crate::Parse) -> String {
    let mut out = String::new();
    for item in &parse.items {
        out.push_str(&strip_spans(&format!("{:?}", item.item)));
        out.push('\n');
    }
    out
}

/// Replaces every `Span { start: N, end: M }` in a `Debug` rendering by `_`.
fn strip_spans(debug: &str) -> String {
    const OPEN: &str = "Span { start: ";
    let mut out = String::with_capacity(debug.len());
    let mut rest = debug;
    while let Some(at) = rest.find(OPEN) {
        out.push_str(&rest[..at]);
        match rest[at..].find('}') {
            Some(close) => {
                out.push('_');
                rest = &rest[at + close + 1..];
            }
            None => {
                rest = &rest[at..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The number of comments in `text` as written (declaration loops are not
/// expanded, so a comment inside a loop body counts once).
pub fn comment_count(text: &str) -> usize {
    crate::lex(text)
        .iter()
        .filter(|t| t.kind.is_comment())
        .count()
}

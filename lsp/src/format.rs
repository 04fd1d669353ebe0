//! Document formatting through the syntax crate's formatter.
//!
//! Text with syntax errors is not formatted (the formatter refuses it, since
//! it could lose what the parser skipped): the server answers with no edits.

/// The formatted text of `text`, or `None` when it cannot be formatted.
pub fn format(text: &str) -> Option<String> {
    varpulis_syntax::format::format(text).ok()
}

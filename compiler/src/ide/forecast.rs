//! Completion inside `.forecast(...)`: its named arguments at the start of
//! an argument, the preset names after `mode:` (docs/LANGUAGE.md#forecast).

use varpulis_syntax::{Token, TokenKind};

use super::complete::{Completion, CompletionKind};
use crate::forecast::{MODES, PARAMS};

fn item(label: &str, kind: CompletionKind, detail: &str, insert: String) -> Completion {
    Completion {
        label: label.to_string(),
        kind,
        detail: Some(detail.to_string()),
        documentation: None,
        insert_text: insert,
        snippet: false,
    }
}

/// The candidates at a position inside `.forecast(`, given the item's text
/// and the tokens before the position; `None` inside an argument's value
/// other than `mode:` (expressions complete as usual there).
pub(super) fn arguments(text: &str, before: &[&Token]) -> Option<Vec<Completion>> {
    let word = |t: &Token| text.get(t.span.range()).unwrap_or("");
    let n = before.len();
    let last = before.last()?;
    match last.kind {
        TokenKind::LParen | TokenKind::Comma => Some(
            PARAMS
                .iter()
                .map(|p| {
                    item(
                        p,
                        CompletionKind::Keyword,
                        "forecast argument",
                        format!("{p}: "),
                    )
                })
                .collect(),
        ),
        TokenKind::Colon if n >= 2 && word(before[n - 2]) == "mode" => Some(
            MODES
                .iter()
                .map(|m| item(m, CompletionKind::Keyword, "forecast preset", m.to_string()))
                .collect(),
        ),
        _ => None,
    }
}

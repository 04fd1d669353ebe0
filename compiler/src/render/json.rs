//! JSON rendering for tools: an array of objects with `code`, `severity`,
//! `message`, `file`, `line`, `column`, `end_line`, `end_column` (1-based,
//! columns in characters), `labels`, `help`, `notes` and `suggestion`.

use serde::Serialize;

use super::LineIndex;
use crate::diagnostic::Diagnostic;

#[derive(Serialize)]
struct JsonLabel<'a> {
    message: &'a str,
    primary: bool,
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
}

#[derive(Serialize)]
struct JsonSuggestion<'a> {
    replacement: &'a str,
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    code: &'a str,
    severity: &'a str,
    message: &'a str,
    file: &'a str,
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
    labels: Vec<JsonLabel<'a>>,
    help: Option<&'a str>,
    notes: &'a [String],
    suggestion: Option<JsonSuggestion<'a>>,
}

/// The diagnostics of one file as JSON values.
pub fn to_values(path: &str, text: &str, diags: &[Diagnostic]) -> Vec<serde_json::Value> {
    let index = LineIndex::new(text);
    diags
        .iter()
        .map(|d| {
            let (line, column) = index.position(d.primary.span.start);
            let (end_line, end_column) = index.position(d.primary.span.end);
            let label = |l: &'_ crate::diagnostic::Label, primary| {
                let (line, column) = index.position(l.span.start);
                let (end_line, end_column) = index.position(l.span.end);
                JsonLabel {
                    message: "",
                    primary,
                    line,
                    column,
                    end_line,
                    end_column,
                }
            };
            let mut labels = vec![JsonLabel {
                message: &d.primary.message,
                ..label(&d.primary, true)
            }];
            labels.extend(d.secondary.iter().map(|l| JsonLabel {
                message: &l.message,
                ..label(l, false)
            }));
            let suggestion = d.suggestion.as_ref().map(|s| {
                let (line, column) = index.position(s.span.start);
                let (end_line, end_column) = index.position(s.span.end);
                JsonSuggestion {
                    replacement: &s.replacement,
                    line,
                    column,
                    end_line,
                    end_column,
                }
            });
            let j = JsonDiagnostic {
                code: d.code,
                severity: d.severity.as_str(),
                message: &d.message,
                file: path,
                line,
                column,
                end_line,
                end_column,
                labels,
                help: d.help.as_deref(),
                notes: &d.notes,
                suggestion,
            };
            serde_json::to_value(j).unwrap_or(serde_json::Value::Null)
        })
        .collect()
}

/// The diagnostics of one file as a pretty-printed JSON array.
pub fn render(path: &str, text: &str, diags: &[Diagnostic]) -> String {
    let values = to_values(path, text, diags);
    serde_json::to_string_pretty(&values).unwrap_or_else(|_| "[]".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes;
    use varpulis_syntax::Span;

    fn check(text: &str, d: Diagnostic) -> serde_json::Value {
        to_values("a.vpl", text, &[d]).remove(0)
    }

    #[test]
    fn fields_and_positions() {
        let v = check(
            "x\nab cd",
            Diagnostic::new(codes::UNKNOWN_NAME, "unknown name `cd`", Span::new(5, 7))
                .with_help("h"),
        );
        assert_eq!(v["code"], "E0201");
        assert_eq!(v["severity"], "error");
        assert_eq!(
            (v["line"].as_u64(), v["column"].as_u64()),
            (Some(2), Some(4))
        );
        assert_eq!(v["end_column"].as_u64(), Some(6));
        assert_eq!(v["file"], "a.vpl");
        assert_eq!(v["help"], "h");
        assert_eq!(v["labels"][0]["primary"], true);
    }
}

//! Editor services without a terminal: completion candidates, syntax
//! highlighting and the "needs another line" rule. The rustyline front end
//! ([`crate::front`]) only adapts these.
//!
//! Completion uses the compiler's host queries (the ones the LSP uses):
//! the compiler's IDE completion query (`varpulis_compiler::ide::completions`,
//! the one the language server answers with), plus
//! [`varpulis_compiler::Compiler::symbols`] for names,
//! [`varpulis_compiler::Compiler::fields_at`] and
//! [`varpulis_compiler::Compiler::stream_schema`] for the fields in scope, and
//! the operator table of [`varpulis_compiler::capabilities`] after a `.`.

use varpulis_compiler::capabilities::{Support, OPERATORS};
use varpulis_compiler::Compiler;
use varpulis_syntax::{is_incomplete, lex, TokenKind};

use crate::commands::COMMANDS;
use crate::session::{Session, SESSION_FILE};

/// Scratch file used to ask for the fields in scope of the line being typed.
const SCRATCH_FILE: &str = "<completion>.vpl";

/// Words recognised as keywords (docs/LANGUAGE.md#names-and-keywords).
pub const KEYWORDS: &[&str] = varpulis_syntax::KEYWORDS;

/// Type names, highlighted like keywords.
const TYPES: &[&str] = &[
    "int",
    "float",
    "bool",
    "str",
    "timestamp",
    "duration",
    "Stream",
];

/// One completion: what replaces the word being typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The replacement text.
    pub text: String,
    /// What it is (`keyword`, `operator`, `stream`, `field: float`, ...).
    pub kind: String,
}

/// Completions for `line` (the whole input so far) at byte `pos`: the start
/// of the word being replaced and the candidates, sorted and deduplicated.
pub fn complete(session: &Session, line: &str, pos: usize) -> (usize, Vec<Candidate>) {
    let pos = pos.min(line.len());
    let Some(before) = line.get(..pos) else {
        return (pos, Vec::new());
    };
    let start = before
        .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
        .map_or(0, |i| i + 1);
    let word = before.get(start..).unwrap_or("");
    let prefix = before.get(..start).unwrap_or("");
    let mut out: Vec<Candidate> = Vec::new();
    let mut add = |text: &str, kind: &str| {
        if text.starts_with(word) && !out.iter().any(|c| c.text == text) {
            out.push(Candidate {
                text: text.to_string(),
                kind: kind.to_string(),
            });
        }
    };
    let trimmed = prefix.trim_start();
    if trimmed == ":" {
        for (name, _, _) in COMMANDS {
            add(name, "command");
        }
    } else if let Some(cmd) = trimmed.strip_prefix(':') {
        let cmd = cmd.split_whitespace().next().unwrap_or("");
        if matches!(cmd, "inspect" | "i" | "why" | "w" | "drop") {
            for s in session.program().streams.iter() {
                add(&s.name, "stream");
            }
            if cmd == "drop" {
                for d in session.decls.items() {
                    if let Some(n) = &d.name {
                        add(n, &d.keyword);
                    }
                }
            }
        }
    } else if prefix.ends_with('.') || prefix.ends_with("?.") {
        for op in OPERATORS {
            if op.support != Support::NotYet {
                add(op.name, "operator");
            }
        }
    } else {
        // The language server's completion query, asked on a scratch file
        // made of the session's declarations plus the line being typed.
        for (label, kind) in ide_candidates(session, line, pos) {
            add(&label, &kind);
        }
        for f in fields_in_scope(session, line, start) {
            add(&f.0, &format!("field: {}", f.1));
        }
        let c = session.compiler();
        for s in c.symbols(SESSION_FILE) {
            add(&s.name, &format!("{:?}", s.kind).to_lowercase());
        }
        for k in KEYWORDS.iter().chain(TYPES) {
            add(k, "keyword");
        }
    }
    out.sort_by(|a, b| a.text.cmp(&b.text));
    (start, out)
}

/// Candidates from the compiler's IDE completion query (the one the language
/// server answers with) at `offset` of `line`, as (label, kind) pairs.
fn ide_candidates(session: &Session, line: &str, offset: usize) -> Vec<(String, String)> {
    use varpulis_compiler::ide::CompletionKind as K;
    let base = session.source();
    let text = format!("{base}\n{line}\n");
    let at = base.len() + 1 + offset;
    let mut scratch = Compiler::new();
    scratch.set_file(SCRATCH_FILE, text);
    let found = varpulis_compiler::ide::completions(
        &scratch,
        SCRATCH_FILE,
        u32::try_from(at).unwrap_or(u32::MAX),
    );
    found
        .items
        .into_iter()
        .filter(|c| !c.snippet || c.kind != K::Snippet)
        .map(|c| {
            let kind = match (c.kind, c.detail) {
                (K::Field, Some(d)) => format!("field: {d}"),
                (K::Operator, _) => "operator".to_string(),
                (K::Alias, _) => "alias".to_string(),
                (K::Builtin, _) => "function".to_string(),
                (K::Aggregate, _) => "aggregate".to_string(),
                (K::Local, _) => "local".to_string(),
                (K::Type, _) => "type".to_string(),
                (K::Keyword, _) | (K::Snippet, _) => "keyword".to_string(),
                (K::Decl(k), _) => format!("{k:?}").to_lowercase(),
                (K::Field, None) => "field".to_string(),
            };
            (c.label, kind)
        })
        .collect()
}

/// Fields visible at `offset` of `line`: asked from the compiler on a scratch
/// file made of the session's declarations plus the line, and from the
/// schema of the stream's source.
fn fields_in_scope(session: &Session, line: &str, offset: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let base = session.source();
    let text = format!("{base}\n{line}\n");
    let at = base.len() + 1 + offset;
    // The compiler is shared with the session; a scratch compiler keeps the
    // session's virtual file untouched (and completion stays read-only).
    let mut scratch = Compiler::new();
    scratch.set_file(SCRATCH_FILE, text);
    for f in scratch.fields_at(SCRATCH_FILE, u32::try_from(at).unwrap_or(u32::MAX)) {
        out.push((f.name.to_string(), f.ty.to_string()));
    }
    // `stream S = Source...`: the source's fields, in case the partial line
    // does not parse far enough for `fields_at`.
    if let Some(source) = stream_source(line) {
        if let Some(schema) = session.compiler().stream_schema(SESSION_FILE, source) {
            for f in &schema.fields {
                out.push((f.name.to_string(), f.ty.to_string()));
            }
        }
    }
    out
}

/// `Source` in `stream Name = Source...`.
fn stream_source(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix("stream")?;
    let (_, rhs) = rest.split_once('=')?;
    let rhs = rhs.trim_start();
    let end = rhs
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rhs.len());
    rhs.get(..end).filter(|s| !s.is_empty())
}

/// Whether `text` needs another line before it can be handled: commands
/// never do; other input does while the parser calls it incomplete. A last
/// line holding only spaces counts as the blank line that ends a block.
pub fn needs_more(text: &str) -> bool {
    if text.trim_start().starts_with(':') {
        return false;
    }
    if text.trim().is_empty() {
        return false;
    }
    let last = text.rsplit('\n').next().unwrap_or("");
    if text.contains('\n') && last.trim().is_empty() {
        let body = text.trim_end_matches([' ', '\t', '\r', '\n']);
        return is_incomplete(&format!("{body}\n\n"));
    }
    is_incomplete(text)
}

/// The indentation for the next line of an incomplete input: the last
/// line's, plus four spaces after a `:` that opens a block.
pub fn next_indent(text: &str) -> String {
    let last = text.rsplit('\n').next().unwrap_or("");
    let indent: String = last.chars().take_while(|c| *c == ' ').collect();
    if last.trim_end().ends_with(':') {
        format!("{indent}    ")
    } else {
        indent
    }
}

/// ANSI colour for each kind of token.
fn style(kind: TokenKind, word: &str) -> Option<&'static str> {
    match kind {
        TokenKind::Ident if KEYWORDS.contains(&word) => Some("\x1b[1;35m"),
        TokenKind::Ident if TYPES.contains(&word) => Some("\x1b[36m"),
        TokenKind::Int | TokenKind::Float | TokenKind::Duration | TokenKind::Timestamp => {
            Some("\x1b[33m")
        }
        TokenKind::Str => Some("\x1b[32m"),
        TokenKind::LineComment | TokenKind::BlockComment => Some("\x1b[2m"),
        TokenKind::BadLiteral | TokenKind::Unknown => Some("\x1b[31m"),
        _ => None,
    }
}

/// `line` with ANSI colours: keywords, types, literals and comments.
/// Commands (`:...`) are shown bold.
pub fn highlight(line: &str) -> String {
    if line.trim_start().starts_with(':') {
        return format!("\x1b[1m{line}\x1b[0m");
    }
    let mut out = String::with_capacity(line.len() + 32);
    let mut at = 0;
    for t in lex(line) {
        let r = t.span.range();
        let (Some(gap), Some(word)) = (line.get(at..r.start), line.get(r.clone())) else {
            continue;
        };
        out.push_str(gap);
        match style(t.kind, word) {
            Some(s) => {
                out.push_str(s);
                out.push_str(word);
                out.push_str("\x1b[0m");
            }
            None => out.push_str(word),
        }
        at = r.end;
    }
    out.push_str(line.get(at..).unwrap_or(""));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(session: &Session, line: &str) -> Vec<String> {
        complete(session, line, line.len())
            .1
            .into_iter()
            .map(|c| c.text)
            .collect()
    }

    #[test]
    fn completes_commands_operators_names_and_fields() {
        let mut s = Session::new();
        s.handle_line("event Reading:\n    sensor: str\n    temp: float\n\n");
        s.handle_line("stream Hot = Reading.where(temp > 30.0).emit(sensor: sensor)");
        assert_eq!(names(&s, ":rep"), ["replay"]);
        assert!(names(&s, "stream X = Reading.wh").contains(&"where".to_string()));
        assert_eq!(names(&s, ":inspect H"), ["Hot"]);
        assert!(names(&s, "stream X = Rea").contains(&"Reading".to_string()));
        assert!(names(&s, "stream X = Reading.where(te").contains(&"temp".to_string()));
        assert!(names(&s, "str").contains(&"stream".to_string()));
    }

    #[test]
    fn uses_the_language_server_completion_query() {
        let mut s = Session::new();
        s.handle_line("event Reading:\n    sensor: str\n    temp: float\n\n");
        // Aggregates and built-ins come from the compiler's IDE query, the
        // same one `varpulis lsp` answers with.
        let line = "stream X = Reading.window(5m).aggregate(n: cou";
        let (_, found) = complete(&s, line, line.len());
        assert!(
            found
                .iter()
                .any(|c| c.text == "count" && c.kind == "aggregate"),
            "{found:?}"
        );
        let line = "stream Y = Reading.where(sq";
        let (_, found) = complete(&s, line, line.len());
        assert!(
            found
                .iter()
                .any(|c| c.text == "sqrt" && c.kind == "function"),
            "{found:?}"
        );
    }

    #[test]
    fn continuation_follows_the_parser_and_blank_lines_end_blocks() {
        assert!(needs_more("stream S = A.where("));
        assert!(!needs_more("stream S = A"));
        assert!(needs_more("fn f() -> int:"));
        assert!(needs_more("fn f() -> int:\n    1"));
        assert!(!needs_more("fn f() -> int:\n    1\n    "));
        assert!(!needs_more(":load x("));
        assert_eq!(next_indent("fn f() -> int:"), "    ");
        assert_eq!(next_indent("fn f():\n    let x = 1"), "    ");
    }

    #[test]
    fn highlighting_keeps_the_text() {
        let line = "stream S = A.where(x > 1.5) # c";
        let h = highlight(line);
        assert!(h.contains("\x1b[1;35mstream\x1b[0m"));
        let plain: String = strip(&h);
        assert_eq!(plain, line);
    }

    fn strip(s: &str) -> String {
        let mut out = String::new();
        let mut in_esc = false;
        for c in s.chars() {
            match (in_esc, c) {
                (false, '\x1b') => in_esc = true,
                (true, 'm') => in_esc = false,
                (true, _) => {}
                (false, c) => out.push(c),
            }
        }
        out
    }
}

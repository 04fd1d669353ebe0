//! Completion: candidates for the word being typed, chosen by context.
//!
//! - after `.` in a pipeline: operators (with snippet arguments); after
//!   `alias.`: the fields of the alias's event;
//! - after `->`, or as a stream's source: events, streams and patterns (and
//!   `merge`, `join`, `sequence`, `timer` for sources);
//! - inside `.to(`: connectors; inside `.context(`: contexts;
//! - in an event's field list: types;
//! - in expressions: fields of the event type in scope, aliases, globals,
//!   functions, built-ins (aggregates inside `.aggregate`) and keywords;
//! - at the top level: declaration snippets.

use std::sync::Arc;

use varpulis_syntax::ast::Item;
use varpulis_syntax::{Span, TokenKind};

use super::hover::{aggregate_doc, builtin_doc, describe_top_level, operator_doc};
use super::signature::enclosing_call;
use super::view::{FileView, SymbolKind, Target};
use crate::builtins::{AGGREGATES, BUILTINS};
use crate::capabilities::{Op, Support, OPERATORS};
use crate::host::Compiler;
use crate::model::ItemModel;
use crate::resolve::DeclKind;
use crate::types::{Schema, Type};

/// What a candidate is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompletionKind {
    /// A pipeline operator.
    Operator,
    /// A field.
    Field,
    /// A sequence alias.
    Alias,
    /// A top-level declaration.
    Decl(SymbolKind),
    /// A built-in function.
    Builtin,
    /// An aggregate function.
    Aggregate,
    /// A parameter or local variable.
    Local,
    /// A type name.
    Type,
    /// A keyword.
    Keyword,
    /// A declaration template.
    Snippet,
}

/// One candidate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// Shown in the list.
    pub label: String,
    /// What it is.
    pub kind: CompletionKind,
    /// A short type or signature.
    pub detail: Option<String>,
    /// Markdown documentation.
    pub documentation: Option<String>,
    /// Text to insert; a snippet (`${1:x}` placeholders) when `snippet`.
    pub insert_text: String,
    /// Whether `insert_text` is a snippet.
    pub snippet: bool,
}

impl Completion {
    fn plain(label: impl Into<String>, kind: CompletionKind, detail: Option<String>) -> Completion {
        let label = label.into();
        Completion {
            insert_text: label.clone(),
            label,
            kind,
            detail,
            documentation: None,
            snippet: false,
        }
    }

    fn snippet(label: &str, kind: CompletionKind, insert: String) -> Completion {
        Completion {
            label: label.to_string(),
            kind,
            detail: None,
            documentation: None,
            insert_text: insert,
            snippet: true,
        }
    }
}

/// The candidates at a position and the text they replace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Completions {
    /// The partial word before the cursor (empty at a word boundary).
    pub replace: Span,
    /// Candidates, most relevant first.
    pub items: Vec<Completion>,
}

const EXPR_KEYWORDS: &[&str] = &[
    "and", "or", "not", "true", "false", "null", "if", "then", "else",
];

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Snippet arguments from a signature like `pow(x: number, y: number)`.
fn call_snippet(name: &str, signature: &str) -> String {
    let inner = signature
        .find('(')
        .and_then(|a| signature.rfind(')').map(|b| (a, b)))
        .and_then(|(a, b)| signature.get(a + 1..b))
        .unwrap_or("");
    let params: Vec<String> = inner
        .split(", ")
        .map(|p| {
            p.split(':')
                .next()
                .unwrap_or(p)
                .trim_matches(['[', ']', ' '])
        })
        .filter(|p| !p.is_empty() && *p != "...")
        .enumerate()
        .map(|(i, p)| format!("${{{}:{p}}}", i + 1))
        .collect();
    format!("{name}({})", params.join(", "))
}

/// The snippet inserted for an operator.
fn operator_snippet(op: Op) -> String {
    let name = op.name();
    match op {
        Op::Where | Op::Filter | Op::Having | Op::On | Op::Any | Op::All => {
            format!("{name}(${{1:condition}})")
        }
        Op::OrderBy => "order_by(${1:key})".to_string(),
        Op::Collect => "collect(as: ${1:events})".to_string(),
        Op::Select | Op::Emit | Op::Aggregate => format!("{name}(${{1:name}}: ${{2:expr}})"),
        Op::Window => "window(${1:5m})".to_string(),
        Op::PartitionBy => "partition_by(${1:key})".to_string(),
        Op::To => "to(${1:Connector})".to_string(),
        Op::Enrich => "enrich(${1:Connector}, key: ${2:field}, fields: [${3:name}])".to_string(),
        Op::Within => "within(${1:5m})".to_string(),
        Op::Limit => "limit(${1:10})".to_string(),
        Op::First => "first()".to_string(),
        Op::Score => {
            "score(model: \"${1:model.onnx}\", inputs: [${2:field}], outputs: [${3:score}])"
                .to_string()
        }
        Op::Pattern => "pattern(${1:name}: events => ${2:events.len() > 3})".to_string(),
        Op::TrendAggregate
        | Op::AllowedLateness
        | Op::Late
        | Op::Timeouts
        | Op::Concurrent
        | Op::Context
        | Op::Not
        | Op::Policy
        | Op::LimitRuns
        | Op::Print
        | Op::Log
        | Op::Distinct
        | Op::Watermark
        | Op::Tap
        | Op::Process
        | Op::Forecast
        | Op::Map
        | Op::OnError
        | Op::Fork => format!("{name}($1)"),
    }
}

fn array_methods() -> Vec<Completion> {
    crate::check::lambda::ARRAY_METHODS
        .iter()
        .map(|(name, sig)| {
            let snippet = if sig.contains("=>") {
                format!("{name}(${{1:x}} => ${{2:x}})")
            } else if sig.contains("(v)") {
                format!("{name}(${{1:v}})")
            } else {
                format!("{name}()")
            };
            let mut c = Completion::snippet(name, CompletionKind::Builtin, snippet);
            c.detail = Some((*sig).to_string());
            c
        })
        .collect()
}

fn operators() -> Vec<Completion> {
    OPERATORS
        .iter()
        .filter(|o| o.support == Support::Supported)
        .map(|o| {
            let mut c =
                Completion::snippet(o.name, CompletionKind::Operator, operator_snippet(o.op));
            c.detail = Some(o.summary.to_string());
            c.documentation = operator_doc(o.name);
            c
        })
        .collect()
}

fn decls(view: &FileView<'_>, filter: impl Fn(DeclKind) -> bool) -> Vec<Completion> {
    let mut names: Vec<(&String, &DeclKind)> =
        view.decls.iter().filter(|(_, k)| filter(**k)).collect();
    names.sort_by_key(|(n, _)| n.as_str());
    names
        .into_iter()
        .map(|(n, k)| {
            let kind = SymbolKind::of_decl(*k);
            let mut c = Completion::plain(n.clone(), CompletionKind::Decl(kind), None);
            c.detail = Some(
                k.describe()
                    .trim_start_matches("a ")
                    .trim_start_matches("an ")
                    .to_string(),
            );
            if let DeclKind::Fn = k {
                if let Some(ItemModel::Fn(sig)) = view
                    .decl_items
                    .get(n)
                    .and_then(|&i| view.items.get(i))
                    .map(|ci| &ci.analysis.model)
                {
                    let ps: Vec<String> = (1..=sig.params.len())
                        .zip(&sig.params)
                        .map(|(i, (p, _))| format!("${{{i}:{p}}}"))
                        .collect();
                    c.insert_text = format!("{n}({})", ps.join(", "));
                    c.snippet = true;
                }
            }
            c.documentation = describe_top_level(view, n);
            c
        })
        .collect()
}

fn schema_fields(s: &Schema) -> Vec<Completion> {
    s.fields
        .iter()
        .filter(|f| !f.name.contains('.'))
        .map(|f| {
            Completion::plain(
                f.name.clone(),
                CompletionKind::Field,
                Some(f.ty.to_string()),
            )
        })
        .collect()
}

/// The schema of the events at relative offset `rel` of stream item `i`.
fn schema_at(view: &FileView<'_>, i: usize, rel: u32) -> Option<Arc<Schema>> {
    let ci = view.items.get(i)?;
    let (Item::Stream(s), ItemModel::Stream(m)) = (ci.item, &ci.analysis.model) else {
        return None;
    };
    let op_span = |k: usize| s.ops.get(k).map(|o| o.span);
    if let Some(st) = m
        .stages
        .iter()
        .find(|st| op_span(st.op).is_some_and(|sp| sp.start < rel && rel <= sp.end))
    {
        return Some(st.input.clone());
    }
    m.stages
        .iter()
        .rev()
        .find(|st| op_span(st.op).is_some_and(|sp| sp.end <= rel))
        .map(|st| st.output.clone())
        .or_else(|| m.stages.first().map(|st| st.input.clone()))
        .or_else(|| Some(m.output.clone()))
}

fn builtins(with_aggregates: bool) -> Vec<Completion> {
    let mut out: Vec<Completion> = Vec::new();
    if with_aggregates {
        out.extend(AGGREGATES.iter().map(|a| {
            let mut c = Completion::snippet(
                a.name,
                CompletionKind::Aggregate,
                call_snippet(a.name, a.signature),
            );
            c.detail = Some(a.signature.to_string());
            c.documentation = aggregate_doc(a.name);
            c
        }));
    }
    for b in BUILTINS {
        if out.iter().any(|c| c.label == b.name) {
            continue;
        }
        let mut c = Completion::snippet(
            b.name,
            CompletionKind::Builtin,
            call_snippet(b.name, b.signature),
        );
        c.detail = Some(b.signature.to_string());
        c.documentation = builtin_doc(b.name);
        out.push(c);
    }
    out
}

fn keywords(words: &[&str]) -> Vec<Completion> {
    words
        .iter()
        .map(|w| Completion::plain(*w, CompletionKind::Keyword, None))
        .collect()
}

fn top_level() -> Vec<Completion> {
    let s = |label: &str, body: &str| {
        let mut c = Completion::snippet(label, CompletionKind::Snippet, body.to_string());
        c.detail = Some(format!("{label} declaration"));
        c
    };
    vec![
        s(
            "stream",
            "stream ${1:Name} = ${2:Source}\n    .where(${3:condition})",
        ),
        s("event", "event ${1:Name}:\n    ${2:field}: ${3:float}"),
        s("connector", "connector ${1:Name} = ${2:console} ()"),
        s(
            "pattern",
            "pattern ${1:Name} = ${2:A} -> ${3:B} within ${4:5m}",
        ),
        s(
            "fn",
            "fn ${1:name}(${2:x}: ${3:float}) -> ${4:float}:\n    ${5:x}",
        ),
        s("const", "const ${1:NAME} = ${2:0}"),
        s("let", "let ${1:name} = ${2:0}"),
        s("var", "var ${1:name} = ${2:0}"),
        s("type", "type ${1:Name} = ${2:float}"),
        s("context", "context ${1:name}"),
        s("import", "import \"${1:path}\""),
    ]
}

fn sources(view: &FileView<'_>) -> Vec<Completion> {
    let mut out = decls(view, |k| {
        matches!(k, DeclKind::Event | DeclKind::Stream | DeclKind::Pattern)
    });
    let s = |label: &str, body: &str| {
        Completion::snippet(label, CompletionKind::Keyword, body.to_string())
    };
    out.push(s("merge", "merge(${1:A}, ${2:B})"));
    out.push(s("join", "join(${1:A}, ${2:B})"));
    out.push(s("sequence", "sequence(${1:a}: ${2:A}, ${3:b}: ${4:B})"));
    out.push(s("timer", "timer(${1:1m})"));
    out
}

/// Candidates at byte `offset` of `path`. Unknown files and positions give
/// no candidates.
pub fn completions(c: &Compiler, path: &str, offset: u32) -> Completions {
    let Some(view) = FileView::new(c, path) else {
        return Completions::default();
    };
    let text = view.text;
    let bytes = text.as_bytes();
    let mut end = (offset as usize).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut start = end;
    while start > 0 && is_word(bytes[start - 1]) {
        start -= 1;
    }
    let replace = Span::new(start as u32, end as u32);
    let items = candidates(&view, start);
    Completions { replace, items }
}

fn candidates(view: &FileView<'_>, start: usize) -> Vec<Completion> {
    let text = view.text;
    let bytes = text.as_bytes();
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    if start == line_start {
        // A word at column 0 starts a declaration.
        return top_level();
    }
    let Some(i) = view.item_at(start as u32) else {
        return top_level();
    };
    let Some(ci) = view.items.get(i) else {
        return Vec::new();
    };
    let rel = view.relative(i, start as u32).unwrap_or(0);
    let item_text = view.item_text(i);
    let tokens = view.item_tokens(i);
    let before: Vec<_> = tokens
        .iter()
        .filter(|t| t.span.end <= rel && !t.kind.is_comment())
        .collect();
    let prev = before.last().map(|t| t.kind);
    let in_stream = matches!(ci.item, Item::Stream(_));

    // `x.` / `x?.`: fields of an alias, else pipeline operators.
    if start > 0 && (bytes[start - 1] == b'.') {
        let dot = if start >= 2 && bytes[start - 2] == b'?' {
            start - 2
        } else {
            start - 1
        };
        let mut ws = dot;
        while ws > 0 && is_word(bytes[ws - 1]) {
            ws -= 1;
        }
        let base = &text[ws..dot];
        if !base.is_empty() && in_stream {
            if let Some(schema) = schema_at(view, i, rel) {
                if let Some(a) = schema.alias(base) {
                    return schema_fields(&a.schema);
                }
            }
            // Before the match, an alias's fields are those of its step's
            // type: look the alias up among the stream's occurrences.
            let occs = view.occurrences(i);
            let alias_schema = occs.iter().find_map(|o| match (&o.target, &o.info) {
                (Target::Alias { name, .. }, Some(info)) if name == base => match &info.ty {
                    Type::Event(s) | Type::EventList(s) => Some(s.clone()),
                    _ => None,
                },
                _ => None,
            });
            if let Some(s) = alias_schema {
                return schema_fields(&s);
            }
            // A lambda parameter or local: an event's fields, or an array's
            // methods (`events.` inside `.pattern(...)`).
            let local_ty = occs.iter().find_map(|o| match (&o.target, &o.info) {
                (Target::Local { name, .. }, Some(info)) if name == base => Some(info.ty.clone()),
                _ => None,
            });
            match local_ty {
                Some(Type::Event(s)) => return schema_fields(&s),
                Some(Type::Array(_)) => return array_methods(),
                _ => {}
            }
        }
        return operators();
    }

    match prev {
        Some(TokenKind::Arrow) => {
            let mut out = decls(view, |k| {
                matches!(k, DeclKind::Event | DeclKind::Stream | DeclKind::Pattern)
            });
            out.push(Completion::plain("all", CompletionKind::Keyword, None));
            return out;
        }
        Some(TokenKind::Eq)
            if in_stream && before.iter().filter(|t| t.kind == TokenKind::Eq).count() == 1 =>
        {
            return sources(view);
        }
        _ => {}
    }

    if let Item::Event(_) = ci.item {
        if prev == Some(TokenKind::Colon) {
            let mut out: Vec<Completion> = super::view::TYPE_NAMES
                .iter()
                .filter(|t| **t != "Stream")
                .map(|t| Completion::plain(*t, CompletionKind::Type, None))
                .collect();
            out.extend(decls(view, |k| {
                matches!(k, DeclKind::Event | DeclKind::TypeAlias)
            }));
            return out;
        }
        return Vec::new();
    }
    if let Item::Connector(_) = ci.item {
        return Vec::new();
    }

    let call = enclosing_call(item_text, &tokens, rel);
    let mut in_aggregate = false;
    if let Some((name, true, _)) = call {
        match Op::from_name(name) {
            Some(Op::To | Op::Enrich) => return decls(view, |k| k == DeclKind::Connector),
            Some(Op::Context) => return decls(view, |k| k == DeclKind::Context),
            Some(Op::Aggregate | Op::TrendAggregate) => in_aggregate = true,
            Some(Op::Forecast) => {
                if let Some(c) = super::forecast::arguments(item_text, &before) {
                    return c;
                }
            }
            _ => {}
        }
    }

    // An expression: what is in scope there.
    let mut out = Vec::new();
    if in_stream {
        if let Some(schema) = schema_at(view, i, rel) {
            out.extend(schema_fields(&schema));
            out.extend(schema.aliases.iter().map(|a| {
                let mut c = Completion::plain(
                    a.name.clone(),
                    CompletionKind::Alias,
                    Some(a.schema.name.clone()),
                );
                c.detail = Some(if a.kleene {
                    format!("[{}]", a.schema.name)
                } else {
                    a.schema.name.clone()
                });
                c
            }));
        }
    }
    let mut locals: Vec<String> = Vec::new();
    for o in view.occurrences(i) {
        match &o.target {
            Target::Alias { name, .. }
                if o.is_definition && !out.iter().any(|c| &c.label == name) =>
            {
                out.push(Completion::plain(name.clone(), CompletionKind::Alias, None));
            }
            Target::Local { name, .. } if o.is_definition && !locals.contains(name) => {
                locals.push(name.clone());
            }
            _ => {}
        }
    }
    out.extend(
        locals
            .into_iter()
            .map(|n| Completion::plain(n, CompletionKind::Local, None)),
    );
    out.extend(decls(view, |k| {
        matches!(k, DeclKind::Global(_) | DeclKind::Fn)
    }));
    out.extend(builtins(in_aggregate));
    out.extend(keywords(EXPR_KEYWORDS));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "connector Out = console ()\nconst LIMIT = 3\nevent Reading:\n    zone: str\n    temp: float\n\nstream Avg = Reading\n    .where(te$|)\n";

    fn labels(src: &str) -> Vec<String> {
        let off = src.find("$|").expect("marker") as u32;
        let mut c = Compiler::new();
        c.set_file("t.vpl", src.replacen("$|", "", 1));
        completions(&c, "t.vpl", off)
            .items
            .into_iter()
            .map(|c| c.label)
            .collect()
    }

    #[test]
    fn fields_inside_where() {
        let l = labels(SRC);
        assert_eq!(&l[..2], ["zone", "temp"]);
        assert!(l.contains(&"LIMIT".to_string()) && l.contains(&"abs".to_string()));
    }

    #[test]
    fn forecast_arguments_presets_and_fields() {
        let seq = "event A:\n    id: int\nevent B:\n    id: int\n\nstream S = A as a\n    -> B as b\n    .within(1m)\n";
        let args = labels(&format!("{seq}    .forecast($|)\n"));
        assert!(args.contains(&"horizon".to_string()), "{args:?}");
        let modes = labels(&format!("{seq}    .forecast(mode: $|)\n"));
        assert_eq!(modes, ["fast", "balanced", "accurate"]);
        let after = labels(&format!("{seq}    .forecast()\n    .emit(p: $|)\n"));
        assert!(
            after.contains(&"forecast_probability".to_string()),
            "{after:?}"
        );
        assert!(after.contains(&"id".to_string()), "{after:?}");
    }

    #[test]
    fn operators_after_dot() {
        let src = SRC.replace(".where(te$|)", ".where(temp > 1)\n    .$|");
        let l = labels(&src);
        assert!(
            l.contains(&"window".to_string()) && l.contains(&"aggregate".to_string()),
            "{l:?}"
        );
    }

    #[test]
    fn connectors_inside_to_and_sources_after_eq() {
        let src = SRC.replace(".where(te$|)", ".to($|)");
        assert_eq!(labels(&src), ["Out"]);
        let src = SRC.replace("Reading\n    .where(te$|)", "$|");
        let l = labels(&src);
        assert!(
            l.contains(&"Reading".to_string()) && l.contains(&"merge".to_string()),
            "{l:?}"
        );
    }

    #[test]
    fn array_methods_and_lambda_parameter_fields_in_a_pattern() {
        let src = SRC.replace(
            ".where(te$|)",
            ".window(1m)\n    .pattern(hot: events => events.$|)",
        );
        let l = labels(&src);
        assert!(
            l.contains(&"filter".to_string()) && l.contains(&"any".to_string()),
            "{l:?}"
        );
        let src = SRC.replace(
            ".where(te$|)",
            ".window(1m)\n    .pattern(hot: events => events.any(e => e.$|))",
        );
        let l = labels(&src);
        assert!(
            l.contains(&"temp".to_string()) && l.contains(&"event_type".to_string()),
            "{l:?}"
        );
    }

    #[test]
    fn alias_fields_after_alias_dot() {
        let src = SRC.replace(".where(te$|)", "-> Reading as b\n    .where(b.$|)");
        assert_eq!(labels(&src), ["zone", "temp"]);
    }

    #[test]
    fn top_level_snippets_and_out_of_range() {
        assert!(labels("$|").contains(&"stream".to_string()));
        let mut c = Compiler::new();
        c.set_file("t.vpl", "é");
        let _ = completions(&c, "t.vpl", 1);
        let _ = completions(&c, "t.vpl", 99);
    }
}

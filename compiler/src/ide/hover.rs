//! Hover: what the name under the cursor is, as Markdown.

use varpulis_syntax::ast::{Item, VarKind};
use varpulis_syntax::Span;

use super::view::{FileView, Occurrence, SymbolKind, Target};
use crate::builtins;
use crate::capabilities::{self, Support};
use crate::host::Compiler;
use crate::model::{ItemModel, SourceModel};
use crate::types::{Schema, Type};

/// The hover text of a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hover {
    /// The hovered identifier.
    pub span: Span,
    /// Markdown: a fenced `vpl` signature line, then details.
    pub markdown: String,
}

/// Hover information for the identifier at byte `offset` of `path`.
pub fn hover(c: &Compiler, path: &str, offset: u32) -> Option<Hover> {
    let view = FileView::new(c, path)?;
    let occ = view.occurrence_at(offset)?;
    let markdown = describe(&view, &occ)?;
    Some(Hover {
        span: occ.span,
        markdown,
    })
}

fn var_keyword(k: VarKind) -> &'static str {
    match k {
        VarKind::Let => "let",
        VarKind::Var => "var",
        VarKind::Const => "const",
    }
}

fn code(line: &str) -> String {
    format!("```vpl\n{line}\n```")
}

fn schema_lines(s: &Schema) -> String {
    let mut out = String::new();
    for f in &s.fields {
        let opt = if f.optional { "?" } else { "" };
        out.push_str(&format!("    {}: {}{opt}\n", f.name, f.ty));
    }
    if s.open {
        out.push_str("    ... (open: any other field)\n");
    }
    out
}

fn type_of_field(view: &FileView<'_>, occ: &Occurrence, name: &str) -> Option<Type> {
    if let Some(info) = &occ.info {
        return Some(info.ty.clone());
    }
    // A declaration: the event's field type, or an output field's type from
    // the stage that produces it.
    let ci = view.items.get(occ.item)?;
    match &ci.analysis.model {
        ItemModel::Event(s) => s.field(name).map(|(_, f)| f.ty.clone()),
        ItemModel::Stream(m) => {
            let rel = view.relative(occ.item, occ.span.start)?;
            let Item::Stream(s) = ci.item else {
                return None;
            };
            m.stages
                .iter()
                .find(|st| {
                    s.ops
                        .get(st.op)
                        .is_some_and(|op| op.span.start <= rel && rel <= op.span.end)
                })
                .and_then(|st| st.output.field(name).map(|(_, f)| f.ty.clone()))
                .or_else(|| m.output.field(name).map(|(_, f)| f.ty.clone()))
        }
        _ => None,
    }
}

pub(super) fn describe_top_level(view: &FileView<'_>, name: &str) -> Option<String> {
    let &item = view.decl_items.get(name)?;
    let ci = view.items.get(item)?;
    Some(match (&ci.analysis.model, ci.item) {
        (ItemModel::Event(s), _) => {
            format!(
                "{}\n\nevent type with fields:\n```vpl\n{}```",
                code(&format!("event {name}")),
                schema_lines(s)
            )
        }
        (ItemModel::Stream(m), _) => {
            let source = match &m.source {
                SourceModel::Event { name, .. } | SourceModel::Stream { name, .. } => {
                    format!(" = {name}")
                }
                SourceModel::Pattern { name } => format!(" = {name}"),
                SourceModel::From { ty, connector } => format!(" = {ty}.from({connector})"),
                SourceModel::Merge(_) => " = merge(...)".to_string(),
                SourceModel::Join(_) => " = join(...)".to_string(),
                SourceModel::Sequence(_) => " = sequence(...)".to_string(),
                SourceModel::Timer => " = timer(...)".to_string(),
                SourceModel::Timeouts { name } => format!(" = {name}.timeouts()"),
                SourceModel::Late { name } => format!(" = {name}.late()"),
                SourceModel::Error => String::new(),
            };
            let what = if m.is_sequence {
                "stream (sequence)"
            } else {
                "stream"
            };
            format!(
                "{}\n\n{what}; output fields:\n```vpl\n{}```",
                code(&format!("stream {name}{source}")),
                schema_lines(&m.output)
            )
        }
        (ItemModel::Pattern(p), _) => format!(
            "{}\n\nnamed pattern; match fields:\n```vpl\n{}```",
            code(&format!("pattern {name}")),
            schema_lines(&p.schema)
        ),
        (ItemModel::Fn(sig), _) => {
            let params: Vec<String> = sig
                .params
                .iter()
                .map(|(n, t)| format!("{n}: {t}"))
                .collect();
            code(&format!("fn {name}({}) -> {}", params.join(", "), sig.ret))
        }
        (ItemModel::Global(t), Item::Var(v)) => {
            code(&format!("{} {name}: {t}", var_keyword(v.kind)))
        }
        (ItemModel::Global(t), _) => code(&format!("var {name}: {t}")),
        (ItemModel::Connector(k), _) => {
            format!(
                "{}\n\nconnector",
                code(&format!("connector {name} = {}", k.kind))
            )
        }
        (ItemModel::TypeAlias(t), _) => code(&format!("type {name} = {t}")),
        (_, Item::Context(_)) => code(&format!("context {name}")),
        (_, Item::Config(cfg)) => {
            let (role, k) = cfg
                .sections
                .iter()
                .flat_map(|s| s.connectors.iter().map(move |k| (s.role, k)))
                .find(|(_, k)| k.name.name == name)?;
            let kind = k.kind().map_or_else(|| "?".to_string(), |id| id.name);
            format!(
                "{}

connector declared under `{}:` of the `config:` block",
                code(&format!("connector {name} = {kind}")),
                role.keyword()
            )
        }
        _ => code(name),
    })
}

/// The Markdown documentation of a built-in scalar function.
pub(super) fn builtin_doc(name: &str) -> Option<String> {
    let b = builtins::builtin(name)?;
    Some(format!("{}\n\nbuilt-in function", code(b.signature)))
}

/// The Markdown documentation of an array method taking a lambda.
pub(super) fn array_method_doc(name: &str) -> Option<String> {
    let (_, sig) = crate::check::lambda::ARRAY_METHODS
        .iter()
        .find(|(n, _)| *n == name)?;
    Some(format!("{}\n\narray method", code(sig)))
}

/// The Markdown documentation of an aggregate.
pub(super) fn aggregate_doc(name: &str) -> Option<String> {
    let a = builtins::aggregate(name)?;
    Some(format!(
        "{}\n\naggregate function (inside `.aggregate(...)`)",
        code(a.signature)
    ))
}

/// The Markdown documentation of a pipeline operator.
pub(super) fn operator_doc(name: &str) -> Option<String> {
    let op = capabilities::operator(name)?;
    let support = match op.support {
        Support::Supported => "",
        Support::NotYet => "\n\n*not supported by the engine yet*",
        Support::NoOp => "\n\n*accepted and ignored*",
    };
    Some(format!(
        "{}\n\n{}{support}",
        code(&super::signature::operator_label(op)),
        op.summary
    ))
}

fn describe(view: &FileView<'_>, occ: &Occurrence) -> Option<String> {
    let word = view.text.get(occ.span.range())?;
    match &occ.target {
        Target::TopLevel(name) => describe_top_level(view, name),
        Target::Field(name) => {
            let ty = type_of_field(view, occ, name).unwrap_or(Type::Any);
            Some(code(&format!("(field) {name}: {ty}")))
        }
        Target::Alias { name, .. } => {
            let ty = occ.info.as_ref().map(|i| i.ty.to_string());
            let line = match ty {
                Some(t) => format!("(alias) {name}: {t}"),
                None => format!("(alias) {name}"),
            };
            Some(format!("{}\n\nsequence alias", code(&line)))
        }
        Target::Local { name, .. } => {
            let line = match &occ.info {
                Some(i) => format!("(local) {name}: {}", i.ty),
                None => format!("(local) {name}"),
            };
            Some(code(&line))
        }
        Target::Builtin(name) => builtin_doc(name)
            .or_else(|| aggregate_doc(name))
            .or_else(|| array_method_doc(name)),
        Target::Aggregate(name) => aggregate_doc(name).or_else(|| builtin_doc(name)),
        Target::Operator(name) => operator_doc(name),
        Target::Keyword if occ.kind == SymbolKind::Type => {
            Some(format!("{}\n\nbuilt-in type", code(word)))
        }
        Target::Keyword => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hovers the first occurrence of `needle` (at its first byte + `delta`).
    fn check(text: &str, needle: &str) -> String {
        let mut c = Compiler::new();
        c.set_file("t.vpl", text);
        let off = text.find(needle).expect("needle in text") as u32;
        hover(&c, "t.vpl", off).map_or("<none>".to_string(), |h| h.markdown)
    }

    const SRC: &str = "event Reading:\n    zone: str\n    temp: float\n\nconst LIMIT = 25.0\n\nstream Hot = Reading\n    .where(temp > LIMIT)\n    .aggregate(m: avg(temp))\n";

    #[test]
    fn hover_field_shows_its_type() {
        assert_eq!(check(SRC, "temp > "), "```vpl\n(field) temp: float\n```");
    }

    #[test]
    fn hover_event_lists_fields() {
        let h = check(SRC, "Reading\n    .where");
        assert!(
            h.contains("event Reading") && h.contains("temp: float"),
            "{h}"
        );
    }

    #[test]
    fn hover_operator_and_aggregate_and_const() {
        assert!(check(SRC, "where").contains("keep events"));
        assert!(check(SRC, "avg(").contains("aggregate function"));
        assert_eq!(check(SRC, "LIMIT)"), "```vpl\nconst LIMIT: float\n```");
    }

    #[test]
    fn hover_forecast_and_its_fields() {
        let src = "event A:\n    id: int\nevent B:\n    id: int\n\nstream S = A as a\n    -> B as b\n    .within(1m)\n    .forecast(mode: fast)\n    .emit(p: forecast_probability, t: forecast_time)\n";
        let op = check(src, "forecast(");
        assert!(
            op.contains("predict sequence completion") && op.contains("horizon"),
            "{op}"
        );
        assert_eq!(
            check(src, "forecast_probability"),
            "```vpl\n(field) forecast_probability: float\n```"
        );
        assert!(check(src, "forecast_time").contains("forecast_time: int"));
    }

    #[test]
    fn hover_out_of_range_is_none() {
        let mut c = Compiler::new();
        c.set_file("t.vpl", SRC);
        assert_eq!(hover(&c, "t.vpl", 10_000), None);
        assert_eq!(hover(&c, "nope.vpl", 0), None);
    }
}

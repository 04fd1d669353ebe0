//! Go to definition, find references and rename.
//!
//! Top-level names are file-wide (one namespace). Fields are followed by
//! name across the file: an event's field, the streams reading it and the
//! output fields re-using its name are one symbol to the user. Aliases and
//! locals are scoped to their item.

use varpulis_syntax::Span;

use super::view::{FileView, Occurrence, Target};
use crate::host::Compiler;

/// A text replacement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edit {
    /// The bytes to replace.
    pub span: Span,
    /// The new text.
    pub text: String,
}

/// Why a rename was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RenameError {
    /// No renameable name at the position (keywords, built-ins, operators,
    /// whitespace).
    NotRenameable,
    /// The new name is not an identifier.
    InvalidName(String),
    /// The new name is already a top-level declaration.
    Taken(String),
}

impl std::fmt::Display for RenameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RenameError::NotRenameable => f.write_str("nothing to rename here"),
            RenameError::InvalidName(n) => write!(f, "`{n}` is not a valid identifier"),
            RenameError::Taken(n) => write!(f, "`{n}` is already declared"),
        }
    }
}

impl std::error::Error for RenameError {}

/// The classified identifier at byte `offset` of `path`.
pub fn occurrence_at(c: &Compiler, path: &str, offset: u32) -> Option<Occurrence> {
    FileView::new(c, path)?.occurrence_at(offset)
}

fn same_symbol(a: &Target, b: &Target) -> bool {
    a == b
}

fn candidates(view: &FileView<'_>, target: &Target) -> Vec<Occurrence> {
    match target {
        Target::Alias { item, .. } | Target::Local { item, .. } => view.occurrences(*item),
        _ => view.all_occurrences(),
    }
    .into_iter()
    .filter(|o| same_symbol(&o.target, target))
    .collect()
}

/// The span of the declaration of the name at byte `offset`.
///
/// For a field, the declaration is the nearest output field of the same
/// stream written before the use (`.aggregate(n: ...)` then `n`), else the
/// event field of that name (preferring the stream's source event), else
/// any output field of that name.
pub fn definition(c: &Compiler, path: &str, offset: u32) -> Option<Span> {
    let view = FileView::new(c, path)?;
    let occ = view.occurrence_at(offset)?;
    match &occ.target {
        Target::TopLevel(name) => {
            let &item = view.decl_items.get(name)?;
            view.occurrences(item)
                .into_iter()
                .find(|o| o.is_definition && o.target == occ.target)
                .map(|o| o.span)
        }
        Target::Alias { .. } | Target::Local { .. } => view
            .occurrences(occ.item)
            .into_iter()
            .find(|o| o.is_definition && o.target == occ.target)
            .map(|o| o.span),
        Target::Field(_) => {
            if occ.is_definition {
                return Some(occ.span);
            }
            let defs: Vec<Occurrence> = candidates(&view, &occ.target)
                .into_iter()
                .filter(|o| o.is_definition)
                .collect();
            let local = defs
                .iter()
                .rev()
                .find(|o| o.item == occ.item && o.span.start < occ.span.start);
            let in_event = defs.iter().find(|o| {
                view.items
                    .get(o.item)
                    .is_some_and(|ci| matches!(ci.item, varpulis_syntax::ast::Item::Event(_)))
            });
            local.or(in_event).or(defs.first()).map(|o| o.span)
        }
        Target::Builtin(_) | Target::Aggregate(_) | Target::Operator(_) | Target::Keyword => None,
    }
}

/// Every occurrence of the name at byte `offset` (declarations included
/// when `include_declaration`), in file order.
pub fn references(c: &Compiler, path: &str, offset: u32, include_declaration: bool) -> Vec<Span> {
    let Some(view) = FileView::new(c, path) else {
        return Vec::new();
    };
    let Some(occ) = view.occurrence_at(offset) else {
        return Vec::new();
    };
    if occ.target == Target::Keyword {
        return Vec::new();
    }
    candidates(&view, &occ.target)
        .into_iter()
        .filter(|o| include_declaration || !o.is_definition)
        .map(|o| o.span)
        .collect()
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The span of the renameable name at `offset` (for "prepare rename").
pub fn rename_target(c: &Compiler, path: &str, offset: u32) -> Option<Span> {
    let occ = occurrence_at(c, path, offset)?;
    matches!(
        occ.target,
        Target::TopLevel(_) | Target::Field(_) | Target::Alias { .. } | Target::Local { .. }
    )
    .then_some(occ.span)
}

/// The edits renaming the stream, event, pattern, function, global,
/// connector, field, alias or local at `offset` to `new_name`.
pub fn rename(
    c: &Compiler,
    path: &str,
    offset: u32,
    new_name: &str,
) -> Result<Vec<Edit>, RenameError> {
    if !is_identifier(new_name) {
        return Err(RenameError::InvalidName(new_name.to_string()));
    }
    let view = FileView::new(c, path).ok_or(RenameError::NotRenameable)?;
    let occ = view
        .occurrence_at(offset)
        .ok_or(RenameError::NotRenameable)?;
    match &occ.target {
        Target::TopLevel(_) if view.decls.contains_key(new_name) => {
            return Err(RenameError::Taken(new_name.to_string()));
        }
        Target::TopLevel(_) | Target::Field(_) | Target::Alias { .. } | Target::Local { .. } => {}
        _ => return Err(RenameError::NotRenameable),
    }
    Ok(candidates(&view, &occ.target)
        .into_iter()
        .map(|o| Edit {
            span: o.span,
            text: new_name.to_string(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "connector Out = console ()\nevent Reading:\n    zone: str\n    temp: float\n\nstream Avg = Reading\n    .partition_by(zone)\n    .window(5m)\n    .aggregate(t: avg(temp))\n    .emit(zone: zone, t: t)\n\nstream Hot = Avg\n    .where(t > 20.0)\n    .to(Out)\n\nstream Seq = Reading as a\n    -> Reading where temp > a.temp as b\n    .emit(d: b.temp - a.temp)\n";

    fn compiler() -> Compiler {
        let mut c = Compiler::new();
        c.set_file("t.vpl", SRC);
        c
    }

    fn at(needle: &str) -> u32 {
        SRC.find(needle).expect("needle present") as u32
    }

    fn words(spans: Vec<Span>) -> Vec<String> {
        spans
            .into_iter()
            .map(|s| format!("{}@{}", &SRC[s.range()], s.start))
            .collect()
    }

    #[test]
    fn references_of_a_stream_include_sources() {
        let refs = references(&compiler(), "t.vpl", at("Avg"), true);
        assert_eq!(words(refs), ["Avg@80", "Avg@205"]);
    }

    #[test]
    fn references_of_a_field_follow_its_name() {
        let refs = references(&compiler(), "t.vpl", at("zone: str"), true);
        assert_eq!(refs.len(), 4, "{:?}", words(refs));
    }

    #[test]
    fn definition_of_connector_and_alias() {
        let c = compiler();
        assert_eq!(definition(&c, "t.vpl", at("Out)")), Some(Span::new(10, 13)));
        let a_use = at("a.temp as");
        let def = definition(&c, "t.vpl", a_use).expect("alias def");
        assert_eq!(&SRC[def.range()], "a");
        assert_eq!(def.start, at("a\n    ->"));
    }

    #[test]
    fn config_connectors_have_definitions_references_and_hover() {
        let src = "config:\n    sources:\n        readings: { type: file, path: \"in.jsonl\" }\n    sinks:\n        alerts: { type: console }\n\nevent Reading:\n    temp: float\n\nstream Hot = Reading.from(readings)\n    .where(temp > 1.0)\n    .to(alerts)\n";
        let mut c = Compiler::new();
        c.set_file("c.vpl", src);
        let find = |needle: &str| src.find(needle).expect("needle present") as u32;
        let def = definition(&c, "c.vpl", find("readings)")).expect("definition");
        assert_eq!(def.start, find("readings:"));
        assert_eq!(&src[def.range()], "readings");
        let refs = references(&c, "c.vpl", find("alerts:"), true);
        let got: Vec<u32> = refs.iter().map(|s| s.start).collect();
        assert_eq!(got, [find("alerts:"), find("alerts)")]);
        let hover = crate::ide::hover::hover(&c, "c.vpl", find("alerts)")).expect("hover");
        assert!(
            hover.markdown.contains("connector alerts = console")
                && hover.markdown.contains("`sinks:`"),
            "{}",
            hover.markdown
        );
    }

    #[test]
    fn rename_alias_is_item_local() {
        let edits = rename(&compiler(), "t.vpl", at("a.temp as"), "first").expect("renames");
        assert_eq!(edits.len(), 3);
    }

    #[test]
    fn rename_refuses_bad_names_and_keywords() {
        let c = compiler();
        assert_eq!(
            rename(&c, "t.vpl", at("Avg"), "1x"),
            Err(RenameError::InvalidName("1x".to_string()))
        );
        assert_eq!(
            rename(&c, "t.vpl", at("Avg"), "Hot"),
            Err(RenameError::Taken("Hot".to_string()))
        );
        assert_eq!(
            rename(&c, "t.vpl", at("stream Hot"), "x"),
            Err(RenameError::NotRenameable)
        );
    }
}

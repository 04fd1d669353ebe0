//! Whole-file views: the outline (document symbols), folding ranges and
//! semantic highlighting.

use varpulis_syntax::ast::Item;
use varpulis_syntax::{Span, TokenKind};

use super::view::{FileView, SymbolKind};
use crate::host::Compiler;

/// One entry of a file's outline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutlineItem {
    /// Declared name.
    pub name: String,
    /// What it declares.
    pub kind: SymbolKind,
    /// A short description (an event's field type, a stream's source).
    pub detail: Option<String>,
    /// The whole declaration (without leading comments).
    pub span: Span,
    /// The declared name.
    pub name_span: Span,
    /// Nested entries (an event's fields).
    pub children: Vec<OutlineItem>,
}

/// The outline of `path`: top-level declarations with their event fields.
pub fn outline(c: &Compiler, path: &str) -> Vec<OutlineItem> {
    let Some(view) = FileView::new(c, path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for sym in c.symbols(path) {
        let Some(ci) = view.items.get(sym.item) else {
            continue;
        };
        let span = view.item_code_span(sym.item);
        let mut children = Vec::new();
        let detail = match ci.item {
            Item::Event(e) => {
                for f in &e.fields {
                    let fspan = view.to_orig(f.span.shifted(ci.offset));
                    let nspan = view.to_orig(f.name.span.shifted(ci.offset));
                    let ty = view
                        .text
                        .get(view.to_orig(f.ty.span.shifted(ci.offset)).range());
                    children.push(OutlineItem {
                        name: f.name.name.clone(),
                        kind: SymbolKind::Field,
                        detail: ty.map(str::to_string),
                        span: fspan,
                        name_span: nspan,
                        children: Vec::new(),
                    });
                }
                None
            }
            Item::Stream(s) => view
                .text
                .get(view.to_orig(s.source.span.shifted(ci.offset)).range())
                .map(|t| t.to_string()),
            _ => None,
        };
        out.push(OutlineItem {
            name: sym.name,
            kind: SymbolKind::of_decl(sym.kind),
            detail,
            span,
            name_span: sym.name_span,
            children,
        });
    }
    out
}

/// What a folding range folds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FoldKind {
    /// A multi-line declaration.
    Region,
    /// A block comment or a run of line comments.
    Comment,
}

/// A foldable range of lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fold {
    /// From the first to the last byte folded.
    pub span: Span,
    /// What is folded.
    pub kind: FoldKind,
}

fn line_of(text: &str, offset: u32) -> usize {
    let end = (offset as usize).min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// Folding ranges of `path`: multi-line declarations, multi-line block
/// comments and runs of two or more line comments.
pub fn folding_ranges(c: &Compiler, path: &str) -> Vec<Fold> {
    let Some(view) = FileView::new(c, path) else {
        return Vec::new();
    };
    let text = view.text;
    let mut out = Vec::new();
    for i in 0..view.items.len() {
        let s = view.item_code_span(i);
        if line_of(text, s.start) < line_of(text, s.end) {
            out.push(Fold {
                span: s,
                kind: FoldKind::Region,
            });
        }
    }
    let mut run: Option<(Span, usize)> = None;
    for t in varpulis_syntax::lex(text) {
        match t.kind {
            TokenKind::BlockComment => {
                if line_of(text, t.span.start) < line_of(text, t.span.end) {
                    out.push(Fold {
                        span: t.span,
                        kind: FoldKind::Comment,
                    });
                }
            }
            TokenKind::LineComment => {
                let line = line_of(text, t.span.start);
                run = match run {
                    Some((s, last)) if last + 1 == line => Some((s.cover(t.span), line)),
                    Some((s, _)) => {
                        push_run(text, s, &mut out);
                        Some((t.span, line))
                    }
                    None => Some((t.span, line)),
                };
            }
            _ => {
                if let Some((s, _)) = run.take() {
                    push_run(text, s, &mut out);
                }
            }
        }
    }
    if let Some((s, _)) = run {
        push_run(text, s, &mut out);
    }
    out.sort_by_key(|f| (f.span.start, f.span.end));
    out
}

fn push_run(text: &str, s: Span, out: &mut Vec<Fold>) {
    if line_of(text, s.start) < line_of(text, s.end) {
        out.push(Fold {
            span: s,
            kind: FoldKind::Comment,
        });
    }
}

/// One highlighted token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Highlight {
    /// The token's bytes.
    pub span: Span,
    /// Its class.
    pub class: HighlightClass,
    /// It declares a name.
    pub definition: bool,
}

/// Highlighting classes (the LSP maps them to semantic token types).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HighlightClass {
    /// A classified name.
    Symbol(SymbolKind),
    /// A comment.
    Comment,
    /// A string literal.
    String,
    /// A number, duration or timestamp literal.
    Number,
    /// An operator symbol.
    Operator,
}

/// Every highlighted token of `path`, in order. Identifiers are classified
/// by the checker's model (fields, aliases, streams, events, ...); other
/// tokens by the lexer.
pub fn highlights(c: &Compiler, path: &str) -> Vec<Highlight> {
    let Some(view) = FileView::new(c, path) else {
        return Vec::new();
    };
    let mut occs = view.all_occurrences().into_iter().peekable();
    let mut out = Vec::new();
    for t in varpulis_syntax::lex(view.text) {
        let class = match t.kind {
            TokenKind::LineComment | TokenKind::BlockComment => HighlightClass::Comment,
            TokenKind::Str => HighlightClass::String,
            TokenKind::Int | TokenKind::Float | TokenKind::Duration | TokenKind::Timestamp => {
                HighlightClass::Number
            }
            TokenKind::Ident => {
                while occs.peek().is_some_and(|o| o.span.start < t.span.start) {
                    occs.next();
                }
                match occs.peek() {
                    Some(o) if o.span == t.span => {
                        out.push(Highlight {
                            span: t.span,
                            class: HighlightClass::Symbol(o.kind),
                            definition: o.is_definition,
                        });
                    }
                    _ => {}
                }
                continue;
            }
            TokenKind::Arrow
            | TokenKind::FatArrow
            | TokenKind::EqEq
            | TokenKind::NotEq
            | TokenKind::Lt
            | TokenKind::Le
            | TokenKind::Gt
            | TokenKind::Ge
            | TokenKind::Plus
            | TokenKind::Minus
            | TokenKind::Star
            | TokenKind::StarStar
            | TokenKind::Slash
            | TokenKind::Percent
            | TokenKind::ColonEq
            | TokenKind::Eq => HighlightClass::Operator,
            _ => continue,
        };
        out.push(Highlight {
            span: t.span,
            class,
            definition: false,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "# a\n# b\nevent R:\n    x: int\n\nstream S = R\n    .where(x > 1)\n";

    fn compiler() -> Compiler {
        let mut c = Compiler::new();
        c.set_file("t.vpl", SRC);
        c
    }

    #[test]
    fn outline_has_fields_as_children() {
        let o = outline(&compiler(), "t.vpl");
        let names: Vec<(&str, usize)> = o
            .iter()
            .map(|i| (i.name.as_str(), i.children.len()))
            .collect();
        assert_eq!(names, [("R", 1), ("S", 0)]);
        assert_eq!(&SRC[o[0].span.range()], "event R:\n    x: int");
    }

    #[test]
    fn folds_items_and_comment_runs() {
        let f: Vec<(&str, FoldKind)> = folding_ranges(&compiler(), "t.vpl")
            .into_iter()
            .map(|f| (&SRC[f.span.range()], f.kind))
            .collect();
        assert_eq!(
            f,
            [
                ("# a\n# b", FoldKind::Comment),
                ("event R:\n    x: int", FoldKind::Region),
                ("stream S = R\n    .where(x > 1)", FoldKind::Region)
            ]
        );
    }

    #[test]
    fn highlights_classify_fields() {
        let h = highlights(&compiler(), "t.vpl");
        let x_use = SRC.rfind("x >").expect("present") as u32;
        let hx = h
            .iter()
            .find(|h| h.span.start == x_use)
            .expect("x highlighted");
        assert_eq!(hx.class, HighlightClass::Symbol(SymbolKind::Field));
    }
}

//! The session's declarations: one virtual file whose items are replaced by
//! name on redefinition.
//!
//! Typing `stream Hot = ...` a second time replaces the text of the first
//! `Hot` item in place and keeps every other item byte for byte, so the
//! compiler's salsa database re-checks only the items that changed (items
//! are keyed by their text). Items without a name (top-level statements,
//! text that does not parse) are appended.

use varpulis_syntax::{parse_item, split_items};

/// One top-level item of the virtual file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decl {
    /// The declared name, if the item declares one.
    pub name: Option<String>,
    /// The declaration keyword (`stream`, `event`, `fn`, ...).
    pub keyword: String,
    /// The item's text, without trailing blank lines.
    pub text: String,
}

/// What merging new input did to one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The item's keyword and name, as `stream Hot`.
    pub what: String,
    /// Whether an item with this name existed (a redefinition).
    pub redefined: bool,
    /// The item's index in the new list.
    pub index: usize,
}

/// The ordered declarations of a session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decls {
    items: Vec<Decl>,
}

impl Decls {
    /// The items in file order.
    pub fn items(&self) -> &[Decl] {
        &self.items
    }

    /// Whether there are no declarations.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The virtual file: items separated by blank lines.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for d in &self.items {
            if !s.is_empty() {
                s.push_str("\n\n");
            }
            s.push_str(&d.text);
        }
        if !s.is_empty() {
            s.push('\n');
        }
        s
    }

    /// Byte ranges of each item in [`Decls::text`].
    pub fn ranges(&self) -> Vec<std::ops::Range<usize>> {
        let mut out = Vec::with_capacity(self.items.len());
        let mut at = 0;
        for (i, d) in self.items.iter().enumerate() {
            if i > 0 {
                at += 2;
            }
            out.push(at..at + d.text.len());
            at += d.text.len();
        }
        out
    }

    /// Merges the items of `input`: a named item replaces the item of the
    /// same name, anything else is appended. Returns the new declarations
    /// and what changed (self is left untouched).
    pub fn merged(&self, input: &str) -> (Decls, Vec<Change>) {
        let mut next = self.clone();
        let mut changes = Vec::new();
        for range in split_items(input) {
            let Some(piece) = input.get(range) else {
                continue;
            };
            let text = piece.trim_end().to_string();
            if text.trim().is_empty() {
                continue;
            }
            let parsed = parse_item(&text);
            let name = parsed.item.name().map(|n| n.name.clone());
            let keyword = first_word(&text);
            let what = match &name {
                Some(n) => format!("{keyword} {n}"),
                None => keyword.clone(),
            };
            let decl = Decl {
                name: name.clone(),
                keyword,
                text,
            };
            let existing = name
                .as_ref()
                .and_then(|n| next.items.iter().position(|d| d.name.as_ref() == Some(n)));
            match existing {
                Some(i) => {
                    next.items[i] = decl;
                    changes.push(Change {
                        what,
                        redefined: true,
                        index: i,
                    });
                }
                None => {
                    next.items.push(decl);
                    changes.push(Change {
                        what,
                        redefined: false,
                        index: next.items.len() - 1,
                    });
                }
            }
        }
        (next, changes)
    }

    /// The declarations without the item named `name` (`None` when there is
    /// no such item).
    pub fn without(&self, name: &str) -> Option<Decls> {
        let i = self
            .items
            .iter()
            .position(|d| d.name.as_deref() == Some(name))?;
        let mut next = self.clone();
        next.items.remove(i);
        Some(next)
    }
}

/// The first word of an item, skipping leading comments.
fn first_word(text: &str) -> String {
    let code = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("//"))
        .unwrap_or("");
    code.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .next()
        .filter(|w| !w.is_empty())
        .unwrap_or("item")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redefinition_replaces_in_place_and_keeps_the_rest() {
        let (d, c) = Decls::default()
            .merged("event A:\n    x: int\n\nstream S = A.where(x > 1)\nstream T = A\n");
        assert_eq!(c.len(), 3);
        assert!(c.iter().all(|c| !c.redefined));
        let (d2, c2) = d.merged("stream S = A.where(x > 2)");
        assert_eq!(c2[0].what, "stream S");
        assert!(c2[0].redefined);
        assert_eq!(c2[0].index, 1);
        assert_eq!(
            d2.text(),
            "event A:\n    x: int\n\nstream S = A.where(x > 2)\n\nstream T = A\n"
        );
        let ranges = d2.ranges();
        assert_eq!(&d2.text()[ranges[2].clone()], "stream T = A");
    }

    #[test]
    fn comments_only_input_changes_nothing_and_drop_removes() {
        let (d, c) = Decls::default().merged("# just a comment\n");
        assert!(c.is_empty() && d.is_empty());
        let (d, _) = d.merged("stream S = A");
        assert!(d.without("S").is_some_and(|d| d.is_empty()));
        assert!(d.without("Nope").is_none());
    }
}

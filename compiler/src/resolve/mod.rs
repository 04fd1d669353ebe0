//! Name resolution across items: the per-file name index and the
//! environment through which checking one item reads the *signatures* of the
//! others.
//!
//! All top-level declarations share one namespace (event types, streams,
//! patterns, functions, globals, connectors, contexts and type aliases): a
//! stream source or a `.to()` target is a bare name, so two declarations with
//! the same name would be ambiguous. The first declaration wins; later ones
//! are reported as duplicates.

pub mod walk;

use rustc_hash::{FxHashMap, FxHashSet};
use varpulis_syntax::ast::{Item, VarKind};
use varpulis_syntax::Span;

use crate::types::{FnSig, Schema, Type};
use std::sync::Arc;

/// What kind of thing a top-level name declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeclKind {
    /// `event`.
    Event,
    /// `stream`.
    Stream,
    /// `pattern`.
    Pattern,
    /// `fn`.
    Fn,
    /// `let`/`var`/`const` (or a top-level `x := e` creating a `var`).
    Global(VarKind),
    /// `connector`.
    Connector,
    /// `context`.
    Context,
    /// `type`.
    TypeAlias,
}

impl DeclKind {
    /// The kind in words, with an article (`an event type`).
    pub fn describe(self) -> &'static str {
        match self {
            DeclKind::Event => "an event type",
            DeclKind::Stream => "a stream",
            DeclKind::Pattern => "a pattern",
            DeclKind::Fn => "a function",
            DeclKind::Global(_) => "a variable",
            DeclKind::Connector => "a connector",
            DeclKind::Context => "a context",
            DeclKind::TypeAlias => "a type alias",
        }
    }

    fn of(item: &Item) -> Option<DeclKind> {
        Some(match item {
            Item::Event(_) => DeclKind::Event,
            Item::Stream(_) => DeclKind::Stream,
            Item::Pattern(_) => DeclKind::Pattern,
            Item::Fn(_) => DeclKind::Fn,
            Item::Var(v) => DeclKind::Global(v.kind),
            Item::Connector(_) => DeclKind::Connector,
            Item::Context(_) => DeclKind::Context,
            Item::TypeAlias(_) => DeclKind::TypeAlias,
            _ => return None,
        })
    }
}

/// One declaration in the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decl {
    /// What it declares.
    pub kind: DeclKind,
    /// The declaring file: `None` for the file being checked, `Some(k)` for
    /// the k-th file it imports (directly or not).
    pub file: Option<u32>,
    /// Index of the declaring item in its file.
    pub item: usize,
    /// Span of the declared name (item-relative).
    pub name_span: Span,
}

/// A declaration whose name was already taken.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Duplicate {
    /// The name.
    pub name: String,
    /// The first declaration.
    pub first: Decl,
    /// The later one.
    pub again: Decl,
}

/// Declared names of one file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameIndex {
    /// The first declaration of each name.
    pub decls: FxHashMap<String, Decl>,
    /// Later declarations of an existing name.
    pub duplicates: Vec<Duplicate>,
    /// Names whose signature depends on itself (cycles of streams, events
    /// extending each other, recursive functions without a return type,
    /// globals initialised from each other), with the item that closes the
    /// cycle, sorted.
    pub cyclic: Vec<String>,
}

impl NameIndex {
    /// Builds the index from the items of one file, in order.
    pub fn build<'a>(items: impl IntoIterator<Item = &'a Item>) -> NameIndex {
        NameIndex::build_with_imports(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| (None, i, item)),
        )
    }

    /// Builds the index from `(file, item index, item)` triples: the items
    /// of imported files first (as the reference prepends them), then those
    /// of the file itself (`file == None`).
    pub fn build_with_imports<'a>(
        items: impl IntoIterator<Item = (Option<u32>, usize, &'a Item)>,
    ) -> NameIndex {
        let mut index = NameIndex::default();
        let mut deps: FxHashMap<String, Vec<String>> = FxHashMap::default();
        for (file, i, item) in items {
            if let Item::Config(cfg) = item {
                // A `config:` block declares one connector per entry of its
                // `sources:` and `sinks:` sections.
                for k in cfg.sections.iter().flat_map(|s| &s.connectors) {
                    index.declare(&mut deps, &k.name, DeclKind::Connector, file, i, item);
                }
                continue;
            }
            let (kind, name) = match (DeclKind::of(item), item.name()) {
                (Some(kind), Some(name)) => (kind, name),
                (None, Some(name)) if matches!(item, Item::Assign(_)) => {
                    // `x := e` on an undeclared name creates a `var` (docs/LANGUAGE.md#variables-let-var-const).
                    if !index.decls.contains_key(&name.name) {
                        let decl = Decl {
                            kind: DeclKind::Global(VarKind::Var),
                            file,
                            item: i,
                            name_span: name.span,
                        };
                        index.decls.insert(name.name.clone(), decl);
                        // Its type is its value's, so `x := x + 1` depends on itself.
                        deps.insert(name.name.clone(), walk::signature_deps(item));
                    }
                    continue;
                }
                _ => continue,
            };
            index.declare(&mut deps, name, kind, file, i, item);
        }
        index.cyclic = find_cycles(&deps);
        index
    }

    /// Records `name` declared by `item`; a taken name is a duplicate.
    fn declare(
        &mut self,
        deps: &mut FxHashMap<String, Vec<String>>,
        name: &varpulis_syntax::ast::Ident,
        kind: DeclKind,
        file: Option<u32>,
        item_index: usize,
        item: &Item,
    ) {
        let decl = Decl {
            kind,
            file,
            item: item_index,
            name_span: name.span,
        };
        match self.decls.get(&name.name) {
            Some(first) => self.duplicates.push(Duplicate {
                name: name.name.clone(),
                first: *first,
                again: decl,
            }),
            None => {
                self.decls.insert(name.name.clone(), decl);
                deps.insert(name.name.clone(), walk::signature_deps(item));
            }
        }
    }

    /// The declaration of `name`.
    pub fn get(&self, name: &str) -> Option<Decl> {
        self.decls.get(name).copied()
    }

    /// Whether `name` is part of a definition cycle.
    pub fn is_cyclic(&self, name: &str) -> bool {
        self.cyclic
            .binary_search_by(|c| c.as_str().cmp(name))
            .is_ok()
    }

    /// Names of the given kinds, sorted, for suggestions.
    pub fn names_of(&self, kinds: &[fn(DeclKind) -> bool]) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .decls
            .iter()
            .filter(|(_, d)| kinds.iter().any(|k| k(d.kind)))
            .map(|(n, _)| n.as_str())
            .collect();
        v.sort_unstable();
        v
    }
}

/// Names that can reach themselves through `deps`: members of strongly
/// connected components with more than one name, or with a self-edge
/// (iterative Tarjan, linear in the size of the graph).
fn find_cycles(deps: &FxHashMap<String, Vec<String>>) -> Vec<String> {
    let mut names: Vec<&str> = deps.keys().map(String::as_str).collect();
    names.sort_unstable();
    let id: FxHashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let edges: Vec<Vec<usize>> = names
        .iter()
        .map(|n| {
            deps[*n]
                .iter()
                .filter_map(|d| id.get(d.as_str()).copied())
                .collect()
        })
        .collect();
    const UNSEEN: usize = usize::MAX;
    let n = names.len();
    let (mut index, mut low, mut on_stack) = (vec![UNSEEN; n], vec![0; n], vec![false; n]);
    let (mut stack, mut next, mut cyclic) = (Vec::new(), 0, FxHashSet::default());
    for root in 0..n {
        if index[root] != UNSEEN {
            continue;
        }
        // (node, position of the next edge to visit)
        let mut work = vec![(root, 0usize)];
        while let Some(&mut (v, ref mut pos)) = work.last_mut() {
            if *pos == 0 && index[v] == UNSEEN {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = edges[v].get(*pos) {
                *pos += 1;
                if index[w] == UNSEEN {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 || edges[v].contains(&v) {
                    cyclic.extend(component.into_iter().map(|w| names[w]));
                }
            }
        }
    }
    let mut v: Vec<String> = cyclic.into_iter().map(str::to_string).collect();
    v.sort_unstable();
    v
}

/// What a timeout stream reads about the sequence it watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SequenceSig {
    /// The match layout: the last step's fields plus every alias.
    pub schema: Arc<Schema>,
    /// Whether the sequence has a deadline (`.within` / pattern `within`).
    pub within: bool,
}

/// What checking one item may read about the rest of the file. Implemented
/// over the salsa database, where each method is a separately cached query,
/// so an item's check depends only on the signatures it actually reads.
pub trait Env {
    /// The declaration of a top-level name.
    fn decl(&self, name: &str) -> Option<DeclKind>;
    /// Whether the name is part of a definition cycle.
    fn is_cyclic(&self, name: &str) -> bool;
    /// Declared names of the given kind, for did-you-mean.
    fn names(&self, filter: fn(DeclKind) -> bool) -> Vec<String>;
    /// The full schema of a declared event type.
    fn event_schema(&self, name: &str) -> Option<Arc<Schema>>;
    /// The output schema of a stream, or the match schema of a pattern.
    fn stream_schema(&self, name: &str) -> Option<Arc<Schema>>;
    /// The sequence run by a stream or named pattern, for its timeout
    /// stream (`name.timeouts()`); `None` when `name` runs no sequence.
    fn sequence_sig(&self, name: &str) -> Option<SequenceSig>;
    /// The layout of the events entering stream `name`'s operators, for its
    /// late stream (`name.late()`); `None` when `name` is not a stream with a
    /// single plain input (an event type or another stream).
    fn late_input(&self, name: &str) -> Option<Arc<Schema>>;
    /// The signature of a user function.
    fn fn_sig(&self, name: &str) -> Option<FnSig>;
    /// The kind of a connector declared with `connector X = kind (...)`
    /// (`None` for other names and for `config:` connectors).
    fn connector_kind(&self, name: &str) -> Option<String>;
    /// The type of a global.
    fn global_type(&self, name: &str) -> Option<Type>;
    /// The type a `type` alias stands for.
    fn type_alias(&self, name: &str) -> Option<Type>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(deps: &[(&str, &[&str])]) -> Vec<String> {
        let map = deps
            .iter()
            .map(|(n, d)| (n.to_string(), d.iter().map(|s| s.to_string()).collect()))
            .collect();
        find_cycles(&map)
    }

    #[test]
    fn finds_only_names_on_cycles() {
        assert_eq!(
            check(&[("A", &["B"]), ("B", &["A"]), ("C", &["A"])]),
            vec!["A", "B"]
        );
        assert_eq!(check(&[("F", &["F"]), ("G", &["Reading"])]), vec!["F"]);
        assert!(check(&[("A", &["B"]), ("B", &[])]).is_empty());
        let chain: Vec<(String, Vec<String>)> = (0..5000)
            .map(|i| (format!("S{i}"), vec![format!("S{}", i + 1)]))
            .collect();
        let refs: Vec<(&str, Vec<&str>)> = chain
            .iter()
            .map(|(n, d)| (n.as_str(), d.iter().map(String::as_str).collect()))
            .collect();
        let slices: Vec<(&str, &[&str])> = refs.iter().map(|(n, d)| (*n, d.as_slice())).collect();
        assert!(check(&slices).is_empty(), "long chains are not cycles");
    }
}

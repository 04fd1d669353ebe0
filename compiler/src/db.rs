//! The salsa database and the compiler's incremental queries.
//!
//! Modelled on salsa's `examples/calc` and ruff's `ruff_db`. The pipeline:
//!
//! ```text
//! SourceFile (input: path, text)
//!   └─ file_items      expand declaration loops, split into items; each item's
//!        │             text is interned as an ItemKey (file + text)
//!        ├─ parse_item      per ItemKey: unchanged text ⇒ not re-parsed
//!        ├─ name_index      per file: declared names → item, duplicates, cycles
//!        └─ analyze_item    per ItemKey: resolve + check, item-relative spans
//!              └─ reads other items only through `signature(file, name)`
//!   └─ file_diagnostics  absolute spans, mapped through the loop source map
//! ```
//!
//! **Diagnostics are return values, not accumulators**: `analyze_item`
//! returns them inside its [`ItemAnalysis`], and `file_diagnostics` collects
//! them. Return values make equality-based backdating apply to diagnostics
//! too and keep the semantic model and its diagnostics in one memo.
//!
//! **Incrementality invariant**: checking stream `S` depends on `S`'s own
//! text, on the name index (backdated when names are unchanged), and on the
//! `signature` of each name it reads (an event schema, a stream output
//! schema, a function signature, a global's type), each backdated when equal.
//! Editing a line inside stream `A` re-parses and re-checks `A` only; `B` is
//! not re-checked unless `A`'s output schema changed. `tests/incremental.rs`
//! asserts this from salsa's events.

use std::sync::{Arc, Mutex};

use varpulis_syntax::ast::Item;
use varpulis_syntax::{ItemParse, SourceMap, SyntaxError};

use crate::check;
use crate::diagnostic::Diagnostic;
use crate::model::{ItemAnalysis, ItemModel, SourceModel, StageKind};
use crate::resolve::{DeclKind, Env, NameIndex, SequenceSig};
use crate::types::{FnSig, Schema, Type};

/// The database trait every query takes.
#[salsa::db]
pub trait Db: salsa::Database {}

/// Recorded salsa events, for incrementality tests.
pub type EventLog = Arc<Mutex<Vec<salsa::DatabaseKeyIndex>>>;

/// The compiler's database.
#[salsa::db]
#[derive(Clone, Default)]
pub struct Database {
    storage: salsa::Storage<Self>,
}

impl Database {
    /// A database that records the key of every query execution
    /// (`WillExecute` events) into the returned log.
    pub fn with_event_log() -> (Database, EventLog) {
        let log: EventLog = Arc::default();
        let sink = log.clone();
        let storage = salsa::Storage::new(Some(Box::new(move |event: salsa::Event| {
            if let salsa::EventKind::WillExecute { database_key } = event.kind {
                if let Ok(mut v) = sink.lock() {
                    v.push(database_key);
                }
            }
        })));
        (Database { storage }, log)
    }
}

#[salsa::db]
impl salsa::Database for Database {}

#[salsa::db]
impl Db for Database {}

/// One source file: the only input.
#[salsa::input(debug)]
pub struct SourceFile {
    /// Path as given by the host (used in rendered diagnostics).
    #[returns(ref)]
    pub path: String,
    /// Full text.
    #[returns(ref)]
    pub text: String,
}

/// The set of loaded files, by path: what `import` resolves against.
#[salsa::input(singleton, debug)]
pub struct Workspace {
    /// Loaded files by the path the host gave.
    #[returns(ref)]
    pub files: std::collections::BTreeMap<String, SourceFile>,
}

/// The text of one top-level item of a file. Interned, so an item whose text
/// did not change keeps its key and all queries keyed by it stay cached,
/// wherever the item moved in the file.
#[salsa::interned(debug)]
pub struct ItemKey<'db> {
    /// The file the item belongs to (its declarations are the environment).
    pub file: SourceFile,
    /// The item's text, from its first byte (leading comments included).
    #[returns(ref)]
    pub text: String,
}

/// An interned top-level name, the key of [`signature`].
#[salsa::interned(debug)]
pub struct Name<'db> {
    /// The name.
    #[returns(ref)]
    pub text: String,
}

/// One item of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, salsa::SalsaValue)]
pub struct ItemEntry<'db> {
    /// Offset of the item in the loop-expanded text.
    pub offset: u32,
    /// The item's interned text.
    pub key: ItemKey<'db>,
}

/// The items of a file after declaration-loop expansion.
#[derive(Clone, Debug, PartialEq, Eq, salsa::SalsaValue)]
pub struct FileItems<'db> {
    /// Items in order.
    pub items: Vec<ItemEntry<'db>>,
    /// Maps the expanded text back to the file's text.
    pub source_map: SourceMap,
    /// Errors of loops that could not be expanded (expanded-text spans).
    pub loop_errors: Vec<SyntaxError>,
}

/// Expands declaration loops and splits the file into items.
///
/// Re-executes on every edit of the file (it reads the whole text), but is
/// cheap: lexing for boundaries only. Downstream queries are keyed by the
/// interned item texts, so they see the same keys for unchanged items.
#[salsa::tracked(returns(ref))]
pub fn file_items(db: &dyn Db, file: SourceFile) -> FileItems<'_> {
    let text = file.text(db);
    let (expanded, source_map, loop_errors) = varpulis_syntax::expand_decl_loops(text);
    let mut ranges = varpulis_syntax::split_items(&expanded);
    // Text holding no code at all may still hold a lexical error (an
    // unterminated block comment swallowing the file): parse it as one item
    // so that the error is reported.
    if ranges.is_empty() && !expanded.trim().is_empty() {
        ranges.push(0..expanded.len());
    }
    let items = ranges
        .into_iter()
        .map(|r| ItemEntry {
            offset: r.start as u32,
            key: ItemKey::new(db, file, expanded[r].to_string()),
        })
        .collect();
    FileItems {
        items,
        source_map,
        loop_errors,
    }
}

/// Parses one item. Keyed by the item's interned text, so it runs once per
/// distinct text and never re-runs for an unchanged item.
#[salsa::tracked(returns(ref))]
pub fn parse_item(db: &dyn Db, key: ItemKey<'_>) -> ItemParse {
    varpulis_syntax::parse_item(key.text(db))
}

/// One `import` of a file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImportRef {
    /// The imported path resolved against the importing file's directory.
    pub path: String,
    /// The span of the `import` declaration (absolute, loop-expanded text).
    pub span: varpulis_syntax::Span,
    /// The file, when the host has loaded it.
    pub file: Option<SourceFile>,
}

/// The imports of a file, resolved against the loaded files. Re-executes
/// after edits of the file or when files are added; backdated when equal.
#[salsa::tracked(returns(ref))]
pub fn imports(db: &dyn Db, file: SourceFile) -> Vec<ImportRef> {
    let loaded = Workspace::try_get(db)
        .map(|w| w.files(db).clone())
        .unwrap_or_default();
    file_items(db, file)
        .items
        .iter()
        .filter_map(|e| match &parse_item(db, e.key).item {
            Item::Import(i) => {
                let path = resolve_import_path(file.path(db), &i.path);
                let file = loaded.get(&path).copied();
                Some(ImportRef {
                    path,
                    span: i.span.shifted(e.offset),
                    file,
                })
            }
            _ => None,
        })
        .collect()
}

/// Resolves `import "rel"` written in the file `from`: relative to `from`'s
/// directory, with `.` and `..` components folded, `/`-separated.
pub fn resolve_import_path(from: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = if rel.starts_with('/') {
        Vec::new()
    } else {
        let mut p: Vec<&str> = from.split('/').collect();
        p.pop();
        p
    };
    for c in rel.split('/') {
        match c {
            "" | "." => {}
            ".." if parts.last().is_some_and(|l| *l != "..") && !parts.is_empty() => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    if rel.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    }
}

/// The files whose declarations `file` sees through `import`, transitively,
/// in the order the reference prepends them (an imported file's own imports
/// first), without `file` itself, duplicates, or more than 10 levels.
#[salsa::tracked(returns(ref))]
pub fn scope_files(db: &dyn Db, file: SourceFile) -> Vec<SourceFile> {
    fn visit(
        db: &dyn Db,
        f: SourceFile,
        depth: usize,
        home: SourceFile,
        out: &mut Vec<SourceFile>,
    ) {
        if depth > 10 {
            return;
        }
        for i in imports(db, f) {
            if let Some(g) = i.file {
                if g != home && !out.contains(&g) {
                    visit(db, g, depth + 1, home, out);
                    if !out.contains(&g) {
                        out.push(g);
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    visit(db, file, 0, file, &mut out);
    out
}

/// The names visible in a file: its own declarations and those of the files
/// it imports. Re-executes after any edit (it reads every item's parse, which
/// is cached), and is backdated when the declared names, their kinds and
/// positions are unchanged, which is what keeps other items' checks cached.
#[salsa::tracked(returns(ref))]
pub fn name_index(db: &dyn Db, file: SourceFile) -> NameIndex {
    let mut entries: Vec<(Option<u32>, usize, &ItemParse)> = Vec::new();
    for (k, f) in scope_files(db, file).iter().enumerate() {
        for (i, e) in file_items(db, *f).items.iter().enumerate() {
            entries.push((Some(k as u32), i, parse_item(db, e.key)));
        }
    }
    for (i, e) in file_items(db, file).items.iter().enumerate() {
        entries.push((None, i, parse_item(db, e.key)));
    }
    NameIndex::build_with_imports(entries.iter().map(|(f, i, p)| (*f, *i, &p.item)))
}

/// The file declaring `decl`, as seen from `file`.
fn decl_file(db: &dyn Db, file: SourceFile, decl: &crate::resolve::Decl) -> Option<SourceFile> {
    match decl.file {
        None => Some(file),
        Some(k) => scope_files(db, file).get(k as usize).copied(),
    }
}

/// What other items may read about a declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signature {
    /// An event type's schema.
    Event(Arc<Schema>),
    /// A stream's output schema or a pattern's match schema.
    Stream(Arc<Schema>),
    /// A function's signature.
    Fn(FnSig),
    /// A global's type.
    Global(Type),
    /// A type alias's meaning.
    TypeAlias(Type),
    /// A connector's kind (`file`, `http`, `redis`, ...).
    Connector(String),
    /// Contexts and the rest: nothing beyond their kind.
    Other,
}

/// The signature of the top-level `name` of `file`.
///
/// The firewall between items: it re-executes when the file changes, but its
/// result is usually equal (an edit inside a stream's filter leaves its output
/// schema as it was), so the checks that read it are not re-run. Function
/// signatures come from the declaration's parameter and return types when the
/// return type is written, so recursive functions do not depend on
/// themselves. Cycles the name index did not predict fall back to `None`.
#[salsa::tracked(cycle_result = signature_cycle)]
pub fn signature<'db>(db: &'db dyn Db, file: SourceFile, name: Name<'db>) -> Option<Signature> {
    let index = name_index(db, file);
    let n = name.text(db);
    let decl = index.get(n)?;
    let home = decl_file(db, file, &decl)?;
    let entry = file_items(db, home).items.get(decl.item)?;
    let env = DbEnv { db, file: home };
    if let (DeclKind::Fn, Item::Fn(f)) = (decl.kind, &parse_item(db, entry.key).item) {
        let (params, ret) = check::fn_signature(&env, f);
        let ret = match ret {
            Some(t) => t,
            None if index.is_cyclic(n) => Type::Any,
            None => match &analyze_item(db, entry.key).model {
                ItemModel::Fn(sig) => sig.ret.clone(),
                _ => Type::Any,
            },
        };
        let emits = crate::resolve::walk::emitted_types(&f.body);
        return Some(Signature::Fn(FnSig { params, ret, emits }));
    }
    if index.is_cyclic(n) {
        return None;
    }
    Some(match &analyze_item(db, entry.key).model {
        ItemModel::Event(s) => Signature::Event(s.clone()),
        ItemModel::Stream(m) => Signature::Stream(m.output.clone()),
        ItemModel::Pattern(p) => Signature::Stream(p.schema.clone()),
        ItemModel::Fn(sig) => Signature::Fn(sig.clone()),
        ItemModel::Global(t) => Signature::Global(t.clone()),
        ItemModel::TypeAlias(t) => Signature::TypeAlias(t.clone()),
        ItemModel::Connector(c) => Signature::Connector(c.kind.clone()),
        ItemModel::Other => Signature::Other,
    })
}

/// The sequence a stream or named pattern runs, for `name.timeouts()`.
///
/// Like [`signature`], a firewall: it reads the checked model of `name` and
/// usually stays equal when that item is edited inside a filter or after the
/// match, so timeout streams are not re-checked.
#[salsa::tracked(cycle_result = sequence_signature_cycle)]
pub fn sequence_signature<'db>(
    db: &'db dyn Db,
    file: SourceFile,
    name: Name<'db>,
) -> Option<SequenceSig> {
    let index = name_index(db, file);
    let n = name.text(db);
    let decl = index.get(n)?;
    if index.is_cyclic(n) {
        return None;
    }
    let home = decl_file(db, file, &decl)?;
    let entry = file_items(db, home).items.get(decl.item)?;
    match &analyze_item(db, entry.key).model {
        ItemModel::Pattern(p) => Some(SequenceSig {
            schema: p.schema.clone(),
            within: p.within.is_some(),
        }),
        ItemModel::Stream(m) if m.is_sequence => {
            let mut within = m
                .stages
                .iter()
                .any(|s| matches!(s.kind, StageKind::Within(_)));
            if let SourceModel::Pattern { name } = &m.source {
                let inner = sequence_signature(db, home, Name::new(db, name.clone()));
                within |= inner.as_ref().is_some_and(|s| s.within);
            }
            // The match layout: after the last step, else (a pattern or
            // `sequence(...)` source) what the first operator sees.
            let schema = m
                .stages
                .iter()
                .rev()
                .find(|s| matches!(s.kind, StageKind::Step { .. }))
                .map(|s| s.output.clone())
                .or_else(|| m.stages.first().map(|s| s.input.clone()))
                .unwrap_or_else(|| m.output.clone());
            Some(SequenceSig { schema, within })
        }
        _ => None,
    }
}

/// The layout of the events entering a stream's operators, for
/// `name.late()`: only streams with a single plain input (an event type or
/// another stream) have one, since a late event is routed before any
/// operator runs. A firewall like [`signature`].
#[salsa::tracked(cycle_result = late_input_signature_cycle)]
pub fn late_input_signature<'db>(
    db: &'db dyn Db,
    file: SourceFile,
    name: Name<'db>,
) -> Option<Arc<Schema>> {
    let index = name_index(db, file);
    let n = name.text(db);
    let decl = index.get(n)?;
    if index.is_cyclic(n) || decl.kind != DeclKind::Stream {
        return None;
    }
    let home = decl_file(db, file, &decl)?;
    let entry = file_items(db, home).items.get(decl.item)?;
    match &analyze_item(db, entry.key).model {
        ItemModel::Stream(m)
            if !m.is_sequence
                && matches!(
                    m.source,
                    SourceModel::Event { .. } | SourceModel::Stream { .. }
                ) =>
        {
            Some(
                m.stages
                    .first()
                    .map(|s| s.input.clone())
                    .unwrap_or_else(|| m.output.clone()),
            )
        }
        _ => None,
    }
}

fn late_input_signature_cycle<'db>(
    _db: &'db dyn Db,
    _id: salsa::Id,
    _file: SourceFile,
    _name: Name<'db>,
) -> Option<Arc<Schema>> {
    None
}

fn sequence_signature_cycle<'db>(
    _db: &'db dyn Db,
    _id: salsa::Id,
    _file: SourceFile,
    _name: Name<'db>,
) -> Option<SequenceSig> {
    None
}

fn signature_cycle<'db>(
    _db: &'db dyn Db,
    _id: salsa::Id,
    _file: SourceFile,
    _name: Name<'db>,
) -> Option<Signature> {
    None
}

/// Resolves and type-checks one item.
///
/// Keyed by the item's interned text: the check of an unchanged item is
/// re-used unless a signature it read changed. Diagnostics have item-relative
/// spans. When the item has syntax errors its semantic diagnostics are
/// dropped (the model is still built), so one cause gives one diagnostic.
#[salsa::tracked(returns(ref))]
pub fn analyze_item(db: &dyn Db, key: ItemKey<'_>) -> ItemAnalysis {
    let parse = parse_item(db, key);
    let env = DbEnv {
        db,
        file: *key.file(db),
    };
    let mut analysis = check::check_item(&env, &parse.item);
    if !parse.errors.is_empty() {
        analysis.diagnostics.clear();
    }
    analysis
}

/// All diagnostics of a file, with absolute spans in the file's own text,
/// sorted by position. Cheap: it shifts and concatenates cached results.
#[salsa::tracked(returns(ref))]
pub fn file_diagnostics(db: &dyn Db, file: SourceFile) -> Vec<Diagnostic> {
    let items = file_items(db, file);
    let mut out: Vec<Diagnostic> = items.loop_errors.iter().map(Diagnostic::from).collect();
    for entry in &items.items {
        let parse = parse_item(db, entry.key);
        out.extend(
            parse
                .errors
                .iter()
                .map(|e| Diagnostic::from(e).shifted(entry.offset)),
        );
        let analysis = analyze_item(db, entry.key);
        out.extend(
            analysis
                .diagnostics
                .iter()
                .map(|d| d.clone().shifted(entry.offset)),
        );
    }
    let checked: Vec<crate::scale_out::FileItem<'_>> = items
        .items
        .iter()
        .filter_map(|entry| {
            let parse = parse_item(db, entry.key);
            parse.errors.is_empty().then(|| crate::scale_out::FileItem {
                item: &parse.item,
                model: &analyze_item(db, entry.key).model,
                offset: entry.offset,
            })
        })
        .collect();
    out.extend(crate::scale_out::diagnostics(&checked));
    let index = name_index(db, file);
    for dup in index.duplicates.iter().filter(|d| d.again.file.is_none()) {
        let at = |d: &crate::resolve::Decl| {
            let off = items.items.get(d.item).map_or(0, |e| e.offset);
            d.name_span.shifted(off)
        };
        let d = Diagnostic::new(
            crate::codes::DUPLICATE_DECLARATION,
            format!("`{}` is declared twice", dup.name),
            at(&dup.again),
        )
        .with_label(format!(
            "{} named `{}` already exists",
            dup.first.kind.describe(),
            dup.name
        ))
        .with_help("rename one of them; all top-level names share one namespace");
        out.push(match decl_file(db, file, &dup.first) {
            Some(f) if f != file => d.with_note(format!("first declared in `{}`", f.path(db))),
            _ => d.with_secondary(at(&dup.first), "first declared here"),
        });
    }
    for i in imports(db, file).iter().filter(|i| i.file.is_none()) {
        out.push(
            Diagnostic::new(
                crate::codes::UNRESOLVED_IMPORT,
                format!("imported file `{}` is not loaded", i.path),
                i.span,
            )
            .with_label("its declarations are not checked")
            .with_note("names not declared here are treated as undeclared event types")
            .with_help("check the importing file together with the files it imports"),
        );
    }
    if !items.source_map.is_identity() {
        for d in &mut out {
            d.map_spans(|s| items.source_map.span_to_original(s));
        }
    }
    out.sort_by_key(|d| (d.primary.span.start, d.primary.span.end, d.code));
    out
}

/// [`Env`] over the database: each method is a cached query.
struct DbEnv<'db> {
    db: &'db dyn Db,
    file: SourceFile,
}

impl DbEnv<'_> {
    fn sig(&self, name: &str) -> Option<Signature> {
        signature(self.db, self.file, Name::new(self.db, name.to_string())).clone()
    }
}

impl Env for DbEnv<'_> {
    fn decl(&self, name: &str) -> Option<DeclKind> {
        name_index(self.db, self.file).get(name).map(|d| d.kind)
    }

    fn is_cyclic(&self, name: &str) -> bool {
        name_index(self.db, self.file).is_cyclic(name)
    }

    fn names(&self, filter: fn(DeclKind) -> bool) -> Vec<String> {
        let mut v: Vec<String> = name_index(self.db, self.file)
            .decls
            .iter()
            .filter(|(_, d)| filter(d.kind))
            .map(|(n, _)| n.clone())
            .collect();
        v.sort_unstable();
        v
    }

    fn event_schema(&self, name: &str) -> Option<Arc<Schema>> {
        match self.sig(name)? {
            Signature::Event(s) => Some(s),
            _ => None,
        }
    }

    fn stream_schema(&self, name: &str) -> Option<Arc<Schema>> {
        match self.sig(name)? {
            Signature::Stream(s) => Some(s),
            _ => None,
        }
    }

    fn sequence_sig(&self, name: &str) -> Option<SequenceSig> {
        sequence_signature(self.db, self.file, Name::new(self.db, name.to_string())).clone()
    }

    fn late_input(&self, name: &str) -> Option<Arc<Schema>> {
        late_input_signature(self.db, self.file, Name::new(self.db, name.to_string())).clone()
    }

    fn fn_sig(&self, name: &str) -> Option<FnSig> {
        match self.sig(name)? {
            Signature::Fn(s) => Some(s),
            _ => None,
        }
    }

    fn connector_kind(&self, name: &str) -> Option<String> {
        match self.sig(name)? {
            Signature::Connector(kind) => Some(kind),
            _ => None,
        }
    }

    fn global_type(&self, name: &str) -> Option<Type> {
        match self.sig(name)? {
            Signature::Global(t) => Some(t),
            _ => None,
        }
    }

    fn type_alias(&self, name: &str) -> Option<Type> {
        match self.sig(name)? {
            Signature::TypeAlias(t) => Some(t),
            _ => None,
        }
    }
}

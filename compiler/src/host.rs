//! The host API used by the CLI, the REPL and the LSP. It hides salsa: hosts
//! set file texts and ask questions; every answer is computed incrementally.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use salsa::plumbing::AsId;
use salsa::Setter;
use varpulis_syntax::ast::Item;
use varpulis_syntax::Span;

use crate::db::{self, Database, EventLog, SourceFile};
use crate::diagnostic::{self, Diagnostic};
use crate::model::{ItemAnalysis, ItemModel, StreamModel};
use crate::resolve::DeclKind;
use crate::types::{Field, Schema};

/// A top-level declaration, for outlines and go-to-definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    /// Declared name.
    pub name: String,
    /// What it declares.
    pub kind: DeclKind,
    /// The name's span in the file.
    pub name_span: Span,
    /// Index of the declaring item.
    pub item: usize,
}

/// One checked item, for the lowering.
#[derive(Clone, Copy, Debug)]
pub struct CheckedItem<'a> {
    /// Offset of the item in the loop-expanded text (add it to the item's
    /// spans for positions in that text).
    pub offset: u32,
    /// The syntax tree (item-relative spans).
    pub item: &'a Item,
    /// Types, resolutions and per-stage schemas.
    pub analysis: &'a ItemAnalysis,
    /// Its file: 0 for the file being lowered, `i` for its `i`-th import (see
    /// [`crate::lower::LowerInput::imports`]).
    pub unit: usize,
}

/// A query on a [`Compiler::snapshot`] stopped because the text changed
/// under it: its answer would describe a text that no longer exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cancelled by an edit")
    }
}

impl std::error::Error for Cancelled {}

/// The compiler: a set of source files and the incremental database.
///
/// **Snapshots.** [`Compiler::snapshot`] is a cheap read-only copy that
/// shares every memoised result, so many threads can answer questions at
/// once. A write ([`Compiler::set_file`]) cancels the queries running on
/// snapshots and waits until every snapshot is dropped; run snapshot work
/// inside [`Compiler::cancellable`] and drop the snapshot when it returns.
pub struct Compiler {
    db: Database,
    files: FxHashMap<String, SourceFile>,
    log: Option<EventLog>,
}

impl Default for Compiler {
    fn default() -> Compiler {
        Compiler::with_database(Database::default(), None)
    }
}

impl Compiler {
    /// An empty compiler.
    pub fn new() -> Compiler {
        Compiler::default()
    }

    /// A compiler that records which queries execute (see
    /// [`Compiler::take_executed`]); for incrementality tests.
    pub fn with_event_log() -> Compiler {
        let (db, log) = Database::with_event_log();
        Compiler::with_database(db, Some(log))
    }

    fn with_database(db: Database, log: Option<EventLog>) -> Compiler {
        db::Workspace::new(&db, Default::default());
        Compiler {
            db,
            files: FxHashMap::default(),
            log,
        }
    }

    /// A read-only view of the same database for another thread: it shares
    /// the memoised results, and what it computes is memoised for all.
    ///
    /// Never write through a snapshot (a write waits for every other copy to
    /// be dropped, so a writing snapshot waits for itself), and never hold
    /// one while waiting for the writer: [`Compiler::set_file`] on the
    /// original blocks until all snapshots are gone.
    pub fn snapshot(&self) -> Compiler {
        Compiler {
            db: self.db.clone(),
            files: self.files.clone(),
            log: self.log.clone(),
        }
    }

    /// Runs `f`, typically queries on a snapshot, and answers
    /// `Err(Cancelled)` when a write to the database cancelled them midway.
    /// Any other panic keeps unwinding.
    pub fn cancellable<T>(f: impl FnOnce() -> T) -> Result<T, Cancelled> {
        // The closure's borrows are of a snapshot that the caller throws
        // away on cancellation, so no half-updated state is observed after
        // the unwind.
        salsa::Cancelled::catch(std::panic::AssertUnwindSafe(f)).map_err(|_| Cancelled)
    }

    /// Unwinds (to the enclosing [`Compiler::cancellable`]) if a write is
    /// waiting for this snapshot. Queries check this themselves; long work
    /// outside the queries calls it now and then.
    pub fn unwind_if_cancelled(&self) {
        salsa::Database::unwind_if_revision_cancelled(&self.db);
    }

    /// The files imported by `path` (resolved against its directory), so
    /// that the host can load them with [`Compiler::set_file`] under those
    /// paths; imports of files not loaded are reported as warning W0108.
    pub fn imports(&self, path: &str) -> Vec<String> {
        let Some(&file) = self.files.get(path) else {
            return Vec::new();
        };
        db::imports(&self.db, file)
            .iter()
            .map(|i| i.path.clone())
            .collect()
    }

    /// Adds a file or replaces its text.
    pub fn set_file(&mut self, path: &str, text: impl Into<String>) {
        let text = text.into();
        match self.files.get(path) {
            Some(f) => {
                if f.text(&self.db) != &text {
                    f.set_text(&mut self.db).to(text);
                }
            }
            None => {
                let f = SourceFile::new(&self.db, path.to_string(), text);
                self.files.insert(path.to_string(), f);
                let ws = db::Workspace::get(&self.db);
                let mut map = ws.files(&self.db).clone();
                map.insert(path.to_string(), f);
                ws.set_files(&mut self.db).to(map);
            }
        }
    }

    /// The current text of a file.
    pub fn text(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(|f| f.text(&self.db).as_str())
    }

    /// All diagnostics of a file (syntax and semantic), sorted by position,
    /// with spans in the file's text. Empty for unknown files.
    pub fn check(&self, path: &str) -> Vec<Diagnostic> {
        self.files
            .get(path)
            .map(|f| db::file_diagnostics(&self.db, *f).clone())
            .unwrap_or_default()
    }

    /// [`Compiler::check`] plus, when the check finds no error, the errors of lowering the
    /// file to a [`varpulis_program::Program`] (constructs the engine cannot run yet), so that
    /// `check` and the editor report what `run` would refuse.
    pub fn check_and_lower(&self, path: &str) -> Vec<Diagnostic> {
        let mut diags = self.check(path);
        if !diagnostic::has_errors(&diags) {
            if let Err(errors) = self.program(path) {
                diags.extend(errors);
            }
        }
        diags
    }

    /// Whether a file has errors (warnings do not count).
    pub fn has_errors(&self, path: &str) -> bool {
        diagnostic::has_errors(&self.check(path))
    }

    /// The lowered [`varpulis_program::Program`] of a file, or its errors.
    ///
    /// A file whose check reports errors is not lowered: those errors are
    /// returned. Otherwise [`crate::lower::lower_file`] runs over the cached
    /// parses and analyses; it is not memoised itself (it is a linear pass
    /// and hosts ask for it once per run), so it needs no `Eq` on `Program`.
    /// An unknown path lowers as an empty file.
    pub fn program(&self, path: &str) -> Result<varpulis_program::Program, Vec<Diagnostic>> {
        let errors: Vec<Diagnostic> = self
            .check(path)
            .into_iter()
            .filter(Diagnostic::is_error)
            .collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        let Some(&file) = self.files.get(path) else {
            return Ok(varpulis_program::Program::default());
        };
        // The imported files' declarations come first, as the reference prepends imported
        // statements: each file once, a file's own imports before it.
        let imported = self.imported_files(path);
        let mut items = Vec::new();
        let mut units = Vec::new();
        for (i, import) in imported.iter().enumerate() {
            let Some(&f) = self.files.get(import) else {
                continue;
            };
            items.extend(self.items(import).into_iter().map(|mut item| {
                item.unit = i + 1;
                item
            }));
            let expanded = db::file_items(&self.db, f);
            units.push(crate::lower::LowerUnit {
                file: import,
                text: f.text(&self.db),
                source_map: (!expanded.source_map.is_identity()).then_some(&expanded.source_map),
            });
        }
        items.extend(self.items(path));
        let expanded = db::file_items(&self.db, file);
        let source_map = (!expanded.source_map.is_identity()).then_some(&expanded.source_map);
        let input = crate::lower::LowerInput {
            file: path,
            text: file.text(&self.db),
            items: &items,
            source_map,
            imports: &units,
        };
        crate::lower::lower_file(&input)
    }

    /// The files `path` imports, transitively, in the order their declarations are
    /// prepended: depth first, a file's own imports before it, each file once (`path`
    /// itself excluded).
    fn imported_files(&self, path: &str) -> Vec<String> {
        fn visit(
            c: &Compiler,
            file: &str,
            seen: &mut Vec<String>,
            out: &mut Vec<String>,
            depth: usize,
        ) {
            if depth > 10 {
                return;
            }
            for import in c.imports(file) {
                if seen.contains(&import) {
                    continue;
                }
                seen.push(import.clone());
                visit(c, &import, seen, out, depth + 1);
                out.push(import);
            }
        }
        let mut seen = vec![path.to_string()];
        let mut out = Vec::new();
        visit(self, path, &mut seen, &mut out, 0);
        out
    }

    /// The checked items of a file in order (for the lowering).
    pub fn items(&self, path: &str) -> Vec<CheckedItem<'_>> {
        let Some(&file) = self.files.get(path) else {
            return Vec::new();
        };
        db::file_items(&self.db, file)
            .items
            .iter()
            .map(|e| CheckedItem {
                offset: e.offset,
                item: &db::parse_item(&self.db, e.key).item,
                analysis: db::analyze_item(&self.db, e.key),
                unit: 0,
            })
            .collect()
    }

    /// The top-level declarations of a file, in order.
    pub fn symbols(&self, path: &str) -> Vec<Symbol> {
        let Some(&file) = self.files.get(path) else {
            return Vec::new();
        };
        let items = db::file_items(&self.db, file);
        let mut v: Vec<Symbol> = db::name_index(&self.db, file)
            .decls
            .iter()
            .filter(|(_, d)| d.file.is_none())
            .map(|(name, d)| Symbol {
                name: name.clone(),
                kind: d.kind,
                name_span: self.original(
                    file,
                    d.name_span
                        .shifted(items.items.get(d.item).map_or(0, |e| e.offset)),
                ),
                item: d.item,
            })
            .collect();
        v.sort_by_key(|s| (s.item, s.name_span.start));
        v
    }

    fn original(&self, file: SourceFile, span: Span) -> Span {
        db::file_items(&self.db, file)
            .source_map
            .span_to_original(span)
    }

    /// The checked model of the stream `name`.
    pub fn stream(&self, path: &str, name: &str) -> Option<&StreamModel> {
        let item = self.item_of(path, name)?;
        match &item.analysis.model {
            ItemModel::Stream(m) => Some(m),
            _ => None,
        }
    }

    /// The output schema of stream (or pattern) `name`: ordered fields with
    /// their types.
    pub fn stream_schema(&self, path: &str, name: &str) -> Option<Arc<Schema>> {
        let item = self.item_of(path, name)?;
        match &item.analysis.model {
            ItemModel::Stream(m) => Some(m.output.clone()),
            ItemModel::Pattern(p) => Some(p.schema.clone()),
            ItemModel::Event(s) => Some(s.clone()),
            _ => None,
        }
    }

    fn item_of(&self, path: &str, name: &str) -> Option<CheckedItem<'_>> {
        let &file = self.files.get(path)?;
        let decl = db::name_index(&self.db, file).get(name)?;
        let home = match decl.file {
            None => path.to_string(),
            Some(k) => db::scope_files(&self.db, file)
                .get(k as usize)?
                .path(&self.db)
                .clone(),
        };
        self.items(&home).into_iter().nth(decl.item)
    }

    /// The fields in scope at byte `offset` of a stream (the input schema of
    /// the operator containing the offset, or the stream's output after its
    /// last operator), for completion.
    pub fn fields_at(&self, path: &str, offset: u32) -> Vec<Field> {
        let Some(&file) = self.files.get(path) else {
            return Vec::new();
        };
        for ci in self.items(path) {
            let Item::Stream(s) = ci.item else { continue };
            let span = s.span.shifted(ci.offset);
            let span = self.original(file, span);
            if offset < span.start || offset > span.end {
                continue;
            }
            let ItemModel::Stream(m) = &ci.analysis.model else {
                return Vec::new();
            };
            for (op, stage) in s.ops.iter().zip(&m.stages) {
                let os = self.original(file, op.span.shifted(ci.offset));
                if offset >= os.start && offset <= os.end {
                    return stage.input.fields.clone();
                }
            }
            return m.output.fields.clone();
        }
        Vec::new()
    }

    /// The span of the declaration named by the identifier at `offset`.
    pub fn definition(&self, path: &str, offset: u32) -> Option<Span> {
        let text = self.text(path)?;
        let bytes = text.as_bytes();
        let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let mut start = (offset as usize).min(bytes.len());
        while start > 0 && is_ident(bytes[start - 1]) {
            start -= 1;
        }
        let mut end = (offset as usize).min(bytes.len());
        while end < bytes.len() && is_ident(bytes[end]) {
            end += 1;
        }
        let word = text.get(start..end)?;
        self.symbols(path)
            .into_iter()
            .find(|s| s.name == word)
            .map(|s| s.name_span)
    }

    /// Drains the log of executed queries as `query(subject)` strings, where
    /// the subject of a per-item query is the item's declared name. Empty
    /// unless built with [`Compiler::with_event_log`].
    pub fn take_executed(&self) -> Vec<String> {
        let Some(log) = &self.log else {
            return Vec::new();
        };
        let keys: Vec<salsa::DatabaseKeyIndex> = log
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        let mut names: FxHashMap<salsa::Id, String> = FxHashMap::default();
        for &file in self.files.values() {
            for e in &db::file_items(&self.db, file).items {
                let name = db::parse_item(&self.db, e.key)
                    .item
                    .name()
                    .map_or("?".to_string(), |n| n.name.clone());
                names.insert(e.key.as_id(), name);
            }
        }
        // Reading the items above may itself log executions; drop them.
        if let Ok(mut v) = log.lock() {
            v.clear();
        }
        keys.into_iter()
            .map(|k| {
                let query = salsa::Database::ingredient_debug_name(&self.db, k.ingredient_index());
                match names.get(&k.key_index()) {
                    Some(n) => format!("{query}({n})"),
                    None => query.to_string(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Compiler {
        let mut c = Compiler::new();
        c.set_file("t.vpl", text);
        c
    }

    #[test]
    fn stream_schema_after_emit() {
        let c = check("event R:\n    a: int\n    b: str\nstream S = R\n    .emit(x: a * 2, b)\n");
        let s = c.stream_schema("t.vpl", "S").expect("S exists");
        let got: Vec<String> = s
            .fields
            .iter()
            .map(|f| format!("{}: {}", f.name, f.ty))
            .collect();
        assert_eq!(got, ["x: int", "b: str"]);
    }

    #[test]
    fn symbols_and_definition() {
        let c = check("event R:\n    a: int\nstream S = R\n");
        let syms: Vec<(String, DeclKind)> = c
            .symbols("t.vpl")
            .into_iter()
            .map(|s| (s.name, s.kind))
            .collect();
        assert_eq!(
            syms,
            [
                ("R".to_string(), DeclKind::Event),
                ("S".to_string(), DeclKind::Stream)
            ]
        );
        assert_eq!(c.definition("t.vpl", 31), Some(Span::new(6, 7)));
    }

    #[test]
    fn a_write_cancels_work_on_a_snapshot() {
        let mut c = check("event R:\n    a: int\n");
        let snap = c.snapshot();
        let (started, wait) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            let r = Compiler::cancellable(|| {
                assert!(snap.check("t.vpl").is_empty());
                let _ = started.send(());
                // Bounded: a write that fails to cancel fails the test.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
                while std::time::Instant::now() < deadline {
                    snap.unwind_if_cancelled();
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            });
            drop(snap);
            r
        });
        wait.recv().expect("the worker started");
        // Blocks until the worker unwound and dropped its snapshot.
        c.set_file("t.vpl", "event R:\n    a: nope\n");
        assert_eq!(worker.join().expect("no other panic"), Err(Cancelled));
        let after = c.snapshot();
        assert_eq!(after.text("t.vpl"), Some("event R:\n    a: nope\n"));
        assert!(!after.check("t.vpl").is_empty());
    }

    #[test]
    fn fields_at_an_operator() {
        let text = "event R:\n    a: int\nstream S = R\n    .select(b: a)\n    .where(b > 1)\n";
        let c = check(text);
        let off = text.find("b > 1").expect("present") as u32;
        let names: Vec<String> = c
            .fields_at("t.vpl", off)
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, ["b"]);
    }
}

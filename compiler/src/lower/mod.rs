//! Lowering: a checked file (syntax tree + semantic model) → the
//! [`varpulis_program::Program`] artifact the runtime executes.
//!
//! Lowering runs only on files whose check produced no errors, so it trusts
//! the checker for names, types and operator arguments. It still never
//! panics: anything it cannot express in the Program (or finds inconsistent)
//! becomes an error [`Diagnostic`], and the whole lowering fails with the
//! list. A construct the Program cannot express yet is reported with
//! `E0409`/`E0410` ("not supported yet"), never dropped silently.
//!
//! The work is split by concept:
//! - `schema`: event schemas, stream output layouts and field slots;
//! - `expr`: expression code generation to bytecode `Chunk`s;
//! - `stmt`: imperative function bodies and globals;
//! - `stream`: stream sources and the operator chain;
//! - `pattern`: in-stream sequences and named patterns → `SequenceSpec`;
//! - `spans`: the span table (file, byte range, line, column).
//!
//! Resolution: identifiers are resolved with the checker's
//! [`Resolution`] when the model has one for the
//! expression's span, and otherwise by the documented order (locals, fields of
//! the current event, sequence aliases, globals, then dynamic fields of open
//! schemas), so lowering is usable on trees that have no model yet.
//!
//! See `docs/LOWERING.md` for the construct-by-construct table.

mod contexts;
mod enrich;
mod expr;
mod forecast;
mod group;
mod lambda;
mod map;
mod pattern;
mod schema;
mod score;
mod spans;
mod stmt;
mod stream;
mod trend;
mod window_pattern;

use rustc_hash::{FxHashMap, FxHashSet};
use varpulis_program::{
    ConnectorId, FunctionId, GlobalId, Program, SchemaId, SpanId, StreamId, StreamPlan,
};
use varpulis_syntax::ast::Item;
use varpulis_syntax::{SourceMap, Span};

use crate::codes;
use crate::diagnostic::{has_errors, Diagnostic};
use crate::model::{ExprTable, Resolution};
use crate::CheckedItem;

pub use expr::ChunkBuilder;

/// Everything lowering needs about one file.
#[derive(Clone, Copy)]
pub struct LowerInput<'a> {
    /// The file name recorded in the span table (not its text).
    pub file: &'a str,
    /// The file's own text; used only to compute lines and columns.
    pub text: &'a str,
    /// The checked items in order (trees with item-relative spans, offsets
    /// in the loop-expanded text, and the checker's analyses).
    pub items: &'a [CheckedItem<'a>],
    /// Maps loop-expanded offsets back to `text`; `None` when the file has
    /// no declaration loops.
    pub source_map: Option<&'a SourceMap>,
    /// The files it imports, transitively (file 1, 2, ... of the span table); their items
    /// come first in `items`, as the reference prepends imported statements.
    pub imports: &'a [LowerUnit<'a>],
}

/// An imported file: its name, text and source map, like [`LowerInput`]'s own.
pub struct LowerUnit<'a> {
    /// The file name recorded in the span table.
    pub file: &'a str,
    /// The file's own text.
    pub text: &'a str,
    /// Maps loop-expanded offsets back to `text`.
    pub source_map: Option<&'a SourceMap>,
}

/// Lowers one checked file to a [`Program`].
///
/// Returns every error found (spans absolute in the file) when some construct
/// cannot be lowered; warnings are never produced here.
pub fn lower_file(input: &LowerInput<'_>) -> Result<Program, Vec<Diagnostic>> {
    let mut l = Lowerer::new(input);
    l.run();
    if has_errors(&l.diags) {
        return Err(l.diags);
    }
    Ok(l.program)
}

/// What a top-level name declares, with its item index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decl {
    Event(usize),
    Stream(usize),
    Pattern(usize),
    Fn(usize),
    Global(usize),
    Connector(usize),
    Other,
}

/// Lowering progress of one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamState {
    Pending,
    InProgress,
    /// Lowered; the working layout of the events leaving its chain.
    Done(SchemaId),
    Failed,
}

/// The item whose spans are being lowered (spans are item-relative).
#[derive(Clone, Copy)]
pub(crate) struct ItemCtx<'a> {
    offset: u32,
    exprs: Option<&'a ExprTable>,
    /// The item's file: 0 the lowered file, `i` its import `i - 1`.
    unit: usize,
}

/// The lowering state of one file.
pub(crate) struct Lowerer<'a> {
    pub(crate) input: &'a LowerInput<'a>,
    pub(crate) program: Program,
    /// One interner per file (see [`ItemCtx::unit`]).
    pub(crate) spans: Vec<spans::SpanInterner>,
    pub(crate) diags: Vec<Diagnostic>,
    pub(crate) item: ItemCtx<'a>,
    /// Top-level names, first declaration wins.
    pub(crate) names: FxHashMap<String, Decl>,
    /// Event types (declared and undeclared) by name.
    pub(crate) events: FxHashMap<String, SchemaId>,
    /// Schemas to which reading an unknown field appends a slot (undeclared
    /// event types): their layout is inferred from what the program reads.
    pub(crate) open: FxHashSet<SchemaId>,
    /// The stream that created each intermediate schema, if any.
    pub(crate) owner: FxHashMap<SchemaId, StreamId>,
    pub(crate) fn_ids: FxHashMap<String, FunctionId>,
    pub(crate) global_ids: FxHashMap<String, GlobalId>,
    pub(crate) connector_ids: FxHashMap<String, ConnectorId>,
    /// Stream ids by name (declaration order) and their item indexes.
    pub(crate) stream_ids: FxHashMap<String, StreamId>,
    pub(crate) stream_items: Vec<usize>,
    pub(crate) stream_state: Vec<StreamState>,
    pub(crate) plans: Vec<Option<StreamPlan>>,
}

impl<'a> Lowerer<'a> {
    fn new(input: &'a LowerInput<'a>) -> Lowerer<'a> {
        let mut program = Program::default();
        program.span_table.files.push(input.file.into());
        let mut interners = vec![spans::SpanInterner::new(input.text, 0)];
        for (i, unit) in input.imports.iter().enumerate() {
            program.span_table.files.push(unit.file.into());
            interners.push(spans::SpanInterner::new(unit.text, to_u32(i + 1)));
        }
        Lowerer {
            input,
            program,
            spans: interners,
            diags: Vec::new(),
            item: ItemCtx {
                offset: 0,
                exprs: None,
                unit: 0,
            },
            names: FxHashMap::default(),
            events: FxHashMap::default(),
            open: FxHashSet::default(),
            owner: FxHashMap::default(),
            fn_ids: FxHashMap::default(),
            global_ids: FxHashMap::default(),
            connector_ids: FxHashMap::default(),
            stream_ids: FxHashMap::default(),
            stream_items: Vec::new(),
            stream_state: Vec::new(),
            plans: Vec::new(),
        }
    }

    fn run(&mut self) {
        self.index_names();
        self.lower_event_decls();
        self.lower_connectors();
        self.lower_globals();
        // `emit T(...)` pops one value per field of `T`, so an undeclared
        // `T` must have its final layout before any body is compiled: emit
        // fields are registered first, streams (which may read more fields
        // of `T`) next, and function bodies last (calls use pre-assigned ids).
        self.register_emit_fields();
        for sid in 0..self.stream_items.len() {
            self.ensure_stream(sid);
        }
        self.lower_functions();
        self.finish_streams();
        self.lower_contexts();
    }

    /// Records every top-level name (first wins) and assigns ids to
    /// functions, connectors and streams in declaration order, so that
    /// forward references resolve. Global ids are assigned as initialisers
    /// are lowered (in textual order, which is also their run order).
    fn index_names(&mut self) {
        let items = self.input.items;
        for (i, node) in items.iter().enumerate() {
            if let Item::Config(cfg) = &node.item {
                for k in cfg.sections.iter().flat_map(|s| &s.connectors) {
                    if !self.names.contains_key(&k.name.name) {
                        self.names.insert(k.name.name.clone(), Decl::Connector(i));
                        let id = to_u32(self.connector_ids.len());
                        self.connector_ids.insert(k.name.name.clone(), id);
                    }
                }
                continue;
            }
            let decl = match &node.item {
                Item::Event(_) => Decl::Event(i),
                Item::Stream(_) => Decl::Stream(i),
                Item::Pattern(_) => Decl::Pattern(i),
                Item::Fn(_) => Decl::Fn(i),
                // `let f = x => ...` is lowered as a function (the Program
                // has no function values); `var` lambdas stay variables.
                Item::Var(v) if stmt::global_lambda(v).is_some() => Decl::Fn(i),
                Item::Var(_) => Decl::Global(i),
                Item::Connector(_) => Decl::Connector(i),
                Item::TypeAlias(_) | Item::Context(_) => Decl::Other,
                _ => continue,
            };
            let Some(name) = node.item.name() else {
                continue;
            };
            if self.names.contains_key(&name.name) {
                continue;
            }
            self.names.insert(name.name.clone(), decl);
            match decl {
                Decl::Fn(_) => {
                    let id = to_u32(self.fn_ids.len());
                    self.fn_ids.insert(name.name.clone(), id);
                }
                Decl::Connector(_) => {
                    let id = to_u32(self.connector_ids.len());
                    self.connector_ids.insert(name.name.clone(), id);
                }
                Decl::Stream(_) => {
                    let id = to_u32(self.stream_items.len());
                    self.stream_ids.insert(name.name.clone(), id);
                    self.stream_items.push(i);
                    self.stream_state.push(StreamState::Pending);
                    self.plans.push(None);
                }
                _ => {}
            }
        }
    }

    /// Makes `index` the current item; returns the previous context so a
    /// nested lowering (a stream needed by another) can restore it.
    pub(crate) fn enter_item(&mut self, index: usize) -> ItemCtx<'a> {
        let prev = self.item;
        let entry = self.input.items.get(index);
        let offset = entry.map_or(0, |n| n.offset);
        let exprs = entry.map(|n| &n.analysis.exprs);
        let unit = entry.map_or(0, |n| n.unit);
        self.item = ItemCtx {
            offset,
            exprs,
            unit,
        };
        prev
    }

    /// Restores a context saved by [`Lowerer::enter_item`].
    pub(crate) fn leave_item(&mut self, prev: ItemCtx<'a>) {
        self.item = prev;
    }

    /// The span id of an item-relative span of the current item.
    pub(crate) fn span_id(&mut self, span: Span) -> SpanId {
        let abs = self.absolute(span);
        let unit = self.item.unit.min(self.spans.len().saturating_sub(1));
        match self.spans.get_mut(unit) {
            Some(interner) => interner.intern(&mut self.program.span_table, abs),
            None => SpanId::NONE,
        }
    }

    /// An item-relative span of the current item as a span of the file's
    /// own text.
    pub(crate) fn absolute(&self, span: Span) -> Span {
        let abs = span.shifted(self.item.offset);
        let map = match self.item.unit {
            0 => self.input.source_map,
            i => self.input.imports.get(i - 1).and_then(|u| u.source_map),
        };
        match map {
            Some(m) => m.span_to_original(abs),
            None => abs,
        }
    }

    /// The checker's resolution of the expression at `span`, if recorded.
    pub(crate) fn resolution(&self, span: Span) -> Option<&'a Resolution> {
        self.item
            .exprs
            .and_then(|t| t.get(&span))
            .and_then(|info| info.resolution.as_ref())
    }

    /// Reports an error at an item-relative span of the current item.
    pub(crate) fn error(&mut self, code: &'static str, message: impl Into<String>, span: Span) {
        let message = self.in_import(message.into());
        let d = Diagnostic::new(code, message, self.absolute(span));
        self.diags.push(d);
    }

    /// `message`, naming the imported file when the current item is in one (diagnostics
    /// are rendered against the lowered file).
    fn in_import(&self, message: String) -> String {
        match self.item.unit {
            0 => message,
            i => match self.input.imports.get(i - 1) {
                Some(u) => format!("{message} (in imported file `{}`)", u.file),
                None => message,
            },
        }
    }

    /// Reports a construct the Program cannot express yet.
    pub(crate) fn unsupported(&mut self, what: impl std::fmt::Display, span: Span) {
        let d = Diagnostic::new(
            codes::UNSUPPORTED_CONSTRUCT,
            self.in_import(format!("{what} is not supported yet")),
            self.absolute(span),
        )
        .with_label("the engine cannot run this yet")
        .with_note("lowering to the engine's program format has no equivalent for it");
        self.diags.push(d);
    }
}

/// A `usize` index as a `u32` id (saturating; real programs are far smaller).
pub(crate) fn to_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// A `usize` index as a `u16` slot (saturating).
pub(crate) fn to_u16(i: usize) -> u16 {
    u16::try_from(i).unwrap_or(u16::MAX)
}

//! Checking one item: name resolution and static types, producing the
//! item's diagnostics (item-relative spans) and its [semantic
//! model](crate::model).
//!
//! The checker reads the rest of the file only through [`Env`], i.e. through
//! the *signatures* of other declarations (event schemas, stream output
//! schemas, function signatures, global types), never through their trees.
//! It never panics on any tree, including the `Error` nodes of parser
//! recovery, about which it stays silent (the parser already reported them).
//!
//! Submodules: `expr` types expressions and `call` calls, `stream` checks sources and
//! pipelines, `ops` the individual operators, `decl` the other
//! declarations, `pattern` named patterns.

mod bounds;
mod call;
mod decl;
mod enrich;
pub use enrich::{LATENCY_FIELD, STATUS_FIELD};
mod expr;
mod forecast;
pub(crate) mod group;
pub(crate) mod lambda;
mod map;
mod on_error;
mod ops;
mod pattern;
mod score;
mod stream;
pub(crate) mod window_pattern;

use std::sync::Arc;

use varpulis_syntax::ast::Item;
use varpulis_syntax::Span;

use crate::diagnostic::Diagnostic;
use crate::model::{ExprTable, ItemAnalysis, ItemModel};
use crate::resolve::Env;
use crate::types::{AliasBinding, Schema, Type};

/// Checks one item against the signatures visible through `env`.
pub fn check_item(env: &dyn Env, item: &Item) -> ItemAnalysis {
    let mut c = Checker::new(env);
    let model = match item {
        Item::Stream(s) => ItemModel::Stream(c.stream(s)),
        Item::Event(e) => ItemModel::Event(c.event(e)),
        Item::Fn(f) => ItemModel::Fn(c.function(f)),
        Item::Var(v) => ItemModel::Global(c.global(v)),
        Item::Assign(a) => {
            c.assign(a);
            ItemModel::Other
        }
        Item::Pattern(p) => ItemModel::Pattern(c.pattern(p)),
        Item::Connector(k) => ItemModel::Connector(c.connector(k)),
        Item::TypeAlias(t) => ItemModel::TypeAlias(c.resolve_type(&t.ty)),
        Item::Context(_) => ItemModel::Other,
        Item::Config(cfg) => {
            c.config(cfg);
            ItemModel::Other
        }
        // Imports are resolved per file (`db::imports`), not per item.
        Item::Import(_) => ItemModel::Other,
        Item::Stmt(s) => {
            c.top_level_stmt(s);
            ItemModel::Other
        }
        Item::Error(_) => ItemModel::Other,
    };
    ItemAnalysis {
        diagnostics: c.diags,
        exprs: c.exprs,
        model,
    }
}

/// The parameter types and the declared return type of a function, without
/// checking its body (so that recursive functions do not depend on
/// themselves). Diagnostics about the types are reported by [`check_item`].
pub fn fn_signature(
    env: &dyn Env,
    f: &varpulis_syntax::ast::FnDecl,
) -> (Vec<(String, Type)>, Option<Type>) {
    let mut c = Checker::new(env);
    let params = f
        .params
        .iter()
        .map(|p| (p.name.name.clone(), c.resolve_type(&p.ty)))
        .collect();
    let ret = f.ret.as_ref().map(|r| c.resolve_type(r));
    (params, ret)
}

/// Where an expression is evaluated, which decides how aggregate calls and
/// unknown names are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum AggMode {
    /// Aggregate functions are errors (except over Kleene aliases).
    #[default]
    Forbidden,
    /// Inside an `.aggregate(...)` item.
    Inside,
}

/// Names visible to an expression.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scope {
    /// The current event (stream expressions) or candidate event (step
    /// filters); `None` in functions and global initialisers.
    pub event: Option<Arc<Schema>>,
    /// Bound sequence aliases and join qualifiers.
    pub aliases: Vec<AliasBinding>,
    /// Aliases of this stream that are bound later (for "unbound alias").
    pub later_aliases: Vec<(String, Span)>,
    /// Function parameters and locals, innermost last.
    pub locals: Vec<(String, Type)>,
    /// Aggregate handling.
    pub agg: AggMode,
}

impl Scope {
    /// A scope over the fields of `event` and its aliases.
    pub fn over(event: Arc<Schema>) -> Scope {
        Scope {
            aliases: event.aliases.clone(),
            event: Some(event),
            ..Scope::default()
        }
    }

    fn alias(&self, name: &str) -> Option<&AliasBinding> {
        self.aliases.iter().rev().find(|a| a.name == name)
    }

    fn local(&self, name: &str) -> Option<&Type> {
        self.locals
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
    }
}

/// The state of checking one item.
pub(crate) struct Checker<'a> {
    pub env: &'a dyn Env,
    pub diags: Vec<Diagnostic>,
    pub exprs: ExprTable,
    /// Nesting depth of aggregate calls being typed.
    agg_depth: usize,
    /// Whether the `.aggregate` item being typed contained an aggregate call.
    saw_aggregate: bool,
    /// Undeclared event types already warned about in this item.
    warned_undeclared: Vec<String>,
}

impl<'a> Checker<'a> {
    fn new(env: &'a dyn Env) -> Checker<'a> {
        Checker {
            env,
            diags: Vec::new(),
            exprs: ExprTable::default(),
            agg_depth: 0,
            saw_aggregate: false,
            warned_undeclared: Vec::new(),
        }
    }

    /// Records a diagnostic.
    pub fn report(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }
}

#[cfg(test)]
mod tests;

//! Checking declarations other than streams and patterns: event types,
//! functions (typed parameters, imperative bodies, inferred or checked return
//! types), globals, assignments, connectors, legacy `config`, imports and
//! ignored top-level statements; and resolving written types.

use std::sync::Arc;

use varpulis_syntax::ast::{
    Arg, Assign, Block, ConfigConnector, ConfigDecl, ConfigRole, ConnectorDecl, EventDecl,
    ExprKind, FnDecl, Stmt, StmtKind, TypeExpr, TypeKind, VarDecl, VarKind,
};

use super::{Checker, Scope};
use crate::capabilities::{self, ParamKind};
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::model::ConnectorModel;
use crate::resolve::DeclKind;
use crate::suggest;
use crate::types::{builtin_type, Field, FnSig, Schema, Type};

const BUILTIN_TYPES: &[&str] = &["int", "float", "bool", "str", "timestamp", "duration"];

impl Checker<'_> {
    /// Resolves a written type.
    pub(crate) fn resolve_type(&mut self, t: &TypeExpr) -> Type {
        match &t.kind {
            TypeKind::Named(n) => {
                if let Some(b) = builtin_type(&n.name) {
                    return b;
                }
                match self.env.decl(&n.name) {
                    Some(DeclKind::TypeAlias) => self.env.type_alias(&n.name).unwrap_or(Type::Any),
                    // Event-typed values are opaque: reading the schema here
                    // would make signatures depend on each other (and cycle
                    // through fields such as `parent: Node`).
                    Some(DeclKind::Event) => Type::Event(Box::new(Schema::open(n.name.clone()))),
                    Some(DeclKind::Stream) => Type::Any,
                    _ => {
                        let decls = self
                            .env
                            .names(|k| matches!(k, DeclKind::Event | DeclKind::TypeAlias));
                        let help = suggest::did_you_mean(
                            &n.name,
                            BUILTIN_TYPES
                                .iter()
                                .copied()
                                .chain(decls.iter().map(String::as_str)),
                        )
                        .map(str::to_string);
                        let d = Diagnostic::new(
                            codes::UNKNOWN_TYPE,
                            format!("unknown type `{}`", n.name),
                            n.span,
                        )
                        .with_label("not a type");
                        let d = match help {
                            Some(h) => d.with_help(format!("did you mean `{h}`?")).with_suggestion(n.span, h),
                            None => d.with_note("types are `int`, `float`, `bool`, `str`, `timestamp`, `duration`, `[T]`, `{K: V}`, `T?` or a declared event type"),
                        };
                        self.report(d);
                        Type::Error
                    }
                }
            }
            TypeKind::Array(t) => Type::Array(Box::new(self.resolve_type(t))),
            TypeKind::Map(k, v) => Type::Map(
                Box::new(self.resolve_type(k)),
                Box::new(self.resolve_type(v)),
            ),
            TypeKind::Tuple(ts) => Type::Tuple(ts.iter().map(|t| self.resolve_type(t)).collect()),
            TypeKind::Stream(t) => {
                self.resolve_type(t);
                Type::Any
            }
            TypeKind::Optional(t) => self.resolve_type(t),
            TypeKind::Error => Type::Error,
        }
    }

    pub(super) fn event(&mut self, e: &EventDecl) -> Arc<Schema> {
        let mut schema = Schema::new(e.name.name.clone(), Vec::new());
        if let Some(base) = &e.extends {
            match self.env.decl(&base.name) {
                Some(DeclKind::Event) if self.env.is_cyclic(&e.name.name) => {
                    self.report(
                        Diagnostic::new(
                            codes::CYCLIC_DEFINITION,
                            format!("`{}` extends itself", e.name.name),
                            base.span,
                        )
                        .with_label("this parent inherits from the event being declared")
                        .with_help("remove `extends` from one of the types in the cycle"),
                    );
                }
                Some(DeclKind::Event) => {
                    if let Some(parent) = self.env.event_schema(&base.name) {
                        schema.fields.extend(parent.fields.iter().cloned());
                    }
                }
                Some(kind) => self.report(
                    Diagnostic::new(
                        codes::UNKNOWN_SOURCE,
                        format!("`{}` is {}, not an event type", base.name, kind.describe()),
                        base.span,
                    )
                    .with_label("cannot extend this"),
                ),
                None => {
                    let cands = self.env.names(|k| k == DeclKind::Event);
                    let help = suggest::did_you_mean(&base.name, cands.iter().map(String::as_str))
                        .map(str::to_string);
                    let d = Diagnostic::new(
                        codes::UNKNOWN_SOURCE,
                        format!("unknown event type `{}`", base.name),
                        base.span,
                    )
                    .with_label("not declared");
                    let d = match help {
                        Some(h) => d
                            .with_help(format!("did you mean `{h}`?"))
                            .with_suggestion(base.span, h),
                        None => {
                            d.with_help(format!("declare `event {}:` with its fields", base.name))
                        }
                    };
                    self.report(d);
                }
            }
        }
        let inherited = schema.fields.len();
        for f in &e.fields {
            let ty = self.resolve_type(&f.ty);
            let optional = matches!(f.ty.kind, TypeKind::Optional(_));
            if let Some((i, _)) = schema.field(&f.name.name) {
                let what = if i < inherited {
                    "inherited from the parent type"
                } else {
                    "declared earlier"
                };
                let mut d = Diagnostic::new(
                    codes::DUPLICATE_FIELD,
                    format!("field `{}` is declared twice", f.name.name),
                    f.name.span,
                )
                .with_label(format!("already {what}"))
                .with_help("rename or remove one of them");
                if i >= inherited {
                    if let Some(prev) = e.fields.iter().find(|g| g.name.name == f.name.name) {
                        d = d.with_secondary(prev.name.span, "first declared here");
                    }
                }
                self.report(d);
                continue;
            }
            schema.fields.push(Field {
                name: f.name.name.clone(),
                ty,
                optional,
            });
        }
        Arc::new(schema)
    }

    pub(super) fn function(&mut self, f: &FnDecl) -> FnSig {
        let mut scope = Scope::default();
        let mut params = Vec::new();
        for p in &f.params {
            let t = self.resolve_type(&p.ty);
            if params
                .iter()
                .any(|(n, _): &(String, Type)| *n == p.name.name)
            {
                self.report(
                    Diagnostic::new(
                        codes::DUPLICATE_DECLARATION,
                        format!("parameter `{}` is declared twice", p.name.name),
                        p.name.span,
                    )
                    .with_label("repeated parameter"),
                );
            }
            params.push((p.name.name.clone(), t.clone()));
            scope.locals.push((p.name.name.clone(), t));
        }
        let declared = f.ret.as_ref().map(|r| self.resolve_type(r));
        if declared.is_none() && self.env.is_cyclic(&f.name.name) {
            self.report(
                Diagnostic::new(
                    codes::CYCLIC_DEFINITION,
                    format!("`{}` is recursive but has no return type", f.name.name),
                    f.name.span,
                )
                .with_label("its return type would depend on itself")
                .with_help("declare the return type, e.g. `-> int`, after the parameters"),
            );
        }
        let mut returns: Vec<(Type, varpulis_syntax::Span)> = Vec::new();
        self.block(&f.body, &mut scope, &mut returns);
        // The value of the last expression statement is the result.
        if let Some(Stmt {
            kind: StmtKind::Expr(e),
            ..
        }) = f.body.stmts.last()
        {
            if let Some(info) = self.exprs.get(&e.span) {
                returns.push((info.ty.clone(), e.span));
            }
        }
        let ret = match &declared {
            Some(d) => {
                for (t, span) in &returns {
                    if !t.fits(d) {
                        self.report(
                            Diagnostic::new(
                                codes::RETURN_TYPE,
                                format!("`{}` returns `{d}` but this value is `{t}`", f.name.name),
                                *span,
                            )
                            .with_label(format!("this is `{t}`"))
                            .with_secondary(
                                f.ret.as_ref().map_or(f.name.span, |r| r.span),
                                format!("declared to return `{d}`"),
                            ),
                        );
                    }
                }
                d.clone()
            }
            None => returns
                .iter()
                .try_fold(Type::Null, |acc, (t, _)| acc.join(t))
                .map(|t| {
                    if t == Type::Null && returns.is_empty() {
                        Type::Null
                    } else {
                        t
                    }
                })
                .unwrap_or(Type::Any),
        };
        let emits = crate::resolve::walk::emitted_types(&f.body);
        FnSig { params, ret, emits }
    }

    fn block(
        &mut self,
        b: &Block,
        scope: &mut Scope,
        returns: &mut Vec<(Type, varpulis_syntax::Span)>,
    ) {
        let depth = scope.locals.len();
        for s in &b.stmts {
            self.stmt(s, scope, returns);
        }
        scope.locals.truncate(depth);
    }

    fn stmt(
        &mut self,
        s: &Stmt,
        scope: &mut Scope,
        returns: &mut Vec<(Type, varpulis_syntax::Span)>,
    ) {
        match &s.kind {
            StmtKind::Var(v) => {
                let t = self.var_value(v, scope);
                scope.locals.push((v.name.name.clone(), t));
            }
            StmtKind::Assign(a) => {
                let t = self.expr(&a.value, scope);
                match scope.locals.iter().rev().find(|(n, _)| *n == a.target.name) {
                    Some((_, lt)) => {
                        if !t.fits(lt) {
                            self.report(
                                Diagnostic::new(
                                    codes::DECLARED_TYPE,
                                    format!(
                                        "`{}` is `{lt}` but this value is `{t}`",
                                        a.target.name
                                    ),
                                    a.value.span,
                                )
                                .with_label(format!("this is `{t}`")),
                            );
                        }
                    }
                    None => match self.env.decl(&a.target.name) {
                        Some(DeclKind::Global(VarKind::Let | VarKind::Const)) => self.immutable(a),
                        _ => scope.locals.push((a.target.name.clone(), t)),
                    },
                }
            }
            StmtKind::If {
                branches,
                else_block,
            } => {
                for (c, body) in branches {
                    self.condition(c, scope, "an `if` condition");
                    self.block(body, scope, returns);
                }
                if let Some(b) = else_block {
                    self.block(b, scope, returns);
                }
            }
            StmtKind::For { var, iter, body } => {
                let t = self.expr(iter, scope);
                let elem = match t {
                    Type::Array(e) => *e,
                    Type::Str => Type::Str,
                    Type::Map(k, _) => *k,
                    t if t.is_unknown() => Type::Any,
                    t => {
                        self.report(
                            Diagnostic::new(
                                codes::MISMATCHED_TYPES,
                                format!("cannot iterate over a value of type `{t}`"),
                                iter.span,
                            )
                            .with_label(format!("this is `{t}`"))
                            .with_help("iterate over an array or a range such as `0..10`"),
                        );
                        Type::Error
                    }
                };
                scope.locals.push((var.name.clone(), elem));
                self.block(body, scope, returns);
                scope.locals.pop();
            }
            StmtKind::While { cond, body } => {
                self.condition(cond, scope, "a `while` condition");
                self.block(body, scope, returns);
            }
            StmtKind::Return(Some(e)) => {
                let t = self.expr(e, scope);
                returns.push((t, e.span));
            }
            StmtKind::Return(None) => returns.push((Type::Null, s.span)),
            StmtKind::Emit { ty, args } => {
                if !matches!(self.env.decl(&ty.name), Some(DeclKind::Event)) {
                    let cands = self.env.names(|k| k == DeclKind::Event);
                    let help = suggest::help(&ty.name, cands.iter().map(String::as_str));
                    self.report(
                        Diagnostic::new(
                            codes::UNKNOWN_TYPE,
                            format!("unknown event type `{}`", ty.name),
                            ty.span,
                        )
                        .with_label("not an event type")
                        .with_help_opt(help),
                    );
                }
                let types: Vec<Type> = args.iter().map(|a| self.expr(&a.value, scope)).collect();
                let args: Vec<&varpulis_syntax::ast::Arg> = args.iter().collect();
                self.fields_of_event(ty, &args, &types);
            }
            StmtKind::Expr(e) => {
                self.expr(e, scope);
            }
            StmtKind::Break | StmtKind::Continue => {}
        }
    }

    /// A lambda's braced body: statements with the lambda's locals.
    pub(super) fn lambda_block(&mut self, b: &Block, scope: &mut Scope) {
        let mut returns = Vec::new();
        self.block(b, scope, &mut returns);
    }

    fn var_value(&mut self, v: &VarDecl, scope: &Scope) -> Type {
        let t = self.expr(&v.value, scope);
        match &v.ty {
            Some(declared) => {
                let d = self.resolve_type(declared);
                if !t.fits(&d) {
                    self.report(
                        Diagnostic::new(
                            codes::DECLARED_TYPE,
                            format!("`{}` is declared `{d}` but its value is `{t}`", v.name.name),
                            v.value.span,
                        )
                        .with_label(format!("this is `{t}`"))
                        .with_secondary(declared.span, "declared type"),
                    );
                }
                d
            }
            None => t,
        }
    }

    pub(super) fn global(&mut self, v: &VarDecl) -> Type {
        if self.env.is_cyclic(&v.name.name) {
            self.report(
                Diagnostic::new(
                    codes::CYCLIC_DEFINITION,
                    format!("`{}` is initialised from itself", v.name.name),
                    v.name.span,
                )
                .with_label("its value depends on itself")
                .with_help("initialise it from literals or from variables declared before it"),
            );
            return Type::Error;
        }
        self.var_value(v, &Scope::default())
    }

    fn immutable(&mut self, a: &Assign) {
        self.report(
            Diagnostic::new(
                codes::ASSIGN_IMMUTABLE,
                format!("cannot assign to `{}`, which is not a `var`", a.target.name),
                a.target.span,
            )
            .with_label("immutable")
            .with_help(format!(
                "declare it with `var {} = ...` to make it mutable",
                a.target.name
            )),
        );
    }

    pub(super) fn assign(&mut self, a: &Assign) {
        // `x := e` on an undeclared name declares `x` with e's type, so e may not read `x`.
        if self.env.is_cyclic(&a.target.name) {
            self.report(
                Diagnostic::new(
                    codes::CYCLIC_DEFINITION,
                    format!("`{}` is assigned from itself", a.target.name),
                    a.target.span,
                )
                .with_label("its value depends on itself")
                .with_help(format!(
                    "declare it first with an initial value: `var {} = ...`",
                    a.target.name
                )),
            );
        }
        self.expr(&a.value, &Scope::default());
        if let Some(DeclKind::Global(VarKind::Let | VarKind::Const)) = self.env.decl(&a.target.name)
        {
            self.immutable(a);
        }
    }

    pub(super) fn connector(&mut self, k: &ConnectorDecl) -> ConnectorModel {
        self.connector_params(&k.kind.name, &k.params);
        ConnectorModel {
            kind: k.kind.name.clone(),
        }
    }

    /// Checks the parameters of a connector of `kind` (a `connector`
    /// declaration's or a `config:` entry's, whose `type:` is skipped).
    fn connector_params(&mut self, kind: &str, params: &[Arg]) {
        for p in params {
            let Some(name) = &p.name else {
                self.report(
                    Diagnostic::new(
                        codes::CONNECTOR_PARAM_KIND,
                        "connector parameters must be named",
                        p.value.span,
                    )
                    .with_label("no name")
                    .with_help("write `name: value`, e.g. `path: \"out.jsonl\"`"),
                );
                continue;
            };
            if let Some(known) = capabilities::connector_kind_params(kind) {
                if !known.contains(&name.name.as_str()) {
                    let mut d = Diagnostic::new(
                        codes::UNKNOWN_CONNECTOR_PARAM,
                        format!("`{kind}` connectors have no parameter `{}`", name.name),
                        name.span,
                    )
                    .with_label("unknown parameter");
                    d = match crate::suggest::did_you_mean(&name.name, known.iter().copied()) {
                        Some(s) => d.with_help(format!("did you mean `{s}`?")),
                        None => {
                            d.with_help(format!("`{kind}` connectors read: {}", known.join(", ")))
                        }
                    };
                    self.report(
                        d.with_note("the connector would refuse to start with this parameter"),
                    );
                }
            }
            let param_kind = capabilities::connector_param(&name.name);
            let pairs = capabilities::connector_map_param(&name.name);
            let ok = match (&p.value.kind, param_kind) {
                (ExprKind::Error, _) => true,
                (ExprKind::Map(entries), _) if pairs.is_some() => entries
                    .iter()
                    .all(|(_, v)| matches!(v.kind, ExprKind::Str(_) | ExprKind::Error)),
                (ExprKind::Str(_) | ExprKind::Ident(_), Some(ParamKind::Str)) => true,
                (ExprKind::Str(_) | ExprKind::Ident(_), Some(ParamKind::StrOrList)) => true,
                (ExprKind::Array(items), Some(ParamKind::StrOrList)) => {
                    items.iter().all(|i| matches!(i.kind, ExprKind::Str(_)))
                }
                (ExprKind::Int(_), Some(ParamKind::Int)) => true,
                (ExprKind::Bool(_), Some(ParamKind::Bool)) => true,
                (_, Some(_)) => false,
                (v, None) => is_config_value(v),
            };
            if !ok {
                let expected = match (param_kind, pairs) {
                    (_, Some(_)) => "a list of strings or a map of strings",
                    (Some(k), None) => k.describe(),
                    (None, None) => "a literal, an identifier or a list of those",
                };
                self.report(
                    Diagnostic::new(
                        codes::CONNECTOR_PARAM_KIND,
                        format!("connector parameter `{}` must be {expected}", name.name),
                        p.value.span,
                    )
                    .with_label("wrong kind of value")
                    .with_help(match (param_kind, pairs) {
                        (_, Some(sep)) => format!(
                            "write `{}: {{ Name: \"value\" }}` or `{}: [\"Name{sep}value\"]`",
                            name.name, name.name
                        ),
                        (Some(ParamKind::Int), _) => {
                            format!("write a whole number, e.g. `{}: 1883`", name.name)
                        }
                        (Some(ParamKind::Bool), _) => {
                            format!("write `{}: true` or `{}: false`", name.name, name.name)
                        }
                        _ => format!("write a string, e.g. `{}: \"...\"`", name.name),
                    }),
                );
            }
        }
    }

    /// A `config:` block: each `sources:`/`sinks:` entry is checked like a
    /// `connector` declaration of its `type:`; legacy flat entries (and the
    /// `config name { ... }` form) are warned about and ignored.
    pub(super) fn config(&mut self, c: &ConfigDecl) {
        if c.sections.is_empty() {
            let span = c.name.as_ref().map_or(c.span, |n| n.span);
            self.report(
                Diagnostic::new(
                    codes::CONFIG_DEPRECATED,
                    "`config` blocks are deprecated and ignored",
                    span,
                )
                .with_label("ignored")
                .with_help(
                    "declare connectors under `sources:` / `sinks:`, or with `connector`, and attach them with `.from(...)` / `.to(...)`",
                ),
            );
        } else if let Some(first) = c.entries.first() {
            let span = first.name.as_ref().map_or(first.span, |n| n.span);
            self.report(
                Diagnostic::new(
                    codes::CONFIG_DEPRECATED,
                    "`config` entries outside `sources:` and `sinks:` are deprecated and ignored",
                    span,
                )
                .with_label("ignored")
                .with_help("move connector settings into an entry under `sources:` or `sinks:`"),
            );
        }
        for section in &c.sections {
            for k in &section.connectors {
                self.config_connector(section.role, k);
            }
        }
    }

    fn config_connector(&mut self, role: ConfigRole, k: &ConfigConnector) {
        let Some(type_param) = k.type_param() else {
            self.report(
                Diagnostic::new(
                    codes::MISSING_CONNECTOR_TYPE,
                    format!("connector `{}` has no `type`", k.name.name),
                    k.name.span,
                )
                .with_label("no `type:` parameter")
                .with_help(format!(
                    "add its kind, e.g. `{}: {{ type: file, path: \"events.jsonl\" }}`; kinds: {}",
                    k.name.name,
                    capabilities::connector_kinds()
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            );
            return;
        };
        let Some(kind) = k.kind() else {
            if !matches!(type_param.value.kind, ExprKind::Error) {
                self.report(
                    Diagnostic::new(
                        codes::UNKNOWN_CONNECTOR_KIND,
                        "a connector's `type` must be a connector kind",
                        type_param.value.span,
                    )
                    .with_label("not a kind name")
                    .with_help(format!(
                        "write one of: {}",
                        capabilities::connector_kinds()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                );
            }
            return;
        };
        if capabilities::connector_kind_params(&kind.name).is_none() {
            let mut d = Diagnostic::new(
                codes::UNKNOWN_CONNECTOR_KIND,
                format!("unknown connector kind `{}`", kind.name),
                kind.span,
            )
            .with_label("not a connector kind");
            d = match suggest::did_you_mean(&kind.name, capabilities::connector_kinds()) {
                Some(s) => d.with_help(format!("did you mean `{s}`?")),
                None => d.with_help(format!(
                    "the kinds are: {}",
                    capabilities::connector_kinds()
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
            self.report(d);
            return;
        }
        if capabilities::is_lookup_only(&kind.name) {
            self.report(
                Diagnostic::new(
                    codes::CONNECTOR_WRONG_SECTION,
                    format!("`{}` connectors only answer `.enrich` lookups", kind.name),
                    kind.span,
                )
                .with_label("neither a source nor a sink")
                .with_help(format!(
                    "declare it with `connector {} = {} (...)` and use it in `.enrich({}, key: ...)`",
                    k.name.name, kind.name, k.name.name
                )),
            );
            return;
        }
        if role == ConfigRole::Sources && capabilities::is_sink_only(&kind.name) {
            self.report(
                Diagnostic::new(
                    codes::CONNECTOR_WRONG_SECTION,
                    format!("`{}` connectors cannot be sources", kind.name),
                    kind.span,
                )
                .with_label("a sink-only kind")
                .with_secondary(k.name.span, "declared under `sources:`")
                .with_help(format!("move `{}` under `sinks:`", k.name.name)),
            );
        }
        let params: Vec<Arg> = k
            .params
            .iter()
            .filter(|p| p.name.as_ref().is_none_or(|n| n.name != "type"))
            .cloned()
            .collect();
        self.connector_params(&kind.name, &params);
    }

    pub(super) fn top_level_stmt(&mut self, s: &Stmt) {
        self.report(
            Diagnostic::new(
                codes::TOP_LEVEL_STATEMENT,
                "top-level statements are ignored",
                s.span,
            )
            .with_label("this never runs")
            .with_help("move it into a `fn`, or remove it"),
        );
    }
}

fn is_config_value(v: &ExprKind) -> bool {
    match v {
        ExprKind::Str(_)
        | ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Bool(_)
        | ExprKind::Duration(_)
        | ExprKind::Ident(_)
        | ExprKind::Error => true,
        ExprKind::Array(items) => items.iter().all(|i| is_config_value(&i.kind)),
        _ => false,
    }
}

//! Imperative code: function bodies, global initialisers and connectors.
//!
//! A function's parameters are locals `0..n`; each `let`/`var` and loop
//! variable gets a fresh slot (slots are never reused, so nested scopes cannot
//! clobber each other). The body's value is the operand of `return` or the
//! last expression statement (also inside a trailing `if`), compiled as an
//! explicit [`Instr::Return`].

use std::sync::Arc;

use varpulis_program::{ConfigValue, ConnectorDef, FieldDef, Function, Global, Instr};
use varpulis_syntax::ast::{
    Arg, Block, Expr, ExprKind, Ident, Item, LambdaBody, Stmt, StmtKind, UnaryOp, VarDecl, VarKind,
};

use super::expr::{unparen, ChunkBuilder, Env, LoopCtx};
use super::{Decl, Lowerer};
use crate::capabilities::connector_map_param;
use crate::codes;

impl Lowerer<'_> {
    /// Lowers `let`/`var`/`const` initialisers in textual order.
    pub(super) fn lower_globals(&mut self) {
        for (i, node) in self.input.items.iter().enumerate() {
            match &node.item {
                Item::Var(v) if self.names.get(&v.name.name) == Some(&Decl::Global(i)) => {
                    let prev = self.enter_item(i);
                    let mut env = Env::default();
                    let init = self.chunk(&mut env, &v.value);
                    let id = super::to_u32(self.program.globals.len());
                    self.global_ids.insert(v.name.name.clone(), id);
                    self.program.globals.push(Global {
                        name: Arc::from(v.name.name.as_str()),
                        mutable: v.kind == VarKind::Var,
                        init,
                    });
                    self.leave_item(prev);
                }
                Item::Assign(a) => {
                    // The Program has no top-level statements: `x := e` runs
                    // as an extra initialiser, in order, that stores into `x`
                    // (or declares it, docs/LANGUAGE.md#variables-let-var-const) and keeps the value itself.
                    let prev = self.enter_item(i);
                    let mut env = Env::default();
                    let sid = self.span_id(a.span);
                    let mut b = ChunkBuilder::new(sid);
                    self.expr(&mut b, &mut env, &a.value);
                    let target = match self.global_ids.get(&a.target.name) {
                        Some(g) => Some(*g),
                        None if !self.names.contains_key(&a.target.name) => None,
                        None => {
                            self.unsupported("assigning a name that is not a variable", a.span);
                            None
                        }
                    };
                    let name = match target {
                        Some(g) => {
                            b.emit(Instr::Dup, sid);
                            b.emit(Instr::StoreGlobal(g), sid);
                            format!(":= {}", a.target.name)
                        }
                        None => {
                            let id = super::to_u32(self.program.globals.len());
                            self.global_ids.insert(a.target.name.clone(), id);
                            a.target.name.clone()
                        }
                    };
                    self.program.globals.push(Global {
                        name: Arc::from(name.as_str()),
                        mutable: true,
                        init: b.finish(),
                    });
                    self.leave_item(prev);
                }
                _ => {}
            }
        }
    }

    /// Gives every field named in an `emit T(...)` statement a slot in `T`
    /// (undeclared types grow; declared ones are checked when compiled).
    pub(super) fn register_emit_fields(&mut self) {
        fn walk(block: &Block, out: &mut Vec<(String, String)>) {
            for s in &block.stmts {
                match &s.kind {
                    StmtKind::Emit { ty, args } => {
                        for a in args {
                            let name = match (&a.name, &unparen(&a.value).kind) {
                                (Some(n), _) => n.name.clone(),
                                (None, ExprKind::Ident(id)) => id.name.clone(),
                                _ => continue,
                            };
                            out.push((ty.name.clone(), name));
                        }
                    }
                    StmtKind::If {
                        branches,
                        else_block,
                    } => {
                        for (_, b) in branches {
                            walk(b, out);
                        }
                        if let Some(b) = else_block {
                            walk(b, out);
                        }
                    }
                    StmtKind::For { body, .. } | StmtKind::While { body, .. } => walk(body, out),
                    _ => {}
                }
            }
        }
        let mut fields = Vec::new();
        for node in self.input.items {
            if let Item::Fn(f) = &node.item {
                walk(&f.body, &mut fields);
            }
        }
        for (ty, field) in fields {
            let schema = self.event_schema(&ty);
            // A declared type without the field is reported when the body
            // is compiled.
            let _ = self.field_slot(schema, &field);
        }
    }

    /// A top-level `let`/`const` bound to a lambda, lowered as a function.
    fn lower_lambda_global(&mut self, i: usize, v: &VarDecl) {
        let Some((params, body)) = global_lambda(v) else {
            return;
        };
        let prev = self.enter_item(i);
        let sid = self.span_id(v.span);
        let mut b = ChunkBuilder::new(sid);
        let mut env = Env::default();
        let mut fields = Vec::new();
        for p in params {
            let slot = b.new_local();
            env.declare(&p.name, slot);
            fields.push(FieldDef {
                name: Arc::from(p.name.as_str()),
                ty: varpulis_program::Type::Any,
            });
        }
        match body {
            LambdaBody::Expr(e) => {
                self.expr(&mut b, &mut env, e);
                b.emit(Instr::Return, sid);
            }
            LambdaBody::Block(block) => self.block(&mut b, &mut env, block, true),
        }
        self.program.functions.push(Function {
            name: Arc::from(v.name.name.as_str()),
            params: fields,
            chunk: b.finish(),
            span: sid,
        });
        self.leave_item(prev);
    }

    /// Lowers every `fn` body (and lambdas bound by top-level `let`), in
    /// declaration order, which is the order of their ids.
    pub(super) fn lower_functions(&mut self) {
        for (i, node) in self.input.items.iter().enumerate() {
            if let Item::Var(v) = &node.item {
                if self.names.get(&v.name.name) == Some(&Decl::Fn(i)) {
                    self.lower_lambda_global(i, v);
                }
                continue;
            }
            let Item::Fn(f) = &node.item else {
                continue;
            };
            if self.names.get(&f.name.name) != Some(&Decl::Fn(i)) {
                continue;
            }
            let prev = self.enter_item(i);
            let sid = self.span_id(f.span);
            let mut b = ChunkBuilder::new(sid);
            let mut env = Env::default();
            let mut params = Vec::new();
            for p in &f.params {
                let slot = b.new_local();
                env.declare(&p.name.name, slot);
                let ty = self.lower_type(&p.ty, 0);
                params.push(FieldDef {
                    name: Arc::from(p.name.name.as_str()),
                    ty,
                });
            }
            self.block(&mut b, &mut env, &f.body, true);
            self.program.functions.push(Function {
                name: Arc::from(f.name.name.as_str()),
                params,
                chunk: b.finish(),
                span: sid,
            });
            self.leave_item(prev);
        }
    }

    /// Compiles a block; in tail position its value is returned.
    fn block(&mut self, b: &mut ChunkBuilder, env: &mut Env, block: &Block, tail: bool) {
        env.scopes.push(Vec::new());
        let n = block.stmts.len();
        for (i, s) in block.stmts.iter().enumerate() {
            self.stmt(b, env, s, tail && i + 1 == n);
        }
        env.scopes.pop();
    }

    fn stmt(&mut self, b: &mut ChunkBuilder, env: &mut Env, s: &Stmt, tail: bool) {
        let sid = self.span_id(s.span);
        match &s.kind {
            StmtKind::Var(v) => {
                self.expr(b, env, &v.value);
                let slot = b.new_local();
                b.emit(Instr::StoreLocal(slot), sid);
                env.declare(&v.name.name, slot);
            }
            StmtKind::Assign(a) => {
                self.expr(b, env, &a.value);
                if let Some(l) = env.local(&a.target.name) {
                    b.emit(Instr::StoreLocal(l), sid);
                } else if let Some(g) = self.global_ids.get(&a.target.name).copied() {
                    b.emit(Instr::StoreGlobal(g), sid);
                } else {
                    // Assigning an unknown name creates a variable (docs/LANGUAGE.md#variables-let-var-const).
                    let slot = b.new_local();
                    b.emit(Instr::StoreLocal(slot), sid);
                    env.declare(&a.target.name, slot);
                }
            }
            StmtKind::If {
                branches,
                else_block,
            } => {
                let mut ends = Vec::new();
                for (cond, body) in branches {
                    self.expr(b, env, cond);
                    let jf = b.emit(Instr::JumpIfNotTrue(0), sid);
                    self.block(b, env, body, tail);
                    ends.push(b.emit(Instr::Jump(0), sid));
                    let next = b.here();
                    b.patch(jf, next);
                }
                if let Some(e) = else_block {
                    self.block(b, env, e, tail);
                }
                let end = b.here();
                for j in ends {
                    b.patch(j, end);
                }
            }
            StmtKind::For { var, iter, body } => {
                self.expr(b, env, iter);
                let it = b.new_local();
                let idx = b.new_local();
                let v = b.new_local();
                b.emit(Instr::StoreLocal(it), sid);
                self.push_const(b, varpulis_program::Value::Int(0), sid);
                b.emit(Instr::StoreLocal(idx), sid);
                let top = b.here();
                let next = b.emit(
                    Instr::ForNext {
                        iter: it,
                        index: idx,
                        var: v,
                        exit: 0,
                    },
                    sid,
                );
                env.scopes.push(vec![(var.name.clone(), v)]);
                self.loop_body(b, env, body, top, sid);
                env.scopes.pop();
                let exit = b.here();
                b.patch(next, exit);
                self.close_loop(b, env, exit);
            }
            StmtKind::While { cond, body } => {
                let top = b.here();
                self.expr(b, env, cond);
                let jf = b.emit(Instr::JumpIfNotTrue(0), sid);
                self.loop_body(b, env, body, top, sid);
                let exit = b.here();
                b.patch(jf, exit);
                self.close_loop(b, env, exit);
            }
            StmtKind::Break => match env.loops.last_mut() {
                Some(l) => {
                    let j = b.emit(Instr::Jump(0), sid);
                    l.breaks.push(j);
                }
                None => self.error(
                    codes::UNSUPPORTED_CONSTRUCT,
                    "`break` outside a loop",
                    s.span,
                ),
            },
            StmtKind::Continue => match env.loops.last().map(|l| l.continue_target) {
                Some(t) => {
                    b.emit(Instr::Jump(t), sid);
                }
                None => self.error(
                    codes::UNSUPPORTED_CONSTRUCT,
                    "`continue` outside a loop",
                    s.span,
                ),
            },
            StmtKind::Return(value) => {
                match value {
                    Some(e) => self.expr(b, env, e),
                    None => self.push_absent(b, sid),
                }
                b.emit(Instr::Return, sid);
            }
            StmtKind::Emit { ty, args } => self.emit_event(b, env, &ty.name, args, s.span),
            StmtKind::Expr(e) => {
                self.expr(b, env, e);
                let instr = if tail { Instr::Return } else { Instr::Pop };
                b.emit(instr, sid);
            }
        }
    }

    /// The body of a loop: `continue` jumps to `top`, the loop jumps back.
    fn loop_body(
        &mut self,
        b: &mut ChunkBuilder,
        env: &mut Env,
        body: &Block,
        top: u32,
        sid: varpulis_program::SpanId,
    ) {
        env.loops.push(LoopCtx {
            continue_target: top,
            breaks: Vec::new(),
        });
        self.block(b, env, body, false);
        b.emit(Instr::Jump(top), sid);
    }

    /// Points the `break`s of the innermost loop at `exit`.
    fn close_loop(&mut self, b: &mut ChunkBuilder, env: &mut Env, exit: u32) {
        if let Some(l) = env.loops.pop() {
            for j in l.breaks {
                b.patch(j, exit);
            }
        }
    }

    /// `emit T(f: e, ...)`: pushes one value per field of `T` (absent for the
    /// fields not given) and appends the event.
    fn emit_event(
        &mut self,
        b: &mut ChunkBuilder,
        env: &mut Env,
        ty: &str,
        args: &[Arg],
        span: varpulis_syntax::Span,
    ) {
        let sid = self.span_id(span);
        let schema = self.event_schema(ty);
        let mut named: Vec<(&str, &Expr)> = Vec::new();
        for a in args {
            match &a.name {
                Some(n) => named.push((n.name.as_str(), &a.value)),
                None => match &unparen(&a.value).kind {
                    ExprKind::Ident(id) => named.push((id.name.as_str(), &a.value)),
                    _ => self.unsupported("an unnamed `emit` field", a.span),
                },
            }
        }
        // Give every named field a slot (open schemas grow), then push the
        // values in slot order.
        for (n, e) in &named {
            if self.field_slot(schema, n).is_none() {
                self.error(
                    codes::UNKNOWN_FIELD,
                    format!("event type `{ty}` has no field `{n}`"),
                    e.span,
                );
            }
        }
        let fields = self.field_names(schema);
        for f in &fields {
            match named.iter().find(|(n, _)| n == f) {
                Some((_, e)) => self.expr(b, env, e),
                None => self.push_absent(b, sid),
            }
        }
        b.emit(Instr::EmitEvent(schema), sid);
    }

    /// Lowers every `connector` declaration and every connector of a
    /// `config:` block, in declaration order (the order of the connector
    /// ids): a config entry becomes the same [`ConnectorDef`] as the
    /// equivalent `connector` declaration.
    pub(super) fn lower_connectors(&mut self) {
        for (i, node) in self.input.items.iter().enumerate() {
            match &node.item {
                Item::Connector(c) => {
                    if self.names.get(&c.name.name) != Some(&Decl::Connector(i)) {
                        continue;
                    }
                    let prev = self.enter_item(i);
                    let params = self.config_params(&c.params);
                    let span = self.span_id(c.span);
                    self.program.connectors.push(ConnectorDef {
                        name: Arc::from(c.name.name.as_str()),
                        kind: Arc::from(c.kind.name.as_str()),
                        params,
                        span,
                    });
                    self.leave_item(prev);
                }
                Item::Config(cfg) => {
                    let prev = self.enter_item(i);
                    for k in cfg.sections.iter().flat_map(|s| &s.connectors) {
                        let first = self.names.get(&k.name.name) == Some(&Decl::Connector(i))
                            && !self
                                .program
                                .connectors
                                .iter()
                                .any(|d| *d.name == *k.name.name);
                        if !first {
                            continue;
                        }
                        let kind = k.kind().map_or_else(String::new, |id| id.name);
                        let params: Vec<Arg> = k
                            .params
                            .iter()
                            .filter(|p| p.name.as_ref().is_none_or(|n| n.name != "type"))
                            .cloned()
                            .collect();
                        let params = self.config_params(&params);
                        let span = self.span_id(k.span);
                        self.program.connectors.push(ConnectorDef {
                            name: Arc::from(k.name.name.as_str()),
                            kind: Arc::from(kind.as_str()),
                            params,
                            span,
                        });
                    }
                    self.leave_item(prev);
                }
                _ => {}
            }
        }
    }

    /// Named arguments as config values (positional ones are reported).
    pub(crate) fn config_params(&mut self, args: &[Arg]) -> Vec<(Arc<str>, ConfigValue)> {
        let mut out = Vec::new();
        for a in args {
            let Some(name) = &a.name else {
                self.error(
                    codes::CONNECTOR_PARAM_KIND,
                    "connector parameters must be named",
                    a.span,
                );
                continue;
            };
            let value = match (&unparen(&a.value).kind, connector_map_param(&name.name)) {
                (ExprKind::Map(entries), Some(sep)) => self.config_pairs(entries, sep),
                _ => self.config_value(&a.value),
            };
            if let Some(v) = value {
                out.push((Arc::from(name.name.as_str()), v));
            }
        }
        out
    }

    /// A map `{ key: "value" }` as the list `["key<sep>value"]` the
    /// connectors read (`headers`, `properties`).
    fn config_pairs(&mut self, entries: &[(Ident, Expr)], sep: &str) -> Option<ConfigValue> {
        let mut out = Vec::new();
        for (key, value) in entries {
            let ExprKind::Str(v) = &unparen(value).kind else {
                return self.bad_config(value);
            };
            out.push(ConfigValue::Str(Arc::from(format!("{}{sep}{v}", key.name))));
        }
        Some(ConfigValue::Array(out))
    }

    /// A literal, identifier or array of them as a config value.
    pub(crate) fn config_value(&mut self, e: &Expr) -> Option<ConfigValue> {
        Some(match &unparen(e).kind {
            ExprKind::Str(s) => ConfigValue::Str(Arc::from(s.as_str())),
            ExprKind::Int(i) => ConfigValue::Int(*i),
            ExprKind::Float(f) => ConfigValue::Float(f.0),
            ExprKind::Bool(b) => ConfigValue::Bool(*b),
            ExprKind::Duration(d) => ConfigValue::Duration(i64::try_from(*d).unwrap_or(i64::MAX)),
            ExprKind::Ident(id) => ConfigValue::Ident(Arc::from(id.name.as_str())),
            ExprKind::Unary {
                op: UnaryOp::Neg,
                expr,
            } => match self.config_value(expr)? {
                ConfigValue::Int(i) => ConfigValue::Int(i.wrapping_neg()),
                ConfigValue::Float(f) => ConfigValue::Float(-f),
                _ => return self.bad_config(e),
            },
            ExprKind::Array(items) => {
                let mut vs = Vec::new();
                for it in items {
                    vs.push(self.config_value(it)?);
                }
                ConfigValue::Array(vs)
            }
            _ => return self.bad_config(e),
        })
    }

    fn bad_config(&mut self, e: &Expr) -> Option<ConfigValue> {
        self.error(
            codes::CONNECTOR_PARAM_KIND,
            "connector parameters must be literals, names or arrays of them",
            e.span,
        );
        None
    }

    /// The event type emitted by a function's `emit` statements, if exactly
    /// one (the layout of events leaving `.process(f(...))`).
    pub(crate) fn emitted_types(&self, f: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let Some(Decl::Fn(i)) = self.names.get(f).copied() else {
            return out;
        };
        let Some(Item::Fn(decl)) = self.input.items.get(i).map(|n| &n.item) else {
            return out;
        };
        fn walk(block: &Block, out: &mut Vec<String>) {
            for s in &block.stmts {
                match &s.kind {
                    StmtKind::Emit { ty, .. } if !out.contains(&ty.name) => {
                        out.push(ty.name.clone());
                    }
                    StmtKind::If {
                        branches,
                        else_block,
                    } => {
                        for (_, b) in branches {
                            walk(b, out);
                        }
                        if let Some(b) = else_block {
                            walk(b, out);
                        }
                    }
                    StmtKind::For { body, .. } | StmtKind::While { body, .. } => walk(body, out),
                    _ => {}
                }
            }
        }
        walk(&decl.body, &mut out);
        out
    }
}

/// The parameters and body of a top-level `let`/`const` bound to a lambda.
pub(crate) fn global_lambda(v: &VarDecl) -> Option<(&[Ident], &LambdaBody)> {
    if v.kind == VarKind::Var {
        return None;
    }
    match &unparen(&v.value).kind {
        ExprKind::Lambda { params, body } => Some((params, body)),
        _ => None,
    }
}

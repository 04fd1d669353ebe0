//! Expression code generation: VPL expressions → stack-machine bytecode
//! ([`Chunk`]).
//!
//! Every expression pushes exactly one (possibly absent) value. Each
//! instruction records the span id of the expression that produced it, so a
//! runtime error points at `file:line:col`. Fields are read by slot
//! ([`Instr::LoadField`]); sequence aliases by alias index and slot
//! ([`Instr::LoadAlias`]); `and`/`or` short-circuit with
//! [`Instr::AndThen`]/[`Instr::OrElse`] + [`Instr::ToBool`].

use varpulis_program::{AggCall, AggFunc, Builtin, Chunk, Instr, SchemaId, SpanId, Value};
use varpulis_syntax::ast::{Arg, BinaryOp, Expr, ExprKind, Ident, UnaryOp};
use varpulis_syntax::Span;

use super::{to_u16, to_u32, Lowerer};
use crate::codes;
use crate::model::Resolution;

/// Builds one [`Chunk`]: instructions with their spans, an interned constant
/// pool and the local-slot count.
#[derive(Debug, Default)]
pub struct ChunkBuilder {
    code: Vec<Instr>,
    consts: Vec<Value>,
    spans: Vec<SpanId>,
    span: SpanId,
    locals: u16,
}

impl ChunkBuilder {
    /// An empty chunk for the expression or body at `span`.
    pub fn new(span: SpanId) -> ChunkBuilder {
        ChunkBuilder {
            span,
            ..ChunkBuilder::default()
        }
    }

    /// Appends an instruction; returns its index.
    pub fn emit(&mut self, instr: Instr, span: SpanId) -> usize {
        self.code.push(instr);
        self.spans.push(span);
        self.code.len() - 1
    }

    /// The index of the next instruction (a jump target).
    pub fn here(&self) -> u32 {
        to_u32(self.code.len())
    }

    /// The index of a constant, added on first use.
    pub fn konst(&mut self, v: Value) -> u32 {
        let same = |c: &Value| match (c, &v) {
            // Floats compare by bits so that `0.0` and `-0.0` stay distinct.
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (a, b) => a == b,
        };
        match self.consts.iter().position(same) {
            Some(i) => to_u32(i),
            None => {
                self.consts.push(v);
                to_u32(self.consts.len() - 1)
            }
        }
    }

    /// Points the jump at instruction `at` to `target`.
    pub fn patch(&mut self, at: usize, target: u32) {
        if let Some(instr) = self.code.get_mut(at) {
            match instr {
                Instr::Jump(t) | Instr::JumpIfNotTrue(t) | Instr::AndThen(t) | Instr::OrElse(t) => {
                    *t = target;
                }
                Instr::ForNext { exit, .. } => *exit = target,
                _ => {}
            }
        }
    }

    /// Reserves local slots up to `n`.
    pub fn reserve_locals(&mut self, n: u16) {
        self.locals = self.locals.max(n);
    }

    /// A fresh local slot.
    pub fn new_local(&mut self) -> u16 {
        let l = self.locals;
        self.locals = self.locals.saturating_add(1);
        l
    }

    /// The finished chunk.
    pub fn finish(self) -> Chunk {
        Chunk {
            code: self.code,
            consts: self.consts,
            spans: self.spans,
            span: self.span,
            locals: self.locals,
        }
    }
}

/// A sequence alias visible to an expression.
#[derive(Clone, Debug)]
pub(crate) struct ScopeAlias {
    pub name: String,
    /// Operand of [`Instr::LoadAlias`].
    pub index: u16,
    /// Layout of the bound events.
    pub schema: SchemaId,
}

/// A loop being compiled: where `continue` goes and the `break` jumps to
/// patch at its exit.
#[derive(Debug)]
pub(crate) struct LoopCtx {
    pub continue_target: u32,
    pub breaks: Vec<usize>,
}

/// The names visible to an expression.
#[derive(Debug, Default)]
pub(crate) struct Env {
    /// Layout of the current event; `None` in functions and globals.
    pub layout: Option<SchemaId>,
    /// Names that denote the current event itself (its type name, the alias
    /// of a plain source, a join branch): `n.f` reads field `f`.
    pub self_names: Vec<String>,
    /// Bound sequence aliases.
    pub aliases: Vec<ScopeAlias>,
    /// Alias indexes read by the compiled code (to detect self-reference).
    pub used_aliases: Vec<u16>,
    /// Local variables, innermost scope last.
    pub scopes: Vec<Vec<(String, u16)>>,
    /// Aggregate calls collected while compiling an `.aggregate` item.
    pub agg: Option<Vec<AggCall>>,
    /// Enclosing loops.
    pub loops: Vec<LoopCtx>,
}

impl Env {
    /// An environment over the events of `layout`.
    pub fn on(layout: SchemaId) -> Env {
        Env {
            layout: Some(layout),
            ..Env::default()
        }
    }

    /// The slot of a local variable.
    pub fn local(&self, name: &str) -> Option<u16> {
        self.scopes
            .iter()
            .rev()
            .find_map(|s| s.iter().rev().find(|(n, _)| n == name).map(|(_, l)| *l))
    }

    /// Declares a local in the innermost scope.
    pub fn declare(&mut self, name: &str, slot: u16) {
        if self.scopes.is_empty() {
            self.scopes.push(Vec::new());
        }
        if let Some(s) = self.scopes.last_mut() {
            s.push((name.to_string(), slot));
        }
    }

    fn alias(&self, name: &str) -> Option<&ScopeAlias> {
        self.aliases.iter().rev().find(|a| a.name == name)
    }
}

/// Aggregate functions by name.
pub(crate) fn agg_func(name: &str) -> Option<AggFunc> {
    Some(match name {
        "count" => AggFunc::Count,
        "sum" => AggFunc::Sum,
        "avg" => AggFunc::Avg,
        "min" => AggFunc::Min,
        "max" => AggFunc::Max,
        "stddev" => AggFunc::Stddev,
        "variance" => AggFunc::Variance,
        "first" => AggFunc::First,
        "last" => AggFunc::Last,
        "count_distinct" => AggFunc::CountDistinct,
        "ema" => AggFunc::Ema,
        "percentile" => AggFunc::Percentile,
        "median" => AggFunc::Median,
        "collect" => AggFunc::Collect,
        _ => return None,
    })
}

/// Strips parentheses.
pub(crate) fn unparen(mut e: &Expr) -> &Expr {
    while let ExprKind::Paren(inner) = &e.kind {
        e = inner;
    }
    e
}

impl Lowerer<'_> {
    /// Compiles `e` as a whole chunk in `env`.
    pub(crate) fn chunk(&mut self, env: &mut Env, e: &Expr) -> Chunk {
        let sid = self.span_id(e.span);
        let mut b = ChunkBuilder::new(sid);
        let base = env.scopes.iter().map(Vec::len).sum::<usize>();
        b.reserve_locals(to_u16(base));
        self.expr(&mut b, env, e);
        b.finish()
    }

    /// Compiles `e`, pushing exactly one value.
    pub(crate) fn expr(&mut self, b: &mut ChunkBuilder, env: &mut Env, e: &Expr) {
        let sid = self.span_id(e.span);
        match &e.kind {
            ExprKind::Int(i) => self.push_const(b, Value::Int(*i), sid),
            ExprKind::Float(f) => self.push_const(b, Value::Float(f.0), sid),
            ExprKind::Str(s) => self.push_const(b, Value::str(s), sid),
            ExprKind::Bool(v) => self.push_const(b, Value::Bool(*v), sid),
            ExprKind::Null => self.push_const(b, Value::Null, sid),
            ExprKind::Duration(ns) => {
                let v = i64::try_from(*ns).unwrap_or(i64::MAX);
                self.push_const(b, Value::Duration(v), sid);
            }
            ExprKind::Timestamp(ns) => self.push_const(b, Value::Timestamp(*ns), sid),
            ExprKind::Array(items) => {
                for it in items {
                    self.expr(b, env, it);
                }
                b.emit(Instr::MakeArray(to_u32(items.len())), sid);
            }
            ExprKind::Map(entries) => {
                for (k, v) in entries {
                    let ks = self.span_id(k.span);
                    self.push_const(b, Value::str(&k.name), ks);
                    self.expr(b, env, v);
                }
                b.emit(Instr::MakeMap(to_u32(entries.len())), sid);
            }
            ExprKind::Ident(id) => self.ident(b, env, id, e.span),
            ExprKind::Member {
                base,
                name,
                optional,
            } => self.member(b, env, e, base, name, *optional),
            ExprKind::Index { base, index } => {
                self.expr(b, env, base);
                self.expr(b, env, index);
                b.emit(Instr::Index, sid);
            }
            ExprKind::Slice { base, start, end } => {
                self.expr(b, env, base);
                if let Some(s) = start {
                    self.expr(b, env, s);
                }
                if let Some(x) = end {
                    self.expr(b, env, x);
                }
                let instr = Instr::Slice {
                    start: start.is_some(),
                    end: end.is_some(),
                };
                b.emit(instr, sid);
            }
            ExprKind::Call { callee, args } => self.call(b, env, e, callee, args),
            ExprKind::Unary { op, expr } => {
                self.expr(b, env, expr);
                let instr = match op {
                    UnaryOp::Neg => Instr::Neg,
                    UnaryOp::Not => Instr::Not,
                    UnaryOp::BitNot => Instr::BitNot,
                };
                b.emit(instr, sid);
            }
            ExprKind::Binary { op, lhs, rhs } => self.binary(b, env, *op, lhs, rhs, e.span),
            ExprKind::If {
                cond,
                then_branch,
                else_branch,
            } => {
                self.expr(b, env, cond);
                let jf = b.emit(Instr::JumpIfNotTrue(0), sid);
                self.expr(b, env, then_branch);
                let jend = b.emit(Instr::Jump(0), sid);
                let else_at = b.here();
                b.patch(jf, else_at);
                self.expr(b, env, else_branch);
                let end = b.here();
                b.patch(jend, end);
            }
            ExprKind::Range {
                start,
                end,
                inclusive,
            } => {
                self.expr(b, env, start);
                self.expr(b, env, end);
                b.emit(
                    Instr::Range {
                        inclusive: *inclusive,
                    },
                    sid,
                );
            }
            ExprKind::Paren(inner) => self.expr(b, env, inner),
            ExprKind::Lambda { .. } => {
                self.unsupported("a lambda", e.span);
                self.push_absent(b, sid);
            }
            ExprKind::Error => {
                self.error(
                    codes::UNSUPPORTED_CONSTRUCT,
                    "expression failed to parse",
                    e.span,
                );
                self.push_absent(b, sid);
            }
        }
    }

    /// Pushes a constant.
    pub(crate) fn push_const(&mut self, b: &mut ChunkBuilder, v: Value, sid: SpanId) {
        let k = b.konst(v);
        b.emit(Instr::Const(k), sid);
    }

    /// Pushes "no value": a fresh local that is never stored (the Program has
    /// no dedicated instruction for it).
    pub(crate) fn push_absent(&mut self, b: &mut ChunkBuilder, sid: SpanId) {
        let l = b.new_local();
        b.emit(Instr::LoadLocal(l), sid);
    }

    fn binary(
        &mut self,
        b: &mut ChunkBuilder,
        env: &mut Env,
        op: BinaryOp,
        lhs: &Expr,
        rhs: &Expr,
        span: Span,
    ) {
        let sid = self.span_id(span);
        if matches!(op, BinaryOp::And | BinaryOp::Or) {
            self.expr(b, env, lhs);
            let instr = if op == BinaryOp::And {
                Instr::AndThen(0)
            } else {
                Instr::OrElse(0)
            };
            let j = b.emit(instr, sid);
            self.expr(b, env, rhs);
            b.emit(Instr::ToBool, sid);
            let end = b.here();
            b.patch(j, end);
            return;
        }
        let instr = match op {
            BinaryOp::Eq => Instr::Eq,
            BinaryOp::Ne => Instr::Ne,
            BinaryOp::Lt => Instr::Lt,
            BinaryOp::Le => Instr::Le,
            BinaryOp::Gt => Instr::Gt,
            BinaryOp::Ge => Instr::Ge,
            BinaryOp::In => Instr::In,
            BinaryOp::NotIn => Instr::NotIn,
            BinaryOp::BitOr => Instr::BitOr,
            BinaryOp::BitXor => Instr::BitXor,
            BinaryOp::BitAnd => Instr::BitAnd,
            BinaryOp::Shl => Instr::Shl,
            BinaryOp::Shr => Instr::Shr,
            BinaryOp::Add => Instr::Add,
            BinaryOp::Sub => Instr::Sub,
            BinaryOp::Mul => Instr::Mul,
            BinaryOp::Div => Instr::Div,
            BinaryOp::Rem => Instr::Rem,
            BinaryOp::Pow => Instr::Pow,
            BinaryOp::Is => {
                self.unsupported("the `is` operator", span);
                self.push_absent(b, sid);
                return;
            }
            BinaryOp::And | BinaryOp::Or => return,
        };
        self.expr(b, env, lhs);
        self.expr(b, env, rhs);
        b.emit(instr, sid);
    }

    /// A bare name: local, field, global (or the event time).
    fn ident(&mut self, b: &mut ChunkBuilder, env: &mut Env, id: &Ident, span: Span) {
        let sid = self.span_id(span);
        let name = id.name.as_str();
        let handled = match self.resolution(span) {
            Some(Resolution::Global { name }) => match self.global_ids.get(name).copied() {
                Some(g) => {
                    b.emit(Instr::LoadGlobal(g), sid);
                    true
                }
                None => false,
            },
            Some(Resolution::Field { name, .. }) => self.load_field(b, env, name, span),
            Some(Resolution::DynamicField { name }) => {
                if !self.load_field(b, env, name, span) && env.layout.is_some() {
                    // A field of an open input behind a closed layout (a
                    // merge or join branch): read it by name from the overflow.
                    let k = b.konst(Value::str(name));
                    b.emit(Instr::LoadExtra(k), sid);
                }
                env.layout.is_some()
            }
            Some(Resolution::Alias { .. }) => {
                self.unsupported("a sequence alias used as a value", span);
                self.push_absent(b, sid);
                true
            }
            _ => false,
        };
        if handled {
            return;
        }
        if let Some(l) = env.local(name) {
            b.emit(Instr::LoadLocal(l), sid);
            return;
        }
        if let Some(layout) = env.layout {
            if let Some(slot) = self.existing_slot(layout, name) {
                b.emit(Instr::LoadField(slot), sid);
                return;
            }
        }
        if env.alias(name).is_some() {
            self.unsupported("a sequence alias used as a value", span);
            self.push_absent(b, sid);
            return;
        }
        if let Some(g) = self.global_ids.get(name).copied() {
            b.emit(Instr::LoadGlobal(g), sid);
            return;
        }
        if self.fn_ids.contains_key(name) {
            self.unsupported("a function used as a value", span);
            self.push_absent(b, sid);
            return;
        }
        if self.load_field(b, env, name, span) {
            return;
        }
        self.error(
            codes::UNKNOWN_NAME,
            format!("cannot find `{name}` when lowering"),
            span,
        );
        self.push_absent(b, sid);
    }

    /// Pushes field `name` of the current event: by slot (appending one to an
    /// open layout), else the event time for `timestamp`. Returns false when
    /// there is no current event or no such field.
    fn load_field(&mut self, b: &mut ChunkBuilder, env: &mut Env, name: &str, span: Span) -> bool {
        let sid = self.span_id(span);
        let Some(layout) = env.layout else {
            return false;
        };
        if name == "timestamp" && self.existing_slot(layout, name).is_none() {
            b.emit(Instr::LoadTime, sid);
            return true;
        }
        if let Some(slot) = self.field_slot(layout, name) {
            b.emit(Instr::LoadField(slot), sid);
            return true;
        }
        false
    }

    /// `base.name` / `base?.name`: an alias field, a prefixed join field, a
    /// field of the current event named by its type, or a map member.
    fn member(
        &mut self,
        b: &mut ChunkBuilder,
        env: &mut Env,
        e: &Expr,
        base: &Expr,
        name: &Ident,
        optional: bool,
    ) {
        let sid = self.span_id(e.span);
        // `first(ks).f` / `last(ks).f` on a sequence alias.
        if let ExprKind::Call { callee, args } = &unparen(base).kind {
            if let (ExprKind::Ident(f), [arg]) = (&unparen(callee).kind, args.as_slice()) {
                let end = match f.name.as_str() {
                    "first" => Some(true),
                    "last" => Some(false),
                    _ => None,
                };
                if let (Some(first), false, Some((a, None))) = (
                    end,
                    self.fn_ids.contains_key(&f.name),
                    alias_operand(env, &arg.value),
                ) {
                    if let Some(slot) = self.field_slot(a.schema, &name.name) {
                        env.used_aliases.push(a.index);
                        let i = if first {
                            Instr::AliasFirst(a.index, slot)
                        } else {
                            Instr::LoadAlias(a.index, slot)
                        };
                        b.emit(i, sid);
                        return;
                    }
                }
            }
        }
        if let ExprKind::Ident(bid) = &unparen(base).kind {
            let shadowed = env.local(&bid.name).is_some();
            if !shadowed {
                if let Some(a) = env.alias(&bid.name).cloned() {
                    match self.field_slot(a.schema, &name.name) {
                        Some(slot) => {
                            env.used_aliases.push(a.index);
                            b.emit(Instr::LoadAlias(a.index, slot), sid);
                        }
                        None => {
                            self.error(
                                codes::UNKNOWN_FIELD,
                                format!("`{}` has no field `{}`", bid.name, name.name),
                                name.span,
                            );
                            self.push_absent(b, sid);
                        }
                    }
                    return;
                }
                if let Some(layout) = env.layout {
                    let prefixed = format!("{}.{}", bid.name, name.name);
                    if let Some(slot) = self.existing_slot(layout, &prefixed) {
                        b.emit(Instr::LoadField(slot), sid);
                        return;
                    }
                    let is_self =
                        env.self_names.contains(&bid.name) || self.schema_name(layout) == bid.name;
                    if is_self && self.load_field(b, env, &name.name, e.span) {
                        return;
                    }
                }
            }
        }
        self.expr(b, env, base);
        let k = b.konst(Value::str(&name.name));
        let instr = if optional {
            Instr::MemberOpt(k)
        } else {
            Instr::Member(k)
        };
        b.emit(instr, sid);
    }

    /// Compiles arguments in order (named ones by position); returns argc.
    fn args(&mut self, b: &mut ChunkBuilder, env: &mut Env, args: &[Arg]) -> usize {
        for a in args {
            self.expr(b, env, &a.value);
        }
        args.len()
    }

    fn call(&mut self, b: &mut ChunkBuilder, env: &mut Env, e: &Expr, callee: &Expr, args: &[Arg]) {
        let sid = self.span_id(e.span);
        if self.alias_call(b, env, e, callee, args) {
            return;
        }
        if env.agg.is_none() {
            if let Some(Resolution::Aggregate { name }) = self.resolution(e.span) {
                // `sum(ks.price)` over a Kleene alias: the Program cannot
                // read every bound event, and the scalar `sum` would be wrong.
                self.unsupported(
                    format!("the aggregate `{name}` over a Kleene alias"),
                    e.span,
                );
                self.push_absent(b, sid);
                return;
            }
        }
        match &unparen(callee).kind {
            ExprKind::Ident(id) => {
                let name = id.name.as_str();
                if env.agg.is_some() {
                    if let Some(func) = agg_func(name) {
                        self.agg_call(b, env, e, func, args);
                        return;
                    }
                }
                if let Some(f) = self.fn_ids.get(name).copied() {
                    let n = self.args(b, env, args);
                    let argc = self.argc(n, e.span);
                    b.emit(Instr::Call(f, argc), sid);
                    return;
                }
                if let Some(bi) = Builtin::from_name(name) {
                    let n = self.args(b, env, args);
                    let argc = self.argc(n, e.span);
                    b.emit(Instr::CallBuiltin(bi, argc), sid);
                    return;
                }
                if agg_func(name).is_some() {
                    self.unsupported(
                        format!("the aggregate `{name}` outside `.aggregate`"),
                        e.span,
                    );
                } else {
                    self.error(
                        codes::UNKNOWN_FUNCTION,
                        format!("cannot find function `{name}` when lowering"),
                        id.span,
                    );
                }
                self.push_absent(b, sid);
            }
            ExprKind::Member { base, name, .. } => {
                if let Some(am) = self.is_array_method(&name.name, args) {
                    self.array_method(b, env, e, base, am, args);
                    return;
                }
                // Method-style call: `x.len()` is `len(x)`.
                let m = name.name.as_str();
                let target = self.fn_ids.get(m).copied();
                let builtin = Builtin::from_name(m);
                if target.is_none() && builtin.is_none() {
                    self.unsupported(format!("the method `.{m}()`"), e.span);
                    self.push_absent(b, sid);
                    return;
                }
                self.expr(b, env, base);
                let n = self.args(b, env, args) + 1;
                let argc = self.argc(n, e.span);
                match (target, builtin) {
                    (Some(f), _) => b.emit(Instr::Call(f, argc), sid),
                    (None, Some(bi)) => b.emit(Instr::CallBuiltin(bi, argc), sid),
                    (None, None) => return,
                };
            }
            _ => {
                self.unsupported("calling a computed value", e.span);
                self.push_absent(b, sid);
            }
        }
    }

    /// A built-in over a sequence alias (outside `.aggregate`): `len(ks)` /
    /// `count(ks)` → `AliasLen`; `first(ks.f)` → `AliasFirst`; `last(ks.f)`
    /// → `LoadAlias`; `sum`/`avg`/`min`/`max`/`count` of `ks.f` over
    /// `AliasValues` (an array of the field over every bound event).
    /// Returns false when the call is not of that form.
    fn alias_call(
        &mut self,
        b: &mut ChunkBuilder,
        env: &mut Env,
        e: &Expr,
        callee: &Expr,
        args: &[Arg],
    ) -> bool {
        let ExprKind::Ident(f) = &unparen(callee).kind else {
            return false;
        };
        if env.agg.is_some() || self.fn_ids.contains_key(&f.name) {
            return false;
        }
        let [arg] = args else {
            return false;
        };
        let Some((alias, field)) = alias_operand(env, &arg.value) else {
            return false;
        };
        let slot = match field {
            Some(name) => match self.field_slot(alias.schema, &name.name) {
                Some(s) => Some(s),
                // Let the member access report the unknown field.
                None => return false,
            },
            None => None,
        };
        let sid = self.span_id(e.span);
        let a = alias.index;
        let code: &[Instr] = match (f.name.as_str(), slot) {
            ("len" | "count", None) => &[Instr::AliasLen(a)],
            ("first", Some(s)) => &[Instr::AliasFirst(a, s)],
            ("last", Some(s)) => &[Instr::LoadAlias(a, s)],
            ("count", Some(s)) => &[
                Instr::AliasValues(a, s),
                Instr::CallBuiltin(Builtin::Len, 1),
            ],
            ("sum", Some(s)) => &[
                Instr::AliasValues(a, s),
                Instr::CallBuiltin(Builtin::Sum, 1),
            ],
            ("avg", Some(s)) => &[
                Instr::AliasValues(a, s),
                Instr::CallBuiltin(Builtin::Avg, 1),
            ],
            ("min", Some(s)) => &[
                Instr::AliasValues(a, s),
                Instr::CallBuiltin(Builtin::Sort, 1),
                Instr::CallBuiltin(Builtin::First, 1),
            ],
            ("max", Some(s)) => &[
                Instr::AliasValues(a, s),
                Instr::CallBuiltin(Builtin::Sort, 1),
                Instr::CallBuiltin(Builtin::Last, 1),
            ],
            _ => return false,
        };
        env.used_aliases.push(a);
        for i in code {
            b.emit(*i, sid);
        }
        true
    }

    fn argc(&mut self, n: usize, span: Span) -> u8 {
        match u8::try_from(n) {
            Ok(v) => v,
            Err(_) => {
                self.unsupported("a call with more than 255 arguments", span);
                u8::MAX
            }
        }
    }

    /// An aggregate call inside an `.aggregate` item: records the call (once
    /// per distinct function, argument and parameter) and pushes its result.
    fn agg_call(
        &mut self,
        b: &mut ChunkBuilder,
        env: &mut Env,
        e: &Expr,
        func: AggFunc,
        args: &[Arg],
    ) {
        let sid = self.span_id(e.span);
        let mut func = func;
        let mut arg_expr = args.first().map(|a| &a.value);
        // `count(distinct(f))` is `count_distinct(f)`.
        if func == AggFunc::Count {
            if let Some(ExprKind::Call {
                callee,
                args: inner,
            }) = arg_expr.map(|a| &unparen(a).kind)
            {
                if matches!(&callee.kind, ExprKind::Ident(i) if i.name == "distinct") {
                    func = AggFunc::CountDistinct;
                    arg_expr = inner.first().map(|a| &a.value);
                } else {
                    arg_expr = None;
                }
            } else {
                arg_expr = None;
            }
        }
        let arg = arg_expr.map(|a| {
            let mut inner = Env {
                layout: env.layout,
                self_names: env.self_names.clone(),
                aliases: env.aliases.clone(),
                ..Env::default()
            };
            self.chunk(&mut inner, a)
        });
        let param = match (func, args.get(1)) {
            (AggFunc::Ema | AggFunc::Percentile, Some(p)) => match &unparen(&p.value).kind {
                ExprKind::Int(i) => Some(*i as f64),
                ExprKind::Float(f) => Some(f.0),
                _ => {
                    self.unsupported("a non-literal aggregate parameter", p.span);
                    None
                }
            },
            _ => None,
        };
        let call = AggCall { func, arg, param };
        let Some(calls) = env.agg.as_mut() else {
            return;
        };
        let same = |c: &AggCall| {
            c.func == call.func
                && c.param.map(f64::to_bits) == call.param.map(f64::to_bits)
                && c.arg.as_ref().map(|a| (&a.code, &a.consts))
                    == call.arg.as_ref().map(|a| (&a.code, &a.consts))
        };
        let index = match calls.iter().position(same) {
            Some(i) => i,
            None => {
                calls.push(call);
                calls.len() - 1
            }
        };
        b.emit(Instr::LoadAgg(to_u16(index)), sid);
    }
}

/// `a` or `a.f` where `a` is a sequence alias not shadowed by a local: the
/// alias and the field name.
fn alias_operand<'e>(env: &Env, e: &'e Expr) -> Option<(ScopeAlias, Option<&'e Ident>)> {
    match &unparen(e).kind {
        ExprKind::Ident(x) if env.local(&x.name).is_none() => {
            env.alias(&x.name).map(|a| (a.clone(), None))
        }
        ExprKind::Member { base, name, .. } => match &unparen(base).kind {
            ExprKind::Ident(x) if env.local(&x.name).is_none() => {
                env.alias(&x.name).map(|a| (a.clone(), Some(name)))
            }
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(build: impl FnOnce(&mut ChunkBuilder)) -> Chunk {
        let mut b = ChunkBuilder::new(SpanId::NONE);
        build(&mut b);
        b.finish()
    }

    #[test]
    fn constants_are_interned_and_floats_compare_by_bits() {
        let c = check(|b| {
            assert_eq!(b.konst(Value::Int(1)), 0);
            assert_eq!(b.konst(Value::Float(0.0)), 1);
            assert_eq!(b.konst(Value::Float(-0.0)), 2);
            assert_eq!(b.konst(Value::Int(1)), 0);
        });
        assert_eq!(c.consts.len(), 3);
    }

    #[test]
    fn jumps_are_patched_and_every_instruction_has_a_span() {
        let c = check(|b| {
            let j = b.emit(Instr::JumpIfNotTrue(0), SpanId(7));
            b.emit(Instr::Pop, SpanId(8));
            let end = b.here();
            b.patch(j, end);
            assert_eq!(b.new_local(), 0);
        });
        assert_eq!(c.code, vec![Instr::JumpIfNotTrue(2), Instr::Pop]);
        assert_eq!(c.spans, vec![SpanId(7), SpanId(8)]);
        assert_eq!(c.locals, 1);
    }
}

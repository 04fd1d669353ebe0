//! The bytecode interpreter.
//!
//! [`Vm::eval`] runs a [`Chunk`] against an evaluation context (the current
//! event, aggregate results, the virtual clock) and returns its value, or
//! `None` for "no value". It never panics on data or malformed bytecode:
//! failures yield no value and are recorded as [`RuntimeError`]s. Recursion
//! depth and the number of instructions per evaluation are bounded, so a
//! runaway `while` cannot hang the engine.

pub mod arith;
pub mod builtins;

use crate::error::{RuntimeError, RuntimeErrorKind as K};
use crate::sequence::Bindings;
use std::sync::Arc;
use varpulis_program::{Chunk, Event, Instr, Program, SpanId, Value, ValueMap};

/// Deepest user-function call nesting.
pub const MAX_DEPTH: usize = 128;
/// Instructions one top-level evaluation may execute.
pub const INSTRUCTION_BUDGET: u64 = 50_000_000;
/// Error reports kept (the counter keeps counting past it).
pub const MAX_REPORTS: usize = 1_000;

/// What an expression can see.
#[derive(Clone, Copy, Debug)]
pub struct EvalCx<'a> {
    /// The current event (`LoadField`, `LoadExtra`, `LoadTime`).
    pub event: Option<&'a Event>,
    /// Aggregate results (`LoadAgg`).
    pub aggs: &'a [Option<Value>],
    /// The virtual clock for `now()` (event time being processed).
    pub now: i64,
    /// Sequence bindings (`LoadAlias`, `AliasLen`, `AliasFirst`,
    /// `AliasValues`): a run's while its step filters are evaluated, a
    /// match's for the operators after the sequence. `None` elsewhere
    /// (aliases are then unbound).
    pub bindings: Option<&'a Bindings>,
}

impl<'a> EvalCx<'a> {
    /// A context with only an event.
    pub fn event(event: &'a Event, now: i64) -> EvalCx<'a> {
        EvalCx {
            event: Some(event),
            aggs: &[],
            now,
            bindings: None,
        }
    }
}

/// Interpreter state reused across evaluations (no allocation per event once
/// warm), plus the runtime error counter and reports.
#[derive(Debug, Default)]
pub struct Vm {
    stack: Vec<Option<Value>>,
    locals: Vec<Option<Value>>,
    depth: usize,
    budget: u64,
    /// Total runtime errors so far.
    pub error_count: u64,
    /// Runtime errors so far by stream (few streams, rare errors: a short list).
    pub errors_by_stream: Vec<(Arc<str>, u64)>,
    /// The first [`MAX_REPORTS`] errors since the host last took them.
    pub reports: Vec<RuntimeError>,
    /// Stream name attached to reports.
    pub stream: Option<Arc<str>>,
    /// Events created by `emit T(...)` during `.process()`.
    pub emitted: Vec<Event>,
    /// When set, every error reported is also pushed here, uncapped, with
    /// the event the failing expression read (the engine sets it around one
    /// operator call of a stream with `.on_error`, [`crate::ops::on_error`]).
    pub captured: Option<Vec<(RuntimeError, Option<Event>)>>,
}

/// Control transfer out of a chunk.
enum Exit {
    /// Fell off the end or `Return`: the value.
    Value(Option<Value>),
    /// Budget or depth exhausted: unwind everything.
    Abort,
}

impl Vm {
    /// A fresh interpreter.
    pub fn new() -> Vm {
        Vm::default()
    }

    /// Evaluates a chunk as a top-level expression.
    pub fn eval(
        &mut self,
        program: &Program,
        globals: &mut [Option<Value>],
        chunk: &Chunk,
        cx: &EvalCx<'_>,
    ) -> Option<Value> {
        // A plain field read (a partition key, an aggregate's argument, a
        // projected field) needs none of the machine: the same value as
        // running `LoadField`, without the set-up around it.
        if let Some(s) = chunk.plain_field() {
            return cx.event.and_then(|e| e.get(s)).cloned();
        }
        // The same for an aggregate's output item that is only its result.
        if let [Instr::LoadAgg(i)] | [Instr::LoadAgg(i), Instr::Return] = chunk.code.as_slice() {
            return cx.aggs.get(usize::from(*i)).cloned().flatten();
        }
        self.budget = INSTRUCTION_BUDGET;
        self.depth = 0;
        let base = self.locals.len();
        self.locals.resize(base + usize::from(chunk.locals), None);
        let captured_before = self.captured.as_ref().map(Vec::len);
        let r = match self.run(program, globals, chunk, cx, base) {
            Exit::Value(v) => v,
            Exit::Abort => None,
        };
        self.locals.truncate(base);
        // Errors of this evaluation read this event (a window's group
        // operators evaluate other events than the one that closed it).
        if let (Some(from), Some(c), Some(ev)) = (captured_before, &mut self.captured, cx.event) {
            for (_, event) in c.iter_mut().skip(from) {
                event.get_or_insert_with(|| ev.clone());
            }
        }
        r
    }

    /// Evaluates a chunk whose first locals are given (`.pattern`'s test
    /// reads the window's events from local 0).
    pub fn eval_with_locals(
        &mut self,
        program: &Program,
        globals: &mut [Option<Value>],
        chunk: &Chunk,
        cx: &EvalCx<'_>,
        args: Vec<Value>,
    ) -> Option<Value> {
        self.budget = INSTRUCTION_BUDGET;
        self.depth = 0;
        let base = self.locals.len();
        let n = usize::from(chunk.locals).max(args.len());
        self.locals.resize(base + n, None);
        for (slot, v) in self.locals[base..].iter_mut().zip(args) {
            *slot = Some(v);
        }
        let r = match self.run(program, globals, chunk, cx, base) {
            Exit::Value(v) => v,
            Exit::Abort => None,
        };
        self.locals.truncate(base);
        r
    }

    /// Evaluates a chunk as a condition: only `true` passes (docs/LANGUAGE.md#where-and-filter).
    pub fn test(
        &mut self,
        program: &Program,
        globals: &mut [Option<Value>],
        chunk: &Chunk,
        cx: &EvalCx<'_>,
    ) -> bool {
        matches!(
            self.eval(program, globals, chunk, cx),
            Some(Value::Bool(true))
        )
    }

    /// Records a runtime error.
    pub fn report(&mut self, kind: K, span: SpanId, time: i64, detail: String) {
        self.error_count += 1;
        if let Some(stream) = &self.stream {
            match self.errors_by_stream.iter_mut().find(|(s, _)| s == stream) {
                Some((_, n)) => *n += 1,
                None => self.errors_by_stream.push((stream.clone(), 1)),
            }
        }
        let error = RuntimeError {
            kind,
            span,
            stream: self.stream.clone(),
            time,
            detail,
        };
        if let Some(c) = &mut self.captured {
            c.push((error.clone(), None));
        }
        if self.reports.len() < MAX_REPORTS {
            self.reports.push(error);
        }
    }

    #[allow(clippy::too_many_lines)] // The dispatch loop is clearest as one match.
    fn run(
        &mut self,
        program: &Program,
        globals: &mut [Option<Value>],
        chunk: &Chunk,
        cx: &EvalCx<'_>,
        locals_base: usize,
    ) -> Exit {
        let stack_base = self.stack.len();
        let time = cx.event.map_or(cx.now, |e| e.time);
        let mut pc = 0usize;
        let code = &chunk.code;
        macro_rules! fail {
            ($kind:expr, $detail:expr) => {{
                self.report($kind, chunk.span_at(pc.saturating_sub(1)), time, $detail);
            }};
        }
        macro_rules! pop {
            () => {
                match self.stack.len() > stack_base {
                    true => self.stack.pop().flatten(),
                    false => {
                        fail!(K::Internal, "stack underflow".into());
                        self.stack.truncate(stack_base);
                        return Exit::Value(None);
                    }
                }
            };
        }
        while let Some(&instr) = code.get(pc) {
            pc += 1;
            if self.budget == 0 {
                fail!(K::Limit, "instruction budget exhausted".into());
                self.stack.truncate(stack_base);
                return Exit::Abort;
            }
            self.budget -= 1;
            match instr {
                Instr::Const(i) => {
                    let v = chunk.consts.get(i as usize).cloned();
                    if v.is_none() {
                        fail!(K::Internal, format!("constant {i} out of range"));
                    }
                    self.stack.push(v);
                }
                Instr::LoadField(s) => {
                    self.stack.push(cx.event.and_then(|e| e.get(s)).cloned());
                }
                Instr::LoadExtra(i) => {
                    let name = chunk.consts.get(i as usize).and_then(Value::as_str);
                    let v = match (cx.event, name) {
                        (Some(e), Some(n)) => e.get_extra(n).cloned(),
                        _ => None,
                    };
                    self.stack.push(v);
                }
                Instr::LoadAlias(a, s) => {
                    let v = cx.bindings.and_then(|b| b.get(a)).and_then(|e| e.get(s));
                    self.stack.push(v.cloned());
                }
                Instr::AliasFirst(a, s) => {
                    let v = cx.bindings.and_then(|b| b.first(a)).and_then(|e| e.get(s));
                    self.stack.push(v.cloned());
                }
                Instr::AliasLen(a) => {
                    let n = cx.bindings.map_or(0, |b| b.count(a));
                    self.stack
                        .push(Some(Value::Int(i64::try_from(n).unwrap_or(i64::MAX))));
                }
                Instr::AliasValues(a, s) => {
                    let mut v: Vec<Value> = match cx.bindings {
                        Some(b) => b.iter_rev(a).filter_map(|e| e.get(s).cloned()).collect(),
                        None => Vec::new(),
                    };
                    v.reverse();
                    self.stack.push(Some(Value::Array(Arc::new(v))));
                }
                Instr::LoadTime => self.stack.push(Some(Value::Timestamp(time))),
                Instr::LoadLocal(l) => {
                    let v = self.locals.get(locals_base + usize::from(l)).cloned();
                    match v {
                        Some(v) => self.stack.push(v),
                        None => {
                            fail!(K::Internal, format!("local {l} out of range"));
                            self.stack.push(None);
                        }
                    }
                }
                Instr::StoreLocal(l) => {
                    let v = pop!();
                    match self.locals.get_mut(locals_base + usize::from(l)) {
                        Some(slot) => *slot = v,
                        None => fail!(K::Internal, format!("local {l} out of range")),
                    }
                }
                Instr::AppendLocal(l) => {
                    let v = pop!();
                    match (v, self.locals.get_mut(locals_base + usize::from(l))) {
                        (None, Some(_)) => {}
                        (Some(v), Some(Some(Value::Array(a)))) => Arc::make_mut(a).push(v),
                        (Some(v), Some(slot)) => *slot = Some(Value::array(vec![v])),
                        (_, None) => fail!(K::Internal, format!("local {l} out of range")),
                    }
                }
                Instr::LoadGlobal(g) => match globals.get(g as usize) {
                    Some(v) => self.stack.push(v.clone()),
                    None => {
                        fail!(K::Internal, format!("global {g} out of range"));
                        self.stack.push(None);
                    }
                },
                Instr::StoreGlobal(g) => {
                    let v = pop!();
                    match globals.get_mut(g as usize) {
                        Some(slot) => *slot = v,
                        None => fail!(K::Internal, format!("global {g} out of range")),
                    }
                }
                Instr::LoadAgg(i) => self
                    .stack
                    .push(cx.aggs.get(usize::from(i)).cloned().flatten()),
                Instr::Pop => {
                    pop!();
                }
                Instr::Dup => {
                    let v = pop!();
                    self.stack.push(v.clone());
                    self.stack.push(v);
                }
                Instr::Neg | Instr::BitNot | Instr::Not => {
                    let a = pop!();
                    let r = match (instr, a) {
                        (_, None) => None,
                        (Instr::Not, Some(Value::Bool(b))) => Some(Value::Bool(!b)),
                        (Instr::Not, Some(_)) => None,
                        (Instr::BitNot, Some(Value::Int(i))) => Some(Value::Int(!i)),
                        (Instr::Neg, Some(v)) => match arith::neg(&v) {
                            Ok(v) => Some(v),
                            Err(k) => {
                                fail!(k, format!("-{}", v.type_name()));
                                None
                            }
                        },
                        (_, Some(v)) => {
                            fail!(K::TypeMismatch, format!("~{}", v.type_name()));
                            None
                        }
                    };
                    self.stack.push(r);
                }
                Instr::Add
                | Instr::Sub
                | Instr::Mul
                | Instr::Div
                | Instr::Rem
                | Instr::Pow
                | Instr::BitAnd
                | Instr::BitOr
                | Instr::BitXor
                | Instr::Shl
                | Instr::Shr
                | Instr::Eq
                | Instr::Ne
                | Instr::Lt
                | Instr::Le
                | Instr::Gt
                | Instr::Ge
                | Instr::In
                | Instr::NotIn => {
                    let b = pop!();
                    let a = pop!();
                    let r = match (a, b) {
                        (Some(a), Some(b)) => match arith::binary(instr, &a, &b) {
                            Ok(v) => Some(v),
                            Err(k) => {
                                fail!(
                                    k,
                                    format!("{} {:?} {}", a.type_name(), instr, b.type_name())
                                );
                                None
                            }
                        },
                        _ => None,
                    };
                    self.stack.push(r);
                }
                Instr::AndThen(t) | Instr::OrElse(t) => {
                    let top = pop!();
                    let short = matches!(instr, Instr::OrElse(_));
                    match top {
                        Some(Value::Bool(b)) if b == short => {
                            self.stack.push(Some(Value::Bool(b)));
                            pc = t as usize;
                        }
                        Some(Value::Bool(_)) => {}
                        _ => {
                            self.stack.push(None);
                            pc = t as usize;
                        }
                    }
                }
                Instr::ToBool => {
                    let v = pop!();
                    self.stack.push(v.filter(|v| matches!(v, Value::Bool(_))));
                }
                Instr::Jump(t) => pc = t as usize,
                Instr::JumpIfNotTrue(t) => {
                    if !matches!(pop!(), Some(Value::Bool(true))) {
                        pc = t as usize;
                    }
                }
                Instr::Return => {
                    let v = pop!();
                    self.stack.truncate(stack_base);
                    return Exit::Value(v);
                }
                Instr::ForNext {
                    iter,
                    index,
                    var,
                    exit,
                } => {
                    let base = locals_base;
                    let pos = match self.locals.get(base + usize::from(index)) {
                        Some(Some(Value::Int(i))) => *i,
                        _ => 0,
                    };
                    let item = match self.locals.get(base + usize::from(iter)) {
                        Some(Some(Value::Array(a))) => {
                            usize::try_from(pos).ok().and_then(|p| a.get(p).cloned())
                        }
                        Some(Some(Value::Str(s))) => usize::try_from(pos)
                            .ok()
                            .and_then(|p| s.chars().nth(p))
                            .map(|c| Value::str(c.to_string())),
                        Some(Some(Value::Map(m))) => usize::try_from(pos)
                            .ok()
                            .and_then(|p| m.keys().nth(p))
                            .map(|k| Value::Str(k.clone())),
                        Some(Some(v)) => {
                            let t = v.type_name();
                            fail!(K::TypeMismatch, format!("cannot iterate over {t}"));
                            None
                        }
                        _ => None,
                    };
                    match item {
                        Some(v) => {
                            if let Some(slot) = self.locals.get_mut(base + usize::from(var)) {
                                *slot = Some(v);
                            }
                            if let Some(slot) = self.locals.get_mut(base + usize::from(index)) {
                                *slot = Some(Value::Int(pos + 1));
                            }
                        }
                        None => pc = exit as usize,
                    }
                }
                Instr::MakeArray(n) => {
                    let n = n as usize;
                    if self.stack.len() < stack_base + n {
                        fail!(K::Internal, "stack underflow".into());
                        self.stack.truncate(stack_base);
                        return Exit::Value(None);
                    }
                    let items: Vec<Value> =
                        self.stack.drain(self.stack.len() - n..).flatten().collect();
                    self.stack.push(Some(Value::array(items)));
                }
                Instr::MakeMap(n) => {
                    let n = (n as usize).saturating_mul(2);
                    if self.stack.len() < stack_base + n {
                        fail!(K::Internal, "stack underflow".into());
                        self.stack.truncate(stack_base);
                        return Exit::Value(None);
                    }
                    let items: Vec<Option<Value>> =
                        self.stack.drain(self.stack.len() - n..).collect();
                    let mut map = ValueMap::new();
                    let mut ok = true;
                    for pair in items.chunks(2) {
                        match pair {
                            [Some(Value::Str(k)), Some(v)] => {
                                map.insert(k.clone(), v.clone());
                            }
                            [Some(Value::Str(_)), None] => {}
                            _ => ok = false,
                        }
                    }
                    if !ok {
                        fail!(K::TypeMismatch, "map keys must be strings".into());
                    }
                    self.stack.push(Some(Value::map(map)));
                }
                Instr::Index => {
                    let i = pop!();
                    let a = pop!();
                    let r = match (a, i) {
                        (Some(a), Some(i)) => match arith::index(&a, &i) {
                            Ok(v) => Some(v),
                            Err(k) => {
                                fail!(k, format!("{}[{}]", a.type_name(), i));
                                None
                            }
                        },
                        _ => None,
                    };
                    self.stack.push(r);
                }
                Instr::Slice { start, end } => {
                    let e = if end { Some(pop!()) } else { None };
                    let s = if start { Some(pop!()) } else { None };
                    let a = pop!();
                    let r = match (a, s, e) {
                        (None, ..) | (_, Some(None), _) | (_, _, Some(None)) => None,
                        (Some(a), s, e) => {
                            match arith::slice(
                                &a,
                                s.as_ref().and_then(Option::as_ref),
                                e.as_ref().and_then(Option::as_ref),
                            ) {
                                Ok(v) => Some(v),
                                Err(k) => {
                                    fail!(k, format!("slice of {}", a.type_name()));
                                    None
                                }
                            }
                        }
                    };
                    self.stack.push(r);
                }
                Instr::Member(i) | Instr::MemberOpt(i) => {
                    let m = pop!();
                    let name = chunk.consts.get(i as usize).and_then(Value::as_str);
                    let opt = matches!(instr, Instr::MemberOpt(_));
                    let r = match (m, name) {
                        (_, None) => {
                            fail!(K::Internal, format!("member name constant {i}"));
                            None
                        }
                        (Some(Value::Map(m)), Some(n)) => m.get(n).cloned(),
                        (None | Some(Value::Null), _) if opt => Some(Value::Null),
                        (None, _) => None,
                        (Some(v), Some(n)) => {
                            fail!(K::TypeMismatch, format!("{}.{n}", v.type_name()));
                            None
                        }
                    };
                    self.stack.push(r);
                }
                Instr::Range { inclusive } => {
                    let b = pop!();
                    let a = pop!();
                    let r = match (a, b) {
                        (Some(Value::Int(a)), Some(Value::Int(b))) => {
                            match builtins::range(a, b, inclusive) {
                                Ok(v) => Some(v),
                                Err(k) => {
                                    fail!(k, "range too large".into());
                                    None
                                }
                            }
                        }
                        (Some(a), Some(b)) => {
                            fail!(
                                K::TypeMismatch,
                                format!("{}..{}", a.type_name(), b.type_name())
                            );
                            None
                        }
                        _ => None,
                    };
                    self.stack.push(r);
                }
                Instr::CallBuiltin(b, argc) => {
                    let n = usize::from(argc);
                    if self.stack.len() < stack_base + n {
                        fail!(K::Internal, "stack underflow".into());
                        self.stack.truncate(stack_base);
                        return Exit::Value(None);
                    }
                    let at = self.stack.len() - n;
                    let r = match builtins::call(b, &self.stack[at..], cx.now) {
                        Ok(v) => v,
                        Err(k) => {
                            fail!(k, format!("in {}()", b.name()));
                            None
                        }
                    };
                    self.stack.truncate(at);
                    self.stack.push(r);
                }
                Instr::Call(f, argc) => {
                    let n = usize::from(argc);
                    if self.stack.len() < stack_base + n {
                        fail!(K::Internal, "stack underflow".into());
                        self.stack.truncate(stack_base);
                        return Exit::Value(None);
                    }
                    let Some(func) = program.functions.get(f as usize) else {
                        fail!(K::Internal, format!("function {f} out of range"));
                        self.stack.truncate(self.stack.len() - n);
                        self.stack.push(None);
                        continue;
                    };
                    if self.depth >= MAX_DEPTH {
                        fail!(K::Limit, format!("call depth exceeded in {}", func.name));
                        self.stack.truncate(stack_base);
                        return Exit::Abort;
                    }
                    if n != func.params.len() {
                        fail!(
                            K::Arity,
                            format!("{} takes {} arguments", func.name, func.params.len())
                        );
                        self.stack.truncate(self.stack.len() - n);
                        self.stack.push(None);
                        continue;
                    }
                    let base = self.locals.len();
                    let frame = usize::from(func.chunk.locals).max(n);
                    let at = self.stack.len() - n;
                    self.locals.extend(self.stack.drain(at..));
                    self.locals.resize(base + frame, None);
                    self.depth += 1;
                    let r = self.run(program, globals, &func.chunk, cx, base);
                    self.depth -= 1;
                    self.locals.truncate(base);
                    match r {
                        Exit::Value(v) => self.stack.push(v),
                        Exit::Abort => {
                            self.stack.truncate(stack_base);
                            return Exit::Abort;
                        }
                    }
                }
                Instr::EmitEvent(schema) => {
                    let Some(s) = program.schemas.get(schema as usize) else {
                        fail!(K::Internal, format!("schema {schema} out of range"));
                        continue;
                    };
                    let n = s.fields.len();
                    if self.stack.len() < stack_base + n {
                        fail!(K::Internal, "stack underflow".into());
                        self.stack.truncate(stack_base);
                        return Exit::Value(None);
                    }
                    let fields: Vec<Option<Value>> =
                        self.stack.drain(self.stack.len() - n..).collect();
                    self.emitted.push(Event::new(schema, time, fields));
                }
            }
        }
        let v = if self.stack.len() > stack_base {
            self.stack.pop().flatten()
        } else {
            None
        };
        self.stack.truncate(stack_base);
        Exit::Value(v)
    }
}

#[cfg(test)]
mod tests;

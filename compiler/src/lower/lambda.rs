//! Lowering the array methods of [`crate::check::lambda`]: each call becomes
//! an inline loop over the array (`ForNext`), with the lambda's parameter a
//! fresh local, so lambdas read the enclosing event, locals and globals
//! directly and no closure values exist at run time. Results are built in
//! place with `AppendLocal`, so `.filter` and `.map` are linear.

use varpulis_program::{Builtin, Instr, Value};
use varpulis_syntax::ast::{Arg, Expr};

use super::expr::{ChunkBuilder, Env};
use super::Lowerer;
use crate::check::lambda::{lambda_arg, ArrayMethod};

impl Lowerer<'_> {
    /// Whether `recv.name(args)` is an array method (not a user function).
    pub(crate) fn is_array_method(&self, name: &str, args: &[Arg]) -> Option<ArrayMethod> {
        if self.fn_ids.contains_key(name) {
            return None;
        }
        ArrayMethod::of(name, args)
    }

    /// Compiles `recv.m(args)`, pushing one value.
    pub(crate) fn array_method(
        &mut self,
        b: &mut ChunkBuilder,
        env: &mut Env,
        e: &Expr,
        recv: &Expr,
        m: ArrayMethod,
        args: &[Arg],
    ) {
        let sid = self.span_id(e.span);
        self.expr(b, env, recv);
        let direct = match m {
            ArrayMethod::Count if args.is_empty() => Some(Builtin::Len),
            ArrayMethod::Sum => Some(Builtin::Sum),
            ArrayMethod::Avg => Some(Builtin::Avg),
            _ => None,
        };
        if let Some(f) = direct {
            b.emit(Instr::CallBuiltin(f, 1), sid);
            return;
        }
        let lambda = lambda_arg(args);
        if m != ArrayMethod::Min && m != ArrayMethod::Max && lambda.is_none() {
            // Reported by the checker.
            b.emit(Instr::Pop, sid);
            self.push_absent(b, sid);
            return;
        }
        let it = b.new_local();
        let idx = b.new_local();
        let x = b.new_local();
        let acc = b.new_local();
        b.emit(Instr::StoreLocal(it), sid);
        self.push_const(b, Value::Int(0), sid);
        b.emit(Instr::StoreLocal(idx), sid);
        match m {
            ArrayMethod::Filter | ArrayMethod::Map => {
                b.emit(Instr::MakeArray(0), sid);
                b.emit(Instr::StoreLocal(acc), sid);
            }
            ArrayMethod::Any => {
                self.push_const(b, Value::Bool(false), sid);
                b.emit(Instr::StoreLocal(acc), sid);
            }
            ArrayMethod::All => {
                self.push_const(b, Value::Bool(true), sid);
                b.emit(Instr::StoreLocal(acc), sid);
            }
            ArrayMethod::Count => {
                self.push_const(b, Value::Int(0), sid);
                b.emit(Instr::StoreLocal(acc), sid);
            }
            // No value until the first element.
            ArrayMethod::Min | ArrayMethod::Max | ArrayMethod::Sum | ArrayMethod::Avg => {}
        }
        let top = b.here();
        let next = b.emit(
            Instr::ForNext {
                iter: it,
                index: idx,
                var: x,
                exit: 0,
            },
            sid,
        );
        let mut exits = Vec::new();
        let body = |me: &mut Self, b: &mut ChunkBuilder, env: &mut Env| {
            if let Some((param, body)) = lambda {
                env.scopes.push(vec![(param.name.clone(), x)]);
                me.expr(b, env, body);
                env.scopes.pop();
            }
        };
        match m {
            ArrayMethod::Filter => {
                body(self, b, env);
                b.emit(Instr::JumpIfNotTrue(top), sid);
                b.emit(Instr::LoadLocal(x), sid);
                b.emit(Instr::AppendLocal(acc), sid);
            }
            ArrayMethod::Map => {
                body(self, b, env);
                b.emit(Instr::AppendLocal(acc), sid);
            }
            ArrayMethod::Any => {
                body(self, b, env);
                b.emit(Instr::JumpIfNotTrue(top), sid);
                self.push_const(b, Value::Bool(true), sid);
                b.emit(Instr::StoreLocal(acc), sid);
                exits.push(b.emit(Instr::Jump(0), sid));
            }
            ArrayMethod::All => {
                body(self, b, env);
                let failed = b.emit(Instr::JumpIfNotTrue(0), sid);
                b.emit(Instr::Jump(top), sid);
                let at = b.here();
                b.patch(failed, at);
                self.push_const(b, Value::Bool(false), sid);
                b.emit(Instr::StoreLocal(acc), sid);
                exits.push(b.emit(Instr::Jump(0), sid));
            }
            ArrayMethod::Count => {
                body(self, b, env);
                b.emit(Instr::JumpIfNotTrue(top), sid);
                b.emit(Instr::LoadLocal(acc), sid);
                self.push_const(b, Value::Int(1), sid);
                b.emit(Instr::Add, sid);
                b.emit(Instr::StoreLocal(acc), sid);
            }
            ArrayMethod::Min | ArrayMethod::Max | ArrayMethod::Sum | ArrayMethod::Avg => {
                // The first element starts the running extreme.
                b.emit(Instr::LoadLocal(idx), sid);
                self.push_const(b, Value::Int(1), sid);
                b.emit(Instr::Eq, sid);
                let later = b.emit(Instr::JumpIfNotTrue(0), sid);
                b.emit(Instr::LoadLocal(x), sid);
                b.emit(Instr::StoreLocal(acc), sid);
                b.emit(Instr::Jump(top), sid);
                let at = b.here();
                b.patch(later, at);
                let f = if m == ArrayMethod::Min {
                    Builtin::Min
                } else {
                    Builtin::Max
                };
                b.emit(Instr::LoadLocal(acc), sid);
                b.emit(Instr::LoadLocal(x), sid);
                b.emit(Instr::CallBuiltin(f, 2), sid);
                b.emit(Instr::StoreLocal(acc), sid);
            }
        }
        b.emit(Instr::Jump(top), sid);
        let exit = b.here();
        b.patch(next, exit);
        for j in exits {
            b.patch(j, exit);
        }
        b.emit(Instr::LoadLocal(acc), sid);
    }
}

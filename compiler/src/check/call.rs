//! Typing calls: user functions (arity, parameter types), built-in scalar
//! functions, and aggregates (inside `.aggregate`, or over a Kleene alias
//! anywhere after the match; elsewhere reported as outside `.aggregate`).

use varpulis_syntax::ast::{Arg, Expr, ExprKind, Ident};
use varpulis_syntax::Span;

use super::{AggMode, Checker, Scope};
use crate::builtins;
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::model::Resolution;
use crate::resolve::DeclKind;
use crate::suggest;
use crate::types::Type;

type Typed = (Type, Option<Resolution>);

impl Checker<'_> {
    /// A call expression.
    pub(super) fn call(&mut self, e: &Expr, callee: &Expr, args: &[Arg], scope: &Scope) -> Typed {
        match &callee.kind {
            ExprKind::Ident(f) => self.call_named(e, f, None, args, scope),
            ExprKind::Member { base, name, .. } => {
                self.call_named(e, name, Some(base), args, scope)
            }
            _ => {
                let t = self.expr(callee, scope);
                for a in args {
                    self.expr(&a.value, scope);
                }
                if t != Type::Error {
                    self.report(
                        Diagnostic::new(
                            codes::NOT_CALLABLE,
                            format!("a value of type `{t}` is not a function"),
                            callee.span,
                        )
                        .with_label("not a function"),
                    );
                }
                (Type::Error, None)
            }
        }
    }

    fn call_named(
        &mut self,
        e: &Expr,
        f: &Ident,
        receiver: Option<&Expr>,
        args: &[Arg],
        scope: &Scope,
    ) -> Typed {
        let name = f.name.as_str();
        if let Some(r) = receiver {
            if self.env.decl(name) != Some(DeclKind::Fn) {
                if let Some(m) = super::lambda::ArrayMethod::of(name, args) {
                    return self.array_method(e, r, f, m, args, scope);
                }
            }
        }
        // User functions take precedence over built-ins (docs/LANGUAGE.md#functions-fn).
        if receiver.is_none() && self.env.decl(name) == Some(DeclKind::Fn) {
            return self.call_user(e, f, args, scope);
        }
        let is_agg = builtins::aggregate(name).is_some();
        if is_agg
            && receiver.is_none()
            && (scope.agg == AggMode::Inside || self.kleene_arg(args, scope))
        {
            if let Some(t) = self.call_aggregate(e, f, args, scope) {
                return (
                    t,
                    Some(Resolution::Aggregate {
                        name: f.name.clone(),
                    }),
                );
            }
        }
        let inner = Scope {
            agg: AggMode::Forbidden,
            ..scope.clone()
        };
        let mut types: Vec<Type> = Vec::new();
        if let Some(r) = receiver {
            types.push(self.expr(r, &inner));
        }
        for a in args {
            types.push(self.expr(&a.value, &inner));
        }
        if let Some(b) = builtins::builtin(name) {
            let scalar_fits =
                types.len() >= b.min && types.len() <= b.max && b.result(&types).is_ok();
            if !is_agg || scalar_fits {
                return (
                    self.apply_builtin(e, f, b, &types, args, receiver.is_some()),
                    Some(Resolution::Builtin {
                        name: f.name.clone(),
                    }),
                );
            }
        }
        if is_agg {
            self.report(
                Diagnostic::new(
                    codes::AGGREGATE_OUTSIDE_AGGREGATE,
                    format!("aggregate function `{name}` used outside `.aggregate`"),
                    e.span,
                )
                .with_label("aggregates only exist inside `.aggregate(...)`")
                .with_help(format!("compute it in `.window(...).aggregate(result: {name}(...))` and use `result` here")),
            );
            return (Type::Error, None);
        }
        if let Some(kind) = self.env.decl(name) {
            self.report(
                Diagnostic::new(
                    codes::NOT_CALLABLE,
                    format!("`{name}` is {}, not a function", kind.describe()),
                    f.span,
                )
                .with_label("not a function"),
            );
            return (Type::Error, None);
        }
        let fns = self.env.names(|k| k == DeclKind::Fn);
        let mut cands: Vec<&str> = fns.iter().map(String::as_str).collect();
        for n in builtins::all_names() {
            cands.push(n);
        }
        if receiver.is_some() {
            cands.extend(super::lambda::ARRAY_METHODS.iter().map(|(n, _)| *n));
        }
        let help = suggest::did_you_mean(name, cands).map(str::to_string);
        let what = if receiver.is_some() {
            "method"
        } else {
            "function"
        };
        let mut d = Diagnostic::new(
            codes::UNKNOWN_FUNCTION,
            format!("unknown {what} `{name}`"),
            f.span,
        )
        .with_label(format!("no such {what}"));
        if let Some(h) = help {
            d = d
                .with_help(format!("did you mean `{h}`?"))
                .with_suggestion(f.span, h);
        }
        self.report(d);
        (Type::Error, None)
    }

    /// Whether the first argument reads a Kleene alias (`ks` or `ks.field`):
    /// aggregates over it are allowed anywhere after the match.
    fn kleene_arg(&self, args: &[Arg], scope: &Scope) -> bool {
        let Some(first) = args.first() else {
            return false;
        };
        let base = match &first.value.kind {
            ExprKind::Member { base, .. } => base,
            _ => &first.value,
        };
        match &base.kind {
            ExprKind::Ident(i) => scope.alias(&i.name).is_some_and(|a| a.kleene),
            _ => false,
        }
    }

    fn apply_builtin(
        &mut self,
        e: &Expr,
        f: &Ident,
        b: &builtins::Builtin,
        types: &[Type],
        args: &[Arg],
        method: bool,
    ) -> Type {
        if let Some(named) = args.iter().find_map(|a| a.name.as_ref()) {
            self.report(
                Diagnostic::new(
                    codes::UNKNOWN_ARGUMENT,
                    format!("`{}` takes no named arguments", b.name),
                    named.span,
                )
                .with_label("named argument")
                .with_help(format!("pass it by position: `{}`", b.signature)),
            );
            return Type::Error;
        }
        if types.len() < b.min || types.len() > b.max {
            self.arity(e.span, f, types.len(), b.min, b.max, b.signature);
            return Type::Error;
        }
        if types.contains(&Type::Error) {
            return Type::Error;
        }
        match b.result(types) {
            Ok(t) => t,
            Err(m) => {
                let idx = if method {
                    m.index.checked_sub(1)
                } else {
                    Some(m.index)
                };
                let span = idx
                    .and_then(|i| args.get(i))
                    .map_or(e.span, |a| a.value.span);
                let found = &types[m.index.min(types.len().saturating_sub(1))];
                self.report(
                    Diagnostic::new(
                        codes::ARGUMENT_TYPE,
                        format!(
                            "`{}` expects {} as argument {}, found `{found}`",
                            b.name,
                            m.expected,
                            m.index + 1
                        ),
                        span,
                    )
                    .with_label(format!("this is `{found}`"))
                    .with_note(format!("signature: `{}`", b.signature)),
                );
                Type::Error
            }
        }
    }

    pub(crate) fn arity(
        &mut self,
        span: Span,
        f: &Ident,
        got: usize,
        min: usize,
        max: usize,
        sig: &str,
    ) {
        let want = if min == max {
            format!("{min}")
        } else if max == usize::MAX {
            format!("at least {min}")
        } else {
            format!("{min} to {max}")
        };
        let plural = if want == "1" { "" } else { "s" };
        self.report(
            Diagnostic::new(
                codes::WRONG_ARITY,
                format!(
                    "`{}` takes {want} argument{plural} but {got} {} given",
                    f.name,
                    if got == 1 { "was" } else { "were" }
                ),
                span,
            )
            .with_label(format!("{got} argument{}", if got == 1 { "" } else { "s" }))
            .with_note(format!("signature: `{sig}`")),
        );
    }

    fn call_user(&mut self, e: &Expr, f: &Ident, args: &[Arg], scope: &Scope) -> Typed {
        let inner = Scope {
            agg: AggMode::Forbidden,
            ..scope.clone()
        };
        let types: Vec<Type> = args.iter().map(|a| self.expr(&a.value, &inner)).collect();
        let res = Some(Resolution::Function {
            name: f.name.clone(),
        });
        let Some(sig) = self.env.fn_sig(&f.name) else {
            return (Type::Any, res);
        };
        let ret = if self.env.is_cyclic(&f.name) {
            Type::Any
        } else {
            sig.ret.clone()
        };
        let sig_text = format!(
            "fn {}({}) -> {}",
            f.name,
            sig.params
                .iter()
                .map(|(n, t)| format!("{n}: {t}"))
                .collect::<Vec<_>>()
                .join(", "),
            sig.ret
        );
        if args.len() != sig.params.len() {
            self.arity(
                e.span,
                f,
                args.len(),
                sig.params.len(),
                sig.params.len(),
                &sig_text,
            );
            return (ret, res);
        }
        for (i, (a, t)) in args.iter().zip(&types).enumerate() {
            let (pname, pty) = match &a.name {
                Some(n) => match sig.params.iter().find(|(p, _)| *p == n.name) {
                    Some(p) => p.clone(),
                    None => {
                        let help =
                            suggest::help(&n.name, sig.params.iter().map(|(p, _)| p.as_str()));
                        self.report(
                            Diagnostic::new(
                                codes::UNKNOWN_ARGUMENT,
                                format!("`{}` has no parameter `{}`", f.name, n.name),
                                n.span,
                            )
                            .with_label("unknown parameter")
                            .with_help_opt(help),
                        );
                        continue;
                    }
                },
                None => sig.params[i].clone(),
            };
            if !t.fits(&pty) {
                self.report(
                    Diagnostic::new(
                        codes::ARGUMENT_TYPE,
                        format!(
                            "argument `{pname}` of `{}` expects `{pty}`, found `{t}`",
                            f.name
                        ),
                        a.value.span,
                    )
                    .with_label(format!("this is `{t}`"))
                    .with_note(format!("signature: `{sig_text}`")),
                );
            }
        }
        (ret, res)
    }

    /// Types an aggregate call; `None` when it is not one after all.
    fn call_aggregate(&mut self, e: &Expr, f: &Ident, args: &[Arg], scope: &Scope) -> Option<Type> {
        let agg = builtins::aggregate(&f.name)?;
        if self.agg_depth > 0 {
            self.report(
                Diagnostic::new(
                    codes::NOT_AN_AGGREGATE,
                    format!("aggregate `{}` nested inside another aggregate", f.name),
                    e.span,
                )
                .with_label("nested aggregate"),
            );
            return Some(Type::Error);
        }
        self.saw_aggregate = true;
        self.agg_depth += 1;
        let mut types = Vec::new();
        for a in args {
            // `count(distinct(f))` counts distinct values (docs/LANGUAGE.md#aggregate-functions).
            if let ExprKind::Call {
                callee,
                args: inner,
            } = &a.value.kind
            {
                if matches!(&callee.kind, ExprKind::Ident(i) if i.name == "distinct")
                    && f.name == "count"
                {
                    for x in inner {
                        self.expr(&x.value, scope);
                    }
                    types.push(Type::Any);
                    continue;
                }
            }
            types.push(self.expr(&a.value, scope));
        }
        self.agg_depth -= 1;
        // `count(x)` ignores its argument.
        if args.len() < agg.min || args.len() > agg.max {
            self.arity(e.span, f, args.len(), agg.min, agg.max, agg.signature);
            return Some(Type::Error);
        }
        let types: Vec<Type> = types
            .into_iter()
            .map(|t| match t {
                Type::EventList(s) => Type::Event(s),
                t => t,
            })
            .collect();
        match agg.result(&types) {
            Ok(t) => Some(t),
            Err(m) => {
                let span = args.get(m.index).map_or(e.span, |a| a.value.span);
                let found = &types[m.index.min(types.len().saturating_sub(1))];
                self.report(
                    Diagnostic::new(
                        codes::ARGUMENT_TYPE,
                        format!("`{}` expects {}, found `{found}`", agg.name, m.expected),
                        span,
                    )
                    .with_label(format!("this is `{found}`"))
                    .with_note(format!("signature: `{}`", agg.signature)),
                );
                Some(Type::Error)
            }
        }
    }

    /// Starts typing one `.aggregate` item; returns whether the previous one
    /// contained an aggregate call.
    pub(crate) fn take_saw_aggregate(&mut self) -> bool {
        std::mem::take(&mut self.saw_aggregate)
    }
}

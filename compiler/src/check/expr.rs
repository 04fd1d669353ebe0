//! Typing and resolving expressions.
//!
//! Typing rules (docs/LANGUAGE.md#expressions with the REC resolutions): int and float
//! widen to float; `str + str` concatenates; `ts ± dur → ts`, `ts − ts →
//! dur`, `dur ± dur → dur`, `dur * int → dur`; comparisons need both sides of
//! one kind (numbers together); `and`/`or`/`not` need booleans; `null` fits
//! everywhere. Bitwise operators, `is` and lambdas parse but are reported as
//! not supported yet. A [`Type::Error`] operand silences further diagnostics.

use varpulis_syntax::ast::{BinaryOp, Expr, ExprKind, Ident, LambdaBody, UnaryOp};
use varpulis_syntax::Span;

use super::{AggMode, Checker, Scope};
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::model::{ExprInfo, Resolution};
use crate::resolve::DeclKind;
use crate::suggest;
use crate::types::{Schema, Type};

type Typed = (Type, Option<Resolution>);

impl Checker<'_> {
    /// Types `e`, records it in the expression table and returns its type.
    pub(crate) fn expr(&mut self, e: &Expr, scope: &Scope) -> Type {
        let (ty, resolution) = self.expr_inner(e, scope);
        self.exprs.insert(
            e.span,
            ExprInfo {
                ty: ty.clone(),
                resolution,
            },
        );
        ty
    }

    /// Types a condition and reports it unless it is boolean.
    pub(crate) fn condition(&mut self, e: &Expr, scope: &Scope, what: &str) -> Type {
        let ty = self.expr(e, scope);
        if !ty.fits(&Type::Bool) || ty == Type::Null {
            let help = match &ty {
                t if t.is_numeric() => {
                    format!("compare it with a value, e.g. `{} > 0`", snippet(e))
                }
                Type::Str => format!("compare it with a string, e.g. `{} == \"...\"`", snippet(e)),
                _ => "write a comparison or a boolean expression".to_string(),
            };
            self.report(
                Diagnostic::new(
                    codes::NON_BOOLEAN_CONDITION,
                    format!("{what} must be a boolean, found `{ty}`"),
                    e.span,
                )
                .with_label(format!("this is `{ty}`"))
                .with_help(help),
            );
        }
        ty
    }

    fn expr_inner(&mut self, e: &Expr, scope: &Scope) -> Typed {
        let ty = match &e.kind {
            ExprKind::Int(_) => Type::Int,
            ExprKind::Float(_) => Type::Float,
            ExprKind::Str(_) => Type::Str,
            ExprKind::Bool(_) => Type::Bool,
            ExprKind::Null => Type::Null,
            ExprKind::Duration(_) => Type::Duration,
            ExprKind::Timestamp(_) => Type::Timestamp,
            ExprKind::Error => Type::Error,
            ExprKind::Array(items) => {
                let mut t = Type::Null;
                for it in items {
                    let ti = self.expr(it, scope);
                    t = t.join(&ti).unwrap_or(Type::Any);
                }
                Type::Array(Box::new(if t == Type::Null && items.is_empty() {
                    Type::Any
                } else {
                    t
                }))
            }
            ExprKind::Map(items) => {
                let mut t = Type::Null;
                for (_, v) in items {
                    let tv = self.expr(v, scope);
                    t = t.join(&tv).unwrap_or(Type::Any);
                }
                Type::Map(
                    Box::new(Type::Str),
                    Box::new(if items.is_empty() { Type::Any } else { t }),
                )
            }
            ExprKind::Ident(i) => return self.ident(i, scope),
            ExprKind::Member { base, name, .. } => return self.member(base, name, scope),
            ExprKind::Call { callee, args } => return self.call(e, callee, args, scope),
            ExprKind::Index { base, index } => self.index(base, index, scope),
            ExprKind::Slice { base, start, end } => {
                let tb = self.expr(base, scope);
                for x in start.iter().chain(end.iter()) {
                    let tx = self.expr(x, scope);
                    self.want_int_index(x, &tx);
                }
                match tb {
                    Type::Array(_) | Type::Str => tb,
                    t if t.is_unknown() => t,
                    t => {
                        self.no_member(base.span, &t, "slice");
                        Type::Error
                    }
                }
            }
            ExprKind::Unary { op, expr } => self.unary(e, *op, expr, scope),
            ExprKind::Binary { op, lhs, rhs } => self.binary(e, *op, lhs, rhs, scope),
            ExprKind::If {
                cond,
                then_branch,
                else_branch,
            } => {
                self.condition(cond, scope, "an `if` condition");
                let a = self.expr(then_branch, scope);
                let b = self.expr(else_branch, scope);
                match a.join(&b) {
                    Some(t) => t,
                    None => {
                        self.report(
                            Diagnostic::new(
                                codes::BRANCH_MISMATCH,
                                format!("`if` branches have different types: `{a}` and `{b}`"),
                                e.span,
                            )
                            .with_label("the branches of this `if` disagree")
                            .with_secondary(then_branch.span, format!("this is `{a}`"))
                            .with_secondary(else_branch.span, format!("this is `{b}`"))
                            .with_help("make both branches produce the same type, e.g. with `to_string(...)`"),
                        );
                        Type::Error
                    }
                }
            }
            ExprKind::Lambda { params, body } => {
                // Lambda values are dynamically typed: parameters and result
                // are `any`; the body is still resolved.
                let mut inner = scope.clone();
                inner
                    .locals
                    .extend(params.iter().map(|p| (p.name.clone(), Type::Any)));
                match &**body {
                    LambdaBody::Expr(x) => {
                        self.expr(x, &inner);
                    }
                    LambdaBody::Block(b) => self.lambda_block(b, &mut inner),
                }
                Type::Any
            }
            ExprKind::Range { start, end, .. } => {
                for x in [start, end] {
                    let t = self.expr(x, scope);
                    if !t.fits(&Type::Int) {
                        self.mismatch_one(x.span, &t, "a range bound must be an `int`");
                    }
                }
                Type::Array(Box::new(Type::Int))
            }
            ExprKind::Paren(x) => return self.expr_inner_recorded(x, scope),
        };
        (ty, None)
    }

    fn expr_inner_recorded(&mut self, x: &Expr, scope: &Scope) -> Typed {
        let (ty, res) = self.expr_inner(x, scope);
        self.exprs.insert(
            x.span,
            ExprInfo {
                ty: ty.clone(),
                resolution: res.clone(),
            },
        );
        (ty, res)
    }

    fn want_int_index(&mut self, x: &Expr, t: &Type) {
        if !t.fits(&Type::Int) {
            self.report(
                Diagnostic::new(
                    codes::ARGUMENT_TYPE,
                    format!("an index must be an `int`, found `{t}`"),
                    x.span,
                )
                .with_label(format!("this is `{t}`")),
            );
        }
    }

    fn index(&mut self, base: &Expr, index: &Expr, scope: &Scope) -> Type {
        let tb = self.expr(base, scope);
        let ti = self.expr(index, scope);
        match tb {
            Type::Array(elem) => {
                self.want_int_index(index, &ti);
                *elem
            }
            Type::EventList(s) => {
                self.want_int_index(index, &ti);
                Type::Event(s)
            }
            Type::Str => {
                self.want_int_index(index, &ti);
                Type::Str
            }
            Type::Map(_, v) => *v,
            t if t.is_unknown() => Type::Any,
            t => {
                self.no_member(base.span, &t, "index");
                Type::Error
            }
        }
    }

    fn no_member(&mut self, span: Span, t: &Type, what: &str) {
        self.report(
            Diagnostic::new(
                codes::NO_SUCH_MEMBER,
                format!("cannot {what} a value of type `{t}`"),
                span,
            )
            .with_label(format!("this is `{t}`")),
        );
    }

    /// Resolves a bare name.
    pub(crate) fn ident(&mut self, i: &Ident, scope: &Scope) -> Typed {
        let name = i.name.as_str();
        if let Some(t) = scope.local(name) {
            return (
                t.clone(),
                Some(Resolution::Local {
                    name: i.name.clone(),
                }),
            );
        }
        if let Some(ev) = &scope.event {
            if let Some((index, f)) = ev.field(name) {
                if scope.agg == AggMode::Inside && self.agg_depth == 0 {
                    self.field_outside_aggregate(i);
                }
                return (
                    f.ty.clone(),
                    Some(Resolution::Field {
                        index,
                        name: i.name.clone(),
                    }),
                );
            }
        }
        if let Some(a) = scope.alias(name) {
            let ty = if a.kleene {
                Type::EventList(Box::new(a.schema.clone()))
            } else {
                Type::Event(Box::new(a.schema.clone()))
            };
            return (
                ty,
                Some(Resolution::Alias {
                    name: i.name.clone(),
                    kleene: a.kleene,
                }),
            );
        }
        match self.env.decl(name) {
            Some(DeclKind::Global(_)) => {
                let ty = if self.env.is_cyclic(name) {
                    Type::Error
                } else {
                    self.env.global_type(name).unwrap_or(Type::Any)
                };
                return (
                    ty,
                    Some(Resolution::Global {
                        name: i.name.clone(),
                    }),
                );
            }
            Some(kind) if scope.event.as_ref().is_none_or(|e| !e.open) => {
                self.report(
                    Diagnostic::new(
                        codes::UNKNOWN_NAME,
                        format!("`{name}` is {}, not a value", kind.describe()),
                        i.span,
                    )
                    .with_label("not a value"),
                );
                return (Type::Error, None);
            }
            _ => {}
        }
        if let Some(ev) = &scope.event {
            if ev.open {
                if scope.agg == AggMode::Inside && self.agg_depth == 0 {
                    self.field_outside_aggregate(i);
                }
                return (
                    Type::Any,
                    Some(Resolution::DynamicField {
                        name: i.name.clone(),
                    }),
                );
            }
        }
        if let Some((_, bound_at)) = scope.later_aliases.iter().find(|(n, _)| n == name) {
            self.unbound_alias(i, *bound_at);
            return (Type::Error, None);
        }
        self.unknown_name(i, scope);
        (Type::Error, None)
    }

    fn field_outside_aggregate(&mut self, i: &Ident) {
        self.report(
            Diagnostic::new(
                codes::NOT_AN_AGGREGATE,
                format!("field `{}` is used outside an aggregate function", i.name),
                i.span,
            )
            .with_label("not aggregated")
            .with_help(format!("aggregate it, e.g. `last({})`", i.name))
            .with_suggestion(i.span, format!("last({})", i.name)),
        );
    }

    pub(crate) fn unbound_alias(&mut self, i: &Ident, bound_at: Span) {
        self.report(
            Diagnostic::new(
                codes::UNBOUND_ALIAS,
                format!("alias `{}` is not bound here", i.name),
                i.span,
            )
            .with_label("used before its step matched")
            .with_secondary(bound_at, "bound by this later step")
            .with_help(
                "an alias can only be used in the steps and operators after the step that binds it",
            ),
        );
    }

    fn unknown_name(&mut self, i: &Ident, scope: &Scope) {
        let globals = self.env.names(|k| matches!(k, DeclKind::Global(_)));
        let mut cands: Vec<&str> = Vec::new();
        cands.extend(scope.locals.iter().map(|(n, _)| n.as_str()));
        if let Some(ev) = &scope.event {
            cands.extend(ev.field_names());
        }
        cands.extend(scope.aliases.iter().map(|a| a.name.as_str()));
        cands.extend(globals.iter().map(String::as_str));
        let help = suggest::did_you_mean(&i.name, cands.iter().copied()).map(str::to_string);
        let d = match &scope.event {
            Some(ev) => Diagnostic::new(
                codes::UNKNOWN_FIELD,
                format!("unknown field `{}` on `{}`", i.name, ev.name),
                i.span,
            )
            .with_label(format!("`{}` has no field `{}`", ev.name, i.name)),
            None => Diagnostic::new(
                codes::UNKNOWN_NAME,
                format!("unknown name `{}`", i.name),
                i.span,
            )
            .with_label("not declared"),
        };
        let d = match help {
            Some(h) => d
                .with_help(format!("did you mean `{h}`?"))
                .with_suggestion(i.span, h),
            None => match &scope.event {
                Some(ev) if !ev.fields.is_empty() => d.with_note(format!(
                    "`{}` has fields {}",
                    ev.name,
                    list(ev.field_names().filter(|n| !n.contains('.')))
                )),
                _ => d,
            },
        };
        self.report(d);
    }

    /// `base.name`.
    fn member(&mut self, base: &Expr, name: &Ident, scope: &Scope) -> Typed {
        if let ExprKind::Ident(b) = &base.kind {
            if scope.local(&b.name).is_none()
                && scope
                    .event
                    .as_ref()
                    .is_none_or(|e| e.field(&b.name).is_none())
            {
                if let Some(a) = scope.alias(&b.name) {
                    let (aty, kleene) = if a.kleene {
                        (Type::EventList(Box::new(a.schema.clone())), true)
                    } else {
                        (Type::Event(Box::new(a.schema.clone())), false)
                    };
                    let res = Resolution::Alias {
                        name: b.name.clone(),
                        kleene,
                    };
                    self.exprs.insert(
                        base.span,
                        ExprInfo {
                            ty: aty,
                            resolution: Some(res),
                        },
                    );
                    let schema = a.schema.clone();
                    let ty = self.field_of(&schema, name, Some(&b.name));
                    let res = Resolution::AliasField {
                        alias: b.name.clone(),
                        field: name.name.clone(),
                        kleene,
                    };
                    return (ty, Some(res));
                }
                if let Some(ev) = &scope.event {
                    if b.name == ev.name {
                        let ev = ev.clone();
                        let ty = self.field_of(&ev, name, None);
                        let res = ev.field(&name.name).map(|(index, _)| Resolution::Field {
                            index,
                            name: name.name.clone(),
                        });
                        return (ty, res);
                    }
                }
                if let Some((_, bound_at)) = scope.later_aliases.iter().find(|(n, _)| *n == b.name)
                {
                    self.unbound_alias(b, *bound_at);
                    return (Type::Error, None);
                }
            }
        }
        let tb = self.expr(base, scope);
        let ty = match &tb {
            Type::Event(s) | Type::EventList(s) => self.field_of(s, name, None),
            Type::Map(_, v) => (**v).clone(),
            t if t.is_unknown() => Type::Any,
            t => {
                self.report(
                    Diagnostic::new(
                        codes::NO_SUCH_MEMBER,
                        format!("no field `{}` on a value of type `{t}`", name.name),
                        name.span,
                    )
                    .with_label("unknown member")
                    .with_secondary(base.span, format!("this is `{t}`")),
                );
                Type::Error
            }
        };
        (ty, None)
    }

    /// The type of field `name` of `schema`, reporting unknown fields.
    pub(crate) fn field_of(&mut self, schema: &Schema, name: &Ident, via: Option<&str>) -> Type {
        if let Some((_, f)) = schema.field(&name.name) {
            return f.ty.clone();
        }
        if schema.open {
            return Type::Any;
        }
        let on = match via {
            Some(a) => format!("`{a}` (`{}`)", schema.name),
            None => format!("`{}`", schema.name),
        };
        let help = suggest::did_you_mean(&name.name, schema.field_names());
        let d = Diagnostic::new(
            codes::UNKNOWN_FIELD,
            format!("unknown field `{}` on {on}", name.name),
            name.span,
        )
        .with_label(format!("`{}` has no field `{}`", schema.name, name.name));
        let d = match help {
            Some(h) => d
                .with_help(format!("did you mean `{h}`?"))
                .with_suggestion(name.span, h),
            None => d.with_note(format!(
                "`{}` has fields {}",
                schema.name,
                list(schema.field_names())
            )),
        };
        self.report(d);
        Type::Error
    }

    fn unary(&mut self, e: &Expr, op: UnaryOp, x: &Expr, scope: &Scope) -> Type {
        let t = self.expr(x, scope);
        match op {
            UnaryOp::BitNot => {
                self.unsupported_op(e.span, "bitwise operators");
                Type::Error
            }
            UnaryOp::Neg => match t {
                Type::Int | Type::Float | Type::Duration => t,
                t if t.is_unknown() || t == Type::Null => t,
                t => {
                    self.mismatch_one(x.span, &t, "`-` needs a number or a duration");
                    Type::Error
                }
            },
            UnaryOp::Not => {
                if !t.fits(&Type::Bool) {
                    self.mismatch_one(x.span, &t, "`not` needs a boolean");
                }
                Type::Bool
            }
        }
    }

    fn unsupported_op(&mut self, span: Span, what: &str) {
        self.report(
            Diagnostic::new(
                codes::UNSUPPORTED_CONSTRUCT,
                format!("{what} are not supported yet"),
                span,
            )
            .with_label("not supported yet"),
        );
    }

    fn mismatch_one(&mut self, span: Span, t: &Type, msg: &str) {
        self.report(
            Diagnostic::new(codes::MISMATCHED_TYPES, format!("{msg}, found `{t}`"), span)
                .with_label(format!("this is `{t}`")),
        );
    }

    fn binary(&mut self, e: &Expr, op: BinaryOp, lhs: &Expr, rhs: &Expr, scope: &Scope) -> Type {
        use BinaryOp::*;
        let a = self.expr(lhs, scope);
        // The right side of `is` names a type, not a value.
        let b = if op == Is {
            Type::Any
        } else {
            self.expr(rhs, scope)
        };
        if matches!(op, BitOr | BitXor | BitAnd | Shl | Shr) {
            self.unsupported_op(e.span, "bitwise operators");
            return Type::Error;
        }
        if op == Is {
            self.report(
                Diagnostic::new(
                    codes::UNSUPPORTED_CONSTRUCT,
                    "the `is` operator is not supported yet",
                    e.span,
                )
                .with_label("not supported yet")
                .with_help("use `==`, or `type_of(x) == \"...\"` to test a type"),
            );
            return Type::Error;
        }
        if a == Type::Error || b == Type::Error {
            return match op {
                Or | And | Eq | Ne | Lt | Le | Gt | Ge | In | NotIn => Type::Bool,
                _ => Type::Error,
            };
        }
        let unknown = a.is_unknown() || b.is_unknown();
        let result = match op {
            Or | And => {
                for (t, x) in [(&a, lhs), (&b, rhs)] {
                    if !t.fits(&Type::Bool) {
                        self.mismatch_one(x.span, t, &format!("`{}` needs booleans", op.as_str()));
                    }
                }
                return Type::Bool;
            }
            Eq | Ne => (unknown || comparable_eq(&a, &b)).then_some(Type::Bool),
            Lt | Le | Gt | Ge => (unknown || ordered(&a, &b)).then_some(Type::Bool),
            In | NotIn => match &b {
                Type::Array(_) | Type::Map(..) | Type::EventList(_) => Some(Type::Bool),
                Type::Str => (a.fits(&Type::Str)).then_some(Type::Bool),
                t if t.is_unknown() => Some(Type::Bool),
                _ => None,
            },
            Add | Sub | Mul | Div | Rem | Pow if unknown => Some(Type::Any),
            Add => arith(&a, &b).or(match (&a, &b) {
                (Type::Str, Type::Str) => Some(Type::Str),
                (Type::Timestamp, Type::Duration) | (Type::Duration, Type::Timestamp) => {
                    Some(Type::Timestamp)
                }
                (Type::Duration, Type::Duration) => Some(Type::Duration),
                _ => None,
            }),
            Sub => arith(&a, &b).or(match (&a, &b) {
                (Type::Timestamp, Type::Duration) => Some(Type::Timestamp),
                (Type::Timestamp, Type::Timestamp) | (Type::Duration, Type::Duration) => {
                    Some(Type::Duration)
                }
                _ => None,
            }),
            Mul => arith(&a, &b).or(match (&a, &b) {
                (Type::Duration, Type::Int) | (Type::Int, Type::Duration) => Some(Type::Duration),
                _ => None,
            }),
            Div => arith(&a, &b).or(match (&a, &b) {
                (Type::Duration, Type::Int) => Some(Type::Duration),
                _ => None,
            }),
            Rem => arith(&a, &b),
            Pow => match (&a, &b) {
                (Type::Int, Type::Int) => Some(Type::Int),
                (x, y) if x.is_numeric() && y.is_numeric() => Some(Type::Float),
                _ => None,
            },
            BitOr | BitXor | BitAnd | Shl | Shr | Is => None,
        };
        match result {
            Some(t) => t,
            None => {
                let verb = match op {
                    Eq | Ne | Lt | Le | Gt | Ge => format!("cannot compare `{a}` with `{b}`"),
                    In | NotIn => format!("cannot test membership of `{a}` in `{b}`"),
                    _ => format!("cannot apply `{}` to `{a}` and `{b}`", op.as_str()),
                };
                let help = conversion_help(&a, &b, lhs, rhs);
                self.report(
                    Diagnostic::new(codes::MISMATCHED_TYPES, verb, e.span)
                        .with_label("incompatible operands")
                        .with_secondary(lhs.span, format!("this is `{a}`"))
                        .with_secondary(rhs.span, format!("this is `{b}`"))
                        .with_help_opt(help),
                );
                if matches!(op, Eq | Ne | Lt | Le | Gt | Ge | In | NotIn) {
                    Type::Bool
                } else {
                    Type::Error
                }
            }
        }
    }
}

fn arith(a: &Type, b: &Type) -> Option<Type> {
    match (a, b) {
        (Type::Int, Type::Int) => Some(Type::Int),
        (x, y) if x.is_numeric() && y.is_numeric() => Some(Type::Float),
        _ => None,
    }
}

fn comparable_eq(a: &Type, b: &Type) -> bool {
    *a == Type::Null
        || *b == Type::Null
        || (a.is_numeric() && b.is_numeric())
        || a.fits(b)
        || b.fits(a)
}

fn ordered(a: &Type, b: &Type) -> bool {
    (a.is_numeric() && b.is_numeric())
        || matches!(
            (a, b),
            (Type::Str, Type::Str)
                | (Type::Timestamp, Type::Timestamp)
                | (Type::Duration, Type::Duration)
        )
}

fn conversion_help(a: &Type, b: &Type, lhs: &Expr, rhs: &Expr) -> Option<String> {
    match (a, b) {
        (Type::Str, t) if t.is_numeric() => {
            Some(format!("convert with `to_{t}({})`", snippet(lhs)))
        }
        (t, Type::Str) if t.is_numeric() => {
            Some(format!("convert with `to_{t}({})`", snippet(rhs)))
        }
        (Type::Str, _) | (_, Type::Str) => Some("convert with `to_string(...)`".to_string()),
        _ => None,
    }
}

/// A short rendering of an expression for help texts.
pub(crate) fn snippet(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Ident(i) => i.name.clone(),
        ExprKind::Member { base, name, .. } => format!("{}.{}", snippet(base), name.name),
        ExprKind::Int(v) => v.to_string(),
        ExprKind::Str(s) => format!("{s:?}"),
        _ => "...".to_string(),
    }
}

/// `a`, `b` and `c` as a readable list of code spans.
pub(crate) fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    match v.len() {
        0 => "none".to_string(),
        1 => v[0].clone(),
        n => format!("{} and {}", v[..n - 1].join(", "), v[n - 1]),
    }
}

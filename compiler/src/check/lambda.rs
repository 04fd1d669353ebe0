//! Array methods that take a lambda (`xs.filter(x => ...)`, `.map`, `.any`,
//! `.all`, `.count`) and the array forms of `.min()`, `.max()` and
//! `.count()` (docs/LANGUAGE.md#array-methods). The lambda's parameter has
//! the array's element type, so `events.filter(e => e.valeu > 1)` reports
//! the unknown field. The other array methods (`len`, `sum`, `avg`, `first`,
//! `last`, ...) are the built-ins called method-style.

use varpulis_syntax::ast::{Arg, Expr, ExprKind, Ident, LambdaBody};

use super::{AggMode, Checker, Scope};
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::model::{ExprInfo, Resolution};
use crate::types::Type;

type Typed = (Type, Option<Resolution>);

/// An array method handled here rather than as a built-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ArrayMethod {
    /// `xs.filter(x => cond)`: the elements for which `cond` is `true`.
    Filter,
    /// `xs.map(x => e)`: `e` for each element (absent results skipped).
    Map,
    /// `xs.any(x => cond)`: whether `cond` is `true` for some element.
    Any,
    /// `xs.all(x => cond)`: whether `cond` is `true` for every element.
    All,
    /// `xs.count(x => cond)`: how many elements pass; `xs.count()`: length.
    Count,
    /// `xs.min()`: the smallest number.
    Min,
    /// `xs.max()`: the largest number.
    Max,
    /// `xs.sum()`: the sum of the numbers, as a float.
    Sum,
    /// `xs.avg()`: their mean (no value when empty).
    Avg,
}

/// Array methods, with their signatures, for did-you-mean and help texts
/// (the built-ins that take an array come after the lambda methods).
pub(crate) const ARRAY_METHODS: &[(&str, &str)] = &[
    ("filter", "xs.filter(x => condition) -> [element]"),
    ("map", "xs.map(x => expr) -> [type of expr]"),
    ("any", "xs.any(x => condition) -> bool"),
    ("all", "xs.all(x => condition) -> bool"),
    ("count", "xs.count(x => condition) -> int"),
    ("min", "xs.min() -> number"),
    ("max", "xs.max() -> number"),
    ("len", "xs.len() -> int"),
    ("sum", "xs.sum() -> float"),
    ("avg", "xs.avg() -> float"),
    ("first", "xs.first() -> element"),
    ("last", "xs.last() -> element"),
    ("contains", "xs.contains(v) -> bool"),
    ("sort", "xs.sort() -> [element]"),
    ("reverse", "xs.reverse() -> [element]"),
];

impl ArrayMethod {
    /// The method `name` called with `args` on a receiver, when it is one
    /// of these (a user function of that name takes precedence; the caller
    /// checks that). `.min()`/`.max()`/`.count()` only without arguments:
    /// with one they are the two-argument built-ins called method-style.
    pub(crate) fn of(name: &str, args: &[Arg]) -> Option<ArrayMethod> {
        match name {
            "filter" => Some(ArrayMethod::Filter),
            "map" => Some(ArrayMethod::Map),
            "any" => Some(ArrayMethod::Any),
            "all" => Some(ArrayMethod::All),
            "count" => Some(ArrayMethod::Count),
            "min" if args.is_empty() => Some(ArrayMethod::Min),
            "max" if args.is_empty() => Some(ArrayMethod::Max),
            "sum" if args.is_empty() => Some(ArrayMethod::Sum),
            "avg" if args.is_empty() => Some(ArrayMethod::Avg),
            _ => None,
        }
    }

    /// Its name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ArrayMethod::Filter => "filter",
            ArrayMethod::Map => "map",
            ArrayMethod::Any => "any",
            ArrayMethod::All => "all",
            ArrayMethod::Count => "count",
            ArrayMethod::Min => "min",
            ArrayMethod::Max => "max",
            ArrayMethod::Sum => "sum",
            ArrayMethod::Avg => "avg",
        }
    }
}

/// The single lambda argument `x => body` of an array method: its parameter
/// and expression body.
pub(crate) fn lambda_arg(args: &[Arg]) -> Option<(&Ident, &Expr)> {
    match args {
        [a] if a.name.is_none() => lambda_of(&a.value),
        _ => None,
    }
}

/// `x => body` with one parameter and an expression body.
pub(crate) fn lambda_of(e: &Expr) -> Option<(&Ident, &Expr)> {
    match &e.kind {
        ExprKind::Lambda { params, body } => match (params.as_slice(), &**body) {
            ([p], LambdaBody::Expr(x)) => Some((p, x)),
            _ => None,
        },
        _ => None,
    }
}

impl Checker<'_> {
    /// `recv.m(args)` for an [`ArrayMethod`].
    pub(super) fn array_method(
        &mut self,
        e: &Expr,
        recv: &Expr,
        method: &Ident,
        m: ArrayMethod,
        args: &[Arg],
        scope: &Scope,
    ) -> Typed {
        let (ty, res) = self.array_method_inner(e, recv, m, args, scope);
        // The method name resolves too, for hover.
        self.exprs.insert(
            method.span,
            ExprInfo {
                ty: ty.clone(),
                resolution: res.clone(),
            },
        );
        (ty, res)
    }

    fn array_method_inner(
        &mut self,
        e: &Expr,
        recv: &Expr,
        m: ArrayMethod,
        args: &[Arg],
        scope: &Scope,
    ) -> Typed {
        let inner = Scope {
            agg: AggMode::Forbidden,
            ..scope.clone()
        };
        let rt = self.expr(recv, &inner);
        let elem = match &rt {
            Type::Array(t) => (**t).clone(),
            Type::EventList(_) => {
                self.report(
                    Diagnostic::new(
                        codes::UNSUPPORTED_CONSTRUCT,
                        format!(
                            "`.{}` over the events of a Kleene alias is not supported yet",
                            m.name()
                        ),
                        recv.span,
                    )
                    .with_label("the engine cannot run this yet")
                    .with_help("use `len(ks)`, `first(ks)`, `last(ks)` or an aggregate over `ks.field` such as `sum(ks.price)`"),
                );
                return (Type::Error, None);
            }
            t if t.is_unknown() => Type::Any,
            t => {
                self.report(
                    Diagnostic::new(
                        codes::ARGUMENT_TYPE,
                        format!("`.{}` needs an array, found `{t}`", m.name()),
                        recv.span,
                    )
                    .with_label(format!("this is `{t}`")),
                );
                Type::Error
            }
        };
        let res = Some(Resolution::Builtin {
            name: m.name().to_string(),
        });
        if matches!(
            m,
            ArrayMethod::Min | ArrayMethod::Max | ArrayMethod::Sum | ArrayMethod::Avg
        ) {
            if !elem.fits(&Type::Float) {
                self.report(
                    Diagnostic::new(
                        codes::ARGUMENT_TYPE,
                        format!("`.{}()` needs an array of numbers, found `{rt}`", m.name()),
                        recv.span,
                    )
                    .with_label(format!("this is `{rt}`"))
                    .with_help(format!(
                        "pick a number first, e.g. `events.map(e => e.value).{}()`",
                        m.name()
                    )),
                );
                return (Type::Error, res);
            }
            let t = match m {
                ArrayMethod::Sum | ArrayMethod::Avg => Type::Float,
                _ if elem.is_numeric() => elem,
                _ => Type::Any,
            };
            return (t, res);
        }
        if m == ArrayMethod::Count && args.is_empty() {
            return (Type::Int, res);
        }
        let Some((param, body)) = lambda_arg(args) else {
            for a in args {
                if !matches!(a.value.kind, ExprKind::Lambda { .. }) {
                    self.expr(&a.value, &inner);
                }
            }
            let name = m.name();
            self.report(
                Diagnostic::new(
                    codes::ARGUMENT_TYPE,
                    format!("`.{name}` takes one lambda with one parameter"),
                    e.span,
                )
                .with_label("expected `x => expression`")
                .with_help(format!("write e.g. `xs.{name}(x => x > 0)`")),
            );
            return (Type::Error, res);
        };
        let mut sc = inner;
        sc.locals.push((param.name.clone(), elem.clone()));
        let what = format!("the condition of `.{}`", m.name());
        let result = match m {
            ArrayMethod::Map => {
                let t = self.expr(body, &sc);
                Type::Array(Box::new(t))
            }
            ArrayMethod::Filter => {
                self.condition(body, &sc, &what);
                Type::Array(Box::new(elem))
            }
            ArrayMethod::Any | ArrayMethod::All => {
                self.condition(body, &sc, &what);
                Type::Bool
            }
            ArrayMethod::Count => {
                self.condition(body, &sc, &what);
                Type::Int
            }
            ArrayMethod::Min | ArrayMethod::Max | ArrayMethod::Sum | ArrayMethod::Avg => {
                Type::Error
            }
        };
        (result, res)
    }
}

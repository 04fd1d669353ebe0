//! Signatures of the built-in scalar functions (docs/LANGUAGE.md#built-in-functions plus the REC
//! additions `now coalesce clamp to_upper to_lower concat`) and of the
//! aggregate functions (docs/LANGUAGE.md#aggregate-functions plus `percentile median variance collect`).
//!
//! Several names are both: `sum`, `avg`, `min`, `max`, `first`, `last`,
//! `count`. Inside `.aggregate` the aggregate wins; elsewhere the scalar
//! overload applies when its arguments fit (an array, two numbers, a Kleene
//! alias), otherwise the checker reports an aggregate outside `.aggregate`.

use crate::types::Type;

/// An argument that does not fit a built-in's signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgMismatch {
    /// Zero-based index of the offending argument.
    pub index: usize,
    /// What was expected, in words (`a number`, `a string`, ...).
    pub expected: &'static str,
}

type Typer = fn(&[Type]) -> Result<Type, ArgMismatch>;

/// A built-in scalar function.
#[derive(Clone, Copy, Debug)]
pub struct Builtin {
    /// Name as called.
    pub name: &'static str,
    /// Minimum number of arguments.
    pub min: usize,
    /// Maximum number of arguments (`usize::MAX` = variadic).
    pub max: usize,
    /// Human-readable signature for help texts.
    pub signature: &'static str,
    typer: Typer,
}

impl Builtin {
    /// The result type for these (correctly counted) argument types.
    pub fn result(&self, args: &[Type]) -> Result<Type, ArgMismatch> {
        (self.typer)(args)
    }
}

fn want(
    args: &[Type],
    i: usize,
    ok: fn(&Type) -> bool,
    expected: &'static str,
) -> Result<(), ArgMismatch> {
    match args.get(i) {
        Some(t) if t.is_unknown() || *t == Type::Null || ok(t) => Ok(()),
        Some(_) => Err(ArgMismatch { index: i, expected }),
        None => Ok(()),
    }
}

fn num(t: &Type) -> bool {
    t.is_numeric()
}
fn string(t: &Type) -> bool {
    *t == Type::Str
}
fn int(t: &Type) -> bool {
    *t == Type::Int
}
fn array(t: &Type) -> bool {
    matches!(t, Type::Array(_) | Type::EventList(_))
}
fn map(t: &Type) -> bool {
    matches!(t, Type::Map(..))
}
fn collection(t: &Type) -> bool {
    array(t) || map(t) || string(t)
}
fn elem(t: &Type) -> Type {
    match t {
        Type::Array(e) => (**e).clone(),
        Type::EventList(s) => Type::Event(s.clone()),
        Type::Str => Type::Str,
        Type::Map(_, v) => (**v).clone(),
        _ => Type::Any,
    }
}
fn arg(args: &[Type], i: usize) -> Type {
    args.get(i).cloned().unwrap_or(Type::Any)
}

macro_rules! b {
    ($name:literal, $min:expr, $max:expr, $sig:literal, $f:expr) => {
        Builtin {
            name: $name,
            min: $min,
            max: $max,
            signature: $sig,
            typer: $f,
        }
    };
}

const V: usize = usize::MAX;

fn float_of_num(a: &[Type]) -> Result<Type, ArgMismatch> {
    want(a, 0, num, "a number")?;
    Ok(Type::Float)
}
fn int_of_num(a: &[Type]) -> Result<Type, ArgMismatch> {
    want(a, 0, num, "a number")?;
    Ok(Type::Int)
}
fn str_of_str(a: &[Type]) -> Result<Type, ArgMismatch> {
    want(a, 0, string, "a string")?;
    Ok(Type::Str)
}
fn bool_of_any(_: &[Type]) -> Result<Type, ArgMismatch> {
    Ok(Type::Bool)
}
fn num2(a: &[Type]) -> Result<Type, ArgMismatch> {
    want(a, 0, num, "a number")?;
    want(a, 1, num, "a number")?;
    Ok(arg(a, 0).join(&arg(a, 1)).unwrap_or(Type::Float))
}
fn str2_bool(a: &[Type]) -> Result<Type, ArgMismatch> {
    want(a, 0, string, "a string")?;
    want(a, 1, string, "a string")?;
    Ok(Type::Bool)
}

/// Every built-in scalar function.
pub const BUILTINS: &[Builtin] = &[
    b!("abs", 1, 1, "abs(x: number) -> number", |a| {
        want(a, 0, num, "a number")?;
        Ok(if arg(a, 0) == Type::Int {
            Type::Int
        } else {
            Type::Float
        })
    }),
    b!("sqrt", 1, 1, "sqrt(x: number) -> float", float_of_num),
    b!("floor", 1, 1, "floor(x: number) -> int", int_of_num),
    b!("ceil", 1, 1, "ceil(x: number) -> int", int_of_num),
    b!("round", 1, 1, "round(x: number) -> int", int_of_num),
    b!("pow", 2, 2, "pow(x: number, y: number) -> float", |a| {
        num2(a)?;
        Ok(Type::Float)
    }),
    b!("log", 1, 1, "log(x: number) -> float", float_of_num),
    b!("log10", 1, 1, "log10(x: number) -> float", float_of_num),
    b!("exp", 1, 1, "exp(x: number) -> float", float_of_num),
    b!("sin", 1, 1, "sin(x: number) -> float", float_of_num),
    b!("cos", 1, 1, "cos(x: number) -> float", float_of_num),
    b!("tan", 1, 1, "tan(x: number) -> float", float_of_num),
    b!("min", 2, 2, "min(a: number, b: number) -> number", num2),
    b!("max", 2, 2, "max(a: number, b: number) -> number", num2),
    b!(
        "clamp",
        3,
        3,
        "clamp(x: number, lo: number, hi: number) -> number",
        |a| {
            want(a, 0, num, "a number")?;
            want(a, 1, num, "a number")?;
            want(a, 2, num, "a number")?;
            Ok(arg(a, 0).join(&arg(a, 1)).unwrap_or(Type::Float))
        }
    ),
    b!("len", 1, 1, "len(x: str | array | map) -> int", |a| {
        want(a, 0, collection, "a string, array or map")?;
        Ok(Type::Int)
    }),
    b!("trim", 1, 1, "trim(s: str) -> str", str_of_str),
    b!("lower", 1, 1, "lower(s: str) -> str", str_of_str),
    b!("lowercase", 1, 1, "lowercase(s: str) -> str", str_of_str),
    b!("upper", 1, 1, "upper(s: str) -> str", str_of_str),
    b!("uppercase", 1, 1, "uppercase(s: str) -> str", str_of_str),
    b!("to_upper", 1, 1, "to_upper(s: str) -> str", str_of_str),
    b!("to_lower", 1, 1, "to_lower(s: str) -> str", str_of_str),
    b!("split", 2, 2, "split(s: str, sep: str) -> [str]", |a| {
        want(a, 0, string, "a string")?;
        want(a, 1, string, "a string")?;
        Ok(Type::Array(Box::new(Type::Str)))
    }),
    b!("join", 2, 2, "join(a: array, sep: str) -> str", |a| {
        want(a, 0, array, "an array")?;
        want(a, 1, string, "a string")?;
        Ok(Type::Str)
    }),
    b!(
        "replace",
        3,
        3,
        "replace(s: str, old: str, new: str) -> str",
        |a| {
            for i in 0..3 {
                want(a, i, string, "a string")?;
            }
            Ok(Type::Str)
        }
    ),
    b!(
        "starts_with",
        2,
        2,
        "starts_with(s: str, prefix: str) -> bool",
        str2_bool
    ),
    b!(
        "ends_with",
        2,
        2,
        "ends_with(s: str, suffix: str) -> bool",
        str2_bool
    ),
    b!(
        "substring",
        2,
        3,
        "substring(s: str, start: int[, end: int]) -> str",
        |a| {
            want(a, 0, string, "a string")?;
            want(a, 1, int, "an int")?;
            want(a, 2, int, "an int")?;
            Ok(Type::Str)
        }
    ),
    b!("concat", 1, V, "concat(s: str, ...) -> str", |a| {
        for i in 0..a.len() {
            want(a, i, string, "a string")?;
        }
        Ok(Type::Str)
    }),
    b!("reverse", 1, 1, "reverse(x: str | array) -> same", |a| {
        want(a, 0, |t| array(t) || string(t), "a string or an array")?;
        Ok(arg(a, 0))
    }),
    b!("first", 1, 1, "first(a: array) -> element", |a| {
        want(a, 0, array, "an array")?;
        Ok(elem(&arg(a, 0)))
    }),
    b!("last", 1, 1, "last(a: array) -> element", |a| {
        want(a, 0, array, "an array")?;
        Ok(elem(&arg(a, 0)))
    }),
    b!("push", 2, 2, "push(a: array, v) -> array", |a| {
        want(a, 0, array, "an array")?;
        Ok(arg(a, 0))
    }),
    b!("pop", 1, 1, "pop(a: array) -> array", |a| {
        want(a, 0, array, "an array")?;
        Ok(arg(a, 0))
    }),
    b!("sort", 1, 1, "sort(a: array) -> array", |a| {
        want(a, 0, array, "an array")?;
        Ok(arg(a, 0))
    }),
    b!(
        "contains",
        2,
        2,
        "contains(x: str | array | map, v) -> bool",
        |a| {
            want(a, 0, collection, "a string, array or map")?;
            Ok(Type::Bool)
        }
    ),
    b!("keys", 1, 1, "keys(m: map) -> array", |a| {
        want(a, 0, map, "a map")?;
        Ok(match arg(a, 0) {
            Type::Map(k, _) => Type::Array(k),
            _ => Type::Array(Box::new(Type::Any)),
        })
    }),
    b!("values", 1, 1, "values(m: map) -> array", |a| {
        want(a, 0, map, "a map")?;
        Ok(match arg(a, 0) {
            Type::Map(_, v) => Type::Array(v),
            _ => Type::Array(Box::new(Type::Any)),
        })
    }),
    b!("get", 2, 2, "get(x: array | map, key) -> element", |a| {
        want(a, 0, |t| array(t) || map(t), "an array or a map")?;
        Ok(elem(&arg(a, 0)))
    }),
    b!("set", 3, 3, "set(x: array | map, key, v) -> same", |a| {
        want(a, 0, |t| array(t) || map(t), "an array or a map")?;
        Ok(arg(a, 0))
    }),
    b!(
        "range",
        1,
        2,
        "range(n: int) / range(a: int, b: int) -> [int]",
        |a| {
            want(a, 0, int, "an int")?;
            want(a, 1, int, "an int")?;
            Ok(Type::Array(Box::new(Type::Int)))
        }
    ),
    b!("sum", 1, 1, "sum(a: array) -> float", |a| {
        want(a, 0, array, "an array")?;
        Ok(Type::Float)
    }),
    b!("avg", 1, 1, "avg(a: array) -> float", |a| {
        want(a, 0, array, "an array")?;
        Ok(Type::Float)
    }),
    b!("to_string", 1, 1, "to_string(v) -> str", |_| Ok(Type::Str)),
    b!("to_int", 1, 1, "to_int(v) -> int", |_| Ok(Type::Int)),
    b!("to_float", 1, 1, "to_float(v) -> float", |_| Ok(
        Type::Float
    )),
    b!("type_of", 1, 1, "type_of(v) -> str", |_| Ok(Type::Str)),
    b!("is_null", 1, 1, "is_null(v) -> bool", bool_of_any),
    b!("is_int", 1, 1, "is_int(v) -> bool", bool_of_any),
    b!("is_float", 1, 1, "is_float(v) -> bool", bool_of_any),
    b!("is_string", 1, 1, "is_string(v) -> bool", bool_of_any),
    b!("is_bool", 1, 1, "is_bool(v) -> bool", bool_of_any),
    b!("is_array", 1, 1, "is_array(v) -> bool", bool_of_any),
    b!("is_map", 1, 1, "is_map(v) -> bool", bool_of_any),
    b!("now", 0, 0, "now() -> timestamp", |_| Ok(Type::Timestamp)),
    b!(
        "coalesce",
        1,
        V,
        "coalesce(a, b, ...) -> first non-null",
        |a| {
            let mut t = Type::Null;
            for (i, x) in a.iter().enumerate() {
                t = t.join(x).ok_or(ArgMismatch {
                    index: i,
                    expected: "a value of the same type",
                })?;
            }
            Ok(t)
        }
    ),
];

/// The built-in scalar function `name`.
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// A built-in aggregate function (docs/LANGUAGE.md#aggregate-functions).
#[derive(Clone, Copy, Debug)]
pub struct Aggregate {
    /// Name as called.
    pub name: &'static str,
    /// Minimum number of arguments.
    pub min: usize,
    /// Maximum number of arguments.
    pub max: usize,
    /// Human-readable signature.
    pub signature: &'static str,
    typer: Typer,
}

impl Aggregate {
    /// The result type for these argument types.
    pub fn result(&self, args: &[Type]) -> Result<Type, ArgMismatch> {
        (self.typer)(args)
    }
}

macro_rules! a {
    ($name:literal, $min:expr, $max:expr, $sig:literal, $f:expr) => {
        Aggregate {
            name: $name,
            min: $min,
            max: $max,
            signature: $sig,
            typer: $f,
        }
    };
}

fn agg_min_max(a: &[Type]) -> Result<Type, ArgMismatch> {
    want(
        a,
        0,
        |t| num(t) || matches!(t, Type::Str | Type::Timestamp | Type::Duration),
        "a number",
    )?;
    Ok(match arg(a, 0) {
        t @ (Type::Str | Type::Timestamp | Type::Duration) => t,
        _ => Type::Float,
    })
}

/// Every aggregate function.
pub const AGGREGATES: &[Aggregate] = &[
    a!("count", 0, 1, "count() -> int", |_| Ok(Type::Int)),
    a!("sum", 1, 1, "sum(x: number) -> float", float_of_num),
    a!("avg", 1, 1, "avg(x: number) -> float", float_of_num),
    a!("min", 1, 1, "min(x: number) -> float", agg_min_max),
    a!("max", 1, 1, "max(x: number) -> float", agg_min_max),
    a!("stddev", 1, 1, "stddev(x: number) -> float", float_of_num),
    a!(
        "variance",
        1,
        1,
        "variance(x: number) -> float",
        float_of_num
    ),
    a!("median", 1, 1, "median(x: number) -> float", float_of_num),
    a!(
        "percentile",
        2,
        2,
        "percentile(x: number, p: number) -> float",
        |a| {
            num2(a)?;
            Ok(Type::Float)
        }
    ),
    a!("first", 1, 1, "first(x) -> type of x", |a| Ok(arg(a, 0))),
    a!("last", 1, 1, "last(x) -> type of x", |a| Ok(arg(a, 0))),
    a!("count_distinct", 1, 1, "count_distinct(x) -> int", |_| Ok(
        Type::Int
    )),
    a!("ema", 1, 2, "ema(x: number, n: int = 12) -> float", |a| {
        want(a, 0, num, "a number")?;
        want(a, 1, int, "an int")?;
        Ok(Type::Float)
    }),
    a!("collect", 1, 1, "collect(x) -> [type of x]", |a| Ok(
        Type::Array(Box::new(arg(a, 0)))
    )),
];

/// The aggregate function `name`.
pub fn aggregate(name: &str) -> Option<&'static Aggregate> {
    AGGREGATES.iter().find(|a| a.name == name)
}

/// All callable built-in names (scalar and aggregate), for suggestions.
pub fn all_names() -> impl Iterator<Item = &'static str> {
    BUILTINS
        .iter()
        .map(|b| b.name)
        .chain(AGGREGATES.iter().map(|a| a.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, args: &[Type]) -> Result<String, usize> {
        builtin(name)
            .expect("known builtin")
            .result(args)
            .map(|t| t.to_string())
            .map_err(|e| e.index)
    }

    #[test]
    fn scalar_signatures() {
        assert_eq!(check("abs", &[Type::Int]), Ok("int".into()));
        assert_eq!(check("sqrt", &[Type::Str]), Err(0));
        assert_eq!(check("split", &[Type::Str, Type::Str]), Ok("[str]".into()));
        assert_eq!(check("min", &[Type::Int, Type::Float]), Ok("float".into()));
    }

    #[test]
    fn aggregates_are_typed() {
        let sum = aggregate("sum").expect("sum exists");
        assert_eq!(sum.result(&[Type::Int]), Ok(Type::Float));
        assert!(sum.result(&[Type::Str]).is_err());
        assert_eq!(aggregate("count").map(|c| c.min), Some(0));
    }
}

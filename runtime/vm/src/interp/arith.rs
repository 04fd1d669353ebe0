//! Operator semantics of docs/LANGUAGE.md#arithmetic and docs/LANGUAGE.md#comparisons-and-logic:
//! numeric equality across int/float, uniform numeric promotion for
//! ordering, lexicographic strings, duration/timestamp arithmetic.

use crate::error::RuntimeErrorKind as K;
use std::cmp::Ordering;
use std::sync::Arc;
use varpulis_program::{Instr, Value};

/// The result of an operation: a value, or an error (which yields no value).
pub type OpResult = Result<Value, K>;

/// `==` (REC): ints and floats numerically, containers element-wise.
pub fn values_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Int(x), Value::Float(y)) | (Value::Float(y), Value::Int(x)) => (*x as f64) == *y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| values_eq(a, b))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|((ka, va), (kb, vb))| ka == kb && values_eq(va, vb))
        }
        _ => a == b,
    }
}

/// Ordering for `< <= > >=`, `min`, `max`, `sort`: numbers promoted,
/// strings lexicographic, timestamps and durations within their kind.
/// `None` when the pair is not ordered (mixed kinds, NaN).
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        (Value::Timestamp(x), Value::Timestamp(y)) | (Value::Duration(x), Value::Duration(y)) => {
            Some(x.cmp(y))
        }
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => None,
        },
    }
}

/// A total order used by `sort`: ordered pairs by [`compare`], otherwise by
/// kind rank, so sorting never fails.
pub fn total_cmp(a: &Value, b: &Value) -> Ordering {
    compare(a, b).unwrap_or_else(|| rank(a).cmp(&rank(b)))
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Int(_) | Value::Float(_) => 2,
        Value::Str(_) => 3,
        Value::Timestamp(_) => 4,
        Value::Duration(_) => 5,
        Value::Array(_) => 6,
        Value::Map(_) => 7,
    }
}

/// Evaluates a binary instruction on two present values.
pub fn binary(op: Instr, a: &Value, b: &Value) -> OpResult {
    use Value::*;
    match op {
        Instr::Eq => Ok(Bool(values_eq(a, b))),
        Instr::Ne => Ok(Bool(!values_eq(a, b))),
        Instr::Lt | Instr::Le | Instr::Gt | Instr::Ge => {
            let o = compare(a, b).ok_or(K::TypeMismatch)?;
            Ok(Bool(match op {
                Instr::Lt => o.is_lt(),
                Instr::Le => o.is_le(),
                Instr::Gt => o.is_gt(),
                _ => o.is_ge(),
            }))
        }
        Instr::In => contains(b, a).map(Bool),
        Instr::NotIn => contains(b, a).map(|x| Bool(!x)),
        Instr::Add => match (a, b) {
            (Int(x), Int(y)) => x.checked_add(*y).map(Int).ok_or(K::Overflow),
            (Str(x), Str(y)) => {
                let mut s = String::with_capacity(x.len() + y.len());
                s.push_str(x);
                s.push_str(y);
                Ok(Str(Arc::from(s)))
            }
            (Timestamp(t), Duration(d)) | (Duration(d), Timestamp(t)) => {
                t.checked_add(*d).map(Timestamp).ok_or(K::Overflow)
            }
            (Duration(x), Duration(y)) => x.checked_add(*y).map(Duration).ok_or(K::Overflow),
            _ => float_op(a, b, |x, y| x + y),
        },
        Instr::Sub => match (a, b) {
            (Int(x), Int(y)) => x.checked_sub(*y).map(Int).ok_or(K::Overflow),
            (Timestamp(t), Duration(d)) => t.checked_sub(*d).map(Timestamp).ok_or(K::Overflow),
            (Timestamp(x), Timestamp(y)) | (Duration(x), Duration(y)) => {
                x.checked_sub(*y).map(Duration).ok_or(K::Overflow)
            }
            _ => float_op(a, b, |x, y| x - y),
        },
        Instr::Mul => match (a, b) {
            (Int(x), Int(y)) => x.checked_mul(*y).map(Int).ok_or(K::Overflow),
            (Duration(d), Int(n)) | (Int(n), Duration(d)) => {
                d.checked_mul(*n).map(Duration).ok_or(K::Overflow)
            }
            (Duration(d), Float(f)) | (Float(f), Duration(d)) => {
                let r = (*d as f64) * f;
                if r.is_finite() && r.abs() < 9.2e18 {
                    Ok(Duration(r as i64))
                } else {
                    Err(K::Overflow)
                }
            }
            _ => float_op(a, b, |x, y| x * y),
        },
        Instr::Div => match (a, b) {
            (_, Int(0)) => Err(K::DivisionByZero),
            (Int(x), Int(y)) => x.checked_div(*y).map(Int).ok_or(K::Overflow),
            (Duration(d), Int(n)) => d.checked_div(*n).map(Duration).ok_or(K::Overflow),
            (Duration(_), Duration(0)) => Err(K::DivisionByZero),
            (Duration(x), Duration(y)) => Ok(Float(*x as f64 / *y as f64)),
            _ => {
                if b.as_f64() == Some(0.0) {
                    return Err(K::DivisionByZero);
                }
                float_op(a, b, |x, y| x / y)
            }
        },
        Instr::Rem => match (a, b) {
            (_, Int(0)) => Err(K::DivisionByZero),
            (Int(x), Int(y)) => x.checked_rem(*y).map(Int).ok_or(K::Overflow),
            _ => {
                if b.as_f64() == Some(0.0) {
                    return Err(K::DivisionByZero);
                }
                float_op(a, b, |x, y| x % y)
            }
        },
        Instr::Pow => pow(a, b),
        Instr::BitAnd | Instr::BitOr | Instr::BitXor | Instr::Shl | Instr::Shr => {
            let (Int(x), Int(y)) = (a, b) else {
                return Err(K::TypeMismatch);
            };
            match op {
                Instr::BitAnd => Ok(Int(x & y)),
                Instr::BitOr => Ok(Int(x | y)),
                Instr::BitXor => Ok(Int(x ^ y)),
                _ => {
                    let s = u32::try_from(*y)
                        .ok()
                        .filter(|s| *s < 64)
                        .ok_or(K::Overflow)?;
                    Ok(Int(if op == Instr::Shl { x << s } else { x >> s }))
                }
            }
        }
        _ => Err(K::Internal),
    }
}

/// `**` and `pow`: int**int (exponent ≥ 0) → int, otherwise float.
pub fn pow(a: &Value, b: &Value) -> OpResult {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) if *y >= 0 => {
            let e = u32::try_from(*y).map_err(|_| K::Overflow)?;
            x.checked_pow(e).map(Value::Int).ok_or(K::Overflow)
        }
        _ => float_op(a, b, f64::powf),
    }
}

fn float_op(a: &Value, b: &Value, f: impl Fn(f64, f64) -> f64) -> OpResult {
    match (a, b) {
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
            Ok(Value::Float(f(x, y)))
        }
        _ => Err(K::TypeMismatch),
    }
}

/// `needle in hay`: element of array, key of map, substring of string.
pub fn contains(hay: &Value, needle: &Value) -> Result<bool, K> {
    match (hay, needle) {
        (Value::Array(a), n) => Ok(a.iter().any(|x| values_eq(x, n))),
        (Value::Map(m), Value::Str(k)) => Ok(m.contains_key(k)),
        (Value::Str(s), Value::Str(sub)) => Ok(s.contains(&**sub)),
        _ => Err(K::TypeMismatch),
    }
}

/// Unary `-`.
pub fn neg(a: &Value) -> OpResult {
    match a {
        Value::Int(x) => x.checked_neg().map(Value::Int).ok_or(K::Overflow),
        Value::Float(x) => Ok(Value::Float(-x)),
        Value::Duration(d) => d.checked_neg().map(Value::Duration).ok_or(K::Overflow),
        _ => Err(K::TypeMismatch),
    }
}

/// Resolves a possibly negative index against a length.
pub fn resolve_index(i: i64, len: usize) -> Option<usize> {
    let len_i = i64::try_from(len).ok()?;
    let idx = if i < 0 { len_i + i } else { i };
    if (0..len_i).contains(&idx) {
        usize::try_from(idx).ok()
    } else {
        None
    }
}

/// `a[i]`.
pub fn index(target: &Value, i: &Value) -> OpResult {
    match (target, i) {
        (Value::Array(a), Value::Int(i)) => resolve_index(*i, a.len())
            .and_then(|i| a.get(i).cloned())
            .ok_or(K::IndexOutOfRange),
        (Value::Str(s), Value::Int(i)) => {
            let n = s.chars().count();
            resolve_index(*i, n)
                .and_then(|i| s.chars().nth(i))
                .map(|c| Value::str(c.to_string()))
                .ok_or(K::IndexOutOfRange)
        }
        (Value::Map(m), Value::Str(k)) => m.get(k).cloned().ok_or(K::IndexOutOfRange),
        _ => Err(K::TypeMismatch),
    }
}

/// `a[s:e]` with optional bounds, negative from the end, clamped.
pub fn slice(target: &Value, start: Option<&Value>, end: Option<&Value>) -> OpResult {
    let bound = |v: Option<&Value>, len: usize, default: usize| -> Result<usize, K> {
        match v {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Int(i)) => {
                let len_i = i64::try_from(len).map_err(|_| K::Overflow)?;
                let x = if *i < 0 { len_i + i } else { *i };
                Ok(usize::try_from(x.clamp(0, len_i)).unwrap_or(0))
            }
            Some(_) => Err(K::TypeMismatch),
        }
    };
    match target {
        Value::Array(a) => {
            let s = bound(start, a.len(), 0)?;
            let e = bound(end, a.len(), a.len())?;
            Ok(Value::array(a.get(s..e.max(s)).unwrap_or(&[]).to_vec()))
        }
        Value::Str(text) => {
            let n = text.chars().count();
            let s = bound(start, n, 0)?;
            let e = bound(end, n, n)?;
            Ok(Value::str(
                text.chars()
                    .skip(s)
                    .take(e.saturating_sub(s))
                    .collect::<String>(),
            ))
        }
        _ => Err(K::TypeMismatch),
    }
}

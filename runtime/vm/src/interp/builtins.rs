//! Built-in scalar functions (docs/LANGUAGE.md#built-in-functions and the REC set).
//!
//! Arguments are optional values; unless a function says otherwise an absent
//! argument makes the result absent without an error (absence propagates),
//! while present arguments of the wrong type are a
//! `RuntimeErrorKind::TypeMismatch`.

use super::arith::{compare, contains, pow, resolve_index, total_cmp};
use crate::error::RuntimeErrorKind as K;
use std::sync::Arc;
use varpulis_program::{Builtin, Value, ValueMap};

/// The most elements `range` builds.
pub const MAX_RANGE: i64 = 10_000_000;

/// Calls a built-in. `now` is the engine's current event time.
pub fn call(b: Builtin, args: &[Option<Value>], now: i64) -> Result<Option<Value>, K> {
    let (lo, hi) = b.arity();
    if args.len() < usize::from(lo) || (hi != u8::MAX && args.len() > usize::from(hi)) {
        return Err(K::Arity);
    }
    match b {
        Builtin::Now => return Ok(Some(Value::Timestamp(now))),
        Builtin::Coalesce => {
            let mut saw_null = false;
            for a in args {
                match a {
                    Some(Value::Null) => saw_null = true,
                    Some(v) => return Ok(Some(v.clone())),
                    None => {}
                }
            }
            return Ok(saw_null.then_some(Value::Null));
        }
        _ => {}
    }
    let mut vals: [&Value; 3] = [&Value::Null; 3];
    let mut concat_args = Vec::new();
    for (i, a) in args.iter().enumerate() {
        let Some(v) = a else { return Ok(None) };
        if let Some(slot) = vals.get_mut(i) {
            *slot = v;
        }
        if b == Builtin::Concat {
            concat_args.push(v);
        }
    }
    let [a, x, y] = vals;
    let has = |i: usize| args.len() > i;
    call_present(b, a, x, y, has(1), has(2), &concat_args).map(Some)
}

fn num(v: &Value) -> Result<f64, K> {
    v.as_f64().ok_or(K::TypeMismatch)
}

fn text(v: &Value) -> Result<&str, K> {
    v.as_str().ok_or(K::TypeMismatch)
}

fn int(v: &Value) -> Result<i64, K> {
    match v {
        Value::Int(i) => Ok(*i),
        _ => Err(K::TypeMismatch),
    }
}

fn to_int_checked(f: f64) -> Result<i64, K> {
    if f.is_finite() && f >= i64::MIN as f64 && f < i64::MAX as f64 {
        Ok(f as i64)
    } else {
        Err(K::BadConversion)
    }
}

fn round_like(a: &Value, f: fn(f64) -> f64) -> Result<Value, K> {
    match a {
        Value::Int(i) => Ok(Value::Int(*i)),
        Value::Float(x) => to_int_checked(f(*x)).map(Value::Int),
        _ => Err(K::TypeMismatch),
    }
}

fn float_fn(a: &Value, f: fn(f64) -> f64) -> Result<Value, K> {
    Ok(Value::Float(f(num(a)?)))
}

fn pick(a: &Value, b: &Value, want_less: bool) -> Result<Value, K> {
    let o = compare(a, b).ok_or(K::TypeMismatch)?;
    Ok(if o.is_le() == want_less { a } else { b }.clone())
}

#[allow(clippy::too_many_lines)] // One flat dispatch table reads best.
fn call_present(
    b: Builtin,
    a: &Value,
    x: &Value,
    y: &Value,
    has_x: bool,
    has_y: bool,
    rest: &[&Value],
) -> Result<Value, K> {
    use Value::*;
    Ok(match b {
        Builtin::Abs => match a {
            Int(i) => Int(i.checked_abs().ok_or(K::Overflow)?),
            Float(f) => Float(f.abs()),
            Duration(d) => Duration(d.checked_abs().ok_or(K::Overflow)?),
            _ => return Err(K::TypeMismatch),
        },
        Builtin::Sqrt => float_fn(a, f64::sqrt)?,
        Builtin::Floor => round_like(a, f64::floor)?,
        Builtin::Ceil => round_like(a, f64::ceil)?,
        Builtin::Round => round_like(a, f64::round)?,
        Builtin::Pow => pow(a, x)?,
        Builtin::Log => float_fn(a, f64::ln)?,
        Builtin::Log10 => float_fn(a, f64::log10)?,
        Builtin::Exp => float_fn(a, f64::exp)?,
        Builtin::Sin => float_fn(a, f64::sin)?,
        Builtin::Cos => float_fn(a, f64::cos)?,
        Builtin::Tan => float_fn(a, f64::tan)?,
        Builtin::Min => pick(a, x, true)?,
        Builtin::Max => pick(a, x, false)?,
        Builtin::Clamp => pick(&pick(a, x, false)?, y, true)?,
        Builtin::Len => match a {
            Str(s) => Int(s.chars().count() as i64),
            Array(v) => Int(v.len() as i64),
            Map(m) => Int(m.len() as i64),
            _ => return Err(K::TypeMismatch),
        },
        Builtin::Trim => Value::str(text(a)?.trim()),
        Builtin::Lower => Value::str(text(a)?.to_lowercase()),
        Builtin::Upper => Value::str(text(a)?.to_uppercase()),
        Builtin::Split => {
            let (s, sep) = (text(a)?, text(x)?);
            let parts: Vec<Value> = if sep.is_empty() {
                s.chars().map(|c| Value::str(c.to_string())).collect()
            } else {
                s.split(sep).map(Value::str).collect()
            };
            Value::array(parts)
        }
        Builtin::Join => {
            let (Array(items), sep) = (a, text(x)?) else {
                return Err(K::TypeMismatch);
            };
            let parts: Vec<String> = items.iter().map(ToString::to_string).collect();
            Value::str(parts.join(sep))
        }
        Builtin::Replace => Value::str(text(a)?.replace(text(x)?, text(y)?)),
        Builtin::StartsWith => Bool(text(a)?.starts_with(text(x)?)),
        Builtin::EndsWith => Bool(text(a)?.ends_with(text(x)?)),
        Builtin::Substring => {
            let s = text(a)?;
            let n = s.chars().count() as i64;
            let clamp = |i: i64| usize::try_from(i.clamp(0, n)).unwrap_or(0);
            let start = clamp(int(x)?);
            let end = if has_y { clamp(int(y)?) } else { clamp(n) };
            Value::str(
                s.chars()
                    .skip(start)
                    .take(end.saturating_sub(start))
                    .collect::<String>(),
            )
        }
        Builtin::Reverse => match a {
            Str(s) => Value::str(s.chars().rev().collect::<String>()),
            Array(v) => Value::array(v.iter().rev().cloned().collect()),
            _ => return Err(K::TypeMismatch),
        },
        Builtin::Concat => {
            if rest.iter().all(|v| matches!(v, Array(_))) {
                let mut out = Vec::new();
                for v in rest {
                    if let Array(items) = v {
                        out.extend(items.iter().cloned());
                    }
                }
                Value::array(out)
            } else {
                let mut s = String::new();
                for v in rest {
                    s.push_str(&v.to_string());
                }
                Value::str(s)
            }
        }
        Builtin::First | Builtin::Last => {
            let first = b == Builtin::First;
            match a {
                Array(v) => {
                    let item = if first { v.first() } else { v.last() };
                    item.cloned().ok_or(K::IndexOutOfRange)?
                }
                Str(s) => {
                    let c = if first {
                        s.chars().next()
                    } else {
                        s.chars().last()
                    };
                    Value::str(c.ok_or(K::IndexOutOfRange)?.to_string())
                }
                _ => return Err(K::TypeMismatch),
            }
        }
        Builtin::Push => {
            let Array(v) = a else {
                return Err(K::TypeMismatch);
            };
            let mut out = Vec::with_capacity(v.len() + 1);
            out.extend(v.iter().cloned());
            out.push(x.clone());
            Value::array(out)
        }
        Builtin::Pop => {
            let Array(v) = a else {
                return Err(K::TypeMismatch);
            };
            Value::array(v.get(..v.len().saturating_sub(1)).unwrap_or(&[]).to_vec())
        }
        Builtin::Sort => {
            let Array(v) = a else {
                return Err(K::TypeMismatch);
            };
            let mut out = v.to_vec();
            out.sort_by(total_cmp);
            Value::array(out)
        }
        Builtin::Contains => Bool(contains(a, x)?),
        Builtin::Keys => {
            let Map(m) = a else {
                return Err(K::TypeMismatch);
            };
            Value::array(m.keys().map(|k| Str(k.clone())).collect())
        }
        Builtin::Values => {
            let Map(m) = a else {
                return Err(K::TypeMismatch);
            };
            Value::array(m.values().cloned().collect())
        }
        Builtin::Get => match (a, x) {
            (Array(v), Int(i)) => resolve_index(*i, v.len())
                .and_then(|i| v.get(i).cloned())
                .unwrap_or(Null),
            (Map(m), Str(k)) => m.get(k).cloned().unwrap_or(Null),
            _ => return Err(K::TypeMismatch),
        },
        Builtin::Set => match (a, x) {
            (Array(v), Int(i)) => {
                let idx = resolve_index(*i, v.len()).ok_or(K::IndexOutOfRange)?;
                let mut out = v.to_vec();
                if let Some(slot) = out.get_mut(idx) {
                    *slot = y.clone();
                }
                Value::array(out)
            }
            (Map(m), Str(k)) => {
                let mut out: ValueMap = (**m).clone();
                out.insert(k.clone(), y.clone());
                Value::Map(Arc::new(out))
            }
            _ => return Err(K::TypeMismatch),
        },
        Builtin::Range => {
            let (from, to) = if has_x {
                (int(a)?, int(x)?)
            } else {
                (0, int(a)?)
            };
            range(from, to, false)?
        }
        Builtin::Sum | Builtin::Avg => {
            let Array(v) = a else {
                return Err(K::TypeMismatch);
            };
            let mut sum = 0.0;
            let mut n = 0usize;
            for item in v.iter() {
                sum += num(item)?;
                n += 1;
            }
            if b == Builtin::Sum {
                Float(sum)
            } else if n == 0 {
                Null
            } else {
                Float(sum / n as f64)
            }
        }
        Builtin::ToString => Value::str(a.to_string()),
        Builtin::ToInt => match a {
            Int(i) => Int(*i),
            Float(f) => Int(to_int_checked(f.trunc())?),
            Bool(b) => Int(i64::from(*b)),
            Str(s) => {
                let t = s.trim();
                match t.parse::<i64>() {
                    Ok(i) => Int(i),
                    Err(_) => Int(to_int_checked(
                        t.parse::<f64>().map_err(|_| K::BadConversion)?.trunc(),
                    )?),
                }
            }
            Timestamp(t) | Duration(t) => Int(*t),
            _ => return Err(K::BadConversion),
        },
        Builtin::ToFloat => match a {
            Int(i) => Float(*i as f64),
            Float(f) => Float(*f),
            Bool(b) => Float(if *b { 1.0 } else { 0.0 }),
            Str(s) => Float(s.trim().parse::<f64>().map_err(|_| K::BadConversion)?),
            _ => return Err(K::BadConversion),
        },
        Builtin::TypeOf => Value::str(a.type_name()),
        Builtin::IsNull => Bool(matches!(a, Null)),
        Builtin::IsInt => Bool(matches!(a, Int(_))),
        Builtin::IsFloat => Bool(matches!(a, Float(_))),
        Builtin::IsString => Bool(matches!(a, Str(_))),
        Builtin::IsBool => Bool(matches!(a, Bool(_))),
        Builtin::IsArray => Bool(matches!(a, Array(_))),
        Builtin::IsMap => Bool(matches!(a, Map(_))),
        Builtin::Now | Builtin::Coalesce => return Err(K::Internal),
    })
}

/// `a..b` / `a..=b` as an int array (at most [`MAX_RANGE`] elements).
pub fn range(from: i64, to: i64, inclusive: bool) -> Result<Value, K> {
    let end = if inclusive {
        to.checked_add(1).ok_or(K::Overflow)?
    } else {
        to
    };
    if end.saturating_sub(from) > MAX_RANGE {
        return Err(K::Overflow);
    }
    Ok(Value::array((from..end).map(Value::Int).collect()))
}

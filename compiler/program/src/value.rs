//! Run-time values ([`Value`]) and hashable keys ([`ValueKey`]).
//!
//! A [`Value`] is what an expression evaluates to (docs/LANGUAGE.md#types). "No
//! value" (docs/LANGUAGE.md#missing-values-and-null) is *not* a `Value`: everywhere absence is possible the type is
//! `Option<Value>` and `None` means absent, so `Value::Null` stays a real value
//! (`x == null` is true only for an explicit null).
//!
//! Strings, arrays and maps are reference counted so cloning a value (into a
//! window buffer, an output record, a join table) never copies its contents.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A map value: string keys in sorted order (deterministic iteration and output).
pub type ValueMap = BTreeMap<Arc<str>, Value>;

/// A VPL run-time value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// The explicit `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// An immutable, cheaply clonable string.
    Str(Arc<str>),
    /// Nanoseconds since the Unix epoch, UTC.
    Timestamp(i64),
    /// A span of time in nanoseconds.
    Duration(i64),
    /// An immutable array.
    Array(Arc<Vec<Value>>),
    /// An immutable map with string keys.
    Map(Arc<ValueMap>),
}

impl Value {
    /// A string value from anything string-like.
    pub fn str(s: impl AsRef<str>) -> Value {
        Value::Str(Arc::from(s.as_ref()))
    }

    /// An array value.
    pub fn array(items: Vec<Value>) -> Value {
        Value::Array(Arc::new(items))
    }

    /// A map value.
    pub fn map(entries: ValueMap) -> Value {
        Value::Map(Arc::new(entries))
    }

    /// The name `type_of` returns for this value (docs/LANGUAGE.md#built-in-functions).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Timestamp(_) => "timestamp",
            Value::Duration(_) => "duration",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
        }
    }

    /// The value as a float if it is an int or a float.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The value as a string slice if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a bool if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Whether the value is an int or a float.
    pub fn is_numeric(&self) -> bool {
        matches!(self, Value::Int(_) | Value::Float(_))
    }

    /// Converts to JSON for output: timestamps become RFC 3339 strings,
    /// durations integer nanoseconds, non-finite floats `null`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.to_string()),
            Value::Timestamp(t) => J::String(crate::time::format_rfc3339(*t)),
            Value::Duration(d) => J::from(*d),
            Value::Array(a) => J::Array(a.iter().map(Value::to_json).collect()),
            Value::Map(m) => J::Object(
                m.iter()
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Appends [`Value::to_json`]'s JSON text to `buf` without building the JSON tree: the
    /// bytes are the same as `serde_json::to_writer(buf, &value.to_json())` (maps in key
    /// order, floats in serde_json's shortest form, non-finite floats `null`).
    pub fn write_json(&self, buf: &mut Vec<u8>) {
        match self {
            Value::Null => buf.extend_from_slice(b"null"),
            Value::Bool(true) => buf.extend_from_slice(b"true"),
            Value::Bool(false) => buf.extend_from_slice(b"false"),
            // Writing numbers and strings into a Vec cannot fail.
            Value::Int(i) | Value::Duration(i) => {
                let _ = serde_json::to_writer(&mut *buf, i);
            }
            Value::Float(f) => {
                let _ = serde_json::to_writer(&mut *buf, f);
            }
            Value::Str(s) => {
                let _ = serde_json::to_writer(&mut *buf, &**s);
            }
            Value::Timestamp(t) => {
                buf.push(b'"');
                crate::time::write_rfc3339(buf, *t);
                buf.push(b'"');
            }
            Value::Array(items) => {
                buf.push(b'[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        buf.push(b',');
                    }
                    v.write_json(buf);
                }
                buf.push(b']');
            }
            Value::Map(m) => {
                buf.push(b'{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        buf.push(b',');
                    }
                    let _ = serde_json::to_writer(&mut *buf, &**k);
                    buf.push(b':');
                    v.write_json(buf);
                }
                buf.push(b'}');
            }
        }
    }

    /// Converts a JSON value: integral numbers become `Int`, other numbers
    /// `Float`, objects `Map` (docs/LANGUAGE.md#json-events).
    pub fn from_json(j: &serde_json::Value) -> Value {
        use serde_json::Value as J;
        match j {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::str(s),
            J::Array(a) => Value::array(a.iter().map(Value::from_json).collect()),
            J::Object(o) => Value::map(
                o.iter()
                    .map(|(k, v)| (Arc::from(k.as_str()), Value::from_json(v)))
                    .collect(),
            ),
        }
    }
}

/// Display is the `to_string` / `.print` rendering: strings bare, floats
/// always with a decimal point, arrays `[a, b]`, maps `{k: v}`, timestamps
/// RFC 3339, durations with the largest exact unit (`90s`, `5m`, `1500ms`).
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => {
                if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e16 {
                    write!(f, "{x:.1}")
                } else {
                    write!(f, "{x}")
                }
            }
            Value::Str(s) => f.write_str(s),
            Value::Timestamp(t) => f.write_str(&crate::time::format_rfc3339(*t)),
            Value::Duration(d) => f.write_str(&crate::time::format_duration(*d)),
            Value::Array(a) => {
                f.write_str("[")?;
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write_nested(f, v)?;
                }
                f.write_str("]")
            }
            Value::Map(m) => {
                f.write_str("{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: ")?;
                    write_nested(f, v)?;
                }
                f.write_str("}")
            }
        }
    }
}

/// Inside arrays and maps strings are quoted so `["a, b"]` stays readable.
fn write_nested(f: &mut fmt::Formatter<'_>, v: &Value) -> fmt::Result {
    match v {
        Value::Str(s) => write!(f, "{s:?}"),
        other => write!(f, "{other}"),
    }
}

/// A value usable as a hash key (partition keys, join keys, `distinct`,
/// `count_distinct`).
///
/// Equality follows the language's `==` (docs/LANGUAGE.md#comparisons-and-logic): ints and
/// floats compare numerically (`3` and `3.0` are the same key), everything
/// else structurally. Floats compare by value with all NaNs equal, so the
/// relation is a true equivalence and `Hash` is consistent with it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ValueKey(pub Value);

impl PartialEq for ValueKey {
    fn eq(&self, other: &Self) -> bool {
        key_eq(&self.0, &other.0)
    }
}

impl Eq for ValueKey {}

impl Hash for ValueKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        key_hash(&self.0, state);
    }
}

fn key_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
        (Value::Int(x), Value::Float(y)) | (Value::Float(y), Value::Int(x)) => (*x as f64) == *y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| key_eq(a, b))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|((ka, va), (kb, vb))| ka == kb && key_eq(va, vb))
        }
        _ => a == b,
    }
}

fn key_hash<H: Hasher>(v: &Value, state: &mut H) {
    match v {
        Value::Null => 0u8.hash(state),
        Value::Bool(b) => (1u8, b).hash(state),
        Value::Int(i) => (2u8, *i).hash(state),
        Value::Float(f) => {
            // Integral floats hash like the equal int so `3 == 3.0` keys collide.
            if f.fract() == 0.0 && *f >= i64::MIN as f64 && *f < i64::MAX as f64 {
                (2u8, *f as i64).hash(state);
            } else if f.is_nan() {
                (3u8, u64::MAX).hash(state);
            } else {
                (3u8, f.to_bits()).hash(state);
            }
        }
        Value::Str(s) => (4u8, &**s).hash(state),
        Value::Timestamp(t) => (5u8, *t).hash(state),
        Value::Duration(d) => (6u8, *d).hash(state),
        Value::Array(a) => {
            (7u8, a.len()).hash(state);
            for x in a.iter() {
                key_hash(x, state);
            }
        }
        Value::Map(m) => {
            (8u8, m.len()).hash(state);
            for (k, x) in m.iter() {
                (**k).hash(state);
                key_hash(x, state);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;

    fn h(v: &Value) -> u64 {
        let mut s = DefaultHasher::new();
        ValueKey(v.clone()).hash(&mut s);
        s.finish()
    }

    #[test]
    fn write_json_is_byte_identical_to_the_serde_json_tree() {
        let mut map = ValueMap::new();
        map.insert(Arc::from("z"), Value::Int(-1));
        map.insert(
            Arc::from("a\"q"),
            Value::array(vec![Value::Null, Value::Bool(false)]),
        );
        map.insert(Arc::from("é"), Value::Float(f64::INFINITY));
        let values = [
            Value::Null,
            Value::Bool(true),
            Value::Int(i64::MIN),
            Value::Int(42),
            Value::Float(3.0),
            Value::Float(-0.0),
            Value::Float(1e300),
            Value::Float(0.1 + 0.2),
            Value::Float(f64::NAN),
            Value::str("tab\tquote\"nl\n\u{1}é😀"),
            Value::Timestamp(0),
            Value::Timestamp(1_700_000_000_123_456_789),
            Value::Timestamp(1_700_000_000_123_456_000),
            Value::Timestamp(-1),
            Value::Timestamp(i64::MIN),
            Value::Timestamp(i64::MAX),
            Value::Duration(90_000_000_000),
            Value::array(vec![]),
            Value::map(ValueMap::new()),
            Value::map(map.clone()),
            Value::array(vec![Value::map(map), Value::Timestamp(5)]),
        ];
        for v in values {
            let mut direct = Vec::new();
            v.write_json(&mut direct);
            let tree = serde_json::to_vec(&v.to_json()).expect("serialize");
            assert_eq!(
                String::from_utf8_lossy(&direct),
                String::from_utf8_lossy(&tree),
                "{v:?}"
            );
        }
    }

    #[test]
    fn int_and_integral_float_are_the_same_key() {
        assert_eq!(ValueKey(Value::Int(3)), ValueKey(Value::Float(3.0)));
        assert_eq!(h(&Value::Int(3)), h(&Value::Float(3.0)));
        assert_ne!(ValueKey(Value::Int(3)), ValueKey(Value::Float(3.5)));
        assert_eq!(
            ValueKey(Value::Float(f64::NAN)),
            ValueKey(Value::Float(f64::NAN))
        );
    }

    #[test]
    fn display_renders_floats_with_a_point_and_nested_strings_quoted() {
        assert_eq!(Value::Float(2.0).to_string(), "2.0");
        assert_eq!(Value::Float(2.5).to_string(), "2.5");
        let a = Value::array(vec![Value::str("x"), Value::Int(1)]);
        assert_eq!(a.to_string(), "[\"x\", 1]");
        assert_eq!(Value::Duration(90_000_000_000).to_string(), "90s");
    }

    #[test]
    fn json_numbers_become_int_when_integral() {
        let j: serde_json::Value = serde_json::from_str(r#"[1, 1.5, {"a": null}]"#).expect("json");
        let v = Value::from_json(&j);
        let Value::Array(a) = v else { panic!("array") };
        assert_eq!(a[0], Value::Int(1));
        assert_eq!(a[1], Value::Float(1.5));
        assert!(matches!(a[2], Value::Map(_)));
    }
}

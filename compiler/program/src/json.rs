//! The tolerant JSON event reader (docs/LANGUAGE.md#json-events).
//!
//! Accepted shapes, all as one object:
//! - `{"event_type": "T", "data": {...}}` (`.evt`/JSONL, REF),
//! - `{"event_type": "T", "fields": {...}}` (REST),
//! - flat `{"type" | "event_type": "T", field: ...}` (brokers),
//! - `{"type": "event", "data": {"event_type": "T", ...fields}}` (WebSocket).
//!
//! The type comes from `event_type` (top level, then inside the field
//! object), then `type` (same order). Fields come from `data` or `fields`
//! when that key holds an object, else from the top level minus the type key.
//! An optional `timestamp` (top level, else in the field object) is epoch
//! milliseconds when a number, RFC 3339 when a string; it becomes the record's
//! event time and is not kept as a field.

use crate::decode::RawEvent;
use crate::value::Value;
use serde_json::Value as J;
use thiserror::Error;

/// Why a JSON text is not an event.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum JsonEventError {
    /// Not valid JSON.
    #[error("invalid JSON: {0}")]
    Syntax(String),
    /// Valid JSON but not an object.
    #[error("a JSON event must be an object")]
    NotAnObject,
    /// No string `event_type` or `type`.
    #[error("missing string `event_type` (or `type`)")]
    MissingType,
    /// `timestamp` is neither a number nor an RFC 3339 string.
    #[error("invalid timestamp `{0}` (expected epoch milliseconds or RFC 3339)")]
    BadTimestamp(String),
}

/// Parses one JSON text as an event.
///
/// This is the hot path of `varpulis run`: the text is read in one pass
/// straight into [`Value`]s (no intermediate `serde_json::Value` tree), then
/// the shape rules above pick the type, the fields and the timestamp.
pub fn parse_json_event(text: &str) -> Result<RawEvent, JsonEventError> {
    parse_json_event_or(text, None)
}

/// Parses one JSON text as an event whose type defaults to `default_type`
/// when it names none (a broker topic bound to one type by
/// `Type.from(Conn, topic: ...)` may carry flat objects of fields).
pub fn parse_json_event_or(
    text: &str,
    default_type: Option<&str>,
) -> Result<RawEvent, JsonEventError> {
    let top: Top = match serde_json::from_str(text) {
        Ok(top) => top,
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            return Err(JsonEventError::NotAnObject)
        }
        Err(e) => return Err(JsonEventError::Syntax(e.to_string())),
    };
    shape(top.0, default_type)
}

/// Reads an event from an already parsed JSON value.
pub fn raw_event_from_json(v: &J) -> Result<RawEvent, JsonEventError> {
    let top = v.as_object().ok_or(JsonEventError::NotAnObject)?;
    let entries = top
        .iter()
        .map(|(k, v)| {
            let entry = match v {
                J::Object(o) => Entry::Object(
                    o.iter()
                        .map(|(k, v)| (k.clone(), Value::from_json(v)))
                        .collect(),
                ),
                other => Entry::Value(Value::from_json(other)),
            };
            (k.clone(), entry)
        })
        .collect();
    shape(entries, None)
}

/// Applies the shape rules of the module docs to the top-level entries.
fn shape<K: AsRef<str> + Into<String>>(
    top: Vec<(K, Entry<'_>)>,
    default_type: Option<&str>,
) -> Result<RawEvent, JsonEventError> {
    let body: Option<&Vec<(String, Value)>> = ["data", "fields"].iter().find_map(|k| {
        top.iter().find_map(|(name, e)| match e {
            Entry::Object(fields) if name.as_ref() == *k => Some(fields),
            _ => None,
        })
    });
    let top_str = |k: &str| {
        top.iter().find_map(|(name, e)| match e {
            Entry::Text(s) if name.as_ref() == k => Some(s.to_string()),
            Entry::Value(Value::Str(s)) if name.as_ref() == k => Some(s.to_string()),
            _ => None,
        })
    };
    let body_str = |k: &str| {
        body.and_then(|b| {
            b.iter().find_map(|(name, v)| match v {
                Value::Str(s) if name == k => Some(s.to_string()),
                _ => None,
            })
        })
    };
    // Which object and key supplied the type, so that key is not a field.
    let (event_type, type_in_body, type_key) = if let Some(t) = top_str("event_type") {
        (t, false, "event_type")
    } else if let Some(t) = body_str("event_type") {
        (t, true, "event_type")
    } else if let Some(t) = top_str("type") {
        (t, false, "type")
    } else if let Some(t) = body_str("type") {
        (t, true, "type")
    } else if let Some(t) = default_type {
        // No key names the type, so no key is dropped from the fields.
        (t.to_string(), false, "")
    } else {
        return Err(JsonEventError::MissingType);
    };
    let top_ts = top
        .iter()
        .find(|(k, _)| k.as_ref() == "timestamp")
        .map(|(_, e)| e);
    let body_ts = body.and_then(|b| b.iter().find(|(k, _)| k == "timestamp").map(|(_, v)| v));
    let timestamp = match (top_ts, body_ts) {
        (Some(Entry::Value(v)), _) => Some(parse_timestamp(v)?),
        (Some(Entry::Text(t)), _) => Some(parse_timestamp(&Value::str(t))?),
        (Some(Entry::Object(_)), _) => return Err(JsonEventError::BadTimestamp("{...}".into())),
        (None, Some(v)) => Some(parse_timestamp(v)?),
        (None, None) => None,
    };
    // The timestamp key is dropped from the object the fields come from.
    let fields = match body {
        Some(b) => b
            .iter()
            .filter(|(k, _)| !(type_in_body && k == type_key))
            .filter(|(k, _)| k != "timestamp")
            .cloned()
            .collect(),
        None => top
            .into_iter()
            .filter(|(k, _)| k.as_ref() != type_key && k.as_ref() != "timestamp")
            .map(|(k, e)| (k.into(), e.into_value()))
            .collect(),
    };
    Ok(RawEvent {
        event_type,
        fields,
        timestamp,
    })
}

/// A top-level member: objects are kept as field lists (a candidate `data`
/// or `fields` envelope), strings without escapes as borrowed text (the
/// event type's name is copied once, into the [`RawEvent`], and a field's
/// string becomes a [`Value`] only if it is kept), anything else as a value.
enum Entry<'de> {
    Object(Vec<(String, Value)>),
    Text(std::borrow::Cow<'de, str>),
    Value(Value),
}

impl Entry<'_> {
    fn into_value(self) -> Value {
        match self {
            Entry::Value(v) => v,
            Entry::Text(t) => Value::str(t),
            Entry::Object(fields) => Value::map(
                fields
                    .into_iter()
                    .map(|(k, v)| (std::sync::Arc::from(k.as_str()), v))
                    .collect(),
            ),
        }
    }
}

/// Members with the last value of each duplicated key, at the key's first position: what a
/// parsed `serde_json` object holds (and JavaScript's `JSON.parse`), so both readers of this
/// module agree. Small objects are checked pairwise without allocating; events rarely repeat a
/// key.
fn last_wins<K: AsRef<str> + Eq + std::hash::Hash + Clone, T>(entries: Vec<(K, T)>) -> Vec<(K, T)> {
    let duplicated = if entries.len() <= 16 {
        entries
            .iter()
            .enumerate()
            .any(|(i, (k, _))| entries.iter().skip(i + 1).any(|(other, _)| other == k))
    } else {
        let mut seen = std::collections::HashSet::with_capacity(entries.len());
        !entries.iter().all(|(k, _)| seen.insert(k.as_ref()))
    };
    if !duplicated {
        return entries;
    }
    let mut index: std::collections::HashMap<K, usize> =
        std::collections::HashMap::with_capacity(entries.len());
    let mut out: Vec<(K, T)> = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        match index.get(&k) {
            Some(&i) => {
                if let Some(slot) = out.get_mut(i) {
                    slot.1 = v;
                }
            }
            None => {
                index.insert(k.clone(), out.len());
                out.push((k, v));
            }
        }
    }
    out
}

/// The top-level object, members in input order.
struct Top<'de>(Vec<(Key<'de>, Entry<'de>)>);

/// A top-level member name: borrowed from the input when it has no escapes, so the names that do
/// not become fields (`event_type`, `timestamp`) cost no allocation.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key<'de>(std::borrow::Cow<'de, str>);

impl AsRef<str> for Key<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<Key<'_>> for String {
    fn from(k: Key<'_>) -> String {
        k.0.into_owned()
    }
}

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(s)))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> serde::Deserialize<'de> for Top<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Top<'de>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Top<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Top<'de>, A::Error> {
                let mut out = Vec::with_capacity(m.size_hint().unwrap_or(8));
                while let Some(k) = m.next_key::<Key<'de>>()? {
                    let v: EntrySeed<'de> = m.next_value()?;
                    out.push((k, v.0));
                }
                Ok(Top(last_wins(out)))
            }
        }
        d.deserialize_map(V)
    }
}

/// Deserialises one member value into an [`Entry`].
struct EntrySeed<'de>(Entry<'de>);

impl<'de> serde::Deserialize<'de> for EntrySeed<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<EntrySeed<'de>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = EntrySeed<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<EntrySeed<'de>, A::Error> {
                let mut out = Vec::with_capacity(m.size_hint().unwrap_or(8));
                while let Some(k) = m.next_key::<String>()? {
                    let v: JsonValue = m.next_value()?;
                    out.push((k, v.0));
                }
                Ok(EntrySeed(Entry::Object(last_wins(out))))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                s: A,
            ) -> Result<EntrySeed<'de>, A::Error> {
                ValueVisitor
                    .visit_seq(s)
                    .map(|v| EntrySeed(Entry::Value(v.0)))
            }
            fn visit_bool<E>(self, b: bool) -> Result<EntrySeed<'de>, E> {
                Ok(EntrySeed(Entry::Value(Value::Bool(b))))
            }
            fn visit_i64<E>(self, i: i64) -> Result<EntrySeed<'de>, E> {
                Ok(EntrySeed(Entry::Value(Value::Int(i))))
            }
            fn visit_u64<E>(self, u: u64) -> Result<EntrySeed<'de>, E> {
                Ok(EntrySeed(Entry::Value(int_or_float(u))))
            }
            fn visit_f64<E>(self, f: f64) -> Result<EntrySeed<'de>, E> {
                Ok(EntrySeed(Entry::Value(Value::Float(f))))
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<EntrySeed<'de>, E> {
                Ok(EntrySeed(Entry::Text(std::borrow::Cow::Borrowed(s))))
            }
            fn visit_str<E>(self, s: &str) -> Result<EntrySeed<'de>, E> {
                Ok(EntrySeed(Entry::Value(Value::str(s))))
            }
            fn visit_unit<E>(self) -> Result<EntrySeed<'de>, E> {
                Ok(EntrySeed(Entry::Value(Value::Null)))
            }
        }
        d.deserialize_any(V)
    }
}

fn int_or_float(u: u64) -> Value {
    i64::try_from(u).map_or(Value::Float(u as f64), Value::Int)
}

/// Any JSON value read straight into a [`Value`] (integral numbers become
/// `Int`, others `Float`, objects `Map`), as [`Value::from_json`] does.
struct JsonValue(Value);

impl<'de> serde::Deserialize<'de> for JsonValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<JsonValue, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> serde::de::Visitor<'de> for ValueVisitor {
    type Value = JsonValue;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<JsonValue, E> {
        Ok(JsonValue(Value::Bool(b)))
    }
    fn visit_i64<E>(self, i: i64) -> Result<JsonValue, E> {
        Ok(JsonValue(Value::Int(i)))
    }
    fn visit_u64<E>(self, u: u64) -> Result<JsonValue, E> {
        Ok(JsonValue(int_or_float(u)))
    }
    fn visit_f64<E>(self, f: f64) -> Result<JsonValue, E> {
        Ok(JsonValue(Value::Float(f)))
    }
    fn visit_str<E>(self, s: &str) -> Result<JsonValue, E> {
        Ok(JsonValue(Value::str(s)))
    }
    fn visit_unit<E>(self) -> Result<JsonValue, E> {
        Ok(JsonValue(Value::Null))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<JsonValue, A::Error> {
        let mut out = Vec::with_capacity(s.size_hint().unwrap_or(4));
        while let Some(v) = s.next_element::<JsonValue>()? {
            out.push(v.0);
        }
        Ok(JsonValue(Value::array(out)))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<JsonValue, A::Error> {
        let mut out = crate::value::ValueMap::new();
        while let Some(k) = m.next_key::<String>()? {
            let v: JsonValue = m.next_value()?;
            out.insert(std::sync::Arc::from(k.as_str()), v.0);
        }
        Ok(JsonValue(Value::map(out)))
    }
}

fn parse_timestamp(v: &Value) -> Result<i64, JsonEventError> {
    let bad = || JsonEventError::BadTimestamp(v.to_json().to_string());
    match v {
        Value::Int(ms) => ms.checked_mul(crate::time::NS_PER_MS).ok_or_else(bad),
        Value::Float(ms) => {
            let ns = ms * crate::time::NS_PER_MS as f64;
            if ns.is_finite() && ns.abs() < 9.2e18 {
                Ok(ns.round() as i64)
            } else {
                Err(bad())
            }
        }
        Value::Str(s) => crate::time::parse_rfc3339(s).ok_or_else(bad),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(r: &RawEvent) -> Vec<&str> {
        r.fields.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn reads_the_data_envelope() {
        let r = parse_json_event(
            r#"{"event_type": "Reading", "data": {"pump": "P1", "bar": 3.0}, "x": 1}"#,
        )
        .expect("event");
        assert_eq!(r.event_type, "Reading");
        assert_eq!(names(&r), ["pump", "bar"], "input order is kept");
        assert_eq!(r.timestamp, None);
    }

    #[test]
    fn reads_the_fields_envelope() {
        let r = parse_json_event(r#"{"event_type": "T", "fields": {"a": 1}}"#).expect("event");
        assert_eq!(r.fields, vec![("a".to_string(), Value::Int(1))]);
    }

    #[test]
    fn reads_flat_objects_with_type_or_event_type() {
        let r = parse_json_event(r#"{"type": "T", "a": 1, "b": [1, 2.5]}"#).expect("event");
        assert_eq!(r.event_type, "T");
        assert_eq!(names(&r), ["a", "b"]);
        let r = parse_json_event(r#"{"event_type": "T", "type": "kept"}"#).expect("event");
        assert_eq!(r.fields, vec![("type".to_string(), Value::str("kept"))]);
    }

    #[test]
    fn reads_the_websocket_shape() {
        let r = parse_json_event(r#"{"type": "event", "data": {"event_type": "T", "v": 2}}"#)
            .expect("event");
        assert_eq!(r.event_type, "T");
        assert_eq!(r.fields, vec![("v".to_string(), Value::Int(2))]);
    }

    #[test]
    fn a_repeated_key_takes_its_last_value_in_both_readers() {
        // Found by the json_event fuzz target: the one-pass reader took the first
        // `timestamp`, the parsed tree the last (out of range), so they disagreed.
        let text = r#"{"type": "event", "data": {"k": "b", "k": "c"}, "timestamp": 17999, "timestamp": 179991451455760000 }"#;
        let direct = parse_json_event(text);
        let tree: J = serde_json::from_str(text).expect("valid JSON");
        assert_eq!(direct, raw_event_from_json(&tree));
        assert!(
            matches!(direct, Err(JsonEventError::BadTimestamp(_))),
            "{direct:?}"
        );
        let r = parse_json_event(r#"{"type": "T", "a": 1, "b": 2, "a": 3}"#).expect("event");
        assert_eq!(
            r.fields,
            vec![
                ("a".to_string(), Value::Int(3)),
                ("b".to_string(), Value::Int(2))
            ]
        );
    }

    #[test]
    fn escaped_member_names_read_like_plain_ones_in_both_readers() {
        // Names without escapes are borrowed from the text, escaped ones are decoded: a
        // repeated name spelled both ways is still one member, last value wins.
        let text = r#"{"event\u005ftype": "T", "a": 1, "\u0061": 2, "time\u0073tamp": 3}"#;
        let direct = parse_json_event(text).expect("event");
        assert_eq!(direct.event_type, "T");
        assert_eq!(direct.fields, vec![("a".to_string(), Value::Int(2))]);
        assert_eq!(direct.timestamp, Some(3_000_000));
        let tree: J = serde_json::from_str(text).expect("valid JSON");
        assert_eq!(Ok(direct), raw_event_from_json(&tree));
    }

    #[test]
    fn timestamps_are_epoch_ms_or_rfc3339() {
        let r = parse_json_event(r#"{"type": "T", "timestamp": 1500}"#).expect("event");
        assert_eq!(r.timestamp, Some(1_500_000_000));
        assert!(r.fields.is_empty(), "timestamp is not a field");
        let r = parse_json_event(r#"{"type": "T", "timestamp": 1.5}"#).expect("event");
        assert_eq!(r.timestamp, Some(1_500_000));
        let r = parse_json_event(r#"{"type": "T", "data": {"timestamp": "1970-01-01T00:00:02Z"}}"#)
            .expect("event");
        assert_eq!(r.timestamp, Some(2_000_000_000));
        assert!(r.fields.is_empty());
        assert!(matches!(
            parse_json_event(r#"{"type": "T", "timestamp": "soon"}"#),
            Err(JsonEventError::BadTimestamp(_))
        ));
        assert!(matches!(
            parse_json_event(r#"{"type": "T", "timestamp": true}"#),
            Err(JsonEventError::BadTimestamp(_))
        ));
    }

    #[test]
    fn rejects_non_events() {
        assert!(matches!(
            parse_json_event("{"),
            Err(JsonEventError::Syntax(_))
        ));
        assert_eq!(parse_json_event("[1]"), Err(JsonEventError::NotAnObject));
        assert_eq!(
            parse_json_event(r#"{"a": 1}"#),
            Err(JsonEventError::MissingType)
        );
        assert_eq!(
            parse_json_event(r#"{"type": 3}"#),
            Err(JsonEventError::MissingType)
        );
    }

    #[test]
    fn a_default_type_applies_only_when_none_is_named() {
        let r = parse_json_event_or(
            r#"{"zone": "a", "temp": 21.5, "timestamp": 2000}"#,
            Some("R"),
        )
        .expect("event");
        assert_eq!(r.event_type, "R");
        assert_eq!(names(&r), ["zone", "temp"]);
        assert_eq!(r.timestamp, Some(2_000_000_000));
        let r = parse_json_event_or(r#"{"type": "Other", "a": 1}"#, Some("R")).expect("event");
        assert_eq!(r.event_type, "Other", "a named type wins");
    }
}

//! The tolerant JSON event reader (LANGUAGE.md §9.2, REC).
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
use serde_json::{Map, Value as J};
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
pub fn parse_json_event(text: &str) -> Result<RawEvent, JsonEventError> {
    let v: J = serde_json::from_str(text).map_err(|e| JsonEventError::Syntax(e.to_string()))?;
    raw_event_from_json(&v)
}

/// Reads an event from an already parsed JSON value.
pub fn raw_event_from_json(v: &J) -> Result<RawEvent, JsonEventError> {
    let top = v.as_object().ok_or(JsonEventError::NotAnObject)?;
    let body = ["data", "fields"]
        .iter()
        .find_map(|k| top.get(*k).and_then(J::as_object));
    let str_at = |m: Option<&Map<String, J>>, k: &str| {
        m.and_then(|m| m.get(k))
            .and_then(J::as_str)
            .map(str::to_string)
    };
    // Which object and key supplied the type, so that key is not a field.
    let (event_type, type_in_body, type_key) = if let Some(t) = str_at(Some(top), "event_type") {
        (t, false, "event_type")
    } else if let Some(t) = str_at(body, "event_type") {
        (t, true, "event_type")
    } else if let Some(t) = str_at(Some(top), "type") {
        (t, false, "type")
    } else if let Some(t) = str_at(body, "type") {
        (t, true, "type")
    } else {
        return Err(JsonEventError::MissingType);
    };
    let (source, skip_type) = match body {
        Some(b) => (b, type_in_body),
        None => (top, true),
    };
    let (ts_value, ts_in_source) = match top.get("timestamp") {
        Some(t) => (Some(t), body.is_none()),
        None => (source.get("timestamp"), true),
    };
    let timestamp = ts_value.map(parse_timestamp).transpose()?;
    let fields = source
        .iter()
        .filter(|(k, _)| !(skip_type && k.as_str() == type_key))
        .filter(|(k, _)| !(ts_in_source && k.as_str() == "timestamp"))
        .map(|(k, v)| (k.clone(), Value::from_json(v)))
        .collect();
    Ok(RawEvent {
        event_type,
        fields,
        timestamp,
    })
}

fn parse_timestamp(v: &J) -> Result<i64, JsonEventError> {
    let bad = || JsonEventError::BadTimestamp(v.to_string());
    match v {
        J::Number(n) => match n.as_i64() {
            Some(ms) => ms.checked_mul(crate::time::NS_PER_MS).ok_or_else(bad),
            None => {
                let ms = n.as_f64().ok_or_else(bad)?;
                let ns = ms * crate::time::NS_PER_MS as f64;
                if ns.is_finite() && ns.abs() < 9.2e18 {
                    Ok(ns.round() as i64)
                } else {
                    Err(bad())
                }
            }
        },
        J::String(s) => crate::time::parse_rfc3339(s).ok_or_else(bad),
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
        assert_eq!(names(&r), ["bar", "pump"]);
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
}

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

use crate::decode::{DecodeError, DecodeWarning, EventDecoder, RawEvent, Reuse};
use crate::event::Event;
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
    let mut members = Vec::with_capacity(8);
    read_members(text, &mut members)?;
    shape(members, default_type)
}

/// What [`EventDecoder::decode_json`] read: the record's own time and its event.
#[derive(Debug, PartialEq)]
pub struct JsonDecoded {
    /// The event time the record gave (`timestamp`), if any.
    pub timestamp: Option<i64>,
    /// The event, stamped with `timestamp` (else 0), or why the program has no such type.
    pub event: Result<Event, DecodeError>,
}

/// What decoding JSON events on one thread reuses from one text to the next
/// ([`EventDecoder::decode_json`]): the list of top-level members and a bounded cache of
/// recent short strings, so a steady stream of events allocates only the event itself.
#[derive(Default)]
pub struct JsonScratch {
    members: Vec<(Key<'static>, Entry<'static>)>,
    strings: StrCache,
    /// Slots of an event the engine is done with ([`JsonScratch::give_slots`]).
    slots: Option<Vec<Option<Value>>>,
}

impl JsonScratch {
    /// What decoding the next event reuses: the cache of strings and the spare slots.
    pub(crate) fn reuse(&mut self) -> Reuse<'_> {
        Reuse {
            strings: &mut self.strings,
            slots: self.slots.take(),
        }
    }

    /// Hands back the slots of an event nothing keeps any more (the engine's
    /// `take_spare_slots`): the next event decodes into them.
    pub fn give_slots(&mut self, slots: Vec<Option<Value>>) {
        self.slots = Some(slots);
    }
}

impl EventDecoder {
    /// Reads one JSON text (the shapes of the module docs) straight into an event of the
    /// program: what [`parse_json_event_or`] then [`EventDecoder::decode`] give, at the time
    /// the record names (else 0), without the intermediate [`RawEvent`]. Field names are
    /// looked up as borrowed text, string values come from `scratch`'s cache of recent
    /// strings when they repeat; type mismatches are pushed to `warnings`.
    pub fn decode_json(
        &self,
        text: &str,
        default_type: Option<&str>,
        scratch: &mut JsonScratch,
        warnings: &mut Vec<DecodeWarning>,
    ) -> Result<JsonDecoded, JsonEventError> {
        let mut members = recycle(std::mem::take(&mut scratch.members));
        let strings = &mut scratch.strings;
        let spare = scratch.slots.take();
        let decoded = read_members(text, &mut members).and_then(|()| {
            let found = locate(&members, default_type)?;
            let timestamp = found.timestamp;
            let event = self.decode_fields(
                found.event_type,
                timestamp,
                timestamp.unwrap_or(0),
                fields_of(&members, &found),
                Reuse {
                    strings,
                    slots: spare,
                },
                warnings,
            );
            Ok(JsonDecoded { timestamp, event })
        });
        scratch.members = recycle(members);
        decoded
    }
}

/// An empty vector of another element type with `v`'s buffer: the members of one text borrow
/// it, so the buffer outlives them only emptied (collecting a vector's own iterator into
/// elements of the same size and alignment reuses its allocation).
pub(crate) fn recycle<A, B>(mut v: Vec<A>) -> Vec<B> {
    v.clear();
    v.into_iter().filter_map(|_| None).collect()
}

/// Reads the members of the top-level object of `text` into `out` (emptied first), the last
/// value of a repeated name winning.
fn read_members<'de>(
    text: &'de str,
    out: &mut Vec<(Key<'de>, Entry<'de>)>,
) -> Result<(), JsonEventError> {
    out.clear();
    if scan_flat(text, out).is_none() {
        out.clear();
        read_members_serde(text, out)?;
    }
    let members = std::mem::take(out);
    *out = last_wins(members);
    Ok(())
}

/// Reads a flat object (member values that are strings without escapes, numbers, `true`,
/// `false` or `null`) into `out` as `serde_json` would, in one pass over the bytes; `None` as
/// soon as the text is anything else (escapes, nested values, or not valid JSON), which
/// [`read_members_serde`] then reads or rejects with its own error. Most events are flat,
/// and the generic reader's per-member calls through `serde` cost more than the scan.
fn scan_flat<'de>(text: &'de str, out: &mut Vec<(Key<'de>, Entry<'de>)>) -> Option<()> {
    let bytes = text.as_bytes();
    let ws = |mut i: usize| {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(i) {
            i += 1;
        }
        i
    };
    // A string without escapes or control characters starting at the quote at `i`: its
    // text and the index after its closing quote.
    let string = |i: usize| -> Option<(&'de str, usize)> {
        let start = i + 1;
        let len = bytes
            .get(start..)?
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        let end = start + len;
        (bytes.get(end) == Some(&b'"')).then_some(())?;
        Some((text.get(start..end)?, end + 1))
    };
    let mut i = ws(0);
    (bytes.get(i) == Some(&b'{')).then_some(())?;
    i = ws(i + 1);
    if bytes.get(i) == Some(&b'}') {
        return (ws(i + 1) == bytes.len()).then_some(());
    }
    loop {
        (bytes.get(i) == Some(&b'"')).then_some(())?;
        let (key, after) = string(i)?;
        i = ws(after);
        (bytes.get(i) == Some(&b':')).then_some(())?;
        i = ws(i + 1);
        let (entry, after) = match bytes.get(i)? {
            b'"' => {
                let (s, after) = string(i)?;
                (Entry::Text(std::borrow::Cow::Borrowed(s)), after)
            }
            b't' if bytes.get(i..i + 4) == Some(b"true") => {
                (Entry::Value(Value::Bool(true)), i + 4)
            }
            b'f' if bytes.get(i..i + 5) == Some(b"false") => {
                (Entry::Value(Value::Bool(false)), i + 5)
            }
            b'n' if bytes.get(i..i + 4) == Some(b"null") => (Entry::Value(Value::Null), i + 4),
            b'-' | b'0'..=b'9' => {
                let end = i + bytes
                    .get(i..)?
                    .iter()
                    .position(|b| !matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                    .unwrap_or(bytes.len() - i);
                (Entry::Value(number(text.get(i..end)?)?), end)
            }
            _ => return None,
        };
        out.push((Key(std::borrow::Cow::Borrowed(key)), entry));
        i = ws(after);
        match bytes.get(i)? {
            b',' => i = ws(i + 1),
            b'}' => return (ws(i + 1) == bytes.len()).then_some(()),
            _ => return None,
        }
    }
}

/// A JSON number token as [`EntrySeed`] reads it: short integers by hand, everything else
/// (fractions, exponents, `-0`, long or malformed tokens) through `serde_json` itself, so
/// the value (and its rounding) is exactly the generic reader's.
fn number(token: &str) -> Option<Value> {
    let (negative, digits) = match token.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, token),
    };
    let plain = !digits.is_empty()
        && digits.len() <= 18
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if plain && !(negative && digits == "0") {
        let n = digits
            .bytes()
            .fold(0i64, |n, b| n * 10 + i64::from(b - b'0'));
        return Some(Value::Int(if negative { -n } else { n }));
    }
    // A decimal with at most 15 digits: both the digits and the power of ten are exact
    // doubles, so one division rounds the same as any correct reader (and serde_json,
    // which computes exactly this).
    if let Some((int, frac)) = digits.split_once('.') {
        let decimal = !int.is_empty()
            && !frac.is_empty()
            && int.len() + frac.len() <= 15
            && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
            && (int == "0" || !int.starts_with('0'));
        if decimal {
            let n = int
                .bytes()
                .chain(frac.bytes())
                .fold(0i64, |n, b| n * 10 + i64::from(b - b'0'));
            let f = n as f64 / POW10.get(frac.len())?;
            return Some(Value::Float(if negative { -f } else { f }));
        }
    }
    let mut de = serde_json::Deserializer::from_str(token);
    let seed: EntrySeed<'_> = serde::Deserialize::deserialize(&mut de).ok()?;
    de.end().ok()?;
    match seed.0 {
        Entry::Value(v @ (Value::Int(_) | Value::Float(_))) => Some(v),
        _ => None,
    }
}

/// Powers of ten that are exact doubles, for the decimals of [`number`].
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// [`read_members`] through `serde_json`: any JSON text, with its errors.
fn read_members_serde<'de>(
    text: &'de str,
    out: &mut Vec<(Key<'de>, Entry<'de>)>,
) -> Result<(), JsonEventError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let read =
        serde::de::DeserializeSeed::deserialize(TopSeed(out), &mut de).and_then(|()| de.end());
    match read {
        Ok(()) => {}
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            return Err(JsonEventError::NotAnObject)
        }
        Err(e) => return Err(JsonEventError::Syntax(e.to_string())),
    }
    Ok(())
}

/// One field of a located event, borrowed from the members.
pub(crate) enum FieldRef<'t> {
    /// A value read as such.
    Value(&'t Value),
    /// A string without escapes, still text.
    Text(&'t str),
    /// An object that is not the envelope of the fields.
    Object(&'t [(String, Value)]),
}

impl FieldRef<'_> {
    /// The field's value; strings come from `strings` when they repeat.
    pub(crate) fn to_value(&self, strings: &mut StrCache) -> Value {
        match self {
            FieldRef::Value(v) => (*v).clone(),
            FieldRef::Text(t) => strings.get(t),
            FieldRef::Object(fields) => Value::map(
                fields
                    .iter()
                    .map(|(k, v)| (std::sync::Arc::from(k.as_str()), v.clone()))
                    .collect(),
            ),
        }
    }
}

/// The fields of a located event in input order: the members of the envelope, or of the top
/// level, minus the keys of the type and the time (what [`shape`] keeps).
fn fields_of<'t, K: AsRef<str>>(
    top: &'t [(K, Entry<'_>)],
    found: &Located<'t>,
) -> impl Iterator<Item = (&'t str, FieldRef<'t>)> {
    let (type_in_body, type_key) = (found.type_in_body, found.type_key);
    let keeps = move |name: &str, in_body: bool| {
        name != "timestamp" && !(type_in_body == in_body && name == type_key)
    };
    let body = found.body.unwrap_or_default();
    let top = if found.body.is_some() { &[][..] } else { top };
    body.iter()
        .filter(move |(k, _)| keeps(k, true))
        .map(|(k, v)| (k.as_str(), FieldRef::Value(v)))
        .chain(
            top.iter()
                .filter(move |(k, _)| keeps(k.as_ref(), false))
                .map(|(k, e)| {
                    let field = match e {
                        Entry::Value(v) => FieldRef::Value(v),
                        Entry::Text(t) => FieldRef::Text(t),
                        Entry::Object(fields) => FieldRef::Object(fields),
                    };
                    (k.as_ref(), field)
                }),
        )
}

/// Recent short strings by hash, two per set of places: a repeated value (a sensor, a user, a
/// symbol) is shared instead of allocated again; a new one takes the older place of its set.
/// Bounded: [`StrCache::PLACES`] strings of at most [`StrCache::LONGEST`] bytes. When fewer than
/// half the lookups of a round hit (strings that hardly repeat: ids, addresses), the cache only
/// costs, so it is left aside for [`StrCache::REST`] strings before it is tried again.
#[derive(Default)]
pub(crate) struct StrCache {
    /// Each string with its hash, so a lookup reads a string only when the hashes agree.
    places: Vec<Option<(u64, std::sync::Arc<str>)>>,
    /// Lookups and hits so far in this round of [`StrCache::ROUND`].
    looked: u32,
    hits: u32,
    /// Strings left to make without the cache.
    resting: u32,
}

impl StrCache {
    const PLACES: usize = 1 << 14;
    const LONGEST: usize = 64;
    const ROUND: u32 = 4096;
    const REST: u32 = 1 << 16;

    /// A string value equal to `s`.
    pub(crate) fn get(&mut self, s: &str) -> Value {
        if s.len() > Self::LONGEST {
            return Value::str(s);
        }
        if self.resting > 0 {
            self.resting -= 1;
            return Value::str(s);
        }
        self.looked += 1;
        if self.looked >= Self::ROUND {
            if self.hits < Self::ROUND / 2 {
                self.resting = Self::REST;
            }
            self.looked = 0;
            self.hits = 0;
        }
        if self.places.is_empty() {
            self.places = vec![None; Self::PLACES];
        }
        let mut hasher = rustc_hash::FxHasher::default();
        std::hash::Hasher::write(&mut hasher, s.as_bytes());
        let hash = std::hash::Hasher::finish(&hasher);
        // The high bits of an Fx hash are its best mixed; a set is two neighbouring places.
        let set = (hash >> 51) as usize * 2;
        let Some([newer, older]) = self.places.get_mut(set..set + 2) else {
            return Value::str(s);
        };
        for (h, kept) in [&*newer, &*older].into_iter().flatten() {
            if *h == hash && **kept == *s {
                self.hits += 1;
                return Value::Str(kept.clone());
            }
        }
        let new: std::sync::Arc<str> = std::sync::Arc::from(s);
        *older = newer.replace((hash, new.clone()));
        Value::Str(new)
    }
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
    let found = locate(&top, default_type)?;
    let event_type = found.event_type.to_string();
    let timestamp = found.timestamp;
    // The timestamp key is dropped from the object the fields come from.
    let fields = match found.body {
        Some(b) => b
            .iter()
            .filter(|(k, _)| found.keeps(k, true))
            .cloned()
            .collect(),
        None => {
            let type_key = found.type_key;
            top.into_iter()
                .filter(|(k, _)| k.as_ref() != type_key && k.as_ref() != "timestamp")
                .map(|(k, e)| (k.into(), e.into_value()))
                .collect()
        }
    };
    Ok(RawEvent {
        event_type,
        fields,
        timestamp,
    })
}

/// Where the shape rules found an event's type, time and fields, borrowed from the members.
struct Located<'t> {
    event_type: &'t str,
    timestamp: Option<i64>,
    /// The `data` or `fields` object the fields come from; `None`: the top level.
    body: Option<&'t [(String, Value)]>,
    /// Whether the type's key is in the object the fields come from.
    type_in_body: bool,
    /// The key that named the type (not a field), `""` when a default type applies.
    type_key: &'static str,
}

impl Located<'_> {
    /// Whether the member `name` of the object the fields come from is a field.
    fn keeps(&self, name: &str, in_body: bool) -> bool {
        name != "timestamp" && !(self.type_in_body == in_body && name == self.type_key)
    }
}

/// Finds the type, the time and the object of fields by the shape rules of the module docs.
fn locate<'t, K: AsRef<str>>(
    top: &'t [(K, Entry<'_>)],
    default_type: Option<&'t str>,
) -> Result<Located<'t>, JsonEventError> {
    let body: Option<&'t [(String, Value)]> = ["data", "fields"].iter().find_map(|k| {
        top.iter().find_map(|(name, e)| match e {
            Entry::Object(fields) if name.as_ref() == *k => Some(fields.as_slice()),
            _ => None,
        })
    });
    let top_str = |k: &str| -> Option<&'t str> {
        top.iter().find_map(|(name, e)| match e {
            Entry::Text(s) if name.as_ref() == k => Some(s.as_ref()),
            Entry::Value(Value::Str(s)) if name.as_ref() == k => Some(s.as_ref()),
            _ => None,
        })
    };
    let body_str = |k: &str| -> Option<&'t str> {
        body.and_then(|b| {
            b.iter().find_map(|(name, v)| match v {
                Value::Str(s) if name == k => Some(s.as_ref()),
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
        (t, false, "")
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
    Ok(Located {
        event_type,
        timestamp,
        body,
        type_in_body,
        type_key,
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

/// Reads the top-level object's members, in input order, into a vector it is given.
struct TopSeed<'s, 'de>(&'s mut Vec<(Key<'de>, Entry<'de>)>);

impl<'de> serde::de::DeserializeSeed<'de> for TopSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for TopSeed<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        while let Some(k) = m.next_key::<Key<'de>>()? {
            let v: EntrySeed<'de> = m.next_value()?;
            self.0.push((k, v.0));
        }
        Ok(())
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
pub(crate) mod tests {
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

    /// A program with typed fields, a schema keeping extras, a `timestamp` field and an
    /// undeclared type.
    /// Declared, open, undeclared and stream types, with typed fields and a `timestamp` one.
    pub(crate) fn typed_program() -> crate::Program {
        use crate::schema::{EventSchema, FieldDef, SchemaOrigin, Type};
        let typed = |name: &str, fields: &[(&str, Type)]| {
            let mut s = EventSchema::with_fields(name, SchemaOrigin::Declared, &[]);
            s.fields = fields
                .iter()
                .map(|(f, ty)| FieldDef {
                    name: (*f).into(),
                    ty: ty.clone(),
                })
                .collect();
            s
        };
        let mut open = typed("Open", &[("a", Type::Int)]);
        open.keep_extra = true;
        crate::Program {
            schemas: vec![
                typed(
                    "Reading",
                    &[
                        ("sensor", Type::Str),
                        ("value", Type::Float),
                        ("at", Type::Timestamp),
                        ("maybe", Type::Optional(Box::new(Type::Float))),
                    ],
                ),
                open,
                typed(
                    "Stamped",
                    &[("timestamp", Type::Timestamp), ("x", Type::Any)],
                ),
                EventSchema::with_fields("Loose", SchemaOrigin::Undeclared, &["a"]),
                EventSchema::with_fields("T", SchemaOrigin::Declared, &["a", "b", "type", ""]),
                EventSchema::with_fields("S", SchemaOrigin::Stream, &["x"]),
            ],
            ..crate::Program::default()
        }
    }

    #[test]
    fn decoding_json_straight_into_slots_matches_reading_then_decoding() {
        let decoder = EventDecoder::new(&typed_program());
        let texts = [
            r#"{"event_type":"Reading","timestamp":7,"sensor":"s1","value":91.5}"#,
            r#"{"event_type":"Reading","sensor":"s1","value":3,"at":"1970-01-01T00:00:01Z","maybe":2}"#,
            r#"{"event_type":"Reading","sensor":5,"value":"high","at":12,"junk":[1,{"a":2}]}"#,
            r#"{"event_type":"Reading","data":{"sensor":"s\u0031","value":1.0,"timestamp":5},"x":1}"#,
            r#"{"type":"event","data":{"event_type":"Reading","sensor":"s2","value":2.5}}"#,
            r#"{"event_type":"Open","fields":{"a":1,"b":"two","c":{"d":null}}}"#,
            r#"{"event_type":"Open","a":1,"b":"two","c":{"d":null},"e":[true]}"#,
            r#"{"event_type":"Stamped","timestamp":"1970-01-01T00:00:02Z","x":"y"}"#,
            r#"{"event_type":"Stamped","data":{"timestamp":3,"x":1}}"#,
            r#"{"type":"Loose","a":"x","b":"kept","timestamp":4}"#,
            r#"{"event_type":"T","type":"kept","a":1,"b":2,"a":3}"#,
            r#"{"event\u005ftype":"T","a":1,"\u0061":2,"time\u0073tamp":3}"#,
            r#"{"type":"T","data":{"type":"x","a":1},"fields":{"b":2}}"#,
            r#"{"a":1,"":2,"b":{"c":1}}"#,
            r#"{"event_type":"Nope","a":1,"timestamp":9}"#,
            r#"{"event_type":"S","x":1}"#,
            r#"{"event_type":"Reading","timestamp":true}"#,
            r#"{"event_type":"Reading","timestamp":{"a":1}}"#,
            r#"{"a":1}"#,
            "[1]",
            "{",
            r#"{"event_type":"Reading"} x"#,
        ];
        let mut scratch = JsonScratch::default();
        for default_type in [None, Some("T")] {
            // Twice, so the second pass reads with a warm scratch.
            for text in texts.iter().chain(&texts) {
                let mut direct_warnings = Vec::new();
                let direct =
                    decoder.decode_json(text, default_type, &mut scratch, &mut direct_warnings);
                let mut warnings = Vec::new();
                let read = parse_json_event_or(text, default_type).map(|raw| JsonDecoded {
                    timestamp: raw.timestamp,
                    event: decoder.decode(&raw, raw.timestamp.unwrap_or(0), &mut warnings),
                });
                assert_eq!(direct, read, "{text} (default {default_type:?})");
                assert_eq!(direct_warnings, warnings, "{text}");
            }
        }
    }

    #[test]
    fn repeated_short_strings_are_shared_and_long_ones_are_not() {
        let decoder = EventDecoder::new(&typed_program());
        let mut scratch = JsonScratch::default();
        let mut sensor = |text: &str| {
            let decoded = decoder
                .decode_json(text, None, &mut scratch, &mut Vec::new())
                .expect("an event");
            match decoded.event.expect("a known type").fields.swap_remove(0) {
                Some(Value::Str(s)) => s,
                other => panic!("{other:?}"),
            }
        };
        let a = sensor(r#"{"event_type":"Reading","sensor":"s1"}"#);
        let b = sensor(r#"{"event_type":"Reading","sensor":"s1"}"#);
        assert!(std::sync::Arc::ptr_eq(&a, &b));
        let long = "x".repeat(StrCache::LONGEST + 1);
        let text = format!(r#"{{"event_type":"Reading","sensor":"{long}"}}"#);
        let (c, d) = (sensor(&text), sensor(&text));
        assert_eq!(*c, *long);
        assert!(!std::sync::Arc::ptr_eq(&c, &d));
        // A round of strings that never repeat sets the cache aside, then it comes back.
        for i in 0..StrCache::ROUND {
            sensor(&format!(r#"{{"event_type":"Reading","sensor":"u{i}"}}"#));
        }
        let (e, f) = (
            sensor(r#"{"event_type":"Reading","sensor":"s1"}"#),
            sensor(r#"{"event_type":"Reading","sensor":"s1"}"#),
        );
        assert_eq!(*e, *"s1");
        assert!(!std::sync::Arc::ptr_eq(&e, &f), "resting");
        for _ in 0..StrCache::REST {
            sensor(r#"{"event_type":"Reading","sensor":"s2"}"#);
        }
        let (g, h) = (
            sensor(r#"{"event_type":"Reading","sensor":"s1"}"#),
            sensor(r#"{"event_type":"Reading","sensor":"s1"}"#),
        );
        assert!(std::sync::Arc::ptr_eq(&g, &h), "back in use");
    }
    /// Members as comparable text: name, how the value was kept, and the value.
    fn shown(members: &[(Key<'_>, Entry<'_>)]) -> Vec<String> {
        members
            .iter()
            .map(|(k, e)| match e {
                Entry::Text(t) => format!("{} text {t:?}", k.as_ref()),
                Entry::Value(v) => format!("{} value {v:?}", k.as_ref()),
                Entry::Object(o) => format!("{} object {o:?}", k.as_ref()),
            })
            .collect()
    }

    #[test]
    fn flat_event_lines_take_the_one_pass_reader() {
        for text in [
            r#"{"event_type":"Reading","timestamp":7,"sensor":"s1","value":91.5}"#,
            r#" { "a" : -12 , "b":true,"c":false,"d":null,"e":"","f":1e3 } "#,
            r#"{}"#,
        ] {
            let mut fast = Vec::new();
            assert!(scan_flat(text, &mut fast).is_some(), "{text}");
            let mut slow = Vec::new();
            read_members_serde(text, &mut slow).expect("valid JSON");
            assert_eq!(shown(&fast), shown(&slow), "{text}");
        }
    }

    fn piece() -> impl proptest::strategy::Strategy<Value = &'static str> {
        proptest::sample::select(vec![
            "\"a\"",
            "\"b\"",
            "\"\"",
            "\"\\u0061\"",
            "\"x\\ny\"",
            "\"\u{e9}t\u{e9}\"",
            "\"tab\there\"",
            "\"q\\\"\"",
            "0",
            "-0",
            "12",
            "-7",
            "1.5",
            "1e3",
            "-1.25E-2",
            "01",
            "1.",
            "-",
            "+1",
            "2.5e",
            "99999999999999999999",
            "123456789012345678",
            "-123456789012345678",
            "9223372036854775807",
            "18446744073709551616",
            "1.7976931348623157e309",
            "0.1e-400",
            "true",
            "false",
            "null",
            "nul",
            "truex",
            "{\"x\":1}",
            "[1,2]",
            "{",
            "}",
            "[",
            ":",
            ",",
            " ",
            "\n",
            "\t",
            "x",
        ])
    }

    fn key() -> impl proptest::strategy::Strategy<Value = &'static str> {
        proptest::sample::select(vec![
            "\"a\"",
            "\"b\"",
            "\"\"",
            "\"\\u0061\"",
            "\"\u{e9}\"",
            "\"x\ny\"",
            "a",
            "\"a",
        ])
    }

    /// Mostly values a flat event has, sometimes any piece.
    fn value() -> impl proptest::strategy::Strategy<Value = &'static str> {
        proptest::prop_oneof![
            3 => proptest::sample::select(vec![
                "\"s1\"", "\"\"", "0", "-7", "12", "91.5", "-1.25E-2", "1e3", "true", "false",
                "null", "123456789012345678", "9223372036854775807", "18446744073709551616",
                "0.30000000000000004", "2.2250738585072014e-308", "-0", "14729.69", "-0.0",
                "0.1", "00.5", "1.000000000000001", "123456789.012345", "9007199254740.993",
                "-.5", "5.-1", "0.000000000000001", "999999999999999.9", "1.5.5",
            ]),
            1 => piece(),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5000))]

        /// Decimals read by hand are the doubles `serde_json` reads.
        #[test]
        fn short_decimals_read_as_serde_json_reads_them(
            negative in proptest::bool::ANY,
            int in 0u64..100_000_000,
            frac in "[0-9]{1,9}",
        ) {
            let token = format!("{}{int}.{frac}", if negative { "-" } else { "" });
            let by_serde = match serde_json::from_str::<EntrySeed<'_>>(&token) {
                Ok(EntrySeed(Entry::Value(v))) => Some(v),
                _ => None,
            };
            proptest::prop_assert_eq!(
                number(&token).map(|v| format!("{v:?}")),
                by_serde.map(|v| format!("{v:?}"))
            );
        }

        /// The one-pass reader gives up or reads exactly what `serde_json` reads.
        #[test]
        fn the_one_pass_reader_agrees_with_serde_json(
            members in proptest::collection::vec((key(), piece(), value(), piece()), 0..5),
            open in proptest::sample::select(vec!["{", " {", "[", "", "{ "]),
            close in proptest::sample::select(vec!["}", "} ", "", "}x", " }", "}}", ",}"]),
        ) {
            let mut text = open.to_string();
            for (i, (k, colon, v, sep)) in members.iter().enumerate() {
                if i > 0 {
                    text.push_str(if *sep == " " { ", " } else { "," });
                }
                // Mostly well-formed members, sometimes broken ones.
                let colon = if *colon == "x" || *colon == "," { colon } else { ":" };
                text.push_str(k);
                text.push_str(colon);
                text.push_str(v);
            }
            text.push_str(close);
            let mut fast = Vec::new();
            let mut slow = Vec::new();
            let generic = read_members_serde(&text, &mut slow);
            if scan_flat(&text, &mut fast).is_some() {
                proptest::prop_assert!(generic.is_ok(), "{text}: {generic:?}");
                proptest::prop_assert_eq!(shown(&fast), shown(&slow), "{}", text);
            }
        }
    }
}

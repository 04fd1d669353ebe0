//! The `.evt` event file reader (docs/LANGUAGE.md#event-files-evt, exact REF grammar).
//!
//! ```text
//! line   := blank | comment | batch | timed | event
//! comment:= ('#' | '//') any*
//! batch  := 'BATCH' [ws uint]                 absolute offset in ms
//! timed  := '@' uint ['ms'|'s'|'m'] ws+ (event | json)
//! event  := Type ws* '{' [field (',' field)*] '}' [';']
//!         | Type ws* '(' [value (',' value)*] ')' [';']    fields field_0, ...
//!         | json
//! ```
//!
//! Every line is trimmed first. Event time is `base + offset`
//! (docs/LANGUAGE.md#event-time-watermarks-and-lateness) unless a JSON line
//! carries a `timestamp`. An event with neither `@` nor a `timestamp` takes the
//! current `BATCH` offset (initially 0) when it is the first event or a `BATCH`
//! line came after the previous event, else the time of the previous event
//! (docs/DESIGN.md, Time): a bare line after `@4s` events is not stamped 0 and
//! dropped as late. `@` offsets do not move the `BATCH` clock.
//! Bad lines produce an [`EvtError`] with the line number; the reader goes on
//! with the next line and never panics.
//!
//! Reading is split in two so that lines can be parsed on several threads:
//! [`classify`] and [`parse_event_text`] read one line on its own, and the
//! [`EvtClock`] carries the `BATCH` clock and the previous event's time from
//! line to line, in line order. [`EvtReader`] is the two one line after the
//! other; `run --workers` parses on its decoding threads and stamps on its
//! routing thread.

use crate::decode::{DecodeWarning, EventDecoder, RawEvent};
use crate::json::{parse_json_event, recycle, FieldRef, JsonDecoded, JsonEventError, JsonScratch};
use crate::time::{NS_PER_MIN, NS_PER_MS, NS_PER_SEC};
use crate::value::Value;
use thiserror::Error;

/// One event line.
#[derive(Clone, Debug, PartialEq)]
pub struct EvtRecord {
    /// 1-based line number.
    pub line: usize,
    /// Offset from the start of the replay in ns (`@` or current `BATCH`).
    pub offset: i64,
    /// Whether the offset came from an `@` prefix.
    pub timed: bool,
    /// The event.
    pub event: RawEvent,
}

impl EvtRecord {
    /// The event time: an explicit JSON `timestamp`, else `base + offset`.
    pub fn event_time(&self, base: i64) -> i64 {
        self.event
            .timestamp
            .unwrap_or_else(|| base.saturating_add(self.offset))
    }
}

/// A bad line.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("line {line}: {kind}")]
pub struct EvtError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub kind: EvtErrorKind,
}

/// What is wrong with a line.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum EvtErrorKind {
    /// `BATCH` not followed by an unsigned integer.
    #[error("invalid BATCH directive: expected `BATCH <milliseconds>`")]
    BadBatch,
    /// `@` not followed by `<uint>[ms|s|m]`.
    #[error("invalid time offset `{0}`: expected `@<uint>` with optional unit ms, s or m")]
    BadOffset(String),
    /// `@offset` with nothing after it.
    #[error("missing event after time offset")]
    MissingEvent,
    /// No `{` or `(` after the type name.
    #[error("expected `Type {{...}}`, `Type(...)` or a JSON object")]
    NotAnEvent,
    /// The type name is not an identifier.
    #[error("invalid event type name `{0}`")]
    BadTypeName(String),
    /// The closing `}` or `)` is missing.
    #[error("missing closing `{0}`")]
    Unclosed(char),
    /// Text after the closing bracket.
    #[error("unexpected text after the event: `{0}`")]
    TrailingText(String),
    /// A field without `name:`.
    #[error("expected `name: value`, found `{0}`")]
    BadField(String),
    /// An empty value.
    #[error("missing value for `{0}`")]
    MissingValue(String),
    /// Arrays nested deeper than [`MAX_NESTING`].
    #[error("the value of `{0}` nests arrays more than {MAX_NESTING} deep")]
    TooDeep(String),
    /// A quoted string without its closing quote, or text after it.
    #[error("malformed string `{0}`")]
    BadString(String),
    /// An array without its closing `]`.
    #[error("malformed array `{0}`")]
    BadArray(String),
    /// A JSON line that is not an event.
    #[error("{0}")]
    Json(#[from] JsonEventError),
}

/// What one line is, read on its own: the part of reading a line that needs no
/// state, so any thread can do it for any line ([`classify`]). Only
/// [`EvtClock::stamp`], in line order, gives an event its time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvtLine<'a> {
    /// A blank line, a comment or a bare `BATCH`: nothing happens.
    Skip,
    /// `BATCH <ms>`: the new `BATCH` clock, in ns.
    Batch(i64),
    /// An event line: its `@` offset in ns, if it has one, and its event text
    /// (for [`parse_event_text`]).
    Event {
        /// The `@` offset.
        at: Option<i64>,
        /// The line without its blanks and its `@` time.
        text: &'a str,
    },
}

/// Reads what kind of line `raw` is (blank, comment, `BATCH`, event) and its
/// `@` offset, without parsing the event text. Errors are those of `BATCH`
/// and `@` (the event text has its own, from [`parse_event_text`]).
pub fn classify(raw: &str) -> Result<EvtLine<'_>, EvtErrorKind> {
    let text = raw.trim();
    if text.is_empty() || text.starts_with('#') || text.starts_with("//") {
        return Ok(EvtLine::Skip);
    }
    if let Some(rest) = text.strip_prefix("BATCH") {
        let rest = rest.trim();
        if rest.is_empty() {
            return Ok(EvtLine::Skip);
        }
        if !rest.bytes().all(|b| b.is_ascii_digit()) {
            return Err(EvtErrorKind::BadBatch);
        }
        let ms: i64 = rest.parse().map_err(|_| EvtErrorKind::BadBatch)?;
        let ns = ms.checked_mul(NS_PER_MS).ok_or(EvtErrorKind::BadBatch)?;
        return Ok(EvtLine::Batch(ns));
    }
    match split_time(text) {
        (Some(spec), body) => {
            let offset =
                parse_offset(spec).ok_or_else(|| EvtErrorKind::BadOffset(format!("@{spec}")))?;
            if body.is_empty() {
                return Err(EvtErrorKind::MissingEvent);
            }
            Ok(EvtLine::Event {
                at: Some(offset),
                text: body,
            })
        }
        (None, body) => Ok(EvtLine::Event {
            at: None,
            text: body,
        }),
    }
}

/// The state that carries from line to line: the `BATCH` clock and the time
/// of the previous event. Feed it the `BATCH` lines and the events that
/// parsed, in line order (bad lines are not events: they never become the
/// previous one).
#[derive(Clone, Debug)]
pub struct EvtClock {
    batch: i64,
    /// A `BATCH` line came after the previous event (or there was none yet).
    batch_fresh: bool,
    /// The time of the previous event: its offset, or its JSON `timestamp`.
    previous: Option<Previous>,
}

impl Default for EvtClock {
    fn default() -> EvtClock {
        EvtClock {
            batch: 0,
            batch_fresh: true,
            previous: None,
        }
    }
}

/// How the previous event's time was given.
#[derive(Clone, Copy, Debug)]
enum Previous {
    Offset(i64),
    Timestamp(i64),
}

/// The time [`EvtClock::stamp`] gives an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvtStamp {
    /// Offset from the start of the replay in ns.
    pub offset: i64,
    /// The event's JSON `timestamp`: its own, or the previous event's for an
    /// untimed event after one.
    pub timestamp: Option<i64>,
}

impl EvtClock {
    /// A `BATCH` line set the clock to `ns`.
    pub fn batch(&mut self, ns: i64) {
        self.batch = ns;
        self.batch_fresh = true;
    }

    /// Stamps the next event: `at` is its `@` offset, `timestamp` the JSON
    /// `timestamp` its text gives.
    pub fn stamp(&mut self, at: Option<i64>, timestamp: Option<i64>) -> EvtStamp {
        let mut stamp = EvtStamp {
            offset: at.unwrap_or(self.batch),
            timestamp,
        };
        if at.is_none() && timestamp.is_none() && !self.batch_fresh {
            match self.previous {
                Some(Previous::Offset(o)) => stamp.offset = o,
                Some(Previous::Timestamp(t)) => stamp.timestamp = Some(t),
                None => {}
            }
        }
        self.batch_fresh = false;
        self.previous = Some(match stamp.timestamp {
            Some(t) => Previous::Timestamp(t),
            None => Previous::Offset(stamp.offset),
        });
        stamp
    }
}

/// A stateful line parser: [`classify`], [`parse_event_text`] and the
/// [`EvtClock`], one line after the other. It is cheap enough to stream files
/// of any size.
#[derive(Clone, Debug, Default)]
pub struct EvtReader {
    clock: EvtClock,
    line: usize,
}

impl EvtReader {
    /// A reader at line 0 with the `BATCH` clock at 0.
    pub fn new() -> EvtReader {
        EvtReader::default()
    }

    /// Parses the next line. `Ok(None)` for blank lines, comments and
    /// `BATCH` directives.
    pub fn parse_line(&mut self, raw: &str) -> Result<Option<EvtRecord>, EvtError> {
        self.line += 1;
        let line = self.line;
        self.parse(raw).map_err(|kind| EvtError { line, kind })
    }

    /// Counts a line that could not be read as text (it is not UTF-8): the
    /// lines after it keep their numbers, and it changes no time.
    pub fn skip_line(&mut self) {
        self.line += 1;
    }

    fn parse(&mut self, raw: &str) -> Result<Option<EvtRecord>, EvtErrorKind> {
        let (at, text) = match classify(raw)? {
            EvtLine::Skip => return Ok(None),
            EvtLine::Batch(ns) => {
                self.clock.batch(ns);
                return Ok(None);
            }
            EvtLine::Event { at, text } => (at, text),
        };
        let mut event = parse_event(text)?;
        let stamp = self.clock.stamp(at, event.timestamp);
        event.timestamp = stamp.timestamp;
        Ok(Some(EvtRecord {
            line: self.line,
            offset: stamp.offset,
            timed: at.is_some(),
            event,
        }))
    }
}

/// A trimmed line's `@` time (without the `@`), if any, and the event text after it.
fn split_time(text: &str) -> (Option<&str>, &str) {
    match text.strip_prefix('@') {
        Some(rest) => {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let (spec, body) = rest.split_at(end);
            (Some(spec), body.trim())
        }
        None => (None, text),
    }
}

/// Parses the event text of an event line ([`EvtLine::Event`]) on its own;
/// the event's `timestamp` is only what the text says (the [`EvtClock`] may
/// give it the previous one).
pub fn parse_event_text(text: &str) -> Result<RawEvent, EvtErrorKind> {
    parse_event(text)
}

/// Parses a whole `.evt` text: the records and the errors of bad lines.
pub fn parse_evt(text: &str) -> (Vec<EvtRecord>, Vec<EvtError>) {
    let mut reader = EvtReader::new();
    let mut records = Vec::new();
    let mut errors = Vec::new();
    for line in text.lines() {
        match reader.parse_line(line) {
            Ok(Some(r)) => records.push(r),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    (records, errors)
}

fn parse_offset(spec: &str) -> Option<i64> {
    let digits = spec.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let (num, unit) = spec.split_at(digits);
    let n: i64 = num.parse().ok()?;
    let scale = match unit {
        "" | "ms" => NS_PER_MS,
        "s" => NS_PER_SEC,
        "m" => NS_PER_MIN,
        _ => return None,
    };
    n.checked_mul(scale)
}

fn parse_event(text: &str) -> Result<RawEvent, EvtErrorKind> {
    if text.starts_with('{') {
        return Ok(parse_json_event(text)?);
    }
    let mut fields = Vec::new();
    let name = read_event(text, &mut fields)?;
    Ok(RawEvent {
        event_type: name.to_string(),
        fields: fields
            .into_iter()
            .map(|(name, piece)| (name.to_string(), piece.into_value()))
            .collect(),
        timestamp: None,
    })
}

/// The name of a field of an event text: `name:` in `Type {...}`, the
/// position in `Type(...)` (the field `field_<position>`).
#[derive(Clone, Copy, Debug)]
enum Name<'t> {
    Key(&'t str),
    Position(usize),
}

impl std::fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Name::Key(k) => f.write_str(k),
            Name::Position(i) => write!(f, "field_{i}"),
        }
    }
}

/// A value of an event text: still text when it is a string without escapes
/// (so decoding can share a repeated one instead of copying it).
#[derive(Debug)]
enum Piece<'t> {
    Text(&'t str),
    Value(Value),
}

impl Piece<'_> {
    fn into_value(self) -> Value {
        match self {
            Piece::Text(t) => Value::str(t),
            Piece::Value(v) => v,
        }
    }
}

/// Reads a `Type {...}` or `Type(...)` text into its type name and `fields`
/// (emptied first), borrowing names and plain strings from `text`.
fn read_event<'t>(
    text: &'t str,
    fields: &mut Vec<(Name<'t>, Piece<'t>)>,
) -> Result<&'t str, EvtErrorKind> {
    fields.clear();
    let open = text.find(['{', '(']).ok_or(EvtErrorKind::NotAnEvent)?;
    let name = text[..open].trim();
    let valid = name
        .bytes()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
    if !valid {
        return Err(EvtErrorKind::BadTypeName(name.to_string()));
    }
    let braces = text[open..].starts_with('{');
    let (opener, closer) = if braces { ('{', '}') } else { ('(', ')') };
    let after_open = &text[open + 1..];
    let close = find_close(after_open, opener, closer).ok_or(EvtErrorKind::Unclosed(closer))?;
    let inner = &after_open[..close];
    let trailing = after_open[close + 1..].trim();
    if !trailing.is_empty() && trailing != ";" {
        return Err(EvtErrorKind::TrailingText(trailing.to_string()));
    }
    if inner.trim().is_empty() {
        return Ok(name);
    }
    for (i, part) in split_top(inner).enumerate() {
        if braces {
            let colon = part
                .find(':')
                .ok_or_else(|| EvtErrorKind::BadField(part.trim().to_string()))?;
            let key = part[..colon].trim();
            if key.is_empty() {
                return Err(EvtErrorKind::BadField(part.trim().to_string()));
            }
            let key = Name::Key(key);
            fields.push((key, parse_nested(&part[colon + 1..], key, 0)?));
        } else {
            let key = Name::Position(i);
            fields.push((key, parse_nested(part, key, 0)?));
        }
    }
    Ok(name)
}

/// What decoding `.evt` event texts on one thread reuses from one text to the
/// next ([`EventDecoder::decode_evt`]): the list of fields, the names of
/// positional fields, and what JSON texts reuse (its cache of recent strings
/// serves both).
#[derive(Default)]
pub struct EvtScratch {
    fields: Vec<(Name<'static>, Piece<'static>)>,
    positions: Vec<String>,
    json: JsonScratch,
}

impl EvtScratch {
    /// Hands back the slots of an event nothing keeps any more: the next event decodes into
    /// them ([`JsonScratch::give_slots`]).
    pub fn give_slots(&mut self, slots: Vec<Option<Value>>) {
        self.json.give_slots(slots);
    }
}

impl EventDecoder {
    /// Reads one event text (of an [`EvtLine::Event`]) straight into an event of the
    /// program: what [`parse_event_text`] then [`EventDecoder::decode`] give, at the time the
    /// text names (a JSON `timestamp`, else 0), without the intermediate [`RawEvent`]. Names
    /// are looked up as borrowed text and repeated strings are shared; type mismatches are
    /// pushed to `warnings`.
    pub fn decode_evt(
        &self,
        text: &str,
        scratch: &mut EvtScratch,
        warnings: &mut Vec<DecodeWarning>,
    ) -> Result<JsonDecoded, EvtErrorKind> {
        if text.starts_with('{') {
            return Ok(self.decode_json(text, None, &mut scratch.json, warnings)?);
        }
        let mut fields = recycle(std::mem::take(&mut scratch.fields));
        let decoded = read_event(text, &mut fields).map(|name| {
            while scratch.positions.len() < fields.len() {
                let next = format!("field_{}", scratch.positions.len());
                scratch.positions.push(next);
            }
            let positions = &scratch.positions;
            let named = fields.iter().map(|(name, piece)| {
                let name = match name {
                    Name::Key(k) => *k,
                    Name::Position(i) => positions.get(*i).map_or("", String::as_str),
                };
                let field = match piece {
                    Piece::Text(t) => FieldRef::Text(t),
                    Piece::Value(v) => FieldRef::Value(v),
                };
                (name, field)
            });
            let event = self.decode_fields(name, None, 0, named, scratch.json.reuse(), warnings);
            JsonDecoded {
                timestamp: None,
                event,
            }
        });
        scratch.fields = recycle(fields);
        decoded
    }
}

/// Index in `s` of the bracket closing the one just before `s`, skipping
/// quoted text and nested brackets.
fn find_close(s: &str, opener: char, closer: char) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            c if c == opener || c == '[' || (opener == '(' && c == '{') => depth += 1,
            c if c == closer && depth == 0 => return Some(i),
            ']' | '}' | ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// The parts of `s` between commas outside quotes and brackets.
fn split_top(s: &str) -> TopLevel<'_> {
    TopLevel { rest: Some(s) }
}

/// The iterator of [`split_top`].
struct TopLevel<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for TopLevel<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest?;
        let mut depth = 0usize;
        let mut quote: Option<u8> = None;
        let mut escaped = false;
        // Commas, quotes and brackets are ASCII, so a byte scan finds them
        // and never splits a character.
        for (i, c) in s.bytes().enumerate() {
            if let Some(q) = quote {
                if escaped {
                    escaped = false;
                } else if c == b'\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
                continue;
            }
            match c {
                b'"' | b'\'' => quote = Some(c),
                b'[' | b'{' | b'(' => depth += 1,
                b']' | b'}' | b')' => depth = depth.saturating_sub(1),
                b',' if depth == 0 => {
                    self.rest = s.get(i + 1..);
                    return s.get(..i);
                }
                _ => {}
            }
        }
        self.rest = None;
        Some(s)
    }
}

/// How deep arrays may nest in an `.evt` value: deeper input is an error for that line, not
/// a stack overflow of the whole process.
pub const MAX_NESTING: usize = 64;

fn parse_nested<'t>(
    raw: &'t str,
    field: Name<'_>,
    depth: usize,
) -> Result<Piece<'t>, EvtErrorKind> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(EvtErrorKind::MissingValue(field.to_string()));
    }
    match t {
        "true" => return Ok(Piece::Value(Value::Bool(true))),
        "false" => return Ok(Piece::Value(Value::Bool(false))),
        "null" | "nil" => return Ok(Piece::Value(Value::Null)),
        _ => {}
    }
    let first = t.as_bytes().first().copied().unwrap_or(b' ');
    if first == b'"' || first == b'\'' {
        // Without a backslash the string is the text between the quotes.
        let body = &t[1..];
        if !body.contains('\\') {
            return match body.find(char::from(first)) {
                Some(end) if end + 1 == body.len() => Ok(Piece::Text(&body[..end])),
                _ => Err(EvtErrorKind::BadString(t.to_string())),
            };
        }
        return parse_quoted(t, char::from(first)).map(|s| Piece::Value(Value::str(s)));
    }
    if first == b'[' {
        if depth >= MAX_NESTING {
            return Err(EvtErrorKind::TooDeep(field.to_string()));
        }
        let inner = t
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .ok_or_else(|| EvtErrorKind::BadArray(t.to_string()))?;
        if inner.trim().is_empty() {
            return Ok(Piece::Value(Value::array(Vec::new())));
        }
        let items = split_top(inner)
            .map(|p| parse_nested(p, field, depth + 1).map(Piece::into_value))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Piece::Value(Value::array(items)));
    }
    if let Ok(i) = t.parse::<i64>() {
        return Ok(Piece::Value(Value::Int(i)));
    }
    if let Ok(f) = t.parse::<f64>() {
        return Ok(Piece::Value(Value::Float(f)));
    }
    Ok(Piece::Text(t))
}

/// Decodes a quoted string whose first char is `q`; the closing quote must
/// end the text.
fn parse_quoted(t: &str, q: char) -> Result<String, EvtErrorKind> {
    let mut out = String::new();
    let mut chars = t.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, '"')) => out.push('"'),
                Some((_, '\'')) => out.push('\''),
                Some((_, '\\')) => out.push('\\'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => return Err(EvtErrorKind::BadString(t.to_string())),
            }
        } else if c == q {
            return if i + c.len_utf8() == t.len() {
                Ok(out)
            } else {
                Err(EvtErrorKind::BadString(t.to_string()))
            };
        } else {
            out.push(c);
        }
    }
    Err(EvtErrorKind::BadString(t.to_string()))
}

#[cfg(test)]
mod tests;

//! Decoding of literal token text into values: strings, numbers, durations
//! and timestamps (docs/LANGUAGE.md#literals).
//!
//! The lexer validates every literal with these functions and reports
//! failures; the parser decodes again when it builds the tree (decoding is
//! cheap, and this keeps tokens plain `kind + span`).

/// Nanoseconds per duration unit, longest unit names first so that prefix
/// matching finds `ms` before `m`.
const UNITS: &[(&str, u64)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("d", 86_400_000_000_000),
];

/// The nanoseconds of a duration unit name, if it is one.
pub fn unit_ns(unit: &str) -> Option<u64> {
    UNITS.iter().find(|(u, _)| *u == unit).map(|(_, ns)| *ns)
}

/// Writes `ns` with the largest unit that represents it exactly (`90m`).
pub fn format_duration(ns: u64) -> String {
    for (unit, size) in UNITS.iter().rev() {
        if ns != 0 && ns.is_multiple_of(*size) {
            return format!("{}{unit}", ns / size);
        }
    }
    format!("{ns}ns")
}

/// The longest unit name that `suffix` starts with.
pub fn unit_prefix(suffix: &str) -> Option<&'static str> {
    let mut best: Option<&'static str> = None;
    for (unit, _) in UNITS {
        if suffix.starts_with(unit) && best.is_none_or(|b| b.len() < unit.len()) {
            best = Some(unit);
        }
    }
    best
}

/// Decodes a duration literal such as `250ms` into nanoseconds.
pub fn parse_duration(text: &str) -> Option<u64> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = text.split_at(digits);
    let n: u64 = num.parse().ok()?;
    n.checked_mul(unit_ns(unit)?)
}

/// Decodes compound spellings such as `1h30m` into nanoseconds, so an error
/// can suggest the single-unit spelling.
pub fn parse_compound_duration(text: &str) -> Option<u64> {
    let mut rest = text;
    let mut total: u64 = 0;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest.get(..digits)?.parse().ok()?;
        rest = rest.get(digits..)?;
        let unit = unit_prefix(rest)?;
        // `m` is a prefix of `ms`; only take the shorter unit when no digit
        // follows the longer one.
        rest = rest.get(unit.len()..)?;
        total = total.checked_add(n.checked_mul(unit_ns(unit)?)?)?;
        parts += 1;
    }
    (parts > 0).then_some(total)
}

/// Decodes the body of a string literal (without quotes). Known escapes
/// (`\n \t \r \0 \" \' \\ \u{..}`) are decoded, unknown ones kept verbatim.
pub fn decode_string(body: &str) -> String {
    if !body.contains('\\') {
        return body.to_string();
    }
    let mut out = String::with_capacity(body.len());
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek().map(|&(_, c)| c) {
            Some('n') => push_escape(&mut out, &mut chars, '\n'),
            Some('t') => push_escape(&mut out, &mut chars, '\t'),
            Some('r') => push_escape(&mut out, &mut chars, '\r'),
            Some('0') => push_escape(&mut out, &mut chars, '\0'),
            Some('"') => push_escape(&mut out, &mut chars, '"'),
            Some('\'') => push_escape(&mut out, &mut chars, '\''),
            Some('\\') => push_escape(&mut out, &mut chars, '\\'),
            Some('u') => {
                let rest = body.get(i + 2..).unwrap_or("");
                match decode_unicode_escape(rest) {
                    Some((ch, len)) => {
                        out.push(ch);
                        // Skip `u` and the braced hex digits.
                        for _ in 0..len + 1 {
                            chars.next();
                        }
                    }
                    None => out.push('\\'),
                }
            }
            _ => out.push('\\'),
        }
    }
    out
}

fn push_escape(
    out: &mut String,
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    c: char,
) {
    out.push(c);
    chars.next();
}

/// `{1F600}` at the start of `rest`: the character and the length consumed.
fn decode_unicode_escape(rest: &str) -> Option<(char, usize)> {
    let inner = rest.strip_prefix('{')?;
    let close = inner.find('}')?;
    let hex = inner.get(..close)?;
    if hex.is_empty() || hex.len() > 6 {
        return None;
    }
    let code = u32::from_str_radix(hex, 16).ok()?;
    Some((char::from_u32(code)?, close + 2))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Reads exactly `n` ASCII digits from the front of `s`.
fn take_digits(s: &str, n: usize) -> Option<(i64, &str)> {
    let head = s.get(..n)?;
    if !head.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((head.parse().ok()?, s.get(n..)?))
}

fn expect_char(s: &str, c: char) -> Option<&str> {
    s.strip_prefix(c)
}

/// Decodes a timestamp literal `@YYYY-MM-DD[THH:MM:SS][Z|±HH:MM]` into
/// nanoseconds since the Unix epoch (UTC). The error says what is wrong.
pub fn parse_timestamp(text: &str) -> Result<i64, &'static str> {
    const SHAPE: &str = "expected @YYYY-MM-DD, @YYYY-MM-DDTHH:MM:SS or either with Z or ±HH:MM";
    let s = text.strip_prefix('@').ok_or(SHAPE)?;
    let (year, s) = take_digits(s, 4).ok_or(SHAPE)?;
    let s = expect_char(s, '-').ok_or(SHAPE)?;
    let (month, s) = take_digits(s, 2).ok_or(SHAPE)?;
    let s = expect_char(s, '-').ok_or(SHAPE)?;
    let (day, mut s) = take_digits(s, 2).ok_or(SHAPE)?;
    if !(1..=12).contains(&month) {
        return Err("the month must be between 01 and 12");
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err("the day does not exist in that month");
    }
    let mut secs = 0i64;
    if let Some(rest) = s.strip_prefix('T') {
        let (h, rest) = take_digits(rest, 2).ok_or(SHAPE)?;
        let rest = expect_char(rest, ':').ok_or(SHAPE)?;
        let (mi, rest) = take_digits(rest, 2).ok_or(SHAPE)?;
        let rest = expect_char(rest, ':').ok_or(SHAPE)?;
        let (sec, rest) = take_digits(rest, 2).ok_or(SHAPE)?;
        if h > 23 || mi > 59 || sec > 59 {
            return Err("the time must be between 00:00:00 and 23:59:59");
        }
        secs = h * 3600 + mi * 60 + sec;
        s = rest;
    }
    let mut offset = 0i64;
    if let Some(rest) = s.strip_prefix('Z') {
        s = rest;
    } else if let Some(sign) = s.chars().next().filter(|c| *c == '+' || *c == '-') {
        let rest = s.get(1..).ok_or(SHAPE)?;
        let (h, rest) = take_digits(rest, 2).ok_or(SHAPE)?;
        let rest = expect_char(rest, ':').ok_or(SHAPE)?;
        let (mi, rest) = take_digits(rest, 2).ok_or(SHAPE)?;
        if h > 23 || mi > 59 {
            return Err("the UTC offset must be between -23:59 and +23:59");
        }
        offset = (h * 3600 + mi * 60) * if sign == '-' { -1 } else { 1 };
        s = rest;
    }
    if !s.is_empty() {
        return Err(SHAPE);
    }
    let total = days_from_civil(year, month, day) * 86_400 + secs - offset;
    total
        .checked_mul(1_000_000_000)
        .ok_or("the timestamp is out of range")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_ts(text: &str, expected: Result<i64, ()>) {
        assert_eq!(parse_timestamp(text).map_err(|_| ()), expected, "{text}");
    }

    #[test]
    fn timestamps_decode_to_epoch_nanoseconds() {
        check_ts("@1970-01-01", Ok(0));
        check_ts("@2024-01-01", Ok(1_704_067_200_000_000_000));
        check_ts("@2024-02-29T12:30:15Z", Ok(1_709_209_815_000_000_000));
        check_ts("@2024-01-01T02:00:00+02:00", Ok(1_704_067_200_000_000_000));
        check_ts("@1969-12-31T23:59:59", Ok(-1_000_000_000));
        check_ts("@2023-02-29", Err(()));
        check_ts("@2024-13-01", Err(()));
        check_ts("@2024-01-01T24:00:00", Err(()));
        check_ts("@2024-1-01", Err(()));
        check_ts("@2024-01-01T10:00", Err(()));
    }

    #[test]
    fn durations_decode_per_unit() {
        assert_eq!(parse_duration("5ns"), Some(5));
        assert_eq!(parse_duration("250ms"), Some(250_000_000));
        assert_eq!(parse_duration("2m"), Some(120_000_000_000));
        assert_eq!(parse_duration("1d"), Some(86_400_000_000_000));
        assert_eq!(parse_duration("5min"), None);
        assert_eq!(parse_duration("99999999999999d"), None);
        assert_eq!(parse_compound_duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(format_duration(5_400_000_000_000), "90m");
        assert_eq!(unit_prefix("min"), Some("m"));
        assert_eq!(unit_prefix("msx"), Some("ms"));
    }

    #[test]
    fn string_escapes_decode_and_unknown_ones_stay() {
        assert_eq!(decode_string(r#"a\nb\t\"\'\\"#), "a\nb\t\"'\\");
        assert_eq!(decode_string(r"\u{41}\u{1F600}"), "A\u{1F600}");
        assert_eq!(decode_string(r"\q\u{zz}"), r"\q\u{zz}");
        assert_eq!(decode_string(r"\0\r"), "\0\r");
    }
}

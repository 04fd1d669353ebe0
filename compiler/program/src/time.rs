//! Time helpers: nanosecond constants, RFC 3339 parsing and formatting, and
//! duration rendering. Written here (Howard Hinnant's civil-date algorithms)
//! to avoid a date-time dependency for two small functions.

/// Nanoseconds per microsecond.
pub const NS_PER_US: i64 = 1_000;
/// Nanoseconds per millisecond.
pub const NS_PER_MS: i64 = 1_000_000;
/// Nanoseconds per second.
pub const NS_PER_SEC: i64 = 1_000_000_000;
/// Nanoseconds per minute.
pub const NS_PER_MIN: i64 = 60 * NS_PER_SEC;
/// Nanoseconds per hour.
pub const NS_PER_HOUR: i64 = 60 * NS_PER_MIN;
/// Nanoseconds per day.
pub const NS_PER_DAY: i64 = 24 * NS_PER_HOUR;

/// Days since 1970-01-01 for a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `(year, month, day)` of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Formats nanoseconds since the epoch as RFC 3339 in UTC
/// (`2024-01-02T03:04:05Z`, with `.fff`/`.ffffff`/`.fffffffff` only when the
/// sub-second part is non-zero).
pub fn format_rfc3339(ns: i64) -> String {
    let mut out = Vec::with_capacity(30);
    write_rfc3339(&mut out, ns);
    // Only ASCII digits and punctuation were written.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends [`format_rfc3339`]'s text to `out` without allocating (beyond `out` growing): the
/// output writers call it once per output event.
pub fn write_rfc3339(out: &mut Vec<u8>, ns: i64) {
    let secs = ns.div_euclid(NS_PER_SEC);
    let frac = ns.rem_euclid(NS_PER_SEC);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (sod / 3600, (sod % 3600) / 60, sod % 60);
    if (0..=9999).contains(&y) {
        push_digits(out, y, 4);
    } else {
        // Years outside 0..=9999 keep the sign and take as many digits as they need.
        use std::io::Write;
        let _ = write!(out, "{y:04}");
    }
    out.push(b'-');
    push_digits(out, i64::from(m), 2);
    out.push(b'-');
    push_digits(out, i64::from(d), 2);
    out.push(b'T');
    push_digits(out, hh, 2);
    out.push(b':');
    push_digits(out, mm, 2);
    out.push(b':');
    push_digits(out, ss, 2);
    if frac != 0 {
        out.push(b'.');
        if frac % NS_PER_MS == 0 {
            push_digits(out, frac / NS_PER_MS, 3);
        } else if frac % NS_PER_US == 0 {
            push_digits(out, frac / NS_PER_US, 6);
        } else {
            push_digits(out, frac, 9);
        }
    }
    out.push(b'Z');
}

/// Appends the non-negative `n`, zero-padded to exactly `width` digits (`n` has at most that many).
fn push_digits(out: &mut Vec<u8>, mut n: i64, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for slot in out[start..].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Parses an RFC 3339 timestamp (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`; `t`,
/// `z` and a space separator are accepted too; a missing offset means UTC)
/// or a bare date `YYYY-MM-DD` (midnight UTC). Returns ns since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let year = num(0, 4)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let month = u32::try_from(num(5, 2)?).ok()?;
    let day = u32::try_from(num(8, 2)?).ok()?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let mut ns = days_from_civil(year, month, day).checked_mul(NS_PER_DAY)?;
    if b.len() == 10 {
        return Some(ns);
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (hh, mm, ss) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    ns = ns.checked_add(hh * NS_PER_HOUR + mm * NS_PER_MIN + ss * NS_PER_SEC)?;
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        let mut frac: i64 = 0;
        let mut digits = 0;
        while let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            if digits < 9 {
                frac = frac * 10 + i64::from(c - b'0');
                digits += 1;
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        while digits < 9 {
            frac *= 10;
            digits += 1;
        }
        ns = ns.checked_add(frac)?;
    }
    match b.get(i) {
        None => Some(ns),
        Some(b'Z' | b'z') if i + 1 == b.len() => Some(ns),
        Some(&sign @ (b'+' | b'-')) if b.len() == i + 6 && b.get(i + 3) == Some(&b':') => {
            let (oh, om) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * NS_PER_HOUR + om * NS_PER_MIN;
            if sign == b'+' {
                ns.checked_sub(off)
            } else {
                ns.checked_add(off)
            }
        }
        _ => None,
    }
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Renders a duration with the largest unit that divides it exactly
/// (`2h`, `90s`, `1500ms`, `7ns`), the way VPL literals are written.
pub fn format_duration(ns: i64) -> String {
    const UNITS: [(i64, &str); 7] = [
        (NS_PER_DAY, "d"),
        (NS_PER_HOUR, "h"),
        (NS_PER_MIN, "m"),
        (NS_PER_SEC, "s"),
        (NS_PER_MS, "ms"),
        (NS_PER_US, "us"),
        (1, "ns"),
    ];
    if ns == 0 {
        return "0s".to_string();
    }
    for (unit, name) in UNITS {
        if ns % unit == 0 {
            return format!("{}{name}", ns / unit);
        }
    }
    format!("{ns}ns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        for ns in [
            0,
            1_500_000_000,
            1_700_000_000_123_000_000,
            -86_400 * NS_PER_SEC,
            5,
        ] {
            assert_eq!(parse_rfc3339(&format_rfc3339(ns)), Some(ns), "{ns}");
        }
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_500_000_000), "1970-01-01T00:00:01.500Z");
    }

    /// The formatting `format_rfc3339` had before it wrote digits itself.
    fn reference(ns: i64) -> String {
        let secs = ns.div_euclid(NS_PER_SEC);
        let frac = ns.rem_euclid(NS_PER_SEC);
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        let mut out = format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            sod / 3600,
            (sod % 3600) / 60,
            sod % 60
        );
        if frac != 0 {
            if frac % NS_PER_MS == 0 {
                out.push_str(&format!(".{:03}", frac / NS_PER_MS));
            } else if frac % NS_PER_US == 0 {
                out.push_str(&format!(".{:06}", frac / NS_PER_US));
            } else {
                out.push_str(&format!(".{frac:09}"));
            }
        }
        out.push('Z');
        out
    }

    #[test]
    fn written_digits_match_the_formatted_reference() {
        let mut ns: i64 = 0x0005_DEEC_E66D;
        let mut cases = vec![
            i64::MIN,
            i64::MAX,
            0,
            -1,
            1,
            NS_PER_MS,
            NS_PER_US,
            999_999_999,
        ];
        for _ in 0..10_000 {
            // A fixed linear congruential walk over the whole i64 range.
            ns = ns.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            cases.push(ns);
            cases.push(ns - ns.rem_euclid(NS_PER_MS));
            cases.push(ns - ns.rem_euclid(NS_PER_US));
            cases.push(ns - ns.rem_euclid(NS_PER_SEC));
        }
        for ns in cases {
            assert_eq!(format_rfc3339(ns), reference(ns), "{ns}");
        }
    }

    #[test]
    fn parses_offsets_dates_and_rejects_junk() {
        assert_eq!(
            parse_rfc3339("1970-01-01T01:00:00+01:00"),
            Some(0),
            "offset is subtracted"
        );
        assert_eq!(parse_rfc3339("1970-01-02"), Some(NS_PER_DAY));
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z").map(|_| ()), Some(()));
        for bad in [
            "",
            "2023-02-29",
            "2024-13-01",
            "2024-01-01T25:00:00Z",
            "yesterday",
            "2024-01-01T00:00:00.Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations_use_the_largest_exact_unit() {
        assert_eq!(format_duration(2 * NS_PER_HOUR), "2h");
        assert_eq!(format_duration(90 * NS_PER_SEC), "90s");
        assert_eq!(format_duration(1_500 * NS_PER_MS), "1500ms");
    }
}

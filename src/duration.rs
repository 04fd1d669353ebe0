//! Durations given on the command line, in server configuration and in REPL commands, spelt
//! as in the language (`250ms`, `30s`, `5m`, `1h`, `1d`; docs/LANGUAGE.md#durations): one
//! parser, the language's, so a duration that is valid in a program is valid everywhere.

use std::time::Duration;

/// Parses `text` as a duration literal, or `0`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{text}` needs a unit: ns, us, ms, s, m, h or d (e.g. 500ms, 2s, 1d)"
        ));
    }
    varpulis_syntax::parse_duration(text)
        .map(Duration::from_nanos)
        .ok_or_else(|| {
            format!("`{text}` is not a duration: write a number and a unit (ns, us, ms, s, m, h, d), e.g. 500ms, 2s, 1d")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_spelt_as_in_the_language() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse(" 0 "), Ok(Duration::ZERO));
        assert!(parse("5").expect_err("no unit").contains("needs a unit"));
        assert!(parse("5 min").is_err());
        assert!(parse("").is_err());
        assert!(parse("99999999999999999999d").is_err());
    }
}

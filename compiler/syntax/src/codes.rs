//! The registry of syntax error codes (range E01xx).
//!
//! Every diagnostic the syntax crate produces carries one of these codes.
//! Numbers are never reused; each code has an explanation page in
//! `docs/errors/<code>.md`.

/// A token that does not fit where it appears.
pub const UNEXPECTED_TOKEN: &str = "E0101";
/// An opening `(`, `[` or `{` that is never closed.
pub const UNCLOSED_DELIMITER: &str = "E0102";
/// A string literal without its closing quote on the same line.
pub const UNTERMINATED_STRING: &str = "E0103";
/// A `/*` block comment without its closing `*/`.
pub const UNTERMINATED_COMMENT: &str = "E0104";
/// A malformed number (`2e3`, `3abc`, an integer beyond i64).
pub const INVALID_NUMBER: &str = "E0105";
/// A malformed duration (`5min`, `1.5s`, `1h30m`, overflow).
pub const INVALID_DURATION: &str = "E0106";
/// A malformed or impossible timestamp (`@2024-02-30`).
pub const INVALID_TIMESTAMP: &str = "E0107";
/// An expression was required but something else was found.
pub const EXPECTED_EXPRESSION: &str = "E0108";
/// A block opener (`fn ...:`, `if ...:`, `event X:`) without an indented body.
pub const EXPECTED_BLOCK: &str = "E0109";
/// Comparisons written in a chain (`a < b < c`).
pub const CHAINED_COMPARISON: &str = "E0110";
/// Brackets or prefix operators nested too deeply, or an operator chain too long.
pub const NESTING_TOO_DEEP: &str = "E0111";
/// Syntax that is reserved or documented elsewhere but not supported (`??`, `+=`, `match`).
pub const UNSUPPORTED_SYNTAX: &str = "E0112";
/// A malformed declaration loop (`for i in 0..100000:` at column 0).
pub const INVALID_DECL_LOOP: &str = "E0113";
/// A character that cannot start any token (`$`, `` ` ``).
pub const INVALID_CHARACTER: &str = "E0114";
/// A line indented more than the block it is in.
pub const UNEXPECTED_INDENT: &str = "E0115";
/// A clause written twice (`within` twice in one pattern).
pub const DUPLICATE_CLAUSE: &str = "E0116";

/// Every syntax code with a one-line title, in numeric order.
pub const ALL_CODES: &[(&str, &str)] = &[
    (UNEXPECTED_TOKEN, "unexpected token"),
    (UNCLOSED_DELIMITER, "unclosed delimiter"),
    (UNTERMINATED_STRING, "unterminated string"),
    (UNTERMINATED_COMMENT, "unterminated block comment"),
    (INVALID_NUMBER, "invalid number literal"),
    (INVALID_DURATION, "invalid duration literal"),
    (INVALID_TIMESTAMP, "invalid timestamp literal"),
    (EXPECTED_EXPRESSION, "expected expression"),
    (EXPECTED_BLOCK, "expected indented block"),
    (CHAINED_COMPARISON, "chained comparison"),
    (NESTING_TOO_DEEP, "nesting too deep"),
    (UNSUPPORTED_SYNTAX, "unsupported syntax"),
    (INVALID_DECL_LOOP, "invalid declaration loop"),
    (INVALID_CHARACTER, "invalid character"),
    (UNEXPECTED_INDENT, "unexpected indentation"),
    (DUPLICATE_CLAUSE, "duplicate clause"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_in_order() {
        for pair in ALL_CODES.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} before {}", pair[0].0, pair[1].0);
        }
    }
}

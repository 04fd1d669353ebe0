//! The lexer: text to tokens, comments included.
//!
//! Hand-written, one pass over the bytes, no allocation per character. Words
//! are always lexed whole (`notes`, `true_count` and `allowance` are single
//! identifiers), and no word is reserved: keywords are recognised by the
//! parser from the identifier's text and its position (docs/LANGUAGE.md#names-and-keywords).
//! Literals are validated here, so every malformed literal is reported
//! exactly once, even inside text the parser later skips.

use crate::codes;
use crate::error::SyntaxError;
use crate::literal;
use crate::span::Span;

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// A word: identifier or (contextual) keyword, including `true`,
    /// `false`, `null`, `and`, `not`, ...
    Ident,
    /// Integer literal `42`.
    Int,
    /// Float literal `4.2`, `1.5e3`.
    Float,
    /// Duration literal `5m`.
    Duration,
    /// Timestamp literal `@2024-01-01T00:00:00Z`.
    Timestamp,
    /// String literal `"..."` or `'...'` (possibly unterminated; the lexer
    /// reported that).
    Str,
    /// A malformed literal (`5min`, `2e3`, `@2024-13-01`); already reported.
    BadLiteral,
    /// `# ...` or `// ...`.
    LineComment,
    /// `/* ... */`.
    BlockComment,
    /// `(`.
    LParen,
    /// `)`.
    RParen,
    /// `[`.
    LBracket,
    /// `]`.
    RBracket,
    /// `{`.
    LBrace,
    /// `}`.
    RBrace,
    /// `,`.
    Comma,
    /// `:`.
    Colon,
    /// `;` (not part of VPL; reported by the parser).
    Semicolon,
    /// `.`.
    Dot,
    /// `..`.
    DotDot,
    /// `..=`.
    DotDotEq,
    /// `?.`.
    QuestionDot,
    /// `?`.
    Question,
    /// `??` (reserved, reported as unsupported).
    QuestionQuestion,
    /// `->`.
    Arrow,
    /// `=>`.
    FatArrow,
    /// `:=`.
    ColonEq,
    /// `=`.
    Eq,
    /// `==`.
    EqEq,
    /// `!=`.
    NotEq,
    /// `!` (not VPL; the parser suggests `not`).
    Bang,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `+`.
    Plus,
    /// `-`.
    Minus,
    /// `*`.
    Star,
    /// `**`.
    StarStar,
    /// `/`.
    Slash,
    /// `%`.
    Percent,
    /// `|`.
    Pipe,
    /// `||` (not VPL; the parser suggests `or`).
    PipePipe,
    /// `^`.
    Caret,
    /// `&`.
    Amp,
    /// `&&` (not VPL; the parser suggests `and`).
    AmpAmp,
    /// `<<`.
    Shl,
    /// `>>`.
    Shr,
    /// `~`.
    Tilde,
    /// `+=`, `-=`, `*=`, `/=`, `%=` (reserved, reported as unsupported).
    OpAssign,
    /// A character that starts no token; already reported.
    Unknown,
}

impl TokenKind {
    /// Whether the token is a comment.
    pub fn is_comment(self) -> bool {
        matches!(self, TokenKind::LineComment | TokenKind::BlockComment)
    }

    /// Whether the token is a literal (including a malformed one).
    pub fn is_literal(self) -> bool {
        matches!(
            self,
            TokenKind::Int
                | TokenKind::Float
                | TokenKind::Duration
                | TokenKind::Timestamp
                | TokenKind::Str
                | TokenKind::BadLiteral
        )
    }
}

/// One token: its kind and where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Token {
    /// What the token is.
    pub kind: TokenKind,
    /// Its bytes in the text.
    pub span: Span,
}

/// Splits `text` into tokens, comments included, whitespace excluded.
///
/// Never fails: malformed input becomes [`TokenKind::Unknown`] or
/// [`TokenKind::BadLiteral`] tokens. Use [`crate::parse`] to get the errors.
pub fn lex(text: &str) -> Vec<Token> {
    tokenize(text).0
}

/// Tokens plus the lexical errors (unterminated strings and comments,
/// malformed literals, invalid characters).
pub(crate) fn tokenize(text: &str) -> (Vec<Token>, Vec<SyntaxError>) {
    let mut lexer = Lexer {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        tokens: Vec::with_capacity(text.len() / 4 + 1),
        errors: Vec::new(),
    };
    lexer.run();
    (lexer.tokens, lexer.errors)
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_continue(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

struct Lexer<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    tokens: Vec<Token>,
    errors: Vec<SyntaxError>,
}

impl Lexer<'_> {
    fn peek(&self, ahead: usize) -> u8 {
        self.bytes.get(self.pos + ahead).copied().unwrap_or(0)
    }

    fn span(&self, start: usize) -> Span {
        Span::new(start as u32, self.pos as u32)
    }

    fn push(&mut self, kind: TokenKind, start: usize) {
        let span = self.span(start);
        self.tokens.push(Token { kind, span });
    }

    fn run(&mut self) {
        while self.pos < self.bytes.len() {
            let start = self.pos;
            let b = self.bytes[self.pos];
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => self.pos += 1,
                b'#' => self.line_comment(start),
                b'/' if self.peek(1) == b'/' => self.line_comment(start),
                b'/' if self.peek(1) == b'*' => self.block_comment(start),
                b'"' | b'\'' => self.string(start, b),
                b'0'..=b'9' => self.number(start),
                b'@' if self.peek(1).is_ascii_digit() => self.timestamp(start),
                _ if is_ident_start(b) => {
                    while self.pos < self.bytes.len() && is_ident_continue(self.bytes[self.pos]) {
                        self.pos += 1;
                    }
                    self.push(TokenKind::Ident, start);
                }
                _ => self.punct(start, b),
            }
        }
    }

    fn line_comment(&mut self, start: usize) {
        while self.pos < self.bytes.len() && self.bytes[self.pos] != b'\n' {
            self.pos += 1;
        }
        // A trailing CR belongs to the line break, not to the comment.
        let mut end = self.pos;
        if end > start && self.bytes[end - 1] == b'\r' {
            end -= 1;
        }
        self.tokens.push(Token {
            kind: TokenKind::LineComment,
            span: Span::new(start as u32, end as u32),
        });
    }

    fn block_comment(&mut self, start: usize) {
        self.pos += 2;
        loop {
            if self.pos >= self.bytes.len() {
                self.push(TokenKind::BlockComment, start);
                self.errors.push(
                    SyntaxError::new(
                        codes::UNTERMINATED_COMMENT,
                        "unterminated block comment",
                        Span::new(start as u32, start as u32 + 2),
                    )
                    .with_label("this comment is never closed")
                    .with_help("end the comment with `*/` (block comments do not nest)")
                    .incomplete(),
                );
                return;
            }
            if self.bytes[self.pos] == b'*' && self.peek(1) == b'/' {
                self.pos += 2;
                self.push(TokenKind::BlockComment, start);
                return;
            }
            self.pos += 1;
        }
    }

    fn string(&mut self, start: usize, quote: u8) {
        self.pos += 1;
        loop {
            match self.bytes.get(self.pos).copied() {
                None | Some(b'\n') => {
                    let at_eof = self.pos >= self.bytes.len();
                    // Strings end at the line break so that one missing quote
                    // cannot swallow the following declarations.
                    let mut end = self.pos;
                    if end > start + 1 && self.bytes[end - 1] == b'\r' {
                        end -= 1;
                    }
                    self.tokens.push(Token {
                        kind: TokenKind::Str,
                        span: Span::new(start as u32, end as u32),
                    });
                    let q = quote as char;
                    let mut err = SyntaxError::new(
                        codes::UNTERMINATED_STRING,
                        "unterminated string",
                        Span::new(start as u32, end as u32),
                    )
                    .with_label("this string has no closing quote")
                    .with_help(format!(
                        "add a closing {q} before the end of the line (write a line break as \\n)"
                    ));
                    if at_eof {
                        err = err.incomplete();
                    }
                    self.errors.push(err);
                    return;
                }
                Some(b'\\') => {
                    // Skip the backslash and the whole escaped character (a
                    // line break still ends the string).
                    let next = self.text[self.pos + 1..].chars().next();
                    self.pos += 1 + next.filter(|c| *c != '\n').map_or(0, char::len_utf8);
                }
                Some(b) if b == quote => {
                    self.pos += 1;
                    self.push(TokenKind::Str, start);
                    return;
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    fn digits(&mut self) {
        while self.pos < self.bytes.len() && self.bytes[self.pos].is_ascii_digit() {
            self.pos += 1;
        }
    }

    fn number(&mut self, start: usize) {
        self.digits();
        let int_end = self.pos;
        let mut is_float = false;
        if self.peek(0) == b'.' && self.peek(1).is_ascii_digit() {
            is_float = true;
            self.pos += 1;
            self.digits();
            if matches!(self.peek(0), b'e' | b'E') {
                let sign = usize::from(matches!(self.peek(1), b'+' | b'-'));
                if self.peek(1 + sign).is_ascii_digit() {
                    self.pos += 1 + sign;
                    self.digits();
                }
            }
        }
        let suffix_start = self.pos;
        while self.pos < self.bytes.len() && is_ident_continue(self.bytes[self.pos]) {
            self.pos += 1;
        }
        let span = self.span(start);
        let whole = &self.text[start..self.pos];
        let suffix = &self.text[suffix_start..self.pos];
        let kind = if suffix.is_empty() {
            if is_float {
                match whole.parse::<f64>() {
                    Ok(v) if v.is_finite() => TokenKind::Float,
                    _ => self.bad_number(span, "float literal is out of range", None),
                }
            } else if whole.parse::<i64>().is_ok() {
                TokenKind::Int
            } else {
                self.bad_number(
                    span,
                    "integer literal is too large",
                    Some("integers are 64-bit: use at most 9223372036854775807".to_string()),
                )
            }
        } else if !is_float && literal::unit_ns(suffix).is_some() {
            if literal::parse_duration(whole).is_some() {
                TokenKind::Duration
            } else {
                self.bad_duration(span, "duration literal is too large", None)
            }
        } else {
            self.bad_suffix(span, whole, &self.text[start..int_end], is_float, suffix)
        };
        self.tokens.push(Token { kind, span });
    }

    fn bad_number(&mut self, span: Span, msg: &str, help: Option<String>) -> TokenKind {
        let mut err = SyntaxError::new(codes::INVALID_NUMBER, msg, span);
        if let Some(help) = help {
            err = err.with_help(help);
        }
        self.errors.push(err);
        TokenKind::BadLiteral
    }

    fn bad_duration(&mut self, span: Span, msg: &str, help: Option<String>) -> TokenKind {
        let mut err = SyntaxError::new(codes::INVALID_DURATION, msg, span);
        if let Some(help) = help {
            err = err.with_help(help);
        }
        self.errors.push(err);
        TokenKind::BadLiteral
    }

    /// A number directly followed by letters: a misspelt duration, an
    /// exponent without fraction, or an identifier starting with a digit.
    fn bad_suffix(
        &mut self,
        span: Span,
        whole: &str,
        int_part: &str,
        is_float: bool,
        suffix: &str,
    ) -> TokenKind {
        if is_float {
            if let Some(unit) = literal::unit_prefix(suffix).filter(|u| *u == suffix) {
                let value: f64 = whole[..whole.len() - unit.len()].parse().unwrap_or(0.0);
                let ns = value * literal::unit_ns(unit).unwrap_or(1) as f64;
                let help = if ns.fract() == 0.0 && ns >= 1.0 && ns < u64::MAX as f64 {
                    format!(
                        "durations take a whole number: {}",
                        literal::format_duration(ns as u64)
                    )
                } else {
                    "durations take a whole number of a smaller unit".to_string()
                };
                return self.bad_duration(
                    span,
                    &format!("duration `{whole}` has a fraction"),
                    Some(help),
                );
            }
            return self.bad_number(
                span,
                &format!("invalid number literal `{whole}`"),
                Some("separate the number from the following word with a space".to_string()),
            );
        }
        if matches!(suffix.as_bytes().first(), Some(b'e' | b'E'))
            && suffix[1..]
                .trim_start_matches(['+', '-'])
                .bytes()
                .all(|b| b.is_ascii_digit())
            && suffix.len() > 1
        {
            return self.bad_number(
                span,
                &format!("invalid number literal `{whole}`"),
                Some(format!(
                    "a float needs a fraction before the exponent: {int_part}.0{suffix}"
                )),
            );
        }
        if let Some(ns) = literal::parse_compound_duration(whole) {
            return self.bad_duration(
                span,
                &format!("invalid duration literal `{whole}`"),
                Some(format!(
                    "durations use one unit: {}",
                    literal::format_duration(ns)
                )),
            );
        }
        if let Some(unit) = literal::unit_prefix(suffix) {
            return self.bad_duration(
                span,
                &format!("invalid duration literal `{whole}`"),
                Some(format!("durations use one unit: {int_part}{unit}")),
            );
        }
        self.bad_number(
            span,
            &format!("invalid number literal `{whole}`"),
            Some("names cannot start with a digit; separate the number from the word".to_string()),
        )
    }

    fn timestamp(&mut self, start: usize) {
        self.pos += 1;
        while self.pos < self.bytes.len() {
            let b = self.bytes[self.pos];
            let sign_then_digit = (b == b'+' || b == b'-') && self.peek(1).is_ascii_digit();
            if b.is_ascii_alphanumeric() || b == b':' || b == b'_' || sign_then_digit {
                self.pos += 1;
            } else {
                break;
            }
        }
        let span = self.span(start);
        let text = &self.text[start..self.pos];
        let kind = match literal::parse_timestamp(text) {
            Ok(_) => TokenKind::Timestamp,
            Err(why) => {
                self.errors.push(
                    SyntaxError::new(
                        codes::INVALID_TIMESTAMP,
                        format!("invalid timestamp literal `{text}`"),
                        span,
                    )
                    .with_label(why)
                    .with_help("write @YYYY-MM-DD or @YYYY-MM-DDTHH:MM:SS, optionally followed by Z or ±HH:MM"),
                );
                TokenKind::BadLiteral
            }
        };
        self.tokens.push(Token { kind, span });
    }

    fn punct(&mut self, start: usize, b: u8) {
        use TokenKind as K;
        let next = self.peek(1);
        let (kind, len) = match (b, next) {
            (b'(', _) => (K::LParen, 1),
            (b')', _) => (K::RParen, 1),
            (b'[', _) => (K::LBracket, 1),
            (b']', _) => (K::RBracket, 1),
            (b'{', _) => (K::LBrace, 1),
            (b'}', _) => (K::RBrace, 1),
            (b',', _) => (K::Comma, 1),
            (b';', _) => (K::Semicolon, 1),
            (b':', b'=') => (K::ColonEq, 2),
            (b':', _) => (K::Colon, 1),
            (b'.', b'.') if self.peek(2) == b'=' => (K::DotDotEq, 3),
            (b'.', b'.') => (K::DotDot, 2),
            (b'.', _) => (K::Dot, 1),
            (b'?', b'.') => (K::QuestionDot, 2),
            (b'?', b'?') => (K::QuestionQuestion, 2),
            (b'?', _) => (K::Question, 1),
            (b'-', b'>') => (K::Arrow, 2),
            (b'-', b'=') => (K::OpAssign, 2),
            (b'-', _) => (K::Minus, 1),
            (b'=', b'>') => (K::FatArrow, 2),
            (b'=', b'=') => (K::EqEq, 2),
            (b'=', _) => (K::Eq, 1),
            (b'!', b'=') => (K::NotEq, 2),
            (b'!', _) => (K::Bang, 1),
            (b'<', b'=') => (K::Le, 2),
            (b'<', b'<') => (K::Shl, 2),
            (b'<', _) => (K::Lt, 1),
            (b'>', b'=') => (K::Ge, 2),
            (b'>', b'>') => (K::Shr, 2),
            (b'>', _) => (K::Gt, 1),
            (b'+', b'=') => (K::OpAssign, 2),
            (b'+', _) => (K::Plus, 1),
            (b'*', b'*') => (K::StarStar, 2),
            (b'*', b'=') => (K::OpAssign, 2),
            (b'*', _) => (K::Star, 1),
            (b'/', b'=') => (K::OpAssign, 2),
            (b'/', _) => (K::Slash, 1),
            (b'%', b'=') => (K::OpAssign, 2),
            (b'%', _) => (K::Percent, 1),
            (b'|', b'|') => (K::PipePipe, 2),
            (b'|', _) => (K::Pipe, 1),
            (b'&', b'&') => (K::AmpAmp, 2),
            (b'&', _) => (K::Amp, 1),
            (b'^', _) => (K::Caret, 1),
            (b'~', _) => (K::Tilde, 1),
            (b'`', _) => {
                // A backtick-quoted word is one mistake, not two.
                let rest = &self.text[start + 1..];
                let line_end = rest.find('\n').unwrap_or(rest.len());
                let len = rest[..line_end].find('`').map_or(1, |n| n + 2);
                self.pos += len;
                self.errors.push(
                    SyntaxError::new(
                        codes::INVALID_CHARACTER,
                        "backticks are not supported",
                        self.span(start),
                    )
                    .with_label("backtick")
                    .with_help("write strings with double or single quotes: \"text\""),
                );
                self.push(K::Unknown, start);
                return;
            }
            _ => {
                // Consume one whole UTF-8 character.
                let ch = self.text[start..].chars().next().map_or(1, char::len_utf8);
                self.pos += ch;
                let shown = &self.text[start..self.pos];
                self.errors.push(
                    SyntaxError::new(
                        codes::INVALID_CHARACTER,
                        format!("invalid character `{}`", shown.escape_debug()),
                        self.span(start),
                    )
                    .with_label("this character cannot appear outside a string or comment")
                    .with_help("remove it, or put it inside a string literal"),
                );
                self.push(K::Unknown, start);
                return;
            }
        };
        self.pos += len;
        self.push(kind, start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders tokens as `Kind(text)` and errors as `!code` lines.
    fn check(text: &str, expected: &str) {
        let (tokens, errors) = tokenize(text);
        let mut out: Vec<String> = tokens
            .iter()
            .map(|t| format!("{:?}({})", t.kind, &text[t.span.range()]))
            .collect();
        for e in &errors {
            out.push(format!("!{} {}", e.code, e.message));
        }
        assert_eq!(out.join(" "), expected, "lexing {text:?}");
    }

    #[test]
    fn words_are_lexed_whole() {
        check(
            "notes true_count allowance null_rate not in",
            "Ident(notes) Ident(true_count) Ident(allowance) Ident(null_rate) Ident(not) Ident(in)",
        );
    }

    #[test]
    fn numbers_floats_and_durations() {
        check(
            "42 4.5 1.5e3 2.0E-2",
            "Int(42) Float(4.5) Float(1.5e3) Float(2.0E-2)",
        );
        check(
            "5ns 5us 5ms 5s 5m 5h 5d",
            "Duration(5ns) Duration(5us) Duration(5ms) Duration(5s) Duration(5m) Duration(5h) Duration(5d)",
        );
        check(
            "1..5 1..=5",
            "Int(1) DotDot(..) Int(5) Int(1) DotDotEq(..=) Int(5)",
        );
        check("x.5", "Ident(x) Dot(.) Int(5)");
    }

    #[test]
    fn malformed_numbers_are_one_token_and_one_error() {
        check(
            "5min",
            "BadLiteral(5min) !E0106 invalid duration literal `5min`",
        );
        check(
            "1h30m",
            "BadLiteral(1h30m) !E0106 invalid duration literal `1h30m`",
        );
        check(
            "1.5s",
            "BadLiteral(1.5s) !E0106 duration `1.5s` has a fraction",
        );
        check("2e3", "BadLiteral(2e3) !E0105 invalid number literal `2e3`");
        check(
            "3abc",
            "BadLiteral(3abc) !E0105 invalid number literal `3abc`",
        );
        check(
            "99999999999999999999",
            "BadLiteral(99999999999999999999) !E0105 integer literal is too large",
        );
    }

    #[test]
    fn duration_helps_suggest_one_unit() {
        let (_, errors) = tokenize("5min 1h30m 1.5s");
        let helps: Vec<_> = errors.iter().filter_map(|e| e.help.clone()).collect();
        assert_eq!(
            helps,
            [
                "durations use one unit: 5m",
                "durations use one unit: 90m",
                "durations take a whole number: 1500ms"
            ]
        );
    }

    #[test]
    fn timestamps() {
        check("@2024-01-01", "Timestamp(@2024-01-01)");
        check("@2024-01-01T10:00:00Z", "Timestamp(@2024-01-01T10:00:00Z)");
        check(
            "@2024-01-01T10:00:00+02:00",
            "Timestamp(@2024-01-01T10:00:00+02:00)",
        );
        check(
            "@2024-02-30",
            "BadLiteral(@2024-02-30) !E0107 invalid timestamp literal `@2024-02-30`",
        );
        check("@x", "Unknown(@) Ident(x) !E0114 invalid character `@`");
    }

    #[test]
    fn strings_in_both_quotes_and_unterminated_ones() {
        check(r#""a\"b" 'c'"#, r#"Str("a\"b") Str('c')"#);
        check("\"abc\nx", "Str(\"abc) Ident(x) !E0103 unterminated string");
    }

    #[test]
    fn comments_of_three_kinds() {
        check(
            "a # one\nb // two\nc /* three\n */ d",
            "Ident(a) LineComment(# one) Ident(b) LineComment(// two) Ident(c) BlockComment(/* three\n */) Ident(d)",
        );
        check(
            "/* open",
            "BlockComment(/* open) !E0104 unterminated block comment",
        );
    }

    #[test]
    fn punctuation() {
        check(
            "-> => := == != <= >= << >> ** ?. ?? += .. ..=",
            "Arrow(->) FatArrow(=>) ColonEq(:=) EqEq(==) NotEq(!=) Le(<=) Ge(>=) Shl(<<) Shr(>>) StarStar(**) QuestionDot(?.) QuestionQuestion(??) OpAssign(+=) DotDot(..) DotDotEq(..=)",
        );
        check(
            "a $ b",
            "Ident(a) Unknown($) Ident(b) !E0114 invalid character `$`",
        );
        check("é", "Unknown(é) !E0114 invalid character `é`");
    }
}

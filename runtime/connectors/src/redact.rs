//! Secrets never printed: what a connector reports (errors, dead-letter records, descriptions)
//! and what the host logs go through [`redact`] first.
//!
//! Three kinds of secret are hidden:
//! - every value that came from a `${NAME}` or `${file:...}` substitution (tokens, passwords
//!   and URLs are usually given that way), registered by [`register_secret`] as it is
//!   expanded: wherever it appears later, it is replaced;
//! - the password of a URL's user-info (`https://user:pw@host`) and the values of query
//!   parameters whose name says they are a credential (`token`, `key`, `secret`, `password`,
//!   `signature`, ...);
//! - the credentials after `Bearer ` and `Basic `.
//!
//! A redacted part reads `***`.

use std::sync::{Mutex, OnceLock};

/// Substituted values shorter than this are not registered: they could not be told apart
/// from ordinary words, and replacing them would make messages unreadable.
const MIN_SECRET: usize = 4;

/// Registered secrets at most (each is a string to look for in every message).
const MAX_SECRETS: usize = 256;

fn secrets() -> &'static Mutex<Vec<String>> {
    static SECRETS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Remembers `value` as a secret: [`redact`] hides it from then on.
pub fn register_secret(value: &str) {
    let value = value.trim();
    if value.len() < MIN_SECRET {
        return;
    }
    let mut list = secrets().lock().unwrap_or_else(|e| e.into_inner());
    if list.iter().any(|s| s == value) || list.len() >= MAX_SECRETS {
        return;
    }
    list.push(value.to_string());
    // Longest first, so a secret that contains another is hidden whole.
    list.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Query parameter names whose values are credentials (compared without case).
const SECRET_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "key",
    "apikey",
    "api_key",
    "api-key",
    "secret",
    "client_secret",
    "password",
    "passwd",
    "pwd",
    "sig",
    "signature",
    "auth",
    "authorization",
    "credential",
    "credentials",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
];

/// `text` with every secret replaced by `***`.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    {
        let list = secrets().lock().unwrap_or_else(|e| e.into_inner());
        for s in list.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
    }
    let out = redact_userinfo(&out);
    let out = redact_query(&out);
    redact_schemes(&out)
}

/// `scheme://user:password@host` → `scheme://user:***@host`.
fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first `/`, `?`, `#` or white space.
        let end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let info = &authority[..at];
                match info.find(':') {
                    Some(colon) => {
                        out.push_str(&info[..colon]);
                        out.push_str(":***");
                    }
                    None => out.push_str(info),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// `?token=abc&x=1` → `?token=***&x=1`.
fn redact_query(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['?', '&']) {
        out.push_str(&rest[..=i]);
        let after = &rest[i + 1..];
        let name_end = after
            .find(|ch: char| ch == '=' || ch == '&' || ch.is_whitespace())
            .unwrap_or(after.len());
        let name = &after[..name_end];
        let is_secret = SECRET_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(name));
        match after[name_end..].strip_prefix('=') {
            Some(value) if is_secret => {
                out.push_str(name);
                out.push_str("=***");
                let value_end = value
                    .find(|ch: char| ch == '&' || ch == '#' || ch.is_whitespace() || ch == '"')
                    .unwrap_or(value.len());
                rest = &value[value_end..];
            }
            _ => rest = after,
        }
    }
    out.push_str(rest);
    out
}

/// `Bearer abc` / `Basic abc` → `Bearer ***` / `Basic ***`.
fn redact_schemes(text: &str) -> String {
    let mut out = text.to_string();
    for scheme in ["Bearer ", "bearer ", "Basic ", "basic "] {
        let mut result = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(i) = rest.find(scheme) {
            let (head, tail) = rest.split_at(i + scheme.len());
            result.push_str(head);
            let end = tail
                .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ',' || c == ';')
                .unwrap_or(tail.len());
            if end > 0 && &tail[..end] != "***" {
                result.push_str("***");
            } else {
                result.push_str(&tail[..end]);
            }
            rest = &tail[end..];
        }
        result.push_str(rest);
        out = result;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substituted_values_userinfo_queries_and_schemes_are_hidden() {
        register_secret("s3cr3t-webhook-path");
        assert_eq!(
            redact("POST https://hooks.example/services/s3cr3t-webhook-path failed: 500"),
            "POST https://hooks.example/services/*** failed: 500"
        );
        assert_eq!(
            redact("cannot connect to mqtts://bob:hunter2@broker:8883/x"),
            "cannot connect to mqtts://bob:***@broker:8883/x"
        );
        assert_eq!(
            redact("GET http://h/p?a=1&Token=abc123&b=2 refused"),
            "GET http://h/p?a=1&Token=***&b=2 refused"
        );
        assert_eq!(
            redact("header Authorization: Bearer eyJhbGci.x.y sent"),
            "header Authorization: Bearer *** sent"
        );
        assert_eq!(
            redact("plain text, no secret: ünïcode ok?"),
            "plain text, no secret: ünïcode ok?"
        );
        assert_eq!(redact("http://h/?keyboard=1"), "http://h/?keyboard=1");
        // Short values are not registered.
        register_secret("ab");
        assert_eq!(redact("abc"), "abc");
    }
}

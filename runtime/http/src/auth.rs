//! API keys: bearer tokens with a role, kept only as SHA-256 hashes and compared in constant
//! time.
//!
//! A presented token is hashed and its hash compared with every stored hash without stopping
//! at the first match, so neither the position of the first differing byte nor which key
//! matched shows in the time an answer takes. Hashing first also makes every comparison the
//! same length whatever the token's length.

use std::fmt;

use axum::http::{HeaderMap, Method};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reading only: `GET` and `HEAD`.
    Read,
    /// Everything.
    Admin,
}

impl Role {
    /// Whether this role may send a request with `method`.
    pub fn allows(self, method: &Method) -> bool {
        self == Role::Admin || method == Method::GET || method == Method::HEAD
    }

    /// `read` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }

    fn code(self) -> u8 {
        match self {
            Role::Read => 1,
            Role::Admin => 2,
        }
    }

    fn from_code(code: u8) -> Option<Role> {
        match code {
            1 => Some(Role::Read),
            2 => Some(Role::Admin),
            _ => None,
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "read" => Ok(Role::Read),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role `{other}`: use `read` or `admin`")),
        }
    }
}

/// The stored form of a key: `sha256:` and 64 hex digits.
pub fn hash_key(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for b in digest.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[derive(Clone)]
struct Key {
    name: String,
    role: Role,
    hash: [u8; 32],
}

/// A set of API keys.
#[derive(Clone, Default)]
pub struct Keys {
    keys: Vec<Key>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names and roles only: hashes stay out of logs too.
        f.debug_list()
            .entries(self.keys.iter().map(|k| (&k.name, k.role)))
            .finish()
    }
}

fn digest(token: &str) -> [u8; 32] {
    let d = Sha256::digest(token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(&d);
    out
}

impl Keys {
    /// No keys.
    pub fn new() -> Keys {
        Keys::default()
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Adds a key given in clear (a flag or an environment variable); only its hash is kept.
    pub fn add_token(&mut self, name: impl Into<String>, token: &str, role: Role) {
        self.keys.push(Key {
            name: name.into(),
            role,
            hash: digest(token),
        });
    }

    /// Adds a key given as its hash (`sha256:<64 hex digits>`, see [`hash_key`]).
    pub fn add_hash(
        &mut self,
        name: impl Into<String>,
        hash: &str,
        role: Role,
    ) -> Result<(), String> {
        let hex = hash.strip_prefix("sha256:").ok_or_else(|| {
            "a key hash starts with `sha256:` (make one with `varpulis server hash-key`)"
                .to_string()
        })?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("a key hash is `sha256:` followed by 64 hex digits".into());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = hex.get(2 * i..2 * i + 2).unwrap_or("00");
            *byte = u8::from_str_radix(pair, 16).map_err(|e| e.to_string())?;
        }
        self.keys.push(Key {
            name: name.into(),
            role,
            hash: out,
        });
        Ok(())
    }

    /// The role of `token`, comparing with every key in constant time.
    pub fn verify(&self, token: &str) -> Option<Role> {
        let presented = digest(token);
        let mut found = 0u8;
        for key in &self.keys {
            let equal = key.hash.ct_eq(&presented);
            // Keep the highest role among matching keys, without branching on the match.
            let better = subtle::Choice::from(u8::from(key.role.code() > found));
            found = u8::conditional_select(&found, &key.role.code(), equal & better);
        }
        Role::from_code(found)
    }

    /// The role of the bearer token in `headers`, or why there is none.
    pub fn check(&self, headers: &HeaderMap) -> Result<Role, &'static str> {
        let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
            return Err("this endpoint needs an API key: send `Authorization: Bearer <key>`");
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or("the Authorization header must be `Bearer <key>`")?;
        self.verify(token).ok_or("the API key is not valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_verify_by_hash_and_keep_the_highest_role() {
        let mut keys = Keys::new();
        keys.add_token("reader", "r-secret", Role::Read);
        keys.add_hash("admin", &hash_key("a-secret"), Role::Admin)
            .expect("valid hash");
        assert_eq!(keys.verify("r-secret"), Some(Role::Read));
        assert_eq!(keys.verify("a-secret"), Some(Role::Admin));
        assert_eq!(keys.verify("a-secre"), None);
        assert_eq!(keys.verify(""), None);
        keys.add_token("both", "r-secret", Role::Admin);
        assert_eq!(keys.verify("r-secret"), Some(Role::Admin));
    }

    #[test]
    fn malformed_hashes_are_refused_with_advice() {
        let mut keys = Keys::new();
        assert!(keys.add_hash("k", "abc", Role::Read).is_err());
        assert!(keys.add_hash("k", "sha256:zz", Role::Read).is_err());
        assert!(keys
            .add_hash("k", &format!("sha256:{}", "g".repeat(64)), Role::Read)
            .is_err());
        assert!(keys.is_empty());
        assert!(!format!("{keys:?}").contains("sha256"));
    }

    #[test]
    fn read_keys_only_read() {
        assert!(Role::Read.allows(&Method::GET));
        assert!(!Role::Read.allows(&Method::POST));
        assert!(Role::Admin.allows(&Method::DELETE));
    }
}

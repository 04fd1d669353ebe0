//! The lookup interface of `.enrich` (docs/LANGUAGE.md#enrich).
//!
//! The engine never does I/O: when records reach an `.enrich` operator it
//! evaluates their keys and asks the host's [`Enricher`] for all of them at
//! once (the records of one engine step, in input order), then writes the
//! answers into the output events in that same order. The host decides how
//! to answer: network lookups with a cache and timeouts (`run`), a replay
//! file (`simulate`, `test`), or nothing at all ([`Unanswered`]).

use std::sync::Arc;
use varpulis_program::{ConnectorId, Value, ValueMap};

/// How a lookup ended, as `enrich_status` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EnrichStatus {
    /// The store answered (a key it does not hold answers with no fields).
    Ok,
    /// Answered from the host's cache within `cache_ttl`.
    Cached,
    /// The store failed, or the key could not be looked up.
    Error,
    /// No answer within `timeout`.
    Timeout,
}

impl EnrichStatus {
    /// The value of `enrich_status`: `ok`, `cached`, `error` or `timeout`.
    pub fn as_str(self) -> &'static str {
        match self {
            EnrichStatus::Ok => "ok",
            EnrichStatus::Cached => "cached",
            EnrichStatus::Error => "error",
            EnrichStatus::Timeout => "timeout",
        }
    }

    /// The status named `s` (the inverse of [`EnrichStatus::as_str`]).
    pub fn parse(s: &str) -> Option<EnrichStatus> {
        Some(match s {
            "ok" => EnrichStatus::Ok,
            "cached" => EnrichStatus::Cached,
            "error" => EnrichStatus::Error,
            "timeout" => EnrichStatus::Timeout,
            _ => return None,
        })
    }

    /// Whether the fields come from the store (`ok`, `cached`), rather than
    /// from the fallback.
    pub fn answered(self) -> bool {
        matches!(self, EnrichStatus::Ok | EnrichStatus::Cached)
    }
}

/// The answer to one key.
#[derive(Clone, Debug, PartialEq)]
pub struct Lookup {
    /// The fields the store holds for the key (only those the site lists
    /// are used); `None` when it did not answer.
    pub fields: Option<Arc<ValueMap>>,
    /// How the lookup ended.
    pub status: EnrichStatus,
    /// How long it took, in milliseconds (0 for cache hits and replays
    /// that say so).
    pub latency_ms: u64,
}

impl Lookup {
    /// A failed lookup.
    pub fn failed(status: EnrichStatus, latency_ms: u64) -> Lookup {
        Lookup {
            fields: None,
            status,
            latency_ms,
        }
    }
}

/// One `.enrich` site asking for keys.
#[derive(Clone, Copy, Debug)]
pub struct LookupRequest<'a> {
    /// The connector (an index into `Program::connectors`).
    pub connector: ConnectorId,
    /// The connector's name.
    pub name: &'a str,
    /// The fields the site adds.
    pub fields: &'a [Arc<str>],
    /// Longest wait for one lookup, in ns.
    pub timeout: i64,
    /// How long answers may be reused, in ns (`None`: not cached).
    pub cache_ttl: Option<i64>,
}

/// The host's side of `.enrich`.
pub trait Enricher: Send {
    /// Answers `keys` (in order; the result has one [`Lookup`] per key, in
    /// the same order). Called once per batch of records reaching the
    /// operator; may block up to about the request's timeout.
    fn lookup(&mut self, request: &LookupRequest<'_>, keys: &[Value]) -> Vec<Lookup>;
}

/// The enricher of an engine without one: every lookup fails (status
/// `error`, the fallback), so programs with `.enrich` still run the same
/// way everywhere (the REPL, the corpus, `simulate` without a replay file).
#[derive(Clone, Copy, Debug, Default)]
pub struct Unanswered;

impl Enricher for Unanswered {
    fn lookup(&mut self, _request: &LookupRequest<'_>, keys: &[Value]) -> Vec<Lookup> {
        keys.iter()
            .map(|_| Lookup::failed(EnrichStatus::Error, 0))
            .collect()
    }
}

//! Counters of one listener, for `/metrics` and the status API.

use std::sync::atomic::{AtomicU64, Ordering};

/// What happened on a listener since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpStats {
    /// Connections accepted.
    pub connections: u64,
    /// Connections open now.
    pub open: u64,
    /// Connections refused because [`Limits::max_connections`](crate::Limits) were open.
    pub refused: u64,
    /// Requests answered.
    pub requests: u64,
    /// Connections closed for sending headers, a body or nothing at all too slowly.
    pub timeouts: u64,
    /// Requests refused for their size before reaching a handler (`413` on the declared
    /// length, `431` on headers).
    pub too_large: u64,
    /// Requests refused for a missing or wrong API key, or a role that may not (`401`, `403`),
    /// before reaching a handler.
    pub unauthorized: u64,
    /// Connections that broke the protocol (junk bytes, bad chunks) or broke off.
    pub protocol_errors: u64,
    /// TLS handshakes that failed (no client certificate, wrong CA, not TLS at all).
    pub tls_failures: u64,
    /// Errors accepting a connection (out of file descriptors); the listener goes on.
    pub accept_errors: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub connections: AtomicU64,
    pub refused: AtomicU64,
    pub requests: AtomicU64,
    pub timeouts: AtomicU64,
    pub too_large: AtomicU64,
    pub unauthorized: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub tls_failures: AtomicU64,
    pub accept_errors: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self, open: u64) -> HttpStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HttpStats {
            connections: get(&self.connections),
            open,
            refused: get(&self.refused),
            requests: get(&self.requests),
            timeouts: get(&self.timeouts),
            too_large: get(&self.too_large),
            unauthorized: get(&self.unauthorized),
            protocol_errors: get(&self.protocol_errors),
            tls_failures: get(&self.tls_failures),
            accept_errors: get(&self.accept_errors),
        }
    }
}

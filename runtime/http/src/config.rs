//! What a listener is told: where to listen, its limits, TLS and API keys.

use std::path::PathBuf;
use std::time::Duration;

use crate::auth::Keys;

/// One listener's configuration.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// What the listener serves, for messages and metrics (`metrics`, `ingest In`, `server`).
    pub name: String,
    /// `HOST:PORT` to bind (`127.0.0.1:0` picks a free port).
    pub listen: String,
    /// TLS certificate and key; `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Limits against slow, large and numerous requests.
    pub limits: Limits,
    /// API keys; `None` serves every request without authentication (allowed only on loopback
    /// addresses, or with client certificates).
    pub keys: Option<Keys>,
    /// Paths answered without an API key (health checks, the status page's assets).
    pub public_paths: Vec<String>,
}

impl HttpConfig {
    /// A plain-HTTP listener on `listen` with the default limits and no keys.
    pub fn new(name: impl Into<String>, listen: impl Into<String>) -> Self {
        HttpConfig {
            name: name.into(),
            listen: listen.into(),
            tls: None,
            limits: Limits::default(),
            keys: None,
            public_paths: Vec::new(),
        }
    }

    /// Whether clients must prove who they are: API keys, or certificates signed by a CA.
    pub fn authenticated(&self) -> bool {
        self.keys.as_ref().is_some_and(|k| !k.is_empty())
            || self.tls.as_ref().is_some_and(|t| t.client_ca.is_some())
    }
}

/// TLS files, all PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by one of these CAs (mTLS).
    pub client_ca: Option<PathBuf>,
}

/// Limits of one listener. The defaults suit an API or ingest endpoint on a network shared
/// with untrusted clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the request line plus headers (`431` beyond). Default 16 KiB.
    pub max_header_bytes: usize,
    /// Number of headers (`431` beyond). Default 64.
    pub max_headers: usize,
    /// Bytes of a request body (`413` beyond). Default 10 MiB.
    pub max_body: u64,
    /// Time for a client to send the request line and headers. Default 10 s.
    pub header_timeout: Duration,
    /// Time for a client to send a whole body, from the end of its headers (`408`). Default
    /// 30 s.
    pub body_timeout: Duration,
    /// A connection that moves no byte either way for this long is closed. Default 60 s.
    pub idle_timeout: Duration,
    /// Open connections at most; one more is answered `503` and closed. Default 1,024.
    pub max_connections: usize,
    /// How long a shutdown waits for requests in progress. Default 5 s.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 16 << 10,
            max_headers: 64,
            max_body: 10 << 20,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

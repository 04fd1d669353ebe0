//! The one HTTP server stack of Varpulis.
//!
//! Every endpoint the process serves (the `http` ingest source, `--metrics`, `varpulis server`)
//! runs on [`Server`]: hyper's HTTP/1.1 connections on a small tokio runtime of their own,
//! with the limits a listener exposed to hostile clients needs, enforced before anything is
//! allocated for a request:
//!
//! - header size and count ([`Limits::max_header_bytes`], [`Limits::max_headers`]: `431`);
//! - body size ([`Limits::max_body`]): a `Content-Length` above it is answered `413` before a
//!   byte of the body is read, and a chunked body is cut off at the limit;
//! - time: headers must arrive within [`Limits::header_timeout`], a body within
//!   [`Limits::body_timeout`] (`408`), and a connection that moves no byte for
//!   [`Limits::idle_timeout`] is closed;
//! - a cap on open connections ([`Limits::max_connections`]): one more is answered `503` and
//!   closed, so a flood cannot take memory or file descriptors without bound;
//! - TLS with rustls ([`TlsFiles`]), optionally requiring client certificates (mTLS);
//! - API keys ([`Keys`]) compared in constant time, with two roles ([`Role`]); a listener on a
//!   non-loopback address without keys or mTLS refuses to start ([`HttpError::Insecure`]);
//! - a bounded shutdown ([`Server::shutdown`]).
//!
//! Handlers are an [`axum::Router`]; they read bodies through [`read_body`], which reports a
//! body that is too large, too slow or broken as a [`BodyError`] with its own answer.
//!
//! **Invariants.** Nothing a client sends can panic the process or make it allocate more than
//! the limits allow; accept errors (out of file descriptors) are counted and retried, never
//! fatal; [`Server::shutdown`] returns within [`Limits::shutdown_grace`] plus a fraction of a
//! second.

mod auth;
mod body;
mod config;
mod error;
mod io;
mod server;
mod stats;
mod tls;

pub use auth::{hash_key, Keys, Role};
pub use body::{read_body, BodyError};
pub use config::{HttpConfig, Limits, TlsFiles};
pub use error::{json_error, HttpError};
pub use server::{Peer, Server, StatsHandle};
pub use stats::HttpStats;

/// Re-exported so users of the stack build routers with the same version.
pub use axum;
/// Handlers that wait (for room in a queue, say) sleep on the listener's runtime with this.
pub use tokio::time::sleep;

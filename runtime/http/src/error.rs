//! Why a listener could not start, and the JSON error answers every handler shares.

use std::path::PathBuf;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Why [`Server::start`](crate::Server::start) failed. Each message names the listener and says
/// what to do.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address is not `HOST:PORT`.
    #[error("{listener}: `{address}` is not an address to listen on: {reason} (write e.g. 127.0.0.1:8080)")]
    Address {
        /// The listener.
        listener: String,
        /// What was given.
        address: String,
        /// Why it is not one.
        reason: String,
    },
    /// Binding failed (port in use, no permission).
    #[error("{listener}: cannot listen on {address}: {source}")]
    Bind {
        /// The listener.
        listener: String,
        /// The address.
        address: String,
        /// The system's reason.
        source: std::io::Error,
    },
    /// A TLS file is missing or unusable.
    #[error("{listener}: TLS file `{}`: {reason}", path.display())]
    Tls {
        /// The listener.
        listener: String,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A non-loopback address without API keys or client certificates.
    #[error(
        "{listener}: refusing to listen on {address} without authentication: anyone who can reach \
         this address could use it. Set an API key (a bearer token) or require client \
         certificates (mTLS), or listen on 127.0.0.1 only"
    )]
    Insecure {
        /// The listener.
        listener: String,
        /// The address.
        address: String,
    },
    /// The listener's runtime or thread could not be created.
    #[error("{listener}: cannot start: {source}")]
    Runtime {
        /// The listener.
        listener: String,
        /// The system's reason.
        source: std::io::Error,
    },
}

/// A JSON error answer: `{"error": message}` with `status`.
pub fn json_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

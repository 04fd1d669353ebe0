//! Request bodies under a size limit and a deadline.
//!
//! Every request reaches its handler with a [`GuardedBody`] inside: reading past
//! [`Limits::max_body`](crate::Limits::max_body) or past the body deadline fails instead of
//! allocating or waiting more, whatever the handler does with the body.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::error::json_error;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// More bytes than the limit.
    #[error("the body is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The client did not send the whole body in time.
    #[error("the body did not arrive within {}s", after.as_secs_f64())]
    Timeout {
        /// The body timeout.
        after: Duration,
    },
    /// The connection broke or the framing was invalid (a bad chunk).
    #[error("the body could not be read: {0}")]
    Broken(String),
}

impl BodyError {
    /// The status a client gets for it.
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Timeout { .. } => StatusCode::REQUEST_TIMEOUT,
            BodyError::Broken(_) => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for BodyError {
    fn into_response(self) -> Response {
        json_error(self.status(), &self.to_string())
    }
}

/// The body of every request: hyper's body with a byte budget and a deadline.
pub(crate) struct GuardedBody {
    inner: Incoming,
    remaining: u64,
    limit: u64,
    after: Duration,
    deadline: Pin<Box<Sleep>>,
    failed: bool,
}

impl GuardedBody {
    pub(crate) fn new(inner: Incoming, limit: u64, after: Duration) -> Self {
        GuardedBody {
            inner,
            remaining: limit,
            limit,
            after,
            deadline: Box::pin(tokio::time::sleep_until(Instant::now() + after)),
            failed: false,
        }
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > this.remaining {
                        this.failed = true;
                        return Poll::Ready(Some(Err(BodyError::TooLarge { limit: this.limit })));
                    }
                    this.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.failed = true;
                Poll::Ready(Some(Err(BodyError::Broken(e.to_string()))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.failed = true;
                    Poll::Ready(Some(Err(BodyError::Timeout { after: this.after })))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Reads a whole request body, within the listener's limits.
pub async fn read_body(body: axum::body::Body) -> Result<Bytes, BodyError> {
    match body.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => {
            let inner = e.into_inner();
            match inner.downcast::<BodyError>() {
                Ok(b) => Err(*b),
                Err(other) => Err(BodyError::Broken(other.to_string())),
            }
        }
    }
}

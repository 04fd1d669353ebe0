//! Sink counters: a lock-free set shared between a sink and its delivery thread, and the
//! [`SinkMetrics`] snapshot callers read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A snapshot of one sink's counters. Record counts, unless said otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkMetrics {
    /// Records delivered (written to the file / accepted with a 2xx answer / printed).
    pub sent: u64,
    /// Records whose delivery failed for good (after the last retry, or at once when retrying
    /// cannot help). Each of them is either dead-lettered or dropped.
    pub failed: u64,
    /// Repeated requests (one per retry of a batch, not per record).
    pub retried: u64,
    /// Records written to the dead-letter file, whatever the reason.
    pub dead_lettered: u64,
    /// Records sent to the dead-letter file because the delivery queue was full.
    pub dropped_queue_full: u64,
    /// Records lost: neither delivered nor saved to the dead-letter file.
    pub dropped: u64,
    /// Payload bytes delivered.
    pub bytes: u64,
    /// Records waiting in the delivery queue or in the current batch.
    pub queue_depth: u64,
    /// The most recent error, rendered, for logs and the metrics endpoint.
    pub last_error: Option<String>,
}

/// Counters updated from the sink and its delivery thread.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) dropped_queue_full: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) bytes: AtomicU64,
    /// Records accepted by `send` and not yet delivered, dead-lettered or dropped.
    pub(crate) pending: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sub_pending(&self, n: u64) {
        // Saturate instead of wrapping so a bookkeeping slip can never show a huge queue.
        let _ = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                Some(p.saturating_sub(n))
            });
    }

    pub(crate) fn set_last_error(&self, error: String) {
        // A poisoned lock only means another thread panicked mid-update; the slot is still usable.
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    pub(crate) fn snapshot(&self) -> SinkMetrics {
        SinkMetrics {
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            dropped_queue_full: self.dropped_queue_full.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            queue_depth: self.pending.load(Ordering::Acquire),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

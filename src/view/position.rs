//! What every view reports about its freshness: the answer of a query with the position it
//! was computed at ([`ViewAnswer`]), how far behind the log a view is ([`ViewLag`]), and
//! whether it is still being kept current ([`ViewStatus`]).

use std::time::Duration;

use crate::log::Log;

/// A query's answer and the view's position when it was computed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ViewAnswer<R> {
    /// What the query returned.
    pub value: R,
    /// The view reflected every record below this offset (and none at or above it).
    pub position: u64,
}

impl<R> ViewAnswer<R> {
    /// An answer computed at `position`.
    pub fn new(value: R, position: u64) -> ViewAnswer<R> {
        ViewAnswer { value, position }
    }

    /// The same position with another value.
    pub fn map<S>(self, f: impl FnOnce(R) -> S) -> ViewAnswer<S> {
        ViewAnswer { value: f(self.value), position: self.position }
    }
}

/// How far a view is behind its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ViewLag {
    /// The view's position (next offset to apply).
    pub position: u64,
    /// The log's next offset when the lag was measured.
    pub log_next_offset: u64,
    /// Offsets committed and not yet applied: `log_next_offset - position` (with gaps from
    /// compaction this counts offsets, an upper bound of records).
    pub records: u64,
    /// How long the oldest record not yet applied has been in the log (now minus its
    /// timestamp); zero when the view is caught up.
    pub time: Duration,
}

impl ViewLag {
    /// The lag of a view at `position` over `log`. The time lag reads the timestamp of the
    /// first record at or after `position` (one indexed read); if it cannot be read (removed
    /// meanwhile), the time lag is reported as zero rather than guessed.
    pub fn measure(log: &Log, position: u64) -> ViewLag {
        let next = log.next_offset();
        let records = next.saturating_sub(position);
        let time = if records == 0 {
            Duration::ZERO
        } else {
            let mut cursor = log.cursor(position.max(log.first_offset()));
            match cursor.next() {
                Ok(Some(r)) => Duration::from_micros(crate::time::now_us().saturating_sub(r.timestamp_us())),
                _ => Duration::ZERO,
            }
        };
        ViewLag { position, log_next_offset: next, records, time }
    }
}

/// Whether a view is being kept current.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ViewStatus {
    /// Kept current: by its runner thread (async) or by each append (inline).
    Running,
    /// Stopped on request; its last state can no longer be queried through this handle.
    Stopped,
    /// Its update failed: at `offset`, for `cause`. The log and the other views are unaffected;
    /// this view's state is not served again until it is reopened (or rebuilt).
    Failed {
        /// The record whose update failed, or the position being snapshotted.
        offset: u64,
        /// What failed.
        cause: String,
    },
    /// Read-only: a process that does not own the view reads its files and the log.
    ReadOnly,
    /// The definition changed: the stored generation (of the previous definition) answers
    /// queries and follows the log while `generation`, of the new definition, is built beside
    /// it; it is swapped in when caught up.
    Rebuilding {
        /// The generation being built.
        generation: u64,
    },
}

//! How an [`AggregateStore`](crate::AggregateStore) takes and keeps snapshots.

use crate::error::Result;
use crate::projection::SnapshotRetention;

/// When an aggregate store writes a snapshot of an aggregate by itself (besides
/// [`AggregateStore::snapshot`](crate::AggregateStore::snapshot), on demand).
///
/// A snapshot costs a file write and two fsyncs (the log is flushed up to it first), so it
/// pays for itself when loads replay many events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotPolicy {
    /// After a command, when the stream has this many events or more past the snapshot the
    /// load started from (or past its start). `None`: never. Default `None`.
    pub every: Option<u64>,
    /// After a load that replayed more than this many events (as Axon does). `None`:
    /// never. Default `None`.
    pub replayed_over: Option<u64>,
}

impl SnapshotPolicy {
    /// Snapshots on demand only.
    pub fn on_demand() -> SnapshotPolicy {
        SnapshotPolicy::default()
    }

    /// Also snapshot after a command once `n` events (at least 1) follow the last snapshot.
    #[must_use]
    pub fn every(mut self, n: u64) -> SnapshotPolicy {
        self.every = Some(n.max(1));
        self
    }

    /// Also snapshot after a load that replayed more than `n` events.
    #[must_use]
    pub fn replayed_over(mut self, n: u64) -> SnapshotPolicy {
        self.replayed_over = Some(n);
        self
    }
}

/// Options of an [`AggregateStore`](crate::AggregateStore).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AggregateOptions {
    /// When snapshots are written. Default: on demand only.
    pub snapshots: SnapshotPolicy,
    /// Which of an aggregate's snapshots are kept after a new one is written (its positions
    /// are log offsets). Default: the newest 2.
    pub retention: SnapshotRetention,
}

impl AggregateOptions {
    /// Set the snapshot policy.
    #[must_use]
    pub fn snapshots(mut self, policy: SnapshotPolicy) -> AggregateOptions {
        self.snapshots = policy;
        self
    }

    /// Set the snapshot retention.
    #[must_use]
    pub fn retention(mut self, retention: SnapshotRetention) -> AggregateOptions {
        self.retention = retention;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.retention.validate()
    }
}

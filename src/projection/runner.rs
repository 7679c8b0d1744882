//! [`ProjectionRunner`]: restore a projection, fold the log into it, checkpoint.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::log::{Cursor, Log};
use crate::projection::background::ProjectionHandle;
use crate::projection::replay::{self, Folded, RestoreReport};
use crate::projection::snapshot::{self, SnapshotInfo};
use crate::projection::snapshot_dir::{SnapshotDir, SnapshotRetention};
use crate::projection::Projection;

/// Records applied between two looks at the clock, the stop flag and (in the background)
/// the lock that queries wait for.
const BATCH_RECORDS: u64 = 1024;

/// How a [`ProjectionRunner`] checkpoints and waits.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunnerOptions {
    /// Write a snapshot after this many records applied since the last one; 0: not by
    /// count. Default 10 000.
    pub checkpoint_every_records: u64,
    /// Write a snapshot when this long has passed since the last one and records were
    /// applied since; `None`: not by time. Default 10 s.
    pub checkpoint_interval: Option<Duration>,
    /// Which snapshots to keep after writing one. Default: the latest 2.
    pub retention: SnapshotRetention,
    /// A background runner writes a snapshot when stopped, if records were applied since
    /// the last one. Default true.
    pub checkpoint_on_stop: bool,
    /// Longest a background runner blocks waiting for records before it looks at its stop
    /// flag (appends in this process wake it at once). Default 20 ms.
    pub idle_poll: Duration,
}

impl Default for RunnerOptions {
    fn default() -> RunnerOptions {
        RunnerOptions {
            checkpoint_every_records: 10_000,
            checkpoint_interval: Some(Duration::from_secs(10)),
            retention: SnapshotRetention::default(),
            checkpoint_on_stop: true,
            idle_poll: Duration::from_millis(20),
        }
    }
}

impl RunnerOptions {
    /// Set [`RunnerOptions::checkpoint_every_records`].
    #[must_use]
    pub fn checkpoint_every_records(mut self, n: u64) -> RunnerOptions {
        self.checkpoint_every_records = n;
        self
    }

    /// Set [`RunnerOptions::checkpoint_interval`].
    #[must_use]
    pub fn checkpoint_interval(mut self, every: Option<Duration>) -> RunnerOptions {
        self.checkpoint_interval = every;
        self
    }

    /// Set [`RunnerOptions::retention`].
    #[must_use]
    pub fn retention(mut self, retention: SnapshotRetention) -> RunnerOptions {
        self.retention = retention;
        self
    }

    /// Set [`RunnerOptions::checkpoint_on_stop`].
    #[must_use]
    pub fn checkpoint_on_stop(mut self, yes: bool) -> RunnerOptions {
        self.checkpoint_on_stop = yes;
        self
    }

    /// Set [`RunnerOptions::idle_poll`].
    #[must_use]
    pub fn idle_poll(mut self, d: Duration) -> RunnerOptions {
        self.idle_poll = d;
        self
    }

    fn validate(&self) -> Result<()> {
        self.retention.validate()?;
        if self.idle_poll.is_zero() {
            return Err(Error::InvalidOptions("idle_poll must be longer than zero".into()));
        }
        Ok(())
    }
}

/// Folds a log into a projection's state, checkpointing it to snapshot files.
///
/// [`open`](ProjectionRunner::open) restores the newest usable snapshot (skipping, and
/// reporting, damaged ones and those of another definition); [`run_until_caught_up`]
/// applies every record committed so far; [`spawn`](ProjectionRunner::spawn) follows the
/// tail on a thread. The log may be a writer handle or a read-only follower of a log another
/// process writes.
///
/// Records below [`snapshot_position`](ProjectionRunner::snapshot_position) are the only ones
/// the projection no longer needs: retention on the log must not remove records above it,
/// or the next open fails with `Error::RecordsRemoved`.
///
/// [`run_until_caught_up`]: ProjectionRunner::run_until_caught_up
pub struct ProjectionRunner<P: Projection> {
    log: Log,
    projection: P,
    folded: Folded<P::State>,
    cursor: Cursor,
    snapshots: Arc<SnapshotDir>,
    opts: RunnerOptions,
    report: RestoreReport,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    snapshot_position: Option<u64>,
    /// Set when `apply` failed: the state may hold part of a record and is never used again.
    failed: Option<String>,
}

impl<P: Projection> std::fmt::Debug for ProjectionRunner<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionRunner")
            .field("projection", &self.projection.name())
            .field("position", &self.position())
            .field("snapshots", &self.snapshots.path())
            .finish()
    }
}

/// A snapshot encoded and ready to be written, without holding the runner.
pub(crate) struct PendingSnapshot {
    position: u64,
    bytes: Vec<u8>,
    log: Log,
    dir: Arc<SnapshotDir>,
    retention: SnapshotRetention,
}

impl PendingSnapshot {
    pub(crate) fn position(&self) -> u64 {
        self.position
    }

    /// Write the snapshot, then prune older ones.
    pub(crate) fn write(self) -> Result<SnapshotInfo> {
        let info = self.dir.write_encoded(&self.log, self.position, &self.bytes)?;
        self.dir.prune(self.position, &self.retention)?;
        Ok(info)
    }
}

impl<P: Projection> ProjectionRunner<P> {
    /// Restore `projection` over `log` from the snapshots in `snapshot_dir` (created if
    /// missing; one runner per directory, across processes). Nothing is applied yet.
    ///
    /// Fails with `Error::RecordsRemoved` if the log no longer holds the records after the
    /// newest usable snapshot (or, with none, from offset 0); with `Error::InvalidName` if
    /// the projection's name is empty or longer than 255 bytes; with `Error::Locked` if
    /// another runner holds the directory.
    pub fn open(log: Log, projection: P, snapshot_dir: impl AsRef<Path>, opts: RunnerOptions) -> Result<Self> {
        opts.validate()?;
        snapshot::check_name(projection.name())?;
        let snapshots = SnapshotDir::open(snapshot_dir)?;
        let (folded, report) = replay::restore(&log, &projection, &snapshots, u64::MAX)?;
        let snapshot_position = report.used.as_ref().map(|s| s.position);
        let cursor = log.cursor(folded.coverage.position);
        Ok(ProjectionRunner {
            log,
            projection,
            folded,
            cursor,
            snapshots: Arc::new(snapshots),
            opts,
            report,
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            snapshot_position,
            failed: None,
        })
    }

    /// What the restore found: the snapshot used and those skipped, with their paths and
    /// reasons.
    pub fn restore_report(&self) -> &RestoreReport {
        &self.report
    }

    /// The projection's definition.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The current state: it reflects every record below [`position`](Self::position).
    pub fn state(&self) -> &P::State {
        &self.folded.state
    }

    /// Next offset to apply: every record below it is reflected in the state.
    pub fn position(&self) -> u64 {
        self.folded.coverage.position
    }

    /// Records applied to the state since its initial value.
    pub fn records(&self) -> u64 {
        self.folded.coverage.records
    }

    /// Records committed to the log (as this handle last saw it) and not yet applied:
    /// `next_offset - position`. With gaps in offsets this counts offsets, an upper bound.
    pub fn lag(&self) -> u64 {
        self.log.next_offset().saturating_sub(self.position())
    }

    /// The log being followed.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The snapshot directory.
    pub fn snapshots(&self) -> &SnapshotDir {
        &self.snapshots
    }

    /// Position of the newest snapshot written or restored: log records below it may be
    /// removed without forcing a rebuild.
    pub fn snapshot_position(&self) -> Option<u64> {
        self.snapshot_position
    }

    /// Apply every record committed so far, checkpointing as the options say. Returns the
    /// number of records applied. Does not wait for more.
    pub fn run_until_caught_up(&mut self) -> Result<u64> {
        let mut total = 0;
        loop {
            let limit = self.batch_limit();
            let n = self.advance(limit)?;
            total += n;
            if self.checkpoint_due() {
                self.checkpoint()?;
            }
            if n < limit {
                return Ok(total);
            }
        }
    }

    /// Write a snapshot of the current state now (even if nothing was applied since the
    /// last one), then prune older snapshots.
    pub fn checkpoint(&mut self) -> Result<SnapshotInfo> {
        let info = self.prepare_checkpoint()?.write()?;
        self.checkpoint_written(info.position);
        Ok(info)
    }

    /// The state, giving up the runner.
    pub fn into_state(self) -> P::State {
        self.folded.state
    }

    /// Follow the log on a background thread. See [`ProjectionHandle`].
    pub fn spawn(self) -> Result<ProjectionHandle<P>>
    where
        P: Send + Sync + 'static,
        P::State: Send + Sync + 'static,
    {
        ProjectionHandle::spawn(self)
    }

    /// Records to apply before the next look at the clock and at the count-based trigger.
    pub(crate) fn batch_limit(&self) -> u64 {
        match self.opts.checkpoint_every_records {
            0 => BATCH_RECORDS,
            every => BATCH_RECORDS.min(every.saturating_sub(self.since_checkpoint).max(1)),
        }
    }

    /// Apply up to `limit` records; fewer means the end of the log was reached.
    pub(crate) fn advance(&mut self, limit: u64) -> Result<u64> {
        self.check_usable()?;
        match replay::fold(&self.projection, &mut self.cursor, &mut self.folded, limit, u64::MAX) {
            Ok(n) => {
                self.since_checkpoint += n;
                Ok(n)
            }
            Err(e) => {
                if matches!(e, Error::ProjectionFailed { .. }) {
                    self.failed = Some(e.to_string());
                }
                Err(e)
            }
        }
    }

    /// True if the options call for a snapshot now.
    pub(crate) fn checkpoint_due(&self) -> bool {
        self.since_checkpoint > 0
            && ((self.opts.checkpoint_every_records > 0 && self.since_checkpoint >= self.opts.checkpoint_every_records)
                || self.time_until_checkpoint() == Some(Duration::ZERO))
    }

    /// How long until the time-based trigger fires, if it is on.
    pub(crate) fn time_until_checkpoint(&self) -> Option<Duration> {
        let every = self.opts.checkpoint_interval?;
        Some(every.saturating_sub(self.last_checkpoint.elapsed()))
    }

    /// Encode a snapshot of the current state; writing it needs no access to the runner.
    pub(crate) fn prepare_checkpoint(&self) -> Result<PendingSnapshot> {
        self.check_usable()?;
        let position = self.position();
        let mut payload = Vec::new();
        self.projection.snapshot(&self.folded.state, &mut payload).map_err(|source| Error::ProjectionFailed {
            projection: self.projection.name().to_owned(),
            offset: position,
            source,
        })?;
        let bytes =
            snapshot::encode(self.projection.name(), self.projection.fingerprint(), &self.folded.coverage, &payload);
        Ok(PendingSnapshot {
            position,
            bytes,
            log: self.log.clone(),
            dir: Arc::clone(&self.snapshots),
            retention: self.opts.retention.clone(),
        })
    }

    /// A snapshot prepared at `position` (the current one) was written.
    pub(crate) fn checkpoint_written(&mut self, position: u64) {
        debug_assert_eq!(position, self.position());
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        self.snapshot_position = Some(position);
    }

    pub(crate) fn options(&self) -> &RunnerOptions {
        &self.opts
    }

    pub(crate) fn records_since_checkpoint(&self) -> u64 {
        self.since_checkpoint
    }

    /// Why the runner can no longer be used, if it cannot.
    pub(crate) fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    fn check_usable(&self) -> Result<()> {
        match &self.failed {
            None => Ok(()),
            Some(cause) => Err(Error::ProjectionStopped {
                projection: self.projection.name().to_owned(),
                position: self.position(),
                cause: Some(cause.clone()),
            }),
        }
    }
}

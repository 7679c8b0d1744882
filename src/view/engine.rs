//! How one generation of a view's state is kept current: by a runner thread (async), by the
//! appending thread (inline), or not at all (read-only, recomputed from the snapshots and the
//! log when queried). The handle holds one engine and swaps it on a rebuild.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::log::Log;
use crate::projection::{state_as_of, Projection, ProjectionRunner, SnapshotDir};
use crate::view::follow::Follower;
use crate::view::position::ViewStatus;

/// A state and the position it covers, recomputed by a read-only handle.
pub(crate) struct Cached<S> {
    pub(crate) generation: u64,
    pub(crate) position: u64,
    pub(crate) state: S,
}

pub(crate) enum Engine<P: Projection> {
    /// A runner on its own thread.
    Async(Follower<P>),
    /// A runner advanced by whoever calls `catch_up` (the inline append path, waits).
    Inline { runner: Box<ProjectionRunner<P>>, failed: Option<(u64, String)> },
    /// No runner: queries fold the newest snapshot of the generation and the records after
    /// it (cached while the log does not move).
    ReadOnly(Mutex<Option<Cached<P::State>>>),
    /// Stopped on request.
    Stopped,
}

impl<P> Engine<P>
where
    P: Projection + Send + Sync + 'static,
    P::State: Send + Sync + 'static,
{
    pub(crate) fn position(&self) -> Option<u64> {
        match self {
            Engine::Async(h) => Some(h.position()),
            Engine::Inline { runner, .. } => Some(runner.position()),
            Engine::ReadOnly(c) => c.lock().as_ref().map(|c| c.position),
            Engine::Stopped => None,
        }
    }

    pub(crate) fn status(&self) -> ViewStatus {
        match self {
            Engine::Async(f) => match f.stopped() {
                None => ViewStatus::Running,
                Some((offset, Some(cause))) => ViewStatus::Failed { offset, cause },
                Some((_, None)) => ViewStatus::Stopped,
            },
            Engine::Inline { failed: Some((offset, cause)), .. } => {
                ViewStatus::Failed { offset: *offset, cause: cause.clone() }
            }
            Engine::Inline { .. } => ViewStatus::Running,
            Engine::ReadOnly(_) => ViewStatus::ReadOnly,
            Engine::Stopped => ViewStatus::Stopped,
        }
    }

    /// Inline: apply what the log committed. A failure is remembered with its offset, and
    /// the runner refuses to go on from then on.
    pub(crate) fn catch_up(&mut self) -> Result<u64> {
        match self {
            Engine::Inline { runner, failed } => {
                if let Err(e) = runner.run_until_caught_up() {
                    if let Error::ProjectionFailed { offset, .. } = &e {
                        *failed = Some((*offset, e.to_string()));
                    }
                    return Err(e);
                }
                Ok(runner.position())
            }
            _ => Err(Error::Internal("catch_up on a view that is not inline")),
        }
    }

    /// The error a query gets from a view that cannot answer.
    pub(crate) fn unusable(&self, name: &str) -> Option<Error> {
        let stopped = |position, cause| Error::ProjectionStopped { projection: name.to_owned(), position, cause };
        match self.status() {
            ViewStatus::Failed { offset, cause } => Some(stopped(offset, Some(cause))),
            ViewStatus::Stopped => Some(stopped(self.position().unwrap_or(0), None)),
            _ => None,
        }
    }

    /// Stop, writing a final snapshot if records were applied since the last one (async:
    /// as its options say; inline: always).
    pub(crate) fn stop(self) -> Result<()> {
        match self {
            Engine::Async(f) => f.stop(),
            Engine::Inline { mut runner, failed: None } => {
                if runner.snapshot_position() != Some(runner.position()) && runner.records() > 0 {
                    runner.checkpoint()?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Recompute (or reuse) a read-only handle's state: the newest usable snapshot of
/// `generation` in `dir`, then the records after it, up to the log's end.
pub(crate) fn refresh_read_only<P: Projection>(
    cache: &mut Option<Cached<P::State>>,
    log: &Log,
    projection: &P,
    dir: &std::path::Path,
    generation: u64,
) -> Result<()> {
    log.refresh()?;
    let next = log.next_offset();
    if cache.as_ref().is_some_and(|c| c.generation == generation && c.position == next) {
        return Ok(());
    }
    let restored = state_as_of(log, projection, &SnapshotDir::open_read_only(dir), next)?;
    *cache = Some(Cached { generation, position: restored.position, state: restored.state });
    Ok(())
}

/// Wait (polling the log's tail) until `reached()` says the bound is met or `timeout`
/// passes; `advance` is called first and after every wake-up (an inline view catches up).
pub(crate) fn wait_until(
    log: &Log,
    timeout: Duration,
    mut advance: impl FnMut() -> Result<u64>,
    bound: u64,
) -> Result<std::result::Result<u64, u64>> {
    let deadline = Instant::now() + timeout;
    loop {
        let position = advance()?;
        if position >= bound {
            return Ok(Ok(position));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Err(position));
        }
        // Wakes when a record at `position` is committed (at once in this process).
        if !log.wait_for(position, left.min(Duration::from_millis(20)))? {
            std::thread::sleep(left.min(Duration::from_millis(1)));
        }
    }
}

//! [`ProjectionHandle`]: a [`ProjectionRunner`] following the log on its own thread, with
//! queries, read-your-writes waits and a clean stop.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::error::{Error, Result};
use crate::log::Log;
use crate::projection::runner::ProjectionRunner;
use crate::projection::Projection;

/// A query's answer and the position of the state it was computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Queried<R> {
    /// What the query returned.
    pub value: R,
    /// The state reflected every record below this offset.
    pub position: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    Running,
    Stopped,
    Failed(String),
}

struct Shared<P: Projection> {
    runner: RwLock<ProjectionRunner<P>>,
    log: Log,
    name: String,
    /// The runner's position, published after each batch (under `status`'s lock).
    position: AtomicU64,
    stop: AtomicBool,
    status: Mutex<Status>,
    changed: Condvar,
}

impl<P: Projection> Shared<P> {
    fn publish(&self, position: u64) {
        {
            let _g = self.status.lock();
            self.position.store(position, Ordering::Release);
        }
        self.changed.notify_all();
    }

    fn finish(&self, status: Status) {
        *self.status.lock() = status;
        self.changed.notify_all();
    }

    fn stopped(&self, cause: Option<String>) -> Error {
        Error::ProjectionStopped {
            projection: self.name.clone(),
            position: self.position.load(Ordering::Acquire),
            cause,
        }
    }

    /// Write a snapshot without holding the runner's lock while the files are written, so
    /// queries go on meanwhile. Only this thread applies records, so the state does not
    /// move between the encoding and the bookkeeping.
    fn checkpoint(&self) -> Result<()> {
        let pending = self.runner.read().prepare_checkpoint()?;
        let position = pending.position();
        pending.write()?;
        self.runner.write().checkpoint_written(position);
        Ok(())
    }

    /// The thread's body: apply, checkpoint, wait, until told to stop.
    fn run(&self) -> Result<()> {
        while !self.stop.load(Ordering::Acquire) {
            let (applied, limit, due, position, wait) = {
                let mut r = self.runner.write();
                let limit = r.batch_limit();
                let applied = r.advance(limit);
                let idle = r.options().idle_poll;
                let wait = r.time_until_checkpoint().map_or(idle, |t| t.min(idle));
                (applied, limit, r.checkpoint_due(), r.position(), wait)
            };
            // Published even on a failure, which is then reported at this position.
            self.publish(position);
            let n = applied?;
            if due {
                self.checkpoint()?;
            }
            if n < limit && !due {
                // Caught up: block until a record at or past our position is committed.
                let wait = wait.max(Duration::from_millis(1));
                let started = Instant::now();
                if !self.log.wait_for(position, wait)? {
                    // A closed log answers at once; sleep out the rest rather than spin.
                    std::thread::sleep(wait.saturating_sub(started.elapsed()));
                }
            }
        }
        let final_checkpoint = {
            let r = self.runner.read();
            r.options().checkpoint_on_stop && r.records_since_checkpoint() > 0
        };
        if final_checkpoint {
            self.checkpoint()?;
        }
        Ok(())
    }
}

/// A projection runner on its own thread: it applies records as they are committed,
/// checkpoints as its options say, and answers queries on the state in between.
///
/// Dropping the handle stops the thread (with its final checkpoint) and waits for it.
/// If the projection fails (its `apply` or `snapshot` returns an error or panics, the log
/// cannot be read, or a snapshot cannot be written), the thread ends, queries and waits
/// return `Error::ProjectionStopped` with the cause (a stopped view is not served as if it
/// were current), and [`stop`](ProjectionHandle::stop) returns the original error.
pub struct ProjectionHandle<P: Projection> {
    shared: Arc<Shared<P>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl<P: Projection> std::fmt::Debug for ProjectionHandle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionHandle")
            .field("projection", &self.shared.name)
            .field("position", &self.position())
            .finish()
    }
}

impl<P> ProjectionHandle<P>
where
    P: Projection + Send + Sync + 'static,
    P::State: Send + Sync + 'static,
{
    pub(crate) fn spawn(runner: ProjectionRunner<P>) -> Result<ProjectionHandle<P>> {
        let shared = Arc::new(Shared {
            log: runner.log().clone(),
            name: runner.projection().name().to_owned(),
            position: AtomicU64::new(runner.position()),
            runner: RwLock::new(runner),
            stop: AtomicBool::new(false),
            status: Mutex::new(Status::Running),
            changed: Condvar::new(),
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("tidelog-projection".into())
            .spawn(move || {
                // A panic in the projection's code ends the runner like an error does; its
                // state may hold part of a record, so it is not served again.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.run()))
                    .unwrap_or_else(|_| Err(worker.stopped(Some("the projection panicked".into()))));
                worker.finish(match &result {
                    Ok(()) => Status::Stopped,
                    Err(e) => Status::Failed(e.to_string()),
                });
                result
            })
            .map_err(|e| Error::io("projection thread", e))?;
        Ok(ProjectionHandle { shared, thread: Some(thread) })
    }
}

impl<P: Projection> ProjectionHandle<P> {
    /// Next offset to apply: every record below it is reflected in the state.
    pub fn position(&self) -> u64 {
        self.shared.position.load(Ordering::Acquire)
    }

    /// Records committed to the log and not yet applied (`next_offset - position`).
    pub fn lag(&self) -> u64 {
        self.shared.log.next_offset().saturating_sub(self.position())
    }

    /// Position of the newest snapshot written or restored (log records below it may be
    /// removed).
    pub fn snapshot_position(&self) -> Option<u64> {
        self.shared.runner.read().snapshot_position()
    }

    /// Call `f` with the current state. The runner waits while `f` runs, so keep it short.
    /// Fails with `Error::ProjectionStopped` if the runner failed (its state may hold part of
    /// a record, or no longer follows the log).
    pub fn query<R>(&self, f: impl FnOnce(&P::State) -> R) -> Result<Queried<R>> {
        if let Status::Failed(cause) = &*self.shared.status.lock() {
            return Err(self.shared.stopped(Some(cause.clone())));
        }
        let r = self.shared.runner.read();
        if let Some(cause) = r.failure() {
            return Err(self.shared.stopped(Some(cause.to_owned())));
        }
        Ok(Queried { value: f(r.state()), position: r.position() })
    }

    /// Block until the state reflects every record below `offset` (its position is at least
    /// `offset`), or `timeout` passes; returns whether it does. To read your own write, wait
    /// for one past its offset: `wait_for_position(log.append(rec)? + 1, t)`, or
    /// `wait_for_position(range.end, t)` after `append_batch`.
    ///
    /// Fails with `Error::ProjectionStopped` if the runner stopped or failed before that.
    pub fn wait_for_position(&self, offset: u64, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        let mut status = self.shared.status.lock();
        loop {
            if self.position() >= offset {
                return Ok(true);
            }
            match &*status {
                Status::Running => {}
                Status::Stopped => return Err(self.shared.stopped(None)),
                Status::Failed(cause) => return Err(self.shared.stopped(Some(cause.clone()))),
            }
            if self.shared.changed.wait_until(&mut status, deadline).timed_out() {
                return Ok(self.position() >= offset);
            }
        }
    }

    /// Stop the thread (after its final checkpoint, if the options ask for one) and return
    /// the runner, or the error that ended it.
    pub fn stop(mut self) -> Result<ProjectionRunner<P>> {
        self.shared.stop.store(true, Ordering::Release);
        let joined = match self.thread.take() {
            Some(t) => t.join(),
            None => Ok(Ok(())),
        };
        let shared = Arc::clone(&self.shared);
        drop(self);
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(shared.stopped(Some("the projection thread ended abnormally".into()))),
        }
        match Arc::try_unwrap(shared) {
            Ok(s) => Ok(s.runner.into_inner()),
            Err(s) => Err(s.stopped(Some("the runner is still shared".into()))),
        }
    }
}

impl<P: Projection> Drop for ProjectionHandle<P> {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            // Its result is reported through queries and waits; nobody is left to ask.
            let _ = t.join();
        }
    }
}

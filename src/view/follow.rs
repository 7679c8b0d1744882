//! The async engine: a thread that keeps a view's runner current, tuned for a view that
//! follows a busy writer in the same process.
//!
//! * **Waiting.** Caught up, the thread naps (50 µs) and looks at the log's end, instead of
//!   registering as a tail waiter at once: a registered waiter makes every append wake it (a
//!   mutex and a futex wake in the appender, then a thread switch to apply one record), which
//!   took a third of the appender's throughput. Only after about 2 ms without a new record
//!   does it block in `Log::wait_for` (woken by the next append), so an idle view costs
//!   nothing. A record waits at most about one nap plus its batch while records flow.
//! * **Snapshots off the apply path.** A checkpoint is encoded under the state's read lock,
//!   then written (log flush, file write, two fsyncs: milliseconds) by a short-lived thread,
//!   while this one goes on applying. One write at a time; a write that fails stops the view.
//!
//! Queries take the state's read lock between batches; positions and failures are published
//! under a mutex with a condvar, which waits for a bound sleep on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::error::{Error, Result};
use crate::log::Log;
use crate::projection::{Projection, ProjectionRunner};

/// The nap between two looks at the log's end while records flow.
const NAP: Duration = Duration::from_micros(50);
/// Without a new record for this long, block until the next append.
const ACTIVE_SPELL: Duration = Duration::from_millis(2);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    Running,
    Stopped,
    Failed { offset: u64, cause: String },
}

struct Shared<P: Projection> {
    runner: RwLock<ProjectionRunner<P>>,
    log: Log,
    position: AtomicU64,
    stop: AtomicBool,
    status: Mutex<Status>,
    changed: Condvar,
    /// A snapshot write is in progress on its own thread.
    writing: AtomicBool,
    /// The error of the last snapshot write, picked up by the apply thread.
    write_failed: Mutex<Option<Error>>,
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
}

impl<P> Shared<P>
where
    P: Projection + Send + Sync + 'static,
    P::State: Send + Sync + 'static,
{
    /// Encode a snapshot now and write it on another thread (unless one is being written).
    fn checkpoint_in_background(self: &Arc<Self>) -> Result<()> {
        if self.writing.swap(true, Ordering::AcqRel) {
            return Ok(()); // still due at the next batch
        }
        let pending = {
            let mut r = self.runner.write();
            let pending = r.prepare_checkpoint();
            if let Ok(p) = &pending {
                // Counted from here, so the next one is due `checkpoint_every_records` on.
                r.checkpoint_written(p.position());
            }
            pending
        };
        let pending = match pending {
            Ok(p) => p,
            Err(e) => {
                self.writing.store(false, Ordering::Release);
                return Err(e);
            }
        };
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new().name("tidelog-view-snapshot".into()).spawn(move || {
            if let Err(e) = pending.write() {
                *me.write_failed.lock() = Some(e);
            }
            me.writing.store(false, Ordering::Release);
        });
        if let Err(e) = spawned {
            self.writing.store(false, Ordering::Release);
            return Err(Error::io("view snapshot thread", e));
        }
        Ok(())
    }

    /// Wait for a snapshot write in progress to end, and report its failure.
    fn settle_writes(&self) -> Result<()> {
        while self.writing.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_micros(200));
        }
        match self.write_failed.lock().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn run(self: &Arc<Self>) -> Result<()> {
        let mut idle_since: Option<Instant> = None;
        while !self.stop.load(Ordering::Acquire) {
            if let Some(e) = self.write_failed.lock().take() {
                return Err(e);
            }
            let (applied, limit, due, position, idle_poll) = {
                let mut r = self.runner.write();
                let limit = r.batch_limit();
                let applied = r.advance(limit);
                (applied, limit, r.checkpoint_due(), r.position(), r.options().idle_poll)
            };
            // Published even on a failure, which is then reported at this position.
            self.publish(position);
            let n = applied?;
            if due {
                self.checkpoint_in_background()?;
            }
            if n == limit {
                idle_since = None;
                continue;
            }
            if n > 0 {
                idle_since = None;
            }
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() < ACTIVE_SPELL {
                std::thread::sleep(NAP);
                if self.log.is_read_only() {
                    // A follower sees another process's appends only once it looks again.
                    self.log.refresh()?;
                }
            } else {
                // Idle: block until a record at our position is committed (appends in this
                // process wake us at once), or the idle poll passes to look at the stop flag.
                let started = Instant::now();
                if !self.log.wait_for(position, idle_poll)? {
                    // A closed log answers at once; sleep out the rest rather than spin.
                    std::thread::sleep(idle_poll.saturating_sub(started.elapsed()));
                }
                idle_since = None;
            }
        }
        self.settle_writes()?;
        let r = self.runner.read();
        if r.options().checkpoint_on_stop && r.records_since_checkpoint() > 0 {
            let pending = r.prepare_checkpoint()?;
            drop(r);
            let position = pending.position();
            pending.write()?;
            self.runner.write().checkpoint_written(position);
        }
        Ok(())
    }
}

/// A runner kept current by its own thread (see the module documentation).
pub(crate) struct Follower<P: Projection> {
    shared: Arc<Shared<P>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl<P> Follower<P>
where
    P: Projection + Send + Sync + 'static,
    P::State: Send + Sync + 'static,
{
    pub(crate) fn spawn(runner: ProjectionRunner<P>) -> Result<Follower<P>> {
        let shared = Arc::new(Shared {
            log: runner.log().clone(),
            position: AtomicU64::new(runner.position()),
            runner: RwLock::new(runner),
            stop: AtomicBool::new(false),
            status: Mutex::new(Status::Running),
            changed: Condvar::new(),
            writing: AtomicBool::new(false),
            write_failed: Mutex::new(None),
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("tidelog-view".into())
            .spawn(move || {
                // A panic in the view's code ends it like an error does; its state may hold
                // part of a record, so it is not served again.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.run()))
                    .unwrap_or_else(|_| Err(Error::Internal("the view's update panicked")));
                worker.finish(match &result {
                    Ok(()) => Status::Stopped,
                    Err(e) => Status::Failed {
                        offset: match e {
                            Error::ProjectionFailed { offset, .. } => *offset,
                            _ => worker.position.load(Ordering::Acquire),
                        },
                        cause: e.to_string(),
                    },
                });
                result
            })
            .map_err(|e| Error::io("view thread", e))?;
        Ok(Follower { shared, thread: Some(thread) })
    }
}

impl<P: Projection> Follower<P> {
    pub(crate) fn position(&self) -> u64 {
        self.shared.position.load(Ordering::Acquire)
    }

    /// `None` while running; else `Some((offset, cause))`, with no cause when stopped on
    /// request.
    pub(crate) fn stopped(&self) -> Option<(u64, Option<String>)> {
        match &*self.shared.status.lock() {
            Status::Running => None,
            Status::Stopped => Some((self.position(), None)),
            Status::Failed { offset, cause } => Some((*offset, Some(cause.clone()))),
        }
    }

    /// Call `f` with the state and its position.
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&P::State, u64) -> R) -> R {
        let r = self.shared.runner.read();
        f(r.state(), r.position())
    }

    /// Block until the position reaches `bound` or `timeout` passes; the position reached.
    /// `Err(Some(..))` if the view stopped or failed first.
    pub(crate) fn wait_for(
        &self,
        bound: u64,
        timeout: Duration,
    ) -> std::result::Result<u64, Option<(u64, Option<String>)>> {
        let deadline = Instant::now() + timeout;
        let mut status = self.shared.status.lock();
        loop {
            let position = self.position();
            if position >= bound {
                return Ok(position);
            }
            match &*status {
                Status::Running => {}
                Status::Stopped => return Err(Some((position, None))),
                Status::Failed { offset, cause } => return Err(Some((*offset, Some(cause.clone())))),
            }
            if self.shared.changed.wait_until(&mut status, deadline).timed_out() {
                let position = self.position();
                return if position >= bound { Ok(position) } else { Err(None) };
            }
        }
    }

    /// Stop the thread (after its final snapshot, as the options say); the error that ended
    /// it, if one did.
    pub(crate) fn stop(mut self) -> Result<()> {
        self.shared.stop.store(true, Ordering::Release);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(Error::Internal("the view thread ended abnormally")),
            None => Ok(()),
        }
    }
}

impl<P: Projection> Drop for Follower<P> {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            // Its result is reported through queries and waits; nobody is left to ask.
            let _ = t.join();
        }
    }
}

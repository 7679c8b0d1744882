//! The thread that keeps a SQLite read model current: it applies batches while the log has
//! records beyond its position and blocks in `Log::wait_for` when caught up. Its position and
//! its end (stopped, or failed with the offset) are published under a mutex with a condvar,
//! which waits for a bound sleep on.
//!
//! Each batch is one SQLite transaction with an fsync of the write-ahead log, so batches fill
//! up by themselves while records arrive faster than a commit takes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::view::sqlite::apply::Applier;
use crate::view::sqlite::SqlProjection;

/// How the thread ended, if it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    Stopped,
    Failed { offset: u64, cause: String },
}

/// What a waiter holds: the runner's published position and end, without the runner.
pub(crate) struct Shared {
    position: AtomicU64,
    stop: AtomicBool,
    end: Mutex<Option<End>>,
    changed: Condvar,
}

impl Shared {
    pub(crate) fn position(&self) -> u64 {
        self.position.load(Ordering::Acquire)
    }

    /// Block until the position reaches `bound` or `timeout` passes: the position reached,
    /// or `Err(Some(end))` if the thread ended first, `Err(None)` when the time is up.
    pub(crate) fn wait_for(&self, bound: u64, timeout: Duration) -> std::result::Result<u64, Option<End>> {
        let deadline = Instant::now() + timeout;
        let mut end = self.end.lock();
        loop {
            let position = self.position();
            if position >= bound {
                return Ok(position);
            }
            if let Some(e) = &*end {
                return Err(Some(e.clone()));
            }
            if self.changed.wait_until(&mut end, deadline).timed_out() {
                let position = self.position();
                return if position >= bound { Ok(position) } else { Err(None) };
            }
        }
    }

    fn publish(&self, position: u64) {
        {
            let _g = self.end.lock();
            self.position.store(position, Ordering::Release);
        }
        self.changed.notify_all();
    }
}

/// A generation kept current by its own thread.
pub(crate) struct Runner<P: SqlProjection> {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Result<Applier<P>>>>,
}

impl<P: SqlProjection> Runner<P> {
    /// Start following the log from the applier's position, `batch` records per transaction;
    /// `idle_poll` bounds how long the stop flag goes unseen while the log is idle.
    pub(crate) fn spawn(mut applier: Applier<P>, batch: usize, idle_poll: Duration) -> Result<Runner<P>> {
        let shared = Arc::new(Shared {
            position: AtomicU64::new(applier.position()),
            stop: AtomicBool::new(false),
            end: Mutex::new(None),
            changed: Condvar::new(),
        });
        let me = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("tidelog-sqlite-view".into())
            .spawn(move || {
                let result = follow(&me, &mut applier, batch, idle_poll);
                let end = match &result {
                    Ok(()) => End::Stopped,
                    Err(e) => End::Failed {
                        offset: match e {
                            Error::ProjectionFailed { offset, .. } => *offset,
                            _ => applier.position(),
                        },
                        cause: e.to_string(),
                    },
                };
                *me.end.lock() = Some(end);
                me.changed.notify_all();
                result.map(|()| applier)
            })
            .map_err(|e| Error::io("sqlite view thread", e))?;
        Ok(Runner { shared, thread: Some(thread) })
    }

    pub(crate) fn position(&self) -> u64 {
        self.shared.position()
    }

    /// `None` while running.
    pub(crate) fn end(&self) -> Option<End> {
        self.shared.end.lock().clone()
    }

    /// The runner's position and end, to wait on without holding the runner.
    pub(crate) fn watch(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }
    /// Stop after the batch in progress; the applier back (to continue in this thread), or
    /// the error that ended the thread.
    pub(crate) fn stop(mut self) -> Result<Applier<P>> {
        self.shared.stop.store(true, Ordering::Release);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(Error::Internal("the sqlite view thread ended abnormally")),
            None => Err(Error::Internal("the sqlite view thread was already stopped")),
        }
    }
}

impl<P: SqlProjection> Drop for Runner<P> {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            // Its end is reported through waits and the status; nobody is left to ask.
            let _ = t.join();
        }
    }
}

fn follow<P: SqlProjection>(
    shared: &Shared,
    applier: &mut Applier<P>,
    batch: usize,
    idle_poll: Duration,
) -> Result<()> {
    while !shared.stop.load(Ordering::Acquire) {
        applier.log().refresh()?;
        let n = applier.apply_batch(batch)?;
        shared.publish(applier.position());
        if n < batch {
            // Caught up: block until a record at our position is committed (appends in this
            // process wake us at once), or the poll passes to look at the stop flag.
            let started = Instant::now();
            if !applier.log().wait_for(applier.position(), idle_poll)? {
                // A closed log answers at once; sleep out the rest rather than spin.
                std::thread::sleep(idle_poll.saturating_sub(started.elapsed()));
            }
        }
    }
    Ok(())
}

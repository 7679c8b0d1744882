//! Compaction in the background: a thread that looks at the log's dirty ratio every
//! `check_every` and compacts when it reaches the threshold (Kafka's
//! `min.cleanable.dirty.ratio`). The thread holds a clone of the log (so the log is not closed
//! by dropping the other handles: stop the compaction first); appends continue while it
//! rewrites (it takes the writer lock only to swap a segment in).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::{CompactOptions, CompactReport};
use crate::error::{Error, Result};
use crate::log::Log;

/// How a background compaction runs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BackgroundCompaction {
    /// How to compact; its `min_dirty_ratio` is the threshold (default 0.5 here).
    pub compact: CompactOptions,
    /// How often the dirty ratio is looked at (each look reads the whole log). Default 60 s.
    pub check_every: Duration,
}

impl Default for BackgroundCompaction {
    fn default() -> BackgroundCompaction {
        BackgroundCompaction {
            compact: CompactOptions::default().min_dirty_ratio(0.5),
            check_every: Duration::from_secs(60),
        }
    }
}

impl BackgroundCompaction {
    /// Set [`BackgroundCompaction::compact`].
    #[must_use]
    pub fn compact(mut self, opts: CompactOptions) -> BackgroundCompaction {
        self.compact = opts;
        self
    }
    /// Set [`BackgroundCompaction::check_every`].
    #[must_use]
    pub fn check_every(mut self, every: Duration) -> BackgroundCompaction {
        self.check_every = every;
        self
    }
}

#[derive(Default)]
struct Shared {
    /// (stop requested, runs completed)
    state: Mutex<(bool, u64)>,
    cv: Condvar,
    last: Mutex<Option<CompactReport>>,
}

/// A background compaction; [`CompactionHandle::stop`] ends it and reports its first error.
#[must_use = "dropping the handle stops the background compaction"]
pub struct CompactionHandle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl std::fmt::Debug for CompactionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompactionHandle").field("checks", &self.checks()).finish()
    }
}

impl Log {
    /// Start compacting in the background (see [`BackgroundCompaction`]). The thread holds a
    /// clone of this handle: [`CompactionHandle::stop`] it before closing the log.
    pub fn compact_in_background(&self, opts: BackgroundCompaction) -> Result<CompactionHandle> {
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        if opts.check_every.is_zero() {
            return Err(Error::InvalidOptions("check_every must not be zero".into()));
        }
        let shared = Arc::new(Shared::default());
        let (log, sh) = (self.clone(), shared.clone());
        let thread = std::thread::Builder::new()
            .name("tidelog-compaction".into())
            .spawn(move || run(&log, &opts, &sh))
            .map_err(|e| Error::io(self.dir(), e))?;
        Ok(CompactionHandle { shared, thread: Some(thread) })
    }
}

fn run(log: &Log, opts: &BackgroundCompaction, sh: &Shared) -> Result<()> {
    loop {
        let report = log.compact(&opts.compact)?;
        *sh.last.lock() = Some(report);
        let mut st = sh.state.lock();
        st.1 += 1;
        sh.cv.notify_all();
        if st.0 {
            return Ok(());
        }
        sh.cv.wait_for(&mut st, opts.check_every);
        if st.0 {
            return Ok(());
        }
    }
}

impl CompactionHandle {
    /// How many times the dirty ratio was looked at (and compaction run if it was reached).
    pub fn checks(&self) -> u64 {
        self.shared.state.lock().1
    }

    /// What the last look did.
    pub fn last_report(&self) -> Option<CompactReport> {
        self.shared.last.lock().clone()
    }

    /// Block until at least `n` looks have completed (or the thread ended). Returns the number
    /// completed.
    pub fn wait_for_checks(&self, n: u64) -> u64 {
        let mut st = self.shared.state.lock();
        while st.1 < n && self.thread.as_ref().is_some_and(|t| !t.is_finished()) {
            self.shared.cv.wait_for(&mut st, Duration::from_millis(50));
        }
        st.1
    }

    /// Stop after the current look, and report the error that ended the thread, if any.
    pub fn stop(mut self) -> Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<()> {
        {
            let mut st = self.shared.state.lock();
            st.0 = true;
            self.shared.cv.notify_all();
        }
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(Error::Internal("the compaction thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for CompactionHandle {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

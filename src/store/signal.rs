//! The wake-up signal of a topic, and deadline arithmetic that cannot overflow.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::io::wake::{Waiter, WakeSlot};

/// `now + d`, capped at about a year: adding a huge duration to an `Instant` panics.
pub(crate) fn instant_after(now: Instant, d: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(86_400 * 365);
    now + d.min(YEAR)
}

/// Wakes blocked pollers: bumped on every in-process publish and on every group change that
/// can make an event deliverable (nack, redrive, a key released, capacity freed). A waiter
/// reads the generation *before* checking for work, then sleeps only while it is unchanged,
/// so no wake-up is lost between the check and the sleep.
///
/// A waiter whose topic is written by another process sleeps on the topic's wake file instead
/// (see [`Signal::watch`]): the other process's publish wakes it there, and so does
/// [`Signal::notify`], which bumps the wake file when such a waiter exists in this process.
#[derive(Debug)]
pub(crate) struct Signal {
    generation: AtomicU64,
    waiters: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
    /// The topic log's wake file, opened at the first cross-process watch.
    wake: WakeSlot,
    /// Waiters in this process asleep on the wake file rather than on `cv`.
    wake_waiters: AtomicUsize,
}

/// A waiter's snapshot, taken before it looks for work (see [`Signal::watch`]).
#[derive(Debug)]
pub(crate) struct Watch<'a> {
    signal: &'a Signal,
    seen: u64,
    /// Registered on the wake file: a publish in another process wakes this watch.
    across: Option<Waiter>,
}

impl Signal {
    /// The signal of the topic whose log is in `dir`.
    pub(crate) fn new(dir: &Path) -> Signal {
        Signal {
            generation: AtomicU64::new(0),
            waiters: AtomicUsize::new(0),
            lock: Mutex::new(()),
            cv: Condvar::new(),
            wake: WakeSlot::reader(dir),
            wake_waiters: AtomicUsize::new(0),
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub(crate) fn notify(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        // Pairs with the SeqCst increment in `wait_until`: either the waiter sees the new
        // generation, or we see the waiter.
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _g = self.lock.lock();
            self.cv.notify_all();
        }
        // The same pairing with `watch`, for waiters asleep on the wake file.
        if self.wake_waiters.load(Ordering::SeqCst) > 0 {
            if let Some(w) = self.wake.ready() {
                w.bump();
            }
        }
    }

    /// Start waiting: call *before* looking for work, then [`Watch::wait_until`] if there was
    /// none. With `across_processes` (the topic's writer is another process), also register on
    /// the topic's wake file so that the writer's publish wakes the wait; where the wake file is
    /// unavailable, [`Watch::wakes_across_processes`] says so and the caller must poll.
    ///
    /// No wake-up is lost: the registrations (in this process, then on the wake file) come
    /// before the generation is read, and [`Signal::notify`] bumps the generation before it
    /// checks them. So either the notifier sees this waiter and bumps the wake file (whose
    /// sleep then returns, `io::wake`), or this waiter's generation already includes the
    /// notification and its look for work sees what was notified.
    pub(crate) fn watch(&self, across_processes: bool) -> Watch<'_> {
        let across = if across_processes { self.wake.get() } else { None };
        let across = across.map(|w| {
            self.wake_waiters.fetch_add(1, Ordering::SeqCst);
            w.register()
        });
        Watch { signal: self, seen: self.generation(), across }
    }

    /// Sleep until the generation differs from `seen` or `deadline` passes.
    pub(crate) fn wait_until(&self, seen: u64, deadline: Instant) {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut g = self.lock.lock();
        while self.generation.load(Ordering::SeqCst) == seen {
            if self.cv.wait_until(&mut g, deadline).timed_out() {
                break;
            }
        }
        drop(g);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Watch<'_> {
    /// True if a publish by a writer in another process ends [`Watch::wait_until`]; false if
    /// the caller must look again on its own (poll) for such publishes.
    pub(crate) fn wakes_across_processes(&self) -> bool {
        self.across.is_some()
    }

    /// Sleep until something was notified since the watch began, or `deadline` passes (or,
    /// across processes, the wake file's recheck interval ends). May return early.
    pub(crate) fn wait_until(self, deadline: Instant) {
        match &self.across {
            Some(waiter) => {
                if self.signal.generation() == self.seen {
                    waiter.sleep_until(deadline);
                }
            }
            None => self.signal.wait_until(self.seen, deadline),
        }
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        if self.across.take().is_some() {
            self.signal.wake_waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

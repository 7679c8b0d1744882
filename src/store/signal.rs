//! The wake-up signal of a topic, and deadline arithmetic that cannot overflow.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// `now + d`, capped at about a year: adding a huge duration to an `Instant` panics.
pub(crate) fn instant_after(now: Instant, d: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(86_400 * 365);
    now + d.min(YEAR)
}

/// Wakes blocked pollers: bumped on every in-process publish and on every group change that
/// can make an event deliverable (nack, redrive, a key released, capacity freed). A waiter
/// reads the generation *before* checking for work, then sleeps only while it is unchanged,
/// so no wake-up is lost between the check and the sleep.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    generation: AtomicU64,
    waiters: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Signal {
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

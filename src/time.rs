//! Time: the wall clock in the unit every file and record uses, and the pace at which a
//! follower polls a log written by another process.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// The pause between two polls of a log written by another process, where its wake file cannot
/// be used (`io::wake`): 50 µs, doubling to 1 ms.
/// Short enough that a follower sees a new record within about a millisecond, long enough
/// that an idle follower costs a few thousand wake-ups a second at most.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    nap: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_micros(50);
    const MAX: Duration = Duration::from_millis(1);

    pub(crate) fn new() -> Backoff {
        Backoff { nap: Backoff::FIRST }
    }

    /// Sleep for the current pause (never past `deadline`), then lengthen it. Returns false,
    /// without sleeping, once `deadline` has passed.
    pub(crate) fn sleep_until(&mut self, deadline: Instant) -> bool {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(self.nap.min(deadline - now));
        self.nap = (self.nap * 2).min(Backoff::MAX);
        true
    }
}

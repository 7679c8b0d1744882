//! Options of a consumer group: lease, delivery limit, backoff, order, ack durability,
//! bounds.

use std::time::Duration;

use crate::error::{Error, Result};

/// Longest wait before a retry (30 days): a longer delay given to
/// [`crate::Group::nack_after`], or reached by a [`Backoff`], is cut to this, so that no
/// event (and the committed position behind it) is parked forever by a retry.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(30 * 86_400);

/// When a retry `delay` after `now_us` falls due (µs since the epoch, at least 1: 0 means
/// "at once"), the delay capped at [`MAX_RETRY_DELAY`].
pub(crate) fn retry_due_us(now_us: u64, delay: Duration) -> u64 {
    let delay_us = delay.min(MAX_RETRY_DELAY).as_micros().min(u128::from(u64::MAX)) as u64;
    now_us.saturating_add(delay_us).max(1)
}

/// Retry delays: exponential with jitter. The `n`-th failed delivery (n = 1, 2, ...) waits
/// `min(max, initial * multiplier^(n-1))`, minus a random part of up to `jitter` of it.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Backoff {
    /// Delay after the first failure. Default 1 s.
    pub initial: Duration,
    /// Largest delay. Default 5 min.
    pub max: Duration,
    /// Growth per failure, at least 1.0. Default 2.0.
    pub multiplier: f64,
    /// Fraction of the delay that is randomised away, in `[0, 1]`. Default 0.2: the delay
    /// is uniformly between 80% and 100% of the exponential value.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(300), multiplier: 2.0, jitter: 0.2 }
    }
}

impl Backoff {
    /// A backoff from `initial` to `max`, doubling, with 20% jitter.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff { initial, max, ..Backoff::default() }
    }

    /// Set [`Backoff::multiplier`].
    #[must_use]
    pub fn multiplier(mut self, m: f64) -> Backoff {
        self.multiplier = m;
        self
    }

    /// Set [`Backoff::jitter`].
    #[must_use]
    pub fn jitter(mut self, j: f64) -> Backoff {
        self.jitter = j;
        self
    }

    /// The delay before the next delivery after the `failures`-th failure; `random` is
    /// uniform in `[0, 1)`.
    pub fn delay(&self, failures: u32, random: f64) -> Duration {
        let exp = failures.saturating_sub(1).min(1000) as i32;
        let base = self.initial.as_secs_f64() * self.multiplier.powi(exp);
        let capped = if base.is_finite() { base.min(self.max.as_secs_f64()) } else { self.max.as_secs_f64() };
        let jittered = capped * (1.0 - self.jitter * random.clamp(0.0, 1.0));
        Duration::try_from_secs_f64(jittered.max(0.0)).unwrap_or(self.max)
    }

    fn validate(&self) -> Result<()> {
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return Err(Error::InvalidOptions("backoff multiplier must be finite and at least 1".into()));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(Error::InvalidOptions("backoff jitter must be in [0, 1]".into()));
        }
        if self.initial > self.max {
            return Err(Error::InvalidOptions("backoff initial delay exceeds its maximum".into()));
        }
        Ok(())
    }
}

/// When an ack (and a nack, reject or redrive) is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AckMode {
    /// The call returns once the state change is on stable storage (fsync; concurrent
    /// callers share one flush). An acked event is never delivered again, even after power
    /// loss.
    Durable,
    /// The call returns once the state change is in the state log's memory map, which a
    /// background thread flushes every interval. Survives the consumer process being
    /// killed; power loss or an OS crash can undo the last interval's acks, whose events are
    /// then delivered again (still at-least-once).
    Periodic(Duration),
}

/// The order in which a group hands out events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryOrder {
    /// New events in offset order; redeliveries (expired leases, events pending after a
    /// restart) and due retries before new events. Nothing is held back: a failing event
    /// does not delay others.
    Offset,
    /// Like `Offset`, but per key at most one event is in flight or waiting for a retry: a
    /// later event with the same key is held back until the earlier one is acked or
    /// dead-lettered. Events of other keys (and events without a key) are not held back.
    PerKey,
}

/// Where a new group starts, or where [`crate::Group::reset`] moves a group. An offset or
/// time outside what the topic holds is taken to the nearest end: before the first retained
/// event is the first, after the end is the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartFrom {
    /// The first event still in the topic.
    Earliest,
    /// The topic's end when the group is created (or reset): only events published
    /// afterwards.
    Latest,
    /// The event at this topic offset.
    Offset(u64),
    /// The first event whose timestamp is at or after this time (µs since the Unix epoch);
    /// the topic's end if every event is older. Found by the log's time lookup (binary
    /// search over segments, then the segment's time index), not by a scan.
    Time(u64),
}

/// Options for [`crate::Topic::group`]. Built with consuming setters.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct GroupOptions {
    /// How long a delivery is leased to its consumer before it is delivered again.
    /// Default 30 s.
    pub lease: Duration,
    /// Deliveries after which an event that was never acked goes to the dead letters.
    /// Default 5.
    pub max_deliveries: u32,
    /// Retry delays after a nack.
    pub backoff: Backoff,
    /// Delivery order. Default [`DeliveryOrder::Offset`].
    pub order: DeliveryOrder,
    /// When acks are durable. Default [`AckMode::Durable`].
    pub ack_mode: AckMode,
    /// Most events that may be unfinished at once (in flight, waiting for a retry, or
    /// redriven and not settled; events held back by key do not count). When reached, no new
    /// events are read from the topic until some finish. Default 10 000, at most 2^20.
    pub max_outstanding: u32,
    /// Per-key order: most events that may be held back behind an earlier event of their key
    /// at once (each costs memory: about 200 bytes plus its key). When reached, no new
    /// events are read from the topic until a key moves on. Default 100 000, at most 2^20.
    pub max_held_back: u32,
    /// Where a new group starts. Default [`StartFrom::Earliest`].
    pub start: StartFrom,
    /// State changes between two snapshots of the group's state. Default 16 384.
    pub snapshot_every: u64,
}

impl Default for GroupOptions {
    fn default() -> GroupOptions {
        GroupOptions {
            lease: Duration::from_secs(30),
            max_deliveries: 5,
            backoff: Backoff::default(),
            order: DeliveryOrder::Offset,
            ack_mode: AckMode::Durable,
            max_outstanding: 10_000,
            max_held_back: 100_000,
            start: StartFrom::Earliest,
            snapshot_every: 16_384,
        }
    }
}

impl GroupOptions {
    /// Set [`GroupOptions::lease`].
    #[must_use]
    pub fn lease(mut self, d: Duration) -> GroupOptions {
        self.lease = d;
        self
    }
    /// Set [`GroupOptions::max_deliveries`].
    #[must_use]
    pub fn max_deliveries(mut self, n: u32) -> GroupOptions {
        self.max_deliveries = n;
        self
    }
    /// Set [`GroupOptions::backoff`].
    #[must_use]
    pub fn backoff(mut self, b: Backoff) -> GroupOptions {
        self.backoff = b;
        self
    }
    /// Set [`GroupOptions::order`].
    #[must_use]
    pub fn order(mut self, o: DeliveryOrder) -> GroupOptions {
        self.order = o;
        self
    }
    /// Set [`GroupOptions::ack_mode`].
    #[must_use]
    pub fn ack_mode(mut self, m: AckMode) -> GroupOptions {
        self.ack_mode = m;
        self
    }
    /// Set [`GroupOptions::max_outstanding`].
    #[must_use]
    pub fn max_outstanding(mut self, n: u32) -> GroupOptions {
        self.max_outstanding = n;
        self
    }
    /// Set [`GroupOptions::max_held_back`].
    #[must_use]
    pub fn max_held_back(mut self, n: u32) -> GroupOptions {
        self.max_held_back = n;
        self
    }
    /// Set [`GroupOptions::start`].
    #[must_use]
    pub fn start(mut self, s: StartFrom) -> GroupOptions {
        self.start = s;
        self
    }
    /// Set [`GroupOptions::snapshot_every`].
    #[must_use]
    pub fn snapshot_every(mut self, n: u64) -> GroupOptions {
        self.snapshot_every = n;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.lease.is_zero() {
            return Err(Error::InvalidOptions("lease must be non-zero".into()));
        }
        if self.max_deliveries == 0 {
            return Err(Error::InvalidOptions("max_deliveries must be at least 1".into()));
        }
        if self.max_outstanding == 0 || u64::from(self.max_outstanding) > super::state::MAX_GAP {
            return Err(Error::InvalidOptions(format!("max_outstanding must be in [1, {}]", super::state::MAX_GAP)));
        }
        // Why the bound: held-back events are not recorded in the state log, so replay
        // accepts a jump past at most 2^20 unrecorded offsets.
        if self.max_held_back == 0 || u64::from(self.max_held_back) > super::state::MAX_GAP {
            return Err(Error::InvalidOptions(format!("max_held_back must be in [1, {}]", super::state::MAX_GAP)));
        }
        if self.snapshot_every == 0 {
            return Err(Error::InvalidOptions("snapshot_every must be at least 1".into()));
        }
        if let AckMode::Periodic(d) = self.ack_mode {
            if d.is_zero() {
                return Err(Error::InvalidOptions("periodic ack interval must be non-zero".into()));
            }
        }
        self.backoff.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_due_times_are_capped_and_never_zero() {
        let cap = MAX_RETRY_DELAY.as_micros() as u64;
        assert_eq!(retry_due_us(1000, Duration::MAX), 1000 + cap);
        assert_eq!(retry_due_us(1000, Duration::from_micros(5)), 1005);
        assert_eq!(retry_due_us(0, Duration::ZERO), 1);
        assert_eq!(retry_due_us(u64::MAX - 1, Duration::from_secs(1)), u64::MAX);
    }
}

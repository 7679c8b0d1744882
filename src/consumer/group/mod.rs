//! A consumer group open in this process: its state under one mutex, the state log that
//! records every change, and the public [`Group`] handle. The work is split by job:
//! [`open`] loads and reconciles the state, [`journal`] records state changes and
//! snapshots, [`poll`] hands out deliveries, [`settle`] takes acks, nacks, rejects, lease
//! extensions and redrives.

mod journal;
mod open;
mod poll;
mod settle;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::dead_letters::{self, DeadLetter};
use super::delivery::{Delivery, Holder};
use super::lag::{self, GroupLag};
use super::options::GroupOptions;
use super::persist::{GroupPaths, StateEvent};
use super::state::GroupState;
use crate::error::{Error, Result};
use crate::store::Topic;
use crate::{Cursor, Log};

use journal::Outcome;

pub(super) struct Core {
    state: GroupState,
    /// Reads new events: a cursor over the topic and whether it reads through a follower.
    scan: Option<(Cursor, bool)>,
    since_snapshot: u64,
    rng: u64,
}

impl Core {
    pub(super) fn random(&mut self) -> f64 {
        // xorshift64*: jitter needs spread, not cryptographic quality.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub(crate) struct GroupInner {
    topic: Topic,
    name: String,
    /// This opening of the group: deliveries carry it, settling checks it.
    holder: Holder,
    paths: GroupPaths,
    opts: GroupOptions,
    state_log: Log,
    core: Mutex<Core>,
    /// Held while a snapshot is written (and by `close`).
    snapshot_lock: Mutex<()>,
    /// A background snapshot is scheduled or running.
    snapshotting: AtomicBool,
    /// This group, for the background snapshot thread.
    me: Weak<GroupInner>,
    poisoned: AtomicBool,
    closed: AtomicBool,
}

/// A consumer group of a topic. Cheap to clone, `Send + Sync`: every clone (typically one
/// per consumer thread) shares the group's work, each delivery leased to one caller.
#[derive(Clone)]
pub struct Group {
    inner: Arc<GroupInner>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").field("topic", &self.inner.topic.name()).field("name", &self.inner.name).finish()
    }
}

impl GroupInner {
    pub(crate) fn options(&self) -> &GroupOptions {
        &self.opts
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(super) fn check_usable(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        Ok(())
    }

    /// Retention removed events below `first`: drop what the group had not finished and
    /// count it.
    pub(super) fn check_retention(&self, core: &mut Core, first: u64, events: &mut Vec<StateEvent>) -> bool {
        if first <= core.state.committed() {
            return false;
        }
        let (lost, released) = core.state.lose_before(first);
        events.push(StateEvent::LostToRetention { to: first, lost });
        !released.is_empty()
    }

    pub(super) fn lag(&self) -> Result<GroupLag> {
        let (first, end) = match self.topic.fresh_reader()? {
            Some((log, _)) => (log.first_offset(), log.next_offset()),
            None => (0, 0),
        };
        let outcome = {
            let mut core = self.core.lock();
            let mut events = Vec::new();
            let notify = self.check_retention(&mut core, first, &mut events);
            self.write_events(&mut core, &events)?;
            Outcome { notify, sync: false }
        };
        self.finish(outcome)?;
        let core = self.core.lock();
        Ok(GroupLag::of(self.topic.name(), &self.name, &core.state, first, end, lag::Source::Live))
    }

    pub(super) fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        let view = dead_letters::View::of(&self.core.lock().state);
        match self.dead_letter_reader()? {
            Some(dl) => dead_letters::list(&dl, &view),
            None => Ok(Vec::new()),
        }
    }

    pub(super) fn close(&self) -> Result<()> {
        // IMPORTANT: under the snapshot lock, so that no background snapshot runs after the
        // group is released (it could overwrite the next owner's snapshot).
        let _s = self.snapshot_lock.lock();
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let snap = if self.poisoned.load(Ordering::Acquire) { Ok(()) } else { self.write_snapshot_locked() };
        let closed = self.state_log.clone().close();
        snap.and(closed)
    }
}

impl Drop for GroupInner {
    fn drop(&mut self) {
        // Best effort: an explicit `close` reports errors; a drop cannot.
        let _ = self.close();
    }
}

impl Group {
    pub(crate) fn from_inner(inner: Arc<GroupInner>) -> Group {
        Group { inner }
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The topic the group reads.
    pub fn topic(&self) -> &Topic {
        &self.inner.topic
    }

    /// The options the group was opened with.
    pub fn options(&self) -> &GroupOptions {
        &self.inner.opts
    }

    /// Up to `max` deliveries, waiting up to `timeout` for the first: returns as soon as one
    /// is available (an event published in this process wakes the caller at once, with no
    /// polling), or an empty vector at the timeout. Each delivery is leased to the caller for
    /// [`GroupOptions::lease`].
    pub fn poll(&self, max: usize, timeout: Duration) -> Result<Vec<Delivery>> {
        self.inner.poll(max, timeout)
    }

    /// Up to `max` deliveries available now, without waiting.
    pub fn try_poll(&self, max: usize) -> Result<Vec<Delivery>> {
        self.inner.poll(max, Duration::ZERO)
    }

    /// Acknowledge a delivery: the event is done for this group and never delivered to it
    /// again (once this returns, in [`crate::AckMode::Durable`], even after power loss).
    /// [`Error::LeaseLost`] if the lease expired and the event was delivered again since,
    /// or the delivery was settled already. [`Error::ForeignDelivery`] if this group did not
    /// hand `d` out (it came from another group, or from this group before it was closed and
    /// reopened); nothing changes then.
    pub fn ack(&self, d: &Delivery) -> Result<()> {
        self.inner.ack_batch(std::slice::from_ref(d))
    }

    /// Acknowledge several deliveries with one state-log append and one flush. Every
    /// delivery still held is acked; if some were not, returns [`Error::LeaseLost`] for the
    /// first of them after acking the others. If any of them was not handed out by this
    /// group, returns [`Error::ForeignDelivery`] and acks none.
    pub fn ack_batch(&self, ds: &[Delivery]) -> Result<()> {
        self.inner.ack_batch(ds)
    }

    /// The delivery failed: deliver the event again after the group's backoff. If it has
    /// reached [`GroupOptions::max_deliveries`], it goes to the dead letters instead.
    /// `reason` (at most [`crate::MAX_REASON_BYTES`] kept) is stored with the event. Errors as for
    /// [`Group::ack`].
    pub fn nack(&self, d: &Delivery, reason: &str) -> Result<()> {
        self.inner.fail(d, false, None, reason)
    }

    /// Like [`Group::nack`], with an explicit delay instead of the backoff. Delays (this one
    /// and the backoff's) are capped at [`crate::MAX_RETRY_DELAY`]; [`Group::retry_now`] makes a
    /// waiting retry due at once.
    pub fn nack_after(&self, d: &Delivery, delay: Duration, reason: &str) -> Result<()> {
        self.inner.fail(d, false, Some(delay), reason)
    }

    /// Give up on the event at once: it goes to the group's dead letters. Errors as for
    /// [`Group::ack`].
    pub fn reject(&self, d: &Delivery, reason: &str) -> Result<()> {
        self.inner.fail(d, true, None, reason)
    }

    /// Extend a delivery's lease to `by` from now; returns the new deadline. Allowed exactly
    /// when an ack would be: also after the lease expired, as long as the event was not
    /// delivered to anyone since (the holder then gets it back). Errors as for
    /// [`Group::ack`].
    pub fn extend_lease(&self, d: &Delivery, by: Duration) -> Result<Instant> {
        self.inner.extend_lease(d, by)
    }

    /// Cancel the wait of a scheduled retry: the topic event at `offset`, nacked and waiting
    /// for its retry time, becomes due at once (durably, as a nack). Returns false, changing
    /// nothing, if that event is not waiting for a retry.
    pub fn retry_now(&self, offset: u64) -> Result<bool> {
        self.inner.retry_now(offset)
    }

    /// Deliver a parked dead letter to this group again (with a fresh delivery count).
    /// [`Error::UnknownDeadLetter`] if it is not parked.
    pub fn redrive(&self, dlq_offset: u64) -> Result<()> {
        self.inner.redrive(Some(dlq_offset)).map(|_| ())
    }

    /// Redrive every parked dead letter; returns how many.
    pub fn redrive_all(&self) -> Result<u64> {
        self.inner.redrive(None)
    }

    /// Every dead letter of this group, oldest first, with its status.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        self.inner.dead_letters()
    }

    /// The group's committed position: every event before it is done.
    pub fn committed(&self) -> u64 {
        self.inner.core.lock().state.committed()
    }

    /// How far behind the group is, and what it holds.
    pub fn lag(&self) -> Result<GroupLag> {
        self.inner.lag()
    }

    /// Flush every state change so far to stable storage (useful in [`crate::AckMode::Periodic`]).
    pub fn sync(&self) -> Result<()> {
        self.inner.state_log.flush()
    }

    /// Snapshot the state, close the state log and release the group's lock. Every clone of
    /// this handle is closed; in-flight deliveries are delivered again by the next owner (and
    /// settling them with this opening's deliveries is [`Error::ForeignDelivery`]).
    pub fn close(self) -> Result<()> {
        self.inner.close()
    }
}

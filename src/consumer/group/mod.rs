//! A consumer group open in this process: its state under one mutex, the state log that
//! records every change, and the public [`Group`] handle. The work is split by job:
//! [`open`] loads and reconciles the state, [`journal`] records state changes and
//! snapshots, [`poll`] hands out deliveries, [`settle`] takes acks, nacks, rejects, lease
//! extensions and redrives, [`by_offset`] settles by topic offset, [`retries`] lists what
//! waits and changes scheduled retries, [`reset`] moves the position, [`purge`] purges
//! dead letters.

mod by_offset;
mod journal;
mod open;
mod poll;
mod purge;
mod remote;
mod reset;
mod retries;
mod settle;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::dead_letters::purge::{PurgeDeadLetters, PurgeReport};
use super::dead_letters::{self, DeadLetter};
use super::delivery::{Delivery, Holder};
use super::lag::{self, GroupLag};
use super::options::GroupOptions;
use super::options::StartFrom;
use super::pending::Pending;
use super::persist::{GroupPaths, StateEvent};
use super::state::GroupState;
use crate::error::{Error, Result};
use crate::store::Topic;
use crate::{Cursor, Log};

use journal::Outcome;
use settle::Settle;

pub use remote::Role;
pub(crate) use remote::{Remote, RemoteSettle, RemoteTargets};

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
    /// Remote members are served (set once, by the first `join_group`).
    serving: AtomicBool,
}

/// A consumer group of a topic. Cheap to clone, `Send + Sync`: every clone (typically one
/// per consumer thread) shares the group's work, each delivery leased to one caller.
///
/// A handle is the group's [`Role::Owner`] (this process holds the group's lock and state)
/// or, opened with [`Topic::join_group`] while another process owns the group, a
/// [`Role::Member`] that polls and settles through the owner; [`Group::role`] tells which.
/// On a member, the operations that need the group's state (`reset`, `lag`,
/// `dead_letters`, redrive, purge, and changing retries) are [`Error::NotGroupOwner`].
#[derive(Clone)]
pub struct Group {
    handle: Handle,
}

#[derive(Clone)]
enum Handle {
    Owner(Arc<GroupInner>),
    Remote(Arc<dyn Remote>),
}

/// Where a call goes: the state here, or the owner in another process.
enum Route {
    Owner(Arc<GroupInner>),
    Remote(Arc<dyn Remote>),
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").field("topic", &self.topic().name()).field("name", &self.name()).finish()
    }
}

impl GroupInner {
    pub(crate) fn options(&self) -> &GroupOptions {
        &self.opts
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// True the first time it is called for this opening: the caller then serves remote
    /// members.
    pub(crate) fn start_serving(&self) -> bool {
        !self.serving.swap(true, Ordering::AcqRel)
    }

    /// The group's directory.
    pub(crate) fn dir(&self) -> &std::path::Path {
        &self.paths.dir
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
        Group { handle: Handle::Owner(inner) }
    }

    /// A handle to a group another process owns.
    pub(crate) fn from_remote(remote: Arc<dyn Remote>) -> Group {
        Group { handle: Handle::Remote(remote) }
    }

    /// The owner's state, if this handle is (or has become) the owner.
    pub(crate) fn owner_inner(&self) -> Option<Arc<GroupInner>> {
        match self.route() {
            Route::Owner(i) => Some(i),
            Route::Remote(_) => None,
        }
    }

    fn route(&self) -> Route {
        match &self.handle {
            Handle::Owner(i) => Route::Owner(i.clone()),
            Handle::Remote(r) => match r.taken_over() {
                Some(g) => g.route(),
                None => Route::Remote(r.clone()),
            },
        }
    }

    /// The owner's state for an operation only the owner can do; [`Error::NotGroupOwner`]
    /// for a remote member.
    fn owner(&self, operation: &'static str) -> Result<Arc<GroupInner>> {
        match self.route() {
            Route::Owner(i) => Ok(i),
            Route::Remote(r) => {
                Err(Error::NotGroupOwner { group: format!("{}/{}", r.topic().name(), r.name()), operation })
            }
        }
    }

    /// Settle through the owner in another process, or here.
    fn settle_via(
        &self,
        how: RemoteSettle<'_>,
        targets: RemoteTargets<'_>,
        here: impl FnOnce(&GroupInner) -> Result<()>,
    ) -> Result<()> {
        match self.route() {
            Route::Owner(i) => here(&i),
            Route::Remote(r) => r.settle(how, targets),
        }
    }

    /// Whether this handle owns the group or is a remote member of it. A member whose owner
    /// went away and that took the group over reports [`Role::Owner`] from then on.
    pub fn role(&self) -> Role {
        match self.route() {
            Route::Owner(_) => Role::Owner,
            Route::Remote(_) => Role::Member,
        }
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        match &self.handle {
            Handle::Owner(i) => &i.name,
            Handle::Remote(r) => r.name(),
        }
    }

    /// The topic the group reads.
    pub fn topic(&self) -> &Topic {
        match &self.handle {
            Handle::Owner(i) => &i.topic,
            Handle::Remote(r) => r.topic(),
        }
    }

    /// The options the group was opened with. (A remote member's deliveries follow the
    /// owner's options: lease, backoff, order.)
    pub fn options(&self) -> &GroupOptions {
        match &self.handle {
            Handle::Owner(i) => &i.opts,
            Handle::Remote(r) => r.options(),
        }
    }

    /// Up to `max` deliveries, waiting up to `timeout` for the first: returns as soon as one
    /// is available (an event published in this process wakes the caller at once, with no
    /// polling), or an empty vector at the timeout. Each delivery is leased to the caller for
    /// [`GroupOptions::lease`].
    pub fn poll(&self, max: usize, timeout: Duration) -> Result<Vec<Delivery>> {
        match self.route() {
            Route::Owner(i) => i.poll(max, timeout),
            Route::Remote(r) => r.poll(max, timeout),
        }
    }

    /// Up to `max` deliveries available now, without waiting.
    pub fn try_poll(&self, max: usize) -> Result<Vec<Delivery>> {
        self.poll(max, Duration::ZERO)
    }

    /// Acknowledge a delivery: the event is done for this group and never delivered to it
    /// again (once this returns, in [`crate::AckMode::Durable`], even after power loss).
    /// [`Error::LeaseLost`] if the lease expired and the event was delivered again since,
    /// or the delivery was settled already. [`Error::ForeignDelivery`] if this group did not
    /// hand `d` out (it came from another group, or from this group before it was closed and
    /// reopened); nothing changes then.
    pub fn ack(&self, d: &Delivery) -> Result<()> {
        self.ack_batch(std::slice::from_ref(d))
    }

    /// Acknowledge several deliveries with one state-log append and one flush. Every
    /// delivery still held is acked; if some were not, returns [`Error::LeaseLost`] for the
    /// first of them after acking the others. If any of them was not handed out by this
    /// group, returns [`Error::ForeignDelivery`] and acks none.
    pub fn ack_batch(&self, ds: &[Delivery]) -> Result<()> {
        self.settle_via(RemoteSettle::Ack, RemoteTargets::Deliveries(ds), |i| i.ack_batch(ds))
    }

    /// The delivery failed: deliver the event again after the group's backoff. If it has
    /// reached [`GroupOptions::max_deliveries`], it goes to the dead letters instead.
    /// `reason` (at most [`crate::MAX_REASON_BYTES`] kept) is stored with the event. Errors as for
    /// [`Group::ack`].
    pub fn nack(&self, d: &Delivery, reason: &str) -> Result<()> {
        let how = RemoteSettle::Fail { rejected: false, delay: None, reason };
        self.settle_via(how, RemoteTargets::Deliveries(std::slice::from_ref(d)), |i| i.fail(d, false, None, reason))
    }

    /// Like [`Group::nack`], with an explicit delay instead of the backoff. Delays (this one
    /// and the backoff's) are capped at [`crate::MAX_RETRY_DELAY`]; [`Group::retry_now`] makes a
    /// waiting retry due at once.
    pub fn nack_after(&self, d: &Delivery, delay: Duration, reason: &str) -> Result<()> {
        let how = RemoteSettle::Fail { rejected: false, delay: Some(delay), reason };
        self.settle_via(how, RemoteTargets::Deliveries(std::slice::from_ref(d)), |i| {
            i.fail(d, false, Some(delay), reason)
        })
    }

    /// Give up on the event at once: it goes to the group's dead letters. Errors as for
    /// [`Group::ack`].
    pub fn reject(&self, d: &Delivery, reason: &str) -> Result<()> {
        let how = RemoteSettle::Fail { rejected: true, delay: None, reason };
        self.settle_via(how, RemoteTargets::Deliveries(std::slice::from_ref(d)), |i| i.fail(d, true, None, reason))
    }

    /// Extend a delivery's lease to `by` from now; returns the new deadline. Allowed exactly
    /// when an ack would be: also after the lease expired, as long as the event was not
    /// delivered to anyone since (the holder then gets it back). Errors as for
    /// [`Group::ack`].
    pub fn extend_lease(&self, d: &Delivery, by: Duration) -> Result<Instant> {
        match self.route() {
            Route::Owner(i) => i.extend_lease(d, by),
            Route::Remote(r) => r.extend_lease(d, by),
        }
    }

    /// Cancel the wait of a scheduled retry: the topic event at `offset`, nacked and waiting
    /// for its retry time, becomes due at once (durably, as a nack). Returns false, changing
    /// nothing, if that event is not waiting for a retry.
    pub fn retry_now(&self, offset: u64) -> Result<bool> {
        self.owner("retry_now")?.retry_now(offset)
    }

    /// Nack several deliveries (see [`Group::nack`]) with one state-log append and one
    /// flush. Every delivery still held is nacked; if some were not, returns
    /// [`Error::LeaseLost`] for the first of them after nacking the others. If any of them
    /// was not handed out by this group, returns [`Error::ForeignDelivery`] and nacks none.
    pub fn nack_batch(&self, ds: &[Delivery], reason: &str) -> Result<()> {
        let how = RemoteSettle::Fail { rejected: false, delay: None, reason };
        self.settle_via(how, RemoteTargets::Deliveries(ds), |i| {
            let claims = i.claims_of(ds)?;
            i.settle(|_| Ok(claims), Settle::Fail { rejected: false, delay: None, reason })
        })
    }

    /// Reject several deliveries (see [`Group::reject`]); errors as for [`Group::nack_batch`].
    pub fn reject_batch(&self, ds: &[Delivery], reason: &str) -> Result<()> {
        let how = RemoteSettle::Fail { rejected: true, delay: None, reason };
        self.settle_via(how, RemoteTargets::Deliveries(ds), |i| {
            let claims = i.claims_of(ds)?;
            i.settle(|_| Ok(claims), Settle::Fail { rejected: true, delay: None, reason })
        })
    }

    /// Give a delivery back without counting it as a failed attempt (RabbitMQ's requeue on
    /// shutdown): the event is due again at once, and its next delivery has the same attempt
    /// number as this one. Unlike [`Group::nack`], it records no failure, waits for no
    /// backoff and never moves the event to the dead letters. Errors as for [`Group::ack`].
    pub fn release(&self, d: &Delivery) -> Result<()> {
        self.release_batch(std::slice::from_ref(d))
    }

    /// Release several deliveries (see [`Group::release`]); errors as for
    /// [`Group::nack_batch`].
    pub fn release_batch(&self, ds: &[Delivery]) -> Result<()> {
        self.settle_via(RemoteSettle::Release, RemoteTargets::Deliveries(ds), |i| {
            let claims = i.claims_of(ds)?;
            i.settle(|_| Ok(claims), Settle::Release)
        })
    }

    /// Acknowledge topic events by offset. Each must be delivered by this opening of the
    /// group now (leased, or its lease expired and nobody was given it since), else
    /// [`Error::NotDelivered`] names the first that is not, and nothing is acked. A redriven
    /// dead letter is settled through its [`Delivery`] only.
    pub fn ack_offsets(&self, offsets: &[u64]) -> Result<()> {
        self.settle_via(RemoteSettle::Ack, RemoteTargets::Offsets(offsets), |i| {
            i.settle(|core| i.claims_at(core, offsets), Settle::Ack)
        })
    }

    /// Nack topic events by offset (see [`Group::nack`]); errors as for
    /// [`Group::ack_offsets`].
    pub fn nack_offsets(&self, offsets: &[u64], reason: &str) -> Result<()> {
        let remote = RemoteSettle::Fail { rejected: false, delay: None, reason };
        let how = Settle::Fail { rejected: false, delay: None, reason };
        self.settle_via(remote, RemoteTargets::Offsets(offsets), |i| i.settle(|core| i.claims_at(core, offsets), how))
    }

    /// Reject topic events by offset (see [`Group::reject`]); errors as for
    /// [`Group::ack_offsets`].
    pub fn reject_offsets(&self, offsets: &[u64], reason: &str) -> Result<()> {
        let remote = RemoteSettle::Fail { rejected: true, delay: None, reason };
        let how = Settle::Fail { rejected: true, delay: None, reason };
        self.settle_via(remote, RemoteTargets::Offsets(offsets), |i| i.settle(|core| i.claims_at(core, offsets), how))
    }

    /// Release topic events by offset (see [`Group::release`]); errors as for
    /// [`Group::ack_offsets`].
    pub fn release_offsets(&self, offsets: &[u64]) -> Result<()> {
        self.settle_via(RemoteSettle::Release, RemoteTargets::Offsets(offsets), |i| {
            i.settle(|core| i.claims_at(core, offsets), Settle::Release)
        })
    }

    /// Every unfinished event of the group, in flight, waiting for a retry, due again or held
    /// back: its offset, attempts, lease deadline or retry due time. Topic events by offset,
    /// then redriven dead letters.
    pub fn pending(&self) -> Vec<Pending> {
        self.owner_inner().map(|i| i.pending()).unwrap_or_default()
    }

    /// Cancel the retry the topic event at `offset` waits for: the event is given up as
    /// done, like an ack (EventStoreDB's *skip*), with no dead letter. Returns false, changing
    /// nothing, if the event is not waiting for a retry. ([`Group::retry_now`] delivers it now
    /// instead.)
    pub fn cancel_retry(&self, offset: u64) -> Result<bool> {
        self.owner("cancel_retry")?.change_retry(offset, None)
    }

    /// Move the retry the topic event at `offset` waits for to `delay` from now (capped at
    /// [`crate::MAX_RETRY_DELAY`]), durably. Returns false, changing nothing, if the event is
    /// not waiting for a retry.
    pub fn reschedule_retry(&self, offset: u64, delay: Duration) -> Result<bool> {
        self.owner("reschedule_retry")?.change_retry(offset, Some(delay))
    }

    /// Move the group's position to `to` (the topic's first event, its end, an offset, or
    /// the first event at or after a time); returns the offset it resolved to. Every
    /// unfinished topic event is dropped: deliveries in flight can no longer be settled
    /// ([`Error::LeaseLost`]), scheduled retries and held-back events are forgotten, and the
    /// next poll hands out the event at the new position, then every later one, whether or
    /// not it was acked before (a reset back replays). Redriven and parked dead letters are
    /// kept. Recorded as one state change, durable before this returns (in
    /// [`crate::AckMode::Durable`]), so a reopened group continues from the new position.
    pub fn reset(&self, to: StartFrom) -> Result<u64> {
        self.owner("reset")?.reset(to)
    }

    /// Purge dead letters, oldest first (see [`PurgeDeadLetters`]): purged ones are no longer
    /// listed nor redrivable, and the dead-letter log's segments wholly below the purge mark
    /// are deleted. The mark is durable before anything is deleted. A redriven dead letter
    /// not settled yet is never purged, nor anything after it: the mark stops below it.
    pub fn purge_dead_letters(&self, which: PurgeDeadLetters) -> Result<PurgeReport> {
        self.owner("purge_dead_letters")?.purge_dead_letters(which)
    }

    /// Deliver a parked dead letter to this group again (with a fresh delivery count).
    /// [`Error::UnknownDeadLetter`] if it is not parked.
    pub fn redrive(&self, dlq_offset: u64) -> Result<()> {
        self.owner("redrive")?.redrive(Some(dlq_offset)).map(|_| ())
    }

    /// Redrive every parked dead letter; returns how many.
    pub fn redrive_all(&self) -> Result<u64> {
        self.owner("redrive_all")?.redrive(None)
    }

    /// Every dead letter of this group, oldest first, with its status.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        self.owner("dead_letters")?.dead_letters()
    }

    /// The group's committed position: every event before it is done.
    pub fn committed(&self) -> u64 {
        match self.route() {
            Route::Owner(i) => i.core.lock().state.committed(),
            Route::Remote(r) => r.committed(),
        }
    }

    /// How far behind the group is, and what it holds.
    pub fn lag(&self) -> Result<GroupLag> {
        self.owner("lag")?.lag()
    }

    /// Flush every state change so far to stable storage (useful in [`crate::AckMode::Periodic`]).
    pub fn sync(&self) -> Result<()> {
        match self.route() {
            Route::Owner(i) => i.state_log.flush(),
            // The owner flushes every change it makes for a member (in its ack mode).
            Route::Remote(_) => Ok(()),
        }
    }

    /// Snapshot the state, close the state log and release the group's lock. Every clone of
    /// this handle is closed; in-flight deliveries are delivered again by the next owner (and
    /// settling them with this opening's deliveries is [`Error::ForeignDelivery`]). A remote
    /// member instead says goodbye to the owner, which releases the member's leases (and, if
    /// the member took the group over, closes that opening as above).
    pub fn close(self) -> Result<()> {
        match &self.handle {
            Handle::Owner(i) => i.close(),
            Handle::Remote(r) => r.close(),
        }
    }
}

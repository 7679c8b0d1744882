//! A consumer group open in this process: its state under one mutex, the state log that
//! records every change, and the public [`Group`] handle. The work is split by job:
//! [`journal`] records state changes and snapshots, [`poll`] hands out deliveries,
//! [`settle`] takes acks, nacks, rejects, lease extensions and redrives.

mod journal;
mod poll;
mod settle;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::dead_letters::{self, DeadLetter};
use super::delivery::{Delivery, Holder};
use super::lag::{self, GroupLag};
use super::now_us;
use super::options::{AckMode, DeliveryOrder, GroupOptions, StartFrom};
use super::persist::{self, GroupPaths, StateEvent};
use super::state::{GroupState, ItemId, MAX_GAP};
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
    pub(crate) fn open(topic: Topic, name: &str, opts: GroupOptions) -> Result<Arc<GroupInner>> {
        let store_opts = topic.store().options().clone();
        let paths = GroupPaths::new(&topic, name);
        paths.create()?;
        let flush_every = match opts.ack_mode {
            AckMode::Durable => None,
            AckMode::Periodic(d) => Some(d),
        };
        // The state log's writer lock is the group's lock.
        let state_log = persist::open_state_log(&paths.state, &store_opts, flush_every)?;
        let (topic_first, topic_end) = match topic.fresh_reader()? {
            Some((log, _)) => (log.first_offset(), log.next_offset()),
            None => (0, 0),
        };
        let mut events = Vec::new();
        let mut replayed = 0;
        let mut state = match persist::read_snapshot(&paths.dir)? {
            Some((snap, covers)) => {
                let mut s = snap.into_state();
                replayed = persist::replay(&mut s, &state_log, covers)?;
                s
            }
            None if state_log.is_empty() && state_log.first_offset() == 0 => {
                let start = match opts.start {
                    StartFrom::Earliest => topic_first,
                    StartFrom::Latest => topic_end,
                };
                events.push(StateEvent::Start { offset: start });
                GroupState::starting_at(start)
            }
            None => {
                let mut s = GroupState::default();
                replayed = persist::replay(&mut s, &state_log, 0)?;
                s
            }
        };
        let dl_next = reconcile_dead_letters(&paths, &store_opts, &mut state, topic_end, &mut events)?;
        if state.dead_letter_format_from.is_none() {
            // The first opening by a release that writes format 2: every record there is now
            // is in format 1, every later one in format 2.
            state.dead_letter_format_from = Some(dl_next);
            events.push(StateEvent::DeadLetterFormat { from: dl_next });
        }
        let seed = now_us() ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15;
        let inner = Arc::new_cyclic(|me| GroupInner {
            holder: Holder::new_incarnation(topic.name(), name),
            topic,
            name: name.to_owned(),
            paths,
            opts,
            state_log,
            core: Mutex::new(Core { state, scan: None, since_snapshot: replayed, rng: seed | 1 }),
            snapshot_lock: Mutex::new(()),
            snapshotting: AtomicBool::new(false),
            me: me.clone(),
            poisoned: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        let snapshot_due = {
            let mut core = inner.core.lock();
            inner.check_retention(&mut core, topic_first, &mut events);
            if inner.opts.order == DeliveryOrder::PerKey {
                inner.rebuild_keys(&mut core)?;
            }
            inner.write_events(&mut core, &events)?;
            core.since_snapshot >= inner.opts.snapshot_every
        };
        // The group's creation and any reconciliation are durable before it is used. Why not
        // always: a group reopened after a clean close has nothing to flush, and opening many
        // groups should not cost a flush each (nor a snapshot, written when due and at close).
        if !events.is_empty() {
            inner.state_log.sync()?;
        }
        if snapshot_due {
            inner.snapshot_now()?;
        }
        Ok(inner)
    }

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

    /// Per-key order after a restart: queue every pending topic event under its key, in
    /// offset order, so the earliest of each key goes first and the others wait.
    pub(super) fn rebuild_keys(&self, core: &mut Core) -> Result<()> {
        let Some((log, _)) = self.topic.reader()? else { return Ok(()) };
        let ids: Vec<u64> = core
            .state
            .entries
            .range(ItemId::Topic(0)..=ItemId::Topic(u64::MAX))
            .filter_map(|(id, _)| match id {
                ItemId::Topic(o) => Some(*o),
                ItemId::Redrive(_) => None,
            })
            .collect();
        for o in ids {
            let key = match log.read_with(o, |r| r.key().map(<[u8]>::to_vec)) {
                Ok(k) => k,
                // Removed by retention since: the next poll accounts for it.
                Err(Error::OffsetOutOfRange { .. }) => None,
                Err(e) => return Err(e),
            };
            if let Some(k) = key {
                core.state.enqueue_key(ItemId::Topic(o), k);
            }
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

/// Record the dead letters written just before a crash, whose state change did not make it
/// (the dead-letter record is durable before its `DeadLettered` event): every record at or
/// after the state's `dlq_next`. Returns the dead-letter log's next offset.
///
/// A record finishes the pending item it names, if there is one; the event it names may also
/// be one the state has not looked at yet (its `Delivered` event was lost with the crash),
/// if it lies in the topic and within replay's reach. Any other record, or one that does not
/// decode, is parked without finishing anything: nothing read from a record can make the
/// group fail to open.
fn reconcile_dead_letters(
    paths: &GroupPaths,
    store_opts: &crate::store::StoreOptions,
    state: &mut GroupState,
    topic_end: u64,
    events: &mut Vec<StateEvent>,
) -> Result<u64> {
    // Read-only: this opening holds the group's lock, so nobody appends meanwhile.
    let dl = match Log::open_read_only(&paths.dead_letters, dead_letters::log_options(store_opts)) {
        Ok(dl) => dl,
        Err(Error::NotFound { .. }) => return Ok(0),
        Err(e) => return Err(e),
    };
    let from = state.dlq_next.max(dl.first_offset());
    if from >= dl.next_offset() {
        return Ok(dl.next_offset());
    }
    for rec in dl.iter(from) {
        let rec = rec?;
        let at = rec.offset;
        let id = match dead_letters::decode(rec, state.dead_letter_format_from, dl.dir()) {
            Ok(d) => match d.redrive_of {
                Some(x) => ItemId::Redrive(x),
                None => ItemId::Topic(d.source_offset),
            },
            Err(_) => {
                state.dead_letter_found(at);
                events.push(StateEvent::DeadLetterFound { dlq_offset: at });
                continue;
            }
        };
        let unseen = match id {
            ItemId::Topic(o) => o >= state.cursor && o < topic_end && o - state.cursor <= MAX_GAP,
            ItemId::Redrive(_) => false,
        };
        if unseen {
            if let ItemId::Topic(o) = id {
                state.visit(o)?;
            }
        }
        if state.entries.contains_key(&id) {
            state.dead_lettered(id, at);
            events.push(StateEvent::DeadLettered { id, dlq_offset: at });
        } else {
            state.dead_letter_found(at);
            events.push(StateEvent::DeadLetterFound { dlq_offset: at });
        }
    }
    Ok(dl.next_offset())
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
    /// again (once this returns, in [`AckMode::Durable`], even after power loss).
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

    /// Flush every state change so far to stable storage (useful in [`AckMode::Periodic`]).
    pub fn sync(&self) -> Result<()> {
        self.inner.state_log.sync()
    }

    /// Snapshot the state, close the state log and release the group's lock. Every clone of
    /// this handle is closed; in-flight deliveries are delivered again by the next owner (and
    /// settling them with this opening's deliveries is [`Error::ForeignDelivery`]).
    pub fn close(self) -> Result<()> {
        self.inner.close()
    }
}

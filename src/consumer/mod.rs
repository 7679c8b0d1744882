//! Consumer groups: at-least-once delivery with leases, acks in any order, retries with
//! persisted backoff, dead letters and redrive, per-key ordering, lag. The exact semantics
//! are in `docs/consumers.md`; the files in `docs/format.md` ("Store and consumer-group files").
//!
//! Structure: [`state`] is the state machine (no I/O); [`persist`] the state log and
//! snapshot; [`dlq`] the dead-letter records; [`retention`] releasing consumed segments.
//! This module ties them together: one mutex guards a group's state and the appends of its
//! state changes, so the state log holds the changes in the order they happened.

pub(crate) mod dlq;
pub(crate) mod persist;
pub(crate) mod retention;
pub(crate) mod state;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::log::{Cursor, Log};
use crate::record::{OwnedRecord, Record};
use crate::store::Topic;

pub use dlq::{DeadLetter, DeadLetterCause, DeadLetterStatus, MAX_REASON_BYTES};
pub use retention::{RetentionPolicy, RetentionReport};

use dlq::DeadLetterMeta;
use persist::{GroupPaths, Snapshot, StateEvent};
use state::{GroupState, ItemId, Status};

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// `now + d`, capped at about a year: adding a huge duration to an `Instant` panics.
pub(crate) fn instant_after(now: Instant, d: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(86_400 * 365);
    now + d.min(YEAR)
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

/// Where a new group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartFrom {
    /// The first event still in the topic.
    Earliest,
    /// The topic's end when the group is created: only events published afterwards.
    Latest,
}

/// Options for [`Topic::group`]. Built with consuming setters.
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
    /// Most events that may be unfinished at once (in flight, waiting for a retry, held back
    /// by key, or redriven and not settled). When reached, no new events are read from the
    /// topic until some finish. Default 10 000, at most 2^20.
    pub max_outstanding: u32,
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
        if self.max_outstanding == 0 || u64::from(self.max_outstanding) > state::MAX_GAP {
            return Err(Error::InvalidOptions(format!("max_outstanding must be in [1, {}]", state::MAX_GAP)));
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

/// One event handed to a consumer, leased to it until it is acked, nacked, rejected, or the
/// lease expires.
#[derive(Debug, Clone)]
pub struct Delivery {
    id: ItemId,
    lease: u64,
    attempt: u32,
    deadline: Instant,
    record: OwnedRecord,
}

impl Delivery {
    /// The event's offset in its topic.
    pub fn offset(&self) -> u64 {
        self.record.offset
    }
    /// Which delivery of this event this is: 1 for the first. (For a redriven dead letter,
    /// counting restarts at 1.)
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
    /// The event, as published.
    pub fn record(&self) -> &OwnedRecord {
        &self.record
    }
    /// The event's payload.
    pub fn payload(&self) -> &[u8] {
        &self.record.payload
    }
    /// The event's key, if it has one.
    pub fn key(&self) -> Option<&[u8]> {
        self.record.key.as_deref()
    }
    /// The first header of the event with this name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.record.header(name)
    }
    /// If this is a redriven dead letter: its offset in the group's dead-letter log.
    pub fn redriven_from(&self) -> Option<u64> {
        match self.id {
            ItemId::Redrive(d) => Some(d),
            ItemId::Topic(_) => None,
        }
    }
    /// When the lease expires unless extended ([`Group::extend_lease`]).
    pub fn lease_deadline(&self) -> Instant {
        self.deadline
    }
    /// The event, consuming the delivery.
    pub fn into_record(self) -> OwnedRecord {
        self.record
    }
}

/// How far a group is behind, and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupLag {
    /// The topic.
    pub topic: String,
    /// The group.
    pub group: String,
    /// Committed position: every event before it is done (acked, dead-lettered, or lost to
    /// retention).
    pub committed: u64,
    /// The topic's first retained offset.
    pub first_offset: u64,
    /// The topic's end (next offset to be published).
    pub end_offset: u64,
    /// Events at or after the committed position that are not done yet (includes the
    /// in-flight, retrying and held-back ones).
    pub unconsumed: u64,
    /// Events leased to a consumer now. For a group read from its persisted state (not open
    /// in this process): events delivered and not settled since, which includes deliveries
    /// whose consumer has since died.
    pub in_flight: u64,
    /// Events waiting for their retry time after a failure.
    pub scheduled_retries: u64,
    /// Events held back behind an earlier event with the same key (per-key order; 0 when
    /// read from persisted state, which does not record keys).
    pub held_back: u64,
    /// Redriven dead letters not settled yet.
    pub redriven: u64,
    /// Dead letters parked in the group's dead-letter log.
    pub dead_letters: u64,
    /// Events that size or age retention removed before this group was done with them
    /// (counted since the group was created, including a loss the group has not yet noticed).
    pub lost_to_retention: u64,
    /// True if read from a group open in this process, false if from its persisted state.
    pub live: bool,
}

struct Core {
    state: GroupState,
    /// Reads new events: a cursor over the topic and whether it reads through a follower.
    scan: Option<(Cursor, bool)>,
    dead_letters: Option<Log>,
    since_snapshot: u64,
    rng: u64,
}

impl Core {
    fn random(&mut self) -> f64 {
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
    pub(crate) inner: Arc<GroupInner>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").field("topic", &self.inner.topic.name()).field("name", &self.inner.name).finish()
    }
}

/// What one operation did, to finish outside the lock.
#[derive(Default)]
struct Outcome {
    notify: bool,
    sync: bool,
}

impl GroupInner {
    pub(crate) fn open(topic: Topic, name: &str, opts: GroupOptions) -> Result<Arc<GroupInner>> {
        let shared = topic.store().clone();
        let paths = GroupPaths::new(&shared.groups_root(), topic.name(), name);
        paths.create()?;
        let flush_every = match opts.ack_mode {
            AckMode::Durable => None,
            AckMode::Periodic(d) => Some(d),
        };
        // The state log's writer lock is the group's lock.
        let state_log = Log::open(&paths.state, shared.opts.state_options(flush_every))?;
        let mut events = Vec::new();
        let mut state = match persist::read_snapshot(&paths.dir)? {
            Some((snap, covers)) => {
                let mut s = snap.into_state();
                persist::replay(&mut s, &state_log, covers)?;
                s
            }
            None if state_log.is_empty() && state_log.first_offset() == 0 => {
                let start = match (opts.start, topic.reader()?) {
                    (StartFrom::Earliest, Some((log, _))) => log.first_offset(),
                    (StartFrom::Latest, Some((log, follower))) => {
                        if follower {
                            log.refresh()?;
                        }
                        log.next_offset()
                    }
                    (_, None) => 0,
                };
                events.push(StateEvent::Start { offset: start });
                GroupState::starting_at(start)
            }
            None => {
                let mut s = GroupState::default();
                persist::replay(&mut s, &state_log, 0)?;
                s
            }
        };
        // Reconcile with the dead-letter log: a dead letter written just before a crash,
        // whose state change did not make it, is recorded now (never written twice).
        let dead_letters = if paths.dead_letters.is_dir() {
            let dl = Log::open(&paths.dead_letters, shared.opts.dead_letter_options())?;
            let from = state.dlq_next.max(dl.first_offset());
            let records = if from < dl.next_offset() { Some(dl.iter(from)) } else { None };
            for rec in records.into_iter().flatten() {
                let rec = rec?;
                let at = rec.offset;
                let d = dlq::parse(rec)?;
                let id = match d.redrive_of {
                    Some(x) => ItemId::Redrive(x),
                    None => ItemId::Topic(d.source_offset),
                };
                if let ItemId::Topic(o) = id {
                    state.visit(o)?;
                }
                state.dead_lettered(id, at);
                events.push(StateEvent::DeadLettered { id, dlq_offset: at });
            }
            state.dlq_next = state.dlq_next.max(dl.next_offset());
            Some(dl)
        } else {
            None
        };
        let seed = now_us() ^ (Arc::as_ptr(&shared) as u64).rotate_left(32) ^ 0x9E37_79B9_7F4A_7C15;
        let inner = Arc::new_cyclic(|me| GroupInner {
            topic,
            name: name.to_owned(),
            paths,
            opts,
            state_log,
            core: Mutex::new(Core { state, scan: None, dead_letters, since_snapshot: 0, rng: seed | 1 }),
            snapshot_lock: Mutex::new(()),
            snapshotting: AtomicBool::new(false),
            me: me.clone(),
            poisoned: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        {
            let mut core = inner.core.lock();
            if let Some((log, follower)) = inner.topic.reader()? {
                if follower {
                    log.refresh()?;
                }
                inner.check_retention(&mut core, log.first_offset(), &mut events);
            }
            if inner.opts.order == DeliveryOrder::PerKey {
                inner.rebuild_keys(&mut core)?;
            }
            inner.write_events(&mut core, &events)?;
        }
        // The group's creation and any reconciliation are durable before it is used.
        inner.state_log.sync()?;
        inner.snapshot_now()?;
        Ok(inner)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn check_usable(&self) -> Result<()> {
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
    fn rebuild_keys(&self, core: &mut Core) -> Result<()> {
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

    /// Append state changes to the state log, in order. A failure poisons the group: its
    /// memory is then ahead of its log, and only reopening (replay) is safe.
    fn write_events(&self, core: &mut Core, events: &[StateEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let payloads = events.iter().map(StateEvent::encode).collect::<Result<Vec<_>>>()?;
        let records: Vec<Record<'_>> = payloads.iter().map(|p| Record::new(p)).collect();
        if let Err(e) = self.state_log.append_batch(&records) {
            self.poisoned.store(true, Ordering::Release);
            return Err(e);
        }
        core.since_snapshot += events.len() as u64;
        Ok(())
    }

    /// After an operation, outside the lock: make it durable if asked, wake pollers,
    /// snapshot when due.
    fn finish(&self, out: Outcome) -> Result<()> {
        if out.sync && self.opts.ack_mode == AckMode::Durable {
            if let Err(e) = self.state_log.sync() {
                self.poisoned.store(true, Ordering::Release);
                return Err(e);
            }
        }
        // Waiting pollers are woken after the flush, so that they usually see durable state
        // (a poller that is not waiting may take a released event before it: at-least-once).
        if out.notify {
            self.topic.inner.signal.notify();
        }
        let due = self.core.lock().since_snapshot >= self.opts.snapshot_every;
        if due && !self.snapshotting.swap(true, Ordering::AcqRel) {
            // Why a thread: writing a snapshot costs a few fsyncs; a consumer should not wait
            // for them. Nothing depends on it finishing (the state log holds everything);
            // a failed snapshot is retried after the next `snapshot_every` changes.
            let me = self.me.clone();
            let spawned = std::thread::Builder::new().name("tidelog-snapshot".into()).spawn(move || {
                if let Some(g) = me.upgrade() {
                    let _ = g.snapshot_now();
                    g.snapshotting.store(false, Ordering::Release);
                }
            });
            if spawned.is_err() {
                self.snapshotting.store(false, Ordering::Release);
                self.snapshot_now()?;
            }
        }
        Ok(())
    }

    /// Write a snapshot of the state and drop the state-log segments it covers. Does
    /// nothing once the group is closed: another process may own it by then.
    fn snapshot_now(&self) -> Result<()> {
        let _s = self.snapshot_lock.lock();
        if self.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        self.write_snapshot_locked()
    }

    /// Caller holds `snapshot_lock`.
    fn write_snapshot_locked(&self) -> Result<()> {
        let (bytes, covers) = {
            let mut core = self.core.lock();
            let covers = self.state_log.next_offset();
            let bytes = Snapshot::of(&core.state).to_file_bytes(covers)?;
            core.since_snapshot = 0;
            (bytes, covers)
        };
        // IMPORTANT: the state log is durable up to `covers` before a snapshot claims it.
        // Otherwise, after a power loss, the log could end before `covers` and new state
        // changes would reuse offsets the snapshot says it already holds.
        if let Err(e) = self.state_log.sync() {
            self.poisoned.store(true, Ordering::Release);
            return Err(e);
        }
        persist::write_snapshot(&self.paths.dir, &bytes)?;
        self.state_log.remove_segments_before(covers)?;
        Ok(())
    }

    /// Retention removed events below `first`: drop what the group had not finished and
    /// count it.
    fn check_retention(&self, core: &mut Core, first: u64, events: &mut Vec<StateEvent>) -> bool {
        if first <= core.state.committed() {
            return false;
        }
        let (lost, released) = core.state.lose_before(first);
        events.push(StateEvent::LostToRetention { to: first, lost });
        !released.is_empty()
    }

    /// The event behind `id`: from the topic, or for a redrive from the dead-letter log.
    fn read_item(&self, core: &mut Core, log: &Log, id: ItemId) -> Result<OwnedRecord> {
        match id {
            ItemId::Topic(o) => log.read(o),
            ItemId::Redrive(d) => {
                let dl = self.dead_letter_log(core)?;
                Ok(dlq::parse(dl.read(d)?)?.record)
            }
        }
    }

    fn dead_letter_log(&self, core: &mut Core) -> Result<Log> {
        if let Some(l) = &core.dead_letters {
            return Ok(l.clone());
        }
        let l = Log::open(&self.paths.dead_letters, self.topic.store().opts.dead_letter_options())?;
        core.dead_letters = Some(l.clone());
        Ok(l)
    }

    /// Move `id` to the dead letters. IMPORTANT: the dead-letter record is durable before
    /// the state change that finishes `id` is appended; recovery reconciles the other way
    /// round (see `open`), so a crash in between never writes it twice.
    fn dead_letter(
        &self,
        core: &mut Core,
        log: &Log,
        id: ItemId,
        cause: DeadLetterCause,
        reason: Option<&str>,
        events: &mut Vec<StateEvent>,
    ) -> Result<bool> {
        let record = self.read_item(core, log, id)?;
        let now = now_us();
        let Some(e) = core.state.entries.get(&id) else { return Ok(false) };
        let fallback = match cause {
            DeadLetterCause::Rejected => "rejected".to_owned(),
            DeadLetterCause::MaxDeliveries => format!("delivered {} times without an ack", e.attempts),
        };
        let reason = reason.map(str::to_owned).or_else(|| e.last_reason.clone()).unwrap_or(fallback);
        let meta = DeadLetterMeta {
            topic: self.topic.name(),
            group: &self.name,
            attempts: e.attempts,
            cause,
            reason: &reason,
            first_failure_us: if e.first_failure_us == 0 { now } else { e.first_failure_us },
            last_failure_us: now,
            redrive_of: match id {
                ItemId::Redrive(d) => Some(d),
                ItemId::Topic(_) => None,
            },
        };
        let dl = self.dead_letter_log(core)?;
        let at = dlq::append(&dl, &record, &meta)?;
        events.push(StateEvent::DeadLettered { id, dlq_offset: at });
        Ok(core.state.dead_lettered(id, at).is_some())
    }

    fn outstanding(&self, core: &Core) -> usize {
        core.state.entries.len()
    }

    /// Hand out up to `max` deliveries now. Returns them and when something may become
    /// deliverable without an append (a retry due, a lease expiring).
    fn collect(&self, max: usize) -> Result<(Vec<Delivery>, Option<Instant>, bool, Outcome)> {
        let mut core = self.core.lock();
        let now = Instant::now();
        let now_wall = now_us();
        let mut out = Vec::new();
        let mut events = Vec::new();
        let mut outcome = Outcome::default();
        let Some((log, follower)) = self.topic.reader()? else { return Ok((out, None, true, outcome)) };
        if follower {
            log.refresh()?;
        }
        outcome.notify |= self.check_retention(&mut core, log.first_offset(), &mut events);
        core.state.expire_leases(now, now_wall);
        let deadline = instant_after(now, self.opts.lease);
        let result = self.collect_inner(&mut core, &log, follower, max, now_wall, deadline, &mut out, &mut events);
        // Whatever was handed out or dead-lettered is recorded, even if a later read failed.
        self.write_events(&mut core, &events)?;
        outcome.sync |= events.iter().any(|e| matches!(e, StateEvent::DeadLettered { .. }));
        if let Err(e) = result {
            if out.is_empty() {
                drop(core);
                self.finish(outcome)?;
                return Err(e);
            }
        }
        let wake = {
            let s = &core.state;
            let due = s.scheduled.first().map(|&(due, _)| {
                if due <= now_wall {
                    now
                } else {
                    instant_after(now, Duration::from_micros(due - now_wall))
                }
            });
            let lease = s.leases.first().map(|&(d, _)| d);
            match (due, lease) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        Ok((out, wake, follower, outcome))
    }

    #[allow(clippy::too_many_arguments)]
    fn collect_inner(
        &self,
        core: &mut Core,
        log: &Log,
        follower: bool,
        max: usize,
        now_wall: u64,
        deadline: Instant,
        out: &mut Vec<Delivery>,
        events: &mut Vec<StateEvent>,
    ) -> Result<()> {
        // 1. Redeliveries and due retries, earliest due first (then lowest offset).
        while out.len() < max {
            let Some(id) = core.state.pop_due(now_wall) else { break };
            let attempts = core.state.entries.get(&id).map_or(0, |e| e.attempts);
            if attempts >= self.opts.max_deliveries {
                if let Err(e) = self.dead_letter(core, log, id, DeadLetterCause::MaxDeliveries, None, events) {
                    // Not moved: it stays due, to be tried again.
                    core.state.set_status(id, Status::Scheduled { due_us: 0 });
                    return Err(e);
                }
                continue;
            }
            let record = match self.read_item(core, log, id) {
                Ok(r) => r,
                Err(Error::OffsetOutOfRange { offset, first, .. })
                    if offset < first && matches!(id, ItemId::Topic(_)) =>
                {
                    // Retention removed it between our check and the read.
                    self.check_retention(core, first, events);
                    continue;
                }
                Err(e) => {
                    // Put it back; it stays due.
                    core.state.set_status(id, Status::Scheduled { due_us: 0 });
                    return Err(e);
                }
            };
            if let Some((lease, attempt)) = core.state.lease(id, deadline) {
                events.push(StateEvent::Delivered { id, attempt });
                out.push(Delivery { id, lease, attempt, deadline, record });
            }
        }
        // 2. New events, in offset order.
        let end = log.next_offset();
        while out.len() < max && core.state.cursor < end && self.outstanding(core) < self.opts.max_outstanding as usize
        {
            let cursor_pos = core.state.cursor;
            let stale = match &core.scan {
                Some((c, f)) => *f != follower || c.position() != cursor_pos,
                None => true,
            };
            if stale {
                let reuse = matches!(&core.scan, Some((_, f)) if *f == follower);
                if reuse {
                    if let Some((c, _)) = core.scan.as_mut() {
                        c.seek(cursor_pos);
                    }
                } else {
                    core.scan = Some((log.cursor(cursor_pos), follower));
                }
            }
            let Some((cursor, _)) = core.scan.as_mut() else { break };
            let record = match cursor.next() {
                Ok(Some(r)) => r.to_owned(),
                Ok(None) => break,
                Err(Error::OffsetOutOfRange { offset, first, .. }) if offset < first => {
                    self.check_retention(core, first, events);
                    continue;
                }
                Err(e) => {
                    core.scan = None;
                    return Err(e);
                }
            };
            let offset = record.offset;
            core.state.visit(offset)?;
            let id = ItemId::Topic(offset);
            if self.opts.order == DeliveryOrder::PerKey {
                if let Some(k) = &record.key {
                    if !core.state.enqueue_key(id, k.clone()) {
                        continue;
                    }
                }
            }
            if let Some((lease, attempt)) = core.state.lease(id, deadline) {
                events.push(StateEvent::Delivered { id, attempt });
                out.push(Delivery { id, lease, attempt, deadline, record });
            }
        }
        Ok(())
    }

    fn poll(&self, max: usize, timeout: Duration) -> Result<Vec<Delivery>> {
        self.check_usable()?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let start = Instant::now();
        let deadline = instant_after(start, timeout);
        let mut nap = Duration::from_micros(50);
        loop {
            self.check_usable()?;
            // Read before looking for work: a publish after this point changes it.
            let seen = self.topic.inner.signal.generation();
            let (out, wake, follower, outcome) = self.collect(max)?;
            self.finish(outcome)?;
            if !out.is_empty() {
                return Ok(out);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(out);
            }
            let mut until = deadline;
            if let Some(w) = wake {
                until = until.min(w.max(now));
            }
            if follower {
                // Appends by another process cannot signal us: look again soon.
                until = until.min(instant_after(now, nap));
                nap = (nap * 2).min(Duration::from_millis(1));
            }
            if until > now {
                self.topic.inner.signal.wait_until(seen, until);
            }
        }
    }

    fn ack_batch(&self, ds: &[Delivery]) -> Result<()> {
        self.check_usable()?;
        let mut first_lost = None;
        let mut outcome = Outcome { sync: true, notify: false };
        {
            let mut core = self.core.lock();
            let mut events = Vec::with_capacity(ds.len());
            let at_limit = self.outstanding(&core) >= self.opts.max_outstanding as usize;
            for d in ds {
                if !core.state.holds(d.id, d.lease) {
                    first_lost.get_or_insert(Error::LeaseLost { offset: d.offset(), attempt: d.attempt });
                    continue;
                }
                events.push(StateEvent::Acked { id: d.id });
                outcome.notify |= core.state.finish(d.id).is_some();
            }
            outcome.notify |= at_limit;
            self.write_events(&mut core, &events)?;
        }
        self.finish(outcome)?;
        first_lost.map_or(Ok(()), Err)
    }

    fn nack(&self, d: &Delivery, delay: Option<Duration>, reason: &str) -> Result<()> {
        self.check_usable()?;
        let outcome = {
            let mut core = self.core.lock();
            if !core.state.holds(d.id, d.lease) {
                return Err(Error::LeaseLost { offset: d.offset(), attempt: d.attempt });
            }
            let reason = dlq::clip_reason(reason);
            let attempts = core.state.entries.get(&d.id).map_or(0, |e| e.attempts);
            let mut events = Vec::new();
            let mut outcome = Outcome { sync: true, notify: true };
            if attempts >= self.opts.max_deliveries {
                let log = self.topic_log()?;
                outcome.notify = self.dead_letter(
                    &mut core,
                    &log,
                    d.id,
                    DeadLetterCause::MaxDeliveries,
                    Some(&reason),
                    &mut events,
                )?;
            } else {
                let now = now_us();
                let r = core.random();
                let delay = delay.unwrap_or_else(|| self.opts.backoff.delay(attempts, r));
                let due = now.saturating_add(delay.as_micros().min(u64::MAX as u128) as u64).max(1);
                core.state.schedule_retry(d.id, due, now, reason.clone());
                events.push(StateEvent::Nacked { id: d.id, attempt: attempts, retry_at_us: due, at_us: now, reason });
            }
            self.write_events(&mut core, &events)?;
            outcome
        };
        self.finish(outcome)
    }

    fn reject(&self, d: &Delivery, reason: &str) -> Result<()> {
        self.check_usable()?;
        let outcome = {
            let mut core = self.core.lock();
            if !core.state.holds(d.id, d.lease) {
                return Err(Error::LeaseLost { offset: d.offset(), attempt: d.attempt });
            }
            let reason = dlq::clip_reason(reason);
            let log = self.topic_log()?;
            let mut events = Vec::new();
            let notify =
                self.dead_letter(&mut core, &log, d.id, DeadLetterCause::Rejected, Some(&reason), &mut events)?;
            self.write_events(&mut core, &events)?;
            Outcome { sync: true, notify }
        };
        self.finish(outcome)
    }

    fn topic_log(&self) -> Result<Log> {
        match self.topic.reader()? {
            Some((log, _)) => Ok(log),
            None => Err(Error::NotFound { path: self.topic.dir().to_path_buf() }),
        }
    }

    fn extend_lease(&self, d: &Delivery, by: Duration) -> Result<Instant> {
        self.check_usable()?;
        let mut core = self.core.lock();
        match core.state.entries.get(&d.id).map(|e| e.status) {
            Some(Status::InFlight { lease, .. }) if lease == d.lease => {
                let deadline = instant_after(Instant::now(), by);
                core.state.set_status(d.id, Status::InFlight { lease, deadline });
                Ok(deadline)
            }
            _ => Err(Error::LeaseLost { offset: d.offset(), attempt: d.attempt }),
        }
    }

    fn redrive(&self, which: Option<u64>) -> Result<u64> {
        self.check_usable()?;
        let n = {
            let mut core = self.core.lock();
            let targets: Vec<u64> = match which {
                Some(d) => {
                    if !core.state.parked.contains(&d) {
                        return Err(Error::UnknownDeadLetter { dlq_offset: d });
                    }
                    vec![d]
                }
                None => core.state.parked.iter().copied().collect(),
            };
            if targets.is_empty() {
                return Ok(0);
            }
            let dl = self.dead_letter_log(&mut core)?;
            let mut events = Vec::with_capacity(targets.len());
            for d in &targets {
                let source_offset = dlq::parse(dl.read(*d)?)?.source_offset;
                if core.state.redrive(*d, source_offset) {
                    events.push(StateEvent::Redriven { dlq_offset: *d, source_offset });
                }
            }
            self.write_events(&mut core, &events)?;
            events.len() as u64
        };
        self.finish(Outcome { sync: true, notify: true })?;
        Ok(n)
    }

    fn lag(&self) -> Result<GroupLag> {
        let (first, end) = match self.topic.reader()? {
            Some((log, follower)) => {
                if follower {
                    log.refresh()?;
                }
                (log.first_offset(), log.next_offset())
            }
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
        let s = &core.state;
        let (in_flight, scheduled_retries, held_back, redriven) = s.counts();
        Ok(GroupLag {
            topic: self.topic.name().to_owned(),
            group: self.name.clone(),
            committed: s.committed(),
            first_offset: first,
            end_offset: end,
            unconsumed: s.unconsumed(end),
            in_flight,
            scheduled_retries,
            held_back,
            redriven,
            dead_letters: s.parked.len() as u64,
            lost_to_retention: s.lost_to_retention,
            live: true,
        })
    }

    fn dead_letters(&self) -> Result<Vec<DeadLetter>> {
        let (dl, parked, redriving) = {
            let core = self.core.lock();
            let redriving: Vec<u64> = core
                .state
                .entries
                .keys()
                .filter_map(|id| match id {
                    ItemId::Redrive(d) => Some(*d),
                    ItemId::Topic(_) => None,
                })
                .collect();
            (core.dead_letters.clone(), core.state.parked.clone(), redriving)
        };
        let Some(dl) = dl else { return Ok(Vec::new()) };
        list_dead_letters(&dl, |d| {
            if parked.contains(&d) {
                DeadLetterStatus::Parked
            } else if redriving.contains(&d) {
                DeadLetterStatus::Redriven
            } else {
                DeadLetterStatus::Settled
            }
        })
    }

    fn close(&self) -> Result<()> {
        // IMPORTANT: under the snapshot lock, so that no background snapshot runs after the
        // group is released (it could overwrite the next owner's snapshot).
        let _s = self.snapshot_lock.lock();
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let snap = if self.poisoned.load(Ordering::Acquire) { Ok(()) } else { self.write_snapshot_locked() };
        let dl = self.core.lock().dead_letters.take();
        let a = self.state_log.clone().close();
        let b = dl.map_or(Ok(()), Log::close);
        snap.and(a).and(b)
    }
}

impl Drop for GroupInner {
    fn drop(&mut self) {
        // Best effort: an explicit `close` reports errors; a drop cannot.
        let _ = self.close();
    }
}

fn list_dead_letters(dl: &Log, status: impl Fn(u64) -> DeadLetterStatus) -> Result<Vec<DeadLetter>> {
    let mut out = Vec::new();
    for rec in dl.iter(dl.first_offset()) {
        let mut d = dlq::parse(rec?)?;
        d.status = status(d.dlq_offset);
        out.push(d);
    }
    Ok(out)
}

impl Group {
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
    /// or the delivery was settled already.
    pub fn ack(&self, d: &Delivery) -> Result<()> {
        self.inner.ack_batch(std::slice::from_ref(d))
    }

    /// Acknowledge several deliveries with one state-log append and one flush. Every
    /// delivery still held is acked; if some were not, returns [`Error::LeaseLost`] for the
    /// first of them after acking the others.
    pub fn ack_batch(&self, ds: &[Delivery]) -> Result<()> {
        self.inner.ack_batch(ds)
    }

    /// The delivery failed: deliver the event again after the group's backoff. If it has
    /// reached [`GroupOptions::max_deliveries`], it goes to the dead letters instead.
    /// `reason` (at most [`MAX_REASON_BYTES`] kept) is stored with the event.
    pub fn nack(&self, d: &Delivery, reason: &str) -> Result<()> {
        self.inner.nack(d, None, reason)
    }

    /// Like [`Group::nack`], with an explicit delay instead of the backoff.
    pub fn nack_after(&self, d: &Delivery, delay: Duration, reason: &str) -> Result<()> {
        self.inner.nack(d, Some(delay), reason)
    }

    /// Give up on the event at once: it goes to the group's dead letters.
    pub fn reject(&self, d: &Delivery, reason: &str) -> Result<()> {
        self.inner.reject(d, reason)
    }

    /// Extend a delivery's lease to `by` from now; returns the new deadline.
    pub fn extend_lease(&self, d: &Delivery, by: Duration) -> Result<Instant> {
        self.inner.extend_lease(d, by)
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

    /// Snapshot the state, close the state and dead-letter logs and release the group's lock.
    /// Every clone of this handle is closed; in-flight deliveries are delivered again by the
    /// next owner.
    pub fn close(self) -> Result<()> {
        self.inner.close()
    }
}

/// Lag of a group that is not open in this process, from its persisted state.
pub(crate) fn persisted_lag(topic: &Topic, group: &str) -> Result<GroupLag> {
    let shared = topic.store().clone();
    let paths = GroupPaths::new(&shared.groups_root(), topic.name(), group);
    if !paths.dir.is_dir() {
        return Err(Error::NotFound { path: paths.dir });
    }
    let mut s = persist::load_view(&paths.dir, &shared.opts.state_options(None))?;
    let (first, end) = (topic.first_offset(), topic.next_offset());
    // Events retention removed that the group has not noticed yet count as lost now: the
    // group skips them when it next runs.
    if first > s.committed() {
        s.lose_before(first);
    }
    let mut in_flight = 0;
    let mut retries = 0;
    let mut redriven = 0;
    for (id, e) in &s.entries {
        if e.unsettled {
            in_flight += 1;
        } else if matches!(e.status, Status::Scheduled { due_us } if due_us > 0) {
            retries += 1;
        }
        if matches!(id, ItemId::Redrive(_)) {
            redriven += 1;
        }
    }
    // Dead letters written after the state last recorded one (a crash in between) count too.
    let extra = match Log::open_read_only(&paths.dead_letters, shared.opts.dead_letter_options()) {
        Ok(dl) => dl.next_offset().saturating_sub(s.dlq_next),
        Err(Error::NotFound { .. }) => 0,
        Err(e) => return Err(e),
    };
    Ok(GroupLag {
        topic: topic.name().to_owned(),
        group: group.to_owned(),
        committed: s.committed(),
        first_offset: first,
        end_offset: end,
        unconsumed: s.unconsumed(end),
        in_flight,
        scheduled_retries: retries,
        held_back: 0,
        redriven,
        dead_letters: s.parked.len() as u64 + extra,
        lost_to_retention: s.lost_to_retention,
        live: false,
    })
}

/// Dead letters of a group that is not open in this process.
pub(crate) fn persisted_dead_letters(topic: &Topic, group: &str) -> Result<Vec<DeadLetter>> {
    let shared = topic.store().clone();
    let paths = GroupPaths::new(&shared.groups_root(), topic.name(), group);
    if !paths.dir.is_dir() {
        return Err(Error::NotFound { path: paths.dir });
    }
    let s = persist::load_view(&paths.dir, &shared.opts.state_options(None))?;
    let dl = match Log::open_read_only(&paths.dead_letters, shared.opts.dead_letter_options()) {
        Ok(dl) => dl,
        Err(Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    list_dead_letters(&dl, |d| {
        if s.parked.contains(&d) || d >= s.dlq_next {
            DeadLetterStatus::Parked
        } else if s.entries.contains_key(&ItemId::Redrive(d)) {
            DeadLetterStatus::Redriven
        } else {
            DeadLetterStatus::Settled
        }
    })
}

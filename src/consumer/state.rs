//! The consumer-group state machine, free of I/O: which events are done, which are leased,
//! which wait for a retry, which are held back behind their key.
//!
//! Vocabulary. The *cursor* is the first offset never looked at. Every offset below it is
//! either *done* (acked, dead-lettered, or lost to retention) or has an [`Entry`]. The
//! *committed position* is the lowest offset with an entry, or the cursor when there is
//! none: everything below it is done. Redriven dead letters are entries too
//! ([`ItemId::Redrive`]) but live outside the topic's offset space and never hold the
//! committed position back.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::CorruptionKind;

/// What a pending delivery refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) enum ItemId {
    /// An event of the topic, by offset.
    Topic(u64),
    /// A redriven dead letter, by its offset in the group's dead-letter log.
    Redrive(u64),
}

/// Where a pending item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Deliverable once the wall clock reaches `due_us` (0: at once).
    Scheduled { due_us: u64 },
    /// Leased to a consumer until `deadline`.
    InFlight { lease: u64, deadline: Instant },
    /// Per-key mode: waits for an earlier event with the same key.
    Held,
}

/// One event not yet done.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Offset in the topic (for a redrive: the original offset).
    pub source_offset: u64,
    /// Deliveries so far (in this life: a redrive starts again at 0).
    pub attempts: u32,
    pub status: Status,
    /// When a nack scheduled the next try (0: none); kept while the entry is held.
    pub retry_due_us: u64,
    /// The lease that expired without being settled, if the event was not delivered since:
    /// its holder may still ack it.
    pub expired_lease: Option<u64>,
    /// Delivered and neither acked nor nacked since (what a reader of the persisted state
    /// counts as in flight).
    pub unsettled: bool,
    /// Per-key mode: the key this entry is queued under.
    pub key: Option<Vec<u8>>,
    pub first_failure_us: u64,
    pub last_failure_us: u64,
    pub last_reason: Option<String>,
}

impl Entry {
    pub(crate) fn new(source_offset: u64) -> Entry {
        Entry {
            source_offset,
            attempts: 0,
            status: Status::Scheduled { due_us: 0 },
            retry_due_us: 0,
            expired_lease: None,
            unsettled: false,
            key: None,
            first_failure_us: 0,
            last_failure_us: 0,
            last_reason: None,
        }
    }

    fn fail(&mut self, at_us: u64, reason: String) {
        if self.first_failure_us == 0 {
            self.first_failure_us = at_us;
        }
        self.last_failure_us = at_us;
        self.last_reason = Some(reason);
    }
}

/// Longest run of offsets the persisted state may skip over in one step (events that were
/// looked at but not recorded: held back per key, at most `max_held_back` of them).
/// Larger jumps mean damaged state.
pub(crate) const MAX_GAP: u64 = 1 << 20;

/// A state change that does not fit the state it is applied to: the stored change is
/// damaged. The state knows no files; whoever applies a stored change knows where it was
/// stored and reports it there ([`StateError::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StateError {
    /// The change names topic offset `offset`, more than [`MAX_GAP`] past the cursor.
    FarPastCursor { offset: u64, cursor: u64 },
    /// A range of offsets without records that ends where it starts, or before.
    EmptyRange { from: u64, to: u64 },
}

impl StateError {
    /// What is wrong with the stored change.
    pub(crate) fn kind(self) -> CorruptionKind {
        match self {
            StateError::FarPastCursor { .. } => {
                CorruptionKind::BadField("state change refers to an offset far past the cursor")
            }
            StateError::EmptyRange { .. } => CorruptionKind::BadField("range of offsets without records is empty"),
        }
    }
}

/// The state of one consumer group.
#[derive(Debug, Default)]
pub(crate) struct GroupState {
    pub cursor: u64,
    pub entries: BTreeMap<ItemId, Entry>,
    /// `(due_us, id)` of every `Scheduled` entry.
    pub scheduled: BTreeSet<(u64, ItemId)>,
    /// `(deadline, id)` of every `InFlight` entry.
    pub leases: BTreeSet<(Instant, ItemId)>,
    /// Per-key mode: per key, the queue of pending items; the front one is the only one not
    /// `Held`.
    pub keys: HashMap<Vec<u8>, VecDeque<ItemId>>,
    /// Dead letters waiting in the dead-letter log (not redriven).
    pub parked: BTreeSet<u64>,
    /// Every dead-letter record below this offset is reflected in this state.
    pub dlq_next: u64,
    /// Dead-letter records at or after this offset are in format 2; `None` until a release
    /// that writes format 2 opened the group (every record is then in format 1).
    pub dead_letter_format_from: Option<u64>,
    /// Events removed by size or age retention before this group finished them.
    pub lost_to_retention: u64,
    /// Dead-letter records below this offset were purged: they are neither listed nor
    /// redriven, and their segments may be removed.
    pub dlq_purged_below: u64,
    next_lease: u64,
    /// Entries whose status is `Held`.
    held: usize,
}

impl GroupState {
    /// A group starting at `offset`.
    pub(crate) fn starting_at(offset: u64) -> GroupState {
        GroupState { cursor: offset, ..GroupState::default() }
    }

    /// Entries held back behind an earlier item of their key.
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    /// Lowest offset not done.
    pub(crate) fn committed(&self) -> u64 {
        match self.entries.range(ItemId::Topic(0)..=ItemId::Topic(u64::MAX)).next() {
            Some((ItemId::Topic(o), _)) => (*o).min(self.cursor),
            _ => self.cursor,
        }
    }

    /// Make sure `offset` has been looked at: offsets between the cursor and it become
    /// pending entries (looked at, never delivered: held back before a restart). A jump of
    /// more than [`MAX_GAP`] cannot come from held-back events: the change is damaged.
    pub(crate) fn visit(&mut self, offset: u64) -> Result<(), StateError> {
        if offset < self.cursor {
            return Ok(());
        }
        if offset - self.cursor > MAX_GAP {
            return Err(StateError::FarPastCursor { offset, cursor: self.cursor });
        }
        for o in self.cursor..=offset {
            self.entries.insert(ItemId::Topic(o), Entry::new(o));
            self.scheduled.insert((0, ItemId::Topic(o)));
        }
        self.cursor = offset.saturating_add(1);
        Ok(())
    }

    /// Topic offsets in `[from, to)` hold no record (compaction removed them): pending
    /// entries among them are done, and the cursor passes them. Offsets between the cursor
    /// and `from` were looked at without being recorded (held back by key) and become
    /// pending, as with [`visit`](GroupState::visit); the range itself creates nothing, so a
    /// gap of any length costs nothing. Returns the items of keys that became deliverable.
    pub(crate) fn skip(&mut self, from: u64, to: u64) -> Result<Vec<ItemId>, StateError> {
        if to <= from {
            return Err(StateError::EmptyRange { from, to });
        }
        if from > self.cursor {
            self.visit(from - 1)?;
        }
        let (_, released) = self.finish_topic_range(from, to);
        self.cursor = self.cursor.max(to);
        Ok(released)
    }

    /// Finish every pending topic entry in `[from, to)`. Returns how many there were and
    /// the items of their keys that became deliverable.
    fn finish_topic_range(&mut self, from: u64, to: u64) -> (u64, Vec<ItemId>) {
        if to <= from {
            return (0, Vec::new());
        }
        let gone: Vec<ItemId> = self.entries.range(ItemId::Topic(from)..ItemId::Topic(to)).map(|(id, _)| *id).collect();
        let mut released = Vec::new();
        for id in &gone {
            if let Some(next) = self.finish(*id) {
                released.push(next);
            }
        }
        released.retain(|id| self.entries.contains_key(id));
        (gone.len() as u64, released)
    }

    fn unindex(&mut self, id: ItemId) {
        if let Some(e) = self.entries.get(&id) {
            match e.status {
                Status::Scheduled { due_us } => {
                    self.scheduled.remove(&(due_us, id));
                }
                Status::InFlight { deadline, .. } => {
                    self.leases.remove(&(deadline, id));
                }
                Status::Held => self.held -= 1,
            }
        }
    }

    /// Change an entry's status, keeping the indexes in step.
    pub(crate) fn set_status(&mut self, id: ItemId, status: Status) {
        self.unindex(id);
        let Some(e) = self.entries.get_mut(&id) else { return };
        e.status = status;
        match status {
            Status::Scheduled { due_us } => {
                self.scheduled.insert((due_us, id));
            }
            Status::InFlight { deadline, .. } => {
                self.leases.insert((deadline, id));
            }
            Status::Held => self.held += 1,
        }
    }

    /// Remove an entry for good (done). Returns the next item of its key that becomes
    /// deliverable, if any.
    pub(crate) fn finish(&mut self, id: ItemId) -> Option<ItemId> {
        self.unindex(id);
        let entry = self.entries.remove(&id)?;
        let key = entry.key?;
        let queue = self.keys.get_mut(&key)?;
        let was_front = queue.front() == Some(&id);
        queue.retain(|x| *x != id);
        if queue.is_empty() {
            self.keys.remove(&key);
            return None;
        }
        if !was_front {
            return None;
        }
        let next = *queue.front()?;
        let due_us = self.entries.get(&next).map_or(0, |e| e.retry_due_us);
        if self.entries.get(&next).is_some_and(|e| e.status == Status::Held) {
            self.set_status(next, Status::Scheduled { due_us });
        }
        Some(next)
    }

    /// Per-key mode: queue `id` under `key`. Returns true if it is the front (deliverable),
    /// false if it is held behind an earlier item.
    pub(crate) fn enqueue_key(&mut self, id: ItemId, key: Vec<u8>) -> bool {
        let queue = self.keys.entry(key.clone()).or_default();
        queue.push_back(id);
        let front = queue.len() == 1;
        if let Some(e) = self.entries.get_mut(&id) {
            e.key = Some(key);
        }
        if !front {
            self.set_status(id, Status::Held);
        }
        front
    }

    /// Leases whose deadline passed become deliverable again at once.
    pub(crate) fn expire_leases(&mut self, now: Instant, now_us: u64) -> usize {
        let mut n = 0;
        while let Some(&(deadline, id)) = self.leases.first() {
            if deadline > now {
                break;
            }
            let lease = match self.entries.get(&id).map(|e| e.status) {
                Some(Status::InFlight { lease, .. }) => lease,
                _ => {
                    self.leases.remove(&(deadline, id));
                    continue;
                }
            };
            self.set_status(id, Status::Scheduled { due_us: 0 });
            if let Some(e) = self.entries.get_mut(&id) {
                e.expired_lease = Some(lease);
                e.unsettled = false;
                e.fail(now_us, "lease expired before ack".into());
            }
            n += 1;
        }
        n
    }

    /// The first scheduled item due at `now_us`, removed from the schedule.
    pub(crate) fn pop_due(&mut self, now_us: u64) -> Option<ItemId> {
        let &(due, id) = self.scheduled.first()?;
        if due > now_us {
            return None;
        }
        self.scheduled.remove(&(due, id));
        Some(id)
    }

    /// Lease `id` to a consumer: returns `(lease, attempt)`.
    pub(crate) fn lease(&mut self, id: ItemId, deadline: Instant) -> Option<(u64, u32)> {
        self.next_lease += 1;
        let lease = self.next_lease;
        let attempt = {
            let e = self.entries.get_mut(&id)?;
            e.attempts = e.attempts.saturating_add(1);
            e.expired_lease = None;
            e.unsettled = true;
            e.retry_due_us = 0;
            e.attempts
        };
        self.set_status(id, Status::InFlight { lease, deadline });
        Some((lease, attempt))
    }

    /// True if the holder of `lease` may still settle `id`: the lease is current, or it
    /// expired and nobody has been given the event since.
    pub(crate) fn holds(&self, id: ItemId, lease: u64) -> bool {
        match self.entries.get(&id) {
            Some(e) => match e.status {
                Status::InFlight { lease: l, .. } => l == lease,
                Status::Scheduled { .. } => e.expired_lease == Some(lease),
                Status::Held => false,
            },
            None => false,
        }
    }

    /// The holder of `lease` keeps `id` until `deadline` (the caller checked [`Self::holds`]):
    /// a lease that expired without the event being delivered again is taken back.
    pub(crate) fn extend(&mut self, id: ItemId, lease: u64, deadline: Instant) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.expired_lease = None;
            e.unsettled = true;
        }
        self.set_status(id, Status::InFlight { lease, deadline });
    }

    /// A retry of `id` waiting for its due time becomes due at once. Returns false, changing
    /// nothing, if `id` is not waiting for a retry.
    pub(crate) fn retry_now(&mut self, id: ItemId) -> bool {
        self.reschedule(id, 0)
    }

    /// True if `id` waits for a retry (scheduled after a nack, or held behind its key with a
    /// retry time).
    pub(crate) fn is_retrying(&self, id: ItemId) -> bool {
        self.entries.get(&id).is_some_and(|e| match e.status {
            Status::Scheduled { due_us } => due_us > 0,
            Status::Held => e.retry_due_us > 0,
            Status::InFlight { .. } => false,
        })
    }

    /// A retry of `id` waiting for its due time is due at `due_us` instead (0: at once).
    /// Returns false, changing nothing, if `id` is not waiting for a retry.
    pub(crate) fn reschedule(&mut self, id: ItemId, due_us: u64) -> bool {
        if !self.is_retrying(id) {
            return false;
        }
        let Some(e) = self.entries.get_mut(&id) else { return false };
        e.retry_due_us = due_us;
        // Per-key: a held one stays behind its key, due then when released.
        if e.status != Status::Held {
            self.set_status(id, Status::Scheduled { due_us });
        }
        true
    }

    /// The delivery of `id` is given back without counting as an attempt: it is due again at
    /// once with `attempts` deliveries counted (one fewer than the delivery it gives back).
    pub(crate) fn release(&mut self, id: ItemId, attempts: u32) {
        let Some(e) = self.entries.get_mut(&id) else { return };
        e.attempts = attempts;
        e.expired_lease = None;
        e.unsettled = false;
        e.retry_due_us = 0;
        if e.status != Status::Held {
            self.set_status(id, Status::Scheduled { due_us: 0 });
        }
    }

    /// The group's position is set to `to`: every pending topic event is dropped (in flight,
    /// waiting for a retry or held back: settling one of them afterwards is a lost lease),
    /// and the next new event is the one at `to`. Redriven dead letters and parked ones stay.
    pub(crate) fn reset(&mut self, to: u64) {
        let topic: Vec<ItemId> =
            self.entries.range(ItemId::Topic(0)..=ItemId::Topic(u64::MAX)).map(|(id, _)| *id).collect();
        for id in topic {
            self.unindex(id);
            self.entries.remove(&id);
        }
        // Only topic events are queued by key.
        self.keys.clear();
        self.cursor = to;
    }

    /// Dead-letter records below `below` are purged: none of them is parked any more.
    pub(crate) fn purge_dead_letters(&mut self, below: u64) {
        self.parked.retain(|d| *d >= below);
        self.dlq_purged_below = self.dlq_purged_below.max(below);
        self.dlq_next = self.dlq_next.max(below);
    }

    /// Record a failed attempt and schedule the next one.
    pub(crate) fn schedule_retry(&mut self, id: ItemId, due_us: u64, at_us: u64, reason: String) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.fail(at_us, reason);
            e.retry_due_us = due_us;
            e.expired_lease = None;
            e.unsettled = false;
        }
        let held = self.entries.get(&id).is_some_and(|e| e.status == Status::Held);
        if !held {
            self.set_status(id, Status::Scheduled { due_us });
        }
    }

    /// A dead letter was written for `id` at `dlq_offset`.
    pub(crate) fn dead_lettered(&mut self, id: ItemId, dlq_offset: u64) -> Option<ItemId> {
        self.parked.insert(dlq_offset);
        self.dlq_next = self.dlq_next.max(dlq_offset.saturating_add(1));
        self.finish(id)
    }

    /// A dead-letter record at `dlq_offset` that finishes no pending item (its event was
    /// done already, or it names no event of this group): it is parked.
    pub(crate) fn dead_letter_found(&mut self, dlq_offset: u64) {
        self.parked.insert(dlq_offset);
        self.dlq_next = self.dlq_next.max(dlq_offset.saturating_add(1));
    }

    /// A parked dead letter goes back to the group. Returns false if it is not parked.
    pub(crate) fn redrive(&mut self, dlq_offset: u64, source_offset: u64) -> bool {
        if !self.parked.remove(&dlq_offset) {
            return false;
        }
        let id = ItemId::Redrive(dlq_offset);
        self.entries.insert(id, Entry::new(source_offset));
        self.set_status(id, Status::Scheduled { due_us: 0 });
        true
    }

    /// Retention removed every event below `first`: drop what this group had not finished.
    /// Returns how many events were lost and the items of their keys that became deliverable.
    pub(crate) fn lose_before(&mut self, first: u64) -> (u64, Vec<ItemId>) {
        let mut lost = first.saturating_sub(self.cursor);
        self.cursor = self.cursor.max(first);
        let (gone, released) = self.finish_topic_range(0, first);
        lost += gone;
        self.lost_to_retention += lost;
        (lost, released)
    }

    /// Topic events at or after the committed position that are not done, given the topic's
    /// end. Offsets past the cursor count whether or not compaction left a record there (the
    /// group has not looked yet).
    pub(crate) fn unconsumed(&self, end: u64) -> u64 {
        let topic_entries = self.entries.range(ItemId::Topic(0)..=ItemId::Topic(u64::MAX)).count() as u64;
        end.saturating_sub(self.cursor) + topic_entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn committed_is_lowest_unfinished() {
        let mut s = GroupState::starting_at(10);
        assert_eq!(s.committed(), 10);
        s.visit(14).unwrap();
        assert_eq!(s.cursor, 15);
        assert_eq!(s.committed(), 10);
        s.finish(ItemId::Topic(12));
        s.finish(ItemId::Topic(10));
        assert_eq!(s.committed(), 11);
        s.finish(ItemId::Topic(11));
        assert_eq!(s.committed(), 13);
        s.finish(ItemId::Topic(13));
        s.finish(ItemId::Topic(14));
        assert_eq!(s.committed(), 15);
        // A redrive never holds the committed position back.
        s.parked.insert(3);
        assert!(s.redrive(3, 2));
        assert_eq!(s.committed(), 15);
        assert!(!s.redrive(3, 2));
    }

    #[test]
    fn leases_expire_and_old_holder_may_settle_until_redelivered() {
        let mut s = GroupState::starting_at(0);
        s.visit(0).unwrap();
        let now = Instant::now();
        let (lease, attempt) = s.lease(ItemId::Topic(0), now + Duration::from_millis(5)).unwrap();
        assert_eq!(attempt, 1);
        assert!(s.holds(ItemId::Topic(0), lease));
        assert_eq!(s.expire_leases(now, 1), 0);
        assert_eq!(s.expire_leases(now + Duration::from_millis(6), 1), 1);
        assert!(s.holds(ItemId::Topic(0), lease));
        assert_eq!(s.pop_due(1), Some(ItemId::Topic(0)));
        let (lease2, attempt) = s.lease(ItemId::Topic(0), now + Duration::from_secs(1)).unwrap();
        assert_eq!(attempt, 2);
        assert!(!s.holds(ItemId::Topic(0), lease));
        assert!(s.holds(ItemId::Topic(0), lease2));
    }

    #[test]
    fn key_queue_releases_next_on_finish_and_loss() {
        let mut s = GroupState::starting_at(0);
        s.visit(3).unwrap();
        for o in 0..4 {
            s.set_status(ItemId::Topic(o), Status::Scheduled { due_us: 0 });
        }
        assert!(s.enqueue_key(ItemId::Topic(0), b"a".to_vec()));
        assert!(!s.enqueue_key(ItemId::Topic(1), b"a".to_vec()));
        assert!(s.enqueue_key(ItemId::Topic(2), b"b".to_vec()));
        assert!(!s.enqueue_key(ItemId::Topic(3), b"a".to_vec()));
        assert_eq!(s.entries[&ItemId::Topic(1)].status, Status::Held);
        assert_eq!(s.finish(ItemId::Topic(0)), Some(ItemId::Topic(1)));
        assert_eq!(s.entries[&ItemId::Topic(1)].status, Status::Scheduled { due_us: 0 });
        assert_eq!(s.entries[&ItemId::Topic(3)].status, Status::Held);
        let (lost, released) = s.lose_before(2);
        assert_eq!(lost, 1);
        assert_eq!(released, vec![ItemId::Topic(3)]);
        assert_eq!(s.lost_to_retention, 1);
        assert!(s.visit(5 + MAX_GAP).is_err());
    }

    #[test]
    fn a_skipped_range_passes_the_cursor_finishes_its_entries_and_creates_none() {
        let mut s = GroupState::starting_at(10);
        // A gap far longer than MAX_GAP, proven by the cursor: not damage, and nothing pending.
        assert_eq!(s.skip(10, 10 + 4 * MAX_GAP), Ok(vec![]));
        assert_eq!((s.cursor, s.entries.len(), s.committed()), (10 + 4 * MAX_GAP, 0, 10 + 4 * MAX_GAP));
        let mut s = GroupState::starting_at(0);
        s.visit(4).unwrap();
        s.enqueue_key(ItemId::Topic(1), b"k".to_vec());
        s.enqueue_key(ItemId::Topic(3), b"k".to_vec());
        // A pending entry whose record was removed is done, releasing the next of its key.
        assert_eq!(s.skip(1, 2), Ok(vec![ItemId::Topic(3)]));
        assert_eq!((s.cursor, s.entries.len()), (5, 4));
        // Offsets between the cursor and the range were held back unrecorded: now pending.
        assert_eq!(s.skip(8, 20), Ok(vec![]));
        assert_eq!(s.cursor, 20);
        assert!((5..8).all(|o| s.entries.contains_key(&ItemId::Topic(o))));
        assert!(!s.entries.contains_key(&ItemId::Topic(8)));
        assert_eq!(s.skip(7, 7), Err(StateError::EmptyRange { from: 7, to: 7 }));
        assert_eq!(
            s.skip(30 + MAX_GAP, 40 + MAX_GAP),
            Err(StateError::FarPastCursor { offset: 29 + MAX_GAP, cursor: 20 })
        );
    }

    #[test]
    fn the_held_count_follows_every_status_change() {
        let mut s = GroupState::starting_at(0);
        s.visit(9).unwrap();
        let held = |s: &GroupState| s.entries.values().filter(|e| e.status == Status::Held).count();
        for o in 0..10 {
            s.enqueue_key(ItemId::Topic(o), vec![(o % 2) as u8]);
        }
        assert_eq!((s.held(), held(&s)), (8, 8));
        s.schedule_retry(ItemId::Topic(3), 50, 1, "r".into());
        assert!(s.retry_now(ItemId::Topic(3)));
        assert!(!s.retry_now(ItemId::Topic(3)));
        // Finishing a front releases the next of its key; finishing a held one removes it.
        s.finish(ItemId::Topic(0));
        s.finish(ItemId::Topic(5));
        assert_eq!((s.held(), held(&s)), (6, 6));
        s.lose_before(6);
        assert_eq!((s.held(), held(&s)), (2, 2));
        for o in 6..10 {
            s.finish(ItemId::Topic(o));
        }
        assert_eq!((s.held(), s.entries.len()), (0, 0));
    }
}

//! A delivery: one event leased to one consumer, and what identifies that lease.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::state::ItemId;
use crate::OwnedRecord;

/// Which opening of which group handed a delivery out. Every opening of a group in this
/// process gets an incarnation number never used before, so a delivery from another group,
/// or from an earlier opening of the same group (closed and reopened since), never matches.
#[derive(Debug, Clone)]
pub(crate) struct Holder {
    incarnation: u64,
    /// `topic/group`, for error messages.
    label: Arc<str>,
}

impl Holder {
    /// A holder for a new opening of group `group` of `topic`.
    pub(crate) fn new_incarnation(topic: &str, group: &str) -> Holder {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Holder { incarnation: NEXT.fetch_add(1, Ordering::Relaxed), label: format!("{topic}/{group}").into() }
    }

    /// True if both are the same opening of the same group.
    pub(crate) fn same(&self, other: &Holder) -> bool {
        self.incarnation == other.incarnation
    }

    /// `topic/group`.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }
}

/// One event handed to a consumer, leased to it until it is acked, nacked, rejected, or the
/// lease expires. It belongs to the opening of the group that handed it out: only that
/// group, until it is closed, can settle it ([`crate::Error::ForeignDelivery`] otherwise).
#[derive(Debug, Clone)]
pub struct Delivery {
    holder: Holder,
    id: ItemId,
    lease: u64,
    attempt: u32,
    deadline: Instant,
    record: OwnedRecord,
}

impl Delivery {
    pub(crate) fn new(
        holder: &Holder,
        (id, lease): (ItemId, u64),
        attempt: u32,
        deadline: Instant,
        record: OwnedRecord,
    ) -> Delivery {
        Delivery { holder: holder.clone(), id, lease, attempt, deadline, record }
    }

    /// The opening of the group that handed this delivery out.
    pub(crate) fn holder(&self) -> &Holder {
        &self.holder
    }

    /// The item and the lease counter this delivery holds.
    pub(crate) fn lease(&self) -> (ItemId, u64) {
        (self.id, self.lease)
    }

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
    /// When the lease expires unless extended ([`crate::Group::extend_lease`]).
    pub fn lease_deadline(&self) -> Instant {
        self.deadline
    }
    /// The event, consuming the delivery.
    pub fn into_record(self) -> OwnedRecord {
        self.record
    }
}

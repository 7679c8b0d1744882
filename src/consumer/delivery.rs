//! A delivery: one event leased to one consumer, and what identifies that lease.

use std::time::Instant;

use super::state::ItemId;
use crate::record::OwnedRecord;

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
    pub(crate) fn new(id: ItemId, lease: u64, attempt: u32, deadline: Instant, record: OwnedRecord) -> Delivery {
        Delivery { id, lease, attempt, deadline, record }
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

//! What a group holds unfinished, as [`crate::Group::pending`] shows it: each event in
//! flight, waiting for a retry, due again, or held back behind its key.

use std::time::Instant;

use super::state::{GroupState, ItemId, Status};

/// Where an unfinished event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PendingState {
    /// Leased to a consumer until `lease_deadline` (monotonic clock).
    InFlight {
        /// When the lease expires unless extended.
        lease_deadline: Instant,
    },
    /// Waiting for a retry due at `due_us` (µs since the Unix epoch): after a nack, or
    /// rescheduled.
    Retry {
        /// When the retry falls due.
        due_us: u64,
    },
    /// Deliverable now: its lease expired, the group restarted while it was in flight, it
    /// was released, or it was looked at and not yet delivered.
    Due,
    /// Per-key order: waiting behind an earlier event of its key (with the retry time a nack
    /// gave it, if any, which counts once it is released).
    HeldBack {
        /// The retry time waiting for it, if a nack scheduled one.
        retry_due_us: Option<u64>,
    },
}

/// One unfinished event of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pending {
    /// The event's offset in the topic (for a redriven dead letter: its original offset).
    pub offset: u64,
    /// For a redriven dead letter: its offset in the dead-letter log.
    pub redriven_from: Option<u64>,
    /// Deliveries counted so far (a redriven dead letter counts from 0 again).
    pub attempts: u32,
    /// Where it stands.
    pub state: PendingState,
    /// The last failure reason (nack, or an expired lease), if any.
    pub last_reason: Option<String>,
}

/// Every unfinished item of `s`: topic events by offset, then redriven dead letters.
pub(crate) fn of(s: &GroupState) -> Vec<Pending> {
    s.entries
        .iter()
        .map(|(id, e)| Pending {
            offset: e.source_offset,
            redriven_from: match id {
                ItemId::Redrive(d) => Some(*d),
                ItemId::Topic(_) => None,
            },
            attempts: e.attempts,
            state: match e.status {
                Status::InFlight { deadline, .. } => PendingState::InFlight { lease_deadline: deadline },
                Status::Scheduled { due_us } if due_us > 0 => PendingState::Retry { due_us },
                Status::Scheduled { .. } => PendingState::Due,
                Status::Held => PendingState::HeldBack { retry_due_us: Some(e.retry_due_us).filter(|d| *d > 0) },
            },
            last_reason: e.last_reason.clone(),
        })
        .collect()
}

//! The state log's records: one [`StateEvent`] per change of a group's state, and how
//! replaying them rebuilds the state. Layout in `docs/format.md` ("State log records").

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::consumer::state::{GroupState, ItemId, StateError, Status};
use crate::error::{Error, Result};

/// Newest version byte in front of a state-log payload. Each version adds `StateEvent`
/// variants and encodes the others as before; a payload carries the oldest version that has
/// its variant (version 2 for variants 0 to 9, version 3 for `Skipped`, version 4 for
/// `Reset`, `Released`, `Rescheduled` and `DeadLettersPurged`), so that a store in which
/// nothing needed the newer variants stays readable by the release before.
pub(crate) const STATE_EVENT_VERSION: u8 = 4;
/// The version that added `Skipped`.
const STATE_EVENT_VERSION_3: u8 = 3;
/// The version of every variant but the newest.
const STATE_EVENT_VERSION_2: u8 = 2;
/// Oldest version still read: written by the first release.
const STATE_EVENT_VERSION_1: u8 = 1;

/// One change of a group's state, as stored in the state log. Variant order is part of the
/// format (bincode stores the index): append new variants at the end only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum StateEvent {
    /// The group was created; it starts at `offset`.
    Start { offset: u64 },
    /// `id` was handed out for the `attempt`-th time (not flushed on its own).
    Delivered { id: ItemId, attempt: u32 },
    /// `id` was acknowledged.
    Acked { id: ItemId },
    /// `id` failed its `attempt`-th delivery and is due again at `retry_at_us`.
    Nacked { id: ItemId, attempt: u32, retry_at_us: u64, at_us: u64, reason: String },
    /// `id` was written to the dead-letter log at `dlq_offset`.
    DeadLettered { id: ItemId, dlq_offset: u64 },
    /// The dead letter at `dlq_offset` (from topic offset `source_offset`) goes back to
    /// the group.
    Redriven { dlq_offset: u64, source_offset: u64 },
    /// Retention removed every topic event below `to`; `lost` of them were not done.
    LostToRetention { to: u64, lost: u64 },
    /// The retry `id` waited for became due at once ([`crate::Group::retry_now`]).
    RetryNow { id: ItemId },
    /// Dead-letter records at or after `from` are in format 2 (written once, when a release
    /// that writes format 2 first opens the group).
    DeadLetterFormat { from: u64 },
    /// The dead-letter record at `dlq_offset` was found at open without its
    /// `DeadLettered` event and finishes no pending item: it is parked.
    DeadLetterFound { dlq_offset: u64 },
    /// Topic offsets in `[from, to)` hold no record (compaction removed them): pending ones
    /// are done, and the cursor passes them (version 3).
    Skipped { from: u64, to: u64 },
    /// The group's position was reset to topic offset `to`: every pending topic event is
    /// dropped and reading continues at `to` (version 4).
    Reset { to: u64 },
    /// The delivery of `id` was given back without counting: it is due again at once, with
    /// `attempts` deliveries counted (version 4).
    Released { id: ItemId, attempts: u32 },
    /// The retry `id` waits for is due at `retry_at_us` instead (version 4).
    Rescheduled { id: ItemId, retry_at_us: u64 },
    /// Dead-letter records below `below` were purged (version 4).
    DeadLettersPurged { below: u64 },
}

impl StateEvent {
    /// The first version that has this variant.
    fn version(&self) -> u8 {
        match self {
            StateEvent::Start { .. }
            | StateEvent::Delivered { .. }
            | StateEvent::Acked { .. }
            | StateEvent::Nacked { .. }
            | StateEvent::DeadLettered { .. }
            | StateEvent::Redriven { .. }
            | StateEvent::LostToRetention { .. } => STATE_EVENT_VERSION_1,
            StateEvent::RetryNow { .. } | StateEvent::DeadLetterFormat { .. } | StateEvent::DeadLetterFound { .. } => {
                STATE_EVENT_VERSION_2
            }
            StateEvent::Skipped { .. } => STATE_EVENT_VERSION_3,
            StateEvent::Reset { .. }
            | StateEvent::Released { .. }
            | StateEvent::Rescheduled { .. }
            | StateEvent::DeadLettersPurged { .. } => STATE_EVENT_VERSION,
        }
    }

    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        // Variants of version 1 are written as version 2, as the release before did.
        let mut out = vec![self.version().max(STATE_EVENT_VERSION_2)];
        out.extend_from_slice(&codec::encode(self)?);
        Ok(out)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<StateEvent> {
        let Some((&version, rest)) = bytes.split_first() else {
            return Err(Error::Codec("empty state event".into()));
        };
        if !(STATE_EVENT_VERSION_1..=STATE_EVENT_VERSION).contains(&version) {
            return Err(Error::Codec(format!("unknown state event version {version}")));
        }
        let ev: StateEvent = codec::decode(rest)?;
        if ev.version() > version {
            return Err(Error::Codec(format!("state event {ev:?} does not exist in version {version}")));
        }
        Ok(ev)
    }
}

/// Apply one replayed state event. Leases do not survive a restart: whatever was in flight
/// is due again at once. An event that does not fit the state is damaged: the caller,
/// who knows where it was stored, reports it there.
pub(crate) fn apply(state: &mut GroupState, ev: &StateEvent) -> std::result::Result<(), StateError> {
    match ev {
        StateEvent::Start { offset } => {
            if state.entries.is_empty() && state.cursor <= *offset {
                state.cursor = *offset;
            }
        }
        StateEvent::Delivered { id, attempt } => {
            visit(state, *id)?;
            if let Some(e) = state.entries.get_mut(id) {
                e.attempts = e.attempts.max(*attempt);
                e.unsettled = true;
                e.retry_due_us = 0;
                state.set_status(*id, Status::Scheduled { due_us: 0 });
            }
        }
        StateEvent::Acked { id } => {
            visit(state, *id)?;
            state.finish(*id);
        }
        StateEvent::Nacked { id, attempt, retry_at_us, at_us, reason } => {
            visit(state, *id)?;
            if let Some(e) = state.entries.get_mut(id) {
                e.attempts = e.attempts.max(*attempt);
            }
            state.schedule_retry(*id, *retry_at_us, *at_us, reason.clone());
        }
        StateEvent::DeadLettered { id, dlq_offset } => {
            visit(state, *id)?;
            state.dead_lettered(*id, *dlq_offset);
        }
        StateEvent::Redriven { dlq_offset, source_offset } => {
            state.redrive(*dlq_offset, *source_offset);
        }
        StateEvent::LostToRetention { to, lost: _ } => {
            // The count is recomputed from the entries, which replay rebuilt identically.
            state.lose_before(*to);
        }
        StateEvent::RetryNow { id } => {
            state.retry_now(*id);
        }
        StateEvent::DeadLetterFormat { from } => {
            state.dead_letter_format_from.get_or_insert(*from);
        }
        StateEvent::DeadLetterFound { dlq_offset } => state.dead_letter_found(*dlq_offset),
        StateEvent::Skipped { from, to } => {
            state.skip(*from, *to)?;
        }
        StateEvent::Reset { to } => state.reset(*to),
        StateEvent::Released { id, attempts } => {
            visit(state, *id)?;
            state.release(*id, *attempts);
        }
        StateEvent::Rescheduled { id, retry_at_us } => {
            state.reschedule(*id, *retry_at_us);
        }
        StateEvent::DeadLettersPurged { below } => state.purge_dead_letters(*below),
    }
    Ok(())
}

fn visit(state: &mut GroupState, id: ItemId) -> std::result::Result<(), StateError> {
    match id {
        ItemId::Topic(o) => state.visit(o),
        ItemId::Redrive(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_replay() {
        let evs = vec![
            StateEvent::Start { offset: 3 },
            StateEvent::Delivered { id: ItemId::Topic(3), attempt: 1 },
            StateEvent::Delivered { id: ItemId::Topic(5), attempt: 1 },
            StateEvent::Acked { id: ItemId::Topic(5) },
            StateEvent::Nacked { id: ItemId::Topic(3), attempt: 1, retry_at_us: 99, at_us: 50, reason: "r".into() },
            StateEvent::DeadLettered { id: ItemId::Topic(4), dlq_offset: 0 },
            StateEvent::Redriven { dlq_offset: 0, source_offset: 4 },
            StateEvent::LostToRetention { to: 1, lost: 0 },
        ];
        let mut s = GroupState::default();
        for ev in &evs {
            let b = ev.encode().unwrap();
            assert_eq!(&StateEvent::decode(&b).unwrap(), ev);
            apply(&mut s, ev).unwrap();
        }
        assert_eq!(s.committed(), 3);
        assert_eq!(s.cursor, 6);
        assert!(s.entries.contains_key(&ItemId::Redrive(0)));
        assert!(s.parked.is_empty());
        assert_eq!(s.entries[&ItemId::Topic(3)].status, Status::Scheduled { due_us: 99 });
        assert!(StateEvent::decode(&[2, 0]).is_err());
        assert!(StateEvent::decode(&[]).is_err());
    }

    #[test]
    fn version_2_events_replay() {
        let mut s = GroupState::default();
        let evs = [
            StateEvent::Start { offset: 0 },
            StateEvent::Nacked { id: ItemId::Topic(2), attempt: 1, retry_at_us: 99, at_us: 50, reason: "r".into() },
            StateEvent::RetryNow { id: ItemId::Topic(2) },
            StateEvent::DeadLetterFormat { from: 4 },
            StateEvent::DeadLetterFormat { from: 9 },
            StateEvent::DeadLetterFound { dlq_offset: 6 },
        ];
        for ev in &evs {
            apply(&mut s, ev).unwrap();
        }
        assert_eq!(s.entries[&ItemId::Topic(2)].status, Status::Scheduled { due_us: 0 });
        assert_eq!(s.dead_letter_format_from, Some(4), "set once");
        assert_eq!((s.parked.iter().copied().collect::<Vec<_>>(), s.dlq_next), (vec![6], 7));
        assert_eq!(s.committed(), 0);
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
    }

    /// The examples in `docs/format.md` ("State log records").
    #[test]
    fn the_documented_examples_encode_as_shown() {
        let nacked = StateEvent::Nacked {
            id: ItemId::Topic(7),
            attempt: 2,
            retry_at_us: 1_764_140_000_000_000,
            at_us: 1_764_139_999_000_000,
            reason: "db".into(),
        };
        let examples = [
            (StateEvent::Start { offset: 0 }, "02 00 00"),
            (StateEvent::Delivered { id: ItemId::Topic(5), attempt: 1 }, "02 01 00 05 01"),
            (StateEvent::Acked { id: ItemId::Topic(300) }, "02 02 00 fb 2c 01"),
            (nacked, "02 03 00 07 02 fd 00 b8 08 da 79 44 06 00 fd c0 75 f9 d9 79 44 06 00 02 64 62"),
            (StateEvent::DeadLettered { id: ItemId::Redrive(3), dlq_offset: 9 }, "02 04 01 03 09"),
            (StateEvent::Redriven { dlq_offset: 3, source_offset: 7 }, "02 05 03 07"),
            (StateEvent::LostToRetention { to: 1000, lost: 12 }, "02 06 fb e8 03 0c"),
            (StateEvent::RetryNow { id: ItemId::Topic(7) }, "02 07 00 07"),
            (StateEvent::DeadLetterFormat { from: 12 }, "02 08 0c"),
            (StateEvent::DeadLetterFound { dlq_offset: 4 }, "02 09 04"),
            (StateEvent::Skipped { from: 10, to: 300 }, "03 0a 0a fb 2c 01"),
            (StateEvent::Reset { to: 300 }, "04 0b fb 2c 01"),
            (StateEvent::Released { id: ItemId::Topic(7), attempts: 1 }, "04 0c 00 07 01"),
            (StateEvent::Rescheduled { id: ItemId::Topic(7), retry_at_us: 1000 }, "04 0d 00 07 fb e8 03"),
            (StateEvent::DeadLettersPurged { below: 4 }, "04 0e 04"),
        ];
        for (ev, bytes) in examples {
            let b = ev.encode().unwrap();
            assert_eq!(hex(&b), bytes, "{ev:?}");
            // Version 1 payloads decode the same, for the variants version 1 has.
            let mut v1 = b.clone();
            v1[0] = 1;
            assert_eq!(StateEvent::decode(&v1).is_ok(), b[1] <= 6, "{ev:?}");
            // Version 2 has every variant but `Skipped`; version 3 has them all.
            let mut v2 = b.clone();
            v2[0] = 2;
            assert_eq!(StateEvent::decode(&v2).is_ok(), b[1] <= 9, "{ev:?}");
            let mut v3 = b.clone();
            v3[0] = 3;
            assert_eq!(StateEvent::decode(&v3).is_ok(), b[1] <= 10, "{ev:?}");
            // Version 4 has them all.
            let mut v4 = b.clone();
            v4[0] = 4;
            assert_eq!(StateEvent::decode(&v4).as_ref().ok(), Some(&ev), "{ev:?}");
        }
        assert!(StateEvent::decode(&[5, 0, 0]).is_err());
    }

    /// A reset, replayed, drops every pending topic event and moves the cursor, back or
    /// forward; a release gives back the attempt its delivery counted; a purge unparks the
    /// dead letters below it.
    #[test]
    fn resets_releases_and_purges_replay() {
        let mut s = GroupState::default();
        for ev in [
            StateEvent::Start { offset: 0 },
            StateEvent::Delivered { id: ItemId::Topic(4), attempt: 1 },
            StateEvent::Nacked { id: ItemId::Topic(2), attempt: 1, retry_at_us: 99, at_us: 50, reason: "r".into() },
            StateEvent::Rescheduled { id: ItemId::Topic(2), retry_at_us: 500 },
            StateEvent::DeadLetterFound { dlq_offset: 0 },
            StateEvent::DeadLetterFound { dlq_offset: 1 },
            StateEvent::Delivered { id: ItemId::Topic(5), attempt: 2 },
            StateEvent::Released { id: ItemId::Topic(5), attempts: 1 },
        ] {
            apply(&mut s, &ev).unwrap();
        }
        assert_eq!(s.entries[&ItemId::Topic(2)].status, Status::Scheduled { due_us: 500 });
        assert_eq!((s.entries[&ItemId::Topic(5)].attempts, s.entries[&ItemId::Topic(5)].unsettled), (1, false));
        apply(&mut s, &StateEvent::DeadLettersPurged { below: 1 }).unwrap();
        assert_eq!((s.parked.iter().copied().collect::<Vec<_>>(), s.dlq_purged_below), (vec![1], 1));
        apply(&mut s, &StateEvent::Reset { to: 1 }).unwrap();
        assert_eq!((s.cursor, s.committed(), s.entries.len(), s.scheduled.len()), (1, 1, 0, 0));
        apply(&mut s, &StateEvent::Reset { to: 9_000_000 }).unwrap();
        assert_eq!((s.cursor, s.committed()), (9_000_000, 9_000_000));
    }

    /// A skipped range, replayed: the cursor passes it and the pending entries in it are
    /// done; an empty range is damage, reported by the caller where the event is stored.
    #[test]
    fn a_skipped_range_replays() {
        let mut s = GroupState::default();
        for ev in [
            StateEvent::Start { offset: 0 },
            StateEvent::Delivered { id: ItemId::Topic(2), attempt: 1 },
            StateEvent::Skipped { from: 3, to: 5_000_000 },
            StateEvent::Skipped { from: 1, to: 2 },
        ] {
            apply(&mut s, &ev).unwrap();
        }
        assert_eq!((s.cursor, s.committed(), s.entries.len()), (5_000_000, 0, 2));
        assert!(apply(&mut s, &StateEvent::Skipped { from: 9, to: 9 }).is_err());
    }
}

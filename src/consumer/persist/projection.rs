//! A group's state as a projection of its state log ([`GroupProjection`]): applying a record
//! decodes and applies one state event, and a snapshot is the whole state ([`Snapshot`]).
//! The snapshot files themselves are the projection layer's (`src/projection/`); their
//! payload is specified in `docs/format.md` ("Group snapshots").

use serde::{Deserialize, Serialize};

use super::events::{self, StateEvent};
use crate::codec;
use crate::consumer::state::{Entry, GroupState, ItemId, StateError, Status};
use crate::projection::{fingerprint_of, BoxError, Projection};
use crate::record::RecordView;

/// Version byte in front of a group snapshot's payload. Version 2: the payload of the group
/// snapshot file version 2 of earlier releases (`Snapshot` below). A later release that
/// changes the payload bumps it and keeps reading this one: the fingerprint stays, because
/// a group whose state log was compacted cannot rebuild its state from the start.
pub(crate) const PAYLOAD_VERSION: u8 = 2;
/// Version 3: version 2's payload followed by the dead-letter purge mark
/// ([`GroupState::dlq_purged_below`], a varint). Written only when that mark is not 0, so
/// that a group whose dead letters were never purged stays readable by the release before.
pub(crate) const PAYLOAD_VERSION_3: u8 = 3;

/// The group state as a projection of the group's state log.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GroupProjection;

impl GroupProjection {
    /// The name in every group snapshot.
    pub(crate) const NAME: &'static str = "consumer-group";
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateError::FarPastCursor { offset, cursor } => {
                write!(f, "state change refers to topic offset {offset}, far past the cursor {cursor}")
            }
            StateError::EmptyRange { from, to } => write!(f, "empty range of offsets without records [{from}, {to})"),
        }
    }
}

impl std::error::Error for StateError {}

impl Projection for GroupProjection {
    type State = GroupState;

    fn name(&self) -> &str {
        GroupProjection::NAME
    }

    fn fingerprint(&self) -> u64 {
        fingerprint_of(b"tidelog consumer-group state: state events applied in order; payload versioned")
    }

    fn initial(&self) -> GroupState {
        GroupState::default()
    }

    fn apply(&self, state: &mut GroupState, record: &RecordView<'_>) -> Result<(), BoxError> {
        let ev = StateEvent::decode(record.payload())?;
        events::apply(state, &ev)?;
        Ok(())
    }

    fn snapshot(&self, state: &GroupState, out: &mut Vec<u8>) -> Result<(), BoxError> {
        if state.dlq_purged_below == 0 {
            out.push(PAYLOAD_VERSION);
            out.extend_from_slice(&codec::encode(&Snapshot::of(state))?);
        } else {
            out.push(PAYLOAD_VERSION_3);
            out.extend_from_slice(&codec::encode(&(Snapshot::of(state), state.dlq_purged_below))?);
        }
        Ok(())
    }

    fn restore(&self, payload: &[u8]) -> Result<GroupState, BoxError> {
        match payload.split_first() {
            Some((&PAYLOAD_VERSION, rest)) => Ok(codec::decode::<Snapshot>(rest)?.into_state()),
            Some((&PAYLOAD_VERSION_3, rest)) => {
                let (snapshot, purged_below) = codec::decode::<(Snapshot, u64)>(rest)?;
                let mut state = snapshot.into_state();
                state.dlq_purged_below = purged_below;
                Ok(state)
            }
            Some((v, _)) => Err(format!("unknown group snapshot payload version {v}").into()),
            None => Err("empty group snapshot payload".into()),
        }
    }
}

/// A pending entry in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapEntry {
    pub id: ItemId,
    pub source_offset: u64,
    pub attempts: u32,
    /// When the entry is due (0: at once).
    pub retry_due_us: u64,
    pub unsettled: bool,
    pub first_failure_us: u64,
    pub last_failure_us: u64,
    pub last_reason: Option<String>,
}

/// The snapshot payload: a group's whole state (leases are not kept: an event in flight when
/// the snapshot was taken is due again at once after a restart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub cursor: u64,
    pub lost_to_retention: u64,
    pub dlq_next: u64,
    pub parked: Vec<u64>,
    pub entries: Vec<SnapEntry>,
    pub dead_letter_format_from: Option<u64>,
}

impl Snapshot {
    pub(crate) fn of(state: &GroupState) -> Snapshot {
        Snapshot {
            cursor: state.cursor,
            lost_to_retention: state.lost_to_retention,
            dlq_next: state.dlq_next,
            dead_letter_format_from: state.dead_letter_format_from,
            parked: state.parked.iter().copied().collect(),
            entries: state
                .entries
                .iter()
                .map(|(id, e)| SnapEntry {
                    id: *id,
                    source_offset: e.source_offset,
                    attempts: e.attempts,
                    retry_due_us: match e.status {
                        Status::Scheduled { due_us } => due_us,
                        Status::InFlight { .. } => 0,
                        Status::Held => e.retry_due_us,
                    },
                    unsettled: e.unsettled || matches!(e.status, Status::InFlight { .. }),
                    first_failure_us: e.first_failure_us,
                    last_failure_us: e.last_failure_us,
                    last_reason: e.last_reason.clone(),
                })
                .collect(),
        }
    }

    pub(crate) fn into_state(self) -> GroupState {
        let mut s = GroupState::starting_at(self.cursor);
        s.lost_to_retention = self.lost_to_retention;
        s.dlq_next = self.dlq_next;
        s.dead_letter_format_from = self.dead_letter_format_from;
        s.parked = self.parked.into_iter().collect();
        for se in self.entries {
            let mut e = Entry::new(se.source_offset);
            e.attempts = se.attempts;
            e.retry_due_us = se.retry_due_us;
            e.unsettled = se.unsettled;
            e.first_failure_us = se.first_failure_us;
            e.last_failure_us = se.last_failure_us;
            e.last_reason = se.last_reason;
            s.entries.insert(se.id, e);
            s.set_status(se.id, Status::Scheduled { due_us: se.retry_due_us });
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fixed: a change would make every group's snapshots foreign, and its open fail.
    #[test]
    fn the_name_and_fingerprint_are_the_documented_ones() {
        assert_eq!((GroupProjection.name(), GroupProjection.fingerprint()), ("consumer-group", 0x3553_c247_2624_965e));
    }

    fn payload(state: &GroupState) -> Vec<u8> {
        let mut out = Vec::new();
        GroupProjection.snapshot(state, &mut out).unwrap();
        out
    }

    #[test]
    fn a_snapshot_payload_round_trips_and_refuses_other_versions() {
        let mut s = GroupState::starting_at(5);
        s.visit(9).unwrap();
        s.finish(ItemId::Topic(6));
        s.schedule_retry(ItemId::Topic(7), 1234, 1000, "boom".into());
        s.parked.insert(2);
        s.dlq_next = 3;
        let bytes = payload(&s);
        let back = GroupProjection.restore(&bytes).unwrap();
        assert_eq!(Snapshot::of(&back), Snapshot::of(&s));
        assert_eq!((back.committed(), back.entries.len()), (5, 4));
        for bad in [&[][..], &[4, 0][..], &bytes[..bytes.len() - 1]] {
            assert!(GroupProjection.restore(bad).is_err());
        }
    }

    /// A purge mark makes the payload version 3 (the version-2 payload, then the mark);
    /// without one the payload stays version 2, which the release before reads.
    #[test]
    fn a_purge_mark_is_kept_in_a_version_3_payload() {
        let mut s = GroupState::starting_at(5);
        s.parked.extend([1, 2, 3]);
        assert_eq!(payload(&s)[0], PAYLOAD_VERSION);
        s.purge_dead_letters(2);
        let bytes = payload(&s);
        assert_eq!(bytes[0], PAYLOAD_VERSION_3);
        let back = GroupProjection.restore(&bytes).unwrap();
        assert_eq!((back.dlq_purged_below, back.parked.len(), back.dlq_next), (2, 2, 2));
        assert!(GroupProjection.restore(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn large_snapshots_round_trip() {
        let mut s = GroupState::starting_at(0);
        s.visit(99_999).unwrap();
        for o in 0..100_000u64 {
            if o % 10 == 3 {
                s.schedule_retry(ItemId::Topic(o), o + 1, o, format!("reason {o}"));
            } else if o % 10 != 4 {
                s.finish(ItemId::Topic(o));
            }
        }
        s.parked.extend(0..5000u64);
        let back = GroupProjection.restore(&payload(&s)).unwrap();
        assert_eq!(Snapshot::of(&back), Snapshot::of(&s));
        assert_eq!(back.entries.len(), 20_000);
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic the payload decoder: they decode or give an error.
        #[test]
        fn the_payload_decoder_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = GroupProjection.restore(&bytes);
            let mut versioned = vec![PAYLOAD_VERSION];
            versioned.extend_from_slice(&bytes);
            let _ = GroupProjection.restore(&versioned);
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
    }

    /// The example in `docs/format.md` ("Group snapshots"): the payload of the example
    /// state, behind its version byte.
    #[test]
    fn the_documented_payload_encodes_as_shown() {
        let mut s = GroupState::starting_at(7);
        s.entries.insert(ItemId::Topic(6), Entry::new(6));
        s.parked.insert(2);
        s.dlq_next = 3;
        s.dead_letter_format_from = Some(0);
        assert_eq!(hex(&payload(&s)), "02 07 00 03 01 02 01 00 06 06 00 00 00 00 00 00 01 00");
    }
}

//! How a consumer group's state reaches the disk: an internal state log (a tidelog [`Log`]
//! of [`StateEvent`] records) and a snapshot file that lets old state-log segments go.
//! The byte-level format is specified in `docs/format.md` ("Store and consumer-group files").
//!
//! Recovery = load the snapshot (if any), then replay the state log from the offset the
//! snapshot covers. The state log gives checksums, torn-tail repair and group commit; the
//! snapshot is replaced atomically (tmp, fsync, rename, fsync the directory).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::codec;
use crate::consumer::state::{Entry, GroupState, ItemId, Status};
use crate::error::{CorruptionKind, Error, IoContext, Result};
use crate::fsutil;
use crate::log::Log;
use crate::options::{Durability, Options};
use crate::store::{StoreOptions, Topic};

/// Version byte in front of every state-log payload written now. Version 2 adds
/// `StateEvent` variants; the encoding of the others is unchanged.
pub(crate) const STATE_EVENT_VERSION: u8 = 2;
/// Oldest version still read: written by the first release.
const STATE_EVENT_VERSION_1: u8 = 1;

/// Snapshot file name inside the group directory.
pub(crate) const SNAPSHOT_FILE: &str = "snapshot";
/// State-log directory inside the group directory.
pub(crate) const STATE_DIR: &str = "state";
/// Dead-letter log directory inside the group directory.
pub(crate) const DEAD_LETTER_DIR: &str = "dead-letters";

pub(crate) const SNAPSHOT_MAGIC: [u8; 8] = *b"TDLGGRPS";
/// Version written now. Version 2 appends `dead_letter_format_from` to the payload.
pub(crate) const SNAPSHOT_VERSION: u32 = 2;
/// Oldest version still read: written by the first release.
const SNAPSHOT_VERSION_1: u32 = 1;
const MAGIC_AT: usize = 0;
const VERSION_AT: usize = MAGIC_AT + 8;
const RESERVED_AT: usize = VERSION_AT + 4;
const COVERS_AT: usize = RESERVED_AT + 4;
const PAYLOAD_LEN_AT: usize = COVERS_AT + 8;
const CRC_AT: usize = PAYLOAD_LEN_AT + 8;
const PAD_AT: usize = CRC_AT + 4;
/// Bytes before the payload.
pub(crate) const SNAPSHOT_HEADER_LEN: usize = PAD_AT + 4;
const _: () = assert!(SNAPSHOT_HEADER_LEN == 40);

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
}

impl StateEvent {
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        let mut out = vec![STATE_EVENT_VERSION];
        out.extend_from_slice(&codec::encode(self)?);
        Ok(out)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<StateEvent> {
        match bytes.split_first() {
            Some((&STATE_EVENT_VERSION, rest)) => codec::decode(rest),
            Some((&STATE_EVENT_VERSION_1, rest)) => match codec::decode(rest)? {
                ev @ (StateEvent::RetryNow { .. }
                | StateEvent::DeadLetterFormat { .. }
                | StateEvent::DeadLetterFound { .. }) => {
                    Err(Error::Codec(format!("state event {ev:?} does not exist in version 1")))
                }
                ev => Ok(ev),
            },
            Some((v, _)) => Err(Error::Codec(format!("unknown state event version {v}"))),
            None => Err(Error::Codec("empty state event".into())),
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

/// The snapshot payload of version 1: version 2 without `dead_letter_format_from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SnapshotV1 {
    cursor: u64,
    lost_to_retention: u64,
    dlq_next: u64,
    parked: Vec<u64>,
    entries: Vec<SnapEntry>,
}

impl From<SnapshotV1> for Snapshot {
    fn from(s: SnapshotV1) -> Snapshot {
        Snapshot {
            cursor: s.cursor,
            lost_to_retention: s.lost_to_retention,
            dlq_next: s.dlq_next,
            parked: s.parked,
            entries: s.entries,
            // Written before format 2 existed: every dead letter is in format 1.
            dead_letter_format_from: None,
        }
    }
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

    /// The snapshot file: header, then the bincode payload.
    pub(crate) fn to_file_bytes(&self, covers: u64) -> Result<Vec<u8>> {
        let payload = codec::encode(self)?;
        let mut b = vec![0u8; SNAPSHOT_HEADER_LEN];
        b[MAGIC_AT..MAGIC_AT + 8].copy_from_slice(&SNAPSHOT_MAGIC);
        b[VERSION_AT..VERSION_AT + 4].copy_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        b[COVERS_AT..COVERS_AT + 8].copy_from_slice(&covers.to_le_bytes());
        b[PAYLOAD_LEN_AT..PAYLOAD_LEN_AT + 8].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        b.extend_from_slice(&payload);
        let crc = snapshot_crc(&b);
        b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
        Ok(b)
    }

    /// Parse a snapshot file; returns the snapshot and the state-log offset it covers.
    pub(crate) fn from_file_bytes(path: &Path, b: &[u8]) -> Result<(Snapshot, u64)> {
        let corrupt = |at: usize, kind| Error::corrupt(path, at as u64, kind);
        if b.len() < SNAPSHOT_HEADER_LEN {
            return Err(corrupt(0, CorruptionKind::BadLength { len: b.len() as u64, available: b.len() as u64 }));
        }
        let version = le_u32(b, VERSION_AT);
        if b[MAGIC_AT..MAGIC_AT + 8] != SNAPSHOT_MAGIC || !(SNAPSHOT_VERSION_1..=SNAPSHOT_VERSION).contains(&version) {
            return Err(corrupt(MAGIC_AT, CorruptionKind::BadMagic));
        }
        let payload_len = le_u64(b, PAYLOAD_LEN_AT);
        let available = (b.len() - SNAPSHOT_HEADER_LEN) as u64;
        // Checked before any arithmetic with it: the length must match the file exactly.
        if payload_len != available {
            return Err(corrupt(PAYLOAD_LEN_AT, CorruptionKind::BadLength { len: payload_len, available }));
        }
        let expected = le_u32(b, CRC_AT);
        let got = snapshot_crc(b);
        if got != expected {
            return Err(corrupt(CRC_AT, CorruptionKind::ChecksumMismatch { got, expected }));
        }
        let payload = &b[SNAPSHOT_HEADER_LEN..];
        let snap: Snapshot = match version {
            SNAPSHOT_VERSION_1 => codec::decode::<SnapshotV1>(payload).map(Snapshot::from),
            _ => codec::decode(payload),
        }
        .map_err(|_| corrupt(SNAPSHOT_HEADER_LEN, CorruptionKind::BadField("snapshot payload")))?;
        Ok((snap, le_u64(b, COVERS_AT)))
    }
}

/// CRC-32 of the whole file except the CRC field itself.
fn snapshot_crc(b: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&b[..CRC_AT]);
    h.update(&b[CRC_AT + 4..]);
    h.finalize()
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// Read the snapshot file of a group directory, if there is one.
pub(crate) fn read_snapshot(group_dir: &Path) -> Result<Option<(Snapshot, u64)>> {
    let path = group_dir.join(SNAPSHOT_FILE);
    match std::fs::read(&path) {
        Ok(b) => Snapshot::from_file_bytes(&path, &b).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Replace the snapshot file atomically.
pub(crate) fn write_snapshot(group_dir: &Path, bytes: &[u8]) -> Result<()> {
    fsutil::atomic_write(&group_dir.join(SNAPSHOT_FILE), bytes)
}

/// Apply one replayed state event. Leases do not survive a restart: whatever was in flight
/// is due again at once.
pub(crate) fn apply(state: &mut GroupState, ev: &StateEvent) -> Result<()> {
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
    }
    Ok(())
}

fn visit(state: &mut GroupState, id: ItemId) -> Result<()> {
    match id {
        ItemId::Topic(o) => state.visit(o),
        ItemId::Redrive(_) => Ok(()),
    }
}

/// Options of a group's state log in a store opened with `store`.
pub(crate) fn state_log_options(store: &StoreOptions, flush_every: Option<std::time::Duration>) -> Options {
    Options::default()
        .segment_bytes(store.state_segment_bytes)
        .index_interval_bytes(64 << 10)
        .durability(flush_every.map_or(Durability::None, Durability::Interval))
        .max_record_bytes(1 << 20)
}

/// Size of the first segment of a group's state log (or `state_segment_bytes` if smaller).
pub(crate) const FIRST_STATE_SEGMENT_BYTES: u64 = 64 << 10;

/// Open a group's state log for writing (its lock is the group's lock), creating it if
/// missing. Sized to need: a new state log starts with a small segment
/// ([`FIRST_STATE_SEGMENT_BYTES`]), so that an idle group reserves little disk; only once a
/// group fills it do its segments get `state_segment_bytes`, which keeps rolls rare for a
/// busy group. (A segment keeps the size it was created with; later segments get the size
/// the log is opened with.)
pub(crate) fn open_state_log(
    dir: &Path,
    store: &StoreOptions,
    flush_every: Option<std::time::Duration>,
) -> Result<Log> {
    let opts = state_log_options(store, flush_every);
    let first = FIRST_STATE_SEGMENT_BYTES.min(opts.segment_bytes);
    if first < opts.segment_bytes && !dir.is_dir() {
        // Another process may take the group between this close and the open below: then
        // the open below is `Locked`, as if it had taken the group first.
        Log::open(dir, opts.clone().segment_bytes(first))?.close()?;
    }
    Log::open(dir, opts)
}

/// Replay the state log from `from`; returns the number of events applied.
pub(crate) fn replay(state: &mut GroupState, log: &Log, from: u64) -> Result<u64> {
    let first = log.first_offset();
    if from < first || from > log.next_offset() {
        // The snapshot that let those segments go is missing or older than them, or the log
        // lost records the snapshot says it holds.
        return Err(Error::corrupt(log.dir(), 0, CorruptionKind::MissingData));
    }
    let mut cursor = log.cursor(from);
    let mut n = 0u64;
    while let Some(rec) = cursor.next()? {
        let ev = StateEvent::decode(rec.payload())
            .map_err(|_| Error::corrupt(log.dir(), rec.offset(), CorruptionKind::BadField("consumer state event")))?;
        apply(state, &ev)?;
        n += 1;
    }
    Ok(n)
}

/// A group's persisted state as another process sees it (no lock taken): the snapshot plus
/// whatever the state log holds after it.
pub(crate) fn load_view(group_dir: &Path, state_opts: &Options) -> Result<GroupState> {
    let state_dir = group_dir.join(STATE_DIR);
    // The owner may replace the snapshot and drop old state-log segments while we read:
    // if the log no longer reaches back to our snapshot, read both again.
    let mut last_err = None;
    for _ in 0..8 {
        let snap = read_snapshot(group_dir)?;
        let (mut state, covers) = match snap {
            Some((s, covers)) => (s.into_state(), covers),
            None => (GroupState::default(), 0),
        };
        let log = match Log::open_read_only(&state_dir, state_opts.clone()) {
            Ok(l) => l,
            Err(Error::NotFound { .. }) => return Ok(state),
            Err(e) => return Err(e),
        };
        match replay(&mut state, &log, covers) {
            Ok(_) => return Ok(state),
            Err(e @ Error::Corruption { kind: CorruptionKind::MissingData, .. }) => last_err = Some(e),
            Err(e @ Error::OffsetOutOfRange { .. }) => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| Error::corrupt(&state_dir, 0, CorruptionKind::MissingData)))
}

/// Paths of a group's files.
#[derive(Debug, Clone)]
pub(crate) struct GroupPaths {
    pub dir: PathBuf,
    pub state: PathBuf,
    pub dead_letters: PathBuf,
}

impl GroupPaths {
    pub(crate) fn new(topic: &Topic, group: &str) -> GroupPaths {
        let dir = topic.store().groups_dir(topic.name()).join(group);
        GroupPaths { state: dir.join(STATE_DIR), dead_letters: dir.join(DEAD_LETTER_DIR), dir }
    }

    pub(crate) fn create(&self) -> Result<()> {
        if !self.dir.is_dir() {
            std::fs::create_dir_all(&self.dir).at(&self.dir)?;
            // IMPORTANT: make the new directories durable before state goes into them.
            if let Some(parent) = self.dir.parent() {
                fsutil::fsync_dir(parent)?;
                if let Some(root) = parent.parent() {
                    fsutil::fsync_dir(root)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_round_trip_and_damage() {
        let mut s = GroupState::starting_at(5);
        s.visit(9).unwrap();
        s.finish(ItemId::Topic(6));
        s.schedule_retry(ItemId::Topic(7), 1234, 1000, "boom".into());
        s.parked.insert(2);
        s.dlq_next = 3;
        let snap = Snapshot::of(&s);
        let bytes = snap.to_file_bytes(77).unwrap();
        let (back, covers) = Snapshot::from_file_bytes(Path::new("x"), &bytes).unwrap();
        assert_eq!(covers, 77);
        assert_eq!(back, snap);
        let st = back.into_state();
        assert_eq!(st.committed(), 5);
        assert_eq!(st.entries.len(), 4);
        assert_eq!(st.entries[&ItemId::Topic(7)].last_reason.as_deref(), Some("boom"));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(Snapshot::from_file_bytes(Path::new("x"), &bad).is_err(), "flip at {i} undetected");
        }
        for n in 0..bytes.len() {
            assert!(Snapshot::from_file_bytes(Path::new("x"), &bytes[..n]).is_err());
        }
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic a decoder: they decode or give an error.
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = StateEvent::decode(&bytes);
            let _ = codec::decode::<Snapshot>(&bytes);
            let mut file = Snapshot::of(&GroupState::default()).to_file_bytes(0).unwrap();
            file.truncate(SNAPSHOT_HEADER_LEN);
            file.extend_from_slice(&bytes);
            file[PAYLOAD_LEN_AT..PAYLOAD_LEN_AT + 8].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
            let crc = snapshot_crc(&file);
            file[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
            // A valid header and checksum around garbage: the payload decoder must cope.
            let _ = Snapshot::from_file_bytes(Path::new("x"), &file);
        }
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
        let snap = Snapshot::of(&s);
        let bytes = snap.to_file_bytes(1).unwrap();
        let (back, _) = Snapshot::from_file_bytes(Path::new("x"), &bytes).unwrap();
        assert_eq!(back, snap);
        assert_eq!(back.entries.len(), 20_000);
    }

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

    /// The examples in `docs/format.md` ("State log records", "Snapshot file").
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
        ];
        for (ev, bytes) in examples {
            let b = ev.encode().unwrap();
            assert_eq!(hex(&b), bytes, "{ev:?}");
            // Version 1 payloads decode the same, for the variants version 1 has.
            let mut v1 = b.clone();
            v1[0] = 1;
            assert_eq!(StateEvent::decode(&v1).is_ok(), b[1] <= 6, "{ev:?}");
        }
        let mut s = GroupState::starting_at(7);
        s.entries.insert(ItemId::Topic(6), Entry::new(6));
        s.parked.insert(2);
        s.dlq_next = 3;
        s.dead_letter_format_from = Some(0);
        let file = Snapshot::of(&s).to_file_bytes(42).unwrap();
        assert_eq!(
            hex(&file),
            "54 44 4c 47 47 52 50 53 02 00 00 00 00 00 00 00 2a 00 00 00 00 00 00 00 \
             11 00 00 00 00 00 00 00 f0 b7 28 c4 00 00 00 00 \
             07 00 03 01 02 01 00 06 06 00 00 00 00 00 00 01 00"
        );
        // The version-1 example: the same state without its last field.
        let mut v1 = file[..file.len() - 2].to_vec();
        v1[VERSION_AT] = 1;
        v1[PAYLOAD_LEN_AT] = 15;
        v1[CRC_AT..CRC_AT + 4].copy_from_slice(&[0x9d, 0xed, 0x77, 0x18]);
        let (back, covers) = Snapshot::from_file_bytes(Path::new("x"), &v1).unwrap();
        assert_eq!((covers, back.cursor, back.dead_letter_format_from), (42, 7, None));
    }
}

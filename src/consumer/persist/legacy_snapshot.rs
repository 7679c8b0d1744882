//! The group snapshot file of earlier releases, `snapshot` in the group's directory: a
//! group's whole state and the state-log offset it covers, checksummed. Read only (a group
//! whose snapshots are not in the projection layer's files yet is loaded from it, then
//! migrated); layout in `docs/format.md` ("Snapshot file of earlier releases").

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::projection::{SnapEntry, Snapshot};
use super::LEGACY_SNAPSHOT_FILE;
use crate::codec;
use crate::error::{CorruptionKind, Error, Result};
use crate::format::{le_u32, le_u64};

pub(crate) const SNAPSHOT_MAGIC: [u8; 8] = *b"TDLGGRPS";
/// Newest version: version 2 appends `dead_letter_format_from` to the payload.
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
    /// The snapshot file: header, then the bincode payload (as earlier releases wrote it;
    /// for tests).
    #[cfg(test)]
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

/// Read the snapshot file of earlier releases in a group directory, if there is one.
pub(crate) fn read_legacy_snapshot(group_dir: &Path) -> Result<Option<(Snapshot, u64)>> {
    let path = group_dir.join(LEGACY_SNAPSHOT_FILE);
    match std::fs::read(&path) {
        Ok(b) => Snapshot::from_file_bytes(&path, &b).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::events::StateEvent;
    use super::*;
    use crate::consumer::state::{Entry, GroupState, ItemId};

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

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
    }

    /// The example in `docs/format.md` ("Snapshot file of earlier releases").
    #[test]
    fn the_documented_example_encodes_as_shown() {
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

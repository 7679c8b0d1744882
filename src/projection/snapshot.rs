//! The projection snapshot file, byte by byte (specified in `docs/format.md`, "Projection
//! snapshot file"). All integers little-endian.
//!
//! ```text
//! at  size  field
//!  0    8   magic "TDLGSNAP"
//!  8    4   format version (1)
//! 12    4   name_len (1..=255)
//! 16    8   position: next offset to apply (every record below it is reflected)
//! 24    8   fingerprint of the projection's definition
//! 32    8   records: records applied to the state since its initial value
//! 40    8   last_offset: offset of the last record applied, u64::MAX if none
//! 48    8   last_timestamp_us: that record's timestamp, 0 if none
//! 56    8   payload_len
//! 64    name_len        name (UTF-8)
//! ..    payload_len     payload (the projection's own encoding)
//! end-4 4   CRC-32 (crc32fast) of every byte before it
//! ```

use std::path::{Path, PathBuf};

use crate::error::{CorruptionKind, Error, Result};
use crate::format::{le_u32, le_u64};

/// File magic of a projection snapshot.
pub(crate) const MAGIC: [u8; 8] = *b"TDLGSNAP";
/// Version of the snapshot file format this code writes and reads.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;
/// Longest projection name a snapshot can carry, in bytes.
pub const SNAPSHOT_MAX_NAME_LEN: usize = 255;

const MAGIC_AT: usize = 0;
const VERSION_AT: usize = MAGIC_AT + 8;
const NAME_LEN_AT: usize = VERSION_AT + 4;
const POSITION_AT: usize = NAME_LEN_AT + 4;
const FINGERPRINT_AT: usize = POSITION_AT + 8;
const RECORDS_AT: usize = FINGERPRINT_AT + 8;
const LAST_OFFSET_AT: usize = RECORDS_AT + 8;
const LAST_TS_AT: usize = LAST_OFFSET_AT + 8;
const PAYLOAD_LEN_AT: usize = LAST_TS_AT + 8;
/// Bytes of the fixed header; the name starts here.
pub(crate) const HEADER_LEN: usize = PAYLOAD_LEN_AT + 8;
const CRC_LEN: usize = 4;
const _: () = assert!(HEADER_LEN == 64);

/// `last_offset` when no record was applied.
const NO_RECORD: u64 = u64::MAX;

/// What a snapshot covers, as stored in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Coverage {
    /// Next offset to apply: every record below it is reflected.
    pub position: u64,
    /// Records applied since the initial state.
    pub records: u64,
    /// Offset and timestamp of the last record applied.
    pub last: Option<(u64, u64)>,
}

impl Coverage {
    /// The initial state's coverage, starting at `position`.
    pub fn start() -> Coverage {
        Coverage { position: 0, records: 0, last: None }
    }

    /// Account for one applied record.
    pub fn applied(&mut self, offset: u64, timestamp_us: u64) {
        self.position = offset + 1;
        self.records += 1;
        self.last = Some((offset, timestamp_us));
    }
}

/// Facts about one snapshot file (from its header).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotInfo {
    /// The file.
    pub path: PathBuf,
    /// Next offset to apply: the snapshot reflects every record below it.
    pub position: u64,
    /// Fingerprint of the definition that wrote it.
    pub fingerprint: u64,
    /// Records applied to the state since its initial value (for a projection over one
    /// stream, the stream's version).
    pub records: u64,
    /// Offset of the last record applied, if any.
    pub last_offset: Option<u64>,
    /// Timestamp (µs since the Unix epoch) of that record; 0 if none.
    pub last_timestamp_us: u64,
    /// Bytes of the projection's payload.
    pub payload_bytes: u64,
    /// The name of the projection that wrote it (lossy if it is not UTF-8).
    pub name: String,
}

/// A decoded snapshot file, borrowing its name and payload from the file's bytes.
#[derive(Debug)]
pub(crate) struct Decoded<'a> {
    pub name: &'a [u8],
    pub fingerprint: u64,
    pub coverage: Coverage,
    pub payload: &'a [u8],
}

impl Decoded<'_> {
    pub fn info(&self, path: &Path) -> SnapshotInfo {
        SnapshotInfo {
            path: path.to_path_buf(),
            position: self.coverage.position,
            fingerprint: self.fingerprint,
            records: self.coverage.records,
            last_offset: self.coverage.last.map(|l| l.0),
            last_timestamp_us: self.coverage.last.map_or(0, |l| l.1),
            payload_bytes: self.payload.len() as u64,
            name: String::from_utf8_lossy(self.name).into_owned(),
        }
    }
}

/// Check a projection's name: 1 to [`SNAPSHOT_MAX_NAME_LEN`] bytes.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > SNAPSHOT_MAX_NAME_LEN {
        return Err(Error::InvalidName { kind: "projection", name: name.to_owned(), reason: "must be 1 to 255 bytes" });
    }
    Ok(())
}

/// Encode a snapshot file. `name` must be 1 to 255 bytes (the runner checks it at open).
pub(crate) fn encode(name: &str, fingerprint: u64, coverage: &Coverage, payload: &[u8]) -> Vec<u8> {
    debug_assert!(!name.is_empty() && name.len() <= SNAPSHOT_MAX_NAME_LEN);
    let (last_offset, last_ts) = coverage.last.unwrap_or((NO_RECORD, 0));
    let mut b = Vec::with_capacity(HEADER_LEN + name.len() + payload.len() + CRC_LEN);
    b.extend_from_slice(&MAGIC);
    b.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    b.extend_from_slice(&(name.len() as u32).to_le_bytes());
    for v in [coverage.position, fingerprint, coverage.records, last_offset, last_ts, payload.len() as u64] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    debug_assert_eq!(b.len(), HEADER_LEN);
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(payload);
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// Check a snapshot file's fixed header (`head`, the first up to 64 bytes) against the
/// file's length, before the rest is read: magic, version, and both lengths, which must add
/// up to the file exactly. So a file that is not a snapshot costs 64 bytes of reading, and
/// no length field decides an allocation. Returns the name's length.
pub(crate) fn check_header(path: &Path, head: &[u8], file_len: u64) -> Result<usize> {
    let corrupt = |at: usize, kind| Error::corrupt(path, at as u64, kind);
    if head.len() < HEADER_LEN || file_len < (HEADER_LEN + CRC_LEN) as u64 {
        return Err(corrupt(0, CorruptionKind::BadLength { len: file_len, available: file_len }));
    }
    if head[MAGIC_AT..MAGIC_AT + 8] != MAGIC || le_u32(head, VERSION_AT) != SNAPSHOT_FORMAT_VERSION {
        return Err(corrupt(MAGIC_AT, CorruptionKind::BadMagic));
    }
    // Both lengths are checked against what the file holds before any arithmetic with them.
    let room = file_len - (HEADER_LEN + CRC_LEN) as u64;
    let name_len = u64::from(le_u32(head, NAME_LEN_AT));
    if name_len == 0 || name_len > SNAPSHOT_MAX_NAME_LEN as u64 || name_len > room {
        return Err(corrupt(NAME_LEN_AT, CorruptionKind::BadLength { len: name_len, available: room }));
    }
    let payload_len = le_u64(head, PAYLOAD_LEN_AT);
    if payload_len != room - name_len {
        return Err(corrupt(
            PAYLOAD_LEN_AT,
            CorruptionKind::BadLength { len: payload_len, available: room - name_len },
        ));
    }
    Ok(name_len as usize)
}

/// Decode and validate a whole snapshot file. Every length is checked against the bytes
/// present before it is used; nothing is allocated. Errors are `Error::Corruption` located
/// in `path`.
pub(crate) fn decode<'a>(path: &Path, b: &'a [u8]) -> Result<Decoded<'a>> {
    let corrupt = |at: usize, kind| Error::corrupt(path, at as u64, kind);
    let name_len = check_header(path, b, b.len() as u64)?;
    let crc_at = b.len() - CRC_LEN;
    let expected = le_u32(b, crc_at);
    let got = crc32fast::hash(&b[..crc_at]);
    if got != expected {
        return Err(corrupt(crc_at, CorruptionKind::ChecksumMismatch { got, expected }));
    }
    // Fields the checksum vouches for, checked for consistency anyway (a bug in a writer).
    let position = le_u64(b, POSITION_AT);
    let records = le_u64(b, RECORDS_AT);
    let last_offset = le_u64(b, LAST_OFFSET_AT);
    let last = (last_offset != NO_RECORD).then(|| (last_offset, le_u64(b, LAST_TS_AT)));
    if last.is_some_and(|(o, _)| o >= position) {
        return Err(corrupt(LAST_OFFSET_AT, CorruptionKind::BadField("last_offset")));
    }
    // Each applied record has its own offset below `position`; with none, there is no last.
    // (A state saved by its owner may not know its last record: `last` is then absent.)
    if records > position || (records == 0 && last.is_some()) {
        return Err(corrupt(RECORDS_AT, CorruptionKind::BadField("records")));
    }
    let name_end = HEADER_LEN + name_len;
    Ok(Decoded {
        name: &b[HEADER_LEN..name_end],
        fingerprint: le_u64(b, FINGERPRINT_AT),
        coverage: Coverage { position, records, last },
        payload: &b[name_end..crc_at],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let cov = Coverage { position: 42, records: 3, last: Some((40, 1_700_000_000_000_000)) };
        encode("balances", 7, &cov, b"state!")
    }

    #[test]
    fn round_trip() {
        let b = sample();
        assert_eq!(b.len(), HEADER_LEN + 8 + 6 + 4);
        let d = decode(Path::new("x"), &b).unwrap();
        assert_eq!(d.name, b"balances");
        assert_eq!(d.fingerprint, 7);
        assert_eq!(d.coverage, Coverage { position: 42, records: 3, last: Some((40, 1_700_000_000_000_000)) });
        assert_eq!(d.payload, b"state!");
        let empty = encode("p", 1, &Coverage::start(), b"");
        assert_eq!(decode(Path::new("x"), &empty).unwrap().coverage, Coverage::start());
    }

    /// The example in `docs/format.md`, byte for byte.
    #[test]
    fn documented_example() {
        let cov = Coverage { position: 3, records: 3, last: Some((2, 1_700_000_000_000_000)) };
        let b = encode("count", 1, &cov, &3u64.to_le_bytes());
        let hex: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
        assert_eq!(
            hex.join(" "),
            "54 44 4c 47 53 4e 41 50 01 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 \
             03 00 00 00 00 00 00 00 02 00 00 00 00 00 00 00 00 40 1e 18 24 0a 06 00 08 00 00 00 00 00 00 00 \
             63 6f 75 6e 74 03 00 00 00 00 00 00 00 6d 3c 33 10"
        );
    }

    #[test]
    fn every_bit_flip_and_every_truncation_is_detected() {
        let b = sample();
        for i in 0..b.len() {
            for bit in 0..8 {
                let mut bad = b.clone();
                bad[i] ^= 1 << bit;
                assert!(decode(Path::new("x"), &bad).is_err(), "flip of bit {bit} at byte {i} undetected");
            }
        }
        for n in 0..b.len() {
            assert!(decode(Path::new("x"), &b[..n]).is_err(), "truncation to {n} bytes undetected");
        }
    }

    #[test]
    fn huge_length_fields_are_typed_errors() {
        let mut b = sample();
        b[PAYLOAD_LEN_AT..PAYLOAD_LEN_AT + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decode(Path::new("x"), &b),
            Err(Error::Corruption { location: crate::error::Location::File { position, .. }, kind: CorruptionKind::BadLength { .. } }) if position == PAYLOAD_LEN_AT as u64
        ));
        let mut b = sample();
        b[NAME_LEN_AT..NAME_LEN_AT + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode(Path::new("x"), &b),
            Err(Error::Corruption { kind: CorruptionKind::BadLength { .. }, .. })
        ));
    }

    proptest::proptest! {
        /// Arbitrary bytes, alone or behind a valid magic and version, never panic the decoder.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = decode(Path::new("x"), &bytes);
            let mut b = MAGIC.to_vec();
            b.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
            b.extend_from_slice(&bytes);
            let _ = decode(Path::new("x"), &b);
        }
    }
}

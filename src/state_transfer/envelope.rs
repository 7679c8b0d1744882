//! The state envelope: the payload of a record that carries a key's state change (its `op`,
//! the state `before` and the state `after`). Its byte layout is specified in
//! `docs/format.md` ("The state envelope"):
//!
//! | at | size | field      | meaning |
//! |----|------|------------|---------|
//! | 0  | 4    | magic      | `TLSE` |
//! | 4  | 1    | version    | 1 |
//! | 5  | 1    | op         | 1 create, 2 update, 3 delete |
//! | 6  | 2    | flags      | bit 0: `before` present; bit 1: `after` present; bit 2: `before` unknown |
//! | 8  | 4    | before_len | bytes of `before` (0 when absent) |
//! | 12 | 4    | after_len  | bytes of `after` (0 when absent) |
//! | 16 | 4    | crc        | CRC-32 (crc32fast) of bytes 0..16 and of everything after byte 20 |
//! | 20 | ...  | before, then after | |
//!
//! The payload is exactly `20 + before_len + after_len` bytes. Lengths are checked against
//! the bytes present before they are used; every combination of op and flags the format
//! does not allow is an error, so a decoded envelope is always one the engine could have
//! written.

use crate::error::{CorruptionKind, Error, Result};
use crate::record::{OwnedRecord, RecordView};

/// The first four bytes of every envelope.
pub const ENVELOPE_MAGIC: [u8; 4] = *b"TLSE";
/// The envelope layout version this build writes and reads.
pub const ENVELOPE_VERSION: u8 = 1;

const VERSION_AT: usize = 4;
const OP_AT: usize = VERSION_AT + 1;
const FLAGS_AT: usize = OP_AT + 1;
const BEFORE_LEN_AT: usize = FLAGS_AT + 2;
const AFTER_LEN_AT: usize = BEFORE_LEN_AT + 4;
const CRC_AT: usize = AFTER_LEN_AT + 4;
/// Bytes of the envelope's header, before the states.
pub const ENVELOPE_HEADER_LEN: usize = CRC_AT + 4;
const _: () = assert!(ENVELOPE_HEADER_LEN == 20);

const FLAG_BEFORE: u16 = 1;
const FLAG_AFTER: u16 = 1 << 1;
const FLAG_BEFORE_UNKNOWN: u16 = 1 << 2;
const KNOWN_FLAGS: u16 = FLAG_BEFORE | FLAG_AFTER | FLAG_BEFORE_UNKNOWN;

/// What a state change did to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// The key had no state (never, or its latest change deleted it): `after` only.
    Create,
    /// The key had a state: `before` (or the flag saying it is unknown) and `after`.
    Update,
    /// The key's state was removed: `before` (or unknown), no `after`. Written as a
    /// tombstone record.
    Delete,
}

impl Op {
    /// The op's byte in the envelope.
    fn code(self) -> u8 {
        match self {
            Op::Create => 1,
            Op::Update => 2,
            Op::Delete => 3,
        }
    }

    fn from_code(code: u8) -> Option<Op> {
        match code {
            1 => Some(Op::Create),
            2 => Some(Op::Update),
            3 => Some(Op::Delete),
            _ => None,
        }
    }

    /// A stable lowercase name: `"create"`, `"update"` or `"delete"`.
    pub fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The state of a key before a change, as the envelope knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Before<'a> {
    /// The key had no state (a create).
    Absent,
    /// The key's state before the change.
    State(&'a [u8]),
    /// The key had events, but retention removed them all before the change was published:
    /// its earlier state is not known.
    Unknown,
}

/// A decoded state envelope, borrowing its states from the record's payload.
///
/// ```
/// use tidelog::{Envelope, Log, Op, Options};
/// # fn main() -> Result<(), tidelog::Error> {
/// # let tmp = tempfile::tempdir().unwrap();
/// let log = Log::open(tmp.path().join("stock"), Options::default())?;
/// log.publish_state(b"sku-1", b"12")?;
/// let at = log.publish_state(b"sku-1", b"11")?.offset().unwrap();
/// log.read_with(at, |view| -> Result<(), tidelog::Error> {
///     let env = Envelope::decode(&view)?;
///     assert_eq!(env.op(), Op::Update);
///     assert_eq!((env.before_state(), env.after()), (Some(&b"12"[..]), Some(&b"11"[..])));
///     Ok(())
/// })??;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    offset: u64,
    op: Op,
    before: Before<'a>,
    after: Option<&'a [u8]>,
}

impl<'a> Envelope<'a> {
    /// Decode the envelope a record carries as its payload. A payload that is not an
    /// envelope, or a damaged or hostile one, is [`Error::InvalidEnvelope`], located by the
    /// record's offset and the byte of the payload where it goes wrong (no log: a record
    /// view does not know its log); never a panic.
    pub fn decode(record: &RecordView<'a>) -> Result<Envelope<'a>> {
        decode_payload(record.offset(), record.payload()).map_err(|(position, kind)| Error::InvalidEnvelope {
            log: None,
            offset: record.offset(),
            position,
            kind,
        })
    }

    /// [`Envelope::decode`] for a copied record (a consumer group's delivery, a stream event).
    pub fn decode_owned(record: &'a OwnedRecord) -> Result<Envelope<'a>> {
        decode_payload(record.offset, &record.payload).map_err(|(position, kind)| Error::InvalidEnvelope {
            log: None,
            offset: record.offset,
            position,
            kind,
        })
    }

    /// True if `payload` starts with the envelope's magic: the record is meant to be an
    /// envelope (decoding tells whether it is a valid one).
    pub fn looks_like_envelope(payload: &[u8]) -> bool {
        payload.starts_with(&ENVELOPE_MAGIC)
    }

    /// The offset of the record that carries the envelope.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// What the change did.
    pub fn op(&self) -> Op {
        self.op
    }

    /// The key's state before the change, as known when it was published.
    pub fn before(&self) -> Before<'a> {
        self.before
    }

    /// The state before the change, if the key had one and it is known.
    pub fn before_state(&self) -> Option<&'a [u8]> {
        match self.before {
            Before::State(s) => Some(s),
            Before::Absent | Before::Unknown => None,
        }
    }

    /// The key's state after the change (`None` for a delete).
    pub fn after(&self) -> Option<&'a [u8]> {
        self.after
    }
}

/// Encode an envelope. The combinations callers pass are those [`decode_payload`] accepts
/// (`publish.rs` builds them from the op it decided); the first assertion of a decode of
/// every encoded envelope is the unit test below.
pub(crate) fn encode(op: Op, before: Before<'_>, after: Option<&[u8]>) -> Result<Vec<u8>> {
    let before_bytes = match before {
        Before::State(s) => s,
        Before::Absent | Before::Unknown => &[],
    };
    let after_bytes = after.unwrap_or(&[]);
    let too_large = |_| Error::RecordTooLarge {
        size: (ENVELOPE_HEADER_LEN + before_bytes.len() + after_bytes.len()) as u64,
        max: u64::from(u32::MAX),
    };
    let before_len = u32::try_from(before_bytes.len()).map_err(too_large)?;
    let after_len = u32::try_from(after_bytes.len()).map_err(too_large)?;
    let mut flags = 0u16;
    match before {
        Before::State(_) => flags |= FLAG_BEFORE,
        Before::Unknown => flags |= FLAG_BEFORE_UNKNOWN,
        Before::Absent => {}
    }
    if after.is_some() {
        flags |= FLAG_AFTER;
    }
    let mut b = Vec::with_capacity(ENVELOPE_HEADER_LEN + before_bytes.len() + after_bytes.len());
    b.extend_from_slice(&ENVELOPE_MAGIC);
    b.push(ENVELOPE_VERSION);
    b.push(op.code());
    b.extend_from_slice(&flags.to_le_bytes());
    b.extend_from_slice(&before_len.to_le_bytes());
    b.extend_from_slice(&after_len.to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(before_bytes);
    b.extend_from_slice(after_bytes);
    let crc = checksum(&b);
    b[CRC_AT..ENVELOPE_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    Ok(b)
}

/// The envelope's checksum: bytes before the CRC field and every byte after it.
fn checksum(b: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&b[..CRC_AT]);
    h.update(&b[ENVELOPE_HEADER_LEN..]);
    h.finalize()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

/// Decode `payload` (of the record at `offset`). The error is the byte of the payload where
/// the envelope goes wrong and what is wrong there.
pub(crate) fn decode_payload(offset: u64, payload: &[u8]) -> std::result::Result<Envelope<'_>, (u64, CorruptionKind)> {
    if payload.len() < ENVELOPE_HEADER_LEN {
        // The header's length is what is missing: `len` is what the envelope needs at least.
        let needed = ENVELOPE_HEADER_LEN as u64;
        return Err((0, CorruptionKind::BadLength { len: needed, available: payload.len() as u64 }));
    }
    if payload[..VERSION_AT] != ENVELOPE_MAGIC || payload[VERSION_AT] != ENVELOPE_VERSION {
        let at = if payload[..VERSION_AT] != ENVELOPE_MAGIC { 0 } else { VERSION_AT };
        return Err((at as u64, CorruptionKind::BadMagic));
    }
    let before_len = u64::from(u32_at(payload, BEFORE_LEN_AT));
    let after_len = u64::from(u32_at(payload, AFTER_LEN_AT));
    // Validated before any slicing: the two lengths must account for every byte after the
    // header, no more and no fewer (u64 sums of two u32 cannot overflow).
    let available = (payload.len() - ENVELOPE_HEADER_LEN) as u64;
    if before_len + after_len != available {
        return Err((BEFORE_LEN_AT as u64, CorruptionKind::BadLength { len: before_len + after_len, available }));
    }
    let stored = u32_at(payload, CRC_AT);
    let computed = checksum(payload);
    if stored != computed {
        return Err((CRC_AT as u64, CorruptionKind::ChecksumMismatch { got: computed, expected: stored }));
    }
    let Some(op) = Op::from_code(payload[OP_AT]) else {
        return Err((OP_AT as u64, CorruptionKind::BadField("op")));
    };
    let flags = u16::from_le_bytes([payload[FLAGS_AT], payload[FLAGS_AT + 1]]);
    let bad_flags = Err((FLAGS_AT as u64, CorruptionKind::BadField("flags")));
    if flags & !KNOWN_FLAGS != 0 || (flags & FLAG_BEFORE != 0 && flags & FLAG_BEFORE_UNKNOWN != 0) {
        return bad_flags;
    }
    let (has_before, unknown, has_after) =
        (flags & FLAG_BEFORE != 0, flags & FLAG_BEFORE_UNKNOWN != 0, flags & FLAG_AFTER != 0);
    let allowed = match op {
        Op::Create => !has_before && !unknown && has_after,
        Op::Update => (has_before || unknown) && has_after,
        Op::Delete => (has_before || unknown) && !has_after,
    };
    if !allowed {
        return bad_flags;
    }
    // An absent state has no bytes.
    if !has_before && before_len != 0 {
        return Err((BEFORE_LEN_AT as u64, CorruptionKind::BadField("before_len")));
    }
    if !has_after && after_len != 0 {
        return Err((AFTER_LEN_AT as u64, CorruptionKind::BadField("after_len")));
    }
    let split = ENVELOPE_HEADER_LEN + before_len as usize;
    let before = match (has_before, unknown) {
        (true, _) => Before::State(&payload[ENVELOPE_HEADER_LEN..split]),
        (false, true) => Before::Unknown,
        (false, false) => Before::Absent,
    };
    let after = has_after.then(|| &payload[split..]);
    Ok(Envelope { offset, op, before, after })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_envelope_the_engine_writes_decodes_to_what_was_encoded() {
        let cases: [(Op, Before<'_>, Option<&[u8]>); 7] = [
            (Op::Create, Before::Absent, Some(b"a")),
            (Op::Create, Before::Absent, Some(b"")),
            (Op::Update, Before::State(b"a"), Some(b"bb")),
            (Op::Update, Before::State(b""), Some(b"")),
            (Op::Update, Before::Unknown, Some(b"c")),
            (Op::Delete, Before::State(b"c"), None),
            (Op::Delete, Before::Unknown, None),
        ];
        for (op, before, after) in cases {
            let b = encode(op, before, after).unwrap();
            let env = decode_payload(9, &b).unwrap();
            assert_eq!((env.offset(), env.op(), env.before(), env.after()), (9, op, before, after));
        }
    }

    #[test]
    fn every_truncation_and_every_flipped_bit_is_an_error() {
        let b = encode(Op::Update, Before::State(b"before"), Some(b"after")).unwrap();
        for len in 0..b.len() {
            assert!(decode_payload(0, &b[..len]).is_err(), "cut at {len}");
        }
        for i in 0..b.len() * 8 {
            let mut d = b.clone();
            d[i / 8] ^= 1 << (i % 8);
            assert!(decode_payload(0, &d).is_err(), "bit {i}");
        }
    }
}

//! Byte layouts of every file tidelog writes. `docs/format.md` is the prose version of this
//! module; the two must agree. All integers are little-endian with explicit widths.
//!
//! Record frame (8-byte aligned within a segment):
//!
//! | at | size | field        | meaning                                                    |
//! |----|------|--------------|------------------------------------------------------------|
//! | 0  | 4    | frame_len    | bytes of header + body, excluding alignment padding; 0 = end |
//! | 4  | 4    | crc          | CRC-32 (IEEE) of bytes [0,4) followed by [8, frame_len)    |
//! | 8  | 8    | offset       | the record's own offset                                    |
//! | 16 | 8    | timestamp_us | append time, µs since the Unix epoch, non-decreasing       |
//! | 24 | 4    | batch_rest   | records that follow in the same atomic batch               |
//! | 28 | 4    | key_len      | bytes of key                                               |
//! | 32 | 4    | headers_len  | bytes of the encoded header section                        |
//! | 36 | 2    | flags        | bit 0: the record has a key (possibly empty)               |
//! | 38 | 2    | reserved     | zero                                                       |
//! | 40 | …    | body         | key, header section, payload                               |
//!
//! The header section is a sequence of `{ name_len: u16, name: [u8], value_len: u32,
//! value: [u8] }` entries filling exactly `headers_len` bytes; names are UTF-8.

use crate::error::CorruptionKind;

/// Version written into every file header; bumped on any incompatible layout change.
pub const FORMAT_VERSION: u32 = 1;

// ---- record frame -------------------------------------------------------------------------

pub(crate) const FRAME_LEN_AT: usize = 0;
pub(crate) const CRC_AT: usize = FRAME_LEN_AT + 4;
pub(crate) const OFFSET_AT: usize = CRC_AT + 4;
pub(crate) const TIMESTAMP_AT: usize = OFFSET_AT + 8;
pub(crate) const BATCH_REST_AT: usize = TIMESTAMP_AT + 8;
pub(crate) const KEY_LEN_AT: usize = BATCH_REST_AT + 4;
pub(crate) const HEADERS_LEN_AT: usize = KEY_LEN_AT + 4;
pub(crate) const FLAGS_AT: usize = HEADERS_LEN_AT + 4;
pub(crate) const RESERVED_AT: usize = FLAGS_AT + 2;
/// Bytes of the fixed record header.
pub const RECORD_HEADER_LEN: usize = RESERVED_AT + 2;
const _: () = assert!(RECORD_HEADER_LEN == 40);
/// Records start at multiples of this within a segment.
pub const RECORD_ALIGN: usize = 8;
const _: () = assert!(RECORD_HEADER_LEN.is_multiple_of(RECORD_ALIGN));

pub(crate) const FLAG_HAS_KEY: u16 = 1;

/// Round `n` up to the record alignment. Callers guarantee `n` is far below `usize::MAX`
/// (it is bounded by the segment size, at most 4 GiB).
#[inline]
pub(crate) const fn align_up(n: usize) -> usize {
    (n + RECORD_ALIGN - 1) & !(RECORD_ALIGN - 1)
}

#[inline]
pub(crate) fn le_u16(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[at..at + 2]);
    u16::from_le_bytes(a)
}
#[inline]
pub(crate) fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}
#[inline]
pub(crate) fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}
#[inline]
pub(crate) fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
#[inline]
pub(crate) fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
#[inline]
pub(crate) fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// A record header decoded and validated against its checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub frame_len: u32,
    pub offset: u64,
    pub timestamp_us: u64,
    pub batch_rest: u32,
    pub key_len: u32,
    pub headers_len: u32,
    pub has_key: bool,
}

/// Outcome of decoding the frame at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A valid record: its header, and where its body lies within the buffer.
    Record(FrameHeader),
    /// Zero bytes where a frame length would be: the end of written data.
    End,
    /// The bytes at this position are not a valid frame.
    Invalid(CorruptionKind),
}

/// Decode and fully validate the frame at `pos` in `buf` (the published bytes of a segment).
/// `expected_offset`, when given, must match the stored offset. Never panics, whatever `buf`
/// holds: every length is checked against the space left before it is used.
pub(crate) fn decode_frame(buf: &[u8], pos: usize, expected_offset: Option<u64>) -> Frame {
    let available = buf.len().saturating_sub(pos);
    if available < 4 {
        return if buf[pos.min(buf.len())..].iter().all(|&b| b == 0) {
            Frame::End
        } else {
            Frame::Invalid(CorruptionKind::BadLength { len: 0, available: available as u64 })
        };
    }
    let frame_len = le_u32(buf, pos + FRAME_LEN_AT);
    if frame_len == 0 {
        return Frame::End;
    }
    if (frame_len as usize) < RECORD_HEADER_LEN || frame_len as usize > available {
        return Frame::Invalid(CorruptionKind::BadLength { len: frame_len as u64, available: available as u64 });
    }
    let frame = &buf[pos..pos + frame_len as usize];
    // The checksum covers the length field and everything after the checksum field.
    let mut h = crc32fast::Hasher::new();
    h.update(&frame[FRAME_LEN_AT..CRC_AT]);
    h.update(&frame[OFFSET_AT..]);
    let got = h.finalize();
    let expected = le_u32(frame, CRC_AT);
    if got != expected {
        return Frame::Invalid(CorruptionKind::ChecksumMismatch { got, expected });
    }
    let offset = le_u64(frame, OFFSET_AT);
    if let Some(want) = expected_offset {
        if offset != want {
            return Frame::Invalid(CorruptionKind::OffsetMismatch { got: offset, expected: want });
        }
    }
    let key_len = le_u32(frame, KEY_LEN_AT);
    let headers_len = le_u32(frame, HEADERS_LEN_AT);
    let flags = le_u16(frame, FLAGS_AT);
    let reserved = le_u16(frame, RESERVED_AT);
    if reserved != 0 {
        return Frame::Invalid(CorruptionKind::BadField("reserved"));
    }
    if flags & !FLAG_HAS_KEY != 0 {
        return Frame::Invalid(CorruptionKind::BadField("flags"));
    }
    let has_key = flags & FLAG_HAS_KEY != 0;
    if !has_key && key_len != 0 {
        return Frame::Invalid(CorruptionKind::BadField("key_len"));
    }
    let body = frame_len as u64 - RECORD_HEADER_LEN as u64;
    if key_len as u64 + headers_len as u64 > body {
        return Frame::Invalid(CorruptionKind::BadField("key_len/headers_len"));
    }
    let hstart = RECORD_HEADER_LEN + key_len as usize;
    if !headers_well_formed(&frame[hstart..hstart + headers_len as usize]) {
        return Frame::Invalid(CorruptionKind::BadField("headers"));
    }
    Frame::Record(FrameHeader {
        frame_len,
        offset,
        timestamp_us: le_u64(frame, TIMESTAMP_AT),
        batch_rest: le_u32(frame, BATCH_REST_AT),
        key_len,
        headers_len,
        has_key,
    })
}

/// Walk a header section once; true if it splits exactly into well-formed entries.
fn headers_well_formed(mut s: &[u8]) -> bool {
    while !s.is_empty() {
        match split_header(s) {
            Some((_, _, rest)) => s = rest,
            None => return false,
        }
    }
    true
}

/// Split the first header entry off a header section: (name, value, rest).
pub(crate) fn split_header(s: &[u8]) -> Option<(&str, &[u8], &[u8])> {
    if s.len() < 2 {
        return None;
    }
    let nlen = le_u16(s, 0) as usize;
    let s = &s[2..];
    if s.len() < nlen + 4 {
        return None;
    }
    let name = std::str::from_utf8(&s[..nlen]).ok()?;
    let vlen = le_u32(s, nlen) as usize;
    let s = &s[nlen + 4..];
    if s.len() < vlen {
        return None;
    }
    Some((name, &s[..vlen], &s[vlen..]))
}

// ---- segment file header ------------------------------------------------------------------

pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"TDLGSEG\0";
pub(crate) const SEG_VERSION_AT: usize = 8;
pub(crate) const SEG_HEADER_LEN_AT: usize = SEG_VERSION_AT + 4;
pub(crate) const SEG_BASE_AT: usize = SEG_HEADER_LEN_AT + 4;
pub(crate) const SEG_CREATED_AT: usize = SEG_BASE_AT + 8;
pub(crate) const SEG_CAPACITY_AT: usize = SEG_CREATED_AT + 8;
pub(crate) const SEG_CRC_AT: usize = 60;
/// Bytes of the segment header; the first record starts here.
pub const SEGMENT_HEADER_LEN: usize = SEG_CRC_AT + 4;
const _: () = assert!(SEGMENT_HEADER_LEN == 64);
const _: () = assert!(SEG_CAPACITY_AT + 8 <= SEG_CRC_AT);
const _: () = assert!(SEGMENT_HEADER_LEN.is_multiple_of(RECORD_ALIGN));

/// Fields of a segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub base_offset: u64,
    pub created_us: u64,
    pub capacity: u64,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[..8].copy_from_slice(&SEGMENT_MAGIC);
        put_u32(&mut b, SEG_VERSION_AT, FORMAT_VERSION);
        put_u32(&mut b, SEG_HEADER_LEN_AT, SEGMENT_HEADER_LEN as u32);
        put_u64(&mut b, SEG_BASE_AT, self.base_offset);
        put_u64(&mut b, SEG_CREATED_AT, self.created_us);
        put_u64(&mut b, SEG_CAPACITY_AT, self.capacity);
        let crc = crc32fast::hash(&b[..SEG_CRC_AT]);
        put_u32(&mut b, SEG_CRC_AT, crc);
        b
    }

    pub fn decode(b: &[u8]) -> Result<SegmentHeader, (usize, CorruptionKind)> {
        if b.len() < SEGMENT_HEADER_LEN {
            return Err((0, CorruptionKind::BadLength { len: SEGMENT_HEADER_LEN as u64, available: b.len() as u64 }));
        }
        if b[..8] != SEGMENT_MAGIC
            || le_u32(b, SEG_VERSION_AT) != FORMAT_VERSION
            || le_u32(b, SEG_HEADER_LEN_AT) != SEGMENT_HEADER_LEN as u32
        {
            return Err((0, CorruptionKind::BadMagic));
        }
        let got = crc32fast::hash(&b[..SEG_CRC_AT]);
        let expected = le_u32(b, SEG_CRC_AT);
        if got != expected {
            return Err((SEG_CRC_AT, CorruptionKind::ChecksumMismatch { got, expected }));
        }
        Ok(SegmentHeader {
            base_offset: le_u64(b, SEG_BASE_AT),
            created_us: le_u64(b, SEG_CREATED_AT),
            capacity: le_u64(b, SEG_CAPACITY_AT),
        })
    }
}

// ---- index files --------------------------------------------------------------------------

pub(crate) const OFFSET_INDEX_MAGIC: [u8; 8] = *b"TDLGIDX\0";
pub(crate) const TIME_INDEX_MAGIC: [u8; 8] = *b"TDLGTIX\0";
pub(crate) const IDX_VERSION_AT: usize = 8;
pub(crate) const IDX_INTERVAL_AT: usize = IDX_VERSION_AT + 4;
pub(crate) const IDX_BASE_AT: usize = IDX_INTERVAL_AT + 4;
pub(crate) const IDX_COUNT_AT: usize = IDX_BASE_AT + 8;
pub(crate) const IDX_END_POS_AT: usize = IDX_COUNT_AT + 8;
pub(crate) const IDX_NEXT_OFFSET_AT: usize = IDX_END_POS_AT + 8;
pub(crate) const IDX_MAX_TS_AT: usize = IDX_NEXT_OFFSET_AT + 8;
pub(crate) const IDX_FLAGS_AT: usize = IDX_MAX_TS_AT + 8;
pub(crate) const IDX_CRC_AT: usize = IDX_FLAGS_AT + 4;
/// Bytes of an index file header; entries follow.
pub const INDEX_HEADER_LEN: usize = IDX_CRC_AT + 4;
const _: () = assert!(INDEX_HEADER_LEN == 64);
pub(crate) const IDX_FLAG_SEALED: u32 = 1;
/// Offset index entry: relative offset u32, byte position u32.
pub const OFFSET_ENTRY_LEN: usize = 8;
/// Time index entry: timestamp u64, relative offset u32.
pub const TIME_ENTRY_LEN: usize = 12;

/// Header of an offset or time index file. The `sealed` fields describe the whole segment
/// once it is sealed; for the active segment they are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexHeader {
    pub magic: [u8; 8],
    pub interval_bytes: u32,
    pub base_offset: u64,
    pub entry_count: u64,
    pub end_pos: u64,
    pub next_offset: u64,
    pub max_timestamp_us: u64,
    pub sealed: bool,
}

impl IndexHeader {
    pub fn encode(&self) -> [u8; INDEX_HEADER_LEN] {
        let mut b = [0u8; INDEX_HEADER_LEN];
        b[..8].copy_from_slice(&self.magic);
        put_u32(&mut b, IDX_VERSION_AT, FORMAT_VERSION);
        put_u32(&mut b, IDX_INTERVAL_AT, self.interval_bytes);
        put_u64(&mut b, IDX_BASE_AT, self.base_offset);
        put_u64(&mut b, IDX_COUNT_AT, self.entry_count);
        put_u64(&mut b, IDX_END_POS_AT, self.end_pos);
        put_u64(&mut b, IDX_NEXT_OFFSET_AT, self.next_offset);
        put_u64(&mut b, IDX_MAX_TS_AT, self.max_timestamp_us);
        put_u32(&mut b, IDX_FLAGS_AT, if self.sealed { IDX_FLAG_SEALED } else { 0 });
        let crc = crc32fast::hash(&b[..IDX_CRC_AT]);
        put_u32(&mut b, IDX_CRC_AT, crc);
        b
    }

    /// Decode, requiring the given magic. `None` if anything is off: index files are derived
    /// data, and the caller rebuilds them rather than reporting.
    pub fn decode(b: &[u8], magic: [u8; 8]) -> Option<IndexHeader> {
        if b.len() < INDEX_HEADER_LEN || b[..8] != magic {
            return None;
        }
        if le_u32(b, IDX_VERSION_AT) != FORMAT_VERSION || crc32fast::hash(&b[..IDX_CRC_AT]) != le_u32(b, IDX_CRC_AT) {
            return None;
        }
        let flags = le_u32(b, IDX_FLAGS_AT);
        if flags & !IDX_FLAG_SEALED != 0 {
            return None;
        }
        Some(IndexHeader {
            magic,
            interval_bytes: le_u32(b, IDX_INTERVAL_AT),
            base_offset: le_u64(b, IDX_BASE_AT),
            entry_count: le_u64(b, IDX_COUNT_AT),
            end_pos: le_u64(b, IDX_END_POS_AT),
            next_offset: le_u64(b, IDX_NEXT_OFFSET_AT),
            max_timestamp_us: le_u64(b, IDX_MAX_TS_AT),
            sealed: flags & IDX_FLAG_SEALED != 0,
        })
    }
}

// ---- checkpoint ---------------------------------------------------------------------------

pub(crate) const CHECKPOINT_MAGIC: [u8; 8] = *b"TDLGCKP\0";
pub(crate) const CKP_VERSION_AT: usize = 8;
pub(crate) const CKP_FLAGS_AT: usize = CKP_VERSION_AT + 4;
pub(crate) const CKP_SEGMENT_AT: usize = CKP_FLAGS_AT + 4;
pub(crate) const CKP_POSITION_AT: usize = CKP_SEGMENT_AT + 8;
pub(crate) const CKP_NEXT_OFFSET_AT: usize = CKP_POSITION_AT + 8;
pub(crate) const CKP_LAST_TS_AT: usize = CKP_NEXT_OFFSET_AT + 8;
pub(crate) const CKP_CRC_AT: usize = 60;
/// Bytes of the checkpoint file.
pub const CHECKPOINT_LEN: usize = CKP_CRC_AT + 4;
const _: () = assert!(CKP_LAST_TS_AT + 8 <= CKP_CRC_AT);
const _: () = assert!(CHECKPOINT_LEN == 64);
pub(crate) const CKP_FLAG_CLEAN: u32 = 1;

/// The durable point of the log: every record before `next_offset` is on stable storage,
/// and its bytes end at `position` within segment `segment_base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub clean: bool,
    pub segment_base: u64,
    pub position: u64,
    pub next_offset: u64,
    pub last_timestamp_us: u64,
}

impl Checkpoint {
    pub fn encode(&self) -> [u8; CHECKPOINT_LEN] {
        let mut b = [0u8; CHECKPOINT_LEN];
        b[..8].copy_from_slice(&CHECKPOINT_MAGIC);
        put_u32(&mut b, CKP_VERSION_AT, FORMAT_VERSION);
        put_u32(&mut b, CKP_FLAGS_AT, if self.clean { CKP_FLAG_CLEAN } else { 0 });
        put_u64(&mut b, CKP_SEGMENT_AT, self.segment_base);
        put_u64(&mut b, CKP_POSITION_AT, self.position);
        put_u64(&mut b, CKP_NEXT_OFFSET_AT, self.next_offset);
        put_u64(&mut b, CKP_LAST_TS_AT, self.last_timestamp_us);
        let crc = crc32fast::hash(&b[..CKP_CRC_AT]);
        put_u32(&mut b, CKP_CRC_AT, crc);
        b
    }

    pub fn decode(b: &[u8]) -> Option<Checkpoint> {
        if b.len() != CHECKPOINT_LEN
            || b[..8] != CHECKPOINT_MAGIC
            || le_u32(b, CKP_VERSION_AT) != FORMAT_VERSION
            || crc32fast::hash(&b[..CKP_CRC_AT]) != le_u32(b, CKP_CRC_AT)
        {
            return None;
        }
        Some(Checkpoint {
            clean: le_u32(b, CKP_FLAGS_AT) & CKP_FLAG_CLEAN != 0,
            segment_base: le_u64(b, CKP_SEGMENT_AT),
            position: le_u64(b, CKP_POSITION_AT),
            next_offset: le_u64(b, CKP_NEXT_OFFSET_AT),
            last_timestamp_us: le_u64(b, CKP_LAST_TS_AT),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_frame_never_panics_on_short_or_zero_buffers() {
        assert_eq!(decode_frame(&[], 0, None), Frame::End);
        assert_eq!(decode_frame(&[0, 0], 0, None), Frame::End);
        assert!(matches!(decode_frame(&[1, 0], 0, None), Frame::Invalid(_)));
        assert!(matches!(decode_frame(&[255; 64], 0, None), Frame::Invalid(_)));
        assert!(matches!(decode_frame(&[255; 64], 60, None), Frame::Invalid(_)));
    }

    #[test]
    fn checkpoint_round_trips_and_rejects_bit_flips() {
        let c = Checkpoint { clean: true, segment_base: 7, position: 4096, next_offset: 99, last_timestamp_us: 12345 };
        let b = c.encode();
        assert_eq!(Checkpoint::decode(&b), Some(c));
        for i in 0..b.len() * 8 {
            let mut d = b;
            d[i / 8] ^= 1 << (i % 8);
            assert_eq!(Checkpoint::decode(&d), None, "bit {i}");
        }
    }
}

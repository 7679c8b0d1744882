//! The 64-byte header at the start of every segment data file.

use crate::error::CorruptionKind;
use crate::format::{le_u32, le_u64, put_u32, put_u64, FORMAT_VERSION, RECORD_ALIGN};

pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"TDLGSEG\0";
pub(crate) const SEG_VERSION_AT: usize = 8;
pub(crate) const SEG_HEADER_LEN_AT: usize = SEG_VERSION_AT + 4;
pub(crate) const SEG_BASE_AT: usize = SEG_HEADER_LEN_AT + 4;
pub(crate) const SEG_CREATED_AT: usize = SEG_BASE_AT + 8;
pub(crate) const SEG_CAPACITY_AT: usize = SEG_CREATED_AT + 8;
/// Format version 2: segment flags (bit 0: offsets may have gaps). Zero in version 1 files.
pub(crate) const SEG_FLAGS_AT: usize = SEG_CAPACITY_AT + 8;
pub(crate) const SEG_CRC_AT: usize = 60;
/// Segment flag: the segment's offsets may have gaps (it was rewritten by key compaction).
pub(crate) const SEG_FLAG_SPARSE_OFFSETS: u32 = 1;
/// Bytes of the segment header; the first record starts here.
pub const SEGMENT_HEADER_LEN: usize = SEG_CRC_AT + 4;
const _: () = assert!(SEGMENT_HEADER_LEN == 64);
const _: () = assert!(SEG_FLAGS_AT + 4 <= SEG_CRC_AT);
const _: () = assert!(SEGMENT_HEADER_LEN % RECORD_ALIGN == 0);

/// Fields of a segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub base_offset: u64,
    pub created_us: u64,
    pub capacity: u64,
    /// Offsets in this segment increase but may skip values (see `SEG_FLAG_SPARSE_OFFSETS`).
    pub sparse_offsets: bool,
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
        put_u32(&mut b, SEG_FLAGS_AT, if self.sparse_offsets { SEG_FLAG_SPARSE_OFFSETS } else { 0 });
        let crc = crc32fast::hash(&b[..SEG_CRC_AT]);
        put_u32(&mut b, SEG_CRC_AT, crc);
        b
    }

    pub fn decode(b: &[u8]) -> Result<SegmentHeader, (usize, CorruptionKind)> {
        if b.len() < SEGMENT_HEADER_LEN {
            return Err((0, CorruptionKind::BadLength { len: SEGMENT_HEADER_LEN as u64, available: b.len() as u64 }));
        }
        if b[..8] != SEGMENT_MAGIC
            || !(1..=FORMAT_VERSION).contains(&le_u32(b, SEG_VERSION_AT))
            || le_u32(b, SEG_HEADER_LEN_AT) != SEGMENT_HEADER_LEN as u32
        {
            return Err((0, CorruptionKind::BadMagic));
        }
        let got = crc32fast::hash(&b[..SEG_CRC_AT]);
        let expected = le_u32(b, SEG_CRC_AT);
        if got != expected {
            return Err((SEG_CRC_AT, CorruptionKind::ChecksumMismatch { got, expected }));
        }
        let flags = le_u32(b, SEG_FLAGS_AT);
        if flags & !SEG_FLAG_SPARSE_OFFSETS != 0 {
            return Err((SEG_FLAGS_AT, CorruptionKind::BadField("segment flags")));
        }
        Ok(SegmentHeader {
            base_offset: le_u64(b, SEG_BASE_AT),
            created_us: le_u64(b, SEG_CREATED_AT),
            capacity: le_u64(b, SEG_CAPACITY_AT),
            sparse_offsets: flags & SEG_FLAG_SPARSE_OFFSETS != 0,
        })
    }
}

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
/// Sparse segments only (written whole, already sealed): where the records end, and one past
/// the last offset the segment spans (the next segment's base). Zero in other segments.
pub(crate) const SEG_END_POS_AT: usize = SEG_FLAGS_AT + 4;
pub(crate) const SEG_NEXT_OFFSET_AT: usize = SEG_END_POS_AT + 8;
pub(crate) const SEG_CRC_AT: usize = 60;
/// Segment flag: the segment's offsets may have gaps (it was rewritten by key compaction).
pub(crate) const SEG_FLAG_SPARSE_OFFSETS: u32 = 1;
/// Bytes of the segment header; the first record starts here.
pub const SEGMENT_HEADER_LEN: usize = SEG_CRC_AT + 4;
const _: () = assert!(SEGMENT_HEADER_LEN == 64);
const _: () = assert!(SEG_NEXT_OFFSET_AT + 8 <= SEG_CRC_AT);
const _: () = assert!(SEGMENT_HEADER_LEN.is_multiple_of(RECORD_ALIGN));

/// Fields of a segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub base_offset: u64,
    pub created_us: u64,
    pub capacity: u64,
    /// Offsets in this segment increase but may skip values (see `SEG_FLAG_SPARSE_OFFSETS`).
    pub sparse_offsets: bool,
    /// Sparse segments: where their records end and one past the last offset they span.
    /// Such a segment is written whole, so its header can say where it ends; without this
    /// a lost tail would be indistinguishable from removed records. Zero otherwise.
    pub end_pos: u64,
    pub next_offset: u64,
}

impl SegmentHeader {
    /// The header of a segment whose offsets are dense (every segment the writer creates).
    pub fn dense(base_offset: u64, created_us: u64, capacity: u64) -> SegmentHeader {
        SegmentHeader { base_offset, created_us, capacity, sparse_offsets: false, end_pos: 0, next_offset: 0 }
    }

    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[..8].copy_from_slice(&SEGMENT_MAGIC);
        put_u32(&mut b, SEG_VERSION_AT, FORMAT_VERSION);
        put_u32(&mut b, SEG_HEADER_LEN_AT, SEGMENT_HEADER_LEN as u32);
        put_u64(&mut b, SEG_BASE_AT, self.base_offset);
        put_u64(&mut b, SEG_CREATED_AT, self.created_us);
        put_u64(&mut b, SEG_CAPACITY_AT, self.capacity);
        put_u32(&mut b, SEG_FLAGS_AT, if self.sparse_offsets { SEG_FLAG_SPARSE_OFFSETS } else { 0 });
        put_u64(&mut b, SEG_END_POS_AT, self.end_pos);
        put_u64(&mut b, SEG_NEXT_OFFSET_AT, self.next_offset);
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
        let h = SegmentHeader {
            base_offset: le_u64(b, SEG_BASE_AT),
            created_us: le_u64(b, SEG_CREATED_AT),
            capacity: le_u64(b, SEG_CAPACITY_AT),
            sparse_offsets: flags & SEG_FLAG_SPARSE_OFFSETS != 0,
            end_pos: le_u64(b, SEG_END_POS_AT),
            next_offset: le_u64(b, SEG_NEXT_OFFSET_AT),
        };
        if h.sparse_offsets && (h.end_pos < SEGMENT_HEADER_LEN as u64 || h.end_pos > h.capacity) {
            return Err((SEG_END_POS_AT, CorruptionKind::BadField("end_pos")));
        }
        // The offsets a segment spans are relative offsets (`u32`) in its index.
        if h.sparse_offsets && (h.next_offset <= h.base_offset || h.next_offset - h.base_offset > u32::MAX as u64) {
            return Err((SEG_NEXT_OFFSET_AT, CorruptionKind::BadField("next_offset")));
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sparse(end_pos: u64, next_offset: u64) -> SegmentHeader {
        SegmentHeader { base_offset: 100, created_us: 5, capacity: 4096, sparse_offsets: true, end_pos, next_offset }
    }

    #[test]
    fn a_sparse_header_round_trips_with_where_it_ends() {
        let h = sparse(2048, 150);
        assert_eq!(SegmentHeader::decode(&h.encode()), Ok(h));
        let d = SegmentHeader::dense(100, 5, 4096);
        assert_eq!(SegmentHeader::decode(&d.encode()), Ok(d));
    }

    #[test]
    fn a_sparse_header_must_end_inside_its_file_and_span_some_offsets() {
        for (h, at) in [
            (sparse(32, 150), SEG_END_POS_AT),
            (sparse(4097, 150), SEG_END_POS_AT),
            (sparse(2048, 100), SEG_NEXT_OFFSET_AT),
            (sparse(2048, 100 + (1 << 32)), SEG_NEXT_OFFSET_AT),
        ] {
            assert!(
                matches!(SegmentHeader::decode(&h.encode()), Err((p, CorruptionKind::BadField(_))) if p == at),
                "{h:?}"
            );
        }
    }
}

//! The index file header, shared by the offset index and the time index.

use crate::format::{le_u32, le_u64, put_u32, put_u64, FORMAT_VERSION};

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
        if !(1..=FORMAT_VERSION).contains(&le_u32(b, IDX_VERSION_AT))
            || crc32fast::hash(&b[..IDX_CRC_AT]) != le_u32(b, IDX_CRC_AT)
        {
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

//! The secondary index file of one sealed segment (`{base:020}.{name}.vindex`): a 96-byte
//! header, then a table of the distinct values (32 bytes each), then the postings (the
//! relative offsets of the records of each value, 4 bytes each), then the value bytes.
//!
//! The generic index file (`format::index`) holds fixed-width entries only; an index view
//! stores its values themselves (so that a lookup compares them and a hash collision never
//! changes a result, and so that an ordered index can answer a range of values), which needs
//! a variable-length part: hence a layout of its own. `docs/format.md` specifies it.

use crate::format::index::key_hash;
use crate::format::{le_u32, le_u64, put_u32, put_u64};

/// The hash of a value in a secondary index file: the key index's FNV-1a 64 of its bytes,
/// then the 64-bit finalizer of MurmurHash3 (`fmix64`). FNV-1a alone leaves the high bits
/// of short values that differ in their last bytes (`key-0000017`, `key-0000018`) close
/// together, and the file is searched by interpolating on the hash: its values must be
/// spread evenly over all 64 bits.
pub(crate) fn value_hash(value: &[u8]) -> u64 {
    let mut k = key_hash(value);
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// Magic of a secondary index file.
pub(crate) const VIEW_INDEX_MAGIC: [u8; 8] = *b"TDLGVIX\0";
/// Version of the secondary index file layout.
pub(crate) const VIEW_INDEX_VERSION: u32 = 1;

pub(crate) const VIX_VERSION_AT: usize = 8;
pub(crate) const VIX_FLAGS_AT: usize = VIX_VERSION_AT + 4;
pub(crate) const VIX_DEFINITION_AT: usize = VIX_FLAGS_AT + 4;
pub(crate) const VIX_BASE_AT: usize = VIX_DEFINITION_AT + 8;
pub(crate) const VIX_NEXT_OFFSET_AT: usize = VIX_BASE_AT + 8;
pub(crate) const VIX_END_POS_AT: usize = VIX_NEXT_OFFSET_AT + 8;
pub(crate) const VIX_MAX_TS_AT: usize = VIX_END_POS_AT + 8;
pub(crate) const VIX_RECORDS_AT: usize = VIX_MAX_TS_AT + 8;
pub(crate) const VIX_VALUES_AT: usize = VIX_RECORDS_AT + 8;
pub(crate) const VIX_BLOB_LEN_AT: usize = VIX_VALUES_AT + 8;
pub(crate) const VIX_BODY_CRC_AT: usize = VIX_BLOB_LEN_AT + 8;
pub(crate) const VIX_DEF_VERSION_AT: usize = VIX_BODY_CRC_AT + 4;
pub(crate) const VIX_RESERVED_AT: usize = VIX_DEF_VERSION_AT + 4;
pub(crate) const VIX_CRC_AT: usize = VIX_RESERVED_AT + 4;
/// Bytes of the header; the value table follows.
pub(crate) const VIEW_INDEX_HEADER_LEN: usize = VIX_CRC_AT + 4;
const _: () = assert!(VIEW_INDEX_HEADER_LEN == 96);

/// Flag bit 0: the values are sorted by their bytes (the index answers ranges); without it
/// they are sorted by (hash, bytes).
pub(crate) const VIX_FLAG_ORDERED: u32 = 1;

/// Bytes of one value table entry.
pub(crate) const VALUE_ENTRY_LEN: usize = 32;
/// Bytes of one posting (a relative offset).
pub(crate) const POSTING_LEN: usize = 4;

/// The header of a secondary index file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ViewIndexHeader {
    pub ordered: bool,
    /// Fingerprint of the index definition the file was built by.
    pub definition: u64,
    /// The definition's version (informative: the fingerprint covers it).
    pub definition_version: u32,
    pub base_offset: u64,
    /// The segment's next offset: the file reflects every record below it.
    pub next_offset: u64,
    /// Bytes of the segment (header and records).
    pub end_pos: u64,
    /// Timestamp of the segment's last record.
    pub max_timestamp_us: u64,
    /// Number of postings (records that carry a value).
    pub records: u64,
    /// Number of distinct values.
    pub values: u64,
    /// Bytes of the value area.
    pub blob_len: u64,
    /// CRC-32 of every byte after the header.
    pub body_crc: u32,
}

impl ViewIndexHeader {
    pub fn encode(&self) -> [u8; VIEW_INDEX_HEADER_LEN] {
        let mut b = [0u8; VIEW_INDEX_HEADER_LEN];
        b[..8].copy_from_slice(&VIEW_INDEX_MAGIC);
        put_u32(&mut b, VIX_VERSION_AT, VIEW_INDEX_VERSION);
        put_u32(&mut b, VIX_FLAGS_AT, if self.ordered { VIX_FLAG_ORDERED } else { 0 });
        put_u64(&mut b, VIX_DEFINITION_AT, self.definition);
        put_u64(&mut b, VIX_BASE_AT, self.base_offset);
        put_u64(&mut b, VIX_NEXT_OFFSET_AT, self.next_offset);
        put_u64(&mut b, VIX_END_POS_AT, self.end_pos);
        put_u64(&mut b, VIX_MAX_TS_AT, self.max_timestamp_us);
        put_u64(&mut b, VIX_RECORDS_AT, self.records);
        put_u64(&mut b, VIX_VALUES_AT, self.values);
        put_u64(&mut b, VIX_BLOB_LEN_AT, self.blob_len);
        put_u32(&mut b, VIX_BODY_CRC_AT, self.body_crc);
        put_u32(&mut b, VIX_DEF_VERSION_AT, self.definition_version);
        let crc = crc32fast::hash(&b[..VIX_CRC_AT]);
        put_u32(&mut b, VIX_CRC_AT, crc);
        b
    }

    /// Decode a header. `None` if anything is off (magic, version, flags, reserved bytes,
    /// checksum): the file is derived data and is rebuilt.
    pub fn decode(b: &[u8]) -> Option<ViewIndexHeader> {
        if b.len() < VIEW_INDEX_HEADER_LEN || b[..8] != VIEW_INDEX_MAGIC {
            return None;
        }
        if le_u32(b, VIX_VERSION_AT) != VIEW_INDEX_VERSION
            || crc32fast::hash(&b[..VIX_CRC_AT]) != le_u32(b, VIX_CRC_AT)
            || le_u32(b, VIX_FLAGS_AT) & !VIX_FLAG_ORDERED != 0
            || le_u32(b, VIX_RESERVED_AT) != 0
        {
            return None;
        }
        Some(ViewIndexHeader {
            ordered: le_u32(b, VIX_FLAGS_AT) & VIX_FLAG_ORDERED != 0,
            definition: le_u64(b, VIX_DEFINITION_AT),
            definition_version: le_u32(b, VIX_DEF_VERSION_AT),
            base_offset: le_u64(b, VIX_BASE_AT),
            next_offset: le_u64(b, VIX_NEXT_OFFSET_AT),
            end_pos: le_u64(b, VIX_END_POS_AT),
            max_timestamp_us: le_u64(b, VIX_MAX_TS_AT),
            records: le_u64(b, VIX_RECORDS_AT),
            values: le_u64(b, VIX_VALUES_AT),
            blob_len: le_u64(b, VIX_BLOB_LEN_AT),
            body_crc: le_u32(b, VIX_BODY_CRC_AT),
        })
    }

    /// Where the postings start, where the value area starts and the whole file's length, if
    /// they fit in `usize`.
    pub fn layout(&self) -> Option<Layout> {
        let values = usize::try_from(self.values).ok()?;
        let records = usize::try_from(self.records).ok()?;
        let blob = usize::try_from(self.blob_len).ok()?;
        let postings_at = VIEW_INDEX_HEADER_LEN.checked_add(values.checked_mul(VALUE_ENTRY_LEN)?)?;
        let blob_at = postings_at.checked_add(records.checked_mul(POSTING_LEN)?)?;
        let file_len = blob_at.checked_add(blob)?;
        Some(Layout { values, records, postings_at, blob_at, file_len })
    }
}

/// Where the parts of a file lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub values: usize,
    pub records: usize,
    pub postings_at: usize,
    pub blob_at: usize,
    pub file_len: usize,
}

/// One distinct value: its hash, where its bytes are in the value area, and its run of
/// postings (`first..first + count`, relative offsets in increasing order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ValueEntry {
    pub hash: u64,
    pub blob_at: u64,
    pub len: u32,
    pub first: u32,
    pub count: u32,
}

impl ValueEntry {
    pub fn put(&self, out: &mut [u8]) {
        put_u64(out, 0, self.hash);
        put_u64(out, 8, self.blob_at);
        put_u32(out, 16, self.len);
        put_u32(out, 20, self.first);
        put_u32(out, 24, self.count);
        put_u32(out, 28, 0);
    }

    pub fn get(b: &[u8]) -> ValueEntry {
        ValueEntry {
            hash: le_u64(b, 0),
            blob_at: le_u64(b, 8),
            len: le_u32(b, 16),
            first: le_u32(b, 20),
            count: le_u32(b, 24),
        }
    }

    /// The reserved field of an encoded entry (must be zero).
    pub fn reserved(b: &[u8]) -> u32 {
        le_u32(b, 28)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> ViewIndexHeader {
        ViewIndexHeader {
            ordered: true,
            definition: 0x1234_5678_9abc_def0,
            definition_version: 3,
            base_offset: 100,
            next_offset: 250,
            end_pos: 9000,
            max_timestamp_us: 77,
            records: 140,
            values: 12,
            blob_len: 60,
            body_crc: 0xdead_beef,
        }
    }

    #[test]
    fn a_view_index_header_round_trips_and_every_bit_flip_is_refused() {
        let b = header().encode();
        assert_eq!(ViewIndexHeader::decode(&b), Some(header()));
        for bit in 0..VIEW_INDEX_HEADER_LEN * 8 {
            let mut d = b;
            d[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(ViewIndexHeader::decode(&d), None, "bit {bit}");
        }
        assert_eq!(ViewIndexHeader::decode(&b[..95]), None);
    }

    #[test]
    fn the_layout_puts_postings_after_the_table_and_values_last() {
        let l = header().layout().unwrap();
        assert_eq!(l.postings_at, 96 + 12 * 32);
        assert_eq!(l.blob_at, 96 + 12 * 32 + 140 * 4);
        assert_eq!(l.file_len, l.blob_at + 60);
        let huge = ViewIndexHeader { values: u64::MAX, ..header() };
        assert_eq!(huge.layout(), None, "a hostile count neither overflows nor panics");
    }

    #[test]
    fn the_value_hash_is_fnv_1a_then_fmix64() {
        let fmix = |mut k: u64| {
            k ^= k >> 33;
            k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
            k ^= k >> 33;
            k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
            k ^ (k >> 33)
        };
        assert_eq!(value_hash(b"a"), fmix(0xaf63_dc4c_8601_ec8c));
        // Values differing in their last byte land far apart in the high bits.
        let (x, y) = (value_hash(b"key-0000017") >> 48, value_hash(b"key-0000018") >> 48);
        assert!(x.abs_diff(y) > 16, "{x:x} {y:x}");
    }

    #[test]
    fn a_value_entry_round_trips() {
        let e = ValueEntry { hash: u64::MAX, blob_at: 1 << 40, len: 7, first: 3, count: 9 };
        let mut b = [0u8; VALUE_ENTRY_LEN];
        e.put(&mut b);
        assert_eq!(ValueEntry::get(&b), e);
        assert_eq!(ValueEntry::reserved(&b), 0);
    }
}

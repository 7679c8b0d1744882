//! The index file: one layout for every kind of segment index. A 64-byte header names the
//! kind (its magic) and the width of its entries; fixed-width entries follow, sorted by the
//! kind's key. The offset index and the time index are two kinds; a new kind is a new
//! [`IndexKind`] constant and a type implementing [`IndexEntryCodec`].

use crate::format::{le_u16, le_u32, le_u64, put_u16, put_u32, put_u64, FORMAT_VERSION};

pub(crate) const IDX_VERSION_AT: usize = 8;
pub(crate) const IDX_INTERVAL_AT: usize = IDX_VERSION_AT + 4;
pub(crate) const IDX_BASE_AT: usize = IDX_INTERVAL_AT + 4;
pub(crate) const IDX_COUNT_AT: usize = IDX_BASE_AT + 8;
pub(crate) const IDX_END_POS_AT: usize = IDX_COUNT_AT + 8;
pub(crate) const IDX_NEXT_OFFSET_AT: usize = IDX_END_POS_AT + 8;
pub(crate) const IDX_MAX_TS_AT: usize = IDX_NEXT_OFFSET_AT + 8;
pub(crate) const IDX_FLAGS_AT: usize = IDX_MAX_TS_AT + 8;
/// Entry width in bytes. Zero in files written before the field existed (format version 1
/// and early version 2, where this was the upper half of a `u32` flags word that was always
/// zero there): the kind's width applies.
pub(crate) const IDX_ENTRY_LEN_AT: usize = IDX_FLAGS_AT + 2;
pub(crate) const IDX_CRC_AT: usize = IDX_ENTRY_LEN_AT + 2;
/// Bytes of an index file header; entries follow.
pub const INDEX_HEADER_LEN: usize = IDX_CRC_AT + 4;
const _: () = assert!(INDEX_HEADER_LEN == 64);
pub(crate) const IDX_FLAG_SEALED: u16 = 1;

/// A kind of index file: its magic and the width of its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexKind {
    pub magic: [u8; 8],
    pub entry_len: usize,
}

/// The offset index (`.index`): relative offset u32, byte position u32, sorted by offset.
pub(crate) const OFFSET_INDEX: IndexKind = IndexKind { magic: *b"TDLGIDX\0", entry_len: 8 };
/// The time index (`.timeindex`): timestamp u64, relative offset u32, sorted by timestamp.
pub(crate) const TIME_INDEX: IndexKind = IndexKind { magic: *b"TDLGTIX\0", entry_len: 12 };

/// The key index (`.keyindex`): key hash u64, relative offset u32, byte position u32, sorted
/// by (hash, offset). Its header's `interval_bytes` field holds the CRC-32 of the entries.
pub(crate) const KEY_INDEX: IndexKind = IndexKind { magic: *b"TDLGKIX\0", entry_len: 16 };

/// A fixed-width index entry of one kind.
pub(crate) trait IndexEntryCodec: Sized {
    /// The file kind holding entries of this type.
    const KIND: IndexKind;
    /// Write the entry into `out` (exactly `KIND.entry_len` bytes).
    fn put(&self, out: &mut [u8]);
    /// Read an entry from `b` (exactly `KIND.entry_len` bytes).
    fn get(b: &[u8]) -> Self;
}

/// An offset index entry: the record with offset `base + rel` starts at byte `pos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub rel: u32,
    pub pos: u32,
}

impl IndexEntryCodec for OffsetEntry {
    const KIND: IndexKind = OFFSET_INDEX;
    fn put(&self, out: &mut [u8]) {
        put_u32(out, 0, self.rel);
        put_u32(out, 4, self.pos);
    }
    fn get(b: &[u8]) -> Self {
        OffsetEntry { rel: le_u32(b, 0), pos: le_u32(b, 4) }
    }
}

/// A time index entry: the record with offset `base + rel` has timestamp `ts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub ts: u64,
    pub rel: u32,
}

impl IndexEntryCodec for TimeEntry {
    const KIND: IndexKind = TIME_INDEX;
    fn put(&self, out: &mut [u8]) {
        put_u64(out, 0, self.ts);
        put_u32(out, 8, self.rel);
    }
    fn get(b: &[u8]) -> Self {
        TimeEntry { ts: le_u64(b, 0), rel: le_u32(b, 8) }
    }
}

/// A key index entry: the record with offset `base + rel`, at byte `pos`, has a key whose
/// [`key_hash`] is `hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct KeyEntry {
    pub hash: u64,
    pub rel: u32,
    pub pos: u32,
}

impl IndexEntryCodec for KeyEntry {
    const KIND: IndexKind = KEY_INDEX;
    fn put(&self, out: &mut [u8]) {
        put_u64(out, 0, self.hash);
        put_u32(out, 8, self.rel);
        put_u32(out, 12, self.pos);
    }
    fn get(b: &[u8]) -> Self {
        KeyEntry { hash: le_u64(b, 0), rel: le_u32(b, 8), pos: le_u32(b, 12) }
    }
}

/// The hash of a record key in the key index: 64-bit FNV-1a (offset basis
/// `0xcbf29ce484222325`, prime `0x100000001b3`, one byte at a time). Fixed by its
/// specification, so files written by one build are read by every other; collisions only
/// cost a comparison, because a lookup checks each record's actual key.
pub(crate) fn key_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Encode `entries` back to back (the bytes that follow the header, or that are appended to
/// an active index file).
pub(crate) fn encode_entries<E: IndexEntryCodec>(entries: impl ExactSizeIterator<Item = E>) -> Vec<u8> {
    let w = E::KIND.entry_len;
    let mut out = vec![0u8; entries.len() * w];
    for (e, slot) in entries.zip(out.chunks_exact_mut(w)) {
        e.put(slot);
    }
    out
}

/// Entry `i` of the entry bytes `b` (which follow the header).
#[inline]
pub(crate) fn entry_at<E: IndexEntryCodec>(b: &[u8], i: usize) -> E {
    let w = E::KIND.entry_len;
    E::get(&b[i * w..(i + 1) * w])
}

/// Header of an index file. The `sealed` fields describe the whole segment once it is
/// sealed; for the active segment they are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexHeader {
    pub kind: IndexKind,
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
        b[..8].copy_from_slice(&self.kind.magic);
        put_u32(&mut b, IDX_VERSION_AT, FORMAT_VERSION);
        put_u32(&mut b, IDX_INTERVAL_AT, self.interval_bytes);
        put_u64(&mut b, IDX_BASE_AT, self.base_offset);
        put_u64(&mut b, IDX_COUNT_AT, self.entry_count);
        put_u64(&mut b, IDX_END_POS_AT, self.end_pos);
        put_u64(&mut b, IDX_NEXT_OFFSET_AT, self.next_offset);
        put_u64(&mut b, IDX_MAX_TS_AT, self.max_timestamp_us);
        put_u16(&mut b, IDX_FLAGS_AT, if self.sealed { IDX_FLAG_SEALED } else { 0 });
        // Widths are a few bytes; a width that did not fit would be written as 0 ("the kind's").
        put_u16(&mut b, IDX_ENTRY_LEN_AT, u16::try_from(self.kind.entry_len).unwrap_or(0));
        let crc = crc32fast::hash(&b[..IDX_CRC_AT]);
        put_u32(&mut b, IDX_CRC_AT, crc);
        b
    }

    /// Decode, requiring the given kind (its magic, and its entry width when the file states
    /// one). `None` if anything is off: index files are derived data, and the caller rebuilds
    /// them rather than reporting.
    pub fn decode(b: &[u8], kind: IndexKind) -> Option<IndexHeader> {
        if b.len() < INDEX_HEADER_LEN || b[..8] != kind.magic {
            return None;
        }
        if !(1..=FORMAT_VERSION).contains(&le_u32(b, IDX_VERSION_AT))
            || crc32fast::hash(&b[..IDX_CRC_AT]) != le_u32(b, IDX_CRC_AT)
        {
            return None;
        }
        let flags = le_u16(b, IDX_FLAGS_AT);
        let width = le_u16(b, IDX_ENTRY_LEN_AT) as usize;
        if flags & !IDX_FLAG_SEALED != 0 || (width != 0 && width != kind.entry_len) {
            return None;
        }
        Some(IndexHeader {
            kind,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: IndexKind) -> IndexHeader {
        IndexHeader {
            kind,
            interval_bytes: 4096,
            base_offset: 7,
            entry_count: 3,
            end_pos: 640,
            next_offset: 19,
            max_timestamp_us: 1234,
            sealed: true,
        }
    }

    #[test]
    fn a_header_round_trips_and_names_its_kind_and_entry_width() {
        for kind in [OFFSET_INDEX, TIME_INDEX, KEY_INDEX] {
            let b = header(kind).encode();
            assert_eq!(le_u16(&b, IDX_ENTRY_LEN_AT) as usize, kind.entry_len);
            assert_eq!(IndexHeader::decode(&b, kind), Some(header(kind)));
        }
        let b = header(OFFSET_INDEX).encode();
        assert_eq!(IndexHeader::decode(&b, TIME_INDEX), None, "another kind's file is refused");
    }

    #[test]
    fn a_header_without_an_entry_width_takes_the_kinds_and_a_wrong_width_is_refused() {
        let mut b = header(TIME_INDEX).encode();
        put_u16(&mut b, IDX_ENTRY_LEN_AT, 0);
        let crc = crc32fast::hash(&b[..IDX_CRC_AT]);
        put_u32(&mut b, IDX_CRC_AT, crc);
        assert_eq!(IndexHeader::decode(&b, TIME_INDEX), Some(header(TIME_INDEX)));
        put_u16(&mut b, IDX_ENTRY_LEN_AT, 16);
        let crc = crc32fast::hash(&b[..IDX_CRC_AT]);
        put_u32(&mut b, IDX_CRC_AT, crc);
        assert_eq!(IndexHeader::decode(&b, TIME_INDEX), None);
    }

    #[test]
    fn sealed_index_files_of_format_version_1_decode() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-v1/clean");
        for (ext, kind) in [("index", OFFSET_INDEX), ("timeindex", TIME_INDEX)] {
            let b = std::fs::read(dir.join(format!("00000000000000000000.{ext}"))).unwrap();
            assert_eq!(le_u32(&b, IDX_VERSION_AT), 1);
            let h = IndexHeader::decode(&b, kind).unwrap();
            assert!(h.sealed, "{ext}");
            assert_eq!(b.len(), INDEX_HEADER_LEN + h.entry_count as usize * kind.entry_len, "{ext}");
        }
    }

    #[test]
    fn the_key_hash_is_fnv_1a_64_as_published() {
        // Test vectors of the FNV specification (draft-eastlake-fnv).
        assert_eq!(key_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(key_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(key_hash(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn entries_round_trip_at_their_kinds_width() {
        let keys = [KeyEntry { hash: u64::MAX, rel: 3, pos: 64 }];
        let b = encode_entries(keys.iter().copied());
        assert_eq!(b.len(), KEY_INDEX.entry_len);
        assert_eq!(entry_at::<KeyEntry>(&b, 0), keys[0]);
        let offs = [OffsetEntry { rel: 0, pos: 64 }, OffsetEntry { rel: 9, pos: 4200 }];
        let b = encode_entries(offs.iter().copied());
        assert_eq!(b.len(), 2 * OFFSET_INDEX.entry_len);
        assert_eq!(entry_at::<OffsetEntry>(&b, 1), offs[1]);
        let times = [TimeEntry { ts: 5, rel: 0 }, TimeEntry { ts: u64::MAX, rel: u32::MAX }];
        let b = encode_entries(times.iter().copied());
        assert_eq!(b.len(), 2 * TIME_INDEX.entry_len);
        assert_eq!(entry_at::<TimeEntry>(&b, 1), times[1]);
    }
}

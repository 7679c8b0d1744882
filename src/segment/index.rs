//! A segment's index files. [`MappedIndex`] is any sealed index file (the generic layout of
//! `format::index`), mapped read-only; the functions below build, append to and read back
//! files of any kind. The segment's sparse index is two instances, the offset index and the
//! time index: the active segment keeps its entries in memory (under a short `RwLock`) and
//! appends them to its index files lazily; a sealed segment's index files are immutable and
//! mapped read-only.
//!
//! Index entry `i` of the offset index and entry `i` of the time index describe the same
//! record. Indexes are derived data: a lookup that lands on a position whose record does not
//! validate falls back to a scan from the segment start, so a damaged index can slow a read
//! but never change its result.

use std::fs::{self, File, OpenOptions};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::error::{IoContext, Result};
use crate::format::index::{
    encode_entries, entry_at, IndexEntryCodec, IndexHeader, IndexKind, OffsetEntry, TimeEntry, INDEX_HEADER_LEN,
    OFFSET_INDEX, TIME_INDEX,
};
use crate::format::SEGMENT_HEADER_LEN;
use crate::io::fs as fsutil;
use crate::io::mmap::{self, SegmentMap};
use crate::io::storage;
use crate::segment::{SegmentId, SegmentPaths};

/// Number of entries `i < n` with `key(i) <= target`, for keys that never decrease.
///
/// Index keys (relative offsets, timestamps) grow almost linearly with the entry number, so an
/// interpolated first guess lands within a few entries of the answer; a gallop from the guess
/// brackets it and a binary search finishes. Each probe of a cold index is a cache miss, so
/// this takes two or three misses where a plain binary search takes `log2(n)`. Worst case
/// (skewed keys) stays O(log n).
pub(crate) fn count_le(n: usize, key: impl Fn(usize) -> u64, target: u64) -> usize {
    if n == 0 || key(0) > target {
        return 0;
    }
    let (k0, kn) = (key(0), key(n - 1));
    if kn <= target {
        return n;
    }
    // Here k0 <= target < kn, so the division is by a non-zero span.
    let guess = ((target - k0) as u128 * (n - 1) as u128 / (kn - k0) as u128) as usize;
    let guess = guess.min(n - 1);
    // Invariant once bracketed: key(lo) <= target < key(hi).
    let (mut lo, mut hi);
    if key(guess) <= target {
        lo = guess;
        let mut step = 1;
        loop {
            let p = lo + step;
            if p >= n - 1 {
                hi = n - 1;
                break;
            }
            if key(p) <= target {
                lo = p;
                step *= 2;
            } else {
                hi = p;
                break;
            }
        }
    } else {
        hi = guess;
        let mut step = 1;
        loop {
            if hi <= step {
                lo = 0;
                break;
            }
            let p = hi - step;
            if key(p) <= target {
                lo = p;
                break;
            }
            hi = p;
            step *= 2;
        }
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if key(mid) <= target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo + 1
}

/// One point of a segment's sparse index: the record at byte `pos` has relative offset `rel`
/// and timestamp `ts`. Stored as entry `i` of both the offset index and the time index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub rel: u32,
    pub pos: u32,
    pub ts: u64,
}

impl IndexEntry {
    fn offset_entry(&self) -> OffsetEntry {
        OffsetEntry { rel: self.rel, pos: self.pos }
    }
    fn time_entry(&self) -> TimeEntry {
        TimeEntry { ts: self.ts, rel: self.rel }
    }
}

/// The in-memory index of the active segment.
#[derive(Debug, Default)]
pub(crate) struct ActiveIndex {
    pub entries: Vec<IndexEntry>,
}

/// A sealed index file of one kind, mapped read-only: its header and `count` entries.
pub(crate) struct MappedIndex<E> {
    map: Arc<SegmentMap>,
    header: IndexHeader,
    count: usize,
    kind: PhantomData<fn() -> E>,
}

impl<E> std::fmt::Debug for MappedIndex<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedIndex").field("header", &self.header).field("count", &self.count).finish()
    }
}

impl<E: IndexEntryCodec> MappedIndex<E> {
    /// Map the index file at `path` if it is a sealed index of this kind for segment `base`
    /// whose length matches its entry count. `None` means: rebuild.
    pub fn open(path: &Path, base: u64) -> Option<MappedIndex<E>> {
        let file = File::open(path).ok()?;
        let map = mmap::map_whole_ro(&file).ok()?;
        let header = IndexHeader::decode(map.published_bytes(), E::KIND)?;
        let count = usize::try_from(header.entry_count).ok()?;
        let whole = INDEX_HEADER_LEN + count.checked_mul(E::KIND.entry_len)?;
        (header.sealed && header.base_offset == base && map.len() == whole).then_some(MappedIndex {
            map,
            header,
            count,
            kind: PhantomData,
        })
    }

    pub fn header(&self) -> &IndexHeader {
        &self.header
    }

    pub fn len(&self) -> usize {
        self.count
    }

    /// The bytes of all entries (what follows the header).
    pub fn entry_bytes(&self) -> &[u8] {
        &self.map.published_bytes()[INDEX_HEADER_LEN..]
    }

    /// Entry `i` (`i < len()`).
    #[inline]
    pub fn get(&self, i: usize) -> E {
        entry_at(&self.map.published_bytes()[INDEX_HEADER_LEN..], i)
    }
}

/// The bytes of a whole index file: `header`, then `entries`.
pub(crate) fn index_file_bytes<E: IndexEntryCodec>(
    header: IndexHeader,
    entries: impl ExactSizeIterator<Item = E>,
) -> Vec<u8> {
    let mut out = header.encode().to_vec();
    out.extend_from_slice(&encode_entries(entries));
    out
}

/// Read a whole index file of kind `E` for segment `base` (an active index: entries are
/// taken as far as the file holds whole ones): the file's bytes, whose entries follow
/// [`INDEX_HEADER_LEN`], and how many whole entries it holds. Entries are decoded where they
/// are used (`entry_at`), so that a clean open allocates the file once, not once more per
/// decoded copy. `None` if the file is missing or its header is off.
pub(crate) fn read_index_file<E: IndexEntryCodec>(path: &Path, base: u64) -> Option<(Vec<u8>, usize)> {
    let b = fs::read(path).ok()?;
    let h = IndexHeader::decode(&b, E::KIND)?;
    if h.base_offset != base {
        return None;
    }
    let n = (b.len() - INDEX_HEADER_LEN) / E::KIND.entry_len;
    Some((b, n))
}

/// Write `entries` into the open index file at `path` after its first `persisted` entries.
pub(crate) fn append_index_entries<E: IndexEntryCodec>(
    file: &File,
    path: &Path,
    persisted: usize,
    entries: impl ExactSizeIterator<Item = E>,
) -> Result<()> {
    let at = (INDEX_HEADER_LEN + persisted * E::KIND.entry_len) as u64;
    storage::write_all_at(file, path, &encode_entries(entries), at)
}

/// The mapped, immutable index files of a sealed segment.
#[derive(Debug)]
pub(crate) struct SealedIndex {
    offsets: MappedIndex<OffsetEntry>,
    times: MappedIndex<TimeEntry>,
}

impl SealedIndex {
    fn entry(&self, i: usize) -> IndexEntry {
        let o = self.offsets.get(i);
        IndexEntry { rel: o.rel, pos: o.pos, ts: self.times.get(i).ts }
    }
}

#[derive(Debug)]
pub(crate) enum SegIndex {
    Active(RwLock<ActiveIndex>),
    Sealed(SealedIndex),
}

impl SegIndex {
    /// Call `f` with the number of entries and a way to read entry `i`.
    pub(crate) fn with_entries<R>(&self, f: impl FnOnce(usize, &dyn Fn(usize) -> IndexEntry) -> R) -> R {
        match self {
            SegIndex::Active(lock) => {
                let idx = lock.read();
                f(idx.entries.len(), &|i| idx.entries[i])
            }
            SegIndex::Sealed(s) => f(s.offsets.len(), &|i| s.entry(i)),
        }
    }
}

/// The header of a segment's index files; `seal` fills the sealed fields.
pub(crate) fn index_header(
    kind: IndexKind,
    base: u64,
    interval: u32,
    count: usize,
    seal: Option<SealInfo>,
) -> IndexHeader {
    let s = seal.unwrap_or(SealInfo { end_pos: 0, next_offset: 0, max_ts: 0 });
    IndexHeader {
        kind,
        interval_bytes: interval,
        base_offset: base,
        entry_count: if seal.is_some() { count as u64 } else { 0 },
        end_pos: s.end_pos,
        next_offset: s.next_offset,
        max_timestamp_us: s.max_ts,
        sealed: seal.is_some(),
    }
}

/// The offset index and time index files of a segment with these entries.
fn offset_and_time_files(
    base: u64,
    interval: u32,
    entries: &[IndexEntry],
    seal: Option<SealInfo>,
) -> [(IndexKind, Vec<u8>); 2] {
    let n = entries.len();
    let o = index_header(OFFSET_INDEX, base, interval, n, seal);
    let t = index_header(TIME_INDEX, base, interval, n, seal);
    [
        (OFFSET_INDEX, index_file_bytes(o, entries.iter().map(IndexEntry::offset_entry))),
        (TIME_INDEX, index_file_bytes(t, entries.iter().map(IndexEntry::time_entry))),
    ]
}

/// Replace the active index files with these entries (temporary file + rename, so a follower
/// that maps an index never sees it shrink).
pub(crate) fn write_active_index_files(
    paths: &SegmentPaths,
    base: u64,
    interval: u32,
    entries: &[IndexEntry],
) -> Result<()> {
    for (kind, bytes) in offset_and_time_files(base, interval, entries, None) {
        let path = paths.index(kind);
        let tmp = fsutil::tmp_path(path);
        let mut f = storage::create(&tmp, OpenOptions::new().write(true).create(true).truncate(true))?;
        storage::write_all(&mut f, &tmp, &bytes)?;
        storage::rename(&tmp, path)?;
    }
    Ok(())
}

pub(crate) fn open_index_files_for_append(paths: &SegmentPaths) -> Result<(File, File)> {
    let o = OpenOptions::new().write(true).open(&paths.offset_index).at(&paths.offset_index)?;
    let t = OpenOptions::new().write(true).open(&paths.time_index).at(&paths.time_index)?;
    Ok((o, t))
}

/// Write the active index entries `new` into the index files opened by
/// [`open_index_files_for_append`], after the first `persisted` entries.
pub(crate) fn append_active_index_entries(
    files: &(File, File),
    paths: &SegmentPaths,
    persisted: usize,
    new: &[IndexEntry],
) -> Result<()> {
    append_index_entries(&files.0, &paths.offset_index, persisted, new.iter().map(IndexEntry::offset_entry))?;
    append_index_entries(&files.1, &paths.time_index, persisted, new.iter().map(IndexEntry::time_entry))
}

/// Facts about a sealed segment, stored in its index headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SealInfo {
    pub end_pos: u64,
    pub next_offset: u64,
    pub max_ts: u64,
}

/// Write the sealed index files of a segment to `dest(kind)`, each fsynced (the caller
/// renames them into place, or fsyncs the directory).
pub(crate) fn write_sealed_index_files_to(
    dest: impl Fn(IndexKind) -> PathBuf,
    base: u64,
    interval: u32,
    entries: &[IndexEntry],
    seal: SealInfo,
) -> Result<()> {
    for (kind, bytes) in offset_and_time_files(base, interval, entries, Some(seal)) {
        let path = dest(kind);
        let mut f = storage::create(&path, OpenOptions::new().write(true).create(true).truncate(true))?;
        storage::write_all(&mut f, &path, &bytes)?;
        storage::sync_all(&f, &path)?;
    }
    Ok(())
}

/// Write the sealed index files of a segment durably, in place: temporary files, fsynced,
/// renamed (the caller fsyncs the directory).
pub(crate) fn write_sealed_index_files(
    paths: &SegmentPaths,
    base: u64,
    interval: u32,
    entries: &[IndexEntry],
    seal: SealInfo,
) -> Result<()> {
    write_sealed_index_files_to(|k| fsutil::tmp_path(paths.index(k)), base, interval, entries, seal)?;
    for kind in [OFFSET_INDEX, TIME_INDEX] {
        let path = paths.index(kind);
        storage::rename(&fsutil::tmp_path(path), path)?;
    }
    Ok(())
}

/// Open the sealed indexes of segment `id` (whose data file holds `capacity` bytes), if both
/// files are present, sealed, consistent with each other and with the data file (for a
/// sparse segment: with where its header says it ends). `None` means: rebuild.
pub(crate) fn open_sealed_index(id: &SegmentId, capacity: u64) -> Option<(SealedIndex, SealInfo)> {
    let (paths, base) = (&id.paths, id.base_offset);
    let offsets = MappedIndex::<OffsetEntry>::open(&paths.offset_index, base)?;
    let times = MappedIndex::<TimeEntry>::open(&paths.time_index, base)?;
    let (oh, th) = (*offsets.header(), *times.header());
    let info = SealInfo { end_pos: oh.end_pos, next_offset: oh.next_offset, max_ts: oh.max_timestamp_us };
    let consistent = th.entry_count == oh.entry_count
        && th.end_pos == oh.end_pos
        && th.next_offset == oh.next_offset
        && oh.next_offset >= base
        && oh.end_pos >= SEGMENT_HEADER_LEN as u64
        && oh.end_pos <= capacity
        // Index files left from the segment a sparse one replaced must not be trusted.
        && id.sparse.is_none_or(|end| (end.end_pos, end.next_offset) == (info.end_pos, info.next_offset));
    if !consistent {
        return None;
    }
    let idx = SealedIndex { offsets, times };
    // Spot-check the last entry: it must lie inside the segment's records.
    let count = idx.offsets.len();
    if count > 0 {
        let e = idx.entry(count - 1);
        if e.pos as u64 >= oh.end_pos || base + e.rel as u64 >= oh.next_offset {
            return None;
        }
    }
    Some((idx, info))
}

/// Read the active index entries of a segment, keeping only those before `trusted_pos`
/// (entries past the last checkpoint may not have reached the disk). Entries must be
/// strictly increasing; reading stops at the first that is not.
pub(crate) fn read_active_index(paths: &SegmentPaths, base: u64, trusted_pos: usize) -> Vec<IndexEntry> {
    let (Some((o, on)), Some((t, tn))) = (
        read_index_file::<OffsetEntry>(&paths.offset_index, base),
        read_index_file::<TimeEntry>(&paths.time_index, base),
    ) else {
        return Vec::new();
    };
    let (o, t) = (&o[INDEX_HEADER_LEN..], &t[INDEX_HEADER_LEN..]);
    let mut out: Vec<IndexEntry> = Vec::with_capacity(on.min(tn));
    for i in 0..on.min(tn) {
        let (oe, te): (OffsetEntry, TimeEntry) = (entry_at(o, i), entry_at(t, i));
        let e = IndexEntry { rel: oe.rel, pos: oe.pos, ts: te.ts };
        let increasing = out.last().is_none_or(|p| e.rel > p.rel && e.pos > p.pos && e.ts >= p.ts);
        if te.rel != e.rel || !increasing || (e.pos as usize) < SEGMENT_HEADER_LEN || e.pos as usize >= trusted_pos {
            break;
        }
        out.push(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::index::KeyEntry;

    fn naive(keys: &[u64], t: u64) -> usize {
        keys.iter().filter(|&&k| k <= t).count()
    }

    #[test]
    fn count_le_matches_a_linear_count_on_uniform_skewed_and_repeated_keys() {
        let sets: Vec<Vec<u64>> = vec![
            vec![],
            vec![5],
            (0..1000).map(|i| i * 3).collect(),
            (0..1000).map(|i| i * i).collect(),
            (0..1000).map(|i| if i < 990 { i } else { 1 << 40 }).collect(),
            (0..500).map(|i| i / 7).collect(),
        ];
        for keys in &sets {
            let max = keys.last().copied().unwrap_or(0);
            for t in (0..max.min(5000) + 3).chain([max, max + 1, u64::MAX]) {
                assert_eq!(count_le(keys.len(), |i| keys[i], t), naive(keys, t), "t={t} keys={}", keys.len());
            }
        }
    }

    #[test]
    fn a_third_kind_of_index_is_an_entry_type_and_its_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000100.keyindex");
        let entries: Vec<KeyEntry> =
            (0..500u32).map(|i| KeyEntry { hash: u64::from(i) * 7919, rel: i, pos: 64 + i * 48 }).collect();
        let seal = SealInfo { end_pos: 64 + 500 * 48, next_offset: 600, max_ts: 9 };
        let header = index_header(KeyEntry::KIND, 100, 4096, entries.len(), Some(seal));
        fs::write(&path, index_file_bytes(header, entries.iter().copied())).unwrap();
        let idx = MappedIndex::<KeyEntry>::open(&path, 100).unwrap();
        assert_eq!((idx.len(), idx.header().next_offset), (500, 600));
        assert_eq!(idx.get(321), entries[321]);
        // Sorted by hash: the generic search finds a key's entry.
        let i = count_le(idx.len(), |i| idx.get(i).hash, 77 * 7919);
        assert_eq!(idx.get(i - 1).rel, 77);
        assert!(MappedIndex::<OffsetEntry>::open(&path, 100).is_none(), "another kind's file is refused");
        assert!(MappedIndex::<KeyEntry>::open(&path, 101).is_none(), "another segment's file is refused");
    }
}

//! A segment's sparse indexes: the offset index and the time index. The active segment keeps
//! its entries in memory (under a short `RwLock`) and appends them to its index files lazily;
//! a sealed segment's index files are immutable and mapped read-only.
//!
//! Index entry `i` of the offset index and entry `i` of the time index describe the same
//! record. Indexes are derived data: a lookup that lands on a position whose record does not
//! validate falls back to a scan from the segment start, so a damaged index can slow a read
//! but never change its result.

use std::fs::{self, File, OpenOptions};
use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::error::{IoContext, Result};
use crate::format::index::{
    IndexHeader, INDEX_HEADER_LEN, OFFSET_ENTRY_LEN, OFFSET_INDEX_MAGIC, TIME_ENTRY_LEN, TIME_INDEX_MAGIC,
};
use crate::format::{le_u32, le_u64, SEGMENT_HEADER_LEN};
use crate::io::fs as fsutil;
use crate::io::mmap::{self, SegmentMap};
use crate::io::storage;
use crate::segment::SegmentPaths;

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

/// One index point: the record at byte `pos` has relative offset `rel` and timestamp `ts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub rel: u32,
    pub pos: u32,
    pub ts: u64,
}

/// The in-memory index of the active segment.
#[derive(Debug, Default)]
pub(crate) struct ActiveIndex {
    pub entries: Vec<IndexEntry>,
}

/// The mapped, immutable index files of a sealed segment.
#[derive(Debug)]
pub(crate) struct SealedIndex {
    offsets: Arc<SegmentMap>,
    times: Arc<SegmentMap>,
    count: usize,
}

impl SealedIndex {
    fn entry(&self, i: usize) -> IndexEntry {
        let o = self.offsets.published_bytes();
        let t = self.times.published_bytes();
        let oa = INDEX_HEADER_LEN + i * OFFSET_ENTRY_LEN;
        let ta = INDEX_HEADER_LEN + i * TIME_ENTRY_LEN;
        IndexEntry { rel: le_u32(o, oa), pos: le_u32(o, oa + 4), ts: le_u64(t, ta) }
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
            SegIndex::Sealed(s) => f(s.count, &|i| s.entry(i)),
        }
    }
}

fn index_header(magic: [u8; 8], base: u64, interval: u32, count: u64) -> IndexHeader {
    IndexHeader {
        magic,
        interval_bytes: interval,
        base_offset: base,
        entry_count: count,
        end_pos: 0,
        next_offset: 0,
        max_timestamp_us: 0,
        sealed: false,
    }
}

fn encode_index_files(hdr_o: IndexHeader, entries: &[IndexEntry]) -> (Vec<u8>, Vec<u8>) {
    let mut hdr_t = hdr_o;
    hdr_t.magic = TIME_INDEX_MAGIC;
    let mut o = Vec::with_capacity(INDEX_HEADER_LEN + entries.len() * OFFSET_ENTRY_LEN);
    let mut t = Vec::with_capacity(INDEX_HEADER_LEN + entries.len() * TIME_ENTRY_LEN);
    o.extend_from_slice(&hdr_o.encode());
    t.extend_from_slice(&hdr_t.encode());
    for e in entries {
        o.extend_from_slice(&e.rel.to_le_bytes());
        o.extend_from_slice(&e.pos.to_le_bytes());
        t.extend_from_slice(&e.ts.to_le_bytes());
        t.extend_from_slice(&e.rel.to_le_bytes());
    }
    (o, t)
}

/// Replace the active index files with these entries (temporary file + rename, so a follower
/// that maps an index never sees it shrink).
pub(crate) fn write_active_index_files(
    paths: &SegmentPaths,
    base: u64,
    interval: u32,
    entries: &[IndexEntry],
) -> Result<()> {
    let (o, t) = encode_index_files(index_header(OFFSET_INDEX_MAGIC, base, interval, 0), entries);
    replace_file(&paths.offset_index, &o, false)?;
    replace_file(&paths.time_index, &t, false)
}

pub(crate) fn open_index_files_for_append(paths: &SegmentPaths) -> Result<(File, File)> {
    let o = OpenOptions::new().write(true).open(&paths.offset_index).at(&paths.offset_index)?;
    let t = OpenOptions::new().write(true).open(&paths.time_index).at(&paths.time_index)?;
    Ok((o, t))
}

fn replace_file(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    if durable {
        return fsutil::atomic_write(path, bytes);
    }
    let tmp = fsutil::tmp_path(path);
    let mut f = storage::create(&tmp, OpenOptions::new().write(true).create(true).truncate(true))?;
    storage::write_all(&mut f, &tmp, bytes)?;
    storage::rename(&tmp, path)
}

/// Facts about a sealed segment, stored in its index headers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SealInfo {
    pub end_pos: u64,
    pub next_offset: u64,
    pub max_ts: u64,
}

/// Write the sealed index files of a segment durably (fsynced; the caller fsyncs the
/// directory).
pub(crate) fn write_sealed_index_files(
    paths: &SegmentPaths,
    base: u64,
    interval: u32,
    entries: &[IndexEntry],
    seal: SealInfo,
) -> Result<()> {
    let mut h = index_header(OFFSET_INDEX_MAGIC, base, interval, entries.len() as u64);
    h.sealed = true;
    h.end_pos = seal.end_pos;
    h.next_offset = seal.next_offset;
    h.max_timestamp_us = seal.max_ts;
    let (o, t) = encode_index_files(h, entries);
    for (path, bytes) in [(&paths.offset_index, &o), (&paths.time_index, &t)] {
        let tmp = fsutil::tmp_path(path);
        let mut f = storage::create(&tmp, OpenOptions::new().write(true).create(true).truncate(true))?;
        storage::write_all(&mut f, &tmp, bytes)?;
        storage::sync_all(&f, &tmp)?;
        storage::rename(&tmp, path)?;
    }
    Ok(())
}

/// Open the sealed indexes of a segment, if both files are present, sealed, consistent with
/// each other and with the data file. `None` means: rebuild.
pub(crate) fn open_sealed_index(paths: &SegmentPaths, base: u64, capacity: u64) -> Option<(SealedIndex, SealInfo)> {
    let of = File::open(&paths.offset_index).ok()?;
    let tf = File::open(&paths.time_index).ok()?;
    let om = mmap::map_whole_ro(&of).ok()?;
    let tm = mmap::map_whole_ro(&tf).ok()?;
    let oh = IndexHeader::decode(om.published_bytes(), OFFSET_INDEX_MAGIC)?;
    let th = IndexHeader::decode(tm.published_bytes(), TIME_INDEX_MAGIC)?;
    let count = usize::try_from(oh.entry_count).ok()?;
    let consistent = oh.sealed
        && th.sealed
        && oh.base_offset == base
        && th.base_offset == base
        && th.entry_count == oh.entry_count
        && th.end_pos == oh.end_pos
        && th.next_offset == oh.next_offset
        && oh.next_offset >= base
        && oh.end_pos >= SEGMENT_HEADER_LEN as u64
        && oh.end_pos <= capacity
        && om.len() == INDEX_HEADER_LEN + count.checked_mul(OFFSET_ENTRY_LEN)?
        && tm.len() == INDEX_HEADER_LEN + count.checked_mul(TIME_ENTRY_LEN)?;
    if !consistent {
        return None;
    }
    let idx = SealedIndex { offsets: om, times: tm, count };
    // Spot-check the last entry: it must lie inside the segment's records.
    if count > 0 {
        let e = idx.entry(count - 1);
        if e.pos as u64 >= oh.end_pos || base + e.rel as u64 >= oh.next_offset {
            return None;
        }
    }
    let info = SealInfo { end_pos: oh.end_pos, next_offset: oh.next_offset, max_ts: oh.max_timestamp_us };
    Some((idx, info))
}

/// Read the active index entries of a segment, keeping only those before `trusted_pos`
/// (entries past the last checkpoint may not have reached the disk). Entries must be
/// strictly increasing; reading stops at the first that is not.
pub(crate) fn read_active_index(paths: &SegmentPaths, base: u64, trusted_pos: usize) -> Vec<IndexEntry> {
    let (o, t) = match (fs::read(&paths.offset_index), fs::read(&paths.time_index)) {
        (Ok(o), Ok(t)) => (o, t),
        _ => return Vec::new(),
    };
    let (Some(oh), Some(th)) = (IndexHeader::decode(&o, OFFSET_INDEX_MAGIC), IndexHeader::decode(&t, TIME_INDEX_MAGIC))
    else {
        return Vec::new();
    };
    if oh.base_offset != base || th.base_offset != base {
        return Vec::new();
    }
    let n = ((o.len() - INDEX_HEADER_LEN) / OFFSET_ENTRY_LEN).min((t.len() - INDEX_HEADER_LEN) / TIME_ENTRY_LEN);
    let mut out: Vec<IndexEntry> = Vec::with_capacity(n);
    for i in 0..n {
        let oa = INDEX_HEADER_LEN + i * OFFSET_ENTRY_LEN;
        let ta = INDEX_HEADER_LEN + i * TIME_ENTRY_LEN;
        let e = IndexEntry { rel: le_u32(&o, oa), pos: le_u32(&o, oa + 4), ts: le_u64(&t, ta) };
        let trel = le_u32(&t, ta + 8);
        let increasing = out.last().is_none_or(|p| e.rel > p.rel && e.pos > p.pos && e.ts >= p.ts);
        if trel != e.rel || !increasing || (e.pos as usize) < SEGMENT_HEADER_LEN || e.pos as usize >= trusted_pos {
            break;
        }
        out.push(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::count_le;

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
}

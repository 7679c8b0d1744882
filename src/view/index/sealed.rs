//! A sealed segment's index file (`{base:020}.{name}.vindex`, layout in
//! `format::view_index`): written once from the segment's entries, then mapped read-only.
//! A file is used only if it was built by this definition for exactly this segment and every
//! byte of it checks out (header, checksum of the body, order and bounds of every entry), so
//! that a lookup in it needs no further check and cannot panic.

use std::cmp::Ordering;
use std::fs::{File, OpenOptions};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;

use crate::error::Result;
use crate::format::view_index::{
    value_hash, Layout, ValueEntry, ViewIndexHeader, POSTING_LEN, VALUE_ENTRY_LEN, VIEW_INDEX_HEADER_LEN,
};
use crate::format::{le_u32, put_u32};
use crate::io::mmap::{map_whole_ro, SegmentMap};
use crate::io::storage;
use crate::view::index::memory::MemIndex;
use crate::view::index::query::{range_is_empty, Postings};

/// Who a sealed segment is: what an index file must have been built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegIdent {
    pub base_offset: u64,
    pub next_offset: u64,
    pub end_pos: u64,
    pub max_timestamp_us: u64,
}

/// What a file must say about its builder.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Builder {
    pub definition: u64,
    pub definition_version: u32,
    pub ordered: bool,
}

/// A validated index file, mapped.
pub(crate) struct SealedFile {
    map: Arc<SegmentMap>,
    layout: Layout,
    ordered: bool,
}

impl std::fmt::Debug for SealedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedFile").field("layout", &self.layout).finish()
    }
}

impl SealedFile {
    /// Map the file at `path` if it is a valid index file of `by` for segment `seg`. `None`
    /// means: build it again (missing, damaged, stale, or another segment's).
    pub fn open(path: &Path, seg: SegIdent, by: Builder) -> Option<SealedFile> {
        let file = File::open(path).ok()?;
        let map = map_whole_ro(&file).ok()?;
        let b = map.published_bytes();
        let h = ViewIndexHeader::decode(b)?;
        let same_builder = h.definition == by.definition && h.ordered == by.ordered;
        let same_segment = (h.base_offset, h.next_offset, h.end_pos, h.max_timestamp_us)
            == (seg.base_offset, seg.next_offset, seg.end_pos, seg.max_timestamp_us);
        let layout = h.layout()?;
        if !same_builder || !same_segment || layout.file_len != b.len() {
            return None;
        }
        if crc32fast::hash(&b[VIEW_INDEX_HEADER_LEN..]) != h.body_crc {
            return None;
        }
        let f = SealedFile { map, layout, ordered: h.ordered };
        f.entries_are_sound(seg.next_offset - seg.base_offset).then_some(f)
    }

    /// Every entry lies inside the file, the runs tile the postings in order, postings
    /// increase within a run and stay below `span`, hashes are the values' and the values
    /// are strictly sorted.
    fn entries_are_sound(&self, span: u64) -> bool {
        let l = self.layout;
        let b = self.map.published_bytes();
        let mut next_first: u64 = 0;
        let mut prev: Option<(u64, &[u8])> = None;
        for i in 0..l.values {
            let at = VIEW_INDEX_HEADER_LEN + i * VALUE_ENTRY_LEN;
            let raw = &b[at..at + VALUE_ENTRY_LEN];
            let e = ValueEntry::get(raw);
            let Some(v) = self.value_bytes(&e) else { return false };
            if ValueEntry::reserved(raw) != 0
                || e.count == 0
                || u64::from(e.first) != next_first
                || e.hash != value_hash(v)
            {
                return false;
            }
            next_first += u64::from(e.count);
            if next_first > l.records as u64 {
                return false;
            }
            let sorted = match prev {
                None => true,
                Some((_, pv)) if self.ordered => pv < v,
                Some((ph, pv)) => (ph, pv) < (e.hash, v),
            };
            if !sorted {
                return false;
            }
            let run = self.run(&e);
            let mut last: Option<u32> = None;
            for j in 0..run.len() {
                let rel = run.get(j);
                if u64::from(rel) >= span || last.is_some_and(|p| p >= rel) {
                    return false;
                }
                last = Some(rel);
            }
            prev = Some((e.hash, v));
        }
        next_first == l.records as u64
    }

    fn entry(&self, i: usize) -> ValueEntry {
        let at = VIEW_INDEX_HEADER_LEN + i * VALUE_ENTRY_LEN;
        ValueEntry::get(&self.map.published_bytes()[at..at + VALUE_ENTRY_LEN])
    }

    fn value_bytes(&self, e: &ValueEntry) -> Option<&[u8]> {
        let blob = &self.map.published_bytes()[self.layout.blob_at..];
        let start = usize::try_from(e.blob_at).ok()?;
        blob.get(start..start.checked_add(e.len as usize)?)
    }

    fn run(&self, e: &ValueEntry) -> Postings<'_> {
        let b = &self.map.published_bytes()[self.layout.postings_at..self.layout.blob_at];
        let start = e.first as usize * POSTING_LEN;
        let end = start + e.count as usize * POSTING_LEN;
        Postings::File(b.get(start..end).unwrap_or(&[]))
    }

    /// The records carrying `value` (relative offsets, increasing).
    pub fn postings(&self, value: &[u8]) -> Postings<'_> {
        let n = self.layout.values;
        if self.ordered {
            // Binary search on the values' bytes.
            let (mut lo, mut hi) = (0, n);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                let e = self.entry(mid);
                match self.value_bytes(&e).unwrap_or(&[]).cmp(value) {
                    Ordering::Less => lo = mid + 1,
                    Ordering::Greater => hi = mid,
                    Ordering::Equal => return self.run(&e),
                }
            }
            return Postings::File(&[]);
        }
        let mut search = self.search(value_hash(value));
        loop {
            if let Some(first) = self.step(&mut search) {
                return self.postings_at(first, value);
            }
        }
    }

    /// The start of a search of an unordered file for the first entry with `hash`.
    pub fn search(&self, hash: u64) -> Search {
        Search::new(self.layout.values, |i| self.entry(i).hash, hash)
    }

    /// One probe of `search`: the index of the first entry whose hash is at least the
    /// target, once found.
    pub fn step(&self, search: &mut Search) -> Option<usize> {
        search.step(|i| self.entry(i).hash)
    }

    /// True if the file keeps its values by hash (searched with [`SealedFile::search`]).
    pub fn is_hashed(&self) -> bool {
        !self.ordered
    }

    /// The records of `value`, whose hash's entries start at `first` (a finished search).
    pub fn postings_at(&self, first: usize, value: &[u8]) -> Postings<'_> {
        let hash = value_hash(value);
        for i in first..self.layout.values {
            let e = self.entry(i);
            if e.hash != hash {
                break;
            }
            // The hash only finds candidates: the value itself decides.
            if self.value_bytes(&e) == Some(value) {
                return self.run(&e);
            }
        }
        Postings::File(&[])
    }

    /// Call `f` with each value in `(lo, hi)` and its records, in value order, until it
    /// returns false (ordered files only).
    pub fn range(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>, mut f: impl FnMut(&[u8], Postings<'_>) -> bool) {
        if !self.ordered || range_is_empty(lo, hi) {
            return;
        }
        let n = self.layout.values;
        let below_lo = |v: &[u8]| match lo {
            Bound::Included(l) => v < l,
            Bound::Excluded(l) => v <= l,
            Bound::Unbounded => false,
        };
        let (mut a, mut b) = (0, n);
        while a < b {
            let mid = a + (b - a) / 2;
            if below_lo(self.value_bytes(&self.entry(mid)).unwrap_or(&[])) {
                a = mid + 1;
            } else {
                b = mid;
            }
        }
        for i in a..n {
            let e = self.entry(i);
            let v = self.value_bytes(&e).unwrap_or(&[]);
            let past = match hi {
                Bound::Included(h) => v > h,
                Bound::Excluded(h) => v >= h,
                Bound::Unbounded => false,
            };
            if past || !f(v, self.run(&e)) {
                return;
            }
        }
    }
}

/// The first `i < n` with `key(i) >= target` (`n` if none), for keys that never decrease and
/// are spread evenly (hashes): interpolation search, one probe per [`Search::step`].
///
/// One interpolated guess over a million random hashes misses by about a thousand entries
/// (the spread of a sample quantile), and bracketing that by galloping and bisecting costs
/// some twenty probes, each a cache miss in a mapped table. Interpolating again between the
/// keys already read at the bracket's ends (none is read twice) shrinks it quickly: a few
/// probes. Skewed keys could make interpolation slow, so after eight rounds it bisects.
///
/// A search advances one probe at a time so that the searches of several segments' files can
/// advance together: their probes are independent loads, whose cache misses the processor
/// overlaps, where searching one file after another would wait for each miss in turn.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Search {
    target: u64,
    /// Invariant while searching: key(lo) = klo < target <= khi = key(hi).
    lo: usize,
    hi: usize,
    klo: u64,
    khi: u64,
    rounds: u32,
    answer: Option<usize>,
}

impl Search {
    pub fn new(n: usize, key: impl Fn(usize) -> u64, target: u64) -> Search {
        let mut s = Search { target, lo: 0, hi: n, klo: 0, khi: 0, rounds: 0, answer: None };
        if n == 0 || key(0) >= target {
            s.answer = Some(0);
        } else if key(n - 1) < target {
            s.answer = Some(n);
        } else {
            (s.hi, s.klo, s.khi) = (n - 1, key(0), key(n - 1));
        }
        s
    }

    /// One probe; the answer once found.
    pub fn step(&mut self, key: impl Fn(usize) -> u64) -> Option<usize> {
        if self.answer.is_some() {
            return self.answer;
        }
        if self.hi - self.lo <= 1 {
            self.answer = Some(self.hi);
            return self.answer;
        }
        let (lo, hi) = (self.lo, self.hi);
        let mid = if self.rounds < 8 {
            // klo < target <= khi, so the span is not zero.
            let off = (self.target - self.klo) as u128 * (hi - lo) as u128 / (self.khi - self.klo) as u128;
            (lo + off as usize).clamp(lo + 1, hi - 1)
        } else {
            lo + (hi - lo) / 2
        };
        let k = key(mid);
        if k < self.target {
            (self.lo, self.klo) = (mid, k);
        } else {
            (self.hi, self.khi) = (mid, k);
        }
        self.rounds += 1;
        None
    }
}

/// The first `i < n` with `key(i) >= target` (`n` if none): a [`Search`] to its end.
#[cfg(test)]
pub(crate) fn first_at_least(n: usize, key: impl Fn(usize) -> u64, target: u64) -> usize {
    let mut s = Search::new(n, &key, target);
    loop {
        if let Some(i) = s.step(&key) {
            return i;
        }
    }
}

/// The bytes of the index file of segment `seg` holding `mem`'s entries.
pub(crate) fn file_bytes(mem: &MemIndex, seg: SegIdent, by: Builder) -> Vec<u8> {
    let sorted = mem.sorted(value_hash);
    let blob_len: usize = sorted.iter().map(|(v, _)| v.len()).sum();
    let mut h = ViewIndexHeader {
        ordered: by.ordered,
        definition: by.definition,
        definition_version: by.definition_version,
        base_offset: seg.base_offset,
        next_offset: seg.next_offset,
        end_pos: seg.end_pos,
        max_timestamp_us: seg.max_timestamp_us,
        records: mem.records() as u64,
        values: sorted.len() as u64,
        blob_len: blob_len as u64,
        body_crc: 0,
    };
    let postings_at = VIEW_INDEX_HEADER_LEN + sorted.len() * VALUE_ENTRY_LEN;
    let blob_at = postings_at + mem.records() * POSTING_LEN;
    let mut out = vec![0u8; blob_at + blob_len];
    let (mut first, mut blob) = (0usize, 0usize);
    for (i, (v, run)) in sorted.iter().enumerate() {
        let at = VIEW_INDEX_HEADER_LEN + i * VALUE_ENTRY_LEN;
        // Counts fit in u32: a segment holds fewer than 2^32 records (4 GiB, 40-byte frames).
        let e = ValueEntry {
            hash: value_hash(v),
            blob_at: blob as u64,
            len: v.len() as u32,
            first: first as u32,
            count: run.len() as u32,
        };
        e.put(&mut out[at..at + VALUE_ENTRY_LEN]);
        for (j, &rel) in run.iter().enumerate() {
            put_u32(&mut out, postings_at + (first + j) * POSTING_LEN, rel);
        }
        out[blob_at + blob..blob_at + blob + v.len()].copy_from_slice(v);
        first += run.len();
        blob += v.len();
    }
    h.body_crc = crc32fast::hash(&out[VIEW_INDEX_HEADER_LEN..]);
    out[..VIEW_INDEX_HEADER_LEN].copy_from_slice(&h.encode());
    out
}

/// Write an index file durably: a temporary file (named uniquely, so that two handles of
/// one process never share one), fsynced, renamed into place. The caller fsyncs the
/// directory.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}-{}.tmp", std::process::id(), NEXT.fetch_add(1, AtomicOrdering::Relaxed)));
    let tmp = PathBuf::from(tmp);
    let mut f = storage::create(&tmp, OpenOptions::new().write(true).create(true).truncate(true))?;
    storage::write_all(&mut f, &tmp, bytes)?;
    storage::sync_all(&f, &tmp)?;
    drop(f);
    if let Err(e) = storage::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// A posting of file bytes (relative offset `i` of a run).
pub(crate) fn file_posting(b: &[u8], i: usize) -> u32 {
    le_u32(b, i * POSTING_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: SegIdent = SegIdent { base_offset: 1000, next_offset: 1010, end_pos: 4096, max_timestamp_us: 5 };

    fn mem(ordered: bool) -> MemIndex {
        let mut m = MemIndex::new(ordered);
        for (rel, v) in [(0, "b"), (1, "a"), (2, "b"), (5, "cc"), (9, "a")] {
            m.add(v.as_bytes(), rel);
        }
        m
    }

    fn by(ordered: bool) -> Builder {
        Builder { definition: 77, definition_version: 1, ordered }
    }

    fn to_vec(p: Postings<'_>) -> Vec<u32> {
        (0..p.len()).map(|i| p.get(i)).collect()
    }

    #[test]
    fn a_written_file_answers_like_the_entries_it_was_built_from() {
        let dir = tempfile::tempdir().unwrap();
        for ordered in [false, true] {
            let path = dir.path().join(format!("{ordered}.vindex"));
            write_file(&path, &file_bytes(&mem(ordered), SEG, by(ordered))).unwrap();
            let f = SealedFile::open(&path, SEG, by(ordered)).unwrap();
            assert_eq!(to_vec(f.postings(b"a")), vec![1, 9]);
            assert_eq!(to_vec(f.postings(b"b")), vec![0, 2]);
            assert_eq!(to_vec(f.postings(b"cc")), vec![5]);
            assert_eq!(f.postings(b"c").len(), 0);
            let mut seen = Vec::new();
            f.range(Bound::Excluded(b"a"), Bound::Included(b"cc"), |v, p| {
                seen.push((v.to_vec(), to_vec(p)));
                true
            });
            let want = if ordered { vec![(b"b".to_vec(), vec![0, 2]), (b"cc".to_vec(), vec![5])] } else { vec![] };
            assert_eq!(seen, want);
            // Another definition, order, or segment: not used.
            assert!(SealedFile::open(&path, SEG, Builder { definition: 78, ..by(ordered) }).is_none());
            assert!(SealedFile::open(&path, SEG, by(!ordered)).is_none());
            assert!(SealedFile::open(&path, SegIdent { end_pos: 4104, ..SEG }, by(ordered)).is_none());
            assert!(SealedFile::open(&path, SegIdent { max_timestamp_us: 6, ..SEG }, by(ordered)).is_none());
        }
    }

    #[test]
    fn the_interpolation_search_finds_the_first_key_at_least_the_target() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut random: Vec<u64> = (0..5000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            })
            .collect();
        random.sort_unstable();
        let sets: Vec<Vec<u64>> = vec![
            vec![],
            vec![5],
            random,
            (0..3000).map(|i| i * i * i).collect(),
            (0..1000).map(|i| if i < 990 { i } else { u64::MAX }).collect(),
            (0..500).map(|i| i / 7).collect(),
        ];
        for keys in &sets {
            let naive = |t: u64| keys.iter().take_while(|&&k| k < t).count();
            let mut targets: Vec<u64> =
                keys.iter().flat_map(|&k| [k.saturating_sub(1), k, k.saturating_add(1)]).collect();
            targets.extend([0, u64::MAX]);
            for t in targets {
                assert_eq!(first_at_least(keys.len(), |i| keys[i], t), naive(t), "t={t} n={}", keys.len());
            }
        }
    }

    #[test]
    fn every_bit_flip_and_every_truncation_of_a_file_makes_it_unused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.vindex");
        let bytes = file_bytes(&mem(true), SEG, by(true));
        for bit in 0..bytes.len() * 8 {
            let mut d = bytes.clone();
            d[bit / 8] ^= 1 << (bit % 8);
            std::fs::write(&path, &d).unwrap();
            assert!(SealedFile::open(&path, SEG, by(true)).is_none(), "bit {bit}");
        }
        for len in 0..bytes.len() {
            std::fs::write(&path, &bytes[..len]).unwrap();
            assert!(SealedFile::open(&path, SEG, by(true)).is_none(), "len {len}");
        }
    }
}

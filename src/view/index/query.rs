//! Answers over every segment of an index: the records of a value, the newest of them, how
//! many there are, and the values of a range. Each segment answers in offset order; segments
//! are visited oldest first (or newest first for the newest records).

use std::ops::Bound;

use crate::format::view_index::value_hash;
use crate::view::index::memory::MemIndex;
use crate::view::index::sealed::{file_posting, SealedFile, Search};

/// The records of one value in one segment: relative offsets, increasing.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Postings<'a> {
    /// Little-endian `u32`s in a mapped file.
    File(&'a [u8]),
    /// In memory.
    Mem(&'a [u32]),
}

impl Postings<'_> {
    pub fn len(&self) -> usize {
        match self {
            Postings::File(b) => b.len() / 4,
            Postings::Mem(v) => v.len(),
        }
    }

    /// Posting `i` (`i < len()`).
    pub fn get(&self, i: usize) -> u32 {
        match self {
            Postings::File(b) => file_posting(b, i),
            Postings::Mem(v) => v[i],
        }
    }
}

/// True if no value lies between `lo` and `hi` because they are reversed (or equal and not
/// both included): a range that `BTreeMap::range` would panic on.
pub(crate) fn range_is_empty(lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> bool {
    match (lo, hi) {
        (Bound::Included(l), Bound::Included(h)) => l > h,
        (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(h)) | (Bound::Excluded(l), Bound::Included(h)) => {
            l >= h
        }
        _ => false,
    }
}

/// One segment's index, in whichever form it is.
#[derive(Debug)]
pub(crate) enum SegIndex {
    /// The segment's file, mapped.
    File(SealedFile),
    /// Entries in memory, complete up to the record before `read_to`.
    Memory { mem: MemIndex, read_to: u64 },
}

impl SegIndex {
    pub fn postings(&self, value: &[u8]) -> Postings<'_> {
        match self {
            SegIndex::File(f) => f.postings(value),
            SegIndex::Memory { mem, .. } => Postings::Mem(mem.postings(value)),
        }
    }

    pub fn range(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>, mut f: impl FnMut(&[u8], Postings<'_>) -> bool) {
        match self {
            SegIndex::File(file) => file.range(lo, hi, f),
            SegIndex::Memory { mem, .. } => mem.range(lo, hi, |v, r| f(v, Postings::Mem(r))),
        }
    }
}

/// A record found by a range query: its value and its offset.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct IndexHit {
    /// The value the record is indexed under.
    pub value: Vec<u8>,
    /// The record's offset.
    pub offset: u64,
}

/// The records of `value` in each of `segs` (base offset and index), in their order.
///
/// The searches of the hashed files advance together, one probe of each per round: their
/// loads do not depend on one another, so the processor overlaps their cache misses (see
/// `sealed::Search`).
fn postings_of_all<'a>(segs: impl Iterator<Item = (u64, &'a SegIndex)>, value: &[u8]) -> Vec<(u64, Postings<'a>)> {
    let segs: Vec<(u64, &SegIndex)> = segs.collect();
    let hash = value_hash(value);
    let mut searches: Vec<Option<(Search, Option<usize>)>> = segs
        .iter()
        .map(|(_, s)| match s {
            SegIndex::File(f) if f.is_hashed() => Some((f.search(hash), None)),
            _ => None,
        })
        .collect();
    loop {
        let mut pending = false;
        for ((_, seg), search) in segs.iter().zip(&mut searches) {
            if let (SegIndex::File(f), Some((s, found @ None))) = (seg, search) {
                *found = f.step(s);
                pending |= found.is_none();
            }
        }
        if !pending {
            break;
        }
    }
    segs.iter()
        .zip(searches)
        .map(|(&(base, seg), search)| match (seg, search) {
            (SegIndex::File(f), Some((_, Some(first)))) => (base, f.postings_at(first, value)),
            _ => (base, seg.postings(value)),
        })
        .collect()
}

/// Offsets of the records of `value` over `segs` (base offset and index), increasing.
pub(crate) fn offsets<'a>(segs: impl Iterator<Item = (u64, &'a SegIndex)>, value: &[u8]) -> Vec<u64> {
    let mut out = Vec::new();
    for (base, p) in postings_of_all(segs, value) {
        out.extend((0..p.len()).map(|i| base + u64::from(p.get(i))));
    }
    out
}

/// Offsets of the newest `n` records of `value` over `segs` given newest first; newest first.
pub(crate) fn newest<'a>(segs: impl Iterator<Item = (u64, &'a SegIndex)>, value: &[u8], n: usize) -> Vec<u64> {
    let mut out = Vec::new();
    for (base, seg) in segs {
        if out.len() >= n {
            break;
        }
        let p = seg.postings(value);
        let take = (n - out.len()).min(p.len());
        out.extend((p.len() - take..p.len()).rev().map(|i| base + u64::from(p.get(i))));
    }
    out
}

/// The number of records of `value` over `segs`.
pub(crate) fn count<'a>(segs: impl Iterator<Item = (u64, &'a SegIndex)>, value: &[u8]) -> u64 {
    postings_of_all(segs, value).iter().map(|(_, p)| p.len() as u64).sum()
}

/// The first `limit` records whose value lies in `(lo, hi)`, by (value, offset).
pub(crate) fn range<'a>(
    segs: impl Iterator<Item = (u64, &'a SegIndex)>,
    lo: Bound<&[u8]>,
    hi: Bound<&[u8]>,
    limit: usize,
) -> Vec<IndexHit> {
    let mut out: Vec<IndexHit> = Vec::new();
    for (base, seg) in segs {
        // Each segment gives at most `limit` hits in (value, offset) order: the first `limit`
        // of all segments are among them.
        let mut taken = 0;
        seg.range(lo, hi, |v, p| {
            for i in 0..p.len() {
                if taken == limit {
                    return false;
                }
                out.push(IndexHit { value: v.to_vec(), offset: base + u64::from(p.get(i)) });
                taken += 1;
            }
            taken < limit
        });
    }
    out.sort_unstable();
    out.truncate(limit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reversed_and_empty_ranges_are_told_apart_from_real_ones() {
        use Bound::*;
        let (a, b): (&[u8], &[u8]) = (b"a", b"b");
        assert!(!range_is_empty(Included(a), Included(a)));
        assert!(range_is_empty(Included(a), Excluded(a)));
        assert!(range_is_empty(Excluded(a), Included(a)));
        assert!(range_is_empty(Included(b), Included(a)));
        assert!(!range_is_empty(Excluded(a), Excluded(b)));
        assert!(!range_is_empty(Unbounded, Excluded(a)));
    }

    #[test]
    fn newest_takes_from_the_newest_segment_back() {
        let mut old = MemIndex::new(false);
        let mut new = MemIndex::new(false);
        for rel in [0, 3, 4] {
            old.add(b"v", rel);
        }
        new.add(b"v", 1);
        let (old, new) = (SegIndex::Memory { mem: old, read_to: 0 }, SegIndex::Memory { mem: new, read_to: 0 });
        let segs = [(100, &new), (0, &old)];
        assert_eq!(newest(segs.iter().copied(), b"v", 3), vec![101, 4, 3]);
        assert_eq!(newest(segs.iter().copied(), b"v", 0), Vec::<u64>::new());
        assert_eq!(count(segs.iter().copied(), b"v"), 4);
        assert_eq!(offsets(segs.iter().rev().copied(), b"v"), vec![0, 3, 4, 101]);
    }
}

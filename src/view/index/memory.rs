//! The entries of one segment kept in memory: the active segment's (rebuilt from its records
//! on open), and those of a sealed segment whose file could not be used by a handle that does
//! not write files. A map from each distinct value to the relative offsets of its records,
//! in offset order; a `BTreeMap` when the index is ordered (ranges), a `HashMap` otherwise.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

/// The values of one segment and their records.
#[derive(Debug)]
pub(crate) struct MemIndex {
    values: Values,
    records: usize,
}

#[derive(Debug)]
enum Values {
    Hashed(HashMap<Box<[u8]>, Vec<u32>>),
    Ordered(BTreeMap<Box<[u8]>, Vec<u32>>),
}

impl MemIndex {
    pub fn new(ordered: bool) -> MemIndex {
        let values = if ordered { Values::Ordered(BTreeMap::new()) } else { Values::Hashed(HashMap::new()) };
        MemIndex { values, records: 0 }
    }

    /// Record `rel` (offset relative to the segment's base, larger than every one added
    /// before) carries `value`. The value is copied only the first time it is seen.
    pub fn add(&mut self, value: &[u8], rel: u32) {
        let run = match &mut self.values {
            Values::Hashed(m) => match m.get_mut(value) {
                Some(run) => run,
                None => m.entry(value.into()).or_default(),
            },
            Values::Ordered(m) => match m.get_mut(value) {
                Some(run) => run,
                None => m.entry(value.into()).or_default(),
            },
        };
        run.push(rel);
        self.records += 1;
    }

    /// The relative offsets of the records carrying `value`, in increasing order.
    pub fn postings(&self, value: &[u8]) -> &[u32] {
        let run = match &self.values {
            Values::Hashed(m) => m.get(value),
            Values::Ordered(m) => m.get(value),
        };
        run.map_or(&[], Vec::as_slice)
    }

    /// Number of records with a value.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Call `f` with each value in `(lo, hi)` and its records, in value order (ordered
    /// indexes only; a hashed one calls nothing).
    pub fn range(&self, lo: Bound<&[u8]>, hi: Bound<&[u8]>, mut f: impl FnMut(&[u8], &[u32]) -> bool) {
        if let Values::Ordered(m) = &self.values {
            if super::query::range_is_empty(lo, hi) {
                return;
            }
            for (v, run) in m.range::<[u8], _>((lo, hi)) {
                if !f(v, run) {
                    return;
                }
            }
        }
    }

    /// Every value and its records, in the order of the index file: by bytes when ordered,
    /// else by (hash, bytes).
    pub fn sorted(&self, hash: impl Fn(&[u8]) -> u64) -> Vec<(&[u8], &[u32])> {
        match &self.values {
            Values::Ordered(m) => m.iter().map(|(v, r)| (&v[..], &r[..])).collect(),
            Values::Hashed(m) => {
                let mut v: Vec<(u64, &[u8], &[u32])> = m.iter().map(|(v, r)| (hash(v), &v[..], &r[..])).collect();
                v.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
                v.into_iter().map(|(_, v, r)| (v, r)).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_their_records_in_offset_order_and_an_ordered_index_answers_ranges() {
        for ordered in [false, true] {
            let mut m = MemIndex::new(ordered);
            for (i, v) in [&b"b"[..], b"a", b"b", b"c", b"b"].iter().enumerate() {
                m.add(v, i as u32);
            }
            assert_eq!(m.postings(b"b"), &[0, 2, 4]);
            assert_eq!(m.postings(b"z"), &[] as &[u32]);
            assert_eq!(m.records(), 5);
            let mut seen = Vec::new();
            m.range(Bound::Included(b"b"), Bound::Unbounded, |v, r| {
                seen.push((v.to_vec(), r.len()));
                true
            });
            let want = if ordered { vec![(b"b".to_vec(), 3), (b"c".to_vec(), 1)] } else { vec![] };
            assert_eq!(seen, want);
            // A reversed range is empty, not a panic.
            m.range(Bound::Excluded(b"c"), Bound::Excluded(b"a"), |_, _| panic!("nothing is in it"));
            m.range(Bound::Excluded(b"b"), Bound::Excluded(b"b"), |_, _| panic!("nothing is in it"));
        }
    }
}

//! Reading by offset and by time, and facts about segments.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::log::report::SegmentInfo;
use crate::log::Log;
use crate::record::{OwnedRecord, RecordView};
use crate::segment::Segment;

impl Log {
    /// Offset of the first record still in the log.
    pub fn first_offset(&self) -> u64 {
        self.inner.segments.read().first().map_or(0, |s| s.base_offset)
    }

    /// Offset the next appended record will get (one past the last committed record).
    #[inline]
    pub fn next_offset(&self) -> u64 {
        self.inner.next_offset.load(Ordering::Acquire)
    }

    /// True if the log holds no records.
    pub fn is_empty(&self) -> bool {
        self.first_offset() == self.next_offset()
    }

    /// Read the record at `offset`, copied out.
    ///
    /// An offset whose record compaction removed gives [`Error::OffsetCompacted`], which
    /// names the next record that exists.
    pub fn read(&self, offset: u64) -> Result<OwnedRecord> {
        self.read_with(offset, |r| r.to_owned())
    }

    /// Call `f` with the record at `offset`, borrowed from the map (no copy). Errors as
    /// [`Log::read`].
    pub fn read_with<R>(&self, offset: u64, f: impl FnOnce(RecordView<'_>) -> R) -> Result<R> {
        let mut next = self.next_offset();
        if offset >= next && self.inner.read_only {
            self.refresh()?;
            next = self.next_offset();
        }
        let segs = self.inner.segments.read().clone();
        let first = segs.first().map_or(0, |s| s.base_offset);
        if offset < first || offset >= next {
            return Err(Error::OffsetOutOfRange { offset, first, next });
        }
        let i = segs.partition_point(|s| s.base_offset <= offset) - 1;
        match segs[i].find(offset) {
            Ok((rec, _)) => Ok(f(rec)),
            // The gap runs to the end of its segment: the next record is in a later one.
            Err(Error::OffsetCompacted { next_existing, .. }) if next_existing >= segs[i].next_offset() => {
                Err(Error::OffsetCompacted { offset, next_existing: first_record_from(&segs[i + 1..], next)? })
            }
            Err(e) => Err(e),
        }
    }

    /// The first offset whose timestamp is at or after `ts_us` (µs since the Unix epoch),
    /// or `None` if every record is older.
    pub fn offset_for_time(&self, ts_us: u64) -> Result<Option<u64>> {
        let segs = self.inner.segments.read().clone();
        // Segments are ordered by time, but a segment without records (the newest one between
        // a roll and its first publish, or one that compaction emptied) has no timestamp of
        // its own. It takes the newest timestamp before it, so that the predicate stays
        // monotone: judged by its own zero, an empty newest segment sent the search past
        // every record.
        let newest_before =
            |i: usize| -> u64 { segs[..=i].iter().rev().find(|s| s.has_records()).map_or(0, |s| s.max_ts()) };
        let i = partition_point_by(segs.len(), |i| newest_before(i) < ts_us);
        for seg in &segs[i..] {
            if let Some(off) = seg.find_time(ts_us)? {
                return Ok(Some(off));
            }
        }
        Ok(None)
    }

    /// Facts about every segment, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let segs = self.inner.segments.read().clone();
        segs.iter()
            .enumerate()
            .map(|(i, s)| SegmentInfo {
                base_offset: s.base_offset,
                next_offset: s.next_offset(),
                records: s.record_count(),
                bytes: s.end_pos() as u64,
                capacity: s.map.len() as u64,
                min_timestamp_us: s.min_ts(),
                max_timestamp_us: s.max_ts(),
                // Every segment but the last is full and takes no more records.
                sealed: s.is_sealed() || i + 1 < segs.len(),
                path: s.paths.data.clone(),
            })
            .collect()
    }
}

/// The first index in `0..n` for which `pred` is false, given that `pred` is true on a prefix
/// and false after it (`slice::partition_point` over indexes).
fn partition_point_by(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Offset of the first record in `segs` (the segments after a gap), or `next` (the log's next
/// offset) if none of them holds a record yet.
fn first_record_from(segs: &[Arc<Segment>], next: u64) -> Result<u64> {
    for seg in segs {
        if let Some(o) = seg.first_record_offset()? {
            return Ok(o.min(next));
        }
    }
    Ok(next)
}

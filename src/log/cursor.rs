//! Cursors and iterators: reading forward from an offset, borrowing from the map.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::SEGMENT_HEADER_LEN;
use crate::log::Log;
use crate::record::{OwnedRecord, RecordView};
use crate::segment::{Located, Segment};

impl Log {
    /// A cursor reading forward from `offset`, borrowing each record from the map.
    /// At the end of the log it returns `None`; call again later to pick up new records.
    /// Offsets whose records compaction removed are stepped over: a cursor at such an offset
    /// reads the next record that exists.
    /// A cursor may start at an offset not yet written: it returns `None` until that offset
    /// is committed, then reads from it (this is how a tailing reader starts at
    /// [`Log::next_offset`]). An offset below [`Log::first_offset`] gives
    /// [`Error::OffsetOutOfRange`] on the first call.
    pub fn cursor(&self, offset: u64) -> Cursor {
        Cursor {
            log: self.clone(),
            segs: Arc::new(Vec::new()),
            idx: 0,
            pos: 0,
            next: offset,
            positioned: false,
            known_end: 0,
            seg_end: 0,
        }
    }

    /// An iterator over copies of the records from `offset` to the current end.
    pub fn iter(&self, offset: u64) -> Iter {
        Iter { cursor: self.cursor(offset), done: false }
    }
}

/// A forward cursor over the log that lends each record from the memory map.
pub struct Cursor {
    log: Log,
    segs: Arc<Vec<Arc<Segment>>>,
    idx: usize,
    pos: usize,
    next: u64,
    positioned: bool,
    /// The log's committed end when last looked at. Committed records never change, so
    /// the cursor reads up to here without looking again: the end is written by every
    /// append, and a reader on another core loading it per record took the cache line from
    /// the writer each time (appends with a view following them ran at 0.65 of their rate).
    known_end: u64,
    /// The current segment's end offset when last looked at; 0: look again.
    seg_end: u64,
}

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor").field("next", &self.next).finish()
    }
}

impl Cursor {
    /// Offset from which the next call to [`Cursor::next`] reads: one past the last record
    /// returned (or where the cursor was placed). The record returned next has this offset,
    /// or a later one if compaction removed the records in between.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Move to `offset`.
    pub fn seek(&mut self, offset: u64) {
        self.next = offset;
        self.positioned = false;
    }

    /// Position the cursor now rather than at its first read: it takes the segment list as it
    /// is, and keeps the segments it reads from mapped (see `scan`, `Log::cursor_from_start`).
    pub(super) fn position_now(&mut self) -> Result<()> {
        self.locate()
    }

    fn locate(&mut self) -> Result<()> {
        self.segs = self.log.inner.segments.read().clone();
        let first = self.segs.first().map_or(0, |s| s.base_offset);
        let next = self.log.next_offset();
        if self.next < first || self.next > next {
            return Err(Error::OffsetOutOfRange { offset: self.next, first, next });
        }
        self.idx = self.segs.partition_point(|s| s.base_offset <= self.next).saturating_sub(1);
        let seg = &self.segs[self.idx];
        self.pos = if self.next == seg.base_offset {
            SEGMENT_HEADER_LEN
        } else {
            // In a gap: the record after it.
            match seg.locate(self.next)? {
                Located::At(_, pos) | Located::Gap { pos, .. } => pos,
            }
        };
        self.positioned = true;
        self.seg_end = 0;
        Ok(())
    }

    /// The next record, or `None` at the current end of the log.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<RecordView<'_>>> {
        // The common case, kept apart so that it stays small: the next record lies before
        // both ends already looked at, in a segment whose offsets are dense.
        if self.positioned && self.next < self.known_end && self.next < self.seg_end && !self.segs[self.idx].is_sparse()
        {
            let (rec, next_pos) = self.segs[self.idx].decode_at(self.pos, self.next)?;
            self.pos = next_pos;
            self.next += 1;
            return Ok(Some(rec));
        }
        self.next_slow()
    }

    /// [`Cursor::next`] when an end must be looked up, the segment changes, or offsets may
    /// skip.
    #[inline(never)]
    fn next_slow(&mut self) -> Result<Option<RecordView<'_>>> {
        loop {
            if self.next >= self.known_end {
                let mut committed = self.log.next_offset();
                if self.next >= committed && self.log.inner.read_only {
                    self.log.refresh()?;
                    committed = self.log.next_offset();
                }
                if self.next >= committed {
                    return Ok(None);
                }
                self.known_end = committed;
            }
            if !self.positioned {
                self.locate()?;
            }
            if self.next >= self.seg_end {
                self.seg_end = self.segs[self.idx].next_offset();
            }
            let seg_end = self.seg_end;
            if self.next >= seg_end {
                // Moving to another segment (or positioning afresh): its end is looked up.
                self.seg_end = 0;
                if self.idx + 1 >= self.segs.len() {
                    self.segs = self.log.inner.segments.read().clone();
                    self.idx = self.segs.partition_point(|s| s.base_offset < self.next).saturating_sub(1);
                }
                if self.idx + 1 < self.segs.len() && self.segs[self.idx + 1].base_offset == self.next {
                    self.idx += 1;
                    self.pos = SEGMENT_HEADER_LEN;
                }
                if self.next >= self.segs[self.idx].next_offset() && self.segs[self.idx].base_offset != self.next {
                    // Segment list changed under us (retention): position afresh.
                    self.positioned = false;
                }
                continue;
            }
            if self.segs[self.idx].is_sparse() && self.pos >= self.segs[self.idx].end_pos() {
                // Compaction removed the rest of this segment: step over the gap.
                self.next = seg_end;
                continue;
            }
            let seg = &self.segs[self.idx];
            let (rec, next_pos) = seg.decode_next(self.pos, self.next)?;
            self.pos = next_pos;
            // One past the record: in a sparse segment it may lie past a gap.
            self.next = rec.offset() + 1;
            return Ok(Some(rec));
        }
    }
}

/// Iterator over copies of records, from [`Log::iter`]. Stops at the end of the log or after
/// the first error.
#[derive(Debug)]
pub struct Iter {
    cursor: Cursor,
    done: bool,
}

impl Iterator for Iter {
    type Item = Result<OwnedRecord>;
    fn next(&mut self) -> Option<Result<OwnedRecord>> {
        if self.done {
            return None;
        }
        match self.cursor.next() {
            Ok(Some(r)) => Some(Ok(r.to_owned())),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

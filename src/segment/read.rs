//! Reading a segment: find a record by offset or by time through the sparse index, then a
//! short forward scan. Every record returned is validated.

use crate::error::{CorruptionKind, Error, Result};
use crate::format::frame;
use crate::format::{align_up, decode_frame, le_u32, le_u64, Frame, FrameHeader, SEGMENT_HEADER_LEN};
use crate::record::RecordView;
use crate::segment::index::count_le;
use crate::segment::Segment;

/// Load one byte of every cache line in `[pos, pos + span)` with independent loads, so that a
/// following chain of dependent reads (hopping record to record by length) finds the lines
/// already arriving: the misses overlap instead of queueing one after another.
#[inline]
fn touch_lines(buf: &[u8], pos: usize, span: usize) {
    let end = buf.len().min(pos.saturating_add(span));
    let mut acc = 0u8;
    let mut p = pos;
    while p < end {
        acc ^= buf[p];
        p += 64;
    }
    std::hint::black_box(acc);
}

/// Where a lookup by offset landed.
#[derive(Debug)]
pub(crate) enum Located<'a> {
    /// The record with the offset asked for, and its byte position.
    At(RecordView<'a>, usize),
    /// No record has the offset (compaction removed it): `pos` is the position of the first
    /// record after it and `next` that record's offset, or `pos` is the end of the records and
    /// `next` is `None` when no record after it is left in this segment.
    Gap { pos: usize, next: Option<u64> },
}

impl Segment {
    /// The closest index entry at or before `offset`: (byte position, offset there).
    fn floor_by_offset(&self, offset: u64) -> (usize, u64) {
        let start = (SEGMENT_HEADER_LEN, self.base_offset);
        let Some(rel) = offset.checked_sub(self.base_offset) else { return start };
        self.index.with_entries(|n, entry| match count_le(n, |i| entry(i).rel as u64, rel) {
            0 => start,
            i => {
                let e = entry(i - 1);
                (e.pos as usize, self.base_offset + e.rel as u64)
            }
        })
    }

    /// The closest index entry whose timestamp is before `ts`.
    fn floor_by_time(&self, ts: u64) -> (usize, u64) {
        let start = (SEGMENT_HEADER_LEN, self.base_offset);
        let Some(below) = ts.checked_sub(1) else { return start };
        self.index.with_entries(|n, entry| match count_le(n, |i| entry(i).ts, below) {
            0 => start,
            i => {
                let e = entry(i - 1);
                (e.pos as usize, self.base_offset + e.rel as u64)
            }
        })
    }

    /// Decode the published record at `pos`, whatever offset it carries (for a scan that
    /// resumes after damage).
    pub fn decode_at_any(&self, pos: usize) -> Result<(RecordView<'_>, usize)> {
        let buf = self.map.published_bytes();
        match decode_frame(buf, pos, None) {
            Frame::Record(h) => Ok((view(buf, pos, &h), pos + align_up(h.frame_len as usize))),
            Frame::End => Err(Error::corrupt(&self.paths.data, pos as u64, CorruptionKind::MissingData)),
            Frame::Invalid(kind) => Err(Error::corrupt(&self.paths.data, pos as u64, kind)),
        }
    }

    /// Decode the published record at `pos`, which must carry `expected`.
    #[inline]
    pub fn decode_at(&self, pos: usize, expected: u64) -> Result<(RecordView<'_>, usize)> {
        self.decode_checked(pos, Some(expected))
    }

    /// Decode the published record at `pos`, which must carry offset `min`, or in a sparse
    /// segment any offset from `min` on (the record after `min - 1`, past a gap).
    #[inline]
    pub fn decode_next(&self, pos: usize, min: u64) -> Result<(RecordView<'_>, usize)> {
        if !self.is_sparse() {
            return self.decode_at(pos, min);
        }
        let (rec, next) = self.decode_checked(pos, None)?;
        if rec.offset() < min {
            let kind = CorruptionKind::OffsetMismatch { got: rec.offset(), expected: min };
            return Err(Error::corrupt(&self.paths.data, pos as u64, kind));
        }
        Ok((rec, next))
    }

    #[inline]
    fn decode_checked(&self, pos: usize, expected: Option<u64>) -> Result<(RecordView<'_>, usize)> {
        let buf = self.map.published_bytes();
        match decode_frame(buf, pos, expected) {
            Frame::Record(h) => Ok((view(buf, pos, &h), pos + align_up(h.frame_len as usize))),
            Frame::End => Err(Error::corrupt(&self.paths.data, pos as u64, CorruptionKind::MissingData)),
            Frame::Invalid(kind) => Err(Error::corrupt(&self.paths.data, pos as u64, kind)),
        }
    }

    /// The unvalidated check made on each record hopped over by its length: the header fits,
    /// the length is plausible, and the offset is `off` (or, in a sparse segment unless
    /// `exact`, at least `off`). Returns the record's offset and length.
    #[inline]
    fn hop_check(&self, buf: &[u8], pos: usize, off: u64, exact: bool) -> Option<(u64, usize)> {
        if pos + frame::RECORD_HEADER_LEN > buf.len() {
            return None;
        }
        let o = le_u64(buf, pos + frame::OFFSET_AT);
        let len = le_u32(buf, pos) as usize;
        let offset_ok = if exact || !self.is_sparse() { o == off } else { o >= off };
        (offset_ok && len >= frame::RECORD_HEADER_LEN).then_some((o, len))
    }

    /// Validated records from `(pos, off)` on (`off`: the lowest offset the record at `pos`
    /// may have), up to the segment's published end.
    pub fn records_from(&self, pos: usize, off: u64) -> Records<'_> {
        Records { seg: self, pos, off, end: self.next_offset() }
    }

    /// Scan forward from `(pos, off)` to the record with offset `target`, or to the gap that
    /// holds it.
    ///
    /// Records between the start and the target are hopped over by their length field after a
    /// check of their self-offset, without a checksum; only the record landed on is fully
    /// validated. If a hop lands on bytes that are not the expected frame, the validation (or
    /// the hop check) fails and `locate` falls back to a fully validated scan, which reports
    /// the damage where it is.
    fn scan_to(&self, mut pos: usize, mut off: u64, target: u64) -> Result<Located<'_>> {
        let buf = self.map.published_bytes();
        let hops = target - off;
        if hops > 2 {
            // Span estimated from the segment's average frame size: no lock, two loads.
            let records = self.next_offset().saturating_sub(self.base_offset).max(1);
            let avg = (buf.len().saturating_sub(SEGMENT_HEADER_LEN) as u64 / records) as usize;
            touch_lines(buf, pos, (hops as usize + 1).saturating_mul(avg));
        }
        // An index entry names the exact offset of its record; the segment start does not.
        let mut exact = pos != SEGMENT_HEADER_LEN;
        let found = loop {
            if self.is_sparse() && pos >= buf.len() && !exact {
                return Ok(Located::Gap { pos, next: None });
            }
            let Some((o, len)) = self.hop_check(buf, pos, off, exact) else {
                // Let full validation name what is wrong here.
                self.decode_next(pos, off)?;
                return Err(Error::corrupt(&self.paths.data, pos as u64, CorruptionKind::MissingData));
            };
            if o >= target {
                break o;
            }
            pos += align_up(len);
            off = o + 1;
            exact = false;
        };
        let (rec, _) = self.decode_at(pos, found)?;
        Ok(if found == target { Located::At(rec, pos) } else { Located::Gap { pos, next: Some(found) } })
    }

    /// Like `scan_to`, but validating every record on the way (the fallback path).
    fn scan_to_validated(&self, pos: usize, off: u64, target: u64) -> Result<Located<'_>> {
        let mut records = self.records_from(pos, off);
        for r in records.by_ref() {
            let (rec, at) = r?;
            if rec.offset() == target {
                return Ok(Located::At(rec, at));
            }
            if rec.offset() > target {
                return Ok(Located::Gap { pos: at, next: Some(rec.offset()) });
            }
        }
        if self.is_sparse() {
            return Ok(Located::Gap { pos: records.pos, next: None });
        }
        Err(Error::corrupt(&self.paths.data, records.pos as u64, CorruptionKind::MissingData))
    }

    /// The record with offset `target` (which must be in `[base, next_offset)`) and its byte
    /// position, or the gap that holds `target` in a sparse segment. Uses the index, and falls
    /// back to a scan from the segment start if the index leads to bytes that do not
    /// validate.
    pub fn locate(&self, target: u64) -> Result<Located<'_>> {
        let (pos, off) = self.floor_by_offset(target);
        match self.scan_to(pos, off, target) {
            Ok(found @ Located::At(..)) => return Ok(found),
            // A gap found by hopping is confirmed by validating the stretch that skipped it.
            Ok(Located::Gap { .. }) => {
                if let Ok(found) = self.scan_to_validated(pos, off, target) {
                    return Ok(found);
                }
            }
            Err(_) => {}
        }
        // The index or a hop led astray, or there is damage: a fully validated scan from the
        // segment start finds the record or names the damage where it is.
        self.scan_to_validated(SEGMENT_HEADER_LEN, self.base_offset, target)
    }

    /// The record with offset `target` (which must be in `[base, next_offset)`) and its
    /// byte position. A gap is `Error::OffsetCompacted`, whose `next_existing` is the next
    /// record in this segment, or this segment's next offset if none is left in it.
    pub fn find(&self, target: u64) -> Result<(RecordView<'_>, usize)> {
        match self.locate(target)? {
            Located::At(rec, pos) => Ok((rec, pos)),
            Located::Gap { next, .. } => {
                Err(Error::OffsetCompacted { offset: target, next_existing: next.unwrap_or(self.next_offset()) })
            }
        }
    }

    /// Offset of the first record of this segment, if it holds any.
    pub fn first_record_offset(&self) -> Result<Option<u64>> {
        if !self.has_records() {
            return Ok(None);
        }
        self.records_from(SEGMENT_HEADER_LEN, self.base_offset)
            .next()
            .transpose()
            .map(|r| r.map(|(rec, _)| rec.offset()))
    }

    /// The first record with timestamp at or after `ts`, if this segment has one.
    pub fn find_time(&self, ts: u64) -> Result<Option<u64>> {
        let end = self.next_offset();
        let (p0, o0) = self.floor_by_time(ts);
        if let Some(found) = self.find_time_hopping(p0, o0, end, ts) {
            return Ok(found);
        }
        let try_from = |pos: usize, off: u64| -> Result<Option<(u64, usize)>> {
            for r in self.records_from(pos, off) {
                let (rec, at) = r?;
                if rec.timestamp_us() >= ts {
                    return Ok(Some((rec.offset(), at)));
                }
            }
            Ok(None)
        };
        let (pos, off) = self.floor_by_time(ts);
        match try_from(pos, off) {
            // The floor entry's record must be older than `ts`; if it is not, the entry's
            // timestamp was wrong (a garbled index) and the answer may lie before it.
            Ok(Some((_, at))) if at == pos && pos != SEGMENT_HEADER_LEN => {
                try_from(SEGMENT_HEADER_LEN, self.base_offset).map(|r| r.map(|(o, _)| o))
            }
            Ok(r) => Ok(r.map(|(o, _)| o)),
            Err(_) if pos != SEGMENT_HEADER_LEN => {
                try_from(SEGMENT_HEADER_LEN, self.base_offset).map(|r| r.map(|(o, _)| o))
            }
            Err(e) => Err(e),
        }
    }

    /// The fast path of `find_time`: hop record to record by length (checking each one's
    /// self-offset), then fully validate the first record at or after `ts` and the one before
    /// it. Timestamps never decrease, so those two validated neighbours decide the answer
    /// without checksumming the records in between. `None` means "not decided here": the
    /// caller falls back to the fully validating scan, which also reports damage.
    fn find_time_hopping(&self, mut pos: usize, mut off: u64, end: u64, ts: u64) -> Option<Option<u64>> {
        let buf = self.map.published_bytes();
        // The answer lies before the next index entry, about one index interval ahead.
        touch_lines(buf, pos, 4096 + 512);
        let mut exact = pos != SEGMENT_HEADER_LEN;
        let mut prev: Option<(usize, u64)> = None;
        while off < end && pos < buf.len() {
            let (o, len) = self.hop_check(buf, pos, off, exact)?;
            if le_u64(buf, pos + frame::TIMESTAMP_AT) >= ts {
                let (rec, _) = self.decode_at(pos, o).ok()?;
                if rec.timestamp_us() < ts {
                    return None;
                }
                let (pp, po) = prev?;
                let (p, _) = self.decode_at(pp, po).ok()?;
                if p.timestamp_us() >= ts {
                    return None;
                }
                return Some(Some(o));
            }
            prev = Some((pos, o));
            pos += align_up(len);
            off = o + 1;
            exact = false;
        }
        let (pp, po) = prev?;
        let (p, _) = self.decode_at(pp, po).ok()?;
        (p.timestamp_us() < ts).then_some(None)
    }

    /// Timestamp of the first record (0 if the segment is empty).
    pub fn min_ts(&self) -> u64 {
        if !self.has_records() {
            return 0;
        }
        match self.records_from(SEGMENT_HEADER_LEN, self.base_offset).next() {
            Some(Ok((r, _))) => r.timestamp_us(),
            _ => 0,
        }
    }

    /// Records in this segment: for a sparse segment (sealed, immutable) counted once.
    pub fn record_count(&self) -> u64 {
        if !self.is_sparse() {
            return self.next_offset() - self.base_offset;
        }
        *self.sparse_records.get_or_init(|| self.count_records_before(self.end_pos()))
    }

    /// Records in this segment before byte `end`, counted by hopping over them by length
    /// (the caller validated them up to there).
    pub fn count_records_before(&self, end: usize) -> u64 {
        let buf = self.map.published_bytes();
        let end = end.min(buf.len());
        let (mut pos, mut n) = (SEGMENT_HEADER_LEN, 0);
        while pos + 4 <= end {
            pos += align_up((le_u32(buf, pos) as usize).max(frame::RECORD_HEADER_LEN));
            n += 1;
        }
        n
    }
}

/// Validated records of a segment, in order, from a position (see [`Segment::records_from`]).
/// Stops at the segment's published end, and after the first error.
pub(crate) struct Records<'a> {
    seg: &'a Segment,
    pos: usize,
    off: u64,
    end: u64,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<(RecordView<'a>, usize)>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.off >= self.end || (self.seg.is_sparse() && self.pos >= self.seg.end_pos()) {
            return None;
        }
        match self.seg.decode_next(self.pos, self.off) {
            Ok((rec, next)) => {
                let at = self.pos;
                self.pos = next;
                self.off = rec.offset() + 1;
                Some(Ok((rec, at)))
            }
            Err(e) => {
                self.off = self.end;
                Some(Err(e))
            }
        }
    }
}

#[inline]
fn view<'a>(buf: &'a [u8], pos: usize, h: &FrameHeader) -> RecordView<'a> {
    RecordView::from_frame(&buf[pos..pos + h.frame_len as usize], h)
}

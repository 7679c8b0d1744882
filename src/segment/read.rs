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
        let buf = self.map.published_bytes();
        match decode_frame(buf, pos, Some(expected)) {
            Frame::Record(h) => Ok((view(buf, pos, &h), pos + align_up(h.frame_len as usize))),
            Frame::End => Err(Error::corrupt(&self.paths.data, pos as u64, CorruptionKind::MissingData)),
            Frame::Invalid(kind) => Err(Error::corrupt(&self.paths.data, pos as u64, kind)),
        }
    }

    /// Scan forward from `(pos, off)` to the record with offset `target`.
    ///
    /// Records between the start and the target are hopped over by their length field after a
    /// check of their self-offset, without a checksum; only the target is fully validated.
    /// If a hop lands on bytes that are not the expected frame, the target's validation (or
    /// the hop check) fails and `find` falls back to a fully validated scan, which reports
    /// the damage where it is.
    fn scan_to(&self, mut pos: usize, mut off: u64, target: u64) -> Result<(RecordView<'_>, usize)> {
        let buf = self.map.published_bytes();
        let hops = target - off;
        if hops > 2 {
            // Span estimated from the segment's average frame size: no lock, two loads.
            let records = self.next_offset().saturating_sub(self.base_offset).max(1);
            let avg = (buf.len().saturating_sub(SEGMENT_HEADER_LEN) as u64 / records) as usize;
            touch_lines(buf, pos, (hops as usize + 1).saturating_mul(avg));
        }
        while off < target {
            let hop_ok = pos + frame::RECORD_HEADER_LEN <= buf.len()
                && le_u64(buf, pos + frame::OFFSET_AT) == off
                && (le_u32(buf, pos) as usize) >= frame::RECORD_HEADER_LEN;
            if !hop_ok {
                // Let full validation name what is wrong here.
                self.decode_at(pos, off)?;
                return Err(Error::corrupt(&self.paths.data, pos as u64, CorruptionKind::MissingData));
            }
            pos += align_up(le_u32(buf, pos) as usize);
            off += 1;
        }
        let (rec, _) = self.decode_at(pos, off)?;
        Ok((rec, pos))
    }

    /// Like `scan_to`, but validating every record on the way (the fallback path).
    fn scan_to_validated(&self, mut pos: usize, mut off: u64, target: u64) -> Result<(RecordView<'_>, usize)> {
        loop {
            let (rec, next) = self.decode_at(pos, off)?;
            if off == target {
                return Ok((rec, pos));
            }
            pos = next;
            off += 1;
        }
    }

    /// The record with offset `target` (which must be in `[base, next_offset)`) and its
    /// byte position. Uses the index, and falls back to a scan from the segment start if the
    /// index leads to bytes that do not validate.
    pub fn find(&self, target: u64) -> Result<(RecordView<'_>, usize)> {
        let (pos, off) = self.floor_by_offset(target);
        match self.scan_to(pos, off, target) {
            Ok(r) => Ok(r),
            // The index or a hop led astray, or there is damage: a fully validated scan from
            // the segment start finds the record or names the damage where it is.
            Err(_) => self.scan_to_validated(SEGMENT_HEADER_LEN, self.base_offset, target),
        }
    }

    /// The first record with timestamp at or after `ts`, if this segment has one.
    pub fn find_time(&self, ts: u64) -> Result<Option<u64>> {
        let end = self.next_offset();
        let (p0, o0) = self.floor_by_time(ts);
        if let Some(found) = self.find_time_hopping(p0, o0, end, ts) {
            return Ok(found);
        }
        let try_from = |mut pos: usize, mut off: u64| -> Result<Option<u64>> {
            while off < end {
                let (rec, next) = self.decode_at(pos, off)?;
                if rec.timestamp_us() >= ts {
                    return Ok(Some(off));
                }
                pos = next;
                off += 1;
            }
            Ok(None)
        };
        let (pos, off) = self.floor_by_time(ts);
        match try_from(pos, off) {
            // The floor entry's record must be older than `ts`; if it is not, the entry's
            // timestamp was wrong (a garbled index) and the answer may lie before it.
            Ok(Some(found)) if found == off && pos != SEGMENT_HEADER_LEN => {
                try_from(SEGMENT_HEADER_LEN, self.base_offset)
            }
            Ok(r) => Ok(r),
            Err(_) if pos != SEGMENT_HEADER_LEN => try_from(SEGMENT_HEADER_LEN, self.base_offset),
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
        let mut prev: Option<(usize, u64)> = None;
        while off < end {
            if pos + frame::RECORD_HEADER_LEN > buf.len() || le_u64(buf, pos + frame::OFFSET_AT) != off {
                return None;
            }
            let len = le_u32(buf, pos) as usize;
            if len < frame::RECORD_HEADER_LEN {
                return None;
            }
            if le_u64(buf, pos + frame::TIMESTAMP_AT) >= ts {
                let (rec, _) = self.decode_at(pos, off).ok()?;
                if rec.timestamp_us() < ts {
                    return None;
                }
                let (pp, po) = prev?;
                let (p, _) = self.decode_at(pp, po).ok()?;
                if p.timestamp_us() >= ts {
                    return None;
                }
                return Some(Some(off));
            }
            prev = Some((pos, off));
            pos += align_up(len);
            off += 1;
        }
        let (pp, po) = prev?;
        let (p, _) = self.decode_at(pp, po).ok()?;
        (p.timestamp_us() < ts).then_some(None)
    }

    /// Timestamp of the first record (0 if the segment is empty).
    pub fn min_ts(&self) -> u64 {
        if self.next_offset() == self.base_offset {
            return 0;
        }
        self.decode_at(SEGMENT_HEADER_LEN, self.base_offset).map(|(r, _)| r.timestamp_us()).unwrap_or(0)
    }
}

#[inline]
fn view<'a>(buf: &'a [u8], pos: usize, h: &FrameHeader) -> RecordView<'a> {
    RecordView::from_frame(&buf[pos..pos + h.frame_len as usize], h)
}

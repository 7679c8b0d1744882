//! A segment: one data file (`{base:020}.log`), its sparse offset index
//! (`{base:020}.index`) and its time index (`{base:020}.timeindex`).
//!
//! The active segment keeps its index entries in memory (under a short `RwLock`) and
//! persists them lazily; a sealed segment's indexes are immutable files mapped read-only,
//! so heap use does not grow with the size of the log.
//!
//! Index entry `i` of the offset index and entry `i` of the time index describe the same
//! record. Indexes are derived data: a lookup that lands on a position whose record does not
//! validate falls back to a scan from the segment start, so a damaged index can slow a read
//! but never change its result.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::error::{CorruptionKind, Error, IoContext, Result};
use crate::format::{
    self, align_up, decode_frame, Frame, FrameHeader, IndexHeader, SegmentHeader, INDEX_HEADER_LEN, OFFSET_ENTRY_LEN,
    OFFSET_INDEX_MAGIC, SEGMENT_HEADER_LEN, TIME_ENTRY_LEN, TIME_INDEX_MAGIC,
};
use crate::fsutil;
use crate::mmap::{self, SegmentMap};
use crate::record::RecordView;

/// File names of a segment.
#[derive(Debug, Clone)]
pub(crate) struct SegmentPaths {
    pub data: PathBuf,
    pub offset_index: PathBuf,
    pub time_index: PathBuf,
}

impl SegmentPaths {
    pub fn new(dir: &Path, base: u64) -> SegmentPaths {
        SegmentPaths {
            data: dir.join(format!("{base:020}.log")),
            offset_index: dir.join(format!("{base:020}.index")),
            time_index: dir.join(format!("{base:020}.timeindex")),
        }
    }
}

/// Parse a segment data file name (`{20 digits}.log`) into its base offset.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

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
        IndexEntry { rel: format::le_u32(o, oa), pos: format::le_u32(o, oa + 4), ts: format::le_u64(t, ta) }
    }
}

#[derive(Debug)]
pub(crate) enum SegIndex {
    Active(RwLock<ActiveIndex>),
    Sealed(SealedIndex),
}

/// A segment as readers see it. Shared through `Arc`; never mutated except through atomics.
#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: u64,
    pub created_us: u64,
    pub paths: SegmentPaths,
    pub map: Arc<SegmentMap>,
    pub index: SegIndex,
    /// One past the last published offset in this segment.
    next_offset: AtomicU64,
    /// Timestamp of the last published record (timestamps never decrease).
    max_ts: AtomicU64,
}

/// Where a validating scan stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanStop {
    /// Zero length field: the end of written data.
    End,
    /// Valid data ends at `pos`; the first bad frame is at `bad_pos` (later than `pos` when a
    /// batch is cut short: its earlier records are valid but not applied).
    Invalid { pos: usize, bad_pos: usize, bad_offset: u64, kind: CorruptionKind },
}

/// Progress of a validating scan. Only whole batches are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScanState {
    pub pos: usize,
    pub next_offset: u64,
    pub last_ts: u64,
    /// Bytes appended since the last index entry.
    pub since_entry: usize,
}

impl ScanState {
    pub fn at_start(base: u64) -> ScanState {
        ScanState { pos: SEGMENT_HEADER_LEN, next_offset: base, last_ts: 0, since_entry: 0 }
    }
}

/// The frame starting at `pos`, read the way a follower must: its length field with
/// `Acquire`, then its bytes. Returns `None` at a zero length (end of data).
fn frame_bytes(map: &SegmentMap, pos: usize) -> Option<&[u8]> {
    let len = map.frame_len_acquire(pos)? as usize;
    if len == 0 {
        return None;
    }
    // A length past the map is handed to the decoder truncated, which reports BadLength.
    map.follower_bytes(pos, pos.checked_add(len)?.min(map.len()))
}

/// Validate records from `st` onward, applying whole batches to `st` and appending index
/// entries (every `interval` bytes) to `entries`. `limit` caps the scan (`None`: the map end).
/// Stops at the first zero length or invalid frame; a batch cut short by either is not
/// applied and reported as `Invalid` at the batch's first record.
pub(crate) fn scan(
    map: &SegmentMap,
    base: u64,
    st: &mut ScanState,
    interval: usize,
    entries: &mut Vec<IndexEntry>,
    limit: Option<usize>,
) -> ScanStop {
    let end_limit = limit.unwrap_or(map.len()).min(map.len());
    let mut cur = *st;
    let mut pending: Vec<IndexEntry> = Vec::new();
    let mut batch_left: Option<u32> = None;
    loop {
        if cur.pos >= end_limit {
            return finish(st, &cur, batch_left, ScanStop::End);
        }
        let bytes = match frame_bytes(map, cur.pos) {
            Some(b) => b,
            None => {
                let stop = if map.frame_len_acquire(cur.pos).is_none() && cur.pos + 4 <= map.len() {
                    ScanStop::Invalid {
                        pos: cur.pos,
                        bad_pos: cur.pos,
                        bad_offset: cur.next_offset,
                        kind: CorruptionKind::BadField("alignment"),
                    }
                } else {
                    ScanStop::End
                };
                return finish(st, &cur, batch_left, stop);
            }
        };
        let hdr = match decode_frame(bytes, 0, Some(cur.next_offset)) {
            Frame::Record(h) => h,
            Frame::End => return finish(st, &cur, batch_left, ScanStop::End),
            Frame::Invalid(kind) => {
                let stop = ScanStop::Invalid { pos: cur.pos, bad_pos: cur.pos, bad_offset: cur.next_offset, kind };
                return finish(st, &cur, batch_left, stop);
            }
        };
        if let Some(left) = batch_left {
            if hdr.batch_rest + 1 != left {
                let stop = ScanStop::Invalid {
                    pos: cur.pos,
                    bad_pos: cur.pos,
                    bad_offset: cur.next_offset,
                    kind: CorruptionKind::BadField("batch_rest"),
                };
                return finish(st, &cur, batch_left, stop);
            }
        }
        if cur.since_entry >= interval || (cur.pos == SEGMENT_HEADER_LEN && entries.is_empty() && pending.is_empty()) {
            pending.push(IndexEntry { rel: (hdr.offset - base) as u32, pos: cur.pos as u32, ts: hdr.timestamp_us });
            cur.since_entry = 0;
        }
        let step = align_up(hdr.frame_len as usize);
        cur.pos += step;
        cur.since_entry += step;
        cur.next_offset += 1;
        cur.last_ts = hdr.timestamp_us;
        if hdr.batch_rest == 0 {
            *st = cur;
            entries.append(&mut pending);
            batch_left = None;
        } else {
            batch_left = Some(hdr.batch_rest);
        }
    }
}

fn finish(st: &ScanState, cur: &ScanState, batch_left: Option<u32>, stop: ScanStop) -> ScanStop {
    if batch_left.is_some() {
        // The batch that started at `st.pos` never completed: it is not applied.
        let (bad_pos, bad_offset, kind) = match stop {
            ScanStop::Invalid { bad_pos, bad_offset, kind, .. } => (bad_pos, bad_offset, kind),
            ScanStop::End => (cur.pos, cur.next_offset, CorruptionKind::IncompleteBatch),
        };
        return ScanStop::Invalid { pos: st.pos, bad_pos, bad_offset, kind };
    }
    stop
}

/// The regions of `[from, map.len())` that may hold non-zero bytes, by `SEEK_DATA`/`SEEK_HOLE`:
/// reserved but never written blocks read as zero and are left out without being touched, so
/// callers pay for what was written, not for the segment's capacity. Where the file system
/// cannot say, the whole range is one region.
fn data_regions(map: &SegmentMap, file: &File, from: usize) -> Vec<(usize, usize)> {
    use rustix::fs::{seek, SeekFrom};
    let len = map.len();
    let mut out = Vec::new();
    let mut p = from;
    while p < len {
        let data = match seek(file, SeekFrom::Data(p as u64)) {
            Ok(d) => d as usize,
            // ENXIO: no data at or after `p`.
            Err(e) if e == rustix::io::Errno::NXIO => break,
            Err(_) => return vec![(from, len)],
        };
        if data >= len {
            break;
        }
        let hole = match seek(file, SeekFrom::Hole(data as u64)) {
            Ok(h) => (h as usize).min(len),
            Err(_) => len,
        };
        out.push((data.max(from), hole));
        p = hole;
    }
    out
}

/// True if a frame that validates (checksum and an offset at or after `min_offset`) starts at
/// any aligned position in `[from, map.len())`: the test that separates damage followed by
/// good records from a torn tail.
pub(crate) fn valid_frame_after(map: &SegmentMap, file: &File, from: usize, min_offset: u64) -> Option<usize> {
    for (start, end) in data_regions(map, file, from) {
        let mut pos = align_up(start);
        while pos + format::RECORD_HEADER_LEN <= end.min(map.len()) {
            if let Some(bytes) = frame_bytes(map, pos) {
                if let Frame::Record(h) = decode_frame(bytes, 0, None) {
                    if h.offset >= min_offset {
                        return Some(pos);
                    }
                }
            }
            pos += format::RECORD_ALIGN;
        }
    }
    None
}

/// One past the last non-zero byte at or after `from` (or `from` if all are zero).
pub(crate) fn nonzero_end(map: &SegmentMap, file: &File, from: usize) -> usize {
    let mut end = from;
    for (a, b) in data_regions(map, file, from) {
        if let Some(bytes) = map.follower_bytes(a, b) {
            if let Some(i) = bytes.iter().rposition(|&x| x != 0) {
                end = end.max(a + i + 1);
            }
        }
    }
    end
}

impl Segment {
    pub fn new(
        base_offset: u64,
        created_us: u64,
        paths: SegmentPaths,
        map: Arc<SegmentMap>,
        index: SegIndex,
        next_offset: u64,
        max_ts: u64,
    ) -> Segment {
        Segment {
            base_offset,
            created_us,
            paths,
            map,
            index,
            next_offset: AtomicU64::new(next_offset),
            max_ts: AtomicU64::new(max_ts),
        }
    }

    /// One past the last published offset of this segment.
    #[inline]
    pub fn next_offset(&self) -> u64 {
        self.next_offset.load(Ordering::Acquire)
    }

    /// Timestamp of the last published record (0 if empty).
    pub fn max_ts(&self) -> u64 {
        self.max_ts.load(Ordering::Acquire)
    }

    /// Publish records up to `next_offset` (the map's published end was advanced first).
    pub fn publish(&self, next_offset: u64, max_ts: u64) {
        self.max_ts.store(max_ts, Ordering::Release);
        self.next_offset.store(next_offset, Ordering::Release);
    }

    pub fn is_sealed(&self) -> bool {
        matches!(self.index, SegIndex::Sealed(_))
    }

    /// Bytes of records (header included) published in this segment.
    pub fn end_pos(&self) -> usize {
        self.map.published()
    }

    /// Number of index entries, and entry `i`.
    fn with_entries<R>(&self, f: impl FnOnce(usize, &dyn Fn(usize) -> IndexEntry) -> R) -> R {
        match &self.index {
            SegIndex::Active(lock) => {
                let idx = lock.read();
                f(idx.entries.len(), &|i| idx.entries[i])
            }
            SegIndex::Sealed(s) => f(s.count, &|i| s.entry(i)),
        }
    }

    /// The closest index entry at or before `offset`: (byte position, offset there).
    fn floor_by_offset(&self, offset: u64) -> (usize, u64) {
        let start = (SEGMENT_HEADER_LEN, self.base_offset);
        let Some(rel) = offset.checked_sub(self.base_offset) else { return start };
        self.with_entries(|n, entry| match count_le(n, |i| entry(i).rel as u64, rel) {
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
        self.with_entries(|n, entry| match count_le(n, |i| entry(i).ts, below) {
            0 => start,
            i => {
                let e = entry(i - 1);
                (e.pos as usize, self.base_offset + e.rel as u64)
            }
        })
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
            let hop_ok = pos + format::RECORD_HEADER_LEN <= buf.len()
                && format::le_u64(buf, pos + format::OFFSET_AT) == off
                && (format::le_u32(buf, pos) as usize) >= format::RECORD_HEADER_LEN;
            if !hop_ok {
                // Let full validation name what is wrong here.
                self.decode_at(pos, off)?;
                return Err(Error::corrupt(&self.paths.data, pos as u64, CorruptionKind::MissingData));
            }
            pos += align_up(format::le_u32(buf, pos) as usize);
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
            if pos + format::RECORD_HEADER_LEN > buf.len() || format::le_u64(buf, pos + format::OFFSET_AT) != off {
                return None;
            }
            let len = format::le_u32(buf, pos) as usize;
            if len < format::RECORD_HEADER_LEN {
                return None;
            }
            if format::le_u64(buf, pos + format::TIMESTAMP_AT) >= ts {
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

    /// Append an index entry (active segment only).
    pub fn push_index(&self, e: IndexEntry) {
        if let SegIndex::Active(lock) = &self.index {
            lock.write().entries.push(e);
        }
    }

    /// A copy of the active index entries (empty for a sealed segment).
    pub fn active_entries(&self) -> Vec<IndexEntry> {
        match &self.index {
            SegIndex::Active(lock) => lock.read().entries.clone(),
            SegIndex::Sealed(_) => Vec::new(),
        }
    }
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

#[inline]
fn view<'a>(buf: &'a [u8], pos: usize, h: &FrameHeader) -> RecordView<'a> {
    RecordView::from_frame(&buf[pos..pos + h.frame_len as usize], h)
}

// ---- files ---------------------------------------------------------------------------------

/// Read and validate the segment header of an open data file.
pub(crate) fn read_segment_header(file: &mut File, path: &Path) -> Result<(SegmentHeader, u64)> {
    let len = file.metadata().at(path)?.len();
    let mut b = [0u8; SEGMENT_HEADER_LEN];
    if len < SEGMENT_HEADER_LEN as u64 {
        return Err(Error::corrupt(
            path,
            0,
            CorruptionKind::BadLength { len: SEGMENT_HEADER_LEN as u64, available: len },
        ));
    }
    file.read_exact(&mut b).at(path)?;
    let h = SegmentHeader::decode(&b).map_err(|(pos, kind)| Error::corrupt(path, pos as u64, kind))?;
    Ok((h, len))
}

/// Create a new segment data file atomically (temporary name, header, fsync, rename,
/// directory fsync) with `capacity` bytes reserved. Returns the open file.
pub(crate) fn create_segment_file(dir: &Path, base: u64, created_us: u64, capacity: u64) -> Result<File> {
    let paths = SegmentPaths::new(dir, base);
    let tmp = fsutil::tmp_path(&paths.data);
    let mut f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&tmp).at(&tmp)?;
    fsutil::preallocate(&f, capacity).at(&tmp)?;
    let hdr = SegmentHeader { base_offset: base, created_us, capacity };
    f.write_all(&hdr.encode()).at(&tmp)?;
    f.sync_all().at(&tmp)?;
    fs::rename(&tmp, &paths.data).at(&paths.data)?;
    // IMPORTANT: the new name is durable only after the directory is fsynced.
    fsutil::fsync_dir(dir)?;
    // Fresh active index files (derived data: not fsynced here).
    write_active_index_files(&paths, base, 0, &[])?;
    Ok(f)
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
    fs::write(&tmp, bytes).at(&tmp)?;
    fs::rename(&tmp, path).at(path)
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
        let mut f = File::create(&tmp).at(&tmp)?;
        f.write_all(bytes).at(&tmp)?;
        f.sync_all().at(&tmp)?;
        fs::rename(&tmp, path).at(path)?;
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
        let e = IndexEntry { rel: format::le_u32(&o, oa), pos: format::le_u32(&o, oa + 4), ts: format::le_u64(&t, ta) };
        let trel = format::le_u32(&t, ta + 8);
        let increasing = out.last().is_none_or(|p| e.rel > p.rel && e.pos > p.pos && e.ts >= p.ts);
        if trel != e.rel || !increasing || (e.pos as usize) < SEGMENT_HEADER_LEN || e.pos as usize >= trusted_pos {
            break;
        }
        out.push(e);
    }
    out
}

/// Remove a segment's files (data first, so a crash never leaves indexes without data that a
/// later open would misread; stray index files are ignored and overwritten).
pub(crate) fn remove_segment_files(paths: &SegmentPaths) -> Result<()> {
    for p in [&paths.data, &paths.offset_index, &paths.time_index] {
        match fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(p, e)),
        }
    }
    Ok(())
}

//! The validating scan: recovery, followers and `verify` walk a segment's frames with it,
//! applying whole batches only; and the probes that tell a torn tail from damage.

use std::fs::File;

use crate::error::CorruptionKind;
use crate::format::frame;
use crate::format::{align_up, decode_frame, Frame, SegmentHeader, SEGMENT_HEADER_LEN};
use crate::io::mmap::SegmentMap;
use crate::segment::index::IndexEntry;

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

/// Where a sparse segment ends, from its header: the end of its records and one past the
/// last offset it spans. `None` for a dense segment (its offsets go up by one).
fn sparse_end(map: &SegmentMap) -> Option<(usize, u64)> {
    // The header lies before every record and is never rewritten: readable like a frame.
    let h = SegmentHeader::decode(map.follower_bytes(0, SEGMENT_HEADER_LEN)?).ok()?;
    h.sparse_offsets.then(|| (usize::try_from(h.end_pos).unwrap_or(usize::MAX), h.next_offset))
}

/// Validate records from `st` onward, applying whole batches to `st` and appending index
/// entries (every `interval` bytes) to `entries`. `limit` caps the scan (`None`: the map end).
/// Stops at the first zero length or invalid frame; a batch cut short by either is not
/// applied and reported as `Invalid` at the batch's first record.
///
/// Offsets go up by exactly one from record to record, or, in a segment whose header says its
/// offsets are sparse, strictly increase and stay below the end the header records (a stale
/// frame fails either way). `st.next_offset` is one past the last record applied; a sparse
/// segment scanned to the end of its records takes the end its header records, the base of
/// the next segment, so that a scan tells a complete sparse segment from one that lost its
/// tail.
pub(crate) fn scan_frames(
    map: &SegmentMap,
    base: u64,
    st: &mut ScanState,
    interval: usize,
    entries: &mut Vec<IndexEntry>,
    limit: Option<usize>,
) -> ScanStop {
    let sparse = sparse_end(map);
    let limit = match sparse {
        Some((end_pos, _)) => Some(limit.unwrap_or(end_pos).min(end_pos)),
        None => limit,
    };
    let stop = scan_from(map, base, st, interval, entries, limit, sparse.map(|(_, next)| next));
    if let (Some((end_pos, next)), ScanStop::End) = (sparse, &stop) {
        if st.pos >= end_pos {
            st.next_offset = st.next_offset.max(next);
        }
    }
    stop
}

/// The scan of [`scan_frames`]; `sparse_below` is `Some(end)` in a sparse segment.
fn scan_from(
    map: &SegmentMap,
    base: u64,
    st: &mut ScanState,
    interval: usize,
    entries: &mut Vec<IndexEntry>,
    limit: Option<usize>,
    sparse_below: Option<u64>,
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
        let expected = if sparse_below.is_some() { None } else { Some(cur.next_offset) };
        let hdr = match decode_frame(bytes, 0, expected) {
            Frame::Record(h) if h.offset < cur.next_offset || sparse_below.is_some_and(|end| h.offset >= end) => {
                let kind = CorruptionKind::OffsetMismatch { got: h.offset, expected: cur.next_offset };
                let stop = ScanStop::Invalid { pos: cur.pos, bad_pos: cur.pos, bad_offset: cur.next_offset, kind };
                return finish(st, &cur, batch_left, stop);
            }
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
        cur.next_offset = hdr.offset + 1;
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
        while pos + frame::RECORD_HEADER_LEN <= end.min(map.len()) {
            if let Some(bytes) = frame_bytes(map, pos) {
                if let Frame::Record(h) = decode_frame(bytes, 0, None) {
                    if h.offset >= min_offset {
                        return Some(pos);
                    }
                }
            }
            pos += frame::RECORD_ALIGN;
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

/// The highest durable mark carried by a frame that validates (checksum, and an offset above
/// `after_offset`) at any aligned position in `[from, map.len())`. Such a frame was written
/// after the bytes before it; its mark is the durable point known then (see `format::frame`),
/// so it proves how far the log was durable even when the bytes before it are damaged.
pub(crate) fn durable_mark_after(map: &SegmentMap, file: &File, from: usize, after_offset: u64) -> Option<u64> {
    let mut best: Option<u64> = None;
    for (start, end) in data_regions(map, file, from) {
        let mut pos = align_up(start);
        while pos + frame::RECORD_HEADER_LEN <= end.min(map.len()) {
            if let Some(bytes) = frame_bytes(map, pos) {
                if let Frame::Record(h) = decode_frame(bytes, 0, None) {
                    if h.offset > after_offset {
                        if let Some(m) = h.durable_mark {
                            best = Some(best.map_or(m, |b| b.max(m)));
                        }
                        pos += align_up(h.frame_len as usize);
                        continue;
                    }
                }
            }
            pos += frame::RECORD_ALIGN;
        }
    }
    best
}

/// The highest offset (at or above `min_offset`) of a frame that validates at an aligned
/// position in `[from, to)`: the last record a torn tail's repair would drop.
pub(crate) fn last_valid_offset_in(
    map: &SegmentMap,
    file: &File,
    from: usize,
    to: usize,
    min_offset: u64,
) -> Option<u64> {
    let mut best = None;
    for (start, end) in data_regions(map, file, from) {
        let mut pos = align_up(start);
        while pos + frame::RECORD_HEADER_LEN <= end.min(to).min(map.len()) {
            if let Some(bytes) = frame_bytes(map, pos) {
                if let Frame::Record(h) = decode_frame(bytes, 0, None) {
                    if h.offset >= min_offset {
                        best = Some(best.map_or(h.offset, |b: u64| b.max(h.offset)));
                        pos += align_up(h.frame_len as usize);
                        continue;
                    }
                }
            }
            pos += frame::RECORD_ALIGN;
        }
    }
    best
}

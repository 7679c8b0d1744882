//! Stage 4: validate the active segment from the checkpoint's durable point and classify how
//! it ends.

use super::*;

/// What examining the active segment found.
pub(super) struct Tail {
    /// Where valid, whole batches end, and the index entries up to there.
    pub(super) end: ScanState,
    pub(super) entries: Vec<IndexEntry>,
    pub(super) finding: Finding,
    /// The damage (file and byte), for `DamagedTail`.
    pub(super) damage: Option<(Location, CorruptionKind)>,
    /// Bytes to zero for a torn tail, or to set aside for a salvage: `[from, to)`.
    pub(super) cut: Option<(usize, usize)>,
    /// The checkpoint vouched for the whole valid prefix, as a clean close leaves it.
    pub(super) trusted_to_end: bool,
    pub(super) scanned_bytes: u64,
}

pub(super) fn examine_tail(
    c: &ActiveCandidate,
    ckpt: Option<Checkpoint>,
    opts: &Options,
    clean_or_new: bool,
    writable: bool,
) -> Tail {
    let interval = opts.index_interval_bytes as usize;
    let base = c.id.base_offset;
    let map = &c.map;
    let path = &c.id.paths.data;
    let damage_at = |pos: usize, kind| Some((Location::File { path: path.clone(), position: pos as u64 }, kind));
    let mut tail = Tail {
        end: ScanState::at_start(base),
        entries: Vec::new(),
        finding: Finding::Intact,
        damage: None,
        cut: None,
        trusted_to_end: false,
        scanned_bytes: 0,
    };
    let vouching = ckpt.filter(|c| c.segment_base == base);
    if let Some(v) = vouching.filter(|v| v.position > c.file_len) {
        // The file was cut short below the durable point: acknowledged records are gone. That
        // is damage, never a torn tail. Salvage validates the file from its start and cuts at
        // the last intact batch.
        tail.finding = Finding::DamagedTail;
        tail.damage = damage_at(v.position.min(c.file_len) as usize, CorruptionKind::MissingData);
        let stop = segment::scan_frames(map, base, &mut tail.end, interval, &mut tail.entries, None);
        tail.scanned_bytes = tail.end.pos as u64;
        let from = match stop {
            ScanStop::Invalid { pos, .. } => pos,
            ScanStop::End => tail.end.pos,
        };
        tail.cut = Some((from, segment::nonzero_end(map, &c.file, from).max(from)));
        return tail;
    }
    let trusted = vouching.filter(|v| {
        v.position >= SEGMENT_HEADER_LEN as u64
            && v.position <= c.file_len
            && v.position <= map.len() as u64
            && v.position % 8 == 0
            && v.next_offset >= base
    });
    if let Some(v) = trusted {
        let entries = segment::read_active_index(&c.id.paths, base, v.position as usize);
        let from = entries.last().map_or(ScanState::at_start(base), |e| ScanState {
            pos: e.pos as usize,
            next_offset: base + e.rel as u64,
            last_ts: e.ts,
            since_entry: 0,
        });
        // The checkpoint vouches for records up to its position. Check the last stretch of
        // them (at most one index interval) before trusting it: a checkpoint newer than its
        // segment (a restored backup, a lost write) must not make zeros pass for records.
        let vouched = |st: &ScanState| st.pos == v.position as usize && st.next_offset == v.next_offset;
        let mut chk = from;
        segment::scan_frames(map, base, &mut chk, interval, &mut Vec::new(), Some(v.position as usize));
        if vouched(&chk) {
            tail.end = ScanState {
                pos: chk.pos,
                next_offset: chk.next_offset,
                last_ts: chk.last_ts.max(v.last_timestamp_us),
                since_entry: v.position as usize - from.pos,
            };
            tail.entries = entries;
        } else {
            // The index entry may be what is wrong (derived data, never fatal): validate from
            // the segment start before calling it damage.
            let mut full = ScanState::at_start(base);
            let mut rebuilt = Vec::new();
            let stop = segment::scan_frames(map, base, &mut full, interval, &mut rebuilt, Some(v.position as usize));
            tail.scanned_bytes += full.pos as u64;
            if !vouched(&full) {
                let (at, kind, cut_from) = match stop {
                    ScanStop::Invalid { bad_pos, kind, pos, .. } => (bad_pos, kind, pos),
                    ScanStop::End => (full.pos, CorruptionKind::MissingData, full.pos),
                };
                tail.finding = Finding::DamagedTail;
                tail.damage = damage_at(at, kind);
                tail.end = full;
                tail.entries = rebuilt;
                tail.cut = Some((cut_from, segment::nonzero_end(map, &c.file, cut_from).max(cut_from)));
                return tail;
            }
            tail.end = full;
            tail.entries = rebuilt;
        }
    }
    let start_pos = tail.end.pos;
    let stop = segment::scan_frames(map, base, &mut tail.end, interval, &mut tail.entries, None);
    tail.scanned_bytes += (tail.end.pos - start_pos) as u64;
    tail.trusted_to_end = trusted.is_some_and(|v| v.position as usize == tail.end.pos) && tail.scanned_bytes == 0;
    match stop {
        ScanStop::End => {
            if !clean_or_new && writable {
                // After power loss, pages past the end may hold garbage written out of order;
                // they were never acknowledged as durable.
                let nz = segment::nonzero_end(map, &c.file, tail.end.pos);
                if nz > tail.end.pos {
                    tail.finding = Finding::TornTail;
                    tail.cut = Some((tail.end.pos, nz));
                }
            }
        }
        ScanStop::Invalid { pos, kind, bad_pos, bad_offset } => {
            // Past the last whole batch: torn, unless something proves the bytes were durable.
            // The checkpoint vouches for offsets before its `next_offset`; a valid frame after
            // the damage carries the durable point known when it was written.
            let ckpt_durable = ckpt.map_or(0, |c| c.next_offset);
            let later_durable = segment::durable_mark_after(map, &c.file, bad_pos + 8, bad_offset);
            let durable = ckpt_durable.max(later_durable.unwrap_or(0));
            let cut = (pos, segment::nonzero_end(map, &c.file, pos).max(pos));
            tail.cut = Some(cut);
            if bad_offset < durable {
                tail.finding = Finding::DamagedTail;
                tail.damage = damage_at(bad_pos, kind);
            } else {
                tail.finding = Finding::TornTail;
            }
        }
    }
    tail
}

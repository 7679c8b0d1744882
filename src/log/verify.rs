//! `verify`: a full checksum scan of every segment and its index files, reporting everything
//! that recovery would repair or refuse, without repairing anything.

use std::fs::File;
use std::ops::Range;
use std::path::PathBuf;

use crate::error::{CorruptionKind, Location};
use crate::format::align_up;
use crate::log::Log;
use crate::segment::{self, ScanState, ScanStop, Segment};

/// One damaged stretch found by [`Log::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Damage {
    /// The damaged data file.
    pub file: PathBuf,
    /// Byte position of the first invalid frame.
    pub position: u64,
    /// Offset the log expected there (in a segment with gaps: the lowest offset allowed
    /// there).
    pub offset: u64,
    /// What is wrong.
    pub kind: CorruptionKind,
    /// Byte position where valid records resume after the damage (or where the segment's
    /// written bytes end): the damage spans `[position, end)`.
    pub end: u64,
}

/// Bytes past the last whole batch of the active segment that do not form valid records: what
/// a crash mid-write leaves, and what the next writer's open zeroes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TornTail {
    /// The active segment's data file.
    pub file: PathBuf,
    /// Byte position where the torn bytes start (the first incomplete batch).
    pub position: u64,
    /// How many bytes would be zeroed.
    pub bytes: u64,
    /// Offsets of the records the repair would drop: those of the incomplete batch and any
    /// valid record after it (none was acknowledged as durable). Empty for stray bytes only.
    pub dropped: Range<u64>,
}

/// Result of a full checksum scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Segments scanned.
    pub segments: u64,
    /// Records that validated (offsets that compaction emptied are not records).
    pub records: u64,
    /// Bytes of records scanned.
    pub bytes: u64,
    /// Damaged stretches, in log order. Empty (with nothing missing) means no record is lost.
    pub damage: Vec<Damage>,
    /// Records the log should hold that no file holds (a segment missing), by log and offset.
    pub missing: Vec<Location>,
    /// A torn tail the next writer's open would cut (harmless: nothing durable is lost).
    pub torn_tail: Option<TornTail>,
    /// Index files that are missing or damaged and would be rebuilt (derived data: reads stay
    /// correct meanwhile, only slower).
    pub indexes_to_rebuild: Vec<PathBuf>,
}

impl VerifyReport {
    /// True if no record is damaged or missing. A torn tail or an index to rebuild does not
    /// count: recovery repairs them without losing anything acknowledged.
    pub fn is_intact(&self) -> bool {
        self.damage.is_empty() && self.missing.is_empty()
    }
}

impl Log {
    /// Validate every record of every segment (checksums, offsets, batch framing) and every
    /// sealed index entry, calling `progress` with the bytes scanned so far. Damage is
    /// reported with its extent (the scan resumes at the next valid record), not repaired.
    pub fn verify(&self, mut progress: impl FnMut(u64)) -> VerifyReport {
        let segs = self.inner.segments.read().clone();
        let mut report = VerifyReport::default();
        if let Some(m) = &self.inner.report.missing {
            report.missing.push(m.clone());
        }
        for (i, seg) in segs.iter().enumerate() {
            report.segments += 1;
            let is_last = i + 1 == segs.len();
            let file = File::open(&seg.paths.data).ok();
            self.verify_records(seg, file.as_ref(), &mut report);
            progress(report.bytes);
            if let Some(next) = segs.get(i + 1) {
                if seg.next_offset() < next.base_offset {
                    let dir = self.inner.dir.clone();
                    report.missing.push(Location::Log { dir, offset: seg.next_offset() });
                }
            }
            if is_last {
                if let Some(f) = file.as_ref() {
                    report.torn_tail = self.verify_tail(seg, f, &mut report);
                }
            } else if !verify_index(seg) {
                report.indexes_to_rebuild.push(seg.paths.offset_index.clone());
                report.indexes_to_rebuild.push(seg.paths.time_index.clone());
            }
        }
        report
    }

    /// Scan the committed records of `seg`, resuming after each damaged stretch.
    fn verify_records(&self, seg: &Segment, file: Option<&File>, report: &mut VerifyReport) {
        let interval = self.inner.opts.index_interval_bytes as usize;
        let end = seg.end_pos();
        let want = seg.next_offset();
        let mut st = ScanState::at_start(seg.base_offset);
        loop {
            let from = st;
            let stop = segment::scan_frames(&seg.map, seg.base_offset, &mut st, interval, &mut Vec::new(), Some(end));
            report.records += if seg.is_sparse() {
                seg.count_records_before(st.pos) - seg.count_records_before(from.pos)
            } else {
                st.next_offset - from.next_offset
            };
            report.bytes += (st.pos - from.pos) as u64;
            if st.next_offset >= want {
                return;
            }
            let (pos, offset, kind) = match stop {
                ScanStop::Invalid { bad_pos, bad_offset, kind, .. } => (bad_pos, bad_offset, kind),
                ScanStop::End => (st.pos, st.next_offset, CorruptionKind::MissingData),
            };
            // Where do valid records resume? The rest of the segment is searched for a frame
            // that validates with a later offset.
            let resume = file.and_then(|f| segment::valid_frame_after(&seg.map, f, align_up(pos + 1), offset));
            let resume = resume.filter(|&p| p < end);
            report.damage.push(Damage {
                file: seg.paths.data.clone(),
                position: pos as u64,
                offset,
                kind,
                end: resume.unwrap_or(end) as u64,
            });
            let Some(p) = resume else { return };
            let Ok((rec, _)) = seg.decode_at_any(p) else { return };
            st = ScanState { pos: p, next_offset: rec.offset(), last_ts: rec.timestamp_us(), since_entry: 0 };
        }
    }

    /// Past the committed end of the active segment: a torn tail (reported as such), or damage
    /// to records a later frame proves durable (reported as damage).
    fn verify_tail(&self, seg: &Segment, file: &File, report: &mut VerifyReport) -> Option<TornTail> {
        let interval = self.inner.opts.index_interval_bytes as usize;
        let mut tail = ScanState { pos: seg.end_pos(), next_offset: seg.next_offset(), last_ts: 0, since_entry: 0 };
        let stop = segment::scan_frames(&seg.map, seg.base_offset, &mut tail, interval, &mut Vec::new(), None);
        let (from, bad_pos, bad_offset, kind) = match stop {
            ScanStop::Invalid { pos, bad_pos, bad_offset, kind } => (pos, bad_pos, bad_offset, Some(kind)),
            ScanStop::End => (tail.pos, tail.pos, tail.next_offset, None),
        };
        let to = segment::nonzero_end(&seg.map, file, from).max(from);
        if to == from {
            return None;
        }
        if let Some(kind) = kind.clone() {
            let proven =
                segment::durable_mark_after(&seg.map, file, bad_pos + 8, bad_offset).is_some_and(|d| d > bad_offset);
            if proven {
                report.damage.push(Damage {
                    file: seg.paths.data.clone(),
                    position: bad_pos as u64,
                    offset: bad_offset,
                    kind,
                    end: to as u64,
                });
                return None;
            }
        }
        let last_valid = segment::last_valid_offset_in(&seg.map, file, from, to, bad_offset);
        let dropped = if kind.is_some() {
            bad_offset..last_valid.map_or(bad_offset + 1, |o| o + 1)
        } else {
            bad_offset..bad_offset
        };
        Some(TornTail { file: seg.paths.data.clone(), position: from as u64, bytes: (to - from) as u64, dropped })
    }
}

/// True if every entry of a sealed segment's index leads to the record it names, with its
/// timestamp. A segment indexed in memory (its index files were missing or damaged when it
/// was opened) fails.
fn verify_index(seg: &Segment) -> bool {
    if !seg.is_sealed() {
        return false;
    }
    seg.index.with_entries(|n, entry| {
        (0..n).all(|i| {
            let e = entry(i);
            seg.decode_at(e.pos as usize, seg.base_offset + e.rel as u64).is_ok_and(|(r, _)| r.timestamp_us() == e.ts)
        })
    })
}

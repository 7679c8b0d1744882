//! `verify`: a full checksum scan of every segment, reporting damage without repairing it.

use std::fs::File;
use std::path::PathBuf;

use crate::error::CorruptionKind;
use crate::log::Log;
use crate::segment::{self, ScanState, ScanStop};

/// One damaged place found by [`Log::verify`].
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
    /// Damaged places, in log order. Empty means the log is intact.
    pub damage: Vec<Damage>,
}

impl Log {
    /// Validate every record of every segment (checksums, offsets, batch framing), calling
    /// `progress` with the bytes scanned so far. Damage is reported, not repaired.
    pub fn verify(&self, mut progress: impl FnMut(u64)) -> VerifyReport {
        let segs = self.inner.segments.read().clone();
        let mut report = VerifyReport::default();
        let interval = self.inner.opts.index_interval_bytes as usize;
        for (i, seg) in segs.iter().enumerate() {
            report.segments += 1;
            let mut st = ScanState::at_start(seg.base_offset);
            let mut entries = Vec::new();
            let end = seg.end_pos();
            let want = seg.next_offset();
            let stop = segment::scan_frames(&seg.map, seg.base_offset, &mut st, interval, &mut entries, Some(end));
            report.records +=
                if seg.is_sparse() { seg.count_records_before(st.pos) } else { st.next_offset - seg.base_offset };
            report.bytes += st.pos as u64;
            progress(report.bytes);
            if st.next_offset < want {
                let (pos, offset, kind) = match stop {
                    ScanStop::Invalid { bad_pos, bad_offset, kind, .. } => (bad_pos, bad_offset, kind),
                    ScanStop::End => (st.pos, st.next_offset, CorruptionKind::MissingData),
                };
                report.damage.push(Damage { file: seg.paths.data.clone(), position: pos as u64, offset, kind });
                continue;
            }
            if i + 1 == segs.len() {
                // Past the committed end: a torn tail is normal, valid records after invalid
                // bytes are not.
                let mut tail = st;
                if let ScanStop::Invalid { kind, bad_pos, bad_offset, .. } =
                    segment::scan_frames(&seg.map, seg.base_offset, &mut tail, interval, &mut entries, None)
                {
                    let after = File::open(&seg.paths.data)
                        .ok()
                        .and_then(|f| segment::valid_frame_after(&seg.map, &f, bad_pos + 8, bad_offset));
                    if after.is_some() {
                        report.damage.push(Damage {
                            file: seg.paths.data.clone(),
                            position: bad_pos as u64,
                            offset: bad_offset,
                            kind,
                        });
                    }
                }
            }
        }
        report
    }
}

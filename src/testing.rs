//! Test support, hidden from the documentation and not part of the stable API:
//!
//! * a hook on the storage seam (every write, fsync, msync, fallocate and rename the engine
//!   makes), installed for one directory, that can make a chosen call fail or watch what
//!   reached stable storage (see `docs/architecture.md`);
//! * entry points for tests that need files no public API writes yet: a sealed segment with
//!   gaps in its offsets, as key compaction will leave it;
//! * the wake file's recheck interval, and a count of the sleeps on it that ran out (a lost
//!   wake-up shows up as a sleep that ran to its deadline).

use std::fs;
use std::path::Path;

use crate::error::{CorruptionKind, Error, IoContext, Result};
use crate::format::SEGMENT_HEADER_LEN;
use crate::io::mmap::SegmentMap;
use crate::io::DirLock;
use crate::segment::builder::SegmentBuilder;
use crate::segment::{self, ScanState, ScanStop, Segment};

pub use crate::io::storage::{install, FaultInjector, Installed, IoCall, IoOp};

/// Rewrite sealed segment `base` of the log in `dir` (which no writer may have open) with
/// the segment builder, keeping only the records for which `keep(offset)` is true: every
/// record kept keeps its offset, timestamp and content, and the segment keeps its base and
/// the offsets it spans. Index entries are placed every `index_interval_bytes`. Returns true
/// if the rewritten segment is sparse (some offset it spans has no record).
///
/// Refuses the last segment (the active one, which compaction never touches) and a segment
/// that does not validate whole.
pub fn rewrite_segment(
    dir: &Path,
    base: u64,
    index_interval_bytes: u32,
    mut keep: impl FnMut(u64) -> bool,
) -> Result<bool> {
    let _lock = DirLock::acquire(dir)?;
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        if let Some(b) = entry.at(dir)?.file_name().to_str().and_then(segment::parse_segment_name) {
            bases.push(b);
        }
    }
    bases.sort_unstable();
    let next = match bases.iter().position(|&b| b == base) {
        Some(i) if i + 1 < bases.len() => bases[i + 1],
        Some(_) => return Err(Error::InvalidOptions(format!("segment {base} is the active segment"))),
        None => return Err(Error::NotFound { path: segment::SegmentPaths::new(dir, base).data }),
    };
    let (id, file, len, _) = segment::open_data_file(dir, base, false)?;
    let map_len = usize::try_from(len).unwrap_or(usize::MAX);
    let map = SegmentMap::map_ro(&file, map_len, 0).at(&id.paths.data)?;
    let mut st = ScanState::at_start(base);
    let interval = index_interval_bytes as usize;
    let stop = segment::scan_frames(&map, base, &mut st, interval, &mut Vec::new(), None);
    if st.next_offset != next {
        let (pos, kind) = match stop {
            ScanStop::Invalid { bad_pos, kind, .. } => (bad_pos, kind),
            ScanStop::End => (st.pos, CorruptionKind::MissingData),
        };
        return Err(Error::corrupt(&id.paths.data, pos as u64, kind));
    }
    let created_us = id.created_us;
    let seg = Segment::in_memory(id, map, Vec::new(), st);
    let mut builder = SegmentBuilder::new(dir, base, created_us, index_interval_bytes)?;
    for r in seg.records_from(SEGMENT_HEADER_LEN, base) {
        let (rec, _) = r?;
        if keep(rec.offset()) {
            builder.push(&rec)?;
        }
    }
    let built = builder.finish(next)?;
    let sparse = built.is_sparse();
    built.install()?;
    Ok(sparse)
}

/// Set how long a reader in this process sleeps on a log's wake file at most before it looks
/// at the log again (10 ms by default). A test sets it very long so that a lost wake-up
/// cannot be covered up by the recheck.
pub fn set_wake_recheck(d: std::time::Duration) {
    crate::io::wake::set_recheck(d);
}

/// How many sleeps on a wake file in this process ended at their timeout (the caller's
/// deadline or the recheck interval) instead of being woken.
pub fn wake_sleeps_timed_out() -> u64 {
    crate::io::wake::timed_out_sleeps()
}

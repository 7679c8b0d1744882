//! The first stage of opening for writing after a poisoned writer: cut the log back to the
//! last point a flush made durable, and make the disk agree, before anything else looks at it.
//!
//! Why: a failed flush may leave the unflushed bytes in the page cache, marked clean although
//! they never reached the device. Recovery validates what it reads, which is the page cache,
//! so in the same boot it would adopt records that are not on the disk; appends acknowledged
//! after them would then sit behind garbage once the cache is dropped. None of the records
//! past the durable point was acknowledged as durable, so they are dropped: segments created
//! after it are removed, and the bytes past it in its segment are overwritten with zeros and
//! flushed (which reaches the device through the same page cache, so the disk and the cache
//! agree again). The checkpoint is then rewritten to the durable point, and the limit cleared.
//! Each step can be repeated, so a crash in the middle leaves the limit in place for the next
//! open to finish the job.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{IoContext, Result};
use crate::io::{fs as fsutil, poison, storage};
use crate::log::recovery::CHECKPOINT_FILE;
use crate::segment::{self, SegmentPaths};

/// Bytes read and compared at a time while looking for unflushed bytes to zero.
const CHUNK_BYTES: usize = 1 << 20;

/// If a poisoned writer left a durable limit for `dir`, cut the log back to it. `bases` (the
/// segments found, ascending) loses the segments removed.
pub(super) fn to_durable_limit(dir: &Path, bases: &mut Vec<u64>) -> Result<()> {
    let Some(limit) = poison::durable_limit(dir) else { return Ok(()) };
    if !bases.contains(&limit.segment_base) {
        // Retention removed the limit's segment after the limit was taken. No checkpoint
        // vouches for what follows it; recovery validates that as after a crash.
        return poison::clear(dir);
    }
    // Newest first, so that a crash midway leaves a log without a gap.
    while bases.last().is_some_and(|&b| b > limit.segment_base) {
        if let Some(b) = bases.pop() {
            segment::remove_segment_files(&SegmentPaths::new(dir, b))?;
        }
    }
    let paths = SegmentPaths::new(dir, limit.segment_base);
    zero_from(&paths.data, limit.position)?;
    // The segment's index files may describe records past the limit (a sealed index even
    // says where the segment ends): they are derived data, rebuilt by recovery.
    storage::remove(&paths.offset_index)?;
    storage::remove(&paths.time_index)?;
    fsutil::fsync_dir(dir)?;
    fsutil::atomic_write(&dir.join(CHECKPOINT_FILE), &limit.encode())?;
    poison::clear(dir)
}

/// Overwrite every non-zero byte of `path` from `from` to its end with zeros, and flush.
fn zero_from(path: &Path, from: u64) -> Result<()> {
    let file = OpenOptions::new().read(true).write(true).open(path).at(path)?;
    let len = file.metadata().at(path)?.len();
    let zeros = vec![0u8; CHUNK_BYTES];
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut at = from;
    while at < len {
        let n = (len - at).min(CHUNK_BYTES as u64) as usize;
        file.read_exact_at(&mut buf[..n], at).at(path)?;
        if buf[..n].iter().any(|&b| b != 0) {
            storage::write_all_at(&file, path, &zeros[..n], at)?;
        }
        at += n as u64;
    }
    storage::sync_data(&file, path)
}

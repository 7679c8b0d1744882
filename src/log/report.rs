//! What opening found and did, and facts about segments: the reports inspection tools show.

use std::path::PathBuf;

use crate::error::Location;

/// What opening found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenReport {
    /// The previous writer closed the log cleanly.
    pub clean_shutdown: bool,
    /// Bytes of records validated during recovery (0 after a clean shutdown).
    pub scanned_bytes: u64,
    /// Bytes of a torn tail that were zeroed.
    pub torn_bytes_zeroed: u64,
    /// Segments whose index files were missing or damaged and were rebuilt.
    pub indexes_rebuilt: u32,
    /// Damage that was not a torn tail, when the log opened anyway
    /// (`RecoveryMode::ReadOnlyUpToDamage` or `RecoveryMode::Salvage`): file and byte position.
    pub damage: Option<(PathBuf, u64)>,
    /// With `RecoveryMode::Salvage`: the file beside the log holding the bytes that were cut
    /// away from the damaged segment (from the damaged batch to the last non-zero byte).
    pub salvaged: Option<PathBuf>,
    /// Records the checkpoint vouches for that no file holds (segments missing), when the log
    /// opened anyway: the log and the first offset missing.
    pub missing: Option<Location>,
    /// The checkpoint file was present but unreadable (not a valid checkpoint): the whole
    /// active segment was validated instead.
    pub checkpoint_unreadable: bool,
}

/// Facts about one segment, for inspection tools.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// The first offset the segment spans: its first record's, unless compaction removed
    /// that record (a compacted segment keeps its base).
    pub base_offset: u64,
    /// One past the last offset the segment spans (the next segment's base).
    pub next_offset: u64,
    /// Records in the segment: `next_offset - base_offset`, less any that compaction removed.
    pub records: u64,
    /// Bytes used (segment header and records).
    pub bytes: u64,
    /// Bytes reserved on disk.
    pub capacity: u64,
    /// Timestamp of the first record (0 if empty).
    pub min_timestamp_us: u64,
    /// Timestamp of the last record (0 if empty).
    pub max_timestamp_us: u64,
    /// Sealed (immutable) or the active segment.
    pub sealed: bool,
    /// Path of the data file.
    pub path: PathBuf,
}

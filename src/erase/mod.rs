//! Erasure of a subject: every record of a key removed from the log's files, as if it had
//! never been written, and a marker appended that says a key was erased (see
//! `docs/erasure.md` for what is guaranteed and what is not).
//!
//! | file         | job                                                                |
//! |--------------|--------------------------------------------------------------------|
//! | `records`    | removing records from every segment of a log, the active one included |
//! | `snapshots`  | dropping the snapshots that may hold what was erased               |
//! | `topic`      | a store topic: its log, its groups' dead letters                   |
//!
//! The marker is a tombstone whose key is `tidelog.erased:` followed by 32 hex digits of the
//! erased key's FNV-1a 128 digest ([`erasure_marker_key`]): it does not hold the key, but a
//! key that can be guessed (an e-mail address) can be confirmed by computing its digest.

mod dead_letters;
mod records;
mod snapshots;
mod topic;

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::log::Log;
use crate::record::Record;

pub(crate) use records::erase_where;

/// Prefix of the key of an erasure marker.
pub const ERASURE_MARKER_PREFIX: &str = "tidelog.erased:";

/// The key of the tombstone that [`Log::erase`] appends for `key`.
pub fn erasure_marker_key(key: &[u8]) -> Vec<u8> {
    format!("{ERASURE_MARKER_PREFIX}{:032x}", crate::compaction::key_digest(key)).into_bytes()
}

/// How to erase.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EraseOptions {
    /// Snapshot directories of projections folded from this log: every snapshot covering an
    /// offset at which the key had a record is removed (it may hold what was erased).
    pub snapshot_dirs: Vec<PathBuf>,
    /// Append the erasure marker. Default true.
    pub marker: bool,
}

impl Default for EraseOptions {
    fn default() -> EraseOptions {
        EraseOptions { snapshot_dirs: Vec::new(), marker: true }
    }
}

impl EraseOptions {
    /// Add a snapshot directory (see [`EraseOptions::snapshot_dirs`]).
    #[must_use]
    pub fn snapshot_dir(mut self, dir: impl Into<PathBuf>) -> EraseOptions {
        self.snapshot_dirs.push(dir.into());
        self
    }
    /// Set [`EraseOptions::marker`].
    #[must_use]
    pub fn marker(mut self, yes: bool) -> EraseOptions {
        self.marker = yes;
        self
    }
}

/// What an erasure did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EraseReport {
    /// Records of the key removed from the log.
    pub records_erased: u64,
    /// Segments rewritten (the active one is rolled first when it holds the key).
    pub segments_rewritten: usize,
    /// The lowest offset at which the key had a record, if it had any.
    pub first_erased_offset: Option<u64>,
    /// Snapshot files removed.
    pub snapshots_removed: Vec<PathBuf>,
    /// Dead letters removed (erasure through a store topic).
    pub dead_letters_erased: u64,
    /// Offset of the erasure marker, if one was appended.
    pub marker_offset: Option<u64>,
}

impl Log {
    /// Erase every record of `key` appended before the call from the log's files (see
    /// `docs/erasure.md`), then append the erasure marker. Appends may continue meanwhile.
    pub fn erase(&self, key: &[u8]) -> Result<EraseReport> {
        self.erase_with(key, &EraseOptions::default())
    }

    /// [`Log::erase`] with options: snapshot directories to clean, the marker or not.
    pub fn erase_with(&self, key: &[u8], opts: &EraseOptions) -> Result<EraseReport> {
        if self.is_read_only() {
            return Err(Error::ReadOnly);
        }
        // The snapshot directories are locked before anything changes: a projection or view
        // that has one open holds the key in memory and would write it into its next
        // snapshot, so the erasure is refused (`Error::Locked`) until it is closed.
        let held = snapshots::lock_all(&opts.snapshot_dirs)?;
        let (records_erased, segments_rewritten, first) = erase_where(self, |r| r.key() == Some(key))?;
        self.forget_stream(key)?;
        let mut report =
            EraseReport { records_erased, segments_rewritten, first_erased_offset: first, ..EraseReport::default() };
        if let Some(first) = first {
            report.snapshots_removed = snapshots::remove_covering(&held, first)?;
        }
        if opts.marker {
            let marker = erasure_marker_key(key);
            report.marker_offset = Some(self.append(Record::new(b"").key(&marker).tombstone())?);
            self.sync()?;
        }
        Ok(report)
    }
}

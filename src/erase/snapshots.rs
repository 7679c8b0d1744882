//! Dropping snapshots that may hold what an erasure removed. Conservative: a snapshot whose
//! position is past the lowest erased offset folded at least one erased record, whatever its
//! projection kept of it, and is removed.

use std::path::PathBuf;

use crate::error::Result;
use crate::io::{fs as fsutil, storage};
use crate::projection::SnapshotDir;

/// Take the writer lock of each snapshot directory of `dirs` that exists
/// ([`crate::Error::Locked`] if a projection or view has it open).
pub(crate) fn lock_all(dirs: &[PathBuf]) -> Result<Vec<SnapshotDir>> {
    dirs.iter().filter(|d| d.is_dir()).map(SnapshotDir::open).collect()
}

/// Remove the snapshots in `dirs` whose position is past `first_erased` (they covered the
/// record at that offset). Returns the files removed.
pub(crate) fn remove_covering(dirs: &[SnapshotDir], first_erased: u64) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for dir in dirs {
        removed.extend(remove_in(dir, first_erased)?);
    }
    Ok(removed)
}

fn remove_in(snapshots: &SnapshotDir, first_erased: u64) -> Result<Vec<PathBuf>> {
    let dir = snapshots.path();
    let mut removed = Vec::new();
    for (position, path) in snapshots.files()? {
        if position > first_erased {
            storage::remove(&path)?;
            removed.push(path);
        }
    }
    if !removed.is_empty() {
        fsutil::fsync_dir(dir)?;
    }
    Ok(removed)
}

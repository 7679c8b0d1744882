//! Dropping snapshots that may hold what an erasure removed. Conservative: a snapshot whose
//! position is past the lowest erased offset folded at least one erased record, whatever its
//! projection kept of it, and is removed.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::io::{fs as fsutil, storage};
use crate::projection::SnapshotDir;

/// Remove the snapshots in `dirs` whose position is past `first_erased` (they covered the
/// record at that offset). Returns the files removed.
pub(crate) fn remove_covering(dirs: &[PathBuf], first_erased: u64) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for dir in dirs {
        removed.extend(remove_in(dir, first_erased)?);
    }
    Ok(removed)
}

fn remove_in(dir: &Path, first_erased: u64) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for (position, path) in SnapshotDir::open_read_only(dir).files()? {
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

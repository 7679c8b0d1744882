//! File-system helpers built on the storage seam: directory fsync, atomic replacement.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::io::storage;

/// Fsync a directory so that entries created, renamed or removed in it are durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    storage::fsync_dir(dir)
}

/// Replace `path` with `bytes` atomically: write `path.tmp`, fsync it, rename it over `path`,
/// fsync the directory. A crash leaves either the old or the new contents.
pub(crate) fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    {
        let mut f = storage::create(&tmp, OpenOptions::new().write(true).create(true).truncate(true))?;
        storage::write_all(&mut f, &tmp, bytes)?;
        storage::sync_all(&f, &tmp)?;
    }
    storage::rename(&tmp, path)?;
    // IMPORTANT: the rename is durable only once the directory is fsynced.
    fsync_dir(path.parent().unwrap_or(Path::new(".")))
}

pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

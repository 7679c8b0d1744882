//! File-system helpers: block reservation, directory fsync, atomic replacement.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};

/// Fsync a directory so that entries created, renamed or removed in it are durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Reserve `len` bytes of blocks for `file`, so that a full disk is an error now rather than
/// a SIGBUS on a later write into the map. Falls back to `set_len` (sparse) only on file
/// systems that do not support reservation, where that is the best available.
pub(crate) fn preallocate(file: &File, len: u64) -> io::Result<()> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => file.set_len(len),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// Replace `path` with `bytes` atomically: write `path.tmp`, fsync it, rename it over `path`,
/// fsync the directory. A crash leaves either the old or the new contents.
pub(crate) fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).at(&tmp)?;
        f.write_all(bytes).at(&tmp)?;
        f.sync_all().at(&tmp)?;
    }
    fs::rename(&tmp, path).at(path)?;
    // IMPORTANT: the rename is durable only once the directory is fsynced.
    fsync_dir(path.parent().unwrap_or(Path::new(".")))
}

pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

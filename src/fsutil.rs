//! File-system helpers: block reservation, directory fsync, atomic replacement, the
//! writer lock.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

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

/// An exclusive advisory lock on `DIR/LOCK`, held for the life of a writer. `flock` locks
/// belong to the open file description, so a second writer in the same process is refused
/// just like one in another process.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// How long a lock held by someone else is retried before reporting `Error::Locked`.
    ///
    /// A lock can be held for a moment by a process that is not a writer at all: when any
    /// thread of this process spawns a child, the child holds copies of every descriptor
    /// (and so the open file description that carries the lock) from `fork` until its `exec`
    /// closes them. A log closed and reopened in that window would see its own lock. A real
    /// second writer holds the lock for as long as it runs, so a short retry tells the two
    /// apart at the cost of a late answer when the log really is locked.
    const RETRY_FOR: std::time::Duration = std::time::Duration::from_millis(200);

    pub fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join("LOCK");
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).at(&path)?;
        let deadline = std::time::Instant::now() + Self::RETRY_FOR;
        let mut nap = std::time::Duration::from_micros(200);
        loop {
            match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(DirLock { _file: file }),
                Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                    if std::time::Instant::now() >= deadline {
                        return Err(Error::Locked { path: dir.to_path_buf() });
                    }
                    std::thread::sleep(nap);
                    nap = (nap * 2).min(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(Error::io(&path, io::Error::from(e))),
            }
        }
    }
}

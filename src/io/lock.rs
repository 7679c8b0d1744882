//! The writer lock: one writer per log directory, across threads and processes.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use crate::error::{Error, IoContext, Result};

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

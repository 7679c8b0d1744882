//! Poisoning: after a flush to stable storage fails, what reached the disk is unknown (the
//! kernel may have dropped the dirty pages, or may still hold them in the page cache, clean,
//! although they never reached the device). The log then refuses every write until it is
//! reopened, and the reopen must not trust anything past the last flush that succeeded.
//!
//! [`Poison`] is the one place that state lives: whether the log is poisoned, what failed
//! first, and the last point a flush made durable. When it is set, that point is remembered
//! for the log's directory twice: in a process-wide registry (for a reopen in this process,
//! which sees the page cache that still holds the unflushed bytes) and, best effort, in the
//! marker file `DIR/poisoned` (for a reopen by another process in the same boot). Recovery
//! asks [`durable_limit`] before it looks at the segments, cuts the log back to that point,
//! and calls [`clear`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::format::checkpoint::POISON_MAGIC;
use crate::format::Checkpoint;
use crate::io::{fs as fsutil, storage};

/// Name of the marker file in the log directory (layout: `docs/format.md`).
pub(crate) const POISON_FILE: &str = "poisoned";

/// The last durable point of a poisoned log: every record before `next_offset` was flushed,
/// and the flushed bytes of segment `segment_base` end at `position`. Same fields as a
/// checkpoint (`clean` is always false).
pub(crate) type PoisonLimit = Checkpoint;

/// Durable limits of poisoned logs of this process, by canonical directory.
static LIMITS: Mutex<Vec<(PathBuf, PoisonLimit)>> = Mutex::new(Vec::new());

fn canonical(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// Is a log poisoned, by what, and how far was it durable.
#[derive(Debug)]
pub(crate) struct Poison {
    dir: PathBuf,
    poisoned: AtomicBool,
    /// What failed first (the error, which names the file).
    cause: Mutex<Option<String>>,
    /// The last point a flush or checkpoint made durable. `None` until the first one after
    /// open (an open that finds the log exactly as a clean close left it writes nothing,
    /// and the first append writes a checkpoint before any record).
    durable: Mutex<Option<PoisonLimit>>,
}

impl Poison {
    /// The poison state of the log in `dir`: not poisoned.
    pub fn new(dir: &Path) -> Poison {
        Poison {
            dir: dir.to_path_buf(),
            poisoned: AtomicBool::new(false),
            cause: Mutex::new(None),
            durable: Mutex::new(None),
        }
    }

    /// `Err(Poisoned)` once poisoned. Check it after taking the writer lock, so that a flush
    /// that failed while the caller waited is seen.
    #[inline]
    pub fn check(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        Ok(())
    }

    /// What failed first, if poisoned.
    pub fn cause(&self) -> Option<String> {
        self.cause.lock().clone()
    }

    /// Record that a flush made everything up to `point` durable. Never moves backwards.
    pub fn durable_at(&self, point: PoisonLimit) {
        let mut d = self.durable.lock();
        let key = |c: &PoisonLimit| (c.segment_base, c.position);
        if d.as_ref().is_none_or(|old| key(&point) >= key(old)) {
            *d = Some(PoisonLimit { clean: false, ..point });
        }
    }

    /// Poison the log because `what` failed with `error`, and return the error. The first
    /// failure is the one recorded; it also records the durable limit for the next open.
    pub fn set(&self, what: &str, error: Error) -> Error {
        let mut cause = self.cause.lock();
        if cause.is_none() {
            *cause = Some(format!("{what}: {error}"));
            if let Some(limit) = *self.durable.lock() {
                remember(&self.dir, limit);
            }
            self.poisoned.store(true, Ordering::Release);
        }
        error
    }
}

/// Remember `limit` for the next open of `dir`: in this process for certain, in the marker
/// file if the disk lets us (a failing disk may not).
fn remember(dir: &Path, limit: PoisonLimit) {
    let key = canonical(dir);
    {
        let mut limits = LIMITS.lock();
        limits.retain(|(d, _)| *d != key);
        limits.push((key, limit));
    }
    let _ = fsutil::atomic_write(&dir.join(POISON_FILE), &limit.encode_as(POISON_MAGIC));
}

/// The durable limit a poisoned writer of `dir` left, if any: from this process's registry,
/// else from the marker file. Nothing past it may be trusted.
pub(crate) fn durable_limit(dir: &Path) -> Option<PoisonLimit> {
    let key = canonical(dir);
    if let Some((_, l)) = LIMITS.lock().iter().find(|(d, _)| *d == key) {
        return Some(*l);
    }
    let bytes = std::fs::read(dir.join(POISON_FILE)).ok()?;
    Checkpoint::decode_as(&bytes, POISON_MAGIC)
}

/// Forget the durable limit of `dir`, once the log has been cut back to it durably.
pub(crate) fn clear(dir: &Path) -> Result<()> {
    let key = canonical(dir);
    LIMITS.lock().retain(|(d, _)| *d != key);
    let marker = dir.join(POISON_FILE);
    if marker.exists() {
        storage::remove(&marker)?;
        fsutil::fsync_dir(dir)?;
    }
    Ok(())
}

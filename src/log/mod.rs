//! The log: one directory of segments with a single writer and any number of readers.
//!
//! | file        | job                                                                  |
//! |-------------|----------------------------------------------------------------------|
//! | `mod.rs`    | the `Log` handle and the state it shares (`Inner`)                   |
//! | `recovery`  | opening: discovery, validation, the recovery decision                |
//! | `rewind`    | opening after a poisoned writer: back to its last durable point      |
//! | `writer`    | append, roll, seal, retention                                        |
//! | `stream`    | streams: reads by key, append with expected version and event ids    |
//! | `sync`      | group commit, flush, checkpoint, background flusher, close           |
//! | `read`      | reads by offset and time, segment facts                              |
//! | `cursor`    | forward cursors and iterators                                        |
//! | `follower`  | read-only handles following a writer; waiting for records           |
//! | `verify`    | the full checksum scan                                               |
//! | `report`    | what open found; segment facts                                       |
//! | `compact_swap` | compaction's and erasure's access: roll, swap a rewritten segment in |
//! | `append`    | appends with a durability per call, and from any iterator            |
//! | `scan`      | a cursor from the start; for-each and fold over records, no copies   |
//!
//! Data flow (see `docs/architecture.md`): an appender takes the writer mutex, frames its
//! records straight into the active segment's map, publishes the new end (segment map end,
//! then segment offset end, then the log's next offset, each a `Release` store) and releases
//! the mutex. Readers load the log's next offset with `Acquire` and never read past it.
//! In `Always` mode the appender then waits for the durable offset to pass its records; the
//! first waiter that finds no flush in progress flushes for everyone (group commit).

mod append;
mod backup;
mod compact_swap;
mod cursor;
mod follower;
mod read;
mod recovery;
mod report;
mod rewind;
mod scan;
mod stream;
mod sync;
mod verify;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, RwLock};

use crate::format::removed_streams::RemovedStreams;
use crate::io::poison::Poison;
use crate::io::wake::WakeSlot;
use crate::io::DirLock;
use crate::options::Options;
use crate::segment::Segment;

pub use backup::BackupReport;
pub(crate) use backup::{check_destination, install, partial_name};
pub use cursor::{Cursor, Iter};
pub use report::{OpenReport, SegmentInfo};
pub use verify::{Damage, TornTail, VerifyReport};

use follower::Follower;
use sync::{CkptState, SyncState};
use writer::Writer;

/// A handle to an open log. Cheap to clone (an `Arc`), `Send + Sync`.
///
/// See the crate documentation for an example. The zero-copy paths: [`Log::append_batch`]
/// takes owned buffers, strings, `(key, payload)` pairs or records read from a log as they are
/// ([`AsRecord`](crate::AsRecord)); [`Log::cursor_from_start`] with [`Cursor::for_each`] or
/// [`Cursor::try_fold`] reads each record borrowed from the map ([`Log::iter`] copies each
/// one). [`Log::append_with`] chooses the durability of one append.
///
/// # Closing
///
/// [`Log::close`] flushes what was appended, writes the clean-shutdown checkpoint (the next
/// open scans nothing) and returns any error. Dropping the last handle to the log (every
/// clone, and every [`Cursor`] and [`Iter`], holds one) without `close` does the same, best
/// effort: a drop cannot return an error. If that final flush fails, nobody sees the error:
/// the log is poisoned as by any failed flush, and the next open cuts it back to the last
/// flush that succeeded, so the records appended since (in `Durability::None` or `Interval`
/// mode, those after the last `sync`, interval tick or durable append; in `Always` mode, none
/// that were acknowledged) are gone even without a power loss. A handle that is never dropped
/// (a process that exits without unwinding, a leaked handle) closes nothing: the next open
/// recovers as after a crash. See `docs/durability.md`.
#[derive(Clone)]
pub struct Log {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.inner.dir)
            .field("first_offset", &self.first_offset())
            .field("next_offset", &self.next_offset())
            .field("read_only", &self.inner.read_only)
            .finish()
    }
}

struct Inner {
    dir: PathBuf,
    opts: Options,
    read_only: bool,
    segments: RwLock<Arc<Vec<Arc<Segment>>>>,
    next_offset: AtomicU64,
    /// Every record before this offset is on stable storage: a mirror of the sync state's
    /// durable offset that appenders read without taking the sync lock (for durable marks).
    durable: AtomicU64,
    writer: Mutex<Option<Writer>>,
    sync: Mutex<SyncState>,
    sync_cv: Condvar,
    /// Set by a failed flush; checked after taking the writer lock.
    poison: Poison,
    closed: AtomicBool,
    tail_lock: Mutex<()>,
    tail_cv: Condvar,
    tail_waiters: AtomicUsize,
    /// The wake file, through which the writer wakes readers in other processes.
    wake: WakeSlot,
    ckpt: Mutex<CkptState>,
    flusher_stop: Arc<(Mutex<bool>, Condvar)>,
    follower: Mutex<Follower>,
    /// Stream versions known to the writer (taken under the writer lock; see `stream`).
    versions: Mutex<stream::VersionCache>,
    /// Events of each stream that retention removed (`removed-streams`); replaced whole,
    /// before the segment list, by retention and by a follower that saw segments go.
    removed: RwLock<Arc<RemovedStreams>>,
    report: OpenReport,
    lock: Mutex<Option<DirLock>>,
    /// Compaction and erasure: one at a time; a follower's view of rewritten segments.
    compaction: compact_swap::CompactionState,
}

impl Log {
    /// What opening found and did.
    pub fn open_report(&self) -> &OpenReport {
        &self.inner.report
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The options the log was opened with.
    pub fn options(&self) -> &Options {
        &self.inner.opts
    }

    /// True if this handle cannot append (opened read-only, or recovery found damage).
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }
}

impl Inner {
    /// Swap in a changed copy of the segment list. Readers holding the old list keep it.
    fn edit_segments(&self, edit: impl FnOnce(&mut Vec<Arc<Segment>>)) {
        let mut list = self.segments.write();
        let mut v: Vec<Arc<Segment>> = list.as_ref().clone();
        edit(&mut v);
        *list = Arc::new(v);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Best effort: an explicit `close` reports errors; a drop cannot.
        let _ = self.close();
    }
}

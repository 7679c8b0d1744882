//! How a consumer group's state reaches the disk: an internal state log (a tidelog [`Log`]
//! of [`StateEvent`] records) and snapshots that let old state-log segments go. The group's
//! state is a projection of its state log (`src/projection/`): its snapshots are that
//! layer's files. The byte-level format is specified in `docs/format.md` ("Store and
//! consumer-group files").
//!
//! Recovery = load the newest snapshot (if any), then replay the state log from the offset
//! the snapshot covers. The state log gives checksums, torn-tail repair and group commit; a
//! snapshot is written atomically (tmp, fsync, rename, fsync the directory).
//!
//! [`events`] holds the state log's records and their replay, [`projection`] the state as
//! a projection and its snapshot payload, [`snapshots`] loading and saving snapshots,
//! [`legacy_snapshot`] the snapshot file of earlier releases (read, then migrated); this
//! module opens and replays the state log, and knows where a group's files are.

mod events;
mod legacy_snapshot;
mod projection;
mod snapshots;

use std::path::{Path, PathBuf};

use crate::consumer::state::GroupState;
use crate::error::{CorruptionKind, Error, IoContext, Result};
use crate::io::fs as fsutil;
use crate::store::{StoreOptions, Topic};
use crate::Log;
use crate::{Durability, Options};

pub(crate) use events::{apply, StateEvent};
pub(crate) use snapshots::{load, prepare, save, Source};

/// The snapshot file of earlier releases, inside the group directory.
pub(crate) const LEGACY_SNAPSHOT_FILE: &str = "snapshot";
/// State-log directory inside the group directory.
pub(crate) const STATE_DIR: &str = "state";
/// Dead-letter log directory inside the group directory.
pub(crate) const DEAD_LETTER_DIR: &str = "dead-letters";

/// Options of a group's state log in a store opened with `store`.
pub(crate) fn state_log_options(store: &StoreOptions, flush_every: Option<std::time::Duration>) -> Options {
    Options::default()
        .segment_bytes(store.state_segment_bytes)
        .index_interval_bytes(64 << 10)
        .durability(flush_every.map_or(Durability::None, Durability::Interval))
        .max_record_bytes(1 << 20)
}

/// Size of the first segment of a group's state log (or `state_segment_bytes` if smaller).
pub(crate) const FIRST_STATE_SEGMENT_BYTES: u64 = 16 << 10;

/// Open a group's state log for writing (its lock is the group's lock), creating it if
/// missing. Sized to need: a new state log starts with a small segment
/// ([`FIRST_STATE_SEGMENT_BYTES`]), so that an idle group reserves little disk; only once a
/// group fills it do its segments get `state_segment_bytes`, which keeps rolls rare for a
/// busy group. (A segment keeps the size it was created with; later segments get the size
/// the log is opened with.)
pub(crate) fn open_state_log(
    dir: &Path,
    store: &StoreOptions,
    flush_every: Option<std::time::Duration>,
) -> Result<Log> {
    let opts = state_log_options(store, flush_every);
    let first = FIRST_STATE_SEGMENT_BYTES.min(opts.segment_bytes);
    if first < opts.segment_bytes && !dir.is_dir() {
        // Another process may take the group between this close and the open below: then
        // the open below is `Locked`, as if it had taken the group first.
        Log::open(dir, opts.clone().segment_bytes(first))?.close()?;
    }
    Log::open(dir, opts)
}

/// Replay the state log from `from`; returns the number of events applied.
pub(crate) fn replay(state: &mut GroupState, log: &Log, from: u64) -> Result<u64> {
    let first = log.first_offset();
    if from < first || from > log.next_offset() {
        // The snapshot that let those segments go is missing or older than them, or the log
        // lost records the snapshot says it holds.
        return Err(Error::corrupt_record(log.dir(), from, CorruptionKind::MissingData));
    }
    let mut cursor = log.cursor(from);
    let mut n = 0u64;
    while let Some(rec) = cursor.next()? {
        let ev = StateEvent::decode(rec.payload()).map_err(|_| {
            Error::corrupt_record(log.dir(), rec.offset(), CorruptionKind::BadField("consumer state event"))
        })?;
        apply(state, &ev).map_err(|e| Error::corrupt_record(log.dir(), rec.offset(), e.kind()))?;
        n += 1;
    }
    Ok(n)
}

/// A group's persisted state as another process sees it (no lock taken): the snapshot plus
/// whatever the state log holds after it.
pub(crate) fn load_view(group_dir: &Path, state_opts: &Options) -> Result<GroupState> {
    let state_dir = group_dir.join(STATE_DIR);
    // The owner may replace the snapshot and drop old state-log segments while we read:
    // if the log no longer reaches back to our snapshot, read both again.
    let mut last_err = None;
    for _ in 0..8 {
        let log = match Log::open_read_only(&state_dir, state_opts.clone()) {
            Ok(l) => l,
            Err(Error::NotFound { .. }) => return Ok(GroupState::default()),
            Err(e) => return Err(e),
        };
        let loaded = match load(group_dir, &log) {
            Ok(l) => l,
            // The owner replaced the snapshot meanwhile (and removed the one listed).
            Err(e @ Error::Corruption { kind: CorruptionKind::MissingData, .. }) => {
                last_err = Some(e);
                continue;
            }
            Err(e @ Error::Io { .. }) if matches!(&e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound) =>
            {
                last_err = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut state = loaded.state;
        match replay(&mut state, &log, loaded.position) {
            Ok(_) => return Ok(state),
            Err(e @ Error::Corruption { kind: CorruptionKind::MissingData, .. }) => last_err = Some(e),
            Err(e @ Error::OffsetOutOfRange { .. }) => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| Error::corrupt_record(&state_dir, 0, CorruptionKind::MissingData)))
}

/// Paths of a group's files.
#[derive(Debug, Clone)]
pub(crate) struct GroupPaths {
    pub dir: PathBuf,
    pub state: PathBuf,
    pub dead_letters: PathBuf,
}

impl GroupPaths {
    pub(crate) fn new(topic: &Topic, group: &str) -> GroupPaths {
        GroupPaths::in_dir(topic.store().groups_dir(topic.name()).join(group))
    }

    /// The files of a group whose directory is `dir`.
    pub(crate) fn in_dir(dir: PathBuf) -> GroupPaths {
        GroupPaths { state: dir.join(STATE_DIR), dead_letters: dir.join(DEAD_LETTER_DIR), dir }
    }

    pub(crate) fn create(&self) -> Result<()> {
        if !self.dir.is_dir() {
            std::fs::create_dir_all(&self.dir).at(&self.dir)?;
            // IMPORTANT: make the new directories durable before state goes into them.
            if let Some(parent) = self.dir.parent() {
                fsutil::fsync_dir(parent)?;
                if let Some(root) = parent.parent() {
                    fsutil::fsync_dir(root)?;
                }
            }
        }
        Ok(())
    }
}

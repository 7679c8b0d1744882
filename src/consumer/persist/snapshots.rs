//! A group's snapshots: files of the projection layer (`src/projection/`) in the group's
//! `snapshots/` directory, each the whole state ([`GroupProjection`]) as of a state-log
//! offset. Loading picks the newest, or the snapshot file of earlier releases when there is
//! none yet; saving writes one, then lets go of what it supersedes: older snapshots, the
//! earlier releases' file, the state-log segments below it.
//!
//! A group's state cannot be rebuilt from a topic, only from its state log, so a snapshot
//! that cannot be used is damage to report, never a reason to start over (unlike a
//! projection's runner, which passes over such snapshots).

use std::path::Path;

use super::legacy_snapshot::read_legacy_snapshot;
use super::projection::GroupProjection;
use super::LEGACY_SNAPSHOT_FILE;
use crate::consumer::state::GroupState;
use crate::error::{CorruptionKind, Error, Result};
use crate::io::storage;
use crate::projection::{load_snapshot, SkipReason, SkippedSnapshot, SnapshotDir, SnapshotRetention};
use crate::Log;

/// Snapshot directory inside the group directory.
pub(crate) const SNAPSHOT_DIR: &str = "snapshots";

/// Where a loaded state came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// No snapshot: the initial state, before state-log offset 0.
    Nothing,
    /// The snapshot file of earlier releases (to migrate).
    Legacy,
    /// A snapshot in `snapshots/`.
    Snapshot,
}

/// A group's state as of its snapshot, before the state log after it is replayed.
pub(crate) struct Loaded {
    pub state: GroupState,
    /// State-log offset the state reflects every record below.
    pub position: u64,
    pub source: Source,
}

/// The newest snapshot of the group in `group_dir`, whose state log is `state_log` (a writer
/// or a read-only follower), or the earlier releases' snapshot file if `snapshots/` holds
/// none. Fails on any snapshot that cannot be used, located where it is wrong.
pub(crate) fn load(group_dir: &Path, state_log: &Log) -> Result<Loaded> {
    let dir = SnapshotDir::open_read_only(group_dir.join(SNAPSHOT_DIR));
    let Some((_, newest)) = dir.files()?.pop() else {
        // A snapshot here is written before the earlier releases' file is removed: with
        // none here, that file (if any) is the group's snapshot.
        return Ok(match read_legacy_snapshot(group_dir)? {
            Some((snap, covers)) => Loaded { state: snap.into_state(), position: covers, source: Source::Legacy },
            None => Loaded { state: GroupState::default(), position: 0, source: Source::Nothing },
        });
    };
    match load_snapshot(state_log, &GroupProjection, &dir, u64::MAX) {
        Ok(r) => match r.report.skipped.into_iter().next() {
            Some(skipped) => Err(skip_error(skipped, state_log)),
            None => Ok(Loaded { state: r.state, position: r.position, source: Source::Snapshot }),
        },
        Err(Error::RecordsRemoved { position, .. }) => {
            // The newest snapshot's own damage first, if it has any; else the state log
            // lost the records after the snapshot that can be used.
            SnapshotDir::read_info(&newest)?;
            Err(Error::corrupt_record(state_log.dir(), position, CorruptionKind::MissingData))
        }
        Err(e) => Err(e),
    }
}

/// Why a snapshot was not used, as the damage it is for a group.
fn skip_error(skipped: SkippedSnapshot, state_log: &Log) -> Error {
    let in_file = |position: usize, kind| Error::corrupt(&skipped.path, position as u64, kind);
    // Byte positions of the snapshot file's fields (docs/format.md, "Projection snapshot file").
    const NAME_AT: usize = 64;
    const FINGERPRINT_AT: usize = 24;
    match skipped.reason {
        SkipReason::Invalid(e) => e,
        SkipReason::NameMismatch { .. } => in_file(NAME_AT, CorruptionKind::BadField("projection name")),
        SkipReason::FingerprintMismatch { .. } => in_file(FINGERPRINT_AT, CorruptionKind::BadField("fingerprint")),
        SkipReason::Rejected(_) => {
            in_file(NAME_AT + GroupProjection::NAME.len(), CorruptionKind::BadField("snapshot payload"))
        }
        // The state log is durable up to a snapshot's position before the snapshot is
        // written: a log that ends before it lost records.
        SkipReason::AheadOfLog { log_next_offset } => {
            Error::corrupt_record(state_log.dir(), log_next_offset, CorruptionKind::MissingData)
        }
        SkipReason::LogMismatch { offset, .. } => Error::corrupt_record(
            state_log.dir(),
            offset,
            CorruptionKind::BadField("record timestamp differs from the snapshot's"),
        ),
    }
}

/// A snapshot of a group's state encoded under the group's lock, to be saved without it.
pub(crate) struct Prepared {
    position: u64,
    bytes: Vec<u8>,
}

/// Encode `state`, which reflects every record of `state_log` (each one state change applied).
pub(crate) fn prepare(state_log: &Log, state: &GroupState) -> Result<Prepared> {
    let position = state_log.next_offset();
    let bytes = SnapshotDir::prepare(state_log, &GroupProjection, state, position, position)?;
    Ok(Prepared { position, bytes })
}

/// Save a prepared snapshot of the group in `group_dir`, then remove what it supersedes:
/// the older snapshot, the earlier releases' file, the state-log segments below it. The
/// caller owns the group (holds its state log's lock); the snapshot directory's own lock is
/// taken only meanwhile, so that an idle group holds no descriptor for it.
pub(crate) fn save(group_dir: &Path, state_log: &Log, prepared: &Prepared) -> Result<()> {
    let dir = SnapshotDir::open(group_dir.join(SNAPSHOT_DIR))?;
    // Flushes the state log up to the position first, then writes atomically.
    dir.write_encoded(state_log, prepared.position, &prepared.bytes)?;
    dir.prune(prepared.position, &SnapshotRetention::default().keep_latest(1))?;
    drop(dir);
    // IMPORTANT: only now, with the new snapshot durable, may the old file go.
    let legacy = group_dir.join(LEGACY_SNAPSHOT_FILE);
    if legacy.exists() {
        storage::remove(&legacy)?;
        storage::fsync_dir(group_dir)?;
    }
    state_log.remove_segments_before(prepared.position)?;
    Ok(())
}

//! Projections: state folded from a log, with snapshots so that a restart replays only the
//! records after the newest usable snapshot.
//!
//! - [`Projection`] (this file): the definition of a fold (name, fingerprint, initial state,
//!   apply, snapshot, restore). The state is a separate type, so one definition can build
//!   several states (the live one, one as of an older offset).
//! - [`snapshot`]: the snapshot file's bytes (specified in `docs/format.md`).
//! - [`snapshot_dir`]: a directory of snapshot files: the lock, saving a state atomically,
//!   listing, retention.
//! - [`replay`]: restore (the newest usable snapshot) and fold, shared by the runner, by
//!   [`load_snapshot`] and by [`state_as_of`].
//! - [`runner`]: [`ProjectionRunner`], which follows a log and checkpoints.
//! - [`background`]: [`ProjectionHandle`], a runner on its own thread.

mod background;
mod replay;
mod runner;
mod snapshot;
mod snapshot_dir;

pub use background::{ProjectionHandle, Queried};
pub use replay::{load_snapshot, state_as_of, RestoreReport, Restored, SkipReason, SkippedSnapshot};
pub use runner::{ProjectionRunner, RunnerOptions};
pub use snapshot::{SnapshotInfo, SNAPSHOT_FORMAT_VERSION, SNAPSHOT_MAX_NAME_LEN};
pub use snapshot_dir::{SnapshotDir, SnapshotRetention};

use crate::record::RecordView;

/// The error a projection's own code returns; the runner wraps it in
/// [`Error::ProjectionFailed`](crate::Error::ProjectionFailed) with the offset.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The definition of state folded from a log's records.
///
/// The runner calls [`apply`](Projection::apply) once per record, in offset order, for every
/// record from the position the state covers. Offsets may have gaps (key compaction removes
/// records and keeps the others' offsets), so `apply` must not assume that offsets are dense.
///
/// `apply` must be deterministic: the same records applied to the same state give the same
/// state. Snapshots rely on it: a state restored from a snapshot and then fed the records
/// after it must equal the state fed every record.
///
/// **Fingerprint.** A snapshot records [`fingerprint`](Projection::fingerprint), and a
/// snapshot whose fingerprint differs from the current definition's is never used. Change
/// the fingerprint whenever `apply`, the state or its snapshot encoding changes meaning:
/// return a version number you bump, or derive one with [`fingerprint_of`] from a text that
/// describes the definition (for example a schema). Forgetting to change it is the classic
/// silent bug this guards against: a state built by old code, continued by new code.
pub trait Projection {
    /// The folded state.
    type State;

    /// The projection's name: 1 to [`SNAPSHOT_MAX_NAME_LEN`] bytes. Stored in each snapshot,
    /// and a snapshot carrying another name is not used.
    fn name(&self) -> &str;

    /// A fingerprint of the definition (see the trait documentation).
    fn fingerprint(&self) -> u64;

    /// The state before any record is applied.
    fn initial(&self) -> Self::State;

    /// Fold one record into `state`. On an error the runner stops and never uses (or
    /// snapshots) this state again, since it may hold part of the record.
    fn apply(&self, state: &mut Self::State, record: &RecordView<'_>) -> Result<(), BoxError>;

    /// Append an encoding of `state` to `out` (the snapshot's payload).
    fn snapshot(&self, state: &Self::State, out: &mut Vec<u8>) -> Result<(), BoxError>;

    /// Rebuild a state from a payload [`snapshot`](Projection::snapshot) wrote. An error
    /// makes the runner skip this snapshot and try an older one; it never panics the runner.
    fn restore(&self, payload: &[u8]) -> Result<Self::State, BoxError>;
}

/// A stable 64-bit fingerprint of `definition` (FNV-1a): the same bytes give the same value
/// in every build and on every platform, unlike `std`'s hashers. Use it to derive
/// [`Projection::fingerprint`] from a description of the state and of `apply`, for example
/// `fingerprint_of(b"balances v2: i64 cents, refunds negative")`.
pub fn fingerprint_of(definition: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in definition {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    #[test]
    fn fingerprint_of_is_stable() {
        // Fixed values: a change here would make every stored snapshot look foreign.
        assert_eq!(super::fingerprint_of(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::fingerprint_of(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}

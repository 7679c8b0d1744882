//! Restore a projection's state from its newest usable snapshot, and fold records into it.
//! Shared by the runner (which then follows the tail) and by [`state_as_of`].

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::log::{Cursor, Log};
use crate::projection::snapshot::{self, Coverage, SnapshotInfo};
use crate::projection::snapshot_dir::SnapshotDir;
use crate::projection::Projection;

/// Why a snapshot file was not used.
#[derive(Debug)]
#[non_exhaustive]
pub enum SkipReason {
    /// The file could not be read, or failed validation (`Error::Io` or `Error::Corruption`
    /// located in the file).
    Invalid(Error),
    /// It was written by a projection of another name.
    NameMismatch {
        /// The name in the file (lossy UTF-8).
        found: String,
    },
    /// It was written by another definition of the projection (older or newer code).
    FingerprintMismatch {
        /// The fingerprint in the file.
        found: u64,
        /// The current definition's fingerprint.
        expected: u64,
    },
    /// It covers records the log does not hold (the log lost its tail, or is another log).
    AheadOfLog {
        /// The log's next offset.
        log_next_offset: u64,
    },
    /// The log's record at the snapshot's last applied offset has another timestamp than the
    /// one the snapshot recorded: the snapshot was made from another log.
    LogMismatch {
        /// The offset compared.
        offset: u64,
        /// Timestamp recorded in the snapshot.
        snapshot_timestamp_us: u64,
        /// Timestamp of the log's record.
        log_timestamp_us: u64,
    },
    /// The projection's `restore` rejected the payload.
    Rejected(String),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Invalid(e) => write!(f, "{e}"),
            SkipReason::NameMismatch { found } => write!(f, "written by projection {found:?}"),
            SkipReason::FingerprintMismatch { found, expected } => {
                write!(f, "definition fingerprint {found:#018x}, current definition is {expected:#018x}")
            }
            SkipReason::AheadOfLog { log_next_offset } => {
                write!(f, "covers records past the log's end (next offset {log_next_offset})")
            }
            SkipReason::LogMismatch { offset, snapshot_timestamp_us, log_timestamp_us } => write!(
                f,
                "record {offset} has timestamp {log_timestamp_us} in the log, {snapshot_timestamp_us} in the snapshot"
            ),
            SkipReason::Rejected(msg) => write!(f, "payload rejected by the projection: {msg}"),
        }
    }
}

/// A snapshot file that was not used, and why.
#[derive(Debug)]
#[non_exhaustive]
pub struct SkippedSnapshot {
    /// The file.
    pub path: PathBuf,
    /// The position its name claims.
    pub position: u64,
    /// Why it was not used.
    pub reason: SkipReason,
}

/// What a restore found: the snapshot used (if any) and every newer one it passed over.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct RestoreReport {
    /// The snapshot the state was restored from; `None`: built from the initial state.
    pub used: Option<SnapshotInfo>,
    /// Newer snapshots that were not usable, newest first.
    pub skipped: Vec<SkippedSnapshot>,
}

/// A state and what it covers.
pub(crate) struct Folded<S> {
    pub state: S,
    pub coverage: Coverage,
}

/// Restore the newest usable snapshot at or below `at_most`, or the initial state. Fails
/// with `RecordsRemoved` if the log no longer holds the records after the chosen start.
pub(crate) fn restore<P: Projection>(
    log: &Log,
    projection: &P,
    dir: &SnapshotDir,
    at_most: u64,
) -> Result<(Folded<P::State>, RestoreReport)> {
    log.refresh()?;
    let (first, next) = (log.first_offset(), log.next_offset());
    let mut report = RestoreReport::default();
    let mut files = dir.files()?;
    files.retain(|(p, _)| *p <= at_most);
    for (position, path) in files.into_iter().rev() {
        let skip = |reason| SkippedSnapshot { path: path.clone(), position, reason };
        let bytes = match SnapshotDir::read_file(&path) {
            Ok(b) => b,
            Err(e) => {
                report.skipped.push(skip(SkipReason::Invalid(e)));
                continue;
            }
        };
        let decoded = match snapshot::decode(&path, &bytes) {
            Ok(d) => d,
            Err(e) => {
                report.skipped.push(skip(SkipReason::Invalid(e)));
                continue;
            }
        };
        let cov = decoded.coverage;
        let reason = if decoded.name != projection.name().as_bytes() {
            Some(SkipReason::NameMismatch { found: String::from_utf8_lossy(decoded.name).into_owned() })
        } else if decoded.fingerprint != projection.fingerprint() {
            Some(SkipReason::FingerprintMismatch { found: decoded.fingerprint, expected: projection.fingerprint() })
        } else if cov.position > next {
            Some(SkipReason::AheadOfLog { log_next_offset: next })
        } else {
            log_mismatch(log, cov, first)
        };
        if let Some(reason) = reason {
            report.skipped.push(skip(reason));
            continue;
        }
        if cov.position < first {
            // Every older snapshot starts even earlier: none can be continued from this log.
            return Err(Error::RecordsRemoved {
                projection: projection.name().to_owned(),
                position: cov.position,
                first_offset: first,
            });
        }
        match projection.restore(decoded.payload) {
            Ok(state) => {
                report.used = Some(decoded.info(&path));
                return Ok((Folded { state, coverage: cov }, report));
            }
            Err(e) => report.skipped.push(skip(SkipReason::Rejected(e.to_string()))),
        }
    }
    if first > 0 {
        return Err(Error::RecordsRemoved {
            projection: projection.name().to_owned(),
            position: 0,
            first_offset: first,
        });
    }
    Ok((Folded { state: projection.initial(), coverage: Coverage::start() }, report))
}

/// Best effort: compare the snapshot's last record with the log's record at that offset, if
/// the log still holds it. A record that cannot be read (removed by retention or compaction)
/// gives no verdict.
fn log_mismatch(log: &Log, cov: Coverage, first: u64) -> Option<SkipReason> {
    let (offset, snapshot_timestamp_us) = cov.last?;
    if offset < first {
        return None;
    }
    let log_timestamp_us = log.read_with(offset, |r| r.timestamp_us()).ok()?;
    (log_timestamp_us != snapshot_timestamp_us).then_some(SkipReason::LogMismatch {
        offset,
        snapshot_timestamp_us,
        log_timestamp_us,
    })
}

/// Fold records from `cursor` into `folded`: stop at the end of the log, after `limit`
/// records, or before the first record at or above `until`. Offsets may have gaps: the
/// position moves to one past each record applied, then to wherever the cursor stands.
/// Returns the number of records applied.
pub(crate) fn fold<P: Projection>(
    projection: &P,
    cursor: &mut Cursor,
    folded: &mut Folded<P::State>,
    limit: u64,
    until: u64,
) -> Result<u64> {
    let mut n = 0;
    while n < limit && folded.coverage.position < until {
        let rec = match cursor.next() {
            Ok(Some(rec)) => rec,
            Ok(None) => {
                // Caught up; a gap at the end (records removed by compaction) is passed.
                folded.coverage.position = folded.coverage.position.max(cursor.position().min(until));
                break;
            }
            Err(e) => return Err(cursor_error(projection.name(), e)),
        };
        let offset = rec.offset();
        if offset >= until {
            break;
        }
        projection.apply(&mut folded.state, &rec).map_err(|source| Error::ProjectionFailed {
            projection: projection.name().to_owned(),
            offset,
            source,
        })?;
        folded.coverage.applied(offset, rec.timestamp_us());
        n += 1;
    }
    Ok(n)
}

/// A cursor that finds its start below the log's first offset: retention removed records
/// the projection had not applied yet.
fn cursor_error(name: &str, e: Error) -> Error {
    match e {
        Error::OffsetOutOfRange { offset, first, .. } if offset < first => {
            Error::RecordsRemoved { projection: name.to_owned(), position: offset, first_offset: first }
        }
        e => e,
    }
}

/// A restored state, from [`load_snapshot`] or [`state_as_of`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Restored<S> {
    /// The state reflecting every record below `position`.
    pub state: S,
    /// Next offset to apply.
    pub position: u64,
    /// Records applied to the state since its initial value.
    pub records: u64,
    /// Records replayed after the snapshot (0 from [`load_snapshot`]).
    pub replayed: u64,
    /// The snapshot it started from, and those passed over.
    pub report: RestoreReport,
}

/// The newest usable snapshot of `projection` in `snapshots` at or below `at_most`, restored
/// (or the initial state at offset 0 if there is none), without replaying anything: the
/// caller continues from `position`. For an owner that keeps the state itself (see
/// [`SnapshotDir::save`]); a [`ProjectionRunner`](crate::ProjectionRunner) does this on open.
///
/// Fails with `Error::RecordsRemoved` if the log no longer holds the records after it.
pub fn load_snapshot<P: Projection>(
    log: &Log,
    projection: &P,
    snapshots: &SnapshotDir,
    at_most: u64,
) -> Result<Restored<P::State>> {
    let (folded, report) = restore(log, projection, snapshots, at_most)?;
    let Coverage { position, records, .. } = folded.coverage;
    Ok(Restored { state: folded.state, position, records, replayed: 0, report })
}

/// The state of `projection` reflecting every record of `log` below `offset`: the newest
/// usable snapshot in `snapshots` at or below `offset`, then the records after it. Reads
/// only; works beside a running runner and on a read-only log.
///
/// Fails with `Error::OffsetOutOfRange` if `offset` is past the log's next offset, and with
/// `Error::RecordsRemoved` if no snapshot at or below `offset` can be continued from the
/// records the log still holds.
pub fn state_as_of<P: Projection>(
    log: &Log,
    projection: &P,
    snapshots: &SnapshotDir,
    offset: u64,
) -> Result<Restored<P::State>> {
    log.refresh()?;
    let next = log.next_offset();
    if offset > next {
        return Err(Error::OffsetOutOfRange { offset, first: log.first_offset(), next });
    }
    let (mut folded, report) = restore(log, projection, snapshots, offset)?;
    let mut cursor = log.cursor(folded.coverage.position);
    let replayed = fold(projection, &mut cursor, &mut folded, u64::MAX, offset)?;
    Ok(Restored { state: folded.state, position: offset, records: folded.coverage.records, replayed, report })
}

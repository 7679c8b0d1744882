//! A directory of one projection's snapshot files, `{position:020}.snap`: atomic writes,
//! listing, retention. The only module of the projection layer that touches the file system
//! helpers (atomic replacement, directory fsync, the directory lock).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::io::fs as fsutil;
use crate::io::storage;
use crate::io::DirLock;
use crate::log::Log;
use crate::projection::snapshot::{self, Coverage, SnapshotInfo};
use crate::projection::Projection;

const SUFFIX: &str = ".snap";
const TMP_SUFFIX: &str = ".snap.tmp";
/// Digits of the position in a file name.
const DIGITS: usize = 20;

/// Which snapshots a runner keeps after writing a new one.
///
/// The newest `keep_latest` are kept. Of the older ones, if `spacing` is not 0, the oldest
/// snapshot of each stretch of `spacing` offsets (`position / spacing`) is kept, for the
/// newest `keep_spaced` stretches, so that a query as of an old offset starts from a snapshot
/// at most about `spacing` offsets before it. A kept spaced snapshot stays kept until its
/// stretch falls out of the newest `keep_spaced`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotRetention {
    /// Newest snapshots to keep; at least 1. Default 2.
    pub keep_latest: usize,
    /// Width of a stretch of offsets for spaced snapshots; 0 keeps none. Default 0.
    pub spacing: u64,
    /// Stretches that keep a spaced snapshot. Default 0.
    pub keep_spaced: usize,
}

impl Default for SnapshotRetention {
    fn default() -> SnapshotRetention {
        SnapshotRetention { keep_latest: 2, spacing: 0, keep_spaced: 0 }
    }
}

impl SnapshotRetention {
    /// Keep the newest `n` snapshots (at least 1).
    #[must_use]
    pub fn keep_latest(mut self, n: usize) -> SnapshotRetention {
        self.keep_latest = n;
        self
    }

    /// Also keep the oldest snapshot of each of the newest `keep` stretches of `spacing`
    /// offsets.
    #[must_use]
    pub fn spaced(mut self, spacing: u64, keep: usize) -> SnapshotRetention {
        self.spacing = spacing;
        self.keep_spaced = keep;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.keep_latest == 0 {
            return Err(Error::InvalidOptions("snapshot retention must keep at least the latest snapshot".into()));
        }
        Ok(())
    }

    /// For positions in ascending order, whether each is kept.
    pub(crate) fn plan(&self, positions: &[u64]) -> Vec<bool> {
        let n = positions.len();
        let latest_from = n.saturating_sub(self.keep_latest);
        let mut keep: Vec<bool> = (0..n).map(|i| i >= latest_from).collect();
        if self.spacing > 0 && self.keep_spaced > 0 {
            let firsts: Vec<usize> = (0..latest_from)
                .filter(|&i| i == 0 || positions[i - 1] / self.spacing != positions[i] / self.spacing)
                .collect();
            for &i in firsts.iter().rev().take(self.keep_spaced) {
                keep[i] = true;
            }
        }
        keep
    }
}

/// A directory holding one projection's snapshots.
///
/// Opened with [`SnapshotDir::open`] it is the writer: it holds the directory's lock (one
/// writer per directory, across processes), removes temporary files left by a write that
/// was interrupted, and writes and prunes snapshots. Opened with
/// [`SnapshotDir::open_read_only`] it only lists and reads them.
#[derive(Debug)]
pub struct SnapshotDir {
    dir: PathBuf,
    lock: Option<DirLock>,
}

impl SnapshotDir {
    /// Open (creating if needed) `dir` as the writer of its snapshots.
    pub fn open(dir: impl AsRef<Path>) -> Result<SnapshotDir> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            fs::create_dir_all(&dir).at(&dir)?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                // IMPORTANT: the new directory's entry is durable before snapshots go into it.
                fsutil::fsync_dir(parent)?;
            }
        }
        let lock = DirLock::acquire(&dir)?;
        let mut removed = false;
        for entry in fs::read_dir(&dir).at(&dir)? {
            let path = entry.at(&dir)?.path();
            if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(TMP_SUFFIX)) {
                // A write killed before its rename: never a snapshot, safe to drop.
                storage::remove(&path)?;
                removed = true;
            }
        }
        if removed {
            fsutil::fsync_dir(&dir)?;
        }
        Ok(SnapshotDir { dir, lock: Some(lock) })
    }

    /// Open `dir` to read snapshots only (no lock, no cleanup). A missing directory holds no
    /// snapshots.
    pub fn open_read_only(dir: impl AsRef<Path>) -> SnapshotDir {
        SnapshotDir { dir: dir.as_ref().to_path_buf(), lock: None }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The path of the snapshot covering `position`.
    pub fn path_for(&self, position: u64) -> PathBuf {
        self.dir.join(format!("{position:0DIGITS$}{SUFFIX}"))
    }

    /// Snapshot files by position, oldest first. Only names of the form `{position:020}.snap`
    /// count; their contents are not read.
    pub fn files(&self) -> Result<Vec<(u64, PathBuf)>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&self.dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let path = entry.at(&self.dir)?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            let Some(digits) = name.strip_suffix(SUFFIX) else { continue };
            if digits.len() == DIGITS && digits.bytes().all(|c| c.is_ascii_digit()) {
                if let Ok(position) = digits.parse::<u64>() {
                    out.push((position, path));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Read and validate the snapshot file at `path` (header, lengths, checksum); returns
    /// its facts. Does not check it against a projection or a log.
    pub fn read_info(path: &Path) -> Result<SnapshotInfo> {
        let bytes = SnapshotDir::read_file(path)?;
        Ok(snapshot::decode(path, &bytes)?.info(path))
    }

    /// Read a snapshot file whole, once its header has been checked against its length: a
    /// file that is not a snapshot, however large, is refused after 64 bytes.
    pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
        let mut file = fs::File::open(path).at(path)?;
        let len = file.metadata().at(path)?.len();
        let mut head = Vec::with_capacity(snapshot::HEADER_LEN);
        (&mut file).take(snapshot::HEADER_LEN as u64).read_to_end(&mut head).at(path)?;
        snapshot::check_header(path, &head, len)?;
        let mut bytes = head;
        bytes.reserve_exact((len as usize).saturating_sub(bytes.len()));
        file.read_to_end(&mut bytes).at(path)?;
        Ok(bytes)
    }

    /// Save `state`, which reflects every record of `log` below `position` (`records` of
    /// them applied since the initial state), as a snapshot of `projection`. For an owner that
    /// keeps the state itself and applies its own records as it appends them (instead of a
    /// [`ProjectionRunner`](crate::ProjectionRunner) reading them back); it prunes nothing
    /// (see [`prune`](SnapshotDir::prune)).
    ///
    /// A writer `log` is flushed up to `position` first. Fails with `Error::OffsetOutOfRange`
    /// if `position` is past the log's next offset, `Error::InvalidOptions` if `records`
    /// exceeds `position`, `Error::InvalidName` for a bad name, `Error::ReadOnly` on a
    /// directory opened read-only.
    pub fn save<P: Projection>(
        &self,
        log: &Log,
        projection: &P,
        state: &P::State,
        position: u64,
        records: u64,
    ) -> Result<SnapshotInfo> {
        let bytes = SnapshotDir::prepare(log, projection, state, position, records)?;
        self.write_encoded(log, position, &bytes)
    }

    /// The first half of [`save`](SnapshotDir::save): check the arguments and encode the
    /// snapshot file's bytes, without writing anything. An owner that guards its state with
    /// a lock encodes under it and writes ([`write_encoded`](SnapshotDir::write_encoded))
    /// after releasing it, so that nobody waits for the snapshot's fsyncs.
    pub(crate) fn prepare<P: Projection>(
        log: &Log,
        projection: &P,
        state: &P::State,
        position: u64,
        records: u64,
    ) -> Result<Vec<u8>> {
        snapshot::check_name(projection.name())?;
        let next = log.next_offset();
        if position > next {
            return Err(Error::OffsetOutOfRange { offset: position, first: log.first_offset(), next });
        }
        if records > position {
            return Err(Error::InvalidOptions(format!("{records} records cannot lie below offset {position}")));
        }
        // The last record, if the log still holds it at `position - 1`, identifies the log.
        let last = match position.checked_sub(1) {
            Some(o) if records > 0 => log.read_with(o, |r| (o, r.timestamp_us())).ok(),
            _ => None,
        };
        let mut payload = Vec::new();
        projection.snapshot(state, &mut payload).map_err(|source| Error::ProjectionFailed {
            projection: projection.name().to_owned(),
            offset: position,
            source,
        })?;
        Ok(snapshot::encode(
            projection.name(),
            projection.fingerprint(),
            &Coverage { position, records, last },
            &payload,
        ))
    }

    /// Write an encoded snapshot file for `position`: `.tmp`, fsync, rename, directory
    /// fsync. A crash leaves the older snapshots untouched and, at worst, a `.tmp` file that
    /// the next writer open removes.
    pub(crate) fn write_encoded(&self, log: &Log, position: u64, bytes: &[u8]) -> Result<SnapshotInfo> {
        if self.lock.is_none() {
            return Err(Error::ReadOnly);
        }
        // IMPORTANT: a writer's records are durable up to the position before a snapshot
        // claims them. Otherwise, after a power loss, the log could end before the snapshot
        // and new records would take offsets it says it reflects. (A follower cannot flush
        // another process's log; restore skips a snapshot that ends up ahead of its log.)
        if !log.is_read_only() {
            log.sync()?;
        }
        let path = self.path_for(position);
        fsutil::atomic_write(&path, bytes)?;
        Ok(snapshot::decode(&path, bytes)?.info(&path))
    }

    /// After writing the snapshot at `written`: remove every snapshot above it (a writer only
    /// writes at or above the snapshot it restored, so these were found unusable when it
    /// started) and the older ones `retention` does not keep. Returns the removed paths.
    pub fn prune(&self, written: u64, retention: &SnapshotRetention) -> Result<Vec<PathBuf>> {
        if self.lock.is_none() {
            return Err(Error::ReadOnly);
        }
        let files = self.files()?;
        let upto = files.partition_point(|(p, _)| *p <= written);
        let positions: Vec<u64> = files[..upto].iter().map(|(p, _)| *p).collect();
        let keep = retention.plan(&positions);
        let mut removed = Vec::new();
        for (i, (_, path)) in files.into_iter().enumerate() {
            if i >= upto || !keep[i] {
                storage::remove(&path)?;
                removed.push(path);
            }
        }
        if !removed.is_empty() {
            fsutil::fsync_dir(&self.dir)?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_keeps_the_latest_and_the_first_of_each_recent_stretch() {
        let r = SnapshotRetention::default().keep_latest(2);
        assert_eq!(r.plan(&[10, 20, 30]), vec![false, true, true]);
        assert_eq!(r.plan(&[10]), vec![true]);
        let r = SnapshotRetention::default().keep_latest(1).spaced(100, 2);
        // Stretches: 0 (5, 50), 1 (120, 150), 2 (230), 3 (310, the latest).
        assert_eq!(r.plan(&[5, 50, 120, 150, 230, 310]), vec![false, false, true, false, true, true]);
    }

    #[test]
    fn names_encode_the_position_and_other_files_are_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let d = SnapshotDir::open(tmp.path().join("snaps")).unwrap();
        for name in ["00000000000000000007.snap.tmp", "7.snap", "notes.txt", "0000000000000000000x.snap"] {
            fs::write(d.path().join(name), b"x").unwrap();
        }
        fs::write(d.path_for(12), b"x").unwrap();
        fs::write(d.path_for(3), b"x").unwrap();
        let positions: Vec<u64> = d.files().unwrap().into_iter().map(|(p, _)| p).collect();
        assert_eq!(positions, vec![3, 12]);
        drop(d);
        // A writer open removes the temporary file of an interrupted write, and nothing else.
        let d = SnapshotDir::open(tmp.path().join("snaps")).unwrap();
        assert!(!d.path().join("00000000000000000007.snap.tmp").exists());
        assert!(d.path().join("notes.txt").exists());
        assert!(matches!(SnapshotDir::open(d.path()), Err(Error::Locked { .. })));
        let reader = SnapshotDir::open_read_only(d.path());
        assert!(matches!(reader.prune(1, &SnapshotRetention::default()), Err(Error::ReadOnly)));
    }
}

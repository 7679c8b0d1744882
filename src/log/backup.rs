//! A consistent copy of a log, taken while its writer runs (see `docs/durability.md`).
//!
//! The copy is cut at batch boundaries: it takes the segment list once, and for each segment
//! the end of its published records at that moment (`[0, end)` of its map, which nobody ever
//! writes again). Sealed segments are copied whole; the active one up to that end. Bytes are
//! read from the handle's own maps, so a segment that retention deletes meanwhile is still
//! copied (its map keeps the file's blocks). A writer handle first makes that end durable
//! (`sync`), so the copy holds nothing the source could still lose.
//!
//! Index files and the checkpoint are derived data and are not copied: the copy is written
//! under a temporary name (`DEST~partial`), every file fsynced, then opened once by a writer
//! (which validates what no checkpoint vouches for and writes the index files and a
//! checkpoint), verified, closed, and only then renamed to DEST (directory fsyncs on both
//! sides). A copy that is not intact never appears at DEST. `removed-streams` (not derived) is read after the
//! segment list is taken, so it covers at least every segment missing from the copy.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{CorruptionKind, Error, IoContext, Location, Result};
use crate::io::storage;
use crate::log::stream::REMOVED_STREAMS_FILE;
use crate::log::Log;
use crate::options::RecoveryMode;
use crate::segment::Segment;

/// What a backup holds: a log with the records `[first_offset, next_offset)` of the source.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupReport {
    /// The backup's directory.
    pub dir: PathBuf,
    /// The first offset in the backup.
    pub first_offset: u64,
    /// One past the last offset in the backup: every record of the source below it (and
    /// at or after `first_offset`) is in the backup.
    pub next_offset: u64,
    /// Records in the backup (offsets that compaction emptied are not records).
    pub records: u64,
    /// Segment files copied.
    pub segments: u64,
    /// Bytes of records copied (segment headers included).
    pub bytes: u64,
}

impl Log {
    /// Copy the log to `dest`, which must not exist or be an empty directory
    /// ([`Error::BackupDestinationNotEmpty`] otherwise), while appends go on. The copy holds
    /// every record committed when the backup started (a read-only handle first picks up
    /// what the writer committed); through a writer handle, those records are made durable
    /// in the source first. The copy is opened, validated and verified before this returns;
    /// its index files and checkpoint are its own.
    pub fn backup(&self, dest: impl AsRef<Path>) -> Result<BackupReport> {
        let dest = dest.as_ref();
        check_destination(dest)?;
        self.refresh()?;
        let segs: Arc<Vec<Arc<Segment>>> = self.inner.segments.read().clone();
        let ends: Vec<usize> = segs.iter().map(|s| s.end_pos()).collect();
        if !self.inner.read_only {
            self.sync()?;
        }
        let staging = partial_name(dest);
        if staging.exists() {
            // What an interrupted backup to the same destination left: never a log in use.
            std::fs::remove_dir_all(&staging).at(&staging)?;
        }
        std::fs::create_dir_all(&staging).at(&staging)?;
        let mut bytes = 0u64;
        for (seg, &end) in segs.iter().zip(&ends) {
            let path = staging.join(seg.paths.data.file_name().unwrap_or_default());
            copy_prefix(seg, end, &path)?;
            bytes += end as u64;
        }
        let removed = self.inner.dir.join(REMOVED_STREAMS_FILE);
        match std::fs::read(&removed) {
            Ok(b) => write_synced(&staging.join(REMOVED_STREAMS_FILE), &b)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&removed, e)),
        }
        // Open the copy once (validation, index files, checkpoint) and verify it before it
        // gets its name: a backup that is not intact never appears at `dest`.
        let opts = self.inner.opts.clone().recovery(RecoveryMode::TruncateTornTail);
        let checked = open_and_verify(&staging, opts);
        let (first_offset, next_offset, records) = match checked {
            Ok(facts) => facts,
            Err(e) => {
                // Best effort: the error says what was wrong, in the source's terms.
                let _ = std::fs::remove_dir_all(&staging);
                return Err(in_source(e, &staging, &self.inner.dir));
            }
        };
        install(&staging, dest)?;
        Ok(BackupReport {
            dir: dest.to_path_buf(),
            first_offset,
            next_offset,
            records,
            segments: segs.len() as u64,
            bytes,
        })
    }
}

/// Open the copy in `dir` with a writer, verify it and close it: its first and next offset
/// and its number of records, or the first damage, torn tail or missing record found.
fn open_and_verify(dir: &Path, opts: crate::Options) -> Result<(u64, u64, u64)> {
    let copy = Log::open(dir, opts)?;
    let report = copy.verify(|_| {});
    if let Some(d) = report.damage.first() {
        return Err(Error::corrupt(&d.file, d.position, d.kind.clone()));
    }
    if let Some(location) = report.missing.first() {
        return Err(Error::Corruption { location: location.clone(), kind: CorruptionKind::MissingData });
    }
    if let Some(t) = &report.torn_tail {
        return Err(Error::corrupt(&t.file, t.position, CorruptionKind::IncompleteBatch));
    }
    let facts = (copy.first_offset(), copy.next_offset(), report.records);
    copy.close()?;
    Ok(facts)
}

/// An error about a file of the copy in `staging`, about the same file of the source in
/// `source` instead: the copy's bytes are the source's.
fn in_source(e: Error, staging: &Path, source: &Path) -> Error {
    match e {
        Error::Corruption { location: Location::File { path, position }, kind } => {
            let path = path.strip_prefix(staging).map_or(path.clone(), |rel| source.join(rel));
            Error::Corruption { location: Location::File { path, position }, kind }
        }
        Error::Corruption { location: Location::Log { dir, offset }, kind } if dir == staging => {
            Error::Corruption { location: Location::Log { dir: source.to_path_buf(), offset }, kind }
        }
        e => e,
    }
}

/// `dest` must be missing or an empty directory.
pub(crate) fn check_destination(dest: &Path) -> Result<()> {
    match std::fs::read_dir(dest) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(Error::BackupDestinationNotEmpty { path: dest.to_path_buf() }),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            Err(Error::BackupDestinationNotEmpty { path: dest.to_path_buf() })
        }
        Err(e) => Err(Error::io(dest, e)),
    }
}

/// Give the complete copy in `staging` its name `dest` (missing, or an empty directory that
/// is replaced), durably: fsync `staging`, rename, fsync the parent.
pub(crate) fn install(staging: &Path, dest: &Path) -> Result<()> {
    storage::fsync_dir(staging)?;
    if dest.exists() {
        std::fs::remove_dir(dest).at(dest)?;
    }
    storage::rename(staging, dest)?;
    match dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => storage::fsync_dir(parent),
        None => Ok(()),
    }
}

/// Where a backup to `dest` is written before it is renamed to `dest`.
pub(crate) fn partial_name(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push("~partial");
    PathBuf::from(s)
}

/// The segment's bytes `[0, end)` into `path`, the file as long as the segment's (the rest
/// reads as zeros: where records end), fsynced.
fn copy_prefix(seg: &Segment, end: usize, path: &Path) -> Result<()> {
    let bytes = seg.map.published_bytes();
    let Some(prefix) = bytes.get(..end) else {
        return Err(Error::Internal("a segment's published end moved backwards"));
    };
    let mut file = storage::create(path, OpenOptions::new().write(true).create_new(true))?;
    storage::write_all(&mut file, path, prefix)?;
    file.set_len(seg.map.len() as u64).at(path)?;
    storage::sync_all(&file, path)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = storage::create(path, OpenOptions::new().write(true).create_new(true))?;
    storage::write_all(&mut file, path, bytes)?;
    storage::sync_all(&file, path)
}

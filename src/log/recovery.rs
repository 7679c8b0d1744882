//! Opening a log, in stages. Only the last stage writes to disk, so an open that fails
//! changes nothing.
//!
//! 1. **prepare**: check the directory (a writer creates a missing one), take the writer lock.
//! 2. **discover**: list the segment files and read the checkpoint.
//! 3. **load**: open each segment's data file and check its header; trust a sealed segment's
//!    index files or validate the segment whole; check that each segment ends where the next
//!    begins and that every segment the checkpoint vouches for is there.
//! 4. **examine the tail**: validate the active (last) segment from the checkpoint's durable
//!    point and classify its end: clean, a torn write past the durable point, or damage below
//!    it. The durable point is the checkpoint's, raised by any durable mark carried by a valid
//!    frame after the damage (see `format::frame`).
//! 5. **decide**: [`decide`], one table from (recovery mode, finding) to action.
//! 6. **apply**: set damaged segments aside (salvage), zero a torn tail, write rebuilt index
//!    files, create the active segment if there is none, write the checkpoint.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::error::{CorruptionKind, Error, IoContext, Location, Result};
use crate::format::removed_streams::RemovedStreams;
use crate::format::{Checkpoint, SEGMENT_HEADER_LEN};
use crate::io::fs as fsutil;
use crate::io::mmap::SegmentMap;
use crate::io::poison::{self, Poison};
use crate::io::{storage, DirLock};
use crate::log::follower::Follower;
use crate::log::report::OpenReport;
use crate::log::rewind;
use crate::log::stream::{self, VersionCache};
use crate::log::sync::{spawn_flusher, CkptState, SyncState};
use crate::log::writer::Writer;
use crate::log::{Inner, Log};
use crate::options::{Durability, Options, RecoveryMode, MAX_SEGMENT_BYTES};
use crate::segment::{self, IndexEntry, ScanState, ScanStop, SealInfo, SealedIndex, Segment, SegmentId, SegmentPaths};

pub(super) const CHECKPOINT_FILE: &str = "checkpoint";

// ---- the decision table --------------------------------------------------------------------

/// What open found, classified for [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finding {
    /// Every segment is there and every record validates.
    Intact,
    /// Bytes past the durable point that are not whole valid batches: a write torn by a crash.
    /// Nothing acknowledged is lost by cutting them.
    TornTail,
    /// The active segment is damaged below the durable point, or cut short below it.
    DamagedTail,
    /// A segment before the active one is damaged (its header, its records, or fewer records
    /// than where the next segment begins), or segments the checkpoint vouches for are missing.
    DamagedSealed,
}

/// What open does about a [`Finding`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Open as found.
    Proceed,
    /// Zero the torn bytes and open.
    RepairTail,
    /// Fail the open with the located damage; nothing on disk changes.
    Fail,
    /// Open read-only, ending just before the damage.
    ReadOnly,
    /// Cut the log at the damage, keep the bytes cut away beside the log, and open writable.
    Salvage,
}

/// The recovery policy, in one place: for each recovery mode and finding, what open does. A
/// read-only handle never writes, so it never repairs or salvages: it stops where the valid
/// data stops (a writer may still be writing past it) or opens up to the damage.
pub(crate) fn decide(mode: RecoveryMode, finding: Finding, read_only: bool) -> Action {
    use Finding::{DamagedSealed, DamagedTail, Intact, TornTail};
    let action = match (finding, mode) {
        (Intact, _) => Action::Proceed,
        (TornTail, _) => Action::RepairTail,
        (DamagedTail | DamagedSealed, RecoveryMode::TruncateTornTail) => Action::Fail,
        (DamagedTail | DamagedSealed, RecoveryMode::ReadOnlyUpToDamage) => Action::ReadOnly,
        (DamagedTail | DamagedSealed, RecoveryMode::Salvage) => Action::Salvage,
    };
    match (action, read_only) {
        (Action::RepairTail, true) => Action::Proceed,
        (Action::Salvage, true) => Action::ReadOnly,
        (a, _) => a,
    }
}

// ---- stages 1 and 2: prepare, discover -------------------------------------------------------

/// What the checkpoint file held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CheckpointState {
    Missing,
    /// Present but not a valid checkpoint (a crash cannot produce this: it is replaced
    /// atomically). Treated as missing: the whole active segment is validated.
    Unreadable,
    Valid(Checkpoint),
}

impl CheckpointState {
    fn valid(self) -> Option<Checkpoint> {
        match self {
            CheckpointState::Valid(c) => Some(c),
            _ => None,
        }
    }
}

fn read_checkpoint(dir: &Path) -> Result<CheckpointState> {
    let path = dir.join(CHECKPOINT_FILE);
    match fs::read(&path) {
        Ok(b) => {
            Ok(Checkpoint::decode_file(&b).map_or(CheckpointState::Unreadable, |(c, _)| CheckpointState::Valid(c)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CheckpointState::Missing),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// True for the temporary names tidelog itself gives files it replaces atomically or creates
/// (`{20 digits}.log.tmp`, `.index.tmp`, `.timeindex.tmp`, the same with `.compact.tmp`, and
/// `checkpoint.tmp`): the only `*.tmp` files a writer's open removes.
fn is_own_tmp(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".tmp") else { return false };
    if stem == CHECKPOINT_FILE || stem == stream::REMOVED_STREAMS_FILE {
        return true;
    }
    // Files of a segment rewrite that never got installed end in `.compact.tmp`.
    let stem = stem.strip_suffix(".compact").unwrap_or(stem);
    let digits =
        ["log", "index", "timeindex", "keyindex"].iter().find_map(|ext| stem.strip_suffix(ext)?.strip_suffix('.'));
    digits.is_some_and(|d| d.len() == 20 && d.bytes().all(|b| b.is_ascii_digit()))
}

struct Discovered {
    bases: Vec<u64>,
    tmp_files: Vec<PathBuf>,
    ckpt: CheckpointState,
}

fn discover(dir: &Path) -> Result<Discovered> {
    let mut bases = Vec::new();
    let mut tmp_files = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = segment::parse_segment_name(name) {
            bases.push(base);
        } else if is_own_tmp(name) {
            tmp_files.push(entry.path());
        }
    }
    bases.sort_unstable();
    Ok(Discovered { bases, tmp_files, ckpt: read_checkpoint(dir)? })
}

/// Check the directory; a writer creates a missing one (and with it a new, empty log).
fn prepare_dir(dir: &Path, read_only: bool) -> Result<()> {
    match fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err(Error::NotADirectory { path: dir.to_path_buf() }),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if read_only {
                return Err(Error::NotFound { path: dir.to_path_buf() });
            }
            fs::create_dir_all(dir).at(dir)?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                fsutil::fsync_dir(parent)?;
            }
            Ok(())
        }
        Err(e) => Err(Error::io(dir, e)),
    }
}

// ---- stage 3: load ---------------------------------------------------------------------------

/// A segment before the active one, as loaded.
enum Loaded {
    /// Its sealed index files are valid: trusted without a scan.
    Sealed { id: SegmentId, file: File, map_len: usize, sidx: SealedIndex, info: SealInfo },
    /// Validated whole; its sealed index files are to be (re)written.
    Scanned {
        id: SegmentId,
        file: File,
        map_len: usize,
        map: Arc<SegmentMap>,
        entries: Vec<IndexEntry>,
        end: ScanState,
    },
}

impl Loaded {
    fn next_offset(&self) -> u64 {
        match self {
            Loaded::Sealed { info, .. } => info.next_offset,
            Loaded::Scanned { end, .. } => end.next_offset,
        }
    }
}

/// Damage found in a segment before the active one (or segments missing).
struct SealedDamage {
    /// Index of the first damaged or missing segment in the list of bases.
    at: usize,
    location: Location,
    kind: CorruptionKind,
    /// The damaged segment's valid prefix, when its header could be read: with
    /// `ReadOnlyUpToDamage` it stays readable, with `Salvage` it becomes the active segment.
    prefix: Option<ActiveCandidate>,
    /// For damaged or missing records (not a damaged header): the first offset lost and the
    /// byte position where the search for later durable marks starts.
    first_lost: Option<(u64, usize)>,
}

/// The segment that will be the active one (or the end of a read-only log): opened and mapped
/// read-only for examination.
struct ActiveCandidate {
    id: SegmentId,
    file: File,
    file_len: u64,
    capacity: u64,
    map: Arc<SegmentMap>,
}

struct LoadedLog {
    sealed: Vec<Loaded>,
    /// The last segment, if every segment before it loaded intact.
    active: Option<ActiveCandidate>,
    damage: Option<SealedDamage>,
    scanned_bytes: u64,
}

fn map_len_of(file_len: u64) -> usize {
    usize::try_from(file_len.min(MAX_SEGMENT_BYTES)).unwrap_or(usize::MAX)
}

fn open_candidate(dir: &Path, base: u64, writable: bool) -> Result<ActiveCandidate> {
    let (id, file, file_len, capacity) = segment::open_data_file(dir, base, writable)?;
    let map = SegmentMap::map_ro(&file, map_len_of(file_len), 0).at(&id.paths.data)?;
    Ok(ActiveCandidate { id, file, file_len, capacity, map })
}

/// The location and kind of a corruption error, if it is one.
fn as_damage(e: Error) -> Result<(Location, CorruptionKind)> {
    match e {
        Error::Corruption { location, kind } => Ok((location, kind)),
        other => Err(other),
    }
}

fn load(dir: &Path, opts: &Options, found: &Discovered, writable: bool) -> Result<LoadedLog> {
    let interval = opts.index_interval_bytes as usize;
    let bases = &found.bases;
    let mut out = LoadedLog { sealed: Vec::new(), active: None, damage: None, scanned_bytes: 0 };
    for (i, &base) in bases.iter().enumerate() {
        let is_last = i + 1 == bases.len();
        if is_last {
            match open_candidate(dir, base, writable) {
                Ok(c) => out.active = Some(c),
                Err(e) => {
                    let (location, kind) = as_damage(e)?;
                    out.damage = Some(SealedDamage { at: i, location, kind, prefix: None, first_lost: None });
                }
            }
            break;
        }
        let want = bases[i + 1];
        let (id, file, file_len, _) = match segment::open_data_file(dir, base, false) {
            Ok(x) => x,
            Err(e) => {
                let (location, kind) = as_damage(e)?;
                out.damage = Some(SealedDamage { at: i, location, kind, prefix: None, first_lost: None });
                break;
            }
        };
        let map_len = map_len_of(file_len);
        // A segment with a valid sealed index that ends where the next begins needs no scan.
        let mut recorded_end = id.sparse.map(|s| s.next_offset);
        if let Some((sidx, info)) = segment::open_sealed_index(&id, file_len) {
            if info.next_offset == want {
                out.sealed.push(Loaded::Sealed { id, file, map_len, sidx, info });
                continue;
            }
            recorded_end = Some(info.next_offset);
        }
        // No usable index: validate the segment whole (its index is rebuilt at apply).
        let map = SegmentMap::map_ro(&file, map_len, 0).at(&id.paths.data)?;
        let mut end = ScanState::at_start(base);
        let mut entries = Vec::new();
        let stop = segment::scan_frames(&map, base, &mut end, interval, &mut entries, None);
        out.scanned_bytes += end.pos as u64;
        if end.next_offset != want {
            let first_lost = match &stop {
                _ if end.next_offset > want => None,
                ScanStop::Invalid { bad_pos, bad_offset, .. } => Some((*bad_offset, *bad_pos + 8)),
                ScanStop::End => Some((end.next_offset, end.pos)),
            };
            let (location, kind) = if end.next_offset > want {
                let at = Location::File { path: id.paths.data.clone(), position: end.pos as u64 };
                (at, CorruptionKind::BadField("segment overlaps the next"))
            } else {
                match stop {
                    ScanStop::Invalid { bad_pos, kind, .. } => {
                        (Location::File { path: id.paths.data.clone(), position: bad_pos as u64 }, kind)
                    }
                    // The file's records end before the end its sealed index or header
                    // records: they are missing from this file, where they should be.
                    ScanStop::End if recorded_end.is_some_and(|e| e > end.next_offset) => (
                        Location::File { path: id.paths.data.clone(), position: end.pos as u64 },
                        CorruptionKind::MissingData,
                    ),
                    // The file ends where it says it does, but the next segment starts later:
                    // the records in between are in no file.
                    ScanStop::End => {
                        (Location::Log { dir: dir.to_path_buf(), offset: end.next_offset }, CorruptionKind::MissingData)
                    }
                }
            };
            let prefix = ActiveCandidate { id, file, file_len, capacity: file_len, map };
            out.damage = Some(SealedDamage { at: i, location, kind, prefix: Some(prefix), first_lost });
            break;
        }
        out.sealed.push(Loaded::Scanned { id, file, map_len, map, entries, end });
    }
    // Every segment the checkpoint vouches for must be there: one named by the checkpoint
    // beyond the last segment means segments at the end are missing. What is there stays
    // readable up to them.
    if out.damage.is_none() {
        if let Some(c) = found.ckpt.valid() {
            if bases.last().is_none_or(|&l| c.segment_base > l) {
                let location = Location::Log { dir: dir.to_path_buf(), offset: c.segment_base };
                let prefix = out.active.take();
                out.damage = Some(SealedDamage {
                    at: bases.len(),
                    location,
                    kind: CorruptionKind::MissingData,
                    prefix,
                    first_lost: None,
                });
            }
        }
    }
    Ok(out)
}

// ---- stage 4: examine the tail ---------------------------------------------------------------

/// What examining the active segment found.
struct Tail {
    /// Where valid, whole batches end, and the index entries up to there.
    end: ScanState,
    entries: Vec<IndexEntry>,
    finding: Finding,
    /// The damage (file and byte), for `DamagedTail`.
    damage: Option<(Location, CorruptionKind)>,
    /// Bytes to zero for a torn tail, or to set aside for a salvage: `[from, to)`.
    cut: Option<(usize, usize)>,
    /// The checkpoint vouched for the whole valid prefix, as a clean close leaves it.
    trusted_to_end: bool,
    scanned_bytes: u64,
}

fn examine_tail(
    c: &ActiveCandidate,
    ckpt: Option<Checkpoint>,
    opts: &Options,
    clean_or_new: bool,
    writable: bool,
) -> Tail {
    let interval = opts.index_interval_bytes as usize;
    let base = c.id.base_offset;
    let map = &c.map;
    let path = &c.id.paths.data;
    let damage_at = |pos: usize, kind| Some((Location::File { path: path.clone(), position: pos as u64 }, kind));
    let mut tail = Tail {
        end: ScanState::at_start(base),
        entries: Vec::new(),
        finding: Finding::Intact,
        damage: None,
        cut: None,
        trusted_to_end: false,
        scanned_bytes: 0,
    };
    let vouching = ckpt.filter(|c| c.segment_base == base);
    if let Some(v) = vouching.filter(|v| v.position > c.file_len) {
        // The file was cut short below the durable point: acknowledged records are gone. That
        // is damage, never a torn tail. Salvage validates the file from its start and cuts at
        // the last intact batch.
        tail.finding = Finding::DamagedTail;
        tail.damage = damage_at(v.position.min(c.file_len) as usize, CorruptionKind::MissingData);
        let stop = segment::scan_frames(map, base, &mut tail.end, interval, &mut tail.entries, None);
        tail.scanned_bytes = tail.end.pos as u64;
        let from = match stop {
            ScanStop::Invalid { pos, .. } => pos,
            ScanStop::End => tail.end.pos,
        };
        tail.cut = Some((from, segment::nonzero_end(map, &c.file, from).max(from)));
        return tail;
    }
    let trusted = vouching.filter(|v| {
        v.position >= SEGMENT_HEADER_LEN as u64
            && v.position <= c.file_len
            && v.position <= map.len() as u64
            && v.position % 8 == 0
            && v.next_offset >= base
    });
    if let Some(v) = trusted {
        let entries = segment::read_active_index(&c.id.paths, base, v.position as usize);
        let from = entries.last().map_or(ScanState::at_start(base), |e| ScanState {
            pos: e.pos as usize,
            next_offset: base + e.rel as u64,
            last_ts: e.ts,
            since_entry: 0,
        });
        // The checkpoint vouches for records up to its position. Check the last stretch of
        // them (at most one index interval) before trusting it: a checkpoint newer than its
        // segment (a restored backup, a lost write) must not make zeros pass for records.
        let vouched = |st: &ScanState| st.pos == v.position as usize && st.next_offset == v.next_offset;
        let mut chk = from;
        segment::scan_frames(map, base, &mut chk, interval, &mut Vec::new(), Some(v.position as usize));
        if vouched(&chk) {
            tail.end = ScanState {
                pos: chk.pos,
                next_offset: chk.next_offset,
                last_ts: chk.last_ts.max(v.last_timestamp_us),
                since_entry: v.position as usize - from.pos,
            };
            tail.entries = entries;
        } else {
            // The index entry may be what is wrong (derived data, never fatal): validate from
            // the segment start before calling it damage.
            let mut full = ScanState::at_start(base);
            let mut rebuilt = Vec::new();
            let stop = segment::scan_frames(map, base, &mut full, interval, &mut rebuilt, Some(v.position as usize));
            tail.scanned_bytes += full.pos as u64;
            if !vouched(&full) {
                let (at, kind, cut_from) = match stop {
                    ScanStop::Invalid { bad_pos, kind, pos, .. } => (bad_pos, kind, pos),
                    ScanStop::End => (full.pos, CorruptionKind::MissingData, full.pos),
                };
                tail.finding = Finding::DamagedTail;
                tail.damage = damage_at(at, kind);
                tail.end = full;
                tail.entries = rebuilt;
                tail.cut = Some((cut_from, segment::nonzero_end(map, &c.file, cut_from).max(cut_from)));
                return tail;
            }
            tail.end = full;
            tail.entries = rebuilt;
        }
    }
    let start_pos = tail.end.pos;
    let stop = segment::scan_frames(map, base, &mut tail.end, interval, &mut tail.entries, None);
    tail.scanned_bytes += (tail.end.pos - start_pos) as u64;
    tail.trusted_to_end = trusted.is_some_and(|v| v.position as usize == tail.end.pos) && tail.scanned_bytes == 0;
    match stop {
        ScanStop::End => {
            if !clean_or_new && writable {
                // After power loss, pages past the end may hold garbage written out of order;
                // they were never acknowledged as durable.
                let nz = segment::nonzero_end(map, &c.file, tail.end.pos);
                if nz > tail.end.pos {
                    tail.finding = Finding::TornTail;
                    tail.cut = Some((tail.end.pos, nz));
                }
            }
        }
        ScanStop::Invalid { pos, kind, bad_pos, bad_offset } => {
            // Past the last whole batch: torn, unless something proves the bytes were durable.
            // The checkpoint vouches for offsets before its `next_offset`; a valid frame after
            // the damage carries the durable point known when it was written.
            let ckpt_durable = ckpt.map_or(0, |c| c.next_offset);
            let later_durable = segment::durable_mark_after(map, &c.file, bad_pos + 8, bad_offset);
            let durable = ckpt_durable.max(later_durable.unwrap_or(0));
            let cut = (pos, segment::nonzero_end(map, &c.file, pos).max(pos));
            tail.cut = Some(cut);
            if bad_offset < durable {
                tail.finding = Finding::DamagedTail;
                tail.damage = damage_at(bad_pos, kind);
            } else {
                tail.finding = Finding::TornTail;
            }
        }
    }
    tail
}

// ---- stage 6: apply --------------------------------------------------------------------------

/// A name beside the log, not yet taken, for files set aside by a salvage.
fn salvage_name(dir: &Path, stem: &str) -> PathBuf {
    let mut p = dir.join(format!("{stem}.bin"));
    let mut n = 1;
    while p.exists() {
        p = dir.join(format!("{stem}-{n}.bin"));
        n += 1;
    }
    p
}

/// Move a segment's data file aside (renamed `salvaged-{base}.bin`, kept for the operator) and
/// remove its index files (derived data).
fn set_aside(dir: &Path, base: u64) -> Result<PathBuf> {
    let paths = SegmentPaths::new(dir, base);
    let kept = salvage_name(dir, &format!("salvaged-{base:020}"));
    if paths.data.exists() {
        storage::rename(&paths.data, &kept)?;
    }
    segment::remove_segment_files(&paths)?;
    Ok(kept)
}

impl Log {
    /// Open the log in `dir` for writing, creating the directory and an empty log if missing.
    /// Runs recovery after an unclean shutdown. Fails with [`Error::Locked`] if another writer
    /// (in this process or another) has it open.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Log> {
        Log::open_impl(dir.as_ref(), opts, false)
    }

    /// Open an existing log read-only. Any number of read-only handles may be open at the
    /// same time as a writer, in this process or another; they see new records as the writer
    /// commits them (see [`Log::refresh`] and [`Log::wait_for`]).
    pub fn open_read_only(dir: impl AsRef<Path>, opts: Options) -> Result<Log> {
        Log::open_impl(dir.as_ref(), opts, true)
    }

    fn open_impl(dir: &Path, opts: Options, read_only: bool) -> Result<Log> {
        opts.validate()?;
        // 1. prepare
        prepare_dir(dir, read_only)?;
        let lock = if read_only { None } else { Some(DirLock::acquire(dir)?) };
        // 0. A log whose writer was poisoned by a failed flush is first cut back to the last
        // point a flush made durable (see `log::rewind`).
        if !read_only && poison::durable_limit(dir).is_some() {
            let mut bases = discover(dir)?.bases;
            rewind::to_durable_limit(dir, &mut bases)?;
        }
        // 2. discover
        let found = discover(dir)?;
        let removed = stream::load_removed_streams(dir)?;
        let ckpt = found.ckpt.valid();
        let mut report = OpenReport {
            clean_shutdown: ckpt.is_some_and(|c| c.clean),
            checkpoint_unreadable: found.ckpt == CheckpointState::Unreadable,
            ..OpenReport::default()
        };
        if found.bases.is_empty() {
            if read_only {
                return Err(Error::NotFound { path: dir.to_path_buf() });
            }
            if let Some(c) = ckpt {
                // A checkpoint vouches for records but no segment holds them.
                let action = decide(opts.recovery, Finding::DamagedSealed, false);
                let location = Location::Log { dir: dir.to_path_buf(), offset: c.segment_base };
                return match action {
                    Action::Salvage => {
                        // Start again after everything the checkpoint vouched for, so that no
                        // offset it vouched for is ever reused.
                        report.missing = Some(location);
                        Opened::empty(read_only, lock, report, Some(c.next_offset), &found).into_log(dir, opts, removed)
                    }
                    Action::ReadOnly => {
                        report.missing = Some(location);
                        Opened::empty(true, lock, report, None, &found).into_log(dir, opts, removed)
                    }
                    _ => Err(Error::Corruption { location, kind: CorruptionKind::MissingData }),
                };
            }
            // A new log.
            return Opened::empty(read_only, lock, report, Some(0), &found).into_log(dir, opts, removed);
        }
        // 3. load
        let loaded = load(dir, &opts, &found, !read_only)?;
        report.scanned_bytes += loaded.scanned_bytes;
        let LoadedLog { sealed, active, damage, .. } = loaded;

        // 5. decide, for damage before the active segment.
        let mut read_only = read_only;
        let mut candidate = active;
        let mut forced_tail_damage: Option<(Location, CorruptionKind)> = None;
        let mut set_aside_from: Option<usize> = None;
        let mut fresh_active_at: Option<u64> = None;
        let mut remove_from: Option<usize> = None;
        let torn = damage.as_ref().is_some_and(|d| sealed_damage_is_torn(dir, d, ckpt, &found.bases));
        if let (Some(d), true) = (damage.as_ref(), torn) {
            // Damage past the durable point in a segment before the last: with
            // `Durability::None` a roll makes the next segment durable before the full one's
            // data, so a power loss can tear it. Nothing durable lies past the damage: a torn
            // tail like any other, and the segments after it held only records never made
            // durable.
            if decide(opts.recovery, Finding::TornTail, read_only) == Action::RepairTail {
                remove_from = Some(d.at + 1);
                candidate = Some(open_candidate(dir, found.bases[d.at], true)?);
            }
        }
        if torn {
            if let Some(d) = damage.filter(|_| read_only) {
                candidate = d.prefix;
            }
        } else if let Some(d) = damage {
            match decide(opts.recovery, Finding::DamagedSealed, read_only) {
                Action::Fail | Action::Proceed | Action::RepairTail => {
                    return Err(Error::Corruption { location: d.location, kind: d.kind });
                }
                Action::ReadOnly => {
                    read_only = true;
                    record_damage(&mut report, &d.location);
                    // The damaged segment's valid prefix stays readable; later ones are not
                    // part of the log.
                    candidate = d.prefix;
                    forced_tail_damage = candidate.as_ref().map(|_| (d.location.clone(), d.kind.clone()));
                }
                Action::Salvage => {
                    record_damage(&mut report, &d.location);
                    // Later segments are set aside; the damaged one becomes the active
                    // segment, cut at its damage (or, with an unreadable header, is set aside
                    // too and a new active segment starts at its base).
                    match d.prefix {
                        Some(p) => {
                            set_aside_from = Some(d.at + 1);
                            // Reopen the damaged segment writable: it becomes the active one.
                            candidate = Some(open_candidate(dir, p.id.base_offset, true)?);
                            forced_tail_damage = Some((d.location.clone(), d.kind.clone()));
                        }
                        None => {
                            set_aside_from = Some(d.at);
                            let base = found.bases.get(d.at).copied();
                            fresh_active_at = base.or_else(|| sealed.last().map(Loaded::next_offset));
                            candidate = None;
                        }
                    }
                }
            }
        }

        // 4. examine the tail
        let clean_or_new = report.clean_shutdown;
        let mut tail = candidate.as_ref().map(|c| {
            let t = examine_tail(c, ckpt, &opts, clean_or_new, !read_only);
            report.scanned_bytes += t.scanned_bytes;
            t
        });
        if let (Some(t), Some((location, kind))) = (tail.as_mut(), forced_tail_damage) {
            // The damage found while loading lies in this segment: its valid prefix ends it.
            t.finding = Finding::DamagedTail;
            if t.damage.is_none() {
                t.damage = Some((location, kind));
            }
            if t.cut.is_none() {
                let from = t.end.pos;
                let c = candidate.as_ref().map(|c| segment::nonzero_end(&c.map, &c.file, from)).unwrap_or(from);
                t.cut = Some((from, c.max(from)));
            }
        }
        // 5. decide, for the tail
        let mut salvage_tail = false;
        if let Some(t) = tail.as_mut() {
            match decide(opts.recovery, t.finding, read_only) {
                Action::Proceed => t.cut = None,
                Action::RepairTail => {}
                Action::Fail => {
                    let (location, kind) = t.damage.clone().unwrap_or_else(|| {
                        (
                            Location::Log { dir: dir.to_path_buf(), offset: t.end.next_offset },
                            CorruptionKind::MissingData,
                        )
                    });
                    return Err(Error::Corruption { location, kind });
                }
                Action::ReadOnly => {
                    read_only = true;
                    if let Some((l, _)) = &t.damage {
                        record_damage(&mut report, l);
                    }
                    t.cut = None;
                }
                Action::Salvage => {
                    if let Some((l, _)) = &t.damage {
                        record_damage(&mut report, l);
                    }
                    salvage_tail = true;
                }
            }
        }

        // 6. apply
        if !read_only {
            for tmp in &found.tmp_files {
                // Files tidelog replaced atomically whose rename never happened: garbage from
                // a crash.
                let _ = fs::remove_file(tmp);
            }
            if let Some(from) = remove_from {
                for &base in found.bases[from.min(found.bases.len())..].iter().rev() {
                    let paths = SegmentPaths::new(dir, base);
                    report.torn_bytes_zeroed += fs::metadata(&paths.data).map_or(0, |m| m.len());
                    segment::remove_segment_files(&paths)?;
                }
                fsutil::fsync_dir(dir)?;
            }
            if let Some(from) = set_aside_from {
                for &base in &found.bases[from.min(found.bases.len())..] {
                    let kept = set_aside(dir, base)?;
                    report.salvaged.get_or_insert(kept);
                }
                fsutil::fsync_dir(dir)?;
            }
        }
        let mut segs: Vec<Arc<Segment>> = Vec::with_capacity(sealed.len() + 1);
        let mut last_ts = ckpt.map_or(0, |c| c.last_timestamp_us);
        let mut rebuilt_index = false;
        for s in sealed {
            match s {
                Loaded::Sealed { id, file, map_len, sidx, info } => {
                    last_ts = last_ts.max(info.max_ts);
                    segs.push(Arc::new(Segment::sealed(id, &file, map_len, sidx, info)?));
                }
                Loaded::Scanned { id, file, map_len, map, entries, end } => {
                    last_ts = last_ts.max(end.last_ts);
                    report.indexes_rebuilt += 1;
                    if !read_only {
                        let info =
                            SealInfo { end_pos: end.pos as u64, next_offset: end.next_offset, max_ts: end.last_ts };
                        segment::write_sealed_index_files(
                            &id.paths,
                            id.base_offset,
                            opts.index_interval_bytes,
                            &entries,
                            info,
                        )?;
                        rebuilt_index = true;
                        if let Some((sidx, info)) =
                            segment::open_sealed_index(&id, file.metadata().at(&id.paths.data)?.len())
                        {
                            segs.push(Arc::new(Segment::sealed(id, &file, map_len, sidx, info)?));
                            continue;
                        }
                    }
                    segs.push(Arc::new(Segment::in_memory(id, map, entries, end)));
                }
            }
        }
        if rebuilt_index {
            // IMPORTANT: the renames of the rebuilt index files are durable only after this.
            fsutil::fsync_dir(dir)?;
        }
        let mut writer = None;
        let mut follow_state = ScanState::at_start(segs.last().map_or(0, |s| s.next_offset()));
        if let Some(ls) = segs.last() {
            follow_state =
                ScanState { pos: ls.end_pos(), next_offset: ls.next_offset(), last_ts: ls.max_ts(), since_entry: 0 };
        }
        if let (Some(c), Some(t)) = (candidate, tail) {
            last_ts = last_ts.max(t.end.last_ts);
            follow_state = t.end;
            if read_only {
                let map = SegmentMap::map_ro(&c.file, map_len_of(c.file_len), 0).at(&c.id.paths.data)?;
                segs.push(Arc::new(Segment::in_memory(c.id, map, t.entries, t.end)));
            } else {
                let (seg, w) = activate(dir, &opts, c, t, salvage_tail, last_ts, &mut report)?;
                segs.push(seg);
                writer = Some(w);
            }
        }
        let fresh = if read_only || writer.is_some() {
            None
        } else {
            // No active segment: the last one was sealed (a crash between sealing it and
            // creating its successor), or a salvage set the damaged ones aside.
            Some(fresh_active_at.unwrap_or_else(|| segs.last().map_or(0, |s| s.next_offset())))
        };
        Opened { read_only, lock, report, segs, writer, fresh_at: fresh, follow_state, last_ts }
            .into_log(dir, opts, removed)
    }
}

/// True if the records a damaged segment before the last lost were never made durable: the
/// checkpoint does not vouch for them, and no valid frame after the damage (in that segment
/// or a later one) carries a durable mark past them.
fn sealed_damage_is_torn(dir: &Path, d: &SealedDamage, ckpt: Option<Checkpoint>, bases: &[u64]) -> bool {
    let (Some((lost, search_from)), Some(prefix)) = (d.first_lost, d.prefix.as_ref()) else { return false };
    let mut durable = ckpt.map_or(0, |c| c.next_offset);
    if lost < durable {
        return false;
    }
    if let Some(m) = segment::durable_mark_after(&prefix.map, &prefix.file, search_from, lost) {
        durable = durable.max(m);
    }
    for &base in &bases[(d.at + 1).min(bases.len())..] {
        match open_candidate(dir, base, false) {
            Ok(c) => {
                if let Some(m) = segment::durable_mark_after(&c.map, &c.file, SEGMENT_HEADER_LEN, 0) {
                    durable = durable.max(m);
                }
            }
            // A later segment that cannot be read proves nothing either way; be safe.
            Err(_) => return false,
        }
    }
    lost >= durable
}

/// Keep the first damage found in the report.
fn record_damage(report: &mut OpenReport, location: &Location) {
    match location {
        Location::File { path, position } => {
            report.damage.get_or_insert((path.clone(), *position));
        }
        Location::Log { .. } => {
            report.missing.get_or_insert(location.clone());
        }
    }
}

/// Make the examined last segment the writer's active segment: restore its reservation, map
/// it writable, zero a torn tail (or set a salvaged one aside), and make what was validated
/// durable before any checkpoint claims it.
fn activate(
    dir: &Path,
    opts: &Options,
    c: ActiveCandidate,
    t: Tail,
    salvage: bool,
    last_ts: u64,
    report: &mut OpenReport,
) -> Result<(Arc<Segment>, Writer)> {
    let path = c.id.paths.data.clone();
    let capacity = c.capacity.max(c.file_len).min(MAX_SEGMENT_BYTES);
    if c.file_len < capacity {
        // Only a damaged file is shorter than its reservation; restore the reservation.
        storage::fallocate(&c.file, &path, capacity)?;
    }
    let cap = capacity as usize;
    let (map, mut mw) = SegmentMap::map_rw(&c.file, cap, 0).at(&path)?;
    let base = c.id.base_offset;
    if let Some((from, to)) = t.cut {
        if salvage && to > from {
            // Cut at the damaged batch, but keep the bytes cut away (valid records among
            // them) in a file beside the log.
            let kept = salvage_name(dir, &format!("salvaged-{base:020}-{from}"));
            if let Some(bytes) = map.follower_bytes(from, to) {
                fsutil::atomic_write(&kept, bytes)?;
            }
            report.salvaged = Some(kept);
        }
        if to > from {
            if let Some(bytes) = mw.unpublished_mut(from, to) {
                bytes.fill(0);
            }
            storage::msync(&map, &path, from, to)?;
            if !salvage {
                report.torn_bytes_zeroed += (to - from) as u64;
            }
        }
    }
    // Exactly as a clean close left it: nothing to flush or rewrite, and the clean mark is
    // cleared at the first write rather than now, so that an open that writes nothing costs
    // no fsync.
    let as_closed = report.clean_shutdown
        && t.trusted_to_end
        && t.cut.is_none()
        && report.damage.is_none()
        && report.missing.is_none()
        && report.indexes_rebuilt == 0;
    if !as_closed {
        // Everything validated is made durable before the checkpoint claims it.
        storage::msync(&map, &path, SEGMENT_HEADER_LEN, t.end.pos)?;
        segment::write_active_index_files(&c.id.paths, base, opts.index_interval_bytes, &t.entries)?;
    }
    mw.publish(t.end.pos);
    let persisted = t.entries.len();
    let end = t.end;
    let seg = Arc::new(Segment::in_memory(c.id, map, t.entries, end));
    let writer = Writer {
        seg: seg.clone(),
        mw,
        capacity: cap,
        pos: end.pos,
        next_offset: end.next_offset,
        last_ts,
        since_entry: end.since_entry,
        synced_pos: end.pos,
        index_persisted: persisted,
        must_roll: false,
        clean_mark_on_disk: as_closed,
        unsealed: None,
        last_mark: 0,
    };
    Ok((seg, writer))
}

/// What the stages decided, from which the handle is built.
struct Opened {
    read_only: bool,
    lock: Option<DirLock>,
    report: OpenReport,
    segs: Vec<Arc<Segment>>,
    writer: Option<Writer>,
    /// Create the active segment at this offset (the log has none).
    fresh_at: Option<u64>,
    follow_state: ScanState,
    last_ts: u64,
}

impl Opened {
    /// A log without segments: a new one (`fresh_at` its first offset), or one whose
    /// segments are all missing (opened read-only, or salvaged from the checkpoint's end).
    fn empty(
        read_only: bool,
        lock: Option<DirLock>,
        report: OpenReport,
        fresh_at: Option<u64>,
        found: &Discovered,
    ) -> Opened {
        if !read_only {
            for tmp in &found.tmp_files {
                let _ = fs::remove_file(tmp);
            }
        }
        Opened {
            read_only,
            lock,
            report,
            segs: Vec::new(),
            writer: None,
            fresh_at: fresh_at.filter(|_| !read_only),
            follow_state: ScanState::at_start(fresh_at.unwrap_or(0)),
            last_ts: 0,
        }
    }

    /// Build the handle; create the active segment if there is none; record the recovered
    /// durable point in the checkpoint before anything new can be written.
    fn into_log(self, dir: &Path, opts: Options, removed: RemovedStreams) -> Result<Log> {
        let Opened { read_only, lock, report, segs, writer, fresh_at, follow_state, last_ts } = self;
        let next_offset = segs.last().map_or(fresh_at.unwrap_or(0), |s| s.next_offset());
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            opts: opts.clone(),
            read_only,
            segments: parking_lot::RwLock::new(Arc::new(segs)),
            next_offset: AtomicU64::new(next_offset),
            durable: AtomicU64::new(next_offset),
            writer: Mutex::new(writer),
            sync: Mutex::new(SyncState { durable: next_offset, flushing: false, flushed: None }),
            sync_cv: Condvar::new(),
            poison: Poison::new(dir),
            closed: AtomicBool::new(false),
            tail_lock: Mutex::new(()),
            tail_cv: Condvar::new(),
            tail_waiters: AtomicUsize::new(0),
            ckpt: Mutex::new(CkptState {
                last: (0, 0),
                written: false,
                last_clean: false,
                sequence: None,
                at: Instant::now(),
            }),
            flusher_stop: Arc::new((Mutex::new(false), Condvar::new())),
            follower: Mutex::new(Follower { st: follow_state }),
            versions: Mutex::new(VersionCache::default()),
            removed: parking_lot::RwLock::new(Arc::new(removed)),
            report,
            lock: Mutex::new(lock),
        });
        let log = Log { inner };
        if let Some(base) = fresh_at {
            log.inner.create_active_at(base, last_ts)?;
        }
        if !log.inner.read_only {
            let w = log.inner.writer.lock();
            if let Some(w) = w.as_ref().filter(|w| !w.clean_mark_on_disk) {
                log.inner.write_checkpoint(w.checkpoint(false))?;
            }
            drop(w);
            if let Durability::Interval(every) = opts.durability {
                spawn_flusher(Arc::downgrade(&log.inner), log.inner.flusher_stop.clone(), every);
            }
        }
        Ok(log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every cell of the decision table, written out: a change to the policy must change this
    /// test too.
    #[test]
    fn the_recovery_decision_table() {
        use Action::{Fail, Proceed, ReadOnly, RepairTail};
        use Finding::*;
        let modes = [RecoveryMode::TruncateTornTail, RecoveryMode::ReadOnlyUpToDamage, RecoveryMode::Salvage];
        let salvage = Action::Salvage;
        let table: [(Finding, [Action; 3], [Action; 3]); 4] = [
            // finding        writer: default, read-only-up-to-damage, salvage   read-only handle
            (Intact, [Proceed, Proceed, Proceed], [Proceed, Proceed, Proceed]),
            (TornTail, [RepairTail, RepairTail, RepairTail], [Proceed, Proceed, Proceed]),
            (DamagedTail, [Fail, ReadOnly, salvage], [Fail, ReadOnly, ReadOnly]),
            (DamagedSealed, [Fail, ReadOnly, salvage], [Fail, ReadOnly, ReadOnly]),
        ];
        for (finding, writer, reader) in table {
            for (i, mode) in modes.iter().enumerate() {
                assert_eq!(decide(*mode, finding, false), writer[i], "writer, {mode:?}, {finding:?}");
                assert_eq!(decide(*mode, finding, true), reader[i], "read-only, {mode:?}, {finding:?}");
            }
        }
    }

    #[test]
    fn only_tidelogs_own_temporary_names_are_removed() {
        for own in [
            "checkpoint.tmp",
            "00000000000000000042.log.tmp",
            "00000000000000000000.index.tmp",
            "00000000000000000007.timeindex.tmp",
            "00000000000000000007.keyindex.tmp",
            "removed-streams.tmp",
        ] {
            assert!(is_own_tmp(own), "{own}");
        }
        for other in [
            "notes.tmp",
            "checkpoint",
            "42.log.tmp",
            "0000000000000000004x.log.tmp",
            ".tmp",
            "my.index.tmp",
            "00000000000000000042.log",
        ] {
            assert!(!is_own_tmp(other), "{other}");
        }
    }
}

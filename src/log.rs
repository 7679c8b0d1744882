//! The log: opening and recovery, the single writer, durability and group commit, readers.
//!
//! Data flow (see `docs/architecture.md`): an appender takes the writer mutex, frames its
//! records straight into the active segment's map, publishes the new end (segment map end,
//! then segment offset end, then the log's next offset, each a `Release` store) and releases
//! the mutex. Readers load the log's next offset with `Acquire` and never read past it.
//! In `Always` mode the appender then waits for the durable offset to pass its records; the
//! first waiter that finds no flush in progress flushes for everyone (group commit).

use std::fs::{self, File, OpenOptions};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::error::{CorruptionKind, Error, IoContext, Result};
use crate::format::{align_up, Checkpoint, INDEX_HEADER_LEN, OFFSET_ENTRY_LEN, SEGMENT_HEADER_LEN, TIME_ENTRY_LEN};
use crate::fsutil::{self, DirLock};
use crate::mmap::{MapWriter, SegmentMap};
use crate::options::{Durability, Options, RecoveryMode, MAX_SEGMENT_BYTES};
use crate::record::{OwnedRecord, Record, RecordView};
use crate::segment::{self, ActiveIndex, IndexEntry, ScanState, ScanStop, SealInfo, SegIndex, Segment, SegmentPaths};

/// How often, at most, a flush also writes a checkpoint (bounding the scan after a crash).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
const CHECKPOINT_FILE: &str = "checkpoint";

/// A handle to an open log. Cheap to clone (an `Arc`), `Send + Sync`.
///
/// See the crate documentation for an example.
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

/// What opening found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenReport {
    /// The previous writer closed the log cleanly.
    pub clean_shutdown: bool,
    /// Bytes of records validated during recovery (0 after a clean shutdown).
    pub scanned_bytes: u64,
    /// Bytes of a torn tail that were zeroed.
    pub torn_bytes_zeroed: u64,
    /// Segments whose index files were missing or damaged and were rebuilt.
    pub indexes_rebuilt: u32,
    /// Damage that was not a torn tail, when the log opened anyway
    /// (`RecoveryMode::ReadOnlyUpToDamage` or `RecoveryMode::Salvage`): file and byte position.
    pub damage: Option<(PathBuf, u64)>,
    /// With `RecoveryMode::Salvage`: the file beside the log holding the bytes that were cut
    /// away from the damaged segment (from the damaged batch to the last non-zero byte).
    pub salvaged: Option<PathBuf>,
}

/// Facts about one segment, for inspection tools.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// Offset of the segment's first record.
    pub base_offset: u64,
    /// One past the segment's last record.
    pub next_offset: u64,
    /// Bytes used (segment header and records).
    pub bytes: u64,
    /// Bytes reserved on disk.
    pub capacity: u64,
    /// Timestamp of the first record (0 if empty).
    pub min_timestamp_us: u64,
    /// Timestamp of the last record (0 if empty).
    pub max_timestamp_us: u64,
    /// Sealed (immutable) or the active segment.
    pub sealed: bool,
    /// Path of the data file.
    pub path: PathBuf,
}

/// One damaged place found by [`Log::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Damage {
    /// The damaged data file.
    pub file: PathBuf,
    /// Byte position of the first invalid frame.
    pub position: u64,
    /// Offset the log expected there.
    pub offset: u64,
    /// What is wrong.
    pub kind: CorruptionKind,
}

/// Result of a full checksum scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Segments scanned.
    pub segments: u64,
    /// Records that validated.
    pub records: u64,
    /// Bytes of records scanned.
    pub bytes: u64,
    /// Damaged places, in log order. Empty means the log is intact.
    pub damage: Vec<Damage>,
}

struct Writer {
    seg: Arc<Segment>,
    mw: MapWriter,
    capacity: usize,
    pos: usize,
    next_offset: u64,
    last_ts: u64,
    since_entry: usize,
    synced_pos: usize,
    index_files: Arc<(File, File)>,
    index_persisted: usize,
    /// A roll failed after the active segment's index was sealed: no more records may go into
    /// it, every append must roll first.
    must_roll: bool,
    /// The checkpoint on disk still carries the previous writer's clean-shutdown mark (this
    /// open found the log exactly as a clean close left it). Cleared before the first write.
    clean_mark_on_disk: bool,
    /// With `Durability::None`, the previous segment, full but not yet sealed (see `roll`).
    unsealed: Option<Unsealed>,
}

impl Writer {
    /// A checkpoint at the current write position.
    fn checkpoint(&self, clean: bool) -> Checkpoint {
        Checkpoint {
            clean,
            segment_base: self.seg.base_offset,
            position: self.pos as u64,
            next_offset: self.next_offset,
            last_timestamp_us: self.last_ts,
        }
    }
}

/// A full segment whose seal (flush of its data, then its sealed index) is still to do.
struct Unsealed {
    seg: Arc<Segment>,
    synced_pos: usize,
    end_pos: usize,
    next_offset: u64,
    last_ts: u64,
}

#[derive(Default)]
struct SyncState {
    durable: u64,
    flushing: bool,
}

struct CkptState {
    last: (u64, u64),
    at: Instant,
}

struct Follower {
    st: ScanState,
}

struct Inner {
    dir: PathBuf,
    opts: Options,
    read_only: bool,
    segments: RwLock<Arc<Vec<Arc<Segment>>>>,
    next_offset: AtomicU64,
    writer: Mutex<Option<Writer>>,
    sync: Mutex<SyncState>,
    sync_cv: Condvar,
    poisoned: AtomicBool,
    closed: AtomicBool,
    tail_lock: Mutex<()>,
    tail_cv: Condvar,
    tail_waiters: AtomicUsize,
    ckpt: Mutex<CkptState>,
    flusher_stop: Arc<(Mutex<bool>, Condvar)>,
    follower: Mutex<Follower>,
    report: OpenReport,
    lock: Mutex<Option<DirLock>>,
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

fn read_checkpoint(dir: &Path) -> Option<Checkpoint> {
    fs::read(dir.join(CHECKPOINT_FILE)).ok().and_then(|b| Checkpoint::decode(&b))
}

fn list_segments(dir: &Path, remove_tmp: bool) -> Result<Vec<u64>> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = segment::parse_segment_name(name) {
            bases.push(base);
        } else if remove_tmp && name.ends_with(".tmp") {
            // A file replaced atomically that never got renamed: garbage from a crash.
            let _ = fs::remove_file(entry.path());
        }
    }
    bases.sort_unstable();
    Ok(bases)
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
        match fs::metadata(dir) {
            Ok(m) if !m.is_dir() => return Err(Error::NotADirectory { path: dir.to_path_buf() }),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if read_only {
                    return Err(Error::NotFound { path: dir.to_path_buf() });
                }
                fs::create_dir_all(dir).at(dir)?;
                if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                    fsutil::fsync_dir(parent)?;
                }
            }
            Err(e) => return Err(Error::io(dir, e)),
        }
        let lock = if read_only { None } else { Some(DirLock::acquire(dir)?) };
        let mut bases = list_segments(dir, !read_only)?;
        let mut created = false;
        if bases.is_empty() {
            if read_only {
                return Err(Error::NotFound { path: dir.to_path_buf() });
            }
            segment::create_segment_file(dir, 0, now_us(), opts.segment_bytes)?;
            bases.push(0);
            created = true;
        }
        let ckpt = read_checkpoint(dir);
        let mut report = OpenReport { clean_shutdown: ckpt.is_some_and(|c| c.clean), ..OpenReport::default() };
        // A log this open just created has nothing past its end to check.
        let nothing_stray = report.clean_shutdown || created;
        let mut read_only = read_only;
        let mut segs: Vec<Arc<Segment>> = Vec::with_capacity(bases.len());
        let mut writer: Option<Writer> = None;
        let mut follow_state = ScanState::at_start(0);
        let mut last_ts = ckpt.map_or(0, |c| c.last_timestamp_us);
        let interval = opts.index_interval_bytes as usize;

        for (i, &base) in bases.iter().enumerate() {
            let paths = SegmentPaths::new(dir, base);
            let is_last = i + 1 == bases.len();
            let mut file =
                OpenOptions::new().read(true).write(!read_only && is_last).open(&paths.data).at(&paths.data)?;
            let (hdr, file_len) = segment::read_segment_header(&mut file, &paths.data)?;
            if hdr.base_offset != base {
                return Err(Error::corrupt(
                    &paths.data,
                    crate::format::SEG_BASE_AT as u64,
                    CorruptionKind::BadField("base_offset"),
                ));
            }
            let map_len = usize::try_from(file_len.min(MAX_SEGMENT_BYTES)).unwrap_or(usize::MAX);

            // A segment with a valid sealed index needs no scan.
            if let Some((sidx, info)) = segment::open_sealed_index(&paths, base, file_len) {
                let next_ok = bases.get(i + 1).is_none_or(|&nb| nb == info.next_offset);
                if next_ok {
                    let map = SegmentMap::map_ro(&file, map_len, info.end_pos as usize).at(&paths.data)?;
                    last_ts = last_ts.max(info.max_ts);
                    let seg = Segment::new(
                        base,
                        hdr.created_us,
                        paths,
                        map,
                        SegIndex::Sealed(sidx),
                        info.next_offset,
                        info.max_ts,
                    );
                    segs.push(Arc::new(seg));
                    if is_last {
                        follow_state = ScanState {
                            pos: info.end_pos as usize,
                            next_offset: info.next_offset,
                            last_ts: info.max_ts,
                            since_entry: 0,
                        };
                    }
                    continue;
                }
            }

            if !is_last {
                // Sealed segment without a usable index: validate it whole and rebuild.
                let map = SegmentMap::map_ro(&file, map_len, 0).at(&paths.data)?;
                let mut st = ScanState::at_start(base);
                let mut entries = Vec::new();
                let stop = segment::scan(&map, base, &mut st, interval, &mut entries, None);
                report.scanned_bytes += st.pos as u64;
                let want = bases[i + 1];
                if st.next_offset != want {
                    let (pos, kind) = match stop {
                        ScanStop::Invalid { bad_pos, kind, .. } => (bad_pos, kind),
                        ScanStop::End => (st.pos, CorruptionKind::MissingData),
                    };
                    if st.next_offset > want {
                        return Err(Error::corrupt(
                            &paths.data,
                            st.pos as u64,
                            CorruptionKind::BadField("segment overlaps the next"),
                        ));
                    }
                    if opts.recovery != RecoveryMode::TruncateTornTail {
                        read_only = true;
                        report.damage = Some((paths.data.clone(), pos as u64));
                        map.advance_published(st.pos);
                        let seg = Segment::new(
                            base,
                            hdr.created_us,
                            paths,
                            map,
                            SegIndex::Active(RwLock::new(ActiveIndex { entries })),
                            st.next_offset,
                            st.last_ts,
                        );
                        segs.push(Arc::new(seg));
                        break;
                    }
                    return Err(Error::corrupt(&paths.data, pos as u64, kind));
                }
                let info = SealInfo { end_pos: st.pos as u64, next_offset: st.next_offset, max_ts: st.last_ts };
                last_ts = last_ts.max(st.last_ts);
                report.indexes_rebuilt += 1;
                let index = if read_only {
                    SegIndex::Active(RwLock::new(ActiveIndex { entries }))
                } else {
                    segment::write_sealed_index_files(&paths, base, opts.index_interval_bytes, &entries, info)?;
                    fsutil::fsync_dir(dir)?;
                    match segment::open_sealed_index(&paths, base, file_len) {
                        Some((s, _)) => SegIndex::Sealed(s),
                        None => SegIndex::Active(RwLock::new(ActiveIndex { entries })),
                    }
                };
                map.advance_published(st.pos);
                segs.push(Arc::new(Segment::new(base, hdr.created_us, paths, map, index, st.next_offset, st.last_ts)));
                continue;
            }

            // The last segment: the active one. Validate from the last durable point.
            if ckpt.is_some_and(|c| c.segment_base == base && c.position > file_len) {
                // The file was cut short below the durable point: acknowledged records are
                // gone. That is damage, not a torn tail, and is never cut away silently.
                match opts.recovery {
                    RecoveryMode::TruncateTornTail => {
                        return Err(Error::corrupt(&paths.data, file_len, CorruptionKind::MissingData));
                    }
                    RecoveryMode::ReadOnlyUpToDamage => read_only = true,
                    // Salvage: the checkpoint is ignored below and the file validated from
                    // its start; appends continue after the last intact batch.
                    RecoveryMode::Salvage => {}
                }
                report.damage = Some((paths.data.clone(), file_len));
            }
            let capacity = hdr.capacity.max(file_len).min(MAX_SEGMENT_BYTES);
            if !read_only && file_len < capacity {
                // Only a damaged file is shorter than its reservation; restore the reservation.
                fsutil::preallocate(&file, capacity).at(&paths.data)?;
            }
            let cap = if read_only { map_len } else { capacity as usize };
            let trusted = ckpt.filter(|c| {
                c.segment_base == base
                    && c.position >= SEGMENT_HEADER_LEN as u64
                    && c.position <= cap as u64
                    && c.position <= file_len
                    && c.position % 8 == 0
                    && c.next_offset >= base
            });
            let (map, mw) = if read_only {
                (SegmentMap::map_ro(&file, cap, 0).at(&paths.data)?, None)
            } else {
                let (m, w) = SegmentMap::map_rw(&file, cap, 0).at(&paths.data)?;
                (m, Some(w))
            };
            let (mut st, mut entries) = match trusted {
                Some(c) => {
                    let entries = segment::read_active_index(&paths, base, c.position as usize);
                    let from = entries.last().map_or(ScanState::at_start(base), |e| ScanState {
                        pos: e.pos as usize,
                        next_offset: base + e.rel as u64,
                        last_ts: e.ts,
                        since_entry: 0,
                    });
                    // The checkpoint vouches for records up to its position. Check the last
                    // stretch of them (at most one index interval) before trusting it: a
                    // checkpoint newer than its segment (a restored backup, a lost write) must
                    // not make zeros pass for records.
                    let vouched = |st: &ScanState| st.pos == c.position as usize && st.next_offset == c.next_offset;
                    let mut chk = from;
                    let mut scratch = Vec::new();
                    segment::scan(&map, base, &mut chk, interval, &mut scratch, Some(c.position as usize));
                    if vouched(&chk) {
                        let st = ScanState {
                            pos: chk.pos,
                            next_offset: chk.next_offset,
                            last_ts: chk.last_ts.max(c.last_timestamp_us),
                            since_entry: c.position as usize - from.pos,
                        };
                        (st, entries)
                    } else {
                        // The index entry may be what is wrong (derived data, never fatal):
                        // validate from the segment start before calling it damage.
                        let mut full = ScanState::at_start(base);
                        let mut rebuilt = Vec::new();
                        let stop =
                            segment::scan(&map, base, &mut full, interval, &mut rebuilt, Some(c.position as usize));
                        report.scanned_bytes += full.pos as u64;
                        if vouched(&full) {
                            report.indexes_rebuilt += 1;
                            (full, rebuilt)
                        } else {
                            let (at, kind) = match stop {
                                ScanStop::Invalid { bad_pos, kind, .. } => (bad_pos, kind),
                                ScanStop::End => (full.pos, CorruptionKind::MissingData),
                            };
                            match opts.recovery {
                                RecoveryMode::TruncateTornTail => {
                                    return Err(Error::corrupt(&paths.data, at as u64, kind));
                                }
                                RecoveryMode::ReadOnlyUpToDamage => read_only = true,
                                RecoveryMode::Salvage => {}
                            }
                            report.damage = Some((paths.data.clone(), at as u64));
                            (ScanState::at_start(base), Vec::new())
                        }
                    }
                }
                None => (ScanState::at_start(base), Vec::new()),
            };
            let start_pos = st.pos;
            let stop = segment::scan(&map, base, &mut st, interval, &mut entries, None);
            report.scanned_bytes += (st.pos - start_pos) as u64;
            let mut zero_from_to: Option<(usize, usize)> = None;
            if !read_only {
                match stop {
                    ScanStop::End => {
                        if !nothing_stray {
                            // After power loss, pages past the end may hold garbage written
                            // out of order; they were never acknowledged as durable.
                            let nz = segment::nonzero_end(&map, &file, st.pos);
                            if nz > st.pos {
                                zero_from_to = Some((st.pos, nz));
                            }
                        }
                    }
                    ScanStop::Invalid { pos, kind, bad_pos, .. } => {
                        if segment::valid_frame_after(&map, &file, bad_pos + 8, st.next_offset).is_some() {
                            match opts.recovery {
                                RecoveryMode::TruncateTornTail => {
                                    return Err(Error::corrupt(&paths.data, bad_pos as u64, kind));
                                }
                                RecoveryMode::ReadOnlyUpToDamage => {
                                    read_only = true;
                                    report.damage = Some((paths.data.clone(), bad_pos as u64));
                                }
                                RecoveryMode::Salvage => {
                                    // Cut at the damaged batch, but keep the bytes cut away
                                    // (valid records among them) in a file beside the log.
                                    let end = segment::nonzero_end(&map, &file, pos).max(pos);
                                    let kept = dir.join(format!("salvaged-{base:020}-{pos}.bin"));
                                    if let Some(bytes) = map.follower_bytes(pos, end) {
                                        fsutil::atomic_write(&kept, bytes)?;
                                    }
                                    report.damage = Some((paths.data.clone(), bad_pos as u64));
                                    report.salvaged = Some(kept);
                                    zero_from_to = Some((pos, end));
                                }
                            }
                        } else {
                            zero_from_to = Some((pos, segment::nonzero_end(&map, &file, pos).max(pos)));
                        }
                    }
                }
            }
            last_ts = last_ts.max(st.last_ts);
            follow_state = st;
            let mut mw = mw;
            if let (Some((from, to)), Some(w)) = (zero_from_to, mw.as_mut()) {
                if let Some(bytes) = w.unpublished_mut(from, to) {
                    bytes.fill(0);
                }
                map.flush_range(from, to).at(&paths.data)?;
                report.torn_bytes_zeroed += (to - from) as u64;
            }
            match (mw, read_only) {
                (Some(mut w), false) => {
                    // Exactly as a clean close left it: nothing to flush or rewrite, and the
                    // clean mark is cleared at the first write rather than now, so that an open
                    // that writes nothing costs no fsync.
                    let as_closed = report.clean_shutdown
                        && trusted.is_some_and(|c| c.position as usize == st.pos)
                        && report.scanned_bytes == 0
                        && zero_from_to.is_none()
                        && report.damage.is_none()
                        && report.indexes_rebuilt == 0;
                    if !as_closed {
                        // Everything validated is made durable before the checkpoint claims it.
                        map.flush_range(SEGMENT_HEADER_LEN, st.pos).at(&paths.data)?;
                        segment::write_active_index_files(&paths, base, opts.index_interval_bytes, &entries)?;
                    }
                    w.publish(st.pos);
                    let files = segment::open_index_files_for_append(&paths)?;
                    let persisted = entries.len();
                    let seg = Arc::new(Segment::new(
                        base,
                        hdr.created_us,
                        paths,
                        map,
                        SegIndex::Active(RwLock::new(ActiveIndex { entries })),
                        st.next_offset,
                        st.last_ts,
                    ));
                    segs.push(seg.clone());
                    writer = Some(Writer {
                        seg,
                        mw: w,
                        capacity: cap,
                        pos: st.pos,
                        next_offset: st.next_offset,
                        last_ts,
                        since_entry: st.since_entry,
                        synced_pos: st.pos,
                        index_files: Arc::new(files),
                        index_persisted: persisted,
                        must_roll: false,
                        clean_mark_on_disk: as_closed,
                        unsealed: None,
                    });
                }
                _ => {
                    map.advance_published(st.pos);
                    let seg = Segment::new(
                        base,
                        hdr.created_us,
                        paths,
                        map,
                        SegIndex::Active(RwLock::new(ActiveIndex { entries })),
                        st.next_offset,
                        st.last_ts,
                    );
                    segs.push(Arc::new(seg));
                }
            }
        }

        let next_offset = segs.last().map_or(0, |s| s.next_offset());
        let needs_active = !read_only && writer.is_none();
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            opts: opts.clone(),
            read_only,
            segments: RwLock::new(Arc::new(segs)),
            next_offset: AtomicU64::new(next_offset),
            writer: Mutex::new(writer),
            sync: Mutex::new(SyncState { durable: next_offset, flushing: false }),
            sync_cv: Condvar::new(),
            poisoned: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            tail_lock: Mutex::new(()),
            tail_cv: Condvar::new(),
            tail_waiters: AtomicUsize::new(0),
            ckpt: Mutex::new(CkptState { last: (0, 0), at: Instant::now() }),
            flusher_stop: Arc::new((Mutex::new(false), Condvar::new())),
            follower: Mutex::new(Follower { st: follow_state }),
            report,
            lock: Mutex::new(lock),
        });
        let log = Log { inner };
        if needs_active {
            // The last segment was sealed (a crash between sealing and creating its successor).
            log.inner.create_active_after_sealed(last_ts)?;
        }
        if !log.inner.read_only {
            let w = log.inner.writer.lock();
            if let Some(w) = w.as_ref().filter(|w| !w.clean_mark_on_disk) {
                // Record the recovered durable point (clean mark cleared) before anything new
                // can be written.
                log.inner.write_checkpoint(w.checkpoint(false))?;
            }
            drop(w);
            if let Durability::Interval(every) = opts.durability {
                spawn_flusher(Arc::downgrade(&log.inner), log.inner.flusher_stop.clone(), every);
            }
        }
        Ok(log)
    }

    /// Append one record; returns its offset.
    pub fn append(&self, record: Record<'_>) -> Result<u64> {
        Ok(self.append_batch(std::slice::from_ref(&record))?.start)
    }

    /// Append a batch atomically: after any crash either every record of the batch is in the
    /// log or none is. Returns the range of offsets assigned.
    pub fn append_batch(&self, records: &[Record<'_>]) -> Result<Range<u64>> {
        let range = self.inner.append_batch(records)?;
        if self.inner.opts.durability == Durability::Always {
            self.inner.flush_to(range.end)?;
        }
        Ok(range)
    }

    /// Flush every record appended so far to stable storage.
    pub fn sync(&self) -> Result<()> {
        if self.inner.read_only {
            return Ok(());
        }
        self.inner.flush_to(self.next_offset())
    }

    /// Offset of the first record still in the log.
    pub fn first_offset(&self) -> u64 {
        self.inner.segments.read().first().map_or(0, |s| s.base_offset)
    }

    /// Offset the next appended record will get (one past the last committed record).
    #[inline]
    pub fn next_offset(&self) -> u64 {
        self.inner.next_offset.load(Ordering::Acquire)
    }

    /// True if the log holds no records.
    pub fn is_empty(&self) -> bool {
        self.first_offset() == self.next_offset()
    }

    /// Read the record at `offset`, copied out.
    pub fn read(&self, offset: u64) -> Result<OwnedRecord> {
        self.read_with(offset, |r| r.to_owned())
    }

    /// Call `f` with the record at `offset`, borrowed from the map (no copy).
    pub fn read_with<R>(&self, offset: u64, f: impl FnOnce(RecordView<'_>) -> R) -> Result<R> {
        let mut next = self.next_offset();
        if offset >= next && self.inner.read_only {
            self.refresh()?;
            next = self.next_offset();
        }
        let segs = self.inner.segments.read().clone();
        let first = segs.first().map_or(0, |s| s.base_offset);
        if offset < first || offset >= next {
            return Err(Error::OffsetOutOfRange { offset, first, next });
        }
        let i = segs.partition_point(|s| s.base_offset <= offset) - 1;
        let (rec, _) = segs[i].find(offset)?;
        Ok(f(rec))
    }

    /// A cursor reading forward from `offset`, borrowing each record from the map.
    /// At the end of the log it returns `None`; call again later to pick up new records.
    /// A cursor may start at an offset not yet written: it returns `None` until that offset
    /// is committed, then reads from it (this is how a tailing reader starts at
    /// [`Log::next_offset`]). An offset below [`Log::first_offset`] gives
    /// [`Error::OffsetOutOfRange`] on the first call.
    pub fn cursor(&self, offset: u64) -> Cursor {
        Cursor { log: self.clone(), segs: Arc::new(Vec::new()), idx: 0, pos: 0, next: offset, positioned: false }
    }

    /// An iterator over copies of the records from `offset` to the current end.
    pub fn iter(&self, offset: u64) -> Iter {
        Iter { cursor: self.cursor(offset), done: false }
    }

    /// The first offset whose timestamp is at or after `ts_us` (µs since the Unix epoch),
    /// or `None` if every record is older.
    pub fn offset_for_time(&self, ts_us: u64) -> Result<Option<u64>> {
        let segs = self.inner.segments.read().clone();
        let i = segs.partition_point(|s| s.next_offset() == s.base_offset || s.max_ts() < ts_us);
        for seg in &segs[i.min(segs.len())..] {
            if let Some(off) = seg.find_time(ts_us)? {
                return Ok(Some(off));
            }
        }
        Ok(None)
    }

    /// Facts about every segment, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let segs = self.inner.segments.read().clone();
        segs.iter()
            .enumerate()
            .map(|(i, s)| SegmentInfo {
                base_offset: s.base_offset,
                next_offset: s.next_offset(),
                bytes: s.end_pos() as u64,
                capacity: s.map.len() as u64,
                min_timestamp_us: s.min_ts(),
                max_timestamp_us: s.max_ts(),
                // Every segment but the last is full and takes no more records.
                sealed: s.is_sealed() || i + 1 < segs.len(),
                path: s.paths.data.clone(),
            })
            .collect()
    }

    /// Delete whole sealed segments whose records all lie before `offset` (retention).
    /// The active segment is never deleted. Returns the number of segments deleted.
    pub fn remove_segments_before(&self, offset: u64) -> Result<usize> {
        let inner = &self.inner;
        if inner.read_only {
            return Err(Error::ReadOnly);
        }
        let mut w = inner.writer.lock();
        let list = inner.segments.read().clone();
        // Every segment but the last is full and never written again, sealed yet or not.
        let n = list.iter().take(list.len().saturating_sub(1)).take_while(|s| s.next_offset() <= offset).count();
        if n == 0 {
            return Ok(0);
        }
        if let Some(w) = w.as_mut() {
            // A full segment still waiting for its seal needs none if it is deleted.
            if w.unsealed.as_ref().is_some_and(|u| list[..n].iter().any(|s| s.base_offset == u.seg.base_offset)) {
                w.unsealed = None;
            }
        }
        *inner.segments.write() = Arc::new(list[n..].to_vec());
        for s in &list[..n] {
            segment::remove_segment_files(&s.paths)?;
        }
        fsutil::fsync_dir(&inner.dir)?;
        Ok(n)
    }

    /// Block until a record with offset `>= offset` is committed, or the timeout passes.
    /// Returns `true` if one is available. In-process appends wake waiters at once; a
    /// read-only handle following another process polls with a short backoff (50 µs rising
    /// to 1 ms).
    pub fn wait_for(&self, offset: u64, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        if self.next_offset() > offset {
            return Ok(true);
        }
        let inner = &self.inner;
        if inner.read_only {
            let mut nap = Duration::from_micros(50);
            loop {
                self.refresh()?;
                if self.next_offset() > offset {
                    return Ok(true);
                }
                let now = Instant::now();
                if now >= deadline {
                    return Ok(false);
                }
                std::thread::sleep(nap.min(deadline - now));
                nap = (nap * 2).min(Duration::from_millis(1));
            }
        }
        inner.tail_waiters.fetch_add(1, Ordering::SeqCst);
        let mut g = inner.tail_lock.lock();
        let ok = loop {
            if self.next_offset() > offset {
                break true;
            }
            if inner.closed.load(Ordering::Acquire) || inner.tail_cv.wait_until(&mut g, deadline).timed_out() {
                break self.next_offset() > offset;
            }
        };
        drop(g);
        inner.tail_waiters.fetch_sub(1, Ordering::SeqCst);
        Ok(ok)
    }

    /// For a read-only handle: pick up records (and segments) the writer has committed since.
    /// A no-op on a writable handle.
    pub fn refresh(&self) -> Result<()> {
        if self.inner.read_only {
            self.inner.follow()
        } else {
            Ok(())
        }
    }

    /// Validate every record of every segment (checksums, offsets, batch framing), calling
    /// `progress` with the bytes scanned so far. Damage is reported, not repaired.
    pub fn verify(&self, mut progress: impl FnMut(u64)) -> VerifyReport {
        let segs = self.inner.segments.read().clone();
        let mut report = VerifyReport::default();
        let interval = self.inner.opts.index_interval_bytes as usize;
        for (i, seg) in segs.iter().enumerate() {
            report.segments += 1;
            let mut st = ScanState::at_start(seg.base_offset);
            let mut entries = Vec::new();
            let end = seg.end_pos();
            let want = seg.next_offset();
            let stop = segment::scan(&seg.map, seg.base_offset, &mut st, interval, &mut entries, Some(end));
            report.records += st.next_offset - seg.base_offset;
            report.bytes += st.pos as u64;
            progress(report.bytes);
            if st.next_offset < want {
                let (pos, offset, kind) = match stop {
                    ScanStop::Invalid { bad_pos, bad_offset, kind, .. } => (bad_pos, bad_offset, kind),
                    ScanStop::End => (st.pos, st.next_offset, CorruptionKind::MissingData),
                };
                report.damage.push(Damage { file: seg.paths.data.clone(), position: pos as u64, offset, kind });
                continue;
            }
            if i + 1 == segs.len() {
                // Past the committed end: a torn tail is normal, valid records after invalid
                // bytes are not.
                let mut tail = st;
                if let ScanStop::Invalid { kind, bad_pos, bad_offset, .. } =
                    segment::scan(&seg.map, seg.base_offset, &mut tail, interval, &mut entries, None)
                {
                    let after = File::open(&seg.paths.data)
                        .ok()
                        .and_then(|f| segment::valid_frame_after(&seg.map, &f, bad_pos + 8, bad_offset));
                    if after.is_some() {
                        report.damage.push(Damage {
                            file: seg.paths.data.clone(),
                            position: bad_pos as u64,
                            offset: bad_offset,
                            kind,
                        });
                    }
                }
            }
        }
        report
    }

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

    /// Flush, persist indexes, write a clean-shutdown checkpoint and release the writer lock's
    /// hold on appends. Every clone of this handle is closed. Reads keep working.
    pub fn close(self) -> Result<()> {
        self.inner.close()
    }
}

fn spawn_flusher(weak: Weak<Inner>, stop: Arc<(Mutex<bool>, Condvar)>, every: Duration) {
    let spawned = std::thread::Builder::new().name("tidelog-flush".into()).spawn(move || loop {
        {
            let mut stopped = stop.0.lock();
            if *stopped {
                return;
            }
            stop.1.wait_for(&mut stopped, every);
            if *stopped {
                return;
            }
        }
        let Some(inner) = weak.upgrade() else { return };
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        // A failure poisons the log; appenders see it.
        let _ = inner.flush_to(inner.next_offset.load(Ordering::Acquire));
    });
    // Without the thread, Interval degrades to None; `sync` still works. Spawning fails only
    // when the process is out of threads.
    drop(spawned);
}

impl Inner {
    fn append_batch(&self, records: &[Record<'_>]) -> Result<Range<u64>> {
        if records.is_empty() {
            return Err(Error::EmptyBatch);
        }
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        // Size everything before taking the lock: a bad record changes nothing.
        let mut total: u64 = 0;
        for r in records {
            total += align_up(r.frame_len(self.opts.max_record_bytes)?) as u64;
        }
        let max_batch = MAX_SEGMENT_BYTES - SEGMENT_HEADER_LEN as u64;
        if total > max_batch {
            return Err(Error::BatchTooLarge { size: total, max: max_batch });
        }
        if records.len() as u64 > u32::MAX as u64 {
            return Err(Error::BatchTooLarge { size: total, max: max_batch });
        }
        let total = total as usize;
        let mut g = self.writer.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        // Checked after taking the lock: a flush that failed while we waited is seen here.
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        let w = g.as_mut().ok_or(Error::Closed)?;
        if w.clean_mark_on_disk {
            // IMPORTANT: the clean mark says nothing lies past the checkpoint; clear it before
            // the first byte is written past it.
            self.write_checkpoint(w.checkpoint(false))?;
            w.clean_mark_on_disk = false;
        }
        let now = now_us();
        let aged = self.opts.segment_max_age.is_some_and(|age| {
            w.next_offset > w.seg.base_offset && now.saturating_sub(w.seg.created_us) >= age.as_micros() as u64
        });
        if w.must_roll || w.pos + total > w.capacity || aged {
            self.roll(w, total)?;
        }
        let ts = now.max(w.last_ts);
        let first = w.next_offset;
        let n = records.len();
        let mut pos = w.pos;
        let mut new_entries: Vec<IndexEntry> = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let frame_len = r.frame_len(self.opts.max_record_bytes)?;
            let offset = first + i as u64;
            let Some(dst) = w.mw.unpublished_mut(pos, pos + frame_len) else {
                return Err(Error::InvalidOptions("internal: frame outside the segment".into()));
            };
            r.encode_into(dst, offset, ts, (n - 1 - i) as u32);
            // IMPORTANT: the length goes last, with Release, so followers in other processes
            // never see a frame before its bytes.
            w.mw.store_frame_len(pos, frame_len as u32);
            if w.since_entry >= self.opts.index_interval_bytes as usize || pos == SEGMENT_HEADER_LEN {
                new_entries.push(IndexEntry { rel: (offset - w.seg.base_offset) as u32, pos: pos as u32, ts });
                w.since_entry = 0;
            }
            let step = align_up(frame_len);
            pos += step;
            w.since_entry += step;
        }
        // IMPORTANT: the length slot after the last frame must read zero, so that a later scan
        // ends here: a clean open does not zero stale bytes past the end, and a stale frame
        // there could otherwise carry the next offset and pass as a record.
        if pos + 4 <= w.capacity {
            w.mw.store_frame_len(pos, 0);
        }
        for e in new_entries {
            w.seg.push_index(e);
        }
        let end = first + n as u64;
        w.pos = pos;
        w.next_offset = end;
        w.last_ts = ts;
        w.mw.publish(pos);
        w.seg.publish(end, ts);
        self.next_offset.store(end, Ordering::Release);
        drop(g);
        // Pairs with the SeqCst increment in `wait_for`: either the waiter sees the new end,
        // or we see the waiter.
        fence(Ordering::SeqCst);
        if self.tail_waiters.load(Ordering::SeqCst) > 0 {
            let _g = self.tail_lock.lock();
            self.tail_cv.notify_all();
        }
        Ok(first..end)
    }

    /// Seal the active segment and start a new one with room for `need` bytes.
    fn roll(&self, w: &mut Writer, need: usize) -> Result<()> {
        let capacity = (self.opts.segment_bytes as usize).max(SEGMENT_HEADER_LEN + need);
        if w.next_offset == w.seg.base_offset && !w.must_roll {
            // The active segment is empty but too small for this batch: replace it.
            return self.replace_empty_active(w, capacity);
        }
        // From here the active segment takes no more records, even if this roll fails.
        w.must_roll = true;
        let full = Unsealed {
            seg: w.seg.clone(),
            synced_pos: w.synced_pos,
            end_pos: w.pos,
            next_offset: w.next_offset,
            last_ts: w.last_ts,
        };
        // With Durability::None nothing waits for the disk: sealing means flushing the whole
        // segment (tens of ms for 128 MiB, under the writer lock), so it is deferred to the
        // next roll, `sync` or `close`, by when the kernel's writeback has drained most of it.
        // Until then the segment is readable through its in-memory index, no checkpoint
        // vouches for it, and a crash open validates it whole and rebuilds its index.
        let defer = self.opts.durability == Durability::None;
        if !defer {
            self.seal(&full)?;
        } else if let Some(prev) = w.unsealed.take() {
            if let Err(e) = self.seal(&prev) {
                w.unsealed = Some(prev);
                return Err(e);
            }
        }
        let base = w.next_offset;
        let mut fresh = self.new_active(base, capacity, w.last_ts)?;
        self.edit_segments(|v| v.push(fresh.seg.clone()));
        if defer {
            fresh.unsealed = Some(full);
            *w = fresh;
            return Ok(());
        }
        *w = fresh;
        self.write_checkpoint(Checkpoint {
            clean: false,
            segment_base: base,
            position: SEGMENT_HEADER_LEN as u64,
            next_offset: base,
            last_timestamp_us: w.last_ts,
        })?;
        let mut s = self.sync.lock();
        s.durable = s.durable.max(base);
        Ok(())
    }

    /// Seal a full segment: flush its data, write its sealed index files durably, then swap in
    /// a read-only map of it with the mapped index. The order matters: a sealed index is
    /// trusted without a scan, so the data it describes must be on disk first.
    fn seal(&self, u: &Unsealed) -> Result<()> {
        let old = &u.seg;
        if let Err(e) = old.map.flush_range(u.synced_pos, u.end_pos) {
            self.poisoned.store(true, Ordering::Release);
            return Err(Error::io(&old.paths.data, e));
        }
        let entries = old.active_entries();
        let info = SealInfo { end_pos: u.end_pos as u64, next_offset: u.next_offset, max_ts: u.last_ts };
        segment::write_sealed_index_files(&old.paths, old.base_offset, self.opts.index_interval_bytes, &entries, info)?;
        // IMPORTANT: the renames of the sealed index files are durable only after this.
        fsutil::fsync_dir(&self.dir)?;
        let old_file = File::open(&old.paths.data).at(&old.paths.data)?;
        if let Some((sidx, _)) = segment::open_sealed_index(&old.paths, old.base_offset, old.map.len() as u64) {
            let ro = SegmentMap::map_ro(&old_file, old.map.len(), u.end_pos).at(&old.paths.data)?;
            let sealed = Arc::new(Segment::new(
                old.base_offset,
                old.created_us,
                old.paths.clone(),
                ro,
                SegIndex::Sealed(sidx),
                u.next_offset,
                u.last_ts,
            ));
            self.edit_segments(|v| {
                if let Some(s) = v.iter_mut().find(|s| s.base_offset == sealed.base_offset) {
                    *s = sealed;
                }
            });
        }
        Ok(())
    }

    fn replace_empty_active(&self, w: &mut Writer, capacity: usize) -> Result<()> {
        segment::remove_segment_files(&w.seg.paths)?;
        let fresh = self.new_active(w.seg.base_offset, capacity, w.last_ts)?;
        self.edit_segments(|v| {
            if let Some(last) = v.last_mut() {
                *last = fresh.seg.clone();
            }
        });
        *w = fresh;
        Ok(())
    }

    fn create_active_after_sealed(&self, last_ts: u64) -> Result<()> {
        let base = self.next_offset.load(Ordering::Acquire);
        let fresh = self.new_active(base, self.opts.segment_bytes as usize, last_ts)?;
        self.edit_segments(|v| v.push(fresh.seg.clone()));
        *self.writer.lock() = Some(fresh);
        Ok(())
    }

    /// Create segment `base` with `capacity` bytes reserved, and a writer positioned at its
    /// first record.
    fn new_active(&self, base: u64, capacity: usize, last_ts: u64) -> Result<Writer> {
        let created = now_us();
        let file = segment::create_segment_file(&self.dir, base, created, capacity as u64)?;
        let paths = SegmentPaths::new(&self.dir, base);
        let (map, mw) = SegmentMap::map_rw(&file, capacity, SEGMENT_HEADER_LEN).at(&paths.data)?;
        let files = segment::open_index_files_for_append(&paths)?;
        let index = SegIndex::Active(RwLock::new(ActiveIndex::default()));
        Ok(Writer {
            seg: Arc::new(Segment::new(base, created, paths, map, index, base, 0)),
            mw,
            capacity,
            pos: SEGMENT_HEADER_LEN,
            next_offset: base,
            last_ts,
            since_entry: 0,
            synced_pos: SEGMENT_HEADER_LEN,
            index_files: Arc::new(files),
            index_persisted: 0,
            must_roll: false,
            clean_mark_on_disk: false,
            unsealed: None,
        })
    }

    /// Swap in a changed copy of the segment list. Readers holding the old list keep it.
    fn edit_segments(&self, edit: impl FnOnce(&mut Vec<Arc<Segment>>)) {
        let mut list = self.segments.write();
        let mut v: Vec<Arc<Segment>> = list.as_ref().clone();
        edit(&mut v);
        *list = Arc::new(v);
    }

    /// Wait until every record before `target` is durable, flushing as the leader if no
    /// flush is in progress (group commit).
    fn flush_to(&self, target: u64) -> Result<()> {
        let mut st = self.sync.lock();
        loop {
            if self.poisoned.load(Ordering::Acquire) {
                return Err(Error::Poisoned);
            }
            if st.durable >= target {
                return Ok(());
            }
            if !st.flushing {
                st.flushing = true;
                let r = parking_lot::MutexGuard::unlocked(&mut st, || self.flush_once());
                st.flushing = false;
                match r {
                    Ok(n) => st.durable = st.durable.max(n),
                    Err(e) => {
                        self.poisoned.store(true, Ordering::Release);
                        self.sync_cv.notify_all();
                        return Err(e);
                    }
                }
                self.sync_cv.notify_all();
            } else {
                self.sync_cv.wait(&mut st);
            }
        }
    }

    /// Flush everything written so far; returns the offset durable afterwards.
    fn flush_once(&self) -> Result<u64> {
        let snapshot = {
            let mut g = self.writer.lock();
            let Some(w) = g.as_mut() else {
                return Ok(self.next_offset.load(Ordering::Acquire));
            };
            if let Some(u) = w.unsealed.take() {
                if let Err(e) = self.seal(&u) {
                    w.unsealed = Some(u);
                    return Err(e);
                }
            }
            let from = w.synced_pos;
            w.synced_pos = w.pos;
            let ckpt_due = self.ckpt.lock().at.elapsed() >= CHECKPOINT_EVERY;
            let files = if ckpt_due { Some(self.persist_index(w)?) } else { None };
            (w.seg.clone(), from, w.pos, w.next_offset, w.last_ts, files)
        };
        let (seg, from, to, next, last_ts, files) = snapshot;
        seg.map.flush_range(from, to).at(&seg.paths.data)?;
        if let Some(files) = files {
            files.0.sync_data().at(&seg.paths.offset_index)?;
            files.1.sync_data().at(&seg.paths.time_index)?;
            self.write_checkpoint(Checkpoint {
                clean: false,
                segment_base: seg.base_offset,
                position: to as u64,
                next_offset: next,
                last_timestamp_us: last_ts,
            })?;
        }
        Ok(next)
    }

    /// Write index entries not yet in the active index files. Caller holds the writer lock.
    fn persist_index(&self, w: &mut Writer) -> Result<Arc<(File, File)>> {
        let entries = w.seg.active_entries();
        if entries.len() > w.index_persisted {
            let new = &entries[w.index_persisted..];
            let mut o = Vec::with_capacity(new.len() * OFFSET_ENTRY_LEN);
            let mut t = Vec::with_capacity(new.len() * TIME_ENTRY_LEN);
            for e in new {
                o.extend_from_slice(&e.rel.to_le_bytes());
                o.extend_from_slice(&e.pos.to_le_bytes());
                t.extend_from_slice(&e.ts.to_le_bytes());
                t.extend_from_slice(&e.rel.to_le_bytes());
            }
            let oat = (INDEX_HEADER_LEN + w.index_persisted * OFFSET_ENTRY_LEN) as u64;
            let tat = (INDEX_HEADER_LEN + w.index_persisted * TIME_ENTRY_LEN) as u64;
            w.index_files.0.write_all_at(&o, oat).at(&w.seg.paths.offset_index)?;
            w.index_files.1.write_all_at(&t, tat).at(&w.seg.paths.time_index)?;
            w.index_persisted = entries.len();
        }
        Ok(w.index_files.clone())
    }

    fn write_checkpoint(&self, c: Checkpoint) -> Result<()> {
        let mut cs = self.ckpt.lock();
        let key = (c.segment_base, c.position);
        if key < cs.last && !c.clean {
            return Ok(());
        }
        fsutil::atomic_write(&self.dir.join(CHECKPOINT_FILE), &c.encode())?;
        cs.last = key;
        cs.at = Instant::now();
        Ok(())
    }

    fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        {
            let mut stopped = self.flusher_stop.0.lock();
            *stopped = true;
            self.flusher_stop.1.notify_all();
        }
        {
            let _g = self.tail_lock.lock();
            self.tail_cv.notify_all();
        }
        if self.read_only {
            return Ok(());
        }
        let result = self.close_writer();
        // Release the directory to the next writer, even while read handles live on and even
        // if the final flush failed (the next writer's recovery decides what is intact).
        self.lock.lock().take();
        result
    }

    fn close_writer(&self) -> Result<()> {
        let mut g = self.writer.lock();
        let Some(mut w) = g.take() else { return Ok(()) };
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        if w.clean_mark_on_disk {
            // Nothing was written since a clean open: the files are as the last close left them.
            return Ok(());
        }
        if let Some(u) = w.unsealed.take() {
            self.seal(&u)?;
        }
        if let Err(e) = w.seg.map.flush_range(w.synced_pos, w.pos) {
            self.poisoned.store(true, Ordering::Release);
            return Err(Error::io(&w.seg.paths.data, e));
        }
        let files = self.persist_index(&mut w)?;
        files.0.sync_data().at(&w.seg.paths.offset_index)?;
        files.1.sync_data().at(&w.seg.paths.time_index)?;
        self.write_checkpoint(w.checkpoint(true))?;
        let mut s = self.sync.lock();
        s.durable = s.durable.max(w.next_offset);
        Ok(())
    }

    /// Follower: validate what the writer committed since the last look.
    fn follow(&self) -> Result<()> {
        let mut f = self.follower.lock();
        let interval = self.opts.index_interval_bytes as usize;
        loop {
            let list = self.segments.read().clone();
            let Some(last) = list.last().cloned() else { return Ok(()) };
            let mut entries = Vec::new();
            let before = f.st;
            segment::scan(&last.map, last.base_offset, &mut f.st, interval, &mut entries, None);
            if f.st != before {
                for e in entries {
                    last.push_index(e);
                }
                last.map.advance_published(f.st.pos);
                last.publish(f.st.next_offset, f.st.last_ts);
                self.next_offset.store(f.st.next_offset, Ordering::Release);
            }
            // Has the writer rolled? It creates the next segment only after finishing this
            // one, so once the next file exists, one more scan of this one sees all of it.
            let next_paths = SegmentPaths::new(&self.dir, f.st.next_offset);
            if f.st.next_offset == last.base_offset || !next_paths.data.exists() {
                return Ok(());
            }
            let before = f.st;
            let mut entries = Vec::new();
            segment::scan(&last.map, last.base_offset, &mut f.st, interval, &mut entries, None);
            if f.st != before {
                for e in entries {
                    last.push_index(e);
                }
                last.map.advance_published(f.st.pos);
                last.publish(f.st.next_offset, f.st.last_ts);
                self.next_offset.store(f.st.next_offset, Ordering::Release);
                continue;
            }
            let base = f.st.next_offset;
            let paths = SegmentPaths::new(&self.dir, base);
            let mut file = File::open(&paths.data).at(&paths.data)?;
            let (hdr, len) = segment::read_segment_header(&mut file, &paths.data)?;
            let map = SegmentMap::map_ro(&file, len as usize, SEGMENT_HEADER_LEN).at(&paths.data)?;
            let seg = Arc::new(Segment::new(
                base,
                hdr.created_us,
                paths,
                map,
                SegIndex::Active(RwLock::new(ActiveIndex::default())),
                base,
                0,
            ));
            self.edit_segments(|v| v.push(seg));
            f.st = ScanState::at_start(base);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Best effort: an explicit `close` reports errors; a drop cannot.
        let _ = self.close();
    }
}

/// A forward cursor over the log that lends each record from the memory map.
pub struct Cursor {
    log: Log,
    segs: Arc<Vec<Arc<Segment>>>,
    idx: usize,
    pos: usize,
    next: u64,
    positioned: bool,
}

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor").field("next", &self.next).finish()
    }
}

impl Cursor {
    /// Offset of the record the next call to [`Cursor::next`] returns.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Move to `offset`.
    pub fn seek(&mut self, offset: u64) {
        self.next = offset;
        self.positioned = false;
    }

    fn locate(&mut self) -> Result<()> {
        self.segs = self.log.inner.segments.read().clone();
        let first = self.segs.first().map_or(0, |s| s.base_offset);
        let next = self.log.next_offset();
        if self.next < first || self.next > next {
            return Err(Error::OffsetOutOfRange { offset: self.next, first, next });
        }
        self.idx = self.segs.partition_point(|s| s.base_offset <= self.next).saturating_sub(1);
        let seg = &self.segs[self.idx];
        self.pos = if self.next == seg.base_offset { SEGMENT_HEADER_LEN } else { seg.find(self.next)?.1 };
        self.positioned = true;
        Ok(())
    }

    /// The next record, or `None` at the current end of the log.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<RecordView<'_>>> {
        loop {
            let mut committed = self.log.next_offset();
            if self.next >= committed && self.log.inner.read_only {
                self.log.refresh()?;
                committed = self.log.next_offset();
            }
            if self.next >= committed {
                return Ok(None);
            }
            if !self.positioned {
                self.locate()?;
            }
            let seg_end = self.segs[self.idx].next_offset();
            if self.next >= seg_end {
                if self.idx + 1 >= self.segs.len() {
                    self.segs = self.log.inner.segments.read().clone();
                    self.idx = self.segs.partition_point(|s| s.base_offset < self.next).saturating_sub(1);
                }
                if self.idx + 1 < self.segs.len() && self.segs[self.idx + 1].base_offset == self.next {
                    self.idx += 1;
                    self.pos = SEGMENT_HEADER_LEN;
                }
                if self.next >= self.segs[self.idx].next_offset() && self.segs[self.idx].base_offset != self.next {
                    // Segment list changed under us (retention): position afresh.
                    self.positioned = false;
                }
                continue;
            }
            let seg = &self.segs[self.idx];
            let (rec, next_pos) = seg.decode_at(self.pos, self.next)?;
            self.pos = next_pos;
            self.next += 1;
            return Ok(Some(rec));
        }
    }
}

/// Iterator over copies of records, from [`Log::iter`]. Stops at the end of the log or after
/// the first error.
#[derive(Debug)]
pub struct Iter {
    cursor: Cursor,
    done: bool,
}

impl Iterator for Iter {
    type Item = Result<OwnedRecord>;
    fn next(&mut self) -> Option<Result<OwnedRecord>> {
        if self.done {
            return None;
        }
        match self.cursor.next() {
            Ok(Some(r)) => Some(Ok(r.to_owned())),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

//! Stage 6, the only one that writes: set damaged segments aside, make the examined segment
//! the writer's active one (zeroing a torn tail), and build the handle.

use super::*;
use crate::io::prefault::Prefault;
use crate::io::wake::WakeSlot;

/// A name beside the log, not yet taken, for files set aside by a salvage.
pub(super) fn salvage_name(dir: &Path, stem: &str) -> PathBuf {
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
pub(super) fn set_aside(dir: &Path, base: u64) -> Result<PathBuf> {
    let paths = SegmentPaths::new(dir, base);
    let kept = salvage_name(dir, &format!("salvaged-{base:020}"));
    if paths.data.exists() {
        storage::rename(&paths.data, &kept)?;
    }
    segment::remove_segment_files(&paths)?;
    Ok(kept)
}

/// Make the examined last segment the writer's active segment: restore its reservation, map
/// it writable, zero a torn tail (or set a salvaged one aside), and make what was validated
/// durable before any checkpoint claims it.
pub(super) fn activate(
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
        prefault: Prefault::new(opts.prefault_bytes, end.pos),
    };
    Ok((seg, writer))
}

/// What the stages decided, from which the handle is built.
pub(super) struct Opened {
    pub(super) read_only: bool,
    pub(super) lock: Option<DirLock>,
    pub(super) report: OpenReport,
    pub(super) segs: Vec<Arc<Segment>>,
    pub(super) writer: Option<Writer>,
    /// Create the active segment at this offset (the log has none).
    pub(super) fresh_at: Option<u64>,
    pub(super) follow_state: ScanState,
    pub(super) last_ts: u64,
}

impl Opened {
    /// A log without segments: a new one (`fresh_at` its first offset), or one whose
    /// segments are all missing (opened read-only, or salvaged from the checkpoint's end).
    pub(super) fn empty(
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
    pub(super) fn into_log(self, dir: &Path, opts: Options, removed: RemovedStreams) -> Result<Log> {
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
            sync: Mutex::new(SyncState { durable: next_offset, flushing: false, in_flush_to: 0, flushed: None }),
            sync_cv: Condvar::new(),
            poison: Poison::new(dir),
            closed: AtomicBool::new(false),
            tail_lock: Mutex::new(()),
            tail_cv: Condvar::new(),
            tail_waiters: AtomicUsize::new(0),
            wake: if read_only { WakeSlot::reader(dir) } else { WakeSlot::writer(dir) },
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
            compaction: Default::default(),
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
            // Last: the wake file is advisory, and an open that failed should leave no trace.
            log.inner.wake.open_for_writer();
        }
        Ok(log)
    }
}

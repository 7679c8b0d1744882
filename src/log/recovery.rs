//! Opening a log: find the segments, trust or rebuild their indexes, validate what the
//! checkpoint does not vouch for, and apply the recovery mode to what was found.

use std::fs::{self};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex, RwLock};

use crate::error::{CorruptionKind, Error, IoContext, Result};
use crate::format::{Checkpoint, SEGMENT_HEADER_LEN};
use crate::io::fs as fsutil;
use crate::io::mmap::SegmentMap;
use crate::io::DirLock;
use crate::log::follower::Follower;
use crate::log::report::OpenReport;
use crate::log::sync::{spawn_flusher, CkptState, SyncState};
use crate::log::writer::Writer;
use crate::log::{Inner, Log};
use crate::options::{Durability, Options, RecoveryMode, MAX_SEGMENT_BYTES};
use crate::segment::{self, ScanState, ScanStop, SealInfo, Segment};
use crate::time::now_us;

pub(super) const CHECKPOINT_FILE: &str = "checkpoint";

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
            let is_last = i + 1 == bases.len();
            let (id, file, file_len, hdr_capacity) = segment::open_data_file(dir, base, !read_only && is_last)?;
            let paths = id.paths.clone();
            let map_len = usize::try_from(file_len.min(MAX_SEGMENT_BYTES)).unwrap_or(usize::MAX);

            // A segment with a valid sealed index needs no scan.
            if let Some((sidx, info)) = segment::open_sealed_index(&id, file_len) {
                let next_ok = bases.get(i + 1).is_none_or(|&nb| nb == info.next_offset);
                if next_ok {
                    last_ts = last_ts.max(info.max_ts);
                    segs.push(Arc::new(Segment::sealed(id, &file, map_len, sidx, info)?));
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
                let stop = segment::scan_frames(&map, base, &mut st, interval, &mut entries, None);
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
                        segs.push(Arc::new(Segment::in_memory(id, map, entries, st)));
                        break;
                    }
                    return Err(Error::corrupt(&paths.data, pos as u64, kind));
                }
                let info = SealInfo { end_pos: st.pos as u64, next_offset: st.next_offset, max_ts: st.last_ts };
                last_ts = last_ts.max(st.last_ts);
                report.indexes_rebuilt += 1;
                if !read_only {
                    segment::write_sealed_index_files(&paths, base, opts.index_interval_bytes, &entries, info)?;
                    fsutil::fsync_dir(dir)?;
                    if let Some((sidx, info)) = segment::open_sealed_index(&id, file_len) {
                        segs.push(Arc::new(Segment::sealed(id, &file, map_len, sidx, info)?));
                        continue;
                    }
                }
                segs.push(Arc::new(Segment::in_memory(id, map, entries, st)));
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
            let capacity = hdr_capacity.max(file_len).min(MAX_SEGMENT_BYTES);
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
                    segment::scan_frames(&map, base, &mut chk, interval, &mut scratch, Some(c.position as usize));
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
                        let stop = segment::scan_frames(
                            &map,
                            base,
                            &mut full,
                            interval,
                            &mut rebuilt,
                            Some(c.position as usize),
                        );
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
            let stop = segment::scan_frames(&map, base, &mut st, interval, &mut entries, None);
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
                    let seg = Arc::new(Segment::in_memory(id, map, entries, st));
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
                        last_mark: 0,
                    });
                }
                _ => {
                    segs.push(Arc::new(Segment::in_memory(id, map, entries, st)));
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
            durable: AtomicU64::new(next_offset),
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
}

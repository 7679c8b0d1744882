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
//!
//! This file runs the stages in order (`Log::open_impl`); each has its own file: `discover`
//! (1 and 2), `load` (3), `tail` (4), `decide` (5), `apply` (6).

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

mod apply;
mod decide;
mod discover;
mod load;
mod tail;

use apply::*;
use decide::*;
use discover::*;
use load::*;
use tail::*;

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

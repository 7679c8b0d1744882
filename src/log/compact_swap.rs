//! What compaction and erasure (`crate::compaction`, `crate::erase`) may do to a log, and
//! nothing else: serialise themselves, roll the active segment, swap a rewritten sealed
//! segment in under the writer lock, forget an erased stream's counts; and, for followers,
//! picking up sealed segments another process swapped.
//!
//! The rewrite itself runs without any lock of the log: only [`Log::swap_rewritten`] takes the
//! writer lock, for the rename of the files and the swap of the segment list.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Mutex, MutexGuard};

use crate::error::{Error, IoContext, Result};
use crate::format::{Checkpoint, SEGMENT_HEADER_LEN};
use crate::io::fs as fsutil;
use crate::io::mmap::SegmentMap;
use crate::log::stream::REMOVED_STREAMS_FILE;
use crate::log::{Inner, Log};
use crate::segment::builder::BuiltSegment;
use crate::segment::{self, ScanState, Segment};

/// Compaction's share of a log's state.
#[derive(Debug, Default)]
pub(super) struct CompactionState {
    /// Held by one compaction or erasure at a time.
    running: Mutex<()>,
    /// Follower: when its sealed segments were last compared with their files.
    seen_dir_mtime: Mutex<Option<DirLook>>,
}

/// A follower's last comparison of its sealed segments with their files.
#[derive(Debug, Clone, Copy)]
struct DirLook {
    /// The directory's modification time then.
    mtime: SystemTime,
    /// Whether that time was old enough that no later change can share it.
    settled: bool,
    at: Instant,
}

impl Log {
    /// Held by one compaction or erasure of this log at a time (in this process; another
    /// process cannot write the log: it holds no writer lock).
    pub(crate) fn compaction_guard(&self) -> MutexGuard<'_, ()> {
        self.inner.compaction.running.lock()
    }

    /// The segment list as it is now (the last one is the active segment).
    pub(crate) fn segment_list(&self) -> Arc<Vec<Arc<Segment>>> {
        self.inner.segments.read().clone()
    }

    /// True if `seg` is the full segment whose seal `Durability::None` deferred: it cannot be
    /// swapped until sealed ([`Log::seal_pending`]).
    pub(crate) fn awaiting_seal(&self, seg: &Arc<Segment>) -> bool {
        let g = self.inner.writer.lock();
        g.as_ref().and_then(|w| w.unsealed.as_ref()).is_some_and(|u| Arc::ptr_eq(&u.seg, seg))
    }

    /// Roll the active segment if it holds records, so that they become a sealed segment
    /// (sealed at once, or at the next `sync` with `Durability::None`).
    pub(crate) fn roll_active(&self) -> Result<()> {
        let inner = &self.inner;
        if inner.read_only {
            return Err(Error::ReadOnly);
        }
        let mut g = inner.writer.lock();
        if inner.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::Closed);
        }
        inner.poison.check()?;
        let w = g.as_mut().ok_or(Error::Closed)?;
        if w.next_offset == w.seg.base_offset && !w.must_roll {
            return Ok(());
        }
        if w.clean_mark_on_disk {
            // The clean mark says nothing lies past the checkpoint: a roll changes that.
            inner.write_checkpoint(w.checkpoint(false))?;
            w.clean_mark_on_disk = false;
        }
        inner.roll(w, 0)?;
        drop(g);
        self.seal_pending()
    }

    /// Seal the full segment whose seal `Durability::None` deferred, if there is one: only
    /// sealed segments are rewritten.
    pub(crate) fn seal_pending(&self) -> Result<()> {
        let inner = &self.inner;
        let mut g = inner.writer.lock();
        let Some(w) = g.as_mut() else { return Ok(()) };
        if let Some(u) = w.unsealed.take() {
            if let Err(e) = inner.seal(&u) {
                w.unsealed = Some(u);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Install `built` in place of `old` and swap it into the segment list, under the writer
    /// lock. Returns false (and removes the built files) if `old` is no longer in the list:
    /// retention deleted it meanwhile. Readers holding `old` keep their map of the old file.
    pub(crate) fn swap_rewritten(&self, old: &Arc<Segment>, built: BuiltSegment) -> Result<bool> {
        let inner = &self.inner;
        let mut w = inner.writer.lock();
        if inner.closed.load(std::sync::atomic::Ordering::Acquire) {
            built.discard()?;
            return Err(Error::Closed);
        }
        let present = inner.segments.read().iter().any(|s| Arc::ptr_eq(s, old));
        let Some(w) = w.as_mut().filter(|_| present) else {
            built.discard()?;
            return Ok(false);
        };
        if w.unsealed.as_ref().is_some_and(|u| Arc::ptr_eq(&u.seg, old)) {
            built.discard()?;
            return Err(Error::Internal("a segment awaiting its seal cannot be swapped"));
        }
        // IMPORTANT: neither the checkpoint nor a poisoned writer's durable limit may name a
        // position in the segment being replaced (the new file is shorter): move them to the
        // start of the active segment first, which every segment before it makes true once
        // the one whose seal was deferred is sealed.
        if inner.ckpt.lock().last.0 <= old.base_offset {
            if let Some(u) = w.unsealed.take() {
                if let Err(e) = inner.seal(&u) {
                    w.unsealed = Some(u);
                    built.discard()?;
                    return Err(e);
                }
            }
            let list = inner.segments.read().clone();
            let last_ts = list.iter().rev().nth(1).map_or(0, |s| s.max_ts());
            let base = w.seg.base_offset;
            let at_active = Checkpoint {
                clean: false,
                segment_base: base,
                position: SEGMENT_HEADER_LEN as u64,
                next_offset: base,
                last_timestamp_us: last_ts,
            };
            if let Err(e) = inner.write_checkpoint(at_active) {
                built.discard()?;
                return Err(e);
            }
            w.clean_mark_on_disk = false;
        }
        built.install()?;
        let fresh = Arc::new(open_rewritten(&inner.dir, old.base_offset, inner.opts.index_interval_bytes, true)?);
        inner.edit_segments(|v| {
            if let Some(s) = v.iter_mut().find(|s| Arc::ptr_eq(s, old)) {
                *s = fresh;
            }
        });
        // Versions count the events in the log: some of them are gone.
        inner.versions.lock().clear();
        Ok(true)
    }

    /// Erasure: forget the events retention removed of stream `key` (the file
    /// `removed-streams` names the key), and the cached version of every stream.
    pub(crate) fn forget_stream(&self, key: &[u8]) -> Result<()> {
        let inner = &self.inner;
        let _w = inner.writer.lock();
        inner.versions.lock().clear();
        let current = inner.removed.read().clone();
        if !current.counts.contains_key(key) {
            return Ok(());
        }
        let mut next = current.as_ref().clone();
        next.counts.remove(key);
        fsutil::atomic_write(&inner.dir.join(REMOVED_STREAMS_FILE), &next.encode())?;
        *inner.removed.write() = Arc::new(next);
        Ok(())
    }
}

/// Open sealed segment `base` as it is on disk now. With `trust_index`, its index files are
/// used if they describe it; otherwise (and always for a follower, which could otherwise pair
/// a data file with index files renamed in after it opened the data) it is scanned whole.
fn open_rewritten(dir: &Path, base: u64, interval: u32, trust_index: bool) -> Result<Segment> {
    let (id, file, len, _) = segment::open_data_file(dir, base, false)?;
    if trust_index {
        if let Some((sidx, info)) = segment::open_sealed_index(&id, len) {
            return Segment::sealed(id, &file, len as usize, sidx, info);
        }
    }
    let map_len = usize::try_from(len).unwrap_or(usize::MAX);
    let map = SegmentMap::map_ro(&file, map_len, 0).at(&id.paths.data)?;
    let mut st = ScanState::at_start(base);
    let mut entries = Vec::new();
    segment::scan_frames(&map, base, &mut st, interval as usize, &mut entries, None);
    Ok(Segment::in_memory(id, map, entries, st))
}

/// The first bytes of the file at `path` (its segment header), or `None` if it is gone.
fn file_header(path: &Path) -> Result<Option<[u8; SEGMENT_HEADER_LEN]>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut b = [0u8; SEGMENT_HEADER_LEN];
    f.read_exact(&mut b).at(path)?;
    Ok(Some(b))
}

impl Inner {
    /// Follower: replace the sealed segments whose file the writer swapped for a rewritten one
    /// (compaction, erasure) with a map of the new file. A rewrite that removes records always
    /// changes the header (the sparse flag, or where the records end), so comparing headers
    /// finds it; the comparison runs only when the directory changed since the last one, or
    /// (at most every 50 ms) while its change is so recent that a second change could share
    /// its timestamp.
    pub(super) fn pick_up_rewritten_segments(&self) -> Result<()> {
        let mtime = std::fs::metadata(&self.dir).and_then(|m| m.modified()).at(&self.dir)?;
        {
            let mut seen = self.compaction.seen_dir_mtime.lock();
            // A look made while the change was recent may have come before a second change
            // with the same timestamp: look again (at most every 50 ms) until one is made once
            // the timestamp has settled.
            let settled = SystemTime::now().duration_since(mtime).is_ok_and(|d| d >= Duration::from_secs(2));
            let now = Instant::now();
            if let Some(s) = *seen {
                if s.mtime == mtime && (s.settled || now.duration_since(s.at) < Duration::from_millis(50)) {
                    return Ok(());
                }
            }
            *seen = Some(DirLook { mtime, settled, at: now });
        }
        let list = self.segments.read().clone();
        for seg in list.iter().take(list.len().saturating_sub(1)) {
            let Some(on_disk) = file_header(&seg.paths.data)? else { continue };
            let mapped = seg.map.published_bytes();
            if mapped.len() < SEGMENT_HEADER_LEN || mapped[..SEGMENT_HEADER_LEN] == on_disk {
                continue;
            }
            let fresh = Arc::new(open_rewritten(&self.dir, seg.base_offset, self.opts.index_interval_bytes, false)?);
            self.edit_segments(|v| {
                if let Some(s) = v.iter_mut().find(|s| Arc::ptr_eq(s, seg)) {
                    *s = fresh;
                }
            });
            self.versions.lock().clear();
        }
        Ok(())
    }
}

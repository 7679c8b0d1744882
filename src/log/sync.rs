//! Durability: group commit (`flush_to`), the flush itself, index persistence, the
//! checkpoint, the background flusher of `Durability::Interval`, and closing.

use std::fs::{File, OpenOptions};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, IoContext, Result};
use crate::format::checkpoint::CHECKPOINT_LEN;
use crate::format::{Checkpoint, SEGMENT_HEADER_LEN};
use crate::io::{fs as fsutil, storage};
use crate::log::recovery::CHECKPOINT_FILE;
use crate::log::writer::Writer;
use crate::log::{Inner, Log};
use crate::segment;

/// How often, at most, a flush also writes a checkpoint (bounding the scan after a crash).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(super) struct SyncState {
    pub(super) durable: u64,
    pub(super) flushing: bool,
    /// Threads in `flush_to`.
    pub(super) in_flush_to: usize,
    /// The point the last successful flush made durable, for the checkpoint `sync` writes.
    pub(super) flushed: Option<Checkpoint>,
}

impl SyncState {
    /// Remember a point made durable, keeping the furthest.
    pub(super) fn note_flushed(&mut self, p: Checkpoint) {
        if self.flushed.is_none_or(|f| (f.segment_base, f.position) <= (p.segment_base, p.position)) {
            self.flushed = Some(p);
        }
    }
}

pub(super) struct CkptState {
    pub(super) last: (u64, u64),
    /// Whether `last` was written by this handle, and whether it carried the clean mark.
    pub(super) written: bool,
    pub(super) last_clean: bool,
    /// The sequence of the slot this handle last wrote; `None` until it has written the
    /// checkpoint file whole once (after which slots are overwritten in place).
    pub(super) sequence: Option<u64>,
    pub(super) at: Instant,
}

impl Log {
    /// Flush every record appended so far to stable storage.
    pub fn sync(&self) -> Result<()> {
        if self.inner.read_only {
            return Ok(());
        }
        self.inner.flush_to(self.next_offset())?;
        // IMPORTANT: make the checkpoint vouch for what is now durable. Without it, damage to
        // these records (a file cut short, zeroed bytes) would look like a torn write past the
        // durable point and be cut away silently at the next open.
        self.inner.checkpoint_flushed()
    }

    /// Flush every record appended so far to stable storage, like [`Log::sync`], but without
    /// writing a checkpoint for it: one device flush instead of two. The records are as
    /// durable; what is lost is the proof that lets the next open tell damage to them (from the
    /// media, after the flush) from a torn write, until a later frame's durable mark or the
    /// next checkpoint (at most a second later in `Interval` mode, at the next `sync` or
    /// `close`) vouches for them. For the engine's own logs whose owners tolerate that: a
    /// consumer group's state log (delivery is at least once).
    pub(crate) fn flush(&self) -> Result<()> {
        if self.inner.read_only {
            return Ok(());
        }
        self.inner.flush_to(self.next_offset())
    }

    /// Flush, persist indexes, write a clean-shutdown checkpoint and release the writer lock's
    /// hold on appends. Every clone of this handle is closed. Reads keep working.
    pub fn close(self) -> Result<()> {
        self.inner.close()
    }

    /// If an earlier flush failed and appends now return [`crate::Error::Poisoned`]: what
    /// failed first (the operation and the error, which names the file).
    pub fn poisoned_by(&self) -> Option<String> {
        self.inner.poison.cause()
    }
}

pub(super) fn spawn_flusher(weak: Weak<Inner>, stop: Arc<(Mutex<bool>, Condvar)>, every: Duration) {
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
    /// Record that every record before `offset` is on stable storage (never moves back).
    /// Caller holds the sync lock.
    pub(super) fn advance_durable(&self, st: &mut SyncState, offset: u64) {
        st.durable = st.durable.max(offset);
        self.durable.fetch_max(offset, Ordering::AcqRel);
    }

    /// Wait until every record before `target` is durable, flushing for everyone if no
    /// flush is in progress (group commit).
    ///
    /// One flush at a time: flushes that overlap (tried, each covering its segment from the
    /// start so that its return proved everything before its end durable) ran at 0.85 of
    /// this with four appenders on a virtio disk, which serialises device flushes: they cut
    /// the records per flush. Before its snapshot, a flusher that others wait beside yields
    /// the processor once, so that appenders just woken by the previous flush get their
    /// records into this one (four appenders, one sitting: 1.92 times one with it, 1.77 and
    /// 1.87 without; a small gain, near the noise).
    pub(super) fn flush_to(&self, target: u64) -> Result<()> {
        let mut st = self.sync.lock();
        st.in_flush_to += 1;
        let r = self.flush_to_locked(&mut st, target);
        st.in_flush_to -= 1;
        r
    }

    fn flush_to_locked(&self, st: &mut parking_lot::MutexGuard<'_, SyncState>, target: u64) -> Result<()> {
        loop {
            self.poison.check()?;
            if st.durable >= target {
                return Ok(());
            }
            if st.flushing {
                self.sync_cv.wait(st);
                continue;
            }
            st.flushing = true;
            let others = st.in_flush_to > 1;
            let r = parking_lot::MutexGuard::unlocked(st, || {
                if others {
                    std::thread::yield_now();
                }
                self.flush_once()
            });
            st.flushing = false;
            match r {
                Ok((n, point)) => {
                    self.advance_durable(st, n);
                    if let Some(p) = point {
                        st.note_flushed(p);
                    }
                }
                Err(e) => {
                    let e = self.poison.set("flush", e);
                    self.sync_cv.notify_all();
                    return Err(e);
                }
            }
            self.sync_cv.notify_all();
        }
    }

    /// Flush everything written so far; returns the offset durable afterwards and the point
    /// (segment, position) the flush made durable.
    pub(super) fn flush_once(&self) -> Result<(u64, Option<Checkpoint>)> {
        let snapshot = {
            let mut g = self.writer.lock();
            let Some(w) = g.as_mut() else {
                return Ok((self.next_offset.load(Ordering::Acquire), None));
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
            let files = if ckpt_due { self.persist_index(w)? } else { None };
            (w.seg.clone(), from, w.pos, w.next_offset, w.last_ts, ckpt_due, files)
        };
        let (seg, from, to, next, last_ts, ckpt_due, files) = snapshot;
        storage::msync(&seg.map, &seg.paths.data, from, to)?;
        let point = Checkpoint {
            clean: false,
            segment_base: seg.base_offset,
            position: to as u64,
            next_offset: next,
            last_timestamp_us: last_ts,
        };
        self.poison.durable_at(point);
        if ckpt_due {
            if let Some(files) = files {
                storage::sync_data(&files.0, &seg.paths.offset_index)?;
                storage::sync_data(&files.1, &seg.paths.time_index)?;
            }
            self.write_checkpoint(point)?;
        }
        Ok((next, Some(point)))
    }

    /// Write a checkpoint at the point the last successful flush made durable, unless one is
    /// there already.
    pub(super) fn checkpoint_flushed(&self) -> Result<()> {
        let point = self.sync.lock().flushed;
        match point {
            Some(p) => self.write_checkpoint(p),
            None => Ok(()),
        }
    }

    /// Write index entries not yet in the active index files. Caller holds the writer lock.
    /// Returns the files written (for the caller to flush), or `None` if nothing was new.
    ///
    /// The files are opened for this write only: a log holds no descriptor for its index
    /// between checkpoints (at most once a second), which keeps an idle log at one descriptor
    /// (its writer lock).
    pub(super) fn persist_index(&self, w: &mut Writer) -> Result<Option<(File, File)>> {
        let entries = w.seg.active_entries();
        if entries.len() <= w.index_persisted {
            return Ok(None);
        }
        let files = match segment::open_index_files_for_append(&w.seg.paths) {
            Ok(files) => files,
            // Index files are derived data: one that went missing is written again whole.
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                let interval = self.opts.index_interval_bytes;
                segment::write_active_index_files(&w.seg.paths, w.seg.base_offset, interval, &entries)?;
                w.index_persisted = entries.len();
                return segment::open_index_files_for_append(&w.seg.paths).map(Some);
            }
            Err(e) => return Err(e),
        };
        let new = &entries[w.index_persisted..];
        segment::append_active_index_entries(&files, &w.seg.paths, w.index_persisted, new)?;
        w.index_persisted = entries.len();
        Ok(Some(files))
    }

    pub(super) fn write_checkpoint(&self, c: Checkpoint) -> Result<()> {
        let mut cs = self.ckpt.lock();
        let key = (c.segment_base, c.position);
        // Never move backwards; a non-clean checkpoint equal to the last non-clean one on disk
        // says nothing new.
        if !c.clean && (key < cs.last || (key == cs.last && cs.written && !cs.last_clean)) {
            return Ok(());
        }
        let path = self.dir.join(CHECKPOINT_FILE);
        match cs.sequence {
            // IMPORTANT: overwrite the older slot only; the newer one stays valid if this
            // write is torn.
            Some(seq) => {
                let next = seq + 1;
                let at = (next % 2) * CHECKPOINT_LEN as u64;
                // Opening changes nothing, so it does not go through the storage seam.
                let file = OpenOptions::new().write(true).open(&path).at(&path)?;
                storage::write_all_at(&file, &path, &c.encode_slot(next), at)?;
                storage::sync_data(&file, &path)?;
                cs.sequence = Some(next);
            }
            // The first write of this handle lays the two-slot file down atomically (the file
            // may be missing, of format version 1, or damaged).
            None => {
                fsutil::atomic_write(&path, &c.encode_file())?;
                cs.sequence = Some(1);
            }
        }
        // A checkpoint claims only what is on stable storage.
        self.poison.durable_at(c);
        cs.last = key;
        cs.last_clean = c.clean;
        cs.written = true;
        cs.at = Instant::now();
        Ok(())
    }

    pub(super) fn close(&self) -> Result<()> {
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

    pub(super) fn close_writer(&self) -> Result<()> {
        let mut g = self.writer.lock();
        let Some(mut w) = g.take() else { return Ok(()) };
        self.poison.check()?;
        if w.clean_mark_on_disk {
            // Nothing was written since a clean open: the files are as the last close left them.
            return Ok(());
        }
        if let Some(u) = w.unsealed.take() {
            self.seal(&u)?;
        }
        // From the start, like a seal: a flush still in progress may be writing pages below
        // `synced_pos`, and the clean checkpoint must not claim them before they are on disk.
        if let Err(e) = storage::msync(&w.seg.map, &w.seg.paths.data, SEGMENT_HEADER_LEN, w.pos) {
            return Err(self.poison.set("flush at close", e));
        }
        self.poison.durable_at(w.checkpoint(false));
        if let Some(files) = self.persist_index(&mut w)? {
            storage::sync_data(&files.0, &w.seg.paths.offset_index)?;
            storage::sync_data(&files.1, &w.seg.paths.time_index)?;
        }
        self.write_checkpoint(w.checkpoint(true))?;
        let mut s = self.sync.lock();
        self.advance_durable(&mut s, w.next_offset);
        Ok(())
    }
}

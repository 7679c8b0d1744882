//! Durability: group commit (`flush_to`), the flush itself, index persistence, the
//! checkpoint, the background flusher of `Durability::Interval`, and closing.

use std::fs::File;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, IoContext, Result};
use crate::format::Checkpoint;
use crate::io::fs as fsutil;
use crate::log::recovery::CHECKPOINT_FILE;
use crate::log::writer::Writer;
use crate::log::{Inner, Log};

/// How often, at most, a flush also writes a checkpoint (bounding the scan after a crash).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(super) struct SyncState {
    pub(super) durable: u64,
    pub(super) flushing: bool,
}

pub(super) struct CkptState {
    pub(super) last: (u64, u64),
    pub(super) at: Instant,
}

impl Log {
    /// Flush every record appended so far to stable storage.
    pub fn sync(&self) -> Result<()> {
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

    /// Wait until every record before `target` is durable, flushing as the leader if no
    /// flush is in progress (group commit).
    pub(super) fn flush_to(&self, target: u64) -> Result<()> {
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
                    Ok(n) => self.advance_durable(&mut st, n),
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
    pub(super) fn flush_once(&self) -> Result<u64> {
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
    pub(super) fn persist_index(&self, w: &mut Writer) -> Result<Arc<(File, File)>> {
        let entries = w.seg.active_entries();
        if entries.len() > w.index_persisted {
            let new = &entries[w.index_persisted..];
            crate::segment::append_active_index_entries(&w.index_files, &w.seg.paths, w.index_persisted, new)?;
            w.index_persisted = entries.len();
        }
        Ok(w.index_files.clone())
    }

    pub(super) fn write_checkpoint(&self, c: Checkpoint) -> Result<()> {
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
        self.advance_durable(&mut s, w.next_offset);
        Ok(())
    }
}

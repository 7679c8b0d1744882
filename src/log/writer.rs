//! The single writer: appending (frames written straight into the active segment's map,
//! then published), rolling to a new segment, sealing a full one, and retention.

use std::ops::Range;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use parking_lot::MutexGuard;

use crate::error::{Error, Result};
use crate::format::frame::DURABLE_MARK_LEN;
use crate::format::{align_up, Checkpoint, SEGMENT_HEADER_LEN};
use crate::io::mmap::MapWriter;
use crate::io::prefault::Prefault;
use crate::io::{fs as fsutil, storage};
use crate::log::{Inner, Log};
use crate::options::{Durability, MAX_SEGMENT_BYTES};
use crate::record::{AsRecord, Record};
use crate::segment::{self, IndexEntry, SealInfo, Segment};
use crate::stream::EVENT_ID_HEADER;
use crate::time::now_us;

pub(super) struct Writer {
    pub(super) seg: Arc<Segment>,
    pub(super) mw: MapWriter,
    pub(super) capacity: usize,
    pub(super) pos: usize,
    pub(super) next_offset: u64,
    pub(super) last_ts: u64,
    pub(super) since_entry: usize,
    pub(super) synced_pos: usize,
    pub(super) index_persisted: usize,
    /// A roll failed after the active segment's index was sealed: no more records may go into
    /// it, every append must roll first.
    pub(super) must_roll: bool,
    /// The checkpoint on disk still carries the previous writer's clean-shutdown mark (this
    /// open found the log exactly as a clean close left it). Cleared before the first write.
    pub(super) clean_mark_on_disk: bool,
    /// With `Durability::None`, the previous segment, full but not yet sealed (see `roll`).
    pub(super) unsealed: Option<Unsealed>,
    /// The durable mark last written into a frame (see `format::frame`).
    pub(super) last_mark: u64,
    /// The window of the active segment faulted in ahead of `pos` (see `io::prefault`).
    pub(super) prefault: Prefault,
}

impl Writer {
    /// A checkpoint at the current write position.
    pub(super) fn checkpoint(&self, clean: bool) -> Checkpoint {
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
pub(super) struct Unsealed {
    pub(super) seg: Arc<Segment>,
    pub(super) end_pos: usize,
    pub(super) next_offset: u64,
    pub(super) last_ts: u64,
}

impl Log {
    /// Append one record; returns its offset. Takes a [`Record`] or anything else that is
    /// [`AsRecord`] (a byte buffer, a string, a `(key, payload)` pair, a record read from a
    /// log), framing its bytes straight into the map. With the log's durability; another for
    /// this call: [`Log::append_with`].
    pub fn append(&self, record: impl AsRecord) -> Result<u64> {
        Ok(self.append_batch(std::slice::from_ref(&record))?.start)
    }

    /// Append a batch atomically: after any crash either every record of the batch is in the
    /// log or none is. Returns the range of offsets assigned. Takes a slice of [`Record`]s, or
    /// of owned buffers or any other [`AsRecord`], as it is (no `Vec<Record>` to build per
    /// batch; a slice of `Record`s reaches the writer unchanged). With the log's durability;
    /// another for this call: [`Log::append_batch_with`]; from an iterator:
    /// [`Log::append_iter`].
    pub fn append_batch<R: AsRecord>(&self, records: &[R]) -> Result<Range<u64>> {
        self.append_batch_with(records, self.inner.opts.durability)
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
        // IMPORTANT: the removed segments' events are counted (durably) before the segments
        // go, so that stream versions never move back; a crash in between leaves segments
        // that are already counted, which stream reads skip.
        inner.count_removed_streams(&list[..n], list[n].base_offset)?;
        *inner.segments.write() = Arc::new(list[n..].to_vec());
        // Versions count the events in the log: those of the removed segments no longer do.
        inner.versions.lock().clear();
        for s in &list[..n] {
            segment::remove_segment_files(&s.paths)?;
        }
        fsutil::fsync_dir(&inner.dir)?;
        Ok(n)
    }
}

impl Inner {
    pub(super) fn append_batch(&self, records: &[Record<'_>]) -> Result<Range<u64>> {
        if let Some(index) = records.iter().position(|r| r.headers.iter().any(|h| h.name == EVENT_ID_HEADER)) {
            return Err(Error::InvalidEvent {
                index,
                reason: "the event-id header is honoured only by append_to_stream",
            });
        }
        let total = self.batch_bytes(records)?;
        self.append_locked(self.writer.lock(), records, total)
    }

    /// Check a batch before taking the lock (a bad record changes nothing): its bytes in the
    /// segment, durable mark included.
    pub(super) fn batch_bytes(&self, records: &[Record<'_>]) -> Result<usize> {
        if records.is_empty() {
            return Err(Error::EmptyBatch);
        }
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        // Size everything before taking the lock: a bad record changes nothing.
        let mut total: u64 = 0;
        for (index, r) in records.iter().enumerate() {
            if r.tombstone && r.key.is_none() {
                return Err(Error::InvalidEvent { index, reason: "a tombstone must carry a key" });
            }
            total += align_up(r.frame_len(self.opts.max_record_bytes)?) as u64;
        }
        // Room for a durable mark on the first record (see `format::frame`).
        total += DURABLE_MARK_LEN as u64;
        let max_batch = MAX_SEGMENT_BYTES - SEGMENT_HEADER_LEN as u64;
        if total > max_batch {
            return Err(Error::BatchTooLarge { size: total, max: max_batch });
        }
        if records.len() as u64 > u32::MAX as u64 {
            return Err(Error::BatchTooLarge { size: total, max: max_batch });
        }
        Ok(total as usize)
    }

    /// Append a checked batch of `total` bytes (see [`Inner::batch_bytes`]) under the writer
    /// lock `g`, which this releases.
    pub(super) fn append_locked(
        &self,
        mut g: MutexGuard<'_, Option<Writer>>,
        records: &[Record<'_>],
        total: usize,
    ) -> Result<Range<u64>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        // Checked after taking the lock: a flush that failed while we waited is seen here.
        self.poison.check()?;
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
        // A durable mark on the first record whenever the durable point moved since the last
        // one: any valid frame then proves how far the log was durable when it was written.
        let durable = self.durable.load(Ordering::Acquire);
        let mut mark = (durable > w.last_mark).then_some(durable);
        if mark.is_some() {
            w.last_mark = durable;
        }
        let n = records.len();
        let mut pos = w.pos;
        let mut new_entries: Vec<IndexEntry> = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let frame_len = r.frame_len(self.opts.max_record_bytes)? + mark.map_or(0, |_| DURABLE_MARK_LEN);
            let offset = first + i as u64;
            let Some(dst) = w.mw.unpublished_mut(pos, pos + frame_len) else {
                return Err(Error::Internal("a frame would lie outside the active segment"));
            };
            r.encode_into(dst, offset, ts, (n - 1 - i) as u32, mark.take());
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
        // After the records are visible: a request to the prefault thread (every few
        // megabytes) does not delay them.
        w.prefault.advance(&w.seg.map, pos);
        drop(g);
        // Pairs with the SeqCst increment in `wait_for`: either the waiter sees the new end,
        // or we see the waiter.
        fence(Ordering::SeqCst);
        if self.tail_waiters.load(Ordering::SeqCst) > 0 {
            let _g = self.tail_lock.lock();
            self.tail_cv.notify_all();
        }
        // Readers in other processes: the same fence serves (see `io::wake`); one load when
        // nobody waits.
        if let Some(w) = self.wake.ready() {
            w.publish_after_fence();
        }
        Ok(first..end)
    }

    /// Seal the active segment and start a new one with room for `need` bytes.
    pub(super) fn roll(&self, w: &mut Writer, need: usize) -> Result<()> {
        let capacity = (self.opts.segment_bytes as usize).max(SEGMENT_HEADER_LEN + need);
        if w.next_offset == w.seg.base_offset && !w.must_roll {
            // The active segment is empty but too small for this batch: replace it.
            return self.replace_empty_active(w, capacity);
        }
        // From here the active segment takes no more records, even if this roll fails.
        w.must_roll = true;
        let full = Unsealed { seg: w.seg.clone(), end_pos: w.pos, next_offset: w.next_offset, last_ts: w.last_ts };
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
        self.advance_durable(&mut s, base);
        Ok(())
    }

    /// Seal a full segment: flush its data, write its sealed index files durably, then swap in
    /// a read-only map of it with the mapped index. The order matters: a sealed index is
    /// trusted without a scan, so the data it describes must be on disk first.
    pub(super) fn seal(&self, u: &Unsealed) -> Result<()> {
        let old = &u.seg;
        // From the segment's start, not from `synced_pos`: a flush in progress on another
        // thread may still be writing pages below it, and `msync` waits for pages under
        // writeback in its range. The sealed index is trusted without a scan, so every byte it
        // describes must be on disk first. Clean pages cost nothing to pass over.
        if let Err(e) = storage::msync(&old.map, &old.paths.data, SEGMENT_HEADER_LEN, u.end_pos) {
            return Err(self.poison.set("flush of a full segment", e));
        }
        self.poison.durable_at(Checkpoint {
            clean: false,
            segment_base: old.base_offset,
            position: u.end_pos as u64,
            next_offset: u.next_offset,
            last_timestamp_us: u.last_ts,
        });
        let entries = old.active_entries();
        let info = SealInfo { end_pos: u.end_pos as u64, next_offset: u.next_offset, max_ts: u.last_ts };
        segment::write_sealed_index_files(&old.paths, old.base_offset, self.opts.index_interval_bytes, &entries, info)?;
        segment::write_key_index_file(&old.paths, old.base_offset, &old.key_entries()?, info)?;
        // IMPORTANT: the renames of the sealed index files are durable only after this.
        fsutil::fsync_dir(&self.dir)?;
        if let Some(sealed) = old.reopen_sealed(u.end_pos)? {
            let sealed = Arc::new(sealed);
            self.edit_segments(|v| {
                if let Some(s) = v.iter_mut().find(|s| s.base_offset == sealed.base_offset) {
                    *s = sealed;
                }
            });
        }
        Ok(())
    }

    pub(super) fn replace_empty_active(&self, w: &mut Writer, capacity: usize) -> Result<()> {
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

    /// Create the active segment at `base` when the log has none (a new log, a crash between
    /// sealing a segment and creating its successor, or a salvage that set segments aside).
    pub(super) fn create_active_at(&self, base: u64, last_ts: u64) -> Result<()> {
        let fresh = self.new_active(base, self.opts.segment_bytes as usize, last_ts)?;
        self.edit_segments(|v| v.push(fresh.seg.clone()));
        *self.writer.lock() = Some(fresh);
        Ok(())
    }

    /// Create segment `base` with `capacity` bytes reserved, and a writer positioned at its
    /// first record.
    pub(super) fn new_active(&self, base: u64, capacity: usize, last_ts: u64) -> Result<Writer> {
        let (seg, mw) = Segment::create(&self.dir, base, now_us(), capacity)?;
        Ok(Writer {
            seg: Arc::new(seg),
            mw,
            capacity,
            pos: SEGMENT_HEADER_LEN,
            next_offset: base,
            last_ts,
            since_entry: 0,
            synced_pos: SEGMENT_HEADER_LEN,
            index_persisted: 0,
            must_roll: false,
            clean_mark_on_disk: false,
            unsealed: None,
            last_mark: 0,
            prefault: Prefault::new(self.opts.prefault_bytes, SEGMENT_HEADER_LEN),
        })
    }
}

//! Following a writer from a read-only handle (in this process or another): validate what
//! the writer committed since the last look, pick up new segments; and waiting for records.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::time::Backoff;

use crate::error::{IoContext, Result};
use crate::format::SEGMENT_HEADER_LEN;
use crate::io::mmap::SegmentMap;
use crate::log::{Inner, Log};
use crate::segment::{self, ScanState, Segment, SegmentPaths};

pub(super) struct Follower {
    pub(super) st: ScanState,
}

impl Log {
    /// Block until a record with offset `>= offset` is committed, or the timeout passes.
    /// Returns `true` if one is available. In-process appends wake waiters at once; so do
    /// appends by a writer in another process, through the log's wake file (Linux; see
    /// `docs/consumers.md`). Where that is unavailable, a read-only handle polls with a short
    /// backoff (50 µs rising to 1 ms).
    pub fn wait_for(&self, offset: u64, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        if self.next_offset() > offset {
            return Ok(true);
        }
        let inner = &self.inner;
        if inner.read_only {
            let mut backoff = Backoff::new();
            loop {
                // Registered before the look, so that a publish after it wakes us (io::wake).
                let waiter = inner.wake.get().map(|w| w.register());
                self.refresh()?;
                if self.next_offset() > offset {
                    return Ok(true);
                }
                match waiter {
                    Some(w) if Instant::now() < deadline => w.sleep_until(deadline),
                    Some(_) => return Ok(false),
                    None if !backoff.sleep_until(deadline) => return Ok(false),
                    None => {}
                }
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
}

impl Inner {
    /// Validate the records the writer appended to `seg` past `st` and publish them to this
    /// handle's readers. Returns whether anything new was found.
    fn scan_and_publish(&self, seg: &Segment, st: &mut ScanState) -> bool {
        let before = *st;
        let mut entries = Vec::new();
        segment::scan_frames(
            &seg.map,
            seg.base_offset,
            st,
            self.opts.index_interval_bytes as usize,
            &mut entries,
            None,
        );
        if *st == before {
            return false;
        }
        for e in entries {
            seg.push_index(e);
        }
        seg.map.advance_published(st.pos);
        seg.publish(st.next_offset, st.last_ts);
        self.next_offset.store(st.next_offset, Ordering::Release);
        true
    }

    /// Drop from this handle's list the oldest segments whose files the writer deleted
    /// (retention), so their maps are released (and their disk space with them, once no
    /// reader holds them) and `first_offset` moves on. Retention deletes from the front only
    /// and never the active segment.
    fn drop_deleted_segments(&self) -> Result<()> {
        let list = self.segments.read().clone();
        let gone = list.iter().take(list.len().saturating_sub(1)).take_while(|s| !s.paths.data.exists()).count();
        if gone > 0 {
            // The writer counted the removed segments' stream events before removing them.
            self.reload_removed_streams()?;
            self.edit_segments(|v| {
                v.drain(..gone.min(v.len().saturating_sub(1)));
            });
        }
        Ok(())
    }

    /// Follower: validate what the writer committed since the last look, drop the segments
    /// the writer's retention deleted, and pick up new segments.
    pub(super) fn follow(&self) -> Result<()> {
        let mut f = self.follower.lock();
        self.drop_deleted_segments()?;
        self.pick_up_rewritten_segments()?;
        loop {
            let list = self.segments.read().clone();
            let Some(last) = list.last().cloned() else { return Ok(()) };
            self.scan_and_publish(&last, &mut f.st);
            // Has the writer rolled? It creates the next segment only after finishing this
            // one, so once the next file exists, one more scan of this one sees all of it.
            let next_paths = SegmentPaths::new(&self.dir, f.st.next_offset);
            if f.st.next_offset == last.base_offset || !next_paths.data.exists() {
                return Ok(());
            }
            if self.scan_and_publish(&last, &mut f.st) {
                continue;
            }
            let base = f.st.next_offset;
            let (id, file, len, _) = segment::open_data_file(&self.dir, base, false)?;
            let map = SegmentMap::map_ro(&file, len as usize, SEGMENT_HEADER_LEN).at(&id.paths.data)?;
            let seg = Arc::new(Segment::in_memory(id, map, Vec::new(), ScanState::at_start(base)));
            self.edit_segments(|v| v.push(seg));
            f.st = ScanState::at_start(base);
        }
    }
}

//! Following a writer from a read-only handle (in this process or another): validate what
//! the writer committed since the last look, pick up new segments; and waiting for records.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
}

impl Inner {
    /// Follower: validate what the writer committed since the last look.
    pub(super) fn follow(&self) -> Result<()> {
        let mut f = self.follower.lock();
        let interval = self.opts.index_interval_bytes as usize;
        loop {
            let list = self.segments.read().clone();
            let Some(last) = list.last().cloned() else { return Ok(()) };
            let mut entries = Vec::new();
            let before = f.st;
            segment::scan_frames(&last.map, last.base_offset, &mut f.st, interval, &mut entries, None);
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
            segment::scan_frames(&last.map, last.base_offset, &mut f.st, interval, &mut entries, None);
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
            let (id, file, len, _) = segment::open_data_file(&self.dir, base, false)?;
            let map = SegmentMap::map_ro(&file, len as usize, SEGMENT_HEADER_LEN).at(&id.paths.data)?;
            let seg = Arc::new(Segment::in_memory(id, map, Vec::new(), ScanState::at_start(base)));
            self.edit_segments(|v| v.push(seg));
            f.st = ScanState::at_start(base);
        }
    }
}

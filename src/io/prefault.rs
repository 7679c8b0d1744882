//! Faulting in the active segment ahead of the writer, on a background thread.
//!
//! The first write to each page of a fresh memory-mapped file is a page fault: the kernel
//! allocates and zeroes a page, asks the file system to prepare the block, and maps it.
//! On a virtual machine that costs microseconds per 4 KiB page, more than copying the page's
//! records, so an appending thread that takes the faults itself runs at a fraction of the
//! speed of a buffered `write`. One thread per process takes them instead, a window ahead of
//! each log's writer (`Options::prefault_bytes`), with `MADV_POPULATE_WRITE`: it changes no
//! byte of the file, only which pages are mapped, so it needs no coordination with readers
//! or with the writer beyond the ranges it is given.
//!
//! The thread is started on first use and lives as long as the process. A job holds only a
//! weak reference to its map: a segment sealed or deleted meanwhile is skipped. If the kernel
//! refuses the advice (before Linux 5.14), the thread stops trying and the writer takes its
//! own faults as before.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;

use crate::io::mmap::SegmentMap;

/// The unit of work: each `madvise` covers at most this much, so that a map dropped during a
/// long window is noticed soon and the writer never waits long behind a page lock.
const STEP: usize = 1 << 20;

struct Job {
    map: Weak<SegmentMap>,
    start: usize,
    end: usize,
}

struct Worker {
    tx: Mutex<Sender<Job>>,
}

static WORKER: OnceLock<Option<Worker>> = OnceLock::new();
/// Set when the kernel refused the advice: nothing more is sent.
static UNSUPPORTED: AtomicBool = AtomicBool::new(false);

fn worker() -> Option<&'static Worker> {
    WORKER
        .get_or_init(|| {
            let (tx, rx) = channel::<Job>();
            let spawned = std::thread::Builder::new().name("tidelog-prefault".into()).spawn(move || {
                while let Ok(job) = rx.recv() {
                    let mut at = job.start;
                    while at < job.end {
                        let Some(map) = job.map.upgrade() else { break };
                        let step_end = (at + STEP).min(job.end);
                        if map.populate_write(at, step_end).is_err() {
                            UNSUPPORTED.store(true, Ordering::Relaxed);
                            break;
                        }
                        at = step_end;
                    }
                }
            });
            spawned.ok().map(|_| Worker { tx: Mutex::new(tx) })
        })
        .as_ref()
}

/// The first window: a log that appends a little (a topic written now and then, a consumer
/// group's state) dirties no more than this ahead of its writer; a writer that keeps going
/// doubles its window at each request, up to `Options::prefault_bytes`.
const FIRST_WINDOW: usize = 256 << 10;

/// Where a writer stands with its prefault window. One per active segment.
#[derive(Debug)]
pub(crate) struct Prefault {
    window: usize,
    max: usize,
    /// Everything below this was asked for.
    asked_to: usize,
    /// A window was asked for already.
    asked: bool,
}

impl Prefault {
    /// A window of up to `max` bytes (0: off) over a map whose writes start at `from`.
    pub(crate) fn new(max: u64, from: usize) -> Prefault {
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        Prefault { window: max.min(FIRST_WINDOW), max, asked_to: from, asked: false }
    }

    /// The writer is at `pos` in `map`: when less than half the window lies faulted ahead,
    /// ask for the rest of it. Cheap when nothing is to be asked (one comparison).
    #[inline]
    pub(crate) fn advance(&mut self, map: &Arc<SegmentMap>, pos: usize) {
        if self.window == 0 || self.asked_to >= map.len() || self.asked_to.saturating_sub(pos) > self.window / 2 {
            return;
        }
        self.ask(map, pos);
    }

    #[cold]
    fn ask(&mut self, map: &Arc<SegmentMap>, pos: usize) {
        if UNSUPPORTED.load(Ordering::Relaxed) {
            self.window = 0;
            return;
        }
        let Some(w) = worker() else {
            self.window = 0;
            return;
        };
        if self.asked {
            // Not the first request: the writer keeps going.
            self.window = self.window.saturating_mul(2).min(self.max);
        }
        self.asked = true;
        let start = self.asked_to.max(pos);
        let end = pos.saturating_add(self.window).min(map.len());
        if end <= start {
            return;
        }
        if w.tx.lock().send(Job { map: Arc::downgrade(map), start, end }).is_ok() {
            self.asked_to = end;
        } else {
            self.window = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faulting_ahead_changes_no_byte_of_the_file() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(3 << 20).unwrap();
        let (map, mut w) = SegmentMap::map_rw(&f, 3 << 20, 0).unwrap();
        w.unpublished_mut(0, 4).unwrap().copy_from_slice(&[1, 2, 3, 4]);
        map.populate_write(0, 3 << 20).unwrap();
        map.populate_write(2 << 20, 9 << 20).unwrap();
        w.publish(3 << 20);
        let bytes = map.published_bytes();
        assert_eq!(&bytes[..4], &[1, 2, 3, 4]);
        assert!(bytes[4..].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_window_is_asked_for_when_half_of_it_is_used_and_grows_while_the_writer_keeps_going() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(16 << 20).unwrap();
        let (map, _w) = SegmentMap::map_rw(&f, 16 << 20, 0).unwrap();
        let mut p = Prefault::new(1 << 20, 0);
        p.advance(&map, 0);
        assert_eq!(p.asked_to, 256 << 10, "a writer that appended once dirties a small window");
        p.advance(&map, 100 << 10);
        assert_eq!(p.asked_to, 256 << 10, "more than half the window is still ahead");
        p.advance(&map, 200 << 10);
        assert_eq!(p.asked_to, (200 << 10) + (512 << 10), "asked again: the window doubles");
        p.advance(&map, 400 << 10);
        assert_eq!(p.asked_to, (200 << 10) + (512 << 10), "more than half of it is still ahead");
        p.advance(&map, 500 << 10);
        assert_eq!(p.asked_to, (500 << 10) + (1 << 20), "doubled again");
        p.advance(&map, 1400 << 10);
        assert_eq!(p.asked_to, (1400 << 10) + (1 << 20), "up to the most asked for");
        p.advance(&map, 15 << 20);
        assert_eq!(p.asked_to, 16 << 20, "the window stops at the end of the map");
        let mut off = Prefault::new(0, 0);
        off.advance(&map, 0);
        assert_eq!(off.asked_to, 0, "a window of 0 asks for nothing");
    }
}

//! The only module with `unsafe` code: memory maps of segment and index files.
//!
//! # The contract that keeps the maps sound
//!
//! 1. **No file shrinks while it is mapped.** tidelog never truncates a segment or a sealed
//!    index file while a log is open, in this process or another: segments are preallocated
//!    and a torn tail is repaired by zeroing in place; an index is rebuilt by writing a new
//!    file and renaming it over the old one (the old inode stays mapped until unmapped).
//!    Deleting a segment unlinks it; the map stays valid until the last `Arc` drops.
//!    A third party that truncates our files while we run breaks this contract (SIGBUS), as it
//!    would for any memory-mapped store; it is listed among the media assumptions in
//!    `docs/format.md`.
//! 2. **Published bytes never change.** Bytes below [`SegmentMap::published`] are immutable for
//!    as long as the map lives. Only the unique [`MapWriter`] writes, and only at or above the
//!    published end. Readers create shared slices only below the published end (loaded with
//!    `Acquire`; the writer stores it with `Release` after writing the bytes).
//! 3. **Frames are published to other processes by their length field.** The writer fills a
//!    frame's bytes after its length field, then stores the 4-byte length with an atomic
//!    `Release` store. A follower in another process loads the length with `Acquire`; a
//!    non-zero length means the frame's bytes are complete.
//! 4. **Shared words are only ever accessed atomically.** [`SharedWords`] maps a small file
//!    (the wake file, `docs/format.md`) shared and writable; every process that follows the
//!    format reads and writes its words only through `AtomicU32` (and the kernel's futex,
//!    which reads them atomically). The file is replaced by rename, never truncated.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use memmap2::{MmapOptions, MmapRaw};

/// A memory map of a whole file, shared between one writer and any number of readers.
pub(crate) struct SegmentMap {
    raw: MmapRaw,
    len: usize,
    /// Bytes `[0, published)` are immutable and may be read through shared slices.
    published: AtomicUsize,
}

impl std::fmt::Debug for SegmentMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentMap").field("len", &self.len).field("published", &self.published()).finish()
    }
}

/// The unique handle allowed to write into a writable [`SegmentMap`]. Not `Clone`.
pub(crate) struct MapWriter {
    map: Arc<SegmentMap>,
}

impl SegmentMap {
    /// Map `file` (of `len` bytes) for reading and writing, with `published` bytes already
    /// valid. Returns the shared map and its unique writer.
    pub fn map_rw(file: &File, len: usize, published: usize) -> io::Result<(Arc<SegmentMap>, MapWriter)> {
        if published > len {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "published past map end"));
        }
        let raw = MmapOptions::new().len(len).map_raw(file)?;
        let map = Arc::new(SegmentMap { raw, len, published: AtomicUsize::new(published) });
        Ok((map.clone(), MapWriter { map }))
    }

    /// Map `file` (of `len` bytes) read-only. `published` bytes are taken as valid now;
    /// a follower advances it with [`SegmentMap::advance_published`] after validating more.
    pub fn map_ro(file: &File, len: usize, published: usize) -> io::Result<Arc<SegmentMap>> {
        if published > len {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "published past map end"));
        }
        let raw = MmapOptions::new().len(len).map_raw_read_only(file)?;
        Ok(Arc::new(SegmentMap { raw, len, published: AtomicUsize::new(published) }))
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// End of the immutable, readable prefix.
    #[inline]
    pub fn published(&self) -> usize {
        self.published.load(Ordering::Acquire)
    }

    /// The immutable prefix `[0, published)`.
    #[inline]
    pub fn published_bytes(&self) -> &[u8] {
        let end = self.published();
        if end == 0 {
            return &[];
        }
        // SAFETY: `[0, end)` lies inside the mapping (`end <= len`, checked where `published`
        // is set) and is never written again while the map lives (contract point 2); the
        // file is never shrunk while mapped (point 1). The returned slice borrows `self`,
        // which keeps the mapping alive.
        unsafe { std::slice::from_raw_parts(self.raw.as_ptr(), end) }
    }

    /// Load the frame length at `pos` with `Acquire` ordering, for followers that read past
    /// the published end of a map written by another process. `None` if `pos` is misaligned
    /// or the 4 bytes do not fit in the map.
    pub fn frame_len_acquire(&self, pos: usize) -> Option<u32> {
        if !pos.is_multiple_of(4) || pos.checked_add(4)? > self.len {
            return None;
        }
        // SAFETY: `pos + 4 <= len` so the pointer is inside the mapping, and `pos` is a
        // multiple of 4 while the mapping is page aligned, so the pointer is aligned for
        // `AtomicU32`. The writer only ever stores to this field atomically (point 3), so the
        // access is an atomic-atomic pair, never a data race.
        let atom = unsafe { AtomicU32::from_ptr(self.raw.as_mut_ptr().add(pos).cast::<u32>()) };
        Some(u32::from_le(atom.load(Ordering::Acquire)))
    }

    /// Bytes `[start, end)` of a frame a follower has seen published by its length field
    /// ([`SegmentMap::frame_len_acquire`] returned non-zero for the frame starting at `start`).
    /// `None` if the range is outside the map.
    pub fn follower_bytes(&self, start: usize, end: usize) -> Option<&[u8]> {
        if start > end || end > self.len {
            return None;
        }
        // SAFETY: the range lies in the mapping. The writing process completed these bytes
        // before its `Release` store of the frame length, which the caller observed with
        // `Acquire` (point 3), and it never rewrites a published frame. The one exception is a
        // new writer zeroing a torn, never-completed batch after a crash: a follower only
        // advances past bytes it re-validates by checksum, so it never acts on such bytes.
        Some(unsafe { std::slice::from_raw_parts(self.raw.as_ptr().add(start), end - start) })
    }

    /// Advance the published end of a read-only map after validating frames up to `end`.
    /// `end` may lie past the map: a scan steps over a frame's alignment padding, which a file
    /// cut short may lack; the end is then clamped to the map.
    pub fn advance_published(&self, end: usize) {
        let end = end.min(self.len);
        self.published.fetch_max(end, Ordering::Release);
    }

    /// Fault in `[start, end)` for writing (`MADV_POPULATE_WRITE`, Linux 5.14 and later)
    /// without changing a byte, so that a later write there finds its pages mapped. The
    /// range is clamped to the map. Errors (an older kernel, memory pressure) only mean the
    /// pages were not faulted in ahead.
    pub fn populate_write(&self, start: usize, end: usize) -> io::Result<()> {
        let end = end.min(self.len);
        if end <= start {
            return Ok(());
        }
        self.raw.advise_range(memmap2::Advice::PopulateWrite, start, end - start)
    }

    /// Write the dirty pages of `[start, end)` to stable storage (`msync(MS_SYNC)`).
    pub fn flush_range(&self, start: usize, end: usize) -> io::Result<()> {
        if end <= start {
            return Ok(());
        }
        self.raw.flush_range(start, end - start)
    }
}

impl MapWriter {
    /// A mutable view of `[start, end)`, which must lie at or after the published end.
    /// Returns `None` if the range is outside the map or overlaps published bytes.
    pub fn unpublished_mut(&mut self, start: usize, end: usize) -> Option<&mut [u8]> {
        if start > end || end > self.map.len || start < self.map.published() {
            return None;
        }
        // SAFETY: the range lies in the mapping and at or after the published end, so no
        // reader in this process holds a slice over it (readers slice only below the published
        // end, point 2). `MapWriter` is unique per map and this borrow is tied to `&mut self`,
        // so no other mutable view exists.
        Some(unsafe { std::slice::from_raw_parts_mut(self.map.raw.as_mut_ptr().add(start), end - start) })
    }

    /// Store a frame's length at `pos` with `Release`, after its other bytes were written
    /// through [`MapWriter::unpublished_mut`]. `pos` must be 4-aligned, unpublished, in the map.
    pub fn store_frame_len(&mut self, pos: usize, len: u32) -> bool {
        if !pos.is_multiple_of(4) || pos + 4 > self.map.len || pos < self.map.published() {
            return false;
        }
        // SAFETY: in bounds and 4-aligned (checked above; the mapping is page aligned). The
        // bytes are unpublished so no in-process reader has a slice over them, and followers
        // in other processes read this field only atomically (point 3).
        let atom = unsafe { AtomicU32::from_ptr(self.map.raw.as_mut_ptr().add(pos).cast::<u32>()) };
        atom.store(len.to_le(), Ordering::Release);
        true
    }

    /// Make `[0, end)` visible to readers. `end` never moves backwards.
    pub fn publish(&mut self, end: usize) {
        debug_assert!(end <= self.map.len);
        self.map.published.store(end.min(self.map.len), Ordering::Release);
    }
}

/// A small file mapped shared and writable, seen as 32-bit words that every process mapping
/// it reads and writes atomically (contract point 4). The words live as long as the map.
pub(crate) struct SharedWords {
    raw: MmapRaw,
    words: usize,
}

impl std::fmt::Debug for SharedWords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedWords").field("words", &self.words).finish()
    }
}

impl SharedWords {
    /// Map the first `words` 32-bit words of `file`, which must be open for reading and
    /// writing and at least `4 * words` bytes long (checked: touching a page past the end of
    /// a file is SIGBUS).
    pub fn map(file: &File, words: usize) -> io::Result<SharedWords> {
        let len = words.checked_mul(4).filter(|&l| l > 0);
        let Some(len) = len else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no words to map"));
        };
        if file.metadata()?.len() < len as u64 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "file shorter than its words"));
        }
        let raw = MmapOptions::new().len(len).map_raw(file)?;
        Ok(SharedWords { raw, words })
    }

    /// The words, as atomics shared with every other process mapping the file.
    pub fn words(&self) -> &[AtomicU32] {
        // SAFETY: alignment: the mapping is page aligned, so its start is aligned for
        // `AtomicU32` (which has the size and layout of `u32`). Bounds and lifetime: the
        // `4 * words` bytes are mapped (the file's length was checked when mapped, and the file
        // is never truncated, only replaced by rename: points 1 and 4), and the slice borrows
        // `self`, which owns the mapping, so it cannot outlive it. Sharing: the mapping is
        // `MAP_SHARED`; every access to it, here and in other processes, is atomic (point 4), so
        // there is no data race. The values are advisory counters: a third party scribbling on
        // the file changes numbers, never memory safety.
        unsafe { std::slice::from_raw_parts(self.raw.as_mut_ptr().cast::<AtomicU32>(), self.words) }
    }
}

/// A read-only map of a whole immutable file (a sealed index).
pub(crate) fn map_whole_ro(file: &File) -> io::Result<Arc<SegmentMap>> {
    let len = usize::try_from(file.metadata()?.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large to map"))?;
    if len == 0 {
        // Zero-length maps are not allowed; an empty index never gets here (it has a header).
        return Err(io::Error::new(io::ErrorKind::InvalidData, "empty file"));
    }
    SegmentMap::map_ro(file, len, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_cannot_touch_published_bytes() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(4096).unwrap();
        let (map, mut w) = SegmentMap::map_rw(&f, 4096, 0).unwrap();
        w.unpublished_mut(0, 16).unwrap().copy_from_slice(&[7u8; 16]);
        w.publish(16);
        assert_eq!(map.published_bytes(), &[7u8; 16]);
        assert!(w.unpublished_mut(8, 24).is_none());
        assert!(w.unpublished_mut(16, 4097).is_none());
        assert!(!w.store_frame_len(8, 1));
        assert!(w.store_frame_len(16, 5));
        assert_eq!(map.frame_len_acquire(16), Some(5));
        assert_eq!(map.frame_len_acquire(4094), None);
    }

    #[test]
    fn shared_words_are_seen_by_every_map_of_the_file_and_stop_at_its_end() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(8).unwrap();
        let a = SharedWords::map(&f, 2).unwrap();
        let b = SharedWords::map(&f, 2).unwrap();
        a.words()[1].store(7, Ordering::SeqCst);
        assert_eq!(b.words()[1].load(Ordering::SeqCst), 7);
        assert_eq!(a.words().len(), 2);
        assert!(SharedWords::map(&f, 3).is_err(), "a file shorter than its words is refused");
        assert!(SharedWords::map(&f, 0).is_err());
    }
}

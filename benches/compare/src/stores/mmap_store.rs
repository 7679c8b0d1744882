//! `mmap`: a bare memory map of one file, with the frames of [`super::frames`] and nothing else
//! (no checksum, no index on disk, no recovery).
//!
//! The store reserves [`RESERVE`] bytes of address space over its file once, and grows the file
//! with `fallocate` in steps of [`GROW`] (tidelog's default segment size) before frames are
//! copied past its end; preallocated space stays when the store is closed, as tidelog's
//! segments do. A bulk load copies the frames into the map and ends with one `msync(MS_SYNC)`
//! of the written range, so it pays each page's first-touch fault; a durable append copies its
//! batch and `msync`s the pages it touched. Replay walks the frames of the map, summing their
//! payload bytes; a random read slices the map at the position kept when the frame was
//! written.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use memmap2::{MmapMut, MmapOptions};

use super::frames::{self, Positions};
use super::Store;
use crate::data::{Digest, Event};
use crate::{now_us, Result};

/// Address space reserved over the file (the largest store this baseline can hold).
pub const RESERVE: u64 = 64 << 30;
/// The file grows by this much at a time.
pub const GROW: u64 = 128 << 20;

pub struct MmapStore {
    /// `RESERVE` bytes mapped over `file`; only the first `cap` are backed by the file.
    map: MmapMut,
    file: File,
    path: PathBuf,
    /// File length (preallocated).
    cap: u64,
    pos: Positions,
    /// Start of the bytes written since the last `msync`.
    dirty_from: u64,
}

impl MmapStore {
    pub fn open(dir: &Path) -> Result<MmapStore> {
        let path = dir.join("data");
        let (file, _) = super::file_store::create(&path)?;
        let cap = file.metadata()?.len();
        if cap > RESERVE {
            return Err(format!("mmap: {} is larger than the {RESERVE}-byte reservation", path.display()).into());
        }
        // SAFETY: the map is shared with no other process, and nothing truncates the file
        // while it is mapped (this store is its only user and never shrinks it), so the bytes
        // behind the map stay valid for as long as it lives. The map is longer than the file;
        // the store reads and writes only below `cap`, the file's length, so no access falls
        // past the end of the file (which would raise SIGBUS).
        let map = unsafe { MmapOptions::new().len(RESERVE as usize).map_mut(&file)? };
        let pos = match frames::take(&path).filter(|p| p.end <= cap) {
            Some(p) => p,
            None => {
                // The frames end at the first zero length field (or at the end of the file).
                let mut pos = Positions::default();
                let mut d = Digest::default();
                pos.end = frames::walk(&map[..cap as usize], 0, &mut d, Some(&mut pos.starts)) as u64;
                pos
            }
        };
        let dirty_from = pos.end;
        Ok(MmapStore { map, file, path, cap, pos, dirty_from })
    }

    /// Make the file at least `len` bytes long (in [`GROW`] steps), with its blocks allocated.
    fn reserve(&mut self, len: u64) -> Result<()> {
        if len <= self.cap {
            return Ok(());
        }
        let cap = len.div_ceil(GROW) * GROW;
        if cap > RESERVE {
            return Err(format!("mmap: the store would outgrow its {RESERVE}-byte reservation").into());
        }
        // SAFETY: `fallocate` only reads its integer arguments; the descriptor is open for
        // writing for the whole call.
        let rc = unsafe { libc::fallocate(self.file.as_raw_fd(), 0, 0, cap as libc::off_t) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        self.cap = cap;
        Ok(())
    }
}

impl Store for MmapStore {
    fn append(&mut self, batch: &[Event<'_>]) -> Result<()> {
        let bytes: usize = batch.iter().map(|e| frames::frame_len(e.payload.len())).sum();
        self.reserve(self.pos.end + bytes as u64)?;
        let ts = now_us();
        for e in batch {
            let n = frames::frame_len(e.payload.len());
            let at = self.pos.end as usize;
            frames::encode_into(&mut self.map[at..at + n], ts, e);
            self.pos.push(n);
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        let end = self.pos.end;
        if end > self.dirty_from {
            // msync(MS_SYNC) of the pages written since the last sync.
            self.map.flush_range(self.dirty_from as usize, (end - self.dirty_from) as usize)?;
            self.dirty_from = end;
        }
        Ok(())
    }

    fn append_durable(&mut self, batch: &[Event<'_>]) -> Result<()> {
        self.append(batch)?;
        self.sync()
    }

    fn append_with_position(&mut self, _: &[Event<'_>], _: &[u8], _: u64) -> Result<()> {
        Err("mmap: the position workload is not measured on the baselines".into())
    }

    fn position_state(&mut self, _: &[u8]) -> Result<(u64, Option<u64>)> {
        Err("mmap: the position workload is not measured on the baselines".into())
    }

    fn replay(&mut self) -> Result<Digest> {
        let mut d = Digest::default();
        let end = self.pos.end as usize;
        let walked = frames::walk(&self.map[..end], 0, &mut d, None);
        if walked != end {
            return Err(format!("mmap: frames end at byte {walked}, data at {end}").into());
        }
        Ok(d)
    }

    fn read_at(&mut self, offset: u64, digest: &mut Digest) -> Result<()> {
        let (start, end) = self.pos.range(offset).ok_or_else(|| super::missing("mmap", offset))?;
        digest.add(frames::payload(&self.map[start as usize..end as usize], "mmap", offset)?);
        Ok(())
    }

    fn read_last(&mut self) -> Result<Option<u64>> {
        let last = self.pos.last();
        frames::read_last(self, last)
    }

    fn used_bytes(&self) -> Result<Option<u64>> {
        Ok(Some(self.pos.end))
    }

    fn close(self: Box<Self>) -> Result<()> {
        let this = *self;
        drop(this.map);
        frames::keep(&this.path, this.pos);
        Ok(())
    }
}

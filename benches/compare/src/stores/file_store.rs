//! `file`: what a plain program gets from `write(2)` and `fdatasync(2)` on one file, with the
//! frames of [`super::frames`] and nothing else (no checksum, no index on disk, no recovery).
//!
//! * Bulk: frames are staged in a reusable 256 KiB buffer, written with one `write` each time it
//!   fills, and the load ends with one `fdatasync`.
//! * Durable: the batch's frames are written with one `write`, then `fdatasync`.
//! * Several threads ([`Store::append_durable_threads`]): one shared file. Each thread encodes
//!   its frame, takes a mutex only to `pwrite` it at the end of the file and note its position,
//!   then calls `fdatasync` outside the mutex; the append is acknowledged when that returns.
//!   Concurrent `fdatasync`s of one file share the device flush in the kernel, which is the
//!   group commit a plain program gets for free; holding the mutex across the `fdatasync`
//!   would serialise the flushes, and one file per thread would give up the single order that
//!   tidelog keeps.
//! * Replay: `read` into a 256 KiB buffer, walking the frames in it.
//! * Random read: one `pread` of the frame at the position kept when it was written.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::frames::{self, Positions};
use super::Store;
use crate::data::{Digest, Event};
use crate::{now_us, Result};

/// Staging buffer of the bulk load and read buffer of the replay.
pub const BUFFER: usize = 256 << 10;

pub struct FileStore {
    file: File,
    path: PathBuf,
    pos: Positions,
    /// Frames not yet written (bulk).
    stage: Vec<u8>,
    /// Scratch for `pread`.
    scratch: Vec<u8>,
}

/// Open (creating) `path` for reading and writing; a new file's directory is fsynced so that
/// its name is durable too.
pub fn create(path: &Path) -> Result<(File, bool)> {
    let created = !path.exists();
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
    if created {
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
    }
    Ok((file, created))
}

impl FileStore {
    pub fn open(dir: &Path) -> Result<FileStore> {
        let path = dir.join("data");
        let (mut file, _) = create(&path)?;
        let len = file.seek(SeekFrom::End(0))?;
        let pos = match frames::take(&path).filter(|p| p.end == len) {
            Some(p) => p,
            None => rebuild(&path)?,
        };
        Ok(FileStore { file, path, pos, stage: Vec::with_capacity(BUFFER + (64 << 10)), scratch: Vec::new() })
    }

    fn flush_stage(&mut self) -> Result<()> {
        if !self.stage.is_empty() {
            self.file.write_all(&self.stage)?;
            self.stage.clear();
        }
        Ok(())
    }

    fn stage(&mut self, batch: &[Event<'_>]) {
        let ts = now_us();
        for e in batch {
            let before = self.stage.len();
            frames::encode(&mut self.stage, ts, e);
            self.pos.push(self.stage.len() - before);
        }
    }
}

/// Positions of the frames in the file at `path`, by reading it (when the registry has none).
fn rebuild(path: &Path) -> Result<Positions> {
    let mut pos = Positions::default();
    let d = scan(path, Some(&mut pos.starts))?;
    pos.end = d.1;
    Ok(pos)
}

/// Read the file with `read` into a [`BUFFER`]-byte buffer and walk its frames. Returns the
/// digest and the bytes walked.
fn scan(path: &Path, mut positions: Option<&mut Vec<u64>>) -> Result<(Digest, u64)> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; BUFFER];
    let (mut filled, mut base) = (0, 0u64);
    let mut d = Digest::default();
    loop {
        let n = f.read(&mut buf[filled..])?;
        filled += n;
        let used = frames::walk(&buf[..filled], base, &mut d, positions.as_deref_mut());
        buf.copy_within(used..filled, 0);
        filled -= used;
        base += used as u64;
        if n == 0 {
            break;
        }
        if filled == buf.len() {
            // One frame larger than the buffer.
            buf.resize(2 * buf.len(), 0);
        }
    }
    Ok((d, base))
}

impl Store for FileStore {
    fn append(&mut self, batch: &[Event<'_>]) -> Result<()> {
        self.stage(batch);
        if self.stage.len() >= BUFFER {
            self.flush_stage()?;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.flush_stage()?;
        Ok(self.file.sync_data()?)
    }

    fn append_durable(&mut self, batch: &[Event<'_>]) -> Result<()> {
        self.stage(batch);
        self.sync()
    }

    fn append_durable_threads(&mut self, shares: &[&[Event<'_>]]) -> Result<Vec<f64>> {
        self.flush_stage()?;
        let file = &self.file;
        let pos = Mutex::new(&mut self.pos);
        let lat = super::in_threads(shares, |e| {
            let mut buf = Vec::with_capacity(frames::frame_len(e.payload.len()));
            frames::encode(&mut buf, now_us(), e);
            {
                let mut p = pos.lock().map_err(|_| "file: a writer thread panicked")?;
                file.write_all_at(&buf, p.end)?;
                p.push(buf.len());
            }
            Ok(file.sync_data()?)
        })?;
        self.file.seek(SeekFrom::End(0))?;
        Ok(lat)
    }

    fn append_with_position(&mut self, _: &[Event<'_>], _: &[u8], _: u64) -> Result<()> {
        Err("file: the position workload is not measured on the baselines".into())
    }

    fn position_state(&mut self, _: &[u8]) -> Result<(u64, Option<u64>)> {
        Err("file: the position workload is not measured on the baselines".into())
    }

    fn replay(&mut self) -> Result<Digest> {
        self.flush_stage()?;
        let (d, walked) = scan(&self.path, None)?;
        if walked != self.pos.end {
            return Err(format!("file: frames end at byte {walked}, file at {}", self.pos.end).into());
        }
        Ok(d)
    }

    fn read_at(&mut self, offset: u64, digest: &mut Digest) -> Result<()> {
        let (start, end) = self.pos.range(offset).ok_or_else(|| super::missing("file", offset))?;
        self.scratch.resize((end - start) as usize, 0);
        self.file.read_exact_at(&mut self.scratch, start)?;
        digest.add(frames::payload(&self.scratch, "file", offset)?);
        Ok(())
    }

    fn read_last(&mut self) -> Result<Option<u64>> {
        let last = self.pos.last();
        frames::read_last(self, last)
    }

    fn close(self: Box<Self>) -> Result<()> {
        let mut this = *self;
        this.flush_stage()?;
        frames::keep(&this.path, this.pos);
        Ok(())
    }
}

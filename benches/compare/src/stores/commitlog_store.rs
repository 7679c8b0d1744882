//! The `commitlog` crate (0.2). Messages carry the timestamp and key as metadata.
//!
//! Durability: `CommitLog::flush` calls `File::flush` on the segment (a no-op for a `File`:
//! nothing is written to stable storage) and `msync`s only whole index pages written since the
//! last flush. The crate never fsyncs segment data. [`Kind::CommitlogFsync`] adds what a user
//! would have to add: an `fdatasync` of the segment and index files written since the last
//! durability point, done by this harness.
//!
//! [`Kind::CommitlogFsync`]: super::Kind::CommitlogFsync

use std::fs::File;
use std::path::{Path, PathBuf};

use commitlog::message::{MessageBuf, MessageSet};
use commitlog::{CommitLog, LogOptions, ReadLimit};

use super::{missing, Mode, Store};
use crate::data::{Digest, Event, KEY_LEN};
use crate::{now_us, Result};

/// commitlog's per-message header.
const MESSAGE_HEADER: usize = 20;
const META_LEN: usize = 8 + KEY_LEN;

struct Handle {
    log: CommitLog,
    dir: PathBuf,
    /// Highest segment base offset fdatasynced so far (harness fsync).
    synced_base: Option<u64>,
}

pub struct CommitlogStore {
    events: Handle,
    positions: Option<Handle>,
    harness_fsync: bool,
    /// Read limit that returns exactly one message: its size plus one byte (with a limit of
    /// exactly its size, commitlog 0.2 fails to read the last message of a segment with
    /// `MessageExceededMaxBytes`).
    one_message: usize,
}

impl Handle {
    fn open(dir: &Path) -> Result<Handle> {
        let mut opts = LogOptions::new(dir);
        // Default 1 MB limits the whole appended message set; our bulk chunks are larger.
        opts.message_max_bytes(64 << 20);
        Ok(Handle { log: CommitLog::new(opts)?, dir: dir.to_path_buf(), synced_base: None })
    }

    fn append(&mut self, batch: &[Event<'_>]) -> Result<()> {
        let ts = now_us().to_le_bytes();
        let mut meta = [0u8; META_LEN];
        meta[..8].copy_from_slice(&ts);
        let mut buf = MessageBuf::default();
        for e in batch {
            meta[8..].copy_from_slice(&e.key);
            buf.push_with_metadata(&meta[..], e.payload).map_err(|e| format!("commitlog: {e:?}"))?;
        }
        self.log.append(&mut buf).map_err(|e| format!("commitlog append: {e:?}"))?;
        Ok(())
    }

    fn append_one(&mut self, meta: &[u8], payload: &[u8]) -> Result<()> {
        let mut buf = MessageBuf::default();
        buf.push_with_metadata(meta, payload).map_err(|e| format!("commitlog: {e:?}"))?;
        self.log.append(&mut buf)?;
        Ok(())
    }

    /// The crate's flush, then (harness) fdatasync of every segment/index file whose base is
    /// at or after the last one synced, and of the directory when a new file appeared.
    fn sync(&mut self, harness_fsync: bool) -> Result<()> {
        self.log.flush()?;
        if !harness_fsync {
            return Ok(());
        }
        let mut newest = None;
        let mut new_file = false;
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            let Some((base, ext)) = name.split_once('.') else { continue };
            let Ok(base) = base.parse::<u64>() else { continue };
            if ext != "log" && ext != "index" {
                continue;
            }
            if self.synced_base.is_none_or(|s| base >= s) {
                File::open(&path)?.sync_data()?;
                new_file |= self.synced_base.is_none_or(|s| base > s);
                newest = newest.max(Some(base));
            }
        }
        if new_file {
            File::open(&self.dir)?.sync_all()?;
        }
        self.synced_base = newest.or(self.synced_base);
        Ok(())
    }

    fn next_offset(&self) -> u64 {
        self.log.next_offset()
    }

    fn read_one(&self, offset: u64, limit: usize) -> Result<MessageBuf> {
        self.log
            .read(offset, ReadLimit::max_bytes(limit))
            .map_err(|e| format!("commitlog read at {offset}: {e:?}").into())
    }
}

impl CommitlogStore {
    pub fn open(dir: &Path, mode: Mode, harness_fsync: bool, max_payload: usize) -> Result<CommitlogStore> {
        let events = Handle::open(&dir.join("events"))?;
        let positions = if mode == Mode::Position { Some(Handle::open(&dir.join("positions"))?) } else { None };
        Ok(CommitlogStore {
            events,
            positions,
            harness_fsync,
            one_message: MESSAGE_HEADER + META_LEN + max_payload + 1,
        })
    }
}

impl Store for CommitlogStore {
    fn append(&mut self, batch: &[Event<'_>]) -> Result<()> {
        self.events.append(batch)
    }

    fn sync(&mut self) -> Result<()> {
        self.events.sync(self.harness_fsync)
    }

    fn append_durable(&mut self, batch: &[Event<'_>]) -> Result<()> {
        self.events.append(batch)?;
        self.events.sync(self.harness_fsync)
    }

    fn append_with_position(&mut self, batch: &[Event<'_>], consumer: &[u8], position: u64) -> Result<()> {
        let positions = self.positions.as_mut().ok_or("positions log not open")?;
        self.events.append(batch)?;
        let mut p = [0u8; 16];
        p[..8].copy_from_slice(&position.to_le_bytes());
        p[8..].copy_from_slice(&self.events.next_offset().to_le_bytes());
        positions.append_one(consumer, &p)?;
        self.events.sync(self.harness_fsync)?;
        positions.sync(self.harness_fsync)
    }

    fn position_state(&mut self, consumer: &[u8]) -> Result<(u64, Option<u64>)> {
        let events = self.events.next_offset();
        let Some(positions) = &self.positions else { return Ok((events, None)) };
        let mut pos = None;
        let mut off = 0;
        while off < positions.next_offset() {
            let buf = positions.read_one(off, 1 << 20)?;
            for m in buf.iter() {
                let p = m.payload();
                if m.metadata() == consumer && u64::from_le_bytes(p[8..16].try_into()?) <= events {
                    pos = Some(u64::from_le_bytes(p[..8].try_into()?));
                }
                off = m.offset() + 1;
            }
        }
        Ok((events, pos))
    }

    fn replay(&mut self) -> Result<Digest> {
        let mut d = Digest::default();
        let mut off = 0;
        let end = self.events.next_offset();
        while off < end {
            let buf = self.events.read_one(off, (1 << 20).max(2 * self.one_message))?;
            let before = off;
            for m in buf.iter() {
                d.add(m.payload());
                off = m.offset() + 1;
            }
            if off == before {
                return Err(missing("commitlog", off));
            }
        }
        Ok(d)
    }

    fn read_at(&mut self, offset: u64, digest: &mut Digest) -> Result<()> {
        let buf = self.events.read_one(offset, self.one_message)?;
        let m = buf.iter().next().ok_or_else(|| missing("commitlog", offset))?;
        if m.offset() != offset {
            return Err(missing("commitlog", offset));
        }
        digest.add(m.payload());
        Ok(())
    }

    fn read_last(&mut self) -> Result<Option<u64>> {
        let next = self.events.next_offset();
        if next == 0 {
            return Ok(None);
        }
        let mut d = Digest::default();
        self.read_at(next - 1, &mut d)?;
        Ok(Some(next - 1))
    }

    fn close(self: Box<Self>) -> Result<()> {
        // No close in the crate's API: flush and drop.
        let mut this = *self;
        this.events.log.flush()?;
        if let Some(p) = this.positions.as_mut() {
            p.log.flush()?;
        }
        Ok(())
    }
}

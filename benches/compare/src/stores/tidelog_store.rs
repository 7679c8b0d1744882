//! tidelog.

use std::path::Path;

use tidelog::{Durability, Header, Log, Options, Record};

use super::{missing, Mode, Store};
use crate::data::{Digest, Event};
use crate::Result;

/// Header marking a position record in the one-log variant.
const POSITION_HEADER: &str = "position";

pub struct TidelogStore {
    log: Log,
    /// Second log holding consumer positions (two-log position variant).
    positions: Option<Log>,
    one_log: bool,
}

impl TidelogStore {
    pub fn open(dir: &Path, mode: Mode, one_log: bool) -> Result<TidelogStore> {
        // Durable mode uses `Always` (append returns once flushed); the two-log position
        // variant appends to both logs first and then syncs each (`append_batch` + `sync`).
        let durability = match (mode, one_log) {
            (Mode::Durable, _) | (Mode::Position, true) => Durability::Always,
            _ => Durability::None,
        };
        let mut opts = Options::default().durability(durability);
        let interval = super::TIDELOG_INDEX_INTERVAL.load(std::sync::atomic::Ordering::Relaxed);
        if interval > 0 {
            opts = opts.index_interval_bytes(interval);
        }
        let log = Log::open(dir.join("events"), opts.clone())?;
        let positions =
            if mode == Mode::Position && !one_log { Some(Log::open(dir.join("positions"), opts)?) } else { None };
        Ok(TidelogStore { log, positions, one_log })
    }
}

fn records<'a>(batch: &'a [Event<'a>]) -> Vec<Record<'a>> {
    batch.iter().map(|e| Record::new(e.payload).key(&e.key)).collect()
}

impl Store for TidelogStore {
    fn append(&mut self, batch: &[Event<'_>]) -> Result<()> {
        self.log.append_batch(&records(batch))?;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        Ok(self.log.sync()?)
    }

    fn append_durable(&mut self, batch: &[Event<'_>]) -> Result<()> {
        if let [e] = batch {
            self.log.append(Record::new(e.payload).key(&e.key))?;
        } else {
            self.log.append_batch(&records(batch))?;
        }
        Ok(())
    }

    fn append_durable_threads(&mut self, shares: &[&[Event<'_>]]) -> Result<Vec<f64>> {
        // `Log` is shared by reference: with `Durability::Always` each `append` returns once
        // its record is on stable storage, and appends waiting at the same time share a flush.
        let log = &self.log;
        super::in_threads(shares, |e| {
            log.append(Record::new(e.payload).key(&e.key))?;
            Ok(())
        })
    }

    fn append_with_position(&mut self, batch: &[Event<'_>], consumer: &[u8], position: u64) -> Result<()> {
        if self.one_log {
            // One atomic batch: the events and a position record (recognised by its header).
            let headers = [Header { name: POSITION_HEADER, value: b"" }];
            let pos = position.to_le_bytes();
            let mut recs = records(batch);
            recs.push(Record::new(&pos).key(consumer).headers(&headers));
            self.log.append_batch(&recs)?;
            return Ok(());
        }
        let positions = self.positions.as_ref().ok_or("positions log not open")?;
        let range = self.log.append_batch(&records(batch))?;
        // The position record also carries the events log's end, so that recovery can tell a
        // position that got ahead of its events (no cross-log transaction) and step back.
        let mut p = [0u8; 16];
        p[..8].copy_from_slice(&position.to_le_bytes());
        p[8..].copy_from_slice(&range.end.to_le_bytes());
        positions.append(Record::new(&p).key(consumer))?;
        self.log.sync()?;
        positions.sync()?;
        Ok(())
    }

    fn position_state(&mut self, consumer: &[u8]) -> Result<(u64, Option<u64>)> {
        let le = |b: &[u8]| -> Result<u64> { Ok(u64::from_le_bytes(b.get(..8).ok_or("short")?.try_into()?)) };
        if self.one_log {
            let (mut events, mut pos) = (0, None);
            let mut c = self.log.cursor(self.log.first_offset());
            while let Some(r) = c.next()? {
                if r.header(POSITION_HEADER).is_some() {
                    if r.key() == Some(consumer) {
                        pos = Some(le(r.payload())?);
                    }
                } else {
                    events += 1;
                }
            }
            return Ok((events, pos));
        }
        let events = self.log.next_offset() - self.log.first_offset();
        let Some(positions) = &self.positions else { return Ok((events, None)) };
        // The last position whose events are all in the events log.
        let mut pos = None;
        let mut c = positions.cursor(positions.first_offset());
        while let Some(r) = c.next()? {
            if r.key() == Some(consumer) && le(&r.payload()[8..])? <= self.log.next_offset() {
                pos = Some(le(r.payload())?);
            }
        }
        Ok((events, pos))
    }

    fn replay(&mut self) -> Result<Digest> {
        let mut d = Digest::default();
        let mut c = self.log.cursor(self.log.first_offset());
        while let Some(r) = c.next()? {
            d.add(r.payload());
        }
        Ok(d)
    }

    fn read_at(&mut self, offset: u64, digest: &mut Digest) -> Result<()> {
        self.log.read_with(offset, |r| digest.add(r.payload()))?;
        Ok(())
    }

    fn read_last(&mut self) -> Result<Option<u64>> {
        let next = self.log.next_offset();
        if next == self.log.first_offset() {
            return Ok(None);
        }
        let off = self.log.read_with(next - 1, |r| r.offset())?;
        if off != next - 1 {
            return Err(missing("tidelog", next - 1));
        }
        Ok(Some(off))
    }

    fn used_bytes(&self) -> Result<Option<u64>> {
        // Segment files are preallocated to their capacity; count the bytes written in them
        // plus every other file (index files, checkpoint, lock) at its size.
        let mut used = 0;
        let mut seg_files = Vec::new();
        for log in std::iter::once(&self.log).chain(self.positions.as_ref()) {
            for s in log.segments() {
                used += s.bytes;
                seg_files.push(s.path.clone());
            }
            for entry in std::fs::read_dir(log.dir())? {
                let entry = entry?;
                if !seg_files.contains(&entry.path()) {
                    used += entry.metadata()?.len();
                }
            }
        }
        Ok(Some(used))
    }

    fn close(self: Box<Self>) -> Result<()> {
        let this = *self;
        this.log.close()?;
        if let Some(p) = this.positions {
            p.close()?;
        }
        Ok(())
    }
}

//! The exact offset map of a mirror: which Kafka partition and offset each mirrored tidelog
//! offset went to, kept as runs (consecutive tidelog offsets at consecutive Kafka offsets of
//! one partition) in an append-only file of checksummed entries (docs/format.md, "Kafka
//! mirror offset map").
//!
//! The mirror appends the runs the broker acknowledged since its last checkpoint, then
//! fsyncs. Opening merges entries that continue one another and, when that shortens the
//! file, replaces it atomically; a torn last entry (a crash in the middle of an append) is
//! dropped: the mirror finds those records again in the destination on restart.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{CorruptionKind, Error, IoContext, Result};
use crate::io::{fs, storage};

/// The offset map file's format version (its header's `version` field).
pub const OFFSET_MAP_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"TLKMIRMP";
const HEADER_LEN: usize = 32;
const ENTRY_LEN: usize = 32;

/// One run of the map: tidelog offsets `tidelog_start .. tidelog_start + len` are Kafka
/// offsets `kafka_start .. kafka_start + len` of `partition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappedRun {
    /// The first tidelog offset of the run.
    pub tidelog_start: u64,
    /// The Kafka partition.
    pub partition: i32,
    /// The Kafka offset of the first record.
    pub kafka_start: i64,
    /// How many records (at least 1).
    pub len: u32,
}

impl MappedRun {
    fn tidelog_end(&self) -> u64 {
        self.tidelog_start + self.len as u64
    }

    /// True if `next` continues this run (same partition, both offsets consecutive).
    fn continued_by(&self, next: &MappedRun) -> bool {
        self.partition == next.partition
            && self.tidelog_end() == next.tidelog_start
            && self.kafka_start + self.len as i64 == next.kafka_start
            && (self.len as u64 + next.len as u64) <= u32::MAX as u64
    }

    fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut e = [0u8; ENTRY_LEN];
        e[0..8].copy_from_slice(&self.tidelog_start.to_le_bytes());
        e[8..16].copy_from_slice(&self.kafka_start.to_le_bytes());
        e[16..20].copy_from_slice(&self.partition.to_le_bytes());
        e[20..24].copy_from_slice(&self.len.to_le_bytes());
        // 24..28 reserved, zero.
        let crc = crc32fast::hash(&e[0..28]);
        e[28..32].copy_from_slice(&crc.to_le_bytes());
        e
    }
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn header() -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&OFFSET_MAP_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(ENTRY_LEN as u32).to_le_bytes());
    let crc = crc32fast::hash(&h[0..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// A mirror's offset map: every run, per partition, in tidelog order.
#[derive(Debug)]
pub struct OffsetMap {
    path: PathBuf,
    runs: BTreeMap<i32, Vec<MappedRun>>,
    /// Acknowledged since the last [`OffsetMap::persist`], not yet in the file.
    unwritten: Vec<MappedRun>,
    file: Option<File>,
}

impl OffsetMap {
    /// Read the map at `path` (an empty map if the file does not exist). A torn last entry
    /// is ignored; any other bad entry is [`Error::Corruption`] located at its byte.
    pub fn load(path: impl AsRef<Path>) -> Result<OffsetMap> {
        let path = path.as_ref().to_path_buf();
        let mut map = OffsetMap { path: path.clone(), runs: BTreeMap::new(), unwritten: Vec::new(), file: None };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(map),
            Err(e) => return Err(Error::io(&path, e)),
        };
        if bytes.len() < HEADER_LEN {
            // A crash before the header was whole: nothing was ever mapped.
            return Ok(map);
        }
        let stored = le_u32(&bytes, 28);
        let computed = crc32fast::hash(&bytes[0..28]);
        if &bytes[0..8] != MAGIC || stored != computed {
            return Err(Error::corrupt(&path, 0, CorruptionKind::BadMagic));
        }
        if le_u32(&bytes, 8) != OFFSET_MAP_VERSION || le_u32(&bytes, 12) != ENTRY_LEN as u32 {
            return Err(Error::corrupt(&path, 8, CorruptionKind::BadField("version")));
        }
        let body = &bytes[HEADER_LEN..];
        let whole = body.len() / ENTRY_LEN;
        for i in 0..whole {
            let at = i * ENTRY_LEN;
            let e = &body[at..at + ENTRY_LEN];
            let position = (HEADER_LEN + at) as u64;
            let (got, expected) = (crc32fast::hash(&e[0..28]), le_u32(e, 28));
            if got != expected {
                if i + 1 == whole {
                    break; // torn last entry
                }
                return Err(Error::corrupt(&path, position, CorruptionKind::ChecksumMismatch { got, expected }));
            }
            let run = MappedRun {
                tidelog_start: le_u64(e, 0),
                kafka_start: le_u64(e, 8) as i64,
                partition: le_u32(e, 16) as i32,
                len: le_u32(e, 20),
            };
            if run.len == 0 || run.kafka_start < 0 || run.partition < 0 || !map.accepts(&run) {
                return Err(Error::corrupt(&path, position, CorruptionKind::BadField("offset map entry")));
            }
            map.add(run);
        }
        Ok(map)
    }

    /// True if `run` comes after everything mapped in its partition.
    fn accepts(&self, run: &MappedRun) -> bool {
        match self.runs.get(&run.partition).and_then(|v| v.last()) {
            Some(last) => {
                run.tidelog_start >= last.tidelog_end() && run.kafka_start >= last.kafka_start + last.len as i64
            }
            None => true,
        }
    }

    fn add(&mut self, run: MappedRun) {
        let v = self.runs.entry(run.partition).or_default();
        match v.last_mut() {
            Some(last) if last.continued_by(&run) => last.len += run.len,
            _ => v.push(run),
        }
    }

    /// The map file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every run, partition by partition, each partition's in tidelog order.
    pub fn runs(&self) -> impl Iterator<Item = &MappedRun> {
        self.runs.values().flatten()
    }

    /// The partitions that hold mapped records.
    pub fn partitions(&self) -> impl Iterator<Item = i32> + '_ {
        self.runs.keys().copied()
    }

    /// Where tidelog `offset` went: its partition and Kafka offset, if mapped.
    pub fn lookup(&self, offset: u64) -> Option<(i32, i64)> {
        self.runs.values().find_map(|v| {
            let i = v.partition_point(|r| r.tidelog_end() <= offset);
            let r = v.get(i)?;
            (r.tidelog_start <= offset).then(|| (r.partition, r.kafka_start + (offset - r.tidelog_start) as i64))
        })
    }

    /// The last mapped record of `partition`: its tidelog offset and Kafka offset.
    pub fn last_in(&self, partition: i32) -> Option<(u64, i64)> {
        let r = self.runs.get(&partition)?.last()?;
        Some((r.tidelog_end() - 1, r.kafka_start + r.len as i64 - 1))
    }

    /// One past the highest mapped tidelog offset (0 for an empty map).
    pub fn end(&self) -> u64 {
        self.runs.values().filter_map(|v| v.last()).map(MappedRun::tidelog_end).max().unwrap_or(0)
    }

    /// The Kafka offset in `partition` of the first mapped record whose tidelog offset is
    /// `offset` or later; one past the partition's last mapped record if there is none, and
    /// `None` if nothing of the partition is mapped.
    pub fn kafka_offset_from(&self, partition: i32, offset: u64) -> Option<i64> {
        let v = self.runs.get(&partition)?;
        let i = v.partition_point(|r| r.tidelog_end() <= offset);
        Some(match v.get(i) {
            Some(r) => r.kafka_start + offset.saturating_sub(r.tidelog_start) as i64,
            None => {
                let last = v.last()?;
                last.kafka_start + last.len as i64
            }
        })
    }

    /// Record that tidelog `offset` is Kafka `kafka_offset` of `partition` (acknowledged by
    /// the broker). In memory until [`OffsetMap::persist`]. A record that is not after
    /// everything already mapped in its partition is a mismatch (returned as `Err(())`).
    pub(crate) fn record(&mut self, offset: u64, partition: i32, kafka_offset: i64) -> std::result::Result<(), ()> {
        let run = MappedRun { tidelog_start: offset, partition, kafka_start: kafka_offset, len: 1 };
        if !self.accepts(&run) {
            return Err(());
        }
        self.add(run);
        match self.unwritten.iter_mut().rev().find(|r| r.partition == partition) {
            Some(last) if last.continued_by(&run) => last.len += 1,
            _ => self.unwritten.push(run),
        }
        Ok(())
    }

    /// Make what was recorded since the last call durable: appended to the file and
    /// fsynced. The first call of an opened map replaces the file atomically by the compact
    /// form of the whole map (merged runs, no torn entry), then keeps it open for appending.
    pub(crate) fn persist(&mut self) -> Result<()> {
        if self.unwritten.is_empty() {
            return Ok(());
        }
        match self.file.as_mut() {
            Some(f) => {
                let mut bytes = Vec::with_capacity(self.unwritten.len() * ENTRY_LEN);
                for r in &self.unwritten {
                    bytes.extend_from_slice(&r.encode());
                }
                storage::write_all(f, &self.path, &bytes)?;
                storage::sync_data(f, &self.path)?;
            }
            None => {
                let mut bytes = header().to_vec();
                for r in self.runs() {
                    bytes.extend_from_slice(&r.encode());
                }
                if let Some(dir) = self.path.parent() {
                    std::fs::create_dir_all(dir).at(dir)?;
                }
                fs::atomic_write(&self.path, &bytes)?;
                self.file = Some(storage::create(&self.path, OpenOptions::new().append(true))?);
            }
        }
        self.unwritten.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn consecutive_offsets_are_one_run_and_survive_a_reopen() {
        let t = tmp();
        let p = t.path().join("m/offset-map");
        let mut m = OffsetMap::load(&p).unwrap();
        for o in 0..100u64 {
            m.record(o, 0, 1000 + o as i64).unwrap();
            if o % 10 == 9 {
                m.persist().unwrap();
            }
        }
        m.record(150, 0, 1100).unwrap(); // a gap in tidelog offsets (compaction)
        m.persist().unwrap();
        let m = OffsetMap::load(&p).unwrap();
        assert_eq!(m.runs().count(), 2);
        assert_eq!(m.lookup(42), Some((0, 1042)));
        assert_eq!(m.lookup(120), None);
        assert_eq!(m.lookup(150), Some((0, 1100)));
        assert_eq!(m.end(), 151);
        assert_eq!(m.kafka_offset_from(0, 120), Some(1100));
        assert_eq!(m.kafka_offset_from(0, 151), Some(1101));
        assert_eq!(m.kafka_offset_from(1, 0), None);
        // Eleven appends merged: the first persist after a reopen rewrote the file compactly.
        let mut m = m;
        m.record(151, 0, 1101).unwrap();
        m.persist().unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len() as usize, HEADER_LEN + 2 * ENTRY_LEN);
        let m = OffsetMap::load(&p).unwrap();
        assert_eq!(m.runs().count(), 2);
        assert_eq!(m.lookup(151), Some((0, 1101)));
    }

    #[test]
    fn a_torn_last_entry_is_dropped_and_damage_before_it_is_located() {
        let t = tmp();
        let p = t.path().join("offset-map");
        let mut m = OffsetMap::load(&p).unwrap();
        for (o, k) in [(0u64, 0i64), (5, 1), (9, 2)] {
            m.record(o, 0, k).unwrap();
            m.persist().unwrap();
        }
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(OffsetMap::load(&p).unwrap().end(), 6);
        bytes[HEADER_LEN + 2] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        match OffsetMap::load(&p).unwrap_err() {
            Error::Corruption { location: crate::Location::File { position, .. }, .. } => {
                assert_eq!(position, HEADER_LEN as u64)
            }
            e => panic!("{e}"),
        }
    }

    #[test]
    fn partitions_keep_their_own_runs_and_refuse_going_back() {
        let t = tmp();
        let mut m = OffsetMap::load(t.path().join("offset-map")).unwrap();
        m.record(0, 0, 0).unwrap();
        m.record(1, 1, 0).unwrap();
        m.record(2, 0, 1).unwrap();
        assert!(m.record(1, 0, 2).is_err());
        assert_eq!(m.lookup(1), Some((1, 0)));
        assert_eq!(m.last_in(0), Some((2, 1)));
        assert_eq!(m.kafka_offset_from(0, 1), Some(1));
        m.persist().unwrap();
        let m = OffsetMap::load(m.path()).unwrap();
        assert_eq!(m.runs().count(), 3);
    }
}

//! A segment's key index: where the records carrying a key with a given hash are.
//!
//! * A segment indexed in memory (the active one, or one whose sealed index files are
//!   missing) keeps a map from key hash to records, brought up to date by the first key
//!   lookup after appends: it reads only the records published since the previous lookup.
//!   The append path does nothing for it.
//! * A sealed segment's key index is the file `{base:020}.keyindex` (the generic index file,
//!   `format::index`, kind `KEY_INDEX`), written when the segment is sealed. It is opened on
//!   the first lookup and used only if its header matches the segment and the checksum of
//!   its entries matches; otherwise (a segment written by older code, a damaged or stale
//!   file) the entries are built from the segment's records, in memory, and the log's writer
//!   writes the file again.
//!
//! Entries are candidates: the caller checks each record's actual key, so a hash collision
//! or a wrong entry never changes a result.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::hash::{BuildHasherDefault, Hasher};

use parking_lot::Mutex;

use crate::error::Result;
use crate::format::index::{key_hash, IndexEntryCodec, KeyEntry, INDEX_HEADER_LEN};
use crate::format::{align_up, frame, SEGMENT_HEADER_LEN};
use crate::io::fs as fsutil;
use crate::io::storage;
use crate::segment::index::{count_le, index_file_bytes, index_header, MappedIndex, SealInfo};
use crate::segment::{Segment, SegmentPaths};

/// The key index of one segment, in whichever state it is.
#[derive(Debug)]
pub(crate) struct SegKeys {
    state: Mutex<KeyState>,
}

#[derive(Debug)]
enum KeyState {
    /// A sealed segment whose key index nobody asked for yet.
    Unopened,
    /// Growing with the segment: entries for the records before `(pos, off)`.
    Growing { by_hash: HashMap<u64, KeyRun, BuildHasherDefault<HashIsKey>>, pos: usize, off: u64 },
    /// The sealed file, mapped, its checksum verified.
    Mapped(MappedIndex<KeyEntry>),
    /// Built from a sealed segment's records, sorted; `persisted` once the writer wrote it.
    Built { entries: Vec<KeyEntry>, persisted: bool },
}

impl SegKeys {
    /// For a sealed segment: the file is opened on first use.
    pub fn unopened() -> SegKeys {
        SegKeys { state: Mutex::new(KeyState::Unopened) }
    }

    /// For a segment indexed in memory: built from its records as they come.
    pub fn growing(base: u64) -> SegKeys {
        SegKeys { state: Mutex::new(growing_from_start(base)) }
    }
}

/// How a key scan reads each frame (see `Segment::scan_keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Decode with the checksum: damage is reported.
    Validate,
    /// Read the length, offset and key only.
    Peek,
}

/// The records of one key hash in a segment indexed in memory, and the key of the first: if
/// no record with another key has the same hash (`mixed` false), every record of the run has
/// that key, and a lookup needs no record read to tell.
#[derive(Debug)]
struct KeyRun {
    key: Box<[u8]>,
    mixed: bool,
    /// (relative offset, position), in offset order.
    recs: Vec<(u32, u32)>,
}

/// What a segment's key index holds for a key.
pub(crate) struct Candidates {
    /// (offset, position) of the records whose key hashes like the key's, in offset order.
    pub records: Vec<(u64, usize)>,
    /// True if every one of them is known to carry the key itself (no record read needed).
    pub verified: bool,
}

fn growing_from_start(base: u64) -> KeyState {
    KeyState::Growing { by_hash: HashMap::default(), pos: SEGMENT_HEADER_LEN, off: base }
}

/// The hasher of the in-memory map, whose keys are key hashes already: they are used as they
/// are (hashing them again would cost a SipHash per record appended and per lookup).
#[derive(Debug, Default)]
pub(crate) struct HashIsKey(u64);

impl Hasher for HashIsKey {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (the map's keys are `u64`); fold anything else in.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// The CRC-32 of a key index's entry bytes (stored in the header's `interval_bytes` field).
fn entries_crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

impl Segment {
    /// The records of this segment whose key hashes to `hash`, as (offset, byte position), in
    /// offset order, from offset `from` on. Candidates only: the caller checks each record's
    /// key.
    pub fn key_candidates(&self, key: &[u8], hash: u64, from: u64) -> Result<Candidates> {
        let mut st = self.keys.state.lock();
        self.bring_up_to_date(&mut st)?;
        let base = self.base_offset;
        let at = |rel: u32, pos: u32| (base + u64::from(rel), pos as usize);
        // Relative offsets below `from_rel` are not wanted.
        let from_rel = from.saturating_sub(base);
        let unverified = |records| Candidates { records, verified: false };
        Ok(match &*st {
            KeyState::Growing { by_hash, .. } => {
                let (recs, verified) = run_candidates(by_hash.get(&hash), key, from_rel);
                Candidates { records: recs.iter().map(|&(r, p)| at(r, p)).collect(), verified }
            }
            KeyState::Mapped(m) => unverified({
                let n = m.len();
                // Hashes are spread evenly: the interpolating search lands at once.
                let first = hash.checked_sub(1).map_or(0, |below| count_le(n, |i| m.get(i).hash, below));
                (first..n)
                    .map(|i| m.get(i))
                    .take_while(|e| e.hash == hash)
                    .filter(|e| u64::from(e.rel) >= from_rel)
                    .map(|e| at(e.rel, e.pos))
                    .collect()
            }),
            KeyState::Built { entries, .. } => unverified({
                let first = entries.partition_point(|e| e.hash < hash);
                entries[first..]
                    .iter()
                    .take_while(|e| e.hash == hash)
                    .filter(|e| u64::from(e.rel) >= from_rel)
                    .map(|e| at(e.rel, e.pos))
                    .collect()
            }),
            KeyState::Unopened => unverified(Vec::new()),
        })
    }

    /// Forget the key index and build it again from the records (a candidate did not
    /// validate: the index is wrong, or was for other records).
    pub fn rebuild_keys(&self) -> Result<()> {
        let mut st = self.keys.state.lock();
        *st = if self.is_sealed() {
            KeyState::Built { entries: self.key_entries_from_records()?, persisted: false }
        } else {
            growing_from_start(self.base_offset)
        };
        self.bring_up_to_date(&mut st)
    }

    /// All key entries of this segment, sorted by (hash, offset): what its sealed key index
    /// file holds.
    pub fn key_entries(&self) -> Result<Vec<KeyEntry>> {
        let mut st = self.keys.state.lock();
        if let KeyState::Growing { by_hash, pos, off } = &*st {
            // Sealing: the records nobody looked up by key yet go straight into the sorted
            // entries, not through the map (an allocation per new key).
            let v: Vec<KeyEntry> = by_hash
                .iter()
                .flat_map(|(&hash, run)| run.recs.iter().map(move |&(rel, pos)| KeyEntry { hash, rel, pos }))
                .collect();
            // The segment is being sealed by the writer that wrote it (or validated it whole
            // when it opened): its frames are read without their checksums.
            return self.key_entries_after(v, *pos, *off, Check::Peek);
        }
        self.bring_up_to_date(&mut st)?;
        Ok(match &*st {
            KeyState::Growing { .. } => Vec::new(),
            KeyState::Mapped(m) => (0..m.len()).map(|i| m.get(i)).collect(),
            KeyState::Built { entries, .. } => entries.clone(),
            KeyState::Unopened => Vec::new(),
        })
    }

    /// True if this sealed segment's key index was built in memory and not written yet.
    pub fn has_unwritten_key_index(&self) -> bool {
        matches!(&*self.keys.state.lock(), KeyState::Built { persisted: false, .. })
    }

    /// A sealed segment whose key index was built in memory and not written yet: its entries.
    pub fn unwritten_key_index(&self) -> Option<Vec<KeyEntry>> {
        match &*self.keys.state.lock() {
            KeyState::Built { entries, persisted: false } => Some(entries.clone()),
            _ => None,
        }
    }

    /// The key index file now holds what this segment's key index holds.
    pub fn key_index_written(&self) {
        if let KeyState::Built { persisted, .. } = &mut *self.keys.state.lock() {
            *persisted = true;
        }
    }

    fn bring_up_to_date(&self, st: &mut KeyState) -> Result<()> {
        if matches!(st, KeyState::Unopened) {
            *st = match self.open_key_index_file() {
                Some(m) => KeyState::Mapped(m),
                None => KeyState::Built { entries: self.key_entries_from_records()?, persisted: false },
            };
        }
        if let KeyState::Growing { by_hash, pos, off } = st {
            let base = self.base_offset;
            let (at, next, result) = self.scan_keys(*pos, *off, Check::Validate, |o, p, key| {
                add_to_run(by_hash.entry(key_hash(key)), key, ((o - base) as u32, p as u32));
            });
            // Kept up to date record by record: an error leaves what was read.
            (*pos, *off) = (at, next);
            result?;
        }
        Ok(())
    }

    /// Call `f(offset, position, key)` for each record with a key from `(pos, off)` to the
    /// published end. With [`Check::Validate`] each record is decoded with its checksum, so
    /// damage is reported where it is. With [`Check::Peek`] only each frame's length, offset
    /// and key are read (for a segment this process wrote or validated when it opened, being
    /// sealed); a frame that does not read as the next one is then decoded with full
    /// validation, which names the damage. Returns where it stopped and whether it stopped at
    /// damage.
    fn scan_keys(
        &self,
        mut pos: usize,
        mut off: u64,
        check: Check,
        mut f: impl FnMut(u64, usize, &[u8]),
    ) -> (usize, u64, Result<()>) {
        let end = self.next_offset();
        let buf = self.map.published_bytes();
        let sparse = self.is_sparse();
        let stop = if sparse { self.end_pos() } else { usize::MAX };
        while off < end && pos < stop {
            let peeked = if check == Check::Peek { frame::peek_key(buf, pos) } else { None };
            match peeked {
                Some((len, o, key)) if o < end && (o == off || (sparse && o > off)) => {
                    if let Some(k) = key {
                        f(o, pos, k);
                    }
                    pos += align_up(len as usize);
                    off = o + 1;
                }
                _ => match self.decode_next(pos, off) {
                    Ok((rec, next)) => {
                        if let Some(k) = rec.key() {
                            f(rec.offset(), pos, k);
                        }
                        pos = next;
                        off = rec.offset() + 1;
                    }
                    Err(e) => return (pos, off, Err(e)),
                },
            }
        }
        (pos, off, Ok(()))
    }

    /// The sealed key index file, if it is one for exactly this segment's records.
    fn open_key_index_file(&self) -> Option<MappedIndex<KeyEntry>> {
        let m = MappedIndex::<KeyEntry>::open(&self.paths.key_index, self.base_offset)?;
        let h = *m.header();
        let matches = h.end_pos == self.end_pos() as u64
            && h.next_offset == self.next_offset()
            && h.interval_bytes == entries_crc(m.entry_bytes());
        matches.then_some(m)
    }

    /// The entries of a sealed segment whose key index file is missing or wrong, built from
    /// its records, each validated: its bytes come from the disk, which may have damaged them.
    fn key_entries_from_records(&self) -> Result<Vec<KeyEntry>> {
        self.key_entries_after(Vec::new(), SEGMENT_HEADER_LEN, self.base_offset, Check::Validate)
    }

    /// `v` and the entries of the records from `(pos, off)` on, sorted.
    fn key_entries_after(&self, mut v: Vec<KeyEntry>, pos: usize, off: u64, check: Check) -> Result<Vec<KeyEntry>> {
        let base = self.base_offset;
        let (_, _, result) = self.scan_keys(pos, off, check, |o, at, key| {
            v.push(KeyEntry { hash: key_hash(key), rel: (o - base) as u32, pos: at as u32 });
        });
        result?;
        Ok(sort_entries(v))
    }
}

/// Sort key entries by (hash, offset, position): distributed by the top bits of the hash
/// first (hashes are spread evenly, so each bucket holds a few entries), then each bucket
/// sorted. Linear where a comparison sort of a segment's entries took a third of its seal.
fn sort_entries(v: Vec<KeyEntry>) -> Vec<KeyEntry> {
    const BITS: u32 = 16;
    if v.len() < 1 << 12 {
        let mut v = v;
        v.sort_unstable();
        return v;
    }
    let bucket = |e: &KeyEntry| (e.hash >> (64 - BITS)) as usize;
    let mut starts = vec![0usize; (1 << BITS) + 1];
    for e in &v {
        starts[bucket(e) + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut out = vec![KeyEntry { hash: 0, rel: 0, pos: 0 }; v.len()];
    let mut next = starts.clone();
    for e in v {
        let b = bucket(&e);
        out[next[b]] = e;
        next[b] += 1;
    }
    for w in starts.windows(2) {
        out[w[0]..w[1]].sort_unstable();
    }
    out
}

/// Add record `e` (relative offset, position) with `key` to the run of its key hash.
fn add_to_run(entry: Entry<'_, u64, KeyRun>, key: &[u8], e: (u32, u32)) {
    match entry {
        Entry::Occupied(mut o) => {
            let run = o.get_mut();
            run.mixed |= *run.key != *key;
            run.recs.push(e);
        }
        Entry::Vacant(v) => {
            v.insert(KeyRun { key: key.into(), mixed: false, recs: vec![e] });
        }
    }
}

/// The records of `run` (the run of `key`'s hash, if any) from relative offset `from_rel` on
/// that may carry `key`, and whether they are known to carry it.
fn run_candidates<'a>(run: Option<&'a KeyRun>, key: &[u8], from_rel: u64) -> (&'a [(u32, u32)], bool) {
    match run {
        Some(run) if run.mixed || *run.key == *key => {
            let skip = run.recs.partition_point(|&(r, _)| u64::from(r) < from_rel);
            (&run.recs[skip..], !run.mixed)
        }
        // No record, or only records of another key with the same hash.
        _ => (&[], true),
    }
}

/// Write the sealed key index file of a segment: a temporary file renamed into place, not
/// fsynced. The file is derived data whose header names the segment's end and carries the
/// checksum of its entries: after a crash, a file that did not reach the disk whole is
/// missing, stale or fails its checksum, and is built again from the records on first use.
/// (Fsyncing its megabytes was a third of sealing a segment of small records.)
pub(crate) fn write_key_index_file(
    paths: &SegmentPaths,
    base: u64,
    entries: &[KeyEntry],
    seal: SealInfo,
) -> Result<()> {
    let mut header = index_header(KeyEntry::KIND, base, 0, entries.len(), Some(seal));
    let mut bytes = index_file_bytes(header, entries.iter().copied());
    header.interval_bytes = entries_crc(&bytes[INDEX_HEADER_LEN..]);
    bytes[..INDEX_HEADER_LEN].copy_from_slice(&header.encode());
    let path = &paths.key_index;
    let tmp = fsutil::tmp_path(path);
    let mut f = storage::create(&tmp, OpenOptions::new().write(true).create(true).truncate(true))?;
    storage::write_all(&mut f, &tmp, &bytes)?;
    storage::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys that collide (the same hash; forced here, as real FNV-1a collisions are rare)
    /// make their run mixed: its records are then candidates to check, not known matches.
    #[test]
    fn a_run_shared_by_two_keys_is_checked_record_by_record() {
        let mut map: HashMap<u64, KeyRun> = HashMap::new();
        add_to_run(map.entry(7), b"alpha", (0, 64));
        add_to_run(map.entry(7), b"alpha", (2, 128));
        assert_eq!(run_candidates(map.get(&7), b"alpha", 0), (&[(0, 64), (2, 128)][..], true));
        assert_eq!(run_candidates(map.get(&7), b"alpha", 1), (&[(2, 128)][..], true));
        // Another key with the same hash, before any collision: nothing of it is here.
        assert_eq!(run_candidates(map.get(&7), b"beta", 0), (&[][..], true));
        assert_eq!(run_candidates(map.get(&8), b"alpha", 0), (&[][..], true));
        add_to_run(map.entry(7), b"beta", (3, 192));
        for key in [&b"alpha"[..], b"beta"] {
            assert_eq!(run_candidates(map.get(&7), key, 0), (&[(0, 64), (2, 128), (3, 192)][..], false));
        }
    }

    #[test]
    fn key_entries_sort_as_a_comparison_sort_would_whatever_the_spread_of_hashes() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (n, spread) in [(10usize, u64::MAX), (5000, u64::MAX), (70_000, u64::MAX), (70_000, 3), (9000, 1 << 50)] {
            let v: Vec<KeyEntry> =
                (0..n).map(|i| KeyEntry { hash: rnd() % spread, rel: i as u32, pos: rnd() as u32 }).collect();
            let mut want = v.clone();
            want.sort_unstable();
            assert_eq!(sort_entries(v), want, "{n} entries, hashes below {spread}");
        }
    }
}

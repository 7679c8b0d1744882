//! The plan of a compaction: one pass over the log that finds the newest record of every key,
//! and from it what each sealed segment would lose (superseded records, expired tombstones)
//! and the log's dirty ratio.
//!
//! Keys are held as a 128-bit digest (FNV-1a), 32 bytes of map per distinct key whatever the
//! key's length. Two keys with the same digest would be taken for one; at 10^9 keys the
//! chance of that is about 10^-21.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::error::Result;
use crate::format::SEGMENT_HEADER_LEN;
use crate::record::RecordView;
use crate::segment::Segment;

/// FNV-1a, 128 bits: a digest of a key that is the same on every platform and release (it is
/// also written to disk, in the key of an erasure's marker).
pub(crate) fn key_digest(key: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    key.iter().fold(OFFSET, |h, &b| (h ^ b as u128).wrapping_mul(PRIME))
}

/// The map's keys are digests already: hashing them again (SipHash) cost more than the rest
/// of the plan. This hasher takes the digest's low 64 bits as they are.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u128` is used; anything else is folded in, FNV-style.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

type DigestMap<V> = HashMap<u128, V, BuildHasherDefault<DigestHasher>>;

/// The newest record of a key.
#[derive(Debug, Clone, Copy)]
struct Newest {
    offset: u64,
    /// A tombstone older than the delete-retention cutoff: removable itself.
    expired_tombstone: bool,
}

/// A key's newest record, the segment (its place in the list) holding it, and its bytes.
type Entry = (Newest, usize, u64);

/// What one sealed segment would lose.
#[derive(Debug, Clone, Default)]
pub(crate) struct SegmentLoss {
    pub records: u64,
    pub tombstones: u64,
    pub bytes: u64,
}

/// The newest record of each key up to an offset, and what compacting would remove.
pub(crate) struct Plan {
    newest: DigestMap<Entry>,
    /// The sealed segments (every segment but the active one, oldest first, but one whose
    /// seal was deferred) with what each would lose.
    pub sealed: Vec<(Arc<Segment>, SegmentLoss)>,
    /// Bytes of records in the sealed segments.
    pub sealed_bytes: u64,
}

impl Plan {
    /// Removable bytes over the sealed segments' bytes (0 for a log without sealed records).
    pub fn dirty_ratio(&self) -> f64 {
        if self.sealed_bytes == 0 {
            return 0.0;
        }
        self.removable_bytes() as f64 / self.sealed_bytes as f64
    }

    /// Bytes of the records compaction would remove.
    pub fn removable_bytes(&self) -> u64 {
        self.sealed.iter().map(|(_, l)| l.bytes).sum()
    }

    /// True if the record stays: it has no key, or it is its key's newest record and not a
    /// tombstone past its delete retention.
    pub fn keeps(&self, rec: &RecordView<'_>) -> bool {
        let Some(key) = rec.key() else { return true };
        match self.newest.get(&key_digest(key)) {
            Some((n, _, _)) if n.offset > rec.offset() => false,
            Some((n, _, _)) if n.offset == rec.offset() => !n.expired_tombstone,
            // Newer than the plan (cannot be in a sealed segment the plan saw) or unknown.
            _ => true,
        }
    }
}

/// Plan a compaction of `list` (the segment list, the active segment last) over the records
/// before `end`. Tombstones whose timestamp is before `tombstone_cutoff_us` are removable.
/// Only segments before the active one for which `rewritable` is true are to be rewritten.
pub(crate) fn plan(
    list: &[Arc<Segment>],
    end: u64,
    tombstone_cutoff_us: u64,
    rewritable: impl Fn(&Arc<Segment>) -> bool,
) -> Result<Plan> {
    let n_sealed = list.len().saturating_sub(1);
    let mut newest: DigestMap<Entry> = DigestMap::default();
    let mut loss = vec![SegmentLoss::default(); n_sealed];
    let mut sealed_bytes = 0u64;
    for (i, seg) in list.iter().enumerate() {
        if i < n_sealed {
            sealed_bytes += (seg.end_pos() - SEGMENT_HEADER_LEN) as u64;
        }
        // Each record's length is known once the next one's position is: hold one back.
        let mut held: Option<(u128, Newest)> = None;
        let mut held_at = 0usize;
        let mut settle = |held: Option<(u128, Newest)>, len: u64, newest: &mut DigestMap<Entry>| {
            let Some((h, n)) = held else { return };
            if let Some((_, seg_i, bytes)) = newest.insert(h, (n, i, len)) {
                if let Some(l) = loss.get_mut(seg_i) {
                    l.records += 1;
                    l.bytes += bytes;
                }
            }
        };
        for r in seg.records_from(SEGMENT_HEADER_LEN, seg.base_offset) {
            let (rec, at) = r?;
            if rec.offset() >= end {
                break;
            }
            settle(held.take(), (at - held_at) as u64, &mut newest);
            if let Some(key) = rec.key() {
                let expired_tombstone = rec.is_tombstone() && rec.timestamp_us() < tombstone_cutoff_us;
                held = Some((key_digest(key), Newest { offset: rec.offset(), expired_tombstone }));
                held_at = at;
            }
        }
        let end_pos = seg.end_pos();
        settle(held.take(), end_pos.saturating_sub(held_at) as u64, &mut newest);
    }
    for (n, seg_i, bytes) in newest.values() {
        if n.expired_tombstone {
            if let Some(l) = loss.get_mut(*seg_i) {
                l.tombstones += 1;
                l.bytes += bytes;
            }
        }
    }
    let sealed = list.iter().take(n_sealed).cloned().zip(loss).filter(|(s, _)| rewritable(s)).collect();
    Ok(Plan { newest, sealed, sealed_bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_digest_is_fnv1a_128_and_tells_keys_apart() {
        // The FNV-1a 128 of the empty input is its offset basis.
        assert_eq!(key_digest(b""), 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d);
        assert_ne!(key_digest(b"a"), key_digest(b"b"));
        assert_ne!(key_digest(b"ab"), key_digest(b"ba"));
    }
}

//! The checkpoint file: the log's last known durable point and its clean-shutdown mark.
//!
//! Since format version 2 the file holds two 64-byte slots, each a whole checkpoint with a
//! sequence number; a writer overwrites the older slot in place and flushes it, and a reader
//! takes the valid slot with the higher sequence. An overwrite torn by a power loss leaves
//! the other slot intact, so the file never needs the temporary-file-and-rename dance after
//! it is created: a checkpoint costs one small write and one `fdatasync`. A version 1 file is
//! one slot (sequence 0).

use crate::format::{le_u32, le_u64, put_u32, put_u64, FORMAT_VERSION};

pub(crate) const CHECKPOINT_MAGIC: [u8; 8] = *b"TDLGCKP\0";
/// Magic of the poison marker (`DIR/poisoned`): a checkpoint-shaped file naming the last point
/// a poisoned writer had made durable (see `io::poison`).
pub(crate) const POISON_MAGIC: [u8; 8] = *b"TDLGPSN\0";
pub(crate) const CKP_VERSION_AT: usize = 8;
pub(crate) const CKP_FLAGS_AT: usize = CKP_VERSION_AT + 4;
pub(crate) const CKP_SEGMENT_AT: usize = CKP_FLAGS_AT + 4;
pub(crate) const CKP_POSITION_AT: usize = CKP_SEGMENT_AT + 8;
pub(crate) const CKP_NEXT_OFFSET_AT: usize = CKP_POSITION_AT + 8;
pub(crate) const CKP_LAST_TS_AT: usize = CKP_NEXT_OFFSET_AT + 8;
/// Format version 2: which write of the slots this is (the higher valid one is current).
pub(crate) const CKP_SEQUENCE_AT: usize = CKP_LAST_TS_AT + 8;
pub(crate) const CKP_CRC_AT: usize = 60;
/// Bytes of one checkpoint slot (the whole file in format version 1).
pub const CHECKPOINT_LEN: usize = CKP_CRC_AT + 4;
/// Bytes of a checkpoint file of format version 2: two slots.
pub(crate) const CHECKPOINT_FILE_LEN: usize = 2 * CHECKPOINT_LEN;
const _: () = assert!(CKP_SEQUENCE_AT + 8 <= CKP_CRC_AT);
const _: () = assert!(CHECKPOINT_LEN == 64);
pub(crate) const CKP_FLAG_CLEAN: u32 = 1;

/// The durable point of the log: every record before `next_offset` is on stable storage,
/// and its bytes end at `position` within segment `segment_base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub clean: bool,
    pub segment_base: u64,
    pub position: u64,
    pub next_offset: u64,
    pub last_timestamp_us: u64,
}

impl Checkpoint {
    pub fn encode(&self) -> [u8; CHECKPOINT_LEN] {
        self.encode_as(CHECKPOINT_MAGIC)
    }

    pub fn decode(b: &[u8]) -> Option<Checkpoint> {
        Checkpoint::decode_as(b, CHECKPOINT_MAGIC)
    }

    /// One slot of the two-slot file, carrying `sequence`.
    pub fn encode_slot(&self, sequence: u64) -> [u8; CHECKPOINT_LEN] {
        let mut b = self.encode_as(CHECKPOINT_MAGIC);
        put_u64(&mut b, CKP_SEQUENCE_AT, sequence);
        let crc = crc32fast::hash(&b[..CKP_CRC_AT]);
        put_u32(&mut b, CKP_CRC_AT, crc);
        b
    }

    /// A new two-slot file holding this checkpoint in both slots (sequences 0 and 1).
    pub fn encode_file(&self) -> [u8; CHECKPOINT_FILE_LEN] {
        let mut b = [0u8; CHECKPOINT_FILE_LEN];
        b[..CHECKPOINT_LEN].copy_from_slice(&self.encode_slot(0));
        b[CHECKPOINT_LEN..].copy_from_slice(&self.encode_slot(1));
        b
    }

    /// Decode a checkpoint file of either version: the valid slot with the higher sequence,
    /// and that sequence. `None` if no slot is valid.
    pub fn decode_file(b: &[u8]) -> Option<(Checkpoint, u64)> {
        let slot = |s: &[u8]| Checkpoint::decode(s).map(|c| (c, le_u64(s, CKP_SEQUENCE_AT)));
        match b.len() {
            CHECKPOINT_LEN => slot(b),
            CHECKPOINT_FILE_LEN => {
                let (a, z) = b.split_at(CHECKPOINT_LEN);
                match (slot(a), slot(z)) {
                    (Some(x), Some(y)) => Some(if y.1 > x.1 { y } else { x }),
                    (x, y) => x.or(y),
                }
            }
            _ => None,
        }
    }

    /// Encode with `magic` in place of the checkpoint's own (the poison marker shares the
    /// layout).
    pub fn encode_as(&self, magic: [u8; 8]) -> [u8; CHECKPOINT_LEN] {
        let mut b = [0u8; CHECKPOINT_LEN];
        b[..8].copy_from_slice(&magic);
        put_u32(&mut b, CKP_VERSION_AT, FORMAT_VERSION);
        put_u32(&mut b, CKP_FLAGS_AT, if self.clean { CKP_FLAG_CLEAN } else { 0 });
        put_u64(&mut b, CKP_SEGMENT_AT, self.segment_base);
        put_u64(&mut b, CKP_POSITION_AT, self.position);
        put_u64(&mut b, CKP_NEXT_OFFSET_AT, self.next_offset);
        put_u64(&mut b, CKP_LAST_TS_AT, self.last_timestamp_us);
        let crc = crc32fast::hash(&b[..CKP_CRC_AT]);
        put_u32(&mut b, CKP_CRC_AT, crc);
        b
    }

    /// Decode a file of the checkpoint layout whose magic must be `magic`.
    pub fn decode_as(b: &[u8], magic: [u8; 8]) -> Option<Checkpoint> {
        if b.len() != CHECKPOINT_LEN
            || b[..8] != magic
            || !(1..=FORMAT_VERSION).contains(&le_u32(b, CKP_VERSION_AT))
            || crc32fast::hash(&b[..CKP_CRC_AT]) != le_u32(b, CKP_CRC_AT)
        {
            return None;
        }
        Some(Checkpoint {
            clean: le_u32(b, CKP_FLAGS_AT) & CKP_FLAG_CLEAN != 0,
            segment_base: le_u64(b, CKP_SEGMENT_AT),
            position: le_u64(b, CKP_POSITION_AT),
            next_offset: le_u64(b, CKP_NEXT_OFFSET_AT),
            last_timestamp_us: le_u64(b, CKP_LAST_TS_AT),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_valid_slot_with_the_higher_sequence_is_current_and_a_torn_one_is_ignored() {
        let old = Checkpoint { clean: false, segment_base: 0, position: 64, next_offset: 0, last_timestamp_us: 1 };
        let new = Checkpoint { clean: true, segment_base: 7, position: 4096, next_offset: 99, last_timestamp_us: 2 };
        let mut file = old.encode_file();
        assert_eq!(Checkpoint::decode_file(&file), Some((old, 1)));
        // Sequence 2 goes to slot 0, the older one.
        file[..CHECKPOINT_LEN].copy_from_slice(&new.encode_slot(2));
        assert_eq!(Checkpoint::decode_file(&file), Some((new, 2)));
        // A torn overwrite of slot 1 with sequence 3 leaves slot 0 current.
        let mut torn = file;
        torn[CHECKPOINT_LEN..CHECKPOINT_LEN + 20].copy_from_slice(&new.encode_slot(3)[..20]);
        assert_eq!(Checkpoint::decode_file(&torn), Some((new, 2)));
        // Both slots damaged: no checkpoint.
        torn[5] ^= 1;
        assert_eq!(Checkpoint::decode_file(&torn), None);
        // A format version 1 file is one slot.
        assert_eq!(Checkpoint::decode_file(&old.encode()), Some((old, 0)));
        assert_eq!(Checkpoint::decode_file(&file[..100]), None);
    }

    #[test]
    fn checkpoint_round_trips_and_rejects_bit_flips() {
        let c = Checkpoint { clean: true, segment_base: 7, position: 4096, next_offset: 99, last_timestamp_us: 12345 };
        let b = c.encode();
        assert_eq!(Checkpoint::decode(&b), Some(c));
        assert_eq!(Checkpoint::decode_as(&b, POISON_MAGIC), None, "a checkpoint is not a poison marker");
        assert_eq!(Checkpoint::decode_as(&c.encode_as(POISON_MAGIC), POISON_MAGIC), Some(c));
        for i in 0..b.len() * 8 {
            let mut d = b;
            d[i / 8] ^= 1 << (i % 8);
            assert_eq!(Checkpoint::decode(&d), None, "bit {i}");
        }
    }
}

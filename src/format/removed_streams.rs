//! The file `removed-streams`: how many events of each stream retention removed, so that
//! stream versions stay what they were when the segments holding a stream's first events are
//! deleted. Layout (little-endian; docs/format.md):
//!
//! | at | size | field          |
//! |----|------|----------------|
//! | 0  | 8    | magic `"TDLGRMS\0"` |
//! | 8  | 4    | format_version (1) |
//! | 12 | 4    | reserved, zero |
//! | 16 | 8    | below: segments whose base offset is below this are counted here |
//! | 24 | 8    | stream_count   |
//! | 32 | …    | streams, sorted by key: `key_len: u32`, key, `events: u64` |
//! | …  | 4    | CRC-32 of every byte before it |

use std::collections::HashMap;

use crate::error::CorruptionKind;
use crate::format::{le_u32, le_u64};

const MAGIC: [u8; 8] = *b"TDLGRMS\0";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 32;

/// Events removed per stream key, and the first segment base not counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RemovedStreams {
    pub below: u64,
    pub counts: HashMap<Vec<u8>, u64>,
}

impl RemovedStreams {
    pub fn encode(&self) -> Vec<u8> {
        let mut keys: Vec<(&Vec<u8>, &u64)> = self.counts.iter().collect();
        keys.sort();
        let mut b = Vec::with_capacity(HEADER_LEN + 4 + keys.iter().map(|(k, _)| 12 + k.len()).sum::<usize>());
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&self.below.to_le_bytes());
        b.extend_from_slice(&(keys.len() as u64).to_le_bytes());
        for (k, n) in keys {
            // Keys are at most a record body (`MAX_SEGMENT_BYTES` < 4 GiB).
            b.extend_from_slice(&(k.len() as u32).to_le_bytes());
            b.extend_from_slice(k);
            b.extend_from_slice(&n.to_le_bytes());
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decode; the error names what is wrong and the byte where it was found.
    pub fn decode(b: &[u8]) -> Result<RemovedStreams, (u64, CorruptionKind)> {
        if b.len() < HEADER_LEN + 4 || b[..8] != MAGIC || le_u32(b, 8) != VERSION {
            return Err((0, CorruptionKind::BadMagic));
        }
        let body = b.len() - 4;
        let (got, expected) = (crc32fast::hash(&b[..body]), le_u32(b, body));
        if got != expected {
            return Err((body as u64, CorruptionKind::ChecksumMismatch { got, expected }));
        }
        let below = le_u64(b, 16);
        let n = le_u64(b, 24);
        let mut counts = HashMap::new();
        let mut at = HEADER_LEN;
        for _ in 0..n {
            let bad = Err((at as u64, CorruptionKind::BadField("stream entry")));
            if at + 4 > body {
                return bad;
            }
            let len = le_u32(b, at) as usize;
            if at + 4 + len + 8 > body {
                return bad;
            }
            let key = b[at + 4..at + 4 + len].to_vec();
            counts.insert(key, le_u64(b, at + 4 + len));
            at += 4 + len + 8;
        }
        if at != body {
            return Err((at as u64, CorruptionKind::BadField("stream_count")));
        }
        Ok(RemovedStreams { below, counts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_stream_counts_round_trip_and_damage_is_located() {
        let r = RemovedStreams {
            below: 77,
            counts: [(b"a".to_vec(), 3), (Vec::new(), 1), (b"long key".to_vec(), u64::MAX)].into_iter().collect(),
        };
        let b = r.encode();
        assert_eq!(RemovedStreams::decode(&b), Ok(r));
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 0x10;
            assert!(RemovedStreams::decode(&d).is_err(), "byte {i}");
        }
        assert!(RemovedStreams::decode(&b[..b.len() - 1]).is_err());
    }
}

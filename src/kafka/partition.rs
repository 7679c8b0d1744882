//! Which Kafka partition a mirrored record goes to: a pure function of the record, so that a
//! restarted mirror knows where each record went without asking the broker.

/// The partition of a record with `key` (or none) at tidelog `offset`, among `partitions`.
/// A keyed record goes where Kafka's Java client sends its key (murmur2 of the key, sign bit
/// cleared, modulo the partition count), so producers and Kafka Streams agree with the
/// mirror; a record without key goes to `offset % partitions`. One partition: always 0.
pub fn partition_for(key: Option<&[u8]>, offset: u64, partitions: i32) -> i32 {
    if partitions <= 1 {
        return 0;
    }
    match key {
        Some(k) => ((murmur2(k) & 0x7fff_ffff) % partitions as u32) as i32,
        None => (offset % partitions as u64) as i32,
    }
}

/// Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), seed 0x9747b28c.
fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = 0x9747_b28c ^ len as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from Kafka's own test of murmur2 (UtilsTest.testMurmur2).
    #[test]
    fn murmur2_matches_kafkas_java_client() {
        assert_eq!(murmur2(b"21") as i32, -973932308);
        assert_eq!(murmur2(b"foobar") as i32, -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string") as i32, -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string") as i32, -1486304829);
        assert_eq!(murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") as i32, -58897971);
        assert_eq!(murmur2(b"abc") as i32, 479470107);
    }

    #[test]
    fn one_partition_takes_everything_and_keyless_records_spread_by_offset() {
        assert_eq!(partition_for(Some(b"k"), 5, 1), 0);
        assert_eq!(partition_for(None, 5, 3), 2);
        let p = partition_for(Some(b"customer-7"), 0, 8);
        assert!((0..8).contains(&p));
        assert_eq!(p, partition_for(Some(b"customer-7"), 99, 8));
    }
}

//! Deterministic test data: incompressible payloads, keys, and the digest every store's reads
//! must reproduce.

use serde::Serialize;

/// Bytes of a record key.
pub const KEY_LEN: usize = 16;

/// One event to append: a 16-byte key and a payload borrowed from the pool.
#[derive(Clone, Copy, Debug)]
pub struct Event<'a> {
    /// Key (`acct-` and 11 digits).
    pub key: [u8; KEY_LEN],
    /// Payload bytes.
    pub payload: &'a [u8],
}

pub use crate::rng::Rng;

/// A pool of random (incompressible) bytes that payloads are sliced from, so that no store
/// gains from compression (fjall compresses blocks with lz4 by default).
pub struct Pool {
    bytes: Vec<u8>,
}

impl Default for Pool {
    fn default() -> Pool {
        Pool::new()
    }
}

impl Pool {
    /// 8 MiB of random bytes.
    pub fn new() -> Pool {
        let mut rng = Rng::new(0x7469_6465_6c6f_6721);
        let mut bytes = Vec::with_capacity(8 << 20);
        while bytes.len() < 8 << 20 {
            bytes.extend_from_slice(&rng.next_u64().to_le_bytes());
        }
        Pool { bytes }
    }

    /// Event number `i` with a payload of `size` bytes.
    pub fn event(&self, i: u64, size: usize) -> Event<'_> {
        let mut r = Rng::new(i ^ 0xA5A5_A5A5);
        let start = r.below((self.bytes.len() - size) as u64) as usize;
        Event { key: key_for(i), payload: &self.bytes[start..start + size] }
    }

    /// Events `[from, from + n)` with `size`-byte payloads.
    pub fn events(&self, from: u64, n: u64, size: usize) -> Vec<Event<'_>> {
        (from..from + n).map(|i| self.event(i, size)).collect()
    }
}

/// The key of event `i`: `acct-` followed by 11 decimal digits of `i % 100_003`.
pub fn key_for(i: u64) -> [u8; KEY_LEN] {
    let mut k = *b"acct-00000000000";
    let mut v = i % 100_003;
    for slot in k[5..].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    k
}

/// Sum of the payload as little-endian u64 words (and trailing bytes): reads every byte.
#[inline]
pub fn touch(bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    let mut acc = 0u64;
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        acc = acc.wrapping_add(u64::from_le_bytes(b));
    }
    for &b in words.remainder() {
        acc = acc.wrapping_add(u64::from(b));
    }
    acc
}

/// What a sequence of reads returned: record count, payload bytes, payload checksum and an
/// order-sensitive hash. Two stores returned the same records in the same order iff their
/// digests are equal (with overwhelming probability).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Digest {
    /// Records.
    pub count: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// Sum of [`touch`] over payloads.
    pub sum: u64,
    /// Order-sensitive combination of the per-record checksums.
    pub order: u64,
}

impl Digest {
    /// Fold one payload in.
    #[inline]
    pub fn add(&mut self, payload: &[u8]) {
        let s = touch(payload) ^ payload.len() as u64;
        self.count += 1;
        self.bytes += payload.len() as u64;
        self.sum = self.sum.wrapping_add(s);
        self.order = (self.order ^ s).wrapping_mul(0x0000_0100_0000_01B3).rotate_left(7);
    }

    /// The digest of these events read in order.
    pub fn of(events: &[Event<'_>]) -> Digest {
        let mut d = Digest::default();
        for e in events {
            d.add(e.payload);
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_digest() {
        assert_eq!(&key_for(42), b"acct-00000000042");
        let pool = Pool::new();
        let a = pool.events(0, 10, 100);
        let mut b = a.clone();
        b.swap(1, 2);
        assert_ne!(Digest::of(&a), Digest::of(&b));
        assert_eq!(Digest::of(&a).count, 10);
    }
}

//! The frame the two physical baselines (`file`, `mmap`) write, and the record positions they
//! are given for free.
//!
//! A frame is the least a log of these records needs: `u32` payload length, `u64` timestamp
//! (µs), the 16-byte key, the payload; little-endian, no padding, no checksum. That is
//! `28 + payload` bytes per record, against tidelog's `40 + 16 + payload` rounded up to 8
//! (plus an 8-byte durable mark on the first record of some batches): 128 against 160 bytes for
//! 100 B payloads, 1,052 against 1,080 for 1 KiB, 4,124 against 4,152 for 4 KiB and 16,412
//! against 16,440 for 16 KiB.
//!
//! The baselines have no index: the byte position of every record is kept in memory as it is
//! written, and survives closing and reopening the store through a process-wide registry keyed
//! by the data file's path (rebuilt by walking the frames if the registry does not match the
//! file). A random read by offset is then one `pread` or one slice of the map.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use super::Store;
use crate::data::{Digest, Event, KEY_LEN};
use crate::Result;

/// Bytes before the payload: length, timestamp, key.
pub const FRAME_HEADER: usize = 4 + 8 + KEY_LEN;

/// Bytes of the frame holding a `payload`-byte record.
pub fn frame_len(payload: usize) -> usize {
    FRAME_HEADER + payload
}

/// Append the frame of `e` to `buf`.
#[inline]
pub fn encode(buf: &mut Vec<u8>, ts: u64, e: &Event<'_>) {
    buf.extend_from_slice(&(e.payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&ts.to_le_bytes());
    buf.extend_from_slice(&e.key);
    buf.extend_from_slice(e.payload);
}

/// Write the frame of `e` into `dst` (exactly [`frame_len`] bytes).
#[inline]
pub fn encode_into(dst: &mut [u8], ts: u64, e: &Event<'_>) {
    let (len, rest) = dst.split_at_mut(4);
    len.copy_from_slice(&(e.payload.len() as u32).to_le_bytes());
    let (t, rest) = rest.split_at_mut(8);
    t.copy_from_slice(&ts.to_le_bytes());
    let (k, p) = rest.split_at_mut(KEY_LEN);
    k.copy_from_slice(&e.key);
    p.copy_from_slice(e.payload);
}

/// The frame length announced by the header at the start of `bytes`: `None` if fewer than
/// [`FRAME_HEADER`] bytes, or if the length field is zero, which marks the end (the `mmap`
/// baseline's preallocated space is zeros; this harness never writes an empty payload).
#[inline]
pub fn announced(bytes: &[u8]) -> Option<usize> {
    let len: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    let len = u32::from_le_bytes(len) as usize;
    (len > 0 && bytes.len() >= FRAME_HEADER).then(|| frame_len(len))
}

/// Walk the complete frames at the start of `bytes`, folding each payload into `digest` and
/// (if given) recording its position (`base` + index in `bytes`). Returns the bytes consumed.
pub fn walk(bytes: &[u8], base: u64, digest: &mut Digest, mut positions: Option<&mut Vec<u64>>) -> usize {
    let mut at = 0;
    while let Some(n) = announced(&bytes[at..]) {
        let Some(frame) = bytes.get(at..at + n) else { break };
        digest.add(&frame[FRAME_HEADER..]);
        if let Some(p) = positions.as_deref_mut() {
            p.push(base + at as u64);
        }
        at += n;
    }
    at
}

/// The payload of the frame that must be exactly `frame`.
pub fn payload<'a>(frame: &'a [u8], what: &str, offset: u64) -> Result<&'a [u8]> {
    match announced(frame) {
        Some(n) if n == frame.len() => Ok(&frame[FRAME_HEADER..]),
        _ => Err(format!("{what}: record {offset}: bad frame").into()),
    }
}

/// Where each record starts, and where the last one ends.
#[derive(Debug, Default, Clone)]
pub struct Positions {
    /// Byte position of record `i`.
    pub starts: Vec<u64>,
    /// End of the last frame.
    pub end: u64,
}

impl Positions {
    /// Record `i`'s byte range.
    pub fn range(&self, i: u64) -> Option<(u64, u64)> {
        let i = usize::try_from(i).ok()?;
        let start = *self.starts.get(i)?;
        let end = self.starts.get(i + 1).copied().unwrap_or(self.end);
        Some((start, end))
    }

    /// The offset of the last record (`None` if there is none).
    pub fn last(&self) -> Option<u64> {
        (self.starts.len() as u64).checked_sub(1)
    }

    /// Note a frame of `len` bytes appended at the end.
    #[inline]
    pub fn push(&mut self, len: usize) {
        self.starts.push(self.end);
        self.end += len as u64;
    }
}

/// [`Store::read_last`] of a baseline whose last record is `last`: read it, return its offset.
pub fn read_last(store: &mut impl Store, last: Option<u64>) -> Result<Option<u64>> {
    if let Some(l) = last {
        store.read_at(l, &mut Digest::default())?;
    }
    Ok(last)
}

static REGISTRY: LazyLock<Mutex<HashMap<PathBuf, Positions>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// The positions kept for `path` when its store was closed (the caller checks them against
/// the file: the directory may have been removed and created again since).
pub fn take(path: &Path) -> Option<Positions> {
    REGISTRY.lock().ok()?.remove(path)
}

/// Keep `positions` for the next open of `path`.
pub fn keep(path: &Path, positions: Positions) {
    if let Ok(mut map) = REGISTRY.lock() {
        map.insert(path.to_path_buf(), positions);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Pool;

    #[test]
    fn frames_round_trip_and_walk_stops_at_a_partial_frame() {
        let pool = Pool::new();
        let events = pool.events(0, 3, 100);
        let mut buf = Vec::new();
        for e in &events {
            encode(&mut buf, 7, e);
        }
        assert_eq!(buf.len(), 3 * frame_len(100));
        let mut one = vec![0u8; frame_len(100)];
        encode_into(&mut one, 7, &events[2]);
        assert_eq!(&buf[2 * frame_len(100)..], &one[..]);
        let mut d = Digest::default();
        let mut pos = Vec::new();
        let used = walk(&buf[..buf.len() - 1], 10, &mut d, Some(&mut pos));
        assert_eq!(used, 2 * frame_len(100));
        assert_eq!(pos, [10, 10 + frame_len(100) as u64]);
        assert_eq!(d, Digest::of(&events[..2]));
    }
}

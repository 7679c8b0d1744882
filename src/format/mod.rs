//! Byte layouts of every file tidelog writes, one file per kind: `frame` (a record, encoded
//! and decoded together with the rule of what its checksum covers), `segment_header`,
//! `index` (the generic sorted index file), `checkpoint`. `docs/format.md` is the prose
//! version of this module; the two must agree. All integers are little-endian with explicit
//! widths.

pub(crate) mod checkpoint;
pub(crate) mod frame;
pub(crate) mod index;
pub(crate) mod removed_streams;
pub(crate) mod segment_header;
pub(crate) mod view_index;

pub(crate) use checkpoint::Checkpoint;
pub(crate) use frame::{decode_frame, Frame, FrameHeader, RECORD_ALIGN, RECORD_HEADER_LEN};
pub(crate) use segment_header::{SegmentHeader, SEGMENT_HEADER_LEN};

/// Version written into every file header; bumped on any incompatible layout change. Files
/// of every earlier version keep opening (`tests/format_compat.rs`).
///
/// * 1: the first release.
/// * 2: frames may carry a durable mark and a tombstone flag; segment headers carry flags.
pub const FORMAT_VERSION: u32 = 2;

/// Round `n` up to the record alignment. Callers guarantee `n` is far below `usize::MAX`
/// (it is bounded by the segment size, at most 4 GiB).
#[inline]
pub(crate) const fn align_up(n: usize) -> usize {
    (n + RECORD_ALIGN - 1) & !(RECORD_ALIGN - 1)
}

// ---- little-endian fields: the one place they are read and written ------------------------

#[inline]
pub(crate) fn le_u16(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[at..at + 2]);
    u16::from_le_bytes(a)
}
#[inline]
pub(crate) fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}
#[inline]
pub(crate) fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}
#[inline]
pub(crate) fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
#[inline]
pub(crate) fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
#[inline]
pub(crate) fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

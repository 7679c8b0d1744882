//! The record frame: its layout, its encoding, its decoding, and what its checksum covers
//! (one function, [`frame_crc`], used by both directions).
//!
//! Record frame (8-byte aligned within a segment):
//!
//! | at | size | field        | meaning                                                    |
//! |----|------|--------------|------------------------------------------------------------|
//! | 0  | 4    | frame_len    | bytes of header + body, excluding alignment padding; 0 = end |
//! | 4  | 4    | crc          | CRC-32 (IEEE) of bytes [0,4) followed by [8, frame_len)    |
//! | 8  | 8    | offset       | the record's own offset                                    |
//! | 16 | 8    | timestamp_us | append time, µs since the Unix epoch, non-decreasing       |
//! | 24 | 4    | batch_rest   | records that follow in the same atomic batch               |
//! | 28 | 4    | key_len      | bytes of key                                               |
//! | 32 | 4    | headers_len  | bytes of the encoded header section                        |
//! | 36 | 2    | flags        | bit 0: the record has a key (possibly empty); bit 1: the body starts with a durable mark; bit 2: tombstone |
//! | 38 | 2    | reserved     | zero                                                       |
//! | 40 | …    | body         | [durable mark: u64], key, header section, payload          |
//!
//! Flags (format version 2 added bits 1 and 2; version 1 frames have only bit 0):
//! * bit 0, `has_key`: the record has a key, possibly empty (`key_len` may then be 0).
//! * bit 1, `durable_mark`: the body starts with 8 bytes, the offset before which every record
//!   of the log was on stable storage when this frame was written. The writer puts one on
//!   the first record of a batch whenever the durable point moved since its last mark, so any
//!   valid frame proves how far the log was durable; recovery uses it to tell a torn write past
//!   the durable point (repaired) from damage below it (reported).
//! * bit 2, `tombstone`: the record marks the deletion of its key (used by key compaction).
//! * other bits: must be zero.
//!
//! The header section is a sequence of `{ name_len: u16, name: [u8], value_len: u32,
//! value: [u8] }` entries filling exactly `headers_len` bytes; names are UTF-8.

use crate::error::CorruptionKind;
use crate::format::{le_u16, le_u32, le_u64, put_u16, put_u32, put_u64};

pub(crate) const FRAME_LEN_AT: usize = 0;
pub(crate) const CRC_AT: usize = FRAME_LEN_AT + 4;
pub(crate) const OFFSET_AT: usize = CRC_AT + 4;
pub(crate) const TIMESTAMP_AT: usize = OFFSET_AT + 8;
pub(crate) const BATCH_REST_AT: usize = TIMESTAMP_AT + 8;
pub(crate) const KEY_LEN_AT: usize = BATCH_REST_AT + 4;
pub(crate) const HEADERS_LEN_AT: usize = KEY_LEN_AT + 4;
pub(crate) const FLAGS_AT: usize = HEADERS_LEN_AT + 4;
pub(crate) const RESERVED_AT: usize = FLAGS_AT + 2;
/// Bytes of the fixed record header.
pub const RECORD_HEADER_LEN: usize = RESERVED_AT + 2;
const _: () = assert!(RECORD_HEADER_LEN == 40);
/// Records start at multiples of this within a segment.
pub const RECORD_ALIGN: usize = 8;
const _: () = assert!(RECORD_HEADER_LEN.is_multiple_of(RECORD_ALIGN));

pub(crate) const FLAG_HAS_KEY: u16 = 1;
pub(crate) const FLAG_DURABLE_MARK: u16 = 1 << 1;
pub(crate) const FLAG_TOMBSTONE: u16 = 1 << 2;
const KNOWN_FLAGS: u16 = FLAG_HAS_KEY | FLAG_DURABLE_MARK | FLAG_TOMBSTONE;
/// Bytes of the durable mark that starts the body of a frame flagged `durable_mark`.
pub(crate) const DURABLE_MARK_LEN: usize = 8;

/// The checksum of a frame of `frame_len` bytes whose bytes from [`OFFSET_AT`] on are
/// `after_crc`: it covers the length field and everything after the checksum field.
/// Encoding and decoding both call this; it is the one statement of what the checksum
/// covers. The length is passed as a value because the encoder must not write the length
/// field before the frame is complete (followers read it as "the frame is ready").
#[inline]
pub(crate) fn frame_crc(frame_len: u32, after_crc: &[u8]) -> u32 {
    let mut h = crc_hasher();
    h.update(&frame_len.to_le_bytes());
    h.update(after_crc);
    h.finalize()
}

/// A fresh CRC-32 hasher. `crc32fast::Hasher::new` detects the CPU's features each time
/// (a few dozen instructions, per record on the append and read paths); the detected hasher
/// is made once and copied.
#[inline]
fn crc_hasher() -> crc32fast::Hasher {
    static PROTOTYPE: std::sync::OnceLock<crc32fast::Hasher> = std::sync::OnceLock::new();
    PROTOTYPE.get_or_init(crc32fast::Hasher::new).clone()
}

/// What a frame's body holds, for encoding.
pub(crate) struct FrameBody<'a, H> {
    /// The durable mark to write first in the body (see the module docs); the caller sized
    /// the frame with [`DURABLE_MARK_LEN`] more bytes when it is `Some`.
    pub durable_mark: Option<u64>,
    pub tombstone: bool,
    pub key: Option<&'a [u8]>,
    /// Header entries (name, value), in order.
    pub headers: H,
    pub payload: &'a [u8],
}

/// Encode a frame into `dst` (exactly `frame_len` bytes) except the frame length field, which
/// the caller stores last (see the publication protocol in `io::mmap`): the checksum is
/// computed over the length `dst.len()`, so the caller must store exactly that length.
/// The caller has sized `dst` from the same key, headers and payload.
#[inline]
pub(crate) fn encode_frame<'a, H>(
    dst: &mut [u8],
    body: FrameBody<'a, H>,
    offset: u64,
    timestamp_us: u64,
    batch_rest: u32,
) where
    H: Iterator<Item = (&'a str, &'a [u8])>,
{
    debug_assert!(dst.len() >= RECORD_HEADER_LEN);
    let key = body.key.unwrap_or(&[]);
    let mut at = RECORD_HEADER_LEN;
    if let Some(mark) = body.durable_mark {
        put_u64(dst, at, mark);
        at += DURABLE_MARK_LEN;
    }
    dst[at..at + key.len()].copy_from_slice(key);
    at += key.len();
    let hstart = at;
    for (name, value) in body.headers {
        put_u16(dst, at, name.len() as u16);
        at += 2;
        dst[at..at + name.len()].copy_from_slice(name.as_bytes());
        at += name.len();
        put_u32(dst, at, value.len() as u32);
        at += 4;
        dst[at..at + value.len()].copy_from_slice(value);
        at += value.len();
    }
    let headers_len = (at - hstart) as u32;
    dst[at..].copy_from_slice(body.payload);
    put_u64(dst, OFFSET_AT, offset);
    put_u64(dst, TIMESTAMP_AT, timestamp_us);
    put_u32(dst, BATCH_REST_AT, batch_rest);
    put_u32(dst, KEY_LEN_AT, key.len() as u32);
    put_u32(dst, HEADERS_LEN_AT, headers_len);
    let mut flags = 0;
    if body.key.is_some() {
        flags |= FLAG_HAS_KEY;
    }
    if body.durable_mark.is_some() {
        flags |= FLAG_DURABLE_MARK;
    }
    if body.tombstone {
        flags |= FLAG_TOMBSTONE;
    }
    put_u16(dst, FLAGS_AT, flags);
    put_u16(dst, RESERVED_AT, 0);
    let crc = frame_crc(dst.len() as u32, &dst[OFFSET_AT..]);
    put_u32(dst, CRC_AT, crc);
}

/// A record header decoded and validated against its checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub frame_len: u32,
    pub offset: u64,
    pub timestamp_us: u64,
    pub batch_rest: u32,
    pub key_len: u32,
    pub headers_len: u32,
    pub has_key: bool,
    /// Where the key starts within the frame (after the durable mark, if any).
    pub body_at: u32,
    pub durable_mark: Option<u64>,
    pub tombstone: bool,
}

/// Outcome of decoding the frame at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A valid record: its header, and where its body lies within the buffer.
    Record(FrameHeader),
    /// Zero bytes where a frame length would be: the end of written data.
    End,
    /// The bytes at this position are not a valid frame.
    Invalid(CorruptionKind),
}

/// Decode and fully validate the frame at `pos` in `buf` (the published bytes of a segment).
/// `expected_offset`, when given, must match the stored offset. Never panics, whatever `buf`
/// holds: every length is checked against the space left before it is used.
#[inline]
pub(crate) fn decode_frame(buf: &[u8], pos: usize, expected_offset: Option<u64>) -> Frame {
    let available = buf.len().saturating_sub(pos);
    if available < 4 {
        return if buf[pos.min(buf.len())..].iter().all(|&b| b == 0) {
            Frame::End
        } else {
            Frame::Invalid(CorruptionKind::BadLength { len: 0, available: available as u64 })
        };
    }
    let frame_len = le_u32(buf, pos + FRAME_LEN_AT);
    if frame_len == 0 {
        return Frame::End;
    }
    if (frame_len as usize) < RECORD_HEADER_LEN || frame_len as usize > available {
        return Frame::Invalid(CorruptionKind::BadLength { len: frame_len as u64, available: available as u64 });
    }
    let frame = &buf[pos..pos + frame_len as usize];
    let got = frame_crc(frame_len, &frame[OFFSET_AT..]);
    let expected = le_u32(frame, CRC_AT);
    if got != expected {
        return Frame::Invalid(CorruptionKind::ChecksumMismatch { got, expected });
    }
    let offset = le_u64(frame, OFFSET_AT);
    if let Some(want) = expected_offset {
        if offset != want {
            return Frame::Invalid(CorruptionKind::OffsetMismatch { got: offset, expected: want });
        }
    }
    let key_len = le_u32(frame, KEY_LEN_AT);
    let headers_len = le_u32(frame, HEADERS_LEN_AT);
    let flags = le_u16(frame, FLAGS_AT);
    let reserved = le_u16(frame, RESERVED_AT);
    if reserved != 0 {
        return Frame::Invalid(CorruptionKind::BadField("reserved"));
    }
    if flags & !KNOWN_FLAGS != 0 {
        return Frame::Invalid(CorruptionKind::BadField("flags"));
    }
    let has_key = flags & FLAG_HAS_KEY != 0;
    if !has_key && key_len != 0 {
        return Frame::Invalid(CorruptionKind::BadField("key_len"));
    }
    let mut body_at = RECORD_HEADER_LEN;
    let mut durable_mark = None;
    if flags & FLAG_DURABLE_MARK != 0 {
        if frame.len() < RECORD_HEADER_LEN + DURABLE_MARK_LEN {
            return Frame::Invalid(CorruptionKind::BadField("durable_mark"));
        }
        durable_mark = Some(le_u64(frame, RECORD_HEADER_LEN));
        body_at += DURABLE_MARK_LEN;
    }
    let body = frame_len as u64 - body_at as u64;
    if key_len as u64 + headers_len as u64 > body {
        return Frame::Invalid(CorruptionKind::BadField("key_len/headers_len"));
    }
    let hstart = body_at + key_len as usize;
    if !headers_well_formed(&frame[hstart..hstart + headers_len as usize]) {
        return Frame::Invalid(CorruptionKind::BadField("headers"));
    }
    Frame::Record(FrameHeader {
        frame_len,
        offset,
        timestamp_us: le_u64(frame, TIMESTAMP_AT),
        batch_rest: le_u32(frame, BATCH_REST_AT),
        key_len,
        headers_len,
        has_key,
        body_at: body_at as u32,
        durable_mark,
        tombstone: flags & FLAG_TOMBSTONE != 0,
    })
}

/// A frame's length, offset and key read without checking its checksum or its header
/// section, for building indexes whose entries are only candidates (every lookup checks the
/// record it lands on). `None` at the end of the frames or where the fields do not fit.
#[inline]
pub(crate) fn peek_key(buf: &[u8], pos: usize) -> Option<(u32, u64, Option<&[u8]>)> {
    let head = buf.get(pos..pos.checked_add(RECORD_HEADER_LEN)?)?;
    let frame_len = le_u32(head, FRAME_LEN_AT);
    let frame = buf.get(pos..pos.checked_add(frame_len as usize)?)?;
    if (frame_len as usize) < RECORD_HEADER_LEN {
        return None;
    }
    let offset = le_u64(head, OFFSET_AT);
    let flags = le_u16(head, FLAGS_AT);
    if flags & FLAG_HAS_KEY == 0 {
        return Some((frame_len, offset, None));
    }
    let at = RECORD_HEADER_LEN + if flags & FLAG_DURABLE_MARK != 0 { DURABLE_MARK_LEN } else { 0 };
    let key = frame.get(at..at.checked_add(le_u32(head, KEY_LEN_AT) as usize)?)?;
    Some((frame_len, offset, Some(key)))
}

/// Walk a header section once; true if it splits exactly into well-formed entries.
#[inline]
fn headers_well_formed(mut s: &[u8]) -> bool {
    while !s.is_empty() {
        match split_header(s) {
            Some((_, _, rest)) => s = rest,
            None => return false,
        }
    }
    true
}

/// Split the first header entry off a header section: (name, value, rest).
pub(crate) fn split_header(s: &[u8]) -> Option<(&str, &[u8], &[u8])> {
    if s.len() < 2 {
        return None;
    }
    let nlen = le_u16(s, 0) as usize;
    let s = &s[2..];
    if s.len() < nlen + 4 {
        return None;
    }
    let name = std::str::from_utf8(&s[..nlen]).ok()?;
    let vlen = le_u32(s, nlen) as usize;
    let s = &s[nlen + 4..];
    if s.len() < vlen {
        return None;
    }
    Some((name, &s[..vlen], &s[vlen..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_frame_never_panics_on_short_or_zero_buffers() {
        assert_eq!(decode_frame(&[], 0, None), Frame::End);
        assert_eq!(decode_frame(&[0, 0], 0, None), Frame::End);
        assert!(matches!(decode_frame(&[1, 0], 0, None), Frame::Invalid(_)));
        assert!(matches!(decode_frame(&[255; 64], 0, None), Frame::Invalid(_)));
        assert!(matches!(decode_frame(&[255; 64], 60, None), Frame::Invalid(_)));
    }

    fn encoded(mark: Option<u64>, tombstone: bool) -> Vec<u8> {
        let (key, payload) = (&b"key"[..], &b"payload"[..]);
        let headers = [("h", &b"v"[..])];
        let len = RECORD_HEADER_LEN + mark.map_or(0, |_| DURABLE_MARK_LEN) + key.len() + 2 + 1 + 4 + 1 + payload.len();
        let mut buf = vec![0u8; len];
        let body = FrameBody { durable_mark: mark, tombstone, key: Some(key), headers: headers.into_iter(), payload };
        encode_frame(&mut buf, body, 42, 7, 0);
        put_u32(&mut buf, FRAME_LEN_AT, len as u32);
        buf
    }

    #[test]
    fn a_durable_mark_and_a_tombstone_round_trip_and_leave_the_body_intact() {
        for (mark, tombstone) in [(None, false), (Some(41), false), (Some(0), true), (None, true)] {
            let buf = encoded(mark, tombstone);
            let Frame::Record(h) = decode_frame(&buf, 0, Some(42)) else { panic!("{mark:?} {tombstone}") };
            assert_eq!((h.durable_mark, h.tombstone), (mark, tombstone));
            let body = &buf[h.body_at as usize..];
            assert_eq!(&body[..3], b"key");
            assert!(body.ends_with(b"payload"));
        }
    }

    #[test]
    fn unknown_flag_bits_are_rejected() {
        let mut buf = encoded(Some(1), false);
        for bit in 3..16 {
            let mut b = buf.clone();
            let flags = le_u16(&b, FLAGS_AT) | (1 << bit);
            put_u16(&mut b, FLAGS_AT, flags);
            let crc = frame_crc(b.len() as u32, &b[OFFSET_AT..]);
            put_u32(&mut b, CRC_AT, crc);
            assert_eq!(decode_frame(&b, 0, None), Frame::Invalid(CorruptionKind::BadField("flags")), "bit {bit}");
        }
        // A mark flag on a frame too short to hold one is not read past the frame.
        buf.truncate(RECORD_HEADER_LEN + 4);
        let len = buf.len() as u32;
        put_u32(&mut buf, FRAME_LEN_AT, len);
        put_u32(&mut buf, KEY_LEN_AT, 0);
        put_u32(&mut buf, HEADERS_LEN_AT, 0);
        let crc = frame_crc(buf.len() as u32, &buf[OFFSET_AT..]);
        put_u32(&mut buf, CRC_AT, crc);
        assert_eq!(decode_frame(&buf, 0, None), Frame::Invalid(CorruptionKind::BadField("durable_mark")));
    }
}

//! Records as callers see them: [`Record`] to append, [`RecordView`] borrowed from the map
//! when reading, [`OwnedRecord`] when a copy is wanted.

use crate::error::{Error, Result};
use crate::format::frame::{self, encode_frame, FrameBody, FrameHeader, RECORD_HEADER_LEN};

/// A name/value header attached to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// Header name (UTF-8, at most 65535 bytes).
    pub name: &'a str,
    /// Header value (bytes).
    pub value: &'a [u8],
}

/// A record to append. The log assigns its offset and timestamp.
///
/// ```
/// use tidelog::{Header, Record};
/// let headers = [Header { name: "type", value: b"deposit" }];
/// let r = Record::new(b"{\"amount\":10}").key(b"account-7").headers(&headers);
/// assert_eq!(r.payload, b"{\"amount\":10}");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Record<'a> {
    /// Optional key (may be empty but present).
    pub key: Option<&'a [u8]>,
    /// Headers, in order.
    pub headers: &'a [Header<'a>],
    /// Payload bytes; empty is allowed.
    pub payload: &'a [u8],
    /// The record marks its key as deleted (a tombstone): key compaction keeps no older
    /// record of the key and drops the tombstone itself after the topic's delete retention.
    /// A tombstone must carry a key.
    pub tombstone: bool,
}

impl<'a> Record<'a> {
    /// A record with this payload, no key and no headers.
    #[must_use]
    pub fn new(payload: &'a [u8]) -> Record<'a> {
        Record { key: None, headers: &[], payload, tombstone: false }
    }

    /// Set the key.
    #[must_use]
    pub fn key(mut self, key: &'a [u8]) -> Record<'a> {
        self.key = Some(key);
        self
    }

    /// Set the headers.
    #[must_use]
    pub fn headers(mut self, headers: &'a [Header<'a>]) -> Record<'a> {
        self.headers = headers;
        self
    }

    /// Mark the record as a tombstone for its key (see [`Record::tombstone`](#structfield.tombstone)).
    #[must_use]
    pub fn tombstone(mut self) -> Record<'a> {
        self.tombstone = true;
        self
    }

    /// Bytes of key + header section + payload: the size checked against
    /// `Options::max_record_bytes`.
    pub fn body_len(&self) -> Result<u64> {
        Ok(self.key.map_or(0, |k| k.len() as u64) + self.headers_len()? + self.payload.len() as u64)
    }

    fn headers_len(&self) -> Result<u64> {
        let mut n = 0u64;
        for h in self.headers {
            if h.name.len() > u16::MAX as usize {
                return Err(Error::HeaderTooLarge("header name longer than 65535 bytes"));
            }
            if h.value.len() as u64 > u32::MAX as u64 {
                return Err(Error::HeaderTooLarge("header value longer than 4 GiB"));
            }
            n += 2 + h.name.len() as u64 + 4 + h.value.len() as u64;
        }
        Ok(n)
    }

    /// Encoded frame length (header + body, no padding). Checked against `max_body`.
    pub(crate) fn frame_len(&self, max_body: u64) -> Result<usize> {
        let body = self.body_len()?;
        if body > max_body {
            return Err(Error::RecordTooLarge { size: body, max: max_body });
        }
        Ok(RECORD_HEADER_LEN + body as usize)
    }

    /// Encode into `dst` (exactly `frame_len` bytes, plus the durable mark's bytes when one is
    /// given) except the frame length field, which the caller publishes last.
    pub(crate) fn encode_into(
        &self,
        dst: &mut [u8],
        offset: u64,
        timestamp_us: u64,
        batch_rest: u32,
        durable_mark: Option<u64>,
    ) {
        let body = FrameBody {
            durable_mark,
            tombstone: self.tombstone,
            key: self.key,
            headers: self.headers.iter().map(|h| (h.name, h.value)),
            payload: self.payload,
        };
        encode_frame(dst, body, offset, timestamp_us, batch_rest);
    }
}

/// A record read from the log, borrowing its bytes from the memory map (no copy).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    offset: u64,
    timestamp_us: u64,
    key: Option<&'a [u8]>,
    headers: &'a [u8],
    payload: &'a [u8],
    tombstone: bool,
}

impl std::fmt::Debug for RecordView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordView")
            .field("offset", &self.offset)
            .field("timestamp_us", &self.timestamp_us)
            .field("key", &self.key)
            .field("headers", &self.headers().collect::<Vec<_>>())
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

impl<'a> RecordView<'a> {
    /// Build a view over a validated frame (`frame` is exactly `hdr.frame_len` bytes).
    #[inline]
    pub(crate) fn from_frame(frame: &'a [u8], hdr: &FrameHeader) -> RecordView<'a> {
        let kstart = hdr.body_at as usize;
        let kend = kstart + hdr.key_len as usize;
        let hend = kend + hdr.headers_len as usize;
        RecordView {
            offset: hdr.offset,
            timestamp_us: hdr.timestamp_us,
            key: hdr.has_key.then(|| &frame[kstart..kend]),
            headers: &frame[kend..hend],
            payload: &frame[hend..],
            tombstone: hdr.tombstone,
        }
    }

    /// The record's offset.
    #[inline]
    pub fn offset(&self) -> u64 {
        self.offset
    }
    /// Append time in microseconds since the Unix epoch.
    #[inline]
    pub fn timestamp_us(&self) -> u64 {
        self.timestamp_us
    }
    /// The key, if the record has one.
    #[inline]
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key
    }
    /// The payload.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
    /// True if the record is a tombstone: it marks its key as deleted, for key compaction
    /// (format flag bit 2). Appends never set it yet.
    #[inline]
    pub fn is_tombstone(&self) -> bool {
        self.tombstone
    }
    /// The headers, in order.
    #[inline]
    pub fn headers(&self) -> HeaderIter<'a> {
        HeaderIter { rest: self.headers }
    }
    /// The first header with this name.
    #[inline]
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers().find(|h| h.name == name).map(|h| h.value)
    }
    /// Copy into an [`OwnedRecord`].
    pub fn to_owned(&self) -> OwnedRecord {
        OwnedRecord {
            offset: self.offset,
            timestamp_us: self.timestamp_us,
            key: self.key.map(<[u8]>::to_vec),
            headers: self.headers().map(|h| (h.name.to_owned(), h.value.to_vec())).collect(),
            payload: self.payload.to_vec(),
            tombstone: self.tombstone,
        }
    }
}

/// Iterator over a record's headers. The section was validated when the record was read.
#[derive(Debug, Clone)]
pub struct HeaderIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = Header<'a>;
    fn next(&mut self) -> Option<Header<'a>> {
        let (name, value, rest) = frame::split_header(self.rest)?;
        self.rest = rest;
        Some(Header { name, value })
    }
}

/// A record copied out of the log.
///
/// It has the accessor methods of [`RecordView`], so code written against one reads the
/// other; the public fields remain for code that takes the record apart.
///
/// ```
/// use tidelog::{Header, Log, Options, Record};
///
/// # fn main() -> Result<(), tidelog::Error> {
/// # let tmp = tempfile::tempdir().unwrap();
/// let log = Log::open(tmp.path().join("events"), Options::default().segment_bytes(1 << 20))?;
/// let headers = [Header { name: "type", value: b"deposit" }];
/// let offset = log.append(Record::new(b"10").key(b"acct-7").headers(&headers))?;
/// let owned = log.read(offset)?;
/// log.read_with(offset, |view| {
///     assert_eq!(owned.offset(), view.offset());
///     assert_eq!(owned.timestamp_us(), view.timestamp_us());
///     assert_eq!(owned.key(), view.key());
///     assert_eq!(owned.payload(), view.payload());
///     assert!(owned.headers().eq(view.headers()));
///     assert_eq!(owned.header("type"), view.header("type"));
/// })?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    /// The record's offset.
    pub offset: u64,
    /// Append time in microseconds since the Unix epoch.
    pub timestamp_us: u64,
    /// The key, if any.
    pub key: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The payload.
    pub payload: Vec<u8>,
    /// True if the record is a tombstone for its key.
    pub tombstone: bool,
}

impl OwnedRecord {
    /// The record's offset.
    pub fn offset(&self) -> u64 {
        self.offset
    }
    /// Append time in microseconds since the Unix epoch.
    pub fn timestamp_us(&self) -> u64 {
        self.timestamp_us
    }
    /// The key, if the record has one.
    pub fn key(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }
    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
    /// The headers, in order, as [`RecordView::headers`] yields them.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = Header<'_>> + Clone + '_ {
        self.headers.iter().map(|(name, value)| Header { name, value })
    }
    /// True if the record is a tombstone: it marks its key as deleted.
    pub fn is_tombstone(&self) -> bool {
        self.tombstone
    }
    /// The first header with this name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
}

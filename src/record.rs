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

/// Anything that can be appended as a record without copying its bytes: the log frames the
/// bytes it borrows from the value straight into its memory map.
///
/// [`Log::append`](crate::Log::append) and [`Log::append_batch`](crate::Log::append_batch)
/// take any `AsRecord`, so a batch of owned buffers is appended as it is, without building a
/// `Vec<Record>` for it first:
///
/// | type | appended as |
/// |------|-------------|
/// | [`Record`] | itself (a slice of them goes to the writer unchanged) |
/// | `[u8]`, `[u8; N]`, `Vec<u8>`, `str`, `String` | the payload; no key, no headers |
/// | `(K, P)` with `K, P: AsRef<[u8]>` | key `K`, payload `P` |
/// | [`OwnedRecord`], [`RecordView`] | key, headers, payload and tombstone flag; the offset and timestamp are the new log's |
/// | `&T` for any `T: AsRecord` | as `T` |
///
/// ```
/// use tidelog::{Log, Options};
/// # fn main() -> Result<(), tidelog::Error> {
/// # let tmp = tempfile::tempdir().unwrap();
/// let log = Log::open(tmp.path().join("events"), Options::default().segment_bytes(1 << 20))?;
/// let payloads: Vec<Vec<u8>> = vec![b"a".to_vec(), b"b".to_vec()];
/// assert_eq!(log.append_batch(&payloads)?, 0..2);                 // owned buffers, as they are
/// assert_eq!(log.append_batch(&[("acct-7", "10"), ("acct-8", "20")])?, 2..4); // (key, payload)
/// assert_eq!(log.append("one more")?, 4);
/// assert_eq!(log.read(2)?.key(), Some(&b"acct-7"[..]));
/// # Ok(()) }
/// ```
///
/// A type of your own implements [`AsRecord::as_record`] (and [`AsRecord::push_headers`] if
/// it keeps headers in another shape than a `&[Header]`).
pub trait AsRecord {
    /// This value as a record to append, borrowing from it. `headers` are the headers
    /// [`AsRecord::push_headers`] gave for it: empty unless that method is implemented.
    fn as_record<'a>(&'a self, headers: &'a [Header<'a>]) -> Record<'a>;

    /// Push this value's headers into `out`, for a type that does not hold them as a
    /// `&[Header]` (the log builds the header list of a whole batch in one buffer and hands
    /// each record its part in [`AsRecord::as_record`]). By default: none.
    fn push_headers<'a>(&'a self, out: &mut Vec<Header<'a>>) {
        let _ = out;
    }

    /// The slice itself when it already is a slice of [`Record`]s, so that it reaches the
    /// writer without being converted. Not meant to be implemented outside this crate.
    #[doc(hidden)]
    fn as_record_slice(records: &[Self]) -> Option<&[Record<'_>]>
    where
        Self: Sized,
    {
        let _ = records;
        None
    }
}

impl AsRecord for Record<'_> {
    fn as_record<'a>(&'a self, _headers: &'a [Header<'a>]) -> Record<'a> {
        *self
    }
    fn as_record_slice(records: &[Self]) -> Option<&[Record<'_>]> {
        Some(records)
    }
}

impl<T: AsRecord + ?Sized> AsRecord for &T {
    fn as_record<'a>(&'a self, headers: &'a [Header<'a>]) -> Record<'a> {
        (**self).as_record(headers)
    }
    fn push_headers<'a>(&'a self, out: &mut Vec<Header<'a>>) {
        (**self).push_headers(out);
    }
}

/// Byte containers are appended as a payload with no key and no headers.
macro_rules! payload_as_record {
    ($($t:ty),*) => {$(
        impl AsRecord for $t {
            fn as_record<'a>(&'a self, _headers: &'a [Header<'a>]) -> Record<'a> {
                Record::new(AsRef::<[u8]>::as_ref(self))
            }
        }
    )*};
}
payload_as_record!([u8], Vec<u8>, str, String);

impl<const N: usize> AsRecord for [u8; N] {
    fn as_record<'a>(&'a self, _headers: &'a [Header<'a>]) -> Record<'a> {
        Record::new(self)
    }
}

/// `(key, payload)`.
impl<K: AsRef<[u8]>, P: AsRef<[u8]>> AsRecord for (K, P) {
    fn as_record<'a>(&'a self, _headers: &'a [Header<'a>]) -> Record<'a> {
        Record::new(self.1.as_ref()).key(self.0.as_ref())
    }
}

/// Appended with its key, headers, payload and tombstone flag; the log gives it a new offset
/// and timestamp.
impl AsRecord for OwnedRecord {
    fn as_record<'a>(&'a self, headers: &'a [Header<'a>]) -> Record<'a> {
        Record { key: self.key.as_deref(), headers, payload: &self.payload, tombstone: self.tombstone }
    }
    fn push_headers<'a>(&'a self, out: &mut Vec<Header<'a>>) {
        out.extend(self.headers());
    }
}

/// Appended with its key, headers, payload and tombstone flag, straight from the map it was
/// read from (copying records from one log into another copies each byte once); the log
/// gives it a new offset and timestamp.
impl AsRecord for RecordView<'_> {
    fn as_record<'a>(&'a self, headers: &'a [Header<'a>]) -> Record<'a> {
        Record { key: self.key, headers, payload: self.payload, tombstone: self.tombstone }
    }
    fn push_headers<'a>(&'a self, out: &mut Vec<Header<'a>>) {
        out.extend(self.headers());
    }
}

/// Batches of at most this many records are converted on the stack.
const STACK_RECORDS: usize = 16;

/// Call `f` with `records` as a slice of [`Record`]s: the slice itself if it is one,
/// otherwise a conversion that borrows every byte from `records` (on the stack for small
/// batches; the headers of a whole batch, if its records keep them in another shape, in one
/// buffer).
pub(crate) fn with_records<R: AsRecord, T>(records: &[R], f: impl FnOnce(&[Record<'_>]) -> T) -> T {
    if let Some(rs) = R::as_record_slice(records) {
        return f(rs);
    }
    let mut headers: Vec<Header<'_>> = Vec::new();
    // The end of each record's headers in `headers`; left empty while no record has any.
    let mut ends: Vec<usize> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let before = headers.len();
        r.push_headers(&mut headers);
        if ends.is_empty() && headers.len() > before {
            ends.resize(i, 0);
        }
        if !ends.is_empty() || headers.len() > before {
            ends.push(headers.len());
        }
    }
    let headers = headers.as_slice();
    let at = |i: usize| {
        let span = match ends.is_empty() {
            true => &headers[..0],
            false => &headers[i.checked_sub(1).map_or(0, |p| ends[p])..ends[i]],
        };
        records[i].as_record(span)
    };
    if records.len() == 1 {
        // One record (every `append`): nothing to fill but itself.
        return f(std::slice::from_ref(&at(0)));
    }
    if records.len() <= STACK_RECORDS {
        let mut buf = [Record::default(); STACK_RECORDS];
        for (i, slot) in buf.iter_mut().enumerate().take(records.len()) {
            *slot = at(i);
        }
        f(&buf[..records.len()])
    } else {
        let converted: Vec<Record<'_>> = (0..records.len()).map(at).collect();
        f(&converted)
    }
}

//! The member protocol's bytes (`docs/format.md`, "Member socket protocol"): length-prefixed
//! frames of requests (member to owner) and responses (owner to member), their encoding, and
//! a decoder that turns every malformed or hostile message into a typed error.
//!
//! A frame is `len: u32` (bytes after this field), `version: u8` (1), `kind: u8`, then the
//! kind's fields, all little-endian with explicit widths.

use std::io::{ErrorKind, Read, Write};
use std::path::Path;

use crate::error::Error;
use crate::OwnedRecord;

/// The protocol version every frame carries.
pub(crate) const VERSION: u8 = 1;
/// The largest request body an owner reads: a settle of about two million deliveries.
pub(crate) const MAX_REQUEST_BYTES: u32 = 16 << 20;
/// The largest response body a member reads.
pub(crate) const MAX_RESPONSE_BYTES: u32 = 1 << 30;
/// Most deliveries one poll hands to a member.
pub(crate) const MAX_POLL: u32 = 4096;

const REQ_POLL: u8 = 1;
const REQ_SETTLE: u8 = 2;
const REQ_EXTEND: u8 = 3;
const REQ_GOODBYE: u8 = 4;
const RESP_DELIVERIES: u8 = 0x81;
const RESP_DONE: u8 = 0x82;
const RESP_ERROR: u8 = 0x83;

/// How a settle request settles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SettleOp {
    Ack,
    /// Retry after `delay_us` (the group's backoff if `None`).
    Nack {
        delay_us: Option<u64>,
    },
    Reject,
    Release,
}

/// One delivery a settle names: the lease token the owner gave, and the offset and attempt
/// the member holds (for its error if the lease is lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Held {
    pub token: u64,
    pub offset: u64,
    pub attempt: u32,
}

/// What a settle request names: leases, or topic offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Targets {
    Leases(Vec<Held>),
    Offsets(Vec<u64>),
}

/// A member's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    Poll {
        max: u32,
        timeout_ms: u32,
    },
    Settle {
        op: SettleOp,
        reason: String,
        targets: Targets,
    },
    Extend {
        lease: Held,
        by_ms: u64,
    },
    /// The member leaves: the owner releases the leases handed out on this connection.
    Goodbye,
}

/// One delivery as the owner sends it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WireDelivery {
    pub token: u64,
    pub attempt: u32,
    /// Lease time left when the owner answered, µs.
    pub lease_left_us: u64,
    pub redriven_from: Option<u64>,
    pub record: OwnedRecord,
}

/// An error the owner reports, typed where the member can rebuild it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WireError {
    LeaseLost { offset: u64, attempt: u32 },
    NotDelivered { offset: u64 },
    Closed,
    Poisoned,
    BadRequest(String),
    Other(String),
}

/// The owner's answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Response {
    Deliveries {
        committed: u64,
        deliveries: Vec<WireDelivery>,
    },
    /// Done; `lease_left_us` answers an extension.
    Done {
        committed: u64,
        lease_left_us: u64,
    },
    Error(WireError),
}

// ---- encoding -------------------------------------------------------------------------

struct Out(Vec<u8>);

impl Out {
    fn new(kind: u8) -> Out {
        Out(vec![0, 0, 0, 0, VERSION, kind])
    }
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn held(&mut self, h: &Held) {
        self.u64(h.token);
        self.u64(h.offset);
        self.u32(h.attempt);
    }
    /// The frame, its length field filled in.
    fn finish(mut self) -> Vec<u8> {
        let len = (self.0.len() - 4) as u32;
        self.0[..4].copy_from_slice(&len.to_le_bytes());
        self.0
    }
}

impl Request {
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            Request::Poll { max, timeout_ms } => {
                let mut o = Out::new(REQ_POLL);
                o.u32(*max);
                o.u32(*timeout_ms);
                o.finish()
            }
            Request::Settle { op, reason, targets } => {
                let mut o = Out::new(REQ_SETTLE);
                let (code, delay) = match op {
                    SettleOp::Ack => (0, 0),
                    SettleOp::Nack { delay_us: None } => (1, 0),
                    SettleOp::Nack { delay_us: Some(d) } => (2, *d),
                    SettleOp::Reject => (3, 0),
                    SettleOp::Release => (4, 0),
                };
                o.u8(code);
                o.u64(delay);
                o.bytes(reason.as_bytes());
                match targets {
                    Targets::Leases(hs) => {
                        o.u8(0);
                        o.u32(hs.len() as u32);
                        hs.iter().for_each(|h| o.held(h));
                    }
                    Targets::Offsets(os) => {
                        o.u8(1);
                        o.u32(os.len() as u32);
                        os.iter().for_each(|x| o.u64(*x));
                    }
                }
                o.finish()
            }
            Request::Extend { lease, by_ms } => {
                let mut o = Out::new(REQ_EXTEND);
                o.held(lease);
                o.u64(*by_ms);
                o.finish()
            }
            Request::Goodbye => Out::new(REQ_GOODBYE).finish(),
        }
    }
}

impl Response {
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            Response::Deliveries { committed, deliveries } => {
                let mut o = Out::new(RESP_DELIVERIES);
                o.u64(*committed);
                o.u32(deliveries.len() as u32);
                for d in deliveries {
                    o.u64(d.token);
                    o.u32(d.attempt);
                    o.u64(d.lease_left_us);
                    o.u64(d.redriven_from.unwrap_or(u64::MAX));
                    let r = &d.record;
                    o.u64(r.offset);
                    o.u64(r.timestamp_us);
                    o.u8(u8::from(r.tombstone) | (u8::from(r.key.is_some()) << 1));
                    o.bytes(r.key.as_deref().unwrap_or(&[]));
                    o.u32(r.headers.len() as u32);
                    for (name, value) in &r.headers {
                        o.bytes(name.as_bytes());
                        o.bytes(value);
                    }
                    o.bytes(&r.payload);
                }
                o.finish()
            }
            Response::Done { committed, lease_left_us } => {
                let mut o = Out::new(RESP_DONE);
                o.u64(*committed);
                o.u64(*lease_left_us);
                o.finish()
            }
            Response::Error(e) => {
                let mut o = Out::new(RESP_ERROR);
                let (code, a, b, text) = match e {
                    WireError::LeaseLost { offset, attempt } => (1, *offset, *attempt, ""),
                    WireError::NotDelivered { offset } => (2, *offset, 0, ""),
                    WireError::Closed => (3, 0, 0, ""),
                    WireError::Poisoned => (4, 0, 0, ""),
                    WireError::BadRequest(t) => (5, 0, 0, t.as_str()),
                    WireError::Other(t) => (6, 0, 0, t.as_str()),
                };
                o.u8(code);
                o.u64(a);
                o.u32(b);
                o.bytes(text.as_bytes());
                o.finish()
            }
        }
    }
}

// ---- decoding -------------------------------------------------------------------------

/// A frame's body being decoded; every read is checked against what is left.
struct In<'a> {
    body: &'a [u8],
    at: usize,
}

/// Why a frame is rejected (located by the caller).
type Bad = &'static str;

impl<'a> In<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], Bad> {
        let left = self.body.len() - self.at;
        if n > left {
            return Err("a field runs past the end of the frame");
        }
        let s = &self.body[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> std::result::Result<u8, Bad> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> std::result::Result<u32, Bad> {
        let mut b = [0; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }
    fn u64(&mut self) -> std::result::Result<u64, Bad> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
    fn bytes(&mut self) -> std::result::Result<&'a [u8], Bad> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn text(&mut self) -> std::result::Result<String, Bad> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| "text is not UTF-8")
    }
    /// A count of items at least `min_bytes` each, checked against the bytes left before
    /// anything is allocated for them.
    fn count(&mut self, min_bytes: usize) -> std::result::Result<usize, Bad> {
        let n = self.u32()? as usize;
        match n.checked_mul(min_bytes) {
            Some(need) if need <= self.body.len() - self.at => Ok(n),
            _ => Err("a count exceeds what the frame holds"),
        }
    }
    fn held(&mut self) -> std::result::Result<Held, Bad> {
        Ok(Held { token: self.u64()?, offset: self.u64()?, attempt: self.u32()? })
    }
    /// The frame's kind, after checking the version.
    fn kind(&mut self) -> std::result::Result<u8, Bad> {
        if self.u8()? != VERSION {
            return Err("unknown protocol version");
        }
        self.u8()
    }
    fn end(&self) -> std::result::Result<(), Bad> {
        match self.at == self.body.len() {
            true => Ok(()),
            false => Err("bytes after the last field"),
        }
    }
}

fn decode_request(body: &[u8]) -> std::result::Result<Request, Bad> {
    let mut i = In { body, at: 0 };
    let req = match i.kind()? {
        REQ_POLL => Request::Poll { max: i.u32()?, timeout_ms: i.u32()? },
        REQ_SETTLE => {
            let code = i.u8()?;
            let delay = i.u64()?;
            let op = match code {
                0 => SettleOp::Ack,
                1 => SettleOp::Nack { delay_us: None },
                2 => SettleOp::Nack { delay_us: Some(delay) },
                3 => SettleOp::Reject,
                4 => SettleOp::Release,
                _ => return Err("unknown settle operation"),
            };
            let reason = i.text()?;
            let targets = match i.u8()? {
                0 => {
                    let n = i.count(20)?;
                    Targets::Leases((0..n).map(|_| i.held()).collect::<std::result::Result<_, _>>()?)
                }
                1 => {
                    let n = i.count(8)?;
                    Targets::Offsets((0..n).map(|_| i.u64()).collect::<std::result::Result<_, _>>()?)
                }
                _ => return Err("unknown settle target kind"),
            };
            Request::Settle { op, reason, targets }
        }
        REQ_EXTEND => Request::Extend { lease: i.held()?, by_ms: i.u64()? },
        REQ_GOODBYE => Request::Goodbye,
        _ => return Err("unknown request kind"),
    };
    i.end()?;
    Ok(req)
}

fn decode_response(body: &[u8]) -> std::result::Result<Response, Bad> {
    let mut i = In { body, at: 0 };
    let resp = match i.kind()? {
        RESP_DELIVERIES => {
            let committed = i.u64()?;
            // The fixed part of one delivery is 57 bytes.
            let n = i.count(57)?;
            let mut deliveries = Vec::with_capacity(n);
            for _ in 0..n {
                let token = i.u64()?;
                let attempt = i.u32()?;
                let lease_left_us = i.u64()?;
                let redriven_from = Some(i.u64()?).filter(|&x| x != u64::MAX);
                let offset = i.u64()?;
                let timestamp_us = i.u64()?;
                let flags = i.u8()?;
                if flags > 3 {
                    return Err("unknown record flags");
                }
                let key = i.bytes()?.to_vec();
                let key = (flags & 2 != 0).then_some(key);
                let h = i.count(8)?;
                let mut headers = Vec::with_capacity(h);
                for _ in 0..h {
                    headers.push((i.text()?, i.bytes()?.to_vec()));
                }
                let payload = i.bytes()?.to_vec();
                let record = OwnedRecord { offset, timestamp_us, key, headers, payload, tombstone: flags & 1 != 0 };
                deliveries.push(WireDelivery { token, attempt, lease_left_us, redriven_from, record });
            }
            Response::Deliveries { committed, deliveries }
        }
        RESP_DONE => Response::Done { committed: i.u64()?, lease_left_us: i.u64()? },
        RESP_ERROR => {
            let code = i.u8()?;
            let a = i.u64()?;
            let b = i.u32()?;
            let text = i.text()?;
            Response::Error(match code {
                1 => WireError::LeaseLost { offset: a, attempt: b },
                2 => WireError::NotDelivered { offset: a },
                3 => WireError::Closed,
                4 => WireError::Poisoned,
                5 => WireError::BadRequest(text),
                6 => WireError::Other(text),
                _ => return Err("unknown error code"),
            })
        }
        _ => return Err("unknown response kind"),
    };
    i.end()?;
    Ok(resp)
}

/// Reads frames from one connection, counting bytes so that a bad frame is located.
pub(crate) struct FrameReader {
    /// Bytes read from the connection before the current frame.
    pub position: u64,
}

/// A frame could not be read: the connection ended or failed (`Gone`), or it is malformed.
pub(crate) enum ReadError {
    /// The peer closed the connection between frames, or the connection failed.
    Gone,
    /// The bytes are not a valid frame.
    Bad(Error),
}

impl FrameReader {
    /// Read one whole frame body (after the length), at most `max` bytes. `idle` is asked
    /// whether to keep waiting each time a read times out.
    fn read_body(
        &mut self,
        r: &mut impl Read,
        max: u32,
        socket: &Path,
        idle: &mut dyn FnMut() -> bool,
    ) -> std::result::Result<Vec<u8>, ReadError> {
        let mut len = [0u8; 4];
        read_full(r, &mut len, idle)?;
        let n = u32::from_le_bytes(len);
        if !(2..=max).contains(&n) {
            return Err(ReadError::Bad(self.bad(socket, "frame length out of range")));
        }
        let mut body = vec![0u8; n as usize];
        read_full(r, &mut body, idle)?;
        Ok(body)
    }

    fn bad(&self, socket: &Path, reason: &str) -> Error {
        Error::MemberProtocol { socket: socket.to_owned(), position: self.position, reason: reason.to_owned() }
    }

    /// The next request (owner side).
    pub(crate) fn request(
        &mut self,
        r: &mut impl Read,
        socket: &Path,
        idle: &mut dyn FnMut() -> bool,
    ) -> std::result::Result<Request, ReadError> {
        let body = self.read_body(r, MAX_REQUEST_BYTES, socket, idle)?;
        let out = decode_request(&body).map_err(|why| ReadError::Bad(self.bad(socket, why)));
        self.position += 4 + body.len() as u64;
        out
    }

    /// The next response (member side).
    pub(crate) fn response(&mut self, r: &mut impl Read, socket: &Path) -> std::result::Result<Response, ReadError> {
        let body = self.read_body(r, MAX_RESPONSE_BYTES, socket, &mut || true)?;
        let out = decode_response(&body).map_err(|why| ReadError::Bad(self.bad(socket, why)));
        self.position += 4 + body.len() as u64;
        out
    }
}

/// Fill `buf`; a read that times out asks `idle` whether to go on waiting.
fn read_full(r: &mut impl Read, buf: &mut [u8], idle: &mut dyn FnMut() -> bool) -> std::result::Result<(), ReadError> {
    let mut at = 0;
    while at < buf.len() {
        match r.read(&mut buf[at..]) {
            Ok(0) => return Err(ReadError::Gone),
            Ok(n) => at += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if !idle() {
                    return Err(ReadError::Gone);
                }
            }
            Err(_) => return Err(ReadError::Gone),
        }
    }
    Ok(())
}

/// Write one encoded frame.
pub(crate) fn send(w: &mut impl Write, frame: &[u8]) -> std::io::Result<()> {
    w.write_all(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(frame: &[u8]) -> &[u8] {
        &frame[4..]
    }

    #[test]
    fn every_request_and_response_round_trips() {
        let reqs = [
            Request::Poll { max: 7, timeout_ms: 300 },
            Request::Settle {
                op: SettleOp::Nack { delay_us: Some(5) },
                reason: "why".into(),
                targets: Targets::Leases(vec![Held { token: 1, offset: 2, attempt: 3 }]),
            },
            Request::Settle { op: SettleOp::Release, reason: String::new(), targets: Targets::Offsets(vec![4, 9]) },
            Request::Extend { lease: Held { token: 5, offset: 6, attempt: 1 }, by_ms: 1000 },
            Request::Goodbye,
        ];
        for r in reqs {
            assert_eq!(decode_request(body(&r.encode())), Ok(r));
        }
        let record = OwnedRecord {
            offset: 3,
            timestamp_us: 44,
            key: Some(b"k".to_vec()),
            headers: vec![("h".into(), b"v".to_vec())],
            payload: b"p".to_vec(),
            tombstone: false,
        };
        let resps = [
            Response::Deliveries {
                committed: 2,
                deliveries: vec![WireDelivery {
                    token: 9,
                    attempt: 2,
                    lease_left_us: 10,
                    redriven_from: Some(1),
                    record,
                }],
            },
            Response::Done { committed: 1, lease_left_us: 0 },
            Response::Error(WireError::LeaseLost { offset: 1, attempt: 2 }),
            Response::Error(WireError::Other("x".into())),
        ];
        for r in resps {
            assert_eq!(decode_response(body(&r.encode())), Ok(r));
        }
    }

    #[test]
    fn every_truncation_and_a_hostile_count_are_errors_not_panics() {
        let r = Request::Settle {
            op: SettleOp::Ack,
            reason: "r".into(),
            targets: Targets::Leases(vec![Held { token: 1, offset: 2, attempt: 3 }; 3]),
        }
        .encode();
        for cut in 0..body(&r).len() {
            assert!(decode_request(&body(&r)[..cut]).is_err(), "cut at {cut}");
        }
        // A count of four billion leases in a short frame is refused before allocating.
        let mut hostile = body(
            &Request::Settle { op: SettleOp::Ack, reason: String::new(), targets: Targets::Offsets(vec![]) }.encode(),
        )
        .to_vec();
        let n = hostile.len();
        hostile[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_request(&hostile), Err("a count exceeds what the frame holds"));
        let mut wrong_version = body(&Request::Goodbye.encode()).to_vec();
        wrong_version[0] = 9;
        assert_eq!(decode_request(&wrong_version), Err("unknown protocol version"));
    }
}

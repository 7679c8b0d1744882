//! A remote member's side: the [`Remote`] behind a [`Group`] handle whose group another
//! process owns. Requests go over a small pool of connections to the owner (one per thread
//! in a request at a time). If the owner goes away, the member takes the group over or
//! joins the new owner ([`super::takeover`]); deliveries it received from the old owner
//! are then lost ([`Error::LeaseLost`]) and their events are delivered again.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::protocol::{self, FrameReader, Held, ReadError, Request, Response, SettleOp, Targets, WireError};
use super::takeover::{self, Reached};
use crate::consumer::delivery::{Delivery, Holder};
use crate::consumer::group::{Group, Remote, RemoteSettle, RemoteTargets};
use crate::consumer::options::GroupOptions;
use crate::consumer::state::ItemId;
use crate::error::{Error, Result};
use crate::store::Topic;

/// One connection to the owner.
struct Conn {
    stream: UnixStream,
    reader: FrameReader,
}

impl Conn {
    fn new(stream: UnixStream) -> Conn {
        Conn { stream, reader: FrameReader { position: 0 } }
    }
}

struct State {
    /// This member's current connection to an owner: deliveries received through it carry
    /// this holder. A new one each time the member reaches an owner again.
    holder: Holder,
    /// Holders of earlier owners' deliveries: settling those is [`Error::LeaseLost`].
    past: Vec<Holder>,
    /// Connections not in use.
    idle: Vec<Conn>,
    /// The owner this member became, if it took the group over.
    owner: Option<Group>,
}

/// A member of a group another process owns.
pub(crate) struct Member {
    topic: Topic,
    name: String,
    opts: GroupOptions,
    socket: PathBuf,
    /// `topic/group`.
    label: String,
    state: Mutex<State>,
    committed: AtomicU64,
    closed: AtomicBool,
}

/// How a request went.
enum Sent {
    /// The owner answered, to the member as it was (`Holder`).
    Answer(Response, Holder),
    /// This process owns the group now.
    Owner(Group),
    /// The connection to the owner ended before an answer; the group was reached again.
    Lost,
}

impl Member {
    pub(crate) fn new(topic: Topic, name: &str, opts: GroupOptions, socket: PathBuf, stream: UnixStream) -> Member {
        let state = State {
            holder: Holder::new_incarnation(topic.name(), name),
            past: Vec::new(),
            idle: vec![Conn::new(stream)],
            owner: None,
        };
        Member {
            label: format!("{}/{name}", topic.name()),
            topic,
            name: name.to_owned(),
            opts,
            socket,
            state: Mutex::new(state),
            committed: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// Send `req` and read the answer; `deliveries` says which successful answer kind is
    /// expected (anything else is a protocol error, and the connection is dropped).
    fn send(&self, req: &Request, deliveries: bool) -> Result<Sent> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let (mut conn, holder) = {
            let mut st = self.state.lock();
            if let Some(g) = &st.owner {
                return Ok(Sent::Owner(g.clone()));
            }
            let holder = st.holder.clone();
            match st.idle.pop() {
                Some(c) => (c, holder),
                None => {
                    drop(st);
                    match UnixStream::connect(&self.socket) {
                        Ok(s) => (Conn::new(s), holder),
                        Err(_) => {
                            self.reach_again(&holder)?;
                            return Ok(Sent::Lost);
                        }
                    }
                }
            }
        };
        let at = conn.reader.position;
        let answer = protocol::send(&mut conn.stream, &req.encode())
            .map_err(|_| ReadError::Gone)
            .and_then(|()| conn.reader.response(&mut conn.stream, &self.socket));
        match answer {
            // The owner is closing the group: reach it again (or take it over).
            Ok(Response::Error(WireError::Closed)) => {
                self.reach_again(&holder)?;
                Ok(Sent::Lost)
            }
            Ok(resp) => {
                let fits = match &resp {
                    Response::Deliveries { .. } => deliveries,
                    Response::Done { .. } => !deliveries,
                    Response::Error(_) => true,
                };
                if !fits {
                    let reason = "an answer of the wrong kind".to_owned();
                    return Err(Error::MemberProtocol { socket: self.socket.clone(), position: at, reason });
                }
                let mut st = self.state.lock();
                if st.holder.same(&holder) && st.owner.is_none() {
                    st.idle.push(conn);
                }
                Ok(Sent::Answer(resp, holder))
            }
            Err(ReadError::Gone) => {
                self.reach_again(&holder)?;
                Ok(Sent::Lost)
            }
            Err(ReadError::Bad(e)) => Err(e),
        }
    }

    /// The connection to the owner failed while this member was `holder`: take the group
    /// over or connect to its new owner, unless another thread did already.
    fn reach_again(&self, holder: &Holder) -> Result<()> {
        let mut st = self.state.lock();
        if !st.holder.same(holder) || st.owner.is_some() {
            return Ok(());
        }
        st.idle.clear();
        let next = Holder::new_incarnation(self.topic.name(), &self.name);
        let old = std::mem::replace(&mut st.holder, next);
        st.past.push(old);
        match takeover::reach(&self.topic, &self.name, &self.opts, &self.socket)? {
            Reached::Owner(g) => st.owner = Some(g),
            Reached::Member(s) => st.idle.push(Conn::new(s)),
        }
        Ok(())
    }

    /// The owner's error, typed.
    fn error(&self, e: WireError) -> Error {
        match e {
            WireError::LeaseLost { offset, attempt } => Error::LeaseLost { offset, attempt },
            WireError::NotDelivered { offset } => Error::NotDelivered { group: self.label.clone(), offset },
            WireError::Closed => Error::Closed,
            WireError::Poisoned => Error::Poisoned,
            WireError::BadRequest(message) | WireError::Other(message) => {
                Error::OwnerFailed { group: self.label.clone(), message }
            }
        }
    }

    /// The leases `ds` hold under the current owner, and those from earlier owners;
    /// [`Error::ForeignDelivery`] if one was not received by this member at all.
    fn classify(&self, ds: &[Delivery]) -> Result<(Vec<Held>, Vec<Held>)> {
        let st = self.state.lock();
        let (mut current, mut stale) = (Vec::new(), Vec::new());
        for d in ds {
            let held = Held { token: d.lease().1, offset: d.offset(), attempt: d.attempt() };
            if d.holder().same(&st.holder) {
                current.push(held);
            } else if st.past.iter().any(|h| h.same(d.holder())) {
                stale.push(held);
            } else {
                return Err(Error::ForeignDelivery {
                    offset: d.offset(),
                    delivered_by: d.holder().label().to_owned(),
                    settled_by: self.label.clone(),
                });
            }
        }
        Ok((current, stale))
    }

    fn done(&self, sent: Sent, lost: &Held) -> Result<u64> {
        match sent {
            Sent::Answer(Response::Done { committed, lease_left_us }, _) => {
                self.committed.store(committed, Ordering::Release);
                Ok(lease_left_us)
            }
            Sent::Answer(Response::Error(e), _) => Err(self.error(e)),
            // The owner changed: the lease went with it.
            _ => Err(Error::LeaseLost { offset: lost.offset, attempt: lost.attempt }),
        }
    }
}

/// Settle topic events by offset through an owner handle (after a takeover).
fn settle_offsets_here(g: &Group, how: RemoteSettle<'_>, offsets: &[u64]) -> Result<()> {
    match how {
        RemoteSettle::Ack => g.ack_offsets(offsets),
        RemoteSettle::Fail { rejected: true, reason, .. } => g.reject_offsets(offsets, reason),
        RemoteSettle::Fail { rejected: false, reason, .. } => g.nack_offsets(offsets, reason),
        RemoteSettle::Release => g.release_offsets(offsets),
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

impl Remote for Member {
    fn topic(&self) -> &Topic {
        &self.topic
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn options(&self) -> &GroupOptions {
        &self.opts
    }

    fn taken_over(&self) -> Option<Group> {
        self.state.lock().owner.clone()
    }

    fn poll(&self, max: usize, timeout: Duration) -> Result<Vec<Delivery>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let left = deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(Instant::now()));
            let req = Request::Poll {
                max: max.min(protocol::MAX_POLL as usize) as u32,
                timeout_ms: millis(left).min(u64::from(u32::MAX)) as u32,
            };
            match self.send(&req, true)? {
                Sent::Owner(g) => return g.poll(max, left),
                Sent::Lost => continue,
                Sent::Answer(Response::Deliveries { committed, deliveries }, holder) => {
                    self.committed.store(committed, Ordering::Release);
                    let now = Instant::now();
                    return Ok(deliveries
                        .into_iter()
                        .map(|w| {
                            let id = w.redriven_from.map_or(ItemId::Topic(w.record.offset), ItemId::Redrive);
                            let deadline = now + Duration::from_micros(w.lease_left_us);
                            Delivery::new(&holder, (id, w.token), w.attempt, deadline, w.record)
                        })
                        .collect());
                }
                Sent::Answer(Response::Error(e), _) => return Err(self.error(e)),
                Sent::Answer(Response::Done { .. }, _) => return Err(Error::Internal("a poll answered as done")),
            }
        }
    }

    fn settle(&self, how: RemoteSettle<'_>, targets: RemoteTargets<'_>) -> Result<()> {
        let (op, reason) = match how {
            RemoteSettle::Ack => (SettleOp::Ack, ""),
            RemoteSettle::Fail { rejected: true, reason, .. } => (SettleOp::Reject, reason),
            RemoteSettle::Fail { rejected: false, delay, reason } => {
                let delay_us = delay.map(|d| d.as_micros().min(u128::from(u64::MAX)) as u64);
                (SettleOp::Nack { delay_us }, reason)
            }
            RemoteSettle::Release => (SettleOp::Release, ""),
        };
        let reason = reason.to_owned();
        match targets {
            RemoteTargets::Deliveries(ds) => {
                let (current, stale) = self.classify(ds)?;
                if let Some(first) = current.first().copied() {
                    let req = Request::Settle { op, reason, targets: Targets::Leases(current) };
                    let sent = self.send(&req, false)?;
                    self.done(sent, &first)?;
                }
                match stale.first() {
                    Some(h) => Err(Error::LeaseLost { offset: h.offset, attempt: h.attempt }),
                    None => Ok(()),
                }
            }
            RemoteTargets::Offsets(offsets) => {
                let req = Request::Settle { op, reason, targets: Targets::Offsets(offsets.to_vec()) };
                loop {
                    match self.send(&req, false)? {
                        Sent::Owner(g) => return settle_offsets_here(&g, how, offsets),
                        Sent::Lost => continue,
                        Sent::Answer(Response::Error(e), _) => return Err(self.error(e)),
                        Sent::Answer(Response::Done { committed, .. }, _) => {
                            self.committed.store(committed, Ordering::Release);
                            return Ok(());
                        }
                        Sent::Answer(Response::Deliveries { .. }, _) => {
                            return Err(Error::Internal("a settle answered with deliveries"))
                        }
                    }
                }
            }
        }
    }

    fn extend_lease(&self, d: &Delivery, by: Duration) -> Result<Instant> {
        let (current, stale) = self.classify(std::slice::from_ref(d))?;
        let Some(lease) = current.first().copied() else {
            return Err(stale.first().map_or(Error::Internal("a delivery neither current nor stale"), |h| {
                Error::LeaseLost { offset: h.offset, attempt: h.attempt }
            }));
        };
        let sent = self.send(&Request::Extend { lease, by_ms: millis(by) }, false)?;
        let left = self.done(sent, &lease)?;
        Ok(Instant::now() + Duration::from_micros(left))
    }

    fn committed(&self) -> u64 {
        match self.taken_over() {
            Some(g) => g.committed(),
            None => self.committed.load(Ordering::Acquire),
        }
    }

    fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let (idle, owner) = {
            let mut st = self.state.lock();
            (std::mem::take(&mut st.idle), st.owner.take())
        };
        for mut c in idle {
            // The owner releases this connection's leases; best effort, it nacks them if
            // the goodbye does not arrive.
            if protocol::send(&mut c.stream, &Request::Goodbye.encode()).is_ok() {
                let _ = c.reader.response(&mut c.stream, &self.socket);
            }
        }
        match owner {
            Some(g) => g.close(),
            None => Ok(()),
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        // Best effort: an explicit `close` reports errors; a drop cannot.
        let _ = Remote::close(self);
    }
}

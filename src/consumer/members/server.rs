//! The owner's side: a listener on the group's member socket, one thread per member
//! connection, serving requests with the owner's [`Group`]. Deliveries handed to a member
//! are kept here under a lease token; a connection that ends without a goodbye (its member
//! died) has its leases nacked at once, so their events go to the other members.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::protocol::{
    self, FrameReader, Held, ReadError, Request, Response, SettleOp, Targets, WireDelivery, WireError,
};
use crate::consumer::delivery::Delivery;
use crate::consumer::group::{Group, GroupInner};
use crate::error::{Error, IoContext, Result};

/// How often the listener and idle connections look whether the group was closed.
const CHECK_EVERY: Duration = Duration::from_millis(50);
/// The reason recorded for the leases of a member whose connection ended.
const LOST_REASON: &str = "member connection lost";

/// One delivery handed to a member: the connection it went to, and the delivery itself.
struct Lease {
    conn: u64,
    delivery: Delivery,
}

/// Leases handed to members, by token; and the token of each item's latest delivery.
#[derive(Default)]
struct Leases {
    by_token: HashMap<u64, Lease>,
    /// `(offset, redriven_from)` to the token of its latest delivery.
    by_item: HashMap<(u64, Option<u64>), u64>,
}

impl Leases {
    fn item(d: &Delivery) -> (u64, Option<u64>) {
        (d.offset(), d.redriven_from())
    }

    fn insert(&mut self, token: u64, conn: u64, delivery: Delivery) {
        // An earlier delivery of the same item can no longer be settled: forget it.
        if let Some(old) = self.by_item.insert(Self::item(&delivery), token) {
            self.by_token.remove(&old);
        }
        self.by_token.insert(token, Lease { conn, delivery });
    }

    fn remove(&mut self, token: u64) {
        if let Some(l) = self.by_token.remove(&token) {
            let item = Self::item(&l.delivery);
            if self.by_item.get(&item) == Some(&token) {
                self.by_item.remove(&item);
            }
        }
    }

    fn remove_offsets(&mut self, offsets: &[u64]) {
        for o in offsets {
            if let Some(t) = self.by_item.get(&(*o, None)).copied() {
                self.remove(t);
            }
        }
    }

    /// Take every lease of connection `conn`.
    fn take_conn(&mut self, conn: u64) -> Vec<Delivery> {
        let tokens: Vec<u64> = self.by_token.iter().filter(|(_, l)| l.conn == conn).map(|(t, _)| *t).collect();
        let mut out = Vec::with_capacity(tokens.len());
        for t in tokens {
            if let Some(l) = self.by_token.get(&t) {
                out.push(l.delivery.clone());
            }
            self.remove(t);
        }
        out
    }
}

/// What the listener and its connections share.
struct Shared {
    group: Weak<GroupInner>,
    socket: PathBuf,
    leases: Mutex<Leases>,
    next_token: AtomicU64,
    next_conn: AtomicU64,
}

impl Shared {
    /// The owner's group while it is open.
    fn group(&self) -> Option<Group> {
        self.group.upgrade().filter(|g| !g.is_closed()).map(Group::from_inner)
    }
}

/// Serve remote members of `group` (an owner handle) on the group's member socket, unless
/// this opening serves them already. The listener holds the group weakly: it stops when
/// the group is closed or dropped.
pub(crate) fn serve(group: &Group) -> Result<()> {
    let Some(inner) = group.owner_inner() else { return Ok(()) };
    if !inner.start_serving() {
        return Ok(());
    }
    let socket = super::socket_path(inner.dir());
    // A socket left by an earlier owner (one that died, or closed a moment ago) is replaced:
    // this process holds the group's lock, so no other owner is listening on it.
    match std::fs::remove_file(&socket) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&socket, e)),
    }
    let listener = UnixListener::bind(&socket).at(&socket)?;
    // Members need the group directory's permissions to reach the socket; a socket in the
    // temporary directory gets the directory's read and write bits.
    let mode = std::fs::metadata(inner.dir()).at(inner.dir())?.permissions().mode() & 0o666;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(mode)).at(&socket)?;
    listener.set_nonblocking(true).at(&socket)?;
    let shared = Arc::new(Shared {
        group: Arc::downgrade(&inner),
        socket: socket.clone(),
        leases: Mutex::new(Leases::default()),
        next_token: AtomicU64::new(1),
        next_conn: AtomicU64::new(1),
    });
    std::thread::Builder::new()
        .name("tidelog-members".into())
        .spawn(move || accept_loop(&listener, &shared))
        .at(&socket)?;
    Ok(())
}

fn accept_loop(listener: &UnixListener, shared: &Arc<Shared>) {
    while shared.group().is_some() {
        match listener.accept() {
            Ok((stream, _)) => {
                let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
                let s = shared.clone();
                // A connection that cannot get a thread is dropped: its member reconnects.
                let _ = std::thread::Builder::new()
                    .name("tidelog-member".into())
                    .spawn(move || serve_connection(&s, stream, conn));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => std::thread::sleep(CHECK_EVERY),
        }
    }
}

fn serve_connection(shared: &Shared, stream: UnixStream, conn: u64) {
    // A connection that cannot be set up is dropped: its member reconnects.
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(CHECK_EVERY)).is_err() {
        return;
    }
    let mut reader = FrameReader { position: 0 };
    let mut goodbye = false;
    loop {
        let req = match reader.request(&mut &stream, &shared.socket, &mut || shared.group().is_some()) {
            Ok(r) => r,
            Err(ReadError::Gone) => break,
            Err(ReadError::Bad(e)) => {
                // Best effort: tell the member why, then drop the connection.
                let _ = protocol::send(&mut &stream, &Response::Error(WireError::BadRequest(e.to_string())).encode());
                break;
            }
        };
        let Some(group) = shared.group() else { break };
        goodbye = req == Request::Goodbye;
        let resp = answer(shared, &group, conn, req);
        drop(group);
        if protocol::send(&mut &stream, &resp.encode()).is_err() || goodbye {
            break;
        }
    }
    let held = shared.leases.lock().take_conn(conn);
    if let Some(group) = shared.group() {
        for d in &held {
            // The member left (released) or died (a failed attempt, counted like an expired
            // lease); a delivery settled or redelivered since is not ours to change.
            let _ = match goodbye {
                true => group.release(d),
                false => group.nack_after(d, Duration::ZERO, LOST_REASON),
            };
        }
    }
}

/// The owner's error as the member will see it.
fn to_wire(e: Error) -> WireError {
    match e {
        Error::LeaseLost { offset, attempt } => WireError::LeaseLost { offset, attempt },
        Error::NotDelivered { offset, .. } => WireError::NotDelivered { offset },
        Error::Closed => WireError::Closed,
        Error::Poisoned => WireError::Poisoned,
        other => WireError::Other(other.to_string()),
    }
}

fn answer(shared: &Shared, group: &Group, conn: u64, req: Request) -> Response {
    let out = match req {
        Request::Poll { max, timeout_ms } => poll(shared, group, conn, max, timeout_ms),
        Request::Settle { op, reason, targets } => settle(shared, group, op, &reason, targets),
        Request::Extend { lease, by_ms } => extend(shared, group, lease, by_ms),
        Request::Goodbye => Ok(Answer::LeaseLeft(0)),
    };
    match out {
        Ok(r) => r.into_response(group.committed()),
        Err(e) => Response::Error(to_wire(e)),
    }
}

/// A successful answer before the committed position is added.
enum Answer {
    Deliveries(Vec<WireDelivery>),
    LeaseLeft(u64),
}

impl Answer {
    fn into_response(self, committed: u64) -> Response {
        match self {
            Answer::Deliveries(deliveries) => Response::Deliveries { committed, deliveries },
            Answer::LeaseLeft(lease_left_us) => Response::Done { committed, lease_left_us },
        }
    }
}

fn left_us(deadline: Instant) -> u64 {
    deadline.saturating_duration_since(Instant::now()).as_micros().min(u128::from(u64::MAX)) as u64
}

fn poll(shared: &Shared, group: &Group, conn: u64, max: u32, timeout_ms: u32) -> Result<Answer> {
    let max = max.clamp(1, protocol::MAX_POLL) as usize;
    let deadline = Instant::now() + Duration::from_millis(u64::from(timeout_ms));
    // In slices, so that a closed group is noticed while a member waits.
    let ds = loop {
        let slice = deadline.saturating_duration_since(Instant::now()).min(CHECK_EVERY * 2);
        let ds = group.poll(max, slice)?;
        if !ds.is_empty() || Instant::now() >= deadline || shared.group().is_none() {
            break ds;
        }
    };
    let mut leases = shared.leases.lock();
    let out = ds
        .into_iter()
        .map(|d| {
            let token = shared.next_token.fetch_add(1, Ordering::Relaxed);
            let wire = WireDelivery {
                token,
                attempt: d.attempt(),
                lease_left_us: left_us(d.lease_deadline()),
                redriven_from: d.redriven_from(),
                record: d.record().clone(),
            };
            leases.insert(token, conn, d);
            wire
        })
        .collect();
    Ok(Answer::Deliveries(out))
}

/// The deliveries `held` names that are still leased here, and the first that is not.
fn lookup(shared: &Shared, held: &[Held]) -> (Vec<Delivery>, Vec<u64>, Option<Error>) {
    let leases = shared.leases.lock();
    let mut found = Vec::with_capacity(held.len());
    let mut tokens = Vec::with_capacity(held.len());
    let mut lost = None;
    for h in held {
        match leases.by_token.get(&h.token) {
            Some(l) if l.delivery.offset() == h.offset => {
                found.push(l.delivery.clone());
                tokens.push(h.token);
            }
            _ => {
                lost.get_or_insert(Error::LeaseLost { offset: h.offset, attempt: h.attempt });
            }
        }
    }
    (found, tokens, lost)
}

fn settle(shared: &Shared, group: &Group, op: SettleOp, reason: &str, targets: Targets) -> Result<Answer> {
    match targets {
        Targets::Leases(held) => {
            let (ds, tokens, lost) = lookup(shared, &held);
            let done = match op {
                _ if ds.is_empty() => Ok(()),
                SettleOp::Ack => group.ack_batch(&ds),
                SettleOp::Nack { delay_us: None } => group.nack_batch(&ds, reason),
                SettleOp::Nack { delay_us: Some(us) } => {
                    let delay = Duration::from_micros(us);
                    ds.iter().map(|d| group.nack_after(d, delay, reason)).fold(Ok(()), Result::and)
                }
                SettleOp::Reject => group.reject_batch(&ds, reason),
                SettleOp::Release => group.release_batch(&ds),
            };
            // Settled, or no longer held: either way these tokens are spent (a foreign
            // delivery cannot occur, every one was handed out by this opening).
            let mut leases = shared.leases.lock();
            tokens.iter().for_each(|t| leases.remove(*t));
            done?;
            lost.map_or(Ok(Answer::LeaseLeft(0)), Err)
        }
        Targets::Offsets(offsets) => {
            match op {
                SettleOp::Ack => group.ack_offsets(&offsets)?,
                SettleOp::Nack { delay_us: None } => group.nack_offsets(&offsets, reason)?,
                SettleOp::Nack { delay_us: Some(_) } => {
                    return Err(Error::InvalidOptions("a nack by offset takes the group's backoff".into()))
                }
                SettleOp::Reject => group.reject_offsets(&offsets, reason)?,
                SettleOp::Release => group.release_offsets(&offsets)?,
            }
            shared.leases.lock().remove_offsets(&offsets);
            Ok(Answer::LeaseLeft(0))
        }
    }
}

fn extend(shared: &Shared, group: &Group, lease: Held, by_ms: u64) -> Result<Answer> {
    let (ds, _, lost) = lookup(shared, std::slice::from_ref(&lease));
    match ds.first() {
        Some(d) => Ok(Answer::LeaseLeft(left_us(group.extend_lease(d, Duration::from_millis(by_ms))?))),
        None => Err(lost.unwrap_or(Error::LeaseLost { offset: lease.offset, attempt: lease.attempt })),
    }
}

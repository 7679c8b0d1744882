//! Competing consumers across processes: processes that open a group with
//! `Topic::join_group` share its work. The first is the owner (it holds the group's lock and
//! state); the others are remote members that poll and settle through the owner's member
//! socket. A member that dies has its leases nacked and its events delivered to the others;
//! when the owner dies, a member takes the group over.
//!
//! The in-process tests open the store twice (two `Store` handles do not share open groups,
//! so the second finds the group's lock held and becomes a remote member). The others run
//! this test binary again as child processes, each executing the `#[ignore]`d
//! `child_member`, which does nothing unless the parent's environment variables are set.

mod consumer_support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use consumer_support::{open_store, quick_group};
use tidelog::{Error, Group, GroupOptions, Header, PendingState, Record, Role, StartFrom};

const ENV_DIR: &str = "TIDELOG_MEMBERS_DIR";
const ENV_SLOW_US: &str = "TIDELOG_MEMBERS_SLOW_US";

fn socket(dir: &Path) -> PathBuf {
    dir.join("groups").join("t").join("g").join("members.sock")
}

/// Poll `g` until it yields something (or 10 s pass).
fn poll_some(g: &Group, max: usize) -> Vec<tidelog::Delivery> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let ds = g.poll(max, Duration::from_millis(200)).unwrap();
        if !ds.is_empty() || Instant::now() > until {
            return ds;
        }
    }
}

/// The owner of group `g` of topic `t`, with `events` events published (`e0`, `e1`, ...), and
/// a remote member, each opened through its own store handle.
fn owner_and_member(dir: &Path, events: usize, opts: GroupOptions) -> (Group, Group) {
    let t = open_store(dir).topic("t").unwrap();
    for i in 0..events {
        t.publish(Record::new(format!("e{i}").as_bytes())).unwrap();
    }
    let owner = t.join_group("g", opts.clone()).unwrap();
    assert_eq!(owner.role(), Role::Owner);
    let member = open_store(dir).open_topic("t").unwrap().join_group("g", opts).unwrap();
    assert_eq!(member.role(), Role::Member);
    (owner, member)
}

#[test]
fn a_second_opener_becomes_a_remote_member_and_its_acks_settle_events_at_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let owner_store = open_store(dir.path());
    let t = owner_store.topic("t").unwrap();
    let headers = [Header { name: "h", value: b"v" }];
    for i in 0..10 {
        t.publish(Record::new(format!("e{i}").as_bytes()).key(b"k").headers(&headers)).unwrap();
    }
    let owner = t.join_group("g", quick_group()).unwrap();
    assert_eq!(owner.role(), Role::Owner);

    let member_store = open_store(dir.path());
    let mt = member_store.open_topic("t").unwrap();
    let member = mt.join_group("g", quick_group()).unwrap();
    assert_eq!(member.role(), Role::Member);

    // The member gets the records as published; the owner gets the others, never the same.
    let mine = poll_some(&member, 4);
    assert_eq!(mine.len(), 4);
    assert_eq!(mine[0].payload(), b"e0");
    assert_eq!(mine[0].key(), Some(&b"k"[..]));
    assert_eq!(mine[0].header("h"), Some(&b"v"[..]));
    assert_eq!(mine[0].attempt(), 1);
    let theirs = owner.try_poll(100).unwrap();
    let mut all: Vec<u64> = mine.iter().chain(&theirs).map(|d| d.offset()).collect();
    all.sort_unstable();
    assert_eq!(all, (0..10).collect::<Vec<_>>());

    member.ack_batch(&mine).unwrap();
    owner.ack_batch(&theirs).unwrap();
    assert_eq!(owner.committed(), 10);
    // A second ack of the same delivery is refused, as in one process.
    assert!(matches!(member.ack(&mine[0]), Err(Error::LeaseLost { offset: 0, attempt: 1 })));
    // The member learns the committed position from the owner's answers.
    assert!(member.try_poll(1).unwrap().is_empty());
    assert_eq!(member.committed(), 10);
}

#[test]
fn a_member_settles_by_offset_nacks_extends_and_releases_through_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let (owner, member) = owner_and_member(dir.path(), 4, quick_group().max_deliveries(2));

    let ds = poll_some(&member, 4);
    assert_eq!(ds.len(), 4);
    let before = ds[0].lease_deadline();
    assert!(member.extend_lease(&ds[0], Duration::from_secs(60)).unwrap() > before);
    member.ack_offsets(&[0]).unwrap();
    member.release(&ds[1]).unwrap();
    member.reject(&ds[2], "bad").unwrap();
    member.nack_after(&ds[3], Duration::ZERO, "later").unwrap();
    // By offset, an event not delivered now is refused, typed.
    assert!(matches!(member.ack_offsets(&[0]), Err(Error::NotDelivered { offset: 0, .. })));

    // Released: same attempt again; nacked: the next attempt.
    let again = poll_some(&owner, 4);
    let attempts: BTreeMap<u64, u32> = again.iter().map(|d| (d.offset(), d.attempt())).collect();
    assert_eq!(attempts, BTreeMap::from([(1, 1), (3, 2)]));
    owner.ack_batch(&again).unwrap();
    assert_eq!(owner.committed(), 4);
    assert_eq!(owner.dead_letters().unwrap().len(), 1);
}

#[test]
fn operations_that_need_the_state_are_refused_to_a_member_and_foreign_deliveries_too() {
    let dir = tempfile::tempdir().unwrap();
    let (owner, member) = owner_and_member(dir.path(), 1, quick_group());

    assert!(matches!(member.reset(StartFrom::Earliest), Err(Error::NotGroupOwner { operation: "reset", .. })));
    assert!(matches!(member.lag(), Err(Error::NotGroupOwner { .. })));
    assert!(matches!(member.redrive_all(), Err(Error::NotGroupOwner { .. })));
    let d = poll_some(&owner, 1);
    // The owner's delivery is not the member's to settle, and the member's not the owner's.
    assert!(matches!(member.ack(&d[0]), Err(Error::ForeignDelivery { .. })));
    owner.release(&d[0]).unwrap();
    let m = poll_some(&member, 1);
    assert!(matches!(owner.ack(&m[0]), Err(Error::ForeignDelivery { .. })));
    member.ack(&m[0]).unwrap();
    assert_eq!(owner.committed(), 1);
}

#[test]
fn when_the_owner_closes_a_member_takes_the_group_over_with_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let (owner, member) = owner_and_member(dir.path(), 6, quick_group());
    let held = poll_some(&member, 2);
    assert_eq!(held.len(), 2);
    member.ack(&held[0]).unwrap();
    let owners = poll_some(&owner, 1);
    owner.ack(&owners[0]).unwrap();
    owner.close().unwrap();

    // The member's next call finds the owner gone, takes the lock and replays the state: the
    // acked events are done, the one it held from the old owner is delivered again.
    let rest = poll_some(&member, 10);
    assert_eq!(member.role(), Role::Owner);
    let offsets: BTreeSet<u64> = rest.iter().map(|d| d.offset()).collect();
    assert_eq!(offsets, BTreeSet::from([held[1].offset(), 3, 4, 5]));
    assert!(matches!(member.ack(&held[1]), Err(Error::ForeignDelivery { .. } | Error::LeaseLost { .. })));
    member.ack_batch(&rest).unwrap();
    assert_eq!(member.committed(), 6);
}

/// Poll one delivery over the socket by hand, as a member would; returns its offset.
fn raw_poll_one(socket: &Path) -> (UnixStream, u64) {
    let mut s = UnixStream::connect(socket).unwrap();
    let mut poll = vec![10, 0, 0, 0, 1, 1];
    poll.extend_from_slice(&1u32.to_le_bytes());
    poll.extend_from_slice(&2000u32.to_le_bytes());
    s.write_all(&poll).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    assert_eq!(&body[..2], &[1, 0x81]);
    assert_eq!(u32::from_le_bytes(body[10..14].try_into().unwrap()), 1, "one delivery");
    // token 8, attempt 4, lease 8, redriven 8, then the offset.
    (s, u64::from_le_bytes(body[42..50].try_into().unwrap()))
}

#[test]
fn a_member_whose_connection_drops_has_its_leases_nacked_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let owner_store = open_store(dir.path());
    let t = owner_store.topic("t").unwrap();
    t.publish(Record::new(b"x")).unwrap();
    let owner = t.join_group("g", quick_group()).unwrap();
    // A member that takes the event, then vanishes without a goodbye.
    let (s, offset) = raw_poll_one(&socket(dir.path()));
    assert_eq!(offset, 0);
    drop(s);
    // Its lease (30 s) is not waited out: the event comes back at once, as a second attempt.
    let d = poll_some(&owner, 1);
    assert_eq!((d[0].offset(), d[0].attempt()), (0, 2));
}

/// A member that dies each time it takes an event uses up the event's deliveries: the event
/// reaches the dead letters instead of killing members for ever.
#[test]
fn an_event_whose_members_keep_dying_reaches_the_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let t = store.topic("t").unwrap();
    t.publish(Record::new(b"poison")).unwrap();
    t.publish(Record::new(b"fine")).unwrap();
    let owner = t.join_group("g", quick_group().max_deliveries(2)).unwrap();
    for _ in 0..2 {
        let (s, offset) = raw_poll_one(&socket(dir.path()));
        assert_eq!(offset, 0);
        drop(s);
        // Wait until the owner has seen the connection end (the event is due again).
        while owner.pending().iter().any(|p| p.offset == 0 && matches!(p.state, PendingState::InFlight { .. })) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let d = poll_some(&owner, 2);
    assert_eq!(d.iter().map(|d| d.offset()).collect::<Vec<_>>(), vec![1]);
    owner.ack(&d[0]).unwrap();
    let dead = owner.dead_letters().unwrap();
    assert_eq!((dead.len(), dead[0].source_offset), (1, 0));
    assert_eq!(owner.committed(), 2);
}

/// A group directory deeper than a socket address can name: the socket goes to the
/// temporary directory, and members still find the owner.
#[test]
fn a_group_too_deep_for_a_socket_address_is_still_reached() {
    let dir = tempfile::tempdir().unwrap();
    let deep = dir.path().join("d".repeat(60)).join("e".repeat(60));
    let (owner, member) = owner_and_member(&deep, 2, quick_group());
    assert!(!socket(&deep).exists());
    let m = poll_some(&member, 1);
    member.ack(&m[0]).unwrap();
    let o = poll_some(&owner, 1);
    owner.ack(&o[0]).unwrap();
    assert_eq!(owner.committed(), 2);
}

/// Garbage, a wrong version, an unknown kind, a huge length and a truncated frame on the
/// member socket: each gets a typed error answer (or the connection is closed), the owner
/// keeps serving, and its state log stays intact.
#[test]
fn damaged_or_hostile_messages_on_the_socket_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let t = store.topic("t").unwrap();
    for i in 0..3 {
        t.publish(Record::new(format!("e{i}").as_bytes())).unwrap();
    }
    let owner = t.join_group("g", quick_group()).unwrap();
    let bad: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        vec![2, 0, 0, 0, 9, 1],
        vec![2, 0, 0, 0, 1, 77],
        vec![0xff, 0xff, 0xff, 0xff, 1, 1],
        // A settle that claims four billion leases in a few bytes.
        vec![19, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff],
        vec![1, 0, 0, 0, 1],
    ];
    for frame in bad {
        let mut s = UnixStream::connect(socket(dir.path())).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&frame).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        // Either a typed error frame (kind 0x83, code 5: bad request) or nothing.
        if !answer.is_empty() {
            assert_eq!(&answer[4..7], &[1, 0x83, 5], "answer to {frame:?}");
        }
    }
    let ds = poll_some(&owner, 3);
    assert_eq!(ds.len(), 3);
    owner.ack_batch(&ds).unwrap();
    owner.close().unwrap();
    let reopened = open_store(dir.path()).topic("t").unwrap().group("g", quick_group()).unwrap();
    assert_eq!(reopened.committed(), 3);
    assert!(reopened.pending().is_empty());
}

/// A group served to members has a socket in its directory; a backup of the store read
/// every file of a group's directory and failed on the socket (it cannot be read). The
/// backup copies regular files only.
#[test]
fn a_store_whose_group_serves_members_backs_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let t = store.topic("t").unwrap();
    t.publish(Record::new(b"x")).unwrap();
    let owner = t.join_group("g", quick_group()).unwrap();
    assert!(socket(dir.path()).exists());
    let d = poll_some(&owner, 1);
    owner.ack(&d[0]).unwrap();
    owner.close().unwrap();
    let dest = tempfile::tempdir().unwrap();
    store.backup(dest.path().join("copy")).unwrap();
    let copy = open_store(&dest.path().join("copy"));
    assert_eq!(copy.topic("t").unwrap().group("g", quick_group()).unwrap().committed(), 1);
}

// ---- member processes -------------------------------------------------------------------

fn member_opts() -> GroupOptions {
    quick_group().max_deliveries(5)
}

/// Child: join group `g` of topic `t`, say its role, wait for `go`, then poll and ack until
/// `stop` exists, printing each delivery (`D offset attempt`), each ack that succeeded
/// (`A offset`), each one refused (`L offset`), empty polls (`IDLE`) and a takeover.
#[test]
#[ignore = "child process of the group_members tests"]
fn child_member() {
    let Some(dir) = std::env::var_os(ENV_DIR) else { return };
    let dir = PathBuf::from(dir);
    let slow = Duration::from_micros(std::env::var(ENV_SLOW_US).ok().and_then(|s| s.parse().ok()).unwrap_or(0));
    let store = open_store(&dir);
    let g = match store.open_topic("t").and_then(|t| t.join_group("g", member_opts())) {
        Ok(g) => g,
        Err(e) => {
            println!("ERR {e}");
            return;
        }
    };
    println!("READY {:?}", g.role());
    while !dir.join("go").exists() {
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut owner = g.role() == Role::Owner;
    while !dir.join("stop").exists() {
        let ds = match g.poll(16, Duration::from_millis(100)) {
            Ok(ds) => ds,
            Err(e) => {
                println!("ERR {e}");
                return;
            }
        };
        if !owner && g.role() == Role::Owner {
            owner = true;
            println!("TOOK-OVER");
        }
        if ds.is_empty() {
            println!("IDLE");
        }
        for d in ds {
            println!("D {} {}", d.offset(), d.attempt());
            std::thread::sleep(slow);
            match g.ack(&d) {
                Ok(()) => println!("A {}", d.offset()),
                Err(Error::LeaseLost { .. } | Error::ForeignDelivery { .. }) => println!("L {}", d.offset()),
                Err(e) => {
                    println!("ERR {e}");
                    return;
                }
            }
        }
    }
    let _ = g.close();
    println!("BYE");
}

impl Drop for Members {
    fn drop(&mut self) {
        for (_, mut c) in self.children.drain() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The parent's view of its member processes.
struct Members {
    dir: PathBuf,
    slow_us: u64,
    children: HashMap<usize, Child>,
    lines: mpsc::Receiver<(usize, String)>,
    tx: mpsc::Sender<(usize, String)>,
    next: usize,
    log: Vec<(usize, String)>,
    /// Offsets whose ack a member reported.
    acked: BTreeSet<u64>,
    /// The member that said last it owns the group.
    owner: Option<usize>,
    started: Instant,
}

impl Members {
    fn new(dir: &Path, slow_us: u64) -> Members {
        let (tx, lines) = mpsc::channel();
        Members {
            dir: dir.to_owned(),
            slow_us,
            children: HashMap::new(),
            lines,
            tx,
            next: 0,
            log: Vec::new(),
            acked: BTreeSet::new(),
            owner: None,
            started: Instant::now(),
        }
    }

    fn spawn(&mut self) -> usize {
        let id = self.next;
        self.next += 1;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["child_member", "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"])
            .env(ENV_DIR, &self.dir)
            .env(ENV_SLOW_US, self.slow_us.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                let _ = tx.send((id, line));
            }
        });
        self.children.insert(id, child);
        id
    }

    /// The next line of any child (panics after a minute of silence).
    fn next_line(&mut self) -> (usize, String) {
        assert!(self.started.elapsed() < Duration::from_secs(300), "the members did not finish in 5 minutes");
        let l = self.lines.recv_timeout(Duration::from_secs(60)).expect("a member process said nothing for a minute");
        assert!(!l.1.starts_with("ERR"), "member {} failed: {}", l.0, l.1);
        if let Some(o) = l.1.strip_prefix("A ").and_then(|o| o.parse().ok()) {
            self.acked.insert(o);
        }
        if l.1 == "READY Owner" || l.1 == "TOOK-OVER" {
            self.owner = Some(l.0);
        }
        self.log.push(l.clone());
        l
    }

    /// Wait until every member found nothing to do, one after the other with no work between.
    fn wait_all_idle(&mut self) {
        let mut idle = BTreeSet::new();
        while idle.len() < self.children.len() {
            let (id, line) = self.next_line();
            match line.as_str() {
                "IDLE" => idle.insert(id),
                _ => {
                    idle.clear();
                    false
                }
            };
        }
    }

    /// Wait until `ids` have each said READY; returns the owner's id.
    fn ready(&mut self, ids: &[usize]) -> Option<usize> {
        let mut waiting: BTreeSet<usize> = ids.iter().copied().collect();
        let mut owner = None;
        while !waiting.is_empty() {
            let (id, line) = self.next_line();
            if let Some(role) = line.strip_prefix("READY ") {
                waiting.remove(&id);
                if role == "Owner" {
                    owner = Some(id);
                }
            }
        }
        owner
    }

    fn kill(&mut self, id: usize) {
        let mut c = self.children.remove(&id).unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// Let the members stop, and wait for them.
    fn stop(&mut self) {
        std::fs::write(self.dir.join("stop"), b"").unwrap();
        for (_, mut c) in self.children.drain() {
            assert!(c.wait().unwrap().success());
        }
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
            assert!(!l.1.starts_with("ERR"), "member {} failed: {}", l.0, l.1);
            self.log.push(l);
        }
    }

    /// Successful acks per offset, and deliveries per offset.
    fn counts(&self) -> (BTreeMap<u64, Vec<usize>>, BTreeMap<u64, Vec<usize>>) {
        let (mut acks, mut deliveries) = (BTreeMap::new(), BTreeMap::new());
        for (id, line) in &self.log {
            let mut w = line.split(' ');
            match (w.next(), w.next().and_then(|o| o.parse::<u64>().ok())) {
                (Some("A"), Some(o)) => acks.entry(o).or_insert_with(Vec::new).push(*id),
                (Some("D"), Some(o)) => deliveries.entry(o).or_insert_with(Vec::new).push(*id),
                _ => {}
            }
        }
        (acks, deliveries)
    }
}

fn publish(dir: &Path, n: u64) {
    let store = open_store(dir);
    let t = store.topic("t").unwrap();
    let payloads: Vec<Vec<u8>> = (0..n).map(|i| format!("event-{i}").into_bytes()).collect();
    let batch: Vec<Record> = payloads.iter().map(|p| Record::new(p)).collect();
    for chunk in batch.chunks(500) {
        t.publish_batch(chunk).unwrap();
    }
}

/// `n` member processes share a group without failures: every event is delivered exactly
/// once (so never to two members at once) and acked exactly once, and every member did
/// some of the work.
fn members_share_the_work(n: usize) {
    const EVENTS: u64 = 1500;
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), EVENTS);
    let mut m = Members::new(dir.path(), 500);
    let ids: Vec<usize> = (0..n).map(|_| m.spawn()).collect();
    assert!(m.ready(&ids).is_some(), "one member owns the group");
    std::fs::write(dir.path().join("go"), b"").unwrap();
    loop {
        let (_, line) = m.next_line();
        if line.starts_with('A') && m.acked.len() as u64 == EVENTS {
            break;
        }
    }
    m.stop();
    let (acks, deliveries) = m.counts();
    assert_eq!(acks.len() as u64, EVENTS);
    for (o, by) in &deliveries {
        assert_eq!(by.len(), 1, "offset {o} delivered to {by:?}");
        assert_eq!(acks[o], *by, "offset {o}");
    }
    let workers: BTreeSet<usize> = acks.values().flatten().copied().collect();
    assert_eq!(workers.len(), n, "every member did some of the work");
    let g = open_store(dir.path()).topic("t").unwrap().group("g", member_opts()).unwrap();
    assert_eq!(g.committed(), EVENTS);
}

#[test]
fn two_member_processes_share_a_group_each_event_delivered_and_acked_once() {
    members_share_the_work(2);
}

#[test]
fn four_member_processes_share_a_group_each_event_delivered_and_acked_once() {
    members_share_the_work(4);
}

/// Kill the owner process: a member takes the group over, the others join it, and every
/// event is still acked exactly once.
#[test]
fn when_the_owner_process_dies_a_member_takes_over_and_nothing_is_lost() {
    const EVENTS: u64 = 1500;
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), EVENTS);
    let mut m = Members::new(dir.path(), 500);
    let ids: Vec<usize> = (0..3).map(|_| m.spawn()).collect();
    let owner = m.ready(&ids).unwrap();
    std::fs::write(dir.path().join("go"), b"").unwrap();
    while (m.acked.len() as u64) < EVENTS / 4 {
        m.next_line();
    }
    m.kill(owner);
    let mut took_over = false;
    while !took_over {
        let (id, line) = m.next_line();
        took_over = line == "TOOK-OVER" && id != owner;
    }
    m.wait_all_idle();
    m.stop();
    check_every_event_done_once(&m, dir.path(), EVENTS, &[owner]);
}

/// After the members stopped: the parent, now the owner, delivers whatever is left; then
/// every event is acked exactly once or dead-lettered, and an event with no ack seen was
/// last given to a killed member (which acked it before it could say so).
fn check_every_event_done_once(m: &Members, dir: &Path, events: u64, killed: &[usize]) {
    let store = open_store(dir);
    let g = store.topic("t").unwrap().group("g", member_opts()).unwrap();
    let mut acked_here = BTreeSet::new();
    let until = Instant::now() + Duration::from_secs(60);
    while g.committed() < events && Instant::now() < until {
        for d in g.poll(100, Duration::from_millis(100)).unwrap() {
            g.ack(&d).unwrap();
            acked_here.insert(d.offset());
        }
    }
    assert_eq!(g.committed(), events, "every event is done");
    let (acks, deliveries) = m.counts();
    let refused: BTreeSet<u64> =
        m.log.iter().filter_map(|(_, l)| l.strip_prefix("L ").and_then(|o| o.parse().ok())).collect();
    let dead: BTreeSet<u64> = g.dead_letters().unwrap().iter().map(|d| d.source_offset).collect();
    for o in 0..events {
        let n = acks.get(&o).map_or(0, Vec::len) + usize::from(acked_here.contains(&o));
        assert!(n <= 1, "offset {o} acked {n} times: {:?}", acks.get(&o));
        assert!(!(n == 1 && dead.contains(&o)), "offset {o} acked and dead-lettered");
        if n == 0 && !dead.contains(&o) {
            // Acked by a member killed before it could say so, or acked by a member whose
            // owner died before answering (its ack was refused, but the owner had made it).
            let last = deliveries.get(&o).and_then(|by| by.last());
            let refused = refused.contains(&o);
            assert!(refused || last.is_some_and(|id| killed.contains(id)), "offset {o} done without an ack seen");
        }
    }
}

/// Members, the owner among them, are killed with SIGKILL at random moments while the
/// others go on (each killed one replaced by a new process); then every event is acked
/// exactly once or dead-lettered, and none is lost.
#[test]
fn members_and_owners_killed_at_random_lose_no_event_and_ack_none_twice() {
    const EVENTS: u64 = 2000;
    let dir = tempfile::tempdir().unwrap();
    publish(dir.path(), EVENTS);
    let mut m = Members::new(dir.path(), 2000);
    let ids: Vec<usize> = (0..4).map(|_| m.spawn()).collect();
    m.ready(&ids);
    std::fs::write(dir.path().join("go"), b"").unwrap();
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("seed {seed}");
    let mut rng = seed | 1;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut killed = Vec::new();
    let mut owners_killed = 0;
    for round in 0..6 {
        // Let some work happen (between 20 and 120 acks), then kill one member at random.
        let target = (m.acked.len() + 20 + (next() % 100) as usize).min(EVENTS as usize / 2);
        while m.acked.len() < target {
            m.next_line();
        }
        // Every third round kills the owner (once it is known), the others anyone.
        let live: Vec<usize> = m.children.keys().copied().collect();
        let owner = m.owner.filter(|o| live.contains(o));
        let victim = match owner {
            Some(o) if round % 3 == 1 => o,
            _ => live[(next() % live.len() as u64) as usize],
        };
        eprintln!("round {round}: killing member {victim} (owner: {owner:?})");
        owners_killed += usize::from(Some(victim) == owner);
        m.kill(victim);
        killed.push(victim);
        let id = m.spawn();
        m.ready(&[id]);
    }
    assert!(owners_killed >= 1, "the owner was killed at least once");
    // Let the survivors finish what they can, then stop them.
    m.wait_all_idle();
    m.stop();
    check_every_event_done_once(&m, dir.path(), EVENTS, &killed);
}

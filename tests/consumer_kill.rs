//! Crash safety of consumer state, proven with real SIGKILLs.
//!
//! The parent publishes events; a child process (this test binary run again, executing the
//! `#[ignore]`d `kill_child` function) consumes them with two consumer threads in
//! `AckMode::Durable`, printing each delivery, each ack it starts and each ack that returned.
//! The parent kills it with SIGKILL at a random moment, `TIDELOG_KILL_ROUNDS` times (default
//! 20), then drains what is left itself and checks:
//!
//! * an event whose ack returned is never delivered again;
//! * an event delivered and not acked (no ack even started) is delivered again;
//! * delivery attempts of an event only grow, across kills (poison events that kill the
//!   consumer still reach the delivery limit);
//! * nothing is lost: at the end every event is acked or dead-lettered;
//! * no event is in the dead-letter log twice.

mod consumer_support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use consumer_support::small_store_options;
use tidelog::{AckMode, Backoff, DeadLetterCause, GroupOptions, Record, Store};

const CHILD_ENV: &str = "TIDELOG_KILL_CHILD";
const MAX_DELIVERIES: u32 = 5;

fn group_options() -> GroupOptions {
    GroupOptions::default()
        .ack_mode(AckMode::Durable)
        .max_deliveries(MAX_DELIVERIES)
        .backoff(Backoff::new(Duration::from_millis(1), Duration::from_millis(5)))
        .lease(Duration::from_secs(60))
        // Snapshots (and state-log segment removal) happen many times per run.
        .snapshot_every(300)
}

/// The kind of event, by its payload prefix.
fn kind(payload: &[u8]) -> &str {
    let s = std::str::from_utf8(payload).unwrap();
    s.split('-').next().unwrap()
}

/// Child: consume forever (until killed), printing `@@D off attempt`, `@@A? off`, `@@A off`.
#[test]
#[ignore = "child process of the kill test"]
fn kill_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else { return };
    let store = Store::open(Path::new(&dir), small_store_options()).unwrap();
    let group = store.topic("events").unwrap().group("g", group_options()).unwrap();
    let out = std::sync::Arc::new(std::sync::Mutex::new(()));
    let say = move |line: String| {
        let _g = out.lock().unwrap();
        let mut o = std::io::stdout().lock();
        o.write_all(line.as_bytes()).unwrap();
        o.flush().unwrap();
    };
    let mut threads = Vec::new();
    for w in 0..2u64 {
        let g = group.clone();
        let say = say.clone();
        threads.push(std::thread::spawn(move || {
            let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (w + 1) ^ std::process::id() as u64;
            loop {
                for d in g.poll(8, Duration::from_millis(100)).unwrap() {
                    say(format!("@@D {} {}\n", d.offset(), d.attempt()));
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    if rng.is_multiple_of(4) {
                        std::thread::sleep(Duration::from_micros(rng % 1500));
                    }
                    match kind(d.payload()) {
                        "ok" => {
                            say(format!("@@A? {}\n", d.offset()));
                            g.ack(&d).unwrap();
                            say(format!("@@A {}\n", d.offset()));
                        }
                        "nack" => g.nack(&d, "always fails").unwrap(),
                        "reject" => g.reject(&d, "malformed").unwrap(),
                        // A poison event that kills its consumer.
                        "crash" => std::process::abort(),
                        other => panic!("unknown event kind {other}"),
                    }
                }
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
}

#[derive(Default)]
struct Books {
    kinds: BTreeMap<u64, String>,
    /// Offsets whose ack returned.
    acked: HashSet<u64>,
    /// Offsets whose ack was started, maybe not finished.
    ack_started: HashSet<u64>,
    /// Delivered in a killed round with no ack started: must be delivered again.
    owed: HashSet<u64>,
    /// Highest attempt seen per offset.
    attempts: HashMap<u64, u32>,
    /// Deliveries seen per offset.
    deliveries: HashMap<u64, u32>,
}

impl Books {
    fn delivered(&mut self, off: u64, attempt: u32, who: &str) {
        assert!(!self.acked.contains(&off), "{who}: offset {off} delivered again after its ack returned");
        let prev = self.attempts.insert(off, attempt).unwrap_or(0);
        assert!(attempt > prev, "{who}: offset {off} attempt {attempt} after attempt {prev}");
        assert!(attempt <= MAX_DELIVERIES, "{who}: offset {off} delivered {attempt} times");
        *self.deliveries.entry(off).or_default() += 1;
        self.owed.remove(&off);
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn sigkill_rounds_lose_nothing_and_duplicate_nothing() {
    let rounds: usize = std::env::var("TIDELOG_KILL_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("kill test: {rounds} rounds, seed {seed}");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), small_store_options()).unwrap();
    let topic = store.topic("events").unwrap();
    let mut books = Books::default();
    let publish = |books: &mut Books, n: usize, rng: &mut Rng| {
        for _ in 0..n {
            let k = match rng.next() % 100 {
                0..=3 => "nack",
                4..=6 => "reject",
                _ => "ok",
            };
            let off = topic.next_offset();
            let got = topic.publish(Record::new(format!("{k}-{off}").as_bytes())).unwrap();
            assert_eq!(got, off);
            books.kinds.insert(off, k.to_owned());
        }
    };
    publish(&mut books, 400, &mut rng);
    // Two poison events that abort the consumer process every time they are delivered.
    for _ in 0..2 {
        let off = topic.publish(Record::new(b"crash-x")).unwrap();
        books.kinds.insert(off, "crash".into());
    }
    let started = Instant::now();
    let mut aborted_rounds = 0;
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["kill_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut r = BufReader::new(stdout);
            let mut buf = String::new();
            // Only complete lines count: the last one may have been cut by the kill.
            while r.read_line(&mut buf).unwrap_or(0) > 0 {
                if buf.ends_with('\n') {
                    lines.push(buf.trim_end().to_owned());
                }
                buf.clear();
            }
            lines
        });
        // Publish more while the child consumes, then kill it at a random moment.
        let life = Duration::from_millis(40 + rng.next() % 400);
        let t0 = Instant::now();
        while t0.elapsed() < life {
            publish(&mut books, (rng.next() % 8) as usize, &mut rng);
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.code().is_none() && !matches!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9)) {
            aborted_rounds += 1;
        }
        let lines = reader.join().unwrap();
        let mut started_this_round = HashSet::new();
        let mut delivered_this_round = Vec::new();
        for line in &lines {
            // The harness may print on the same line before our first one ("test kill_child
            // ... @@D 5 2"): our records start at the marker.
            let Some((_, ours)) = line.split_once("@@") else { continue };
            let mut f = ours.split(' ');
            match (f.next(), f.next().and_then(|s| s.parse::<u64>().ok())) {
                (Some("D"), Some(off)) => {
                    let attempt: u32 = f.next().unwrap().parse().unwrap();
                    books.delivered(off, attempt, &format!("round {round}"));
                    delivered_this_round.push(off);
                }
                (Some("A?"), Some(off)) => {
                    books.ack_started.insert(off);
                    started_this_round.insert(off);
                }
                (Some("A"), Some(off)) => {
                    books.acked.insert(off);
                }
                _ => {}
            }
        }
        for off in delivered_this_round {
            let k = books.kinds[&off].as_str();
            if k == "ok" && !started_this_round.contains(&off) && !books.acked.contains(&off) {
                books.owed.insert(off);
            }
        }
        eprintln!(
            "round {round}: {} lines, {} acked so far, {} owed, {} published",
            lines.len(),
            books.acked.len(),
            books.owed.len(),
            books.kinds.len()
        );
    }
    eprintln!("{rounds} kill rounds in {:?} ({aborted_rounds} ended by a poison event)", started.elapsed());

    // Drain the rest here, with the same rules (crash events are nacked instead).
    let group = topic.group("g", group_options()).unwrap();
    let idle_since = Instant::now();
    loop {
        let ds = group.poll(64, Duration::from_millis(300)).unwrap();
        if ds.is_empty() {
            if group.lag().unwrap().unconsumed == 0 || idle_since.elapsed() > Duration::from_secs(20) {
                break;
            }
            continue;
        }
        for d in ds {
            books.delivered(d.offset(), d.attempt(), "drain");
            match kind(d.payload()) {
                "ok" => {
                    group.ack(&d).unwrap();
                    books.acked.insert(d.offset());
                }
                "reject" => group.reject(&d, "malformed").unwrap(),
                _ => group.nack(&d, "always fails").unwrap(),
            }
        }
    }
    let total = books.kinds.len() as u64;
    let lag = group.lag().unwrap();
    assert_eq!((lag.committed, lag.unconsumed, lag.end_offset), (total, 0, total), "{lag:?}");

    // Dead letters: each event at most once; exactly the failing ones (plus ok events that
    // were in flight at MAX_DELIVERIES kills in a row, which the books must show).
    let dls = group.dead_letters().unwrap();
    let mut in_dlq = HashSet::new();
    let mut collateral = 0;
    for d in &dls {
        assert!(in_dlq.insert(d.source_offset), "offset {} dead-lettered twice", d.source_offset);
        assert_eq!(d.redrive_of, None);
        let k = books.kinds[&d.source_offset].as_str();
        match k {
            "nack" | "crash" => {
                assert_eq!(d.cause, DeadLetterCause::MaxDeliveries);
                assert_eq!(d.attempts, MAX_DELIVERIES, "offset {}", d.source_offset);
            }
            "reject" => {}
            _ => {
                // An ok event can only get here by being in flight at MAX_DELIVERIES kills:
                // typically handed out in the same poll as a poison event, which aborted the
                // consumer before it got to this one (the delivery counted, unseen by us).
                assert_eq!(d.cause, DeadLetterCause::MaxDeliveries);
                assert_eq!(d.attempts, MAX_DELIVERIES);
                assert!(!books.acked.contains(&d.source_offset));
                collateral += 1;
            }
        }
    }
    // Every event delivered and not acked was delivered again: we saw it, or it went on to be
    // delivered (unseen, to a consumer killed by a poison event first) until the limit.
    for off in &books.owed {
        let dl = dls.iter().find(|d| d.source_offset == *off);
        assert!(
            dl.is_some_and(|d| d.attempts == MAX_DELIVERIES),
            "offset {off} delivered, never acked, never delivered again ({dl:?})"
        );
    }
    for (off, k) in &books.kinds {
        match k.as_str() {
            "ok" => assert!(
                books.acked.contains(off) || books.ack_started.contains(off) || in_dlq.contains(off),
                "ok event {off} neither acked nor dead-lettered"
            ),
            _ => assert!(in_dlq.contains(off), "{k} event {off} not dead-lettered"),
        }
        // An event whose ack returned is not in the dead letters.
        if books.acked.contains(off) {
            assert!(!in_dlq.contains(off), "acked event {off} also dead-lettered");
        }
    }
    eprintln!(
        "checked {total} events: {} acked, {} dead letters ({collateral} ok events caught with a poison one), \
         {aborted_rounds} rounds aborted by poison",
        books.acked.len(),
        dls.len(),
    );
}

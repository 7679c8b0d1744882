//! A real crash test for compaction: SIGKILL a child process that appends updates of a few
//! keys (`Durability::Always`) and compacts (rolling the active segment, tombstones expiring
//! at once) in a loop from a second thread, at random moments, then reopen and check:
//!
//! * the log opens, verifies intact, and holds no temporary file of a rewrite;
//! * for every key, the newest record is at least as new as the last acknowledged update
//!   (an acknowledged update is never lost to a compaction of the record it superseded);
//! * every record is one the child wrote (key, sequence and payload agree);
//! * a follower opened before the kill in the parent reads the same log after a refresh.
//!
//! `TIDELOG_COMPACT_KILL_ROUNDS` sets the number of rounds (default 20).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use common::{child_test, Rng};
use tidelog::{CompactOptions, Durability, Log, Options, Record};

const ENV_DIR: &str = "TIDELOG_COMPACT_KILL_DIR";
const KEYS: u64 = 16;

fn opts() -> Options {
    Options::default().segment_bytes(16 * 1024).index_interval_bytes(512).durability(Durability::Always)
}

fn payload(key: u64, seq: u64) -> Vec<u8> {
    format!("{key}:{seq}:").repeat(6).into_bytes()
}

/// The child: append and compact until killed, printing `ACK key seq` for each update
/// acknowledged.
#[test]
#[ignore = "child process of sigkill_during_compaction_loses_no_acknowledged_update"]
fn child_compactor() {
    let Some(dir) = std::env::var_os(ENV_DIR) else { return };
    let log = Log::open(&dir, opts()).expect("child: open");
    let start: u64 = log.next_offset();
    println!("READY");
    let deadline = Instant::now() + Duration::from_secs(20);
    std::thread::scope(|s| {
        let log2 = &log;
        s.spawn(move || {
            let opts = CompactOptions::default().roll_active(true).delete_retention(Duration::ZERO);
            while Instant::now() < deadline {
                log2.compact(&opts).expect("child: compact");
            }
        });
        let mut seq = start;
        while Instant::now() < deadline {
            let key = seq % KEYS;
            let k = format!("key-{key}");
            let p = payload(key, seq);
            let mut rec = Record::new(&p).key(k.as_bytes());
            if seq.is_multiple_of(7) {
                rec = Record::new(b"").key(k.as_bytes()).tombstone();
            }
            log.append(rec).expect("child: append");
            println!("ACK {key} {seq}");
            seq += 1;
        }
    });
}

#[test]
fn sigkill_during_compaction_loses_no_acknowledged_update() {
    let rounds: u64 = std::env::var("TIDELOG_COMPACT_KILL_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut rng = Rng::new(0x5eed_c0a7);
    // The newest acknowledged sequence per key, and whether it was a tombstone.
    let mut acked: HashMap<u64, u64> = HashMap::new();
    for round in 0..rounds {
        let mut child = child_test("child_compactor").env(ENV_DIR, &dir).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // The test harness prints lines of its own first.
        while rx.recv_timeout(Duration::from_secs(30)).expect("child ready") != "READY" {}
        let follower = Log::open_read_only(&dir, opts()).unwrap();
        std::thread::sleep(Duration::from_millis(rng.range(5, 150)));
        follower.refresh().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        for line in rx.try_iter() {
            let mut it = line.split_whitespace();
            if it.next() != Some("ACK") {
                continue;
            }
            let key: u64 = it.next().unwrap().parse().unwrap();
            let seq: u64 = it.next().unwrap().parse().unwrap();
            acked.insert(key, seq);
        }
        let log = Log::open(&dir, opts()).unwrap_or_else(|e| panic!("round {round}: reopen: {e}"));
        assert!(log.verify(|_| {}).is_intact(), "round {round}: verify");
        for e in std::fs::read_dir(&dir).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            assert!(!name.ends_with(".compact.tmp"), "round {round}: {name} was left");
        }
        let mut newest: HashMap<u64, u64> = HashMap::new();
        for r in log.iter(0) {
            let r = r.unwrap();
            let key: u64 = String::from_utf8(r.key.clone().unwrap()).unwrap()["key-".len()..].parse().unwrap();
            // The sequence of an update is its offset (the child appends nothing else).
            let seq = r.offset;
            if r.tombstone {
                assert!(r.payload.is_empty());
            } else {
                assert_eq!(r.payload, payload(key, seq), "round {round}: record {seq}");
            }
            newest.insert(key, seq);
        }
        for (key, seq) in &acked {
            // A tombstone may be gone (its retention is zero), and the key with it.
            if seq.is_multiple_of(7) {
                continue;
            }
            let n = newest.get(key).copied();
            assert!(n.is_some_and(|n| n >= *seq), "round {round}: key {key} acked {seq}, newest {n:?}");
        }
        follower.refresh().unwrap();
        let seen: Vec<(u64, Vec<u8>)> = follower.iter(0).map(|r| r.map(|r| (r.offset, r.payload)).unwrap()).collect();
        let want: Vec<(u64, Vec<u8>)> = log.iter(0).map(|r| r.map(|r| (r.offset, r.payload)).unwrap()).collect();
        assert_eq!(seen, want, "round {round}: the follower reads what the writer left");
        drop(log);
    }
}

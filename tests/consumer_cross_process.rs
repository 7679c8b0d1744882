//! A consumer in another process than the publisher: it reads the topic through a read-only
//! follower and follows the tail (the publisher's process holds the topic's writer lock; the
//! consumer's process holds the group's lock).
//!
//! The child processes are this test binary run again with an environment variable set,
//! executing one `#[ignore]`d test function.

mod consumer_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use consumer_support::{open_store, quick_group};
use tidelog::{Error, Record};

const CHILD_ENV: &str = "TIDELOG_XPROC_CHILD";
const EVENTS: u64 = 300;

fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

fn run_child(test: &str, dir: &std::path::Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Child: publish `EVENTS` events, a little apart, each carrying its send time.
#[test]
#[ignore = "child process of cross_process tests"]
fn child_publisher() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else { return };
    let store = open_store(std::path::Path::new(&dir));
    let t = store.topic("t").unwrap();
    for _ in 0..EVENTS {
        t.publish(Record::new(now_ns().to_string().as_bytes())).unwrap();
        std::thread::sleep(Duration::from_micros(500));
    }
    assert!(t.is_writer());
    println!("XPROC published");
}

/// Child: try to open the group the parent holds.
#[test]
#[ignore = "child process of cross_process tests"]
fn child_group_opener() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else { return };
    let store = open_store(std::path::Path::new(&dir));
    match store.topic("t").unwrap().group("g", quick_group()) {
        Err(Error::Locked { .. }) => println!("XPROC locked"),
        Ok(_) => println!("XPROC opened"),
        Err(e) => println!("XPROC error {e}"),
    }
}

#[test]
fn a_consumer_follows_a_publisher_in_another_process() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    // Creating the topic here must not keep the child from publishing.
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group()).unwrap();
    let child = run_child("child_publisher", tmp.path());
    let mut latencies = Vec::new();
    let mut next = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while next < EVENTS && Instant::now() < deadline {
        let ds = g.poll(64, Duration::from_secs(1)).unwrap();
        let got = now_ns();
        for d in &ds {
            assert_eq!(d.offset(), next, "out of order or missing");
            next += 1;
            let sent: u128 = std::str::from_utf8(d.payload()).unwrap().parse().unwrap();
            latencies.push(got.saturating_sub(sent));
        }
        g.ack_batch(&ds).unwrap();
    }
    let status = child.wait_with_output().unwrap();
    assert!(status.status.success());
    assert!(String::from_utf8_lossy(&status.stdout).contains("XPROC published"));
    assert_eq!(next, EVENTS, "consumer saw only {next} events");
    assert!(!t.is_writer(), "the consumer's process took the topic's writer");
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let max = latencies[latencies.len() - 1];
    eprintln!("cross-process publish-to-poll: p50 {} µs, max {} µs", p50 / 1000, max / 1000);
    // Followers poll at most 1 ms apart; allow for a loaded machine.
    assert!(p50 < 50_000_000, "median latency {p50} ns");
    assert_eq!(g.lag().unwrap().committed, EVENTS);
}

#[test]
fn a_group_is_owned_by_one_process_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group()).unwrap();
    let out = run_child("child_group_opener", tmp.path()).wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("XPROC locked"), "{}", String::from_utf8_lossy(&out.stdout));
    g.close().unwrap();
    let out = run_child("child_group_opener", tmp.path()).wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("XPROC opened"));
}

//! Readers and writers at the same time, in one process and across processes.
//!
//! Every record's content is a deterministic function of its offset (or of its writer and
//! sequence number), so a reader can check each record it sees on its own: garbage, a torn
//! record, a record at the wrong offset, a gap or a record past the committed end all fail
//! the check.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use common::{child_test, fnv1a, Rng};
use tidelog::{Durability, Error, Log, Options, Record, RecordView};

fn opts() -> Options {
    Options::default().segment_bytes(64 * 1024).index_interval_bytes(512)
}

/// The payload of the record at `offset` when a single writer fills the log: its offset,
/// then 0 to 399 bytes derived from it.
fn payload_for(offset: u64) -> Vec<u8> {
    let mut p = offset.to_le_bytes().to_vec();
    let h = fnv1a(&p);
    p.extend((0..h % 400).map(|j| (h >> (j % 8 * 8)) as u8 ^ j as u8));
    p
}

fn key_for(offset: u64) -> Vec<u8> {
    format!("k{}", offset % 17).into_bytes()
}

/// Check a record against the function of its offset.
fn check(r: &RecordView<'_>, offset: u64, who: &str) {
    assert_eq!(r.offset(), offset, "{who}: offset");
    assert_eq!(r.key(), Some(key_for(offset).as_slice()), "{who}: key of {offset}");
    assert_eq!(r.payload(), payload_for(offset).as_slice(), "{who}: payload of {offset}");
}

/// Append the records for `offsets` as one batch; they must get exactly those offsets.
fn append_offsets(log: &Log, offsets: Range<u64>) {
    let payloads: Vec<Vec<u8>> = offsets.clone().map(payload_for).collect();
    let keys: Vec<Vec<u8>> = offsets.clone().map(key_for).collect();
    let records: Vec<Record<'_>> = payloads.iter().zip(&keys).map(|(p, k)| Record::new(p).key(k)).collect();
    assert_eq!(log.append_batch(&records).unwrap(), offsets);
}

/// One writer appends (singles and batches, across many segment rolls) while tailing readers
/// follow with cursors and random readers read at random offsets: nobody ever sees garbage,
/// a gap, or a record at or past `next_offset`.
#[test]
fn readers_never_see_garbage_gaps_or_uncommitted_records() {
    const TOTAL: u64 = 40_000;
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path().join("log"), opts()).unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..2 {
            let log = log.clone();
            s.spawn(move || {
                let who = format!("tailing reader {t}");
                let mut cursor = log.cursor(0);
                let mut next = 0;
                while next < TOTAL {
                    match cursor.next() {
                        Ok(Some(r)) => {
                            check(&r, next, &who);
                            assert!(r.offset() < log.next_offset(), "{who}: saw {} past the end", r.offset());
                            next += 1;
                        }
                        Ok(None) => {
                            assert!(log.next_offset() >= next, "{who}");
                            log.wait_for(next, Duration::from_secs(10)).unwrap();
                        }
                        Err(e) => panic!("{who}: at {next}: {e}"),
                    }
                }
                assert!(cursor.next().unwrap().is_none(), "{who}: a record past the last one written");
            });
        }
        for t in 0..2u64 {
            let log = log.clone();
            let done = &done;
            s.spawn(move || {
                let who = format!("random reader {t}");
                let mut rng = Rng::new(t + 1);
                let mut reads = 0u64;
                while !done.load(Ordering::Acquire) || reads < 1000 {
                    let end = log.next_offset();
                    if end == 0 {
                        std::thread::yield_now();
                        continue;
                    }
                    let o = rng.range(0, end);
                    log.read_with(o, |r| check(&r, o, &who)).unwrap_or_else(|e| panic!("{who}: read({o}): {e}"));
                    // At or past the end: out of range, unless the writer got there meanwhile.
                    let past = end + rng.range(0, 3);
                    match log.read_with(past, |r| r.to_owned()) {
                        Ok(r) => {
                            assert!(past < log.next_offset(), "{who}: read({past}) returned an uncommitted record");
                            assert_eq!(r.payload, payload_for(past), "{who}: read({past})");
                        }
                        Err(Error::OffsetOutOfRange { offset, .. }) => assert_eq!(offset, past),
                        Err(e) => panic!("{who}: read({past}): {e}"),
                    }
                    reads += 1;
                }
            });
        }
        let mut rng = Rng::new(99);
        let mut next = 0;
        while next < TOTAL {
            let n = if rng.range(0, 5) == 0 { rng.range(2, 9).min(TOTAL - next) } else { 1 };
            append_offsets(&log, next..next + n);
            next += n;
        }
        done.store(true, Ordering::Release);
    });
    assert!(log.segments().len() >= 10, "the test must cross many segment rolls");
}

/// Several threads append at once (singles and batches): every offset is handed out exactly
/// once, offsets are dense, each batch gets consecutive offsets, and every record reads back
/// as its writer wrote it.
#[test]
fn concurrent_writers_get_distinct_dense_offsets() {
    const THREADS: u64 = 4;
    const APPENDS: u64 = 4000;
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path().join("log"), opts()).unwrap();
    let results = run_writers(&log, THREADS, APPENDS);
    check_writers(&log, &results);
    assert!(log.segments().len() >= 3);
    let dir = log.dir().to_path_buf();
    log.close().unwrap();
    let log = Log::open(&dir, opts()).unwrap();
    check_writers(&log, &results);
}

/// What one writer thread appended: (first offset, sequence numbers) per append.
type Appended = Vec<(u64, Range<u64>)>;

fn writer_payload(thread: u64, seq: u64) -> Vec<u8> {
    let mut p = format!("{thread}/{seq}/").into_bytes();
    let h = fnv1a(&p);
    p.extend((0..h % 200).map(|j| j as u8 ^ h as u8));
    p
}

fn run_writers(log: &Log, threads: u64, appends: u64) -> HashMap<u64, Appended> {
    let barrier = Barrier::new(threads as usize);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let log = log.clone();
                let barrier = &barrier;
                s.spawn(move || {
                    let mut rng = Rng::new(t * 7 + 3);
                    let mut seq = 0;
                    let mut out = Vec::new();
                    barrier.wait();
                    for _ in 0..appends {
                        let n = if rng.range(0, 4) == 0 { rng.range(2, 6) } else { 1 };
                        let payloads: Vec<Vec<u8>> = (seq..seq + n).map(|q| writer_payload(t, q)).collect();
                        let records: Vec<Record<'_>> = payloads.iter().map(|p| Record::new(p)).collect();
                        let r = log.append_batch(&records).unwrap();
                        assert_eq!(r.end - r.start, n, "a batch gets consecutive offsets");
                        out.push((r.start, seq..seq + n));
                        seq += n;
                    }
                    (t, out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn check_writers(log: &Log, results: &HashMap<u64, Appended>) {
    let total: u64 = results.values().flatten().map(|(_, seqs)| seqs.end - seqs.start).sum();
    assert_eq!(log.next_offset(), total, "offsets are dense: exactly one per record");
    let mut owner: Vec<Option<(u64, u64)>> = vec![None; total as usize];
    for (&t, appended) in results {
        let mut last = None;
        for (start, seqs) in appended {
            assert!(last < Some(*start), "writer {t}: its own appends go forward");
            last = Some(*start);
            for (i, seq) in seqs.clone().enumerate() {
                let o = start + i as u64;
                assert!(owner[o as usize].replace((t, seq)).is_none(), "offset {o} handed out twice");
            }
        }
    }
    let mut cursor = log.cursor(0);
    for (o, who) in owner.iter().enumerate() {
        let (t, seq) = who.unwrap_or_else(|| panic!("offset {o} handed to nobody"));
        let r = cursor.next().unwrap().unwrap();
        assert_eq!(r.offset(), o as u64);
        assert_eq!(r.payload(), writer_payload(t, seq).as_slice(), "offset {o}");
    }
    assert!(cursor.next().unwrap().is_none());
}

/// Group commit: four threads append in `Durability::Always` mode at once. Every append
/// returns (nobody waits forever for a flush someone else should have led), offsets are
/// dense and distinct, and everything is there after an unclean stop (`mem::forget`, as after
/// a crash of the process) and reopen.
#[test]
fn group_commit_with_four_threads_is_correct() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir, opts().durability(Durability::Always)).unwrap();
    let started = Instant::now();
    let results = run_writers(&log, 4, 250);
    eprintln!("group commit: {} records in {:?}", log.next_offset(), started.elapsed());
    check_writers(&log, &results);
    std::mem::forget(log);
    let (_copy, copy) = common::copy_of(&dir);
    let log = Log::open(&copy, opts()).unwrap();
    assert!(!log.open_report().clean_shutdown);
    check_writers(&log, &results);
    assert!(log.verify(|_| {}).damage.is_empty());
}

// ---- a follower in another process -------------------------------------------------------

const ENV_DIR: &str = "TIDELOG_FOLLOWER_DIR";
const ENV_TOTAL: &str = "TIDELOG_FOLLOWER_TOTAL";

/// The child: open read-only and tail with `wait_for` and a cursor, reporting each record.
#[test]
#[ignore = "child process of follower_in_another_process_sees_every_record_in_order"]
fn child_follower() {
    let Some(dir) = std::env::var_os(ENV_DIR) else { return };
    let total: u64 = std::env::var(ENV_TOTAL).unwrap().parse().unwrap();
    let log = Log::open_read_only(&dir, opts()).expect("follower: open read-only");
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY {}", log.next_offset()).unwrap();
    out.flush().unwrap();
    let mut cursor = log.cursor(0);
    let (mut next, mut waits) = (0, 0u64);
    while next < total {
        waits += u64::from(log.next_offset() <= next);
        if !log.wait_for(next, Duration::from_secs(20)).unwrap() {
            writeln!(out, "TIMEOUT {next}").unwrap();
            break;
        }
        while let Some(r) = cursor.next().unwrap_or_else(|e| panic!("follower: cursor at {next}: {e}")) {
            let ok =
                r.payload() == payload_for(r.offset()).as_slice() && r.key() == Some(key_for(r.offset()).as_slice());
            writeln!(out, "SEEN {} {:016x} {}", r.offset(), fnv1a(r.payload()), if ok { "ok" } else { "BAD" }).unwrap();
            next += 1;
        }
        out.flush().unwrap();
    }
    writeln!(out, "WAITS {waits}").unwrap();
    writeln!(out, "SEGMENTS {}", log.segments().len()).unwrap();
    out.flush().unwrap();
}

/// A read-only follower in another process tails the log while this process appends across
/// many segment rolls: it sees every record, in order, intact, and nothing else.
#[test]
fn follower_in_another_process_sees_every_record_in_order() {
    const TOTAL: u64 = 3000;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir, opts()).unwrap();
    append_offsets(&log, 0..10);
    let mut child = child_test("child_follower").env(ENV_DIR, &dir).env(ENV_TOTAL, TOTAL.to_string()).spawn().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in stdout.lines().map_while(Result::ok) {
            if line.starts_with("READY") {
                let _ = tx.send(());
            }
            lines.push(line);
        }
        lines
    });
    // Append only once the follower has opened the log, at a pace that lets it catch up and
    // wait again and again: it tails live, across rolls.
    rx.recv_timeout(Duration::from_secs(30)).expect("the follower opened the log");
    let mut rng = Rng::new(42);
    let mut next = 10;
    while next < TOTAL {
        let n = if rng.range(0, 4) == 0 { rng.range(2, 9).min(TOTAL - next) } else { 1 };
        append_offsets(&log, next..next + n);
        next += n;
        if rng.range(0, 25) == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let segments = log.segments().len();
    assert!(segments >= 5, "the follower must cross segment rolls");
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the follower did not finish");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let lines = reader.join().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "follower failed: {status}: {stderr}");
    assert!(lines.iter().any(|l| l.starts_with("READY")), "{lines:?}");
    let seen: Vec<&String> = lines.iter().filter(|l| l.starts_with("SEEN ")).collect();
    assert_eq!(
        seen.len() as u64,
        TOTAL,
        "records seen by the follower; last lines: {:?}",
        &lines[lines.len().saturating_sub(3)..]
    );
    for (o, line) in seen.iter().enumerate() {
        let want = format!("SEEN {o} {:016x} ok", fnv1a(&payload_for(o as u64)));
        assert_eq!(line.as_str(), want, "the follower's record {o}");
    }
    assert_eq!(lines.iter().find(|l| l.starts_with("SEGMENTS ")), Some(&format!("SEGMENTS {segments}")));
    let waits: u64 = lines.iter().find_map(|l| l.strip_prefix("WAITS ")).unwrap().parse().unwrap();
    assert!(waits > 3, "the follower caught up with the writer only {waits} times: it did not tail live");
    eprintln!("follower: waited for the writer {waits} times over {segments} segments");
}

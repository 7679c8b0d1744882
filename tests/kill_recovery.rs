//! A real crash test: SIGKILL a writer process at random moments.
//!
//! The test re-executes its own binary as a child process (running only the `#[ignore]`d
//! `child_writer`, which does nothing unless the parent's environment variables are set).
//! The child opens the log in `Durability::Always`, appends from one or three threads, single
//! records and atomic batches, and after each append returns prints the acknowledged offsets
//! and the identity of their records to stdout. The parent kills it with SIGKILL after a
//! random delay (sometimes while it is still opening and recovering the log), then reopens
//! the log and checks:
//!
//! * every acknowledged record is present at its offset, intact;
//! * offsets are dense from 0, and every record in the log validates against the
//!   deterministic payload of its identity (no damaged or invented record, no duplicate);
//! * each writer thread's records form a gap-free prefix of what it wrote, in order, and
//!   every batch is present whole, on consecutive offsets, or not at all;
//! * the log takes appends where it left off, and reopens cleanly, again and read-only.
//!
//! The log accumulates over ten rounds before a fresh one is started, so recovery also runs
//! over logs with many segments and earlier recoveries. `TIDELOG_KILL_ROUNDS` sets the number
//! of rounds (default 50), `TIDELOG_KILL_SEED` replays a particular sequence of delays.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{child_test, fnv1a, parse_frames, segment_files, Rng};
use tidelog::{Durability, Header, Log, Options, Record, RecordView};

const ENV_DIR: &str = "TIDELOG_KILL_CHILD_DIR";
const ENV_ROUND: &str = "TIDELOG_KILL_CHILD_ROUND";
const ENV_THREADS: &str = "TIDELOG_KILL_CHILD_THREADS";
const ENV_SEED: &str = "TIDELOG_KILL_CHILD_SEED";
const ENV_SEGMENT_BYTES: &str = "TIDELOG_KILL_CHILD_SEGMENT_BYTES";
const ROUNDS_PER_LOG: u64 = 10;

/// Small segments make the writer roll often, so that many kills land in the middle of a roll;
/// some rounds use larger ones, so that more kills land in the middle of a batch.
const SMALL_SEGMENT_BYTES: u64 = 64 * 1024;
const LARGE_SEGMENT_BYTES: u64 = 1 << 20;

fn opts() -> Options {
    Options::default().segment_bytes(SMALL_SEGMENT_BYTES).index_interval_bytes(1024).durability(Durability::Always)
}

/// The payload of record `seq` of writer thread `thread` in round `round`, appended in a
/// batch whose last record is `last`: that identity as text, then filler bytes derived from
/// it (0 to 299 of them).
fn payload(round: u64, thread: u64, seq: u64, last: u64) -> Vec<u8> {
    let mut p = format!("{round}:{thread}:{seq}:{last}:").into_bytes();
    let h = fnv1a(&p);
    let len = (h % 300) as usize;
    p.extend((0..len).map(|j| (h >> (j % 8 * 8)) as u8 ^ j as u8));
    p
}

fn marker_payload(round: u64) -> Vec<u8> {
    format!("parent marker after round {round}").into_bytes()
}

/// Who wrote a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Id {
    Child { round: u64, thread: u64, seq: u64, last: u64 },
    Marker { round: u64 },
}

/// Identify a record and check every byte of it against what its writer must have written.
fn identify(r: &RecordView<'_>) -> Result<Id, String> {
    if r.key() == Some(&b"parent"[..]) {
        let text = std::str::from_utf8(r.payload()).map_err(|e| e.to_string())?;
        let round: u64 =
            text.strip_prefix("parent marker after round ").and_then(|s| s.parse().ok()).ok_or("bad marker")?;
        return Ok(Id::Marker { round });
    }
    let fields: Vec<&[u8]> = r.payload().splitn(5, |&b| b == b':').collect();
    if fields.len() != 5 {
        return Err(format!("payload without an identity at offset {}", r.offset()));
    }
    let num = |b: &[u8]| std::str::from_utf8(b).ok().and_then(|s| s.parse::<u64>().ok()).ok_or("bad number");
    let (round, thread, seq, last) = (num(fields[0])?, num(fields[1])?, num(fields[2])?, num(fields[3])?);
    if r.payload() != payload(round, thread, seq, last).as_slice() {
        return Err(format!("payload of {round}:{thread}:{seq} at offset {} is damaged", r.offset()));
    }
    if r.key() != Some(format!("t{thread}").as_bytes()) {
        return Err(format!("key of offset {} is {:?}", r.offset(), r.key()));
    }
    if r.header("seq") != Some(&seq.to_le_bytes()[..]) || r.headers().count() != 1 {
        return Err(format!("headers of offset {} are damaged", r.offset()));
    }
    Ok(Id::Child { round, thread, seq, last })
}

/// The child: append until killed, reporting every acknowledged record.
#[test]
#[ignore = "child process of sigkill_at_random_moments_loses_no_acknowledged_record"]
fn child_writer() {
    let Some(dir) = std::env::var_os(ENV_DIR) else { return };
    let env = |k: &str| -> u64 { std::env::var(k).unwrap().parse().unwrap() };
    let (round, threads, seed) = (env(ENV_ROUND), env(ENV_THREADS), env(ENV_SEED));
    let log = Log::open(&dir, opts().segment_bytes(env(ENV_SEGMENT_BYTES))).expect("child: open");
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "READY {}", log.next_offset()).unwrap();
        out.flush().unwrap();
    }
    // The parent kills well before this; the bound only stops an orphaned child.
    let deadline = Instant::now() + Duration::from_secs(20);
    std::thread::scope(|s| {
        for thread in 0..threads {
            let log = &log;
            s.spawn(move || {
                let mut rng = Rng::new(seed ^ thread.wrapping_mul(0x9E37_79B9));
                let key = format!("t{thread}");
                let mut seq = 0u64;
                while Instant::now() < deadline {
                    let n = match rng.range(0, 8) {
                        0 => rng.range(2, 6),
                        1 => rng.range(6, 60),
                        _ => 1,
                    };
                    let payloads: Vec<Vec<u8>> =
                        (seq..seq + n).map(|q| payload(round, thread, q, seq + n - 1)).collect();
                    let seqs: Vec<[u8; 8]> = (seq..seq + n).map(u64::to_le_bytes).collect();
                    let headers: Vec<[Header<'_>; 1]> =
                        seqs.iter().map(|b| [Header { name: "seq", value: b }]).collect();
                    let records: Vec<Record<'_>> = payloads
                        .iter()
                        .zip(&headers)
                        .map(|(p, h)| Record::new(p).key(key.as_bytes()).headers(h))
                        .collect();
                    let range = log.append_batch(&records).expect("child: append");
                    let mut out = std::io::stdout().lock();
                    for (i, offset) in range.enumerate() {
                        let _ = writeln!(out, "ACK {offset} {round} {thread} {} {}", seq + i as u64, seq + n - 1);
                    }
                    let _ = out.flush();
                    seq += n;
                }
            });
        }
    });
}

/// One acknowledged record, as the child reported it.
#[derive(Debug, Clone, Copy)]
struct Ack {
    offset: u64,
    id: Id,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut it = line.strip_prefix("ACK ")?.split(' ').map(|s| s.parse::<u64>().unwrap());
    let (offset, round, thread, seq, last) = (it.next()?, it.next()?, it.next()?, it.next()?, it.next()?);
    Some(Ack { offset, id: Id::Child { round, thread, seq, last } })
}

/// Run one child and kill it; returns its acknowledgements.
fn run_and_kill(dir: &Path, round: u64, threads: u64, segment_bytes: u64, rng: &mut Rng) -> Vec<Ack> {
    let mut child = child_test("child_writer")
        .env(ENV_SEGMENT_BYTES, segment_bytes.to_string())
        .env(ENV_DIR, dir)
        .env(ENV_ROUND, round.to_string())
        .env(ENV_THREADS, threads.to_string())
        .env(ENV_SEED, rng.next_u64().to_string())
        .spawn()
        .expect("spawn the child writer");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut lines = Vec::new();
    // Mostly kill while appending; one round in five, possibly while the child still opens
    // and recovers the log.
    if rng.range(0, 5) != 0 {
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    let ready = line.starts_with("READY");
                    lines.push(line);
                    if ready {
                        break;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("round {round}: the child never opened the log: {}", err_reader.join().unwrap());
                }
            }
        }
    }
    std::thread::sleep(Duration::from_millis(rng.range(5, 151)));
    if let Some(status) = child.try_wait().unwrap() {
        panic!("round {round}: the child exited by itself ({status}): {}", err_reader.join().unwrap());
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    assert_eq!(status.signal(), Some(9), "round {round}: the child was not killed by SIGKILL: {status}: {stderr}");
    lines.extend(rx.try_iter());
    lines.iter().filter_map(|l| parse_ack(l)).collect()
}

/// Reopen after a kill and check everything the module documentation promises. `acks` holds
/// every acknowledgement and parent marker since this log was created.
fn check_after_kill(dir: &Path, acks: &mut Vec<Ack>, round: u64) -> u64 {
    let ctx = format!("after the kill of round {round}");
    let log = Log::open(dir, opts()).unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
    let next = log.next_offset();
    for a in acks.iter() {
        assert!(a.offset < next, "{ctx}: acknowledged offset {} missing (next offset {next})", a.offset);
        let id = log.read_with(a.offset, |r| identify(&r)).unwrap_or_else(|e| panic!("{ctx}: read({}): {e}", a.offset));
        assert_eq!(id, Ok(a.id), "{ctx}: record at acknowledged offset {}", a.offset);
    }
    let mut cursor = log.cursor(0);
    let mut seen: HashSet<Id> = HashSet::new();
    let mut next_seq: HashMap<(u64, u64), u64> = HashMap::new();
    // Inside a batch: the writer and sequence number the next record must have.
    let mut in_batch: Option<(u64, u64, u64)> = None;
    for o in 0..next {
        let r = match cursor.next() {
            Ok(Some(r)) => r,
            other => panic!("{ctx}: offset {o} of {next}: {other:?}"),
        };
        assert_eq!(r.offset(), o, "{ctx}: offsets not dense");
        let id = identify(&r).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert!(seen.insert(id), "{ctx}: {id:?} appears twice");
        if let Some(expect) = in_batch.take() {
            assert!(
                matches!(id, Id::Child { round, thread, seq, .. } if (round, thread, seq) == expect),
                "{ctx}: batch interrupted at offset {o} by {id:?}, expected {expect:?}"
            );
        }
        if let Id::Child { round, thread, seq, last } = id {
            let want = next_seq.entry((round, thread)).or_insert(0);
            assert_eq!(seq, *want, "{ctx}: writer {round}/{thread} has a gap or is out of order at offset {o}");
            *want += 1;
            if seq < last {
                in_batch = Some((round, thread, seq + 1));
            }
        }
    }
    assert_eq!(in_batch, None, "{ctx}: the log ends inside a batch");
    assert!(cursor.next().unwrap().is_none(), "{ctx}: cursor past the end");
    drop(cursor);
    let v = log.verify(|_| {});
    assert!(v.damage.is_empty(), "{ctx}: verify: {:?}", v.damage);
    assert_eq!(v.records, next, "{ctx}");

    // Appends continue where the log left off...
    let marker = marker_payload(round);
    assert_eq!(log.append(Record::new(&marker).key(b"parent")).unwrap(), next, "{ctx}: append after recovery");
    acks.push(Ack { offset: next, id: Id::Marker { round } });
    log.close().unwrap();
    // ...and the log reopens, again and again, and read-only.
    for _ in 0..2 {
        let log = Log::open(dir, opts()).unwrap_or_else(|e| panic!("{ctx}: clean reopen: {e}"));
        assert!(log.open_report().clean_shutdown, "{ctx}: {:?}", log.open_report());
        assert_eq!(log.next_offset(), next + 1, "{ctx}");
        log.close().unwrap();
    }
    let ro = Log::open_read_only(dir, opts()).unwrap();
    assert_eq!(ro.next_offset(), next + 1, "{ctx}: read-only reopen");
    assert_eq!(ro.read(next).unwrap().payload, marker, "{ctx}");
    next
}

/// SIGKILL a writer in `Durability::Always` mode at random moments, over and over: no
/// acknowledged record is ever lost or damaged, offsets stay dense, and the log keeps going.
#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_record() {
    let rounds: u64 = std::env::var("TIDELOG_KILL_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(50);
    let seed: u64 = std::env::var("TIDELOG_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x71DE_1060);
    eprintln!("kill test: {rounds} rounds, seed {seed} (set TIDELOG_KILL_SEED to replay)");
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let mut log_dir: Option<(tempfile::TempDir, PathBuf)> = None;
    let mut acks: Vec<Ack> = Vec::new();
    let (mut total_acked, mut rounds_with_acks, mut multi_thread_rounds_with_acks) = (0usize, 0u64, 0u64);
    let (mut max_next, mut torn_batches) = (0, 0u64);
    for round in 0..rounds {
        if round % ROUNDS_PER_LOG == 0 {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("log");
            log_dir = Some((tmp, dir));
            acks.clear();
        }
        let dir = &log_dir.as_ref().unwrap().1;
        let threads = if round % 3 == 1 { 3 } else { 1 };
        let segment_bytes = if round % 2 == 0 { SMALL_SEGMENT_BYTES } else { LARGE_SEGMENT_BYTES };
        let new = run_and_kill(dir, round, threads, segment_bytes, &mut rng);
        if !new.is_empty() {
            rounds_with_acks += 1;
            multi_thread_rounds_with_acks += u64::from(threads > 1);
        }
        total_acked += new.len();
        acks.extend(new);
        // How often the kill cut a batch short (the last frame written announces more).
        let active = segment_files(dir).pop();
        let frames = active.map(|p| parse_frames(&std::fs::read(p).unwrap())).unwrap_or_default();
        torn_batches += u64::from(frames.last().is_some_and(|f| f.batch_rest > 0));
        max_next = max_next.max(check_after_kill(dir, &mut acks, round));
    }
    eprintln!(
        "kill test: {total_acked} records acknowledged in {rounds_with_acks}/{rounds} rounds, \
         {torn_batches} kills inside a batch, largest log {max_next} records, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The test proves nothing if the child never got to write.
    assert!(rounds_with_acks * 2 >= rounds, "too few rounds acknowledged anything");
    assert!(rounds < 3 || multi_thread_rounds_with_acks > 0, "no multi-threaded round acknowledged anything");
}

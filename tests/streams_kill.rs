//! A retried append after a crash does not duplicate: a child process appends events with
//! ids to one stream (`Durability::Always`), reporting each acknowledged append, and is killed
//! with SIGKILL at a random moment, possibly between writing an event and acknowledging it.
//! The parent then retries the last acknowledged event and the one the child may have been
//! writing, with the same ids: the acknowledged one keeps its offset, and each id is in the
//! stream exactly once, in order.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{child_test, Rng};
use tidelog::{Durability, ExpectedVersion, Header, Log, Options, Record, EVENT_ID_HEADER};

const ENV_DIR: &str = "TIDELOG_STREAM_KILL_DIR";
const ENV_FROM: &str = "TIDELOG_STREAM_KILL_FROM";
const KEY: &[u8] = b"ledger";
const ROUNDS: u64 = 30;

fn opts() -> Options {
    Options::default().segment_bytes(16 * 1024).durability(Durability::Always)
}

fn id_of(n: u64) -> Vec<u8> {
    format!("evt-{n}").into_bytes()
}

/// Append event `n` (its id, its payload) to the stream.
fn append_event(log: &Log, n: u64) -> tidelog::Result<u64> {
    let (id, payload) = (id_of(n), format!("event {n}").into_bytes());
    let headers = [Header { name: EVENT_ID_HEADER, value: &id }];
    let r = Record::new(&payload).key(KEY).headers(&headers);
    Ok(log.append_to_stream(KEY, ExpectedVersion::Any, &[r])?.start)
}

/// The child: append events from `ENV_FROM` on until killed, printing each acknowledgement.
#[test]
#[ignore = "child process of a_retried_append_after_a_crash_does_not_duplicate"]
fn child_stream_writer() {
    let Some(dir) = std::env::var_os(ENV_DIR) else { return };
    let from: u64 = std::env::var(ENV_FROM).unwrap().parse().unwrap();
    let log = Log::open(&dir, opts()).expect("child: open");
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = from;
    while Instant::now() < deadline {
        let offset = append_event(&log, n).unwrap();
        writeln!(out, "ACK {n} {offset}").unwrap();
        out.flush().unwrap();
        n += 1;
    }
}

/// Run one child from event `from`, kill it after `delay`; returns the acknowledged events.
fn run_child(dir: &Path, from: u64, delay: Duration) -> Vec<(u64, u64)> {
    let mut child =
        child_test("child_stream_writer").env(ENV_DIR, dir).env(ENV_FROM, from.to_string()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The test harness may print before the child's first line.
    let ready = lines.by_ref().map_while(|l| l.ok()).any(|l| l == "READY");
    assert!(ready, "the child did not start");
    std::thread::sleep(delay);
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "the child was not killed by SIGKILL: {status}");
    lines
        .map_while(|l| l.ok())
        .filter_map(|l| {
            let mut f = l.strip_prefix("ACK ")?.split(' ').map(|x| x.parse::<u64>());
            Some((f.next()?.ok()?, f.next()?.ok()?))
        })
        .collect()
}

#[test]
fn a_retried_append_after_a_crash_does_not_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(0x5eed_0f57_2ea3);
    let mut acked: HashMap<u64, u64> = HashMap::new();
    let mut next = 0u64;
    let mut found_written = 0u64;
    for round in 0..ROUNDS {
        let got = run_child(dir.path(), next, Duration::from_millis(rng.range(5, 60)));
        acked.extend(got.iter().copied());
        let last = got.last().map_or(next.checked_sub(1), |&(n, _)| Some(n));
        let log = Log::open(dir.path(), opts()).unwrap();
        let end = log.next_offset();
        // Retry the last acknowledged event: it keeps its offset, nothing is written.
        if let Some(n) = last {
            assert_eq!(append_event(&log, n).unwrap(), acked[&n], "round {round}: retry of event {n}");
            assert_eq!(log.next_offset(), end, "round {round}");
        }
        // Retry the event the child may have been writing when it died.
        let pending = last.map_or(0, |n| n + 1);
        let offset = append_event(&log, pending).unwrap();
        assert!(offset <= end, "round {round}");
        found_written += u64::from(offset < end);
        acked.insert(pending, offset);
        next = pending + 1;
        // Each id exactly once, in order, at the acknowledged offsets.
        let stream = log.read_stream(KEY, 0, usize::MAX).unwrap();
        let ids: Vec<Vec<u8>> = stream.iter().map(|e| e.record.header(EVENT_ID_HEADER).unwrap().to_vec()).collect();
        assert_eq!(ids, (0..next).map(id_of).collect::<Vec<_>>(), "round {round}");
        for e in &stream {
            let n: u64 = std::str::from_utf8(&e.record.header(EVENT_ID_HEADER).unwrap()[4..]).unwrap().parse().unwrap();
            assert_eq!(e.record.offset(), acked[&n], "round {round}: event {n}");
            assert_eq!(e.version, n, "round {round}");
        }
    }
    eprintln!("{found_written} of {ROUNDS} retries found their event already written by the killed child");
}

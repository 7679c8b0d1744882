//! The writer lock and process spawning.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidelog::{Log, Options, Record};

/// A log closed and reopened while another thread spawns processes must not find itself
/// locked.
///
/// Regression: `flock` locks belong to the open file description, and a child process holds
/// copies of all of its parent's descriptors from `fork` until `exec` closes them. A log
/// closed in that window kept its lock alive in the not-yet-exec'd child, so the reopen that
/// followed failed with `Error::Locked` although no other writer existed (seen as a flaky CLI
/// test that spawned the `tidelog` binary from a parallel test thread). Acquisition now
/// retries for a moment before reporting `Locked`.
#[test]
fn reopen_while_another_thread_spawns_processes_is_not_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let stop = Arc::new(AtomicBool::new(false));
    let spawner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut spawned = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let _ = std::process::Command::new("true").status();
                spawned += 1;
            }
            spawned
        })
    };
    let opts = Options::default().segment_bytes(1 << 20);
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut rounds = 0u64;
    while Instant::now() < deadline {
        let log = Log::open(&dir, opts.clone()).unwrap_or_else(|e| panic!("round {rounds}: {e}"));
        assert_eq!(log.append(Record::new(b"x")).unwrap(), rounds);
        log.close().unwrap();
        rounds += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let spawned = spawner.join().unwrap();
    assert!(rounds > 10 && spawned > 10, "rounds {rounds}, spawned {spawned}");
}

//! A reader in another process than the writer is woken by the writer's publish through the
//! log's wake file (`docs/format.md`, "Wake file"), and falls back to polling where the file
//! cannot be used; a damaged wake file never breaks the log.
//!
//! The writer is this test binary run again with an environment variable set, executing one
//! `#[ignore]`d test function that appends when told to on its standard input.
//!
//! Every test here sets the wake file's recheck interval of this process to an hour, so a
//! reader asleep on the futex is woken by a publish or not at all before its caller's
//! deadline: a lost wake-up cannot hide behind the recheck, and shows up as a sleep that ran
//! out (`wake_sleeps_timed_out`), which the tests check is zero. Every wait here is for a
//! record that does come, so no sleep may run out.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use tidelog::testing::{set_wake_recheck, wake_sleeps_timed_out};
use tidelog::{GroupOptions, Log, Options, Record, Store, StoreOptions};

const CHILD_ENV: &str = "TIDELOG_WAKE_CHILD";
/// Far longer than any test takes: a wait that returns before it did not time out.
const LONG: Duration = Duration::from_secs(60);

fn opts() -> Options {
    Options::default().segment_bytes(1 << 20)
}

/// The writer process: opens the log (or, with `store` in the environment, the store's topic
/// `t`) for writing, says `ready`, then for each line `a MICROS` spins that long and appends
/// one record; exits at end of input.
#[test]
#[ignore = "child process of cross_process_wake tests"]
fn child_writer() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else { return };
    let dir = Path::new(&dir);
    let store = std::env::var_os("TIDELOG_WAKE_STORE").is_some();
    let (log, topic) = if store {
        let s = Store::open(dir, StoreOptions::default().topic(opts())).unwrap();
        (None, Some(s.topic("t").unwrap()))
    } else {
        (Some(Log::open(dir, opts()).unwrap()), None)
    };
    if let Some(t) = &topic {
        // Take the topic's writer (and so create its wake file) before saying ready.
        t.publish(Record::new(b"first")).unwrap();
    }
    println!("ready");
    std::io::stdout().flush().unwrap();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let Some(us) = line.strip_prefix("a ") else { continue };
        let spin = Duration::from_micros(us.parse().unwrap());
        let t0 = Instant::now();
        while t0.elapsed() < spin {
            std::hint::spin_loop();
        }
        match (&log, &topic) {
            (Some(l), _) => l.append(Record::new(b"x")).map(|_| ()).unwrap(),
            (_, Some(t)) => t.publish(Record::new(b"x")).map(|_| ()).unwrap(),
            _ => unreachable!(),
        }
    }
}

struct Writer {
    child: Child,
    stdin: ChildStdin,
    /// Kept open until the child exits: it prints its test summary at the end.
    stdout: BufReader<ChildStdout>,
}

impl Writer {
    fn start(dir: &Path, store: bool) -> Writer {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["child_writer", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if store {
            cmd.env("TIDELOG_WAKE_STORE", "1");
        }
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        while !line.contains("ready") {
            line.clear();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "the writer process did not start");
        }
        Writer { child, stdin, stdout }
    }

    /// Ask the writer to append one record after spinning `us` microseconds.
    fn append_after(&mut self, us: u64) {
        writeln!(self.stdin, "a {us}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn finish(self) {
        let Writer { mut child, stdin, mut stdout } = self;
        drop(stdin);
        std::io::copy(&mut stdout, &mut std::io::sink()).unwrap();
        assert!(child.wait().unwrap().success());
    }
}

/// A log created (and closed) here, so that a follower can open it before the writer starts.
fn new_log(dir: &Path) {
    Log::open(dir, opts()).unwrap().close().unwrap();
}

#[test]
fn a_follower_blocked_in_a_wait_is_woken_by_a_publish_in_another_process() {
    set_wake_recheck(Duration::from_secs(3600));
    let tmp = tempfile::tempdir().unwrap();
    new_log(tmp.path());
    let mut w = Writer::start(tmp.path(), false);
    assert!(tmp.path().join("wake").is_file(), "the writer creates the wake file");
    let follower = Log::open_read_only(tmp.path(), opts()).unwrap();
    // The writer appends 200 ms from now; the follower is asleep by then.
    w.append_after(200_000);
    assert!(follower.wait_for(0, LONG).unwrap(), "the record is there");
    assert_eq!(follower.read(0).unwrap().payload, b"x");
    w.finish();
    assert_eq!(wake_sleeps_timed_out(), 0, "a sleep ran to its deadline: a wake-up was lost");
}

#[test]
fn no_wake_up_is_lost_over_many_rounds_whenever_the_waiter_arrives() {
    set_wake_recheck(Duration::from_secs(3600));
    let tmp = tempfile::tempdir().unwrap();
    new_log(tmp.path());
    let mut w = Writer::start(tmp.path(), false);
    let follower = Log::open_read_only(tmp.path(), opts()).unwrap();
    const ROUNDS: u64 = 2000;
    // The writer's delay before it appends, and the follower's before it waits, cycle through
    // values so that the wait begins before, during and after the publish.
    let writer_spin = [0u64, 0, 1, 3, 10, 30, 100];
    let reader_pause = [0u64, 0, 0, 2, 20, 50];
    for i in 0..ROUNDS {
        w.append_after(writer_spin[i as usize % writer_spin.len()]);
        let pause = Duration::from_micros(reader_pause[i as usize % reader_pause.len()]);
        let t0 = Instant::now();
        while t0.elapsed() < pause {
            std::hint::spin_loop();
        }
        assert!(follower.wait_for(i, LONG).unwrap(), "round {i}: the record is there");
        assert_eq!(follower.next_offset(), i + 1, "round {i}");
    }
    w.finish();
    assert_eq!(wake_sleeps_timed_out(), 0, "a sleep ran to its deadline: a wake-up was lost");
}

#[test]
fn a_consumer_group_in_another_process_is_woken_by_a_publish() {
    set_wake_recheck(Duration::from_secs(3600));
    let tmp = tempfile::tempdir().unwrap();
    let mut w = Writer::start(tmp.path(), true);
    let store = Store::open(tmp.path(), StoreOptions::default().topic(opts())).unwrap();
    let topic = store.topic("t").unwrap();
    let group = topic.group("g", GroupOptions::default()).unwrap();
    let first = group.poll(1, LONG).unwrap();
    assert_eq!(first.len(), 1);
    group.ack(&first[0]).unwrap();
    let mut next = 1;
    for i in 0..50u64 {
        w.append_after(if i % 2 == 0 { 0 } else { 2_000 });
        let ds = group.poll(1, LONG).unwrap();
        assert_eq!(ds.iter().map(|d| d.offset()).collect::<Vec<_>>(), vec![next], "poll returned the event");
        group.ack(&ds[0]).unwrap();
        next += 1;
        w.append_after(if i % 3 == 0 { 0 } else { 1_000 });
        assert!(topic.wait_for(next, LONG).unwrap(), "Topic::wait_for is woken too");
        let ds = group.poll(1, LONG).unwrap();
        assert_eq!(ds.iter().map(|d| d.offset()).collect::<Vec<_>>(), vec![next]);
        group.ack(&ds[0]).unwrap();
        next += 1;
    }
    w.finish();
    assert!(!topic.is_writer(), "this process only consumed");
    assert_eq!(wake_sleeps_timed_out(), 0, "a sleep ran to its deadline: a wake-up was lost");
}

/// A poll asleep on the wake file (its topic written by another process) is also woken by
/// events in its own process: a redrive bumps the wake file, since such a poll does not
/// listen to the in-process condition variable.
#[test]
fn a_redrive_in_this_process_wakes_a_poll_asleep_on_the_wake_file() {
    set_wake_recheck(Duration::from_secs(3600));
    let tmp = tempfile::tempdir().unwrap();
    let w = Writer::start(tmp.path(), true);
    let store = Store::open(tmp.path(), StoreOptions::default().topic(opts())).unwrap();
    let group = store.topic("t").unwrap().group("g", GroupOptions::default().lease(LONG)).unwrap();
    let first = group.poll(1, LONG).unwrap();
    assert_eq!(first.len(), 1);
    let waiter = {
        let group = group.clone();
        std::thread::spawn(move || group.poll(1, LONG).unwrap())
    };
    // Let the poll fall asleep (nothing else is deliverable), then make the event deliverable
    // again from this process.
    std::thread::sleep(Duration::from_millis(200));
    group.reject(&first[0], "to the dead letters").unwrap();
    assert_eq!(group.redrive_all().unwrap(), 1);
    let again = waiter.join().unwrap();
    assert_eq!(again.len(), 1, "the redriven event, before the poll's timeout");
    group.ack(&again[0]).unwrap();
    w.finish();
    assert_eq!(wake_sleeps_timed_out(), 0, "a sleep ran to its deadline: a wake-up was lost");
}

#[test]
fn a_follower_polls_when_the_wake_file_cannot_be_created() {
    set_wake_recheck(Duration::from_secs(3600));
    let tmp = tempfile::tempdir().unwrap();
    new_log(tmp.path());
    // Something else has the name: the writer cannot create the file; it runs without it.
    std::fs::remove_file(tmp.path().join("wake")).unwrap();
    std::fs::create_dir(tmp.path().join("wake")).unwrap();
    let mut w = Writer::start(tmp.path(), false);
    let follower = Log::open_read_only(tmp.path(), opts()).unwrap();
    for i in 0..20 {
        w.append_after(if i % 2 == 0 { 0 } else { 5_000 });
        assert!(follower.wait_for(i, LONG).unwrap(), "round {i}: found by polling");
    }
    w.finish();
    assert!(tmp.path().join("wake").is_dir(), "tidelog left the directory it did not make alone");
    assert!(!tmp.path().join("wake.tmp").exists());
    assert_eq!(Log::open(tmp.path(), opts()).unwrap().next_offset(), 20);
}

#[test]
fn a_garbage_wake_file_is_harmless() {
    set_wake_recheck(Duration::from_secs(3600));
    let tmp = tempfile::tempdir().unwrap();
    new_log(tmp.path());
    let wake = tmp.path().join("wake");
    // Short and foreign: a follower opened now ignores it and polls.
    std::fs::write(&wake, b"not a wake file").unwrap();
    let follower = Log::open_read_only(tmp.path(), opts()).unwrap();
    // No writer yet and nothing to wait for: the follower polls (it cannot use the file).
    assert!(!follower.wait_for(0, Duration::from_millis(10)).unwrap());
    let mut w = Writer::start(tmp.path(), false);
    assert_eq!(std::fs::metadata(&wake).unwrap().len(), 64, "the writer replaced it");
    let mut next = 0;
    let mut round = |w: &mut Writer, spin: u64| {
        w.append_after(spin);
        assert!(follower.wait_for(next, LONG).unwrap(), "record {next} is there");
        next += 1;
    };
    for i in 0..20 {
        round(&mut w, if i % 2 == 0 { 0 } else { 2_000 });
    }
    // Over a second later the follower tries the file again and sleeps on it from then on.
    std::thread::sleep(Duration::from_millis(1100));
    for i in 0..20 {
        round(&mut w, if i % 2 == 0 { 0 } else { 2_000 });
    }
    // Scribbled on while mapped (in place, the way a stray writer would: nothing truncates
    // it): the numbers it holds are nonsense now, the log carries on.
    {
        let mut f = std::fs::OpenOptions::new().write(true).open(&wake).unwrap();
        f.write_all(&[0xA5u8; 64]).unwrap();
    }
    for i in 0..20 {
        round(&mut w, if i % 2 == 0 { 0 } else { 2_000 });
    }
    w.finish();
    assert_eq!(follower.next_offset(), 60);
    // The next writer replaces the damaged file and the log is intact.
    let log = Log::open(tmp.path(), opts()).unwrap();
    assert_eq!(log.next_offset(), 60);
    assert_eq!(log.verify(|_| {}).records, 60);
    drop(log);
    assert_eq!(&std::fs::read(&wake).unwrap()[..8], b"TIDEWAKE");
    assert_eq!(wake_sleeps_timed_out(), 0, "a sleep ran to its deadline: a wake-up was lost");
}

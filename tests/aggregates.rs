//! Aggregates over a log: loads from snapshot plus tail, expected-version conflicts,
//! idempotent retries, snapshot fingerprints, policy and retention, hostile keys, and a
//! snapshot write that fails at every step.

mod aggregate_support;
mod common;

use std::path::Path;
use std::sync::{Arc, Barrier};

use aggregate_support::{fold, Account, AccountEvent, Command, Rejected};
use common::faults::Faults;
use tidelog::{
    AggregateOptions, AggregateStore, Error, Log, Options, SkipReason, SnapshotPolicy, SnapshotRetention,
    SnapshotTaken, Store, StoreOptions,
};

type Accounts<const FP: u64 = 1> = AggregateStore<Account<FP>>;

fn open_log(dir: &Path) -> Log {
    Log::open(dir.join("log"), Options::default().segment_bytes(64 << 10)).unwrap()
}

fn accounts<const FP: u64>(log: &Log, dir: &Path, options: AggregateOptions) -> Accounts<FP> {
    AggregateStore::open(log, dir.join("snaps"), options).unwrap()
}

/// Open `key` and deposit 1 cent `n` times.
fn deposits<const FP: u64>(s: &Accounts<FP>, key: &[u8], n: usize) {
    if s.load(key).unwrap().version == 0 {
        s.execute(key, Command::Open("ann".into())).unwrap();
    }
    for _ in 0..n {
        s.execute(key, Command::Deposit(1)).unwrap();
    }
}

#[test]
fn two_writers_racing_on_one_stream_exactly_one_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open_log(tmp.path());
    let s = Arc::new(accounts::<1>(&log, tmp.path(), AggregateOptions::default()));
    deposits(&s, b"acct", 0);
    for round in 0..20 {
        // Both decide after both loaded the same version: the handler waits at the barrier.
        let barrier = Arc::new(Barrier::new(2));
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let (s, b) = (s.clone(), barrier.clone());
                std::thread::spawn(move || s.execute(b"acct", Command::DepositAfter(10, b)))
            })
            .collect();
        let results: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
        let wins = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {results:?}");
        let lost = results.into_iter().find_map(Result::err).unwrap();
        let expected_actual = 2 + round;
        assert!(
            matches!(lost, Error::WrongExpectedVersion { ref key, actual, .. } if key == b"acct" && actual == expected_actual),
            "{lost:?}"
        );
    }
    let a = s.load(b"acct").unwrap();
    assert_eq!((a.version, a.state.balance), (21, 200));
}

#[test]
fn a_rejected_command_writes_nothing_and_carries_the_handlers_error() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open_log(tmp.path());
    let s = accounts::<1>(&log, tmp.path(), AggregateOptions::default());
    let err = s.execute(b"a", Command::Deposit(5)).unwrap_err();
    assert!(matches!(&err, Error::CommandRejected { source, .. } if source.downcast_ref() == Some(&Rejected::NotOpen)));
    deposits(&s, b"a", 1);
    let err = s.execute(b"a", Command::Withdraw(2)).unwrap_err();
    let Error::CommandRejected { source, .. } = err else { panic!("{err:?}") };
    assert_eq!(source.downcast_ref(), Some(&Rejected::Overdraft { balance: 1, cents: 2 }));
    assert_eq!(log.stream_version(b"a").unwrap(), 2);
    // A command that decides nothing appends nothing.
    let e = s.execute(b"a", Command::Nothing).unwrap();
    assert!(e.offsets.is_empty() && e.version == 2);
}

#[test]
fn a_retried_command_after_a_crash_is_not_executed_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open_log(tmp.path());
    // A snapshot after every command: the retry must find the id beyond the snapshot.
    let opts = AggregateOptions::default().snapshots(SnapshotPolicy::on_demand().every(1));
    let s = accounts::<1>(&log, tmp.path(), opts.clone());
    deposits(&s, b"a", 0);
    s.execute(b"a", Command::Deposit(100)).unwrap();
    let first = s.execute_once(b"a", b"withdraw-7", Command::Withdraw(60)).unwrap();
    assert!(!first.already_executed);
    // The writer "crashes" before the client hears back: the log is reopened, the client
    // retries with the same command id. Deciding again would be an overdraft (40 < 60).
    drop(s);
    log.close().unwrap();
    let log = open_log(tmp.path());
    let s = accounts::<1>(&log, tmp.path(), opts);
    let retry = s.execute_once(b"a", b"withdraw-7", Command::Withdraw(60)).unwrap();
    assert!(retry.already_executed);
    assert_eq!((retry.offsets, retry.version, retry.state.balance), (first.offsets, 3, 40));
    assert_eq!(log.stream_version(b"a").unwrap(), 3);
    // Another id is another command.
    let err = s.execute_once(b"a", b"withdraw-8", Command::Withdraw(60)).unwrap_err();
    assert!(matches!(err, Error::CommandRejected { .. }));
    let h = s.history(b"a", 0, 10).unwrap();
    assert_eq!(h[2].event_id.as_deref(), Some(&b"withdraw-7#0"[..]));
    assert!(matches!(s.execute_once(b"a", b"", Command::Deposit(1)), Err(Error::InvalidEvent { .. })));
}

#[test]
fn a_load_starts_from_the_snapshot_and_replays_only_the_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open_log(tmp.path());
    let s = accounts::<1>(&log, tmp.path(), AggregateOptions::default());
    deposits(&s, b"a", 99);
    deposits(&s, b"other", 50);
    let info = s.snapshot(b"a").unwrap();
    assert_eq!(info.records, 100);
    deposits(&s, b"a", 5);
    let a = s.load(b"a").unwrap();
    assert_eq!(a.report.used.as_ref().map(|u| u.records), Some(100));
    assert!(a.report.skipped.is_empty());
    assert_eq!((a.replayed, a.version, a.state.balance, a.state.events), (5, 105, 104, 105));
    let brute = fold(s.history(b"a", 0, usize::MAX).unwrap().into_iter().map(|h| h.event));
    assert_eq!(a.state, brute);
    assert_eq!(a.position, log.read_stream_backward(b"a", 1).unwrap()[0].record.offset + 1);
}

#[test]
fn a_snapshot_written_by_other_code_is_ignored_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open_log(tmp.path());
    // Old code (fingerprint 1) snapshots at version 11, new code (fingerprint 2) at 16.
    let old = accounts::<1>(&log, tmp.path(), AggregateOptions::default());
    deposits(&old, b"a", 10);
    old.snapshot(b"a").unwrap();
    drop(old);
    let new = accounts::<2>(&log, tmp.path(), AggregateOptions::default());
    let a = new.load(b"a").unwrap();
    assert!(a.report.used.is_none());
    assert_eq!(a.report.skipped.len(), 1);
    assert!(matches!(a.report.skipped[0].reason, SkipReason::FingerprintMismatch { found: 1, expected: 2 }));
    assert_eq!((a.replayed, a.state.balance), (11, 10));
    deposits(&new, b"a", 5);
    new.snapshot(b"a").unwrap();
    drop(new);
    // Rolled back to the old code: the new snapshot is skipped, the old one used.
    let old = accounts::<1>(&log, tmp.path(), AggregateOptions::default());
    let a = old.load(b"a").unwrap();
    assert_eq!(a.report.used.as_ref().map(|u| u.records), Some(11));
    assert!(matches!(a.report.skipped[0].reason, SkipReason::FingerprintMismatch { found: 2, expected: 1 }));
    assert_eq!((a.replayed, a.state.balance), (5, 15));
}

#[test]
fn a_damaged_or_foreign_snapshot_is_skipped_and_the_state_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open_log(tmp.path());
    let s = accounts::<1>(&log, tmp.path(), AggregateOptions::default());
    deposits(&s, b"a", 3);
    deposits(&s, b"b", 7);
    let info = s.snapshot(b"a").unwrap();
    let mut bytes = std::fs::read(&info.path).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 1;
    std::fs::write(&info.path, &bytes).unwrap();
    let a = s.load(b"a").unwrap();
    assert!(matches!(a.report.skipped[0].reason, SkipReason::Invalid(ref e) if e.is_corruption()));
    assert_eq!((a.replayed, a.state.balance), (4, 3));
    // A snapshot of key "b" put in key "a"'s directory (as a shared directory of hashed
    // long keys would hold) is never used for "a".
    let b = s.snapshot(b"b").unwrap();
    std::fs::remove_file(&info.path).unwrap();
    std::fs::copy(&b.path, s.snapshot_dir(b"a").join(b.path.file_name().unwrap())).unwrap();
    let a = s.load(b"a").unwrap();
    assert!(
        matches!(a.report.skipped[0].reason, SkipReason::Rejected(ref m) if m.contains("another key")),
        "{:?}",
        a.report
    );
    assert_eq!(a.state.balance, 3);
}

#[test]
fn the_policy_snapshots_every_n_events_and_after_long_replays() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open_log(tmp.path());
    let every = AggregateOptions::default().snapshots(SnapshotPolicy::on_demand().every(10));
    let s = accounts::<1>(&log, tmp.path(), every);
    deposits(&s, b"a", 8); // version 9
    let e = s.execute(b"a", Command::Deposit(1)).unwrap(); // version 10
    assert!(matches!(e.snapshot, SnapshotTaken::Written(ref i) if i.records == 10), "{:?}", e.snapshot);
    let e = s.execute(b"a", Command::Deposit(1)).unwrap();
    assert!(matches!(e.snapshot, SnapshotTaken::No));
    drop(s);
    let axon = AggregateOptions::default().snapshots(SnapshotPolicy::on_demand().replayed_over(3));
    let s = accounts::<1>(&log, tmp.path(), axon);
    deposits(&s, b"b", 2);
    assert!(matches!(s.load(b"b").unwrap().snapshot, SnapshotTaken::No));
    deposits(&s, b"b", 1);
    let b = s.load(b"b").unwrap();
    assert_eq!(b.replayed, 4);
    assert!(matches!(b.snapshot, SnapshotTaken::Written(ref i) if i.records == 4));
    assert_eq!(s.load(b"b").unwrap().replayed, 0);
}

#[test]
fn retention_keeps_the_newest_snapshots_and_older_ones_spaced_out() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open_log(tmp.path());
    let opts = AggregateOptions::default()
        .snapshots(SnapshotPolicy::on_demand().every(1))
        .retention(SnapshotRetention::default().keep_latest(2).spaced(10, 2));
    let s = accounts::<1>(&log, tmp.path(), opts);
    deposits(&s, b"a", 39); // one event per offset: snapshots at positions 1..=40
    let positions: Vec<u64> = tidelog::SnapshotDir::open_read_only(s.snapshot_dir(b"a"))
        .files()
        .unwrap()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    // The oldest of the two newest stretches below the newest two, then the newest two.
    assert_eq!(positions, vec![20, 30, 39, 40]);
}

#[test]
fn a_snapshot_write_failing_at_any_step_leaves_the_previous_snapshot_usable() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open_log(tmp.path());
    let s = accounts::<1>(
        &log,
        tmp.path(),
        AggregateOptions::default().retention(SnapshotRetention::default().keep_latest(1)),
    );
    deposits(&s, b"a", 4);
    let previous = s.snapshot(b"a").unwrap();
    let (faults, _hook) = Faults::on(&tmp.path().join("snaps"));
    let mut step = 0;
    loop {
        deposits(&s, b"a", 1);
        faults.fail_nth(step, None);
        let result = s.snapshot(b"a");
        faults.heal();
        if result.is_ok() {
            break; // every step has failed once
        }
        let a = s.load(b"a").unwrap();
        assert!(a.report.skipped.is_empty(), "step {step}: {:?}", a.report.skipped);
        let used = a.report.used.expect("a snapshot is used");
        assert!(used.records >= previous.records, "step {step}");
        assert_eq!(a.state, fold(s.history(b"a", 0, usize::MAX).unwrap().into_iter().map(|h| h.event)));
        step += 1;
    }
    assert!(step >= 4, "only {step} steps failed: {:?}", faults.failed());
    // A writer open removes what the failed writes left.
    let leftovers = std::fs::read_dir(s.snapshot_dir(b"a"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".tmp"));
    assert_eq!(leftovers.count(), 0);
}

#[test]
fn hostile_keys_never_escape_the_snapshot_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open_log(tmp.path());
    let s = accounts::<1>(&log, tmp.path(), AggregateOptions::default());
    let long = vec![b'/'; 3000];
    let keys: Vec<&[u8]> = vec![b"../../escape", b"/", b"..", b".", b"a\0b", b"\xff\xfe", b"", &long];
    for key in &keys {
        deposits(&s, key, 2);
        let info = s.snapshot(key).unwrap();
        assert!(info.path.starts_with(tmp.path().join("snaps").join("account")), "{:?}", info.path);
    }
    for key in &keys {
        let a = s.load(key).unwrap();
        assert_eq!((a.replayed, a.state.balance), (0, 2), "{key:?}");
    }
    assert!(!tmp.path().join("escape").exists());
    let names: Vec<_> = std::fs::read_dir(tmp.path().join("snaps").join("account")).unwrap().collect();
    assert_eq!(names.len(), keys.len());
}

#[test]
fn aggregates_on_a_store_topic_append_through_the_topic() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store"), StoreOptions::default()).unwrap();
    let topic = store.topic("accounts").unwrap();
    let s: Accounts = AggregateStore::on_topic(&topic, tmp.path().join("snaps"), AggregateOptions::default()).unwrap();
    deposits(&s, b"a", 2);
    assert_eq!(topic.stream_version(b"a").unwrap(), 3);
    let events = topic.read_stream(b"a", 0, 10).unwrap();
    let decoded: AccountEvent = tidelog::decode_event(&tidelog::BincodeCodec, topic.dir(), &events[1].record).unwrap();
    assert_eq!(decoded, AccountEvent::Deposited { cents: 1 });
}

#[test]
fn state_as_of_starts_from_the_nearest_snapshot_at_or_before_the_point() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open_log(tmp.path());
    let opts = AggregateOptions::default().retention(SnapshotRetention::default().keep_latest(3));
    let s = accounts::<1>(&log, tmp.path(), opts);
    deposits(&s, b"a", 4);
    s.snapshot(b"a").unwrap(); // version 5
    deposits(&s, b"a", 5);
    s.snapshot(b"a").unwrap(); // version 10
    deposits(&s, b"a", 2);
    let h = s.history(b"a", 0, usize::MAX).unwrap();
    let at = |as_of| {
        let l = s.state_as_of(b"a", as_of).unwrap();
        (l.report.used.map(|u| u.records), l.replayed, l.version, l.state.balance)
    };
    use tidelog::AsOf;
    assert_eq!(at(AsOf::Version(7)), (Some(5), 2, 7, 6));
    assert_eq!(at(AsOf::Version(10)), (Some(10), 0, 10, 9));
    assert_eq!(at(AsOf::Version(99)), (Some(10), 2, 12, 11));
    assert_eq!(at(AsOf::Version(3)), (None, 3, 3, 2));
    assert_eq!(at(AsOf::BelowOffset(h[6].offset)), (Some(5), 1, 6, 5));
    assert_eq!(
        at(AsOf::Time(h[10].timestamp_us)).2,
        h.iter().filter(|e| e.timestamp_us <= h[10].timestamp_us).count() as u64
    );
    // Reads only: no snapshot is written by a query.
    assert_eq!(tidelog::SnapshotDir::open_read_only(s.snapshot_dir(b"a")).files().unwrap().len(), 2);
}

/// Every event of the stream "old" lies in the removed segments. The first version of the
/// check compared only the first event read with the version expected, so a stream with no
/// event left loaded as a fresh aggregate at version 0; the load now asks for the stream's
/// version when it reads nothing, and refuses.
#[test]
fn after_log_retention_a_snapshot_keeps_an_aggregate_loadable_and_new_aggregates_need_none() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path().join("log"), Options::default().segment_bytes(4 << 10)).unwrap();
    let s = accounts::<1>(&log, tmp.path(), AggregateOptions::default());
    deposits(&s, b"old", 60);
    deposits(&s, b"kept", 60);
    s.snapshot(b"kept").unwrap();
    let cut = log.next_offset();
    deposits(&s, b"new", 3);
    deposits(&s, b"kept", 2);
    assert!(log.remove_segments_before(cut).unwrap() > 0);
    assert!(log.first_offset() > 0);
    // Covered by its snapshot: loads as before, from the snapshot plus the tail.
    let kept = s.load(b"kept").unwrap();
    assert_eq!((kept.replayed, kept.version, kept.state.balance), (2, 63, 62));
    // Started after the cut: whole in the log, no snapshot needed.
    assert_eq!(s.load(b"new").unwrap().state.balance, 3);
    // Its events removed and no snapshot: refused, never a state missing events.
    let err = s.load(b"old").unwrap_err();
    assert!(
        matches!(err, Error::EventsRemoved { ref key, first_version, .. } if key == b"old" && first_version > 0),
        "{err:?}"
    );
}

//! The projection runner: checkpoints by count and by time, retention of snapshots, lag,
//! following a writer from a read-only handle, the background thread (read-your-writes,
//! queries, stop), and what happens when the projection's code fails.

mod projection_support;

use std::time::Duration;

use projection_support::{append_n, fresh, full_replay, log_options, open_log, snapshot_files, Tally};
use tidelog::{Error, Log, ProjectionRunner, Record, RunnerOptions, SnapshotRetention};

/// Long enough that a test never times out on a loaded machine; the waits return as soon as
/// the condition holds.
const PATIENCE: Duration = Duration::from_secs(30);

fn positions(dir: &std::path::Path) -> Vec<u64> {
    snapshot_files(dir).into_iter().map(|(p, _)| p).collect()
}

#[test]
fn checkpoints_every_n_records() {
    let (_tmp, log, snaps) = fresh();
    append_n(&log, 105, "a");
    let opts = RunnerOptions::default()
        .checkpoint_every_records(25)
        .checkpoint_interval(None)
        .retention(SnapshotRetention::default().keep_latest(100));
    let mut r = ProjectionRunner::open(log.clone(), Tally::new(), &snaps, opts).unwrap();
    assert_eq!(r.run_until_caught_up().unwrap(), 105);
    assert_eq!(positions(&snaps), vec![25, 50, 75, 100]);
    assert_eq!(r.snapshot_position(), Some(100));
    // Five more records are due at 125, not before.
    append_n(&log, 19, "b");
    r.run_until_caught_up().unwrap();
    assert_eq!(positions(&snaps), vec![25, 50, 75, 100]);
    append_n(&log, 1, "c");
    r.run_until_caught_up().unwrap();
    assert_eq!(positions(&snaps), vec![25, 50, 75, 100, 125]);
}

/// With an interval of zero, every call that applied something is "due"; a call that
/// applied nothing writes nothing.
#[test]
fn checkpoints_by_time_only_after_new_records() {
    let (_tmp, log, snaps) = fresh();
    let opts = RunnerOptions::default()
        .checkpoint_every_records(0)
        .checkpoint_interval(Some(Duration::ZERO))
        .retention(SnapshotRetention::default().keep_latest(100));
    let mut r = ProjectionRunner::open(log.clone(), Tally::new(), &snaps, opts).unwrap();
    for (i, n) in [3u64, 7, 2].into_iter().enumerate() {
        append_n(&log, n, &format!("batch{i}"));
        r.run_until_caught_up().unwrap();
    }
    r.run_until_caught_up().unwrap();
    assert_eq!(positions(&snaps), vec![3, 10, 12]);
}

#[test]
fn retention_keeps_the_latest_snapshots_and_spaced_older_ones() {
    let (_tmp, log, snaps) = fresh();
    append_n(&log, 1000, "a");
    let opts = RunnerOptions::default()
        .checkpoint_every_records(50)
        .checkpoint_interval(None)
        .retention(SnapshotRetention::default().keep_latest(2).spaced(300, 2));
    let mut r = ProjectionRunner::open(log.clone(), Tally::new(), &snaps, opts).unwrap();
    r.run_until_caught_up().unwrap();
    // The latest two are 950 and 1000. Of the older ones, stretches of 300 offsets: the
    // first snapshot of [600, 900) is 600 and of [900, 1200) is 900; the older stretches
    // ([0, 300) and [300, 600)) are beyond the two kept, so 50 and 300 go too.
    assert_eq!(positions(&snaps), vec![600, 900, 950, 1000]);
    let dir = tidelog::SnapshotDir::open_read_only(&snaps);
    let as_of = tidelog::state_as_of(&log, &Tally::new(), &dir, 700).unwrap();
    assert_eq!(as_of.report.used.map(|s| s.position), Some(600));
    assert_eq!(as_of.replayed, 100);
}

#[test]
fn lag_is_what_the_log_holds_beyond_the_position() {
    let (_tmp, log, snaps) = fresh();
    let mut r = ProjectionRunner::open(log.clone(), Tally::new(), &snaps, RunnerOptions::default()).unwrap();
    assert_eq!((r.position(), r.lag()), (0, 0));
    append_n(&log, 10, "a");
    assert_eq!((r.position(), r.lag()), (0, 10));
    r.run_until_caught_up().unwrap();
    assert_eq!((r.position(), r.lag()), (10, 0));
    append_n(&log, 4, "b");
    assert_eq!(r.lag(), 4);
}

#[test]
fn a_read_only_follower_sees_appends_of_another_handle() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let writer = open_log(&dir);
    append_n(&writer, 30, "a");
    writer.sync().unwrap();
    let follower = Log::open_read_only(&dir, log_options()).unwrap();
    let snaps = tmp.path().join("snaps");
    let mut r = ProjectionRunner::open(follower.clone(), Tally::new(), &snaps, RunnerOptions::default()).unwrap();
    assert_eq!(r.run_until_caught_up().unwrap(), 30);
    append_n(&writer, 20, "b");
    assert_eq!(r.run_until_caught_up().unwrap(), 20, "catch-up refreshes the follower");
    assert_eq!(r.state(), &full_replay(&writer));
    r.checkpoint().unwrap();
    drop(r);

    // In the background, the follower wakes for new records and serves them.
    let r = ProjectionRunner::open(follower, Tally::new(), &snaps, RunnerOptions::default()).unwrap();
    assert_eq!(r.position(), 50);
    let h = r.spawn().unwrap();
    append_n(&writer, 25, "c");
    assert!(h.wait_for_position(writer.next_offset(), PATIENCE).unwrap());
    let q = h.query(|s| s.clone()).unwrap();
    assert_eq!(q.position, 75);
    assert_eq!(q.value, full_replay(&writer));
    h.stop().unwrap();
}

#[test]
fn a_background_runner_reads_your_writes_and_stops_with_a_final_checkpoint() {
    let (_tmp, log, snaps) = fresh();
    let opts = RunnerOptions::default().checkpoint_every_records(0).checkpoint_interval(None);
    let h = ProjectionRunner::open(log.clone(), Tally::new(), &snaps, opts).unwrap().spawn().unwrap();
    for i in 0..50u64 {
        let off = log.append(Record::new(format!("p{i}").as_bytes()).key(b"k")).unwrap();
        assert!(h.wait_for_position(off + 1, PATIENCE).unwrap());
        let q = h.query(|s| s.per_key.get(&b"k"[..]).map(|e| e.0)).unwrap();
        assert!(q.position > off);
        assert_eq!(q.value, Some(q.position), "every record up to the position is counted");
    }
    assert_eq!(h.lag(), 0);
    assert_eq!(h.snapshot_position(), None);
    let r = h.stop().unwrap();
    assert_eq!(r.position(), 50);
    assert_eq!(r.snapshot_position(), Some(50), "stopping writes a final snapshot");
    assert_eq!(positions(&snaps), vec![50]);
    assert_eq!(r.state(), &full_replay(&log));
}

#[test]
fn waiting_for_a_position_not_reached_times_out() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open_log(&tmp.path().join("log"));
    append_n(&log, 3, "a");
    let h = ProjectionRunner::open(log.clone(), Tally::new(), tmp.path().join("s"), RunnerOptions::default())
        .unwrap()
        .spawn()
        .unwrap();
    assert!(h.wait_for_position(3, PATIENCE).unwrap());
    assert!(!h.wait_for_position(4, Duration::from_millis(10)).unwrap());
}

#[test]
fn a_failing_apply_stops_the_runner_with_the_offset_and_serves_nothing() {
    let (_tmp, log, snaps) = fresh();
    append_n(&log, 10, "a");
    let mut t = Tally::new();
    t.fail_at = Some(7);

    let mut r = ProjectionRunner::open(log.clone(), t.clone(), &snaps, RunnerOptions::default()).unwrap();
    match r.run_until_caught_up() {
        Err(Error::ProjectionFailed { projection, offset: 7, source }) => {
            assert_eq!(projection, "tally");
            assert_eq!(source.to_string(), "cannot apply offset 7");
        }
        other => panic!("expected ProjectionFailed, got {other:?}"),
    }
    assert_eq!(r.position(), 7);
    assert!(matches!(r.checkpoint(), Err(Error::ProjectionStopped { position: 7, cause: Some(_), .. })));
    assert!(matches!(r.run_until_caught_up(), Err(Error::ProjectionStopped { .. })));
    assert!(positions(&snaps).is_empty(), "a failed state is never snapshotted");
    drop(r);

    let h = ProjectionRunner::open(log.clone(), t, &snaps, RunnerOptions::default()).unwrap().spawn().unwrap();
    match h.wait_for_position(10, PATIENCE) {
        Err(Error::ProjectionStopped { position: 7, cause: Some(c), .. }) => assert!(c.contains("offset 7"), "{c}"),
        other => panic!("expected ProjectionStopped, got {other:?}"),
    }
    assert!(matches!(h.query(|_| ()), Err(Error::ProjectionStopped { .. })));
    assert!(matches!(h.stop(), Err(Error::ProjectionFailed { offset: 7, .. })));
    assert!(positions(&snaps).is_empty());
}

#[test]
fn one_runner_per_snapshot_directory() {
    let (_tmp, log, snaps) = fresh();
    let _r = ProjectionRunner::open(log.clone(), Tally::new(), &snaps, RunnerOptions::default()).unwrap();
    assert!(matches!(
        ProjectionRunner::open(log.clone(), Tally::new(), &snaps, RunnerOptions::default()),
        Err(Error::Locked { .. })
    ));
}

#[test]
fn bad_names_and_options_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let log = open_log(&tmp.path().join("log"));
    let mut t = Tally::new();
    t.name = String::new();
    assert!(matches!(
        ProjectionRunner::open(log.clone(), t.clone(), tmp.path().join("a"), RunnerOptions::default()),
        Err(Error::InvalidName { kind: "projection", .. })
    ));
    t.name = "x".repeat(256);
    assert!(matches!(
        ProjectionRunner::open(log.clone(), t, tmp.path().join("b"), RunnerOptions::default()),
        Err(Error::InvalidName { .. })
    ));
    let opts = RunnerOptions::default().retention(SnapshotRetention::default().keep_latest(0));
    assert!(matches!(
        ProjectionRunner::open(log.clone(), Tally::new(), tmp.path().join("c"), opts),
        Err(Error::InvalidOptions(_))
    ));
}

/// A closed log answers `wait_for` at once; the background runner must neither fail nor
/// lose its final checkpoint because of it.
#[test]
fn a_background_runner_over_a_closed_log_stops_cleanly() {
    let (_tmp, log, snaps) = fresh();
    append_n(&log, 40, "a");
    let opts = RunnerOptions::default().checkpoint_every_records(0).checkpoint_interval(None);
    let h = ProjectionRunner::open(log.clone(), Tally::new(), &snaps, opts).unwrap().spawn().unwrap();
    assert!(h.wait_for_position(40, PATIENCE).unwrap());
    log.clone().close().unwrap();
    let q = h.query(|s| s.clone()).unwrap();
    assert_eq!((q.position, &q.value), (40, &full_replay(&log)));
    let r = h.stop().unwrap();
    assert_eq!(r.snapshot_position(), Some(40));
}

/// Queries run between the background runner's batches while another thread appends: each
/// answer is a whole state, exactly the records below the position it reports.
#[test]
fn queries_during_appends_see_whole_states_at_their_position() {
    let (_tmp, log, snaps) = fresh();
    let opts = RunnerOptions::default().checkpoint_every_records(300).checkpoint_interval(None);
    let h = ProjectionRunner::open(log.clone(), Tally::new(), &snaps, opts).unwrap().spawn().unwrap();
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            for i in 0..200 {
                append_n(&log, 10, &format!("w{i}"));
            }
        })
    };
    let mut answers = 0;
    while !writer.is_finished() || h.position() < log.next_offset() {
        let q = h.query(|s| s.per_key.values().map(|e| e.0).sum::<u64>()).unwrap();
        assert_eq!(q.value, q.position, "records counted vs the position reported");
        answers += 1;
        if answers % 64 == 0 && q.position < 2000 {
            // The writer will get there: waiting must end with the position reached.
            assert!(h.wait_for_position(q.position + 1, PATIENCE).unwrap());
        }
    }
    writer.join().unwrap();
    assert!(h.wait_for_position(2000, PATIENCE).unwrap());
    let q = h.query(|s| s.clone()).unwrap();
    assert_eq!((q.position, q.value), (2000, full_replay(&log)));
    let r = h.stop().unwrap();
    assert_eq!(r.snapshot_position(), Some(2000));
}

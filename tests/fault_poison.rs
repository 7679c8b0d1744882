//! A failed flush poisons the log: every later write is refused until the log is reopened,
//! and the reopen trusts nothing past the last flush that succeeded.
//!
//! The failures are injected on the storage seam (`tests/common/faults.rs`): the failed call
//! is not made, so the unflushed bytes stay in the page cache, exactly what a device that
//! failed its writeback leaves behind.

mod common;

use std::path::Path;

use common::faults::Faults;
use tidelog::testing::IoOp;
use tidelog::{Durability, Error, Log, Options, Record};

fn payload(i: u64) -> Vec<u8> {
    format!("record {i} ").repeat(1 + (i % 7) as usize).into_bytes()
}

fn append_n(log: &Log, from: u64, n: u64) {
    for i in from..from + n {
        assert_eq!(log.append(Record::new(&payload(i))).unwrap(), i);
    }
}

fn assert_records(log: &Log, range: std::ops::Range<u64>) {
    for i in range {
        assert_eq!(log.read(i).unwrap().payload, payload(i), "record {i}");
    }
}

fn opts(durability: Durability) -> Options {
    Options::default().segment_bytes(64 << 10).index_interval_bytes(512).durability(durability)
}

#[test]
fn a_failed_flush_poisons_the_log_and_every_later_append_is_refused_until_reopen() {
    let tmp = common::scratch_dir();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir, opts(Durability::Always)).unwrap();
    let (faults, _hook) = Faults::on(&dir);
    append_n(&log, 0, 10);

    faults.fail_nth(0, Some(IoOp::Msync));
    let err = log.append(Record::new(b"never acknowledged")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "the failed flush itself reports the I/O error: {err:?}");
    assert_eq!(faults.failed().len(), 1);
    let cause = log.poisoned_by().expect("the log says what poisoned it");
    assert!(cause.contains("00000000000000000000.log"), "the cause names the file: {cause}");

    // The device works again: the log still refuses, it cannot know what reached the disk.
    for _ in 0..3 {
        assert!(matches!(log.append(Record::new(b"x")), Err(Error::Poisoned)));
        assert!(matches!(log.append_batch(&[Record::new(b"y"), Record::new(b"z")]), Err(Error::Poisoned)));
    }
    assert!(matches!(log.sync(), Err(Error::Poisoned)));
    assert!(matches!(log.close(), Err(Error::Poisoned)));

    let log = Log::open(&dir, opts(Durability::Always)).unwrap();
    assert_eq!(log.next_offset(), 10, "the record whose flush failed was never acknowledged");
    assert_records(&log, 0..10);
    append_n(&log, 10, 5);
    assert_records(&log, 0..15);
    assert!(log.poisoned_by().is_none());
    log.close().unwrap();
}

/// The story: on ext4 over a loop device whose writes failed with EIO, the flush of record
/// 684 failed and the log poisoned itself. Once the device worked again, a reopen in the same
/// boot validated the page cache, which still held the bytes whose writeback had failed, and
/// opened with `next_offset` 685. Records 685 to 786 were then appended and acknowledged;
/// after a remount, record 684 was garbage on disk and every record after it read as
/// corruption. A reopen after poisoning now cuts the log back to the last flush that
/// succeeded, and writes that cut to the disk before it accepts appends.
#[test]
fn reopen_after_a_failed_flush_trusts_nothing_past_the_last_durable_point() {
    let tmp = common::scratch_dir();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir, opts(Durability::None)).unwrap();
    let (faults, _hook) = Faults::on(&dir);
    append_n(&log, 0, 684);
    log.sync().unwrap();
    let durable = log.next_offset();
    // Records appended after the last successful flush: in the page cache, never flushed.
    append_n(&log, 684, 3);

    faults.fail_nth(0, Some(IoOp::Msync));
    assert!(matches!(log.sync(), Err(Error::Io { .. })));
    assert!(matches!(log.append(Record::new(b"x")), Err(Error::Poisoned)));
    assert!(matches!(log.close(), Err(Error::Poisoned)));
    assert!(dir.join("poisoned").exists(), "the durable point is also left for other processes");

    let log = Log::open(&dir, opts(Durability::None)).unwrap();
    assert_eq!(log.next_offset(), durable);
    assert!(matches!(log.read(durable), Err(Error::OffsetOutOfRange { .. })), "nothing past the durable point");
    assert!(!dir.join("poisoned").exists(), "the marker is cleared once the cut is durable");
    assert_records(&log, 0..durable);
    // New appends take the offsets after the durable point, with their own content.
    for i in durable..durable + 100 {
        assert_eq!(log.append(Record::new(format!("new {i}").as_bytes())).unwrap(), i);
    }
    log.sync().unwrap();
    for i in durable..durable + 100 {
        assert_eq!(log.read(i).unwrap().payload, format!("new {i}").into_bytes());
    }
    log.close().unwrap();
    let log = Log::open(&dir, opts(Durability::None)).unwrap();
    assert_eq!(log.next_offset(), durable + 100);
    assert!(log.open_report().clean_shutdown);
}

/// Poison after a roll, while the full segment waits for its deferred seal: the durable point
/// lies in the full segment, and the new segment holds only records never flushed.
#[test]
fn reopen_after_a_failed_seal_removes_the_segments_past_the_durable_point() {
    let tmp = common::scratch_dir();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir, opts(Durability::None)).unwrap();
    let (faults, _hook) = Faults::on(&dir);
    append_n(&log, 0, 100);
    log.sync().unwrap();
    let durable = log.next_offset();
    let mut i = durable;
    while log.segments().len() < 2 {
        append_n(&log, i, 1);
        i += 1;
    }
    append_n(&log, i, 10);
    faults.fail_nth(0, Some(IoOp::Msync));
    assert!(log.sync().is_err());
    drop(log);
    assert_eq!(common::segment_files(&dir).len(), 2);

    let log = Log::open(&dir, opts(Durability::None)).unwrap();
    assert_eq!(log.next_offset(), durable);
    assert_records(&log, 0..durable);
    assert_eq!(common::segment_files(&dir).len(), 1, "the segment past the durable point is gone");
    append_n(&log, durable, 500);
    assert_records(&log, 0..durable + 500);
    log.close().unwrap();
}

/// Another process (no memory of the poisoning) finds the durable point in the marker file.
#[test]
fn the_marker_file_cuts_the_log_back_for_a_reopen_in_another_process() {
    let tmp = common::scratch_dir();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir, opts(Durability::None)).unwrap();
    let (faults, _hook) = Faults::on(&dir);
    append_n(&log, 0, 50);
    log.sync().unwrap();
    append_n(&log, 50, 5);
    faults.fail_nth(0, Some(IoOp::Msync));
    assert!(log.sync().is_err());
    drop(log);
    let out = common::child_test("child_reopens_the_log").env(CHILD_DIR, &dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("next_offset=50"), "child saw: {stdout}");
}

const CHILD_DIR: &str = "TIDELOG_POISON_CHILD_DIR";

/// Run by the test above in a child process.
#[test]
#[ignore = "run as a child process by another test"]
fn child_reopens_the_log() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else { return };
    let log = Log::open(Path::new(&dir), opts(Durability::None)).unwrap();
    println!("next_offset={}", log.next_offset());
}

/// The cut back to the durable point is made of steps that can each be repeated: a failure at
/// any call of the reopen leaves a log that the next reopen cuts back to the same point.
#[test]
fn a_failure_at_any_step_of_the_reopen_after_poisoning_is_finished_by_the_next_reopen() {
    let poisoned_log = |dir: &Path| -> u64 {
        let log = Log::open(dir, opts(Durability::None)).unwrap();
        let (faults, _hook) = Faults::on(dir);
        append_n(&log, 0, 200);
        log.sync().unwrap();
        let durable = log.next_offset();
        let mut i = durable;
        while log.segments().len() < 2 {
            append_n(&log, i, 1);
            i += 1;
        }
        append_n(&log, i, 10);
        faults.fail_nth(0, Some(IoOp::Msync));
        assert!(log.sync().is_err());
        drop(log);
        durable
    };
    // The calls a reopen (and the close of what it opened) makes.
    let tmp = common::scratch_dir();
    let dir = tmp.path().join("log");
    poisoned_log(&dir);
    let (faults, hook) = Faults::on(&dir);
    drop(Log::open(&dir, opts(Durability::None)).unwrap());
    let calls = faults.trace();
    drop(hook);
    assert!(calls.iter().any(|c| c.op == IoOp::Remove && c.path.ends_with("poisoned")), "{calls:?}");

    for (k, call) in calls.iter().enumerate() {
        let tmp = common::scratch_dir();
        let dir = tmp.path().join("log");
        let durable = poisoned_log(&dir);
        let (faults, hook) = Faults::on(&dir);
        faults.fail_nth(k, None);
        // The open, and the close of what it opened (if it did).
        drop(Log::open(&dir, opts(Durability::None)));
        assert_eq!(faults.failed().len(), 1, "call {k} ({call}) was made");
        drop(hook);
        let log = Log::open(&dir, opts(Durability::None)).unwrap();
        assert_eq!(log.next_offset(), durable, "call {k} ({call}) failed");
        assert_records(&log, 0..durable);
        append_n(&log, durable, 300);
        log.close().unwrap();
    }
}

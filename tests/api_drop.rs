//! Dropping a log without `close()`: the last handle to go (clones, cursors and iterators
//! hold the log too) closes it, best effort. What a drop does, and what it loses when its
//! final flush fails and nobody sees the error.

mod common;

use common::faults::Faults;
use common::powerloss::{PowerLoss, Survival};
use common::Rng;
use tidelog::testing::IoOp;
use tidelog::{Durability, Error, Log, Options};

fn opts(durability: Durability) -> Options {
    // Small segments: the appends roll, and with `None` a full segment waits for its seal.
    Options::default().segment_bytes(16 << 10).index_interval_bytes(512).durability(durability)
}

fn payload(i: u64) -> Vec<u8> {
    format!("record {i} ").repeat(1 + (i % 13) as usize).into_bytes()
}

fn assert_records(log: &Log, n: u64) {
    assert_eq!((log.first_offset(), log.next_offset()), (0, n));
    for i in 0..n {
        assert_eq!(log.read(i).unwrap().payload(), &payload(i)[..], "record {i}");
    }
}

#[test]
fn a_log_dropped_without_close_reopens_clean_with_every_record() {
    for mode in [Durability::None, Durability::Interval(std::time::Duration::from_secs(3600)), Durability::Always] {
        let tmp = common::scratch_dir();
        let dir = tmp.path().join("log");
        let log = Log::open(&dir, opts(mode)).unwrap();
        for i in 0..1000 {
            log.append(payload(i)).unwrap();
        }
        assert!(log.segments().len() > 3, "{mode:?}: the appends rolled");
        drop(log);

        let log = Log::open(&dir, opts(mode)).unwrap();
        let report = log.open_report();
        assert!(report.clean_shutdown, "{mode:?}: {report:?}");
        assert_eq!(report.scanned_bytes, 0, "{mode:?}: a clean open scans nothing");
        assert_records(&log, 1000);
        assert!(log.verify(|_| {}).is_intact(), "{mode:?}");
    }
}

/// The drop flushes like `close`: a power cut right after it loses nothing, even in `None`
/// mode where no append waited for the disk.
#[test]
fn a_dropped_log_has_every_record_on_stable_storage() {
    let tmp = common::scratch_dir();
    let dir = tmp.path().join("log");
    let (sim, _hook) = PowerLoss::on(&dir);
    let log = Log::open(&dir, opts(Durability::None)).unwrap();
    for i in 0..1000 {
        log.append(payload(i)).unwrap();
    }
    drop(log);
    let mut rng = Rng::new(7);
    for trial in 0..4 {
        let image = tmp.path().join(format!("cut-{trial}"));
        let survival = if trial % 2 == 0 { Survival::InOrder } else { Survival::AnySubset };
        sim.crash_image(&image, &mut rng, survival);
        let log = Log::open(&image, opts(Durability::None)).unwrap();
        assert!(log.open_report().clean_shutdown, "trial {trial}");
        assert_records(&log, 1000);
    }
}

/// The log closes when its last handle goes: a cursor keeps it open (and the directory
/// locked), so dropping the `Log` alone does not close it.
#[test]
fn a_cursor_keeps_a_dropped_log_open_until_it_goes_too() {
    let tmp = common::scratch_dir();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir, opts(Durability::None)).unwrap();
    for i in 0..10 {
        log.append(payload(i)).unwrap();
    }
    let mut cursor = log.cursor_from_start();
    drop(log);
    assert!(matches!(Log::open(&dir, opts(Durability::None)), Err(Error::Locked { .. })));
    assert_eq!(cursor.fold(0, |n, _| n + 1).unwrap(), 10);
    drop(cursor);
    let log = Log::open(&dir, opts(Durability::None)).unwrap();
    assert!(log.open_report().clean_shutdown);
    assert_records(&log, 10);
}

/// What is lost when the final flush fails and nobody sees the error (a drop cannot return
/// one): the drop poisons the log as `close` would, and the next open cuts it back to the
/// last flush that succeeded. Records appended since were never acknowledged as durable
/// (in `None` mode, those after the last `sync`); they are gone, the rest is intact.
#[test]
fn a_drop_whose_final_flush_fails_loses_only_what_was_never_flushed() {
    let tmp = common::scratch_dir();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir, opts(Durability::None)).unwrap();
    let (faults, _hook) = Faults::on(&dir);
    for i in 0..50 {
        log.append(payload(i)).unwrap();
    }
    log.sync().unwrap();
    for i in 50..60 {
        log.append(payload(i)).unwrap();
    }
    faults.break_op(IoOp::Msync);
    drop(log);
    assert!(!faults.failed().is_empty(), "the drop's flush was tried and failed");
    faults.heal();

    let log = Log::open(&dir, opts(Durability::None)).unwrap();
    assert!(!log.open_report().clean_shutdown);
    assert_records(&log, 50);
    assert_eq!(log.append(payload(50)).unwrap(), 50);
    log.close().unwrap();
}

//! Restoring a projection: the newest usable snapshot plus the records after it gives the
//! state a full replay gives; unusable snapshots (damaged, truncated, from another
//! definition, another projection or another log) are skipped with a reason and an older
//! one, or the log, is used instead; records the state needs but the log lost are an error.

mod projection_support;

use std::fs;

use projection_support::{
    append_n, checkpoint_all, fresh, full_replay, manual, open_log, replay_below, restore_and_check, snapshot_files,
    Tally,
};
use tidelog::{state_as_of, CorruptionKind, Error, Location, ProjectionRunner, SkipReason, SnapshotDir};

#[test]
fn restore_then_replay_equals_full_replay() {
    let (_tmp, log, snaps) = fresh();
    append_n(&log, 300, "a");
    let mut r = ProjectionRunner::open(log.clone(), Tally::new(), &snaps, manual()).unwrap();
    assert_eq!(r.run_until_caught_up().unwrap(), 300);
    let info = r.checkpoint().unwrap();
    assert_eq!((info.position, info.records, info.last_offset), (300, 300, Some(299)));
    drop(r);
    append_n(&log, 200, "b");

    let mut r = ProjectionRunner::open(log.clone(), Tally::new(), &snaps, manual()).unwrap();
    assert_eq!(r.restore_report().used.as_ref().map(|s| s.position), Some(300));
    assert!(r.restore_report().skipped.is_empty());
    assert_eq!(r.position(), 300);
    assert_eq!(r.run_until_caught_up().unwrap(), 200, "only the records after the snapshot are replayed");
    assert_eq!(r.position(), 500);
    assert_eq!(r.records(), 500);
    assert_eq!(r.state(), &full_replay(&log));
}

#[test]
fn fingerprint_change_ignores_old_snapshots_and_rebuilds() {
    let (_tmp, log, snaps) = fresh();
    append_n(&log, 100, "a");
    checkpoint_all(&log, Tally::new().version(1), &snaps);

    let mut new = ProjectionRunner::open(log.clone(), Tally::new().version(2), &snaps, manual()).unwrap();
    let report = new.restore_report();
    assert!(report.used.is_none(), "a snapshot of another definition must never be used");
    assert_eq!(report.skipped.len(), 1);
    assert!(matches!(report.skipped[0].reason, SkipReason::FingerprintMismatch { found: 1, expected: 2 }));
    assert_eq!(new.position(), 0);
    assert_eq!(new.run_until_caught_up().unwrap(), 100, "rebuilt from the log");
    assert_eq!(new.state(), &full_replay(&log));
    // The rebuilt state's snapshot replaces the foreign one.
    new.checkpoint().unwrap();
    drop(new);
    let again = ProjectionRunner::open(log.clone(), Tally::new().version(2), &snaps, manual()).unwrap();
    assert_eq!(again.restore_report().used.as_ref().map(|s| s.fingerprint), Some(2));
}

#[test]
fn a_snapshot_of_another_projection_is_not_used() {
    let (_tmp, log, snaps) = fresh();
    append_n(&log, 20, "a");
    let mut other = Tally::new();
    other.name = "other".into();
    checkpoint_all(&log, other, &snaps);
    let r = restore_and_check(&log, &snaps);
    assert!(r.restore_report().used.is_none());
    assert!(matches!(&r.restore_report().skipped[0].reason, SkipReason::NameMismatch { found } if found == "other"));
}

/// Build snapshots at 100 and 200 over a log of 300 records; returns the paths.
fn two_snapshots(log: &tidelog::Log, snaps: &std::path::Path) {
    append_n(log, 100, "a");
    let mut r = ProjectionRunner::open(log.clone(), Tally::new(), snaps, manual()).unwrap();
    r.run_until_caught_up().unwrap();
    r.checkpoint().unwrap();
    append_n(log, 100, "b");
    r.run_until_caught_up().unwrap();
    r.checkpoint().unwrap();
    append_n(log, 100, "c");
    assert_eq!(snapshot_files(snaps).iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![100, 200]);
}

#[test]
fn a_corrupt_newest_snapshot_falls_back_to_the_older_one() {
    let (_tmp, log, snaps) = fresh();
    two_snapshots(&log, &snaps);
    let newest = snapshot_files(&snaps)[1].1.clone();
    let mut bytes = fs::read(&newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    fs::write(&newest, &bytes).unwrap();

    let r = restore_and_check(&log, &snaps);
    let report = r.restore_report();
    assert_eq!(report.used.as_ref().map(|s| s.position), Some(100));
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].path, newest, "the report names the damaged file");
    assert!(matches!(
        &report.skipped[0].reason,
        SkipReason::Invalid(Error::Corruption { kind: CorruptionKind::ChecksumMismatch { .. }, location: Location::File { path: file, .. } }) if *file == newest
    ));
}

#[test]
fn a_truncated_newest_snapshot_falls_back_to_the_older_one() {
    let (_tmp, log, snaps) = fresh();
    two_snapshots(&log, &snaps);
    let newest = snapshot_files(&snaps)[1].1.clone();
    let len = fs::metadata(&newest).unwrap().len();
    for keep in [0, 10, 64, len - 1] {
        fs::OpenOptions::new().write(true).open(&newest).unwrap().set_len(keep).unwrap();
        let r = restore_and_check(&log, &snaps);
        assert_eq!(r.restore_report().used.as_ref().map(|s| s.position), Some(100), "truncated to {keep}");
    }
}

/// Every single-bit flip anywhere in a snapshot file (header, name, payload or checksum)
/// makes restore pass it over: the state always equals a full replay.
#[test]
fn a_damaged_snapshot_at_every_byte_is_never_loaded() {
    let (_tmp, log, snaps) = fresh();
    append_n(&log, 12, "a");
    let path = checkpoint_all(&log, Tally::new(), &snaps).path;
    append_n(&log, 3, "b");
    let want = full_replay(&log);
    let good = fs::read(&path).unwrap();
    assert!(good.len() < 1024, "the sweep is over a small snapshot ({} bytes)", good.len());
    for i in 0..good.len() {
        for bit in [0, 3, 7] {
            let mut bad = good.clone();
            bad[i] ^= 1 << bit;
            fs::write(&path, &bad).unwrap();
            let mut r = ProjectionRunner::open(log.clone(), Tally::new(), &snaps, manual()).unwrap();
            assert!(r.restore_report().used.is_none(), "flip of bit {bit} at byte {i} was loaded");
            assert_eq!(r.restore_report().skipped.len(), 1);
            r.run_until_caught_up().unwrap();
            assert_eq!(r.state(), &want, "flip of bit {bit} at byte {i}");
        }
    }
}

#[test]
fn garbage_and_huge_length_fields_are_skipped_with_typed_errors() {
    let (_tmp, log, snaps) = fresh();
    append_n(&log, 5, "a");
    let dir = SnapshotDir::open(&snaps).unwrap();
    fs::write(dir.path_for(1), "not a snapshot at all. ".repeat(5)).unwrap();
    let mut huge = b"TDLGSNAP".to_vec();
    huge.extend_from_slice(&1u32.to_le_bytes());
    huge.extend_from_slice(&5u32.to_le_bytes());
    huge.extend_from_slice(&[0xff; 48]);
    huge.extend_from_slice(&[0; 16]);
    fs::write(dir.path_for(2), &huge).unwrap();
    // A sparse 64 GiB file of zeros: refused after reading its first 64 bytes, never read
    // (or allocated) whole.
    fs::File::create(dir.path_for(3)).unwrap().set_len(64 << 30).unwrap();
    drop(dir);
    let r = ProjectionRunner::open(log.clone(), Tally::new(), &snaps, manual()).unwrap();
    let skipped = &r.restore_report().skipped;
    assert_eq!(skipped.len(), 3);
    assert!(matches!(skipped[0].reason, SkipReason::Invalid(Error::Corruption { kind: CorruptionKind::BadMagic, .. })));
    assert!(matches!(
        skipped[1].reason,
        SkipReason::Invalid(Error::Corruption { kind: CorruptionKind::BadLength { .. }, .. })
    ));
    assert!(matches!(skipped[2].reason, SkipReason::Invalid(Error::Corruption { kind: CorruptionKind::BadMagic, .. })));
}

#[test]
fn a_payload_the_projection_rejects_is_skipped() {
    struct Picky(Tally);
    impl tidelog::Projection for Picky {
        type State = projection_support::TallyState;
        fn name(&self) -> &str {
            self.0.name()
        }
        fn fingerprint(&self) -> u64 {
            self.0.fingerprint()
        }
        fn initial(&self) -> Self::State {
            self.0.initial()
        }
        fn apply(&self, s: &mut Self::State, r: &tidelog::RecordView<'_>) -> Result<(), tidelog::BoxError> {
            self.0.apply(s, r)
        }
        fn snapshot(&self, s: &Self::State, out: &mut Vec<u8>) -> Result<(), tidelog::BoxError> {
            self.0.snapshot(s, out)
        }
        fn restore(&self, _: &[u8]) -> Result<Self::State, tidelog::BoxError> {
            Err("schema changed".into())
        }
    }
    let (_tmp, log, snaps) = fresh();
    two_snapshots(&log, &snaps);
    let mut r = ProjectionRunner::open(log.clone(), Picky(Tally::new()), &snaps, manual()).unwrap();
    assert!(r.restore_report().used.is_none());
    assert_eq!(r.restore_report().skipped.len(), 2);
    assert!(matches!(&r.restore_report().skipped[0].reason, SkipReason::Rejected(m) if m == "schema changed"));
    r.run_until_caught_up().unwrap();
    assert_eq!(r.into_state(), full_replay(&log));
}

/// A snapshot made over another log (here: one whose records were longer) is recognised by
/// its last record's timestamp, or by covering records the log does not have.
#[test]
fn a_snapshot_of_another_log_is_not_used() {
    let tmp = tempfile::tempdir().unwrap();
    let snaps = tmp.path().join("snaps");
    {
        let first = open_log(&tmp.path().join("first"));
        append_n(&first, 50, "a");
        checkpoint_all(&first, Tally::new(), &snaps);
    }
    let short = open_log(&tmp.path().join("short"));
    append_n(&short, 20, "z");
    let r = restore_and_check(&short, &snaps);
    assert!(matches!(r.restore_report().skipped[0].reason, SkipReason::AheadOfLog { log_next_offset: 20 }));
    drop(r);

    std::thread::sleep(std::time::Duration::from_millis(2)); // distinct timestamps
    let long = open_log(&tmp.path().join("long"));
    append_n(&long, 80, "y");
    let r = restore_and_check(&long, &snaps);
    assert!(r.restore_report().used.is_none());
    assert!(matches!(r.restore_report().skipped[0].reason, SkipReason::LogMismatch { offset: 49, .. }));
}

#[test]
fn records_removed_past_the_snapshot_are_a_typed_error() {
    let (tmp, log, snaps) = fresh();
    append_n(&log, 50, "a");
    checkpoint_all(&log, Tally::new(), &snaps);
    append_n(&log, 2000, "b");
    assert!(log.remove_segments_before(1500).unwrap() > 0);
    let first = log.first_offset();
    assert!(first > 50);
    match ProjectionRunner::open(log.clone(), Tally::new(), &snaps, manual()) {
        Err(Error::RecordsRemoved { projection, position: 50, first_offset }) => {
            assert_eq!(projection, "tally");
            assert_eq!(first_offset, first);
        }
        other => panic!("expected RecordsRemoved, got {other:?}"),
    }
    // Without any snapshot, the records from offset 0 are needed.
    let empty = tmp.path().join("empty");
    assert!(matches!(
        ProjectionRunner::open(log.clone(), Tally::new(), &empty, manual()),
        Err(Error::RecordsRemoved { position: 0, .. })
    ));
}

#[test]
fn state_as_of_any_offset_equals_a_replay_of_the_records_below_it() {
    let (_tmp, log, snaps) = fresh();
    two_snapshots(&log, &snaps);
    let dir = SnapshotDir::open_read_only(&snaps);
    for offset in [0, 1, 99, 100, 101, 150, 199, 200, 201, 299, 300] {
        let as_of = state_as_of(&log, &Tally::new(), &dir, offset).unwrap();
        assert_eq!(as_of.state, replay_below(&log, offset), "as of {offset}");
        assert_eq!(as_of.records, offset);
        let from = if offset >= 200 {
            200
        } else if offset >= 100 {
            100
        } else {
            0
        };
        assert_eq!(as_of.report.used.as_ref().map_or(0, |s| s.position), from, "as of {offset}");
        assert_eq!(as_of.replayed, offset - from);
    }
    assert!(matches!(state_as_of(&log, &Tally::new(), &dir, 301), Err(Error::OffsetOutOfRange { .. })));
}

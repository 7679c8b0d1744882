//! Randomized histories: a snapshot taken at any offset, plus the records after it, gives the
//! state a full replay gives; and the state as of any offset (from the nearest snapshot at or
//! before it) equals a brute-force replay of the records below it.

mod common;
mod projection_support;

use proptest::prelude::*;

use common::scratch_dir;
use projection_support::{full_replay, manual, open_log, replay_below, Tally};
use tidelog::{state_as_of, Log, ProjectionRunner, Record, SnapshotDir, SnapshotRetention};

/// One record: a key out of four (or none) and a payload.
fn record() -> impl Strategy<Value = (Option<u8>, Vec<u8>)> {
    (proptest::option::of(0u8..4), proptest::collection::vec(any::<u8>(), 0..40))
}

/// Append `records` in batches of one to three.
fn append_all(log: &Log, records: &[(Option<u8>, Vec<u8>)]) {
    for chunk in records.chunks(3) {
        let keys: Vec<Option<[u8; 1]>> = chunk.iter().map(|(k, _)| k.map(|k| [k])).collect();
        let batch: Vec<Record<'_>> = chunk
            .iter()
            .zip(&keys)
            .map(|((_, p), k)| match k {
                Some(k) => Record::new(p).key(k),
                None => Record::new(p),
            })
            .collect();
        log.append_batch(&batch).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn snapshot_and_replay_at_any_offset_equals_a_full_replay(
        records in proptest::collection::vec(record(), 0..120),
        cut in 0.0f64..=1.0,
    ) {
        let k = ((records.len() as f64) * cut) as usize;
        let tmp = scratch_dir();
        let log = open_log(&tmp.path().join("log"));
        let snaps = tmp.path().join("snaps");
        append_all(&log, &records[..k]);
        let mut r = ProjectionRunner::open(log.clone(), Tally::new(), &snaps, manual()).unwrap();
        r.run_until_caught_up().unwrap();
        prop_assert_eq!(r.checkpoint().unwrap().position, k as u64);
        drop(r);
        append_all(&log, &records[k..]);

        let mut r = ProjectionRunner::open(log.clone(), Tally::new(), &snaps, manual()).unwrap();
        prop_assert_eq!(r.restore_report().used.as_ref().map(|s| s.position), Some(k as u64));
        prop_assert_eq!(r.run_until_caught_up().unwrap(), (records.len() - k) as u64);
        prop_assert_eq!(r.records(), records.len() as u64);
        prop_assert_eq!(r.state(), &full_replay(&log));
    }

    #[test]
    fn state_as_of_any_offset_equals_a_brute_force_replay(
        records in proptest::collection::vec(record(), 1..150),
        every in 1u64..30,
        spacing in 1u64..60,
        queries in proptest::collection::vec(0.0f64..=1.0, 1..6),
    ) {
        let tmp = scratch_dir();
        let log = open_log(&tmp.path().join("log"));
        let snaps = tmp.path().join("snaps");
        append_all(&log, &records);
        let opts = manual()
            .checkpoint_every_records(every)
            .retention(SnapshotRetention::default().keep_latest(2).spaced(spacing, 4));
        let mut r = ProjectionRunner::open(log.clone(), Tally::new(), &snaps, opts).unwrap();
        r.run_until_caught_up().unwrap();
        drop(r);
        let dir = SnapshotDir::open_read_only(&snaps);
        for q in queries {
            let offset = ((records.len() as f64) * q) as u64;
            let as_of = state_as_of(&log, &Tally::new(), &dir, offset).unwrap();
            prop_assert_eq!(&as_of.state, &replay_below(&log, offset), "as of {}", offset);
            let from = as_of.report.used.as_ref().map_or(0, |s| s.position);
            prop_assert!(from <= offset);
            prop_assert_eq!(as_of.replayed, offset - from);
        }
    }
}

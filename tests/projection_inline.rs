//! An owner that keeps a state itself, applying each record as it appends it (the way a
//! consumer group keeps its state log), saves snapshots with `SnapshotDir::save` and loads
//! them with `load_snapshot`; the records after the snapshot complete the state.

mod projection_support;

use projection_support::{fresh, full_replay, Tally};
use tidelog::{load_snapshot, Error, Projection, Record, SnapshotDir, SnapshotRetention};

#[test]
fn an_owner_saves_and_loads_its_own_state() {
    let (_tmp, log, snaps) = fresh();
    let t = Tally::new();
    let dir = SnapshotDir::open(&snaps).unwrap();
    let mut state = t.initial();
    let mut records = 0;
    for i in 0..95u64 {
        let off = log.append(Record::new(format!("event {i}").as_bytes()).key(b"g")).unwrap();
        log.read_with(off, |r| t.apply(&mut state, &r)).unwrap().unwrap();
        records += 1;
        if records % 10 == 0 {
            let info = dir.save(&log, &t, &state, log.next_offset(), records).unwrap();
            assert_eq!((info.position, info.records, info.last_offset), (off + 1, records, Some(off)));
            dir.prune(info.position, &SnapshotRetention::default().keep_latest(2)).unwrap();
        }
    }
    let kept: Vec<u64> = dir.files().unwrap().into_iter().map(|(p, _)| p).collect();
    assert_eq!(kept, vec![80, 90]);
    drop(dir);

    // After a restart: the newest snapshot, then the records after it.
    let loaded = load_snapshot(&log, &t, &SnapshotDir::open_read_only(&snaps), u64::MAX).unwrap();
    assert_eq!((loaded.position, loaded.records, loaded.replayed), (90, 90, 0));
    let mut state = loaded.state;
    let mut cursor = log.cursor(loaded.position);
    while let Some(r) = cursor.next().unwrap() {
        t.apply(&mut state, &r).unwrap();
    }
    assert_eq!(state, full_replay(&log));
}

#[test]
fn saving_past_the_log_or_more_records_than_offsets_is_refused() {
    let (_tmp, log, snaps) = fresh();
    let t = Tally::new();
    let dir = SnapshotDir::open(&snaps).unwrap();
    log.append(Record::new(b"x")).unwrap();
    let s = t.initial();
    assert!(matches!(dir.save(&log, &t, &s, 2, 1), Err(Error::OffsetOutOfRange { offset: 2, next: 1, .. })));
    assert!(matches!(dir.save(&log, &t, &s, 1, 2), Err(Error::InvalidOptions(_))));
    assert!(matches!(SnapshotDir::open_read_only(&snaps).save(&log, &t, &s, 1, 1), Err(Error::ReadOnly)));
    assert!(dir.files().unwrap().is_empty());
    // A state that reflects no record yet may still be saved at a later position.
    let info = dir.save(&log, &t, &s, 1, 0).unwrap();
    assert_eq!((info.position, info.records, info.last_offset), (1, 0, None));
    let loaded = load_snapshot(&log, &t, &dir, u64::MAX).unwrap();
    assert_eq!(loaded.report.used.map(|u| u.position), Some(1));
}

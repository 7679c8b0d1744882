//! The group's state on disk: a state log compacted by snapshots. Old state-log segments go
//! once a snapshot covers them; reopening gives the same state; damage is reported, never
//! silently reset (which would redeliver everything or skip events).

mod consumer_support;

use std::time::Duration;

use consumer_support::{open_store, poll_n, publish_n, quick_group};
use tidelog::{Error, Location, Log, Options};

fn state_segments(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("groups/t/g/state"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".log"))
        .count()
}

/// The group's one snapshot file (`snapshots/{position:020}.snap`).
fn snapshot_file(dir: &std::path::Path) -> std::path::PathBuf {
    let snaps: Vec<_> = std::fs::read_dir(dir.join("groups/t/g/snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "snap"))
        .collect();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    snaps[0].clone()
}

#[test]
fn snapshots_bound_the_state_log_and_reopen_gives_the_same_state() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = quick_group().snapshot_every(500);
    {
        let store = open_store(tmp.path());
        let t = store.topic("t").unwrap();
        let g = t.group("g", opts.clone()).unwrap();
        publish_n(&t, 6000, "e");
        let mut max_segments = 0;
        loop {
            let ds = g.poll(50, Duration::from_millis(50)).unwrap();
            if ds.is_empty() {
                break;
            }
            // Leave every 1000th event unacked, nack every 777th once for much later.
            let (keep, ack): (Vec<_>, Vec<_>) = ds.into_iter().partition(|d| d.offset() % 1000 == 0);
            drop(keep);
            for d in ack.iter().filter(|d| d.offset() % 777 == 0) {
                g.nack_after(d, Duration::from_secs(3600), "much later").unwrap();
            }
            let ack: Vec<_> = ack.into_iter().filter(|d| d.offset() % 777 != 0).collect();
            g.ack_batch(&ack).unwrap();
            max_segments = max_segments.max(state_segments(tmp.path()));
        }
        // ~12 000 state records of ~16 bytes would need 4+ segments of 64 KiB without
        // snapshots; with them, at most a couple stay.
        assert!(max_segments <= 3, "state log grew to {max_segments} segments");
        let lag = g.lag().unwrap();
        assert_eq!((lag.committed, lag.in_flight, lag.scheduled_retries), (0, 6, 7));
        // No close: reopen must combine the last snapshot with the state log after it.
        std::mem::forget(g);
        let other = open_store(tmp.path());
        let lag = other.group_lag("t", "g").unwrap();
        assert_eq!((lag.committed, lag.unconsumed, lag.in_flight, lag.scheduled_retries), (0, 13, 6, 7));
    }
}

#[test]
fn reopened_state_matches_after_close() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = quick_group().snapshot_every(100);
    {
        let store = open_store(tmp.path());
        let t = store.topic("t").unwrap();
        let g = t.group("g", opts.clone()).unwrap();
        publish_n(&t, 1000, "e");
        let ds = poll_n(&g, 1000);
        let ack: Vec<_> = ds.iter().filter(|d| d.offset() % 10 != 3).cloned().collect();
        g.ack_batch(&ack).unwrap();
        g.close().unwrap();
    }
    let store = open_store(tmp.path());
    let g = store.topic("t").unwrap().group("g", opts).unwrap();
    let again = g.poll(1000, Duration::from_secs(1)).unwrap();
    assert_eq!(again.iter().map(|d| d.offset()).collect::<Vec<_>>(), (0..100).map(|i| i * 10 + 3).collect::<Vec<_>>());
    assert!(again.iter().all(|d| d.attempt() == 2));
}

#[test]
fn a_damaged_snapshot_is_reported_not_reset() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = open_store(tmp.path());
        let t = store.topic("t").unwrap();
        let g = t.group("g", quick_group()).unwrap();
        publish_n(&t, 10, "e");
        let ds = poll_n(&g, 10);
        g.ack_batch(&ds[..5]).unwrap();
        g.close().unwrap();
    }
    let snap = snapshot_file(tmp.path());
    let mut bytes = std::fs::read(&snap).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&snap, &bytes).unwrap();
    let store = open_store(tmp.path());
    let err = store.topic("t").unwrap().group("g", quick_group()).unwrap_err();
    match err {
        Error::Corruption { location: Location::File { path: file, .. }, .. } => assert_eq!(file, snap),
        other => panic!("expected corruption, got {other:?}"),
    }
    // A truncated one too.
    std::fs::write(&snap, &bytes[..20]).unwrap();
    assert!(store.topic("t").unwrap().group("g", quick_group()).unwrap_err().is_corruption());
}

#[test]
fn a_missing_snapshot_after_compaction_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = open_store(tmp.path());
        let t = store.topic("t").unwrap();
        let g = t.group("g", quick_group().snapshot_every(100)).unwrap();
        publish_n(&t, 5000, "e");
        loop {
            let ds = g.poll(100, Duration::from_millis(50)).unwrap();
            if ds.is_empty() {
                break;
            }
            for d in &ds {
                g.ack(d).unwrap();
            }
        }
        g.close().unwrap();
    }
    let state = Log::open_read_only(tmp.path().join("groups/t/g/state"), Options::default()).unwrap();
    assert!(state.first_offset() > 0, "no state-log segment was ever dropped");
    drop(state);
    std::fs::remove_file(snapshot_file(tmp.path())).unwrap();
    let store = open_store(tmp.path());
    let err = store.topic("t").unwrap().group("g", quick_group()).unwrap_err();
    assert!(err.is_corruption(), "{err:?}");
}

/// A projection runner passes over a snapshot it cannot use and starts from an older one or
/// from the beginning; a group must not (its state log may no longer hold the beginning,
/// and a silent restart would redeliver or skip events). A snapshot written by another
/// projection in the group's snapshot directory is reported, located in that file.
#[test]
fn a_snapshot_the_group_cannot_use_is_reported_not_passed_over() {
    struct Other;
    impl tidelog::Projection for Other {
        type State = ();
        fn name(&self) -> &str {
            "other"
        }
        fn fingerprint(&self) -> u64 {
            1
        }
        fn initial(&self) {}
        fn apply(&self, _: &mut (), _: &tidelog::RecordView<'_>) -> Result<(), tidelog::BoxError> {
            Ok(())
        }
        fn snapshot(&self, _: &(), _: &mut Vec<u8>) -> Result<(), tidelog::BoxError> {
            Ok(())
        }
        fn restore(&self, _: &[u8]) -> Result<(), tidelog::BoxError> {
            Ok(())
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = open_store(tmp.path());
        let t = store.topic("t").unwrap();
        let g = t.group("g", quick_group()).unwrap();
        publish_n(&t, 10, "e");
        let ds = poll_n(&g, 10);
        g.ack_batch(&ds[..5]).unwrap();
        g.close().unwrap();
    }
    let snap = snapshot_file(tmp.path());
    {
        let state = Log::open(tmp.path().join("groups/t/g/state"), Options::default()).unwrap();
        let dir = tidelog::SnapshotDir::open(tmp.path().join("groups/t/g/snapshots")).unwrap();
        let info = dir.save(&state, &Other, &(), state.next_offset(), 0).unwrap();
        assert_eq!(info.path, snap, "replaces the group's own snapshot");
        state.close().unwrap();
    }
    let store = open_store(tmp.path());
    match store.topic("t").unwrap().group("g", quick_group()).unwrap_err() {
        Error::Corruption { location: Location::File { path, .. }, kind } => {
            assert_eq!(path, snap);
            assert_eq!(kind, tidelog::CorruptionKind::BadField("projection name"));
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    assert!(store.group_lag("t", "g").unwrap_err().is_corruption());
}

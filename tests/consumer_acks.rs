//! Acks in any order: the committed position is the lowest unacknowledged offset, and an
//! event acknowledged above it is never delivered again, not after a restart either (the
//! complaint about checkpoints that skip or replay events still being worked on).

mod consumer_support;

use std::time::Duration;

use consumer_support::{offsets, open_store, poll_n, publish_n, quick_group};
use tidelog::{AckMode, Error};

#[test]
fn committed_position_is_the_lowest_unacknowledged_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group()).unwrap();
    publish_n(&t, 6, "e");
    let ds = poll_n(&g, 6);
    let by = |o: u64| ds.iter().find(|d| d.offset() == o).unwrap();
    g.ack(by(3)).unwrap();
    g.ack(by(5)).unwrap();
    assert_eq!(g.committed(), 0);
    g.ack(by(1)).unwrap();
    assert_eq!(g.committed(), 0);
    g.ack(by(0)).unwrap();
    assert_eq!(g.committed(), 2, "0 and 1 done, 2 still out");
    g.ack(by(2)).unwrap();
    assert_eq!(g.committed(), 4);
    let lag = g.lag().unwrap();
    assert_eq!((lag.committed, lag.unconsumed, lag.in_flight, lag.end_offset), (4, 1, 1, 6));
    g.ack(by(4)).unwrap();
    assert_eq!(g.committed(), 6);
    assert_eq!(g.lag().unwrap().unconsumed, 0);
}

fn acked_above_committed_survive_restart(mode: AckMode) {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = open_store(tmp.path());
        let t = store.topic("t").unwrap();
        let g = t.group("g", quick_group().ack_mode(mode)).unwrap();
        publish_n(&t, 10, "e");
        let ds = poll_n(&g, 10);
        // Ack everything but 0 and 6, in a scrambled order.
        for i in [9, 2, 7, 1, 5, 3, 8, 4] {
            g.ack(ds.iter().find(|d| d.offset() == i).unwrap()).unwrap();
        }
        assert_eq!(g.committed(), 0);
        if let AckMode::Periodic(_) = mode {
            g.sync().unwrap();
        }
        // No close, so no final snapshot: the state log alone must tell. The leaked handle
        // keeps the group's lock, so read the persisted state as another process (or the
        // CLI) does.
        std::mem::forget(g);
    }
    let store = open_store(tmp.path());
    let lag = store.group_lag("t", "g").unwrap();
    assert!(!lag.live);
    assert_eq!((lag.committed, lag.unconsumed), (0, 2));
    assert_eq!(lag.in_flight, 2, "delivered, never settled");
}

#[test]
fn acks_above_the_committed_position_are_persisted_durable() {
    acked_above_committed_survive_restart(AckMode::Durable);
}

#[test]
fn acks_above_the_committed_position_are_persisted_periodic() {
    acked_above_committed_survive_restart(AckMode::Periodic(Duration::from_millis(5)));
}

#[test]
fn acked_events_are_never_delivered_again_after_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    for round in 0..3u64 {
        let store = open_store(tmp.path());
        let t = store.topic("t").unwrap();
        if round == 0 {
            publish_n(&t, 30, "e");
        }
        let g = t.group("g", quick_group()).unwrap();
        let ds = g.poll(100, Duration::from_secs(1)).unwrap();
        // Each round acks every event whose offset is round mod 3, and nothing acked earlier
        // comes back.
        for d in &ds {
            assert!(d.offset() % 3 >= round, "offset {} acked in an earlier round came back", d.offset());
        }
        let acks: Vec<_> = ds.into_iter().filter(|d| d.offset() % 3 == round).collect();
        assert_eq!(acks.len(), 10);
        g.ack_batch(&acks).unwrap();
        drop(g);
    }
    let store = open_store(tmp.path());
    let g = store.topic("t").unwrap().group("g", quick_group()).unwrap();
    assert!(g.poll(100, Duration::from_millis(100)).unwrap().is_empty());
    assert_eq!(g.committed(), 30);
}

#[test]
fn ack_batch_acks_what_it_can_and_reports_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group()).unwrap();
    publish_n(&t, 3, "e");
    let ds = poll_n(&g, 3);
    g.ack(&ds[1]).unwrap();
    let err = g.ack_batch(&ds).unwrap_err();
    assert!(matches!(err, Error::LeaseLost { offset: 1, .. }), "{err:?}");
    assert_eq!(g.committed(), 3);
    assert_eq!(offsets(&g.try_poll(5).unwrap()), Vec::<u64>::new());
}

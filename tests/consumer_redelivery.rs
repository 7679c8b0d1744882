//! Leases: a delivery not acked before its lease expires (the consumer died or hung) is
//! delivered again; the late holder can no longer settle it once someone else has it.
//! After a restart every unacknowledged event is delivered again.

mod consumer_support;

use std::time::{Duration, Instant};

use consumer_support::{offsets, open_store, poll_n, publish_n, quick_group};
use tidelog::Error;

#[test]
fn an_expired_lease_is_delivered_again_and_the_old_holder_loses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group().lease(Duration::from_millis(150))).unwrap();
    publish_n(&t, 3, "e");
    let first = poll_n(&g, 3);
    assert_eq!(offsets(&first), vec![0, 1, 2]);
    g.ack(&first[1]).unwrap();
    // Nothing else is deliverable while the leases hold.
    assert!(g.try_poll(10).unwrap().is_empty());
    let lag = g.lag().unwrap();
    assert_eq!((lag.in_flight, lag.committed), (2, 0));
    // A blocking poll wakes when the leases expire (no publish needed).
    let t0 = Instant::now();
    let again = g.poll(10, Duration::from_secs(5)).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(3), "woke late: {:?}", t0.elapsed());
    assert_eq!(offsets(&again), vec![0, 2]);
    assert!(again.iter().all(|d| d.attempt() == 2));
    // The first holder's lease is gone: its ack fails, and so does a nack or an extension.
    assert!(matches!(g.ack(&first[0]), Err(Error::LeaseLost { offset: 0, attempt: 1 })));
    assert!(matches!(g.nack(&first[2], "late"), Err(Error::LeaseLost { .. })));
    assert!(matches!(g.extend_lease(&first[2], Duration::from_secs(1)), Err(Error::LeaseLost { .. })));
    // Settling twice is refused too.
    g.ack(&again[0]).unwrap();
    assert!(matches!(g.ack(&again[0]), Err(Error::LeaseLost { .. })));
    g.ack(&again[1]).unwrap();
    assert_eq!(g.committed(), 3);
}

#[test]
fn an_expired_lease_may_still_be_acked_by_its_holder_until_someone_else_gets_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group().lease(Duration::from_millis(50))).unwrap();
    publish_n(&t, 1, "e");
    let d = poll_n(&g, 1);
    std::thread::sleep(Duration::from_millis(120));
    // Expired, but not handed to anyone since: the ack counts, and the event is done.
    g.ack(&d[0]).unwrap();
    assert!(g.poll(1, Duration::from_millis(200)).unwrap().is_empty());
    assert_eq!(g.committed(), 1);
}

#[test]
fn extending_a_lease_keeps_the_delivery() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group().lease(Duration::from_millis(100))).unwrap();
    publish_n(&t, 1, "e");
    let d = poll_n(&g, 1);
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(50));
        let until = g.extend_lease(&d[0], Duration::from_millis(100)).unwrap();
        assert!(until > Instant::now());
        assert!(g.try_poll(1).unwrap().is_empty(), "redelivered despite the extension");
    }
    g.ack(&d[0]).unwrap();
}

#[test]
fn after_a_restart_every_unacked_event_is_delivered_again_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = open_store(tmp.path());
        let t = store.topic("t").unwrap();
        let g = t.group("g", quick_group()).unwrap();
        publish_n(&t, 10, "e");
        let ds = poll_n(&g, 10);
        for d in ds.iter().filter(|d| d.offset() % 3 == 0) {
            g.ack(d).unwrap();
        }
        // Dropped without close: like a crash of the consumer (leases are not persisted).
    }
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group()).unwrap();
    let t0 = Instant::now();
    let again = g.poll(100, Duration::from_secs(5)).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(1), "had to wait for a lease: {:?}", t0.elapsed());
    assert_eq!(offsets(&again), vec![1, 2, 4, 5, 7, 8]);
    assert!(again.iter().all(|d| d.attempt() == 2));
    assert_eq!(again[0].payload(), b"e-1");
}

/// `extend_lease` refused a lease that had expired while the event was not delivered to
/// anyone since, although `ack` and `nack` accepted that lease. They now agree: the holder
/// extends it, keeps the event, and nobody else is given it.
#[test]
fn an_expired_lease_not_yet_redelivered_can_be_extended_like_it_can_be_acked() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group().lease(Duration::from_millis(30))).unwrap();
    publish_n(&t, 2, "e");
    let ds = poll_n(&g, 2);
    std::thread::sleep(Duration::from_millis(60));
    // Both leases expire; this poll hands out only event 0 again, so event 1's lease is
    // expired but the event was not delivered since.
    let again = g.poll(1, Duration::ZERO).unwrap();
    assert_eq!(offsets(&again), [0]);
    g.extend_lease(&ds[1], Duration::from_secs(30)).unwrap();
    assert!(g.try_poll(10).unwrap().is_empty(), "an extended lease was delivered to someone else");
    assert_eq!(g.lag().unwrap().in_flight, 2);
    g.ack(&ds[1]).unwrap();
    // The redelivered event 0 is no longer the old holder's.
    assert!(matches!(g.extend_lease(&ds[0], Duration::from_secs(1)), Err(tidelog::Error::LeaseLost { .. })));
    g.ack(&again[0]).unwrap();
    assert_eq!(g.committed(), 2);
}

//! Releasing consumed events: `delete_consumed` deletes whole segments once every group has
//! moved past them; `max_bytes` and `max_age` may delete events a group has not consumed,
//! and that group's lag says how many it lost.

mod consumer_support;

use std::time::Duration;

use consumer_support::{open_store, poll_n, quick_group};
use tidelog::{Record, RetentionPolicy, Topic};

/// Publish `n` events of ~1 KiB (64 KiB segments hold ~60 of them).
fn fill(t: &Topic, n: usize) {
    let body = vec![b'x'; 1000];
    for _ in 0..n {
        t.publish(Record::new(&body)).unwrap();
    }
}

fn consume(g: &tidelog::Group, n: usize) {
    let ds = poll_n(g, n);
    assert_eq!(ds.len(), n);
    g.ack_batch(&ds).unwrap();
}

#[test]
fn consumed_segments_go_only_once_every_group_is_past_them() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let fast = t.group("fast", quick_group()).unwrap();
    let slow = t.group("slow", quick_group()).unwrap();
    fill(&t, 400);
    assert!(t.segments().unwrap().len() >= 6);
    consume(&fast, 400);
    consume(&slow, 130);
    let r = t.apply_retention(&RetentionPolicy::consumed()).unwrap();
    assert!(r.segments_removed >= 1);
    assert!(r.first_offset <= 130, "deleted events `slow` has not consumed: first {}", r.first_offset);
    assert!(r.lost.is_empty());
    assert_eq!(t.first_offset(), r.first_offset);
    // A closed group pins the topic through its persisted state.
    slow.close().unwrap();
    let r2 = t.apply_retention(&RetentionPolicy::consumed()).unwrap();
    assert_eq!(r2.segments_removed, 0);
    let slow = t.group("slow", quick_group()).unwrap();
    let rest = poll_n(&slow, 270);
    assert_eq!(rest[0].offset(), 130, "slow lost nothing");
    slow.ack_batch(&rest).unwrap();
    let r3 = t.apply_retention(&RetentionPolicy::consumed()).unwrap();
    assert!(r3.segments_removed >= 4);
    // Only the active segment (and what precedes it in the same segment) is left.
    let segs = t.segments().unwrap();
    assert_eq!(segs.len(), 1, "{segs:?}");
    for g in [&fast, &slow] {
        let lag = g.lag().unwrap();
        assert_eq!((lag.lost_to_retention, lag.unconsumed, lag.committed), (0, 0, 400));
    }
}

#[test]
fn without_groups_consumed_retention_keeps_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    fill(&t, 300);
    let r = t.apply_retention(&RetentionPolicy::consumed()).unwrap();
    assert_eq!((r.segments_removed, r.first_offset), (0, 0));
}

#[test]
fn size_retention_may_drop_unconsumed_events_and_the_group_reports_them() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group()).unwrap();
    let idle = t.group("idle", quick_group()).unwrap();
    idle.close().unwrap();
    fill(&t, 400);
    // g has 10 in flight and one nacked for later: those are lost too.
    let ds = poll_n(&g, 10);
    g.nack_after(&ds[0], Duration::from_secs(60), "later").unwrap();
    let before = t.segments().unwrap().len();
    let r = t.apply_retention(&RetentionPolicy::default().max_bytes(Some(3 * (64 << 10)))).unwrap();
    let after = t.segments().unwrap();
    assert_eq!(after.len(), 3, "kept {} of {before}", after.len());
    assert_eq!(r.segments_removed, before - 3);
    let first = r.first_offset;
    assert!(first > 10);
    let mut lost = r.lost.clone();
    lost.sort();
    assert_eq!(lost, vec![("g".to_owned(), first), ("idle".to_owned(), first)]);
    let lag = g.lag().unwrap();
    assert_eq!((lag.lost_to_retention, lag.committed, lag.in_flight, lag.scheduled_retries), (first, first, 0, 0));
    // The group skips forward; its old deliveries can no longer be acked.
    let next = poll_n(&g, 1);
    assert_eq!(next[0].offset(), first);
    assert!(matches!(g.ack(&ds[1]), Err(tidelog::Error::LeaseLost { .. })));
    // The closed group sees the same from its persisted state, and on reopen.
    let lag = store.group_lag("t", "idle").unwrap();
    assert_eq!((lag.lost_to_retention, lag.committed, lag.live), (first, first, false));
    let idle = t.group("idle", quick_group()).unwrap();
    assert_eq!(idle.lag().unwrap().lost_to_retention, first);
    assert_eq!(poll_n(&idle, 1)[0].offset(), first);
    drop(idle);
    // The loss is persisted: reopening does not count it twice.
    let idle = t.group("idle", quick_group()).unwrap();
    assert_eq!(idle.lag().unwrap().lost_to_retention, first);
}

#[test]
fn age_retention_drops_old_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group()).unwrap();
    fill(&t, 200);
    std::thread::sleep(Duration::from_millis(600));
    fill(&t, 130);
    let policy = RetentionPolicy::default().max_age(Some(Duration::from_millis(400)));
    let r = t.apply_retention(&policy).unwrap();
    assert!(r.segments_removed >= 2, "{r:?}");
    // Everything older than the age limit in sealed segments is gone; newer events stay.
    assert!(r.first_offset <= 200, "a young event was deleted: first {}", r.first_offset);
    assert!(r.first_offset >= 120);
    let lag = g.lag().unwrap();
    assert_eq!(lag.lost_to_retention, r.first_offset);
    assert_eq!(lag.unconsumed, 330 - r.first_offset);
    // Nothing young enough is removed by a second run.
    assert_eq!(t.apply_retention(&policy).unwrap().segments_removed, 0);
}

//! Lag per group: committed position, unconsumed, in flight, scheduled retries, held back,
//! dead letters, through the API, live or from persisted state.

mod consumer_support;

use std::time::Duration;

use consumer_support::{open_store, poll_n, publish_n, quick_group};
use tidelog::{DeliveryOrder, Record};

#[test]
fn lag_counts_every_kind_of_pending_event() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group().order(DeliveryOrder::PerKey)).unwrap();
    for i in 0..10 {
        let key = if i < 3 { "hot".to_owned() } else { format!("k{i}") };
        t.publish(Record::new(b"x").key(key.as_bytes())).unwrap();
    }
    let lag = g.lag().unwrap();
    assert_eq!((lag.committed, lag.end_offset, lag.unconsumed, lag.in_flight), (0, 10, 10, 0));
    let ds = g.poll(5, Duration::from_secs(1)).unwrap();
    // hot(0), k3, k4, k5, k6 in flight; hot(1), hot(2) held.
    assert_eq!(ds.iter().map(|d| d.offset()).collect::<Vec<_>>(), vec![0, 3, 4, 5, 6]);
    g.nack_after(&ds[0], Duration::from_secs(60), "later").unwrap();
    g.reject(&ds[1], "bad").unwrap();
    g.ack(&ds[2]).unwrap();
    let lag = g.lag().unwrap();
    assert_eq!(lag.committed, 0);
    assert_eq!(lag.unconsumed, 8, "10 minus one acked and one dead-lettered");
    assert_eq!(lag.in_flight, 2);
    assert_eq!(lag.scheduled_retries, 1);
    assert_eq!(lag.held_back, 2);
    assert_eq!(lag.dead_letters, 1);
    assert_eq!(lag.lost_to_retention, 0);
    assert!(lag.live);
    assert_eq!((lag.topic.as_str(), lag.group.as_str()), ("t", "g"));
}

#[test]
fn store_lag_lists_every_group_live_or_persisted() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let a = store.topic("a").unwrap();
    let b = store.topic("b").unwrap();
    publish_n(&a, 5, "a");
    publish_n(&b, 7, "b");
    let a1 = a.group("one", quick_group()).unwrap();
    let ds = poll_n(&a1, 5);
    a1.ack_batch(&ds[..3]).unwrap();
    let b1 = b.group("one", quick_group()).unwrap();
    let ds = poll_n(&b1, 2);
    b1.nack_after(&ds[0], Duration::from_secs(60), "later").unwrap();
    b1.close().unwrap();
    let lags = store.lag().unwrap();
    let summary: Vec<_> = lags
        .iter()
        .map(|l| {
            (l.topic.as_str(), l.group.as_str(), l.committed, l.unconsumed, l.in_flight, l.scheduled_retries, l.live)
        })
        .collect();
    assert_eq!(summary, vec![("a", "one", 3, 2, 2, 0, true), ("b", "one", 0, 7, 1, 1, false)], "{lags:#?}");
    // Another store (another process) sees the same from the persisted state.
    let other = open_store(tmp.path());
    let l = other.group_lag("a", "one").unwrap();
    assert_eq!((l.committed, l.unconsumed, l.in_flight, l.live), (3, 2, 2, false));
    assert!(matches!(other.group_lag("a", "nope"), Err(tidelog::Error::NotFound { .. })));
    assert!(matches!(other.group_lag("nope", "one"), Err(tidelog::Error::NotFound { .. })));
}

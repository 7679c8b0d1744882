//! Fan-out: every group sees every event, each at its own position. Shared work: consumers of
//! one group each get distinct events, every event leased to one consumer at a time.

mod consumer_support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consumer_support::{offsets, open_store, poll_n, publish_n, quick_group};

#[test]
fn every_group_gets_every_event_at_its_own_position() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("orders").unwrap();
    let billing = t.group("billing", quick_group()).unwrap();
    let shipping = t.group("shipping", quick_group()).unwrap();
    let audit = t.group("audit", quick_group()).unwrap();
    publish_n(&t, 50, "e");

    let b = poll_n(&billing, 50);
    assert_eq!(offsets(&b), (0..50).collect::<Vec<_>>());
    billing.ack_batch(&b).unwrap();
    let s = poll_n(&shipping, 20);
    assert_eq!(offsets(&s), (0..20).collect::<Vec<_>>());
    shipping.ack_batch(&s).unwrap();
    // `audit` has consumed nothing: its position is independent.
    assert_eq!(billing.committed(), 50);
    assert_eq!(shipping.committed(), 20);
    assert_eq!(audit.committed(), 0);
    assert_eq!(audit.lag().unwrap().unconsumed, 50);
    let a = poll_n(&audit, 50);
    assert_eq!(a[7].payload(), b"e-7");
    assert_eq!(store.group_names("orders").unwrap(), vec!["audit", "billing", "shipping"]);
}

#[test]
fn consumers_sharing_a_group_each_get_distinct_events() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("jobs").unwrap();
    let group = t.group("workers", quick_group()).unwrap();
    let n = 2000;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut threads = Vec::new();
    for _ in 0..4 {
        let g = group.clone();
        let seen = seen.clone();
        threads.push(std::thread::spawn(move || loop {
            let ds = g.poll(16, Duration::from_millis(300)).unwrap();
            if ds.is_empty() {
                return;
            }
            let mut s = seen.lock().unwrap();
            for d in &ds {
                assert_eq!(d.attempt(), 1, "offset {} delivered twice", d.offset());
                s.push(d.offset());
            }
            drop(s);
            g.ack_batch(&ds).unwrap();
        }));
    }
    // Publish while the consumers run.
    publish_n(&t, n, "job");
    for th in threads {
        th.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), n, "every event exactly once");
    let uniq: HashSet<_> = seen.iter().collect();
    assert_eq!(uniq.len(), n);
    assert_eq!(group.committed(), n as u64);
}

#[test]
fn opening_a_group_twice_in_one_process_shares_it_and_another_store_is_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    publish_n(&t, 2, "x");
    let g1 = t.group("g", quick_group()).unwrap();
    let g2 = store.topic("t").unwrap().group("g", quick_group()).unwrap();
    let d = g1.poll(1, Duration::from_secs(1)).unwrap();
    // The second handle shares the state: it gets the other event, and can ack the first.
    let d2 = g2.poll(5, Duration::from_secs(1)).unwrap();
    assert_eq!(offsets(&d), vec![0]);
    assert_eq!(offsets(&d2), vec![1]);
    g2.ack(&d[0]).unwrap();
    // A second store on the same directory is like another process: the group is locked.
    let other = open_store(tmp.path());
    let err = other.topic("t").unwrap().group("g", quick_group()).unwrap_err();
    assert!(matches!(err, tidelog::Error::Locked { .. }), "{err:?}");
    // After close, it can be opened there, and the unacked event is delivered again.
    g1.close().unwrap();
    assert!(matches!(g2.poll(1, Duration::ZERO), Err(tidelog::Error::Closed)));
    let g3 = other.topic("t").unwrap().group("g", quick_group()).unwrap();
    let again = g3.poll(5, Duration::from_secs(1)).unwrap();
    assert_eq!(offsets(&again), vec![1]);
    assert_eq!(again[0].attempt(), 2);
}

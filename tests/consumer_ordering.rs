//! Ordering. `DeliveryOrder::Offset`: new events in offset order, redeliveries and due
//! retries first, nothing held back. `DeliveryOrder::PerKey`: a failing event holds back
//! later events with the same key only, never the rest of the topic.

mod consumer_support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consumer_support::{offsets, open_store, poll_n, quick_group};
use tidelog::{DeliveryOrder, Record};

fn keyed(t: &tidelog::Topic, events: &[(&str, &str)]) {
    for (k, p) in events {
        if k.is_empty() {
            t.publish(Record::new(p.as_bytes())).unwrap();
        } else {
            t.publish(Record::new(p.as_bytes()).key(k.as_bytes())).unwrap();
        }
    }
}

#[test]
fn offset_order_delivers_in_offset_order_and_redeliveries_first() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group().lease(Duration::from_millis(100))).unwrap();
    keyed(&t, &[("a", "1"), ("a", "2"), ("b", "3"), ("a", "4")]);
    let first = g.poll(2, Duration::from_secs(1)).unwrap();
    assert_eq!(offsets(&first), vec![0, 1]);
    // 0 fails: in offset order nothing waits for it, same key or not.
    g.nack_after(&first[0], Duration::from_millis(50), "x").unwrap();
    g.ack(&first[1]).unwrap();
    assert_eq!(offsets(&g.try_poll(10).unwrap()), vec![2, 3]);
    std::thread::sleep(Duration::from_millis(120));
    // The retry and the expired leases come before anything new.
    t.publish(Record::new(b"5")).unwrap();
    let next = g.poll(10, Duration::from_secs(1)).unwrap();
    assert_eq!(offsets(&next), vec![2, 3, 0, 4], "expired leases (due at once), then the retry, then new");
}

#[test]
fn per_key_a_failing_event_holds_back_only_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group().order(DeliveryOrder::PerKey)).unwrap();
    keyed(&t, &[("a", "a1"), ("b", "b1"), ("a", "a2"), ("", "n1"), ("b", "b2"), ("a", "a3"), ("c", "c1")]);
    let ds = g.poll(10, Duration::from_secs(1)).unwrap();
    // One in flight per key: a1, b1, the keyless n1, c1. a2, b2 and a3 wait.
    assert_eq!(offsets(&ds), vec![0, 1, 3, 6]);
    let lag = g.lag().unwrap();
    assert_eq!((lag.in_flight, lag.held_back), (4, 3));
    let by = |o: u64| ds.iter().find(|d| d.offset() == o).unwrap();
    // a1 fails and is retried later: key a waits, b moves on.
    g.nack_after(by(0), Duration::from_millis(200), "a is broken").unwrap();
    g.ack(by(1)).unwrap();
    g.ack(by(3)).unwrap();
    g.ack(by(6)).unwrap();
    let next = g.poll(10, Duration::from_secs(1)).unwrap();
    assert_eq!(offsets(&next), vec![4], "b2 released by b1's ack; a2 still held behind a1's retry");
    g.ack(&next[0]).unwrap();
    // a1 comes back after its backoff; then a2, then a3, strictly one at a time.
    let mut a_order = Vec::new();
    while a_order.len() < 3 {
        let ds = g.poll(10, Duration::from_secs(2)).unwrap();
        assert_eq!(ds.len(), 1, "two events of key a in flight at once: {:?}", offsets(&ds));
        a_order.push(ds[0].payload().to_vec());
        g.ack(&ds[0]).unwrap();
    }
    assert_eq!(a_order, vec![b"a1".to_vec(), b"a2".to_vec(), b"a3".to_vec()]);
    assert_eq!(g.committed(), 7);
}

#[test]
fn per_key_a_dead_lettered_event_releases_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group().order(DeliveryOrder::PerKey).max_deliveries(2)).unwrap();
    keyed(&t, &[("k", "poison"), ("k", "fine")]);
    let d = g.poll(10, Duration::from_secs(1)).unwrap();
    assert_eq!(offsets(&d), vec![0]);
    g.nack_after(&d[0], Duration::ZERO, "boom").unwrap();
    let d = g.poll(10, Duration::from_secs(1)).unwrap();
    assert_eq!((d[0].offset(), d[0].attempt()), (0, 2));
    g.nack(&d[0], "boom").unwrap();
    // Limit reached: dead-lettered, and the next event of the key is delivered.
    let d = g.poll(10, Duration::from_secs(1)).unwrap();
    assert_eq!(offsets(&d), vec![1]);
    assert_eq!(g.dead_letters().unwrap().len(), 1);
}

#[test]
fn per_key_order_is_rebuilt_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = open_store(tmp.path());
        let t = store.topic("t").unwrap();
        let g = t.group("g", quick_group().order(DeliveryOrder::PerKey)).unwrap();
        keyed(&t, &[("a", "a1"), ("a", "a2"), ("b", "b1"), ("a", "a3"), ("b", "b2")]);
        let ds = g.poll(10, Duration::from_secs(1)).unwrap();
        assert_eq!(offsets(&ds), vec![0, 2]);
        g.ack(&ds[1]).unwrap();
        // a1 in flight, a2 a3 held, b2 released: crash now.
    }
    let store = open_store(tmp.path());
    let g = store.topic("t").unwrap().group("g", quick_group().order(DeliveryOrder::PerKey)).unwrap();
    let ds = g.poll(10, Duration::from_secs(1)).unwrap();
    assert_eq!(offsets(&ds), vec![0, 4], "a1 again (first of a) and b2; a2, a3 still held");
    g.ack_batch(&ds).unwrap();
    assert_eq!(offsets(&poll_n(&g, 1)), vec![1]);
}

#[test]
fn per_key_many_consumers_never_overlap_a_key_and_keep_its_order() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group().order(DeliveryOrder::PerKey).max_outstanding(64)).unwrap();
    let keys = 8;
    let per_key = 60;
    for i in 0..per_key {
        for k in 0..keys {
            t.publish(Record::new(format!("{i}").as_bytes()).key(format!("k{k}").as_bytes())).unwrap();
        }
    }
    let busy: Arc<Mutex<HashMap<Vec<u8>, bool>>> = Arc::default();
    let done: Arc<Mutex<HashMap<Vec<u8>, Vec<u32>>>> = Arc::default();
    let mut threads = Vec::new();
    for w in 0..4u64 {
        let (g, busy, done) = (g.clone(), busy.clone(), done.clone());
        threads.push(std::thread::spawn(move || {
            let mut n = 0u64;
            loop {
                let ds = g.poll(4, Duration::from_millis(400)).unwrap();
                if ds.is_empty() {
                    return;
                }
                for d in ds {
                    let key = d.key().unwrap().to_vec();
                    {
                        let mut b = busy.lock().unwrap();
                        assert!(!b.get(&key).copied().unwrap_or(false), "two deliveries of one key at once");
                        b.insert(key.clone(), true);
                    }
                    n += 1;
                    std::thread::yield_now();
                    busy.lock().unwrap().insert(key.clone(), false);
                    // Every 7th delivery fails once; the key must wait for its retry.
                    if (n + w).is_multiple_of(7) && d.attempt() == 1 {
                        g.nack_after(&d, Duration::from_millis(5), "flaky").unwrap();
                    } else {
                        let seq: u32 = std::str::from_utf8(d.payload()).unwrap().parse().unwrap();
                        done.lock().unwrap().entry(key).or_default().push(seq);
                        g.ack(&d).unwrap();
                    }
                }
            }
        }));
    }
    for th in threads {
        th.join().unwrap();
    }
    let done = done.lock().unwrap();
    assert_eq!(done.len(), keys);
    for (k, seqs) in done.iter() {
        assert_eq!(seqs, &(0..per_key as u32).collect::<Vec<_>>(), "key {k:?} out of order");
    }
    assert_eq!(g.committed(), (keys * per_key) as u64);
}

/// Held-back events counted toward `max_outstanding`: one nacked event of a hot key, with
/// many later events of that key, filled the group's capacity with held-back events and
/// stalled every other key. Held-back events now have their own bound (`max_held_back`), so
/// a failing event holds back only its own key.
#[test]
fn per_key_a_stuck_hot_key_does_not_take_the_capacity_of_other_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group().order(DeliveryOrder::PerKey).max_outstanding(4)).unwrap();
    keyed(&t, &[("hot", "h0")]);
    let first = poll_n(&g, 1);
    g.nack_after(&first[0], Duration::from_secs(3600), "broken").unwrap();
    let hot: Vec<(&str, &str)> = (0..20).map(|_| ("hot", "h")).collect();
    keyed(&t, &hot);
    keyed(&t, &[("x", "x1"), ("y", "y1"), ("", "n1")]);
    let ds = g.poll(10, Duration::from_secs(1)).unwrap();
    assert_eq!(offsets(&ds), vec![21, 22, 23], "other keys stalled behind a stuck key");
    let lag = g.lag().unwrap();
    assert_eq!((lag.held_back, lag.scheduled_retries, lag.in_flight), (20, 1, 3));
    g.ack_batch(&ds).unwrap();
    // The held-back events still wait for their key, in order, across a restart.
    g.close().unwrap();
    let g = t.group("g", quick_group().order(DeliveryOrder::PerKey).max_outstanding(4)).unwrap();
    assert!(g.try_poll(10).unwrap().is_empty());
    assert_eq!(g.lag().unwrap().held_back, 20);
    assert!(g.retry_now(0).unwrap());
    let mut order = Vec::new();
    while order.len() < 21 {
        let ds = g.poll(10, Duration::from_secs(2)).unwrap();
        assert_eq!(ds.len(), 1, "two events of the hot key in flight at once");
        order.push(ds[0].offset());
        g.ack(&ds[0]).unwrap();
    }
    assert_eq!(order, (0..21).collect::<Vec<u64>>());
}

/// The held-back bound stops reading new events when reached, like `max_outstanding`.
#[test]
fn per_key_max_held_back_bounds_the_events_held_in_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_store(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group().order(DeliveryOrder::PerKey).max_held_back(5)).unwrap();
    let hot: Vec<(&str, &str)> = (0..10).map(|_| ("hot", "h")).collect();
    keyed(&t, &hot);
    keyed(&t, &[("x", "x1")]);
    let ds = g.poll(10, Duration::from_secs(1)).unwrap();
    assert_eq!(offsets(&ds), vec![0]);
    assert_eq!(g.lag().unwrap().held_back, 5);
    g.ack(&ds[0]).unwrap();
    assert!(matches!(
        t.group("h", quick_group().order(DeliveryOrder::PerKey).max_held_back(0)),
        Err(tidelog::Error::InvalidOptions(_))
    ));
}

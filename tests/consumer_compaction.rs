//! Consumer groups over a compacted topic: sealed segments rewritten without some records,
//! every other record keeping its offset (`tidelog::testing::rewrite_segment`, the segment
//! builder that key compaction uses). A group delivers the records that remain, passes each
//! gap with one state change however long it is, and forgets pending events whose record
//! was removed after it looked at them.

mod consumer_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use consumer_support::{offsets, quick_group};
use tidelog::testing::rewrite_segment;
use tidelog::{DeliveryOrder, Header, Log, Options, Record, Store, StoreOptions};

const EVENTS: u64 = 200;
const INTERVAL: u32 = 256;

fn store_options() -> StoreOptions {
    StoreOptions::default()
        .topic(Options::default().segment_bytes(4096).index_interval_bytes(INTERVAL))
        .state_segment_bytes(64 << 10)
}

fn open(dir: &Path) -> Store {
    Store::open(dir, store_options()).unwrap()
}

/// Publish `EVENTS` events (keys `k{o % 3}`), then return the topic's segments as
/// `(base, next)`, the store closed.
fn publish(dir: &Path) -> Vec<(u64, u64)> {
    let store = open(dir);
    let t = store.topic("t").unwrap();
    for o in 0..EVENTS {
        let key = format!("k{}", o % 3);
        let hs = [Header { name: "n", value: b"v" }];
        let payload = format!("event-{o:04}-{}", "x".repeat(60));
        assert_eq!(t.publish(Record::new(payload.as_bytes()).key(key.as_bytes()).headers(&hs)).unwrap(), o);
    }
    t.segments().unwrap().iter().map(|s| (s.base_offset, s.next_offset)).collect()
}

/// Rewrite sealed segment `(base, next)` keeping `keep`; remove the others from `kept`.
fn compact(dir: &Path, (base, next): (u64, u64), kept: &mut BTreeSet<u64>, keep: impl Fn(u64) -> bool) {
    rewrite_segment(&dir.join("topics/t"), base, INTERVAL, &keep).unwrap();
    kept.retain(|&o| !(base..next).contains(&o) || keep(o));
}

/// State-log records of group `g` that record a gap (payload version 3: only that variant).
fn gap_events(dir: &Path) -> usize {
    let log = Log::open_read_only(dir.join("groups/t/g/state"), Options::default()).unwrap();
    log.iter(log.first_offset()).filter(|r| r.as_ref().unwrap().payload.first() == Some(&3)).count()
}

/// Maximal runs of offsets below `EVENTS` missing from `kept`.
fn runs(kept: &BTreeSet<u64>) -> usize {
    (0..EVENTS).filter(|&o| !kept.contains(&o) && (o == 0 || kept.contains(&(o - 1)))).count()
}

/// Before, a group made a pending entry for every offset up to the one its cursor returned
/// and then failed reading an offset without a record; each gap is now one state change.
#[test]
fn a_group_passes_each_gap_with_one_state_change_and_replays_it() {
    let tmp = tempfile::tempdir().unwrap();
    let segs = publish(tmp.path());
    assert!(segs.len() > 5, "{segs:?}");
    let mut kept: BTreeSet<u64> = (0..EVENTS).collect();
    compact(tmp.path(), segs[0], &mut kept, |o| o % 4 == 1);
    compact(tmp.path(), segs[1], &mut kept, |_| false);
    compact(tmp.path(), segs[2], &mut kept, |o| o % 2 == 0);
    // A gap at the end of the newest sealed segment, running into the active one's start.
    let (base, next) = segs[segs.len() - 2];
    compact(tmp.path(), (base, next), &mut kept, |o| o < base + 3);
    let store = open(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", quick_group()).unwrap();
    let mut got = Vec::new();
    loop {
        let ds = g.poll(7, Duration::from_millis(50)).unwrap();
        if ds.is_empty() {
            break;
        }
        g.ack_batch(&ds).unwrap();
        got.extend(offsets(&ds));
    }
    assert_eq!(got, kept.iter().copied().collect::<Vec<_>>());
    assert_eq!((g.committed(), g.lag().unwrap().unconsumed), (EVENTS, 0));
    assert_eq!(gap_events(tmp.path()), runs(&kept));
    // Another reader replays the state log (no snapshot yet) to the same position.
    let lag = open(tmp.path()).group_lag("t", "g").unwrap();
    assert_eq!((lag.live, lag.committed, lag.unconsumed), (false, EVENTS, 0));
}

/// Events the group had looked at (one nacked, one in flight, several held back behind
/// their key) whose records compaction then removed: the reopened group delivers the
/// others and passes these, releasing the events of their keys.
#[test]
fn pending_events_whose_records_were_removed_are_passed_after_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let segs = publish(tmp.path());
    let opts = quick_group().order(DeliveryOrder::PerKey);
    let (base, next) = segs[1];
    let first_key0 = (base..next).find(|o| o % 3 == 0).unwrap();
    let pending: Vec<u64>;
    {
        let store = open(tmp.path());
        let t = store.topic("t").unwrap();
        let g = t.group("g", opts.clone()).unwrap();
        // Settle everything before segment 1; in it, nack the first event of key k0 for an
        // hour and leave the next of key k1 in flight.
        let mut held = Vec::new();
        loop {
            let ds = g.poll(1, Duration::from_millis(50)).unwrap();
            let Some(d) = ds.into_iter().next() else { break };
            if d.offset() == first_key0 {
                g.nack_after(&d, Duration::from_secs(3600), "later").unwrap();
            } else if d.offset() >= base && d.offset() % 3 == 1 && held.is_empty() {
                held.push(d);
            } else {
                g.ack(&d).unwrap();
            }
        }
        pending = g.lag().map(|l| l.committed).map(|c| vec![c]).unwrap();
        assert_eq!(pending, [first_key0.min(held[0].offset())]);
        assert!(g.lag().unwrap().held_back > 0);
        g.close().unwrap();
    }
    // Compaction removes every event of keys k0 and k1 from segment 1.
    let mut kept: BTreeSet<u64> = (0..EVENTS).collect();
    compact(tmp.path(), (base, next), &mut kept, |o| o % 3 == 2);
    let store = open(tmp.path());
    let t = store.topic("t").unwrap();
    let g = t.group("g", opts).unwrap();
    assert!(g.retry_now(first_key0).unwrap());
    let mut got = Vec::new();
    loop {
        let ds = g.poll(16, Duration::from_millis(50)).unwrap();
        if ds.is_empty() {
            break;
        }
        g.ack_batch(&ds).unwrap();
        got.extend(offsets(&ds));
    }
    got.sort_unstable();
    // Key k2 was done before the close; of keys k0 and k1, which waited behind the removed
    // events, every event that remains is delivered, and none that was removed.
    let expected: Vec<u64> = kept.iter().copied().filter(|&o| o >= next && o % 3 != 2).collect();
    assert_eq!(got, expected);
    assert_eq!(g.committed(), EVENTS);
    g.close().unwrap();
    let g = t.group("g", quick_group().order(DeliveryOrder::PerKey)).unwrap();
    assert_eq!(g.committed(), EVENTS);
    assert!(g.try_poll(8).unwrap().is_empty());
}

//! Erasure of a key: afterwards no file of the store holds the key's bytes or its records'
//! payloads (segments sealed and active, index files, dead letters, snapshots), the other
//! records are intact at their offsets, and a marker says a key was erased.

mod consumer_support;

use std::path::Path;
use std::time::Duration;

use consumer_support::{quick_group, small_store_options};
use tidelog::{erasure_marker_key, EraseOptions, Log, Options, Record, SnapshotDir, Store};

const KEY: &[u8] = b"alice@example.com";

fn secret(i: u32) -> String {
    format!("alice-private-payload-{i:04}")
}

/// Every file under `dir` (recursively) that contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            hits.extend(files_containing(&path, needle));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            if bytes.windows(needle.len()).any(|w| w == needle) {
                hits.push(path.display().to_string());
            }
        }
    }
    hits
}

#[test]
fn an_erased_key_is_in_no_file_of_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let store_dir = tmp.path().join("store");
    let snaps = tmp.path().join("snapshots");
    let store = Store::open(&store_dir, small_store_options()).unwrap();
    let topic = store.topic("people").unwrap();
    // Records of alice spread over sealed segments and the active one, among others'.
    let mut alice = 0;
    for i in 0..3000u32 {
        if i % 10 == 3 {
            topic.publish(Record::new(secret(alice).as_bytes()).key(KEY)).unwrap();
            alice += 1;
        } else {
            topic
                .publish(Record::new(format!("other-{i}").as_bytes()).key(format!("bob-{}", i % 7).as_bytes()))
                .unwrap();
        }
    }
    assert!(topic.segments().unwrap().len() > 2);
    // A group dead-letters alice's first record (and acks the rest).
    let g = topic.group("mailer", quick_group()).unwrap();
    let mut done = 0;
    while done < 3000 {
        for d in g.poll(500, Duration::from_secs(5)).unwrap() {
            if d.offset() == 3 {
                g.reject(&d, "no consent").unwrap();
            } else {
                g.ack(&d).unwrap();
            }
            done += 1;
        }
    }
    assert_eq!(g.dead_letters().unwrap().len(), 1);
    g.close().unwrap();
    // Snapshots of a projection that copied payloads into its state: one before alice's
    // first record, two after.
    let sd = SnapshotDir::open(&snaps).unwrap();
    std::fs::write(sd.path_for(2), "state before alice").unwrap();
    for pos in [100u64, 2500] {
        std::fs::write(sd.path_for(pos), format!("state holding {}", secret(0))).unwrap();
    }
    // The projection is closed before the erasure (one still open would refuse it).
    drop(sd);
    let before: Vec<_> = topic.iter(0).unwrap().map(|r| r.unwrap()).collect();
    assert!(!files_containing(&store_dir, KEY).is_empty(), "the test looks for bytes that are there");

    let report = topic.erase_with(KEY, &EraseOptions::default().snapshot_dir(&snaps)).unwrap();
    assert_eq!(report.records_erased, 300);
    assert_eq!(report.dead_letters_erased, 1);
    assert_eq!(report.first_erased_offset, Some(3));
    assert_eq!(report.snapshots_removed.len(), 2, "{report:?}");
    assert!(
        SnapshotDir::open_read_only(&snaps).path_for(2).exists(),
        "a snapshot before the first erased record stays"
    );

    for dir in [&store_dir, &snaps] {
        assert_eq!(files_containing(dir, KEY), Vec::<String>::new(), "the key");
        for i in [0, 1, 150, 299] {
            assert_eq!(files_containing(dir, secret(i).as_bytes()), Vec::<String>::new(), "payload {i}");
        }
    }
    // Every other record is where it was; the marker is the last record.
    let after: Vec<_> = topic.iter(0).unwrap().map(|r| r.unwrap()).collect();
    let others: Vec<_> = before.into_iter().filter(|r| r.key.as_deref() != Some(KEY)).collect();
    assert_eq!(&after[..others.len()], &others[..]);
    let marker = after.last().unwrap();
    assert!(marker.tombstone);
    assert_eq!(marker.key.as_deref(), Some(&erasure_marker_key(KEY)[..]));
    assert_eq!(Some(marker.offset), report.marker_offset);
    // The group still works, and its dead letter is gone.
    let g = topic.group("mailer", quick_group()).unwrap();
    assert!(g.dead_letters().unwrap().is_empty());
    drop(g);
    drop(topic);
    drop(store);
    // A reopen finds the same.
    let store = Store::open(&store_dir, small_store_options()).unwrap();
    let topic = store.topic("people").unwrap();
    let reopened: Vec<_> = topic.iter(0).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(reopened, after);
}

#[test]
fn erasing_a_key_of_the_active_segment_only_rolls_it() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path(), Options::default().segment_bytes(1 << 20)).unwrap();
    for i in 0..100u32 {
        let key: &[u8] = if i % 2 == 0 { KEY } else { b"other" };
        log.append(Record::new(secret(i).as_bytes()).key(key)).unwrap();
    }
    let report = log.erase(KEY).unwrap();
    assert_eq!((report.records_erased, report.segments_rewritten), (50, 1));
    assert_eq!(files_containing(tmp.path(), KEY), Vec::<String>::new());
    assert_eq!(files_containing(tmp.path(), secret(0).as_bytes()), Vec::<String>::new());
    assert_eq!(log.iter(0).count(), 51, "the others and the marker");
    // The stream of the key is empty; another key's is whole.
    assert_eq!(log.stream_version(KEY).unwrap(), 0);
    assert_eq!(log.stream_version(b"other").unwrap(), 50);
    // Erasing again finds nothing, and appends another marker.
    let again = log.erase(KEY).unwrap();
    assert_eq!(again.records_erased, 0);
}

/// Appends go on during an erasure, some of them of the erased key, rolling segments: every
/// record of the key appended before the erasure began is gone when it returns. (The first
/// version chased the records appended meanwhile too, and an appender faster than the
/// rewrites made it give up after its rounds.)
#[test]
fn an_erasure_with_appends_running_removes_every_record_from_before_it() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path(), Options::default().segment_bytes(16 << 10).durability(tidelog::Durability::None))
        .unwrap();
    let append = |log: &Log, i: u32| {
        let key: &[u8] = if i.is_multiple_of(50) { KEY } else { b"other" };
        log.append(Record::new(secret(i).as_bytes()).key(key)).unwrap();
    };
    for i in 0..3000 {
        append(&log, i);
    }
    let start = log.next_offset();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let log2 = &log;
        let stop = &stop;
        s.spawn(move || {
            let mut i = 3000;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 100_000 {
                append(log2, i);
                i += 1;
            }
        });
        let report = log.erase(KEY);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(report.unwrap().records_erased >= 60);
    });
    for r in log.iter(0) {
        let r = r.unwrap();
        if r.key.as_deref() == Some(KEY) {
            assert!(r.offset >= start, "record {} of the key was appended before the erasure", r.offset);
        }
    }
}

/// A read view grouped by key holds the key in its state and snapshots. An erasure through
/// the topic is refused while the view is open (it would write the key into its next
/// snapshot) and changes nothing; once the view is stopped, the erasure removes the view's
/// snapshots that covered the key, no file of the store holds the key, and the view reopened
/// from the log no longer knows it.
#[test]
fn an_erasure_cleans_the_topics_read_views_and_waits_for_them_to_close() {
    use tidelog::{GroupBy, ValueOf, ViewDefinition, ViewOptions, Views};
    let tmp = tempfile::tempdir().unwrap();
    let store_dir = tmp.path().join("store");
    let store = Store::open(&store_dir, small_store_options()).unwrap();
    let topic = store.topic("people").unwrap();
    let def = || ViewDefinition::aggregate("per-person", 1, GroupBy::Key, ValueOf::Nothing);
    let views = Views::for_topic(&topic).unwrap();
    let view = views.aggregate(def(), ViewOptions::default()).unwrap();
    let mut last = 0;
    for i in 0..50u32 {
        let key: &[u8] = if i % 5 == 0 { KEY } else { b"bob" };
        last = topic.publish(Record::new(secret(i).as_bytes()).key(key)).unwrap();
    }
    let before = view.query_at_least(last + 1, Duration::from_secs(10), |s| s.get(KEY).map(|g| g.records)).unwrap();
    assert_eq!(before.value, Some(10));

    let refused = topic.erase(KEY).unwrap_err();
    assert!(matches!(refused, tidelog::Error::Locked { .. }), "{refused:?}");
    assert_eq!(topic.read(0).unwrap().key(), Some(KEY), "a refused erasure changes nothing");

    view.stop().unwrap();
    drop(view);
    drop(views);
    let report = topic.erase(KEY).unwrap();
    assert_eq!(report.records_erased, 10);
    assert!(files_containing(&store_dir, KEY).is_empty(), "{:?}", files_containing(&store_dir, KEY));

    let views = Views::for_topic(&topic).unwrap();
    let view = views.aggregate(def(), ViewOptions::default()).unwrap();
    let end = topic.next_offset();
    let after = view
        .query_at_least(end, Duration::from_secs(10), |s| (s.get(KEY).is_some(), s.get(b"bob").map(|g| g.records)))
        .unwrap();
    assert_eq!(after.value, (false, Some(40)));
}

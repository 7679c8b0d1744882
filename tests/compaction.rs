//! Key compaction: what it keeps (the newest record of each key, every keyless record, every
//! offset as it was), tombstones, readers and followers during and after a swap, reopening,
//! the background thread with appends running, and the topic's cleanup policy.

use std::collections::BTreeMap;
use std::time::Duration;

use tidelog::{
    BackgroundCompaction, CleanupPolicy, CompactOptions, Durability, Error, Log, Options, OwnedRecord, Record, Store,
    StoreOptions,
};

fn opts() -> Options {
    Options::default().segment_bytes(16 * 1024).index_interval_bytes(512).durability(Durability::None)
}

/// Appends `rounds` updates of `keys` keys (payload `k{key}-v{round}`), with one keyless
/// record after every key's update. Returns every record appended, by offset.
fn fill(log: &Log, keys: usize, rounds: usize) -> BTreeMap<u64, (Option<String>, String)> {
    let mut all = BTreeMap::new();
    for round in 0..rounds {
        for k in 0..keys {
            let key = format!("key-{k}");
            let payload = format!("k{k}-v{round}");
            let o = log.append(Record::new(payload.as_bytes()).key(key.as_bytes())).unwrap();
            all.insert(o, (Some(key), payload));
            let note = format!("note-{round}-{k}");
            let o = log.append(Record::new(note.as_bytes())).unwrap();
            all.insert(o, (None, note));
        }
    }
    all
}

fn records(log: &Log) -> BTreeMap<u64, (Option<String>, String)> {
    log.iter(0)
        .map(|r| {
            let r: OwnedRecord = r.unwrap();
            let key = r.key.map(|k| String::from_utf8(k).unwrap());
            (r.offset, (key, String::from_utf8(r.payload).unwrap()))
        })
        .collect()
}

/// The records compaction must keep of `all`: keyless ones, and the newest of each key.
fn expected(all: &BTreeMap<u64, (Option<String>, String)>) -> BTreeMap<u64, (Option<String>, String)> {
    let mut newest: BTreeMap<&str, u64> = BTreeMap::new();
    for (o, (k, _)) in all {
        if let Some(k) = k {
            newest.insert(k, *o);
        }
    }
    all.iter()
        .filter(|(o, (k, _))| k.as_deref().is_none_or(|k| newest[k] == **o))
        .map(|(o, v)| (*o, v.clone()))
        .collect()
}

#[test]
fn compaction_keeps_the_newest_record_of_each_key_and_every_keyless_record_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), opts()).unwrap();
    let all = fill(&log, 50, 6);
    let next = log.next_offset();
    let report = log.compact(&CompactOptions::default().roll_active(true)).unwrap();
    assert!(report.segments_rewritten > 0);
    assert_eq!(report.records_removed, 50 * 5);
    assert!(report.bytes_after < report.bytes_before, "{report:?}");
    assert_eq!(records(&log), expected(&all));
    assert_eq!(log.next_offset(), next, "offsets are preserved");
    // Reading a removed offset says so and names the next record.
    assert!(matches!(log.read(0), Err(Error::OffsetCompacted { .. })));
    // A second compaction finds nothing to do; appends continue at the same end.
    let again = log.compact(&CompactOptions::default()).unwrap();
    assert_eq!(again.records_removed, 0);
    let o = log.append(Record::new(b"after").key(b"key-0")).unwrap();
    assert_eq!(o, next);
    drop(log);
    let log = Log::open(dir.path(), opts()).unwrap();
    let mut want = expected(&all);
    want.insert(next, (Some("key-0".into()), "after".into()));
    assert_eq!(records(&log), want, "a reopen sees the compacted log");
    assert!(log.verify(|_| {}).is_intact());
}

#[test]
fn the_active_segment_is_left_alone_unless_rolled() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), opts().segment_bytes(1 << 20)).unwrap();
    let all = fill(&log, 10, 3);
    let report = log.compact(&CompactOptions::default()).unwrap();
    assert_eq!(report.records_removed, 0, "everything is in the active segment");
    assert_eq!(records(&log), all);
}

#[test]
fn a_tombstone_hides_its_key_and_goes_itself_after_the_delete_retention() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), opts()).unwrap();
    fill(&log, 20, 3);
    let t = log.append(Record::new(b"").key(b"key-3").tombstone()).unwrap();
    let day = CompactOptions::default().roll_active(true);
    log.compact(&day).unwrap();
    let left = records(&log);
    let of_key: Vec<u64> = left.iter().filter(|(_, (k, _))| k.as_deref() == Some("key-3")).map(|(o, _)| *o).collect();
    assert_eq!(of_key, vec![t], "only the tombstone is left of key-3");
    assert!(log.read(t).unwrap().tombstone, "the tombstone stays for the delete retention");
    let now = CompactOptions::default().roll_active(true).delete_retention(Duration::ZERO);
    let report = log.compact(&now).unwrap();
    assert_eq!(report.tombstones_removed, 1);
    assert!(matches!(log.read(t), Err(Error::OffsetCompacted { .. })));
    assert_eq!(records(&log).len(), left.len() - 1);
}

#[test]
fn a_reader_holding_the_old_segment_keeps_reading_it_whole() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), opts()).unwrap();
    let all = fill(&log, 30, 5);
    log.append(Record::new(b"roll")).unwrap();
    let mut it = log.iter(0);
    let first = it.next().unwrap().unwrap();
    log.compact(&CompactOptions::default()).unwrap();
    // The iterator holds the list it started with: every old record, intact.
    let mut seen = vec![first.offset];
    for r in it {
        let r = r.unwrap();
        if let Some((_, p)) = all.get(&r.offset) {
            assert_eq!(p.as_bytes(), &r.payload[..]);
        }
        seen.push(r.offset);
    }
    assert_eq!(seen.len(), all.len() + 1, "the reader saw the log as it was");
    assert!(records(&log).len() < all.len());
}

#[test]
fn a_follower_picks_up_the_swapped_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), opts()).unwrap();
    let all = fill(&log, 30, 5);
    let follower = Log::open_read_only(dir.path(), opts()).unwrap();
    assert_eq!(records(&follower), all);
    log.compact(&CompactOptions::default().roll_active(true)).unwrap();
    follower.refresh().unwrap();
    assert_eq!(records(&follower), expected(&all), "the follower reads the rewritten segments");
    let o = log.append(Record::new(b"later")).unwrap();
    assert!(follower.wait_for(o, Duration::from_secs(10)).unwrap());
    assert_eq!(follower.read(o).unwrap().payload, b"later");
}

#[test]
fn background_compaction_runs_past_the_dirty_ratio_while_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), opts()).unwrap();
    fill(&log, 20, 10);
    let bg = BackgroundCompaction::default()
        .compact(CompactOptions::default().min_dirty_ratio(0.5))
        .check_every(Duration::from_millis(5));
    let handle = log.compact_in_background(bg).unwrap();
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || fill(&log, 20, 10))
    };
    let written = writer.join().unwrap();
    let n = handle.checks();
    handle.wait_for_checks(n + 2);
    handle.stop().unwrap();
    // Everything appended is there or superseded.
    let left = records(&log);
    for (o, v) in &expected(&written) {
        if left.contains_key(o) {
            assert_eq!(&left[o], v);
        }
    }
    let latest: BTreeMap<_, _> =
        left.values().filter_map(|(k, p)| k.clone().map(|k| (k, p.clone()))).collect::<BTreeMap<_, _>>();
    for k in 0..20 {
        assert_eq!(latest[&format!("key-{k}")], format!("k{k}-v9"));
    }
    assert!(log.dirty_ratio(&CompactOptions::default()).unwrap() < 0.5);
}

#[test]
fn a_topic_compacts_by_its_cleanup_policy() {
    let dir = tempfile::tempdir().unwrap();
    let so = StoreOptions::default().topic(opts()).cleanup_policy_for("table", CleanupPolicy::Compact);
    let store = Store::open(dir.path(), so).unwrap();
    let table = store.topic("table").unwrap();
    let events = store.topic("events").unwrap();
    assert_eq!(table.cleanup_policy(), CleanupPolicy::Compact);
    assert_eq!(events.cleanup_policy(), CleanupPolicy::Delete);
    for t in [&table, &events] {
        for i in 0..2000u32 {
            t.publish(Record::new(&i.to_le_bytes()).key(format!("k{}", i % 10).as_bytes())).unwrap();
        }
    }
    let copts = CompactOptions::default().roll_active(true);
    let retention = tidelog::RetentionPolicy::default();
    let (c, r) = table.apply_cleanup(&copts, &retention).unwrap();
    assert!(c.unwrap().records_removed >= 1990 - 10);
    assert!(r.is_none());
    let (c, r) = events.apply_cleanup(&copts, &retention).unwrap();
    assert!(c.is_none() && r.is_some());
}

#[test]
fn a_read_only_handle_cannot_compact_and_bad_ratios_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), opts()).unwrap();
    log.append(Record::new(b"x")).unwrap();
    let ro = Log::open_read_only(dir.path(), opts()).unwrap();
    assert!(matches!(ro.compact(&CompactOptions::default()), Err(Error::ReadOnly)));
    let bad = CompactOptions::default().min_dirty_ratio(1.5);
    assert!(matches!(log.compact(&bad), Err(Error::InvalidOptions(_))));
}

#[test]
fn a_consumer_group_reading_while_the_topic_is_compacted_gets_every_latest_value_once() {
    let dir = tempfile::tempdir().unwrap();
    let so = StoreOptions::default().topic(opts()).cleanup_policy(CleanupPolicy::Compact);
    let store = Store::open(dir.path(), so).unwrap();
    let t = store.topic("table").unwrap();
    for round in 0..20u32 {
        for k in 0..10u32 {
            t.publish(Record::new(format!("{k}:{round}").as_bytes()).key(format!("k{k}").as_bytes())).unwrap();
        }
    }
    let g = t.group("reader", tidelog::GroupOptions::default()).unwrap();
    let mut delivered = Vec::new();
    // Half read before the compaction, the rest after.
    while delivered.len() < 100 {
        for d in g.poll(100 - delivered.len(), Duration::from_secs(5)).unwrap() {
            delivered.push((d.offset(), String::from_utf8(d.record().payload.clone()).unwrap()));
            g.ack(&d).unwrap();
        }
    }
    let report = t.compact(&CompactOptions::default().roll_active(true)).unwrap();
    assert!(report.records_removed > 0);
    loop {
        let got = g.poll(100, Duration::from_millis(300)).unwrap();
        if got.is_empty() {
            break;
        }
        for d in got {
            delivered.push((d.offset(), String::from_utf8(d.record().payload.clone()).unwrap()));
            g.ack(&d).unwrap();
        }
    }
    let offsets: Vec<u64> = delivered.iter().map(|(o, _)| *o).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "in order, none twice");
    for k in 0..10 {
        assert!(delivered.iter().any(|(_, p)| *p == format!("{k}:19")), "the latest value of k{k}");
    }
    assert_eq!(g.lag().unwrap().unconsumed, 0);
}

/// The latest value of each key: a fold that compaction does not change.
struct Latest;

impl tidelog::Projection for Latest {
    type State = BTreeMap<Vec<u8>, Vec<u8>>;
    fn name(&self) -> &str {
        "latest"
    }
    fn fingerprint(&self) -> u64 {
        tidelog::fingerprint_of(b"latest value per key, v1")
    }
    fn initial(&self) -> Self::State {
        BTreeMap::new()
    }
    fn apply(&self, state: &mut Self::State, r: &tidelog::RecordView<'_>) -> Result<(), tidelog::BoxError> {
        if let Some(k) = r.key() {
            state.insert(k.to_vec(), r.payload().to_vec());
        }
        Ok(())
    }
    fn snapshot(&self, state: &Self::State, out: &mut Vec<u8>) -> Result<(), tidelog::BoxError> {
        for (k, v) in state {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(k);
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
        Ok(())
    }
    fn restore(&self, mut b: &[u8]) -> Result<Self::State, tidelog::BoxError> {
        let mut state = BTreeMap::new();
        let take = |b: &mut &[u8]| -> Result<Vec<u8>, tidelog::BoxError> {
            let n = u32::from_le_bytes(b.get(..4).ok_or("short")?.try_into()?) as usize;
            let v = b.get(4..4 + n).ok_or("short")?.to_vec();
            *b = &b[4 + n..];
            Ok(v)
        };
        while !b.is_empty() {
            let k = take(&mut b)?;
            let v = take(&mut b)?;
            state.insert(k, v);
        }
        Ok(state)
    }
}

#[test]
fn a_projection_restored_from_a_snapshot_taken_before_a_compaction_catches_up_over_the_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let snaps = dir.path().join("snaps");
    let log = Log::open(dir.path().join("log"), opts()).unwrap();
    fill(&log, 30, 4);
    let mut runner =
        tidelog::ProjectionRunner::open(log.clone(), Latest, &snaps, tidelog::RunnerOptions::default()).unwrap();
    runner.run_until_caught_up().unwrap();
    runner.checkpoint().unwrap();
    drop(runner);
    fill(&log, 30, 3);
    log.compact(&CompactOptions::default().roll_active(true)).unwrap();
    let mut runner =
        tidelog::ProjectionRunner::open(log.clone(), Latest, &snaps, tidelog::RunnerOptions::default()).unwrap();
    assert!(runner.snapshot_position().is_some(), "restored from the snapshot");
    runner.run_until_caught_up().unwrap();
    let restored = runner.into_state();
    let mut from_scratch = BTreeMap::new();
    for r in log.iter(0) {
        let r = r.unwrap();
        if let Some(k) = r.key {
            from_scratch.insert(k, r.payload);
        }
    }
    assert_eq!(restored, from_scratch);
    assert_eq!(restored[&b"key-7"[..]], b"k7-v2");
}

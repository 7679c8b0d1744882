//! A compaction and an erasure that fail at each single call on the storage seam (every
//! create, write, fsync, rename, remove and directory fsync they make, one at a time), then a
//! reopen: the log holds each segment as it was or as rewritten, never a mix, never without
//! the segment; the newest value of every key is there, intact; no record is invented; no
//! temporary file of the rewrite is left; and the reopened log compacts to the expected result.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::faults::Faults;
use tidelog::{CompactOptions, Durability, Log, Options, Record};

type Recs = BTreeMap<u64, (Option<String>, bool, Vec<u8>)>;

fn opts() -> Options {
    Options::default().segment_bytes(8 * 1024).index_interval_bytes(256).durability(Durability::None)
}

fn fill(log: &Log) {
    for round in 0..5 {
        for k in 0..12 {
            let key = format!("key-{k}");
            let payload = format!("k{k}-v{round}-").repeat(8);
            log.append(Record::new(payload.as_bytes()).key(key.as_bytes())).unwrap();
            if k % 4 == 0 {
                log.append(Record::new(format!("note-{round}-{k}").as_bytes())).unwrap();
            }
        }
    }
    // key-5 is deleted.
    log.append(Record::new(b"").key(b"key-5").tombstone()).unwrap();
    log.sync().unwrap();
}

fn records(log: &Log) -> Recs {
    log.iter(0)
        .map(|r| {
            let r = r.unwrap();
            (r.offset, (r.key.map(|k| String::from_utf8(k).unwrap()), r.tombstone, r.payload))
        })
        .collect()
}

/// The newest record of each key.
fn newest(recs: &Recs) -> BTreeMap<String, u64> {
    recs.iter().filter_map(|(o, (k, _, _))| k.clone().map(|k| (k, *o))).collect()
}

/// Check what a reopen after a failure at some call shows, against the log before.
fn check(dir: &Path, before: &Recs, ctx: &str, erased: Option<&str>) {
    let log = Log::open(dir, opts()).unwrap_or_else(|e| panic!("{ctx}: reopen failed: {e}"));
    let after = records(&log);
    for (o, rec) in &after {
        if rec.0.as_deref().is_some_and(|k| k.starts_with(tidelog::ERASURE_MARKER_PREFIX)) {
            continue;
        }
        assert_eq!(before.get(o), Some(rec), "{ctx}: record {o} is not one that was written");
    }
    let newest_before = newest(before);
    for (key, o) in &newest_before {
        let tombstone = before[o].1;
        if !tombstone && erased != Some(key.as_str()) {
            assert!(after.contains_key(o), "{ctx}: the newest record of {key} (offset {o}) is gone");
        }
    }
    // A key whose tombstone is gone has no record left.
    let (k5, t5) = newest_before.iter().find(|(k, _)| k.as_str() == "key-5").map(|(k, o)| (k.clone(), *o)).unwrap();
    if !after.contains_key(&t5) {
        assert!(!after.values().any(|(k, _, _)| k.as_deref() == Some(&k5)), "{ctx}: key-5 came back");
    }
    for (o, (k, _, _)) in before {
        if k.is_none() {
            assert!(after.contains_key(o), "{ctx}: keyless record {o} is gone");
        }
    }
    assert!(log.verify(|_| {}).is_intact(), "{ctx}: verify");
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(!name.ends_with(".compact.tmp"), "{ctx}: {name} was left");
    }
    // And the reopened log finishes the job.
    if let Some(key) = erased {
        log.erase(key.as_bytes()).unwrap();
        let left = records(&log);
        assert!(!left.values().any(|(k, _, _)| k.as_deref() == Some(key)), "{ctx}: {key} after a full erasure");
        return;
    }
    log.compact(&CompactOptions::default().roll_active(true).delete_retention(Duration::ZERO)).unwrap();
    let done = records(&log);
    for (key, o) in &newest_before {
        let kept: Vec<u64> =
            done.iter().filter(|(_, (k, _, _))| k.as_deref() == Some(key.as_str())).map(|(o, _)| *o).collect();
        if before[o].1 {
            assert!(kept.is_empty(), "{ctx}: {key} after a full compaction: {kept:?}");
        } else {
            assert_eq!(kept, vec![*o], "{ctx}: {key} after a full compaction");
        }
    }
}

/// Run `op` on a fresh log with the `n`-th call failing; returns false once `op` made fewer
/// than `n + 1` calls (nothing failed: every step has been tried).
fn run_failing_at(n: usize, op: &dyn Fn(&Log) -> tidelog::Result<()>, erased: Option<&str>) -> bool {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir, opts()).unwrap();
    fill(&log);
    let before = records(&log);
    let (faults, guard) = Faults::on(&dir);
    faults.fail_nth(n, None);
    let result = op(&log);
    let failed = faults.failed();
    drop(guard);
    drop(log);
    let ctx = format!("failing call {n} ({failed:?}), op returned {result:?}");
    if failed.is_empty() {
        assert!(result.is_ok(), "{ctx}");
    } else {
        assert!(result.is_err(), "{ctx}: a failed call must be reported");
    }
    check(&dir, &before, &ctx, erased);
    !failed.is_empty()
}

#[test]
fn a_compaction_failing_at_any_single_call_leaves_the_old_or_the_new_segment() {
    let op = |log: &Log| {
        let opts = CompactOptions::default().roll_active(true).delete_retention(Duration::ZERO);
        log.compact(&opts).map(|_| ())
    };
    let mut n = 0;
    while run_failing_at(n, &op, None) {
        n += 1;
    }
    assert!(n > 20, "only {n} calls were tried");
}

#[test]
fn an_erasure_failing_at_any_single_call_leaves_the_old_or_the_new_segment() {
    let op = |log: &Log| log.erase(b"key-7").map(|_| ());
    let mut n = 0;
    while run_failing_at(n, &op, Some("key-7")) {
        n += 1;
    }
    assert!(n > 5, "only {n} calls were tried");
}

/// A poisoned writer remembers its last durable point, and the next open cuts the log back
/// to it. That point was taken when a segment was sealed, as a position in that segment; an
/// erasure then rewrote the segment shorter, a flush failed, and the reopen refused the log
/// ("data missing" in the rewritten segment, at the old position). Swapping a rewritten
/// segment in now first moves the checkpoint, and with it the durable point, to the start of
/// the active segment.
#[test]
fn a_flush_failing_after_a_rewrite_reopens_at_a_point_outside_the_rewritten_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir, opts().segment_bytes(1 << 20)).unwrap();
    fill(&log);
    log.erase_with(b"key-7", &tidelog::EraseOptions::default().marker(false)).unwrap();
    let (faults, guard) = Faults::on(&dir);
    faults.break_op(tidelog::testing::IoOp::Msync);
    log.append(Record::new(b"lost").key(b"key-1")).unwrap();
    assert!(log.sync().is_err());
    drop(guard);
    drop(log);
    let log = Log::open(&dir, opts()).unwrap();
    let left = records(&log);
    assert!(!left.values().any(|(k, _, _)| k.as_deref() == Some("key-7")));
    assert_eq!(left.values().filter(|(k, _, _)| k.as_deref() == Some("key-1")).count(), 5);
}

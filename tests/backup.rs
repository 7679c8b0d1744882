//! Backups taken while a writer appends: `Log::backup` and `Store::backup` copy a prefix of
//! committed records that opens cleanly and verifies intact, and refuse a destination that
//! holds anything.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use tidelog::{Error, GroupOptions, Log, Options, Record, Store, StoreOptions};

fn small() -> Options {
    Options::default().segment_bytes(16 * 1024).index_interval_bytes(512)
}

/// Payload of record `i`: its number and bytes that depend on it, so a misplaced or torn
/// record cannot compare equal.
fn payload(i: u64) -> Vec<u8> {
    let mut p = format!("record-{i}-").into_bytes();
    p.extend((0..(i % 97)).map(|j| (i.wrapping_mul(31) ^ j) as u8));
    p
}

/// Every record of the backup is the source's record at the same offset, the backup opens
/// with a clean shutdown and verifies intact.
fn assert_prefix_of(backup: &Path, source: &Log, next: u64) {
    let copy = Log::open_read_only(backup, Options::default()).unwrap();
    assert!(copy.open_report().clean_shutdown, "{:?}", copy.open_report());
    assert_eq!(copy.next_offset(), next);
    assert!(copy.verify(|_| {}).is_intact());
    for (i, rec) in copy.iter(copy.first_offset()).enumerate() {
        let rec = rec.unwrap();
        assert_eq!(rec.offset(), copy.first_offset() + i as u64);
        let want = source.read(rec.offset()).unwrap();
        assert_eq!(rec.payload(), want.payload());
        assert_eq!(rec.timestamp_us(), want.timestamp_us());
        assert_eq!(rec.payload(), payload(rec.offset()));
    }
}

/// Appends numbered records until told to stop; returns how many.
fn appender(log: Log, stop: Arc<AtomicBool>) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let mut i = log.next_offset();
        while !stop.load(Ordering::Relaxed) {
            let batch: Vec<Vec<u8>> = (i..i + 7).map(payload).collect();
            let recs: Vec<Record<'_>> = batch.iter().map(|p| Record::new(p)).collect();
            log.append_batch(&recs).unwrap();
            i += 7;
        }
        i
    })
}

#[test]
fn a_backup_taken_through_the_writer_while_it_appends_is_a_durable_prefix_that_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path().join("src"), small()).unwrap();
    for i in 0..500 {
        log.append(Record::new(&payload(i))).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = appender(log.clone(), stop.clone());
    let mut reports = Vec::new();
    for n in 0..3 {
        let dest = tmp.path().join(format!("backup-{n}"));
        let before = log.next_offset();
        let r = log.backup(&dest).unwrap();
        assert!(r.next_offset >= before, "the backup holds what was committed when it started");
        assert!(r.segments >= 2);
        reports.push(r);
    }
    stop.store(true, Ordering::Relaxed);
    let end = writer.join().unwrap();
    assert!(end > 500);
    for r in &reports {
        assert_eq!(r.first_offset, 0);
        assert_eq!(r.records, r.next_offset);
        assert_prefix_of(&r.dir, &log, r.next_offset);
    }
}

#[test]
fn a_backup_taken_through_a_follower_while_the_writer_appends_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let log = Log::open(&src, small()).unwrap();
    log.append(Record::new(&payload(0))).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = appender(log.clone(), stop.clone());
    while log.next_offset() < 2_000 {
        thread::yield_now();
    }
    let follower = Log::open_read_only(&src, Options::default()).unwrap();
    let dest = tmp.path().join("backup");
    let r = follower.backup(&dest).unwrap();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(r.next_offset >= 2_000);
    assert_prefix_of(&dest, &log, r.next_offset);
    assert!(!tmp.path().join("backup~partial").exists());
}

#[test]
fn a_backup_refuses_a_destination_that_holds_anything_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(tmp.path().join("src"), small()).unwrap();
    log.append(Record::new(b"x")).unwrap();
    let dest = tmp.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("keep.txt"), b"mine").unwrap();
    assert!(matches!(log.backup(&dest), Err(Error::BackupDestinationNotEmpty { .. })));
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 1);
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    assert!(matches!(log.backup(&file), Err(Error::BackupDestinationNotEmpty { .. })));
    // An empty directory is fine.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_eq!(log.backup(&empty).unwrap().next_offset, 1);
}

#[test]
fn a_store_backup_while_a_topic_is_written_and_consumed_opens_with_every_group() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = StoreOptions::default().topic(small());
    let store = Store::open(tmp.path().join("store"), opts.clone()).unwrap();
    let t = store.topic("orders").unwrap();
    for i in 0..300 {
        t.publish(Record::new(&payload(i))).unwrap();
    }
    let g = t.group("billing", GroupOptions::default()).unwrap();
    let ds = g.poll(100, std::time::Duration::from_secs(1)).unwrap();
    g.ack_batch(&ds).unwrap();
    store.topic("quiet").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (t, stop) = (t.clone(), stop.clone());
        thread::spawn(move || {
            let mut i = 300;
            while !stop.load(Ordering::Relaxed) {
                t.publish(Record::new(&payload(i))).unwrap();
                i += 1;
            }
        })
    };
    let dest = tmp.path().join("copy");
    let r = store.backup(&dest).unwrap();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    g.close().unwrap();
    assert!(r.logs.iter().all(|l| l.dir.starts_with(&dest)), "{r:?}");

    let copy = Store::open(&dest, opts.create_if_missing(false)).unwrap();
    assert_eq!(copy.topic_names().unwrap(), ["orders", "quiet"]);
    assert_eq!(copy.group_names("orders").unwrap(), ["billing"]);
    let lag = copy.group_lag("orders", "billing").unwrap();
    assert_eq!(lag.committed, 100, "{lag:?}");
    let orders = copy.open_topic("orders").unwrap();
    assert!(orders.next_offset() >= 300);
    let src = Log::open_read_only(t.dir(), Options::default()).unwrap();
    assert_prefix_of(orders.dir(), &src, orders.next_offset());
    // The copied group resumes where the original was.
    let g2 = orders.group("billing", GroupOptions::default()).unwrap();
    let next = g2.poll(1, std::time::Duration::from_secs(1)).unwrap();
    assert_eq!(next[0].offset(), 100);
}

//! Smoke tests: append, reopen, read; torn tails and damage; salvage; time lookups.

mod common;

use common::copy_dir;
use tidelog::*;

#[test]
fn smoke_append_reopen_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("l");
    let opts = Options::default().segment_bytes(64 * 1024).index_interval_bytes(256);
    let log = Log::open(&dir, opts.clone()).unwrap();
    for i in 0..5000u64 {
        let p = format!("payload-{i}");
        let k = format!("k{}", i % 7);
        assert_eq!(log.append(Record::new(p.as_bytes()).key(k.as_bytes())).unwrap(), i);
    }
    assert!(log.segments().len() > 3);
    for i in (0..5000u64).step_by(37) {
        assert_eq!(log.read(i).unwrap().payload, format!("payload-{i}").into_bytes());
    }
    let mut c = log.cursor(0);
    let mut n = 0;
    while let Some(r) = c.next().unwrap() {
        assert_eq!(r.offset(), n);
        n += 1;
    }
    assert_eq!(n, 5000);
    log.close().unwrap();
    let log = Log::open(&dir, opts.clone()).unwrap();
    assert!(log.open_report().clean_shutdown, "{:?}", log.open_report());
    assert_eq!(log.open_report().scanned_bytes, 0);
    assert_eq!(log.next_offset(), 5000);
    assert_eq!(log.read(4999).unwrap().payload, b"payload-4999");
    assert_eq!(log.append(Record::new(b"x")).unwrap(), 5000);
    drop(log);
    let log = Log::open(&dir, opts).unwrap();
    assert_eq!(log.next_offset(), 5001);
    let t = log.read(2500).unwrap().timestamp_us;
    let o = log.offset_for_time(t).unwrap().unwrap();
    assert!(o <= 2500);
    assert!(log.verify(|_| {}).damage.is_empty());
}

/// A log of 100 records `p0000`..`p0099`, one 48-byte frame each (40 header + 5 payload,
/// aligned to 8), in one 1 MiB segment: record `i` starts at byte `64 + 48 * i`.
fn hundred_records() -> (tempfile::TempDir, std::path::PathBuf, Options, Log) {
    hundred_records_with(Durability::None)
}

fn hundred_records_with(durability: Durability) -> (tempfile::TempDir, std::path::PathBuf, Options, Log) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("l");
    let opts = Options::default().segment_bytes(1 << 20).durability(durability);
    let log = Log::open(&dir, opts.clone()).unwrap();
    for i in 0..100u64 {
        log.append(Record::new(format!("p{i:04}").as_bytes())).unwrap();
    }
    (tmp, dir, opts, log)
}

/// The byte position of record `offset` in the first segment of the log copied at `dir`.
fn frame_pos(dir: &std::path::Path, offset: u64) -> usize {
    let bytes = std::fs::read(dir.join(format!("{:020}.log", 0))).unwrap();
    common::parse_frames(&bytes).iter().find(|f| f.offset == offset).unwrap().pos as usize
}

fn flip(dir: &std::path::Path, at: usize) {
    let seg = dir.join(format!("{:020}.log", 0));
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[at] ^= 1;
    std::fs::write(&seg, &bytes).unwrap();
}

#[test]
fn smoke_torn_tail_and_mid_damage() {
    let (tmp, dir, opts, log) = hundred_records();
    // Image of a killed process: the page cache as it is, no close.
    let img = tmp.path().join("img");
    copy_dir(&dir, &img);
    // Each frame: 40 header + 5 payload = 45 -> 48 aligned. Record 99 at 64 + 99*48.
    flip(&img, 64 + 99 * 48 + 20);
    let l2 = Log::open(&img, opts.clone()).unwrap();
    assert_eq!(l2.next_offset(), 99, "{:?}", l2.open_report());
    assert!(l2.open_report().torn_bytes_zeroed > 0);
    assert_eq!(l2.append(Record::new(b"again")).unwrap(), 99);
    drop(l2);
    // Nothing here was ever made durable: damage in the middle, with valid records after it,
    // lies past the durable point. A power loss that keeps a later page but not an earlier one
    // looks exactly like this, so it is a torn tail: cut, and the log goes on.
    let img1 = tmp.path().join("img1");
    copy_dir(&dir, &img1);
    flip(&img1, 64 + 50 * 48 + 42);
    let l1 = Log::open(&img1, opts.clone()).unwrap();
    assert_eq!(l1.next_offset(), 50, "{:?}", l1.open_report());
    assert!(l1.open_report().torn_bytes_zeroed > 0);
    assert_eq!(l1.read(49).unwrap().payload, b"p0049");
    drop(l1);
    log.close().unwrap();

    // Damage followed by valid records that prove it was durable (each append here was
    // flushed, and the next frame carries the durable mark) is reported, not cut away.
    let (tmp, dir, opts, log) = hundred_records_with(Durability::Always);
    let img2 = tmp.path().join("img2");
    copy_dir(&dir, &img2);
    let at = frame_pos(&img2, 50);
    flip(&img2, at + 42);
    match Log::open(&img2, opts.clone()) {
        Err(Error::Corruption { location: Location::File { position, .. }, .. }) => {
            assert_eq!(position, at as u64)
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    let ro = Log::open(&img2, opts.recovery(RecoveryMode::ReadOnlyUpToDamage)).unwrap();
    assert!(ro.is_read_only());
    assert_eq!(ro.next_offset(), 50);
    assert_eq!(ro.read(49).unwrap().payload, b"p0049");
    assert!(matches!(ro.append(Record::new(b"x")), Err(Error::ReadOnly)));
    log.close().unwrap();
}

/// Salvage is the explicit way back to a writable log after media damage: the log is cut at
/// the damaged batch, appends continue at the next offset after the intact prefix, and the
/// bytes cut away (valid later records among them) are kept in a file beside the log.
#[test]
fn salvage_cuts_at_damage_keeps_the_cut_bytes_and_appends_continue() {
    let (tmp, dir, opts, log) = hundred_records_with(Durability::Always);
    // Damage to durable records, followed by valid records.
    let img = tmp.path().join("img");
    copy_dir(&dir, &img);
    flip(&img, frame_pos(&img, 50) + 42);
    let salvage = opts.clone().recovery(RecoveryMode::Salvage);
    let l = Log::open(&img, salvage.clone()).unwrap();
    assert!(!l.is_read_only());
    assert_eq!(l.next_offset(), 50);
    let kept = l.open_report().salvaged.clone().expect("salvage file");
    let kept_bytes = std::fs::read(&kept).unwrap();
    assert!(kept_bytes.windows(5).any(|w| w == b"p0099"), "later records kept");
    assert_eq!(l.read(49).unwrap().payload, b"p0049");
    assert_eq!(l.append(Record::new(b"after")).unwrap(), 50);
    l.close().unwrap();
    let l = Log::open(&img, opts.clone()).unwrap();
    assert_eq!(l.next_offset(), 51);
    assert_eq!(l.read(50).unwrap().payload, b"after");
    drop(l);

    // A cleanly closed file cut short below its checkpoint.
    log.close().unwrap();
    let img2 = tmp.path().join("img2");
    copy_dir(&dir, &img2);
    let seg2 = img2.join(format!("{:020}.log", 0));
    let cut = frame_pos(&img2, 80) + 20;
    let f = std::fs::OpenOptions::new().write(true).open(&seg2).unwrap();
    f.set_len(cut as u64).unwrap();
    drop(f);
    assert!(matches!(Log::open(&img2, opts.clone()), Err(Error::Corruption { .. })));
    let l = Log::open(&img2, salvage).unwrap();
    assert_eq!(l.next_offset(), 80);
    assert_eq!(l.read(79).unwrap().payload, b"p0079");
    assert_eq!(l.append(Record::new(b"x")).unwrap(), 80);
}

/// A checkpoint newer than its segment (a segment restored from an older copy: same length,
/// zeros where the last records were) must not make zeros pass for records. The open checks
/// the last stretch the checkpoint vouches for and reports the records missing.
#[test]
fn checkpoint_newer_than_its_segment_is_reported_not_trusted() {
    let (_tmp, dir, opts, log) = hundred_records();
    log.close().unwrap();
    let seg = dir.join(format!("{:020}.log", 0));
    let mut bytes = std::fs::read(&seg).unwrap();
    let from = 64 + 97 * 48;
    bytes[from..from + 3 * 48].fill(0);
    std::fs::write(&seg, &bytes).unwrap();
    match Log::open(&dir, opts.clone()) {
        Err(Error::Corruption { location: Location::File { position, .. }, kind: CorruptionKind::MissingData }) => {
            assert_eq!(position, from as u64)
        }
        other => panic!("expected missing data, got {other:?}"),
    }
    let l = Log::open(&dir, opts.recovery(RecoveryMode::Salvage)).unwrap();
    assert_eq!(l.next_offset(), 97);
    assert_eq!(l.append(Record::new(b"y")).unwrap(), 97);
}

/// `offset_for_time` gives the first offset whose timestamp is at or after the time asked,
/// for every boundary: batches share one timestamp, segments roll, and the index is sparse.
#[test]
fn offset_for_time_matches_a_linear_search_at_every_boundary() {
    let tmp = tempfile::tempdir().unwrap();
    let log =
        Log::open(tmp.path().join("l"), Options::default().segment_bytes(16 << 10).index_interval_bytes(256)).unwrap();
    let payload = [7u8; 60];
    for i in 0..400u64 {
        let n = 1 + (i % 5) as usize;
        let recs: Vec<Record> = (0..n).map(|_| Record::new(&payload)).collect();
        log.append_batch(&recs).unwrap();
        if i % 50 == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    assert!(log.segments().len() > 3);
    let ts: Vec<u64> = log.iter(0).map(|r| r.unwrap().timestamp_us).collect();
    let linear = |t: u64| ts.iter().position(|&x| x >= t).map(|i| i as u64);
    let mut probes: Vec<u64> = ts.iter().flat_map(|&t| [t.saturating_sub(1), t, t + 1]).collect();
    probes.extend([0, u64::MAX]);
    probes.sort_unstable();
    probes.dedup();
    for t in probes {
        assert_eq!(log.offset_for_time(t).unwrap(), linear(t), "t={t}");
    }
}

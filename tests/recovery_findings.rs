//! What open finds and what it does about it, one behaviour per test: missing segments,
//! damaged segment headers, damage to records `sync` made durable, temporary files, and
//! opens that fail without changing anything on disk.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::segment_files;
use tidelog::{CorruptionKind, Error, Location, Log, Options, Record, RecoveryMode};

fn opts() -> Options {
    Options::default().segment_bytes(8192).index_interval_bytes(512)
}

/// A cleanly closed log of five segments; returns the guard, the directory and the payload of
/// record `i` as a function.
fn five_segments() -> (tempfile::TempDir, PathBuf, u64) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir, opts()).unwrap();
    let mut n = 0u64;
    while log.segments().len() < 5 {
        log.append(Record::new(payload(n).as_bytes())).unwrap();
        n += 1;
    }
    log.close().unwrap();
    (tmp, dir, n)
}

fn payload(i: u64) -> String {
    format!("record-{i:06}-").repeat(8)
}

fn base_of(path: &Path) -> u64 {
    path.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

fn remove_segment(dir: &Path, base: u64, only_data: bool) {
    fs::remove_file(dir.join(format!("{base:020}.log"))).unwrap();
    if !only_data {
        fs::remove_file(dir.join(format!("{base:020}.index"))).unwrap();
        fs::remove_file(dir.join(format!("{base:020}.timeindex"))).unwrap();
    }
}

fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().len()))
        .filter(|(n, _)| n != "LOCK")
        .collect();
    v.sort();
    v
}

fn expect_missing(r: tidelog::Result<Log>, dir: &Path, offset: u64, ctx: &str) {
    match r {
        Err(Error::Corruption { location: Location::Log { dir: d, offset: o }, kind: CorruptionKind::MissingData }) => {
            assert_eq!((d.as_path(), o), (dir, offset), "{ctx}");
        }
        other => panic!("{ctx}: expected missing data at offset {offset}, got {other:?}"),
    }
}

fn check_readable(log: &Log, upto: u64, ctx: &str) {
    for i in 0..upto {
        assert_eq!(
            log.read(i).unwrap_or_else(|e| panic!("{ctx}: read {i}: {e}")).payload,
            payload(i).as_bytes(),
            "{ctx}"
        );
    }
}

/// Regression: with the last segment's files deleted, `verify` said intact, open reported a
/// clean shutdown with a smaller next offset, and new appends reused offsets the checkpoint
/// had vouched for, with other content.
#[test]
fn a_missing_last_segment_is_reported_not_silently_dropped() {
    for only_data in [false, true] {
        let (_tmp, dir, _n) = five_segments();
        let last = base_of(segment_files(&dir).last().unwrap());
        remove_segment(&dir, last, only_data);
        let before = listing(&dir);
        let ctx = if only_data { "only its .log deleted" } else { "all its files deleted" };
        expect_missing(Log::open(&dir, opts()), &dir, last, ctx);
        expect_missing(Log::open_read_only(&dir, opts()), &dir, last, ctx);
        assert_eq!(listing(&dir), before, "{ctx}: a failed open changes nothing");
        // Everything before the missing segment stays readable.
        let ro = Log::open(&dir, opts().recovery(RecoveryMode::ReadOnlyUpToDamage)).unwrap();
        assert!(ro.is_read_only());
        assert_eq!(ro.next_offset(), last, "{ctx}");
        assert_eq!(ro.open_report().missing, Some(Location::Log { dir: dir.clone(), offset: last }));
        check_readable(&ro, last, ctx);
    }
}

#[test]
fn a_missing_middle_segment_is_reported() {
    let (_tmp, dir, _n) = five_segments();
    let segs = segment_files(&dir);
    let gone = base_of(&segs[2]);
    remove_segment(&dir, gone, false);
    expect_missing(Log::open(&dir, opts()), &dir, gone, "middle segment");
    let ro = Log::open(&dir, opts().recovery(RecoveryMode::ReadOnlyUpToDamage)).unwrap();
    assert_eq!(ro.next_offset(), gone);
    check_readable(&ro, gone, "before the missing middle segment");
}

/// Regression: with every segment missing the open failed, but first created a new first
/// segment and its index files.
#[test]
fn a_failed_open_changes_nothing_on_disk() {
    let (_tmp, dir, _n) = five_segments();
    for seg in segment_files(&dir) {
        remove_segment(&dir, base_of(&seg), false);
    }
    let before = listing(&dir);
    assert!(matches!(Log::open(&dir, opts()), Err(Error::Corruption { kind: CorruptionKind::MissingData, .. })));
    assert_eq!(listing(&dir), before);
    // Salvage starts again after everything the checkpoint vouched for: no offset it vouched
    // for is ever reused.
    let log = Log::open(&dir, opts().recovery(RecoveryMode::Salvage)).unwrap();
    let first = log.next_offset();
    assert!(first > 0);
    assert_eq!(log.append(Record::new(b"again")).unwrap(), first);
}

/// Regression: one flipped byte in a sealed segment's header made the whole log unopenable in
/// every recovery mode; thousands of records before it could not be read.
#[test]
fn a_damaged_sealed_segment_header_leaves_everything_before_it_readable() {
    let (_tmp, dir, n) = five_segments();
    let victim = segment_files(&dir)[2].clone();
    let base = base_of(&victim);
    let mut bytes = fs::read(&victim).unwrap();
    bytes[20] ^= 0x10;
    fs::write(&victim, &bytes).unwrap();
    match Log::open(&dir, opts()) {
        Err(Error::Corruption { location: Location::File { path, .. }, .. }) => assert_eq!(path, victim),
        other => panic!("expected located damage, got {other:?}"),
    }
    let ro = Log::open(&dir, opts().recovery(RecoveryMode::ReadOnlyUpToDamage)).unwrap();
    assert!(ro.is_read_only());
    assert_eq!(ro.next_offset(), base);
    check_readable(&ro, base, "read-only up to the damaged segment");
    drop(ro);
    // Salvage sets the damaged segment and those after it aside and goes on from its base.
    let log = Log::open(&dir, opts().recovery(RecoveryMode::Salvage)).unwrap();
    assert!(!log.is_read_only());
    assert_eq!(log.next_offset(), base);
    let kept = log.open_report().salvaged.clone().expect("the damaged segment is kept aside");
    assert!(kept.exists());
    check_readable(&log, base, "after salvage");
    assert_eq!(log.append(Record::new(b"after salvage")).unwrap(), base);
    log.close().unwrap();
    let log = Log::open(&dir, opts()).unwrap();
    assert_eq!(log.next_offset(), base + 1);
    assert!(n > base);
}

#[test]
fn an_empty_trailing_segment_is_damage_that_salvage_sets_aside() {
    let (_tmp, dir, _n) = five_segments();
    let last = segment_files(&dir).pop().unwrap();
    let base = base_of(&last);
    fs::write(&last, b"").unwrap();
    assert!(matches!(Log::open(&dir, opts()), Err(Error::Corruption { .. })));
    let ro = Log::open(&dir, opts().recovery(RecoveryMode::ReadOnlyUpToDamage)).unwrap();
    assert_eq!(ro.next_offset(), base);
    drop(ro);
    let log = Log::open(&dir, opts().recovery(RecoveryMode::Salvage)).unwrap();
    assert_eq!(log.next_offset(), base);
    assert_eq!(log.append(Record::new(b"x")).unwrap(), base);
}

/// Regression: after `append`, `sync` and an exit without `close`, zeroing the last few
/// hundred bytes of the active segment went unnoticed: the checkpoint still vouched for
/// almost nothing, so the next open cut the durable records as a torn tail.
#[test]
fn damage_to_records_sync_made_durable_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir, opts().segment_bytes(1 << 20)).unwrap();
    for i in 0..40 {
        log.append(Record::new(payload(i).as_bytes())).unwrap();
    }
    log.sync().unwrap();
    std::mem::forget(log);
    let seg = segment_files(&dir).pop().unwrap();
    let frames = common::parse_frames(&fs::read(&seg).unwrap());
    let end = frames.last().map(|f| (f.pos + f.len) as usize).unwrap();
    for cut in ["zero", "truncate"] {
        let (_t, copy) = common::copy_of(&dir);
        let seg = copy.join(seg.file_name().unwrap());
        let mut bytes = fs::read(&seg).unwrap();
        if cut == "zero" {
            bytes[end - 300..end].fill(0);
        } else {
            bytes.truncate(end - 300);
        }
        fs::write(&seg, &bytes).unwrap();
        assert!(
            matches!(Log::open(&copy, opts()), Err(Error::Corruption { .. })),
            "{cut}: damage below the durable point must be reported"
        );
        assert!(matches!(Log::open_read_only(&copy, opts()), Err(Error::Corruption { .. })), "{cut}");
    }
}

/// Regression: a writer's open deleted every `*.tmp` file in the log directory, a user's own
/// among them. Only the temporary names tidelog itself creates are removed.
#[test]
fn only_temporary_files_tidelog_names_are_removed() {
    let (_tmp, dir, _n) = five_segments();
    fs::write(dir.join("notes.tmp"), b"mine").unwrap();
    fs::write(dir.join("checkpoint.tmp"), b"left by a crash").unwrap();
    fs::write(dir.join(format!("{:020}.log.tmp", 999_999)), b"left by a crash").unwrap();
    Log::open(&dir, opts()).unwrap().close().unwrap();
    assert_eq!(fs::read(dir.join("notes.tmp")).unwrap(), b"mine");
    assert!(!dir.join("checkpoint.tmp").exists());
    assert!(!dir.join(format!("{:020}.log.tmp", 999_999)).exists());
}

/// Regression (found by fuzzing): a cleanly closed log whose active index files were deleted
/// opened, but its `close` failed with `NotFound` when it wrote index entries. Index files are
/// derived data: missing ones are written again.
#[test]
fn missing_active_index_files_are_written_again() {
    let (_tmp, dir, n) = five_segments();
    let last = base_of(segment_files(&dir).last().unwrap());
    fs::remove_file(dir.join(format!("{last:020}.index"))).unwrap();
    fs::remove_file(dir.join(format!("{last:020}.timeindex"))).unwrap();
    let log = Log::open(&dir, opts()).unwrap();
    assert_eq!(log.next_offset(), n);
    for i in n..n + 40 {
        log.append(Record::new(payload(i).as_bytes())).unwrap();
    }
    log.close().unwrap();
    let log = Log::open(&dir, opts()).unwrap();
    check_readable(&log, n + 40, "after the index files were written again");
    assert!(dir.join(format!("{last:020}.index")).exists() || log.segments().last().unwrap().base_offset != last);
}

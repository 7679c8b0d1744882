//! `Log::verify` reports every kind of damage that recovery would repair or refuse: damaged
//! stretches with their extent (the scan resumes after each), a torn tail with the records a
//! repair would drop, missing segments, and index files to rebuild.

mod common;

use std::fs;

use common::{parse_frames, segment_files};
use tidelog::{Location, Log, Options, Record, RecoveryMode};

fn opts() -> Options {
    Options::default().segment_bytes(8192).index_interval_bytes(512)
}

fn filled(dir: &std::path::Path, segments: usize) -> u64 {
    let log = Log::open(dir, opts()).unwrap();
    let mut n = 0u64;
    while log.segments().len() < segments {
        log.append(Record::new(format!("payload {n:05}").repeat(6).as_bytes())).unwrap();
        n += 1;
    }
    log.close().unwrap();
    n
}

#[test]
fn two_damaged_stretches_in_one_segment_are_both_reported_with_their_extent() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    filled(&dir, 3);
    let seg = segment_files(&dir)[0].clone();
    let mut bytes = fs::read(&seg).unwrap();
    let frames = parse_frames(&bytes);
    let (a, b) = (frames[3], frames[10]);
    bytes[a.pos as usize + 45] ^= 1;
    bytes[b.pos as usize + 45] ^= 1;
    fs::write(&seg, &bytes).unwrap();
    let log = Log::open_read_only(&dir, opts()).unwrap();
    let v = log.verify(|_| {});
    assert_eq!(v.damage.len(), 2, "{:?}", v.damage);
    assert_eq!((v.damage[0].position, v.damage[0].offset, v.damage[0].end), (a.pos, a.offset, frames[4].pos));
    assert_eq!((v.damage[1].position, v.damage[1].offset, v.damage[1].end), (b.pos, b.offset, frames[11].pos));
    assert!(!v.is_intact());
    // Everything else was checked: all records but the two damaged ones validated.
    let total: u64 = log.next_offset();
    assert_eq!(v.records, total - 2);
}

#[test]
fn a_torn_tail_is_reported_with_the_records_its_repair_would_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir, opts().segment_bytes(1 << 20)).unwrap();
    for i in 0..20u64 {
        log.append(Record::new(format!("r{i}").as_bytes())).unwrap();
    }
    std::mem::forget(log);
    // A crash tore record 15: its bytes are damaged, records 16 to 19 are whole but were never
    // made durable.
    let seg = segment_files(&dir)[0].clone();
    let mut bytes = fs::read(&seg).unwrap();
    let frames = parse_frames(&bytes);
    let torn = frames[15];
    bytes[torn.pos as usize + 20] ^= 0x40;
    fs::write(&seg, &bytes).unwrap();
    let log = Log::open_read_only(&dir, opts()).unwrap();
    assert_eq!(log.next_offset(), 15);
    let v = log.verify(|_| {});
    assert!(v.is_intact(), "a torn tail loses nothing durable: {v:?}");
    let t = v.torn_tail.expect("torn tail reported");
    assert_eq!(t.position, torn.pos);
    assert_eq!(t.dropped, 15..20);
    let end = frames.last().map(|f| f.pos + f.len).unwrap();
    assert!(t.bytes >= end - torn.pos && t.bytes <= end - torn.pos + 8, "{t:?}");
}

#[test]
fn damaged_index_files_are_reported_for_rebuild() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    filled(&dir, 3);
    let idx = dir.join(format!("{:020}.index", 0));
    let mut bytes = fs::read(&idx).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x7f;
    fs::write(&idx, &bytes).unwrap();
    let log = Log::open_read_only(&dir, opts()).unwrap();
    let v = log.verify(|_| {});
    assert!(v.is_intact());
    assert!(v.indexes_to_rebuild.contains(&idx), "{:?}", v.indexes_to_rebuild);
}

#[test]
fn a_missing_segment_is_reported_by_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    filled(&dir, 4);
    let last = segment_files(&dir).pop().unwrap();
    let base: u64 = last.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    fs::remove_file(&last).unwrap();
    let log = Log::open(&dir, opts().recovery(RecoveryMode::ReadOnlyUpToDamage)).unwrap();
    let v = log.verify(|_| {});
    assert!(!v.is_intact());
    assert_eq!(v.missing, vec![Location::Log { dir: dir.clone(), offset: base }]);
}

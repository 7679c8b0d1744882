//! The key index file (`{base:020}.keyindex`): written when a segment is sealed, deleted with
//! it, and derived data: missing, damaged or stale files are built again from the records and
//! never change a stream read.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::copy_of;
use tidelog::{Log, Options, Record};

fn opts() -> Options {
    Options::default().segment_bytes(4096).index_interval_bytes(512)
}

fn key(i: u64) -> Vec<u8> {
    format!("order-{}", i % 7).into_bytes()
}

/// A closed log of several sealed segments; records without a key in between.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), opts()).unwrap();
    for i in 0..400u64 {
        let payload = i.to_le_bytes();
        let k = key(i);
        let r = if i % 5 == 4 { Record::new(&payload) } else { Record::new(&payload).key(&k) };
        log.append(r).unwrap();
    }
    log.close().unwrap();
    dir
}

fn key_index_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "keyindex"))
        .collect();
    v.sort();
    v
}

/// Every stream, as (offset, payload) pairs.
fn streams(log: &Log) -> Vec<Vec<(u64, Vec<u8>)>> {
    (0..7)
        .map(|i| {
            let events = log.read_stream(&key(i), 0, usize::MAX).unwrap();
            events.iter().map(|e| (e.record.offset(), e.record.payload().to_vec())).collect()
        })
        .collect()
}

fn brute_force(log: &Log) -> Vec<Vec<(u64, Vec<u8>)>> {
    (0..7)
        .map(|i| {
            let k = key(i);
            log.iter(log.first_offset())
                .map(|r| r.unwrap())
                .filter(|r| r.key() == Some(&k[..]))
                .map(|r| (r.offset(), r.payload().to_vec()))
                .collect()
        })
        .collect()
}

#[test]
fn every_sealed_segment_gets_a_key_index_file_when_sealed() {
    let dir = fixture();
    let log = Log::open(dir.path(), opts()).unwrap();
    let sealed = log.segments().len() - 1;
    assert!(sealed >= 3);
    assert_eq!(key_index_files(dir.path()).len(), sealed);
    assert_eq!(streams(&log), brute_force(&log));
}

#[test]
fn retention_deletes_the_key_index_with_its_segment() {
    let dir = fixture();
    let log = Log::open(dir.path(), opts()).unwrap();
    let before = key_index_files(dir.path());
    let second = log.segments()[1].base_offset;
    assert_eq!(log.remove_segments_before(second).unwrap(), 1);
    let after = key_index_files(dir.path());
    assert_eq!(after.len(), before.len() - 1);
    assert!(!after.contains(&before[0]));
    assert_eq!(streams(&log), brute_force(&log));
}

#[test]
fn a_deleted_key_index_is_built_again_and_written_by_the_writer() {
    let dir = fixture();
    let files = key_index_files(dir.path());
    for f in &files {
        fs::remove_file(f).unwrap();
    }
    let log = Log::open(dir.path(), opts()).unwrap();
    assert_eq!(streams(&log), brute_force(&log));
    assert_eq!(key_index_files(dir.path()), files, "the writer wrote them again");
    let ro = Log::open_read_only(dir.path(), opts()).unwrap();
    assert_eq!(streams(&ro), brute_force(&ro));
}

#[test]
fn a_read_only_handle_builds_missing_key_indexes_in_memory_and_writes_nothing() {
    let dir = fixture();
    for f in key_index_files(dir.path()) {
        fs::remove_file(f).unwrap();
    }
    let ro = Log::open_read_only(dir.path(), opts()).unwrap();
    assert_eq!(streams(&ro), brute_force(&ro));
    assert!(key_index_files(dir.path()).is_empty());
}

/// Each kind of damage to a key index file: a flipped byte in an entry, a flipped byte in
/// the header, a file cut short, another segment's file in its place, entries shuffled. None
/// changes a stream read; the writer replaces the file.
#[test]
fn a_damaged_key_index_never_changes_a_result_and_is_replaced() {
    let clean = fixture();
    let files = key_index_files(clean.path());
    let good: Vec<Vec<u8>> = files.iter().map(|f| fs::read(f).unwrap()).collect();
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let damages: Vec<(&str, Damage)> = vec![
        ("entry byte", Box::new(|b: &mut Vec<u8>| b[64 + 20] ^= 0x40)),
        ("header byte", Box::new(|b: &mut Vec<u8>| b[20] ^= 1)),
        ("cut short", Box::new(|b: &mut Vec<u8>| b.truncate(b.len() - 16))),
        ("hash of an entry", Box::new(|b: &mut Vec<u8>| b[64..72].copy_from_slice(&[0xff; 8]))),
    ];
    for (what, damage) in &damages {
        let (_tmp, dir) = copy_of(clean.path());
        let f = dir.join(files[1].file_name().unwrap());
        let mut b = good[1].clone();
        damage(&mut b);
        fs::write(&f, &b).unwrap();
        let log = Log::open(&dir, opts()).unwrap();
        assert_eq!(streams(&log), brute_force(&log), "{what}");
        assert_eq!(fs::read(&f).unwrap(), good[1], "{what}: the file is written again");
    }
    // Another segment's key index in this one's place.
    let (_tmp, dir) = copy_of(clean.path());
    fs::write(dir.join(files[1].file_name().unwrap()), &good[2]).unwrap();
    let log = Log::open(&dir, opts()).unwrap();
    assert_eq!(streams(&log), brute_force(&log), "another segment's file");
}

/// Logs written before the key index existed (format version 1 here) have no key index
/// files: they are built from the records on first use.
#[test]
fn segments_of_older_format_versions_get_their_key_index_on_first_use() {
    let (_tmp, dir) = copy_of(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-v1/clean"));
    assert!(key_index_files(&dir).is_empty());
    let log = Log::open(&dir, Options::default()).unwrap();
    let keys: Vec<Vec<u8>> = log.iter(0).filter_map(|r| r.unwrap().key().map(<[u8]>::to_vec)).collect();
    assert!(!keys.is_empty());
    for k in &keys {
        let want = log.iter(0).map(|r| r.unwrap()).filter(|r| r.key() == Some(&k[..])).count();
        assert_eq!(log.stream_version(k).unwrap(), want as u64);
    }
}

/// Rewrite a key index file so that every entry claims the hash of `key`, with valid
/// checksums: a collision of every key with `key`, as far as the index can tell.
fn claim_every_entry_for(path: &Path, key: &[u8]) {
    let mut b = fs::read(path).unwrap();
    let hash = common::fnv1a(key);
    let n = (b.len() - 64) / 16;
    let mut entries: Vec<[u8; 16]> = (0..n).map(|i| b[64 + i * 16..80 + i * 16].try_into().unwrap()).collect();
    for e in &mut entries {
        e[..8].copy_from_slice(&hash.to_le_bytes());
    }
    // Sorted by (hash, offset): with one hash, by relative offset.
    entries.sort_by_key(|e| u32::from_le_bytes(e[8..12].try_into().unwrap()));
    for (i, e) in entries.iter().enumerate() {
        b[64 + i * 16..80 + i * 16].copy_from_slice(e);
    }
    let crc = crc32fast::hash(&b[64..]);
    b[12..16].copy_from_slice(&crc.to_le_bytes());
    let crc = crc32fast::hash(&b[..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    fs::write(path, b).unwrap();
}

/// A lookup reads each candidate record and compares its actual key: when every keyed record
/// of the sealed segments is listed under the hash of one key (as if every key collided with
/// it), that key's stream still holds only its own events. (The other keys' events are
/// hidden by such a file, whose checksums were made to match on purpose; damage, which the
/// checksums catch, is the test above.)
#[test]
fn colliding_hashes_never_mix_streams() {
    let dir = fixture();
    for f in key_index_files(dir.path()) {
        claim_every_entry_for(&f, &key(3));
    }
    let log = Log::open(dir.path(), opts()).unwrap();
    let want = &brute_force(&log)[3];
    let got = &streams(&log)[3];
    assert_eq!(got, want);
    assert_eq!(log.stream_version(&key(3)).unwrap(), want.len() as u64);
}

/// A sealed segment whose key index file is missing has it built from its records. If one of
/// them is damaged (a byte of its key flipped on disk), the stream read that needs the index
/// reports the damage; it does not leave the record out of the stream.
///
/// Regression: a key index built from frames read without their checksums placed the damaged
/// record under another key's hash, and the stream came back one event short, without error.
#[test]
fn a_damaged_record_in_a_segment_without_its_key_index_is_reported_not_left_out() {
    let dir = fixture();
    let first = &key_index_files(dir.path())[0];
    fs::remove_file(first).unwrap();
    let data = first.with_extension("log");
    let mut bytes = fs::read(&data).unwrap();
    // Walk the frames (64-byte segment header; length first, offset at 8, flags at 36) to the
    // record with offset 3, and flip the last byte of its key.
    let mut pos = 64;
    loop {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        assert!(len > 0, "record 3 is in the first segment");
        let offset = u64::from_le_bytes(bytes[pos + 8..pos + 16].try_into().unwrap());
        if offset == 3 {
            let flags = u16::from_le_bytes(bytes[pos + 36..pos + 38].try_into().unwrap());
            let key_at = pos + 40 + if flags & 2 != 0 { 8 } else { 0 };
            let k = key(3);
            assert_eq!(&bytes[key_at..key_at + k.len()], &k[..]);
            bytes[key_at + k.len() - 1] ^= 0x01;
            break;
        }
        pos += (len + 7) & !7;
    }
    fs::write(&data, &bytes).unwrap();
    let log = Log::open_read_only(dir.path(), opts()).unwrap();
    match log.read_stream(&key(3), 0, usize::MAX) {
        Err(e) => assert!(e.is_corruption(), "{e}"),
        Ok(events) => panic!(
            "the damage went unreported: {} events, offsets {:?}",
            events.len(),
            events.iter().map(|e| e.record.offset()).collect::<Vec<_>>()
        ),
    }
}

//! Logs written by earlier format versions keep opening, reading and taking appends.
//!
//! `tests/fixtures/format-v1/` was written by the release that wrote format version 1: one
//! log closed cleanly (`clean/`) and one whose writer died after its last `sync` (`crashed/`,
//! so opening it runs recovery). Both hold 120 records appended in batches of 1, 2 and 3 to
//! 4 KiB segments (four segments), record `j` being:
//!
//! * payload: `"payload-{j}-"` repeated `j % 7 + 1` times;
//! * one header `n` holding `j` as 8 little-endian bytes;
//! * key `"k{j % 5}"`, except every fourth record (`j % 4 == 0`), which has no key.

mod common;

use std::path::Path;

use common::copy_of;
use tidelog::{Log, Options, Record, RecordView};

const RECORDS: u64 = 120;

fn check_record(r: &RecordView<'_>, j: u64, ctx: &str) {
    assert_eq!(r.offset(), j, "{ctx}");
    assert_eq!(r.payload(), format!("payload-{j}-").repeat((j % 7) as usize + 1).as_bytes(), "{ctx}: payload of {j}");
    assert_eq!(r.header("n"), Some(&j.to_le_bytes()[..]), "{ctx}: header of {j}");
    let key = (!j.is_multiple_of(4)).then(|| format!("k{}", j % 5));
    assert_eq!(r.key(), key.as_deref().map(str::as_bytes), "{ctx}: key of {j}");
}

fn check_fixture(name: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-v1").join(name);
    let (_tmp, dir) = copy_of(&src);
    let opts = Options::default().segment_bytes(4096).index_interval_bytes(256);
    let log = Log::open(&dir, opts.clone()).unwrap_or_else(|e| panic!("{name}: open: {e}"));
    assert_eq!(log.first_offset(), 0, "{name}");
    assert_eq!(log.next_offset(), RECORDS, "{name}");
    assert_eq!(log.segments().len(), 4, "{name}");
    let mut c = log.cursor(0);
    let mut prev_ts = 0;
    for j in 0..RECORDS {
        let r = c.next().unwrap_or_else(|e| panic!("{name}: cursor at {j}: {e}")).expect("record");
        check_record(&r, j, name);
        assert!(r.timestamp_us() >= prev_ts, "{name}: timestamps never decrease");
        prev_ts = r.timestamp_us();
    }
    assert!(c.next().unwrap().is_none(), "{name}: nothing past the end");
    for j in (0..RECORDS).rev() {
        log.read_with(j, |r| check_record(&r, j, name)).unwrap();
    }
    assert_eq!(log.offset_for_time(prev_ts).unwrap().map(|o| o < RECORDS), Some(true), "{name}");
    assert!(log.verify(|_| {}).damage.is_empty(), "{name}: verify");
    // Appends continue after the old records, and everything survives a reopen.
    assert_eq!(log.append(Record::new(b"new")).unwrap(), RECORDS, "{name}");
    log.close().unwrap();
    let log = Log::open(&dir, opts).unwrap();
    assert_eq!(log.next_offset(), RECORDS + 1, "{name}");
    log.read_with(7, |r| check_record(&r, 7, name)).unwrap();
    assert_eq!(log.read(RECORDS).unwrap().payload, b"new");
    assert!(log.verify(|_| {}).damage.is_empty(), "{name}: verify after the append");
}

#[test]
fn a_format_v1_log_closed_cleanly_opens_reads_and_appends() {
    check_fixture("clean");
}

#[test]
fn a_format_v1_log_left_by_a_crash_recovers_reads_and_appends() {
    check_fixture("crashed");
}

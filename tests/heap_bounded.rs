//! Heap memory does not grow with the size of the log: an open log holds per segment a small,
//! fixed amount of heap (its paths and handles), never anything proportional to its records;
//! sealed indexes are mapped, not loaded. Reading the whole log allocates nothing that stays.
//!
//! This file installs a counting global allocator, which affects the whole test binary; it
//! holds a single test so that no other test allocates while it measures.

use std::path::Path;

use tidelog::{Log, Options, Record};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{current, peak, reset_peak};

const PAYLOAD_BYTES: usize = 100;
/// Small segments so that many of them fit in a quick test.
const SEGMENT_BYTES: u64 = 64 << 10;
/// An index entry every 256 bytes: many entries per segment, so loading indexes onto the heap
/// would show.
const INDEX_INTERVAL_BYTES: u32 = 256;
/// Records per segment (frame of a 100-byte payload: 144 bytes).
const RECORDS_PER_SEGMENT: u64 = (SEGMENT_BYTES - 64) / 144;

fn opts() -> Options {
    Options::default().segment_bytes(SEGMENT_BYTES).index_interval_bytes(INDEX_INTERVAL_BYTES)
}

/// Build a cleanly closed log of `segments` segments, the last one (the active one) holding a
/// single record, so that the two logs compared differ only in their sealed segments.
fn build(dir: &Path, segments: u64) -> u64 {
    let log = Log::open(dir, opts()).unwrap();
    let payload = [7u8; PAYLOAD_BYTES];
    let batch: Vec<Record<'_>> = (0..RECORDS_PER_SEGMENT).map(|_| Record::new(&payload)).collect();
    for _ in 0..segments - 1 {
        log.append_batch(&batch).unwrap();
    }
    log.append(Record::new(&payload)).unwrap();
    assert_eq!(log.segments().len() as u64, segments);
    let n = log.next_offset();
    log.close().unwrap();
    n
}

/// Heap bytes held by an open handle on the log in `dir` (opening's transient allocations
/// freed), and the handle.
fn heap_of_open(dir: &Path) -> (usize, Log) {
    let before = current();
    let log = Log::open(dir, opts()).unwrap();
    assert!(log.open_report().clean_shutdown);
    let held = current().saturating_sub(before);
    (held, log)
}

/// Replay everything and read every 97th record; returns (records, peak heap growth during
/// the reads, heap held afterwards minus before).
fn read_everything(log: &Log) -> (u64, usize, isize) {
    let before = reset_peak();
    let mut n = 0u64;
    {
        let mut cursor = log.cursor(log.first_offset());
        while let Some(r) = cursor.next().unwrap() {
            assert_eq!(r.payload().len(), PAYLOAD_BYTES);
            n += 1;
        }
    }
    for off in (log.first_offset()..log.next_offset()).step_by(97) {
        log.read_with(off, |r| assert_eq!(r.offset(), off)).unwrap();
        let t = log.read_with(off, |r| r.timestamp_us()).unwrap();
        assert!(log.offset_for_time(t).unwrap().is_some());
    }
    let grew = peak() - before;
    let kept = current() as isize - before as isize;
    (n, grew, kept)
}

#[test]
fn heap_does_not_grow_with_log_size() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let records_a = build(&dir_a, 4);
    let records_b = build(&dir_b, 32);
    assert!(records_b >= 8 * records_a - RECORDS_PER_SEGMENT, "{records_a} vs {records_b}");

    // Warm up whatever the first open initializes once per process.
    drop(Log::open(&dir_a, opts()).unwrap());

    let (heap_a, log_a) = heap_of_open(&dir_a);
    drop(log_a);
    let (heap_b, log_b) = heap_of_open(&dir_b);

    let record_bytes_b: u64 = log_b.segments().iter().map(|s| s.bytes).sum();
    let extra_segments = 32 - 4;
    let per_segment = heap_b.saturating_sub(heap_a) / extra_segments;
    eprintln!(
        "heap held by an open log: {heap_a} B with 4 segments ({records_a} records), \
         {heap_b} B with 32 segments ({records_b} records, {record_bytes_b} B of records); \
         {per_segment} B per extra segment"
    );
    // 8x the records costs a few hundred bytes per segment (paths, handles), never anything
    // proportional to the records or index entries (a sealed segment here has ~230 index
    // entries, 20 B each on disk, and 454 records).
    assert!(per_segment <= 1024, "{per_segment} B of heap per sealed segment");
    assert!(heap_b - heap_a.min(heap_b) < 64 << 10, "heap(B) - heap(A) = {} B", heap_b - heap_a.min(heap_b));
    assert!(heap_b < 64 << 10, "an open log of 32 small segments holds {heap_b} B of heap");

    // Reading everything — replay, reads by offset, lookups by time — allocates nothing that
    // grows with the log, and keeps nothing.
    let (n, grew, kept) = read_everything(&log_b);
    assert_eq!(n, records_b);
    eprintln!("reading {n} records: peak heap growth {grew} B, kept {kept} B");
    assert!(grew <= 4 << 10, "reading the log grew the heap by {grew} B at its peak");
    assert!(kept <= 0, "reading the log kept {kept} B of heap");
}

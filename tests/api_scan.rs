//! Reading without copying, the easy way: `Cursor::for_each` / `try_for_each` / `fold` /
//! `try_fold` lend each record from the map, `Log::scan` reads a range and says where to
//! resume, and `Log::cursor_from_start` starts at the first record that exists, whatever
//! retention did.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use tidelog::{Error, Log, Options};

fn opts() -> Options {
    Options::default().segment_bytes(8 << 10).index_interval_bytes(256)
}

fn payload(i: u64) -> String {
    format!("record-{i:05}-payload")
}

fn new_log(n: u64) -> (tempfile::TempDir, Log) {
    let tmp = common::scratch_dir();
    let log = Log::open(tmp.path().join("log"), opts()).unwrap();
    for i in 0..n {
        log.append(payload(i)).unwrap();
    }
    (tmp, log)
}

fn offsets(cursor: &mut tidelog::Cursor) -> Vec<u64> {
    cursor
        .fold(Vec::new(), |mut v, r| {
            v.push(r.offset());
            v
        })
        .unwrap()
}

#[test]
fn for_each_reads_to_the_current_end_and_a_later_call_reads_what_was_appended_since() {
    let (_tmp, log) = new_log(500);
    let mut cursor = log.cursor_from_start();
    let mut seen = Vec::new();
    cursor.for_each(|r| seen.push((r.offset(), r.payload().to_vec()))).unwrap();
    assert_eq!(seen.len(), 500);
    assert!(seen.iter().all(|(o, p)| p == payload(*o).as_bytes()));
    assert_eq!(cursor.position(), 500);

    cursor.for_each(|_| panic!("nothing new")).unwrap();
    log.append_batch(&[payload(500), payload(501)]).unwrap();
    assert_eq!(offsets(&mut cursor), [500, 501]);
}

#[test]
fn scan_returns_where_to_resume() {
    let (_tmp, log) = new_log(100);
    let mut sum = 0;
    let resume = log.scan(40, |r| sum += r.offset()).unwrap();
    assert_eq!((resume, sum), (100, (40..100).sum::<u64>()));
    assert_eq!(log.scan(resume, |_| panic!("nothing new")).unwrap(), 100);
    log.append("one more").unwrap();
    assert_eq!(log.scan(resume, |r| assert_eq!(r.offset(), 100)).unwrap(), 101);
    // Past the end, as a cursor placed there: nothing yet, and the same place to resume from.
    assert_eq!(log.scan(102, |_| panic!("not written yet")).unwrap(), 102);
}

/// What stopped a scan: the caller's own refusal, or the log.
#[derive(Debug)]
enum Stop {
    Refused(u64),
    /// Shown (by `Debug`) when a test fails.
    #[allow(dead_code)]
    Log(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Stop {
        Stop::Log(e)
    }
}

#[test]
fn try_for_each_stops_at_the_first_error_and_calling_again_retries_that_record() {
    let (_tmp, log) = new_log(30);
    let mut cursor = log.cursor_from_start();
    let mut seen = Vec::new();
    let mut refuse = Some(17);
    let r = cursor.try_for_each(|rec| {
        if refuse == Some(rec.offset()) {
            refuse = None;
            return Err(Stop::Refused(rec.offset()));
        }
        seen.push(rec.offset());
        Ok(())
    });
    assert!(matches!(r, Err(Stop::Refused(17))), "{r:?}");
    assert_eq!(cursor.position(), 17, "the cursor stays at the record that failed");
    assert_eq!(seen, (0..17).collect::<Vec<_>>());
    cursor
        .try_for_each(|rec| -> Result<(), Stop> {
            seen.push(rec.offset());
            Ok(())
        })
        .unwrap();
    assert_eq!(seen, (0..30).collect::<Vec<_>>(), "record 17 read again, nothing skipped");
}

#[test]
fn try_fold_carries_the_accumulator_and_returns_the_first_error() {
    let (_tmp, log) = new_log(10);
    log.append("not a number").unwrap();
    let parse = |sum: u64, rec: tidelog::RecordView<'_>| -> Result<u64, Box<dyn std::error::Error>> {
        let text = std::str::from_utf8(rec.payload())?;
        Ok(sum + text.split('-').nth(1).ok_or("no number")?.parse::<u64>()?)
    };
    let mut cursor = log.cursor(0);
    assert!(cursor.try_fold(0, parse).is_err());
    assert_eq!(cursor.position(), 10);
    let mut cursor = log.cursor(0);
    let sum = cursor.try_fold(0, |s, r| if r.offset() < 10 { parse(s, r) } else { Ok(s) }).unwrap();
    assert_eq!(sum, (0..10).sum::<u64>());
}

/// A read error (a record whose bytes were damaged after they were written) stops the scan
/// with the error, and the cursor stays at the damaged record instead of stepping over it.
#[test]
fn a_damaged_record_stops_for_each_with_the_cursor_at_it() {
    let (tmp, log) = new_log(200);
    let dir = tmp.path().join("log");
    let first = common::segment_files(&dir)[0].clone();
    let bytes = std::fs::read(&first).unwrap();
    let at = bytes.windows(payload(7).len()).position(|w| w == payload(7).as_bytes()).unwrap();
    OpenOptions::new().write(true).open(&first).unwrap().write_all_at(b"X", at as u64 + 3).unwrap();

    let mut cursor = log.cursor_from_start();
    let mut seen = 0;
    let err = cursor.for_each(|_| seen += 1).unwrap_err();
    assert!(err.is_corruption(), "{err}");
    assert_eq!((seen, cursor.position()), (7, 7));
    assert!(cursor.for_each(|_| {}).unwrap_err().is_corruption(), "still there, not skipped");
}

#[test]
fn a_cursor_from_the_start_starts_at_the_first_record_retention_left() {
    let (_tmp, log) = new_log(1000);
    assert!(log.remove_segments_before(500).unwrap() > 0);
    let first = log.first_offset();
    assert!(first > 0 && first <= 500);
    let got = offsets(&mut log.cursor_from_start());
    assert_eq!(got, (first..1000).collect::<Vec<_>>());
}

/// The start is taken when the cursor is made: retention deleting that segment before the
/// first read does not make the cursor fail (it holds the segment's map), whereas a cursor
/// placed at the old first offset looks it up at its first read and is told it is gone.
#[test]
fn a_cursor_from_the_start_keeps_reading_when_retention_deletes_its_segment_before_the_first_read() {
    let (_tmp, log) = new_log(1000);
    let first = log.first_offset();
    let mut from_start = log.cursor_from_start();
    let mut placed = log.cursor(first);
    assert!(log.remove_segments_before(500).unwrap() > 0);
    assert!(log.first_offset() > first);

    assert_eq!(offsets(&mut from_start), (first..1000).collect::<Vec<_>>());
    assert!(matches!(placed.for_each(|_| {}), Err(Error::OffsetOutOfRange { .. })));
    // A fresh one starts at the new first record.
    assert_eq!(offsets(&mut log.cursor_from_start())[0], log.first_offset());
}

#[test]
fn a_cursor_from_the_start_of_an_empty_log_reads_what_is_appended_later() {
    let (tmp, log) = new_log(0);
    let mut cursor = log.cursor_from_start();
    assert_eq!(offsets(&mut cursor), Vec::<u64>::new());
    log.append_batch(&["a", "b"]).unwrap();
    assert_eq!(offsets(&mut cursor), [0, 1]);

    // A read-only handle follows the writer the same way.
    let reader = Log::open_read_only(tmp.path().join("log"), opts()).unwrap();
    let mut cursor = reader.cursor_from_start();
    assert_eq!(offsets(&mut cursor), [0, 1]);
    log.append("c").unwrap();
    assert_eq!(offsets(&mut cursor), [2]);
}

/// Offsets that key compaction removed are stepped over, as `Cursor::next` does.
#[test]
fn for_each_steps_over_offsets_compaction_removed() {
    let (tmp, log) = new_log(600);
    let dir = tmp.path().join("log");
    let base = log.segments()[0].base_offset;
    let end = log.segments()[0].next_offset;
    log.close().unwrap();
    assert!(tidelog::testing::rewrite_segment(&dir, base, 256, |o| o % 3 != 0).unwrap());
    let log = Log::open(&dir, opts()).unwrap();
    let got = offsets(&mut log.cursor_from_start());
    let want: Vec<u64> = (0..600).filter(|&o| o >= end || o % 3 != 0).collect();
    assert_eq!(got, want);
}

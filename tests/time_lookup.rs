//! Time lookups while the writer rolls segments.

use tidelog::{Log, Options, Record};

/// `offset_for_time` answered `None` for the timestamp of a committed record when the record
/// was the last of a full segment and the writer had just rolled: the new, still empty
/// segment reported a maximum timestamp of zero, which broke the monotone predicate of the
/// binary search over segments, and the search ran past every record. A reader now looks up
/// the timestamp of every record as soon as it is committed, newest first, while one writer
/// appends across a few hundred rolls; each lookup must find the first record of that time.
#[test]
fn every_committed_timestamp_is_found_while_segments_roll() {
    const TOTAL: u64 = 6_000;
    let tmp = tempfile::tempdir().unwrap();
    // About twenty records per segment: a roll every few appends.
    let opts = Options::default().segment_bytes(4096).index_interval_bytes(256);
    let log = Log::open(tmp.path().join("log"), opts).unwrap();
    std::thread::scope(|s| {
        let writer = log.clone();
        let appender = s.spawn(move || {
            let payload = [7u8; 150];
            for i in 0..TOTAL {
                if i % 3 == 0 {
                    writer.append_batch(&[Record::new(&payload), Record::new(&payload)]).unwrap();
                } else {
                    writer.append(Record::new(&payload)).unwrap();
                }
            }
        });
        // Look up the newest record again and again (the roll that follows a full segment
        // happens while it is the newest), and every other record once.
        let mut checked = 0u64;
        let mut lookups = 0u64;
        loop {
            let finished = appender.is_finished();
            let next = log.next_offset();
            if next == 0 {
                assert!(!finished, "the appender stopped before its first record");
                std::thread::yield_now();
                continue;
            }
            for offset in std::iter::once(next - 1).chain(checked..next - 1) {
                check_lookup(&log, offset);
                lookups += 1;
            }
            checked = next;
            if finished && next == log.next_offset() {
                break;
            }
        }
        assert!(lookups > TOTAL);
        assert_eq!(checked, log.next_offset());
    });
    assert!(log.segments().len() > 100, "the test must cross many rolls");
}

/// `offset_for_time` of the timestamp of the record at `offset` is the first record of that
/// timestamp.
fn check_lookup(log: &Log, offset: u64) {
    let ts = log.read(offset).unwrap().timestamp_us;
    let Some(found) = log.offset_for_time(ts).unwrap() else {
        panic!("no offset for the timestamp {ts} of committed record {offset} (next {})", log.next_offset());
    };
    assert!(found <= offset, "record {offset}: found {found}");
    assert_eq!(log.read(found).unwrap().timestamp_us, ts, "record {offset}: found {found}");
    if found > 0 {
        assert!(log.read(found - 1).unwrap().timestamp_us < ts, "record {offset}: {found} is not the first");
    }
}

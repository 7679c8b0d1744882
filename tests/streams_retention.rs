//! Stream versions stay what they were when retention removes a stream's first events: the
//! removed events are counted (in `removed-streams`, written before the segments go), also
//! when the removal fails or the process stops between the count and the removal.

mod common;

use common::faults::Faults;
use tidelog::testing::IoOp;
use tidelog::{ExpectedVersion, Log, Options, Record};

fn opts() -> Options {
    Options::default().segment_bytes(4096)
}

/// 300 events of 3 streams, round robin, in many segments.
fn fill(log: &Log) {
    let payload = [b'e'; 100];
    for i in 0..300u64 {
        let k = format!("s{}", i % 3).into_bytes();
        log.append(Record::new(&payload).key(&k)).unwrap();
    }
}

#[test]
fn versions_survive_retention_and_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), opts()).unwrap();
    fill(&log);
    let cut = log.segments()[3].base_offset;
    assert_eq!(log.remove_segments_before(cut).unwrap(), 3);
    let in_log = log.read_stream(b"s1", 0, usize::MAX).unwrap();
    assert_eq!(log.stream_version(b"s1").unwrap(), 100);
    assert_eq!(in_log.last().unwrap().version, 99);
    assert_eq!(in_log[0].version, 100 - in_log.len() as u64, "the first event left keeps its version");
    // Reading from a removed version starts at the first event left.
    assert_eq!(log.read_stream(b"s1", 0, 1).unwrap()[0].version, in_log[0].version);
    let r = Record::new(b"next").key(b"s1");
    assert_eq!(log.append_to_stream(b"s1", ExpectedVersion::Exact(100), &[r]).unwrap().start, 300);
    drop(log);
    let log = Log::open(dir.path(), opts()).unwrap();
    assert_eq!(log.stream_version(b"s1").unwrap(), 101);
    let ro = Log::open_read_only(dir.path(), opts()).unwrap();
    assert_eq!(ro.read_stream_backward(b"s1", 1).unwrap()[0].version, 100);
}

/// A removal that fails after the counts were written (as a crash between the two would
/// leave it): the segments stay, counted already, and are neither counted twice nor read as
/// events of the stream; a later retention removes them.
#[test]
fn segments_counted_but_not_removed_are_not_counted_twice() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), opts()).unwrap();
    fill(&log);
    let cut = log.segments()[2].base_offset;
    let (faults, _hook) = Faults::on(dir.path());
    faults.fail_nth(0, Some(IoOp::Remove));
    assert!(log.remove_segments_before(cut).is_err());
    assert!(!faults.failed().is_empty());
    faults.heal();
    drop(log);
    let log = Log::open(dir.path(), opts()).unwrap();
    assert_eq!(log.first_offset(), 0, "the segments are still there");
    for k in [&b"s0"[..], b"s1", b"s2"] {
        assert_eq!(log.stream_version(k).unwrap(), 100, "{k:?}");
        let events = log.read_stream(k, 0, usize::MAX).unwrap();
        assert!(events[0].record.offset() >= cut, "events of counted segments are not read again");
        assert_eq!(events.last().unwrap().version, 99);
    }
    assert_eq!(log.remove_segments_before(cut).unwrap(), 2);
    assert_eq!(log.stream_version(b"s2").unwrap(), 100);
}

/// A follower sees the versions stay when the writer's retention removes segments under it.
#[test]
fn a_follower_keeps_versions_when_the_writer_removes_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), opts()).unwrap();
    fill(&log);
    let ro = Log::open_read_only(dir.path(), opts()).unwrap();
    assert_eq!(ro.stream_version(b"s0").unwrap(), 100);
    log.remove_segments_before(log.segments()[4].base_offset).unwrap();
    ro.refresh().unwrap();
    assert!(ro.first_offset() > 0);
    assert_eq!(ro.stream_version(b"s0").unwrap(), 100);
}

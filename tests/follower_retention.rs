//! A read-only handle following a writer sees the writer's retention: the segments it deleted
//! leave the follower's list, their maps are released (so their disk space comes back), and
//! the follower's first offset moves on.

use std::fs;
use std::time::Duration;

use tidelog::{Log, Options, Record};

fn mapped_paths() -> String {
    fs::read_to_string("/proc/self/maps").unwrap_or_default()
}

/// Regression: the follower only ever added segments, so the files retention unlinked stayed
/// mapped for as long as the consumer ran (disk space never reclaimed), and its
/// `first_offset` and lag stayed stale.
#[test]
fn a_follower_drops_segments_the_writer_deleted_and_sees_the_new_first_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let opts = Options::default().segment_bytes(8192);
    let writer = Log::open(&dir, opts.clone()).unwrap();
    let payload = [5u8; 200];
    while writer.segments().len() < 6 {
        writer.append(Record::new(&payload)).unwrap();
    }
    let follower = Log::open_read_only(&dir, opts).unwrap();
    follower.refresh().unwrap();
    assert_eq!(follower.segments().len(), 6);
    let doomed: Vec<_> = writer.segments()[..3].iter().map(|s| s.path.clone()).collect();
    let cut = writer.segments()[3].base_offset;
    assert!(mapped_paths().contains(doomed[0].to_str().unwrap()), "the follower maps the oldest segment");

    assert_eq!(writer.remove_segments_before(cut).unwrap(), 3);
    writer.append(Record::new(b"after retention")).unwrap();
    follower.refresh().unwrap();
    assert_eq!(follower.first_offset(), cut);
    assert_eq!(follower.first_offset(), writer.first_offset());
    assert_eq!(follower.next_offset(), writer.next_offset());
    assert_eq!(follower.segments().len(), writer.segments().len());
    assert!(follower.read(cut - 1).is_err(), "a deleted record is out of range");
    assert_eq!(follower.read(writer.next_offset() - 1).unwrap().payload, b"after retention");
    // The unlinked files are no longer mapped: their space is given back.
    let maps = mapped_paths();
    for p in &doomed {
        assert!(!maps.contains(p.to_str().unwrap()), "{} still mapped", p.display());
    }
    // A cursor that started before the retention moves on to what is left.
    let mut c = follower.cursor(cut);
    assert_eq!(c.next().unwrap().unwrap().offset(), cut);
    assert!(follower.wait_for(writer.next_offset() - 1, Duration::from_millis(10)).unwrap());
}

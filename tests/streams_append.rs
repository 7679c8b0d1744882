//! Appending to a stream: the expected version is checked and the append made in one atomic
//! step; a mismatch changes nothing; event ids make a retried append write nothing.

use std::sync::{Arc, Barrier};

use tidelog::{Error, ExpectedVersion, Header, Log, Options, Record, EVENT_ID_HEADER};

fn open(dir: &std::path::Path) -> Log {
    Log::open(dir, Options::default().segment_bytes(4096)).unwrap()
}

fn event<'a>(key: &'a [u8], payload: &'a [u8], headers: &'a [Header<'a>]) -> Record<'a> {
    Record::new(payload).key(key).headers(headers)
}

fn id(value: &[u8]) -> [Header<'_>; 1] {
    [Header { name: EVENT_ID_HEADER, value }]
}

#[test]
fn each_expected_version_is_checked_and_a_mismatch_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let k = b"account-1";
    let wrong = |r: tidelog::Result<_>, expected, actual| match r {
        Err(Error::WrongExpectedVersion { key, expected: e, actual: a }) => {
            assert_eq!((key.as_slice(), e, a), (&k[..], expected, actual))
        }
        other => panic!("expected a version mismatch, got {other:?}"),
    };
    wrong(
        log.append_to_stream(k, ExpectedVersion::StreamExists, &[event(k, b"x", &[])]),
        ExpectedVersion::StreamExists,
        0,
    );
    wrong(log.append_to_stream(k, ExpectedVersion::Exact(1), &[event(k, b"x", &[])]), ExpectedVersion::Exact(1), 0);
    assert_eq!(log.next_offset(), 0, "nothing written");
    assert_eq!(log.append_to_stream(k, ExpectedVersion::NoStream, &[event(k, b"a", &[])]).unwrap(), 0..1);
    log.append(Record::new(b"other").key(b"account-2")).unwrap();
    wrong(log.append_to_stream(k, ExpectedVersion::NoStream, &[event(k, b"x", &[])]), ExpectedVersion::NoStream, 1);
    let batch = [event(k, b"b", &[]), event(k, b"c", &[])];
    assert_eq!(log.append_to_stream(k, ExpectedVersion::Exact(1), &batch).unwrap(), 2..4);
    assert_eq!(log.append_to_stream(k, ExpectedVersion::StreamExists, &[event(k, b"d", &[])]).unwrap(), 4..5);
    wrong(log.append_to_stream(k, ExpectedVersion::Exact(3), &[event(k, b"x", &[])]), ExpectedVersion::Exact(3), 4);
    assert_eq!(log.append_to_stream(k, ExpectedVersion::Any, &[event(k, b"e", &[])]).unwrap(), 5..6);
    let payloads: Vec<Vec<u8>> =
        log.read_stream(k, 0, 100).unwrap().into_iter().map(|e| e.record.payload().to_vec()).collect();
    assert_eq!(payloads, [b"a", b"b", b"c", b"d", b"e"].map(|p| p.to_vec()));
}

#[test]
fn a_stream_batch_must_carry_the_streams_key_on_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let batch = [event(b"s", b"1", &[]), Record::new(b"2").key(b"t"), Record::new(b"3")];
    for (records, index) in [(&batch[..2], 1), (&[batch[0], batch[2]][..], 1)] {
        match log.append_to_stream(b"s", ExpectedVersion::Any, records) {
            Err(Error::InvalidEvent { index: i, .. }) => assert_eq!(i, index),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(log.next_offset(), 0);
}

/// Writers on several threads read the version and append with it as the expected version:
/// for each version exactly one of them wins, and the stream holds no two events at the same
/// version.
#[test]
fn writers_racing_on_one_stream_win_exactly_once_per_version() {
    const THREADS: usize = 4;
    const ROUNDS: u64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let start = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (log, start) = (log.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut wins = Vec::new();
                let mut losses = 0u64;
                loop {
                    let v = log.stream_version(b"race").unwrap();
                    if v >= ROUNDS {
                        return (wins, losses);
                    }
                    let payload = format!("{t}:{v}");
                    let r = Record::new(payload.as_bytes()).key(b"race");
                    match log.append_to_stream(b"race", ExpectedVersion::Exact(v), &[r]) {
                        Ok(range) => wins.push((v, range.start)),
                        Err(Error::WrongExpectedVersion { actual, .. }) => {
                            assert!(actual > v);
                            losses += 1;
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    let mut all_wins: Vec<(u64, u64)> = Vec::new();
    for h in handles {
        all_wins.extend(h.join().unwrap().0);
    }
    all_wins.sort();
    let versions: Vec<u64> = all_wins.iter().map(|w| w.0).collect();
    assert_eq!(versions, (0..ROUNDS).collect::<Vec<_>>(), "exactly one winner per version");
    let stream = log.read_stream(b"race", 0, usize::MAX).unwrap();
    assert_eq!(stream.len() as u64, ROUNDS);
    for (e, (v, offset)) in stream.iter().zip(&all_wins) {
        assert_eq!((e.version, e.record.offset()), (*v, *offset));
        assert!(std::str::from_utf8(e.record.payload()).unwrap().ends_with(&format!(":{v}")));
    }
}

#[test]
fn a_retried_append_with_the_same_event_ids_returns_the_original_offsets_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let k = b"cart-9";
    let (h1, h2) = (id(b"evt-1"), id(b"evt-2"));
    let batch = [event(k, b"add", &h1), event(k, b"pay", &h2)];
    let first = log.append_to_stream(k, ExpectedVersion::NoStream, &batch).unwrap();
    log.append(Record::new(b"noise").key(b"other")).unwrap();
    let end = log.next_offset();
    // The retry's expected version is stale now: the ids decide.
    assert_eq!(log.append_to_stream(k, ExpectedVersion::NoStream, &batch).unwrap(), first);
    assert_eq!(log.append_to_stream(k, ExpectedVersion::Any, &batch).unwrap(), first);
    assert_eq!(log.next_offset(), end, "nothing written");
    // After a reopen, from the key index files.
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.append_to_stream(k, ExpectedVersion::Exact(7), &batch).unwrap(), first);
    assert_eq!(log.stream_version(k).unwrap(), 2);
    // A new id is a new event.
    let h3 = id(b"evt-3");
    assert_eq!(log.append_to_stream(k, ExpectedVersion::Exact(2), &[event(k, b"ship", &h3)]).unwrap(), end..end + 1);
}

#[test]
fn misused_event_ids_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let k = b"s";
    let (h1, h2, empty) = (id(b"a"), id(b"b"), id(b""));
    log.append_to_stream(k, ExpectedVersion::Any, &[event(k, b"1", &h1)]).unwrap();
    let twice = [Header { name: EVENT_ID_HEADER, value: b"x" }, Header { name: EVENT_ID_HEADER, value: b"y" }];
    let cases: Vec<(&str, Vec<Record<'_>>, usize)> = vec![
        ("only some ids already in the stream", vec![event(k, b"1", &h1), event(k, b"2", &h2)], 1),
        ("the same id twice in a batch", vec![event(k, b"2", &h2), event(k, b"2", &h2)], 1),
        ("an empty id", vec![event(k, b"2", &empty)], 0),
        ("two ids on one record", vec![event(k, b"2", &twice)], 0),
        ("ids on some records only", vec![event(k, b"2", &h2), event(k, b"3", &[])], 1),
    ];
    let end = log.next_offset();
    for (what, batch, index) in cases {
        match log.append_to_stream(k, ExpectedVersion::Any, &batch) {
            Err(Error::InvalidEvent { index: i, .. }) => assert_eq!(i, index, "{what}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    match log.append(event(k, b"plain", &h2)) {
        Err(Error::InvalidEvent { index: 0, .. }) => {}
        other => panic!("a plain append with an event id: {other:?}"),
    }
    assert_eq!(log.next_offset(), end, "nothing written");
}

/// The version an append checks counts every event of the stream: those appended by plain
/// appends in between, across rolls, and those retention removed.
#[test]
fn the_checked_version_follows_plain_appends_rolls_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let k = b"k";
    let filler = [7u8; 200];
    let mut version = 0u64;
    for round in 0..60u64 {
        let r = Record::new(b"checked").key(k);
        log.append_to_stream(k, ExpectedVersion::Exact(version), &[r]).unwrap();
        version += 1;
        for _ in 0..round % 3 {
            log.append(Record::new(&filler).key(k)).unwrap();
            version += 1;
        }
        log.append(Record::new(&filler).key(b"other")).unwrap();
        if round == 40 {
            let mid = log.segments()[2].base_offset;
            log.remove_segments_before(mid).unwrap();
        }
        match log.append_to_stream(k, ExpectedVersion::Exact(version + 1), &[Record::new(b"x").key(k)]) {
            Err(Error::WrongExpectedVersion { actual, .. }) => assert_eq!(actual, version, "round {round}"),
            other => panic!("round {round}: {other:?}"),
        }
    }
    assert!(log.segments().len() > 3, "the appends rolled segments");
}

/// A topic offers the same stream calls; a follower in the same process (a second store)
/// reads the streams the writer appends, as they grow and across its rolls.
#[test]
fn topics_append_to_streams_and_a_follower_reads_them() {
    use tidelog::{Store, StoreOptions};
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions::default().topic(Options::default().segment_bytes(4096));
    let store = Store::open(dir.path(), opts.clone()).unwrap();
    let orders = store.topic("orders").unwrap();
    assert_eq!(orders.stream_version(b"o-1").unwrap(), 0);
    let reader_store = Store::open(dir.path(), opts).unwrap();
    let mut expected = Vec::new();
    for i in 0..120u64 {
        let k = format!("o-{}", i % 3).into_bytes();
        let mut p = i.to_le_bytes().to_vec();
        p.resize(100, b'.');
        let v = orders.stream_version(&k).unwrap();
        orders.append_to_stream(&k, ExpectedVersion::Exact(v), &[Record::new(&p).key(&k)]).unwrap();
        if i % 3 == 1 {
            expected.push(p.clone());
        }
        if i % 40 == 39 {
            let follower = reader_store.open_topic("orders").unwrap();
            let got: Vec<Vec<u8>> = follower
                .read_stream(b"o-1", 0, usize::MAX)
                .unwrap()
                .into_iter()
                .map(|e| e.record.payload().to_vec())
                .collect();
            assert_eq!(got, expected, "after {i}");
            let newest = follower.read_stream_backward(b"o-1", 1).unwrap();
            assert_eq!(newest[0].version, expected.len() as u64 - 1);
        }
    }
    assert!(orders.segments().unwrap().len() > 2);
}

//! Appending without building a `Vec<Record>`: `append` and `append_batch` take any
//! `AsRecord` (owned buffers, strings, `(key, payload)` pairs, records read from a log), and
//! `append_iter` any iterator of them. Each converted batch must reach the log exactly as a
//! batch of the equivalent `Record`s would.

mod common;

use tidelog::{Error, Header, Log, Options, OwnedRecord, Record};

fn opts() -> Options {
    Options::default().segment_bytes(64 << 10).index_interval_bytes(512)
}

fn new_log() -> (tempfile::TempDir, Log) {
    let tmp = common::scratch_dir();
    let log = Log::open(tmp.path().join("log"), opts()).unwrap();
    (tmp, log)
}

fn payloads(log: &Log) -> Vec<Vec<u8>> {
    log.iter(log.first_offset()).map(|r| r.unwrap().payload).collect()
}

#[test]
fn owned_buffers_and_strings_are_appended_as_payloads() {
    let (_tmp, log) = new_log();
    let vecs: Vec<Vec<u8>> = vec![b"v0".to_vec(), b"v1".to_vec()];
    assert_eq!(log.append_batch(&vecs).unwrap(), 0..2);
    let strings: Vec<String> = vec!["s2".into(), "s3".into()];
    assert_eq!(log.append_batch(&strings).unwrap(), 2..4);
    assert_eq!(log.append_batch(&["t4", "t5"]).unwrap(), 4..6);
    assert_eq!(log.append_batch(&[&b"a6"[..], b"a7"]).unwrap(), 6..8);
    assert_eq!(log.append(b"b8").unwrap(), 8);
    assert_eq!(log.append("c9").unwrap(), 9);
    assert_eq!(log.append(&vecs[0]).unwrap(), 10);
    let want: Vec<&[u8]> = vec![b"v0", b"v1", b"s2", b"s3", b"t4", b"t5", b"a6", b"a7", b"b8", b"c9", b"v0"];
    assert_eq!(payloads(&log), want);
    for i in 0..11 {
        let r = log.read(i).unwrap();
        assert_eq!((r.key(), r.headers().count(), r.is_tombstone()), (None, 0, false), "record {i}");
    }
}

#[test]
fn key_payload_pairs_are_appended_with_their_key() {
    let (_tmp, log) = new_log();
    let pairs = vec![(b"k0".to_vec(), "p0".to_string()), (b"k1".to_vec(), "p1".to_string())];
    assert_eq!(log.append_batch(&pairs).unwrap(), 0..2);
    assert_eq!(log.append(("k2", b"p2")).unwrap(), 2);
    for i in 0..3 {
        let r = log.read(i).unwrap();
        assert_eq!(r.key(), Some(format!("k{i}").as_bytes()));
        assert_eq!(r.payload(), format!("p{i}").as_bytes());
    }
    // A keyed record is found through the key index like any other.
    assert_eq!(log.read_stream(b"k1", 0, 10).unwrap().len(), 1);
}

/// Records with headers in another shape than `&[Header]` (read back, or owned): each record
/// of a batch must get its own headers, whether the records before it had any or not, in
/// small batches (converted on the stack) and large ones.
#[test]
fn records_copied_from_another_log_keep_key_headers_payload_and_tombstone() {
    let (_tmp, src) = new_log();
    let mut want = Vec::new();
    for i in 0..40u32 {
        let key = format!("key-{}", i % 5);
        let names: Vec<String> = (0..i % 3).map(|h| format!("h{h}")).collect();
        let values: Vec<Vec<u8>> = (0..i % 3).map(|h| format!("v{i}.{h}").into_bytes()).collect();
        let headers: Vec<Header<'_>> = names.iter().zip(&values).map(|(n, v)| Header { name: n, value: v }).collect();
        let payload = format!("payload {i}");
        let mut r = Record::new(payload.as_bytes()).headers(&headers);
        if i % 4 != 1 {
            r = r.key(key.as_bytes());
        }
        if i % 9 == 8 && i % 4 != 1 {
            r = r.tombstone();
        }
        src.append(r).unwrap();
        want.push(src.read(i as u64).unwrap());
    }
    let same = |a: &OwnedRecord, b: &OwnedRecord| {
        (a.key(), &a.headers, a.payload(), a.is_tombstone()) == (b.key(), &b.headers, b.payload(), b.is_tombstone())
    };

    // Owned records, in batches of 3 (on the stack) and of 37 (in a vector).
    for (batch, name) in [(3usize, "small"), (37, "large")] {
        let (_tmp, dst) = new_log();
        for chunk in want.chunks(batch) {
            dst.append_batch(chunk).unwrap();
        }
        let got: Vec<OwnedRecord> = dst.iter(0).map(|r| r.unwrap()).collect();
        assert_eq!(got.len(), want.len(), "{name}");
        for (g, w) in got.iter().zip(&want) {
            assert!(same(g, w), "{name}: {g:?} != {w:?}");
        }
    }

    // Views straight from the other log's map, one by one.
    let (_tmp, dst) = new_log();
    src.cursor_from_start().try_for_each(|view| dst.append(view).map(drop)).unwrap();
    let got: Vec<OwnedRecord> = dst.iter(0).map(|r| r.unwrap()).collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!(same(g, w), "views: {g:?} != {w:?}");
    }
}

#[test]
fn append_iter_appends_what_the_iterator_yields_as_one_batch() {
    let (_tmp, log) = new_log();
    let text = "alpha\nbeta\ngamma\n";
    assert_eq!(log.append_iter(text.lines()).unwrap(), 0..3);
    assert_eq!(log.append_iter((3..6).map(|i| (format!("k{i}"), format!("p{i}")))).unwrap(), 3..6);
    let got = log.iter(0).map(|r| r.unwrap()).collect::<Vec<_>>();
    assert_eq!(got[1].payload(), b"beta");
    assert_eq!(got[4].key(), Some(&b"k4"[..]));
    // One batch: the records share a timestamp, and the last one closes the batch.
    assert!(got[..3].iter().all(|r| r.timestamp_us() == got[0].timestamp_us()));
}

/// A converted batch is checked whole before anything is written, as a batch of `Record`s is.
#[test]
fn a_bad_record_in_a_converted_batch_writes_nothing() {
    let tmp = common::scratch_dir();
    let log = Log::open(tmp.path().join("log"), opts().max_record_bytes(100)).unwrap();
    log.append("before").unwrap();
    let batch = vec![vec![1u8; 10], vec![2u8; 101], vec![3u8; 10]];
    assert!(matches!(log.append_batch(&batch), Err(Error::RecordTooLarge { size: 101, max: 100 })));
    assert!(matches!(log.append_iter(batch.iter()), Err(Error::RecordTooLarge { .. })));
    let tombstone_without_key = OwnedRecord {
        offset: 0,
        timestamp_us: 0,
        key: None,
        headers: Vec::new(),
        payload: Vec::new(),
        tombstone: true,
    };
    let keyed = OwnedRecord { key: Some(b"k".to_vec()), tombstone: false, ..tombstone_without_key.clone() };
    assert!(matches!(log.append_batch(&[keyed, tombstone_without_key]), Err(Error::InvalidEvent { index: 1, .. })));
    let empty: Vec<String> = Vec::new();
    assert!(matches!(log.append_iter(empty), Err(Error::EmptyBatch)));
    assert_eq!(log.next_offset(), 1);
    assert_eq!(log.append("after").unwrap(), 1);
}

/// A topic publishes what a log appends: owned buffers and `(key, payload)` pairs, one or a
/// batch, and a consumer group receives them as records.
#[test]
fn a_topic_publishes_owned_buffers_and_pairs_to_its_groups() {
    use std::time::Duration;
    use tidelog::{GroupOptions, Store, StoreOptions};

    let tmp = common::scratch_dir();
    let store = Store::open(tmp.path().join("store"), StoreOptions::default().topic(opts())).unwrap();
    let topic = store.topic("orders").unwrap();
    let group = topic.group("g", GroupOptions::default()).unwrap();
    assert_eq!(topic.publish(b"one".to_vec()).unwrap(), 0);
    let pairs: Vec<(&[u8], &[u8])> = vec![(b"k1", b"two"), (b"k2", b"three")];
    assert_eq!(topic.publish_batch(&pairs).unwrap(), 1..3);
    let got = group.poll(10, Duration::from_secs(5)).unwrap();
    let seen: Vec<(Option<Vec<u8>>, Vec<u8>)> =
        got.iter().map(|d| (d.record().key.clone(), d.record().payload.clone())).collect();
    assert_eq!(
        seen,
        vec![
            (None, b"one".to_vec()),
            (Some(b"k1".to_vec()), b"two".to_vec()),
            (Some(b"k2".to_vec()), b"three".to_vec())
        ]
    );
}

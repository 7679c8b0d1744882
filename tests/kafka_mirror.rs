//! The mirror against a real Kafka-protocol broker (`TIDELOG_KAFKA_BROKERS`): what a Kafka
//! record carries, exact restarts, foreign destinations, several partitions, the offset map
//! and the handover of a consumer group.
#![cfg(feature = "kafka")]

mod kafka_support;

use std::time::Duration;

use kafka_support::{brokers, read_all, unique_topic, KRecord};
use tidelog::kafka::{partition_for, translate_group, Mirror, MirrorOptions, OffsetMap};
use tidelog::{Error, GroupOptions, Header, Record, StartFrom, Store, StoreOptions};

fn options(brokers: &str, kafka_topic: &str) -> MirrorOptions {
    MirrorOptions::new(brokers, kafka_topic).source_id("test-source").timeout(Duration::from_secs(60))
}

fn publish_numbered(store: &Store, topic: &str, range: std::ops::Range<u64>) {
    let t = store.topic(topic).unwrap();
    for i in range {
        let key = format!("k{}", i % 7);
        t.publish(Record::new(format!("event-{i}").as_bytes()).key(key.as_bytes())).unwrap();
    }
}

/// Each tidelog offset of `0..n` exactly once, in order within each partition.
fn assert_exactly_once(got: &[KRecord], n: u64) {
    let mut seen = vec![0u32; n as usize];
    let mut last_in: std::collections::BTreeMap<i32, u64> = Default::default();
    for r in got {
        let o = r.tidelog_offset();
        assert!(o < n, "tidelog offset {o} beyond {n}");
        seen[o as usize] += 1;
        if let Some(prev) = last_in.insert(r.partition, o) {
            assert!(o > prev, "partition {} goes from {prev} to {o}", r.partition);
        }
        assert_eq!(r.payload.as_deref(), Some(format!("event-{o}").as_bytes()));
    }
    let missing: Vec<_> = seen.iter().enumerate().filter(|(_, c)| **c == 0).map(|(i, _)| i).collect();
    let twice: Vec<_> = seen.iter().enumerate().filter(|(_, c)| **c > 1).map(|(i, _)| i).collect();
    assert!(missing.is_empty() && twice.is_empty(), "missing {missing:?}, duplicated {twice:?}");
}

#[test]
fn every_field_of_a_record_reaches_kafka_with_the_source_and_offset_headers() {
    let Some(b) = brokers() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("s"), StoreOptions::default()).unwrap();
    let t = store.topic("orders").unwrap();
    let dup =
        [Header { name: "type", value: b"a" }, Header { name: "x", value: b"" }, Header { name: "type", value: b"b" }];
    t.publish(Record::new(b"first").key(b"k1").headers(&dup)).unwrap();
    t.publish(Record::new(b"").key(b"k2")).unwrap(); // empty, not null
    t.publish(Record::new(b"").key(b"k1").tombstone()).unwrap();
    t.publish(Record::new(b"no key")).unwrap();
    let kt = unique_topic("fields");
    let mut m = Mirror::open(&store, "orders", options(&b, &kt)).unwrap();
    assert_eq!(m.resumed().from, 0);
    let report = m.catch_up().unwrap();
    assert_eq!((report.mirrored, report.position), (4, 4));

    let got = read_all(&b, &kt);
    assert_eq!(got.len(), 4);
    let originals: Vec<_> = t.iter(0).unwrap().map(|r| r.unwrap()).collect();
    for (k, r) in got.iter().zip(&originals) {
        assert_eq!(k.key.as_deref(), r.key());
        assert_eq!(k.timestamp_ms, Some((r.timestamp_us() / 1000) as i64));
        assert_eq!(k.header("tidelog.source").as_deref(), Some("test-source"));
        assert_eq!(k.tidelog_offset(), r.offset());
        assert_eq!(k.header("tidelog.timestamp-us"), Some(r.timestamp_us().to_string()));
        // The record's own headers first, in order with duplicates, then the mirror's three.
        let own: Vec<(String, Vec<u8>)> = r.headers().map(|h| (h.name.to_string(), h.value.to_vec())).collect();
        assert_eq!(&k.headers[..own.len()], &own[..]);
        assert_eq!(k.headers.len(), own.len() + 3);
        // The offset map knows exactly where it went.
        assert_eq!(m.offset_map().lookup(r.offset()), Some((k.partition, k.offset)));
    }
    assert_eq!(got[0].payload.as_deref(), Some(&b"first"[..]));
    assert_eq!(got[1].payload.as_deref(), Some(&b""[..]), "an empty payload stays an empty value");
    assert_eq!(got[2].payload, None, "a tombstone becomes a null value");
    assert_eq!(got[3].key, None);
    m.close().unwrap();
}

#[test]
fn a_restart_resumes_after_what_the_destination_holds_even_without_map_or_group_position() {
    let Some(b) = brokers() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let store = Store::open(&dir, StoreOptions::default()).unwrap();
    publish_numbered(&store, "t", 0..300);
    let kt = unique_topic("restart");
    let opts = options(&b, &kt);
    let mut m = Mirror::open(&store, "t", opts.clone()).unwrap();
    m.catch_up().unwrap();
    m.close().unwrap();
    // Lose everything the mirror knows locally: as if it crashed before any checkpoint.
    std::fs::remove_file(opts.offset_map_path(&store, "t")).unwrap();
    let g = store.topic("t").unwrap().group(&opts.mirror_name(), GroupOptions::default()).unwrap();
    g.reset(StartFrom::Offset(0)).unwrap();
    g.close().unwrap();
    publish_numbered(&store, "t", 300..500);

    let mut m = Mirror::open(&store, "t", opts.clone()).unwrap();
    assert_eq!(m.resumed().from, 300, "resumes after the destination's highest offset, not the group's");
    assert_eq!(m.resumed().recovered, 300, "the destination's records were found again: {:?}", m.resumed());
    assert_eq!(m.resumed().group_position, 0);
    let report = m.catch_up().unwrap();
    assert_eq!(report.mirrored, 200);
    m.close().unwrap();
    assert_exactly_once(&read_all(&b, &kt), 500);
    // The rebuilt map covers every record.
    let map = OffsetMap::load(opts.offset_map_path(&store, "t")).unwrap();
    assert_eq!((map.end(), map.runs().count()), (500, 1));
}

#[test]
fn a_destination_written_by_another_source_is_refused_unless_forced() {
    let Some(b) = brokers() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("s"), StoreOptions::default()).unwrap();
    publish_numbered(&store, "a", 0..10);
    publish_numbered(&store, "b", 0..10);
    let kt = unique_topic("foreign");
    let mut m = Mirror::open(&store, "a", options(&b, &kt).source_id("source-a")).unwrap();
    m.catch_up().unwrap();
    m.close().unwrap();
    match Mirror::open(&store, "b", options(&b, &kt).source_id("source-b")) {
        Err(Error::MirrorForeignSource { partition: 0, offset: 9, found, expected, .. }) => {
            assert_eq!((found.as_str(), expected.as_str()), ("source-a", "source-b"));
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a foreign destination was accepted"),
    }
    let mut m = Mirror::open(&store, "b", options(&b, &kt).source_id("source-b").force(true)).unwrap();
    assert_eq!(m.resumed().from, 0);
    m.catch_up().unwrap();
    m.close().unwrap();
    assert_eq!(read_all(&b, &kt).len(), 20);
}

#[test]
fn several_partitions_keep_each_keys_order_and_restart_exactly() {
    let Some(b) = brokers() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("s"), StoreOptions::default()).unwrap();
    publish_numbered(&store, "t", 0..200);
    let kt = unique_topic("parts");
    let opts = options(&b, &kt).partitions(3);
    let mut m = Mirror::open(&store, "t", opts.clone()).unwrap();
    assert_eq!(m.resumed().partitions, 3);
    m.catch_up().unwrap();
    m.close().unwrap();
    std::fs::remove_file(opts.offset_map_path(&store, "t")).unwrap();
    publish_numbered(&store, "t", 200..260);
    let mut m = Mirror::open(&store, "t", opts.clone()).unwrap();
    m.catch_up().unwrap();
    m.close().unwrap();
    let got = read_all(&b, &kt);
    assert_exactly_once(&got, 260);
    for r in &got {
        assert_eq!(r.partition, partition_for(r.key.as_deref(), r.tidelog_offset(), 3));
    }
    // A mirror asking for another partition count than the topic has is refused.
    assert!(matches!(Mirror::open(&store, "t", opts.partitions(5)), Err(Error::InvalidOptions(_))));
}

#[test]
fn a_tidelog_group_hands_over_to_a_kafka_group_without_skipping_or_rereading() {
    let Some(b) = brokers() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("s"), StoreOptions::default()).unwrap();
    publish_numbered(&store, "t", 0..100);
    let kt = unique_topic("handover");
    let opts = options(&b, &kt);
    // A service reads 40 events from tidelog, then stops.
    let g = store.topic("t").unwrap().group("billing", GroupOptions::default()).unwrap();
    let mut acked = 0;
    while acked < 40 {
        for d in g.poll(40 - acked, Duration::from_secs(5)).unwrap() {
            g.ack(&d).unwrap();
            acked += 1;
        }
    }
    g.close().unwrap();
    // The mirror has not reached the group yet: refused, nothing committed.
    let mut m = Mirror::open(&store, "t", opts.clone()).unwrap();
    drop(m);
    match translate_group(&store, "t", "billing", &opts, "billing-kafka", false) {
        Err(Error::MirrorMismatch { .. }) => {}
        other => panic!("expected a mismatch, got {other:?}"),
    }
    m = Mirror::open(&store, "t", opts.clone()).unwrap();
    m.catch_up().unwrap();
    m.close().unwrap();
    let tr = translate_group(&store, "t", "billing", &opts, "billing-kafka", false).unwrap();
    assert_eq!(tr.committed, 40);
    assert_eq!(tr.done_above, 0);
    let kafka_at_40 = read_all(&b, &kt).into_iter().find(|r| r.tidelog_offset() == 40).unwrap();
    assert_eq!(tr.partitions.len(), 1);
    assert_eq!(tr.partitions[0].kafka_offset, kafka_at_40.offset);

    // A Kafka consumer of the group starts exactly at event 40.
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("group.id", "billing-kafka")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "latest")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition(&kt, 0);
    let committed = c.committed_offsets(tpl.clone(), Duration::from_secs(10)).unwrap();
    let at = committed.find_partition(&kt, 0).unwrap().offset();
    tpl.set_partition_offset(&kt, 0, at).unwrap();
    c.assign(&tpl).unwrap();
    let first = loop {
        if let Some(m) = c.poll(Duration::from_secs(1)) {
            break m.unwrap().detach();
        }
    };
    let off =
        first.headers().unwrap().iter().filter(|h| h.key == "tidelog.offset").last().unwrap().value.unwrap().to_vec();
    assert_eq!(off, b"40");
}

#[test]
fn a_destination_ahead_of_its_source_is_refused() {
    let Some(b) = brokers() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let kt = unique_topic("ahead");
    // The store mirrored 20 records...
    let store = Store::open(tmp.path().join("s"), StoreOptions::default()).unwrap();
    publish_numbered(&store, "t", 0..20);
    let mut m = Mirror::open(&store, "t", options(&b, &kt)).unwrap();
    m.catch_up().unwrap();
    m.close().unwrap();
    // ...then came back from an older backup holding only 5 (same source id).
    let older = Store::open(tmp.path().join("older"), StoreOptions::default()).unwrap();
    publish_numbered(&older, "t", 0..5);
    match Mirror::open(&older, "t", options(&b, &kt)) {
        Err(Error::MirrorMismatch { detail, .. }) => assert!(detail.contains("ahead"), "{detail}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a destination ahead of its source was accepted"),
    }
    assert_eq!(read_all(&b, &kt).len(), 20, "nothing was written");
}

/// A killed mirror's last produce request can reach the broker's log after the restarted
/// mirror first read the destination's tail. Here another producer plays the dead mirror: it
/// appends the record at the next tidelog offset while the new mirror opens; the reopened
/// mirror reads the tail again after `restart_settle` and does not send that record twice.
#[test]
fn a_record_landing_while_the_mirror_opens_is_found_by_the_second_tail_read() {
    use rdkafka::message::{Header as KHeader, OwnedHeaders};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let Some(b) = brokers() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("s"), StoreOptions::default()).unwrap();
    publish_numbered(&store, "t", 0..50);
    let kt = unique_topic("late");
    let opts = options(&b, &kt).restart_settle(Duration::from_millis(1500));
    let mut m = Mirror::open(&store, "t", opts.clone()).unwrap();
    m.catch_up().unwrap();
    m.close().unwrap();
    publish_numbered(&store, "t", 50..60);

    let late = std::thread::spawn({
        let (b, kt) = (b.clone(), kt.clone());
        move || {
            std::thread::sleep(Duration::from_millis(500));
            let p: BaseProducer = rdkafka::ClientConfig::new().set("bootstrap.servers", &b).create().unwrap();
            let headers = OwnedHeaders::new()
                .insert(KHeader { key: "tidelog.source", value: Some("test-source") })
                .insert(KHeader { key: "tidelog.offset", value: Some("50") });
            let r: BaseRecord<'_, str, str> =
                BaseRecord::to(&kt).partition(0).key("k1").payload("event-50").headers(headers);
            p.send(r).map_err(|(e, _)| e).unwrap();
            p.flush(Duration::from_secs(30)).unwrap();
        }
    });
    let mut m = Mirror::open(&store, "t", opts).unwrap();
    late.join().unwrap();
    assert_eq!(m.resumed().from, 51, "{:?}", m.resumed());
    m.catch_up().unwrap();
    m.close().unwrap();
    assert_exactly_once(&read_all(&b, &kt), 60);
}

//! The import against a real Kafka-protocol broker (`TIDELOG_KAFKA_BROKERS`): a Kafka topic
//! followed into a store topic, with its origin in headers, resuming exactly on reopen.
#![cfg(feature = "kafka")]

mod kafka_support;

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_support::{brokers, create_topic, unique_topic};
use rdkafka::message::{Header as KHeader, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use tidelog::kafka::{Import, ImportOptions};
use tidelog::{OwnedRecord, Store, StoreOptions};

fn producer(brokers: &str) -> BaseProducer {
    ClientConfig::new().set("bootstrap.servers", brokers).set("enable.idempotence", "true").create().unwrap()
}

/// Produce `n` records numbered from `from`, alternating partitions; every fifth one a null
/// value (a tombstone when keyed), every seventh without key.
fn produce(p: &BaseProducer, topic: &str, from: u64, n: u64) {
    for i in from..from + n {
        let key = format!("k{}", i % 5);
        let payload = format!("v{i}");
        let headers = OwnedHeaders::new()
            .insert(KHeader { key: "h", value: Some("1") })
            .insert(KHeader { key: "h", value: Some("2") })
            .insert(KHeader { key: "i", value: Some(&i.to_string()) });
        let mut r: BaseRecord<'_, str, str> = BaseRecord::to(topic).partition((i % 2) as i32).headers(headers);
        if !i.is_multiple_of(7) {
            r = r.key(&key);
        }
        if !i.is_multiple_of(5) {
            r = r.payload(&payload);
        }
        p.send(r).map_err(|(e, _)| e).unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

fn header(r: &OwnedRecord, name: &str) -> String {
    String::from_utf8(r.header(name).unwrap().to_vec()).unwrap()
}

/// Check the imported records: each Kafka record once, each partition in order, fields kept.
fn check(records: &[OwnedRecord], kt: &str, n: u64) {
    assert_eq!(records.len() as u64, n);
    let mut next: BTreeMap<String, i64> = BTreeMap::new();
    let mut seen = vec![false; n as usize];
    for r in records {
        assert_eq!(header(r, "tidelog.kafka.topic"), kt);
        let p = header(r, "tidelog.kafka.partition");
        let o: i64 = header(r, "tidelog.kafka.offset").parse().unwrap();
        let e = next.entry(p.clone()).or_insert(0);
        assert_eq!(o, *e, "partition {p}: offsets in order without gaps");
        *e += 1;
        let i: u64 = header(r, "i").parse().unwrap();
        assert!(!seen[i as usize], "record {i} imported twice");
        seen[i as usize] = true;
        let own: Vec<(String, Vec<u8>)> = r.headers().take(3).map(|h| (h.name.to_string(), h.value.to_vec())).collect();
        assert_eq!(own[0], ("h".to_string(), b"1".to_vec()));
        assert_eq!(own[1], ("h".to_string(), b"2".to_vec()));
        let keyed = !i.is_multiple_of(7);
        assert_eq!(r.key().is_some(), keyed);
        if i.is_multiple_of(5) {
            assert!(r.payload().is_empty());
            assert_eq!(r.is_tombstone(), keyed, "a null value with a key is a tombstone");
        } else {
            assert_eq!(r.payload(), format!("v{i}").as_bytes());
            assert!(!r.is_tombstone());
        }
        assert!(r.header("tidelog.kafka.timestamp-ms").is_some());
    }
}

#[test]
fn a_kafka_topic_is_imported_with_its_origin_and_resumes_exactly_on_reopen() {
    let Some(b) = brokers() else { return };
    let kt = unique_topic("import");
    create_topic(&b, &kt, 2);
    let p = producer(&b);
    produce(&p, &kt, 0, 300);

    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("s"), StoreOptions::default()).unwrap();
    let opts = ImportOptions::new(&b, &kt).batch(64).timeout(Duration::from_secs(60));
    let mut imp = Import::open(&store, "in", opts.clone()).unwrap();
    assert_eq!(imp.positions().values().copied().collect::<Vec<_>>(), vec![0, 0]);
    let report = imp.catch_up().unwrap();
    assert_eq!(report.imported, 300);
    drop(imp);

    produce(&p, &kt, 300, 100);
    // Reopened, the import finds where it stood in the topic itself.
    let mut imp = Import::open(&store, "in", opts).unwrap();
    assert_eq!(imp.positions().values().copied().collect::<Vec<_>>(), vec![150, 150]);
    assert_eq!(imp.catch_up().unwrap().imported, 100);
    drop(imp);

    let t = store.open_topic("in").unwrap();
    let records: Vec<OwnedRecord> = t.iter(0).unwrap().map(|r| r.unwrap()).collect();
    check(&records, &kt, 400);
}

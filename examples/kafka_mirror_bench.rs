//! Mirror throughput: records per second out of a tidelog topic into a Kafka broker, against
//! the same broker fed the same records by a plain rdkafka producer in the same run.
//!
//! ```text
//! TIDELOG_KAFKA_BROKERS=127.0.0.1:9092 cargo run --release --features kafka --example kafka_mirror_bench -- [RECORDS] [PAYLOAD_BYTES]
//! ```
//!
//! Both sides use the mirror's producer settings (idempotent, acks=all, linger 5 ms) and the
//! same key, payload and headers (the record's own plus the three the mirror adds), into a
//! fresh single-partition topic each. Defaults: 10 000 records of 100 bytes.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Header as KHeader, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use tidelog::kafka::{Mirror, MirrorOptions};
use tidelog::{Header, Record, Store, StoreOptions};

fn main() {
    let brokers = std::env::var("TIDELOG_KAFKA_BROKERS").expect("set TIDELOG_KAFKA_BROKERS to the broker's address");
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(10_000, |s| s.parse().expect("RECORDS"));
    let size: usize = args.next().map_or(100, |s| s.parse().expect("PAYLOAD_BYTES"));
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();

    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("store"), StoreOptions::default()).unwrap();
    let topic = store.topic("bench").unwrap();
    let payload = vec![b'x'; size];
    for i in 0..n {
        let key = format!("key-{}", i % 1000);
        let hs = [Header { name: "type", value: b"bench" }];
        topic.publish(Record::new(&payload).key(key.as_bytes()).headers(&hs)).unwrap();
    }
    topic.sync().unwrap();

    // A plain producer of the same records, before and after the mirror (the broker slows
    // down as its database grows: the mean of the two is the fair comparison).
    let plain_before = plain(&brokers, &topic, &format!("bench-plain-a-{stamp}"));
    // The mirror.
    let mirror_topic = format!("bench-mirror-{stamp}");
    create(&brokers, &mirror_topic);
    let started = Instant::now();
    let mut m = Mirror::open(&store, "bench", MirrorOptions::new(&brokers, &mirror_topic).source_id("bench")).unwrap();
    let opened = started.elapsed();
    let report = m.catch_up().unwrap();
    let caught_up = started.elapsed() - opened;
    m.close().unwrap();
    let mirror = started.elapsed();
    assert_eq!(report.mirrored, n);
    let plain_after = plain(&brokers, &topic, &format!("bench-plain-b-{stamp}"));
    let plain = (plain_before + plain_after) / 2;

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!("{n} records of {size} bytes, one partition, idempotent, acks=all");
    println!(
        "plain rdkafka producer: {:>10.0} records/s ({:.2} s; {:.0} before the mirror, {:.0} after)",
        rate(plain),
        plain.as_secs_f64(),
        rate(plain_before),
        rate(plain_after)
    );
    println!(
        "tidelog mirror:         {:>10.0} records/s ({:.2} s, open and final checkpoint included)",
        rate(mirror),
        mirror.as_secs_f64()
    );
    println!(
        "  of which: open (tail read) {:.2} s, catch_up {:.2} s ({:.0} records/s), close {:.2} s",
        opened.as_secs_f64(),
        caught_up.as_secs_f64(),
        rate(caught_up),
        (mirror - opened - caught_up).as_secs_f64()
    );
    println!(
        "mirror / plain: {:.2} (catch_up alone: {:.2})",
        rate(mirror) / rate(plain),
        rate(caught_up) / rate(plain)
    );
}

fn create(brokers: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    for r in futures_executor::block_on(admin.create_topics([&new], &AdminOptions::new())).unwrap() {
        r.unwrap();
    }
}

/// Send every record of `topic` to `plain_topic` with a plain producer (the mirror's settings
/// and headers); the time until the last one is acknowledged.
fn plain(brokers: &str, topic: &tidelog::Topic, plain_topic: &str) -> Duration {
    create(brokers, plain_topic);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "100000")
        .create()
        .unwrap();
    let started = Instant::now();
    for rec in topic.iter(0).unwrap() {
        let rec = rec.unwrap();
        let mut headers = OwnedHeaders::new_with_capacity(4);
        for h in rec.headers() {
            headers = headers.insert(KHeader { key: h.name, value: Some(h.value) });
        }
        let off = rec.offset().to_string();
        let ts = rec.timestamp_us().to_string();
        headers = headers
            .insert(KHeader { key: "tidelog.source", value: Some("bench") })
            .insert(KHeader { key: "tidelog.offset", value: Some(&off) })
            .insert(KHeader { key: "tidelog.timestamp-us", value: Some(&ts) });
        let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(plain_topic)
            .partition(0)
            .key(rec.key().unwrap())
            .payload(rec.payload())
            .timestamp((rec.timestamp_us() / 1000) as i64)
            .headers(headers);
        loop {
            match producer.send(r) {
                Ok(()) => break,
                Err((_, back)) => {
                    r = back;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    started.elapsed()
}
